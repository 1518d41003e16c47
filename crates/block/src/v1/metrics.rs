//! TraceQL metrics straight from columns, for queries that are one spanset filter with an exact
//! column-by-column predicate (`MetricsQuery::columnar`): a row group's predicate, time, `by`
//! and value columns are decoded (strings as dictionaries) and every matching row is folded
//! into the accumulator — no trace is rebuilt. Series are found once per distinct combination
//! of dictionary keys in a row group, not once per span.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use andante_model::TraceId;
use andante_traceql::ast::{Field, Intrinsic, Scope, SpanKind, StatusCode};
use andante_traceql::metrics::{log2_bucket, LabelValue};
use andante_traceql::{Accumulator, MetricsQuery, Value};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use rustc_hash::FxHashMap;

use super::schema::{DEDICATED_RESOURCE_STRINGS, DEDICATED_SPAN_INTS, DEDICATED_SPAN_STRINGS};
use super::search::{predicate_masks, ScanPlan};
use crate::trace_table::TraceTable;
use crate::BlockError;

/// Where a field lives in `andante-v1`, for the fields a columnar metrics scan can read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    Str(&'static str),
    Kind,
    Status,
    Duration,
    Int(&'static str),
}

impl Column {
    fn of(field: &Field) -> Option<Column> {
        Some(match field {
            Field::Intrinsic(Intrinsic::Name) => Column::Str("name"),
            Field::Intrinsic(Intrinsic::StatusMessage) => Column::Str("status_message"),
            Field::Intrinsic(Intrinsic::Kind) => Column::Kind,
            Field::Intrinsic(Intrinsic::Status) => Column::Status,
            Field::Intrinsic(Intrinsic::Duration) => Column::Duration,
            Field::Attribute {
                scope: Scope::Resource,
                parent: false,
                name,
            } if name == "service.name" => Column::Str("service_name"),
            Field::Attribute {
                scope: Scope::Resource,
                parent: false,
                name,
            } => Column::Str(
                DEDICATED_RESOURCE_STRINGS
                    .iter()
                    .find(|(key, _)| key == name)?
                    .1,
            ),
            Field::Attribute {
                scope: Scope::Span,
                parent: false,
                name,
            } => match DEDICATED_SPAN_STRINGS.iter().find(|(key, _)| key == name) {
                Some((_, column)) => Column::Str(column),
                None => Column::Int(DEDICATED_SPAN_INTS.iter().find(|(key, _)| key == name)?.1),
            },
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Column::Str(name) | Column::Int(name) => name,
            Column::Kind => "kind",
            Column::Status => "status_code",
            Column::Duration => "duration_nanos",
        }
    }
}

/// The columns of a columnar metrics query, or None when a field has no column of its own.
#[derive(Debug, Clone)]
pub struct MetricsColumns {
    by: Vec<Column>,
    value: Option<Column>,
}

/// Most cells of `count_by_slot`'s local table (8 MiB of counts).
const MAX_LOCAL_COUNTS: usize = 1 << 20;

/// Most `by` fields the columnar path groups on (series keys are fixed-size arrays).
const MAX_BY: usize = 3;

impl MetricsColumns {
    pub fn of(query: &MetricsQuery) -> Option<MetricsColumns> {
        let spec = query.columnar()?;
        if query.by.len() > MAX_BY {
            return None;
        }
        let by = query
            .by
            .iter()
            .map(Column::of)
            .collect::<Option<Vec<_>>>()?;
        let value = match &spec.value_field {
            Some(field) => Some(Column::of(field)?),
            None => None,
        };
        Some(MetricsColumns { by, value })
    }

    /// Column names beyond what the scan plan reads for its predicate.
    pub fn names(&self) -> Vec<&'static str> {
        self.by
            .iter()
            .chain(&self.value)
            .map(|column| column.name())
            .collect()
    }
}

/// A typed reader of one column, for the label values of a new series.
struct Reader<'a> {
    column: Column,
    array: &'a ArrayRef,
}

