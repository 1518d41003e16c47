//! Block round trips: random traces written, uploaded, reopened and read back by ID and in full.

use andante_model::otlp::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use std::collections::{HashMap, HashSet};

use super::*;

fn value(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

pub(crate) fn attribute(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value(v),
        ..Default::default()
    }
}

pub(crate) fn random_trace(rng: &mut SmallRng, services: usize) -> Trace {
    let mut trace_id = [0u8; 16];
    rng.fill(&mut trace_id);
    trace_id[0] |= 1;
    let span_total = rng.random_range(1..12);
    let mut ids: Vec<Vec<u8>> = Vec::new();
    let mut resource_spans = Vec::new();
    for s in 0..rng.random_range(1..=services) {
        let resource = Resource {
            attributes: vec![
                attribute(
                    "service.name",
                    any_value::Value::StringValue(format!("svc-{s}")),
                ),
                attribute(
                    "k8s.pod.name",
                    any_value::Value::StringValue(format!("pod-{}", rng.random_range(0..3))),
                ),
            ],
            ..Default::default()
        };
        let mut spans = Vec::new();
        for _ in 0..span_total {
            let mut id = vec![0u8; 8];
            rng.fill(&mut id[..]);
            id[0] |= 1;
            let parent = if ids.is_empty() {
                Vec::new()
            } else {
                ids[rng.random_range(0..ids.len())].clone()
            };
            ids.push(id.clone());
            let start = 1_700_000_000_000_000_000 + rng.random_range(0..1_000_000_000u64);
            let mut attributes = vec![
                attribute(
                    "http.route",
                    any_value::Value::StringValue(format!("/r/{}", rng.random_range(0..5))),
                ),
                attribute("http.response.status_code", any_value::Value::IntValue(200)),
                attribute(
                    "user.id",
                    any_value::Value::StringValue(format!("u{}", rng.random::<u32>())),
                ),
                attribute("ratio", any_value::Value::DoubleValue(rng.random())),
                attribute("cached", any_value::Value::BoolValue(rng.random())),
                attribute(
                    "tags",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::StringValue("a".into())),
                        }],
                    }),
                ),
            ];
            if rng.random_bool(0.3) {
                attributes.push(attribute(
                    "bytes",
                    any_value::Value::BytesValue(vec![1, 2, 3]),
                ));
            }
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: id,
                parent_span_id: parent,
                name: format!("op-{}", rng.random_range(0..4)),
                kind: rng.random_range(0..6),
                start_time_unix_nano: start,
                end_time_unix_nano: start + rng.random_range(0..5_000_000),
                attributes,
                events: if rng.random_bool(0.3) {
                    vec![span::Event {
                        time_unix_nano: start + 5,
                        name: "exception".into(),
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                },
                links: if rng.random_bool(0.2) {
                    vec![span::Link {
                        trace_id: vec![7; 16],
                        span_id: vec![8; 8],
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                },
                status: Some(Status {
                    code: rng.random_range(0..3),
                    message: String::new(),
                }),
                trace_state: if rng.random_bool(0.1) {
                    "k=v".into()
                } else {
                    String::new()
                },
                ..Default::default()
            });
        }
        resource_spans.push(ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        });
    }
    Trace {
        trace_id: TraceId(trace_id),
        resource_spans,
    }
}

