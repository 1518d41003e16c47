//! Shared parts of Andante's fuzz targets (`fuzz_targets/*.rs`): the fixture traces TraceQL
//! queries run over, the checks both TraceQL targets apply, and the TraceQL grammar of the
//! structure-aware target. See `docs/FUZZING.md`.

pub mod fixture;
pub mod grammar;
pub mod traceql_checks;
pub mod ingest_checks;
