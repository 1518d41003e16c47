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

#[test]
fn removing_segments_spares_the_active_one() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::open(
        dir.path(),
        WalOptions {
            fsync: false,
            max_segment_bytes: 2048,
        },
        None,
    )
    .expect("open");
    runtime.block_on(async {
        wal.append(vec![1]).await.expect("append");
        let new_seq = wal.rotate().await.expect("rotate");
        wal.append(vec![2]).await.expect("append");
        assert_eq!(wal.remove_segments_before(new_seq + 10).expect("remove"), 1);
    });
    assert_eq!(replay_all(dir.path()), vec![vec![2]]);
}
