//! TraceQL metrics over live traces and blocks (`/api/metrics/query_range`, `/api/metrics/query`).
//!
//! Every source is folded into its own `Accumulator` on the CPU pool — live traces per tenant,
//! and each block overlapping the window (two at a time) — and the accumulators are merged, so
//! the work is sharded by block and by time. A block is first scanned with the pushed-down
//! condition (skipped when nothing can match); only then are its traces read whole. A trace held
//! both in memory and in a block (just flushed) is counted once, from the merged copy.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use andante_block::v1::metrics::{FoldWay, MetricsColumns};
use andante_block::v1::search::ScanPlan;
use andante_live::decode_fragments_projected;
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::{merge_resource_spans, TenantSet, TraceId};
use andante_traceql::metrics::{combine, MetricsSeries, Operand};
use andante_traceql::{
    Accumulator, Intervals, MetricsExpr, MetricsQuery, SpanPredicate, TraceCondition, TraceView,
};
use futures::stream::{self, StreamExt};

use crate::search::SearchMetrics;
use crate::{Querier, ScanJobError};

#[derive(Debug, Clone)]
pub struct MetricsRequest {
    pub query: MetricsQuery,
    pub intervals: Intervals,
    pub deadline: Option<Instant>,
    /// Most exemplars in the answer (0: none).
    pub max_exemplars: usize,
    /// Most series the query may build or answer; past it the answer is truncated and partial.
    pub max_series: usize,
    /// Most block bytes the query may read (0: no limit); past it the answer is partial.
    pub max_bytes: u64,
    /// The metrics expression's text and this query's place in `MetricsExpr::queries`, so a
    /// querier apart parses exactly this query for a block job (`jobs.rs`); `None` (a query
    /// built in code) folds every block here. `metrics_expr` sets the place.
    pub source: Option<(Arc<str>, usize)>,
}

/// The partial-answer message when a query passed its series limit.
fn series_limit_message(max_series: usize) -> String {
    format!("the query produced more than the limit of {max_series} series (`query.max_metrics_series`); the answer is truncated")
}

/// Cuts `series` to the limit, saying so in `failures`.
fn cap_series(series: &mut Vec<MetricsSeries>, max_series: usize, failures: &mut Vec<String>) {
    if series.len() > max_series {
        series.truncate(max_series);
        let message = series_limit_message(max_series);
        if !failures.contains(&message) {
            failures.push(message);
        }
    }
}

#[derive(Debug, Default)]
pub struct MetricsResult {
    pub series: Vec<MetricsSeries>,
    /// Search's metrics type: both answer with Tempo's `SearchMetrics`.
    pub stats: SearchMetrics,
    pub partial_message: Option<String>,
}

/// Most intervals a range query may ask for (`(end − start) / step`); its `Intervals` then
/// count at most two more (both ends rounded up to a step).
pub const MAX_INTERVALS: usize = 10_000;

/// Interval slots all series of one accumulator may hold (each slot is four numbers, 32 bytes):
/// bounds the memory of one source's fold whatever the query's cardinality.
const MAX_ACCUMULATOR_SLOTS: usize = 4_000_000;

/// Most series one accumulator keeps: more than the answer may have, since `compare()` and
/// `topk` choose their answer among all series, within the slot budget and never above 100k.
fn accumulator_series(request: &MetricsRequest) -> usize {
    (MAX_ACCUMULATOR_SLOTS / request.intervals.count.max(1))
        .clamp(request.max_series, 100_000.max(request.max_series))
}

/// What every accumulator of one query is built with.
#[derive(Debug, Clone, Copy)]
struct Shape {
    intervals: Intervals,
    exemplars: usize,
    max_series: usize,
}

impl Shape {
    fn accumulator(self) -> Accumulator {
        Accumulator::new(self.intervals)
            .with_exemplars(self.exemplars)
            .with_max_series(self.max_series)
    }
}

/// A trace held live, as the metrics fold meets it.
enum HeldTrace {
    /// Read whole already (a columnar block fold skipped its rows).
    Whole(Vec<ResourceSpans>),
    /// Its live fragments, and the spans a whole-trace block fold handed over.
    Encoded {
        fragments: Vec<bytes::Bytes>,
        from_blocks: Vec<ResourceSpans>,
    },
}

