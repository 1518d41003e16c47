//! Blocks: immutable sets of completed traces in object storage, one directory per block:
//!
//! ```text
//! <tenant>/<block-id>/data.parquet   the spans (format andante-v1, see `v1`)
//! <tenant>/<block-id>/index          row-group trace-ID ranges + Bloom filter (see `index`)
//! <tenant>/<block-id>/meta.json      BlockMeta; written last, so its presence means complete
//! ```
//! A `BlockHandle` is a block opened for reading: its meta, its index and its Parquet footer,
//! all held in memory so that a trace-by-ID lookup costs no storage round trip for blocks that
//! cannot hold the trace and one ranged read of a few pages for the block that does.

pub mod blocklist;
pub mod bloom;
pub mod compaction;
pub mod encoding;
mod file_reader;
pub mod guard;
pub mod index;
mod layout;
pub mod meta;
pub mod nested_set;
pub mod order;
pub mod rollup;
pub mod trace_table;
pub mod v1;
pub mod values;

use std::sync::Arc;

pub(crate) use andante_model::{FastMap, FastSet};

use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::{now_unix_nanos, TraceId};
use andante_storage::{Storage, StorageError};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::PageIndexPolicy;
use uuid::Uuid;

pub use encoding::{encoding_of, BlockEncoding, WRITTEN};
pub use index::BlockIndex;
pub use meta::{BlockMeta, FORMAT_V1, FORMAT_V2};

/// One trace: its ID and its spans grouped by resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub trace_id: TraceId,
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("failed to encode block: {0}")]
    Encode(String),
    #[error("failed to read block: {0}")]
    Read(String),
    #[error("block is corrupt: {0}")]
    Corrupt(String),
    #[error("block format `{0}` is not supported by this version")]
    UnsupportedFormat(String),
}

impl BlockError {
    /// A Parquet failure, classified: storage unreachable (the reader's I/O, wrapped as
    /// `External`) may pass on retry; anything else means the bytes are not a valid block.
    pub(crate) fn parquet(error: parquet::errors::ParquetError) -> BlockError {
        match error {
            parquet::errors::ParquetError::External(_) => BlockError::Read(error.to_string()),
            other => BlockError::Corrupt(other.to_string()),
        }
    }

    /// Whether the block's stored bytes are bad (as opposed to storage being unreachable).
    pub fn is_corrupt(&self) -> bool {
        matches!(self, BlockError::Corrupt(_))
    }
}

/// The result of looking a trace up in one block.
#[derive(Debug)]
pub struct TraceRead {
    pub trace: Option<Trace>,
    pub bytes_read: u64,
}

/// What the writer needs beyond the traces.
#[derive(Debug, Clone)]
pub struct NewBlock {
    pub tenant_id: String,
    pub compaction_level: u32,
    pub replaces: Vec<Uuid>,
    pub options: v1::WriteOptions,
    /// Where its records came from (`BlockMeta::sources`); empty: not recorded.
    pub sources: Vec<meta::BlockSource>,
}

/// A block opened for reading.
#[derive(Clone)]
pub struct BlockHandle {
    pub meta: BlockMeta,
    pub index: Arc<BlockIndex>,
    parquet: ArrowReaderMetadata,
    /// The same footer with the dictionary-typed schema stage-1 scans decode into.
    scan_parquet: ArrowReaderMetadata,
    /// The keys of the block's dedicated slot columns (from the file's key-value metadata).
    slots: v1::DedicatedSlots,
    /// Whether opening found the `index` object damaged or missing and rebuilt it.
    pub index_rebuilt: bool,
    /// What `meta.format` says about placement, scan units and merging.
    encoding: &'static dyn BlockEncoding,
}

/// Rebuilds a block's index from the `trace_id` column of its data: each row group's smallest and
/// largest ID and a Bloom filter of every ID. It has no row-group summaries, so an `andante-v2`
/// block with a rebuilt index is searched as one unit and looked up through its ID ranges.
async fn rebuild_index(
    storage: &Storage,
    meta: &BlockMeta,
    parquet: &ArrowReaderMetadata,
) -> Result<BlockIndex, BlockError> {
    use futures::TryStreamExt;
    let mut bloom = bloom::Bloom::new((meta.trace_count as usize).max(1), 0.01);
    let mut row_group_ranges = Vec::new();
    for row_group in 0..parquet.metadata().num_row_groups() {
        let reader = file_reader::BlockFileReader::new(
            storage.object_store(),
            &meta.data_key(),
            meta.data_bytes,
        );
        let mut ids = parquet::arrow::ParquetRecordBatchStreamBuilder::new_with_metadata(
            reader,
            parquet.clone(),
        )
        .with_row_groups(vec![row_group])
        .with_projection(parquet::arrow::ProjectionMask::roots(
            parquet.parquet_schema(),
            [0],
        ))
        .build()
        .map_err(BlockError::parquet)?;
        let mut range: Option<(TraceId, TraceId)> = None;
        while let Some(batch) = ids.try_next().await.map_err(BlockError::parquet)? {
            use arrow_array::{cast::AsArray, Array};
            let column = batch.column(0).as_fixed_size_binary();
            for row in 0..column.len() {
                let trace_id = TraceId::from_bytes(column.value(row))
                    .map_err(|error| BlockError::Corrupt(format!("trace_id column: {error}")))?;
                bloom.insert(&trace_id);
                range = Some(match range {
                    None => (trace_id, trace_id),
                    Some((min, max)) => (min.min(trace_id), max.max(trace_id)),
                });
            }
        }
        let Some(range) = range else {
            return Err(BlockError::Corrupt(format!(
                "row group {row_group} has no trace IDs"
            )));
        };
        row_group_ranges.push(range);
    }
    Ok(BlockIndex {
        row_group_ranges,
        bloom,
        chunk_checksums: None,
        row_group_summaries: None,
    })
}

