//! The generator apart: it reads the span topic's partitions it owns (the same ordinal rule as
//! block-builders, so both spans of a service-graph edge, which share a trace, reach one
//! generator) from the newest offset at start, and hands each record's spans to the metrics
//! generator's queue, as `all` hands it acknowledged pushes. Its series leave by remote-write.
//! Nothing is committed: generated series are rates of what arrives, and a restarted generator,
//! like Tempo's, starts counting afresh (counters start from zero, which `rate` reads as a reset).

use std::sync::Arc;

use andante_ingest::EncodedFragment;
use andante_live::SpanSink;
use andante_model::TenantId;
use futures::future::BoxFuture;
use rskafka::client::partition::OffsetAt;
use tokio::sync::watch;

use crate::builder::{consume, owned_partitions, BuilderMetrics, RecordSink};
use crate::client::Log;

struct SpanFeed(Arc<dyn SpanSink>);

impl RecordSink for SpanFeed {
    fn record<'a>(
        &'a self,
        tenant: &'a TenantId,
        fragments: Vec<EncodedFragment>,
        _offset: u64,
    ) -> BoxFuture<'a, ()> {
        let bytes: Vec<bytes::Bytes> = fragments.into_iter().map(|f| f.bytes).collect();
        let spans = andante_live::decode_fragments(&bytes);
        self.0.accept(tenant, spans);
        Box::pin(async {})
    }

    fn skip(&self, _offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Starts consuming the owned partitions from their newest offsets into `sink`.
pub async fn start_generator_feed(
    log: Arc<Log>,
    metrics: Arc<BuilderMetrics>,
    instance: u32,
    instances: u32,
    sink: Arc<dyn SpanSink>,
    stop: watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let feed: Arc<dyn RecordSink> = Arc::new(SpanFeed(sink));
    let mut tasks = Vec::new();
    for partition in owned_partitions(&log, instance, instances) {
        let client = log.partition(partition).clone();
        let start = client
            .get_offset(OffsetAt::Latest)
            .await
            .map_err(|error| format!("partition {partition}: {error}"))?
            .max(0) as u64;
        tracing::info!(partition, offset = start, "generator reads partition");
        tasks.push(tokio::spawn(consume(
            client,
            partition,
            start,
            feed.clone(),
            metrics.clone(),
            stop.clone(),
            crate::builder::FETCH_WAIT_MS,
        )));
    }
    Ok(tasks)
}
