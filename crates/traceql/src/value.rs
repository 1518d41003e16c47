//! Run-time values and the comparison rules every part of the engine shares (the evaluator and
//! the storage scans call the same `compare`, so pushed-down predicates cannot disagree with the
//! full evaluation).
//!
//! Rules: a missing attribute is `Nil` and only `= nil` / `!= nil` are true of it; values of
//! different types never compare (every operator is false), except that ints, floats and
//! durations compare as numbers; arrays match when *any* element matches `=`, `=~`, `<`, …, and
//! when *no* element matches for `!=`/`!~`; event and link attributes (`Multi`) match when any
//! event or link matches.

use std::borrow::Cow;
use std::cmp::Ordering;

use andante_model::otlp::common::v1::{any_value, AnyValue};
use regex::Regex;

use crate::ast::{BinaryOp, SpanKind, Static, StatusCode};

#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Duration(i64),
    Status(StatusCode),
    Kind(SpanKind),
    /// An OTLP array attribute.
    Array(Vec<Value<'a>>),
    /// One value per event or link of the span.
    Multi(Vec<Value<'a>>),
}

impl<'a> Value<'a> {
    pub fn from_any(value: &'a AnyValue) -> Value<'a> {
        match &value.value {
            Some(any_value::Value::StringValue(text)) => Value::Str(Cow::Borrowed(text)),
            Some(any_value::Value::IntValue(number)) => Value::Int(*number),
            Some(any_value::Value::DoubleValue(number)) => Value::Float(*number),
            Some(any_value::Value::BoolValue(flag)) => Value::Bool(*flag),
            Some(any_value::Value::ArrayValue(array)) => {
                Value::Array(array.values.iter().map(Value::from_any).collect())
            }
            Some(any_value::Value::BytesValue(bytes)) => Value::Str(Cow::Owned(hex::encode(bytes))),
            Some(any_value::Value::KvlistValue(_) | any_value::Value::StringValueStrindex(_))
            | None => Value::Nil,
        }
    }

    pub fn from_static(value: &Static) -> Value<'static> {
        match value {
            Static::Nil => Value::Nil,
            Static::Bool(flag) => Value::Bool(*flag),
            Static::Int(number) => Value::Int(*number),
            Static::Float(number) => Value::Float(*number),
            Static::String(text) => Value::Str(Cow::Owned(text.clone())),
            Static::Duration(nanos) => Value::Duration(*nanos),
            Static::Status(status) => Value::Status(*status),
            Static::Kind(kind) => Value::Kind(*kind),
        }
    }

    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Nil => Value::Nil,
            Value::Bool(flag) => Value::Bool(flag),
            Value::Int(number) => Value::Int(number),
            Value::Float(number) => Value::Float(number),
            Value::Str(text) => Value::Str(Cow::Owned(text.into_owned())),
            Value::Duration(nanos) => Value::Duration(nanos),
            Value::Status(status) => Value::Status(status),
            Value::Kind(kind) => Value::Kind(kind),
            Value::Array(items) => Value::Array(items.into_iter().map(Value::into_owned).collect()),
            Value::Multi(items) => Value::Multi(items.into_iter().map(Value::into_owned).collect()),
        }
    }

    pub fn is_nil(&self) -> bool {
        match self {
            Value::Nil => true,
            Value::Multi(items) => items.iter().all(Value::is_nil),
            _ => false,
        }
    }

    fn as_number(&self) -> Option<f64> {
        match self {
            Value::Int(number) | Value::Duration(number) => Some(*number as f64),
            Value::Float(number) => Some(*number),
            _ => None,
        }
    }

    /// A total order for grouping and sorting output (not TraceQL comparison).
    pub fn sort_key(&self) -> (u8, f64, String) {
        match self {
            Value::Nil => (0, 0.0, String::new()),
            Value::Bool(flag) => (1, f64::from(u8::from(*flag)), String::new()),
            Value::Int(_) | Value::Float(_) | Value::Duration(_) => {
                (2, self.as_number().unwrap_or(0.0), String::new())
            }
            Value::Str(text) => (3, 0.0, text.to_string()),
            Value::Status(status) => (4, *status as u8 as f64, String::new()),
            Value::Kind(kind) => (5, *kind as u8 as f64, String::new()),
            Value::Array(_) | Value::Multi(_) => (6, 0.0, format!("{self:?}")),
        }
    }
}

