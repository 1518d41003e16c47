//! OTLP/gRPC `TraceService/Export` and `MetricsService/Export`. Served through a raw-bytes codec
//! rather than the generated servers so that a body that fails to decode is answered
//! `InvalidArgument` with the decoder's message (the prost codec would say `Internal`), and
//! decoding shares the HTTP pipelines. One generic server; each signal is an [`Export`].

use std::convert::Infallible;
use std::marker::PhantomData;
use std::task::{Context, Poll};

use andante_ingest::Encoding;
use andante_model::TenantId;
use axum::http::HeaderMap;
use bytes::{Buf, BufMut, Bytes};
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Request, Response, Status};

use crate::ingest_http::{push_body, BodyFormat};
use crate::ingest_metrics::export_otlp_metrics;
use crate::tenant::{push_tenant, ORG_ID_HEADER};
use crate::{ApiError, SharedState};

/// One OTLP signal's `Export` method: where it is served and what it does with a body.
pub trait Export: Send + Sync + 'static {
    const SERVICE: &'static str;
    const PATH: &'static str;
    type Response: Message + Default + Send + 'static;
    fn export(
        state: SharedState,
        tenant: TenantId,
        headers: HeaderMap,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Self::Response, ApiError>>;
}

pub struct Traces;
pub struct Metrics;

impl Export for Traces {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    const PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    type Response = ExportTraceServiceResponse;
    fn export(
        state: SharedState,
        tenant: TenantId,
        _headers: HeaderMap,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Self::Response, ApiError>> {
        Box::pin(async move {
            // gzip was already undone by tonic's transport compression.
            let summary = push_body(
                &state,
                &tenant,
                body,
                Encoding::Identity,
                BodyFormat::Protobuf,
            )
            .await?;
            Ok(summary.into_response())
        })
    }
}

impl Export for Metrics {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    type Response = ExportMetricsServiceResponse;
    fn export(
        state: SharedState,
        tenant: TenantId,
        headers: HeaderMap,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Self::Response, ApiError>> {
        Box::pin(async move {
            let authorization = headers.get(axum::http::header::AUTHORIZATION).cloned();
            export_otlp_metrics(&state, &tenant, authorization, body).await
        })
    }
}

struct RawCodec<R>(PhantomData<R>);
struct RawDecoder;
struct ResponseEncoder<R>(PhantomData<R>);

impl<R> Default for RawCodec<R> {
    fn default() -> Self {
        RawCodec(PhantomData)
    }
}

impl<R: Message + Send + 'static> Codec for RawCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ResponseEncoder<R>;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
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

impl<R: Message + Send + 'static> Encoder for ResponseEncoder<R> {
    type Item = R;
    type Error = Status;
    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let mut bytes = Vec::with_capacity(item.encoded_len());
        item.encode(&mut bytes)
            .map_err(|error| Status::internal(error.to_string()))?;
        buf.put_slice(&bytes);
        Ok(())
    }
}

/// An OTLP `*Service` as a tower service for tonic's router.
pub struct ExportServer<K> {
    state: SharedState,
    kind: PhantomData<K>,
}

impl<K> Clone for ExportServer<K> {
    fn clone(&self) -> Self {
        ExportServer {
            state: self.state.clone(),
            kind: PhantomData,
        }
    }
}

pub fn trace_service(state: SharedState) -> ExportServer<Traces> {
    ExportServer {
        state,
        kind: PhantomData,
    }
}

pub fn metrics_service(state: SharedState) -> ExportServer<Metrics> {
    ExportServer {
        state,
        kind: PhantomData,
    }
}

impl<K: Export> tonic::server::NamedService for ExportServer<K> {
    const NAME: &'static str = K::SERVICE;
}

struct ExportMethod<K> {
    state: SharedState,
    kind: PhantomData<K>,
}

impl<K: Export> tonic::server::UnaryService<Bytes> for ExportMethod<K> {
    type Response = K::Response;
    type Future = BoxFuture<'static, Result<Response<Self::Response>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let mut headers = HeaderMap::new();
            for name in [ORG_ID_HEADER, "authorization"] {
                for value in request.metadata().get_all(name).iter() {
                    if let Ok(text) = value.to_str() {
                        if let Ok(header) = text.parse() {
                            headers.append(name, header);
                        }
                    }
                }
            }
            let to_status = |error: ApiError| Status::new(error.grpc_code(), error.message);
            let tenant =
                push_tenant(&headers, state.config.multitenancy_enabled).map_err(to_status)?;
            let response = K::export(state, tenant, headers, request.into_inner())
                .await
                .map_err(to_status)?;
            Ok(Response::new(response))
        })
    }
}

impl<K: Export, B> tower::Service<http::Request<B>> for ExportServer<K>
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
        if request.uri().path() != K::PATH {
            return Box::pin(
                async move { Ok(Status::unimplemented("unknown method").into_http()) },
            );
        }
        let state = self.state.clone();
        let max_bytes = state.config.max_request_bytes;
        let mut gzip = tonic::codec::EnabledCompressionEncodings::default();
        gzip.enable(CompressionEncoding::Gzip);
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec::<K::Response>::default())
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(max_bytes), None);
            let method = ExportMethod::<K> {
                state,
                kind: PhantomData,
            };
            Ok(grpc.unary(method, request).await)
        })
    }
}
