//! The in-process series store: the generated series of every tenant for `retention` (24 h by
//! default), in memory as compressed chunks ([`crate::chunk`]) behind a per-tenant lock.
//!
//! Invariants: samples of a series are strictly increasing in time (an out-of-order or duplicate
//! sample is refused and counted, as Prometheus does); a tenant never holds more than
//! `max_series_per_tenant` series (new ones past it are refused and counted), so memory is bounded
//! by series × retention / interval × a few bytes.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use promql_parser::label::{MatchOp, Matchers};

use crate::chunk;
use crate::labels::{Labels, LabelsMap, METRIC_NAME};
use crate::SeriesSamples;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub retention_ms: i64,
    pub max_series_per_tenant: usize,
    /// How far behind a series' newest sample a late sample is still taken.
    pub out_of_order_window_ms: i64,
    /// Tenants whose retention differs from `retention_ms`.
    pub retention_per_tenant_ms: HashMap<String, i64>,
    /// Most exemplars held per tenant (0: none are kept).
    pub max_exemplars_per_tenant: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retention_ms: 24 * 3600 * 1000,
            max_series_per_tenant: 100_000,
            out_of_order_window_ms: 10 * 60 * 1000,
            retention_per_tenant_ms: HashMap::new(),
            max_exemplars_per_tenant: 100_000,
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
    /// Samples that arrived older than the head's first sample (within the out-of-order window,
    /// or from WAL replay), kept sorted and merged into reads; folded into the chunks when
    /// there are a chunk's worth.
    late: Vec<(i64, f64)>,
}

/// How one sample fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Appended {
    Stored,
    /// The same timestamp and value again: taken silently, as Prometheus does.
    Duplicate,
    /// Same timestamp, other value.
    Conflict,
    /// Older than the series' newest sample by more than the out-of-order window.
    OutOfOrder,
}

/// Bit equality, so that two stale markers (a NaN payload) count as the same value.
fn same_value(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits()
}

impl Series {
    fn last_t(&self) -> Option<i64> {
        self.head
            .last()
            .map(|s| s.0)
            .or_else(|| self.chunks.back().map(|c| c.max_t))
    }

    /// Appends in order, or (within `window_ms` of the newest sample) out of order.
    fn append(&mut self, t: i64, value: f64, window_ms: i64) -> Appended {
        let Some(last) = self.last_t() else {
            self.push_newest(t, value);
            return Appended::Stored;
        };
        if t > last {
            self.push_newest(t, value);
            return Appended::Stored;
        }
        if t < last.saturating_sub(window_ms) {
            return Appended::OutOfOrder;
        }
        // Late: into the open head if it reaches back that far, else into the late buffer
        // (after checking the sealed chunks, which the buffer's search cannot see).
        if let Some(existing) = self.sealed_value_at(t) {
            return if same_value(existing, value) {
                Appended::Duplicate
            } else {
                Appended::Conflict
            };
        }
        let buffer = if self.head.first().is_some_and(|first| first.0 <= t) {
            &mut self.head
        } else {
            &mut self.late
        };
        match buffer.binary_search_by_key(&t, |s| s.0) {
            Ok(at) if same_value(buffer[at].1, value) => return Appended::Duplicate,
            Ok(_) => return Appended::Conflict,
            Err(at) => buffer.insert(at, (t, value)),
        }
        if self.late.len() >= chunk::SAMPLES_PER_CHUNK {
            self.fold_late();
        }
        Appended::Stored
    }

    /// The value at exactly `t` in a sealed chunk; decodes at most the chunks spanning `t`.
    fn sealed_value_at(&self, t: i64) -> Option<f64> {
        let mut decoded = Vec::new();
        for sealed in self.chunks.iter().filter(|c| c.min_t <= t && t <= c.max_t) {
            decoded.clear();
            chunk::decode_into(&sealed.bytes, &mut decoded)?;
            if let Ok(at) = decoded.binary_search_by_key(&t, |s| s.0) {
                return Some(decoded[at].1);
            }
        }
        None
    }

    fn push_newest(&mut self, t: i64, value: f64) {
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
    }

