//! The durable write path of the series store: samples are decided by [`Store::append_series`]
//! (limits, out-of-order window, duplicates), and exactly the stored ones are written to the
//! metrics WAL and fsynced before the push is acknowledged. On start the WAL is replayed into
//! the store, so every acknowledged sample survives `kill -9`.
//!
//! Invariants: a record holds only samples the store accepted; replay re-appends them with
//! [`AppendMode::Replay`] (no limits, any order), so a restart reproduces the acknowledged
//! state even when two pushes of one series reached the WAL in the opposite order to the store.
//! A closed segment is deleted once every sample in it is older than the retention.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use andante_wal::{replay, FsyncObserver, ReplayReport, SegmentSeq, Wal, WalError, WalOptions};
use parking_lot::Mutex;

use crate::delta::DeltaTotals;
use crate::store::{AppendMode, AppendOutcome};
use crate::{wal_record, SeriesSamples, Store};

pub struct MetricsHead {
    store: Arc<Store>,
    wal: Wal,
    /// Newest sample time written to each segment, to know when a segment holds only expired
    /// samples.
    newest_in_segment: Mutex<BTreeMap<SegmentSeq, i64>>,
    /// Running totals of series pushed as deltas (OTLP delta temporality).
    deltas: DeltaTotals,
}

/// What a replay found, for the start-up log and self-metrics.
#[derive(Debug, Default)]
pub struct HeadReplay {
    pub wal: ReplayReport,
    pub samples: usize,
    /// Records that were intact WAL records but not metrics records of a known version.
    pub unreadable_records: usize,
}

impl MetricsHead {
    /// Replays `wal_dir` into `store`, then opens the WAL for new records.
    pub fn open(
        store: Arc<Store>,
        wal_dir: &Path,
        options: WalOptions,
        on_fsync: Option<FsyncObserver>,
    ) -> Result<(MetricsHead, HeadReplay), WalError> {
        let mut summary = HeadReplay::default();
        let mut newest_in_segment = BTreeMap::new();
        summary.wal = replay(wal_dir, |seq, payload| {
            let Some((tenant, series)) = wal_record::decode(payload) else {
                summary.unreadable_records += 1;
                return;
            };
            note_newest(&mut newest_in_segment, seq, &series);
            summary.samples += store
                .append_series(&tenant, series, AppendMode::Replay)
                .stored;
        })?;
        let wal = Wal::open(wal_dir, options, on_fsync)?;
        Ok((
            MetricsHead {
                store,
                wal,
                newest_in_segment: Mutex::new(newest_in_segment),
                deltas: DeltaTotals::default(),
            },
            summary,
        ))
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stores what the limits allow and makes it durable; the outcome says what was refused.
    /// On a WAL error the stored samples stay queryable but the push must not be acknowledged
    /// (the sender retries; the retry lands as duplicates, which are taken silently).
    pub async fn append(
        &self,
        tenant: &str,
        batch: Vec<SeriesSamples>,
        now_ms: i64,
    ) -> Result<AppendOutcome, WalError> {
        let outcome = self
            .store
            .append_series(tenant, batch, AppendMode::Live { now_ms });
        if outcome.accepted.is_empty() {
            return Ok(outcome);
        }
        let record = wal_record::encode(tenant, &outcome.accepted);
        let seq = self.wal.append(record).await?;
        note_newest(&mut self.newest_in_segment.lock(), seq, &outcome.accepted);
        Ok(outcome)
    }

    /// As [`MetricsHead::append`], with `delta` series (each value an increase since the
    /// previous point) turned into running totals first.
    pub async fn append_with_deltas(
        &self,
        tenant: &str,
        mut batch: Vec<SeriesSamples>,
        mut delta: Vec<SeriesSamples>,
        now_ms: i64,
    ) -> Result<AppendOutcome, WalError> {
        if !delta.is_empty() {
            self.deltas.accumulate(&self.store, tenant, &mut delta);
            batch.append(&mut delta);
        }
        self.append(tenant, batch, now_ms).await
    }

    /// Expires the store and deletes closed WAL segments whose samples are all past the
    /// retention; returns how many segments were deleted.
    pub async fn expire(&self, now_ms: i64, retention_ms: i64) -> Result<usize, WalError> {
        self.store.expire(now_ms);
        let cutoff = now_ms.saturating_sub(retention_ms);
        self.deltas.expire(cutoff);
        let active = self.wal.active_segment();
        // Close the active segment when it holds only expired samples too, so it can go next.
        let first_needed = {
            let mut newest = self.newest_in_segment.lock();
            newest.retain(|seq, newest_ms| *seq >= active || *newest_ms >= cutoff);
            newest.keys().next().copied().unwrap_or(active)
        };
        if first_needed <= 1 {
            return Ok(0);
        }
        self.wal.remove_segments_before(first_needed)
    }

    pub fn wal_disk_bytes(&self) -> u64 {
        self.wal.disk_bytes()
    }
}

fn note_newest(newest: &mut BTreeMap<SegmentSeq, i64>, seq: SegmentSeq, series: &[SeriesSamples]) {
    let newest_ms = series
        .iter()
        .filter_map(|s| s.samples.last().map(|sample| sample.0))
        .max();
    if let Some(newest_ms) = newest_ms {
        let entry = newest.entry(seq).or_insert(i64::MIN);
        *entry = (*entry).max(newest_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Labels, StoreConfig};

    fn series(name: &str, samples: &[(i64, f64)]) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::new([("__name__", name)]),
            samples: samples.to_vec(),
        }
    }

