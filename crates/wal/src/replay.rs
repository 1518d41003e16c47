//! WAL replay: reads every segment in order and hands each intact record to the caller,
//! truncating a segment at its first torn or corrupt record.

use std::fs::OpenOptions;
use std::path::Path;

use crate::{list_segments, segment_path, SegmentSeq, WalError, MAGIC, RECORD_HEADER_BYTES};

/// What replay found, for the start-up log line and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: usize,
    pub bytes: u64,
    /// Segments that were cut short, with the bytes dropped from each.
    pub truncated: Vec<(SegmentSeq, u64)>,
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
        let valid_len = scan_segment(&data, |payload| {
            report.records += 1;
            report.bytes += payload.len() as u64;
            on_record(seq, payload);
        });
        if valid_len < data.len() {
            let dropped = (data.len() - valid_len) as u64;
            tracing::warn!(
                segment = %path.display(),
                valid_bytes = valid_len,
                dropped_bytes = dropped,
                "wal segment has a torn or corrupt tail; truncating it"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|error| WalError::io(&path, error))?;
            // A segment whose header itself is damaged is rewritten as an empty segment.
            let keep = valid_len.max(MAGIC.len());
            file.set_len(keep as u64)
                .map_err(|error| WalError::io(&path, error))?;
            if valid_len < MAGIC.len() {
                use std::io::{Seek, Write};
                let mut file = file;
                file.seek(std::io::SeekFrom::Start(0))
                    .map_err(|error| WalError::io(&path, error))?;
                file.write_all(MAGIC)
                    .map_err(|error| WalError::io(&path, error))?;
            }
            report.truncated.push((seq, dropped));
        }
    }
    Ok(report)
}

/// Returns the length of the valid prefix of a segment, calling `on_record` for each record in it.
pub(crate) fn scan_segment(data: &[u8], mut on_record: impl FnMut(&[u8])) -> usize {
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        return 0;
    }
    let mut offset = MAGIC.len();
    while offset + RECORD_HEADER_BYTES <= data.len() {
        let len = u32::from_le_bytes([
            data[offset],
            data[offset + 1],
            data[offset + 2],
            data[offset + 3],
        ]) as usize;
        let crc = u32::from_le_bytes([
            data[offset + 4],
            data[offset + 5],
            data[offset + 6],
            data[offset + 7],
        ]);
        let start = offset + RECORD_HEADER_BYTES;
        let Some(end) = start.checked_add(len).filter(|end| *end <= data.len()) else {
            break;
        };
        let payload = &data[start..end];
        if crc32c::crc32c(payload) != crc {
            break;
        }
        on_record(payload);
        offset = end;
    }
    offset
}
