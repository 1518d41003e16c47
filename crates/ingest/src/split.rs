//! Splits a validated batch into one fragment per trace. A fragment keeps the resource and
//! scope of its spans, so a trace assembled from fragments is still a valid list of OTLP
//! `ResourceSpans`. Spans of one trace usually arrive together, so this copies each resource
//! once per trace in the batch rather than once per span.

use std::collections::{HashMap, HashSet};

use andante_model::{TraceId, UnixNanos};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use prost::encoding::{message, string};

use crate::{ExportTraceServiceRequest, IngestError};

/// A request split by trace may take at most this many times its own size (and at least
/// [`SPLIT_BYTES_FLOOR`]). Each trace's fragment carries its own copy of its resource and
/// scope, so a body whose one large resource is shared by many small traces would otherwise be
/// multiplied in memory, the WAL and the log: a 1 MB resource over 20 000 one-span traces is
/// 20 GB from a 22 MB request. Ordinary batches stay far below it (a 2 KB resource over the
/// OTel collector's 8 192-span batch, each span its own trace, is 16 MB).
pub const SPLIT_BYTES_FACTOR: u64 = 8;
/// See [`SPLIT_BYTES_FACTOR`]; small requests may always take this much.
pub const SPLIT_BYTES_FLOOR: u64 = 64 << 20;

/// The most bytes a request of `body_bytes` may take once split by trace.
pub fn split_bytes_limit(body_bytes: usize) -> u64 {
    (body_bytes as u64)
        .saturating_mul(SPLIT_BYTES_FACTOR)
        .max(SPLIT_BYTES_FLOOR)
}

/// Framing a copied resource or scope may add: a key and a length prefix.
pub(crate) const COPY_FRAMING: usize = 12;

/// Refuses a validated request whose split (`split_by_trace`, then `encode`) could exceed
/// [`split_bytes_limit`], before anything is copied. `body_bytes`, the decoded body's size,
/// bounds what the spans themselves take; the rest is one copy of a resource per trace it holds
/// and of a scope per trace it holds, which is what `split_by_trace` writes at most. A cheap
/// bound (one copy per span) settles ordinary requests without hashing a trace ID.
pub fn check_split_bytes(
    request: &ExportTraceServiceRequest,
    body_bytes: usize,
) -> Result<(), IngestError> {
    let limit = split_bytes_limit(body_bytes);
    let resource_header = |rs: &ResourceSpans| {
        rs.resource
            .as_ref()
            .map_or(0, |r| message::encoded_len(1, r))
            + string::encoded_len(3, &rs.schema_url)
            + COPY_FRAMING
    };
    let scope_header = |ss: &ScopeSpans| {
        ss.scope.as_ref().map_or(0, |s| message::encoded_len(1, s))
            + string::encoded_len(3, &ss.schema_url)
            + COPY_FRAMING
    };
    let mut copies = 0u64;
    for rs in &request.resource_spans {
        let resource = resource_header(rs) as u64;
        for ss in &rs.scope_spans {
            let spans = ss.spans.len() as u64;
            copies =
                copies.saturating_add(spans.saturating_mul(resource + scope_header(ss) as u64));
        }
    }
    if (body_bytes as u64).saturating_add(copies) <= limit {
        return Ok(());
    }
    let mut split_bytes = body_bytes as u64;
    for rs in &request.resource_spans {
        let mut in_resource: HashSet<&[u8]> = HashSet::new();
        for ss in &rs.scope_spans {
            let in_scope: HashSet<&[u8]> = ss.spans.iter().map(|s| s.trace_id.as_slice()).collect();
            split_bytes += in_scope.len() as u64 * scope_header(ss) as u64;
            in_resource.extend(in_scope);
        }
        split_bytes += in_resource.len() as u64 * resource_header(rs) as u64;
    }
    if split_bytes > limit {
        return Err(IngestError::SplitTooLarge {
            split_bytes,
            body_bytes,
            limit_bytes: limit,
        });
    }
    Ok(())
}

/// The spans of one trace from one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceFragment {
    pub trace_id: TraceId,
    pub resource_spans: Vec<ResourceSpans>,
    pub span_count: usize,
    pub start_unix_nanos: UnixNanos,
    pub end_unix_nanos: UnixNanos,
}

