//! Tempo's `tempopb.StreamingQuerier` gRPC service on the HTTP API port (Tempo's
//! `stream_over_http_enabled`), which Grafana's Tempo data source uses for search when streaming
//! is on: `Search`, `SearchTags(V2)`, `SearchTagValues(V2)`, `MetricsQueryRange`,
//! `MetricsQueryInstant`.
//!
//! Each method turns its request into the same parameters the HTTP handler reads and calls the
//! same code, so both transports answer alike. `Search` streams: every batch of newly matched
//! traces goes out as soon as it is final (Grafana appends traces and replaces `metrics`, so each
//! message carries only new traces and the running totals); a closed stream aborts the search.
//! The other methods answer with one message, which is a complete result.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use andante_query::search::{SearchMetrics as QueryMetrics, TraceSummary};
use andante_traceql::metrics::LabelValue;
use axum::http::HeaderMap;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::metrics_query;
use crate::search::{self, value_text, value_type};
use crate::tempopb::*;
use crate::tenant::ORG_ID_HEADER;
use crate::{ApiError, SharedState};

pub const SERVICE: &str = "tempopb.StreamingQuerier";

type MessageStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn status(error: ApiError) -> Status {
    Status::new(error.grpc_code(), error.message)
}

/// `X-Scope-OrgID` from gRPC metadata (Grafana sends it lower-cased, sometimes twice).
fn headers<T>(request: &Request<T>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in request.metadata().get_all(ORG_ID_HEADER).iter() {
        if let Ok(header) = value.to_str().unwrap_or_default().parse() {
            headers.append(ORG_ID_HEADER, header);
        }
    }
    headers
}

fn params(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs
        .iter()
        .filter(|(_, value)| !value.is_empty() && value != "0")
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect()
}

fn trace_metadata(trace: &TraceSummary) -> TraceSearchMetadata {
    let span_sets: Vec<SpanSet> = trace
        .spansets
        .iter()
        .map(|spanset| SpanSet {
            spans: spanset
                .spans
                .iter()
                .map(|span| Span {
                    span_id: hex::encode(&span.span_id),
                    name: span.name.clone(),
                    start_time_unix_nano: span.start_unix_nanos,
                    duration_nanos: span.duration_nanos,
                    attributes: key_values(&span.attributes),
                })
                .collect(),
            matched: spanset.matched as u32,
            attributes: key_values(&spanset.attributes),
        })
        .collect();
    TraceSearchMetadata {
        trace_id: hex::encode(trace.trace_id.0),
        root_service_name: trace.root_service_name.clone(),
        root_trace_name: trace.root_trace_name.clone(),
        start_time_unix_nano: trace.start_unix_nanos,
        duration_ms: (trace.duration_nanos / 1_000_000) as u32,
        span_set: span_sets.first().cloned(),
        span_sets,
        service_stats: trace
            .service_stats
            .iter()
            .map(|(service, stats)| {
                (
                    service.clone(),
                    ServiceStats {
                        span_count: stats.span_count as u32,
                        error_count: stats.error_count as u32,
                    },
                )
            })
            .collect(),
    }
}

fn search_metrics(metrics: &QueryMetrics) -> SearchMetrics {
    SearchMetrics {
        inspected_traces: metrics.inspected_traces as u32,
        inspected_bytes: metrics.inspected_bytes,
        total_blocks: metrics.total_blocks as u32,
        completed_jobs: metrics.completed_jobs as u32,
        total_jobs: metrics.total_jobs as u32,
        total_block_bytes: metrics.total_block_bytes,
        inspected_spans: metrics.inspected_spans,
    }
}

