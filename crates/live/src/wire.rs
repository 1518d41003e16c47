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
//! Metrics-fold v1 (`POST /internal/query/v1/metrics`): one block folded for one TraceQL
//! metrics query by a querier, for a query-frontend; `n` is the job's interval count, which the
//! frontend knows, and an `f64` travels as its IEEE-754 bits in a u64.
//! ```text
//! u8 version (1) | u64 spans inspected | u64 traces inspected | u64 bytes read |
//!   u32 shared IDs | per ID: [16] trace ID |
//!   u32 shared traces | per trace: [16] trace ID | u32 length | length bytes (one OTLP
//!     ExportTraceServiceRequest) |
//!   u64 spans counted | u8 truncated (0 or 1) | u32 series | per series:
//!     u32 labels | per label: u8 kind (0 nil, 1 string, 2 int, 3 float, 4 bool) and its value
//!       (u32 length + UTF-8 | i64 | f64 | u8) |
//!     u8 present (1 sums, 2 minimums, 4 maximums, 8 values, 16 exemplars) |
//!     n f64 counts | n f64 sums | n f64 minimums | n f64 maximums (each only if present) |
//!     values: n × (u32 count | count f64) | exemplars: n × (u8 0 | u8 1 [16] trace ID i64 ms f64)
//! ```
//! Integers are big-endian. Decoding checks every length against what is left, so a damaged
//! answer is an error naming its position, never a panic or a huge allocation.

use andante_block::v1::search::{Candidate, RowLocation, ScanOutcome};
use andante_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::TraceId;
use andante_traceql::metrics::{Exemplar, LabelValue, SeriesAcc};
use andante_traceql::{Accumulator, Intervals};
use bytes::{Buf, BufMut, Bytes};
use prost::Message;

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

    fn u8(&mut self, part: &str) -> Result<u8, String> {
        self.need(part, 1)?;
        Ok(self.buf.get_u8())
    }

    fn f64(&mut self, part: &str) -> Result<f64, String> {
        self.u64(part).map(f64::from_bits)
    }

    /// `count` f64s in a row, checked as one piece first.
    fn f64s(&mut self, part: &str, count: usize) -> Result<Vec<f64>, String> {
        self.need(part, count.saturating_mul(8))?;
        Ok((0..count)
            .map(|_| f64::from_bits(self.buf.get_u64()))
            .collect())
    }

    fn trace_id(&mut self) -> Result<TraceId, String> {
        self.need("a trace ID", 16)?;
        let mut id = [0u8; 16];
        self.buf.copy_to_slice(&mut id);
        Ok(TraceId(id))
    }

    /// A u32 count, then that many trace IDs.
    fn trace_ids(&mut self, part: &str) -> Result<Vec<TraceId>, String> {
        let count = self.u32(part)?;
        let mut ids = Vec::with_capacity(self.capacity(count, 16));
        for _ in 0..count {
            ids.push(self.trace_id()?);
        }
        Ok(ids)
    }

    /// A u32 length, then that many bytes (sharing the body's buffer).
    fn sized(&mut self, part: &str) -> Result<Bytes, String> {
        let length = self.u32(part)?;
        self.need(part, length)?;
        Ok(self.buf.split_to(length))
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
            fragments.push(reader.sized("a fragment")?);
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
    let held = reader.trace_ids("the held count")?;
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

pub const METRICS_FOLD_VERSION: u8 = 1;
pub const METRICS_FOLD_CONTENT_TYPE: &str = "application/vnd.andante.metrics-fold.v1";

/// What one block contributed to a TraceQL metrics query, folded by a querier. Traces the
/// frontend holds live are not counted in `accumulator`: a columnar fold names them
/// (`shared_ids`), a whole-trace fold hands over their spans (`shared_spans`), so the frontend
/// counts each such trace once, whole.
#[derive(Debug)]
pub struct MetricsFold {
    pub spans: u64,
    pub traces: u64,
    pub bytes: u64,
    pub shared_ids: Vec<TraceId>,
    pub shared_spans: Vec<(TraceId, Vec<ResourceSpans>)>,
    pub accumulator: Accumulator,
}

const HAS_SUMS: u8 = 1;
const HAS_MINS: u8 = 2;
const HAS_MAXES: u8 = 4;
const HAS_VALUES: u8 = 8;
const HAS_EXEMPLARS: u8 = 16;

fn put_f64s(out: &mut Vec<u8>, values: &[f64]) {
    for value in values {
        out.put_u64(value.to_bits());
    }
}

fn put_label(out: &mut Vec<u8>, label: &LabelValue) {
    match label {
        LabelValue::Nil => out.put_u8(0),
        LabelValue::String(text) => {
            out.put_u8(1);
            out.put_u32(text.len() as u32);
            out.put_slice(text.as_bytes());
        }
        LabelValue::Int(number) => {
            out.put_u8(2);
            out.put_i64(*number);
        }
        LabelValue::Float(bits) => {
            out.put_u8(3);
            out.put_u64(*bits);
        }
        LabelValue::Bool(flag) => {
            out.put_u8(4);
            out.put_u8(u8::from(*flag));
        }
    }
}

fn read_label(reader: &mut Reader) -> Result<LabelValue, String> {
    Ok(match reader.u8("a label kind")? {
        0 => LabelValue::Nil,
        1 => {
            let bytes = reader.sized("a label")?;
            LabelValue::String(
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| "metrics fold: a label is not UTF-8".to_owned())?,
            )
        }
        2 => LabelValue::Int(reader.u64("an int label")? as i64),
        3 => LabelValue::Float(reader.u64("a float label")?),
        4 => LabelValue::Bool(reader.u8("a bool label")? != 0),
        kind => return Err(format!("metrics fold: unknown label kind {kind}")),
    })
}

