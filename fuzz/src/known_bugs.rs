//! Inputs that reach bugs already reported (docs/FUZZING.md, "Findings") and not fixed yet.
//! With `ANDANTE_FUZZ_SKIP_KNOWN=1` the targets skip them, so that a long exploratory run looks
//! for new bugs instead of finding the same one again. CI does not set it: the inputs kept in
//! `fuzz/regressions/` keep failing until the bug is fixed. Remove a filter with its fix.

use std::sync::OnceLock;

/// Whether known bugs are skipped (`ANDANTE_FUZZ_SKIP_KNOWN` set and not `0`).
pub fn skipping() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| std::env::var("ANDANTE_FUZZ_SKIP_KNOWN").is_ok_and(|value| value != "0"))
}

/// TraceQL texts that hit a reported TraceQL bug.
pub fn traceql(text: &str) -> bool {
    if !skipping() {
        return false;
    }
    // Finding 2: compare()'s `__too_many_values__` series have no samples, and topk/bottomk
    // index every series by the first one's length (metrics/accumulate.rs:743).
    if text.contains("compare") && (text.contains("topk") || text.contains("bottomk")) {
        return true;
    }
    // Finding 1: after `scope:` the lexer advances one byte per character of the intrinsic's
    // name, so a multi-byte letter there slices `text` inside a character (lexer.rs:367).
    text.match_indices(':').any(|(at, _)| {
        text[at + 1..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .any(|c| !c.is_ascii())
    })
}

/// Queries whose pushdown condition hits a reported TraceQL bug.
pub fn traceql_condition(query: &andante_traceql::Query) -> bool {
    use andante_traceql::ast::{BinaryOp, FieldExpr, SpansetExpr, Stage};
    // Finding 3: `literal != field` matches spans where the field is missing (value.rs reads a
    // right-hand nil as an existence test), while the condition, flipped to `field != literal`,
    // does not.
    fn literal_left_neq(expr: &FieldExpr) -> bool {
        match expr {
            FieldExpr::Binary { op, lhs, rhs } => {
                (*op == BinaryOp::Neq
                    && matches!(lhs.as_ref(), FieldExpr::Static(_))
                    && !matches!(rhs.as_ref(), FieldExpr::Static(_)))
                    || literal_left_neq(lhs)
                    || literal_left_neq(rhs)
            }
            FieldExpr::Not(inner) | FieldExpr::Negate(inner) => literal_left_neq(inner),
            FieldExpr::Regex { lhs, .. } => literal_left_neq(lhs),
            FieldExpr::Static(_) | FieldExpr::Field(_) => false,
        }
    }
    fn spanset(expr: &SpansetExpr) -> bool {
        match expr {
            SpansetExpr::Filter(None) => false,
            SpansetExpr::Filter(Some(condition)) => literal_left_neq(condition),
            SpansetExpr::Binary { lhs, rhs, .. } => spanset(lhs) || spanset(rhs),
            SpansetExpr::Pipeline(stages) => stages.iter().any(|stage| match stage {
                Stage::Spanset(expr) => spanset(expr),
                _ => false,
            }),
        }
    }
    skipping() && spanset(&query.root)
}
