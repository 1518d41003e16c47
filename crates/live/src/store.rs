//! The live store itself: push, cut, flush, checkpoint, replay.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use andante_block::blocklist::BlockList;
use andante_block::{
    encode_block_groups, order, upload_block, v1, BlockHandle, NewBlock, Trace, WRITTEN,
};
use andante_ingest::{
    split_by_trace, EncodedFragment, ExportTraceServiceRequest, IngestLimits, RateLimiter,
    RefusalReason,
};
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::projected::{decode_projected, Projection};
use andante_model::{merge_resource_spans, ErrorKind, TenantId, TraceId};
use andante_storage::Storage;
use andante_wal::{replay, ReplayReport, SegmentSeq, Wal, WalOptions};
use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message;

use crate::metrics::LiveMetrics;
use crate::record;
use crate::tenant::{LiveTrace, TenantLive, TraceMap};

#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub trace_idle: Duration,
    pub trace_max_live: Duration,
    /// Completed traces are written as a block at the latest this long after the first of them.
    pub block_max_age: Duration,
    /// ... or as soon as they add up to this many encoded bytes.
    pub block_max_bytes: u64,
    pub limits: IngestLimits,
    pub write: v1::WriteOptions,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            trace_idle: Duration::from_secs(5),
            trace_max_live: Duration::from_secs(30),
            block_max_age: Duration::from_secs(30),
            block_max_bytes: 32 << 20,
            limits: IngestLimits::default(),
            write: v1::WriteOptions::default(),
        }
    }
}

/// What happened to a push that was not refused as a whole.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    pub accepted_spans: usize,
    pub refused_spans: usize,
    /// Why spans were refused, naming the limit; empty when none were.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("ingestion rate limit of {rate_bytes} bytes/s (burst {burst_bytes} bytes) exceeded for tenant `{tenant}` (`limits.ingestion-rate-limit-bytes`)")]
    RateLimited {
        tenant: String,
        rate_bytes: u64,
        burst_bytes: u64,
    },
    #[error("{0}")]
    AllRefused(String),
    #[error("write-ahead log failure: {0}")]
    Wal(#[from] andante_wal::WalError),
    #[error("this process takes no pushes: its live store is fed by the log")]
    NotWritable,
}

impl PushError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PushError::RateLimited { .. } | PushError::AllRefused(_) => ErrorKind::TooManyRequests,
            PushError::Wal(_) => ErrorKind::Unavailable,
            PushError::NotWritable => ErrorKind::Internal,
        }
    }
}

/// Where a store's traces come from, and so what makes them durable before it holds them.
enum Source {
    /// `all`: pushes, each appended to the store's own WAL before it is inserted.
    Wal(Wal),
    /// Split roles: records consumed from one partition of the log, which already holds them
    /// durably. `next_offset` is the offset after the last record inserted; the checkpoint
    /// reports the oldest offset still needed to `commit` (none: a store that only answers).
    Log {
        next_offset: std::sync::atomic::AtomicU64,
        commit: Option<Arc<dyn OffsetCommit>>,
    },
}

/// Told the oldest log offset a store still needs, after every block that held the traces
/// before it is written and listed: a restarted consumer resumes there and loses nothing.
pub trait OffsetCommit: Send + Sync {
    fn commit(&self, offset: u64) -> futures::future::BoxFuture<'_, ()>;
}

pub struct LiveStore {
    config: LiveConfig,
    source: Source,
    storage: Storage,
    blocks: BlockList,
    rate_limiter: RateLimiter,
    tenants: Mutex<HashMap<TenantId, Arc<Mutex<TenantLive>>>>,
    /// Pushes hold it shared from WAL append to insert; the checkpoint takes it exclusively, so
    /// it never sees a record that is durable but not yet in memory.
    checkpoint_gate: tokio::sync::RwLock<()>,
    /// Serializes flushes, so two ticks never write the same traces twice.
    flush_lock: tokio::sync::Mutex<()>,
    pub metrics: Arc<LiveMetrics>,
    /// Where accepted spans go after they are durable (the metrics generator); set once.
    span_sink: std::sync::OnceLock<Arc<dyn SpanSink>>,
    /// The stream this store reads (`wal`, or `log/<topic>/<partition>`) and this reading of
    /// it, recorded in every block it writes (`BlockMeta::sources`).
    stream: String,
    incarnation: String,
}

