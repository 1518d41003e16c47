//! The live-store role: recent traces of the partitions it owns, in memory, for queries, so a
//! split deployment serves a trace as soon as the broker has it rather than once a block is
//! written (35 s or more with the defaults).
//!
//! For each owned partition (the `live-store` consumer group's share, or an ordinal: `ownership`)
//! it starts at the block-builders' committed offset (everything before it is
//! in a listed block) and consumes into a WAL-less live store that writes no blocks. It forgets
//! a trace once the builders' committed offset has passed every record of it *and* `retire_after`
//! has gone by since it was seen to (so queriers have polled the block list that holds the trace
//! in the meantime: no gap between live data and blocks; an overlap is deduplicated on read). A
//! restarted live-store starts again from the committed offset, so it holds what it held before,
//! and so does one that takes over a dead one's partitions.
//! Memory is bounded like a block-builder's: past a few blocks' worth (the builders are behind)
//! it stops fetching, and the log keeps the rest.
//!
//! Reads by trace ID are read-after-write consistent (Mimir's "strong" reads over its ingest
//! log): before answering, the live-store reads the end offset of each owned partition the asked
//! IDs hash to and waits until it has consumed that far. A distributor acknowledges a push only
//! once the broker holds it, so a trace acknowledged before the read started is found.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use andante_block::blocklist::BlockList;
use andante_live::{LiveConfig, LiveStore};
use andante_model::{TenantId, TraceId};
use andante_storage::Storage;
use rskafka::client::partition::OffsetAt;
use tokio::sync::watch;

use crate::builder::{consume_into_store, BuilderMetrics, BUILDER_CONSUMER};
use crate::client::Log;
use crate::offsets::BucketOffsets;
use crate::ownership::{Memberships, Ownership, Partitions};

/// How often the block-builders' committed offsets are read (one GET per partition).
const RETIRE_EVERY: Duration = Duration::from_secs(2);

/// Longest a read by ID waits for the consumer to reach the log's end. A live-store further
/// behind than this is lagging (fetching paused, broker slow), not racing a push; it says so
/// with its lag rather than answering "not held". With the end offsets' read, at most twice
/// this: well under the queriers' default `query.live_store_timeout` (5 s), so they hear the
/// reason, not a timeout.
const READ_AFTER_WRITE_WAIT: Duration = Duration::from_secs(1);

/// How long a live-store's fetch waits at the broker for new records: shorter than a
/// builder's, because a broker may hold a long poll to its end even when records arrive (tansu
/// does), and a read by ID right after a push waits for that fetch.
const LIVE_FETCH_WAIT_MS: i32 = 100;

/// How often a waiting read looks at the consumed offset again.
const READ_AFTER_WRITE_POLL: Duration = Duration::from_millis(2);

/// One owned partition: its store, and where the builders' commits are read.
struct Owned {
    store: Arc<LiveStore>,
    builder_offsets: BucketOffsets,
}

pub struct LiveStoreRole {
    /// A connection of its own for reading end offsets: a broker answers one connection's
    /// requests in order, so on the consumers' connection the read would wait behind their
    /// long-polling fetch (up to its 500 ms wait) on every read by ID.
    ends: Arc<Log>,
    owned: Arc<Partitions<Owned>>,
}

