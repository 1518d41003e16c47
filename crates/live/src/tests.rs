//! Live store behaviour: read-your-writes, replay after a crash, cutting to blocks, limits.

use std::time::Duration;

use andante_block::blocklist::BlockList;
use andante_ingest::{ExportTraceServiceRequest, IngestLimits};
use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use andante_model::{span_count, TenantId, TraceId};
use andante_storage::Storage;
use andante_wal::WalOptions;

use super::*;

fn request(traces: &[u8], spans_per_trace: u8) -> ExportTraceServiceRequest {
    let mut spans = Vec::new();
    for trace in traces {
        for span in 1..=spans_per_trace {
            spans.push(Span {
                trace_id: vec![*trace; 16],
                span_id: vec![span; 8],
                name: format!("op{span}"),
                start_time_unix_nano: 1_000 + u64::from(span),
                end_time_unix_nano: 2_000,
                ..Default::default()
            });
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn config() -> LiveConfig {
    LiveConfig {
        trace_idle: Duration::ZERO,
        trace_max_live: Duration::from_secs(60),
        block_max_age: Duration::ZERO,
        ..LiveConfig::default()
    }
}

fn open(
    dir: &std::path::Path,
    storage: &Storage,
    blocks: &BlockList,
    config: LiveConfig,
) -> std::sync::Arc<LiveStore> {
    let options = WalOptions {
        fsync: false,
        ..WalOptions::default()
    };
    LiveStore::open(
        &dir.join("wal"),
        options,
        None,
        storage.clone(),
        blocks.clone(),
        config,
    )
    .expect("open")
}

#[tokio::test]
async fn acknowledged_spans_are_readable_and_survive_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::in_memory();
    let tenant = TenantId::new("acme").expect("tenant");
    let store = open(dir.path(), &storage, &BlockList::default(), config());
    let outcome = store
        .push(&tenant, request(&[1, 2], 3), 100)
        .await
        .expect("push");
    assert_eq!((outcome.accepted_spans, outcome.refused_spans), (6, 0));
    store
        .push(&tenant, request(&[1], 4), 100)
        .await
        .expect("push more of trace 1");
    assert_eq!(
        span_count(&store.find_trace(&tenant, &TraceId([1; 16]))),
        4,
        "repeated spans deduplicated"
    );
    let other = TenantId::new("other").expect("tenant");
    assert!(
        store.find_trace(&other, &TraceId([1; 16])).is_empty(),
        "tenants are isolated"
    );
    drop(store); // a crash: nothing flushed

    let restarted = open(dir.path(), &storage, &BlockList::default(), config());
    assert_eq!(
        span_count(&restarted.find_trace(&tenant, &TraceId([1; 16]))),
        4
    );
    assert_eq!(
        span_count(&restarted.find_trace(&tenant, &TraceId([2; 16]))),
        3
    );
}

#[tokio::test]
async fn ticks_cut_traces_into_blocks_and_free_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::in_memory();
    let blocks = BlockList::default();
    let tenant = TenantId::new("acme").expect("tenant");
    let store = open(dir.path(), &storage, &blocks, config());
    store
        .push(&tenant, request(&[1, 2, 3], 2), 100)
        .await
        .expect("push");
    let wal_before = store.wal().expect("wal").disk_bytes();
    store.tick().await;
    let written = blocks.blocks("acme");
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].meta.span_count, 6);
    assert!(
        store.find_trace(&tenant, &TraceId([1; 16])).is_empty(),
        "memory released after the block"
    );
    assert!(
        store.wal().expect("wal").disk_bytes() < wal_before,
        "old wal segment removed"
    );
    let found = written[0]
        .find_trace(&storage, TraceId([2; 16]))
        .await
        .expect("read")
        .trace
        .expect("in block");
    assert_eq!(span_count(&found.resource_spans), 2);
    // Nothing left to replay: a restart brings back no traces.
    drop(store);
    let restarted = open(dir.path(), &storage, &blocks, config());
    assert!(restarted.find_trace(&tenant, &TraceId([1; 16])).is_empty());
}

