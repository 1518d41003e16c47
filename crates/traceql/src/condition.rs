//! Conditions a storage layer may push down. `TraceCondition::of(query)` is *necessary*: every
//! trace for which the query returns a spanset satisfies it, so a scan may skip any trace that
//! fails it. What cannot be pushed down becomes `True`, which keeps the condition a superset.
//! Leaves use `value::compare`/`regex_match`, the evaluator's own rules.

use regex::Regex;

use crate::ast::*;
use crate::value::{compare, regex_match, Value};

/// A per-span predicate over fields a scan can read.
#[derive(Debug, Clone)]
pub enum SpanPredicate {
    True,
    And(Vec<SpanPredicate>),
    Or(Vec<SpanPredicate>),
    Compare { field: Field, op: BinaryOp, value: Static },
    Regex { field: Field, regex: Regex, negated: bool },
}

/// A per-trace condition: which spans must exist.
#[derive(Debug, Clone)]
pub enum TraceCondition {
    True,
    And(Vec<TraceCondition>),
    Or(Vec<TraceCondition>),
    Exists(SpanPredicate),
}

impl SpanPredicate {
    /// The necessary condition of a filter expression for one span.
    pub fn of(expr: &FieldExpr) -> SpanPredicate {
        match expr {
            FieldExpr::Binary { op: BinaryOp::And, lhs, rhs } => Self::and(vec![Self::of(lhs), Self::of(rhs)]),
            FieldExpr::Binary { op: BinaryOp::Or, lhs, rhs } => Self::or(vec![Self::of(lhs), Self::of(rhs)]),
            FieldExpr::Binary { op, lhs, rhs } if op.is_comparison() => match (lhs.as_ref(), rhs.as_ref()) {
                (FieldExpr::Field(field), FieldExpr::Static(value)) if pushable(field) => {
                    SpanPredicate::Compare { field: field.clone(), op: *op, value: value.clone() }
                }
                (FieldExpr::Static(value), FieldExpr::Field(field)) if pushable(field) => {
                    SpanPredicate::Compare { field: field.clone(), op: flip(*op), value: value.clone() }
                }
                _ => SpanPredicate::True,
            },
            FieldExpr::Regex { negated, lhs, regex, .. } => match lhs.as_ref() {
                FieldExpr::Field(field) if pushable(field) => {
                    SpanPredicate::Regex { field: field.clone(), regex: regex.clone(), negated: *negated }
                }
                _ => SpanPredicate::True,
            },
            _ => SpanPredicate::True,
        }
    }

    /// The predicate equivalent to a filter expression — a span satisfies it exactly when the
    /// filter accepts the span — or None when some part cannot be read column by column
    /// (unscoped attributes read two places, arithmetic, trace-level fields).
    pub fn exact(expr: &FieldExpr) -> Option<SpanPredicate> {
        let scoped = |field: &Field| pushable(field) && !matches!(field, Field::Attribute { scope: Scope::Unscoped, .. });
        Some(match expr {
            FieldExpr::Binary { op: BinaryOp::And, lhs, rhs } => SpanPredicate::And(vec![Self::exact(lhs)?, Self::exact(rhs)?]),
            FieldExpr::Binary { op: BinaryOp::Or, lhs, rhs } => SpanPredicate::Or(vec![Self::exact(lhs)?, Self::exact(rhs)?]),
            FieldExpr::Binary { op, lhs, rhs } if op.is_comparison() => match (lhs.as_ref(), rhs.as_ref()) {
                (FieldExpr::Field(field), FieldExpr::Static(value)) if scoped(field) => {
                    SpanPredicate::Compare { field: field.clone(), op: *op, value: value.clone() }
                }
                (FieldExpr::Static(value), FieldExpr::Field(field)) if scoped(field) => {
                    SpanPredicate::Compare { field: field.clone(), op: flip(*op), value: value.clone() }
                }
                _ => return None,
            },
            FieldExpr::Regex { negated, lhs, regex, .. } => match lhs.as_ref() {
                FieldExpr::Field(field) if scoped(field) => SpanPredicate::Regex { field: field.clone(), regex: regex.clone(), negated: *negated },
                _ => return None,
            },
            _ => return None,
        })
    }

