//! The generator's series registry: counters, gauges and classic histograms per tenant, with the
//! limits that keep memory bounded and the collection step that turns them into samples.
//!
//! Limits (Tempo's semantics): a label whose distinct values in the active series would exceed
//! `max_cardinality_per_label` records `__cardinality_overflow__` instead of the new value; past
//! `max_active_series` a new series is folded into its family's one overflow series labelled
//! `metric_overflow="true"`. Both are counted. A series not updated for `stale_after_ms` is
//! forgotten at the next collection, and label values are recounted from what remains.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use andante_tsdb::metadata::MetricMetadata;
use andante_tsdb::{Exemplar, LabeledSample, Labels, METRIC_NAME};

pub const CARDINALITY_OVERFLOW_VALUE: &str = "__cardinality_overflow__";
pub const OVERFLOW_LABEL: &str = "metric_overflow";

#[derive(Debug, Clone)]
pub struct RegistryLimits {
    pub max_active_series: usize,
    pub max_cardinality_per_label: usize,
    pub stale_after_ms: i64,
}

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            max_active_series: 10_000,
            max_cardinality_per_label: 1_000,
            stale_after_ms: 15 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FamilyId(usize);

#[derive(Debug, Clone)]
enum Kind {
    Counter,
    Gauge,
    /// Upper bounds, ascending, without `+Inf`.
    Histogram(Vec<f64>),
}

#[derive(Debug, Clone, Default)]
struct SeriesState {
    value: f64,
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    buckets: Vec<f64>,
    sum: f64,
    count: f64,
    /// Per bucket, the latest traced observation since the last collection (trace ID in hex,
    /// value, Unix ms), written as that bucket's exemplar, as Tempo does.
    exemplars: Vec<Option<(String, f64, i64)>>,
    updated_ms: i64,
    /// A counter's first collection also writes a 0 just before, so `rate()`/`increase()` see
    /// the first increment instead of starting from it.
    collected: bool,
}

struct Family {
    name: String,
    kind: Kind,
    label_names: Vec<String>,
    series: HashMap<Vec<String>, SeriesState>,
    /// Distinct values per label position among active series.
    values_seen: Vec<HashSet<String>>,
    /// Label names vary per series (`traces_target_info`): a key is `[name, value, name, …]`.
    dynamic: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RegistryCounts {
    pub active_series: usize,
    pub series_overflowed: u64,
    pub label_values_overflowed: u64,
    pub series_removed_stale: u64,
}

pub struct Registry {
    limits: RegistryLimits,
    families: Vec<Family>,
    counts: RegistryCounts,
}

pub use andante_tsdb::labels::sanitize_label_name;

fn format_bound(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".to_owned()
    } else {
        format!("{bound}")
    }
}

impl Registry {
    pub fn new(limits: RegistryLimits) -> Registry {
        Registry {
            limits,
            families: Vec::new(),
            counts: RegistryCounts::default(),
        }
    }

    fn register(&mut self, name: &str, label_names: &[String], kind: Kind) -> FamilyId {
        self.families.push(Family {
            name: name.to_owned(),
            kind,
            label_names: label_names.to_vec(),
            series: HashMap::default(),
            values_seen: vec![HashSet::default(); label_names.len()],
            dynamic: false,
        });
        FamilyId(self.families.len() - 1)
    }

    pub fn counter(&mut self, name: &str, label_names: &[String]) -> FamilyId {
        self.register(name, label_names, Kind::Counter)
    }

    pub fn gauge(&mut self, name: &str, label_names: &[String]) -> FamilyId {
        self.register(name, label_names, Kind::Gauge)
    }

    /// A gauge whose series carry their own label names (info metrics).
    pub fn dynamic_gauge(&mut self, name: &str) -> FamilyId {
        let id = self.register(name, &[], Kind::Gauge);
        self.families[id.0].dynamic = true;
        id
    }

    pub fn set_dynamic(
        &mut self,
        family: FamilyId,
        pairs: Vec<(String, String)>,
        value: f64,
        now_ms: i64,
    ) {
        debug_assert!(self.families[family.0].dynamic);
        let key: Vec<String> = pairs
            .into_iter()
            .flat_map(|(name, value)| [name, value])
            .collect();
        self.set(family, &key, value, now_ms);
    }

    pub fn histogram(&mut self, name: &str, label_names: &[String], bounds: &[f64]) -> FamilyId {
        self.register(name, label_names, Kind::Histogram(bounds.to_vec()))
    }

    pub fn counts(&self) -> RegistryCounts {
        RegistryCounts {
            active_series: self.families.iter().map(|f| f.series.len()).sum(),
            ..self.counts
        }
    }

