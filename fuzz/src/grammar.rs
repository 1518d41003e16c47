//! A small TraceQL grammar for structure-aware fuzzing: `arbitrary` builds a tree from the fuzz
//! input and `render` prints it as TraceQL text, so most inputs get past the lexer and the parser
//! and exercise the checker, the evaluator, pushdown and the metrics accumulator. The grammar
//! over-generates on purpose (type mismatches, odd literals, operators in every position): the
//! checker must refuse those with an error, never a panic.
//!
//! Depth is bounded while rendering (`Query::max_depth`, chosen by the input): below it every
//! recursive node renders as a leaf, so inputs stay short whatever tree `arbitrary` built.

use std::fmt::Write;

use arbitrary::Arbitrary;

/// A whole input: a search query or a metrics expression, with the nesting limit to render at.
#[derive(Arbitrary, Debug)]
pub struct Input {
    pub query: Query,
    pub max_depth: u8,
}

#[derive(Arbitrary, Debug)]
pub enum Query {
    Search(Search),
    Metrics(MetricsExpr),
}

#[derive(Arbitrary, Debug)]
pub struct Search {
    pub root: Pipeline,
    pub hints: Vec<Hint>,
}

#[derive(Arbitrary, Debug)]
pub struct Hint {
    pub name: HintName,
    pub value: Literal,
}

#[derive(Arbitrary, Debug)]
pub enum HintName {
    MostRecent,
    Sample,
    SpanSample,
    TraceSample,
    Exemplars,
    Other(Word),
}

/// A spanset expression followed by stages.
#[derive(Arbitrary, Debug)]
pub struct Pipeline {
    pub first: Spanset,
    pub stages: Vec<PipelineStage>,
}

