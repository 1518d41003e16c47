//! Parser tests: the corpus files under `tests/corpus/` and focused cases.

use crate::ast::*;
use crate::{parse, parse_lenient, parse_metrics_expr, ErrorKind};

const VALID: &str = include_str!("../tests/corpus/valid.traceql");
const INVALID: &str = include_str!("../tests/corpus/invalid.txt");
const TEMPO: &str = include_str!("../tests/corpus/tempo_examples.txt");

fn corpus_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
}

#[test]
fn valid_corpus_parses() {
    let mut count = 0;
    for line in corpus_lines(VALID) {
        let query = line.replace('⏎', "\n");
        if let Err(error) = parse(&query) {
            panic!("`{query}` should parse: {error}");
        }
        count += 1;
    }
    assert!(count >= 300, "valid corpus has only {count} queries");
}

#[test]
fn invalid_corpus_fails_with_expected_errors() {
    let mut count = 0;
    for line in corpus_lines(INVALID) {
        let (query, expected) = line
            .split_once(" ==> ")
            .unwrap_or_else(|| panic!("malformed corpus line `{line}`"));
        let query = query.replace('⏎', "\n");
        match parse(&query) {
            Ok(parsed) => panic!("`{query}` should not parse, got {parsed:?}"),
            Err(error) => assert_eq!(error.to_string(), expected, "for `{query}`"),
        }
        count += 1;
    }
    assert!(count >= 150, "invalid corpus has only {count} queries");
}

