// What the alerts, SLO and service pages and the login derive from the API's answers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { basicAuthorization } from "../src/api";
import type { InsightsGraph, PromAlert, RuleGroup } from "../src/api";
import { durationSecs, formatSeconds, insightsParams, isTraceql, ruleOfAlert, ruleStateCounts } from "../src/alerts/model";
import { serviceInstances } from "../src/service/instances";

test("a rule is TraceQL exactly when it pipes outside its strings", () => {
  assert.equal(isTraceql('{ resource.service.name = "frontend" && status = error } | rate() by (resource.service.name) > 0'), true);
  assert.equal(isTraceql("{ } | quantile_over_time(duration, .99) > 2"), true);
  assert.equal(isTraceql('sum(rate(calls_total{code=~"5..|4.."}[5m])) > 0'), false);
  assert.equal(isTraceql('{__name__="up"} == 0'), false);
  assert.equal(isTraceql("vector(1)"), false);
});

const alert = (labels: Record<string, string>, extra: Partial<PromAlert> = {}): PromAlert => ({ labels, annotations: {}, state: "firing", activeAt: "2026-01-01T10:00:00Z", value: "1e+00", ...extra });

const GROUPS: RuleGroup[] = [
  {
    name: "g1", file: "f", interval: 60, evaluationTime: 0, lastEvaluation: "",
    rules: [
      { type: "alerting", name: "A", query: "vector(1)", health: "ok", evaluationTime: 0, lastEvaluation: "", state: "firing", duration: 0, alerts: [alert({ alertname: "A", pod: "p1" })] },
      { type: "recording", name: "r", query: "x", health: "ok", evaluationTime: 0, lastEvaluation: "" },
    ],
  },
  {
    name: "g2", file: "f", interval: 60, evaluationTime: 0, lastEvaluation: "",
    rules: [
      { type: "alerting", name: "A", query: "vector(2)", health: "ok", evaluationTime: 0, lastEvaluation: "", state: "pending", duration: 300, alerts: [alert({ alertname: "A", pod: "p2" }, { state: "pending" })] },
      { type: "alerting", name: "B", query: "absent(y)", health: "err", evaluationTime: 0, lastEvaluation: "", state: "inactive", duration: 90 },
    ],
  },
];

test("an alert belongs to the rule listing the same labels, not just the same name", () => {
  assert.equal(ruleOfAlert(GROUPS, alert({ alertname: "A", pod: "p2" }))?.rule.query, "vector(2)");
  assert.equal(ruleOfAlert(GROUPS, alert({ pod: "p1", alertname: "A" }))?.group.name, "g1");
  assert.equal(ruleOfAlert(GROUPS, alert({ alertname: "A" })), undefined);
  assert.deepEqual(ruleStateCounts(GROUPS), { firing: 1, pending: 1, inactive: 1 });
});

test("insights opens on the root-cause analysis's window, else around the alert's start", () => {
  const activeSecs = Date.parse("2026-01-01T10:00:00Z") / 1000;
  assert.deepEqual(insightsParams(alert({}), activeSecs + 600), { from: String(activeSecs - 1800), to: String(activeSecs + 600) });
  assert.deepEqual(insightsParams(alert({}), activeSecs + 86400), { from: String(activeSecs - 1800), to: String(activeSecs + 1800) });
  const explained = alert({}, { annotations: { root_cause_url: "http://andante.example:3200/ui/insights?from=100&to=200&cause=service%3Acart" } });
  assert.deepEqual(insightsParams(explained, activeSecs), { from: "100", to: "200", cause: "service:cart" });
});

test("Prometheus durations order SLO windows", () => {
  assert.deepEqual(["1d", "1h", "2h", "30d", "30m", "3d", "5m", "6h", "1h30m"].sort((a, b) => durationSecs(a) - durationSecs(b)), ["5m", "30m", "1h", "1h30m", "2h", "6h", "1d", "3d", "30d"]);
  assert.ok(Number.isNaN(durationSecs("soon")));
});

test("durations in seconds read like Prometheus'", () => {
  assert.equal(formatSeconds(0), "0s");
  assert.equal(formatSeconds(90), "1m30s");
  assert.equal(formatSeconds(3600), "1h");
  assert.equal(formatSeconds(0.5), "0.5s");
  assert.equal(formatSeconds(86400 + 61), "1d1m1s");
});

test("a service's instances carry their node and versions, the troubled first", () => {
  const graph: InsightsGraph = {
    entities: [
      { id: "service:cart", kind: "service", name: "cart", rate: 2, errorRate: 0.1, p50Ms: 5, p99Ms: 9, assertions: 1 },
      { id: "instance:cart:cart-0", kind: "instance", name: "cart-0", service: "cart", rate: 1, errorRate: 0, p50Ms: 5, p99Ms: 8, assertions: 0 },
      { id: "instance:cart:cart-1", kind: "instance", name: "cart-1", service: "cart", rate: 1, errorRate: 0.2, p50Ms: 6, p99Ms: 9, assertions: 0 },
      { id: "instance:cart:cart-2", kind: "instance", name: "cart-2", service: "cart", rate: 0.1, errorRate: 0, p50Ms: 6, p99Ms: 9, assertions: 2 },
      { id: "instance:web:cart-0", kind: "instance", name: "cart-0", service: "web", rate: 1, errorRate: 0, p50Ms: 1, p99Ms: 2, assertions: 0 },
      { id: "node:n1", kind: "node", name: "n1", rate: 1, errorRate: 0, p50Ms: 1, p99Ms: 2, assertions: 0 },
    ],
    relations: [
      { kind: "HOSTED_ON", from: "instance:cart:cart-0", to: "node:n1" },
      { kind: "RUNS_ON", from: "service:cart", to: "instance:cart:cart-0" },
    ],
    deploys: [
      { service: "cart", version: "1.4", firstSeen: "1767261600000000000", instances: ["cart-0", "cart-1"] },
      { service: "cart", version: "1.5", firstSeen: "1767261900000000000", instances: ["cart-1"] },
      { service: "web", version: "9", firstSeen: "1767261900000000000", instances: ["cart-0"] },
    ],
  };
  const rows = serviceInstances(graph, "cart");
  assert.deepEqual(rows.map((r) => [r.name, r.node, r.versions]), [
    ["cart-2", undefined, []],
    ["cart-1", undefined, ["1.5", "1.4"]],
    ["cart-0", "n1", ["1.4"]],
  ]);
  assert.deepEqual(serviceInstances(graph, "nope"), []);
});

test("basic credentials are base64 of UTF-8 user:password, the password may hold colons", () => {
  assert.equal(basicAuthorization("collector", "pass:word"), `Basic ${Buffer.from("collector:pass:word").toString("base64")}`);
  assert.equal(basicAuthorization("zoë", "ünïcode"), `Basic ${Buffer.from("zoë:ünïcode", "utf8").toString("base64")}`);
});