/// A consumer of every acknowledged span (not of WAL replays: those spans were already seen).
/// `accept` runs on the push path, so it must hand the spans off, not process them.
pub trait SpanSink: Send + Sync {
    /// `fragments` are encoded `ExportTraceServiceRequest`s holding `spans` spans in all:
    /// decoding them is the consumer's work, off the push path.
    fn accept(&self, tenant: &TenantId, fragments: Vec<Bytes>, spans: usize);
}

impl LiveStore {
    /// Replays the WAL in `wal_dir` into memory and opens it for appends.
    pub fn open(
        wal_dir: &Path,
        wal_options: WalOptions,
        on_fsync: Option<andante_wal::FsyncObserver>,
        storage: Storage,
        blocks: BlockList,
        config: LiveConfig,
    ) -> Result<Arc<LiveStore>, andante_wal::WalError> {
        let metrics = Arc::new(LiveMetrics::default());
        let mut tenants: HashMap<TenantId, Arc<Mutex<TenantLive>>> = HashMap::new();
        let now = Instant::now();
        let report = replay(wal_dir, |seq, payload| match record::decode(payload) {
            Ok((tenant, request)) => {
                let state = tenants.entry(tenant).or_default();
                let mut state = state.lock();
                for fragment in split_by_trace(request) {
                    insert_fragment(&mut state, fragment.encode(), seq, now);
                }
            }
            Err(error) => tracing::warn!(segment = seq, %error, "skipping undecodable wal record"),
        })?;
        record_replay(&metrics, &report);
        let wal = Wal::open(wal_dir, wal_options, on_fsync)?;
        Ok(Self::build(
            Source::Wal(wal),
            "wal".to_owned(),
            tenants,
            metrics,
            storage,
            blocks,
            config,
        ))
    }

    /// A store without a WAL, fed by `insert_logged` from the log starting at `first_offset`;
    /// `commit` hears the oldest offset still needed after each block (none: the store only
    /// answers queries).
    pub fn fed_by_log(
        stream: String,
        first_offset: u64,
        commit: Option<Arc<dyn OffsetCommit>>,
        storage: Storage,
        blocks: BlockList,
        config: LiveConfig,
    ) -> Arc<LiveStore> {
        let source = Source::Log {
            next_offset: std::sync::atomic::AtomicU64::new(first_offset),
            commit,
        };
        let metrics = Arc::new(LiveMetrics::default());
        Self::build(
            source,
            stream,
            HashMap::new(),
            metrics,
            storage,
            blocks,
            config,
        )
    }

    fn build(
        source: Source,
        stream: String,
        tenants: HashMap<TenantId, Arc<Mutex<TenantLive>>>,
        metrics: Arc<LiveMetrics>,
        storage: Storage,
        blocks: BlockList,
        config: LiveConfig,
    ) -> Arc<LiveStore> {
        Arc::new(LiveStore {
            stream,
            incarnation: uuid::Uuid::new_v4().simple().to_string(),
            rate_limiter: RateLimiter::new(&config.limits),
            config,
            source,
            storage,
            blocks,
            tenants: Mutex::new(tenants),
            checkpoint_gate: tokio::sync::RwLock::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            metrics,
            span_sink: std::sync::OnceLock::new(),
        })
    }

