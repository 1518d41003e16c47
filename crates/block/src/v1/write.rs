//! Encoding traces into an `andante-v1` Parquet file.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use andante_model::otlp::common::v1::{any_value, KeyValue};
use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use andante_model::TraceId;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder,
    Int64Builder, StringBuilder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue as FileKeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use prost::Message;

use super::schema::{
    attribute_fields, attribute_item_field, schema, DedicatedSlots, ATTR_BOOL, ATTR_DOUBLE,
    ATTR_INT, ATTR_OTHER, ATTR_STRING, DEDICATED_RESOURCE_STRINGS, DEDICATED_SLOTS,
    DEDICATED_SLOTS_KEY, DEDICATED_SPAN_INTS, DEDICATED_SPAN_STRINGS,
};
use crate::nested_set::nested_set;
use crate::trace_table::TraceEntry;
use crate::{BlockError, Trace};

#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// A row group is closed at the first trace boundary after this many spans.
    pub row_group_spans: usize,
    pub zstd_level: i32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            row_group_spans: 32 * 1024,
            zstd_level: 3,
        }
    }
}

/// The encoded file and what the index needs to know about it.
pub struct Encoded {
    pub parquet: Vec<u8>,
    /// Per row group, its attribute keys and values (index v4).
    pub row_group_values: Vec<crate::values::ValueFilter>,
    pub row_group_ranges: Vec<(TraceId, TraceId)>,
    pub span_count: u64,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Keys with their own column (fixed or slot) that some span still stored in the generic
    /// list (a value of another type, or a repeated key): `BlockMeta::dedicated_keys_in_generic`.
    pub dedicated_keys_in_generic: BTreeSet<String>,
    /// One entry per trace, for the block's trace table (`crate::trace_table`).
    pub traces: Vec<TraceEntry>,
    /// Per row group, its span counts (`crate::rollup`), None where too many cells.
    pub row_group_rollups: Vec<Option<crate::rollup::RowGroupRollup>>,
}

