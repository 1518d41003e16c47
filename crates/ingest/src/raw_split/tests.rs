//! The raw split against the decoding path: whenever it answers, the decoding path accepts
//! every span and holds the same spans, per trace, under the same resources and scopes.

use super::*;
use crate::{split_by_trace, validate, ExportTraceServiceRequest};
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use proptest::prelude::*;
use prost::Message;

const NOW: u64 = 1_700_000_000_000_000_000;

/// A change made to a valid span.
type Mutation = Box<dyn Fn(&mut Span)>;

/// A span with its resource and scope, as a decoded fragment holds it.
type Flat = (
    Option<Resource>,
    String,
    Option<InstrumentationScope>,
    String,
    Span,
);

fn flatten(resource_spans: Vec<ResourceSpans>) -> Vec<Flat> {
    let mut flat = Vec::new();
    for rs in resource_spans {
        for ss in rs.scope_spans {
            for span in ss.spans {
                flat.push((
                    rs.resource.clone(),
                    rs.schema_url.clone(),
                    ss.scope.clone(),
                    ss.schema_url.clone(),
                    span,
                ));
            }
        }
    }
    flat
}

/// What the decoding path makes of `body`: `None` when it refuses the body or any span.
fn decoding_path(
    body: &[u8],
    limits: ValidationLimits,
) -> Option<Vec<(TraceId, usize, Vec<Flat>)>> {
    let request = ExportTraceServiceRequest::decode(body).ok()?;
    let validated = validate(request, limits, NOW);
    if validated.rejected_spans > 0 {
        return None;
    }
    Some(
        split_by_trace(validated.request)
            .into_iter()
            .map(|fragment| {
                let encoded = fragment.encode();
                let decoded = ExportTraceServiceRequest::decode(encoded.bytes.as_ref()).unwrap();
                (
                    encoded.trace_id,
                    encoded.span_count,
                    flatten(decoded.resource_spans),
                )
            })
            .collect(),
    )
}

fn raw_path(body: &[u8], limits: ValidationLimits) -> Option<Vec<(TraceId, usize, Vec<Flat>)>> {
    Some(
        split_protobuf(body, limits, NOW)?
            .into_iter()
            .map(|fragment| {
                let decoded = ExportTraceServiceRequest::decode(fragment.bytes.as_ref())
                    .expect("a raw fragment decodes");
                (
                    fragment.trace_id,
                    fragment.span_count,
                    flatten(decoded.resource_spans),
                )
            })
            .collect(),
    )
}

/// The property: the raw split answers only what the decoding path would, identically.
fn check(body: &[u8], limits: ValidationLimits) -> Option<()> {
    let raw = raw_path(body, limits)?;
    let decoded = decoding_path(body, limits);
    assert_eq!(
        Some(&raw),
        decoded.as_ref(),
        "raw split disagrees with decoding"
    );
    Some(())
}

fn string(value: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.to_owned())),
    }
}

fn attribute(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(value),
        ..Default::default()
    }
}

fn span(trace: u8, id: u8) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: format!("op-{id}"),
        start_time_unix_nano: NOW - 1_000,
        end_time_unix_nano: NOW - 10,
        attributes: vec![attribute("k", string("v"))],
        ..Default::default()
    }
}

fn request(resources: Vec<(Vec<KeyValue>, Vec<Vec<Span>>)>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: resources
            .into_iter()
            .enumerate()
            .map(|(r, (attributes, scopes))| ResourceSpans {
                resource: Some(Resource {
                    attributes,
                    ..Default::default()
                }),
                scope_spans: scopes
                    .into_iter()
                    .enumerate()
                    .map(|(s, spans)| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: format!("scope-{s}"),
                            ..Default::default()
                        }),
                        spans,
                        schema_url: format!("s{s}"),
                    })
                    .collect(),
                schema_url: format!("r{r}"),
            })
            .collect(),
    }
}

