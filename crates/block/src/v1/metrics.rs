//! TraceQL metrics straight from columns, for queries that are one spanset filter with an exact
//! column-by-column predicate (`MetricsQuery::columnar`): a row group's predicate, time, `by`
//! and value columns are decoded (strings as dictionaries) and every matching row is folded
//! into the accumulator — no trace is rebuilt. Series are found once per distinct combination
//! of dictionary keys in a row group, not once per span.

use std::collections::HashSet;

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
            Field::Attribute { scope: Scope::Resource, parent: false, name } if name == "service.name" => Column::Str("service_name"),
            Field::Attribute { scope: Scope::Resource, parent: false, name } => {
                Column::Str(DEDICATED_RESOURCE_STRINGS.iter().find(|(key, _)| key == name)?.1)
            }
            Field::Attribute { scope: Scope::Span, parent: false, name } => match DEDICATED_SPAN_STRINGS.iter().find(|(key, _)| key == name) {
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

/// Most `by` fields the columnar path groups on (series keys are fixed-size arrays).
const MAX_BY: usize = 3;

impl MetricsColumns {
    pub fn of(query: &MetricsQuery) -> Option<MetricsColumns> {
        let spec = query.columnar()?;
        if query.by.len() > MAX_BY {
            return None;
        }
        let by = query.by.iter().map(Column::of).collect::<Option<Vec<_>>>()?;
        let value = match &spec.value_field {
            Some(field) => Some(Column::of(field)?),
            None => None,
        };
        Some(MetricsColumns { by, value })
    }

    /// Column names beyond what the scan plan reads for its predicate.
    pub fn names(&self) -> Vec<&'static str> {
        self.by.iter().chain(&self.value).map(|column| column.name()).collect()
    }
}

/// A typed reader of one column: a small number identifying the row's value (dictionary key or
/// the value itself) and the value itself.
struct Reader<'a> {
    column: Column,
    array: &'a ArrayRef,
}

impl Reader<'_> {
    fn id(&self, row: usize) -> u64 {
        if self.array.is_null(row) {
            return u64::MAX;
        }
        match (self.column, self.array.data_type()) {
            (Column::Str(_), DataType::Dictionary(_, _)) => self.array.as_dictionary::<Int32Type>().keys().value(row) as u64,
            (Column::Str(_), _) => row as u64,
            (Column::Kind | Column::Status, _) => self.array.as_primitive::<Int32Type>().value(row) as u64,
            (Column::Duration, _) => self.array.as_primitive::<UInt64Type>().value(row),
            (Column::Int(_), _) => self.array.as_primitive::<Int64Type>().value(row) as u64,
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
                        dictionary.values().as_string::<i32>().value(dictionary.keys().value(row) as usize).to_owned()
                    }
                    _ => self.array.as_string::<i32>().value(row).to_owned(),
                };
                Value::Str(text.into())
            }
            Column::Kind => Value::Kind(SpanKind::from_otlp(self.array.as_primitive::<Int32Type>().value(row))),
            Column::Status => Value::Status(StatusCode::from_otlp(self.array.as_primitive::<Int32Type>().value(row))),
            Column::Duration => Value::Duration(self.array.as_primitive::<UInt64Type>().value(row) as i64),
            Column::Int(_) => Value::Int(self.array.as_primitive::<Int64Type>().value(row)),
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

/// Folds the matching rows of one decoded row group into `accumulator`.
pub fn fold_batch(
    plan: &ScanPlan,
    columns: &MetricsColumns,
    query: &MetricsQuery,
    batch: &RecordBatch,
    skip: &HashSet<TraceId>,
    accumulator: &mut Accumulator,
    stats: &mut FoldStats,
) -> Result<(), BlockError> {
    let rows = batch.num_rows();
    stats.spans_scanned += rows as u64;
    let column = |name: &str| batch.column_by_name(name).ok_or_else(|| BlockError::Corrupt(format!("missing column `{name}`")));
    let masks = predicate_masks(plan, batch)?;
    let starts = column("start_unix_nanos")?.as_primitive::<UInt64Type>();
    let trace_ids = column("trace_id")?.as_fixed_size_binary();
    let by: Vec<Reader> = columns.by.iter().map(|c| Ok(Reader { column: *c, array: column(c.name())? })).collect::<Result<_, BlockError>>()?;
    let value = match columns.value {
        Some(c) => Some(Reader { column: c, array: column(c.name())? }),
        None => None,
    };
    let mut series_of: FxHashMap<[u64; MAX_BY + 1], usize> = FxHashMap::default();
    for row in 0..rows {
        if !masks.iter().all(|mask| mask[row]) {
            continue;
        }
        let Some(k) = accumulator.intervals.index(starts.value(row)) else { continue };
        let trace_id: [u8; 16] = trace_ids.value(row).try_into().map_err(|_| BlockError::Corrupt("trace_id width".into()))?;
        if !skip.is_empty() && skip.contains(&TraceId(trace_id)) {
            stats.shared.insert(TraceId(trace_id));
            continue;
        }
        let mut ids = [0u64; MAX_BY + 1];
        for (slot, reader) in ids.iter_mut().zip(&by) {
            *slot = reader.id(row);
        }
        let (number, bucket) = match &value {
            None => (1.0, None),
            Some(reader) => {
                let raw = reader.value(row);
                if query.is_histogram() {
                    let Some(bucket) = log2_bucket(&raw) else { continue };
                    ids[MAX_BY] = bucket.to_bits();
                    (1.0, Some(bucket))
                } else {
                    let number = match raw {
                        Value::Int(n) => n as f64,
                        Value::Duration(nanos) => nanos as f64 / 1e9,
                        _ => continue,
                    };
                    (number, None)
                }
            }
        };
        let series = match series_of.get(&ids) {
            Some(&series) => series,
            None => {
                let mut key: Vec<LabelValue> = by.iter().map(|reader| LabelValue::of(&reader.value(row))).collect();
                if let Some(bucket) = bucket {
                    key.push(LabelValue::float(bucket));
                }
                let series = accumulator.series_index(key, query);
                series_of.insert(ids, series);
                series
            }
        };
        accumulator.add_at(series, k, starts.value(row), number, trace_id);
    }
    Ok(())
}
