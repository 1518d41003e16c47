//! Tests of the `andante-v2` layout: row groups as slices of time, the index v3 summaries that
//! describe them, scans of one row group, and the two-pass compaction of v2 blocks.

use std::collections::BTreeSet;
use std::sync::Arc;

use andante_model::otlp::common::v1::any_value;
use andante_model::otlp::trace::v1::Span;
use andante_model::TraceId;
use andante_storage::Storage;

use crate::tests::{attribute, canonical, holder, new_block, scan_all, traces, write};
use crate::*;

/// Every row group's trace-table entries, in row order.
async fn entries_by_row_group(
    storage: &Storage,
    handle: &BlockHandle,
) -> Vec<Vec<trace_table::TraceEntry>> {
    let bytes = storage
        .get(&handle.meta.trace_table_key())
        .await
        .expect("table");
    let table = trace_table::TraceTable::decode(bytes).expect("intact");
    (0..handle.meta.row_groups)
        .map(|row_group| {
            table
                .row_group(row_group)
                .map(|index| table.get(index))
                .collect()
        })
        .collect()
}

/// Checks the v2 layout against the block's own table: groups newest first and disjoint in
/// time, IDs sorted inside each, and the index's summaries true to the table.
async fn assert_time_clustered(storage: &Storage, handle: &BlockHandle) {
    assert_eq!(handle.meta.format, FORMAT_V2);
    let groups = entries_by_row_group(storage, handle).await;
    let summaries = handle
        .index
        .row_group_summaries
        .as_ref()
        .expect("index v3 summarises row groups");
    assert_eq!(summaries.len(), groups.len());
    let mut first = 0;
    for (row_group, (entries, summary)) in groups.iter().zip(summaries).enumerate() {
        assert!(!entries.is_empty(), "row group {row_group} is empty");
        assert!(
            entries.windows(2).all(|w| w[0].trace_id < w[1].trace_id),
            "row group {row_group} is not in ID order"
        );
        let newest = entries.iter().map(|e| e.start_unix_nanos).max();
        assert_eq!(Some(summary.newest_start_unix_nanos), newest);
        assert_eq!(
            handle
                .index
                .trace_entries(row_group)
                .map(|(at, n, _)| (at, n)),
            Some((first, entries.len()))
        );
        first += entries.len();
        for entry in entries {
            assert!(summary.bloom.may_contain(&entry.trace_id));
        }
        if let Some(next) = groups.get(row_group + 1) {
            let oldest_here = entries.iter().map(|e| e.start_unix_nanos).min();
            let newest_next = next.iter().map(|e| e.start_unix_nanos).max();
            assert!(
                oldest_here >= newest_next,
                "row groups {row_group} and next overlap in time"
            );
        }
    }
}