#[test]
fn a_valid_batch_splits_as_the_decoding_path_splits_it() {
    let mut rich = span(1, 9);
    rich.parent_span_id = vec![3; 8];
    rich.events = vec![Event {
        time_unix_nano: NOW - 500,
        name: "retry".into(),
        attributes: vec![attribute(
            "n",
            AnyValue {
                value: Some(any_value::Value::IntValue(3)),
            },
        )],
        dropped_attributes_count: 0,
    }];
    rich.links = vec![Link {
        trace_id: vec![7; 16],
        span_id: vec![7; 8],
        ..Default::default()
    }];
    rich.status = Some(Status {
        message: "boom".into(),
        code: 2,
    });
    let body = request(vec![
        (
            vec![attribute("service.name", string("a"))],
            vec![vec![span(1, 1), span(2, 2)], vec![span(1, 3)]],
        ),
        (
            vec![attribute("service.name", string("b"))],
            vec![vec![rich, span(3, 4), span(2, 5)]],
        ),
    ])
    .encode_to_vec();
    let fragments = split_protobuf(&body, ValidationLimits::default(), NOW).expect("valid");
    assert_eq!(
        fragments
            .iter()
            .map(|f| (f.trace_id, f.span_count))
            .collect::<Vec<_>>(),
        vec![
            (TraceId([1; 16]), 3),
            (TraceId([2; 16]), 2),
            (TraceId([3; 16]), 1)
        ]
    );
    check(&body, ValidationLimits::default()).expect("answered");
}

#[test]
fn whatever_validation_would_refuse_or_change_takes_the_decoding_path() {
    let limits = ValidationLimits {
        max_attribute_bytes: 100,
        ..Default::default()
    };
    let cases: Vec<(&str, Mutation)> = vec![
        ("zero trace ID", Box::new(|s| s.trace_id = vec![0; 16])),
        ("short span ID", Box::new(|s| s.span_id = vec![1; 7])),
        ("zero parent", Box::new(|s| s.parent_span_id = vec![0; 8])),
        ("bad parent", Box::new(|s| s.parent_span_id = vec![1; 3])),
        ("no start", Box::new(|s| s.start_time_unix_nano = 0)),
        (
            "end before start",
            Box::new(|s| s.end_time_unix_nano = s.start_time_unix_nano - 1),
        ),
        (
            "far future",
            Box::new(|s| s.end_time_unix_nano = NOW + 7_200_000_000_000),
        ),
        (
            "big attribute",
            Box::new(|s| {
                s.attributes
                    .push(attribute("big", string(&"x".repeat(200))))
            }),
        ),
        (
            "big event attribute",
            Box::new(|s| {
                s.events.push(Event {
                    attributes: vec![attribute("big", string(&"x".repeat(200)))],
                    ..Default::default()
                })
            }),
        ),
        (
            "bad link",
            Box::new(|s| {
                s.links.push(Link {
                    trace_id: vec![1; 16],
                    span_id: vec![],
                    ..Default::default()
                })
            }),
        ),
        (
            "big nested list",
            Box::new(|s| {
                s.attributes.push(attribute(
                    "list",
                    AnyValue {
                        value: Some(any_value::Value::KvlistValue(KeyValueList {
                            values: (0..20)
                                .map(|i| {
                                    attribute(
                                        &format!("key-{i}"),
                                        AnyValue {
                                            value: Some(any_value::Value::DoubleValue(1.0)),
                                        },
                                    )
                                })
                                .collect(),
                        })),
                    },
                ))
            }),
        ),
    ];
    for (name, mutate) in cases {
        let mut bad = span(1, 2);
        mutate(&mut bad);
        let body = request(vec![(vec![], vec![vec![span(1, 1), bad]])]).encode_to_vec();
        assert!(split_protobuf(&body, limits, NOW).is_none(), "{name}");
        assert!(
            decoding_path(&body, limits).is_none() || name == "zero parent",
            "{name}"
        );
    }
    // An oversized resource attribute refuses every span of the resource.
    let body = request(vec![(
        vec![attribute("big", string(&"x".repeat(200)))],
        vec![vec![span(1, 1)]],
    )])
    .encode_to_vec();
    assert!(split_protobuf(&body, limits, NOW).is_none());
    // Invalid UTF-8 in a string the walk does not otherwise read fails the decoder too.
    let mut body = request(vec![(vec![], vec![vec![span(1, 1)]])]).encode_to_vec();
    let at = body
        .windows(4)
        .position(|w| w == b"op-1")
        .expect("name on the wire");
    body[at] = 0xff;
    assert!(split_protobuf(&body, limits, NOW).is_none());
    assert!(ExportTraceServiceRequest::decode(body.as_slice()).is_err());
}

