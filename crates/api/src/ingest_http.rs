//! OTLP/HTTP and Zipkin receivers: content type, encoding and tenant from the headers, then the
//! push service of `andante_ingest` (decode → validate → sink → partial-success accounting),
//! and its answer in the request's own format.

pub(crate) use andante_ingest::BodyFormat;
use andante_ingest::{Encoding, IngestError, PushSummary};
use andante_model::{ErrorKind, TenantId};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prost::Message;

use crate::tempopb::RpcStatus;
use crate::tenant::push_tenant;
use crate::{ApiError, SharedState};

/// The trace pipeline every receiver shares; `andante_ingest::PushService` does the work.
pub(crate) async fn push_body(
    state: &SharedState,
    tenant: &TenantId,
    body: Bytes,
    encoding: Encoding,
    format: BodyFormat,
) -> Result<PushSummary, ApiError> {
    Ok(state.push.push_body(tenant, body, encoding, format).await?)
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
        details: Vec::new(),
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
