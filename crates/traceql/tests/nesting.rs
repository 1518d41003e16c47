//! Issue 10: deep queries overflowed the stack and aborted the process. Every shape from the
//! report is built exactly at `MAX_QUERY_DEPTH` and run through everything a request does with
//! a query — parse, type check, pushed-down condition, evaluation, metrics, formatting, clone,
//! drop — on a 2 MiB thread (the default for spawned threads) in this debug build; one level
//! more must be refused with a positioned error naming the limit.

mod fixture;

use andante_traceql::ast::SpansetExpr;
use andante_traceql::metrics::{combine, Operand};
use andante_traceql::{
    evaluate, parse, parse_lenient, parse_metrics, parse_metrics_expr, referenced_fields,
    Accumulator, Intervals, MetricsExpr, Query, TraceCondition, TraceView, MAX_QUERY_DEPTH,
};

const LIMIT: usize = MAX_QUERY_DEPTH;
const SECOND: u64 = 1_000_000_000;

fn too_deep_message() -> String {
    format!("query nests deeper than the limit of {LIMIT}")
}

/// Runs `work` on a thread with a 2 MiB stack; a stack overflow aborts the test binary.
fn on_small_stack(name: &str, work: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .name(name.to_owned())
        .stack_size(2 << 20)
        .spawn(work)
        .expect("spawn")
        .join()
        .unwrap_or_else(|_| panic!("`{name}` panicked"));
}

/// Everything a search request does with a query.
fn exercise_search(query: &Query) {
    let condition = TraceCondition::of(query);
    let predicates = condition.predicates();
    let _ = condition.holds(&vec![true; predicates.len()]);
    let _ = condition.has_relations();
    let _ = referenced_fields(query);
    for (_, number, resource_spans) in fixture::traces() {
        let view = TraceView::new(fixture::trace_id(number), &resource_spans);
        let _ = evaluate(query, &view);
        for predicate in &predicates {
            let _ = predicate.matches_span(&view, 0);
        }
    }
    if let SpansetExpr::Filter(Some(expr)) = &query.root {
        assert!(!expr.to_string().is_empty());
    }
    assert!(!format!("{query:?}").is_empty());
    drop(query.clone());
}

/// Everything a metrics request does with a query.
fn exercise_metrics(text: &str) {
    let query = parse_metrics(text)
        .unwrap_or_else(|error| panic!("`{}…` should parse: {error}", prefix(text)));
    exercise_search(&query.search);
    let mut accumulator =
        Accumulator::new(Intervals::range(0, 3600 * SECOND, 600 * SECOND)).with_exemplars(5);
    for (_, number, resource_spans) in fixture::traces() {
        accumulator.observe(
            &query,
            &TraceView::new(fixture::trace_id(number), &resource_spans),
        );
    }
    let _ = accumulator.finish(&query);
    assert!(!format!("{query:?}").is_empty());
    drop(query.clone());
}

fn prefix(text: &str) -> String {
    text.chars().take(60).collect()
}

/// A search shape with `levels` levels of nesting: parses and survives everything at the limit,
/// is refused one level past it.
struct Shape {
    name: &'static str,
    build: fn(usize) -> String,
}