    fn options() -> WalOptions {
        WalOptions {
            fsync: false,
            ..WalOptions::default()
        }
    }

    fn all(store: &Store, name: &str) -> Vec<(i64, f64)> {
        let matchers =
            promql_parser::label::Matchers::new(vec![promql_parser::label::Matcher::new(
                promql_parser::label::MatchOp::Equal,
                "__name__",
                name,
            )]);
        store
            .select("t", &[&matchers], i64::MIN, i64::MAX)
            .into_iter()
            .flat_map(|s| s.samples)
            .collect()
    }

    #[tokio::test]
    async fn replay_restores_exactly_the_stored_samples() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = StoreConfig {
            out_of_order_window_ms: 0,
            ..StoreConfig::default()
        };
        let now = 10_000_000;
        {
            let store = Arc::new(Store::new(config.clone()));
            let (head, _) = MetricsHead::open(store, dir.path(), options(), None).expect("opens");
            let outcome = head
                .append("t", vec![series("a", &[(now - 10, 1.0), (now, 2.0)])], now)
                .await
                .expect("appends");
            assert_eq!(outcome.stored, 2);
            // Out of order with no window: refused, so never logged.
            let outcome = head
                .append(
                    "t",
                    vec![series("a", &[(now - 5, 9.0), (now + 1, 3.0)])],
                    now,
                )
                .await
                .expect("appends");
            assert_eq!((outcome.stored, outcome.out_of_order), (1, 1));
            assert_eq!(outcome.accepted, vec![series("a", &[(now + 1, 3.0)])]);
        }
        let store = Arc::new(Store::new(config));
        let (_head, replayed) =
            MetricsHead::open(store.clone(), dir.path(), options(), None).expect("reopens");
        assert_eq!(replayed.samples, 3);
        assert_eq!(
            all(&store, "a"),
            vec![(now - 10, 1.0), (now, 2.0), (now + 1, 3.0)]
        );
    }

    #[tokio::test]
    async fn segments_of_expired_samples_are_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(Store::new(StoreConfig::default()));
        let small_segments = WalOptions {
            fsync: false,
            max_segment_bytes: 64,
        };
        let (head, _) = MetricsHead::open(store, dir.path(), small_segments, None).expect("opens");
        for i in 0..10 {
            head.append("t", vec![series("a", &[(i * 1000, 1.0)])], i * 1000)
                .await
                .expect("appends");
        }
        let before = std::fs::read_dir(dir.path()).expect("lists").count();
        assert!(before > 3, "small segments rotate: {before}");
        let removed = head.expire(10_000 + 5_500, 10_000).await.expect("expires");
        let after = std::fs::read_dir(dir.path()).expect("lists").count();
        assert!(
            removed > 0 && after == before - removed,
            "{removed} of {before}"
        );
        drop(head);
        // What is left still holds every sample inside the retention.
        let store = Arc::new(Store::new(StoreConfig::default()));
        MetricsHead::open(store.clone(), dir.path(), options(), None).expect("reopens");
        let times: Vec<i64> = all(&store, "a").into_iter().map(|s| s.0).collect();
        assert!(times.len() < 10, "{times:?}");
        assert!((6..10).all(|i| times.contains(&(i * 1000))), "{times:?}");
    }
}
