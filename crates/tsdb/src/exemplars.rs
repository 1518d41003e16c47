//! Exemplars: one traced example per sample (a trace ID on a latency bucket), so a spike on a
//! plot leads to a trace. They arrive with remote-write, OTLP metrics and the span-metrics
//! generator, and are read by Prometheus' `/api/v1/query_exemplars`.
//!
//! Prometheus' semantics, so Grafana's exemplar markers behave alike: per tenant a circular
//! buffer of at most `capacity` exemplars (the oldest goes first, whichever series it belongs
//! to); a series takes only exemplars newer than its newest one (an exact repeat of the newest
//! is a duplicate, silently dropped); an exemplar's label set is at most
//! [`MAX_LABEL_SET_LENGTH`] characters. Refusals never fail the push that carried them, as in
//! Prometheus: they are counted.

use std::collections::{HashMap, VecDeque};

use parking_lot::{Mutex, RwLock};
use promql_parser::label::Matchers;

use crate::labels::{Labels, LabelsMap};
use crate::store::matches;

/// Prometheus' `ExemplarMaxLabelSetLength`: names and values together, in characters.
pub const MAX_LABEL_SET_LENGTH: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub t_ms: i64,
}

/// How one exemplar fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExemplarOutcome {
    Stored,
    /// The same as the series' newest exemplar.
    Duplicate,
    /// Not newer than the series' newest exemplar.
    OutOfOrder,
    /// Its label set is longer than [`MAX_LABEL_SET_LENGTH`].
    TooLong,
    /// Exemplar storage is off (`capacity` 0).
    Disabled,
}

/// A series with its exemplars in a query window, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesExemplars {
    pub series: Labels,
    pub exemplars: Vec<Exemplar>,
}

#[derive(Default)]
struct TenantExemplars {
    by_series: LabelsMap<VecDeque<Exemplar>>,
    /// The series of every held exemplar in arrival order: the front is evicted first.
    arrival: VecDeque<Labels>,
}

pub struct ExemplarStore {
    capacity: usize,
    tenants: RwLock<HashMap<String, Mutex<TenantExemplars>>>,
}