async fn search(
    state: SharedState,
    request: Request<SearchRequest>,
) -> Result<MessageStream<Vec<u8>>, Status> {
    let headers = headers(&request);
    let body = request.into_inner();
    let tags = body
        .tags
        .iter()
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect::<Vec<_>>()
        .join(" ");
    let params = params(&[
        ("q", body.query.clone()),
        ("tags", tags),
        (
            "minDuration",
            if body.min_duration_ms > 0 {
                format!("{}ms", body.min_duration_ms)
            } else {
                String::new()
            },
        ),
        (
            "maxDuration",
            if body.max_duration_ms > 0 {
                format!("{}ms", body.max_duration_ms)
            } else {
                String::new()
            },
        ),
        ("limit", body.limit.to_string()),
        ("spss", body.spans_per_span_set.to_string()),
        ("start", body.start.to_string()),
        ("end", body.end.to_string()),
    ]);
    let tenants = crate::tenant::query_tenants(&headers, state.config.multitenancy_enabled)
        .map_err(status)?;
    let search_request = search::search_request(&params, state.config.query).map_err(status)?;
    let stream = search::search_progressively(state, tenants, search_request)
        .flat_map(|progress| {
            let messages = match progress {
                search::Progress::Found(traces, metrics) => vec![Ok(SearchResponse {
                    traces: traces.iter().map(trace_metadata).collect(),
                    metrics: Some(search_metrics(&metrics)),
                })],
                // The last message carries the final totals; its traces were all sent
                // already. A partial answer then ends the stream with an error status naming
                // what was left undone, so Grafana shows it instead of an unqualified
                // (possibly empty) result.
                search::Progress::Done(result) => {
                    let last = Ok(SearchResponse {
                        traces: Vec::new(),
                        metrics: Some(search_metrics(&result.metrics)),
                    });
                    let end = result.partial_message.as_ref().map(|message| {
                        let code = if result.timed_out {
                            tonic::Code::DeadlineExceeded
                        } else if result.bytes_exhausted {
                            tonic::Code::ResourceExhausted
                        } else {
                            tonic::Code::Unavailable
                        };
                        let matched = result.traces.len();
                        Err(Status::new(
                            code,
                            format!("search incomplete: {message} ({matched} traces sent)"),
                        ))
                    });
                    std::iter::once(last).chain(end).collect()
                }
            };
            futures::stream::iter(messages)
        })
        .map(|item: Result<SearchResponse, Status>| {
            item.map(|message| prost::Message::encode_to_vec(&message))
        });
    Ok(Box::pin(stream))
}

fn once<T: Send + 'static>(message: T) -> MessageStream<T> {
    Box::pin(futures::stream::once(async move { Ok(message) }))
}

async fn search_tags(
    state: SharedState,
    request: Request<SearchTagsRequest>,
    v2: bool,
) -> Result<MessageStream<Vec<u8>>, Status> {
    let headers = headers(&request);
    let body = request.into_inner();
    let params = params(&[
        ("scope", body.scope),
        ("start", body.start.to_string()),
        ("end", body.end.to_string()),
    ]);
    let (scopes, _) = search::tag_names(&state, &headers, &params)
        .await
        .map_err(status)?;
    let encoded = if v2 {
        let scopes = scopes
            .into_iter()
            .map(|(name, tags)| SearchTagsV2Scope {
                name: name.to_owned(),
                tags,
            })
            .collect();
        prost::Message::encode_to_vec(&SearchTagsV2Response { scopes })
    } else {
        let mut names: Vec<String> = scopes
            .into_iter()
            .filter(|(scope, _)| *scope != "intrinsic")
            .flat_map(|(_, names)| names)
            .collect();
        names.sort();
        names.dedup();
        prost::Message::encode_to_vec(&SearchTagsResponse { tag_names: names })
    };
    Ok(once(encoded))
}

