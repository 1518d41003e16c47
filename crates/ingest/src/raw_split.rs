//! Splitting an OTLP/protobuf trace request by trace on its bytes, without decoding it.
//!
//! The decoding path (`decode_otlp_protobuf` → `validate` → `split_by_trace` → `encode`)
//! builds every string and attribute of a batch, clones resources into each trace's fragment
//! and encodes the fragments again: in the side-by-side ingest profile, a third of the server's
//! CPU. The live store and the log keep fragments as protobuf anyway, so this walks the wire
//! once, checks what the decoder and `validate` would check, and copies each span's bytes,
//! with its resource's and scope's own fields, into its trace's fragment.
//!
//! It answers `None` whenever the decoding path might answer differently: a request that would
//! not decode, any span that validation would refuse or change (an all-zero parent ID), an
//! unknown field, a repeated `oneof` member or attribute value, nesting past [`MAX_DEPTH`]. The
//! caller then takes the decoding path, which owns every error message. So for any body this
//! returns, the decoding path accepts every span, and each fragment decodes to the same
//! resources, scopes and spans it would hold (property-tested below, and by the `otlp_decode`
//! fuzz target through `check_raw_split`).
//!
//! Fields are copied as the client wrote them, repeats and non-canonical varints included (a
//! repeated resource, scope or status merges on decode exactly as in the body), so a fragment's
//! size, which `limits.max_bytes_per_trace` and the log's record limit charge, is the stored size
//! of the client's bytes rather than of a re-encoding.

use std::collections::HashMap;
use std::ops::Range;

use andante_model::{SpanId, TraceId};
use prost::encoding::{decode_key, decode_varint, encode_varint, encoded_len_varint, WireType};

use crate::split::{split_bytes_limit, COPY_FRAMING};
use crate::{EncodedFragment, ValidationLimits};

/// Message nesting the walk follows; deeper bodies (attribute values nested this deep) take the
/// decoding path, whose own limit (prost's 100) then decides.
pub const MAX_DEPTH: u32 = 32;

/// One field as it sits on the wire.
enum Value<'a> {
    Varint,
    Fixed64(u64),
    Fixed32,
    Bytes(&'a [u8]),
}

/// The next field of `buf`, or `None` for anything the decoder would refuse or that a walk
/// cannot mirror (groups).
fn next_field<'a>(buf: &mut &'a [u8]) -> Option<(u32, Value<'a>)> {
    let (tag, wire_type) = decode_key(buf).ok()?;
    let value = match wire_type {
        WireType::Varint => {
            decode_varint(buf).ok()?;
            Value::Varint
        }
        WireType::SixtyFourBit => {
            let (head, rest) = buf.split_first_chunk::<8>()?;
            *buf = rest;
            Value::Fixed64(u64::from_le_bytes(*head))
        }
        WireType::ThirtyTwoBit => {
            let (_, rest) = buf.split_first_chunk::<4>()?;
            *buf = rest;
            Value::Fixed32
        }
        WireType::LengthDelimited => {
            let len = usize::try_from(decode_varint(buf).ok()?).ok()?;
            if len > buf.len() {
                return None;
            }
            let (body, rest) = buf.split_at(len);
            *buf = rest;
            Value::Bytes(body)
        }
        WireType::StartGroup | WireType::EndGroup => return None,
    };
    Some((tag, value))
}

fn text(bytes: &[u8]) -> Option<usize> {
    std::str::from_utf8(bytes).ok().map(str::len)
}

/// Walks every field of a message with `field`, which answers `None` for a field it does not
/// know or whose wire type is wrong.
fn walk<'a>(mut buf: &'a [u8], mut field: impl FnMut(u32, Value<'a>) -> Option<()>) -> Option<()> {
    while !buf.is_empty() {
        let (tag, value) = next_field(&mut buf)?;
        field(tag, value)?;
    }
    Some(())
}

/// Where each span sits and which resource and scope it came from.
struct PlacedSpan {
    trace_id: TraceId,
    scope: usize,
    /// The span message's bytes within the body.
    bytes: Range<usize>,
}

struct Scope {
    resource: usize,
    /// The scope's own fields (scope, schema URL), tag and length included.
    fields: Vec<Range<usize>>,
}

struct Walker<'a> {
    body: &'a [u8],
    limits: ValidationLimits,
    latest_end: u64,
    resources: Vec<Vec<Range<usize>>>,
    /// Per resource, whether one of its attributes is over the limit.
    oversized: Vec<bool>,
    scopes: Vec<Scope>,
    spans: Vec<PlacedSpan>,
}

impl<'a> Walker<'a> {
    fn range_of(&self, slice: &[u8]) -> Range<usize> {
        let start = slice.as_ptr() as usize - self.body.as_ptr() as usize;
        start..start + slice.len()
    }

