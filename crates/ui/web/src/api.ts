// Typed client for the Tempo/Prometheus-compatible APIs the UI reads; the one place that adds
// the tenant, credential and X-Requested-With headers, and turns a non-2xx answer into an
// ApiError carrying the server's message.
import { NdjsonLines } from "./explore/ndjson";

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
  /** The server wants a tenant (multitenancy on, no `X-Scope-OrgID`). */
  get needsTenant(): boolean {
    return this.status === 401 && /org id/i.test(this.message);
  }
  /** The server wants credentials, or refused the ones sent (`auth.tokens_file`). */
  get needsLogin(): boolean {
    return this.status === 401 && !this.needsTenant;
  }
}

export const NEEDS_TENANT_EVENT = "andante:needs-tenant";
/** Dispatched with the server's message as `detail` on a 401 that asks for credentials. */
export const NEEDS_LOGIN_EVENT = "andante:needs-login";
/** Dispatched with the server's message as `detail` on a 403 (a tenant the credential may not use). */
export const FORBIDDEN_EVENT = "andante:forbidden";

let currentTenant = "";
export function setTenant(tenant: string) {
  currentTenant = tenant;
}

// The credential lives for the browser tab (sessionStorage): a shared machine forgets it with
// the tab, and a reload does not ask again.
const AUTH_KEY = "andante.auth";
let authorization = "";
try {
  authorization = sessionStorage.getItem(AUTH_KEY) ?? "";
} catch {
  /* no storage (tests under Node, private modes): the credential lasts until the page unloads */
}

/** The `Authorization` header value for HTTP basic credentials (RFC 7617, UTF-8). */
export function basicAuthorization(username: string, password: string): string {
  const bytes = new TextEncoder().encode(`${username}:${password}`);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return `Basic ${btoa(binary)}`;
}

export function hasCredentials(): boolean {
  return authorization !== "";
}

/** Sets (or, with "", forgets) the `Authorization` header sent with every request. */
export function setCredentials(header: string) {
  authorization = header;
  try {
    if (header) sessionStorage.setItem(AUTH_KEY, header);
    else sessionStorage.removeItem(AUTH_KEY);
  } catch {
    /* kept in memory only */
  }
}

type Params = Record<string, string | number | undefined | string[]>;

function urlOf(path: string, params: Params): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (Array.isArray(value)) value.forEach((item) => query.append(key, item));
    else if (value !== undefined && value !== "") query.set(key, String(value));
  }
  return query.toString() ? `${path}?${query}` : path;
}

/**
 * Sends a GET and returns the response when it is 2xx, else throws an ApiError with the server's
 * message. `authorizationOverride` tries a credential before it is kept (the login form).
 */
export async function request(path: string, params: Params = {}, options: { accept?: string; signal?: AbortSignal; authorizationOverride?: string } = {}): Promise<Response> {
  // X-Requested-With makes the server leave the Basic challenge out of a 401, so the browser does
  // not pop its own login dialog over the UI's form.
  const headers: Record<string, string> = { Accept: options.accept ?? "application/json", "X-Requested-With": "XMLHttpRequest" };
  if (currentTenant) headers["X-Scope-OrgID"] = currentTenant;
  const credential = options.authorizationOverride ?? authorization;
  if (credential) headers.Authorization = credential;
  let response: Response;
  try {
    response = await fetch(urlOf(path, params), { headers, signal: options.signal });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw new ApiError(0, `cannot reach the server: ${(error as Error).message}`);
  }
  if (response.ok) return response;
  const text = await response.text();
  const error = new ApiError(response.status, text.trim() || `${response.status} ${response.statusText}`);
  // The shell shows the tenant picker or the login form whichever page hit this first; a
  // credential being tried is the login form's own business.
  if (options.authorizationOverride === undefined) {
    if (error.needsTenant) window.dispatchEvent(new Event(NEEDS_TENANT_EVENT));
    else if (error.needsLogin) window.dispatchEvent(new CustomEvent(NEEDS_LOGIN_EVENT, { detail: readableError(error.message) }));
    else if (error.status === 403) window.dispatchEvent(new CustomEvent(FORBIDDEN_EVENT, { detail: readableError(error.message) }));
  }
  throw error;
}

export async function getJson<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  const response = await request(path, params, { signal });
  const text = await response.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(response.status, `the server sent something that is not JSON: ${text.slice(0, 200)}`);
  }
}

