//! TraceQL stage 1 over an `andante-v1` block: finds the traces that satisfy a query's
//! pushed-down `TraceCondition` while reading only the columns its predicates name.
//!
//! Per row group: statistics first (a row group whose `duration_nanos` or start-time range
//! excludes a leaf is skipped unread); then the needed column chunks are fetched with one ranged
//! GET each (async), and decoded and evaluated on a blocking thread. String and resource columns
//! are read as Arrow dictionaries so a leaf is evaluated once per distinct value (a resource
//! blob is decoded once per distinct resource), then mapped onto rows by key.
//! Every leaf reads each *source* that may hold its field (dedicated column, generic list,
//! resource) and ORs them: the result is a superset of the true matches, which is all stage 1
//! promises; stage 2 evaluates whole traces.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::TraceId;
use andante_traceql::ast::{Field, Intrinsic, Scope, SpanKind, Static, StatusCode};
use andante_traceql::{Relation, SpanPredicate, TraceCondition, Value};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, UInt64Type, UInt8Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field as ArrowField, Schema, SchemaRef};
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use prost::Message;

use super::schema::{
    schema, DedicatedSlots, ATTR_BOOL, ATTR_DOUBLE, ATTR_INT, ATTR_STRING,
    DEDICATED_RESOURCE_STRINGS, DEDICATED_SPAN_INTS, DEDICATED_SPAN_STRINGS,
};
use crate::values::{ValueFilter, ValueScope};
use crate::BlockError;

/// A trace that passed stage 1: where its rows are and when it starts (within this block).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub trace_id: TraceId,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// The trace's rows in this block, when the scan saw all of them at once: stage 2 then
    /// reads those rows instead of searching the row group's trace IDs for them.
    pub location: Option<RowLocation>,
    /// The spans seen here are too few for a count the condition requires (`{ } | count() > 8`):
    /// the trace can only match if it has spans in another block or the live store. Callers
    /// that cannot tell may keep it as an ordinary candidate.
    pub too_few_here: bool,
}

/// Where one trace's rows are in a block: rows of a trace are contiguous and never cross a
/// row group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowLocation {
    pub row_group: u32,
    pub first_row: u32,
    pub rows: u32,
}

/// Span pairs a relation is checked on per trace; beyond it (huge traces) the trace is kept
/// for stage 2 rather than spending quadratic time here.
const MAX_RELATION_PAIRS: usize = 1 << 20;

/// What stage 1 found in one block.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    pub candidates: Vec<Candidate>,
    pub bytes_read: u64,
    pub spans_scanned: u64,
    pub traces_scanned: u64,
}

impl ScanOutcome {
    /// Adds what a later part of the scan (the next row group) found.
    pub fn absorb(&mut self, part: ScanOutcome) {
        self.candidates.extend(part.candidates);
        self.bytes_read += part.bytes_read;
        self.spans_scanned += part.spans_scanned;
        self.traces_scanned += part.traces_scanned;
    }
}

/// A column a leaf reads.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    Column(&'static str),
    Generic(String),
    ResourceBlob(String),
}

fn static_is_string(value: &Static) -> bool {
    matches!(value, Static::String(_))
}

/// The sources of a leaf's field; `exact_type` says the literal's type lets a typed dedicated
/// column stand alone (a string literal never equals a non-string value in the generic list).
/// `slots` add the block's dedicated slot columns to the fixed tables.
fn leaf_sources(predicate: &SpanPredicate, slots: &DedicatedSlots) -> Vec<Source> {
    let (field, string_only) = match predicate {
        SpanPredicate::Compare { field, value, .. } => (
            field,
            static_is_string(value) && !predicate.leaf_accepts(&Value::Nil),
        ),
        SpanPredicate::Regex { field, .. } => (field, !predicate.leaf_accepts(&Value::Nil)),
        _ => return Vec::new(),
    };
    match field {
        Field::Intrinsic(intrinsic) => vec![Source::Column(match intrinsic {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status_code",
            Intrinsic::StatusMessage => "status_message",
            Intrinsic::Kind => "kind",
            _ => "duration_nanos",
        })],
        Field::Attribute { scope, name, .. } => {
            let mut sources = Vec::new();
            if matches!(scope, Scope::Span | Scope::Unscoped) {
                let dedicated_string = DEDICATED_SPAN_STRINGS
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, column)| *column)
                    .or_else(|| slots.column_of(name));
                let dedicated_int = DEDICATED_SPAN_INTS
                    .iter()
                    .find(|(key, _)| key == name)
                    .map(|(_, column)| *column);
                if let Some(column) = dedicated_string.or(dedicated_int) {
                    sources.push(Source::Column(column));
                }
                if !(dedicated_string.is_some() && string_only) {
                    sources.push(Source::Generic(name.clone()));
                }
            }
            if matches!(scope, Scope::Resource | Scope::Unscoped) {
                let dedicated = match name.as_str() {
                    "service.name" => Some("service_name"),
                    other => DEDICATED_RESOURCE_STRINGS
                        .iter()
                        .find(|(key, _)| *key == other)
                        .map(|(_, column)| *column),
                };
                match dedicated {
                    Some(column) if string_only => sources.push(Source::Column(column)),
                    _ => sources.push(Source::ResourceBlob(name.clone())),
                }
            }
            sources
        }
    }
}

/// The generic-list leaves a string-only predicate needs: strings, and `other` for arrays.
const STRING_ATTRIBUTE_LEAVES: &[&str] = &["key", "str", "other"];

/// Whether a leaf can only accept a string value or an array holding one (never nil, a number
/// or a boolean), so the generic list's numeric leaves need not be read for it.
fn accepts_only_strings(leaf: &SpanPredicate) -> bool {
    match leaf {
        SpanPredicate::Compare {
            op: andante_traceql::ast::BinaryOp::Eq,
            value: Static::String(_),
            ..
        } => true,
        SpanPredicate::Regex { negated, .. } => !negated,
        _ => false,
    }
}

fn leaves<'a>(predicate: &'a SpanPredicate, out: &mut Vec<&'a SpanPredicate>) {
    match predicate {
        SpanPredicate::True => {}
        SpanPredicate::And(parts) | SpanPredicate::Or(parts) => {
            parts.iter().for_each(|part| leaves(part, out))
        }
        leaf => out.push(leaf),
    }
}

/// The generic attribute list with its `key` and `str` leaves read as dictionaries.
fn dictionary_attribute_list(field: &ArrowField) -> ArrowField {
    let item = super::schema::attribute_fields()
        .iter()
        .map(|leaf| match leaf.name().as_str() {
            "key" | "str" => leaf.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8),
            )),
            _ => leaf.as_ref().clone(),
        })
        .collect::<Vec<_>>();
    let item = ArrowField::new("item", DataType::Struct(item.into()), false);
    field.clone().with_data_type(DataType::List(Arc::new(item)))
}

