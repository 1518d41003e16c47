//! Decoding `andante-v1` rows back into OTLP traces.

use std::sync::Arc;

use andante_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use andante_model::TraceId;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type, UInt8Type};
use arrow_array::{Array, RecordBatch};
use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, RowSelection, RowSelector};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use prost::Message;

use super::schema::{
    schema, DedicatedSlots, ATTR_BOOL, ATTR_DOUBLE, ATTR_INT, ATTR_STRING, DEDICATED_SPAN_INTS,
    DEDICATED_SPAN_STRINGS,
};
use crate::{BlockError, Trace};

fn corrupt(why: impl std::fmt::Display) -> BlockError {
    BlockError::Corrupt(why.to_string())
}

pub(super) fn string_value(key: &str, text: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(text.to_owned())),
        }),
        ..Default::default()
    }
}

/// Turns full-schema rows (sorted by trace ID) into traces.
/// `slots` are the block's dedicated slot keys (`DedicatedSlots::from_metadata`).
pub fn batch_to_traces(
    batch: &RecordBatch,
    slots: &DedicatedSlots,
) -> Result<Vec<Trace>, BlockError> {
    batch_to_spans(batch, slots, &SpanParts::ALL)
}

/// `batch_to_traces` for a batch read with `parts`' columns: spans carry only those parts.
fn batch_to_spans(
    batch: &RecordBatch,
    slots: &DedicatedSlots,
    parts: &SpanParts,
) -> Result<Vec<Trace>, BlockError> {
    // Every column present must be the andante-v1 column of that name. Reads may leave out
    // columns (`SpanParts`), and files written before the slot columns existed lack those.
    let expected = schema();
    for found in batch.schema().fields() {
        match expected.field_with_name(found.name()) {
            Ok(wanted) if wanted == found.as_ref() => {}
            _ => return Err(corrupt("block columns do not match the andante-v1 schema")),
        }
    }
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| corrupt(format!("missing column `{name}`")))
    };
    let trace_ids = column("trace_id")?.as_fixed_size_binary();
    let span_ids = column("span_id")?.as_fixed_size_binary();
    let parents = column("parent_span_id")?.as_fixed_size_binary();
    let names = column("name")?.as_string::<i32>();
    let kinds = column("kind")?.as_primitive::<Int32Type>();
    let starts = column("start_unix_nanos")?.as_primitive::<UInt64Type>();
    let durations = column("duration_nanos")?.as_primitive::<UInt64Type>();
    let status_codes = column("status_code")?.as_primitive::<Int32Type>();
    let status_messages = column("status_message")?.as_string::<i32>();
    let trace_states = column("trace_state")?.as_string::<i32>();
    let flags = column("flags")?.as_primitive::<UInt32Type>();
    let resources = column("resource")?.as_binary::<i32>();
    let scopes = column("scope")?.as_binary::<i32>();
    let attribute_parts = match &parts.attributes {
        AttributeParts::None => None,
        wanted => Some(AttributeColumns::of(&column, slots, wanted)?),
    };
    let events_links = if parts.events_links {
        Some(column("events_links")?.as_binary::<i32>())
    } else {
        None
    };
    let mut traces: Vec<Trace> = Vec::new();
    let mut resource_index: crate::FastMap<&[u8], usize> = crate::FastMap::default();
    let mut scope_index: crate::FastMap<(usize, &[u8]), usize> = crate::FastMap::default();
    // A batch's traces share a few resources: each is decoded once, where it first appears
    // (trace, resource), and copied into later traces holding it (a copy skips the varint walk
    // and UTF-8 checks a decode does).
    let mut first_decoded: crate::FastMap<&[u8], (usize, usize)> = crate::FastMap::default();
    for row in 0..batch.num_rows() {
        let trace_id = TraceId(
            trace_ids
                .value(row)
                .try_into()
                .map_err(|_| corrupt("trace_id width"))?,
        );
        if traces.last().is_none_or(|trace| trace.trace_id != trace_id) {
            traces.push(Trace {
                trace_id,
                resource_spans: Vec::new(),
            });
            resource_index.clear();
            scope_index.clear();
        }
        // The row's trace: the last one, pushed above if none was there.
        let t = traces.len() - 1;
        let resource_bytes = resources.value(row);
        let r = match resource_index.get(resource_bytes) {
            Some(r) => *r,
            None => {
                let r = traces[t].resource_spans.len();
                let decoded = match first_decoded.get(resource_bytes) {
                    Some(&(first_t, first_r)) => {
                        let first = &traces[first_t].resource_spans[first_r];
                        ResourceSpans {
                            resource: first.resource.clone(),
                            scope_spans: Vec::new(),
                            schema_url: first.schema_url.clone(),
                        }
                    }
                    None => {
                        first_decoded.insert(resource_bytes, (t, r));
                        ResourceSpans::decode(resource_bytes).map_err(corrupt)?
                    }
                };
                traces[t].resource_spans.push(decoded);
                resource_index.insert(resource_bytes, r);
                r
            }
        };
        let trace = &mut traces[t];
        let scope_bytes = scopes.value(row);
        let s = match scope_index.get(&(r, scope_bytes)) {
            Some(s) => *s,
            None => {
                let decoded = ScopeSpans::decode(scope_bytes).map_err(corrupt)?;
                trace.resource_spans[r].scope_spans.push(decoded);
                let s = trace.resource_spans[r].scope_spans.len() - 1;
                scope_index.insert((r, scope_bytes), s);
                s
            }
        };
        let mut span = Span {
            trace_id: trace_id.0.to_vec(),
            span_id: span_ids.value(row).to_vec(),
            parent_span_id: if parents.is_null(row) {
                Vec::new()
            } else {
                parents.value(row).to_vec()
            },
            name: names.value(row).to_owned(),
            kind: kinds.value(row),
            start_time_unix_nano: starts.value(row),
            end_time_unix_nano: starts.value(row).saturating_add(durations.value(row)),
            trace_state: if trace_states.is_null(row) {
                String::new()
            } else {
                trace_states.value(row).to_owned()
            },
            flags: flags.value(row),
            status: Some(Status {
                code: status_codes.value(row),
                message: if status_messages.is_null(row) {
                    String::new()
                } else {
                    status_messages.value(row).to_owned()
                },
            }),
            ..Default::default()
        };
        if let Some(columns) = &attribute_parts {
            columns.fill(row, &mut span)?;
        }
        if let Some(events_links) = events_links.filter(|blobs| !blobs.is_null(row)) {
            let carrier = Span::decode(events_links.value(row)).map_err(corrupt)?;
            span.events = carrier.events;
            span.links = carrier.links;
            span.dropped_events_count = carrier.dropped_events_count;
            span.dropped_links_count = carrier.dropped_links_count;
        }
        trace.resource_spans[r].scope_spans[s].spans.push(span);
    }
    // Resource-level dedicated columns are copies of attributes inside `resource`: nothing to add.
    Ok(traces)
}

