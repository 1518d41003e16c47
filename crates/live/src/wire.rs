//! How a live-store's answers travel to a querier (`docs/FORMAT.md`).
//!
//! Live-traces v1 (`GET /internal/live/v1/traces`): held traces as the encoded fragments the
//! store keeps.
//! ```text
//! u8 version (1) | u32 traces | per trace: [16] trace ID | u32 fragments |
//!   per fragment: u32 length | length bytes (one OTLP ExportTraceServiceRequest)
//! ```
//! Live-matches v1 (`POST /internal/live/v1/search`): search stage 1 run by the live-store, so
//! a querier receives 16 bytes per held trace instead of its fragments.
//! ```text
//! u8 version (1) | u64 spans inspected | u32 held | per held trace: [16] trace ID |
//!   u32 matches | per match: [16] trace ID | u64 start | u64 end (Unix nanoseconds)
//! ```
//! Scan-outcome v1 (`POST /internal/query/v1/scan`): search stage 1 over one block, run by a
//! querier for a query-frontend.
//! ```text
//! u8 version (1) | u64 bytes read | u64 spans scanned | u64 traces scanned | u32 candidates |
//!   per candidate: [16] trace ID | u64 start | u64 end | u8 flags (1: located, 2: too few here) |
//!   if located: u32 row group | u32 first row | u32 rows
//! ```
//! Integers are big-endian. Decoding checks every length against what is left, so a damaged
//! answer is an error naming its position, never a panic or a huge allocation.

use andante_block::v1::search::{Candidate, RowLocation, ScanOutcome};
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

/// A body being decoded: every read is checked against what is left first.
struct Reader {
    buf: Bytes,
    total: usize,
    what: &'static str,
}

impl Reader {
    fn new(body: Bytes, what: &'static str) -> Reader {
        Reader {
            total: body.len(),
            buf: body,
            what,
        }
    }

    fn need(&self, part: &str, needed: usize) -> Result<(), String> {
        if self.buf.remaining() < needed {
            Err(format!(
                "{} truncated at byte {}: {part} needs {needed} more bytes, {} left",
                self.what,
                self.total - self.buf.remaining(),
                self.buf.remaining()
            ))
        } else {
            Ok(())
        }
    }

    fn version(&mut self, expected: u8) -> Result<(), String> {
        self.need("the version", 1)?;
        let version = self.buf.get_u8();
        if version != expected {
            return Err(format!(
                "{} version {version} is not one this version reads ({expected})",
                self.what
            ));
        }
        Ok(())
    }

    fn u32(&mut self, part: &str) -> Result<usize, String> {
        self.need(part, 4)?;
        Ok(self.buf.get_u32() as usize)
    }

    fn u64(&mut self, part: &str) -> Result<u64, String> {
        self.need(part, 8)?;
        Ok(self.buf.get_u64())
    }

    fn trace_id(&mut self) -> Result<TraceId, String> {
        self.need("a trace ID", 16)?;
        let mut id = [0u8; 16];
        self.buf.copy_to_slice(&mut id);
        Ok(TraceId(id))
    }

    /// Room for `count` items of at least `size` bytes each, bounded by what is left, so a
    /// hostile count cannot reserve more than the body.
    fn capacity(&self, count: usize, size: usize) -> usize {
        count.min(self.buf.remaining() / size)
    }

    fn finish(&self) -> Result<(), String> {
        if self.buf.has_remaining() {
            return Err(format!(
                "{} have {} trailing bytes",
                self.what,
                self.buf.remaining()
            ));
        }
        Ok(())
    }
}

/// Decodes live-traces v1; fragments share `body`'s buffer.
pub fn decode_live_traces(body: Bytes) -> Result<LiveTraces, String> {
    let mut reader = Reader::new(body, "live traces");
    reader.version(LIVE_TRACES_VERSION)?;
    let count = reader.u32("the trace count")?;
    let mut traces = Vec::with_capacity(reader.capacity(count, 20));
    for _ in 0..count {
        let trace_id = reader.trace_id()?;
        let fragment_count = reader.u32("a fragment count")?;
        let mut fragments = Vec::with_capacity(reader.capacity(fragment_count, 4));
        for _ in 0..fragment_count {
            let length = reader.u32("a fragment length")?;
            reader.need("a fragment", length)?;
            fragments.push(reader.buf.split_to(length));
        }
        traces.push((trace_id, fragments));
    }
    reader.finish()?;
    Ok(traces)
}

