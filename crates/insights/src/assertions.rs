//! SAAFE assertions: per entity and metric, recent intervals against the entity's own
//! baseline (the first third of the window's history, [`Window::baseline`]), with robust
//! statistics. Intervals before the tenant's history are unknown, and while the history is
//! shorter than a baseline only deploys are asserted.
//!
//! An interval is anomalous when its value departs from the baseline median by a relative
//! floor (latency ×1.5, rates ×2 or ½, error ratios ×2), by 4 scaled MADs, and by an absolute
//! floor (1 ms of latency, an error ratio of 5 %). An assertion needs anomalous intervals in a
//! row covering 30 s and at least two ([`Window::min_run`]); its onset is the first of them.
//! Error assertions need 5 errors.

use std::collections::HashMap;
use std::ops::Range;

use serde::Serialize;

use crate::entity::{EntityIdx, EntityKind};
use crate::evidence::{self, Evidence};
use crate::stats::median_mad;
use crate::window::{Cell, Window};

/// Fewer requests than this in an interval make it unknown rather than normal or anomalous.
const MIN_INTERVAL_COUNT: u32 = 3;
/// Fewer requests than this make an interval's p99 unknown: below it the p99 is the slowest
/// request or next to it, a blip rather than a tail.
const MIN_P99_COUNT: u32 = 50;
const MAD_FACTOR: f64 = 4.0 * 1.4826;
const LATENCY_RELATIVE: f64 = 1.5;
const LATENCY_ABSOLUTE_NANOS: f64 = 1e6;
const ERROR_RELATIVE: f64 = 2.0;
const ERROR_RATIO_FLOOR: f64 = 0.05;
const ERROR_MIN_COUNT: f64 = 5.0;
const RATE_RELATIVE: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AssertionType {
    Error,
    Anomaly,
    Failure,
    Amend,
    Saturation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// One assertion about one entity, serialised for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assertion {
    pub entity: String,
    #[serde(rename = "type")]
    pub kind: AssertionType,
    pub severity: Severity,
    /// Unix nanoseconds, as a string.
    pub start: String,
    pub end: String,
    pub metric: String,
    pub observed: f64,
    pub expected: f64,
    pub summary: String,
    pub evidence: Evidence,
}

/// What the analysis measured, per entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Metric {
    /// Mean self time per request (services, operations, instances, nodes), per client span
    /// (databases, externals) or edge delay (edges).
    SelfTime,
    /// Median request duration: a symptom, never a cause by itself.
    Latency,
    /// 99th percentile of request duration: a symptom, never a cause by itself.
    LatencyP99,
    /// Share of requests (or client spans) whose own spans originated an error.
    ErrorOrigins,
    /// Share of requests in error, propagated or not: a symptom.
    Errors,
    /// Share of client spans to a known service that got no server span.
    Missing,
    RateUp,
    RateDown,
    Deploy,
    /// A resource metric of an instance or service (`crate::resources`).
    Resource,
}

impl Metric {
    fn name(self, kind: EntityKind) -> &'static str {
        match (self, kind) {
            (Metric::SelfTime, EntityKind::Edge) => "edge_delay_ms",
            (Metric::SelfTime, EntityKind::Database | EntityKind::External) => "client_latency_ms",
            (Metric::SelfTime, _) => "self_time_ms",
            (Metric::Latency, _) => "latency_p50_ms",
            (Metric::LatencyP99, _) => "latency_p99_ms",
            (Metric::ErrorOrigins, _) => "error_origin_ratio",
            (Metric::Errors, _) => "error_ratio",
            (Metric::Missing, _) => "missing_server_ratio",
            (Metric::RateUp | Metric::RateDown, _) => "request_rate",
            (Metric::Deploy, _) => "deploy",
            (Metric::Resource, _) => "resource",
        }
    }

    fn is_ratio(self) -> bool {
        matches!(
            self,
            Metric::ErrorOrigins | Metric::Errors | Metric::Missing
        )
    }

    fn is_latency(self) -> bool {
        matches!(
            self,
            Metric::SelfTime | Metric::Latency | Metric::LatencyP99
        )
    }
}

