//! Which parts of OTLP spans a query reads, as the `Projection` recent traces are decoded with
//! (`andante_model::projected`). A field read by the evaluator but left out here would silently
//! change answers over recent data, so every function here errs on keeping: the property test in
//! `tests.rs` compares projected and full decodes over random queries.

use andante_model::projected::Projection;

use crate::ast::{Field, Intrinsic, Scope};
use crate::condition::{evaluated_fields, SpanPredicate, TraceCondition};
use crate::metrics::{MetricsFunction, MetricsQuery};

/// The projection that keeps every part of a span `fields` may read.
pub fn projection_of<'a>(fields: impl IntoIterator<Item = &'a Field>) -> Projection {
    let mut out = Projection::default();
    for field in fields {
        match field {
            Field::Attribute { scope, name, .. } => match scope {
                Scope::Span => out.span_attributes.add(name),
                Scope::Resource => out.resource_attributes.add(name),
                Scope::Unscoped => {
                    out.span_attributes.add(name);
                    out.resource_attributes.add(name);
                }
                Scope::Event => out.events = true,
                Scope::Link => out.links = true,
                Scope::Instrumentation => out.scope_attributes.add(name),
            },
            Field::Intrinsic(intrinsic) => match intrinsic {
                Intrinsic::Name | Intrinsic::RootName => out.span_name = true,
                Intrinsic::Status | Intrinsic::StatusMessage => out.status = true,
                Intrinsic::RootService => out.resource_attributes.add("service.name"),
                Intrinsic::EventName | Intrinsic::EventTimeSinceStart => out.events = true,
                Intrinsic::LinkTraceId | Intrinsic::LinkSpanId => out.links = true,
                Intrinsic::InstrumentationName | Intrinsic::InstrumentationVersion => {
                    out.scope_identity = true
                }
                // From the IDs and times every projection keeps, or from the trace ID.
                Intrinsic::Kind
                | Intrinsic::Duration
                | Intrinsic::SpanId
                | Intrinsic::ParentId
                | Intrinsic::ChildCount
                | Intrinsic::TraceId
                | Intrinsic::TraceDuration
                | Intrinsic::NestedSetLeft
                | Intrinsic::NestedSetRight
                | Intrinsic::NestedSetParent => {}
            },
        }
    }
    out
}

impl SpanPredicate {
    /// Every field the predicate's leaves read.
    pub fn fields(&self) -> Vec<&Field> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a Field>) {
        match self {
            SpanPredicate::True => {}
            SpanPredicate::And(parts) | SpanPredicate::Or(parts) => {
                parts.iter().for_each(|part| part.collect_fields(out))
            }
            SpanPredicate::Compare { field, .. } | SpanPredicate::Regex { field, .. } => {
                out.push(field)
            }
        }
    }
}

impl TraceCondition {
    /// What deciding the condition with `matches_span` reads.
    pub fn projection(&self) -> Projection {
        projection_of(
            self.predicates()
                .into_iter()
                .flat_map(|predicate| predicate.fields()),
        )
    }
}

impl MetricsQuery {
    /// What `Accumulator::observe` reads: the filter's fields, `by()`, the function's argument;
    /// compare() counts every attribute of every span, so it keeps everything.
    pub fn projection(&self) -> Projection {
        if matches!(self.function, MetricsFunction::Compare(_)) {
            return Projection::everything();
        }
        let fields = evaluated_fields(&self.search);
        projection_of(
            fields
                .iter()
                .chain(self.by.iter())
                .chain(self.function.field()),
        )
    }
}