/// The columns that hold a span's attributes: the generic list (unless the read leaves it out),
/// the dedicated columns and the block's slot columns.
struct AttributeColumns<'a> {
    generic: Option<GenericList<'a>>,
    dropped: &'a arrow_array::PrimitiveArray<UInt32Type>,
    dedicated_strings: Vec<(&'a str, &'a arrow_array::StringArray)>,
    slot_strings: Vec<(&'a str, &'a arrow_array::StringArray)>,
    dedicated_ints: Vec<(&'a str, &'a arrow_array::PrimitiveArray<Int64Type>)>,
}

/// The generic attribute list's leaves.
struct GenericList<'a> {
    list: &'a arrow_array::ListArray,
    keys: &'a arrow_array::StringArray,
    types: &'a arrow_array::PrimitiveArray<UInt8Type>,
    strs: &'a arrow_array::StringArray,
    ints: &'a arrow_array::PrimitiveArray<Int64Type>,
    doubles: &'a arrow_array::PrimitiveArray<Float64Type>,
    bools: &'a arrow_array::BooleanArray,
    others: &'a arrow_array::BinaryArray,
}

impl<'a> AttributeColumns<'a> {
    /// The generic list and the dedicated and slot columns of the `wanted` keys.
    fn of(
        column: &impl Fn(&str) -> Result<&'a arrow_array::ArrayRef, BlockError>,
        slots: &'a DedicatedSlots,
        wanted: &AttributeParts,
    ) -> Result<AttributeColumns<'a>, BlockError> {
        let generic = if matches!(wanted, AttributeParts::OwnColumns(_)) {
            None
        } else {
            let list = column("attributes")?.as_list::<i32>();
            let fields = list.values().as_struct();
            Some(GenericList {
                list,
                keys: fields.column(0).as_string::<i32>(),
                types: fields.column(1).as_primitive::<UInt8Type>(),
                strs: fields.column(2).as_string::<i32>(),
                ints: fields.column(3).as_primitive::<Int64Type>(),
                doubles: fields.column(4).as_primitive::<Float64Type>(),
                bools: fields.column(5).as_boolean(),
                others: fields.column(6).as_binary::<i32>(),
            })
        };
        Ok(AttributeColumns {
            generic,
            dropped: column("dropped_attributes_count")?.as_primitive::<UInt32Type>(),
            dedicated_strings: DEDICATED_SPAN_STRINGS
                .iter()
                .filter(|(key, _)| wanted.includes(key))
                .map(|(key, name)| Ok((*key, column(name)?.as_string::<i32>())))
                .collect::<Result<_, BlockError>>()?,
            slot_strings: slots
                .iter()
                .filter(|(key, _)| wanted.includes(key))
                .map(|(key, name)| Ok((key, column(name)?.as_string::<i32>())))
                .collect::<Result<_, BlockError>>()?,
            dedicated_ints: DEDICATED_SPAN_INTS
                .iter()
                .filter(|(key, _)| wanted.includes(key))
                .map(|(key, name)| Ok((*key, column(name)?.as_primitive::<Int64Type>())))
                .collect::<Result<_, BlockError>>()?,
        })
    }

    fn fill(&self, row: usize, span: &mut Span) -> Result<(), BlockError> {
        span.dropped_attributes_count = self.dropped.value(row);
        if let Some(generic) = &self.generic {
            generic.fill(row, span)?;
        }
        for (key, values) in self.dedicated_strings.iter().chain(&self.slot_strings) {
            if !values.is_null(row) {
                span.attributes.push(string_value(key, values.value(row)));
            }
        }
        for (key, values) in &self.dedicated_ints {
            if !values.is_null(row) {
                span.attributes.push(KeyValue {
                    key: (*key).to_owned(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(values.value(row))),
                    }),
                    ..Default::default()
                });
            }
        }
        Ok(())
    }
}

