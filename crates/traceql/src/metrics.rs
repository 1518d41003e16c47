//! TraceQL metrics: `{…} | rate() by (…)` and the other `*_over_time` functions, parsed into a
//! [`MetricsQuery`] and computed by an [`Accumulator`] that sees one trace at a time, so live
//! traces and every block can be folded in any order and partial accumulators merged.
//!
//! Time: the range is cut into intervals `(T − step, T]`, each labelled by its end `T`
//! (`T₀ = ceil(start / step) · step`, as Tempo labels them); a span counts in the interval of its
//! start time. `quantile_over_time` is exact (every value kept per interval, linear interpolation
//! between closest ranks): no bucketing error. `histogram_over_time` buckets by powers of two
//! (`__bucket` = the upper bound, in seconds for durations), as Tempo does.

use std::collections::{BTreeSet, HashMap};

use crate::ast::{BinaryOp, Field, FieldExpr, Query, Static};
use crate::error::ParseError;
use crate::eval::{evaluate, resolve};
use crate::lexer::{lex, Token};
use crate::parser::{comparison_op, Parser};
use crate::trace::TraceView;
use crate::value::Value;

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

#[derive(Debug, Clone, PartialEq)]
pub enum MetricsFunction {
    Rate,
    CountOverTime,
    SumOverTime(Field),
    MinOverTime(Field),
    MaxOverTime(Field),
    AvgOverTime(Field),
    QuantileOverTime(Field, Vec<f64>),
    HistogramOverTime(Field),
}

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
        }
    }

    fn field(&self) -> Option<&Field> {
        match self {
            MetricsFunction::Rate | MetricsFunction::CountOverTime => None,
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
    let value = match parser.advance() {
        Some(Token::Int(value)) => value as f64,
        Some(Token::Float(value)) => value,
        // `.99` lexes as an unscoped attribute named `99`; in a number position it is 0.99.
        Some(Token::Attribute { parent: false, name, .. }) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) && parser.text[at..].starts_with('.') => {
            format!("0.{name}").parse().unwrap_or(f64::NAN)
        }
        _ => return Err(ParseError::at(parser.text, at, format!("syntax error: expected a number for {what}"))),
    };
    Ok(if negative { -value } else { value })
}

fn field_argument(parser: &mut Parser<'_>, function: &str) -> Result<Field, ParseError> {
    let at = parser.offset();
    match parser.field_expr()? {
        FieldExpr::Field(field) => Ok(field),
        _ => Err(parser.invalid(at, format!("{function}() takes an attribute or intrinsic, e.g. `{function}(duration)`"))),
    }
}

/// Parses and checks a metrics query: a spanset pipeline, `|`, one metrics function with an
/// optional `by(…)`, then optional comparisons and `topk`/`bottomk` stages, then hints.
pub fn parse_metrics(text: &str) -> Result<MetricsQuery, ParseError> {
    let tokens = lex(text)?;
    let mut parser = Parser { text, tokens, pos: 0 };
    if parser.peek().is_none() {
        return Err(ParseError::at(text, 0, "syntax error: empty query, expected e.g. `{ } | rate()`"));
    }
    let mut query = metrics_body(&mut parser)?;
    query.search.hints = parser.hints()?;
    if parser.peek().is_some() {
        return Err(parser.unexpected());
    }
    Ok(query)
}

