// Typed client for the Tempo/Prometheus-compatible APIs the UI reads; the one place that adds
// the tenant header and turns a non-2xx answer into an ApiError carrying the server's message.

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
  /** The server wants a tenant (multitenancy on, no `X-Scope-OrgID`). */
  get needsTenant(): boolean {
    return this.status === 401 && /org id/i.test(this.message);
  }
}

export const NEEDS_TENANT_EVENT = "andante:needs-tenant";

let currentTenant = "";
export function setTenant(tenant: string) {
  currentTenant = tenant;
}

type Params = Record<string, string | number | undefined>;

export async function getJson<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== "") query.set(key, String(value));
  }
  const url = query.toString() ? `${path}?${query}` : path;
  const headers: Record<string, string> = { Accept: "application/json" };
  if (currentTenant) headers["X-Scope-OrgID"] = currentTenant;
  let response: Response;
  try {
    response = await fetch(url, { headers, signal });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw new ApiError(0, `cannot reach the server: ${(error as Error).message}`);
  }
  const text = await response.text();
  if (!response.ok) {
    const error = new ApiError(response.status, text.trim() || `${response.status} ${response.statusText}`);
    // The shell shows the tenant picker whichever page hit this first.
    if (error.needsTenant) window.dispatchEvent(new Event(NEEDS_TENANT_EVENT));
    throw error;
  }
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
export interface SearchResponse {
  traces?: TraceSearchMetadata[];
  metrics?: Record<string, string | number>;
}

export function search(q: string, startSecs: number, endSecs: number, limit: number, spss: number, signal?: AbortSignal) {
  return getJson<SearchResponse>("/api/search", { q, start: startSecs, end: endSecs, limit, spss }, signal);
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
export interface InsightsGraph {
  entities?: GraphEntity[];
  relations?: GraphRelation[];
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
