//! Folding spans into per-series, per-interval aggregates, and turning them into series.

use std::collections::{BTreeSet, HashMap};

use crate::ast::{SpanKind, StatusCode};
use crate::eval::{evaluate, matches, resolve};
use crate::trace::TraceView;
use crate::value::Value;

use super::{Compare, MetricsFunction, MetricsQuery, SecondStage};

/// A label value of a series, typed as in Tempo's JSON (`stringValue`, `intValue`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelValue {
    Nil,
    String(String),
    Int(i64),
    /// The bits of an `f64`, so the key is hashable; see [`LabelValue::float`].
    Float(u64),
    Bool(bool),
}

impl LabelValue {
    pub fn float(value: f64) -> LabelValue {
        LabelValue::Float(value.to_bits())
    }

    pub fn of(value: &Value<'_>) -> LabelValue {
        match value {
            Value::Nil | Value::Array(_) | Value::Multi(_) => LabelValue::Nil,
            Value::Bool(flag) => LabelValue::Bool(*flag),
            Value::Int(number) | Value::Duration(number) => LabelValue::Int(*number),
            Value::Float(number) => LabelValue::float(*number),
            Value::Str(text) => LabelValue::String(text.to_string()),
            Value::Status(status) => LabelValue::String(status.name().to_owned()),
            Value::Kind(kind) => LabelValue::String(kind.name().to_owned()),
        }
    }
}

/// The intervals of a query: `count` intervals `(T − step, T]` with `T = first + k · step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    pub first_nanos: u64,
    pub step_nanos: u64,
    pub count: usize,
}

impl Intervals {
    /// A range query from `start` to `end` at `step`, intervals labelled by their ends.
    pub fn range(start_nanos: u64, end_nanos: u64, step_nanos: u64) -> Intervals {
        let step = step_nanos.max(1);
        let first = start_nanos.div_ceil(step) * step;
        let last = end_nanos.div_ceil(step) * step;
        Intervals {
            first_nanos: first,
            step_nanos: step,
            count: ((last.saturating_sub(first)) / step) as usize + 1,
        }
    }

    /// An instant query: the one interval `(start, end]`.
    pub fn instant(start_nanos: u64, end_nanos: u64) -> Intervals {
        Intervals {
            first_nanos: end_nanos,
            step_nanos: end_nanos.saturating_sub(start_nanos).max(1),
            count: 1,
        }
    }

    /// The interval holding `t`, if any.
    #[inline]
    pub fn index(&self, t_nanos: u64) -> Option<usize> {
        let earliest = self.first_nanos.saturating_sub(self.step_nanos);
        if t_nanos <= earliest && self.first_nanos >= self.step_nanos {
            return None;
        }
        let k = t_nanos
            .saturating_sub(self.first_nanos)
            .div_ceil(self.step_nanos) as usize;
        (k < self.count).then_some(k)
    }

    /// `index` for many spans in a row: the division by the step becomes a multiplication
    /// (a 64-bit division was a quarter of a columnar `rate()` fold).
    pub fn indexer(&self) -> IntervalIndex {
        IntervalIndex {
            intervals: *self,
            inverse: 1.0 / self.step_nanos.max(1) as f64,
        }
    }

    /// The time window to read: every span that can fall into an interval.
    pub fn window(&self) -> (u64, u64) {
        (
            self.first_nanos.saturating_sub(self.step_nanos) + 1,
            self.first_nanos + self.step_nanos * (self.count as u64 - 1),
        )
    }

    pub fn end_millis(&self, k: usize) -> i64 {
        ((self.first_nanos + self.step_nanos * k as u64) / 1_000_000) as i64
    }
}

/// A span that stands for an interval's value: Grafana links it to its trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub timestamp_ms: i64,
    /// The span's own value for `*_over_time`; for counts the interval's value replaces it.
    pub value: f64,
}

/// One series' aggregates, a slot per interval. Public so that an accumulator can travel
/// between processes (a querier's block fold to its query-frontend); `Accumulator::from_series`
/// checks the shapes of what arrives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesAcc {
    pub count: Vec<f64>,
    /// Empty unless the function reads it (see `SeriesAcc::new`).
    pub sum: Vec<f64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    /// Every value per interval (`quantile_over_time`), else empty.
    pub values: Vec<Vec<f64>>,
    /// At most one exemplar per interval (empty when exemplars are off), so they spread over time.
    pub exemplars: Vec<Option<Exemplar>>,
}

