//! `/metrics`: Andante's self-metrics in the Prometheus text format. Counters that lower crates
//! keep as atomics are read at scrape time by a collector; latency histograms live here.

use std::sync::Arc;

use andante_block::blocklist::BlockList;
use andante_live::LiveStore;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

/// Metrics updated on request paths.
pub struct Metrics {
    pub registry: Registry,
    pub wal_fsync_seconds: Histogram,
    /// MCP tool calls by tool name (Tempo counts the same as `tempo_query_frontend_mcp_calls_total`).
    mcp_calls: Family<Vec<(&'static str, String)>, Counter>,
    /// Assertions firing in each tenant's latest continuous evaluation, by type and severity.
    insights_assertions: Family<Vec<(&'static str, String)>, Gauge>,
    insights_evaluations: Family<Vec<(&'static str, String)>, Counter>,
    insights_evaluation_seconds: Family<Vec<(&'static str, String)>, Counter<f64, AtomicU64>>,
    insights_fold: Family<Vec<(&'static str, String)>, Gauge>,
    /// Pushed metric samples by tenant and outcome (`stored`, `refused`).
    metric_samples: Family<Vec<(&'static str, String)>, Counter>,
    /// Jobs a querier apart ran for query-frontends, by kind.
    pub query_jobs: QueryJobs,
}

/// `andante_query_jobs_total`: jobs a querier apart ran for query-frontends, by `kind` (`scan`:
/// search stage 1 over a block or row group; `metrics`: a block folded for TraceQL metrics), so
/// an operator sees the frontend's work spread over the queriers.
#[derive(Clone, Default)]
pub struct QueryJobs(Family<Vec<(&'static str, String)>, Counter>);

impl QueryJobs {
    pub fn ran(&self, kind: &'static str) {
        self.0.get_or_create(&vec![("kind", kind.to_owned())]).inc();
    }

    pub fn count(&self, kind: &'static str) -> u64 {
        self.0.get_or_create(&vec![("kind", kind.to_owned())]).get()
    }
}

/// `andante_metric_samples_total`: pushed samples by tenant and outcome (`stored`, `refused`).
#[derive(Clone)]
pub struct SampleCounter(Family<Vec<(&'static str, String)>, Counter>);

impl SampleCounter {
    pub fn record(&self, tenant: &str, stored: usize, refused: usize) {
        for (outcome, count) in [("stored", stored), ("refused", refused)] {
            if count > 0 {
                self.0
                    .get_or_create(&vec![
                        ("tenant", tenant.to_owned()),
                        ("outcome", outcome.to_owned()),
                    ])
                    .inc_by(count as u64);
            }
        }
    }
}

/// The stores a process holds traces in besides its own, read at each scrape.
pub type HeldStores = Arc<dyn Fn() -> Vec<Arc<LiveStore>> + Send + Sync>;

struct StoreCollector {
    /// The store pushes go through (`all`) or that counts a distributor's refusals.
    live: Arc<LiveStore>,
    /// Every other store holding traces here at the time of a scrape (a block-builder's or
    /// live-store's, one per partition owned then), summed with it into the memory gauges.
    others: HeldStores,
    blocks: BlockList,
}

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreCollector")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl prometheus_client::collector::Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = &self.live.metrics;
        let load = |value: &std::sync::atomic::AtomicU64| value.load(Ordering::Relaxed);
        counter(
            &mut encoder,
            "andante_spans_received",
            "Spans accepted and written to the WAL.",
            load(&metrics.spans_received),
        )?;
        let discarded = metrics.discarded();
        {
            let sample = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "andante_discarded_spans",
                "Spans refused, by tenant and reason (rate_limited, trace_too_large, live_traces_exceeded, invalid).",
                None,
                sample.metric_type(),
            )?;
            for (tenant, reason, count) in discarded {
                let labels = [("tenant", tenant), ("reason", reason.as_str().to_owned())];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        counter(
            &mut encoder,
            "andante_traces_cut",
            "Traces cut from the live store as complete.",
            load(&metrics.traces_cut),
        )?;
        counter(
            &mut encoder,
            "andante_blocks_flushed",
            "Blocks written from live traces.",
            load(&metrics.blocks_flushed),
        )?;
        counter(
            &mut encoder,
            "andante_block_flush_failures",
            "Block writes that failed and will be retried.",
            load(&metrics.block_flush_failures),
        )?;
        counter(
            &mut encoder,
            "andante_wal_segments_removed",
            "WAL segments deleted after their traces reached blocks.",
            load(&metrics.wal_segments_removed),
        )?;
        gauge(
            &mut encoder,
            "andante_wal_replayed_records",
            "WAL records replayed at the last start.",
            load(&metrics.wal_replayed_records) as i64,
        )?;
        counter(
            &mut encoder,
            "andante_wal_corrupt_regions",
            "Damaged WAL regions skipped by replay at this start; each held at least one record.",
            load(&metrics.wal_corrupt_regions),
        )?;
        counter(
            &mut encoder,
            "andante_wal_corrupt_bytes",
            "Bytes of damaged WAL regions skipped by replay at this start.",
            load(&metrics.wal_corrupt_bytes),
        )?;
        counter(
            &mut encoder,
            "andante_wal_truncated_bytes",
            "Bytes of torn WAL segment tails cut off by replay at this start.",
            load(&metrics.wal_truncated_bytes),
        )?;
        let (live_traces, live_bytes) = std::iter::once(self.live.clone())
            .chain((self.others)())
            .map(|store| store.memory_totals())
            .fold((0, 0), |(traces, bytes), (t, b)| (traces + t, bytes + b));
        gauge(
            &mut encoder,
            "andante_live_traces",
            "Traces still receiving spans.",
            live_traces as i64,
        )?;
        gauge(
            &mut encoder,
            "andante_live_bytes",
            "Encoded bytes of traces held in memory.",
            live_bytes as i64,
        )?;
        if let Some(wal) = self.live.wal() {
            gauge(
                &mut encoder,
                "andante_wal_bytes",
                "Bytes of WAL segments on disk.",
                wal.disk_bytes() as i64,
            )?;
        }
        let (blocks, spans, bytes) = self.blocks.totals();
        gauge(
            &mut encoder,
            "andante_blocks",
            "Blocks in the block list.",
            blocks as i64,
        )?;
        gauge(
            &mut encoder,
            "andante_block_spans",
            "Spans stored in blocks.",
            spans as i64,
        )?;
        gauge(
            &mut encoder,
            "andante_block_bytes",
            "Bytes of block data and indexes.",
            bytes as i64,
        )?;
        let corruption = &self.blocks.corruption;
        counter(
            &mut encoder,
            "andante_blocks_quarantined",
            "Blocks taken out of service because their data could not be decoded (kept in storage with quarantined.json).",
            load(&corruption.quarantined_blocks),
        )?;
        counter(
            &mut encoder,
            "andante_block_indexes_rebuilt",
            "Block indexes found damaged or missing and rebuilt from the block's data.",
            load(&corruption.rebuilt_indexes),
        )?;
        Ok(())
    }
}

/// The generator's, the series store's and remote-write's counters, read at scrape time.
struct GeneratorCollector {
    generator: Arc<andante_generator::Generator>,
    store: Arc<andante_tsdb::Store>,
    remote_write: Option<Arc<andante_generator::remote_write::RemoteWriteCounters>>,
}

impl std::fmt::Debug for GeneratorCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeneratorCollector")
    }
}

impl prometheus_client::collector::Collector for GeneratorCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.generator.counts();
        counter(
            &mut encoder,
            "andante_generator_spans_received",
            "Spans the metrics generator processed.",
            counts.spans_received,
        )?;
        {
            let sample = ConstCounter::new(0u64);
            let mut family = encoder.encode_descriptor(
                "andante_generator_spans_discarded",
                "Spans not counted in generated metrics, by reason (outside_slack: ended too far from now; queue_full: the generator fell behind).",
                None,
                sample.metric_type(),
            )?;
            for (reason, count) in [
                ("outside_slack", counts.spans_outside_slack),
                ("queue_full", counts.spans_dropped_queue_full),
            ] {
                ConstCounter::new(count).encode(family.encode_family(&[("reason", reason)])?)?;
            }
        }
        gauge(
            &mut encoder,
            "andante_generator_active_series",
            "Generated series currently written, all tenants.",
            counts.registry.active_series as i64,
        )?;
        counter(
            &mut encoder,
            "andante_generator_series_overflowed",
            "New series folded into `metric_overflow=\"true\"` by the active-series limit.",
            counts.registry.series_overflowed,
        )?;
        counter(
            &mut encoder,
            "andante_generator_label_values_overflowed",
            "Label values replaced by `__cardinality_overflow__`.",
            counts.registry.label_values_overflowed,
        )?;
        let graphs = counts.service_graphs;
        gauge(
            &mut encoder,
            "andante_generator_service_graph_pending_edges",
            "Service-graph edges waiting for their other half.",
            graphs.pending_edges as i64,
        )?;
        counter(
            &mut encoder,
            "andante_generator_service_graph_edges",
            "Service-graph edges recorded (paired, database and virtual).",
            graphs.completed_edges,
        )?;
        counter(
            &mut encoder,
            "andante_generator_service_graph_virtual_edges",
            "Edges completed with a virtual node (user or uninstrumented peer).",
            graphs.virtual_edges,
        )?;
        counter(
            &mut encoder,
            "andante_generator_service_graph_expired_edges",
            "Edge halves that expired unpaired and without a peer attribute.",
            graphs.expired_edges,
        )?;
        counter(
            &mut encoder,
            "andante_generator_service_graph_dropped_spans",
            "Spans refused because the edge store was full.",
            graphs.dropped_spans,
        )?;
        let (series, bytes) = self.store.totals();
        let store = &self.store.counters;
        gauge(
            &mut encoder,
            "andante_metrics_store_series",
            "Series held for the Prometheus read API.",
            series as i64,
        )?;
        gauge(
            &mut encoder,
            "andante_metrics_store_bytes",
            "Bytes of samples held for the Prometheus read API.",
            bytes as i64,
        )?;
        counter(
            &mut encoder,
            "andante_metrics_store_samples_appended",
            "Samples stored for the read API.",
            store.samples_appended.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "andante_metrics_store_samples_out_of_order",
            "Samples refused as out of order or duplicate.",
            store.samples_out_of_order.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "andante_metrics_store_series_refused",
            "New series refused by the per-tenant series cap.",
            store.series_refused.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "andante_metrics_store_blocks_written",
            "Metric blocks written to storage from closed ranges.",
            store.blocks_written.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "andante_metrics_store_exemplars_appended",
            "Exemplars stored for /api/v1/query_exemplars.",
            store.exemplars_appended.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "andante_metrics_store_exemplars_refused",
            "Exemplars not stored: out of order, duplicate, label set too long, or storage off.",
            store.exemplars_refused.load(Ordering::Relaxed),
        )?;
        if let Some(remote) = &self.remote_write {
            counter(
                &mut encoder,
                "andante_remote_write_samples_sent",
                "Samples accepted by remote-write receivers.",
                remote.samples_sent.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "andante_remote_write_samples_failed",
                "Samples a receiver refused for good (4xx).",
                remote.samples_failed.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "andante_remote_write_samples_dropped",
                "Samples dropped because a remote-write queue was full.",
                remote.samples_dropped_queue_full.load(Ordering::Relaxed),
            )?;
            counter(
                &mut encoder,
                "andante_remote_write_retries",
                "Remote-write attempts that failed and were retried.",
                remote.retries.load(Ordering::Relaxed),
            )?;
        }
        Ok(())
    }
}

/// The rule manager's and the Alertmanager notifier's counters, read at scrape time.
struct RulesCollector {
    rules: Arc<andante_rules::Manager>,
    notifier: Arc<andante_rules::Notifier>,
}

impl std::fmt::Debug for RulesCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RulesCollector")
    }
}

fn gauge_f64(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl prometheus_client::collector::Collector for RulesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let rules = &self.rules.stats;
        let notify = &self.notifier.stats;
        gauge(
            &mut encoder,
            "andante_rule_groups",
            "Rule groups loaded.",
            self.rules.group_count() as i64,
        )?;
        gauge(
            &mut encoder,
            "andante_rule_files_invalid",
            "Rule and SLO files (or SLOs in them) skipped at start-up because they did not validate (the log says why).",
            load(&rules.invalid_files) as i64,
        )?;
        counter(
            &mut encoder,
            "andante_rule_group_evaluations",
            "Rule group evaluations run.",
            load(&rules.evaluations),
        )?;
        counter(
            &mut encoder,
            "andante_rule_evaluation_failures",
            "Rule evaluations that failed (the rule's `lastError` says why).",
            load(&rules.evaluation_failures),
        )?;
        counter(
            &mut encoder,
            "andante_rule_group_iterations_missed",
            "Group evaluations skipped because the previous one ran past the next scheduled time.",
            load(&rules.missed_iterations),
        )?;
        gauge_f64(
            &mut encoder,
            "andante_rule_evaluation_lag_seconds",
            "How late the latest group evaluation started after its scheduled time.",
            load(&rules.last_lag_micros) as f64 / 1e6,
        )?;
        {
            let metric = ConstCounter::new(load(&rules.evaluation_micros) as f64 / 1e6);
            metric.encode(encoder.encode_descriptor(
                "andante_rule_evaluation_seconds",
                "Time spent evaluating rule groups.",
                None,
                metric.metric_type(),
            )?)?;
        }
        counter(
            &mut encoder,
            "andante_notifications_sent",
            "Alerts delivered to Alertmanager (counted once per Alertmanager).",
            load(&notify.sent),
        )?;
        counter(
            &mut encoder,
            "andante_notifications_dropped",
            "Alerts dropped: the queue was full, or every attempt to deliver them failed.",
            load(&notify.dropped),
        )?;
        counter(
            &mut encoder,
            "andante_notifications_errors",
            "Failed attempts to deliver a batch of alerts.",
            load(&notify.errors),
        )?;
        gauge(
            &mut encoder,
            "andante_notifications_queue_length",
            "Alerts waiting to be sent to Alertmanager.",
            load(&notify.queue_length) as i64,
        )?;
        Ok(())
    }
}

impl Metrics {
    /// Adds the collector for rule evaluation and notifications.
    pub fn register_rules(
        &mut self,
        rules: Arc<andante_rules::Manager>,
        notifier: Arc<andante_rules::Notifier>,
    ) {
        self.registry
            .register_collector(Box::new(RulesCollector { rules, notifier }));
    }

    /// Adds the collector for the metrics generator, its series store and remote-write.
    pub fn register_generator(
        &mut self,
        generator: Arc<andante_generator::Generator>,
        store: Arc<andante_tsdb::Store>,
        remote_write: Option<Arc<andante_generator::remote_write::RemoteWriteCounters>>,
    ) {
        self.registry
            .register_collector(Box::new(GeneratorCollector {
                generator,
                store,
                remote_write,
            }));
    }

    pub fn new() -> Metrics {
        // prometheus_client ends every HELP text with a period of its own: none here.
        let mut registry = Registry::default();
        let wal_fsync_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "andante_wal_fsync_seconds",
            "Latency of WAL fsyncs (one per group commit)",
            wal_fsync_seconds.clone(),
        );
        let mcp_calls = Family::default();
        registry.register(
            "andante_mcp_calls",
            "MCP tool calls, by tool",
            mcp_calls.clone(),
        );
        let insights_assertions = Family::default();
        registry.register(
            "andante_insights_assertions",
            "Assertions firing in the latest continuous insights evaluation of each tenant",
            insights_assertions.clone(),
        );
        let insights_evaluations = Family::default();
        registry.register(
            "andante_insights_evaluations",
            "Continuous insights evaluations, per tenant",
            insights_evaluations.clone(),
        );
        let insights_evaluation_seconds = Family::default();
        registry.register(
            "andante_insights_evaluation_seconds",
            "Time spent in continuous insights evaluations (reading and analysing), per tenant",
            insights_evaluation_seconds.clone(),
        );
        let insights_fold = Family::default();
        registry.register(
            "andante_insights_fold_size",
            "What continuous insights hold per tenant after its latest evaluation: `part` is pending_spans (waiting for their trace to settle), samples, cells, entities or heap_bytes (an estimate of the memory held)",
            insights_fold.clone(),
        );
        let metric_samples = Family::default();
        registry.register(
            "andante_metric_samples_received",
            "Metric samples pushed (remote-write, OTLP metrics), per tenant and outcome: stored or refused",
            metric_samples.clone(),
        );
        let query_jobs = QueryJobs::default();
        // Both kinds show from the start, at zero.
        for kind in ["scan", "metrics"] {
            drop(query_jobs.0.get_or_create(&vec![("kind", kind.to_owned())]));
        }
        registry.register(
            "andante_query_jobs",
            "Jobs this querier ran for query-frontends, by kind: scan (search stage 1 over a block or row group) or metrics (a block folded for TraceQL metrics)",
            query_jobs.0.clone(),
        );
        Metrics {
            registry,
            metric_samples,
            query_jobs,
            wal_fsync_seconds,
            mcp_calls,
            insights_assertions,
            insights_evaluations,
            insights_evaluation_seconds,
            insights_fold,
        }
    }

    /// Records one continuous insights evaluation of `tenant`: its assertion counts by
    /// (type, severity) and how long it took.
    pub fn insights_evaluated(
        &self,
        tenant: &str,
        counts: &[(&'static str, &'static str, i64)],
        took: std::time::Duration,
        size: andante_insights::FoldSize,
    ) {
        for (part, value) in [
            ("pending_spans", size.pending_spans),
            ("samples", size.samples),
            ("cells", size.cells),
            ("entities", size.entities),
            ("heap_bytes", size.heap_bytes),
        ] {
            self.insights_fold
                .get_or_create(&vec![
                    ("tenant", tenant.to_owned()),
                    ("part", part.to_owned()),
                ])
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
        for (kind, severity, count) in counts {
            self.insights_assertions
                .get_or_create(&vec![
                    ("tenant", tenant.to_owned()),
                    ("type", (*kind).to_owned()),
                    ("severity", (*severity).to_owned()),
                ])
                .set(*count);
        }
        let tenant = vec![("tenant", tenant.to_owned())];
        self.insights_evaluations.get_or_create(&tenant).inc();
        self.insights_evaluation_seconds
            .get_or_create(&tenant)
            .inc_by(took.as_secs_f64());
    }

    /// Counts the samples of one metrics push: stored, and refused (at decode or by the store).
    /// The pushed-sample counter, for the sample sink.
    pub fn sample_counter(&self) -> SampleCounter {
        SampleCounter(self.metric_samples.clone())
    }

    /// Counts one call of an MCP tool (only tools that exist: names are a bounded set).
    pub fn mcp_call(&self, tool: &str) {
        self.mcp_calls
            .get_or_create(&vec![("tool", tool.to_owned())])
            .inc();
    }

    /// Adds the collector that reads the live store and block list at scrape time.
    /// `live` is the store pushes go through; `others` (a block-builder's or live-store's) are
    /// added to its memory gauges.
    pub fn register_store(&mut self, live: Arc<LiveStore>, others: HeldStores, blocks: BlockList) {
        self.registry.register_collector(Box::new(StoreCollector {
            live,
            others,
            blocks,
        }));
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            tracing::error!("failed to encode metrics");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
