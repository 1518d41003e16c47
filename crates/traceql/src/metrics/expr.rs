//! Metrics expressions: arithmetic between parenthesised metrics queries and numbers, then
//! second stages over the whole, as Tempo's grammar has them:
//! `({ status = error } | rate()) / ({ } | rate()) * 100 > 5 | topk(3)`.
//!
//! Numbers fold while parsing, with TraceQL's types as Tempo folds them: integers stay integers
//! (`1 / 2` is 0) and dividing an integer by zero is an error. Durations only serve as
//! comparison thresholds (`> 10s`, in seconds as metrics report durations), never in arithmetic.
//!
//! Every operator — arithmetic, a comparison that keeps samples, a rank — is a
//! `MetricsExpr::Binary` evaluated by `combine`, one node at a time, so that whoever reduces the
//! tree (the query crate) evaluates any of them without knowing which.

use crate::ast::{BinaryOp, Hint};
use crate::error::ParseError;
use crate::lexer::{lex, Token};
use crate::parser::Parser;

use super::parse::{leading_dot_number, metrics_body, parse_metrics, second_stages, COMPARE_ALONE};
use super::{MetricsFunction, MetricsQuery, SecondStage};

/// A metrics query, a number, or an operator over two of them.
#[derive(Debug, Clone)]
pub enum MetricsExpr {
    Query(Box<MetricsQuery>),
    Number(f64),
    Binary {
        op: MetricsOp,
        lhs: Box<MetricsExpr>,
        rhs: Box<MetricsExpr>,
    },
}

/// An operator of a metrics expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `lhs > rhs` and the other comparisons: the series side keeps the samples for which the
    /// comparison with the number side holds; series left without samples are dropped.
    Filter(BinaryOp),
    /// `lhs | topk(rhs)`: at each timestamp, the `rhs` series of `lhs` with the highest samples.
    TopK,
    /// `lhs | bottomk(rhs)`: the same with the lowest.
    BottomK,
}

impl MetricsOp {
    pub fn symbol(self) -> &'static str {
        match self {
            MetricsOp::Add => "+",
            MetricsOp::Sub => "-",
            MetricsOp::Mul => "*",
            MetricsOp::Div => "/",
            MetricsOp::Filter(op) => op.symbol(),
            MetricsOp::TopK => "topk",
            MetricsOp::BottomK => "bottomk",
        }
    }

    /// One sample against another: arithmetic (division by zero is NaN, as in Tempo, not ±Inf);
    /// for a filter `a` when the comparison holds, else NaN; a rank passes `a` through.
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            MetricsOp::Add => a + b,
            MetricsOp::Sub => a - b,
            MetricsOp::Mul => a * b,
            MetricsOp::Div if b == 0.0 => f64::NAN,
            MetricsOp::Div => a / b,
            MetricsOp::Filter(op) if passes(op, a, b) => a,
            MetricsOp::Filter(_) => f64::NAN,
            MetricsOp::TopK | MetricsOp::BottomK => a,
        }
    }

    fn of_stage(stage: &SecondStage) -> (MetricsOp, f64) {
        match stage {
            SecondStage::TopK(k) => (MetricsOp::TopK, *k as f64),
            SecondStage::BottomK(k) => (MetricsOp::BottomK, *k as f64),
            SecondStage::Filter(op, threshold) => (MetricsOp::Filter(*op), *threshold),
        }
    }
}

/// Whether `value op threshold` holds; NaN passes no comparison (`!=` included), as in Tempo.
pub(crate) fn passes(op: BinaryOp, value: f64, threshold: f64) -> bool {
    !value.is_nan()
        && !threshold.is_nan()
        && crate::value::compare(
            op,
            &crate::Value::Float(value),
            &crate::Value::Float(threshold),
        )
}

impl MetricsExpr {
    /// The metrics queries in evaluation order.
    pub fn queries(&self) -> Vec<&MetricsQuery> {
        match self {
            MetricsExpr::Query(query) => vec![query],
            MetricsExpr::Number(_) => Vec::new(),
            MetricsExpr::Binary { lhs, rhs, .. } => {
                let mut out = lhs.queries();
                out.extend(rhs.queries());
                out
            }
        }
    }

    fn has_compare(&self) -> bool {
        self.queries()
            .iter()
            .any(|query| matches!(query.function, MetricsFunction::Compare(_)))
    }
}

