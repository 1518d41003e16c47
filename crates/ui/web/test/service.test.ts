// The service page's queries: the rate window, the points asked for, and the PromQL and TraceQL
// each RED figure is read with.
import assert from "node:assert/strict";
import { test } from "node:test";
import { alignPromValues, promNumber, rateWindowSecs, spanMetricsQueries, stepSecsFor, stepTimes, traceqlQueries } from "../src/service/queries";

test("the rate window spans a step and four collections, so a new series' zero is in it", () => {
  const check = (stepSecs: number, scrapeSecs: number | undefined, expected: number) => assert.equal(rateWindowSecs(stepSecs, scrapeSecs), expected, `step ${stepSecs}`);
  check(1, undefined, 61);
  check(30, undefined, 90);
  check(720, undefined, 780);
  check(10, 1, 14);
});

test("points fall on multiples of the step and cover the range", () => {
  assert.equal(stepSecsFor(0, 3600), 30);
  assert.equal(stepSecsFor(0, 60), 1);
  assert.deepEqual(stepTimes(1005, 1100, 30), [990, 1020, 1050, 1080]);
  assert.deepEqual(stepTimes(1020, 1080, 30), [1020, 1050, 1080]);
});

test("span-metrics queries select the service's server and consumer spans", () => {
  const queries = spanMetricsQueries('my "svc"', 30, 3660);
  const selector = 'service="my \\"svc\\"", span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"';
  assert.equal(queries.series, `traces_spanmetrics_calls_total{${selector}}`);
  assert.equal(queries.rate, `sum(rate(traces_spanmetrics_calls_total{${selector}}[90s]))`);
  assert.equal(
    queries.errorRatio,
    `(sum(rate(traces_spanmetrics_calls_total{${selector}, status_code="STATUS_CODE_ERROR"}[90s])) or vector(0)) / sum(rate(traces_spanmetrics_calls_total{${selector}}[90s]))`,
  );
  assert.deepEqual(queries.quantiles, [0.5, 0.95, 0.99].map((q) => `histogram_quantile(${q}, sum by (le) (rate(traces_spanmetrics_latency_bucket{${selector}}[90s])))`));
  assert.equal(queries.exemplars, `traces_spanmetrics_latency_bucket{${selector}}`);
  assert.equal(queries.operationRates, `sum by (span_name) (rate(traces_spanmetrics_calls_total{${selector}}[90s]))`);
  assert.equal(queries.operationRequests, `sum by (span_name) (increase(traces_spanmetrics_calls_total{${selector}}[3660s]))`);
  assert.equal(queries.operationErrors, `sum by (span_name) (increase(traces_spanmetrics_calls_total{${selector}, status_code="STATUS_CODE_ERROR"}[3660s]))`);
  assert.equal(queries.operationP99, `histogram_quantile(0.99, sum by (span_name, le) (increase(traces_spanmetrics_latency_bucket{${selector}}[3660s])))`);
});

test("TraceQL queries ask the same of the spans", () => {
  const queries = traceqlQueries("cart");
  const all = '{ resource.service.name = "cart" && (kind = server || kind = consumer) }';
  const errors = '{ resource.service.name = "cart" && (kind = server || kind = consumer) && status = error }';
  assert.equal(queries.rate, `${all} | rate()`);
  assert.equal(queries.errorRate, `${errors} | rate()`);
  assert.equal(queries.quantiles, `${all} | quantile_over_time(duration, .5, .95, .99)`);
  assert.equal(queries.operationRequests, `${all} | count_over_time() by (name)`);
  assert.equal(queries.operationErrors, `${errors} | count_over_time() by (name)`);
});

test("Prometheus values: NaN and infinities are no data, missing times too", () => {
  assert.equal(promNumber("0.25"), 0.25);
  assert.equal(promNumber("1e+06"), 1e6);
  assert.equal(promNumber("NaN"), null);
  assert.equal(promNumber("+Inf"), null);
  assert.deepEqual(alignPromValues([[990, "1"], [1050.0, "NaN"], [1080, "0"]], [990, 1020, 1050, 1080]), [1, null, null, 0]);
  assert.deepEqual(alignPromValues(undefined, [990]), [null]);
});
