//! Which components a process runs, by role (`target`): one table, so adding a role is adding it
//! to the rows of the components it runs. `all` runs every row.
//!
//! In `all` one process runs every row, with its own WAL. Apart, the roles meet only in the
//! Kafka-compatible log and the shared storage: distributors produce to the log, block-builders
//! consume it into blocks, live-stores consume it into memory until the builders have written
//! it, generators consume it into span metrics and service graphs (sent by remote-write),
//! queriers read the blocks and ask the live-stores, compactors maintain the blocks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use andante_block::blocklist::BlockList;
use andante_block::compaction::{apply_retention, compact_once, CompactionOptions, LeaseHolder};
use andante_storage::{lease, Storage};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::config::{Config, Role};

/// A part of `serve` that some roles start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The OTLP and Zipkin receivers: into the WAL-backed live store in `all`, into the log
    /// apart.
    Receive,
    /// Consuming the log's partitions into blocks (in `all`, the live store cuts its own).
    BuildBlocks,
    /// Consuming the log's partitions into memory for queriers' recent-data reads (in `all`, the
    /// live store answers its own queries).
    ServeLive,
    /// The query API, UI, metrics store, rules and insights.
    Query,
    /// Span metrics and service graphs.
    Generator,
    /// Re-reading the block list from storage.
    BlockListPoll,
    /// Merging blocks, under a lease per (tenant, window).
    Compaction,
    /// Deleting blocks past retention.
    Retention,
}

use Role::{BlockBuilder, Compactor, Distributor, Generator, LiveStore, Querier, QueryFrontend};

/// Every component and the roles that run it.
pub const COMPONENTS: [(Component, &[Role]); 8] = [
    (Component::Receive, &[Distributor]),
    (Component::BuildBlocks, &[BlockBuilder]),
    (Component::ServeLive, &[LiveStore]),
    (Component::Query, &[Querier, QueryFrontend]),
    (Component::Generator, &[Generator]),
    // Every role reads or writes blocks, so every role keeps its list current.
    (Component::BlockListPoll, &Role::EVERY),
    (Component::Compaction, &[Compactor]),
    (Component::Retention, &[Compactor]),
];

/// Whether a process with `roles` runs `component`.
pub fn runs(roles: &[Role], component: Component) -> bool {
    roles.contains(&Role::All)
        || COMPONENTS
            .iter()
            .any(|(c, owners)| *c == component && roles.iter().any(|role| owners.contains(role)))
}

/// How long a compaction lease lasts: well past the time one compaction of
/// `compaction.max_input_bytes` takes, so a second compactor only joins one that stalled.
const COMPACTION_LEASE_TTL: Duration = Duration::from_secs(600);

/// How long after its expiry an unused lease is removed (by the retention loop).
const LEASE_GRACE: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// Counters of block maintenance, in whichever registry the process serves at `/metrics`.
#[derive(Clone, Default)]
pub struct MaintenanceMetrics {
    compactions: Family<ResultLabel, Counter>,
    retention_deleted: Counter,
}

impl MaintenanceMetrics {
    pub fn register(registry: &mut Registry) -> MaintenanceMetrics {
        let metrics = MaintenanceMetrics::default();
        registry.register(
            "andante_compactions",
            "Compactions run by this process, by result (`compacted`, `failed`)",
            metrics.compactions.clone(),
        );
        registry.register(
            "andante_retention_deleted_blocks",
            "Blocks this process deleted as past retention",
            metrics.retention_deleted.clone(),
        );
        metrics
    }

    fn count(&self, result: &'static str) {
        self.compactions
            .get_or_create(&ResultLabel { result })
            .inc();
    }
}

