//! Block format `andante-v1`: one Parquet file of spans, one row per span, rows sorted by trace
//! ID (and within a trace by resource, scope and start time). See `docs/FORMAT.md` for the
//! column-by-column description; this module is its implementation.
//!
//! Why one row per span rather than Tempo's one row per trace: TraceQL filters spans, so flat
//! columns let a filter run as a tight loop over one column chunk with no repetition levels to
//! decode, and arrow-rs writes and reads flat columns far faster than deeply nested lists. The
//! resource and scope of each span are stored as protobuf-encoded, dictionary-encoded binary
//! columns: each distinct resource is stored once per row group and costs one small dictionary
//! index per span, and a resource-attribute predicate can be evaluated once per dictionary entry
//! instead of once per span. The hottest resource and span attributes also get dedicated
//! columns, and the rest go to a typed generic attribute list.
//!
//! Invariants: a trace never straddles two row groups; `trace_id` is non-decreasing over the
//! file; every span of a trace is in the file once per (span ID, kind).
//!
//! Format `andante-v2` is the same file with one difference in row order: traces are assigned to
//! row groups by trace start (newest first), so a row group covers a narrow slice of time, and
//! `trace_id` is non-decreasing within each row group only. Everything in this module reads
//! both; `crate::order` decides the v2 order and the index (v3) describes each row group.

pub mod compare;
pub(crate) mod gather;
pub mod metrics;
mod read;
mod schema;
pub mod search;
mod stream;
pub mod tags;
mod write;

pub use read::{
    batch_to_traces, decode_all_traces, read_row_group_trace, read_row_group_traces,
    AttributeParts, SpanParts,
};
pub use schema::{
    schema, DedicatedSlots, DEDICATED_RESOURCE_STRINGS, DEDICATED_SLOTS, DEDICATED_SPAN_INTS,
    DEDICATED_SPAN_STRINGS,
};
pub use stream::TraceStream;
pub use write::{
    encode_parquet as encode_parquet_with_index, groups_by_size, span_count, Encoded, WriteOptions,
};
pub(crate) use write::{BlockWriter, Columns, RowGroupOut};
