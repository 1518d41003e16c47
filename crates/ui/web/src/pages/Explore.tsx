// Explore traces: TraceQL editor + builder, results newest first with span sets expandable, and
// a scatter of the results. State (query, range, limit) is in the URL; running a query writes it.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, SearchResponse, SpanSet, TraceSearchMetadata, formatValue, search } from "../api";
import { Empty, ErrorBox, Loading } from "../components/states";
import { SearchBuilder } from "../explore/Builder";
import { TraceqlEditor } from "../explore/Editor";
import { ServerError, parseErrorPosition } from "../explore/errors";
import { ResultScatter, ScatterPoint } from "../explore/Scatter";
import { Route, href, navigate, setParams } from "../router";
import { formatDateTime, formatDuration, resolveRange } from "../time";

const DEFAULT_QUERY = "{ }";
const LIMITS = ["20", "50", "100", "500"];

type Result = { status: "idle" } | { status: "loading" } | { status: "error"; error: ServerError; title: string } | { status: "done"; response: SearchResponse; tookMs: number };

function startNanos(trace: TraceSearchMetadata): number {
  return Number(trace.startTimeUnixNano);
}

function spanSetsOf(trace: TraceSearchMetadata): SpanSet[] {
  if (trace.spanSets && trace.spanSets.length) return trace.spanSets;
  return trace.spanSet ? [trace.spanSet] : [];
}

function hasError(trace: TraceSearchMetadata): boolean {
  return Object.values(trace.serviceStats ?? {}).some((stats) => (stats.errorCount ?? 0) > 0);
}

