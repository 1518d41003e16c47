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
//! Inputs merge by their format (`BlockEncoding::merge`): `andante-v1` blocks (rows in trace-ID
//! order) by a streaming k-way merge into a v1 block, `andante-v2` blocks (row groups clustered
//! by time) in two passes into a v2 block ([`merge_time_clustered`]). A window's blocks of
//! different formats are merged apart.
//!
//! Retention deletes blocks whose newest span (or, if earlier, whose writing) is older than the
//! tenant's retention period.

use std::collections::BTreeMap;

use andante_model::merge_resource_spans;
use andante_storage::{lease, Storage};

use crate::blocklist::BlockList;
use crate::encoding::{BlockEncoding, V2};
use crate::{
    delete_block, order, trace_table, upload_block, v1, BlockError, BlockHandle, BlockMeta,
    EncodedBlock, NewBlock, Trace,
};

#[derive(Debug, Clone, Copy)]
pub struct CompactionOptions {
    /// Blocks whose start times fall in the same window of this length are merged together.
    pub window_nanos: u64,
    pub min_input_blocks: usize,
    pub max_input_blocks: usize,
    /// Inputs are read whole into memory; this caps their total data size.
    pub max_input_bytes: u64,
    /// In a window still being written, blocks merge only in tiers of similar size (each at
    /// most twice the tier's smallest), once a tier has this many (`plan_compactions`).
    pub tier_fan_in: usize,
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
            tier_fan_in: 8,
            write: v1::WriteOptions::default(),
            keep_inputs: false,
        }
    }
}

/// The sets of blocks to merge for a tenant, one per window with enough of them, oldest window
/// first. `now_unix_nanos` tells windows still being written from closed ones.
pub fn plan_compactions(
    blocks: &[BlockHandle],
    options: &CompactionOptions,
    now_unix_nanos: u64,
) -> Vec<Vec<BlockHandle>> {
    let sizes: Vec<PlannedBlock> = blocks
        .iter()
        .map(|handle| PlannedBlock {
            window: handle.meta.start_unix_nanos / options.window_nanos.max(1),
            format: handle.encoding().format(),
            data_bytes: handle.meta.data_bytes,
        })
        .collect();
    plan_indices(&sizes, options, now_unix_nanos)
        .into_iter()
        .map(|plan| plan.into_iter().map(|at| blocks[at].clone()).collect())
        .collect()
}

/// What the planner knows of a block.
#[derive(Debug, Clone, Copy)]
struct PlannedBlock {
    window: u64,
    format: &'static str,
    data_bytes: u64,
}

/// `plan_compactions` over indexes into `blocks`.
///
/// A closed window (its end has passed) merges its blocks smallest first, up to the caps,
/// whatever their sizes, so it ends as few blocks as the caps allow. A window still being
/// written merges by size tiers: new flushes are small, and merging each into the window's big
/// block rewrote that block every time (a span written 10–15 times at 10M spans an hour, session
/// 22); with tiers of similar size merged `tier_fan_in` at a time a span is written about
/// log8(window spans / flush spans) times. Levels as Tempo keeps them were not used: one block
/// per level can then stay in a window forever on a single node, where sizes always converge.
/// Formats merge differently (see the module comment), so they never share a plan.
fn plan_indices(
    blocks: &[PlannedBlock],
    options: &CompactionOptions,
    now_unix_nanos: u64,
) -> Vec<Vec<usize>> {
    let mut windows: BTreeMap<(u64, &str), Vec<usize>> = BTreeMap::new();
    for (at, block) in blocks.iter().enumerate() {
        windows
            .entry((block.window, block.format))
            .or_default()
            .push(at);
    }
    let mut plans = Vec::new();
    for ((window, _), mut candidates) in windows {
        candidates.sort_by_key(|at| blocks[*at].data_bytes);
        let window_end = window
            .saturating_add(1)
            .saturating_mul(options.window_nanos.max(1));
        let pool = match now_unix_nanos < window_end {
            true => first_full_tier(blocks, &candidates, options),
            false => candidates,
        };
        let mut chosen = Vec::new();
        let mut bytes = 0;
        for at in pool {
            if chosen.len() == options.max_input_blocks
                || bytes + blocks[at].data_bytes > options.max_input_bytes
            {
                break;
            }
            bytes += blocks[at].data_bytes;
            chosen.push(at);
        }
        if chosen.len() >= options.min_input_blocks.max(2) {
            plans.push(chosen);
        }
    }
    plans
}

