// Insights (/ui/insights): the root-cause workbench for the page's window (ranked causes, each
// with its assertions, example traces, plots and a way into the graph) and every assertion on a
// timeline per entity. Everything shown comes from /api/insights/rca and /assertions.
import { useEffect, useMemo, useState } from "preact/hooks";
import { Assertion, Cause, RcaResponse, insightsAssertions, insightsRca, metricsQueryRange } from "../api";
import { Empty, ErrorBox, Loading, RefreshHead, pendingPage } from "../components/states";
import { Line, TimeSeries } from "../components/TimeSeries";
import { Route, href, setParams } from "../router";
import { formatDateTime, formatDuration, resolveRange } from "../time";
import { entrySpans } from "../service/queries";

type State = { status: "loading" } | { status: "error"; message: string } | { status: "done"; rca: RcaResponse; assertions: Assertion[] };

const SEVERITY_ORDER: Record<string, number> = { critical: 0, warning: 1, info: 2 };

function nanosToSecs(nanos: string | null | undefined): number {
  return nanos ? Number(nanos.slice(0, -6) || "0") / 1000 : 0;
}

function figure(metric: string, value: number): string {
  if (metric.endsWith("_ms")) return formatDuration(value * 1e6);
  if (metric.includes("ratio") || metric.includes("error_rate")) return `${(value * 100).toFixed(1)}%`;
  if (metric.includes("rate")) return `${value.toFixed(value >= 10 ? 0 : 2)}/s`;
  return Number(value.toPrecision(3)).toString();
}

function Evidence({ evidence }: { evidence?: { traceIds?: string[]; traceql?: string } }) {
  if (!evidence) return null;
  return (
    <div class="evidence">
      {evidence.traceql && (
        <a class="button-link" href={href("/explore", { q: evidence.traceql })} title={evidence.traceql}>
          Search the evidence
        </a>
      )}
      {(evidence.traceIds ?? []).map((id) => (
        <a key={id} class="mono trace-chip" href={href(`/trace/${id}`)}>
          {id.slice(0, 8)}…{id.slice(-6)}
        </a>
      ))}
    </div>
  );
}

/** Latency and rate of the cause's service around the window, with the onset marked by the plots' own time axis. */
function CausePlots({ cause, startSecs, endSecs }: { cause: Cause; startSecs: number; endSecs: number }) {
  const [plots, setPlots] = useState<{ xs: number[]; latency: Line[]; rate: Line[] } | null>(null);
  const [problem, setProblem] = useState("");
  useEffect(() => {
    const abort = new AbortController();
    setPlots(null);
    setProblem("");
    const stepSecs = Math.max(1, Math.round((endSecs - startSecs) / 120));
    const xs: number[] = [];
    for (let x = Math.floor(startSecs / stepSecs) * stepSecs; x <= endSecs; x += stepSecs) xs.push(x);
    const align = (samples: { timestampMs: string; value?: number }[] | undefined, missing: number | null) => {
      const byTime = new Map((samples ?? []).map((s) => [Math.round(Number(s.timestampMs) / 1000), s.value ?? missing]));
      return xs.map((x) => (byTime.has(x) ? byTime.get(x)! : missing));
    };
    const query = (q: string) => metricsQueryRange(q, startSecs, endSecs, { step: `${stepSecs}s` }, abort.signal);
    Promise.all([
      query(`${entrySpans(cause.service)} | quantile_over_time(duration, .5, .99)`),
      query(`${entrySpans(cause.service)} | rate()`),
      query(`${entrySpans(cause.service, " && status = error")} | rate()`),
    ])
      .then(([latency, rate, errors]) => {
        const quantile = (p: number) => latency.series?.find((s) => s.labels?.some((kv) => kv.key === "p" && kv.value?.doubleValue === p));
        setPlots({
          xs,
          latency: [
            { label: "p50", color: "#2a9d55", values: align(quantile(0.5)?.samples, null) },
            { label: "p99", color: "#d55e00", values: align(quantile(0.99)?.samples, null) },
          ],
          rate: [
            { label: "requests", color: "#0072b2", values: align(rate.series?.[0]?.samples, 0) },
            { label: "errors", color: "#c62828", values: align(errors.series?.[0]?.samples, 0) },
          ],
        });
      })
      .catch((error) => {
        if ((error as Error).name !== "AbortError") setProblem((error as Error).message);
      });
    return () => abort.abort();
  }, [cause.service, startSecs, endSecs]);
  if (problem) return <ErrorBox title={`Could not plot ${cause.service}`} message={problem} />;
  if (!plots) return <Loading what={`${cause.service}'s latency and rate`} />;
  return (
    <div class="panels">
      <section class="panel" aria-label="Latency of the cause's service">
        <h3>{cause.service}: latency</h3>
        <TimeSeries xsSecs={plots.xs} lines={plots.latency} format={(v) => formatDuration(v * 1e9)} height={150} />
      </section>
      <section class="panel" aria-label="Rate of the cause's service">
        <h3>{cause.service}: requests and errors</h3>
        <TimeSeries xsSecs={plots.xs} lines={plots.rate} format={(v) => `${Number(v.toPrecision(3))}/s`} height={150} />
      </section>
    </div>
  );
}

