//! Root-cause ranking.
//!
//! Candidates are the entities whose *own* behaviour changed: self time (services,
//! operations, instances, nodes), edge delay and unanswered calls (edges between services),
//! client latency and failures (databases, external peers), error origins (all of them).
//! Each candidate's base score is its share of the window's added latency or added error
//! origins (whichever is larger), weighted by how strong its change is. Then:
//! - explain-away along CALLS: a candidate whose downstream dependencies changed as early is
//!   discounted by the share they explain; an edge's timeouts are explained by a slower callee,
//!   its unanswered calls by a callee that stopped serving (which then takes the blame);
//! - specificity: an instance that holds most of its service's change (with peers that are
//!   fine) outranks the service; a node outranks the instances it hosts when several of them
//!   are affected; operations stay behind their service;
//! - earliness (later onsets lose up to half) and a deploy bonus (a new version within two
//!   intervals before the onset);
//! - no incident when nothing passes, or when the change is a global, proportional traffic
//!   spike (most services busier, latency up less than the load).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::assertions::{Assertion, Detection, Metric};
use crate::entity::{EntityIdx, EntityKind};
use crate::evidence::{self, Evidence};
use crate::{resources, Analysis};

const MIN_SCORE: f64 = 0.15;
const MAX_CAUSES: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rca {
    pub incident: bool,
    /// Unix nanoseconds, as a string.
    pub onset: Option<String>,
    pub causes: Vec<Cause>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    /// `service`, `operation`, `instance`, `node`, `external` (also databases) or `edge`.
    pub kind: &'static str,
    pub name: String,
    pub service: String,
    pub score: f64,
    pub summary: String,
    pub assertions: Vec<Assertion>,
    pub evidence: Evidence,
    /// The entity id, as in the graph.
    pub entity: String,
}

