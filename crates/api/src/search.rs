//! TraceQL search and tag discovery in Tempo's wire format: `GET /api/search`,
//! `/api/search/tags`, `/api/v2/search/tags`, `/api/search/tag/{tag}/values`,
//! `/api/v2/search/tag/{tag}/values`. JSON field names, hex IDs, string-encoded 64-bit
//! integers and the deprecated `spanSet` copy follow the responses captured from Tempo; only
//! fields Grafana's strict decoder knows are emitted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Instant;

use andante_block::v1::tags::TagRequest;
use andante_model::{ErrorKind, TenantSet};
use andante_query::search::{
    SearchMetrics, SearchRequest, SearchResult, SpansetSummary, TraceSummary, DEFAULT_LIMIT,
    DEFAULT_SPANS_PER_SPANSET, MAX_SPANS_PER_SPANSET,
};
use andante_query::tags::parse_tag_field;
use andante_query::AbortOnDrop;
use andante_traceql::ast::{Field, Intrinsic, Scope};
use andante_traceql::{parse, parse_lenient, Value};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{json, Map, Value as Json_};

use crate::tenant::query_tenants;
use crate::{ApiError, SharedState};

/// The media type of the streamed search.
const NDJSON: &str = "application/x-ndjson";

/// Most tag names or values answered when the request names no `limit`.
const DEFAULT_TAG_LIMIT: usize = 5000;

fn seconds(params: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse::<u64>()
            .map(|seconds| Some(seconds.saturating_mul(1_000_000_000)))
            .map_err(|_| {
                ApiError::bad_request(format!("invalid {name} `{text}`: expected Unix seconds"))
            }),
    }
}

/// `start`/`end` in Unix seconds as nanoseconds; `end` covers its whole second.
pub(crate) fn time_range(
    params: &HashMap<String, String>,
) -> Result<(Option<u64>, Option<u64>), ApiError> {
    let start = seconds(params, "start")?;
    let end = seconds(params, "end")?.map(|end| end.saturating_add(999_999_999));
    if let (Some(start), Some(end)) = (start, end) {
        if end < start {
            return Err(ApiError::bad_request(
                "invalid time range: end is before start",
            ));
        }
    }
    Ok((start, end))
}

fn number(params: &HashMap<String, String>, name: &str, default: usize) -> Result<usize, ApiError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(0) => Ok(default),
            Ok(value) => Ok(value),
            Err(_) => Err(ApiError::bad_request(format!(
                "invalid {name} `{text}`: expected a positive integer"
            ))),
        },
    }
}

/// A Go duration (`100ms`, `1.5s`, `1h2m`) as nanoseconds, for the legacy parameters.
fn go_duration(name: &str, text: &str) -> Result<i64, ApiError> {
    let why = match andante_model::parse_go_duration(text.trim()) {
        Ok(nanos) if nanos >= 0 => return Ok(nanos),
        Ok(_) => "a duration cannot be negative".to_owned(),
        Err(error) => error.message,
    };
    Err(ApiError::bad_request(format!(
        "invalid {name} `{text}`: {why}; expected a duration such as 100ms or 1.5s"
    )))
}

fn quote(text: &str) -> String {
    format!("{text:?}")
}

fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// The legacy `tags` (logfmt) + `minDuration`/`maxDuration` search as TraceQL, with Tempo's
/// semantics: attribute values match as substrings, durations bound the whole trace.
fn legacy_query(params: &HashMap<String, String>) -> Result<String, ApiError> {
    let mut conditions = Vec::new();
    if let Some(tags) = params.get("tags").filter(|tags| !tags.trim().is_empty()) {
        for pair in logfmt(tags)? {
            let (key, value) = pair;
            conditions.push(match key.as_str() {
                "name" => format!(
                    "name =~ {}",
                    quote(&format!(".*{}.*", regex_escape(&value)))
                ),
                "status.code" | "status" => format!(
                    "status = {}",
                    value.trim_start_matches("STATUS_CODE_").to_lowercase()
                ),
                "error" if value == "true" => "status = error".to_owned(),
                _ => format!(
                    ".{} =~ {}",
                    quote(&key),
                    quote(&format!(".*{}.*", regex_escape(&value)))
                ),
            });
        }
    }
    for (name, op) in [("minDuration", ">="), ("maxDuration", "<=")] {
        if let Some(text) = params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            conditions.push(format!(
                "trace:duration {op} {}ns",
                go_duration(name, text)?
            ));
        }
    }
    if conditions.is_empty() {
        return Ok("{ }".to_owned());
    }
    Ok(format!("{{ {} }}", conditions.join(" && ")))
}

