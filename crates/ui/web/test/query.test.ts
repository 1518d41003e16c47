// The TraceQL the UI writes and reads: the builder's query, the query-so-far sent with
// completion requests, the server's error position, and the URL's time ranges.
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildTraceql } from "../src/explore/Builder";
import { parseErrorPosition } from "../src/explore/errors";
import { queryBefore } from "../src/explore/traceql";
import { describeRange, formatDuration, resolveRange, resolveTime } from "../src/time";

const EMPTY = { service: "", spanName: "", status: "", minDuration: "", maxDuration: "", attributeKey: "", attributeValue: "" };

test("the builder writes one spanset with a condition per filled field", () => {
  assert.equal(buildTraceql(EMPTY), "{ }");
  assert.equal(
    buildTraceql({ ...EMPTY, service: "cart", spanName: 'say "hi"', status: "error", minDuration: "100ms", maxDuration: "2s" }),
    '{ resource.service.name = "cart" && name = "say \\"hi\\"" && status = error && duration >= 100ms && duration <= 2s }',
  );
  assert.equal(buildTraceql({ ...EMPTY, attributeKey: "http.status_code", attributeValue: "500" }), "{ .http.status_code = 500 }");
  assert.equal(buildTraceql({ ...EMPTY, attributeKey: "span.user.id", attributeValue: "u1" }), '{ span.user.id = "u1" }');
  assert.equal(buildTraceql({ ...EMPTY, attributeKey: "resource.k8s.pod.name" }), "{ resource.k8s.pod.name != nil }");
  assert.throws(() => buildTraceql({ ...EMPTY, minDuration: "fast" }), /Min duration/);
});

test("completion sends the filters typed before the condition being edited", () => {
  assert.equal(queryBefore("{ "), "{}");
  assert.equal(queryBefore('{ resource.service.name = "a" && '), '{ resource.service.name = "a" }');
  assert.equal(queryBefore('{ span.x = 1 || '), "{ span.x = 1 }");
  assert.equal(queryBefore('{ .a = 1 } >> { '), "{ .a = 1 } >> {}");
  assert.equal(queryBefore(""), "");
});

test("the server's parse error position is read from its message", () => {
  assert.deepEqual(parseErrorPosition("invalid TraceQL query: parse error at line 1, col 21: syntax error: unexpected `/`"), {
    message: "invalid TraceQL query: parse error at line 1, col 21: syntax error: unexpected `/`",
    line: 1,
    column: 21,
  });
  assert.deepEqual(parseErrorPosition("query timed out"), { message: "query timed out" });
});

test("time ranges: relative, absolute, and a reversed range made valid", () => {
  assert.equal(resolveTime("now", 1000), 1000);
  assert.equal(resolveTime("now-15m", 10_000), 10_000 - 900);
  assert.equal(resolveTime("now-2d", 200_000), 200_000 - 172_800);
  assert.equal(resolveTime("1700000000", 0), 1_700_000_000);
  assert.equal(resolveTime("yesterday", 0), undefined);
  const range = resolveRange("1700000100", "1700000000");
  assert.equal(range.endSecs, 1_700_000_000);
  assert.ok(range.startSecs < range.endSecs);
});

test("durations read at a sensible precision", () => {
  assert.equal(formatDuration(812), "812ns");
  assert.equal(formatDuration(12_345), "12.3µs");
  assert.equal(formatDuration(1_520_000_000), "1.52s");
  assert.equal(formatDuration(125_000_000_000), "2m 5s");
});

test("an absolute range names the end's date only when it is another day", () => {
  const tenLocal = Math.floor(new Date(2026, 0, 5, 10, 0, 0).getTime() / 1000);
  assert.equal(describeRange(String(tenLocal), String(tenLocal + 3600)), "2026-01-05 10:00:00 → 11:00:00");
  assert.equal(describeRange(String(tenLocal), String(tenLocal + 86400)), "2026-01-05 10:00:00 → 2026-01-06 10:00:00");
  assert.equal(describeRange("now-15m", null), "Last 15 minutes");
});
