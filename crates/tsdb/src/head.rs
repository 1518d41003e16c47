//! The durable write path of the series store: samples are decided by [`Store::append_series`]
//! (limits, out-of-order window, duplicates), and exactly the stored ones are written to the
//! metrics WAL and fsynced before the push is acknowledged. On start the WAL is replayed into
//! the store, so every acknowledged sample survives `kill -9`.
//!
//! Invariants: a record holds only samples the store accepted; replay re-appends them with
//! [`AppendMode::Replay`] (no limits, any order), so a restart reproduces the acknowledged
//! state even when two pushes of one series reached the WAL in the opposite order to the store.
//! A closed segment is deleted once every sample in it is in a metric block (older than the
//! newest cut, see [`crate::persist`]).
//!
//! Exemplars are logged the same way, in their own records, and replayed into the exemplar
//! ring; like Prometheus' they live in memory only, so those of a deleted segment are gone
//! after a restart (the ring would have dropped them soon anyway).
//!
//! Sample records name their series by a ref defined once per segment
//! ([`wal_record::encode_v3`]). What keeps every ref readable: refs are decided, the record
//! encoded and queued under one lock ([`SeriesRefs`]), so a definition is always queued (and,
//! the queue committing in order, durable) before any record using it; the head rotates the WAL
//! itself under that lock and forgets its definitions there; and a record carries the writer
//! generation its refs were decided in, so after a failed write (which bumps it) nothing that
//! leans on a lost definition is accepted: the head forgets its definitions and the retry
//! defines its series again.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use andante_storage::Storage;

use andante_wal::{
    replay, Appending, FsyncObserver, Generation, ReplayReport, SegmentSeq, Wal, WalError,
    WalOptions,
};
use parking_lot::Mutex;

use crate::delta::DeltaTotals;
use crate::labels::LabelsMap;
use crate::persist::{self, BlockSettings, PersistError};
use crate::store::{AppendMode, AppendOutcome};
use crate::{wal_record, Exemplar, ExemplarOutcome, Labels, SeriesSamples, Store};

/// Pushes storing more samples than this encode their WAL record on the blocking pool.
const INLINE_ENCODE_SAMPLES: usize = 256;

pub struct MetricsHead {
    store: Arc<Store>,
    wal: Wal,
    /// Newest sample time written to each segment, to know when a segment holds only expired
    /// samples.
    newest_in_segment: Mutex<BTreeMap<SegmentSeq, i64>>,
    /// Running totals of series pushed as deltas (OTLP delta temporality).
    deltas: DeltaTotals,
    /// Everything older than this is in metric blocks (`i64::MIN`: nothing cut yet).
    persisted_until_ms: AtomicI64,
    refs: Arc<Mutex<SeriesRefs>>,
    /// The head rotates the WAL past this size (the writer's own rotation is off; see above).
    max_segment_bytes: u64,
}

/// The series the active segment has defined, and the writer generation they were defined in.
#[derive(Default)]
struct SeriesRefs {
    generation: Generation,
    /// Never reused within a process; a new process starts a new segment.
    next_ref: u64,
    by_tenant: HashMap<String, LabelsMap<u64>>,
    /// Bytes queued since the last rotation.
    segment_bytes: u64,
}

impl SeriesRefs {
    /// Queues a rotation: records queued after it are in a new segment, which defines anew.
    fn rotate(
        &mut self,
        wal: &Wal,
    ) -> Result<tokio::sync::oneshot::Receiver<SegmentSeq>, WalError> {
        let rotated = wal.submit_rotate()?;
        self.forget(self.generation + 1);
        self.segment_bytes = 0;
        Ok(rotated)
    }

    fn forget(&mut self, generation: Generation) {
        self.generation = generation;
        self.by_tenant.clear();
    }

    /// Decides refs for `series`, encodes their record and queues it, all under the caller's
    /// lock on `self`.
    fn submit(
        &mut self,
        wal: &Wal,
        max_segment_bytes: u64,
        tenant: &str,
        series: &[SeriesSamples],
    ) -> Result<Appending, WalError> {
        if self.segment_bytes >= max_segment_bytes {
            self.rotate(wal)?;
        }
        if !self.by_tenant.contains_key(tenant) {
            self.by_tenant
                .insert(tenant.to_owned(), LabelsMap::default());
        }
        let known = self.by_tenant.get_mut(tenant).expect("inserted above");
        let first_ref = self.next_ref;
        let mut definitions = Vec::new();
        let mut groups = Vec::with_capacity(series.len());
        for one in series {
            let series_ref = *known.entry(one.labels.clone()).or_insert_with(|| {
                definitions.push(&one.labels);
                self.next_ref += 1;
                self.next_ref - 1
            });
            groups.push(wal_record::RefSamples {
                series_ref,
                samples: &one.samples,
            });
        }
        let record = wal_record::encode_v3(tenant, first_ref, &definitions, &mut groups);
        self.queue(wal, record, Some(self.generation))
    }

