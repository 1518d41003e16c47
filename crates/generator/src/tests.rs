//! Generator tests over hand-built traces with the exact series expected.

use andante_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::span::SpanKind;
use andante_model::otlp::trace::v1::status::StatusCode;
use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use andante_model::TenantId;

use super::*;
use andante_tsdb::LabeledSample;

const NOW_MS: i64 = 1_800_000_000_000;
const NOW_NANOS: u64 = NOW_MS as u64 * 1_000_000;

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

struct SpanSpec<'a> {
    span: u8,
    parent: u8,
    kind: SpanKind,
    name: &'a str,
    millis: u64,
    error: bool,
    attributes: Vec<KeyValue>,
}

fn spec(span: u8, parent: u8, kind: SpanKind, name: &str, millis: u64) -> SpanSpec<'_> {
    SpanSpec {
        span,
        parent,
        kind,
        name,
        millis,
        error: false,
        attributes: Vec::new(),
    }
}

fn batch(trace: u8, service: &str, spans: Vec<SpanSpec<'_>>) -> ResourceSpans {
    let spans = spans
        .into_iter()
        .map(|s| Span {
            trace_id: vec![trace; 16],
            span_id: vec![s.span; 8],
            parent_span_id: if s.parent == 0 {
                Vec::new()
            } else {
                vec![s.parent; 8]
            },
            name: s.name.into(),
            kind: s.kind as i32,
            start_time_unix_nano: NOW_NANOS - s.millis * 1_000_000 - 1_000_000_000,
            end_time_unix_nano: NOW_NANOS - 1_000_000_000,
            attributes: s.attributes,
            status: Some(Status {
                code: if s.error { StatusCode::Error as i32 } else { 0 },
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                attr("service.name", service),
                attr("service.namespace", "shop"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn tenant() -> TenantId {
    TenantId::new("t").unwrap()
}

/// The value of the series printed as `text` at `at`, from one collection.
fn value(samples: &[LabeledSample], text: &str, at: i64) -> Option<f64> {
    samples
        .iter()
        .find(|(labels, t, _)| labels.to_string() == text && *t == at)
        .map(|s| s.2)
}

fn collect(generator: &Generator, at: i64) -> Vec<LabeledSample> {
    generator
        .collect(at)
        .into_iter()
        .flat_map(|(_, collected)| collected.samples)
        .collect()
}

#[test]
fn span_metrics_series_names_labels_and_buckets() {
    let generator = Generator::new(GeneratorConfig::default());
    let mut failing = spec(2, 1, SpanKind::Internal, "charge", 30);
    failing.error = true;
    generator.push(
        &tenant(),
        &[batch(
            1,
            "api",
            vec![
                spec(1, 0, SpanKind::Server, "GET /", 5),
                spec(3, 1, SpanKind::Server, "GET /", 100),
                failing,
            ],
        )],
        NOW_MS,
    );
    let samples = collect(&generator, NOW_MS);
    let get = r#"{service="api", span_kind="SPAN_KIND_SERVER", span_name="GET /", status_code="STATUS_CODE_UNSET"}"#;
    assert_eq!(
        value(
            &samples,
            &format!("traces_spanmetrics_calls_total{get}"),
            NOW_MS
        ),
        Some(2.0)
    );
    let bucket = |le: &str| {
        let labels = format!(
            r#"traces_spanmetrics_latency_bucket{{le="{le}", service="api", span_kind="SPAN_KIND_SERVER", span_name="GET /", status_code="STATUS_CODE_UNSET"}}"#
        );
        value(&samples, &labels, NOW_MS)
    };
    // 5 ms lands in le=0.008, 100 ms in le=0.128; 14 finite buckets from 0.002 to 16.384.
    assert_eq!(bucket("0.004"), Some(0.0));
    assert_eq!(bucket("0.008"), Some(1.0));
    assert_eq!(bucket("0.064"), Some(1.0));
    assert_eq!(bucket("0.128"), Some(2.0));
    assert_eq!(bucket("16.384"), Some(2.0));
    assert_eq!(bucket("+Inf"), Some(2.0));
    let sum = value(
        &samples,
        &format!("traces_spanmetrics_latency_sum{get}"),
        NOW_MS,
    );
    assert!(sum.is_some_and(|s| (s - 0.105).abs() < 1e-12), "{sum:?}");
    let error = r#"traces_spanmetrics_calls_total{service="api", span_kind="SPAN_KIND_INTERNAL", span_name="charge", status_code="STATUS_CODE_ERROR"}"#;
    assert_eq!(value(&samples, error, NOW_MS), Some(1.0));
    assert!(value(
        &samples,
        &format!("traces_spanmetrics_size_total{get}"),
        NOW_MS
    )
    .is_some_and(|bytes| bytes > 40.0));
    // New counters start with a zero at the end of the previous minute.
    let initial = NOW_MS - NOW_MS.rem_euclid(60_000) - 1;
    assert_eq!(
        value(
            &samples,
            &format!("traces_spanmetrics_calls_total{get}"),
            initial
        ),
        Some(0.0)
    );
}

#[test]
fn span_metrics_dimensions_and_target_info() {
    let config = GeneratorConfig {
        span_metrics: Some(SpanMetricsConfig {
            dimensions: vec![
                "http.route".into(),
                "service.namespace".into(),
                "service".into(),
            ],
            enable_target_info: true,
            ..SpanMetricsConfig::default()
        }),
        service_graphs: None,
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config);
    let mut span = spec(1, 0, SpanKind::Server, "GET /x", 1);
    span.attributes = vec![attr("http.route", "/x"), attr("service", "shadow")];
    let mut resource_spans = batch(1, "api", vec![span]);
    if let Some(resource) = resource_spans.resource.as_mut() {
        resource.attributes.push(attr("k8s.pod.name", "api-1"));
    }
    generator.push(&tenant(), &[resource_spans], NOW_MS);
    let samples = collect(&generator, NOW_MS);
    let calls = r#"traces_spanmetrics_calls_total{__service="shadow", http_route="/x", job="shop/api", service="api", service_namespace="shop", span_kind="SPAN_KIND_SERVER", span_name="GET /x", status_code="STATUS_CODE_UNSET"}"#;
    assert_eq!(
        value(&samples, calls, NOW_MS),
        Some(1.0),
        "{:?}",
        samples.iter().map(|s| s.0.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        value(
            &samples,
            r#"traces_target_info{job="shop/api", k8s_pod_name="api-1"}"#,
            NOW_MS
        ),
        Some(1.0)
    );
}

fn edge(kind: &str) -> String {
    format!("traces_service_graph_request_{kind}")
}

#[test]
fn client_and_server_halves_pair_across_pushes_and_seconds() {
    let generator = Generator::new(GeneratorConfig::default());
    // Client half first; the server half arrives 8 s later in another push.
    generator.push(
        &tenant(),
        &[batch(
            7,
            "frontend",
            vec![
                spec(1, 0, SpanKind::Internal, "page", 400),
                spec(2, 1, SpanKind::Client, "GET", 300),
            ],
        )],
        NOW_MS,
    );
    assert!(value(
        &collect(&generator, NOW_MS + 1_000),
        &format!(r#"{}{{client="frontend", server="cart"}}"#, edge("total")),
        NOW_MS + 1_000
    )
    .is_none());
    let mut server = spec(3, 2, SpanKind::Server, "GET /cart", 250);
    server.error = true;
    generator.push(&tenant(), &[batch(7, "cart", vec![server])], NOW_MS + 8_000);
    let at = NOW_MS + 9_000;
    let samples = collect(&generator, at);
    let labels = r#"{client="frontend", server="cart"}"#;
    assert_eq!(
        value(&samples, &format!("{}{labels}", edge("total")), at),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, &format!("{}{labels}", edge("failed_total")), at),
        Some(1.0)
    );
    let server_bucket = format!(
        r#"{}_bucket{{client="frontend", le="0.4", server="cart"}}"#,
        edge("server_seconds")
    );
    assert_eq!(value(&samples, &server_bucket, at), Some(1.0));
    let client_bucket = format!(
        r#"{}_bucket{{client="frontend", le="0.2", server="cart"}}"#,
        edge("client_seconds")
    );
    assert_eq!(
        value(&samples, &client_bucket, at),
        Some(0.0),
        "the client saw 300 ms"
    );
    let counts = generator.counts().service_graphs;
    assert_eq!(
        (
            counts.completed_edges,
            counts.expired_edges,
            counts.pending_edges
        ),
        (1, 0, 0)
    );
}

#[test]
fn unpaired_halves_expire_into_virtual_nodes_or_the_expired_count() {
    let generator = Generator::new(GeneratorConfig::default());
    let mut external = spec(2, 1, SpanKind::Client, "POST /charge", 100);
    external.attributes = vec![attr("peer.service", "cardprocessor")];
    let lonely_client = spec(3, 1, SpanKind::Client, "GET /lost", 100);
    let orphan_server = spec(5, 4, SpanKind::Server, "GET /orphan", 100);
    generator.push(
        &tenant(),
        &[batch(
            9,
            "payment",
            vec![external, lonely_client, orphan_server],
        )],
        NOW_MS,
    );
    // Within the wait nothing is decided.
    let early = collect(&generator, NOW_MS + 9_000);
    assert!(early
        .iter()
        .all(|(labels, _, _)| labels.get("server") != Some("cardprocessor")));
    let at = NOW_MS + 10_000;
    let samples = collect(&generator, at);
    let virtual_edge = format!(
        r#"{}{{client="payment", connection_type="virtual_node", server="cardprocessor"}}"#,
        edge("total")
    );
    assert_eq!(value(&samples, &virtual_edge, at), Some(1.0));
    let counts = generator.counts().service_graphs;
    assert_eq!(
        (
            counts.virtual_edges,
            counts.expired_edges,
            counts.pending_edges
        ),
        (1, 2, 0)
    );
    // The virtual server has no span: only the client latency is recorded.
    assert!(samples
        .iter()
        .all(|(l, _, _)| !(l.get("server") == Some("cardprocessor")
            && l.metric_name()
                .is_some_and(|n| n.contains("server_seconds")))));
}

#[test]
fn root_server_spans_get_a_user_client_and_databases_complete_at_once() {
    let generator = Generator::new(GeneratorConfig::default());
    let mut query = spec(2, 1, SpanKind::Client, "SELECT orders", 20);
    query.attributes = vec![
        attr("db.system.name", "postgresql"),
        attr("db.namespace", "orders"),
    ];
    let mut addressed = spec(3, 1, SpanKind::Client, "GET key", 2);
    addressed.attributes = vec![
        attr("db.system", "redis"),
        attr("server.address", "cache-1"),
    ];
    generator.push(
        &tenant(),
        &[batch(
            4,
            "checkout",
            vec![
                spec(1, 0, SpanKind::Server, "POST /checkout", 50),
                query,
                addressed,
            ],
        )],
        NOW_MS,
    );
    let samples = collect(&generator, NOW_MS);
    let user = format!(
        r#"{}{{client="user", connection_type="virtual_node", server="checkout"}}"#,
        edge("total")
    );
    assert_eq!(value(&samples, &user, NOW_MS), Some(1.0));
    let database = format!(
        r#"{}{{client="checkout", connection_type="database", server="orders"}}"#,
        edge("total")
    );
    assert_eq!(value(&samples, &database, NOW_MS), Some(1.0));
    let cache = format!(
        r#"{}{{client="checkout", connection_type="database", server="cache-1"}}"#,
        edge("total")
    );
    assert_eq!(value(&samples, &cache, NOW_MS), Some(1.0));
    assert_eq!(generator.counts().service_graphs.pending_edges, 0);
}

#[test]
fn producer_and_consumer_pair_as_messaging_with_latency() {
    let config = GeneratorConfig {
        service_graphs: Some(ServiceGraphsConfig {
            enable_messaging_latency: true,
            ..ServiceGraphsConfig::default()
        }),
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config);
    generator.push(
        &tenant(),
        &[batch(
            5,
            "checkout",
            vec![spec(1, 0, SpanKind::Producer, "orders publish", 10)],
        )],
        NOW_MS,
    );
    let mut consumer = batch(
        5,
        "email",
        vec![spec(2, 1, SpanKind::Consumer, "orders process", 30)],
    );
    // The consumer starts 0.5 s after the producer ended.
    for span in consumer.scope_spans.iter_mut().flat_map(|s| &mut s.spans) {
        span.start_time_unix_nano = NOW_NANOS - 500_000_000;
        span.end_time_unix_nano = NOW_NANOS - 470_000_000;
    }
    generator.push(&tenant(), &[consumer], NOW_MS);
    let samples = collect(&generator, NOW_MS);
    let labels = r#"client="checkout", connection_type="messaging_system", server="email""#;
    assert_eq!(
        value(&samples, &format!("{}{{{labels}}}", edge("total")), NOW_MS),
        Some(1.0)
    );
    let latency = format!(r#"{}_sum{{{labels}}}"#, edge("messaging_system_seconds"));
    assert!(value(&samples, &latency, NOW_MS).is_some_and(|v| (v - 0.5).abs() < 1e-9));
}

#[test]
fn edge_store_is_bounded_and_late_spans_are_refused() {
    let config = GeneratorConfig {
        service_graphs: Some(ServiceGraphsConfig {
            max_items: 2,
            ..ServiceGraphsConfig::default()
        }),
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config);
    let clients: Vec<SpanSpec> = (1..=4)
        .map(|i| spec(i, 0, SpanKind::Client, "call", 1))
        .collect();
    generator.push(&tenant(), &[batch(6, "a", clients)], NOW_MS);
    let counts = generator.counts();
    assert_eq!(
        (
            counts.service_graphs.pending_edges,
            counts.service_graphs.dropped_spans
        ),
        (2, 2)
    );
    // A span that ended a minute ago is outside the 30 s slack.
    let mut old = batch(8, "a", vec![spec(1, 0, SpanKind::Server, "old", 1)]);
    for span in old.scope_spans.iter_mut().flat_map(|s| &mut s.spans) {
        span.end_time_unix_nano = NOW_NANOS - 60_000_000_000;
    }
    generator.push(&tenant(), &[old], NOW_MS);
    assert_eq!(generator.counts().spans_outside_slack, 1);
    let samples = collect(&generator, NOW_MS);
    assert!(samples
        .iter()
        .all(|(labels, _, _)| labels.get("span_name") != Some("old")));
}

#[test]
fn active_series_limit_overflows_per_tenant() {
    let config = GeneratorConfig {
        service_graphs: None,
        limits: RegistryLimits {
            max_active_series: 6,
            ..RegistryLimits::default()
        },
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config);
    // Each span name makes three span-metrics series (calls, latency, size): two names fill the limit.
    let names = ["a", "b", "c", "d"];
    let spans: Vec<SpanSpec> = names
        .iter()
        .enumerate()
        .map(|(i, name)| spec(i as u8 + 1, 0, SpanKind::Server, name, 1))
        .collect();
    generator.push(&tenant(), &[batch(3, "svc", spans)], NOW_MS);
    let samples = collect(&generator, NOW_MS);
    assert_eq!(
        value(
            &samples,
            r#"traces_spanmetrics_calls_total{metric_overflow="true"}"#,
            NOW_MS
        ),
        Some(2.0)
    );
    assert_eq!(generator.counts().registry.series_overflowed, 6);
    // Another tenant has its own budget.
    generator.push(
        &TenantId::new("other").unwrap(),
        &[batch(3, "svc", vec![spec(1, 0, SpanKind::Server, "z", 1)])],
        NOW_MS,
    );
    let other = generator
        .collect(NOW_MS)
        .into_iter()
        .find(|(t, _)| t.as_str() == "other")
        .unwrap()
        .1
        .samples;
    assert!(value(&other, r#"traces_spanmetrics_calls_total{service="svc", span_kind="SPAN_KIND_SERVER", span_name="z", status_code="STATUS_CODE_UNSET"}"#, NOW_MS).is_some());
}

#[test]
fn filter_policies_select_the_spans_each_processor_counts() {
    let config = GeneratorConfig {
        span_metrics: Some(SpanMetricsConfig {
            filter: SpanFilter::parse("{ kind = server }", "{ name = \"GET /health\" }").unwrap(),
            ..SpanMetricsConfig::default()
        }),
        service_graphs: Some(ServiceGraphsConfig {
            filter: SpanFilter::parse("", "{ resource.service.name = \"probe\" }").unwrap(),
            ..ServiceGraphsConfig::default()
        }),
        ..GeneratorConfig::default()
    };
    let generator = Generator::new(config);
    generator.push(
        &tenant(),
        &[batch(
            2,
            "api",
            vec![
                spec(1, 0, SpanKind::Server, "GET /x", 1),
                spec(2, 0, SpanKind::Server, "GET /health", 1),
                spec(3, 1, SpanKind::Client, "call", 1),
            ],
        )],
        NOW_MS,
    );
    generator.push(
        &tenant(),
        &[batch(
            2,
            "probe",
            vec![spec(4, 0, SpanKind::Server, "ping", 1)],
        )],
        NOW_MS,
    );
    let samples = collect(&generator, NOW_MS);
    let names: Vec<&str> = samples
        .iter()
        .filter(|(l, t, _)| {
            *t == NOW_MS && l.metric_name() == Some("traces_spanmetrics_calls_total")
        })
        .filter_map(|(l, _, _)| l.get("span_name"))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.contains(&"GET /x") && names.contains(&"ping"),
        "{names:?}"
    );
    let user_edges: Vec<&str> = samples
        .iter()
        .filter(|(l, t, _)| {
            *t == NOW_MS && l.metric_name() == Some("traces_service_graph_request_total")
        })
        .filter_map(|(l, _, _)| l.get("server"))
        .collect();
    assert_eq!(
        user_edges,
        vec!["api"],
        "the probe's root span is excluded from the service graph"
    );
    assert!(SpanFilter::parse("{ .a = 1 } >> { .b = 2 }", "").is_err());
    assert!(SpanFilter::parse("{ .a = ", "")
        .unwrap_err()
        .contains("include filter"));
}
