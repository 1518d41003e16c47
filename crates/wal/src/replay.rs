//! WAL replay: reads every segment in order and hands each intact record to the caller. Damaged
//! records are skipped and counted (`scan`); a segment's unreadable tail is cut off.
//!
//! Replay changes a segment in one way only: it cuts off the tail after the last intact record
//! (and rewrites a segment whose header is unreadable and which holds no intact record as an
//! empty version 2 segment). Damage in the middle stays on disk, since the records after it are
//! acknowledged data; it is skipped, and counted, again at every start until a checkpoint deletes
//! the segment. Nothing is appended to a replayed segment: `Wal::open` starts a new one.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::scan::{scan_segment, SegmentScan};
use crate::{list_segments, segment_path, v2, SegmentSeq, WalError};

/// What replay found, for the start-up log line, the metrics and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: usize,
    pub bytes: u64,
    /// Damaged regions skipped in the middle of segments, over all segments. Each region held at
    /// least one record (a damaged header hides where the next record began, so not how many).
    pub skipped_regions: u64,
    /// Bytes of those regions.
    pub skipped_bytes: u64,
    /// The segments with skipped regions.
    pub damaged: Vec<DamagedSegment>,
    /// Segments that were cut short, with the bytes dropped from each.
    pub truncated: Vec<(SegmentSeq, u64)>,
}

/// The damage replay skipped in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedSegment {
    pub seq: SegmentSeq,
    pub skipped_regions: u64,
    pub skipped_bytes: u64,
}

impl ReplayReport {
    /// Bytes cut off the ends of segments.
    pub fn truncated_bytes(&self) -> u64 {
        self.truncated.iter().map(|(_, bytes)| bytes).sum()
    }
}

/// Calls `on_record(seq, payload)` for every intact record, oldest first.
pub fn replay(
    dir: &Path,
    mut on_record: impl FnMut(SegmentSeq, &[u8]),
) -> Result<ReplayReport, WalError> {
    let mut report = ReplayReport::default();
    if !dir.exists() {
        return Ok(report);
    }
    for seq in list_segments(dir)? {
        let path = segment_path(dir, seq);
        let data = std::fs::read(&path).map_err(|error| WalError::io(&path, error))?;
        report.segments += 1;
        let scan = scan_segment(&data);
        for payload in &scan.records {
            report.records += 1;
            report.bytes += payload.len() as u64;
            on_record(seq, &data[payload.clone()]);
        }
        if !scan.skipped.is_empty() {
            let damaged = DamagedSegment {
                seq,
                skipped_regions: scan.skipped.len() as u64,
                skipped_bytes: scan.skipped.iter().map(|region| region.len() as u64).sum(),
            };
            tracing::warn!(
                segment = %path.display(),
                format = ?scan.format,
                skipped_regions = damaged.skipped_regions,
                skipped_bytes = damaged.skipped_bytes,
                first_offset = scan.skipped[0].start,
                "wal segment has damaged records; skipped them and replayed the intact records after them"
            );
            report.skipped_regions += damaged.skipped_regions;
            report.skipped_bytes += damaged.skipped_bytes;
            report.damaged.push(damaged);
        }
        if scan.resync_abandoned {
            tracing::warn!(
                segment = %path.display(),
                format = ?scan.format,
                "gave up resynchronising on a damaged wal segment (checksum budget spent); the rest of it is skipped and left on disk"
            );
        }
        if !scan.tail.is_empty() {
            tracing::warn!(
                segment = %path.display(),
                valid_bytes = scan.tail.start,
                dropped_bytes = scan.tail.len(),
                "wal segment has a torn or corrupt tail; truncating it"
            );
            cut_tail(&path, &scan)?;
            report.truncated.push((seq, scan.tail.len() as u64));
        }
    }
    Ok(report)
}

/// Cuts the file at the start of its tail. A segment left without a readable header becomes an
/// empty version 2 segment.
fn cut_tail(path: &Path, scan: &SegmentScan) -> Result<(), WalError> {
    let io_error = |error| WalError::io(path, error);
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error)?;
    if scan.tail.start >= v2::MAGIC.len() {
        return file.set_len(scan.tail.start as u64).map_err(io_error);
    }
    debug_assert!(scan.records.is_empty() && scan.format.is_none());
    file.set_len(0).map_err(io_error)?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    file.write_all(v2::MAGIC).map_err(io_error)
}
