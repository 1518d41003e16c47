//! Names and labels against the vectors of Prometheus' own translator tests
//! (`prometheus/otlptranslator` `metric_namer_test.go` and `label_namer_test.go`), and each
//! metric type translated end to end.

use super::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, ResourceMetrics, ScopeMetrics, Sum, Summary,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

#[test]
fn metric_names_follow_prometheus_translator() {
    let cases: &[(&str, &str, Kind, &str)] = &[
        ("requests", "", Kind::Counter, "requests_total"),
        ("cpu_usage", "1", Kind::Gauge, "cpu_usage_ratio"),
        ("items", "1", Kind::Counter, "items_total"),
        (
            "response_time",
            "ms",
            Kind::Gauge,
            "response_time_milliseconds",
        ),
        ("requests", "1/s", Kind::Gauge, "requests_per_second"),
        (
            "throughput",
            "By/s",
            Kind::Gauge,
            "throughput_bytes_per_second",
        ),
        (
            "custom_metric",
            "custom_unit",
            Kind::Gauge,
            "custom_metric_custom_unit",
        ),
        ("custom_metric", "{custom}", Kind::Gauge, "custom_metric"),
        (
            "custom_metric",
            "By/{custom}",
            Kind::Gauge,
            "custom_metric_bytes",
        ),
        ("requests_total", "", Kind::Counter, "requests_total"),
        (
            "response_time_seconds",
            "s",
            Kind::Gauge,
            "response_time_seconds",
        ),
        (
            "metric__with__multiple__underscores",
            "unit__multiple__underscores",
            Kind::Gauge,
            "metric_with_multiple_underscores_unit_multiple_underscores",
        ),
        (
            "custom_metric",
            "unit@with#special/chars",
            Kind::Gauge,
            "custom_metric_unit_with_special_per_chars",
        ),
        (
            "request_duration",
            "s",
            Kind::Other,
            "request_duration_seconds",
        ),
        ("active_connections", "", Kind::Other, "active_connections"),
        ("metric", "By/", Kind::Gauge, "metric_bytes"),
        ("metric", " By / s ", Kind::Gauge, "metric_bytes_per_second"),
        ("metric", "/", Kind::Gauge, "metric"),
        (
            "http.request.duration",
            "ms",
            Kind::Other,
            "http_request_duration_milliseconds",
        ),
        ("http.requests", "1", Kind::Counter, "http_requests_total"),
        (
            "network_transmitted_bytes_total",
            "By",
            Kind::Counter,
            "network_transmitted_bytes_total",
        ),
        (
            "system.network.packets.dropped",
            "packets",
            Kind::Gauge,
            "system_network_packets_dropped",
        ),
        ("hw.fan.speed_ratio", "1", Kind::Gauge, "hw_fan_speed_ratio"),
        (
            "astro.light.speed_limit",
            "m/s",
            Kind::Gauge,
            "astro_light_speed_limit_meters_per_second",
        ),
        (
            "broken.metric.success_ratio",
            "%",
            Kind::Gauge,
            "broken_metric_success_ratio_percent",
        ),
        (
            "active_directory.ds.replication.object.rate",
            "{objects}/s",
            Kind::Gauge,
            "active_directory_ds_replication_object_rate_per_second",
        ),
        (
            "system.disk.operation_time",
            "s",
            Kind::Counter,
            "system_disk_operation_time_seconds_total",
        ),
        (
            "system.cpu.load_average.15m",
            "1",
            Kind::Gauge,
            "system_cpu_load_average_15m_ratio",
        ),
        (
            "mongodbatlas.process.oplog.rate",
            "GiBy/h",
            Kind::Gauge,
            "mongodbatlas_process_oplog_rate_gibibytes_per_hour",
        ),
        (
            "nsxt.node.memory.usage",
            "KBy",
            Kind::Gauge,
            "nsxt_node_memory_usage_kilobytes",
        ),
        ("3.14 digits", "", Kind::Gauge, "_3_14_digits"),
        (
            "envoy__rule_engine_zlib_buf_error",
            "",
            Kind::Gauge,
            "envoy_rule_engine_zlib_buf_error",
        ),
        (":foo::bar", "", Kind::Counter, ":foo::bar_total"),
        (
            "metric_with_字符_foreign_characters",
            "",
            Kind::Counter,
            "metric_with_foreign_characters_total",
        ),
        ("total.requests", "", Kind::Counter, "requests_total"),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(
            metric_name(name, unit, kind).as_deref(),
            Some(*want),
            "{name} [{unit}]"
        );
    }
    assert_eq!(metric_name("字符", "", &Kind::Gauge), None);
}