/// A detected change, in analysis units (nanoseconds, ratios, counts per interval).
#[derive(Debug, Clone)]
pub(crate) struct Detection {
    pub entity: EntityIdx,
    pub metric: Metric,
    pub onset: usize,
    pub last: usize,
    pub observed: f64,
    pub expected: f64,
    /// Extra nanoseconds (latency metrics) or extra errors (ratio metrics) over the run.
    pub excess: f64,
    /// For deploys: the version, and whether behaviour changed after it.
    pub version: Option<String>,
    pub harmful: bool,
    /// The metric name when it is not the default one (deploys, resources).
    pub label: Option<&'static str>,
    /// The PromQL that shows the change (resource metrics).
    pub promql: Option<String>,
}

#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

/// Baselines kept from the evaluation that first saw an incident, for as long as it lasts
/// (continuous insights): once the window's own baseline has moved past the onset it would
/// learn the incident as normal, and an outage longer than two thirds of the window would
/// vanish from the answer while it goes on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    pub onset_nanos: u64,
    /// Per entity id: the baseline of each metric it had one for.
    pub baselines: HashMap<String, Vec<(Metric, Baseline)>>,
}

impl Held {
    fn get(&self, window: &Window, entity: EntityIdx, metric: Metric) -> Option<Baseline> {
        let id = &window.entities.get(entity).id;
        self.baselines
            .get(id)?
            .iter()
            .find(|(held, _)| *held == metric)
            .map(|(_, baseline)| *baseline)
    }

    /// `held`, if `window`'s own baseline reaches past its onset (before that, the window's
    /// own baseline is still the time before the incident, and answers as on demand).
    pub(crate) fn in_use<'a>(window: &Window, held: Option<&'a Held>) -> Option<&'a Held> {
        let end = window.baseline().map_or(0, |range| range.end);
        held.filter(|held| window.interval_start(end) > held.onset_nanos)
    }

    /// The baselines of every entity of `window`, as its evaluation learned them.
    pub(crate) fn of(window: &Window, onset_nanos: u64) -> Held {
        let range = window.baseline().unwrap_or(0..0);
        let mut baselines = HashMap::new();
        for (entity, info) in window.entities.iter().filter(|_| !range.is_empty()) {
            let cells = window.cells_of(entity);
            let learned: Vec<(Metric, Baseline)> = metrics_of(window, info.kind, info.callee)
                .iter()
                .filter_map(|&metric| {
                    let seasonal = window.seasonal.get(&entity).map(Vec::as_slice);
                    Some((metric, baseline(cells, &range, metric, seasonal)?))
                })
                .collect();
            if !learned.is_empty() {
                baselines.insert(info.id.clone(), learned);
            }
        }
        Held {
            onset_nanos,
            baselines,
        }
    }
}

/// What is measured of an entity of `kind` (edges: `callee`).
fn metrics_of(window: &Window, kind: EntityKind, callee: Option<EntityIdx>) -> &'static [Metric] {
    match kind {
        EntityKind::Service => &[
            Metric::SelfTime,
            Metric::ErrorOrigins,
            Metric::Errors,
            Metric::Latency,
            Metric::LatencyP99,
            Metric::RateUp,
            Metric::RateDown,
        ],
        EntityKind::Operation | EntityKind::Node => &[Metric::SelfTime, Metric::ErrorOrigins],
        EntityKind::Instance => &[Metric::SelfTime, Metric::ErrorOrigins, Metric::RateDown],
        EntityKind::Database | EntityKind::External => &[Metric::SelfTime, Metric::ErrorOrigins],
        EntityKind::Edge => {
            let to_service = callee
                .is_some_and(|callee| window.entities.get(callee).kind == EntityKind::Service);
            if to_service {
                &[Metric::SelfTime, Metric::ErrorOrigins, Metric::Missing]
            } else {
                &[]
            }
        }
        EntityKind::Namespace | EntityKind::Topic => &[],
    }
}

/// Evaluate every entity; assertions and detections are parallel vectors. `held` baselines
/// (already checked with [`Held::in_use`]) replace the window's own where they have one.
pub(crate) fn evaluate(window: &Window, held: Option<&Held>) -> (Vec<Assertion>, Vec<Detection>) {
    // No baseline yet (a fresh start): only deploys, which compare versions, not history.
    let baseline = window.baseline().unwrap_or(0..0);
    let mut detections = Vec::new();
    for (entity, info) in window.entities.iter().filter(|_| !baseline.is_empty()) {
        for &metric in metrics_of(window, info.kind, info.callee) {
            let learned = held.and_then(|held| held.get(window, entity, metric));
            if let Some(detection) = detect(window, &baseline, learned, entity, metric) {
                detections.push(detection);
            }
        }
    }
    detections.extend(crate::deploy::deploys(window, &detections));
    let assertions = detections
        .iter()
        .map(|detection| to_assertion(window, detection, &detections))
        .collect();
    (assertions, detections)
}