    fn request(&mut self) -> Option<()> {
        let mut buf = self.body;
        while !buf.is_empty() {
            match next_field(&mut buf)? {
                (1, Value::Bytes(resource_spans)) => self.resource_spans(resource_spans)?,
                _ => return None,
            }
        }
        Some(())
    }

    fn resource_spans(&mut self, mut buf: &'a [u8]) -> Option<()> {
        let resource = self.resources.len();
        self.resources.push(Vec::new());
        self.oversized.push(false);
        while !buf.is_empty() {
            let before = buf;
            let (tag, value) = next_field(&mut buf)?;
            let whole = &before[..before.len() - buf.len()];
            match (tag, value) {
                (1, Value::Bytes(body)) => {
                    if !self.resource(body)? {
                        self.oversized[resource] = true;
                    }
                    let range = self.range_of(whole);
                    self.resources[resource].push(range);
                }
                (2, Value::Bytes(body)) => self.scope_spans(body, resource)?,
                (3, Value::Bytes(body)) => {
                    text(body)?;
                    let range = self.range_of(whole);
                    self.resources[resource].push(range);
                }
                _ => return None,
            }
        }
        Some(())
    }

    /// Whether a well-formed resource's attributes are all within the limit (`validate` refuses
    /// the spans of one that is not, so only a resource with spans matters).
    fn resource(&self, buf: &[u8]) -> Option<bool> {
        let mut within = true;
        walk(buf, |tag, value| match (tag, value) {
            (1, Value::Bytes(attribute)) => {
                within &= key_value_size(attribute, 1)? <= self.limits.max_attribute_bytes;
                Some(())
            }
            (2, Value::Varint) => Some(()),
            (3, Value::Bytes(entity_ref)) => entity_ref_fields(entity_ref),
            _ => None,
        })?;
        Some(within)
    }

    fn scope_spans(&mut self, mut buf: &'a [u8], resource: usize) -> Option<()> {
        let scope = self.scopes.len();
        self.scopes.push(Scope {
            resource,
            fields: Vec::new(),
        });
        while !buf.is_empty() {
            let before = buf;
            let (tag, value) = next_field(&mut buf)?;
            let whole = &before[..before.len() - buf.len()];
            match (tag, value) {
                (1, Value::Bytes(body)) => {
                    self.instrumentation_scope(body)?;
                    let range = self.range_of(whole);
                    self.scopes[scope].fields.push(range);
                }
                (2, Value::Bytes(body)) => {
                    let trace_id = self.span(body)?;
                    let bytes = self.range_of(body);
                    self.spans.push(PlacedSpan {
                        trace_id,
                        scope,
                        bytes,
                    });
                }
                (3, Value::Bytes(body)) => {
                    text(body)?;
                    let range = self.range_of(whole);
                    self.scopes[scope].fields.push(range);
                }
                _ => return None,
            }
        }
        Some(())
    }

    fn instrumentation_scope(&self, buf: &[u8]) -> Option<()> {
        walk(buf, |tag, value| match (tag, value) {
            (1 | 2, Value::Bytes(body)) => text(body).map(drop),
            // `validate` does not size scope attributes.
            (3, Value::Bytes(attribute)) => key_value_size(attribute, 1).map(drop),
            (4, Value::Varint) => Some(()),
            _ => None,
        })
    }

    /// Checks a span as `validate` would and answers its trace ID when it would be accepted
    /// unchanged. Singular fields that repeat resolve as the decoder resolves them: the last
    /// one wins.
    fn span(&self, buf: &[u8]) -> Option<TraceId> {
        let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
        let (mut start, mut end) = (0u64, 0u64);
        walk(buf, |tag, value| match (tag, value) {
            (1, Value::Bytes(bytes)) => {
                trace_id = bytes;
                Some(())
            }
            (2, Value::Bytes(bytes)) => {
                span_id = bytes;
                Some(())
            }
            (4, Value::Bytes(bytes)) => {
                parent = bytes;
                Some(())
            }
            (3 | 5, Value::Bytes(body)) => text(body).map(drop),
            (6 | 10 | 12 | 14, Value::Varint) | (16, Value::Fixed32) => Some(()),
            (7, Value::Fixed64(nanos)) => {
                start = nanos;
                Some(())
            }
            (8, Value::Fixed64(nanos)) => {
                end = nanos;
                Some(())
            }
            (9, Value::Bytes(attribute)) => self.attribute(attribute),
            (11, Value::Bytes(event)) => self.event(event),
            (13, Value::Bytes(link)) => self.link(link),
            (15, Value::Bytes(status)) => walk(status, |tag, value| match (tag, value) {
                (2, Value::Bytes(body)) => text(body).map(drop),
                (3, Value::Varint) => Some(()),
                _ => None,
            }),
            _ => None,
        })?;
        let trace_id = TraceId::from_bytes(trace_id).ok()?;
        SpanId::from_bytes(span_id).ok()?;
        // An all-zero parent is rewritten to "none" by validation: the decoding path does that.
        if !parent.is_empty() {
            SpanId::from_bytes(parent).ok()?;
        }
        (start != 0 && end >= start && end <= self.latest_end).then_some(trace_id)
    }

