//! Evidence for assertions and causes: a TraceQL query that reproduces the symptom and up to
//! five example trace IDs from the anomalous intervals (the most striking spans first).

use serde::Serialize;

use crate::assertions::{Detection, Metric};
use crate::entity::{EntityIdx, EntityKind};
use crate::extract::url_host;
use crate::structure::NONE;
use crate::window::{SpanSummary, Window};

const MAX_TRACE_IDS: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    pub traceql: String,
    #[serde(rename = "traceIds")]
    pub trace_ids: Vec<String>,
}

pub(crate) fn for_detection(window: &Window, detection: &Detection) -> Evidence {
    Evidence {
        traceql: traceql(window, detection),
        trace_ids: trace_ids(window, detection),
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
        Metric::Latency | Metric::SelfTime => {
            let info = window.entities.get(detection.entity);
            let baseline = window.cells_of(detection.entity)[..(window.intervals / 3).max(1)]
                .iter()
                .filter(|cell| cell.count > 0)
                .map(|cell| cell.duration_p50)
                .fold(0.0_f64, f64::max);
            let threshold = match (info.kind, detection.metric) {
                (EntityKind::Edge, _) => baseline + (detection.observed - detection.expected) / 2.0,
                (_, Metric::Latency) => (detection.observed + detection.expected) / 2.0,
                _ => baseline + (detection.observed - detection.expected) / 2.0,
            };
            Some(format!("duration > {}", duration_literal(threshold)))
        }
        Metric::RateUp | Metric::RateDown => None,
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
    let example = window
        .spans
        .iter()
        .position(|span| span.owner == entity && span.facts.receiving_child == NONE)?;
    let record = &window.records[example];
    let peer = record.peer.as_deref()?;
    let key = record.peer_key?;
    if key == "url.full" || key == "http.url" {
        let host = record
            .peer
            .as_deref()
            .filter(|host| url_host(&format!("x://{host}")).is_some())?;
        let pattern = format!(
            "https?://([^/@]*@)?{}([:/?#].*)?",
            host.replace('.', "\\\\.")
        );
        return Some(format!("span.{key} =~ {}", quoted(&pattern)));
    }
    Some(format!("span.{key} = {}", quoted(peer)))
}

/// Whether an entry span belongs to a service-like entity.
fn request_matches(window: &Window, index: usize, span: &SpanSummary, entity: EntityIdx) -> bool {
    let table = &window.entities;
    let info = table.get(entity);
    let record = &window.records[index];
    match info.kind {
        EntityKind::Service => span.service == entity,
        EntityKind::Operation => info.service == Some(span.service) && record.name == info.name,
        EntityKind::Instance => {
            info.service == Some(span.service) && record.instance.as_deref() == Some(&info.name)
        }
        EntityKind::Node => record.node.as_deref() == Some(&info.name),
        EntityKind::Namespace => record.namespace.as_deref() == Some(&info.name),
        _ => false,
    }
}

fn trace_ids(window: &Window, detection: &Detection) -> Vec<String> {
    let kind = window.entities.get(detection.entity).kind;
    let first = window.interval_start(detection.onset);
    let last = window.interval_end(detection.last);
    let mut scored: Vec<(f64, usize)> = Vec::new();
    for (index, span) in window.spans.iter().enumerate() {
        let record = &window.records[index];
        if record.start_nanos < first || record.start_nanos >= last {
            continue;
        }
        let is_request = span.facts.entry == index as u32;
        let relevant = match kind {
            EntityKind::Edge | EntityKind::Database | EntityKind::External => {
                span.owner == detection.entity
            }
            EntityKind::Topic => false,
            _ => is_request && request_matches(window, index, span, detection.entity),
        };
        if !relevant {
            continue;
        }
        let score = match detection.metric {
            Metric::ErrorOrigins if is_request && kind != EntityKind::Edge => {
                f64::from(u8::from(span.request_origin))
            }
            Metric::ErrorOrigins => f64::from(u8::from(span.facts.origin)),
            Metric::Errors => f64::from(u8::from(record.error)),
            Metric::Missing => {
                f64::from(u8::from(span.facts.receiving_child == NONE && record.error))
            }
            Metric::SelfTime if is_request && kind != EntityKind::Edge => {
                span.request_self_nanos as f64
            }
            Metric::SelfTime => span.facts.self_nanos as f64,
            Metric::Latency => record.duration_nanos() as f64,
            Metric::Deploy => {
                let new_version = record.version.as_deref() == detection.version.as_deref();
                if !new_version {
                    continue;
                }
                1.0 + f64::from(u8::from(span.request_origin))
            }
            Metric::RateUp | Metric::RateDown => 1.0,
        };
        if score > 0.0 {
            scored.push((score, index));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut ids: Vec<String> = Vec::new();
    for (_, index) in scored {
        let id = hex_id(&window.records[index].trace_id);
        if !ids.contains(&id) {
            ids.push(id);
        }
        if ids.len() == MAX_TRACE_IDS {
            break;
        }
    }
    ids
}

fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
