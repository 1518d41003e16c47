// The streamed search's NDJSON reader: lines cut anywhere by the network (inside a line, inside a
// UTF-8 character, between the newline and the next line) come out whole and in order.
import assert from "node:assert/strict";
import { test } from "node:test";
import { NdjsonLines } from "../src/explore/ndjson";

const LINES = [
  { traces: [{ traceID: "a1", rootServiceName: "café" }], metrics: { completedJobs: 1, totalJobs: 3 } },
  { traces: [], metrics: { completedJobs: 2, totalJobs: 3 } },
  { traces: [{ traceID: "b2", rootTraceName: "GET /π" }], metrics: { completedJobs: 3, totalJobs: 3 }, status: "PARTIAL", message: "1 block unreadable" },
];
const BYTES = new TextEncoder().encode(LINES.map((line) => JSON.stringify(line) + "\n").join(""));

function readInChunks(cuts: number[]): unknown[] {
  const reader = new NdjsonLines();
  const out: unknown[] = [];
  let start = 0;
  for (const cut of [...cuts, BYTES.length]) {
    out.push(...reader.push(BYTES.slice(start, cut)));
    start = cut;
  }
  out.push(...reader.finish());
  return out;
}

test("every way of cutting the stream in two gives the same lines", () => {
  for (let cut = 0; cut <= BYTES.length; cut++) assert.deepEqual(readInChunks([cut]), LINES, `cut at byte ${cut}`);
});

test("one byte at a time, including the halves of multi-byte characters", () => {
  const cuts = Array.from({ length: BYTES.length - 1 }, (_, i) => i + 1);
  assert.deepEqual(readInChunks(cuts), LINES);
});

test("a line is handed out as soon as its newline arrives, not before", () => {
  const reader = new NdjsonLines();
  const firstEnd = BYTES.indexOf(10);
  assert.deepEqual(reader.push(BYTES.slice(0, firstEnd)), []);
  assert.deepEqual(reader.push(BYTES.slice(firstEnd, firstEnd + 1)), [LINES[0]]);
});

test("a last line without a newline, blank lines, and a broken line", () => {
  const reader = new NdjsonLines();
  assert.deepEqual(reader.push(new TextEncoder().encode('\n{"a":1}\n\n{"b":')), [{ a: 1 }]);
  assert.deepEqual(reader.push(new TextEncoder().encode("2}")), []);
  assert.deepEqual(reader.finish(), [{ b: 2 }]);
  assert.throws(() => new NdjsonLines().push(new TextEncoder().encode("{oops\n")), /not JSON: \{oops/);
});
