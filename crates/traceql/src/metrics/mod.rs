//! TraceQL metrics: `{…} | rate() by (…)` and the other `*_over_time` functions, parsed into a
//! [`MetricsQuery`] and computed by an [`Accumulator`] that sees one trace at a time, so live
//! traces and every block can be folded in any order and partial accumulators merged.
//!
//! Time: the range is cut into intervals `(T − step, T]`, each labelled by its end `T`
//! (`T₀ = ceil(start / step) · step`, as Tempo labels them); a span counts in the interval of its
//! start time. `quantile_over_time` is exact (every value kept per interval, linear interpolation
//! between closest ranks): no bucketing error. `histogram_over_time` buckets by powers of two
//! (`__bucket` = the upper bound, in seconds for durations), as Tempo does.
//!
//! `parse.rs` reads queries, `expr.rs` arithmetic and second stages over them, `accumulate.rs`
//! folds spans into series, `combine.rs` applies an expression's operators to finished series.

mod accumulate;
mod combine;
mod expr;
mod parse;

pub use accumulate::*;
pub use combine::*;
pub use expr::*;
pub use parse::*;
