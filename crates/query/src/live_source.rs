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
        covered: None,
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

/// A read of recent data, the sources that could not answer it, and which partitions of the
/// span topic the answer covers.
#[derive(Debug, Default)]
pub struct LiveRead<T> {
    pub value: T,
    pub failures: Vec<String>,
    /// `None` from a source that is not partitioned (`all`'s own store) or did not answer.
    pub covered: Option<Covered>,
}

impl<T: Default> LiveRead<T> {
    /// A source's answer, or nothing and its failure.
    pub fn of(answer: Result<T, String>) -> LiveRead<T> {
        match answer {
            Ok(value) => LiveRead {
                value,
                failures: Vec::new(),
                covered: None,
            },
            Err(failure) => LiveRead {
                value: T::default(),
                failures: vec![failure],
                covered: None,
            },
        }
    }
}

/// The partitions of the span topic a live-store held when it answered, of how many. Sent in
/// the `X-Andante-Partitions` header as `<of>:<p>,<p>,...`. When the answers that arrived cover
/// every partition, a live-store that did not answer is no loss (its partitions have moved to
/// the others), and the read is whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Covered {
    pub of: u32,
    pub partitions: Vec<u32>,
}

pub const COVERED_HEADER: &str = "x-andante-partitions";

impl Covered {
    pub fn to_header(&self) -> String {
        let list: Vec<String> = self.partitions.iter().map(u32::to_string).collect();
        format!("{}:{}", self.of, list.join(","))
    }

    /// The header's value; `None` when it is not one (then the answer counts as covering
    /// nothing, which only ever keeps a failure).
    pub fn parse(text: &str) -> Option<Covered> {
        let (of, list) = text.split_once(':')?;
        let of: u32 = of.trim().parse().ok()?;
        let mut partitions = Vec::new();
        for item in list.split(',').filter(|item| !item.trim().is_empty()) {
            let partition: u32 = item.trim().parse().ok()?;
            if partition >= of {
                return None;
            }
            partitions.push(partition);
        }
        partitions.sort_unstable();
        partitions.dedup();
        Some(Covered { of, partitions })
    }

    /// The partitions both cover (a read in several requests covers what all of them did).
    pub fn intersect(&self, other: &Covered) -> Covered {
        Covered {
            of: self.of.max(other.of),
            partitions: self
                .partitions
                .iter()
                .copied()
                .filter(|p| other.partitions.contains(p))
                .collect(),
        }
    }
}

/// Merges several sources' failures and coverage: the union of what the answers covered, and
/// the failures, dropped when that union is every partition.
fn settle(failures: Vec<String>, covers: Vec<Option<Covered>>) -> (Vec<String>, Option<Covered>) {
    settle_needing(failures, covers, &|of| (0..of).collect())
}

/// `settle` for a read that needs only the partitions `needed(of)` (a lookup by trace ID needs
/// those of its IDs): a silent live-store is forgiven, and the read whole, when the answers
/// covered those.
fn settle_needing(
    failures: Vec<String>,
    covers: Vec<Option<Covered>>,
    needed: &dyn Fn(u32) -> Vec<u32>,
) -> (Vec<String>, Option<Covered>) {
    let covers: Vec<Covered> = covers.into_iter().flatten().collect();
    if covers.is_empty() {
        return (failures, None);
    }
    let of = covers.iter().map(|covered| covered.of).max().unwrap_or(0);
    let mut partitions: Vec<u32> = covers
        .iter()
        .flat_map(|covered| covered.partitions.iter().copied())
        .collect();
    partitions.sort_unstable();
    partitions.dedup();
    let mut missing: Vec<u32> = needed(of)
        .into_iter()
        .filter(|p| partitions.binary_search(p).is_err())
        .collect();
    missing.sort_unstable();
    missing.dedup();
    let whole = of > 0 && missing.is_empty();
    if whole && !failures.is_empty() {
        tracing::debug!(
            ?failures,
            "every partition needed answered by the other live-stores"
        );
        return (Vec::new(), Some(Covered { of, partitions }));
    }
    let mut failures = failures;
    if !whole {
        // While partitions move (one owner has let go, the next has not started), nobody may
        // hold a partition's recent traces: say so rather than answer short.
        let missing: Vec<String> = missing.iter().map(u32::to_string).collect();
        failures.push(format!(
            "no live-store holds partition(s) {} of {of} (their owners are changing or down)",
            missing.join(",")
        ));
    }
    (failures, Some(Covered { of, partitions }))
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
                covered: None,
            }
        })
    }

    fn snapshot<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, LiveRead<LiveTraces>> {
        let value = LiveStore::snapshot(self, tenant);
        Box::pin(async move {
            LiveRead {
                value,
                failures: Vec::new(),
                covered: None,
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
                covered: None,
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

/// The stores held at the time of each read, as one source, and the partitions they are: a
/// live-store's, whose partitions (one store each) come and go with its consumer group.
pub type HeldNow = Arc<dyn Fn() -> (Vec<Arc<LiveStore>>, Covered) + Send + Sync>;

pub struct StoresNow(pub HeldNow);

impl StoresNow {
    /// Reads the stores held now; the answer covers their partitions.
    async fn read<T, F, Fut>(&self, read: F) -> LiveRead<T>
    where
        F: FnOnce(LiveSources) -> Fut,
        Fut: std::future::Future<Output = LiveRead<T>>,
    {
        let (stores, covered) = (self.0)();
        let sources = LiveSources(
            stores
                .into_iter()
                .map(|store| store as Arc<dyn LiveSource>)
                .collect(),
        );
        let mut out = read(sources).await;
        // A read that failed here covers nothing: the caller must not take it as whole.
        out.covered = out.failures.is_empty().then_some(covered);
        out
    }
}

impl LiveSource for StoresNow {
    fn tenants(&self) -> BoxFuture<'_, LiveRead<Vec<TenantId>>> {
        Box::pin(self.read(|sources| async move { sources.tenants().await }))
    }

    fn snapshot<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, LiveRead<LiveTraces>> {
        Box::pin(self.read(move |sources| async move { sources.snapshot(tenant).await }))
    }

    fn find<'a>(
        &'a self,
        tenant: &'a TenantId,
        trace_ids: &'a [TraceId],
    ) -> BoxFuture<'a, LiveRead<HashMap<TraceId, Vec<Bytes>>>> {
        Box::pin(self.read(move |sources| async move { sources.find(tenant, trace_ids).await }))
    }

    fn search<'a>(
        &'a self,
        tenant: &'a TenantId,
        request: &'a LiveSearch,
    ) -> BoxFuture<'a, LiveRead<LiveMatches>> {
        Box::pin(self.read(move |sources| async move { sources.search(tenant, request).await }))
    }
}

