//! Structure-aware TraceQL: the input is decoded by `arbitrary` into the grammar of
//! `andante_fuzz::grammar` (filters, scopes, intrinsics, attributes, literals, structural
//! operators, pipelines with aggregates, metrics functions with `by()` and second stages) and
//! rendered as text, so most inputs reach the checker, evaluator and accumulator. The checks are
//! those of `traceql_parse`.

#![no_main]

use std::sync::OnceLock;

use andante_fuzz::fixture::{self, FixtureTrace};
use andante_fuzz::grammar::{render, Input};
use andante_fuzz::traceql_checks::check_text;
use libfuzzer_sys::fuzz_target;

fn traces() -> &'static [FixtureTrace] {
    static TRACES: OnceLock<Vec<FixtureTrace>> = OnceLock::new();
    TRACES.get_or_init(fixture::traces)
}

/// `ANDANTE_FUZZ_PRINT=1` prints each rendered query and whether it parses (to read a crash
/// input, or to see how much of the corpus gets past the parser).
fn printing() -> bool {
    static PRINT: OnceLock<bool> = OnceLock::new();
    *PRINT.get_or_init(|| std::env::var_os("ANDANTE_FUZZ_PRINT").is_some())
}

fuzz_target!(|input: Input| {
    let text = render(&input);
    if printing() {
        let search = andante_traceql::parse(&text).is_ok();
        let metrics = andante_traceql::parse_metrics_expr(&text).is_ok();
        eprintln!("search={search} metrics={metrics} {text}");
    }
    check_text(&text, traces());
});