    /// Re-encodes the chunks the late samples fall among, with the late samples merged in.
    fn fold_late(&mut self) {
        if self.late.is_empty() {
            return;
        }
        let first_late = self.late[0].0;
        let keep = self
            .chunks
            .iter()
            .position(|c| c.max_t >= first_late)
            .unwrap_or(self.chunks.len());
        let mut merged = Vec::new();
        for old in self.chunks.drain(keep..) {
            if chunk::decode_into(&old.bytes, &mut merged).is_none() {
                debug_assert!(false, "a chunk this process encoded does not decode");
            }
        }
        let merged = merge_sorted(merged, std::mem::take(&mut self.late));
        for part in merged.chunks(chunk::SAMPLES_PER_CHUNK) {
            self.chunks.push_back(Chunk {
                min_t: part[0].0,
                max_t: part[part.len() - 1].0,
                bytes: chunk::encode(part),
            });
        }
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
        if !self.late.is_empty() {
            out = merge_sorted(out, self.late.clone());
        }
        // Samples are in time order: trim the ends instead of filtering everything.
        let first = out.partition_point(|&(t, _)| t < start);
        let last = out.partition_point(|&(t, _)| t <= end);
        out.truncate(last);
        out.drain(..first);
        out
    }

    fn first_t(&self) -> Option<i64> {
        let first = self
            .chunks
            .front()
            .map(|c| c.min_t)
            .or_else(|| self.head.first().map(|s| s.0));
        match (first, self.late.first()) {
            (Some(first), Some(late)) => Some(first.min(late.0)),
            (first, late) => first.or(late.map(|s| s.0)),
        }
    }

    fn overlaps(&self, start: i64, end: i64) -> bool {
        match (self.first_t(), self.last_t()) {
            (Some(first), Some(last)) => first <= end && last >= start,
            _ => false,
        }
    }

    /// Drops chunks entirely older than `cutoff`; true when nothing is left.
    fn expire(&mut self, cutoff: i64) -> bool {
        while self.chunks.front().is_some_and(|c| c.max_t < cutoff) {
            self.chunks.pop_front();
        }
        self.late.retain(|&(t, _)| t >= cutoff);
        if self.chunks.is_empty() {
            self.head.retain(|&(t, _)| t >= cutoff);
        }
        self.chunks.is_empty() && self.head.is_empty() && self.late.is_empty()
    }

    fn bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.bytes.len() + 24)
            .sum::<usize>()
            + (self.head.capacity() + self.late.capacity()) * 16
    }
}

/// Merges two time-sorted sample lists; on equal timestamps the first list's sample wins.
fn merge_sorted(a: Vec<(i64, f64)>, b: Vec<(i64, f64)>) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 < y.0 => a.next(),
            (Some(x), Some(y)) if x.0 > y.0 => b.next(),
            (Some(_), Some(_)) => {
                b.next();
                a.next()
            }
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    out
}

#[derive(Default)]
struct TenantSeries {
    /// Metric name → series; a selector almost always names its metric.
    by_name: BTreeMap<String, Family>,
    count: usize,
}

/// The series of one metric name, with postings: label name → value → the series carrying that
/// pair (`__name__` aside). A selector with an equality matcher reads the shortest such list
/// instead of testing every series of the metric, which is what rule evaluation (thousands of
/// selectors like `{service="x"}` every interval) spends its time on otherwise.
#[derive(Default)]
struct Family {
    series: LabelsMap<Series>,
    postings: HashMap<String, HashMap<String, Vec<Labels>>>,
}

impl Family {
    fn get(&self, labels: &Labels) -> Option<&Series> {
        self.series.get(labels)
    }

    fn values(&self) -> impl Iterator<Item = &Series> {
        self.series.values()
    }

    fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Posts a series about to be created under every label pair it carries.
    fn post(postings: &mut HashMap<String, HashMap<String, Vec<Labels>>>, labels: &Labels) {
        for (name, value) in labels.iter().filter(|(name, _)| *name != METRIC_NAME) {
            postings
                .entry(name.to_owned())
                .or_default()
                .entry(value.to_owned())
                .or_default()
                .push(labels.clone());
        }
    }

    /// Keeps the series `keep` approves; returns how many went. Postings are rebuilt when any
    /// did (expiry is rare; appends are not).
    fn retain(&mut self, mut keep: impl FnMut(&mut Series) -> bool) -> usize {
        let before = self.series.len();
        self.series.retain(|_, series| keep(series));
        let removed = before - self.series.len();
        if removed > 0 {
            let series = &self.series;
            for values in self.postings.values_mut() {
                for list in values.values_mut() {
                    list.retain(|labels| series.contains_key(labels));
                }
                values.retain(|_, list| !list.is_empty());
            }
            self.postings.retain(|_, values| !values.is_empty());
        }
        removed
    }