#[test]
fn label_names_follow_prometheus_defaults() {
    for (key, want) in [
        ("label:with:colons", "label_with_colons"),
        ("label!with&special$chars)", "label_with_special_chars_"),
        ("label.with.dots", "label_with_dots"),
        (".foo", "key_foo"),
        ("123label", "key_123label"),
        (
            "_label_starting_with_underscore",
            "key_label_starting_with_underscore",
        ),
        (
            "__label_starting_with_2underscores",
            "__label_starting_with_2underscores",
        ),
        (
            "label__with__double__underscores",
            "label__with__double__underscores",
        ),
        (
            "label_with_foreign_characters_字符",
            "label_with_foreign_characters___",
        ),
    ] {
        assert_eq!(label_name(key).as_deref(), Ok(want), "{key}");
    }
    for bad in ["", "__", "ようこそ"] {
        assert!(label_name(bad).is_err(), "{bad}");
    }
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Any::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn request(metrics: Vec<Metric>, resource: Vec<KeyValue>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

const T_NANOS: u64 = 1_700_000_000_000_000_000;
const T_MS: i64 = 1_700_000_000_000;

fn number(value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        time_unix_nano: T_NANOS,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

/// Every series as `name{labels} value`, sorted.
fn rendered(decoded: &DecodedSamples) -> Vec<String> {
    let mut out: Vec<String> = decoded
        .series
        .iter()
        .map(|s| {
            assert_eq!(s.samples.len(), 1);
            assert_eq!(s.samples[0].0, T_MS);
            format!("{} {}", s.labels, s.samples[0].1)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_type_translates_with_job_instance_and_target_info() {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = vec![
        metric(
            "http.server.active_requests",
            "{request}",
            metric::Data::Sum(Sum {
                data_points: vec![number(3.0, vec![attribute("http.method", "GET")])],
                aggregation_temporality: cumulative,
                is_monotonic: false,
            }),
        ),
        metric(
            "queue.fill",
            "1",
            metric::Data::Gauge(Gauge {
                data_points: vec![number(0.5, vec![])],
            }),
        ),
        metric(
            "http.server.duration",
            "s",
            metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: T_NANOS,
                    count: 15,
                    sum: Some(155.0),
                    bucket_counts: vec![3, 11, 0],
                    explicit_bounds: vec![0.124, 1.123],
                    ..Default::default()
                }],
                aggregation_temporality: cumulative,
            }),
        ),
        metric(
            "rpc.latency",
            "ms",
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: T_NANOS,
                    count: 4,
                    sum: 10.0,
                    quantile_values: vec![ValueAtQuantile {
                        quantile: 0.5,
                        value: 2.0,
                    }],
                    ..Default::default()
                }],
            }),
        ),
    ];
    let resource = vec![
        attribute("service.name", "checkout"),
        attribute("service.namespace", "shop"),
        attribute("service.instance.id", "pod-1"),
        attribute("k8s.pod.name", "pod-1"),
    ];
    let translated = translate(request(metrics, resource), SeriesLimits::default(), T_MS);
    assert!(
        translated.refusal_message().is_none(),
        "{:?}",
        translated.refusal_message()
    );
    let ids = r#"instance="pod-1", job="shop/checkout""#;
    assert_eq!(
        rendered(&translated.cumulative),
        vec![
            format!(r#"http_server_active_requests{{http_method="GET", {ids}}} 3"#),
            format!(r#"http_server_duration_seconds_bucket{{{ids}, le="+Inf"}} 15"#),
            format!(r#"http_server_duration_seconds_bucket{{{ids}, le="0.124"}} 3"#),
            format!(r#"http_server_duration_seconds_bucket{{{ids}, le="1.123"}} 14"#),
            format!(r#"http_server_duration_seconds_count{{{ids}}} 15"#),
            format!(r#"http_server_duration_seconds_sum{{{ids}}} 155"#),
            format!(r#"queue_fill_ratio{{{ids}}} 0.5"#),
            format!(r#"rpc_latency_milliseconds_count{{{ids}}} 4"#),
            format!(r#"rpc_latency_milliseconds_sum{{{ids}}} 10"#),
            format!(r#"rpc_latency_milliseconds{{{ids}, quantile="0.5"}} 2"#),
            format!(r#"target_info{{{ids}, k8s_pod_name="pod-1"}} 1"#),
        ]
    );
    assert!(translated.delta.series.is_empty());
}

#[test]
fn deltas_come_back_apart_and_bad_points_are_refused_with_reasons() {
    let metrics = vec![
        metric(
            "requests",
            "",
            metric::Data::Sum(Sum {
                data_points: vec![number(2.0, vec![])],
                aggregation_temporality: AggregationTemporality::Delta as i32,
                is_monotonic: true,
            }),
        ),
        metric(
            "unspecified",
            "",
            metric::Data::Sum(Sum {
                data_points: vec![number(1.0, vec![]), number(1.0, vec![])],
                aggregation_temporality: 0,
                is_monotonic: true,
            }),
        ),
        metric(
            "no.time",
            "",
            metric::Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    value: Some(number_data_point::Value::AsInt(1)),
                    ..Default::default()
                }],
            }),
        ),
        metric(
            "字符",
            "",
            metric::Data::Gauge(Gauge {
                data_points: vec![number(1.0, vec![])],
            }),
        ),
        metric(
            "bad.attribute",
            "",
            metric::Data::Gauge(Gauge {
                data_points: vec![number(1.0, vec![attribute("ようこそ", "x")])],
            }),
        ),
    ];
    let translated = translate(request(metrics, vec![]), SeriesLimits::default(), T_MS);
    assert_eq!(
        rendered(&translated.delta),
        vec!["requests_total{} 2".to_string()]
    );
    assert!(translated.cumulative.series.is_empty());
    assert_eq!(translated.refused_at_decode(), 5);
    let message = translated.refusal_message().expect("refusals");
    for reason in [
        "unspecified aggregation temporality",
        "has no timestamp",
        "has no valid characters",
        "\"ようこそ\" has no valid characters",
    ] {
        assert!(message.contains(reason), "{reason} not in {message}");
    }
}

#[test]
fn exponential_histograms_become_cumulative_classic_buckets() {
    // Scale 1: base √2. Positive buckets at indexes 0 and 1 hold (1, √2] and (√2, 2]; one
    // negative bucket at index 0 holds [-√2, -1); two zeros.
    let point = ExponentialHistogramDataPoint {
        time_unix_nano: T_NANOS,
        count: 9,
        sum: Some(3.0),
        scale: 1,
        zero_count: 2,
        positive: Some(Buckets {
            offset: 0,
            bucket_counts: vec![3, 3],
        }),
        negative: Some(Buckets {
            offset: 0,
            bucket_counts: vec![1],
        }),
        ..Default::default()
    };
    let buckets = exponential_buckets(&point);
    assert_eq!(buckets.len(), 4);
    assert_eq!(buckets[0], (-1.0, 1.0));
    assert_eq!(buckets[1], (0.0, 3.0));
    assert!((buckets[2].0 - 2f64.sqrt()).abs() < 1e-12 && buckets[2].1 == 6.0);
    assert_eq!(buckets[3], (2.0, 9.0));
    // Scale 5 is reduced to 3: 4 fine buckets merge into one.
    let fine = ExponentialHistogramDataPoint {
        scale: 5,
        positive: Some(Buckets {
            offset: 8,
            bucket_counts: vec![1, 1, 1, 1],
        }),
        negative: None,
        ..point.clone()
    };
    let reduced = exponential_buckets(&fine);
    assert_eq!(reduced, vec![(0.0, 2.0), (2f64.powf(3.0 / 8.0), 6.0)]);
    let translated = translate(
        request(
            vec![metric(
                "latency",
                "s",
                metric::Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![point],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            )],
            vec![],
        ),
        SeriesLimits::default(),
        T_MS,
    );
    let names = rendered(&translated.cumulative);
    assert!(
        names.contains(&r#"latency_seconds_bucket{le="+Inf"} 9"#.to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&r#"latency_seconds_bucket{le="2"} 9"#.to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"latency_seconds_count{} 9".to_string()),
        "{names:?}"
    );
}

#[test]
fn colliding_attributes_join_and_no_recorded_value_is_a_stale_marker() {
    let mut point = number(
        7.0,
        vec![
            attribute("a.b", "2"),
            attribute("a-b", "1"),
            attribute("a_b", "3"),
        ],
    );
    point.flags = NO_RECORDED_VALUE;
    let translated = translate(
        request(
            vec![metric(
                "g",
                "",
                metric::Data::Gauge(Gauge {
                    data_points: vec![point],
                }),
            )],
            vec![],
        ),
        SeriesLimits::default(),
        T_MS,
    );
    let series = &translated.cumulative.series[0];
    assert_eq!(series.labels.get("a_b"), Some("1;2;3"));
    assert_eq!(series.samples[0].1.to_bits(), STALE_NAN.to_bits());
}

#[test]
fn a_point_with_too_many_buckets_is_refused_not_expanded() {
    let wide = HistogramDataPoint {
        time_unix_nano: T_NANOS,
        count: 1,
        explicit_bounds: (0..5000).map(f64::from).collect(),
        bucket_counts: vec![0; 5001],
        ..Default::default()
    };
    let sparse = ExponentialHistogramDataPoint {
        time_unix_nano: T_NANOS,
        count: 2,
        scale: 3,
        positive: Some(Buckets {
            offset: -1_000_000,
            bucket_counts: std::iter::once(1)
                .chain(std::iter::repeat_n(0, 1_999_999))
                .chain([1])
                .collect(),
        }),
        ..Default::default()
    };
    let translated = translate(
        request(
            vec![
                metric(
                    "wide",
                    "",
                    metric::Data::Histogram(Histogram {
                        data_points: vec![wide],
                        aggregation_temporality: 2,
                    }),
                ),
                metric(
                    "sparse",
                    "",
                    metric::Data::ExponentialHistogram(ExponentialHistogram {
                        data_points: vec![sparse],
                        aggregation_temporality: 2,
                    }),
                ),
            ],
            vec![],
        ),
        SeriesLimits::default(),
        T_MS,
    );
    assert!(translated.cumulative.series.is_empty());
    assert_eq!(translated.refused_points, 2);
    let message = translated.refusal_message().expect("refused");
    assert!(
        message.contains("5000 buckets") && message.contains("at most 1024"),
        "{message}"
    );
}

#[test]
fn extreme_exponential_indexes_keep_le_values_finite_and_distinct() {
    let point = ExponentialHistogramDataPoint {
        time_unix_nano: T_NANOS,
        count: 3,
        scale: 20,
        positive: Some(Buckets {
            offset: i32::MAX - 1,
            bucket_counts: vec![1, 1],
        }),
        negative: Some(Buckets {
            offset: i32::MIN,
            bucket_counts: vec![1],
        }),
        ..Default::default()
    };
    let buckets = exponential_buckets(&point);
    assert!(
        buckets.iter().all(|(bound, _)| bound.is_finite()),
        "{buckets:?}"
    );
    let bounds: Vec<String> = buckets.iter().map(|(b, _)| float_text(*b)).collect();
    let mut unique = bounds.clone();
    unique.dedup();
    assert_eq!(bounds, unique);
    assert!(!bounds.contains(&"-0".to_string()), "{bounds:?}");
}
