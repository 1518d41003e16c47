//! Binary operators: arithmetic, comparisons (filtering, or 0/1 with `bool`), and the set
//! operators `and or unless`, between scalars and instant vectors, with Prometheus' vector
//! matching (`on`, `ignoring`, `group_left`, `group_right`).

use std::collections::{HashMap, HashSet};

use promql_parser::parser::token;
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::{Evaluator, Value};
use super::{QueryError, Sample};
use crate::labels::Labels;

fn is_comparison(op: u8) -> bool {
    matches!(
        op,
        token::T_EQLC | token::T_NEQ | token::T_GTR | token::T_LSS | token::T_GTE | token::T_LTE
    )
}

fn arithmetic(op: u8, a: f64, b: f64) -> Result<f64, QueryError> {
    Ok(match op {
        token::T_ADD => a + b,
        token::T_SUB => a - b,
        token::T_MUL => a * b,
        token::T_DIV => a / b,
        token::T_MOD => a % b,
        token::T_POW => a.powf(b),
        token::T_ATAN2 => a.atan2(b),
        _ => {
            return Err(QueryError::bad(format!(
                "operator \"{}\" not allowed between numbers",
                token::TokenType::new(op)
            )))
        }
    })
}

fn compare(op: u8, a: f64, b: f64) -> bool {
    match op {
        token::T_EQLC => a == b,
        token::T_NEQ => a != b,
        token::T_GTR => a > b,
        token::T_LSS => a < b,
        token::T_GTE => a >= b,
        _ => a <= b,
    }
}

/// Applies `op`; `None` when a comparison filters the element out. A filtering comparison keeps
/// `keep_value` (the vector side's value).
fn element(
    op: u8,
    a: f64,
    b: f64,
    return_bool: bool,
    keep_value: f64,
) -> Result<Option<f64>, QueryError> {
    if !is_comparison(op) {
        return arithmetic(op, a, b).map(Some);
    }
    let holds = compare(op, a, b);
    Ok(match (return_bool, holds) {
        (true, holds) => Some(if holds { 1.0 } else { 0.0 }),
        (false, true) => Some(keep_value),
        (false, false) => None,
    })
}

fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels.project(&on.labels, true),
        Some(LabelModifier::Exclude(ignoring)) => labels.project(&ignoring.labels, false),
        None => labels.without_name(),
    }
}

pub(crate) fn eval(
    evaluator: &mut Evaluator,
    binary: &BinaryExpr,
    t: i64,
) -> Result<Value, QueryError> {
    let op = binary.op.id();
    let lhs = evaluator.eval(&binary.lhs, t)?;
    let rhs = evaluator.eval(&binary.rhs, t)?;
    let return_bool = binary.modifier.as_ref().is_some_and(|m| m.return_bool);
    // As Prometheus 2.x: arithmetic drops the metric name, except `atan2`.
    let drops_name = (!is_comparison(op) && op != token::T_ATAN2) || return_bool;
    match (lhs, rhs) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            if is_comparison(op) && !return_bool {
                return Err(QueryError::bad(
                    "comparisons between scalars must use BOOL modifier",
                ));
            }
            Ok(Value::Scalar(
                element(op, a, b, return_bool, a)?.unwrap_or(f64::NAN),
            ))
        }
        (Value::Vector(samples), Value::Scalar(scalar))
        | (Value::Scalar(scalar), Value::Vector(samples)) => {
            let vector_on_left = matches!(evaluator_side(binary), Side::Left);
            let mut out = Vec::with_capacity(samples.len());
            for sample in samples {
                let (a, b) = if vector_on_left {
                    (sample.value, scalar)
                } else {
                    (scalar, sample.value)
                };
                if let Some(value) = element(op, a, b, return_bool, sample.value)? {
                    let labels = if drops_name {
                        sample.labels.without_name()
                    } else {
                        sample.labels
                    };
                    out.push(Sample { labels, value });
                }
            }
            Ok(Value::Vector(out))
        }
        (Value::Vector(left), Value::Vector(right)) => {
            let modifier = binary.modifier.as_ref();
            let matching = modifier.and_then(|m| m.matching.as_ref());
            if matches!(op, token::T_LAND | token::T_LOR | token::T_LUNLESS) {
                return Ok(Value::Vector(set_operation(op, left, right, matching)));
            }
            let card = modifier
                .map(|m| m.card.clone())
                .unwrap_or(VectorMatchCardinality::OneToOne);
            vector_binary(op, left, right, matching, &card, return_bool, drops_name)
                .map(Value::Vector)
        }
        (lhs, rhs) => Err(QueryError::bad(format!(
            "binary operator \"{}\" not allowed between {} and {}",
            binary.op,
            lhs.type_name(),
            rhs.type_name()
        ))),
    }
}

