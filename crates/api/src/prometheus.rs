//! The Prometheus-compatible read API over the generated series (`/prometheus/api/v1/*`), so
//! Grafana's Prometheus data source pointed at `http://andante:3200/prometheus` draws the service
//! graph and RED panels without a separate Prometheus.
//!
//! Wire format as Prometheus' HTTP API: `{"status":"success","data":…}`; errors
//! `{"status":"error","errorType":"bad_data","error":…}` with 400 (422 for execution errors).
//! Parameters come from the query string or, for POST, a form body (Grafana POSTs by default);
//! `time`/`start`/`end` are Unix seconds (fractions allowed) or RFC 3339; `step` is seconds or a
//! Prometheus duration.

use andante_tsdb::labels::float_text;
use andante_tsdb::promql::{self, QueryErrorKind, QueryValue};
use andante_tsdb::Labels;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use promql_parser::label::Matchers;
use promql_parser::parser::Expr;
use serde_json::{json, Map, Value};

use crate::tenant::query_tenants;
use crate::SharedState;

/// Default window for `/series`, `/labels` and label values when no `start`/`end` is given.
const DEFAULT_METADATA_WINDOW_MS: i64 = 24 * 3600 * 1000;

struct PromError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl PromError {
    fn bad(message: impl Into<String>) -> PromError {
        PromError {
            status: StatusCode::BAD_REQUEST,
            error_type: "bad_data",
            message: message.into(),
        }
    }
}

impl From<promql::QueryError> for PromError {
    fn from(error: promql::QueryError) -> Self {
        match error.kind {
            QueryErrorKind::BadData => PromError::bad(error.message),
            QueryErrorKind::Execution => PromError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                error_type: "execution",
                message: error.message,
            },
        }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"status": "error", "errorType": self.error_type, "error": self.message})),
        )
            .into_response()
    }
}

fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

/// Every parameter, from the query string and (for POST) the form body, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn read(method: &Method, query: Option<String>, body: &Bytes) -> Params {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        if method == Method::POST {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        Params(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn time(&self, name: &str, default_ms: i64) -> Result<i64, PromError> {
        match self.get(name) {
            None | Some("") => Ok(default_ms),
            Some(text) => parse_time(text).ok_or_else(|| {
                PromError::bad(format!(
                    "invalid parameter \"{name}\": cannot parse \"{text}\" to a valid timestamp"
                ))
            }),
        }
    }
}

fn now_ms() -> i64 {
    (andante_model::now_unix_nanos() / 1_000_000) as i64
}

/// Largest time or step magnitude accepted, in seconds: about ±292 million years, as far as
/// Prometheus' own timestamps reach (Go's `time.Time` in milliseconds). Beyond it milliseconds
/// no longer fit the arithmetic of a range query, and `-1e300` used to wrap into nonsense.
const MAX_TIME_SECS: f64 = 9.2e12;

fn parse_time(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds.abs() <= MAX_TIME_SECS)
            .then(|| (seconds * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn parse_step(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds > 0.0 && seconds <= MAX_TIME_SECS)
            .then(|| (seconds * 1000.0).round() as i64);
    }
    promql_parser::util::parse_duration(text)
        .ok()
        .map(|d| d.as_millis())
        .and_then(|ms| i64::try_from(ms).ok())
        .filter(|ms| *ms as f64 <= MAX_TIME_SECS * 1000.0)
}

/// A sample as the API writes it: seconds, and the value as Prometheus spells floats.
fn point(t_ms: i64, value: f64) -> Value {
    json!([t_ms as f64 / 1000.0, float_text(value)])
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(n, v)| (n.to_owned(), Value::String(v.to_owned())))
            .collect::<Map<_, _>>(),
    )
}

