//! The one error type of the HTTP handlers: a kind (which decides the status code) and a message
//! for the client. Internal details are logged where they happen and never sent.

use andante_model::ErrorKind;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::BadRequest, message)
    }
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
    /// The gRPC status for the same failure.
    pub fn grpc_code(&self) -> tonic::Code {
        match self.kind {
            ErrorKind::BadRequest
            | ErrorKind::PayloadTooLarge
            | ErrorKind::UnsupportedMediaType => tonic::Code::InvalidArgument,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::TooManyRequests => tonic::Code::ResourceExhausted,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorKind::Internal => tonic::Code::Internal,
        }
    }
}

impl From<andante_ingest::IngestError> for ApiError {
    fn from(error: andante_ingest::IngestError) -> Self {
        ApiError::new(error.kind(), error.to_string())
    }
}

impl From<andante_ingest::PushFailure> for ApiError {
    fn from(failure: andante_ingest::PushFailure) -> Self {
        ApiError::new(failure.kind, failure.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response();
        if self.kind == ErrorKind::TooManyRequests {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

/// The rules crate's failures (rule groups, SLOs) as API errors; storage details are logged.
pub(crate) fn rules_error(error: andante_rules::RulesError) -> ApiError {
    match error {
        andante_rules::RulesError::Invalid { message } => ApiError::bad_request(message),
        andante_rules::RulesError::NotFound(message) => ApiError::new(ErrorKind::NotFound, message),
        andante_rules::RulesError::Limit(message) => {
            ApiError::new(ErrorKind::TooManyRequests, message)
        }
        andante_rules::RulesError::Read { .. } | andante_rules::RulesError::Storage(_) => {
            tracing::error!(%error, "rule storage failed");
            ApiError::new(ErrorKind::Internal, "rule storage failed")
        }
    }
}
