//! Bounds on how deeply a PromQL query may nest, checked before and after parsing.
//!
//! The parser, our evaluator and even dropping the syntax tree recurse once per level, and a
//! request thread has a fixed stack: `((((…1…))))` or `1+1+…+1` thousands deep aborted the whole
//! process with a stack overflow. Prometheus (Go, growable stacks) has no such limit; no real
//! dashboard or rule comes close to ours. Two checks: a scan of the text that bounds what the
//! parser will build (bracket depth, and the count of operators, each of which may add a level
//! to a left-associative chain), then an exact depth of the parsed tree, computed without
//! recursion.

use promql_parser::parser::Expr;

use super::QueryError;

/// Deepest syntax tree a query may have (parentheses, operators, calls and aggregations each
/// add a level).
pub const MAX_DEPTH: usize = 128;

/// Most operators a query may contain: bounds the tree the parser builds before its depth is
/// known (a chain of `n` operators is `n` levels deep).
pub const MAX_OPERATORS: usize = 1024;

fn too_deep() -> QueryError {
    QueryError::bad(format!(
        "invalid parameter \"query\": the query nests deeper than the limit of {MAX_DEPTH} levels"
    ))
}

/// Checks the text before it is parsed: bracket depth and operator count, skipping string
/// literals and the insides of label matchers.
pub(crate) fn check_text(query: &str) -> Result<(), QueryError> {
    let mut depth = 0usize;
    let mut operators = 0usize;
    let mut braces = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut previous_was_operator = false;
    for c in query.chars() {
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && open != '`' {
                escaped = true;
            } else if c == open {
                quote = None;
            }
            continue;
        }
        let mut operator = false;
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            _ if braces > 0 => {}
            '(' | '[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep());
                }
            }
            ')' | ']' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' | '=' | '!' | '<' | '>' => operator = true,
            _ => {}
        }
        if operator && !previous_was_operator {
            operators += 1;
            if operators > MAX_OPERATORS {
                return Err(QueryError::bad(format!(
                    "invalid parameter \"query\": the query has more than the limit of {MAX_OPERATORS} operators"
                )));
            }
        }
        previous_was_operator = operator;
    }
    Ok(())
}

/// The children of a node, for walking the tree without recursion.
pub(crate) fn children(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Aggregate(aggregate) => std::iter::once(aggregate.expr.as_ref())
            .chain(aggregate.param.as_deref())
            .collect(),
        Expr::Unary(unary) => vec![&unary.expr],
        Expr::Binary(binary) => vec![&binary.lhs, &binary.rhs],
        Expr::Paren(paren) => vec![&paren.expr],
        Expr::Subquery(subquery) => vec![&subquery.expr],
        Expr::Call(call) => call.args.args.iter().map(|arg| arg.as_ref()).collect(),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => Vec::new(),
    }
}

/// Checks the parsed tree's depth with an explicit stack.
pub(crate) fn check_tree(expr: &Expr) -> Result<(), QueryError> {
    let mut stack = vec![(expr, 1usize)];
    while let Some((node, level)) = stack.pop() {
        if level > MAX_DEPTH {
            return Err(too_deep());
        }
        stack.extend(children(node).into_iter().map(|child| (child, level + 1)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::{instant_query, range_query};
    use crate::store::{Store, StoreConfig};

    /// Runs `f` on a thread with the stack a request thread has, as a debug build (bigger frames).
    fn on_small_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(f)
            .expect("thread")
            .join()
            .expect("no stack overflow");
    }

    fn shapes(depth: usize) -> Vec<(&'static str, String)> {
        vec![
            (
                "parens",
                format!("{}1{}", "(".repeat(depth - 1), ")".repeat(depth - 1)),
            ),
            ("sum chain", vec!["1"; depth].join("+")),
            (
                "calls",
                format!(
                    "{}vector(1){}",
                    "abs(".repeat(depth - 2),
                    ")".repeat(depth - 2)
                ),
            ),
            (
                "aggregations",
                format!("{}up{}", "sum(".repeat(depth - 1), ")".repeat(depth - 1)),
            ),
            (
                "negations",
                format!(
                    "{}1{}",
                    "-(".repeat((depth - 1) / 2),
                    ")".repeat((depth - 1) / 2)
                ),
            ),
        ]
    }

    #[test]
    fn queries_at_the_limit_run_and_deeper_ones_are_refused_by_name() {
        on_small_stack(|| {
            let store = Store::new(StoreConfig::default());
            for (shape, query) in shapes(MAX_DEPTH) {
                instant_query(&store, "t", &query, 1_000)
                    .unwrap_or_else(|error| panic!("{shape} at the limit: {error}"));
                range_query(&store, "t", &query, 0, 60_000, 15_000)
                    .unwrap_or_else(|error| panic!("{shape} at the limit: {error}"));
            }
            for (shape, query) in shapes(MAX_DEPTH + 2) {
                let error = instant_query(&store, "t", &query, 1_000).expect_err(shape);
                assert!(
                    error.message.contains("limit of 128"),
                    "{shape}: {}",
                    error.message
                );
            }
        });
    }

    /// The inputs that overflowed the stack before the limit (issue 10, finding 1).
    #[test]
    fn the_reported_deep_queries_get_a_bad_request() {
        on_small_stack(|| {
            let store = Store::new(StoreConfig::default());
            let reported = [
                format!("{}1{}", "(".repeat(8_750), ")".repeat(8_750)),
                vec!["1"; 2_700].join("+"),
                vec!["1"; 100_000].join("+"),
                format!("{}vector(1){}", "abs(".repeat(1_700), ")".repeat(1_700)),
                format!("{}up{}", "sum(".repeat(5_000), ")".repeat(5_000)),
            ];
            for query in reported {
                let error = instant_query(&store, "t", &query, 1_000).expect_err("refused");
                assert_eq!(error.kind, crate::promql::QueryErrorKind::BadData);
                assert!(error.message.contains("limit of"), "{}", error.message);
            }
            // A run of minus signs before a number is folded into the literal: not deep at all.
            let folded = instant_query(&store, "t", &format!("{}1", "-".repeat(50_000)), 1_000)
                .expect("one number");
            assert_eq!(folded, crate::promql::QueryValue::Scalar(1_000, 1.0));
        });
    }

    #[test]
    fn strings_and_matchers_do_not_count() {
        let long_matcher = format!("up{{job=\"{}\"}}", "((((-+".repeat(1_000));
        assert!(check_text(&long_matcher).is_ok());
        assert!(check_text(&format!(
            "label_replace(up, \"a\", \"{}\", \"b\", \"(.*)\")",
            "(".repeat(500)
        ))
        .is_ok());
    }
}
