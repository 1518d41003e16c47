//! The metric-sample push pipeline, one service for every metrics receiver (Prometheus
//! remote-write; OTLP metrics over HTTP and gRPC): inflate and decode (on the blocking pool when
//! large), apply the tenant's sample rate (`metrics_store.ingestion_rate`, refused whole as Mimir
//! does, so the sender retries unchanged), hand the batch to a [`SampleSink`], and account for
//! every refused sample. The sink is the series store behind its WAL in `all`; the answer waits
//! for it, so nothing is acknowledged that is not durable.
//!
//! Answers follow each protocol's receiver, because senders act on them. Remote-write
//! (Prometheus): success when every sample was taken; a bad request with the reasons when some
//! were refused for good (bad labels, out of order, duplicate timestamps with other values) —
//! the rest is kept and the sender does not retry; too many requests naming
//! `metrics_store.max_series_per_tenant` when the series limit refused samples. OTLP: partial
//! success counting the refused points, and too many requests only when the series limit
//! refused everything.

use std::sync::Arc;

use andante_model::{ErrorKind, TenantId};
use andante_tsdb::metadata::MetricMetadata;
use andante_tsdb::{AppendOutcome, Exemplar, Labels, SeriesSamples};
use bytes::Bytes;
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
};

use crate::metrics::{decode_remote_write, decompress_snappy, SeriesLimits};
use crate::otlp_metrics::{decode_otlp_metrics_json, decode_otlp_metrics_protobuf, translate};
use crate::push::decode_off_runtime;
use crate::{decompress_body, BodyFormat, Encoding, PushFailure, RateLimiter};

/// One push's admitted samples, ready to store.
pub struct SampleBatch {
    /// What the sender said about metric families (type, help, unit).
    pub metadata: Vec<(String, MetricMetadata)>,
    /// Cumulative series.
    pub series: Vec<SeriesSamples>,
    /// Delta series (OTLP), which the store turns into running totals.
    pub delta: Vec<SeriesSamples>,
    pub exemplars: Vec<(Labels, Exemplar)>,
    pub now_ms: i64,
}

/// Where admitted samples go. `store` resolves once they are durable; samples it refuses (out of
/// order, series limit...) are in the outcome, not errors.
pub trait SampleSink: Send + Sync + 'static {
    fn store<'a>(
        &'a self,
        tenant: &'a TenantId,
        batch: SampleBatch,
    ) -> BoxFuture<'a, Result<AppendOutcome, PushFailure>>;

    /// Counts a push's stored and refused samples (`andante_metric_samples_total`).
    fn count(&self, tenant: &TenantId, stored: usize, refused: usize);
}

/// The pipeline's settings and its sink; cheap to clone.
#[derive(Clone)]
pub struct SamplePushService {
    sink: Arc<dyn SampleSink>,
    rate: Arc<RateLimiter>,
    max_request_bytes: usize,
    series_limits: SeriesLimits,
}

impl SamplePushService {
    pub fn new(
        sink: Arc<dyn SampleSink>,
        rate: RateLimiter,
        max_request_bytes: usize,
        series_limits: SeriesLimits,
    ) -> Self {
        SamplePushService {
            sink,
            rate: Arc::new(rate),
            max_request_bytes,
            series_limits,
        }
    }

    /// A snappy-compressed remote-write body. `Ok(())`: every sample was stored.
    pub async fn remote_write(&self, tenant: &TenantId, body: Bytes) -> Result<(), PushFailure> {
        let (limit, series_limits) = (self.max_request_bytes, self.series_limits);
        let now_ms = now_ms();
        let body_bytes = body.len();
        let decoded = decode_off_runtime(body_bytes, move || {
            let plain = decompress_snappy(&body, limit)?;
            decode_remote_write(&plain, series_limits, now_ms)
        })
        .await?;
        self.admit(tenant, decoded.accepted_samples())?;
        let mut refusals: Vec<String> = decoded.refusal_message().into_iter().collect();
        let batch = SampleBatch {
            metadata: decoded.metadata,
            series: decoded.series,
            delta: Vec::new(),
            exemplars: decoded.exemplars,
            now_ms,
        };
        let outcome = self.sink.store(tenant, batch).await?;
        self.sink.count(
            tenant,
            outcome.stored,
            decoded.refused_samples + outcome.refused(),
        );
        refusals.extend(outcome_message(&outcome));
        if outcome.series_limited > 0 {
            refusals.insert(0, series_limit_message(outcome.series_limited));
            return Err(failure(ErrorKind::TooManyRequests, refusals.join("; ")));
        }
        if !refusals.is_empty() {
            return Err(failure(ErrorKind::BadRequest, refusals.join("; ")));
        }
        Ok(())
    }

