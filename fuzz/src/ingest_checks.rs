//! What the decoder targets do with a decoded request: validate it as the distributor does,
//! then split it by trace, checking the accounting the live store relies on:
//! - every span is either accepted or rejected, and the accepted ones are exactly those left;
//! - what is left has valid IDs and sane times, so validating it again rejects nothing;
//! - splitting by trace keeps every accepted span once, in a fragment of its own trace ID, with
//!   the fragment's time range covering its spans.

use std::collections::HashSet;

use andante_ingest::{split_by_trace, validate, ExportTraceServiceRequest, ValidationLimits};
use andante_model::{SpanId, TraceId};

/// The time of receipt every check uses (2023-11-14), so runs are reproducible.
pub const NOW_UNIX_NANOS: u64 = 1_700_000_000_000_000_000;

fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|resource_spans| &resource_spans.scope_spans)
        .map(|scope_spans| scope_spans.spans.len())
        .sum()
}

/// Validates with the default limits and with tiny ones (the oversized-attribute paths), then
/// splits the default-validated request.
pub fn check_request(request: ExportTraceServiceRequest) {
    let tiny = ValidationLimits {
        max_attribute_bytes: 16,
        max_future_nanos: 0,
    };
    check_with(request.clone(), tiny);
    check_with(request, ValidationLimits::default());
}

fn check_with(request: ExportTraceServiceRequest, limits: ValidationLimits) {
    let total = span_count(&request);
    let validated = validate(request, limits, NOW_UNIX_NANOS);
    assert_eq!(
        validated.accepted_spans + validated.rejected_spans,
        total,
        "validation lost count of spans"
    );
    assert_eq!(
        span_count(&validated.request),
        validated.accepted_spans,
        "accepted spans differ from the spans left"
    );
    assert_eq!(
        validated.first_error.is_some(),
        validated.rejected_spans > 0,
        "a rejection without a reason, or a reason without a rejection"
    );
    std::hint::black_box(validated.partial_success_message());
    for resource_spans in &validated.request.resource_spans {
        assert!(
            !resource_spans.scope_spans.is_empty(),
            "validation left an empty resource"
        );
        for scope_spans in &resource_spans.scope_spans {
            assert!(!scope_spans.spans.is_empty(), "validation left an empty scope");
            for span in &scope_spans.spans {
                assert!(TraceId::from_bytes(&span.trace_id).is_ok(), "accepted bad trace ID");
                assert!(SpanId::from_bytes(&span.span_id).is_ok(), "accepted bad span ID");
                assert!(
                    span.parent_span_id.is_empty() || SpanId::from_bytes(&span.parent_span_id).is_ok(),
                    "accepted bad parent span ID"
                );
                assert!(
                    span.start_time_unix_nano != 0
                        && span.start_time_unix_nano <= span.end_time_unix_nano,
                    "accepted bad span times"
                );
            }
        }
    }
    let again = validate(validated.request.clone(), limits, NOW_UNIX_NANOS);
    assert_eq!(
        (again.accepted_spans, again.rejected_spans),
        (validated.accepted_spans, 0),
        "validating a validated request rejected spans: {:?}",
        again.first_error
    );
    let fragments = split_by_trace(validated.request);
    let mut seen: HashSet<TraceId> = HashSet::new();
    let mut split_spans = 0;
    for fragment in &fragments {
        assert!(seen.insert(fragment.trace_id), "two fragments for one trace");
        let mut fragment_spans = 0;
        for resource_spans in &fragment.resource_spans {
            for scope_spans in &resource_spans.scope_spans {
                for span in &scope_spans.spans {
                    fragment_spans += 1;
                    assert_eq!(
                        span.trace_id,
                        fragment.trace_id.0.to_vec(),
                        "a span in another trace's fragment"
                    );
                    assert!(
                        fragment.start_unix_nanos <= span.start_time_unix_nano
                            && span.end_time_unix_nano <= fragment.end_unix_nanos,
                        "a fragment's time range does not cover its spans"
                    );
                }
            }
        }
        assert_eq!(fragment.span_count, fragment_spans, "fragment span count is wrong");
        split_spans += fragment_spans;
    }
    assert_eq!(split_spans, validated.accepted_spans, "splitting lost or duplicated spans");
}

/// Each span with its resource and scope, as one encoded `ResourceSpans`: compared as bytes, so
/// a NaN attribute value equals itself (prost keeps a double's bits).
fn flatten_request(request: ExportTraceServiceRequest) -> Vec<Vec<u8>> {
    use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans};
    use prost::Message;
    let mut flat = Vec::new();
    for rs in request.resource_spans {
        for ss in rs.scope_spans {
            for span in ss.spans {
                let one = ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: vec![ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: vec![span],
                        schema_url: ss.schema_url.clone(),
                    }],
                    schema_url: rs.schema_url.clone(),
                };
                flat.push(one.encode_to_vec());
            }
        }
    }
    flat
}

fn flatten(bytes: &[u8]) -> Vec<Vec<u8>> {
    use prost::Message;
    flatten_request(ExportTraceServiceRequest::decode(bytes).expect("a fragment decodes"))
}

/// The split on raw bytes (`split_protobuf`) against decode → validate → split → encode: when
/// it answers, the decoding path accepts every span unchanged and holds the same spans per
/// trace, under the same resources and scopes.
pub fn check_raw_split(body: &[u8]) {
    use prost::Message;
    let tiny = ValidationLimits {
        max_attribute_bytes: 16,
        max_future_nanos: 0,
    };
    for limits in [tiny, ValidationLimits::default()] {
        let Some(fragments) = andante_ingest::split_protobuf(body, limits, NOW_UNIX_NANOS) else {
            continue;
        };
        let request = ExportTraceServiceRequest::decode(body).expect("raw split answered a body that does not decode");
        let validated = validate(request.clone(), limits, NOW_UNIX_NANOS);
        assert_eq!(validated.rejected_spans, 0, "raw split answered a body with refused spans");
        assert!(
            flatten_request(validated.request.clone()) == flatten_request(request),
            "raw split answered a body whose spans validation changes"
        );
        let expected: Vec<_> = split_by_trace(validated.request)
            .iter()
            .map(|fragment| {
                let encoded = fragment.encode();
                (encoded.trace_id, encoded.span_count, flatten(&encoded.bytes))
            })
            .collect();
        let got: Vec<_> = fragments
            .iter()
            .map(|fragment| (fragment.trace_id, fragment.span_count, flatten(&fragment.bytes)))
            .collect();
        assert!(got == expected, "raw split disagrees with the decoding path");
    }
}
