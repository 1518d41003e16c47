//! The trace table (`traces` object beside `data.parquet`): one fixed-size entry per trace of
//! the block, in row order (trace-ID order in `andante-v1`; in `andante-v2` trace-ID order within
//! each row group, row groups ordered by time). Stage 1 maps the rows a predicate
//! matched to their traces through it, instead of decoding `trace_id`, `start_unix_nanos` and
//! `duration_nanos` for every row of a row group (those three columns were most of the cost of
//! a search with hits), and decides `{ } | count() > n` from span counts alone.
//!
//! Layout (little-endian; `docs/FORMAT.md`):
//! `"ANDTRT01" | traces: u32 | traces × (trace ID: 16 B, row group: u32, first row: u32,
//! rows: u32, earliest span start: u64, latest span end: u64) | crc32c of all before: u32`.
//! Kept uncompressed so a read is a length check, a checksum and slicing: IDs are random and
//! would not compress, and a search reads the table of every block with a match. In `andante-v2`
//! blocks the index records each row group's run of entries and its crc32c, so a search that
//! stops inside a block reads only the runs of the row groups it scanned
//! ([`TraceTable::from_entries`]).

use std::ops::Range;

use andante_model::TraceId;
use bytes::Bytes;

use crate::BlockError;

const MAGIC: &[u8; 8] = b"ANDTRT01";
const ENTRY: usize = 16 + 4 + 4 + 4 + 8 + 8;
const HEADER: usize = MAGIC.len() + 4;

/// One trace of a block: where its rows are and when it starts and ends there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEntry {
    pub trace_id: TraceId,
    pub row_group: u32,
    /// Row within the row group.
    pub first_row: u32,
    pub rows: u32,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
}

/// Where entries `first..first + count` lie in a `traces` object.
pub fn entries_range(first: usize, count: usize) -> Range<u64> {
    let start = (HEADER + first * ENTRY) as u64;
    start..start + (count * ENTRY) as u64
}

