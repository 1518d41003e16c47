//! `compare()` straight from columns, for a search and a filter that are each one exact
//! column-by-column predicate (`MetricsQuery::columnar_compare`). A row group's predicate
//! columns give the searched spans and the selection; every attribute a span has — name,
//! status, kind, status message, the resource's attributes and the span's own (generic list,
//! dedicated and slot columns) — is counted in its group without rebuilding the span. Series
//! are found once per distinct dictionary key, resource or attribute value of a row group, not
//! once per span and attribute, which is what made whole-trace compare() slow.

use andante_model::otlp::common::v1::AnyValue;
use andante_traceql::ast::{SpanKind, StatusCode};
use andante_traceql::metrics::{
    Compare, LabelValue, COMPARE_BASELINE, COMPARE_BASELINE_TOTAL, COMPARE_SELECTION,
    COMPARE_SELECTION_TOTAL,
};
use andante_traceql::{Accumulator, MetricsQuery, Value};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, UInt64Type, UInt8Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use prost::Message;
use rustc_hash::FxHashMap;

use super::metrics::{batch_column, selected_rows, FoldStats, RowTraces};
use super::schema::{
    DedicatedSlots, ATTR_BOOL, ATTR_DOUBLE, ATTR_INT, ATTR_STRING, DEDICATED_SPAN_INTS,
    DEDICATED_SPAN_STRINGS,
};
use super::search::{decode_resource, ScanPlan};
use crate::BlockError;

/// The columns compare() reads besides the search's, in a block with `slots`.
pub fn compare_columns(slots: &DedicatedSlots) -> Vec<&'static str> {
    let mut columns = vec![
        "start_unix_nanos",
        "name",
        "kind",
        "status_code",
        "status_message",
        "resource",
        "attributes",
    ];
    columns.extend(DEDICATED_SPAN_STRINGS.iter().map(|(_, column)| *column));
    columns.extend(DEDICATED_SPAN_INTS.iter().map(|(_, column)| *column));
    columns.extend(slots.iter().map(|(_, column)| column));
    columns
}

/// Selection (1) or baseline (0).
type Group = usize;

/// The series of one attribute value in one group, and of that group's total for the
/// attribute; `None` when the series limit refused one (its spans are then not counted, as in
/// the engine).
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    value: Option<usize>,
    total: Option<usize>,
}

/// Finds series by `[group, attribute, value]`, building the key only when a cache misses.
struct Keys<'q> {
    query: &'q MetricsQuery,
    groups: [LabelValue; 2],
    totals: [LabelValue; 2],
}

impl Keys<'_> {
    fn pair(
        &self,
        accumulator: &mut Accumulator,
        group: Group,
        attribute: &str,
        value: LabelValue,
    ) -> Pair {
        let name = LabelValue::String(attribute.to_owned());
        let value_key = [self.groups[group].clone(), name.clone(), value];
        let total_key = [self.totals[group].clone(), name, LabelValue::Nil];
        Pair {
            value: accumulator.series_slot(&value_key, self.query),
            total: accumulator.series_slot(&total_key, self.query),
        }
    }
}

/// A string column read by dictionary key (or by value, for a plain column).
enum Strings<'a> {
    Dictionary {
        keys: &'a [i32],
        values: &'a arrow_array::StringArray,
        nulls: Option<&'a arrow_buffer::NullBuffer>,
    },
    Plain(&'a arrow_array::StringArray),
}

