//! TraceQL metrics over HTTP, in Tempo's wire format: `/api/metrics/query_range` answers
//! `QueryRangeResponse` (`series[].labels` as typed `KeyValue`s, `samples[].timestampMs` as
//! strings, a sample whose value is 0 carries no `value` key), `/api/metrics/query` answers
//! `QueryInstantResponse` (`series[].{labels,value}`, which Grafana decodes strictly).
//!
//! Parameters as Tempo: `q` (or the legacy `query`), `start`/`end` (Unix seconds, Unix
//! nanoseconds or RFC 3339; default the last `since`, 1 h), `step` (a duration; default range /
//! 240 snapped up to a 1 s…1 h grid), `exemplars` (or `with(exemplars=true)`; at most 100, each
//! labelled `trace:id`). Ranges over 24 h and more than 10 000 intervals are refused.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use andante_query::metrics::{MetricsRequest, MetricsResult};
use andante_traceql::metrics::LabelValue;
use andante_traceql::{parse_metrics_expr, Intervals};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::tenant::query_tenants;
use crate::{ApiError, SharedState};

const MAX_RANGE: Duration = Duration::from_secs(24 * 3600);
const MAX_INTERVALS: u64 = andante_query::metrics::MAX_INTERVALS as u64;
const STEP_GRID_SECS: &[u64] = &[1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
/// Tempo's cap on exemplars per query (`max_exemplars`).
const MAX_EXEMPLARS: usize = 100;

/// How many exemplars to return: the `exemplars` parameter, else the `with(exemplars=…)` hint
/// (`true` means the cap), at most [`MAX_EXEMPLARS`].
fn exemplar_count(
    params: &HashMap<String, String>,
    query: &andante_traceql::MetricsQuery,
) -> Result<usize, ApiError> {
    use andante_traceql::ast::Static;
    if let Some(text) = params
        .get("exemplars")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        let count: usize = text.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "invalid exemplars `{text}`: expected a whole number"
            ))
        })?;
        return Ok(count.min(MAX_EXEMPLARS));
    }
    Ok(match query.search.hint("exemplars") {
        Some(Static::Bool(true)) => MAX_EXEMPLARS,
        Some(Static::Int(count)) => (*count).clamp(0, MAX_EXEMPLARS as i64) as usize,
        _ => 0,
    })
}

/// `start`/`end`: Unix seconds (fractions allowed), Unix nanoseconds, or RFC 3339.
fn timestamp(name: &str, text: &str) -> Result<u64, ApiError> {
    let text = text.trim();
    if let Ok(number) = text.parse::<u64>() {
        // Tempo's rule: a number too large for seconds is nanoseconds.
        return Ok(if number > 10_000_000_000 {
            number
        } else {
            number * 1_000_000_000
        });
    }
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Ok((seconds * 1e9) as u64);
        }
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .and_then(|nanos| u64::try_from(nanos).ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid {name} `{text}`: expected Unix seconds, Unix nanoseconds or RFC 3339"
            ))
        })
}

fn duration_param(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => match andante_model::parse_go_duration(text).ok().or_else(|| {
            // Seconds as a number; an infinite or overflowing one is not a step.
            text.parse::<f64>()
                .ok()
                .map(|seconds| seconds * 1e9)
                .filter(|nanos| nanos.is_finite() && *nanos < i64::MAX as f64)
                .map(|nanos| nanos as i64)
        }) {
            Some(nanos) if nanos > 0 => Ok(Some(nanos as u64)),
            _ => Err(ApiError::bad_request(format!(
                "invalid {name} `{text}`: expected a positive duration such as 30s"
            ))),
        },
    }
}

/// Tempo's default step: about 240 points over the range, snapped up to a round step.
pub fn default_step(range_nanos: u64) -> u64 {
    let wanted_secs = (range_nanos / 240).div_ceil(1_000_000_000).max(1);
    let snapped = STEP_GRID_SECS
        .iter()
        .copied()
        .find(|&grid| grid >= wanted_secs)
        .unwrap_or(3600);
    snapped * 1_000_000_000
}