impl Reader<'_> {
    /// Per row, a number identifying the row's value (the dictionary key, or the value itself),
    /// `u64::MAX` for null: rows with equal ids belong to the same series.
    fn ids(&self) -> Vec<u64> {
        let rows = self.array.len();
        let raw: Vec<u64> = match (self.column, self.array.data_type()) {
            (Column::Str(_), DataType::Dictionary(_, _)) => self
                .array
                .as_dictionary::<Int32Type>()
                .keys()
                .values()
                .iter()
                .map(|key| *key as u64)
                .collect(),
            (Column::Str(_), _) => (0..rows as u64).collect(),
            (Column::Kind | Column::Status, _) => self
                .array
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|v| *v as u64)
                .collect(),
            (Column::Duration, _) => self.array.as_primitive::<UInt64Type>().values().to_vec(),
            (Column::Int(_), _) => self
                .array
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .map(|v| *v as u64)
                .collect(),
        };
        match self.array.nulls() {
            Some(nulls) => raw
                .into_iter()
                .enumerate()
                .map(|(row, id)| if nulls.is_null(row) { u64::MAX } else { id })
                .collect(),
            None => raw,
        }
    }

    /// How many distinct ids a row group can have when they are dictionary keys.
    fn dictionary_len(&self) -> Option<usize> {
        match (self.column, self.array.data_type()) {
            (Column::Str(_), DataType::Dictionary(_, _)) => {
                Some(self.array.as_dictionary::<Int32Type>().values().len())
            }
            _ => None,
        }
    }

    fn value(&self, row: usize) -> Value<'static> {
        if self.array.is_null(row) {
            return Value::Nil;
        }
        match self.column {
            Column::Str(_) => {
                let text = match self.array.data_type() {
                    DataType::Dictionary(_, _) => {
                        let dictionary = self.array.as_dictionary::<Int32Type>();
                        dictionary
                            .values()
                            .as_string::<i32>()
                            .value(dictionary.keys().value(row) as usize)
                            .to_owned()
                    }
                    _ => self.array.as_string::<i32>().value(row).to_owned(),
                };
                Value::Str(text.into())
            }
            Column::Kind => Value::Kind(SpanKind::from_otlp(
                self.array.as_primitive::<Int32Type>().value(row),
            )),
            Column::Status => Value::Status(StatusCode::from_otlp(
                self.array.as_primitive::<Int32Type>().value(row),
            )),
            Column::Duration => {
                Value::Duration(self.array.as_primitive::<UInt64Type>().value(row) as i64)
            }
            Column::Int(_) => Value::Int(self.array.as_primitive::<Int64Type>().value(row)),
        }
    }
}

/// The numbers of a value column, read straight from its buffer (no `Value` per row).
enum Numbers<'a> {
    /// Counting functions read no value.
    Count,
    /// Nanoseconds; reported in seconds.
    Duration(&'a [u64]),
    Int(&'a [i64], Option<&'a arrow_buffer::NullBuffer>),
    /// A column with no numbers (strings, kinds): no row has a value.
    Other,
}

impl Numbers<'_> {
    /// The row's value as the function sees it (durations in seconds), or None to skip the row.
    fn at(&self, row: usize) -> Option<f64> {
        match self {
            Numbers::Count => Some(1.0),
            Numbers::Duration(values) => Some(values[row] as f64 / 1e9),
            Numbers::Int(values, nulls) => {
                (!nulls.is_some_and(|n| n.is_null(row))).then(|| values[row] as f64)
            }
            Numbers::Other => None,
        }
    }

    /// The row's value in its native unit, for `histogram_over_time`'s buckets.
    fn raw(&self, row: usize) -> Value<'static> {
        match self {
            Numbers::Duration(values) => Value::Duration(values[row] as i64),
            Numbers::Int(values, nulls) if !nulls.is_some_and(|n| n.is_null(row)) => {
                Value::Int(values[row])
            }
            _ => Value::Nil,
        }
    }
}

/// What a columnar fold does with a row group's rows.
pub enum FoldWay {
    /// One function of the spans, by its `by` and value columns ([`fold_batch`]).
    Columns(MetricsColumns),
    /// compare() ([`super::compare::fold_compare_batch`]), with the plan of its filter's
    /// predicate (None: every span is selected).
    Compare { filter: Option<Arc<ScanPlan>> },
}

