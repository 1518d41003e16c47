//! Replay of damaged segments (issue 10, finding 9): damage costs the records it touches, not the
//! rest of the segment; a torn tail is cut off and appends after a restart stay readable; version
//! 1 segments still replay, with resynchronisation.

use std::path::Path;

use super::replay_all;
use crate::*;

fn payload(i: usize) -> Vec<u8> {
    format!("record {i:04} {}", "x".repeat(i % 37)).into_bytes()
}

/// Writes `count` records through the writer into one segment; returns the segment's path and
/// each record's start offset.
fn write_segment(dir: &Path, count: usize) -> (std::path::PathBuf, Vec<usize>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let wal = Wal::open(
        dir,
        WalOptions {
            fsync: false,
            ..WalOptions::default()
        },
        None,
    )
    .expect("open");
    let seq = wal.active_segment();
    let mut starts = Vec::new();
    let mut offset = v2::MAGIC.len();
    for i in 0..count {
        assert_eq!(
            runtime.block_on(wal.append(payload(i))).expect("append"),
            seq
        );
        starts.push(offset);
        offset += v2::HEADER_BYTES + payload(i).len();
    }
    drop(wal);
    std::thread::sleep(std::time::Duration::from_millis(2));
    (segment_path(dir, seq), starts)
}

fn flip(path: &Path, range: std::ops::Range<usize>) {
    let mut data = std::fs::read(path).expect("read");
    for byte in &mut data[range] {
        *byte ^= 0x5A;
    }
    std::fs::write(path, data).expect("write");
}

/// Flips `bytes` bytes at `offset_in_record` of record 5 of 10, then checks that replay returns
/// the other nine, reports one skipped region and leaves the file's length alone.
fn check_damage_costs_one_record(offset_in_record: usize, bytes: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, starts) = write_segment(dir.path(), 10);
    let length_before = std::fs::metadata(&path).expect("stat").len();
    let damage_start = starts[5] + offset_in_record;
    flip(&path, damage_start..damage_start + bytes);
    let mut replayed = Vec::new();
    let report = replay(dir.path(), |_, payload| replayed.push(payload.to_vec())).expect("replay");
    let expected: Vec<Vec<u8>> = (0..10).filter(|i| *i != 5).map(payload).collect();
    assert_eq!(replayed, expected, "damage at {offset_in_record}");
    assert_eq!(
        (report.skipped_regions, report.skipped_bytes),
        (1, (starts[6] - starts[5]) as u64)
    );
    assert_eq!(report.damaged.len(), 1);
    assert!(report.truncated.is_empty());
    assert_eq!(
        std::fs::metadata(&path).expect("stat").len(),
        length_before,
        "middle damage is never cut off"
    );
    assert_eq!(
        replay_all(dir.path()),
        expected,
        "the same at the next start"
    );
}

#[test]
fn flipped_bytes_in_the_marker_cost_only_that_record() {
    check_damage_costs_one_record(1, 2);
}

#[test]
fn flipped_bytes_in_the_length_cost_only_that_record() {
    check_damage_costs_one_record(5, 1);
    check_damage_costs_one_record(4, 4);
}

#[test]
fn flipped_bytes_in_the_checksums_cost_only_that_record() {
    check_damage_costs_one_record(9, 1);
    check_damage_costs_one_record(14, 1);
}

#[test]
fn flipped_bytes_in_the_payload_cost_only_that_record() {
    check_damage_costs_one_record(v2::HEADER_BYTES, 1);
    check_damage_costs_one_record(v2::HEADER_BYTES + 1, 16); // record 5 is 33 bytes long
}

#[test]
fn sixteen_flipped_bytes_in_the_middle_of_a_segment_cost_at_most_two_of_400_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, starts) = write_segment(dir.path(), 400);
    let middle = std::fs::metadata(&path).expect("stat").len() as usize / 2;
    flip(&path, middle..middle + 16);
    let touched: Vec<usize> = (0..400)
        .filter(|i| {
            starts[*i] < middle + 16 && middle < starts[*i] + v2::HEADER_BYTES + payload(*i).len()
        })
        .collect();
    let mut replayed = Vec::new();
    let report = replay(dir.path(), |_, payload| replayed.push(payload.to_vec())).expect("replay");
    let expected: Vec<Vec<u8>> = (0..400)
        .filter(|i| !touched.contains(i))
        .map(payload)
        .collect();
    assert!(expected.len() >= 398);
    assert_eq!(replayed, expected);
    assert_eq!(report.skipped_regions, 1);
}