/// The file schema with strings and resources as dictionaries (what stage 1 reads), cut to a
/// file's first `columns` columns: files written before the slot columns existed end earlier.
fn dictionary_schema(columns: usize) -> SchemaRef {
    let fields: Vec<ArrowField> = schema()
        .fields()
        .iter()
        .take(columns)
        .map(|field| match field.data_type() {
            DataType::List(_) if field.name() == "attributes" => dictionary_attribute_list(field),
            DataType::Utf8 => field.as_ref().clone().with_data_type(DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8),
            )),
            DataType::Binary if field.name() == "resource" || field.name() == "scope" => {
                field.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Binary),
                ))
            }
            _ => field.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// The fetched column chunks of one row group, readable by Parquet's sync reader.
struct FetchedChunks {
    file_size: u64,
    chunks: Vec<(u64, Bytes)>,
}

impl FetchedChunks {
    fn slice(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        for (chunk_start, bytes) in &self.chunks {
            let chunk_end = chunk_start + bytes.len() as u64;
            let end = start.checked_add(length as u64);
            if start >= *chunk_start && end.is_some_and(|end| end <= chunk_end) {
                let offset = (start - chunk_start) as usize;
                return Ok(bytes.slice(offset..offset + length));
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "range {start}+{length} was not fetched"
        )))
    }
}

impl Length for FetchedChunks {
    fn len(&self) -> u64 {
        self.file_size
    }
}

impl ChunkReader for FetchedChunks {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        for (chunk_start, bytes) in &self.chunks {
            let chunk_end = chunk_start + bytes.len() as u64;
            if start >= *chunk_start && start < chunk_end {
                return Ok(bytes.slice((start - chunk_start) as usize..).reader());
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "offset {start} was not fetched"
        )))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, length)
    }
}

/// Whether a predicate may hold for a span of a block with these service names (false only
/// when a conjunct needs `resource.service.name` to equal or match a string none of them is;
/// a non-string or missing service name never equals or matches a string).
fn service_allowed(predicate: &SpanPredicate, names: &[String]) -> bool {
    let service = |field: &Field| matches!(field, Field::Attribute { scope: Scope::Resource, parent: false, name } if name == "service.name");
    match predicate {
        SpanPredicate::And(parts) => parts.iter().all(|part| service_allowed(part, names)),
        SpanPredicate::Or(parts) => parts.iter().any(|part| service_allowed(part, names)),
        SpanPredicate::Compare {
            field,
            op: andante_traceql::ast::BinaryOp::Eq,
            value,
        } if service(field) && static_is_string(value) => names
            .iter()
            .any(|name| predicate.leaf_accepts(&Value::Str(name.as_str().into()))),
        SpanPredicate::Regex {
            field,
            negated: false,
            ..
        } if service(field) => names
            .iter()
            .any(|name| predicate.leaf_accepts(&Value::Str(name.as_str().into()))),
        _ => true,
    }
}

/// Whether statistics allow a leaf to match in a row group (false only when they prove not).
fn stats_allow(
    leaf: &SpanPredicate,
    row_group: &RowGroupMetaData,
    column_index: &HashMap<&str, usize>,
) -> bool {
    let SpanPredicate::Compare {
        field: Field::Intrinsic(Intrinsic::Duration),
        op,
        value,
    } = leaf
    else {
        return true;
    };
    let Some(index) = column_index.get("duration_nanos") else {
        return true;
    };
    let Some(Statistics::Int64(stats)) = row_group.column(*index).statistics() else {
        return true;
    };
    let (Some(min), Some(max)) = (stats.min_opt(), stats.max_opt()) else {
        return true;
    };
    // UInt64 is stored as INT64 with an unsigned logical type; durations fit in i64.
    let (min, max) = (Value::Duration(*min), Value::Duration(*max));
    let literal = Value::from_static(value);
    use andante_traceql::ast::BinaryOp;
    match op {
        BinaryOp::Gt | BinaryOp::Gte => leaf.leaf_accepts(&max),
        BinaryOp::Lt | BinaryOp::Lte => leaf.leaf_accepts(&min),
        BinaryOp::Eq => {
            andante_traceql::value::compare(BinaryOp::Gte, &literal, &min)
                && andante_traceql::value::compare(BinaryOp::Lte, &literal, &max)
        }
        _ => true,
    }
}

/// Everything a block scan needs, prepared once per query.
pub struct ScanPlan {
    condition: TraceCondition,
    /// Per `condition.predicates()` entry, its leaves and each leaf's sources.
    leaf_sources: Vec<Vec<Vec<Source>>>,
    /// Root column indexes of `columns` in the file schema.
    pub(crate) roots: Vec<usize>,
    /// The roots the predicates read: a row group is decided on these alone before the rest
    /// (`trace_id`, times, extra columns) is fetched. Empty when the condition is `True`.
    pub(crate) predicate_roots: Vec<usize>,
    time_range: Range<u64>,
    /// The leaves of the generic attribute list the plan reads: `key`, `str` and `other` when
    /// every leaf on it can only accept strings (or arrays of them), else all (`None`).
    pub(crate) attribute_leaves: Option<&'static [&'static str]>,
    /// What the plan was built from, to rebuild it for a block with dedicated slots.
    extra: Vec<&'static str>,
    slots: DedicatedSlots,
}

impl ScanPlan {
    pub fn new(condition: TraceCondition, time_range: Range<u64>) -> ScanPlan {
        Self::with_columns(condition, time_range, &[])
    }

