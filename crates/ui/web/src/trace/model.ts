// The trace view's data model: the OTLP-JSON of /api/v2/traces/<id> flattened once into span
// records with a parent index, depth and times relative to the trace start, plus the derived
// views the page draws (visible rows, critical path, per-service self time). Pure functions
// of the response, so they stay fast (one pass each) on 10,000+ spans.
import type { KeyValue, TraceByIdResponse } from "../api";

export interface SpanRecord {
  index: number;
  spanId: string;
  parentSpanId: string;
  parent: number; // -1 for roots (no parent, or the parent is not in the trace)
  children: number[];
  depth: number;
  name: string;
  kind: string;
  service: number; // index into Trace.services
  startNanos: number; // relative to Trace.startUnixNanos
  endNanos: number;
  error: boolean;
  statusCode: string;
  statusMessage: string;
  attributes: KeyValue[];
  resource: KeyValue[];
  scopeName: string;
  scopeVersion: string;
  scopeAttributes: KeyValue[];
  events: { offsetNanos: number; name: string; attributes: KeyValue[] }[];
  links: { traceId: string; spanId: string; attributes: KeyValue[] }[];
}

export interface Trace {
  spans: SpanRecord[];
  roots: number[];
  services: string[];
  startUnixNanos: bigint;
  durationNanos: number;
  maxDepth: number;
}

/** Tempo's trace JSON carries IDs as base64; the UI shows and links them as hex like search does. */
export function idToHex(id: string | undefined): string {
  if (!id) return "";
  if (/^[0-9a-f]+$/i.test(id) && (id.length === 16 || id.length === 32)) return id.toLowerCase();
  try {
    const bytes = atob(id);
    let hex = "";
    for (let i = 0; i < bytes.length; i++) hex += bytes.charCodeAt(i).toString(16).padStart(2, "0");
    return hex;
  } catch {
    return id;
  }
}

const KIND_NAMES: Record<string, string> = { "0": "unspecified", "1": "internal", "2": "server", "3": "client", "4": "producer", "5": "consumer" };

function kindName(kind: string | number | undefined): string {
  if (kind === undefined) return "unspecified";
  const text = String(kind);
  return KIND_NAMES[text] ?? text.replace(/^SPAN_KIND_/, "").toLowerCase();
}

function isError(code: string | number | undefined): boolean {
  return code === 2 || code === "2" || code === "STATUS_CODE_ERROR";
}

function statusName(code: string | number | undefined): string {
  if (code === undefined || code === 0 || code === "0" || code === "STATUS_CODE_UNSET") return "unset";
  if (code === 1 || code === "1" || code === "STATUS_CODE_OK") return "ok";
  if (isError(code)) return "error";
  return String(code);
}

function splitNanos(text: string | number | undefined): [number, number] {
  const digits = String(text ?? "0");
  if (digits.length <= 6) return [0, Number(digits) || 0];
  return [Number(digits.slice(0, -6)) || 0, Number(digits.slice(-6)) || 0];
}

