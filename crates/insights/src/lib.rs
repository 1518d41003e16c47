//! Insights: from the spans of a time window, build an entity graph (services, operations,
//! instances, nodes, namespaces, databases, external peers, topics and the relations between
//! them), evaluate SAAFE assertions per entity (Saturation, Amend, Anomaly, Failure, Error) and
//! rank root causes with evidence. Everything here is a pure function of span records and a
//! window: no I/O, no clock, span timestamps only, so the same spans sent live or replayed give
//! the same answer. The method is described in `docs/design/insights.md`.
//!
//! Entry points: [`extract`] flattens OTLP into [`SpanRecord`]s, [`analyze`] aggregates them
//! into an [`Analysis`], whose [`Analysis::graph`], [`Analysis::assertions`] and
//! [`Analysis::rca`] produce the serialisable answers. [`Continuous`] keeps the same
//! aggregates per tenant as spans arrive, for evaluations every few seconds that do not
//! re-read the window.

mod assertions;
mod continuous;
mod deploy;
mod entity;
mod evidence;
mod extract;
mod fold;
mod graph;
mod rca;
mod rca_topology;
mod record;
mod resources;
mod seasonal;
mod stats;
mod structure;
mod window;

#[cfg(test)]
mod tests;

pub use assertions::{Assertion, AssertionType, Severity};
pub use continuous::{Continuous, FoldSize};
pub use evidence::Evidence;
pub use extract::{extract, extract_any, projection};
pub use graph::{Deploy, Graph, GraphEntity, GraphRelation};
pub use rca::{Cause, Rca};
pub use record::{SpanKind, SpanRecord};
pub use resources::{ResourceQuery, ResourceSeries, RESOURCE_QUERIES};
pub use seasonal::{DayAgo, DAY_AGO_QUERY, DAY_NANOS};

use std::collections::HashMap;

use entity::EntityIdx;

/// Errors of this crate. Analysis itself never fails; this is for callers that parse
/// entity ids before asking.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InsightsError {
    #[error("unknown entity `{0}`")]
    UnknownEntity(String),
}

/// The result of analysing one window: entities with their per-interval series, the
/// assertions found, and what the ranking needs. Cheap to query repeatedly.
pub struct Analysis {
    pub(crate) window: window::Window,
    pub(crate) assertions: Vec<Assertion>,
    /// Per entity, the indices into `assertions` about it.
    pub(crate) assertions_by_entity: HashMap<EntityIdx, Vec<usize>>,
    pub(crate) detections: Vec<assertions::Detection>,
    /// The onset of the incident whose baselines this analysis used (continuous insights),
    /// which may lie before the window.
    pub(crate) held_onset: Option<u64>,
}

/// Analyse the spans of the window `[start_nanos, end_nanos)`. Spans may come in any order
/// and from any number of traces; spans outside the window are clamped to its edges.
pub fn analyze(spans: Vec<SpanRecord>, start_nanos: u64, end_nanos: u64) -> Analysis {
    analyze_with(spans, start_nanos, end_nanos, &[])
}

/// [`analyze`], with the services' request rates of the day before (seasonality).
pub fn analyze_with(
    spans: Vec<SpanRecord>,
    start_nanos: u64,
    end_nanos: u64,
    day_ago: &[DayAgo],
) -> Analysis {
    let end_nanos = end_nanos.max(start_nanos.saturating_add(1));
    let mut window = window::Window::build(spans, start_nanos, end_nanos);
    window.seasonal = seasonal::factors(&window, day_ago);
    Analysis::of(window)
}

/// When per-interval series (resource metrics, the day before) are sampled for a window:
/// at the end of each interval, from `first` to `last` every `step` (Unix nanoseconds), with
/// rates over `range_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    pub first: u64,
    pub last: u64,
    pub step: u64,
    pub range_secs: u64,
}

impl Steps {
    pub(crate) fn of(start_nanos: u64, interval_nanos: u64, intervals: usize) -> Steps {
        Steps {
            first: start_nanos + interval_nanos,
            last: start_nanos + intervals as u64 * interval_nanos,
            step: interval_nanos,
            range_secs: resources::rate_range_secs(interval_nanos),
        }
    }
}