/// How a fold finds the trace of a row, which matters only for exemplars and for the traces
/// the live store also holds (their rows are left to the caller, which counts them whole).
pub enum RowTraces<'a> {
    /// The batch's `trace_id` column, for blocks without a trace table.
    Column { skip: &'a HashSet<TraceId> },
    /// The block's trace table (entries `entries` are this row group's), so the `trace_id`
    /// column is not read; `skipped` marks the rows of traces in the skip set, when any is.
    Table {
        table: &'a TraceTable,
        entries: Range<usize>,
        skipped: Option<Vec<bool>>,
    },
    /// No exemplars and nothing also held live: no row's trace is looked at.
    Unneeded,
}

impl<'a> RowTraces<'a> {
    /// The table way for one row group: its entries, and the rows of traces in `skip`.
    pub fn from_table(
        table: &'a TraceTable,
        row_group: usize,
        rows: usize,
        skip: &HashSet<TraceId>,
    ) -> RowTraces<'a> {
        let entries = table.row_group(row_group as u32);
        let mut skipped: Option<Vec<bool>> = None;
        if !skip.is_empty() {
            for index in entries.clone() {
                let entry = table.get(index);
                if skip.contains(&entry.trace_id) {
                    let marks = skipped.get_or_insert_with(|| vec![false; rows]);
                    let first = (entry.first_row as usize).min(rows);
                    let end = first.saturating_add(entry.rows as usize).min(rows);
                    marks[first..end].fill(true);
                }
            }
        }
        RowTraces::Table {
            table,
            entries,
            skipped,
        }
    }

    /// The trace of row `row` of the row group (`batch_row` in `batch`).
    pub(crate) fn trace_of(
        &self,
        batch: &RecordBatch,
        batch_row: usize,
        row: usize,
    ) -> Option<TraceId> {
        match self {
            RowTraces::Column { .. } => batch
                .column_by_name("trace_id")
                .and_then(|ids| ids.as_fixed_size_binary().value(batch_row).try_into().ok())
                .map(TraceId),
            RowTraces::Table { table, entries, .. } => table
                .entry_holding_row(entries.clone(), u32::try_from(row).ok()?)
                .map(|index| table.get(index).trace_id),
            RowTraces::Unneeded => None,
        }
    }

    /// Whether the row belongs to a trace the caller counts itself.
    pub(crate) fn skips(
        &self,
        batch: &RecordBatch,
        batch_row: usize,
        row: usize,
    ) -> Option<TraceId> {
        match self {
            RowTraces::Column { skip } if !skip.is_empty() => self
                .trace_of(batch, batch_row, row)
                .filter(|trace_id| skip.contains(trace_id)),
            RowTraces::Table {
                skipped: Some(marks),
                ..
            } if marks.get(row).copied().unwrap_or(false) => self.trace_of(batch, batch_row, row),
            _ => None,
        }
    }
}

/// What one row group added besides the accumulator.
#[derive(Debug, Default)]
pub struct FoldStats {
    pub spans_scanned: u64,
    /// Trace IDs of rows skipped because the trace is also live (the caller counts it whole).
    pub shared: HashSet<TraceId>,
}

/// A column of a decoded batch; one the plan should have read and did not is corruption.
pub(crate) fn batch_column<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a ArrayRef, BlockError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| BlockError::Corrupt(format!("missing column `{name}`")))
}

/// The rows satisfying every predicate of `plan`; None when it has none (every row).
pub(crate) fn selected_rows(
    plan: &ScanPlan,
    batch: &RecordBatch,
) -> Result<Option<Vec<bool>>, BlockError> {
    let masks = predicate_masks(plan, batch)?;
    Ok((!masks.is_empty()).then(|| {
        (0..batch.num_rows())
            .map(|row| masks.iter().all(|mask| mask[row]))
            .collect()
    }))
}