    /// An OTLP metrics body (protobuf or JSON, gzip or plain).
    pub async fn otlp(
        &self,
        tenant: &TenantId,
        body: Bytes,
        encoding: Encoding,
        format: BodyFormat,
    ) -> Result<ExportMetricsServiceResponse, PushFailure> {
        let (limit, series_limits) = (self.max_request_bytes, self.series_limits);
        let now_ms = now_ms();
        let body_bytes = body.len();
        let translated = decode_off_runtime(body_bytes, move || {
            let plain = decompress_body(&body, encoding, limit)?;
            let request = match format {
                BodyFormat::Json => decode_otlp_metrics_json(&plain)?,
                _ => decode_otlp_metrics_protobuf(&plain)?,
            };
            Ok(translate(request, series_limits, now_ms))
        })
        .await?;
        self.admit(
            tenant,
            translated.cumulative.accepted_samples() + translated.delta.accepted_samples(),
        )?;
        let mut messages: Vec<String> = translated.refusal_message().into_iter().collect();
        let refused_at_decode = translated.refused_at_decode();
        let mut exemplars = translated.cumulative.exemplars;
        exemplars.extend(translated.delta.exemplars);
        let batch = SampleBatch {
            metadata: translated.cumulative.metadata,
            series: translated.cumulative.series,
            delta: translated.delta.series,
            exemplars,
            now_ms,
        };
        let outcome = self.sink.store(tenant, batch).await?;
        let refused = refused_at_decode + outcome.refused();
        self.sink.count(tenant, outcome.stored, refused);
        messages.extend(outcome_message(&outcome));
        if outcome.series_limited > 0 {
            let limited = series_limit_message(outcome.series_limited);
            if outcome.stored == 0 && refused == outcome.series_limited {
                return Err(failure(ErrorKind::TooManyRequests, limited));
            }
            messages.push(limited);
        }
        let partial_success = (refused > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: refused as i64,
            error_message: messages.join("; "),
        });
        Ok(ExportMetricsServiceResponse { partial_success })
    }

    /// The tenant's sample rate: a push past it is refused whole and counted.
    fn admit(&self, tenant: &TenantId, samples: usize) -> Result<(), PushFailure> {
        if samples == 0 || self.rate.try_acquire(tenant, samples as u64) {
            return Ok(());
        }
        self.sink.count(tenant, 0, samples);
        let (rate, burst) = self.rate.rate_and_burst();
        Err(failure(
            ErrorKind::TooManyRequests,
            format!(
                "ingestion rate limit exceeded: {samples} samples refused; tenant {tenant} may push {rate} samples/s with bursts of {burst} (metrics_store.ingestion_rate, metrics_store.ingestion_burst_size)",
                tenant = tenant.as_str()
            ),
        ))
    }
}

fn now_ms() -> i64 {
    (andante_model::now_unix_nanos() / 1_000_000) as i64
}