impl GenericList<'_> {
    fn fill(&self, row: usize, span: &mut Span) -> Result<(), BlockError> {
        let offsets = self.list.value_offsets();
        let (first, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        span.attributes.reserve(end - first);
        for a in first..end {
            let value = match self.types.value(a) {
                ATTR_STRING => any_value::Value::StringValue(self.strs.value(a).to_owned()),
                ATTR_INT => any_value::Value::IntValue(self.ints.value(a)),
                ATTR_DOUBLE => any_value::Value::DoubleValue(self.doubles.value(a)),
                ATTR_BOOL => any_value::Value::BoolValue(self.bools.value(a)),
                _ => {
                    let decoded = AnyValue::decode(self.others.value(a)).map_err(corrupt)?;
                    span.attributes.push(KeyValue {
                        key: self.keys.value(a).to_owned(),
                        value: Some(decoded),
                        ..Default::default()
                    });
                    continue;
                }
            };
            span.attributes.push(KeyValue {
                key: self.keys.value(a).to_owned(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            });
        }
        Ok(())
    }
}

/// The optional parts of spans a read decodes; names, times, IDs, status, resource and scope
/// always come. A search needs only what its query reads (`{ status = error }` needs no
/// attributes), and the attribute columns are most of a block's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanParts {
    pub attributes: AttributeParts,
    pub events_links: bool,
}

/// Which span attributes a read decodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeParts {
    None,
    /// These keys, and whatever else the generic list holds (a key with a dedicated or slot
    /// column may still have non-string values there); other dedicated and slot columns are
    /// left out.
    Keys(Arc<[String]>),
    /// These keys from their dedicated or slot columns alone: every key has one in the block,
    /// and the block says none of them is also in the generic list
    /// ([`crate::BlockMeta::dedicated_keys_in_generic`]). Chosen per block by
    /// [`SpanParts::for_block`], never asked for directly.
    OwnColumns(Arc<[String]>),
    All,
}