impl std::fmt::Debug for BlockHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockHandle")
            .field("meta", &self.meta)
            .finish()
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

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Encodes an `andante-v1` block from traces in strictly increasing ID order, taking them one at
/// a time; `expected_traces` sizes the Bloom filter. CPU-heavy: call from a blocking thread.
pub fn encode_block_from(
    traces: impl IntoIterator<Item = Trace>,
    expected_traces: usize,
    new_block: &NewBlock,
) -> Result<EncodedBlock, BlockError> {
    let groups = v1::groups_by_size(traces, new_block.options.row_group_spans);
    encode_block_groups(&encoding::V1, groups, expected_traces, new_block)
}

/// Encodes a block of `encoding` from its row groups, taken one at a time, in the order
/// `encoding.plan_groups` places them (each group in ID order, no ID in two groups; for
/// `andante-v1` also the groups in ID order, as `v1::groups_by_size` cuts an ID-ordered
/// stream); `expected_traces` sizes the Bloom filter. CPU-heavy: call from a blocking thread.
pub fn encode_block_groups(
    encoding: &dyn BlockEncoding,
    groups: impl IntoIterator<Item = Vec<Trace>>,
    expected_traces: usize,
    new_block: &NewBlock,
) -> Result<EncodedBlock, BlockError> {
    let mut bloom = bloom::Bloom::new(expected_traces, 0.01);
    let mut trace_count = 0u64;
    let mut service_names: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut tag_names = meta::TagNames::default();
    let groups = groups.into_iter().inspect(|group| {
        for trace in group {
            tag_names.add_trace(trace);
            if service_names.len() > meta::MAX_META_SERVICE_NAMES {
                continue;
            }
            for resource_spans in &trace.resource_spans {
                let attributes = resource_spans
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.as_slice())
                    .unwrap_or(&[]);
                let name = attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|v| v.value.as_ref());
                if let Some(andante_model::otlp::common::v1::any_value::Value::StringValue(name)) =
                    name
                {
                    if !service_names.contains(name) {
                        service_names.insert(name.clone());
                    }
                }
            }
        }
    });
    let encoded = v1::encode_parquet_with_index(groups, new_block.options, |trace_id| {
        bloom.insert(trace_id);
        trace_count += 1;
    })?;
    let service_names = (service_names.len() <= meta::MAX_META_SERVICE_NAMES)
        .then(|| service_names.into_iter().collect());
    finish_block(
        encoding,
        encoded,
        BlockFacts {
            bloom,
            trace_count,
            service_names,
            tag_names: tag_names.finish(),
        },
        new_block,
    )
}