    /// A plan that also reads `extra` columns (tag discovery reads the columns it lists).
    pub fn with_columns(
        condition: TraceCondition,
        time_range: Range<u64>,
        extra: &[&'static str],
    ) -> ScanPlan {
        Self::build(condition, time_range, extra, DedicatedSlots::default())
    }

    /// This plan for a block with `slots`: a leaf on a slotted key also reads the slot column
    /// (and, when its literal is a string, only that column). The same plan when no leaf is.
    pub fn for_block(self: &Arc<Self>, slots: &DedicatedSlots) -> Arc<ScanPlan> {
        let slotted = self
            .leaf_sources
            .iter()
            .flatten()
            .flatten()
            .any(|source| match source {
                Source::Generic(key) => slots.column_of(key).is_some(),
                _ => false,
            });
        if !slotted || *slots == self.slots {
            return self.clone();
        }
        Arc::new(Self::build(
            self.condition.clone(),
            self.time_range.clone(),
            &self.extra,
            slots.clone(),
        ))
    }

    /// This plan for a block with `slots`, reading `extra` columns instead of the plan's own
    /// (tag discovery: which columns hold a key depends on the block).
    pub fn for_block_with_columns(
        &self,
        slots: &DedicatedSlots,
        extra: &[&'static str],
    ) -> ScanPlan {
        Self::build(
            self.condition.clone(),
            self.time_range.clone(),
            extra,
            slots.clone(),
        )
    }

    pub fn slots(&self) -> &DedicatedSlots {
        &self.slots
    }

    fn build(
        condition: TraceCondition,
        time_range: Range<u64>,
        extra: &[&'static str],
        slots: DedicatedSlots,
    ) -> ScanPlan {
        let mut columns = if condition.has_relations() {
            vec![
                "trace_id",
                "start_unix_nanos",
                "duration_nanos",
                "nested_set_left",
                "nested_set_right",
                "nested_set_parent",
            ]
        } else {
            vec!["trace_id", "start_unix_nanos", "duration_nanos"]
        };
        let mut predicate_columns: Vec<&'static str> = Vec::new();
        let mut generic_needed = extra.contains(&"attributes");
        // Reading only some leaves is exact when no generic leaf can accept a non-string value.
        let mut generic_strings_only = !generic_needed;
        for column in extra {
            if *column != "attributes" && !columns.contains(column) {
                columns.push(column);
            }
        }
        let mut all_sources = Vec::new();
        for predicate in condition.predicates() {
            let mut predicate_leaves = Vec::new();
            leaves(predicate, &mut predicate_leaves);
            let mut per_leaf = Vec::new();
            for leaf in predicate_leaves {
                let sources = leaf_sources(leaf, &slots);
                for source in &sources {
                    let name: &'static str = match source {
                        Source::Column(column) => column,
                        Source::Generic(_) => {
                            generic_needed = true;
                            generic_strings_only &= accepts_only_strings(leaf);
                            "attributes"
                        }
                        Source::ResourceBlob(_) => "resource",
                    };
                    if !predicate_columns.contains(&name) {
                        predicate_columns.push(name);
                    }
                    if name != "attributes" && !columns.contains(&name) {
                        columns.push(name);
                    }
                }
                per_leaf.push(sources);
            }
            all_sources.push(per_leaf);
        }
        if generic_needed {
            columns.push("attributes");
        }
        let roots = columns
            .iter()
            .filter_map(|name| schema().index_of(name).ok())
            .collect();
        let predicate_roots = predicate_columns
            .iter()
            .filter_map(|name| schema().index_of(name).ok())
            .collect();
        let attribute_leaves =
            (generic_needed && generic_strings_only).then_some(STRING_ATTRIBUTE_LEAVES);
        ScanPlan {
            condition,
            leaf_sources: all_sources,
            roots,
            predicate_roots,
            time_range,
            attribute_leaves,
            extra: extra.to_vec(),
            slots,
        }
    }

    /// `trace_id`, the span times and, for relations, the nested-set numbers: what stage 1
    /// reads once a row group's predicates matched.
    pub(crate) fn trace_roots(&self) -> Vec<usize> {
        let file_schema = schema();
        self.trace_columns()
            .iter()
            .filter_map(|name| file_schema.index_of(name).ok())
            .collect()
    }

    fn trace_columns(&self) -> &'static [&'static str] {
        if self.condition.has_relations() {
            &[
                "trace_id",
                "start_unix_nanos",
                "duration_nanos",
                "nested_set_left",
                "nested_set_right",
                "nested_set_parent",
            ]
        } else {
            &["trace_id", "start_unix_nanos", "duration_nanos"]
        }
    }

    /// The roots without the trace columns: what a scan that does not report traces (tag
    /// discovery) needs. A trace column a predicate reads (`duration_nanos` for
    /// `{ duration > 100ms }`) stays: the filter is decided on it.
    pub(crate) fn roots_without_trace_columns(&self) -> Vec<usize> {
        let trace_columns = self.trace_roots();
        self.roots
            .iter()
            .copied()
            .filter(|root| !trace_columns.contains(root) || self.predicate_roots.contains(root))
            .collect()
    }

    /// Whether a block whose resources carry only the string service names `names` (`meta.json`
    /// `serviceNames`; None when not known) may hold a match: false when every way to satisfy
    /// the condition needs a span whose `resource.service.name` equals or matches a string
    /// none of them is. Never stricter than the row groups' own predicate masks (their spans
    /// are the block's), so answers stay the same; the block is just not read.
    pub fn block_may_match(&self, names: Option<&[String]>) -> bool {
        let Some(names) = names else {
            return true;
        };
        let allowed: Vec<bool> = self
            .condition
            .predicates()
            .iter()
            .map(|predicate| service_allowed(predicate, names))
            .collect();
        self.condition.holds(&allowed)
    }

    /// The roots a columnar metrics fold reads when a row's trace comes from the block's trace
    /// table, or does not matter: without `trace_id`, and without `duration_nanos` unless a
    /// predicate or a `by`/value column reads it.
    pub(crate) fn roots_without_trace_ids(&self) -> Vec<usize> {
        let file_schema = schema();
        let (trace_id, duration) = (
            file_schema.index_of("trace_id").ok(),
            file_schema.index_of("duration_nanos").ok(),
        );
        let duration_read = self.extra.contains(&"duration_nanos");
        self.roots
            .iter()
            .copied()
            .filter(|root| Some(*root) != trace_id)
            .filter(|root| {
                Some(*root) != duration || duration_read || self.predicate_roots.contains(root)
            })
            .collect()
    }

    /// Whether a row group can be ruled out by its predicate columns alone.
    pub(crate) fn decides_early(&self) -> bool {
        !self.predicate_roots.is_empty() && !matches!(self.condition, TraceCondition::True)
    }

    /// Whether any trace of a row group may satisfy the condition, given each predicate's rows
    /// (a trace's spans are all in one row group, so this is necessary for every trace in it).
    pub(crate) fn row_group_may_match(&self, masks: &[Vec<bool>]) -> bool {
        let found: Vec<bool> = masks.iter().map(|mask| mask.iter().any(|m| *m)).collect();
        self.condition.holds(&found)
    }

    /// The row groups statistics do not rule out.
    pub(crate) fn row_groups(&self, metadata: &ArrowReaderMetadata) -> Vec<usize> {
        self.row_groups_in(metadata, 0..metadata.metadata().num_row_groups())
    }

    /// The row groups among `candidates` statistics do not rule out (a search scanning one
    /// row group of a block judges that one only).
    pub(crate) fn row_groups_in(
        &self,
        metadata: &ArrowReaderMetadata,
        candidates: Range<usize>,
    ) -> Vec<usize> {
        let parquet = metadata.metadata();
        let file_schema = schema();
        let column_index: HashMap<&str, usize> = ["duration_nanos", "start_unix_nanos"]
            .into_iter()
            .filter_map(|name| {
                let root = file_schema.index_of(name).ok()?;
                let descriptor = parquet.file_metadata().schema_descr();
                (0..descriptor.num_columns())
                    .find(|leaf| descriptor.get_column_root_idx(*leaf) == root)
                    .map(|leaf| (name, leaf))
            })
            .collect();
        let predicates = self.condition.predicates();
        candidates
            .filter(|row_group_index| *row_group_index < parquet.num_row_groups())
            .filter(|row_group_index| {
                let row_group = parquet.row_group(*row_group_index);
                if let Some(Statistics::Int64(stats)) = column_index
                    .get("start_unix_nanos")
                    .and_then(|index| row_group.column(*index).statistics())
                {
                    if let (Some(min), Some(_)) = (stats.min_opt(), stats.max_opt()) {
                        if (*min as u64) > self.time_range.end {
                            return false;
                        }
                    }
                }
                let allowed: Vec<bool> = predicates
                    .iter()
                    .map(|predicate| {
                        predicate_allowed(predicate, &|leaf| {
                            stats_allow(leaf, row_group, &column_index)
                        })
                    })
                    .collect();
                self.condition.holds(&allowed)
            })
            .collect()
    }

    /// Whether a row group whose string attributes `values` summarises may match: false only
    /// when the condition needs a span whose attribute equals a string the row group lacks.
    pub fn values_allow(&self, values: &ValueFilter) -> bool {
        let allowed: Vec<bool> = self
            .condition
            .predicates()
            .iter()
            .map(|predicate| predicate_allowed(predicate, &|leaf| value_allows(leaf, values)))
            .collect();
        self.condition.holds(&allowed)
    }
}

/// Whether `leaf_allowed` lets some leaf combination of `predicate` match (false only when
/// it proves none can).
fn predicate_allowed(
    predicate: &SpanPredicate,
    leaf_allowed: &dyn Fn(&SpanPredicate) -> bool,
) -> bool {
    match predicate {
        SpanPredicate::True => true,
        SpanPredicate::And(parts) => parts
            .iter()
            .all(|part| predicate_allowed(part, leaf_allowed)),
        SpanPredicate::Or(parts) => parts
            .iter()
            .any(|part| predicate_allowed(part, leaf_allowed)),
        leaf => leaf_allowed(leaf),
    }
}

/// Whether `values` lets a leaf match: only `attribute = "string"` on span or resource
/// attributes (the parent's too, which sits in the same row group) can be ruled out.
fn value_allows(leaf: &SpanPredicate, values: &ValueFilter) -> bool {
    let SpanPredicate::Compare {
        field: Field::Attribute { scope, name, .. },
        op: andante_traceql::ast::BinaryOp::Eq,
        value: Static::String(literal),
    } = leaf
    else {
        return true;
    };
    let held = |scope| values.may_hold(scope, name, literal);
    match scope {
        Scope::Span => held(ValueScope::Span),
        Scope::Resource => held(ValueScope::Resource),
        Scope::Unscoped => held(ValueScope::Span) || held(ValueScope::Resource),
        _ => true,
    }
}

/// The leaf columns under `roots`; of the generic attribute list only `attribute_leaves` when given.
fn projected_leaves(
    descriptor: &parquet::schema::types::SchemaDescriptor,
    roots: &[usize],
    attribute_leaves: Option<&[&str]>,
) -> Vec<usize> {
    let attributes_root = schema().index_of("attributes").ok();
    (0..descriptor.num_columns())
        .filter(|leaf| {
            let root = descriptor.get_column_root_idx(*leaf);
            roots.contains(&root)
                && (Some(root) != attributes_root
                    || attribute_leaves
                        .is_none_or(|names| names.contains(&descriptor.column(*leaf).name())))
        })
        .collect()
}

/// Byte ranges of the projected leaf columns of one row group.
pub(crate) fn chunk_ranges(
    metadata: &ArrowReaderMetadata,
    row_group: usize,
    roots: &[usize],
    attribute_leaves: Option<&[&str]>,
) -> Vec<(usize, Range<u64>)> {
    let parquet = metadata.metadata();
    let descriptor = parquet.file_metadata().schema_descr();
    let group = parquet.row_group(row_group);
    projected_leaves(descriptor, roots, attribute_leaves)
        .into_iter()
        .map(|leaf| {
            let (start, length) = group.column(leaf).byte_range();
            (leaf, start..start + length)
        })
        .collect()
}

/// Stage 1 for one fetched row group: decode the projected columns and find candidates.
pub(crate) fn scan_row_group(
    plan: &ScanPlan,
    metadata: &ArrowReaderMetadata,
    file_size: u64,
    row_group: usize,
    fetched: Vec<(u64, Bytes)>,
    outcome: &mut ScanOutcome,
) -> Result<(), BlockError> {
    let batches = decode_row_group(plan, metadata, file_size, row_group, fetched)?;
    let whole = whole_row_group(&batches, row_group);
    for batch in batches {
        let masks = predicate_masks(plan, &batch)?;
        scan_with_masks(plan, &batch, &masks, whole, outcome)?;
    }
    Ok(())
}

/// The row group, when `batches` is exactly one batch holding all its rows: only then are a
/// trace's rows in the batch all its rows in the block, and their positions row-group rows.
fn whole_row_group(batches: &[RecordBatch], row_group: usize) -> Option<u32> {
    match batches {
        [_] => u32::try_from(row_group).ok(),
        _ => None,
    }
}

/// Decodes the plan's columns of one fetched row group (strings as dictionaries).
pub(crate) fn decode_row_group(
    plan: &ScanPlan,
    metadata: &ArrowReaderMetadata,
    file_size: u64,
    row_group: usize,
    fetched: Vec<(u64, Bytes)>,
) -> Result<Vec<RecordBatch>, BlockError> {
    decode_columns(
        &plan.roots,
        plan.attribute_leaves,
        metadata,
        file_size,
        row_group,
        fetched,
    )
}

/// The predicate rows of one row group from its predicate columns alone (fetched first), or None
/// when they leave no trace possible. Kept for the second step, so the predicate columns (the
/// costly generic attribute list among them) are decoded once.
pub(crate) fn predicate_rows(
    plan: &ScanPlan,
    metadata: &ArrowReaderMetadata,
    file_size: u64,
    row_group: usize,
    fetched: Vec<(u64, Bytes)>,
) -> Result<Option<Vec<Vec<bool>>>, BlockError> {
    let mut rows: Vec<Vec<bool>> = Vec::new();
    for batch in decode_columns(
        &plan.predicate_roots,
        plan.attribute_leaves,
        metadata,
        file_size,
        row_group,
        fetched,
    )? {
        let masks = predicate_masks(plan, &batch)?;
        if rows.is_empty() {
            rows = masks;
        } else {
            for (all, part) in rows.iter_mut().zip(masks) {
                all.extend(part);
            }
        }
    }
    Ok(plan.row_group_may_match(&rows).then_some(rows))
}

/// Stage 1 for a row group whose predicate rows are known: decode `trace_id` and the times
/// (fetched second) and find candidates.
pub(crate) fn scan_row_group_with_rows(
    plan: &ScanPlan,
    metadata: &ArrowReaderMetadata,
    file_size: u64,
    row_group: usize,
    fetched: Vec<(u64, Bytes)>,
    rows: &[Vec<bool>],
    outcome: &mut ScanOutcome,
) -> Result<(), BlockError> {
    let roots = plan.trace_roots();
    let mut offset = 0;
    let batches = decode_columns(&roots, None, metadata, file_size, row_group, fetched)?;
    let whole = whole_row_group(&batches, row_group);
    for batch in batches {
        let count = batch.num_rows();
        let part: Vec<Vec<bool>> = rows
            .iter()
            .map(|mask| mask[offset..offset + count].to_vec())
            .collect();
        scan_with_masks(plan, &batch, &part, whole, outcome)?;
        offset += count;
    }
    Ok(())
}

/// A block's footer with the Arrow schema the scans decode into (strings, resources and scopes
/// as dictionaries): built once when the block is opened, not per row group.
pub(crate) fn with_dictionaries(
    metadata: &ArrowReaderMetadata,
) -> Result<ArrowReaderMetadata, BlockError> {
    let options =
        ArrowReaderOptions::new().with_schema(dictionary_schema(metadata.schema().fields().len()));
    ArrowReaderMetadata::try_new(metadata.metadata().clone(), options).map_err(BlockError::parquet)
}

/// Decodes the projected columns of one fetched row group; `metadata` is `with_dictionaries`'s.
pub(crate) fn decode_columns(
    roots: &[usize],
    attribute_leaves: Option<&[&str]>,
    metadata: &ArrowReaderMetadata,
    file_size: u64,
    row_group: usize,
    fetched: Vec<(u64, Bytes)>,
) -> Result<Vec<RecordBatch>, BlockError> {
    let read_error = BlockError::parquet;
    let descriptor = metadata.metadata().file_metadata().schema_descr();
    let mask = ProjectionMask::leaves(
        descriptor,
        projected_leaves(descriptor, roots, attribute_leaves),
    );
    let rows = metadata.metadata().row_group(row_group).num_rows() as usize;
    // Chunks here were checked against the index's checksums when it has them; a rebuilt
    // index has none, so the decoder may still meet damage.
    crate::guard::decode(|| {
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(
            FetchedChunks {
                file_size,
                chunks: fetched,
            },
            metadata.clone(),
        )
        .with_projection(mask)
        .with_row_groups(vec![row_group])
        .with_batch_size(rows.max(1))
        .build()
        .map_err(read_error)?;
        reader
            .map(|batch| batch.map_err(|error| BlockError::parquet(error.into())))
            .collect()
    })
}

/// Per predicate of the plan's condition, which rows satisfy it.
pub(crate) fn predicate_masks(
    plan: &ScanPlan,
    batch: &RecordBatch,
) -> Result<Vec<Vec<bool>>, BlockError> {
    let rows = batch.num_rows();
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| BlockError::Corrupt(format!("missing column `{name}`")))
    };
    let mut generic_cache: HashMap<String, Vec<Option<Vec<Value<'static>>>>> = HashMap::new();
    let mut predicate_rows: Vec<Vec<bool>> = Vec::new();
    let predicates = plan.condition.predicates();
    for (predicate, sources) in predicates.iter().zip(&plan.leaf_sources) {
        let mut predicate_leaves = Vec::new();
        leaves(predicate, &mut predicate_leaves);
        let mut leaf_rows: Vec<Vec<bool>> = Vec::new();
        for (leaf, leaf_sources) in predicate_leaves.iter().zip(sources) {
            let mut accepted = vec![false; rows];
            for source in leaf_sources {
                let matches = match source {
                    Source::Column(name) => column_matches(leaf, column(name)?)?,
                    Source::ResourceBlob(key) => resource_matches(leaf, key, column("resource")?)?,
                    Source::Generic(key) if plan.attribute_leaves.is_some() => {
                        generic_string_rows(leaf, column("attributes")?, key)?
                    }
                    Source::Generic(key) => {
                        if !generic_cache.contains_key(key) {
                            generic_cache
                                .insert(key.clone(), generic_values(column("attributes")?, key)?);
                        }
                        let values = &generic_cache[key];
                        values
                            .iter()
                            .map(|row| match row {
                                None => leaf.leaf_accepts(&Value::Nil),
                                Some(items) => items.iter().any(|item| leaf.leaf_accepts(item)),
                            })
                            .collect()
                    }
                };
                for (slot, matched) in accepted.iter_mut().zip(matches) {
                    *slot |= matched;
                }
            }
            leaf_rows.push(accepted);
        }
        let mut leaf_iter = leaf_rows.into_iter();
        predicate_rows.push(combine(predicate, &mut leaf_iter, rows));
    }
    Ok(predicate_rows)
}

