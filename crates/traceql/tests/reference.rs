//! Property test: the engine against a deliberately naive reference evaluator over random
//! traces. The reference knows nothing of the engine: it walks parent IDs instead of nested
//! sets, compares values with its own rules, and runs its own small query tree, which is
//! printed as TraceQL for the engine to parse. It also checks that the pushed-down
//! `TraceCondition` holds for every trace the engine returns spans for (a scan may only skip
//! traces that cannot match).

use std::collections::HashMap;

use andante_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use andante_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use andante_model::projected::decode_projected;
use andante_traceql::{
    evaluate, evaluated_fields, parse, projection_of, Relation, TraceCondition, TraceView,
};
use proptest::prelude::*;
use prost::Message;

#[derive(Debug, Clone)]
struct RSpan {
    id: u8,
    parent: Option<u8>,
    service: u8,
    name: u8,
    kind: i32,
    status: i32,
    duration_ms: u64,
    attr_int: Option<i64>,
    attr_str: Option<u8>,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Eq,
    Neq,
    Gt,
    Lt,
}

#[derive(Debug, Clone)]
enum Cond {
    Name(Op, u8),
    Service(u8),
    Kind(i32),
    Status(i32),
    DurationGt(u64),
    AttrInt(Op, i64),
    /// The literal on the left: `3 > span.n`.
    IntAttr(i64, Op),
    AttrStrRegex(u8),
    AttrExists(bool),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

#[derive(Debug, Clone, Copy)]
enum Structural {
    Child,
    Descendant,
    Parent,
    Ancestor,
    Sibling,
    NotChild,
    UnionDescendant,
    And,
    Or,
}

#[derive(Debug, Clone)]
enum Q {
    Filter(Cond),
    Binary(Structural, Box<Q>, Box<Q>),
    CountGt(Box<Q>, usize),
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Neq => "!=",
        Op::Gt => ">",
        Op::Lt => "<",
    }
}

const KINDS: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];
const STATUSES: [&str; 3] = ["unset", "ok", "error"];

fn cond_text(cond: &Cond) -> String {
    match cond {
        Cond::Name(op, n) => format!("name {} \"op{n}\"", op_text(*op)),
        Cond::Service(s) => format!("resource.service.name = \"svc{s}\""),
        Cond::Kind(k) => format!("kind = {}", KINDS[*k as usize]),
        Cond::Status(s) => format!("status = {}", STATUSES[*s as usize]),
        Cond::DurationGt(ms) => format!("duration > {ms}ms"),
        Cond::AttrInt(op, v) => format!("span.n {} {v}", op_text(*op)),
        Cond::IntAttr(v, op) => format!("{v} {} span.n", op_text(*op)),
        Cond::AttrStrRegex(c) => format!(".s =~ \"v{c}.*\""),
        Cond::AttrExists(true) => ".n != nil".to_owned(),
        Cond::AttrExists(false) => ".n = nil".to_owned(),
        Cond::And(a, b) => format!("({} && {})", cond_text(a), cond_text(b)),
        Cond::Or(a, b) => format!("({} || {})", cond_text(a), cond_text(b)),
    }
}

fn q_text(q: &Q) -> String {
    match q {
        Q::Filter(cond) => format!("{{ {} }}", cond_text(cond)),
        Q::Binary(op, a, b) => {
            let symbol = match op {
                Structural::Child => ">",
                Structural::Descendant => ">>",
                Structural::Parent => "<",
                Structural::Ancestor => "<<",
                Structural::Sibling => "~",
                Structural::NotChild => "!>",
                Structural::UnionDescendant => "&>>",
                Structural::And => "&&",
                Structural::Or => "||",
            };
            format!("({} {symbol} {})", q_text(a), q_text(b))
        }
        Q::CountGt(inner, n) => format!("({} | count() > {n})", q_text(inner)),
    }
}

fn cmp_int(op: Op, a: i64, b: i64) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Neq => a != b,
        Op::Gt => a > b,
        Op::Lt => a < b,
    }
}