    fn queue(
        &mut self,
        wal: &Wal,
        record: Vec<u8>,
        expect: Option<Generation>,
    ) -> Result<Appending, WalError> {
        self.segment_bytes += record.len() as u64;
        wal.submit(record, expect)
    }
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
        let mut records = wal_record::SegmentReader::default();
        summary.wal = replay(wal_dir, |seq, payload| {
            if wal_record::is_exemplars(payload) {
                match wal_record::decode_exemplars(payload) {
                    Some((tenant, exemplars)) => {
                        for (series, exemplar) in exemplars {
                            store.exemplars.append(&tenant, &series, exemplar);
                        }
                    }
                    None => summary.unreadable_records += 1,
                }
                return;
            }
            let Some((tenant, series)) = records.read(seq, payload) else {
                summary.unreadable_records += 1;
                return;
            };
            note_newest(&mut newest_in_segment, seq, &series);
            summary.samples += store
                .append_series(&tenant, series, AppendMode::Replay)
                .stored;
        })?;
        let max_segment_bytes = options.max_segment_bytes;
        let writer_options = WalOptions {
            max_segment_bytes: u64::MAX,
            ..options
        };
        let wal = Wal::open(wal_dir, writer_options, on_fsync)?;
        let refs = SeriesRefs {
            generation: wal.generation(),
            ..SeriesRefs::default()
        };
        Ok((
            MetricsHead {
                store,
                wal,
                newest_in_segment: Mutex::new(newest_in_segment),
                deltas: DeltaTotals::default(),
                persisted_until_ms: AtomicI64::new(i64::MIN),
                refs: Arc::new(Mutex::new(refs)),
                max_segment_bytes,
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
        let mut outcome = self
            .store
            .append_series(tenant, batch, AppendMode::Live { now_ms });
        if outcome.accepted.is_empty() {
            return Ok(outcome);
        }
        let accepted = std::mem::take(&mut outcome.accepted);
        outcome.accepted = self.log_stored(tenant, accepted).await?;
        Ok(outcome)
    }

    /// Writes samples already in the store to the WAL (the second half of [`MetricsHead::append`]),
    /// for writers that must read their own samples before the record is written: rule
    /// evaluation appends rule by rule and logs the group once. Returns the samples.
    pub async fn log_stored(
        &self,
        tenant: &str,
        accepted: Vec<SeriesSamples>,
    ) -> Result<Vec<SeriesSamples>, WalError> {
        if accepted.is_empty() {
            return Ok(accepted);
        }
        let stored: usize = accepted.iter().map(|series| series.samples.len()).sum();
        let submit = {
            let (wal, refs, max) = (self.wal.clone(), self.refs.clone(), self.max_segment_bytes);
            let tenant = tenant.to_owned();
            move |accepted: Vec<SeriesSamples>| {
                let appending = refs.lock().submit(&wal, max, &tenant, &accepted);
                (appending, accepted)
            }
        };
        // Compressing a large push's record takes a millisecond or more: off the runtime.
        let (appending, accepted) = if stored > INLINE_ENCODE_SAMPLES {
            tokio::task::spawn_blocking(move || submit(accepted))
                .await
                .map_err(|_| WalError::Stopped)?
        } else {
            submit(accepted)
        };
        let seq = self.durable(appending).await?;
        note_newest(&mut self.newest_in_segment.lock(), seq, &accepted);
        Ok(accepted)
    }

    /// Waits for a queued record; on failure the head's definitions may not be on disk, so it
    /// forgets them and takes the writer's new generation (the module note says why).
    async fn durable(
        &self,
        appending: Result<Appending, WalError>,
    ) -> Result<SegmentSeq, WalError> {
        let outcome = match appending {
            Ok(appending) => appending.durable().await,
            Err(error) => Err(error),
        };
        if outcome.is_err() {
            // Any loss moved the writer's generation on, so records still queued with the old
            // one are refused; from here the head defines again in the new one.
            let generation = self.wal.generation();
            self.refs.lock().forget(generation);
        }
        outcome
    }

    /// Stores what exemplar storage takes of `exemplars` (each with its series) and makes it
    /// durable; returns how many were stored and how many refused (which never fails a push,
    /// as in Prometheus).
    pub async fn append_exemplars(
        &self,
        tenant: &str,
        exemplars: Vec<(Labels, Exemplar)>,
    ) -> Result<(usize, usize), WalError> {
        let offered = exemplars.len();
        let stored: Vec<(Labels, Exemplar)> = exemplars
            .into_iter()
            .filter(|(series, exemplar)| {
                self.store
                    .exemplars
                    .append(tenant, series, exemplar.clone())
                    == ExemplarOutcome::Stored
            })
            .collect();
        let counters = &self.store.counters;
        counters
            .exemplars_appended
            .fetch_add(stored.len() as u64, Ordering::Relaxed);
        counters
            .exemplars_refused
            .fetch_add((offered - stored.len()) as u64, Ordering::Relaxed);
        if !stored.is_empty() {
            let record = wal_record::encode_exemplars(tenant, &stored);
            let appending = self.refs.lock().queue(&self.wal, record, None);
            self.durable(appending).await?;
        }
        Ok((stored.len(), offered - stored.len()))
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

    /// Expires the store's samples and delta totals past each tenant's retention.
    pub fn expire(&self, now_ms: i64) {
        self.store.expire(now_ms);
        self.deltas.expire(&self.store, now_ms);
    }

    /// Tells the head what start-up found in blocks: everything before `until_ms` is persisted.
    pub fn set_persisted_until(&self, until_ms: i64) {
        self.persisted_until_ms
            .fetch_max(until_ms, Ordering::Relaxed);
        self.store.raise_min_valid(until_ms);
    }

    /// Cuts every closed range not yet in a block, then deletes the WAL segments whose samples
    /// are all in blocks; returns how many blocks were written.
    pub async fn persist(
        &self,
        storage: &Storage,
        settings: BlockSettings,
        now_ms: i64,
    ) -> Result<usize, PersistError> {
        let cut = persist::cut_point(&self.store, settings, now_ms);
        let mut start = self.persisted_until_ms.load(Ordering::Relaxed);
        if start == i64::MIN {
            start = self.store.min_time().map_or(cut, |oldest| {
                oldest.div_euclid(settings.block_ms) * settings.block_ms
            });
        }
        if start >= cut {
            return Ok(0);
        }
        // From here no sample older than the cut is taken; the barrier waits out appends that
        // checked the old bound, so every sample of the ranges below is in memory when read.
        self.store.raise_min_valid(cut);
        self.store.barrier();
        let mut written = 0;
        while start < cut {
            let end = start + settings.block_ms;
            for tenant in self.store.tenant_ids() {
                if persist::cut_range(storage, &self.store, &tenant, start, end).await? {
                    written += 1;
                    self.store
                        .counters
                        .blocks_written
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            start = end;
        }
        self.persisted_until_ms.store(cut, Ordering::Relaxed);
        // Close the active segment so that what it holds can go once it is all in blocks.
        let rotated = self
            .refs
            .lock()
            .rotate(&self.wal)
            .map_err(|error| PersistError::Task(error.to_string()))?;
        let active = rotated
            .await
            .map_err(|_| PersistError::Task(WalError::Stopped.to_string()))?;
        let first_needed = {
            let mut newest = self.newest_in_segment.lock();
            newest.retain(|seq, newest_ms| *seq >= active || *newest_ms >= cut);
            newest.keys().next().copied().unwrap_or(active)
        };
        self.wal
            .remove_segments_before(first_needed)
            .map_err(|error| PersistError::Task(error.to_string()))?;
        Ok(written)
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

    fn labelled(name: &str, job: usize, samples: &[(i64, f64)]) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::new([("__name__", name.to_string()), ("job", format!("j{job}"))]),
            samples: samples.to_vec(),
        }
    }

    #[tokio::test]
    async fn series_are_defined_again_in_every_segment_and_replay_restores_them_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let small = WalOptions {
            fsync: false,
            max_segment_bytes: 600,
        };
        let now = 10_000_000;
        {
            let store = Arc::new(Store::new(StoreConfig::default()));
            let (head, _) =
                MetricsHead::open(store, dir.path(), small.clone(), None).expect("opens");
            // Two tenants whose series share labels; the same series twice in one push too.
            for step in 0..40 {
                let t = now + step * 15_000;
                for tenant in ["a", "b"] {
                    let mut batch: Vec<SeriesSamples> = (0..8)
                        .map(|job| labelled("up", job, &[(t, step as f64)]))
                        .collect();
                    batch.push(labelled("up", 0, &[(t + 1, -1.0)]));
                    let outcome = head.append(tenant, batch, t).await.expect("appends");
                    assert_eq!(outcome.stored, 9);
                }
            }
        }
        let segments = std::fs::read_dir(dir.path()).expect("lists").count();
        assert!(
            segments > 5,
            "the head rotated by size: {segments} segments"
        );
        let store = Arc::new(Store::new(StoreConfig::default()));
        let (_head, replayed) =
            MetricsHead::open(store.clone(), dir.path(), small, None).expect("reopens");
        assert_eq!((replayed.samples, replayed.unreadable_records), (720, 0));
        for tenant in ["a", "b"] {
            let got: usize = store
                .select(tenant, &[], i64::MIN, i64::MAX)
                .iter()
                .map(|series| series.samples.len())
                .sum();
            assert_eq!(got, 360, "tenant {tenant}");
        }
    }

    #[tokio::test]
    async fn after_the_writer_moves_on_a_refused_push_is_retried_with_its_definitions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let now = 10_000_000;
        {
            let store = Arc::new(Store::new(StoreConfig::default()));
            let (head, _) =
                MetricsHead::open(store.clone(), dir.path(), options(), None).expect("opens");
            head.append("t", vec![series("a", &[(now, 1.0)])], now)
                .await
                .expect("defines a");
            // The writer's generation moves on behind the head's back, as a failed write does.
            head.wal.rotate().await.expect("rotates");
            let refused = head
                .append("t", vec![series("a", &[(now + 1, 2.0)])], now)
                .await;
            assert!(refused.is_err(), "refs decided in the old generation");
            // The sender retries: the store took the sample already, the WAL has not.
            let retried = store.append_series(
                "t",
                vec![series("a", &[(now + 2, 3.0)])],
                AppendMode::Live { now_ms: now },
            );
            head.log_stored("t", retried.accepted)
                .await
                .expect("defines a again in the new segment");
        }
        let store = Arc::new(Store::new(StoreConfig::default()));
        let (_head, replayed) =
            MetricsHead::open(store.clone(), dir.path(), options(), None).expect("reopens");
        assert_eq!((replayed.samples, replayed.unreadable_records), (2, 0));
        assert_eq!(all(&store, "a"), vec![(now, 1.0), (now + 2, 3.0)]);
    }

    #[tokio::test]
    async fn cut_ranges_become_blocks_and_their_segments_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::in_memory();
        let store = Arc::new(Store::new(StoreConfig::default()));
        let settings = BlockSettings::default();
        let hour = 3_600_000;
        let (head, _) =
            MetricsHead::open(store.clone(), dir.path(), options(), None).expect("opens");
        // Five hours of one sample a minute, pushed as it happens.
        for minute in 0..300 {
            let t = 10 * hour + minute * 60_000;
            head.append("t", vec![series("a", &[(t, minute as f64)])], t)
                .await
                .expect("appends");
        }
        let now = 15 * hour;
        // Cut point: 15 h − 10 m window − 1 m slack, down to 2 h: 14 h. Ranges 10–12, 12–14.
        assert_eq!(
            head.persist(&storage, settings, now)
                .await
                .expect("persists"),
            2
        );
        let keys: Vec<String> = storage
            .list("t/metrics/")
            .await
            .expect("lists")
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        // Nothing new below the cut is taken any more.
        let late = head
            .append("t", vec![series("b", &[(14 * hour - 1, 1.0)])], now)
            .await
            .expect("appends");
        assert_eq!(late.too_old, 1);
        // A restart loads the blocks and replays what the WAL still holds: every sample is back.
        drop(head);
        let reloaded = Arc::new(Store::new(StoreConfig::default()));
        let report = persist::load(&storage, &reloaded, now)
            .await
            .expect("loads");
        assert_eq!(
            (report.blocks, report.persisted_until_ms),
            (2, Some(14 * hour))
        );
        let (_head, replayed) =
            MetricsHead::open(reloaded.clone(), dir.path(), options(), None).expect("reopens");
        assert!(
            replayed.samples < 300,
            "the WAL kept only the unpersisted samples"
        );
        assert_eq!(all(&reloaded, "a").len(), 300);
    }
}
