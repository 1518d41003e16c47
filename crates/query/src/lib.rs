//! The read side: finds a trace by ID for one or several tenants by merging what the live store
//! holds in memory with every block that may contain it. Blocks are pruned first by the
//! optional time hints, then by the in-memory index (Bloom filter and row-group ranges), and the
//! remaining few are read concurrently. A block that fails to read makes the answer partial
//! with a message, never an error for the whole request: the spans found elsewhere are still
//! worth showing.

use std::sync::Arc;

use andante_block::blocklist::BlockList;
use andante_block::v1::search::RowLocation;
use andante_block::v1::SpanParts;
pub use andante_block::AbortOnDrop;
use andante_live::decode_fragments;
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::{merge_resource_spans, TenantSet, TraceId, UnixNanos};
use andante_storage::Storage;
use futures::StreamExt;
pub use live_source::{
    Covered, HeldNow, LiveRead, LiveSource, LiveSources, StoresNow, COVERED_HEADER,
};

mod copies;
pub mod jobs;
pub mod live_remote;
pub mod live_source;
pub mod metrics;
pub mod search;
mod tag_cache;
pub mod tags;
pub mod window;

/// Rows stage 1 found per trace: (block, rows in it).
pub type Located = std::collections::HashMap<TraceId, Vec<(uuid::Uuid, RowLocation)>>;

/// The answer to a trace-by-ID lookup.
#[derive(Debug, Default)]
pub struct TraceLookup {
    pub resource_spans: Vec<ResourceSpans>,
    /// Bytes of block data read to answer (Tempo's `inspectedBytes`).
    pub inspected_bytes: u64,
    pub blocks_searched: usize,
    /// Set when some source could not be read; the spans found are still returned.
    pub partial_message: Option<String>,
}

/// Optional time bounds from the request, in Unix nanoseconds, inclusive.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeHint {
    pub start: Option<UnixNanos>,
    pub end: Option<UnixNanos>,
}

#[derive(Clone)]
pub struct Querier {
    live: Arc<dyn LiveSource>,
    storage: Storage,
    blocks: BlockList,
    /// Permits for CPU-heavy query work (decode, evaluation): one per core, shared by all
    /// requests so a burst of searches cannot starve ingest.
    cpu: Arc<tokio::sync::Semaphore>,
    /// How many block jobs one query keeps in flight: one per core (at least two, so fetching
    /// one block overlaps decoding another).
    block_jobs: usize,
    /// Queriers apart that search stage 1's block scans are sent to (a query-frontend's
    /// `query.queriers`); none: every scan runs here.
    queriers: Option<Arc<jobs::Queriers>>,
    /// Blocks' answers to tag requests (`tag_cache.rs`).
    tag_cache: Arc<tag_cache::TagCache>,
    /// Traces a replay wrote into two blocks (`copies.rs`).
    copies: Arc<copies::CopyFinder>,
}

/// Runs `work` over `items` split into `parts` parts of equal length, each a blocking task
/// holding a `cpu` permit, and returns their results in part order (a part whose task failed
/// gives its error).
pub(crate) async fn in_parts<T, R>(
    items: Vec<T>,
    parts: usize,
    cpu: &Arc<tokio::sync::Semaphore>,
    work: impl Fn(Vec<T>) -> R + Clone + Send + 'static,
) -> Vec<Result<R, tokio::task::JoinError>>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let part_size = items.len().div_ceil(parts.max(1)).max(1);
    let mut tasks = Vec::new();
    let mut items = items.into_iter();
    loop {
        let part: Vec<T> = items.by_ref().take(part_size).collect();
        if part.is_empty() {
            break;
        }
        let (cpu, work) = (cpu.clone(), work.clone());
        tasks.push(async move {
            let permit = cpu.acquire_owned().await;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                work(part)
            })
            .await
        });
    }
    futures::future::join_all(tasks).await
}

/// Why a querier did not run a scan job.
#[derive(Debug)]
pub enum ScanJobError {
    /// The request cannot be run anywhere (400).
    BadRequest(String),
    /// This querier's block list does not hold the block yet, or no longer (404: the frontend
    /// tries another querier, then scans it itself).
    UnknownBlock,
    /// The block could not be read (500).
    Read(String),
}

impl Querier {
    /// Tenants with data in `[start, end]` (Unix nanoseconds): held live, or in a block
    /// overlapping it. Sorted. (A live-store that does not answer adds none.)
    pub async fn tenants_in_window(&self, start: u64, end: u64) -> Vec<andante_model::TenantId> {
        let mut tenants = self.live.tenants().await.value;
        for name in self.blocks.tenants() {
            let overlapping = self
                .blocks
                .blocks(&name)
                .iter()
                .any(|handle| handle.meta.overlaps(start, end));
            if let (true, Ok(tenant)) = (overlapping, andante_model::TenantId::new(&name)) {
                tenants.push(tenant);
            }
        }
        tenants.sort();
        tenants.dedup();
        tenants
    }