impl SeriesAcc {
    /// Only the aggregates `function` reads get a slot per interval (a counting query then
    /// adds one number per span, not four); the others stay empty, and `add` and `merge`
    /// skip them.
    fn new(intervals: usize, function: &MetricsFunction, exemplars: bool) -> SeriesAcc {
        let sized = |wanted: bool, fill: f64| {
            if wanted {
                vec![fill; intervals]
            } else {
                Vec::new()
            }
        };
        let sums = matches!(
            function,
            MetricsFunction::SumOverTime(_) | MetricsFunction::AvgOverTime(_)
        );
        SeriesAcc {
            count: vec![0.0; intervals],
            sum: sized(sums, 0.0),
            min: sized(
                matches!(function, MetricsFunction::MinOverTime(_)),
                f64::NAN,
            ),
            max: sized(
                matches!(function, MetricsFunction::MaxOverTime(_)),
                f64::NAN,
            ),
            values: if matches!(function, MetricsFunction::QuantileOverTime(..)) {
                vec![Vec::new(); intervals]
            } else {
                Vec::new()
            },
            exemplars: if exemplars {
                vec![None; intervals]
            } else {
                Vec::new()
            },
        }
    }

    #[inline]
    fn add(&mut self, k: usize, value: f64) {
        self.count[k] += 1.0;
        if let Some(sum) = self.sum.get_mut(k) {
            *sum += value;
        }
        self.widen(k, value, value);
        if let Some(values) = self.values.get_mut(k) {
            values.push(value);
        }
    }

    /// Takes values from `least` to `most` into interval `k`'s minimum and maximum.
    #[inline]
    fn widen(&mut self, k: usize, least: f64, most: f64) {
        if let Some(min) = self.min.get_mut(k) {
            if min.is_nan() || least < *min {
                *min = least;
            }
        }
        if let Some(max) = self.max.get_mut(k) {
            if max.is_nan() || most > *max {
                *max = most;
            }
        }
    }

    fn merge(&mut self, other: SeriesAcc) {
        // Accumulators of one query have the same intervals; zipping keeps a mismatch from
        // indexing out of bounds.
        for (mine, theirs) in self.count.iter_mut().zip(&other.count) {
            *mine += theirs;
        }
        for (mine, theirs) in self.sum.iter_mut().zip(&other.sum) {
            *mine += theirs;
        }
        for (mine, theirs) in self.min.iter_mut().zip(&other.min) {
            if !theirs.is_nan() && (mine.is_nan() || theirs < mine) {
                *mine = *theirs;
            }
        }
        for (mine, theirs) in self.max.iter_mut().zip(&other.max) {
            if !theirs.is_nan() && (mine.is_nan() || theirs > mine) {
                *mine = *theirs;
            }
        }
        for (mine, theirs) in self.values.iter_mut().zip(other.values) {
            // Blocks mostly cover different intervals: take the other's values without copying.
            if mine.is_empty() {
                *mine = theirs;
            } else {
                mine.extend(theirs);
            }
        }
        for (mine, theirs) in self.exemplars.iter_mut().zip(other.exemplars) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
    }
}

/// One output series: labels in order, then one optional sample per interval (`None`: no
/// sample at that timestamp; `Some(0.0)` is a sample Tempo writes without a `value`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSeries {
    pub labels: Vec<(String, LabelValue)>,
    pub samples: Vec<Option<f64>>,
    pub exemplars: Vec<Exemplar>,
}

/// [`Intervals::index`] with the step's inverse computed once; always the same answer.
#[derive(Debug, Clone, Copy)]
pub struct IntervalIndex {
    intervals: Intervals,
    inverse: f64,
}

impl IntervalIndex {
    #[inline]
    pub fn index(&self, t_nanos: u64) -> Option<usize> {
        let Intervals {
            first_nanos,
            step_nanos,
            count,
        } = self.intervals;
        let step = step_nanos.max(1);
        let earliest = first_nanos.saturating_sub(step);
        if t_nanos <= earliest && first_nanos >= step {
            return None;
        }
        let offset = t_nanos.saturating_sub(first_nanos);
        // An estimate of offset / step that rounding can leave one off either way: corrected
        // with exact integer products, then rounded up as `div_ceil` does.
        let mut quotient = (offset as f64 * self.inverse) as u64;
        while quotient > 0 && quotient.saturating_mul(step) > offset {
            quotient -= 1;
        }
        while (quotient + 1)
            .checked_mul(step)
            .is_some_and(|next| next <= offset)
        {
            quotient += 1;
        }
        let k = quotient + u64::from(quotient * step != offset);
        (k < count as u64).then_some(k as usize)
    }
}

/// Folds traces into per-series, per-interval aggregates.
#[derive(Debug, Clone)]
pub struct Accumulator {
    pub intervals: Intervals,
    /// Series in order of first appearance, found by label values through `index`.
    series: Vec<(Vec<LabelValue>, SeriesAcc)>,
    index: HashMap<Vec<LabelValue>, usize, ahash::RandomState>,
    pub spans_counted: u64,
    /// Most exemplars in the answer; 0 turns them off.
    max_exemplars: usize,
    /// Most series kept (bounds memory: each holds a slot per interval); spans of further
    /// series are not counted and `truncated` says so.
    max_series: usize,
    /// Whether a series was refused by `max_series`: the answer is incomplete.
    pub truncated: bool,
}