    /// Sends every span acknowledged from now on to `sink` as well. Only the first call counts.
    pub fn set_span_sink(&self, sink: Arc<dyn SpanSink>) {
        let _ = self.span_sink.set(sink);
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<Mutex<TenantLive>> {
        self.tenants
            .lock()
            .entry(tenant.clone())
            .or_default()
            .clone()
    }

    /// Stores a validated batch durably. `request_bytes` is the size charged to the rate limit.
    pub async fn push(
        &self,
        tenant: &TenantId,
        request: ExportTraceServiceRequest,
        request_bytes: u64,
    ) -> Result<PushOutcome, PushError> {
        let fragments = andante_ingest::encode_by_trace(request);
        self.push_fragments(tenant, fragments, request_bytes).await
    }

    /// Stores a validated batch, already split by trace, durably.
    pub async fn push_fragments(
        &self,
        tenant: &TenantId,
        fragments: Vec<EncodedFragment>,
        request_bytes: u64,
    ) -> Result<PushOutcome, PushError> {
        let total_spans: usize = fragments.iter().map(|f| f.span_count).sum();
        if total_spans == 0 {
            return Ok(PushOutcome::default());
        }
        charge_rate_limit(
            &self.rate_limiter,
            &self.config.limits,
            &self.metrics,
            tenant,
            request_bytes,
            total_spans,
        )?;
        let Source::Wal(wal) = &self.source else {
            return Err(PushError::NotWritable);
        };
        let state = self.tenant(tenant);
        let (admitted, outcome) = {
            let state = state.lock();
            self.admit(tenant, &state, fragments.iter())
        };
        let accepted: Vec<EncodedFragment> = fragments
            .into_iter()
            .zip(admitted)
            .filter_map(|(fragment, admitted)| admitted.then_some(fragment))
            .collect();
        if accepted.is_empty() {
            return Err(PushError::AllRefused(outcome.message));
        }
        let bytes: Vec<Bytes> = accepted.iter().map(|f| f.bytes.clone()).collect();
        let payload = record::encode(tenant, &bytes);
        let _gate = self.checkpoint_gate.read().await;
        let seq = wal.append(payload).await?;
        let now = Instant::now();
        let mut state = state.lock();
        for fragment in accepted {
            insert_fragment(&mut state, fragment, seq, now);
        }
        drop(state);
        if let Some(sink) = self.span_sink.get() {
            sink.accept(tenant, bytes, outcome.accepted_spans);
        }
        self.metrics.add_received(outcome.accepted_spans);
        Ok(outcome)
    }

    /// Judges fragments against the per-trace limits in order, as one push would: which are
    /// admitted, and what was refused and why. Refusals are counted here.
    fn admit<'f>(
        &self,
        tenant: &TenantId,
        state: &TenantLive,
        fragments: impl Iterator<Item = &'f EncodedFragment>,
    ) -> (Vec<bool>, PushOutcome) {
        let limits = &self.config.limits;
        let mut admitted = Vec::new();
        let mut outcome = PushOutcome::default();
        let mut first_refusal: Option<String> = None;
        let mut new_traces = 0usize;
        for fragment in fragments {
            let existing_bytes = state.live.get(&fragment.trace_id).map(|t| t.bytes);
            let refusal = match existing_bytes {
                None if state.live.len() + new_traces >= limits.max_live_traces => Some((
                    RefusalReason::LiveTracesExceeded,
                    format!("max live traces ({}) reached for tenant `{tenant}` (`limits.max-live-traces`)", limits.max_live_traces),
                )),
                existing if existing.unwrap_or(0) + fragment.bytes.len() as u64 > limits.max_bytes_per_trace => Some((
                    RefusalReason::TraceTooLarge,
                    format!(
                        "trace `{}` exceeds max bytes per trace ({}) (`limits.max-bytes-per-trace`)",
                        fragment.trace_id, limits.max_bytes_per_trace
                    ),
                )),
                _ => None,
            };
            admitted.push(refusal.is_none());
            match refusal {
                Some((reason, message)) => {
                    self.metrics
                        .add_discarded(tenant.as_str(), reason, fragment.span_count);
                    outcome.refused_spans += fragment.span_count;
                    first_refusal.get_or_insert(message);
                }
                None => {
                    new_traces += usize::from(existing_bytes.is_none());
                    outcome.accepted_spans += fragment.span_count;
                }
            }
        }
        if let Some(message) = first_refusal {
            outcome.message = format!("refused {} span(s): {message}", outcome.refused_spans);
        }
        (admitted, outcome)
    }