    /// Applies `update` to the series for `values`. An existing series costs a lookup and no
    /// allocation (this runs for every span); a new one is created if the limits allow, else the
    /// family's overflow series is updated.
    fn update(
        &mut self,
        family: FamilyId,
        values: &[String],
        now_ms: i64,
        update: impl FnOnce(&mut SeriesState),
    ) {
        if let Some(state) = self.families[family.0].series.get_mut(values) {
            state.updated_ms = now_ms;
            update(state);
            return;
        }
        let key = self.new_series_key(family, values);
        let family = &mut self.families[family.0];
        let buckets = match &family.kind {
            Kind::Histogram(bounds) => bounds.len() + 1,
            _ => 0,
        };
        let state = family.series.entry(key).or_insert_with(|| SeriesState {
            buckets: vec![0.0; buckets],
            exemplars: vec![None; buckets],
            ..SeriesState::default()
        });
        state.updated_ms = now_ms;
        update(state);
    }

    /// The key a new series gets under the limits: label values past a label's cardinality
    /// become [`CARDINALITY_OVERFLOW_VALUE`]; past the active-series limit, the overflow key.
    fn new_series_key(&mut self, family: FamilyId, values: &[String]) -> Vec<String> {
        let active: usize = self.families.iter().map(|f| f.series.len()).sum();
        let limits = &self.limits;
        let family = &mut self.families[family.0];
        debug_assert!(family.dynamic || values.len() == family.label_names.len());
        let mut key = values.to_vec();
        for (position, value) in key.iter_mut().enumerate().filter(|_| !family.dynamic) {
            let seen = &mut family.values_seen[position];
            if !seen.contains(value.as_str()) {
                if seen.len() >= limits.max_cardinality_per_label {
                    *value = CARDINALITY_OVERFLOW_VALUE.to_owned();
                    self.counts.label_values_overflowed += 1;
                }
                seen.insert(value.clone());
            }
        }
        if !family.series.contains_key(&key) && active >= limits.max_active_series {
            self.counts.series_overflowed += 1;
            key = Vec::new(); // the overflow series' key: no label values at all
        }
        key
    }

    pub fn add(&mut self, family: FamilyId, values: &[String], delta: f64, now_ms: i64) {
        self.update(family, values, now_ms, |state| state.value += delta);
    }

    pub fn set(&mut self, family: FamilyId, values: &[String], value: f64, now_ms: i64) {
        self.update(family, values, now_ms, |state| state.value = value);
    }

    /// Records `weight` observations of `value` (a span multiplier makes `weight` > 1), with the
    /// trace it came from as the bucket's exemplar when `trace_id` is given.
    pub fn observe(
        &mut self,
        family: FamilyId,
        values: &[String],
        value: f64,
        weight: f64,
        trace_id: Option<&[u8]>,
        now_ms: i64,
    ) {
        let bucket = match &self.families[family.0].kind {
            Kind::Histogram(bounds) => bounds.partition_point(|&bound| bound < value),
            _ => {
                debug_assert!(false, "observe on a non-histogram");
                return;
            }
        };
        self.update(family, values, now_ms, |state| {
            state.buckets[bucket] += weight;
            state.sum += value * weight;
            state.count += weight;
            if let Some(trace_id) = trace_id.filter(|id| !id.is_empty()) {
                state.exemplars[bucket] = Some((hex::encode(trace_id), value, now_ms));
            }
        });
    }

