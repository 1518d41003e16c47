//! The Arrow schema of `andante-v1` and the dedicated-column tables.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

/// Resource attributes copied into their own columns (the full resource is still in `resource`).
pub const DEDICATED_RESOURCE_STRINGS: &[(&str, &str)] = &[
    ("k8s.namespace.name", "resource_k8s_namespace_name"),
    ("k8s.pod.name", "resource_k8s_pod_name"),
    ("k8s.container.name", "resource_k8s_container_name"),
    ("k8s.cluster.name", "resource_k8s_cluster_name"),
];

/// String span attributes moved out of the generic list into their own columns.
pub const DEDICATED_SPAN_STRINGS: &[(&str, &str)] = &[
    ("http.request.method", "span_http_request_method"),
    ("http.method", "span_http_method"),
    ("http.route", "span_http_route"),
    ("url.path", "span_url_path"),
    ("http.url", "span_http_url"),
    ("server.address", "span_server_address"),
    ("db.system", "span_db_system"),
    ("rpc.method", "span_rpc_method"),
];

/// Integer span attributes moved out of the generic list into their own columns.
pub const DEDICATED_SPAN_INTS: &[(&str, &str)] = &[
    (
        "http.response.status_code",
        "span_http_response_status_code",
    ),
    ("http.status_code", "span_http_status_code"),
];

/// Columns a block assigns to its most frequent string span attributes outside the tables
/// above (Tempo's dedicated columns, chosen per block from the data rather than configured).
/// Twenty, not Tempo's ten: with OpenTelemetry's conventions a service easily has more than
/// ten common string keys, and an unused slot costs only its null run.
/// A slot unused by a block is all nulls; which key a slot holds is the file's key-value
/// metadata entry [`DEDICATED_SLOTS_KEY`] (a JSON array of keys, slot order).
pub const DEDICATED_SLOTS: [&str; 20] = [
    "span_dedicated_0",
    "span_dedicated_1",
    "span_dedicated_2",
    "span_dedicated_3",
    "span_dedicated_4",
    "span_dedicated_5",
    "span_dedicated_6",
    "span_dedicated_7",
    "span_dedicated_8",
    "span_dedicated_9",
    "span_dedicated_10",
    "span_dedicated_11",
    "span_dedicated_12",
    "span_dedicated_13",
    "span_dedicated_14",
    "span_dedicated_15",
    "span_dedicated_16",
    "span_dedicated_17",
    "span_dedicated_18",
    "span_dedicated_19",
];

/// The Parquet key-value metadata entry naming the keys of [`DEDICATED_SLOTS`].
pub const DEDICATED_SLOTS_KEY: &str = "andante.dedicated_span_strings";

/// The keys one block keeps in [`DEDICATED_SLOTS`] (index = slot).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DedicatedSlots {
    keys: Vec<String>,
}

impl DedicatedSlots {
    /// Whether span attribute `key` has a column of its own in a block with these slots (a
    /// fixed dedicated string or int column, or a slot).
    pub fn has_own_column(&self, key: &str) -> bool {
        DEDICATED_SPAN_STRINGS
            .iter()
            .chain(DEDICATED_SPAN_INTS)
            .any(|(dedicated, _)| *dedicated == key)
            || self.position(key).is_some()
    }

    pub fn new(keys: Vec<String>) -> DedicatedSlots {
        debug_assert!(keys.len() <= DEDICATED_SLOTS.len());
        DedicatedSlots { keys }
    }

    /// The slots of a file from its key-value metadata (none for a file written without any).
    pub fn from_metadata(metadata: &parquet::file::metadata::ParquetMetaData) -> DedicatedSlots {
        let entries = metadata.file_metadata().key_value_metadata();
        let keys = entries
            .and_then(|entries| {
                entries
                    .iter()
                    .find(|entry| entry.key == DEDICATED_SLOTS_KEY)
            })
            .and_then(|entry| entry.value.as_deref())
            .and_then(|value| serde_json::from_str::<Vec<String>>(value).ok())
            .unwrap_or_default();
        DedicatedSlots {
            keys: keys.into_iter().take(DEDICATED_SLOTS.len()).collect(),
        }
    }