impl<'a> Strings<'a> {
    fn of(array: &'a ArrayRef) -> Result<Strings<'a>, BlockError> {
        match array.data_type() {
            DataType::Dictionary(_, _) => {
                let dictionary = array.as_dictionary::<Int32Type>();
                Ok(Strings::Dictionary {
                    keys: dictionary.keys().values(),
                    values: dictionary
                        .values()
                        .as_string_opt::<i32>()
                        .ok_or_else(|| BlockError::Corrupt("dictionary of non-strings".into()))?,
                    nulls: array.nulls(),
                })
            }
            DataType::Utf8 => Ok(Strings::Plain(array.as_string::<i32>())),
            other => Err(BlockError::Corrupt(format!(
                "a string column holds {other}"
            ))),
        }
    }

    /// The row's dictionary key (`None` for a plain column) and text, or None for null.
    fn at(&self, row: usize) -> Option<(Option<usize>, &'a str)> {
        match self {
            Strings::Dictionary {
                keys,
                values,
                nulls,
            } => {
                if nulls.is_some_and(|nulls| nulls.is_null(row)) {
                    return None;
                }
                let key = keys[row] as usize;
                Some((Some(key), values.value(key)))
            }
            Strings::Plain(values) => (!values.is_null(row)).then(|| (None, values.value(row))),
        }
    }
}

/// One string attribute's series, cached per dictionary key (or per text for plain columns).
struct StringAttribute<'a> {
    label: String,
    column: Strings<'a>,
    /// Whether an empty text counts (a status message does not; a span attribute does).
    empty_counts: bool,
    by_key: [FxHashMap<usize, Pair>; 2],
    by_text: [FxHashMap<&'a str, Pair>; 2],
}

impl<'a> StringAttribute<'a> {
    fn new(label: String, column: Strings<'a>, empty_counts: bool) -> StringAttribute<'a> {
        StringAttribute {
            label,
            column,
            empty_counts,
            by_key: Default::default(),
            by_text: Default::default(),
        }
    }

    fn pair(
        &mut self,
        keys: &Keys,
        accumulator: &mut Accumulator,
        group: Group,
        row: usize,
    ) -> Option<Pair> {
        let StringAttribute {
            label,
            column,
            empty_counts,
            by_key,
            by_text,
        } = self;
        let (key, text) = column.at(row)?;
        if text.is_empty() && !*empty_counts {
            return None;
        }
        let resolve = || {
            keys.pair(
                accumulator,
                group,
                label,
                LabelValue::String(text.to_owned()),
            )
        };
        Some(match key {
            Some(key) => *by_key[group].entry(key).or_insert_with(resolve),
            None => *by_text[group].entry(text).or_insert_with(resolve),
        })
    }
}

/// A value of the generic attribute list, hashable without building a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scalar<'a> {
    Str(&'a str),
    Int(i64),
    Float(u64),
    Bool(bool),
}

impl Scalar<'_> {
    fn label(self) -> LabelValue {
        match self {
            Scalar::Str(text) => LabelValue::String(text.to_owned()),
            Scalar::Int(number) => LabelValue::Int(number),
            Scalar::Float(bits) => LabelValue::float(f64::from_bits(bits)),
            Scalar::Bool(flag) => LabelValue::Bool(flag),
        }
    }
}

/// A generic list entry's value: a scalar, cached by value; or the label of a bytes, array or
/// map value, decoded each time (rare).
enum Entry<'a> {
    Scalar(Scalar<'a>),
    Other(LabelValue),
}

/// The generic attribute list's leaves.
struct Generic<'a> {
    offsets: &'a [i32],
    keys: Strings<'a>,
    types: &'a [u8],
    strs: Strings<'a>,
    ints: &'a [i64],
    doubles: &'a [f64],
    bools: &'a arrow_array::BooleanArray,
    others: &'a arrow_array::BinaryArray,
}

