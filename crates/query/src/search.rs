//! TraceQL search over live traces and blocks, newest first and deterministic.
//!
//! Stage 1 finds candidates: live traces are checked where they are held (`LiveSource::search`:
//! in this process, or in each live-store apart); blocks overlapping
//! the time range are scanned newest end first for traces that satisfy the query's pushed-down
//! condition (`BlockHandle::scan`, four in flight, CPU-bounded). Stage 2 walks candidates by
//! start time (newest first, then trace ID), fetches each whole trace from every source that
//! may hold it (`Querier::trace_by_id`, so a trace split across blocks is judged whole) and
//! evaluates the query. The two interleave: after each block, candidates starting after the
//! newest end of the unscanned blocks cannot be outranked, so they are judged at once, and the
//! search stops when `limit` traces matched — without changing the answer a full scan would
//! give. Because the order depends only on the data, identical requests return identical
//! results. Dropping the future (client gone) stops the work; a deadline turns the answer partial.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use andante_block::v1::search::ScanPlan;
use andante_block::v1::{AttributeParts, SpanParts};
use andante_live::decode_fragments_projected;
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::{TenantSet, TraceId, UnixNanos};
use andante_traceql::ast::{Field, Intrinsic, StatusCode};
use andante_traceql::eval::resolve;
use andante_traceql::{
    evaluate, evaluated_fields, referenced_fields, Query, TraceCondition, TraceView, Value,
};
use futures::stream::{self, StreamExt};

use crate::{AbortOnDrop, Located, Querier, TimeHint};