/// The [`Steps`] of the on-demand window `[start_nanos, end_nanos)`.
pub fn window_steps(start_nanos: u64, end_nanos: u64) -> Steps {
    let end_nanos = end_nanos.max(start_nanos.saturating_add(1));
    let (interval_nanos, intervals) = window::grid(start_nanos, end_nanos);
    Steps::of(start_nanos, interval_nanos, intervals)
}

impl Analysis {
    fn of(window: window::Window) -> Analysis {
        Analysis::holding(window, None)
    }

    /// The analysis of `window`, with the baselines of an ongoing incident when there is one.
    pub(crate) fn holding(window: window::Window, held: Option<&assertions::Held>) -> Analysis {
        let held = assertions::Held::in_use(&window, held);
        let (assertions, detections) = assertions::evaluate(&window, held);
        let mut assertions_by_entity: HashMap<EntityIdx, Vec<usize>> = HashMap::new();
        for (position, detection) in detections.iter().enumerate() {
            assertions_by_entity
                .entry(detection.entity)
                .or_default()
                .push(position);
        }
        Analysis {
            window,
            assertions,
            assertions_by_entity,
            detections,
            held_onset: held.map(|held| held.onset_nanos),
        }
    }

    /// Whether `name` (an entity id such as `service:checkout`, or a bare service name)
    /// names an entity seen in the window.
    pub fn has_entity(&self, name: &str) -> bool {
        self.resolve(name).is_ok()
    }

    /// The span-time range `[start, end)` in Unix nanoseconds that entities' normal behaviour
    /// is learned from, or `None` while the tenant's history in the window is too short for
    /// one (the first part of a window after a fresh start), when only deploys are asserted.
    pub fn baseline_nanos(&self) -> Option<(u64, u64)> {
        let window = &self.window;
        let range = window.baseline()?;
        Some((
            window.interval_start(range.start),
            window.interval_start(range.end),
        ))
    }

    /// When to sample resource metrics for [`Analysis::add_resources`].
    pub fn resource_steps(&self) -> Steps {
        let window = &self.window;
        Steps::of(window.start_nanos, window.interval_nanos, window.intervals)
    }

    /// Adds Saturation assertions from resource metrics of the window's instances and
    /// services (see `crate::resources` for how series are matched to entities).
    pub fn add_resources(&mut self, series: &[ResourceSeries]) {
        for detection in resources::detect(&self.window, series) {
            let assertion = assertions::to_assertion(&self.window, &detection, &self.detections);
            self.assertions_by_entity
                .entry(detection.entity)
                .or_default()
                .push(self.detections.len());
            self.detections.push(detection);
            self.assertions.push(assertion);
        }
    }

    /// The entity graph with RED figures and assertion counts.
    pub fn graph(&self) -> Graph {
        graph::build(self)
    }

    /// Assertions in the window, optionally only those about `entity` (for a service: also
    /// its operations, instances and the edges it takes part in).
    pub fn assertions(&self, entity: Option<&str>) -> Vec<Assertion> {
        let Some(entity) = entity else {
            return self.assertions.clone();
        };
        let Ok(selected) = self.resolve(entity) else {
            return Vec::new();
        };
        let table = &self.window.entities;
        self.detections
            .iter()
            .zip(&self.assertions)
            .filter(|(detection, _)| table.belongs_to(detection.entity, selected))
            .map(|(_, assertion)| assertion.clone())
            .collect()
    }

    /// Ranked root causes, optionally restricted to what `entity` depends on.
    pub fn rca(&self, entity: Option<&str>) -> Rca {
        let scope = entity.and_then(|name| self.resolve(name).ok());
        if entity.is_some() && scope.is_none() {
            return Rca::none();
        }
        let mut rca = rca::rank(self, scope);
        // An incident that began before the window began when it began.
        if let (true, Some(held), Some(onset)) = (rca.incident, self.held_onset, &rca.onset) {
            if onset.parse::<u64>().is_ok_and(|onset| held < onset) {
                rca.onset = Some(held.to_string());
            }
        }
        rca
    }

    /// Resolve an entity id, or a bare service name, to its index.
    pub(crate) fn resolve(&self, name: &str) -> Result<EntityIdx, InsightsError> {
        let table = &self.window.entities;
        if let Some(found) = table.lookup(name) {
            return Ok(found);
        }
        if let Some(found) = table.lookup(&format!("service:{name}")) {
            return Ok(found);
        }
        Err(InsightsError::UnknownEntity(name.to_string()))
    }
}
