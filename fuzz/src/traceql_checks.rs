//! What both TraceQL targets do with a query text: parse it every way the server does (search,
//! lenient, metrics), run whatever parses over the fixture traces, and check the properties that
//! must hold for any query:
//! - evaluation returns span indexes inside the trace;
//! - `TraceCondition::of(query)` is necessary: a trace with results satisfies it, both with
//!   relations taken as "both sides exist" and decided on the span tree (stage 1 may only skip
//!   traces that cannot match);
//! - a metrics query folded in two accumulators and merged gives the same series as one
//!   accumulator (sources are folded in any order);
//! - errors and ASTs format without panicking.

use std::fmt::Write;

use andante_traceql::ast::{SpansetExpr, Stage};
use andante_traceql::metrics::{combine, MetricsSeries, Operand};
use andante_traceql::{
    evaluate, parse, parse_lenient, parse_metrics_expr, referenced_fields, Accumulator, Intervals,
    MetricsExpr, MetricsQuery, Query, Relation, TraceCondition, TraceView,
};

use crate::fixture::{FixtureTrace, SECOND_NANOS};

/// Longest query text tried: longer ones only slow the fuzzer down (the API caps queries too).
pub const MAX_QUERY_BYTES: usize = 4096;

/// Runs every check on `text`.
pub fn check_text(text: &str, traces: &[FixtureTrace]) {
    if text.len() > MAX_QUERY_BYTES {
        return;
    }
    let views: Vec<TraceView<'_>> = traces
        .iter()
        .map(|trace| TraceView::new(trace.trace_id, &trace.resource_spans))
        .collect();
    let mut sink = String::new();
    match parse(text) {
        Ok(query) => check_search(&query, &views, &mut sink),
        Err(error) => {
            let _ = write!(sink, "{error} {error:?}");
        }
    }
    if let Some(query) = parse_lenient(text) {
        check_search(&query, &views, &mut sink);
    }
    match parse_metrics_expr(text) {
        Ok(expr) => check_metrics(&expr, &views, &mut sink),
        Err(error) => {
            let _ = write!(sink, "{error} {error:?}");
        }
    }
    std::hint::black_box(sink);
}