    /// Inserts the fragments of the log record at `offset`, already durable in the log, under
    /// the same per-trace limits as a push (judged in record order, so every consumer of the
    /// partition decides alike; what they refuse is counted, the client was answered already).
    pub async fn insert_logged(
        &self,
        tenant: &TenantId,
        fragments: Vec<EncodedFragment>,
        offset: u64,
    ) -> PushOutcome {
        let Source::Log { next_offset, .. } = &self.source else {
            debug_assert!(false, "insert_logged on a store with a WAL");
            return PushOutcome::default();
        };
        // Shared with other inserts, exclusive to the checkpoint: it never sees the offset
        // moved past a record that is not yet in memory.
        let _gate = self.checkpoint_gate.read().await;
        let state = self.tenant(tenant);
        let now = Instant::now();
        let mut state = state.lock();
        let (admitted, outcome) = self.admit(tenant, &state, fragments.iter());
        for (fragment, admitted) in fragments.into_iter().zip(admitted) {
            if admitted {
                insert_fragment(&mut state, fragment, offset, now);
            }
        }
        drop(state);
        next_offset.fetch_max(offset + 1, Ordering::Release);
        self.metrics.add_received(outcome.accepted_spans);
        outcome
    }

    /// Moves past the log record at `offset` without inserting anything (it did not decode, or
    /// it expired from the log), so the committed offset can pass it.
    pub async fn skip_logged(&self, offset: u64) {
        if let Source::Log { next_offset, .. } = &self.source {
            let _gate = self.checkpoint_gate.read().await;
            next_offset.fetch_max(offset + 1, Ordering::Release);
        }
    }

    /// A live-store's forgetting: drops every trace whose records all lie before log offset
    /// `before` (the block-builders committed past them, so they are in listed blocks); returns
    /// how many.
    pub fn retire_logged(&self, before: u64) -> usize {
        let tenants: Vec<_> = self.tenants.lock().values().cloned().collect();
        tenants
            .iter()
            .map(|state| state.lock().retire_before(before))
            .sum()
    }

    /// The offset after the last record this store took from the log (None with a WAL).
    pub fn next_offset(&self) -> Option<u64> {
        match &self.source {
            Source::Log { next_offset, .. } => Some(next_offset.load(Ordering::Acquire)),
            Source::Wal(_) => None,
        }
    }

    /// Whether any span of `trace_id` is held in memory for `tenant`, without decoding.
    pub fn holds(&self, tenant: &TenantId, trace_id: &TraceId) -> bool {
        let Some(state) = self.tenants.lock().get(tenant).cloned() else {
            return false;
        };
        let held = state.lock().holds(trace_id);
        held
    }

    /// Every span of `trace_id` held in memory for `tenant`, merged.
    pub fn find_trace(&self, tenant: &TenantId, trace_id: &TraceId) -> Vec<ResourceSpans> {
        decode_fragments(&self.fragments(tenant, trace_id))
    }

    /// Every fragment of `trace_id` held in memory for `tenant`, still encoded.
    pub fn fragments(&self, tenant: &TenantId, trace_id: &TraceId) -> Vec<Bytes> {
        let Some(state) = self.tenants.lock().get(tenant).cloned() else {
            return Vec::new();
        };
        let fragments = state.lock().fragments(trace_id);
        fragments
    }

    /// Every trace of `tenant` held in memory, in trace-ID order, still encoded: search decodes
    /// them on its CPU pool with `decode_fragments`, not under the tenant lock.
    pub fn snapshot(&self, tenant: &TenantId) -> Vec<(TraceId, Vec<Bytes>)> {
        let Some(state) = self.tenants.lock().get(tenant).cloned() else {
            return Vec::new();
        };
        let all = state.lock().all_fragments();
        all.into_iter().collect()
    }

    /// Every tenant that has pushed since start (with or without traces in memory now).
    pub fn tenants(&self) -> Vec<TenantId> {
        self.tenants.lock().keys().cloned().collect()
    }

    /// (live traces, bytes held in memory) over every tenant.
    pub fn memory_totals(&self) -> (u64, u64) {
        let tenants: Vec<_> = self.tenants.lock().values().cloned().collect();
        let mut totals = (0, 0);
        for state in tenants {
            let state = state.lock();
            totals.0 += state.live.len() as u64;
            totals.1 += state
                .live
                .values()
                .chain(state.completed.values())
                .map(|t| t.bytes)
                .sum::<u64>();
        }
        totals
    }

