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
        if k.is_nan() || k < 1.0 {
            return Ok(Value::Vector(Vec::new()));
        }
        let k = k.min(1e9) as usize;
        let mut out = Vec::new();
        for (_, mut members) in groups {
            // NaN sorts last for both directions, as in Prometheus.
            members.sort_by(|a, b| {
                let ordering = if op == token::T_TOPK {
                    b.value.total_cmp(&a.value)
                } else {
                    a.value.total_cmp(&b.value)
                };
                a.value.is_nan().cmp(&b.value.is_nan()).then(ordering)
            });
            members.truncate(k);
            out.extend(members);
        }
        return Ok(Value::Vector(out));
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