impl AttributeParts {
    fn includes(&self, key: &str) -> bool {
        match self {
            AttributeParts::None => false,
            AttributeParts::Keys(keys) | AttributeParts::OwnColumns(keys) => {
                keys.iter().any(|wanted| wanted == key)
            }
            AttributeParts::All => true,
        }
    }
}

impl SpanParts {
    pub const ALL: SpanParts = SpanParts {
        attributes: AttributeParts::All,
        events_links: true,
    };

    /// These parts as read from a block with `slots` and `meta`: keys that all have their own
    /// column there, none of them also in the generic list, leave the list out (most of the
    /// decoding of a span read).
    pub fn for_block(&self, meta: &crate::BlockMeta, slots: &DedicatedSlots) -> SpanParts {
        let AttributeParts::Keys(keys) = &self.attributes else {
            return self.clone();
        };
        if keys
            .iter()
            .all(|key| slots.has_own_column(key) && !meta.generic_may_hold_dedicated(key))
        {
            SpanParts {
                attributes: AttributeParts::OwnColumns(keys.clone()),
                events_links: self.events_links,
            }
        } else {
            self.clone()
        }
    }

    /// The file's root columns such a read decodes. Never the columns that serve only scans
    /// (nested-set numbers, child counts, service names, resource copies): spans are rebuilt
    /// without them.
    pub(crate) fn roots(
        &self,
        file_schema: &arrow_schema::Schema,
        slots: &DedicatedSlots,
    ) -> Vec<usize> {
        const ALWAYS: &[&str] = &[
            "trace_id",
            "span_id",
            "parent_span_id",
            "name",
            "kind",
            "start_unix_nanos",
            "duration_nanos",
            "status_code",
            "status_message",
            "trace_state",
            "flags",
            "resource",
            "scope",
        ];
        let attributes = &self.attributes;
        let keyed = |name: &str, table: &[(&str, &str)]| {
            table
                .iter()
                .any(|(key, column)| *column == name && attributes.includes(key))
        };
        let attribute_column = |name: &str| {
            *attributes != AttributeParts::None
                && ((name == "attributes" && !matches!(attributes, AttributeParts::OwnColumns(_)))
                    || name == "dropped_attributes_count"
                    || keyed(name, DEDICATED_SPAN_STRINGS)
                    || keyed(name, DEDICATED_SPAN_INTS)
                    || slots
                        .iter()
                        .any(|(key, column)| column == name && attributes.includes(key)))
        };
        file_schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| {
                let name = field.name().as_str();
                ALWAYS.contains(&name)
                    || attribute_column(name)
                    || (self.events_links && name == "events_links")
            })
            .map(|(root, _)| root)
            .collect()
    }
}

fn counted_reader(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    file_size: u64,
    bytes_read: &Arc<std::sync::atomic::AtomicU64>,
) -> crate::file_reader::BlockFileReader {
    crate::file_reader::BlockFileReader::counted(store.clone(), key, file_size, bytes_read.clone())
}