#[tokio::test]
async fn limits_refuse_with_their_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::in_memory();
    let tenant = TenantId::new("acme").expect("tenant");
    let limits = IngestLimits {
        max_live_traces: 2,
        max_bytes_per_trace: 400,
        rate_limit_bytes: 1000,
        burst_size_bytes: 1000,
    };
    let store = open(
        dir.path(),
        &storage,
        &BlockList::default(),
        LiveConfig { limits, ..config() },
    );

    let outcome = store
        .push(&tenant, request(&[1, 2, 3], 1), 10)
        .await
        .expect("partial");
    assert_eq!((outcome.accepted_spans, outcome.refused_spans), (2, 1));
    assert!(
        outcome.message.contains("limits.max-live-traces"),
        "{}",
        outcome.message
    );

    let too_big = store
        .push(&tenant, request(&[1], 40), 10)
        .await
        .expect_err("trace too large");
    assert!(
        too_big.to_string().contains("limits.max-bytes-per-trace"),
        "{too_big}"
    );
    assert_eq!(too_big.kind(), andante_model::ErrorKind::TooManyRequests);

    let limited = store
        .push(&tenant, request(&[1], 1), 5_000)
        .await
        .expect_err("rate limited");
    assert!(
        limited
            .to_string()
            .contains("limits.ingestion-rate-limit-bytes"),
        "{limited}"
    );
    let other = TenantId::new("other").expect("tenant");
    store
        .push(&other, request(&[9], 1), 900)
        .await
        .expect("another tenant is not limited");

    let discarded = store.metrics.discarded();
    let count = |reason: andante_ingest::RefusalReason| {
        discarded
            .iter()
            .filter(|(t, r, _)| t == "acme" && *r == reason)
            .map(|(_, _, n)| *n)
            .sum::<u64>()
    };
    assert_eq!(count(andante_ingest::RefusalReason::LiveTracesExceeded), 1);
    assert_eq!(count(andante_ingest::RefusalReason::TraceTooLarge), 40);
    assert_eq!(count(andante_ingest::RefusalReason::RateLimited), 1);
}

#[tokio::test]
async fn large_flushes_are_split_into_blocks_of_bounded_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::in_memory();
    let blocks = BlockList::default();
    let tenant = TenantId::new("acme").expect("tenant");
    let config = LiveConfig {
        block_max_bytes: 300,
        block_max_age: Duration::from_secs(3600),
        ..config()
    };
    let store = open(dir.path(), &storage, &blocks, config);
    store
        .push(&tenant, request(&[1, 2, 3, 4, 5, 6], 3), 100)
        .await
        .expect("push");
    store.flush_all().await;
    let written = blocks.blocks("acme");
    assert!(written.len() >= 3, "{} blocks", written.len());
    assert_eq!(written.iter().map(|h| h.meta.span_count).sum::<u64>(), 18);
    assert_eq!(store.memory_totals(), (0, 0));
}

/// Issue 10, finding 9: bytes flipped in the middle of a WAL segment used to cut the segment
/// there, losing every later acknowledged push. Now only the damaged push is lost.
#[tokio::test]
async fn damage_in_the_middle_of_the_wal_costs_only_the_damaged_push() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Storage::in_memory();
    let tenant = TenantId::new("acme").expect("tenant");
    let store = open(dir.path(), &storage, &BlockList::default(), config());
    for trace in 1..=200u8 {
        store
            .push(&tenant, request(&[trace], 2), 100)
            .await
            .expect("push");
    }
    let segment = store.wal().expect("wal").active_segment();
    drop(store); // a crash: nothing flushed

    let path = dir.path().join("wal").join(format!("{segment:020}.wal"));
    let mut data = std::fs::read(&path).expect("read segment");
    let middle = data.len() / 2;
    for byte in &mut data[middle..middle + 16] {
        *byte ^= 0xFF;
    }
    std::fs::write(&path, &data).expect("write segment");

    let restarted = open(dir.path(), &storage, &BlockList::default(), config());
    let present: Vec<u8> = (1..=200u8)
        .filter(|trace| span_count(&restarted.find_trace(&tenant, &TraceId([*trace; 16]))) == 2)
        .collect();
    // Each push is one record; 16 bytes touch at most two of them.
    assert!(
        present.len() >= 198,
        "only {} of 200 pushes replayed",
        present.len()
    );
    assert!(
        present.contains(&200),
        "pushes after the damage are replayed"
    );
    let load =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    let metrics = &restarted.metrics;
    assert_eq!(
        load(&metrics.wal_replayed_records),
        present.len() as u64,
        "one record per push"
    );
    assert_eq!(load(&metrics.wal_corrupt_regions), 1);
    assert!(load(&metrics.wal_corrupt_bytes) >= 16);
    assert_eq!(load(&metrics.wal_truncated_bytes), 0);
    assert_eq!(
        std::fs::metadata(&path).expect("stat").len(),
        data.len() as u64,
        "the segment is not cut"
    );
}

/// Remembers every offset a log-fed store commits.
#[derive(Default)]
struct Commits(parking_lot::Mutex<Vec<u64>>);

impl OffsetCommit for Commits {
    fn commit(&self, offset: u64) -> futures::future::BoxFuture<'_, ()> {
        self.0.lock().push(offset);
        Box::pin(async {})
    }
}

fn logged(request: ExportTraceServiceRequest) -> Vec<andante_ingest::EncodedFragment> {
    andante_ingest::encode_by_trace(request)
}

