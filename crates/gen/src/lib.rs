//! `andante gen`: realistic OTLP trace traffic for demos, tests and benchmarks, sendable to any
//! OTLP endpoint (Andante, Tempo, a Collector). The default topology models a small shop: an
//! instrumented microservice topology with HTTP, gRPC, database, cache and messaging calls
//! following the OpenTelemetry semantic conventions, Kubernetes resource attributes, errors with
//! exception events, producer→consumer links and an uninstrumented external payment API. A seed
//! makes the trace shapes and IDs reproducible.
//!
//! The incident topologies (`topology.rs`, `incident.rs`) are richer (pods on nodes, databases,
//! a cache, an external API, a queue, mixed semantic conventions, background noise) and carry
//! fault scenarios (`scenario.rs`) with a ground-truth file, for testing and demonstrating root
//! cause analysis. `timeline.rs` dates traces in real time or backfills a past interval.

mod conventions;
mod incident;
mod model;
mod scenario;
mod send;
mod timeline;
mod topologies;
mod topology;
mod truth;

#[cfg(test)]
mod scenario_tests;

pub use model::{Topology, TraceBuilder};
pub use scenario::{Plan, Scenario, ScenarioArgs, TopologyKind};
pub use send::{run, GenArgs, GenReport, Protocol};
pub use timeline::{Batches, Source, Trace, BACKFILL_TAIL_SECS};