/// Reads the one trace `trace_id` from `row_group` (see [`read_row_group_traces`]).
pub async fn read_row_group_trace(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    file_size: u64,
    metadata: &ArrowReaderMetadata,
    row_group: usize,
    trace_id: TraceId,
    bytes_read: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<Option<Trace>, BlockError> {
    let wanted = std::collections::HashSet::from([trace_id]);
    Ok(read_row_group_traces(
        store,
        key,
        file_size,
        metadata,
        row_group,
        &wanted,
        &[],
        SpanParts::ALL,
        bytes_read,
    )
    .await?
    .pop())
}

/// Reads the traces of `wanted` that `row_group` holds, plus the rows `known` (first row,
/// count) already located by a scan, in trace-ID order: first only the `trace_id` column to find
/// the wanted traces' rows (skipped when none is wanted), then every column of just those rows
/// (the page index skips the other pages). One pass serves any number of traces, so a search
/// confirming many candidates of a row group decodes it once, not once per trace. `bytes_read`
/// grows by the bytes fetched from storage.
#[allow(clippy::too_many_arguments)]
pub async fn read_row_group_traces(
    store: &Arc<dyn ObjectStore>,
    key: &str,
    file_size: u64,
    metadata: &ArrowReaderMetadata,
    row_group: usize,
    wanted: &std::collections::HashSet<TraceId>,
    known: &[(usize, usize)],
    parts: SpanParts,
    bytes_read: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<Vec<Trace>, BlockError> {
    // Single pages are read here, outside the chunk checksums: damage reaches the decoder.
    crate::guard::Guarded::new(async move {
        let parquet_error = BlockError::parquet;
        let row_count = metadata
            .metadata()
            .row_groups()
            .get(row_group)
            .map_or(0, |group| group.num_rows().max(0) as usize);
        // Runs of wanted rows as (first row, count); rows of one trace are contiguous.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (first, count) in known {
            if first.checked_add(*count).is_none_or(|end| end > row_count) {
                return Err(BlockError::Read(format!(
                    "rows {first}+{count} are outside row group {row_group} of {row_count} rows"
                )));
            }
            runs.push((*first, *count));
        }
        if !wanted.is_empty() {
            let ids_only = ProjectionMask::roots(metadata.parquet_schema(), [0]);
            let mut id_stream = ParquetRecordBatchStreamBuilder::new_with_metadata(
                counted_reader(store, key, file_size, bytes_read),
                metadata.clone(),
            )
            .with_row_groups(vec![row_group])
            .with_projection(ids_only)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(parquet_error)?;
            let mut offset = 0usize;
            while let Some(batch) = id_stream.try_next().await.map_err(parquet_error)? {
                let ids = batch.column(0).as_fixed_size_binary();
                for row in 0..ids.len() {
                    let Ok(trace_id) = TraceId::from_bytes(ids.value(row)) else {
                        continue;
                    };
                    if !wanted.contains(&trace_id) {
                        continue;
                    }
                    match runs.last_mut() {
                        Some((first, count)) if *first + *count == offset + row => *count += 1,
                        _ => runs.push((offset + row, 1)),
                    }
                }
                offset += batch.num_rows();
            }
        }
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        runs.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
        for (first, count) in runs {
            match merged.last_mut() {
                Some((last_first, last_count)) if first <= *last_first + *last_count => {
                    *last_count = (*last_count).max(first + count - *last_first);
                }
                _ => merged.push((first, count)),
            }
        }
        let runs = merged;
        let mut selectors = Vec::with_capacity(runs.len() * 2);
        let mut next_row = 0usize;
        for (first, count) in runs {
            selectors.push(RowSelector::skip(first - next_row));
            selectors.push(RowSelector::select(count));
            next_row = first + count;
        }
        let slots = DedicatedSlots::from_metadata(metadata.metadata());
        let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(
            counted_reader(store, key, file_size, bytes_read),
            metadata.clone(),
        )
        .with_row_groups(vec![row_group])
        .with_row_selection(RowSelection::from(selectors))
        .with_projection(ProjectionMask::roots(
            metadata.parquet_schema(),
            parts.roots(metadata.schema(), &slots),
        ))
        .build()
        .map_err(parquet_error)?;
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(parquet_error)?;
        let mut traces: Vec<Trace> = Vec::new();
        for batch in &batches {
            for trace in batch_to_spans(batch, &slots, &parts)? {
                append_piece(&mut traces, trace);
            }
        }
        Ok(traces)
    })
    .await
}

/// Rows of one trace may come back in several batches: a piece with the previous trace's ID
/// continues it.
fn append_piece(traces: &mut Vec<Trace>, piece: Trace) {
    match traces.last_mut() {
        Some(last) if last.trace_id == piece.trace_id => {
            let fragments = std::mem::take(&mut last.resource_spans)
                .into_iter()
                .chain(piece.resource_spans);
            last.resource_spans = andante_model::merge_resource_spans(fragments);
        }
        _ => traces.push(piece),
    }
}

/// Decodes every trace of a whole fetched file, in trace-ID order.
pub fn decode_all_traces(
    data: bytes::Bytes,
    metadata: &ArrowReaderMetadata,
) -> Result<Vec<Trace>, BlockError> {
    crate::guard::decode(|| {
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::new_with_metadata(
                data,
                metadata.clone(),
            )
            .with_batch_size(16 * 1024)
            .build()
            .map_err(BlockError::parquet)?;
        let slots = DedicatedSlots::from_metadata(metadata.metadata());
        let mut traces: Vec<Trace> = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|error| BlockError::parquet(error.into()))?;
            for trace in batch_to_traces(&batch, &slots)? {
                append_piece(&mut traces, trace);
            }
        }
        Ok(traces)
    })
}
