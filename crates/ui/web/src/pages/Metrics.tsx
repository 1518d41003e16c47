// Metrics explore (/ui/metrics): a TraceQL metrics query (`{ … } | rate() by (…)`) or a PromQL
// query against the built-in Prometheus API (the span-metrics and service-graph series), plotted
// over the page's range with a legend and a unit, and tabulated (last, min, mean, max).
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, KeyValue, formatValue, metricsQueryRange, promQueryRange, readableError } from "../api";
import { Empty, ErrorBox, Loading } from "../components/states";
import { Exemplar, Line, TimeSeries } from "../components/TimeSeries";
import { QueryEditor } from "../explore/Editor";
import { ServerError, parseErrorPosition } from "../explore/errors";
import { Route, href, navigate, setParams } from "../router";
import { formatDuration, resolveRange } from "../time";

const DEFAULTS = {
  traceql: "{ } | rate() by (resource.service.name)",
  promql: "sum by (service) (rate(traces_spanmetrics_calls_total[5m]))",
};
const UNITS: Record<string, { label: string; format: (v: number) => string }> = {
  number: { label: "number", format: (v) => (Math.abs(v) >= 1000 ? v.toExponential(2) : Number(v.toPrecision(3)).toString()) },
  persec: { label: "per second", format: (v) => `${Number(v.toPrecision(3))}/s` },
  seconds: { label: "seconds (durations)", format: (v) => formatDuration(v * 1e9) },
  ratio: { label: "ratio → %", format: (v) => `${Number((v * 100).toPrecision(3))}%` },
};
const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#8c6bb1", "#7f7f7f", "#bcbd22", "#17becf"];
const MAX_LINES = 30;

interface Result {
  xsSecs: number[];
  series: { label: string; values: (number | null)[] }[];
  exemplars: Exemplar[];
}

function traceqlLabel(labels: KeyValue[] | undefined): string {
  if (!labels?.length) return "{}";
  return `{${labels.map((kv) => `${kv.key}=${JSON.stringify(formatValue(kv.value))}`).join(", ")}}`;
}

