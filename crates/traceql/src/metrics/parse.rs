//! Parsing metrics queries (`{…} | rate() by (…) | topk(3)`) and arithmetic between them.

use crate::ast::{BinaryOp, Field, FieldExpr, Query};
use crate::error::ParseError;
use crate::lexer::{lex, Token};
use crate::parser::{comparison_op, Parser};
use crate::SpanPredicate;

const FUNCTIONS: &[&str] = &[
    "rate",
    "count_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
];

pub fn is_metrics_function(word: &str) -> bool {
    FUNCTIONS.contains(&word)
}

#[derive(Debug, Clone)]
pub enum MetricsFunction {
    Rate,
    CountOverTime,
    SumOverTime(Field),
    MinOverTime(Field),
    MaxOverTime(Field),
    AvgOverTime(Field),
    QuantileOverTime(Field, Vec<f64>),
    HistogramOverTime(Field),
    /// `compare({ filter }, topN, start, end)`: every attribute value of the matching spans
    /// counted in two groups, the spans the filter (and the optional window) selects and the
    /// rest, for Traces Drilldown's comparison view.
    Compare(Box<Compare>),
}

#[derive(Debug, Clone)]
pub struct Compare {
    /// None: `{ }`, every span is in the selection.
    pub filter: Option<FieldExpr>,
    /// Values kept per attribute and group (by total count); more raise `__too_many_values__`.
    pub top_n: usize,
    /// `[start, end)` in Unix nanoseconds: only spans starting inside may be selected.
    pub window: Option<(u64, u64)>,
}

/// Tempo's default for compare()'s second argument.
pub const COMPARE_DEFAULT_TOP_N: usize = 10;

/// compare()'s series are value counts per attribute for a comparison view, not one measure per
/// label set: ranking, filtering or arithmetic on them means nothing (Tempo refuses it too).
pub(super) const COMPARE_ALONE: &str =
    "compare() cannot be followed by `topk`, `bottomk`, a comparison or arithmetic";

impl MetricsFunction {
    pub fn name(&self) -> &'static str {
        match self {
            MetricsFunction::Rate => "rate",
            MetricsFunction::CountOverTime => "count_over_time",
            MetricsFunction::SumOverTime(_) => "sum_over_time",
            MetricsFunction::MinOverTime(_) => "min_over_time",
            MetricsFunction::MaxOverTime(_) => "max_over_time",
            MetricsFunction::AvgOverTime(_) => "avg_over_time",
            MetricsFunction::QuantileOverTime(..) => "quantile_over_time",
            MetricsFunction::HistogramOverTime(_) => "histogram_over_time",
            MetricsFunction::Compare(_) => "compare",
        }
    }

    pub(crate) fn field(&self) -> Option<&Field> {
        match self {
            MetricsFunction::Rate
            | MetricsFunction::CountOverTime
            | MetricsFunction::Compare(_) => None,
            MetricsFunction::SumOverTime(field)
            | MetricsFunction::MinOverTime(field)
            | MetricsFunction::MaxOverTime(field)
            | MetricsFunction::AvgOverTime(field)
            | MetricsFunction::QuantileOverTime(field, _)
            | MetricsFunction::HistogramOverTime(field) => Some(field),
        }
    }
}

/// What follows the function: `> 10` filters samples, `topk(n)`/`bottomk(n)` keep the n highest
/// or lowest series at each timestamp.
#[derive(Debug, Clone, PartialEq)]
pub enum SecondStage {
    TopK(usize),
    BottomK(usize),
    Filter(BinaryOp, f64),
}

#[derive(Debug, Clone)]
pub struct MetricsQuery {
    /// The spanset part, with the query's hints; also what storage gets pushed down.
    pub search: Query,
    pub function: MetricsFunction,
    pub by: Vec<Field>,
    pub second_stages: Vec<SecondStage>,
}

