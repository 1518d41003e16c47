//! Finding the intact records of one segment. Damage costs only the records it touches: the scan
//! skips a damaged region and resynchronises on the next intact record. Bytes after the last
//! intact record are the segment's tail (a write torn by a crash, or damage with nothing
//! readable after it), which replay cuts off.
//!
//! Pure functions over the segment's bytes; `replay` does the file I/O.

use std::ops::Range;

use crate::{v1, v2};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentFormat {
    V1,
    V2,
}

/// What a scan of one segment found. Every byte of the segment is in exactly one of: the header,
/// an intact record, a skipped region, the tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentScan {
    /// The framing the records were read with; `None` when the header is unrecognised and no
    /// record was found with either framing.
    pub format: Option<SegmentFormat>,
    /// Payloads of the intact records, in file order.
    pub records: Vec<Range<usize>>,
    /// Damaged regions, each followed by an intact record (or, if `resync_abandoned`, by the end
    /// of the file). A region may hold several damaged records. A damaged segment header is a
    /// region too.
    pub skipped: Vec<Range<usize>>,
    /// Unreadable bytes after the last intact record; empty when there are none.
    pub tail: Range<usize>,
    /// The scan spent its checksum budget while resynchronising: the last skipped region runs
    /// to the end of the file unread, may hide intact records and so must not be cut off.
    pub resync_abandoned: bool,
}

/// While resynchronising, a scan checksums candidate payloads of at most this many times the
/// segment's size in all (at least `MIN_RESYNC_BUDGET_BYTES`). In version 1 a damaged region in
/// which many offsets frame a plausible length would otherwise cost time quadratic in the
/// segment size; in version 2 only payloads crafted to hold intact headers could.
const RESYNC_BUDGET_FACTOR: usize = 16;
const MIN_RESYNC_BUDGET_BYTES: usize = 64 << 20;

pub(crate) fn scan_segment(data: &[u8]) -> SegmentScan {
    let header_len = v2::MAGIC.len();
    debug_assert_eq!(header_len, v1::MAGIC.len());
    let header = data.get(..header_len);
    if header == Some(v2::MAGIC.as_slice()) {
        return scan_v2(data, None);
    }
    if header == Some(v1::MAGIC.as_slice()) {
        return scan_v1(data, None);
    }
    // The header is damaged, or the file was torn while it was being created. The records after
    // it are still worth reading: try the marker framing first (cheap and certain), then v1.
    if data.len() <= header_len {
        return SegmentScan {
            format: None,
            records: Vec::new(),
            skipped: Vec::new(),
            tail: 0..data.len(),
            resync_abandoned: false,
        };
    }
    let as_v2 = scan_v2(data, Some(0));
    if !as_v2.records.is_empty() {
        return as_v2;
    }
    let as_v1 = scan_v1(data, Some(0));
    if !as_v1.records.is_empty() || as_v1.resync_abandoned {
        return as_v1;
    }
    SegmentScan {
        format: None,
        ..as_v2
    }
}

/// Collects intact records and the damaged regions between them.
struct Scanner {
    scan: SegmentScan,
    /// Where the current damaged region began, while the scan is inside one.
    damaged_since: Option<usize>,
    /// Payload bytes the scan may still checksum while resynchronising.
    resync_budget_bytes: usize,
}

impl Scanner {
    fn new(format: SegmentFormat, data_len: usize, damaged_since: Option<usize>) -> Scanner {
        let scan = SegmentScan {
            format: Some(format),
            records: Vec::new(),
            skipped: Vec::new(),
            tail: 0..0,
            resync_abandoned: false,
        };
        let resync_budget_bytes = data_len
            .saturating_mul(RESYNC_BUDGET_FACTOR)
            .max(MIN_RESYNC_BUDGET_BYTES);
        Scanner {
            scan,
            damaged_since,
            resync_budget_bytes,
        }
    }

    /// Whether the scan may checksum a candidate payload of `payload_len` bytes: always outside
    /// damage, within the budget while resynchronising.
    fn may_checksum(&mut self, payload_len: usize) -> bool {
        if self.damaged_since.is_none() {
            return true;
        }
        match self.resync_budget_bytes.checked_sub(payload_len) {
            Some(left) => {
                self.resync_budget_bytes = left;
                true
            }
            None => false,
        }
    }