/// A spanset pipeline, `|`, a metrics function with its `by` and second stages; no hints.
fn metrics_body(parser: &mut Parser<'_>) -> Result<MetricsQuery, ParseError> {
    let root = parser.pipeline()?;
    if !parser.at_metrics_function() {
        let at = parser.offset();
        return Err(parser.invalid(at, "not a metrics query: expected `| rate()`, `| count_over_time()` or another metrics function"));
    }
    parser.eat(&Token::Pipe);
    let name_at = parser.offset();
    let Some(Token::Word(name)) = parser.advance() else { return Err(parser.unexpected()) };
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
        _ => return Err(parser.invalid(name_at, format!("{name}() is not supported by this version of Andante"))),
    };
    parser.expect(Token::RParen)?;
    let mut by = Vec::new();
    if parser.peek() == Some(&Token::Word("by".to_owned())) {
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
    let mut second_stages = Vec::new();
    loop {
        if let Some(op) = parser.peek().and_then(comparison_op) {
            let at = parser.offset();
            if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
                return Err(parser.invalid(at, "metrics results compare with numbers, not regular expressions"));
            }
            parser.advance();
            second_stages.push(SecondStage::Filter(op, number(parser, "the comparison")?));
            continue;
        }
        let is_rank = matches!((parser.peek_at(0), parser.peek_at(1)), (Some(Token::Pipe), Some(Token::Word(word))) if word == "topk" || word == "bottomk");
        if !is_rank {
            break;
        }
        parser.advance();
        let Some(Token::Word(word)) = parser.advance() else { break };
        parser.expect(Token::LParen)?;
        let at = parser.offset();
        let k = number(parser, &word)?;
        if k < 1.0 || k.fract() != 0.0 {
            return Err(parser.invalid(at, format!("{word}() needs a positive whole number")));
        }
        parser.expect(Token::RParen)?;
        second_stages.push(if word == "topk" { SecondStage::TopK(k as usize) } else { SecondStage::BottomK(k as usize) });
    }
    Ok(MetricsQuery { search: Query { root, hints: Vec::new() }, function, by, second_stages })
}

/// Arithmetic between metrics queries and numbers: `({ status = error } | rate()) / ({ } | rate()) * 100`.
#[derive(Debug, Clone)]
pub enum MetricsExpr {
    Query(Box<MetricsQuery>),
    Number(f64),
    Binary { op: ArithmeticOp, lhs: Box<MetricsExpr>, rhs: Box<MetricsExpr> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithmeticOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl ArithmeticOp {
    pub fn symbol(self) -> &'static str {
        match self {
            ArithmeticOp::Add => "+",
            ArithmeticOp::Sub => "-",
            ArithmeticOp::Mul => "*",
            ArithmeticOp::Div => "/",
        }
    }

    /// Division by zero is NaN, as in Tempo (not ±Inf).
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            ArithmeticOp::Add => a + b,
            ArithmeticOp::Sub => a - b,
            ArithmeticOp::Mul => a * b,
            ArithmeticOp::Div if b == 0.0 => f64::NAN,
            ArithmeticOp::Div => a / b,
        }
    }
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
}

/// Parses a metrics query, or arithmetic between parenthesised metrics queries and numbers.
/// A plain query's error is reported when neither form parses (it is the common case).
pub fn parse_metrics_expr(text: &str) -> Result<MetricsExpr, ParseError> {
    let plain_error = match parse_metrics(text) {
        Ok(query) => return Ok(MetricsExpr::Query(Box::new(query))),
        Err(error) => error,
    };
    let Ok(tokens) = lex(text) else { return Err(plain_error) };
    let mut parser = Parser { text, tokens, pos: 0 };
    let parsed = arithmetic(&mut parser, 0).and_then(|expr| {
        let hints = parser.hints()?;
        if parser.peek().is_some() {
            return Err(parser.unexpected());
        }
        Ok((expr, hints))
    });
    match parsed {
        Ok((mut expr, hints)) if !expr.queries().is_empty() => {
            set_hints(&mut expr, &hints);
            Ok(expr)
        }
        Ok(_) => Err(plain_error),
        Err(error) if text.trim_start().starts_with('(') => Err(error),
        Err(_) => Err(plain_error),
    }
}

fn set_hints(expr: &mut MetricsExpr, hints: &[crate::ast::Hint]) {
    match expr {
        MetricsExpr::Query(query) => query.search.hints = hints.to_vec(),
        MetricsExpr::Number(_) => {}
        MetricsExpr::Binary { lhs, rhs, .. } => {
            set_hints(lhs, hints);
            set_hints(rhs, hints);
        }
    }
}

/// `+ -` bind looser (level 0) than `* /` (level 1).
fn arithmetic(parser: &mut Parser<'_>, level: u8) -> Result<MetricsExpr, ParseError> {
    if level > 1 {
        return arithmetic_operand(parser);
    }
    let mut lhs = arithmetic(parser, level + 1)?;
    loop {
        let op = match (level, parser.peek()) {
            (0, Some(Token::Plus)) => ArithmeticOp::Add,
            (0, Some(Token::Minus)) => ArithmeticOp::Sub,
            (1, Some(Token::Star)) => ArithmeticOp::Mul,
            (1, Some(Token::Slash)) => ArithmeticOp::Div,
            _ => return Ok(lhs),
        };
        parser.advance();
        let rhs = arithmetic(parser, level + 1)?;
        lhs = MetricsExpr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) };
    }
}

