//! `andante gen`: realistic OTLP trace traffic for demos, tests and benchmarks, sendable to any
//! OTLP endpoint (Andante, Tempo, a Collector). It models a small shop: an instrumented
//! microservice topology with HTTP, gRPC, database, cache and messaging calls following the
//! OpenTelemetry semantic conventions, Kubernetes resource attributes, errors with exception
//! events, producer→consumer links and an uninstrumented external payment API. A seed makes the
//! trace shapes and IDs reproducible.

mod model;
mod send;

pub use model::{Topology, TraceBuilder};
pub use send::{run, GenArgs, GenReport, Protocol};