/// A span's value for the function's field as a number: durations in seconds.
fn numeric(value: &Value<'_>) -> Option<f64> {
    match value {
        Value::Int(number) => Some(*number as f64),
        Value::Float(number) => Some(*number),
        Value::Duration(nanos) => Some(*nanos as f64 / 1e9),
        _ => None,
    }
}

/// `histogram_over_time`'s bucket: the next power of two at or above the value, in the field's
/// native unit (nanoseconds for durations), reported in seconds for durations.
pub fn log2_bucket(value: &Value<'_>) -> Option<f64> {
    let (raw, to_seconds) = match value {
        Value::Duration(nanos) => (*nanos as f64, true),
        Value::Int(number) => (*number as f64, false),
        Value::Float(number) => (*number, false),
        _ => return None,
    };
    if raw <= 0.0 {
        return Some(0.0);
    }
    let bound = 2f64.powi(raw.log2().ceil() as i32);
    Some(if to_seconds { bound / 1e9 } else { bound })
}

impl Accumulator {
    pub fn new(intervals: Intervals) -> Accumulator {
        Accumulator {
            intervals,
            series: Vec::new(),
            index: HashMap::default(),
            spans_counted: 0,
            max_exemplars: 0,
            max_series: usize::MAX,
            truncated: false,
        }
    }

    /// An accumulator made of series folded elsewhere (another process), checked: every
    /// series has a count per interval, each other aggregate none or one per interval, and no
    /// two series have the same labels. Merging it is then as safe as merging a local one.
    pub fn from_series(
        intervals: Intervals,
        series: Vec<(Vec<LabelValue>, SeriesAcc)>,
        spans_counted: u64,
        truncated: bool,
    ) -> Result<Accumulator, String> {
        let n = intervals.count;
        let mut accumulator = Accumulator::new(intervals);
        accumulator.spans_counted = spans_counted;
        accumulator.truncated = truncated;
        for (at, (key, acc)) in series.into_iter().enumerate() {
            let shaped = |len: usize| len == 0 || len == n;
            if acc.count.len() != n
                || !shaped(acc.sum.len())
                || !shaped(acc.min.len())
                || !shaped(acc.max.len())
                || !shaped(acc.values.len())
                || !shaped(acc.exemplars.len())
            {
                return Err(format!(
                    "series {at} does not have one slot per interval ({n} intervals)"
                ));
            }
            if accumulator.index.contains_key(&key) {
                return Err(format!("series {at} repeats the labels of an earlier one"));
            }
            accumulator
                .index
                .insert(key.clone(), accumulator.series.len());
            accumulator.series.push((key, acc));
        }
        Ok(accumulator)
    }

    /// Whether every series has exactly the aggregates an accumulator for `function` (keeping
    /// exemplars or not) builds (`SeriesAcc::new`): `finish` reads them by interval, so an
    /// accumulator from elsewhere with another shape is refused before it is merged.
    pub fn check_shape(&self, function: &MetricsFunction, exemplars: bool) -> Result<(), String> {
        let expected = SeriesAcc::new(self.intervals.count, function, exemplars);
        let lengths = |acc: &SeriesAcc| {
            [
                acc.count.len(),
                acc.sum.len(),
                acc.min.len(),
                acc.max.len(),
                acc.values.len(),
                acc.exemplars.len(),
            ]
        };
        match self
            .series
            .iter()
            .position(|(_, acc)| lengths(acc) != lengths(&expected))
        {
            None => Ok(()),
            Some(at) => Err(format!(
                "series {at} does not hold the aggregates `{}` needs",
                function.name()
            )),
        }
    }

    /// The series in order of first appearance, with their label values.
    pub fn series(&self) -> &[(Vec<LabelValue>, SeriesAcc)] {
        &self.series
    }

    /// Keeps at most `max` series (see `truncated`).
    pub fn with_max_series(mut self, max: usize) -> Accumulator {
        self.max_series = max;
        self
    }

    /// Also keeps up to `max` exemplars (one per series and interval at most).
    pub fn with_exemplars(mut self, max: usize) -> Accumulator {
        self.max_exemplars = max;
        self
    }

    /// Whether spans' trace IDs are kept (as exemplars); scans skip reading them when not.
    pub fn keeps_exemplars(&self) -> bool {
        self.max_exemplars > 0
    }