#[test]
fn deep_values_and_unknown_fields_take_the_decoding_path() {
    let mut value = string("leaf");
    for _ in 0..40 {
        value = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    let mut deep = span(1, 1);
    deep.attributes.push(attribute("deep", value));
    let body = request(vec![(vec![], vec![vec![deep]])]).encode_to_vec();
    assert!(split_protobuf(&body, ValidationLimits::default(), NOW).is_none());
    assert!(decoding_path(&body, ValidationLimits::default()).is_some());

    // Field 99 of a span (varint): the decoder skips it, the walk does not know it.
    let mut with_unknown = span(1, 1).encode_to_vec();
    with_unknown.extend_from_slice(&[0x98, 0x06, 0x01]);
    let mut scope = Vec::new();
    prost::encoding::bytes::encode(2, &with_unknown, &mut scope);
    let mut resource = Vec::new();
    prost::encoding::bytes::encode(2, &scope, &mut resource);
    let mut body = Vec::new();
    prost::encoding::bytes::encode(1, &resource, &mut body);
    assert!(ExportTraceServiceRequest::decode(body.as_slice()).is_ok());
    assert!(split_protobuf(&body, ValidationLimits::default(), NOW).is_none());
}

#[test]
fn repeated_singular_fields_resolve_as_the_decoder_resolves_them() {
    // The span's trace ID twice: the decoder keeps the last, so must the split.
    let mut body_span = span(1, 1).encode_to_vec();
    prost::encoding::bytes::encode(1, &vec![5u8; 16], &mut body_span);
    let mut scope = Vec::new();
    prost::encoding::bytes::encode(2, &body_span, &mut scope);
    let mut resource = Vec::new();
    prost::encoding::bytes::encode(2, &scope, &mut resource);
    // The resource field twice: the decoder merges the two.
    prost::encoding::message::encode(
        1,
        &Resource {
            attributes: vec![attribute("a", string("1"))],
            ..Default::default()
        },
        &mut resource,
    );
    prost::encoding::message::encode(
        1,
        &Resource {
            attributes: vec![attribute("b", string("2"))],
            ..Default::default()
        },
        &mut resource,
    );
    let mut body = Vec::new();
    prost::encoding::bytes::encode(1, &resource, &mut body);
    let fragments = split_protobuf(&body, ValidationLimits::default(), NOW).expect("valid");
    assert_eq!(fragments[0].trace_id, TraceId([5; 16]));
    check(&body, ValidationLimits::default()).expect("answered");
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        "[a-z]{0,12}".prop_map(any_value::Value::StringValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        any::<f64>().prop_map(any_value::Value::DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(any_value::Value::BytesValue),
    ]
    .prop_map(|value| AnyValue { value: Some(value) });
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
            }),
            proptest::collection::vec(("[a-z]{1,4}", inner), 0..3).prop_map(|pairs| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: pairs.into_iter().map(|(k, v)| attribute(&k, v)).collect(),
                })),
            }),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(("[a-z.]{1,8}", any_value()), 0..4)
        .prop_map(|pairs| pairs.into_iter().map(|(k, v)| attribute(&k, v)).collect())
}