async fn search_tag_values(
    state: SharedState,
    request: Request<SearchTagValuesRequest>,
    v2: bool,
) -> Result<MessageStream<Vec<u8>>, Status> {
    let headers = headers(&request);
    let body = request.into_inner();
    let params = params(&[
        ("q", body.query),
        ("start", body.start.to_string()),
        ("end", body.end.to_string()),
    ]);
    let field = if v2 {
        search::v2_tag_field(&body.tag_name).map_err(status)?
    } else {
        search::v1_tag_field(&body.tag_name)
    };
    let (values, _) = search::tag_values(&state, &headers, field, &params)
        .await
        .map_err(status)?;
    let encoded = if v2 {
        let tag_values = values
            .iter()
            .filter(|value| !value_text(value).is_empty())
            .map(|value| TagValue {
                r#type: value_type(value).to_owned(),
                value: value_text(value),
            })
            .collect();
        prost::Message::encode_to_vec(&SearchTagValuesV2Response { tag_values })
    } else {
        prost::Message::encode_to_vec(&SearchTagValuesResponse {
            tag_values: search::v1_texts(&values),
        })
    };
    Ok(once(encoded))
}

fn partial(result: &andante_query::metrics::MetricsResult) -> (i32, String) {
    match &result.partial_message {
        Some(message) => (PartialStatus::Partial as i32, message.clone()),
        None => (PartialStatus::Complete as i32, String::new()),
    }
}

async fn metrics_range(
    state: SharedState,
    request: Request<QueryRangeRequest>,
) -> Result<MessageStream<Vec<u8>>, Status> {
    let headers = headers(&request);
    let body = request.into_inner();
    let params = params(&[
        ("q", body.query),
        ("start", body.start.to_string()),
        ("end", body.end.to_string()),
        (
            "step",
            if body.step > 0 {
                format!("{}ns", body.step)
            } else {
                String::new()
            },
        ),
        ("exemplars", body.exemplars.to_string()),
    ]);
    let (result, intervals) = metrics_query::run(&state, &headers, &params, false)
        .await
        .map_err(status)?;
    let series = result
        .series
        .iter()
        .map(|series| TimeSeries {
            labels: series
                .labels
                .iter()
                .map(|(name, value)| label(name, value))
                .collect(),
            samples: series
                .samples
                .iter()
                .enumerate()
                .filter_map(|(k, sample)| {
                    sample.map(|value| Sample {
                        value,
                        timestamp_ms: intervals.end_millis(k),
                    })
                })
                .collect(),
            exemplars: series
                .exemplars
                .iter()
                .map(|e| Exemplar {
                    labels: vec![label(
                        "trace:id",
                        &LabelValue::String(hex::encode(e.trace_id)),
                    )],
                    value: e.value,
                    timestamp_ms: e.timestamp_ms,
                })
                .collect(),
        })
        .collect();
    let (status_code, message) = partial(&result);
    Ok(once(prost::Message::encode_to_vec(&QueryRangeResponse {
        series,
        metrics: Some(search_metrics(&result.stats)),
        status: status_code,
        message,
    })))
}

async fn metrics_instant(
    state: SharedState,
    request: Request<QueryInstantRequest>,
) -> Result<MessageStream<Vec<u8>>, Status> {
    let headers = headers(&request);
    let body = request.into_inner();
    let params = params(&[
        ("q", body.query),
        ("start", body.start.to_string()),
        ("end", body.end.to_string()),
    ]);
    let (result, _) = metrics_query::run(&state, &headers, &params, true)
        .await
        .map_err(status)?;
    let series = result
        .series
        .iter()
        .filter_map(|series| {
            let value = series.samples.first().copied().flatten()?;
            Some(InstantSeries {
                labels: series
                    .labels
                    .iter()
                    .map(|(name, value)| label(name, value))
                    .collect(),
                value,
            })
        })
        .collect();
    let (status_code, message) = partial(&result);
    Ok(once(prost::Message::encode_to_vec(&QueryInstantResponse {
        series,
        metrics: Some(search_metrics(&result.stats)),
        status: status_code,
        message,
    })))
}

