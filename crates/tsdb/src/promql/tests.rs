//! PromQL evaluation against expected vectors and matrices over a hand-built store: counters
//! growing at known rates every 15 s for an hour, classic histogram buckets, and service-graph
//! series; the queries include Grafana's service-graph and APM-table queries verbatim.

use super::*;
use crate::labels::METRIC_NAME;
use crate::store::StoreConfig;

const STEP: i64 = 15_000;
const HOUR: i64 = 3_600_000;

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    Labels::new(std::iter::once((METRIC_NAME, name)).chain(pairs.iter().copied()))
}

/// Every series is a counter sampled every 15 s over [0, 1 h] growing at `per_second`.
fn store() -> Store {
    let store = Store::new(StoreConfig::default());
    let mut series: Vec<(Labels, f64)> = vec![
        (
            labels(
                "calls_total",
                &[
                    ("service", "a"),
                    ("span_name", "GET /"),
                    ("span_kind", "SPAN_KIND_SERVER"),
                    ("status_code", "STATUS_CODE_UNSET"),
                ],
            ),
            1.0,
        ),
        (
            labels(
                "calls_total",
                &[
                    ("service", "a"),
                    ("span_name", "POST /"),
                    ("span_kind", "SPAN_KIND_SERVER"),
                    ("status_code", "STATUS_CODE_ERROR"),
                ],
            ),
            0.5,
        ),
        (
            labels(
                "calls_total",
                &[
                    ("service", "b"),
                    ("span_name", "query"),
                    ("span_kind", "SPAN_KIND_CLIENT"),
                    ("status_code", "STATUS_CODE_UNSET"),
                ],
            ),
            3.0,
        ),
        (
            labels(
                "req_total",
                &[("client", "a"), ("server", "b"), ("connection_type", "")],
            ),
            2.0,
        ),
        (
            labels(
                "req_total",
                &[
                    ("client", "user"),
                    ("server", "a"),
                    ("connection_type", "virtual_node"),
                ],
            ),
            1.0,
        ),
        (
            labels(
                "failed_total",
                &[("client", "a"), ("server", "b"), ("connection_type", "")],
            ),
            0.2,
        ),
    ];
    // Latency of `GET /`: per second, 0.5 below 0.1 s, 0.3 in (0.1, 0.2], 0.2 in (0.2, 0.4].
    for (le, cumulative) in [("0.1", 0.5), ("0.2", 0.8), ("0.4", 1.0), ("+Inf", 1.0)] {
        series.push((
            labels(
                "latency_bucket",
                &[("service", "a"), ("span_name", "GET /"), ("le", le)],
            ),
            cumulative,
        ));
    }
    let samples = series.iter().flat_map(|(labels, per_second)| {
        (0..=HOUR / STEP).map(move |i| {
            (
                labels.clone(),
                i * STEP,
                per_second * (i * STEP) as f64 / 1000.0,
            )
        })
    });
    store.append("t", samples);
    store
}

fn vector(query: &str, time: i64) -> Vec<(String, f64)> {
    match instant_query(&store(), "t", query, time) {
        Ok(QueryValue::Vector(_, samples)) => {
            let mut out: Vec<(String, f64)> = samples
                .into_iter()
                .map(|s| (s.labels.to_string(), s.value))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("{query}: {other:?}"),
    }
}

fn check(query: &str, expect: &[(&str, f64)]) {
    let got = vector(query, HOUR);
    let mut expect: Vec<(String, f64)> = expect.iter().map(|(l, v)| (l.to_string(), *v)).collect();
    expect.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), expect.len(), "{query}: got {got:?}");
    for ((got_labels, got_value), (want_labels, want_value)) in got.iter().zip(&expect) {
        assert_eq!(got_labels, want_labels, "{query}");
        let close = (got_value - want_value).abs() <= 1e-9 * want_value.abs().max(1.0)
            || (got_value.is_nan() && want_value.is_nan());
        assert!(
            close,
            "{query}: {got_labels} = {got_value}, want {want_value}"
        );
    }
}

