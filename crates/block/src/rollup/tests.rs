use std::sync::Arc;

use andante_model::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use andante_model::otlp::resource::v1::Resource;
use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use andante_model::TraceId;
use andante_storage::Storage;
use andante_traceql::metrics::MetricsSeries;
use andante_traceql::{parse_metrics, Accumulator, Intervals};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::tests::write;
use crate::{v1, BlockHandle, Trace};

const BASE: u64 = 1_700_000_000 * NANOS_PER_SECOND;
const SPREAD_SECONDS: u64 = 20;

/// Traces whose resources carry every kind of `service.name` (strings, "", none, an integer,
/// two of them), spans of every name, status and kind (some out of range), starting anywhere
/// in 20 seconds, some exactly on a second (the side a cell closes on).
fn traces(seed: u64, count: usize) -> Vec<Trace> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let string = |text: &str| AnyValue {
        value: Some(any_value::Value::StringValue(text.into())),
    };
    let mut traces: Vec<Trace> = (0..count)
        .map(|_| {
            let mut trace_id = [0u8; 16];
            rng.fill(&mut trace_id[..]);
            trace_id[0] |= 1;
            let trace_start = BASE + rng.random_range(0..SPREAD_SECONDS * NANOS_PER_SECOND);
            let resource_spans = (0..rng.random_range(1..3))
                .map(|_| {
                    let service = match rng.random_range(0..24) {
                        0 => vec![],
                        1 => vec![KeyValue {
                            key: "service.name".into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(7)),
                            }),
                            ..Default::default()
                        }],
                        2 => vec![KeyValue {
                            key: "service.name".into(),
                            value: Some(string("")),
                            ..Default::default()
                        }],
                        3 => ["svc-a", "svc-b"]
                            .iter()
                            .map(|name| KeyValue {
                                key: "service.name".into(),
                                value: Some(string(name)),
                                ..Default::default()
                            })
                            .collect(),
                        n => vec![KeyValue {
                            key: "service.name".into(),
                            value: Some(string(&format!("svc-{}", n % 3))),
                            ..Default::default()
                        }],
                    };
                    let spans = (0..rng.random_range(1..6))
                        .map(|_| {
                            let mut span_id = [0u8; 8];
                            rng.fill(&mut span_id[..]);
                            span_id[0] |= 1;
                            let mut start = trace_start + rng.random_range(0..3 * NANOS_PER_SECOND);
                            if rng.random_bool(0.2) {
                                start -= start % NANOS_PER_SECOND;
                            }
                            Span {
                                trace_id: trace_id.to_vec(),
                                span_id: span_id.to_vec(),
                                name: ["GET /", "POST /cart", "", "db"][rng.random_range(0..4)]
                                    .into(),
                                kind: if rng.random_bool(0.9) {
                                    2
                                } else {
                                    rng.random_range(0..7)
                                },
                                start_time_unix_nano: start,
                                end_time_unix_nano: start + rng.random_range(0..1_000_000),
                                status: rng.random_bool(0.9).then(|| Status {
                                    code: if rng.random_bool(0.9) {
                                        0
                                    } else {
                                        rng.random_range(0..4)
                                    },
                                    message: String::new(),
                                }),
                                ..Default::default()
                            }
                        })
                        .collect();
                    ResourceSpans {
                        resource: Some(Resource {
                            attributes: service,
                            ..Default::default()
                        }),
                        scope_spans: vec![ScopeSpans {
                            scope: Some(InstrumentationScope::default()),
                            spans,
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    }
                })
                .collect();
            Trace {
                trace_id: TraceId(trace_id),
                resource_spans,
            }
        })
        .collect();
    traces.sort_by_key(|trace| trace.trace_id);
    traces.dedup_by_key(|trace| trace.trace_id);
    traces
}

