//! WAL tests: the model-based test of appends, crashes and damage (`model`), replay of damaged,
//! torn and version 1 segments (`corruption`), and the writer's own behaviour (here).

mod corruption;
mod model;

use super::*;

pub(super) fn replay_all(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    replay(dir, |_, payload| seen.push(payload.to_vec())).expect("replay succeeds");
    seen
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

/// A WAL without fsync in a fresh directory, with a single-threaded runtime to drive it.
fn unsynced_wal(max_segment_bytes: u64) -> (tokio::runtime::Runtime, tempfile::TempDir, Wal) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let options = WalOptions {
        fsync: false,
        max_segment_bytes,
    };
    let wal = Wal::open(dir.path(), options, None).expect("open");
    (runtime, dir, wal)
}

#[test]
fn removing_segments_spares_the_active_one() {
    let (runtime, dir, wal) = unsynced_wal(2048);
    runtime.block_on(async {
        wal.append(vec![1]).await.expect("append");
        let new_seq = wal.rotate().await.expect("rotate");
        wal.append(vec![2]).await.expect("append");
        assert_eq!(wal.remove_segments_before(new_seq + 10).expect("remove"), 1);
    });
    assert_eq!(replay_all(dir.path()), vec![vec![2]]);
}

#[test]
fn an_append_from_an_older_generation_is_refused_and_later_ones_land_in_order() {
    let (runtime, dir, wal) = unsynced_wal(u64::MAX);
    runtime.block_on(async {
        let start = wal.generation();
        // Queued without waiting: the rotation sits between them in the queue.
        let first = wal.submit(vec![1], Some(start)).expect("queued");
        let rotated = wal.submit_rotate().expect("queued");
        let stale = wal.submit(vec![2], Some(start)).expect("queued");
        let current = wal.submit(vec![3], Some(start + 1)).expect("queued");
        let unchecked = wal.submit(vec![4], None).expect("queued");
        let first_seq = first.durable().await.expect("same generation");
        let new_seq = rotated.await.expect("rotated");
        assert_eq!(new_seq, first_seq + 1);
        let refusal = stale
            .durable()
            .await
            .expect_err("decided before the rotation");
        assert!(refusal.to_string().contains("generation"), "{refusal}");
        assert_eq!(current.durable().await.expect("current"), new_seq);
        assert_eq!(unchecked.durable().await.expect("unchecked"), new_seq);
        assert_eq!(wal.generation(), start + 1);
    });
    assert_eq!(replay_all(dir.path()), vec![vec![1], vec![3], vec![4]]);
}