/// The nested-set numbers of a row group's rows, for conditions with relations.
#[derive(Clone, Copy)]
pub(crate) struct Tree<'a> {
    lefts: &'a [i32],
    rights: &'a [i32],
    parents: &'a [i32],
}

impl<'a> Tree<'a> {
    pub(crate) fn new(lefts: &'a [i32], rights: &'a [i32], parents: &'a [i32]) -> Tree<'a> {
        Tree {
            lefts,
            rights,
            parents,
        }
    }
}

/// A row group's nested-set numbers, decoded (see [`ScanPlan::tree_roots`]).
pub(crate) struct NestedSets {
    lefts: Vec<i32>,
    rights: Vec<i32>,
    parents: Vec<i32>,
}

impl NestedSets {
    /// Decodes the fetched `roots` (the plan's `tree_roots`); None when there are none.
    pub(crate) fn decode(
        roots: &[usize],
        metadata: &ArrowReaderMetadata,
        file_size: u64,
        row_group: usize,
        fetched: Vec<(u64, Bytes)>,
    ) -> Result<Option<NestedSets>, BlockError> {
        if roots.is_empty() {
            return Ok(None);
        }
        let batches = decode_columns(roots, None, metadata, file_size, row_group, fetched)?;
        let column = |name: &str| -> Vec<i32> {
            batches
                .iter()
                .filter_map(|batch| batch.column_by_name(name))
                .flat_map(|array| array.as_primitive::<Int32Type>().values().iter().copied())
                .collect()
        };
        Ok(Some(NestedSets {
            lefts: column("nested_set_left"),
            rights: column("nested_set_right"),
            parents: column("nested_set_parent"),
        }))
    }

