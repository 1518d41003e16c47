// Explore traces: TraceQL editor + builder, results newest first with span sets expandable, and
// a scatter of the results. State (query, range, limit) is in the URL; running a query writes it.
// Results stream in: traces are shown as the server finds them, with the search's progress.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, SearchMetrics, SpanSet, TraceSearchMetadata, formatValue, searchStream } from "../api";
import { Empty, ErrorBox } from "../components/states";
import { SearchBuilder } from "../explore/Builder";
import { QueryEditor } from "../explore/Editor";
import { ServerError, parseErrorPosition } from "../explore/errors";
import { ResultScatter, ScatterPoint } from "../explore/Scatter";
import { Route, href, navigate, setParams } from "../router";
import { formatDateTime, formatDuration, resolveRange } from "../time";

const DEFAULT_QUERY = "{ }";
const NO_TRACES: TraceSearchMetadata[] = [];
const LIMITS = ["20", "50", "100", "500"];

/** A search as far as it got: `running` while lines arrive, `done` after the last one. */
interface Searched {
  status: "running" | "done";
  /** The query searched, so a page (and a test) can tell a stale answer from the current one. */
  query: string;
  traces: TraceSearchMetadata[];
  metrics: SearchMetrics;
  /** The server's message when it could search only part of the data. */
  partial?: string;
  lines: number;
  tookMs: number;
}
type Result = { status: "idle" } | { status: "error"; error: ServerError; title: string } | Searched;

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

function count(text: string | number | undefined): string {
  return text === undefined ? "0" : Number(text).toLocaleString("en-US");
}

/** Jobs done of all, spans inspected: moving while the search runs, the final totals after. */
function SearchProgress({ searched }: { searched: Searched }) {
  const { completedJobs, totalJobs, inspectedSpans } = searched.metrics;
  const running = searched.status === "running";
  return (
    <div class={`search-progress${running ? " running" : ""}`} role="status" aria-live="polite" data-testid="search-progress" data-status={searched.status} data-lines={searched.lines} data-query={searched.query}>
      {running && <span class="spinner" aria-hidden="true" />}
      <span>{running ? "Searching" : "Searched"}</span>
      {/* Jobs are the stored blocks' shares of the search; recent traces not yet in a block are
          searched apart, so a search of recent data only has none. */}
      {totalJobs ? (
        <>
          <progress max={totalJobs} value={completedJobs ?? 0} aria-label="Jobs done" />
          <span data-testid="jobs">
            {count(completedJobs)} of {count(totalJobs)} jobs
          </span>
          <span class="muted">·</span>
        </>
      ) : null}
      {searched.lines > 0 && (
        <span class="muted">
          <span data-testid="inspected-spans">{count(inspectedSpans)}</span> spans inspected · {Math.round(searched.tookMs)} ms
        </span>
      )}
    </div>
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
    // Aborted when the query, range or tenant changes and when the page goes away: a stream left
    // running would keep the server searching for nobody.
    const abort = new AbortController();
    const started = performance.now();
    let searched: Searched = { status: "running", query: q, traces: [], metrics: {}, lines: 0, tookMs: 0 };
    setResult(searched);
    const byId = new Map<string, TraceSearchMetadata>();
    searchStream(
      q,
      range.startSecs,
      range.endSecs,
      Number(limit),
      3,
      (line) => {
        for (const trace of line.traces ?? []) byId.set(trace.traceID, trace);
        searched = {
          status: "running",
          query: q,
          traces: [...byId.values()].sort((a, b) => startNanos(b) - startNanos(a)),
          metrics: line.metrics ?? searched.metrics,
          partial: line.status === "PARTIAL" ? line.message || "the search could not read all the data" : searched.partial,
          lines: searched.lines + 1,
          tookMs: performance.now() - started,
        };
        setResult(searched);
      },
      abort.signal,
    )
      .then(() => setResult({ ...searched, status: "done", tookMs: performance.now() - started }))
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

  const searched = result.status === "running" || result.status === "done" ? result : null;
  // The traces array changes only when a line arrives, and the scatter's points are memoised on
  // it: typing in the editor re-renders the page, and the scatter must not be rebuilt each time.
  const traces = searched?.traces ?? NO_TRACES;
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
          <QueryEditor value={shown.text} revision={shown.revision} onChange={setDraft} onRun={() => run()} error={result.status === "error" ? result.error : null} range={range} />
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
      {searched && <SearchProgress searched={searched} />}
      {searched?.partial && (
        <div class="state state-warning" role="alert" data-testid="partial">
          <strong>Partial result:</strong> {searched.partial}
        </div>
      )}
      {result.status === "error" && (
        <ErrorBox
          title={result.title}
          message={result.error.line !== undefined ? `${result.error.message}\n(marked in the editor at line ${result.error.line}, column ${result.error.column})` : result.error.message}
        />
      )}
      {searched?.status === "done" && traces.length === 0 && (
        <Empty>
          No traces match <code>{q}</code> in this time range. Widen the range or loosen the query.
        </Empty>
      )}
      {searched && traces.length > 0 && (
        <section class="results-panel" aria-label="Results" data-search-status={searched.status}>
          <div class="results-summary">
            {traces.length} trace{traces.length === 1 ? "" : "s"}
            {searched.status === "running" ? " so far" : ""}, newest first
            {traces.length >= Number(limit) ? ` (the limit; raise it to see more)` : ""}
          </div>
          <ResultScatter points={points} onOpen={(traceId) => navigate(href(`/trace/${traceId}`))} />
          <ResultsTable traces={traces} />
        </section>
      )}
    </main>
  );
}