fn writer_properties(options: WriteOptions) -> Result<WriterProperties, BlockError> {
    let zstd =
        ZstdLevel::try_new(options.zstd_level).map_err(|e| BlockError::Encode(e.to_string()))?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        // Pages small enough that a trace-by-ID read decodes a few pages of a row group, large
        // enough that zstd context set-up (measured at ~10 % of encode and decode CPU with
        // 2 048-row pages) stays small.
        .set_data_page_row_count_limit(8192);
    // Random IDs defeat dictionaries; timestamps and durations suit delta encoding.
    for column in ["span_id", "parent_span_id"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    for column in ["start_unix_nanos", "duration_nanos"] {
        builder = builder
            .set_column_dictionary_enabled(ColumnPath::from(column), false)
            .set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
    }
    Ok(builder.build())
}

/// The spans of a trace.
pub fn span_count(trace: &Trace) -> usize {
    trace
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

/// Cuts a stream of traces into row groups: a group closes at the first trace boundary after
/// `row_group_spans` spans. Lazy, so a streaming writer holds one group at a time.
pub fn groups_by_size(
    traces: impl IntoIterator<Item = Trace>,
    row_group_spans: usize,
) -> impl Iterator<Item = Vec<Trace>> {
    let mut traces = traces.into_iter().peekable();
    std::iter::from_fn(move || {
        traces.peek()?;
        let (mut group, mut spans) = (Vec::new(), 0);
        while spans < row_group_spans {
            let Some(trace) = traces.next() else { break };
            spans += span_count(&trace);
            group.push(trace);
        }
        Some(group)
    })
}

/// One row group ready to be written: its rows and what the index and meta need of them.
pub(crate) struct RowGroupOut {
    pub batch: RecordBatch,
    pub values: crate::values::ValueFilter,
    pub rollup: Option<crate::rollup::RowGroupRollup>,
    /// Its traces with rows, in row order (`row_group` is set when the group is written).
    pub traces: Vec<TraceEntry>,
    /// First and last trace ID of the group, traces without rows included.
    pub range: Option<(TraceId, TraceId)>,
    pub min_start: u64,
    pub max_end: u64,
    pub dedicated_keys_in_generic: BTreeSet<String>,
}

/// Writes row groups into one Parquet file, one at a time, and gathers the index's facts.
pub(crate) struct BlockWriter {
    writer: ArrowWriter<Vec<u8>>,
    encoded: Encoded,
}

impl BlockWriter {
    /// A file whose slot columns hold `slots` (None: no slot metadata, for a file with no rows).
    pub(crate) fn new(
        options: WriteOptions,
        slots: Option<&DedicatedSlots>,
    ) -> Result<BlockWriter, BlockError> {
        let mut writer =
            ArrowWriter::try_new(Vec::new(), schema(), Some(writer_properties(options)?))
                .map_err(|error| BlockError::Encode(error.to_string()))?;
        if let Some(slots) = slots {
            writer.append_key_value_metadata(FileKeyValue::new(
                DEDICATED_SLOTS_KEY.to_owned(),
                slots.metadata_value(),
            ));
        }
        Ok(BlockWriter {
            writer,
            encoded: Encoded {
                parquet: Vec::new(),
                row_group_values: Vec::new(),
                row_group_ranges: Vec::new(),
                span_count: 0,
                start_unix_nanos: u64::MAX,
                end_unix_nanos: 0,
                dedicated_keys_in_generic: BTreeSet::new(),
                traces: Vec::new(),
                row_group_rollups: Vec::new(),
            },
        })
    }

    pub(crate) fn write(&mut self, mut group: RowGroupOut) -> Result<(), BlockError> {
        let encoded = &mut self.encoded;
        let row_group = encoded.row_group_ranges.len() as u32;
        encoded.traces.extend(
            group
                .traces
                .into_iter()
                .map(|entry| TraceEntry { row_group, ..entry }),
        );
        encoded.row_group_values.push(group.values);
        encoded.row_group_rollups.push(group.rollup);
        encoded.span_count += group.batch.num_rows() as u64;
        encoded.start_unix_nanos = encoded.start_unix_nanos.min(group.min_start);
        encoded.end_unix_nanos = encoded.end_unix_nanos.max(group.max_end);
        encoded
            .dedicated_keys_in_generic
            .append(&mut group.dedicated_keys_in_generic);
        self.writer
            .write(&group.batch)
            .map_err(|error| BlockError::Encode(error.to_string()))?;
        self.writer
            .flush()
            .map_err(|error| BlockError::Encode(error.to_string()))?;
        encoded.row_group_ranges.extend(group.range);
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Encoded, BlockError> {
        let mut encoded = self.encoded;
        encoded.parquet = self
            .writer
            .into_inner()
            .map_err(|error| BlockError::Encode(error.to_string()))?;
        Ok(encoded)
    }
}

/// Encodes row groups of traces (each trace already merged; within a group, strictly
/// increasing trace IDs; no ID in two groups) as one Parquet file, a group per row group.
/// Groups are taken one at a time, so memory holds one row group, not the block; `on_trace`
/// sees every trace ID (the caller fills the Bloom filter from it).
pub fn encode_parquet(
    groups: impl IntoIterator<Item = Vec<Trace>>,
    options: WriteOptions,
    mut on_trace: impl FnMut(&TraceId),
) -> Result<Encoded, BlockError> {
    let mut groups = groups.into_iter().filter(|group| !group.is_empty());
    let Some(first) = groups.next() else {
        return BlockWriter::new(options, None)?.finish();
    };
    // Slots are chosen from the first row group's spans, so they are fixed before a row is written.
    let slots = Arc::new(choose_slots(&first));
    let mut writer = BlockWriter::new(options, Some(&slots))?;
    for group_traces in std::iter::once(first).chain(groups) {
        let mut group = Columns::new(slots.clone());
        let mut range: Option<(TraceId, TraceId)> = None;
        let mut values = crate::values::ValueFilterBuilder::new();
        let mut traces = Vec::with_capacity(group_traces.len());
        for trace in &group_traces {
            values.add_trace(trace);
            debug_assert!(
                range.is_none_or(|(_, last)| last < trace.trace_id),
                "a row group's traces must be sorted and unique"
            );
            on_trace(&trace.trace_id);
            let range = range.get_or_insert((trace.trace_id, trace.trace_id));
            range.1 = trace.trace_id;
            if let Some(entry) = group.push_trace(trace) {
                traces.push(entry);
            }
        }
        drop(group_traces);
        writer.write(RowGroupOut {
            values: values.finish(),
            rollup: std::mem::take(&mut group.rollup).finish(),
            traces,
            range,
            min_start: group.min_start,
            max_end: group.max_end,
            dedicated_keys_in_generic: std::mem::take(&mut group.dedicated_keys_in_generic),
            batch: group.finish()?,
        })?;
    }
    writer.finish()
}

/// Share of the first row group's spans a key must appear on to earn a slot: rarer keys cost a
/// mostly-null column for little gain, and the generic list serves them.
const SLOT_MIN_SHARE_PERCENT: usize = 1;

/// The string span attribute keys without a fixed column that appear on the most spans (at
/// least [`SLOT_MIN_SHARE_PERCENT`]), most frequent first, ties by name, up to the slot count.
fn choose_slots(traces: &[Trace]) -> DedicatedSlots {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut spans = 0;
    for span in traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
    {
        spans += 1;
        for attribute in &span.attributes {
            let is_string = matches!(
                attribute.value.as_ref().and_then(|v| v.value.as_ref()),
                Some(any_value::Value::StringValue(_))
            );
            if is_string
                && !DEDICATED_SPAN_STRINGS
                    .iter()
                    .any(|(key, _)| *key == attribute.key)
            {
                *counts.entry(attribute.key.as_str()).or_default() += 1;
            }
        }
    }
    let mut ranked: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(_, count)| count * 100 >= spans * SLOT_MIN_SHARE_PERCENT)
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    DedicatedSlots::new(
        ranked
            .into_iter()
            .take(DEDICATED_SLOTS.len())
            .map(|(key, _)| key.to_owned())
            .collect(),
    )
}

/// Column builders for one row group.
pub(crate) struct Columns {
    rows: usize,
    min_start: u64,
    max_end: u64,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent_span_id: FixedSizeBinaryBuilder,
    name: StringBuilder,
    kind: Int32Builder,
    start: UInt64Builder,
    duration: UInt64Builder,
    status_code: Int32Builder,
    status_message: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    left: Int32Builder,
    right: Int32Builder,
    parent: Int32Builder,
    child_count: Int32Builder,
    service_name: StringBuilder,
    resource: BinaryBuilder,
    scope: BinaryBuilder,
    dedicated_resource: Vec<StringBuilder>,
    dedicated_span_strings: Vec<StringBuilder>,
    dedicated_span_ints: Vec<Int64Builder>,
    slots: Arc<DedicatedSlots>,
    slot_columns: Vec<StringBuilder>,
    attr_offsets: Vec<i32>,
    attr_count: usize,
    attr_key: StringBuilder,
    attr_type: UInt8Builder,
    attr_str: StringBuilder,
    attr_int: Int64Builder,
    attr_double: Float64Builder,
    attr_bool: BooleanBuilder,
    attr_other: BinaryBuilder,
    dropped_attributes: UInt32Builder,
    events_links: BinaryBuilder,
    dedicated_keys_in_generic: BTreeSet<String>,
    /// The row group's span counts (`crate::rollup`), from the values written here.
    rollup: crate::rollup::RowGroupRollupBuilder,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            rows: 0,
            min_start: u64::MAX,
            max_end: 0,
            trace_id: FixedSizeBinaryBuilder::new(16),
            span_id: FixedSizeBinaryBuilder::new(8),
            parent_span_id: FixedSizeBinaryBuilder::new(8),
            name: StringBuilder::new(),
            kind: Int32Builder::new(),
            start: UInt64Builder::new(),
            duration: UInt64Builder::new(),
            status_code: Int32Builder::new(),
            status_message: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::new(),
            left: Int32Builder::new(),
            right: Int32Builder::new(),
            parent: Int32Builder::new(),
            child_count: Int32Builder::new(),
            service_name: StringBuilder::new(),
            resource: BinaryBuilder::new(),
            scope: BinaryBuilder::new(),
            dedicated_resource: DEDICATED_RESOURCE_STRINGS
                .iter()
                .map(|_| StringBuilder::new())
                .collect(),
            dedicated_span_strings: DEDICATED_SPAN_STRINGS
                .iter()
                .map(|_| StringBuilder::new())
                .collect(),
            dedicated_span_ints: DEDICATED_SPAN_INTS
                .iter()
                .map(|_| Int64Builder::new())
                .collect(),
            slots: Arc::default(),
            slot_columns: DEDICATED_SLOTS
                .iter()
                .map(|_| StringBuilder::new())
                .collect(),
            attr_offsets: vec![0],
            attr_count: 0,
            attr_key: StringBuilder::new(),
            attr_type: UInt8Builder::new(),
            attr_str: StringBuilder::new(),
            attr_int: Int64Builder::new(),
            attr_double: Float64Builder::new(),
            attr_bool: BooleanBuilder::new(),
            attr_other: BinaryBuilder::new(),
            dropped_attributes: UInt32Builder::new(),
            events_links: BinaryBuilder::new(),
            dedicated_keys_in_generic: BTreeSet::new(),
            rollup: crate::rollup::RowGroupRollupBuilder::default(),
        }
    }
}

