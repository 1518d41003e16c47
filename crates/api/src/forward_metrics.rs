//! A distributor apart takes metrics too, so one OTLP endpoint serves a Collector's traces and
//! metrics: every metrics push (Prometheus remote-write, OTLP/HTTP, OTLP/gRPC) is sent on
//! unchanged to the process that holds the series store (`distributor.metrics_url`, a querier),
//! and the client gets that process's answer. Nothing is acknowledged before the store
//! acknowledged it; a store that does not answer is 503 / `UNAVAILABLE` (retryable). The body is
//! not decoded here: the store decodes, applies its limits and answers partial success exactly
//! as it does for a direct push, and delta sums stay with the one store that keeps their totals.

use std::time::Duration;

use andante_model::{ErrorKind, TenantId};
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;

use crate::tenant::ORG_ID_HEADER;
use crate::ApiError;

/// Request headers that say how to read the body or who sends it, passed on as received.
const PASSED_ON: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::AUTHORIZATION,
];
const REMOTE_WRITE_VERSION: &str = "x-prometheus-remote-write-version";

pub struct MetricsForward {
    base: String,
    client: reqwest::Client,
}

/// The store's answer, as the client will get it.
pub struct Forwarded {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl MetricsForward {
    pub fn new(base_url: &str, timeout: Duration) -> Result<MetricsForward, String> {
        reqwest::Url::parse(base_url).map_err(|error| format!("`{base_url}`: {error}"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| error.to_string())?;
        Ok(MetricsForward {
            base: base_url.trim_end_matches('/').to_owned(),
            client,
        })
    }

    /// Sends `body` to `path` of the store for `tenant` (named only with multitenancy on).
    pub async fn send(
        &self,
        path: &str,
        tenant: Option<&TenantId>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Forwarded, ApiError> {
        let mut request = self.client.post(format!("{}{path}", self.base)).body(body);
        for name in PASSED_ON
            .iter()
            .chain(std::iter::once(&HeaderName::from_static(
                REMOTE_WRITE_VERSION,
            )))
        {
            if let Some(value) = headers.get(name) {
                request = request.header(name.as_str(), value.as_bytes());
            }
        }
        if let Some(tenant) = tenant {
            request = request.header(ORG_ID_HEADER, tenant.as_str());
        }
        let unavailable = |error: reqwest::Error| {
            tracing::warn!(store = %self.base, %error, "metrics store did not answer a forwarded push");
            ApiError::new(
                ErrorKind::Unavailable,
                format!(
                    "the metrics store ({}, `distributor.metrics_url`) did not answer; retry later",
                    self.base
                ),
            )
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = StatusCode::from_u16(response.status().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(unavailable)?;
        Ok(Forwarded {
            status,
            content_type,
            body,
        })
    }
}

impl Forwarded {
    /// The store's answer as an HTTP response to the client.
    pub fn into_http(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        if let Some(value) = self.content_type.and_then(|v| v.parse().ok()) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
    }

    /// The store's answer to an OTLP protobuf push, for a gRPC client: its response message,
    /// or an error of the kind its status names.
    pub fn into_otlp_response(self) -> Result<ExportMetricsServiceResponse, ApiError> {
        if self.status.is_success() {
            return ExportMetricsServiceResponse::decode(self.body.as_ref()).map_err(|error| {
                ApiError::new(
                    ErrorKind::Unavailable,
                    format!("the metrics store's answer did not decode: {error}"),
                )
            });
        }
        Err(ApiError::new(
            kind_of(self.status),
            String::from_utf8_lossy(&self.body).into_owned(),
        ))
    }
}

/// The error kind an HTTP status stands for (server errors: retryable unavailability).
fn kind_of(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        413 => ErrorKind::PayloadTooLarge,
        415 => ErrorKind::UnsupportedMediaType,
        429 => ErrorKind::TooManyRequests,
        400..=499 => ErrorKind::BadRequest,
        _ => ErrorKind::Unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_kinds_that_answer_with_them() {
        for kind in [
            ErrorKind::BadRequest,
            ErrorKind::Unauthenticated,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::PayloadTooLarge,
            ErrorKind::UnsupportedMediaType,
            ErrorKind::TooManyRequests,
            ErrorKind::Unavailable,
        ] {
            assert_eq!(
                kind_of(StatusCode::from_u16(kind.http_status()).unwrap()),
                kind
            );
        }
        assert_eq!(
            kind_of(StatusCode::INTERNAL_SERVER_ERROR),
            ErrorKind::Unavailable
        );
        assert_eq!(kind_of(StatusCode::CONFLICT), ErrorKind::BadRequest);
    }

    #[tokio::test]
    async fn a_store_that_does_not_answer_is_unavailable() {
        let forward = MetricsForward::new("http://127.0.0.1:1", Duration::from_secs(2)).unwrap();
        let error = forward
            .send("/api/v1/push", None, &HeaderMap::new(), Bytes::new())
            .await
            .err()
            .expect("nothing listens on port 1");
        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert!(
            error.message.contains("distributor.metrics_url"),
            "{}",
            error.message
        );
    }
}
