//! The block-builder: for each partition it owns, a live store without a WAL fed from the log
//! at the committed offset. Traces are cut and written as blocks exactly as in `all` (same idle
//! and age rules, same block size), and after each block the store commits the oldest offset
//! any trace still in memory came from (`LiveStore` checkpoint, `OffsetCommit`). A restarted
//! builder resumes there; records after it whose traces were already written come back as
//! duplicate spans, which reads and compaction remove.
//!
//! Partitions are owned statically (`kafka.instance` of `kafka.instances`: partition p belongs
//! to instance p mod instances), Tempo's ordinal rule; a dead builder's partitions wait for it
//! to restart.

use std::sync::Arc;
use std::time::Duration;

use andante_block::blocklist::BlockList;
use andante_ingest::EncodedFragment;
use andante_live::{LiveConfig, LiveStore};
use andante_model::TenantId;
use andante_storage::Storage;
use bytes::Bytes;
use futures::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::OffsetAt;
use tokio::sync::watch;

use crate::client::Log;
use crate::offsets::BucketOffsets;
use crate::record;

/// The consumer name the block-builders' committed offsets are kept under (live-stores read
/// them).
pub(crate) const BUILDER_CONSUMER: &str = "block-builder";

/// Most bytes asked of the broker per fetch.
const FETCH_MAX_BYTES: i32 = 16 << 20;

/// How long a fetch waits at the broker for new records (block-builders, generators).
pub(crate) const FETCH_WAIT_MS: i32 = 500;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    partition: u32,
}

/// The block-builder's metrics, in whichever registry the process serves at `/metrics`.
#[derive(Default)]
pub struct BuilderMetrics {
    records: Counter,
    undecodable_records: Counter,
    /// Records that expired from the log before they were consumed.
    skipped_expired: Counter,
    fetch_errors: Counter,
    consumed: Family<PartitionLabel, Gauge>,
    committed: Family<PartitionLabel, Gauge>,
}

impl BuilderMetrics {
    pub fn register(registry: &mut Registry) -> Arc<BuilderMetrics> {
        let metrics = BuilderMetrics::default();
        registry.register(
            "andante_log_records_consumed",
            "Span-topic records this process consumed (as block-builder, live-store or generator)",
            metrics.records.clone(),
        );
        registry.register(
            "andante_log_undecodable_records",
            "Span-topic records skipped because they do not decode",
            metrics.undecodable_records.clone(),
        );
        registry.register(
            "andante_log_expired_records",
            "Span-topic records that expired from the log before this process read them",
            metrics.skipped_expired.clone(),
        );
        registry.register(
            "andante_log_fetch_errors",
            "Failed fetches from the log (each retried)",
            metrics.fetch_errors.clone(),
        );
        registry.register(
            "andante_log_consumed_offset",
            "The offset after the last record consumed, by partition",
            metrics.consumed.clone(),
        );
        registry.register(
            "andante_log_committed_offset",
            "The committed offset (everything before it is in listed blocks), by partition (block-builders only)",
            metrics.committed.clone(),
        );
        Arc::new(metrics)
    }

    pub(crate) fn set_committed(&self, partition: u32, offset: u64) {
        self.committed
            .get_or_create(&PartitionLabel { partition })
            .set(offset as i64);
    }
}

/// One owned partition and its store (which holds the partition's `BucketOffsets` to commit).
struct Owned {
    partition: u32,
    store: Arc<LiveStore>,
}

pub struct BlockBuilder {
    owned: Vec<Owned>,
}

impl BlockBuilder {
    /// Opens a store for each partition this instance owns, at its committed offset (the log's
    /// earliest when none was committed), and starts consuming into them.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        log: Arc<Log>,
        metrics: Arc<BuilderMetrics>,
        instance: u32,
        instances: u32,
        storage: Storage,
        blocks: BlockList,
        config: LiveConfig,
        stop: watch::Receiver<bool>,
    ) -> Result<(Arc<BlockBuilder>, Vec<tokio::task::JoinHandle<()>>), String> {
        let mut owned = Vec::new();
        let mut tasks = Vec::new();
        let topic = log.config.topic.clone();
        for partition in owned_partitions(&log, instance, instances) {
            let offsets = Arc::new(BucketOffsets::new(
                storage.clone(),
                BUILDER_CONSUMER,
                &topic,
                partition,
                Some(metrics.clone()),
            ));
            let (store, task) = consume_into_store(
                &log,
                partition,
                &offsets,
                Some(offsets.clone()),
                &storage,
                blocks.clone(),
                &config,
                &metrics,
                &stop,
                FETCH_WAIT_MS,
            )
            .await?;
            tracing::info!(partition, offset = ?store.next_offset(), "block-builder resumes partition");
            tasks.push(task);
            owned.push(Owned { partition, store });
        }
        Ok((Arc::new(BlockBuilder { owned }), tasks))
    }

    /// The store of each owned partition: the caller cuts and flushes them on the same timers
    /// as the single binary's live store.
    pub fn stores(&self) -> Vec<Arc<LiveStore>> {
        self.owned.iter().map(|owned| owned.store.clone()).collect()
    }

    /// The partitions this builder owns.
    pub fn partitions(&self) -> Vec<u32> {
        self.owned.iter().map(|owned| owned.partition).collect()
    }

    /// Graceful stop: every trace in memory is written as a block and the offsets committed.
    pub async fn flush_all(&self) {
        for owned in &self.owned {
            owned.store.flush_all().await;
        }
    }
}

