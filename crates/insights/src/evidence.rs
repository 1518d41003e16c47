//! Evidence for assertions and causes: a TraceQL query that reproduces the symptom, up to
//! five example trace IDs from the anomalous intervals (the most striking spans first), and
//! a PromQL query over the span-metrics and service-graph series (Tempo's names, which
//! Andante generates from the same spans) when one measures the same thing: request rate,
//! error ratio and latency of services and operations, error ratio and client-minus-server
//! latency of edges, error ratio and client latency of uninstrumented peers. Self time and
//! error origins exist only in traces; their PromQL shows the symptom they cause.

use serde::Serialize;

use crate::assertions::{Detection, Metric};
use crate::entity::{EntityIdx, EntityKind};
use crate::extract::url_host;
use crate::fold::TopTraces;
use crate::window::Window;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    pub traceql: String,
    #[serde(rename = "traceIds")]
    pub trace_ids: Vec<String>,
    /// For changes seen in resource metrics: the series that shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promql: Option<String>,
}

pub(crate) fn for_detection(window: &Window, detection: &Detection) -> Evidence {
    Evidence {
        traceql: traceql(window, detection),
        trace_ids: trace_ids(window, detection),
        promql: detection
            .promql
            .clone()
            .or_else(|| span_metrics_promql(window, detection)),
    }
}

fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn service_filter(name: &str) -> String {
    format!("resource.service.name = {}", quoted(name))
}

fn duration_literal(nanos: f64) -> String {
    if nanos >= 1e6 {
        format!("{}ms", (nanos / 1e6).round() as u64)
    } else {
        format!("{}us", (nanos / 1e3).round() as u64)
    }
}

/// The condition on a span that the metric is about.
fn metric_condition(window: &Window, detection: &Detection) -> Option<String> {
    match detection.metric {
        Metric::ErrorOrigins | Metric::Errors | Metric::Missing => Some("status = error".into()),
        Metric::Deploy => Some(format!(
            "resource.service.version = {}",
            quoted(detection.version.as_deref().unwrap_or_default())
        )),
        Metric::Latency | Metric::LatencyP99 | Metric::SelfTime => {
            let info = window.entities.get(detection.entity);
            let range = window.baseline().unwrap_or(0..0);
            let baseline = window.cells_of(detection.entity)[range]
                .iter()
                .filter(|cell| cell.count > 0)
                .map(|cell| cell.duration_p50)
                .fold(0.0_f64, f64::max);
            let threshold = match (info.kind, detection.metric) {
                (EntityKind::Edge, _) => baseline + (detection.observed - detection.expected) / 2.0,
                (_, Metric::Latency | Metric::LatencyP99) => {
                    (detection.observed + detection.expected) / 2.0
                }
                _ => baseline + (detection.observed - detection.expected) / 2.0,
            };
            Some(format!("duration > {}", duration_literal(threshold)))
        }
        Metric::RateUp | Metric::RateDown | Metric::Resource => None,
    }
}

/// A PromQL label matcher. Label values are the sender's: a line break must be escaped too.
pub(crate) fn matcher(name: &str, value: &str) -> String {
    format!("{name}={}", quoted(value).replace('\n', "\\n"))
}