fn string_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(text) => Some(text.as_str()),
            _ => None,
        }
    })
}

/// One resource (or scope) of a trace: its encoded bytes and its dedicated values.
struct EncodedResource {
    bytes: Vec<u8>,
    service_name: String,
    dedicated: Vec<Option<String>>,
}

impl Columns {
    pub(crate) fn new(slots: Arc<DedicatedSlots>) -> Columns {
        Columns {
            slots,
            ..Columns::default()
        }
    }

    /// Appends a trace's spans; returns its trace table entry (`row_group` left 0) with the
    /// earliest start and latest end as stage 1 would compute them from the rows (an end before
    /// its start counts as the start), or None for a trace without spans.
    pub(crate) fn push_trace(&mut self, trace: &Trace) -> Option<TraceEntry> {
        let first_row = self.rows;
        let (mut trace_start, mut trace_end) = (u64::MAX, 0u64);
        let resources: Vec<EncodedResource> =
            trace.resource_spans.iter().map(encode_resource).collect();
        let scopes: Vec<Vec<Vec<u8>>> = trace
            .resource_spans
            .iter()
            .map(|resource| resource.scope_spans.iter().map(encode_scope).collect())
            .collect();
        let mut spans: Vec<(usize, usize, &Span)> = Vec::new();
        for (r, resource) in trace.resource_spans.iter().enumerate() {
            for (s, scope) in resource.scope_spans.iter().enumerate() {
                spans.extend(scope.spans.iter().map(|span| (r, s, span)));
            }
        }
        spans.sort_by_key(|(r, s, span)| (*r, *s, span.start_time_unix_nano));
        let links: Vec<(&[u8], &[u8])> = spans
            .iter()
            .map(|(_, _, span)| (span.span_id.as_slice(), span.parent_span_id.as_slice()))
            .collect();
        let numbers = nested_set(&links);
        for ((r, s, span), number) in spans.into_iter().zip(numbers) {
            self.rows += 1;
            trace_start = trace_start.min(span.start_time_unix_nano);
            trace_end = trace_end.max(span.end_time_unix_nano.max(span.start_time_unix_nano));
            self.min_start = self.min_start.min(span.start_time_unix_nano);
            self.max_end = self.max_end.max(span.end_time_unix_nano);
            self.push_fixed_ids(trace, span);
            self.name.append_value(&span.name);
            self.kind.append_value(span.kind);
            self.start.append_value(span.start_time_unix_nano);
            let duration = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano);
            self.duration.append_value(duration);
            let status = span.status.clone().unwrap_or_default();
            self.status_code.append_value(status.code);
            self.status_message
                .append_option((!status.message.is_empty()).then_some(status.message.as_str()));
            self.trace_state
                .append_option((!span.trace_state.is_empty()).then_some(span.trace_state.as_str()));
            self.flags.append_value(span.flags);
            self.left.append_value(number.left);
            self.right.append_value(number.right);
            self.parent.append_value(number.parent);
            self.child_count.append_value(number.child_count);
            let resource = &resources[r];
            self.rollup.add(
                &resource.service_name,
                &span.name,
                status.code,
                span.kind,
                span.start_time_unix_nano,
                duration,
            );
            self.service_name.append_value(&resource.service_name);
            self.resource.append_value(&resource.bytes);
            self.scope.append_value(&scopes[r][s]);
            for (builder, value) in self.dedicated_resource.iter_mut().zip(&resource.dedicated) {
                builder.append_option(value.as_deref());
            }
            self.push_attributes(span);
            let has_events_links = !span.events.is_empty()
                || !span.links.is_empty()
                || span.dropped_events_count != 0
                || span.dropped_links_count != 0;
            if has_events_links {
                self.events_links.append_value(encode_events_links(span));
            } else {
                self.events_links.append_null();
            }
        }
        (self.rows > first_row).then(|| TraceEntry {
            trace_id: trace.trace_id,
            row_group: 0,
            first_row: first_row as u32,
            rows: (self.rows - first_row) as u32,
            start_unix_nanos: trace_start,
            end_unix_nanos: trace_end,
        })
    }

    fn push_fixed_ids(&mut self, trace: &Trace, span: &Span) {
        // Validation guarantees the lengths; a wrong one here would be a bug upstream.
        let _ = self.trace_id.append_value(trace.trace_id.0);
        let mut span_id = [0u8; 8];
        if span.span_id.len() == 8 {
            span_id.copy_from_slice(&span.span_id);
        }
        let _ = self.span_id.append_value(span_id);
        if span.parent_span_id.len() == 8 {
            let _ = self.parent_span_id.append_value(&span.parent_span_id);
        } else {
            self.parent_span_id.append_null();
        }
    }

    fn push_attributes(&mut self, span: &Span) {
        let mut dedicated_strings: Vec<Option<&str>> = vec![None; DEDICATED_SPAN_STRINGS.len()];
        let mut dedicated_ints: Vec<Option<i64>> = vec![None; DEDICATED_SPAN_INTS.len()];
        let mut slot_values: [Option<&str>; DEDICATED_SLOTS.len()] = [None; DEDICATED_SLOTS.len()];
        for attribute in &span.attributes {
            let value = attribute
                .value
                .as_ref()
                .and_then(|value| value.value.as_ref());
            match value {
                Some(any_value::Value::StringValue(text)) => {
                    if let Some(slot) = DEDICATED_SPAN_STRINGS
                        .iter()
                        .position(|(key, _)| *key == attribute.key)
                    {
                        if dedicated_strings[slot].is_none() {
                            dedicated_strings[slot] = Some(text);
                            continue;
                        }
                    }
                    if let Some(slot) = self.slots.position(&attribute.key) {
                        if slot_values[slot].is_none() {
                            slot_values[slot] = Some(text);
                            continue;
                        }
                    }
                }
                Some(any_value::Value::IntValue(number)) => {
                    if let Some(slot) = DEDICATED_SPAN_INTS
                        .iter()
                        .position(|(key, _)| *key == attribute.key)
                    {
                        if dedicated_ints[slot].is_none() {
                            dedicated_ints[slot] = Some(*number);
                            continue;
                        }
                    }
                }
                _ => {}
            }
            let dedicated = self.slots.has_own_column(&attribute.key);
            if dedicated && !self.dedicated_keys_in_generic.contains(&attribute.key) {
                self.dedicated_keys_in_generic.insert(attribute.key.clone());
            }
            self.push_generic_attribute(attribute);
        }
        for (builder, value) in self
            .dedicated_span_strings
            .iter_mut()
            .zip(dedicated_strings)
        {
            builder.append_option(value);
        }
        for (builder, value) in self.dedicated_span_ints.iter_mut().zip(dedicated_ints) {
            builder.append_option(value);
        }
        for (builder, value) in self.slot_columns.iter_mut().zip(slot_values) {
            builder.append_option(value);
        }
        self.attr_offsets.push(self.attr_count as i32);
        self.dropped_attributes
            .append_value(span.dropped_attributes_count);
    }

    fn push_generic_attribute(&mut self, attribute: &KeyValue) {
        self.attr_count += 1;
        self.attr_key.append_value(&attribute.key);
        let value = attribute
            .value
            .as_ref()
            .and_then(|value| value.value.as_ref());
        let (kind, text, int, double, boolean, other) = match value {
            Some(any_value::Value::StringValue(text)) => {
                (ATTR_STRING, Some(text.as_str()), None, None, None, None)
            }
            Some(any_value::Value::IntValue(number)) => {
                (ATTR_INT, None, Some(*number), None, None, None)
            }
            Some(any_value::Value::DoubleValue(number)) => {
                (ATTR_DOUBLE, None, None, Some(*number), None, None)
            }
            Some(any_value::Value::BoolValue(flag)) => {
                (ATTR_BOOL, None, None, None, Some(*flag), None)
            }
            _ => (
                ATTR_OTHER,
                None,
                None,
                None,
                None,
                attribute.value.as_ref().map(|v| v.encode_to_vec()),
            ),
        };
        self.attr_type.append_value(kind);
        self.attr_str.append_option(text);
        self.attr_int.append_option(int);
        self.attr_double.append_option(double);
        self.attr_bool.append_option(boolean);
        self.attr_other.append_option(other);
    }

    /// Keys with their own column that some pushed span stored in the generic list.
    pub(crate) fn take_dedicated_keys_in_generic(&mut self) -> BTreeSet<String> {
        std::mem::take(&mut self.dedicated_keys_in_generic)
    }

    pub(crate) fn finish(mut self) -> Result<RecordBatch, BlockError> {
        let attribute_struct = StructArray::try_new(
            attribute_fields(),
            vec![
                Arc::new(self.attr_key.finish()) as ArrayRef,
                Arc::new(self.attr_type.finish()),
                Arc::new(self.attr_str.finish()),
                Arc::new(self.attr_int.finish()),
                Arc::new(self.attr_double.finish()),
                Arc::new(self.attr_bool.finish()),
                Arc::new(self.attr_other.finish()),
            ],
            None,
        )
        .map_err(|error| BlockError::Encode(error.to_string()))?;
        let attributes = ListArray::try_new(
            attribute_item_field(),
            OffsetBuffer::new(ScalarBuffer::from(std::mem::take(&mut self.attr_offsets))),
            Arc::new(attribute_struct),
            None,
        )
        .map_err(|error| BlockError::Encode(error.to_string()))?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.left.finish()),
            Arc::new(self.right.finish()),
            Arc::new(self.parent.finish()),
            Arc::new(self.child_count.finish()),
            Arc::new(self.service_name.finish()),
            Arc::new(self.resource.finish()),
            Arc::new(self.scope.finish()),
        ];
        columns.extend(
            self.dedicated_resource
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend(
            self.dedicated_span_strings
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.extend(
            self.dedicated_span_ints
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        columns.push(Arc::new(attributes));
        columns.push(Arc::new(self.dropped_attributes.finish()));
        columns.push(Arc::new(self.events_links.finish()));
        columns.extend(
            self.slot_columns
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef),
        );
        RecordBatch::try_new(schema(), columns)
            .map_err(|error| BlockError::Encode(error.to_string()))
    }
}