// ---- OTLP-JSON value types, as /api/search and /api/v2/traces send them ----
export interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
  bytesValue?: string;
}
export interface KeyValue {
  key: string;
  value?: AnyValue;
}

export function formatValue(value: AnyValue | undefined): string {
  if (!value) return "";
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return String(value.intValue);
  if (value.doubleValue !== undefined) return String(value.doubleValue);
  if (value.boolValue !== undefined) return String(value.boolValue);
  if (value.arrayValue) return `[${(value.arrayValue.values ?? []).map(formatValue).join(", ")}]`;
  if (value.kvlistValue) {
    return `{${(value.kvlistValue.values ?? []).map((kv) => `${kv.key}: ${formatValue(kv.value)}`).join(", ")}}`;
  }
  if (value.bytesValue !== undefined) return value.bytesValue;
  return "";
}

// ---- search ----
export interface SearchSpan {
  spanID: string;
  name?: string;
  startTimeUnixNano: string;
  durationNanos: string;
  attributes?: KeyValue[];
}
export interface SpanSet {
  spans?: SearchSpan[];
  matched?: number;
  attributes?: KeyValue[];
}
export interface TraceSearchMetadata {
  traceID: string;
  rootServiceName?: string;
  rootTraceName?: string;
  startTimeUnixNano: string;
  durationMs?: number;
  spanSet?: SpanSet;
  spanSets?: SpanSet[];
  serviceStats?: Record<string, { spanCount?: number; errorCount?: number }>;
}
/** Tempo's search metrics; the 64-bit counts come as strings (proto3 JSON). */
export interface SearchMetrics {
  inspectedTraces?: number;
  inspectedBytes?: string;
  inspectedSpans?: string;
  totalBlocks?: number;
  completedJobs?: number;
  totalJobs?: number;
  totalBlockBytes?: string;
}
export interface SearchResponse {
  traces?: TraceSearchMetadata[];
  metrics?: SearchMetrics;
  /** `PARTIAL` when some of the data could not be searched; `message` says what. */
  status?: string;
  message?: string;
}

const NDJSON = "application/x-ndjson";

/**
 * Searches with the streamed answer: `onLine` gets each line as it arrives (the traces found
 * since the line before, and running totals; the last line the final totals and the partial
 * mark). A server that does not stream (Tempo, an older Andante) answers one JSON object, which
 * is passed on as the only line.
 */
export async function searchStream(q: string, startSecs: number, endSecs: number, limit: number, spss: number, onLine: (line: SearchResponse) => void, signal?: AbortSignal): Promise<void> {
  const response = await request("/api/search", { q, start: startSecs, end: endSecs, limit, spss }, { accept: `${NDJSON}, application/json;q=0.5`, signal });
  const lines = new NdjsonLines();
  const pass = (parsed: unknown[]) => parsed.forEach((line) => onLine(line as SearchResponse));
  try {
    if (!(response.headers.get("Content-Type") ?? "").startsWith(NDJSON) || !response.body) {
      pass(lines.push(new Uint8Array(await response.arrayBuffer())));
    } else {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        pass(lines.push(value));
      }
    }
    pass(lines.finish());
  } catch (error) {
    if (error instanceof SyntaxError) throw new ApiError(response.status, error.message);
    throw error;
  }
}

// ---- tag discovery (v2: scoped names, typed values; `q` narrows both to the query so far) ----
export interface TagsV2Response {
  scopes?: { name: string; tags?: string[] }[];
}
export interface TagValue {
  type: string;
  value: string;
}

export function tagNames(q: string, startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<TagsV2Response>("/api/v2/search/tags", { q, start: startSecs, end: endSecs }, signal);
}

export function tagValues(tag: string, q: string, startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<{ tagValues?: TagValue[] }>(
    `/api/v2/search/tag/${encodeURIComponent(tag)}/values`,
    { q, start: startSecs, end: endSecs },
    signal,
  );
}

// ---- trace by ID ----
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name?: string;
  kind?: string | number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: KeyValue[];
  events?: { timeUnixNano: string; name?: string; attributes?: KeyValue[] }[];
  links?: { traceId: string; spanId: string; traceState?: string; attributes?: KeyValue[] }[];
  status?: { code?: string | number; message?: string };
  traceState?: string;
}
export interface ResourceSpans {
  resource?: { attributes?: KeyValue[] };
  scopeSpans?: { scope?: { name?: string; version?: string; attributes?: KeyValue[] }; spans?: OtlpSpan[] }[];
}
export interface TraceByIdResponse {
  trace?: { resourceSpans?: ResourceSpans[] };
  status?: string;
  message?: string;
}

