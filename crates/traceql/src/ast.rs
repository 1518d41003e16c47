//! The TraceQL syntax tree. Every node the evaluator needs is here; `Display` prints the
//! canonical form Tempo uses for spanset attribute keys (`count()`, `by(resource.service.name)`).

use std::fmt;

use regex::Regex;

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `.x`: the span's attribute, else the resource's.
    Unscoped,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

impl Scope {
    pub fn from_prefix(word: &str) -> Option<Scope> {
        Some(match word {
            "span" => Scope::Span,
            "resource" => Scope::Resource,
            "event" => Scope::Event,
            "link" => Scope::Link,
            "instrumentation" => Scope::Instrumentation,
            _ => return None,
        })
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Scope::Unscoped => "",
            Scope::Span => "span",
            Scope::Resource => "resource",
            Scope::Event => "event",
            Scope::Link => "link",
            Scope::Instrumentation => "instrumentation",
        }
    }
}

/// Built-in fields of spans, traces, events, links and scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intrinsic {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    SpanId,
    ParentId,
    ChildCount,
    TraceId,
    TraceDuration,
    RootName,
    RootService,
    EventName,
    EventTimeSinceStart,
    LinkTraceId,
    LinkSpanId,
    InstrumentationName,
    InstrumentationVersion,
    NestedSetLeft,
    NestedSetRight,
    NestedSetParent,
}

impl Intrinsic {
    /// Scoped names (`span:name`) and the legacy unscoped spellings (`name`, `rootServiceName`).
    pub fn from_name(name: &str) -> Option<Intrinsic> {
        Some(match name {
            "span:name" | "name" => Intrinsic::Name,
            "span:status" | "status" => Intrinsic::Status,
            "span:statusMessage" | "statusMessage" => Intrinsic::StatusMessage,
            "span:kind" | "kind" => Intrinsic::Kind,
            "span:duration" | "duration" => Intrinsic::Duration,
            "span:id" => Intrinsic::SpanId,
            "span:parentID" => Intrinsic::ParentId,
            "span:childCount" | "childCount" => Intrinsic::ChildCount,
            "trace:id" => Intrinsic::TraceId,
            "trace:duration" | "traceDuration" => Intrinsic::TraceDuration,
            "trace:rootName" | "rootName" => Intrinsic::RootName,
            "trace:rootService" | "rootServiceName" => Intrinsic::RootService,
            "event:name" => Intrinsic::EventName,
            "event:timeSinceStart" => Intrinsic::EventTimeSinceStart,
            "link:traceID" => Intrinsic::LinkTraceId,
            "link:spanID" => Intrinsic::LinkSpanId,
            "instrumentation:name" => Intrinsic::InstrumentationName,
            "instrumentation:version" => Intrinsic::InstrumentationVersion,
            "nestedSetLeft" => Intrinsic::NestedSetLeft,
            "nestedSetRight" => Intrinsic::NestedSetRight,
            "nestedSetParent" => Intrinsic::NestedSetParent,
            _ => return None,
        })
    }

    /// The canonical (scoped where one exists) spelling.
    pub fn name(self) -> &'static str {
        match self {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::Duration => "duration",
            Intrinsic::SpanId => "span:id",
            Intrinsic::ParentId => "span:parentID",
            Intrinsic::ChildCount => "span:childCount",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::TraceDuration => "trace:duration",
            Intrinsic::RootName => "trace:rootName",
            Intrinsic::RootService => "trace:rootService",
            Intrinsic::EventName => "event:name",
            Intrinsic::EventTimeSinceStart => "event:timeSinceStart",
            Intrinsic::LinkTraceId => "link:traceID",
            Intrinsic::LinkSpanId => "link:spanID",
            Intrinsic::InstrumentationName => "instrumentation:name",
            Intrinsic::InstrumentationVersion => "instrumentation:version",
            Intrinsic::NestedSetLeft => "nestedSetLeft",
            Intrinsic::NestedSetRight => "nestedSetRight",
            Intrinsic::NestedSetParent => "nestedSetParent",
        }
    }

    /// The static type of the intrinsic's value.
    pub fn value_type(self) -> ValueType {
        match self {
            Intrinsic::Name
            | Intrinsic::StatusMessage
            | Intrinsic::SpanId
            | Intrinsic::ParentId
            | Intrinsic::TraceId
            | Intrinsic::RootName
            | Intrinsic::RootService
            | Intrinsic::EventName
            | Intrinsic::LinkTraceId
            | Intrinsic::LinkSpanId
            | Intrinsic::InstrumentationName
            | Intrinsic::InstrumentationVersion => ValueType::String,
            Intrinsic::Status => ValueType::Status,
            Intrinsic::Kind => ValueType::Kind,
            Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::EventTimeSinceStart => {
                ValueType::Duration
            }
            Intrinsic::ChildCount
            | Intrinsic::NestedSetLeft
            | Intrinsic::NestedSetRight
            | Intrinsic::NestedSetParent => ValueType::Int,
        }
    }

    /// Every intrinsic Grafana's autocomplete should offer, scoped and legacy spellings.
    pub const TAG_NAMES: &'static [&'static str] = &[
        "duration",
        "event:name",
        "event:timeSinceStart",
        "instrumentation:name",
        "instrumentation:version",
        "kind",
        "link:spanID",
        "link:traceID",
        "name",
        "rootName",
        "rootServiceName",
        "span:childCount",
        "span:duration",
        "span:id",
        "span:kind",
        "span:name",
        "span:parentID",
        "span:status",
        "span:statusMessage",
        "status",
        "statusMessage",
        "trace:duration",
        "trace:id",
        "trace:rootName",
        "trace:rootService",
        "traceDuration",
    ];
}