fn arithmetic_operand(parser: &mut Parser<'_>) -> Result<MetricsExpr, ParseError> {
    match parser.peek() {
        Some(Token::Int(_) | Token::Float(_) | Token::Minus) => Ok(MetricsExpr::Number(number(parser, "an operand")?)),
        Some(Token::LParen) => {
            let open = parser.pos;
            parser.advance();
            // A parenthesised metrics query, or a parenthesised arithmetic expression.
            if let Ok(query) = metrics_body(parser) {
                if parser.eat(&Token::RParen) {
                    return Ok(MetricsExpr::Query(Box::new(query)));
                }
            }
            parser.pos = open + 1;
            let inner = arithmetic(parser, 0)?;
            parser.expect(Token::RParen)?;
            Ok(inner)
        }
        _ => Err(parser.unexpected()),
    }
}

/// One side of an arithmetic operation while it is being evaluated.
#[derive(Debug, Clone)]
pub enum Operand {
    Series(Vec<MetricsSeries>),
    Number(f64),
}

fn name_of(series: &MetricsSeries) -> Option<String> {
    series.labels.iter().find(|(key, _)| key == "__name__").and_then(|(_, value)| match value {
        LabelValue::String(text) => Some(text.clone()),
        _ => None,
    })
}

/// Applies `op` sample by sample. Series pair when their labels other than `__name__` are
/// equal; a pair's name becomes `(lhs op rhs)`. A sample missing on one side gives NaN, as in
/// Tempo; series with no partner are dropped.
pub fn combine(op: ArithmeticOp, lhs: Operand, rhs: Operand) -> Operand {
    let scalar = |series: Vec<MetricsSeries>, number: f64, number_first: bool| -> Vec<MetricsSeries> {
        series
            .into_iter()
            .map(|mut s| {
                for sample in s.samples.iter_mut() {
                    *sample = sample.map(|v| if number_first { op.apply(number, v) } else { op.apply(v, number) });
                }
                s.exemplars.clear();
                s
            })
            .collect()
    };
    match (lhs, rhs) {
        (Operand::Number(a), Operand::Number(b)) => Operand::Number(op.apply(a, b)),
        (Operand::Series(series), Operand::Number(b)) => Operand::Series(scalar(series, b, false)),
        (Operand::Number(a), Operand::Series(series)) => Operand::Series(scalar(series, a, true)),
        (Operand::Series(left), Operand::Series(right)) => {
            let key = |s: &MetricsSeries| s.labels.iter().filter(|(k, _)| k != "__name__").cloned().collect::<Vec<_>>();
            let mut out = Vec::new();
            for l in &left {
                let Some(r) = right.iter().find(|r| key(r) == key(l)) else { continue };
                let samples = l
                    .samples
                    .iter()
                    .zip(&r.samples)
                    .map(|(a, b)| match (a, b) {
                        (None, None) => None,
                        (Some(a), Some(b)) => Some(op.apply(*a, *b)),
                        _ => Some(f64::NAN),
                    })
                    .collect();
                let mut labels = key(l);
                if name_of(l).is_some() || name_of(r).is_some() {
                    let name = format!("({} {} {})", name_of(l).unwrap_or_default(), op.symbol(), name_of(r).unwrap_or_default());
                    labels.push(("__name__".to_owned(), LabelValue::String(name)));
                }
                out.push(MetricsSeries { labels, samples, exemplars: Vec::new() });
            }
            Operand::Series(out)
        }
    }
}

/// A label value of a series, typed as in Tempo's JSON (`stringValue`, `intValue`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelValue {
    Nil,
    String(String),
    Int(i64),
    /// The bits of an `f64`, so the key is hashable; see [`LabelValue::float`].
    Float(u64),
    Bool(bool),
}

impl LabelValue {
    pub fn float(value: f64) -> LabelValue {
        LabelValue::Float(value.to_bits())
    }

    pub fn of(value: &Value<'_>) -> LabelValue {
        match value {
            Value::Nil | Value::Array(_) | Value::Multi(_) => LabelValue::Nil,
            Value::Bool(flag) => LabelValue::Bool(*flag),
            Value::Int(number) | Value::Duration(number) => LabelValue::Int(*number),
            Value::Float(number) => LabelValue::float(*number),
            Value::Str(text) => LabelValue::String(text.to_string()),
            Value::Status(status) => LabelValue::String(status.name().to_owned()),
            Value::Kind(kind) => LabelValue::String(kind.name().to_owned()),
        }
    }
}