    /// The shortest posting list among `matchers`' non-empty equality matchers, or `None` when
    /// there is none and every series must be tested.
    fn candidates(&self, matchers: &Matchers) -> Option<&[Labels]> {
        if !matchers.or_matchers.is_empty() {
            return None;
        }
        let mut best: Option<&[Labels]> = None;
        for matcher in &matchers.matchers {
            if matcher.name == METRIC_NAME
                || !matches!(matcher.op, MatchOp::Equal)
                || matcher.value.is_empty()
            {
                continue;
            }
            let list = self
                .postings
                .get(&matcher.name)
                .and_then(|values| values.get(&matcher.value))
                .map_or(&[][..], Vec::as_slice);
            if best.is_none_or(|current| list.len() < current.len()) {
                best = Some(list);
            }
        }
        best
    }
}

/// One selected series with its samples in the asked window, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// Whether an append is new traffic (checked against the limits and the out-of-order window)
/// or the WAL being replayed (everything it holds was accepted once and is taken again).
#[derive(Debug, Clone, Copy)]
pub enum AppendMode {
    Live { now_ms: i64 },
    Replay,
}

/// What an append stored and refused.
#[derive(Debug, Default)]
pub struct AppendOutcome {
    pub stored: usize,
    pub duplicates: usize,
    pub out_of_order: usize,
    pub conflicts: usize,
    pub too_old: usize,
    pub series_limited: usize,
    /// Exactly the stored samples, by series.
    pub accepted: Vec<SeriesSamples>,
    /// The first refused series with its reason, for the error message.
    pub first_refusal: Option<String>,
}

impl AppendOutcome {
    fn note(&mut self, labels: &Labels, reason: &str) {
        if self.first_refusal.is_none() {
            self.first_refusal = Some(format!("{reason}: {labels}"));
        }
    }

    pub fn refused(&self) -> usize {
        self.out_of_order + self.conflicts + self.too_old + self.series_limited
    }
}

#[derive(Default)]
pub struct StoreCounters {
    pub samples_appended: AtomicU64,
    pub samples_out_of_order: AtomicU64,
    pub series_refused: AtomicU64,
    /// Metric blocks cut from closed ranges (compaction's day blocks not counted).
    pub blocks_written: AtomicU64,
    pub exemplars_appended: AtomicU64,
    /// Out of order, duplicate, too long, or storage off.
    pub exemplars_refused: AtomicU64,
}

pub struct Store {
    config: StoreConfig,
    /// What senders said each metric family is (`/api/v1/metadata`).
    pub metadata: crate::metadata::MetadataStore,
    /// Traced examples of samples (`/api/v1/query_exemplars`).
    pub exemplars: crate::exemplars::ExemplarStore,
    min_valid_ms: AtomicI64,
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
        let families: Vec<&Family> = match exact_name(matchers) {
            Some(name) => state.by_name.get(name).into_iter().collect(),
            None => state.by_name.values().collect(),
        };
        for family in families {
            let mut consider = |labels: &'s Labels, series: &'s Series| {
                if matches(matchers, labels) && series.overlaps(start, end) && seen.insert(labels) {
                    each(labels, series);
                }
            };
            match family.candidates(matchers) {
                Some(posted) => {
                    for labels in posted {
                        if let Some(series) = family.series.get(labels) {
                            consider(labels, series);
                        }
                    }
                }
                None => {
                    for (labels, series) in &family.series {
                        consider(labels, series);
                    }
                }
            }
        }
    }
}

impl Store {
    pub fn new(config: StoreConfig) -> Store {
        Store {
            exemplars: crate::exemplars::ExemplarStore::new(config.max_exemplars_per_tenant),
            config,
            metadata: Default::default(),
            min_valid_ms: AtomicI64::new(i64::MIN),
            tenants: RwLock::default(),
            counters: StoreCounters::default(),
        }
    }

    fn tenant(&self, tenant: &str) -> Option<Arc<RwLock<TenantSeries>>> {
        self.tenants.read().get(tenant).cloned()
    }

    /// Appends samples of series that arrive in time order (the generator's); returns how many
    /// were stored.
    pub fn append(
        &self,
        tenant: &str,
        samples: impl IntoIterator<Item = (Labels, i64, f64)>,
    ) -> usize {
        let series = samples.into_iter().map(|(labels, t, value)| SeriesSamples {
            labels,
            samples: vec![(t, value)],
        });
        self.append_series(tenant, series, AppendMode::Live { now_ms: i64::MIN })
            .stored
    }

