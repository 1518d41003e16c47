//! The live store (Tempo 3's "live-store", the ingester of older Tempo): it owns the WAL, holds
//! traces that are still receiving spans, cuts them when idle or too old, and writes completed
//! traces as blocks.
//!
//! # Write path
//! `push` → rate limit → split by trace → per-trace limits → WAL append (fsync, group commit)
//! → insert into the tenant's live traces → acknowledge. A span is therefore readable through
//! `find_trace` from the moment its push is acknowledged, and durable from the same moment.
//!
//! # Invariants
//! - Every acknowledged span is in at least one of: a live trace, a completed trace waiting for
//!   its block, a block being uploaded, a block in the block list. Queries read all four.
//! - A WAL segment is deleted only when no trace in memory has a fragment in it or before it
//!   (`first_segment`) and no push is between its WAL append and its insert (the checkpoint
//!   gate). Replay after a crash may re-insert traces that already reached a block; reads and
//!   compaction deduplicate spans, so the answer is the same.
//! - Limits are checked before the WAL append, so a refused span never reaches the WAL.

mod metrics;
mod record;
mod store;
mod tenant;
pub mod wire;

pub use metrics::LiveMetrics;
pub use store::{
    charge_rate_limit, decode_fragments, decode_fragments_projected, LiveConfig, LiveStore,
    OffsetCommit, PushError, PushOutcome, SpanSink,
};

#[cfg(test)]
mod tests;
