//! The vocabulary every other Andante crate speaks: validated identifiers (`TraceId`, `SpanId`,
//! `TenantId`), time units, and the one `ErrorKind` that each layer maps to HTTP, gRPC and OTLP
//! partial success. This crate does no I/O so that parsing rules live in exactly one place and
//! every layer above can trust the types it is handed.

mod duration;
mod error;
mod ids;
pub mod partition;
pub mod projected;
mod tenant;
mod trace;

pub use duration::{parse_go_duration, DurationError};
pub use error::ErrorKind;
pub use ids::{IdError, SpanId, TraceId};
pub use tenant::{TenantError, TenantId, TenantSet, CLUSTER_DIR, SINGLE_TENANT};
pub use trace::{merge_resource_spans, span_count};

/// Maps and sets on paths that hash every span (block writing, compaction, fragment merging):
/// SipHash was about a tenth of their CPU (session 28). foldhash is several times faster and
/// seeded per process, so senders cannot aim collisions at it.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The OTLP protobuf types, re-exported so that every crate names them through one path.
pub use opentelemetry_proto::tonic as otlp;

/// Nanoseconds since the Unix epoch, as OTLP carries them.
pub type UnixNanos = u64;

/// The current wall-clock time in Unix nanoseconds.
pub fn now_unix_nanos() -> UnixNanos {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0)
}
