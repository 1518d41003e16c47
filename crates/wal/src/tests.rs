//! A model-based test of the WAL: random appends interleaved with crashes that tear the tail
//! or corrupt a record. The model is a list of records with their segment and end offset; after
//! every crash, replay must return exactly the records the model says survive.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Action {
    Append(Vec<u8>),
    /// Crash, then cut this many bytes off the newest segment.
    TearTail(u16),
    /// Crash, then flip one bit in the payload of the record at this (modular) index.
    Corrupt(usize),
    /// Crash with nothing damaged.
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Action::Append),
        1 => (1u16..400).prop_map(Action::TearTail),
        1 => any::<usize>().prop_map(Action::Corrupt),
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

fn replay_all(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    replay(dir, |_, payload| seen.push(payload.to_vec())).expect("replay succeeds");
    seen
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
    let mut model: Vec<ModelRecord> = Vec::new();
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
                let end = start + (RECORD_HEADER_BYTES + payload.len()) as u64;
                segment_end.insert(seq, end);
                model.push(ModelRecord {
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
                damage(dir.path(), crash, &mut model);
                let replayed = replay_all(dir.path());
                let expected: Vec<Vec<u8>> =
                    model.iter().map(|record| record.payload.clone()).collect();
                assert_eq!(replayed, expected);
                // A second replay of the repaired files gives the same answer.
                assert_eq!(replay_all(dir.path()), expected);
                segment_end.clear();
                wal = Some(Wal::open(dir.path(), options(), None).expect("reopen"));
            }
        }
    }
}

fn damage(dir: &std::path::Path, crash: Action, model: &mut Vec<ModelRecord>) {
    match crash {
        Action::TearTail(cut) => {
            let Some(newest) = list_segments(dir).expect("list").last().copied() else {
                return;
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
            model.retain(|record| record.seq != newest || record.end <= new_len);
        }
        Action::Corrupt(index) => {
            let candidates: Vec<usize> = (0..model.len())
                .filter(|i| !model[*i].payload.is_empty())
                .collect();
            if candidates.is_empty() {
                return;
            }
            let victim = model[candidates[index % candidates.len()]].clone();
            let path = segment_path(dir, victim.seq);
            let mut data = std::fs::read(&path).expect("read");
            data[(victim.start as usize) + RECORD_HEADER_BYTES] ^= 0x01;
            std::fs::write(&path, data).expect("write");
            model.retain(|record| record.seq != victim.seq || record.start < victim.start);
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn replay_returns_exactly_the_surviving_records(actions in proptest::collection::vec(action(), 1..60)) {
        run(actions);
    }
}

#[test]
fn group_commit_acknowledges_every_concurrent_append() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), WalOptions::default(), None).expect("open");
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let wal = wal.clone();
            tasks.push(tokio::spawn(async move {
                wal.append(i.to_le_bytes().to_vec()).await
            }));
        }
        for task in tasks {
            task.await.expect("join").expect("append");
        }
    });
    drop(wal);
    let mut values: Vec<u32> = replay_all(dir.path())
        .into_iter()
        .map(|payload| u32::from_le_bytes(payload.try_into().expect("4 bytes")))
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..200).collect::<Vec<_>>());
}

#[test]
fn removing_segments_spares_the_active_one() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(dir.path(), options(), None).expect("open");
    runtime.block_on(async {
        wal.append(vec![1]).await.expect("append");
        let new_seq = wal.rotate().await.expect("rotate");
        wal.append(vec![2]).await.expect("append");
        assert_eq!(wal.remove_segments_before(new_seq + 10).expect("remove"), 1);
    });
    assert_eq!(replay_all(dir.path()), vec![vec![2]]);
}