    pub(crate) fn tree(&self) -> Tree<'_> {
        Tree::new(&self.lefts, &self.rights, &self.parents)
    }
}

/// Stage 1's judgement of one trace piece (the trace's rows `piece` of a row group): None when
/// the condition cannot hold on it, else whether it is `too_few_here` (a count it needs is
/// short, so only spans elsewhere could make it match).
fn judge_piece(
    plan: &ScanPlan,
    predicate_rows: &[Vec<bool>],
    tree: Option<&Tree>,
    piece: Range<usize>,
) -> Option<bool> {
    let (row, end) = (piece.start, piece.end);
    let counts: Vec<u32> = predicate_rows
        .iter()
        .map(|matches| matches[row..end].iter().filter(|m| **m).count() as u32)
        .collect();
    let found: Vec<bool> = counts.iter().map(|count| *count > 0).collect();
    let connected = tree.is_some_and(|tree| tree.lefts[row..end].iter().all(|left| *left > 0));
    // Only a piece that is one tree from a real root has numbers to trust; a piece with
    // orphans (parents elsewhere) counts relations as possible.
    let related = |relation: Relation, lhs: usize, rhs: usize| {
        let Some(tree) = tree else {
            return true;
        };
        let span = |i: usize| (tree.lefts[i], tree.rights[i], tree.parents[i]);
        let (lhs_rows, rhs_rows) = (
            &predicate_rows[lhs][row..end],
            &predicate_rows[rhs][row..end],
        );
        let pairs = counts[lhs] as usize * counts[rhs] as usize;
        if !connected || pairs > MAX_RELATION_PAIRS {
            return true;
        }
        (row..end).filter(|l| lhs_rows[l - row]).any(|l| {
            (row..end)
                .filter(|r| rhs_rows[r - row])
                .any(|r| relation.holds(span(l), span(r)))
        })
    };
    if !plan.condition.holds_related(&found, &related) {
        return None;
    }
    Some(plan.condition.has_counts() && !plan.condition.holds_counted(&counts, &related))
}

