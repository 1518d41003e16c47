//! WAL replay over damaged segments. Each input becomes four segment files in one directory:
//! 1. the input as-is (a segment whose header is the input's first bytes);
//! 2. `ANDWAL01` + the input (version 1 framing over arbitrary bytes);
//! 3. `ANDWAL02` + the input (version 2 framing over arbitrary bytes);
//! 4. a well-formed version 1 or 2 segment built from the input (records, torn records followed
//!    by more appends), then damaged by the input (byte flips, overwrites, a cut, garbage at the
//!    end).
//!
//! `andante_wal::replay` must not panic, and must be deterministic: a second replay, after the
//! first cut the torn tails, returns the same records and cuts nothing more. A replay only ever
//! shortens a segment, keeping every byte up to its last intact record. For segment 4 the
//! target knows which records are intact; when no damage happened to forge a record header or
//! checksum (the fuzzer can, through its comparison tracing; real damage cannot, in practice),
//! replay must return exactly the intact records, in order: damage costs only the records it
//! touches.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

const V1_MAGIC: &[u8; 8] = b"ANDWAL01";
const V2_MAGIC: &[u8; 8] = b"ANDWAL02";
const V2_MARKER: [u8; 4] = [0xD2, 0x8B, 0xF5, 0xA6];
const V2_HEADER_BYTES: usize = 16;
const V1_HEADER_BYTES: usize = 8;

/// One directory for the whole run (a fuzz process runs inputs one at a time), in memory
/// (`/dev/shm`) where there is one: every input writes and reads four files.
fn wal_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let mut builder = tempfile::Builder::new();
        builder.prefix("andante-fuzz-wal-");
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            if let Ok(dir) = builder.tempdir_in(shm) {
                return dir;
            }
        }
        builder.tempdir().expect("create a temporary directory")
    })
    .path()
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// How the structured segment is built and damaged.
#[derive(Arbitrary, Debug)]
struct Plan {
    version_2: bool,
    writes: Vec<Write>,
    damage: Vec<Damage>,
}

#[derive(Arbitrary, Debug)]
enum Write {
    /// A whole record.
    Record(Vec<u8>),
    /// A record cut short after `keep` bytes of its framing (an I/O error mid-write), followed
    /// by the next appends.
    Torn { payload: Vec<u8>, keep: u16 },
}

#[derive(Arbitrary, Debug)]
enum Damage {
    Flip { offset: u32, mask: u8 },
    Overwrite { offset: u32, bytes: Vec<u8> },
    Zero { offset: u32, len: u8 },
    Truncate { offset: u32 },
    AppendGarbage(Vec<u8>),
}

/// A record as written: where it starts and its payload's range.
struct Written {
    start: usize,
    payload: std::ops::Range<usize>,
}

fn encode(version_2: bool, payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c(payload).to_le_bytes();
    if version_2 {
        let header_start = out.len();
        out.extend_from_slice(&V2_MARKER);
        out.extend_from_slice(&len);
        out.extend_from_slice(&crc);
        let header_crc = crc32c::crc32c(&out[header_start..]);
        out.extend_from_slice(&header_crc.to_le_bytes());
    } else {
        out.extend_from_slice(&len);
        out.extend_from_slice(&crc);
    }
    out.extend_from_slice(payload);
}

/// The structured segment, the records expected to survive (payload bytes) if nothing was
/// forged, and whether the check applies.
struct Built {
    data: Vec<u8>,
    expected: Vec<Vec<u8>>,
    strict: bool,
}

