//! The checker: static types of field expressions and the nodes built only when their operands
//! make sense together, each error pointing at the operator or operand at fault. Kept out of
//! the grammar functions so that their stack frames — one set per level of nesting — stay small.

use regex::Regex;

use crate::ast::*;
use crate::error::ParseError;

use super::Parser;

/// The static type of a field expression.
pub fn field_type(expr: &FieldExpr) -> ValueType {
    match expr {
        FieldExpr::Static(value) => value.value_type(),
        FieldExpr::Field(Field::Intrinsic(intrinsic)) => intrinsic.value_type(),
        FieldExpr::Field(Field::Attribute { .. }) => ValueType::Attribute,
        FieldExpr::Not(_) | FieldExpr::Regex { .. } => ValueType::Bool,
        FieldExpr::Negate(inner) => field_type(inner),
        FieldExpr::Binary { op, lhs, rhs } => {
            if !op.is_arithmetic() {
                return ValueType::Bool;
            }
            arithmetic_type(field_type(lhs), field_type(rhs))
        }
    }
}

fn arithmetic_type(lhs: ValueType, rhs: ValueType) -> ValueType {
    match (lhs, rhs) {
        (ValueType::Attribute, _) | (_, ValueType::Attribute) => ValueType::Attribute,
        (ValueType::Duration, _) | (_, ValueType::Duration) => ValueType::Duration,
        (ValueType::Float, _) | (_, ValueType::Float) => ValueType::Float,
        _ => ValueType::Int,
    }
}

/// Whether two static types may be compared with `=`/`!=` (`ordered` adds `< <= > >=`).
fn comparable(lhs: ValueType, rhs: ValueType, ordered: bool) -> bool {
    use ValueType::*;
    if lhs == Attribute || rhs == Attribute {
        return !ordered || (lhs != Nil && rhs != Nil && lhs != Bool && rhs != Bool);
    }
    if lhs == Nil || rhs == Nil {
        return !ordered;
    }
    let numeric = |t: ValueType| matches!(t, Int | Float | Duration);
    if numeric(lhs) && numeric(rhs) {
        return true;
    }
    if lhs != rhs {
        return false;
    }
    !ordered || lhs == String
}

/// `lhs op rhs` for a binary operator other than the regex ones, checked.
pub(super) fn binary(
    parser: &Parser<'_>,
    op: BinaryOp,
    lhs: FieldExpr,
    rhs: FieldExpr,
    at: usize,
) -> Result<FieldExpr, ParseError> {
    if matches!(op, BinaryOp::And | BinaryOp::Or) {
        return logical(parser, op, lhs, rhs, at);
    }
    if op.is_comparison() {
        return comparison(parser, op, lhs, rhs, at);
    }
    for side in [&lhs, &rhs] {
        let side_type = field_type(side);
        if !side_type.is_numeric() {
            return Err(parser.invalid(
                at,
                format!(
                    "operator `{}` needs numeric operands, found {}",
                    op.symbol(),
                    side_type.name()
                ),
            ));
        }
    }
    Ok(FieldExpr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    })
}

fn logical(
    parser: &Parser<'_>,
    op: BinaryOp,
    lhs: FieldExpr,
    rhs: FieldExpr,
    at: usize,
) -> Result<FieldExpr, ParseError> {
    for side in [&lhs, &rhs] {
        let side_type = field_type(side);
        if !matches!(side_type, ValueType::Bool | ValueType::Attribute) {
            return Err(parser.invalid(
                at,
                format!(
                    "operator `{}` needs boolean operands, found {}",
                    op.symbol(),
                    side_type.name()
                ),
            ));
        }
    }
    Ok(FieldExpr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    })
}