/// The intervals of a query: `count` intervals `(T − step, T]` with `T = first + k · step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    pub first_nanos: u64,
    pub step_nanos: u64,
    pub count: usize,
}

impl Intervals {
    /// A range query from `start` to `end` at `step`, intervals labelled by their ends.
    pub fn range(start_nanos: u64, end_nanos: u64, step_nanos: u64) -> Intervals {
        let step = step_nanos.max(1);
        let first = start_nanos.div_ceil(step) * step;
        let last = end_nanos.div_ceil(step) * step;
        Intervals { first_nanos: first, step_nanos: step, count: ((last.saturating_sub(first)) / step) as usize + 1 }
    }

    /// An instant query: the one interval `(start, end]`.
    pub fn instant(start_nanos: u64, end_nanos: u64) -> Intervals {
        Intervals { first_nanos: end_nanos, step_nanos: end_nanos.saturating_sub(start_nanos).max(1), count: 1 }
    }

    /// The interval holding `t`, if any.
    pub fn index(&self, t_nanos: u64) -> Option<usize> {
        let earliest = self.first_nanos.saturating_sub(self.step_nanos);
        if t_nanos <= earliest && self.first_nanos >= self.step_nanos {
            return None;
        }
        let k = t_nanos.saturating_sub(self.first_nanos).div_ceil(self.step_nanos) as usize;
        (k < self.count).then_some(k)
    }

    /// The time window to read: every span that can fall into an interval.
    pub fn window(&self) -> (u64, u64) {
        (self.first_nanos.saturating_sub(self.step_nanos) + 1, self.first_nanos + self.step_nanos * (self.count as u64 - 1))
    }

    pub fn end_millis(&self, k: usize) -> i64 {
        ((self.first_nanos + self.step_nanos * k as u64) / 1_000_000) as i64
    }
}

/// A span that stands for an interval's value: Grafana links it to its trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    pub trace_id: [u8; 16],
    pub timestamp_ms: i64,
    /// The span's own value for `*_over_time`; for counts the interval's value replaces it.
    pub value: f64,
}

#[derive(Debug, Clone, Default)]
struct SeriesAcc {
    count: Vec<f64>,
    sum: Vec<f64>,
    min: Vec<f64>,
    max: Vec<f64>,
    values: Vec<Vec<f64>>,
    /// At most one exemplar per interval (empty when exemplars are off), so they spread over time.
    exemplars: Vec<Option<Exemplar>>,
}

impl SeriesAcc {
    fn new(intervals: usize, keep_values: bool, exemplars: bool) -> SeriesAcc {
        SeriesAcc {
            count: vec![0.0; intervals],
            sum: vec![0.0; intervals],
            min: vec![f64::NAN; intervals],
            max: vec![f64::NAN; intervals],
            values: if keep_values { vec![Vec::new(); intervals] } else { Vec::new() },
            exemplars: if exemplars { vec![None; intervals] } else { Vec::new() },
        }
    }

    fn add(&mut self, k: usize, value: f64) {
        self.count[k] += 1.0;
        self.sum[k] += value;
        if self.min[k].is_nan() || value < self.min[k] {
            self.min[k] = value;
        }
        if self.max[k].is_nan() || value > self.max[k] {
            self.max[k] = value;
        }
        if let Some(values) = self.values.get_mut(k) {
            values.push(value);
        }
    }

    fn merge(&mut self, other: SeriesAcc) {
        for k in 0..self.count.len() {
            self.count[k] += other.count[k];
            self.sum[k] += other.sum[k];
            if !other.min[k].is_nan() && (self.min[k].is_nan() || other.min[k] < self.min[k]) {
                self.min[k] = other.min[k];
            }
            if !other.max[k].is_nan() && (self.max[k].is_nan() || other.max[k] > self.max[k]) {
                self.max[k] = other.max[k];
            }
        }
        for (mine, theirs) in self.values.iter_mut().zip(other.values) {
            mine.extend(theirs);
        }
        for (mine, theirs) in self.exemplars.iter_mut().zip(other.exemplars) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
    }
}

