// Service page (/ui/service/<name>): RED panels (rate, error ratio, p50/p95/p99 latency) of the
// service's server and consumer spans, from TraceQL metrics over the page's time range, with
// exemplars that open their trace; its operations with sparklines; its instances (node, version,
// RED figures, assertions) from the insights graph; links to its traces.
import { useEffect, useMemo, useState } from "preact/hooks";
import { MetricsSeries, QueryRangeResponse, formatValue, insightsGraph, metricsQueryRange } from "../api";
import { InstanceRow, serviceInstances } from "../service/instances";
import { rateText } from "./Graph";
import { Empty, ErrorBox, Loading } from "../components/states";
import { Exemplar, Line, TimeSeries } from "../components/TimeSeries";
import { Route, href, navigate } from "../router";
import { formatDuration, resolveRange } from "../time";

function quote(value: string) {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** The requests a service answers: its server spans, and consumer spans for queue workers. */
export function entrySpans(service: string, extra = ""): string {
  return `{ resource.service.name = ${quote(service)} && (kind = server || kind = consumer)${extra} }`;
}

/** ~120 points across the range, on a whole number of seconds. */
function stepFor(startSecs: number, endSecs: number): string {
  return `${Math.max(1, Math.round((endSecs - startSecs) / 120))}s`;
}

interface Panels {
  xsSecs: number[];
  rate: (number | null)[];
  errorRatio: (number | null)[];
  quantiles: { label: string; values: (number | null)[] }[];
  exemplars: Exemplar[];
  operations: { name: string; rate: number[]; total: number; errors: number; p99Secs: number | null }[];
}

function label(series: MetricsSeries, key: string): string {
  return formatValue(series.labels?.find((kv) => kv.key === key)?.value);
}

/** Sample values aligned to `xs`; a missing value is 0 (proto3 JSON omits zeros) or, for
 * quantiles, no data. */
function align(series: MetricsSeries | undefined, xs: number[], missing: 0 | null): (number | null)[] {
  const byTime = new Map((series?.samples ?? []).map((s) => [Math.round(Number(s.timestampMs) / 1000), s.value ?? missing]));
  return xs.map((x) => (byTime.has(x) ? byTime.get(x)! : missing === 0 ? 0 : null));
}

function buildPanels(startSecs: number, endSecs: number, stepSecs: number, rate: QueryRangeResponse, errors: QueryRangeResponse, latency: QueryRangeResponse, opsRate: QueryRangeResponse, opsErrors: QueryRangeResponse, opsLatency: QueryRangeResponse): Panels {
  const first = Math.floor(startSecs / stepSecs) * stepSecs;
  const xsSecs: number[] = [];
  for (let x = first; x <= endSecs; x += stepSecs) xsSecs.push(x);
  const rateValues = align(rate.series?.[0], xsSecs, 0);
  const errorValues = align(errors.series?.[0], xsSecs, 0);
  const errorRatio = rateValues.map((r, i) => (r && r > 0 ? (errorValues[i] ?? 0) / r : null));
  const quantiles = (latency.series ?? [])
    .map((series) => ({ q: Number(label(series, "p")), series }))
    .sort((a, b) => a.q - b.q)
    .map(({ q, series }) => ({ label: `p${Math.round(q * 100)}`, values: align(series, xsSecs, null) }));
  const exemplars: Exemplar[] = [];
  for (const series of latency.series ?? []) {
    for (const exemplar of series.exemplars ?? []) {
      const traceId = formatValue(exemplar.labels?.find((kv) => kv.key === "trace:id")?.value);
      if (traceId && exemplar.value !== undefined) exemplars.push({ timeSecs: Number(exemplar.timestampMs) / 1000, value: exemplar.value, traceId });
    }
  }
  const errorsByName = new Map((opsErrors.series ?? []).map((s) => [label(s, "name"), s]));
  const p99ByName = new Map((opsLatency.series ?? []).map((s) => [label(s, "name"), s]));
  const operations = (opsRate.series ?? []).map((series) => {
    const name = label(series, "name");
    const rates = align(series, xsSecs, 0) as number[];
    const total = rates.reduce((sum, v) => sum + v, 0) * stepSecs;
    const errorCount = (align(errorsByName.get(name), xsSecs, 0) as number[]).reduce((sum, v) => sum + v, 0) * stepSecs;
    const p99s = align(p99ByName.get(name), xsSecs, null).filter((v): v is number => v !== null);
    return { name, rate: rates, total, errors: errorCount, p99Secs: p99s.length ? Math.max(...p99s) : null };
  });
  operations.sort((a, b) => b.total - a.total);
  return { xsSecs, rate: rateValues, errorRatio, quantiles, exemplars, operations };
}

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
  const [state, setState] = useState<{ status: "loading" } | { status: "error"; message: string } | { status: "done"; panels: Panels }>({ status: "loading" });
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
    const step = stepFor(range.startSecs, range.endSecs);
    const stepSecs = Number(step.slice(0, -1));
    const run = (q: string, exemplars?: number) => metricsQueryRange(q, range.startSecs, range.endSecs, { step, exemplars }, abort.signal);
    Promise.all([
      run(`${entrySpans(service)} | rate()`),
      run(`${entrySpans(service, " && status = error")} | rate()`),
      run(`${entrySpans(service)} | quantile_over_time(duration, .5, .95, .99)`, 40),
      run(`${entrySpans(service)} | rate() by (name)`),
      run(`${entrySpans(service, " && status = error")} | rate() by (name)`),
      run(`${entrySpans(service)} | quantile_over_time(duration, .99) by (name)`),
    ])
      .then((answers) => setState({ status: "done", panels: buildPanels(range.startSecs, range.endSecs, stepSecs, ...(answers as [QueryRangeResponse, QueryRangeResponse, QueryRangeResponse, QueryRangeResponse, QueryRangeResponse, QueryRangeResponse])) }))
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
        <span class="muted">Requests it serves: its server and consumer spans, from TraceQL metrics.</span>
      </div>
      {links}
      {state.status === "loading" && <Loading what="the service's metrics" />}
      {state.status === "error" && <ErrorBox title="Could not load the service's metrics" message={state.message} />}
      {panels && panels.operations.length === 0 && <Empty>No server or consumer spans of {service} in this time range.</Empty>}
      {panels && panels.operations.length > 0 && (
        <>
          <div class="panels">
            <section class="panel" aria-label="Rate">
              <h3>Rate</h3>
              <TimeSeries xsSecs={panels.xsSecs} lines={rateLines} format={perSecond} />
            </section>
            <section class="panel" aria-label="Error ratio">
              <h3>Error ratio</h3>
              <TimeSeries xsSecs={panels.xsSecs} lines={errorLines} format={(v) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`} />
            </section>
            <section class="panel" aria-label="Latency">
              <h3>Latency</h3>
              <TimeSeries xsSecs={panels.xsSecs} lines={latencyLines} format={(v) => formatDuration(v * 1e9)} exemplars={panels.exemplars} onExemplar={openTrace} />
            </section>
          </div>
          <h3>Operations</h3>
          <table class="table operations" data-testid="operations">
            <thead>
              <tr>
                <th>Operation</th>
                <th class="num">Requests</th>
                <th class="num">Errors</th>
                <th class="num">Worst p99</th>
                <th>Rate over the range</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {panels.operations.map((operation) => (
                <tr key={operation.name} data-operation={operation.name}>
                  <td>{operation.name}</td>
                  <td class="num">{Math.round(operation.total)}</td>
                  <td class={`num${operation.errors ? " error-text" : ""}`}>{operation.total ? `${((operation.errors / operation.total) * 100).toFixed(1)}%` : "–"}</td>
                  <td class="num">{operation.p99Secs === null ? "–" : formatDuration(operation.p99Secs * 1e9)}</td>
                  <td class="spark-cell">
                    <TimeSeries xsSecs={panels.xsSecs} lines={[{ label: operation.name, color: "#0072b2", values: operation.rate }]} format={perSecond} height={28} compact />
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
