//! Tag discovery over an `andante-v1` block: attribute names per scope and the distinct values
//! of one field, optionally only from spans matching a filter (Grafana's `q`). Reads only the
//! columns involved; resources and instrumentation scopes are decoded once per distinct
//! dictionary entry; event and link attributes come from the `events_links` blobs of the rows
//! that have any.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use andante_model::otlp::common::v1::{InstrumentationScope, KeyValue};
use andante_model::otlp::trace::v1::{ScopeSpans, Span};
use andante_traceql::ast::{Field, Intrinsic, Scope, SpanKind, StatusCode};
use andante_traceql::Value;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use futures::StreamExt;
use prost::Message;

use super::schema::{DedicatedSlots, DEDICATED_SPAN_INTS, DEDICATED_SPAN_STRINGS};
use super::search::{
    decode_columns, decode_resource, generic_values, predicate_masks, string_reader, ScanPlan,
};
use crate::{BlockError, BlockHandle};
use andante_storage::Storage;

/// What to collect.
#[derive(Debug, Clone)]
pub enum TagRequest {
    Names,
    Values(Field),
}

/// Names per scope (`resource`, `span`) or typed distinct values, and the bytes read.
#[derive(Debug, Default)]
pub struct TagCollection {
    pub names: BTreeMap<&'static str, BTreeSet<String>>,
    pub values: Vec<Value<'static>>,
    pub bytes_read: u64,
}

impl TagCollection {
    /// Adds `other`'s names and values (values not yet `seen`, in `other`'s order); its bytes
    /// read are the caller's to count.
    pub fn merge(&mut self, other: &TagCollection, seen: &mut HashSet<String>) {
        for (scope, names) in &other.names {
            self.names
                .entry(scope)
                .or_default()
                .extend(names.iter().cloned());
        }
        for value in &other.values {
            self.add_value(value.clone(), seen);
        }
    }

    /// Adds a value unless already present (values keep first-seen order across blocks).
    pub fn add_value(&mut self, value: Value<'static>, seen: &mut HashSet<String>) {
        let key = format!("{value:?}");
        if seen.insert(key) {
            self.values.push(value);
        }
    }
}

/// (key, column) of every span attribute column of a block: the fixed tables and its slots.
fn span_columns(slots: &DedicatedSlots) -> impl Iterator<Item = (&str, &'static str)> {
    DEDICATED_SPAN_STRINGS
        .iter()
        .chain(DEDICATED_SPAN_INTS)
        .map(|(key, column)| (*key, *column))
        .chain(slots.iter())
}

/// The columns a tag request reads in a block with `slots`.
pub fn tag_columns(request: &TagRequest, slots: &DedicatedSlots) -> Vec<&'static str> {
    match request {
        TagRequest::Names => {
            let mut columns = vec!["resource", "attributes", "scope", "events_links"];
            columns.extend(span_columns(slots).map(|(_, column)| column));
            columns
        }
        TagRequest::Values(Field::Intrinsic(Intrinsic::EventName)) => vec!["events_links"],
        TagRequest::Values(Field::Intrinsic(
            Intrinsic::InstrumentationName | Intrinsic::InstrumentationVersion,
        )) => vec!["scope"],
        TagRequest::Values(Field::Attribute {
            scope: Scope::Event | Scope::Link,
            ..
        }) => vec!["events_links"],
        TagRequest::Values(Field::Attribute {
            scope: Scope::Instrumentation,
            ..
        }) => vec!["scope"],
        TagRequest::Values(Field::Intrinsic(intrinsic)) => match intrinsic {
            Intrinsic::Name => vec!["name"],
            Intrinsic::Status => vec!["status_code"],
            Intrinsic::StatusMessage => vec!["status_message"],
            Intrinsic::Kind => vec!["kind"],
            Intrinsic::RootService => vec!["service_name"],
            _ => Vec::new(),
        },
        TagRequest::Values(Field::Attribute { scope, name, .. }) => {
            let mut columns = Vec::new();
            if matches!(scope, Scope::Span | Scope::Unscoped) {
                columns.push("attributes");
                columns.extend(
                    span_columns(slots)
                        .filter(|(key, _)| key == name)
                        .map(|(_, column)| column),
                );
            }
            if matches!(scope, Scope::Resource | Scope::Unscoped) {
                columns.push("resource");
            }
            columns
        }
    }
}