    fn and(parts: Vec<SpanPredicate>) -> SpanPredicate {
        let parts: Vec<_> = parts.into_iter().filter(|part| !matches!(part, SpanPredicate::True)).collect();
        match parts.len() {
            0 => SpanPredicate::True,
            1 => parts.into_iter().next().unwrap_or(SpanPredicate::True),
            _ => SpanPredicate::And(parts),
        }
    }

    fn or(parts: Vec<SpanPredicate>) -> SpanPredicate {
        if parts.iter().any(|part| matches!(part, SpanPredicate::True)) {
            return SpanPredicate::True;
        }
        SpanPredicate::Or(parts)
    }

    /// Evaluates the predicate on one span of a trace (live data and tests; block scans
    /// evaluate leaves column by column with `leaf_accepts`).
    pub fn matches_span(&self, trace: &crate::TraceView<'_>, span: u32) -> bool {
        match self {
            SpanPredicate::True => true,
            SpanPredicate::And(parts) => parts.iter().all(|part| part.matches_span(trace, span)),
            SpanPredicate::Or(parts) => parts.iter().any(|part| part.matches_span(trace, span)),
            SpanPredicate::Compare { field, .. } | SpanPredicate::Regex { field, .. } => {
                self.leaf_accepts(&crate::eval::resolve(field, trace, span))
            }
        }
    }

    /// Whether a leaf accepts a value read from storage.
    pub fn leaf_accepts(&self, value: &Value<'_>) -> bool {
        match self {
            SpanPredicate::Compare { op, value: literal, .. } => compare(*op, value, &Value::from_static(literal)),
            SpanPredicate::Regex { regex, negated, .. } => regex_match(regex, *negated, value),
            _ => true,
        }
    }
}

/// Fields whose values a scan reads directly: the span's own attributes, its resource's, and
/// per-span intrinsics. Trace-level intrinsics, events, links and parents need the whole trace.
fn pushable(field: &Field) -> bool {
    match field {
        Field::Attribute { scope, parent, .. } => !parent && matches!(scope, Scope::Span | Scope::Resource | Scope::Unscoped),
        Field::Intrinsic(intrinsic) => matches!(
            intrinsic,
            Intrinsic::Name | Intrinsic::Status | Intrinsic::StatusMessage | Intrinsic::Kind | Intrinsic::Duration
        ),
    }
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Gte => BinaryOp::Lte,
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Lte => BinaryOp::Gte,
        other => other,
    }
}

impl TraceCondition {
    pub fn of(query: &Query) -> TraceCondition {
        Self::of_spanset(&query.root)
    }

    fn of_spanset(expr: &SpansetExpr) -> TraceCondition {
        match expr {
            SpansetExpr::Filter(None) => TraceCondition::True,
            SpansetExpr::Filter(Some(condition)) => match SpanPredicate::of(condition) {
                SpanPredicate::True => TraceCondition::True,
                predicate => TraceCondition::Exists(predicate),
            },
            SpansetExpr::Binary { op: SpansetOp::Or, lhs, rhs } => {
                let parts = vec![Self::of_spanset(lhs), Self::of_spanset(rhs)];
                if parts.iter().any(|part| matches!(part, TraceCondition::True)) {
                    return TraceCondition::True;
                }
                TraceCondition::Or(parts)
            }
            SpansetExpr::Binary { op, lhs, rhs } => match op {
                // A negated structural result only needs right-hand spans.
                SpansetOp::NotChild
                | SpansetOp::NotParent
                | SpansetOp::NotDescendant
                | SpansetOp::NotAncestor
                | SpansetOp::NotSibling => Self::of_spanset(rhs),
                _ => Self::and(vec![Self::of_spanset(lhs), Self::of_spanset(rhs)]),
            },
            SpansetExpr::Pipeline(stages) => Self::and(
                stages
                    .iter()
                    .map(|stage| match stage {
                        Stage::Spanset(expr) => Self::of_spanset(expr),
                        _ => TraceCondition::True,
                    })
                    .collect(),
            ),
        }
    }