/// A held trace whose held part satisfies a search's stage-1 condition, and its time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveMatch {
    pub trace_id: TraceId,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

/// Search stage 1 over a store's held traces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveMatches {
    /// Spans inspected.
    pub spans: u64,
    /// Every trace held, matched or not: a block's candidate may have the rest of its spans
    /// here.
    pub held: Vec<TraceId>,
    pub matches: Vec<LiveMatch>,
}

pub const LIVE_MATCHES_VERSION: u8 = 1;
pub const LIVE_MATCHES_CONTENT_TYPE: &str = "application/vnd.andante.live-matches.v1";

/// Encodes stage-1 results as live-matches v1.
pub fn encode_live_matches(found: &LiveMatches) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + 16 * found.held.len() + 32 * found.matches.len());
    out.put_u8(LIVE_MATCHES_VERSION);
    out.put_u64(found.spans);
    out.put_u32(found.held.len() as u32);
    for trace_id in &found.held {
        out.put_slice(&trace_id.0);
    }
    out.put_u32(found.matches.len() as u32);
    for found in &found.matches {
        out.put_slice(&found.trace_id.0);
        out.put_u64(found.start_unix_nanos);
        out.put_u64(found.end_unix_nanos);
    }
    out
}

/// Decodes live-matches v1.
pub fn decode_live_matches(body: Bytes) -> Result<LiveMatches, String> {
    let mut reader = Reader::new(body, "live matches");
    reader.version(LIVE_MATCHES_VERSION)?;
    let spans = reader.u64("the span count")?;
    let count = reader.u32("the held count")?;
    let mut held = Vec::with_capacity(reader.capacity(count, 16));
    for _ in 0..count {
        held.push(reader.trace_id()?);
    }
    let count = reader.u32("the match count")?;
    let mut matches = Vec::with_capacity(reader.capacity(count, 32));
    for _ in 0..count {
        matches.push(LiveMatch {
            trace_id: reader.trace_id()?,
            start_unix_nanos: reader.u64("a start")?,
            end_unix_nanos: reader.u64("an end")?,
        });
    }
    reader.finish()?;
    Ok(LiveMatches {
        spans,
        held,
        matches,
    })
}

pub const SCAN_OUTCOME_VERSION: u8 = 1;
pub const SCAN_OUTCOME_CONTENT_TYPE: &str = "application/vnd.andante.scan-outcome.v1";

const LOCATED: u8 = 1;
const TOO_FEW_HERE: u8 = 2;

/// Encodes one block's stage-1 outcome as scan-outcome v1.
pub fn encode_scan_outcome(outcome: &ScanOutcome) -> Vec<u8> {
    let mut out = Vec::with_capacity(29 + 45 * outcome.candidates.len());
    out.put_u8(SCAN_OUTCOME_VERSION);
    out.put_u64(outcome.bytes_read);
    out.put_u64(outcome.spans_scanned);
    out.put_u64(outcome.traces_scanned);
    out.put_u32(outcome.candidates.len() as u32);
    for candidate in &outcome.candidates {
        out.put_slice(&candidate.trace_id.0);
        out.put_u64(candidate.start_unix_nanos);
        out.put_u64(candidate.end_unix_nanos);
        let mut flags = 0;
        if candidate.location.is_some() {
            flags |= LOCATED;
        }
        if candidate.too_few_here {
            flags |= TOO_FEW_HERE;
        }
        out.put_u8(flags);
        if let Some(location) = candidate.location {
            out.put_u32(location.row_group);
            out.put_u32(location.first_row);
            out.put_u32(location.rows);
        }
    }
    out
}

