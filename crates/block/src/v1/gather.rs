//! Building a row group out of other files' rows, column by column. A compaction merge copies
//! each trace that one input row group holds whole as a run of rows, instead of decoding it into
//! OTLP messages and encoding it again (that round trip was most of a merge's CPU, session 28);
//! what the index needs of the new row group (trace table entries, rollup cells, value filter)
//! is then read from the gathered columns. `docs/design/column-merge.md` has the reasoning.

use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::TraceId;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, UInt64Type, UInt8Type};
use arrow_array::{make_array, Array, ArrayRef, PrimitiveArray, RecordBatch};
use arrow_data::transform::MutableArrayData;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use prost::Message;

use super::schema::{
    schema, DedicatedSlots, ATTR_STRING, DEDICATED_SLOTS, DEDICATED_SPAN_INTS,
    DEDICATED_SPAN_STRINGS,
};
use super::write::RowGroupOut;
use crate::trace_table::TraceEntry;
use crate::values::{key_hash, ValueFilterBuilder, ValueScope};
use crate::BlockError;

fn corrupt(why: impl std::fmt::Display) -> BlockError {
    BlockError::Corrupt(why.to_string())
}

/// One row group of a fetched file, read whole as one batch of every column.
pub(crate) fn read_row_group(
    data: Bytes,
    metadata: &ArrowReaderMetadata,
    row_group: usize,
) -> Result<RecordBatch, BlockError> {
    let Some(group) = metadata.metadata().row_groups().get(row_group) else {
        return Err(corrupt(format!("row group {row_group} is not in the file")));
    };
    let rows = usize::try_from(group.num_rows()).unwrap_or(0).max(1);
    crate::guard::decode(|| {
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(data, metadata.clone())
            .with_row_groups(vec![row_group])
            .with_batch_size(rows)
            .build()
            .map_err(BlockError::parquet)?;
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| BlockError::parquet(error.into()))?;
        match <[RecordBatch; 1]>::try_from(batches) {
            Ok([batch]) => Ok(batch),
            // The reader returned the row group in pieces (or none, for no rows): one batch.
            Err(batches) => arrow_select::concat::concat_batches(metadata.schema(), &batches)
                .map_err(|error| BlockError::Encode(error.to_string())),
        }
    })
}

/// Whether rows read with `metadata` have exactly the columns a new row group is written with,
/// so they can be copied into one.
pub(crate) fn copyable_schema(metadata: &ArrowReaderMetadata) -> bool {
    metadata.schema().fields() == schema().fields()
}

