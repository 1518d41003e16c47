//! TraceQL: the query language of traces, as Tempo 3.x defines it, plus the `parent.` scope.
//! This crate does no I/O. `parse` turns text into a checked `Query` (errors carry line and
//! column) nesting at most `MAX_QUERY_DEPTH` levels, so that every walk of its tree is
//! stack-safe; `parse_lenient` salvages the complete conditions of a half-typed query for
//! autocomplete; `evaluate` runs a query over one `TraceView`; `TraceCondition` is what a storage
//! layer may push down to skip traces without reading them whole; `parse_metrics_expr` and
//! `Accumulator` are TraceQL metrics.

pub mod ast;
pub mod condition;
mod error;
pub mod eval;
mod lenient;
mod lexer;
pub mod metrics;
mod parser;
pub mod projection;
pub mod trace;
pub mod value;

pub use ast::{Field, Query};
pub use condition::{evaluated_fields, referenced_fields, Relation, SpanPredicate, TraceCondition};
pub use error::{ErrorKind, ParseError};
pub use eval::{evaluate, Spanset};
pub use lenient::parse_lenient;
pub use metrics::{
    parse_metrics, parse_metrics_expr, Accumulator, Intervals, MetricsExpr, MetricsQuery,
};
pub use parser::{parse, MAX_QUERY_DEPTH};
pub use projection::projection_of;
pub use trace::TraceView;
pub use value::Value;

#[cfg(test)]
mod tests;