fn cmp_str(op: Op, a: &str, b: &str) -> bool {
    match op {
        Op::Eq => a == b,
        Op::Neq => a != b,
        Op::Gt => a > b,
        Op::Lt => a < b,
    }
}

fn holds(cond: &Cond, span: &RSpan) -> bool {
    match cond {
        Cond::Name(op, n) => cmp_str(*op, &format!("op{}", span.name), &format!("op{n}")),
        Cond::Service(s) => span.service == *s,
        Cond::Kind(k) => span.kind == *k,
        Cond::Status(s) => span.status == *s,
        Cond::DurationGt(ms) => span.duration_ms > *ms,
        Cond::AttrInt(op, v) => span.attr_int.is_some_and(|n| cmp_int(*op, n, *v)),
        Cond::IntAttr(v, op) => span.attr_int.is_some_and(|n| cmp_int(*op, *v, n)),
        Cond::AttrStrRegex(c) => span
            .attr_str
            .is_some_and(|s| format!("v{s}").starts_with(&format!("v{c}"))),
        Cond::AttrExists(exists) => span.attr_int.is_some() == *exists,
        Cond::And(a, b) => holds(a, span) && holds(b, span),
        Cond::Or(a, b) => holds(a, span) || holds(b, span),
    }
}

fn ancestors(spans: &[RSpan], id: u8) -> Vec<u8> {
    let by_id: HashMap<u8, &RSpan> = spans.iter().map(|span| (span.id, span)).collect();
    let mut out = Vec::new();
    let mut current = by_id[&id].parent;
    while let Some(parent) = current {
        if out.contains(&parent) || !by_id.contains_key(&parent) {
            break;
        }
        out.push(parent);
        current = by_id[&parent].parent;
    }
    out
}

fn parent_of(spans: &[RSpan], id: u8) -> Option<u8> {
    let parent = spans.iter().find(|span| span.id == id)?.parent?;
    spans.iter().any(|span| span.id == parent).then_some(parent)
}

/// The spans a query returns for one trace (all spansets merged), or None when it matches nothing.
fn reference(q: &Q, spans: &[RSpan]) -> Vec<u8> {
    let mut out: Vec<u8> = match q {
        Q::Filter(cond) => spans
            .iter()
            .filter(|span| holds(cond, span))
            .map(|span| span.id)
            .collect(),
        Q::CountGt(inner, n) => {
            let matched = reference(inner, spans);
            if matched.len() > *n {
                matched
            } else {
                Vec::new()
            }
        }
        Q::Binary(op, a, b) => {
            let left = reference(a, spans);
            let right = reference(b, spans);
            let child_of_left = |r: &u8| parent_of(spans, *r).is_some_and(|p| left.contains(&p));
            match op {
                Structural::And if !left.is_empty() && !right.is_empty() => {
                    left.iter().chain(&right).copied().collect()
                }
                Structural::And => Vec::new(),
                Structural::Or => left.iter().chain(&right).copied().collect(),
                Structural::Child => right.iter().copied().filter(|r| child_of_left(r)).collect(),
                Structural::NotChild => right
                    .iter()
                    .copied()
                    .filter(|r| !child_of_left(r))
                    .collect(),
                Structural::Descendant => right
                    .iter()
                    .copied()
                    .filter(|r| ancestors(spans, *r).iter().any(|a| left.contains(a)))
                    .collect(),
                Structural::Parent => right
                    .iter()
                    .copied()
                    .filter(|r| left.iter().any(|l| parent_of(spans, *l) == Some(*r)))
                    .collect(),
                Structural::Ancestor => right
                    .iter()
                    .copied()
                    .filter(|r| left.iter().any(|l| ancestors(spans, *l).contains(r)))
                    .collect(),
                Structural::Sibling => right
                    .iter()
                    .copied()
                    .filter(|r| {
                        left.iter().any(|l| {
                            l != r
                                && parent_of(spans, *l).is_some()
                                && parent_of(spans, *l) == parent_of(spans, *r)
                        })
                    })
                    .collect(),
                Structural::UnionDescendant => {
                    let mut kept = Vec::new();
                    for r in &right {
                        let related: Vec<u8> = left
                            .iter()
                            .copied()
                            .filter(|l| ancestors(spans, *r).contains(l))
                            .collect();
                        if !related.is_empty() {
                            kept.push(*r);
                            kept.extend(related);
                        }
                    }
                    kept
                }
            }
        }
    };
    out.sort_unstable();
    out.dedup();
    out
}

