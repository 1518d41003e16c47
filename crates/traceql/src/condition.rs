//! Conditions a storage layer may push down. `TraceCondition::of(query)` is *necessary*: every
//! trace for which the query returns a spanset satisfies it, so a scan may skip any trace that
//! fails it. What cannot be pushed down becomes `True`, which keeps the condition a superset.
//! Leaves use `value::compare`/`regex_match`, the evaluator's own rules.

use regex::Regex;

use crate::ast::*;
use crate::value::{compare, compare_nil, regex_match, Value};

/// A per-span predicate over fields a scan can read.
#[derive(Debug, Clone)]
pub enum SpanPredicate {
    True,
    And(Vec<SpanPredicate>),
    Or(Vec<SpanPredicate>),
    Compare {
        field: Field,
        op: BinaryOp,
        value: Static,
    },
    Regex {
        field: Field,
        regex: Regex,
        negated: bool,
    },
}

/// A per-trace condition: which spans must exist.
#[derive(Debug, Clone)]
pub enum TraceCondition {
    True,
    And(Vec<TraceCondition>),
    Or(Vec<TraceCondition>),
    Exists(SpanPredicate),
    /// At least `min` spans satisfy the predicate (`{ p } | count() > n`). A scan that sees only
    /// a piece of a trace can rule it out only when the piece is the whole trace; read as
    /// `Exists` wherever counts are not known (`holds`).
    AtLeast {
        predicate: SpanPredicate,
        min: u32,
    },
    /// `{ lhs } op { rhs }` with both filters exact: some span satisfying `lhs` and some span
    /// satisfying `rhs` stand in `relation`. A scan that knows the span tree (nested-set
    /// numbers) decides it; one that does not treats it as both spans existing.
    Related {
        relation: Relation,
        lhs: SpanPredicate,
        rhs: SpanPredicate,
    },
}

/// How a right-hand span relates to a left-hand one in a structural operator (`>` child,
/// `<` parent, `>>` descendant, `<<` ancestor, `~` sibling), as the evaluator defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    Child,
    Parent,
    Descendant,
    Ancestor,
    Sibling,
}

impl Relation {
    /// The relation of a plain or union structural operator: both return spans exactly when
    /// some pair is related (the negated forms do not, so they have none here).
    fn of(op: SpansetOp) -> Option<Relation> {
        use SpansetOp::*;
        match op {
            NotChild | NotParent | NotDescendant | NotAncestor | NotSibling => None,
            other => Self::tested_by(other),
        }
    }

    /// The relation a structural operator (plain, negated or union) tests between spans.
    pub fn tested_by(op: SpansetOp) -> Option<Relation> {
        use SpansetOp::*;
        Some(match op {
            Child | NotChild | UnionChild => Relation::Child,
            Parent | NotParent | UnionParent => Relation::Parent,
            Descendant | NotDescendant | UnionDescendant => Relation::Descendant,
            Ancestor | NotAncestor | UnionAncestor => Relation::Ancestor,
            Sibling | NotSibling | UnionSibling => Relation::Sibling,
            And | Or => return None,
        })
    }

    /// Whether span `right` relates to span `left` in a whole trace (the evaluator's rule).
    pub fn holds_in(self, trace: &crate::TraceView<'_>, left: u32, right: u32) -> bool {
        match self {
            Relation::Child => trace.parent[right as usize] == Some(left),
            Relation::Parent => trace.parent[left as usize] == Some(right),
            Relation::Descendant => trace.is_ancestor(left, right),
            Relation::Ancestor => trace.is_ancestor(right, left),
            Relation::Sibling => {
                left != right
                    && trace.parent[left as usize].is_some()
                    && trace.parent[left as usize] == trace.parent[right as usize]
            }
        }
    }

    /// Whether span `right` relates to span `left`, given each span's nested-set numbers
    /// `(left, right, parent)` within one connected tree (no orphans).
    pub fn holds(self, left: (i32, i32, i32), right: (i32, i32, i32)) -> bool {
        match self {
            Relation::Child => right.2 == left.0,
            Relation::Parent => left.2 == right.0,
            Relation::Descendant => left.0 < right.0 && right.1 < left.1,
            Relation::Ancestor => right.0 < left.0 && left.1 < right.1,
            Relation::Sibling => left.0 != right.0 && left.2 > 0 && left.2 == right.2,
        }
    }
}