fn comparison(
    parser: &Parser<'_>,
    op: BinaryOp,
    lhs: FieldExpr,
    rhs: FieldExpr,
    at: usize,
) -> Result<FieldExpr, ParseError> {
    let (lhs_type, rhs_type) = (field_type(&lhs), field_type(&rhs));
    let ordered = !matches!(op, BinaryOp::Eq | BinaryOp::Neq);
    if !comparable(lhs_type, rhs_type, ordered) {
        return Err(parser.invalid(
            at,
            format!(
                "cannot compare {} with {} using `{}`",
                lhs_type.name(),
                rhs_type.name(),
                op.symbol()
            ),
        ));
    }
    // `nil` goes on the right, where the pushdown condition looks for it (`field op literal`).
    let (lhs, rhs) = match (lhs, rhs) {
        // As in Tempo, comparing two literal nils is false whichever the operator.
        (FieldExpr::Static(Static::Nil), FieldExpr::Static(Static::Nil)) => {
            return Ok(FieldExpr::Static(Static::Bool(false)))
        }
        (FieldExpr::Static(Static::Nil), other) => (other, FieldExpr::Static(Static::Nil)),
        sides => sides,
    };
    if let (BinaryOp::Eq, FieldExpr::Field(field), FieldExpr::Static(Static::Nil)) =
        (op, &lhs, &rhs)
    {
        if never_nil(field) {
            return Err(parser.invalid(
                at,
                format!("`{field} = nil` never matches: every span has `{field}`"),
            ));
        }
    }
    Ok(FieldExpr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    })
}

/// Fields every span has, so that `= nil` on them is a mistake (Tempo refuses it too):
/// per-span and per-trace intrinsics that are never empty, and the service name. Intrinsics
/// that can be missing stay testable — `span:parentID = nil` finds roots, `trace:rootName` is nil
/// in a trace without its root, `instrumentation:name` without a scope, events and links when
/// a span has none.
fn never_nil(field: &Field) -> bool {
    match field {
        Field::Attribute {
            scope: Scope::Resource,
            parent: false,
            name,
        } => name == "service.name",
        Field::Attribute { .. } => false,
        Field::Intrinsic(intrinsic) => matches!(
            intrinsic,
            Intrinsic::Name
                | Intrinsic::Status
                | Intrinsic::StatusMessage
                | Intrinsic::Kind
                | Intrinsic::Duration
                | Intrinsic::SpanId
                | Intrinsic::ChildCount
                | Intrinsic::TraceId
                | Intrinsic::TraceDuration
                | Intrinsic::NestedSetLeft
                | Intrinsic::NestedSetRight
                | Intrinsic::NestedSetParent
        ),
    }
}

/// Whether an expression reads the span (an attribute or an intrinsic) rather than being the
/// same for every span. Recursive: the parser built it within `MAX_QUERY_DEPTH`.
fn reads_span(expr: &FieldExpr) -> bool {
    match expr {
        FieldExpr::Static(_) => false,
        FieldExpr::Field(_) => true,
        FieldExpr::Not(inner) | FieldExpr::Negate(inner) => reads_span(inner),
        FieldExpr::Regex { lhs, .. } => reads_span(lhs),
        FieldExpr::Binary { lhs, rhs, .. } => reads_span(lhs) || reads_span(rhs),
    }
}

/// A `by()` group: it must tell spans apart, so it reads the span (Tempo refuses `by(1)` too).
pub(super) fn group(parser: &Parser<'_>, expr: &FieldExpr, at: usize) -> Result<(), ParseError> {
    if !reads_span(expr) {
        return Err(parser.invalid(
            at,
            "by() groups spans by a value of each span: its argument must read an attribute or intrinsic, e.g. by(resource.service.name)",
        ));
    }
    Ok(())
}

/// `lhs =~ pattern` / `!~`: the pattern compiled once, fully anchored.
pub(super) fn regex(
    parser: &Parser<'_>,
    op: BinaryOp,
    lhs: FieldExpr,
    pattern: String,
    pattern_at: usize,
) -> Result<FieldExpr, ParseError> {
    let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|error| {
        parser.invalid(
            pattern_at,
            format!(
                "invalid regular expression: {}",
                first_line(&error.to_string())
            ),
        )
    })?;
    Ok(FieldExpr::Regex {
        negated: op == BinaryOp::NotRegex,
        lhs: Box::new(lhs),
        pattern,
        regex,
    })
}

