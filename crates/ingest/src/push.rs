//! The trace push pipeline, one service every receiver calls (OTLP/gRPC, OTLP/HTTP, Zipkin):
//! inflate and decode the body (on the blocking pool when it is large), validate span by span,
//! hand the valid spans to a [`TraceSink`], and sum up what was refused for the client's partial
//! success. The sink is where the deployment differs: in `all` it is the live store behind the
//! WAL; a distributor's sink will be the log producer. The acknowledgement waits for the sink
//! either way, so nothing is acknowledged that the sink did not make durable.

use std::sync::Arc;

use andante_model::{ErrorKind, TenantId};
use bytes::Bytes;
use futures::future::BoxFuture;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::{
    check_split_bytes, decode_otlp_json, decode_otlp_protobuf, decode_zipkin_json, decompress_body,
    encode_by_trace, split_protobuf, validate, EncodedFragment, Encoding, IngestError,
    RefusalReason, Validated, ValidationLimits,
};

/// Bodies above this are decoded on the blocking pool, so a large batch never stalls the
/// runtime threads that serve other requests.
const INLINE_DECODE_BYTES: usize = 128 * 1024;

/// How a push body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Protobuf,
    Json,
    Zipkin,
}

/// What a sink took: spans it refused (a per-tenant limit) are counted and named, not errors.
#[derive(Debug, Default)]
pub struct SinkOutcome {
    pub refused_spans: usize,
    /// Why, naming the limit; empty when nothing was refused.
    pub message: String,
}

/// A push the sink did not take at all; `message` is fit for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushFailure {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<IngestError> for PushFailure {
    fn from(error: IngestError) -> Self {
        PushFailure {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

/// Where validated spans go. `push` resolves only once the spans are durable (or refused).
pub trait TraceSink: Send + Sync + 'static {
    /// `fragments` hold one trace each (`split_by_trace` or `split_protobuf`).
    fn push<'a>(
        &'a self,
        tenant: &'a TenantId,
        fragments: Vec<EncodedFragment>,
        request_bytes: u64,
    ) -> BoxFuture<'a, Result<SinkOutcome, PushFailure>>;

    /// Counts spans refused before they reached the sink (`andante_discarded_spans_total`).
    fn count_refused(&self, tenant: &TenantId, reason: RefusalReason, spans: usize);
}

/// What a push accepted and refused, over validation and the sink's limits together.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushSummary {
    pub rejected_spans: usize,
    pub message: String,
}

impl PushSummary {
    /// The OTLP response: `partial_success` only when something was refused.
    pub fn into_response(self) -> ExportTraceServiceResponse {
        let partial_success = (self.rejected_spans > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: self.rejected_spans as i64,
            error_message: self.message,
        });
        ExportTraceServiceResponse { partial_success }
    }
}

/// The pipeline's settings and its sink; cheap to clone.
#[derive(Clone)]
pub struct PushService {
    sink: Arc<dyn TraceSink>,
    max_request_bytes: usize,
    validation: ValidationLimits,
}

impl PushService {
    pub fn new(
        sink: Arc<dyn TraceSink>,
        max_request_bytes: usize,
        validation: ValidationLimits,
    ) -> Self {
        PushService {
            sink,
            max_request_bytes,
            validation,
        }
    }