function Timeline({ assertions, startSecs, endSecs }: { assertions: Assertion[]; startSecs: number; endSecs: number }) {
  const byEntity = new Map<string, Assertion[]>();
  for (const assertion of assertions) {
    if (!byEntity.has(assertion.entity)) byEntity.set(assertion.entity, []);
    byEntity.get(assertion.entity)!.push(assertion);
  }
  // The worst first: entities ordered by their most severe assertion, then by name.
  const worst = (list: Assertion[]) => Math.min(...list.map((a) => SEVERITY_ORDER[a.severity] ?? 3));
  const entities = [...byEntity].sort((a, b) => worst(a[1]) - worst(b[1]) || a[0].localeCompare(b[0]));
  const span = Math.max(endSecs - startSecs, 1);
  const position = (secs: number) => Math.min(100, Math.max(0, ((secs - startSecs) / span) * 100));
  return (
    <div class="timeline" data-testid="assertion-timeline">
      <div class="timeline-row timeline-axis">
        <div class="timeline-entity" />
        <div class="timeline-track">
          <span style={{ left: "0%" }}>{formatDateTime(startSecs * 1000).slice(11)}</span>
          <span style={{ left: "50%" }}>{formatDateTime(((startSecs + endSecs) / 2) * 1000).slice(11)}</span>
          <span style={{ right: "0%" }}>{formatDateTime(endSecs * 1000).slice(11)}</span>
        </div>
      </div>
      {entities.map(([entity, list]) => (
        <div class="timeline-row" key={entity} data-entity={entity}>
          <div class="timeline-entity mono" title={entity}>
            {entity}
          </div>
          <div class="timeline-track">
            {list.map((assertion, i) => {
              const from = position(nanosToSecs(assertion.start));
              const to = position(nanosToSecs(assertion.end));
              return (
                <a
                  key={i}
                  class={`timeline-bar severity-${assertion.severity}`}
                  style={{ left: `${from}%`, width: `max(4px, ${to - from}%)` }}
                  href={assertion.evidence?.traceql ? href("/explore", { q: assertion.evidence.traceql }) : undefined}
                  title={`${assertion.severity} ${assertion.type}: ${assertion.summary}\n${formatDateTime(nanosToSecs(assertion.start) * 1000)} → ${formatDateTime(nanosToSecs(assertion.end) * 1000)}`}
                  data-summary={assertion.summary}
                />
              );
            })}
          </div>
        </div>
      ))}
    </div>
  );
}