    fn and(parts: Vec<TraceCondition>) -> TraceCondition {
        let parts: Vec<_> = parts.into_iter().filter(|part| !matches!(part, TraceCondition::True)).collect();
        match parts.len() {
            0 => TraceCondition::True,
            1 => parts.into_iter().next().unwrap_or(TraceCondition::True),
            _ => TraceCondition::And(parts),
        }
    }

    /// Every `Exists` predicate, in a fixed order (scans evaluate each once per row).
    pub fn predicates(&self) -> Vec<&SpanPredicate> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a SpanPredicate>) {
        match self {
            TraceCondition::True => {}
            TraceCondition::And(parts) | TraceCondition::Or(parts) => parts.iter().for_each(|part| part.collect(out)),
            TraceCondition::Exists(predicate) => out.push(predicate),
        }
    }

    /// Evaluates the condition given, for each predicate in `predicates()` order, whether some
    /// span of the trace satisfies it.
    pub fn holds(&self, found: &[bool]) -> bool {
        let mut index = 0;
        self.holds_at(found, &mut index)
    }

    fn holds_at(&self, found: &[bool], index: &mut usize) -> bool {
        match self {
            TraceCondition::True => true,
            // Every part is visited (no short-circuit) so that `index` stays aligned with `predicates()`.
            TraceCondition::And(parts) => {
                let results: Vec<bool> = parts.iter().map(|part| part.holds_at(found, index)).collect();
                results.into_iter().all(|held| held)
            }
            TraceCondition::Or(parts) => {
                let results: Vec<bool> = parts.iter().map(|part| part.holds_at(found, index)).collect();
                results.into_iter().any(|held| held)
            }
            TraceCondition::Exists(_) => {
                let value = found.get(*index).copied().unwrap_or(true);
                *index += 1;
                value
            }
        }
    }
}

/// Every field a query reads, for the attributes returned with matched spans (Tempo returns
/// the attributes a query touched, plus those named in `select()`).
pub fn referenced_fields(query: &Query) -> Vec<Field> {
    fn field_expr(expr: &FieldExpr, out: &mut Vec<Field>) {
        match expr {
            FieldExpr::Static(_) => {}
            FieldExpr::Field(field) => {
                if !out.contains(field) {
                    out.push(field.clone());
                }
            }
            FieldExpr::Not(inner) | FieldExpr::Negate(inner) => field_expr(inner, out),
            FieldExpr::Regex { lhs, .. } => field_expr(lhs, out),
            FieldExpr::Binary { lhs, rhs, .. } => {
                field_expr(lhs, out);
                field_expr(rhs, out);
            }
        }
    }
    fn spanset(expr: &SpansetExpr, out: &mut Vec<Field>) {
        match expr {
            SpansetExpr::Filter(None) => {}
            SpansetExpr::Filter(Some(condition)) => field_expr(condition, out),
            SpansetExpr::Binary { lhs, rhs, .. } => {
                spanset(lhs, out);
                spanset(rhs, out);
            }
            SpansetExpr::Pipeline(stages) => {
                for stage in stages {
                    match stage {
                        Stage::Spanset(expr) => spanset(expr, out),
                        Stage::Select(fields) => {
                            for field in fields {
                                if !out.contains(field) {
                                    out.push(field.clone());
                                }
                            }
                        }
                        Stage::By(_) | Stage::Coalesce | Stage::ScalarFilter { .. } => {}
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    spanset(&query.root, &mut out);
    out
}