fn build(plan: &Plan) -> Built {
    let version_2 = plan.version_2;
    let mut data = if version_2 { V2_MAGIC.to_vec() } else { V1_MAGIC.to_vec() };
    let mut written: Vec<Written> = Vec::new();
    // Where torn records begin: their headers are real (the scanner must cope with them).
    let mut torn_starts: Vec<usize> = Vec::new();
    for write in plan.writes.iter().take(16) {
        match write {
            Write::Record(payload) => {
                // The live store never writes an empty payload (version 1 reads one as damage).
                if payload.is_empty() {
                    continue;
                }
                let start = data.len();
                encode(version_2, payload, &mut data);
                let header = if version_2 { V2_HEADER_BYTES } else { V1_HEADER_BYTES };
                written.push(Written {
                    start,
                    payload: start + header..data.len(),
                });
            }
            Write::Torn { payload, keep } => {
                let mut record = Vec::new();
                encode(version_2, payload, &mut record);
                let keep = (*keep as usize) % record.len().max(1);
                if keep > 0 {
                    torn_starts.push(data.len());
                    data.extend_from_slice(&record[..keep]);
                }
            }
        }
    }
    let pristine = data.clone();
    let mut touched = vec![false; data.len()];
    let mut cut_at = data.len();
    for damage in plan.damage.iter().take(8) {
        if data.is_empty() {
            break;
        }
        match damage {
            Damage::Flip { offset, mask } => {
                let at = *offset as usize % data.len();
                data[at] ^= mask;
                if at < touched.len() {
                    touched[at] = true;
                }
            }
            Damage::Overwrite { offset, bytes } => {
                let at = *offset as usize % data.len();
                for (index, byte) in bytes.iter().take(64).enumerate() {
                    let Some(slot) = data.get_mut(at + index) else { break };
                    *slot = *byte;
                    if at + index < touched.len() {
                        touched[at + index] = true;
                    }
                }
            }
            Damage::Zero { offset, len } => {
                let at = *offset as usize % data.len();
                let end = (at + *len as usize).min(data.len());
                data[at..end].fill(0);
                for slot in touched.iter_mut().take(end).skip(at) {
                    *slot = true;
                }
            }
            Damage::Truncate { offset } => {
                let at = *offset as usize % (data.len() + 1);
                data.truncate(at);
                cut_at = cut_at.min(at);
            }
            Damage::AppendGarbage(bytes) => data.extend(bytes.iter().take(256)),
        }
    }
    // A byte "touched" but given its old value is not damage.
    for (index, slot) in touched.iter_mut().enumerate() {
        if *slot && data.get(index) == Some(&pristine[index]) {
            *slot = false;
        }
    }
    let intact = |record: &Written| {
        record.payload.end <= cut_at
            && record.payload.end <= data.len()
            && !touched[record.start..record.payload.end].iter().any(|t| *t)
    };
    let expected = written
        .iter()
        .filter(|record| intact(record))
        .map(|record| data[record.payload.clone()].to_vec())
        .collect();
    // A torn record that later bytes happen to complete (appended garbage equal to its missing
    // payload) is a real record: whether replay returns it is not for this check to say.
    let completed = |start: &usize| {
        let header_bytes = if version_2 { V2_HEADER_BYTES } else { V1_HEADER_BYTES };
        let Some(header) = data.get(*start..start + header_bytes) else {
            return false;
        };
        let len_at = if version_2 { 4 } else { 0 };
        let len = u32::from_le_bytes([
            header[len_at],
            header[len_at + 1],
            header[len_at + 2],
            header[len_at + 3],
        ]) as usize;
        let payload_start = start + header_bytes;
        data.get(payload_start..payload_start.saturating_add(len))
            .is_some_and(|payload| crc32c::crc32c(payload).to_le_bytes() == header[len_at + 4..len_at + 8])
    };
    // Likewise a record cut by a truncation and completed again by appended bytes (finding 8:
    // garbage that began with the cut-off payload).
    let torn_completed = torn_starts
        .iter()
        .chain(written.iter().filter(|record| !intact(record)).map(|record| &record.start))
        .any(completed);
    // Offsets where a header was written and is still as written: not forgeries.
    let header_bytes = if version_2 { V2_HEADER_BYTES } else { V1_HEADER_BYTES };
    let real_headers: Vec<usize> = written
        .iter()
        .map(|record| record.start)
        .chain(torn_starts)
        .filter(|start| {
            let range = *start..start + header_bytes;
            range.end <= cut_at.min(data.len())
                && range.end <= pristine.len()
                && data[range.clone()] == pristine[range]
        })
        .collect();
    let magic_intact = data.len() >= 8 && data[..8] == pristine[..8];
    let intact_starts: Vec<usize> = written
        .iter()
        .filter(|record| intact(record))
        .map(|record| record.start)
        .collect();
    let allowed = if version_2 { real_headers } else { intact_starts };
    let strict = magic_intact && !torn_completed && !forged(&data, version_2, &allowed);
    Built {
        data,
        expected,
        strict,
    }
}

