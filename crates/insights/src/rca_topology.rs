//! The structure the ranking reasons over: who calls whom, which instances a service runs
//! and which node hosts them, and the adjustments that depend on it (explain-away,
//! specificity, deploy bonus, symptom scope).

use std::collections::{HashMap, HashSet};

use crate::assertions::Metric;
use crate::entity::{EntityIdx, EntityKind};
use crate::rca::Candidate;
use crate::window::RelationKind;
use crate::Analysis;

/// An instance holding at least this share of its service's change is the cause.
const SKEW_SHARE: f64 = 0.6;
const EXPLAINED_CAP: f64 = 0.9;

pub(crate) struct Topology {
    callees: HashMap<EntityIdx, Vec<EntityIdx>>,
    instances_of: HashMap<EntityIdx, Vec<EntityIdx>>,
    instances_on: HashMap<EntityIdx, Vec<EntityIdx>>,
}

impl Topology {
    pub(crate) fn of(analysis: &Analysis) -> Topology {
        let window = &analysis.window;
        let mut topology = Topology {
            callees: HashMap::new(),
            instances_of: HashMap::new(),
            instances_on: HashMap::new(),
        };
        for relation in &window.relations {
            match relation.kind {
                RelationKind::Calls => topology
                    .callees
                    .entry(relation.from)
                    .or_default()
                    .push(relation.to),
                RelationKind::RunsOn => topology
                    .instances_of
                    .entry(relation.from)
                    .or_default()
                    .push(relation.to),
                _ => {}
            }
        }
        for (&instance, &node) in &window.instance_node {
            topology
                .instances_on
                .entry(node)
                .or_default()
                .push(instance);
        }
        topology
    }

    /// Everything reachable from `service` along CALLS, without `service` itself.
    fn downstream(&self, service: EntityIdx) -> HashSet<EntityIdx> {
        let mut seen = HashSet::new();
        let mut stack = vec![service];
        while let Some(current) = stack.pop() {
            for &callee in self.callees.get(&current).into_iter().flatten() {
                if callee != service && seen.insert(callee) {
                    stack.push(callee);
                }
            }
        }
        seen
    }

    fn owning_service(analysis: &Analysis, entity: EntityIdx) -> Option<EntityIdx> {
        let info = analysis.window.entities.get(entity);
        match info.kind {
            EntityKind::Service => Some(entity),
            EntityKind::Operation | EntityKind::Instance => info.service,
            _ => None,
        }
    }

    fn has_detection(
        analysis: &Analysis,
        entity: EntityIdx,
        metrics: &[Metric],
        until: usize,
    ) -> bool {
        analysis.detections.iter().any(|detection| {
            detection.entity == entity
                && metrics.contains(&detection.metric)
                && detection.onset <= until
        })
    }

    pub(crate) fn explain_away(
        &self,
        analysis: &Analysis,
        candidates: &mut HashMap<EntityIdx, Candidate>,
    ) {
        let table = &analysis.window.entities;
        let snapshot: Vec<(EntityIdx, Candidate)> = candidates
            .iter()
            .map(|(entity, candidate)| (*entity, candidate.clone()))
            .collect();
        let mut transfers: Vec<(EntityIdx, f64, usize)> = Vec::new();
        for (entity, candidate) in &snapshot {
            let info = table.get(*entity);
            let (origin, downstream) = match info.kind {
                EntityKind::Edge => {
                    let Some(callee) = info.callee else { continue };
                    if table.get(callee).kind != EntityKind::Service {
                        continue;
                    }
                    let mut downstream = self.downstream(callee);
                    downstream.insert(callee);
                    (None, downstream)
                }
                _ => match Self::owning_service(analysis, *entity) {
                    Some(service) => (Some(service), self.downstream(service)),
                    None => continue,
                },
            };
            let until = candidate.onset + 1;
            let mut explained_latency = 0.0;
            let mut explained_errors = 0.0;
            for (other, other_candidate) in &snapshot {
                if other == entity || other_candidate.onset > until {
                    continue;
                }
                let other_info = table.get(*other);
                let is_downstream = match other_info.kind {
                    EntityKind::Service | EntityKind::Database | EntityKind::External => {
                        downstream.contains(other)
                    }
                    EntityKind::Edge => other_info.service.is_some_and(|caller| {
                        downstream.contains(&caller)
                            || (Some(caller) == origin && info.kind != EntityKind::Edge)
                    }),
                    _ => false,
                };
                if is_downstream {
                    explained_latency += other_candidate.latency_excess;
                    explained_errors += other_candidate.error_excess;
                }
            }
            let Some(current) = candidates.get_mut(entity) else {
                continue;
            };
            if candidate.latency_excess > 0.0 {
                current.latency_part *=
                    1.0 - (explained_latency / candidate.latency_excess).min(EXPLAINED_CAP);
            }
            if candidate.error_excess > 0.0 {
                current.error_part *=
                    1.0 - (explained_errors / candidate.error_excess).min(EXPLAINED_CAP);
            }
            if info.kind == EntityKind::Edge && candidate.error_excess > 0.0 {
                let Some(callee) = info.callee else { continue };
                // Timeouts of calls to a callee that got slower are the callee's.
                if Self::has_detection(
                    analysis,
                    callee,
                    &[Metric::Latency, Metric::SelfTime],
                    until,
                ) {
                    current.error_part *= 0.3;
                }
                // Unanswered calls to a callee that stopped serving are the callee's.
                if Self::has_detection(analysis, *entity, &[Metric::Missing], until)
                    && Self::has_detection(analysis, callee, &[Metric::RateDown], until)
                {
                    transfers.push((callee, current.error_part, candidate.onset));
                    current.error_part *= 0.5;
                }
            }
        }
        for (callee, error_part, onset) in transfers {
            let target = candidates.entry(callee).or_insert_with(|| Candidate {
                onset,
                ..Candidate::default()
            });
            target.error_part = target.error_part.max(error_part);
            target.onset = target.onset.min(onset);
        }
    }