/// The smallest tier of similar sizes with at least `tier_fan_in` blocks (`sorted` by size),
/// or nothing. Blocks past half the byte cap leave tiering: nothing of their size fits beside
/// them in one merge.
fn first_full_tier(
    blocks: &[PlannedBlock],
    sorted: &[usize],
    options: &CompactionOptions,
) -> Vec<usize> {
    let mergeable = sorted
        .iter()
        .copied()
        .filter(|at| blocks[*at].data_bytes <= options.max_input_bytes / 2);
    let mut tier: Vec<usize> = Vec::new();
    for at in mergeable {
        let smallest = tier.first().map(|first| blocks[*first].data_bytes.max(1));
        if smallest.is_some_and(|smallest| blocks[at].data_bytes > smallest.saturating_mul(2)) {
            if tier.len() >= options.tier_fan_in {
                return tier;
            }
            tier.clear();
        }
        tier.push(at);
    }
    match tier.len() >= options.tier_fan_in {
        true => tier,
        false => Vec::new(),
    }
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
    let now = andante_model::now_unix_nanos();
    for inputs in plan_compactions(&blocks.blocks(tenant), options, now) {
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
        // A merge removes copies among its inputs; what it holds came from all their streams.
        sources: crate::meta::BlockSource::union(
            inputs.iter().flat_map(|h| h.meta.sources.iter().flatten()),
        ),
        options: options.write,
    };
    let encoding = inputs[0].encoding();
    if let Some(other) = inputs
        .iter()
        .find(|h| h.encoding().format() != encoding.format())
    {
        // Plans keep formats apart; a caller mixing them gets an error, not a wrong merge.
        return Err(BlockError::Encode(format!(
            "compaction inputs of formats {} and {} do not merge together",
            encoding.format(),
            other.encoding().format()
        )));
    }
    let merged = encoding
        .merge(storage, &inputs, files.clone(), new_block)
        .await;
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

/// Each input's trace table, or None where it is missing or unreadable (the merge then derives
/// the input's traces from its data).
pub(crate) async fn read_trace_tables(
    storage: &Storage,
    inputs: &[BlockHandle],
) -> Vec<Option<trace_table::TraceTable>> {
    let mut tables = Vec::with_capacity(inputs.len());
    for handle in inputs {
        let table = match handle.meta.trace_table_bytes {
            None => None,
            Some(_) => storage
                .get(&handle.meta.trace_table_key())
                .await
                .map_err(BlockError::from)
                .and_then(trace_table::TraceTable::decode)
                .inspect_err(|error| {
                    tracing::warn!(block = %handle.meta.block_id, %error,
                        "trace table unreadable; compaction reads the block's traces from its data")
                })
                .ok(),
        };
        tables.push(table);
    }
    tables
}

/// Where one input holds a piece of a trace, and what placement needs of the piece.
struct InputPiece {
    trace_id: andante_model::TraceId,
    row_group: u32,
    first_row: usize,
    rows: usize,
    start_unix_nanos: u64,
}

/// An input's pieces from its trace table, if the table tiles every row group of the file:
/// each row group's entries, by first row, cover its rows exactly once (checked: a table that
/// disagrees with the data must not decide what is merged, and the merge copies rows by these
/// positions).
fn pieces_from_table(
    table: &trace_table::TraceTable,
    metadata: &parquet::arrow::arrow_reader::ArrowReaderMetadata,
) -> Option<Vec<InputPiece>> {
    let groups = metadata.metadata().row_groups();
    let mut rows_by_group: Vec<Vec<(usize, usize)>> = vec![Vec::new(); groups.len()];
    let mut pieces = Vec::with_capacity(table.len());
    for index in 0..table.len() {
        let entry = table.get(index);
        rows_by_group
            .get_mut(entry.row_group as usize)?
            .push((entry.first_row as usize, entry.rows as usize));
        pieces.push(InputPiece {
            trace_id: entry.trace_id,
            row_group: entry.row_group,
            first_row: entry.first_row as usize,
            rows: entry.rows as usize,
            start_unix_nanos: entry.start_unix_nanos,
        });
    }
    let tiles = groups.iter().zip(&mut rows_by_group).all(|(group, rows)| {
        rows.sort_unstable();
        let mut next = 0;
        for &(first_row, count) in rows.iter() {
            if first_row != next || count == 0 {
                return false;
            }
            next += count;
        }
        next as i64 == group.num_rows()
    });
    tiles.then_some(pieces)
}

/// An input's pieces read from its data, one row group at a time (inputs without a usable table).
fn pieces_from_data(
    data: &bytes::Bytes,
    metadata: &parquet::arrow::arrow_reader::ArrowReaderMetadata,
) -> Result<Vec<InputPiece>, BlockError> {
    let mut pieces = Vec::new();
    for row_group in 0..metadata.metadata().num_row_groups() {
        let batch = v1::gather::read_row_group(data.clone(), metadata, row_group)?;
        for run in v1::gather::trace_runs(&batch)? {
            pieces.push(InputPiece {
                trace_id: run.trace_id,
                row_group: row_group as u32,
                first_row: run.first_row,
                rows: run.rows,
                start_unix_nanos: run.start_unix_nanos,
            });
        }
    }
    Ok(pieces)
}

/// The second pass of a merge: output row groups built from the input row groups, each read
/// as Arrow rows when first needed and kept until its last piece is taken.
struct MergeRows<'a> {
    files: &'a [bytes::Bytes],
    metadata: &'a [parquet::arrow::arrow_reader::ArrowReaderMetadata],
    slots: &'a [v1::DedicatedSlots],
    out_slots: std::sync::Arc<v1::DedicatedSlots>,
    /// Per input, whether its rows can be copied (same schema, same slot keys as the output).
    copyable: Vec<bool>,
    open: crate::FastMap<(usize, u32), arrow_array::RecordBatch>,
    /// Pieces not yet taken, per input row group.
    left: crate::FastMap<(usize, u32), usize>,
    /// Per input, whether any of its rows were copied.
    copied: Vec<bool>,
    copied_traces: usize,
}