/// One output series: labels in order, then one optional sample per interval (`None`: no
/// sample at that timestamp; `Some(0.0)` is a sample Tempo writes without a `value`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSeries {
    pub labels: Vec<(String, LabelValue)>,
    pub samples: Vec<Option<f64>>,
    pub exemplars: Vec<Exemplar>,
}

/// Folds traces into per-series, per-interval aggregates.
#[derive(Debug, Clone)]
pub struct Accumulator {
    pub intervals: Intervals,
    /// Series in order of first appearance, found by label values through `index`.
    series: Vec<(Vec<LabelValue>, SeriesAcc)>,
    index: HashMap<Vec<LabelValue>, usize>,
    pub spans_counted: u64,
    /// Most exemplars in the answer; 0 turns them off.
    max_exemplars: usize,
}

/// A span's value for the function's field as a number: durations in seconds.
fn numeric(value: &Value<'_>) -> Option<f64> {
    match value {
        Value::Int(number) => Some(*number as f64),
        Value::Float(number) => Some(*number),
        Value::Duration(nanos) => Some(*nanos as f64 / 1e9),
        _ => None,
    }
}

/// `histogram_over_time`'s bucket: the next power of two at or above the value, in the field's
/// native unit (nanoseconds for durations), reported in seconds for durations.
pub fn log2_bucket(value: &Value<'_>) -> Option<f64> {
    let (raw, to_seconds) = match value {
        Value::Duration(nanos) => (*nanos as f64, true),
        Value::Int(number) => (*number as f64, false),
        Value::Float(number) => (*number, false),
        _ => return None,
    };
    if raw <= 0.0 {
        return Some(0.0);
    }
    let bound = 2f64.powi(raw.log2().ceil() as i32);
    Some(if to_seconds { bound / 1e9 } else { bound })
}

impl Accumulator {
    pub fn new(intervals: Intervals) -> Accumulator {
        Accumulator { intervals, series: Vec::new(), index: HashMap::new(), spans_counted: 0, max_exemplars: 0 }
    }

    /// Also keeps up to `max` exemplars (one per series and interval at most).
    pub fn with_exemplars(mut self, max: usize) -> Accumulator {
        self.max_exemplars = max;
        self
    }

    /// Evaluates the query's spanset part over one trace and counts every matching span.
    pub fn observe(&mut self, query: &MetricsQuery, trace: &TraceView<'_>) {
        let mut matched = BTreeSet::new();
        for spanset in evaluate(&query.search, trace) {
            matched.extend(spanset.spans);
        }
        for index in matched {
            let span = trace.spans[index as usize].span;
            let Some(k) = self.intervals.index(span.start_time_unix_nano) else { continue };
            let mut key: Vec<LabelValue> = query.by.iter().map(|field| LabelValue::of(&resolve(field, trace, index))).collect();
            let value = match &query.function {
                MetricsFunction::Rate | MetricsFunction::CountOverTime => 1.0,
                MetricsFunction::HistogramOverTime(field) => {
                    let Some(bucket) = log2_bucket(&resolve(field, trace, index)) else { continue };
                    key.push(LabelValue::float(bucket));
                    1.0
                }
                function => {
                    let Some(field) = function.field() else { continue };
                    let Some(value) = numeric(&resolve(field, trace, index)) else { continue };
                    value
                }
            };
            let series = self.series_index(key, query);
            self.add_at(series, k, span.start_time_unix_nano, value, trace.trace_id);
        }
    }

    /// The slot of the series with these label values (the `by` values, then the histogram
    /// bucket for `histogram_over_time`), created on first use. For storage layers that
    /// compute label values themselves (columnar scans).
    pub fn series_index(&mut self, key: Vec<LabelValue>, query: &MetricsQuery) -> usize {
        if let Some(&index) = self.index.get(&key) {
            return index;
        }
        let keep_values = matches!(query.function, MetricsFunction::QuantileOverTime(..));
        let series = SeriesAcc::new(self.intervals.count, keep_values, self.max_exemplars > 0);
        self.series.push((key.clone(), series));
        self.index.insert(key, self.series.len() - 1);
        self.series.len() - 1
    }