    /// Appends whole series, deciding for every sample under the tenant's lock; the outcome
    /// lists exactly what was stored, so the caller can log that and nothing else.
    pub fn append_series(
        &self,
        tenant: &str,
        batch: impl IntoIterator<Item = SeriesSamples>,
        mode: AppendMode,
    ) -> AppendOutcome {
        let state = self
            .tenants
            .write()
            .entry(tenant.to_owned())
            .or_default()
            .clone();
        let (window_ms, oldest_allowed, limit_series) = match mode {
            AppendMode::Live { now_ms } => (
                self.config.out_of_order_window_ms,
                self.min_valid_ms
                    .load(Ordering::Relaxed)
                    .max(now_ms.saturating_sub(self.retention_of(tenant))),
                true,
            ),
            AppendMode::Replay => (i64::MAX, i64::MIN, false),
        };
        let mut state = state.write();
        let mut outcome = AppendOutcome::default();
        let max_series = self.config.max_series_per_tenant;
        // Counts a new series in, or refuses it past the tenant's limit.
        let admit = |count: &mut usize, outcome: &mut AppendOutcome, labels: &Labels, samples| {
            if limit_series && *count >= max_series {
                outcome.series_limited += samples;
                outcome.note(labels, "series limit");
                return false;
            }
            *count += 1;
            true
        };
        let TenantSeries { by_name, count } = &mut *state;
        for SeriesSamples { labels, samples } in batch {
            // One hash of the label set per series, in the common case of a series already held.
            let name = labels.metric_name().unwrap_or("");
            let series = match by_name.get_mut(name) {
                Some(family) => {
                    let Family { series, postings } = family;
                    match series.entry(labels.clone()) {
                        Entry::Occupied(held) => held.into_mut(),
                        Entry::Vacant(new) => {
                            if !admit(count, &mut outcome, &labels, samples.len()) {
                                continue;
                            }
                            Family::post(postings, &labels);
                            new.insert(Series::default())
                        }
                    }
                }
                None => {
                    if !admit(count, &mut outcome, &labels, samples.len()) {
                        continue;
                    }
                    let family = by_name.entry(name.to_owned()).or_default();
                    Family::post(&mut family.postings, &labels);
                    family.series.entry(labels.clone()).or_default()
                }
            };
            let mut stored = Vec::new();
            for (t, value) in samples {
                if t < oldest_allowed {
                    outcome.too_old += 1;
                    outcome.note(&labels, "too old");
                    continue;
                }
                match series.append(t, value, window_ms) {
                    Appended::Stored => stored.push((t, value)),
                    Appended::Duplicate => outcome.duplicates += 1,
                    Appended::Conflict => {
                        outcome.conflicts += 1;
                        outcome.note(&labels, "duplicate timestamp");
                    }
                    Appended::OutOfOrder => {
                        outcome.out_of_order += 1;
                        outcome.note(&labels, "out of order");
                    }
                }
            }
            if !stored.is_empty() {
                outcome.stored += stored.len();
                outcome.accepted.push(SeriesSamples {
                    labels,
                    samples: stored,
                });
            }
        }
        drop(state);
        let counters = &self.counters;
        counters
            .samples_appended
            .fetch_add(outcome.stored as u64, Ordering::Relaxed);
        counters.samples_out_of_order.fetch_add(
            (outcome.out_of_order + outcome.conflicts + outcome.too_old) as u64,
            Ordering::Relaxed,
        );
        counters
            .series_refused
            .fetch_add(outcome.series_limited as u64, Ordering::Relaxed);
        outcome
    }

    /// The newest sample of one series, if the store holds it.
    pub fn last_sample(&self, tenant: &str, labels: &Labels) -> Option<(i64, f64)> {
        let state = self.tenant(tenant)?;
        let state = state.read();
        let series = state
            .by_name
            .get(labels.metric_name().unwrap_or(""))?
            .get(labels)?;
        let newest = series.last_t()?;
        series.samples(newest, newest).pop()
    }

    /// Returns once every append that started before the call has finished (each tenant's
    /// write lock taken and released once).
    pub fn barrier(&self) {
        let tenants: Vec<_> = self.tenants.read().values().cloned().collect();
        for state in tenants {
            drop(state.write());
        }
    }

