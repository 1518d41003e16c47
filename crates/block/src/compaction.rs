//! Compaction and retention.
//!
//! Compaction merges small blocks of one tenant whose time ranges fall in the same window into
//! one larger block: traces split across blocks are joined, repeated spans dropped, fewer
//! blocks mean fewer index probes per lookup and better compression. The output names its inputs
//! in `replaces` and is uploaded before the inputs are deleted, so a crash at any point leaves
//! either the inputs or the output visible (or both, which readers deduplicate and the next poll
//! repairs), never neither.
//!
//! Retention deletes blocks whose newest span is older than the tenant's retention period.

use std::collections::BTreeMap;

use andante_model::merge_resource_spans;
use andante_storage::Storage;

use crate::blocklist::BlockList;
use crate::{delete_block, encode_block, upload_block, v1, BlockError, BlockHandle, BlockMeta, NewBlock, Trace};

#[derive(Debug, Clone, Copy)]
pub struct CompactionOptions {
    /// Blocks whose start times fall in the same window of this length are merged together.
    pub window_nanos: u64,
    pub min_input_blocks: usize,
    pub max_input_blocks: usize,
    /// Inputs are read whole into memory; this caps their total data size.
    pub max_input_bytes: u64,
    pub write: v1::WriteOptions,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            window_nanos: 3_600_000_000_000,
            min_input_blocks: 2,
            max_input_blocks: 8,
            max_input_bytes: 256 << 20,
            write: v1::WriteOptions::default(),
        }
    }
}

/// Picks the next set of blocks to merge for a tenant, oldest window first.
pub fn plan_compaction(blocks: &[BlockHandle], options: &CompactionOptions) -> Option<Vec<BlockHandle>> {
    let mut windows: BTreeMap<(u64, u32), Vec<&BlockHandle>> = BTreeMap::new();
    for handle in blocks {
        let window = handle.meta.start_unix_nanos / options.window_nanos.max(1);
        windows.entry((window, handle.meta.compaction_level)).or_default().push(handle);
    }
    for candidates in windows.into_values() {
        let mut chosen: Vec<BlockHandle> = Vec::new();
        let mut bytes = 0;
        let mut sorted = candidates;
        sorted.sort_by_key(|handle| handle.meta.data_bytes);
        for handle in sorted {
            if chosen.len() == options.max_input_blocks || bytes + handle.meta.data_bytes > options.max_input_bytes {
                break;
            }
            bytes += handle.meta.data_bytes;
            chosen.push(handle.clone());
        }
        if chosen.len() >= options.min_input_blocks {
            return Some(chosen);
        }
    }
    None
}

/// Merges the traces of several blocks (each sorted by ID) into one sorted, deduplicated list.
pub fn merge_traces(inputs: Vec<Vec<Trace>>) -> Vec<Trace> {
    let mut by_id: BTreeMap<andante_model::TraceId, Vec<_>> = BTreeMap::new();
    for trace in inputs.into_iter().flatten() {
        by_id.entry(trace.trace_id).or_default().extend(trace.resource_spans);
    }
    by_id
        .into_iter()
        .map(|(trace_id, fragments)| Trace { trace_id, resource_spans: merge_resource_spans(fragments) })
        .collect()
}

/// Runs one compaction for `tenant` if there is one to run; returns the new block's meta.
pub async fn compact_once(
    storage: &Storage,
    blocks: &BlockList,
    tenant: &str,
    options: &CompactionOptions,
) -> Result<Option<BlockMeta>, BlockError> {
    let Some(inputs) = plan_compaction(&blocks.blocks(tenant), options) else { return Ok(None) };
    let mut traces = Vec::with_capacity(inputs.len());
    for handle in &inputs {
        traces.push(handle.read_all(storage).await?);
    }
    let new_block = NewBlock {
        tenant_id: tenant.to_owned(),
        compaction_level: inputs.iter().map(|h| h.meta.compaction_level).max().unwrap_or(0) + 1,
        replaces: inputs.iter().map(|h| h.meta.block_id).collect(),
        options: options.write,
    };
    let (meta, parquet, index) = tokio::task::spawn_blocking(move || {
        let merged = merge_traces(traces);
        encode_block(&merged, &new_block)
    })
    .await
    .map_err(|error| BlockError::Encode(error.to_string()))??;
    upload_block(storage, &meta, parquet, index).await?;
    blocks.add(BlockHandle::open(storage, meta.clone()).await?);
    blocks.remove(tenant, &meta.replaces);
    for handle in &inputs {
        delete_block(storage, &handle.meta).await?;
    }
    Ok(Some(meta))
}

/// Deletes every block of `tenant` whose newest span ended before `cutoff_unix_nanos`.
pub async fn apply_retention(
    storage: &Storage,
    blocks: &BlockList,
    tenant: &str,
    cutoff_unix_nanos: u64,
) -> Result<usize, BlockError> {
    let expired: Vec<BlockHandle> =
        blocks.blocks(tenant).into_iter().filter(|h| h.meta.end_unix_nanos < cutoff_unix_nanos).collect();
    let ids: Vec<_> = expired.iter().map(|h| h.meta.block_id).collect();
    blocks.remove(tenant, &ids);
    for handle in &expired {
        delete_block(storage, &handle.meta).await?;
    }
    Ok(expired.len())
}
