//! `/metrics`: Andante's self-metrics in the Prometheus text format. Counters that lower crates
//! keep as atomics are read at scrape time by a collector; latency histograms live here.

use std::sync::Arc;

use andante_block::blocklist::BlockList;
use andante_live::LiveStore;
use prometheus_client::encoding::{EncodeMetric, DescriptorEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;

/// Metrics updated on request paths.
pub struct Metrics {
    pub registry: Registry,
    pub wal_fsync_seconds: Histogram,
}

struct StoreCollector {
    live: Arc<LiveStore>,
    blocks: BlockList,
}

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCollector")
    }
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl prometheus_client::collector::Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = &self.live.metrics;
        let load = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed);
        counter(&mut encoder, "andante_spans_received", "Spans accepted and written to the WAL.", load(&metrics.spans_received))?;
        let discarded = metrics.discarded();
        {
            let sample = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "andante_discarded_spans",
                "Spans refused, by tenant and reason (rate_limited, trace_too_large, live_traces_exceeded, invalid).",
                None,
                sample.metric_type(),
            )?;
            for (tenant, reason, count) in discarded {
                let labels = [("tenant", tenant), ("reason", reason.as_str().to_owned())];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(&mut encoder, "andante_traces_cut", "Traces cut from the live store as complete.", load(&metrics.traces_cut))?;
        counter(&mut encoder, "andante_blocks_flushed", "Blocks written from live traces.", load(&metrics.blocks_flushed))?;
        counter(&mut encoder, "andante_block_flush_failures", "Block writes that failed and will be retried.", load(&metrics.block_flush_failures))?;
        counter(&mut encoder, "andante_wal_segments_removed", "WAL segments deleted after their traces reached blocks.", load(&metrics.wal_segments_removed))?;
        gauge(&mut encoder, "andante_wal_replayed_records", "WAL records replayed at the last start.", load(&metrics.wal_replayed_records) as i64)?;
        let (live_traces, live_bytes) = self.live.memory_totals();
        gauge(&mut encoder, "andante_live_traces", "Traces still receiving spans.", live_traces as i64)?;
        gauge(&mut encoder, "andante_live_bytes", "Encoded bytes of traces held in memory.", live_bytes as i64)?;
        gauge(&mut encoder, "andante_wal_bytes", "Bytes of WAL segments on disk.", self.live.wal().disk_bytes() as i64)?;
        let (blocks, spans, bytes) = self.blocks.totals();
        gauge(&mut encoder, "andante_blocks", "Blocks in the block list.", blocks as i64)?;
        gauge(&mut encoder, "andante_block_spans", "Spans stored in blocks.", spans as i64)?;
        gauge(&mut encoder, "andante_block_bytes", "Bytes of block data and indexes.", bytes as i64)?;
        Ok(())
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let wal_fsync_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register("andante_wal_fsync_seconds", "Latency of WAL fsyncs (one per group commit).", wal_fsync_seconds.clone());
        Metrics { registry, wal_fsync_seconds }
    }

    /// Adds the collector that reads the live store and block list at scrape time.
    pub fn register_store(&mut self, live: Arc<LiveStore>, blocks: BlockList) {
        self.registry.register_collector(Box::new(StoreCollector { live, blocks }));
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::error!("failed to encode metrics");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
