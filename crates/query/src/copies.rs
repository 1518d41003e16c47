//! Traces a replay wrote twice (`docs/design/metrics-dedupe.md`). A block-builder restarted or
//! taken over, or `all` replaying its WAL after a crash, reads again records that blocks already
//! hold, and writes their spans into new blocks until compaction merges the two. Trace by ID and
//! search merge a trace's pieces by span ID, but TraceQL metrics fold each block's columns on
//! their own, so they must be told which traces to fold whole, once.
//!
//! Such copies can only sit in blocks whose `meta.json` sources overlap (one stream, two
//! readings of it, overlapping positions: `BlockSource::overlaps`). Those few blocks' trace tables
//! are read (once per block: blocks never change) and intersected; in normal running no two
//! blocks overlap and this costs nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use andante_block::meta::BlockSource;
use andante_block::trace_table::TraceTable;
use andante_block::BlockHandle;
use andante_model::TraceId;
use andante_storage::Storage;
use uuid::Uuid;

/// Trace-ID sets kept at most: a replay leaves a few suspect blocks per stream, and compaction
/// soon replaces them.
const KEPT_SETS: usize = 256;

/// The trace IDs of blocks that were suspects, by block.
#[derive(Default)]
pub(crate) struct CopyFinder {
    sets: Mutex<HashMap<Uuid, Arc<HashSet<TraceId>>>>,
}

impl CopyFinder {
    /// The IDs of traces with rows in two of `blocks` whose sources overlap: fold them whole.
    /// Fails (naming the block) when a suspect's trace table cannot be read, since the answer
    /// could then count a copy twice.
    pub(crate) async fn copied_traces(
        &self,
        storage: &Storage,
        blocks: &[BlockHandle],
    ) -> Result<HashSet<TraceId>, String> {
        // Pairs whose sources overlap: per stream, sources sorted by start, each compared with
        // those starting before it ends (in one reading consecutive blocks overlap, so this is
        // near linear; only another reading's overlap is a suspect).
        let mut streams: HashMap<&str, Vec<(&BlockSource, usize)>> = HashMap::new();
        for (index, handle) in blocks.iter().enumerate() {
            for source in handle.meta.sources.iter().flatten() {
                streams
                    .entry(source.stream.as_str())
                    .or_default()
                    .push((source, index));
            }
        }
        let mut pairs = HashSet::new();
        for sources in streams.values_mut() {
            sources.sort_by_key(|(source, _)| source.from);
            for (n, (source, a)) in sources.iter().enumerate() {
                for (other, b) in &sources[n + 1..] {
                    if other.from > source.to {
                        break;
                    }
                    if a != b && source.overlaps(other) {
                        pairs.insert((*a.min(b), *a.max(b)));
                    }
                }
            }
        }
        let mut copied = HashSet::new();
        for (a, b) in pairs {
            let (ids_a, ids_b) = (
                self.trace_ids(storage, &blocks[a]).await?,
                self.trace_ids(storage, &blocks[b]).await?,
            );
            let (small, large) = if ids_a.len() <= ids_b.len() {
                (ids_a, ids_b)
            } else {
                (ids_b, ids_a)
            };
            copied.extend(small.iter().filter(|id| large.contains(id)).copied());
        }
        Ok(copied)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<HashSet<TraceId>>>> {
        // A panic while holding it leaves only a cache: keep using it.
        self.sets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn trace_ids(
        &self,
        storage: &Storage,
        handle: &BlockHandle,
    ) -> Result<Arc<HashSet<TraceId>>, String> {
        let block_id = handle.meta.block_id;
        if let Some(set) = self.lock().get(&block_id) {
            return Ok(set.clone());
        }
        // Blocks with sources are written by builds that also write a trace table.
        if handle.meta.trace_table_bytes.is_none() {
            return Ok(Arc::default());
        }
        let failed = |error: String| {
            format!("block {block_id}: its trace table could not be read to find spans a replay wrote twice: {error}")
        };
        let bytes = storage
            .get(&handle.meta.trace_table_key())
            .await
            .map_err(|error| failed(error.to_string()))?;
        let table = TraceTable::decode(bytes).map_err(|error| failed(error.to_string()))?;
        let set: Arc<HashSet<TraceId>> =
            Arc::new((0..table.len()).map(|n| table.get(n).trace_id).collect());
        let mut sets = self.lock();
        if sets.len() >= KEPT_SETS {
            sets.clear();
        }
        sets.insert(block_id, set.clone());
        Ok(set)
    }
}
