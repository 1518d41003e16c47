//! The read side: finds a trace by ID for one or several tenants by merging what the live store
//! holds in memory with every block that may contain it. Blocks are pruned first by the
//! optional time hints, then by the in-memory index (Bloom filter and row-group ranges), and the
//! remaining few are read concurrently. A block that fails to read makes the answer partial
//! with a message, never an error for the whole request: the spans found elsewhere are still
//! worth showing.

use std::sync::Arc;

use andante_block::blocklist::BlockList;
use andante_live::LiveStore;
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::{merge_resource_spans, TenantSet, TraceId, UnixNanos};
use andante_storage::Storage;
use futures::future::join_all;

pub mod metrics;
pub mod search;
pub mod tags;

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
    live: Arc<LiveStore>,
    storage: Storage,
    blocks: BlockList,
    /// Permits for CPU-heavy query work (decode, evaluation): one per core, shared by all
    /// requests so a burst of searches cannot starve ingest.
    cpu: Arc<tokio::sync::Semaphore>,
    /// How many block jobs one query keeps in flight: one per core (at least two, so fetching
    /// one block overlaps decoding another).
    block_jobs: usize,
}

impl Querier {
    pub fn new(live: Arc<LiveStore>, storage: Storage, blocks: BlockList) -> Querier {
        let cores = std::thread::available_parallelism().map_or(2, |count| count.get());
        Querier { live, storage, blocks, cpu: Arc::new(tokio::sync::Semaphore::new(cores)), block_jobs: cores.max(2) }
    }

    /// The tenant's blocks overlapping `[start, end]`, newest data first (then by block ID, so
    /// the order never depends on listing order).
    fn blocks_newest_first(&self, tenant: &andante_model::TenantId, start: u64, end: u64) -> Vec<andante_block::BlockHandle> {
        let mut blocks: Vec<_> = self.blocks.blocks(tenant.as_str()).into_iter().filter(|handle| handle.meta.overlaps(start, end)).collect();
        blocks.sort_by_key(|handle| std::cmp::Reverse((handle.meta.end_unix_nanos, handle.meta.block_id)));
        blocks
    }

    pub async fn trace_by_id(&self, tenants: &TenantSet, trace_id: TraceId, hint: TimeHint) -> TraceLookup {
        let mut lookup = TraceLookup::default();
        let mut fragments: Vec<ResourceSpans> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        let start = hint.start.unwrap_or(0);
        let end = hint.end.unwrap_or(u64::MAX);
        for tenant in tenants.iter() {
            fragments.extend(self.live.find_trace(tenant, &trace_id));
            let candidates: Vec<_> = self
                .blocks
                .blocks(tenant.as_str())
                .into_iter()
                .filter(|handle| handle.meta.overlaps(start, end) && handle.may_contain(&trace_id))
                .collect();
            lookup.blocks_searched += candidates.len();
            let reads = candidates.iter().map(|handle| handle.find_trace(&self.storage, trace_id));
            for (handle, result) in candidates.iter().zip(join_all(reads).await) {
                match result {
                    Ok(read) => {
                        lookup.inspected_bytes += read.bytes_read;
                        fragments.extend(read.trace.into_iter().flat_map(|trace| trace.resource_spans));
                    }
                    Err(error) => {
                        tracing::warn!(block = %handle.meta.block_id, %error, "trace-by-id block read failed");
                        failures.push(format!("block {} could not be read", handle.meta.block_id));
                    }
                }
            }
        }
        lookup.resource_spans = merge_resource_spans(fragments);
        if !failures.is_empty() {
            lookup.partial_message = Some(format!("partial trace: {}", failures.join("; ")));
        }
        lookup
    }
}

/// A spawned task that is aborted when this handle is dropped (a search stopped early or a
/// client gone). Awaiting it gives the task's output; a task that panicked or was aborted
/// gives the join error.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}
