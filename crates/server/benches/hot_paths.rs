//! Micro-benchmarks of the ingest and storage hot paths, on `andante gen` traffic (seed 42).
//! No framework: each case runs a fixed amount of work several times and prints the median rate,
//! which is what docs/BENCHMARKS.md records. Run: `cargo bench -p andante-server --bench hot_paths`.

use std::time::Instant;

use andante_block::{
    compaction, encode_block, encode_block_from, trace_table, v1, NewBlock, Trace,
};
use andante_ingest::{
    decode_otlp_protobuf, split_by_trace, validate, ExportTraceServiceRequest, ValidationLimits,
};
use andante_model::TraceId;
use prost::Message;

const RUNS: usize = 7;

/// The same allocator as the `andante` binary, so the figures match the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs `work` RUNS times; prints and returns the median of `units / seconds`.
fn measure(name: &str, unit: &str, units: usize, mut work: impl FnMut()) -> f64 {
    let mut rates: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            work();
            units as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[RUNS / 2];
    println!(
        "{name:<44} {:>12.0} {unit}/s   ({:.2} µs per {unit})",
        median,
        1e6 / median
    );
    median
}

fn generated(traces: usize) -> (ExportTraceServiceRequest, usize) {
    let topology = andante_gen::Topology::new(42);
    let mut builder = andante_gen::TraceBuilder::new(&topology, 42);
    let mut request = ExportTraceServiceRequest::default();
    for n in 0..traces {
        let (_, resource_spans) = builder.build(1_790_000_000_000_000_000 + n as u64 * 1_000_000);
        request.resource_spans.extend(resource_spans);
    }
    let spans = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    (request, spans)
}

