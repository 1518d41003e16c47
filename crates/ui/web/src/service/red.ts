// The service page's RED figures from whichever source has them: the span-metrics series in the
// series store when the generator wrote them for this service and range (cheap to read, as
// Grafana's RED dashboards read them), else TraceQL metrics over the spans (which works on every
// install, but reads every span of the range). Both give the same shape, so the page draws one way.
import { MetricsSeries, PromMatrix, PromVector, QueryInstantResponse, QueryRangeResponse, formatValue, metricsQueryInstant, metricsQueryRange, promExemplars, promQuery, promQueryRange, promSeries } from "../api";
import { Exemplar } from "../components/TimeSeries";
import { QUANTILES, alignPromValues, promNumber, spanMetricsQueries, stepSecsFor, stepTimes, traceqlQueries } from "./queries";

export type RedSource = "span-metrics" | "traceql";

export interface Operation {
  name: string;
  /** Requests per second at each point, for the sparkline. */
  rates: (number | null)[];
  /** Counts over the whole range (span metrics' `increase` extrapolates, so not always whole). */
  requests: number;
  errors: number;
  p99Secs: number | null;
}

export interface RedPanels {
  source: RedSource;
  xsSecs: number[];
  rate: (number | null)[];
  errorRatio: (number | null)[];
  quantiles: { label: string; values: (number | null)[] }[];
  exemplars: Exemplar[];
  operations: Operation[];
}

const quantileLabel = (q: number) => `p${Math.round(q * 100)}`;

export async function loadRed(service: string, startSecs: number, endSecs: number, signal: AbortSignal): Promise<RedPanels> {
  const stepSecs = stepSecsFor(startSecs, endSecs);
  const xsSecs = stepTimes(startSecs, endSecs, stepSecs);
  const queries = spanMetricsQueries(service, stepSecs, endSecs - startSecs);
  const present = await promSeries(queries.series, startSecs, endSecs, signal);
  if (present.data?.length) return fromSpanMetrics(service, startSecs, endSecs, stepSecs, xsSecs, signal);
  return fromTraceql(service, startSecs, endSecs, stepSecs, xsSecs, signal);
}

function byLabel<T extends { metric: Record<string, string> }>(result: T[] | undefined, label: string): Map<string, T> {
  return new Map((result ?? []).map((one) => [one.metric[label] ?? "", one]));
}

async function fromSpanMetrics(service: string, startSecs: number, endSecs: number, stepSecs: number, xsSecs: number[], signal: AbortSignal): Promise<RedPanels> {
  const queries = spanMetricsQueries(service, stepSecs, endSecs - startSecs);
  const range = (query: string) => promQueryRange(query, xsSecs[0], endSecs, stepSecs, signal);
  const instant = (query: string) => promQuery(query, endSecs, signal);
  const [rate, errorRatio, opsRates, opsRequests, opsErrors, opsP99, exemplarSeries, ...quantiles] = await Promise.all([
    range(queries.rate),
    range(queries.errorRatio),
    range(queries.operationRates),
    instant(queries.operationRequests),
    instant(queries.operationErrors),
    instant(queries.operationP99),
    promExemplars(queries.exemplars, startSecs, endSecs, signal),
    ...queries.quantiles.map(range),
  ] as const);
  const first = (matrix: PromMatrix) => alignPromValues(matrix.data?.result[0]?.values, xsSecs);
  const exemplars: Exemplar[] = [];
  for (const series of exemplarSeries) {
    for (const exemplar of series.exemplars) {
      const traceId = exemplar.labels.trace_id;
      const value = promNumber(exemplar.value);
      if (traceId && value !== null) exemplars.push({ timeSecs: exemplar.timestamp, value, traceId });
    }
  }
  const rates = byLabel((opsRates as PromMatrix).data?.result, "span_name");
  const errors = byLabel((opsErrors as PromVector).data?.result, "span_name");
  const p99s = byLabel((opsP99 as PromVector).data?.result, "span_name");
  const operations = ((opsRequests as PromVector).data?.result ?? []).map((row): Operation => {
    const name = row.metric.span_name ?? "";
    const errorSample = errors.get(name)?.value[1];
    const p99Sample = p99s.get(name)?.value[1];
    return {
      name,
      rates: alignPromValues(rates.get(name)?.values, xsSecs),
      requests: promNumber(row.value[1]) ?? 0,
      errors: errorSample === undefined ? 0 : promNumber(errorSample) ?? 0,
      p99Secs: p99Sample === undefined ? null : promNumber(p99Sample),
    };
  });
  return {
    source: "span-metrics",
    xsSecs,
    rate: first(rate as PromMatrix),
    errorRatio: first(errorRatio as PromMatrix),
    quantiles: QUANTILES.map((q, i) => ({ label: quantileLabel(q), values: first(quantiles[i] as PromMatrix) })),
    exemplars,
    operations: sortOperations(operations),
  };
}