    pub fn new(live: Arc<dyn LiveSource>, storage: Storage, blocks: BlockList) -> Querier {
        let cores = std::thread::available_parallelism().map_or(2, |count| count.get());
        Querier {
            live,
            storage,
            blocks,
            cpu: Arc::new(tokio::sync::Semaphore::new(cores)),
            block_jobs: cores.max(2),
            queriers: None,
            tag_cache: Arc::default(),
            copies: Arc::default(),
        }
    }

    /// Sends search stage 1's block scans to `queriers` (`jobs.rs`).
    pub fn with_queriers(mut self, queriers: jobs::Queriers) -> Querier {
        self.queriers = (!queriers.is_empty()).then(|| Arc::new(queriers));
        self
    }

    /// A scan job from a query-frontend: stage 1 of `text` over block `block_id` of `tenant`,
    /// as this querier's block list knows it.
    pub async fn scan_block(
        &self,
        tenant: &andante_model::TenantId,
        block_id: uuid::Uuid,
        row_group: Option<usize>,
        text: &str,
        start: u64,
        end: u64,
    ) -> Result<andante_block::v1::search::ScanOutcome, ScanJobError> {
        let query = andante_traceql::parse(text)
            .map_err(|error| ScanJobError::BadRequest(format!("invalid TraceQL query: {error}")))?;
        let handle = self
            .blocks
            .blocks(tenant.as_str())
            .into_iter()
            .find(|handle| handle.meta.block_id == block_id)
            .ok_or(ScanJobError::UnknownBlock)?;
        if let Some(row_group) = row_group.filter(|at| *at >= handle.meta.row_groups as usize) {
            return Err(ScanJobError::BadRequest(format!(
                "row group {row_group} is not in block {block_id} ({} row groups)",
                handle.meta.row_groups
            )));
        }
        let plan = Arc::new(andante_block::v1::search::ScanPlan::new(
            andante_traceql::TraceCondition::of(&query),
            start..end,
        ));
        handle
            .scan_unit(&self.storage, plan, self.cpu.clone(), row_group)
            .await
            .map_err(|error| ScanJobError::Read(error.to_string()))
    }

    /// The tenant's blocks overlapping `[start, end]`, newest data first (then by block ID, so
    /// the order never depends on listing order).
    fn blocks_newest_first(
        &self,
        tenant: &andante_model::TenantId,
        start: u64,
        end: u64,
    ) -> Vec<andante_block::BlockHandle> {
        let mut blocks: Vec<_> = self
            .blocks
            .blocks(tenant.as_str())
            .into_iter()
            .filter(|handle| handle.meta.overlaps(start, end))
            .collect();
        blocks.sort_by_key(|handle| {
            std::cmp::Reverse((handle.meta.end_unix_nanos, handle.meta.block_id))
        });
        blocks
    }

    pub async fn trace_by_id(
        &self,
        tenants: &TenantSet,
        trace_id: TraceId,
        hint: TimeHint,
    ) -> TraceLookup {
        let mut lookup = TraceLookup::default();
        let mut fragments: Vec<ResourceSpans> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        for tenant in tenants.iter() {
            let mut batch = self
                .traces_by_ids(tenant, &[trace_id], hint, &Located::new())
                .await;
            lookup.inspected_bytes += batch.inspected_bytes;
            lookup.blocks_searched += batch.blocks_searched;
            failures.extend(batch.failures);
            fragments.extend(
                batch
                    .traces
                    .pop()
                    .map(|(_, spans)| spans)
                    .unwrap_or_default(),
            );
        }
        lookup.resource_spans = merge_resource_spans(fragments);
        if !failures.is_empty() {
            lookup.partial_message = Some(format!("partial trace: {}", failures.join("; ")));
        }
        lookup
    }

    /// Every trace of `trace_ids` one tenant holds, whole (live store and every block that may
    /// hold a piece, merged), in the order asked. A block is read once for all the IDs it may
    /// hold, a row group once for all the IDs in it: confirming many search candidates costs a
    /// pass over their row groups, not one per trace. Where `located` knows a trace's rows in a
    /// block (stage 1 found them), that block reads them directly; every other block the index
    /// says may hold a piece is searched by ID as usual, so a trace split across blocks still
    /// comes back whole.
    pub async fn traces_by_ids(
        &self,
        tenant: &andante_model::TenantId,
        trace_ids: &[TraceId],
        hint: TimeHint,
        located: &Located,
    ) -> BatchLookup {
        self.spans_by_ids(tenant, trace_ids, hint, located, SpanParts::ALL)
            .await
    }

