//! Projected decoding of OTLP trace protobuf: walks an `ExportTraceServiceRequest` and builds
//! `ResourceSpans` holding only the fields a query reads, skipping the rest on the wire. Recent
//! traces are kept as the protobuf they arrived in, and a query over them used to decode every
//! attribute of every span (about 2 µs a span) to read a status code; skipping costs a varint
//! and a pointer move per field. See `docs/design/live-search.md`.
//!
//! The generated `merge_field` of each message decodes the fields that are kept, so kept fields
//! are decoded exactly as a full decode would; the walk only decides which to skip.

use prost::bytes::Buf;
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::otlp::common::v1::{InstrumentationScope, KeyValue};
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProjectedError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("a field's length runs past the end of its message")]
    Truncated,
}

/// Which attribute keys of one scope to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Keys {
    #[default]
    None,
    Only(Vec<String>),
    All,
}

impl Keys {
    /// Adds `key` to the kept set.
    pub fn add(&mut self, key: &str) {
        match self {
            Keys::All => {}
            Keys::Only(keys) => {
                if !keys.iter().any(|kept| kept == key) {
                    keys.push(key.to_owned());
                }
            }
            Keys::None => *self = Keys::Only(vec![key.to_owned()]),
        }
    }

    fn is_none(&self) -> bool {
        matches!(self, Keys::None)
    }

    fn keeps(&self, key: &[u8]) -> bool {
        match self {
            Keys::None => false,
            Keys::All => true,
            Keys::Only(keys) => keys.iter().any(|kept| kept.as_bytes() == key),
        }
    }
}

/// The fields to keep beyond those always kept: span ID, parent span ID, kind, start and end
/// (the span tree, duplicate removal by span ID and kind, and the trace's time range need them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    pub span_name: bool,
    pub status: bool,
    pub span_attributes: Keys,
    pub resource_attributes: Keys,
    /// The instrumentation scope's name and version.
    pub scope_identity: bool,
    pub scope_attributes: Keys,
    /// Events, whole.
    pub events: bool,
    /// Links, whole.
    pub links: bool,
    /// Each span's trace ID (a reader that does not know the fragment's trace, as the metrics
    /// generator's queue).
    pub trace_id: bool,
}

impl Projection {
    /// Everything a trace view reads (the same answers as a full decode).
    pub fn everything() -> Projection {
        Projection {
            span_name: true,
            status: true,
            span_attributes: Keys::All,
            resource_attributes: Keys::All,
            scope_identity: true,
            scope_attributes: Keys::All,
            events: true,
            links: true,
            trace_id: false,
        }
    }
}

/// Decodes the resource spans of one `ExportTraceServiceRequest`, keeping what `projection`
/// says. Bytes a full decode would refuse may be accepted when the damage lies in a skipped
/// field; the live store holds only fragments that decode whole (decoded at ingest, or walked
/// by the raw split, which checks that they would).
pub fn decode_projected(
    mut buf: &[u8],
    projection: &Projection,
) -> Result<Vec<ResourceSpans>, ProjectedError> {
    let mut out = Vec::new();
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        if tag == 1 && wire_type == WireType::LengthDelimited {
            out.push(resource_spans(nested(&mut buf)?, projection)?);
        } else {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
        }
    }
    Ok(out)
}

/// The body of a length-delimited field, advancing `buf` past it.
fn nested<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], ProjectedError> {
    let length = decode_varint(buf)?;
    let length = usize::try_from(length)
        .ok()
        .filter(|length| *length <= buf.len())
        .ok_or(ProjectedError::Truncated)?;
    let (body, rest) = buf.split_at(length);
    *buf = rest;
    Ok(body)
}

/// Walks one message's fields: `keep(tag)` says whether the generated decoder merges it, and
/// `special` may take a field itself (returning true); everything else is skipped.
fn walk<M: Message>(
    message: &mut M,
    mut buf: &[u8],
    keep: impl Fn(u32) -> bool,
    mut special: impl FnMut(&mut M, u32, WireType, &mut &[u8]) -> Result<bool, ProjectedError>,
) -> Result<(), ProjectedError> {
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        if special(message, tag, wire_type, &mut buf)? {
            continue;
        }
        if keep(tag) {
            message.merge_field(tag, wire_type, &mut buf, DecodeContext::default())?;
        } else {
            skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
        }
    }
    Ok(())
}

