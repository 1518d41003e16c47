//! The distributor: turns request bodies of every supported protocol (OTLP protobuf, OTLP JSON,
//! Zipkin v2 JSON; gzip or plain) into one validated OTLP `ExportTraceServiceRequest`, refusing
//! bad spans one by one, hands them to a sink through the one push service every receiver calls
//! (`push`), and splits a batch into per-trace fragments for the live store. It also holds the
//! per-tenant ingestion limiter. No sockets here: the API crate owns the transports and calls
//! into this crate, so every protocol shares one set of rules.

mod body;
mod error;
mod limits;
pub mod metrics;
mod otlp;
pub mod otlp_metrics;
mod otlp_metrics_json;
mod push;
mod raw_split;
pub mod sample_push;
mod split;
mod validate;
mod zipkin;

pub use body::{decompress_body, Encoding};
pub use error::IngestError;
pub use limits::{IngestLimits, RateLimiter, RefusalReason};
pub use otlp::{decode_otlp_json, decode_otlp_protobuf};
pub use push::{BodyFormat, PushFailure, PushService, PushSummary, SinkOutcome, TraceSink};
pub use raw_split::split_protobuf;
pub use sample_push::SamplePushService;
pub use split::{
    check_split_bytes, encode_by_trace, encode_resource_spans, split_by_trace, split_bytes_limit,
    EncodedFragment, TraceFragment,
};
pub use validate::{validate, Validated, ValidationLimits};
pub use zipkin::decode_zipkin_json;

pub use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