export function buildTrace(response: TraceByIdResponse): Trace {
  const raw: { span: any; resource: KeyValue[]; scope: any; service: number }[] = [];
  const services: string[] = [];
  const serviceIndex = new Map<string, number>();
  for (const resourceSpans of response.trace?.resourceSpans ?? []) {
    const resource = resourceSpans.resource?.attributes ?? [];
    const serviceName = resource.find((kv) => kv.key === "service.name")?.value?.stringValue ?? "unknown service";
    let service = serviceIndex.get(serviceName);
    if (service === undefined) {
      service = services.length;
      services.push(serviceName);
      serviceIndex.set(serviceName, service);
    }
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) raw.push({ span, resource, scope: scopeSpans.scope ?? {}, service });
    }
  }

  // Unix nanoseconds exceed 2^53, so they are read as (milliseconds, nanosecond remainder) pairs:
  // exact, and much cheaper than a BigInt per timestamp on 10,000+ spans.
  let startMs = Infinity;
  let startRest = 0;
  let endMs = -Infinity;
  let endRest = 0;
  for (const { span } of raw) {
    const [sMs, sRest] = splitNanos(span.startTimeUnixNano);
    const [eMs, eRest] = splitNanos(span.endTimeUnixNano ?? span.startTimeUnixNano);
    if (sMs < startMs || (sMs === startMs && sRest < startRest)) [startMs, startRest] = [sMs, sRest];
    if (eMs > endMs || (eMs === endMs && eRest > endRest)) [endMs, endRest] = [eMs, eRest];
  }
  if (!raw.length) [startMs, startRest, endMs, endRest] = [0, 0, 0, 0];
  const relative = (text: string | undefined) => {
    const [ms, rest] = splitNanos(text);
    return (ms - startMs) * 1_000_000 + (rest - startRest);
  };
  const base = BigInt(startMs) * 1_000_000n + BigInt(startRest);

  const spans: SpanRecord[] = raw.map(({ span, resource, scope, service }, index) => {
    const startNanos = relative(span.startTimeUnixNano);
    const endNanos = Math.max(startNanos, relative(span.endTimeUnixNano ?? span.startTimeUnixNano));
    return {
      index,
      spanId: idToHex(span.spanId),
      parentSpanId: idToHex(span.parentSpanId),
      parent: -1,
      children: [],
      depth: 0,
      name: span.name ?? "",
      kind: kindName(span.kind),
      service,
      startNanos,
      endNanos,
      error: isError(span.status?.code),
      statusCode: statusName(span.status?.code),
      statusMessage: span.status?.message ?? "",
      attributes: span.attributes ?? [],
      resource,
      scopeName: scope.name ?? "",
      scopeVersion: scope.version ?? "",
      scopeAttributes: scope.attributes ?? [],
      events: (span.events ?? []).map((event: any) => ({
        offsetNanos: relative(event.timeUnixNano),
        name: event.name ?? "",
        attributes: event.attributes ?? [],
      })),
      links: (span.links ?? []).map((link: any) => ({ traceId: idToHex(link.traceId), spanId: idToHex(link.spanId), attributes: link.attributes ?? [] })),
    };
  });

  const byId = new Map<string, number>();
  for (const span of spans) if (!byId.has(span.spanId)) byId.set(span.spanId, span.index);
  const roots: number[] = [];
  for (const span of spans) {
    const parent = span.parentSpanId ? byId.get(span.parentSpanId) : undefined;
    if (parent === undefined || parent === span.index) roots.push(span.index);
    else {
      span.parent = parent;
      spans[parent].children.push(span.index);
    }
  }
  const byStart = (a: number, b: number) => spans[a].startNanos - spans[b].startNanos || spans[a].index - spans[b].index;
  roots.sort(byStart);
  for (const span of spans) span.children.sort(byStart);

  // Depths by an explicit stack: a 10,000-deep chain must not overflow the call stack.
  let maxDepth = 0;
  const stack = [...roots];
  while (stack.length) {
    const index = stack.pop()!;
    const depth = spans[index].parent === -1 ? 0 : spans[spans[index].parent].depth + 1;
    spans[index].depth = depth;
    if (depth > maxDepth) maxDepth = depth;
    for (const child of spans[index].children) stack.push(child);
  }

  return { spans, roots, services, startUnixNanos: base, durationNanos: (endMs - startMs) * 1_000_000 + (endRest - startRest), maxDepth };
}

