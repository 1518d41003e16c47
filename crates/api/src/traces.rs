//! Trace by ID, `GET /api/traces/{id}` (v1) and `GET /api/v2/traces/{id}` (v2), in Tempo's JSON or
//! protobuf depending on `Accept`. Grafana reads the protobuf without nil checks, so every
//! `resource`, `scope` and `status` submessage is present even when empty.

use std::collections::HashMap;

use andante_model::otlp::trace::v1::{ResourceSpans, Status};
use andante_model::{ErrorKind, TraceId};
use andante_query::{TimeHint, TraceLookup};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde_json::json;

use crate::tempopb::{PartialStatus, Trace, TraceByIdMetrics, TraceByIdResponse};
use crate::tenant::query_tenants;
use crate::{tempo_json, ApiError, SharedState};

pub(crate) async fn lookup(
    state: &SharedState,
    headers: &HeaderMap,
    trace_id: &str,
    params: &HashMap<String, String>,
) -> Result<TraceLookup, ApiError> {
    let tenants = query_tenants(headers, state.config.multitenancy_enabled)?;
    let trace_id = TraceId::from_hex(trace_id.trim())
        .map_err(|error| ApiError::bad_request(format!("invalid trace id: {error}")))?;
    let (start, end) = crate::search::time_range(params)?;
    let mut found = state
        .querier
        .trace_by_id(&tenants, trace_id, TimeHint { start, end })
        .await;
    if found.resource_spans.is_empty() {
        // A block that may hold the trace could not be read (storage unreachable, or the block
        // quarantined as corrupt): that is not "not found".
        if let Some(message) = found.partial_message {
            return Err(ApiError::new(
                ErrorKind::Unavailable,
                format!("trace could not be read: {message}"),
            ));
        }
        return Err(ApiError::new(ErrorKind::NotFound, ""));
    }
    fill_required_submessages(&mut found.resource_spans);
    Ok(found)
}

fn fill_required_submessages(resource_spans: &mut [ResourceSpans]) {
    for resource in resource_spans {
        resource.resource.get_or_insert_with(Default::default);
        for scope in &mut resource.scope_spans {
            scope.scope.get_or_insert_with(Default::default);
            for span in &mut scope.spans {
                span.status.get_or_insert_with(Status::default);
            }
        }
    }
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.contains("application/protobuf") || accept.contains("application/x-protobuf")
        })
}

fn protobuf(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/protobuf")], body).into_response()
}

fn json_response(value: serde_json::Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn not_found_or(error: ApiError) -> Response {
    if error.kind == ErrorKind::NotFound {
        // Tempo answers an unknown trace with 404 and an empty body.
        return StatusCode::NOT_FOUND.into_response();
    }
    error.into_response()
}

pub async fn trace_by_id_v1(
    State(state): State<SharedState>,
    Path(trace_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    match lookup(&state, &headers, &trace_id, &params).await {
        Ok(found) if wants_protobuf(&headers) => protobuf(
            Trace {
                resource_spans: found.resource_spans,
            }
            .encode_to_vec(),
        ),
        Ok(found) => {
            json_response(json!({ "batches": tempo_json::resource_spans(&found.resource_spans) }))
        }
        Err(error) => not_found_or(error),
    }
}

pub async fn trace_by_id_v2(
    State(state): State<SharedState>,
    Path(trace_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let found = match lookup(&state, &headers, &trace_id, &params).await {
        Ok(found) => found,
        Err(error) => return not_found_or(error),
    };
    let status = if found.partial_message.is_some() {
        PartialStatus::Partial
    } else {
        PartialStatus::Complete
    };
    let message = found.partial_message.clone().unwrap_or_default();
    if wants_protobuf(&headers) {
        let response = TraceByIdResponse {
            trace: Some(Trace {
                resource_spans: found.resource_spans,
            }),
            metrics: Some(TraceByIdMetrics {
                inspected_bytes: found.inspected_bytes,
            }),
            status: status as i32,
            message,
        };
        return protobuf(response.encode_to_vec());
    }
    let mut body = json!({
        "trace": { "resourceSpans": tempo_json::resource_spans(&found.resource_spans) },
        "metrics": {},
    });
    if found.inspected_bytes > 0 {
        body["metrics"]["inspectedBytes"] = json!(found.inspected_bytes.to_string());
    }
    if status == PartialStatus::Partial {
        body["status"] = json!("PARTIAL");
        body["message"] = json!(message);
    }
    json_response(body)
}
