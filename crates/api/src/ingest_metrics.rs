//! Metric samples in: the Prometheus remote-write receiver (`POST /api/v1/push`, the path Mimir
//! and Grafana Agent use) and OTLP metrics (`POST /v1/metrics` on the OTLP port and Mimir's
//! `POST /otlp/v1/metrics` on the HTTP port; gRPC `MetricsService/Export` in
//! `ingest_grpc.rs`). Both call `andante_ingest::SamplePushService`, which decodes, admits and
//! answers; here are the transports and the sink of `all`, [`StoreSink`]: the series store
//! behind its WAL ([`andante_tsdb::MetricsHead`]: store, then fsync) before anything is answered.
//!
//! Exemplars ride along (remote-write `exemplars`, OTLP exemplars on sums and histograms); like
//! Prometheus, one the exemplar store refuses (out of order, duplicate, too long) is counted
//! (`andante_metrics_store_exemplars_refused`) and never fails the push. Status codes: 204 when
//! every remote-write sample was taken, 400 / 429 as the service decides, 503 when nothing could
//! be made durable.

use std::sync::Arc;

use andante_ingest::sample_push::{SampleBatch, SampleSink};
use andante_ingest::{Encoding, PushFailure};
use andante_model::{ErrorKind, TenantId};
use andante_tsdb::AppendOutcome;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;

use crate::forward_metrics::MetricsForward;
use crate::ingest_http::{otlp_error, otlp_format, otlp_http, BodyFormat};
use crate::tenant::push_tenant;
use crate::{ApiError, SharedState};

pub(crate) async fn remote_write(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(forward) = &state.metrics_forward {
        return forwarded(&state, forward, "/api/v1/push", &headers, body).await;
    }
    let tenant = push_tenant(&headers, state.config.multitenancy_enabled)?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("snappy");
    if !encoding.eq_ignore_ascii_case("snappy") {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!(
                "unsupported content encoding `{encoding}`: remote-write bodies are snappy-compressed"
            ),
        ));
    }
    state.samples.remote_write(&tenant, body).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/metrics` (OTLP/HTTP, protobuf or JSON, gzip or plain).
pub(crate) async fn otlp_metrics(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(forward) = &state.metrics_forward {
        return match forwarded(&state, forward, "/otlp/v1/metrics", &headers, body).await {
            Ok(response) => response,
            Err(error) => otlp_error(otlp_format(&headers).unwrap_or(BodyFormat::Protobuf), error),
        };
    }
    otlp_http(
        state,
        headers,
        body,
        |state, tenant, body, encoding, format| async move {
            push_otlp_metrics(&state, &tenant, body, encoding, format).await
        },
    )
    .await
}

/// A distributor apart: the push goes on to the series store, and its answer back.
async fn forwarded(
    state: &SharedState,
    forward: &MetricsForward,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = push_tenant(headers, state.config.multitenancy_enabled)?;
    let named = state.config.multitenancy_enabled.then_some(&tenant);
    Ok(forward.send(path, named, headers, body).await?.into_http())
}

/// OTLP metrics over either transport.
pub(crate) async fn push_otlp_metrics(
    state: &SharedState,
    tenant: &TenantId,
    body: Bytes,
    encoding: Encoding,
    format: BodyFormat,
) -> Result<ExportMetricsServiceResponse, ApiError> {
    Ok(state.samples.otlp(tenant, body, encoding, format).await?)
}

/// OTLP metrics over gRPC (the body plain protobuf: tonic undid any compression), forwarded by
/// a distributor apart, pushed here otherwise.
pub(crate) async fn export_otlp_metrics(
    state: &SharedState,
    tenant: &TenantId,
    authorization: Option<axum::http::HeaderValue>,
    body: Bytes,
) -> Result<ExportMetricsServiceResponse, ApiError> {
    let Some(forward) = &state.metrics_forward else {
        return push_otlp_metrics(
            state,
            tenant,
            body,
            Encoding::Identity,
            BodyFormat::Protobuf,
        )
        .await;
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-protobuf"),
    );
    if let Some(authorization) = authorization {
        headers.insert(header::AUTHORIZATION, authorization);
    }
    let named = state.config.multitenancy_enabled.then_some(tenant);
    forward
        .send("/otlp/v1/metrics", named, &headers, body)
        .await?
        .into_otlp_response()
}

/// The sink of `all`: metadata into the store's catalogue, samples and exemplars through the
/// metrics WAL into the store, counts into `andante_metric_samples_total`.
pub struct StoreSink {
    pub head: Arc<andante_tsdb::MetricsHead>,
    pub store: Arc<andante_tsdb::Store>,
    pub metrics: crate::metrics::SampleCounter,
}

impl SampleSink for StoreSink {
    fn store<'a>(
        &'a self,
        tenant: &'a TenantId,
        batch: SampleBatch,
    ) -> BoxFuture<'a, Result<AppendOutcome, PushFailure>> {
        Box::pin(async move {
            self.store.metadata.set(tenant.as_str(), batch.metadata);
            let outcome = self
                .head
                .append_with_deltas(tenant.as_str(), batch.series, batch.delta, batch.now_ms)
                .await
                .map_err(not_durable)?;
            self.head
                .append_exemplars(tenant.as_str(), batch.exemplars)
                .await
                .map_err(not_durable)?;
            Ok(outcome)
        })
    }

    fn count(&self, tenant: &TenantId, stored: usize, refused: usize) {
        self.metrics.record(tenant.as_str(), stored, refused);
    }
}

/// A WAL failure: nothing of the push is acknowledged, and the sender should retry.
fn not_durable(error: impl std::fmt::Display) -> PushFailure {
    tracing::error!(%error, "metrics wal append failed");
    PushFailure {
        kind: ErrorKind::Unavailable,
        message: "failed to write samples durably; retry later".to_owned(),
    }
}
