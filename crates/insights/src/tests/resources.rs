//! Saturation from resource metrics: series as the metrics store answers the queries of
//! `RESOURCE_QUERIES`, matched to the simulated system's instances and services.

use super::sim::{Fault, Sim, ONSET, WINDOW_NANOS, WINDOW_START};
use crate::{analyze, Analysis, AssertionType, ResourceSeries, Severity, RESOURCE_QUERIES};

const MINUTE: u64 = 60_000_000_000;

fn query(metric: &str) -> usize {
    RESOURCE_QUERIES
        .iter()
        .position(|query| query.metric == metric)
        .expect("a known metric")
}

/// A series of `metric` with `labels`, at every interval end the analysis asks for: `before`
/// until `from`, `after` from then on.
fn series(
    analysis: &Analysis,
    metric: &str,
    labels: &[(&str, &str)],
    before: f64,
    after: f64,
    from: u64,
) -> ResourceSeries {
    let steps = analysis.resource_steps();
    let mut noise = 0.97;
    let points = (steps.first..=steps.last)
        .step_by(steps.step as usize)
        .map(|at| {
            noise = if noise > 1.0 { 0.97 } else { noise + 0.02 };
            (at, if at > from { after } else { before } * noise)
        })
        .collect();
    ResourceSeries {
        query: query(metric),
        labels: labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        pod: None,
        points,
    }
}

fn window(fault: Fault) -> Analysis {
    analyze(
        Sim::run(fault, 12),
        WINDOW_START,
        WINDOW_START + WINDOW_NANOS,
    )
}

#[test]
fn an_instance_whose_cpu_rises_with_its_latency_is_asserted_and_named_with_it() {
    let mut analysis = window(Fault::InstanceSlow("payments-1", 100));
    let cpu = series(
        &analysis,
        "cpu_cores",
        &[("job", "shop/payments"), ("k8s_pod_name", "payments-1")],
        0.2,
        0.9,
        ONSET,
    );
    let quiet_memory = series(
        &analysis,
        "memory_bytes",
        &[("job", "shop/payments"), ("instance", "payments-2")],
        3e8,
        3e8,
        ONSET,
    );
    analysis.add_resources(&[cpu, quiet_memory]);
    let saturation: Vec<_> = analysis
        .assertions(None)
        .into_iter()
        .filter(|assertion| {
            assertion.kind == AssertionType::Saturation && assertion.metric == "cpu_cores"
        })
        .collect();
    assert_eq!(saturation.len(), 1, "{saturation:#?}");
    let cpu = &saturation[0];
    assert_eq!(cpu.entity, "instance:payments:payments-1");
    assert_eq!(cpu.severity, Severity::Critical, "0.9 cores against 0.2");
    assert!(
        (cpu.expected - 0.2).abs() < 0.02 && (cpu.observed - 0.9).abs() < 0.05,
        "{cpu:?}"
    );
    let onset: u64 = cpu.start.parse().expect("nanoseconds");
    assert!(
        onset.abs_diff(ONSET) <= WINDOW_NANOS / 30,
        "{onset} vs {ONSET}"
    );
    let promql = cpu.evidence.promql.as_deref().expect("a PromQL query");
    assert!(
        promql.contains("k8s_pod_name=\"payments-1\"") && promql.contains("rate("),
        "{promql}"
    );
    andante_tsdb::promql::parse(promql).expect("the evidence is PromQL");

    let rca = analysis.rca(None);
    let top = &rca.causes[0];
    assert_eq!(
        (top.kind, top.name.as_str()),
        ("instance", "payments-1"),
        "{rca:#?}"
    );
    assert!(top.summary.contains("cpu_cores rose"), "{}", top.summary);
    assert!(top
        .assertions
        .iter()
        .any(|assertion| assertion.metric == "cpu_cores"));
}

#[test]
fn every_resource_query_is_promql() {
    for query in RESOURCE_QUERIES {
        let promql = query.promql(60);
        andante_tsdb::promql::parse(&promql).unwrap_or_else(|error| panic!("{promql}: {error:?}"));
    }
}

#[test]
fn a_service_named_by_job_is_matched_and_flat_or_unknown_series_are_not_asserted() {
    let mut analysis = window(Fault::None);
    let before = analysis.assertions(None).len();
    let gc = series(
        &analysis,
        "gc_seconds_per_second",
        &[("job", "shop/catalog")],
        0.01,
        0.08,
        ONSET,
    );
    let unknown = series(
        &analysis,
        "cpu_cores",
        &[("job", "billing"), ("instance", "10.0.0.9:9100")],
        0.1,
        0.9,
        ONSET,
    );
    let flat = series(
        &analysis,
        "pool_connections_used",
        &[("service_name", "checkout")],
        5.0,
        5.0,
        ONSET,
    );
    analysis.add_resources(&[gc, unknown, flat]);
    let added: Vec<_> = analysis.assertions(None).split_off(before);
    assert_eq!(added.len(), 1, "{added:#?}");
    assert_eq!(
        (added[0].entity.as_str(), added[0].metric.as_str()),
        ("service:catalog", "gc_seconds_per_second")
    );
    // A resource rise with no change in the traces is worth an assertion, not an incident.
    assert!(!analysis.rca(None).incident);
}