    /// Evaluates the query's spanset part over one trace and counts every matching span.
    pub fn observe(&mut self, query: &MetricsQuery, trace: &TraceView<'_>) {
        let mut matched = BTreeSet::new();
        for spanset in evaluate(&query.search, trace) {
            matched.extend(spanset.spans);
        }
        if let MetricsFunction::Compare(compare) = &query.function {
            for index in matched {
                self.observe_compare(compare, query, trace, index);
            }
            return;
        }
        for index in matched {
            let span = trace.spans[index as usize].span;
            let Some(k) = self.intervals.index(span.start_time_unix_nano) else {
                continue;
            };
            let mut key: Vec<LabelValue> = query
                .by
                .iter()
                .map(|field| LabelValue::of(&resolve(field, trace, index)))
                .collect();
            let value = match &query.function {
                MetricsFunction::Rate | MetricsFunction::CountOverTime => 1.0,
                MetricsFunction::HistogramOverTime(field) => {
                    let Some(bucket) = log2_bucket(&resolve(field, trace, index)) else {
                        continue;
                    };
                    key.push(LabelValue::float(bucket));
                    1.0
                }
                function => {
                    let Some(field) = function.field() else {
                        continue;
                    };
                    let Some(value) = numeric(&resolve(field, trace, index)) else {
                        continue;
                    };
                    value
                }
            };
            let Some(series) = self.series_index(key, query) else {
                continue;
            };
            self.add_at(series, k, span.start_time_unix_nano, value, trace.trace_id);
        }
    }

    /// compare(): one count per attribute value of the span in its group, and one per attribute
    /// in the group's totals. Series keys are `[group, attribute, value]`.
    fn observe_compare(
        &mut self,
        compare: &Compare,
        query: &MetricsQuery,
        trace: &TraceView<'_>,
        index: u32,
    ) {
        let start = trace.spans[index as usize].span.start_time_unix_nano;
        let Some(k) = self.intervals.index(start) else {
            return;
        };
        let in_window = compare
            .window
            .is_none_or(|(from, to)| start >= from && start < to);
        let selected = in_window
            && compare
                .filter
                .as_ref()
                .is_none_or(|filter| matches(filter, trace, index));
        let (group, total) = if selected {
            (COMPARE_SELECTION, COMPARE_SELECTION_TOTAL)
        } else {
            (COMPARE_BASELINE, COMPARE_BASELINE_TOTAL)
        };
        self.spans_counted += 1;
        // Key buffers per span: lookups borrow them, only a new series copies one.
        let mut value_key = [
            LabelValue::String(group.to_owned()),
            LabelValue::Nil,
            LabelValue::Nil,
        ];
        let mut total_key = [
            LabelValue::String(total.to_owned()),
            LabelValue::Nil,
            LabelValue::Nil,
        ];
        for (name, value) in compared_attributes(trace, index) {
            total_key[1] = LabelValue::String(name.clone());
            value_key[1] = LabelValue::String(name);
            value_key[2] = value;
            if let Some(value_series) = self.series_slot(&value_key, query) {
                self.count_at(value_series, k, start, 1.0, trace.trace_id);
            }
            if let Some(total_series) = self.series_slot(&total_key, query) {
                self.count_at(total_series, k, start, 1.0, trace.trace_id);
            }
        }
    }

    /// `series_index` for a borrowed key, copied only when the series is new.
    pub fn series_slot(&mut self, key: &[LabelValue], query: &MetricsQuery) -> Option<usize> {
        match self.index.get(key) {
            Some(&index) => Some(index),
            None => self.series_index(key.to_vec(), query),
        }
    }

    /// The slot of the series with these label values (the `by` values, then the histogram
    /// bucket for `histogram_over_time`), created on first use. For storage layers that
    /// compute label values themselves (columnar scans). `None` when a new series would pass
    /// the series limit (the accumulator is then `truncated`).
    pub fn series_index(&mut self, key: Vec<LabelValue>, query: &MetricsQuery) -> Option<usize> {
        if let Some(&index) = self.index.get(&key) {
            return Some(index);
        }
        if self.series.len() >= self.max_series {
            self.truncated = true;
            return None;
        }
        let series = SeriesAcc::new(
            self.intervals.count,
            &query.function,
            self.max_exemplars > 0,
        );
        self.series.push((key.clone(), series));
        self.index.insert(key, self.series.len() - 1);
        Some(self.series.len() - 1)
    }

    /// Whether a span counted in interval `k` of series `series` would become its exemplar
    /// (so a columnar fold looks its trace up only then).
    #[inline]
    pub fn wants_exemplar(&self, series: usize, k: usize) -> bool {
        self.series
            .get(series)
            .is_some_and(|(_, acc)| matches!(acc.exemplars.get(k), Some(None)))
    }

    /// Counts one span with start `start_nanos` and value `value` (1 for counting functions,
    /// the field's number otherwise) in interval `k` of series `series`.
    #[inline]
    pub fn add_at(
        &mut self,
        series: usize,
        k: usize,
        start_nanos: u64,
        value: f64,
        trace_id: [u8; 16],
    ) {
        self.spans_counted += 1;
        self.count_at(series, k, start_nanos, value, trace_id);
    }

    /// compare() over columns: one span looked at (its attribute values are counted with
    /// [`Accumulator::count_compared`]), as `observe` counts it.
    pub fn note_compared_span(&mut self) {
        self.spans_counted += 1;
    }

    /// compare() over columns: one attribute value (or group total) of a span, in interval
    /// `k` of the series `series_slot` gave for its `[group, attribute, value]` key.
    #[inline]
    pub fn count_compared(
        &mut self,
        series: usize,
        k: usize,
        start_nanos: u64,
        trace_id: [u8; 16],
    ) {
        self.count_at(series, k, start_nanos, 1.0, trace_id);
    }