/// Several sources read as one (the live-stores of a split deployment, each owning some
/// partitions), traces merged by ID: a trace's records share a partition, but while ownership
/// moves (a member of the consumer group joined or left) two stores may each hold a part of
/// one. A source that did not answer is forgiven when the others' answers covered every
/// partition (`settle`).
pub struct LiveSources(pub Vec<Arc<dyn LiveSource>>);

impl LiveSource for LiveSources {
    fn tenants(&self) -> BoxFuture<'_, LiveRead<Vec<TenantId>>> {
        Box::pin(async move {
            let reads = futures::future::join_all(self.0.iter().map(|s| s.tenants())).await;
            let mut out = LiveRead::<Vec<TenantId>>::default();
            let mut covers = Vec::new();
            for read in reads {
                out.value.extend(read.value);
                out.failures.extend(read.failures);
                covers.push(read.covered);
            }
            out.value.sort();
            out.value.dedup();
            (out.failures, out.covered) = settle(out.failures, covers);
            out
        })
    }

    fn snapshot<'a>(&'a self, tenant: &'a TenantId) -> BoxFuture<'a, LiveRead<LiveTraces>> {
        Box::pin(async move {
            let reads = futures::future::join_all(self.0.iter().map(|s| s.snapshot(tenant))).await;
            let mut merged: std::collections::BTreeMap<TraceId, Vec<Bytes>> = Default::default();
            let (mut failures, mut covers) = (Vec::new(), Vec::new());
            for read in reads {
                for (trace_id, fragments) in read.value {
                    merged.entry(trace_id).or_default().extend(fragments);
                }
                failures.extend(read.failures);
                covers.push(read.covered);
            }
            let (failures, covered) = settle(failures, covers);
            LiveRead {
                value: merged.into_iter().collect(),
                failures,
                covered,
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
            let mut covers = Vec::new();
            for read in reads {
                for (trace_id, fragments) in read.value {
                    out.value.entry(trace_id).or_default().extend(fragments);
                }
                out.failures.extend(read.failures);
                covers.push(read.covered);
            }
            // A trace's records are all on its own partition.
            let needed = |of: u32| {
                trace_ids
                    .iter()
                    .map(|id| andante_model::partition::partition_of(tenant.as_str(), id, of))
                    .collect()
            };
            (out.failures, out.covered) = settle_needing(out.failures, covers, &needed);
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
            let mut covers = Vec::new();
            for read in reads {
                out.value.spans += read.value.spans;
                for trace_id in read.value.held {
                    *holders.entry(trace_id).or_insert(0) += 1;
                }
                out.value.matches.extend(read.value.matches);
                out.failures.extend(read.failures);
                covers.push(read.covered);
            }
            (out.failures, out.covered) = settle(out.failures, covers);
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
        let fragments = andante_ingest::encode_by_trace(request);
        let tenant = tenant.clone();
        async move {
            let store = LiveStore::fed_by_log(
                "log/test/0".to_owned(),
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

    fn held_now(store: Arc<LiveStore>, partitions: &[u32]) -> Arc<dyn LiveSource> {
        let partitions = partitions.to_vec();
        Arc::new(StoresNow(Arc::new(move || {
            let covered = Covered {
                of: 4,
                partitions: partitions.clone(),
            };
            (vec![store.clone()], covered)
        })))
    }

    #[tokio::test]
    async fn a_live_store_that_does_not_answer_is_forgiven_only_when_the_others_cover_every_partition(
    ) {
        let tenant = TenantId::new("acme").unwrap();
        let one = store_holding(&tenant, &[(1, 1)]).await;
        let two = store_holding(&tenant, &[(2, 1)]).await;
        let down = || -> Arc<dyn LiveSource> {
            Arc::new(
                crate::live_remote::RemoteLive::new(
                    "http://127.0.0.1:1",
                    std::time::Duration::from_secs(2),
                )
                .unwrap(),
            )
        };
        // The dead live-store's partitions (2 and 3) were taken over by the second one.
        let whole = LiveSources(vec![
            held_now(one.clone(), &[0, 1]),
            held_now(two.clone(), &[2, 3]),
            down(),
        ]);
        let ids = [TraceId([1; 16]), TraceId([2; 16])];
        let found = whole.find(&tenant, &ids).await;
        assert_eq!(found.value.len(), 2);
        assert!(found.failures.is_empty(), "{:?}", found.failures);
        assert_eq!(found.covered.unwrap().partitions, vec![0, 1, 2, 3]);
        let snapshot = whole.snapshot(&tenant).await;
        assert!(snapshot.failures.is_empty(), "{:?}", snapshot.failures);
        let matches = whole.search(&tenant, &search_of("{ }")).await;
        assert!(matches.failures.is_empty(), "{:?}", matches.failures);
        assert!(whole.tenants().await.failures.is_empty());
        // Not yet taken over: partition 3 is nobody's, so the answer stays partial.
        let short = LiveSources(vec![
            held_now(one.clone(), &[0, 1]),
            held_now(two.clone(), &[2]),
            down(),
        ]);
        let snapshot = short.snapshot(&tenant).await;
        assert_eq!(snapshot.failures.len(), 2, "{:?}", snapshot.failures);
        assert!(
            snapshot.failures[1].contains("partition(s) 3 of 4"),
            "{:?}",
            snapshot.failures
        );
        assert_eq!(snapshot.covered.unwrap().partitions, vec![0, 1, 2]);
        // A lookup by ID needs only its IDs' partitions: whole unless one of them is 3.
        let partition = |id: &TraceId| andante_model::partition::partition_of("acme", id, 4);
        let in_partition = |wanted: u32| {
            (1..=255u8)
                .map(|b| TraceId([b; 16]))
                .find(|id| partition(id) == wanted)
                .expect("an ID in each partition")
        };
        let elsewhere: Vec<TraceId> = (0..3).map(in_partition).collect();
        let found = short.find(&tenant, &elsewhere).await;
        assert!(found.failures.is_empty(), "{:?}", found.failures);
        let found = short.find(&tenant, &[elsewhere[0], in_partition(3)]).await;
        assert_eq!(found.failures.len(), 2, "{:?}", found.failures);
        assert!(
            found.failures[1].contains("partition(s) 3 of 4"),
            "{:?}",
            found.failures
        );
        // Every live-store answered, but a partition was between owners: partial too.
        let moving = LiveSources(vec![held_now(one, &[0, 1]), held_now(two, &[3])]);
        let matches = moving.search(&tenant, &search_of("{ }")).await;
        assert_eq!(matches.failures.len(), 1, "{:?}", matches.failures);
        assert!(
            matches.failures[0].contains("partition(s) 2 of 4"),
            "{:?}",
            matches.failures
        );
        let found = moving.find(&tenant, &[in_partition(2)]).await;
        assert_eq!(found.failures.len(), 1, "{:?}", found.failures);
        assert!(moving
            .find(&tenant, &[in_partition(3)])
            .await
            .failures
            .is_empty());
    }

    #[test]
    fn the_partitions_header_round_trips_and_refuses_nonsense() {
        let covered = Covered {
            of: 8,
            partitions: vec![1, 5],
        };
        assert_eq!(covered.to_header(), "8:1,5");
        assert_eq!(Covered::parse("8:1,5"), Some(covered));
        assert_eq!(
            Covered::parse("4:"),
            Some(Covered {
                of: 4,
                partitions: vec![]
            })
        );
        for bad in ["", "4", "4:9", "x:1", "4:1,,y", "4:-1"] {
            assert_eq!(Covered::parse(bad), None, "{bad}");
        }
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
