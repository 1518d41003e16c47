//! Segment format version 1 (`ANDWAL01`), read only: segments written before version 2 are
//! still replayed, nothing writes this format any more.
//!
//! ```text
//! "ANDWAL01" | record* where record = len: u32 LE | crc32c(payload): u32 LE | payload: len bytes
//! ```
//! Nothing but the payload checksum protects a record, so a damaged length field is found only by
//! checksumming the payload it claims, and resynchronising after damage means trying every byte
//! offset (see `scan::scan_v1`).

pub(crate) const MAGIC: &[u8; 8] = b"ANDWAL01";
pub(crate) const HEADER_BYTES: usize = 8;

/// A version 1 record whose payload lies within the segment; its checksum is not checked yet.
pub(crate) struct Candidate {
    pub payload: std::ops::Range<usize>,
    pub payload_crc: u32,
}

/// The record framed at `offset`, if its length keeps the payload inside `data`.
pub(crate) fn candidate_at(data: &[u8], offset: usize) -> Option<Candidate> {
    let header = data.get(offset..offset.checked_add(HEADER_BYTES)?)?;
    let payload_len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let payload_crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload_start = offset + HEADER_BYTES;
    let payload_end = payload_start
        .checked_add(payload_len)
        .filter(|end| *end <= data.len())?;
    Some(Candidate {
        payload: payload_start..payload_end,
        payload_crc,
    })
}

/// Frames `payload` as the version 1 writer did; tests use it to build old segments.
#[cfg(test)]
pub(crate) fn encode_record(payload: &[u8], out: &mut Vec<u8>) {
    let payload_len = u32::try_from(payload.len()).expect("test payloads are small");
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}