    /// Counts `n` spans of value 1 in interval `k` of series `series` at once, with no
    /// exemplar: a columnar fold of a counting function adds its spans this way.
    pub fn add_ones(&mut self, series: usize, k: usize, n: u64) {
        self.spans_counted += n;
        let series = &mut self.series[series].1;
        series.count[k] += n as f64;
        if let Some(sum) = series.sum.get_mut(k) {
            *sum += n as f64;
        }
        series.widen(k, 1.0, 1.0);
        if let Some(values) = series.values.get_mut(k) {
            values.extend(std::iter::repeat_n(1.0, n as usize));
        }
    }

    /// Counts spans whose values are `ascending` in interval `k` of series `series` at once,
    /// with no exemplar: the same aggregates as one [`Accumulator::add_at`] per value (a sum
    /// may differ in its last bits, being added in another order).
    pub fn add_ascending(&mut self, series: usize, k: usize, ascending: &[f64]) {
        let (Some(&least), Some(&most)) = (ascending.first(), ascending.last()) else {
            return;
        };
        self.spans_counted += ascending.len() as u64;
        let series = &mut self.series[series].1;
        series.count[k] += ascending.len() as f64;
        if let Some(sum) = series.sum.get_mut(k) {
            *sum += ascending.iter().sum::<f64>();
        }
        series.widen(k, least, most);
        if let Some(values) = series.values.get_mut(k) {
            values.extend_from_slice(ascending);
        }
    }

    #[inline]
    fn count_at(
        &mut self,
        series: usize,
        k: usize,
        start_nanos: u64,
        value: f64,
        trace_id: [u8; 16],
    ) {
        let series = &mut self.series[series].1;
        series.add(k, value);
        if let Some(slot @ None) = series.exemplars.get_mut(k) {
            *slot = Some(Exemplar {
                trace_id,
                timestamp_ms: (start_nanos / 1_000_000) as i64,
                value,
            });
        }
    }

    pub fn merge(&mut self, other: Accumulator) {
        debug_assert_eq!(self.intervals, other.intervals);
        self.spans_counted += other.spans_counted;
        self.truncated |= other.truncated;
        for (key, series) in other.series {
            match self.index.get(&key) {
                Some(&index) => self.series[index].1.merge(series),
                None if self.series.len() >= self.max_series => self.truncated = true,
                None => {
                    self.index.insert(key.clone(), self.series.len());
                    self.series.push((key, series));
                }
            }
        }
    }