/// Takes a repeated `KeyValue` field into `out` when its key is kept; the key is compared on
/// the wire before anything is allocated.
fn attribute(
    keys: &Keys,
    wire_type: WireType,
    buf: &mut &[u8],
    out: &mut Vec<KeyValue>,
) -> Result<(), ProjectedError> {
    if wire_type != WireType::LengthDelimited {
        return Ok(skip_field(wire_type, 0, buf, DecodeContext::default())?);
    }
    let body = nested(buf)?;
    if keys.keeps(key_of(body)?) {
        out.push(KeyValue::decode(body)?);
    }
    Ok(())
}

/// The key of an encoded `KeyValue` (the last one, as a decoder would keep; empty if none).
fn key_of(mut body: &[u8]) -> Result<&[u8], ProjectedError> {
    let mut key: &[u8] = &[];
    while body.has_remaining() {
        let (tag, wire_type) = decode_key(&mut body)?;
        if tag == 1 && wire_type == WireType::LengthDelimited {
            key = nested(&mut body)?;
        } else {
            skip_field(wire_type, tag, &mut body, DecodeContext::default())?;
        }
    }
    Ok(key)
}

fn resource_spans(buf: &[u8], projection: &Projection) -> Result<ResourceSpans, ProjectedError> {
    let mut out = ResourceSpans::default();
    walk(
        &mut out,
        buf,
        |_| false,
        |out, tag, wire_type, buf| {
            if wire_type != WireType::LengthDelimited {
                return Ok(false);
            }
            match tag {
                1 => {
                    let resource = out.resource.get_or_insert_with(Resource::default);
                    let body = nested(buf)?;
                    if !projection.resource_attributes.is_none() {
                        walk(
                            resource,
                            body,
                            |_| false,
                            |resource, tag, wire_type, buf| {
                                if tag != 1 {
                                    return Ok(false);
                                }
                                attribute(
                                    &projection.resource_attributes,
                                    wire_type,
                                    buf,
                                    &mut resource.attributes,
                                )?;
                                Ok(true)
                            },
                        )?;
                    }
                }
                2 => out.scope_spans.push(scope_spans(nested(buf)?, projection)?),
                _ => return Ok(false),
            }
            Ok(true)
        },
    )?;
    Ok(out)
}

fn scope_spans(buf: &[u8], projection: &Projection) -> Result<ScopeSpans, ProjectedError> {
    let mut out = ScopeSpans::default();
    walk(
        &mut out,
        buf,
        |_| false,
        |out, tag, wire_type, buf| {
            if wire_type != WireType::LengthDelimited {
                return Ok(false);
            }
            match tag {
                1 => {
                    let scope = out.scope.get_or_insert_with(InstrumentationScope::default);
                    let body = nested(buf)?;
                    if !projection.scope_identity && projection.scope_attributes.is_none() {
                        return Ok(true);
                    }
                    walk(
                        scope,
                        body,
                        |tag| projection.scope_identity && (tag == 1 || tag == 2),
                        |scope, tag, wire_type, buf| {
                            if tag != 3 || projection.scope_attributes.is_none() {
                                return Ok(false);
                            }
                            attribute(
                                &projection.scope_attributes,
                                wire_type,
                                buf,
                                &mut scope.attributes,
                            )?;
                            Ok(true)
                        },
                    )?;
                }
                2 => out.spans.push(span(nested(buf)?, projection)?),
                _ => return Ok(false),
            }
            Ok(true)
        },
    )?;
    Ok(out)
}

