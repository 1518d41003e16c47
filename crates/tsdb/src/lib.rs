//! The series store of generated metrics and the PromQL engine over it.
//!
//! `store` keeps every tenant's series in memory, compressed (`chunk`), for a bounded retention;
//! `promql` evaluates Prometheus queries over it for the read API (`/prometheus/api/v1/*`), so
//! Grafana's Prometheus data source draws the service graph and RED panels from Andante alone.

pub mod block;
pub mod chunk;
pub mod delta;
pub mod exemplars;
pub mod head;
pub mod labels;
pub mod metadata;
pub mod persist;
pub mod promql;
pub mod remote_write;
pub mod store;
mod varint;
pub mod wal_record;

pub use exemplars::{Exemplar, ExemplarOutcome};
pub use head::MetricsHead;
pub use labels::{Labels, METRIC_NAME};
pub use store::{AppendMode, AppendOutcome, SeriesData, Store, StoreConfig};

/// Prometheus' stale marker: a NaN with this exact bit pattern ends a series at its timestamp.
pub const STALE_NAN: f64 = f64::from_bits(promql::STALE_NAN_BITS);

/// One sample of one series: labels (with `__name__`), Unix milliseconds, value.
pub type LabeledSample = (Labels, i64, f64);

/// One series' labels and its samples (Unix milliseconds, value), oldest first: the unit every
/// metrics receiver hands to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub labels: Labels,
    pub samples: Vec<(i64, f64)>,
}
