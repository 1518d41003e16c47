//! The series store of generated metrics and the PromQL engine over it.
//!
//! `store` keeps every tenant's series in memory, compressed (`chunk`), for a bounded retention;
//! `promql` evaluates Prometheus queries over it for the read API (`/prometheus/api/v1/*`), so
//! Grafana's Prometheus data source draws the service graph and RED panels from Andante alone.

pub mod chunk;
pub mod labels;
pub mod promql;
pub mod store;

pub use labels::{Labels, METRIC_NAME};
pub use store::{SeriesData, Store, StoreConfig};

/// One sample of one series: labels (with `__name__`), Unix milliseconds, value.
pub type LabeledSample = (Labels, i64, f64);