#[test]
fn selectors_and_lookback() {
    check(
        r#"req_total{client="a"}"#,
        &[(r#"req_total{client="a", server="b"}"#, 7200.0)],
    );
    // Between samples the last one within 5 m answers.
    assert_eq!(
        vector(r#"req_total{client="a"}"#, HOUR - 7_000)[0].1,
        2.0 * (HOUR - STEP) as f64 / 1000.0
    );
    // Past the lookback nothing does.
    assert!(vector("req_total", HOUR + LOOKBACK_MS + 1).is_empty());
    check(
        r#"calls_total{status_code=~"STATUS_CODE_ERROR|nope", service!="b"}"#,
        &[(
            r#"calls_total{service="a", span_kind="SPAN_KIND_SERVER", span_name="POST /", status_code="STATUS_CODE_ERROR"}"#,
            1800.0,
        )],
    );
}

#[test]
fn rate_increase_irate() {
    check(
        r#"rate(req_total{client="a"}[5m])"#,
        &[(r#"{client="a", server="b"}"#, 2.0)],
    );
    check(
        r#"increase(req_total{client="a"}[1h])"#,
        &[(r#"{client="a", server="b"}"#, 7200.0)],
    );
    check(
        r#"irate(req_total{client="a"}[1m])"#,
        &[(r#"{client="a", server="b"}"#, 2.0)],
    );
    // The window [0, 1 h] with a sample at each end: no extrapolation, increase is exact.
    check(
        r#"increase(failed_total[1h])"#,
        &[(r#"{client="a", server="b"}"#, 720.0)],
    );
}

#[test]
fn aggregations() {
    check("sum(rate(calls_total[5m]))", &[("{}", 4.5)]);
    check(
        "sum by (service) (rate(calls_total[5m]))",
        &[(r#"{service="a"}"#, 1.5), (r#"{service="b"}"#, 3.0)],
    );
    check(
        "sum without (span_name, span_kind, status_code) (rate(calls_total[5m]))",
        &[(r#"{service="a"}"#, 1.5), (r#"{service="b"}"#, 3.0)],
    );
    check("count(calls_total)", &[("{}", 3.0)]);
    check("avg(rate(calls_total[5m]))", &[("{}", 1.5)]);
    check(
        "max by (service) (rate(calls_total[5m]))",
        &[(r#"{service="a"}"#, 1.0), (r#"{service="b"}"#, 3.0)],
    );
    check("min(rate(calls_total[5m]))", &[("{}", 0.5)]);
    check(
        "group by (service) (calls_total)",
        &[(r#"{service="a"}"#, 1.0), (r#"{service="b"}"#, 1.0)],
    );
    check(
        "topk(1, rate(calls_total[5m]))",
        &[(
            r#"{service="b", span_kind="SPAN_KIND_CLIENT", span_name="query", status_code="STATUS_CODE_UNSET"}"#,
            3.0,
        )],
    );
    check(
        "bottomk(1, rate(calls_total[5m]))",
        &[(
            r#"{service="a", span_kind="SPAN_KIND_SERVER", span_name="POST /", status_code="STATUS_CODE_ERROR"}"#,
            0.5,
        )],
    );
    check("quantile(0.5, rate(calls_total[5m]))", &[("{}", 1.0)]);
}

#[test]
fn binary_operators() {
    check(
        "rate(failed_total[5m]) / rate(req_total[5m])",
        &[(r#"{client="a", server="b"}"#, 0.1)],
    );
    check(
        "rate(req_total[5m]) * 60",
        &[
            (r#"{client="a", server="b"}"#, 120.0),
            (
                r#"{client="user", connection_type="virtual_node", server="a"}"#,
                60.0,
            ),
        ],
    );
    check(
        "rate(req_total[5m]) > 1.5",
        &[(r#"{client="a", server="b"}"#, 2.0)],
    );
    check(
        "req_total > 5000",
        &[(r#"req_total{client="a", server="b"}"#, 7200.0)],
    );
    check(
        "rate(req_total[5m]) > bool 1.5",
        &[
            (r#"{client="a", server="b"}"#, 1.0),
            (
                r#"{client="user", connection_type="virtual_node", server="a"}"#,
                0.0,
            ),
        ],
    );
    check(
        "1 < rate(req_total[5m])",
        &[(r#"{client="a", server="b"}"#, 2.0)],
    );
    check(
        "2 - rate(req_total[5m])",
        &[
            (r#"{client="a", server="b"}"#, 0.0),
            (
                r#"{client="user", connection_type="virtual_node", server="a"}"#,
                1.0,
            ),
        ],
    );
    assert_eq!(
        instant_query(&store(), "t", "1 + 2 * 3 > bool 6", HOUR),
        Ok(QueryValue::Scalar(HOUR, 1.0))
    );
    assert_eq!(
        instant_query(&store(), "t", "2 ^ 3 % 5", HOUR),
        Ok(QueryValue::Scalar(HOUR, 3.0))
    );
    check(
        r#"sum by (server) (rate(req_total[5m])) / on (server) group_left sum by (server) (rate(req_total[5m]))"#,
        &[(r#"{server="a"}"#, 1.0), (r#"{server="b"}"#, 1.0)],
    );
    check(
        r#"req_total and on (client) failed_total"#,
        &[(r#"req_total{client="a", server="b"}"#, 7200.0)],
    );
    check(
        r#"req_total unless on (client) failed_total"#,
        &[(
            r#"req_total{client="user", connection_type="virtual_node", server="a"}"#,
            3600.0,
        )],
    );
    check(
        r#"failed_total or on (client) req_total"#,
        &[
            (r#"failed_total{client="a", server="b"}"#, 720.0),
            (
                r#"req_total{client="user", connection_type="virtual_node", server="a"}"#,
                3600.0,
            ),
        ],
    );
    check(
        r#"req_total{client="a"} + on (service) calls_total{span_name="query"}"#,
        &[],
    );
    let error = instant_query(&store(), "t", "calls_total + on (service) req_total", HOUR)
        .err()
        .map(|e| e.kind);
    assert_eq!(
        error,
        Some(QueryErrorKind::Execution),
        "two right-hand series share the empty match group"
    );
    let error = instant_query(
        &store(),
        "t",
        "calls_total + on () group_left calls_total",
        HOUR,
    )
    .err()
    .map(|e| e.kind);
    assert_eq!(error, Some(QueryErrorKind::Execution));
}

#[test]
fn histogram_quantile_and_label_functions() {
    // p50: rank 0.5 of 1.0/s lands at the top of the first bucket; p90: 0.9 → 0.2 + 0.2 * (0.1/0.2).
    check(
        r#"histogram_quantile(0.5, sum(rate(latency_bucket[5m])) by (le))"#,
        &[("{}", 0.1)],
    );
    check(
        r#"histogram_quantile(0.9, sum(rate(latency_bucket[5m])) by (le))"#,
        &[("{}", 0.3)],
    );
    check(
        r#"histogram_quantile(0.99, rate(latency_bucket[5m]))"#,
        &[(
            r#"{service="a", span_name="GET /"}"#,
            0.2 + 0.2 * 0.19 / 0.2,
        )],
    );
    check(
        r#"label_replace(rate(req_total{client="a"}[5m]), "service", "$1-svc", "server", "(.*)")"#,
        &[(r#"{client="a", server="b", service="b-svc"}"#, 2.0)],
    );
    check(
        r#"label_replace(rate(req_total{client="a"}[5m]), "service", "x", "server", "nomatch")"#,
        &[(r#"{client="a", server="b"}"#, 2.0)],
    );
    check(
        r#"label_join(req_total{client="a"}, "pair", "->", "client", "server")"#,
        &[(r#"req_total{client="a", pair="a->b", server="b"}"#, 7200.0)],
    );
    check(
        "abs(-rate(req_total{client=\"a\"}[5m]))",
        &[(r#"{client="a", server="b"}"#, 2.0)],
    );
    check("absent(nope{a=\"x\"})", &[(r#"{a="x"}"#, 1.0)]);
}

/// Grafana's Tempo data source, service graph tab and APM table (queries as it sends them).
#[test]
fn grafana_service_graph_and_apm_queries() {
    check(
        "sum by (client, server) (rate(req_total[3600s]))",
        &[
            (r#"{client="a", server="b"}"#, 2.0),
            (r#"{client="user", server="a"}"#, 1.0),
        ],
    );
    check(
        "group by (client, connection_type, server) (req_total)",
        &[
            (r#"{client="a", server="b"}"#, 1.0),
            (
                r#"{client="user", connection_type="virtual_node", server="a"}"#,
                1.0,
            ),
        ],
    );
    check(
        r#"topk(5, sum(rate(calls_total{span_kind="SPAN_KIND_SERVER"}[3600s])) by (span_name))"#,
        &[
            (r#"{span_name="GET /"}"#, 1.0),
            (r#"{span_name="POST /"}"#, 0.5),
        ],
    );
    check(
        r#"topk(5, sum(rate(calls_total{status_code="STATUS_CODE_ERROR",span_name=~"GET /|POST /"}[3600s])) by (span_name))"#,
        &[(r#"{span_name="POST /"}"#, 0.5)],
    );
    check(
        r#"histogram_quantile(.9, sum(rate(latency_bucket{span_name=~"GET /"}[3600s])) by (le))"#,
        &[("{}", 0.3)],
    );
}

#[test]
fn range_query_steps_and_errors() {
    let store = store();
    let Ok(QueryValue::Matrix(series)) = range_query(
        &store,
        "t",
        "sum(rate(req_total[5m]))",
        HOUR - 10 * 60_000,
        HOUR,
        60_000,
    ) else {
        panic!()
    };
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].samples.len(), 11);
    assert!(
        series[0]
            .samples
            .iter()
            .all(|&(_, v)| (v - 3.0).abs() < 1e-9),
        "{series:?}"
    );
    assert_eq!(series[0].samples[0].0, HOUR - 10 * 60_000);
    let Ok(QueryValue::Matrix(scalar)) = range_query(&store, "t", "time()", 0, 30_000, 15_000)
    else {
        panic!()
    };
    assert_eq!(
        scalar[0].samples,
        vec![(0, 0.0), (15_000, 15.0), (30_000, 30.0)]
    );
    assert_eq!(
        range_query(&store, "t", "req_total[5m]", 0, 1, 1)
            .unwrap_err()
            .kind,
        QueryErrorKind::BadData
    );
    assert_eq!(
        range_query(&store, "t", "up", 0, 100_000_000, 1)
            .unwrap_err()
            .kind,
        QueryErrorKind::BadData
    );
    // Issue 10, finding 4: extreme bounds cannot wrap the step count into an accepted one.
    let wide = range_query(&store, "t", "vector(1)", i64::MIN / 2, HOUR, 15_000).unwrap_err();
    assert!(wide.message.contains("11,000 points"), "{wide}");
    let Ok(QueryValue::Matrix(last)) =
        range_query(&store, "t", "vector(1)", i64::MAX - 10, i64::MAX, 7)
    else {
        panic!()
    };
    assert_eq!(
        last[0].samples.len(),
        2,
        "stepping past the largest time stops"
    );
    let parse_error = instant_query(&store, "t", "sum(rate(x[5m])", 0).unwrap_err();
    assert_eq!(parse_error.kind, QueryErrorKind::BadData);
    assert!(
        parse_error
            .message
            .starts_with("invalid parameter \"query\""),
        "{parse_error}"
    );
    assert_eq!(
        instant_query(&store, "t", "foo(bar)", 0).unwrap_err().kind,
        QueryErrorKind::BadData
    );
    let Ok(QueryValue::Matrix(raw)) =
        instant_query(&store, "t", r#"req_total{client="a"}[1m]"#, HOUR)
    else {
        panic!()
    };
    assert_eq!(raw[0].samples.len(), 4, "left-open window: (t-60 s, t]");
}

#[test]
fn subqueries_and_at_modifier() {
    // req_total grows 2/s: a subquery of its rate every minute over 10 m has 10 points of 2.
    check(
        r#"count_over_time(rate(req_total{client="a"}[5m])[10m:1m])"#,
        &[(r#"{client="a", server="b"}"#, 10.0)],
    );
    check(
        r#"max_over_time(rate(req_total{client="a"}[5m])[10m:1m])"#,
        &[(r#"{client="a", server="b"}"#, 2.0)],
    );
    // A step off the minute: inner steps stay on multiples of the resolution in (t-10m, t].
    assert_eq!(
        vector(
            r#"count_over_time(req_total{client="a"}[10m:1m])"#,
            HOUR - 7_000
        )[0]
        .1,
        10.0
    );
    // `@` pins a selector: at any evaluation time it reads the value at 30 m.
    for t in [HOUR, HOUR - 600_000] {
        assert_eq!(
            vector(r#"req_total{client="a"} @ 1800"#, t)[0].1,
            2.0 * 1800.0
        );
    }
    check(
        r#"increase(req_total{client="a"}[10m] @ 1800 offset 5m)"#,
        &[(r#"{client="a", server="b"}"#, 1200.0)],
    );
    // `@ start()` and `@ end()` are the range query's bounds at every step.
    let Ok(QueryValue::Matrix(series)) = range_query(
        &store(),
        "t",
        r#"req_total{client="a"} @ start()"#,
        HOUR - 600_000,
        HOUR,
        60_000,
    ) else {
        panic!()
    };
    assert!(series[0]
        .samples
        .iter()
        .all(|&(_, v)| v == 2.0 * (HOUR - 600_000) as f64 / 1000.0));
}

#[test]
fn subquery_work_is_bounded() {
    let error =
        instant_query(&store(), "t", "count_over_time(vector(1)[100d:1s])", HOUR).unwrap_err();
    assert_eq!(error.kind, QueryErrorKind::Execution);
    assert!(error.message.contains("too many samples"), "{error}");
}

#[test]
fn calendar_functions_in_utc() {
    // 2024-02-29T13:45:30Z, a Thursday, day 60 of a leap year.
    let at = 1_709_214_330;
    for (function, want) in [
        ("minute", 45.0),
        ("hour", 13.0),
        ("day_of_month", 29.0),
        ("day_of_week", 4.0),
        ("day_of_year", 60.0),
        ("days_in_month", 29.0),
        ("month", 2.0),
        ("year", 2024.0),
    ] {
        check(&format!("{function}(vector({at}))"), &[("{}", want)]);
    }
    check("year(vector(-1))", &[("{}", 1969.0)]);
    check("day_of_week(vector(0))", &[("{}", 4.0)]);
}

#[test]
fn dropping_the_name_into_one_label_set_is_an_error() {
    // Service "a"'s two series differ only in `span_name` and `status_code`: overwrite both.
    let error = instant_query(
        &store(),
        "t",
        r#"label_replace(label_replace(calls_total{service="a"}, "span_name", "x", "", ""), "status_code", "x", "", "")"#,
        HOUR,
    )
    .unwrap_err();
    assert_eq!(error.kind, QueryErrorKind::Execution);
    assert!(error.message.contains("same labelset"), "{error}");
}

#[test]
fn topk_keeps_the_first_of_equal_values_and_count_values_formats_like_go() {
    // topk(1) of two equal values keeps the first.
    check(
        "topk(1, vector(1) or label_replace(vector(1), \"a\", \"b\", \"\", \"\"))",
        &[("{}", 1.0)],
    );
    check(
        r#"count_values("v", vector(1e21) or label_replace(vector(-0.0), "a", "b", "", ""))"#,
        &[
            (r#"{v="1000000000000000000000"}"#, 1.0),
            (r#"{v="-0"}"#, 1.0),
        ],
    );
    assert_eq!(
        instant_query(&store(), "t", "topk(scalar(vector(0)/0), req_total)", HOUR)
            .unwrap_err()
            .kind,
        QueryErrorKind::Execution
    );
}