/// Queries the cells answer: every field in filters (equalities, regexes, negations, `&&`,
/// `||`) and in `by`, both counting functions.
const ANSWERED: &[&str] = &[
    "{ } | rate()",
    "{ } | rate() by (resource.service.name)",
    "{ } | count_over_time() by (name, kind)",
    "{ status = error } | rate() by (resource.service.name)",
    r#"{ resource.service.name = "svc-1" && kind = server } | rate() by (name)"#,
    r#"{ name =~ "POST.*|db" || status != ok } | count_over_time() by (status)"#,
    r#"{ resource.service.name =~ "svc-.*" } | rate()"#,
    r#"{ resource.service.name = "" } | rate() by (name)"#,
    r#"{ resource.service.name != "svc-1" } | rate()"#,
    r#"{ resource.service.name !~ "svc-1" } | rate() by (name)"#,
    "{ kind != client && status = unset } | rate() by (resource.service.name, name, status)",
    r#"{ name != "db" } | count_over_time() by (kind)"#,
    "{ } | quantile_over_time(duration, .5, .9, .99) by (resource.service.name)",
    r#"{ status = error || name = "db" } | histogram_over_time(duration) by (name)"#,
    "{ kind = server } | avg_over_time(duration)",
    "{ } | sum_over_time(duration) by (status)",
    "{ } | min_over_time(duration) by (name, kind)",
    "{ status != ok } | max_over_time(duration)",
];

/// Queries only a scan answers, each for a reason `RollupQuery::of` must see.
const SCANNED: &[&str] = &[
    "{ } | max_over_time(span.http.response.status_code)",
    "{ } | histogram_over_time(span.http.response.status_code)",
    "{ duration > 1ms } | rate()",
    "{ duration > 1ms } | quantile_over_time(duration, .9)",
    "{ } | rate() by (span.http.route)",
    "{ resource.service.name != nil } | rate()",
    "{ } | rate() with(exemplars=true)",
    "{ kind = server } >> { status = error } | rate()",
];

fn intervals_to_try() -> Vec<Intervals> {
    let second = NANOS_PER_SECOND;
    let end = BASE + (SPREAD_SECONDS + 5) * second;
    vec![
        Intervals::range(BASE - 10 * second, end, second),
        Intervals::range(BASE - 10 * second, end, 7 * second),
        Intervals::range(BASE, end, 60 * second),
        // A window that cuts through the data.
        Intervals::range(BASE + 100 * second, BASE + 200 * second, 15 * second),
        Intervals::instant(BASE + 50 * second, BASE + 250 * second),
    ]
}

async fn fold(
    handle: &BlockHandle,
    storage: &Storage,
    query: &MetricsQuery,
    intervals: Intervals,
) -> (Vec<MetricsSeries>, u64, u64) {
    let (series, bytes, spans, _) =
        fold_skipping(handle, storage, query, intervals, Default::default()).await;
    (series, bytes, spans)
}

/// A fold leaving out the rows of `skip`'s traces (held live), which it names.
async fn fold_skipping(
    handle: &BlockHandle,
    storage: &Storage,
    query: &MetricsQuery,
    intervals: Intervals,
    skip: std::collections::HashSet<TraceId>,
) -> (
    Vec<MetricsSeries>,
    u64,
    u64,
    std::collections::HashSet<TraceId>,
) {
    let columns = v1::metrics::MetricsColumns::of(query).expect("columnar");
    let condition = match query.columnar().and_then(|spec| spec.predicate) {
        Some(predicate) => andante_traceql::TraceCondition::Exists(predicate),
        None => andante_traceql::TraceCondition::True,
    };
    let plan = Arc::new(v1::search::ScanPlan::with_columns(
        condition,
        0..u64::MAX,
        &columns.names(),
    ));
    let (accumulator, bytes, stats) = handle
        .fold_metrics(
            storage,
            plan,
            Arc::new(v1::metrics::FoldWay::Columns(columns)),
            Arc::new(query.clone()),
            Accumulator::new(intervals),
            Arc::new(skip),
            Arc::new(tokio::sync::Semaphore::new(2)),
        )
        .await
        .expect("fold");
    (
        accumulator.finish(query),
        bytes,
        stats.spans_scanned,
        stats.shared,
    )
}

