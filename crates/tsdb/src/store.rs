//! The in-process series store: the generated series of every tenant for `retention` (24 h by
//! default), in memory as compressed chunks ([`crate::chunk`]) behind a per-tenant lock.
//!
//! Invariants: samples of a series are strictly increasing in time (an out-of-order or duplicate
//! sample is refused and counted, as Prometheus does); a tenant never holds more than
//! `max_series_per_tenant` series (new ones past it are refused and counted), so memory is bounded
//! by series × retention / interval × a few bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use promql_parser::label::{MatchOp, Matchers};

use crate::chunk;
use crate::labels::{Labels, METRIC_NAME};

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub retention_ms: i64,
    pub max_series_per_tenant: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention_ms: 24 * 3600 * 1000,
            max_series_per_tenant: 100_000,
        }
    }
}

struct Chunk {
    min_t: i64,
    max_t: i64,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Series {
    chunks: VecDeque<Chunk>,
    head: Vec<(i64, f64)>,
}

impl Series {
    fn last_t(&self) -> Option<i64> {
        self.head
            .last()
            .map(|s| s.0)
            .or_else(|| self.chunks.back().map(|c| c.max_t))
    }

    fn append(&mut self, t: i64, value: f64) -> bool {
        if self.last_t().is_some_and(|last| t <= last) {
            return false;
        }
        self.head.push((t, value));
        if self.head.len() >= chunk::SAMPLES_PER_CHUNK {
            let bytes = chunk::encode(&self.head);
            self.chunks.push_back(Chunk {
                min_t: self.head[0].0,
                max_t: t,
                bytes,
            });
            self.head.clear();
        }
        true
    }

    fn samples(&self, start: i64, end: i64) -> Vec<(i64, f64)> {
        let overlapping: Vec<&Chunk> = self
            .chunks
            .iter()
            .filter(|c| c.max_t >= start && c.min_t <= end)
            .collect();
        let mut out =
            Vec::with_capacity(overlapping.len() * chunk::SAMPLES_PER_CHUNK + self.head.len());
        for chunk in overlapping {
            let from = out.len();
            if chunk::decode_into(&chunk.bytes, &mut out).is_none() {
                debug_assert!(false, "a chunk this process encoded does not decode");
                out.truncate(from);
            }
        }
        out.extend_from_slice(&self.head);
        // Samples are in time order: trim the ends instead of filtering everything.
        let first = out.partition_point(|&(t, _)| t < start);
        let last = out.partition_point(|&(t, _)| t <= end);
        out.truncate(last);
        out.drain(..first);
        out
    }

    fn overlaps(&self, start: i64, end: i64) -> bool {
        let first = self
            .chunks
            .front()
            .map(|c| c.min_t)
            .or_else(|| self.head.first().map(|s| s.0));
        match (first, self.last_t()) {
            (Some(first), Some(last)) => first <= end && last >= start,
            _ => false,
        }
    }

    /// Drops chunks entirely older than `cutoff`; true when nothing is left.
    fn expire(&mut self, cutoff: i64) -> bool {
        while self.chunks.front().is_some_and(|c| c.max_t < cutoff) {
            self.chunks.pop_front();
        }
        if self.chunks.is_empty() {
            self.head.retain(|&(t, _)| t >= cutoff);
        }
        self.chunks.is_empty() && self.head.is_empty()
    }

    fn bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.bytes.len() + 24)
            .sum::<usize>()
            + self.head.capacity() * 16
    }
}

#[derive(Default)]
struct TenantSeries {
    /// Metric name → series; a selector almost always names its metric.
    by_name: BTreeMap<String, HashMap<Labels, Series>>,
    count: usize,
}

/// One selected series with its samples in the asked window, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

#[derive(Default)]
pub struct StoreCounters {
    pub samples_appended: AtomicU64,
    pub samples_out_of_order: AtomicU64,
    pub series_refused: AtomicU64,
}

pub struct Store {
    config: StoreConfig,
    tenants: RwLock<HashMap<String, Arc<RwLock<TenantSeries>>>>,
    pub counters: StoreCounters,
}