/// Groups spans by trace ID. Spans must already be validated (IDs of the right length);
/// a span that is not is skipped, which `validate` guarantees never happens.
pub fn split_by_trace(request: ExportTraceServiceRequest) -> Vec<TraceFragment> {
    let mut fragments: Vec<TraceFragment> = Vec::new();
    let mut index_of: HashMap<TraceId, usize> = HashMap::new();
    for resource_spans in request.resource_spans {
        let ResourceSpans {
            resource,
            scope_spans,
            schema_url,
        } = resource_spans;
        for scope in scope_spans {
            let ScopeSpans {
                scope: scope_meta,
                spans,
                schema_url: scope_schema_url,
            } = scope;
            for span in spans {
                let Ok(trace_id) = TraceId::from_bytes(&span.trace_id) else {
                    debug_assert!(false, "split_by_trace got an unvalidated span");
                    continue;
                };
                let fragment_index = *index_of.entry(trace_id).or_insert_with(|| {
                    fragments.push(TraceFragment {
                        trace_id,
                        resource_spans: Vec::new(),
                        span_count: 0,
                        start_unix_nanos: u64::MAX,
                        end_unix_nanos: 0,
                    });
                    fragments.len() - 1
                });
                let fragment = &mut fragments[fragment_index];
                fragment.span_count += 1;
                fragment.start_unix_nanos =
                    fragment.start_unix_nanos.min(span.start_time_unix_nano);
                fragment.end_unix_nanos = fragment.end_unix_nanos.max(span.end_time_unix_nano);
                // Reuse the last resource/scope pair when it is the one this span came from.
                let needs_resource = fragment
                    .resource_spans
                    .last()
                    .is_none_or(|last| last.resource != resource || last.schema_url != schema_url);
                if needs_resource {
                    fragment.resource_spans.push(ResourceSpans {
                        resource: resource.clone(),
                        scope_spans: Vec::new(),
                        schema_url: schema_url.clone(),
                    });
                }
                let last_resource = fragment.resource_spans.last_mut().expect("pushed above");
                let needs_scope = last_resource.scope_spans.last().is_none_or(|last| {
                    last.scope != scope_meta || last.schema_url != scope_schema_url
                });
                if needs_scope {
                    last_resource.scope_spans.push(ScopeSpans {
                        scope: scope_meta.clone(),
                        spans: Vec::new(),
                        schema_url: scope_schema_url.clone(),
                    });
                }
                last_resource
                    .scope_spans
                    .last_mut()
                    .expect("pushed above")
                    .spans
                    .push(span);
            }
        }
    }
    fragments
}

/// One trace's spans from one batch, encoded as they are held in memory and written to the log:
/// an `ExportTraceServiceRequest` whose `resource_spans` are the fragment's.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedFragment {
    pub trace_id: TraceId,
    pub span_count: usize,
    pub bytes: bytes::Bytes,
}

/// Groups a validated request's spans by trace and encodes each group as it is held and logged:
/// the decoding path's counterpart of `split_protobuf`.
pub fn encode_by_trace(request: ExportTraceServiceRequest) -> Vec<EncodedFragment> {
    split_by_trace(request)
        .iter()
        .map(TraceFragment::encode)
        .collect()
}

impl TraceFragment {
    pub fn encode(&self) -> EncodedFragment {
        EncodedFragment {
            trace_id: self.trace_id,
            span_count: self.span_count,
            bytes: encode_resource_spans(&self.resource_spans),
        }
    }
}

