// The metrics page's pure parts: stacking sums, and what PromQL completion offers where.
import assert from "node:assert/strict";
import { test } from "node:test";
import { stackColumns } from "../src/components/stack";
import { firstMetric, promqlContext } from "../src/metrics/promql";

test("stacked lines are running totals; a gap stays a gap and adds nothing above it", () => {
  assert.deepEqual(
    stackColumns([
      [1, 2, null, 4],
      [10, null, 30, 40],
      [100, 200, 300, null],
    ]),
    [
      [1, 2, null, 4],
      [11, null, 30, 44],
      [111, 202, 330, null],
    ],
  );
  assert.deepEqual(stackColumns([]), []);
  assert.deepEqual(stackColumns([[0.5, NaN]]), [[0.5, null]]);
});

test("a name is offered for the word at the cursor, and everywhere on request", () => {
  assert.deepEqual(promqlContext("rate(traces_sp"), { kind: "name", prefix: "traces_sp" });
  assert.deepEqual(promqlContext("sum(rate(x[5m])) / su"), { kind: "name", prefix: "su" });
  assert.deepEqual(promqlContext("job:calls:ra"), { kind: "name", prefix: "job:calls:ra" });
  assert.deepEqual(promqlContext("rate(", "rate(", true), { kind: "name", prefix: "" });
  assert.equal(promqlContext("rate("), null, "not unasked after a bracket");
  assert.equal(promqlContext("rate(x[5"), null, "a range is not a name");
  assert.equal(promqlContext("x > 1"), null, "a number is not a name");
  assert.equal(promqlContext('label_replace(x, "ds'), null, "a string outside a selector is not a name");
});

test("label names inside a selector are of that metric, narrowed by the matchers before", () => {
  assert.deepEqual(promqlContext("calls_total{"), { kind: "labelName", prefix: "", selector: "calls_total" });
  assert.deepEqual(promqlContext('rate(calls_total{service="cart", sp'), { kind: "labelName", prefix: "sp", selector: 'calls_total{service="cart"}' });
  assert.deepEqual(promqlContext('{service=~"a|b", '), { kind: "labelName", prefix: "", selector: '{service=~"a|b"}' });
  assert.deepEqual(promqlContext('calls_total{service="{,}", '), { kind: "labelName", prefix: "", selector: 'calls_total{service="{,}"}' }, "brackets in a value do not count");
  assert.deepEqual(promqlContext("sum by (serv", "sum by (serv) (rate(calls_total[5m]))"), { kind: "labelName", prefix: "serv", selector: "calls_total" });
  assert.deepEqual(promqlContext("sum(rate(calls_total[5m])) without (a, "), { kind: "labelName", prefix: "", selector: "calls_total" });
});

test("label values: quoted or not, with the selector of the matchers before", () => {
  assert.deepEqual(promqlContext('calls_total{service="ca'), { kind: "labelValue", label: "service", prefix: "ca", quoted: true, selector: "calls_total" });
  assert.deepEqual(promqlContext("calls_total{service="), { kind: "labelValue", label: "service", prefix: "", quoted: false, selector: "calls_total" });
  assert.deepEqual(promqlContext('calls_total{span_kind!="SPAN_KIND_CLIENT", service=~"'), {
    kind: "labelValue",
    label: "service",
    prefix: "",
    quoted: true,
    selector: 'calls_total{span_kind!="SPAN_KIND_CLIENT"}',
  });
  assert.deepEqual(promqlContext('{job="a\\"b", x="'), { kind: "labelValue", label: "x", prefix: "", quoted: true, selector: '{job="a\\"b"}' });
});

test("the first metric of a query, past functions, groupings, selectors and strings", () => {
  assert.equal(firstMetric("sum by (service) (rate(traces_spanmetrics_calls_total[5m]))"), "traces_spanmetrics_calls_total");
  assert.equal(firstMetric('histogram_quantile(0.9, sum by (le) (rate(lat_bucket{a="x y"}[5m])))'), "lat_bucket");
  assert.equal(firstMetric("sum by (le) ("), "");
});
