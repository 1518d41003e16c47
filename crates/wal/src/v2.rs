//! Segment format version 2 (`ANDWAL02`), the one the writer produces. Each record starts with a
//! sync marker and carries a checksum of its own header, so after damage a reader finds the next
//! record by searching for the marker and checks each candidate in O(1) before it checksums a
//! payload.
//!
//! ```text
//! "ANDWAL02" | record*
//! record = marker: D2 8B F5 A6 | len: u32 LE | crc32c(payload): u32 LE
//!        | crc32c(marker | len | payload crc): u32 LE | payload: len bytes
//! ```
//! The marker's four bytes differ from one another, so it cannot overlap a shifted copy of
//! itself, and `F5` never occurs in UTF-8 text. A false candidate needs the marker (32 bits) and
//! the header checksum (32 bits) to match by chance, and then the payload checksum as well.

use crate::WalError;

pub(crate) const MAGIC: &[u8; 8] = b"ANDWAL02";
pub(crate) const MARKER: [u8; 4] = [0xD2, 0x8B, 0xF5, 0xA6];
pub(crate) const HEADER_BYTES: usize = 16;
/// The bytes the header checksum covers: marker, length and payload checksum.
const CHECKED_HEADER_BYTES: usize = 12;

/// A record header whose marker and checksum are intact, so its length can be trusted.
pub(crate) struct Header {
    pub payload_len: usize,
    pub payload_crc: u32,
}

pub(crate) fn encode_record(payload: &[u8], out: &mut Vec<u8>) -> Result<(), WalError> {
    let payload_len =
        u32::try_from(payload.len()).map_err(|_| WalError::RecordTooLarge(payload.len()))?;
    let header_start = out.len();
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c(&out[header_start..]);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// The header at `offset`, if a marker is there and the header checksum matches. O(1).
pub(crate) fn header_at(data: &[u8], offset: usize) -> Option<Header> {
    let header = data.get(offset..offset.checked_add(HEADER_BYTES)?)?;
    if header[..4] != MARKER {
        return None;
    }
    let header_crc = u32::from_le_bytes([header[12], header[13], header[14], header[15]]);
    if crc32c::crc32c(&header[..CHECKED_HEADER_BYTES]) != header_crc {
        return None;
    }
    let payload_len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let payload_crc = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    Some(Header {
        payload_len,
        payload_crc,
    })
}

/// The offset of the first marker at or after `from`, or `data.len()` when there is none.
pub(crate) fn next_marker(data: &[u8], from: usize) -> usize {
    let mut offset = from;
    while let Some(found) = data
        .get(offset..)
        .and_then(|rest| rest.iter().position(|byte| *byte == MARKER[0]))
    {
        let candidate = offset + found;
        if data[candidate..].starts_with(&MARKER) {
            return candidate;
        }
        offset = candidate + 1;
    }
    data.len()
}
