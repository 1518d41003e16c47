//! The block-builder: for each partition it owns, a live store without a WAL fed from the log
//! at the committed offset. Traces are cut and written as blocks exactly as in `all` (same idle
//! and age rules, same block size), and after each block the store commits the oldest offset
//! any trace still in memory came from (`LiveStore` checkpoint, `OffsetCommit`). A restarted
//! builder resumes there; records after it whose traces were already written come back as
//! duplicate spans, which reads and compaction remove.
//!
//! Partitions are owned by the `block-builder` consumer group (a dead builder's partitions go to
//! the others after the session timeout) or by ordinal, Tempo's rule (`ownership`).

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
use crate::ownership::{Memberships, Ownership, Partitions};
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
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
    owned: Family<RoleLabel, Gauge>,
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
        registry.register(
            "andante_log_partitions_owned",
            "Span-topic partitions this process consumes now, by role (its consumer group's share, or its ordinal's)",
            metrics.owned.clone(),
        );
        Arc::new(metrics)
    }

    /// The gauge of partitions owned by `role` in this process.
    pub(crate) fn owned(&self, role: &str) -> Gauge {
        self.owned
            .get_or_create(&RoleLabel {
                role: role.to_owned(),
            })
            .clone()
    }

    pub(crate) fn set_committed(&self, partition: u32, offset: u64) {
        self.committed
            .get_or_create(&PartitionLabel { partition })
            .set(offset as i64);
    }
}

pub struct BlockBuilder {
    /// The store of each owned partition (which holds the partition's `BucketOffsets` to
    /// commit).
    owned: Arc<Partitions<LiveStore>>,
}

impl BlockBuilder {
    /// Follows the partitions this builder owns (`ownership`): each one gained gets a store at
    /// its committed offset (the log's earliest when none was committed), consumed into and
    /// cut and flushed on the single binary's timers; each one lost is dropped unflushed, since
    /// its new owner resumes from the same committed offset.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        log: Arc<Log>,
        metrics: Arc<BuilderMetrics>,
        ownership: &Ownership,
        memberships: &Memberships,
        storage: Storage,
        blocks: BlockList,
        config: LiveConfig,
        stop: watch::Receiver<bool>,
    ) -> (Arc<BlockBuilder>, tokio::task::JoinHandle<()>) {
        let owned: Arc<Partitions<LiveStore>> = Arc::default();
        let assigned = ownership.follow(&log, "block-builder", memberships);
        let gauge = metrics.owned("block-builder");
        let task = tokio::spawn(owned.clone().follow(assigned, stop, gauge, move |partition, stop| {
            let (log, metrics, storage, blocks, config) = (
                log.clone(),
                metrics.clone(),
                storage.clone(),
                blocks.clone(),
                config.clone(),
            );
            async move {
                let offsets = Arc::new(BucketOffsets::new(
                    storage.clone(),
                    BUILDER_CONSUMER,
                    &log.config.topic,
                    partition,
                    Some(metrics.clone()),
                ));
                let (store, _consumer) = consume_into_store(
                    &log,
                    partition,
                    &offsets,
                    Some(offsets.clone()),
                    &storage,
                    blocks,
                    &config,
                    &metrics,
                    &stop,
                    FETCH_WAIT_MS,
                )
                .await?;
                tracing::info!(partition, offset = ?store.next_offset(), "block-builder resumes partition");
                cut_and_flush(store.clone(), stop);
                Ok(store)
            }
        }));
        (Arc::new(BlockBuilder { owned }), task)
    }

    /// The store of each owned partition.
    pub fn stores(&self) -> Vec<Arc<LiveStore>> {
        self.owned
            .values()
            .into_iter()
            .map(|(_, store)| store)
            .collect()
    }

    /// The partitions this builder owns now.
    pub fn partitions(&self) -> Vec<u32> {
        self.owned.partitions()
    }

    /// Graceful stop: every trace in memory is written as a block and the offsets committed.
    pub async fn flush_all(&self) {
        for store in self.stores() {
            store.flush_all().await;
        }
    }
}

/// A builder's store is cut and flushed on the single binary's timers (cut every 250 ms, the
/// idle/age/size checks that write blocks every second), until `stop`.
fn cut_and_flush(store: Arc<LiveStore>, stop: watch::Receiver<bool>) {
    let every =
        |period: Duration, mut stop: watch::Receiver<bool>, store: Arc<LiveStore>, cut: bool| {
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {
                            if cut {
                                store.cut();
                            } else {
                                store.tick().await;
                            }
                        }
                        _ = stop.changed() => return,
                    }
                }
            })
        };
    every(
        Duration::from_millis(250),
        stop.clone(),
        store.clone(),
        true,
    );
    every(Duration::from_secs(1), stop, store, false);
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
    let stream = format!("log/{}/{partition}", log.config.topic);
    let store = LiveStore::fed_by_log(
        stream,
        start,
        commit,
        storage.clone(),
        blocks,
        config.clone(),
    );
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