/// Whether some offset not in `allowed` frames something the scanner could take for a record:
/// in version 2 a marker with a matching header checksum (allowed: the headers written, still
/// as written), in version 1 a non-empty payload whose checksum matches (allowed: the intact
/// records). Such a forgery can legitimately mislead replay.
fn forged(data: &[u8], version_2: bool, allowed: &[usize]) -> bool {
    (8..data.len()).any(|offset| {
        if allowed.contains(&offset) {
            return false;
        }
        if version_2 {
            let Some(header) = data.get(offset..offset + V2_HEADER_BYTES) else {
                return false;
            };
            header[..4] == V2_MARKER
                && crc32c::crc32c(&header[..12]).to_le_bytes() == header[12..16]
        } else {
            let Some(header) = data.get(offset..offset + V1_HEADER_BYTES) else {
                return false;
            };
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let start = offset + V1_HEADER_BYTES;
            let Some(payload) = data.get(start..start.saturating_add(len)) else {
                return false;
            };
            len > 0 && crc32c::crc32c(payload).to_le_bytes() == header[4..8]
        }
    })
}

fn replay(dir: &Path) -> (Vec<(u64, Vec<u8>)>, andante_wal::ReplayReport) {
    let mut records = Vec::new();
    let report = andante_wal::replay(dir, |seq, payload| records.push((seq, payload.to_vec())))
        .expect("replay of a readable directory");
    (records, report)
}

fuzz_target!(|data: &[u8]| {
    let dir = wal_dir();
    let mut v1 = V1_MAGIC.to_vec();
    v1.extend_from_slice(data);
    let mut v2 = V2_MAGIC.to_vec();
    v2.extend_from_slice(data);
    let plan = Plan::arbitrary_take_rest(Unstructured::new(data)).unwrap_or(Plan {
        version_2: true,
        writes: Vec::new(),
        damage: Vec::new(),
    });
    let built = build(&plan);
    if std::env::var_os("ANDANTE_FUZZ_PRINT").is_some() {
        eprintln!("{plan:?}\nbuilt segment (strict: {}): {:02x?}\nexpected: {:02x?}", built.strict, built.data, built.expected);
    }
    let segments: [&[u8]; 4] = [data, &v1, &v2, &built.data];
    for (index, segment) in segments.iter().enumerate() {
        std::fs::write(segment_path(dir, index as u64 + 1), segment).expect("write a segment");
    }

    let (first, first_report) = replay(dir);
    assert_eq!(first_report.segments, 4);
    assert_eq!(first_report.records, first.len());
    // Replay only cuts tails, and never past an intact record.
    for (index, segment) in segments.iter().enumerate() {
        let seq = index as u64 + 1;
        let after = std::fs::read(segment_path(dir, seq)).expect("read a segment back");
        let truncated = first_report
            .truncated
            .iter()
            .find(|(truncated_seq, _)| *truncated_seq == seq)
            .map(|(_, bytes)| *bytes);
        match truncated {
            None => assert_eq!(&after[..], *segment, "segment {seq} changed without a cut"),
            Some(bytes) => {
                let kept = segment.len() as u64 - bytes;
                let rewritten_empty = kept < 8 && after == V2_MAGIC;
                assert!(
                    rewritten_empty || (after.len() as u64 == kept && segment.starts_with(&after)),
                    "segment {seq} was cut wrongly: {} -> {} bytes, report says {bytes} dropped",
                    segment.len(),
                    after.len()
                );
            }
        }
    }

    let (second, second_report) = replay(dir);
    assert_eq!(first, second, "a second replay returned different records");
    assert!(
        second_report.truncated.is_empty(),
        "a second replay cut again: {:?}",
        second_report.truncated
    );
    assert_eq!(
        (first_report.skipped_regions, first_report.skipped_bytes),
        (second_report.skipped_regions, second_report.skipped_bytes),
        "a second replay skipped different damage"
    );

    if built.strict {
        let replayed: Vec<&Vec<u8>> = first
            .iter()
            .filter(|(seq, _)| *seq == 4)
            .map(|(_, payload)| payload)
            .collect();
        let expected: Vec<&Vec<u8>> = built.expected.iter().collect();
        assert_eq!(
            replayed, expected,
            "replay of a damaged segment did not return exactly its intact records"
        );
    }
});