/// What a block's meta and index need beyond the encoded file, gathered while it was written.
pub(crate) struct BlockFacts {
    pub bloom: bloom::Bloom,
    pub trace_count: u64,
    pub service_names: Option<Vec<String>>,
    pub tag_names: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// The index, trace table, rollups and meta of an encoded file.
pub(crate) fn finish_block(
    encoding: &dyn BlockEncoding,
    encoded: v1::Encoded,
    facts: BlockFacts,
    new_block: &NewBlock,
) -> Result<EncodedBlock, BlockError> {
    let BlockFacts {
        bloom,
        trace_count,
        service_names,
        tag_names,
    } = facts;
    let row_groups = encoded.row_group_ranges.len() as u32;
    let trace_table = trace_table::encode(&encoded.traces);
    let (rollup, rollup_durations) = rollup::encode(&encoded.row_group_rollups);
    let row_group_summaries = encoding
        .summarises_row_groups()
        .then(|| row_group_summaries(&encoded.traces, &trace_table, encoded.row_group_values));
    let index = BlockIndex {
        row_group_ranges: encoded.row_group_ranges,
        bloom,
        chunk_checksums: Some(index::ChunkChecksums::of_file(&encoded.parquet)?),
        row_group_summaries,
    }
    .encode();
    let meta = BlockMeta {
        format: encoding.format().to_owned(),
        block_id: Uuid::now_v7(),
        tenant_id: new_block.tenant_id.clone(),
        start_unix_nanos: if trace_count == 0 {
            0
        } else {
            encoded.start_unix_nanos
        },
        end_unix_nanos: encoded.end_unix_nanos,
        trace_count,
        span_count: encoded.span_count,
        data_bytes: encoded.parquet.len() as u64,
        index_bytes: index.len() as u64,
        row_groups,
        compaction_level: new_block.compaction_level,
        created_unix_nanos: now_unix_nanos(),
        replaces: new_block.replaces.clone(),
        service_names,
        tag_names,
        dedicated_keys_in_generic: Some(encoded.dedicated_keys_in_generic.into_iter().collect()),
        trace_table_bytes: Some(trace_table.len() as u64),
        rollup_bytes: Some(rollup.len() as u64),
        rollup_durations_bytes: Some(rollup_durations.len() as u64),
        sources: (!new_block.sources.is_empty()).then(|| new_block.sources.clone()),
    };
    Ok(EncodedBlock {
        meta,
        parquet: encoded.parquet,
        index,
        trace_table,
        rollup,
        rollup_durations,
    })
}

/// An encoded block, ready for [`upload_block`].
#[derive(Debug)]
pub struct EncodedBlock {
    pub meta: BlockMeta,
    pub parquet: Vec<u8>,
    pub index: Vec<u8>,
    pub trace_table: Vec<u8>,
    pub rollup: Vec<u8>,
    pub rollup_durations: Vec<u8>,
}

/// The index's summary of each row group (v3 fields and v4's values), from the trace table's
/// entries (in row order) and the values the writer collected.
fn row_group_summaries(
    entries: &[trace_table::TraceEntry],
    table: &[u8],
    values: Vec<values::ValueFilter>,
) -> Vec<index::RowGroupSummary> {
    let mut summaries = Vec::with_capacity(values.len());
    let mut first = 0;
    for (row_group, values) in values.into_iter().enumerate() {
        let count = entries[first..]
            .iter()
            .take_while(|entry| entry.row_group as usize == row_group)
            .count();
        let run = &entries[first..first + count];
        // 0.1 %: a lookup probes every row group's filter, so the block's false reads are the
        // row-group count times this rate (0.23 row groups in a 231-group block).
        let mut bloom = bloom::Bloom::new(count, 0.001);
        run.iter().for_each(|entry| bloom.insert(&entry.trace_id));
        let bytes = trace_table::entries_range(first, count);
        summaries.push(index::RowGroupSummary {
            newest_start_unix_nanos: run
                .iter()
                .map(|entry| entry.start_unix_nanos)
                .max()
                .unwrap_or(0),
            trace_entries: count as u32,
            entries_crc: crc32c::crc32c(&table[bytes.start as usize..bytes.end as usize]),
            bloom,
            values: Some(values),
        });
        first += count;
    }
    summaries
}

/// A block of `traces` (merged, unique IDs, in any order) in the encoding new blocks are
/// written in (`encoding::WRITTEN`).
pub fn encode_block(traces: &[Trace], new_block: &NewBlock) -> Result<EncodedBlock, BlockError> {
    let groups = order::grouped(traces, WRITTEN, new_block.options.row_group_spans);
    encode_block_groups(WRITTEN, groups, traces.len(), new_block)
}

/// Uploads an encoded block: data, index, trace table and rollup objects first, `meta.json`
/// last.
pub async fn upload_block(storage: &Storage, block: EncodedBlock) -> Result<(), BlockError> {
    let meta = &block.meta;
    storage
        .put(&meta.data_key(), Bytes::from(block.parquet))
        .await?;
    storage
        .put(&meta.index_key(), Bytes::from(block.index))
        .await?;
    if meta.trace_table_bytes.is_some() {
        storage
            .put(&meta.trace_table_key(), Bytes::from(block.trace_table))
            .await?;
    }
    if meta.rollup_bytes.is_some() {
        storage
            .put(&meta.rollup_key(), Bytes::from(block.rollup))
            .await?;
    }
    if meta.rollup_durations_bytes.is_some() {
        storage
            .put(
                &meta.rollup_durations_key(),
                Bytes::from(block.rollup_durations),
            )
            .await?;
    }
    let meta_json =
        serde_json::to_vec_pretty(meta).map_err(|error| BlockError::Encode(error.to_string()))?;
    storage
        .put(&meta.meta_key(), Bytes::from(meta_json))
        .await?;
    Ok(())
}

/// Deletes a block: `meta.json` first so readers stop seeing it, then the rest.
pub async fn delete_block(storage: &Storage, meta: &BlockMeta) -> Result<(), BlockError> {
    storage.delete(&meta.meta_key()).await?;
    storage.delete(&meta.index_key()).await?;
    if meta.trace_table_bytes.is_some() {
        storage.delete(&meta.trace_table_key()).await?;
    }
    if meta.rollup_bytes.is_some() {
        storage.delete(&meta.rollup_key()).await?;
    }
    if meta.rollup_durations_bytes.is_some() {
        storage.delete(&meta.rollup_durations_key()).await?;
    }
    storage.delete(&meta.data_key()).await?;
    storage.delete(&meta.compacted_key()).await?;
    Ok(())
}

/// Reads a block's `meta.json`.
pub async fn read_meta(
    storage: &Storage,
    tenant: &str,
    block_id: &str,
) -> Result<BlockMeta, BlockError> {
    let bytes = storage
        .get(&format!("{tenant}/{block_id}/meta.json"))
        .await?;
    serde_json::from_slice(&bytes)
        .map_err(|error| BlockError::Corrupt(format!("meta.json: {error}")))
}

/// A scan's trace table (or run of it), read at most once, with the bytes read.
type TableOnce = tokio::sync::OnceCell<Option<(trace_table::TraceTable, u64)>>;

impl BlockHandle {
    /// Loads the index and the Parquet footer (with page index) of a block.
    pub async fn open(storage: &Storage, meta: BlockMeta) -> Result<BlockHandle, BlockError> {
        let encoding = encoding_of(&meta.format)?;
        let mut reader = file_reader::BlockFileReader::new(
            storage.object_store(),
            &meta.data_key(),
            meta.data_bytes,
        );
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let parquet = ArrowReaderMetadata::load_async(&mut reader, options)
            .await
            .map_err(BlockError::parquet)?;
        // Readers below use the footer's ranges as they are (see `layout`).
        layout::check(parquet.metadata(), meta.data_bytes)?;
        let index_bytes = match storage.get(&meta.index_key()).await {
            Ok(bytes) => Some(bytes),
            Err(andante_storage::StorageError::NotFound { .. }) => None,
            Err(error) => return Err(error.into()),
        };
        let shape = (
            parquet.metadata().num_row_groups(),
            parquet.parquet_schema().num_columns(),
        );
        let decoded = index_bytes.as_deref().map(|bytes| {
            BlockIndex::decode(bytes).and_then(|index| {
                index.fits(shape.0, shape.1)?;
                Ok(index)
            })
        });
        let (index, index_rebuilt) = match decoded {
            Some(Ok(index)) => (index, false),
            damaged => {
                // The index is derived data: a damaged or missing one must not hide intact
                // traces. Rebuild it from the trace IDs in the data and store it again.
                let why = match damaged {
                    Some(Err(error)) => error.to_string(),
                    _ => "index object missing".to_owned(),
                };
                tracing::warn!(tenant = %meta.tenant_id, block = %meta.block_id, %why, "rebuilding block index from its data");
                let index = guard::Guarded::new(rebuild_index(storage, &meta, &parquet)).await?;
                storage
                    .put(&meta.index_key(), index.encode().into())
                    .await?;
                (index, true)
            }
        };
        let slots = v1::DedicatedSlots::from_metadata(parquet.metadata());
        let scan_parquet = v1::search::with_dictionaries(&parquet)?;
        Ok(BlockHandle {
            index_rebuilt,
            encoding,
            meta,
            index: Arc::new(index),
            parquet,
            scan_parquet,
            slots,
        })
    }