    pub fn metadata_value(&self) -> String {
        serde_json::to_string(&self.keys).unwrap_or_else(|_| "[]".to_owned())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The slot column holding `key`'s string values in this block.
    pub fn column_of(&self, key: &str) -> Option<&'static str> {
        self.position(key).map(|slot| DEDICATED_SLOTS[slot])
    }

    /// (key, column) of every used slot.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &'static str)> {
        self.keys.iter().map(String::as_str).zip(DEDICATED_SLOTS)
    }

    /// Whether both hold the same keys, in any slot order.
    pub fn same_keys(&self, other: &DedicatedSlots) -> bool {
        let mut mine: Vec<&String> = self.keys.iter().collect();
        let mut theirs: Vec<&String> = other.keys.iter().collect();
        mine.sort_unstable();
        theirs.sort_unstable();
        mine == theirs
    }

    pub fn position(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|candidate| candidate == key)
    }
}

/// Type tags of the generic attribute list's `type` field.
pub(crate) const ATTR_STRING: u8 = 1;
pub(crate) const ATTR_INT: u8 = 2;
pub(crate) const ATTR_DOUBLE: u8 = 3;
pub(crate) const ATTR_BOOL: u8 = 4;
/// Bytes, arrays and key-value lists: the protobuf `AnyValue` in `other`.
pub(crate) const ATTR_OTHER: u8 = 5;

pub(crate) fn attribute_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("type", DataType::UInt8, false),
        Field::new("str", DataType::Utf8, true),
        Field::new("int", DataType::Int64, true),
        Field::new("double", DataType::Float64, true),
        Field::new("bool", DataType::Boolean, true),
        Field::new("other", DataType::Binary, true),
    ])
}

pub(crate) fn attribute_item_field() -> Arc<Field> {
    Arc::new(Field::new(
        "item",
        DataType::Struct(attribute_fields()),
        false,
    ))
}

/// The file schema; column order is part of the format.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields = vec![
                Field::new("trace_id", DataType::FixedSizeBinary(16), false),
                Field::new("span_id", DataType::FixedSizeBinary(8), false),
                Field::new("parent_span_id", DataType::FixedSizeBinary(8), true),
                Field::new("name", DataType::Utf8, false),
                Field::new("kind", DataType::Int32, false),
                Field::new("start_unix_nanos", DataType::UInt64, false),
                Field::new("duration_nanos", DataType::UInt64, false),
                Field::new("status_code", DataType::Int32, false),
                Field::new("status_message", DataType::Utf8, true),
                Field::new("trace_state", DataType::Utf8, true),
                Field::new("flags", DataType::UInt32, false),
                Field::new("nested_set_left", DataType::Int32, false),
                Field::new("nested_set_right", DataType::Int32, false),
                Field::new("nested_set_parent", DataType::Int32, false),
                Field::new("child_count", DataType::Int32, false),
                Field::new("service_name", DataType::Utf8, false),
                Field::new("resource", DataType::Binary, false),
                Field::new("scope", DataType::Binary, false),
            ];
            for (_, column) in DEDICATED_RESOURCE_STRINGS
                .iter()
                .chain(DEDICATED_SPAN_STRINGS)
            {
                fields.push(Field::new(*column, DataType::Utf8, true));
            }
            for (_, column) in DEDICATED_SPAN_INTS {
                fields.push(Field::new(*column, DataType::Int64, true));
            }
            fields.push(Field::new(
                "attributes",
                DataType::List(attribute_item_field()),
                false,
            ));
            fields.push(Field::new(
                "dropped_attributes_count",
                DataType::UInt32,
                false,
            ));
            fields.push(Field::new("events_links", DataType::Binary, true));
            // Appended last so the columns before keep their positions.
            for column in DEDICATED_SLOTS {
                fields.push(Field::new(column, DataType::Utf8, true));
            }
            Arc::new(Schema::new(fields))
        })
        .clone()
}