struct Window {
    start: u64,
    end: u64,
}

fn window(params: &HashMap<String, String>) -> Result<Window, ApiError> {
    let now = andante_model::now_unix_nanos();
    let end = match params.get("end").filter(|v| !v.trim().is_empty()) {
        Some(text) => timestamp("end", text)?,
        None => now,
    };
    let start = match params.get("start").filter(|v| !v.trim().is_empty()) {
        Some(text) => timestamp("start", text)?,
        None => {
            end.saturating_sub(duration_param(params, "since")?.unwrap_or(3600 * 1_000_000_000))
        }
    };
    if end <= start {
        return Err(ApiError::bad_request(
            "invalid time range: end must be after start",
        ));
    }
    if end - start > MAX_RANGE.as_nanos() as u64 {
        return Err(ApiError::bad_request(format!(
            "range of {}s exceeds the maximum of 24h for TraceQL metrics",
            (end - start) / 1_000_000_000
        )));
    }
    Ok(Window { start, end })
}

fn query_text(params: &HashMap<String, String>) -> Result<String, ApiError> {
    params
        .get("q")
        .or_else(|| params.get("query"))
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("missing TraceQL metrics query: pass `q`, e.g. q={} | rate()")
        })
}

/// A double as protobuf JSON writes it: NaN and infinities as strings (JSON has no such numbers).
fn number(value: f64) -> Value {
    if value.is_nan() {
        json!("NaN")
    } else if value.is_infinite() {
        json!(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(value)
    }
}

fn label_json(name: &str, value: &LabelValue) -> Value {
    let label = crate::tempopb::label(name, value);
    json!({ "key": label.key, "value": label.value.as_ref().map(crate::tempo_json::any_value).unwrap_or_else(|| json!({})) })
}

fn stats_json(result: &MetricsResult) -> Value {
    let stats = &result.stats;
    let mut out = Map::new();
    // gogo-protobuf JSON: zero values are left out, 64-bit integers are strings.
    for (name, value, as_string) in [
        ("inspectedTraces", stats.inspected_traces, false),
        ("inspectedBytes", stats.inspected_bytes, true),
        ("inspectedSpans", stats.inspected_spans, true),
        ("totalBlocks", stats.total_blocks, false),
        ("completedJobs", stats.completed_jobs, false),
        ("totalJobs", stats.total_jobs, false),
    ] {
        if value != 0 {
            out.insert(
                name.to_owned(),
                if as_string {
                    json!(value.to_string())
                } else {
                    json!(value)
                },
            );
        }
    }
    Value::Object(out)
}

fn with_status(mut body: Value, result: &MetricsResult) -> Value {
    if let (Some(message), Some(object)) = (&result.partial_message, body.as_object_mut()) {
        object.insert("status".to_owned(), json!("PARTIAL"));
        object.insert("message".to_owned(), json!(message));
    }
    body
}

pub(crate) async fn run(
    state: &SharedState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    instant: bool,
) -> Result<(MetricsResult, Intervals), ApiError> {
    let tenants = query_tenants(headers, state.config.multitenancy_enabled)?;
    let text = query_text(params)?;
    let expr = parse_metrics_expr(&text)
        .map_err(|error| ApiError::bad_request(format!("invalid TraceQL query: {error}")))?;
    let Some(first) = expr.queries().first().map(|query| (*query).clone()) else {
        return Err(ApiError::bad_request(
            "invalid TraceQL query: no metrics query in the expression",
        ));
    };
    let window = window(params)?;
    let intervals = if instant {
        Intervals::instant(window.start, window.end)
    } else {
        let step = duration_param(params, "step")?
            .unwrap_or_else(|| default_step(window.end - window.start));
        if (window.end - window.start) / step > MAX_INTERVALS {
            return Err(ApiError::bad_request(format!(
                "step {}s gives more than {MAX_INTERVALS} intervals: use a larger step",
                step / 1_000_000_000
            )));
        }
        Intervals::range(window.start, window.end, step)
    };
    let max_exemplars = if instant {
        0
    } else {
        exemplar_count(params, &first)?
    };
    let limits = state.config.query;
    let template = MetricsRequest {
        query: first,
        intervals,
        deadline: Some(Instant::now() + limits.timeout),
        max_exemplars,
        max_series: limits.max_metrics_series,
        max_bytes: limits.max_bytes_per_query,
        source: Some((text.as_str().into(), 0)),
    };
    let result = state.querier.metrics_expr(&tenants, &expr, &template).await;
    if let Some(message) = &result.partial_message {
        tracing::warn!(%message, "partial metrics result");
    }
    Ok((result, intervals))
}

/// Answers the rule manager's `traceql:` rules with the same querier and limits as
/// `/api/metrics/query`: one value per series over the rule's window.
pub struct TraceqlRuleSource {
    querier: andante_query::Querier,
    limits: crate::QueryLimits,
    runtime: tokio::runtime::Handle,
}

impl TraceqlRuleSource {
    /// `runtime` runs the query; rules call in from blocking threads.
    pub fn new(
        querier: andante_query::Querier,
        limits: crate::QueryLimits,
        runtime: tokio::runtime::Handle,
    ) -> TraceqlRuleSource {
        TraceqlRuleSource {
            querier,
            limits,
            runtime,
        }
    }
}

fn label_text(value: &LabelValue) -> String {
    match value {
        LabelValue::Nil => "nil".to_owned(),
        LabelValue::String(text) => text.clone(),
        LabelValue::Int(number) => number.to_string(),
        LabelValue::Float(bits) => andante_tsdb::labels::float_text(f64::from_bits(*bits)),
        LabelValue::Bool(flag) => flag.to_string(),
    }
}

impl andante_rules::TraceqlSource for TraceqlRuleSource {
    fn instant(
        &self,
        tenant: &str,
        query: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<andante_rules::group::TraceqlSample>, String> {
        let tenant = andante_model::TenantId::new(tenant).map_err(|error| error.to_string())?;
        let expr =
            parse_metrics_expr(query).map_err(|error| format!("invalid TraceQL query: {error}"))?;
        let first = expr
            .queries()
            .first()
            .map(|query| (*query).clone())
            .ok_or("no metrics query in the expression")?;
        let to_nanos = |ms: i64| u64::try_from(ms).unwrap_or(0) * 1_000_000;
        let template = MetricsRequest {
            query: first,
            intervals: Intervals::instant(to_nanos(start_ms), to_nanos(end_ms)),
            deadline: Some(Instant::now() + self.limits.timeout),
            max_exemplars: 0,
            max_series: self.limits.max_metrics_series,
            max_bytes: self.limits.max_bytes_per_query,
            source: Some((query.into(), 0)),
        };
        let tenants = andante_model::TenantSet::one(tenant);
        let result = self
            .runtime
            .block_on(self.querier.metrics_expr(&tenants, &expr, &template));
        if let Some(message) = result.partial_message {
            // A partial answer would make an alert fire or resolve on missing data.
            return Err(format!("the TraceQL query answered partially: {message}"));
        }
        Ok(result
            .series
            .into_iter()
            .filter_map(|series| {
                let value = series.samples.first().copied().flatten()?;
                let labels = series
                    .labels
                    .iter()
                    .map(|(name, value)| (name.clone(), label_text(value)))
                    .collect();
                Some((labels, value))
            })
            .collect())
    }
}

/// One sample of a range answer, written straight to the body (a `serde_json::Value` per sample
/// was most of a cheap query's time): `timestampMs` as a string, no `value` for 0, as Tempo.
struct RangeSample {
    timestamp_ms: i64,
    value: f64,
}

impl serde::Serialize for RangeSample {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("timestampMs", &self.timestamp_ms.to_string())?;
        if self.value != 0.0 {
            map.serialize_entry("value", &number(self.value))?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct RangeSeries {
    labels: Vec<Value>,
    samples: Vec<RangeSample>,
    exemplars: Vec<Value>,
}

#[derive(serde::Serialize)]
struct RangeBody {
    series: Vec<RangeSeries>,
    /// `metrics`, and `status`/`message` when partial.
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

pub(crate) async fn query_range(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (result, intervals) = run(&state, &headers, &params, false).await?;
    let series = result
        .series
        .iter()
        .map(|series| RangeSeries {
            labels: series
                .labels
                .iter()
                .map(|(name, value)| label_json(name, value))
                .collect(),
            samples: series
                .samples
                .iter()
                .enumerate()
                .filter_map(|(k, sample)| {
                    Some(RangeSample {
                        timestamp_ms: intervals.end_millis(k),
                        value: (*sample)?,
                    })
                })
                .collect(),
            exemplars: series
                .exemplars
                .iter()
                .map(|e| {
                    json!({
                        "labels": [label_json("trace:id", &LabelValue::String(hex::encode(e.trace_id)))],
                        "value": e.value,
                        "timestampMs": e.timestamp_ms.to_string(),
                    })
                })
                .collect(),
        })
        .collect();
    let rest = match with_status(json!({ "metrics": stats_json(&result) }), &result) {
        Value::Object(rest) => rest,
        _ => serde_json::Map::new(),
    };
    Ok(Json(RangeBody { series, rest }).into_response())
}

pub(crate) async fn query_instant(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (result, _) = run(&state, &headers, &params, true).await?;
    let series: Vec<Value> = result
        .series
        .iter()
        .filter_map(|series| {
            // compare()'s `__meta_error` markers carry no samples; they are listed all the same.
            let value = match series.samples.first() {
                Some(sample) => (*sample)?,
                None => 0.0,
            };
            let labels: Vec<Value> = series
                .labels
                .iter()
                .map(|(name, value)| label_json(name, value))
                .collect();
            Some(if value == 0.0 {
                json!({ "labels": labels })
            } else {
                json!({ "labels": labels, "value": number(value) })
            })
        })
        .collect();
    Ok(Json(with_status(
        json!({ "series": series, "metrics": stats_json(&result) }),
        &result,
    ))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_go_durations_or_finite_seconds() {
        let step = |text: &str| {
            duration_param(
                &HashMap::from([("step".to_owned(), text.to_owned())]),
                "step",
            )
        };
        assert_eq!(step("30s").unwrap(), Some(30_000_000_000));
        assert_eq!(step("1m30s").unwrap(), Some(90_000_000_000));
        assert_eq!(step("15").unwrap(), Some(15_000_000_000));
        assert_eq!(step("0.5").unwrap(), Some(500_000_000));
        for bad in [
            "1e400",
            "inf",
            "NaN",
            "-1s",
            "0",
            "1e10",
            "9999999999h",
            "1.5.5s",
        ] {
            assert!(step(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_and_default_steps() {
        assert_eq!(
            timestamp("start", "1700000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            timestamp("start", "1700000000123456789").unwrap(),
            1_700_000_000_123_456_789
        );
        assert_eq!(
            timestamp("start", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(timestamp("start", "soon").is_err());
        let hour = 3600 * 1_000_000_000;
        assert_eq!(default_step(hour), 15_000_000_000, "1 h / 240 = 15 s");
        assert_eq!(
            default_step(24 * hour),
            600_000_000_000,
            "24 h / 240 = 6 min → 10 min"
        );
        assert_eq!(default_step(60_000_000_000), 1_000_000_000);
    }
}