impl<'a> Generic<'a> {
    fn of(array: &'a ArrayRef) -> Result<Generic<'a>, BlockError> {
        let list = array
            .as_list_opt::<i32>()
            .ok_or_else(|| BlockError::Corrupt("`attributes` is not a list".into()))?;
        let fields = list.values().as_struct();
        if fields.num_columns() < 7 {
            return Err(BlockError::Corrupt("`attributes` lacks leaves".into()));
        }
        Ok(Generic {
            offsets: list.value_offsets(),
            keys: Strings::of(fields.column(0))?,
            types: fields.column(1).as_primitive::<UInt8Type>().values(),
            strs: Strings::of(fields.column(2))?,
            ints: fields.column(3).as_primitive::<Int64Type>().values(),
            doubles: fields.column(4).as_primitive::<Float64Type>().values(),
            bools: fields.column(5).as_boolean(),
            others: fields.column(6).as_binary::<i32>(),
        })
    }

    /// Entry `entry`'s key and value; None for an entry with nothing to count.
    fn entry(&self, entry: usize) -> Result<Option<(&'a str, Entry<'a>)>, BlockError> {
        let Some((_, key)) = self.keys.at(entry) else {
            return Ok(None);
        };
        let value = match self.types[entry] {
            ATTR_STRING => match self.strs.at(entry) {
                Some((_, text)) => Entry::Scalar(Scalar::Str(text)),
                None => return Ok(None),
            },
            ATTR_INT => Entry::Scalar(Scalar::Int(self.ints[entry])),
            ATTR_DOUBLE => Entry::Scalar(Scalar::Float(self.doubles[entry].to_bits())),
            ATTR_BOOL => Entry::Scalar(Scalar::Bool(self.bools.value(entry))),
            _ => {
                let decoded = AnyValue::decode(self.others.value(entry))
                    .map_err(|error| BlockError::Corrupt(error.to_string()))?;
                match LabelValue::of(&Value::from_any(&decoded)) {
                    LabelValue::Nil => return Ok(None),
                    label => Entry::Other(label),
                }
            }
        };
        Ok(Some((key, value)))
    }
}

/// Folds the searched rows of one decoded row group into `accumulator` as compare() does.
/// `search` and `filter` are the plans of the two predicates (None: every span).
#[allow(clippy::too_many_arguments)]
pub fn fold_compare_batch(
    search: &ScanPlan,
    filter: Option<&ScanPlan>,
    compare: &Compare,
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
    let searched = selected_rows(search, batch)?;
    let selected = match filter {
        Some(plan) => selected_rows(plan, batch)?,
        None => None,
    };
    let starts = column("start_unix_nanos")?
        .as_primitive::<UInt64Type>()
        .values();
    let kinds = column("kind")?.as_primitive::<Int32Type>().values();
    let codes = column("status_code")?.as_primitive::<Int32Type>().values();
    let resources = column("resource")?;
    let resources = resources
        .as_dictionary_opt::<Int32Type>()
        .ok_or_else(|| BlockError::Corrupt("`resource` is not a dictionary".into()))?;
    let resource_keys = resources.keys().values();
    let resource_values = resources.values().as_binary::<i32>();
    let generic = Generic::of(column("attributes")?)?;

    let mut name = StringAttribute::new("name".to_owned(), Strings::of(column("name")?)?, true);
    let mut message = StringAttribute::new(
        "statusMessage".to_owned(),
        Strings::of(column("status_message")?)?,
        false,
    );
    let mut strings = Vec::new();
    for (key, name) in DEDICATED_SPAN_STRINGS
        .iter()
        .copied()
        .chain(search.slots().iter())
    {
        strings.push(StringAttribute::new(
            format!("span.{key}"),
            Strings::of(column(name)?)?,
            true,
        ));
    }
    let ints: Vec<(String, &arrow_array::PrimitiveArray<Int64Type>)> = DEDICATED_SPAN_INTS
        .iter()
        .map(|(key, name)| {
            Ok((
                format!("span.{key}"),
                column(name)?.as_primitive::<Int64Type>(),
            ))
        })
        .collect::<Result<_, BlockError>>()?;

    let keys = Keys {
        query,
        groups: [
            LabelValue::String(COMPARE_BASELINE.to_owned()),
            LabelValue::String(COMPARE_SELECTION.to_owned()),
        ],
        totals: [
            LabelValue::String(COMPARE_BASELINE_TOTAL.to_owned()),
            LabelValue::String(COMPARE_SELECTION_TOTAL.to_owned()),
        ],
    };
    // Per group: status and kind by code, each resource's attribute pairs, generic values,
    // dedicated integers.
    let mut by_status: [FxHashMap<i32, Pair>; 2] = Default::default();
    let mut by_kind: [FxHashMap<i32, Pair>; 2] = Default::default();
    let mut by_resource: [FxHashMap<i32, Vec<Pair>>; 2] = Default::default();
    let mut by_generic: [FxHashMap<(&str, Scalar), Pair>; 2] = Default::default();
    let mut by_int: Vec<[FxHashMap<i64, Pair>; 2]> =
        ints.iter().map(|_| Default::default()).collect();
    let interval = accumulator.intervals.indexer();
    let mut pairs: Vec<Pair> = Vec::new();

    for row in 0..rows {
        if searched.as_ref().is_some_and(|searched| !searched[row]) {
            continue;
        }
        let start = starts[row];
        let Some(k) = interval.index(start) else {
            continue;
        };
        if let Some(shared) = traces.skips(batch, row, first_row + row) {
            stats.shared.insert(shared);
            continue;
        }
        let in_window = compare
            .window
            .is_none_or(|(from, to)| start >= from && start < to);
        let group =
            usize::from(in_window && selected.as_ref().is_none_or(|selected| selected[row]));
        accumulator.note_compared_span();
        pairs.clear();

        // In the order `observe` counts a span's attributes, so series come in the same order.
        pairs.extend(name.pair(&keys, accumulator, group, row));
        let status = codes[row];
        pairs.push(*by_status[group].entry(status).or_insert_with(|| {
            let name = StatusCode::from_otlp(status).name().to_owned();
            keys.pair(accumulator, group, "status", LabelValue::String(name))
        }));
        let kind = kinds[row];
        pairs.push(*by_kind[group].entry(kind).or_insert_with(|| {
            let name = SpanKind::from_otlp(kind).name().to_owned();
            keys.pair(accumulator, group, "kind", LabelValue::String(name))
        }));
        pairs.extend(message.pair(&keys, accumulator, group, row));
        if !resources.is_null(row) {
            let resource = resource_keys[row];
            let found = by_resource[group].entry(resource).or_insert_with(|| {
                let Some(decoded) = decode_resource(resource_values.value(resource as usize))
                else {
                    return Vec::new();
                };
                decoded
                    .attributes
                    .iter()
                    .filter_map(|attribute| {
                        let label = LabelValue::of(&Value::from_any(attribute.value.as_ref()?));
                        (label != LabelValue::Nil).then(|| {
                            keys.pair(
                                accumulator,
                                group,
                                &format!("resource.{}", attribute.key),
                                label,
                            )
                        })
                    })
                    .collect()
            });
            pairs.extend_from_slice(found);
        }
        for entry in generic.offsets[row] as usize..generic.offsets[row + 1] as usize {
            let Some((key, value)) = generic.entry(entry)? else {
                continue;
            };
            let label = format!("span.{key}");
            pairs.push(match value {
                Entry::Scalar(scalar) => *by_generic[group]
                    .entry((key, scalar))
                    .or_insert_with(|| keys.pair(accumulator, group, &label, scalar.label())),
                Entry::Other(other) => keys.pair(accumulator, group, &label, other),
            });
        }
        for attribute in &mut strings {
            pairs.extend(attribute.pair(&keys, accumulator, group, row));
        }
        for ((label, values), cache) in ints.iter().zip(&mut by_int) {
            if values.is_null(row) {
                continue;
            }
            let number = values.value(row);
            pairs.push(
                *cache[group].entry(number).or_insert_with(|| {
                    keys.pair(accumulator, group, label, LabelValue::Int(number))
                }),
            );
        }

        // The trace is looked up only for a series' first exemplar in an interval.
        let mut trace_id: Option<[u8; 16]> = None;
        for series in pairs
            .iter()
            .flat_map(|pair| [pair.value, pair.total])
            .flatten()
        {
            let id = if accumulator.wants_exemplar(series, k) {
                *trace_id.get_or_insert(
                    traces
                        .trace_of(batch, row, first_row + row)
                        .ok_or_else(|| BlockError::Corrupt("a row outside every trace".into()))?
                        .0,
                )
            } else {
                [0; 16]
            };
            accumulator.count_compared(series, k, start, id);
        }
    }
    Ok(())
}
