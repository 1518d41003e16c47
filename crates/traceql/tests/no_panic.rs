//! Property test (issue 10): no text makes the parsers panic. Query text comes from users and
//! from Grafana's autocomplete as it is typed, so every entry point — search `parse`, the
//! lenient parser, metrics queries and metrics arithmetic, the Go duration parser — must answer
//! with a value or an error. Inputs are arbitrary Unicode strings and strings built from
//! TraceQL's own tokens (where the interesting states are). Whatever parses is also run
//! through what follows a parse on a request path: the pushed-down condition, evaluation over
//! the fixture traces, metrics accumulation and formatting.

mod fixture;

use andante_traceql::metrics::{combine, MetricsSeries, Operand};
use andante_traceql::{
    evaluate, parse, parse_lenient, parse_metrics, parse_metrics_expr, referenced_fields,
    Accumulator, Intervals, MetricsExpr, MetricsQuery, Query, TraceCondition, TraceView,
};
use proptest::prelude::*;

/// Pieces of TraceQL, including broken ones and non-ASCII text in places the lexer slices.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "{ }",
    "(",
    ")",
    "|",
    "&&",
    "||",
    "!",
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "=~",
    "!~",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "~",
    ">>",
    "<<",
    "!>",
    "!<",
    "!>>",
    "&>",
    "&>>",
    "&~",
    ",",
    ".",
    ":",
    "\"",
    "`",
    "\\",
    "\"a\"",
    "\"é\\u00e9\"",
    "\"\\u12",
    "`raw`",
    "0",
    "1",
    "1.5",
    ".99",
    "1e3",
    "2e",
    "10ms",
    "1h30m",
    "5µs",
    "3d",
    "99999999999999999999",
    ".a",
    ".é",
    "span.a",
    "span.\"a b\"",
    "resource.service.name",
    "parent.span.x",
    "parent.",
    "event.x",
    "link.x",
    "span:name",
    "span:é",
    "trace:id",
    "trace:",
    "event:é",
    "span:nameé",
    "duration",
    "name",
    "status",
    "kind",
    "error",
    "ok",
    "server",
    "nil",
    "true",
    "false",
    "count()",
    "count",
    "avg",
    "max",
    "min",
    "sum",
    "by",
    "coalesce",
    "select",
    "rate",
    "rate()",
    "count_over_time",
    "min_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
    "with",
    "sample",
    "exemplars",
    "é",
    "日本",
    "🦀",
    "\u{0}",
    "\u{feff}",
];

/// Operands, operators and second stages of metrics expressions.
const METRICS_TERMS: &[&str] = &[
    "({ } | rate())",
    "({ status = error } | count_over_time() by (resource.service.name))",
    "({ } | max_over_time(duration))",
    "({ } | quantile_over_time(duration, .5, .9))",
    "({ } | compare({ status = error }))",
    "({ } | rate() > 1 | topk(1))",
    "0",
    "2",
    "-1.5",
    "10s",
    "(1 / 0)",
    "(2 * 3)",
];
const METRICS_OPERATORS: &[&str] = &["+", "-", "*", "/", "%"];
const METRICS_STAGES: &[&str] = &[
    "> 1",
    "!= 0",
    "< 1ms",
    ">= -1",
    "| topk(2)",
    "| bottomk(1)",
    "| topk(0)",
    "== 1",
];

/// Mostly well-formed metrics expressions: `term (op term)* stage*`.
fn metrics_text() -> impl Strategy<Value = String> {
    let term = prop::sample::select(METRICS_TERMS);
    let operations = prop::collection::vec(
        (
            prop::sample::select(METRICS_OPERATORS),
            prop::sample::select(METRICS_TERMS),
        ),
        0..4,
    );
    let stages = prop::collection::vec(prop::sample::select(METRICS_STAGES), 0..3);
    (term, operations, stages).prop_map(|(first, operations, stages)| {
        let mut text = first.to_owned();
        for (op, term) in operations {
            text.push_str(&format!(" {op} {term}"));
        }
        for stage in stages {
            text.push_str(&format!(" {stage}"));
        }
        text
    })
}

fn token_text() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(TOKENS);
    let separator = prop::sample::select(&["", " ", " ", "\n", "\t"][..]);
    prop::collection::vec((piece, separator), 0..40).prop_map(|pieces| {
        pieces
            .into_iter()
            .flat_map(|(piece, separator)| [piece, separator])
            .collect()
    })
}

/// Runs what a request does after a successful parse.
fn exercise_search(query: &Query) {
    let _ = TraceCondition::of(query).predicates();
    let _ = referenced_fields(query);
    let _ = format!("{query:?}");
    for (_, number, resource_spans) in fixture::traces() {
        let _ = evaluate(
            query,
            &TraceView::new(fixture::trace_id(number), &resource_spans),
        );
    }
}

fn exercise_all(text: &str) {
    if let Ok(query) = parse(text) {
        exercise_search(&query);
    }
    if let Some(query) = parse_lenient(text) {
        exercise_search(&query);
    }
    let _ = andante_model::parse_go_duration(text);
    if let Ok(query) = parse_metrics(text) {
        let _ = run_metrics(&query);
    }
    if let Ok(expr) = parse_metrics_expr(text) {
        let _ = format!("{expr:?}");
        let _ = evaluate_expr(&expr);
    }
}

fn run_metrics(query: &MetricsQuery) -> Vec<MetricsSeries> {
    let mut accumulator = Accumulator::new(Intervals::range(
        0,
        3600 * 1_000_000_000,
        600 * 1_000_000_000,
    ))
    .with_exemplars(10);
    for (_, number, resource_spans) in fixture::traces() {
        accumulator.observe(
            query,
            &TraceView::new(fixture::trace_id(number), &resource_spans),
        );
    }
    accumulator.finish(query)
}

/// As the query crate evaluates an expression: each query, then `combine` per operator.
fn evaluate_expr(expr: &MetricsExpr) -> Operand {
    match expr {
        MetricsExpr::Query(query) => Operand::Series(run_metrics(query)),
        MetricsExpr::Number(number) => Operand::Number(*number),
        MetricsExpr::Binary { op, lhs, rhs } => {
            combine(*op, evaluate_expr(lhs), evaluate_expr(rhs))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn token_soup_never_panics(text in token_text()) {
        exercise_all(&text);
    }

    #[test]
    fn metrics_expressions_never_panic(text in metrics_text()) {
        exercise_all(&text);
    }

    #[test]
    fn arbitrary_unicode_never_panics(text in any::<String>()) {
        exercise_all(&text);
    }

    /// Valid-looking filters with arbitrary text where names, strings and numbers go.
    #[test]
    fn arbitrary_text_in_filters_never_panics(inner in any::<String>(), prefix in prop::sample::select(&["{ ", "{ .", "{ span:", "{ .a = \"", "{ .a = ", "{ } | ", "{ } | rate() by (", "({ } | rate()) ", "({ } | count_over_time() by (name)) * 2 | topk(", "({ } | rate()) > "][..])) {
        exercise_all(&format!("{prefix}{inner}"));
        exercise_all(&format!("{prefix}{inner} }}"));
    }
}