    /// Forgets stale series, then returns every series' samples at `now_ms` and the exemplars
    /// recorded since the last collection.
    pub fn collect(&mut self, now_ms: i64) -> Collected {
        let stale_before = now_ms - self.limits.stale_after_ms;
        let initial_ms = now_ms - now_ms.rem_euclid(60_000) - 1;
        let mut out = Vec::new();
        let mut exemplars = Vec::new();
        let mut metadata = Vec::new();
        for family in &mut self.families {
            let before = family.series.len();
            family
                .series
                .retain(|_, state| state.updated_ms >= stale_before);
            if family.series.len() != before {
                self.counts.series_removed_stale += (before - family.series.len()) as u64;
                for (position, seen) in family.values_seen.iter_mut().enumerate() {
                    *seen = family
                        .series
                        .keys()
                        .filter_map(|values| values.get(position).cloned())
                        .collect();
                }
            }
            if !family.series.is_empty() {
                let kind = match family.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Histogram(_) => "histogram",
                };
                // The family name Prometheus' metadata uses: a counter keeps `_total`, a
                // histogram is named without its `_bucket`/`_sum`/`_count` suffixes.
                metadata.push((
                    family.name.clone(),
                    MetricMetadata {
                        kind: kind.to_owned(),
                        help: String::new(),
                        unit: String::new(),
                    },
                ));
            }
            for (values, state) in &mut family.series {
                let base: Vec<(&str, &str)> =
                    if values.is_empty() && (family.dynamic || !family.label_names.is_empty()) {
                        vec![(OVERFLOW_LABEL, "true")]
                    } else if family.dynamic {
                        values
                            .chunks(2)
                            .map(|pair| {
                                (
                                    pair[0].as_str(),
                                    pair.get(1).map(String::as_str).unwrap_or(""),
                                )
                            })
                            .collect()
                    } else {
                        family
                            .label_names
                            .iter()
                            .map(String::as_str)
                            .zip(values.iter().map(String::as_str))
                            .collect()
                    };
                let labels = |suffix: &str, extra: Option<(&str, String)>| {
                    let name = format!("{}{suffix}", family.name);
                    let mut labels =
                        Labels::new(base.iter().map(|&(n, v)| (n.to_owned(), v.to_owned())));
                    labels.set(METRIC_NAME, &name);
                    if let Some((n, v)) = extra {
                        labels.set(n, &v);
                    }
                    labels
                };
                // A first sample at the end of the previous minute, unless that is not earlier.
                let write_initial =
                    !state.collected && initial_ms < now_ms && !matches!(family.kind, Kind::Gauge);
                state.collected = true;
                match &family.kind {
                    Kind::Counter | Kind::Gauge => {
                        let series = labels("", None);
                        if write_initial {
                            out.push((series.clone(), initial_ms, 0.0));
                        }
                        out.push((series, now_ms, state.value));
                    }
                    Kind::Histogram(bounds) => {
                        let mut cumulative = 0.0;
                        for (index, count) in state.buckets.iter().enumerate() {
                            cumulative += count;
                            let le =
                                format_bound(bounds.get(index).copied().unwrap_or(f64::INFINITY));
                            let series = labels("_bucket", Some(("le", le)));
                            if write_initial {
                                out.push((series.clone(), initial_ms, 0.0));
                            }
                            if let Some((trace_id, value, t_ms)) = state.exemplars[index].take() {
                                let exemplar = Exemplar {
                                    labels: Labels::new([("trace_id", trace_id)]),
                                    value,
                                    t_ms,
                                };
                                exemplars.push((series.clone(), exemplar));
                            }
                            out.push((series, now_ms, cumulative));
                        }
                        for (suffix, value) in [("_sum", state.sum), ("_count", state.count)] {
                            let series = labels(suffix, None);
                            if write_initial {
                                out.push((series.clone(), initial_ms, 0.0));
                            }
                            out.push((series, now_ms, value));
                        }
                    }
                }
            }
        }
        Collected {
            samples: out,
            exemplars,
            metadata,
        }
    }
}

/// What one collection of a registry yields.
#[derive(Debug, Default)]
pub struct Collected {
    pub samples: Vec<LabeledSample>,
    /// Each with its series (a `_bucket` series).
    pub exemplars: Vec<(Labels, Exemplar)>,
    /// The type of every family with series, for `/api/v1/metadata`.
    pub metadata: Vec<(String, MetricMetadata)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn values(list: &[&str]) -> Vec<String> {
        names(list)
    }

    fn find(samples: &[LabeledSample], text: &str, at: i64) -> Option<f64> {
        samples
            .iter()
            .find(|(labels, t, _)| labels.to_string() == text && *t == at)
            .map(|s| s.2)
    }

