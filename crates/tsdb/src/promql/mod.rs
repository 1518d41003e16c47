//! PromQL over the series store: parsing is `promql-parser`'s (it tracks Prometheus' grammar);
//! evaluation is ours and follows Prometheus' semantics — 5 m lookback, left-open range windows,
//! extrapolated `rate`/`increase`, `histogram_quantile` with linear interpolation, vector
//! matching with `on`/`ignoring`/`group_left`/`group_right`, `bool` comparisons.
//!
//! A range query evaluates the expression independently at each step, as Prometheus does; every
//! selector's samples for the whole query window are read from the store once, before the first
//! step, so a step costs binary searches, not decodes.

mod aggregate;
mod binary;
mod depth;
mod eval;
mod functions;

use std::collections::BTreeMap;

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::{self, Expr, VectorSelector};

use crate::labels::{Labels, METRIC_NAME};
use crate::store::Store;

pub use depth::{MAX_DEPTH, MAX_OPERATORS};
pub use eval::{LOOKBACK_MS, STALE_NAN_BITS};
pub use functions::civil_from_days;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// One series of a range result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}

/// What a query returns, in the four result types of Prometheus' HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    Scalar(i64, f64),
    String(i64, String),
    Vector(i64, Vec<Sample>),
    Matrix(Vec<Series>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// The query does not parse or uses something unsupported: HTTP 400 `bad_data`.
    BadData,
    /// The query parsed but failed while running (e.g. many-to-many matching): HTTP 422 `execution`.
    Execution,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    pub kind: QueryErrorKind,
    pub message: String,
}

impl QueryError {
    pub(crate) fn bad(message: impl Into<String>) -> QueryError {
        QueryError {
            kind: QueryErrorKind::BadData,
            message: message.into(),
        }
    }
    pub(crate) fn execution(message: impl Into<String>) -> QueryError {
        QueryError {
            kind: QueryErrorKind::Execution,
            message: message.into(),
        }
    }
}

/// Most steps a range query may have (Prometheus' own limit).
pub const MAX_STEPS: i64 = 11_000;

/// Parses a query whose nesting stays within [`MAX_DEPTH`] (deeper ones are refused before
/// anything recursive touches them).
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    depth::check_text(query)?;
    let expr = parser::parse(query)
        .map_err(|message| QueryError::bad(format!("invalid parameter \"query\": {message}")))?;
    depth::check_tree(&expr)?;
    Ok(expr)
}

/// A selector's matchers with its metric name as a `__name__` matcher.
pub fn selector_matchers(selector: &VectorSelector) -> Matchers {
    let mut matchers = selector.matchers.clone();
    if let Some(name) = &selector.name {
        matchers
            .matchers
            .push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
    }
    matchers
}

/// Every series selector in `expr` (ranges included), in the order they are written, as
/// Prometheus' `ExtractSelectors` gives them to `/api/v1/query_exemplars`.
pub fn selectors(expr: &Expr) -> Vec<Matchers> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(node) = stack.pop() {
        match node {
            Expr::VectorSelector(selector) => out.push(selector_matchers(selector)),
            Expr::MatrixSelector(matrix) => out.push(selector_matchers(&matrix.vs)),
            _ => stack.extend(depth::children(node).into_iter().rev()),
        }
    }
    out
}

/// Evaluates `query` at `time_ms` (`/api/v1/query`).
pub fn instant_query(
    store: &Store,
    tenant: &str,
    query: &str,
    time_ms: i64,
) -> Result<QueryValue, QueryError> {
    instant_query_expr(store, tenant, &parse(query)?, time_ms)
}

/// As [`instant_query`], for an expression parsed once and evaluated many times (rules).
pub fn instant_query_expr(
    store: &Store,
    tenant: &str,
    expr: &Expr,
    time_ms: i64,
) -> Result<QueryValue, QueryError> {
    let mut evaluator = eval::Evaluator::prepare(store, tenant, expr, time_ms, time_ms)?;
    Ok(match evaluator.eval(expr, time_ms)? {
        eval::Value::Scalar(value) => QueryValue::Scalar(time_ms, value),
        eval::Value::String(text) => QueryValue::String(time_ms, text),
        eval::Value::Vector(samples) => QueryValue::Vector(time_ms, samples),
        eval::Value::Matrix(series) => QueryValue::Matrix(series),
    })
}

/// Evaluates `query` at every `step_ms` from `start_ms` to `end_ms` (`/api/v1/query_range`).
pub fn range_query(
    store: &Store,
    tenant: &str,
    query: &str,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
) -> Result<QueryValue, QueryError> {
    if step_ms <= 0 {
        return Err(QueryError::bad("zero or negative query resolution step widths are not accepted. Try a positive integer"));
    }
    if end_ms < start_ms {
        return Err(QueryError::bad(
            "end timestamp must not be before start time",
        ));
    }
    // In i128: a caller's extreme times must not wrap into a small, accepted step count.
    if (i128::from(end_ms) - i128::from(start_ms)) / i128::from(step_ms) > i128::from(MAX_STEPS) {
        return Err(QueryError::bad("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"));
    }
    let expr = parse(query)?;
    let mut evaluator = eval::Evaluator::prepare(store, tenant, &expr, start_ms, end_ms)?;
    let mut series: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    let mut t = start_ms;
    while t <= end_ms {
        match evaluator.eval(&expr, t)? {
            eval::Value::Scalar(value) => series.entry(Labels::default()).or_default().push((t, value)),
            eval::Value::Vector(samples) => {
                for sample in samples {
                    series.entry(sample.labels).or_default().push((t, sample.value));
                }
            }
            eval::Value::Matrix(_) => {
                return Err(QueryError::bad("invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"))
            }
            eval::Value::String(_) => {
                return Err(QueryError::bad("invalid expression type \"string\" for range query, must be Scalar or instant Vector"))
            }
        }
        let Some(next) = t.checked_add(step_ms) else {
            break;
        };
        t = next;
    }
    Ok(QueryValue::Matrix(
        series
            .into_iter()
            .map(|(labels, samples)| Series { labels, samples })
            .collect(),
    ))
}

#[cfg(test)]
mod tests;