fn arb_span() -> impl Strategy<Value = Span> {
    (
        0u8..4,
        0u8..=255,
        prop_oneof![
            Just(vec![]),
            Just(vec![0u8; 8]),
            Just(vec![4u8; 8]),
            Just(vec![4u8; 3])
        ],
        prop_oneof![Just(0u64), Just(NOW - 5_000), Just(NOW)],
        prop_oneof![Just(NOW - 6_000), Just(NOW), Just(NOW + 10_000_000_000_000)],
        attributes(),
        proptest::collection::vec(attributes(), 0..2),
        proptest::collection::vec(0u8..3, 0..2),
    )
        .prop_map(
            |(trace, id, parent, start, end, attributes, events, links)| Span {
                trace_id: vec![trace; 16],
                span_id: if id == 0 { vec![] } else { vec![id; 8] },
                parent_span_id: parent,
                name: format!("n{id}"),
                kind: i32::from(id % 6),
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                events: events
                    .into_iter()
                    .map(|attributes| Event {
                        attributes,
                        name: "e".into(),
                        ..Default::default()
                    })
                    .collect(),
                links: links
                    .into_iter()
                    .map(|t| Link {
                        trace_id: vec![t; 16],
                        span_id: vec![t + 1; 8],
                        ..Default::default()
                    })
                    .collect(),
                status: (id % 3 == 0).then(|| Status {
                    message: "m".into(),
                    code: 2,
                }),
                ..Default::default()
            },
        )
}

fn arb_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    proptest::collection::vec(
        (
            attributes(),
            proptest::collection::vec(proptest::collection::vec(arb_span(), 0..4), 0..3),
        ),
        0..3,
    )
    .prop_map(request)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn answers_only_what_decoding_answers(request in arb_request(), small in any::<bool>()) {
        let limits = ValidationLimits {
            max_attribute_bytes: if small { 24 } else { 64 * 1024 },
            ..Default::default()
        };
        let body = request.encode_to_vec();
        let answered = check(&body, limits).is_some();
        // Everything valid and unchanged by validation must take the fast path.
        let validated = validate(request.clone(), limits, NOW);
        let zero_parent = request.resource_spans.iter().flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans).any(|s| !s.parent_span_id.is_empty() && s.parent_span_id.iter().all(|b| *b == 0));
        if validated.rejected_spans == 0 && !zero_parent {
            prop_assert!(answered);
        }
    }

    #[test]
    fn damaged_bodies_never_answer_differently(
        request in arb_request(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut body = request.encode_to_vec();
        for (at, byte, how) in edits {
            if body.is_empty() {
                break;
            }
            let at = at.index(body.len());
            match how {
                0 => body[at] = byte,
                1 => body.truncate(at),
                _ => body.insert(at, byte),
            }
        }
        check(&body, ValidationLimits::default());
    }
}

#[test]
fn a_split_that_could_exceed_its_byte_limit_takes_the_decoding_path() {
    let blob = |n: usize| {
        (0..n)
            .map(|i| attribute(&format!("blob.{i}"), string(&"x".repeat(60_000))))
            .collect::<Vec<_>>()
    };
    let one_span_traces = |traces: u8| (1..=traces).map(|t| span(t, t)).collect::<Vec<_>>();
    // 1.2 MB of resource over 100 one-span traces would be 120 MB of fragments: the walk
    // declines, and the decoding path (which counts exactly) answers.
    let hostile = request(vec![(blob(20), vec![one_span_traces(100)])]).encode_to_vec();
    assert!(split_protobuf(&hostile, ValidationLimits::default(), NOW).is_none());
    // A 120 KB resource over the same traces is 12 MB: split on the bytes as usual.
    let ordinary = request(vec![(blob(2), vec![one_span_traces(100)])]).encode_to_vec();
    let fragments = split_protobuf(&ordinary, ValidationLimits::default(), NOW)
        .expect("an ordinary batch splits on its bytes");
    assert_eq!(fragments.len(), 100);
}
