//! Each scenario changes exactly what it says. Most checks pair a faulted run with the same run
//! minus the fault (same seed, same noise, same trace starts): faults that only stretch time
//! leave every random draw in place, so the two runs hold the same spans with the same IDs and
//! every difference is the fault's.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::incident::IncidentBuilder;
use crate::scenario::{Plan, Scenario, ScenarioArgs};
use crate::send::GenArgs;
use crate::timeline::{Source, Trace, BACKFILL_TAIL_SECS};
use crate::topology::{IncidentTopology, TopologySpec};

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const RUN_START: u64 = 1_700_000_000 * SEC;
const ONSET_SECS: u64 = 120;
const FAULT_SECS: u64 = 300;
const RUN_SECS: u64 = 600;

/// A span with its resource's identity.
#[derive(Clone)]
struct Record {
    service: String,
    pod: String,
    node: String,
    version: String,
    span: Span,
}

impl Record {
    fn failed(&self) -> bool {
        self.span
            .status
            .as_ref()
            .is_some_and(|status| status.code == StatusCode::Error as i32)
    }
    fn kind(&self) -> SpanKind {
        SpanKind::try_from(self.span.kind).unwrap_or(SpanKind::Unspecified)
    }
    fn is_server(&self) -> bool {
        matches!(self.kind(), SpanKind::Server | SpanKind::Consumer)
    }
    fn duration(&self) -> u64 {
        self.span.end_time_unix_nano - self.span.start_time_unix_nano
    }
    fn in_fault(&self) -> bool {
        let start = self.span.start_time_unix_nano;
        let onset = RUN_START + ONSET_SECS * SEC;
        (onset..onset + FAULT_SECS * SEC).contains(&start)
    }
    fn attribute(&self, key: &str) -> Option<String> {
        string_attribute(&self.span, key)
    }
}

fn string_attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(value) => Some(value.clone()),
            Value::IntValue(value) => Some(value.to_string()),
            _ => None,
        })
}

