//! Reading damaged blocks. A small valid `andante-v2` block (the fixture traces plus generated
//! ones, several row groups, dedicated slot columns) is encoded once; each input damages its
//! Parquet bytes, its index, its trace table and/or its rollup objects (flips, overwrites, cuts,
//! appended bytes, at offsets the input picks, counted from the start or from the end),
//! optionally re-seals the checksums of all but the Parquet file so the damage gets past them, uploads both to an in-memory `Storage` and reads the block the
//! ways the querier does: `BlockHandle::open`, then (the input picks which) `find_trace` for two
//! known IDs and an unknown one, `find_traces`, `read_all`, a stage-1 `scan` and a scan of one
//! row group (`scan_unit`, which reads its run of the trace table by range), columnar metrics
//! and compare() (`fold_metrics`, with or without exemplars) and `collect_tags`. Errors are the expected answer to damage; a panic, a
//! hang or a runaway allocation is a bug (the server would lose a query task or the process
//! instead of quarantining the block).
//!
//! Without damage every read must succeed and find the traces asked for: the target checks that
//! too, so a broken fixture cannot pass for robustness.

#![no_main]

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use andante_block::v1::metrics::{FoldWay, MetricsColumns};
use andante_block::v1::search::ScanPlan;
use andante_block::v1::tags::{TagCollection, TagRequest};
use andante_block::{encode_block, BlockHandle, BlockMeta, NewBlock, Trace};
use andante_fuzz::fixture;
use andante_model::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use andante_model::TraceId;
use andante_storage::Storage;
use andante_traceql::ast::{Field, Intrinsic, Scope};
use andante_traceql::{parse, parse_metrics, Accumulator, Intervals, TraceCondition};
use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