    /// The result series, sorted by labels, with the second stages applied.
    pub fn finish(self, query: &MetricsQuery) -> Vec<MetricsSeries> {
        if let MetricsFunction::Compare(compare) = &query.function {
            let mut out = self.finish_compare(compare.top_n);
            for stage in &query.second_stages {
                apply_stage(stage, &mut out);
            }
            return out;
        }
        let step_seconds = self.intervals.step_nanos as f64 / 1e9;
        let mut keys: Vec<(Vec<LabelValue>, SeriesAcc)> = self.series;
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (key, acc) in keys {
            let mut labels: Vec<(String, LabelValue)> = query
                .by
                .iter()
                .map(|f| f.to_string())
                .zip(key.iter().cloned())
                .collect();
            if query.by.is_empty()
                && !matches!(
                    query.function,
                    MetricsFunction::HistogramOverTime(_) | MetricsFunction::QuantileOverTime(..)
                )
            {
                labels.push((
                    "__name__".to_owned(),
                    LabelValue::String(query.function.name().to_owned()),
                ));
            }
            let per_interval =
                |f: &dyn Fn(usize) -> Option<f64>| (0..acc.count.len()).map(f).collect::<Vec<_>>();
            // Counting functions show the interval's value; the others the span's own value.
            let counting = matches!(
                query.function,
                MetricsFunction::Rate
                    | MetricsFunction::CountOverTime
                    | MetricsFunction::HistogramOverTime(_)
            );
            let exemplars_for = |samples: &[Option<f64>]| -> Vec<Exemplar> {
                acc.exemplars
                    .iter()
                    .enumerate()
                    .filter_map(|(k, e)| {
                        let mut e = (*e)?;
                        let value = samples.get(k).copied().flatten()?;
                        if counting {
                            e.value = value;
                        }
                        Some(e)
                    })
                    .collect()
            };
            if let MetricsFunction::HistogramOverTime(_) = query.function {
                labels.push((
                    "__bucket".to_owned(),
                    key.last().cloned().unwrap_or(LabelValue::Nil),
                ));
            }
            let samples = match &query.function {
                MetricsFunction::Rate => Some(per_interval(&|k| Some(acc.count[k] / step_seconds))),
                MetricsFunction::CountOverTime | MetricsFunction::HistogramOverTime(_) => {
                    Some(per_interval(&|k| Some(acc.count[k])))
                }
                MetricsFunction::SumOverTime(_) => Some(per_interval(&|k| {
                    (acc.count[k] > 0.0).then_some(acc.sum[k])
                })),
                MetricsFunction::AvgOverTime(_) => Some(per_interval(&|k| {
                    (acc.count[k] > 0.0).then(|| acc.sum[k] / acc.count[k])
                })),
                MetricsFunction::MinOverTime(_) => Some(per_interval(&|k| {
                    (!acc.min[k].is_nan()).then_some(acc.min[k])
                })),
                MetricsFunction::MaxOverTime(_) => Some(per_interval(&|k| {
                    (!acc.max[k].is_nan()).then_some(acc.max[k])
                })),
                // compare() was finished above.
                MetricsFunction::QuantileOverTime(..) | MetricsFunction::Compare(_) => None,
            };
            if let Some(samples) = samples {
                let exemplars = exemplars_for(&samples);
                out.push(MetricsSeries {
                    labels,
                    samples,
                    exemplars,
                });
                continue;
            }
            if let MetricsFunction::QuantileOverTime(_, quantiles) = &query.function {
                {
                    let first = out.len();
                    for &q in quantiles {
                        let mut labels = labels.clone();
                        labels.push(("p".to_owned(), LabelValue::float(q)));
                        let samples = (0..acc.count.len())
                            .map(|k| {
                                let mut values = acc.values[k].clone();
                                Some(if values.is_empty() {
                                    0.0
                                } else {
                                    quantile(q, &mut values)
                                })
                            })
                            .collect();
                        out.push(MetricsSeries {
                            labels,
                            samples,
                            exemplars: Vec::new(),
                        });
                    }
                    // Each exemplar goes to the one quantile series closest to it, as in Tempo.
                    for (k, exemplar) in acc.exemplars.iter().enumerate() {
                        let Some(exemplar) = exemplar else { continue };
                        let closest = out[first..]
                            .iter()
                            .enumerate()
                            .filter_map(|(i, s)| {
                                s.samples
                                    .get(k)
                                    .copied()
                                    .flatten()
                                    .map(|v| (i, (v - exemplar.value).abs()))
                            })
                            .min_by(|a, b| a.1.total_cmp(&b.1));
                        if let Some((i, _)) = closest {
                            out[first + i].exemplars.push(*exemplar);
                        }
                    }
                }
            }
        }
        for stage in &query.second_stages {
            apply_stage(stage, &mut out);
        }
        out.retain(|series| series.samples.iter().any(Option::is_some));
        if self.max_exemplars > 0 && !out.is_empty() {
            let per_series = (self.max_exemplars / out.len()).max(1);
            for series in &mut out {
                series.exemplars.retain(|e| e.value.is_finite());
                series.exemplars.truncate(per_series);
            }
        }
        out
    }
}

impl Accumulator {
    /// compare()'s series, as Tempo labels them: per group and attribute the `top_n` values
    /// with the highest total count (`{__meta_type="baseline|selection", <attribute>=<value>}`),
    /// per group and attribute the spans having it (`{__meta_type="…_total", <attribute>=nil}`),
    /// and `{__meta_error="__too_many_values__", <attribute>=nil}` with no samples for an
    /// attribute that had more values than `top_n` in either group.
    fn finish_compare(self, top_n: usize) -> Vec<MetricsSeries> {
        let text = |value: &LabelValue| match value {
            LabelValue::String(text) => text.clone(),
            _ => String::new(),
        };
        // (group, attribute) → its value series with their totals.
        let mut grouped: std::collections::BTreeMap<(String, String), Vec<CompareValue>> =
            Default::default();
        for (key, acc) in self.series {
            let [group, attribute, value] = <[LabelValue; 3]>::try_from(key).unwrap_or([
                LabelValue::Nil,
                LabelValue::Nil,
                LabelValue::Nil,
            ]);
            let total: f64 = acc.count.iter().sum();
            grouped
                .entry((text(&group), text(&attribute)))
                .or_default()
                .push((total, value, acc));
        }
        let mut out = Vec::new();
        let mut too_many: BTreeSet<String> = BTreeSet::new();
        for ((group, attribute), mut values) in grouped {
            if values.len() > top_n && (group == COMPARE_BASELINE || group == COMPARE_SELECTION) {
                too_many.insert(attribute.clone());
            }
            // Highest totals first; ties by value so the cut is deterministic.
            values.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            values.truncate(top_n);
            for (_, value, acc) in values {
                let samples = acc.count.iter().map(|count| Some(*count)).collect();
                let exemplars = acc
                    .exemplars
                    .iter()
                    .flatten()
                    .map(|e| Exemplar { value: 1.0, ..*e })
                    .collect();
                let labels = vec![
                    ("__meta_type".to_owned(), LabelValue::String(group.clone())),
                    (attribute.clone(), value),
                ];
                out.push(MetricsSeries {
                    labels,
                    samples,
                    exemplars,
                });
            }
        }
        for attribute in too_many {
            let labels = vec![
                (
                    "__meta_error".to_owned(),
                    LabelValue::String(COMPARE_TOO_MANY_VALUES.to_owned()),
                ),
                (attribute, LabelValue::Nil),
            ];
            out.push(MetricsSeries {
                labels,
                samples: Vec::new(),
                exemplars: Vec::new(),
            });
        }
        if self.max_exemplars > 0 && !out.is_empty() {
            let per_series = (self.max_exemplars / out.len()).max(1);
            for series in &mut out {
                series.exemplars.truncate(per_series);
            }
        }
        out
    }
}