impl MergeRows<'_> {
    /// The rows of `piece`'s row group, checked to hold the piece.
    fn take(
        &mut self,
        piece: &SourcePiece,
        trace_id: andante_model::TraceId,
    ) -> Result<arrow_array::RecordBatch, BlockError> {
        let input = piece.input;
        let key = (input, piece.row_group);
        let batch = match self.open.get(&key) {
            Some(batch) => batch.clone(),
            None => {
                let batch = v1::gather::read_row_group(
                    self.files[input].clone(),
                    &self.metadata[input],
                    piece.row_group as usize,
                )?;
                self.open.insert(key, batch.clone());
                batch
            }
        };
        if let Some(left) = self.left.get_mut(&key) {
            *left -= 1;
            if *left == 0 {
                self.open.remove(&key);
            }
        }
        if !v1::gather::holds_trace(&batch, trace_id, piece.first_row, piece.rows) {
            return Err(BlockError::Corrupt(format!(
                "input {input}, row group {}: trace {trace_id} is in its table but not its data",
                piece.row_group
            )));
        }
        Ok(batch)
    }

    fn source(
        &self,
        batch: arrow_array::RecordBatch,
        slots: &v1::DedicatedSlots,
    ) -> Result<v1::gather::Source, BlockError> {
        v1::gather::Source::new(batch, slots, &self.out_slots)
            .ok_or_else(|| BlockError::Encode("slots changed during a merge".into()))
    }

    /// One output row group of the placed traces `group`: a trace one copyable input row group
    /// holds whole is a run of its rows; any other is decoded, merged and encoded again into a
    /// side batch, which is one more source of runs.
    fn row_group(
        &mut self,
        group: &[usize],
        placed: &[order::Placed],
        sources: &[Vec<SourcePiece>],
    ) -> Result<v1::RowGroupOut, BlockError> {
        let mut group_sources: Vec<v1::gather::Source> = Vec::new();
        let mut source_of: crate::FastMap<(usize, u32), usize> = crate::FastMap::default();
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        let mut side = v1::Columns::new(self.out_slots.clone());
        for &at in group {
            let trace_id = placed[at].trace_id;
            match sources[at].as_slice() {
                [piece] if self.copyable[piece.input] => {
                    let batch = self.take(piece, trace_id)?;
                    let key = (piece.input, piece.row_group);
                    let source = match source_of.get(&key) {
                        Some(&source) => source,
                        None => {
                            group_sources.push(self.source(batch, &self.slots[piece.input])?);
                            source_of.insert(key, group_sources.len() - 1);
                            group_sources.len() - 1
                        }
                    };
                    self.copied[piece.input] = true;
                    self.copied_traces += 1;
                    push_run(&mut runs, (source, piece.first_row, piece.rows));
                }
                pieces => {
                    let mut fragments = Vec::new();
                    for piece in pieces {
                        let batch = self.take(piece, trace_id)?;
                        let rows = batch.slice(piece.first_row, piece.rows);
                        let traces = crate::guard::decode(|| {
                            v1::batch_to_traces(&rows, &self.slots[piece.input])
                        })?;
                        fragments.extend(traces.into_iter().flat_map(|trace| trace.resource_spans));
                    }
                    let trace = Trace {
                        trace_id,
                        resource_spans: merge_resource_spans(fragments),
                    };
                    if let Some(entry) = side.push_trace(&trace) {
                        push_run(
                            &mut runs,
                            (SIDE, entry.first_row as usize, entry.rows as usize),
                        );
                    }
                }
            }
        }
        let dedicated_keys_in_generic = side.take_dedicated_keys_in_generic();
        let side_batch = side.finish()?;
        if side_batch.num_rows() > 0 {
            let side_source = group_sources.len();
            group_sources.push(self.source(side_batch, &self.out_slots.clone())?);
            for run in &mut runs {
                if run.0 == SIDE {
                    run.0 = side_source;
                }
            }
        }
        let batch = v1::gather::gather(&group_sources, &runs)?;
        drop(group_sources);
        v1::gather::row_group_out(batch, &self.out_slots, dedicated_keys_in_generic)
    }
}

