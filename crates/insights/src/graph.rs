//! The entity graph: every entity with RED figures and its assertion count, the relations
//! between entities (CALLS with the edge's RED figures), and each service's deploys.

use serde::Serialize;

use crate::entity::EntityKind;
use crate::window::RelationKind;
use crate::Analysis;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    pub entities: Vec<GraphEntity>,
    pub relations: Vec<GraphRelation>,
    pub deploys: Vec<Deploy>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphEntity {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Requests (or calls, or messages) per second.
    pub rate: f64,
    pub error_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub assertions: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphRelation {
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deploy {
    pub service: String,
    pub version: String,
    /// Unix nanoseconds, as a string.
    pub first_seen: String,
    pub instances: Vec<String>,
}

pub(crate) fn build(analysis: &Analysis) -> Graph {
    let window = &analysis.window;
    let table = &window.entities;
    let seconds = window.window_secs();
    let entities = table
        .iter()
        .filter(|(_, entity)| entity.kind != EntityKind::Edge)
        .map(|(idx, entity)| {
            let totals = window.totals[idx as usize];
            GraphEntity {
                id: entity.id.clone(),
                kind: entity.kind.as_str(),
                name: entity.name.clone(),
                service: entity
                    .service
                    .map(|service| table.get(service).name.clone()),
                rate: totals.count as f64 / seconds,
                error_rate: totals.errors as f64 / (totals.count.max(1)) as f64,
                p50_ms: totals.duration_p50 / 1e6,
                p99_ms: totals.duration_p99 / 1e6,
                assertions: analysis.assertions_by_entity.get(&idx).map_or(0, Vec::len),
            }
        })
        .collect();
    let relations = window
        .relations
        .iter()
        .map(|relation| {
            let totals = relation.edge.map(|edge| window.totals[edge as usize]);
            GraphRelation {
                kind: match relation.kind {
                    RelationKind::Calls => "CALLS",
                    RelationKind::HostedOn => "HOSTED_ON",
                    RelationKind::RunsOn => "RUNS_ON",
                    RelationKind::Produces => "PRODUCES",
                    RelationKind::Consumes => "CONSUMES",
                },
                from: table.get(relation.from).id.clone(),
                to: table.get(relation.to).id.clone(),
                rate: totals.map(|totals| totals.count as f64 / seconds),
                error_rate: totals
                    .map(|totals| totals.errors as f64 / (totals.count.max(1)) as f64),
                p50_ms: totals.map(|totals| totals.duration_p50 / 1e6),
                p99_ms: totals.map(|totals| totals.duration_p99 / 1e6),
            }
        })
        .collect();
    let deploys = window
        .versions
        .iter()
        .map(|seen| {
            let mut instances = seen.instances.clone();
            instances.sort();
            Deploy {
                service: table.get(seen.service).name.clone(),
                version: seen.version.clone(),
                first_seen: seen.first_seen_nanos.to_string(),
                instances,
            }
        })
        .collect();
    Graph {
        entities,
        relations,
        deploys,
    }
}