/// Opens a WAL-less store for `partition` at the block-builders' committed offset in `offsets`
/// (the log's earliest when none was committed; `commit` hears the store's own commits, if it
/// makes any) and starts consuming the partition into it: what block-builders and live-stores
/// share.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn consume_into_store(
    log: &Log,
    partition: u32,
    offsets: &BucketOffsets,
    commit: Option<Arc<dyn andante_live::OffsetCommit>>,
    storage: &Storage,
    blocks: BlockList,
    config: &LiveConfig,
    metrics: &Arc<BuilderMetrics>,
    stop: &watch::Receiver<bool>,
    fetch_wait_ms: i32,
) -> Result<(Arc<LiveStore>, tokio::task::JoinHandle<()>), String> {
    let client = log.partition(partition).clone();
    let start = resume_offset(&client, offsets, partition).await?;
    let store = LiveStore::fed_by_log(start, commit, storage.clone(), blocks, config.clone());
    let sink = Arc::new(StoreSink::new(store.clone(), config));
    let task = tokio::spawn(consume(
        client,
        partition,
        start,
        sink,
        metrics.clone(),
        stop.clone(),
        fetch_wait_ms,
    ));
    Ok((store, task))
}

/// Where a consumer of `partition` starts: the block-builders' committed offset in `offsets`
/// (everything before it is in listed blocks), or the log's earliest when none was committed.
async fn resume_offset(
    client: &rskafka::client::partition::PartitionClient,
    offsets: &BucketOffsets,
    partition: u32,
) -> Result<u64, String> {
    match offsets.load().await.map_err(|error| error.to_string())? {
        Some(offset) => Ok(offset),
        None => Ok(client
            .get_offset(OffsetAt::Earliest)
            .await
            .map_err(|error| format!("partition {partition}: {error}"))?
            .max(0) as u64),
    }
}

/// The partitions instance `instance` of `instances` owns: p with p mod instances = instance.
pub(crate) fn owned_partitions(log: &Log, instance: u32, instances: u32) -> Vec<u32> {
    (0..log.partition_count())
        .filter(|p| p % instances.max(1) == instance)
        .collect()
}

/// Where a consumer hands the records of one partition, in offset order.
pub trait RecordSink: Send + Sync + 'static {
    fn record<'a>(
        &'a self,
        tenant: &'a TenantId,
        fragments: Vec<EncodedFragment>,
        offset: u64,
    ) -> BoxFuture<'a, ()>;

    /// The record at `offset` is passed over (it does not decode, or it expired).
    fn skip(&self, offset: u64) -> BoxFuture<'_, ()>;

    /// Whether to wait before fetching more (the sink cannot keep up).
    fn backlogged(&self) -> bool {
        false
    }
}

/// A block-builder's or live-store's store of one partition. It waits while holding more than a
/// few blocks' worth (blocks are not being written: storage or the builders are down), so memory
/// stays bounded and the log keeps what is not yet consumed.
struct StoreSink {
    store: Arc<LiveStore>,
    max_held_bytes: u64,
}

impl StoreSink {
    fn new(store: Arc<LiveStore>, config: &LiveConfig) -> StoreSink {
        StoreSink {
            store,
            max_held_bytes: config.block_max_bytes.saturating_mul(8).max(64 << 20),
        }
    }
}

impl RecordSink for StoreSink {
    fn record<'a>(
        &'a self,
        tenant: &'a TenantId,
        fragments: Vec<EncodedFragment>,
        offset: u64,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.store.insert_logged(tenant, fragments, offset).await;
        })
    }

    fn skip(&self, offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(self.store.skip_logged(offset))
    }

    fn backlogged(&self) -> bool {
        self.store.memory_totals().1 > self.max_held_bytes
    }
}

/// Reads the partition from `offset` into `sink` until stopped.
pub(crate) async fn consume(
    client: Arc<rskafka::client::partition::PartitionClient>,
    partition: u32,
    mut offset: u64,
    sink: Arc<dyn RecordSink>,
    metrics: Arc<BuilderMetrics>,
    mut stop: watch::Receiver<bool>,
    fetch_wait_ms: i32,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        if sink.backlogged() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                _ = stop.changed() => return,
            }
        }
        let fetched = tokio::select! {
            fetched = client.fetch_records(offset as i64, 1..FETCH_MAX_BYTES, fetch_wait_ms) => fetched,
            _ = stop.changed() => return,
        };
        match fetched {
            Ok((records, _high_watermark)) => {
                for record in records {
                    let record_offset = record.offset.max(0) as u64;
                    metrics.records.inc();
                    let value = Bytes::from(record.record.value.unwrap_or_default());
                    match record::decode(value) {
                        Ok((tenant, fragments)) => {
                            sink.record(&tenant, fragments, record_offset).await;
                        }
                        Err(error) => {
                            metrics.undecodable_records.inc();
                            tracing::error!(partition, offset = record_offset, %error, "skipping a log record that does not decode");
                            sink.skip(record_offset).await;
                        }
                    }
                    offset = record_offset + 1;
                }
                metrics
                    .consumed
                    .get_or_create(&PartitionLabel { partition })
                    .set(offset as i64);
            }
            Err(KafkaError::ServerError {
                protocol_error: ProtocolError::OffsetOutOfRange,
                ..
            }) => match client.get_offset(OffsetAt::Earliest).await {
                Ok(earliest) if (earliest.max(0) as u64) > offset => {
                    let earliest = earliest as u64;
                    metrics.skipped_expired.inc_by(earliest - offset);
                    tracing::error!(partition, from = offset, to = earliest, "log records expired before they were written to blocks; raise the topic's retention");
                    sink.skip(earliest - 1).await;
                    offset = earliest;
                }
                _ => {
                    tokio::time::sleep(Duration::from_millis(fetch_wait_ms as u64)).await;
                }
            },
            Err(error) => {
                metrics.fetch_errors.inc();
                tracing::warn!(partition, offset, %error, "log fetch failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