/// Encodes resource spans as an `ExportTraceServiceRequest` (field 1, repeated) without cloning
/// them into a request first.
pub fn encode_resource_spans(resource_spans: &[ResourceSpans]) -> bytes::Bytes {
    let len: usize = resource_spans
        .iter()
        .map(|rs| prost::encoding::message::encoded_len(1, rs))
        .sum();
    let mut out = Vec::with_capacity(len);
    for rs in resource_spans {
        prost::encoding::message::encode(1, rs, &mut out);
    }
    bytes::Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use andante_model::ErrorKind;
    use opentelemetry_proto::tonic::trace::v1::Span;

    #[test]
    fn spans_group_by_trace_keeping_resources() {
        let span = |trace: u8, id: u8, start: u64| Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            start_time_unix_nano: start,
            end_time_unix_nano: start + 5,
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1, 1, 100), span(2, 2, 50), span(1, 3, 10)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let fragments = split_by_trace(request);
        assert_eq!(fragments.len(), 2);
        assert_eq!(fragments[0].trace_id, TraceId([1; 16]));
        assert_eq!(fragments[0].span_count, 2);
        assert_eq!(
            (fragments[0].start_unix_nanos, fragments[0].end_unix_nanos),
            (10, 105)
        );
        assert_eq!(fragments[0].resource_spans.len(), 1);
        assert_eq!(fragments[0].resource_spans[0].scope_spans[0].spans.len(), 2);
        assert_eq!(fragments[1].span_count, 1);
    }

    /// One resource of `resource_bytes` (in 64 KB attributes) over `traces` traces of
    /// `spans_per_trace` spans each.
    fn shared_resource(
        resource_bytes: usize,
        traces: u32,
        spans_per_trace: u32,
    ) -> ExportTraceServiceRequest {
        use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        let attributes = (0..resource_bytes.div_ceil(60_000))
            .map(|i| KeyValue {
                key: format!("blob.{i}"),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("x".repeat(60_000))),
                }),
                ..Default::default()
            })
            .collect();
        let spans = (0..traces * spans_per_trace)
            .map(|i| {
                let mut trace_id = vec![0; 16];
                trace_id[..4].copy_from_slice(&(i / spans_per_trace + 1).to_be_bytes());
                Span {
                    trace_id,
                    span_id: (u64::from(i) + 1).to_be_bytes().to_vec(),
                    start_time_unix_nano: 10,
                    end_time_unix_nano: 20,
                    name: "op".into(),
                    ..Default::default()
                }
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn bytes_after_split(request: &ExportTraceServiceRequest) -> u64 {
        encode_by_trace(request.clone())
            .iter()
            .map(|f| f.bytes.len() as u64)
            .sum()
    }

    #[test]
    fn a_large_resource_shared_by_many_traces_is_refused_before_it_is_copied() {
        use prost::Message;
        // 1.2 MB of resource over 100 one-span traces: 120 MB once split, from a 1.2 MB body.
        let request = shared_resource(1_200_000, 100, 1);
        let body = request.encoded_len();
        let error = check_split_bytes(&request, body).unwrap_err();
        let IngestError::SplitTooLarge {
            split_bytes,
            body_bytes,
            limit_bytes,
        } = error
        else {
            panic!("expected SplitTooLarge, got {error:?}");
        };
        assert_eq!(body_bytes, body);
        assert_eq!(limit_bytes, SPLIT_BYTES_FLOOR);
        // The count bounds what the split would really write, and is not far above it.
        let actual = bytes_after_split(&request);
        assert!(
            actual > limit_bytes,
            "{actual} would not exceed {limit_bytes}"
        );
        assert!(split_bytes >= actual && split_bytes < actual + actual / 10);
        assert_eq!(
            error_kind(&check_split_bytes(&request, body)),
            Some(ErrorKind::PayloadTooLarge)
        );
        let message = check_split_bytes(&request, body).unwrap_err().to_string();
        assert!(
            message.contains(&format!("over the limit of {limit_bytes} bytes")),
            "{message}"
        );
    }

    fn error_kind(result: &Result<(), IngestError>) -> Option<ErrorKind> {
        result.as_ref().err().map(IngestError::kind)
    }

    #[test]
    fn a_large_resource_over_few_traces_passes_the_exact_count() {
        use prost::Message;
        // The same resource and span count in one trace: the cheap bound (a copy per span) is
        // over the limit, the exact count (one copy) is not.
        let request = shared_resource(1_200_000, 1, 100);
        let body = request.encoded_len();
        assert!(check_split_bytes(&request, body).is_ok());
        assert!(bytes_after_split(&request) < 2 * body as u64);
        // And a limit scaled by the body: a body of 16 MB may take 128 MB.
        assert_eq!(split_bytes_limit(16 << 20), 128 << 20);
        assert_eq!(split_bytes_limit(1), SPLIT_BYTES_FLOOR);
    }
}