export function traceById(traceId: string, signal?: AbortSignal) {
  return getJson<TraceByIdResponse>(`/api/v2/traces/${encodeURIComponent(traceId)}`, {}, signal);
}

// ---- insights: the entity graph ----
export interface GraphEntity {
  id: string;
  kind: string; // service, operation, instance, node, namespace, database, external, topic
  name: string;
  service?: string;
  rate: number;
  errorRate: number;
  p50Ms: number;
  p99Ms: number;
  assertions: number;
}
export interface GraphRelation {
  kind: string; // CALLS, PRODUCES, CONSUMES, HOSTED_ON, RUNS_ON, ...
  from: string;
  to: string;
  rate?: number;
  errorRate?: number;
  p50Ms?: number;
  p99Ms?: number;
}
export interface Deploy {
  service: string;
  version: string;
  /** Instance names (as in instance entities' `name`) seen running this version. */
  instances?: string[];
  /** Unix nanoseconds, as a string. */
  firstSeen: string;
}
export interface InsightsGraph {
  entities?: GraphEntity[];
  relations?: GraphRelation[];
  deploys?: Deploy[];
}

export function insightsGraph(startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<InsightsGraph>("/api/insights/graph", { start: startSecs, end: endSecs }, signal);
}

// ---- TraceQL metrics ----
export interface MetricsSample {
  timestampMs: string;
  value?: number; // omitted when 0 (proto3 JSON)
}
export interface MetricsExemplar {
  labels?: KeyValue[];
  timestampMs: string;
  value?: number;
}
export interface MetricsSeries {
  labels?: KeyValue[];
  samples?: MetricsSample[];
  exemplars?: MetricsExemplar[];
}
export interface QueryRangeResponse {
  series?: MetricsSeries[];
}

/** An instant query: one value per series over the whole of `[start, end]`. */
export interface QueryInstantResponse {
  series?: { labels?: KeyValue[]; value?: number }[];
}

export function metricsQueryInstant(q: string, startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<QueryInstantResponse>("/api/metrics/query", { q, start: startSecs, end: endSecs }, signal);
}

export function metricsQueryRange(q: string, startSecs: number, endSecs: number, options: { step?: string; exemplars?: number } = {}, signal?: AbortSignal) {
  return getJson<QueryRangeResponse>("/api/metrics/query_range", { q, start: startSecs, end: endSecs, step: options.step, exemplars: options.exemplars }, signal);
}

// ---- Prometheus API (series generated from spans) ----
export interface PromMatrix {
  status: string;
  data?: { resultType: string; result: { metric: Record<string, string>; values: [number, string][] }[] };
}

export function promQueryRange(query: string, startSecs: number, endSecs: number, stepSecs: number, signal?: AbortSignal) {
  return getJson<PromMatrix>("/prometheus/api/v1/query_range", { query, start: startSecs, end: endSecs, step: stepSecs }, signal);
}