fn collect_batch(
    request: &TagRequest,
    plan: &ScanPlan,
    batch: &RecordBatch,
    out: &mut TagCollection,
    seen: &mut HashSet<String>,
) -> Result<(), BlockError> {
    let rows = batch.num_rows();
    let masks = predicate_masks(plan, batch)?;
    let selected: Vec<bool> = (0..rows)
        .map(|row| masks.iter().all(|mask| mask[row]))
        .collect();
    let column = |name: &str| batch.column_by_name(name);
    match request {
        TagRequest::Names => {
            if let Some(resources) = column("resource") {
                let dictionary = resources.as_dictionary::<Int32Type>();
                let used: BTreeSet<i32> = (0..rows)
                    .filter(|row| selected[*row])
                    .map(|row| dictionary.keys().value(row))
                    .collect();
                let values = dictionary.values().as_binary::<i32>();
                for key in used {
                    if let Some(resource) = decode_resource(values.value(key as usize)) {
                        let names = out.names.entry("resource").or_default();
                        names.extend(
                            resource
                                .attributes
                                .into_iter()
                                .map(|attribute| attribute.key),
                        );
                    }
                }
            }
            if let Some(attributes) = column("attributes") {
                let list = attributes.as_list::<i32>();
                let keys = list.values().as_struct().column(0).clone();
                let key_at = string_reader(&keys);
                let offsets = list.value_offsets();
                let names = out.names.entry("span").or_default();
                for row in (0..rows).filter(|row| selected[*row]) {
                    for entry in offsets[row] as usize..offsets[row + 1] as usize {
                        if let Some(key) = key_at(entry) {
                            if !names.contains(key) {
                                names.insert(key.to_owned());
                            }
                        }
                    }
                }
            }
            if let Some(scopes) = column("scope") {
                for scope in distinct_scopes(scopes, &selected) {
                    out.names
                        .entry("instrumentation")
                        .or_default()
                        .extend(scope.attributes.into_iter().map(|attribute| attribute.key));
                }
            }
            if let Some(blobs) = column("events_links") {
                for carrier in events_and_links(blobs, &selected) {
                    for event in carrier.events {
                        out.names
                            .entry("event")
                            .or_default()
                            .extend(event.attributes.into_iter().map(|attribute| attribute.key));
                    }
                    for link in carrier.links {
                        out.names
                            .entry("link")
                            .or_default()
                            .extend(link.attributes.into_iter().map(|attribute| attribute.key));
                    }
                }
            }
            for (key, name) in span_columns(plan.slots()) {
                if let Some(values) = column(name) {
                    if (0..rows).any(|row| selected[row] && !values.is_null(row)) {
                        out.names.entry("span").or_default().insert(key.to_owned());
                    }
                }
            }
        }
        TagRequest::Values(field) => {
            let wanted_key = match field {
                Field::Attribute { name, .. } => Some(name.as_str()),
                Field::Intrinsic(_) => None,
            };
            // The batch also holds the filter's columns; values come only from the field's own.
            let value_columns = tag_columns(request, plan.slots());
            for (name, array) in batch.schema().fields().iter().zip(batch.columns()) {
                let name = name.name().as_str();
                if !value_columns.contains(&name) {
                    continue;
                }
                match name {
                    "scope" => {
                        for scope in distinct_scopes(array, &selected) {
                            let value = match field {
                                Field::Intrinsic(Intrinsic::InstrumentationName) => {
                                    Some(Value::Str(scope.name.into()))
                                }
                                Field::Intrinsic(Intrinsic::InstrumentationVersion) => {
                                    Some(Value::Str(scope.version.into()))
                                }
                                _ => scope
                                    .attributes
                                    .iter()
                                    .find(|attribute| Some(attribute.key.as_str()) == wanted_key)
                                    .and_then(|attribute| attribute.value.as_ref())
                                    .map(|value| Value::from_any(value).into_owned()),
                            };
                            if let Some(value) = value.filter(
                                |value| !matches!(value, Value::Str(text) if text.is_empty()),
                            ) {
                                out.add_value(value, seen);
                            }
                        }
                    }
                    "events_links" => {
                        for carrier in events_and_links(array, &selected) {
                            let found: Vec<Value<'static>> = match field {
                                Field::Intrinsic(_) => carrier
                                    .events
                                    .into_iter()
                                    .map(|event| Value::Str(event.name.into()))
                                    .collect(),
                                Field::Attribute {
                                    scope: Scope::Link, ..
                                } => values_of(
                                    carrier.links.iter().flat_map(|link| &link.attributes),
                                    wanted_key,
                                ),
                                _ => values_of(
                                    carrier.events.iter().flat_map(|event| &event.attributes),
                                    wanted_key,
                                ),
                            };
                            for value in found {
                                out.add_value(value, seen);
                            }
                        }
                    }
                    "resource" if wanted_key.is_some() => {
                        let dictionary = array.as_dictionary::<Int32Type>();
                        let used: BTreeSet<i32> = (0..rows)
                            .filter(|row| selected[*row])
                            .map(|row| dictionary.keys().value(row))
                            .collect();
                        let values = dictionary.values().as_binary::<i32>();
                        for key in used {
                            let Some(resource) = decode_resource(values.value(key as usize)) else {
                                continue;
                            };
                            for attribute in resource.attributes {
                                if Some(attribute.key.as_str()) == wanted_key {
                                    if let Some(value) = attribute.value.as_ref() {
                                        out.add_value(Value::from_any(value).into_owned(), seen);
                                    }
                                }
                            }
                        }
                    }
                    "attributes" => {
                        let Some(key) = wanted_key else { continue };
                        for (row, values) in generic_values(array, key)?.into_iter().enumerate() {
                            if selected[row] {
                                for value in values.into_iter().flatten() {
                                    out.add_value(value, seen);
                                }
                            }
                        }
                    }
                    "kind" | "status_code" => {
                        let codes = array.as_primitive::<Int32Type>();
                        let distinct: BTreeSet<i32> = (0..rows)
                            .filter(|row| selected[*row])
                            .map(|row| codes.value(row))
                            .collect();
                        for code in distinct {
                            let value = if name == "kind" {
                                Value::Kind(SpanKind::from_otlp(code))
                            } else {
                                Value::Status(StatusCode::from_otlp(code))
                            };
                            out.add_value(value, seen);
                        }
                    }
                    _ => match array.data_type() {
                        arrow_schema::DataType::Int64 => {
                            let numbers = array.as_primitive::<Int64Type>();
                            // Repeats are checked cheaply here before the collection's own
                            // (formatting) check.
                            let mut batch_seen = HashSet::new();
                            for row in
                                (0..rows).filter(|row| selected[*row] && !numbers.is_null(*row))
                            {
                                if batch_seen.insert(numbers.value(row)) {
                                    out.add_value(Value::Int(numbers.value(row)), seen);
                                }
                            }
                        }
                        arrow_schema::DataType::Dictionary(_, _) => {
                            // Each dictionary entry once, in first-row order, by its key:
                            // no string is hashed per row.
                            let dictionary = array.as_dictionary::<Int32Type>();
                            let texts = dictionary.values().as_string::<i32>();
                            let keys = dictionary.keys();
                            let mut met = vec![false; texts.len()];
                            for row in (0..rows).filter(|row| selected[*row] && keys.is_valid(*row))
                            {
                                let key = keys.value(row) as usize;
                                if met.get(key) == Some(&false) {
                                    met[key] = true;
                                    let text = texts.value(key);
                                    if !text.is_empty() || name == "name" {
                                        out.add_value(Value::Str(text.to_owned().into()), seen);
                                    }
                                }
                            }
                        }
                        arrow_schema::DataType::Utf8 => {
                            let reader = string_reader(array);
                            let mut batch_seen = HashSet::new();
                            for row in (0..rows).filter(|row| selected[*row]) {
                                if let Some(text) = reader(row) {
                                    if (!text.is_empty() || name == "name")
                                        && batch_seen.insert(text)
                                    {
                                        out.add_value(Value::Str(text.to_owned().into()), seen);
                                    }
                                }
                            }
                        }
                        _ => {}
                    },
                }
            }
        }
    }
    Ok(())
}