/// Whether a series' labels satisfy a selector (`{a="x", b=~"y"}` plus Prometheus 3's
/// `{a="x" or b="y"}` groups). A missing label matches as the empty string, as in Prometheus.
pub fn matches(matchers: &Matchers, labels: &Labels) -> bool {
    let all = |group: &[promql_parser::label::Matcher]| {
        group
            .iter()
            .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
    };
    all(&matchers.matchers)
        && (matchers.or_matchers.is_empty() || matchers.or_matchers.iter().any(|group| all(group)))
}

fn exact_name(matchers: &Matchers) -> Option<&str> {
    if !matchers.or_matchers.is_empty() {
        return None;
    }
    matchers
        .matchers
        .iter()
        .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
        .map(|m| m.value.as_str())
}

/// Calls `each` once for every series of `state` matching any selector in `[start, end]`.
fn visit<'s>(
    state: &'s TenantSeries,
    selectors: &[&Matchers],
    start: i64,
    end: i64,
    mut each: impl FnMut(&'s Labels, &'s Series),
) {
    let everything = Matchers::empty();
    let selectors: &[&Matchers] = if selectors.is_empty() {
        &[&everything]
    } else {
        selectors
    };
    let mut seen = BTreeSet::new();
    for matchers in selectors {
        let families: Vec<&HashMap<Labels, Series>> = match exact_name(matchers) {
            Some(name) => state.by_name.get(name).into_iter().collect(),
            None => state.by_name.values().collect(),
        };
        for family in families {
            for (labels, series) in family {
                if matches(matchers, labels) && series.overlaps(start, end) && seen.insert(labels) {
                    each(labels, series);
                }
            }
        }
    }
}

impl Store {
    pub fn new(config: StoreConfig) -> Store {
        Store {
            config,
            tenants: RwLock::default(),
            counters: StoreCounters::default(),
        }
    }

    fn tenant(&self, tenant: &str) -> Option<Arc<RwLock<TenantSeries>>> {
        self.tenants.read().get(tenant).cloned()
    }