impl SpanPredicate {
    /// The necessary condition of a filter expression for one span.
    pub fn of(expr: &FieldExpr) -> SpanPredicate {
        match expr {
            FieldExpr::Binary {
                op: BinaryOp::And,
                lhs,
                rhs,
            } => Self::and(vec![Self::of(lhs), Self::of(rhs)]),
            FieldExpr::Binary {
                op: BinaryOp::Or,
                lhs,
                rhs,
            } => Self::or(vec![Self::of(lhs), Self::of(rhs)]),
            FieldExpr::Binary { op, lhs, rhs } if op.is_comparison() => {
                match (lhs.as_ref(), rhs.as_ref()) {
                    (FieldExpr::Field(field), FieldExpr::Static(value)) if pushable(field) => {
                        SpanPredicate::Compare {
                            field: field.clone(),
                            op: *op,
                            value: value.clone(),
                        }
                    }
                    (FieldExpr::Static(value), FieldExpr::Field(field)) if pushable(field) => {
                        SpanPredicate::Compare {
                            field: field.clone(),
                            op: flip(*op),
                            value: value.clone(),
                        }
                    }
                    _ => SpanPredicate::True,
                }
            }
            FieldExpr::Regex {
                negated,
                lhs,
                regex,
                ..
            } => match lhs.as_ref() {
                FieldExpr::Field(field) if pushable(field) => SpanPredicate::Regex {
                    field: field.clone(),
                    regex: regex.clone(),
                    negated: *negated,
                },
                _ => SpanPredicate::True,
            },
            _ => SpanPredicate::True,
        }
    }

    /// The predicate equivalent to a filter expression — a span satisfies it exactly when the
    /// filter accepts the span — or None when some part cannot be read column by column
    /// (unscoped attributes read two places, arithmetic, trace-level fields).
    pub fn exact(expr: &FieldExpr) -> Option<SpanPredicate> {
        let scoped = |field: &Field| {
            pushable(field)
                && !matches!(
                    field,
                    Field::Attribute {
                        scope: Scope::Unscoped,
                        ..
                    }
                )
        };
        Some(match expr {
            FieldExpr::Binary {
                op: BinaryOp::And,
                lhs,
                rhs,
            } => SpanPredicate::And(vec![Self::exact(lhs)?, Self::exact(rhs)?]),
            FieldExpr::Binary {
                op: BinaryOp::Or,
                lhs,
                rhs,
            } => SpanPredicate::Or(vec![Self::exact(lhs)?, Self::exact(rhs)?]),
            FieldExpr::Binary { op, lhs, rhs } if op.is_comparison() => {
                match (lhs.as_ref(), rhs.as_ref()) {
                    (FieldExpr::Field(field), FieldExpr::Static(value)) if scoped(field) => {
                        SpanPredicate::Compare {
                            field: field.clone(),
                            op: *op,
                            value: value.clone(),
                        }
                    }
                    (FieldExpr::Static(value), FieldExpr::Field(field)) if scoped(field) => {
                        SpanPredicate::Compare {
                            field: field.clone(),
                            op: flip(*op),
                            value: value.clone(),
                        }
                    }
                    _ => return None,
                }
            }
            FieldExpr::Regex {
                negated,
                lhs,
                regex,
                ..
            } => match lhs.as_ref() {
                FieldExpr::Field(field) if scoped(field) => SpanPredicate::Regex {
                    field: field.clone(),
                    regex: regex.clone(),
                    negated: *negated,
                },
                _ => return None,
            },
            _ => return None,
        })
    }