fn encode_resource(resource_spans: &ResourceSpans) -> EncodedResource {
    let attributes = resource_spans
        .resource
        .as_ref()
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default();
    EncodedResource {
        bytes: encode_without_children(
            resource_spans.resource.as_ref(),
            &resource_spans.schema_url,
        ),
        service_name: string_attribute(attributes, "service.name")
            .unwrap_or_default()
            .to_owned(),
        dedicated: DEDICATED_RESOURCE_STRINGS
            .iter()
            .map(|(key, _)| string_attribute(attributes, key).map(str::to_owned))
            .collect(),
    }
}

fn encode_scope(scope_spans: &ScopeSpans) -> Vec<u8> {
    encode_without_children(scope_spans.scope.as_ref(), &scope_spans.schema_url)
}

/// The bytes of a `Span` holding only `span`'s events, links and their dropped counts (fields
/// 11 to 14), as prost writes such a copy, without cloning the events and links into it.
fn encode_events_links(span: &Span) -> Vec<u8> {
    use prost::encoding::{message, uint32};
    let mut bytes = Vec::with_capacity(
        message::encoded_len_repeated(11, &span.events)
            + message::encoded_len_repeated(13, &span.links)
            // The two dropped counts: a key byte and at most five varint bytes each.
            + 12,
    );
    message::encode_repeated(11, &span.events, &mut bytes);
    if span.dropped_events_count != 0 {
        uint32::encode(12, &span.dropped_events_count, &mut bytes);
    }
    message::encode_repeated(13, &span.links, &mut bytes);
    if span.dropped_links_count != 0 {
        uint32::encode(14, &span.dropped_links_count, &mut bytes);
    }
    bytes
}

