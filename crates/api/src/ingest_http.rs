//! OTLP/HTTP and Zipkin receivers, plus the push pipeline every receiver shares:
//! decode → validate → `LiveStore::push` → partial-success accounting.

use andante_ingest::{
    decode_otlp_json, decode_otlp_protobuf, decode_zipkin_json, decompress_body, validate,
    Encoding, IngestError, RefusalReason,
};
use andante_model::{ErrorKind, TenantId};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use crate::tempopb::RpcStatus;
use crate::tenant::push_tenant;
use crate::{ApiError, SharedState};

/// Bodies above this are decoded on the blocking pool, so a large batch never stalls the
/// runtime threads that serve other requests.
const INLINE_DECODE_BYTES: usize = 128 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFormat {
    Protobuf,
    Json,
    Zipkin,
}

/// What a push accepted and refused, over validation and limits together.
pub(crate) struct PushSummary {
    pub rejected_spans: usize,
    pub message: String,
}

impl PushSummary {
    /// The OTLP response: `partial_success` only when something was refused.
    pub(crate) fn into_response(self) -> ExportTraceServiceResponse {
        let partial_success = (self.rejected_spans > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: self.rejected_spans as i64,
            error_message: self.message,
        });
        ExportTraceServiceResponse { partial_success }
    }
}

/// Runs `decode` inline for a small body and on the blocking pool for a large one, so that a
/// large batch never stalls the runtime threads serving other requests.
pub(crate) async fn decode_off_runtime<T: Send + 'static>(
    body_bytes: usize,
    decode: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, ApiError> {
    if body_bytes <= INLINE_DECODE_BYTES {
        return Ok(decode()?);
    }
    tokio::task::spawn_blocking(decode)
        .await
        .map_err(|error| {
            ApiError::new(ErrorKind::Internal, format!("decode task failed: {error}"))
        })?
        .map_err(ApiError::from)
}

/// The pipeline shared by every receiver, from raw (possibly compressed) body to durable spans.
pub(crate) async fn push_body(
    state: &SharedState,
    tenant: &TenantId,
    body: Bytes,
    encoding: Encoding,
    format: BodyFormat,
) -> Result<PushSummary, ApiError> {
    let limit = state.config.max_request_bytes;
    let validation = state.config.validation;
    let body_bytes = body.len();
    let decode = move || -> Result<(andante_ingest::Validated, usize), IngestError> {
        let plain = decompress_body(&body, encoding, limit)?;
        let request = match format {
            BodyFormat::Protobuf => decode_otlp_protobuf(&plain)?,
            BodyFormat::Json => decode_otlp_json(&plain)?,
            BodyFormat::Zipkin => decode_zipkin_json(&plain)?,
        };
        Ok((
            validate(request, validation, andante_model::now_unix_nanos()),
            plain.len(),
        ))
    };
    let (validated, plain_bytes) = decode_off_runtime(body_bytes, decode).await?;
    push_validated(state, tenant, validated, plain_bytes as u64).await
}

pub(crate) async fn push_validated(
    state: &SharedState,
    tenant: &TenantId,
    validated: andante_ingest::Validated,
    request_bytes: u64,
) -> Result<PushSummary, ApiError> {
    state.live.metrics.add_discarded(
        tenant.as_str(),
        RefusalReason::Invalid,
        validated.rejected_spans,
    );
    let mut messages = Vec::new();
    if validated.rejected_spans > 0 {
        messages.push(validated.partial_success_message());
    }
    if validated.accepted_spans == 0 {
        if validated.rejected_spans > 0 {
            // Every span was invalid: nothing to store, and the client must hear why.
            return Ok(PushSummary {
                rejected_spans: validated.rejected_spans,
                message: messages.join("; "),
            });
        }
        return Ok(PushSummary {
            rejected_spans: 0,
            message: String::new(),
        });
    }
    let outcome = state
        .live
        .push(tenant, validated.request, request_bytes)
        .await?;
    if outcome.refused_spans > 0 {
        messages.push(outcome.message);
    }
    Ok(PushSummary {
        rejected_spans: validated.rejected_spans + outcome.refused_spans,
        message: messages.join("; "),
    })
}