#[tokio::test]
async fn v2_row_groups_are_slices_of_time_that_scan_and_read_alone() {
    use andante_traceql::{parse, TraceCondition};
    let storage = Storage::in_memory();
    let traces = traces(41, 400);
    let handle = write(&storage, &traces, 150).await;
    assert!(handle.meta.row_groups > 5, "{}", handle.meta.row_groups);
    assert_time_clustered(&storage, &handle).await;

    // Every trace by ID, alone and in one batch: IDs ranges overlap now, Bloom filters decide.
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
    let ids: Vec<TraceId> = traces.iter().map(|trace| trace.trace_id).collect();
    let (mut batch, _) = handle.find_traces(&storage, &ids).await.expect("batch");
    batch.sort_by_key(|trace| trace.trace_id);
    assert_eq!(batch.len(), traces.len());
    assert!(handle
        .find_trace(&storage, TraceId([0xee; 16]))
        .await
        .expect("read")
        .trace
        .is_none());

    // The row groups scanned one by one find what the whole block's scan finds, and each
    // reads only its own run of the trace table.
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let units = handle.scan_units();
    assert_eq!(units.len(), handle.meta.row_groups as usize);
    assert!(units.windows(2).all(|w| w[0].0 >= w[1].0), "{units:?}");
    for text in [
        "{ }",
        "{ status = error }",
        "{ kind = server } >> { kind = client }",
    ] {
        let query = parse(text).expect("parses");
        let whole = scan_all(&handle, &storage, &query, &cpu).await;
        let plan = Arc::new(v1::search::ScanPlan::new(
            TraceCondition::of(&query),
            0..u64::MAX,
        ));
        let mut by_unit = Vec::new();
        for (bound, unit) in &units {
            let outcome = handle
                .scan_unit(&storage, plan.clone(), cpu.clone(), *unit)
                .await
                .expect("scan");
            for candidate in &outcome.candidates {
                assert!(
                    candidate.start_unix_nanos <= *bound,
                    "{text}: a start past its unit's bound"
                );
            }
            if text == "{ }" {
                assert!(
                    outcome.bytes_read < handle.meta.trace_table_bytes.expect("table") / 2,
                    "{text}: a row group read {} bytes",
                    outcome.bytes_read
                );
            }
            by_unit.extend(outcome.candidates.into_iter().map(|c| c.trace_id));
        }
        let whole: BTreeSet<TraceId> = whole.candidates.iter().map(|c| c.trace_id).collect();
        let by_unit_set: BTreeSet<TraceId> = by_unit.iter().copied().collect();
        assert_eq!(
            by_unit.len(),
            by_unit_set.len(),
            "{text}: a trace in two row groups"
        );
        assert_eq!(whole, by_unit_set, "{text}");
        assert!(!whole.is_empty(), "{text}");
    }
}