/// Folds the matching rows of one decoded row group into `accumulator`. Column buffers are read
/// directly and a series is looked up by the rows' ids (a table by dictionary key for the usual
/// single `by`); label values are built only when a series is first seen.
/// `first_row` is the batch's first row in its row group.
#[allow(clippy::too_many_arguments)]
pub fn fold_batch(
    plan: &ScanPlan,
    columns: &MetricsColumns,
    query: &MetricsQuery,
    batch: &RecordBatch,
    first_row: usize,
    traces: &RowTraces,
    accumulator: &mut Accumulator,
    stats: &mut FoldStats,
) -> Result<(), BlockError> {
    let rows = batch.num_rows();
    stats.spans_scanned += rows as u64;
    let column = |name: &str| batch_column(batch, name);
    let selected = selected_rows(plan, batch)?;
    let starts = column("start_unix_nanos")?
        .as_primitive::<UInt64Type>()
        .values();
    if let RowTraces::Column { .. } = traces {
        column("trace_id")?;
    }
    let by: Vec<Reader> = columns
        .by
        .iter()
        .map(|c| {
            Ok(Reader {
                column: *c,
                array: column(c.name())?,
            })
        })
        .collect::<Result<_, BlockError>>()?;
    let by_ids: Vec<Vec<u64>> = by.iter().map(Reader::ids).collect();
    let value_array = match columns.value {
        Some(c) => Some((c, column(c.name())?)),
        None => None,
    };
    let numbers = match &value_array {
        None => Numbers::Count,
        Some((Column::Duration, array)) => {
            Numbers::Duration(array.as_primitive::<UInt64Type>().values())
        }
        Some((Column::Int(_), array)) => {
            Numbers::Int(array.as_primitive::<Int64Type>().values(), array.nulls())
        }
        Some(_) => Numbers::Other,
    };
    let histogram = query.is_histogram();
    // One `by` column of dictionary keys (and no bucket): series by key, no hashing per row.
    let mut by_key: Option<Vec<usize>> = match (&by[..], histogram) {
        ([single], false) => single.dictionary_len().map(|len| vec![usize::MAX; len + 1]),
        _ => None,
    };
    // Counting with no exemplar and at most one dictionary `by`: the usual dashboard query.
    // Its local table has a cell per dictionary key and interval, so a large dictionary over
    // many intervals (a URL `by` over 10,000 steps) goes row by row instead.
    let cells = by_key
        .as_ref()
        .map_or(1, Vec::len)
        .saturating_mul(accumulator.intervals.count);
    if matches!(numbers, Numbers::Count)
        && !histogram
        && !accumulator.keeps_exemplars()
        && cells <= MAX_LOCAL_COUNTS
    {
        let slots = match (&by[..], &by_key) {
            ([], _) => Some(vec![0u32; rows]),
            ([_], Some(table)) => Some(
                by_ids[0]
                    .iter()
                    .map(|id| (*id).min(table.len() as u64 - 1) as u32)
                    .collect(),
            ),
            _ => None,
        };
        if let Some(slots) = slots {
            let table_len = by_key.as_ref().map_or(1, Vec::len);
            return count_by_slot(
                CountInput {
                    rows,
                    selected: selected.as_deref(),
                    starts,
                    slots: &slots,
                    table_len,
                    first_row,
                    batch,
                    traces,
                },
                |accumulator, row| {
                    let key: Vec<LabelValue> = by
                        .iter()
                        .map(|reader| LabelValue::of(&reader.value(row)))
                        .collect();
                    accumulator.series_index(key, query)
                },
                accumulator,
                stats,
            );
        }
    }
    let mut series_of: FxHashMap<[u64; MAX_BY + 1], usize> = FxHashMap::default();
    let interval = accumulator.intervals.indexer();
    for row in 0..rows {
        if selected.as_ref().is_some_and(|selected| !selected[row]) {
            continue;
        }
        let Some(k) = interval.index(starts[row]) else {
            continue;
        };
        if let Some(shared) = traces.skips(batch, row, first_row + row) {
            stats.shared.insert(shared);
            continue;
        }
        let (number, bucket) = if histogram {
            let Some(bucket) = log2_bucket(&numbers.raw(row)) else {
                continue;
            };
            (1.0, Some(bucket))
        } else {
            let Some(number) = numbers.at(row) else {
                continue;
            };
            (number, None)
        };
        let new_series = |accumulator: &mut Accumulator| {
            let mut key: Vec<LabelValue> = by
                .iter()
                .map(|reader| LabelValue::of(&reader.value(row)))
                .collect();
            if let Some(bucket) = bucket {
                key.push(LabelValue::float(bucket));
            }
            accumulator.series_index(key, query)
        };
        let series = match &mut by_key {
            Some(table) => {
                let id = by_ids[0][row];
                let slot = if id == u64::MAX {
                    table.len() - 1
                } else {
                    (id as usize).min(table.len() - 1)
                };
                if table[slot] == usize::MAX {
                    // Over the accumulator's series limit: the row is not counted (the
                    // accumulator marks itself truncated); a later row may still find a slot.
                    let Some(series) = new_series(accumulator) else {
                        continue;
                    };
                    table[slot] = series;
                }
                table[slot]
            }
            None => {
                let mut ids = [0u64; MAX_BY + 1];
                for (slot, column_ids) in ids.iter_mut().zip(&by_ids) {
                    *slot = column_ids[row];
                }
                if let Some(bucket) = bucket {
                    ids[MAX_BY] = bucket.to_bits();
                }
                match series_of.get(&ids) {
                    Some(&series) => series,
                    None => {
                        let Some(series) = new_series(accumulator) else {
                            continue;
                        };
                        series_of.insert(ids, series);
                        series
                    }
                }
            }
        };
        // The trace is looked up only for an interval's first exemplar of the series.
        let trace_id = if accumulator.wants_exemplar(series, k) {
            traces
                .trace_of(batch, row, first_row + row)
                .ok_or_else(|| BlockError::Corrupt("a row outside every trace".into()))?
                .0
        } else {
            [0; 16]
        };
        accumulator.add_at(series, k, starts[row], number, trace_id);
    }
    Ok(())
}

