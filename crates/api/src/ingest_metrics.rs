//! Metric samples in: the Prometheus remote-write receiver (`POST /api/v1/push`, the path Mimir
//! and Grafana Agent use) and OTLP metrics (`POST /v1/metrics` and gRPC `MetricsService/Export`,
//! sharing [`push_otlp_metrics`]). Both end in [`andante_tsdb::MetricsHead`] (store, then WAL
//! fsync) before they answer.
//!
//! OTLP answers with partial success: refused data points are counted in
//! `rejected_data_points` with the reasons; a push refused entirely by the series limit is
//! `429`/`RESOURCE_EXHAUSTED` naming `metrics_store.max_series_per_tenant`.
//!
//! Exemplars ride along (remote-write `exemplars`, OTLP exemplars on sums and histograms); like
//! Prometheus, one the exemplar store refuses (out of order, duplicate, too long) is counted
//! (`andante_metrics_store_exemplars_refused`) and never fails the push.
//!
//! A push past the tenant's sample rate (`metrics_store.ingestion_rate`, a token bucket in
//! samples) is refused whole: 429 / `RESOURCE_EXHAUSTED` naming the key.
//!
//! Answers follow Prometheus' receiver, because senders act on the status: 204 when every
//! sample was taken; 400 with the reasons when some were refused for good (bad labels, out of
//! order, duplicate timestamps with other values) — the rest of the push is kept and a sender
//! does not retry; 429 naming `metrics_store.max_series_per_tenant` when the series limit
//! refused samples, which a sender may retry later; 5xx when nothing could be made durable.

use andante_ingest::metrics::{decode_remote_write, decompress_snappy};
use andante_ingest::otlp_metrics::{
    decode_otlp_metrics_json, decode_otlp_metrics_protobuf, translate, TranslatedMetrics,
};
use andante_ingest::{decompress_body, Encoding, IngestError};
use andante_model::{ErrorKind, TenantId};
use andante_tsdb::AppendOutcome;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};

use crate::ingest_http::{decode_off_runtime, otlp_http, BodyFormat};
use crate::tenant::push_tenant;
use crate::{ApiError, SharedState};