/// Stage 1 over one decoded batch; `whole_row_group` is the row group when the batch holds all
/// of its rows (candidates then carry their location).
fn scan_with_masks(
    plan: &ScanPlan,
    batch: &RecordBatch,
    predicate_rows: &[Vec<bool>],
    whole_row_group: Option<u32>,
    outcome: &mut ScanOutcome,
) -> Result<(), BlockError> {
    let rows = batch.num_rows();
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| BlockError::Corrupt(format!("missing column `{name}`")))
    };
    let trace_ids = column("trace_id")?.as_fixed_size_binary();
    let starts = column("start_unix_nanos")?.as_primitive::<UInt64Type>();
    let durations = column("duration_nanos")?.as_primitive::<UInt64Type>();
    let tree = if plan.condition.has_relations() {
        let numbers = |name: &str| {
            column(name).map(|array| array.as_primitive::<Int32Type>().values().clone())
        };
        Some((
            numbers("nested_set_left")?,
            numbers("nested_set_right")?,
            numbers("nested_set_parent")?,
        ))
    } else {
        None
    };
    outcome.spans_scanned += rows as u64;
    let tree = tree
        .as_ref()
        .map(|(lefts, rights, parents)| Tree::new(lefts, rights, parents));
    let mut row = 0;
    while row < rows {
        let trace_bytes = trace_ids.value(row);
        let mut end = row + 1;
        while end < rows && trace_ids.value(end) == trace_bytes {
            end += 1;
        }
        outcome.traces_scanned += 1;
        let judged = judge_piece(plan, predicate_rows, tree.as_ref(), row..end);
        if let Some(too_few_here) = judged {
            let start = (row..end).map(|r| starts.value(r)).min().unwrap_or(0);
            let finish = (row..end)
                .map(|r| starts.value(r).saturating_add(durations.value(r)))
                .max()
                .unwrap_or(0);
            if start <= plan.time_range.end && finish >= plan.time_range.start {
                let trace_id = TraceId(
                    trace_bytes
                        .try_into()
                        .map_err(|_| BlockError::Corrupt("trace_id width".into()))?,
                );
                let location = whole_row_group.and_then(|row_group| {
                    Some(RowLocation {
                        row_group,
                        first_row: u32::try_from(row).ok()?,
                        rows: u32::try_from(end - row).ok()?,
                    })
                });
                outcome.candidates.push(Candidate {
                    trace_id,
                    start_unix_nanos: start,
                    end_unix_nanos: finish,
                    location,
                    too_few_here,
                });
            }
        }
        row = end;
    }
    Ok(())
}

impl ScanPlan {
    /// The nested-set columns a condition with relations reads per row once a row group's
    /// predicates matched (traces themselves come from the trace table); none without relations.
    pub(crate) fn tree_roots(&self) -> Vec<usize> {
        if !self.condition.has_relations() {
            return Vec::new();
        }
        let file_schema = schema();
        ["nested_set_left", "nested_set_right", "nested_set_parent"]
            .iter()
            .filter_map(|name| file_schema.index_of(name).ok())
            .collect()
    }

    /// Whether every predicate holds for every span (`{ }`, `{ } | count() > 8`): no column
    /// decides anything, and a trace table alone answers stage 1.
    pub(crate) fn predicates_all_true(&self) -> bool {
        !self.condition.has_relations()
            && self
                .condition
                .predicates()
                .iter()
                .all(|predicate| matches!(predicate, SpanPredicate::True))
    }

    /// One all-true row mask per predicate (see [`ScanPlan::predicates_all_true`]).
    pub(crate) fn all_rows(&self, rows: usize) -> Vec<Vec<bool>> {
        vec![vec![true; rows]; self.condition.predicates().len()]
    }
}