/// Parses a metrics query, or arithmetic between parenthesised metrics queries and numbers,
/// either followed by second stages. A plain query's error is reported when the text is not
/// arithmetic (it is the common case).
pub fn parse_metrics_expr(text: &str) -> Result<MetricsExpr, ParseError> {
    let plain_error = match parse_metrics(text) {
        Ok(query) => return Ok(MetricsExpr::Query(Box::new(query))),
        Err(error) => error,
    };
    let Ok(tokens) = lex(text) else {
        return Err(plain_error);
    };
    let arithmetic_start = matches!(
        tokens.first().map(|spanned| &spanned.token),
        Some(Token::LParen | Token::Int(_) | Token::Float(_) | Token::Minus)
    );
    let mut parser = Parser::new(text, tokens);
    let parsed = expression(&mut parser).and_then(|expr| {
        let hints = parser.hints()?;
        if parser.peek().is_some() {
            return Err(parser.unexpected());
        }
        Ok((expr, hints))
    });
    match parsed {
        Ok((Some(mut expr), hints)) => {
            set_hints(&mut expr, &hints);
            Ok(expr)
        }
        Ok((None, _)) => {
            Err(ParseError::invalid(text, 0, "not a metrics query: arithmetic needs a metrics query among its operands, e.g. `({ } | rate()) * 2`"))
        }
        Err(error) if arithmetic_start => Err(error),
        Err(_) => Err(plain_error),
    }
}

fn set_hints(expr: &mut MetricsExpr, hints: &[Hint]) {
    match expr {
        MetricsExpr::Query(query) => query.search.hints = hints.to_vec(),
        MetricsExpr::Number(_) => {}
        MetricsExpr::Binary { lhs, rhs, .. } => {
            set_hints(lhs, hints);
            set_hints(rhs, hints);
        }
    }
}

/// A number before folding, typed as TraceQL types it.
#[derive(Debug, Clone, Copy)]
enum Constant {
    Int(i64),
    Float(f64),
    Duration(i64),
}

/// What arithmetic has built so far: a constant still folding, or an expression with a query.
enum Term {
    Constant(Constant),
    Expr(MetricsExpr),
}

const DURATION_ARITHMETIC: &str =
    "durations cannot take part in metrics arithmetic, only be compared with, e.g. `> 10s`";

/// Arithmetic, then second stages over the whole; None when no metrics query takes part.
fn expression(parser: &mut Parser<'_>) -> Result<Option<MetricsExpr>, ParseError> {
    let outer = parser.begin_measure();
    let term = arithmetic(parser, 0);
    let mut height = parser.end_measure(outer);
    let mut expr = match term? {
        Term::Expr(expr) => expr,
        Term::Constant(_) => return Ok(None),
    };
    let stages_at = parser.offset();
    let stages = second_stages(parser)?;
    if !stages.is_empty() && expr.has_compare() {
        return Err(parser.invalid(stages_at, COMPARE_ALONE));
    }
    // On one query the stages are its own (and keep its exemplars); over arithmetic each wraps
    // the expression so far.
    if let MetricsExpr::Query(query) = &mut expr {
        query
            .second_stages
            .extend(stages.into_iter().map(|(stage, _)| stage));
        return Ok(Some(expr));
    }
    for (stage, at) in stages {
        height = parser.grow(height, 0, at)?;
        let (op, parameter) = MetricsOp::of_stage(&stage);
        expr = MetricsExpr::Binary {
            op,
            lhs: Box::new(expr),
            rhs: Box::new(MetricsExpr::Number(parameter)),
        };
    }
    Ok(Some(expr))
}

/// `+ -` (level 0) and `* /` (level 1), left-associative.
fn arithmetic(parser: &mut Parser<'_>, min_level: u8) -> Result<Term, ParseError> {
    let outer = parser.begin_measure();
    let first = term(parser);
    let mut height = parser.end_measure(outer);
    let mut lhs = first?;
    loop {
        let (op, level) = match parser.peek() {
            Some(Token::Plus) => (MetricsOp::Add, 0),
            Some(Token::Minus) => (MetricsOp::Sub, 0),
            Some(Token::Star) => (MetricsOp::Mul, 1),
            Some(Token::Slash) => (MetricsOp::Div, 1),
            _ => return Ok(lhs),
        };
        if level < min_level {
            return Ok(lhs);
        }
        let at = parser.offset();
        parser.advance();
        parser.descend(at)?;
        let outer = parser.begin_measure();
        let rhs = arithmetic(parser, level + 1);
        let rhs_height = parser.end_measure(outer);
        parser.ascend();
        let rhs = rhs?;
        height = parser.grow(height, rhs_height, at)?;
        lhs = combine_terms(parser, op, lhs, rhs, at)?;
    }
}

/// A number, `-` and a number, or something in parentheses.
fn term(parser: &mut Parser<'_>) -> Result<Term, ParseError> {
    let at = parser.offset();
    let token = parser.peek().cloned();
    match token {
        Some(Token::Int(value)) => {
            parser.advance();
            Ok(Term::Constant(Constant::Int(value)))
        }
        Some(Token::Float(value)) => {
            parser.advance();
            Ok(Term::Constant(Constant::Float(value)))
        }
        Some(Token::Duration(nanos)) => {
            parser.advance();
            Ok(Term::Constant(Constant::Duration(nanos)))
        }
        Some(Token::Minus) => {
            parser.advance();
            parser.descend(at)?;
            let inner = term(parser);
            parser.ascend();
            match inner? {
                Term::Constant(constant) => negate(parser, constant, at).map(Term::Constant),
                // Tempo's grammar negates numbers only.
                Term::Expr(_) => Err(parser.invalid(at, "`-` negates numbers only; subtract from zero instead, e.g. `0 - ({ } | rate())`")),
            }
        }
        Some(Token::LParen) => parenthesised(parser),
        Some(token) => match leading_dot_number(parser, &token, at) {
            Some(value) => {
                parser.advance();
                Ok(Term::Constant(Constant::Float(value)))
            }
            None => Err(parser.unexpected()),
        },
        None => Err(parser.unexpected()),
    }
}