fn result_json(value: QueryValue) -> Value {
    match value {
        QueryValue::Scalar(t, v) => json!({"resultType": "scalar", "result": point(t, v)}),
        QueryValue::String(t, text) => {
            json!({"resultType": "string", "result": [t as f64 / 1000.0, text]})
        }
        QueryValue::Vector(t, samples) => json!({
            "resultType": "vector",
            "result": samples.iter().map(|s| json!({"metric": labels_json(&s.labels), "value": point(t, s.value)})).collect::<Vec<_>>(),
        }),
        QueryValue::Matrix(series) => json!({
            "resultType": "matrix",
            "result": series.iter().map(|s| json!({
                "metric": labels_json(&s.labels),
                "values": s.samples.iter().map(|&(t, v)| point(t, v)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
    }
}

/// The single tenant the request reads; the series store is per tenant.
fn tenant(state: &SharedState, headers: &HeaderMap) -> Result<String, PromError> {
    let tenants = query_tenants(headers, state.config.multitenancy_enabled).map_err(|error| {
        let status = error.status();
        let error_type = if status == StatusCode::UNAUTHORIZED {
            "unauthorized"
        } else {
            "bad_data"
        };
        PromError {
            status,
            error_type,
            message: error.message,
        }
    })?;
    let mut iter = tenants.iter();
    match (iter.next(), iter.next()) {
        (Some(one), None) => Ok(one.as_str().to_owned()),
        _ => Err(PromError::bad(
            "the Prometheus API reads one tenant at a time; X-Scope-OrgID names several",
        )),
    }
}

/// `match[]` selectors, parsed.
fn selectors(params: &Params) -> Result<Vec<Matchers>, PromError> {
    let mut out = Vec::new();
    for text in params.all("match[]") {
        let expr = promql::parse(text)
            .map_err(|e| PromError::bad(e.message.replacen("\"query\"", "\"match[]\"", 1)))?;
        let Expr::VectorSelector(selector) = expr else {
            return Err(PromError::bad(format!(
                "invalid parameter \"match[]\": `{text}` is not a series selector"
            )));
        };
        out.push(promql::selector_matchers(&selector));
    }
    Ok(out)
}

fn run_query(state: &SharedState, tenant: &str, params: &Params) -> Result<Response, PromError> {
    let query = params
        .get("query")
        .ok_or_else(|| PromError::bad("invalid parameter \"query\": no query given"))?;
    let time = params.time("time", now_ms())?;
    Ok(success(result_json(promql::instant_query(
        &state.metrics_store,
        tenant,
        query,
        time,
    )?)))
}

fn run_range(state: &SharedState, tenant: &str, params: &Params) -> Result<Response, PromError> {
    let query = params
        .get("query")
        .ok_or_else(|| PromError::bad("invalid parameter \"query\": no query given"))?;
    for required in ["start", "end"] {
        if params.get(required).is_none_or(str::is_empty) {
            return Err(PromError::bad(format!(
                "invalid parameter \"{required}\": no {required} given"
            )));
        }
    }
    let (start, end) = (params.time("start", 0)?, params.time("end", 0)?);
    let step_text = params
        .get("step")
        .ok_or_else(|| PromError::bad("invalid parameter \"step\": no step given"))?;
    let step = parse_step(step_text).ok_or_else(|| {
        PromError::bad(format!(
            "invalid parameter \"step\": cannot parse \"{step_text}\" to a valid duration"
        ))
    })?;
    Ok(success(result_json(promql::range_query(
        &state.metrics_store,
        tenant,
        query,
        start,
        end,
        step,
    )?)))
}

fn metadata_window(params: &Params) -> Result<(i64, i64), PromError> {
    let end = params.time("end", now_ms())?;
    let start = params.time("start", end - DEFAULT_METADATA_WINDOW_MS)?;
    Ok((start, end))
}

fn matching_series(
    state: &SharedState,
    tenant: &str,
    params: &Params,
    required: bool,
) -> Result<Vec<Labels>, PromError> {
    let selectors = selectors(params)?;
    if required && selectors.is_empty() {
        return Err(PromError::bad("no match[] parameter provided"));
    }
    let (start, end) = metadata_window(params)?;
    let refs: Vec<&Matchers> = selectors.iter().collect();
    let mut series = state.metrics_store.series(tenant, &refs, start, end);
    if let Some(limit) = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
    {
        series.truncate(limit);
    }
    Ok(series)
}

async fn serve<F>(
    state: SharedState,
    method: Method,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
    handler: F,
) -> Response
where
    F: FnOnce(&SharedState, &str, &Params) -> Result<Response, PromError> + Send + 'static,
{
    let tenant = match tenant(&state, &headers) {
        Ok(tenant) => tenant,
        Err(error) => return error.into_response(),
    };
    let params = Params::read(&method, query, &body);
    // PromQL over 24 h of samples is CPU work: keep it off the async threads.
    let worker = tokio::task::spawn_blocking(move || handler(&state, &tenant, &params));
    match worker.await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(),
        Err(error) => {
            tracing::error!(%error, "prometheus API worker failed");
            PromError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                error_type: "internal",
                message: "query failed".into(),
            }
            .into_response()
        }
    }
}

pub async fn query(
    State(state): State<SharedState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    serve(state, method, headers, q, body, run_query).await
}

pub async fn query_range(
    State(state): State<SharedState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    serve(state, method, headers, q, body, run_range).await
}

pub async fn series(
    State(state): State<SharedState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    serve(state, method, headers, q, body, |state, tenant, params| {
        let series = matching_series(state, tenant, params, true)?;
        Ok(success(Value::Array(
            series.iter().map(labels_json).collect(),
        )))
    })
    .await
}

pub async fn labels(
    State(state): State<SharedState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    serve(state, method, headers, q, body, |state, tenant, params| {
        let mut names: Vec<String> = matching_series(state, tenant, params, false)?
            .iter()
            .flat_map(|l| l.iter().map(|(n, _)| n.to_owned()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        Ok(success(json!(names)))
    })
    .await
}

pub async fn label_values(
    State(state): State<SharedState>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    serve(
        state,
        method,
        headers,
        q,
        body,
        move |state, tenant, params| {
            let mut values: Vec<String> = matching_series(state, tenant, params, false)?
                .iter()
                .filter_map(|l| l.get(&name).map(str::to_owned))
                .collect();
            values.sort();
            values.dedup();
            Ok(success(json!(values)))
        },
    )
    .await
}

/// `/api/v1/metadata`: what senders said each metric family is, `{name: [{type, help, unit}]}`;
/// `metric` picks one family, `limit` bounds how many.
pub async fn metadata(
    State(state): State<SharedState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    serve(state, method, headers, q, body, |state, tenant, params| {
        let limit = match params.get("limit") {
            None | Some("") => usize::MAX,
            Some(text) => match text.parse::<i64>() {
                Ok(limit) if limit <= 0 => usize::MAX,
                Ok(limit) => limit as usize,
                Err(_) => {
                    return Err(PromError::bad(format!(
                        "invalid parameter \"limit\": cannot parse {text:?} to a valid limit"
                    )))
                }
            },
        };
        let families = state
            .metrics_store
            .metadata
            .get(tenant, params.get("metric"), limit);
        let data: Map<String, Value> = families
            .into_iter()
            .map(|(name, metadata)| (name, json!([metadata])))
            .collect();
        Ok(success(Value::Object(data)))
    })
    .await
}

/// `/api/v1/query_exemplars`: the exemplars in `[start, end]` of every series a selector of
/// `query` matches, as Prometheus answers (204 without a body for a query without selectors).
pub async fn query_exemplars(
    State(state): State<SharedState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    serve(state, method, headers, q, body, |state, tenant, params| {
        let start = params.time("start", i64::MIN)?;
        let end = params.time("end", i64::MAX)?;
        if end < start {
            return Err(PromError::bad(
                "end timestamp must not be before start timestamp",
            ));
        }
        let expr = promql::parse(params.get("query").unwrap_or_default())?;
        let selectors = promql::selectors(&expr);
        if selectors.is_empty() {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let refs: Vec<&Matchers> = selectors.iter().collect();
        let found = state
            .metrics_store
            .exemplars
            .select(tenant, &refs, start, end);
        Ok(success(Value::Array(
            found
                .iter()
                .map(|series| {
                    json!({
                        "seriesLabels": labels_json(&series.series),
                        "exemplars": series.exemplars.iter().map(|exemplar| json!({
                            "labels": labels_json(&exemplar.labels),
                            "value": float_text(exemplar.value),
                            "timestamp": exemplar.t_ms as f64 / 1000.0,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )))
    })
    .await
}

/// `/api/v1/rules`: the tenant's rule groups with each rule's health and alerts; `type=alert` or
/// `type=record` keeps one kind.
pub async fn rules(
    State(state): State<SharedState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    serve(state, method, headers, q, body, |state, tenant, params| {
        let kind = params.get("type").unwrap_or_default().to_ascii_lowercase();
        if !matches!(kind.as_str(), "" | "alert" | "record") {
            return Err(PromError::bad(format!("not supported value {kind:?}")));
        }
        Ok(success(state.rules.rules_json(tenant, &kind)))
    })
    .await
}

/// `/api/v1/alerts`: the tenant's pending and firing alerts.
pub async fn alerts(
    State(state): State<SharedState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    serve(state, method, headers, q, body, |state, tenant, _| {
        Ok(success(state.rules.alerts_json(tenant)))
    })
    .await
}

/// Grafana asks for this to learn the server's flavour and features.
pub async fn buildinfo() -> Response {
    success(
        json!({"version": env!("CARGO_PKG_VERSION"), "revision": "", "branch": "", "buildUser": "", "buildDate": "", "goVersion": ""}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_steps_and_values_in_prometheus_form() {
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_step("15"), Some(15_000));
        assert_eq!(parse_step("1m30s"), Some(90_000));
        assert_eq!(parse_step("0"), None);
        // Issue 10, finding 4: times and steps beyond Prometheus' range are refused, not wrapped.
        for absurd in ["-1e300", "1e300", "NaN", "inf", "-Inf", "9.3e12"] {
            assert_eq!(parse_time(absurd), None, "{absurd}");
            assert_eq!(parse_step(absurd), None, "{absurd}");
        }
        assert_eq!(parse_time("-9.2e12"), Some(-9_200_000_000_000_000));
        assert_eq!(parse_step("1e300"), None);
        assert_eq!(float_text(f64::INFINITY), "+Inf");
        assert_eq!(float_text(0.1), "0.1");
        assert_eq!(float_text(1e21), "1000000000000000000000");
    }
}
