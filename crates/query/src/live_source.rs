//! Where the query side reads recent data (traces not yet in a listed block): the process's own
//! live store in `all`, or the live-stores of the split roles, each holding the partitions it
//! consumes (`andante_log::live_store`). Reads return the encoded fragments as the store holds
//! them (queries decode on their CPU pool), except search stage 1, which runs where the traces
//! are held and returns only matches and held IDs (`docs/design/live-search.md`). Beside every
//! answer is one message per source that could not answer, so an answer missing a live-store's
//! partitions is `PARTIAL`, never silently short.

use std::collections::HashMap;
use std::sync::Arc;

use andante_live::LiveStore;
use andante_model::{TenantId, TraceId};
use andante_traceql::TraceCondition;
use bytes::Bytes;
use futures::future::BoxFuture;

pub use andante_live::wire::LiveMatches;
/// Traces as their encoded fragments, in trace-ID order.
pub use andante_live::wire::LiveTraces;

/// Search stage 1 as asked of a live source.
#[derive(Clone)]
pub struct LiveSearch {
    /// The TraceQL text: a live-store apart parses it itself, so only text crosses the wire.
    pub text: String,
    /// `TraceCondition::of` the parsed text.
    pub condition: TraceCondition,
    /// The window, Unix nanoseconds, inclusive: matches outside it are not returned.
    pub start: u64,
    pub end: u64,
    /// Permits for the evaluation, which is CPU work (the querier's pool, or the live-store's).
    pub cpu: Arc<tokio::sync::Semaphore>,
}

/// Stage 1 over `traces` on the CPU pool, one part per core (each a blocking task holding a
/// `cpu` permit): the held IDs, and the matches within the window.
pub async fn search_held(traces: LiveTraces, request: &LiveSearch) -> LiveRead<LiveMatches> {
    let held: Vec<TraceId> = traces.iter().map(|(trace_id, _)| *trace_id).collect();
    let cores = std::thread::available_parallelism().map_or(2, |count| count.get());
    let (start, end) = (request.start, request.end);
    let condition = request.condition.clone();
    let parts = crate::in_parts(traces, cores, &request.cpu, move |part| {
        let (mut matches, spans) = crate::search::match_live(part, &condition);
        matches.retain(|found| found.start_unix_nanos <= end && found.end_unix_nanos >= start);
        (matches, spans)
    })
    .await;
    let mut out = LiveRead {
        value: LiveMatches {
            held,
            ..LiveMatches::default()
        },
        failures: Vec::new(),
    };
    for part in parts {
        match part {
            Ok((matches, spans)) => {
                out.value.matches.extend(matches);
                out.value.spans += spans;
            }
            Err(error) => {
                tracing::error!(%error, "live search task failed");
                out.failures
                    .push("the live traces could not be searched".to_owned());
            }
        }
    }
    out
}

/// A read of recent data, and the sources that could not answer it.
#[derive(Debug, Default)]
pub struct LiveRead<T> {
    pub value: T,
    pub failures: Vec<String>,
}

impl<T: Default> LiveRead<T> {
    /// A source's answer, or nothing and its failure.
    pub fn of(answer: Result<T, String>) -> LiveRead<T> {
        match answer {
            Ok(value) => LiveRead {
                value,
                failures: Vec::new(),
            },
            Err(failure) => LiveRead {
                value: T::default(),
                failures: vec![failure],
            },
        }
    }
}

pub trait LiveSource: Send + Sync + 'static {
    /// Every tenant with data held (or pushed since start).
    fn tenants(&self) -> BoxFuture<'_, LiveRead<Vec<TenantId>>>;

    /// Every trace of `tenant` held.
    fn snapshot<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, LiveRead<LiveTraces>>;

    /// The held fragments of each of `trace_ids` that is held.
    fn find<'a>(
        &'a self,
        tenant: &'a TenantId,
        trace_ids: &'a [TraceId],
    ) -> BoxFuture<'a, LiveRead<HashMap<TraceId, Vec<Bytes>>>>;

    /// Search stage 1 where the traces are held: every trace of `tenant` held, and those whose
    /// held spans satisfy `request.condition` within its window.
    fn search<'a>(
        &'a self,
        tenant: &'a TenantId,
        request: &'a LiveSearch,
    ) -> BoxFuture<'a, LiveRead<LiveMatches>>;
}