/// Whether `lhs` may be matched against a regular expression.
pub(super) fn check_regex_subject(
    parser: &Parser<'_>,
    lhs: &FieldExpr,
    at: usize,
) -> Result<(), ParseError> {
    let lhs_type = field_type(lhs);
    if !matches!(lhs_type, ValueType::String | ValueType::Attribute) {
        return Err(parser.invalid(
            at,
            format!(
                "regular expressions match strings, found {}",
                lhs_type.name()
            ),
        ));
    }
    Ok(())
}

/// `!inner` (`negation`) or `-inner`, checked; `-` of a literal folds into the literal.
pub(super) fn unary(
    parser: &Parser<'_>,
    negation: bool,
    inner: FieldExpr,
    at: usize,
) -> Result<FieldExpr, ParseError> {
    let inner_type = field_type(&inner);
    if negation {
        if !matches!(inner_type, ValueType::Bool | ValueType::Attribute) {
            return Err(parser.invalid(
                at,
                format!("`!` needs a boolean, found {}", inner_type.name()),
            ));
        }
        return Ok(FieldExpr::Not(Box::new(inner)));
    }
    match inner {
        FieldExpr::Static(Static::Int(value)) => Ok(FieldExpr::Static(Static::Int(-value))),
        FieldExpr::Static(Static::Float(value)) => Ok(FieldExpr::Static(Static::Float(-value))),
        FieldExpr::Static(Static::Duration(value)) => {
            Ok(FieldExpr::Static(Static::Duration(-value)))
        }
        other if inner_type.is_numeric() => Ok(FieldExpr::Negate(Box::new(other))),
        _ => Err(parser.invalid(
            at,
            format!("`-` needs a number, found {}", inner_type.name()),
        )),
    }
}

/// A spanset filter's condition must be a boolean (or an attribute, known only at run time).
pub(super) fn filter_condition(
    parser: &Parser<'_>,
    expr: &FieldExpr,
    at: usize,
) -> Result<(), ParseError> {
    let value_type = field_type(expr);
    if !matches!(value_type, ValueType::Bool | ValueType::Attribute) {
        return Err(parser.invalid(
            at,
            format!(
                "a spanset filter must be a boolean expression, this is {}",
                value_type.name()
            ),
        ));
    }
    Ok(())
}

/// An aggregate's argument: none for `count()`, a number otherwise.
pub(super) fn aggregate(
    parser: &Parser<'_>,
    word: &str,
    function: Aggregate,
    argument: Option<FieldExpr>,
    at: usize,
    argument_at: usize,
) -> Result<ScalarExpr, ParseError> {
    let Some(argument) = argument else {
        if function != Aggregate::Count {
            return Err(parser.invalid(
                at,
                format!("{word}() needs an argument, e.g. {word}(duration)"),
            ));
        }
        return Ok(ScalarExpr::Aggregate {
            function,
            argument: None,
        });
    };
    if function == Aggregate::Count {
        return Err(parser.invalid(argument_at, "count() takes no argument"));
    }
    let argument_type = field_type(&argument);
    if !argument_type.is_numeric() {
        return Err(parser.invalid(
            argument_at,
            format!(
                "{word}() needs a numeric argument, this is {}",
                argument_type.name()
            ),
        ));
    }
    if !reads_span(&argument) {
        return Err(parser.invalid(
            argument_at,
            format!("{word}() aggregates a value of each span: its argument must read an attribute or intrinsic, e.g. {word}(duration)"),
        ));
    }
    Ok(ScalarExpr::Aggregate {
        function,
        argument: Some(argument),
    })
}

fn first_line(message: &str) -> String {
    message
        .lines()
        .rfind(|line| !line.trim().is_empty())
        .unwrap_or(message)
        .trim()
        .to_owned()
}
