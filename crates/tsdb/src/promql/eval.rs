//! The evaluator: one expression at one timestamp, over selector data fetched once per query.

use std::cell::Cell;
use std::collections::HashMap;

use rustc_hash::FxHashMap;

use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};
use rustc_hash::FxHashSet;

use super::{aggregate, binary, functions, QueryError, Sample, Series};
use crate::labels::Labels;
use crate::store::{SeriesData, Store};

/// How far back an instant selector looks for a sample (Prometheus' default `5m`).
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

impl Value {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "instant vector",
            Value::Matrix(_) => "range vector",
        }
    }
}

/// A selector's series over the whole query window, with its labels minus `__name__` computed
/// once (range functions and arithmetic drop the name at every step).
struct Selected {
    series: Vec<SeriesData>,
    nameless: Vec<Labels>,
    /// Per series, the last window's (first, end) sample indexes: a range query's steps move
    /// forward, so each step advances them instead of searching 24 h of samples again.
    cursors: Vec<Cell<(usize, usize)>>,
    /// Per series, the times of its stale markers, which are taken out of `series`' samples:
    /// range functions never see them, and an instant selector answers nothing when the newest
    /// sample in its lookback is one.
    stale: Vec<Vec<i64>>,
    /// Whether the series stay distinct without their metric names: a range function over this
    /// selector then cannot produce one label set twice, and its steps skip that check.
    nameless_unique: bool,
}

/// Prometheus' stale marker: a NaN with this exact payload, written when a series disappears.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Takes the stale markers out of `samples`, returning their times.
fn split_stale(samples: &mut Vec<(i64, f64)>) -> Vec<i64> {
    if !samples.iter().any(|s| s.1.to_bits() == STALE_NAN_BITS) {
        return Vec::new();
    }
    let stale = samples
        .iter()
        .filter(|s| s.1.to_bits() == STALE_NAN_BITS)
        .map(|s| s.0)
        .collect();
    samples.retain(|s| s.1.to_bits() != STALE_NAN_BITS);
    stale
}

pub(crate) struct Evaluator {
    /// Selector node address → its series.
    data: HashMap<usize, Selected>,
    /// (node address, label-set identity) → (the label set, kept alive so its address cannot be
    /// reused; the derived label set). A range query derives the same grouping labels from the
    /// same series at every step; this does it once per series.
    derived: FxHashMap<(usize, usize), (Labels, Labels)>,
    /// Derived label sets, one shared copy per distinct content, so that equal groups share an
    /// identity and grouping can hash identities instead of label strings.
    interned: FxHashMap<Labels, Labels>,
    /// The query's first and last evaluation times, for `@ start()` and `@ end()`.
    query_start_ms: i64,
    query_end_ms: i64,
    /// Inner evaluations subqueries may still run in this query; bounds the work a short query
    /// text can ask for (a range query over a subquery multiplies their step counts).
    subquery_budget: u64,
}

/// Inner evaluations all subqueries of one query may run together.
const SUBQUERY_BUDGET: u64 = 5_000_000;

/// A subquery without a step evaluates every minute (Prometheus' default evaluation interval).
const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// One series of a range selector at one step: borrowed, not copied.
pub(crate) struct Window<'e> {
    pub labels: &'e Labels,
    pub nameless: &'e Labels,
    pub samples: &'e [(i64, f64)],
}

fn key(selector: &VectorSelector) -> usize {
    selector as *const VectorSelector as usize
}

pub(crate) fn offset_of(offset: &Option<Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

/// `@ <time>` as Unix milliseconds; times before 1970 are negative.
fn at_time_ms(at: &AtModifier, query_start_ms: i64, query_end_ms: i64) -> i64 {
    match at {
        AtModifier::Start => query_start_ms,
        AtModifier::End => query_end_ms,
        AtModifier::At(time) => match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => after.as_millis() as i64,
            Err(before) => -(before.duration().as_millis() as i64),
        },
    }
}