/// The value of interval `interval`, a request count divided by its seasonal factor.
fn adjusted(
    cells: &[Cell],
    interval: usize,
    metric: Metric,
    seasonal: Option<&[f64]>,
) -> Option<f64> {
    let value = value_of(&cells[interval], metric)?;
    match (metric, seasonal) {
        (Metric::RateUp | Metric::RateDown, Some(factors)) => Some(value / factors[interval]),
        _ => Some(value),
    }
}

fn value_of(cell: &Cell, metric: Metric) -> Option<f64> {
    match metric {
        Metric::RateUp | Metric::RateDown => Some(f64::from(cell.count)),
        _ if cell.count < MIN_INTERVAL_COUNT => None,
        Metric::SelfTime => Some(cell.self_mean),
        Metric::Latency => Some(cell.duration_p50),
        Metric::LatencyP99 if cell.count < MIN_P99_COUNT => None,
        Metric::LatencyP99 => Some(cell.duration_p99),
        Metric::ErrorOrigins => Some(f64::from(cell.origins) / f64::from(cell.count)),
        Metric::Errors => Some(f64::from(cell.errors) / f64::from(cell.count)),
        Metric::Missing => Some(f64::from(cell.missing) / f64::from(cell.count)),
        Metric::Deploy | Metric::Resource => None,
    }
}

/// The baseline of one metric: its center and MAD, and for ratios the highest ratio the
/// baseline makes plausible (its pooled ratio plus two standard errors), which the
/// significance test uses so that a quiet baseline with few chance errors does not make
/// every later error look significant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Baseline {
    center: f64,
    mad: f64,
    plausible: f64,
}

/// The baseline of `cells` over the intervals `range`, if at least 3 of them have a value.
/// Request counts are divided by `seasonal` factors when given (`crate::seasonal`).
fn baseline(
    cells: &[Cell],
    range: &Range<usize>,
    metric: Metric,
    seasonal: Option<&[f64]>,
) -> Option<Baseline> {
    let baseline_cells = &cells[range.clone()];
    let values: Vec<f64> = range
        .clone()
        .filter_map(|interval| adjusted(cells, interval, metric, seasonal))
        .collect();
    if values.len() < 3.min(baseline_cells.len()) {
        return None;
    }
    let (median, mad) = median_mad(&values);
    if !metric.is_ratio() {
        return Some(Baseline {
            center: median,
            mad,
            plausible: median,
        });
    }
    // Rare events: most intervals have none, so the median says 0; pool them instead.
    let (events, count) = baseline_cells
        .iter()
        .filter_map(|cell| {
            Some((
                value_of(cell, metric)? * f64::from(cell.count),
                f64::from(cell.count),
            ))
        })
        .fold((0.0, 0.0), |(events, count), (e, c)| {
            (events + e, count + c)
        });
    // Counts of rare events are judged by the binomial test, not by the spread of ratios.
    Some(Baseline {
        center: events / count.max(1.0),
        mad: 0.0,
        plausible: plausible_ratio(events, count),
    })
}

/// The highest ratio that `events` out of `count` make plausible: the pooled ratio plus two
/// standard errors and one event, so that a short or quiet baseline is not taken as exact.
pub(crate) fn plausible_ratio(events: f64, count: f64) -> f64 {
    let count = count.max(1.0);
    let pooled = events / count;
    pooled + 2.0 * (pooled * (1.0 - pooled) / count).sqrt() + 1.0 / count
}

