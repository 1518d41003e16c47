//! The evaluator: one expression at one timestamp, over selector data fetched once per query.

use std::collections::HashMap;

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::{Expr, Offset, VectorSelector};

use super::{aggregate, binary, functions, QueryError, Sample, Series};
use crate::labels::METRIC_NAME;
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

pub(crate) struct Evaluator {
    /// Selector node address → its series over the whole query window.
    data: HashMap<usize, Vec<SeriesData>>,
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
        matchers.matchers.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
    }
    matchers
}

/// Samples with `after < t <= until`, as a sub-slice.
pub(crate) fn window(samples: &[(i64, f64)], after: i64, until: i64) -> &[(i64, f64)] {
    let from = samples.partition_point(|s| s.0 <= after);
    let to = samples.partition_point(|s| s.0 <= until);
    &samples[from..to.max(from)]
}

impl Evaluator {
    /// Reads every selector's series for `[start_ms, end_ms]` widened by its range or the
    /// lookback, and its offset.
    pub(crate) fn prepare(store: &Store, tenant: &str, expr: &Expr, start_ms: i64, end_ms: i64) -> Result<Evaluator, QueryError> {
        let mut selectors: Vec<(&VectorSelector, i64)> = Vec::new();
        collect_selectors(expr, &mut selectors)?;
        let mut data = HashMap::new();
        for (selector, reach_ms) in selectors {
            if selector.at.is_some() {
                return Err(QueryError::bad("the `@` modifier is not supported"));
            }
            let offset = offset_ms(selector);
            let matchers = full_matchers(selector);
            let series = store.select(tenant, &[&matchers], start_ms - offset - reach_ms, end_ms - offset);
            data.insert(key(selector), series);
        }
        Ok(Evaluator { data })
    }

    fn series(&self, selector: &VectorSelector) -> &[SeriesData] {
        self.data.get(&key(selector)).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(crate) fn instant_selector(&self, selector: &VectorSelector, t: i64) -> Vec<Sample> {
        let at = t - offset_ms(selector);
        let mut out = Vec::new();
        for series in self.series(selector) {
            if let Some(&(_, value)) = window(&series.samples, at - LOOKBACK_MS, at).last() {
                out.push(Sample { labels: series.labels.clone(), value });
            }
        }
        out
    }

    pub(crate) fn range_selector(&self, selector: &VectorSelector, range_ms: i64, t: i64) -> Vec<Series> {
        let at = t - offset_ms(selector);
        let mut out = Vec::new();
        for series in self.series(selector) {
            let samples = window(&series.samples, at - range_ms, at);
            if !samples.is_empty() {
                out.push(Series { labels: series.labels.clone(), samples: samples.to_vec() });
            }
        }
        out
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

fn collect_selectors<'e>(expr: &'e Expr, out: &mut Vec<(&'e VectorSelector, i64)>) -> Result<(), QueryError> {
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
