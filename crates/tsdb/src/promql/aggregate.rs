//! Aggregation operators: `sum avg min max count group stddev stdvar quantile topk bottomk`
//! with `by (…)` / `without (…)`. `topk`/`bottomk` keep the input series' labels; the others
//! label each group with the grouping labels.

use rustc_hash::FxHashMap;

use promql_parser::parser::token;
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::{Evaluator, Value};
use super::functions::quantile;
use super::{QueryError, Sample};
use crate::labels::Labels;

fn group_labels(labels: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(names)) => labels.project(&names.labels, true),
        Some(LabelModifier::Exclude(names)) => labels.project(&names.labels, false),
        None => Labels::default(),
    }
}

fn scalar_param(
    evaluator: &mut Evaluator,
    aggregate: &AggregateExpr,
    t: i64,
) -> Result<f64, QueryError> {
    let param = aggregate
        .param
        .as_ref()
        .ok_or_else(|| QueryError::bad(format!("{} needs a parameter", aggregate.op)))?;
    match evaluator.eval(param, t)? {
        Value::Scalar(value) => Ok(value),
        other => Err(QueryError::bad(format!(
            "expected type scalar in aggregation parameter, got {}",
            other.type_name()
        ))),
    }
}

/// `topk`/`bottomk` of one group, chosen the way Prometheus' heap chooses (so that among equal
/// values the same series win): a heap of `k` ordered by value with NaN lowest, whose root is
/// replaced by a later sample only when strictly better.
fn select_k(members: Vec<Sample>, k: usize, top: bool) -> Vec<Sample> {
    // `worse(a, b)`: `a` leaves the heap before `b`.
    let worse = |a: f64, b: f64| a.is_nan() || if top { a < b } else { a > b };
    let mut heap: Vec<Sample> = Vec::with_capacity(k.min(members.len()));
    for sample in members {
        if heap.len() < k {
            heap.push(sample);
            let mut child = heap.len() - 1;
            while child > 0 {
                let parent = (child - 1) / 2;
                if !worse(heap[child].value, heap[parent].value) {
                    break;
                }
                heap.swap(parent, child);
                child = parent;
            }
        } else if worse(heap[0].value, sample.value) && !sample.value.is_nan() {
            heap[0] = sample;
            let mut parent = 0;
            loop {
                let left = 2 * parent + 1;
                if left >= heap.len() {
                    break;
                }
                let right = left + 1;
                let child = if right < heap.len() && worse(heap[right].value, heap[left].value) {
                    right
                } else {
                    left
                };
                if !worse(heap[child].value, heap[parent].value) {
                    break;
                }
                heap.swap(parent, child);
                parent = child;
            }
        }
    }
    // Best first, NaN last.
    heap.sort_by(|a, b| {
        let by_value = if top {
            b.value.total_cmp(&a.value)
        } else {
            a.value.total_cmp(&b.value)
        };
        a.value.is_nan().cmp(&b.value.is_nan()).then(by_value)
    });
    heap
}

/// `count_values("label", v)`: per group, how many samples have each value, the value written
/// into `label` the way Go formats a float (shortest round-trip, no exponent).
fn count_values(
    aggregate: &AggregateExpr,
    groups: Vec<(Labels, Vec<Sample>)>,
) -> Result<Value, QueryError> {
    let label = match aggregate.param.as_deref() {
        Some(promql_parser::parser::Expr::StringLiteral(text)) => text.val.clone(),
        _ => {
            return Err(QueryError::bad(
                "expected type string in aggregation parameter",
            ))
        }
    };
    let valid = label
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(QueryError::execution(format!(
            "invalid label name {label:?}"
        )));
    }
    let mut counts: std::collections::BTreeMap<Labels, f64> = std::collections::BTreeMap::new();
    for (group, members) in groups {
        for sample in members {
            let mut labels = group.clone();
            labels.set(&label, &crate::labels::float_text(sample.value));
            *counts.entry(labels).or_default() += 1.0;
        }
    }
    Ok(Value::Vector(
        counts
            .into_iter()
            .map(|(labels, value)| Sample { labels, value })
            .collect(),
    ))
}

pub(crate) fn eval(
    evaluator: &mut Evaluator,
    aggregate: &AggregateExpr,
    t: i64,
) -> Result<Value, QueryError> {
    let samples = match evaluator.eval(&aggregate.expr, t)? {
        Value::Vector(samples) => samples,
        other => {
            return Err(QueryError::bad(format!(
                "expected type instant vector in aggregation expression, got {}",
                other.type_name()
            )))
        }
    };
    let op = aggregate.op.id();
    // Grouping labels are interned by the evaluator: equal groups share an identity, so samples
    // are grouped by that number; groups come out in label order.
    let node = aggregate as *const AggregateExpr as usize;
    let mut by_identity: FxHashMap<usize, (Labels, Vec<Sample>)> = FxHashMap::default();
    for sample in samples {
        let key = evaluator.derived(node, &sample.labels, |labels| {
            group_labels(labels, &aggregate.modifier)
        });
        by_identity
            .entry(key.identity())
            .or_insert_with(|| (key, Vec::new()))
            .1
            .push(sample);
    }
    let mut groups: Vec<(Labels, Vec<Sample>)> = by_identity.into_values().collect();
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    if op == token::T_TOPK || op == token::T_BOTTOMK {
        let k = scalar_param(evaluator, aggregate, t)?;
        if k.is_nan() || k >= 9.2e18 || k <= -9.2e18 {
            return Err(QueryError::execution(format!(
                "Scalar value {k} overflows int64"
            )));
        }
        if k < 1.0 {
            return Ok(Value::Vector(Vec::new()));
        }
        let k = k as usize;
        let mut out = Vec::new();
        for (_, members) in groups {
            out.extend(select_k(members, k, op == token::T_TOPK));
        }
        return Ok(Value::Vector(out));
    }
    if op == token::T_COUNT_VALUES {
        return count_values(aggregate, groups);
    }
    let parameter = if op == token::T_QUANTILE {
        scalar_param(evaluator, aggregate, t)?
    } else {
        0.0
    };
    let mut out = Vec::with_capacity(groups.len());
    for (labels, members) in groups {
        let values = members.iter().map(|s| s.value);
        let count = members.len() as f64;
        let value = match op {
            token::T_SUM => values.sum(),
            token::T_AVG => values.sum::<f64>() / count,
            token::T_COUNT => count,
            token::T_GROUP => 1.0,
            token::T_MIN => values.fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a }),
            token::T_MAX => values.fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a }),
            token::T_STDDEV | token::T_STDVAR => {
                let mean = values.clone().sum::<f64>() / count;
                let variance = values.map(|v| (v - mean).powi(2)).sum::<f64>() / count;
                if op == token::T_STDDEV {
                    variance.sqrt()
                } else {
                    variance
                }
            }
            token::T_QUANTILE => quantile(parameter, &mut values.collect::<Vec<_>>()),
            _ => {
                return Err(QueryError::bad(format!(
                    "aggregation \"{}\" is not supported",
                    aggregate.op
                )))
            }
        };
        out.push(Sample { labels, value });
    }
    Ok(Value::Vector(out))
}