fn failure(kind: ErrorKind, message: String) -> PushFailure {
    PushFailure { kind, message }
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

#[cfg(test)]
mod tests {
    use super::*;
    use andante_tsdb::remote_write::{Label, Sample, TimeSeries, WriteRequest};
    use parking_lot::Mutex;
    use prost::Message;

    /// Stores up to `series_limit` series of a push and refuses the rest as the series limit
    /// would; keeps what it stored and what it was told to count.
    #[derive(Default)]
    struct Recorder {
        stored: Mutex<Vec<(String, usize)>>,
        counted: Mutex<Vec<(usize, usize)>>,
        series_limit: usize,
    }

    impl SampleSink for Recorder {
        fn store<'a>(
            &'a self,
            tenant: &'a TenantId,
            batch: SampleBatch,
        ) -> BoxFuture<'a, Result<AppendOutcome, PushFailure>> {
            Box::pin(async move {
                let mut outcome = AppendOutcome::default();
                for (n, series) in batch.series.into_iter().chain(batch.delta).enumerate() {
                    if n < self.series_limit {
                        outcome.stored += series.samples.len();
                    } else {
                        outcome.series_limited += series.samples.len();
                    }
                }
                self.stored
                    .lock()
                    .push((tenant.to_string(), outcome.stored));
                Ok(outcome)
            })
        }

        fn count(&self, _tenant: &TenantId, stored: usize, refused: usize) {
            self.counted.lock().push((stored, refused));
        }
    }

    fn remote_write_body(series: usize) -> Bytes {
        let now = now_ms();
        let request = WriteRequest {
            timeseries: (0..series)
                .map(|n| TimeSeries {
                    labels: vec![
                        Label {
                            name: "__name__".into(),
                            value: "requests_total".into(),
                        },
                        Label {
                            name: "instance".into(),
                            value: format!("i{n}"),
                        },
                    ],
                    samples: vec![Sample {
                        value: 1.0,
                        timestamp: now,
                    }],
                    exemplars: Vec::new(),
                })
                .collect(),
            metadata: Vec::new(),
        };
        Bytes::from(
            snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .unwrap(),
        )
    }

    fn service(sink: Arc<Recorder>, rate: u64) -> SamplePushService {
        SamplePushService::new(
            sink,
            RateLimiter::per_second(rate, rate),
            1 << 20,
            SeriesLimits::default(),
        )
    }

    #[tokio::test]
    async fn remote_write_stores_and_counts_every_sample() {
        let sink = Arc::new(Recorder {
            series_limit: 100,
            ..Default::default()
        });
        let tenant = TenantId::new("team-a").unwrap();
        service(sink.clone(), 1_000)
            .remote_write(&tenant, remote_write_body(3))
            .await
            .unwrap();
        assert_eq!(*sink.stored.lock(), vec![("team-a".to_owned(), 3)]);
        assert_eq!(*sink.counted.lock(), vec![(3, 0)]);
    }

    #[tokio::test]
    async fn the_series_limit_is_a_429_naming_it_and_the_rate_refuses_the_push_whole() {
        let tenant = TenantId::new("team-a").unwrap();
        let limited = Arc::new(Recorder {
            series_limit: 1,
            ..Default::default()
        });
        let failure = service(limited.clone(), 1_000)
            .remote_write(&tenant, remote_write_body(3))
            .await
            .unwrap_err();
        assert_eq!(failure.kind, ErrorKind::TooManyRequests);
        assert!(
            failure.message.contains("max_series_per_tenant"),
            "{}",
            failure.message
        );
        assert_eq!(*limited.counted.lock(), vec![(1, 2)]);

        let sink = Arc::new(Recorder {
            series_limit: 100,
            ..Default::default()
        });
        let failure = service(sink.clone(), 2)
            .remote_write(&tenant, remote_write_body(3))
            .await
            .unwrap_err();
        assert_eq!(failure.kind, ErrorKind::TooManyRequests);
        assert!(
            failure.message.contains("metrics_store.ingestion_rate"),
            "{}",
            failure.message
        );
        assert!(
            sink.stored.lock().is_empty(),
            "nothing of a refused push is stored"
        );
        assert_eq!(*sink.counted.lock(), vec![(0, 3)]);
    }

    #[tokio::test]
    async fn a_body_that_is_not_snappy_is_a_bad_request() {
        let sink = Arc::new(Recorder::default());
        let tenant = TenantId::new("team-a").unwrap();
        let failure = service(sink.clone(), 1_000)
            .remote_write(&tenant, Bytes::from_static(b"plain text"))
            .await
            .unwrap_err();
        assert_eq!(failure.kind, ErrorKind::BadRequest);
        assert!(sink.stored.lock().is_empty());
    }
}
