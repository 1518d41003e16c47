//! Compaction and retention.
//!
//! Compaction merges small blocks of one tenant whose time ranges fall in the same window into
//! one larger block: traces split across blocks are joined, repeated spans dropped, fewer
//! blocks mean fewer index probes per lookup and better compression. The output names its inputs
//! in `replaces` and is uploaded before the inputs are deleted, so a crash at any point leaves
//! either the inputs or the output visible (or both, which readers deduplicate and the next poll
//! repairs), never neither. With a compacted-block retention the inputs are not deleted here but
//! by a block-list poll once the output is that old, so a process whose list predates the
//! compaction (a querier apart) still finds them.
//!
//! Retention deletes blocks whose newest span (or, if earlier, whose writing) is older than the
//! tenant's retention period.

use std::collections::BTreeMap;

use andante_model::merge_resource_spans;
use andante_storage::{lease, Storage};

use crate::blocklist::BlockList;
use crate::{
    delete_block, encode_block_from, upload_block, v1, BlockError, BlockHandle, BlockMeta,
    NewBlock, Trace,
};

#[derive(Debug, Clone, Copy)]
pub struct CompactionOptions {
    /// Blocks whose start times fall in the same window of this length are merged together.
    pub window_nanos: u64,
    pub min_input_blocks: usize,
    pub max_input_blocks: usize,
    /// Inputs are read whole into memory; this caps their total data size.
    pub max_input_bytes: u64,
    pub write: v1::WriteOptions,
    /// Inputs are left for the block-list poll to delete (`BlockList::set_compacted_retention`);
    /// false: deleted as soon as the output is listed.
    pub keep_inputs: bool,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            window_nanos: 3_600_000_000_000,
            min_input_blocks: 2,
            max_input_blocks: 8,
            max_input_bytes: 256 << 20,
            write: v1::WriteOptions::default(),
            keep_inputs: false,
        }
    }
}

/// The sets of blocks to merge for a tenant, one per window with enough of them, oldest window
/// first.
pub fn plan_compactions(
    blocks: &[BlockHandle],
    options: &CompactionOptions,
) -> Vec<Vec<BlockHandle>> {
    // Blocks of every level in a window merge together, smallest first: grouping by level too
    // (as Tempo does) can leave one block per level in a window forever on a single node.
    let mut windows: BTreeMap<u64, Vec<&BlockHandle>> = BTreeMap::new();
    for handle in blocks {
        let window = handle.meta.start_unix_nanos / options.window_nanos.max(1);
        windows.entry(window).or_default().push(handle);
    }
    let mut plans = Vec::new();
    for candidates in windows.into_values() {
        let mut chosen: Vec<BlockHandle> = Vec::new();
        let mut bytes = 0;
        let mut sorted = candidates;
        sorted.sort_by_key(|handle| handle.meta.data_bytes);
        for handle in sorted {
            if chosen.len() == options.max_input_blocks
                || bytes + handle.meta.data_bytes > options.max_input_bytes
            {
                break;
            }
            bytes += handle.meta.data_bytes;
            chosen.push(handle.clone());
        }
        if chosen.len() >= options.min_input_blocks {
            plans.push(chosen);
        }
    }
    plans
}

/// Who takes compaction leases, and for how long. Every process that compacts takes one per
/// (tenant, window) before merging, so compactors sharing a bucket never merge the same blocks;
/// they must agree on `compaction.window`, which names the leases.
#[derive(Debug, Clone)]
pub struct LeaseHolder {
    /// Unique per process.
    pub id: String,
    /// Longer than a compaction takes: a holder that overruns it may be joined by another,
    /// which costs duplicate work and duplicate spans for the next compaction to remove.
    pub ttl_millis: u64,
}

/// Merges several streams of traces, each in trace-ID order, into one stream in trace-ID order
/// with every trace's pieces joined and repeated spans dropped (a k-way merge: memory holds one
/// trace per input). The first read error ends the stream and is left in `error`.
pub struct MergeTraces<I: Iterator<Item = Result<Trace, BlockError>>> {
    inputs: Vec<std::iter::Peekable<I>>,
    pub error: Option<BlockError>,
}

