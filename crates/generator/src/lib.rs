//! The metrics generator: turns spans into Tempo's span-metrics and service-graph series.
//!
//! Spans arrive from the live store after they are durable (`Generator::push`, called on the
//! generator's own thread, never on the acknowledgement path). Each tenant has its own
//! [`Registry`] and processors. Every collection interval `Generator::collect` expires waiting
//! service-graph edges and returns each tenant's samples, which the server hands to the
//! in-process series store and to remote-write.

mod attributes;
pub mod feed;
pub mod filter;
pub mod registry;
pub mod remote_write;
pub mod servicegraphs;
pub mod spanmetrics;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::TenantId;

use parking_lot::Mutex;

pub use filter::SpanFilter;
pub use registry::{Collected, Registry, RegistryCounts, RegistryLimits};
pub use servicegraphs::{ServiceGraphCounts, ServiceGraphs, ServiceGraphsConfig};
pub use spanmetrics::{SpanMetrics, SpanMetricsConfig};

#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    pub span_metrics: Option<SpanMetricsConfig>,
    pub service_graphs: Option<ServiceGraphsConfig>,
    pub limits: RegistryLimits,
    /// Spans that ended more than this long before (or after) now are not counted: late data
    /// would be attributed to the wrong interval (Tempo's `metrics_ingestion_time_range_slack`).
    pub ingestion_slack_ms: i64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            span_metrics: Some(SpanMetricsConfig::default()),
            service_graphs: Some(ServiceGraphsConfig::default()),
            limits: RegistryLimits::default(),
            ingestion_slack_ms: 30_000,
        }
    }
}

struct TenantGenerator {
    registry: Registry,
    span_metrics: Option<SpanMetrics>,
    service_graphs: Option<ServiceGraphs>,
}

impl TenantGenerator {
    fn new(config: &GeneratorConfig) -> TenantGenerator {
        let mut registry = Registry::new(config.limits.clone());
        let span_metrics = config
            .span_metrics
            .clone()
            .map(|c| SpanMetrics::new(c, &mut registry));
        let service_graphs = config
            .service_graphs
            .clone()
            .map(|c| ServiceGraphs::new(c, &mut registry));
        TenantGenerator {
            registry,
            span_metrics,
            service_graphs,
        }
    }
}

/// Self-metrics of the generator, summed over tenants.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GeneratorCounts {
    pub spans_received: u64,
    pub spans_outside_slack: u64,
    pub spans_dropped_queue_full: u64,
    pub registry: RegistryCounts,
    pub service_graphs: ServiceGraphCounts,
}

pub struct Generator {
    config: GeneratorConfig,
    tenants: Mutex<HashMap<TenantId, TenantGenerator>>,
    spans_received: AtomicU64,
    spans_outside_slack: AtomicU64,
    pub spans_dropped_queue_full: AtomicU64,
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Generator {
        Generator {
            config,
            tenants: Mutex::default(),
            spans_received: AtomicU64::new(0),
            spans_outside_slack: AtomicU64::new(0),
            spans_dropped_queue_full: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.span_metrics.is_some() || self.config.service_graphs.is_some()
    }

    /// Runs both processors over a batch of one tenant's spans. `now_ms` is the wall clock.
    pub fn push(&self, tenant: &TenantId, batches: &[ResourceSpans], now_ms: i64) {
        let mut tenants = self.tenants.lock();
        let state = tenants
            .entry(tenant.clone())
            .or_insert_with(|| TenantGenerator::new(&self.config));
        let slack_nanos = self.config.ingestion_slack_ms.max(0) as u64 * 1_000_000;
        let now_nanos = now_ms.max(0) as u64 * 1_000_000;
        for batch in batches {
            let spans: usize = batch.scope_spans.iter().map(|s| s.spans.len()).sum();
            self.spans_received
                .fetch_add(spans as u64, Ordering::Relaxed);
            let in_range =
                |end: u64| end + slack_nanos >= now_nanos && end <= now_nanos + slack_nanos;
            let late = batch
                .scope_spans
                .iter()
                .flat_map(|s| &s.spans)
                .filter(|s| !in_range(s.end_time_unix_nano))
                .count();
            let filtered;
            let batch = if late == 0 {
                batch
            } else {
                self.spans_outside_slack
                    .fetch_add(late as u64, Ordering::Relaxed);
                let mut copy = batch.clone();
                for scope in &mut copy.scope_spans {
                    scope.spans.retain(|s| in_range(s.end_time_unix_nano));
                }
                filtered = copy;
                &filtered
            };
            if let Some(processor) = state.span_metrics.as_mut() {
                processor.push(&mut state.registry, batch, now_ms);
            }
            if let Some(processor) = state.service_graphs.as_mut() {
                processor.push(&mut state.registry, batch, now_ms);
            }
        }
    }

    /// Expires service-graph edges and returns every tenant's samples at `now_ms`, with the
    /// exemplars recorded since the last collection.
    pub fn collect(&self, now_ms: i64) -> Vec<(TenantId, Collected)> {
        let mut tenants = self.tenants.lock();
        let mut out = Vec::with_capacity(tenants.len());
        for (tenant, state) in tenants.iter_mut() {
            if let Some(processor) = state.service_graphs.as_mut() {
                processor.expire(&mut state.registry, now_ms);
            }
            out.push((tenant.clone(), state.registry.collect(now_ms)));
        }
        out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        out
    }

    pub fn counts(&self) -> GeneratorCounts {
        let tenants = self.tenants.lock();
        let mut counts = GeneratorCounts {
            spans_received: self.spans_received.load(Ordering::Relaxed),
            spans_outside_slack: self.spans_outside_slack.load(Ordering::Relaxed),
            spans_dropped_queue_full: self.spans_dropped_queue_full.load(Ordering::Relaxed),
            ..GeneratorCounts::default()
        };
        for state in tenants.values() {
            let registry = state.registry.counts();
            counts.registry.active_series += registry.active_series;
            counts.registry.series_overflowed += registry.series_overflowed;
            counts.registry.label_values_overflowed += registry.label_values_overflowed;
            counts.registry.series_removed_stale += registry.series_removed_stale;
            if let Some(graphs) = &state.service_graphs {
                let graph = graphs.counts();
                counts.service_graphs.completed_edges += graph.completed_edges;
                counts.service_graphs.virtual_edges += graph.virtual_edges;
                counts.service_graphs.expired_edges += graph.expired_edges;
                counts.service_graphs.dropped_spans += graph.dropped_spans;
                counts.service_graphs.pending_edges += graph.pending_edges;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests;