    /// The keys this block keeps in dedicated slot columns.
    pub fn slots(&self) -> &v1::DedicatedSlots {
        &self.slots
    }

    /// Whether the index says the block may hold `trace_id` (no I/O).
    pub fn may_contain(&self, trace_id: &TraceId) -> bool {
        self.index.may_contain(trace_id)
    }

    /// The trace's spans in this block, if any, and the bytes read from storage to find them.
    pub async fn find_trace(
        &self,
        storage: &Storage,
        trace_id: TraceId,
    ) -> Result<TraceRead, BlockError> {
        let bytes_read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut trace = None;
        // A trace never straddles row groups: the first that holds it holds all of it here;
        // the others were Bloom false positives.
        for row_group in self.index.row_groups_for(&trace_id) {
            trace = v1::read_row_group_trace(
                &storage.object_store(),
                &self.meta.data_key(),
                self.meta.data_bytes,
                &self.parquet,
                row_group,
                trace_id,
                &bytes_read,
            )
            .await?;
            if trace.is_some() {
                break;
            }
        }
        Ok(TraceRead {
            trace,
            bytes_read: bytes_read.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// The pieces this block holds of each of `trace_ids` (absent ones are skipped), and the
    /// bytes read. Each row group is read once for all the IDs the index places in it.
    pub async fn find_traces(
        &self,
        storage: &Storage,
        trace_ids: &[TraceId],
    ) -> Result<(Vec<Trace>, u64), BlockError> {
        self.find_traces_at(storage, trace_ids, &[]).await
    }

    /// `find_traces`, plus the traces at `located` (rows a scan of this block found): those
    /// need no search of the row group's trace IDs.
    pub async fn find_traces_at(
        &self,
        storage: &Storage,
        trace_ids: &[TraceId],
        located: &[v1::search::RowLocation],
    ) -> Result<(Vec<Trace>, u64), BlockError> {
        self.find_spans_at(storage, trace_ids, located, v1::SpanParts::ALL)
            .await
    }

    /// `find_traces_at` decoding only `parts` of each span (what a search's query reads).
    pub async fn find_spans_at(
        &self,
        storage: &Storage,
        trace_ids: &[TraceId],
        located: &[v1::search::RowLocation],
        parts: v1::SpanParts,
    ) -> Result<(Vec<Trace>, u64), BlockError> {
        let parts = parts.for_block(&self.meta, &self.slots);
        type Wanted = (std::collections::HashSet<TraceId>, Vec<(usize, usize)>);
        let mut by_row_group: std::collections::BTreeMap<usize, Wanted> =
            std::collections::BTreeMap::new();
        for trace_id in trace_ids {
            for row_group in self.index.row_groups_for(trace_id) {
                by_row_group
                    .entry(row_group)
                    .or_default()
                    .0
                    .insert(*trace_id);
            }
        }
        for location in located {
            by_row_group
                .entry(location.row_group as usize)
                .or_default()
                .1
                .push((location.first_row as usize, location.rows as usize));
        }
        let bytes_read = Arc::new(std::sync::atomic::AtomicU64::new(0));
        // Row groups decode on their own tasks, one per core at a time: confirming the newest
        // search candidates usually touches every row group of a block (rows are in trace-ID
        // order), and decoding is the cost. Results keep row-group order; a caller that stops
        // waiting (search done, client gone) aborts the reads still running.
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let reads = by_row_group
            .into_iter()
            .map(|(row_group, (wanted, known))| {
                let (store, key, size) = (
                    storage.object_store(),
                    self.meta.data_key(),
                    self.meta.data_bytes,
                );
                let (metadata, bytes_read) = (self.parquet.clone(), bytes_read.clone());
                let parts = parts.clone();
                let task = AbortOnDrop(tokio::spawn(async move {
                    v1::read_row_group_traces(
                        &store,
                        &key,
                        size,
                        &metadata,
                        row_group,
                        &wanted,
                        &known,
                        parts,
                        &bytes_read,
                    )
                    .await
                }));
                async move {
                    task.await
                        .map_err(|error| BlockError::Read(error.to_string()))?
                }
            });
        let mut traces = Vec::new();
        use futures::StreamExt;
        let mut results = futures::stream::iter(reads).buffered(parallel);
        while let Some(result) = results.next().await {
            traces.extend(result?);
        }
        Ok((
            traces,
            bytes_read.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }

    /// TraceQL stage 1: the traces of this block that may satisfy `plan`'s condition. Row
    /// groups are fetched, decoded and evaluated concurrently (see [`by_row_group`]);
    /// candidates keep row-group order, so the outcome is the sequential scan's.
    pub async fn scan(
        &self,
        storage: &Storage,
        plan: Arc<v1::search::ScanPlan>,
        cpu: Arc<tokio::sync::Semaphore>,
    ) -> Result<v1::search::ScanOutcome, BlockError> {
        self.scan_unit(storage, plan, cpu, None).await
    }

    /// The units a newest-first search scans this block in, each with a bound no trace start
    /// in it exceeds: one per row group where the index summarises row groups (`andante-v2`,
    /// whose row groups are slices of time), else the whole block bounded by its end. A unit
    /// is `Some(row group)` or `None` for the whole block, for [`BlockHandle::scan_unit`].
    pub fn scan_units(&self) -> Vec<(u64, Option<usize>)> {
        self.encoding.scan_units(self)
    }

    /// The row groups a plan may match in, of all (`None`) or of one: those neither the Parquet
    /// statistics nor the index's value summaries (index v4) rule out.
    pub fn candidate_row_groups(
        &self,
        plan: &v1::search::ScanPlan,
        only: Option<usize>,
    ) -> Vec<usize> {
        let row_groups = match only {
            Some(only) => plan.row_groups_in(&self.parquet, only..only.saturating_add(1)),
            None => plan.row_groups(&self.parquet),
        };
        let Some(summaries) = &self.index.row_group_summaries else {
            return row_groups;
        };
        row_groups
            .into_iter()
            .filter(|row_group| {
                summaries
                    .get(*row_group)
                    .and_then(|summary| summary.values.as_ref())
                    .is_none_or(|values| plan.values_allow(values))
            })
            .collect()
    }

    /// Whether a search plan may match in a scan unit (`scan_units`): a search skips a unit
    /// ruled out from memory without a task, a read or a job.
    pub fn unit_may_match(&self, plan: &v1::search::ScanPlan, unit: Option<usize>) -> bool {
        plan.block_may_match(self.meta.service_names.as_deref())
            && (unit.is_none() || !self.candidate_row_groups(plan, unit).is_empty())
    }

    /// The block's encoding (by `meta.format`).
    pub fn encoding(&self) -> &'static dyn BlockEncoding {
        self.encoding
    }

    /// Stage 1 over one scan unit: the whole block (`None`) or one row group. A row group's
    /// traces come from its run of the trace table alone, read by range.
    pub async fn scan_unit(
        &self,
        storage: &Storage,
        plan: Arc<v1::search::ScanPlan>,
        cpu: Arc<tokio::sync::Semaphore>,
        unit: Option<usize>,
    ) -> Result<v1::search::ScanOutcome, BlockError> {
        let plan = plan.for_block(&self.slots);
        let mut outcome = v1::search::ScanOutcome::default();
        if !plan.block_may_match(self.meta.service_names.as_deref()) {
            return Ok(outcome);
        }
        let row_groups = self.candidate_row_groups(&plan, unit);
        let table = tokio::sync::OnceCell::new();
        let parts = by_row_group(row_groups, |row_group| {
            self.scan_row_group(storage, &plan, &cpu, (&table, unit), row_group)
        });
        futures::pin_mut!(parts);
        while let Some(part) = futures::StreamExt::next(&mut parts).await {
            outcome.absorb(part?);
        }
        if let Some(Some((_, bytes))) = table.get() {
            outcome.bytes_read += bytes;
        }
        Ok(outcome)
    }

    /// Stage 1 over one row group: its column chunks are fetched, then decoded and evaluated
    /// under a permit of `cpu` on a blocking thread. The predicate columns decide first; the
    /// traces of the matching rows then come from the block's trace table (read once per scan
    /// into `table`, plus the nested-set columns for relations), or from the `trace_id` and
    /// time columns of blocks without one.
    async fn scan_row_group(
        &self,
        storage: &Storage,
        plan: &Arc<v1::search::ScanPlan>,
        cpu: &Arc<tokio::sync::Semaphore>,
        table: (&TableOnce, Option<usize>),
        row_group: usize,
    ) -> Result<v1::search::ScanOutcome, BlockError> {
        let mut outcome = v1::search::ScanOutcome::default();
        let (metadata, file_size) = (self.scan_parquet.clone(), self.meta.data_bytes);
        let row_count = self.parquet.metadata().row_group(row_group).num_rows() as usize;
        let rows = if plan.predicates_all_true() {
            plan.all_rows(row_count)
        } else if plan.decides_early() {
            // Predicate columns first: most row groups of a selective query end here, without
            // reading anything about traces; the rest reuse the decoded predicate rows.
            let predicates = self
                .fetch_columns(
                    storage,
                    row_group,
                    &plan.predicate_roots,
                    plan.attribute_leaves,
                )
                .await?;
            outcome.bytes_read += fetched_bytes(&predicates);
            let rows = on_cpu(cpu, {
                let (plan, metadata) = (plan.clone(), metadata.clone());
                move || {
                    v1::search::predicate_rows(&plan, &metadata, file_size, row_group, predicates)
                }
            })
            .await?;
            let Some(rows) = rows else {
                outcome.spans_scanned += row_count as u64;
                return Ok(outcome);
            };
            rows
        } else {
            let fetched = self.fetch_row_group(storage, plan, row_group).await?;
            outcome.bytes_read += fetched_bytes(&fetched);
            let plan = plan.clone();
            return on_cpu(cpu, move || {
                v1::search::scan_row_group(
                    &plan,
                    &metadata,
                    file_size,
                    row_group,
                    fetched,
                    &mut outcome,
                )
                .map(|()| outcome)
            })
            .await;
        };
        let plan = plan.clone();
        // Read only once some row group needs traces: a search that matches nothing never does.
        if let Some((table, _)) = self.trace_table(storage, table.0, table.1).await.cloned() {
            let tree_roots = plan.tree_roots();
            let numbers = self
                .fetch_columns(storage, row_group, &tree_roots, None)
                .await?;
            outcome.bytes_read += fetched_bytes(&numbers);
            return on_cpu(cpu, move || {
                let tree = v1::search::NestedSets::decode(
                    &tree_roots,
                    &metadata,
                    file_size,
                    row_group,
                    numbers,
                )?;
                v1::search::scan_row_group_with_table(
                    &plan,
                    &table,
                    row_group,
                    row_count,
                    &rows,
                    tree.as_ref().map(v1::search::NestedSets::tree),
                    &mut outcome,
                )
                .map(|()| outcome)
            })
            .await;
        }
        let trace_columns = self
            .fetch_columns(storage, row_group, &plan.trace_roots(), None)
            .await?;
        outcome.bytes_read += fetched_bytes(&trace_columns);
        on_cpu(cpu, move || {
            v1::search::scan_row_group_with_rows(
                &plan,
                &metadata,
                file_size,
                row_group,
                trace_columns,
                &rows,
                &mut outcome,
            )
            .map(|()| outcome)
        })
        .await
    }

    /// The block's trace table, read once per scan (`once`) with the bytes read; None when the
    /// block has none or it cannot be read, and the scan then decodes the trace columns as
    /// blocks without one do. A scan of one row group (`unit`) of a block whose index knows
    /// where that row group's entries lie reads only those.
    async fn trace_table<'a>(
        &self,
        storage: &Storage,
        once: &'a TableOnce,
        unit: Option<usize>,
    ) -> Option<&'a (trace_table::TraceTable, u64)> {
        let whole = self.meta.trace_table_bytes?;
        once.get_or_init(|| async {
            let read = match unit.and_then(|row_group| self.index.trace_entries(row_group)) {
                Some((first, count, crc)) => {
                    let range = trace_table::entries_range(first, count);
                    let bytes = range.end - range.start;
                    let run = if count == 0 {
                        Ok(Bytes::new())
                    } else {
                        storage
                            .get_range(&self.meta.trace_table_key(), range)
                            .await
                            .map_err(BlockError::from)
                    };
                    run.and_then(|run| trace_table::TraceTable::from_entries(run, crc))
                        .map(|table| (table, bytes))
                }
                None => storage
                    .get(&self.meta.trace_table_key())
                    .await
                    .map_err(BlockError::from)
                    .and_then(trace_table::TraceTable::decode)
                    .map(|table| (table, whole)),
            };
            match read {
                Ok(table) => Some(table),
                Err(error) => {
                    tracing::warn!(
                        block = %self.meta.block_id,
                        %error,
                        "the trace table is unreadable; scanning the trace columns instead"
                    );
                    None
                }
            }
        })
        .await
        .as_ref()
    }

    /// The block's rollup objects (`durations` too when asked for and present), or None when it
    /// has none or `rollup` cannot be read (then the rows are scanned: derived data).
    async fn rollup_objects(&self, storage: &Storage, durations: bool) -> Option<RollupObjects> {
        self.meta.rollup_bytes?;
        let counts = match storage.get(&self.meta.rollup_key()).await {
            Ok(bytes) => bytes,
            Err(error) => {
                rollup_unreadable(&self.meta, &BlockError::from(error), "rollup");
                return None;
            }
        };
        let durations = match durations && self.meta.rollup_durations_bytes.is_some() {
            false => None,
            true => match storage.get(&self.meta.rollup_durations_key()).await {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    rollup_unreadable(&self.meta, &BlockError::from(error), "durations");
                    None
                }
            },
        };
        Some(RollupObjects {
            rows: self
                .parquet
                .metadata()
                .row_groups()
                .iter()
                .map(|row_group| row_group.num_rows() as u64)
                .collect(),
            counts,
            durations,
        })
    }

    /// [`BlockHandle::rollup_objects`] decoded, with the bytes read.
    #[cfg(test)]
    async fn rollup(&self, storage: &Storage, durations: bool) -> Option<(rollup::Rollup, u64)> {
        let objects = self.rollup_objects(storage, durations).await?;
        let bytes = objects.bytes();
        Some((objects.decode(&self.meta)?, bytes))
    }

    /// TraceQL metrics by columns (`v1::metrics`, or `v1::compare` for compare()): every row
    /// group the plan keeps is fetched,
    /// decoded and folded into its own copy of `empty` (an accumulator with nothing in it) on a
    /// blocking thread under a `cpu` permit, row groups concurrently (see [`by_row_group`]);
    /// the copies merge in row-group order. Returns the block's accumulator, bytes read and
    /// scan statistics.
    #[allow(clippy::too_many_arguments)]
    pub async fn fold_metrics(
        &self,
        storage: &Storage,
        plan: Arc<v1::search::ScanPlan>,
        way: Arc<v1::metrics::FoldWay>,
        query: Arc<andante_traceql::MetricsQuery>,
        empty: andante_traceql::Accumulator,
        skip: Arc<std::collections::HashSet<TraceId>>,
        cpu: Arc<tokio::sync::Semaphore>,
    ) -> Result<(andante_traceql::Accumulator, u64, v1::metrics::FoldStats), BlockError> {
        use v1::metrics::FoldWay;
        // compare() reads every attribute column, the block's slots among them.
        let (plan, filter) = match way.as_ref() {
            FoldWay::Columns(_) => (plan.for_block(&self.slots), None),
            FoldWay::Compare { filter } => (
                Arc::new(plan.for_block_with_columns(
                    &self.slots,
                    &v1::compare::compare_columns(&self.slots),
                )),
                filter.as_ref().map(|filter| filter.for_block(&self.slots)),
            ),
        };
        let mut total = (empty.clone(), 0u64, v1::metrics::FoldStats::default());
        if !plan.block_may_match(self.meta.service_names.as_deref()) {
            return Ok(total);
        }
        // A row's trace matters only for exemplars and for traces also held live; then it comes
        // from the trace table when the block has one, and only else from `trace_id`, the
        // widest column a fold would read.
        let needs_traces = empty.keeps_exemplars() || !skip.is_empty();
        let table_once = tokio::sync::OnceCell::new();
        let table = match needs_traces {
            true => self.trace_table(storage, &table_once, None).await.cloned(),
            false => None,
        };
        let table = table.map(|(table, bytes)| {
            total.1 += bytes;
            table
        });
        let mut roots = match needs_traces && table.is_none() {
            true => plan.roots.clone(),
            false => plan.roots_without_trace_ids(),
        };
        // compare()'s filter may read columns compare() itself does not (`duration`, a
        // dedicated resource column).
        for root in filter.iter().flat_map(|filter| &filter.predicate_roots) {
            if !roots.contains(root) {
                roots.push(*root);
            }
        }
        let roots = Arc::new(roots);
        let table = Arc::new(table);
        let mut row_groups = self.candidate_row_groups(&plan, None);
        // A query counting spans or reading their durations, over the four rolled-up fields,
        // folds a row group's cells instead of its rows, where the block has them. Rows of traces also held live are counted
        // whole by the caller, which cells cannot leave out: a row group holding one (by the
        // trace table) is scanned.
        let rollup_query = match way.as_ref() {
            FoldWay::Columns(_) if skip.is_empty() || table.is_some() => {
                rollup::RollupQuery::of(&query, &empty)
            }
            _ => None,
        };
        if let Some(rollup_query) = rollup_query {
            let objects = self
                .rollup_objects(storage, rollup_query.reads_durations())
                .await;
            if let Some(objects) = objects {
                total.1 += objects.bytes();
                let (query, meta) = (query.clone(), self.meta.clone());
                let (skip, table, mut accumulator) = (skip.clone(), table.clone(), empty.clone());
                let candidates = std::mem::take(&mut row_groups);
                let (folded, rest, spans) = on_cpu(&cpu, move || {
                    let Some(rollup) = objects.decode(&meta) else {
                        return Ok((accumulator, candidates, 0));
                    };
                    let holds_skipped = |row_group: usize| {
                        !skip.is_empty()
                            && table.as_ref().as_ref().is_none_or(|table| {
                                table
                                    .row_group(row_group as u32)
                                    .any(|entry| skip.contains(&table.get(entry).trace_id))
                            })
                    };
                    let mut spans = 0;
                    let rest = candidates
                        .into_iter()
                        .filter(|&row_group| match rollup.row_group(row_group) {
                            Some(cells)
                                if rollup_query.answers(cells) && !holds_skipped(row_group) =>
                            {
                                rollup_query.fold(cells, &query, &mut accumulator);
                                spans += objects.rows[row_group];
                                false
                            }
                            _ => true,
                        })
                        .collect();
                    Ok((accumulator, rest, spans))
                })
                .await?;
                total.0.merge(folded);
                total.2.spans_scanned += spans;
                row_groups = rest;
            }
        }
        let parts = by_row_group(row_groups, |row_group| {
            let (plan, way, query, skip, cpu) = (&plan, &way, &query, &skip, &cpu);
            let (roots, table, filter) = (roots.clone(), table.clone(), filter.clone());
            let mut accumulator = empty.clone();
            async move {
                let fetched = self
                    .fetch_columns(storage, row_group, &roots, plan.attribute_leaves)
                    .await?;
                let bytes_read = fetched_bytes(&fetched);
                let (plan, way, query, skip) =
                    (plan.clone(), way.clone(), query.clone(), skip.clone());
                let (metadata, file_size) = (self.scan_parquet.clone(), self.meta.data_bytes);
                let rows = self.parquet.metadata().row_group(row_group).num_rows() as usize;
                on_cpu(cpu, move || {
                    let traces = match (needs_traces, table.as_ref()) {
                        (false, _) => v1::metrics::RowTraces::Unneeded,
                        (true, Some(table)) => {
                            v1::metrics::RowTraces::from_table(table, row_group, rows, &skip)
                        }
                        (true, None) => v1::metrics::RowTraces::Column { skip: &skip },
                    };
                    let mut stats = v1::metrics::FoldStats::default();
                    let mut first_row = 0;
                    for batch in v1::search::decode_columns(
                        &roots,
                        plan.attribute_leaves,
                        &metadata,
                        file_size,
                        row_group,
                        fetched,
                    )? {
                        match (way.as_ref(), &query.function) {
                            (FoldWay::Columns(columns), _) => v1::metrics::fold_batch(
                                &plan,
                                columns,
                                &query,
                                &batch,
                                first_row,
                                &traces,
                                &mut accumulator,
                                &mut stats,
                            )?,
                            (
                                FoldWay::Compare { .. },
                                andante_traceql::metrics::MetricsFunction::Compare(compare),
                            ) => v1::compare::fold_compare_batch(
                                &plan,
                                filter.as_deref(),
                                compare,
                                &query,
                                &batch,
                                first_row,
                                &traces,
                                &mut accumulator,
                                &mut stats,
                            )?,
                            (FoldWay::Compare { .. }, _) => {
                                return Err(BlockError::Read(
                                    "a compare() fold of a query that is not compare()".into(),
                                ))
                            }
                        }
                        first_row += batch.num_rows();
                    }
                    Ok((accumulator, bytes_read, stats))
                })
                .await
            }
        });
        futures::pin_mut!(parts);
        while let Some(part) = futures::StreamExt::next(&mut parts).await {
            let (accumulator, bytes_read, stats) = part?;
            total.0.merge(accumulator);
            total.1 += bytes_read;
            total.2.spans_scanned += stats.spans_scanned;
            total.2.shared.extend(stats.shared);
        }
        Ok(total)
    }

    /// The plan's column chunks of one row group, each with its file offset (one ranged GET per
    /// chunk, coalesced by `object_store`).
    pub(crate) async fn fetch_row_group(
        &self,
        storage: &Storage,
        plan: &v1::search::ScanPlan,
        row_group: usize,
    ) -> Result<Vec<(u64, Bytes)>, BlockError> {
        self.fetch_columns(storage, row_group, &plan.roots, plan.attribute_leaves)
            .await
    }

    /// The column chunks under `roots` of one row group (of the generic attribute list, only
    /// `attribute_leaves` when given).
    pub(crate) async fn fetch_columns(
        &self,
        storage: &Storage,
        row_group: usize,
        roots: &[usize],
        attribute_leaves: Option<&[&str]>,
    ) -> Result<Vec<(u64, Bytes)>, BlockError> {
        if roots.is_empty() {
            return Ok(Vec::new());
        }
        let path = object_store::path::Path::from(self.meta.data_key());
        let chunks = v1::search::chunk_ranges(&self.parquet, row_group, roots, attribute_leaves);
        let ranges: Vec<std::ops::Range<u64>> =
            chunks.iter().map(|(_, range)| range.clone()).collect();
        let parts = storage
            .object_store()
            .get_ranges(&path, &ranges)
            .await
            .map_err(|error| BlockError::Read(error.to_string()))?;
        // Whole chunks were fetched: check them before anything decodes them.
        self.index.verify_chunks(
            row_group,
            chunks
                .iter()
                .map(|(leaf, _)| *leaf)
                .zip(parts.iter().map(|part| part.as_ref())),
        )?;
        Ok(ranges.iter().map(|range| range.start).zip(parts).collect())
    }

    /// Checks every column chunk of the whole `data.parquet` (as fetched) against the index.
    pub fn verify_file(&self, data: &[u8]) -> Result<(), BlockError> {
        let parquet = self.parquet.metadata();
        for (row_group, group) in parquet.row_groups().iter().enumerate() {
            let chunks = group.columns().iter().enumerate().map(|(leaf, column)| {
                let (offset, length) = column.byte_range();
                (
                    leaf,
                    data.get(offset as usize..(offset + length) as usize)
                        .unwrap_or_default(),
                )
            });
            self.index.verify_chunks(row_group, chunks)?;
        }
        Ok(())
    }

    /// Every trace in the block, in trace-ID order, decoded a batch of rows at a time, for
    /// readers that fold traces as they go instead of holding them all. `data` is the whole
    /// `data.parquet` (`storage.get(&meta.data_key())`); its chunks are verified first. CPU work:
    /// call it, and iterate, on a blocking thread.
    pub fn stream_traces(&self, data: bytes::Bytes) -> Result<v1::TraceStream, BlockError> {
        self.verify_file(&data)?;
        v1::TraceStream::new(data, 8192)
    }

    /// Every trace in the block, in trace-ID order. The file is fetched whole and its chunks
    /// verified before decoding.
    pub async fn read_all(&self, storage: &Storage) -> Result<Vec<Trace>, BlockError> {
        let data = storage.get(&self.meta.data_key()).await?;
        self.verify_file(&data)?;
        v1::decode_all_traces(data, &self.parquet)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;

/// One future per row group, run up to one per core at a time and yielded in row-group order:
/// a block's row groups then use every core (one block of a compacted hour is most of what a
/// query reads), and the caller merges partial results in the order a sequential loop would.
/// Dropping the stream drops the futures still running.
pub(crate) fn by_row_group<'a, T, F, Fut>(
    row_groups: Vec<usize>,
    work: F,
) -> impl futures::Stream<Item = Result<T, BlockError>> + 'a
where
    F: FnMut(usize) -> Fut + 'a,
    Fut: std::future::Future<Output = Result<T, BlockError>> + 'a,
    T: 'a,
{
    use futures::StreamExt;
    let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
    futures::stream::iter(row_groups)
        .map(work)
        .buffered(parallel)
}

/// Runs CPU-heavy `work` on a blocking thread once a permit of `cpu` is free.
/// A block's rollup objects as read, before decoding (which runs on the CPU pool).
struct RollupObjects {
    /// Rows per row group, from the Parquet footer: a row group's counts must add up to them.
    rows: Vec<u64>,
    counts: Bytes,
    durations: Option<Bytes>,
}

impl RollupObjects {
    fn bytes(&self) -> u64 {
        (self.counts.len() + self.durations.as_ref().map_or(0, Bytes::len)) as u64
    }

    /// The decoded rollup, None (with a warning) when `rollup` is damaged; damaged durations
    /// leave the cells without them.
    fn decode(&self, meta: &BlockMeta) -> Option<rollup::Rollup> {
        let mut rollup = rollup::Rollup::decode(&self.counts, &self.rows)
            .map_err(|error| rollup_unreadable(meta, &error, "rollup"))
            .ok()?;
        if let Some(durations) = &self.durations {
            if let Err(error) = rollup.add_durations(durations) {
                rollup_unreadable(meta, &error, "durations");
            }
        }
        Some(rollup)
    }
}

fn rollup_unreadable(meta: &BlockMeta, error: &BlockError, object: &str) {
    tracing::warn!(
        block = %meta.block_id,
        %error,
        "the block's {object} object is unreadable; scanning the rows instead"
    );
}

pub(crate) async fn on_cpu<T: Send + 'static>(
    cpu: &Arc<tokio::sync::Semaphore>,
    work: impl FnOnce() -> Result<T, BlockError> + Send + 'static,
) -> Result<T, BlockError> {
    let permit = cpu
        .clone()
        .acquire_owned()
        .await
        .map_err(|error| BlockError::Read(error.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|error| BlockError::Read(error.to_string()))?
}

/// Bytes of fetched column chunks.
pub(crate) fn fetched_bytes(fetched: &[(u64, Bytes)]) -> u64 {
    fetched.iter().map(|(_, part)| part.len() as u64).sum()
}