/// Encodes one block's metrics fold as metrics-fold v1.
pub fn encode_metrics_fold(fold: &MetricsFold) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.put_u8(METRICS_FOLD_VERSION);
    out.put_u64(fold.spans);
    out.put_u64(fold.traces);
    out.put_u64(fold.bytes);
    out.put_u32(fold.shared_ids.len() as u32);
    for trace_id in &fold.shared_ids {
        out.put_slice(&trace_id.0);
    }
    out.put_u32(fold.shared_spans.len() as u32);
    for (trace_id, resource_spans) in &fold.shared_spans {
        let encoded = ExportTraceServiceRequest {
            resource_spans: resource_spans.clone(),
        }
        .encode_to_vec();
        out.put_slice(&trace_id.0);
        out.put_u32(encoded.len() as u32);
        out.put_slice(&encoded);
    }
    let accumulator = &fold.accumulator;
    out.put_u64(accumulator.spans_counted);
    out.put_u8(u8::from(accumulator.truncated));
    out.put_u32(accumulator.series().len() as u32);
    for (labels, series) in accumulator.series() {
        out.put_u32(labels.len() as u32);
        for label in labels {
            put_label(&mut out, label);
        }
        let present = [
            (HAS_SUMS, !series.sum.is_empty()),
            (HAS_MINS, !series.min.is_empty()),
            (HAS_MAXES, !series.max.is_empty()),
            (HAS_VALUES, !series.values.is_empty()),
            (HAS_EXEMPLARS, !series.exemplars.is_empty()),
        ]
        .iter()
        .filter(|(_, has)| *has)
        .fold(0, |flags, (flag, _)| flags | flag);
        out.put_u8(present);
        for values in [&series.count, &series.sum, &series.min, &series.max] {
            put_f64s(&mut out, values);
        }
        for values in &series.values {
            out.put_u32(values.len() as u32);
            put_f64s(&mut out, values);
        }
        for exemplar in &series.exemplars {
            match exemplar {
                None => out.put_u8(0),
                Some(exemplar) => {
                    out.put_u8(1);
                    out.put_slice(&exemplar.trace_id);
                    out.put_i64(exemplar.timestamp_ms);
                    out.put_u64(exemplar.value.to_bits());
                }
            }
        }
    }
    out
}

