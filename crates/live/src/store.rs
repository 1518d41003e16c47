//! The live store itself: push, cut, flush, checkpoint, replay.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use andante_block::blocklist::BlockList;
use andante_block::{encode_block_from, upload_block, v1, BlockHandle, NewBlock, Trace};
use andante_ingest::{
    split_by_trace, ExportTraceServiceRequest, IngestLimits, RateLimiter, RefusalReason,
};
use andante_model::otlp::trace::v1::ResourceSpans;
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
}

impl PushError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            PushError::RateLimited { .. } | PushError::AllRefused(_) => ErrorKind::TooManyRequests,
            PushError::Wal(_) => ErrorKind::Unavailable,
        }
    }
}

pub struct LiveStore {
    config: LiveConfig,
    wal: Wal,
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
}

/// A consumer of every acknowledged span (not of WAL replays: those spans were already seen).
/// `accept` runs on the push path, so it must hand the spans off, not process them.
pub trait SpanSink: Send + Sync {
    fn accept(&self, tenant: &TenantId, spans: Vec<ResourceSpans>);
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
                    insert_fragment(
                        &mut state,
                        fragment_bytes(&fragment.resource_spans),
                        &fragment,
                        seq,
                        now,
                    );
                }
            }
            Err(error) => tracing::warn!(segment = seq, %error, "skipping undecodable wal record"),
        })?;
        record_replay(&metrics, &report);
        let wal = Wal::open(wal_dir, wal_options, on_fsync)?;
        Ok(Arc::new(LiveStore {
            rate_limiter: RateLimiter::new(&config.limits),
            config,
            wal,
            storage,
            blocks,
            tenants: Mutex::new(tenants),
            checkpoint_gate: tokio::sync::RwLock::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            metrics,
            span_sink: std::sync::OnceLock::new(),
        }))
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
        let fragments = split_by_trace(request);
        let total_spans: usize = fragments.iter().map(|f| f.span_count).sum();
        if total_spans == 0 {
            return Ok(PushOutcome::default());
        }
        let limits = &self.config.limits;
        if !self.rate_limiter.try_acquire(tenant, request_bytes) {
            self.metrics
                .add_discarded(tenant.as_str(), RefusalReason::RateLimited, total_spans);
            return Err(PushError::RateLimited {
                tenant: tenant.to_string(),
                rate_bytes: limits.rate_limit_bytes,
                burst_bytes: limits.burst_size_bytes,
            });
        }
        // Encode outside the tenant lock: it is the costly part and needs no shared state.
        let encoded_fragments: Vec<(Bytes, andante_ingest::TraceFragment)> = fragments
            .into_iter()
            .map(|fragment| (fragment_bytes(&fragment.resource_spans), fragment))
            .collect();
        let state = self.tenant(tenant);
        let mut accepted = Vec::with_capacity(encoded_fragments.len());
        let mut outcome = PushOutcome::default();
        let mut first_refusal: Option<String> = None;
        {
            let state = state.lock();
            let mut new_traces = 0usize;
            for (encoded, fragment) in encoded_fragments {
                let existing_bytes = state.live.get(&fragment.trace_id).map(|t| t.bytes);
                let refusal = match existing_bytes {
                    None if state.live.len() + new_traces >= limits.max_live_traces => Some((
                        RefusalReason::LiveTracesExceeded,
                        format!("max live traces ({}) reached for tenant `{tenant}` (`limits.max-live-traces`)", limits.max_live_traces),
                    )),
                    existing if existing.unwrap_or(0) + encoded.len() as u64 > limits.max_bytes_per_trace => Some((
                        RefusalReason::TraceTooLarge,
                        format!(
                            "trace `{}` exceeds max bytes per trace ({}) (`limits.max-bytes-per-trace`)",
                            fragment.trace_id, limits.max_bytes_per_trace
                        ),
                    )),
                    _ => None,
                };
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
                        accepted.push((encoded, fragment));
                    }
                }
            }
        }
        if let Some(message) = first_refusal {
            outcome.message = format!("refused {} span(s): {message}", outcome.refused_spans);
        }
        if accepted.is_empty() {
            return Err(PushError::AllRefused(outcome.message));
        }
        let payload = record::encode(
            tenant,
            &accepted
                .iter()
                .map(|(bytes, _)| bytes.clone())
                .collect::<Vec<_>>(),
        );
        let _gate = self.checkpoint_gate.read().await;
        let seq = self.wal.append(payload).await?;
        let now = Instant::now();
        let mut state = state.lock();
        let mut sunk = Vec::new();
        let sink = self.span_sink.get();
        for (bytes, fragment) in accepted {
            insert_fragment(&mut state, bytes, &fragment, seq, now);
            if sink.is_some() {
                sunk.extend(fragment.resource_spans);
            }
        }
        drop(state);
        if let Some(sink) = sink {
            sink.accept(tenant, sunk);
        }
        self.metrics.add_received(outcome.accepted_spans);
        Ok(outcome)
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
        let Some(state) = self.tenants.lock().get(tenant).cloned() else {
            return Vec::new();
        };
        let fragments = state.lock().fragments(trace_id);
        decode_fragments(&fragments)
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

    pub fn wal(&self) -> &Wal {
        &self.wal
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
        let new_block = NewBlock {
            tenant_id: tenant.to_string(),
            compaction_level: 0,
            replaces: Vec::new(),
            options: self.config.write,
        };
        let encoded = tokio::task::spawn_blocking(move || {
            // Decoded one trace at a time: a block's worth of decoded spans never sits in memory.
            encode_block_from(decode_traces(&batch), batch.len(), &new_block)
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

    /// Starts a new WAL segment and deletes the segments nothing in memory depends on.
    async fn checkpoint(&self) {
        let _exclusive = self.checkpoint_gate.write().await;
        let active = match self.wal.rotate().await {
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
        match self.wal.remove_segments_before(oldest_needed) {
            Ok(removed) => {
                self.metrics
                    .wal_segments_removed
                    .fetch_add(removed as u64, Ordering::Relaxed);
            }
            Err(error) => tracing::error!(%error, "failed to remove old wal segments"),
        }
    }
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

/// Encodes resource spans as an `ExportTraceServiceRequest` (field 1, repeated) without cloning
/// them into a request first.
fn fragment_bytes(resource_spans: &[ResourceSpans]) -> Bytes {
    let len: usize = resource_spans
        .iter()
        .map(|rs| prost::encoding::message::encoded_len(1, rs))
        .sum();
    let mut out = Vec::with_capacity(len);
    for rs in resource_spans {
        prost::encoding::message::encode(1, rs, &mut out);
    }
    Bytes::from(out)
}

fn insert_fragment(
    state: &mut TenantLive,
    bytes: Bytes,
    fragment: &andante_ingest::TraceFragment,
    seq: SegmentSeq,
    now: Instant,
) {
    let incoming = LiveTrace {
        bytes: bytes.len() as u64,
        fragments: vec![bytes],
        spans: fragment.span_count,
        first_segment: seq,
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

/// Completed traces as block input in trace-ID order, each decoded only when the writer asks.
fn decode_traces(batch: &TraceMap) -> impl Iterator<Item = Trace> + '_ {
    let mut trace_ids: Vec<&TraceId> = batch.keys().collect();
    trace_ids.sort_unstable();
    trace_ids.into_iter().map(move |trace_id| {
        let fragments = batch[trace_id].fragments.iter();
        let decoded =
            fragments.filter_map(|bytes| ExportTraceServiceRequest::decode(bytes.as_ref()).ok());
        Trace {
            trace_id: *trace_id,
            resource_spans: merge_resource_spans(decoded.flat_map(|r| r.resource_spans)),
        }
    })
}

/// Decodes and merges the fragments of one trace.
pub fn decode_fragments(fragments: &[Bytes]) -> Vec<ResourceSpans> {
    let decoded = fragments
        .iter()
        .filter_map(|bytes| ExportTraceServiceRequest::decode(bytes.as_ref()).ok());
    merge_resource_spans(decoded.flat_map(|request| request.resource_spans))
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
        request: ExportTraceServiceRequest,
        request_bytes: u64,
    ) -> futures::future::BoxFuture<
        'a,
        Result<andante_ingest::SinkOutcome, andante_ingest::PushFailure>,
    > {
        Box::pin(async move {
            let outcome = LiveStore::push(self, tenant, request, request_bytes).await?;
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