export interface PromVector {
  status: string;
  data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

export function promQuery(query: string, timeSecs: number, signal?: AbortSignal) {
  return getJson<PromVector>("/prometheus/api/v1/query", { query, time: timeSecs }, signal);
}

/** The label sets of the series `selector` selects that have samples in the range. */
export function promSeries(selector: string, startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<{ status: string; data?: Record<string, string>[] }>("/prometheus/api/v1/series", { "match[]": [selector], start: startSecs, end: endSecs }, signal);
}

export interface PromExemplars {
  seriesLabels: Record<string, string>;
  /** `value` as Go formats a float; `timestamp` in (fractional) seconds. */
  exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
}

/** Traced examples of the samples of the series the query's selectors select. */
export async function promExemplars(query: string, startSecs: number, endSecs: number, signal?: AbortSignal): Promise<PromExemplars[]> {
  const response = await request("/prometheus/api/v1/query_exemplars", { query, start: startSecs, end: endSecs }, { signal });
  // 204 (no body) is Prometheus' answer to a query without a selector: nothing to show.
  if (response.status === 204) return [];
  const body = (await response.json()) as { data?: PromExemplars[] };
  return body.data ?? [];
}

export interface PromList {
  status: string;
  data?: string[];
}

/** Metric names (`__name__` values) with samples in the range. */
export function promMetricNames(startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<PromList>("/prometheus/api/v1/label/__name__/values", { start: startSecs, end: endSecs }, signal);
}

/** Label names, of the series `selector` selects when one is given. */
export function promLabelNames(selector: string, startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<PromList>("/prometheus/api/v1/labels", { "match[]": selector ? [selector] : undefined, start: startSecs, end: endSecs }, signal);
}

export function promLabelValues(label: string, selector: string, startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<PromList>(`/prometheus/api/v1/label/${encodeURIComponent(label)}/values`, { "match[]": selector ? [selector] : undefined, start: startSecs, end: endSecs }, signal);
}

// ---- rules and alerts, in Prometheus' /api/v1/rules and /api/v1/alerts shapes ----
export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: "firing" | "pending";
  /** RFC 3339. */
  activeAt: string;
  /** The sample value, as Go formats it (`1`, `0.25`, `1e+06`). */
  value: string;
}
interface RuleCommon {
  name: string;
  /** The rule's expression: PromQL, or TraceQL metrics for a `traceql:` rule. */
  query: string;
  labels?: Record<string, string>;
  health: string; // ok, err, unknown
  lastError?: string;
  evaluationTime: number;
  lastEvaluation: string;
}
export interface AlertingRule extends RuleCommon {
  type: "alerting";
  state: "firing" | "pending" | "inactive";
  /** `for`, in seconds. */
  duration: number;
  keepFiringFor?: number;
  annotations?: Record<string, string>;
  alerts?: PromAlert[];
}
export interface RecordingRule extends RuleCommon {
  type: "recording";
}
export type Rule = AlertingRule | RecordingRule;
export interface RuleGroup {
  name: string;
  file: string;
  rules: Rule[];
  /** Seconds. */
  interval: number;
  limit?: number;
  evaluationTime: number;
  lastEvaluation: string;
}

export function promRules(signal?: AbortSignal) {
  return getJson<{ status: string; data?: { groups?: RuleGroup[] } }>("/prometheus/api/v1/rules", {}, signal);
}

export function promAlerts(signal?: AbortSignal) {
  return getJson<{ status: string; data?: { alerts?: PromAlert[] } }>("/prometheus/api/v1/alerts", {}, signal);
}

// ---- SLOs (/api/slos) ----
export interface SloSpec {
  name: string;
  kind: string; // availability, latency, ratio
  service?: string;
  operation?: string;
  /** Percent of good events. */
  objective: number;
  window: string;
  latency_threshold?: string;
  error_query?: string;
  total_query?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface SloReport {
  name: string;
  source: string; // file, api
  spec: SloSpec;
  objective: number;
  errorBudget: number;
  /** Good-event ratio over the SLO window; null until its rules have recorded data. */
  sli: number | null;
  errorBudgetRemaining: number | null;
  errorRatios: Record<string, number | null>;
  burnRates: Record<string, number | null>;
  burnRateAlerts: { severity: string; factor: number; longWindow: string; shortWindow: string }[];
  alerts: PromAlert[];
  group: string;
}

export function slos(signal?: AbortSignal) {
  return getJson<{ slos?: SloReport[] }>("/api/slos", {}, signal);
}

/** The Prometheus API answers errors as JSON `{error, errorType}`; other APIs as plain text. */
export function readableError(message: string): string {
  try {
    const body = JSON.parse(message);
    if (body && typeof body.error === "string") return body.error;
  } catch {
    /* plain text */
  }
  return message;
}

// ---- insights: assertions and root causes ----
export interface Evidence {
  traceIds?: string[];
  traceql?: string;
}
export interface Assertion {
  entity: string; // "<kind>:<name>" (instances "instance:<service>:<pod>")
  type: string; // anomaly, failure, saturation, ...
  severity: string; // info, warning, critical
  metric: string;
  expected: number;
  observed: number;
  start: string; // unix nanoseconds
  end: string;
  summary: string;
  evidence?: Evidence;
}
export interface Cause {
  entity: string;
  kind: string;
  name: string;
  service: string;
  score: number;
  summary: string;
  assertions?: Assertion[];
  evidence?: Evidence;
}
export interface RcaResponse {
  incident: boolean;
  onset?: string | null;
  causes?: Cause[];
}

export function insightsAssertions(startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<{ assertions?: Assertion[] }>("/api/insights/assertions", { start: startSecs, end: endSecs }, signal);
}

export function insightsRca(startSecs: number, endSecs: number, signal?: AbortSignal) {
  return getJson<RcaResponse>("/api/insights/rca", { start: startSecs, end: endSecs }, signal);
}
