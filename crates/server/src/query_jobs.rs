//! A querier apart's internal job API, called by query-frontends through
//! `andante_query::jobs`: search stage 1 over one block, or one row group of it
//! (`POST /internal/query/v1/scan`, answered as scan-outcome v1), and one block folded for a
//! TraceQL metrics query (`POST /internal/query/v1/metrics`, answered as metrics-fold v1). Outside `auth.tokens_file` like the live-stores' API (a
//! frontend holds no credential): a querier's port belongs on the cluster's network only.

use andante_api::metrics::QueryJobs;
use andante_live::wire::{
    encode_metrics_fold, encode_scan_outcome, METRICS_FOLD_CONTENT_TYPE, SCAN_OUTCOME_CONTENT_TYPE,
};
use andante_model::{TenantId, TraceId};
use andante_query::jobs::MetricsJob;
use andante_query::{Querier, ScanJobError};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// Largest metrics job body: about 2 million live trace IDs.
const MAX_METRICS_JOB_BYTES: usize = 64 << 20;

#[derive(Clone)]
struct JobState {
    querier: Querier,
    /// `andante_query_jobs_total`: an operator (and the test) sees the frontend's work spread
    /// over the queriers.
    served: QueryJobs,
}

pub fn router(querier: Querier, served: QueryJobs) -> axum::Router {
    axum::Router::new()
        .route("/internal/query/v1/scan", post(scan))
        // Its body lists the frontend's live trace IDs the block may hold: right after a flush
        // that can be most of them (33 bytes each), past axum's 2 MB default.
        .route(
            "/internal/query/v1/metrics",
            post(metrics).layer(axum::extract::DefaultBodyLimit::max(MAX_METRICS_JOB_BYTES)),
        )
        .with_state(JobState { querier, served })
}

#[derive(serde::Deserialize)]
struct ScanBody {
    tenant: String,
    block: String,
    /// Absent: the whole block (frontends from before row-group jobs).
    #[serde(default, rename = "rowGroup")]
    row_group: Option<usize>,
    q: String,
    start: u64,
    end: u64,
}

#[derive(serde::Deserialize)]
struct MetricsBody {
    tenant: String,
    block: String,
    q: String,
    query: usize,
    first: u64,
    step: u64,
    count: usize,
    exemplars: usize,
    #[serde(rename = "maxSeries")]
    max_series: usize,
    #[serde(rename = "liveIds")]
    live_ids: Vec<String>,
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

/// The tenant and block a job names, or why one of them is not one (a 400).
fn tenant_and_block(tenant: &str, block: &str) -> Result<(TenantId, uuid::Uuid), String> {
    let tenant = TenantId::new(tenant).map_err(|error| format!("invalid tenant: {error}"))?;
    let block_id = uuid::Uuid::parse_str(block)
        .map_err(|error| format!("invalid block ID `{block}`: {error}"))?;
    Ok((tenant, block_id))
}

/// A job's failure as its answer: 400 for a job no querier can run, 404 for a block this
/// querier does not list (the frontend tries elsewhere), 500 for a read that failed.
fn job_refusal(error: ScanJobError, tenant: &TenantId, block_id: uuid::Uuid) -> Response {
    match error {
        ScanJobError::BadRequest(message) => refuse(StatusCode::BAD_REQUEST, message),
        ScanJobError::UnknownBlock => refuse(
            StatusCode::NOT_FOUND,
            format!("block {block_id} of tenant {tenant} is not in this querier's block list"),
        ),
        ScanJobError::Read(message) => refuse(StatusCode::INTERNAL_SERVER_ERROR, message),
    }
}

async fn metrics(
    State(state): State<JobState>,
    body: Result<axum::Json<MetricsBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match body {
        Ok(axum::Json(body)) => body,
        Err(rejection) => return crate::live_api::json_refusal(rejection),
    };
    let (tenant, block_id) = match tenant_and_block(&body.tenant, &body.block) {
        Ok(named) => named,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let mut live_ids = Vec::with_capacity(body.live_ids.len());
    for (index, id) in body.live_ids.iter().enumerate() {
        match TraceId::from_hex(id) {
            Ok(trace_id) => live_ids.push(trace_id),
            Err(error) => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    format!("trace ID {} of `liveIds` (`{id}`): {error}", index + 1),
                )
            }
        }
    }
    let job = MetricsJob {
        tenant: &tenant,
        block_id,
        text: &body.q,
        query_index: body.query,
        intervals: andante_traceql::Intervals {
            first_nanos: body.first,
            step_nanos: body.step,
            count: body.count,
        },
        exemplars: body.exemplars,
        max_series: body.max_series,
        live_ids: &live_ids,
    };
    match state.querier.fold_block_job(&job).await {
        Ok(fold) => {
            state.served.ran("metrics");
            (
                [(header::CONTENT_TYPE, METRICS_FOLD_CONTENT_TYPE)],
                encode_metrics_fold(&fold),
            )
                .into_response()
        }
        Err(error) => job_refusal(error, &tenant, block_id),
    }
}