fn logfmt(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some(equals) = rest.find('=') else {
            return Err(ApiError::bad_request(format!(
                "invalid tags `{text}`: expected key=value pairs"
            )));
        };
        let key = rest[..equals].trim().to_owned();
        rest = &rest[equals + 1..];
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let close = quoted.find('"').ok_or_else(|| {
                ApiError::bad_request(format!("invalid tags `{text}`: unterminated quote"))
            })?;
            let value = quoted[..close].to_owned();
            rest = &quoted[close + 1..];
            value
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let value = rest[..end].to_owned();
            rest = &rest[end..];
            value
        };
        pairs.push((key, value));
        rest = rest.trim_start();
    }
    Ok(pairs)
}

/// Go's `time.Duration.String()` style (`1.5s`, `250ms`, `2m3s`), which Tempo prints.
pub(crate) fn format_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    if nanos < 1_000 {
        return format!("{sign}{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{sign}{}µs", trim_float(nanos as f64 / 1e3));
    }
    if nanos < 1_000_000_000 {
        return format!("{sign}{}ms", trim_float(nanos as f64 / 1e6));
    }
    let total_seconds = nanos as f64 / 1e9;
    let hours = (total_seconds / 3600.0).floor();
    let minutes = ((total_seconds - hours * 3600.0) / 60.0).floor();
    let seconds = total_seconds - hours * 3600.0 - minutes * 60.0;
    let mut out = sign.to_owned();
    if hours > 0.0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0.0 || minutes > 0.0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", trim_float(seconds)));
    out
}