    /// From now on, samples older than `min_valid_ms` are refused (they are persisted, or
    /// would be behind a persisted range).
    pub fn raise_min_valid(&self, min_valid_ms: i64) {
        self.min_valid_ms.fetch_max(min_valid_ms, Ordering::Relaxed);
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

    /// How long `tenant`'s samples are kept.
    pub fn retention_of(&self, tenant: &str) -> i64 {
        self.config
            .retention_per_tenant_ms
            .get(tenant)
            .copied()
            .unwrap_or(self.config.retention_ms)
    }

    pub fn out_of_order_window_ms(&self) -> i64 {
        self.config.out_of_order_window_ms
    }

    /// Every tenant holding series.
    pub fn tenant_ids(&self) -> Vec<String> {
        self.tenants.read().keys().cloned().collect()
    }

    /// The label sets of `tenant`'s series with samples in `[start_ms, end_ms)`, sorted.
    pub fn series_in_range(&self, tenant: &str, start_ms: i64, end_ms: i64) -> Vec<Labels> {
        let mut labels = self.series(tenant, &[], start_ms, end_ms - 1);
        labels.sort();
        labels
    }

    /// The samples in `[start_ms, end_ms)` of each of `labels` (empty for a series gone since),
    /// read under one short lock per call: callers page through a tenant's series.
    pub fn samples_in_range(
        &self,
        tenant: &str,
        labels: &[Labels],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<Vec<(i64, f64)>> {
        let Some(state) = self.tenant(tenant) else {
            return vec![Vec::new(); labels.len()];
        };
        let state = state.read();
        labels
            .iter()
            .map(|labels| {
                state
                    .by_name
                    .get(labels.metric_name().unwrap_or(""))
                    .and_then(|family| family.get(labels))
                    .map(|series| series.samples(start_ms, end_ms - 1))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The oldest sample time over every tenant, if any.
    pub fn min_time(&self) -> Option<i64> {
        let tenants = self.tenants.read();
        tenants
            .values()
            .filter_map(|state| {
                let state = state.read();
                state
                    .by_name
                    .values()
                    .flat_map(|family| family.values())
                    .filter_map(Series::first_t)
                    .min()
            })
            .min()
    }

    /// Drops samples older than each tenant's retention, and series left empty.
    pub fn expire(&self, now_ms: i64) {
        for (tenant, state) in self.tenants.read().iter() {
            let cutoff = now_ms - self.retention_of(tenant);
            let mut state = state.write();
            let mut removed = 0;
            for family in state.by_name.values_mut() {
                removed += family.retain(|series| !series.expire(cutoff));
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
    fn the_series_limit_refuses_new_series_of_new_and_known_metrics_and_keeps_the_held_ones() {
        let store = Store::new(StoreConfig {
            max_series_per_tenant: 2,
            ..StoreConfig::default()
        });
        let push = |labels: Labels, t: i64| {
            store.append_series(
                "t",
                [SeriesSamples {
                    labels,
                    samples: vec![(t, 1.0)],
                }],
                AppendMode::Live { now_ms: t },
            )
        };
        assert_eq!(push(series("x", "a"), 1_000).stored, 1);
        assert_eq!(push(series("x", "b"), 1_000).stored, 1);
        // A third series of a metric the store holds, and one of a metric it does not.
        let known_metric = push(series("x", "c"), 1_000);
        let new_metric = push(series("y", "a"), 1_000);
        assert_eq!(
            (known_metric.series_limited, new_metric.series_limited),
            (1, 1)
        );
        assert_eq!(
            new_metric.first_refusal.as_deref(),
            Some("series limit: y{service=\"a\"}")
        );
        // Held series still take samples, and the refused ones left nothing behind.
        assert_eq!(push(series("x", "a"), 2_000).stored, 1);
        assert_eq!(store.totals().0, 2);
        assert!(store.select("t", &[&selector("y")], 0, 10_000).is_empty());
        assert_eq!(store.select("t", &[&selector("x")], 0, 10_000).len(), 2);
    }

    #[test]
    fn posting_lists_answer_exactly_what_a_full_scan_would() {
        let store = Store::new(StoreConfig::default());
        let labelled = |pairs: &[(&str, &str)]| {
            Labels::new(std::iter::once(("__name__", "up")).chain(pairs.iter().copied()))
        };
        let all = [
            labelled(&[("job", "a"), ("instance", "1")]),
            labelled(&[("job", "a"), ("instance", "2")]),
            labelled(&[("job", "b"), ("instance", "1")]),
            labelled(&[("instance", "3")]),
        ];
        store.append("t", all.iter().map(|labels| (labels.clone(), 1_000, 1.0)));
        let names =
            |query: &str| -> Vec<Labels> { store.series("t", &[&selector(query)], 0, i64::MAX) };
        for (query, expected) in [
            (r#"up{job="a"}"#, vec![all[1].clone(), all[0].clone()]),
            (r#"up{job="a", instance="1"}"#, vec![all[0].clone()]),
            (r#"up{job="c"}"#, vec![]),
            (r#"up{job=""}"#, vec![all[3].clone()]),
            (
                r#"up{job!="a", instance=~"1|3"}"#,
                vec![all[2].clone(), all[3].clone()],
            ),
        ] {
            let mut expected = expected;
            expected.sort();
            assert_eq!(names(query), expected, "{query}");
        }
        // Expiry takes series out of the postings; a series created again is found again.
        store.append("t", [(all[2].clone(), 10_000_000, 1.0)]);
        store.expire(1_000 + store.retention_of("t") + 1);
        assert_eq!(names(r#"up{job="a"}"#), Vec::<Labels>::new());
        assert_eq!(names(r#"up{instance="1"}"#), vec![all[2].clone()]);
        store.append("t", [(all[0].clone(), 20_000_000, 1.0)]);
        assert_eq!(names(r#"up{job="a"}"#), vec![all[0].clone()]);
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
            out_of_order_window_ms: 0,
            ..StoreConfig::default()
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

    fn one(labels: Labels, samples: &[(i64, f64)]) -> SeriesSamples {
        SeriesSamples {
            labels,
            samples: samples.to_vec(),
        }
    }

    #[test]
    fn late_samples_within_the_window_are_merged_into_reads_and_chunks() {
        let store = Store::new(StoreConfig {
            out_of_order_window_ms: 1_000_000,
            ..StoreConfig::default()
        });
        let live = AppendMode::Live { now_ms: 2_000_000 };
        // Even timestamps in order, then the odd ones late: every odd one lands, across chunk
        // boundaries, and reads come back in time order.
        let even: Vec<(i64, f64)> = (0..400).map(|i| (i * 2000, i as f64)).collect();
        let odd: Vec<(i64, f64)> = (0..399).map(|i| (i * 2000 + 1000, -(i as f64))).collect();
        let outcome = store.append_series("t", [one(series("m", "a"), &even)], live);
        assert_eq!(outcome.stored, 400);
        let outcome = store.append_series("t", [one(series("m", "a"), &odd)], live);
        assert_eq!(outcome.stored, 399);
        let read = store.select("t", &[&selector("m")], 0, i64::MAX);
        let mut expected: Vec<(i64, f64)> = even.iter().chain(&odd).copied().collect();
        expected.sort_by_key(|s| s.0);
        assert_eq!(read[0].samples, expected);
        // The same sample again is a silent duplicate; another value at that time a conflict.
        let outcome = store.append_series(
            "t",
            [one(series("m", "a"), &[(1000, -0.0), (3000, 5.0)])],
            live,
        );
        assert_eq!(
            (outcome.stored, outcome.duplicates, outcome.conflicts),
            (0, 1, 1)
        );
        assert!(outcome
            .first_refusal
            .expect("noted")
            .contains("duplicate timestamp"));
    }

    #[test]
    fn too_old_and_beyond_the_window_are_refused_but_replay_takes_everything() {
        let store = Store::new(StoreConfig {
            retention_ms: 100_000,
            out_of_order_window_ms: 10_000,
            ..StoreConfig::default()
        });
        let live = AppendMode::Live { now_ms: 200_000 };
        let outcome = store.append_series("t", [one(series("m", "a"), &[(150_000, 1.0)])], live);
        assert_eq!(outcome.stored, 1);
        let outcome = store.append_series(
            "t",
            [one(
                series("m", "a"),
                &[(50_000, 1.0), (120_000, 2.0), (145_000, 3.0)],
            )],
            live,
        );
        assert_eq!(
            (outcome.too_old, outcome.out_of_order, outcome.stored),
            (1, 1, 1)
        );
        let outcome = store.append_series(
            "t",
            [one(series("m", "a"), &[(50_000, 1.0), (120_000, 2.0)])],
            AppendMode::Replay,
        );
        assert_eq!(outcome.stored, 2);
        store.raise_min_valid(160_000);
        let outcome = store.append_series("t", [one(series("m", "b"), &[(155_000, 1.0)])], live);
        assert_eq!(outcome.too_old, 1);
    }
}