/// The process's own store (`all`): every read is in memory and cannot fail.
impl LiveSource for LiveStore {
    fn tenants(&self) -> BoxFuture<'_, LiveRead<Vec<TenantId>>> {
        let value = LiveStore::tenants(self);
        Box::pin(async move {
            LiveRead {
                value,
                failures: Vec::new(),
            }
        })
    }

    fn snapshot<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, LiveRead<LiveTraces>> {
        let value = LiveStore::snapshot(self, tenant);
        Box::pin(async move {
            LiveRead {
                value,
                failures: Vec::new(),
            }
        })
    }

    fn find<'a>(
        &'a self,
        tenant: &'a TenantId,
        trace_ids: &'a [TraceId],
    ) -> BoxFuture<'a, LiveRead<HashMap<TraceId, Vec<Bytes>>>> {
        let value = trace_ids
            .iter()
            .filter_map(|trace_id| {
                let fragments = self.fragments(tenant, trace_id);
                (!fragments.is_empty()).then_some((*trace_id, fragments))
            })
            .collect();
        Box::pin(async move {
            LiveRead {
                value,
                failures: Vec::new(),
            }
        })
    }

    fn search<'a>(
        &'a self,
        tenant: &'a TenantId,
        request: &'a LiveSearch,
    ) -> BoxFuture<'a, LiveRead<LiveMatches>> {
        let traces = LiveStore::snapshot(self, tenant);
        Box::pin(search_held(traces, request))
    }
}

/// Several sources read as one (the live-stores of a split deployment, each owning some
/// partitions), traces merged by ID: a trace's records share a partition, but while ownership
/// moves (a changed `kafka.instances`) two stores may each hold a part of one.
pub struct LiveSources(pub Vec<Arc<dyn LiveSource>>);

