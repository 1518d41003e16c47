// What the alerts and SLO pages derive from Prometheus' rule and alert listings: which language
// a rule is written in, which rule an alert belongs to, and where its links go. Pure, so the
// unit tests run it without a browser.
import type { AlertingRule, PromAlert, Rule, RuleGroup } from "../api";

/**
 * Whether a rule's expression is TraceQL metrics (a `traceql:` rule) rather than PromQL. The
 * listing gives only the text, but the two cannot be confused: a TraceQL metrics query always
 * pipes a spanset into a function (`{ … } | rate()`), and PromQL has no `|` outside its strings.
 */
export function isTraceql(query: string): boolean {
  const withoutStrings = query.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  return withoutStrings.includes("|");
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

/** The alerting rule (and its group) whose current alerts include `alert` (same label set). */
export function ruleOfAlert(groups: RuleGroup[], alert: PromAlert): { group: RuleGroup; rule: AlertingRule } | undefined {
  for (const group of groups) {
    for (const rule of group.rules) {
      if (rule.type === "alerting" && (rule.alerts ?? []).some((candidate) => sameLabels(candidate.labels, alert.labels))) return { group, rule };
    }
  }
  return undefined;
}

export type RuleState = "firing" | "pending" | "inactive";
export const RULE_STATES: RuleState[] = ["firing", "pending", "inactive"];

/** Alerting rules per state, as Prometheus' alerts page counts them. */
export function ruleStateCounts(groups: RuleGroup[]): Record<RuleState, number> {
  const counts: Record<RuleState, number> = { firing: 0, pending: 0, inactive: 0 };
  for (const group of groups) for (const rule of group.rules) if (rule.type === "alerting") counts[rule.state] += 1;
  return counts;
}

/** Whether a rule is shown under the state filter (`""` shows every rule, recording ones too). */
export function ruleMatchesState(rule: Rule, state: string): boolean {
  return state === "" || (rule.type === "alerting" && rule.state === state);
}

/** The metrics-explore query string for a rule's expression, in its own language. */
export function expressionParams(query: string): { lang: string; q: string } {
  return { lang: isTraceql(query) ? "traceql" : "promql", q: query };
}

/** How far before an alert became active its insights window starts: what the root-cause
 * analysis of a firing alert reads too (30 minutes). */
const LOOK_BACK_SECS = 30 * 60;

/**
 * The insights page's window for an alert: the one its root-cause analysis used when the alert
 * carries `root_cause_url` (an absolute link under `rules.external_url`, whose query is the same
 * page's), else from 30 minutes before `activeAt` to 30 minutes after it, or now if sooner.
 */
export function insightsParams(alert: PromAlert, nowSecs: number): Record<string, string> {
  const url = alert.annotations?.root_cause_url;
  if (url) {
    try {
      const params = new URL(url, "http://andante.invalid").searchParams;
      const from = params.get("from");
      const to = params.get("to");
      if (from && to) {
        const cause = params.get("cause");
        return cause ? { from, to, cause } : { from, to };
      }
    } catch {
      /* not a URL: fall back to the alert's own time */
    }
  }
  const activeSecs = Math.floor(Date.parse(alert.activeAt) / 1000);
  return { from: String(activeSecs - LOOK_BACK_SECS), to: String(Math.max(activeSecs + 1, Math.min(nowSecs, activeSecs + LOOK_BACK_SECS))) };
}

/** Root-cause annotations, shown on their own rather than among the others. */
export const ROOT_CAUSE_ANNOTATIONS = ["root_cause", "root_causes", "root_cause_url"];

/** `for`/intervals given in seconds, written as Prometheus writes durations (`1m30s`, `0s`). */
export function formatSeconds(secs: number): string {
  if (!Number.isFinite(secs) || secs <= 0) return "0s";
  const parts: string[] = [];
  let rest = secs;
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  if (rest > 0 || parts.length === 0) parts.push(`${Number(rest.toFixed(3))}s`);
  return parts.join("");
}

/** A past moment relative to now: `12s ago`, `5m ago`, `3h ago`, `2d ago`. */
export function formatAgo(thenMs: number, nowMs: number): string {
  const secs = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (secs < 60) return `${secs}s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ago`;
  return `${Math.floor(secs / 86400)}d ago`;
}

/** Prometheus' zero time, which the listing gives for a rule never evaluated yet. */
export function neverEvaluated(rfc3339: string): boolean {
  return rfc3339.startsWith("0001-01-01");
}

const UNIT_SECS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };

/** A Prometheus duration (`5m`, `1h30m`, `30d`) in seconds; NaN when it is not one. */
export function durationSecs(text: string): number {
  if (!/^(\d+(ms|s|m|h|d|w|y))+$/.test(text)) return NaN;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g)) total += Number(amount) * UNIT_SECS[unit];
  return total;
}
