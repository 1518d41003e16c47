//! Span validation. Each span is judged on its own: a bad span is removed and counted, its
//! neighbours go on. The first reason is kept for the OTLP partial-success message, so the client
//! sees why, and a count per batch feeds `andante_discarded_spans_total{reason="invalid"}`.

use andante_model::{SpanId, TraceId};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::ExportTraceServiceRequest;

/// Limits applied span by span.
#[derive(Debug, Clone, Copy)]
pub struct ValidationLimits {
    /// The largest attribute (key plus encoded value) a span, resource or event may carry.
    pub max_attribute_bytes: usize,
    /// How far past the time of receipt a span may start or end. A span dated further ahead is
    /// a broken clock or a hostile client; kept, it would stretch its block's time range and
    /// pin the block (and every sane trace in it) past retention.
    pub max_future_nanos: u64,
}

impl Default for ValidationLimits {
    fn default() -> Self {
        ValidationLimits {
            max_attribute_bytes: 64 * 1024,
            max_future_nanos: 3_600_000_000_000,
        }
    }
}

/// A request with its invalid spans removed, and the account of what was removed.
#[derive(Debug, Default)]
pub struct Validated {
    pub request: ExportTraceServiceRequest,
    pub accepted_spans: usize,
    pub rejected_spans: usize,
    /// The reason for the first rejected span, with its position in the batch.
    pub first_error: Option<String>,
}

impl Validated {
    /// The OTLP partial-success message: empty when everything was accepted.
    pub fn partial_success_message(&self) -> String {
        match &self.first_error {
            None => String::new(),
            Some(first) => format!(
                "rejected {} invalid span(s); first: {first}",
                self.rejected_spans
            ),
        }
    }
}

/// Removes invalid spans; `now_unix_nanos` is the time of receipt, against which span times
/// are judged.
pub fn validate(
    mut request: ExportTraceServiceRequest,
    limits: ValidationLimits,
    now_unix_nanos: u64,
) -> Validated {
    let mut result = Validated::default();
    let mut position = 0usize;
    for resource_spans in &mut request.resource_spans {
        let resource_error = resource_spans
            .resource
            .as_ref()
            .and_then(|resource| oversized_attribute(&resource.attributes, limits));
        for scope_spans in &mut resource_spans.scope_spans {
            scope_spans.spans.retain_mut(|span| {
                position += 1;
                let verdict = match &resource_error {
                    Some(error) => Err(format!("resource {error}")),
                    None => check_span(span, limits, now_unix_nanos),
                };
                match verdict {
                    Ok(()) => {
                        result.accepted_spans += 1;
                        true
                    }
                    Err(reason) => {
                        result.rejected_spans += 1;
                        result
                            .first_error
                            .get_or_insert_with(|| format!("span {position}: {reason}"));
                        false
                    }
                }
            });
        }
        resource_spans
            .scope_spans
            .retain(|scope_spans| !scope_spans.spans.is_empty());
    }
    request
        .resource_spans
        .retain(|resource_spans| !resource_spans.scope_spans.is_empty());
    result.request = request;
    result
}

fn check_span(
    span: &mut Span,
    limits: ValidationLimits,
    now_unix_nanos: u64,
) -> Result<(), String> {
    TraceId::from_bytes(&span.trace_id).map_err(|error| error.to_string())?;
    SpanId::from_bytes(&span.span_id).map_err(|error| error.to_string())?;
    // Some SDKs send eight zero bytes for "no parent"; OTLP means the same by an empty field.
    if !span.parent_span_id.is_empty() {
        if span.parent_span_id.iter().all(|byte| *byte == 0) {
            span.parent_span_id.clear();
        } else {
            SpanId::from_bytes(&span.parent_span_id).map_err(|error| format!("parent {error}"))?;
        }
    }
    if span.start_time_unix_nano == 0 {
        return Err("start time is zero".to_owned());
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(format!(
            "end time {} is before start time {}",
            span.end_time_unix_nano, span.start_time_unix_nano
        ));
    }
    let latest = now_unix_nanos.saturating_add(limits.max_future_nanos);
    if span.end_time_unix_nano > latest {
        return Err(format!(
            "end time {} is {} s after the time of receipt, over the limit of {} s (`limits.max-span-future`)",
            span.end_time_unix_nano,
            (span.end_time_unix_nano - now_unix_nanos) / 1_000_000_000,
            limits.max_future_nanos / 1_000_000_000
        ));
    }
    if let Some(error) = oversized_attribute(&span.attributes, limits) {
        return Err(error);
    }
    for event in &span.events {
        if let Some(error) = oversized_attribute(&event.attributes, limits) {
            return Err(format!("event `{}` {error}", event.name));
        }
    }
    for link in &span.links {
        TraceId::from_bytes(&link.trace_id).map_err(|error| format!("link {error}"))?;
        SpanId::from_bytes(&link.span_id).map_err(|error| format!("link {error}"))?;
        if let Some(error) = oversized_attribute(&link.attributes, limits) {
            return Err(format!("link {error}"));
        }
    }
    Ok(())
}