/// The PromQL over generated series that shows `detection`'s change, if any measures it.
fn span_metrics_promql(window: &Window, detection: &Detection) -> Option<String> {
    let table = &window.entities;
    let info = table.get(detection.entity);
    let range = crate::resources::rate_range_secs(window.interval_nanos);
    let rate = |metric: &str, selector: &[String]| {
        format!("sum(rate({metric}{{{}}}[{range}s]))", selector.join(", "))
    };
    let quantile = |q: f64, metric: &str, selector: &[String]| {
        format!(
            "histogram_quantile({q}, sum by (le) (rate({metric}{{{}}}[{range}s])))",
            selector.join(", ")
        )
    };
    let service_name = || table.service_name(detection.entity).map(str::to_owned);
    match info.kind {
        EntityKind::Service | EntityKind::Operation => {
            let mut selector = vec![
                matcher("service", &service_name()?),
                "span_kind=~\"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER\"".to_string(),
            ];
            if info.kind == EntityKind::Operation {
                selector.push(matcher("span_name", &info.name));
            }
            let calls = "traces_spanmetrics_calls_total";
            let mut errors = selector.clone();
            errors.push("status_code=\"STATUS_CODE_ERROR\"".to_string());
            match detection.metric {
                Metric::RateUp | Metric::RateDown => Some(rate(calls, &selector)),
                Metric::ErrorOrigins | Metric::Errors => Some(format!(
                    "{} / {}",
                    rate(calls, &errors),
                    rate(calls, &selector)
                )),
                Metric::Latency | Metric::SelfTime => Some(quantile(
                    0.5,
                    "traces_spanmetrics_latency_bucket",
                    &selector,
                )),
                Metric::LatencyP99 => Some(quantile(
                    0.99,
                    "traces_spanmetrics_latency_bucket",
                    &selector,
                )),
                _ => None,
            }
        }
        EntityKind::Edge | EntityKind::External | EntityKind::Database => {
            let server = match info.kind {
                EntityKind::Edge => table.get(info.callee?).name.clone(),
                _ => info.name.clone(),
            };
            let mut selector = vec![matcher("server", &server)];
            if info.kind == EntityKind::Edge {
                selector.insert(0, matcher("client", &service_name()?));
            }
            let total = "traces_service_graph_request_total";
            let client = "traces_service_graph_request_client_seconds_bucket";
            match detection.metric {
                Metric::ErrorOrigins | Metric::Missing => Some(format!(
                    "{} / {}",
                    rate("traces_service_graph_request_failed_total", &selector),
                    rate(total, &selector)
                )),
                // Edge delay: what the client waited beyond what the server took.
                Metric::SelfTime if info.kind == EntityKind::Edge => Some(format!(
                    "{} - {}",
                    quantile(0.5, client, &selector),
                    quantile(
                        0.5,
                        "traces_service_graph_request_server_seconds_bucket",
                        &selector
                    )
                )),
                Metric::SelfTime => Some(quantile(0.5, client, &selector)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn and(parts: &[Option<String>]) -> String {
    let present: Vec<&str> = parts.iter().flatten().map(String::as_str).collect();
    format!("{{ {} }}", present.join(" && "))
}

fn traceql(window: &Window, detection: &Detection) -> String {
    let table = &window.entities;
    let info = table.get(detection.entity);
    let condition = metric_condition(window, detection);
    let owner_service = table.service_name(detection.entity).map(service_filter);
    match info.kind {
        EntityKind::Service | EntityKind::Namespace | EntityKind::Topic => {
            let entry = (detection.metric != Metric::Deploy)
                .then(|| "(kind = server || kind = consumer)".to_string());
            and(&[owner_service, entry, condition])
        }
        EntityKind::Operation => and(&[
            owner_service,
            Some(format!("name = {}", quoted(&info.name))),
            condition,
        ]),
        EntityKind::Instance => {
            let name = quoted(&info.name);
            and(&[
                owner_service,
                Some(format!(
                    "(resource.k8s.pod.name = {name} || resource.service.instance.id = {name} || resource.host.name = {name})"
                )),
                condition,
            ])
        }
        EntityKind::Node => {
            let name = quoted(&info.name);
            and(&[
                Some(format!(
                    "(resource.k8s.node.name = {name} || resource.host.name = {name})"
                )),
                condition,
            ])
        }
        EntityKind::Edge => edge_traceql(window, detection, condition),
        EntityKind::Database | EntityKind::External => and(&[
            Some("kind = client".into()),
            peer_condition(window, detection.entity),
            condition,
        ]),
    }
}

fn edge_traceql(window: &Window, detection: &Detection, condition: Option<String>) -> String {
    let table = &window.entities;
    let info = table.get(detection.entity);
    let caller = table.service_name(detection.entity).map(service_filter);
    let callee = info.callee.map(|callee| table.get(callee));
    let client = Some("kind = client".to_string());
    match (detection.metric, callee) {
        (Metric::SelfTime | Metric::ErrorOrigins, Some(callee))
            if callee.kind == EntityKind::Service =>
        {
            let server = and(&[
                Some(service_filter(&callee.name)),
                Some("kind = server".into()),
            ]);
            format!("{server} < {}", and(&[caller, client, condition]))
        }
        _ => and(&[
            caller,
            client,
            peer_condition(window, detection.entity),
            condition,
        ]),
    }
}

/// How the client spans of an external, database or unanswered edge name their peer.
fn peer_condition(window: &Window, entity: EntityIdx) -> Option<String> {
    let (peer, key) = window.peers.get(&entity)?;
    if *key == "url.full" || *key == "http.url" {
        url_host(&format!("x://{peer}"))?;
        let pattern = format!(
            "https?://([^/@]*@)?{}([:/?#].*)?",
            peer.replace('.', "\\\\.")
        );
        return Some(format!("span.{key} =~ {}", quoted(&pattern)));
    }
    Some(format!("span.{key} = {}", quoted(peer)))
}

/// The most striking traces of the detection's intervals: by self time or duration for time
/// metrics, any with an error origin, error or unanswered call for error metrics, requests of
/// the new version (error origins first) for a deploy.
fn trace_ids(window: &Window, detection: &Detection) -> Vec<String> {
    let intervals = detection.onset..=detection.last.min(window.intervals - 1);
    let best = if detection.metric == Metric::Deploy {
        let seen = window.versions.iter().find(|seen| {
            seen.service == detection.entity
                && Some(seen.version.as_str()) == detection.version.as_deref()
        });
        TopTraces::best_of(
            seen.into_iter()
                .flat_map(|seen| &seen.per_interval)
                .filter(|(interval, _, _)| intervals.contains(interval))
                .map(|(_, _, examples)| examples),
        )
    } else {
        let base = detection.entity as usize * window.intervals;
        TopTraces::best_of(intervals.map(|interval| {
            let examples = &window.examples[base + interval];
            match detection.metric {
                Metric::ErrorOrigins => &examples.origins,
                Metric::Errors => &examples.errors,
                Metric::Missing => &examples.unanswered,
                Metric::SelfTime | Metric::Resource => &examples.self_time,
                Metric::Latency | Metric::LatencyP99 => &examples.latency,
                Metric::RateUp | Metric::RateDown | Metric::Deploy => &examples.any,
            }
        }))
    };
    best.iter().map(|trace| hex_id(trace)).collect()
}

fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