/// A canonical form: every span with its resource and scope, attributes sorted, spans sorted.
pub(crate) fn canonical(resource_spans: &[ResourceSpans]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for resource in resource_spans {
        for scope in &resource.scope_spans {
            for span in &scope.spans {
                let mut span = span.clone();
                span.attributes.sort_by(|a, b| a.key.cmp(&b.key));
                span.status.get_or_insert_with(Status::default);
                let mut bytes = resource
                    .resource
                    .clone()
                    .unwrap_or_default()
                    .encode_to_vec();
                bytes.extend(scope.scope.clone().unwrap_or_default().encode_to_vec());
                bytes.extend(span.encode_to_vec());
                out.push(bytes);
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn traces(seed: u64, count: usize) -> Vec<Trace> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut traces: Vec<Trace> = (0..count).map(|_| random_trace(&mut rng, 3)).collect();
    traces.sort_by_key(|trace| trace.trace_id);
    traces.dedup_by_key(|trace| trace.trace_id);
    traces
}

/// A block of tenant `t` at `compaction_level`, with row groups of `row_group_spans`.
pub(crate) fn new_block(compaction_level: u32, row_group_spans: usize) -> NewBlock {
    NewBlock {
        sources: Vec::new(),
        tenant_id: "t".into(),
        compaction_level,
        replaces: Vec::new(),
        options: v1::WriteOptions {
            row_group_spans,
            ..Default::default()
        },
    }
}

pub(crate) async fn write(
    storage: &Storage,
    traces: &[Trace],
    row_group_spans: usize,
) -> BlockHandle {
    let encoded = encode_block(traces, &new_block(0, row_group_spans)).expect("encode");
    let meta = encoded.meta.clone();
    upload_block(storage, encoded).await.expect("upload");
    let meta = read_meta(storage, "t", &meta.block_id.to_string())
        .await
        .expect("meta");
    BlockHandle::open(storage, meta).await.expect("open")
}

#[tokio::test]
async fn every_trace_reads_back_by_id_across_row_groups() {
    let storage = Storage::in_memory();
    let traces = traces(7, 300);
    let handle = write(&storage, &traces, 200).await;
    assert!(
        handle.meta.row_groups > 3,
        "several row groups: {}",
        handle.meta.row_groups
    );
    assert_eq!(handle.meta.trace_count as usize, traces.len());
    for trace in &traces {
        let found = handle
            .find_trace(&storage, trace.trace_id)
            .await
            .expect("read")
            .trace
            .expect("present");
        assert_eq!(
            canonical(&found.resource_spans),
            canonical(&trace.resource_spans),
            "{}",
            trace.trace_id
        );
    }
    let absent = TraceId([0xee; 16]);
    let miss = handle.find_trace(&storage, absent).await.expect("read");
    assert!(miss.trace.is_none());
    assert_eq!(miss.bytes_read, 0, "the in-memory index answers a miss");
    let hit = handle
        .find_trace(&storage, traces[7].trace_id)
        .await
        .expect("read");
    assert!(
        hit.bytes_read > 0 && hit.bytes_read < handle.meta.data_bytes,
        "{} of {}",
        hit.bytes_read,
        handle.meta.data_bytes
    );
}

#[tokio::test]
async fn read_all_returns_every_trace_in_order() {
    let storage = Storage::in_memory();
    let traces = traces(11, 120);
    let handle = write(&storage, &traces, 100).await;
    let mut read = handle.read_all(&storage).await.expect("read all");
    // Row order is by time in row groups; the set read back is what was written.
    read.sort_by_key(|trace| trace.trace_id);
    assert_eq!(read.len(), traces.len());
    for (read, written) in read.iter().zip(&traces) {
        assert_eq!(read.trace_id, written.trace_id);
        assert_eq!(
            canonical(&read.resource_spans),
            canonical(&written.resource_spans)
        );
    }
}

#[tokio::test]
async fn deleted_blocks_are_gone_and_bad_formats_are_refused() {
    let storage = Storage::in_memory();
    let handle = write(&storage, &traces(3, 5), 100).await;
    delete_block(&storage, &handle.meta).await.expect("delete");
    assert!(read_meta(&storage, "t", &handle.meta.block_id.to_string())
        .await
        .is_err());
    let mut meta = handle.meta.clone();
    meta.format = "vParquet9".into();
    assert!(matches!(
        BlockHandle::open(&storage, meta).await,
        Err(BlockError::UnsupportedFormat(_))
    ));
}

#[tokio::test]
async fn compaction_joins_split_traces_and_retention_deletes_old_blocks() {
    let storage = Storage::in_memory();
    let all = traces(21, 60);
    // The same traces split over three blocks: halves of each trace's resources, plus a repeat.
    let first: Vec<Trace> = all
        .iter()
        .map(|t| Trace {
            trace_id: t.trace_id,
            resource_spans: t.resource_spans[..1].to_vec(),
        })
        .collect();
    let rest: Vec<Trace> = all
        .iter()
        .filter(|t| t.resource_spans.len() > 1)
        .map(|t| Trace {
            trace_id: t.trace_id,
            resource_spans: t.resource_spans[1..].to_vec(),
        })
        .collect();
    let list = blocklist::BlockList::default();
    for part in [&first, &rest, &first] {
        list.add(write(&storage, part, 1000).await);
    }
    let options = compaction::CompactionOptions::default();
    let meta = compaction::compact_once(&storage, &list, "t", &options, &holder("a"))
        .await
        .expect("compact")
        .expect("a plan");
    assert_eq!(meta.replaces.len(), 3);
    assert_eq!(meta.compaction_level, 1);
    assert_eq!(meta.trace_count as usize, all.len());
    let blocks = list.blocks("t");
    assert_eq!(blocks.len(), 1);
    for trace in &all {
        let found = blocks[0]
            .find_trace(&storage, trace.trace_id)
            .await
            .expect("read")
            .trace
            .expect("present");
        assert_eq!(
            canonical(&found.resource_spans),
            canonical(&trace.resource_spans)
        );
    }
    // A poll from storage sees the same single block.
    let polled = blocklist::BlockList::default();
    polled.poll(&storage).await.expect("poll");
    assert_eq!(polled.blocks("t").len(), 1);
    assert!(
        compaction::compact_once(&storage, &list, "t", &options, &holder("a"))
            .await
            .expect("compact")
            .is_none()
    );

    let deleted = compaction::apply_retention(&storage, &list, "t", meta.end_unix_nanos + 1)
        .await
        .expect("retention");
    assert_eq!(deleted, 1);
    polled.poll(&storage).await.expect("poll");
    assert!(polled.blocks("t").is_empty());
}

#[tokio::test]
async fn kept_compaction_inputs_stay_readable_until_their_retention_passes() {
    let storage = Storage::in_memory();
    let list = blocklist::BlockList::default();
    list.set_compacted_retention(std::time::Duration::from_secs(3600));
    let inputs = [traces(4, 10), traces(5, 10)];
    for part in &inputs {
        list.add(write(&storage, part, 1000).await);
    }
    let input_ids: Vec<_> = list.blocks("t").iter().map(|h| h.meta.block_id).collect();
    // A querier apart listed the inputs before the compaction.
    let querier = blocklist::BlockList::default();
    querier.set_compacted_retention(std::time::Duration::from_secs(3600));
    querier.poll(&storage).await.expect("poll");
    let options = compaction::CompactionOptions {
        keep_inputs: true,
        ..Default::default()
    };
    let meta = compaction::compact_once(&storage, &list, "t", &options, &holder("a"))
        .await
        .expect("compact")
        .expect("a plan");
    assert_eq!(list.blocks("t").len(), 1);
    // Its old list still reads every input ...
    for handle in querier.blocks("t") {
        let first = inputs.iter().flatten().next().expect("traces").trace_id;
        handle
            .find_trace(&storage, first)
            .await
            .expect("still readable");
    }
    // ... and its next poll lists only the output, deleting nothing within the retention.
    querier.poll(&storage).await.expect("poll");
    let listed: Vec<_> = querier
        .blocks("t")
        .iter()
        .map(|h| h.meta.block_id)
        .collect();
    assert_eq!(listed, vec![meta.block_id]);
    for id in &input_ids {
        assert!(read_meta(&storage, "t", &id.to_string()).await.is_ok());
    }
    // Past the retention, the next poll deletes them (a second poller finds nothing to delete).
    querier.set_compacted_retention(std::time::Duration::ZERO);
    list.set_compacted_retention(std::time::Duration::ZERO);
    querier.poll(&storage).await.expect("poll");
    list.poll(&storage)
        .await
        .expect("a poll after another deleted them");
    for id in &input_ids {
        assert!(read_meta(&storage, "t", &id.to_string()).await.is_err());
    }
    assert_eq!(list.blocks("t").len(), 1);
}

#[tokio::test]
async fn a_compactor_with_an_older_list_does_not_merge_kept_inputs_again() {
    let storage = Storage::in_memory();
    let options = compaction::CompactionOptions {
        keep_inputs: true,
        ..Default::default()
    };
    let first = blocklist::BlockList::default();
    first.set_compacted_retention(std::time::Duration::from_secs(3600));
    for part in [traces(4, 10), traces(5, 10)] {
        first.add(write(&storage, &part, 1000).await);
    }
    // A second compactor listed the two inputs before the first merged them.
    let second = blocklist::BlockList::default();
    second.set_compacted_retention(std::time::Duration::from_secs(3600));
    second.poll(&storage).await.expect("poll");
    assert_eq!(second.blocks("t").len(), 2);
    let merged = compaction::compact_once(&storage, &first, "t", &options, &holder("a"))
        .await
        .expect("compact")
        .expect("a plan");
    // The inputs are still in storage (retention), but marked: nothing to do for the second.
    assert!(
        compaction::compact_once(&storage, &second, "t", &options, &holder("b"))
            .await
            .expect("compact")
            .is_none()
    );
    assert!(
        second.blocks("t").is_empty(),
        "the merged inputs left its list"
    );
    second.poll(&storage).await.expect("poll");
    let listed: Vec<_> = second.blocks("t").iter().map(|h| h.meta.block_id).collect();
    assert_eq!(listed, vec![merged.block_id]);
    // Deleting an input past the retention takes its marker too.
    second.set_compacted_retention(std::time::Duration::ZERO);
    second.poll(&storage).await.expect("poll");
    let left: Vec<String> = storage
        .list("t/")
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .filter(|key| key.ends_with("compacted.json"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn trace_stream_joins_traces_cut_across_batches() {
    let storage = Storage::in_memory();
    let traces = traces(5, 80);
    let handle = write(&storage, &traces, 50).await;
    let data = storage.get(&handle.meta.data_key()).await.expect("data");
    // Seven rows per batch: most traces are split over two or more batches.
    let mut streamed: Vec<Trace> = v1::TraceStream::new(data, 7)
        .expect("stream")
        .collect::<Result<_, _>>()
        .expect("read");
    streamed.sort_by_key(|trace| trace.trace_id);
    assert_eq!(streamed.len(), traces.len());
    for (read, written) in streamed.iter().zip(&traces) {
        assert_eq!(read.trace_id, written.trace_id);
        assert_eq!(
            canonical(&read.resource_spans),
            canonical(&written.resource_spans)
        );
    }
    let merged = compaction::merge_traces(vec![streamed.clone(), streamed]);
    assert_eq!(
        merged.len(),
        traces.len(),
        "the same traces twice merge into one copy each"
    );
    assert_eq!(
        canonical(&merged[3].resource_spans),
        canonical(&traces[3].resource_spans)
    );
}

#[tokio::test]
async fn a_poll_keeps_removed_blocks_removed() {
    let storage = Storage::in_memory();
    let list = blocklist::BlockList::default();
    let handle = write(&storage, &traces(9, 5), 100).await;
    list.add(handle.clone());
    // Removed in memory, objects not yet deleted (as during a compaction): a poll must not revive it.
    list.remove("t", &[handle.meta.block_id]);
    list.poll(&storage).await.expect("poll");
    assert!(list.blocks("t").is_empty());
    // Once a later poll has run, the block's objects are the truth again.
    list.poll(&storage).await.expect("poll");
    assert_eq!(list.blocks("t").len(), 1);
}

/// Stage 1 over a real block: candidates are a superset of the traces the full engine matches,
/// and for single-leaf filters on columns it reads exactly, the same set.
/// The traces the engine returns spans for: what stage 1 must keep.
pub(crate) fn matching_traces(query: &andante_traceql::Query, traces: &[Trace]) -> Vec<TraceId> {
    use andante_traceql::{evaluate, TraceView};
    traces
        .iter()
        .filter(|trace| {
            !evaluate(
                query,
                &TraceView::new(trace.trace_id.0, &trace.resource_spans),
            )
            .is_empty()
        })
        .map(|trace| trace.trace_id)
        .collect()
}

#[tokio::test]
async fn scan_candidates_agree_with_the_engine() {
    use andante_traceql::{parse, TraceCondition};
    let storage = Storage::in_memory();
    let traces = traces(11, 300);
    let handle = write(&storage, &traces, 500).await;
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let cases: &[(&str, bool)] = &[
        (r#"{ name = "op-1" }"#, true),
        (r#"{ name =~ "op-[12]" }"#, true),
        (r#"{ resource.service.name = "svc-2" }"#, true),
        (r#"{ resource.k8s.pod.name = "pod-1" }"#, true),
        (
            r#"{ resource.k8s.pod.name =~ "pod-[01]" && resource.service.name != nil }"#,
            true,
        ),
        (r#"{ resource.no.such.attribute = nil }"#, true),
        (r#"{ span.http.route = "/r/3" }"#, true),
        (r#"{ span.http.response.status_code = 200 }"#, true),
        (r#"{ span.ratio > 0.9 }"#, true),
        (r#"{ span.cached = true }"#, true),
        (r#"{ .user.id = "nobody" }"#, true),
        (r#"{ span.tags = "a" }"#, true),
        (r#"{ kind = server }"#, true),
        (r#"{ status = error }"#, true),
        (r#"{ duration > 4ms }"#, true),
        (r#"{ .missing = nil }"#, true),
        (r#"{ kind = server && status = error }"#, true),
        // Structural operators between exact filters are decided on nested-set numbers.
        (
            r#"{ kind = client } >> { status = error && name = "op-0" }"#,
            true,
        ),
        (r#"{ name = "op-1" } > { kind = server }"#, true),
        (r#"{ status = error } < { name = "op-2" }"#, true),
        (
            r#"{ resource.service.name = "svc-1" } << { span.http.route = "/r/4" }"#,
            true,
        ),
        (r#"{ name = "op-3" } ~ { name = "op-3" }"#, true),
        (r#"{ } &>> { span.cached = true && kind = consumer }"#, true),
        (r#"{ name = "op-0" } !> { name = "op-1" }"#, false),
        (
            r#"({ kind = client } >> { name = "op-0" }) && { status = ok }"#,
            false,
        ),
        (
            r#"{ resource.service.name = "svc-0" } && { resource.service.name = "svc-1" }"#,
            false,
        ),
        (r#"{ event:name = "exception" } | count() > 1"#, false),
        (r#"{ span.http.route = "/r/1" || duration > 4900us }"#, true),
        // Span counts are decided per trace (every trace is whole in this block).
        (r#"{ status = error } | count() > 1"#, true),
        (r#"{ kind = server } | count() >= 2"#, true),
        (r#"{ } | by(resource.service.name) | count() > 3"#, false),
    ];
    for (text, exact) in cases {
        let query = parse(text).expect("query parses");
        let outcome = scan_all(&handle, &storage, &query, &cpu).await;
        // Only row groups the index's values rule out are not read, and they hold no match.
        assert!(
            outcome.bytes_read > 0 || outcome.candidates.is_empty(),
            "{text}"
        );
        // Row groups ruled out by their predicate columns count their spans, not their traces.
        assert!(outcome.traces_scanned as usize <= traces.len(), "{text}");
        let span_total: usize = traces
            .iter()
            .map(|t| {
                t.resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len())
                    .sum::<usize>()
            })
            .sum();
        // Every span is counted, except those of row groups the index's values rule out.
        let plan = v1::search::ScanPlan::new(TraceCondition::of(&query), 0..u64::MAX);
        match handle.candidate_row_groups(&plan, None).len() == handle.meta.row_groups as usize {
            true => assert_eq!(outcome.spans_scanned as usize, span_total, "{text}"),
            false => assert!((outcome.spans_scanned as usize) < span_total, "{text}"),
        }
        // Traces are whole here, so a trace with too few spans for a count can never match.
        let mut candidates: Vec<TraceId> = outcome
            .candidates
            .iter()
            .filter(|candidate| !candidate.too_few_here)
            .map(|candidate| candidate.trace_id)
            .collect();
        candidates.sort();
        let pushed_counts = [
            r#"{ status = error } | count() > 1"#,
            r#"{ kind = server } | count() >= 2"#,
            r#"{ } | by(resource.service.name) | count() > 3"#,
        ];
        if pushed_counts.contains(text) {
            assert!(
                outcome
                    .candidates
                    .iter()
                    .any(|candidate| candidate.too_few_here),
                "{text}: the count should rule some trace out"
            );
        }
        let matching = matching_traces(&query, &traces);
        assert!(
            !matching.is_empty() || text.contains("nobody"),
            "{text} should match something in the fixture"
        );
        for trace_id in &matching {
            assert!(
                candidates.contains(trace_id),
                "{text}: matching trace {trace_id:?} was not a candidate"
            );
        }
        if *exact {
            assert_eq!(
                candidates, matching,
                "{text}: stage 1 should be exact for a single-column filter"
            );
        }
    }
    // A query that matches nothing reads its predicate column only, never trace IDs and times.
    let bytes = |text: &str| {
        let plan = Arc::new(v1::search::ScanPlan::new(
            TraceCondition::of(&parse(text).expect("parses")),
            0..u64::MAX,
        ));
        let (handle, storage, cpu) = (&handle, &storage, cpu.clone());
        async move {
            handle
                .scan(storage, plan, cpu)
                .await
                .expect("scan")
                .bytes_read
        }
    };
    let nothing = bytes(r#"{ span.http.route = "/no/such/route" }"#).await;
    let everything = bytes(r#"{ span.http.route =~ ".*" }"#).await;
    assert!(
        nothing * 3 < everything,
        "match-nothing read {nothing} bytes, match-everything {everything}"
    );
}

/// The columnar metrics path gives the same series as evaluating every trace, for every query it
/// accepts; and it refuses the queries that need whole traces.
#[tokio::test]
async fn columnar_metrics_agree_with_the_engine() {
    use andante_traceql::metrics::MetricsSeries;
    use andante_traceql::{parse_metrics, Accumulator, Intervals, TraceView};
    let storage = Storage::in_memory();
    let traces = traces(13, 300);
    let handle = write(&storage, &traces, 500).await;
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let (first, last) = traces
        .iter()
        .flat_map(|t| {
            t.resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
        })
        .fold((u64::MAX, 0), |(lo, hi), span| {
            (
                lo.min(span.start_time_unix_nano),
                hi.max(span.start_time_unix_nano),
            )
        });
    let intervals = Intervals::range(first, last, ((last - first) / 7).max(1));
    let columnar = [
        "{ } | rate() by (resource.service.name)",
        "{ } | count_over_time() by (name, kind)",
        "{ status = error } | count_over_time() by (resource.service.name)",
        r#"{ resource.k8s.pod.name =~ "pod-[01]" && kind = server } | quantile_over_time(duration, .5, .9) by (resource.service.name)"#,
        "{ } | histogram_over_time(duration) by (status)",
        r#"{ span.http.route = "/r/3" || duration > 4ms } | sum_over_time(span.http.response.status_code)"#,
        "{ } | max_over_time(duration) by (span.http.route) | topk(2)",
        "{ } | avg_over_time(duration) by (span.http.response.status_code) with(exemplars=true)",
    ];
    let whole_trace = [
        "{ kind = client } >> { status = error } | rate()",
        "{ .user.id = \"u1\" } | rate()",
        "{ } | rate() by (span.user.id)",
        "{ } | rate() with(sample=true)",
    ];
    let by_engine = |query: &andante_traceql::MetricsQuery| -> Vec<MetricsSeries> {
        let mut accumulator = Accumulator::new(intervals).with_exemplars(10);
        for trace in &traces {
            accumulator.observe(
                query,
                &TraceView::new(trace.trace_id.0, &trace.resource_spans),
            );
        }
        accumulator.finish(query)
    };
    for text in columnar {
        let query = parse_metrics(text).expect("parses");
        let columns = v1::metrics::MetricsColumns::of(&query)
            .unwrap_or_else(|| panic!("{text} should be columnar"));
        let condition = match query.columnar().and_then(|spec| spec.predicate) {
            Some(predicate) => andante_traceql::TraceCondition::Exists(predicate),
            None => andante_traceql::TraceCondition::True,
        };
        let plan = Arc::new(v1::search::ScanPlan::with_columns(
            condition,
            0..u64::MAX,
            &columns.names(),
        ));
        let accumulator = Accumulator::new(intervals).with_exemplars(10);
        let (accumulator, bytes, stats) = handle
            .fold_metrics(
                &storage,
                plan,
                Arc::new(v1::metrics::FoldWay::Columns(columns)),
                Arc::new(query.clone()),
                accumulator,
                Arc::new(Default::default()),
                cpu.clone(),
            )
            .await
            .expect("fold");
        assert!(bytes > 0 && stats.spans_scanned > 0, "{text}");
        let mine = accumulator.finish(&query);
        let theirs = by_engine(&query);
        assert!(!theirs.is_empty(), "{text}: the fixture should give series");
        assert_eq!(mine.len(), theirs.len(), "{text}");
        for (a, b) in mine.iter().zip(&theirs) {
            assert_eq!(a.labels, b.labels, "{text}");
            for (x, y) in a.samples.iter().zip(&b.samples) {
                match (x, y) {
                    (Some(x), Some(y)) => assert!(
                        (x - y).abs() <= 1e-9 * y.abs().max(1.0),
                        "{text}: {x} vs {y}"
                    ),
                    _ => assert_eq!(x, y, "{text}"),
                }
            }
        }
    }
    for text in whole_trace {
        let query = parse_metrics(text).expect("parses");
        assert!(
            v1::metrics::MetricsColumns::of(&query).is_none(),
            "{text} needs whole traces"
        );
    }
}

/// compare() over columns gives the series of evaluating every trace: each attribute value
/// of every kind (dedicated, slot and generic columns, ints, doubles, bools, bytes, empty
/// strings, a key stored twice, a dedicated key with a value of another type), status
/// messages, resources, a time window and a small top N; with the trace table (exemplars,
/// traces left to the caller) and without it.
#[tokio::test]
async fn columnar_compare_agrees_with_the_engine() {
    use andante_traceql::metrics::MetricsSeries;
    use andante_traceql::{parse_metrics, Accumulator, Intervals, TraceView};
    let storage = Storage::in_memory();
    let mut traces = traces(17, 300);
    let mut n = 0i64;
    for span in traces
        .iter_mut()
        .flat_map(|t| t.resource_spans.iter_mut())
        .flat_map(|r| r.scope_spans.iter_mut())
        .flat_map(|s| s.spans.iter_mut())
    {
        n += 1;
        if n % 5 == 0 {
            span.status = Some(Status {
                code: 2,
                message: format!("boom {}", n % 3),
            });
        }
        if n % 7 == 0 {
            span.attributes
                .push(attribute("retries", any_value::Value::IntValue(n % 4)));
        }
        if n % 11 == 0 {
            let dup = any_value::Value::StringValue("/dup".into());
            span.attributes.push(attribute("http.route", dup));
        }
        if n % 13 == 0 {
            let empty = any_value::Value::StringValue(String::new());
            span.attributes.push(attribute("note", empty));
        }
        if n % 17 == 0 {
            let text = any_value::Value::StringValue("two hundred".into());
            span.attributes
                .push(attribute("http.response.status_code", text));
        }
    }
    let handle = write(&storage, &traces, 500).await;
    assert!(handle.meta.row_groups > 1 && !handle.slots.is_empty());
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let first = 1_700_000_000_000_000_000u64;
    let intervals = Intervals::range(first, first + 1_000_000_000, 125_000_000);
    let window = format!("{}, {}", first + 200_000_000, first + 700_000_000);
    let queries = [
        "{ } | compare({ status = error })".to_owned(),
        r#"{ resource.service.name = "svc-1" } | compare({ span.http.route = "/r/2" }, 3)"#
            .to_owned(),
        format!("{{ kind = server || duration > 2ms }} | compare({{ }}, 5, {window})"),
        r#"{ span.cached = true } | compare({ span.retries >= 2 || name = "op-1" }, 50)"#
            .to_owned(),
        // Filters on columns compare() does not count: a time and a dedicated resource copy.
        "{ } | compare({ duration > 2ms })".to_owned(),
        r#"{ status != error } | compare({ resource.k8s.pod.name = "pod-1" && span.ratio > 0.5 })"#
            .to_owned(),
    ];
    // Traces whose rows the fold must leave to its caller (they are also live).
    let live: HashSet<TraceId> = traces.iter().step_by(9).map(|t| t.trace_id).collect();
    let engine = |query: &andante_traceql::MetricsQuery, skip: &HashSet<TraceId>| {
        let mut accumulator = Accumulator::new(intervals).with_exemplars(40);
        for trace in traces.iter().filter(|t| !skip.contains(&t.trace_id)) {
            let view = TraceView::new(trace.trace_id.0, &trace.resource_spans);
            accumulator.observe(query, &view);
        }
        accumulator.finish(query)
    };
    let fold = |query: andante_traceql::MetricsQuery, skip: HashSet<TraceId>| {
        let (storage, handle, cpu) = (&storage, &handle, cpu.clone());
        async move {
            let (search, filter) = query
                .columnar_compare()
                .expect("compare() of exact predicates is columnar");
            let exists = |predicate| match predicate {
                Some(predicate) => andante_traceql::TraceCondition::Exists(predicate),
                None => andante_traceql::TraceCondition::True,
            };
            let plan = Arc::new(v1::search::ScanPlan::new(exists(search), 0..u64::MAX));
            let filter = filter.map(|filter| {
                Arc::new(v1::search::ScanPlan::new(exists(Some(filter)), 0..u64::MAX))
            });
            let way = Arc::new(v1::metrics::FoldWay::Compare { filter });
            let empty = Accumulator::new(intervals).with_exemplars(40);
            let (accumulator, _, stats) = handle
                .fold_metrics(
                    storage,
                    plan,
                    way,
                    Arc::new(query.clone()),
                    empty,
                    Arc::new(skip),
                    cpu,
                )
                .await
                .expect("fold");
            (accumulator.finish(&query), stats)
        }
    };
    let same = |text: &str, mine: &[MetricsSeries], theirs: &[MetricsSeries]| {
        assert!(theirs.len() > 10, "{text}: the fixture should give series");
        assert_eq!(mine.len(), theirs.len(), "{text}");
        for (a, b) in mine.iter().zip(theirs) {
            assert_eq!(a.labels, b.labels, "{text}");
            assert_eq!(a.samples, b.samples, "{text}: {:?}", a.labels);
            // Which span becomes an interval's exemplar follows the read order; how many do not.
            assert_eq!(
                a.exemplars.len(),
                b.exemplars.len(),
                "{text}: {:?}",
                a.labels
            );
        }
    };
    for text in &queries {
        let query = parse_metrics(text).expect("parses");
        let (mine, stats) = fold(query.clone(), HashSet::new()).await;
        assert!(stats.shared.is_empty() && stats.spans_scanned > 0, "{text}");
        same(text, &mine, &engine(&query, &HashSet::new()));
        assert!(
            mine.iter().any(|s| s.labels[0].0 == "__meta_error"),
            "{text}: user.id has more values than any top N"
        );
        let (mine, stats) = fold(query.clone(), live.clone()).await;
        assert!(
            !stats.shared.is_empty() && stats.shared.is_subset(&live),
            "{text}"
        );
        same(text, &mine, &engine(&query, &stats.shared));
    }
    // Without a trace table, traces come from the `trace_id` column.
    storage
        .delete(&handle.meta.trace_table_key())
        .await
        .expect("delete");
    let handle = BlockHandle::open(&storage, handle.meta.clone())
        .await
        .expect("open");
    let query = parse_metrics(&queries[0]).expect("parses");
    let (search, filter) = query.columnar_compare().expect("columnar");
    let plan = Arc::new(v1::search::ScanPlan::new(
        search.map_or(
            andante_traceql::TraceCondition::True,
            andante_traceql::TraceCondition::Exists,
        ),
        0..u64::MAX,
    ));
    let filter = filter.map(|filter| {
        Arc::new(v1::search::ScanPlan::new(
            andante_traceql::TraceCondition::Exists(filter),
            0..u64::MAX,
        ))
    });
    let (accumulator, _, stats) = handle
        .fold_metrics(
            &storage,
            plan,
            Arc::new(v1::metrics::FoldWay::Compare { filter }),
            Arc::new(query.clone()),
            Accumulator::new(intervals).with_exemplars(40),
            Arc::new(live.clone()),
            cpu.clone(),
        )
        .await
        .expect("fold");
    same(
        &queries[0],
        &accumulator.finish(&query),
        &engine(&query, &stats.shared),
    );
    assert!(!stats.shared.is_empty());
}

/// A block is not read for a query that needs a `resource.service.name` its `meta.json` says
/// none of its resources has; any other query, or a block whose names are not known, is read.
#[tokio::test]
async fn blocks_without_the_queried_service_are_not_read() {
    let storage = Storage::in_memory();
    let traces = traces(23, 60);
    let handle = write(&storage, &traces, 500).await;
    let names = handle.meta.service_names.clone().expect("names recorded");
    assert!(names.contains(&"svc-1".to_owned()), "{names:?}");
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let cases = [
        (r#"{ resource.service.name = "svc-1" }"#, true),
        (r#"{ resource.service.name = "nope" }"#, false),
        (
            r#"{ resource.service.name = "nope" && name = "op-1" }"#,
            false,
        ),
        (
            r#"{ resource.service.name = "nope" || name = "op-1" }"#,
            true,
        ),
        (
            r#"{ resource.service.name = "nope" } || { name = "op-1" }"#,
            true,
        ),
        (
            r#"{ resource.service.name = "nope" } && { name = "op-1" }"#,
            false,
        ),
        (
            r#"{ resource.service.name = "svc-1" } >> { resource.service.name = "nope" }"#,
            false,
        ),
        (r#"{ resource.service.name =~ "svc-.*" }"#, true),
        (r#"{ resource.service.name =~ "no.*" }"#, false),
        (r#"{ resource.service.name !~ "svc-.*" }"#, true),
        (r#"{ resource.service.name != "svc-1" }"#, true),
        (r#"{ resource.service.name = 5 }"#, true),
        (r#"{ .service.name = "nope" }"#, true),
        (r#"{ span.service.name = "nope" }"#, true),
        (r#"{ resource.service.name = "nope" } | count() > 1"#, false),
    ];
    // Names cannot rule these out, but the index's values can: no row group holds the value.
    let ruled_out_by_values = [
        r#"{ .service.name = "nope" }"#,
        r#"{ span.service.name = "nope" }"#,
    ];
    for (text, readable) in cases {
        let query = andante_traceql::parse(text).expect("parses");
        let plan =
            v1::search::ScanPlan::new(andante_traceql::TraceCondition::of(&query), 0..u64::MAX);
        assert_eq!(plan.block_may_match(Some(&names)), readable, "{text}");
        assert!(plan.block_may_match(None), "{text}: names not known");
        let outcome = scan_all(&handle, &storage, &query, &cpu).await;
        if !readable {
            assert_eq!(outcome.bytes_read, 0, "{text}");
            assert!(outcome.candidates.is_empty(), "{text}");
        } else if ruled_out_by_values.contains(&text) {
            assert_eq!(outcome.bytes_read, 0, "{text}");
        } else {
            assert!(outcome.bytes_read > 0, "{text}");
        }
    }
}

/// Stage 1 of `query` over the whole block and all time.
pub(crate) async fn scan_all(
    handle: &BlockHandle,
    storage: &Storage,
    query: &andante_traceql::Query,
    cpu: &Arc<tokio::sync::Semaphore>,
) -> v1::search::ScanOutcome {
    let plan = Arc::new(v1::search::ScanPlan::new(
        andante_traceql::TraceCondition::of(query),
        0..u64::MAX,
    ));
    handle.scan(storage, plan, cpu.clone()).await.expect("scan")
}

/// Stage 1 takes traces from the block's trace table instead of its `trace_id` and time
/// columns: for every kind of condition it finds exactly what the columns give (candidates,
/// times, row locations, the `too_few_here` flags, counts scanned), over a time window too;
/// a damaged or missing table only sends the scan back to the columns.
#[tokio::test]
async fn the_trace_table_gives_stage_1_what_the_trace_columns_give() {
    use andante_traceql::{parse, TraceCondition};
    let storage = Storage::in_memory();
    let traces = traces(29, 300);
    let handle = write(&storage, &traces, 230).await;
    assert!(handle.meta.row_groups > 2, "several row groups");
    let table_bytes = handle.meta.trace_table_bytes.expect("a trace table");
    assert_eq!(
        storage
            .get(&handle.meta.trace_table_key())
            .await
            .expect("stored")
            .len() as u64,
        table_bytes
    );
    let mut without = handle.clone();
    without.meta = older_meta(&handle.meta, "traceTableBytes");
    assert_eq!(without.meta.trace_table_bytes, None);
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let (first, last) = (handle.meta.start_unix_nanos, handle.meta.end_unix_nanos);
    let middle = first + (last - first) / 2;
    let scan = |handle: &BlockHandle, text: &str, window: std::ops::Range<u64>| {
        let (handle, storage, cpu) = (handle.clone(), storage.clone(), cpu.clone());
        let plan = Arc::new(v1::search::ScanPlan::new(
            TraceCondition::of(&parse(text).expect("parses")),
            window,
        ));
        async move { handle.scan(&storage, plan, cpu).await.expect("scan") }
    };
    let mut seen_too_few = false;
    let mut counts = Vec::new();
    for text in [
        "{ }",
        "{ } | count() > 3",
        "{ status = error }",
        "{ status = error } | count() >= 2",
        r#"{ span.http.route = "/r/3" }"#,
        r#"{ span.http.route = "/r/3" } && { status = error }"#,
        r#"{ span.http.route = "/r/3" } || { duration > 50ms }"#,
        "{ duration > 1000ms }",
        "{ } >> { status = error }",
        r#"{ span.http.route = "/r/3" } > { }"#,
        "{ status = error } ~ { } | count() > 1",
        "{ } !< { status = error }",
    ] {
        for window in [0..u64::MAX, middle..last, first..middle] {
            let with_table = scan(&handle, text, window.clone()).await;
            let with_columns = scan(&without, text, window.clone()).await;
            assert_eq!(
                with_table.candidates, with_columns.candidates,
                "{text} {window:?}"
            );
            assert_eq!(
                with_table.spans_scanned, with_columns.spans_scanned,
                "{text}"
            );
            assert_eq!(
                with_table.traces_scanned, with_columns.traces_scanned,
                "{text}"
            );
            seen_too_few |= with_table.candidates.iter().any(|c| c.too_few_here);
            if window.start == 0 {
                counts.push((text, with_table.candidates.len()));
            }
        }
    }
    assert!(seen_too_few, "some trace has too few spans for a count");
    // Neither all nor none: the structural queries decide something on the nested sets.
    for (text, count) in &counts {
        if ["} >", "} ~", "} !<"]
            .iter()
            .any(|operator| text.contains(operator))
        {
            assert!(
                *count > 0 && *count < traces.len(),
                "{text}: {count} of {}",
                traces.len()
            );
        }
    }
    // Damaged, then missing: the columns answer.
    let plain = scan(&without, "{ status = error }", 0..u64::MAX).await;
    storage
        .put(
            &handle.meta.trace_table_key(),
            Bytes::from_static(b"ANDTRT01 damaged"),
        )
        .await
        .expect("put");
    assert_eq!(
        scan(&handle, "{ status = error }", 0..u64::MAX)
            .await
            .candidates,
        plain.candidates
    );
    storage
        .delete(&handle.meta.trace_table_key())
        .await
        .expect("delete");
    assert_eq!(
        scan(&handle, "{ status = error }", 0..u64::MAX)
            .await
            .candidates,
        plain.candidates
    );
    // A table that does not tile the row groups (from another block) is an error, not a
    // wrong answer or a panic.
    let other = write(&storage, &traces[..40], 230).await;
    let foreign = storage
        .get(&other.meta.trace_table_key())
        .await
        .expect("other table");
    storage
        .put(&handle.meta.trace_table_key(), foreign)
        .await
        .expect("put");
    let plan = Arc::new(v1::search::ScanPlan::new(TraceCondition::True, 0..u64::MAX));
    assert!(matches!(
        handle.scan(&storage, plan, cpu.clone()).await,
        Err(BlockError::Corrupt(_))
    ));
}

/// `meta` as a writer from before `field` existed wrote it, read back.
fn older_meta(meta: &BlockMeta, field: &str) -> BlockMeta {
    let mut old = serde_json::to_value(meta).expect("json");
    old.as_object_mut().expect("object").remove(field);
    serde_json::from_value(old).expect("an older meta.json still parses")
}

/// `meta.json` lists the block's service names (tag values without I/O); an older meta without
/// the field still reads, as "unknown".
#[tokio::test]
async fn meta_lists_service_names() {
    let storage = Storage::in_memory();
    let traces = traces(5, 50);
    let handle = write(&storage, &traces, 500).await;
    let mut expected: Vec<String> = traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(
            |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(andante_model::otlp::common::v1::any_value::Value::StringValue(name)) => {
                    Some(name.clone())
                }
                _ => None,
            },
        )
        .collect();
    expected.sort();
    expected.dedup();
    assert!(!expected.is_empty());
    assert_eq!(handle.meta.service_names.as_ref(), Some(&expected));
    assert_eq!(older_meta(&handle.meta, "serviceNames").service_names, None);
}

/// `meta.json` lists the attribute names per scope, exactly those a scan of the block finds
/// (tag names without a filter need no I/O); an older meta without the field still reads.
#[tokio::test]
async fn meta_tag_names_are_those_a_scan_finds() {
    use andante_model::otlp::common::v1::InstrumentationScope;
    use andante_model::otlp::trace::v1::span::{Event, Link};
    let storage = Storage::in_memory();
    let mut traces = traces(17, 120);
    let text = |text: &str| any_value::Value::StringValue(text.into());
    for (number, trace) in traces.iter_mut().enumerate().step_by(7) {
        let resource_spans = &mut trace.resource_spans[0];
        let scope_spans = &mut resource_spans.scope_spans[0];
        scope_spans.scope = Some(InstrumentationScope {
            name: "lib".into(),
            attributes: vec![attribute(&format!("scope.key{}", number % 3), text("v"))],
            ..Default::default()
        });
        let span = &mut scope_spans.spans[0];
        span.events.push(Event {
            name: "exception".into(),
            attributes: vec![attribute("exception.type", text("E"))],
            ..Default::default()
        });
        span.links.push(Link {
            trace_id: vec![7; 16],
            span_id: vec![7; 8],
            attributes: vec![attribute(&format!("link.key{number}"), text("l"))],
            ..Default::default()
        });
    }
    let handle = write(&storage, &traces, 300).await;
    let from_meta = handle
        .meta
        .tag_names
        .clone()
        .expect("tag names in meta.json");
    let plan = Arc::new(v1::search::ScanPlan::new(
        andante_traceql::TraceCondition::True,
        0..u64::MAX,
    ));
    let mut scanned = v1::tags::TagCollection::default();
    handle
        .collect_tags(
            &storage,
            &v1::tags::TagRequest::Names,
            plan,
            Arc::new(tokio::sync::Semaphore::new(2)),
            &mut scanned,
            &mut HashSet::new(),
        )
        .await
        .expect("tags");
    let scanned: std::collections::BTreeMap<String, Vec<String>> = scanned
        .names
        .into_iter()
        .map(|(scope, names)| (scope.to_owned(), names.into_iter().collect()))
        .collect();
    for scope in ["span", "resource", "event", "link", "instrumentation"] {
        assert!(from_meta.contains_key(scope), "{scope}: {from_meta:?}");
    }
    assert_eq!(from_meta, scanned);
    assert_eq!(older_meta(&handle.meta, "tagNames").tag_names, None);
}

/// Stage 1 tells where each candidate's rows are; reading those rows gives exactly the traces
/// a search of the row groups' trace IDs gives (the shortcut stage 2 takes).
#[tokio::test]
async fn candidate_locations_read_the_same_traces_as_an_id_search() {
    use andante_traceql::parse;
    let storage = Storage::in_memory();
    let traces = traces(23, 400);
    let handle = write(&storage, &traces, 250).await;
    assert!(handle.meta.row_groups > 2, "several row groups");
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    for text in [
        "{ }",
        r#"{ span.http.route = "/r/3" }"#,
        "{ status = error }",
    ] {
        let query = parse(text).expect("parses");
        let outcome = scan_all(&handle, &storage, &query, &cpu).await;
        assert!(!outcome.candidates.is_empty(), "{text}");
        let ids: Vec<TraceId> = outcome.candidates.iter().map(|c| c.trace_id).collect();
        let locations: Vec<v1::search::RowLocation> = outcome
            .candidates
            .iter()
            .map(|candidate| candidate.location.expect("a whole row group was scanned"))
            .collect();
        let (by_id, _) = handle.find_traces(&storage, &ids).await.expect("by ID");
        let (at, _) = handle
            .find_traces_at(&storage, &[], &locations)
            .await
            .expect("by location");
        assert_eq!(at.len(), ids.len(), "{text}");
        assert!(at == by_id, "{text}: the reads differ");
        // Whole traces: every span the fixture gave each (attribute order aside).
        let span_count = v1::span_count;
        let expected: Vec<(TraceId, usize)> = traces
            .iter()
            .filter(|trace| ids.contains(&trace.trace_id))
            .map(|trace| (trace.trace_id, span_count(trace)))
            .collect();
        let mut read: Vec<(TraceId, usize)> = at
            .iter()
            .map(|trace| (trace.trace_id, span_count(trace)))
            .collect();
        read.sort();
        assert_eq!(read, expected, "{text}");
        // A read of some span parts is the whole read with the other parts left empty. With
        // some keys, spans keep the generic list and those keys' dedicated or slot columns.
        let column_type = |key: &str| -> Option<&'static str> {
            if v1::DEDICATED_SPAN_STRINGS.iter().any(|(k, _)| *k == key)
                || handle.slots().iter().any(|(k, _)| k == key)
            {
                Some("string")
            } else if v1::DEDICATED_SPAN_INTS.iter().any(|(k, _)| *k == key) {
                Some("int")
            } else {
                None
            }
        };
        let from_its_column = |attribute: &andante_model::otlp::common::v1::KeyValue| {
            use andante_model::otlp::common::v1::any_value::Value;
            let value = attribute
                .value
                .as_ref()
                .and_then(|value| value.value.as_ref());
            matches!(
                (column_type(&attribute.key), value),
                (Some("string"), Some(Value::StringValue(_)))
                    | (Some("int"), Some(Value::IntValue(_)))
            )
        };
        let wanted: Arc<[String]> = vec!["http.route".to_owned()].into();
        for parts in [
            v1::SpanParts {
                attributes: v1::AttributeParts::None,
                events_links: false,
            },
            v1::SpanParts {
                attributes: v1::AttributeParts::All,
                events_links: false,
            },
            v1::SpanParts {
                attributes: v1::AttributeParts::Keys(wanted.clone()),
                events_links: true,
            },
            // `ratio` has no column of its own: the generic list is read.
            v1::SpanParts {
                attributes: v1::AttributeParts::Keys(
                    vec!["http.route".to_owned(), "ratio".to_owned()].into(),
                ),
                events_links: false,
            },
        ] {
            let (partial, _) = handle
                .find_spans_at(&storage, &[], &locations, parts.clone())
                .await
                .expect("partial read");
            // `http.route` alone has its own column and (says meta.json) nothing in the list.
            let narrowed = parts.for_block(&handle.meta, handle.slots());
            assert_eq!(
                matches!(narrowed.attributes, v1::AttributeParts::OwnColumns(_)),
                matches!(&parts.attributes, v1::AttributeParts::Keys(keys) if keys.len() == 1),
                "{parts:?}"
            );
            let mut stripped = at.clone();
            for span in stripped
                .iter_mut()
                .flat_map(|trace| &mut trace.resource_spans)
                .flat_map(|r| &mut r.scope_spans)
                .flat_map(|s| &mut s.spans)
            {
                match &narrowed.attributes {
                    v1::AttributeParts::None => {
                        span.attributes.clear();
                        span.dropped_attributes_count = 0;
                    }
                    v1::AttributeParts::Keys(keys) => span.attributes.retain(|attribute| {
                        keys.contains(&attribute.key) || !from_its_column(attribute)
                    }),
                    v1::AttributeParts::OwnColumns(keys) => span
                        .attributes
                        .retain(|attribute| keys.contains(&attribute.key)),
                    v1::AttributeParts::All => {}
                }
                if !parts.events_links {
                    span.events.clear();
                    span.links.clear();
                    span.dropped_events_count = 0;
                    span.dropped_links_count = 0;
                }
            }
            assert!(partial == stripped, "{text}: {parts:?} differs");
        }
    }
    // A location outside the block is an error, not a panic or a wrong read.
    let outside = v1::search::RowLocation {
        row_group: 0,
        first_row: u32::MAX - 1,
        rows: 5,
    };
    assert!(handle
        .find_traces_at(&storage, &[], &[outside])
        .await
        .is_err());
}

/// Keys on many spans get a slot column of their own: the data reads back unchanged, search
/// reads the slot instead of the generic list (and stays exact with non-string values of the
/// same key), and tag discovery finds names and values in slots.
#[tokio::test]
async fn frequent_string_keys_get_slot_columns() {
    use andante_traceql::ast::{Field, Scope};
    use andante_traceql::{parse, TraceCondition, Value};
    use v1::tags::{TagCollection, TagRequest};
    let storage = Storage::in_memory();
    let mut traces = traces(13, 300);
    let mut span_number = 0;
    for span in traces
        .iter_mut()
        .flat_map(|t| &mut t.resource_spans)
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        span_number += 1;
        let mixed = if span_number % 2 == 0 {
            any_value::Value::StringValue("m-x".into())
        } else {
            any_value::Value::IntValue(5)
        };
        span.attributes.push(attribute("mixed", mixed));
        if span_number == 40 {
            span.attributes.push(attribute(
                "rare",
                any_value::Value::StringValue("only-once".into()),
            ));
        }
    }
    let handle = write(&storage, &traces, 400).await;
    let slotted: Vec<&str> = handle.slots().iter().map(|(key, _)| key).collect();
    assert!(
        slotted.contains(&"user.id") && slotted.contains(&"mixed"),
        "{slotted:?}"
    );
    assert!(
        !slotted.contains(&"rare"),
        "a key on one span in thousands stays in the generic list: {slotted:?}"
    );
    assert!(
        !slotted.contains(&"http.route"),
        "keys with a fixed column take no slot: {slotted:?}"
    );

    let mut read = handle.read_all(&storage).await.expect("read");
    read.sort_by_key(|trace| trace.trace_id);
    assert_eq!(read.len(), traces.len());
    for (read, written) in read.iter().zip(&traces) {
        assert_eq!(
            canonical(&read.resource_spans),
            canonical(&written.resource_spans)
        );
    }

    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let some_user = traces[17].resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .iter()
        .find(|kv| kv.key == "user.id")
        .and_then(|kv| kv.value.clone())
        .map(|value| match value.value {
            Some(any_value::Value::StringValue(text)) => text,
            other => panic!("user.id is a string: {other:?}"),
        })
        .expect("user.id");
    let user_query = format!(r#"{{ span.user.id = "{some_user}" }}"#);
    let mut bytes = HashMap::new();
    for text in [
        user_query.as_str(),
        r#"{ span.mixed = 5 }"#,
        r#"{ span.mixed = "m-x" }"#,
        r#"{ .mixed != nil }"#,
        r#"{ span.rare = "only-once" }"#,
    ] {
        let query = parse(text).expect("query parses");
        let outcome = scan_all(&handle, &storage, &query, &cpu).await;
        let mut candidates: Vec<TraceId> = outcome
            .candidates
            .iter()
            .map(|candidate| candidate.trace_id)
            .collect();
        candidates.sort();
        let matching = matching_traces(&query, &traces);
        assert!(!matching.is_empty(), "{text}");
        assert_eq!(candidates, matching, "{text}");
        bytes.insert(text.to_owned(), outcome.bytes_read);
    }
    assert!(bytes.values().all(|read| *read > 0));
    // A string filter on a slotted key reads the slot column, never the generic list; on a
    // generic key it reads the list's key/str/other leaves only.
    let file_schema = v1::schema();
    let root = |name: &str| file_schema.index_of(name).expect("column");
    let plan_for = |text: &str| {
        Arc::new(v1::search::ScanPlan::new(
            TraceCondition::of(&parse(text).expect("parses")),
            0..u64::MAX,
        ))
        .for_block(handle.slots())
    };
    let slotted = plan_for(&user_query);
    let slot_column = handle
        .slots()
        .iter()
        .find(|(key, _)| *key == "user.id")
        .map(|(_, column)| column)
        .expect("user.id has a slot");
    assert!(
        slotted.predicate_roots.contains(&root(slot_column))
            && !slotted.predicate_roots.contains(&root("attributes"))
    );
    let generic = plan_for(r#"{ span.rare = "only-once" }"#);
    assert!(generic.predicate_roots.contains(&root("attributes")));
    assert_eq!(generic.attribute_leaves, Some(&["key", "str", "other"][..]));
    assert_eq!(
        plan_for(r#"{ span.mixed = 5 }"#).attribute_leaves,
        None,
        "a number needs the numeric leaves"
    );

    let collect = |request: TagRequest| {
        let (handle, storage, cpu) = (&handle, &storage, cpu.clone());
        async move {
            let plan = Arc::new(v1::search::ScanPlan::new(TraceCondition::True, 0..u64::MAX));
            let mut out = TagCollection::default();
            handle
                .collect_tags(storage, &request, plan, cpu, &mut out, &mut HashSet::new())
                .await
                .expect("tags");
            out
        }
    };
    let names = collect(TagRequest::Names).await;
    let span_names = &names.names["span"];
    for key in ["user.id", "mixed", "rare", "http.route"] {
        assert!(span_names.contains(key), "{key} in {span_names:?}");
    }
    let field = Field::Attribute {
        scope: Scope::Span,
        parent: false,
        name: "mixed".into(),
    };
    let values = collect(TagRequest::Values(field)).await.values;
    assert!(
        values.contains(&Value::Str("m-x".into())) && values.contains(&Value::Int(5)),
        "{values:?}"
    );
    assert_eq!(values.len(), 2, "{values:?}");

    // Only `mixed` (ints beside its slot's strings) is in the generic list as well, so the
    // values of `user.id` come from its slot column alone: the same values as when a block
    // without that knowledge (an older meta.json) also reads the list, for fewer bytes.
    assert_eq!(
        handle.meta.dedicated_keys_in_generic,
        Some(vec!["mixed".to_owned()])
    );
    let user_id = TagRequest::Values(Field::Attribute {
        scope: Scope::Span,
        parent: false,
        name: "user.id".into(),
    });
    let known = collect(user_id.clone()).await;
    let mut older = handle.clone();
    older.meta = older_meta(&handle.meta, "dedicatedKeysInGeneric");
    assert_eq!(older.meta.dedicated_keys_in_generic, None);
    let mut unknown = TagCollection::default();
    older
        .collect_tags(
            &storage,
            &user_id,
            Arc::new(v1::search::ScanPlan::new(TraceCondition::True, 0..u64::MAX)),
            cpu.clone(),
            &mut unknown,
            &mut HashSet::new(),
        )
        .await
        .expect("tags");
    let mut expected: Vec<Value> = traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .flat_map(|span| &span.attributes)
        .filter(|kv| kv.key == "user.id")
        .filter_map(|kv| kv.value.as_ref())
        .map(|value| Value::from_any(value).into_owned())
        .collect();
    expected.sort_by_key(|value| format!("{value:?}"));
    expected.dedup();
    let sorted = |mut values: Vec<Value<'static>>| {
        values.sort_by_key(|value| format!("{value:?}"));
        values
    };
    assert!(expected.len() > 1);
    assert_eq!(sorted(known.values), expected);
    assert_eq!(sorted(unknown.values), expected);
    assert!(
        known.bytes_read < unknown.bytes_read,
        "{} < {}",
        known.bytes_read,
        unknown.bytes_read
    );
}

/// A block written before the slot columns existed (the schema without its last columns, no
/// slot metadata) still reads: by ID, whole, by search and by tag discovery.
#[tokio::test]
async fn blocks_without_slot_columns_still_read() {
    use andante_traceql::{parse, TraceCondition};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::{ArrowWriter, ProjectionMask};
    let storage = Storage::in_memory();
    // Without `user.id` no key earns a slot, so dropping the (all-null) slot columns below
    // leaves exactly what the older writer wrote.
    let mut traces = traces(17, 120);
    for span in traces
        .iter_mut()
        .flat_map(|t| &mut t.resource_spans)
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
    {
        span.attributes.retain(|kv| kv.key != "user.id");
    }
    let new_block = NewBlock {
        sources: Vec::new(),
        tenant_id: "t".into(),
        compaction_level: 0,
        replaces: Vec::new(),
        options: v1::WriteOptions {
            row_group_spans: 300,
            ..Default::default()
        },
    };
    let encoded = encode_block(&traces, &new_block).expect("encode");
    // That writer wrote no trace table either.
    let (mut meta, parquet, index) = (encoded.meta, encoded.parquet, encoded.index);
    meta.trace_table_bytes = None;
    meta.rollup_bytes = None;
    meta.rollup_durations_bytes = None;
    assert!(v1::DedicatedSlots::from_metadata(
        ParquetRecordBatchReaderBuilder::try_new(Bytes::from(parquet.clone()))
            .expect("reader")
            .metadata()
    )
    .is_empty());
    // Rewrite the file as an older writer did: same row groups, no slot columns, no slot metadata.
    let data = Bytes::from(parquet);
    let builder = ParquetRecordBatchReaderBuilder::try_new(data.clone()).expect("reader");
    let row_groups = builder.metadata().num_row_groups();
    let old_columns = v1::schema().fields().len() - v1::DEDICATED_SLOTS.len();
    let old_schema = Arc::new(arrow_schema::Schema::new(
        v1::schema().fields()[..old_columns].to_vec(),
    ));
    let mut old = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut old, old_schema, None).expect("writer");
    for row_group in 0..row_groups {
        let builder = ParquetRecordBatchReaderBuilder::try_new(data.clone()).expect("reader");
        let mask = ProjectionMask::roots(builder.parquet_schema(), 0..old_columns);
        for batch in builder
            .with_projection(mask)
            .with_row_groups(vec![row_group])
            .with_batch_size(1 << 20)
            .build()
            .expect("build")
        {
            writer.write(&batch.expect("batch")).expect("write");
        }
        writer.flush().expect("flush");
    }
    writer.close().expect("close");
    meta.data_bytes = old.len() as u64;
    // The older writer's index (v1) had no chunk checksums.
    let mut older_index = BlockIndex::decode(&index).expect("index");
    older_index.chunk_checksums = None;
    let index = older_index.encode();
    let older = EncodedBlock {
        meta: meta.clone(),
        parquet: old,
        index,
        trace_table: Vec::new(),
        rollup: Vec::new(),
        rollup_durations: Vec::new(),
    };
    upload_block(&storage, older).await.expect("upload");
    let meta = read_meta(&storage, "t", &meta.block_id.to_string())
        .await
        .expect("meta");
    let handle = BlockHandle::open(&storage, meta).await.expect("open");
    assert!(handle.slots().is_empty());
    for trace in &traces {
        let found = handle
            .find_trace(&storage, trace.trace_id)
            .await
            .expect("read")
            .trace
            .expect("present");
        assert_eq!(
            canonical(&found.resource_spans),
            canonical(&trace.resource_spans)
        );
    }
    assert_eq!(
        handle.read_all(&storage).await.expect("read all").len(),
        traces.len()
    );
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    for text in [
        r#"{ span.http.route = "/r/3" }"#,
        r#"{ span.tags = "a" }"#,
        r#"{ kind = client } >> { status = error }"#,
    ] {
        let query = parse(text).expect("parses");
        let outcome = scan_all(&handle, &storage, &query, &cpu).await;
        let mut candidates: Vec<TraceId> = outcome
            .candidates
            .iter()
            .map(|candidate| candidate.trace_id)
            .collect();
        candidates.sort();
        assert_eq!(candidates, matching_traces(&query, &traces), "{text}");
    }
    let plan = Arc::new(v1::search::ScanPlan::new(TraceCondition::True, 0..u64::MAX));
    let mut names = v1::tags::TagCollection::default();
    handle
        .collect_tags(
            &storage,
            &v1::tags::TagRequest::Names,
            plan,
            cpu,
            &mut names,
            &mut HashSet::new(),
        )
        .await
        .expect("tags");
    assert!(names.names["span"].contains("cached") && names.names["span"].contains("http.route"));
}

/// Issue 10, finding 7: a tag filter on a column stage 1 also reads for trace times
/// (`duration_nanos`) was dropped from the tag scan, and the block reported as corrupt.
#[tokio::test]
async fn tag_discovery_filters_on_span_duration() {
    use andante_traceql::ast::{Field, Intrinsic};
    use andante_traceql::Value;
    let storage = Storage::in_memory();
    let traces = traces(31, 200);
    let handle = write(&storage, &traces, 300).await;
    let mut durations: Vec<u64> = traces
        .iter()
        .flat_map(|trace| &trace.resource_spans)
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
        .map(|span| {
            span.end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano)
        })
        .collect();
    durations.sort_unstable();
    let threshold = durations[durations.len() * 3 / 4];
    let expected: std::collections::BTreeSet<String> = traces
        .iter()
        .flat_map(|trace| &trace.resource_spans)
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
        .filter(|span| {
            span.end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano)
                > threshold
        })
        .map(|span| span.name.clone())
        .collect();
    assert!(!expected.is_empty());
    let filter = andante_traceql::parse_lenient(&format!("{{ duration > {threshold}ns }}"))
        .expect("lenient parse");
    let plan = Arc::new(v1::search::ScanPlan::new(
        andante_traceql::TraceCondition::of(&filter),
        0..u64::MAX,
    ));
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let mut out = v1::tags::TagCollection::default();
    let request = v1::tags::TagRequest::Values(Field::Intrinsic(Intrinsic::Name));
    handle
        .collect_tags(
            &storage,
            &request,
            plan.clone(),
            cpu.clone(),
            &mut out,
            &mut HashSet::new(),
        )
        .await
        .expect("tag values with a duration filter");
    let found: std::collections::BTreeSet<String> = out
        .values
        .iter()
        .map(|value| match value {
            Value::Str(text) => text.to_string(),
            other => panic!("span names are strings, got {other:?}"),
        })
        .collect();
    assert_eq!(found, expected);
    let mut names = v1::tags::TagCollection::default();
    handle
        .collect_tags(
            &storage,
            &v1::tags::TagRequest::Names,
            plan,
            cpu,
            &mut names,
            &mut HashSet::new(),
        )
        .await
        .expect("tag names with a duration filter");
    assert!(
        names.names.get("span").is_some_and(|span| !span.is_empty()),
        "{:?}",
        names.names
    );
}

/// Issue 10, finding 8: a span dated at the end of time (written before ingest refused such
/// spans) made its block's end time `u64::MAX`, so retention never deleted it nor the sane
/// traces stored with it. Retention judges a block by when it was written at the latest.
#[tokio::test]
async fn a_far_future_span_does_not_pin_its_block() {
    let storage = Storage::in_memory();
    let mut all = traces(41, 20);
    let span = &mut all[0].resource_spans[0].scope_spans[0].spans[0];
    span.start_time_unix_nano = u64::MAX;
    span.end_time_unix_nano = u64::MAX;
    let list = blocklist::BlockList::default();
    let handle = write(&storage, &all, 1000).await;
    assert_eq!(handle.meta.end_unix_nanos, u64::MAX);
    list.add(handle);
    let now = andante_model::now_unix_nanos();
    assert!(compaction::retention_time(&list.blocks("t")[0].meta) <= now);
    let deleted = compaction::apply_retention(&storage, &list, "t", now + 1)
        .await
        .expect("retention");
    assert_eq!(deleted, 1);
    assert!(list.blocks("t").is_empty());
}

/// Issue 10, finding 9: the index is derived data; a damaged or missing one is rebuilt from
/// the block's trace IDs instead of hiding the block.
#[tokio::test]
async fn a_damaged_or_missing_index_is_rebuilt_from_the_data() {
    let storage = Storage::in_memory();
    let all = traces(51, 120);
    let handle = write(&storage, &all, 200).await;
    assert!(!handle.index_rebuilt);
    let meta = handle.meta.clone();
    let original = storage.get(&meta.index_key()).await.expect("index");
    let mut damaged = original.to_vec();
    let middle = damaged.len() / 2;
    for byte in &mut damaged[middle..middle + 16] {
        *byte ^= 0xA5;
    }
    for replacement in [Some(damaged), None] {
        match replacement {
            Some(bytes) => storage
                .put(&meta.index_key(), bytes.into())
                .await
                .expect("put"),
            None => storage.delete(&meta.index_key()).await.expect("delete"),
        }
        let reopened = BlockHandle::open(&storage, meta.clone())
            .await
            .expect("opens with a rebuilt index");
        assert!(reopened.index_rebuilt);
        assert_eq!(
            reopened.index.row_group_ranges, handle.index.row_group_ranges,
            "the rebuilt ranges equal the written ones"
        );
        assert_eq!(reopened.index.bloom, handle.index.bloom);
        assert!(
            reopened.index.chunk_checksums.is_none(),
            "checksums are not derived from data that may be damaged"
        );
        for trace in &all {
            let found = reopened
                .find_trace(&storage, trace.trace_id)
                .await
                .expect("read")
                .trace
                .expect("present");
            assert_eq!(
                canonical(&found.resource_spans),
                canonical(&trace.resource_spans)
            );
        }
        // The rebuilt index was stored again: the next open needs no rebuild.
        assert!(
            !BlockHandle::open(&storage, meta.clone())
                .await
                .expect("open")
                .index_rebuilt
        );
    }
}

/// Issue 10, finding 9: undecodable data is an error naming corruption (not "not found"), and
/// quarantine takes the block out of service for good while keeping its objects.
#[tokio::test]
async fn corrupt_data_is_reported_and_quarantined() {
    let storage = Storage::in_memory();
    let all = traces(61, 150);
    let handle = write(&storage, &all, 100_000).await;
    let meta = handle.meta.clone();
    let mut data = storage.get(&meta.data_key()).await.expect("data").to_vec();
    // Zeroes across page headers and compressed pages: the decoder must refuse them. (Bytes
    // flipped inside a plain-encoded value can go unnoticed: Parquet pages written by arrow-rs
    // carry no checksum; see docs/FORMAT.md.)
    let middle = data.len() / 2;
    for byte in &mut data[middle - 2048..middle + 2048] {
        *byte = 0;
    }
    storage
        .put(&meta.data_key(), data.into())
        .await
        .expect("put");
    let list = blocklist::BlockList::default();
    list.add(
        BlockHandle::open(&storage, meta.clone())
            .await
            .expect("the footer is intact"),
    );
    let ids: Vec<TraceId> = all.iter().map(|trace| trace.trace_id).collect();
    let Err(error) = list.blocks("t")[0].find_traces(&storage, &ids).await else {
        panic!("damaged pages cannot decode")
    };
    assert!(error.is_corrupt(), "{error}");

    list.quarantine(&storage, &meta, &error.to_string()).await;
    assert!(list.blocks("t").is_empty());
    assert_eq!(
        list.corruption
            .quarantined_blocks
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(list.quarantined_holding("t", &ids[0]), vec![meta.block_id]);
    let record: serde_json::Value = serde_json::from_slice(
        &storage
            .get(&format!(
                "t/{}/{}",
                meta.block_id,
                blocklist::QUARANTINE_OBJECT
            ))
            .await
            .expect("record"),
    )
    .expect("json");
    assert!(
        record["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("corrupt")),
        "{record}"
    );
    assert!(
        storage.get(&meta.data_key()).await.is_ok(),
        "the data is kept for inspection"
    );
    let polled = blocklist::BlockList::default();
    polled.poll(&storage).await.expect("poll");
    assert!(
        polled.blocks("t").is_empty(),
        "a poll does not bring a quarantined block back"
    );
}

/// Issue 10, finding 9: bytes flipped inside a value decode silently (Parquet pages carry no
/// checksum), so new blocks record a crc32c per column chunk in their index and every whole-chunk
/// read checks it (scans and tag discovery fetch whole chunks too): the whole-block read and
/// compaction refuse the damaged block.
#[tokio::test]
async fn flipped_bytes_inside_values_are_caught_by_chunk_checksums() {
    let storage = Storage::in_memory();
    let all = traces(71, 150);
    let handle = write(&storage, &all, 100_000).await;
    assert!(
        handle.index.chunk_checksums.is_some(),
        "new blocks carry chunk checksums"
    );
    let meta = handle.meta.clone();
    let mut data = storage.get(&meta.data_key()).await.expect("data").to_vec();
    let middle = data.len() / 2;
    for byte in &mut data[middle..middle + 16] {
        *byte ^= 0x5A;
    }
    storage
        .put(&meta.data_key(), data.into())
        .await
        .expect("put");
    let damaged = BlockHandle::open(&storage, meta.clone())
        .await
        .expect("the footer is intact");
    let Err(error) = damaged.read_all(&storage).await else {
        panic!("the whole-block read must notice")
    };
    assert!(
        error.is_corrupt() && error.to_string().contains("checksum"),
        "{error}"
    );
    // Compaction refuses to copy it and quarantines it.
    let list = blocklist::BlockList::default();
    list.add(damaged);
    list.add(write(&storage, &traces(72, 20), 100_000).await);
    let result = compaction::compact_once(
        &storage,
        &list,
        "t",
        &compaction::CompactionOptions::default(),
        &holder("a"),
    )
    .await;
    assert!(result.is_err_and(|error| error.is_corrupt()));
    assert!(
        list.blocks("t")
            .iter()
            .all(|handle| handle.meta.block_id != meta.block_id),
        "quarantined"
    );
}

pub(crate) fn holder(id: &str) -> compaction::LeaseHolder {
    compaction::LeaseHolder {
        id: id.to_owned(),
        ttl_millis: 600_000,
    }
}

/// Two compactors sharing a bucket, each with its own (possibly stale) block list: a window
/// leased by one is skipped by the other, and inputs merged by one are not merged again.
#[tokio::test]
async fn compactors_sharing_a_bucket_never_merge_the_same_blocks() {
    let storage = Storage::in_memory();
    let (a, b) = (
        blocklist::BlockList::default(),
        blocklist::BlockList::default(),
    );
    for part in [traces(1, 10), traces(11, 10), traces(21, 10)] {
        let handle = write(&storage, &part, 1000).await;
        a.add(handle.clone());
        b.add(handle);
    }
    let options = compaction::CompactionOptions::default();
    let window = a.blocks("t")[0].meta.start_unix_nanos / options.window_nanos;
    let prefix = andante_storage::lease::lease_prefix("t", &format!("compaction-{window}"));
    let now = andante_model::now_unix_nanos() / 1_000_000;
    let held = andante_storage::lease::try_acquire(&storage, &prefix, "b", 600_000, now)
        .await
        .unwrap()
        .expect("free at first");
    assert!(
        compaction::compact_once(&storage, &a, "t", &options, &holder("a"))
            .await
            .unwrap()
            .is_none(),
        "the window is leased by b"
    );
    assert_eq!(a.blocks("t").len(), 3);
    andante_storage::lease::release(&storage, &held)
        .await
        .unwrap();

    let merged = compaction::compact_once(&storage, &a, "t", &options, &holder("a"))
        .await
        .unwrap()
        .expect("free again");
    assert_eq!(merged.replaces.len(), 3);
    // b's list still names the three inputs; under the lease it finds them gone.
    assert!(
        compaction::compact_once(&storage, &b, "t", &options, &holder("b"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(b.blocks("t").is_empty(), "b dropped the merged inputs");
    let polled = blocklist::BlockList::default();
    polled.poll(&storage).await.unwrap();
    assert_eq!(polled.blocks("t").len(), 1);
    assert_eq!(polled.blocks("t")[0].meta.trace_count, 30);
}

/// A block records where its records came from; compaction keeps one source per (stream,
/// reading) spanning its inputs; a `meta.json` without sources still reads, as "unknown".
#[tokio::test]
async fn sources_are_kept_through_compaction_and_suspects_are_told_apart() {
    use crate::meta::{may_share_records, BlockSource};
    let storage = Storage::in_memory();
    let all = traces(20, 30);
    let source = |incarnation: &str, from: u64, to: u64| BlockSource {
        stream: "log/spans/3".into(),
        incarnation: incarnation.into(),
        from,
        to,
    };
    let list = blocklist::BlockList::default();
    let parts = [
        (&all[..8], vec![source("a", 0, 40)]),
        (&all[8..14], vec![source("a", 35, 90)]),
        (&all[14..], vec![source("b", 60, 120)]),
    ];
    let mut metas = Vec::new();
    for (part, sources) in parts {
        let mut part = part.to_vec();
        part.sort_by_key(|trace| trace.trace_id);
        let new_block = NewBlock {
            sources,
            tenant_id: "t".into(),
            compaction_level: 0,
            replaces: Vec::new(),
            options: v1::WriteOptions::default(),
        };
        let encoded = encode_block(&part, &new_block).expect("encode");
        let meta = encoded.meta.clone();
        upload_block(&storage, encoded).await.expect("upload");
        let meta = read_meta(&storage, "t", &meta.block_id.to_string())
            .await
            .expect("meta");
        metas.push(meta.clone());
        list.add(BlockHandle::open(&storage, meta).await.expect("open"));
    }
    // One reading never suspects itself; the replay "b" overlaps the second block only.
    assert!(!may_share_records(&metas[0], &metas[1]));
    assert!(!may_share_records(&metas[0], &metas[2]));
    assert!(may_share_records(&metas[1], &metas[2]));
    assert!(!may_share_records(
        &older_meta(&metas[1], "sources"),
        &metas[2]
    ));
    let options = compaction::CompactionOptions::default();
    let merged = compaction::compact_once(&storage, &list, "t", &options, &holder("a"))
        .await
        .expect("compact")
        .expect("a plan");
    assert_eq!(
        merged.sources,
        Some(vec![source("a", 0, 90), source("b", 60, 120)])
    );
}