/** Rows to draw, depth-first in start order, skipping the subtrees of collapsed spans. */
export function visibleRows(trace: Trace, collapsed: Set<number>): Int32Array {
  const rows = new Int32Array(trace.spans.length);
  let count = 0;
  const stack: number[] = [];
  for (let i = trace.roots.length - 1; i >= 0; i--) stack.push(trace.roots[i]);
  while (stack.length) {
    const index = stack.pop()!;
    rows[count++] = index;
    if (collapsed.has(index)) continue;
    const children = trace.spans[index].children;
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
  return rows.subarray(0, count);
}

/**
 * The critical path (Jaeger's definition): walking back from a span's end, the child that
 * finished last is what the span waited for; the path goes into it, then continues before that
 * child's start. Returns, per span on the path, the [from, to] pieces (relative nanoseconds) of
 * its own time that lie on the path.
 */
export function criticalPath(trace: Trace): Map<number, [number, number][]> {
  const path = new Map<number, [number, number][]>();
  const add = (index: number, from: number, to: number) => {
    if (to <= from) return;
    let pieces = path.get(index);
    if (!pieces) path.set(index, (pieces = []));
    pieces.push([from, to]);
  };
  if (!trace.roots.length) return path;
  // The root that ends last carries the trace's end.
  let root = trace.roots[0];
  for (const candidate of trace.roots) if (trace.spans[candidate].endNanos > trace.spans[root].endNanos) root = candidate;

  type Frame = { index: number; cursor: number; byEnd: number[]; next: number };
  const frames: Frame[] = [];
  const push = (index: number, cutoff: number) => {
    const span = trace.spans[index];
    const byEnd = [...span.children].sort((a, b) => trace.spans[b].endNanos - trace.spans[a].endNanos);
    frames.push({ index, cursor: Math.min(span.endNanos, cutoff), byEnd, next: 0 });
  };
  push(root, trace.spans[root].endNanos);
  while (frames.length) {
    const frame = frames[frames.length - 1];
    const span = trace.spans[frame.index];
    // The next child, latest end first, that started inside the span and before the cursor.
    let next = -1;
    // (A moving index, not shift(): a span with 10,000 children must stay linear.)
    while (frame.next < frame.byEnd.length) {
      const candidate = frame.byEnd[frame.next++];
      const child = trace.spans[candidate];
      if (child.startNanos >= frame.cursor || child.startNanos < span.startNanos) continue; // cannot lie on the path any more
      // Ended by the cursor, or overlaps it and is clipped to it as Jaeger does.
      next = candidate;
      break;
    }
    if (next === -1) {
      add(frame.index, span.startNanos, frame.cursor);
      frames.pop();
      continue;
    }
    const child = trace.spans[next];
    const childEnd = Math.min(child.endNanos, frame.cursor);
    add(frame.index, childEnd, frame.cursor);
    frame.cursor = child.startNanos;
    push(next, childEnd);
  }
  return path;
}

export interface ServiceTime {
  service: string;
  spans: number;
  errors: number;
  selfNanos: number;
}

/** Self time (a span's duration minus the time covered by its children) summed per service. */
export function serviceBreakdown(trace: Trace): ServiceTime[] {
  const totals = trace.services.map((service) => ({ service, spans: 0, errors: 0, selfNanos: 0 }));
  for (const span of trace.spans) {
    const total = totals[span.service];
    total.spans++;
    if (span.error) total.errors++;
    let covered = 0;
    let coveredUntil = span.startNanos;
    for (const childIndex of span.children) {
      const child = trace.spans[childIndex];
      const from = Math.max(child.startNanos, coveredUntil);
      const to = Math.min(child.endNanos, span.endNanos);
      if (to > from) {
        covered += to - from;
        coveredUntil = to;
      }
    }
    total.selfNanos += Math.max(0, span.endNanos - span.startNanos - covered);
  }
  return totals.sort((a, b) => b.selfNanos - a.selfNanos);
}

// Colour-blind-friendly categorical palette (Okabe–Ito order, then Tableau-like extras).
const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#8c6bb1", "#7f7f7f", "#bcbd22", "#17becf", "#9c755f", "#4e79a7"];
export function serviceColor(service: number): string {
  return PALETTE[service % PALETTE.length];
}

const TARGET_TICKS = 6;

/** Axis ticks at round durations (1, 2 or 5 × 10^n ns) from 0, about six across the trace. */
export function niceTicks(totalNanos: number): number[] {
  const rough = totalNanos / TARGET_TICKS;
  const magnitude = 10 ** Math.floor(Math.log10(Math.max(rough, 1)));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((candidate) => candidate >= rough) ?? magnitude * 10;
  const ticks = [];
  for (let t = 0; t <= totalNanos + 1e-9; t += step) ticks.push(t);
  return ticks;
}

/** Spans whose name, service, ID or any attribute (key or value) contains `term`, any case. */
export function findSpans(trace: Trace, term: string): number[] {
  const needle = term.trim().toLowerCase();
  if (!needle) return [];
  const found: number[] = [];
  for (const span of trace.spans) {
    const haystacks = [span.name, trace.services[span.service], span.spanId, span.statusMessage];
    for (const kv of span.attributes) haystacks.push(`${kv.key}=${kv.value?.stringValue ?? kv.value?.intValue ?? kv.value?.doubleValue ?? kv.value?.boolValue ?? ""}`);
    if (haystacks.some((text) => text.toLowerCase().includes(needle))) found.push(span.index);
  }
  return found;
}