    fn and(parts: Vec<SpanPredicate>) -> SpanPredicate {
        let parts: Vec<_> = parts
            .into_iter()
            .filter(|part| !matches!(part, SpanPredicate::True))
            .collect();
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
            SpanPredicate::Compare {
                op, value: literal, ..
            } => match literal {
                Static::Nil => compare_nil(*op, value),
                literal => compare(*op, value, &Value::from_static(literal)),
            },
            SpanPredicate::Regex { regex, negated, .. } => regex_match(regex, *negated, value),
            _ => true,
        }
    }
}

/// Fields whose values a scan reads directly: the span's own attributes, its resource's, and
/// per-span intrinsics. Trace-level intrinsics, events, links and parents need the whole trace.
fn pushable(field: &Field) -> bool {
    match field {
        Field::Attribute { scope, parent, .. } => {
            !parent && matches!(scope, Scope::Span | Scope::Resource | Scope::Unscoped)
        }
        Field::Intrinsic(intrinsic) => matches!(
            intrinsic,
            Intrinsic::Name
                | Intrinsic::Status
                | Intrinsic::StatusMessage
                | Intrinsic::Kind
                | Intrinsic::Duration
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
            SpansetExpr::Binary {
                op: SpansetOp::Or,
                lhs,
                rhs,
            } => {
                let parts = vec![Self::of_spanset(lhs), Self::of_spanset(rhs)];
                if parts
                    .iter()
                    .any(|part| matches!(part, TraceCondition::True))
                {
                    return TraceCondition::True;
                }
                TraceCondition::Or(parts)
            }
            SpansetExpr::Binary { op, lhs, rhs } => {
                if let (Some(relation), Some(lhs), Some(rhs)) = (
                    Relation::of(*op),
                    Self::exact_filter(lhs),
                    Self::exact_filter(rhs),
                ) {
                    return TraceCondition::Related { relation, lhs, rhs };
                }
                Self::of_other_binary(*op, lhs, rhs)
            }
            SpansetExpr::Pipeline(stages) => {
                let mut parts: Vec<TraceCondition> = stages
                    .iter()
                    .map(|stage| match stage {
                        Stage::Spanset(expr) => Self::of_spanset(expr),
                        _ => TraceCondition::True,
                    })
                    .collect();
                parts.extend(Self::count_floor(stages));
                Self::and(parts)
            }
        }
    }

    fn of_other_binary(op: SpansetOp, lhs: &SpansetExpr, rhs: &SpansetExpr) -> TraceCondition {
        match op {
            // A negated structural result only needs right-hand spans.
            SpansetOp::NotChild
            | SpansetOp::NotParent
            | SpansetOp::NotDescendant
            | SpansetOp::NotAncestor
            | SpansetOp::NotSibling => Self::of_spanset(rhs),
            _ => Self::and(vec![Self::of_spanset(lhs), Self::of_spanset(rhs)]),
        }
    }

    /// `{ p } | count() > n` (also `>=`, `=`, either way round, after any mix of exact filters,
    /// `by`, `coalesce` and `select`): every spanset reaching the count holds only spans that
    /// satisfy all the filters before it, so a trace with results has at least that many of them.
    /// Only the first count stage is used; later ones narrow further and stay unchecked.
    fn count_floor(stages: &[Stage]) -> Option<TraceCondition> {
        let mut filters = Vec::new();
        for stage in stages {
            match stage {
                Stage::Spanset(expr) => filters.push(Self::exact_filter(expr)?),
                Stage::By(_) | Stage::Coalesce | Stage::Select(_) => {}
                Stage::ScalarFilter { op, lhs, rhs } => {
                    let min = match (lhs, rhs) {
                        (
                            ScalarExpr::Aggregate {
                                function: Aggregate::Count,
                                ..
                            },
                            ScalarExpr::Static(bound),
                        ) => count_minimum(*op, bound)?,
                        (
                            ScalarExpr::Static(bound),
                            ScalarExpr::Aggregate {
                                function: Aggregate::Count,
                                ..
                            },
                        ) => count_minimum(flip(*op), bound)?,
                        _ => return None,
                    };
                    if min <= 1 {
                        return None;
                    }
                    let predicate = match filters.len() {
                        0 => SpanPredicate::True,
                        1 => filters.pop().unwrap_or(SpanPredicate::True),
                        _ => SpanPredicate::And(filters),
                    };
                    return Some(TraceCondition::AtLeast { predicate, min });
                }
            }
        }
        None
    }

    /// The predicate a spanset filter's spans satisfy exactly (`{ }`: every span).
    fn exact_filter(expr: &SpansetExpr) -> Option<SpanPredicate> {
        match expr {
            SpansetExpr::Filter(None) => Some(SpanPredicate::True),
            SpansetExpr::Filter(Some(condition)) => SpanPredicate::exact(condition),
            _ => None,
        }
    }

    /// Whether the condition reads the span tree (a scan then also reads nested-set numbers).
    pub fn has_relations(&self) -> bool {
        match self {
            TraceCondition::Related { .. } => true,
            TraceCondition::And(parts) | TraceCondition::Or(parts) => {
                parts.iter().any(TraceCondition::has_relations)
            }
            _ => false,
        }
    }

    fn and(parts: Vec<TraceCondition>) -> TraceCondition {
        let parts: Vec<_> = parts
            .into_iter()
            .filter(|part| !matches!(part, TraceCondition::True))
            .collect();
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
            TraceCondition::And(parts) | TraceCondition::Or(parts) => {
                parts.iter().for_each(|part| part.collect(out))
            }
            TraceCondition::Exists(predicate) | TraceCondition::AtLeast { predicate, .. } => {
                out.push(predicate)
            }
            TraceCondition::Related { lhs, rhs, .. } => {
                out.push(lhs);
                out.push(rhs);
            }
        }
    }

    /// Evaluates the condition given, for each predicate in `predicates()` order, whether some
    /// span of the trace satisfies it (relations count as both sides existing, `AtLeast` as
    /// `Exists`: without counts it can only be necessary).
    pub fn holds(&self, found: &[bool]) -> bool {
        self.holds_related(found, &|_, _, _| true)
    }

    /// `holds`, deciding each relation with `related(relation, lhs, rhs)` (indexes into
    /// `predicates()`), called only when both sides exist.
    pub fn holds_related(
        &self,
        found: &[bool],
        related: &dyn Fn(Relation, usize, usize) -> bool,
    ) -> bool {
        let mut index = 0;
        let present = |predicate: usize, _min: u32| found.get(predicate).copied().unwrap_or(true);
        self.holds_at(&present, related, &mut index)
    }

    /// `holds_related` given, per predicate, how many spans satisfy it: `AtLeast` is decided.
    pub fn holds_counted(
        &self,
        counts: &[u32],
        related: &dyn Fn(Relation, usize, usize) -> bool,
    ) -> bool {
        let mut index = 0;
        let enough =
            |predicate: usize, min: u32| counts.get(predicate).is_none_or(|count| *count >= min);
        self.holds_at(&enough, related, &mut index)
    }

    /// Whether the condition counts spans (`holds_counted` can then reject what `holds` keeps).
    pub fn has_counts(&self) -> bool {
        match self {
            TraceCondition::AtLeast { .. } => true,
            TraceCondition::And(parts) | TraceCondition::Or(parts) => {
                parts.iter().any(TraceCondition::has_counts)
            }
            _ => false,
        }
    }

    /// `present(predicate, min)`: whether at least `min` spans satisfy predicate `predicate`.
    fn holds_at(
        &self,
        present: &dyn Fn(usize, u32) -> bool,
        related: &dyn Fn(Relation, usize, usize) -> bool,
        index: &mut usize,
    ) -> bool {
        let next = |index: &mut usize, min: u32| {
            let value = present(*index, min);
            *index += 1;
            value
        };
        match self {
            TraceCondition::True => true,
            // Every part is visited (no short-circuit) so that `index` stays aligned with `predicates()`.
            TraceCondition::And(parts) => {
                let results: Vec<bool> = parts
                    .iter()
                    .map(|part| part.holds_at(present, related, index))
                    .collect();
                results.into_iter().all(|held| held)
            }
            TraceCondition::Or(parts) => {
                let results: Vec<bool> = parts
                    .iter()
                    .map(|part| part.holds_at(present, related, index))
                    .collect();
                results.into_iter().any(|held| held)
            }
            TraceCondition::Exists(_) => next(index, 1),
            TraceCondition::AtLeast { min, .. } => next(index, *min),
            TraceCondition::Related { relation, .. } => {
                let (lhs, rhs) = (*index, *index + 1);
                let both = next(index, 1) & next(index, 1);
                both && related(*relation, lhs, rhs)
            }
        }
    }
}

