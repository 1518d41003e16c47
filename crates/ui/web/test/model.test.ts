// The trace view's model: IDs, tree, exact relative times, visible rows, critical path and
// per-service self time, on small hand-made traces whose answers are worked out here.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TraceByIdResponse } from "../src/api";
import { buildTrace, criticalPath, findSpans, idToHex, niceTicks, serviceBreakdown, visibleRows } from "../src/trace/model";

const BASE = 1795310742632083752n;

function b64(hex: string): string {
  return Buffer.from(hex, "hex").toString("base64");
}

/** spans: [id, parent, service, startOffsetNanos, endOffsetNanos, status?] */
function trace(spans: [string, string, string, number, number, number?][]): TraceByIdResponse {
  const byService = new Map<string, any[]>();
  for (const [id, parent, service, start, end, status] of spans) {
    if (!byService.has(service)) byService.set(service, []);
    byService.get(service)!.push({
      traceId: b64("0102030405060708090a0b0c0d0e0f10"),
      spanId: b64(id.padStart(16, "0")),
      ...(parent ? { parentSpanId: b64(parent.padStart(16, "0")) } : {}),
      name: `op ${id}`,
      kind: "SPAN_KIND_SERVER",
      startTimeUnixNano: String(BASE + BigInt(start)),
      endTimeUnixNano: String(BASE + BigInt(end)),
      status: status ? { code: status } : {},
    });
  }
  return {
    trace: {
      resourceSpans: [...byService].map(([service, list]) => ({
        resource: { attributes: [{ key: "service.name", value: { stringValue: service } }] },
        scopeSpans: [{ scope: { name: "test" }, spans: list }],
      })),
    },
  };
}

test("IDs are shown as hex whether the JSON has base64 or hex", () => {
  assert.equal(idToHex(b64("4ef947da3fba9fc0")), "4ef947da3fba9fc0");
  assert.equal(idToHex("4ef947da3fba9fc0"), "4ef947da3fba9fc0");
  assert.equal(idToHex(undefined), "");
});

test("times relative to the trace start are exact to the nanosecond beyond 2^53", () => {
  const t = buildTrace(trace([["a", "", "svc", 0, 31_005_465], ["b", "a", "svc", 1, 7]]));
  assert.equal(t.durationNanos, 31_005_465);
  assert.deepEqual(t.spans.map((s) => [s.startNanos, s.endNanos]), [[0, 31_005_465], [1, 7]]);
  assert.equal(t.startUnixNanos, BASE);
});

test("the tree: parents, depth, children in start order, orphans become roots", () => {
  const t = buildTrace(trace([
    ["1", "", "front", 0, 100],
    ["3", "1", "back", 50, 90],
    ["2", "1", "back", 10, 40],
    ["4", "2", "db", 15, 30],
    ["5", "ff", "lost", 60, 70],
  ]));
  const id = (i: number) => t.spans[i].spanId.replace(/^0+/, "");
  assert.deepEqual(t.roots.map(id), ["1", "5"]);
  assert.deepEqual(t.spans[0].children.map(id), ["2", "3"]);
  assert.deepEqual(t.spans.map((s) => s.depth), [0, 1, 1, 2, 0]);
  assert.equal(t.maxDepth, 2);
  assert.deepEqual(t.services, ["front", "back", "db", "lost"]);
  assert.deepEqual([...visibleRows(t, new Set())].map(id), ["1", "2", "4", "3", "5"]);
  // Collapsing span 2 hides its child only.
  const two = t.spans.findIndex((s) => id(s.index) === "2");
  assert.deepEqual([...visibleRows(t, new Set([two]))].map(id), ["1", "2", "3", "5"]);
});

test("error status in either OTLP-JSON spelling marks the span", () => {
  const t = buildTrace(trace([["1", "", "a", 0, 10, 2], ["2", "1", "a", 1, 2, 1]]));
  assert.deepEqual(t.spans.map((s) => [s.error, s.statusCode]), [[true, "error"], [false, "ok"]]);
});

test("critical path: sequential children are both on it, with the parent's gaps", () => {
  const t = buildTrace(trace([["1", "", "a", 0, 100], ["2", "1", "a", 10, 40], ["3", "1", "a", 50, 90]]));
  const path = criticalPath(t);
  assert.deepEqual(path.get(0), [[90, 100], [40, 50], [0, 10]]);
  assert.deepEqual(path.get(1), [[10, 40]]);
  assert.deepEqual(path.get(2), [[50, 90]]);
});

test("critical path: of overlapping children only the one finishing last counts", () => {
  const t = buildTrace(trace([["1", "", "a", 0, 100], ["2", "1", "a", 10, 80], ["3", "1", "a", 20, 60]]));
  const path = criticalPath(t);
  assert.deepEqual(path.get(0), [[80, 100], [0, 10]]);
  assert.deepEqual(path.get(1), [[10, 80]]);
  assert.equal(path.has(2), false);
});

test("critical path: a child outliving its parent is clipped to the parent's end", () => {
  const t = buildTrace(trace([["1", "", "a", 0, 50], ["2", "1", "a", 30, 70]]));
  const path = criticalPath(t);
  assert.deepEqual(path.get(1), [[30, 50]]);
  assert.deepEqual(path.get(0), [[0, 30]]);
});

test("critical path over a 10,000-deep chain does not overflow the stack", () => {
  const spans: [string, string, string, number, number][] = [];
  for (let i = 1; i <= 10_000; i++) spans.push([i.toString(16), i === 1 ? "" : (i - 1).toString(16), "a", i, 30_000 - i]);
  const t = buildTrace(trace(spans));
  assert.equal(t.maxDepth, 9_999);
  assert.equal(criticalPath(t).size, 10_000);
  assert.equal(visibleRows(t, new Set()).length, 10_000);
});

test("self time per service subtracts the time covered by children, overlaps counted once", () => {
  const t = buildTrace(trace([
    ["1", "", "front", 0, 100],
    ["2", "1", "back", 10, 50],
    ["3", "1", "back", 30, 70],
    ["4", "1", "back", 80, 90, 2],
  ]));
  const rows = serviceBreakdown(t);
  assert.deepEqual(rows, [
    // back: 40 + 40 + 10 = 90 (its spans have no children)
    { service: "back", spans: 3, errors: 1, selfNanos: 90 },
    // front: 100 minus the union [10,70] ∪ [80,90] = 100 - 70 = 30
    { service: "front", spans: 1, errors: 0, selfNanos: 30 },
  ]);
});

test("waterfall axis ticks fall on round durations", () => {
  assert.deepEqual(niceTicks(103_000_000), [0, 20_000_000, 40_000_000, 60_000_000, 80_000_000, 100_000_000]);
  assert.deepEqual(niceTicks(5_000_000_000), [0, 1e9, 2e9, 3e9, 4e9, 5e9]);
  assert.deepEqual(niceTicks(7), [0, 2, 4, 6]);
});

test("find in trace matches names, services, IDs and attributes, any case", () => {
  const response = trace([["1", "", "Front", 0, 100], ["2", "1", "back", 10, 40]]);
  const spans = (response.trace!.resourceSpans![1].scopeSpans![0].spans![0].attributes = [{ key: "user.id", value: { stringValue: "U42" } }]);
  void spans;
  const t = buildTrace(response);
  assert.deepEqual(findSpans(t, "front"), [0]);
  assert.deepEqual(findSpans(t, "OP "), [0, 1]);
  assert.deepEqual(findSpans(t, "user.id=u4"), [1]);
  assert.deepEqual(findSpans(t, t.spans[1].spanId), [1]);
  assert.deepEqual(findSpans(t, "  "), []);
});
