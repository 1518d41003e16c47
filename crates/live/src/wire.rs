//! Live-traces v1: how a live-store's held traces travel to a querier (`GET
//! /internal/live/v1/traces`, `docs/FORMAT.md`), as the encoded fragments the store keeps.
//!
//! ```text
//! u8 version (1) | u32 traces | per trace: [16] trace ID | u32 fragments |
//!   per fragment: u32 length | length bytes (one OTLP ExportTraceServiceRequest)
//! ```
//! Integers are big-endian. Decoding checks every length against what is left, so a damaged
//! answer is an error naming its position, never a panic or a huge allocation.

use andante_model::TraceId;
use bytes::{Buf, BufMut, Bytes};

/// Traces as their encoded fragments.
pub type LiveTraces = Vec<(TraceId, Vec<Bytes>)>;

pub const LIVE_TRACES_VERSION: u8 = 1;
pub const LIVE_TRACES_CONTENT_TYPE: &str = "application/vnd.andante.live-traces.v1";

/// Encodes traces as live-traces v1.
pub fn encode_live_traces(traces: &[(TraceId, Vec<Bytes>)]) -> Vec<u8> {
    let size: usize = traces
        .iter()
        .map(|(_, fragments)| 20 + fragments.iter().map(|f| 4 + f.len()).sum::<usize>())
        .sum();
    let mut out = Vec::with_capacity(5 + size);
    out.put_u8(LIVE_TRACES_VERSION);
    out.put_u32(traces.len() as u32);
    for (trace_id, fragments) in traces {
        out.put_slice(&trace_id.0);
        out.put_u32(fragments.len() as u32);
        for fragment in fragments {
            out.put_u32(fragment.len() as u32);
            out.put_slice(fragment);
        }
    }
    out
}

/// Decodes live-traces v1; fragments share `body`'s buffer.
pub fn decode_live_traces(body: Bytes) -> Result<LiveTraces, String> {
    let total = body.len();
    let mut buf = body;
    let need = |buf: &Bytes, what: &str, needed: usize| {
        if buf.remaining() < needed {
            Err(format!(
                "live traces truncated at byte {}: {what} needs {needed} more bytes, {} left",
                total - buf.remaining(),
                buf.remaining()
            ))
        } else {
            Ok(())
        }
    };
    need(&buf, "the version", 1)?;
    let version = buf.get_u8();
    if version != LIVE_TRACES_VERSION {
        return Err(format!(
            "live traces version {version} is not one this version reads ({LIVE_TRACES_VERSION})"
        ));
    }
    need(&buf, "the trace count", 4)?;
    let count = buf.get_u32() as usize;
    // Each trace takes at least 20 bytes, so a hostile count cannot reserve more than the body.
    let mut traces = Vec::with_capacity(count.min(buf.remaining() / 20));
    for _ in 0..count {
        need(&buf, "a trace header", 20)?;
        let mut id = [0u8; 16];
        buf.copy_to_slice(&mut id);
        let fragment_count = buf.get_u32() as usize;
        let mut fragments = Vec::with_capacity(fragment_count.min(buf.remaining() / 4));
        for _ in 0..fragment_count {
            need(&buf, "a fragment length", 4)?;
            let length = buf.get_u32() as usize;
            need(&buf, "a fragment", length)?;
            fragments.push(buf.split_to(length));
        }
        traces.push((TraceId(id), fragments));
    }
    if buf.has_remaining() {
        return Err(format!(
            "live traces have {} trailing bytes",
            buf.remaining()
        ));
    }
    Ok(traces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn live_traces_round_trip(traces in proptest::collection::vec(
            (any::<[u8; 16]>(), proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4)),
            0..6,
        )) {
            let traces: LiveTraces = traces
                .into_iter()
                .map(|(id, fragments)| (TraceId(id), fragments.into_iter().map(Bytes::from).collect()))
                .collect();
            let encoded = Bytes::from(encode_live_traces(&traces));
            prop_assert_eq!(decode_live_traces(encoded.clone()).unwrap(), traces);
            // Every cut short of the whole body is an error, never a panic.
            for end in 0..encoded.len() {
                prop_assert!(decode_live_traces(encoded.slice(..end)).is_err());
            }
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_live_traces(Bytes::from(body));
        }
    }

    #[test]
    fn a_hostile_count_is_an_error_not_an_allocation() {
        let mut body = vec![LIVE_TRACES_VERSION];
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        let error = decode_live_traces(Bytes::from(body)).unwrap_err();
        assert!(error.contains("truncated at byte 5"), "{error}");
        assert!(decode_live_traces(Bytes::from_static(&[2, 0, 0, 0, 0]))
            .unwrap_err()
            .contains("version 2"));
    }
}
