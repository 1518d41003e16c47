//! TraceQL text from the fuzzer, as-is: the search parser, the lenient (autocomplete) parser
//! and the metrics parser; whatever parses is evaluated over the fixture traces, its pushdown
//! condition checked and its metrics folded (`andante_fuzz::traceql_checks`).

#![no_main]

use std::sync::OnceLock;

use andante_fuzz::fixture::{self, FixtureTrace};
use andante_fuzz::traceql_checks::check_text;
use libfuzzer_sys::fuzz_target;

fn traces() -> &'static [FixtureTrace] {
    static TRACES: OnceLock<Vec<FixtureTrace>> = OnceLock::new();
    TRACES.get_or_init(fixture::traces)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_text(text, traces());
});
