//! The Kafka-compatible log between the roles of a split deployment (issue 16,
//! `docs/design/scale-out.md`). Distributors produce each push's trace fragments to the span
//! topic, partitioned by trace ID (`partition`), in record v2 (`record`), and acknowledge the
//! client only after the broker acknowledged every record (`sink`). Block-builders consume their
//! partitions into WAL-less live stores, write blocks, and commit the oldest offset still needed
//! only after the blocks before it are written and listed (`builder`, `offsets`). Generators
//! read the same partitions into the metrics generator (`generator`). Live-stores read them
//! from the builders' committed offset into memory for recent-data queries, and forget what the
//! builders have since written (`live_store`).
//!
//! # Invariants
//! - A push is acknowledged only when every record of it is acknowledged by the broker with
//!   `acks=all` (rskafka always asks for it); otherwise the client gets 503 / `UNAVAILABLE` and
//!   retries. Records of a failed push that did land come back as duplicate spans, which reads
//!   and compaction remove.
//! - A committed offset never passes a record whose spans are not in a listed block, so a
//!   restarted block-builder loses nothing; it may write some spans twice (removed on read).
//! - Every fragment of a trace of a tenant goes to one partition.
//! - Consumers own partitions by the broker's consumer group of their role, or by ordinal
//!   (`ownership`, `group`). Two consumers of one partition during a handover lose nothing
//!   (commits only vouch for listed blocks); spans they both write are duplicates, removed as a
//!   restart's are.

mod builder;
mod client;
mod generator;
mod group;
mod live_store;
mod offsets;
mod ownership;
/// Which partition a trace goes to: in `andante-model`, since queriers need it too.
pub use andante_model::partition;
pub mod record;
mod sink;

pub use builder::{BlockBuilder, BuilderMetrics};
pub use client::{Log, LogConfig, LogError};
pub use generator::start_generator_feed;
pub use live_store::LiveStoreRole;
pub use offsets::BucketOffsets;
pub use ownership::{Memberships, Ownership, Partitions};
pub use sink::LogSink;
