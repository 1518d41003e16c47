// Service page (/ui/service/<name>): RED panels (rate, error ratio, p50/p95/p99 latency) of the
// service's server and consumer spans over the page's time range, from its span-metrics series or,
// without them, from TraceQL metrics (service/red.ts), with exemplars that open their trace; its
// operations with sparklines; its instances (node, version, RED figures, assertions) from the
// insights graph; links to its traces.
import { useEffect, useMemo, useState } from "preact/hooks";
import { insightsGraph } from "../api";
import { InstanceRow, serviceInstances } from "../service/instances";
import { quote } from "../service/queries";
import { RedPanels, RedSource, loadRed } from "../service/red";
import { rateText } from "./Graph";
import { Empty, ErrorBox, Loading } from "../components/states";
import { Line, TimeSeries } from "../components/TimeSeries";
import { Route, href, navigate } from "../router";
import { formatDuration, resolveRange } from "../time";

/** The traces of one instance: the resource attributes the insights engine names instances by. */
function instanceQuery(service: string, instance: string): string {
  const name = quote(instance);
  return `{ resource.service.name = ${quote(service)} && (resource.k8s.pod.name = ${name} || resource.service.instance.id = ${name} || resource.host.name = ${name}) }`;
}

function Instances({ service, state }: { service: string; state: { status: "loading" } | { status: "error"; message: string } | { status: "done"; rows: InstanceRow[] } }) {
  if (state.status === "loading") return <Loading what="the service's instances" />;
  if (state.status === "error") return <ErrorBox title="Could not load the service's instances" message={state.message} />;
  if (state.rows.length === 0) {
    return (
      <Empty>
        No instances of {service} in this time range: its spans name none (<code>k8s.pod.name</code>, <code>service.instance.id</code> or <code>host.name</code>).
      </Empty>
    );
  }
  return (
    <table class="table instances" data-testid="instances">
      <thead>
        <tr>
          <th>Instance</th>
          <th>Node</th>
          <th>Version</th>
          <th class="num">Rate</th>
          <th class="num">Errors</th>
          <th class="num">p50</th>
          <th class="num">p99</th>
          <th class="num">Assertions</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {state.rows.map((row) => (
          <tr key={row.id} data-instance={row.name}>
            <td class="mono">{row.name}</td>
            <td class="mono">{row.node ?? <span class="muted">–</span>}</td>
            <td class="mono">{row.versions.length ? row.versions.join(", ") : <span class="muted">–</span>}</td>
            <td class="num">{rateText(row.rate)}</td>
            <td class={`num${row.errorRate ? " error-text" : ""}`}>{`${(row.errorRate * 100).toFixed(1)}%`}</td>
            <td class="num">{formatDuration(row.p50Ms * 1e6)}</td>
            <td class="num">{formatDuration(row.p99Ms * 1e6)}</td>
            <td class={`num${row.assertions ? " error-text" : ""}`}>{row.assertions}</td>
            <td>
              <a href={href("/explore", { q: instanceQuery(service, row.name) })}>traces</a>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const SOURCE_TAGS: Record<RedSource, { text: string; title: string }> = {
  "span-metrics": { text: "span metrics", title: "PromQL over the traces_spanmetrics_* series the generator writes" },
  traceql: { text: "from spans (span metrics off)", title: "TraceQL metrics computed from the spans at query time" },
};

function SourceTag({ source }: { source: RedSource }) {
  return (
    <span class="source-tag muted" data-source={source} title={SOURCE_TAGS[source].title}>
      {SOURCE_TAGS[source].text}
    </span>
  );
}

/** Why the figures come from where they do, so a reader can reproduce them. */
function SourceNote({ service, source }: { service: string; source: RedSource }) {
  if (source === "span-metrics") {
    return (
      <p class="muted source-note" data-source={source}>
        From the span-metrics series in the series store (<code>traces_spanmetrics_calls_total</code>, <code>traces_spanmetrics_latency_bucket</code>) through the Prometheus API; the exemplars are those series' traced examples.
      </p>
    );
  }
  return (
    <p class="muted source-note" data-source={source}>
      The series store has no span-metrics series of {service} in this range (the generator's span metrics are off, or the range is older than the metrics retention), so these figures are computed from its spans with TraceQL metrics.
    </p>
  );
}

const QUANTILE_COLORS = ["#2a9d55", "#e69f00", "#d55e00"];

function perSecond(value: number) {
  return value >= 100 ? `${value.toFixed(0)}/s` : value >= 1 ? `${value.toFixed(1)}/s` : `${value.toFixed(2)}/s`;
}

export function ServicePage({ service, route }: { service: string; route: Route }) {
  const from = route.params.get("from");
  const to = route.params.get("to");
  const tenant = route.params.get("tenant") ?? "";
  const [refresh, setRefresh] = useState(0);
  const range = useMemo(() => resolveRange(from, to), [from, to, refresh]);
  const [state, setState] = useState<{ status: "loading" } | { status: "error"; message: string } | { status: "done"; panels: RedPanels }>({ status: "loading" });
  const [instances, setInstances] = useState<{ status: "loading" } | { status: "error"; message: string } | { status: "done"; rows: InstanceRow[] }>({ status: "loading" });

  // Apart from the RED panels: the insights graph is a different engine and may fail alone.
  useEffect(() => {
    const abort = new AbortController();
    setInstances({ status: "loading" });
    insightsGraph(range.startSecs, range.endSecs, abort.signal)
      .then((graph) => setInstances({ status: "done", rows: serviceInstances(graph, service) }))
      .catch((error) => {
        if ((error as Error).name !== "AbortError") setInstances({ status: "error", message: (error as Error).message });
      });
    return () => abort.abort();
  }, [service, range, tenant]);

  useEffect(() => {
    const abort = new AbortController();
    setState({ status: "loading" });
    loadRed(service, range.startSecs, range.endSecs, abort.signal)
      .then((panels) => setState({ status: "done", panels }))
      .catch((error) => {
        if ((error as Error).name !== "AbortError") setState({ status: "error", message: (error as Error).message });
      });
    return () => abort.abort();
  }, [service, range, tenant]);

  const panels = state.status === "done" ? state.panels : null;
  const rateLines = useMemo<Line[]>(() => (panels ? [{ label: "requests", color: "#0072b2", values: panels.rate }] : []), [panels]);
  const errorLines = useMemo<Line[]>(() => (panels ? [{ label: "error ratio", color: "#d55e00", values: panels.errorRatio }] : []), [panels]);
  const latencyLines = useMemo<Line[]>(() => (panels ? panels.quantiles.map((q, i) => ({ label: q.label, color: QUANTILE_COLORS[i % 3], values: q.values })) : []), [panels]);
  const openTrace = (traceId: string) => navigate(href(`/trace/${traceId}`));

  const links = (
    <div class="service-links">
      <a class="button-link" href={href("/explore", { q: `{ resource.service.name = ${quote(service)} }` })}>
        Search its traces
      </a>
      <a class="button-link" href={href("/explore", { q: `{ resource.service.name = ${quote(service)} && status = error }` })}>
        Failing traces
      </a>
      <a class="button-link" href={href("/graph", { node: `service:${service}` })}>
        In the service graph
      </a>
      <button type="button" onClick={() => setRefresh((n) => n + 1)}>
        Refresh
      </button>
    </div>
  );

  return (
    <main class="page service-page">
      <div class="graph-head">
        <h1>
          <span class="muted">Service</span> {service}
        </h1>
        <span class="muted">Requests it serves: its server and consumer spans.</span>
      </div>
      {links}
      {panels && <SourceNote service={service} source={panels.source} />}
      {state.status === "loading" && <Loading what="the service's metrics" />}
      {state.status === "error" && <ErrorBox title="Could not load the service's metrics" message={state.message} />}
      {panels && panels.operations.length === 0 && <Empty>No server or consumer spans of {service} in this time range.</Empty>}
      {panels && panels.operations.length > 0 && (
        <>
          <div class="panels">
            <section class="panel" aria-label="Rate">
              <h3>
                Rate <SourceTag source={panels.source} />
              </h3>
              <TimeSeries xsSecs={panels.xsSecs} lines={rateLines} format={perSecond} />
            </section>
            <section class="panel" aria-label="Error ratio">
              <h3>
                Error ratio <SourceTag source={panels.source} />
              </h3>
              <TimeSeries xsSecs={panels.xsSecs} lines={errorLines} format={(v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`} />
            </section>
            <section class="panel" aria-label="Latency">
              <h3>
                Latency <SourceTag source={panels.source} />
              </h3>
              <TimeSeries xsSecs={panels.xsSecs} lines={latencyLines} format={(v) => formatDuration(v * 1e9)} exemplars={panels.exemplars} onExemplar={openTrace} />
            </section>
          </div>
          <h3>
            Operations <SourceTag source={panels.source} />
          </h3>
          <table class="table operations" data-testid="operations">
            <thead>
              <tr>
                <th>Operation</th>
                <th class="num">Requests</th>
                <th class="num">Errors</th>
                <th class="num">p99</th>
                <th>Rate over the range</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {panels.operations.map((operation) => (
                <tr key={operation.name} data-operation={operation.name} data-requests={operation.requests} data-errors={operation.errors} data-p99-secs={operation.p99Secs ?? ""}>
                  <td>{operation.name}</td>
                  <td class="num">{Math.round(operation.requests)}</td>
                  <td class={`num${operation.errors ? " error-text" : ""}`}>{operation.requests ? `${((operation.errors / operation.requests) * 100).toFixed(1)}%` : "–"}</td>
                  <td class="num">{operation.p99Secs === null ? "–" : formatDuration(operation.p99Secs * 1e9)}</td>
                  <td class="spark-cell">
                    <TimeSeries xsSecs={panels.xsSecs} lines={[{ label: operation.name, color: "#0072b2", values: operation.rates }]} format={perSecond} height={28} compact />
                  </td>
                  <td>
                    <a href={href("/explore", { q: `{ resource.service.name = ${quote(service)} && name = ${quote(operation.name)} }` })}>traces</a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <h3>Instances</h3>
      <Instances service={service} state={instances} />
    </main>
  );
}
