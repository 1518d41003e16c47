//! OTLP body decoding. Protobuf goes through prost; JSON through the serde derives that
//! `opentelemetry-proto` ships, which follow the OTLP/JSON mapping (hex IDs, 64-bit integers as
//! strings or numbers, lowerCamelCase names). Errors keep the decoder's own position text so a
//! client can find the offending byte.

use prost::Message;

use crate::{ExportTraceServiceRequest, IngestError};

pub fn decode_otlp_protobuf(body: &[u8]) -> Result<ExportTraceServiceRequest, IngestError> {
    ExportTraceServiceRequest::decode(body).map_err(|error| IngestError::Malformed {
        format: "OTLP protobuf",
        message: error.to_string(),
    })
}

pub fn decode_otlp_json(body: &[u8]) -> Result<ExportTraceServiceRequest, IngestError> {
    serde_json::from_slice(body).map_err(|error| IngestError::Malformed {
        format: "OTLP JSON",
        message: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_hex_ids_and_string_integers() {
        let body = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c",
            "spanId":"eee19b7ec3c1b174","name":"op","kind":2,"startTimeUnixNano":"1544712660000000000",
            "endTimeUnixNano":1544712661000000000,"attributes":[{"key":"n","value":{"intValue":"42"}}]}]}]}]}"#;
        let request = decode_otlp_json(body).expect("valid OTLP JSON");
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            hex::encode(&span.trace_id),
            "5b8efff798038103d269b633813fc60c"
        );
        assert_eq!(span.kind, 2);
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            1_000_000_000
        );
    }

    #[test]
    fn malformed_bodies_say_where() {
        let error = decode_otlp_json(b"{\"resourceSpans\": [}").expect_err("bad JSON");
        assert!(error.to_string().contains("column"), "{error}");
        assert!(decode_otlp_protobuf(&[0xff, 0xff, 0xff]).is_err());
    }
}
