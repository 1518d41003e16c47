//! A small fixed dataset for the golden tests: three traces whose shapes exercise every
//! operator. Spans are labelled (`r1`, `s1`, …) so expectations read as trees, not IDs.
//!
//! ```text
//! T1 (start 1000 s)  r1 frontend "GET /cart" server 100ms
//!                    └ c1 frontend "call cart" client 80ms
//!                      └ s1 cart "GetCart" server 70ms error "boom", event exception
//!                        ├ d1 cart "SELECT" client 30ms db.system=postgresql tags=[a,b]
//!                        └ k1 cart "GET key" client 5ms db.system=redis
//! T2 (start 2000 s)  r2 frontend "GET /" server 20ms error, http.status_code=500
//!                    └ n2 frontend "render" internal 10ms items=3 ratio=0.5 flag=true
//! T3 (start 3000 s)  p3 orders "publish" producer 2ms
//!                    └ q3 billing "process" consumer 50ms, link → T1 (relation=follows)
//!                    o3 billing "late" internal 1s, parent not in the trace
//! ```

#![allow(dead_code)]

use andante_model::otlp::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::span::{Event, Link};
use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub enum V {
    S(&'static str),
    I(i64),
    F(f64),
    B(bool),
    A(Vec<&'static str>),
}

pub fn kv(key: &str, value: V) -> KeyValue {
    let value = match value {
        V::S(text) => any_value::Value::StringValue(text.to_owned()),
        V::I(number) => any_value::Value::IntValue(number),
        V::F(number) => any_value::Value::DoubleValue(number),
        V::B(flag) => any_value::Value::BoolValue(flag),
        V::A(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items
                .into_iter()
                .map(|item| AnyValue {
                    value: Some(any_value::Value::StringValue(item.to_owned())),
                })
                .collect(),
        }),
    };
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

pub struct SpanSpec {
    pub label: &'static str,
    pub service: &'static str,
    pub name: &'static str,
    pub kind: i32,
    pub parent: Option<&'static str>,
    pub start_ms: u64,
    pub duration_ms: u64,
    pub status: i32,
    pub message: &'static str,
    pub attributes: Vec<KeyValue>,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
}

pub fn span_id(label: &str) -> Vec<u8> {
    let mut id = [0u8; 8];
    for (index, byte) in label.bytes().enumerate().take(8) {
        id[index] = byte;
    }
    id.to_vec()
}

pub fn trace_id(number: u8) -> [u8; 16] {
    [number; 16]
}

fn environment(service: &str) -> &'static str {
    if service == "frontend" {
        "prod"
    } else {
        "dev"
    }
}

/// Groups spans by service into `ResourceSpans`, as an SDK would send them.
pub fn build(trace: u8, base_secs: u64, specs: Vec<SpanSpec>) -> Vec<ResourceSpans> {
    let mut out: Vec<ResourceSpans> = Vec::new();
    for spec in specs {
        let start = (base_secs * 1000 + spec.start_ms) * 1_000_000;
        let span = Span {
            trace_id: trace_id(trace).to_vec(),
            span_id: span_id(spec.label),
            parent_span_id: match spec.parent {
                Some(parent) => span_id(parent),
                None => Vec::new(),
            },
            name: spec.name.to_owned(),
            kind: spec.kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + spec.duration_ms * 1_000_000,
            attributes: spec.attributes,
            events: spec.events,
            links: spec.links,
            status: Some(Status {
                code: spec.status,
                message: spec.message.to_owned(),
            }),
            ..Default::default()
        };
        let position = out.iter().position(|resource_spans| {
            resource_spans.resource.as_ref().is_some_and(|resource| {
                resource.attributes.iter().any(|attribute| {
                    attribute.key == "service.name"
                        && attribute
                            .value
                            .as_ref()
                            .and_then(|value| value.value.as_ref())
                            == Some(&any_value::Value::StringValue(spec.service.to_owned()))
                })
            })
        });
        let index = match position {
            Some(index) => index,
            None => {
                out.push(ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", V::S(spec.service)),
                            kv("deployment.environment", V::S(environment(spec.service))),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: format!("lib-{}", spec.service),
                            version: "1.0".to_owned(),
                            attributes: vec![kv(
                                "library.language",
                                V::S(if spec.service == "cart" { "java" } else { "go" }),
                            )],
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        out[index].scope_spans[0].spans.push(span);
    }
    out
}

fn spec(
    label: &'static str,
    service: &'static str,
    name: &'static str,
    kind: i32,
    parent: Option<&'static str>,
    start_ms: u64,
    duration_ms: u64,
) -> SpanSpec {
    SpanSpec {
        label,
        service,
        name,
        kind,
        parent,
        start_ms,
        duration_ms,
        status: 0,
        message: "",
        attributes: vec![],
        events: vec![],
        links: vec![],
    }
}

/// (label, trace number, resource spans) for T1..T3.
pub fn traces() -> Vec<(&'static str, u8, Vec<ResourceSpans>)> {
    let (internal, server, client, producer, consumer) = (1, 2, 3, 4, 5);
    let mut r1 = spec("r1", "frontend", "GET /cart", server, None, 0, 100);
    r1.attributes = vec![
        kv("http.route", V::S("/cart")),
        kv("http.status_code", V::I(200)),
    ];
    let mut c1 = spec("c1", "frontend", "call cart", client, Some("r1"), 5, 80);
    c1.attributes = vec![kv("peer.service", V::S("cart"))];
    let mut s1 = spec("s1", "cart", "GetCart", server, Some("c1"), 10, 70);
    s1.status = 2;
    s1.message = "boom";
    s1.events = vec![Event {
        name: "exception".to_owned(),
        time_unix_nano: (1000 * 1000 + 40) * 1_000_000,
        attributes: vec![kv("exception.type", V::S("IOError"))],
        ..Default::default()
    }];
    let mut d1 = spec("d1", "cart", "SELECT", client, Some("s1"), 20, 30);
    d1.attributes = vec![
        kv("db.system", V::S("postgresql")),
        kv("tags", V::A(vec!["a", "b"])),
    ];
    let mut k1 = spec("k1", "cart", "GET key", client, Some("s1"), 60, 5);
    k1.attributes = vec![kv("db.system", V::S("redis"))];
    let t1 = build(1, 1000, vec![r1, c1, s1, d1, k1]);

    let mut r2 = spec("r2", "frontend", "GET /", server, None, 0, 20);
    r2.status = 2;
    r2.attributes = vec![
        kv("http.route", V::S("/")),
        kv("http.status_code", V::I(500)),
    ];
    let mut n2 = spec("n2", "frontend", "render", internal, Some("r2"), 5, 10);
    n2.attributes = vec![
        kv("items", V::I(3)),
        kv("ratio", V::F(0.5)),
        kv("flag", V::B(true)),
    ];
    let t2 = build(2, 2000, vec![r2, n2]);

    let p3 = spec("p3", "orders", "publish", producer, None, 0, 2);
    let mut q3 = spec("q3", "billing", "process", consumer, Some("p3"), 10, 50);
    q3.links = vec![Link {
        trace_id: trace_id(1).to_vec(),
        span_id: span_id("r1"),
        attributes: vec![kv("relation", V::S("follows"))],
        ..Default::default()
    }];
    let o3 = spec("o3", "billing", "late", internal, Some("zz"), 100, 1000);
    let t3 = build(3, 3000, vec![p3, q3, o3]);
    vec![("T1", 1, t1), ("T2", 2, t2), ("T3", 3, t3)]
}

/// The label of a span from its ID.
pub fn label(span_id: &[u8]) -> String {
    span_id
        .iter()
        .take_while(|byte| **byte != 0)
        .map(|byte| *byte as char)
        .collect()
}