fn trim_float(value: f64) -> String {
    let text = format!("{value:.9}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Attributes as OTLP-JSON `KeyValue`s (64-bit integers as strings, as Tempo writes them).
fn key_values(attributes: &[(String, Value<'static>)]) -> Json_ {
    crate::tempo_json::attributes(&crate::tempopb::key_values(attributes))
}

fn spanset_json(spanset: &SpansetSummary) -> Json_ {
    let spans: Vec<Json_> = spanset
        .spans
        .iter()
        .map(|span| {
            let mut object = Map::new();
            object.insert("spanID".into(), json!(hex::encode(&span.span_id)));
            object.insert("name".into(), json!(span.name));
            object.insert(
                "startTimeUnixNano".into(),
                json!(span.start_unix_nanos.to_string()),
            );
            object.insert(
                "durationNanos".into(),
                json!(span.duration_nanos.to_string()),
            );
            if !span.attributes.is_empty() {
                object.insert("attributes".into(), json!(key_values(&span.attributes)));
            }
            Json_::Object(object)
        })
        .collect();
    let mut object = Map::new();
    object.insert("spans".into(), json!(spans));
    object.insert("matched".into(), json!(spanset.matched));
    if !spanset.attributes.is_empty() {
        object.insert("attributes".into(), json!(key_values(&spanset.attributes)));
    }
    Json_::Object(object)
}

fn traces_json(traces: &[TraceSummary]) -> Vec<Json_> {
    traces
        .iter()
        .map(|trace| {
            let mut object = Map::new();
            object.insert("traceID".into(), json!(hex::encode(trace.trace_id.0)));
            object.insert("rootServiceName".into(), json!(trace.root_service_name));
            if !trace.root_trace_name.is_empty() {
                object.insert("rootTraceName".into(), json!(trace.root_trace_name));
            }
            object.insert(
                "startTimeUnixNano".into(),
                json!(trace.start_unix_nanos.to_string()),
            );
            object.insert("durationMs".into(), json!(trace.duration_nanos / 1_000_000));
            let spansets: Vec<Json_> = trace.spansets.iter().map(spanset_json).collect();
            if let Some(first) = spansets.first() {
                object.insert("spanSet".into(), first.clone());
            }
            object.insert("spanSets".into(), json!(spansets));
            let stats: Map<String, Json_> = trace
                .service_stats
                .iter()
                .map(|(service, stats)| {
                    let mut entry = Map::new();
                    entry.insert("spanCount".into(), json!(stats.span_count));
                    if stats.error_count > 0 {
                        entry.insert("errorCount".into(), json!(stats.error_count));
                    }
                    (service.clone(), Json_::Object(entry))
                })
                .collect();
            object.insert("serviceStats".into(), Json_::Object(stats));
            Json_::Object(object)
        })
        .collect()
}

/// A search response: `traces` and the `metrics` totals, marked partial when `partial` says so
/// (as TraceQL metrics answers are; clients that do not know the fields ignore them).
fn response_json(traces: &[TraceSummary], metrics: &SearchMetrics, partial: Option<&str>) -> Json_ {
    let mut body = json!({
        "traces": traces_json(traces),
        "metrics": {
            "inspectedTraces": metrics.inspected_traces,
            "inspectedBytes": metrics.inspected_bytes.to_string(),
            "inspectedSpans": metrics.inspected_spans.to_string(),
            "totalBlocks": metrics.total_blocks,
            "completedJobs": metrics.completed_jobs,
            "totalJobs": metrics.total_jobs,
            "totalBlockBytes": metrics.total_block_bytes.to_string(),
        }
    });
    if let (Some(message), Some(object)) = (partial, body.as_object_mut()) {
        object.insert("status".into(), json!("PARTIAL"));
        object.insert("message".into(), json!(message));
    }
    body
}

pub(crate) fn search_json(result: &SearchResult) -> Json_ {
    response_json(
        &result.traces,
        &result.metrics,
        result.partial_message.as_deref(),
    )
}

/// One step of a progressive search, as both streaming transports (gRPC and NDJSON) send it.
pub(crate) enum Progress {
    /// Traces that just became final, with the running totals.
    Found(Vec<TraceSummary>, SearchMetrics),
    /// The end: the whole result, whose traces were all sent as `Found` already.
    Done(SearchResult),
}

/// Runs `request` on its own task and streams its progress, ending with `Done`. Dropping the
/// stream (the client went away) aborts the search.
pub(crate) fn search_progressively(
    state: SharedState,
    tenants: TenantSet,
    request: SearchRequest,
) -> impl Stream<Item = Progress> + Send {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let result = state
            .querier
            .search_with_progress(&tenants, &request, |fresh, metrics| {
                if !fresh.is_empty() {
                    let _ = sender.send(Progress::Found(fresh.to_vec(), metrics.clone()));
                }
            })
            .await;
        if let Some(message) = &result.partial_message {
            tracing::warn!(%message, "partial streamed search result");
        }
        let _ = sender.send(Progress::Done(result));
    });
    futures::stream::unfold(
        (receiver, AbortOnDrop(task)),
        |(mut receiver, guard)| async move {
            let progress = receiver.recv().await?;
            Some((progress, (receiver, guard)))
        },
    )
}

/// The NDJSON form of a search (`Accept: application/x-ndjson`), for clients that cannot speak
/// gRPC, such as the built-in UI: one response object per line, each with only the traces new
/// since the line before and the running totals, the last with the final totals and the partial
/// mark. Errors found before the search starts are ordinary error responses.
fn search_ndjson(state: SharedState, tenants: TenantSet, request: SearchRequest) -> Response {
    let lines = search_progressively(state, tenants, request).map(|progress| {
        let body = match progress {
            Progress::Found(traces, metrics) => response_json(&traces, &metrics, None),
            Progress::Done(result) => {
                response_json(&[], &result.metrics, result.partial_message.as_deref())
            }
        };
        let mut line = body.to_string().into_bytes();
        line.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(line))
    });
    (
        [(header::CONTENT_TYPE, NDJSON)],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

/// Whether the client asked for the NDJSON stream: it names the media type in `Accept`
/// without refusing it (`q=0`).
fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|media| {
            let mut parts = media.split(';');
            let named = parts
                .next()
                .is_some_and(|kind| kind.trim().eq_ignore_ascii_case(NDJSON));
            let refused = parts.any(|parameter| {
                parameter.split_once('=').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("q")
                        && value.trim().parse::<f64>().is_ok_and(|q| q == 0.0)
                })
            });
            named && !refused
        })
}