    /// Appends samples; returns how many were stored.
    pub fn append(
        &self,
        tenant: &str,
        samples: impl IntoIterator<Item = (Labels, i64, f64)>,
    ) -> usize {
        let state = self
            .tenants
            .write()
            .entry(tenant.to_owned())
            .or_default()
            .clone();
        let mut state = state.write();
        let mut stored = 0;
        for (labels, t, value) in samples {
            let name = labels.metric_name().unwrap_or("").to_owned();
            let is_new = !state
                .by_name
                .get(&name)
                .is_some_and(|family| family.contains_key(&labels));
            if is_new {
                if state.count >= self.config.max_series_per_tenant {
                    self.counters.series_refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                state.count += 1;
            }
            let series = state
                .by_name
                .entry(name)
                .or_default()
                .entry(labels)
                .or_default();
            if series.append(t, value) {
                stored += 1;
            } else {
                self.counters
                    .samples_out_of_order
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.counters
            .samples_appended
            .fetch_add(stored as u64, Ordering::Relaxed);
        stored
    }

    /// Every series matching any of `selectors` with samples in `[start, end]` (milliseconds).
    pub fn select(
        &self,
        tenant: &str,
        selectors: &[&Matchers],
        start: i64,
        end: i64,
    ) -> Vec<SeriesData> {
        let Some(state) = self.tenant(tenant) else {
            return Vec::new();
        };
        let state = state.read();
        let mut found: Vec<(&Labels, &Series)> = Vec::new();
        visit(&state, selectors, start, end, |labels, series| {
            found.push((labels, series))
        });
        // Decoding a day of samples is the cost of a dashboard query: split it over the cores.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(found.len() / 64)
            .max(1);
        let decode = |part: &[(&Labels, &Series)]| -> Vec<SeriesData> {
            part.iter()
                .filter_map(|(labels, series)| {
                    let samples = series.samples(start, end);
                    (!samples.is_empty()).then(|| SeriesData {
                        labels: (*labels).clone(),
                        samples,
                    })
                })
                .collect()
        };
        let mut out: Vec<SeriesData> = if threads == 1 {
            decode(&found)
        } else {
            let per_thread = found.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let handles: Vec<_> = found
                    .chunks(per_thread)
                    .map(|part| scope.spawn(move || decode(part)))
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|handle| handle.join().unwrap_or_default())
                    .collect()
            })
        };
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Label sets of the matching series (the `/series` API); no samples are decoded.
    pub fn series(
        &self,
        tenant: &str,
        selectors: &[&Matchers],
        start: i64,
        end: i64,
    ) -> Vec<Labels> {
        let Some(state) = self.tenant(tenant) else {
            return Vec::new();
        };
        let state = state.read();
        let mut out = BTreeSet::new();
        visit(&state, selectors, start, end, |labels, _| {
            out.insert(labels.clone());
        });
        out.into_iter().collect()
    }

    /// Drops samples older than the retention, and series left empty.
    pub fn expire(&self, now_ms: i64) {
        let cutoff = now_ms - self.config.retention_ms;
        for state in self.tenants.read().values() {
            let mut state = state.write();
            let mut removed = 0;
            for family in state.by_name.values_mut() {
                family.retain(|_, series| {
                    let empty = series.expire(cutoff);
                    removed += usize::from(empty);
                    !empty
                });
            }
            state.by_name.retain(|_, family| !family.is_empty());
            state.count -= removed;
        }
    }

    /// (series, bytes held) over every tenant.
    pub fn totals(&self) -> (usize, usize) {
        let mut totals = (0, 0);
        for state in self.tenants.read().values() {
            let state = state.read();
            totals.0 += state.count;
            totals.1 += state
                .by_name
                .values()
                .flat_map(|f| f.values())
                .map(Series::bytes)
                .sum::<usize>();
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(text: &str) -> Matchers {
        match promql_parser::parser::parse(text) {
            Ok(promql_parser::parser::Expr::VectorSelector(vs)) => {
                let mut matchers = vs.matchers;
                if let Some(name) = vs.name {
                    matchers.matchers.push(promql_parser::label::Matcher::new(
                        MatchOp::Equal,
                        METRIC_NAME,
                        &name,
                    ));
                }
                matchers
            }
            other => panic!("not a selector: {other:?}"),
        }
    }

    fn series(name: &str, service: &str) -> Labels {
        Labels::new([(METRIC_NAME, name), ("service", service)])
    }

    #[test]
    fn select_by_name_and_matchers_across_chunks() {
        let store = Store::new(StoreConfig::default());
        let samples = (0..300).flat_map(|i| {
            [
                (series("calls", "a"), i * 15_000, i as f64),
                (series("calls", "b"), i * 15_000, 2.0 * i as f64),
                (series("other", "a"), i * 15_000, 1.0),
            ]
        });
        assert_eq!(store.append("t", samples), 900);
        let found = store.select(
            "t",
            &[&selector(r#"calls{service=~"a|c"}"#)],
            15_000 * 100,
            15_000 * 250,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].labels, series("calls", "a"));
        assert_eq!(found[0].samples.len(), 151);
        assert_eq!(found[0].samples[0], (15_000 * 100, 100.0));
        assert_eq!(found[0].samples[150], (15_000 * 250, 250.0));
        assert!(store
            .select("other-tenant", &[&selector("calls")], 0, i64::MAX)
            .is_empty());
        assert_eq!(
            store.series("t", &[&selector(r#"{service="a"}"#)], 0, i64::MAX),
            vec![series("calls", "a"), series("other", "a")]
        );
    }

    #[test]
    fn out_of_order_refused_and_series_limit_enforced() {
        let store = Store::new(StoreConfig {
            retention_ms: 1000,
            max_series_per_tenant: 2,
        });
        assert_eq!(
            store.append(
                "t",
                [
                    (series("m", "a"), 10, 1.0),
                    (series("m", "a"), 10, 2.0),
                    (series("m", "a"), 5, 2.0)
                ]
            ),
            1
        );
        assert_eq!(
            store.counters.samples_out_of_order.load(Ordering::Relaxed),
            2
        );
        assert_eq!(
            store.append(
                "t",
                [(series("m", "b"), 10, 1.0), (series("m", "c"), 10, 1.0)]
            ),
            1
        );
        assert_eq!(store.counters.series_refused.load(Ordering::Relaxed), 1);
        store.expire(2000);
        assert_eq!(store.totals().0, 0);
        assert_eq!(store.append("t", [(series("m", "c"), 3000, 1.0)]), 1);
    }
}