/// One value series of compare(): its total count over the range, the value, the counts.
type CompareValue = (f64, LabelValue, SeriesAcc);

/// compare()'s `__meta_type` values and its error marker, as Tempo names them.
pub const COMPARE_BASELINE: &str = "baseline";
pub const COMPARE_SELECTION: &str = "selection";
pub const COMPARE_BASELINE_TOTAL: &str = "baseline_total";
pub const COMPARE_SELECTION_TOTAL: &str = "selection_total";
pub const COMPARE_TOO_MANY_VALUES: &str = "__too_many_values__";

/// What compare() groups a span by: its name, status, kind, non-empty status message, and
/// every resource and span attribute with a scalar value (labels named as in TraceQL).
fn compared_attributes(trace: &TraceView<'_>, index: u32) -> Vec<(String, LabelValue)> {
    let span = trace.spans[index as usize];
    let status = span.span.status.as_ref();
    let mut out = vec![
        (
            "name".to_owned(),
            LabelValue::String(span.span.name.clone()),
        ),
        (
            "status".to_owned(),
            LabelValue::String(
                StatusCode::from_otlp(status.map_or(0, |s| s.code))
                    .name()
                    .to_owned(),
            ),
        ),
        (
            "kind".to_owned(),
            LabelValue::String(SpanKind::from_otlp(span.span.kind).name().to_owned()),
        ),
    ];
    if let Some(message) = status.map(|s| s.message.as_str()).filter(|m| !m.is_empty()) {
        out.push((
            "statusMessage".to_owned(),
            LabelValue::String(message.to_owned()),
        ));
    }
    let scoped = |scope: &str,
                  attributes: &[andante_model::otlp::common::v1::KeyValue],
                  out: &mut Vec<(String, LabelValue)>| {
        for attribute in attributes {
            let Some(value) = attribute.value.as_ref() else {
                continue;
            };
            let value = LabelValue::of(&Value::from_any(value));
            if value != LabelValue::Nil {
                out.push((format!("{scope}.{}", attribute.key), value));
            }
        }
    };
    scoped(
        "resource",
        span.resource
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default(),
        &mut out,
    );
    scoped("span", &span.span.attributes, &mut out);
    out
}

/// Linear interpolation between closest ranks (as Prometheus' `quantile`). Selection, not a
/// sort: an interval of a busy series can hold millions of values.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    let rank = q * (values.len() - 1) as f64;
    let (lower, weight) = (rank.floor() as usize, rank - rank.floor());
    let (_, lower_value, above) = values.select_nth_unstable_by(lower, f64::total_cmp);
    let lower_value = *lower_value;
    if weight == 0.0 || above.is_empty() {
        return lower_value;
    }
    let upper_value = above.iter().copied().fold(f64::INFINITY, f64::min);
    lower_value * (1.0 - weight) + upper_value * weight
}