/// Samples with `after < t <= until`, as a sub-slice, resuming from the previous window's bounds when they are still valid (they are
/// whenever the window moved forward), else searching afresh.
fn window_with_cursor<'s>(
    samples: &'s [(i64, f64)],
    after: i64,
    until: i64,
    cursor: &Cell<(usize, usize)>,
) -> &'s [(i64, f64)] {
    let (mut from, mut to) = cursor.get();
    let valid = from <= samples.len()
        && to <= samples.len()
        && (from == 0 || samples[from - 1].0 <= after)
        && (to == 0 || samples[to - 1].0 <= until);
    if !valid {
        from = samples.partition_point(|s| s.0 <= after);
        to = samples.partition_point(|s| s.0 <= until);
    } else {
        while from < samples.len() && samples[from].0 <= after {
            from += 1;
        }
        while to < samples.len() && samples[to].0 <= until {
            to += 1;
        }
    }
    let to = to.max(from);
    cursor.set((from, to));
    &samples[from..to]
}

impl Evaluator {
    /// Reads every selector's series for `[start_ms, end_ms]` widened by its range or the
    /// lookback, and its offset.
    pub(crate) fn prepare(
        store: &Store,
        tenant: &str,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Evaluator, QueryError> {
        let mut selectors: Vec<(&VectorSelector, i64, i64)> = Vec::new();
        let query = (start_ms, end_ms);
        collect_selectors(expr, (start_ms, end_ms), query, &mut selectors);
        let mut data = HashMap::new();
        for (selector, from_ms, until_ms) in selectors {
            let matchers = super::selector_matchers(selector);
            let mut series = store.select(tenant, &[&matchers], from_ms, until_ms);
            let stale = series
                .iter_mut()
                .map(|s| split_stale(&mut s.samples))
                .collect();
            let nameless: Vec<Labels> = series.iter().map(|s| s.labels.without_name()).collect();
            let nameless_unique = {
                let mut seen: FxHashSet<&Labels> = FxHashSet::default();
                nameless.iter().all(|labels| seen.insert(labels))
            };
            let cursors = series.iter().map(|_| Cell::new((0, 0))).collect();
            data.insert(
                key(selector),
                Selected {
                    series,
                    nameless,
                    cursors,
                    stale,
                    nameless_unique,
                },
            );
        }
        Ok(Evaluator {
            data,
            derived: FxHashMap::default(),
            interned: FxHashMap::default(),
            query_start_ms: start_ms,
            query_end_ms: end_ms,
            subquery_budget: SUBQUERY_BUDGET,
        })
    }

    /// Whether `call` is a range function over a selector whose series differ in more than
    /// their names (one output per input series, so its label sets are distinct).
    fn range_function_of_distinct_series(&self, call: &promql_parser::parser::Call) -> bool {
        call.args.args.iter().any(|arg| match arg.as_ref() {
            Expr::MatrixSelector(matrix) => self
                .selected(&matrix.vs)
                .is_some_and(|selected| selected.nameless_unique),
            _ => false,
        })
    }

    /// The time a node with this `@` and offset reads at, when evaluated at `t`.
    pub(crate) fn read_time(
        &self,
        at: &Option<AtModifier>,
        offset: &Option<Offset>,
        t: i64,
    ) -> i64 {
        let base = match at {
            Some(at) => at_time_ms(at, self.query_start_ms, self.query_end_ms),
            None => t,
        };
        base.saturating_sub(offset_of(offset))
    }

    /// A subquery at `t`: its inner expression evaluated at every multiple of its step in
    /// `(end - range, end]`, as series.
    pub(crate) fn subquery(
        &mut self,
        subquery: &SubqueryExpr,
        t: i64,
    ) -> Result<Vec<Series>, QueryError> {
        let end = self.read_time(&subquery.at, &subquery.offset, t);
        let step = subquery
            .step
            .map_or(DEFAULT_SUBQUERY_STEP_MS, |d| d.as_millis() as i64)
            .max(1);
        let range = subquery.range.as_millis() as i64;
        let first = (end - range).div_euclid(step) * step + step;
        let steps = if first > end {
            0
        } else {
            ((end - first) / step + 1) as u64
        };
        if steps > self.subquery_budget {
            return Err(QueryError::execution(
                "query processing would load too many samples into memory in query execution",
            ));
        }
        self.subquery_budget -= steps;
        let mut series: FxHashMap<Labels, Vec<(i64, f64)>> = FxHashMap::default();
        let mut order: Vec<Labels> = Vec::new();
        let mut inner_t = first;
        while inner_t <= end {
            let samples = match self.eval(&subquery.expr, inner_t)? {
                Value::Vector(samples) => samples,
                Value::Scalar(value) => vec![Sample {
                    labels: Labels::default(),
                    value,
                }],
                other => {
                    return Err(QueryError::bad(format!(
                        "subquery is only allowed on instant vector, got {}",
                        other.type_name()
                    )))
                }
            };
            for sample in samples {
                let points = series.entry(sample.labels.clone()).or_insert_with(|| {
                    order.push(sample.labels.clone());
                    Vec::new()
                });
                points.push((inner_t, sample.value));
            }
            inner_t += step;
        }
        Ok(order
            .into_iter()
            .map(|labels| {
                let samples = series.remove(&labels).unwrap_or_default();
                Series { labels, samples }
            })
            .collect())
    }

    /// `derive(labels)` for the expression node at `node`, cached across steps.
    /// Equal results share one identity (see `interned`).
    pub(crate) fn derived(
        &mut self,
        node: usize,
        labels: &Labels,
        derive: impl FnOnce(&Labels) -> Labels,
    ) -> Labels {
        if let Some((_, derived)) = self.derived.get(&(node, labels.identity())) {
            return derived.clone();
        }
        let fresh = derive(labels);
        let shared = self.interned.entry(fresh.clone()).or_insert(fresh).clone();
        self.derived
            .insert((node, labels.identity()), (labels.clone(), shared.clone()));
        shared
    }

    fn selected(&self, selector: &VectorSelector) -> Option<&Selected> {
        self.data.get(&key(selector))
    }

    pub(crate) fn instant_selector(&self, selector: &VectorSelector, t: i64) -> Vec<Sample> {
        self.instant_selector_timed(selector, t)
            .into_iter()
            .map(|(sample, _)| sample)
            .collect()
    }

    /// The instant selector's samples with the time each was recorded at (for `timestamp()`).
    pub(crate) fn instant_selector_timed(
        &self,
        selector: &VectorSelector,
        t: i64,
    ) -> Vec<(Sample, i64)> {
        let at = self.read_time(&selector.at, &selector.offset, t);
        let Some(selected) = self.selected(selector) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ((series, cursor), stale) in selected
            .series
            .iter()
            .zip(&selected.cursors)
            .zip(&selected.stale)
        {
            if let Some(&(sample_t, value)) =
                window_with_cursor(&series.samples, at - LOOKBACK_MS, at, cursor).last()
            {
                // A stale marker after the newest sample ends the series here.
                let marker_after = stale.partition_point(|&m| m <= sample_t);
                if stale.get(marker_after).is_some_and(|&m| m <= at) {
                    continue;
                }
                out.push((
                    Sample {
                        labels: series.labels.clone(),
                        value,
                    },
                    sample_t,
                ));
            }
        }
        out
    }

    /// Each series' samples in `(t - offset - range, t - offset]`, borrowed.
    pub(crate) fn range_windows(
        &self,
        selector: &VectorSelector,
        range_ms: i64,
        t: i64,
    ) -> Vec<Window<'_>> {
        let at = self.read_time(&selector.at, &selector.offset, t);
        let Some(selected) = self.selected(selector) else {
            return Vec::new();
        };
        selected
            .series
            .iter()
            .zip(&selected.nameless)
            .zip(&selected.cursors)
            .filter_map(|((series, nameless), cursor)| {
                let samples = window_with_cursor(&series.samples, at - range_ms, at, cursor);
                (!samples.is_empty()).then_some(Window {
                    labels: &series.labels,
                    nameless,
                    samples,
                })
            })
            .collect()
    }