    /// From a raw (possibly compressed) body to durable spans.
    pub async fn push_body(
        &self,
        tenant: &TenantId,
        body: Bytes,
        encoding: Encoding,
        format: BodyFormat,
    ) -> Result<PushSummary, PushFailure> {
        let limit = self.max_request_bytes;
        let validation = self.validation;
        let body_bytes = body.len();
        let decode = move || -> Result<(Split, usize), IngestError> {
            let plain = decompress_body(&body, encoding, limit)?;
            let now = andante_model::now_unix_nanos();
            let split = match format {
                BodyFormat::Protobuf => match split_protobuf(&plain, validation, now) {
                    Some(fragments) => Split {
                        fragments,
                        summary: PushSummary::default(),
                    },
                    None => Split::of(
                        validate(decode_otlp_protobuf(&plain)?, validation, now),
                        plain.len(),
                    )?,
                },
                BodyFormat::Json => Split::of(
                    validate(decode_otlp_json(&plain)?, validation, now),
                    plain.len(),
                )?,
                BodyFormat::Zipkin => Split::of(
                    validate(decode_zipkin_json(&plain)?, validation, now),
                    plain.len(),
                )?,
            };
            Ok((split, plain.len()))
        };
        let (split, plain_bytes) = decode_off_runtime(body_bytes, decode).await?;
        self.push_split(tenant, split, plain_bytes as u64).await
    }

    async fn push_split(
        &self,
        tenant: &TenantId,
        split: Split,
        request_bytes: u64,
    ) -> Result<PushSummary, PushFailure> {
        let Split {
            fragments,
            mut summary,
        } = split;
        self.sink
            .count_refused(tenant, RefusalReason::Invalid, summary.rejected_spans);
        // Nothing valid: nothing to store, and the client hears why through the summary.
        if fragments.is_empty() {
            return Ok(summary);
        }
        let outcome = self.sink.push(tenant, fragments, request_bytes).await?;
        if outcome.refused_spans > 0 {
            summary.rejected_spans += outcome.refused_spans;
            if !summary.message.is_empty() {
                summary.message.push_str("; ");
            }
            summary.message.push_str(&outcome.message);
        }
        Ok(summary)
    }
}

/// A body's valid spans as per-trace fragments, and what validation refused.
struct Split {
    fragments: Vec<EncodedFragment>,
    summary: PushSummary,
}

impl Split {
    /// The decoding path's split: validated spans, grouped by trace and encoded, unless that
    /// would take more than `split_bytes_limit` of a body of `body_bytes`.
    fn of(validated: Validated, body_bytes: usize) -> Result<Split, IngestError> {
        check_split_bytes(&validated.request, body_bytes)?;
        let message = validated.partial_success_message();
        Ok(Split {
            fragments: encode_by_trace(validated.request),
            summary: PushSummary {
                rejected_spans: validated.rejected_spans,
                message,
            },
        })
    }
}

