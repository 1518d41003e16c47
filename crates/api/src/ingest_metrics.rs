//! Prometheus remote-write receiver (`POST /api/v1/push`, the path Mimir and Grafana Agent use):
//! snappy body → checked series → [`andante_tsdb::MetricsHead`] (store, then WAL fsync) → 204.
//!
//! Answers follow Prometheus' receiver, because senders act on the status: 204 when every
//! sample was taken; 400 with the reasons when some were refused for good (bad labels, out of
//! order, duplicate timestamps with other values) — the rest of the push is kept and a sender
//! does not retry; 429 naming `metrics_store.max_series_per_tenant` when the series limit
//! refused samples, which a sender may retry later; 5xx when nothing could be made durable.

use andante_ingest::metrics::{decode_remote_write, decompress_snappy};
use andante_model::ErrorKind;
use andante_tsdb::AppendOutcome;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::tenant::push_tenant;
use crate::{ApiError, SharedState};

/// Bodies above this are decoded and appended on the blocking pool.
const INLINE_BYTES: usize = 64 * 1024;

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
    let decode = move || {
        let plain = decompress_snappy(&body, limit)?;
        decode_remote_write(&plain, series_limits, now_ms)
    };
    let decoded = if body_len(&headers) > INLINE_BYTES {
        tokio::task::spawn_blocking(decode)
            .await
            .map_err(|error| {
                ApiError::new(ErrorKind::Internal, format!("decode task failed: {error}"))
            })??
    } else {
        decode()?
    };
    let mut refusals: Vec<String> = decoded.refusal_message().into_iter().collect();
    let outcome = state
        .metrics_head
        .append(tenant.as_str(), decoded.series, now_ms)
        .await
        .map_err(|error| {
            tracing::error!(%error, "metrics wal append failed");
            ApiError::new(
                ErrorKind::Unavailable,
                "failed to write samples durably; retry later",
            )
        })?;
    state.metrics.record_metric_samples(
        tenant.as_str(),
        outcome.stored,
        decoded.refused_samples + outcome.refused(),
    );
    refusals.extend(outcome_message(&outcome));
    if outcome.series_limited > 0 {
        return Err(ApiError::new(
            ErrorKind::TooManyRequests,
            format!(
                "{} samples refused: the tenant's series limit `metrics_store.max_series_per_tenant` is reached; {}",
                outcome.series_limited,
                refusals.join("; ")
            ),
        ));
    }
    if !refusals.is_empty() {
        return Err(ApiError::bad_request(refusals.join("; ")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn body_len(headers: &HeaderMap) -> usize {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX)
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