/// Decodes requests with prost; responses are already-encoded protobuf bytes, so one codec
/// serves every method.
struct Codec<Request>(std::marker::PhantomData<Request>);
struct RequestDecoder<Request>(std::marker::PhantomData<Request>);
struct BytesEncoder;

impl<Request: prost::Message + Default + Send + 'static> tonic::codec::Codec for Codec<Request> {
    type Encode = Vec<u8>;
    type Decode = Request;
    type Encoder = BytesEncoder;
    type Decoder = RequestDecoder<Request>;
    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }
    fn decoder(&mut self) -> RequestDecoder<Request> {
        RequestDecoder(std::marker::PhantomData)
    }
}

impl<Request: prost::Message + Default + Send + 'static> tonic::codec::Decoder
    for RequestDecoder<Request>
{
    type Item = Request;
    type Error = Status;
    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Request>, Status> {
        Request::decode(buf)
            .map(Some)
            .map_err(|error| Status::invalid_argument(format!("invalid request message: {error}")))
    }
}

impl tonic::codec::Encoder for BytesEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

type Handler<R> =
    fn(SharedState, Request<R>) -> BoxFuture<'static, Result<MessageStream<Vec<u8>>, Status>>;

struct Method<R> {
    state: SharedState,
    handler: Handler<R>,
}

impl<R: Send + 'static> tonic::server::ServerStreamingService<R> for Method<R> {
    type Response = Vec<u8>;
    type ResponseStream = MessageStream<Vec<u8>>;
    type Future = BoxFuture<'static, Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<R>) -> Self::Future {
        let future = (self.handler)(self.state.clone(), request);
        Box::pin(async move { future.await.map(Response::new) })
    }
}

async fn serve<R, B>(
    state: SharedState,
    request: http::Request<B>,
    handler: Handler<R>,
) -> http::Response<tonic::body::Body>
where
    R: prost::Message + Default + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    let mut grpc = tonic::server::Grpc::new(Codec::<R>(std::marker::PhantomData));
    grpc.server_streaming(Method { state, handler }, request)
        .await
}

/// The service, mounted on the HTTP router under `/tempopb.StreamingQuerier/`.
#[derive(Clone)]
pub struct StreamingQuerier {
    state: SharedState,
}

pub fn streaming_querier(state: SharedState) -> StreamingQuerier {
    StreamingQuerier { state }
}

impl<B> tower::Service<http::Request<B>> for StreamingQuerier
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
        let state = self.state.clone();
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        Box::pin(async move {
            Ok(match method.as_str() {
                "Search" => {
                    serve::<SearchRequest, B>(state, request, |s, r| Box::pin(search(s, r))).await
                }
                "SearchTags" => {
                    serve::<SearchTagsRequest, B>(state, request, |s, r| {
                        Box::pin(search_tags(s, r, false))
                    })
                    .await
                }
                "SearchTagsV2" => {
                    serve::<SearchTagsRequest, B>(state, request, |s, r| {
                        Box::pin(search_tags(s, r, true))
                    })
                    .await
                }
                "SearchTagValues" => {
                    serve::<SearchTagValuesRequest, B>(state, request, |s, r| {
                        Box::pin(search_tag_values(s, r, false))
                    })
                    .await
                }
                "SearchTagValuesV2" => {
                    serve::<SearchTagValuesRequest, B>(state, request, |s, r| {
                        Box::pin(search_tag_values(s, r, true))
                    })
                    .await
                }
                "MetricsQueryRange" => {
                    serve::<QueryRangeRequest, B>(state, request, |s, r| {
                        Box::pin(metrics_range(s, r))
                    })
                    .await
                }
                "MetricsQueryInstant" => {
                    serve::<QueryInstantRequest, B>(state, request, |s, r| {
                        Box::pin(metrics_instant(s, r))
                    })
                    .await
                }
                other => {
                    Status::unimplemented(format!("method `{other}` is not part of {SERVICE}"))
                        .into_http()
                }
            })
        })
    }
}