/// Folds held traces into a fresh accumulator, one at a time; returns it, the spans and the
/// traces looked at.
fn fold_held(
    query: &MetricsQuery,
    shape: Shape,
    held: Vec<(TraceId, HeldTrace)>,
) -> (Accumulator, u64, u64) {
    let projection = query.projection();
    let mut accumulator = shape.accumulator();
    let (mut spans, traces) = (0u64, held.len() as u64);
    for (trace_id, trace) in held {
        let resource_spans = match trace {
            HeldTrace::Whole(spans) => spans,
            HeldTrace::Encoded {
                fragments,
                from_blocks,
            } => {
                let mut spans = decode_fragments_projected(&fragments, &projection);
                spans.extend(from_blocks);
                spans
            }
        };
        let merged = merge_resource_spans(resource_spans);
        spans += observe_trace(&mut accumulator, query, &trace_id, &merged);
    }
    (accumulator, spans, traces)
}

/// Counts one whole trace into `accumulator`; returns how many spans it has.
fn observe_trace(
    accumulator: &mut Accumulator,
    query: &MetricsQuery,
    trace_id: &TraceId,
    resource_spans: &[ResourceSpans],
) -> u64 {
    let view = TraceView::new(trace_id.0, resource_spans);
    accumulator.observe(query, &view);
    view.spans.len() as u64
}

/// Folds the per-query results into the expression's value (queries in `MetricsExpr::queries` order).
fn reduce(expr: &MetricsExpr, results: &mut impl Iterator<Item = Vec<MetricsSeries>>) -> Operand {
    match expr {
        MetricsExpr::Query(_) => Operand::Series(results.next().unwrap_or_default()),
        MetricsExpr::Number(number) => Operand::Number(*number),
        MetricsExpr::Binary { op, lhs, rhs } => {
            let left = reduce(lhs, results);
            let right = reduce(rhs, results);
            combine(*op, left, right)
        }
    }
}

/// How blocks are read for one query.
enum BlockWay {
    /// One exact span filter with its fields in columns, or compare() of exact predicates:
    /// fold rows (`block/v1/metrics.rs`, `block/v1/compare.rs`).
    Columnar {
        plan: Arc<ScanPlan>,
        way: Arc<FoldWay>,
    },
    /// Anything else: find candidates (unless every trace is one), read traces whole, evaluate.
    WholeTraces {
        plan: Arc<ScanPlan>,
        scan_first: bool,
    },
}

/// How blocks are read for `query` over `intervals`: the same on a query-frontend and on a
/// querier running one of its block jobs.
fn block_way(query: &MetricsQuery, intervals: Intervals) -> BlockWay {
    let (window_start, window_end) = intervals.window();
    match (MetricsColumns::of(query), query.columnar_compare()) {
        (Some(columns), _) => {
            let plan = ScanPlan::with_columns(
                exists(query.columnar().and_then(|spec| spec.predicate)),
                window_start..window_end,
                &columns.names(),
            );
            BlockWay::Columnar {
                plan: Arc::new(plan),
                way: Arc::new(FoldWay::Columns(columns)),
            }
        }
        (None, Some((search, filter))) => {
            // The block adds compare()'s columns for its own slots.
            let plan = ScanPlan::new(exists(search), window_start..window_end);
            let filter = filter.map(|filter| {
                Arc::new(ScanPlan::new(
                    exists(Some(filter)),
                    window_start..window_end,
                ))
            });
            BlockWay::Columnar {
                plan: Arc::new(plan),
                way: Arc::new(FoldWay::Compare { filter }),
            }
        }
        (None, None) => {
            let condition = TraceCondition::of(&query.search);
            let scan_first = !matches!(condition, TraceCondition::True);
            BlockWay::WholeTraces {
                plan: Arc::new(ScanPlan::new(condition, window_start..window_end)),
                scan_first,
            }
        }
    }
}

/// What one block contributed. Traces also held live are not counted here: the columnar way
/// names them (`shared_ids`), the whole-trace way hands over their spans (`shared_spans`).
struct BlockFold {
    accumulator: Accumulator,
    spans: u64,
    traces: u64,
    bytes: u64,
    shared_ids: HashSet<TraceId>,
    shared_spans: Vec<(TraceId, Vec<ResourceSpans>)>,
}

impl BlockFold {
    fn from_wire(fold: andante_live::wire::MetricsFold) -> BlockFold {
        BlockFold {
            accumulator: fold.accumulator,
            spans: fold.spans,
            traces: fold.traces,
            bytes: fold.bytes,
            shared_ids: fold.shared_ids.into_iter().collect(),
            shared_spans: fold.shared_spans,
        }
    }