    /// Counts one span with start `start_nanos` and value `value` (1 for counting functions,
    /// the field's number otherwise) in interval `k` of series `series`.
    pub fn add_at(&mut self, series: usize, k: usize, start_nanos: u64, value: f64, trace_id: [u8; 16]) {
        self.spans_counted += 1;
        let series = &mut self.series[series].1;
        series.add(k, value);
        if let Some(slot @ None) = series.exemplars.get_mut(k) {
            *slot = Some(Exemplar { trace_id, timestamp_ms: (start_nanos / 1_000_000) as i64, value });
        }
    }

    pub fn merge(&mut self, other: Accumulator) {
        debug_assert_eq!(self.intervals, other.intervals);
        self.spans_counted += other.spans_counted;
        for (key, series) in other.series {
            match self.index.get(&key) {
                Some(&index) => self.series[index].1.merge(series),
                None => {
                    self.index.insert(key.clone(), self.series.len());
                    self.series.push((key, series));
                }
            }
        }
    }

    /// The result series, sorted by labels, with the second stages applied.
    pub fn finish(self, query: &MetricsQuery) -> Vec<MetricsSeries> {
        let step_seconds = self.intervals.step_nanos as f64 / 1e9;
        let mut keys: Vec<(Vec<LabelValue>, SeriesAcc)> = self.series;
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (key, acc) in keys {
            let mut labels: Vec<(String, LabelValue)> = query.by.iter().map(|f| f.to_string()).zip(key.iter().cloned()).collect();
            if query.by.is_empty() && !matches!(query.function, MetricsFunction::HistogramOverTime(_) | MetricsFunction::QuantileOverTime(..)) {
                labels.push(("__name__".to_owned(), LabelValue::String(query.function.name().to_owned())));
            }
            let per_interval = |f: &dyn Fn(usize) -> Option<f64>| (0..acc.count.len()).map(f).collect::<Vec<_>>();
            // Counting functions show the interval's value; the others the span's own value.
            let counting = matches!(query.function, MetricsFunction::Rate | MetricsFunction::CountOverTime | MetricsFunction::HistogramOverTime(_));
            let exemplars_for = |samples: &[Option<f64>]| -> Vec<Exemplar> {
                acc.exemplars
                    .iter()
                    .enumerate()
                    .filter_map(|(k, e)| {
                        let mut e = (*e)?;
                        let value = samples.get(k).copied().flatten()?;
                        if counting {
                            e.value = value;
                        }
                        Some(e)
                    })
                    .collect()
            };
            if let MetricsFunction::HistogramOverTime(_) = query.function {
                labels.push(("__bucket".to_owned(), key.last().cloned().unwrap_or(LabelValue::Nil)));
            }
            let samples = match &query.function {
                MetricsFunction::Rate => Some(per_interval(&|k| Some(acc.count[k] / step_seconds))),
                MetricsFunction::CountOverTime | MetricsFunction::HistogramOverTime(_) => Some(per_interval(&|k| Some(acc.count[k]))),
                MetricsFunction::SumOverTime(_) => Some(per_interval(&|k| (acc.count[k] > 0.0).then_some(acc.sum[k]))),
                MetricsFunction::AvgOverTime(_) => Some(per_interval(&|k| (acc.count[k] > 0.0).then(|| acc.sum[k] / acc.count[k]))),
                MetricsFunction::MinOverTime(_) => Some(per_interval(&|k| (!acc.min[k].is_nan()).then_some(acc.min[k]))),
                MetricsFunction::MaxOverTime(_) => Some(per_interval(&|k| (!acc.max[k].is_nan()).then_some(acc.max[k]))),
                MetricsFunction::QuantileOverTime(..) => None,
            };
            if let Some(samples) = samples {
                let exemplars = exemplars_for(&samples);
                out.push(MetricsSeries { labels, samples, exemplars });
                continue;
            }
            if let MetricsFunction::QuantileOverTime(_, quantiles) = &query.function {
                {
                    let first = out.len();
                    for &q in quantiles {
                        let mut labels = labels.clone();
                        labels.push(("p".to_owned(), LabelValue::float(q)));
                        let samples = (0..acc.count.len())
                            .map(|k| {
                                let mut values = acc.values[k].clone();
                                Some(if values.is_empty() { 0.0 } else { quantile(q, &mut values) })
                            })
                            .collect();
                        out.push(MetricsSeries { labels, samples, exemplars: Vec::new() });
                    }
                    // Each exemplar goes to the one quantile series closest to it, as in Tempo.
                    for (k, exemplar) in acc.exemplars.iter().enumerate() {
                        let Some(exemplar) = exemplar else { continue };
                        let closest = out[first..]
                            .iter()
                            .enumerate()
                            .filter_map(|(i, s)| s.samples[k].map(|v| (i, (v - exemplar.value).abs())))
                            .min_by(|a, b| a.1.total_cmp(&b.1));
                        if let Some((i, _)) = closest {
                            out[first + i].exemplars.push(*exemplar);
                        }
                    }
                }
            }
        }
        for stage in &query.second_stages {
            apply_stage(stage, &mut out);
        }
        out.retain(|series| series.samples.iter().any(Option::is_some));
        if self.max_exemplars > 0 && !out.is_empty() {
            let per_series = (self.max_exemplars / out.len()).max(1);
            for series in &mut out {
                series.exemplars.retain(|e| e.value.is_finite());
                series.exemplars.truncate(per_series);
            }
        }
        out
    }
}