fn detect(
    window: &Window,
    range: &Range<usize>,
    learned: Option<Baseline>,
    entity: EntityIdx,
    metric: Metric,
) -> Option<Detection> {
    let cells = window.cells_of(entity);
    let info = window.entities.get(entity);
    let is_ratio = metric.is_ratio();
    let seasonal = window.seasonal.get(&entity).map(Vec::as_slice);
    let own_baseline = learned.or_else(|| baseline(cells, range, metric, seasonal));
    let Baseline {
        center: expected,
        mad,
        plausible,
    } = match own_baseline {
        Some(found) => found,
        // A new instance is compared with its service; a new entity's ratios with zero.
        None if info.kind == EntityKind::Instance => {
            let service = info.service?;
            baseline(window.cells_of(service), range, metric, None)?
        }
        None if is_ratio => Baseline {
            center: 0.0,
            mad: 0.0,
            plausible: 0.0,
        },
        None => return None,
    };
    let (direction, relative, absolute) = match metric {
        Metric::SelfTime | Metric::Latency | Metric::LatencyP99 => {
            (Direction::Up, LATENCY_RELATIVE, LATENCY_ABSOLUTE_NANOS)
        }
        Metric::ErrorOrigins | Metric::Errors | Metric::Missing => {
            (Direction::Up, ERROR_RELATIVE, ERROR_RATIO_FLOOR)
        }
        Metric::RateUp => (Direction::Up, RATE_RELATIVE, 3.0),
        Metric::RateDown => (Direction::Down, RATE_RELATIVE, 3.0),
        Metric::Deploy | Metric::Resource => return None,
    };
    let anomalous = |value: f64, count: u32| match direction {
        Direction::Up => {
            value >= expected * relative
                && value - expected >= MAD_FACTOR * mad
                && value - expected >= absolute
                && (!is_ratio || significant_ratio(value, plausible, f64::from(count)))
        }
        Direction::Down => {
            value <= expected / relative
                && expected - value >= MAD_FACTOR * mad
                && expected - value >= absolute
        }
    };
    let flags: Vec<Option<bool>> = cells
        .iter()
        .enumerate()
        .map(|(interval, cell)| {
            let known = interval >= range.start;
            adjusted(cells, interval, metric, seasonal)
                .filter(|_| known)
                .map(|value| anomalous(value, cell.count))
        })
        .collect();
    let (onset, last) = find_run(&flags, window.min_run())?;

    let mut count = 0.0;
    let mut weighted = 0.0;
    let mut events = 0.0;
    // What a seasonal baseline expects over the run, in requests per interval.
    let mut seasonal_expected = 0.0;
    for (interval, cell) in cells.iter().enumerate().take(last + 1).skip(onset) {
        let Some(value) = value_of(cell, metric) else {
            continue;
        };
        match metric {
            Metric::RateUp | Metric::RateDown => {
                count += 1.0;
                weighted += value;
                seasonal_expected += expected * seasonal.map_or(1.0, |factors| factors[interval]);
            }
            _ => {
                count += f64::from(cell.count);
                weighted += value * f64::from(cell.count);
                events += value * f64::from(cell.count);
            }
        }
    }
    if count == 0.0 {
        return None;
    }
    let observed = weighted / count;
    let expected = match metric {
        Metric::RateUp | Metric::RateDown => seasonal_expected / count,
        _ => expected,
    };
    let excess = match metric {
        Metric::RateUp | Metric::RateDown => observed - expected,
        _ if is_ratio => events - expected * count,
        _ => (observed - expected) * count,
    };
    if is_ratio && events < ERROR_MIN_COUNT {
        return None;
    }
    Some(Detection {
        entity,
        metric,
        onset,
        last,
        observed,
        expected,
        excess,
        version: None,
        harmful: true,
        label: None,
        promql: None,
    })
}

/// Whether `observed` errors out of `count` are too many for a binomial with the expected
/// ratio (z ≥ 3, the expected ratio taken as at least 1 %), so that a few chance errors in a
/// quiet interval do not count.
pub(crate) fn significant_ratio(observed: f64, expected: f64, count: f64) -> bool {
    let probability = expected.clamp(0.01, 0.99);
    let deviation = (count * probability * (1.0 - probability)).sqrt();
    (observed - probability) * count >= 3.0 * deviation
}

/// The first run of anomalous intervals: it starts with `min_run` anomalous intervals in a
/// row (unknown intervals are skipped) and ends before two normal ones in a row.
pub(crate) fn find_run(flags: &[Option<bool>], min_run: usize) -> Option<(usize, usize)> {
    let known: Vec<(usize, bool)> = flags
        .iter()
        .enumerate()
        .filter_map(|(index, flag)| flag.map(|flag| (index, flag)))
        .collect();
    let start = known
        .windows(min_run.max(1))
        .position(|run| run.iter().all(|&(_, anomalous)| anomalous))?;
    let onset = known[start].0;
    let mut last = onset;
    let mut normal_in_a_row = 0;
    for &(index, flag) in &known[start..] {
        if flag {
            last = index;
            normal_in_a_row = 0;
        } else {
            normal_in_a_row += 1;
            if normal_in_a_row >= 2 {
                break;
            }
        }
    }
    Some((onset, last))
}