/// Tempo's parser corpus (`tests/corpus/tempo_examples.txt`): what Tempo accepts parses here, as
/// a search query or a metrics query; what Tempo refuses is refused here.
#[test]
fn tempo_corpus_agrees_with_tempo() {
    let mut failures = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for line in corpus_lines(TEMPO) {
        let (kind, query) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("malformed corpus line `{line}`"));
        let (query, _reason) = query.split_once(" ==> ").unwrap_or((query, ""));
        let query = query
            .replace('⏎', "\n")
            .replace('⇥', "\t")
            .replace('␍', "\r");
        let search = parse(&query);
        let metrics = parse_metrics_expr(&query);
        let accepted = search.is_ok() || metrics.is_ok();
        *counts.entry(kind).or_insert(0) += 1;
        match kind {
            "valid" if !accepted => failures.push(format!(
                "valid, refused: `{query}`: {}",
                metrics.err().map(|e| e.to_string()).unwrap_or_default()
            )),
            "parse_fails" | "validate_fails" | "known_gap" if accepted => {
                failures.push(format!("{kind}, accepted: `{query}`"))
            }
            "valid" | "parse_fails" | "validate_fails" | "known_gap" | "unsupported" => {}
            other => panic!("unknown kind `{other}` in `{line}`"),
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements with Tempo:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(counts.get("valid"), Some(&284), "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 463, "{counts:?}");
}

#[test]
fn positions_are_line_and_column() {
    let error = parse("{ .a = 1 }\n| count() > \"x\"").unwrap_err();
    assert_eq!((error.line, error.column), (2, 13));
    assert_eq!(error.kind, ErrorKind::Invalid);
    let error = parse("{ .a = }").unwrap_err();
    assert_eq!(
        error.to_string(),
        "parse error at line 1, col 8: syntax error: unexpected `}`"
    );
}

#[test]
fn precedence_and_structure() {
    let query = parse("{ .a = 1 || .b = 2 && .c = 3 }").unwrap();
    let SpansetExpr::Filter(Some(FieldExpr::Binary {
        op: BinaryOp::Or,
        rhs,
        ..
    })) = &query.root
    else {
        panic!("|| must be the root: {query:?}")
    };
    assert!(matches!(
        rhs.as_ref(),
        FieldExpr::Binary {
            op: BinaryOp::And,
            ..
        }
    ));

    let query = parse("{ .a = 1 } && { .b = 1 } > { .c = 1 }").unwrap();
    let SpansetExpr::Binary {
        op: SpansetOp::And,
        rhs,
        ..
    } = &query.root
    else {
        panic!("{query:?}")
    };
    assert!(matches!(
        rhs.as_ref(),
        SpansetExpr::Binary {
            op: SpansetOp::Child,
            ..
        }
    ));

    let query = parse("{ 2 ^ 3 ^ 2 = 512 }").unwrap();
    let SpansetExpr::Filter(Some(FieldExpr::Binary { lhs, .. })) = &query.root else {
        panic!()
    };
    assert_eq!(lhs.to_string(), "(2 ^ (3 ^ 2))");

    let query =
        parse("{ } | count() > 2 | by(resource.service.name) | select(span.http.route)").unwrap();
    let SpansetExpr::Pipeline(stages) = &query.root else {
        panic!()
    };
    assert_eq!(stages.len(), 4);
}

#[test]
fn literals() {
    let query =
        parse(r#"{ .a = "x\"y\n" && .b = `raw\n` && duration > 1h30m && .c = -3 && .d = 1.5e3 }"#)
            .unwrap();
    let text = format!("{query:?}");
    assert!(text.contains(r#"String("x\"y\n")"#), "{text}");
    assert!(text.contains(r#"String("raw\\n")"#), "{text}");
    assert!(text.contains("Duration(5400000000000)"), "{text}");
    assert!(text.contains("Int(-3)"), "{text}");
    assert!(text.contains("Float(1500.0)"), "{text}");
}

#[test]
fn quoted_and_parent_attributes() {
    let query = parse(r#"{ span."foo bar" = 1 && parent.resource.service.name = "a" && parent.x = 2 && ."k=v" = 3 }"#).unwrap();
    let text = format!("{query:?}");
    assert!(
        text.contains(r#"Attribute { scope: Span, parent: false, name: "foo bar" }"#),
        "{text}"
    );
    assert!(
        text.contains(r#"Attribute { scope: Resource, parent: true, name: "service.name" }"#),
        "{text}"
    );
    assert!(
        text.contains(r#"Attribute { scope: Unscoped, parent: true, name: "x" }"#),
        "{text}"
    );
    assert!(text.contains(r#"name: "k=v""#), "{text}");
}

#[test]
fn lenient_keeps_complete_clauses() {
    let query = parse_lenient(r#"{ resource.service.name = "a" && span.http.route = }"#).unwrap();
    assert_eq!(format!("{:?}", query.root).matches("Attribute").count(), 1);
    let query = parse_lenient(r#"{ .a = "x && y" && .b"#).unwrap();
    assert!(format!("{:?}", query.root).contains("x && y"));
    assert!(parse_lenient("{ .a = ").is_none());
    assert!(parse_lenient("garbage").is_none());
}

/// `count()` comparisons become a floor on matching spans only where every spanset reaching the
/// count is made of spans that satisfy the filters before it.
#[test]
fn count_comparisons_push_down_a_span_floor() {
    use crate::TraceCondition;
    let floor = |text: &str| -> Option<u32> {
        fn find(condition: &TraceCondition) -> Option<u32> {
            match condition {
                TraceCondition::AtLeast { min, .. } => Some(*min),
                TraceCondition::And(parts) | TraceCondition::Or(parts) => {
                    parts.iter().find_map(find)
                }
                _ => None,
            }
        }
        find(&TraceCondition::of(&parse(text).expect("parses")))
    };
    assert_eq!(floor("{ } | count() > 8"), Some(9));
    assert_eq!(floor("{ status = error } | count() >= 3"), Some(3));
    assert_eq!(floor("{ } | 4 < count()"), Some(5));
    assert_eq!(floor("{ } | count() = 2"), Some(2));
    assert_eq!(floor("{ } | count() > 2.5"), Some(3));
    assert_eq!(floor("{ } | by(name) | count() > 1"), Some(2));
    assert_eq!(floor("({ } | count() > 1) && { kind = server }"), Some(2));
    // Nothing to push: any count passes, the floor is trivial, or spans may come from elsewhere.
    assert_eq!(floor("{ } | count() < 5"), None);
    assert_eq!(floor("{ } | count() != 5"), None);
    assert_eq!(floor("{ } | count() > 0"), None);
    assert_eq!(floor("{ } | avg(duration) > 2"), None);
    assert_eq!(
        floor("({ name = \"a\" } && { name = \"b\" }) | count() > 3"),
        None
    );
    assert_eq!(floor("{ .x = 1 } | count() > 3"), None);
    let condition = TraceCondition::of(&parse("{ } | count() > 2").expect("parses"));
    let related = |_, _, _| true;
    assert!(
        condition.holds(&[true]),
        "without counts it stays an existence test"
    );
    assert!(!condition.holds_counted(&[2], &related));
    assert!(condition.holds_counted(&[3], &related));
}

/// What a partial decode must include: returned fields, plus `by()` and aggregate arguments.
#[test]
fn evaluated_fields_include_groups_and_aggregates() {
    use crate::{evaluated_fields, referenced_fields};
    let query = parse(
        "{ status = error } | by(span.group) | avg(span.items) > 2 | select(resource.region)",
    )
    .expect("parses");
    let names =
        |fields: Vec<Field>| -> Vec<String> { fields.iter().map(ToString::to_string).collect() };
    assert_eq!(
        names(referenced_fields(&query)),
        ["status", "resource.region"]
    );
    assert_eq!(
        names(evaluated_fields(&query)),
        ["status", "span.group", "span.items", "resource.region"]
    );
}