fn to_otlp(spans: &[RSpan]) -> Vec<ResourceSpans> {
    let string = |text: String| {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(text)),
        })
    };
    spans
        .iter()
        .map(|span| {
            let mut attributes = Vec::new();
            if let Some(n) = span.attr_int {
                attributes.push(KeyValue {
                    key: "n".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(n)),
                    }),
                    ..Default::default()
                });
            }
            if let Some(s) = span.attr_str {
                attributes.push(KeyValue {
                    key: "s".into(),
                    value: string(format!("v{s}")),
                    ..Default::default()
                });
            }
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: string(format!("svc{}", span.service)),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![1; 16],
                        span_id: vec![span.id + 1; 8],
                        parent_span_id: span.parent.map(|p| vec![p + 1; 8]).unwrap_or_default(),
                        name: format!("op{}", span.name),
                        kind: span.kind,
                        start_time_unix_nano: 1_000_000_000 + u64::from(span.id) * 1_000,
                        end_time_unix_nano: 1_000_000_000
                            + u64::from(span.id) * 1_000
                            + span.duration_ms * 1_000_000,
                        attributes,
                        status: Some(Status {
                            code: span.status,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect()
}

fn arb_trace() -> impl Strategy<Value = Vec<RSpan>> {
    prop::collection::vec(
        (
            any::<prop::sample::Index>(),
            0u8..3,
            0u8..4,
            0i32..6,
            0i32..3,
            0u64..200,
            prop::option::of(-3i64..4),
            prop::option::of(0u8..12),
            any::<bool>(),
        ),
        1..10,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(
                |(
                    index,
                    (
                        parent_pick,
                        service,
                        name,
                        kind,
                        status,
                        duration_ms,
                        attr_int,
                        attr_str,
                        orphan,
                    ),
                )| {
                    let parent = if index == 0 {
                        None
                    } else if orphan && index % 4 == 3 {
                        Some(200) // a parent that is not in the trace
                    } else {
                        Some(parent_pick.index(index) as u8)
                    };
                    RSpan {
                        id: index as u8,
                        parent,
                        service,
                        name,
                        kind,
                        status,
                        duration_ms,
                        attr_int,
                        attr_str,
                    }
                },
            )
            .collect()
    })
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![Just(Op::Eq), Just(Op::Neq), Just(Op::Gt), Just(Op::Lt)]
}