/// Encodes entries (in row order) as a `traces` object.
pub fn encode(entries: &[TraceEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + entries.len() * ENTRY + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for entry in entries {
        out.extend_from_slice(&entry.trace_id.0);
        out.extend_from_slice(&entry.row_group.to_le_bytes());
        out.extend_from_slice(&entry.first_row.to_le_bytes());
        out.extend_from_slice(&entry.rows.to_le_bytes());
        out.extend_from_slice(&entry.start_unix_nanos.to_le_bytes());
        out.extend_from_slice(&entry.end_unix_nanos.to_le_bytes());
    }
    let checksum = crc32c::crc32c(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// A decoded `traces` object: the checked bytes, read in place.
#[derive(Debug, Clone)]
pub struct TraceTable {
    bytes: Bytes,
    /// Where entry 0 starts in `bytes`.
    offset: usize,
    len: usize,
}

impl TraceTable {
    /// Checks the magic, the length and the checksum; any mismatch is `Corrupt`.
    pub fn decode(bytes: Bytes) -> Result<TraceTable, BlockError> {
        let corrupt = |what: &str| BlockError::Corrupt(format!("trace table: {what}"));
        if bytes.len() < HEADER + 4 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(corrupt("not a trace table"));
        }
        let len = u32::from_le_bytes(bytes[8..12].try_into().map_err(|_| corrupt("header"))?);
        let len = len as usize;
        if len
            .checked_mul(ENTRY)
            .and_then(|n| n.checked_add(HEADER + 4))
            != Some(bytes.len())
        {
            return Err(corrupt("length does not match the trace count"));
        }
        let body = bytes.len() - 4;
        let stored = u32::from_le_bytes(bytes[body..].try_into().map_err(|_| corrupt("crc"))?);
        if crc32c::crc32c(&bytes[..body]) != stored {
            return Err(corrupt("checksum mismatch"));
        }
        Ok(TraceTable {
            bytes,
            offset: HEADER,
            len,
        })
    }

    /// A run of entries read by range (one row group's, at [`entries_range`]), checked against
    /// the crc32c the block's index recorded for it.
    pub fn from_entries(bytes: Bytes, crc: u32) -> Result<TraceTable, BlockError> {
        let corrupt = |what: &str| BlockError::Corrupt(format!("trace table: {what}"));
        if !bytes.len().is_multiple_of(ENTRY) {
            return Err(corrupt("a run of entries of a partial length"));
        }
        if crc32c::crc32c(&bytes) != crc {
            return Err(corrupt("row group's entries fail their checksum"));
        }
        Ok(TraceTable {
            len: bytes.len() / ENTRY,
            bytes,
            offset: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, index: usize) -> TraceEntry {
        let at = self.offset + index * ENTRY;
        let raw = &self.bytes[at..at + ENTRY];
        let u32_at = |offset: usize| {
            u32::from_le_bytes([
                raw[offset],
                raw[offset + 1],
                raw[offset + 2],
                raw[offset + 3],
            ])
        };
        let u64_at = |offset: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&raw[offset..offset + 8]);
            u64::from_le_bytes(word)
        };
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(&raw[..16]);
        TraceEntry {
            trace_id: TraceId(trace_id),
            row_group: u32_at(16),
            first_row: u32_at(20),
            rows: u32_at(24),
            start_unix_nanos: u64_at(28),
            end_unix_nanos: u64_at(36),
        }
    }

    /// The entries of `row_group` (entries are in row order, so they are one run).
    pub fn row_group(&self, row_group: u32) -> Range<usize> {
        let first = partition_point(self.len, |index| self.get(index).row_group < row_group);
        let end = partition_point(self.len, |index| self.get(index).row_group <= row_group);
        first..end
    }
}

impl TraceTable {
    /// The entry among `entries` (one row group's, from [`TraceTable::row_group`]) whose rows
    /// hold `row`: the last one starting at or before it.
    pub fn entry_holding_row(&self, entries: Range<usize>, row: u32) -> Option<usize> {
        let after = partition_point(entries.len(), |index| {
            self.get(entries.start + index).first_row <= row
        });
        (after > 0).then(|| entries.start + after - 1)
    }
}

/// The first index in `0..len` for which `before` is false (`before` true, then false).
fn partition_point(len: usize, before: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let middle = low + (high - low) / 2;
        if before(middle) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<TraceEntry> {
        (0..50u32)
            .map(|number| TraceEntry {
                trace_id: TraceId([number as u8; 16]),
                row_group: number / 20,
                first_row: (number % 20) * 3,
                rows: 3,
                start_unix_nanos: 1_000 + number as u64,
                end_unix_nanos: u64::MAX - number as u64,
            })
            .collect()
    }

    #[test]
    fn round_trips_and_finds_row_groups() {
        let entries = entries();
        let table = TraceTable::decode(Bytes::from(encode(&entries))).expect("decodes");
        assert_eq!(table.len(), entries.len());
        let read: Vec<TraceEntry> = (0..table.len()).map(|index| table.get(index)).collect();
        assert_eq!(read, entries);
        assert_eq!(table.row_group(0), 0..20);
        assert_eq!(table.row_group(1), 20..40);
        assert_eq!(table.row_group(2), 40..50);
        assert_eq!(table.row_group(3), 50..50);
        let empty = TraceTable::decode(Bytes::from(encode(&[]))).expect("decodes");
        assert!(empty.is_empty());
        assert_eq!(empty.row_group(0), 0..0);
    }

    #[test]
    fn a_row_groups_run_reads_alone() {
        let entries = entries();
        let encoded = encode(&entries);
        let range = entries_range(20, 20);
        let run = &encoded[range.start as usize..range.end as usize];
        let crc = crc32c::crc32c(run);
        let table = TraceTable::from_entries(Bytes::copy_from_slice(run), crc).expect("intact");
        assert_eq!(table.len(), 20);
        assert_eq!(table.get(0), entries[20]);
        assert_eq!(table.row_group(1), 0..20);
        assert_eq!(table.row_group(0), 0..0);
        let mut flipped = run.to_vec();
        flipped[3] ^= 1;
        assert!(TraceTable::from_entries(Bytes::from(flipped), crc).is_err());
        assert!(TraceTable::from_entries(Bytes::copy_from_slice(&run[1..]), crc).is_err());
    }

    #[test]
    fn damage_is_corrupt_not_a_panic() {
        let good = encode(&entries());
        let mut flipped = good.clone();
        flipped[100] ^= 1;
        let mut wrong_count = good.clone();
        wrong_count[8] = 200;
        for bad in [
            flipped,
            wrong_count,
            good[..good.len() - 1].to_vec(),
            b"ANDTRT01".to_vec(),
            Vec::new(),
            b"ANDIDX02\0\0\0\0\0\0\0\0".to_vec(),
        ] {
            assert!(matches!(
                TraceTable::decode(Bytes::from(bad)),
                Err(BlockError::Corrupt(_))
            ));
        }
    }
}