/// Orders two scalar values of compatible types.
fn order(lhs: &Value<'_>, rhs: &Value<'_>) -> Option<Ordering> {
    match (lhs, rhs) {
        (Value::Int(a), Value::Int(b)) | (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
        (Value::Str(a), Value::Str(b)) => Some(a.as_ref().cmp(b.as_ref())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Status(a), Value::Status(b)) => Some(a.cmp(b)),
        (Value::Kind(a), Value::Kind(b)) => Some(a.cmp(b)),
        _ => {
            let (a, b) = (lhs.as_number()?, rhs.as_number()?);
            a.partial_cmp(&b)
        }
    }
}

/// TraceQL's `lhs op rhs` for the comparison operators (not the regex ones).
pub fn compare(op: BinaryOp, lhs: &Value<'_>, rhs: &Value<'_>) -> bool {
    match (lhs, rhs) {
        (Value::Multi(items), other) => return items.iter().any(|item| compare(op, item, other)),
        (other, Value::Multi(items)) => return items.iter().any(|item| compare(op, other, item)),
        _ => {}
    }
    // A missing value compares false with anything (so `{ .a != 1 }` and `{ 1 != .a }` need
    // `.a` to exist); only the `nil` literal asks about existence, through `compare_nil`. A
    // missing value here cannot be told from that literal, so callers decide before.
    if lhs.is_nil() || rhs.is_nil() {
        return false;
    }
    match (lhs, rhs) {
        (Value::Array(items), other) if !matches!(other, Value::Array(_)) => {
            if op == BinaryOp::Neq {
                return !items.is_empty() && items.iter().all(|item| compare(op, item, other));
            }
            return items.iter().any(|item| compare(op, item, other));
        }
        (other, Value::Array(items)) if !matches!(other, Value::Array(_)) => {
            if op == BinaryOp::Neq {
                return !items.is_empty() && items.iter().all(|item| compare(op, other, item));
            }
            return items.iter().any(|item| compare(op, other, item));
        }
        (Value::Array(a), Value::Array(b)) => {
            return match op {
                BinaryOp::Eq => a == b,
                BinaryOp::Neq => a != b,
                _ => false,
            }
        }
        _ => {}
    }
    let Some(ordering) = order(lhs, rhs) else {
        return false;
    };
    match op {
        BinaryOp::Eq => ordering == Ordering::Equal,
        BinaryOp::Neq => ordering != Ordering::Equal,
        BinaryOp::Gt => ordering == Ordering::Greater,
        BinaryOp::Gte => ordering != Ordering::Less,
        BinaryOp::Lt => ordering == Ordering::Less,
        BinaryOp::Lte => ordering != Ordering::Greater,
        _ => false,
    }
}

/// `operand op nil` (either side): `=` asks whether the operand is missing, `!=` whether it
/// exists; other operators are false.
pub fn compare_nil(op: BinaryOp, operand: &Value<'_>) -> bool {
    match op {
        BinaryOp::Eq => operand.is_nil(),
        BinaryOp::Neq => !operand.is_nil(),
        _ => false,
    }
}

/// `lhs =~ regex` (or `!~` when `negated`), with the same any/none rules as `compare`.
pub fn regex_match(regex: &Regex, negated: bool, lhs: &Value<'_>) -> bool {
    match lhs {
        Value::Str(text) => regex.is_match(text) != negated,
        Value::Multi(items) => items.iter().any(|item| regex_match(regex, negated, item)),
        Value::Array(items) if negated => {
            !items.is_empty() && items.iter().all(|item| regex_match(regex, negated, item))
        }
        Value::Array(items) => items.iter().any(|item| regex_match(regex, negated, item)),
        _ => false,
    }
}

/// `lhs op rhs` for arithmetic; `Nil` when an operand is not a number or the result is undefined.
pub fn arithmetic(op: BinaryOp, lhs: &Value<'_>, rhs: &Value<'_>) -> Value<'static> {
    let is_duration = matches!(lhs, Value::Duration(_)) || matches!(rhs, Value::Duration(_));
    if let (Value::Int(a) | Value::Duration(a), Value::Int(b) | Value::Duration(b)) = (lhs, rhs) {
        let (a, b) = (*a, *b);
        let result = match op {
            BinaryOp::Add => a.checked_add(b),
            BinaryOp::Sub => a.checked_sub(b),
            BinaryOp::Mul => a.checked_mul(b),
            BinaryOp::Div => a.checked_div(b),
            BinaryOp::Mod => a.checked_rem(b),
            BinaryOp::Pow => u32::try_from(b)
                .ok()
                .and_then(|exponent| a.checked_pow(exponent)),
            _ => None,
        };
        return match result {
            Some(value) if is_duration => Value::Duration(value),
            Some(value) => Value::Int(value),
            None => Value::Nil,
        };
    }
    let (Some(a), Some(b)) = (lhs.as_number(), rhs.as_number()) else {
        return Value::Nil;
    };
    let result = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Mod => a % b,
        BinaryOp::Pow => a.powf(b),
        _ => return Value::Nil,
    };
    if !result.is_finite() {
        return Value::Nil;
    }
    if is_duration {
        return Value::Duration(result.round() as i64);
    }
    Value::Float(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value<'static> {
        Value::Str(Cow::Owned(text.to_owned()))
    }

    #[test]
    fn comparison_rules() {
        let cases: &[(BinaryOp, Value, Value, bool)] = &[
            (BinaryOp::Eq, Value::Int(3), Value::Float(3.0), true),
            (BinaryOp::Lt, Value::Duration(5), Value::Int(6), true),
            (BinaryOp::Eq, s("a"), Value::Int(1), false),
            (BinaryOp::Neq, s("a"), Value::Int(1), false),
            // A missing value is false on either side (fuzz finding 3: `1 != .a` matched
            // spans without `.a`, unlike its pushdown condition `.a != 1`).
            (BinaryOp::Neq, s("a"), Value::Nil, false),
            (BinaryOp::Neq, Value::Nil, s("a"), false),
            (BinaryOp::Neq, Value::Int(1), Value::Nil, false),
            (BinaryOp::Eq, Value::Nil, Value::Nil, false),
            (BinaryOp::Gt, Value::Nil, Value::Int(1), false),
            (
                BinaryOp::Eq,
                Value::Array(vec![s("a"), s("b")]),
                s("b"),
                true,
            ),
            (
                BinaryOp::Neq,
                Value::Array(vec![s("a"), s("b")]),
                s("b"),
                false,
            ),
            (
                BinaryOp::Neq,
                Value::Array(vec![s("a"), s("b")]),
                s("c"),
                true,
            ),
            (
                BinaryOp::Eq,
                Value::Multi(vec![s("x"), s("y")]),
                s("y"),
                true,
            ),
            (BinaryOp::Neq, Value::Multi(vec![s("x")]), s("x"), false),
            (BinaryOp::Gt, s("b"), s("a"), true),
            (
                BinaryOp::Eq,
                Value::Status(StatusCode::Error),
                Value::Status(StatusCode::Error),
                true,
            ),
        ];
        for (op, lhs, rhs, expected) in cases {
            assert_eq!(
                compare(*op, lhs, rhs),
                *expected,
                "{lhs:?} {} {rhs:?}",
                op.symbol()
            );
        }
    }

    #[test]
    fn only_the_nil_literal_tests_existence() {
        assert!(compare_nil(BinaryOp::Neq, &s("a")));
        assert!(!compare_nil(BinaryOp::Eq, &s("a")));
        assert!(compare_nil(BinaryOp::Eq, &Value::Nil));
        assert!(!compare_nil(BinaryOp::Neq, &Value::Nil));
        assert!(!compare_nil(BinaryOp::Gt, &s("a")));
        assert!(compare_nil(
            BinaryOp::Neq,
            &Value::Multi(vec![Value::Nil, s("a")])
        ));
        assert!(compare_nil(BinaryOp::Eq, &Value::Multi(vec![])));
    }

    #[test]
    fn arithmetic_rules() {
        assert_eq!(
            arithmetic(BinaryOp::Add, &Value::Int(2), &Value::Int(3)),
            Value::Int(5)
        );
        assert_eq!(
            arithmetic(BinaryOp::Mul, &Value::Duration(2), &Value::Int(3)),
            Value::Duration(6)
        );
        assert_eq!(
            arithmetic(BinaryOp::Div, &Value::Int(1), &Value::Int(0)),
            Value::Nil
        );
        assert_eq!(
            arithmetic(BinaryOp::Div, &Value::Float(1.0), &Value::Int(4)),
            Value::Float(0.25)
        );
        assert_eq!(
            arithmetic(BinaryOp::Add, &s("a"), &Value::Int(1)),
            Value::Nil
        );
        assert_eq!(
            arithmetic(BinaryOp::Pow, &Value::Int(2), &Value::Int(10)),
            Value::Int(1024)
        );
    }
}