fn number(parser: &mut Parser<'_>, what: &str) -> Result<f64, ParseError> {
    let at = parser.offset();
    let negative = parser.eat(&Token::Minus);
    let value_at = parser.offset();
    let value = match parser.advance() {
        Some(Token::Int(value)) => value as f64,
        Some(Token::Float(value)) => value,
        token => match token.and_then(|token| leading_dot_number(parser, &token, value_at)) {
            Some(value) => value,
            None => {
                return Err(ParseError::at(
                    parser.text,
                    at,
                    format!("syntax error: expected a number for {what}"),
                ))
            }
        },
    };
    Ok(if negative { -value } else { value })
}

/// `.99` lexes as an unscoped attribute named `99`; where a number is expected it is 0.99.
pub(super) fn leading_dot_number(parser: &Parser<'_>, token: &Token, at: usize) -> Option<f64> {
    match token {
        Token::Attribute {
            parent: false,
            name,
            ..
        } if !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_digit())
            && parser.text[at..].starts_with('.') =>
        {
            format!("0.{name}").parse().ok()
        }
        _ => None,
    }
}

/// A whole number token (timestamps in nanoseconds do not survive a trip through `f64`).
fn integer(parser: &mut Parser<'_>, what: &str) -> Result<i64, ParseError> {
    let at = parser.offset();
    match parser.advance() {
        Some(Token::Int(value)) => Ok(value),
        _ => Err(ParseError::at(
            parser.text,
            at,
            format!("syntax error: expected a whole number for {what}"),
        )),
    }
}

/// `compare(` has been read: the filter, then optionally topN, then optionally start and end.
fn compare_arguments(parser: &mut Parser<'_>) -> Result<Compare, ParseError> {
    let at = parser.offset();
    let not_a_filter = "compare() takes a spanset filter first, e.g. `compare({ status = error })`";
    if parser.peek() != Some(&Token::LBrace) {
        return Err(parser.invalid(at, not_a_filter));
    }
    let filter = match parser.spanset_primary()? {
        crate::ast::SpansetExpr::Filter(filter) => filter,
        _ => return Err(parser.invalid(at, not_a_filter)),
    };
    let mut compare = Compare {
        filter,
        top_n: COMPARE_DEFAULT_TOP_N,
        window: None,
    };
    if !parser.eat(&Token::Comma) {
        return Ok(compare);
    }
    let at = parser.offset();
    let top_n = integer(parser, "compare()'s number of values per attribute")?;
    if top_n <= 0 {
        return Err(parser.invalid(
            at,
            "compare() top number of values must be an integer greater than 0",
        ));
    }
    compare.top_n = top_n as usize;
    if !parser.eat(&Token::Comma) {
        return Ok(compare);
    }
    let start_at = parser.offset();
    let start = integer(parser, "compare()'s start timestamp")?;
    if !parser.eat(&Token::Comma) {
        return Err(parser.invalid(
            start_at,
            "compare() takes a start and an end timestamp (Unix nanoseconds), or neither",
        ));
    }
    let end_at = parser.offset();
    let end = integer(parser, "compare()'s end timestamp")?;
    match (start, end) {
        (0, 0) => {}
        (start, _) if start <= 0 => {
            return Err(parser.invalid(
                start_at,
                "compare() timestamps must be positive Unix nanoseconds",
            ))
        }
        (_, end) if end <= 0 => {
            return Err(parser.invalid(
                end_at,
                "compare() timestamps must be positive Unix nanoseconds",
            ))
        }
        (start, end) if end <= start => {
            return Err(parser.invalid(
                end_at,
                "compare() end timestamp must be greater than its start timestamp",
            ))
        }
        (start, end) => compare.window = Some((start as u64, end as u64)),
    }
    Ok(compare)
}

fn field_argument(parser: &mut Parser<'_>, function: &str) -> Result<Field, ParseError> {
    let at = parser.offset();
    match parser.nested(at, Parser::field_expr)? {
        FieldExpr::Field(field) => Ok(field),
        _ => Err(parser.invalid(
            at,
            format!("{function}() takes an attribute or intrinsic, e.g. `{function}(duration)`"),
        )),
    }
}