/// The least count that passes `count() op bound`, or `None` when any count may pass (`<`,
/// `!=`) or the bound is not a number.
fn count_minimum(op: BinaryOp, bound: &Static) -> Option<u32> {
    let bound = match bound {
        Static::Int(value) => *value as f64,
        Static::Float(value) => *value,
        _ => return None,
    };
    if !bound.is_finite() {
        return None;
    }
    let least = match op {
        BinaryOp::Gt => bound.floor() + 1.0,
        BinaryOp::Gte | BinaryOp::Eq => bound.ceil(),
        _ => return None,
    };
    // A count above u32::MAX cannot be met by any trace within the limits; the cap keeps the
    // condition necessary anyway.
    Some(least.clamp(0.0, u32::MAX as f64) as u32)
}

/// Every field a query reads, for the attributes returned with matched spans (Tempo returns
/// the attributes a query touched, plus those named in `select()`).
pub fn referenced_fields(query: &Query) -> Vec<Field> {
    fields_of(query, false)
}

/// Every field evaluating the query may read: `referenced_fields` plus those of `by()` and of
/// aggregates (`avg(span.x) > 2`), which are not returned with spans. A storage layer that
/// decodes only some of a span's fields must decode at least these.
pub fn evaluated_fields(query: &Query) -> Vec<Field> {
    fields_of(query, true)
}