/// Evaluates a search query over every view and checks its pushed-down condition.
pub fn check_search(query: &Query, views: &[TraceView<'_>], sink: &mut String) {
    format_query(query, sink);
    let condition = TraceCondition::of(query);
    let _ = write!(sink, "{condition:?} {}", condition.has_relations());
    for field in referenced_fields(query) {
        let _ = write!(sink, "{field}");
    }
    for view in views {
        let spansets = evaluate(query, view);
        for spanset in &spansets {
            for span in &spanset.spans {
                assert!(
                    (*span as usize) < view.spans.len(),
                    "span index {span} outside a trace of {} spans",
                    view.spans.len()
                );
            }
            let _ = write!(sink, "{:?}", spanset.attributes);
        }
        let has_results = spansets.iter().any(|spanset| !spanset.spans.is_empty());
        check_condition(&condition, view, has_results, query);
    }
}

/// The condition must hold for a trace the query returns spans for.
fn check_condition(condition: &TraceCondition, view: &TraceView<'_>, has_results: bool, query: &Query) {
    let predicates = condition.predicates();
    let span_count = view.spans.len() as u32;
    let found: Vec<bool> = predicates
        .iter()
        .map(|predicate| (0..span_count).any(|span| predicate.matches_span(view, span)))
        .collect();
    let held = condition.holds(&found);
    let related = |relation: Relation, lhs: usize, rhs: usize| {
        (0..span_count)
            .filter(|a| predicates[lhs].matches_span(view, *a))
            .any(|a| {
                (0..span_count)
                    .filter(|b| predicates[rhs].matches_span(view, *b))
                    .any(|b| relation.holds_in(view, a, b))
            })
    };
    let decided = condition.holds_related(&found, &related);
    if has_results {
        assert!(
            held,
            "TraceCondition {condition:?} rejects trace {:?} although the query returns spans for it; query: {query:?}",
            view.trace_id[0]
        );
        assert!(
            decided,
            "TraceCondition {condition:?} with relations decided on the span tree rejects trace {:?} although the query returns spans for it; query: {query:?}",
            view.trace_id[0]
        );
    }
}

/// Formats every displayable node of the query (the canonical keys Tempo returns).
fn format_query(query: &Query, sink: &mut String) {
    fn spanset(expr: &SpansetExpr, sink: &mut String) {
        match expr {
            SpansetExpr::Filter(None) => {}
            SpansetExpr::Filter(Some(condition)) => {
                let _ = write!(sink, "{condition}");
            }
            SpansetExpr::Binary { op, lhs, rhs } => {
                spanset(lhs, sink);
                sink.push_str(op.symbol());
                spanset(rhs, sink);
            }
            SpansetExpr::Pipeline(stages) => {
                for stage in stages {
                    match stage {
                        Stage::Spanset(expr) => spanset(expr, sink),
                        Stage::ScalarFilter { op, lhs, rhs } => {
                            let _ = write!(sink, "{lhs} {} {rhs}", op.symbol());
                        }
                        Stage::By(fields) => {
                            for field in fields {
                                let _ = write!(sink, "{field}");
                            }
                        }
                        Stage::Coalesce => {}
                        Stage::Select(fields) => {
                            for field in fields {
                                let _ = write!(sink, "{field}");
                            }
                        }
                    }
                }
            }
        }
    }
    spanset(&query.root, sink);
    for hint in &query.hints {
        let _ = write!(sink, "{}={}", hint.name, hint.value);
    }
    let _ = write!(sink, "{query:?}");
}

/// The range the fixture spans: intervals ending every 500 s from 0 to 4000 s.
fn range_intervals() -> Intervals {
    Intervals::range(0, 4000 * SECOND_NANOS, 500 * SECOND_NANOS)
}

/// Folds each query of the expression over the views and combines the series.
pub fn check_metrics(expr: &MetricsExpr, views: &[TraceView<'_>], sink: &mut String) {
    let queries = expr.queries();
    let mut results = Vec::new();
    for query in &queries {
        check_search(&query.search, views, sink);
        let _ = write!(
            sink,
            "{} {:?} {} {}",
            query.function.name(),
            query.columnar().map(|spec| spec.value_field),
            query.counts(),
            query.is_histogram()
        );
        for intervals in [
            range_intervals(),
            Intervals::instant(0, 4000 * SECOND_NANOS),
        ] {
            let whole = fold(query, views, intervals, None);
            let merged = fold(query, views, intervals, Some(2));
            assert_same_series(&whole, &merged, query);
            results.push(whole);
        }
        // A small series cap and exemplars on: the truncation paths.
        let mut capped = Accumulator::new(range_intervals())
            .with_max_series(2)
            .with_exemplars(3);
        for view in views {
            capped.observe(query, view);
        }
        let _ = write!(sink, "{}", capped.truncated);
        let _ = write!(sink, "{:?}", capped.finish(query));
    }
    // Combine the range results as the API does (queries in `MetricsExpr::queries` order).
    let mut range_results = results.into_iter().step_by(2);
    let combined = reduce(expr, &mut range_results);
    let _ = write!(sink, "{combined:?}");
}

/// One accumulator over every view (`split: None`), or `split` accumulators merged.
fn fold(
    query: &MetricsQuery,
    views: &[TraceView<'_>],
    intervals: Intervals,
    split: Option<usize>,
) -> Vec<MetricsSeries> {
    let parts = split.unwrap_or(1);
    let mut accumulators: Vec<Accumulator> =
        (0..parts).map(|_| Accumulator::new(intervals)).collect();
    for (index, view) in views.iter().enumerate() {
        accumulators[index % parts].observe(query, view);
    }
    let mut accumulators = accumulators.into_iter();
    let Some(mut first) = accumulators.next() else {
        return Vec::new();
    };
    for other in accumulators {
        first.merge(other);
    }
    first.finish(query)
}

/// The same series in the same order (`finish` sorts them by labels) with the same samples,
/// NaN equal to NaN and sums allowed a rounding difference (float addition is not associative).
/// Compared by position: `quantile_over_time(duration, 0, 0)` gives two series with equal labels.
fn assert_same_series(whole: &[MetricsSeries], merged: &[MetricsSeries], query: &MetricsQuery) {
    let labels = |series: &[MetricsSeries]| -> Vec<String> {
        series.iter().map(|one| format!("{:?}", one.labels)).collect()
    };
    assert_eq!(
        labels(whole),
        labels(merged),
        "merging accumulators changed the series of {query:?}"
    );
    for (series, other) in whole.iter().zip(merged) {
        assert_eq!(
            series.samples.len(),
            other.samples.len(),
            "merging accumulators changed the sample count of {query:?}"
        );
        for (a, b) in series.samples.iter().zip(&other.samples) {
            let same = match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    (a.is_nan() && b.is_nan())
                        || a == b
                        || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
                }
                _ => false,
            };
            assert!(
                same,
                "merging accumulators changed a sample ({a:?} vs {b:?}) of {:?} for {query:?}",
                series.labels
            );
        }
    }
}

fn reduce(expr: &MetricsExpr, results: &mut impl Iterator<Item = Vec<MetricsSeries>>) -> Operand {
    match expr {
        MetricsExpr::Query(_) => Operand::Series(results.next().unwrap_or_default()),
        MetricsExpr::Number(number) => Operand::Number(*number),
        MetricsExpr::Binary { op, lhs, rhs } => {
            let left = reduce(lhs, results);
            let right = reduce(rhs, results);
            combine(*op, left, right)
        }
    }
}