/// Parses and checks a metrics query: a spanset pipeline, `|`, one metrics function with an
/// optional `by(…)`, then optional comparisons and `topk`/`bottomk` stages, then hints.
pub fn parse_metrics(text: &str) -> Result<MetricsQuery, ParseError> {
    let mut parser = Parser::new(text, lex(text)?);
    if parser.peek().is_none() {
        return Err(ParseError::at(
            text,
            0,
            "syntax error: empty query, expected e.g. `{ } | rate()`",
        ));
    }
    let mut query = metrics_body(&mut parser)?;
    query.search.hints = parser.hints()?;
    if parser.peek().is_some() {
        return Err(parser.unexpected());
    }
    Ok(query)
}

/// Comparisons (`> 10`, `<= 1.5`, `> 10s`, `> 1 / 2`) and `| topk(n)` / `| bottomk(n)`, in any
/// number and order, each with the offset where it starts.
pub(super) fn second_stages(
    parser: &mut Parser<'_>,
) -> Result<Vec<(SecondStage, usize)>, ParseError> {
    let mut stages = Vec::new();
    loop {
        let at = parser.offset();
        if let Some(op) = parser.peek().and_then(comparison_op) {
            if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
                return Err(parser.invalid(
                    at,
                    "metrics results compare with numbers, not regular expressions",
                ));
            }
            parser.advance();
            stages.push((SecondStage::Filter(op, super::expr::threshold(parser)?), at));
            continue;
        }
        let is_rank = matches!((parser.peek_at(0), parser.peek_at(1)), (Some(Token::Pipe), Some(Token::Word(word))) if word == "topk" || word == "bottomk");
        if !is_rank {
            return Ok(stages);
        }
        parser.advance();
        let Some(Token::Word(word)) = parser.advance() else {
            return Ok(stages);
        };
        parser.expect(Token::LParen)?;
        let k_at = parser.offset();
        let k = number(parser, &word)?;
        if k < 1.0 || k.fract() != 0.0 {
            return Err(parser.invalid(k_at, format!("{word}() needs a positive whole number")));
        }
        parser.expect(Token::RParen)?;
        stages.push((
            if word == "topk" {
                SecondStage::TopK(k as usize)
            } else {
                SecondStage::BottomK(k as usize)
            },
            at,
        ));
    }
}

/// A spanset pipeline, `|`, a metrics function with its `by` and second stages; no hints.
pub(super) fn metrics_body(parser: &mut Parser<'_>) -> Result<MetricsQuery, ParseError> {
    let root = parser.pipeline()?;
    if !parser.at_metrics_function() {
        let at = parser.offset();
        return Err(parser.invalid(at, "not a metrics query: expected `| rate()`, `| count_over_time()` or another metrics function"));
    }
    parser.eat(&Token::Pipe);
    let name_at = parser.offset();
    let Some(Token::Word(name)) = parser.advance() else {
        return Err(parser.unexpected());
    };
    parser.expect(Token::LParen)?;
    let function = match name.as_str() {
        "rate" => MetricsFunction::Rate,
        "count_over_time" => MetricsFunction::CountOverTime,
        "sum_over_time" => MetricsFunction::SumOverTime(field_argument(parser, &name)?),
        "min_over_time" => MetricsFunction::MinOverTime(field_argument(parser, &name)?),
        "max_over_time" => MetricsFunction::MaxOverTime(field_argument(parser, &name)?),
        "avg_over_time" => MetricsFunction::AvgOverTime(field_argument(parser, &name)?),
        "histogram_over_time" => MetricsFunction::HistogramOverTime(field_argument(parser, &name)?),
        "quantile_over_time" => {
            let field = field_argument(parser, &name)?;
            let mut quantiles = Vec::new();
            while parser.eat(&Token::Comma) {
                let at = parser.offset();
                let q = number(parser, "a quantile")?;
                if !(0.0..=1.0).contains(&q) {
                    return Err(parser.invalid(at, format!("quantile {q} is outside [0, 1]")));
                }
                quantiles.push(q);
            }
            if quantiles.is_empty() {
                return Err(parser.invalid(name_at, "quantile_over_time() needs at least one quantile, e.g. `quantile_over_time(duration, .99)`"));
            }
            MetricsFunction::QuantileOverTime(field, quantiles)
        }
        "compare" => MetricsFunction::Compare(Box::new(compare_arguments(parser)?)),
        _ => {
            return Err(parser.invalid(
                name_at,
                format!("{name}() is not supported by this version of Andante"),
            ))
        }
    };
    parser.expect(Token::RParen)?;
    let mut by = Vec::new();
    if parser.peek() == Some(&Token::Word("by".to_owned())) {
        if let MetricsFunction::Compare(_) = function {
            let at = parser.offset();
            return Err(parser.invalid(
                at,
                "compare() groups by every attribute itself and takes no by()",
            ));
        }
        parser.advance();
        parser.expect(Token::LParen)?;
        loop {
            by.push(field_argument(parser, "by")?);
            if !parser.eat(&Token::Comma) {
                break;
            }
        }
        parser.expect(Token::RParen)?;
    }
    let stages_at = parser.offset();
    let second_stages: Vec<SecondStage> = second_stages(parser)?
        .into_iter()
        .map(|(stage, _)| stage)
        .collect();
    if matches!(function, MetricsFunction::Compare(_)) && !second_stages.is_empty() {
        return Err(parser.invalid(stages_at, COMPARE_ALONE));
    }
    Ok(MetricsQuery {
        search: Query {
            root,
            hints: Vec::new(),
        },
        function,
        by,
        second_stages,
    })
}