/// Decodes metrics-fold v1 for a query of `intervals`; the accumulator is checked as
/// `Accumulator::from_series` checks one.
pub fn decode_metrics_fold(body: Bytes, intervals: Intervals) -> Result<MetricsFold, String> {
    let n = intervals.count;
    let mut reader = Reader::new(body, "metrics fold");
    reader.version(METRICS_FOLD_VERSION)?;
    let spans = reader.u64("the span count")?;
    let traces = reader.u64("the trace count")?;
    let bytes = reader.u64("the bytes read")?;
    let shared_ids = reader.trace_ids("the shared ID count")?;
    let count = reader.u32("the shared trace count")?;
    let mut shared_spans = Vec::with_capacity(reader.capacity(count, 20));
    for _ in 0..count {
        let trace_id = reader.trace_id()?;
        let request = ExportTraceServiceRequest::decode(reader.sized("a shared trace")?)
            .map_err(|error| format!("metrics fold: a shared trace does not decode: {error}"))?;
        shared_spans.push((trace_id, request.resource_spans));
    }
    let spans_counted = reader.u64("the spans counted")?;
    let truncated = reader.u8("the truncated flag")? != 0;
    let count = reader.u32("the series count")?;
    let mut series =
        Vec::with_capacity(reader.capacity(count, 5usize.saturating_add(n.saturating_mul(8))));
    for _ in 0..count {
        let label_count = reader.u32("a label count")?;
        let mut labels = Vec::with_capacity(reader.capacity(label_count, 1));
        for _ in 0..label_count {
            labels.push(read_label(&mut reader)?);
        }
        let present = reader.u8("the aggregates present")?;
        let count = reader.f64s("the counts", n)?;
        let has = |flag: u8| present & flag != 0;
        let mut maybe = |flag: u8, part: &str| -> Result<Vec<f64>, String> {
            if has(flag) {
                reader.f64s(part, n)
            } else {
                Ok(Vec::new())
            }
        };
        let sum = maybe(HAS_SUMS, "the sums")?;
        let min = maybe(HAS_MINS, "the minimums")?;
        let max = maybe(HAS_MAXES, "the maximums")?;
        let mut values = Vec::new();
        if has(HAS_VALUES) {
            values.reserve(reader.capacity(n, 4));
            for _ in 0..n {
                let length = reader.u32("a value count")?;
                values.push(reader.f64s("the values", length)?);
            }
        }
        let mut exemplars = Vec::new();
        if has(HAS_EXEMPLARS) {
            exemplars.reserve(reader.capacity(n, 1));
            for _ in 0..n {
                exemplars.push(match reader.u8("an exemplar flag")? {
                    0 => None,
                    _ => {
                        let trace_id = reader.trace_id()?.0;
                        let timestamp_ms = reader.u64("an exemplar time")? as i64;
                        let value = reader.f64("an exemplar value")?;
                        Some(Exemplar {
                            trace_id,
                            timestamp_ms,
                            value,
                        })
                    }
                });
            }
        }
        series.push((
            labels,
            SeriesAcc {
                count,
                sum,
                min,
                max,
                values,
                exemplars,
            },
        ));
    }
    reader.finish()?;
    let accumulator = Accumulator::from_series(intervals, series, spans_counted, truncated)
        .map_err(|error| format!("metrics fold: {error}"))?;
    Ok(MetricsFold {
        spans,
        traces,
        bytes,
        shared_ids,
        shared_spans,
        accumulator,
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
        fn metrics_folds_round_trip(
            totals in any::<(u64, u64, u64, u64, bool)>(),
            shared_ids in proptest::collection::vec(any::<[u8; 16]>(), 0..4),
            shared in proptest::collection::vec((any::<[u8; 16]>(), "[a-z]{0,8}"), 0..3),
            series in proptest::collection::vec(series_strategy(3), 0..4),
        ) {
            let intervals = Intervals { first_nanos: 10, step_nanos: 5, count: 3 };
            // Labels unique per series, as an accumulator keeps them.
            let mut seen = std::collections::HashSet::new();
            let series: Vec<_> = series.into_iter().filter(|(labels, _)| seen.insert(labels.clone())).collect();
            let fold = MetricsFold {
                spans: totals.0,
                traces: totals.1,
                bytes: totals.2,
                shared_ids: shared_ids.into_iter().map(TraceId).collect(),
                shared_spans: shared
                    .into_iter()
                    .map(|(id, name)| {
                        let resource_spans = vec![ResourceSpans {
                            scope_spans: vec![andante_model::otlp::trace::v1::ScopeSpans {
                                spans: vec![andante_model::otlp::trace::v1::Span { name, ..Default::default() }],
                                ..Default::default()
                            }],
                            ..Default::default()
                        }];
                        (TraceId(id), resource_spans)
                    })
                    .collect(),
                accumulator: Accumulator::from_series(intervals, series.clone(), totals.3, totals.4).unwrap(),
            };
            let encoded = Bytes::from(encode_metrics_fold(&fold));
            let decoded = decode_metrics_fold(encoded.clone(), intervals).unwrap();
            prop_assert_eq!(encode_metrics_fold(&decoded), encoded.to_vec());
            prop_assert_eq!(decoded.shared_spans, fold.shared_spans);
            // NaN minimums stay NaN: compare the bits through the encoding above, the rest here.
            prop_assert_eq!(decoded.accumulator.series().len(), series.len());
            prop_assert_eq!(decoded.accumulator.spans_counted, totals.3);
            for end in 0..encoded.len() {
                prop_assert!(decode_metrics_fold(encoded.slice(..end), intervals).is_err());
            }
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_live_traces(Bytes::from(body.clone()));
            let _ = decode_live_matches(Bytes::from(body.clone()));
            let _ = decode_scan_outcome(Bytes::from(body.clone()));
            let _ = decode_metrics_fold(Bytes::from(body), Intervals { first_nanos: 1, step_nanos: 1, count: 2 });
        }
    }

    fn label_strategy() -> impl Strategy<Value = LabelValue> {
        prop_oneof![
            Just(LabelValue::Nil),
            "[a-z]{0,6}".prop_map(LabelValue::String),
            any::<i64>().prop_map(LabelValue::Int),
            any::<u64>().prop_map(LabelValue::Float),
            any::<bool>().prop_map(LabelValue::Bool),
        ]
    }

    /// A series of `n` intervals with any mix of aggregates present.
    fn series_strategy(n: usize) -> impl Strategy<Value = (Vec<LabelValue>, SeriesAcc)> {
        let slots = move || proptest::collection::vec(any::<f64>(), n);
        let maybe = move || prop_oneof![Just(Vec::new()), slots()];
        let exemplar = (any::<[u8; 16]>(), any::<i64>(), any::<f64>()).prop_map(
            |(trace_id, timestamp_ms, value)| Exemplar {
                trace_id,
                timestamp_ms,
                value,
            },
        );
        (
            proptest::collection::vec(label_strategy(), 0..3),
            (slots(), maybe(), maybe(), maybe()),
            prop_oneof![
                Just(Vec::new()),
                proptest::collection::vec(proptest::collection::vec(any::<f64>(), 0..4), n)
            ],
            prop_oneof![
                Just(Vec::new()),
                proptest::collection::vec(proptest::option::of(exemplar), n)
            ],
        )
            .prop_map(|(labels, (count, sum, min, max), values, exemplars)| {
                (
                    labels,
                    SeriesAcc {
                        count,
                        sum,
                        min,
                        max,
                        values,
                        exemplars,
                    },
                )
            })
    }

    #[test]
    fn a_series_not_shaped_by_the_intervals_is_refused() {
        let intervals = Intervals {
            first_nanos: 10,
            step_nanos: 5,
            count: 3,
        };
        let series = |count: usize, sums: usize| SeriesAcc {
            count: vec![1.0; count],
            sum: vec![2.0; sums],
            ..Default::default()
        };
        let checked = |list: Vec<(Vec<LabelValue>, SeriesAcc)>| {
            Accumulator::from_series(intervals, list, 0, false).map(|_| ())
        };
        assert!(checked(vec![
            (vec![], series(3, 0)),
            (vec![LabelValue::Nil], series(3, 3))
        ])
        .is_ok());
        assert!(checked(vec![(vec![], series(2, 0))])
            .unwrap_err()
            .contains("series 0"));
        assert!(checked(vec![(vec![], series(3, 2))])
            .unwrap_err()
            .contains("one slot per interval"));
        let repeated = checked(vec![(vec![], series(3, 0)), (vec![], series(3, 0))]);
        assert!(repeated.unwrap_err().contains("series 1 repeats"));
        // Shaped by the intervals but not by the function: `sum_over_time` needs sums.
        let counts_only =
            Accumulator::from_series(intervals, vec![(vec![], series(3, 0))], 0, false).unwrap();
        let function = |text: &str| andante_traceql::parse_metrics(text).unwrap().function;
        assert!(counts_only
            .check_shape(&function("{ } | rate()"), false)
            .is_ok());
        let error = counts_only
            .check_shape(&function("{ } | sum_over_time(duration)"), false)
            .unwrap_err();
        assert!(error.contains("sum_over_time"), "{error}");
        assert!(counts_only
            .check_shape(&function("{ } | rate()"), true)
            .is_err());
        // Over the wire: a fold of 3 intervals read as one of 2 is an error, never indexed.
        let fold = MetricsFold {
            spans: 1,
            traces: 1,
            bytes: 1,
            shared_ids: Vec::new(),
            shared_spans: Vec::new(),
            accumulator: Accumulator::from_series(
                intervals,
                vec![(vec![], series(3, 3))],
                3,
                false,
            )
            .unwrap(),
        };
        let encoded = Bytes::from(encode_metrics_fold(&fold));
        assert!(decode_metrics_fold(encoded.clone(), intervals).is_ok());
        assert!(decode_metrics_fold(
            encoded,
            Intervals {
                count: 2,
                ..intervals
            }
        )
        .is_err());
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