/// The bytes of a `ResourceSpans` without its scope spans, or of a `ScopeSpans` without its
/// spans: both messages are field 1 (the resource or scope), the children at field 2, and
/// `schema_url` at field 3. Encoding the two fields in place gives the bytes prost gives for a
/// copy with the children left empty, without cloning every attribute first (that clone was
/// 6 % of block-writing CPU, session 28).
fn encode_without_children(head: Option<&impl Message>, schema_url: &str) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
    let url_len = match schema_url.is_empty() {
        true => 0,
        false => key_len(3) + encoded_len_varint(schema_url.len() as u64) + schema_url.len(),
    };
    let head_len = head.map_or(0, |head| prost::encoding::message::encoded_len(1, head));
    let mut bytes = Vec::with_capacity(head_len + url_len);
    if let Some(head) = head {
        prost::encoding::message::encode(1, head, &mut bytes);
    }
    if !schema_url.is_empty() {
        encode_key(3, WireType::LengthDelimited, &mut bytes);
        encode_varint(schema_url.len() as u64, &mut bytes);
        bytes.extend_from_slice(schema_url.as_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::super::read::string_value as attribute;
    use super::*;
    use andante_model::otlp::common::v1::InstrumentationScope;
    use andante_model::otlp::resource::v1::Resource;
    use andante_model::otlp::trace::v1::span::{Event, Link};

    /// The in-place encodings write exactly what prost writes for a copy with the children (or
    /// every other span field) left empty: blocks written before and after read alike.
    #[test]
    fn in_place_encodings_match_prost_copies() {
        let resources = [
            None,
            Some(Resource::default()),
            Some(Resource {
                attributes: vec![
                    attribute("service.name", "a"),
                    attribute("k8s.pod.name", "p-1"),
                ],
                dropped_attributes_count: 3,
                ..Default::default()
            }),
        ];
        for resource in resources {
            for schema_url in ["", "https://opentelemetry.io/schemas/1.21.0"] {
                let spans = ResourceSpans {
                    resource: resource.clone(),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![Span::default()],
                        ..Default::default()
                    }],
                    schema_url: schema_url.to_owned(),
                };
                let copy = ResourceSpans {
                    scope_spans: Vec::new(),
                    ..spans.clone()
                };
                assert_eq!(encode_resource(&spans).bytes, copy.encode_to_vec());
                let scope = ScopeSpans {
                    scope: resource.as_ref().map(|resource| InstrumentationScope {
                        name: "lib".to_owned(),
                        attributes: resource.attributes.clone(),
                        ..Default::default()
                    }),
                    spans: vec![Span::default()],
                    schema_url: schema_url.to_owned(),
                };
                let copy = ScopeSpans {
                    spans: Vec::new(),
                    ..scope.clone()
                };
                assert_eq!(encode_scope(&scope), copy.encode_to_vec());
            }
        }
        for (events, links, dropped_events, dropped_links) in
            [(0, 0, 1, 0), (2, 0, 0, 0), (0, 1, 0, 7), (3, 2, 4, 5)]
        {
            let span = Span {
                name: "not copied".to_owned(),
                attributes: vec![attribute("also", "not copied")],
                events: (0..events)
                    .map(|at| Event {
                        time_unix_nano: at,
                        name: format!("event {at}"),
                        attributes: vec![attribute("e", "v")],
                        dropped_attributes_count: 0,
                    })
                    .collect(),
                links: (0..links)
                    .map(|at| Link {
                        trace_id: vec![at as u8; 16],
                        span_id: vec![1; 8],
                        flags: 1,
                        ..Default::default()
                    })
                    .collect(),
                dropped_events_count: dropped_events,
                dropped_links_count: dropped_links,
                ..Default::default()
            };
            let copy = Span {
                events: span.events.clone(),
                links: span.links.clone(),
                dropped_events_count: span.dropped_events_count,
                dropped_links_count: span.dropped_links_count,
                ..Default::default()
            };
            assert_eq!(encode_events_links(&span), copy.encode_to_vec());
        }
    }
}