/// The commit rule of a block-builder: the committed offset never passes a record whose spans
/// are not in a written block, so a consumer that crashes and resumes there loses nothing.
#[tokio::test]
async fn a_log_fed_store_commits_only_what_is_in_blocks_and_a_resumed_one_loses_nothing() {
    let storage = Storage::in_memory();
    let blocks = BlockList::default();
    let tenant = TenantId::new("acme").expect("tenant");
    // Traces are cut only once they are 200 ms old, so one written while another is held.
    let config = LiveConfig {
        trace_idle: Duration::from_secs(3600),
        trace_max_live: Duration::from_millis(200),
        block_max_age: Duration::ZERO,
        ..LiveConfig::default()
    };
    let commits = std::sync::Arc::new(Commits::default());
    let store = LiveStore::fed_by_log(
        "log/test/0".to_owned(),
        0,
        Some(commits.clone()),
        storage.clone(),
        blocks.clone(),
        config.clone(),
    );
    store
        .insert_logged(&tenant, logged(request(&[1], 2)), 0)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    store
        .insert_logged(&tenant, logged(request(&[2], 3)), 1)
        .await;
    assert_eq!(store.next_offset(), Some(2));
    store.tick().await;
    // Trace 1 is in a block; trace 2, from offset 1, is still held: the commit stops there.
    assert_eq!(blocks.totals().1, 2);
    assert_eq!(*commits.0.lock(), vec![1]);

    // A crash loses what was held; the consumer resumes at the committed offset.
    drop(store);
    let resumed = LiveStore::fed_by_log(
        "log/test/0".to_owned(),
        1,
        Some(commits.clone()),
        storage.clone(),
        blocks.clone(),
        config,
    );
    resumed
        .insert_logged(&tenant, logged(request(&[2], 3)), 1)
        .await;
    resumed.flush_all().await;
    assert_eq!(commits.0.lock().last(), Some(&2));
    assert_eq!(blocks.totals().1, 5, "every span of both records, once");
    // Each block says which reading of which stream wrote it, and the offsets it holds, so
    // readers can tell copies a replay made (none here: the ranges do not overlap).
    let mut sources: Vec<_> = blocks
        .blocks(tenant.as_str())
        .iter()
        .flat_map(|handle| handle.meta.sources.clone().expect("recorded"))
        .map(|source| (source.stream, source.from, source.to, source.incarnation))
        .collect();
    sources.sort();
    assert_eq!(sources.len(), 2);
    assert_eq!(
        (sources[0].0.as_str(), sources[0].1, sources[0].2),
        ("log/test/0", 0, 0)
    );
    assert_eq!(
        (sources[1].0.as_str(), sources[1].1, sources[1].2),
        ("log/test/0", 1, 1)
    );
    assert_ne!(sources[0].3, sources[1].3, "two readings");

    // Records that do not decode are passed over, so the commit can pass them.
    resumed.skip_logged(2).await;
    assert_eq!(resumed.next_offset(), Some(3));
    // A log-fed store takes no pushes.
    let refused = resumed.push(&tenant, request(&[3], 1), 10).await;
    assert!(matches!(refused, Err(PushError::NotWritable)));
}

/// A live-store's forgetting: a trace goes once every record of it lies before the builders'
/// committed offset, wherever it is (still live, or cut), and a trace with a record at or after
/// that offset stays whole.
#[tokio::test]
async fn retiring_drops_only_traces_wholly_before_the_offset() {
    let tenant = TenantId::new("acme").expect("tenant");
    let store = LiveStore::fed_by_log(
        "log/test/0".to_owned(),
        0,
        None,
        Storage::in_memory(),
        BlockList::default(),
        LiveConfig {
            trace_idle: Duration::ZERO,
            ..LiveConfig::default()
        },
    );
    store
        .insert_logged(&tenant, logged(request(&[1, 2], 1)), 0)
        .await;
    // Both cut (idle at once): the retiring reaches the completed traces too.
    store.cut();
    store
        .insert_logged(&tenant, logged(request(&[2, 3], 1)), 1)
        .await;
    store
        .insert_logged(&tenant, logged(request(&[4], 1)), 2)
        .await;
    assert_eq!(store.retire_logged(0), 0);
    // Trace 1 only at offset 0 (cut): gone. Trace 2 also at offset 1: kept whole.
    assert_eq!(store.retire_logged(1), 1);
    assert!(!store.holds(&tenant, &TraceId([1; 16])));
    assert_eq!(store.fragments(&tenant, &TraceId([2; 16])).len(), 2);
    // Traces 2 (in both maps) and 3 go together once both offsets are passed.
    assert_eq!(store.retire_logged(2), 2);
    let held: Vec<TraceId> = store
        .snapshot(&tenant)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(held, vec![TraceId([4; 16])]);
    assert_eq!(store.memory_totals().0, 1);
}