    pub(crate) fn range_selector(
        &self,
        selector: &VectorSelector,
        range_ms: i64,
        t: i64,
    ) -> Vec<Series> {
        self.range_windows(selector, range_ms, t)
            .into_iter()
            .map(|w| Series {
                labels: w.labels.clone(),
                samples: w.samples.to_vec(),
            })
            .collect()
    }

    pub(crate) fn eval(&mut self, expr: &Expr, t: i64) -> Result<Value, QueryError> {
        Ok(match expr {
            Expr::NumberLiteral(number) => Value::Scalar(number.val),
            Expr::StringLiteral(text) => Value::String(text.val.clone()),
            Expr::Paren(paren) => self.eval(&paren.expr, t)?,
            Expr::Unary(unary) => unique(match self.eval(&unary.expr, t)? {
                Value::Scalar(value) => Value::Scalar(-value),
                Value::Vector(samples) => Value::Vector(
                    samples.into_iter().map(|s| Sample { labels: s.labels.without_name(), value: -s.value }).collect(),
                ),
                other => return Err(QueryError::bad(format!("unary expression only allowed on expressions of type scalar or instant vector, got {}", other.type_name()))),
            })?,
            Expr::VectorSelector(selector) => Value::Vector(self.instant_selector(selector, t)),
            Expr::MatrixSelector(matrix) => Value::Matrix(self.range_selector(&matrix.vs, matrix.range.as_millis() as i64, t)),
            Expr::Call(call) => {
                let value = functions::call(self, call, t)?;
                if self.range_function_of_distinct_series(call) {
                    value
                } else {
                    unique(value)?
                }
            }
            Expr::Aggregate(aggregate) => aggregate::eval(self, aggregate, t)?,
            Expr::Binary(binary) => unique(binary::eval(self, binary, t)?)?,
            Expr::Subquery(subquery) => Value::Matrix(self.subquery(subquery, t)?),
            Expr::Extension(_) => return Err(QueryError::bad("extension expressions are not supported")),
        })
    }
}