/// Equal series; sums of durations may differ in their last bits (cells add a row group's
/// durations in another order than its rows).
fn assert_same(text: &str, cells: &[MetricsSeries], rows: &[MetricsSeries]) {
    assert_eq!(cells.len(), rows.len(), "{text}: series");
    for (a, b) in cells.iter().zip(rows) {
        assert_eq!(a.labels, b.labels, "{text}");
        assert_eq!(a.samples.len(), b.samples.len(), "{text}");
        for (x, y) in a.samples.iter().zip(&b.samples) {
            match (x, y) {
                (Some(x), Some(y)) => assert!(
                    (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                    "{text}: {:?}: {x} against {y}",
                    a.labels
                ),
                _ => assert_eq!(x, y, "{text}: {:?}", a.labels),
            }
        }
    }
}

/// For every query the cells answer, at every kind of interval, folding the cells gives
/// exactly the series folding the rows gives, while reading no column.
#[tokio::test]
async fn cells_answer_what_the_rows_answer() {
    for seed in [1, 2, 3] {
        let storage = Storage::in_memory();
        let traces = traces(seed, 5_000);
        // Several row groups per block, each a slice of time; the sparsest may keep no cells,
        // so the cells and the rows of one block meet in one answer.
        let handle = write(&storage, &traces, 4_000).await;
        let rollup_bytes = handle.meta.rollup_bytes.expect("written with a rollup");
        let durations_bytes = handle.meta.rollup_durations_bytes.expect("and durations");
        let rolled = handle.rollup(&storage, true).await.expect("readable").0;
        let row_groups = handle.parquet.metadata().num_row_groups();
        assert!(row_groups > 3, "{row_groups} row groups");
        let mut with_cells = (0..row_groups)
            .filter(|&rg| rolled.row_group(rg).is_some())
            .count();
        assert!(
            with_cells * 2 >= row_groups,
            "{with_cells} of {row_groups} have cells"
        );
        if seed == 3 {
            // Every other row group without cells, and one with counts but no durations: cells
            // and rows meet in one answer.
            let mut mixed = rolled.clone();
            for rg in (0..row_groups).step_by(2) {
                mixed.row_groups[rg] = None;
            }
            if let Some(Some(counts_only)) = mixed.row_groups.get_mut(1) {
                counts_only.durations = None;
            }
            with_cells = row_groups / 2;
            let (counts, durations) = encode(&mixed.row_groups);
            storage
                .put(&handle.meta.rollup_key(), counts.into())
                .await
                .expect("put");
            storage
                .put(&handle.meta.rollup_durations_key(), durations.into())
                .await
                .expect("put");
        }
        let mut without = handle.meta.clone();
        without.rollup_bytes = None;
        let scanned = BlockHandle::open(&storage, without).await.expect("open");
        for text in ANSWERED {
            let query = parse_metrics(text).expect("parses");
            for intervals in intervals_to_try() {
                assert!(
                    RollupQuery::of(&query, &Accumulator::new(intervals)).is_some(),
                    "{text}"
                );
                let (cells, cell_bytes, cell_spans) =
                    fold(&handle, &storage, &query, intervals).await;
                let (rows, row_bytes, row_spans) =
                    fold(&scanned, &storage, &query, intervals).await;
                assert_same(text, &cells, &rows);
                // Counting reads the counts alone, duration queries the durations too.
                let objects = match RollupQuery::of(&query, &Accumulator::new(intervals)) {
                    Some(rollup_query) if rollup_query.reads_durations() => {
                        rollup_bytes + durations_bytes
                    }
                    _ => rollup_bytes,
                };
                if with_cells == row_groups {
                    assert_eq!(cell_bytes, objects, "{text}: only the rollup is read");
                } else {
                    assert!(cell_bytes > objects, "{text}: some rows are read");
                }
                assert!(row_bytes > cell_bytes, "{text}");
                assert_eq!(cell_spans, row_spans, "{text}");
            }
            // The fixture gives every query something to count.
            let all = intervals_to_try()[0];
            let (cells, _, _) = fold(&handle, &storage, &query, all).await;
            assert!(
                cells
                    .iter()
                    .any(|s| s.samples.iter().any(|v| v.is_some_and(|v| v > 0.0))),
                "{text}: nothing counted"
            );
        }
    }
}

/// With traces also held live, the row groups holding one are scanned (their rows left out
/// and named) and the others folded from their cells: the same answer as scanning them all.
#[tokio::test]
async fn row_groups_holding_live_traces_are_scanned() {
    let storage = Storage::in_memory();
    let traces = traces(5, 5_000);
    let handle = write(&storage, &traces, 4_000).await;
    let mut without = handle.meta.clone();
    without.rollup_bytes = None;
    let scanned = BlockHandle::open(&storage, without).await.expect("open");
    // Two traces of the block (in whichever row groups they landed) and one it lacks.
    let skip: std::collections::HashSet<TraceId> = [
        traces[10].trace_id,
        traces[4_000].trace_id,
        TraceId([9; 16]),
    ]
    .into();
    let query = parse_metrics("{ } | rate() by (resource.service.name)").expect("parses");
    let intervals = intervals_to_try()[0];
    let (cells, cell_bytes, _, cell_shared) =
        fold_skipping(&handle, &storage, &query, intervals, skip.clone()).await;
    let (rows, row_bytes, _, row_shared) =
        fold_skipping(&scanned, &storage, &query, intervals, skip).await;
    assert_same("skipping", &cells, &rows);
    assert_eq!(cell_shared, row_shared);
    assert_eq!(cell_shared.len(), 2);
    assert!(
        cell_bytes < row_bytes,
        "the other row groups were folded from cells"
    );
}

#[test]
fn queries_only_a_scan_answers_are_left_to_it() {
    let aligned = Accumulator::new(Intervals::range(
        BASE,
        BASE + 60 * NANOS_PER_SECOND,
        NANOS_PER_SECOND,
    ));
    for text in SCANNED {
        let query = parse_metrics(text).expect("parses");
        let accumulator = match query.search.hint("exemplars") {
            Some(_) => aligned.clone().with_exemplars(10),
            None => aligned.clone(),
        };
        assert!(RollupQuery::of(&query, &accumulator).is_none(), "{text}");
    }
    // Interval ends or a step off whole seconds would split a cell.
    let query = parse_metrics("{ } | rate()").expect("parses");
    for intervals in [
        Intervals::range(BASE, BASE + 60 * NANOS_PER_SECOND, 1_500_000_000),
        Intervals::range(BASE + 1, BASE + 60 * NANOS_PER_SECOND + 1, 1),
        Intervals::instant(BASE, BASE + 60 * NANOS_PER_SECOND + 500),
    ] {
        assert!(RollupQuery::of(&query, &Accumulator::new(intervals)).is_none());
    }
}

/// A block whose rollup object is damaged or gone answers the same, from its rows.
#[tokio::test]
async fn an_unreadable_rollup_falls_back_to_the_rows() {
    let storage = Storage::in_memory();
    let traces = traces(9, 5_000);
    let handle = write(&storage, &traces, 4_000).await;
    let query = parse_metrics("{ } | rate() by (resource.service.name)").expect("parses");
    let intervals = intervals_to_try()[1];
    let (expected, _, _) = fold(&handle, &storage, &query, intervals).await;
    let key = handle.meta.rollup_key();
    let mut bytes = storage.get(&key).await.expect("stored").to_vec();
    bytes[20] ^= 0x10;
    storage.put(&key, bytes.into()).await.expect("put");
    let (damaged, read, _) = fold(&handle, &storage, &query, intervals).await;
    assert_same("damaged", &damaged, &expected);
    assert!(
        read > handle.meta.rollup_bytes.unwrap(),
        "the rows were read"
    );
    storage.delete(&key).await.expect("delete");
    let (missing, _, _) = fold(&handle, &storage, &query, intervals).await;
    assert_same("missing", &missing, &expected);
    // Damaged durations: counting still folds the cells, durations come from the rows.
    let storage = Storage::in_memory();
    let handle = write(&storage, &traces, 4_000).await;
    let quantile =
        parse_metrics("{ } | quantile_over_time(duration, .5) by (name)").expect("parses");
    let (expected, _, _) = fold(&handle, &storage, &quantile, intervals).await;
    let key = handle.meta.rollup_durations_key();
    let mut bytes = storage.get(&key).await.expect("stored").to_vec();
    bytes[20] ^= 0x10;
    storage.put(&key, bytes.into()).await.expect("put");
    let (damaged, _, _) = fold(&handle, &storage, &quantile, intervals).await;
    assert_same("damaged durations", &damaged, &expected);
    let (_, read, _) = fold(&handle, &storage, &query, intervals).await;
    assert_eq!(
        read,
        handle.meta.rollup_bytes.unwrap(),
        "counting reads no rows"
    );
}

fn sample_rollup() -> Vec<Option<RowGroupRollup>> {
    let mut builder = RowGroupRollupBuilder::default();
    for i in 0..400u64 {
        let service = ["a", "b", ""][(i % 3) as usize];
        builder.add(
            service,
            "op",
            (i % 3) as i32,
            -((i % 2) as i32),
            BASE + i * 10_000_000,
            i * 7_919 % 1_000,
        );
    }
    let with_durations = builder.finish().expect("kept");
    let mut counts_only = with_durations.clone();
    counts_only.durations = None;
    vec![
        Some(with_durations),
        None,
        RowGroupRollupBuilder::default().finish(),
        Some(counts_only),
    ]
}

#[test]
fn the_objects_round_trip_and_refuse_damage() {
    let row_groups = sample_rollup();
    let rows = [400, 0, 0, 400];
    let (counts, durations) = encode(&row_groups);
    let mut decoded = Rollup::decode(&counts, &rows).expect("decodes");
    decoded.add_durations(&durations).expect("durations decode");
    assert_eq!(decoded.row_groups, row_groups);
    // Every flipped byte, every cut, a wrong row count and a wrong row-group count are refused.
    for at in 0..counts.len() {
        let mut damaged = counts.clone();
        damaged[at] ^= 0x01;
        assert!(Rollup::decode(&damaged, &rows).is_err(), "byte {at}");
    }
    for cut in 0..counts.len() {
        assert!(
            Rollup::decode(&counts[..cut], &rows).is_err(),
            "cut at {cut}"
        );
    }
    assert!(Rollup::decode(&counts, &[399, 0, 0, 400]).is_err());
    assert!(Rollup::decode(&counts, &[400, 0, 0]).is_err());
    let plain = Rollup::decode(&counts, &rows).expect("decodes");
    for at in 0..durations.len() {
        let mut damaged = durations.clone();
        damaged[at] ^= 0x01;
        let mut with = plain.clone();
        assert!(with.add_durations(&damaged).is_err(), "byte {at}");
        assert_eq!(with, plain, "a refused object adds nothing");
    }
    for cut in 0..durations.len() {
        assert!(
            plain.clone().add_durations(&durations[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    // Durations of other cells (one row group fewer) do not fit.
    let (_, fewer) = encode(&row_groups[..3]);
    assert!(plain.clone().add_durations(&fewer).is_err());
}

#[test]
fn a_row_group_with_too_many_cells_keeps_none() {
    let mut builder = RowGroupRollupBuilder::default();
    for i in 0..1_000u64 {
        builder.add(&format!("svc-{i}"), "op", 0, 0, BASE, 1);
    }
    assert!(builder.finish().is_none());
    // A cell per second: 1 000 spans over 100 seconds is 100 cells, kept.
    let mut builder = RowGroupRollupBuilder::default();
    for i in 0..1_000u64 {
        builder.add("svc", "op", 0, 0, BASE + (i % 100) * NANOS_PER_SECOND, 1);
    }
    assert_eq!(builder.finish().expect("kept").cells.len(), 100);
}

/// A span starting exactly on a second belongs to that second's cell, like a query interval
/// closing on it; a nanosecond later belongs to the next.
#[test]
fn cells_close_on_the_second() {
    assert_eq!(cell_second(BASE), BASE / NANOS_PER_SECOND);
    assert_eq!(cell_second(BASE + 1), BASE / NANOS_PER_SECOND + 1);
    assert_eq!(cell_second(BASE - 1), BASE / NANOS_PER_SECOND);
    let intervals = Intervals::range(
        BASE - 10 * NANOS_PER_SECOND,
        BASE + 10 * NANOS_PER_SECOND,
        NANOS_PER_SECOND,
    );
    assert_eq!(
        intervals.index(BASE),
        intervals.index(cell_second(BASE) * NANOS_PER_SECOND)
    );
    assert_eq!(
        intervals.index(BASE + 1),
        intervals.index(cell_second(BASE + 1) * NANOS_PER_SECOND)
    );
}

#[test]
fn varints_decode_as_prost_encodes_them() {
    let values = [
        0,
        1,
        127,
        128,
        300,
        16_383,
        16_384,
        u64::from(u32::MAX),
        u64::MAX - 1,
        u64::MAX,
    ];
    for value in values {
        let mut bytes = Vec::new();
        encode_varint(value, &mut bytes);
        bytes.push(0xAA);
        let mut buf = bytes.as_slice();
        assert_eq!(varint(&mut buf).expect("decodes"), value);
        assert_eq!(buf, [0xAA]);
        // Every cut of it is refused.
        for cut in 0..bytes.len() - 1 {
            assert!(varint(&mut &bytes[..cut]).is_err(), "{value} cut at {cut}");
        }
    }
    // Eleven bytes, or a tenth byte past 64 bits, are refused.
    assert!(varint(&mut [0xFF; 11].as_slice()).is_err());
    let mut too_big = vec![0xFF; 9];
    too_big.push(0x02);
    assert!(varint(&mut too_big.as_slice()).is_err());
}