pub(crate) fn to_assertion(window: &Window, detection: &Detection, all: &[Detection]) -> Assertion {
    let info = window.entities.get(detection.entity);
    let kind = assertion_type(info.kind, detection.metric);
    let scale = if detection.metric.is_latency() {
        1e-6
    } else {
        1.0
    };
    let (observed, expected) = match detection.metric {
        Metric::RateUp | Metric::RateDown => {
            let per_second = 1e9 / window.interval_nanos as f64;
            (
                detection.observed * per_second,
                detection.expected * per_second,
            )
        }
        _ => (detection.observed * scale, detection.expected * scale),
    };
    let severity = severity(detection, all);
    let metric = detection
        .label
        .unwrap_or_else(|| detection.metric.name(info.kind));
    let summary = match detection.metric {
        Metric::Deploy => format!(
            "{} deployed version {}{}",
            info.name,
            detection.version.as_deref().unwrap_or("?"),
            if detection.harmful {
                format!("; {metric} after it {observed:.3} vs {expected:.3} before")
            } else {
                String::new()
            }
        ),
        _ => format!(
            "{} {} {} rose to {observed:.3} from {expected:.3}",
            info.kind.as_str(),
            info.name,
            metric
        )
        .replace(
            "rose",
            if detection.metric == Metric::RateDown {
                "fell"
            } else {
                "rose"
            },
        ),
    };
    Assertion {
        entity: info.id.clone(),
        kind,
        severity,
        start: window.interval_start(detection.onset).to_string(),
        end: window.interval_end(detection.last).to_string(),
        metric: metric.to_string(),
        observed,
        expected,
        summary,
        evidence: evidence::for_detection(window, detection),
    }
}

fn assertion_type(kind: EntityKind, metric: Metric) -> AssertionType {
    match (kind, metric) {
        (_, Metric::Deploy) => AssertionType::Amend,
        (_, Metric::Resource) => AssertionType::Saturation,
        (_, Metric::Missing) => AssertionType::Failure,
        (EntityKind::Instance, Metric::RateDown) => AssertionType::Failure,
        (EntityKind::Database | EntityKind::External, Metric::ErrorOrigins) => {
            AssertionType::Failure
        }
        (_, Metric::ErrorOrigins | Metric::Errors) => AssertionType::Error,
        (EntityKind::Instance | EntityKind::Node, Metric::SelfTime) => AssertionType::Saturation,
        _ => AssertionType::Anomaly,
    }
}

fn severity(detection: &Detection, all: &[Detection]) -> Severity {
    match detection.metric {
        Metric::Deploy => {
            let followed_by_change = all.iter().any(|other| {
                other.entity == detection.entity
                    && other.metric != Metric::Deploy
                    && other.onset + 1 >= detection.onset
            });
            if detection.harmful || followed_by_change {
                Severity::Warning
            } else {
                Severity::Info
            }
        }
        Metric::RateUp => Severity::Info,
        Metric::RateDown if detection.observed < 0.5 => Severity::Warning,
        Metric::RateDown => Severity::Info,
        Metric::ErrorOrigins | Metric::Missing if detection.observed >= 0.2 => Severity::Critical,
        Metric::SelfTime | Metric::Latency | Metric::LatencyP99 | Metric::Resource
            if detection.observed >= 2.0 * detection.expected =>
        {
            Severity::Critical
        }
        _ => Severity::Warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(flags: &[Option<bool>], expected: Option<(usize, usize)>) {
        assert_eq!(find_run(flags, 2), expected, "{flags:?}");
    }

    #[test]
    fn runs_need_two_anomalous_intervals() {
        let (t, f, u) = (Some(true), Some(false), None);
        check(&[f, t, f, t, f], None);
        check(&[f, t, t, t, f, f, t], Some((1, 3)));
        check(&[f, t, u, t, f, t, f, f], Some((1, 5)));
        check(&[f, f, f, t, t], Some((3, 4)));
        check(&[], None);
        // Short intervals need a longer run (a live window's 10 s cells: 30 s).
        assert_eq!(find_run(&[f, t, t, f, t, t, t, f], 3), Some((4, 6)));
        assert_eq!(find_run(&[f, t, u, t, t, f], 3), Some((1, 4)));
    }
}