/// Prometheus refuses a step whose result holds one label set twice (typically two series
/// that differ only in the metric name a function or operator dropped).
fn unique(value: Value) -> Result<Value, QueryError> {
    if let Value::Vector(samples) = &value {
        if samples.len() > 1 {
            let mut seen: FxHashSet<&Labels> = FxHashSet::default();
            if !samples.iter().all(|s| seen.insert(&s.labels)) {
                return Err(QueryError::execution(
                    "vector cannot contain metrics with the same labelset",
                ));
            }
        }
    }
    Ok(value)
}

/// Every selector under `expr` with the time span it must be read for, when `expr` is
/// evaluated at times in `[from, until]`: widened by its lookback or range, moved by its offset,
/// pinned by `@`, and for selectors inside subqueries, by the subquery's range.
fn collect_selectors<'e>(
    expr: &'e Expr,
    (from, until): (i64, i64),
    query: (i64, i64),
    out: &mut Vec<(&'e VectorSelector, i64, i64)>,
) {
    let read_span = |at: &Option<AtModifier>, offset: &Option<Offset>| -> (i64, i64) {
        let (from, until) = match at {
            Some(at) => {
                let pinned = at_time_ms(at, query.0, query.1);
                (pinned, pinned)
            }
            None => (from, until),
        };
        let offset = offset_of(offset);
        (from.saturating_sub(offset), until.saturating_sub(offset))
    };
    match expr {
        Expr::VectorSelector(selector) => {
            let (from, until) = read_span(&selector.at, &selector.offset);
            out.push((selector, from.saturating_sub(LOOKBACK_MS), until));
        }
        Expr::MatrixSelector(matrix) => {
            let (from, until) = read_span(&matrix.vs.at, &matrix.vs.offset);
            let range = matrix.range.as_millis() as i64;
            out.push((&matrix.vs, from.saturating_sub(range), until));
        }
        Expr::Subquery(subquery) => {
            let (from, until) = read_span(&subquery.at, &subquery.offset);
            let range = subquery.range.as_millis() as i64;
            collect_selectors(
                &subquery.expr,
                (from.saturating_sub(range), until),
                query,
                out,
            );
        }
        Expr::Paren(paren) => collect_selectors(&paren.expr, (from, until), query, out),
        Expr::Unary(unary) => collect_selectors(&unary.expr, (from, until), query, out),
        Expr::Binary(binary) => {
            collect_selectors(&binary.lhs, (from, until), query, out);
            collect_selectors(&binary.rhs, (from, until), query, out);
        }
        Expr::Aggregate(aggregate) => {
            collect_selectors(&aggregate.expr, (from, until), query, out);
            if let Some(param) = &aggregate.param {
                collect_selectors(param, (from, until), query, out);
            }
        }
        Expr::Call(call) => {
            for arg in &call.args.args {
                collect_selectors(arg, (from, until), query, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}