/// Stage 1 for a row group whose predicate rows are known, with traces taken from the block's
/// trace table instead of the `trace_id` and time columns: the same candidates, counts and
/// locations [`scan_row_group_with_rows`] finds, without decoding a trace column. The table's
/// entries must tile the row group's rows exactly; anything else is `Corrupt`.
pub(crate) fn scan_row_group_with_table(
    plan: &ScanPlan,
    table: &crate::trace_table::TraceTable,
    row_group: usize,
    row_count: usize,
    rows: &[Vec<bool>],
    tree: Option<Tree>,
    outcome: &mut ScanOutcome,
) -> Result<(), BlockError> {
    if rows.iter().any(|mask| mask.len() != row_count) {
        return Err(BlockError::Corrupt(format!(
            "row group {row_group}: predicate rows do not match its row count"
        )));
    }
    let group = u32::try_from(row_group).map_err(|_| BlockError::Corrupt("row group".into()))?;
    if let Some(tree) = &tree {
        if [tree.lefts, tree.rights, tree.parents]
            .iter()
            .any(|numbers| numbers.len() != row_count)
        {
            return Err(BlockError::Corrupt(format!(
                "row group {row_group}: nested-set numbers do not match its row count"
            )));
        }
    }
    let mut next_row = 0usize;
    for index in table.row_group(group) {
        let entry = table.get(index);
        let (first, end) = (
            entry.first_row as usize,
            entry.first_row as usize + entry.rows as usize,
        );
        if first != next_row || end > row_count || entry.rows == 0 {
            return Err(BlockError::Corrupt(format!(
                "trace table does not match row group {row_group}"
            )));
        }
        next_row = end;
        outcome.traces_scanned += 1;
        let Some(too_few_here) = judge_piece(plan, rows, tree.as_ref(), first..end) else {
            continue;
        };
        if entry.start_unix_nanos > plan.time_range.end
            || entry.end_unix_nanos < plan.time_range.start
        {
            continue;
        }
        outcome.candidates.push(Candidate {
            trace_id: entry.trace_id,
            start_unix_nanos: entry.start_unix_nanos,
            end_unix_nanos: entry.end_unix_nanos,
            location: Some(RowLocation {
                row_group: group,
                first_row: entry.first_row,
                rows: entry.rows,
            }),
            too_few_here,
        });
    }
    if next_row != row_count {
        return Err(BlockError::Corrupt(format!(
            "trace table does not match row group {row_group}"
        )));
    }
    outcome.spans_scanned += row_count as u64;
    Ok(())
}

/// Combines leaf row masks along the predicate tree (leaves consumed in `leaves()` order).
fn combine(
    predicate: &SpanPredicate,
    leaf_rows: &mut impl Iterator<Item = Vec<bool>>,
    rows: usize,
) -> Vec<bool> {
    match predicate {
        SpanPredicate::True => vec![true; rows],
        SpanPredicate::And(parts) => {
            let masks: Vec<Vec<bool>> = parts
                .iter()
                .map(|part| combine(part, leaf_rows, rows))
                .collect();
            (0..rows)
                .map(|row| masks.iter().all(|mask| mask[row]))
                .collect()
        }
        SpanPredicate::Or(parts) => {
            let masks: Vec<Vec<bool>> = parts
                .iter()
                .map(|part| combine(part, leaf_rows, rows))
                .collect();
            (0..rows)
                .map(|row| masks.iter().any(|mask| mask[row]))
                .collect()
        }
        _ => leaf_rows.next().unwrap_or_else(|| vec![true; rows]),
    }
}

fn column_value(name: &str, raw: i64) -> Value<'static> {
    match name {
        "kind" => Value::Kind(SpanKind::from_otlp(raw as i32)),
        "status_code" => Value::Status(StatusCode::from_otlp(raw as i32)),
        "duration_nanos" => Value::Duration(raw),
        _ => Value::Int(raw),
    }
}

/// A leaf over a dedicated or intrinsic column.
fn column_matches(leaf: &SpanPredicate, array: &ArrayRef) -> Result<Vec<bool>, BlockError> {
    let nil = leaf.leaf_accepts(&Value::Nil);
    let rows = array.len();
    match array.data_type() {
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_dictionary::<Int32Type>();
            let values = dictionary.values().as_string::<i32>();
            let table: Vec<bool> = (0..values.len())
                .map(|index| leaf.leaf_accepts(&Value::Str(values.value(index).into())))
                .collect();
            // The usual answer of a selective filter: no value of the row group matches.
            if !nil && !table.contains(&true) {
                return Ok(vec![false; rows]);
            }
            let keys = dictionary.keys();
            Ok((0..rows)
                .map(|row| {
                    if keys.is_null(row) {
                        nil
                    } else {
                        table
                            .get(keys.value(row) as usize)
                            .copied()
                            .unwrap_or(false)
                    }
                })
                .collect())
        }
        DataType::Utf8 => {
            let strings = array.as_string::<i32>();
            Ok((0..rows)
                .map(|row| {
                    if strings.is_null(row) {
                        nil
                    } else {
                        leaf.leaf_accepts(&Value::Str(strings.value(row).into()))
                    }
                })
                .collect())
        }
        DataType::Int32 => {
            // kind and status: six possible values, evaluated once each.
            let name = match leaf {
                SpanPredicate::Compare {
                    field: Field::Intrinsic(Intrinsic::Kind),
                    ..
                } => "kind",
                _ => "status_code",
            };
            let table: Vec<bool> = (0..8)
                .map(|code| leaf.leaf_accepts(&column_value(name, code)))
                .collect();
            let codes = array.as_primitive::<Int32Type>();
            Ok((0..rows)
                .map(|row| {
                    table
                        .get(codes.value(row).clamp(0, 7) as usize)
                        .copied()
                        .unwrap_or(false)
                })
                .collect())
        }
        DataType::UInt64 => {
            let numbers = array.as_primitive::<UInt64Type>();
            if let SpanPredicate::Compare { op, value, .. } = leaf {
                // The hot path for duration filters: compare raw integers.
                if let Some(bound) = match value {
                    Static::Duration(nanos) | Static::Int(nanos) => Some(*nanos),
                    _ => None,
                } {
                    use andante_traceql::ast::BinaryOp;
                    let values = numbers.values();
                    let test = |v: u64| {
                        let v = v as i64;
                        match op {
                            BinaryOp::Gt => v > bound,
                            BinaryOp::Gte => v >= bound,
                            BinaryOp::Lt => v < bound,
                            BinaryOp::Lte => v <= bound,
                            BinaryOp::Eq => v == bound,
                            BinaryOp::Neq => v != bound,
                            _ => false,
                        }
                    };
                    return Ok(values.iter().map(|v| test(*v)).collect());
                }
            }
            Ok((0..rows)
                .map(|row| leaf.leaf_accepts(&Value::Duration(numbers.value(row) as i64)))
                .collect())
        }
        DataType::Int64 => {
            let numbers = array.as_primitive::<Int64Type>();
            Ok((0..rows)
                .map(|row| {
                    if numbers.is_null(row) {
                        nil
                    } else {
                        leaf.leaf_accepts(&Value::Int(numbers.value(row)))
                    }
                })
                .collect())
        }
        other => Err(BlockError::Corrupt(format!(
            "unexpected column type {other}"
        ))),
    }
}

