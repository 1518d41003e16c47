//! Property test (issue 10): no text makes the parsers panic. Query text comes from users and
//! from Grafana's autocomplete as it is typed, so every entry point — search `parse`, the
//! lenient parser, metrics queries and metrics arithmetic, `parse_duration` — must answer
//! with a value or an error. Inputs are arbitrary Unicode strings and strings built from
//! TraceQL's own tokens (where the interesting states are). Whatever parses is also run
//! through what follows a parse on a request path: the pushed-down condition, evaluation over
//! the fixture traces, metrics accumulation and formatting.

mod fixture;

use andante_traceql::{
    evaluate, parse, parse_duration, parse_lenient, parse_metrics, parse_metrics_expr, referenced_fields, Accumulator, Intervals, Query,
    TraceCondition, TraceView,
};
use proptest::prelude::*;

/// Pieces of TraceQL, including broken ones and non-ASCII text in places the lexer slices.
const TOKENS: &[&str] = &[
    "{", "}", "{ }", "(", ")", "|", "&&", "||", "!", "=", "!=", ">", ">=", "<", "<=", "=~", "!~", "+", "-", "*", "/", "%", "^", "~", ">>",
    "<<", "!>", "!<", "!>>", "&>", "&>>", "&~", ",", ".", ":", "\"", "`", "\\", "\"a\"", "\"é\\u00e9\"", "\"\\u12", "`raw`", "0", "1", "1.5",
    ".99", "1e3", "2e", "10ms", "1h30m", "5µs", "3d", "99999999999999999999", ".a", ".é", "span.a", "span.\"a b\"", "resource.service.name",
    "parent.span.x", "parent.", "event.x", "link.x", "span:name", "span:é", "trace:id", "trace:", "event:é", "span:nameé", "duration", "name",
    "status", "kind", "error", "ok", "server", "nil", "true", "false", "count()", "count", "avg", "max", "min", "sum", "by", "coalesce",
    "select", "rate", "rate()", "count_over_time", "min_over_time", "quantile_over_time", "histogram_over_time", "compare", "topk", "bottomk",
    "with", "sample", "exemplars", "é", "日本", "🦀", "\u{0}", "\u{feff}",
];

fn token_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(TOKENS);
    let separator = prop::sample::select(&["", " ", " ", "\n", "\t"][..]);
    prop::collection::vec((piece, separator), 0..40).prop_map(|pieces| pieces.into_iter().flat_map(|(piece, separator)| [piece, separator]).collect())
}

/// Runs what a request does after a successful parse.
fn exercise_search(query: &Query) {
    let _ = TraceCondition::of(query).predicates();
    let _ = referenced_fields(query);
    let _ = format!("{query:?}");
    for (_, number, resource_spans) in fixture::traces() {
        let _ = evaluate(query, &TraceView::new(fixture::trace_id(number), &resource_spans));
    }
}

fn exercise_all(text: &str) {
    if let Ok(query) = parse(text) {
        exercise_search(&query);
    }
    if let Some(query) = parse_lenient(text) {
        exercise_search(&query);
    }
    let _ = parse_duration(text);
    if let Ok(query) = parse_metrics(text) {
        let mut accumulator = Accumulator::new(Intervals::range(0, 3600 * 1_000_000_000, 600 * 1_000_000_000)).with_exemplars(10);
        for (_, number, resource_spans) in fixture::traces() {
            accumulator.observe(&query, &TraceView::new(fixture::trace_id(number), &resource_spans));
        }
        let _ = accumulator.finish(&query);
    }
    if let Ok(expr) = parse_metrics_expr(text) {
        let _ = format!("{expr:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn token_soup_never_panics(text in token_text()) {
        exercise_all(&text);
    }

    #[test]
    fn arbitrary_unicode_never_panics(text in any::<String>()) {
        exercise_all(&text);
    }

    /// Valid-looking filters with arbitrary text where names, strings and numbers go.
    #[test]
    fn arbitrary_text_in_filters_never_panics(inner in any::<String>(), prefix in prop::sample::select(&["{ ", "{ .", "{ span:", "{ .a = \"", "{ .a = ", "{ } | ", "{ } | rate() by (", "({ } | rate()) "][..])) {
        exercise_all(&format!("{prefix}{inner}"));
        exercise_all(&format!("{prefix}{inner} }}"));
    }
}