/// A piece of a placed trace: input, row group and rows.
struct SourcePiece {
    input: usize,
    row_group: u32,
    first_row: usize,
    rows: usize,
}

/// Runs' source index for the row group's side batch (traces decoded and encoded again).
const SIDE: usize = usize::MAX;

/// Appends a run of rows, joining it to the last when it continues it.
fn push_run(runs: &mut Vec<(usize, usize, usize)>, run: (usize, usize, usize)) {
    match runs.last_mut() {
        Some(last) if last.0 == run.0 && last.1 + last.2 == run.1 => last.2 += run.2,
        _ => runs.push(run),
    }
}

/// The union of the inputs' tag names, None where an input's are unknown or the union is past
/// the meta's cap (as `meta::TagNames` gives for the same spans).
fn union_tag_names(inputs: &[BlockMeta]) -> Option<BTreeMap<String, Vec<String>>> {
    let mut scopes: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for meta in inputs {
        for (scope, names) in meta.tag_names.as_ref()? {
            scopes
                .entry(scope.clone())
                .or_default()
                .extend(names.iter().cloned());
        }
    }
    if scopes
        .values()
        .any(|names| names.len() > crate::meta::MAX_META_TAG_NAMES)
    {
        return None;
    }
    Some(
        scopes
            .into_iter()
            .map(|(scope, names)| (scope, names.into_iter().collect()))
            .collect(),
    )
}

