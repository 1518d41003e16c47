//! Seasonality: request rates judged against the shape the same hours had the day before.

use super::sim::{Fault, Sim, ONSET, WINDOW_NANOS, WINDOW_START};
use crate::{analyze_with, window_steps, Analysis, DayAgo};

const SERVICES: [&str; 5] = ["frontend", "catalog", "checkout", "payments", "shipping"];

/// Every service's rate the day before: `before` until the onset's hour, `after` from then.
fn day_ago(before: f64, after: f64) -> Vec<DayAgo> {
    let steps = window_steps(WINDOW_START, WINDOW_START + WINDOW_NANOS);
    SERVICES
        .iter()
        .map(|service| DayAgo {
            service: service.to_string(),
            points: (steps.first..=steps.last)
                .step_by(steps.step as usize)
                .map(|at| (at, if at > ONSET { after } else { before }))
                .collect(),
        })
        .collect()
}

fn rate_assertions(fault: Fault, seasons: &[DayAgo]) -> Vec<(String, String)> {
    let analysis: Analysis = analyze_with(
        Sim::run(fault, 21),
        WINDOW_START,
        WINDOW_START + WINDOW_NANOS,
        seasons,
    );
    analysis
        .assertions(None)
        .into_iter()
        .filter(|assertion| assertion.metric == "request_rate")
        .map(|assertion| (assertion.entity, assertion.summary))
        .collect()
}

#[test]
fn a_rise_the_day_before_also_had_is_no_anomaly() {
    // Without history, or with a flat day before, tripled traffic is a rise.
    let plain = rate_assertions(Fault::TrafficSpike, &[]);
    assert!(
        plain.iter().any(|(entity, _)| entity == "service:frontend"),
        "{plain:?}"
    );
    let flat = rate_assertions(Fault::TrafficSpike, &day_ago(0.5, 0.5));
    assert_eq!(plain, flat, "a flat day changes nothing");
    // The same hour tripled yesterday too: that is the day's shape.
    let seasonal = rate_assertions(Fault::TrafficSpike, &day_ago(0.5, 1.5));
    assert!(
        !seasonal
            .iter()
            .any(|(entity, _)| entity.starts_with("service:")),
        "{seasonal:?}"
    );
}

#[test]
fn steady_traffic_where_the_day_before_rose_is_a_drop() {
    assert!(rate_assertions(Fault::None, &[]).is_empty());
    let drops = rate_assertions(Fault::None, &day_ago(0.5, 2.0));
    assert!(
        drops
            .iter()
            .any(|(entity, summary)| entity == "service:frontend" && summary.contains("fell")),
        "{drops:?}"
    );
}

#[test]
fn a_partial_day_before_is_no_shape() {
    let mut seasons = day_ago(0.5, 1.5);
    for one in &mut seasons {
        one.points.truncate(one.points.len() / 2);
    }
    assert_eq!(
        rate_assertions(Fault::TrafficSpike, &seasons),
        rate_assertions(Fault::TrafficSpike, &[])
    );
}
