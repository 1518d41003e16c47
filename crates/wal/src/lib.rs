//! The write-ahead log: a push is acknowledged only after its record is written and fsynced
//! here, so an acknowledged span survives `kill -9` and power loss.
//!
//! # On-disk format (version 1)
//! A directory of segment files named `{seq:020}.wal`, `seq` increasing from 1. Each segment
//! starts with the 8-byte magic `ANDWAL01`, followed by records:
//!
//! ```text
//! +----------------+----------------+-------------------+
//! | len: u32 LE    | crc32c: u32 LE | payload: len bytes |
//! +----------------+----------------+-------------------+
//! ```
//! `crc32c` covers the payload. The payload is opaque to the WAL (the live store frames the
//! tenant and the OTLP batch inside it).
//!
//! # Invariants
//! - Records are appended only to the newest segment; older segments are never modified except
//!   to cut off a corrupt tail during replay.
//! - An append's future resolves only after `fdatasync` of the segment returned (when `fsync` is
//!   on); many appends share one fsync (group commit): the writer thread drains every pending
//!   append, writes them with one `write`, syncs once, then acknowledges them all.
//! - Replay stops at the first record whose length runs past the end of the file or whose
//!   checksum does not match; the file is truncated there with a warning. Everything before that
//!   point is returned, nothing after it is trusted, since a corrupt length field makes any
//!   later framing meaningless.
//! - Segments are deleted only by `remove_segments_before`, called by the live store once every
//!   trace they hold is in a durable block.

mod replay;
mod writer;

pub use replay::{replay, ReplayReport};
pub use writer::{FsyncObserver, Wal, WalOptions};

/// Segment sequence number.
pub type SegmentSeq = u64;

pub(crate) const MAGIC: &[u8; 8] = b"ANDWAL01";
pub(crate) const RECORD_HEADER_BYTES: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("wal I/O error on `{path}`: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("wal writer has stopped")]
    Stopped,
    #[error("wal record of {0} bytes is larger than the 4 GiB record limit")]
    RecordTooLarge(usize),
}

impl WalError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        WalError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

pub(crate) fn segment_path(dir: &std::path::Path, seq: SegmentSeq) -> std::path::PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// The segments in `dir`, sorted by sequence number.
pub(crate) fn list_segments(dir: &std::path::Path) -> Result<Vec<SegmentSeq>, WalError> {
    let mut segments = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|error| WalError::io(dir, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| WalError::io(dir, error))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|name| name.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<SegmentSeq>() {
            segments.push(seq);
        }
    }
    segments.sort_unstable();
    Ok(segments)
}

pub(crate) fn encode_record(payload: &[u8], out: &mut Vec<u8>) -> Result<(), WalError> {
    let len = u32::try_from(payload.len()).map_err(|_| WalError::RecordTooLarge(payload.len()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

#[cfg(test)]
mod tests;