impl<I: Iterator<Item = Result<Trace, BlockError>>> MergeTraces<I> {
    pub fn new(inputs: impl IntoIterator<Item = I>) -> Self {
        MergeTraces {
            inputs: inputs.into_iter().map(Iterator::peekable).collect(),
            error: None,
        }
    }
}

impl<I: Iterator<Item = Result<Trace, BlockError>>> Iterator for MergeTraces<I> {
    type Item = Trace;

    fn next(&mut self) -> Option<Trace> {
        if self.error.is_some() {
            return None;
        }
        let mut smallest: Option<andante_model::TraceId> = None;
        for input in &mut self.inputs {
            match input.peek() {
                Some(Ok(trace)) if smallest.is_none_or(|current| trace.trace_id < current) => {
                    smallest = Some(trace.trace_id);
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => {
                    if let Some(Err(error)) = input.next() {
                        self.error = Some(error);
                    }
                    return None;
                }
                None => {}
            }
        }
        let trace_id = smallest?;
        let mut fragments = Vec::new();
        for input in &mut self.inputs {
            if matches!(input.peek(), Some(Ok(trace)) if trace.trace_id == trace_id) {
                if let Some(Ok(trace)) = input.next() {
                    fragments.extend(trace.resource_spans);
                }
            }
        }
        Some(Trace {
            trace_id,
            resource_spans: merge_resource_spans(fragments),
        })
    }
}

/// Merges in-memory trace lists (each sorted by ID); see `MergeTraces`.
pub fn merge_traces(inputs: Vec<Vec<Trace>>) -> Vec<Trace> {
    MergeTraces::new(inputs.into_iter().map(|traces| traces.into_iter().map(Ok))).collect()
}

/// Runs one compaction for `tenant` if there is one to run and its window's lease is free;
/// returns the new block's meta.
pub async fn compact_once(
    storage: &Storage,
    blocks: &BlockList,
    tenant: &str,
    options: &CompactionOptions,
    holder: &LeaseHolder,
) -> Result<Option<BlockMeta>, BlockError> {
    for inputs in plan_compactions(&blocks.blocks(tenant), options) {
        let window = inputs[0].meta.start_unix_nanos / options.window_nanos.max(1);
        let prefix = lease::lease_prefix(tenant, &format!("compaction-{window}"));
        let now_millis = andante_model::now_unix_nanos() / 1_000_000;
        let Some(lease) =
            lease::try_acquire(storage, &prefix, &holder.id, holder.ttl_millis, now_millis).await?
        else {
            continue;
        };
        let result = compact_leased(storage, blocks, tenant, options, inputs).await;
        if let Err(error) = lease::release(storage, &lease).await {
            tracing::warn!(%tenant, %error, "compaction lease not released; it will expire");
        }
        match result {
            Ok(None) => continue,
            done => return done,
        }
    }
    Ok(None)
}

/// Merges `inputs` under their window's lease. The block list may be older than the lease:
/// inputs another compactor merged since are dropped first (`Ok(None)` if too few remain).
async fn compact_leased(
    storage: &Storage,
    blocks: &BlockList,
    tenant: &str,
    options: &CompactionOptions,
    inputs: Vec<BlockHandle>,
) -> Result<Option<BlockMeta>, BlockError> {
    let mut current = Vec::with_capacity(inputs.len());
    for handle in inputs {
        if still_to_compact(storage, &handle.meta).await? {
            current.push(handle);
        } else {
            blocks.remove(tenant, &[handle.meta.block_id]);
        }
    }
    if current.len() < options.min_input_blocks {
        return Ok(None);
    }
    let inputs = current;
    // The compressed files are fetched whole (bounded by `max_input_bytes`); decoding streams.
    let mut files = Vec::with_capacity(inputs.len());
    for handle in &inputs {
        let data = storage.get(&handle.meta.data_key()).await?;
        // Merging would copy silently damaged values into a new, trusted block: check first.
        if let Err(error) = handle.verify_file(&data) {
            blocks
                .quarantine(storage, &handle.meta, &error.to_string())
                .await;
            return Err(error);
        }
        files.push(data);
    }
    let new_block = NewBlock {
        tenant_id: tenant.to_owned(),
        compaction_level: inputs
            .iter()
            .map(|h| h.meta.compaction_level)
            .max()
            .unwrap_or(0)
            + 1,
        replaces: inputs.iter().map(|h| h.meta.block_id).collect(),
        options: options.write,
    };
    let expected_traces = inputs.iter().map(|h| h.meta.trace_count as usize).sum();
    let merge_files = files.clone();
    let merged = tokio::task::spawn_blocking(move || {
        let streams = merge_files
            .into_iter()
            .map(|data| v1::TraceStream::new(data, 8192))
            .collect::<Result<Vec<_>, _>>()?;
        let mut merged = MergeTraces::new(streams);
        let encoded = encode_block_from(&mut merged, expected_traces, &new_block)?;
        match merged.error {
            Some(error) => Err(error),
            None => Ok(encoded),
        }
    })
    .await
    .map_err(|error| BlockError::Encode(error.to_string()))?;
    let encoded = match merged {
        Ok(encoded) => encoded,
        Err(error) if error.is_corrupt() => {
            quarantine_corrupt_inputs(storage, blocks, &inputs, files).await;
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    let meta = encoded.meta.clone();
    upload_block(storage, encoded).await?;
    blocks.add(BlockHandle::open(storage, meta.clone()).await?);
    blocks.remove(tenant, &meta.replaces);
    for handle in &inputs {
        if options.keep_inputs {
            // Before the lease goes: the next holder sees the input as merged.
            let marker = serde_json::json!({ "replacedBy": meta.block_id });
            storage
                .put(&handle.meta.compacted_key(), marker.to_string().into())
                .await?;
        } else {
            delete_block(storage, &handle.meta).await?;
        }
    }
    Ok(Some(meta))
}

/// Whether a block in a (possibly old) block list still awaits compaction: neither deleted nor
/// marked as merged by another compactor.
async fn still_to_compact(storage: &Storage, meta: &BlockMeta) -> Result<bool, BlockError> {
    use andante_storage::StorageError::NotFound;
    match storage.get(&meta.meta_key()).await {
        Ok(_) => {}
        Err(NotFound { .. }) => return Ok(false),
        Err(error) => return Err(error.into()),
    }
    match storage.get(&meta.compacted_key()).await {
        Ok(_) => Ok(false),
        Err(NotFound { .. }) => Ok(true),
        Err(error) => Err(error.into()),
    }
}

/// After a merge met undecodable data: decodes each input alone and quarantines the ones that
/// fail, so the next compaction goes ahead without them instead of failing forever.
async fn quarantine_corrupt_inputs(
    storage: &Storage,
    blocks: &BlockList,
    inputs: &[BlockHandle],
    files: Vec<bytes::Bytes>,
) {
    let verdicts = tokio::task::spawn_blocking(move || {
        files
            .into_iter()
            .map(|data| {
                let mut stream = v1::TraceStream::new(data, 8192)?;
                stream.try_for_each(|trace| trace.map(drop))
            })
            .collect::<Vec<Result<(), BlockError>>>()
    })
    .await
    .unwrap_or_default();
    for (handle, verdict) in inputs.iter().zip(verdicts) {
        if let Err(error) = verdict {
            if error.is_corrupt() {
                blocks
                    .quarantine(storage, &handle.meta, &error.to_string())
                    .await;
            }
        }
    }
}

/// The time retention judges a block by: its newest span's end, but never later than when the
/// block was written. Data cannot be newer than its block, so a span dated in the future (kept
/// by an older version, or within `limits.max_span_future`) cannot pin the block past retention.
pub fn retention_time(meta: &crate::BlockMeta) -> u64 {
    meta.end_unix_nanos.min(meta.created_unix_nanos)
}

/// Deletes every block of `tenant` whose [`retention_time`] is before `cutoff_unix_nanos`.
pub async fn apply_retention(
    storage: &Storage,
    blocks: &BlockList,
    tenant: &str,
    cutoff_unix_nanos: u64,
) -> Result<usize, BlockError> {
    let expired: Vec<BlockHandle> = blocks
        .blocks(tenant)
        .into_iter()
        .filter(|h| retention_time(&h.meta) < cutoff_unix_nanos)
        .collect();
    let ids: Vec<_> = expired.iter().map(|h| h.meta.block_id).collect();
    blocks.remove(tenant, &ids);
    for handle in &expired {
        delete_block(storage, &handle.meta).await?;
    }
    Ok(expired.len())
}
