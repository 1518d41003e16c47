//! OTLP/gRPC `TraceService/Export`. Served through a raw-bytes codec rather than the generated
//! server so that a body that fails to decode is answered `InvalidArgument` with the decoder's
//! message (the prost codec would say `Internal`), and decoding shares the HTTP pipeline.

use std::convert::Infallible;
use std::task::{Context, Poll};

use andante_ingest::Encoding;
use axum::http::HeaderMap;
use bytes::{Buf, BufMut, Bytes};
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status};

use crate::ingest_http::{push_body, BodyFormat};
use crate::tenant::{push_tenant, ORG_ID_HEADER};
use crate::SharedState;

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Clone, Default)]
struct RawCodec;
struct RawDecoder;
struct ResponseEncoder;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let mut bytes = Vec::with_capacity(item.encoded_len());
        item.encode(&mut bytes)
            .map_err(|error| Status::internal(error.to_string()))?;
        buf.put_slice(&bytes);
        Ok(())
    }
}

/// The OTLP `TraceService` as a tower service for `tonic::transport::Server`.
#[derive(Clone)]
pub struct TraceServiceServer {
    state: SharedState,
}

pub fn trace_service(state: SharedState) -> TraceServiceServer {
    TraceServiceServer { state }
}

impl tonic::server::NamedService for TraceServiceServer {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

#[derive(Clone)]
struct ExportMethod {
    state: SharedState,
}

impl tonic::server::UnaryService<Bytes> for ExportMethod {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<'static, Result<Response<Self::Response>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let mut headers = HeaderMap::new();
            for value in request.metadata().get_all(ORG_ID_HEADER).iter() {
                if let Ok(text) = value.to_str() {
                    if let Ok(header) = text.parse() {
                        headers.append(ORG_ID_HEADER, header);
                    }
                }
            }
            let to_status = |error: crate::ApiError| Status::new(error.grpc_code(), error.message);
            let tenant =
                push_tenant(&headers, state.config.multitenancy_enabled).map_err(to_status)?;
            // gzip was already undone by tonic's transport compression.
            let summary = push_body(
                &state,
                &tenant,
                request.into_inner(),
                Encoding::Identity,
                BodyFormat::Protobuf,
            )
            .await
            .map_err(to_status)?;
            Ok(Response::new(summary.into_response()))
        })
    }
}

impl<B> tower::Service<http::Request<B>> for TraceServiceServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(
                async move { Ok(Status::unimplemented("unknown method").into_http()) },
            );
        }
        let state = self.state.clone();
        let max_bytes = state.config.max_request_bytes;
        let mut gzip = tonic::codec::EnabledCompressionEncodings::default();
        gzip.enable(CompressionEncoding::Gzip);
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(max_bytes), None);
            Ok(grpc.unary(ExportMethod { state }, request).await)
        })
    }
}