#[test]
fn opentelemetry_metrics_are_matched_through_the_pod_target_info_names() {
    let mut analysis = window(Fault::InstanceSlow("payments-1", 100));
    // `instance` is the service.instance.id, which names no instance seen in the traces.
    let mut cpu = series(
        &analysis,
        "cpu_utilization",
        &[("job", "shop/payments"), ("instance", "7f3c-uid")],
        0.2,
        0.9,
        ONSET,
    );
    cpu.pod = Some("payments-1".into());
    analysis.add_resources(&[cpu]);
    let found: Vec<_> = analysis
        .assertions(None)
        .into_iter()
        .filter(|assertion| assertion.metric == "cpu_utilization")
        .collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].entity, "instance:payments:payments-1");
    // Label values are the sender's: quotes, backslashes and line breaks stay PromQL.
    let mut odd = series(
        &analysis,
        "memory_bytes",
        &[("job", "shop/payments"), ("instance", "a\"b\\c\nd")],
        1e8,
        4e8,
        ONSET,
    );
    odd.pod = Some("payments-2".into());
    analysis.add_resources(&[odd]);
    let memory = analysis
        .assertions(Some("instance:payments:payments-2"))
        .into_iter()
        .find(|assertion| assertion.metric == "memory_bytes")
        .expect("payments-2's memory rose");
    let promql = memory.evidence.promql.unwrap_or_default();
    andante_tsdb::promql::parse(&promql).unwrap_or_else(|error| panic!("{promql}: {error:?}"));
    // The evidence selects the series by the labels it has, not by the joined pod.
    let promql = found[0].evidence.promql.as_deref().unwrap_or_default();
    assert!(
        promql.contains("instance=\"7f3c-uid\"") && !promql.contains("payments-1"),
        "{promql}"
    );
}

#[test]
fn resource_series_need_a_baseline_of_history() {
    // The window reaches back 25 minutes before the first span: no baseline yet.
    let records: Vec<_> = Sim::run(Fault::InstanceSlow("payments-1", 100), 12)
        .into_iter()
        .filter(|record| record.start_nanos < WINDOW_START + 5 * MINUTE)
        .collect();
    let start = WINDOW_START - 25 * MINUTE;
    let mut analysis = analyze(records, start, start + WINDOW_NANOS);
    assert_eq!(analysis.baseline_nanos(), None);
    let cpu = series(
        &analysis,
        "cpu_cores",
        &[("k8s_pod_name", "payments-1")],
        0.2,
        0.9,
        WINDOW_START + 2 * MINUTE,
    );
    analysis.add_resources(&[cpu]);
    assert!(analysis.assertions(None).is_empty());
}

/// Assertions whose quantity the span-metrics or service-graph series also measure carry
/// that PromQL, and it parses.
#[test]
fn span_assertions_carry_promql_over_the_generated_series() {
    let errors = window(Fault::Errors("catalog", 0.3));
    let catalog = errors
        .assertions(Some("service:catalog"))
        .into_iter()
        .find(|assertion| {
            assertion.entity == "service:catalog" && assertion.metric == "error_ratio"
        })
        .expect("catalog's error ratio rose");
    let promql = catalog.evidence.promql.expect("PromQL");
    assert!(
        promql.contains("traces_spanmetrics_calls_total{service=\"catalog\"")
            && promql.contains("status_code=\"STATUS_CODE_ERROR\""),
        "{promql}"
    );
    andante_tsdb::promql::parse(&promql).expect("PromQL parses");

    let delay = window(Fault::EdgeDelay("frontend", "catalog", 50));
    let edge = delay
        .assertions(None)
        .into_iter()
        .find(|assertion| assertion.entity == "edge:frontend->catalog")
        .expect("the edge's delay rose");
    let promql = edge.evidence.promql.expect("PromQL");
    assert!(
        promql.contains("traces_service_graph_request_client_seconds_bucket{client=\"frontend\", server=\"catalog\"}")
            && promql.contains(" - histogram_quantile(0.5, sum by (le) (rate(traces_service_graph_request_server_seconds_bucket"),
        "{promql}"
    );
    andante_tsdb::promql::parse(&promql).expect("PromQL parses");
    // Self time exists only in traces: the instance's assertion has no PromQL.
    let slow = window(Fault::InstanceSlow("payments-1", 100));
    let instance = slow
        .assertions(None)
        .into_iter()
        .find(|assertion| assertion.entity == "instance:payments:payments-1")
        .expect("the instance slowed");
    assert_eq!(instance.evidence.promql, None);
}