/// What a field reads: an attribute in a scope (optionally on the parent span) or an intrinsic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Attribute {
        scope: Scope,
        parent: bool,
        name: String,
    },
    Intrinsic(Intrinsic),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Intrinsic(intrinsic) => f.write_str(intrinsic.name()),
            Field::Attribute {
                scope,
                parent,
                name,
            } => {
                if *parent {
                    f.write_str("parent")?;
                }
                f.write_str(scope.prefix())?;
                let plain = !name.is_empty()
                    && !name
                        .chars()
                        .any(|c| c.is_whitespace() || "{}()=~!<>&|^,\"`".contains(c));
                if plain {
                    write!(f, ".{name}")
                } else {
                    write!(f, ".{name:?}")
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatusCode {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    pub fn from_otlp(code: i32) -> StatusCode {
        match code {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpanKind {
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    pub fn from_otlp(kind: i32) -> SpanKind {
        match kind {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

/// The static types the checker reasons about. `Attribute` is "known only at run time".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Nil,
    Bool,
    Int,
    Float,
    String,
    Duration,
    Status,
    Kind,
    Attribute,
}

impl ValueType {
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ValueType::Int | ValueType::Float | ValueType::Duration | ValueType::Attribute
        )
    }
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Nil => "nil",
            ValueType::Bool => "boolean",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::String => "string",
            ValueType::Duration => "duration",
            ValueType::Status => "status",
            ValueType::Kind => "kind",
            ValueType::Attribute => "attribute",
        }
    }
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Duration(i64),
    Status(StatusCode),
    Kind(SpanKind),
}

impl Static {
    pub fn value_type(&self) -> ValueType {
        match self {
            Static::Nil => ValueType::Nil,
            Static::Bool(_) => ValueType::Bool,
            Static::Int(_) => ValueType::Int,
            Static::Float(_) => ValueType::Float,
            Static::String(_) => ValueType::String,
            Static::Duration(_) => ValueType::Duration,
            Static::Status(_) => ValueType::Status,
            Static::Kind(_) => ValueType::Kind,
        }
    }
}

impl fmt::Display for Static {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Static::Nil => f.write_str("nil"),
            Static::Bool(value) => write!(f, "{value}"),
            Static::Int(value) => write!(f, "{value}"),
            Static::Float(value) => write!(f, "{value}"),
            Static::String(value) => write!(f, "{value:?}"),
            Static::Duration(nanos) => write!(f, "{nanos}ns"),
            Static::Status(status) => f.write_str(status.name()),
            Static::Kind(kind) => f.write_str(kind.name()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Regex,
    NotRegex,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "=",
            BinaryOp::Neq => "!=",
            BinaryOp::Gt => ">",
            BinaryOp::Gte => ">=",
            BinaryOp::Lt => "<",
            BinaryOp::Lte => "<=",
            BinaryOp::Regex => "=~",
            BinaryOp::NotRegex => "!~",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
        }
    }
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::Neq
                | BinaryOp::Gt
                | BinaryOp::Gte
                | BinaryOp::Lt
                | BinaryOp::Lte
                | BinaryOp::Regex
                | BinaryOp::NotRegex
        )
    }
    pub fn is_arithmetic(self) -> bool {
        matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Mod
                | BinaryOp::Pow
        )
    }
}

