// The queries behind the service page's RED panels, for both of its sources: Tempo's span-metrics
// series in the series store (PromQL, as Grafana's Tempo RED dashboards ask them) and TraceQL
// metrics computed from the spans themselves.

/** A double-quoted string literal, valid in PromQL and TraceQL alike. */
export function quote(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** ~120 points across the range, on a whole number of seconds. */
export function stepSecsFor(startSecs: number, endSecs: number): number {
  return Math.max(1, Math.round((endSecs - startSecs) / 120));
}

/** The times of the points: multiples of the step, so the same range asks the same points again. */
export function stepTimes(startSecs: number, endSecs: number, stepSecs: number): number[] {
  const xs: number[] = [];
  for (let x = Math.floor(startSecs / stepSecs) * stepSecs; x <= endSecs; x += stepSecs) xs.push(x);
  return xs;
}

/** The generator's default collection interval: how far apart a span-metrics series' samples are. */
export const SCRAPE_SECS = 15;

/**
 * The window of `rate()`: a step plus four collections. Grafana's `$__rate_interval` is
 * max(step + scrape, 4 × scrape), enough for samples one scrape apart; but the generator writes a
 * new series' zero at the end of the minute before its first count, up to 60 s (4 × 15 s) earlier,
 * and a window that never holds both loses the series' first requests (all of a short burst).
 */
export function rateWindowSecs(stepSecs: number, scrapeSecs = SCRAPE_SECS): number {
  return stepSecs + 4 * scrapeSecs;
}

/** The requests a service answers: its server spans, and consumer spans for queue workers. */
export function entrySpans(service: string, extra = ""): string {
  return `{ resource.service.name = ${quote(service)} && (kind = server || kind = consumer)${extra} }`;
}

export const QUANTILES = [0.5, 0.95, 0.99];
export const ERROR_STATUS = 'status_code="STATUS_CODE_ERROR"';
export const CALLS = "traces_spanmetrics_calls_total";
export const LATENCY_BUCKET = "traces_spanmetrics_latency_bucket";

/** The matchers of the same spans in Tempo's span-metrics labels. */
export function spanMetricsMatchers(service: string, extra = ""): string {
  return `service=${quote(service)}, span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"${extra ? `, ${extra}` : ""}`;
}

export interface SpanMetricsQueries {
  /** Selects the service's series: present in the range exactly when span metrics cover it. */
  series: string;
  rate: string;
  errorRatio: string;
  /** One per QUANTILES entry, in seconds. */
  quantiles: string[];
  exemplars: string;
  operationRates: string;
  /** Instant queries at the range's end over the whole range, per `span_name`. */
  operationRequests: string;
  operationErrors: string;
  operationP99: string;
}

export function spanMetricsQueries(service: string, stepSecs: number, rangeSecs: number): SpanMetricsQueries {
  const all = spanMetricsMatchers(service);
  const errors = spanMetricsMatchers(service, ERROR_STATUS);
  const window = `[${rateWindowSecs(stepSecs)}s]`;
  const range = `[${Math.max(1, Math.round(rangeSecs))}s]`;
  const rate = (matchers: string, by = "") => `sum${by}(rate(${CALLS}{${matchers}}${window}))`;
  return {
    series: `${CALLS}{${all}}`,
    rate: rate(all),
    // A range with traffic but no errors has no error series at all: it is 0, not "no data".
    errorRatio: `(${rate(errors)} or vector(0)) / ${rate(all)}`,
    quantiles: QUANTILES.map((q) => `histogram_quantile(${q}, sum by (le) (rate(${LATENCY_BUCKET}{${all}}${window})))`),
    exemplars: `${LATENCY_BUCKET}{${all}}`,
    operationRates: rate(all, " by (span_name) "),
    operationRequests: `sum by (span_name) (increase(${CALLS}{${all}}${range}))`,
    operationErrors: `sum by (span_name) (increase(${CALLS}{${errors}}${range}))`,
    operationP99: `histogram_quantile(0.99, sum by (span_name, le) (increase(${LATENCY_BUCKET}{${all}}${range})))`,
  };
}

export interface TraceqlQueries {
  rate: string;
  errorRate: string;
  quantiles: string;
  operationRates: string;
  /** Instant queries over the whole range, per span `name`. */
  operationRequests: string;
  operationErrors: string;
  operationP99: string;
}

export function traceqlQueries(service: string): TraceqlQueries {
  const all = entrySpans(service);
  const errors = entrySpans(service, " && status = error");
  return {
    rate: `${all} | rate()`,
    errorRate: `${errors} | rate()`,
    quantiles: `${all} | quantile_over_time(duration, ${QUANTILES.map((q) => String(q).replace(/^0/, "")).join(", ")})`,
    operationRates: `${all} | rate() by (name)`,
    operationRequests: `${all} | count_over_time() by (name)`,
    operationErrors: `${errors} | count_over_time() by (name)`,
    operationP99: `${all} | quantile_over_time(duration, .99) by (name)`,
  };
}

/** A Prometheus sample value: `NaN` (0/0, a quantile of no requests) and infinities are no data. */
export function promNumber(text: string): number | null {
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}

/** A matrix series' values at `xs` (seconds); a time it has no sample at is no data. */
export function alignPromValues(values: [number, string][] | undefined, xs: number[]): (number | null)[] {
  const byTime = new Map((values ?? []).map(([t, v]) => [Math.round(t), promNumber(v)]));
  return xs.map((x) => byTime.get(x) ?? null);
}