/// The union of the inputs' service names, None where an input's are unknown or past the cap.
fn union_service_names(inputs: &[BlockMeta]) -> Option<Vec<String>> {
    let mut names = std::collections::BTreeSet::new();
    for meta in inputs {
        names.extend(meta.service_names.as_ref()?.iter().cloned());
    }
    (names.len() <= crate::meta::MAX_META_SERVICE_NAMES).then(|| names.into_iter().collect())
}

/// Every trace of a merge's inputs with where its pieces are (the first pass).
struct Placement {
    placed: Vec<order::Placed>,
    /// Per placed trace, its pieces.
    sources: Vec<Vec<SourcePiece>>,
    spans_per_input: Vec<usize>,
    /// Pieces per input row group.
    left: crate::FastMap<(usize, u32), usize>,
}

/// Reads every input's pieces (from its trace table, else its data) and joins them by trace.
fn place(
    files: &[bytes::Bytes],
    tables: Vec<Option<trace_table::TraceTable>>,
    metadata: &[parquet::arrow::arrow_reader::ArrowReaderMetadata],
) -> Result<Placement, BlockError> {
    let mut placed: Vec<order::Placed> = Vec::new();
    let mut sources: Vec<Vec<SourcePiece>> = Vec::new();
    let mut spans_per_input = vec![0usize; files.len()];
    let mut left: crate::FastMap<(usize, u32), usize> = crate::FastMap::default();
    let mut position: crate::FastMap<andante_model::TraceId, usize> = crate::FastMap::default();
    for (input, data) in files.iter().enumerate() {
        let pieces = match tables
            .get(input)
            .and_then(Option::as_ref)
            .and_then(|table| pieces_from_table(table, &metadata[input]))
        {
            Some(pieces) => pieces,
            None => pieces_from_data(data, &metadata[input])?,
        };
        for piece in pieces {
            let at = *position.entry(piece.trace_id).or_insert_with(|| {
                placed.push(order::Placed {
                    start_unix_nanos: piece.start_unix_nanos,
                    trace_id: piece.trace_id,
                    spans: 0,
                });
                sources.push(Vec::new());
                placed.len() - 1
            });
            placed[at].start_unix_nanos = placed[at].start_unix_nanos.min(piece.start_unix_nanos);
            placed[at].spans += piece.rows;
            spans_per_input[input] += piece.rows;
            *left.entry((input, piece.row_group)).or_default() += 1;
            sources[at].push(SourcePiece {
                input,
                row_group: piece.row_group,
                first_row: piece.first_row,
                rows: piece.rows,
            });
        }
    }
    Ok(Placement {
        placed,
        sources,
        spans_per_input,
        left,
    })
}

/// Merges `andante-v2` inputs (fetched `files`, their `tables` where readable, their `metas`)
/// into one v2 block in two passes. First the inputs' trace tables give every trace's pieces,
/// start and size, and `order::plan_groups` places the merged traces; then each output row
/// group is built from the input row groups holding its pieces, read when first needed and
/// dropped once every piece of theirs is taken. Inputs are themselves clustered by time, so the
/// row groups in memory at once are about one per input (plus those holding late pieces of
/// traces that started earlier); memory never holds an input whole.
///
/// A trace one input row group holds whole is copied as its rows, column by column
/// (`v1::gather`); a trace split across inputs is decoded, merged and encoded again. Tag and
/// service names come from the inputs' metas: a merge neither adds nor removes an attribute.
pub fn merge_time_clustered(
    files: Vec<bytes::Bytes>,
    tables: Vec<Option<trace_table::TraceTable>>,
    metas: &[BlockMeta],
    new_block: &NewBlock,
) -> Result<EncodedBlock, BlockError> {
    merge_columns(&files, tables, metas, new_block, true).map(|(encoded, _)| encoded)
}