    /// The store's WAL; none when it is fed by the log.
    pub fn wal(&self) -> Option<&Wal> {
        match &self.source {
            Source::Wal(wal) => Some(wal),
            Source::Log { .. } => None,
        }
    }

    /// Moves idle and too-old traces to `completed`. Cheap; never waits for a block upload.
    pub fn cut(&self) {
        self.cut_tenants(false);
    }

    fn cut_tenants(&self, everything: bool) {
        let now = Instant::now();
        let tenants: Vec<_> = self.tenants.lock().values().cloned().collect();
        for state in tenants {
            let cut = state.lock().cut(
                now,
                self.config.trace_idle,
                self.config.trace_max_live,
                everything,
            );
            self.metrics
                .traces_cut
                .fetch_add(cut as u64, Ordering::Relaxed);
        }
    }

    /// Periodic work: cut, then write the blocks that are due and drop WAL segments no longer
    /// needed. Blocks are written by at most one caller at a time; call `cut` on its own timer
    /// so that a slow upload never delays cutting.
    pub async fn tick(&self) {
        self.cut_tenants(false);
        self.flush(false).await;
    }

    /// Cuts every trace and writes everything in memory as blocks (graceful shutdown).
    pub async fn flush_all(&self) {
        self.cut_tenants(true);
        self.flush(true).await;
    }

    async fn flush(&self, everything: bool) {
        let _flushing = self.flush_lock.lock().await;
        let now = Instant::now();
        let tenants: Vec<(TenantId, Arc<Mutex<TenantLive>>)> = self
            .tenants
            .lock()
            .iter()
            .map(|(id, state)| (id.clone(), state.clone()))
            .collect();
        let mut wrote_any = false;
        for (tenant, state) in tenants {
            // A block at most `block_max_bytes` at a time, so memory for one block stays bounded
            // and a long shutdown flush makes progress block by block.
            loop {
                let batch = {
                    let mut state = state.lock();
                    let due = state.completed_since.is_some_and(|since| {
                        now.duration_since(since) >= self.config.block_max_age
                    }) || state.completed_bytes >= self.config.block_max_bytes;
                    if state.completed.is_empty() || !(due || everything) {
                        break;
                    }
                    let batch = Arc::new(state.take_chunk(self.config.block_max_bytes));
                    state.flushing.push(batch.clone());
                    batch
                };
                let written = self.write_block(&tenant, batch.clone()).await;
                let mut state = state.lock();
                state
                    .flushing
                    .retain(|pending| !Arc::ptr_eq(pending, &batch));
                if !written {
                    // Keep the traces in memory (and their WAL segments) and try again next tick.
                    state.complete(Arc::unwrap_or_clone(batch), now);
                    break;
                }
                wrote_any = true;
            }
        }
        if wrote_any || everything {
            self.checkpoint().await;
        }
    }