/// Decodes scan-outcome v1.
pub fn decode_scan_outcome(body: Bytes) -> Result<ScanOutcome, String> {
    let mut reader = Reader::new(body, "scan outcome");
    reader.version(SCAN_OUTCOME_VERSION)?;
    let bytes_read = reader.u64("the bytes read")?;
    let spans_scanned = reader.u64("the spans scanned")?;
    let traces_scanned = reader.u64("the traces scanned")?;
    let count = reader.u32("the candidate count")?;
    let mut candidates = Vec::with_capacity(reader.capacity(count, 33));
    for _ in 0..count {
        let trace_id = reader.trace_id()?;
        let start_unix_nanos = reader.u64("a start")?;
        let end_unix_nanos = reader.u64("an end")?;
        reader.need("the flags", 1)?;
        let flags = reader.buf.get_u8();
        if flags & !(LOCATED | TOO_FEW_HERE) != 0 {
            return Err(format!("scan outcome: unknown candidate flags {flags:#x}"));
        }
        let location = if flags & LOCATED != 0 {
            Some(RowLocation {
                row_group: reader.u32("a row group")? as u32,
                first_row: reader.u32("a first row")? as u32,
                rows: reader.u32("a row count")? as u32,
            })
        } else {
            None
        };
        candidates.push(Candidate {
            trace_id,
            start_unix_nanos,
            end_unix_nanos,
            location,
            too_few_here: flags & TOO_FEW_HERE != 0,
        });
    }
    reader.finish()?;
    Ok(ScanOutcome {
        candidates,
        bytes_read,
        spans_scanned,
        traces_scanned,
    })
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
        fn live_matches_round_trip(
            spans in any::<u64>(),
            held in proptest::collection::vec(any::<[u8; 16]>(), 0..6),
            matches in proptest::collection::vec((any::<[u8; 16]>(), any::<u64>(), any::<u64>()), 0..6),
        ) {
            let found = LiveMatches {
                spans,
                held: held.into_iter().map(TraceId).collect(),
                matches: matches
                    .into_iter()
                    .map(|(id, start, end)| LiveMatch { trace_id: TraceId(id), start_unix_nanos: start, end_unix_nanos: end })
                    .collect(),
            };
            let encoded = Bytes::from(encode_live_matches(&found));
            prop_assert_eq!(decode_live_matches(encoded.clone()).unwrap(), found);
            for end in 0..encoded.len() {
                prop_assert!(decode_live_matches(encoded.slice(..end)).is_err());
            }
        }

        #[test]
        fn scan_outcomes_round_trip(
            totals in any::<(u64, u64, u64)>(),
            candidates in proptest::collection::vec(
                (any::<[u8; 16]>(), any::<u64>(), any::<u64>(), proptest::option::of(any::<(u32, u32, u32)>()), any::<bool>()),
                0..6,
            ),
        ) {
            let outcome = ScanOutcome {
                candidates: candidates
                    .into_iter()
                    .map(|(id, start, end, location, too_few_here)| Candidate {
                        trace_id: TraceId(id),
                        start_unix_nanos: start,
                        end_unix_nanos: end,
                        location: location.map(|(row_group, first_row, rows)| RowLocation { row_group, first_row, rows }),
                        too_few_here,
                    })
                    .collect(),
                bytes_read: totals.0,
                spans_scanned: totals.1,
                traces_scanned: totals.2,
            };
            let encoded = Bytes::from(encode_scan_outcome(&outcome));
            let decoded = decode_scan_outcome(encoded.clone()).unwrap();
            prop_assert_eq!(encode_scan_outcome(&decoded), encoded.to_vec());
            for end in 0..encoded.len() {
                prop_assert!(decode_scan_outcome(encoded.slice(..end)).is_err());
            }
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_live_traces(Bytes::from(body.clone()));
            let _ = decode_live_matches(Bytes::from(body.clone()));
            let _ = decode_scan_outcome(Bytes::from(body));
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
        let mut body = vec![LIVE_MATCHES_VERSION];
        body.extend_from_slice(&7u64.to_be_bytes());
        body.extend_from_slice(&u32::MAX.to_be_bytes());
        let error = decode_live_matches(Bytes::from(body)).unwrap_err();
        assert!(
            error.contains("live matches truncated at byte 13"),
            "{error}"
        );
    }
}
