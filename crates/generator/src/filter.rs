//! Filter policies: which spans a processor counts, as TraceQL spanset filters —
//! `include = { kind = server && resource.service.name =~ "shop-.*" }`, `exclude = { name = "GET /health" }`.
//! Tempo spells these as include/exclude lists of strict or regex attribute matches; a TraceQL
//! filter says the same with the language Tempo users already write, and one evaluator.
//! Only span-level conditions make sense here (a push holds part of a trace): structural
//! operators and pipelines are refused when the filter is configured.

use std::collections::HashSet;

use andante_model::otlp::trace::v1::{ResourceSpans, Span};
use andante_traceql::ast::{FieldExpr, SpansetExpr};
use andante_traceql::eval::matches;
use andante_traceql::TraceView;

#[derive(Debug, Clone, Default)]
pub struct SpanFilter {
    include: Option<FieldExpr>,
    exclude: Option<FieldExpr>,
}

fn condition(text: &str, what: &str) -> Result<Option<FieldExpr>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let query = andante_traceql::parse(text).map_err(|error| format!("{what}: {error}"))?;
    match query.root {
        SpansetExpr::Filter(expr) => Ok(expr),
        _ => Err(format!(
            "{what}: `{text}` must be one spanset filter such as {{ kind = server }}"
        )),
    }
}

impl SpanFilter {
    pub fn parse(include: &str, exclude: &str) -> Result<SpanFilter, String> {
        Ok(SpanFilter {
            include: condition(include, "include filter")?,
            exclude: condition(exclude, "exclude filter")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// The addresses of the spans of `batch` that pass, or None when every span does.
    pub fn kept(&self, batch: &ResourceSpans) -> Option<HashSet<usize>> {
        if self.is_empty() {
            return None;
        }
        let trace_id = batch
            .scope_spans
            .iter()
            .flat_map(|s| &s.spans)
            .next()
            .and_then(|span| <[u8; 16]>::try_from(span.trace_id.as_slice()).ok())
            .unwrap_or([0; 16]);
        let view = TraceView::new(trace_id, std::slice::from_ref(batch));
        let mut kept = HashSet::new();
        for index in 0..view.spans.len() as u32 {
            let included = self
                .include
                .as_ref()
                .is_none_or(|c| matches(c, &view, index));
            let excluded = self
                .exclude
                .as_ref()
                .is_some_and(|c| matches(c, &view, index));
            if included && !excluded {
                kept.insert(view.spans[index as usize].span as *const Span as usize);
            }
        }
        Some(kept)
    }
}

/// Whether `span` passes, given `kept` from [`SpanFilter::kept`].
pub fn passes(kept: &Option<HashSet<usize>>, span: &Span) -> bool {
    kept.as_ref()
        .is_none_or(|set| set.contains(&(span as *const Span as usize)))
}