    async fn write_block(&self, tenant: &TenantId, batch: Arc<TraceMap>) -> bool {
        // Every record of the batch lies between its traces' first and last positions.
        let from = batch.values().map(|trace| trace.first_segment).min();
        let to = batch.values().map(|trace| trace.last_segment).max();
        let new_block = NewBlock {
            tenant_id: tenant.to_string(),
            compaction_level: 0,
            replaces: Vec::new(),
            options: self.config.write,
            sources: from
                .zip(to)
                .map(|(from, to)| andante_block::meta::BlockSource {
                    stream: self.stream.clone(),
                    incarnation: self.incarnation.clone(),
                    from,
                    to,
                })
                .into_iter()
                .collect(),
        };
        let encoded = tokio::task::spawn_blocking(move || {
            // Decoded one row group at a time: a block's worth of decoded spans never sits in memory.
            let groups = block_groups(&batch, new_block.options.row_group_spans);
            encode_block_groups(WRITTEN, groups, batch.len(), &new_block)
        })
        .await;
        let result = match encoded {
            Ok(Ok(encoded)) => {
                let meta = encoded.meta.clone();
                match upload_block(&self.storage, encoded).await {
                    Ok(()) => BlockHandle::open(&self.storage, meta)
                        .await
                        .map(|handle| self.blocks.add(handle)),
                    Err(error) => Err(error),
                }
            }
            Ok(Err(error)) => Err(error),
            Err(join_error) => Err(andante_block::BlockError::Encode(join_error.to_string())),
        };
        match result {
            Ok(()) => {
                self.metrics.blocks_flushed.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(error) => {
                self.metrics
                    .block_flush_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(%tenant, %error, "failed to write block; will retry");
                false
            }
        }
    }

    /// Starts a new WAL segment and deletes the segments nothing in memory depends on; fed by
    /// the log, commits the oldest offset anything in memory depends on instead.
    async fn checkpoint(&self) {
        let _exclusive = self.checkpoint_gate.write().await;
        let wal = match &self.source {
            Source::Wal(wal) => wal,
            Source::Log {
                next_offset,
                commit: Some(commit),
            } => {
                let tenants: Vec<_> = self.tenants.lock().values().cloned().collect();
                let oldest_needed = tenants
                    .iter()
                    .filter_map(|state| state.lock().min_segment())
                    .min()
                    .unwrap_or_else(|| next_offset.load(Ordering::Acquire));
                commit.commit(oldest_needed).await;
                return;
            }
            Source::Log { commit: None, .. } => return,
        };
        let active = match wal.rotate().await {
            Ok(active) => active,
            Err(error) => {
                tracing::error!(%error, "failed to rotate the wal");
                return;
            }
        };
        let tenants: Vec<_> = self.tenants.lock().values().cloned().collect();
        let oldest_needed: SegmentSeq = tenants
            .iter()
            .filter_map(|state| state.lock().min_segment())
            .min()
            .unwrap_or(active);
        match wal.remove_segments_before(oldest_needed) {
            Ok(removed) => {
                self.metrics
                    .wal_segments_removed
                    .fetch_add(removed as u64, Ordering::Relaxed);
            }
            Err(error) => tracing::error!(%error, "failed to remove old wal segments"),
        }
    }
}

/// Charges a push of `spans` spans and `bytes` bytes to its tenant's rate limit (a live store's
/// in `all`, a distributor's apart); a refused push is counted and names the limit.
pub fn charge_rate_limit(
    limiter: &RateLimiter,
    limits: &IngestLimits,
    metrics: &LiveMetrics,
    tenant: &TenantId,
    bytes: u64,
    spans: usize,
) -> Result<(), PushError> {
    if limiter.try_acquire(tenant, bytes) {
        return Ok(());
    }
    metrics.add_discarded(tenant.as_str(), RefusalReason::RateLimited, spans);
    Err(PushError::RateLimited {
        tenant: tenant.to_string(),
        rate_bytes: limits.rate_limit_bytes,
        burst_bytes: limits.burst_size_bytes,
    })
}

/// Counts what replay found and logs it; damage that cost records is a warning.
fn record_replay(metrics: &LiveMetrics, report: &ReplayReport) {
    metrics
        .wal_replayed_records
        .store(report.records as u64, Ordering::Relaxed);
    metrics
        .wal_corrupt_regions
        .fetch_add(report.skipped_regions, Ordering::Relaxed);
    metrics
        .wal_corrupt_bytes
        .fetch_add(report.skipped_bytes, Ordering::Relaxed);
    metrics
        .wal_truncated_bytes
        .fetch_add(report.truncated_bytes(), Ordering::Relaxed);
    if report.skipped_regions > 0 {
        tracing::warn!(
            segments = report.segments,
            records = report.records,
            bytes = report.bytes,
            skipped_regions = report.skipped_regions,
            skipped_bytes = report.skipped_bytes,
            damaged = ?report.damaged,
            truncated = ?report.truncated,
            "replayed wal; skipped damaged records (each skipped region held at least one record)"
        );
    } else if report.records > 0 || !report.truncated.is_empty() {
        tracing::info!(segments = report.segments, records = report.records, bytes = report.bytes, truncated = ?report.truncated, "replayed wal");
    }
}

fn insert_fragment(
    state: &mut TenantLive,
    fragment: EncodedFragment,
    seq: SegmentSeq,
    now: Instant,
) {
    let incoming = LiveTrace {
        bytes: fragment.bytes.len() as u64,
        fragments: vec![fragment.bytes],
        spans: fragment.span_count,
        first_segment: seq,
        last_segment: seq,
        created: now,
        last_append: now,
    };
    match state.live.get_mut(&fragment.trace_id) {
        Some(existing) => existing.absorb(incoming),
        None => {
            state.live.insert(fragment.trace_id, incoming);
        }
    }
}

/// Completed traces as the row groups of a new block (`WRITTEN.plan_groups`), each group
/// decoded only when the writer asks. Placement needs each trace's start: a projected decode
/// that keeps no attribute, name or status finds it without building the spans.
fn block_groups(batch: &TraceMap, row_group_spans: usize) -> impl Iterator<Item = Vec<Trace>> + '_ {
    let trace_ids: Vec<&TraceId> = batch.keys().collect();
    let times_only = andante_model::projected::Projection::default();
    let placed: Vec<order::Placed> = trace_ids
        .iter()
        .map(|trace_id| {
            let live = &batch[*trace_id];
            let start = live
                .fragments
                .iter()
                .filter_map(|bytes| {
                    andante_model::projected::decode_projected(bytes, &times_only).ok()
                })
                .filter_map(|resource_spans| order::earliest_start(&resource_spans))
                .min()
                .unwrap_or(0);
            order::Placed {
                start_unix_nanos: start,
                trace_id: **trace_id,
                spans: live.spans,
            }
        })
        .collect();
    WRITTEN
        .plan_groups(&placed, row_group_spans)
        .into_iter()
        .map(move |group| {
            group
                .into_iter()
                .map(|at| Trace {
                    trace_id: *trace_ids[at],
                    resource_spans: decode_fragments(&batch[trace_ids[at]].fragments),
                })
                .collect()
        })
}