fn fields_of(query: &Query, with_groups_and_aggregates: bool) -> Vec<Field> {
    fn add(field: &Field, out: &mut Vec<Field>) {
        if !out.contains(field) {
            out.push(field.clone());
        }
    }
    fn field_expr(expr: &FieldExpr, out: &mut Vec<Field>) {
        match expr {
            FieldExpr::Static(_) => {}
            FieldExpr::Field(field) => add(field, out),
            FieldExpr::Not(inner) | FieldExpr::Negate(inner) => field_expr(inner, out),
            FieldExpr::Regex { lhs, .. } => field_expr(lhs, out),
            FieldExpr::Binary { lhs, rhs, .. } => {
                field_expr(lhs, out);
                field_expr(rhs, out);
            }
        }
    }
    fn scalar(expr: &ScalarExpr, out: &mut Vec<Field>) {
        match expr {
            ScalarExpr::Static(_) => {}
            ScalarExpr::Aggregate { argument, .. } => {
                if let Some(argument) = argument {
                    field_expr(argument, out);
                }
            }
            ScalarExpr::Binary { lhs, rhs, .. } => {
                scalar(lhs, out);
                scalar(rhs, out);
            }
        }
    }
    fn spanset(expr: &SpansetExpr, all: bool, out: &mut Vec<Field>) {
        match expr {
            SpansetExpr::Filter(None) => {}
            SpansetExpr::Filter(Some(condition)) => field_expr(condition, out),
            SpansetExpr::Binary { lhs, rhs, .. } => {
                spanset(lhs, all, out);
                spanset(rhs, all, out);
            }
            SpansetExpr::Pipeline(stages) => {
                for stage in stages {
                    match stage {
                        Stage::Spanset(expr) => spanset(expr, all, out),
                        Stage::Select(fields) => fields.iter().for_each(|field| add(field, out)),
                        Stage::By(groups) if all => {
                            groups.iter().for_each(|group| field_expr(group, out))
                        }
                        Stage::ScalarFilter { lhs, rhs, .. } if all => {
                            scalar(lhs, out);
                            scalar(rhs, out);
                        }
                        Stage::By(_) | Stage::Coalesce | Stage::ScalarFilter { .. } => {}
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    spanset(&query.root, with_groups_and_aggregates, &mut out);
    out
}