function SpanSets({ trace }: { trace: TraceSearchMetadata }) {
  const sets = spanSetsOf(trace);
  if (!sets.length) return <Empty>No span sets in this result.</Empty>;
  return (
    <div class="spansets">
      {sets.map((set, setIndex) => (
        <div class="spanset" key={setIndex}>
          <div class="spanset-head">
            Span set {setIndex + 1}: {set.matched ?? set.spans?.length ?? 0} matched
            {set.attributes?.length ? ` · ${set.attributes.map((kv) => `${kv.key}=${formatValue(kv.value)}`).join(", ")}` : ""}
          </div>
          <table class="table compact">
            <thead>
              <tr>
                <th>Span</th>
                <th>Name</th>
                <th>Start</th>
                <th class="num">Duration</th>
                <th>Attributes</th>
              </tr>
            </thead>
            <tbody>
              {(set.spans ?? []).map((span) => (
                <tr key={span.spanID}>
                  <td>
                    <a class="mono" href={href(`/trace/${trace.traceID}`, { span: span.spanID })}>
                      {span.spanID}
                    </a>
                  </td>
                  <td>{span.name ?? ""}</td>
                  <td class="mono">+{formatDuration(Number(span.startTimeUnixNano) - startNanos(trace))}</td>
                  <td class="num">{formatDuration(Number(span.durationNanos))}</td>
                  <td class="attrs">{(span.attributes ?? []).map((kv) => `${kv.key}=${formatValue(kv.value)}`).join("  ")}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}

function ResultsTable({ traces }: { traces: TraceSearchMetadata[] }) {
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const toggle = (id: string) => {
    const next = new Set(expanded);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setExpanded(next);
  };
  return (
    <table class="table results" data-testid="results">
      <thead>
        <tr>
          <th aria-label="Expand" />
          <th>Trace ID</th>
          <th>Root service</th>
          <th>Root name</th>
          <th>Start</th>
          <th class="num">Duration</th>
          <th class="num">Matched</th>
        </tr>
      </thead>
      <tbody>
        {traces.map((trace) => {
          const open = expanded.has(trace.traceID);
          const matched = spanSetsOf(trace).reduce((sum, set) => sum + (set.matched ?? 0), 0);
          return [
            <tr key={trace.traceID} class={hasError(trace) ? "row-error" : ""} data-trace-id={trace.traceID}>
              <td>
                <button type="button" class="expander" aria-expanded={open} aria-label={`${open ? "Hide" : "Show"} span sets of ${trace.traceID}`} onClick={() => toggle(trace.traceID)}>
                  {open ? "▾" : "▸"}
                </button>
              </td>
              <td>
                <a class="mono trace-link" href={href(`/trace/${trace.traceID}`)}>
                  {trace.traceID}
                </a>
              </td>
              <td>{trace.rootServiceName ? <a href={href(`/service/${encodeURIComponent(trace.rootServiceName)}`)}>{trace.rootServiceName}</a> : <span class="muted">unknown</span>}</td>
              <td>{trace.rootTraceName ?? <span class="muted">root span not yet received</span>}</td>
              <td class="mono">{formatDateTime(startNanos(trace) / 1e6)}</td>
              <td class="num">{trace.durationMs === undefined ? "<1ms" : formatDuration(trace.durationMs * 1e6)}</td>
              <td class="num">{matched}</td>
            </tr>,
            open && (
              <tr key={`${trace.traceID}-sets`} class="expanded">
                <td />
                <td colSpan={6}>
                  <SpanSets trace={trace} />
                </td>
              </tr>
            ),
          ];
        })}
      </tbody>
    </table>
  );
}

export function ExplorePage({ route }: { route: Route }) {
  const q = route.params.get("q") ?? DEFAULT_QUERY;
  const from = route.params.get("from");
  const to = route.params.get("to");
  const limit = LIMITS.includes(route.params.get("limit") ?? "") ? route.params.get("limit")! : "20";
  const tenant = route.params.get("tenant") ?? "";
  const [draft, setDraft] = useState(q);
  // What the editor should show, bumped when the query comes from outside the editor.
  const [shown, setShown] = useState({ text: q, revision: 0 });
  const showInEditor = (text: string) => {
    setDraft(text);
    setShown((previous) => ({ text, revision: previous.revision + 1 }));
  };
  const [result, setResult] = useState<Result>({ status: "idle" });
  const [runs, setRuns] = useState(0);
  const [showBuilder, setShowBuilder] = useState(false);
  // Resolved once per run so relative ranges mean "now" at the moment the query ran.
  const range = useMemo(() => resolveRange(from, to), [from, to, runs]);

  useEffect(() => showInEditor(q), [q]);

  useEffect(() => {
    const abort = new AbortController();
    setResult({ status: "loading" });
    const started = performance.now();
    search(q, range.startSecs, range.endSecs, Number(limit), 3, abort.signal)
      .then((response) => setResult({ status: "done", response, tookMs: performance.now() - started }))
      .catch((error) => {
        if ((error as Error).name === "AbortError") return;
        const message = (error as Error).message;
        const title = error instanceof ApiError && error.status === 400 ? "The query was rejected" : "Search failed";
        setResult({ status: "error", error: parseErrorPosition(message), title });
      });
    return () => abort.abort();
  }, [q, range, limit, tenant]);

  const run = (query = draft) => {
    if (query === q) setRuns((n) => n + 1);
    else setParams({ q: query });
  };

  // Memoised on the response: typing in the editor re-renders the page, and the scatter must not
  // be rebuilt on every keystroke.
  const traces = useMemo(
    () => (result.status === "done" ? [...(result.response.traces ?? [])].sort((a, b) => startNanos(b) - startNanos(a)) : []),
    [result],
  );
  const points: ScatterPoint[] = useMemo(
    () =>
      traces.map((trace) => ({
        traceId: trace.traceID,
        startSecs: startNanos(trace) / 1e9,
        durationMs: trace.durationMs ?? 0,
        error: hasError(trace),
      })),
    [traces],
  );

  return (
    <main class="page explore">
      <section class="query-panel" aria-label="Query">
        <div class="query-row">
          <TraceqlEditor value={shown.text} revision={shown.revision} onChange={setDraft} onRun={() => run()} error={result.status === "error" ? result.error : null} range={range} />
          <button type="button" class="primary run" onClick={() => run()} title="Run query (Ctrl+Enter)">
            Run query
          </button>
        </div>
        <div class="query-options">
          <button type="button" class="link-button" aria-expanded={showBuilder} onClick={() => setShowBuilder(!showBuilder)}>
            {showBuilder ? "Hide" : "Show"} search builder
          </button>
          <label>
            Limit
            <select value={limit} onChange={(e) => setParams({ limit: (e.target as HTMLSelectElement).value })}>
              {LIMITS.map((n) => (
                <option key={n} value={n}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <span class="muted hint">
            <kbd>/</kbd> edit · <kbd>Ctrl</kbd>+<kbd>Enter</kbd> run · <kbd>Ctrl</kbd>+<kbd>Space</kbd> complete
          </span>
        </div>
        {showBuilder && (
          <SearchBuilder
            range={range}
            onQuery={(query) => {
              showInEditor(query);
              run(query);
            }}
          />
        )}
      </section>
      {result.status === "loading" && <Loading what="traces" />}
      {result.status === "error" && (
        <ErrorBox
          title={result.title}
          message={result.error.line !== undefined ? `${result.error.message}\n(marked in the editor at line ${result.error.line}, column ${result.error.column})` : result.error.message}
        />
      )}
      {result.status === "done" && traces.length === 0 && (
        <Empty>
          No traces match <code>{q}</code> in this time range. Widen the range or loosen the query.
        </Empty>
      )}
      {result.status === "done" && traces.length > 0 && (
        <section class="results-panel" aria-label="Results">
          <div class="results-summary">
            {traces.length} trace{traces.length === 1 ? "" : "s"}, newest first
            {traces.length === Number(limit) ? ` (the limit; raise it to see more)` : ""} · {Math.round(result.tookMs)} ms
          </div>
          <ResultScatter points={points} onOpen={(traceId) => navigate(href(`/trace/${traceId}`))} />
          <ResultsTable traces={traces} />
        </section>
      )}
    </main>
  );
}