fn records(trace: &Trace) -> Vec<Record> {
    let mut records = Vec::new();
    for resource_spans in &trace.1 {
        let resource = resource_spans.resource.clone().unwrap_or_default();
        let resource_attribute = |key: &str| {
            resource
                .attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(value) => Some(value.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        for span in resource_spans
            .scope_spans
            .iter()
            .flat_map(|scope| &scope.spans)
        {
            records.push(Record {
                service: resource_attribute("service.name"),
                pod: resource_attribute("k8s.pod.name"),
                node: resource_attribute("k8s.node.name"),
                version: resource_attribute("service.version"),
                span: span.clone(),
            });
        }
    }
    records
}

/// Duration minus the time covered by the span's children (clipped to the span).
fn self_time(record: &Record, trace: &[Record]) -> u64 {
    let span = &record.span;
    let children: u64 = trace
        .iter()
        .filter(|child| child.span.parent_span_id == span.span_id)
        .map(|child| {
            let start = child
                .span
                .start_time_unix_nano
                .max(span.start_time_unix_nano);
            let end = child.span.end_time_unix_nano.min(span.end_time_unix_nano);
            end.saturating_sub(start)
        })
        .sum();
    record.duration() - children
}

fn args(scenario: Scenario, target: Option<&str>) -> ScenarioArgs {
    ScenarioArgs {
        scenario: Some(scenario),
        scenario_target: target.map(str::to_owned),
        scenario_onset_secs: ONSET_SECS,
        scenario_duration_secs: Some(FAULT_SECS),
        ..ScenarioArgs::default()
    }
}

fn generate(topology: &IncidentTopology, plan: &Plan, seed: u64, traces: u64) -> Vec<Vec<Record>> {
    let mut builder = IncidentBuilder::new(topology, plan, seed);
    let step = RUN_SECS * SEC / traces;
    (0..traces)
        .map(|n| records(&builder.build(RUN_START + n * step)))
        .collect()
}

/// The faulted run, the same run without the fault, and the plan.
fn paired(
    scenario: Scenario,
    target: Option<&str>,
    seed: u64,
) -> (Plan, Vec<Vec<Record>>, Vec<Vec<Record>>) {
    paired_on(TopologySpec::store, scenario, target, seed)
}

fn paired_on(
    spec: fn() -> TopologySpec,
    scenario: Scenario,
    target: Option<&str>,
    seed: u64,
) -> (Plan, Vec<Vec<Record>>, Vec<Vec<Record>>) {
    let topology = IncidentTopology::new(spec(), seed);
    let plan = Plan::new(
        &topology,
        &args(scenario, target),
        seed,
        RUN_START,
        Some(RUN_START + RUN_SECS * SEC),
    )
    .expect("plan");
    let mut baseline_plan = plan.clone();
    baseline_plan.fault = None;
    let faulted = generate(&topology, &plan, seed, 1500);
    let baseline = generate(&topology, &baseline_plan, seed, 1500);
    (plan, faulted, baseline)
}

/// Calls `check(faulted, baseline, faulted trace, baseline trace)` for every span pair.
fn each_pair(
    faulted: &[Vec<Record>],
    baseline: &[Vec<Record>],
    mut check: impl FnMut(&Record, &Record, &[Record], &[Record]),
) {
    assert_eq!(faulted.len(), baseline.len());
    for (faulted_trace, baseline_trace) in faulted.iter().zip(baseline) {
        assert_eq!(
            faulted_trace.len(),
            baseline_trace.len(),
            "a time-only fault keeps the trace shape"
        );
        let by_id: HashMap<&[u8], &Record> = baseline_trace
            .iter()
            .map(|r| (r.span.span_id.as_slice(), r))
            .collect();
        for record in faulted_trace {
            let twin = by_id[record.span.span_id.as_slice()];
            check(record, twin, faulted_trace, baseline_trace);
        }
    }
}

#[test]
fn latency_adds_self_time_to_the_target_service_only() {
    let (_, faulted, baseline) = paired(Scenario::Latency, Some("catalog"), 3);
    let (mut slowed, mut callers_slower) = (0, 0);
    each_pair(&faulted, &baseline, |span, twin, trace, twin_trace| {
        let extra = self_time(span, trace) as i64 - self_time(twin, twin_trace) as i64;
        if span.service == "catalog" && span.is_server() && span.in_fault() {
            assert!(
                (300 * MS as i64..=800 * MS as i64).contains(&extra),
                "{extra}"
            );
            slowed += 1;
        } else {
            assert_eq!(
                extra, 0,
                "{} {} changed its self time",
                span.service, span.span.name
            );
        }
        if span.service == "api-gateway"
            && span.is_server()
            && span.duration() > twin.duration() + 300 * MS
        {
            callers_slower += 1;
        }
    });
    assert!(
        slowed > 100 && callers_slower > 50,
        "{slowed} {callers_slower}"
    );
}

#[test]
fn network_delay_lengthens_client_spans_of_the_edge_only() {
    let (_, faulted, baseline) = paired(Scenario::NetworkDelay, Some("checkout->payment"), 5);
    let mut delayed = 0;
    each_pair(&faulted, &baseline, |span, twin, trace, twin_trace| {
        let is_edge_client = span.service == "checkout"
            && span.kind() == SpanKind::Client
            && trace.iter().any(|child| {
                child.span.parent_span_id == span.span.span_id && child.service == "payment"
            });
        let extra = self_time(span, trace) as i64 - self_time(twin, twin_trace) as i64;
        if is_edge_client && span.in_fault() {
            assert!(
                (200 * MS as i64..=500 * MS as i64).contains(&extra),
                "{extra}"
            );
            delayed += 1;
        } else {
            assert_eq!(
                extra, 0,
                "{} {} changed its self time",
                span.service, span.span.name
            );
        }
        if span.service == "payment" && span.is_server() {
            assert_eq!(
                span.duration(),
                twin.duration(),
                "the callee's server span is unchanged"
            );
        }
    });
    assert!(delayed > 50, "{delayed}");
}

#[test]
fn saturation_slows_one_instance_and_not_its_peers() {
    let seed = 8;
    let topology = IncidentTopology::new(TopologySpec::store(), seed);
    let pod = topology.instances[2][1].pod.clone();
    assert!(pod.starts_with("catalog-"));
    let (_, faulted, baseline) = paired(Scenario::Saturation, Some(&pod), seed);
    let (mut saturated, mut peers) = (0, 0);
    each_pair(&faulted, &baseline, |span, twin, trace, twin_trace| {
        let (after, before) = (self_time(span, trace), self_time(twin, twin_trace));
        if span.pod == pod && span.is_server() && span.in_fault() {
            let factor = after as f64 / before as f64;
            assert!((3.99..=8.01).contains(&factor), "{factor}");
            saturated += 1;
        } else {
            assert_eq!(
                after, before,
                "{} on {} changed its self time",
                span.span.name, span.pod
            );
            peers += usize::from(span.service == "catalog" && span.in_fault());
        }
    });
    assert!(saturated > 50 && peers > 100, "{saturated} {peers}");
}

#[test]
fn saturation_of_a_node_slows_every_pod_on_it() {
    let (plan, faulted, baseline) = paired(Scenario::Saturation, Some("worker-b"), 2);
    assert!(matches!(
        &plan.fault,
        Some(crate::scenario::Fault::Saturation { node: Some(_), .. })
    ));
    each_pair(&faulted, &baseline, |span, twin, trace, twin_trace| {
        let (after, before) = (self_time(span, trace), self_time(twin, twin_trace));
        let own_work = span.is_server() || span.kind() == SpanKind::Internal;
        if span.node == "worker-b" && own_work && span.in_fault() {
            assert!(after >= before * 4 - 1, "{after} {before}");
        } else {
            assert_eq!(after, before);
        }
    });
}

fn origin(record: &Record, trace: &[Record]) -> bool {
    record.failed()
        && !trace
            .iter()
            .any(|child| child.span.parent_span_id == record.span.span_id && child.failed())
}

/// (error origins, spans) of server spans per service, in and out of the fault interval.
fn origin_ratios(traces: &[Vec<Record>], in_fault: bool) -> HashMap<String, (usize, usize)> {
    let mut ratios: HashMap<String, (usize, usize)> = HashMap::new();
    for trace in traces {
        for record in trace
            .iter()
            .filter(|r| r.is_server() && r.in_fault() == in_fault)
        {
            let entry = ratios.entry(record.service.clone()).or_default();
            entry.0 += usize::from(origin(record, trace));
            entry.1 += 1;
        }
    }
    ratios
}

#[test]
fn error_fails_the_target_and_callers_propagate() {
    let (plan, faulted, _) = paired(Scenario::Error, Some("inventory"), 11);
    for (service, (origins, total)) in origin_ratios(&faulted, true) {
        let ratio = origins as f64 / total as f64;
        if service == "inventory" {
            assert!((0.22..=0.68).contains(&ratio), "{ratio}");
        } else {
            let chronic = TopologySpec::store().services[plan.chronic_service].name;
            let ceiling = if service == chronic { 0.08 } else { 0.03 };
            assert!(ratio <= ceiling, "{service}: {ratio}");
        }
    }
    let before = origin_ratios(&faulted, false)["inventory"];
    assert!((before.0 as f64 / before.1 as f64) < 0.05);
    // Callers of a failing Reserve pass the error up without an exception of their own.
    let propagated = faulted
        .iter()
        .flatten()
        .filter(|r| {
            r.service == "checkout" && r.is_server() && r.failed() && r.span.events.is_empty()
        })
        .count();
    assert!(propagated > 10, "{propagated}");
}

#[test]
fn dependency_down_times_out_its_client_spans() {
    let (_, faulted, _) = paired(Scenario::DependencyDown, Some("payments-provider"), 4);
    let mut timeouts = 0;
    for record in faulted.iter().flatten() {
        if record.attribute("peer.service").as_deref() != Some("payments-provider") {
            continue;
        }
        assert_eq!(record.kind(), SpanKind::Client);
        if record.in_fault() {
            assert!(
                record.failed() && record.duration() >= 4000 * MS,
                "a timeout"
            );
            timeouts += 1;
        }
    }
    assert!(timeouts > 10, "{timeouts}");
    let payment_failed = faulted
        .iter()
        .flatten()
        .filter(|r| r.service == "payment" && r.is_server() && r.in_fault() && r.failed())
        .count();
    assert!(payment_failed >= timeouts, "the caller propagates");
    // Databases keep answering.
    let database_failures = faulted
        .iter()
        .flatten()
        .filter(|r| r.attribute("db.system").is_some() && r.failed())
        .count();
    let database_calls = faulted
        .iter()
        .flatten()
        .filter(|r| r.attribute("db.system").is_some())
        .count();
    assert!((database_failures as f64) < 0.02 * database_calls as f64);
}

#[test]
fn dependency_down_of_a_database() {
    let (_, faulted, _) = paired(Scenario::DependencyDown, Some("orders"), 4);
    let orders: Vec<&Record> = faulted
        .iter()
        .flatten()
        .filter(|r| {
            r.attribute("db.namespace")
                .or_else(|| r.attribute("db.name"))
                .as_deref()
                == Some("orders")
        })
        .collect();
    assert!(orders
        .iter()
        .filter(|r| r.in_fault())
        .all(|r| r.failed() && r.duration() >= 2500 * MS));
    assert!(
        orders
            .iter()
            .filter(|r| !r.in_fault())
            .filter(|r| r.failed())
            .count()
            < 5
    );
}

#[test]
fn bad_deploy_changes_version_errors_and_latency() {
    let (plan, faulted, baseline) = paired(Scenario::BadDeploy, Some("cart"), 6);
    let target = plan.truth_json(&IncidentTopology::new(TopologySpec::store(), 6), 6);
    assert_eq!(target["target"]["name"], "cart");
    let cart = &TopologySpec::store().services[3];
    assert_eq!(cart.name, "cart");
    for record in faulted.iter().flatten().filter(|r| r.service == "cart") {
        let expected = if record.in_fault() {
            cart.next_version
        } else {
            cart.version
        };
        assert_eq!(
            record.version, expected,
            "rolled out at onset, back at the end"
        );
    }
    let (origins, total) = origin_ratios(&faulted, true)["cart"];
    assert!((0.15..=0.45).contains(&(origins as f64 / total as f64)));
    let mean_self = |traces: &[Vec<Record>]| {
        let values: Vec<u64> = traces
            .iter()
            .flat_map(|trace| {
                trace
                    .iter()
                    .filter(|r| r.service == "cart" && r.is_server() && r.in_fault())
                    .map(|r| self_time(r, trace))
            })
            .collect();
        values.iter().sum::<u64>() / values.len() as u64
    };
    assert!(mean_self(&faulted) > mean_self(&baseline) + 20 * MS);
}

fn backfill(scenario: Scenario, seed: u64, secs: u64, now: u64) -> (Source, Vec<Trace>) {
    let gen_args = GenArgs {
        endpoint: String::new(),
        protocol: crate::send::Protocol::Grpc,
        rate: 5.0,
        duration_secs: 0,
        traces: 0,
        batch: 10,
        concurrency: 1,
        tenant: None,
        seed,
        acked_file: None,
        scenario: ScenarioArgs {
            scenario: Some(scenario),
            backfill_secs: secs,
            scenario_onset_secs: ONSET_SECS,
            scenario_duration_secs: Some(FAULT_SECS),
            ..ScenarioArgs::default()
        },
    };
    let source = Source::new(&gen_args, now).expect("source");
    let mut traces = Vec::new();
    {
        let mut batches = source.batches();
        while let Some(batch) = batches.next_backfill() {
            traces.extend(batch);
        }
    }
    (source, traces)
}

#[test]
fn backfill_dates_every_span_within_the_last_seconds() {
    let now = RUN_START + 10_000 * SEC;
    for scenario in [Scenario::DependencyDown, Scenario::Latency, Scenario::None] {
        let (_, traces) = backfill(scenario, 9, 600, now);
        let spans: Vec<Record> = traces.iter().flat_map(records).collect();
        for record in &spans {
            assert!(record.span.start_time_unix_nano >= now - 600 * SEC);
            assert!(record.span.end_time_unix_nano <= now);
        }
        let first = spans
            .iter()
            .map(|r| r.span.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let last = spans
            .iter()
            .map(|r| r.span.start_time_unix_nano)
            .max()
            .unwrap_or(0);
        assert!(first < now - 590 * SEC && last > now - (BACKFILL_TAIL_SECS + 10) * SEC);
        assert!(
            (2500..3500).contains(&traces.len()),
            "5 traces/s over 585 s: {}",
            traces.len()
        );
    }
}

#[test]
fn traffic_spike_triples_the_rate_without_errors() {
    let now = RUN_START + 10_000 * SEC;
    let (source, traces) = backfill(Scenario::TrafficSpike, 12, 600, now);
    let onset = now - 600 * SEC + ONSET_SECS * SEC;
    let end = onset + FAULT_SECS * SEC;
    let root_starts: Vec<u64> = traces
        .iter()
        .flat_map(|trace| {
            records(trace)
                .into_iter()
                .filter(|r| r.span.parent_span_id.is_empty())
                .map(|r| r.span.start_time_unix_nano)
        })
        .collect();
    let before = root_starts.iter().filter(|t| **t < onset).count() as f64 / ONSET_SECS as f64;
    let during = root_starts
        .iter()
        .filter(|t| **t >= onset && **t < end)
        .count() as f64
        / FAULT_SECS as f64;
    assert!((2.5..3.5).contains(&(during / before)), "{before} {during}");
    let truth = source.truth_json().expect("truth");
    assert_eq!(truth["incident"], false);
    assert!(truth["target"].is_null());
    // No errors beyond the background.
    let (spike_plan, spiked, baseline) = paired(Scenario::TrafficSpike, None, 12);
    assert!(spike_plan.fault.is_some());
    let error_ratio = |traces: &[Vec<Record>]| {
        let (origins, total) = origin_ratios(traces, true)
            .values()
            .fold((0, 0), |acc, (o, t)| (acc.0 + o, acc.1 + t));
        origins as f64 / total as f64
    };
    assert!(error_ratio(&spiked) < 0.02, "{}", error_ratio(&spiked));
    each_pair(&spiked, &baseline, |span, twin, trace, twin_trace| {
        if span.is_server() && span.in_fault() {
            let factor = self_time(span, trace) as f64 / self_time(twin, twin_trace).max(1) as f64;
            assert!((1.09..=1.21).contains(&factor), "{factor}");
        }
    });
}

#[test]
fn truth_names_the_target_and_says_incident() {
    let now = RUN_START + 10_000 * SEC;
    let expected = [
        (Scenario::Latency, "service"),
        (Scenario::Error, "service"),
        (Scenario::BadDeploy, "service"),
        (Scenario::DependencyDown, "external"),
        (Scenario::NetworkDelay, "edge"),
        (Scenario::TrafficSpike, ""),
        (Scenario::None, ""),
    ];
    for (scenario, kind) in expected {
        let (source, _) = backfill(scenario, 1, 300, now);
        let truth = source.truth_json().expect("truth");
        assert_eq!(truth["scenario"], scenario.name());
        assert_eq!(truth["incident"], !kind.is_empty(), "{scenario:?}");
        assert_eq!(truth["seed"], 1);
        assert_eq!(truth["topology"], "incident");
        assert_eq!(truth["runStartUnixNanos"], (now - 300 * SEC).to_string());
        if kind.is_empty() {
            assert!(truth["target"].is_null());
            continue;
        }
        assert_eq!(truth["target"]["kind"], kind, "{scenario:?}");
        let onset: u64 = truth["onsetUnixNanos"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("onset");
        let end: u64 = truth["endUnixNanos"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .expect("end");
        assert_eq!(onset, now - 300 * SEC + ONSET_SECS * SEC);
        assert_eq!(
            end,
            (onset + FAULT_SECS * SEC).min(now - BACKFILL_TAIL_SECS * SEC)
        );
    }
    // Saturation names an instance with its service, or a node.
    for seed in 0..12 {
        let (source, _) = backfill(Scenario::Saturation, seed, 300, now);
        let truth = source.truth_json().expect("truth");
        let target = &truth["target"];
        match target["kind"].as_str() {
            Some("instance") => assert!(target["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with(target["service"].as_str().unwrap_or("?"))),
            Some("node") => assert!(target["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("worker-")),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn run_writes_the_truth_file() {
    let directory = std::env::temp_dir().join(format!("andante-gen-truth-{}", std::process::id()));
    std::fs::create_dir_all(&directory).expect("temp dir");
    let path = directory.join("truth.json");
    let gen_args = GenArgs {
        // Nothing listens there: sending fails, the truth is written before.
        endpoint: "http://127.0.0.1:9".into(),
        protocol: crate::send::Protocol::Http,
        rate: 1.0,
        duration_secs: 0,
        traces: 1,
        batch: 1,
        concurrency: 1,
        tenant: None,
        seed: 3,
        acked_file: None,
        scenario: ScenarioArgs {
            scenario: Some(Scenario::NetworkDelay),
            topology: Some(crate::scenario::TopologyKind::Booking),
            scenario_target: Some("search->pricing".into()),
            truth_file: Some(path.clone()),
            backfill_secs: 120,
            ..ScenarioArgs::default()
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(crate::send::run(gen_args)).expect("run");
    assert_eq!(report.traces, 0);
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("truth file")).expect("json");
    assert_eq!(truth["target"]["kind"], "edge");
    assert_eq!(truth["target"]["name"], "search->pricing");
    assert_eq!(truth["topology"], "booking");
    assert_eq!(truth["incident"], true);
    std::fs::remove_dir_all(&directory).ok();
}

#[test]
fn bad_targets_are_refused_with_the_choices() {
    let topology = IncidentTopology::new(TopologySpec::store(), 1);
    for (scenario, target, hint) in [
        (Scenario::Latency, "nope", "catalog"),
        (
            Scenario::NetworkDelay,
            "web->catalog",
            "api-gateway->catalog",
        ),
        (Scenario::DependencyDown, "catalog-db", "payments-provider"),
        (Scenario::Saturation, "worker-z", "worker-a"),
    ] {
        let error = Plan::new(&topology, &args(scenario, Some(target)), 1, RUN_START, None)
            .expect_err(target)
            .to_string();
        assert!(error.contains(target) && error.contains(hint), "{error}");
    }
}

#[test]
fn default_targets_vary_with_the_seed_and_runs_reproduce() {
    for topology_spec in [TopologySpec::store, TopologySpec::booking] {
        for scenario in [
            Scenario::Latency,
            Scenario::Saturation,
            Scenario::DependencyDown,
            Scenario::NetworkDelay,
        ] {
            let targets: HashSet<String> = (0..10)
                .map(|seed| {
                    let topology = IncidentTopology::new(topology_spec(), seed);
                    let plan = Plan::new(&topology, &args(scenario, None), seed, RUN_START, None)
                        .expect("plan");
                    plan.truth_json(&topology, seed)["target"]["name"].to_string()
                })
                .collect();
            assert!(targets.len() >= 2, "{scenario:?}: {targets:?}");
        }
    }
    let (_, first, _) = paired(Scenario::Error, None, 21);
    let (_, second, _) = paired(Scenario::Error, None, 21);
    let ids = |traces: &[Vec<Record>]| {
        traces
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.span.span_id.clone(),
                    r.span.end_time_unix_nano,
                    r.failed(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&second));
}

#[test]
fn topologies_are_rich_and_mix_conventions() {
    for (spec, external) in [
        (
            TopologySpec::store as fn() -> TopologySpec,
            "payments-provider",
        ),
        (TopologySpec::booking, "gds-api"),
    ] {
        let (_, traces, _) = paired_on(spec, Scenario::None, None, 7);
        let spans: Vec<&Record> = traces.iter().flatten().collect();
        let keys: HashSet<&str> = spans
            .iter()
            .flat_map(|r| r.span.attributes.iter().map(|kv| kv.key.as_str()))
            .collect();
        for key in [
            "http.method",
            "http.request.method",
            "http.status_code",
            "http.response.status_code",
            "net.peer.name",
            "server.address",
            "db.system",
            "db.name",
            "db.namespace",
            "peer.service",
            "messaging.system",
            "messaging.destination.name",
            "rpc.system",
        ] {
            assert!(keys.contains(key), "{key}");
        }
        let kinds: HashSet<i32> = spans.iter().map(|r| r.span.kind).collect();
        assert_eq!(
            kinds.len(),
            5,
            "server, client, internal, producer, consumer"
        );
        let mut pods: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut nodes: HashMap<&str, HashSet<&str>> = HashMap::new();
        for record in &spans {
            pods.entry(&record.service).or_default().insert(&record.pod);
            nodes
                .entry(&record.service)
                .or_default()
                .insert(&record.node);
        }
        assert!(
            pods.len() >= 8 && pods.values().all(|p| (2..=3).contains(&p.len())),
            "{pods:?}"
        );
        assert!(nodes.values().all(|n| n.len() >= 2));
        // The external API has client spans and never a server side.
        let external: Vec<&&Record> = spans
            .iter()
            .filter(|r| r.attribute("peer.service").as_deref() == Some(external))
            .collect();
        assert!(!external.is_empty());
        for record in external {
            assert!(!spans
                .iter()
                .any(|child| child.span.parent_span_id == record.span.span_id));
        }
        // Background noise: a few errors everywhere, more in the chronic service.
        let ratios = origin_ratios(&traces, false);
        let (origins, total) = ratios
            .values()
            .fold((0, 0), |acc, (o, t)| (acc.0 + o, acc.1 + t));
        assert!(origins > 0 && (origins as f64) < 0.03 * total as f64);
    }
}

#[test]
fn command_line_flags_parse() {
    use clap::{Args, FromArgMatches};
    let command = GenArgs::augment_args(clap::Command::new("gen"));
    command.clone().debug_assert();
    let matches = command
        .try_get_matches_from([
            "gen",
            "--backfill-secs",
            "900",
            "--scenario",
            "network-delay",
            "--scenario-target",
            "web->api-gateway",
            "--scenario-onset-secs",
            "300",
            "--scenario-duration-secs",
            "120",
            "--truth-file",
            "/tmp/truth.json",
            "--topology",
            "booking",
            "--seed",
            "4",
        ])
        .expect("parse");
    let parsed = GenArgs::from_arg_matches(&matches).expect("args");
    let scenario = parsed.scenario;
    assert_eq!(scenario.scenario, Some(Scenario::NetworkDelay));
    assert_eq!(
        scenario.scenario_target.as_deref(),
        Some("web->api-gateway")
    );
    assert_eq!(
        (
            scenario.scenario_onset_secs,
            scenario.scenario_duration_secs,
            scenario.backfill_secs
        ),
        (300, Some(120), 900)
    );
    assert_eq!(
        scenario.topology,
        Some(crate::scenario::TopologyKind::Booking)
    );
    for name in [
        "latency",
        "error",
        "saturation",
        "dependency-down",
        "network-delay",
        "bad-deploy",
        "traffic-spike",
        "none",
    ] {
        let matches = GenArgs::augment_args(clap::Command::new("gen")).try_get_matches_from([
            "gen",
            "--scenario",
            name,
        ]);
        let parsed = GenArgs::from_arg_matches(&matches.expect("parse")).expect("args");
        assert_eq!(parsed.scenario.scenario.map(Scenario::name), Some(name));
        assert_eq!(parsed.scenario.scenario_onset_secs, 60, "the default onset");
    }
}