    fn event(&self, buf: &[u8]) -> Option<()> {
        walk(buf, |tag, value| match (tag, value) {
            (1, Value::Fixed64(_)) | (4, Value::Varint) => Some(()),
            (2, Value::Bytes(body)) => text(body).map(drop),
            (3, Value::Bytes(attribute)) => self.attribute(attribute),
            _ => None,
        })
    }

    fn link(&self, buf: &[u8]) -> Option<()> {
        let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
        walk(buf, |tag, value| match (tag, value) {
            (1, Value::Bytes(bytes)) => {
                trace_id = bytes;
                Some(())
            }
            (2, Value::Bytes(bytes)) => {
                span_id = bytes;
                Some(())
            }
            (3, Value::Bytes(body)) => text(body).map(drop),
            (4, Value::Bytes(attribute)) => self.attribute(attribute),
            (5, Value::Varint) | (6, Value::Fixed32) => Some(()),
            _ => None,
        })?;
        TraceId::from_bytes(trace_id).ok()?;
        SpanId::from_bytes(span_id).ok().map(drop)
    }

    /// An attribute of a resource, scope, span, event or link: well formed and within
    /// `max_attribute_bytes` as `validate` sizes it.
    fn attribute(&self, buf: &[u8]) -> Option<()> {
        (key_value_size(buf, 1)? <= self.limits.max_attribute_bytes).then_some(())
    }
}

fn entity_ref_fields(buf: &[u8]) -> Option<()> {
    walk(buf, |tag, value| match (tag, value) {
        (1..=4, Value::Bytes(body)) => text(body).map(drop),
        _ => None,
    })
}

/// A `KeyValue`'s size as `validate` counts it: the key's bytes plus the value's.
fn key_value_size(buf: &[u8], depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let (mut key, mut value, mut values) = (0, 0, 0);
    walk(buf, |tag, field| match (tag, field) {
        (1, Value::Bytes(body)) => {
            key = text(body)?;
            Some(())
        }
        (2, Value::Bytes(body)) => {
            // A repeated message field merges in the decoder; leave that to it.
            values += 1;
            value = any_value_size(body, depth + 1)?;
            (values == 1).then_some(())
        }
        (3, Value::Varint) => Some(()),
        _ => None,
    })?;
    Some(key + value)
}

/// An `AnyValue`'s size as `validate` counts it (strings and bytes by length, numbers 8, a
/// bool 1, a string index 4, arrays and lists by their members).
fn any_value_size(buf: &[u8], depth: u32) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    let (mut size, mut members) = (0, 0);
    walk(buf, |tag, value| {
        members += 1;
        if members > 1 {
            return None;
        }
        size = match (tag, value) {
            (1, Value::Bytes(body)) => text(body)?,
            (7, Value::Bytes(body)) => body.len(),
            (2, Value::Varint) => 1,
            (3, Value::Varint) | (4, Value::Fixed64(_)) => 8,
            (8, Value::Varint) => 4,
            (5, Value::Bytes(array)) => {
                let mut sum = 0usize;
                walk(array, |tag, value| match (tag, value) {
                    (1, Value::Bytes(member)) => {
                        sum = sum.checked_add(any_value_size(member, depth + 1)?)?;
                        Some(())
                    }
                    _ => None,
                })?;
                sum
            }
            (6, Value::Bytes(list)) => {
                let mut sum = 0usize;
                walk(list, |tag, value| match (tag, value) {
                    (1, Value::Bytes(member)) => {
                        sum = sum.checked_add(key_value_size(member, depth + 1)?)?;
                        Some(())
                    }
                    _ => None,
                })?;
                sum
            }
            _ => return None,
        };
        Some(())
    })?;
    Some(size)
}

