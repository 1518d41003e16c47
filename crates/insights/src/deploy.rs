//! Amend assertions: a `service.version` first seen inside the window, after another version
//! of the same service, and what changed after it (error origins, self time per request of the
//! new version against the older versions before it).

use crate::assertions::{plausible_ratio, significant_ratio, Detection, Metric};
use crate::entity::EntityIdx;
use crate::fold::Tally;
use crate::window::Window;

const MIN_REQUESTS: f64 = 3.0;

impl Tally {
    fn origin_ratio(&self) -> f64 {
        self.origins / self.requests.max(1.0)
    }

    fn mean_self_millis(&self) -> f64 {
        self.self_nanos / self.requests.max(1.0) / 1e6
    }
}

pub(crate) fn deploys(window: &Window, _detections: &[Detection]) -> Vec<Detection> {
    let mut found = Vec::new();
    for (position, seen) in window.versions.iter().enumerate() {
        let service = seen.service;
        let earliest = window
            .versions
            .iter()
            .filter(|other| other.service == service)
            .map(|other| other.first_seen_nanos)
            .min()
            .unwrap_or(seen.first_seen_nanos);
        let is_new = seen.first_seen_nanos > earliest
            && seen.first_seen_nanos >= window.start_nanos + window.interval_nanos;
        if !is_new {
            continue;
        }
        let (before, after) = tallies(window, service, position);
        // As for error assertions: the older versions' ratio is taken at the most it
        // plausibly is, so the first minutes after a harmless deploy are not a harmful one.
        let errors_rose = after.requests >= MIN_REQUESTS
            && after.origins >= 5.0
            && after.origin_ratio() >= 2.0 * before.origin_ratio()
            && after.origin_ratio() - before.origin_ratio() >= 0.05
            && significant_ratio(
                after.origin_ratio(),
                plausible_ratio(before.origins, before.requests),
                after.requests,
            );
        let slower = |tally: &Tally| {
            tally.mean_self_millis() >= 1.5 * before.mean_self_millis()
                && tally.mean_self_millis() - before.mean_self_millis() >= 1.0
        };
        // A mean is moved by one slow request, so the rise must also hold in most of the
        // new version's intervals (two at least), as an anomaly must last two intervals.
        let (busy, slow) = seen
            .per_interval
            .iter()
            .filter(|(_, tally, _)| tally.requests >= MIN_REQUESTS)
            .fold((0, 0), |(busy, slow), (_, tally, _)| {
                (busy + 1, slow + usize::from(slower(tally)))
            });
        let latency_rose = after.requests >= MIN_REQUESTS
            && before.requests >= MIN_REQUESTS
            && slower(&after)
            && slow >= 2
            && 2 * slow > busy;
        let (label, observed, expected) = if errors_rose || !latency_rose {
            (
                "error_origin_ratio_after_deploy",
                after.origin_ratio(),
                before.origin_ratio(),
            )
        } else {
            (
                "self_time_ms_after_deploy",
                after.mean_self_millis(),
                before.mean_self_millis(),
            )
        };
        let onset = ((seen.first_seen_nanos - window.start_nanos) / window.interval_nanos) as usize;
        found.push(Detection {
            entity: service,
            metric: Metric::Deploy,
            onset: onset.min(window.intervals - 1),
            last: window.intervals - 1,
            observed,
            expected,
            excess: 0.0,
            version: Some(seen.version.clone()),
            harmful: errors_rose || latency_rose,
            label: Some(label),
            promql: None,
        });
    }
    found
}

/// Requests of older versions in the intervals before the one the new version appeared in,
/// and requests of the new one.
fn tallies(window: &Window, service: EntityIdx, position: usize) -> (Tally, Tally) {
    let seen = &window.versions[position];
    let appeared = ((seen.first_seen_nanos.saturating_sub(window.start_nanos))
        / window.interval_nanos) as usize;
    let mut before = Tally::default();
    let mut after = Tally::default();
    for (_, tally, _) in &seen.per_interval {
        after.merge(tally);
    }
    for other in &window.versions {
        if other.service != service || other.version == seen.version {
            continue;
        }
        for (interval, tally, _) in &other.per_interval {
            if *interval < appeared {
                before.merge(tally);
            }
        }
    }
    (before, after)
}