#[test]
fn a_torn_tail_is_cut_and_appends_after_the_restart_replay_at_the_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, starts) = write_segment(dir.path(), 10);
    // The crash tore the last record: half of it reached the disk.
    let torn_len = starts[9] + v2::HEADER_BYTES / 2 + 3;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(torn_len as u64)
        .expect("tear");
    let report = replay(dir.path(), |_, _| {}).expect("replay");
    assert_eq!(report.truncated, vec![(1, (torn_len - starts[9]) as u64)]);
    assert_eq!(report.skipped_regions, 0, "a torn tail is not corruption");
    assert_eq!(
        std::fs::metadata(&path).expect("stat").len(),
        starts[9] as u64
    );

    // The restarted writer appends to a new segment, never after the cut.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let wal = Wal::open(
        dir.path(),
        WalOptions {
            fsync: false,
            ..WalOptions::default()
        },
        None,
    )
    .expect("reopen");
    assert_eq!(wal.active_segment(), 2);
    for i in 10..15 {
        runtime.block_on(wal.append(payload(i))).expect("append");
    }
    drop(wal);
    std::thread::sleep(std::time::Duration::from_millis(2));
    let mut replayed = Vec::new();
    let report =
        replay(dir.path(), |_, payload| replayed.push(payload.to_vec())).expect("second replay");
    assert_eq!(
        replayed,
        (0..15).filter(|i| *i != 9).map(payload).collect::<Vec<_>>()
    );
    assert!(
        report.truncated.is_empty() && report.skipped_regions == 0,
        "{report:?}"
    );
}

#[test]
fn a_damaged_segment_header_costs_no_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = write_segment(dir.path(), 5);
    flip(&path, 3..4);
    let mut replayed = Vec::new();
    let report = replay(dir.path(), |_, payload| replayed.push(payload.to_vec())).expect("replay");
    assert_eq!(replayed, (0..5).map(payload).collect::<Vec<_>>());
    assert_eq!(
        (report.skipped_regions, report.skipped_bytes),
        (1, v2::MAGIC.len() as u64)
    );
}

#[test]
fn a_segment_with_nothing_readable_becomes_an_empty_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = segment_path(dir.path(), 1);
    std::fs::write(&path, [0x42; 100]).expect("write garbage");
    let report = replay(dir.path(), |_, _| panic!("no record in garbage")).expect("replay");
    assert_eq!(report.truncated, vec![(1, 100)]);
    assert_eq!(std::fs::read(&path).expect("read"), v2::MAGIC);
}

#[test]
fn version_1_segments_still_replay_and_resynchronise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut data = v1::MAGIC.to_vec();
    let mut starts = Vec::new();
    for i in 0..6 {
        starts.push(data.len());
        v1::encode_record(&payload(i), &mut data);
    }
    // Record 2's length field is damaged, record 4's payload.
    data[starts[2] + 1] ^= 0x40;
    data[starts[4] + v1::HEADER_BYTES + 2] ^= 0x01;
    std::fs::write(segment_path(dir.path(), 1), &data).expect("write v1 segment");

    // The writer starts a version 2 segment after it; replay reads both, in order.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let wal = Wal::open(
        dir.path(),
        WalOptions {
            fsync: false,
            ..WalOptions::default()
        },
        None,
    )
    .expect("open");
    runtime.block_on(wal.append(payload(6))).expect("append");
    drop(wal);
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_eq!(
        &std::fs::read(segment_path(dir.path(), 2)).expect("read")[..8],
        v2::MAGIC
    );

    let mut replayed = Vec::new();
    let report = replay(dir.path(), |_, payload| replayed.push(payload.to_vec())).expect("replay");
    assert_eq!(
        replayed,
        [0, 1, 3, 5, 6].into_iter().map(payload).collect::<Vec<_>>()
    );
    assert_eq!(report.skipped_regions, 2);
    assert_eq!(
        report.skipped_bytes,
        ((starts[3] - starts[2]) + (starts[5] - starts[4])) as u64
    );
    assert!(report.truncated.is_empty());
}