/// A partial search that found nothing must not read as "no match": it becomes an error
/// (504 when the deadline passed, else 503) naming what was left undone. One with results
/// answers them, marked partial.
pub(crate) fn partial_without_results(result: &SearchResult) -> Option<ApiError> {
    let message = result.partial_message.as_ref()?;
    if !result.traces.is_empty() {
        return None;
    }
    let metrics = &result.metrics;
    let done = format!(
        "{} of {} blocks searched, no trace matched so far",
        metrics.completed_jobs, metrics.total_jobs
    );
    if result.bytes_exhausted {
        return Some(ApiError::bad_request(format!(
            "search incomplete: {message} ({done}); narrow the time range or make the query more selective"
        )));
    }
    Some(if result.timed_out {
        ApiError::new(
            ErrorKind::DeadlineExceeded,
            format!("search incomplete: {message} ({done}); narrow the time range or make the query more selective"),
        )
    } else {
        ApiError::new(
            ErrorKind::Unavailable,
            format!("search incomplete: {message} ({done})"),
        )
    })
}

/// Whether a stage after the first `|` starts with a metrics function (`rate(`, `compare (`…):
/// such queries belong to the metrics endpoints, whose parser knows the same function names.
fn is_metrics_query(text: &str) -> bool {
    text.split('|').skip(1).any(|stage| {
        let stage = stage.trim_start();
        let word_end = stage
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(stage.len());
        stage[word_end..].trim_start().starts_with('(')
            && andante_traceql::metrics::is_metrics_function(&stage[..word_end])
    })
}

/// Parses the request into a search; shared by HTTP and the streaming gRPC service.
pub(crate) fn search_request(
    params: &HashMap<String, String>,
    limits: crate::QueryLimits,
) -> Result<SearchRequest, ApiError> {
    let text = match params.get("q").map(|q| q.trim()).filter(|q| !q.is_empty()) {
        Some(q) => q.to_owned(),
        None => legacy_query(params)?,
    };
    if is_metrics_query(&text) {
        return Err(ApiError::bad_request(
            "invalid TraceQL query: metrics queries are served by /api/metrics/query_range and /api/metrics/query",
        ));
    }
    let query = parse(&text)
        .map_err(|error| ApiError::bad_request(format!("invalid TraceQL query: {error}")))?;
    let (start, end) = time_range(params)?;
    let spans_per_spanset = number(params, "spss", DEFAULT_SPANS_PER_SPANSET)?;
    if spans_per_spanset > MAX_SPANS_PER_SPANSET {
        return Err(ApiError::bad_request(format!(
            "invalid spss {spans_per_spanset}: at most {MAX_SPANS_PER_SPANSET} spans per spanset"
        )));
    }
    Ok(SearchRequest {
        query,
        text,
        limit: number(params, "limit", DEFAULT_LIMIT)?,
        spans_per_spanset,
        start,
        end,
        deadline: Some(Instant::now() + limits.timeout),
        max_bytes: limits.max_bytes_per_query,
    })
}

pub(crate) async fn search(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenants = query_tenants(&headers, state.config.multitenancy_enabled)?;
    let request = search_request(&params, state.config.query)?;
    if wants_ndjson(&headers) {
        return Ok(search_ndjson(state, tenants, request));
    }
    let result = state.querier.search(&tenants, &request).await;
    if let Some(message) = &result.partial_message {
        tracing::warn!(%message, "partial search result");
    }
    if let Some(error) = partial_without_results(&result) {
        return Err(error);
    }
    Ok(Json(search_json(&result)).into_response())
}

fn scope_filter(params: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    match params.get("scope").map(|s| s.trim()).filter(|s| !s.is_empty() && *s != "all") {
        None => Ok(None),
        Some(scope @ ("resource" | "span" | "intrinsic" | "event" | "link" | "instrumentation")) => Ok(Some(scope.to_owned())),
        Some(other) => Err(ApiError::bad_request(format!(
            "invalid scope `{other}`: expected resource, span, intrinsic, event, link, instrumentation or all"
        ))),
    }
}