    /// An instance that holds most of its service's change beats the service; a node with
    /// several such instances beats them; operations follow their service.
    pub(crate) fn prefer_specific(
        &self,
        analysis: &Analysis,
        candidates: &mut HashMap<EntityIdx, Candidate>,
    ) {
        let window = &analysis.window;
        let table = &window.entities;
        let active_instances = |service: EntityIdx| {
            self.instances_of
                .get(&service)
                .into_iter()
                .flatten()
                .filter(|&&instance| window.totals[instance as usize].count > 0)
                .count()
        };
        let mut affected_instances: HashMap<EntityIdx, f64> = HashMap::new();
        let entities: Vec<EntityIdx> = candidates.keys().copied().collect();
        for &entity in &entities {
            let info = table.get(entity);
            match info.kind {
                EntityKind::Operation => {
                    if let Some(candidate) = candidates.get_mut(&entity) {
                        candidate.score *= 0.5;
                    }
                }
                EntityKind::Instance => {
                    let Some(service) = info.service else {
                        continue;
                    };
                    let instance = candidates[&entity].clone();
                    let service_candidate = candidates.get(&service).cloned();
                    let deploy = self
                        .deploy_near(analysis, service, instance.onset)
                        .is_some();
                    let share = match &service_candidate {
                        None => 1.0,
                        Some(service_candidate) => {
                            let latency = instance.latency_excess
                                / service_candidate.latency_excess.max(1e-9);
                            let errors =
                                instance.error_excess / service_candidate.error_excess.max(1e-9);
                            if service_candidate.latency_part >= service_candidate.error_part {
                                latency.min(1.0)
                            } else {
                                errors.min(1.0)
                            }
                        }
                    };
                    let several = active_instances(service) >= 2;
                    if several && share >= SKEW_SHARE && !deploy {
                        let service_score = service_candidate.as_ref().map_or(0.0, |c| c.score);
                        let score = instance.score.max(service_score * share);
                        if let Some(candidate) = candidates.get_mut(&entity) {
                            candidate.score = score;
                        }
                        if let Some(candidate) = candidates.get_mut(&service) {
                            candidate.score *= (1.0 - share).max(0.3);
                        }
                        affected_instances.insert(entity, score);
                    } else {
                        if !several && service_candidate.is_some() {
                            let service_score = service_candidate.as_ref().map_or(0.0, |c| c.score);
                            affected_instances.insert(entity, service_score);
                        }
                        if let Some(candidate) = candidates.get_mut(&entity) {
                            candidate.score *= 0.5;
                        }
                    }
                }
                _ => {}
            }
        }
        for (&node, instances) in &self.instances_on {
            let active: Vec<EntityIdx> = instances
                .iter()
                .copied()
                .filter(|&instance| window.totals[instance as usize].count > 0)
                .collect();
            let affected: Vec<(EntityIdx, f64)> = active
                .iter()
                .filter_map(|instance| {
                    affected_instances
                        .get(instance)
                        .map(|score| (*instance, *score))
                })
                .collect();
            let node_wins = affected.len() >= 2 && affected.len() * 2 >= active.len();
            if node_wins {
                let score: f64 = affected
                    .iter()
                    .map(|(_, score)| score)
                    .sum::<f64>()
                    .min(1.0);
                let onset = affected
                    .iter()
                    .filter_map(|(instance, _)| candidates.get(instance).map(|c| c.onset))
                    .min()
                    .unwrap_or(0);
                let candidate = candidates.entry(node).or_insert_with(|| Candidate {
                    onset,
                    ..Candidate::default()
                });
                candidate.score = candidate.score.max(score);
                for (instance, _) in affected {
                    for affected_entity in [Some(instance), table.get(instance).service] {
                        if let Some(candidate) =
                            affected_entity.and_then(|e| candidates.get_mut(&e))
                        {
                            candidate.score *= 0.6;
                        }
                    }
                }
            } else if let Some(candidate) = candidates.get_mut(&node) {
                candidate.score *= 0.3;
            }
        }
    }