/// Splits `body`, an `ExportTraceServiceRequest`, into one fragment per trace, in the order
/// each trace first appears; `None` when the decoding path must judge it (see the module).
/// `now_unix_nanos` is the time of receipt, as for `validate`.
pub fn split_protobuf(
    body: &[u8],
    limits: ValidationLimits,
    now_unix_nanos: u64,
) -> Option<Vec<EncodedFragment>> {
    let mut walker = Walker {
        body,
        limits,
        latest_end: now_unix_nanos.saturating_add(limits.max_future_nanos),
        resources: Vec::new(),
        oversized: Vec::new(),
        scopes: Vec::new(),
        spans: Vec::new(),
    };
    walker.request()?;
    if walker
        .spans
        .iter()
        .any(|span| walker.oversized[walker.scopes[span.scope].resource])
    {
        return None;
    }
    // One copy of its resource and scope per span bounds what the fragments add to the body;
    // past the limit the decoding path counts exactly and refuses with its message.
    let header: Vec<usize> = walker
        .scopes
        .iter()
        .map(|scope| {
            fields_len(&scope.fields)
                + fields_len(&walker.resources[scope.resource])
                + 2 * COPY_FRAMING
        })
        .collect();
    let copies: u64 = walker
        .spans
        .iter()
        .map(|span| header[span.scope] as u64)
        .sum();
    if (body.len() as u64).saturating_add(copies) > split_bytes_limit(body.len()) {
        return None;
    }
    let mut index_of: HashMap<TraceId, usize> = HashMap::new();
    let mut traces: Vec<(TraceId, Vec<usize>)> = Vec::new();
    for (at, span) in walker.spans.iter().enumerate() {
        let index = *index_of.entry(span.trace_id).or_insert_with(|| {
            traces.push((span.trace_id, Vec::new()));
            traces.len() - 1
        });
        traces[index].1.push(at);
    }
    Some(
        traces
            .into_iter()
            .map(|(trace_id, spans)| EncodedFragment {
                trace_id,
                span_count: spans.len(),
                bytes: encode_fragment(&walker, &spans),
            })
            .collect(),
    )
}

fn fields_len(ranges: &[Range<usize>]) -> usize {
    ranges.iter().map(Range::len).sum()
}

/// A length-delimited field: its key and length prefix plus `len` bytes.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Writes the fragment of `spans` (indexes into the walker's spans, in body order) as an
/// `ExportTraceServiceRequest`: consecutive spans of one resource share a `ResourceSpans`, and
/// of one scope a `ScopeSpans`, each carrying its original fields byte for byte.
fn encode_fragment(walker: &Walker<'_>, spans: &[usize]) -> bytes::Bytes {
    let body = walker.body;
    // Runs of spans by scope, and runs of scope runs by resource.
    let mut scope_runs: Vec<(usize, Range<usize>)> = Vec::new();
    for (at, &span) in spans.iter().enumerate() {
        let scope = walker.spans[span].scope;
        match scope_runs.last_mut() {
            Some((last, run)) if *last == scope => run.end = at + 1,
            _ => scope_runs.push((scope, at..at + 1)),
        }
    }
    let scope_len = |(scope, run): &(usize, Range<usize>)| {
        fields_len(&walker.scopes[*scope].fields)
            + spans[run.clone()]
                .iter()
                .map(|&span| field_len(walker.spans[span].bytes.len()))
                .sum::<usize>()
    };
    let mut resource_runs: Vec<(usize, Range<usize>)> = Vec::new();
    for (at, (scope, _)) in scope_runs.iter().enumerate() {
        let resource = walker.scopes[*scope].resource;
        match resource_runs.last_mut() {
            Some((last, run)) if *last == resource => run.end = at + 1,
            _ => resource_runs.push((resource, at..at + 1)),
        }
    }
    let resource_len = |(resource, run): &(usize, Range<usize>)| {
        fields_len(&walker.resources[*resource])
            + scope_runs[run.clone()]
                .iter()
                .map(|scope_run| field_len(scope_len(scope_run)))
                .sum::<usize>()
    };
    let total: usize = resource_runs
        .iter()
        .map(|run| field_len(resource_len(run)))
        .sum();
    let mut out = Vec::with_capacity(total);
    for resource_run in &resource_runs {
        out.push(0x0a); // ExportTraceServiceRequest.resource_spans = 1
        encode_varint(resource_len(resource_run) as u64, &mut out);
        for range in &walker.resources[resource_run.0] {
            out.extend_from_slice(&body[range.clone()]);
        }
        for scope_run in &scope_runs[resource_run.1.clone()] {
            out.push(0x12); // ResourceSpans.scope_spans = 2
            encode_varint(scope_len(scope_run) as u64, &mut out);
            for range in &walker.scopes[scope_run.0].fields {
                out.extend_from_slice(&body[range.clone()]);
            }
            for &span in &spans[scope_run.1.clone()] {
                let bytes = &body[walker.spans[span].bytes.clone()];
                out.push(0x12); // ScopeSpans.spans = 2
                encode_varint(bytes.len() as u64, &mut out);
                out.extend_from_slice(bytes);
            }
        }
    }
    debug_assert_eq!(out.len(), total);
    bytes::Bytes::from(out)
}

#[cfg(test)]
mod tests;