fn arb_cond() -> impl Strategy<Value = Cond> {
    let leaf = prop_oneof![
        (arb_op(), 0u8..4).prop_map(|(op, n)| Cond::Name(op, n)),
        (0u8..3).prop_map(Cond::Service),
        (0i32..6).prop_map(Cond::Kind),
        (0i32..3).prop_map(Cond::Status),
        (0u64..200).prop_map(Cond::DurationGt),
        (arb_op(), -3i64..4).prop_map(|(op, v)| Cond::AttrInt(op, v)),
        (-3i64..4, arb_op()).prop_map(|(v, op)| Cond::IntAttr(v, op)),
        (0u8..3).prop_map(Cond::AttrStrRegex),
        any::<bool>().prop_map(Cond::AttrExists),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Cond::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Cond::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn arb_query() -> impl Strategy<Value = Q> {
    let leaf = arb_cond().prop_map(Q::Filter);
    leaf.prop_recursive(3, 8, 2, |inner| {
        let op = prop_oneof![
            Just(Structural::Child),
            Just(Structural::Descendant),
            Just(Structural::Parent),
            Just(Structural::Ancestor),
            Just(Structural::Sibling),
            Just(Structural::NotChild),
            Just(Structural::UnionDescendant),
            Just(Structural::And),
            Just(Structural::Or),
        ];
        prop_oneof![
            (op, inner.clone(), inner.clone()).prop_map(|(op, a, b)| Q::Binary(
                op,
                Box::new(a),
                Box::new(b)
            )),
            (inner, 0usize..4).prop_map(|(q, n)| Q::CountGt(Box::new(q), n)),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn engine_matches_reference(spans in arb_trace(), q in arb_query()) {
        let text = q_text(&q);
        let query = parse(&text).map_err(|error| TestCaseError::fail(format!("`{text}`: {error}")))?;
        let otlp = to_otlp(&spans);
        let view = TraceView::new([1; 16], &otlp);
        let mut engine: Vec<u8> = evaluate(&query, &view)
            .into_iter()
            .flat_map(|set| set.spans)
            .map(|index| view.spans[index as usize].span.span_id[0] - 1)
            .collect();
        engine.sort_unstable();
        engine.dedup();
        let expected = reference(&q, &spans);
        prop_assert_eq!(&engine, &expected, "query {}", text);

        // Recent traces are decoded with only the fields the query reads: same spans.
        let bytes = ExportTraceServiceRequest { resource_spans: otlp.clone() }.encode_to_vec();
        let narrow = decode_projected(&bytes, &projection_of(&evaluated_fields(&query)))
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let narrow_view = TraceView::new([1; 16], &narrow);
        let mut projected: Vec<u8> = evaluate(&query, &narrow_view)
            .into_iter()
            .flat_map(|set| set.spans)
            .map(|index| narrow_view.spans[index as usize].span.span_id[0] - 1)
            .collect();
        projected.sort_unstable();
        projected.dedup();
        prop_assert_eq!(&projected, &engine, "query {} over projected spans", text);

        // The pushed-down condition is necessary: a trace with results must satisfy it.
        let condition = TraceCondition::of(&query);
        let found: Vec<bool> = condition
            .predicates()
            .iter()
            .map(|predicate| (0..view.spans.len() as u32).any(|span| predicate.matches_span(&view, span)))
            .collect();
        if !engine.is_empty() {
            prop_assert!(condition.holds(&found), "condition {:?} rejects a matching trace for {}", condition, text);
        }
        // Relations decided on the span tree keep the condition necessary, and make it exact
        // for a lone `{ a } op { b }`.
        let predicates = condition.predicates();
        let related = |relation: Relation, lhs: usize, rhs: usize| {
            let spans = 0..view.spans.len() as u32;
            spans.clone().filter(|a| predicates[lhs].matches_span(&view, *a)).any(|a| {
                spans.clone().filter(|b| predicates[rhs].matches_span(&view, *b)).any(|b| relation.holds_in(&view, a, b))
            })
        };
        let decided = condition.holds_related(&found, &related);
        if !engine.is_empty() {
            prop_assert!(decided, "condition {:?} with relations rejects a matching trace for {}", condition, text);
        }
        // Span counts (`count() > n` pushed down) keep it necessary for a whole trace.
        let counts: Vec<u32> = predicates
            .iter()
            .map(|predicate| (0..view.spans.len() as u32).filter(|span| predicate.matches_span(&view, *span)).count() as u32)
            .collect();
        if !engine.is_empty() {
            prop_assert!(
                condition.holds_counted(&counts, &related),
                "condition {:?} with counts rejects a matching trace for {}", condition, text
            );
        }
        // Only `{ a } op { b }` itself (a plain or union structural operator between two
        // filters) is exact; a relation nested under a negated operator stays only necessary.
        let lone = match &query.root {
            andante_traceql::ast::SpansetExpr::Binary { op, lhs, rhs } => {
                use andante_traceql::ast::{SpansetExpr::Filter, SpansetOp::*};
                matches!((lhs.as_ref(), rhs.as_ref()), (Filter(_), Filter(_)))
                    && !matches!(op, And | Or | NotChild | NotParent | NotDescendant | NotAncestor | NotSibling)
            }
            _ => false,
        };
        if lone && matches!(condition, TraceCondition::Related { .. }) {
            prop_assert_eq!(decided, !engine.is_empty(), "a lone relation is exact for {}", text);
        }
    }
}