fn main() {
    let (request, spans) = generated(5_000);
    let body = request.encode_to_vec();
    println!(
        "workload: {spans} spans in {} traces, {} bytes of OTLP protobuf ({:.0} B/span)",
        5_000,
        body.len(),
        body.len() as f64 / spans as f64
    );

    measure("OTLP protobuf decode", "span", spans, || {
        std::hint::black_box(decode_otlp_protobuf(&body).expect("decodes"));
    });
    measure("decode + validate + split by trace", "span", spans, || {
        let decoded = decode_otlp_protobuf(&body).expect("decodes");
        let validated = validate(decoded, ValidationLimits::default(), u64::MAX / 2);
        std::hint::black_box(split_by_trace(validated.request));
    });
    // What a push did before the raw split: the fragments the live store keeps, encoded.
    measure(
        "decode + validate + split + encode fragments",
        "span",
        spans,
        || {
            let decoded = decode_otlp_protobuf(&body).expect("decodes");
            let validated = validate(decoded, ValidationLimits::default(), u64::MAX / 2);
            let fragments = andante_ingest::encode_by_trace(validated.request);
            std::hint::black_box(fragments);
        },
    );
    measure("raw split into encoded fragments", "span", spans, || {
        let fragments =
            andante_ingest::split_protobuf(&body, ValidationLimits::default(), u64::MAX / 2);
        std::hint::black_box(fragments.expect("takes the raw path"));
    });

    let mut traces: Vec<Trace> = split_by_trace(request.clone())
        .into_iter()
        .map(|fragment| Trace {
            trace_id: fragment.trace_id,
            resource_spans: fragment.resource_spans,
        })
        .collect();
    traces.sort_by_key(|trace| trace.trace_id);
    let new_block = NewBlock {
        sources: Vec::new(),
        tenant_id: "bench".into(),
        compaction_level: 0,
        replaces: Vec::new(),
        options: v1::WriteOptions::default(),
    };
    let mut parquet_bytes = 0;
    measure("block encode (Parquet + index)", "span", spans, || {
        let encoded = encode_block(&traces, &new_block).expect("encodes");
        parquet_bytes = encoded.parquet.len();
        std::hint::black_box(encoded);
    });
    println!(
        "{:<44} {:>12.1} bytes/span",
        "block size",
        parquet_bytes as f64 / spans as f64
    );

    // Compaction of four blocks holding the traces dealt round robin (inputs that overlap in
    // time, as flushes write them), by each format's merge: andante-v1's streaming k-way merge
    // by trace ID, andante-v2's two passes (tables place, row groups decoded once each).
    let quarters: Vec<Vec<Trace>> = (0..4)
        .map(|quarter| traces.iter().skip(quarter).step_by(4).cloned().collect())
        .collect();
    let v1_files: Vec<bytes::Bytes> = quarters
        .iter()
        .map(|part| {
            let encoded =
                encode_block_from(part.iter().cloned(), part.len(), &new_block).expect("encodes");
            bytes::Bytes::from(encoded.parquet)
        })
        .collect();
    measure("compaction merge, andante-v1 inputs", "span", spans, || {
        let streams = v1_files
            .iter()
            .map(|data| v1::TraceStream::new(data.clone(), 8192).expect("stream"))
            .collect::<Vec<_>>();
        let mut merged = compaction::MergeTraces::new(streams);
        std::hint::black_box(
            encode_block_from(&mut merged, traces.len(), &new_block).expect("encodes"),
        );
    });
    let v2_inputs: Vec<(
        bytes::Bytes,
        trace_table::TraceTable,
        andante_block::BlockMeta,
    )> = quarters
        .iter()
        .map(|part| {
            let encoded = encode_block(part, &new_block).expect("encodes");
            let table =
                trace_table::TraceTable::decode(encoded.trace_table.into()).expect("a table");
            (bytes::Bytes::from(encoded.parquet), table, encoded.meta)
        })
        .collect();
    let v2_metas: Vec<andante_block::BlockMeta> =
        v2_inputs.iter().map(|(_, _, meta)| meta.clone()).collect();
    measure("compaction merge, andante-v2 inputs", "span", spans, || {
        let files = v2_inputs.iter().map(|(data, _, _)| data.clone()).collect();
        let tables = v2_inputs
            .iter()
            .map(|(_, table, _)| Some(table.clone()))
            .collect();
        std::hint::black_box(
            compaction::merge_time_clustered(files, tables, &v2_metas, &new_block).expect("merges"),
        );
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The same traces as an andante-v2 block (written now) and an andante-v1 block, side by
    // side: v2 lookups go through per-row-group Bloom filters, v1 through sorted ID ranges.
    let storage = andante_storage::Storage::in_memory();
    let open = |encoded: andante_block::EncodedBlock| {
        runtime.block_on(async {
            let meta = encoded.meta.clone();
            andante_block::upload_block(&storage, encoded)
                .await
                .expect("upload");
            andante_block::BlockHandle::open(&storage, meta)
                .await
                .expect("open")
        })
    };
    let handle = open(encode_block(&traces, &new_block).expect("encodes"));
    let v1_handle =
        open(encode_block_from(traces.iter().cloned(), traces.len(), &new_block).expect("encodes"));
    let probes: Vec<TraceId> = (0..100_000u64)
        .map(|i| TraceId([(i % 251) as u8 + 1; 16]))
        .collect();
    for (format, handle) in [("v2", &handle), ("v1", &v1_handle)] {
        measure(
            &format!("index probe, misses, andante-{format}"),
            "probe",
            probes.len(),
            || {
                std::hint::black_box(probes.iter().filter(|id| handle.may_contain(id)).count());
            },
        );
    }
    let hits: Vec<TraceId> = traces.iter().step_by(25).map(|t| t.trace_id).collect();
    for (format, handle) in [("v2", &handle), ("v1", &v1_handle)] {
        measure(
            &format!("trace by ID from one block (in memory), andante-{format}"),
            "lookup",
            hits.len(),
            || {
                runtime.block_on(async {
                    for id in &hits {
                        std::hint::black_box(handle.find_trace(&storage, *id).await.expect("read"));
                    }
                })
            },
        );
    }

    live_stage_one(&request);

    let dir = std::env::temp_dir().join(format!("andante-bench-wal-{}", std::process::id()));
    let wal = andante_wal::Wal::open(
        &dir,
        andante_wal::WalOptions {
            fsync: false,
            ..Default::default()
        },
        None,
    )
    .expect("wal");
    let record = vec![7u8; 4096];
    measure(
        "WAL append, 4 KiB, sequential, no fsync",
        "record",
        5_000,
        || {
            runtime.block_on(async {
                for _ in 0..5_000 {
                    wal.append(record.clone()).await.expect("append");
                }
            })
        },
    );
    drop(wal);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Search stage 1 over recent traces held as protobuf fragments (one per trace, as a push of
/// whole traces leaves them): the full decode every query used to pay, then `match_live`, which
/// decodes only the fields each query reads.
fn live_stage_one(request: &ExportTraceServiceRequest) {
    let live: Vec<(TraceId, Vec<bytes::Bytes>)> = split_by_trace(request.clone())
        .into_iter()
        .map(|fragment| {
            let encoded = ExportTraceServiceRequest {
                resource_spans: fragment.resource_spans,
            }
            .encode_to_vec();
            (fragment.trace_id, vec![bytes::Bytes::from(encoded)])
        })
        .collect();
    let spans: usize = live
        .iter()
        .map(|(_, fragments)| {
            andante_model::span_count(&andante_live::decode_fragments(fragments)) as usize
        })
        .sum();
    measure(
        "live: full decode + trace view (before)",
        "span",
        spans,
        || {
            for (trace_id, fragments) in &live {
                let resource_spans = andante_live::decode_fragments(fragments);
                std::hint::black_box(andante_traceql::TraceView::new(trace_id.0, &resource_spans));
            }
        },
    );
    for text in [
        "{ }",
        "{ status = error }",
        "{ resource.service.name = \"checkout\" && duration > 100ms }",
        "{ span.http.request.method = \"POST\" }",
        "{ .http.route =~ \"/api.*\" } >> { kind = client }",
    ] {
        let query = andante_traceql::parse(text).expect("parses");
        let condition = andante_traceql::TraceCondition::of(&query);
        measure(&format!("live: match_live {text}"), "span", spans, || {
            std::hint::black_box(andante_query::search::match_live(
                live.iter().cloned(),
                &condition,
            ));
        });
    }
}