/// The encoded block every input starts from.
struct Pristine {
    meta: BlockMeta,
    parquet: Vec<u8>,
    index: Vec<u8>,
    trace_table: Vec<u8>,
    rollup: Vec<u8>,
    rollup_durations: Vec<u8>,
    trace_ids: Vec<TraceId>,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// Twelve traces of three spans with frequent string attributes (dedicated slot columns).
fn generated(number: u8) -> Trace {
    let trace_id = [0x40 + number; 16];
    let start = 1_700_000_000_000_000_000 + u64::from(number) * 1_000_000_000;
    let spans = (0u8..3)
        .map(|index| Span {
            trace_id: trace_id.to_vec(),
            span_id: vec![number + 1, index + 1, 0, 0, 0, 0, 0, 1],
            parent_span_id: if index == 0 {
                Vec::new()
            } else {
                vec![number + 1, index, 0, 0, 0, 0, 0, 1]
            },
            name: format!("op-{}", index % 2),
            kind: i32::from(index % 3) + 1,
            start_time_unix_nano: start + u64::from(index) * 1_000,
            end_time_unix_nano: start + 5_000_000,
            attributes: vec![
                kv("http.method", if number % 2 == 0 { "GET" } else { "POST" }),
                kv("user.id", &format!("u{number}")),
            ],
            status: Some(Status {
                code: i32::from(number % 3),
                message: String::new(),
            }),
            ..Default::default()
        })
        .collect();
    Trace {
        trace_id: TraceId(trace_id),
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", &format!("svc-{}", number % 3))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".to_owned(),
                    version: "1".to_owned(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn pristine() -> &'static Pristine {
    static PRISTINE: OnceLock<Pristine> = OnceLock::new();
    PRISTINE.get_or_init(|| {
        let mut traces: Vec<Trace> = fixture::traces()
            .into_iter()
            .map(|trace| Trace {
                trace_id: TraceId(trace.trace_id),
                resource_spans: trace.resource_spans,
            })
            .collect();
        traces.extend((0..12).map(generated));
        traces.sort_by_key(|trace| trace.trace_id);
        let new_block = NewBlock {
            sources: Vec::new(),
            tenant_id: "fuzz".to_owned(),
            compaction_level: 0,
            replaces: Vec::new(),
            options: andante_block::v1::WriteOptions {
                row_group_spans: 8,
                ..Default::default()
            },
        };
        let encoded = encode_block(&traces, &new_block).expect("encode the block");
        assert!(
            encoded.meta.row_groups > 2,
            "the fixture block has several row groups"
        );
        assert!(
            encoded.meta.trace_table_bytes.is_some(),
            "the block has a trace table"
        );
        Pristine {
            meta: encoded.meta,
            parquet: encoded.parquet,
            index: encoded.index,
            trace_table: encoded.trace_table,
            rollup: encoded.rollup,
            rollup_durations: encoded.rollup_durations,
            trace_ids: traces.iter().map(|trace| trace.trace_id).collect(),
        }
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("build a tokio runtime")
    })
}

#[derive(Arbitrary, Debug)]
struct Input {
    mutations: Vec<Mutation>,
    /// Recompute the index's and the trace table's checksums after damaging them, so the damage
    /// reaches the decoders.
    reseal_index: bool,
    /// Keep the original `data_bytes` in the meta (else: the damaged file's length).
    meta_keeps_size: bool,
    /// Which reads to run (bit 0 find_trace … bit 5 collect_tags; none: all of them). Each read
    /// decodes Parquet pages (zstd), so running all six on every input would slow the fuzzer
    /// down several times over.
    reads: u8,
    /// Which known traces `find_trace` and `find_traces` look for (indexes; an unknown ID too).
    traces: [u8; 2],
    query: u8,
    tag: u8,
    metrics: u8,
    time_range: Option<(u64, u64)>,
}

const FIND_TRACE: u8 = 1;
const FIND_TRACES: u8 = 2;
const READ_ALL: u8 = 4;
const SCAN: u8 = 8;
const FOLD_METRICS: u8 = 16;
const COLLECT_TAGS: u8 = 32;

#[derive(Arbitrary, Debug)]
struct Mutation {
    /// 0: `data.parquet`, 1: `index`, 2: `traces`, 3: `rollup`, 4: `durations` (modulo 5).
    file: u8,
    from_end: bool,
    offset: u32,
    edit: Edit,
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Flip(u8),
    Overwrite(Vec<u8>),
    SetU32(u32),
    Truncate,
    Append(Vec<u8>),
}

fn apply(data: &mut Vec<u8>, mutation: &Mutation) {
    if data.is_empty() {
        if let Edit::Append(bytes) = &mutation.edit {
            data.extend(bytes.iter().take(1024));
        }
        return;
    }
    let offset = mutation.offset as usize % data.len();
    let at = if mutation.from_end {
        data.len() - 1 - offset
    } else {
        offset
    };
    match &mutation.edit {
        Edit::Flip(mask) => data[at] ^= mask.max(&1),
        Edit::Overwrite(bytes) => {
            for (index, byte) in bytes.iter().take(64).enumerate() {
                if let Some(slot) = data.get_mut(at + index) {
                    *slot = *byte;
                }
            }
        }
        Edit::SetU32(value) => {
            for (index, byte) in value.to_le_bytes().into_iter().enumerate() {
                if let Some(slot) = data.get_mut(at + index) {
                    *slot = byte;
                }
            }
        }
        Edit::Truncate => data.truncate(at),
        Edit::Append(bytes) => data.extend(bytes.iter().take(1024)),
    }
}

const QUERIES: &[&str] = &[
    "{ }",
    r#"{ resource.service.name = "cart" }"#,
    r#"{ span.http.route = "/cart" || duration > 50ms }"#,
    "{ status = error } > { kind = client }",
    r#"{ span.user.id =~ "u1.*" }"#,
    r#"{ span.http.method = "GET" && name = "op-1" }"#,
    r#"{ event:name = "exception" }"#,
    "{ span.items = 3 }",
    r#"{ .db.system = "redis" } << { kind = server }"#,
    r#"{ instrumentation:name = "lib" && trace:rootService = "svc-1" }"#,
    r#"{ link:traceID = "01010101010101010101010101010101" }"#,
];

const METRICS: &[&str] = &[
    "{ } | rate() by (resource.service.name)",
    r#"{ span.http.method = "GET" } | count_over_time() by (name, span.user.id)"#,
    "{ status = error } | quantile_over_time(duration, .5, .99)",
    r#"{ name = "op-1" || kind = server } | avg_over_time(duration) by (status)"#,
    "{ kind = client } | histogram_over_time(duration)",
    "{ } | compare({ status = error })",
    r#"{ resource.service.name = "checkout" } | compare({ duration > 1ms && span.http.method = "GET" }, 3)"#,
];

fn tag_request(choice: u8) -> TagRequest {
    let attribute = |scope, name: &str| {
        TagRequest::Values(Field::Attribute {
            scope,
            parent: false,
            name: name.to_owned(),
        })
    };
    match choice % 10 {
        0 => TagRequest::Names,
        1 => attribute(Scope::Resource, "service.name"),
        2 => attribute(Scope::Span, "http.route"),
        3 => attribute(Scope::Span, "user.id"),
        4 => attribute(Scope::Event, "exception.type"),
        5 => attribute(Scope::Link, "relation"),
        6 => TagRequest::Values(Field::Intrinsic(Intrinsic::Name)),
        7 => TagRequest::Values(Field::Intrinsic(Intrinsic::Status)),
        8 => TagRequest::Values(Field::Intrinsic(Intrinsic::Duration)),
        _ => TagRequest::Values(Field::Intrinsic(Intrinsic::InstrumentationName)),
    }
}

/// Re-seals an index's or trace table's trailing crc32c over everything before it.
fn reseal(index: &mut [u8]) {
    if index.len() < 4 {
        return;
    }
    let body_len = index.len() - 4;
    let crc = crc32c::crc32c(&index[..body_len]);
    index[body_len..].copy_from_slice(&crc.to_le_bytes());
}

/// Reads the block every way; returns whether every step succeeded and found every trace.
async fn read_everything(
    storage: &Storage,
    meta: BlockMeta,
    input: &Input,
    trace_ids: &[TraceId],
) -> bool {
    let Ok(handle) = BlockHandle::open(storage, meta).await else {
        return false;
    };
    let cpu = Arc::new(tokio::sync::Semaphore::new(1));
    let mut all_ok = true;
    let reads = if input.reads & 63 == 0 {
        63
    } else {
        input.reads
    };
    let wanted: Vec<TraceId> = input
        .traces
        .iter()
        .map(|index| trace_ids[*index as usize % trace_ids.len()])
        .collect();
    if reads & FIND_TRACE != 0 {
        for trace_id in wanted.iter().copied().chain([TraceId([0xee; 16])]) {
            std::hint::black_box(handle.may_contain(&trace_id));
            match handle.find_trace(storage, trace_id).await {
                Ok(read) => all_ok &= read.trace.is_some() == trace_ids.contains(&trace_id),
                Err(_) => all_ok = false,
            }
        }
    }
    if reads & FIND_TRACES != 0 {
        let mut distinct = wanted.clone();
        distinct.dedup();
        distinct.push(TraceId([0xee; 16]));
        match handle.find_traces(storage, &distinct).await {
            Ok((traces, _)) => all_ok &= traces.len() == distinct.len() - 1,
            Err(_) => all_ok = false,
        }
    }
    if reads & READ_ALL != 0 {
        match handle.read_all(storage).await {
            Ok(traces) => all_ok &= traces.len() == trace_ids.len(),
            Err(_) => all_ok = false,
        }
    }
    let time_range = match input.time_range {
        Some((a, b)) => a.min(b)..a.max(b),
        None => 0..u64::MAX,
    };
    let text = QUERIES[input.query as usize % QUERIES.len()];
    let query = parse(text).expect("the target's queries parse");
    let plan = Arc::new(ScanPlan::new(
        TraceCondition::of(&query),
        time_range.clone(),
    ));
    if reads & SCAN != 0 {
        all_ok &= handle.scan(storage, plan.clone(), cpu.clone()).await.is_ok();
        let units = handle.scan_units();
        let (_, unit) = units[input.query as usize % units.len()];
        all_ok &= handle
            .scan_unit(storage, plan, cpu.clone(), unit)
            .await
            .is_ok();
    }

    let metrics = parse_metrics(METRICS[input.metrics as usize % METRICS.len()])
        .expect("the target's metrics queries parse");
    let exists = |predicate| match predicate {
        Some(predicate) => TraceCondition::Exists(predicate),
        None => TraceCondition::True,
    };
    // The columnar folds: one function by its columns, or compare() over every attribute.
    let fold = if reads & FOLD_METRICS == 0 {
        None
    } else if let Some(columns) = MetricsColumns::of(&metrics) {
        let condition = exists(metrics.columnar().and_then(|spec| spec.predicate));
        let plan = ScanPlan::with_columns(condition, time_range.clone(), &columns.names());
        Some((plan, FoldWay::Columns(columns)))
    } else {
        metrics.columnar_compare().map(|(search, filter)| {
            let filter = filter
                .map(|filter| Arc::new(ScanPlan::new(exists(Some(filter)), time_range.clone())));
            (
                ScanPlan::new(exists(search), time_range.clone()),
                FoldWay::Compare { filter },
            )
        })
    };
    if let Some((plan, way)) = fold {
        // With exemplars, rows' traces come from the (possibly damaged) trace table.
        let accumulator = Accumulator::new(Intervals::range(
            1_699_999_000_000_000_000,
            1_700_000_100_000_000_000,
            10_000_000_000,
        ))
        .with_exemplars(if input.metrics & 0x80 != 0 { 10 } else { 0 });
        let folded = handle
            .fold_metrics(
                storage,
                Arc::new(plan),
                Arc::new(way),
                Arc::new(metrics.clone()),
                accumulator,
                Arc::new(HashSet::new()),
                cpu.clone(),
            )
            .await;
        match folded {
            Ok((accumulator, _, _)) => {
                std::hint::black_box(accumulator.finish(&metrics));
            }
            Err(_) => all_ok = false,
        }
    }

    if reads & COLLECT_TAGS != 0 {
        let tag_plan = Arc::new(ScanPlan::new(TraceCondition::True, time_range));
        let mut tags = TagCollection::default();
        let request = tag_request(input.tag);
        all_ok &= handle
            .collect_tags(
                storage,
                &request,
                tag_plan,
                cpu,
                &mut tags,
                &mut HashSet::new(),
            )
            .await
            .is_ok();
    }
    all_ok
}

/// libFuzzer's panic hook aborts on every panic. A panic inside a guarded decode
/// (`andante_block::guard`) is caught and returned as a `Corrupt` error, the answer the server
/// gives, so only panics outside one are passed on to it.
fn contain_guarded_decoder_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !andante_block::guard::decoding() {
                abort(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    contain_guarded_decoder_panics();
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    if std::env::var_os("ANDANTE_FUZZ_PRINT").is_some() {
        eprintln!("{input:?}");
    }
    let pristine = pristine();
    let mut parquet = pristine.parquet.clone();
    let mut index = pristine.index.clone();
    let mut trace_table = pristine.trace_table.clone();
    let mut rollup = pristine.rollup.clone();
    let mut rollup_durations = pristine.rollup_durations.clone();
    for mutation in input.mutations.iter().take(8) {
        match mutation.file % 5 {
            0 => apply(&mut parquet, mutation),
            1 => apply(&mut index, mutation),
            2 => apply(&mut trace_table, mutation),
            3 => apply(&mut rollup, mutation),
            _ => apply(&mut rollup_durations, mutation),
        }
    }
    if input.reseal_index {
        reseal(&mut index);
        reseal(&mut trace_table);
        reseal(&mut rollup);
        reseal(&mut rollup_durations);
    }
    let undamaged = parquet == pristine.parquet
        && index == pristine.index
        && trace_table == pristine.trace_table
        && rollup == pristine.rollup
        && rollup_durations == pristine.rollup_durations;
    let mut meta = pristine.meta.clone();
    if !input.meta_keeps_size {
        meta.data_bytes = parquet.len() as u64;
        meta.index_bytes = index.len() as u64;
    }
    let storage = Storage::in_memory();
    let all_ok = runtime().block_on(async {
        storage
            .put(&meta.data_key(), Bytes::from(parquet))
            .await
            .expect("in-memory put");
        storage
            .put(&meta.index_key(), Bytes::from(index))
            .await
            .expect("in-memory put");
        storage
            .put(&meta.trace_table_key(), Bytes::from(trace_table))
            .await
            .expect("in-memory put");
        storage
            .put(&meta.rollup_key(), Bytes::from(rollup))
            .await
            .expect("in-memory put");
        storage
            .put(&meta.rollup_durations_key(), Bytes::from(rollup_durations))
            .await
            .expect("in-memory put");
        read_everything(&storage, meta, &input, &pristine.trace_ids).await
    });
    if undamaged {
        assert!(all_ok, "an undamaged block failed to read back");
    }
});
