//! The evaluator: one expression at one timestamp, over selector data fetched once per query.

use std::cell::Cell;
use std::collections::HashMap;

use rustc_hash::FxHashMap;

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::{Expr, Offset, VectorSelector};

use super::{aggregate, binary, functions, QueryError, Sample, Series};
use crate::labels::{Labels, METRIC_NAME};
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
}

/// One series of a range selector at one step: borrowed, not copied.
pub(crate) struct Window<'e> {
    pub labels: &'e Labels,
    pub nameless: &'e Labels,
    pub samples: &'e [(i64, f64)],
}

fn key(selector: &VectorSelector) -> usize {
    selector as *const VectorSelector as usize
}

fn offset_ms(selector: &VectorSelector) -> i64 {
    match selector.offset {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

/// The selector's matchers with its metric name folded in as a `__name__` matcher.
fn full_matchers(selector: &VectorSelector) -> Matchers {
    let mut matchers = selector.matchers.clone();
    if let Some(name) = &selector.name {
        matchers
            .matchers
            .push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
    }
    matchers
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
        let mut selectors: Vec<(&VectorSelector, i64)> = Vec::new();
        collect_selectors(expr, &mut selectors)?;
        let mut data = HashMap::new();
        for (selector, reach_ms) in selectors {
            if selector.at.is_some() {
                return Err(QueryError::bad("the `@` modifier is not supported"));
            }
            let offset = offset_ms(selector);
            let matchers = full_matchers(selector);
            let mut series = store.select(
                tenant,
                &[&matchers],
                start_ms - offset - reach_ms,
                end_ms - offset,
            );
            let stale = series
                .iter_mut()
                .map(|s| split_stale(&mut s.samples))
                .collect();
            let nameless = series.iter().map(|s| s.labels.without_name()).collect();
            let cursors = series.iter().map(|_| Cell::new((0, 0))).collect();
            data.insert(
                key(selector),
                Selected {
                    series,
                    nameless,
                    cursors,
                    stale,
                },
            );
        }
        Ok(Evaluator {
            data,
            derived: FxHashMap::default(),
            interned: FxHashMap::default(),
        })
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
        let at = t - offset_ms(selector);
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
                out.push(Sample {
                    labels: series.labels.clone(),
                    value,
                });
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
        let at = t - offset_ms(selector);
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
            Expr::Unary(unary) => match self.eval(&unary.expr, t)? {
                Value::Scalar(value) => Value::Scalar(-value),
                Value::Vector(samples) => Value::Vector(
                    samples.into_iter().map(|s| Sample { labels: s.labels.without_name(), value: -s.value }).collect(),
                ),
                other => return Err(QueryError::bad(format!("unary expression only allowed on expressions of type scalar or instant vector, got {}", other.type_name()))),
            },
            Expr::VectorSelector(selector) => Value::Vector(self.instant_selector(selector, t)),
            Expr::MatrixSelector(matrix) => Value::Matrix(self.range_selector(&matrix.vs, matrix.range.as_millis() as i64, t)),
            Expr::Call(call) => functions::call(self, call, t)?,
            Expr::Aggregate(aggregate) => aggregate::eval(self, aggregate, t)?,
            Expr::Binary(binary) => binary::eval(self, binary, t)?,
            Expr::Subquery(_) => return Err(QueryError::bad("subqueries are not supported")),
            Expr::Extension(_) => return Err(QueryError::bad("extension expressions are not supported")),
        })
    }
}

fn collect_selectors<'e>(
    expr: &'e Expr,
    out: &mut Vec<(&'e VectorSelector, i64)>,
) -> Result<(), QueryError> {
    match expr {
        Expr::VectorSelector(selector) => out.push((selector, LOOKBACK_MS)),
        Expr::MatrixSelector(matrix) => out.push((&matrix.vs, matrix.range.as_millis() as i64)),
        Expr::Paren(paren) => collect_selectors(&paren.expr, out)?,
        Expr::Unary(unary) => collect_selectors(&unary.expr, out)?,
        Expr::Binary(binary) => {
            collect_selectors(&binary.lhs, out)?;
            collect_selectors(&binary.rhs, out)?;
        }
        Expr::Aggregate(aggregate) => {
            collect_selectors(&aggregate.expr, out)?;
            if let Some(param) = &aggregate.param {
                collect_selectors(param, out)?;
            }
        }
        Expr::Call(call) => {
            for arg in &call.args.args {
                collect_selectors(arg, out)?;
            }
        }
        Expr::Subquery(_) => return Err(QueryError::bad("subqueries are not supported")),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
    Ok(())
}