fn oversized_attribute(attributes: &[KeyValue], limits: ValidationLimits) -> Option<String> {
    attributes.iter().find_map(|attribute| {
        let size = attribute.key.len() + attribute.value.as_ref().map_or(0, any_value_bytes);
        (size > limits.max_attribute_bytes).then(|| {
            format!(
                "attribute `{}` is {size} bytes, over the limit of {} (`limits.max-attribute-bytes`)",
                attribute.key, limits.max_attribute_bytes
            )
        })
    })
}

fn any_value_bytes(value: &AnyValue) -> usize {
    match &value.value {
        None => 0,
        Some(any_value::Value::StringValue(text)) => text.len(),
        Some(any_value::Value::BytesValue(bytes)) => bytes.len(),
        Some(any_value::Value::BoolValue(_)) => 1,
        Some(any_value::Value::IntValue(_)) | Some(any_value::Value::DoubleValue(_)) => 8,
        Some(any_value::Value::StringValueStrindex(_)) => 4,
        Some(any_value::Value::ArrayValue(array)) => array.values.iter().map(any_value_bytes).sum(),
        Some(any_value::Value::KvlistValue(list)) => list
            .values
            .iter()
            .map(|kv| kv.key.len() + kv.value.as_ref().map_or(0, any_value_bytes))
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    const NOW: u64 = 1_000_000;

    fn span(trace: u8, id: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: "op".into(),
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn check(mutate: impl Fn(&mut Span), expected_error: Option<&str>) {
        let mut bad = span(1, 2);
        mutate(&mut bad);
        let validated = validate(
            request(vec![span(1, 1), bad]),
            ValidationLimits {
                max_attribute_bytes: 100,
                max_future_nanos: 1_000,
            },
            NOW,
        );
        match expected_error {
            None => assert_eq!((validated.accepted_spans, validated.rejected_spans), (2, 0)),
            Some(expected) => {
                assert_eq!((validated.accepted_spans, validated.rejected_spans), (1, 1));
                let message = validated.partial_success_message();
                assert!(message.contains(expected), "`{message}` lacks `{expected}`");
                assert!(message.contains("span 2"), "{message}");
            }
        }
    }

    #[test]
    fn each_bad_span_is_refused_with_its_reason() {
        check(|_| {}, None);
        check(
            |s| s.trace_id = vec![1; 15],
            Some("trace ID must be 16 bytes, got 15"),
        );
        check(
            |s| s.trace_id = vec![0; 16],
            Some("trace ID must not be all zeros"),
        );
        check(
            |s| s.span_id = vec![],
            Some("span ID must be 8 bytes, got 0"),
        );
        check(
            |s| s.span_id = vec![0; 8],
            Some("span ID must not be all zeros"),
        );
        check(
            |s| s.parent_span_id = vec![3; 4],
            Some("parent span ID must be 8 bytes"),
        );
        check(
            |s| s.end_time_unix_nano = 5,
            Some("end time 5 is before start time 10"),
        );
        check(|s| s.start_time_unix_nano = 0, Some("start time is zero"));
        // Issue 10, finding 8: a far-future span would pin its block past retention.
        check(|s| s.end_time_unix_nano = NOW + 1_000, None);
        check(
            |s| s.end_time_unix_nano = NOW + 1_001,
            Some("over the limit of 0 s (`limits.max-span-future`)"),
        );
        check(
            |s| {
                s.start_time_unix_nano = u64::MAX;
                s.end_time_unix_nano = u64::MAX;
            },
            Some("end time 18446744073709551615 is"),
        );
        check(
            |s| {
                s.attributes.push(KeyValue {
                    key: "big".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("x".repeat(200))),
                    }),
                    ..Default::default()
                })
            },
            Some("attribute `big` is 203 bytes"),
        );
    }

    #[test]
    fn zero_parent_means_root_and_empty_containers_are_dropped() {
        let mut root = span(1, 1);
        root.parent_span_id = vec![0; 8];
        let validated = validate(request(vec![root]), ValidationLimits::default(), NOW);
        assert_eq!(validated.accepted_spans, 1);
        assert!(validated.request.resource_spans[0].scope_spans[0].spans[0]
            .parent_span_id
            .is_empty());

        let mut bad = span(1, 1);
        bad.span_id.clear();
        let validated = validate(request(vec![bad]), ValidationLimits::default(), NOW);
        assert!(validated.request.resource_spans.is_empty());
    }
}
