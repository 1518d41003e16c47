//! Trace JSON exactly as Tempo writes it (gogo/protobuf `jsonpb` of OTLP types): IDs in base64,
//! enums by name, 64-bit integers as strings, zero values and empty lists omitted. Written out by
//! hand because the OTLP/JSON serde of `opentelemetry-proto` uses hex IDs, which Tempo clients do
//! not expect in trace bodies.

use andante_model::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Map, Value};

fn put(map: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::Object(_) => false,
    };
    if !empty {
        map.insert(key.to_owned(), value);
    }
}

fn u64_string(value: u64) -> Value {
    if value == 0 {
        Value::Null
    } else {
        Value::String(value.to_string())
    }
}

fn bytes(value: &[u8]) -> Value {
    if value.is_empty() {
        Value::Null
    } else {
        Value::String(BASE64.encode(value))
    }
}

pub fn any_value(value: &AnyValue) -> Value {
    match &value.value {
        None => json!({}),
        Some(any_value::Value::StringValue(text)) => json!({ "stringValue": text }),
        Some(any_value::Value::BoolValue(flag)) => json!({ "boolValue": flag }),
        Some(any_value::Value::IntValue(number)) => json!({ "intValue": number.to_string() }),
        Some(any_value::Value::DoubleValue(number)) => json!({ "doubleValue": number }),
        Some(any_value::Value::BytesValue(data)) => json!({ "bytesValue": BASE64.encode(data) }),
        Some(any_value::Value::ArrayValue(array)) => {
            json!({ "arrayValue": { "values": array.values.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Some(any_value::Value::KvlistValue(list)) => {
            json!({ "kvlistValue": { "values": attributes(&list.values) } })
        }
        Some(any_value::Value::StringValueStrindex(index)) => {
            json!({ "stringValueStrindex": index })
        }
    }
}

pub fn attributes(list: &[KeyValue]) -> Value {
    Value::Array(
        list.iter()
            .map(|kv| json!({ "key": kv.key, "value": kv.value.as_ref().map(any_value).unwrap_or_else(|| json!({})) }))
            .collect(),
    )
}

fn resource(resource: &Resource) -> Value {
    let mut map = Map::new();
    put(&mut map, "attributes", attributes(&resource.attributes));
    put(
        &mut map,
        "droppedAttributesCount",
        json!(resource.dropped_attributes_count),
    );
    Value::Object(map)
}

fn scope(scope: &InstrumentationScope) -> Value {
    let mut map = Map::new();
    put(&mut map, "name", json!(scope.name));
    put(&mut map, "version", json!(scope.version));
    put(&mut map, "attributes", attributes(&scope.attributes));
    put(
        &mut map,
        "droppedAttributesCount",
        json!(scope.dropped_attributes_count),
    );
    Value::Object(map)
}

fn kind_name(kind: i32) -> Value {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Unspecified) => Value::Null,
        Ok(known) => json!(known.as_str_name()),
        Err(_) => json!(kind),
    }
}

fn status_json(status: &Status) -> Value {
    let mut map = Map::new();
    put(&mut map, "message", json!(status.message));
    let code = match status::StatusCode::try_from(status.code) {
        Ok(status::StatusCode::Unset) => Value::Null,
        Ok(known) => json!(known.as_str_name()),
        Err(_) => json!(status.code),
    };
    put(&mut map, "code", code);
    Value::Object(map)
}

fn span_json(span: &Span) -> Value {
    let mut map = Map::new();
    put(&mut map, "traceId", bytes(&span.trace_id));
    put(&mut map, "spanId", bytes(&span.span_id));
    put(&mut map, "traceState", json!(span.trace_state));
    put(&mut map, "parentSpanId", bytes(&span.parent_span_id));
    put(&mut map, "flags", json!(span.flags));
    put(&mut map, "name", json!(span.name));
    put(&mut map, "kind", kind_name(span.kind));
    put(
        &mut map,
        "startTimeUnixNano",
        u64_string(span.start_time_unix_nano),
    );
    put(
        &mut map,
        "endTimeUnixNano",
        u64_string(span.end_time_unix_nano),
    );
    put(&mut map, "attributes", attributes(&span.attributes));
    put(
        &mut map,
        "droppedAttributesCount",
        json!(span.dropped_attributes_count),
    );
    let events: Vec<Value> = span
        .events
        .iter()
        .map(|event| {
            let mut event_map = Map::new();
            put(
                &mut event_map,
                "timeUnixNano",
                u64_string(event.time_unix_nano),
            );
            put(&mut event_map, "name", json!(event.name));
            put(&mut event_map, "attributes", attributes(&event.attributes));
            put(
                &mut event_map,
                "droppedAttributesCount",
                json!(event.dropped_attributes_count),
            );
            Value::Object(event_map)
        })
        .collect();
    put(&mut map, "events", Value::Array(events));
    put(
        &mut map,
        "droppedEventsCount",
        json!(span.dropped_events_count),
    );
    let links: Vec<Value> = span
        .links
        .iter()
        .map(|link| {
            let mut link_map = Map::new();
            put(&mut link_map, "traceId", bytes(&link.trace_id));
            put(&mut link_map, "spanId", bytes(&link.span_id));
            put(&mut link_map, "traceState", json!(link.trace_state));
            put(&mut link_map, "attributes", attributes(&link.attributes));
            put(
                &mut link_map,
                "droppedAttributesCount",
                json!(link.dropped_attributes_count),
            );
            put(&mut link_map, "flags", json!(link.flags));
            Value::Object(link_map)
        })
        .collect();
    put(&mut map, "links", Value::Array(links));
    put(
        &mut map,
        "droppedLinksCount",
        json!(span.dropped_links_count),
    );
    // Tempo always writes `status`, as `{}` when unset.
    map.insert(
        "status".to_owned(),
        status_json(&span.status.clone().unwrap_or_default()),
    );
    Value::Object(map)
}

fn scope_spans(scope_spans: &ScopeSpans) -> Value {
    let mut map = Map::new();
    map.insert(
        "scope".to_owned(),
        scope(&scope_spans.scope.clone().unwrap_or_default()),
    );
    put(
        &mut map,
        "spans",
        Value::Array(scope_spans.spans.iter().map(span_json).collect()),
    );
    put(&mut map, "schemaUrl", json!(scope_spans.schema_url));
    Value::Object(map)
}

pub fn resource_spans(list: &[ResourceSpans]) -> Value {
    Value::Array(
        list.iter()
            .map(|resource_spans| {
                let mut map = Map::new();
                map.insert(
                    "resource".to_owned(),
                    resource(&resource_spans.resource.clone().unwrap_or_default()),
                );
                put(
                    &mut map,
                    "scopeSpans",
                    Value::Array(resource_spans.scope_spans.iter().map(scope_spans).collect()),
                );
                put(&mut map, "schemaUrl", json!(resource_spans.schema_url));
                Value::Object(map)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_tempos_json_conventions() {
        let span = Span {
            trace_id: vec![
                0x8f, 0x71, 0xb8, 0x52, 0x26, 0x9e, 0x22, 0xad, 0xd4, 0x56, 0x57, 0xfa, 0x25, 0x2d,
                0x25, 0x15,
            ],
            span_id: vec![0xe2, 0xf9, 0x47, 0xda, 0x3f, 0xba, 0x9f, 0xc0],
            name: "GET /cart".into(),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 1_795_310_742_632_083_752,
            end_time_unix_nano: 1_795_310_742_663_089_217,
            attributes: vec![KeyValue {
                key: "http.status_code".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(500)),
                }),
                ..Default::default()
            }],
            status: Some(Status {
                code: status::StatusCode::Error as i32,
                message: "cart failed".into(),
            }),
            ..Default::default()
        };
        let value = span_json(&span);
        // The same span as in Tempo's captured reply (tempo-responses/trace_v1.json).
        assert_eq!(value["traceId"], "j3G4UiaeIq3UVlf6JS0lFQ==");
        assert_eq!(value["spanId"], "4vlH2j+6n8A=");
        assert_eq!(value["kind"], "SPAN_KIND_SERVER");
        assert_eq!(value["startTimeUnixNano"], "1795310742632083752");
        assert_eq!(value["attributes"][0]["value"]["intValue"], "500");
        assert_eq!(value["status"]["code"], "STATUS_CODE_ERROR");
        assert!(value.get("parentSpanId").is_none() && value.get("events").is_none());
        let unset = span_json(&Span {
            status: None,
            ..span
        });
        assert_eq!(unset["status"], json!({}));
    }
}
