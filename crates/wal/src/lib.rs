//! The write-ahead log: a push is acknowledged only after its record is written and fsynced
//! here, so an acknowledged span survives `kill -9` and power loss.
//!
//! # On-disk format
//! A directory of segment files named `{seq:020}.wal`, `seq` increasing from 1. Each segment
//! starts with an 8-byte magic naming its format version, followed by records. The writer
//! produces version 2; replay reads versions 1 and 2 side by side. A released version never
//! changes in place: a new layout gets a new magic and its own module, and the old one stays
//! readable.
//!
//! Version 2 (`ANDWAL02`, `v2.rs`), written since replay learnt to resynchronise:
//! ```text
//! +---------------------+-------------+-------------------------+------------------------+--------------------+
//! | marker: D2 8B F5 A6 | len: u32 LE | crc32c(payload): u32 LE | crc32c(header): u32 LE | payload: len bytes |
//! +---------------------+-------------+-------------------------+------------------------+--------------------+
//! ```
//! The header checksum covers the marker, the length and the payload checksum, so a candidate
//! record is checked in O(1) before its payload is checksummed.
//!
//! Version 1 (`ANDWAL01`, `v1.rs`), read only:
//! ```text
//! +----------------+----------------+--------------------+
//! | len: u32 LE    | crc32c: u32 LE | payload: len bytes |
//! +----------------+----------------+--------------------+
//! ```
//! An empty version 1 record is read as damage (its framing is eight zero bytes, like a
//! zero-filled region; the live store never wrote one). The payload is opaque to the WAL (the
//! live store frames the tenant and the OTLP batch inside it).
//!
//! Binaries from before version 2 do not know its magic: they would take a version 2 segment for
//! one with a damaged header and empty it. Stop with SIGTERM (which flushes every trace to a
//! block and leaves nothing to replay) before going back to such a binary.
//!
//! # Invariants
//! - Records are appended only to the newest segment, which `Wal::open` always creates anew:
//!   nothing is ever appended to a segment that existed before the process started. Older
//!   segments are never modified except to cut off an unreadable tail during replay.
//! - An append's future resolves only after `fdatasync` of the segment returned (when `fsync` is
//!   on); many appends share one fsync (group commit): the writer thread drains every pending
//!   append, writes them with one `write`, syncs once, then acknowledges them all.
//! - Replay returns every intact record. A damaged record (checksum mismatch, broken header,
//!   length past the end of the file) costs only itself: replay skips the damaged region and
//!   resynchronises on the next intact record (version 2: next marker whose header checksum
//!   matches; version 1: next offset whose length fits and whose payload checksum matches), and
//!   reports how many regions and bytes it skipped. Resynchronising checksums at most 16 × the
//!   segment's size; past that it gives up and leaves the rest of the segment unread, not cut.
//! - Bytes after the last intact record are the tail, a write torn by a crash: the file is cut
//!   there with a warning. Damage in the middle is left on disk, never truncated, because
//!   acknowledged records follow it.
//! - Segments are deleted only by `remove_segments_before`, called by the live store once every
//!   trace they hold is in a durable block.

mod replay;
mod scan;
mod v1;
mod v2;
mod writer;

pub use replay::{replay, DamagedSegment, ReplayReport};
pub use writer::{Appending, FsyncObserver, Generation, Wal, WalOptions};

/// Segment sequence number.
pub type SegmentSeq = u64;

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

#[cfg(test)]
mod tests;
