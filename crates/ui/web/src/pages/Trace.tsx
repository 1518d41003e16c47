// Trace view (/ui/trace/<id>): summary, per-service time, the waterfall and the selected span
// (`?span=<hex id>` in the URL so a link can point at one span).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, TraceByIdResponse, traceById } from "../api";
import { Empty, ErrorBox, Loading } from "../components/states";
import { Route, href, setParams } from "../router";
import { formatDateTime, formatDuration } from "../time";
import { SpanDetail } from "../trace/SpanDetail";
import { Waterfall } from "../trace/Waterfall";
import { Trace, buildTrace, criticalPath, findSpans, serviceBreakdown, serviceColor } from "../trace/model";

type State = { status: "loading" } | { status: "missing" } | { status: "error"; message: string } | { status: "done"; trace: Trace; response: TraceByIdResponse };

const BREAKDOWN_ROWS = 6;

function ServiceBreakdown({ trace }: { trace: Trace }) {
  const all = useMemo(() => serviceBreakdown(trace), [trace]);
  const [showAll, setShowAll] = useState(false);
  const totalSelf = all.reduce((sum, row) => sum + row.selfNanos, 0) || 1;
  // A trace across dozens of services must not push the waterfall off the screen.
  const rows = showAll ? all : all.slice(0, BREAKDOWN_ROWS);
  return (
    <>
    <table class="table compact breakdown" aria-label="Time per service">
      <thead>
        <tr>
          <th>Service</th>
          <th class="num">Spans</th>
          <th class="num">Errors</th>
          <th class="num">Self time</th>
          <th>Share of self time</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => {
          const service = trace.services.indexOf(row.service);
          const share = row.selfNanos / totalSelf;
          return (
            <tr key={row.service}>
              <td>
                <span class="wf-service-mark" style={{ background: serviceColor(service) }} /> <a href={href(`/service/${encodeURIComponent(row.service)}`)}>{row.service}</a>
              </td>
              <td class="num">{row.spans}</td>
              <td class={`num${row.errors ? " error-text" : ""}`}>{row.errors}</td>
              <td class="num">{formatDuration(row.selfNanos)}</td>
              <td>
                <div class="share">
                  <div class="share-bar" style={{ width: `${share * 100}%`, background: serviceColor(service) }} />
                  <span>{(share * 100).toFixed(1)}%</span>
                </div>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
    {all.length > BREAKDOWN_ROWS && (
      <button type="button" class="link-button" onClick={() => setShowAll(!showAll)}>
        {showAll ? "Show the top services only" : `Show all ${all.length} services`}
      </button>
    )}
    </>
  );
}

export function TracePage({ traceId, route }: { traceId: string; route: Route }) {
  const [state, setState] = useState<State>({ status: "loading" });
  const [showBreakdown, setShowBreakdown] = useState(true);
  const tenant = route.params.get("tenant") ?? "";
  const selectedId = route.params.get("span") ?? "";
  // Fetch, model and first-render times, published for the browser test's 10,000-span figure.
  const timings = useRef<{ started: number; fetchMs: number; modelMs: number } | null>(null);

  useEffect(() => {
    const abort = new AbortController();
    setState({ status: "loading" });
    const started = performance.now();
    traceById(traceId, abort.signal)
      .then((response) => {
        const fetched = performance.now();
        const trace = buildTrace(response);
        if (trace.spans.length === 0) setState({ status: "missing" });
        else setState({ status: "done", trace, response });
        timings.current = { started, fetchMs: fetched - started, modelMs: performance.now() - fetched };
      })
      .catch((error) => {
        if ((error as Error).name === "AbortError") return;
        if (error instanceof ApiError && error.status === 404) setState({ status: "missing" });
        else setState({ status: "error", message: (error as Error).message });
      });
    return () => abort.abort();
  }, [traceId, tenant]);

  const trace = state.status === "done" ? state.trace : null;
  useEffect(() => {
    if (!trace || !timings.current) return;
    const { started, fetchMs, modelMs } = timings.current;
    requestAnimationFrame(() => {
      const totalMs = performance.now() - started;
      document.body.dataset.traceTimings = JSON.stringify({ fetchMs, modelMs, renderMs: totalMs - fetchMs - modelMs, totalMs, spans: trace.spans.length });
    });
  }, [trace]);
  const critical = useMemo(() => (trace ? criticalPath(trace) : new Map()), [trace]);
  const selected = useMemo(() => (trace && selectedId ? trace.spans.findIndex((span) => span.spanId === selectedId) : -1), [trace, selectedId]);
  const find = route.params.get("find") ?? "";
  const [findDraft, setFindDraft] = useState(find);
  useEffect(() => setFindDraft(find), [find]);
  // The URL follows the box after a pause, so typing neither floods history nor re-scans per key.
  useEffect(() => {
    if (findDraft === find) return;
    const timer = setTimeout(() => setParams({ find: findDraft || undefined }, true), 250);
    return () => clearTimeout(timer);
  }, [findDraft]);
  const found = useMemo(() => (trace ? findSpans(trace, find) : []), [trace, find]);
  const foundSet = useMemo(() => new Set(found), [found]);

  if (state.status === "loading") {
    return (
      <main class="page">
        <Loading what={`trace ${traceId}`} />
      </main>
    );
  }
  if (state.status === "missing") {
    return (
      <main class="page">
        <h1 class="mono">{traceId}</h1>
        <Empty>
          No trace with this ID was found. It may be older than the retention, belong to another tenant, or not be complete yet.{" "}
          <a href={href("/explore")}>Search traces</a>
        </Empty>
      </main>
    );
  }
  if (state.status === "error") {
    return (
      <main class="page">
        <h1 class="mono">{traceId}</h1>
        <ErrorBox title="Could not load the trace" message={state.message} />
      </main>
    );
  }

  const t = state.trace;
  const root = t.spans[t.roots[0]];
  const errors = t.spans.reduce((n, span) => n + (span.error ? 1 : 0), 0);
  const select = (index: number) => setParams({ span: t.spans[index].spanId }, true);
  return (
    <main class="page trace-page">
      <header class="trace-head">
        <h1>
          <span class="wf-service-mark" style={{ background: serviceColor(root.service) }} /> {t.services[root.service]}: {root.name}
        </h1>
        <div class="trace-facts">
          <span class="mono" data-testid="trace-id">{traceId}</span>
          <span>{formatDateTime(Number(t.startUnixNanos / 1_000_000n))}</span>
          <span>duration {formatDuration(t.durationNanos)}</span>
          <span data-testid="span-count">{t.spans.length} spans</span>
          <span>{t.services.length} services</span>
          <span>depth {t.maxDepth + 1}</span>
          <span class={errors ? "error-text" : ""}>{errors} errors</span>
          {t.roots.length > 1 && <span class="warning-text" title="Spans whose parent is not in the trace are shown as extra roots">{t.roots.length} roots</span>}
          {state.response.status === "PARTIAL" && <span class="warning-text">partial: {state.response.message}</span>}
          <span class="legend">
            <span class="legend-critical" /> critical path
          </span>
        </div>
        <div class="trace-tools">
          <button type="button" class="link-button" aria-expanded={showBreakdown} onClick={() => setShowBreakdown(!showBreakdown)}>
            {showBreakdown ? "Hide" : "Show"} time per service
          </button>
          <form
            class="find"
            role="search"
            onSubmit={(event) => {
              event.preventDefault();
              // Enter jumps to the next match after the selected span, wrapping around.
              const matches = findSpans(t, findDraft);
              if (!matches.length) return;
              const next = matches.find((index) => index > selected) ?? matches[0];
              setParams({ find: findDraft || undefined, span: t.spans[next].spanId }, true);
            }}
          >
            <input
              name="find"
              aria-label="Find spans"
              placeholder="Find spans (name, service, attribute)…"
              value={findDraft}
              onInput={(event) => setFindDraft((event.target as HTMLInputElement).value)}
            />
            {find && (
              <span class="muted" data-testid="find-count">
                {found.length} match{found.length === 1 ? "" : "es"}
              </span>
            )}
          </form>
        </div>
        {showBreakdown && <ServiceBreakdown trace={t} />}
      </header>
      <div class={`trace-body${selected >= 0 ? " with-detail" : ""}`}>
        <Waterfall trace={t} critical={critical} selected={selected} onSelect={select} matches={foundSet} />
        {selected >= 0 && <SpanDetail trace={t} span={t.spans[selected]} onClose={() => setParams({ span: undefined }, true)} onSelect={select} />}
      </div>
    </main>
  );
}