/// What a columnar scan needs to compute a metrics query without rebuilding traces: the query
/// is a single spanset filter equivalent to `predicate` (None: every span), so a span counts
/// exactly when its row matches. None when the query needs whole traces (structural operators,
/// pipelines, unscoped attributes, sampling hints).
#[derive(Debug, Clone)]
pub struct ColumnarSpec {
    pub predicate: Option<crate::SpanPredicate>,
    /// The field the function reads (`duration` in `quantile_over_time(duration, …)`).
    pub value_field: Option<Field>,
}

impl MetricsQuery {
    pub fn columnar(&self) -> Option<ColumnarSpec> {
        // compare() counts every attribute of a span: `columnar_compare`.
        if matches!(self.function, MetricsFunction::Compare(_)) {
            return None;
        }
        Some(ColumnarSpec {
            predicate: self.search_predicate()?,
            value_field: self.function.field().cloned(),
        })
    }

    /// For `compare()` over columns: the search's exact predicate and the filter's (each None
    /// for every span), when both are exact column-by-column predicates.
    pub fn columnar_compare(&self) -> Option<(Option<SpanPredicate>, Option<SpanPredicate>)> {
        let MetricsFunction::Compare(compare) = &self.function else {
            return None;
        };
        let filter = match &compare.filter {
            None => None,
            Some(expr) => Some(SpanPredicate::exact(expr)?),
        };
        Some((self.search_predicate()?, filter))
    }

    /// The search as one exact span predicate (`Some(None)`: every span), for the columnar
    /// ways; None when it is more than one spanset filter or carries hints they do not follow.
    fn search_predicate(&self) -> Option<Option<SpanPredicate>> {
        if !self
            .search
            .hints
            .iter()
            .all(|hint| hint.name == "exemplars")
        {
            return None;
        }
        match &self.search.root {
            crate::ast::SpansetExpr::Filter(None) => Some(None),
            crate::ast::SpansetExpr::Filter(Some(expr)) => Some(Some(SpanPredicate::exact(expr)?)),
            _ => None,
        }
    }

    /// Whether the function counts spans (no field value needed).
    pub fn counts(&self) -> bool {
        matches!(
            self.function,
            MetricsFunction::Rate | MetricsFunction::CountOverTime
        )
    }

    pub fn is_histogram(&self) -> bool {
        matches!(self.function, MetricsFunction::HistogramOverTime(_))
    }
}