/// Tempo's defaults and caps.
pub const DEFAULT_LIMIT: usize = 20;
pub const DEFAULT_SPANS_PER_SPANSET: usize = 3;
pub const MAX_SPANS_PER_SPANSET: usize = 100;

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: Query,
    /// The TraceQL `query` was parsed from, for live-stores apart (they parse it themselves).
    pub text: String,
    pub limit: usize,
    pub spans_per_spanset: usize,
    pub start: Option<UnixNanos>,
    pub end: Option<UnixNanos>,
    pub deadline: Option<Instant>,
    /// Most block bytes the search may read (0: no limit); past it the answer is partial.
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanSummary {
    pub span_id: Vec<u8>,
    pub name: String,
    pub start_unix_nanos: u64,
    pub duration_nanos: u64,
    pub attributes: Vec<(String, Value<'static>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpansetSummary {
    pub spans: Vec<SpanSummary>,
    pub matched: usize,
    pub attributes: Vec<(String, Value<'static>)>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceStats {
    pub span_count: u64,
    pub error_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub root_service_name: String,
    pub root_trace_name: String,
    pub start_unix_nanos: u64,
    pub duration_nanos: u64,
    pub spansets: Vec<SpansetSummary>,
    pub service_stats: BTreeMap<String, ServiceStats>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchMetrics {
    pub inspected_traces: u64,
    pub inspected_bytes: u64,
    pub inspected_spans: u64,
    pub total_blocks: u64,
    pub completed_jobs: u64,
    pub total_jobs: u64,
    pub total_block_bytes: u64,
}

#[derive(Debug, Default)]
pub struct SearchResult {
    pub traces: Vec<TraceSummary>,
    pub metrics: SearchMetrics,
    pub partial_message: Option<String>,
    /// The deadline passed before the answer was complete (a kind of partial answer).
    pub timed_out: bool,
    /// The byte budget (`max_bytes`) ran out before the answer was complete.
    pub bytes_exhausted: bool,
}

/// Tempo's placeholder when a trace's root span has not arrived.
pub const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";

fn sample_fraction(query: &Query) -> Option<f64> {
    use andante_traceql::ast::Static;
    match query.hint("sample").or_else(|| query.hint("trace_sample")) {
        Some(Static::Float(fraction)) => Some(*fraction),
        // `sample=true` asks for a representative subset; a tenth keeps results meaningful.
        Some(Static::Bool(true)) => Some(0.1),
        _ => None,
    }
}

/// Deterministic sampling by trace ID.
fn sampled(trace_id: &TraceId, fraction: Option<f64>) -> bool {
    let Some(fraction) = fraction else {
        return true;
    };
    let mut head = [0u8; 8];
    head.copy_from_slice(&trace_id.0[8..16]);
    (u64::from_be_bytes(head) as f64) < fraction * u64::MAX as f64
}

/// The parts of spans a query's evaluation and its answer read (`fields`: `evaluated_fields`,
/// which include every attribute returned with spans). Names, times, IDs, status, resource and
/// scope always come with a span.
fn span_parts(fields: &[Field]) -> SpanParts {
    use andante_traceql::ast::Scope;
    let mut keys: Vec<String> = Vec::new();
    let mut events_links = false;
    for field in fields {
        match field {
            Field::Attribute { scope, name, .. } => match scope {
                Scope::Span | Scope::Unscoped => {
                    if !keys.contains(name) {
                        keys.push(name.clone());
                    }
                }
                Scope::Event | Scope::Link => events_links = true,
                Scope::Resource | Scope::Instrumentation => {}
            },
            Field::Intrinsic(
                Intrinsic::EventName
                | Intrinsic::EventTimeSinceStart
                | Intrinsic::LinkTraceId
                | Intrinsic::LinkSpanId,
            ) => events_links = true,
            Field::Intrinsic(_) => {}
        }
    }
    SpanParts {
        attributes: if keys.is_empty() {
            AttributeParts::None
        } else {
            AttributeParts::Keys(keys.into())
        },
        events_links,
    }
}

/// What stage 2 has decided so far.
#[derive(Default)]
struct Confirmed {
    /// The `limit` newest matches found so far.
    matched: BTreeMap<TraceId, TraceSummary>,
    /// `matched` by rank (start, trace ID), oldest first: the one to let go past `limit`.
    ranked: std::collections::BTreeSet<(u64, TraceId)>,
    /// Every trace already evaluated whole, matched or not: an older block naming it again
    /// must not queue it twice.
    checked: HashSet<TraceId>,
    /// The oldest match handed to `progress`. Matches handed out are the newest ones, and a
    /// match found later is never newer: its candidate was at most the threshold they passed,
    /// and a trace never starts after its candidate. So what is still to hand out lies below.
    sent_floor: Option<(u64, TraceId)>,
}

impl Confirmed {
    /// Keeps a match among the `limit` newest; an older one may have to leave.
    fn admit(&mut self, trace_id: TraceId, summary: TraceSummary, limit: usize) {
        if limit == 0 {
            return;
        }
        self.ranked.insert((summary.start_unix_nanos, trace_id));
        if let Some(replaced) = self.matched.insert(trace_id, summary) {
            self.ranked.remove(&(replaced.start_unix_nanos, trace_id));
        }
        if self.matched.len() > limit {
            if let Some((_, oldest)) = self.ranked.pop_first() {
                self.matched.remove(&oldest);
            }
        }
    }

    /// Whether `limit` matches are settled: nothing still to scan or judge, which starts at
    /// most at `threshold` (none: nothing is left), can outrank them. A match is ranked by its
    /// whole trace's start, earlier than its candidate's when the trace is split across blocks
    /// and the later piece was scanned first: such a match waits for the threshold. At most
    /// `limit` are kept, so with `limit` of them the oldest decides.
    fn has_settled(&self, threshold: Option<u64>, limit: usize) -> bool {
        limit == 0
            || (self.matched.len() >= limit
                && self
                    .ranked
                    .first()
                    .is_some_and(|(start, _)| threshold.is_none_or(|bound| *start > bound)))
    }

    /// Settled matches not yet handed to `progress`, newest first, now marked as handed:
    /// a streaming client sees only matches the final answer keeps.
    fn take_unsent(&mut self, threshold: Option<u64>) -> Vec<TraceSummary> {
        let below = match self.sent_floor {
            Some(floor) => self.ranked.range(..floor),
            None => self.ranked.range(..),
        };
        let fresh: Vec<(u64, TraceId)> = below
            .rev()
            .take_while(|(start, _)| threshold.is_none_or(|bound| *start > bound))
            .copied()
            .collect();
        if let Some(oldest) = fresh.last() {
            self.sent_floor = Some(*oldest);
        }
        fresh
            .iter()
            .filter_map(|(_, trace_id)| self.matched.get(trace_id).cloned())
            .collect()
    }
}

impl Querier {
    /// The answer in one piece: stage 2 starts with a chunk of all the matches still missing
    /// (see `confirm`).
    pub async fn search(&self, tenants: &TenantSet, request: &SearchRequest) -> SearchResult {
        self.search_in_chunks(tenants, request, false, |_, _| {})
            .await
    }

    /// `search`, calling `progress` with each batch of newly matched traces (already final: they
    /// are the newest candidates) and the running metrics, for streaming clients.
    ///
    /// Blocks are scanned newest end first. After each block, every candidate that starts after
    /// the newest end of the blocks not yet scanned is final in the order (no unscanned block can
    /// hold a newer start), so it is confirmed at once; the search stops as soon as `limit`
    /// traces are confirmed. The answer is the one a full scan would give.
    /// Streaming clients get their first traces from a small first chunk (8).
    pub async fn search_with_progress(
        &self,
        tenants: &TenantSet,
        request: &SearchRequest,
        progress: impl FnMut(&[TraceSummary], &SearchMetrics),
    ) -> SearchResult {
        self.search_in_chunks(tenants, request, true, progress)
            .await
    }

    async fn search_in_chunks(
        &self,
        tenants: &TenantSet,
        request: &SearchRequest,
        progressive: bool,
        mut progress: impl FnMut(&[TraceSummary], &SearchMetrics),
    ) -> SearchResult {
        let mut result = SearchResult::default();
        let start = request.start.unwrap_or(0);
        let end = request.end.unwrap_or(u64::MAX);
        let condition = TraceCondition::of(&request.query);
        let plan = Arc::new(ScanPlan::new(condition.clone(), start..end));
        let fraction = sample_fraction(&request.query);
        let mut failures: Vec<String> = Vec::new();
        // (trace ID, tenant) → the newest start any source gave the candidate.
        let mut candidates: BTreeMap<(TraceId, usize), u64> = BTreeMap::new();
        // Where stage 1 saw each candidate's rows, so stage 2 reads them without an ID search.
        let mut located = Located::new();
        let tenant_list: Vec<_> = tenants.iter().cloned().collect();
        let mut blocks = Vec::new();
        // Per tenant, the traces held live: a block's candidate with too few spans there may
        // have the rest of them live.
        let mut held_live: Vec<HashSet<TraceId>> = Vec::with_capacity(tenant_list.len());
        let live_search = crate::live_source::LiveSearch {
            text: request.text.clone(),
            condition: condition.clone(),
            start,
            end,
            cpu: self.cpu.clone(),
        };
        for (tenant_index, tenant) in tenant_list.iter().enumerate() {
            let live = self.live.search(tenant, &live_search).await;
            failures.extend(live.failures);
            held_live.push(live.value.held.into_iter().collect());
            result.metrics.inspected_spans += live.value.spans;
            for candidate in live.value.matches {
                let slot = candidates
                    .entry((candidate.trace_id, tenant_index))
                    .or_insert(0);
                *slot = (*slot).max(candidate.start_unix_nanos);
            }
            blocks.extend(
                self.blocks_newest_first(tenant, start, end)
                    .into_iter()
                    .map(|handle| (tenant_index, handle)),
            );
        }
        result.metrics.total_blocks = blocks.len() as u64;
        result.metrics.total_block_bytes = blocks
            .iter()
            .map(|(_, handle)| handle.meta.data_bytes)
            .sum::<u64>();
        // The scan units, newest bound first: a row group of a block clustered by time, else a
        // whole block; each is a job when queriers run apart. A candidate is final once it
        // starts after the bound of every unit not yet scanned.
        let mut units: Vec<(u64, usize, Arc<andante_block::BlockHandle>, Option<usize>)> =
            Vec::new();
        for (tenant_index, handle) in blocks {
            let handle = Arc::new(handle);
            // Units ruled out from memory (service names, statistics, the index's values)
            // cost neither a task nor a job.
            for (bound, unit) in handle.scan_units() {
                if handle.unit_may_match(&plan, unit) {
                    units.push((bound, tenant_index, handle.clone(), unit));
                }
            }
        }
        units.sort_by_key(|(bound, _, handle, unit)| {
            std::cmp::Reverse((*bound, handle.meta.block_id, std::cmp::Reverse(*unit)))
        });
        result.metrics.total_jobs = units.len() as u64;
        let frontiers: Vec<u64> = units.iter().map(|(bound, ..)| *bound).collect();
        // Scans run as tasks so they progress (and release their CPU permits) while stage 2
        // runs between them; the ones still running when the search stops are aborted.
        // With queriers apart, each scan is first a job for one of them (`jobs.rs`).
        let in_flight = self
            .queriers
            .as_ref()
            .map_or(4, |queriers| (2 * queriers.len()).max(4));
        let mut scans = stream::iter(units.into_iter().map(|(_, tenant_index, handle, unit)| {
            let (plan, cpu, storage) = (plan.clone(), self.cpu.clone(), self.storage.clone());
            // The unit's block, shared with its task (a meta copy per row group would cost).
            let block = handle.clone();
            let queriers = self.queriers.clone();
            let tenant = tenant_list[tenant_index].clone();
            let text = request.text.clone();
            let task = AbortOnDrop(tokio::spawn(async move {
                if let Some(queriers) = queriers {
                    let job = crate::jobs::ScanJob {
                        tenant: &tenant,
                        block_id: handle.meta.block_id,
                        row_group: unit,
                        text: &text,
                        start,
                        end,
                    };
                    match queriers.scan(&job).await {
                        Ok(outcome) => return Ok(outcome),
                        Err(error) => tracing::warn!(
                            block = %handle.meta.block_id, %error,
                            "no querier scanned the block; scanning it here"
                        ),
                    }
                }
                handle.scan_unit(&storage, plan, cpu, unit).await
            }));
            async move {
                let outcome = match task.await {
                    Ok(outcome) => outcome,
                    Err(error) => Err(andante_block::BlockError::Read(error.to_string())),
                };
                (tenant_index, block, outcome)
            }
        }))
        .buffered(in_flight);

        let fields = Arc::new(referenced_fields(&request.query));
        let query = Arc::new(request.query.clone());
        let mut confirmed = Confirmed::default();
        let mut scanned = 0;
        loop {
            let frontier = frontiers.get(scanned).copied();
            let mut ready: Vec<(u64, TraceId, usize)> = candidates
                .iter()
                .filter(|((trace_id, _), start)| {
                    frontier.is_none_or(|newest_unscanned| **start > newest_unscanned)
                        && sampled(trace_id, fraction)
                        && !confirmed.checked.contains(trace_id)
                })
                .map(|((trace_id, tenant_index), start)| (*start, *trace_id, *tenant_index))
                .collect();
            self.confirm(
                &mut ready,
                frontier,
                &tenant_list,
                &located,
                progressive,
                request,
                &query,
                &fields,
                &mut confirmed,
                &mut result,
                &mut failures,
                &mut progress,
            )
            .await;
            let past_deadline = request
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline);
            let settled = confirmed.has_settled(frontier, request.limit);
            if settled || past_deadline || frontier.is_none() {
                if past_deadline && frontier.is_some() && !settled {
                    failures.push(
                        "the search deadline passed before every block was scanned".to_owned(),
                    );
                    result.timed_out = true;
                }
                break;
            }
            // Everything ready was judged; only now is it worth taking out (a match-all query
            // makes every trace of the block ready, and the search usually stops above).
            for (_, trace_id, tenant_index) in &ready {
                candidates.remove(&(*trace_id, *tenant_index));
            }
            if request.max_bytes > 0 && result.metrics.inspected_bytes > request.max_bytes {
                failures.push(format!(
                    "the search read more than the limit of {} bytes (`query.max_bytes_per_query`) before every block was scanned",
                    request.max_bytes
                ));
                result.bytes_exhausted = true;
                break;
            }
            let Some((tenant_index, block, scan)) = scans.next().await else {
                break;
            };
            let meta = &block.meta;
            scanned += 1;
            match scan {
                Ok(outcome) => {
                    result.metrics.completed_jobs += 1;
                    result.metrics.inspected_bytes += outcome.bytes_read;
                    result.metrics.inspected_spans += outcome.spans_scanned;
                    result.metrics.inspected_traces += outcome.traces_scanned;
                    let tenant = &tenant_list[tenant_index];
                    let tenant_blocks = if outcome.candidates.iter().any(|c| c.too_few_here) {
                        self.blocks.blocks(tenant.as_str())
                    } else {
                        Vec::new()
                    };
                    for candidate in outcome.candidates {
                        if confirmed.checked.contains(&candidate.trace_id) {
                            continue;
                        }
                        if candidate.too_few_here
                            && !held_elsewhere(
                                &held_live[tenant_index],
                                &candidate.trace_id,
                                meta,
                                &tenant_blocks,
                            )
                        {
                            continue;
                        }
                        if let Some(location) = candidate.location {
                            located
                                .entry(candidate.trace_id)
                                .or_default()
                                .push((meta.block_id, location));
                        }
                        let slot = candidates
                            .entry((candidate.trace_id, tenant_index))
                            .or_insert(0);
                        *slot = (*slot).max(candidate.start_unix_nanos);
                    }
                }
                Err(error) => failures.push(self.block_failed(meta, &error, "searched").await),
            }
        }
        // A search cut short (deadline, bytes) answers with what it has, unsettled too.
        let rest = confirmed.take_unsent(None);
        if !rest.is_empty() {
            progress(&rest, &result.metrics);
        }
        let mut traces: Vec<TraceSummary> = confirmed.matched.into_values().collect();
        traces.sort_by_key(|trace| std::cmp::Reverse((trace.start_unix_nanos, trace.trace_id)));
        result.traces = traces;
        if !failures.is_empty() {
            result.partial_message = Some(failures.join("; "));
        }
        result
    }

    /// Stage 2 over `ready`, newest first: fetches the traces whole, evaluates the query and
    /// records matches until `limit` of them are settled against `frontier` (the bound of the
    /// next unit to scan). `ready` is ordered one chunk at a time (a match-all query
    /// makes every trace of a block ready, and the search usually stops after a chunk or two);
    /// a trace ID ready for two tenants is read for the first, newest one only. The first chunk is the number of matches still missing
    /// (at least 8; 8 when `progressive`, so a streaming client sees traces early): when stage 1
    /// was exact, one pass over the row groups finds them all. Chunks then
    /// double up to 256: a query that cannot be pushed down makes every trace a candidate, and
    /// batched reads decode each row group once per chunk, not per trace.
    #[allow(clippy::too_many_arguments)]
    async fn confirm(
        &self,
        ready: &mut [(u64, TraceId, usize)],
        frontier: Option<u64>,
        tenant_list: &[andante_model::TenantId],
        located: &Located,
        progressive: bool,
        request: &SearchRequest,
        query: &Arc<Query>,
        fields: &Arc<Vec<Field>>,
        confirmed: &mut Confirmed,
        result: &mut SearchResult,
        failures: &mut Vec<String>,
        progress: &mut impl FnMut(&[TraceSummary], &SearchMetrics),
    ) {
        let hint = TimeHint::default();
        let parts = span_parts(&evaluated_fields(query));
        let mut chunk_size = if progressive {
            8
        } else {
            request
                .limit
                .saturating_sub(confirmed.matched.len())
                .clamp(8, 256)
        };
        // Newest first; the key (start, trace ID, tenant) is unique, so the order is total.
        let newest_first = |a: &(u64, TraceId, usize), b: &(u64, TraceId, usize)| {
            (b.0, b.1).cmp(&(a.0, a.1)).then(a.2.cmp(&b.2))
        };
        let mut taken: HashSet<TraceId> = HashSet::new();
        let mut rest = ready;
        while !rest.is_empty() {
            let take = chunk_size.min(rest.len());
            if take < rest.len() {
                rest.select_nth_unstable_by(take - 1, newest_first);
            }
            let (chunk, remaining) = std::mem::take(&mut rest).split_at_mut(take);
            chunk.sort_unstable_by(newest_first);
            rest = remaining;
            let chunk: Vec<(u64, TraceId, usize)> = chunk
                .iter()
                .filter(|(_, trace_id, _)| taken.insert(*trace_id))
                .copied()
                .collect();
            // 256 whole traces bound a chunk's memory (each at most `limits.max_bytes_per_trace`).
            chunk_size = (chunk_size * 2).min(256);
            // A candidate still to judge may match with a start up to its own: matches are
            // settled only above it too.
            let unjudged = rest
                .iter()
                .chain(chunk.iter())
                .map(|(start, ..)| *start)
                .max();
            if confirmed.has_settled(frontier.max(unjudged), request.limit) {
                break;
            }
            if request
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                failures.push(
                    "the search deadline passed before every candidate was checked".to_owned(),
                );
                result.timed_out = true;
                break;
            }
            // Per tenant, one batched read; then back to the chunk's order (newest first).
            let mut fetched: Vec<(TraceId, Vec<ResourceSpans>)> = Vec::with_capacity(chunk.len());
            for (tenant_index, tenant) in tenant_list.iter().enumerate() {
                let ids: Vec<TraceId> = chunk
                    .iter()
                    .filter(|(_, _, index)| *index == tenant_index)
                    .map(|(_, trace_id, _)| *trace_id)
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                let batch = self
                    .spans_by_ids(tenant, &ids, hint, located, parts.clone())
                    .await;
                result.metrics.inspected_bytes += batch.inspected_bytes;
                failures.extend(batch.failures);
                fetched.extend(batch.traces);
            }
            let order: std::collections::HashMap<TraceId, usize> = chunk
                .iter()
                .enumerate()
                .map(|(position, (_, trace_id, _))| (*trace_id, position))
                .collect();
            fetched.sort_by_key(|(trace_id, _)| order.get(trace_id).copied());
            let (query, fields) = (query.clone(), fields.clone());
            let spss = request.spans_per_spanset;
            let permit = self.cpu.clone().acquire_owned().await;
            let summaries = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                fetched
                    .into_iter()
                    .map(|(trace_id, resource_spans)| {
                        (
                            trace_id,
                            summarize(&query, &fields, spss, trace_id, &resource_spans),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .await;
            let summaries = match summaries {
                Ok(summaries) => summaries,
                Err(error) => {
                    tracing::error!(%error, "search evaluation task failed");
                    failures.push("evaluating candidate traces failed".to_owned());
                    break;
                }
            };
            for (trace_id, summary) in summaries {
                confirmed.checked.insert(trace_id);
                if let Some(summary) = summary {
                    confirmed.admit(trace_id, summary, request.limit);
                }
            }
            let unjudged = rest.iter().map(|(start, ..)| *start).max();
            let fresh = confirmed.take_unsent(frontier.max(unjudged));
            progress(&fresh, &result.metrics);
        }
    }
}

fn render_intrinsic(
    intrinsic: Intrinsic,
    value: Value<'static>,
) -> Option<(String, Value<'static>)> {
    let key = match intrinsic {
        Intrinsic::Name | Intrinsic::Duration => return None,
        other => other.name().to_owned(),
    };
    let value = match value {
        Value::Status(status) => Value::Str(status.name().into()),
        Value::Kind(kind) => Value::Str(kind.name().into()),
        other => other,
    };
    Some((key, value))
}

/// Evaluates the query over one whole trace and builds its search summary (None: no match).
pub fn summarize(
    query: &Query,
    fields: &[Field],
    spans_per_spanset: usize,
    trace_id: TraceId,
    resource_spans: &[ResourceSpans],
) -> Option<TraceSummary> {
    let view = TraceView::new(trace_id.0, resource_spans);
    let spansets = evaluate(query, &view);
    if spansets.is_empty() {
        return None;
    }
    let mut service_stats: BTreeMap<String, ServiceStats> = BTreeMap::new();
    for span in &view.spans {
        let stats = service_stats
            .entry(span.service_name().to_owned())
            .or_default();
        stats.span_count += 1;
        if span
            .span
            .status
            .as_ref()
            .is_some_and(|status| StatusCode::from_otlp(status.code) == StatusCode::Error)
        {
            stats.error_count += 1;
        }
    }
    let (root_service_name, root_trace_name) = match view.root.map(|root| view.spans[root as usize])
    {
        Some(root) if root.span.parent_span_id.is_empty() => {
            (root.service_name().to_owned(), root.span.name.clone())
        }
        _ => (ROOT_NOT_RECEIVED.to_owned(), String::new()),
    };
    let spansets = spansets
        .into_iter()
        .map(|spanset| SpansetSummary {
            matched: spanset.spans.len(),
            spans: spanset
                .spans
                .iter()
                .take(spans_per_spanset)
                .map(|index| {
                    let span = view.spans[*index as usize];
                    let attributes = fields
                        .iter()
                        .filter_map(|field| {
                            let value = resolve(field, &view, *index).into_owned();
                            if value.is_nil() {
                                return None;
                            }
                            match field {
                                Field::Intrinsic(intrinsic) => render_intrinsic(*intrinsic, value),
                                Field::Attribute { name, .. } => Some((name.clone(), value)),
                            }
                        })
                        .collect();
                    SpanSummary {
                        span_id: span.span.span_id.clone(),
                        name: span.span.name.clone(),
                        start_unix_nanos: span.span.start_time_unix_nano,
                        duration_nanos: span.duration_nanos() as u64,
                        attributes,
                    }
                })
                .collect(),
            attributes: spanset.attributes,
        })
        .collect();
    Some(TraceSummary {
        trace_id,
        root_service_name,
        root_trace_name,
        start_unix_nanos: view.start_unix_nanos,
        duration_nanos: view.trace_duration_nanos() as u64,
        spansets,
        service_stats,
    })
}

pub use andante_live::wire::LiveMatch;

/// Stage 1 over encoded live traces: decodes only the fields the condition reads (see
/// `docs/design/live-search.md`) and keeps the traces satisfying it; returns them and the spans
/// inspected. Runs wherever the fragments are: in the querier, or in a live-store.
pub fn match_live(
    live: impl IntoIterator<Item = (TraceId, Vec<bytes::Bytes>)>,
    condition: &TraceCondition,
) -> (Vec<LiveMatch>, u64) {
    let projection = condition.projection();
    let predicates = condition.predicates();
    let mut out = Vec::new();
    let mut spans = 0u64;
    for (trace_id, fragments) in live {
        let resource_spans = decode_fragments_projected(&fragments, &projection);
        let view = TraceView::new(trace_id.0, &resource_spans);
        spans += view.spans.len() as u64;
        let found: Vec<bool> = predicates
            .iter()
            .map(|predicate| {
                (0..view.spans.len() as u32).any(|span| predicate.matches_span(&view, span))
            })
            .collect();
        if condition.holds(&found) {
            out.push(LiveMatch {
                trace_id,
                start_unix_nanos: view.start_unix_nanos,
                end_unix_nanos: view.end_unix_nanos,
            });
        }
    }
    (out, spans)
}

/// Whether a trace stage 1 saw in `block` may have spans in another block or held live (Bloom
/// filters; false positives only cost a stage-2 read).
fn held_elsewhere(
    held_live: &HashSet<TraceId>,
    trace_id: &TraceId,
    block: &andante_block::BlockMeta,
    tenant_blocks: &[andante_block::BlockHandle],
) -> bool {
    held_live.contains(trace_id)
        || tenant_blocks
            .iter()
            .any(|handle| handle.meta.block_id != block.block_id && handle.may_contain(trace_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use andante_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;

    /// Generated traces held as two pushes each, the second repeating the first span with
    /// another end time (a retried push that changed; the first copy is the one kept).
    fn live_traces() -> Vec<(TraceId, Vec<bytes::Bytes>)> {
        let topology = andante_gen::Topology::new(7);
        let mut builder = andante_gen::TraceBuilder::new(&topology, 7);
        (0..400u64)
            .map(|n| {
                let (trace_id, resource_spans) =
                    builder.build(1_790_000_000_000_000_000 + n * 1_000_000);
                let mut repeated = resource_spans[0].clone();
                repeated.scope_spans.truncate(1);
                repeated.scope_spans[0].spans.truncate(1);
                repeated.scope_spans[0].spans[0].end_time_unix_nano += 5_000_000_000;
                let encode = |resource_spans: Vec<_>| {
                    bytes::Bytes::from(ExportTraceServiceRequest { resource_spans }.encode_to_vec())
                };
                let trace_id = TraceId(trace_id.try_into().expect("16 bytes"));
                (
                    trace_id,
                    vec![encode(resource_spans), encode(vec![repeated])],
                )
            })
            .collect()
    }

    /// Stage 1 as it was before projection: every fragment decoded whole and merged.
    fn matched_in_full(
        live: &[(TraceId, Vec<bytes::Bytes>)],
        condition: &TraceCondition,
    ) -> Vec<LiveMatch> {
        live.iter()
            .filter_map(|(trace_id, fragments)| {
                let resource_spans = andante_live::decode_fragments(fragments);
                let view = TraceView::new(trace_id.0, &resource_spans);
                let found: Vec<bool> = condition
                    .predicates()
                    .iter()
                    .map(|predicate| {
                        (0..view.spans.len() as u32).any(|span| predicate.matches_span(&view, span))
                    })
                    .collect();
                condition.holds(&found).then_some(LiveMatch {
                    trace_id: *trace_id,
                    start_unix_nanos: view.start_unix_nanos,
                    end_unix_nanos: view.end_unix_nanos,
                })
            })
            .collect()
    }

    #[test]
    fn projected_stage_one_finds_what_a_full_decode_finds() {
        let live = live_traces();
        let mut matched_some = 0;
        for text in [
            "{ }",
            "{ status = error }",
            "{ span.http.request.method = \"POST\" }",
            "{ .http.route =~ \"/api.*\" && kind = server }",
            "{ resource.service.name != nil && duration > 50ms }",
            "{ span:childCount = 1 }",
            "{ span:childCount > 2 }",
            "{ parent.resource.service.name != nil && kind = client }",
            "{ trace:rootService =~ \".+\" && nestedSetParent > 1 }",
            "{ trace:duration > 4s }",
            "{ name =~ \"GET.*\" } >> { status = error }",
            "{ instrumentation:name != \"\" || event:name = \"exception\" }",
            "{ } | count() > 5",
        ] {
            let query = andante_traceql::parse(text).expect("parses");
            let condition = TraceCondition::of(&query);
            let expected = matched_in_full(&live, &condition);
            let (found, spans) = match_live(live.iter().cloned(), &condition);
            let first_difference = found.iter().zip(&expected).find(|(a, b)| a != b);
            assert!(
                found == expected,
                "`{text}`: {} found, {} expected, first difference {first_difference:?}",
                found.len(),
                expected.len()
            );
            assert!(spans > 400, "`{text}` inspected {spans} spans");
            if !expected.is_empty() && expected.len() < live.len() {
                matched_some += 1;
            }
        }
        assert!(
            matched_some >= 4,
            "only {matched_some} queries tell traces apart"
        );
    }

    /// A search as Grafana sends it: no time range, 3 spans per span set.
    fn request(text: &str, limit: usize) -> SearchRequest {
        SearchRequest {
            query: andante_traceql::parse(text).expect("parses"),
            text: text.to_owned(),
            limit,
            spans_per_spanset: 3,
            start: None,
            end: None,
            deadline: None,
            max_bytes: 0,
        }
    }

    /// A newest-first search that stops inside an `andante-v2` block (one scan unit per row
    /// group) answers exactly what a scan of every row group answers: the same traces as the
    /// same data in `andante-v1` blocks (one unit each, scanned whole) and as the reference
    /// evaluator over every trace, newest first with ties by ID, for every limit.
    #[tokio::test]
    async fn early_stop_inside_a_block_answers_like_a_full_scan() {
        use andante_block::{encode_block, encode_block_from, upload_block, BlockHandle, NewBlock};
        let topology = andante_gen::Topology::new(11);
        let mut builder = andante_gen::TraceBuilder::new(&topology, 11);
        // Three traces share each start: ties must break by trace ID alike everywhere.
        let mut traces: Vec<andante_block::Trace> = (0..1200u64)
            .map(|n| {
                let (trace_id, resource_spans) =
                    builder.build(1_790_000_000_000_000_000 + (n / 3) * 1_000_000);
                andante_block::Trace {
                    trace_id: TraceId(trace_id.try_into().expect("16 bytes")),
                    resource_spans,
                }
            })
            .collect();
        traces.sort_by_key(|trace| trace.trace_id);
        traces.dedup_by_key(|trace| trace.trace_id);
        let tenant = andante_model::TenantId::new("t").expect("tenant");
        let new_block = NewBlock {
            sources: Vec::new(),
            tenant_id: "t".into(),
            compaction_level: 0,
            replaces: Vec::new(),
            options: andante_block::v1::WriteOptions {
                row_group_spans: 300,
                ..Default::default()
            },
        };
        // Two blocks over the same time range (traces dealt alternately, IDs being random), so
        // the row groups of one interleave in time with the other's and every unit's bound
        // decides when a candidate is final.
        let halves: [Vec<andante_block::Trace>; 2] = [0, 1].map(|half| {
            traces
                .iter()
                .enumerate()
                .filter(|(at, _)| at % 2 == half)
                .map(|(_, trace)| trace.clone())
                .collect()
        });
        let mut queriers = Vec::new();
        for time_clustered in [true, false] {
            let storage = andante_storage::Storage::in_memory();
            let blocks = andante_block::blocklist::BlockList::default();
            for half in &halves {
                let encoded = if time_clustered {
                    encode_block(half, &new_block)
                } else {
                    encode_block_from(half.iter().cloned(), half.len(), &new_block)
                }
                .expect("encodes");
                let meta = encoded.meta.clone();
                upload_block(&storage, encoded).await.expect("uploads");
                let handle = BlockHandle::open(&storage, meta).await.expect("opens");
                assert!(handle.meta.row_groups > 8, "{}", handle.meta.row_groups);
                assert_eq!(handle.meta.time_clustered(), time_clustered);
                blocks.add(handle);
            }
            let live = Arc::new(crate::live_source::LiveSources(Vec::new()));
            queriers.push(crate::Querier::new(live, storage, blocks));
        }
        let tenants_one = tenant.clone();
        let tenants = andante_model::TenantSet::one(tenant);
        let mut stopped_early = 0;
        for text in [
            "{ }",
            "{ status = error }",
            "{ resource.service.name = \"frontend\" }",
            "{ kind = server && duration > 20ms }",
            "{ } | count() > 6",
            "{ name =~ \"GET.*\" } >> { status = error }",
        ] {
            let query = andante_traceql::parse(text).expect("parses");
            let mut reference: Vec<(u64, TraceId)> = traces
                .iter()
                .filter_map(|trace| {
                    let view = TraceView::new(trace.trace_id.0, &trace.resource_spans);
                    let matched = !andante_traceql::evaluate(&query, &view).is_empty();
                    matched.then_some((view.start_unix_nanos, trace.trace_id))
                })
                .collect();
            reference.sort_by_key(|(start, trace_id)| std::cmp::Reverse((*start, *trace_id)));
            assert!(!reference.is_empty(), "{text} matches nothing");
            for limit in [1, 7, 20, 100, 1000] {
                let request = request(text, limit);
                let clustered = queriers[0].search(&tenants, &request).await;
                let by_id = queriers[1].search(&tenants, &request).await;
                assert!(clustered.partial_message.is_none(), "{text}");
                let expected: Vec<TraceId> = reference
                    .iter()
                    .take(limit)
                    .map(|(_, trace_id)| *trace_id)
                    .collect();
                let found: Vec<TraceId> = clustered.traces.iter().map(|t| t.trace_id).collect();
                assert_eq!(found, expected, "{text}, limit {limit}");
                assert!(clustered.traces == by_id.traces, "{text}, limit {limit}");
                let metrics = &clustered.metrics;
                if metrics.completed_jobs < metrics.total_jobs {
                    stopped_early += 1;
                }
            }
        }
        assert!(
            stopped_early >= 10,
            "the searches of the clustered block stopped early only {stopped_early} times"
        );

        // A querier apart scans one row group as a job: together they are the block's scan,
        // and a row group the block does not have is refused.
        let block = queriers[0].blocks.blocks("t")[0].clone();
        let job = |row_group| {
            queriers[0].scan_block(
                &tenants_one,
                block.meta.block_id,
                row_group,
                "{ status = error }",
                0,
                u64::MAX,
            )
        };
        let whole: HashSet<TraceId> = job(None)
            .await
            .expect("scans")
            .candidates
            .iter()
            .map(|c| c.trace_id)
            .collect();
        let mut by_row_group = HashSet::new();
        for row_group in 0..block.meta.row_groups as usize {
            let outcome = job(Some(row_group)).await.expect("scans");
            by_row_group.extend(outcome.candidates.iter().map(|c| c.trace_id));
        }
        assert!(!whole.is_empty());
        assert_eq!(by_row_group, whole);
        let refused = job(Some(block.meta.row_groups as usize)).await;
        assert!(
            matches!(&refused, Err(crate::ScanJobError::BadRequest(m)) if m.contains("is not in block")),
            "{refused:?}"
        );
    }

    /// A trace split across blocks ranks by its whole start, even when its later piece, in a
    /// newer block, is scanned first: a trace that starts between its pieces, in a block still
    /// to scan, outranks it.
    #[tokio::test]
    async fn a_trace_split_across_blocks_ranks_by_its_earliest_piece() {
        use andante_block::{encode_block, upload_block, BlockHandle, NewBlock, Trace};
        let topology = andante_gen::Topology::new(5);
        let mut builder = andante_gen::TraceBuilder::new(&topology, 5);
        let second = 1_000_000_000u64;
        let base = 1_790_000_000_000_000_000u64;
        let mut make = |at: u64| {
            let (trace_id, resource_spans) = builder.build(at);
            Trace {
                trace_id: TraceId(trace_id.try_into().expect("16 bytes")),
                resource_spans,
            }
        };
        let split = make(base + 10 * second);
        let between = make(base + 50 * second);
        // The split trace's late piece: one more span, 90 s after the rest.
        let mut late = split.clone();
        late.resource_spans.truncate(1);
        late.resource_spans[0].scope_spans.truncate(1);
        late.resource_spans[0].scope_spans[0].spans.truncate(1);
        let span = &mut late.resource_spans[0].scope_spans[0].spans[0];
        span.span_id[0] ^= 0xff;
        span.start_time_unix_nano += 90 * second;
        span.end_time_unix_nano += 90 * second;
        let storage = andante_storage::Storage::in_memory();
        let blocks = andante_block::blocklist::BlockList::default();
        let new_block = NewBlock {
            sources: Vec::new(),
            tenant_id: "t".into(),
            compaction_level: 0,
            replaces: Vec::new(),
            options: Default::default(),
        };
        for traces in [vec![split.clone(), between.clone()], vec![late]] {
            let encoded = encode_block(&traces, &new_block).expect("encodes");
            let meta = encoded.meta.clone();
            upload_block(&storage, encoded).await.expect("uploads");
            blocks.add(BlockHandle::open(&storage, meta).await.expect("opens"));
        }
        let live = Arc::new(crate::live_source::LiveSources(Vec::new()));
        let querier = crate::Querier::new(live, storage, blocks);
        let tenants = andante_model::TenantSet::one(andante_model::TenantId::new("t").expect("t"));
        for (limit, expected) in [
            (1, vec![between.trace_id]),
            (2, vec![between.trace_id, split.trace_id]),
        ] {
            let request = request("{ }", limit);
            let mut streamed = Vec::new();
            let answer = querier
                .search_with_progress(&tenants, &request, |fresh, _| {
                    streamed.extend(fresh.iter().map(|trace| trace.trace_id))
                })
                .await;
            let found: Vec<TraceId> = answer.traces.iter().map(|t| t.trace_id).collect();
            assert_eq!(found, expected, "limit {limit}");
            // A streaming client is handed exactly the answer's traces.
            streamed.sort();
            let mut want = expected.clone();
            want.sort();
            assert_eq!(streamed, want, "limit {limit}");
        }
    }
}