impl LiveSource for LiveSources {
    fn tenants(&self) -> BoxFuture<'_, LiveRead<Vec<TenantId>>> {
        Box::pin(async move {
            let reads = futures::future::join_all(self.0.iter().map(|s| s.tenants())).await;
            let mut out = LiveRead::<Vec<TenantId>>::default();
            for read in reads {
                out.value.extend(read.value);
                out.failures.extend(read.failures);
            }
            out.value.sort();
            out.value.dedup();
            out
        })
    }

    fn snapshot<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, LiveRead<LiveTraces>> {
        Box::pin(async move {
            let reads = futures::future::join_all(self.0.iter().map(|s| s.snapshot(tenant))).await;
            let mut merged: std::collections::BTreeMap<TraceId, Vec<Bytes>> = Default::default();
            let mut failures = Vec::new();
            for read in reads {
                for (trace_id, fragments) in read.value {
                    merged.entry(trace_id).or_default().extend(fragments);
                }
                failures.extend(read.failures);
            }
            LiveRead {
                value: merged.into_iter().collect(),
                failures,
            }
        })
    }

    fn find<'a>(
        &'a self,
        tenant: &'a TenantId,
        trace_ids: &'a [TraceId],
    ) -> BoxFuture<'a, LiveRead<HashMap<TraceId, Vec<Bytes>>>> {
        Box::pin(async move {
            let reads =
                futures::future::join_all(self.0.iter().map(|s| s.find(tenant, trace_ids))).await;
            let mut out = LiveRead::<HashMap<TraceId, Vec<Bytes>>>::default();
            for read in reads {
                for (trace_id, fragments) in read.value {
                    out.value.entry(trace_id).or_default().extend(fragments);
                }
                out.failures.extend(read.failures);
            }
            out
        })
    }

    /// Each source searches what it holds. A trace two sources each hold a part of (ownership
    /// moving) was judged on parts, so it is judged again here on all its fragments.
    fn search<'a>(
        &'a self,
        tenant: &'a TenantId,
        request: &'a LiveSearch,
    ) -> BoxFuture<'a, LiveRead<LiveMatches>> {
        Box::pin(async move {
            let reads =
                futures::future::join_all(self.0.iter().map(|s| s.search(tenant, request))).await;
            let mut out = LiveRead::<LiveMatches>::default();
            let mut holders: HashMap<TraceId, usize> = HashMap::new();
            for read in reads {
                out.value.spans += read.value.spans;
                for trace_id in read.value.held {
                    *holders.entry(trace_id).or_insert(0) += 1;
                }
                out.value.matches.extend(read.value.matches);
                out.failures.extend(read.failures);
            }
            let mut split: Vec<TraceId> = holders
                .iter()
                .filter(|(_, count)| **count > 1)
                .map(|(trace_id, _)| *trace_id)
                .collect();
            out.value.held = holders.into_keys().collect();
            out.value.held.sort_unstable();
            if !split.is_empty() {
                split.sort_unstable();
                out.value
                    .matches
                    .retain(|found| split.binary_search(&found.trace_id).is_err());
                let fragments = self.find(tenant, &split).await;
                out.failures.extend(fragments.failures);
                let mut whole: LiveTraces = fragments.value.into_iter().collect();
                whole.sort_unstable_by_key(|(trace_id, _)| *trace_id);
                let again = search_held(whole, request).await;
                out.value.matches.extend(again.value.matches);
                out.failures.extend(again.failures);
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use andante_block::blocklist::BlockList;
    use andante_ingest::ExportTraceServiceRequest;
    use andante_live::LiveConfig;
    use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use andante_storage::Storage;

    fn store_holding(
        tenant: &TenantId,
        spans: &[(u8, u8)],
    ) -> impl std::future::Future<Output = Arc<LiveStore>> {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: spans
                        .iter()
                        .map(|(trace, span)| Span {
                            trace_id: vec![*trace; 16],
                            span_id: vec![*span; 8],
                            name: format!("op{span}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let fragments: Vec<_> = andante_ingest::split_by_trace(request)
            .iter()
            .map(andante_ingest::TraceFragment::encode)
            .collect();
        let tenant = tenant.clone();
        async move {
            let store = LiveStore::fed_by_log(
                0,
                None,
                Storage::in_memory(),
                BlockList::default(),
                LiveConfig::default(),
            );
            store.insert_logged(&tenant, fragments, 0).await;
            store
        }
    }

    #[tokio::test]
    async fn sources_are_merged_by_trace_and_one_that_does_not_answer_is_named() {
        let tenant = TenantId::new("acme").unwrap();
        // Trace 2 has a span in each store.
        let one = store_holding(&tenant, &[(1, 1), (2, 1)]).await;
        let two = store_holding(&tenant, &[(2, 2), (3, 1)]).await;
        let down = crate::live_remote::RemoteLive::new(
            "http://127.0.0.1:1",
            std::time::Duration::from_secs(2),
        )
        .unwrap();
        let sources = LiveSources(vec![one, two, Arc::new(down)]);

        let snapshot = sources.snapshot(&tenant).await;
        let held: Vec<(TraceId, usize)> = snapshot
            .value
            .iter()
            .map(|(trace_id, fragments)| (*trace_id, fragments.len()))
            .collect();
        assert_eq!(
            held,
            vec![
                (TraceId([1; 16]), 1),
                (TraceId([2; 16]), 2),
                (TraceId([3; 16]), 1)
            ]
        );
        assert_eq!(snapshot.failures.len(), 1);
        assert!(
            snapshot.failures[0].contains("live-store http://127.0.0.1:1 did not answer"),
            "{:?}",
            snapshot.failures
        );

        let found = sources
            .find(&tenant, &[TraceId([2; 16]), TraceId([9; 16])])
            .await;
        assert_eq!(found.value.len(), 1);
        assert_eq!(found.value[&TraceId([2; 16])].len(), 2);
        assert_eq!(found.failures.len(), 1);

        let tenants = sources.tenants().await;
        assert_eq!(tenants.value, vec![tenant]);
        assert_eq!(tenants.failures.len(), 1);
    }

    fn search_of(text: &str) -> LiveSearch {
        let query = andante_traceql::parse(text).unwrap();
        LiveSearch {
            text: text.to_owned(),
            condition: TraceCondition::of(&query),
            start: 0,
            end: u64::MAX,
            cpu: Arc::new(tokio::sync::Semaphore::new(1)),
        }
    }

    fn matched(found: &LiveMatches) -> Vec<TraceId> {
        let mut ids: Vec<TraceId> = found.matches.iter().map(|m| m.trace_id).collect();
        ids.sort_unstable();
        ids
    }

    #[tokio::test]
    async fn a_trace_split_between_sources_is_judged_whole() {
        let tenant = TenantId::new("acme").unwrap();
        // Trace 2 has a span in each store: neither part alone has both names.
        let one = store_holding(&tenant, &[(1, 1), (2, 1)]).await;
        let two = store_holding(&tenant, &[(2, 2), (3, 1), (3, 2)]).await;
        let sources = LiveSources(vec![one.clone(), two]);

        let found = sources
            .search(
                &tenant,
                &search_of("{ name = \"op1\" } && { name = \"op2\" }"),
            )
            .await;
        assert!(found.failures.is_empty(), "{:?}", found.failures);
        assert_eq!(
            matched(&found.value),
            vec![TraceId([2; 16]), TraceId([3; 16])]
        );
        assert_eq!(
            found.value.held,
            vec![TraceId([1; 16]), TraceId([2; 16]), TraceId([3; 16])]
        );

        // One store alone judges only what it holds.
        let alone = one
            .search(
                &tenant,
                &search_of("{ name = \"op1\" } && { name = \"op2\" }"),
            )
            .await;
        assert!(alone.value.matches.is_empty());
        assert_eq!(alone.value.held.len(), 2);

        // The window is applied where the traces are (every span here is at time 0).
        let mut later = search_of("{ }");
        later.start = 1;
        let none = sources.search(&tenant, &later).await;
        assert!(none.value.matches.is_empty());
        assert_eq!(none.value.held.len(), 3);
    }
}