impl LiveStoreRole {
    /// Follows the partitions this live-store owns (`ownership`): each one gained gets a store
    /// at the block-builders' committed offset (the log's earliest when they committed none),
    /// consumed into; each one lost is dropped. Traces the builders have written are forgotten.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        log: Arc<Log>,
        metrics: Arc<BuilderMetrics>,
        ownership: &Ownership,
        memberships: &Memberships,
        storage: Storage,
        config: LiveConfig,
        retire_after: Duration,
        stop: watch::Receiver<bool>,
    ) -> Result<(Arc<LiveStoreRole>, Vec<tokio::task::JoinHandle<()>>), String> {
        let ends = Log::connect(log.config.clone())
            .await
            .map_err(|error| format!("connecting for end offsets: {error}"))?;
        let owned: Arc<Partitions<Owned>> = Arc::default();
        let assigned = ownership.follow(&log, "live-store", memberships);
        let gauge = metrics.owned("live-store");
        let following = tokio::spawn(owned.clone().follow(
            assigned,
            stop.clone(),
            gauge,
            move |partition, stop| {
                let (log, metrics, storage, config) =
                    (log.clone(), metrics.clone(), storage.clone(), config.clone());
                async move {
                    // Read only: a live-store commits nothing (the metrics stay the builders').
                    let builder_offsets = BucketOffsets::new(
                        storage.clone(),
                        BUILDER_CONSUMER,
                        &log.config.topic,
                        partition,
                        None,
                    );
                    // No blocks are written from it, so it needs no block list of its own.
                    let (store, _consumer) = consume_into_store(
                        &log,
                        partition,
                        &builder_offsets,
                        None,
                        &storage,
                        BlockList::default(),
                        &config,
                        &metrics,
                        &stop,
                        LIVE_FETCH_WAIT_MS,
                    )
                    .await?;
                    tracing::info!(partition, offset = ?store.next_offset(), "live-store resumes partition");
                    Ok(Arc::new(Owned {
                        store,
                        builder_offsets,
                    }))
                }
            },
        ));
        let role = Arc::new(LiveStoreRole { ends, owned });
        let retiring = tokio::spawn(role.clone().retire(retire_after, stop));
        Ok((role, vec![following, retiring]))
    }

    /// The store of each owned partition.
    pub fn stores(&self) -> Vec<Arc<LiveStore>> {
        self.owned
            .values()
            .into_iter()
            .map(|(_, owned)| owned.store.clone())
            .collect()
    }

    /// The partitions this live-store owns now.
    pub fn partitions(&self) -> Vec<u32> {
        self.owned.partitions()
    }

    /// The partitions owned now and their stores, read together.
    pub fn held(&self) -> (Vec<u32>, Vec<Arc<LiveStore>>) {
        self.owned
            .values()
            .into_iter()
            .map(|(partition, owned)| (partition, owned.store.clone()))
            .unzip()
    }

    /// The span topic's partition count.
    pub fn partition_count(&self) -> u32 {
        self.ends.partition_count()
    }

    /// Waits until this live-store has consumed every owned partition that `trace_ids` of
    /// `tenant` hash to up to the log's end as of now (the partitions' end offsets are read
    /// together, one request each), so every record the broker acknowledged before the call
    /// is in memory. Fails, naming the partition, when the end offset cannot be read or the
    /// consumer does not get there within `READ_AFTER_WRITE_WAIT`.
    pub async fn read_after_write(
        &self,
        tenant: &TenantId,
        trace_ids: &[TraceId],
    ) -> Result<(), String> {
        let partitions: BTreeSet<u32> = trace_ids
            .iter()
            .map(|id| {
                crate::partition::partition_of(tenant.as_str(), id, self.ends.partition_count())
            })
            .collect();
        let owned = self
            .owned
            .values()
            .into_iter()
            .filter(|(partition, _)| partitions.contains(partition));
        let waits = owned.map(|(partition, owned)| async move {
            let end = self
                .ends
                .partition(partition)
                .get_offset(OffsetAt::Latest)
                .await
                .map_err(|error| {
                    format!(
                        "partition {partition}: the log's end offset could not be read: {error}"
                    )
                })?
                .max(0) as u64;
            let caught_up = async {
                while owned.store.next_offset().unwrap_or(0) < end {
                    tokio::time::sleep(READ_AFTER_WRITE_POLL).await;
                }
            };
            // Bounded apart from reading the end offset, so the lag is what gets reported.
            tokio::time::timeout(READ_AFTER_WRITE_WAIT, caught_up)
                .await
                .map_err(|_| {
                    let consumed = owned.store.next_offset().unwrap_or(0);
                    format!(
                        "partition {partition} is consumed to offset {consumed}, {} records short of the log's end {end} after {:?}",
                        end.saturating_sub(consumed),
                        READ_AFTER_WRITE_WAIT
                    )
                })
        });
        // The whole read is bounded too: a broker slow to give its end offsets (the client
        // retries up to `kafka.produce_timeout`) must not outlast the querier's patience.
        let most = READ_AFTER_WRITE_WAIT * 2;
        match tokio::time::timeout(most, futures::future::try_join_all(waits)).await {
            Ok(done) => done.map(|_| ()),
            Err(_) => Err(format!(
                "the log's end offsets were not read within {most:?}"
            )),
        }
    }

    /// Every `RETIRE_EVERY`, reads each partition's committed offset and forgets the traces
    /// wholly before the newest one seen at least `retire_after` ago.
    async fn retire(self: Arc<Self>, retire_after: Duration, mut stop: watch::Receiver<bool>) {
        let mut seen: BTreeMap<u32, VecDeque<(Instant, u64)>> = BTreeMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(RETIRE_EVERY) => {}
                _ = stop.changed() => return,
            }
            let now = Instant::now();
            let owned = self.owned.values();
            // Only owned partitions' readings are kept.
            seen.retain(|partition, _| owned.iter().any(|(p, _)| p == partition));
            for (partition, owned) in owned {
                let seen = seen.entry(partition).or_default();
                match owned.builder_offsets.load().await {
                    Ok(Some(offset)) => seen.push_back((now, offset)),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(partition, %error, "reading the block-builders' committed offset failed")
                    }
                }
                if let Some(offset) = settled(seen, now, retire_after) {
                    let forgotten = owned.store.retire_logged(offset);
                    if forgotten > 0 {
                        tracing::debug!(
                            partition,
                            offset,
                            forgotten,
                            "forgot traces now in blocks"
                        );
                    }
                }
            }
        }
    }
}

/// The newest offset seen at least `after` before `now`, dropping the readings it supersedes.
fn settled(seen: &mut VecDeque<(Instant, u64)>, now: Instant, after: Duration) -> Option<u64> {
    let mut found = None;
    while let Some(&(at, offset)) = seen.front() {
        if now.duration_since(at) < after {
            break;
        }
        found = Some((at, offset));
        seen.pop_front();
    }
    // The settled reading stays as the oldest, so it is found again until a newer one settles.
    found.map(|reading| {
        seen.push_front(reading);
        reading.1
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_is_used_only_once_it_was_seen_long_enough_ago() {
        let start = Instant::now();
        let after = Duration::from_secs(5);
        let mut seen = VecDeque::new();
        seen.push_back((start, 10));
        assert_eq!(
            settled(&mut seen, start + Duration::from_secs(4), after),
            None
        );
        seen.push_back((start + Duration::from_secs(4), 20));
        assert_eq!(
            settled(&mut seen, start + Duration::from_secs(5), after),
            Some(10)
        );
        // Still 10 until the reading of 20 is old enough, then 20.
        assert_eq!(
            settled(&mut seen, start + Duration::from_secs(8), after),
            Some(10)
        );
        assert_eq!(
            settled(&mut seen, start + Duration::from_secs(9), after),
            Some(20)
        );
        assert_eq!(seen.len(), 1);
    }
}