#[derive(Arbitrary, Debug)]
pub enum Spanset {
    Filter(Option<Expr>),
    /// The common shape: `{ field op literal && … }`, so structural operators and pipelines
    /// get selective filters on both sides.
    Conditions(Vec<Condition>),
    Binary(SpansetOp, Box<Spanset>, Box<Spanset>),
    Parens(Box<Pipeline>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum SpansetOp {
    And,
    Or,
    Child,
    Parent,
    Descendant,
    Ancestor,
    Sibling,
    NotChild,
    NotParent,
    NotDescendant,
    NotAncestor,
    NotSibling,
    UnionChild,
    UnionParent,
    UnionDescendant,
    UnionAncestor,
    UnionSibling,
}

#[derive(Arbitrary, Debug)]
pub enum PipelineStage {
    Filter(Spanset),
    Aggregate(Scalar, Comparison, Scalar),
    By(Vec<Expr>),
    Coalesce,
    Select(Vec<FieldRef>),
}

#[derive(Arbitrary, Debug)]
pub struct Condition {
    pub field: FieldRef,
    pub op: Comparison,
    pub value: Literal,
    /// Joined to the previous condition with `||` (else `&&`).
    pub or: bool,
}

/// A per-spanset number: `count()`, `avg(duration)`, literals and arithmetic.
#[derive(Arbitrary, Debug)]
pub enum Scalar {
    Aggregate(AggregateFn, Option<Expr>),
    Literal(Literal),
    Binary(Arithmetic, Box<Scalar>, Box<Scalar>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum AggregateFn {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

/// A field expression inside `{ … }`.
#[derive(Arbitrary, Debug)]
pub enum Expr {
    Field(FieldRef),
    Literal(Literal),
    Compare(Box<Expr>, Comparison, Box<Expr>),
    Logic(bool, Box<Expr>, Box<Expr>),
    Arithmetic(Arithmetic, Box<Expr>, Box<Expr>),
    Regex(bool, Box<Expr>, RegexText),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    Parens(Box<Expr>),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Comparison {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

#[derive(Arbitrary, Debug)]
pub enum FieldRef {
    Intrinsic(u8),
    Attribute {
        scope: Scope,
        parent: bool,
        name: AttributeName,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Scope {
    Unscoped,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

#[derive(Arbitrary, Debug)]
pub enum AttributeName {
    /// One of the fixture's keys (so comparisons can match).
    Known(u8),
    /// Any name, quoted: `span."a b"`.
    Quoted(String),
    /// A plain name made of the characters an unquoted name may hold.
    Plain(Word),
}

#[derive(Arbitrary, Debug)]
pub enum Literal {
    Int(i64),
    SmallInt(u8),
    Float(f64),
    Str(String),
    KnownStr(u8),
    RawStr(String),
    Bool(bool),
    Nil,
    Duration(u32, DurationUnit),
    Status(u8),
    Kind(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum DurationUnit {
    Ns,
    Us,
    Micro,
    Ms,
    S,
    M,
    H,
}

#[derive(Arbitrary, Debug)]
pub enum RegexText {
    Known(u8),
    Any(String),
}

/// Letters, digits, `.`, `_`, `-` and `:` from the input; never empty.
#[derive(Arbitrary, Debug)]
pub struct Word(pub Vec<u8>);

#[derive(Arbitrary, Debug)]
pub enum MetricsExpr {
    Query(MetricsQuery),
    Binary(MetricsArithmetic, Box<MetricsExpr>, Box<MetricsExpr>),
    Number(f64),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum MetricsArithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Arbitrary, Debug)]
pub struct MetricsQuery {
    pub pipeline: Pipeline,
    pub function: MetricsFunction,
    pub by: Vec<FieldRef>,
    pub second_stages: Vec<SecondStage>,
    pub hints: Vec<Hint>,
}

#[derive(Arbitrary, Debug)]
pub enum MetricsFunction {
    Rate,
    CountOverTime,
    SumOverTime(FieldRef),
    MinOverTime(FieldRef),
    MaxOverTime(FieldRef),
    AvgOverTime(FieldRef),
    QuantileOverTime(FieldRef, Vec<Quantile>),
    HistogramOverTime(FieldRef),
    Compare(Option<Expr>, Option<CompareArguments>),
}

#[derive(Arbitrary, Debug)]
pub enum Quantile {
    Percent(u8),
    Any(f64),
    LeadingDot(u16),
}

#[derive(Arbitrary, Debug)]
pub struct CompareArguments {
    pub top_n: i64,
    pub window: Option<(u64, u64)>,
}

#[derive(Arbitrary, Debug)]
pub enum SecondStage {
    TopK(i16),
    BottomK(i16),
    Filter(Comparison, f64),
}

const INTRINSICS: &[&str] = &[
    "name",
    "status",
    "statusMessage",
    "kind",
    "duration",
    "span:name",
    "span:status",
    "span:statusMessage",
    "span:kind",
    "span:duration",
    "span:id",
    "span:parentID",
    "span:childCount",
    "childCount",
    "trace:id",
    "trace:duration",
    "traceDuration",
    "trace:rootName",
    "rootName",
    "trace:rootService",
    "rootServiceName",
    "event:name",
    "event:timeSinceStart",
    "link:traceID",
    "link:spanID",
    "instrumentation:name",
    "instrumentation:version",
    "nestedSetLeft",
    "nestedSetRight",
    "nestedSetParent",
];

const KNOWN_ATTRIBUTES: &[&str] = &[
    "service.name",
    "deployment.environment",
    "http.route",
    "http.status_code",
    "peer.service",
    "db.system",
    "tags",
    "items",
    "ratio",
    "flag",
    "exception.type",
    "relation",
    "library.language",
    "bytes",
    "map",
    "big",
    "nan",
    "inf",
];

const KNOWN_STRINGS: &[&str] = &[
    "frontend", "cart", "billing", "orders", "loop", "GET /cart", "GetCart", "SELECT", "postgresql",
    "redis", "boom", "/cart", "exception", "IOError", "follows", "a", "prod", "java", "lib-cart",
    "1.0", "",
];

const KNOWN_REGEXES: &[&str] = &[
    ".*", "GET.*", "c.*t", "(frontend|cart)", "[a-z]+", "a|", "^GET", "x{0,3}", "\\d+", "(?i)get",
    "[", "(", "a**", "\\",
];

const STATUSES: &[&str] = &["unset", "ok", "error", "nil"];
const KINDS: &[&str] = &[
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];

fn pick<'a>(list: &[&'a str], index: u8) -> &'a str {
    list[index as usize % list.len()]
}

/// Renders text TraceQL would read back as `value` (double quotes, escapes for the rest).
fn quote(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32 & 0xffff);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite float that reads back as a float (always with a fractional part).
fn float(out: &mut String, value: f64) {
    let value = if value.is_finite() { value } else { 0.5 };
    let text = format!("{value:?}");
    if text.contains('.') || text.contains('e') {
        out.push_str(&text);
    } else {
        let _ = write!(out, "{text}.0");
    }
}

/// Render state: the text so far and how deep the current node is.
pub struct Renderer {
    pub out: String,
    depth: u32,
    max_depth: u32,
}

impl Renderer {
    pub fn new(max_depth: u8) -> Renderer {
        Renderer {
            out: String::new(),
            depth: 0,
            max_depth: u32::from(max_depth % 12) + 1,
        }
    }

    /// Whether a recursive node may render its children.
    fn deeper(&self) -> bool {
        self.depth < self.max_depth
    }

    fn nested(&mut self, render: impl FnOnce(&mut Renderer)) {
        self.depth += 1;
        render(self);
        self.depth -= 1;
    }

    pub fn query(&mut self, query: &Query) {
        match query {
            Query::Search(search) => self.search(search),
            Query::Metrics(expr) => self.metrics_expr(expr),
        }
    }

    fn search(&mut self, search: &Search) {
        self.pipeline(&search.root);
        self.hints(&search.hints);
    }

    fn hints(&mut self, hints: &[Hint]) {
        if hints.is_empty() {
            return;
        }
        self.out.push_str(" with(");
        for (index, hint) in hints.iter().take(4).enumerate() {
            if index > 0 {
                self.out.push_str(", ");
            }
            match &hint.name {
                HintName::MostRecent => self.out.push_str("most_recent"),
                HintName::Sample => self.out.push_str("sample"),
                HintName::SpanSample => self.out.push_str("span_sample"),
                HintName::TraceSample => self.out.push_str("trace_sample"),
                HintName::Exemplars => self.out.push_str("exemplars"),
                HintName::Other(word) => self.word(word),
            }
            self.out.push('=');
            self.literal(&hint.value);
        }
        self.out.push(')');
    }

    fn pipeline(&mut self, pipeline: &Pipeline) {
        self.spanset(&pipeline.first);
        if !self.deeper() {
            return;
        }
        for stage in pipeline.stages.iter().take(4) {
            self.out.push_str(" | ");
            self.nested(|r| r.stage(stage));
        }
    }

    fn spanset(&mut self, spanset: &Spanset) {
        match spanset {
            Spanset::Filter(None) => self.out.push_str("{ }"),
            Spanset::Filter(Some(expr)) => {
                self.out.push_str("{ ");
                self.expr(expr);
                self.out.push_str(" }");
            }
            Spanset::Conditions(conditions) => {
                self.out.push_str("{ ");
                for (index, condition) in conditions.iter().take(4).enumerate() {
                    if index > 0 {
                        self.out.push_str(if condition.or { " || " } else { " && " });
                    }
                    self.field(&condition.field);
                    self.out.push(' ');
                    self.out.push_str(comparison(condition.op));
                    self.out.push(' ');
                    self.literal(&condition.value);
                }
                self.out.push_str(" }");
            }
            Spanset::Binary(op, lhs, rhs) if self.deeper() => self.nested(|r| {
                r.spanset(lhs);
                r.out.push(' ');
                r.out.push_str(spanset_op(*op));
                r.out.push(' ');
                r.spanset(rhs);
            }),
            Spanset::Parens(inner) if self.deeper() => self.nested(|r| {
                r.out.push('(');
                r.pipeline(inner);
                r.out.push(')');
            }),
            Spanset::Binary(..) | Spanset::Parens(_) => self.out.push_str("{ }"),
        }
    }

    fn stage(&mut self, stage: &PipelineStage) {
        match stage {
            PipelineStage::Filter(spanset) => self.spanset(spanset),
            PipelineStage::Aggregate(lhs, op, rhs) => {
                self.scalar(lhs);
                self.out.push(' ');
                self.out.push_str(comparison(*op));
                self.out.push(' ');
                self.scalar(rhs);
            }
            PipelineStage::By(exprs) => {
                self.out.push_str("by(");
                self.list(exprs, Renderer::expr);
                self.out.push(')');
            }
            PipelineStage::Coalesce => self.out.push_str("coalesce()"),
            PipelineStage::Select(fields) => {
                self.out.push_str("select(");
                self.list(fields, Renderer::field);
                self.out.push(')');
            }
        }
    }

    /// At least one element, at most four, comma separated.
    fn list<T>(&mut self, items: &[T], mut render: impl FnMut(&mut Renderer, &T)) {
        if items.is_empty() {
            self.out.push_str("duration");
            return;
        }
        for (index, item) in items.iter().take(4).enumerate() {
            if index > 0 {
                self.out.push_str(", ");
            }
            render(self, item);
        }
    }

    fn scalar(&mut self, scalar: &Scalar) {
        match scalar {
            Scalar::Aggregate(function, argument) => {
                self.out.push_str(match function {
                    AggregateFn::Count => "count",
                    AggregateFn::Avg => "avg",
                    AggregateFn::Min => "min",
                    AggregateFn::Max => "max",
                    AggregateFn::Sum => "sum",
                });
                self.out.push('(');
                if let Some(argument) = argument {
                    self.expr(argument);
                }
                self.out.push(')');
            }
            Scalar::Literal(literal) => self.literal(literal),
            Scalar::Binary(op, lhs, rhs) if self.deeper() => self.nested(|r| {
                r.out.push('(');
                r.scalar(lhs);
                r.out.push(' ');
                r.out.push_str(arithmetic(*op));
                r.out.push(' ');
                r.scalar(rhs);
                r.out.push(')');
            }),
            Scalar::Binary(..) => self.out.push_str("count()"),
        }
    }

    fn expr(&mut self, expr: &Expr) {
        if !self.deeper() {
            return match expr {
                Expr::Literal(literal) => self.literal(literal),
                Expr::Field(field) => self.field(field),
                _ => self.out.push_str("true"),
            };
        }
        self.nested(|r| match expr {
            Expr::Field(field) => r.field(field),
            Expr::Literal(literal) => r.literal(literal),
            Expr::Compare(lhs, op, rhs) => r.binary(lhs, comparison(*op), rhs),
            Expr::Logic(and, lhs, rhs) => r.binary(lhs, if *and { "&&" } else { "||" }, rhs),
            Expr::Arithmetic(op, lhs, rhs) => r.binary(lhs, arithmetic(*op), rhs),
            Expr::Regex(negated, lhs, regex) => {
                r.expr(lhs);
                r.out.push_str(if *negated { " !~ " } else { " =~ " });
                match regex {
                    RegexText::Known(index) => quote(&mut r.out, pick(KNOWN_REGEXES, *index)),
                    RegexText::Any(text) => quote(&mut r.out, text),
                }
            }
            Expr::Not(inner) => {
                r.out.push('!');
                r.expr(inner);
            }
            Expr::Negate(inner) => {
                r.out.push('-');
                r.expr(inner);
            }
            Expr::Parens(inner) => {
                r.out.push('(');
                r.expr(inner);
                r.out.push(')');
            }
        })
    }

    fn binary(&mut self, lhs: &Expr, op: &str, rhs: &Expr) {
        self.expr(lhs);
        self.out.push(' ');
        self.out.push_str(op);
        self.out.push(' ');
        self.expr(rhs);
    }

    fn field(&mut self, field: &FieldRef) {
        match field {
            FieldRef::Intrinsic(index) => self.out.push_str(pick(INTRINSICS, *index)),
            FieldRef::Attribute {
                scope,
                parent,
                name,
            } => {
                // `parent.` takes `span.`, `resource.` or an unscoped name.
                self.out.push_str(match (parent, scope) {
                    (true, Scope::Span) => "parent.span.",
                    (true, Scope::Resource) => "parent.resource.",
                    (true, _) => "parent.",
                    (false, Scope::Unscoped) => ".",
                    (false, Scope::Span) => "span.",
                    (false, Scope::Resource) => "resource.",
                    (false, Scope::Event) => "event.",
                    (false, Scope::Link) => "link.",
                    (false, Scope::Instrumentation) => "instrumentation.",
                });
                match name {
                    AttributeName::Known(index) => self.out.push_str(pick(KNOWN_ATTRIBUTES, *index)),
                    AttributeName::Quoted(text) => quote(&mut self.out, text),
                    AttributeName::Plain(word) => self.word(word),
                }
            }
        }
    }

    fn word(&mut self, word: &Word) {
        const ALLOWED: &[u8] = b"abcdefghijklmnopqrstuvwxyz_.-:0123456789";
        // A letter first, then up to 15 more characters from the allowed set.
        self.out.push(char::from(b'a' + word.0.first().copied().unwrap_or(0) % 26));
        for byte in word.0.iter().skip(1).take(15) {
            self.out
                .push(char::from(ALLOWED[*byte as usize % ALLOWED.len()]));
        }
    }

    fn literal(&mut self, literal: &Literal) {
        match literal {
            Literal::Int(value) => {
                // A negative number is `-` applied to a literal; i64::MIN has no positive form.
                if *value < 0 {
                    self.out.push('-');
                }
                let _ = write!(self.out, "{}", value.unsigned_abs());
            }
            Literal::SmallInt(value) => {
                let _ = write!(self.out, "{value}");
            }
            Literal::Float(value) => float(&mut self.out, *value),
            Literal::Str(text) => quote(&mut self.out, text),
            Literal::KnownStr(index) => quote(&mut self.out, pick(KNOWN_STRINGS, *index)),
            Literal::RawStr(text) => {
                let text: String = text.chars().filter(|c| *c != '`').collect();
                let _ = write!(self.out, "`{text}`");
            }
            Literal::Bool(value) => {
                let _ = write!(self.out, "{value}");
            }
            Literal::Nil => self.out.push_str("nil"),
            Literal::Duration(amount, unit) => {
                let _ = write!(
                    self.out,
                    "{amount}{}",
                    match unit {
                        DurationUnit::Ns => "ns",
                        DurationUnit::Us => "us",
                        DurationUnit::Micro => "µs",
                        DurationUnit::Ms => "ms",
                        DurationUnit::S => "s",
                        DurationUnit::M => "m",
                        DurationUnit::H => "h",
                    }
                );
            }
            Literal::Status(index) => self.out.push_str(pick(STATUSES, *index)),
            Literal::Kind(index) => self.out.push_str(pick(KINDS, *index)),
        }
    }

    fn metrics_expr(&mut self, expr: &MetricsExpr) {
        match expr {
            MetricsExpr::Query(query) => self.metrics_query(query),
            MetricsExpr::Binary(op, lhs, rhs) if self.deeper() => self.nested(|r| {
                for (index, side) in [lhs, rhs].into_iter().enumerate() {
                    if index == 1 {
                        r.out.push(' ');
                        r.out.push_str(match op {
                            MetricsArithmetic::Add => "+",
                            MetricsArithmetic::Sub => "-",
                            MetricsArithmetic::Mul => "*",
                            MetricsArithmetic::Div => "/",
                        });
                        r.out.push(' ');
                    }
                    match side.as_ref() {
                        MetricsExpr::Number(number) => float(&mut r.out, *number),
                        other => {
                            r.out.push('(');
                            r.metrics_expr(other);
                            r.out.push(')');
                        }
                    }
                }
            }),
            MetricsExpr::Number(number) => {
                // A lone number is not a metrics expression: pair it with a query.
                self.out.push_str("({ } | rate()) * ");
                float(&mut self.out, *number);
            }
            MetricsExpr::Binary(..) => self.out.push_str("{ } | rate()"),
        }
    }

    fn metrics_query(&mut self, query: &MetricsQuery) {
        self.pipeline(&query.pipeline);
        self.out.push_str(" | ");
        match &query.function {
            MetricsFunction::Rate => self.out.push_str("rate()"),
            MetricsFunction::CountOverTime => self.out.push_str("count_over_time()"),
            MetricsFunction::SumOverTime(field) => self.call("sum_over_time", field),
            MetricsFunction::MinOverTime(field) => self.call("min_over_time", field),
            MetricsFunction::MaxOverTime(field) => self.call("max_over_time", field),
            MetricsFunction::AvgOverTime(field) => self.call("avg_over_time", field),
            MetricsFunction::HistogramOverTime(field) => self.call("histogram_over_time", field),
            MetricsFunction::QuantileOverTime(field, quantiles) => {
                self.out.push_str("quantile_over_time(");
                self.field(field);
                for quantile in quantiles.iter().take(4) {
                    self.out.push_str(", ");
                    match quantile {
                        Quantile::Percent(percent) => {
                            float(&mut self.out, f64::from(*percent % 101) / 100.0)
                        }
                        Quantile::Any(value) => float(&mut self.out, *value),
                        Quantile::LeadingDot(digits) => {
                            let _ = write!(self.out, ".{digits}");
                        }
                    }
                }
                self.out.push(')');
            }
            MetricsFunction::Compare(filter, arguments) => {
                self.out.push_str("compare({ ");
                if let Some(filter) = filter {
                    self.expr(filter);
                }
                self.out.push_str(" }");
                if let Some(arguments) = arguments {
                    let _ = write!(self.out, ", {}", arguments.top_n);
                    if let Some((start, end)) = arguments.window {
                        let _ = write!(self.out, ", {start}, {end}");
                    }
                }
                self.out.push(')');
            }
        }
        if !query.by.is_empty() {
            self.out.push_str(" by (");
            self.list(&query.by, Renderer::field);
            self.out.push(')');
        }
        for stage in query.second_stages.iter().take(3) {
            match stage {
                SecondStage::TopK(k) => {
                    let _ = write!(self.out, " | topk({k})");
                }
                SecondStage::BottomK(k) => {
                    let _ = write!(self.out, " | bottomk({k})");
                }
                SecondStage::Filter(op, value) => {
                    self.out.push(' ');
                    self.out.push_str(comparison(*op));
                    self.out.push(' ');
                    float(&mut self.out, *value);
                }
            }
        }
        self.hints(&query.hints);
    }

    fn call(&mut self, name: &str, field: &FieldRef) {
        self.out.push_str(name);
        self.out.push('(');
        self.field(field);
        self.out.push(')');
    }
}

fn spanset_op(op: SpansetOp) -> &'static str {
    match op {
        SpansetOp::And => "&&",
        SpansetOp::Or => "||",
        SpansetOp::Child => ">",
        SpansetOp::Parent => "<",
        SpansetOp::Descendant => ">>",
        SpansetOp::Ancestor => "<<",
        SpansetOp::Sibling => "~",
        SpansetOp::NotChild => "!>",
        SpansetOp::NotParent => "!<",
        SpansetOp::NotDescendant => "!>>",
        SpansetOp::NotAncestor => "!<<",
        SpansetOp::NotSibling => "!~",
        SpansetOp::UnionChild => "&>",
        SpansetOp::UnionParent => "&<",
        SpansetOp::UnionDescendant => "&>>",
        SpansetOp::UnionAncestor => "&<<",
        SpansetOp::UnionSibling => "&~",
    }
}

fn comparison(op: Comparison) -> &'static str {
    match op {
        Comparison::Eq => "=",
        Comparison::Neq => "!=",
        Comparison::Gt => ">",
        Comparison::Gte => ">=",
        Comparison::Lt => "<",
        Comparison::Lte => "<=",
    }
}

fn arithmetic(op: Arithmetic) -> &'static str {
    match op {
        Arithmetic::Add => "+",
        Arithmetic::Sub => "-",
        Arithmetic::Mul => "*",
        Arithmetic::Div => "/",
        Arithmetic::Mod => "%",
        Arithmetic::Pow => "^",
    }
}

/// The TraceQL text of an input.
pub fn render(input: &Input) -> String {
    let mut renderer = Renderer::new(input.max_depth);
    renderer.query(&input.query);
    renderer.out
}