/// A trace's run of rows in a batch sorted by trace ID.
pub(crate) struct TraceRun {
    pub trace_id: TraceId,
    pub first_row: usize,
    pub rows: usize,
    /// Earliest start and latest `start + duration` (an end before its start counts as the
    /// start, as the trace table counts it).
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

/// The traces of a batch of rows, one run per trace, in row order.
pub(crate) fn trace_runs(batch: &RecordBatch) -> Result<Vec<TraceRun>, BlockError> {
    let trace_ids = typed(batch, "trace_id", |a| a.as_fixed_size_binary_opt())?;
    let (starts, durations) = starts_and_durations(batch)?;
    let mut runs: Vec<TraceRun> = Vec::new();
    for row in 0..batch.num_rows() {
        let id = trace_ids.value(row);
        let start = starts.value(row);
        let end = start.saturating_add(durations.value(row));
        match runs.last_mut() {
            Some(run) if run.trace_id.0 == id => {
                run.rows += 1;
                run.start_unix_nanos = run.start_unix_nanos.min(start);
                run.end_unix_nanos = run.end_unix_nanos.max(end);
            }
            _ => runs.push(TraceRun {
                trace_id: TraceId(id.try_into().map_err(|_| corrupt("trace_id width"))?),
                first_row: row,
                rows: 1,
                start_unix_nanos: start,
                end_unix_nanos: end,
            }),
        }
    }
    Ok(runs)
}

/// Whether rows `first_row..first_row + rows` of `batch` exist and all belong to `trace_id`.
pub(crate) fn holds_trace(
    batch: &RecordBatch,
    trace_id: TraceId,
    first_row: usize,
    rows: usize,
) -> bool {
    let Ok(ids) = typed(batch, "trace_id", |a| a.as_fixed_size_binary_opt()) else {
        return false;
    };
    rows > 0
        && first_row
            .checked_add(rows)
            .is_some_and(|end| end <= batch.num_rows())
        && (first_row..first_row + rows).all(|row| ids.value(row) == trace_id.0)
}

/// A batch to copy rows from, with where each output column comes from: a slot column is
/// taken from the source's slot holding the same key.
pub(crate) struct Source {
    pub batch: RecordBatch,
    columns: Vec<usize>,
}

impl Source {
    /// `batch` (of the current schema) whose slots hold `from`'s keys, copied into a row group
    /// whose slots hold `to`'s; None when the two are not the same set of keys.
    pub(crate) fn new(
        batch: RecordBatch,
        from: &DedicatedSlots,
        to: &DedicatedSlots,
    ) -> Option<Source> {
        let width = schema().fields().len();
        let first_slot = width - DEDICATED_SLOTS.len();
        let mut columns: Vec<usize> = (0..width).collect();
        let to_keys: Vec<&str> = to.iter().map(|(key, _)| key).collect();
        if from.iter().count() != to_keys.len() {
            return None;
        }
        for (slot, key) in to_keys.iter().enumerate() {
            columns[first_slot + slot] = first_slot + from.position(key)?;
        }
        Some(Source { batch, columns })
    }
}

/// A row group of the current schema made of `runs` (source, first row, rows) of `sources`, in
/// order.
pub(crate) fn gather(
    sources: &[Source],
    runs: &[(usize, usize, usize)],
) -> Result<RecordBatch, BlockError> {
    let schema = schema();
    let columns = (0..schema.fields().len())
        .map(|column| {
            let parts: Vec<&ArrayRef> = sources
                .iter()
                .map(|source| source.batch.column(source.columns[column]))
                .collect();
            gather_column(&parts, runs)
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(schema, columns).map_err(|error| BlockError::Encode(error.to_string()))
}

fn gather_column(
    parts: &[&ArrayRef],
    runs: &[(usize, usize, usize)],
) -> Result<ArrayRef, BlockError> {
    let data: Vec<_> = parts.iter().map(|array| array.to_data()).collect();
    let rows = runs.iter().map(|run| run.2).sum();
    let mut out = MutableArrayData::new(data.iter().collect(), false, rows);
    for &(part, first_row, len) in runs {
        // Offsets past i32 (a row group over 2 GiB of one column) refuse the merge.
        out.try_extend(part, first_row, first_row + len)
            .map_err(|error| BlockError::Encode(error.to_string()))?;
    }
    Ok(make_array(out.freeze()))
}

/// A gathered row group with its trace table entries, rollup cells, value filter and time
/// range read from its columns. `dedicated_keys_in_generic` is what the caller knows of its
/// rows (the columns cannot tell a key stored in the generic list by choice from one that had
/// no slot).
pub(crate) fn row_group_out(
    batch: RecordBatch,
    slots: &DedicatedSlots,
    dedicated_keys_in_generic: std::collections::BTreeSet<String>,
) -> Result<RowGroupOut, BlockError> {
    let runs = trace_runs(&batch)?;
    let traces: Vec<TraceEntry> = runs
        .iter()
        .map(|run| TraceEntry {
            trace_id: run.trace_id,
            row_group: 0,
            first_row: run.first_row as u32,
            rows: run.rows as u32,
            start_unix_nanos: run.start_unix_nanos,
            end_unix_nanos: run.end_unix_nanos,
        })
        .collect();
    let range = runs
        .first()
        .zip(runs.last())
        .map(|(first, last)| (first.trace_id, last.trace_id));
    let min_start = runs
        .iter()
        .map(|run| run.start_unix_nanos)
        .min()
        .unwrap_or(u64::MAX);
    let max_end = runs.iter().map(|run| run.end_unix_nanos).max().unwrap_or(0);
    Ok(RowGroupOut {
        values: value_filter(&batch, slots)?,
        rollup: rollup(&batch)?.finish(),
        traces,
        range,
        min_start,
        max_end,
        dedicated_keys_in_generic,
        batch,
    })
}

/// Something with columns by name: a batch, or the struct of the generic attribute list.
trait Named {
    fn named(&self, name: &str) -> Option<&ArrayRef>;
}

impl Named for RecordBatch {
    fn named(&self, name: &str) -> Option<&ArrayRef> {
        self.column_by_name(name)
    }
}

impl Named for arrow_array::StructArray {
    fn named(&self, name: &str) -> Option<&ArrayRef> {
        self.column_by_name(name)
    }
}

/// Column `name` of `columns` as the type `cast` gives, or a corrupt-block error.
fn typed<'a, T: 'a>(
    columns: &'a impl Named,
    name: &str,
    cast: impl FnOnce(&'a dyn Array) -> Option<T>,
) -> Result<T, BlockError> {
    columns
        .named(name)
        .and_then(|column| cast(column.as_ref()))
        .ok_or_else(|| corrupt(format!("column `{name}` is missing or mistyped")))
}

fn starts_and_durations(
    batch: &RecordBatch,
) -> Result<(&PrimitiveArray<UInt64Type>, &PrimitiveArray<UInt64Type>), BlockError> {
    Ok((
        typed(batch, "start_unix_nanos", |a| {
            a.as_primitive_opt::<UInt64Type>()
        })?,
        typed(batch, "duration_nanos", |a| {
            a.as_primitive_opt::<UInt64Type>()
        })?,
    ))
}

fn rollup(batch: &RecordBatch) -> Result<crate::rollup::RowGroupRollupBuilder, BlockError> {
    let services = typed(batch, "service_name", |a| a.as_string_opt::<i32>())?;
    let names = typed(batch, "name", |a| a.as_string_opt::<i32>())?;
    let statuses = typed(batch, "status_code", |a| a.as_primitive_opt::<Int32Type>())?;
    let kinds = typed(batch, "kind", |a| a.as_primitive_opt::<Int32Type>())?;
    let (starts, durations) = starts_and_durations(batch)?;
    let mut rollup = crate::rollup::RowGroupRollupBuilder::default();
    for row in 0..batch.num_rows() {
        rollup.add(
            services.value(row),
            names.value(row),
            statuses.value(row),
            kinds.value(row),
            starts.value(row),
            durations.value(row),
        );
    }
    Ok(rollup)
}

/// Adds every non-null value of a string column to `key`'s entry; a value equal to the row
/// before adds nothing new, so it is not hashed again.
fn add_strings(values: &mut ValueFilterBuilder, key: &str, column: &arrow_array::StringArray) {
    let hash = key_hash(ValueScope::Span, key);
    let mut previous: Option<&str> = None;
    for value in column.iter().flatten() {
        if previous != Some(value) {
            values.add_value(hash, Some(value));
            previous = Some(value);
        }
    }
}

/// The value filter `ValueFilterBuilder::add_trace` builds from the same spans: every distinct
/// resource once, and every span attribute from its column (fixed, slot or generic).
fn value_filter(
    batch: &RecordBatch,
    slots: &DedicatedSlots,
) -> Result<crate::values::ValueFilter, BlockError> {
    let mut values = ValueFilterBuilder::new();
    let resources = typed(batch, "resource", |a| a.as_binary_opt::<i32>())?;
    let mut seen: crate::FastSet<&[u8]> = crate::FastSet::default();
    let mut previous: Option<&[u8]> = None;
    for bytes in resources.iter().flatten() {
        if previous == Some(bytes) {
            continue;
        }
        previous = Some(bytes);
        if seen.insert(bytes) {
            let resource = ResourceSpans::decode(bytes).map_err(corrupt)?;
            if let Some(resource) = resource.resource {
                values.add_resource(&resource.attributes);
            }
        }
    }
    for (key, column) in DEDICATED_SPAN_STRINGS {
        add_strings(
            &mut values,
            key,
            typed(batch, column, |a| a.as_string_opt::<i32>())?,
        );
    }
    for (key, column) in slots.iter() {
        add_strings(
            &mut values,
            key,
            typed(batch, column, |a| a.as_string_opt::<i32>())?,
        );
    }
    for (key, column) in DEDICATED_SPAN_INTS {
        let ints = typed(batch, column, Some)?;
        if ints.null_count() < ints.len() {
            values.add_value(key_hash(ValueScope::Span, key), None);
        }
    }
    let attributes = typed(batch, "attributes", |a| a.as_list_opt::<i32>())?;
    let items = attributes
        .values()
        .as_struct_opt()
        .ok_or_else(|| corrupt("attributes are not a list of structs"))?;
    let keys = typed(items, "key", |a| a.as_string_opt::<i32>())?;
    let types = typed(items, "type", |a| a.as_primitive_opt::<UInt8Type>())?;
    let strings = typed(items, "str", |a| a.as_string_opt::<i32>())?;
    let offsets = attributes.value_offsets();
    let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
    for item in first..last {
        // As the decoding path reads it: a string item's `str`, empty if null.
        let value = (types.value(item) == ATTR_STRING).then(|| strings.value(item));
        values.add_value(key_hash(ValueScope::Span, keys.value(item)), value);
    }
    Ok(values.finish())
}