export function InsightsPage({ route }: { route: Route }) {
  const from = route.params.get("from");
  const to = route.params.get("to");
  const tenant = route.params.get("tenant") ?? "";
  const selectedEntity = route.params.get("cause") ?? "";
  const [refresh, setRefresh] = useState(0);
  const range = useMemo(() => resolveRange(from, to), [from, to, refresh]);
  const [state, setState] = useState<State>({ status: "loading" });

  useEffect(() => {
    const abort = new AbortController();
    setState({ status: "loading" });
    Promise.all([insightsRca(range.startSecs, range.endSecs, abort.signal), insightsAssertions(range.startSecs, range.endSecs, abort.signal)])
      .then(([rca, assertions]) => setState({ status: "done", rca, assertions: assertions.assertions ?? [] }))
      .catch((error) => {
        if ((error as Error).name !== "AbortError") setState({ status: "error", message: (error as Error).message });
      });
    return () => abort.abort();
  }, [range, tenant]);

  const header = <RefreshHead title="Insights" blurb="Root causes and assertions for the time range, computed from the traces." onRefresh={() => setRefresh((n) => n + 1)} />;
  if (state.status !== "done") return pendingPage(header, state, "root causes and assertions", "Could not load insights");
  const causes = state.rca.causes ?? [];
  const cause = causes.find((c) => c.entity === selectedEntity) ?? causes[0];
  return (
    <main class="page insights-page">
      {header}
      <section class="rca" aria-label="Root causes">
        <h2>{state.rca.incident ? `Incident since ${formatDateTime(nanosToSecs(state.rca.onset) * 1000)}` : "No incident in this window"}</h2>
        {causes.length === 0 ? (
          <Empty>No ranked causes: nothing in this window moved away from its baseline enough to explain.</Empty>
        ) : (
          <div class="rca-body">
            <ol class="causes" data-testid="causes">
              {causes.map((c) => (
                <li key={c.entity} class={c === cause ? "selected" : ""} data-entity={c.entity}>
                  <button type="button" class="cause" onClick={() => setParams({ cause: c.entity }, true)} aria-pressed={c === cause}>
                    <span class="score" title={`score ${c.score.toFixed(2)}`}>
                      <span class="score-bar" style={{ width: `${Math.round(c.score * 100)}%` }} />
                    </span>
                    <span class="cause-name">
                      {c.name} <span class="muted">{c.kind}</span>
                    </span>
                    <span class="cause-summary">{c.summary}</span>
                  </button>
                </li>
              ))}
            </ol>
            {cause && (
              <div class="cause-detail" data-entity={cause.entity}>
                <h3>{cause.summary}</h3>
                <Evidence evidence={cause.evidence} />
                <p class="cause-links">
                  <a href={href(`/service/${encodeURIComponent(cause.service)}`)}>Service page of {cause.service}</a> ·{" "}
                  <a href={href("/graph", { node: `service:${cause.service}` })}>Its neighbourhood in the service graph</a>
                </p>
                <CausePlots cause={cause} startSecs={range.startSecs} endSecs={range.endSecs} />
                <table class="table compact">
                  <thead>
                    <tr>
                      <th>Assertion</th>
                      <th>Metric</th>
                      <th class="num">Expected</th>
                      <th class="num">Observed</th>
                      <th>From</th>
                      <th>Evidence</th>
                    </tr>
                  </thead>
                  <tbody>
                    {(cause.assertions ?? []).map((a, i) => (
                      <tr key={i}>
                        <td>
                          <span class={`severity severity-${a.severity}`}>{a.severity}</span> {a.type} <span class="muted mono">{a.entity}</span>
                        </td>
                        <td class="mono">{a.metric}</td>
                        <td class="num">{figure(a.metric, a.expected)}</td>
                        <td class="num">{figure(a.metric, a.observed)}</td>
                        <td class="mono">{formatDateTime(nanosToSecs(a.start) * 1000)}</td>
                        <td>{a.evidence?.traceql && <a href={href("/explore", { q: a.evidence.traceql })}>traces</a>}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </div>
        )}
      </section>
      <section aria-label="Assertions">
        <h2>Assertions ({state.assertions.length})</h2>
        {state.assertions.length === 0 ? (
          <Empty>No assertions in this window.</Empty>
        ) : (
          <Timeline assertions={state.assertions} startSecs={range.startSecs} endSecs={range.endSecs} />
        )}
        <div class="muted legend-line">
          <span class="severity severity-critical">critical</span> <span class="severity severity-warning">warning</span> <span class="severity severity-info">info</span> · a bar spans the
          assertion's time; click it for its traces
        </div>
      </section>
    </main>
  );
}
