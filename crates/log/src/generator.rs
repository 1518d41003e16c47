//! The generator apart: it reads the span topic's partitions it owns (the `generator` consumer
//! group's share, or an ordinal; a trace is on one partition, so both spans of a service-graph
//! edge reach one generator) from the newest offset when it gains them, and hands each record's spans to the metrics
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

use crate::builder::{consume, BuilderMetrics, RecordSink};
use crate::client::Log;
use crate::ownership::{Memberships, Ownership, Partitions};

struct SpanFeed(Arc<dyn SpanSink>);

impl RecordSink for SpanFeed {
    fn record<'a>(
        &'a self,
        tenant: &'a TenantId,
        fragments: Vec<EncodedFragment>,
        _offset: u64,
    ) -> BoxFuture<'a, ()> {
        let spans = fragments.iter().map(|f| f.span_count).sum();
        let bytes: Vec<bytes::Bytes> = fragments.into_iter().map(|f| f.bytes).collect();
        self.0.accept(tenant, bytes, spans);
        Box::pin(async {})
    }

    fn skip(&self, _offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// Follows the owned partitions, consuming each from its newest offset when gained into `sink`.
pub fn start_generator_feed(
    log: Arc<Log>,
    metrics: Arc<BuilderMetrics>,
    ownership: &Ownership,
    memberships: &Memberships,
    sink: Arc<dyn SpanSink>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let feed: Arc<dyn RecordSink> = Arc::new(SpanFeed(sink));
    let owned: Arc<Partitions<()>> = Arc::default();
    let assigned = ownership.follow(&log, "generator", memberships);
    let gauge = metrics.owned("generator");
    tokio::spawn(owned.follow(assigned, stop, gauge, move |partition, stop| {
        let (log, metrics, feed) = (log.clone(), metrics.clone(), feed.clone());
        async move {
            let client = log.partition(partition).clone();
            let start = client
                .get_offset(OffsetAt::Latest)
                .await
                .map_err(|error| format!("partition {partition}: {error}"))?
                .max(0) as u64;
            tracing::info!(partition, offset = start, "generator reads partition");
            tokio::spawn(consume(
                client,
                partition,
                start,
                feed,
                metrics,
                stop,
                crate::builder::FETCH_WAIT_MS,
            ));
            Ok(Arc::new(()))
        }
    }))
}
