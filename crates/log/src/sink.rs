//! The distributor's sink: a validated push becomes records on the span topic, one or more per
//! partition its traces hash to, and the push is acknowledged once the broker acknowledged all
//! of them. The per-tenant rate limit is judged here (per distributor, Tempo's "local"
//! strategy); the per-trace limits need the assembled trace, so consumers judge them.

use std::collections::BTreeMap;
use std::sync::Arc;

use andante_ingest::{
    EncodedFragment, PushFailure, RateLimiter, RefusalReason, SinkOutcome, TraceSink,
};
use andante_live::LiveMetrics;
use andante_model::{ErrorKind, TenantId};
use futures::future::BoxFuture;
use rskafka::client::partition::Compression;
use rskafka::record::Record;

use crate::client::Log;
use crate::partition::partition_of;
use crate::record;

pub struct LogSink {
    log: Arc<Log>,
    rate_limiter: RateLimiter,
    limits: andante_ingest::IngestLimits,
    /// Where refusals are counted (`andante_discarded_spans_total`) and accepted spans summed.
    metrics: Arc<LiveMetrics>,
}

impl LogSink {
    pub fn new(
        log: Arc<Log>,
        limits: andante_ingest::IngestLimits,
        metrics: Arc<LiveMetrics>,
    ) -> LogSink {
        LogSink {
            log,
            rate_limiter: RateLimiter::new(&limits),
            limits,
            metrics,
        }
    }

    async fn produce(
        &self,
        tenant: &TenantId,
        fragments: Vec<EncodedFragment>,
        request_bytes: u64,
    ) -> Result<SinkOutcome, PushFailure> {
        let total_spans: usize = fragments.iter().map(|f| f.span_count).sum();
        if total_spans == 0 {
            return Ok(SinkOutcome::default());
        }
        andante_live::charge_rate_limit(
            &self.rate_limiter,
            &self.limits,
            &self.metrics,
            tenant,
            request_bytes,
            total_spans,
        )?;
        let max_fragment = self
            .log
            .config
            .max_record_bytes
            .saturating_sub(record::HEADER_BYTES + tenant.as_str().len());
        let partitions = self.log.partition_count();
        let mut outcome = SinkOutcome::default();
        let mut by_partition: BTreeMap<u32, Vec<EncodedFragment>> = BTreeMap::new();
        for encoded in fragments {
            if record::fragment_size(&encoded) > max_fragment {
                self.metrics.add_discarded(
                    tenant.as_str(),
                    RefusalReason::TraceTooLarge,
                    encoded.span_count,
                );
                outcome.refused_spans += encoded.span_count;
                if outcome.message.is_empty() {
                    outcome.message = format!(
                        "trace `{}`: {} bytes of it in one push exceed the log's record limit of {} bytes (`kafka.max_record_bytes`)",
                        encoded.trace_id,
                        encoded.bytes.len(),
                        self.log.config.max_record_bytes
                    );
                }
                continue;
            }
            by_partition
                .entry(partition_of(tenant.as_str(), &encoded.trace_id, partitions))
                .or_default()
                .push(encoded);
        }
        if outcome.refused_spans > 0 {
            outcome.message = format!(
                "refused {} span(s): {}",
                outcome.refused_spans, outcome.message
            );
        }
        if by_partition.is_empty() {
            return Err(PushFailure {
                kind: ErrorKind::TooManyRequests,
                message: outcome.message,
            });
        }
        let timestamp = rskafka::chrono::Utc::now();
        let writes = by_partition.into_iter().map(|(partition, fragments)| {
            let records = pack(tenant, &fragments, max_fragment)
                .into_iter()
                .map(|value| Record {
                    key: None,
                    value: Some(value),
                    headers: BTreeMap::from([(
                        "tenant".to_owned(),
                        tenant.as_str().as_bytes().to_vec(),
                    )]),
                    timestamp,
                })
                .collect();
            let client = self.log.partition(partition).clone();
            async move { client.produce(records, Compression::Snappy).await }
        });
        let produced = tokio::time::timeout(
            self.log.config.produce_timeout,
            futures::future::join_all(writes),
        )
        .await;
        let failure = match produced {
            Err(_) => Some(format!(
                "no answer from the log within {:?} (`kafka.produce_timeout`)",
                self.log.config.produce_timeout
            )),
            Ok(results) => results
                .into_iter()
                .find_map(|result| result.err())
                .map(|error| error.to_string()),
        };
        if let Some(cause) = failure {
            tracing::warn!(%tenant, %cause, "push not written to the log");
            return Err(PushFailure {
                kind: ErrorKind::Unavailable,
                message: "failed to write spans to the log; retry later".to_owned(),
            });
        }
        self.metrics
            .add_received(total_spans - outcome.refused_spans);
        Ok(outcome)
    }
}

/// Packs fragments into record values of at most `max_fragments_bytes` of fragments each.
fn pack(
    tenant: &TenantId,
    fragments: &[EncodedFragment],
    max_fragments_bytes: usize,
) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (index, fragment) in fragments.iter().enumerate() {
        let fragment_size = record::fragment_size(fragment);
        if index > start && size + fragment_size > max_fragments_bytes {
            values.push(record::encode(tenant, &fragments[start..index]));
            (start, size) = (index, 0);
        }
        size += fragment_size;
    }
    if start < fragments.len() {
        values.push(record::encode(tenant, &fragments[start..]));
    }
    values
}

impl TraceSink for LogSink {
    fn push<'a>(
        &'a self,
        tenant: &'a TenantId,
        fragments: Vec<EncodedFragment>,
        request_bytes: u64,
    ) -> BoxFuture<'a, Result<SinkOutcome, PushFailure>> {
        Box::pin(self.produce(tenant, fragments, request_bytes))
    }

    fn count_refused(&self, tenant: &TenantId, reason: RefusalReason, spans: usize) {
        self.metrics.add_discarded(tenant.as_str(), reason, spans);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use andante_model::TraceId;
    use bytes::Bytes;

    #[test]
    fn records_hold_at_most_the_limit_and_keep_every_fragment_in_order() {
        let tenant = TenantId::new("t").unwrap();
        let fragments: Vec<EncodedFragment> = (0..50u8)
            .map(|i| EncodedFragment {
                trace_id: TraceId([i; 16]),
                span_count: 1,
                bytes: Bytes::from(vec![i; 10 + usize::from(i) * 7]),
            })
            .collect();
        let limit = 400;
        let values = pack(&tenant, &fragments, limit);
        assert!(values.len() > 1);
        let mut seen = Vec::new();
        for value in values {
            let (decoded_tenant, decoded) = record::decode(Bytes::from(value)).unwrap();
            assert_eq!(decoded_tenant, tenant);
            let size: usize = decoded.iter().map(record::fragment_size).sum();
            assert!(size <= limit, "{size}");
            seen.extend(decoded);
        }
        assert_eq!(seen, fragments);
    }
}