const SHAPES: &[Shape] = &[
    // Braces, then the parentheses, then the comparison's right side.
    Shape {
        name: "parentheses in a filter",
        build: |levels| {
            format!(
                "{{ {}status = error{} }}",
                "(".repeat(levels - 2),
                ")".repeat(levels - 2)
            )
        },
    },
    Shape {
        name: "parentheses around a spanset",
        build: |levels| format!("{}{{ }}{}", "(".repeat(levels), ")".repeat(levels)),
    },
    Shape {
        name: "negations",
        build: |levels| {
            let opening: String = "!(".chars().cycle().take(levels - 1).collect();
            let closing = ")".repeat(opening.matches('(').count());
            format!("{{ {opening}true{closing} }}")
        },
    },
    Shape {
        name: "minus signs",
        build: |levels| format!("{{ duration > {}1ms }}", "-".repeat(levels - 2)),
    },
    Shape {
        name: "descendant chain",
        build: |levels| vec!["{ }"; levels + 1].join(" >> "),
    },
    Shape {
        name: "and chain",
        build: |levels| vec!["{ }"; levels + 1].join(" && "),
    },
    Shape {
        name: "or chain of filters",
        build: |levels| format!("{{ {} }}", vec![".id = 1"; levels - 1].join(" || ")),
    },
    Shape {
        name: "power chain",
        build: |levels| format!("{{ {} = 1 }}", vec!["2"; levels - 1].join(" ^ ")),
    },
    Shape {
        name: "arithmetic chain",
        build: |levels| format!("{{ {} = 1 }}", vec!["2"; levels - 1].join(" + ")),
    },
    // Each `(` and each `|` after a first stage is a level.
    Shape {
        name: "nested pipelines",
        build: |levels| {
            let (pipelines, extra) = (levels / 2, levels % 2);
            format!(
                "{}{}{{ }}{}{}",
                "(".repeat(extra),
                "({ } | ".repeat(pipelines),
                ")".repeat(pipelines),
                ")".repeat(extra)
            )
        },
    },
    Shape {
        name: "aggregate arithmetic",
        build: |levels| format!("{{ }} | {} > 1", vec!["count()"; levels - 1].join(" + ")),
    },
    Shape {
        name: "aggregate parentheses",
        build: |levels| {
            format!(
                "{{ }} | {}count(){} > 1",
                "(".repeat(levels - 2),
                ")".repeat(levels - 2)
            )
        },
    },
    Shape {
        name: "by() argument",
        build: |levels| {
            format!(
                "{{ }} | by({}.a{})",
                "(".repeat(levels - 2),
                ")".repeat(levels - 2)
            )
        },
    },
];

#[test]
fn every_shape_at_the_limit_survives_a_small_stack() {
    for shape in SHAPES {
        let text = (shape.build)(LIMIT);
        on_small_stack(shape.name, move || {
            let query = parse(&text).unwrap_or_else(|error| {
                panic!("`{}…` should parse at the limit: {error}", prefix(&text))
            });
            exercise_search(&query);
            let lenient =
                parse_lenient(&text).expect("a query that parses is its own lenient parse");
            exercise_search(&lenient);
        });
    }
}

#[test]
fn every_shape_past_the_limit_is_refused() {
    for shape in SHAPES {
        let text = (shape.build)(LIMIT + 1);
        on_small_stack(shape.name, move || match parse(&text) {
            Ok(_) => panic!("`{}…` nests one level past the limit", prefix(&text)),
            Err(error) => assert!(
                error.to_string().starts_with("parse error at line 1, col ")
                    && error.message == too_deep_message(),
                "{error}"
            ),
        });
    }
}

/// The report's sizes, and far beyond: refused, not a crash.
#[test]
fn the_reported_queries_are_refused() {
    on_small_stack("reported", || {
        let reported = [
            format!("{{ {}status = error{} }}", "(".repeat(760), ")".repeat(760)),
            format!("{}{{ }}{}", "(".repeat(900), ")".repeat(900)),
            format!("{{ {}true{} }}", "!(".repeat(650), ")".repeat(650)),
            format!("{{ duration > {}1ms }}", "-".repeat(4500)),
            vec!["{ }"; 1700].join(" >> "),
            vec!["{ }"; 1700].join(" && "),
            vec!["{ }"; 100_000].join(" && "),
            "(".repeat(100_000),
        ];
        for text in reported {
            let error = parse(&text).expect_err("too deep");
            assert_eq!(error.message, too_deep_message());
            assert!(parse_lenient(&text).is_none_or(|query| fits(&query)));
            assert!(parse_metrics(&format!("{text} | rate()")).is_err());
            assert!(parse_metrics_expr(&format!("({text} | rate())")).is_err());
        }
    });
}

/// The error points at the token that went one level too deep.
#[test]
fn the_error_points_at_the_level_past_the_limit() {
    let text = format!("{}{{ }}{}", "(".repeat(LIMIT + 1), ")".repeat(LIMIT + 1));
    let error = parse(&text).expect_err("too deep");
    assert_eq!((error.line, error.column), (1, LIMIT + 1));
    let text = vec!["{ }"; LIMIT + 2].join(" && ");
    let error = parse(&text).expect_err("too deep");
    assert_eq!(
        error.offset,
        text.rfind("&&").expect("an operator"),
        "the last `&&` makes the chain too deep"
    );
}