/// The values of the attributes named `key`.
fn values_of<'a>(
    attributes: impl Iterator<Item = &'a KeyValue>,
    key: Option<&str>,
) -> Vec<Value<'static>> {
    attributes
        .filter(|attribute| Some(attribute.key.as_str()) == key)
        .filter_map(|attribute| {
            attribute
                .value
                .as_ref()
                .map(|value| Value::from_any(value).into_owned())
        })
        .collect()
}

/// The instrumentation scopes of the selected rows, each distinct scope decoded once.
fn distinct_scopes(array: &ArrayRef, selected: &[bool]) -> Vec<InstrumentationScope> {
    let decode = |bytes: &[u8]| {
        ScopeSpans::decode(bytes)
            .ok()
            .and_then(|carrier| carrier.scope)
    };
    match array.data_type() {
        arrow_schema::DataType::Dictionary(_, _) => {
            let dictionary = array.as_dictionary::<Int32Type>();
            let used: BTreeSet<i32> = (0..array.len())
                .filter(|row| selected[*row])
                .map(|row| dictionary.keys().value(row))
                .collect();
            let values = dictionary.values().as_binary::<i32>();
            used.into_iter()
                .filter_map(|key| decode(values.value(key as usize)))
                .collect()
        }
        _ => {
            let blobs = array.as_binary::<i32>();
            let used: BTreeSet<&[u8]> = (0..array.len())
                .filter(|row| selected[*row])
                .map(|row| blobs.value(row))
                .collect();
            used.into_iter().filter_map(decode).collect()
        }
    }
}