/// `( pipeline | function … )` or `( arithmetic )`: the query is tried first; when neither
/// parses, the error of the attempt that read further is the one that says what is wrong.
fn parenthesised(parser: &mut Parser<'_>) -> Result<Term, ParseError> {
    let (open, depth, deepest) = (parser.pos, parser.depth, parser.deepest);
    let open_at = parser.offset();
    parser.advance();
    parser.descend(open_at)?;
    let query = metrics_body(parser).and_then(|query| parser.expect(Token::RParen).map(|()| query));
    parser.ascend();
    let query_error = match query {
        Ok(query) => return Ok(Term::Expr(MetricsExpr::Query(Box::new(query)))),
        Err(error) => error,
    };
    // Back to just after the parenthesis, forgetting how deep the failed attempt went.
    (parser.pos, parser.depth, parser.deepest) = (open + 1, depth, deepest);
    parser.descend(open_at)?;
    let inner =
        arithmetic(parser, 0).and_then(|inner| parser.expect(Token::RParen).map(|()| inner));
    parser.ascend();
    match inner {
        Ok(inner) => Ok(inner),
        Err(error) if error.offset >= query_error.offset => Err(error),
        Err(_) => Err(query_error),
    }
}

fn combine_terms(
    parser: &Parser<'_>,
    op: MetricsOp,
    lhs: Term,
    rhs: Term,
    at: usize,
) -> Result<Term, ParseError> {
    let operand = |term: Term| -> Result<MetricsExpr, ParseError> {
        match term {
            Term::Expr(expr) if expr.has_compare() => Err(parser.invalid(at, COMPARE_ALONE)),
            Term::Expr(expr) => Ok(expr),
            Term::Constant(Constant::Int(value)) => Ok(MetricsExpr::Number(value as f64)),
            Term::Constant(Constant::Float(value)) => Ok(MetricsExpr::Number(value)),
            Term::Constant(Constant::Duration(_)) => Err(parser.invalid(at, DURATION_ARITHMETIC)),
        }
    };
    if let (Term::Constant(a), Term::Constant(b)) = (&lhs, &rhs) {
        return fold(parser, op, *a, *b, at).map(Term::Constant);
    }
    Ok(Term::Expr(MetricsExpr::Binary {
        op,
        lhs: Box::new(operand(lhs)?),
        rhs: Box::new(operand(rhs)?),
    }))
}

/// Constant arithmetic with TraceQL's types: integers stay integers, floats otherwise.
fn fold(
    parser: &Parser<'_>,
    op: MetricsOp,
    a: Constant,
    b: Constant,
    at: usize,
) -> Result<Constant, ParseError> {
    let overflow = || parser.invalid(at, format!("integer overflow in `{}`", op.symbol()));
    match (a, b) {
        (Constant::Duration(_), _) | (_, Constant::Duration(_)) => {
            Err(parser.invalid(at, DURATION_ARITHMETIC))
        }
        (Constant::Int(a), Constant::Int(b)) => {
            let result = match op {
                MetricsOp::Add => a.checked_add(b),
                MetricsOp::Sub => a.checked_sub(b),
                MetricsOp::Mul => a.checked_mul(b),
                MetricsOp::Div if b == 0 => return Err(parser.invalid(at, "division by zero")),
                _ => a.checked_div(b),
            };
            result.map(Constant::Int).ok_or_else(overflow)
        }
        (a, b) => Ok(Constant::Float(op.apply(float(a), float(b)))),
    }
}

fn float(constant: Constant) -> f64 {
    match constant {
        Constant::Int(value) | Constant::Duration(value) => value as f64,
        Constant::Float(value) => value,
    }
}

fn negate(parser: &Parser<'_>, constant: Constant, at: usize) -> Result<Constant, ParseError> {
    let overflow = || parser.invalid(at, "integer overflow in `-`");
    Ok(match constant {
        Constant::Int(value) => Constant::Int(value.checked_neg().ok_or_else(overflow)?),
        Constant::Float(value) => Constant::Float(-value),
        Constant::Duration(value) => Constant::Duration(value.checked_neg().ok_or_else(overflow)?),
    })
}

/// The number a comparison of metrics results takes: constant arithmetic, or a duration in
/// seconds.
pub(super) fn threshold(parser: &mut Parser<'_>) -> Result<f64, ParseError> {
    let at = parser.offset();
    match arithmetic(parser, 0)? {
        Term::Constant(Constant::Duration(nanos)) => Ok(nanos as f64 / 1e9),
        Term::Constant(constant) => Ok(float(constant)),
        Term::Expr(_) => {
            Err(parser.invalid(at, "metrics results compare with a number, e.g. `> 10`"))
        }
    }
}