fn span(buf: &[u8], projection: &Projection) -> Result<Span, ProjectedError> {
    let mut out = Span::default();
    walk(
        &mut out,
        buf,
        |tag| match tag {
            // span ID, parent span ID, kind, start, end
            2 | 4 | 6 | 7 | 8 => true,
            1 => projection.trace_id,
            5 => projection.span_name,
            11 => projection.events,
            13 => projection.links,
            15 => projection.status,
            _ => false,
        },
        |span, tag, wire_type, buf| {
            if tag != 9 || projection.span_attributes.is_none() {
                return Ok(false);
            }
            attribute(
                &projection.span_attributes,
                wire_type,
                buf,
                &mut span.attributes,
            )?;
            Ok(true)
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use crate::otlp::common::v1::{any_value, AnyValue};
    use crate::otlp::trace::v1::{span, Status};

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            trace_state: "x=y".into(),
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: vec![kv("a", "1"), kv("b", "2"), kv("a", "3")],
            dropped_attributes_count: 4,
            events: vec![span::Event {
                time_unix_nano: 15,
                name: "boom".into(),
                attributes: vec![kv("e", "1")],
                dropped_attributes_count: 0,
            }],
            links: vec![span::Link {
                trace_id: vec![9; 16],
                span_id: vec![8; 8],
                ..Default::default()
            }],
            status: Some(Status {
                message: "bad".into(),
                code: 2,
            }),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", "shop"), kv("host", "h")],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1.0".into(),
                        attributes: vec![kv("s", "1")],
                        dropped_attributes_count: 0,
                    }),
                    spans: vec![span],
                    schema_url: "https://scope".into(),
                }],
                schema_url: "https://resource".into(),
            }],
        }
    }

    #[test]
    fn everything_projected_keeps_every_field_a_trace_view_reads() {
        let full = request();
        let projected =
            decode_projected(&full.encode_to_vec(), &Projection::everything()).expect("decodes");
        let span = &projected[0].scope_spans[0].spans[0];
        let original = &full.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.attributes, original.attributes);
        assert_eq!(span.events, original.events);
        assert_eq!(span.links, original.links);
        assert_eq!(span.status, original.status);
        assert_eq!(span.name, original.name);
        assert_eq!(
            projected[0].resource.as_ref().unwrap().attributes,
            full.resource_spans[0].resource.as_ref().unwrap().attributes
        );
        assert_eq!(
            projected[0].scope_spans[0].scope,
            full.resource_spans[0].scope_spans[0].scope
        );
        // What no query reads is skipped even then.
        assert!(span.trace_id.is_empty() && span.trace_state.is_empty());
        assert_eq!(projected[0].schema_url, "");
    }

    #[test]
    fn trace_ids_are_kept_when_asked_for() {
        let projection = Projection {
            trace_id: true,
            ..Default::default()
        };
        let projected = decode_projected(&request().encode_to_vec(), &projection).expect("decodes");
        assert_eq!(projected[0].scope_spans[0].spans[0].trace_id, vec![1; 16]);
    }

    #[test]
    fn nothing_projected_keeps_only_ids_kind_and_times() {
        let projected =
            decode_projected(&request().encode_to_vec(), &Projection::default()).expect("decodes");
        let span = &projected[0].scope_spans[0].spans[0];
        let expected = Span {
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            ..Default::default()
        };
        assert_eq!(span, &expected);
        assert_eq!(
            projected[0].resource,
            Some(Resource::default()),
            "the resource is there, without attributes"
        );
        assert_eq!(
            projected[0].scope_spans[0].scope,
            Some(InstrumentationScope::default())
        );
    }

    #[test]
    fn only_the_named_keys_are_kept_in_their_order() {
        let mut projection = Projection::default();
        projection.span_attributes.add("a");
        projection.resource_attributes.add("service.name");
        projection.scope_attributes.add("nope");
        let projected = decode_projected(&request().encode_to_vec(), &projection).expect("decodes");
        let span = &projected[0].scope_spans[0].spans[0];
        assert_eq!(span.attributes, vec![kv("a", "1"), kv("a", "3")]);
        assert_eq!(
            projected[0].resource.as_ref().unwrap().attributes,
            vec![kv("service.name", "shop")]
        );
        assert!(projected[0].scope_spans[0]
            .scope
            .as_ref()
            .unwrap()
            .attributes
            .is_empty());
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let bytes = request().encode_to_vec();
        for cut in 0..bytes.len() {
            // Some cuts end on a field boundary and decode (fewer fields); none may panic.
            let _ = decode_projected(&bytes[..cut], &Projection::everything());
            let _ = decode_projected(&bytes[..cut], &Projection::default());
        }
        assert!(decode_projected(&bytes[..bytes.len() - 1], &Projection::everything()).is_err());
    }
}