/// [`merge_time_clustered`], also saying how many traces were copied as rows; with `copy`
/// false every trace is decoded and encoded again (the tests compare the two).
pub(crate) fn merge_columns(
    files: &[bytes::Bytes],
    tables: Vec<Option<trace_table::TraceTable>>,
    metas: &[BlockMeta],
    new_block: &NewBlock,
    copy: bool,
) -> Result<(EncodedBlock, usize), BlockError> {
    if metas.len() != files.len() {
        return Err(BlockError::Encode(format!(
            "{} input files with {} metas",
            files.len(),
            metas.len()
        )));
    }
    let metadata = files
        .iter()
        .map(|data| {
            parquet::arrow::arrow_reader::ArrowReaderMetadata::load(data, Default::default())
                .map_err(BlockError::parquet)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let slots: Vec<v1::DedicatedSlots> = metadata
        .iter()
        .map(|metadata| v1::DedicatedSlots::from_metadata(metadata.metadata()))
        .collect();
    let Placement {
        placed,
        sources,
        spans_per_input,
        left,
    } = place(files, tables, &metadata)?;
    // The output keeps the slots of the input with the most spans (the first of equals), so
    // the most rows copy as they are.
    let out_slots = std::sync::Arc::new(
        (0..files.len())
            .max_by_key(|&input| (spans_per_input[input], std::cmp::Reverse(input)))
            .map(|input| slots[input].clone())
            .unwrap_or_default(),
    );
    let copyable: Vec<bool> = (0..files.len())
        .map(|input| {
            copy && metas[input].dedicated_keys_in_generic.is_some()
                && v1::gather::copyable_schema(&metadata[input])
                && slots[input].same_keys(&out_slots)
        })
        .collect();
    let plan = V2.plan_groups(&placed, new_block.options.row_group_spans);
    let mut writer = v1::BlockWriter::new(
        new_block.options,
        (!placed.is_empty()).then_some(&*out_slots),
    )?;
    let mut bloom = crate::bloom::Bloom::new(placed.len(), 0.01);
    let mut rows = MergeRows {
        files,
        metadata: &metadata,
        slots: &slots,
        out_slots,
        copyable,
        open: crate::FastMap::default(),
        left,
        copied: vec![false; files.len()],
        copied_traces: 0,
    };
    for group in plan {
        for &at in &group {
            bloom.insert(&placed[at].trace_id);
        }
        writer.write(rows.row_group(&group, &placed, &sources)?)?;
    }
    // Pieces tile their row groups and each is taken once, so every row was merged.
    debug_assert!(rows.left.values().all(|left| *left == 0));
    let mut encoded = writer.finish()?;
    for (meta, _) in metas
        .iter()
        .zip(&rows.copied)
        .filter(|(_, copied)| **copied)
    {
        encoded
            .dedicated_keys_in_generic
            .extend(meta.dedicated_keys_in_generic.iter().flatten().cloned());
    }
    let block = crate::finish_block(
        &V2,
        encoded,
        crate::BlockFacts {
            bloom,
            trace_count: placed.len() as u64,
            service_names: union_service_names(metas),
            tag_names: union_tag_names(metas),
        },
        new_block,
    )?;
    Ok((block, rows.copied_traces))
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

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = crate::FORMAT_V2;

    fn sizes(bytes: &[u64]) -> Vec<PlannedBlock> {
        bytes
            .iter()
            .map(|data_bytes| PlannedBlock {
                window: 0,
                format: V2,
                data_bytes: *data_bytes,
            })
            .collect()
    }

    const OPEN: u64 = 0;
    const CLOSED: u64 = u64::MAX;

    #[test]
    fn a_closed_window_merges_everything_smallest_first_within_the_caps() {
        let options = CompactionOptions::default();
        let blocks = sizes(&[900, 10, 20_000, 30]);
        assert_eq!(
            plan_indices(&blocks, &options, CLOSED),
            vec![vec![1, 3, 0, 2]]
        );
        let capped = CompactionOptions {
            max_input_blocks: 2,
            ..options
        };
        assert_eq!(plan_indices(&blocks, &capped, CLOSED), vec![vec![1, 3]]);
        assert!(plan_indices(&sizes(&[5]), &options, CLOSED).is_empty());
    }

    #[test]
    fn an_open_window_merges_only_a_full_tier_of_similar_sizes() {
        let options = CompactionOptions {
            tier_fan_in: 4,
            ..CompactionOptions::default()
        };
        // One big block and three flushes: no tier has four.
        assert!(plan_indices(&sizes(&[4000, 10, 11, 12]), &options, OPEN).is_empty());
        // A fourth flush fills the smallest tier; the big block is left alone.
        assert_eq!(
            plan_indices(&sizes(&[4000, 10, 11, 12, 13]), &options, OPEN),
            vec![vec![1, 2, 3, 4]]
        );
        // A block more than twice the tier's smallest starts the next tier.
        assert!(plan_indices(&sizes(&[10, 11, 12, 25, 26, 27]), &options, OPEN).is_empty());
        assert_eq!(
            plan_indices(&sizes(&[10, 11, 12, 25, 26, 27, 28]), &options, OPEN),
            vec![vec![3, 4, 5, 6]]
        );
        // A full tier past the block cap merges its smallest.
        assert_eq!(
            plan_indices(&sizes(&[10; 12]), &options, OPEN)[0].len(),
            options.max_input_blocks
        );
        // The default waits for eight.
        let default = CompactionOptions::default();
        assert!(plan_indices(&sizes(&[10; 7]), &default, OPEN).is_empty());
        assert_eq!(plan_indices(&sizes(&[10; 8]), &default, OPEN)[0].len(), 8);
        // Windows are planned apart, by their own state.
        let mut mixed = sizes(&[10, 11]);
        mixed.extend(
            sizes(&[10, 11])
                .into_iter()
                .map(|block| PlannedBlock { window: 1, ..block }),
        );
        let now_in_window_1 = CompactionOptions::default().window_nanos + 1;
        assert_eq!(
            plan_indices(&mixed, &options, now_in_window_1),
            vec![vec![0, 1]]
        );
    }

    #[test]
    fn blocks_past_half_the_byte_cap_leave_tiering() {
        let options = CompactionOptions {
            max_input_bytes: 1000,
            tier_fan_in: 4,
            ..CompactionOptions::default()
        };
        assert!(plan_indices(&sizes(&[600, 600, 700, 800]), &options, OPEN).is_empty());
        // The byte cap still bounds a full tier's merge.
        assert_eq!(
            plan_indices(&sizes(&[300, 310, 320, 330]), &options, OPEN),
            vec![vec![0, 1, 2]]
        );
    }

    /// Flushes of one size into a window being written, compaction after each: every byte is
    /// written about log8(flushes) + 1 times with tiers, where merging the window's blocks
    /// smallest first (the closed-window policy) rewrote the big block at every flush.
    #[test]
    fn flushes_into_an_open_window_are_written_about_log8_times() {
        let simulate = |now: u64| {
            let options = CompactionOptions::default();
            let (flush, flushes) = (1000u64, 300u64);
            let mut blocks: Vec<u64> = Vec::new();
            let mut written = 0;
            let mut most_blocks = 0;
            for _ in 0..flushes {
                blocks.push(flush);
                written += flush;
                while let Some(plan) = plan_indices(&sizes(&blocks), &options, now).first() {
                    let merged: u64 = plan.iter().map(|at| blocks[*at]).sum();
                    let mut keep = Vec::new();
                    for (at, bytes) in blocks.iter().enumerate() {
                        if !plan.contains(&at) {
                            keep.push(*bytes);
                        }
                    }
                    keep.push(merged);
                    blocks = keep;
                    written += merged;
                }
                most_blocks = most_blocks.max(blocks.len());
            }
            assert_eq!(blocks.iter().sum::<u64>(), flush * flushes);
            (written as f64 / (flush * flushes) as f64, most_blocks)
        };
        let (tiered, most_blocks) = simulate(OPEN);
        let (smallest_first, _) = simulate(CLOSED);
        // log8(300) ≈ 2.7 merges plus the flush itself.
        assert!(tiered <= 4.5, "each byte written {tiered:.1} times");
        // Up to seven per tier waiting for an eighth.
        assert!(most_blocks <= 24, "{most_blocks} blocks in the window");
        assert!(
            smallest_first > 4.0 * tiered,
            "{smallest_first:.1} vs {tiered:.1}"
        );
    }
}