    fn into_wire(self) -> andante_live::wire::MetricsFold {
        andante_live::wire::MetricsFold {
            accumulator: self.accumulator,
            spans: self.spans,
            traces: self.traces,
            bytes: self.bytes,
            shared_ids: self.shared_ids.into_iter().collect(),
            shared_spans: self.shared_spans,
        }
    }
}

/// Whole traces decoded and folded at a time, so a block's traces never sit in memory at once
/// (reading a block whole for `compare()` peaked above 1 GiB at 450k spans).
const WHOLE_TRACE_CHUNK: usize = 512;

fn pool_closed(error: tokio::sync::AcquireError) -> andante_block::BlockError {
    andante_block::BlockError::Read(error.to_string())
}

impl BlockFold {
    fn new(shape: Shape) -> BlockFold {
        BlockFold {
            accumulator: shape.accumulator(),
            spans: 0,
            traces: 0,
            bytes: 0,
            shared_ids: HashSet::new(),
            shared_spans: Vec::new(),
        }
    }

    /// Folds whole traces in; a trace the live store also holds is kept aside, to be counted
    /// once with its live spans.
    fn absorb(
        &mut self,
        traces: Vec<andante_block::Trace>,
        query: &MetricsQuery,
        live_ids: &HashSet<TraceId>,
    ) {
        for trace in traces {
            if live_ids.contains(&trace.trace_id) {
                self.shared_spans
                    .push((trace.trace_id, trace.resource_spans));
                continue;
            }
            self.spans += observe_trace(
                &mut self.accumulator,
                query,
                &trace.trace_id,
                &trace.resource_spans,
            );
            self.traces += 1;
        }
    }
}

/// The condition of a columnar way: its exact predicate, or every span.
fn exists(predicate: Option<SpanPredicate>) -> TraceCondition {
    match predicate {
        Some(predicate) => TraceCondition::Exists(predicate),
        None => TraceCondition::True,
    }
}