/// The events and links of the selected rows that have any (the `events_links` carrier spans).
fn events_and_links(array: &ArrayRef, selected: &[bool]) -> Vec<Span> {
    let blobs = array.as_binary::<i32>();
    (0..array.len())
        .filter(|row| selected[*row] && !blobs.is_null(*row))
        .filter_map(|row| Span::decode(blobs.value(row)).ok())
        .collect()
}

impl BlockHandle {
    /// Collects tag names or values from this block into `out`.
    pub async fn collect_tags(
        &self,
        storage: &Storage,
        request: &TagRequest,
        plan: Arc<ScanPlan>,
        cpu: Arc<tokio::sync::Semaphore>,
        out: &mut TagCollection,
        seen: &mut HashSet<String>,
    ) -> Result<(), BlockError> {
        let mut columns = tag_columns(request, &self.slots);
        if let TagRequest::Values(Field::Attribute { name, .. }) = request {
            // A key with its own column is in the generic list only when the block says so.
            if self.slots.has_own_column(name) && !self.meta.generic_may_hold_dedicated(name) {
                columns.retain(|column| *column != "attributes");
            }
        }
        let plan = Arc::new(plan.for_block_with_columns(&self.slots, &columns));
        if !plan.block_may_match(self.meta.service_names.as_deref()) {
            return Ok(());
        }
        // Tags need neither trace IDs nor times (the time range was applied to row groups).
        let roots = Arc::new(plan.roots_without_trace_columns());
        // Row groups run concurrently (`by_row_group`); their distinct values merge in
        // row-group order, so the answer is the same as one after the other.
        let parts = crate::by_row_group(self.candidate_row_groups(&plan, None), |row_group| {
            let (plan, roots, cpu) = (plan.clone(), roots.clone(), cpu.clone());
            async move {
                let fetched = self
                    .fetch_columns(storage, row_group, &roots, plan.attribute_leaves)
                    .await?;
                let bytes = crate::fetched_bytes(&fetched);
                let (metadata, file_size, request) = (
                    self.scan_parquet.clone(),
                    self.meta.data_bytes,
                    request.clone(),
                );
                // The row group's distinct values, in first-seen order; merged below, so the
                // caller's set of values already seen is never copied into the task.
                crate::on_cpu(&cpu, move || {
                    let mut partial = TagCollection {
                        bytes_read: bytes,
                        ..TagCollection::default()
                    };
                    let mut partial_seen = HashSet::new();
                    for batch in decode_columns(
                        &roots,
                        plan.attribute_leaves,
                        &metadata,
                        file_size,
                        row_group,
                        fetched,
                    )? {
                        collect_batch(&request, &plan, &batch, &mut partial, &mut partial_seen)?;
                    }
                    Ok(partial)
                })
                .await
            }
        });
        futures::pin_mut!(parts);
        while let Some(partial) = parts.next().await {
            let partial = partial?;
            out.bytes_read += partial.bytes_read;
            for (scope, names) in partial.names {
                out.names.entry(scope).or_default().extend(names);
            }
            for value in partial.values {
                out.add_value(value, seen);
            }
        }
        Ok(())
    }
}