impl Rca {
    pub fn none() -> Rca {
        Rca {
            incident: false,
            onset: None,
            causes: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Candidate {
    pub latency_excess: f64,
    pub latency_strength: f64,
    pub error_excess: f64,
    pub error_strength: f64,
    pub onset: usize,
    pub latency_onset: Option<usize>,
    pub error_onset: Option<usize>,
    /// Latency and error parts of the score.
    pub latency_part: f64,
    pub error_part: f64,
    pub score: f64,
    /// The detection the summary and evidence come from.
    pub main: Option<usize>,
}

pub(crate) fn rank(analysis: &Analysis, scope: Option<EntityIdx>) -> Rca {
    let window = &analysis.window;
    let table = &window.entities;
    let detections = &analysis.detections;

    let mut candidates: HashMap<EntityIdx, Candidate> = HashMap::new();
    for detection in detections {
        let kind = table.get(detection.entity).kind;
        let is_candidate_kind = matches!(
            kind,
            EntityKind::Service
                | EntityKind::Operation
                | EntityKind::Instance
                | EntityKind::Node
                | EntityKind::Edge
                | EntityKind::Database
                | EntityKind::External
        );
        if !is_candidate_kind || detection.excess <= 0.0 {
            continue;
        }
        let candidate = match detection.metric {
            Metric::SelfTime | Metric::ErrorOrigins | Metric::Missing => candidates
                .entry(detection.entity)
                .or_insert_with(|| Candidate {
                    onset: detection.onset,
                    ..Candidate::default()
                }),
            _ => continue,
        };
        candidate.onset = candidate.onset.min(detection.onset);
        let onset = if detection.metric == Metric::SelfTime {
            &mut candidate.latency_onset
        } else {
            &mut candidate.error_onset
        };
        *onset = Some(onset.map_or(detection.onset, |known| known.min(detection.onset)));
        if detection.metric == Metric::SelfTime {
            candidate.latency_excess += detection.excess;
            candidate.latency_strength = latency_strength(detection);
        } else {
            candidate.error_excess += detection.excess;
            candidate.error_strength = candidate
                .error_strength
                .max(((detection.observed - detection.expected) / 0.1).clamp(0.3, 1.0));
        }
    }

    let spike_ratio = traffic_spike(analysis);
    if let Some(load_ratio) = spike_ratio {
        for (entity, candidate) in candidates.iter_mut() {
            let proportional = detections.iter().any(|detection| {
                detection.entity == *entity
                    && detection.metric == Metric::SelfTime
                    && detection.observed < detection.expected * load_ratio
            });
            if proportional {
                candidate.latency_excess = 0.0;
            }
        }
    }

    // Shares of the window's added latency and errors, over entities that partition them.
    let is_partition = |entity: EntityIdx| {
        matches!(
            table.get(entity).kind,
            EntityKind::Service | EntityKind::Edge | EntityKind::Database | EntityKind::External
        )
    };
    // A change diluted below its service's thresholds (one slow instance of many) still
    // counts in full.
    let total = |excess: fn(&Candidate) -> f64| {
        let partition: f64 = candidates
            .iter()
            .filter(|(entity, _)| is_partition(**entity))
            .map(|(_, candidate)| excess(candidate))
            .sum();
        candidates.values().map(excess).fold(partition, f64::max)
    };
    let latency_total = total(|candidate| candidate.latency_excess);
    let error_total = total(|candidate| candidate.error_excess);
    for candidate in candidates.values_mut() {
        if latency_total > 0.0 {
            candidate.latency_part =
                (candidate.latency_excess / latency_total).min(1.0) * candidate.latency_strength;
        }
        if error_total > 0.0 {
            candidate.error_part =
                (candidate.error_excess / error_total).min(1.0) * candidate.error_strength;
        }
    }

    let topology = crate::rca_topology::Topology::of(analysis);
    topology.explain_away(analysis, &mut candidates);
    for candidate in candidates.values_mut() {
        candidate.score = candidate.latency_part.max(candidate.error_part);
        // The onset is that of the change that makes the score.
        let dominant = if candidate.latency_part >= candidate.error_part {
            candidate.latency_onset
        } else {
            candidate.error_onset
        };
        candidate.onset = dominant.unwrap_or(candidate.onset);
    }
    topology.prefer_specific(analysis, &mut candidates);
    topology.deploy_bonus(analysis, &mut candidates);
    // A change that starts with its own resources saturating is more likely where it began.
    for (&entity, candidate) in candidates.iter_mut() {
        if resources::saturated_near(window, detections, entity, candidate.onset).is_some() {
            candidate.score *= 1.3;
        }
    }

    let strongest = candidates
        .values()
        .map(|candidate| candidate.score)
        .fold(0.0, f64::max);
    if let Some(earliest) = candidates
        .values()
        .filter(|candidate| candidate.score >= 0.3 * strongest)
        .map(|candidate| candidate.onset)
        .min()
    {
        for candidate in candidates.values_mut() {
            let later = candidate.onset.saturating_sub(earliest) as i32;
            candidate.score *= 0.9_f64.powi(later).max(0.5);
        }
    }

    let allowed: Option<HashSet<EntityIdx>> =
        scope.map(|symptom| topology.scope_of(analysis, symptom));
    let mut ranked: Vec<(EntityIdx, Candidate)> = candidates
        .into_iter()
        .filter(|(entity, candidate)| {
            candidate.score >= MIN_SCORE
                && allowed
                    .as_ref()
                    .is_none_or(|allowed| allowed.contains(entity))
        })
        .collect();
    ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
    ranked.truncate(MAX_CAUSES);
    if ranked.is_empty() {
        return Rca::none();
    }
    let top_score = ranked[0].1.score.max(1.0);
    let onset = window.interval_start(ranked[0].1.onset).to_string();
    let causes = ranked
        .into_iter()
        .map(|(entity, mut candidate)| {
            let latency_first = candidate.latency_part >= candidate.error_part;
            candidate.main = main_detection(detections, entity, latency_first);
            cause(analysis, &topology, entity, &candidate, top_score)
        })
        .collect();
    Rca {
        incident: true,
        onset: Some(onset),
        causes,
    }
}

fn latency_strength(detection: &Detection) -> f64 {
    if detection.expected <= 0.0 {
        return 1.0;
    }
    (detection.observed / detection.expected - 1.0).clamp(0.3, 1.0)
}

/// The load ratio when most services got busier at once, else `None`.
fn traffic_spike(analysis: &Analysis) -> Option<f64> {
    let window = &analysis.window;
    let table = &window.entities;
    let active_services = table
        .iter()
        .filter(|(idx, entity)| {
            entity.kind == EntityKind::Service && window.totals[*idx as usize].count > 0
        })
        .count();
    let mut ratios: Vec<f64> = analysis
        .detections
        .iter()
        .filter(|detection| {
            detection.metric == Metric::RateUp
                && table.get(detection.entity).kind == EntityKind::Service
        })
        .map(|detection| detection.observed / detection.expected.max(1.0))
        .collect();
    if ratios.len() < 2 || (ratios.len() as f64) < 0.5 * active_services as f64 {
        return None;
    }
    Some(crate::stats::median(&mut ratios))
}

/// The detection that best describes a candidate: its strongest own-behaviour change.
fn main_detection(
    detections: &[Detection],
    entity: EntityIdx,
    latency_first: bool,
) -> Option<usize> {
    let rank = |metric: Metric| match metric {
        Metric::ErrorOrigins | Metric::Missing => 2 + u8::from(!latency_first),
        Metric::SelfTime => 2 + u8::from(latency_first),
        Metric::Deploy => 1,
        _ => 0,
    };
    detections
        .iter()
        .enumerate()
        .filter(|(_, detection)| detection.entity == entity)
        .max_by(|a, b| {
            rank(a.1.metric)
                .cmp(&rank(b.1.metric))
                .then(a.1.excess.total_cmp(&b.1.excess))
        })
        .map(|(position, _)| position)
}

fn cause(
    analysis: &Analysis,
    topology: &crate::rca_topology::Topology,
    entity: EntityIdx,
    candidate: &Candidate,
    top_score: f64,
) -> Cause {
    let window = &analysis.window;
    let table = &window.entities;
    let info = table.get(entity);
    let kind = match info.kind {
        EntityKind::Service => "service",
        EntityKind::Operation => "operation",
        EntityKind::Instance => "instance",
        EntityKind::Node => "node",
        EntityKind::Edge => "edge",
        _ => "external",
    };
    let service = match info.kind {
        EntityKind::Service => info.name.clone(),
        EntityKind::Operation | EntityKind::Instance | EntityKind::Edge => {
            table.service_name(entity).unwrap_or_default().to_string()
        }
        _ => topology.main_service(analysis, entity).unwrap_or_default(),
    };
    let mut assertions: Vec<Assertion> = analysis
        .assertions_by_entity
        .get(&entity)
        .into_iter()
        .flatten()
        .map(|&position| analysis.assertions[position].clone())
        .collect();
    let saturated =
        resources::saturated_near(window, &analysis.detections, entity, candidate.onset);
    if let Some(position) =
        saturated.filter(|&position| analysis.detections[position].entity != entity)
    {
        assertions.push(analysis.assertions[position].clone());
    }
    assertions.sort_by_key(|assertion| std::cmp::Reverse(assertion.severity));
    let saturation = saturated
        .map(|position| {
            let detection = &analysis.detections[position];
            format!(
                ", while {} {} rose",
                table.get(detection.entity).name,
                detection.label.unwrap_or("resource use")
            )
        })
        .unwrap_or_default();
    let (summary, evidence) = match candidate.main {
        Some(position) => {
            let detection = &analysis.detections[position];
            let assertion = &analysis.assertions[position];
            let share = candidate.latency_part.max(candidate.error_part);
            let deploy = topology
                .deploy_near(analysis, entity, candidate.onset)
                .map(|version| format!(", right after version {version} was deployed"))
                .unwrap_or_default();
            (
                format!(
                    "{}{} (accounts for {:.0}% of the change){deploy}{saturation}",
                    capitalised(&assertion.summary),
                    if detection.metric == Metric::Missing {
                        ": calls got no answer"
                    } else {
                        ""
                    },
                    (share * 100.0).min(100.0)
                ),
                evidence::for_detection(window, detection),
            )
        }
        None => (
            format!("{} {} changed", kind, info.name),
            Evidence::default(),
        ),
    };
    Cause {
        kind,
        name: info.name.clone(),
        service,
        score: (candidate.score / top_score).clamp(0.0, 1.0),
        summary,
        assertions,
        evidence,
        entity: info.id.clone(),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