    fn intact(&mut self, record_start: usize, payload: Range<usize>) {
        if let Some(damage_start) = self.damaged_since.take() {
            self.scan.skipped.push(damage_start..record_start);
        }
        self.scan.records.push(payload);
    }

    fn damaged(&mut self, offset: usize) {
        self.damaged_since.get_or_insert(offset);
    }

    fn finish(mut self, data_len: usize) -> SegmentScan {
        self.scan.tail = self.damaged_since.unwrap_or(data_len)..data_len;
        self.scan
    }

    /// Stops resynchronising: the damaged region runs to the end of the file, unread.
    fn abandon(mut self, data_len: usize) -> SegmentScan {
        if let Some(damage_start) = self.damaged_since {
            self.scan.skipped.push(damage_start..data_len);
        }
        self.scan.tail = data_len..data_len;
        self.scan.resync_abandoned = true;
        self.scan
    }
}

/// Version 2: a candidate record is a marker whose header checksum matches (O(1)); after damage
/// the scan jumps from marker to marker.
fn scan_v2(data: &[u8], damaged_since: Option<usize>) -> SegmentScan {
    let mut scanner = Scanner::new(SegmentFormat::V2, data.len(), damaged_since);
    let mut offset = v2::MAGIC.len();
    while offset < data.len() {
        let Some(header) = v2::header_at(data, offset) else {
            scanner.damaged(offset);
            offset = v2::next_marker(data, offset + 1);
            continue;
        };
        let payload_start = offset + v2::HEADER_BYTES;
        let Some(payload_end) = payload_start
            .checked_add(header.payload_len)
            .filter(|end| *end <= data.len())
        else {
            // Runs past the end of the file: a torn write, unless intact records follow it.
            scanner.damaged(offset);
            offset = v2::next_marker(data, offset + 1);
            continue;
        };
        if !scanner.may_checksum(header.payload_len) {
            return scanner.abandon(data.len());
        }
        if crc32c::crc32c(&data[payload_start..payload_end]) == header.payload_crc {
            scanner.intact(offset, payload_start..payload_end);
            offset = payload_end;
            continue;
        }
        // The header is intact but the payload is not. The next record may start where this
        // payload ends, but a write cut short by an I/O error and followed by later appends also
        // has an intact header, whose length overshoots the appends: it may end at the end of
        // the file, or (by chance) at one of their headers. Jumping there would skip intact
        // records, so the scan searches the payload for markers; a false marker inside a payload
        // needs its header checksum to match too, and the resync budget bounds the cost.
        scanner.damaged(offset);
        offset = v2::next_marker(data, offset + 1);
    }
    scanner.finish(data.len())
}