/// The resource of a `resource` cell (a `ResourceSpans` carrier without scope spans).
pub(crate) fn decode_resource(bytes: &[u8]) -> Option<Resource> {
    ResourceSpans::decode(bytes)
        .ok()
        .map(|carrier| carrier.resource.unwrap_or_default())
}

/// A leaf over a resource attribute: each distinct resource decoded once.
fn resource_matches(
    leaf: &SpanPredicate,
    key: &str,
    array: &ArrayRef,
) -> Result<Vec<bool>, BlockError> {
    let accept = |bytes: &[u8]| -> bool {
        match decode_resource(bytes) {
            Some(resource) => match resource
                .attributes
                .iter()
                .find(|attribute| attribute.key == key)
                .and_then(|a| a.value.as_ref())
            {
                Some(value) => leaf.leaf_accepts(&Value::from_any(value)),
                None => leaf.leaf_accepts(&Value::Nil),
            },
            None => true,
        }
    };
    let rows = array.len();
    match array.data_type() {
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_dictionary::<Int32Type>();
            let values = dictionary.values().as_binary::<i32>();
            let table: Vec<bool> = (0..values.len())
                .map(|index| accept(values.value(index)))
                .collect();
            let keys = dictionary.keys();
            Ok((0..rows)
                .map(|row| table.get(keys.value(row) as usize).copied().unwrap_or(true))
                .collect())
        }
        _ => {
            let blobs = array.as_binary::<i32>();
            Ok((0..rows).map(|row| accept(blobs.value(row))).collect())
        }
    }
}

/// Per entry of a string leaf (plain or dictionary), whether `accept` holds (false for null);
/// a dictionary is tested once per distinct value.
fn string_entries(array: &ArrayRef, accept: impl Fn(&str) -> bool) -> Vec<bool> {
    match array.data_type() {
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_dictionary::<Int32Type>();
            let values = dictionary.values().as_string::<i32>();
            let table: Vec<bool> = (0..values.len())
                .map(|index| accept(values.value(index)))
                .collect();
            let keys = dictionary.keys();
            (0..array.len())
                .map(|entry| {
                    !keys.is_null(entry)
                        && table
                            .get(keys.value(entry) as usize)
                            .copied()
                            .unwrap_or(false)
                })
                .collect()
        }
        _ => {
            let strings = array.as_string::<i32>();
            (0..array.len())
                .map(|entry| !strings.is_null(entry) && accept(strings.value(entry)))
                .collect()
        }
    }
}

/// A string-only leaf (`accepts_only_strings`) over the generic list read as `key`, `str` and
/// `other`: a row matches when an entry with the key holds an accepted string, or an array
/// (in `other`) the leaf accepts. No value is copied; a row group whose key dictionary lacks
/// the key answers at once.
fn generic_string_rows(
    leaf: &SpanPredicate,
    array: &ArrayRef,
    wanted: &str,
) -> Result<Vec<bool>, BlockError> {
    let list = array.as_list::<i32>();
    let fields = list.values().as_struct();
    let leaf_column = |name: &str| {
        fields.column_by_name(name).ok_or_else(|| {
            BlockError::Corrupt(format!("generic attribute leaf `{name}` was not read"))
        })
    };
    let key_is_wanted = string_entries(leaf_column("key")?, |key| key == wanted);
    if !key_is_wanted.contains(&true) {
        return Ok(vec![false; list.len()]);
    }
    let string_accepted = string_entries(leaf_column("str")?, |text| {
        leaf.leaf_accepts(&Value::Str(text.into()))
    });
    let others = leaf_column("other")?.as_binary::<i32>();
    let other_accepted = |entry: usize| {
        !others.is_null(entry)
            && andante_model::otlp::common::v1::AnyValue::decode(others.value(entry))
                .is_ok_and(|any| leaf.leaf_accepts(&Value::from_any(&any)))
    };
    let offsets = list.value_offsets();
    Ok((0..list.len())
        .map(|row| {
            (offsets[row] as usize..offsets[row + 1] as usize).any(|entry| {
                key_is_wanted[entry] && (string_accepted[entry] || other_accepted(entry))
            })
        })
        .collect())
}

/// The values of one key in the generic attribute list, per row (None: key absent).
pub(crate) fn generic_values(
    array: &ArrayRef,
    wanted: &str,
) -> Result<Vec<Option<Vec<Value<'static>>>>, BlockError> {
    let list = array.as_list::<i32>();
    let fields = list.values().as_struct();
    let keys = fields.column(0);
    let types = fields.column(1).as_primitive::<UInt8Type>();
    let strings = fields.column(2);
    let ints = fields.column(3).as_primitive::<Int64Type>();
    let doubles = fields.column(4).as_primitive::<Float64Type>();
    let bools = fields.column(5).as_boolean();
    let others = fields.column(6).as_binary::<i32>();
    let key_at = string_reader(keys);
    let string_at = string_reader(strings);
    let offsets = list.value_offsets();
    let mut out = Vec::with_capacity(list.len());
    for row in 0..list.len() {
        let mut found: Option<Vec<Value<'static>>> = None;
        for entry in offsets[row] as usize..offsets[row + 1] as usize {
            if key_at(entry) != Some(wanted) {
                continue;
            }
            let value = match types.value(entry) {
                ATTR_STRING => Value::Str(string_at(entry).unwrap_or("").to_owned().into()),
                ATTR_INT => Value::Int(ints.value(entry)),
                ATTR_DOUBLE => Value::Float(doubles.value(entry)),
                ATTR_BOOL => Value::Bool(bools.value(entry)),
                _ => match andante_model::otlp::common::v1::AnyValue::decode(others.value(entry)) {
                    Ok(any) => Value::from_any(&any).into_owned(),
                    Err(_) => Value::Nil,
                },
            };
            found.get_or_insert_with(Vec::new).push(value);
        }
        out.push(found);
    }
    Ok(out)
}

/// Reads a string column that may be plain or dictionary-encoded.
pub(crate) fn string_reader<'a>(array: &'a ArrayRef) -> Box<dyn Fn(usize) -> Option<&'a str> + 'a> {
    match array.data_type() {
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_dictionary::<Int32Type>();
            let values = dictionary.values().as_string::<i32>();
            let keys = dictionary.keys();
            Box::new(move |index| {
                (!keys.is_null(index)).then(|| values.value(keys.value(index) as usize))
            })
        }
        _ => {
            let strings = array.as_string::<i32>();
            Box::new(move |index| (!strings.is_null(index)).then(|| strings.value(index)))
        }
    }
}