async fn scan(
    State(state): State<JobState>,
    body: Result<axum::Json<ScanBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match body {
        Ok(axum::Json(body)) => body,
        Err(rejection) => return crate::live_api::json_refusal(rejection),
    };
    let (tenant, block_id) = match tenant_and_block(&body.tenant, &body.block) {
        Ok(named) => named,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let outcome = state
        .querier
        .scan_block(
            &tenant,
            block_id,
            body.row_group,
            &body.q,
            body.start,
            body.end,
        )
        .await;
    match outcome {
        Ok(outcome) => {
            state.served.ran("scan");
            (
                [(header::CONTENT_TYPE, SCAN_OUTCOME_CONTENT_TYPE)],
                encode_scan_outcome(&outcome),
            )
                .into_response()
        }
        Err(error) => job_refusal(error, &tenant, block_id),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use andante_api::metrics::QueryJobs;
    use andante_block::blocklist::BlockList;
    use andante_block::{encode_block, upload_block, BlockHandle, NewBlock, Trace};
    use andante_ingest::ExportTraceServiceRequest;
    use andante_live::{LiveConfig, LiveStore};
    use andante_model::{TenantSet, TraceId};
    use andante_query::jobs::Queriers;
    use andante_query::metrics::{MetricsRequest, MetricsResult};
    use andante_query::{LiveSource, LiveSources, Querier};
    use andante_storage::Storage;
    use andante_traceql::{parse_metrics_expr, Intervals};

    const BASE: u64 = 1_790_000_000_000_000_000;

    /// Three blocks overlapping in time, and live traces: some only live, some also in a block
    /// (just flushed), some split between a block and the live store.
    async fn data(tenant: &andante_model::TenantId) -> (Storage, BlockList, Arc<LiveStore>) {
        let topology = andante_gen::Topology::new(5);
        let mut builder = andante_gen::TraceBuilder::new(&topology, 5);
        let traces: Vec<Trace> = (0..600u64)
            .map(|n| {
                let (trace_id, resource_spans) = builder.build(BASE + n * 100_000_000);
                Trace {
                    trace_id: TraceId(trace_id.try_into().expect("16 bytes")),
                    resource_spans,
                }
            })
            .collect();
        let storage = Storage::in_memory();
        let blocks = BlockList::default();
        let new_block = NewBlock {
            sources: Vec::new(),
            tenant_id: tenant.as_str().into(),
            compaction_level: 0,
            replaces: Vec::new(),
            options: andante_block::v1::WriteOptions {
                row_group_spans: 400,
                ..Default::default()
            },
        };
        let mut live = Vec::new();
        let mut in_blocks: [Vec<Trace>; 3] = Default::default();
        for (n, trace) in traces.into_iter().enumerate() {
            match n {
                // Live only.
                500.. => live.push(trace),
                // In a block and live, whole.
                460..500 => {
                    live.push(trace.clone());
                    in_blocks[n % 3].push(trace);
                }
                // Split: the first service's spans in a block, the rest live.
                400..460 if trace.resource_spans.len() > 1 => {
                    let mut rest = trace.clone();
                    let first = rest.resource_spans.remove(0);
                    live.push(rest);
                    in_blocks[n % 3].push(Trace {
                        trace_id: trace.trace_id,
                        resource_spans: vec![first],
                    });
                }
                _ => in_blocks[n % 3].push(trace),
            }
        }
        for mut block in in_blocks {
            block.sort_by_key(|trace| trace.trace_id);
            let encoded = encode_block(&block, &new_block).expect("encodes");
            let meta = encoded.meta.clone();
            upload_block(&storage, encoded).await.expect("uploads");
            blocks.add(BlockHandle::open(&storage, meta).await.expect("opens"));
        }
        let store = LiveStore::fed_by_log(
            "log/test/0".to_owned(),
            0,
            None,
            Storage::in_memory(),
            BlockList::default(),
            LiveConfig::default(),
        );
        for (offset, trace) in live.into_iter().enumerate() {
            let request = ExportTraceServiceRequest {
                resource_spans: trace.resource_spans,
            };
            let fragments = andante_ingest::encode_by_trace(request);
            store.insert_logged(tenant, fragments, offset as u64).await;
        }
        (storage, blocks, store)
    }

    /// A querier apart on a loopback port, over the same storage: its URL and its job count.
    async fn querier_apart(storage: Storage, blocks: BlockList) -> (String, QueryJobs) {
        let querier = Querier::new(Arc::new(LiveSources(Vec::new())), storage, blocks);
        let served = QueryJobs::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let app = super::router(querier, served.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, served)
    }

    async fn run(querier: &Querier, text: &str, tenants: &TenantSet) -> MetricsResult {
        let expr = parse_metrics_expr(text).expect("parses");
        let template = MetricsRequest {
            query: expr.queries()[0].clone(),
            intervals: Intervals::range(BASE, BASE + 61_000_000_000, 5_000_000_000),
            deadline: None,
            max_exemplars: 100,
            max_series: 1_000,
            max_bytes: 0,
            source: Some((text.into(), 0)),
        };
        querier.metrics_expr(tenants, &expr, &template).await
    }

    /// Labels and samples (sums compared to a relative 1e-9: blocks are merged in the order
    /// they finish, here and there alike).
    fn assert_same(text: &str, apart: &MetricsResult, here: &MetricsResult) {
        assert!(
            apart.partial_message.is_none(),
            "{text}: {:?}",
            apart.partial_message
        );
        assert!(
            here.partial_message.is_none(),
            "{text}: {:?}",
            here.partial_message
        );
        assert_eq!(apart.series.len(), here.series.len(), "{text}");
        for (a, h) in apart.series.iter().zip(&here.series) {
            assert_eq!(a.labels, h.labels, "{text}");
            assert_eq!(a.samples.len(), h.samples.len(), "{text}");
            for (x, y) in a.samples.iter().zip(&h.samples) {
                match (x, y) {
                    (Some(x), Some(y)) => assert!(
                        (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || (x.is_nan() && y.is_nan()),
                        "{text} {:?}: {x} against {y}",
                        a.labels
                    ),
                    _ => assert_eq!(x, y, "{text} {:?}", a.labels),
                }
            }
        }
        assert_eq!(
            apart.stats.inspected_spans, here.stats.inspected_spans,
            "{text}"
        );
    }

    /// Spans a replay wrote into two blocks (two readings of one stream, overlapping) count
    /// once, folded here or by a querier apart; blocks without sources, or whose ranges do not
    /// overlap, are not taken for copies.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_a_replay_wrote_into_two_blocks_count_once_here_and_apart() {
        let tenant = andante_model::TenantId::new("t").expect("tenant");
        let tenants = TenantSet::one(tenant.clone());
        let topology = andante_gen::Topology::new(5);
        let mut builder = andante_gen::TraceBuilder::new(&topology, 7);
        let traces: Vec<Trace> = (0..200u64)
            .map(|n| {
                let (trace_id, resource_spans) = builder.build(BASE + n * 250_000_000);
                Trace {
                    trace_id: TraceId(trace_id.try_into().expect("16 bytes")),
                    resource_spans,
                }
            })
            .collect();
        let spans = |traces: &[Trace]| -> usize {
            traces
                .iter()
                .flat_map(|t| &t.resource_spans)
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum()
        };
        let all_spans = spans(&traces);
        // The first reading wrote traces 0..120 (offsets 0..=119); the replay after a restart
        // at offset 80 wrote 80..200 again. Traces 80..120 are in both blocks, and so are the
        // first spans of trace 150, which the first reading had begun to write.
        let mut first: Vec<Trace> = traces[..120].to_vec();
        let mut partial = traces[150].clone();
        partial.resource_spans.truncate(1);
        first.push(partial);
        let second: Vec<Trace> = traces[80..].to_vec();
        let copied = spans(&traces[80..120]) + spans(&first[120..]);
        let source = |incarnation: &str, from: u64, to: u64| andante_block::meta::BlockSource {
            stream: "log/spans/0".into(),
            incarnation: incarnation.into(),
            from,
            to,
        };
        let count = |sources: [Vec<andante_block::meta::BlockSource>; 2]| {
            let (first, second, tenants) = (first.clone(), second.clone(), tenants.clone());
            async move {
                let storage = Storage::in_memory();
                let blocks = BlockList::default();
                for (mut block, sources) in [first, second].into_iter().zip(sources) {
                    block.sort_by_key(|trace| trace.trace_id);
                    let new_block = NewBlock {
                        sources,
                        tenant_id: "t".into(),
                        compaction_level: 0,
                        replaces: Vec::new(),
                        options: andante_block::v1::WriteOptions {
                            row_group_spans: 300,
                            ..Default::default()
                        },
                    };
                    let encoded = encode_block(&block, &new_block).expect("encodes");
                    let meta = encoded.meta.clone();
                    upload_block(&storage, encoded).await.expect("uploads");
                    blocks.add(BlockHandle::open(&storage, meta).await.expect("opens"));
                }
                let live: Arc<dyn LiveSource> = Arc::new(LiveSources(Vec::new()));
                let (url, served) = querier_apart(storage.clone(), blocks.clone()).await;
                let here = Querier::new(live.clone(), storage.clone(), blocks.clone());
                let frontend = Querier::new(live, storage, blocks)
                    .with_queriers(Queriers::new(&[url], Duration::from_secs(30)).expect("client"));
                let mut counts = Vec::new();
                for querier in [&here, &frontend] {
                    let result = run(querier, "{ } | count_over_time()", &tenants).await;
                    assert!(
                        result.partial_message.is_none(),
                        "{:?}",
                        result.partial_message
                    );
                    let total: f64 = result
                        .series
                        .iter()
                        .flat_map(|series| series.samples.iter().flatten())
                        .sum();
                    counts.push(total as usize);
                }
                assert_eq!(served.count("metrics"), 2, "both blocks were jobs");
                counts
            }
        };
        // Two readings of one stream, overlapping: every span once, here and through a querier.
        let overlapping = count([vec![source("a", 0, 150)], vec![source("b", 80, 199)]]).await;
        assert_eq!(overlapping, vec![all_spans, all_spans]);
        // Blocks that say nothing of their sources (older builds) are not taken for copies.
        let unknown = count([Vec::new(), Vec::new()]).await;
        assert_eq!(unknown, vec![all_spans + copied, all_spans + copied]);
        // Nor are ranges of one stream that do not overlap.
        let apart = count([vec![source("a", 0, 79)], vec![source("b", 80, 199)]]).await;
        assert_eq!(apart, vec![all_spans + copied, all_spans + copied]);
    }

    /// A query-frontend whose block folds run on a querier apart (metrics-fold v1 over HTTP)
    /// answers every kind of TraceQL metrics query exactly as one process folding its blocks
    /// itself: columnar and whole-trace folds, compare(), quantiles, histograms, arithmetic,
    /// with traces held live and also in blocks, or split between them, counted once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_folded_by_a_querier_apart_equal_a_local_fold() {
        let tenant = andante_model::TenantId::new("t").expect("tenant");
        let tenants = TenantSet::one(tenant.clone());
        let (storage, blocks, live) = data(&tenant).await;
        let live: Arc<dyn LiveSource> = live;
        let (url, served) = querier_apart(storage.clone(), blocks.clone()).await;
        let here = Querier::new(live.clone(), storage.clone(), blocks.clone());
        let frontend = Querier::new(live.clone(), storage.clone(), blocks.clone())
            .with_queriers(Queriers::new(&[url], Duration::from_secs(30)).expect("client"));
        let mut jobs = 0;
        for text in [
            "{ } | rate()",
            "{ } | count_over_time() by (resource.service.name)",
            "{ status = error } | rate() by (resource.service.name, name)",
            "{ kind = server } | quantile_over_time(duration, .5, .9, .99) by (resource.service.name)",
            "{ } | histogram_over_time(duration)",
            "{ } | avg_over_time(duration) by (resource.service.name)",
            "{ } | min_over_time(duration)",
            "{ } | max_over_time(duration) by (kind)",
            "{ } | sum_over_time(duration)",
            "{ resource.service.name = \"frontend\" } >> { } | count_over_time()",
            "{ } | compare({ status = error })",
            "({ status = error } | rate()) / ({ } | rate())",
        ] {
            let apart = run(&frontend, text, &tenants).await;
            let local = run(&here, text, &tenants).await;
            assert!(
                local.series.iter().any(|series| series
                    .samples
                    .iter()
                    .any(|sample| sample.is_some_and(|value| value != 0.0))),
                "{text} counts nothing"
            );
            assert_same(text, &apart, &local);
            let now = served.count("metrics");
            // Every block of every query of the expression was a job.
            let queries = parse_metrics_expr(text).expect("parses").queries().len() as u64;
            assert_eq!(now - jobs, 3 * queries, "{text}");
            jobs = now;
        }

        // No querier answers: the frontend folds the blocks itself, with the same answer.
        let orphan = Querier::new(live, storage, blocks).with_queriers(
            Queriers::new(&["http://127.0.0.1:1".to_owned()], Duration::from_secs(2))
                .expect("client"),
        );
        let text = "{ } | count_over_time() by (resource.service.name)";
        assert_same(
            text,
            &run(&orphan, text, &tenants).await,
            &run(&here, text, &tenants).await,
        );
    }

    /// A metrics job a querier cannot run is refused with what is wrong, never run.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_metrics_job_that_cannot_run_is_refused_by_name() {
        let tenant = andante_model::TenantId::new("t").expect("tenant");
        let (storage, blocks, _) = data(&tenant).await;
        let block = blocks.blocks("t")[0].meta.block_id.to_string();
        let (url, served) = querier_apart(storage, blocks).await;
        let client = reqwest::Client::new();
        let good = serde_json::json!({
            "tenant": "t", "block": block, "q": "{ } | rate()", "query": 0,
            "first": BASE, "step": 5_000_000_000u64, "count": 13,
            "exemplars": 0, "maxSeries": 100, "liveIds": [],
        });
        let post = |body: serde_json::Value| {
            client
                .post(format!("{url}/internal/query/v1/metrics"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
        };
        let answer = post(good.clone()).await.expect("answers");
        assert_eq!(answer.status(), 200);
        let fold = andante_live::wire::decode_metrics_fold(
            answer.bytes().await.expect("body"),
            Intervals {
                first_nanos: BASE,
                step_nanos: 5_000_000_000,
                count: 13,
            },
        )
        .expect("decodes");
        assert!(fold.spans > 0 && fold.accumulator.spans_counted > 0);
        for (field, value, status, says) in [
            (
                "count",
                serde_json::json!(0),
                400,
                "the count between 1 and",
            ),
            (
                "count",
                serde_json::json!(1u64 << 40),
                400,
                "the count between 1 and",
            ),
            (
                "step",
                serde_json::json!(0),
                400,
                "the step must be positive",
            ),
            (
                "maxSeries",
                serde_json::json!(1u64 << 40),
                400,
                "past this querier's bound",
            ),
            (
                "first",
                serde_json::json!(u64::MAX),
                400,
                "the last end a u64",
            ),
            ("query", serde_json::json!(1), 400, "no metrics query 1"),
            (
                "q",
                serde_json::json!("{ } | rate("),
                400,
                "invalid TraceQL metrics query",
            ),
            (
                "liveIds",
                serde_json::json!(["zz"]),
                400,
                "trace ID 1 of `liveIds`",
            ),
            (
                "block",
                serde_json::json!("not-a-block"),
                400,
                "invalid block ID",
            ),
            (
                "block",
                serde_json::json!(uuid::Uuid::nil().to_string()),
                404,
                "not in this querier's block list",
            ),
            ("tenant", serde_json::json!("a/b"), 400, "invalid tenant"),
        ] {
            let mut body = good.clone();
            body[field] = value;
            let answer = post(body).await.expect("answers");
            let code = answer.status().as_u16();
            let text = answer.text().await.expect("text");
            assert_eq!(code, status, "{field}: {text}");
            assert!(text.contains(says), "{field}: {text}");
        }
        assert_eq!(served.count("metrics"), 1, "only the good job ran");
    }
}