#[test]
fn metrics_at_the_limit_survive_a_small_stack() {
    on_small_stack("metrics", || {
        // The filter's braces, its parentheses and the comparison's right side.
        let filter = format!(
            "{{ {}status = error{} }}",
            "(".repeat(LIMIT - 2),
            ")".repeat(LIMIT - 2)
        );
        exercise_metrics(&format!("{filter} | rate() by (resource.service.name)"));
        exercise_metrics(&format!(
            "{} | count_over_time()",
            vec!["{ }"; LIMIT + 1].join(" >> ")
        ));
        exercise_metrics(&format!(
            "{{ }} | sum_over_time({}duration{})",
            "(".repeat(LIMIT - 1),
            ")".repeat(LIMIT - 1)
        ));
        let error = parse_metrics(&format!(
            "{{ }} | sum_over_time({}duration{})",
            "(".repeat(LIMIT),
            ")".repeat(LIMIT)
        ))
        .expect_err("too deep");
        assert_eq!(error.message, too_deep_message());
        let error = parse_metrics(&format!("{} | rate()", vec!["{ }"; LIMIT + 2].join(" >> ")))
            .expect_err("too deep");
        assert_eq!(error.message, too_deep_message());
    });
}

/// Evaluates a metrics expression as the query crate does: queries, then `combine` per node.
fn evaluate_expr(expr: &MetricsExpr) -> Operand {
    match expr {
        MetricsExpr::Query(query) => {
            let mut accumulator =
                Accumulator::new(Intervals::range(0, 3600 * SECOND, 600 * SECOND));
            for (_, number, resource_spans) in fixture::traces() {
                accumulator.observe(
                    query,
                    &TraceView::new(fixture::trace_id(number), &resource_spans),
                );
            }
            Operand::Series(accumulator.finish(query))
        }
        MetricsExpr::Number(number) => Operand::Number(*number),
        MetricsExpr::Binary { op, lhs, rhs } => {
            combine(*op, evaluate_expr(lhs), evaluate_expr(rhs))
        }
    }
}

#[test]
fn metrics_arithmetic_at_the_limit_survives_a_small_stack() {
    on_small_stack("metrics arithmetic", || {
        let chain = |operands: usize| vec!["({ } | rate())"; operands].join(" + ");
        let parenthesised =
            |levels: usize| format!("{}{{ }} | rate(){}", "(".repeat(levels), ")".repeat(levels));
        // A chain of queries, a query in parentheses, stages wrapping arithmetic (the query's
        // parentheses and the `*` are two levels, each stage one more): each at the limit.
        let staged =
            |levels: usize| format!("({{ }} | rate()) * 2{}", " | topk(5)".repeat(levels - 2));
        for (text, queries) in [
            (chain(LIMIT), LIMIT),
            (parenthesised(LIMIT), 1),
            (staged(LIMIT), 1),
        ] {
            let expr = parse_metrics_expr(&text)
                .unwrap_or_else(|error| panic!("`{}…` at the limit: {error}", prefix(&text)));
            assert_eq!(expr.queries().len(), queries);
            let _ = evaluate_expr(&expr);
            assert!(!format!("{expr:?}").is_empty());
            drop(expr.clone());
        }
        for text in [
            chain(LIMIT + 2),
            parenthesised(LIMIT + 1),
            staged(LIMIT + 1),
        ] {
            let error = parse_metrics_expr(&text).expect_err("too deep");
            assert_eq!(error.message, too_deep_message(), "`{}…`", prefix(&text));
        }
    });
}

/// The lenient parser joins the complete `&&` clauses of a half-typed filter; however many
/// there are, the joined filter stays within the limit (clauses past it are dropped, which only
/// widens the match).
#[test]
fn lenient_parse_keeps_the_joined_clauses_within_the_limit() {
    on_small_stack("lenient", || {
        let deep_clause = format!("{}.a = 1{}", "(".repeat(LIMIT - 3), ")".repeat(LIMIT - 3));
        for clauses in [vec![".a = 1"; 10_000], vec![deep_clause.as_str(); 300]] {
            let text = format!("{{ {} && .b = ", clauses.join(" && "));
            let query = parse_lenient(&text).expect("complete clauses");
            exercise_search(&query);
            assert!(
                matches!(query.root, SpansetExpr::Filter(Some(_))) && fits(&query),
                "{query:?}"
            );
        }
    });
}

/// Whether a filter's condition, one level below its braces, is within the limit.
fn fits(query: &Query) -> bool {
    match &query.root {
        SpansetExpr::Filter(Some(expr)) => expr.height() < LIMIT,
        _ => true,
    }
}
