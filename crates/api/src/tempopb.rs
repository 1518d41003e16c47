//! The few messages of Tempo's `tempopb` package that trace-by-ID returns as protobuf, with
//! Tempo's field numbers (`pkg/tempopb/tempo.proto`), and google.rpc.Status for OTLP/HTTP error
//! bodies. Hand-declared with prost derives: five fields do not justify a protoc build step.

use andante_model::otlp::trace::v1::ResourceSpans;

/// `tempopb.Trace`: the v1 trace-by-ID body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdMetrics {
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}

/// `tempopb.PartialStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PartialStatus {
    Complete = 0,
    Partial = 1,
}

/// `tempopb.TraceByIDResponse`: the v2 trace-by-ID body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<Trace>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    #[prost(enumeration = "PartialStatus", tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}