/// Applies a second stage to finished series in place (samples that do not pass become `None`).
pub(crate) fn apply_stage(stage: &SecondStage, series: &mut [MetricsSeries]) {
    match stage {
        SecondStage::Filter(op, threshold) => {
            let rhs = Value::Float(*threshold);
            for s in series.iter_mut() {
                for sample in &mut s.samples {
                    // NaN (a division by zero, a missing operand) passes no comparison, `!=` included.
                    if sample.is_some_and(|v| {
                        v.is_nan() || !crate::value::compare(*op, &Value::Float(v), &rhs)
                    }) {
                        *sample = None;
                    }
                }
            }
        }
        SecondStage::TopK(k) | SecondStage::BottomK(k) => {
            let top = matches!(stage, SecondStage::TopK(_));
            // Series need not have a sample per interval (compare()'s error markers have none,
            // arithmetic keeps the shorter side's length): rank whatever each has at `t`.
            let intervals = series.iter().map(|s| s.samples.len()).max().unwrap_or(0);
            for t in 0..intervals {
                let value_at =
                    |s: &MetricsSeries| s.samples.get(t).copied().flatten().filter(|v| !v.is_nan());
                let mut ranked: Vec<(usize, f64)> = series
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| value_at(s).map(|v| (i, v)))
                    .collect();
                ranked.sort_by(|a, b| {
                    if top {
                        b.1.total_cmp(&a.1)
                    } else {
                        a.1.total_cmp(&b.1)
                    }
                    .then(a.0.cmp(&b.0))
                });
                let kept: BTreeSet<usize> = ranked.iter().take(*k).map(|&(i, _)| i).collect();
                for (i, s) in series.iter_mut().enumerate() {
                    if let Some(sample) = s.samples.get_mut(t).filter(|_| !kept.contains(&i)) {
                        *sample = None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{apply_stage, quantile, Intervals, LabelValue, MetricsSeries, SecondStage};
    use proptest::prelude::*;

    /// Times at, just around and between interval bounds, and far outside the range.
    fn times_around(intervals: Intervals) -> Vec<u64> {
        let step = intervals.step_nanos;
        let mut times = vec![0, 1, u64::MAX, u64::MAX - 1];
        for k in 0..=intervals.count as u64 + 1 {
            let bound = intervals.first_nanos.saturating_add(k.saturating_mul(step));
            let below = intervals.first_nanos.saturating_sub(step);
            for t in [bound, below] {
                times.extend([t.saturating_sub(1), t, t.saturating_add(1)]);
                times.push(t.saturating_add(step / 2));
            }
        }
        times
    }

    proptest! {
        /// The multiplying indexer gives `Intervals::index`'s answer for every time: at each
        /// bound, one nanosecond either side, and anywhere, for any step (1 ns to 39
        /// hours) and start (up to the year 2116).
        #[test]
        fn the_indexer_places_every_time_as_index_does(
            start in prop_oneof![0u64..10_000, 0u64..1 << 62],
            step in prop_oneof![1u64..10, 1u64..1 << 47],
            count in 1usize..400,
            spread in any::<[u64; 32]>(),
        ) {
            let end = start.saturating_add(step.saturating_mul(count as u64 - 1));
            for intervals in [
                Intervals::range(start, end, step),
                Intervals::instant(start, end),
            ] {
                let indexer = intervals.indexer();
                let mut times = times_around(intervals);
                times.extend(spread.iter().map(|t| intervals.first_nanos ^ (t >> (t % 64))));
                times.extend(spread);
                for t in times {
                    prop_assert_eq!(indexer.index(t), intervals.index(t), "t = {}", t);
                }
            }
        }
    }

    fn series(name: &str, samples: Vec<Option<f64>>) -> MetricsSeries {
        MetricsSeries {
            labels: vec![("name".to_owned(), LabelValue::String(name.to_owned()))],
            samples,
            exemplars: Vec::new(),
        }
    }

    /// Issue 10: `{} | compare({status=error}) | topk(10)` indexed every series by the first
    /// one's length, and compare()'s error markers have no samples. Series of any lengths rank
    /// by what each has at a timestamp.
    #[test]
    fn topk_and_bottomk_take_series_of_different_lengths() {
        let input = vec![
            series("long", vec![Some(1.0), Some(5.0), Some(3.0)]),
            series("marker", Vec::new()),
            series("short", vec![Some(2.0)]),
            series("nan", vec![Some(f64::NAN), Some(f64::NAN), Some(1.0)]),
        ];
        let mut top = input.clone();
        apply_stage(&SecondStage::TopK(1), &mut top);
        let samples: Vec<Vec<Option<f64>>> = top.iter().map(|s| s.samples.clone()).collect();
        assert_eq!(samples[0], vec![None, Some(5.0), Some(3.0)]);
        assert_eq!(samples[1], Vec::<Option<f64>>::new());
        assert_eq!(samples[2], vec![Some(2.0)]);
        assert_eq!(samples[3], vec![None, None, None], "NaN is never ranked");
        let mut bottom = input;
        bottom.swap(0, 1);
        apply_stage(&SecondStage::BottomK(1), &mut bottom);
        assert_eq!(bottom[1].samples, vec![Some(1.0), Some(5.0), None]);
        assert_eq!(bottom[3].samples, vec![None, None, Some(1.0)]);
    }

    #[test]
    fn filters_drop_nan() {
        let mut input = vec![series(
            "a",
            vec![Some(f64::NAN), Some(1.0), Some(2.0), None],
        )];
        apply_stage(
            &SecondStage::Filter(crate::ast::BinaryOp::Neq, 2.0),
            &mut input,
        );
        assert_eq!(input[0].samples, vec![None, Some(1.0), None, None]);
    }

    /// Selection gives what sorting and interpolating gives.
    #[test]
    fn quantile_by_selection_matches_sorting() {
        let mut seed = 7u64;
        for len in [1usize, 2, 3, 10, 101, 1000] {
            let values: Vec<f64> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 33) as f64 / 1000.0
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
                let rank = q * (len - 1) as f64;
                let (lower, weight) = (rank.floor() as usize, rank - rank.floor());
                let expected =
                    sorted[lower] * (1.0 - weight) + sorted[(lower + 1).min(len - 1)] * weight;
                assert_eq!(
                    quantile(q, &mut values.clone()),
                    expected,
                    "len {len} q {q}"
                );
            }
        }
    }
}