function label(labels: MetricsSeries["labels"], key: string): string {
  return formatValue(labels?.find((kv) => kv.key === key)?.value);
}

/** Sample values aligned to `xs`; a missing value is 0 (proto3 JSON omits zeros) or, for
 * quantiles, no data. */
function alignTraceql(series: MetricsSeries | undefined, xs: number[], missing: 0 | null): (number | null)[] {
  const byTime = new Map((series?.samples ?? []).map((s) => [Math.round(Number(s.timestampMs) / 1000), s.value ?? missing]));
  return xs.map((x) => (byTime.has(x) ? byTime.get(x)! : missing));
}

async function fromTraceql(service: string, startSecs: number, endSecs: number, stepSecs: number, xsSecs: number[], signal: AbortSignal): Promise<RedPanels> {
  const queries = traceqlQueries(service);
  const range = (q: string, exemplars?: number) => metricsQueryRange(q, startSecs, endSecs, { step: `${stepSecs}s`, exemplars }, signal);
  const instant = (q: string) => metricsQueryInstant(q, startSecs, endSecs, signal);
  const [rate, errorRate, latency, opsRates, opsRequests, opsErrors, opsP99] = await Promise.all([
    range(queries.rate),
    range(queries.errorRate),
    range(queries.quantiles, 40),
    range(queries.operationRates),
    instant(queries.operationRequests),
    instant(queries.operationErrors),
    instant(queries.operationP99),
  ] as const);
  const rateValues = alignTraceql((rate as QueryRangeResponse).series?.[0], xsSecs, 0);
  const errorValues = alignTraceql((errorRate as QueryRangeResponse).series?.[0], xsSecs, 0);
  const quantiles = ((latency as QueryRangeResponse).series ?? [])
    .map((series) => ({ q: Number(label(series.labels, "p")), series }))
    .sort((a, b) => a.q - b.q)
    .map(({ q, series }) => ({ label: quantileLabel(q), values: alignTraceql(series, xsSecs, null) }));
  const exemplars: Exemplar[] = [];
  for (const series of (latency as QueryRangeResponse).series ?? []) {
    for (const exemplar of series.exemplars ?? []) {
      const traceId = label(exemplar.labels, "trace:id");
      if (traceId && exemplar.value !== undefined) exemplars.push({ timeSecs: Number(exemplar.timestampMs) / 1000, value: exemplar.value, traceId });
    }
  }
  const instantByName = (answer: QueryInstantResponse) => new Map((answer.series ?? []).map((s) => [label(s.labels, "name"), s.value ?? 0]));
  const rates = new Map(((opsRates as QueryRangeResponse).series ?? []).map((s) => [label(s.labels, "name"), s]));
  const errors = instantByName(opsErrors as QueryInstantResponse);
  const p99s = instantByName(opsP99 as QueryInstantResponse);
  const operations = ((opsRequests as QueryInstantResponse).series ?? []).map((row): Operation => {
    const name = label(row.labels, "name");
    return { name, rates: alignTraceql(rates.get(name), xsSecs, 0), requests: row.value ?? 0, errors: errors.get(name) ?? 0, p99Secs: p99s.get(name) ?? null };
  });
  return {
    source: "traceql",
    xsSecs,
    rate: rateValues,
    errorRatio: rateValues.map((r, i) => (r && r > 0 ? (errorValues[i] ?? 0) / r : null)),
    quantiles,
    exemplars,
    operations: sortOperations(operations),
  };
}

function sortOperations(operations: Operation[]): Operation[] {
  return operations.sort((a, b) => b.requests - a.requests || a.name.localeCompare(b.name));
}