/// Starts the block-maintenance rows of the table this process runs: block-list polls,
/// compaction and retention.
pub fn start_block_maintenance(
    config: &Config,
    storage: &Storage,
    blocks: &BlockList,
    stop: &watch::Receiver<bool>,
    metrics: MaintenanceMetrics,
) -> Vec<tokio::task::JoinHandle<()>> {
    let roles = &config.target;
    let mut loops = Vec::new();
    if runs(roles, Component::BlockListPoll) {
        let (storage, blocks) = (storage.clone(), blocks.clone());
        loops.push(crate::serve::every(
            config.storage.blocklist_poll,
            stop.clone(),
            move || {
                let (storage, blocks) = (storage.clone(), blocks.clone());
                async move {
                    if let Err(error) = blocks.poll(&storage).await {
                        tracing::warn!(%error, "block list poll failed");
                    }
                }
            },
        ));
    }
    if runs(roles, Component::Compaction) && config.compaction.enabled {
        let (storage, blocks, metrics) = (storage.clone(), blocks.clone(), metrics.clone());
        let options = CompactionOptions {
            window_nanos: config.compaction.window.as_nanos() as u64,
            max_input_blocks: config.compaction.max_input_blocks,
            tier_fan_in: config.compaction.tier_fan_in,
            max_input_bytes: config.compaction.max_input_bytes,
            write: crate::serve::write_options(config),
            keep_inputs: !config.compaction.compacted_block_retention.is_zero(),
            ..CompactionOptions::default()
        };
        let holder = LeaseHolder {
            id: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()),
            ttl_millis: COMPACTION_LEASE_TTL.as_millis() as u64,
        };
        loops.push(crate::serve::every(
            config.compaction.interval,
            stop.clone(),
            move || {
                let (storage, blocks, holder, metrics) =
                    (storage.clone(), blocks.clone(), holder.clone(), metrics.clone());
                async move {
                    for tenant in blocks.tenants() {
                        match compact_once(&storage, &blocks, &tenant, &options, &holder).await {
                            Ok(Some(meta)) => {
                                metrics.count("compacted");
                                tracing::info!(%tenant, block = %meta.block_id, inputs = meta.replaces.len(), spans = meta.span_count, "compacted");
                            }
                            Ok(None) => {}
                            Err(error) => {
                                metrics.count("failed");
                                tracing::warn!(%tenant, %error, "compaction failed");
                            }
                        }
                    }
                }
            },
        ));
    }
    if runs(roles, Component::Retention) {
        let (storage, blocks, retention) =
            (storage.clone(), blocks.clone(), config.retention.clone());
        let metrics = metrics.clone();
        loops.push(crate::serve::every(
            config.retention.interval,
            stop.clone(),
            move || {
                let (storage, blocks, retention, metrics) = (
                    storage.clone(),
                    blocks.clone(),
                    retention.clone(),
                    metrics.clone(),
                );
                async move {
                    for tenant in blocks.tenants() {
                        let cutoff = andante_model::now_unix_nanos()
                            .saturating_sub(retention.for_tenant(&tenant).as_nanos() as u64);
                        match apply_retention(&storage, &blocks, &tenant, cutoff).await {
                            Ok(0) => {}
                            Ok(deleted) => {
                                metrics.retention_deleted.inc_by(deleted as u64);
                                tracing::info!(%tenant, deleted, "retention deleted blocks");
                            }
                            Err(error) => tracing::warn!(%tenant, %error, "retention failed"),
                        }
                        // Leases of windows nobody has compacted for a day are clutter.
                        let day_ago = (andante_model::now_unix_nanos() / 1_000_000)
                            .saturating_sub(LEASE_GRACE.as_millis() as u64);
                        if let Err(error) = lease::remove_stale(&storage, &tenant, day_ago).await {
                            tracing::warn!(%tenant, %error, "removing stale leases failed");
                        }
                    }
                }
            },
        ));
    }
    loops
}

/// The operational endpoints of a process without the query API: `/ready` (200 once started,
/// 503 while stopping) and `/metrics`.
pub fn ops_router(registry: Arc<Registry>, ready: Arc<AtomicBool>) -> axum::Router {
    axum::Router::new()
        .route(
            "/ready",
            get(move || async move {
                if ready.load(Ordering::Acquire) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .route(
            "/metrics",
            get(move || async move {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, &registry) {
                    Ok(()) => (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_runs_every_component_and_a_compactor_only_maintenance() {
        for (component, _) in COMPONENTS {
            assert!(runs(&[Role::All], component), "{component:?}");
        }
        let compactor = [Role::Compactor];
        assert!(runs(&compactor, Component::Compaction));
        assert!(runs(&compactor, Component::Retention));
        assert!(runs(&compactor, Component::BlockListPoll));
        assert!(!runs(&compactor, Component::Receive));
        assert!(!runs(&compactor, Component::BuildBlocks));
        assert!(!runs(&compactor, Component::Query));
        assert!(!runs(&compactor, Component::Generator));
        let query = [Role::Querier, Role::QueryFrontend];
        assert!(runs(&query, Component::Query));
        assert!(!runs(&query, Component::Compaction));
    }

    #[test]
    fn every_role_runs_something() {
        for role in Role::EVERY {
            assert!(
                COMPONENTS.iter().any(|(_, owners)| owners.contains(&role)) || role == Role::All,
                "{role:?} runs nothing"
            );
        }
    }
}