impl ExemplarStore {
    /// Keeps at most `capacity` exemplars per tenant; 0 keeps none.
    pub fn new(capacity: usize) -> ExemplarStore {
        ExemplarStore {
            capacity,
            tenants: RwLock::new(HashMap::new()),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether `exemplar` would be refused for its own sake, before any series is consulted.
    pub fn check(&self, exemplar: &Exemplar) -> Option<ExemplarOutcome> {
        if self.capacity == 0 {
            return Some(ExemplarOutcome::Disabled);
        }
        let length: usize = exemplar
            .labels
            .iter()
            .map(|(name, value)| name.chars().count() + value.chars().count())
            .sum();
        (length > MAX_LABEL_SET_LENGTH).then_some(ExemplarOutcome::TooLong)
    }

    pub fn append(&self, tenant: &str, series: &Labels, exemplar: Exemplar) -> ExemplarOutcome {
        if let Some(refused) = self.check(&exemplar) {
            return refused;
        }
        if !self.tenants.read().contains_key(tenant) {
            self.tenants.write().entry(tenant.to_owned()).or_default();
        }
        let tenants = self.tenants.read();
        let Some(state) = tenants.get(tenant) else {
            return ExemplarOutcome::Disabled;
        };
        let mut state = state.lock();
        if let Some(newest) = state.by_series.get(series).and_then(VecDeque::back) {
            if *newest == exemplar {
                return ExemplarOutcome::Duplicate;
            }
            if exemplar.t_ms <= newest.t_ms {
                return ExemplarOutcome::OutOfOrder;
            }
        }
        if state.arrival.len() >= self.capacity {
            evict_oldest(&mut state);
        }
        state.arrival.push_back(series.clone());
        state
            .by_series
            .entry(series.clone())
            .or_default()
            .push_back(exemplar);
        ExemplarOutcome::Stored
    }

    /// Exemplars in `[start_ms, end_ms]` of every series matching any of `selectors`, ordered by
    /// series labels (as Prometheus orders them).
    pub fn select(
        &self,
        tenant: &str,
        selectors: &[&Matchers],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<SeriesExemplars> {
        let tenants = self.tenants.read();
        let Some(state) = tenants.get(tenant) else {
            return Vec::new();
        };
        let state = state.lock();
        let mut out: Vec<SeriesExemplars> = state
            .by_series
            .iter()
            .filter(|(series, _)| selectors.iter().any(|m| matches(m, series)))
            .filter_map(|(series, held)| {
                let exemplars: Vec<Exemplar> = held
                    .iter()
                    .filter(|e| (start_ms..=end_ms).contains(&e.t_ms))
                    .cloned()
                    .collect();
                (!exemplars.is_empty()).then(|| SeriesExemplars {
                    series: series.clone(),
                    exemplars,
                })
            })
            .collect();
        out.sort_by(|a, b| a.series.cmp(&b.series));
        out
    }

    /// How many exemplars `tenant` holds.
    pub fn len(&self, tenant: &str) -> usize {
        self.tenants
            .read()
            .get(tenant)
            .map_or(0, |state| state.lock().arrival.len())
    }
}

fn evict_oldest(state: &mut TenantExemplars) {
    let Some(series) = state.arrival.pop_front() else {
        return;
    };
    if let Some(held) = state.by_series.get_mut(&series) {
        held.pop_front();
        if held.is_empty() {
            state.by_series.remove(&series);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use promql_parser::label::{MatchOp, Matcher};

    fn series(name: &str) -> Labels {
        Labels::new([("__name__", name), ("job", "api")])
    }

    fn exemplar(trace: &str, value: f64, t_ms: i64) -> Exemplar {
        Exemplar {
            labels: Labels::new([("trace_id", trace)]),
            value,
            t_ms,
        }
    }

    fn name_is(name: &str) -> Matchers {
        Matchers::new(vec![Matcher::new(MatchOp::Equal, "__name__", name)])
    }

    #[test]
    fn series_take_only_newer_exemplars_and_the_oldest_go_first() {
        let store = ExemplarStore::new(3);
        let (a, b) = (series("a"), series("b"));
        assert_eq!(
            store.append("t", &a, exemplar("1", 1.0, 10)),
            ExemplarOutcome::Stored
        );
        assert_eq!(
            store.append("t", &a, exemplar("1", 1.0, 10)),
            ExemplarOutcome::Duplicate
        );
        assert_eq!(
            store.append("t", &a, exemplar("2", 2.0, 10)),
            ExemplarOutcome::OutOfOrder
        );
        assert_eq!(
            store.append("t", &a, exemplar("2", 2.0, 5)),
            ExemplarOutcome::OutOfOrder
        );
        assert_eq!(
            store.append("t", &b, exemplar("3", 3.0, 1)),
            ExemplarOutcome::Stored
        );
        assert_eq!(
            store.append("t", &a, exemplar("4", 4.0, 20)),
            ExemplarOutcome::Stored
        );
        // Full: the first exemplar of `a` makes room.
        assert_eq!(
            store.append("t", &b, exemplar("5", 5.0, 2)),
            ExemplarOutcome::Stored
        );
        assert_eq!(store.len("t"), 3);
        let all = store.select("t", &[&name_is("a"), &name_is("b")], i64::MIN, i64::MAX);
        let traces: Vec<Vec<&str>> = all
            .iter()
            .map(|s| {
                s.exemplars
                    .iter()
                    .map(|e| e.labels.get("trace_id").unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(traces, [vec!["4"], vec!["3", "5"]]);
        assert_eq!(all[0].series, a);
        // The window bounds are inclusive; other tenants see nothing.
        let window = store.select("t", &[&name_is("b")], 2, 2);
        assert_eq!(window[0].exemplars, [exemplar("5", 5.0, 2)]);
        assert!(store
            .select("other", &[&name_is("b")], i64::MIN, i64::MAX)
            .is_empty());
    }

    #[test]
    fn long_label_sets_and_a_zero_capacity_are_refused() {
        let store = ExemplarStore::new(10);
        let long = Exemplar {
            labels: Labels::new([("trace_id", "x".repeat(MAX_LABEL_SET_LENGTH - 7))]),
            value: 1.0,
            t_ms: 1,
        };
        assert_eq!(
            store.append("t", &series("a"), long),
            ExemplarOutcome::TooLong
        );
        let fits = Exemplar {
            labels: Labels::new([("trace_id", "é".repeat(MAX_LABEL_SET_LENGTH - 8))]),
            value: 1.0,
            t_ms: 1,
        };
        assert_eq!(
            store.append("t", &series("a"), fits),
            ExemplarOutcome::Stored
        );
        let off = ExemplarStore::new(0);
        assert_eq!(
            off.append("t", &series("a"), exemplar("1", 1.0, 1)),
            ExemplarOutcome::Disabled
        );
    }
}