    /// A service deployed right before its change scores higher; a harmful deploy makes its
    /// service a candidate even when the change stayed under the interval thresholds.
    pub(crate) fn deploy_bonus(
        &self,
        analysis: &Analysis,
        candidates: &mut HashMap<EntityIdx, Candidate>,
    ) {
        for detection in &analysis.detections {
            if detection.metric != Metric::Deploy {
                continue;
            }
            let service = detection.entity;
            match candidates.get_mut(&service) {
                Some(candidate) => {
                    let near = detection.onset <= candidate.onset + 1
                        && detection.onset + 2 >= candidate.onset;
                    if near {
                        candidate.score *= if detection.harmful { 2.0 } else { 1.5 };
                        candidate.score =
                            candidate
                                .score
                                .max(if detection.harmful { 0.6 } else { 0.0 });
                    }
                }
                None if detection.harmful => {
                    candidates.insert(
                        service,
                        Candidate {
                            onset: detection.onset,
                            score: 0.5,
                            ..Candidate::default()
                        },
                    );
                }
                None => {}
            }
        }
    }

    /// The version deployed on the entity's service within two intervals before `onset`.
    pub(crate) fn deploy_near(
        &self,
        analysis: &Analysis,
        entity: EntityIdx,
        onset: usize,
    ) -> Option<String> {
        let service = Self::owning_service(analysis, entity)?;
        analysis
            .detections
            .iter()
            .find(|detection| {
                detection.metric == Metric::Deploy
                    && detection.entity == service
                    && detection.onset <= onset + 1
                    && detection.onset + 2 >= onset
            })
            .and_then(|detection| detection.version.clone())
    }

    /// Entities that can explain a symptom on `symptom`: its service, what that service
    /// depends on, their operations, instances, nodes and edges.
    pub(crate) fn scope_of(&self, analysis: &Analysis, symptom: EntityIdx) -> HashSet<EntityIdx> {
        let table = &analysis.window.entities;
        let info = table.get(symptom);
        let service = match info.kind {
            EntityKind::Edge => info.service,
            _ => Self::owning_service(analysis, symptom),
        };
        let mut allowed = HashSet::from([symptom]);
        let Some(service) = service else {
            return allowed;
        };
        let mut services = self.downstream(service);
        services.insert(service);
        for (idx, entity) in table.iter() {
            let included = match entity.kind {
                EntityKind::Service | EntityKind::Database | EntityKind::External => {
                    services.contains(&idx)
                }
                EntityKind::Operation | EntityKind::Instance | EntityKind::Edge => entity
                    .service
                    .is_some_and(|owner| services.contains(&owner)),
                EntityKind::Node => {
                    self.instances_on
                        .get(&idx)
                        .into_iter()
                        .flatten()
                        .any(|instance| {
                            table
                                .get(*instance)
                                .service
                                .is_some_and(|owner| services.contains(&owner))
                        })
                }
                _ => false,
            };
            if included {
                allowed.insert(idx);
            }
        }
        allowed
    }

    /// The service most involved with a node or external entity.
    pub(crate) fn main_service(&self, analysis: &Analysis, entity: EntityIdx) -> Option<String> {
        let window = &analysis.window;
        let table = &window.entities;
        let best = match table.get(entity).kind {
            EntityKind::Node => self
                .instances_on
                .get(&entity)
                .into_iter()
                .flatten()
                .max_by_key(|instance| window.totals[**instance as usize].count)
                .and_then(|instance| table.get(*instance).service),
            _ => table
                .iter()
                .filter(|(_, edge)| edge.kind == EntityKind::Edge && edge.callee == Some(entity))
                .max_by_key(|(idx, _)| window.totals[*idx as usize].count)
                .and_then(|(_, edge)| edge.service),
        }?;
        Some(table.get(best).name.clone())
    }
}