/// Linear interpolation between closest ranks (as Prometheus' `quantile`). Selection, not a
/// sort: an interval of a busy series can hold millions of values.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    let rank = q * (values.len() - 1) as f64;
    let (lower, weight) = (rank.floor() as usize, rank - rank.floor());
    let (_, lower_value, above) = values.select_nth_unstable_by(lower, f64::total_cmp);
    let lower_value = *lower_value;
    if weight == 0.0 || above.is_empty() {
        return lower_value;
    }
    let upper_value = above.iter().copied().fold(f64::INFINITY, f64::min);
    lower_value * (1.0 - weight) + upper_value * weight
}

fn apply_stage(stage: &SecondStage, series: &mut [MetricsSeries]) {
    match stage {
        SecondStage::Filter(op, threshold) => {
            let rhs = Value::Float(*threshold);
            for s in series.iter_mut() {
                for sample in &mut s.samples {
                    if sample.is_some_and(|v| !crate::value::compare(*op, &Value::Float(v), &rhs)) {
                        *sample = None;
                    }
                }
            }
        }
        SecondStage::TopK(k) | SecondStage::BottomK(k) => {
            let top = matches!(stage, SecondStage::TopK(_));
            let intervals = series.first().map_or(0, |s| s.samples.len());
            for t in 0..intervals {
                let mut ranked: Vec<(usize, f64)> = series.iter().enumerate().filter_map(|(i, s)| s.samples[t].map(|v| (i, v))).collect();
                ranked.sort_by(|a, b| if top { b.1.total_cmp(&a.1) } else { a.1.total_cmp(&b.1) }.then(a.0.cmp(&b.0)));
                for &(i, _) in ranked.iter().skip(*k) {
                    series[i].samples[t] = None;
                }
            }
        }
    }
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
        if !self.search.hints.iter().all(|hint| hint.name == "exemplars") {
            return None;
        }
        let predicate = match &self.search.root {
            crate::ast::SpansetExpr::Filter(None) => None,
            crate::ast::SpansetExpr::Filter(Some(expr)) => Some(crate::SpanPredicate::exact(expr)?),
            _ => return None,
        };
        Some(ColumnarSpec { predicate, value_field: self.function.field().cloned() })
    }

    /// Whether the function counts spans (no field value needed).
    pub fn counts(&self) -> bool {
        matches!(self.function, MetricsFunction::Rate | MetricsFunction::CountOverTime)
    }

    pub fn is_histogram(&self) -> bool {
        matches!(self.function, MetricsFunction::HistogramOverTime(_))
    }
}

/// The value of a static for tests and callers that build queries by hand.
pub fn static_number(value: &Static) -> Option<f64> {
    match value {
        Static::Int(number) => Some(*number as f64),
        Static::Float(number) => Some(*number),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::quantile;

    /// Selection gives what sorting and interpolating gives.
    #[test]
    fn quantile_by_selection_matches_sorting() {
        let mut seed = 7u64;
        for len in [1usize, 2, 3, 10, 101, 1000] {
            let values: Vec<f64> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 33) as f64 / 1000.0
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
                let rank = q * (len - 1) as f64;
                let (lower, weight) = (rank.floor() as usize, rank - rank.floor());
                let expected = sorted[lower] * (1.0 - weight) + sorted[(lower + 1).min(len - 1)] * weight;
                assert_eq!(quantile(q, &mut values.clone()), expected, "len {len} q {q}");
            }
        }
    }
}