/// Version 1: nothing marks where a record begins, so after damage every byte offset is a
/// candidate whose length must fit and whose payload checksum must match. An empty record is
/// read as damage: its framing is eight zero bytes, which is also what a zero-filled region
/// looks like, and the live store never wrote an empty payload.
fn scan_v1(data: &[u8], damaged_since: Option<usize>) -> SegmentScan {
    let mut scanner = Scanner::new(SegmentFormat::V1, data.len(), damaged_since);
    let mut offset = v1::MAGIC.len();
    while offset < data.len() {
        if let Some(candidate) =
            v1::candidate_at(data, offset).filter(|candidate| !candidate.payload.is_empty())
        {
            if !scanner.may_checksum(candidate.payload.len()) {
                return scanner.abandon(data.len());
            }
            if crc32c::crc32c(&data[candidate.payload.clone()]) == candidate.payload_crc {
                let payload_end = candidate.payload.end;
                scanner.intact(offset, candidate.payload);
                offset = payload_end;
                continue;
            }
        }
        scanner.damaged(offset);
        offset += 1;
    }
    scanner.finish(data.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_segment(payloads: &[&[u8]]) -> (Vec<u8>, Vec<usize>) {
        let mut data = v2::MAGIC.to_vec();
        let mut starts = Vec::new();
        for payload in payloads {
            starts.push(data.len());
            v2::encode_record(payload, &mut data).expect("encode");
        }
        (data, starts)
    }

    /// Flips `bytes` bytes from `offset`, then checks which payloads survive and that exactly the
    /// `skipped` region is skipped.
    fn check(
        data: &mut [u8],
        offset: usize,
        bytes: usize,
        surviving: &[&[u8]],
        skipped: Range<usize>,
    ) {
        for byte in &mut data[offset..offset + bytes] {
            *byte ^= 0xA5;
        }
        let scan = scan_segment(data);
        let payloads: Vec<&[u8]> = scan
            .records
            .iter()
            .map(|range| &data[range.clone()])
            .collect();
        assert_eq!(payloads, surviving);
        assert_eq!(scan.skipped, vec![skipped]);
        assert!(
            scan.tail.is_empty(),
            "middle damage is not a tail: {:?}",
            scan.tail
        );
    }

    const PAYLOADS: [&[u8]; 3] = [b"first record", b"second record", b"third record"];

    #[test]
    fn a_flipped_payload_byte_costs_that_record_only() {
        let (mut data, starts) = v2_segment(&PAYLOADS);
        check(
            &mut data,
            starts[1] + v2::HEADER_BYTES + 3,
            1,
            &[PAYLOADS[0], PAYLOADS[2]],
            starts[1]..starts[2],
        );
    }

    #[test]
    fn a_flipped_length_costs_that_record_only() {
        let (mut data, starts) = v2_segment(&PAYLOADS);
        check(
            &mut data,
            starts[1] + 5,
            1,
            &[PAYLOADS[0], PAYLOADS[2]],
            starts[1]..starts[2],
        );
    }

    #[test]
    fn a_flipped_marker_costs_that_record_only() {
        let (mut data, starts) = v2_segment(&PAYLOADS);
        check(
            &mut data,
            starts[1],
            4,
            &[PAYLOADS[0], PAYLOADS[2]],
            starts[1]..starts[2],
        );
    }

    #[test]
    fn damage_across_a_record_boundary_costs_both_records() {
        let (mut data, starts) = v2_segment(&PAYLOADS);
        check(
            &mut data,
            starts[1] - 2,
            6,
            &[PAYLOADS[2]],
            starts[0]..starts[2],
        );
    }

    #[test]
    fn a_record_that_runs_past_the_end_is_the_tail() {
        let (mut data, starts) = v2_segment(&PAYLOADS);
        data.truncate(data.len() - 4);
        let scan = scan_segment(&data);
        assert_eq!(scan.records.len(), 2);
        assert!(scan.skipped.is_empty());
        assert_eq!(scan.tail, starts[2]..data.len());
    }

    #[test]
    fn a_damaged_last_record_is_the_tail() {
        let (mut data, starts) = v2_segment(&PAYLOADS);
        let last = data.len() - 1;
        data[last] ^= 0x10;
        let scan = scan_segment(&data);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.tail, starts[2]..data.len());
    }

    #[test]
    fn a_write_cut_short_and_followed_by_appends_costs_only_the_cut_record() {
        // An I/O error left part of a record; the next group commit appended after it.
        let (mut data, starts) = v2_segment(&PAYLOADS[..1]);
        let mut cut = Vec::new();
        v2::encode_record(&[7; 100], &mut cut).expect("encode");
        data.extend_from_slice(&cut[..40]);
        let resumed = data.len();
        for payload in &PAYLOADS[1..] {
            v2::encode_record(payload, &mut data).expect("encode");
        }
        let scan = scan_segment(&data);
        assert_eq!(scan.records.len(), 3);
        assert_eq!(
            scan.skipped,
            vec![starts[0] + v2::HEADER_BYTES + PAYLOADS[0].len()..resumed]
        );
    }

    #[test]
    fn appends_that_end_where_a_cut_record_claimed_to_end_are_read() {
        // Fuzz finding 4: the torn record's length happens to reach exactly the end of the file.
        let (mut data, _) = v2_segment(&PAYLOADS[..1]);
        let torn_start = data.len();
        let mut appended = Vec::new();
        for payload in &PAYLOADS[1..] {
            v2::encode_record(payload, &mut appended).expect("encode");
        }
        let kept = 24;
        let mut cut = Vec::new();
        v2::encode_record(&vec![7; kept - v2::HEADER_BYTES + appended.len()], &mut cut)
            .expect("encode");
        data.extend_from_slice(&cut[..kept]);
        let resumed = data.len();
        data.extend_from_slice(&appended);
        assert_eq!(torn_start + cut.len(), data.len());
        let scan = scan_segment(&data);
        let payloads: Vec<&[u8]> = scan.records.iter().map(|r| &data[r.clone()]).collect();
        assert_eq!(payloads, PAYLOADS);
        assert_eq!(scan.skipped, vec![torn_start..resumed]);
        assert!(scan.tail.is_empty());
    }

    #[test]
    fn appends_are_read_when_a_cut_record_claimed_to_end_at_one_of_their_headers() {
        let (mut data, _) = v2_segment(&PAYLOADS[..1]);
        let torn_start = data.len();
        let mut appended = Vec::new();
        let mut appended_starts = Vec::new();
        for payload in &PAYLOADS[1..] {
            appended_starts.push(appended.len());
            v2::encode_record(payload, &mut appended).expect("encode");
        }
        let kept = 20;
        // Claims to end exactly where the last appended record begins.
        let mut cut = Vec::new();
        v2::encode_record(
            &vec![9; kept - v2::HEADER_BYTES + appended_starts[1]],
            &mut cut,
        )
        .expect("encode");
        data.extend_from_slice(&cut[..kept]);
        let resumed = data.len();
        data.extend_from_slice(&appended);
        let scan = scan_segment(&data);
        let payloads: Vec<&[u8]> = scan.records.iter().map(|r| &data[r.clone()]).collect();
        assert_eq!(payloads, PAYLOADS);
        assert_eq!(scan.skipped, vec![torn_start..resumed]);
    }

    #[test]
    fn a_damaged_header_is_skipped_and_the_records_after_it_read() {
        let (mut data, starts) = v2_segment(&PAYLOADS);
        check(&mut data, 2, 1, &PAYLOADS, 0..starts[0]);
    }

    #[test]
    fn version_1_resynchronises_on_the_next_checksum_match() {
        let mut data = v1::MAGIC.to_vec();
        let mut starts = Vec::new();
        for payload in PAYLOADS {
            starts.push(data.len());
            v1::encode_record(payload, &mut data);
        }
        let mut zeroed = data.clone();
        check(
            &mut data,
            starts[1] + 1,
            2,
            &[PAYLOADS[0], PAYLOADS[2]],
            starts[1]..starts[2],
        );
        // A zeroed record reads as damage, not as a run of empty records.
        zeroed[starts[1]..starts[2]].fill(0);
        let scan = scan_segment(&zeroed);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.skipped, vec![starts[1]..starts[2]]);
    }

    #[test]
    fn version_1_resynchronisation_gives_up_without_cutting_anything() {
        // Every offset of the damaged region frames a maximal plausible length: the checksum
        // budget runs out and the rest of the segment is reported unread, not cut off.
        let mut data = v1::MAGIC.to_vec();
        v1::encode_record(b"intact", &mut data);
        let damage_start = data.len();
        data.extend_from_slice(&[0x00, 0x00, 0x18, 0x00].repeat(512 << 10));
        let scan = scan_segment(&data);
        assert_eq!(scan.records.len(), 1);
        assert!(scan.resync_abandoned);
        assert_eq!(scan.skipped, vec![damage_start..data.len()]);
        assert!(scan.tail.is_empty());
    }

    #[test]
    fn version_2_resynchronisation_gives_up_on_payloads_full_of_intact_headers() {
        // Headers whose length overshoots the next one by a byte, every 16 bytes: each is
        // checksummed, then the scan moves on by 16 bytes only, until the budget is spent.
        let (mut data, _) = v2_segment(&PAYLOADS[..1]);
        let damage_start = data.len();
        let mut fake = v2::MARKER.to_vec();
        fake.extend_from_slice(&((1u32 << 20) + 1).to_le_bytes());
        fake.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
        fake.extend_from_slice(&crc32c::crc32c(&fake).to_le_bytes());
        data.push(0); // so that the first fake header is already inside damage
        data.extend_from_slice(&fake.repeat(128 << 10));
        let scan = scan_segment(&data);
        assert_eq!(scan.records.len(), 1);
        assert!(scan.resync_abandoned);
        assert_eq!(scan.skipped, vec![damage_start..data.len()]);
        assert!(scan.tail.is_empty());
    }
}