/// Runs `decode` inline for a small body and on the blocking pool for a large one, so that a
/// large batch never stalls the runtime threads serving other requests.
pub(crate) async fn decode_off_runtime<T: Send + 'static>(
    body_bytes: usize,
    decode: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, PushFailure> {
    if body_bytes <= INLINE_DECODE_BYTES {
        return Ok(decode()?);
    }
    tokio::task::spawn_blocking(decode)
        .await
        .map_err(|error| PushFailure {
            kind: ErrorKind::Internal,
            message: format!("decode task failed: {error}"),
        })?
        .map_err(PushFailure::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExportTraceServiceRequest;
    use parking_lot::Mutex;
    use prost::Message;

    /// Keeps what it was given, refuses past `capacity` spans as a live-trace limit would, and
    /// fails every push once `down` is set.
    #[derive(Default)]
    struct Recorder {
        pushed: Mutex<Vec<(String, usize)>>,
        refused: Mutex<Vec<(RefusalReason, usize)>>,
        capacity: usize,
        down: bool,
    }

    impl TraceSink for Recorder {
        fn push<'a>(
            &'a self,
            tenant: &'a TenantId,
            fragments: Vec<EncodedFragment>,
            _request_bytes: u64,
        ) -> BoxFuture<'a, Result<SinkOutcome, PushFailure>> {
            Box::pin(async move {
                if self.down {
                    return Err(PushFailure {
                        kind: ErrorKind::Unavailable,
                        message: "sink down".into(),
                    });
                }
                let spans: usize = fragments.iter().map(|f| f.span_count).sum();
                let kept = spans.min(self.capacity);
                self.pushed.lock().push((tenant.to_string(), kept));
                Ok(SinkOutcome {
                    refused_spans: spans - kept,
                    message: if spans > kept {
                        "over capacity".into()
                    } else {
                        String::new()
                    },
                })
            })
        }

        fn count_refused(&self, _tenant: &TenantId, reason: RefusalReason, spans: usize) {
            self.refused.lock().push((reason, spans));
        }
    }

    fn body(span_names: &[&str], trace_id: [u8; 16]) -> Bytes {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let now = andante_model::now_unix_nanos();
        let spans = span_names
            .iter()
            .enumerate()
            .map(|(i, name)| Span {
                trace_id: trace_id.to_vec(),
                span_id: vec![1, 2, 3, 4, 5, 6, 7, i as u8 + 1],
                name: (*name).to_owned(),
                start_time_unix_nano: now - 1_000_000,
                end_time_unix_nano: now,
                ..Default::default()
            })
            .collect();
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Bytes::from(request.encode_to_vec())
    }

    fn service(sink: Arc<Recorder>) -> PushService {
        PushService::new(sink, 1 << 20, ValidationLimits::default())
    }

    #[tokio::test]
    async fn valid_spans_reach_the_sink_and_invalid_ones_are_summed_up() {
        let sink = Arc::new(Recorder {
            capacity: 10,
            ..Default::default()
        });
        let tenant = TenantId::new("team-a").unwrap();
        let summary = service(sink.clone())
            .push_body(
                &tenant,
                body(&["a", "b"], [7; 16]),
                Encoding::Identity,
                BodyFormat::Protobuf,
            )
            .await
            .unwrap();
        assert_eq!(summary, PushSummary::default());
        assert_eq!(*sink.pushed.lock(), vec![("team-a".to_owned(), 2)]);

        // An all-zero trace ID is invalid: the span is refused, counted, and never pushed.
        let summary = service(sink.clone())
            .push_body(
                &tenant,
                body(&["c"], [0; 16]),
                Encoding::Identity,
                BodyFormat::Protobuf,
            )
            .await
            .unwrap();
        assert_eq!(summary.rejected_spans, 1);
        assert!(!summary.message.is_empty());
        assert_eq!(sink.pushed.lock().len(), 1);
        assert!(sink.refused.lock().contains(&(RefusalReason::Invalid, 1)));
        assert_eq!(
            summary
                .into_response()
                .partial_success
                .unwrap()
                .rejected_spans,
            1
        );
    }

    #[tokio::test]
    async fn the_sinks_refusals_join_the_summary_and_its_failure_is_the_pushs() {
        let sink = Arc::new(Recorder {
            capacity: 1,
            ..Default::default()
        });
        let tenant = TenantId::new("team-a").unwrap();
        let summary = service(sink)
            .push_body(
                &tenant,
                body(&["a", "b", "c"], [7; 16]),
                Encoding::Identity,
                BodyFormat::Protobuf,
            )
            .await
            .unwrap();
        assert_eq!(summary.rejected_spans, 2);
        assert_eq!(summary.message, "over capacity");

        let down = Arc::new(Recorder {
            down: true,
            ..Default::default()
        });
        let failure = service(down)
            .push_body(
                &tenant,
                body(&["a"], [7; 16]),
                Encoding::Identity,
                BodyFormat::Protobuf,
            )
            .await
            .unwrap_err();
        assert_eq!(failure.kind, ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn a_body_that_does_not_decode_is_a_bad_request() {
        let sink = Arc::new(Recorder::default());
        let tenant = TenantId::new("team-a").unwrap();
        let failure = service(sink.clone())
            .push_body(
                &tenant,
                Bytes::from_static(b"{not json"),
                Encoding::Identity,
                BodyFormat::Json,
            )
            .await
            .unwrap_err();
        assert_eq!(failure.kind, ErrorKind::BadRequest);
        assert!(sink.pushed.lock().is_empty());
    }
}
