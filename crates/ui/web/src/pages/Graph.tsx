// Service graph (/ui/graph): services, databases, external peers and topics from the insights
// entity graph over the page's time range, laid out left to right by call direction; nodes sized
// by rate and coloured by error ratio, ringed when they have active assertions. A click selects
// a node or edge (`?node=` / `?edge=` in the URL) and offers its traces.
import { useEffect, useMemo, useState } from "preact/hooks";
import { GraphEntity, GraphRelation, InsightsGraph, insightsGraph } from "../api";
import { Empty, RefreshHead, pendingPage } from "../components/states";
import { Route, href, setParams } from "../router";
import { formatDuration, resolveRange } from "../time";
import { LaidOutEdge, errorColor, layoutGraph } from "../graph/layout";

type State = { status: "loading" } | { status: "error"; message: string } | { status: "done"; graph: InsightsGraph };

function quote(value: string) {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The TraceQL that finds a node's traces; undefined for kinds spans do not name reliably. */
function nodeQuery(entity: GraphEntity): string | undefined {
  if (entity.kind === "service") return `{ resource.service.name = ${quote(entity.name)} }`;
  if (entity.kind === "database") return `{ span.db.name = ${quote(entity.name)} || span.db.system = ${quote(entity.name)} }`;
  if (entity.kind === "external") return `{ span.peer.service = ${quote(entity.name)} || span.server.address = ${quote(entity.name)} }`;
  if (entity.kind === "topic") return `{ span.messaging.destination.name = ${quote(entity.name)} }`;
  return undefined;
}

function edgeQuery(relation: GraphRelation, byId: Map<string, GraphEntity>): string | undefined {
  const from = byId.get(relation.from);
  const to = byId.get(relation.to);
  if (!from || !to) return undefined;
  if (from.kind === "service" && to.kind === "service") {
    return `{ resource.service.name = ${quote(from.name)} } > { resource.service.name = ${quote(to.name)} }`;
  }
  if (from.kind === "service") {
    const target = nodeQuery(to);
    return target ? `{ resource.service.name = ${quote(from.name)} } && ${target}` : undefined;
  }
  return nodeQuery(from);
}

export function rateText(rate: number | undefined) {
  if (rate === undefined) return "–";
  return rate >= 10 ? `${rate.toFixed(0)}/s` : rate >= 0.1 ? `${rate.toFixed(2)}/s` : `${(rate * 60).toFixed(1)}/min`;
}

function percent(ratio: number | undefined) {
  return ratio === undefined ? "–" : `${(ratio * 100).toFixed(ratio < 0.01 && ratio > 0 ? 2 : 1)}%`;
}

function edgePath(edge: LaidOutEdge) {
  const [first, ...rest] = edge.points;
  if (!first) return "";
  return `M${first.x},${first.y} ` + rest.map((p) => `L${p.x},${p.y}`).join(" ");
}

function Facts({ rate, errorRate, p50Ms, p99Ms, assertions }: { rate?: number; errorRate?: number; p50Ms?: number; p99Ms?: number; assertions?: number }) {
  return (
    <dl class="detail-facts">
      <dt>Rate</dt>
      <dd>{rateText(rate)}</dd>
      <dt>Errors</dt>
      <dd class={errorRate ? "error-text" : ""}>{percent(errorRate)}</dd>
      <dt>p50</dt>
      <dd>{p50Ms === undefined ? "–" : formatDuration(p50Ms * 1e6)}</dd>
      <dt>p99</dt>
      <dd>{p99Ms === undefined ? "–" : formatDuration(p99Ms * 1e6)}</dd>
      {assertions !== undefined && (
        <>
          <dt>Assertions</dt>
          <dd class={assertions ? "error-text" : ""}>{assertions}</dd>
        </>
      )}
    </dl>
  );
}

export function GraphPage({ route }: { route: Route }) {
  const from = route.params.get("from");
  const to = route.params.get("to");
  const tenant = route.params.get("tenant") ?? "";
  const selectedNode = route.params.get("node") ?? "";
  const selectedEdge = route.params.get("edge") ?? "";
  const [state, setState] = useState<State>({ status: "loading" });
  const [refresh, setRefresh] = useState(0);
  const range = useMemo(() => resolveRange(from, to), [from, to, refresh]);

  useEffect(() => {
    const abort = new AbortController();
    setState({ status: "loading" });
    insightsGraph(range.startSecs, range.endSecs, abort.signal)
      .then((graph) => setState({ status: "done", graph }))
      .catch((error) => {
        if ((error as Error).name !== "AbortError") setState({ status: "error", message: (error as Error).message });
      });
    return () => abort.abort();
  }, [range, tenant]);

  const layout = useMemo(() => (state.status === "done" ? layoutGraph(state.graph) : null), [state]);
  const byId = useMemo(() => new Map((layout?.nodes ?? []).map((node) => [node.entity.id, node.entity])), [layout]);

  const header = <RefreshHead title="Service graph" blurb="Services, databases, external peers and topics seen in spans of this time range; left calls right." onRefresh={() => setRefresh((n) => n + 1)} />;
  if (state.status !== "done") return pendingPage(header, state, "the service graph", "Could not load the service graph");
  if (!layout || layout.nodes.length === 0) {
    return (
      <main class="page">
        {header}
        <Empty>No services sent spans in this time range. Widen the range, or send traces.</Empty>
      </main>
    );
  }

  const node = byId.get(selectedNode);
  const edge = layout.edges.find((e) => `${e.relation.from}->${e.relation.to}` === selectedEdge);
  const selectNode = (id: string) => setParams({ node: id, edge: undefined }, true);
  const selectEdge = (relation: GraphRelation) => setParams({ edge: `${relation.from}->${relation.to}`, node: undefined }, true);
  const maxRate = Math.max(...layout.edges.map((e) => e.relation.rate ?? 0), 0.001);
  const query = node ? nodeQuery(node) : edge ? edgeQuery(edge.relation, byId) : undefined;

  return (
    <main class="page graph-page">
      {header}
      <div class="graph-body">
        <div class="graph-canvas">
          <svg
            width={layout.width}
            height={layout.height}
            viewBox={`0 0 ${layout.width} ${layout.height}`}
            role="group"
            aria-label="Service graph"
            data-node-count={layout.nodes.length}
            data-edge-count={layout.edges.length}
          >
            <defs>
              <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse">
                <path d="M0,0 L10,5 L0,10 z" fill="var(--muted)" />
              </marker>
            </defs>
            {layout.looseFrom !== undefined && (
              <text x={16} y={layout.looseFrom} class="graph-section">
                No calls seen in this range
              </text>
            )}
            {layout.edges.map((e) => {
              const key = `${e.relation.from}->${e.relation.to}`;
              const width = 1 + 4 * Math.sqrt((e.relation.rate ?? 0) / maxRate);
              return (
                <g key={key} class={`graph-edge${key === selectedEdge ? " selected" : ""}`} data-edge={key} onClick={() => selectEdge(e.relation)}>
                  <title>
                    {`${byId.get(e.relation.from)?.name} → ${byId.get(e.relation.to)?.name} (${e.relation.kind.toLowerCase()}): ${rateText(e.relation.rate)}, ${percent(e.relation.errorRate)} errors`}
                  </title>
                  <path d={edgePath(e)} class="graph-edge-hit" />
                  <path d={edgePath(e)} class="graph-edge-line" style={{ strokeWidth: width, stroke: e.relation.errorRate ? errorColor(e.relation.errorRate) : undefined }} marker-end="url(#arrow)" />
                </g>
              );
            })}
            {layout.nodes.map((n) => {
              const entity = n.entity;
              return (
                <g
                  key={entity.id}
                  class={`graph-node kind-${entity.kind}${entity.id === selectedNode ? " selected" : ""}${entity.assertions ? " asserted" : ""}`}
                  transform={`translate(${n.x},${n.y})`}
                  data-entity={entity.id}
                  data-kind={entity.kind}
                  tabIndex={0}
                  role="button"
                  aria-label={`${entity.kind} ${entity.name}`}
                  onClick={() => selectNode(entity.id)}
                  onKeyDown={(event) => {
                    if (event.key === "Enter" || event.key === " ") {
                      event.preventDefault();
                      selectNode(entity.id);
                    }
                  }}
                >
                  <rect width={n.width} height={n.height} rx={entity.kind === "database" ? 14 : entity.kind === "topic" ? 0 : 6} style={{ stroke: errorColor(entity.errorRate) }} />
                  <rect class="graph-node-band" width={6} height={n.height} rx={2} style={{ fill: errorColor(entity.errorRate) }} />
                  <text x={14} y={16} class="graph-node-name">
                    {entity.name.length > 30 ? `${entity.name.slice(0, 29)}…` : entity.name}
                  </text>
                  <text x={14} y={30} class="graph-node-stats">
                    {entity.kind !== "service" ? `${entity.kind} · ` : ""}
                    {rateText(entity.rate)} · {percent(entity.errorRate)} err
                  </text>
                  {entity.assertions > 0 && (
                    <text x={n.width - 8} y={16} text-anchor="end" class="graph-node-assertions">
                      ⚠ {entity.assertions}
                    </text>
                  )}
                </g>
              );
            })}
          </svg>
        </div>
        <aside class="span-detail graph-detail" aria-label="Selection">
          {node ? (
            <>
              <h2>
                {node.name} <span class="muted">{node.kind}</span>
              </h2>
              <Facts {...node} />
            </>
          ) : edge ? (
            <>
              <h2>
                {byId.get(edge.relation.from)?.name} → {byId.get(edge.relation.to)?.name}
              </h2>
              <div class="muted">{edge.relation.kind.toLowerCase()}</div>
              <Facts {...edge.relation} />
            </>
          ) : (
            <div class="muted">Select a node or an edge to see its rate, errors and latency, and to search its traces.</div>
          )}
          {query && (
            <p>
              <a class="button-link" href={href("/explore", { q: query })}>
                Search these traces
              </a>{" "}
              {node?.kind === "service" && (
                <>
                  <a class="button-link" href={href("/explore", { q: `{ resource.service.name = ${quote(node.name)} && status = error }` })}>
                    Failing traces
                  </a>{" "}
                  <a class="button-link" href={href(`/service/${encodeURIComponent(node.name)}`)}>
                    Service page
                  </a>
                </>
              )}
            </p>
          )}
          <h3>Legend</h3>
          <ul class="graph-legend">
            <li>Height: request rate (log scale)</li>
            <li>
              Colour: error ratio, <span style={{ color: errorColor(0) }}>0%</span> → <span style={{ color: errorColor(0.05) }}>5%</span> →{" "}
              <span style={{ color: errorColor(0.1) }}>≥10%</span>
            </li>
            <li>⚠ n: active assertions</li>
            <li>Rounded: database · dashed: external · square: topic</li>
          </ul>
        </aside>
      </div>
    </main>
  );
}