/// An expression evaluated for one span inside `{ … }` (or a `by()`/aggregate argument).
#[derive(Debug, Clone)]
pub enum FieldExpr {
    Static(Static),
    Field(Field),
    Not(Box<FieldExpr>),
    Negate(Box<FieldExpr>),
    Binary {
        op: BinaryOp,
        lhs: Box<FieldExpr>,
        rhs: Box<FieldExpr>,
    },
    /// `lhs =~ "re"` / `!~`: the pattern compiled once, fully anchored.
    Regex {
        negated: bool,
        lhs: Box<FieldExpr>,
        pattern: String,
        regex: Regex,
    },
}

impl fmt::Display for FieldExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Static(value) => write!(f, "{value}"),
            FieldExpr::Field(field) => write!(f, "{field}"),
            FieldExpr::Not(inner) => write!(f, "!{inner}"),
            FieldExpr::Negate(inner) => write!(f, "-{inner}"),
            FieldExpr::Binary { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.symbol()),
            FieldExpr::Regex {
                negated,
                lhs,
                pattern,
                ..
            } => {
                write!(
                    f,
                    "({lhs} {} {pattern:?})",
                    if *negated { "!~" } else { "=~" }
                )
            }
        }
    }
}

impl FieldExpr {
    /// Levels below this node (0 for a literal or a field). Recursive: call it only on
    /// expressions the parser accepted, which nest at most `MAX_QUERY_DEPTH` levels.
    pub fn height(&self) -> usize {
        match self {
            FieldExpr::Static(_) | FieldExpr::Field(_) => 0,
            FieldExpr::Not(inner) | FieldExpr::Negate(inner) => inner.height() + 1,
            FieldExpr::Regex { lhs, .. } => lhs.height() + 1,
            FieldExpr::Binary { lhs, rhs, .. } => lhs.height().max(rhs.height()) + 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

impl Aggregate {
    pub fn name(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Avg => "avg",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Sum => "sum",
        }
    }
}

/// A per-spanset number: an aggregate, a literal, or arithmetic over them.
#[derive(Debug, Clone)]
pub enum ScalarExpr {
    Static(Static),
    Aggregate {
        function: Aggregate,
        argument: Option<FieldExpr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<ScalarExpr>,
        rhs: Box<ScalarExpr>,
    },
}

impl fmt::Display for ScalarExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Static(value) => write!(f, "{value}"),
            ScalarExpr::Aggregate {
                function,
                argument: None,
            } => write!(f, "{}()", function.name()),
            ScalarExpr::Aggregate {
                function,
                argument: Some(argument),
            } => write!(f, "{}({argument})", function.name()),
            ScalarExpr::Binary { op, lhs, rhs } => write!(f, "({lhs} {} {rhs})", op.symbol()),
        }
    }
}

impl ScalarExpr {
    pub fn has_aggregate(&self) -> bool {
        match self {
            ScalarExpr::Static(_) => false,
            ScalarExpr::Aggregate { .. } => true,
            ScalarExpr::Binary { lhs, rhs, .. } => lhs.has_aggregate() || rhs.has_aggregate(),
        }
    }
}

/// Operators between spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

impl SpansetOp {
    pub fn symbol(self) -> &'static str {
        match self {
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
}

/// One stage of a pipeline.
#[derive(Debug, Clone)]
pub enum Stage {
    Spanset(SpansetExpr),
    /// `count() > 3`, `avg(duration) > 20ms`.
    ScalarFilter {
        op: BinaryOp,
        lhs: ScalarExpr,
        rhs: ScalarExpr,
    },
    By(Vec<FieldExpr>),
    Coalesce,
    Select(Vec<Field>),
}

/// Something that maps spansets to spansets.
#[derive(Debug, Clone)]
pub enum SpansetExpr {
    /// `{ }` (None) or `{ expr }`.
    Filter(Option<FieldExpr>),
    Binary {
        op: SpansetOp,
        lhs: Box<SpansetExpr>,
        rhs: Box<SpansetExpr>,
    },
    Pipeline(Vec<Stage>),
}

/// A query hint from `with(name=value, …)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    pub name: String,
    pub value: Static,
}

/// A parsed and checked search query.
#[derive(Debug, Clone)]
pub struct Query {
    pub root: SpansetExpr,
    pub hints: Vec<Hint>,
}

impl Query {
    pub fn hint(&self, name: &str) -> Option<&Static> {
        self.hints
            .iter()
            .find(|hint| hint.name == name)
            .map(|hint| &hint.value)
    }
}