    #[test]
    fn counter_histogram_and_initial_zero() {
        let mut registry = Registry::new(RegistryLimits::default());
        let calls = registry.counter("calls_total", &names(&["service"]));
        let latency = registry.histogram("latency", &names(&["service"]), &[0.1, 0.2]);
        registry.add(calls, &values(&["a"]), 2.0, 1_000);
        registry.observe(latency, &values(&["a"]), 0.15, 1.0, Some(&[1; 16]), 1_000);
        registry.observe(latency, &values(&["a"]), 0.1, 1.0, None, 1_000);
        registry.observe(latency, &values(&["a"]), 5.0, 2.0, Some(&[3; 16]), 1_200);
        let collected = registry.collect(75_000);
        let exemplars = |collected: &Collected| -> Vec<String> {
            collected
                .exemplars
                .iter()
                .map(|(series, e)| format!("{series} {} {} {}", e.labels, e.value, e.t_ms))
                .collect()
        };
        assert_eq!(
            exemplars(&collected),
            [
                format!(
                    r#"latency_bucket{{le="0.2", service="a"}} {{trace_id="{}"}} 0.15 1000"#,
                    "01".repeat(16)
                ),
                format!(
                    r#"latency_bucket{{le="+Inf", service="a"}} {{trace_id="{}"}} 5 1200"#,
                    "03".repeat(16)
                ),
            ]
        );
        let kinds: Vec<(&str, &str)> = collected
            .metadata
            .iter()
            .map(|(name, metadata)| (name.as_str(), metadata.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [("calls_total", "counter"), ("latency", "histogram")]
        );
        let samples = collected.samples;
        assert_eq!(
            find(&samples, r#"calls_total{service="a"}"#, 59_999),
            Some(0.0)
        );
        assert_eq!(
            find(&samples, r#"calls_total{service="a"}"#, 75_000),
            Some(2.0)
        );
        assert_eq!(
            find(&samples, r#"latency_bucket{le="0.1", service="a"}"#, 75_000),
            Some(1.0),
            "0.1 is inside le=0.1"
        );
        assert_eq!(
            find(&samples, r#"latency_bucket{le="0.2", service="a"}"#, 75_000),
            Some(2.0)
        );
        assert_eq!(
            find(
                &samples,
                r#"latency_bucket{le="+Inf", service="a"}"#,
                75_000
            ),
            Some(4.0)
        );
        assert_eq!(
            find(&samples, r#"latency_count{service="a"}"#, 75_000),
            Some(4.0)
        );
        assert_eq!(
            find(&samples, r#"latency_sum{service="a"}"#, 75_000),
            Some(10.25)
        );
        // The second collection writes no initial zero.
        // Each exemplar is written once; the latest traced observation of a bucket wins.
        registry.observe(latency, &values(&["a"]), 0.16, 1.0, Some(&[4; 16]), 80_000);
        registry.observe(latency, &values(&["a"]), 0.17, 1.0, Some(&[5; 16]), 81_000);
        let again = registry.collect(90_000);
        assert_eq!(
            exemplars(&again),
            [format!(
                r#"latency_bucket{{le="0.2", service="a"}} {{trace_id="{}"}} 0.17 81000"#,
                "05".repeat(16)
            )]
        );
        let again = again.samples;
        assert_eq!(again.len(), 1 + 3 + 2);
    }

    #[test]
    fn limits_fold_into_overflow_and_stale_series_go() {
        let limits = RegistryLimits {
            max_active_series: 3,
            max_cardinality_per_label: 2,
            stale_after_ms: 10_000,
        };
        let mut registry = Registry::new(limits);
        let calls = registry.counter("calls_total", &names(&["service", "route"]));
        registry.add(calls, &values(&["a", "/1"]), 1.0, 0);
        registry.add(calls, &values(&["a", "/2"]), 1.0, 0);
        // A third route value overflows the per-label cap.
        registry.add(calls, &values(&["a", "/3"]), 1.0, 0);
        registry.add(calls, &values(&["a", "/4"]), 1.0, 0);
        // The series cap (3) is reached: a new service goes to the overflow series.
        registry.add(calls, &values(&["b", "/1"]), 5.0, 0);
        let samples = registry.collect(1_000).samples;
        assert_eq!(
            find(
                &samples,
                r#"calls_total{route="__cardinality_overflow__", service="a"}"#,
                1_000
            ),
            Some(2.0)
        );
        assert_eq!(
            find(&samples, r#"calls_total{metric_overflow="true"}"#, 1_000),
            Some(5.0)
        );
        let counts = registry.counts();
        assert_eq!(
            (
                counts.active_series,
                counts.series_overflowed,
                counts.label_values_overflowed
            ),
            (4, 1, 2)
        );
        registry.add(calls, &values(&["a", "/1"]), 1.0, 5_000);
        let samples = registry.collect(12_000).samples;
        assert_eq!(
            samples.iter().filter(|s| s.1 == 12_000).count(),
            1,
            "only the series updated at 5 s is still active"
        );
        assert_eq!(registry.counts().series_removed_stale, 3);
        // With the stale series gone, a new route value fits under the cap again.
        registry.add(calls, &values(&["a", "/9"]), 1.0, 12_000);
        assert_eq!(
            find(
                &registry.collect(13_000).samples,
                r#"calls_total{route="/9", service="a"}"#,
                13_000
            ),
            Some(1.0)
        );
    }

    #[test]
    fn label_names_are_sanitized() {
        assert_eq!(sanitize_label_name("http.route"), "http_route");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name("k8s-pod"), "k8s_pod");
    }
}