pub(crate) fn otlp_format(headers: &HeaderMap) -> Result<BodyFormat, IngestError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(BodyFormat::Protobuf),
        "application/json" => Ok(BodyFormat::Json),
        _ => Err(IngestError::UnsupportedContentType(content_type.to_owned())),
    }
}

pub(crate) fn encoding(headers: &HeaderMap) -> Result<Encoding, IngestError> {
    Encoding::from_header(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )
}

pub(crate) fn otlp_response(
    format: BodyFormat,
    status: StatusCode,
    message: impl Message + serde::Serialize,
) -> Response {
    match format {
        BodyFormat::Json | BodyFormat::Zipkin => {
            let body = serde_json::to_vec(&message).unwrap_or_default();
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        BodyFormat::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            message.encode_to_vec(),
        )
            .into_response(),
    }
}

/// An OTLP/HTTP error: `google.rpc.Status` in the request's encoding, as the spec requires.
pub(crate) fn otlp_error(format: BodyFormat, error: ApiError) -> Response {
    let status = error.status();
    let rpc = RpcStatus {
        code: error.grpc_code() as i32,
        message: error.message.clone(),
    };
    let mut response = match format {
        BodyFormat::Protobuf => (
            status,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            rpc.encode_to_vec(),
        )
            .into_response(),
        _ => {
            let body = serde_json::json!({ "code": rpc.code, "message": rpc.message }).to_string();
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    };
    if error.kind == ErrorKind::TooManyRequests {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    response
}

/// An OTLP/HTTP endpoint: content type and encoding from the headers, the tenant, then `push`;
/// the answer (or a `google.rpc.Status` error) in the request's encoding.
pub(crate) async fn otlp_http<R, Fut>(
    state: SharedState,
    headers: HeaderMap,
    body: Bytes,
    push: impl FnOnce(SharedState, TenantId, Bytes, Encoding, BodyFormat) -> Fut,
) -> Response
where
    R: Message + serde::Serialize,
    Fut: std::future::Future<Output = Result<R, ApiError>>,
{
    let format = match otlp_format(&headers) {
        Ok(format) => format,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let result = async {
        let tenant = push_tenant(&headers, state.config.multitenancy_enabled)?;
        let encoding = encoding(&headers)?;
        push(state.clone(), tenant, body, encoding, format).await
    }
    .await;
    match result {
        Ok(response) => otlp_response(format, StatusCode::OK, response),
        Err(error) => otlp_error(format, error),
    }
}

/// `POST /v1/traces`.
pub async fn otlp_traces(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    otlp_http(
        state,
        headers,
        body,
        |state, tenant, body, encoding, format| async move {
            let summary = push_body(&state, &tenant, body, encoding, format).await?;
            Ok(summary.into_response())
        },
    )
    .await
}

/// `POST /api/v2/spans` (Zipkin v2 JSON). Zipkin has no partial success: a batch with some
/// invalid spans is accepted (202) with the refusal in the body; one with none valid is 400.
pub async fn zipkin_spans(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return ApiError::from(IngestError::UnsupportedContentType(content_type.to_owned()))
            .into_response();
    }
    let result = async {
        let tenant = push_tenant(&headers, state.config.multitenancy_enabled)?;
        push_body(
            &state,
            &tenant,
            body,
            encoding(&headers)?,
            BodyFormat::Zipkin,
        )
        .await
    }
    .await;
    match result {
        Ok(summary) if summary.rejected_spans == 0 => StatusCode::ACCEPTED.into_response(),
        Ok(summary) => (StatusCode::ACCEPTED, summary.message).into_response(),
        Err(error) => error.into_response(),
    }
}