    /// `traces_by_ids`, decoding from blocks only `parts` of each span (live spans come whole).
    pub async fn spans_by_ids(
        &self,
        tenant: &andante_model::TenantId,
        trace_ids: &[TraceId],
        hint: TimeHint,
        located: &Located,
        parts: SpanParts,
    ) -> BatchLookup {
        let mut batch = BatchLookup::default();
        let start = hint.start.unwrap_or(0);
        let end = hint.end.unwrap_or(u64::MAX);
        let live = self.live.find(tenant, trace_ids).await;
        batch.failures.extend(live.failures);
        let mut fragments: std::collections::HashMap<TraceId, Vec<ResourceSpans>> = live
            .value
            .into_iter()
            .map(|(trace_id, encoded)| (trace_id, decode_fragments(&encoded)))
            .collect();
        let reads: Vec<_> = self
            .blocks
            .blocks(tenant.as_str())
            .into_iter()
            .filter(|handle| handle.meta.overlaps(start, end))
            .filter_map(|handle| {
                let block_id = handle.meta.block_id;
                let mut wanted = Vec::new();
                let mut at = Vec::new();
                for trace_id in trace_ids {
                    let known = located.get(trace_id).into_iter().flatten();
                    let rows: Vec<RowLocation> = known
                        .filter(|(block, _)| *block == block_id)
                        .map(|(_, rows)| *rows)
                        .collect();
                    if !rows.is_empty() {
                        at.extend(rows);
                    } else if handle.may_contain(trace_id) {
                        wanted.push(*trace_id);
                    }
                }
                (!wanted.is_empty() || !at.is_empty()).then_some((handle, wanted, at))
            })
            .collect();
        batch.blocks_searched = reads.len();
        let (storage, parts) = (&self.storage, &parts);
        let mut results =
            futures::stream::iter(reads.into_iter().map(|(handle, wanted, at)| async move {
                let result = handle
                    .find_spans_at(storage, &wanted, &at, parts.clone())
                    .await;
                (handle.meta, result)
            }))
            .buffer_unordered(self.block_jobs);
        while let Some((meta, result)) = results.next().await {
            match result {
                Ok((traces, bytes_read)) => {
                    batch.inspected_bytes += bytes_read;
                    for trace in traces {
                        fragments
                            .entry(trace.trace_id)
                            .or_default()
                            .extend(trace.resource_spans);
                    }
                }
                Err(error) => batch
                    .failures
                    .push(self.block_failed(&meta, &error, "read").await),
            }
        }
        for trace_id in trace_ids {
            for block_id in self.blocks.quarantined_holding(tenant.as_str(), trace_id) {
                let message = format!(
                    "block {block_id}, which may hold trace {}, is quarantined as corrupt",
                    trace_id.to_hex()
                );
                if !batch.failures.contains(&message) {
                    batch.failures.push(message);
                }
            }
        }
        batch.traces = trace_ids
            .iter()
            .map(|trace_id| {
                (
                    *trace_id,
                    merge_resource_spans(fragments.remove(trace_id).unwrap_or_default()),
                )
            })
            .collect();
        batch
    }
}

impl Querier {
    /// Handles a block that failed a read: logs it, quarantines it when its data is corrupt
    /// (so later queries stop tripping over it), and returns the message for the partial
    /// answer, naming the block.
    pub(crate) async fn block_failed(
        &self,
        meta: &andante_block::BlockMeta,
        error: &andante_block::BlockError,
        doing: &str,
    ) -> String {
        let block_id = meta.block_id;
        if error.is_corrupt() {
            self.blocks
                .quarantine(&self.storage, meta, &error.to_string())
                .await;
            return format!("block {block_id} is corrupt and was quarantined ({error})");
        }
        tracing::warn!(block = %block_id, %error, "block {doing} failed");
        format!("block {block_id} could not be {doing}")
    }
}

/// The answer to a batched lookup of one tenant's traces.
#[derive(Debug, Default)]
pub struct BatchLookup {
    /// Each trace asked for, with its spans (empty when not found), in the order asked.
    pub traces: Vec<(TraceId, Vec<ResourceSpans>)>,
    pub inspected_bytes: u64,
    pub blocks_searched: usize,
    /// One message per block that could not be read; the spans found elsewhere are returned.
    pub failures: Vec<String>,
}
