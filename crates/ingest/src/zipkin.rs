//! Zipkin v2 JSON (`POST /api/v2/spans`) translated to OTLP, following the OpenTelemetry
//! Collector's Zipkin receiver so that spans look the same whichever way they arrived:
//! `localEndpoint.serviceName` becomes the resource's `service.name`, the remote endpoint becomes
//! `peer.service` / `net.peer.ip` / `net.peer.port`, annotations become events, and the `error`
//! tag (or `otel.status_code`) sets the status. Timestamps are microseconds in Zipkin.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use serde::Deserialize;

use crate::{ExportTraceServiceRequest, IngestError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan {
    trace_id: String,
    id: String,
    parent_id: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    local_endpoint: Option<Endpoint>,
    remote_endpoint: Option<Endpoint>,
    #[serde(default)]
    annotations: Vec<Annotation>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<u16>,
}

#[derive(Deserialize)]
struct Annotation {
    timestamp: u64,
    value: String,
}

fn string_attribute(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// Hex that is not a valid ID is passed through as an empty byte string, so the shared
/// validation refuses that one span with its usual message.
fn hex_id(text: &str, bytes: usize) -> Vec<u8> {
    if text.len() > bytes * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Vec::new();
    }
    let padded = format!("{text:0>width$}", width = bytes * 2);
    hex::decode(padded).unwrap_or_default()
}

pub fn decode_zipkin_json(body: &[u8]) -> Result<ExportTraceServiceRequest, IngestError> {
    let spans: Vec<ZipkinSpan> =
        serde_json::from_slice(body).map_err(|error| IngestError::Malformed {
            format: "Zipkin v2 JSON",
            message: error.to_string(),
        })?;
    // One resource per local service, in first-seen order for stable output.
    let mut services: Vec<(String, Vec<Span>)> = Vec::new();
    for zipkin in spans {
        let service = zipkin
            .local_endpoint
            .as_ref()
            .and_then(|endpoint| endpoint.service_name.clone())
            .unwrap_or_else(|| "unknown_service".to_owned());
        let span = convert(zipkin);
        match services.iter_mut().find(|(name, _)| *name == service) {
            Some((_, spans)) => spans.push(span),
            None => services.push((service, vec![span])),
        }
    }
    let resource_spans = services
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        })
        .collect();
    Ok(ExportTraceServiceRequest { resource_spans })
}

fn convert(zipkin: ZipkinSpan) -> Span {
    let start_nanos = zipkin.timestamp.unwrap_or(0).saturating_mul(1000);
    let end_nanos = start_nanos.saturating_add(zipkin.duration.unwrap_or(0).saturating_mul(1000));
    let kind = match zipkin.kind.as_deref() {
        Some("CLIENT") => span::SpanKind::Client,
        Some("SERVER") => span::SpanKind::Server,
        Some("PRODUCER") => span::SpanKind::Producer,
        Some("CONSUMER") => span::SpanKind::Consumer,
        _ => span::SpanKind::Internal,
    };
    let mut status = Status::default();
    let mut attributes = Vec::with_capacity(zipkin.tags.len() + 3);
    for (key, value) in zipkin.tags {
        match key.as_str() {
            "error" => {
                status.code = status::StatusCode::Error as i32;
                if value != "true" {
                    status.message = value;
                }
            }
            "otel.status_code" => match value.as_str() {
                "ERROR" => status.code = status::StatusCode::Error as i32,
                "OK" => status.code = status::StatusCode::Ok as i32,
                _ => {}
            },
            "otel.status_description" => status.message = value,
            _ => attributes.push(string_attribute(&key, value)),
        }
    }
    if let Some(remote) = zipkin.remote_endpoint {
        if let Some(service) = remote.service_name {
            attributes.push(string_attribute("peer.service", service));
        }
        if let Some(ip) = remote.ipv4.or(remote.ipv6) {
            attributes.push(string_attribute("net.peer.ip", ip));
        }
        if let Some(port) = remote.port {
            attributes.push(KeyValue {
                key: "net.peer.port".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(i64::from(port))),
                }),
                ..Default::default()
            });
        }
    }
    let events = zipkin
        .annotations
        .into_iter()
        .map(|annotation| span::Event {
            time_unix_nano: annotation.timestamp.saturating_mul(1000),
            name: annotation.value,
            ..Default::default()
        })
        .collect();
    Span {
        trace_id: hex_id(&zipkin.trace_id, 16),
        span_id: hex_id(&zipkin.id, 8),
        parent_span_id: zipkin
            .parent_id
            .map(|parent| hex_id(&parent, 8))
            .unwrap_or_default(),
        name: zipkin.name.unwrap_or_default(),
        kind: kind as i32,
        start_time_unix_nano: start_nanos,
        end_time_unix_nano: end_nanos,
        attributes,
        events,
        status: Some(status),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipkin_spans_map_to_otlp() {
        let body = br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0020000000000001",
          "name":"get /api","kind":"SERVER","timestamp":1700000000000000,"duration":2500,
          "localEndpoint":{"serviceName":"web"},"remoteEndpoint":{"serviceName":"db","ipv4":"10.0.0.1","port":5432},
          "annotations":[{"timestamp":1700000000001000,"value":"cache miss"}],
          "tags":{"http.method":"GET","error":"boom"}}]"#;
        let request = decode_zipkin_json(body).expect("valid Zipkin");
        let resource = &request.resource_spans[0];
        let service = &resource.resource.as_ref().expect("resource").attributes[0];
        assert_eq!(service.key, "service.name");
        let span = &resource.scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "0000000000000000463ac35c9f6413ad"
        );
        assert_eq!(span.kind, span::SpanKind::Server as i32);
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            2_500_000
        );
        let status = span.status.as_ref().expect("status");
        assert_eq!(
            (status.code, status.message.as_str()),
            (status::StatusCode::Error as i32, "boom")
        );
        assert_eq!(span.events[0].name, "cache miss");
        let keys: Vec<_> = span.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.method",
                "peer.service",
                "net.peer.ip",
                "net.peer.port"
            ]
        );
    }

    #[test]
    fn bad_json_is_malformed_and_bad_ids_reach_validation_empty() {
        assert!(matches!(
            decode_zipkin_json(b"{}"),
            Err(IngestError::Malformed { .. })
        ));
        let request = decode_zipkin_json(br#"[{"traceId":"zz","id":"1"}]"#).expect("parses");
        assert!(request.resource_spans[0].scope_spans[0].spans[0]
            .trace_id
            .is_empty());
    }
}