/// Index v4: a search for an attribute value skips, from memory, every row group that lacks it,
/// and finds what a scan of every row group finds.
#[tokio::test]
async fn row_groups_without_the_searched_value_are_skipped_from_memory() {
    use andante_model::otlp::common::v1::any_value;
    use andante_traceql::{parse, TraceCondition};
    let storage = Storage::in_memory();
    let traces = traces(47, 400);
    let handle = write(&storage, &traces, 150).await;
    let units = handle.scan_units();
    assert!(units.len() > 5, "{}", units.len());
    assert!(handle
        .index
        .row_group_summaries
        .as_ref()
        .expect("summaries")
        .iter()
        .all(|summary| summary.values.is_some()));
    // A user ID (random per span) held by one trace only.
    let user = traces[123].resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .iter()
        .find(|kv| kv.key == "user.id")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(value) => Some(value.clone()),
            _ => None,
        })
        .expect("a user ID");
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let plan_of = |text: &str| {
        Arc::new(v1::search::ScanPlan::new(
            TraceCondition::of(&parse(text).expect("parses")),
            0..u64::MAX,
        ))
    };
    let found = plan_of(&format!(r#"{{ span.user.id = "{user}" }}"#));
    let kept: Vec<Option<usize>> = units
        .iter()
        .map(|(_, unit)| *unit)
        .filter(|unit| handle.unit_may_match(&found, *unit))
        .collect();
    // 1 % false positives per row group: nearly all others are skipped.
    assert!(kept.len() <= 2, "{kept:?} of {}", units.len());
    let mut hits = BTreeSet::new();
    for unit in &kept {
        let outcome = handle
            .scan_unit(&storage, found.clone(), cpu.clone(), *unit)
            .await
            .expect("scan");
        hits.extend(outcome.candidates.iter().map(|c| c.trace_id));
    }
    assert!(hits.contains(&traces[123].trace_id), "{hits:?}");
    // The engine over every trace agrees: no trace outside the kept row groups matches.
    let query = parse(&format!(r#"{{ span.user.id = "{user}" }}"#)).expect("parses");
    let engine: BTreeSet<TraceId> = crate::tests::matching_traces(&query, &traces)
        .into_iter()
        .collect();
    assert_eq!(hits, engine);
    // A value no span has, in either scope or unscoped, is ruled out everywhere; a value
    // ruled out in one branch of `||` is not, and neither is `!=` or a regex.
    for (text, skipped) in [
        (r#"{ span.user.id = "nobody" }"#, true),
        (r#"{ .user.id = "nobody" }"#, true),
        (r#"{ resource.user.id = "u1" }"#, true),
        (r#"{ span.user.id = "nobody" && kind = server }"#, true),
        (r#"{ span.user.id = "nobody" } && { kind = server }"#, true),
        (r#"{ span.user.id = "nobody" || kind = server }"#, false),
        (r#"{ span.user.id != "nobody" }"#, false),
        (r#"{ span.user.id =~ "nobody" }"#, false),
        (r#"{ span.tags = "zzz" }"#, false),
        (r#"{ span.http.route = "/r/1" }"#, false),
    ] {
        let plan = plan_of(text);
        let kept = units
            .iter()
            .filter(|(_, unit)| handle.unit_may_match(&plan, *unit))
            .count();
        match skipped {
            true => assert!(kept <= 1, "{text}: {kept} of {} kept", units.len()),
            false => assert_eq!(kept, units.len(), "{text}"),
        }
    }
}

#[tokio::test]
async fn a_damaged_run_of_the_trace_table_sends_the_scan_to_the_columns() {
    use andante_traceql::{parse, TraceCondition};
    let storage = Storage::in_memory();
    let traces = traces(43, 200);
    let handle = write(&storage, &traces, 100).await;
    let cpu = Arc::new(tokio::sync::Semaphore::new(2));
    let plan = Arc::new(v1::search::ScanPlan::new(
        TraceCondition::of(&parse("{ status = error }").expect("parses")),
        0..u64::MAX,
    ));
    let intact = handle
        .scan_unit(&storage, plan.clone(), cpu.clone(), Some(1))
        .await
        .expect("scan");
    assert!(!intact.candidates.is_empty());
    let (first, _, _) = handle.index.trace_entries(1).expect("summaries");
    let key = handle.meta.trace_table_key();
    let mut bytes = storage.get(&key).await.expect("table").to_vec();
    let at = trace_table::entries_range(first, 1).start as usize + 30;
    bytes[at] ^= 0x40;
    storage.put(&key, bytes.into()).await.expect("put");
    let fallback = handle
        .scan_unit(&storage, plan, cpu, Some(1))
        .await
        .expect("scan");
    let ids = |outcome: &v1::search::ScanOutcome| -> BTreeSet<TraceId> {
        outcome.candidates.iter().map(|c| c.trace_id).collect()
    };
    assert_eq!(ids(&fallback), ids(&intact));
}

/// `traces` with `edit` applied to every span.
fn edited(traces: &[Trace], mut edit: impl FnMut(&mut Span)) -> Vec<Trace> {
    let mut traces = traces.to_vec();
    traces
        .iter_mut()
        .flat_map(|t| &mut t.resource_spans)
        .flat_map(|r| &mut r.scope_spans)
        .flat_map(|s| &mut s.spans)
        .for_each(&mut edit);
    traces
}

/// `traces` with every span moved `shift` nanoseconds later.
fn shifted(traces: &[Trace], shift: u64) -> Vec<Trace> {
    edited(traces, |span| {
        span.start_time_unix_nano += shift;
        span.end_time_unix_nano += shift;
    })
}

/// Every `step`th trace of `traces`, `shift` nanoseconds later and with other span IDs: late
/// pieces of those traces.
fn late_pieces(traces: &[Trace], shift: u64, step: usize) -> Vec<Trace> {
    edited(traces, |span| {
        span.start_time_unix_nano += shift;
        span.end_time_unix_nano += shift;
        span.span_id[0] ^= 0x5a;
    })
    .into_iter()
    .step_by(step)
    .collect()
}

#[tokio::test]
async fn compaction_of_v2_blocks_joins_late_pieces_in_time_order() {
    let storage = Storage::in_memory();
    let early = traces(47, 240);
    // Late pieces of some early traces, written in a later block and starting 10 s later: the
    // merged trace belongs where its first piece starts.
    let late = late_pieces(&early, 10_000_000_000, 3);
    let others = shifted(&traces(53, 150), 5_000_000_000);
    let list = blocklist::BlockList::default();
    for part in [&early, &late, &others] {
        list.add(write(&storage, part, 200).await);
    }
    // One input loses its trace table: the merge reads that input's traces from its data.
    let without_table = list.blocks("t")[1].meta.clone();
    storage
        .delete(&without_table.trace_table_key())
        .await
        .expect("delete");
    let options = compaction::CompactionOptions {
        write: v1::WriteOptions {
            row_group_spans: 300,
            ..Default::default()
        },
        ..Default::default()
    };
    let meta = compaction::compact_once(&storage, &list, "t", &options, &holder("a"))
        .await
        .expect("compact")
        .expect("a plan");
    assert_eq!(meta.replaces.len(), 3);
    let blocks = list.blocks("t");
    assert_eq!(blocks.len(), 1);
    let merged = &blocks[0];
    assert!(merged.meta.row_groups > 4, "{}", merged.meta.row_groups);
    assert_time_clustered(&storage, merged).await;
    let mut expected: std::collections::BTreeMap<
        TraceId,
        Vec<andante_model::otlp::trace::v1::ResourceSpans>,
    > = std::collections::BTreeMap::new();
    for trace in early.iter().chain(&late).chain(&others) {
        expected
            .entry(trace.trace_id)
            .or_default()
            .extend(trace.resource_spans.clone());
    }
    assert_eq!(merged.meta.trace_count as usize, expected.len());
    let table = entries_by_row_group(&storage, merged).await;
    for (trace_id, resource_spans) in &expected {
        let found = merged
            .find_trace(&storage, *trace_id)
            .await
            .expect("read")
            .trace
            .expect("present");
        let want = andante_model::merge_resource_spans(resource_spans.clone());
        assert_eq!(canonical(&found.resource_spans), canonical(&want));
        // Placed by its earliest piece.
        let start = order::trace_start(&found);
        let entry = table
            .iter()
            .flatten()
            .find(|entry| entry.trace_id == *trace_id)
            .expect("in the table");
        assert_eq!(entry.start_unix_nanos, start);
    }
}

#[tokio::test]
async fn blocks_of_the_two_formats_are_merged_apart() {
    let storage = Storage::in_memory();
    let list = blocklist::BlockList::default();
    let new_block = NewBlock {
        sources: Vec::new(),
        tenant_id: "t".into(),
        compaction_level: 0,
        replaces: Vec::new(),
        options: v1::WriteOptions::default(),
    };
    let mut v1_ids = Vec::new();
    for seed in [61, 62] {
        let traces = traces(seed, 30);
        let encoded =
            encode_block_from(traces.iter().cloned(), traces.len(), &new_block).expect("v1");
        let meta = encoded.meta.clone();
        assert_eq!(meta.format, FORMAT_V1);
        v1_ids.push(meta.block_id);
        upload_block(&storage, encoded).await.expect("upload");
        list.add(BlockHandle::open(&storage, meta).await.expect("open"));
    }
    let mut v2_ids = Vec::new();
    for seed in [63, 64] {
        let handle = write(&storage, &traces(seed, 30), 1000).await;
        v2_ids.push(handle.meta.block_id);
        list.add(handle);
    }
    let plans = compaction::plan_compactions(&list.blocks("t"), &Default::default(), u64::MAX);
    assert_eq!(plans.len(), 2, "one plan per format");
    for plan in &plans {
        let ids: BTreeSet<_> = plan.iter().map(|h| h.meta.block_id).collect();
        assert!(ids == v1_ids.iter().copied().collect() || ids == v2_ids.iter().copied().collect());
    }
    let options = compaction::CompactionOptions::default();
    let mut formats = BTreeSet::new();
    while let Some(meta) = compaction::compact_once(&storage, &list, "t", &options, &holder("a"))
        .await
        .expect("compact")
    {
        formats.insert(meta.format.clone());
    }
    assert_eq!(
        formats,
        [FORMAT_V1.to_owned(), FORMAT_V2.to_owned()]
            .into_iter()
            .collect()
    );
    assert_eq!(list.blocks("t").len(), 2);
}

/// `traces` with a string attribute `key` on every `every`th span, so blocks of them pick other
/// slots, or the same in another order.
fn with_attribute(traces: &[Trace], key: &str, every: usize) -> Vec<Trace> {
    let mut seen = 0;
    edited(traces, |span| {
        seen += 1;
        if seen % every == 0 {
            let value = format!("v{}", span.start_time_unix_nano % 7);
            span.attributes
                .push(attribute(key, any_value::Value::StringValue(value)));
        }
    })
}

/// Merge inputs as compaction fetches them: files, trace tables (the second input's lost) and
/// metas. Late pieces of early traces make some traces span inputs. Every span carries `team`
/// besides `user.id`, which gives slots [team, user.id]; the third input has `team` on half its
/// spans, so the same slots in the other order; the last input's spans carry one more key, so
/// its slots differ from the others'.
fn merge_inputs() -> (
    Vec<bytes::Bytes>,
    Vec<Option<trace_table::TraceTable>>,
    Vec<BlockMeta>,
) {
    let early = with_attribute(&traces(61, 260), "team", 1);
    let late = late_pieces(&early, 4_000_000_000, 4);
    let more = with_attribute(&shifted(&traces(67, 200), 2_000_000_000), "team", 2);
    let other_slots = with_attribute(&with_attribute(&traces(71, 120), "team", 1), "zone", 1);
    let new_block = new_block(0, 200);
    let (mut files, mut tables, mut metas) = (Vec::new(), Vec::new(), Vec::new());
    for (input, part) in [early, late, more, other_slots].iter().enumerate() {
        let encoded = encode_block(part, &new_block).expect("encodes");
        // The inputs' slots are what the doc comment says.
        let metadata = parquet::arrow::arrow_reader::ArrowReaderMetadata::load(
            &bytes::Bytes::from(encoded.parquet.clone()),
            Default::default(),
        )
        .expect("footer");
        let slots = v1::DedicatedSlots::from_metadata(metadata.metadata());
        let keys: Vec<&str> = slots.iter().map(|(key, _)| key).collect();
        match input {
            2 => assert_eq!(keys, ["user.id", "team"]),
            3 => assert_eq!(keys.len(), 3),
            _ => assert_eq!(keys, ["team", "user.id"]),
        }
        let table = trace_table::TraceTable::decode(encoded.trace_table.into()).expect("a table");
        tables.push((input != 1).then_some(table));
        files.push(bytes::Bytes::from(encoded.parquet));
        metas.push(encoded.meta);
    }
    (files, tables, metas)
}

fn merged_block() -> NewBlock {
    new_block(1, 300)
}

/// Copying whole traces as rows writes byte for byte the block that decoding and encoding every
/// trace again writes: the same file, index, trace table, rollups and meta.
#[test]
fn a_merge_copying_rows_writes_the_block_a_decoding_merge_writes() {
    let (files, tables, metas) = merge_inputs();
    let new_block = merged_block();
    let (copying, copied) =
        compaction::merge_columns(&files, tables.clone(), &metas, &new_block, true)
            .expect("merges");
    let (decoding, none_copied) =
        compaction::merge_columns(&files, tables, &metas, &new_block, false).expect("merges");
    assert_eq!(none_copied, 0);
    // Most traces copy; the split ones and the other-slot input's are decoded.
    let total = copying.meta.trace_count as usize;
    assert!(copied > total / 2 && copied < total, "{copied} of {total}");
    assert!(copying.meta.row_groups > 4, "{}", copying.meta.row_groups);
    assert!(copying.parquet == decoding.parquet, "the files differ");
    assert_eq!(copying.index, decoding.index);
    assert_eq!(copying.trace_table, decoding.trace_table);
    assert_eq!(copying.rollup, decoding.rollup);
    assert_eq!(copying.rollup_durations, decoding.rollup_durations);
    let comparable = |meta: &BlockMeta| BlockMeta {
        block_id: uuid::Uuid::nil(),
        created_unix_nanos: 0,
        ..meta.clone()
    };
    assert_eq!(
        serde_json::to_value(comparable(&copying.meta)).expect("json"),
        serde_json::to_value(comparable(&decoding.meta)).expect("json")
    );
}

/// What the column merge derives from columns and metas (value filters, rollups, trace table,
/// tag and service names, time range) is what the trace writer derives from the same row
/// groups' traces.
#[test]
fn a_column_merge_summarises_its_row_groups_as_the_trace_writer_does() {
    let (files, tables, metas) = merge_inputs();
    let new_block = merged_block();
    let merged =
        compaction::merge_time_clustered(files, tables, &metas, &new_block).expect("merges");
    let data = bytes::Bytes::from(merged.parquet.clone());
    let metadata =
        parquet::arrow::arrow_reader::ArrowReaderMetadata::load(&data, Default::default())
            .expect("footer");
    let groups: Vec<Vec<Trace>> = (0..merged.meta.row_groups as usize)
        .map(|row_group| {
            v1::TraceStream::of_row_group(data.clone(), &metadata, row_group, 8192)
                .expect("stream")
                .collect::<Result<Vec<_>, _>>()
                .expect("decodes")
        })
        .collect();
    let spans: usize = groups.iter().flatten().map(v1::span_count).sum();
    assert_eq!(spans as u64, merged.meta.span_count);
    let rewritten = encode_block_groups(
        &encoding::V2,
        groups,
        merged.meta.trace_count as usize,
        &new_block,
    )
    .expect("encodes");
    assert_eq!(merged.trace_table, rewritten.trace_table);
    assert_eq!(merged.rollup, rewritten.rollup);
    assert_eq!(merged.rollup_durations, rewritten.rollup_durations);
    let (ours, theirs) = (
        index::BlockIndex::decode(&merged.index).expect("index"),
        index::BlockIndex::decode(&rewritten.index).expect("index"),
    );
    assert_eq!(ours.row_group_ranges, theirs.row_group_ranges);
    assert_eq!(ours.row_group_summaries, theirs.row_group_summaries);
    assert!(ours
        .row_group_summaries
        .iter()
        .flatten()
        .all(|summary| summary.values.as_ref().is_some_and(|v| !v.keys.is_empty())));
    let (ours, theirs) = (&merged.meta, &rewritten.meta);
    assert_eq!(ours.tag_names, theirs.tag_names);
    assert!(ours
        .tag_names
        .as_ref()
        .is_some_and(|names| names["span"].iter().any(|name| name == "zone")));
    assert_eq!(ours.service_names, theirs.service_names);
    assert_eq!(
        (ours.start_unix_nanos, ours.end_unix_nanos, ours.trace_count),
        (
            theirs.start_unix_nanos,
            theirs.end_unix_nanos,
            theirs.trace_count
        )
    );
}

/// A trace table is trusted for row positions only if its entries cover each row group's rows
/// exactly once: one whose entries overlap (with the right row counts) is ignored, and the merge
/// finds the input's traces from its data, losing none.
#[test]
fn a_table_whose_entries_overlap_is_not_trusted_for_rows() {
    let traces = traces(73, 120);
    let encoded = encode_block(&traces, &new_block(0, 200)).expect("encodes");
    let table = trace_table::TraceTable::decode(encoded.trace_table.clone().into()).expect("table");
    let mut entries: Vec<trace_table::TraceEntry> =
        (0..table.len()).map(|at| table.get(at)).collect();
    // The second entry of the first row group points at the first's rows, keeping its own
    // count: the counts still add up to the row group's rows, but two entries overlap.
    assert_eq!(entries[0].row_group, entries[1].row_group);
    entries[1].first_row = entries[0].first_row;
    let damaged =
        trace_table::TraceTable::decode(trace_table::encode(&entries).into()).expect("decodes");
    let data = bytes::Bytes::from(encoded.parquet.clone());
    let (merged, _) = compaction::merge_columns(
        &[data],
        vec![Some(damaged)],
        std::slice::from_ref(&encoded.meta),
        &new_block(1, 300),
        true,
    )
    .expect("merges from the data");
    assert_eq!(merged.meta.trace_count, encoded.meta.trace_count);
    assert_eq!(merged.meta.span_count, encoded.meta.span_count);
}
