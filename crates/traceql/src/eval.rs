//! The evaluator: runs a checked query over one `TraceView` and returns its spansets. The whole
//! trace is the input of the first stage; each stage maps spansets to spansets; empty spansets
//! are dropped. Output order is deterministic: spans by start time (the view's order), groups by
//! value.

use std::borrow::Cow;

use andante_model::otlp::common::v1::KeyValue;

use crate::ast::*;
use crate::trace::{find_attribute, SpanRef, TraceView};
use crate::value::{arithmetic, compare, compare_nil, regex_match, Value};

/// Spans (indexes into the view, ascending) plus the attributes stages attached
/// (`count()`, `by(…)`).
#[derive(Debug, Clone, PartialEq)]
pub struct Spanset {
    pub spans: Vec<u32>,
    pub attributes: Vec<(String, Value<'static>)>,
}

/// Evaluates `query` over `trace`.
pub fn evaluate(query: &Query, trace: &TraceView<'_>) -> Vec<Spanset> {
    if trace.spans.is_empty() {
        return Vec::new();
    }
    let everything = Spanset {
        spans: (0..trace.spans.len() as u32).collect(),
        attributes: Vec::new(),
    };
    spanset_expr(&query.root, trace, vec![everything])
}

fn spanset_expr(expr: &SpansetExpr, trace: &TraceView<'_>, inputs: Vec<Spanset>) -> Vec<Spanset> {
    match expr {
        SpansetExpr::Filter(None) => inputs
            .into_iter()
            .filter(|set| !set.spans.is_empty())
            .collect(),
        SpansetExpr::Filter(Some(condition)) => inputs
            .into_iter()
            .filter_map(|mut set| {
                set.spans.retain(|span| matches(condition, trace, *span));
                (!set.spans.is_empty()).then_some(set)
            })
            .collect(),
        SpansetExpr::Binary { op, lhs, rhs } => inputs
            .into_iter()
            .filter_map(|input| {
                let left = flatten(spanset_expr(lhs, trace, vec![input.clone()]));
                let right = flatten(spanset_expr(rhs, trace, vec![input.clone()]));
                let spans = combine(*op, trace, &left, &right);
                (!spans.is_empty()).then_some(Spanset {
                    spans,
                    attributes: input.attributes,
                })
            })
            .collect(),
        SpansetExpr::Pipeline(stages) => {
            let mut sets = inputs;
            for stage in stages {
                if sets.is_empty() {
                    break;
                }
                sets = apply_stage(stage, trace, sets);
            }
            sets
        }
    }
}

fn flatten(sets: Vec<Spanset>) -> Vec<u32> {
    let mut spans: Vec<u32> = sets.into_iter().flat_map(|set| set.spans).collect();
    spans.sort_unstable();
    spans.dedup();
    spans
}

fn union(left: &[u32], right: &[u32]) -> Vec<u32> {
    let mut spans: Vec<u32> = left.iter().chain(right).copied().collect();
    spans.sort_unstable();
    spans.dedup();
    spans
}

/// How `span` on the right relates to spans on the left for a structural operator.
fn related(op: SpansetOp, trace: &TraceView<'_>, left: u32, right: u32) -> bool {
    crate::condition::Relation::tested_by(op)
        .is_some_and(|relation| relation.holds_in(trace, left, right))
}

fn combine(op: SpansetOp, trace: &TraceView<'_>, left: &[u32], right: &[u32]) -> Vec<u32> {
    use SpansetOp::*;
    match op {
        And if !left.is_empty() && !right.is_empty() => union(left, right),
        And => Vec::new(),
        Or => union(left, right),
        Child | Parent | Descendant | Ancestor | Sibling => right
            .iter()
            .copied()
            .filter(|r| left.iter().any(|l| related(op, trace, *l, *r)))
            .collect(),
        NotChild | NotParent | NotDescendant | NotAncestor | NotSibling => right
            .iter()
            .copied()
            .filter(|r| !left.iter().any(|l| related(op, trace, *l, *r)))
            .collect(),
        UnionChild | UnionParent | UnionDescendant | UnionAncestor | UnionSibling => {
            let mut kept_left = Vec::new();
            let mut kept_right = Vec::new();
            for l in left {
                for r in right {
                    if related(op, trace, *l, *r) {
                        kept_left.push(*l);
                        kept_right.push(*r);
                    }
                }
            }
            union(&kept_left, &kept_right)
        }
    }
}

fn apply_stage(stage: &Stage, trace: &TraceView<'_>, sets: Vec<Spanset>) -> Vec<Spanset> {
    match stage {
        Stage::Spanset(expr) => spanset_expr(expr, trace, sets),
        Stage::ScalarFilter { op, lhs, rhs } => sets
            .into_iter()
            .filter_map(|mut set| {
                let left = scalar(lhs, trace, &set.spans);
                let right = scalar(rhs, trace, &set.spans);
                if !compare(*op, &left, &right) {
                    return None;
                }
                let (label, value) = if lhs.has_aggregate() {
                    (lhs, left)
                } else {
                    (rhs, right)
                };
                set.attributes.push((label.to_string(), value));
                Some(set)
            })
            .collect(),
        Stage::By(groups) => {
            let label = format!(
                "by({})",
                groups
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut output = Vec::new();
            for set in sets {
                let mut buckets: Vec<(Vec<Value<'static>>, Vec<u32>)> = Vec::new();
                for span in &set.spans {
                    let key: Vec<Value<'static>> = groups
                        .iter()
                        .map(|group| field_value(group, trace, *span).into_owned())
                        .collect();
                    if key.iter().all(Value::is_nil) {
                        continue;
                    }
                    match buckets.iter_mut().find(|(existing, _)| *existing == key) {
                        Some((_, spans)) => spans.push(*span),
                        None => buckets.push((key, vec![*span])),
                    }
                }
                buckets.sort_by(|a, b| {
                    let ka: Vec<_> = a.0.iter().map(Value::sort_key).collect();
                    let kb: Vec<_> = b.0.iter().map(Value::sort_key).collect();
                    ka.partial_cmp(&kb).unwrap_or(std::cmp::Ordering::Equal)
                });
                for (key, spans) in buckets {
                    let mut attributes = set.attributes.clone();
                    let value = if key.len() == 1 {
                        key.into_iter().next().unwrap_or(Value::Nil)
                    } else {
                        Value::Array(key)
                    };
                    attributes.push((label.clone(), value));
                    output.push(Spanset { spans, attributes });
                }
            }
            output
        }
        Stage::Coalesce => {
            let spans = flatten(sets);
            if spans.is_empty() {
                return Vec::new();
            }
            vec![Spanset {
                spans,
                attributes: Vec::new(),
            }]
        }
        Stage::Select(_) => sets,
    }
}

fn scalar(expr: &ScalarExpr, trace: &TraceView<'_>, spans: &[u32]) -> Value<'static> {
    match expr {
        ScalarExpr::Static(value) => Value::from_static(value),
        ScalarExpr::Binary { op, lhs, rhs } => {
            arithmetic(*op, &scalar(lhs, trace, spans), &scalar(rhs, trace, spans))
        }
        ScalarExpr::Aggregate {
            function: Aggregate::Count,
            ..
        } => Value::Int(spans.len() as i64),
        ScalarExpr::Aggregate { function, argument } => {
            let Some(argument) = argument else {
                return Value::Nil;
            };
            let mut all_durations = true;
            let mut numbers: Vec<f64> = Vec::new();
            for span in spans {
                match field_value(argument, trace, *span) {
                    Value::Int(number) => {
                        all_durations = false;
                        numbers.push(number as f64);
                    }
                    Value::Float(number) => {
                        all_durations = false;
                        numbers.push(number);
                    }
                    Value::Duration(nanos) => numbers.push(nanos as f64),
                    _ => {}
                }
            }
            if numbers.is_empty() {
                return Value::Nil;
            }
            let result = match function {
                Aggregate::Avg => numbers.iter().sum::<f64>() / numbers.len() as f64,
                Aggregate::Sum => numbers.iter().sum(),
                Aggregate::Min => numbers.iter().copied().fold(f64::INFINITY, f64::min),
                Aggregate::Max => numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Aggregate::Count => numbers.len() as f64,
            };
            if all_durations {
                Value::Duration(result.round() as i64)
            } else {
                Value::Float(result)
            }
        }
    }
}

/// Whether the filter condition holds for `span`.
pub fn matches(condition: &FieldExpr, trace: &TraceView<'_>, span: u32) -> bool {
    field_value(condition, trace, span) == Value::Bool(true)
}

/// Evaluates a field expression for one span.
pub fn field_value<'a>(expr: &FieldExpr, trace: &TraceView<'a>, span: u32) -> Value<'a> {
    match expr {
        FieldExpr::Static(value) => Value::from_static(value),
        FieldExpr::Field(field) => resolve(field, trace, span),
        FieldExpr::Not(inner) => match field_value(inner, trace, span) {
            Value::Bool(flag) => Value::Bool(!flag),
            _ => Value::Nil,
        },
        FieldExpr::Negate(inner) => arithmetic(
            BinaryOp::Sub,
            &Value::Int(0),
            &field_value(inner, trace, span),
        ),
        FieldExpr::Regex {
            negated,
            lhs,
            regex,
            ..
        } => Value::Bool(regex_match(regex, *negated, &field_value(lhs, trace, span))),
        FieldExpr::Binary {
            op: BinaryOp::And,
            lhs,
            rhs,
        } => {
            let left = field_value(lhs, trace, span) == Value::Bool(true);
            Value::Bool(left && field_value(rhs, trace, span) == Value::Bool(true))
        }
        FieldExpr::Binary {
            op: BinaryOp::Or,
            lhs,
            rhs,
        } => {
            let left = field_value(lhs, trace, span) == Value::Bool(true);
            Value::Bool(left || field_value(rhs, trace, span) == Value::Bool(true))
        }
        FieldExpr::Binary { op, lhs, rhs } => {
            let left = field_value(lhs, trace, span);
            let right = field_value(rhs, trace, span);
            if op.is_arithmetic() {
                return arithmetic(*op, &left, &right);
            }
            let nil_literal = |expr: &FieldExpr| matches!(expr, FieldExpr::Static(Static::Nil));
            Value::Bool(if nil_literal(rhs) {
                compare_nil(*op, &left)
            } else if nil_literal(lhs) {
                compare_nil(*op, &right)
            } else {
                compare(*op, &left, &right)
            })
        }
    }
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Value<'a> {
    match find_attribute(attributes, key).and_then(|attribute| attribute.value.as_ref()) {
        Some(value) => Value::from_any(value),
        None => Value::Nil,
    }
}

fn hex_id(bytes: &[u8]) -> Value<'static> {
    if bytes.is_empty() {
        return Value::Nil;
    }
    Value::Str(Cow::Owned(hex::encode(bytes)))
}

/// Reads a field of span `index`.
pub fn resolve<'a>(field: &Field, trace: &TraceView<'a>, index: u32) -> Value<'a> {
    let span_ref: SpanRef<'a> = trace.spans[index as usize];
    let span = span_ref.span;
    match field {
        Field::Attribute {
            scope,
            parent: true,
            name,
        } => match trace.parent[index as usize] {
            Some(parent) => resolve(
                &Field::Attribute {
                    scope: *scope,
                    parent: false,
                    name: name.clone(),
                },
                trace,
                parent,
            ),
            None => Value::Nil,
        },
        Field::Attribute {
            scope,
            parent: false,
            name,
        } => {
            let resource_attributes = span_ref
                .resource
                .map_or(&[][..], |resource| &resource.attributes);
            match scope {
                Scope::Span => attribute(&span.attributes, name),
                Scope::Resource => attribute(resource_attributes, name),
                Scope::Unscoped => match attribute(&span.attributes, name) {
                    Value::Nil => attribute(resource_attributes, name),
                    found => found,
                },
                Scope::Event => Value::Multi(
                    span.events
                        .iter()
                        .map(|event| attribute(&event.attributes, name))
                        .collect(),
                ),
                Scope::Link => Value::Multi(
                    span.links
                        .iter()
                        .map(|link| attribute(&link.attributes, name))
                        .collect(),
                ),
                Scope::Instrumentation => attribute(
                    span_ref.scope.map_or(&[][..], |scope| &scope.attributes),
                    name,
                ),
            }
        }
        Field::Intrinsic(intrinsic) => match intrinsic {
            Intrinsic::Name => Value::Str(Cow::Borrowed(&span.name)),
            Intrinsic::Status => Value::Status(StatusCode::from_otlp(
                span.status.as_ref().map_or(0, |status| status.code),
            )),
            Intrinsic::StatusMessage => Value::Str(Cow::Borrowed(
                span.status
                    .as_ref()
                    .map_or("", |status| status.message.as_str()),
            )),
            Intrinsic::Kind => Value::Kind(SpanKind::from_otlp(span.kind)),
            Intrinsic::Duration => Value::Duration(span_ref.duration_nanos()),
            Intrinsic::SpanId => hex_id(&span.span_id),
            Intrinsic::ParentId => hex_id(&span.parent_span_id),
            Intrinsic::ChildCount => Value::Int(i64::from(trace.child_count[index as usize])),
            Intrinsic::TraceId => hex_id(&trace.trace_id),
            Intrinsic::TraceDuration => Value::Duration(trace.trace_duration_nanos()),
            Intrinsic::RootName => match trace.root {
                Some(root) => Value::Str(Cow::Borrowed(&trace.spans[root as usize].span.name)),
                None => Value::Nil,
            },
            Intrinsic::RootService => match trace.root {
                Some(root) => Value::Str(Cow::Borrowed(trace.spans[root as usize].service_name())),
                None => Value::Nil,
            },
            Intrinsic::EventName => Value::Multi(
                span.events
                    .iter()
                    .map(|event| Value::Str(Cow::Borrowed(&event.name)))
                    .collect(),
            ),
            Intrinsic::EventTimeSinceStart => Value::Multi(
                span.events
                    .iter()
                    .map(|event| {
                        Value::Duration(
                            event
                                .time_unix_nano
                                .saturating_sub(span.start_time_unix_nano)
                                as i64,
                        )
                    })
                    .collect(),
            ),
            Intrinsic::LinkTraceId => Value::Multi(
                span.links
                    .iter()
                    .map(|link| hex_id(&link.trace_id))
                    .collect(),
            ),
            Intrinsic::LinkSpanId => Value::Multi(
                span.links
                    .iter()
                    .map(|link| hex_id(&link.span_id))
                    .collect(),
            ),
            Intrinsic::InstrumentationName => match span_ref.scope {
                Some(scope) => Value::Str(Cow::Borrowed(&scope.name)),
                None => Value::Nil,
            },
            Intrinsic::InstrumentationVersion => match span_ref.scope {
                Some(scope) => Value::Str(Cow::Borrowed(&scope.version)),
                None => Value::Nil,
            },
            Intrinsic::NestedSetLeft => Value::Int(i64::from(trace.nested_left[index as usize])),
            Intrinsic::NestedSetRight => Value::Int(i64::from(trace.nested_right[index as usize])),
            Intrinsic::NestedSetParent => match trace.parent[index as usize] {
                Some(parent) => Value::Int(i64::from(trace.nested_left[parent as usize])),
                None => Value::Int(-1),
            },
        },
    }
}