pub(crate) async fn remote_write(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
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
    let limit = state.config.max_request_bytes;
    let series_limits = state.config.series_limits;
    let now_ms = (andante_model::now_unix_nanos() / 1_000_000) as i64;
    let body_bytes = body.len();
    let decode = move || {
        let plain = decompress_snappy(&body, limit)?;
        decode_remote_write(&plain, series_limits, now_ms)
    };
    let decoded = decode_off_runtime(body_bytes, decode).await?;
    admit_samples(&state, &tenant, decoded.accepted_samples())?;
    let mut refusals: Vec<String> = decoded.refusal_message().into_iter().collect();
    state
        .metrics_store
        .metadata
        .set(tenant.as_str(), decoded.metadata);
    let outcome = state
        .metrics_head
        .append(tenant.as_str(), decoded.series, now_ms)
        .await
        .map_err(not_durable)?;
    state
        .metrics_head
        .append_exemplars(tenant.as_str(), decoded.exemplars)
        .await
        .map_err(not_durable)?;
    state.metrics.record_metric_samples(
        tenant.as_str(),
        outcome.stored,
        decoded.refused_samples + outcome.refused(),
    );
    refusals.extend(outcome_message(&outcome));
    if outcome.series_limited > 0 {
        refusals.insert(0, series_limit_message(outcome.series_limited));
        return Err(ApiError::new(
            ErrorKind::TooManyRequests,
            refusals.join("; "),
        ));
    }
    if !refusals.is_empty() {
        return Err(ApiError::bad_request(refusals.join("; ")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/metrics` (OTLP/HTTP, protobuf or JSON, gzip or plain).
pub(crate) async fn otlp_metrics(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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

/// The OTLP metrics pipeline shared by HTTP and gRPC: inflate, decode, translate (on the
/// blocking pool for large bodies), store durably, and account for every refused point.
pub(crate) async fn push_otlp_metrics(
    state: &SharedState,
    tenant: &TenantId,
    body: Bytes,
    encoding: Encoding,
    format: BodyFormat,
) -> Result<ExportMetricsServiceResponse, ApiError> {
    let limit = state.config.max_request_bytes;
    let series_limits = state.config.series_limits;
    let now_ms = (andante_model::now_unix_nanos() / 1_000_000) as i64;
    let body_bytes = body.len();
    let decode = move || -> Result<TranslatedMetrics, IngestError> {
        let plain = decompress_body(&body, encoding, limit)?;
        let request = match format {
            BodyFormat::Json => decode_otlp_metrics_json(&plain)?,
            _ => decode_otlp_metrics_protobuf(&plain)?,
        };
        Ok(translate(request, series_limits, now_ms))
    };
    let translated = decode_off_runtime(body_bytes, decode).await?;
    admit_samples(
        state,
        tenant,
        translated.cumulative.accepted_samples() + translated.delta.accepted_samples(),
    )?;
    let mut messages: Vec<String> = translated.refusal_message().into_iter().collect();
    let refused_at_decode = translated.refused_at_decode();
    state
        .metrics_store
        .metadata
        .set(tenant.as_str(), translated.cumulative.metadata);
    let outcome = state
        .metrics_head
        .append_with_deltas(
            tenant.as_str(),
            translated.cumulative.series,
            translated.delta.series,
            now_ms,
        )
        .await
        .map_err(not_durable)?;
    let mut exemplars = translated.cumulative.exemplars;
    exemplars.extend(translated.delta.exemplars);
    state
        .metrics_head
        .append_exemplars(tenant.as_str(), exemplars)
        .await
        .map_err(not_durable)?;
    let refused = refused_at_decode + outcome.refused();
    state
        .metrics
        .record_metric_samples(tenant.as_str(), outcome.stored, refused);
    messages.extend(outcome_message(&outcome));
    if outcome.series_limited > 0 {
        let limited = series_limit_message(outcome.series_limited);
        if outcome.stored == 0 && refused == outcome.series_limited {
            return Err(ApiError::new(ErrorKind::TooManyRequests, limited));
        }
        messages.push(limited);
    }
    let partial_success = (refused > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: refused as i64,
        error_message: messages.join("; "),
    });
    Ok(ExportMetricsServiceResponse { partial_success })
}

/// The tenant's sample rate (`metrics_store.ingestion_rate`): a push past it is refused whole
/// and counted, as Mimir refuses it, so the sender retries it later unchanged.
fn admit_samples(state: &SharedState, tenant: &TenantId, samples: usize) -> Result<(), ApiError> {
    if samples == 0 || state.sample_rate.try_acquire(tenant, samples as u64) {
        return Ok(());
    }
    state
        .metrics
        .record_metric_samples(tenant.as_str(), 0, samples);
    let (rate, burst) = state.sample_rate.rate_and_burst();
    Err(ApiError::new(
        ErrorKind::TooManyRequests,
        format!(
            "ingestion rate limit exceeded: {samples} samples refused; tenant {tenant} may push {rate} samples/s with bursts of {burst} (metrics_store.ingestion_rate, metrics_store.ingestion_burst_size)",
            tenant = tenant.as_str()
        ),
    ))
}

/// A WAL failure: nothing of the push is acknowledged, and the sender should retry.
fn not_durable(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "metrics wal append failed");
    ApiError::new(
        ErrorKind::Unavailable,
        "failed to write samples durably; retry later",
    )
}

fn series_limit_message(samples: usize) -> String {
    format!(
        "{samples} samples refused: the tenant's series limit `metrics_store.max_series_per_tenant` is reached"
    )
}

/// Why the store refused samples, in Prometheus' words where it has them.
fn outcome_message(outcome: &AppendOutcome) -> Option<String> {
    let parts: Vec<String> = [
        (outcome.out_of_order, "out of order sample"),
        (outcome.conflicts, "duplicate sample for timestamp"),
        (
            outcome.too_old,
            "out of bounds (older than the store holds)",
        ),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} × {what}"))
    .collect();
    if parts.is_empty() {
        return None;
    }
    let example = outcome.first_refusal.as_deref().unwrap_or_default();
    Some(format!("{} (first: {example})", parts.join(", ")))
}