fn lenient_filter(params: &HashMap<String, String>) -> Option<andante_traceql::Query> {
    params
        .get("q")
        .map(|q| q.trim())
        .filter(|q| !q.is_empty() && *q != "{}")
        .and_then(parse_lenient)
}

const SCOPE_ORDER: [&str; 5] = ["resource", "span", "event", "link", "instrumentation"];

pub(crate) async fn tag_names(
    state: &SharedState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(Vec<(&'static str, Vec<String>)>, u64), ApiError> {
    let tenants = query_tenants(headers, state.config.multitenancy_enabled)?;
    let scope = scope_filter(params)?;
    let (start, end) = time_range(params)?;
    let limit = number(params, "limit", DEFAULT_TAG_LIMIT)?;
    let filter = lenient_filter(params);
    let answer = state
        .querier
        .tags(
            &tenants,
            TagRequest::Names,
            filter.as_ref(),
            start,
            end,
            limit,
        )
        .await;
    let mut scopes: Vec<(&'static str, Vec<String>)> = Vec::new();
    for name in SCOPE_ORDER {
        if scope.as_deref().is_some_and(|wanted| wanted != name) {
            continue;
        }
        if let Some(names) = answer.names.get(name) {
            scopes.push((name, names.iter().take(limit).cloned().collect()));
        }
    }
    if scope.as_deref().is_none_or(|wanted| wanted == "intrinsic") {
        scopes.push((
            "intrinsic",
            Intrinsic::TAG_NAMES
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
        ));
    }
    Ok((scopes, answer.inspected_bytes))
}

pub(crate) async fn tags_v1(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (scopes, bytes) = tag_names(&state, &headers, &params).await?;
    let mut names: Vec<String> = scopes
        .into_iter()
        .filter(|(scope, _)| *scope != "intrinsic")
        .flat_map(|(_, names)| names)
        .collect();
    names.sort();
    names.dedup();
    Ok(
        Json(json!({ "tagNames": names, "metrics": { "inspectedBytes": bytes.to_string() } }))
            .into_response(),
    )
}

pub(crate) async fn tags_v2(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (scopes, bytes) = tag_names(&state, &headers, &params).await?;
    let scopes: Vec<Json_> = scopes
        .into_iter()
        .map(|(name, tags)| json!({ "name": name, "tags": tags }))
        .collect();
    Ok(
        Json(json!({ "scopes": scopes, "metrics": { "inspectedBytes": bytes.to_string() } }))
            .into_response(),
    )
}

/// Grafana may encode the tag twice; decode what is still percent-encoded once more.
fn decode_tag(raw: &str) -> String {
    if !raw.contains('%') {
        return raw.to_owned();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&raw[index + 1..index + 3], 16) {
                out.push(byte);
                index += 3;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| raw.to_owned())
}

pub(crate) fn value_type(value: &Value<'_>) -> &'static str {
    match value {
        Value::Str(_) => "string",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Bool(_) => "bool",
        Value::Duration(_) => "duration",
        Value::Status(_) | Value::Kind(_) => "keyword",
        _ => "string",
    }
}

pub(crate) fn value_text(value: &Value<'_>) -> String {
    match value {
        Value::Str(text) => text.to_string(),
        Value::Int(number) => number.to_string(),
        Value::Float(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Duration(nanos) => format_duration(*nanos),
        Value::Status(status) => status.name().to_owned(),
        Value::Kind(kind) => kind.name().to_owned(),
        other => format!("{other:?}"),
    }
}

pub(crate) async fn tag_values(
    state: &SharedState,
    headers: &HeaderMap,
    field: Field,
    params: &HashMap<String, String>,
) -> Result<(Vec<Value<'static>>, u64), ApiError> {
    let tenants = query_tenants(headers, state.config.multitenancy_enabled)?;
    let (start, end) = time_range(params)?;
    let limit = number(params, "limit", DEFAULT_TAG_LIMIT)?;
    let filter = lenient_filter(params);
    let answer = state
        .querier
        .tags(
            &tenants,
            TagRequest::Values(field),
            filter.as_ref(),
            start,
            end,
            limit,
        )
        .await;
    Ok((answer.values, answer.inspected_bytes))
}

/// v1 tag names are bare attribute names; a few spell intrinsics (`status.code`, `name`).
pub(crate) fn v1_tag_field(tag: &str) -> Field {
    match tag {
        "name" => Field::Intrinsic(Intrinsic::Name),
        "status.code" | "status" => Field::Intrinsic(Intrinsic::Status),
        "kind" => Field::Intrinsic(Intrinsic::Kind),
        other => Field::Attribute {
            scope: Scope::Unscoped,
            parent: false,
            name: other.to_owned(),
        },
    }
}

pub(crate) fn v2_tag_field(tag: &str) -> Result<Field, ApiError> {
    parse_tag_field(tag).ok_or_else(|| {
        ApiError::bad_request(format!("invalid tag `{tag}`: expected a TraceQL attribute such as resource.service.name, .foo or span:name"))
    })
}

/// v1 values are untyped texts, empty ones dropped.
pub(crate) fn v1_texts(values: &[Value<'static>]) -> Vec<String> {
    let mut texts: Vec<String> = values
        .iter()
        .map(value_text)
        .filter(|text| !text.is_empty())
        .collect();
    texts.dedup();
    texts
}

pub(crate) async fn tag_values_v1(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(tag): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tag = decode_tag(&tag);
    let (values, bytes) = tag_values(&state, &headers, v1_tag_field(&tag), &params).await?;
    let texts = v1_texts(&values);
    Ok(
        Json(json!({ "tagValues": texts, "metrics": { "inspectedBytes": bytes.to_string() } }))
            .into_response(),
    )
}

pub(crate) async fn tag_values_v2(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(tag): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tag = decode_tag(&tag);
    let (values, bytes) = tag_values(&state, &headers, v2_tag_field(&tag)?, &params).await?;
    let typed: Vec<Json_> = values
        .iter()
        .filter(|value| !value_text(value).is_empty())
        .map(|value| json!({ "type": value_type(value), "value": value_text(value) }))
        .collect();
    Ok(
        Json(json!({ "tagValues": typed, "metrics": { "inspectedBytes": bytes.to_string() } }))
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_parameters_become_traceql() {
        let params: HashMap<String, String> = [
            (
                "tags".to_owned(),
                r#"service.name=front http.url="/a b" error=true"#.to_owned(),
            ),
            ("minDuration".to_owned(), "1.5s".to_owned()),
        ]
        .into();
        let text = legacy_query(&params).unwrap();
        assert_eq!(
            text,
            r#"{ ."service.name" =~ ".*front.*" && ."http.url" =~ ".*/a b.*" && status = error && trace:duration >= 1500000000ns }"#
        );
        assert!(parse(&text).is_ok());
    }

    #[test]
    fn ndjson_is_streamed_only_when_asked_for_and_not_refused() {
        let asks = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT, accept.parse().expect("header"));
            wants_ndjson(&headers)
        };
        assert!(asks("application/x-ndjson"));
        assert!(asks("APPLICATION/X-NDJSON"));
        assert!(asks("text/html, application/x-ndjson;q=0.9"));
        assert!(asks("application/x-ndjson; q=1"));
        assert!(!asks("application/x-ndjson;q=0"));
        assert!(!asks("application/x-ndjson; Q = 0.000"));
        assert!(!asks("application/json"));
        assert!(!asks("application/x-ndjsonx"));
        assert!(!asks("*/*"));
        assert!(!wants_ndjson(&HeaderMap::new()));
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(250_000_000), "250ms");
        assert_eq!(format_duration(123_000_000_000), "2m3s");
        assert_eq!(format_duration(999), "999ns");
    }

    #[test]
    fn tags_are_decoded_once_more_when_still_encoded() {
        assert_eq!(decode_tag("resource.service.name"), "resource.service.name");
        assert_eq!(decode_tag("span.%22a%20b%22"), "span.\"a b\"");
        assert_eq!(decode_tag("100%"), "100%");
    }

    #[test]
    fn metrics_queries_are_recognised() {
        assert!(is_metrics_query("{ } | rate()"));
        assert!(is_metrics_query(
            "{ status = error } | quantile_over_time(duration, .9) by (x)"
        ));
        assert!(!is_metrics_query("{ .rate = 1 } | count() > 1"));
    }
}
