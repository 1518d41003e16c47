//! A model-based test of the WAL: random appends interleaved with crashes that tear the tail or
//! damage bytes anywhere in a record (marker, length, checksums, payload), possibly running into
//! the records after it. The model is a list of records with their segment and byte range; after
//! every crash, replay must return exactly the records the model says survive: tearing costs the
//! records past the cut, damage costs exactly the records whose bytes it touched.

use std::collections::HashMap;
use std::ops::Range;

use proptest::prelude::*;

use super::replay_all;
use crate::v2::{HEADER_BYTES, MAGIC};
use crate::*;

#[derive(Debug, Clone)]
enum Action {
    Append(Vec<u8>),
    /// Crash, then cut this many bytes off the newest segment.
    TearTail(u16),
    /// Crash, then flip `width` bytes from `position` (modulo the record's size) in the record at
    /// `index` (modulo the surviving records).
    Damage {
        index: usize,
        position: usize,
        width: u8,
    },
    /// Crash with nothing damaged.
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Action::Append),
        1 => (1u16..400).prop_map(Action::TearTail),
        2 => (any::<usize>(), any::<usize>(), 1u8..=16)
            .prop_map(|(index, position, width)| Action::Damage { index, position, width }),
        1 => Just(Action::Restart),
    ]
}

#[derive(Debug, Clone)]
struct ModelRecord {
    seq: SegmentSeq,
    start: u64,
    end: u64,
    payload: Vec<u8>,
}

#[derive(Default)]
struct Model {
    /// The records replay must return, oldest first.
    records: Vec<ModelRecord>,
    /// Byte ranges damaged so far, per segment. New damage never overlaps them: flipping the
    /// same bytes twice could restore a lost record.
    damaged: HashMap<SegmentSeq, Vec<Range<u64>>>,
}

fn options() -> WalOptions {
    // Small segments so that rotation happens inside the test.
    WalOptions {
        fsync: false,
        max_segment_bytes: 2048,
    }
}

fn run(actions: Vec<Action>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Model::default();
    let mut segment_end: HashMap<SegmentSeq, u64> = HashMap::new();
    let mut wal = Some(Wal::open(dir.path(), options(), None).expect("open"));
    for action in actions {
        match action {
            Action::Append(payload) => {
                let handle = wal.as_ref().expect("open wal");
                let seq = runtime
                    .block_on(handle.append(payload.clone()))
                    .expect("append");
                let start = *segment_end.entry(seq).or_insert(MAGIC.len() as u64);
                let end = start + (HEADER_BYTES + payload.len()) as u64;
                segment_end.insert(seq, end);
                model.records.push(ModelRecord {
                    seq,
                    start,
                    end,
                    payload,
                });
            }
            crash => {
                drop(wal.take());
                // The writer thread exits once its handle is gone; give it the moment it needs.
                std::thread::sleep(std::time::Duration::from_millis(2));
                let damaged_in_the_middle = damage(dir.path(), crash, &mut model);
                let mut replayed = Vec::new();
                let report = replay(dir.path(), |_, payload| replayed.push(payload.to_vec()))
                    .expect("replay");
                let expected: Vec<Vec<u8>> = model
                    .records
                    .iter()
                    .map(|record| record.payload.clone())
                    .collect();
                assert_eq!(replayed, expected);
                if damaged_in_the_middle {
                    assert!(
                        report.skipped_regions > 0 && report.skipped_bytes > 0,
                        "{report:?}"
                    );
                }
                // A second replay of the repaired files gives the same answer.
                assert_eq!(replay_all(dir.path()), expected);
                segment_end.clear();
                wal = Some(Wal::open(dir.path(), options(), None).expect("reopen"));
            }
        }
    }
}

/// Applies a crash's damage to the files and to the model; returns whether records that survive
/// follow the damage in its segment (so that replay must report a skipped region).
fn damage(dir: &std::path::Path, crash: Action, model: &mut Model) -> bool {
    match crash {
        Action::TearTail(cut) => {
            let Some(newest) = list_segments(dir).expect("list").last().copied() else {
                return false;
            };
            let path = segment_path(dir, newest);
            let len = std::fs::metadata(&path).expect("stat").len();
            let new_len = len.saturating_sub(u64::from(cut)).max(MAGIC.len() as u64);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("open")
                .set_len(new_len)
                .expect("cut");
            model
                .records
                .retain(|record| record.seq != newest || record.end <= new_len);
            false
        }
        Action::Damage {
            index,
            position,
            width,
        } => {
            if model.records.is_empty() {
                return false;
            }
            let victim = model.records[index % model.records.len()].clone();
            let path = segment_path(dir, victim.seq);
            let mut data = std::fs::read(&path).expect("read");
            let damage_start = victim.start + position as u64 % (victim.end - victim.start);
            let earlier_damage = model.damaged.entry(victim.seq).or_default();
            let next_damaged = earlier_damage
                .iter()
                .map(|range| range.start)
                .filter(|start| *start > damage_start)
                .min();
            let damage_end = (damage_start + u64::from(width))
                .min(data.len() as u64)
                .min(next_damaged.unwrap_or(u64::MAX));
            for byte in &mut data[damage_start as usize..damage_end as usize] {
                *byte ^= 0xFF;
            }
            std::fs::write(&path, data).expect("write");
            earlier_damage.push(damage_start..damage_end);
            let touched = |record: &ModelRecord| {
                record.seq == victim.seq && record.start < damage_end && damage_start < record.end
            };
            model.records.retain(|record| !touched(record));
            model
                .records
                .iter()
                .any(|record| record.seq == victim.seq && record.start >= damage_end)
        }
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn replay_returns_exactly_the_surviving_records(actions in proptest::collection::vec(action(), 1..60)) {
        run(actions);
    }
}