impl Querier {
    async fn fold_block(
        &self,
        handle: &andante_block::BlockHandle,
        way: &BlockWay,
        query: Arc<MetricsQuery>,
        shape: Shape,
        live_ids: Arc<HashSet<TraceId>>,
    ) -> Result<BlockFold, andante_block::BlockError> {
        let (storage, cpu) = (&self.storage, self.cpu.clone());
        let empty = || shape.accumulator();
        match way {
            BlockWay::Columnar { plan, way } => {
                let (accumulator, bytes, stats) = handle
                    .fold_metrics(
                        storage,
                        plan.clone(),
                        way.clone(),
                        query,
                        empty(),
                        live_ids,
                        cpu,
                    )
                    .await?;
                Ok(BlockFold {
                    accumulator,
                    spans: stats.spans_scanned,
                    traces: 0,
                    bytes,
                    shared_ids: stats.shared,
                    shared_spans: Vec::new(),
                })
            }
            BlockWay::WholeTraces { plan, scan_first } => {
                let mut folded = BlockFold::new(shape);
                if !*scan_first {
                    let data = storage.get(&handle.meta.data_key()).await?;
                    folded.bytes += handle.meta.data_bytes;
                    let permit = cpu.acquire_owned().await.map_err(pool_closed)?;
                    let handle = handle.clone();
                    return tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        let mut chunk = Vec::with_capacity(WHOLE_TRACE_CHUNK);
                        for trace in handle.stream_traces(data)? {
                            chunk.push(trace?);
                            if chunk.len() == WHOLE_TRACE_CHUNK {
                                folded.absorb(std::mem::take(&mut chunk), &query, &live_ids);
                            }
                        }
                        folded.absorb(chunk, &query, &live_ids);
                        Ok(folded)
                    })
                    .await
                    .map_err(|error| andante_block::BlockError::Read(error.to_string()))?;
                }
                let outcome = handle.scan(storage, plan.clone(), cpu.clone()).await?;
                folded.bytes += outcome.bytes_read;
                let mut located = Vec::new();
                let mut by_id = Vec::new();
                for candidate in outcome.candidates {
                    match candidate.location {
                        Some(location) => located.push(location),
                        None => by_id.push(candidate.trace_id),
                    }
                }
                // Row order, so a chunk reads few row groups.
                located.sort_by_key(|location| (location.row_group, location.first_row));
                let chunks = located
                    .chunks(WHOLE_TRACE_CHUNK)
                    .map(|rows| (&[][..], rows))
                    .chain(by_id.chunks(WHOLE_TRACE_CHUNK).map(|ids| (ids, &[][..])));
                for (ids, rows) in chunks {
                    let (traces, bytes) = handle.find_traces_at(storage, ids, rows).await?;
                    folded.bytes += bytes;
                    let permit = cpu.clone().acquire_owned().await.map_err(pool_closed)?;
                    let (query, live_ids) = (query.clone(), live_ids.clone());
                    folded = tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        folded.absorb(traces, &query, &live_ids);
                        folded
                    })
                    .await
                    .map_err(|error| andante_block::BlockError::Read(error.to_string()))?;
                }
                Ok(folded)
            }
        }
    }

    /// One block folded by a querier apart, when this process has queriers and the query its
    /// text; `None` when it has not, or no querier answered (the caller folds it here, so
    /// queriers add capacity, never a way to lose data). Only the live traces the block's
    /// Bloom filter may hold travel with the job: the others cannot be in it.
    async fn fold_job(
        &self,
        tenant: &andante_model::TenantId,
        handle: &andante_block::BlockHandle,
        request: &MetricsRequest,
        shape: Shape,
        live_ids: &Arc<HashSet<TraceId>>,
    ) -> Option<BlockFold> {
        let (queriers, (text, query_index)) = (self.queriers.as_ref()?, request.source.as_ref()?);
        // Live IDs times blocks Bloom probes: off the async workers.
        let (block, all_live) = (handle.clone(), live_ids.clone());
        let live_ids: Vec<TraceId> = tokio::task::spawn_blocking(move || {
            all_live
                .iter()
                .filter(|trace_id| block.may_contain(trace_id))
                .copied()
                .collect()
        })
        .await
        .ok()?;
        let job = crate::jobs::MetricsJob {
            tenant,
            block_id: handle.meta.block_id,
            text,
            query_index: *query_index,
            intervals: shape.intervals,
            exemplars: shape.exemplars,
            max_series: shape.max_series,
            live_ids: &live_ids,
        };
        let folded = queriers.fold(&job).await.and_then(|fold| {
            // A querier of another build may fold another shape: `finish` would index it.
            fold.accumulator
                .check_shape(&request.query.function, shape.exemplars > 0)
                .map(|()| fold)
        });
        match folded {
            Ok(fold) => Some(BlockFold::from_wire(fold)),
            Err(error) => {
                tracing::warn!(block = %handle.meta.block_id, %error, "no querier folded the block; folding it here");
                None
            }
        }
    }

    /// A metrics job from a query-frontend: block `job.block_id` of `job.tenant` folded for
    /// query `job.query_index` of the expression `job.text`, as this querier's block list
    /// knows the block.
    pub async fn fold_block_job(
        &self,
        job: &crate::jobs::MetricsJob<'_>,
    ) -> Result<andante_live::wire::MetricsFold, ScanJobError> {
        let bad = ScanJobError::BadRequest;
        let expr = andante_traceql::parse_metrics_expr(job.text)
            .map_err(|error| bad(format!("invalid TraceQL metrics query: {error}")))?;
        let query = expr
            .queries()
            .get(job.query_index)
            .map(|query| (*query).clone())
            .ok_or_else(|| {
                bad(format!(
                    "the expression has no metrics query {}",
                    job.query_index
                ))
            })?;
        let intervals = job.intervals;
        let last = intervals
            .step_nanos
            .checked_mul(intervals.count.saturating_sub(1) as u64)
            .and_then(|span| intervals.first_nanos.checked_add(span));
        let most_intervals = MAX_INTERVALS + 2;
        if intervals.step_nanos == 0
            || intervals.count == 0
            || intervals.count > most_intervals
            || last.is_none()
        {
            return Err(bad(format!(
                "intervals (first {}, step {}, count {}) are not a query's: the step must be positive, the count between 1 and {most_intervals}, and the last end a u64",
                intervals.first_nanos, intervals.step_nanos, intervals.count
            )));
        }
        // The memory bound a frontend's own fold keeps (`accumulator_series`): past it the
        // frontend folds the block itself rather than a querier allocating without limit.
        let most_series = (MAX_ACCUMULATOR_SLOTS / intervals.count).max(100_000);
        if job.max_series > most_series {
            return Err(bad(format!(
                "maxSeries {} over {} intervals is past this querier's bound of {most_series} series",
                job.max_series, intervals.count
            )));
        }
        let handle = self
            .blocks
            .blocks(job.tenant.as_str())
            .into_iter()
            .find(|handle| handle.meta.block_id == job.block_id)
            .ok_or(ScanJobError::UnknownBlock)?;
        let shape = Shape {
            intervals,
            exemplars: job.exemplars,
            max_series: job.max_series,
        };
        let way = block_way(&query, intervals);
        let live_ids = Arc::new(job.live_ids.iter().copied().collect());
        let fold = self
            .fold_block(&handle, &way, Arc::new(query), shape, live_ids)
            .await
            .map_err(|error| ScanJobError::Read(error.to_string()))?;
        Ok(fold.into_wire())
    }

    /// A metrics expression: each query computed as by [`Querier::metrics`], then combined.
    pub async fn metrics_expr(
        &self,
        tenants: &TenantSet,
        expr: &MetricsExpr,
        template: &MetricsRequest,
    ) -> MetricsResult {
        let of = |index: usize, query: &MetricsQuery| MetricsRequest {
            query: query.clone(),
            source: template
                .source
                .as_ref()
                .map(|(text, _)| (text.clone(), index)),
            ..template.clone()
        };
        if let MetricsExpr::Query(query) = expr {
            return self.metrics(tenants, &of(0, query)).await;
        }
        let mut result = MetricsResult::default();
        let mut parts = Vec::new();
        let mut failures = Vec::new();
        for (index, query) in expr.queries().into_iter().enumerate() {
            let part = self.metrics(tenants, &of(index, query)).await;
            let stats = &part.stats;
            result.stats.inspected_bytes += stats.inspected_bytes;
            result.stats.inspected_traces += stats.inspected_traces;
            result.stats.inspected_spans += stats.inspected_spans;
            result.stats.completed_jobs += stats.completed_jobs;
            result.stats.total_jobs += stats.total_jobs;
            result.stats.total_blocks += stats.total_blocks;
            failures.extend(part.partial_message);
            parts.push(part.series);
        }
        result.series = match reduce(expr, &mut parts.into_iter()) {
            Operand::Series(series) => series,
            Operand::Number(_) => Vec::new(),
        };
        cap_series(&mut result.series, template.max_series, &mut failures);
        if !failures.is_empty() {
            result.partial_message = Some(failures.join("; "));
        }
        result
    }

    pub async fn metrics(&self, tenants: &TenantSet, request: &MetricsRequest) -> MetricsResult {
        let mut result = MetricsResult::default();
        let (window_start, window_end) = request.intervals.window();
        let query = Arc::new(request.query.clone());
        let shape = Shape {
            intervals: request.intervals,
            exemplars: request.max_exemplars,
            max_series: accumulator_series(request),
        };
        let way = block_way(&request.query, request.intervals);
        let local_folds = tokio::sync::Semaphore::new(self.block_jobs);
        let mut total = shape.accumulator();
        let mut failures = Vec::new();

        for tenant in tenants.iter() {
            let snapshot = self.live.snapshot(tenant).await;
            failures.extend(snapshot.failures);
            // Live traces stay encoded until the fold, which decodes only what the query reads;
            // block rows of the same traces wait beside them.
            let mut live: HashMap<TraceId, Vec<bytes::Bytes>> =
                snapshot.value.into_iter().collect();
            let mut from_blocks: HashMap<TraceId, Vec<ResourceSpans>> = HashMap::new();

            let blocks = self.blocks_newest_first(tenant, window_start, window_end);
            // Traces a replay wrote into two blocks are folded whole, once, as traces held
            // live are: the block folds skip their rows.
            match self.copies.copied_traces(&self.storage, &blocks).await {
                Ok(copied) => {
                    for trace_id in copied {
                        live.entry(trace_id).or_default();
                    }
                }
                Err(failure) => failures.push(failure),
            }
            let live_ids: Arc<HashSet<TraceId>> = Arc::new(live.keys().copied().collect());
            result.stats.total_blocks += blocks.len() as u64;
            result.stats.total_jobs += blocks.len() as u64 + 1;
            // With queriers apart, each block is first a job for one of them (`jobs.rs`).
            let in_flight = self.queriers.as_ref().map_or(self.block_jobs, |queriers| {
                (2 * queriers.len()).max(self.block_jobs)
            });
            let jobs = stream::iter(blocks.into_iter().map(|handle| {
                let (way, query, live_ids) = (&way, query.clone(), live_ids.clone());
                let local_folds = &local_folds;
                async move {
                    let folded = match self
                        .fold_job(tenant, &handle, request, shape, &live_ids)
                        .await
                    {
                        Some(fold) => Ok(fold),
                        None => {
                            // As many blocks folded here at once as without queriers.
                            let _permit = local_folds.acquire().await;
                            self.fold_block(&handle, way, query, shape, live_ids).await
                        }
                    };
                    (handle.meta.clone(), folded)
                }
            }))
            .buffer_unordered(in_flight);
            futures::pin_mut!(jobs);
            let mut shared_ids = HashSet::new();
            while let Some((meta, job)) = jobs.next().await {
                if request
                    .deadline
                    .is_some_and(|deadline| Instant::now() >= deadline)
                {
                    failures.push(
                        "the metrics query deadline passed before every block was read".to_owned(),
                    );
                    break;
                }
                if request.max_bytes > 0 && result.stats.inspected_bytes > request.max_bytes {
                    failures.push(format!(
                        "the query read more than the limit of {} bytes (`query.max_bytes_per_query`) before every block was read",
                        request.max_bytes
                    ));
                    break;
                }
                match job {
                    Ok(fold) => {
                        total.merge(fold.accumulator);
                        result.stats.inspected_spans += fold.spans;
                        result.stats.inspected_traces += fold.traces;
                        result.stats.inspected_bytes += fold.bytes;
                        result.stats.completed_jobs += 1;
                        shared_ids.extend(fold.shared_ids);
                        for (trace_id, resource_spans) in fold.shared_spans {
                            if live.contains_key(&trace_id) {
                                from_blocks
                                    .entry(trace_id)
                                    .or_default()
                                    .extend(resource_spans);
                            }
                        }
                    }
                    Err(error) => failures.push(self.block_failed(&meta, &error, "read").await),
                }
            }
            // A columnar fold skipped the rows of traces also held live (or copied by a
            // replay): count them whole, read in batches (a row group is read once for all the
            // IDs it holds).
            let mut whole: HashMap<TraceId, Vec<ResourceSpans>> = HashMap::new();
            let shared_ids: Vec<TraceId> = shared_ids.into_iter().collect();
            for batch in shared_ids.chunks(WHOLE_TRACE_CHUNK) {
                let lookup = self
                    .traces_by_ids(
                        tenant,
                        batch,
                        crate::TimeHint::default(),
                        &crate::Located::new(),
                    )
                    .await;
                failures.extend(lookup.failures);
                whole.extend(lookup.traces);
            }
            // Live traces last, merged with any copy a block holds, each counted once: split in
            // one part per core, each decoded (only what the query reads) and folded trace by
            // trace into its own accumulator, so no part holds its traces decoded at once.
            let held: Vec<(TraceId, HeldTrace)> = live
                .into_iter()
                .filter_map(|(id, fragments)| {
                    let held = match whole.remove(&id) {
                        Some(spans) => HeldTrace::Whole(spans),
                        None => HeldTrace::Encoded {
                            fragments,
                            from_blocks: from_blocks.remove(&id).unwrap_or_default(),
                        },
                    };
                    // A copied trace no fold met (outside the window) has nothing to count.
                    let empty = matches!(&held, HeldTrace::Encoded { fragments, from_blocks }
                        if fragments.is_empty() && from_blocks.is_empty());
                    (!empty).then_some((id, held))
                })
                .collect();
            let query_of_parts = query.clone();
            let parts = crate::in_parts(held, self.block_jobs, &self.cpu, move |part| {
                fold_held(&query_of_parts, shape, part)
            })
            .await;
            for folded in parts {
                match folded {
                    Ok((accumulator, spans, traces)) => {
                        total.merge(accumulator);
                        result.stats.inspected_spans += spans;
                        result.stats.inspected_traces += traces;
                    }
                    Err(error) => failures.push(format!("live traces could not be read: {error}")),
                }
            }
            result.stats.completed_jobs += 1;
        }
        if total.truncated {
            failures.push(format!(
                "the query built more than {} series (the memory bound of `query.max_metrics_series` {}); series past it were not counted",
                shape.max_series, request.max_series
            ));
        }
        result.series = total.finish(&request.query);
        cap_series(&mut result.series, request.max_series, &mut failures);
        if !failures.is_empty() {
            result.partial_message = Some(failures.join("; "));
        }
        result
    }
}