enum Side {
    Left,
    Right,
}

/// Which operand is the vector in a vector/scalar operation, read from the syntax: evaluation
/// already lost the order when both arms above bind the same names.
fn evaluator_side(binary: &BinaryExpr) -> Side {
    use promql_parser::parser::value::ValueType;
    if binary.lhs.value_type() == ValueType::Scalar {
        Side::Right
    } else {
        Side::Left
    }
}

fn set_operation(
    op: u8,
    left: Vec<Sample>,
    right: Vec<Sample>,
    matching: Option<&LabelModifier>,
) -> Vec<Sample> {
    let right_signatures: HashSet<Labels> = right
        .iter()
        .map(|s| signature(&s.labels, matching))
        .collect();
    match op {
        token::T_LAND => left
            .into_iter()
            .filter(|s| right_signatures.contains(&signature(&s.labels, matching)))
            .collect(),
        token::T_LUNLESS => left
            .into_iter()
            .filter(|s| !right_signatures.contains(&signature(&s.labels, matching)))
            .collect(),
        _ => {
            let left_signatures: HashSet<Labels> = left
                .iter()
                .map(|s| signature(&s.labels, matching))
                .collect();
            let mut out = left;
            out.extend(
                right
                    .into_iter()
                    .filter(|s| !left_signatures.contains(&signature(&s.labels, matching))),
            );
            out
        }
    }
}

fn vector_binary(
    op: u8,
    left: Vec<Sample>,
    right: Vec<Sample>,
    matching: Option<&LabelModifier>,
    card: &VectorMatchCardinality,
    return_bool: bool,
    drops_name: bool,
) -> Result<Vec<Sample>, QueryError> {
    // For group_right the right side is the "many" side: iterate it and swap values back.
    let swapped = matches!(card, VectorMatchCardinality::OneToMany(_));
    let (many, one) = if swapped {
        (right, left)
    } else {
        (left, right)
    };
    let mut one_by_signature: HashMap<Labels, Sample> = HashMap::with_capacity(one.len());
    for sample in one {
        let key = signature(&sample.labels, matching);
        if one_by_signature.contains_key(&key) {
            let side = if swapped { "left" } else { "right" };
            return Err(QueryError::execution(format!(
                "found duplicate series for the match group {key} on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
        one_by_signature.insert(key, sample);
    }
    let include = match card {
        VectorMatchCardinality::ManyToOne(labels) | VectorMatchCardinality::OneToMany(labels) => {
            Some(&labels.labels)
        }
        _ => None,
    };
    let mut matched: HashSet<Labels> = HashSet::new();
    let mut out = Vec::new();
    for sample in many {
        let key = signature(&sample.labels, matching);
        let Some(partner) = one_by_signature.get(&key) else {
            continue;
        };
        let (a, b) = if swapped {
            (partner.value, sample.value)
        } else {
            (sample.value, partner.value)
        };
        let Some(value) = element(op, a, b, return_bool, a)? else {
            continue;
        };
        if include.is_none() && !matched.insert(key.clone()) {
            return Err(QueryError::execution(format!(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right); duplicate match group {key}"
            )));
        }
        let mut labels = if drops_name {
            sample.labels.without_name()
        } else {
            sample.labels
        };
        match include {
            None => match matching {
                Some(LabelModifier::Include(on)) => labels = labels.project(&on.labels, true),
                Some(LabelModifier::Exclude(ignoring)) => {
                    for name in &ignoring.labels {
                        labels.set(name, "");
                    }
                }
                None => {}
            },
            Some(names) => {
                for name in names {
                    labels.set(name, partner.labels.get(name).unwrap_or(""));
                }
            }
        }
        out.push(Sample { labels, value });
    }
    Ok(out)
}
