//! The hand-made traces every TraceQL input is evaluated over: the three traces of
//! `crates/traceql/tests/fixture.rs` (a tree with events and an array attribute, an error trace
//! with typed attributes, producer/consumer with a link and an orphan) plus a fourth with what
//! validation lets through but a tree walker may not expect: a parent cycle, a duplicated span
//! ID, a span that is its own parent, and bytes/kvlist/nested attribute values.
//!
//! ```text
//! T1 (1000 s)  r1 frontend server ─ c1 client ─ s1 cart server error ─ d1 SELECT, k1 GET key
//! T2 (2000 s)  r2 frontend server error ─ n2 render internal items=3 ratio=0.5 flag=true
//! T3 (3000 s)  p3 orders producer ─ q3 billing consumer (link → T1); o3 orphan
//! T4 (3500 s)  x4 ⇄ y4 (cycle), z4 twice, w4 parent of itself
//! ```

use andante_model::otlp::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::span::{Event, Link};
use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

pub const SECOND_NANOS: u64 = 1_000_000_000;

/// One trace of the fixture: its ID and its spans grouped by resource.
pub struct FixtureTrace {
    pub trace_id: [u8; 16],
    pub resource_spans: Vec<ResourceSpans>,
}

fn string(text: &str) -> any_value::Value {
    any_value::Value::StringValue(text.to_owned())
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn span_id(label: &str) -> Vec<u8> {
    let mut id = [0u8; 8];
    for (index, byte) in label.bytes().enumerate().take(8) {
        id[index] = byte;
    }
    id.to_vec()
}

struct SpanSpec {
    label: &'static str,
    service: &'static str,
    name: &'static str,
    kind: i32,
    parent: Option<&'static str>,
    start_ms: u64,
    duration_ms: u64,
    status: i32,
    message: &'static str,
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
    links: Vec<Link>,
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
        attributes: Vec::new(),
        events: Vec::new(),
        links: Vec::new(),
    }
}

/// Groups spans by service into `ResourceSpans`, as an SDK would send them.
fn build(trace_number: u8, base_secs: u64, specs: Vec<SpanSpec>) -> FixtureTrace {
    let trace_id = [trace_number; 16];
    let mut out: Vec<ResourceSpans> = Vec::new();
    let mut services: Vec<&'static str> = Vec::new();
    for spec in specs {
        let start = (base_secs * 1000 + spec.start_ms) * 1_000_000;
        let span = Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id(spec.label),
            parent_span_id: spec.parent.map(span_id).unwrap_or_default(),
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
        let index = match services.iter().position(|service| *service == spec.service) {
            Some(index) => index,
            None => {
                services.push(spec.service);
                let environment = if spec.service == "frontend" { "prod" } else { "dev" };
                let language = if spec.service == "cart" { "java" } else { "go" };
                out.push(ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![
                            kv("service.name", string(spec.service)),
                            kv("deployment.environment", string(environment)),
                        ],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: format!("lib-{}", spec.service),
                            version: "1.0".to_owned(),
                            attributes: vec![kv("library.language", string(language))],
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
    FixtureTrace {
        trace_id,
        resource_spans: out,
    }
}

/// The four traces, built fresh (cheap; callers keep them for the whole run).
pub fn traces() -> Vec<FixtureTrace> {
    let (internal, server, client, producer, consumer) = (1, 2, 3, 4, 5);

    let mut r1 = spec("r1", "frontend", "GET /cart", server, None, 0, 100);
    r1.attributes = vec![
        kv("http.route", string("/cart")),
        kv("http.status_code", any_value::Value::IntValue(200)),
    ];
    let mut c1 = spec("c1", "frontend", "call cart", client, Some("r1"), 5, 80);
    c1.attributes = vec![kv("peer.service", string("cart"))];
    let mut s1 = spec("s1", "cart", "GetCart", server, Some("c1"), 10, 70);
    s1.status = 2;
    s1.message = "boom";
    s1.events = vec![Event {
        name: "exception".to_owned(),
        time_unix_nano: (1000 * 1000 + 40) * 1_000_000,
        attributes: vec![kv("exception.type", string("IOError"))],
        ..Default::default()
    }];
    let mut d1 = spec("d1", "cart", "SELECT", client, Some("s1"), 20, 30);
    d1.attributes = vec![
        kv("db.system", string("postgresql")),
        kv(
            "tags",
            any_value::Value::ArrayValue(ArrayValue {
                values: ["a", "b"]
                    .iter()
                    .map(|item| AnyValue {
                        value: Some(string(item)),
                    })
                    .collect(),
            }),
        ),
    ];
    let mut k1 = spec("k1", "cart", "GET key", client, Some("s1"), 60, 5);
    k1.attributes = vec![kv("db.system", string("redis"))];
    let t1 = build(1, 1000, vec![r1, c1, s1, d1, k1]);

    let mut r2 = spec("r2", "frontend", "GET /", server, None, 0, 20);
    r2.status = 2;
    r2.attributes = vec![
        kv("http.route", string("/")),
        kv("http.status_code", any_value::Value::IntValue(500)),
    ];
    let mut n2 = spec("n2", "frontend", "render", internal, Some("r2"), 5, 10);
    n2.attributes = vec![
        kv("items", any_value::Value::IntValue(3)),
        kv("ratio", any_value::Value::DoubleValue(0.5)),
        kv("flag", any_value::Value::BoolValue(true)),
    ];
    let t2 = build(2, 2000, vec![r2, n2]);

    let p3 = spec("p3", "orders", "publish", producer, None, 0, 2);
    let mut q3 = spec("q3", "billing", "process", consumer, Some("p3"), 10, 50);
    q3.links = vec![Link {
        trace_id: [1; 16].to_vec(),
        span_id: span_id("r1"),
        attributes: vec![kv("relation", string("follows"))],
        ..Default::default()
    }];
    let o3 = spec("o3", "billing", "late", internal, Some("zz"), 100, 1000);
    let t3 = build(3, 3000, vec![p3, q3, o3]);

    let mut x4 = spec("x4", "loop", "x", server, Some("y4"), 0, 10);
    x4.attributes = vec![
        kv("bytes", any_value::Value::BytesValue(vec![0, 0xff, 7])),
        kv(
            "map",
            any_value::Value::KvlistValue(KeyValueList {
                values: vec![kv("inner", any_value::Value::IntValue(-1))],
            }),
        ),
        kv("", string("empty key")),
        kv("ünïcødé", string("✓")),
        kv("big", any_value::Value::IntValue(i64::MIN)),
        kv("nan", any_value::Value::DoubleValue(f64::NAN)),
        kv("inf", any_value::Value::DoubleValue(f64::INFINITY)),
    ];
    let y4 = spec("y4", "loop", "y", client, Some("x4"), 1, 0);
    let mut z4a = spec("z4", "loop", "z", internal, None, 2, 3);
    z4a.status = 1;
    let z4b = spec("z4", "other", "z", internal, Some("z4"), 2, 3);
    let mut w4 = spec("w4", "other", "", 99, Some("w4"), 4, 1);
    w4.events = vec![Event {
        name: String::new(),
        // Before the span's start: a negative time since start.
        time_unix_nano: 1,
        ..Default::default()
    }];
    w4.links = vec![Link::default()];
    let t4 = build(4, 3500, vec![x4, y4, z4a, z4b, w4]);

    vec![t1, t2, t3, t4]
}