/// Decodes and merges the fragments of one trace.
pub fn decode_fragments(fragments: &[Bytes]) -> Vec<ResourceSpans> {
    let decoded = fragments
        .iter()
        .filter_map(|bytes| ExportTraceServiceRequest::decode(bytes.as_ref()).ok());
    merge_resource_spans(decoded.flat_map(|request| request.resource_spans))
}

/// Decodes and merges the fragments of one trace, keeping only what `projection` says (a query
/// over recent data reads a few fields of each span; see `docs/design/live-search.md`).
pub fn decode_fragments_projected(
    fragments: &[Bytes],
    projection: &Projection,
) -> Vec<ResourceSpans> {
    let decoded = fragments
        .iter()
        .filter_map(|bytes| decode_projected(bytes, projection).ok());
    merge_resource_spans(decoded.flatten())
}

impl From<PushError> for andante_ingest::PushFailure {
    fn from(error: PushError) -> Self {
        let message = if matches!(error, PushError::Wal(_)) {
            // The cause is for the operator; the client only needs to know it may retry.
            tracing::error!(%error, "push failed");
            "failed to write spans durably; retry later".to_owned()
        } else {
            error.to_string()
        };
        andante_ingest::PushFailure {
            kind: error.kind(),
            message,
        }
    }
}

/// In `all`, the push service's sink is the live store: a push is acknowledged once its spans
/// are in the WAL and in memory.
impl andante_ingest::TraceSink for LiveStore {
    fn push<'a>(
        &'a self,
        tenant: &'a TenantId,
        fragments: Vec<EncodedFragment>,
        request_bytes: u64,
    ) -> futures::future::BoxFuture<
        'a,
        Result<andante_ingest::SinkOutcome, andante_ingest::PushFailure>,
    > {
        Box::pin(async move {
            let outcome = self
                .push_fragments(tenant, fragments, request_bytes)
                .await?;
            Ok(andante_ingest::SinkOutcome {
                refused_spans: outcome.refused_spans,
                message: outcome.message,
            })
        })
    }

    fn count_refused(&self, tenant: &TenantId, reason: RefusalReason, spans: usize) {
        self.metrics.add_discarded(tenant.as_str(), reason, spans);
    }
}
