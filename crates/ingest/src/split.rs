//! Splits a validated batch into one fragment per trace. A fragment keeps the resource and
//! scope of its spans, so a trace assembled from fragments is still a valid list of OTLP
//! `ResourceSpans`. Spans of one trace usually arrive together, so this copies each resource
//! once per trace in the batch rather than once per span.

use std::collections::HashMap;

use andante_model::{TraceId, UnixNanos};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

use crate::ExportTraceServiceRequest;

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
}