export function MetricsPage({ route }: { route: Route }) {
  const lang = route.params.get("lang") === "promql" ? "promql" : "traceql";
  const q = route.params.get("q") ?? DEFAULTS[lang];
  const unit = UNITS[route.params.get("unit") ?? ""] ? route.params.get("unit")! : lang === "traceql" && /quantile_over_time|avg_over_time|duration/.test(q) ? "seconds" : "number";
  const from = route.params.get("from");
  const to = route.params.get("to");
  const tenant = route.params.get("tenant") ?? "";
  const stacked = route.params.get("stack") === "1";
  const [draft, setDraft] = useState(q);
  const [shown, setShown] = useState({ text: q, revision: 0 });
  const [runs, setRuns] = useState(0);
  const range = useMemo(() => resolveRange(from, to), [from, to, runs]);
  // Each answer remembers its query, so the page (and a test) can tell a stale answer from a new one.
  const [state, setState] = useState<{ status: "loading"; query?: string } | { status: "error"; error: ServerError; query: string } | { status: "done"; result: Result; query: string }>({ status: "loading" });

  useEffect(() => {
    setDraft(q);
    setShown((previous) => ({ text: q, revision: previous.revision + 1 }));
  }, [q, lang]);

  useEffect(() => {
    const abort = new AbortController();
    setState({ status: "loading" });
    const stepSecs = Math.max(1, Math.round((range.endSecs - range.startSecs) / 200));
    const first = Math.ceil(range.startSecs / stepSecs) * stepSecs;
    const xsSecs: number[] = [];
    for (let x = first; x <= range.endSecs; x += stepSecs) xsSecs.push(x);
    const done = (series: Result["series"], exemplars: Exemplar[]) => setState({ status: "done", result: { xsSecs, series, exemplars }, query: q });
    const fail = (error: unknown) => {
      if ((error as Error).name === "AbortError") return;
      const message = error instanceof ApiError ? readableError(error.message) : (error as Error).message;
      setState({ status: "error", error: lang === "traceql" ? parseErrorPosition(message) : { message }, query: q });
    };
    if (lang === "traceql") {
      metricsQueryRange(q, range.startSecs, range.endSecs, { step: `${stepSecs}s`, exemplars: 50 }, abort.signal)
        .then((response) => {
          const exemplars: Exemplar[] = [];
          const series = (response.series ?? []).map((s) => {
            const byTime = new Map((s.samples ?? []).map((sample) => [Math.round(Number(sample.timestampMs) / 1000 / stepSecs) * stepSecs, sample.value ?? 0]));
            for (const exemplar of s.exemplars ?? []) {
              const traceId = formatValue(exemplar.labels?.find((kv) => kv.key === "trace:id")?.value);
              if (traceId) exemplars.push({ timeSecs: Number(exemplar.timestampMs) / 1000, value: exemplar.value ?? 0, traceId });
            }
            return { label: traceqlLabel(s.labels), values: xsSecs.map((x) => (byTime.has(x) ? byTime.get(x)! : null)) };
          });
          done(series, exemplars);
        })
        .catch(fail);
    } else {
      promQueryRange(q, range.startSecs, range.endSecs, stepSecs, abort.signal)
        .then((response) => {
          const series = (response.data?.result ?? []).map((r) => {
            const byTime = new Map(r.values.map(([t, v]) => [Math.round(t / stepSecs) * stepSecs, Number(v)]));
            const name = r.metric.__name__ ?? "";
            const labels = Object.entries(r.metric).filter(([k]) => k !== "__name__").map(([k, v]) => `${k}=${JSON.stringify(v)}`);
            return { label: `${name}{${labels.join(", ")}}`, values: xsSecs.map((x) => (byTime.has(x) ? byTime.get(x)! : null)) };
          });
          done(series, []);
        })
        .catch(fail);
    }
    return () => abort.abort();
  }, [q, lang, range, tenant]);

  const result = state.status === "done" ? state.result : null;
  const lines = useMemo<Line[]>(() => (result ? result.series.slice(0, MAX_LINES).map((s, i) => ({ label: s.label, color: PALETTE[i % PALETTE.length], values: s.values })) : []), [result]);
  const format = UNITS[unit].format;
  const run = () => (draft === q ? setRuns((n) => n + 1) : setParams({ q: draft }));

  return (
    <main class="page metrics-page">
      <section class="query-panel" aria-label="Query">
        <div class="query-options">
          <div class="segmented" role="radiogroup" aria-label="Query language">
            {(["traceql", "promql"] as const).map((l) => (
              <button type="button" role="radio" aria-checked={lang === l} class={lang === l ? "active" : ""} onClick={() => setParams({ lang: l, q: undefined, unit: undefined })}>
                {l === "traceql" ? "TraceQL metrics" : "PromQL"}
              </button>
            ))}
          </div>
          <label title="Each series on top of the ones before it; the top line is their sum">
            <input type="checkbox" name="stacked" checked={stacked} onChange={(e) => setParams({ stack: (e.target as HTMLInputElement).checked ? "1" : undefined })} />
            Stacked
          </label>
          <label>
            Unit
            <select value={unit} onChange={(e) => setParams({ unit: (e.target as HTMLSelectElement).value })}>
              {Object.entries(UNITS).map(([key, value]) => (
                <option key={key} value={key}>
                  {value.label}
                </option>
              ))}
            </select>
          </label>
        </div>
        <div class="query-row">
          <QueryEditor
            key={lang}
            language={lang}
            value={shown.text}
            revision={shown.revision}
            onChange={setDraft}
            onRun={run}
            error={state.status === "error" ? state.error : null}
            range={range}
          />
          <button type="button" class="primary run" onClick={run} title="Run query (Ctrl+Enter)">
            Run query
          </button>
        </div>
        <span class="muted hint">
          {lang === "traceql" ? (
            <>
              Metrics computed from spans at query time, e.g. <code>{'{ status = error } | rate() by (resource.service.name)'}</code>.
            </>
          ) : (
            <>
              Series the generator writes from spans (<code>traces_spanmetrics_*</code>, <code>traces_service_graph_*</code>; on when the generator is enabled).
            </>
          )}
        </span>
      </section>
      <div class="metrics-result" data-status={state.status} data-query={state.query ?? ""}>
      {state.status === "loading" && <Loading what="series" />}
      {state.status === "error" && <ErrorBox title="The query failed" message={state.error.message} />}
      {result && result.series.length === 0 && <Empty>The query returned no series in this time range.</Empty>}
      {result && result.series.length > 0 && (
        <>
          <section class="panel" aria-label="Series plot">
            <TimeSeries xsSecs={result.xsSecs} lines={lines} format={format} height={280} legend={lines.length <= 8} stacked={stacked} exemplars={result.exemplars} onExemplar={(traceId) => navigate(href(`/trace/${traceId}`))} />
            {result.series.length > MAX_LINES && <div class="muted">Plotting the first {MAX_LINES} of {result.series.length} series; the table has them all.</div>}
          </section>
          <table class="table" data-testid="series-table">
            <thead>
              <tr>
                <th>Series</th>
                <th class="num">Last</th>
                <th class="num">Min</th>
                <th class="num">Mean</th>
                <th class="num">Max</th>
              </tr>
            </thead>
            <tbody>
              {result.series.map((s, i) => {
                const present = s.values.filter((v): v is number => v !== null && Number.isFinite(v));
                const last = [...s.values].reverse().find((v) => v !== null);
                const mean = present.length ? present.reduce((a, b) => a + b, 0) / present.length : null;
                return (
                  <tr key={s.label} data-series={s.label}>
                    <td class="mono">
                      {i < MAX_LINES && <span class="wf-service-mark" style={{ background: PALETTE[i % PALETTE.length] }} />} {s.label}
                    </td>
                    <td class="num">{last == null ? "–" : format(last)}</td>
                    <td class="num">{present.length ? format(Math.min(...present)) : "–"}</td>
                    <td class="num">{mean === null ? "–" : format(mean)}</td>
                    <td class="num">{present.length ? format(Math.max(...present)) : "–"}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </>
      )}
      </div>
    </main>
  );
}