/// The rows of one batch as [`count_by_slot`] reads them.
struct CountInput<'a> {
    rows: usize,
    selected: Option<&'a [bool]>,
    starts: &'a [u64],
    /// Per row, its series slot (the `by` column's dictionary key; the last slot is null).
    slots: &'a [u32],
    table_len: usize,
    first_row: usize,
    batch: &'a RecordBatch,
    traces: &'a RowTraces<'a>,
}

/// `fold_batch` for a counting function without exemplars: each row adds one to a local
/// (slot, interval) table, which goes into the accumulator once per batch, so a row touches
/// one number instead of its series. Same counts as one `add_at` per row; a series refused by
/// the series limit leaves its rows uncounted, as there.
fn count_by_slot(
    input: CountInput,
    mut new_series: impl FnMut(&mut Accumulator, usize) -> Option<usize>,
    accumulator: &mut Accumulator,
    stats: &mut FoldStats,
) -> Result<(), BlockError> {
    let intervals = accumulator.intervals.count;
    let mut counts = vec![0u64; input.table_len * intervals];
    // A row of each slot, to build the series' labels from.
    let mut example = vec![usize::MAX; input.table_len];
    let interval = accumulator.intervals.indexer();
    for row in 0..input.rows {
        if input.selected.is_some_and(|selected| !selected[row]) {
            continue;
        }
        let Some(k) = interval.index(input.starts[row]) else {
            continue;
        };
        if let Some(shared) = input.traces.skips(input.batch, row, input.first_row + row) {
            stats.shared.insert(shared);
            continue;
        }
        let slot = input.slots[row] as usize;
        if example[slot] == usize::MAX {
            example[slot] = row;
        }
        counts[slot * intervals + k] += 1;
    }
    // Series are made in the order their first rows come, as row by row.
    let mut seen: Vec<(usize, usize)> = example
        .into_iter()
        .enumerate()
        .filter(|(_, row)| *row != usize::MAX)
        .map(|(slot, row)| (row, slot))
        .collect();
    seen.sort_unstable();
    for (row, slot) in seen {
        let Some(series) = new_series(accumulator, row) else {
            continue;
        };
        for (k, count) in counts[slot * intervals..(slot + 1) * intervals]
            .iter()
            .enumerate()
        {
            if *count > 0 {
                accumulator.add_ones(series, k, *count);
            }
        }
    }
    Ok(())
}
