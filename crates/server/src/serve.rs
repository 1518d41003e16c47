//! `andante serve`: builds the components of the process's roles (`roles.rs`; `all` is every
//! one) from the configuration, binds the listeners, runs the background loops and shuts down
//! gracefully on SIGTERM or Ctrl-C (stop accepting, flush every trace in memory to a block, exit
//! within 30 s).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use andante_api::auth::Authenticator;
use andante_api::{ApiConfig, AppState};
use andante_block::blocklist::BlockList;
use andante_block::v1::WriteOptions;
use andante_generator::feed::Feed;
use andante_generator::remote_write::{RemoteWriteConfig, RemoteWriter};
use andante_generator::{
    Generator, GeneratorConfig, RegistryLimits, ServiceGraphsConfig, SpanFilter, SpanMetricsConfig,
};
use andante_ingest::{IngestLimits, PushService, ValidationLimits};
use andante_live::{LiveConfig, LiveStore};
use andante_query::Querier;
use andante_storage::{BackendConfig, Storage};
use andante_tsdb::MetricsHead;
use andante_wal::WalOptions;
use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::listen::{self, ConnectionLimits};

/// Go-style listen addresses: `:3200` means every interface.
fn listen_address(text: &str) -> anyhow::Result<SocketAddr> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_owned()
    };
    full.parse()
        .with_context(|| format!("invalid listen address `{text}`"))
}

async fn bind(text: &str, what: &str) -> anyhow::Result<Option<TcpListener>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let address = listen_address(text)?;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen on {address} for {what}"))?;
    tracing::info!(%what, address = %listener.local_addr()?, "listening");
    Ok(Some(listener))
}

fn storage_config(config: &Config) -> BackendConfig {
    let storage = &config.storage;
    BackendConfig {
        backend: storage.backend.clone(),
        local_path: PathBuf::from(&storage.path)
            .join("blocks")
            .display()
            .to_string(),
        bucket: storage.bucket.clone(),
        endpoint: storage.endpoint.clone(),
        region: storage.region.clone(),
        access_key_id: storage.access_key_id.clone(),
        secret_access_key: storage.secret_access_key.clone(),
        allow_http: storage.allow_http,
        account: storage.account.clone(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Runs `work` every `period` until shutdown.
pub(crate) fn every<F, Fut>(
    period: Duration,
    mut stop: watch::Receiver<bool>,
    mut work: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => work().await,
                _ = stop.changed() => return,
            }
        }
    })
}

/// The metrics generator and where its samples go.
#[derive(Clone)]
struct Generated {
    generator: Arc<Generator>,
    /// The generator's queue, when it runs: pushes reach it through the live store in `all`,
    /// records of the log in a `generator` apart.
    spans: Option<Arc<dyn andante_live::SpanSink>>,
    store: Arc<andante_tsdb::Store>,
    remote_write: Option<Arc<RemoteWriter>>,
}

/// One collection: sample every tenant's generated series into the series store (through its
/// WAL, like pushed samples) and the remote-write queues, then apply the store's retention.
async fn collect_generated(generated: Generated, head: Option<Arc<MetricsHead>>) {
    let now_ms = (andante_model::now_unix_nanos() / 1_000_000) as i64;
    let generator = generated.generator.clone();
    let collected = match tokio::task::spawn_blocking(move || generator.collect(now_ms)).await {
        Ok(collected) => collected,
        Err(error) => {
            tracing::error!(%error, "metrics collection failed");
            return;
        }
    };
    for (tenant, mut collected) in collected {
        if let Some(remote_write) = &generated.remote_write {
            remote_write.enqueue(tenant.as_str(), &collected);
        }
        // A generator apart keeps no series of its own: remote-write is where they go.
        let Some(head) = &head else { continue };
        generated
            .store
            .metadata
            .set(tenant.as_str(), std::mem::take(&mut collected.metadata));
        let batch = collected
            .samples
            .into_iter()
            .map(|(labels, t, value)| andante_tsdb::SeriesSamples {
                labels,
                samples: vec![(t, value)],
            })
            .collect();
        if let Err(error) = head.append(tenant.as_str(), batch, now_ms).await {
            tracing::warn!(%tenant, %error, "generated samples not written to the metrics wal");
        }
        if let Err(error) = head
            .append_exemplars(tenant.as_str(), collected.exemplars)
            .await
        {
            tracing::warn!(%tenant, %error, "generated exemplars not written to the metrics wal");
        }
    }
    if let Some(head) = head {
        head.expire(now_ms);
    }
}

/// One pass of the series store's persistence: cut closed ranges into blocks, compact closed
/// days, delete blocks past retention.
async fn persist_metrics(
    head: &MetricsHead,
    storage: &andante_storage::Storage,
    settings: andante_tsdb::persist::BlockSettings,
) {
    let now_ms = (andante_model::now_unix_nanos() / 1_000_000) as i64;
    match head.persist(storage, settings, now_ms).await {
        Ok(0) => {}
        Ok(written) => tracing::info!(written, "metric blocks written"),
        Err(error) => {
            tracing::warn!(%error, "metric blocks not written; the WAL keeps the samples")
        }
    }
    let persisted = andante_tsdb::persist::cut_point(head.store(), settings, now_ms);
    match andante_tsdb::persist::compact(storage, settings, persisted).await {
        Ok(0) => {}
        Ok(days) => tracing::info!(days, "metric blocks compacted"),
        Err(error) => tracing::warn!(%error, "metric block compaction failed"),
    }
    match andante_tsdb::persist::apply_retention(storage, head.store(), now_ms).await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "metric blocks past retention deleted"),
        Err(error) => tracing::warn!(%error, "metric block retention failed"),
    }
}

/// Hands acknowledged spans to the generator's queue.
struct GeneratorSink(Feed);

impl andante_live::SpanSink for GeneratorSink {
    fn accept(&self, tenant: &andante_model::TenantId, fragments: Vec<bytes::Bytes>, spans: usize) {
        self.0.offer(tenant, fragments, spans);
    }
}

/// Starts the generator and the queue that hands it acknowledged spans; `observer` (continuous
/// insights) rides the same queue, which therefore also runs when the generator is off.
fn start_generator(
    config: &Config,
    live: &Arc<LiveStore>,
    observer: Option<andante_generator::feed::Observer>,
) -> anyhow::Result<Generated> {
    let section = &config.generator;
    let span_filter = SpanFilter::parse(
        &section.span_metrics.filter_include,
        &section.span_metrics.filter_exclude,
    )
    .map_err(|error| anyhow::anyhow!("generator.span_metrics.filter_*: {error}"))?;
    let graph_filter = SpanFilter::parse(
        &section.service_graphs.filter_include,
        &section.service_graphs.filter_exclude,
    )
    .map_err(|error| anyhow::anyhow!("generator.service_graphs.filter_*: {error}"))?;
    let span_metrics = section.span_metrics.enabled.then(|| SpanMetricsConfig {
        dimensions: crate::config::list(&section.span_metrics.dimensions),
        include_status_message: section.span_metrics.include_status_message,
        enable_target_info: section.span_metrics.enable_target_info,
        filter: span_filter,
        ..SpanMetricsConfig::default()
    });
    let service_graphs = section.service_graphs.enabled.then(|| ServiceGraphsConfig {
        wait_ms: section.service_graphs.wait.as_millis() as i64,
        max_items: section.service_graphs.max_items,
        enable_messaging_latency: section.service_graphs.enable_messaging_latency,
        enable_virtual_node_label: section.service_graphs.enable_virtual_node_label,
        filter: graph_filter,
        ..ServiceGraphsConfig::default()
    });
    let generator = Arc::new(Generator::new(GeneratorConfig {
        span_metrics,
        service_graphs,
        limits: RegistryLimits {
            max_active_series: section.max_active_series,
            max_cardinality_per_label: section.max_cardinality_per_label,
            stale_after_ms: section.stale_duration.as_millis() as i64,
        },
        ingestion_slack_ms: section.ingestion_slack.as_millis() as i64,
    }));
    let mut spans: Option<Arc<dyn andante_live::SpanSink>> = None;
    if generator.enabled() || observer.is_some() {
        let feed = Feed::start(generator.clone(), 4096, observer)
            .context("failed to start the metrics generator thread")?;
        let sink: Arc<dyn andante_live::SpanSink> = Arc::new(GeneratorSink(feed));
        live.set_span_sink(sink.clone());
        spans = Some(sink);
    }
    let store = Arc::new(andante_tsdb::Store::new(andante_tsdb::StoreConfig {
        retention_ms: config.metrics_store.retention.as_millis() as i64,
        max_series_per_tenant: config.metrics_store.max_series_per_tenant,
        out_of_order_window_ms: config.metrics_store.out_of_order_window.as_millis() as i64,
        retention_per_tenant_ms: config.metrics_store.retention_per_tenant_ms(),
        max_exemplars_per_tenant: config.metrics_store.max_exemplars_per_tenant,
    }));
    let urls = config.remote_write_urls();
    let remote_write = if urls.is_empty() {
        None
    } else {
        tracing::info!(?urls, "remote-writing generated series");
        let remote_config = RemoteWriteConfig {
            urls,
            queue_batches: section.remote_write.queue_batches,
            ..RemoteWriteConfig::default()
        };
        Some(Arc::new(
            RemoteWriter::start(remote_config).context("failed to start remote-write")?,
        ))
    };
    Ok(Generated {
        generator,
        spans,
        store,
        remote_write,
    })
}

/// The authenticator (`auth.tokens_file`) and the TLS acceptor (`server.tls_*`), when set.
fn access_control(
    config: &Config,
) -> anyhow::Result<(Option<Arc<Authenticator>>, Option<TlsAcceptor>)> {
    let authenticator = if config.auth_enabled() {
        let credentials =
            crate::tokens::load(config.auth.tokens_file.trim(), config.multitenancy.enabled)?;
        tracing::info!(
            credentials = credentials.len(),
            file = %config.auth.tokens_file,
            "authentication on: every request except /ready needs credentials"
        );
        Some(Arc::new(Authenticator::new(
            credentials,
            config.multitenancy.enabled,
        )))
    } else {
        None
    };
    let tls = if config.tls_enabled() {
        let acceptor = crate::tls::acceptor(
            config.server.tls_cert_file.trim(),
            config.server.tls_key_file.trim(),
        )?;
        tracing::info!(certificate = %config.server.tls_cert_file, "TLS on every listener");
        Some(acceptor)
    } else {
        None
    };
    Ok((authenticator, tls))
}

/// How blocks are written, by the live store and by compaction.
pub(crate) fn write_options(config: &Config) -> WriteOptions {
    WriteOptions {
        row_group_spans: config.block.row_group_spans,
        ..WriteOptions::default()
    }
}

fn connection_limits(config: &Config) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: config.server.max_connections,
        header_read_timeout: config.server.header_read_timeout,
        idle_timeout: config.server.idle_timeout,
    }
}

/// Opens the block storage and reads the block list.
async fn open_blocks(config: &Config) -> anyhow::Result<(Storage, BlockList)> {
    let storage =
        Storage::from_config(&storage_config(config)).context("failed to open block storage")?;
    let blocks = BlockList::default();
    blocks.set_compacted_retention(config.compaction.compacted_block_retention);
    blocks
        .poll(&storage)
        .await
        .context("failed to list blocks")?;
    let (block_count, span_count, _) = blocks.totals();
    tracing::info!(blocks = block_count, spans = span_count, backend = ?config.storage.backend, "block list loaded");
    Ok((storage, blocks))
}

/// The series store lives with the query roles; a distributor apart without
/// `distributor.metrics_url` says where metrics go rather than keep them where no query reads
/// them.
struct NoMetricsHere;

impl andante_ingest::sample_push::SampleSink for NoMetricsHere {
    fn store<'a>(
        &'a self,
        _tenant: &'a andante_model::TenantId,
        _batch: andante_ingest::sample_push::SampleBatch,
    ) -> futures::future::BoxFuture<
        'a,
        Result<andante_tsdb::AppendOutcome, andante_ingest::PushFailure>,
    > {
        Box::pin(async {
            Err(andante_ingest::PushFailure {
                kind: andante_model::ErrorKind::NotFound,
                message: "this process (a distributor apart) takes no metrics: set `distributor.metrics_url` to forward them to the series store, or send them to a process running `all` or a querier".to_owned(),
            })
        })
    }

    fn count(&self, _tenant: &andante_model::TenantId, _stored: usize, _refused: usize) {}
}

/// A live-store's stores, read as one: those of the partitions it owns at the time of each
/// read, since ownership moves with the consumer group.
pub(crate) fn own_live_stores(role: &Arc<andante_log::LiveStoreRole>) -> andante_query::StoresNow {
    let role = role.clone();
    andante_query::StoresNow(Arc::new(move || {
        let (partitions, stores) = role.held();
        let covered = andante_query::Covered {
            of: role.partition_count(),
            partitions,
        };
        (stores, covered)
    }))
}

/// How long a live-store keeps a trace after the block-builders' committed offset passed it:
/// long enough for every querier to have polled the block list that now holds it, so a trace
/// never falls between the live data and the blocks.
fn live_retire_after(config: &Config) -> Duration {
    config.storage.blocklist_poll * 2 + Duration::from_secs(5)
}

/// Where queries read recent data: `all`'s own store; apart, the live-stores of
/// `query.live_stores` and this process's own live-store role, if it runs one.
fn live_source(
    config: &Config,
    live: &Arc<LiveStore>,
    live_role: Option<&Arc<andante_log::LiveStoreRole>>,
) -> anyhow::Result<Arc<dyn andante_query::LiveSource>> {
    let urls = config.query.live_stores();
    if *config.target == [crate::config::Role::All] || (urls.is_empty() && live_role.is_none()) {
        return Ok(live.clone());
    }
    let mut sources: Vec<Arc<dyn andante_query::LiveSource>> = Vec::new();
    if let Some(role) = live_role {
        sources.push(Arc::new(own_live_stores(role)));
    }
    for url in urls {
        let remote =
            andante_query::live_remote::RemoteLive::new(&url, config.query.live_store_timeout)
                .map_err(|error| anyhow::anyhow!("query.live_stores: `{url}`: {error}"))?;
        sources.push(Arc::new(remote));
    }
    Ok(Arc::new(andante_query::LiveSources(sources)))
}

/// How this process's consuming roles share the span topic's partitions (`kafka.assignment`).
fn ownership(config: &Config) -> andante_log::Ownership {
    match config.kafka.assignment {
        crate::config::Assignment::Ordinal => andante_log::Ownership::Ordinal {
            instance: config.kafka.instance,
            instances: config.kafka.instances,
        },
        crate::config::Assignment::Group => andante_log::Ownership::Group {
            identity: member_name(config),
            session_timeout: config.kafka.session_timeout,
        },
    }
}

/// `kafka.member_name`, or the host name and HTTP port: stable across a restart in place, and
/// apart between processes on one host.
fn member_name(config: &Config) -> String {
    let configured = config.kafka.member_name.trim();
    if !configured.is_empty() {
        return configured.to_owned();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "andante".to_owned());
    let address = config.server.http_listen_address.trim();
    let port = address.rsplit(':').next().unwrap_or(address);
    format!("{host}:{port}")
}

/// Connects to the log, retrying until it answers: a split process starts before its broker
/// as often as after it.
async fn connect_log(config: &Config) -> anyhow::Result<Arc<andante_log::Log>> {
    let kafka = &config.kafka;
    let log_config = andante_log::LogConfig {
        brokers: kafka.brokers(),
        topic: kafka.topic.clone(),
        partitions: kafka.partitions,
        replication_factor: kafka.replication_factor,
        produce_timeout: kafka.produce_timeout,
        max_record_bytes: kafka.max_record_bytes,
    };
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        match andante_log::Log::connect(log_config.clone()).await {
            Ok(log) => {
                tracing::info!(brokers = %kafka.brokers, topic = %kafka.topic, partitions = log.partition_count(), "connected to the log");
                return Ok(log);
            }
            Err(error) => {
                tracing::warn!(brokers = %kafka.brokers, %error, "log unavailable; retrying")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = &mut shutdown => anyhow::bail!("stopped before the log answered"),
        }
    }
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    use crate::roles::{runs, Component};
    let roles = &config.target;
    if ![
        Component::Receive,
        Component::BuildBlocks,
        Component::ServeLive,
        Component::Query,
        Component::Generator,
    ]
    .into_iter()
    .any(|component| runs(roles, component))
    {
        return serve_maintenance(config).await;
    }
    // `all` keeps its own WAL; apart, the log is the WAL.
    let single = *roles == [crate::config::Role::All];
    // Credentials and certificates first: a mistake in them stops start-up before any replay.
    let (authenticator, tls) = access_control(&config)?;
    let (storage, blocks) = open_blocks(&config).await?;

    let mut metrics = andante_api::metrics::Metrics::new();
    let fsync_histogram = metrics.wal_fsync_seconds.clone();
    let limits = IngestLimits {
        rate_limit_bytes: config.limits.ingestion_rate_limit_bytes,
        burst_size_bytes: config.limits.ingestion_burst_size_bytes,
        max_bytes_per_trace: config.limits.max_bytes_per_trace,
        max_live_traces: config.limits.max_live_traces,
    };
    let write = write_options(&config);
    let live_config = LiveConfig {
        trace_idle: config.live.trace_idle,
        trace_max_live: config.live.trace_max_live,
        block_max_age: config.live.block_max_age,
        block_max_bytes: config.live.block_max_bytes,
        limits,
        write,
    };
    let wal_options = WalOptions {
        fsync: config.wal.fsync,
        max_segment_bytes: config.wal.max_segment_bytes,
    };
    let wal_dir = PathBuf::from(&config.storage.path).join("wal");
    let observer: andante_wal::FsyncObserver =
        Arc::new(move |elapsed| fsync_histogram.observe(elapsed.as_secs_f64()));
    let live = if single {
        LiveStore::open(
            &wal_dir,
            wal_options.clone(),
            Some(observer),
            storage.clone(),
            blocks.clone(),
            live_config.clone(),
        )
        .context("failed to open the write-ahead log")?
    } else {
        // Nothing is pushed into it apart (queriers read the live-stores of `query.live_stores`
        // instead): a distributor counts its refusals in its metrics.
        LiveStore::fed_by_log(
            "none".to_owned(),
            0,
            None,
            storage.clone(),
            blocks.clone(),
            live_config.clone(),
        )
    };
    let log = if !single
        && [
            Component::Receive,
            Component::BuildBlocks,
            Component::ServeLive,
            Component::Generator,
        ]
        .into_iter()
        .any(|component| runs(roles, component))
    {
        Some(connect_log(&config).await?)
    } else {
        None
    };
    let maintenance_metrics = crate::roles::MaintenanceMetrics::register(&mut metrics.registry);
    // The log's consumer metrics exist only where a log is consumed.
    let builder_metrics = if single {
        Arc::new(andante_log::BuilderMetrics::default())
    } else {
        andante_log::BuilderMetrics::register(&mut metrics.registry)
    };
    let (stop_sender, stop) = watch::channel(false);
    // Consumer-group members leave after the last flush, not at the stop signal.
    let memberships = andante_log::Memberships::new();
    let mut loops = Vec::new();
    // A live-store's own stores, when this process runs one apart.
    let live_role = match &log {
        Some(log) if runs(roles, Component::ServeLive) => {
            let (role, tasks) = andante_log::LiveStoreRole::start(
                log.clone(),
                builder_metrics.clone(),
                &ownership(&config),
                &memberships,
                storage.clone(),
                live_config.clone(),
                live_retire_after(&config),
                stop.clone(),
            )
            .await
            .map_err(|error| anyhow::anyhow!("live-store: {error}"))?;
            loops.extend(tasks);
            Some(role)
        }
        _ => None,
    };
    let builder = match &log {
        Some(log) if runs(roles, Component::BuildBlocks) => {
            let (builder, task) = andante_log::BlockBuilder::start(
                log.clone(),
                builder_metrics.clone(),
                &ownership(&config),
                &memberships,
                storage.clone(),
                blocks.clone(),
                live_config.clone(),
                stop.clone(),
            );
            loops.push(task);
            Some(builder)
        }
        _ => None,
    };
    // Every store whose traces this process holds counts in `andante_live_traces` and `_bytes`.
    let others: Arc<dyn Fn() -> Vec<Arc<LiveStore>> + Send + Sync> = {
        let (builder, live_role) = (builder.clone(), live_role.clone());
        Arc::new(move || {
            builder
                .iter()
                .flat_map(|builder| builder.stores())
                .chain(live_role.iter().flat_map(|role| role.stores()))
                .collect()
        })
    };
    metrics.register_store(live.clone(), others, blocks.clone());
    let live_source = live_source(&config, &live, live_role.as_ref())?;
    let live_insights = Arc::new(andante_api::insights_live::LiveInsights::new(
        config.insights.live_window,
        config.live.trace_idle,
    ));
    let generated = start_generator(&config, &live, live_insights.observer())?;
    let loaded = andante_tsdb::persist::load(
        &storage,
        &generated.store,
        (andante_model::now_unix_nanos() / 1_000_000) as i64,
    )
    .await
    .context("failed to load the metric blocks")?;
    tracing::info!(
        blocks = loaded.blocks,
        samples = loaded.samples,
        damaged = loaded.damaged.len(),
        "metric blocks loaded"
    );
    let metrics_wal_dir = PathBuf::from(&config.storage.path).join("wal-metrics");
    let (metrics_head, replayed) =
        MetricsHead::open(generated.store.clone(), &metrics_wal_dir, wal_options, None)
            .context("failed to open the metrics write-ahead log")?;
    tracing::info!(
        samples = replayed.samples,
        records = replayed.wal.records,
        unreadable_records = replayed.unreadable_records,
        "metrics wal replayed"
    );
    let metrics_head = Arc::new(metrics_head);
    if let Some(until) = loaded.persisted_until_ms {
        metrics_head.set_persisted_until(until);
    }
    metrics.register_generator(
        generated.generator.clone(),
        generated.store.clone(),
        generated.remote_write.as_ref().map(|r| r.counters.clone()),
    );

    let rules = Arc::new(andante_rules::Manager::new(
        andante_rules::EvalSettings::new(
            config.rules.external_labels.clone(),
            config.rules.external_url.trim_end_matches('/').to_owned(),
            config.rules.outage_tolerance.as_millis() as i64,
        ),
        config.rules.evaluation_interval.as_millis() as i64,
        config.rules.resend_delay.as_millis() as i64,
    ));
    if !config.rules.path.trim().is_empty() {
        let loaded = andante_rules::load::load_path(
            std::path::Path::new(config.rules.path.trim()),
            andante_model::SINGLE_TENANT,
        )
        .context("failed to read the rule files (`rules.path`)")?;
        for error in &loaded.errors {
            tracing::error!(%error, "rule file skipped");
        }
        rules
            .stats
            .invalid_files
            .store(loaded.errors.len() as u64, Ordering::Relaxed);
        tracing::info!(groups = loaded.groups.len(), path = %config.rules.path, "rule files loaded");
        rules.replace(
            |key| key.source == andante_rules::Source::File,
            andante_rules::Source::File,
            loaded.groups,
        );
    }
    let ruler = Arc::new(andante_rules::ruler::Ruler::new(
        storage.clone(),
        rules.clone(),
        andante_rules::ruler::RulerLimits {
            max_rules_per_group: config.rules.max_rules_per_group,
            max_groups_per_tenant: config.rules.max_groups_per_tenant,
        },
    ));
    let api_groups = ruler
        .load_all()
        .await
        .context("failed to load the ruler API's rule groups from storage")?;
    tracing::info!(groups = api_groups, "ruler API groups loaded");
    let slos = Arc::new(andante_rules::slos::Slos::new(
        storage.clone(),
        rules.clone(),
        andante_rules::slo::SloContext {
            latency_buckets: andante_generator::spanmetrics::default_latency_buckets(),
            max_slos_per_tenant: config.rules.max_slos_per_tenant,
        },
    ));
    if !config.rules.slo_path.trim().is_empty() {
        let errors = slos
            .load_files(
                std::path::Path::new(config.rules.slo_path.trim()),
                andante_model::SINGLE_TENANT,
            )
            .context("failed to read the SLO files (`rules.slo_path`)")?;
        for error in &errors {
            tracing::error!(%error, "SLO file skipped");
        }
        rules
            .stats
            .invalid_files
            .fetch_add(errors.len() as u64, Ordering::Relaxed);
    }
    let stored_slos = slos
        .load_stored()
        .await
        .context("failed to load the SLOs from storage")?;
    tracing::info!(slos = stored_slos, "SLOs from the API loaded");
    let notifier = andante_rules::Notifier::new(andante_rules::NotifierConfig {
        urls: config.rules.alertmanager_urls(),
        ..Default::default()
    })
    .map_err(|error| anyhow::anyhow!(error))?;
    metrics.register_rules(rules.clone(), notifier.clone());

    let validation = ValidationLimits {
        max_attribute_bytes: config.limits.max_attribute_bytes,
        max_future_nanos: u64::try_from(config.limits.max_span_future.as_nanos())
            .unwrap_or(u64::MAX),
    };
    let sample_sink: Arc<dyn andante_ingest::sample_push::SampleSink> =
        if runs(roles, Component::Query) {
            Arc::new(andante_api::StoreSink {
                head: metrics_head.clone(),
                store: generated.store.clone(),
                metrics: metrics.sample_counter(),
            })
        } else {
            Arc::new(NoMetricsHere)
        };
    let samples = andante_ingest::SamplePushService::new(
        sample_sink,
        andante_ingest::RateLimiter::per_second(
            config.metrics_store.ingestion_rate,
            config.metrics_store.ingestion_burst_size,
        ),
        config.server.max_request_bytes,
        andante_ingest::metrics::SeriesLimits {
            max_labels_per_series: config.metrics_store.max_labels_per_series,
            max_label_name_bytes: config.metrics_store.max_label_name_bytes,
            max_label_value_bytes: config.metrics_store.max_label_value_bytes,
            ..Default::default()
        },
    );
    // A distributor apart passes metrics pushes on to the series store, when told where it is.
    let metrics_forward = match config.distributor.metrics_url.trim() {
        url if !url.is_empty()
            && !runs(roles, Component::Query)
            && runs(roles, Component::Receive) =>
        {
            Some(
                andante_api::forward_metrics::MetricsForward::new(
                    url,
                    config.distributor.metrics_timeout,
                )
                .map_err(|error| anyhow::anyhow!("distributor.metrics_url: {error}"))?,
            )
        }
        _ => None,
    };
    let state = Arc::new(AppState {
        config: ApiConfig {
            multitenancy_enabled: config.multitenancy.enabled,
            max_request_bytes: config.server.max_request_bytes,
            query: andante_api::QueryLimits {
                timeout: config.query.timeout,
                max_metrics_series: config.query.max_metrics_series.max(1),
                max_bytes_per_query: config.query.max_bytes_per_query,
                max_concurrent_per_tenant: config.query.max_concurrent_per_tenant.max(1),
            },
        },
        live: live.clone(),
        push: PushService::new(
            match &log {
                Some(log) => Arc::new(andante_log::LogSink::new(
                    log.clone(),
                    live_config.limits,
                    live.metrics.clone(),
                )),
                None => live.clone(),
            },
            config.server.max_request_bytes,
            validation,
        ),
        querier: match config.query.queriers() {
            urls if urls.is_empty() => Querier::new(live_source, storage.clone(), blocks.clone()),
            urls => Querier::new(live_source, storage.clone(), blocks.clone()).with_queriers(
                andante_query::jobs::Queriers::new(&urls, config.query.querier_timeout)
                    .map_err(|error| anyhow::anyhow!("query.queriers: {error}"))?,
            ),
        },
        metrics,
        metrics_store: generated.store.clone(),
        metrics_head: metrics_head.clone(),
        ready: AtomicBool::new(false),
        query_gate: Default::default(),
        live_insights,
        rules: rules.clone(),
        ruler,
        slos,
        samples,
        metrics_forward,
    });

    rules.set_traceql_source(Arc::new(andante_api::TraceqlRuleSource::new(
        state.querier.clone(),
        state.config.query,
        tokio::runtime::Handle::current(),
    )));
    rules.set_root_cause_source(Arc::new(andante_api::AlertRootCauses::new(
        state.querier.clone(),
        state.metrics_store.clone(),
        config.rules.external_url.clone(),
        tokio::runtime::Handle::current(),
    )));
    let mut servers: tokio::task::JoinSet<anyhow::Result<()>> = tokio::task::JoinSet::new();
    let body_limit = axum::extract::DefaultBodyLimit::max(config.server.max_request_bytes);
    let http_router = if runs(roles, Component::Query) {
        andante_api::query_router(state.clone()).merge(andante_ui::router(config.ui.source()))
    } else {
        andante_api::ops_router(state.clone())
    };
    // A live-store's answers to queriers are internal, like the traffic between Tempo's
    // components: outside `auth.tokens_file` (queriers hold no credential), so its port belongs
    // on the cluster's network only.
    let mut internal_router = live_role
        .as_ref()
        .map(|role| crate::live_api::router(role.clone()));
    // A querier apart runs query-frontends' search jobs (`/internal/query/`), internal likewise.
    if roles.contains(&crate::config::Role::Querier) {
        let jobs =
            crate::query_jobs::router(state.querier.clone(), state.metrics.query_jobs.clone());
        internal_router = Some(match internal_router {
            Some(router) => router.merge(jobs),
            None => jobs,
        });
    }
    let mut routers = vec![(
        config.server.http_listen_address.as_str(),
        "query API",
        http_router,
    )];
    if runs(roles, Component::Receive) {
        let grpc_router = tonic::service::Routes::new(andante_api::trace_service(state.clone()))
            .add_service(andante_api::metrics_service(state.clone()))
            .into_axum_router();
        routers.extend([
            (
                config.otlp.http_listen_address.as_str(),
                "OTLP/HTTP",
                andante_api::otlp_http_router(state.clone()).layer(body_limit),
            ),
            (
                config.zipkin.listen_address.as_str(),
                "Zipkin",
                andante_api::zipkin_router(state.clone()).layer(body_limit),
            ),
            (
                config.otlp.grpc_listen_address.as_str(),
                "OTLP/gRPC",
                grpc_router,
            ),
        ]);
    }
    let connection_limits = connection_limits(&config);
    let mut grpc_port = None;
    for (address, what, router) in routers {
        let Some(listener) = bind(address, what).await? else {
            continue;
        };
        if what == "OTLP/gRPC" {
            grpc_port = Some(listener.local_addr()?.port());
        }
        let mut router = match &authenticator {
            Some(authenticator) => andante_api::auth::protect(router, authenticator.clone()),
            None => router,
        };
        if what == "query API" {
            if let Some(internal) = internal_router.take() {
                router = router.merge(internal);
            }
        }
        let stop = stop.clone();
        let tls = tls.clone();
        servers.spawn(async move {
            listen::serve(listener, router, connection_limits, tls, stop, what).await;
            Ok(())
        });
    }

    // `all`'s own store cuts traces and writes blocks here; a block-builder's stores do it on
    // the same timers, started and stopped with their partitions.
    if single {
        let store = live.clone();
        {
            let store = store.clone();
            loops.push(every(Duration::from_millis(250), stop.clone(), move || {
                let store = store.clone();
                async move { store.cut() }
            }));
        }
        loops.push(every(Duration::from_secs(1), stop.clone(), move || {
            let store = store.clone();
            async move { store.tick().await }
        }));
    }
    if let (Some(log), false) = (&log, single) {
        if runs(roles, Component::Generator) {
            let Some(spans) = generated.spans.clone() else {
                anyhow::bail!("target `generator` with the generator off: enable `generator.span_metrics` or `generator.service_graphs`");
            };
            loops.push(andante_log::start_generator_feed(
                log.clone(),
                builder_metrics.clone(),
                &ownership(&config),
                &memberships,
                spans,
                stop.clone(),
            ));
        }
    }
    loops.extend(crate::roles::start_block_maintenance(
        &config,
        &storage,
        &blocks,
        &stop,
        maintenance_metrics,
    ));
    if runs(roles, Component::Generator) {
        // The series store lives with the query roles (in `all`, here).
        let head = runs(roles, Component::Query).then(|| metrics_head.clone());
        let generated = generated.clone();
        loops.push(every(
            config.generator.collection_interval,
            stop.clone(),
            move || collect_generated(generated.clone(), head.clone()),
        ));
    }
    // The metrics store, its rules and the insights live where queries are answered; a
    // distributor or block-builder apart keeps none of them.
    if runs(roles, Component::Query) {
        {
            let (head, storage) = (metrics_head.clone(), storage.clone());
            let settings = andante_tsdb::persist::BlockSettings {
                block_ms: config.metrics_store.block_duration.as_millis() as i64,
                ..Default::default()
            };
            // Often enough that a range is cut soon after it closes, even with short blocks.
            let interval = (config.metrics_store.block_duration / 2).min(Duration::from_secs(60));
            loops.push(every(interval, stop.clone(), move || {
                let (head, storage) = (head.clone(), storage.clone());
                async move { persist_metrics(&head, &storage, settings).await }
            }));
        }
        rules.run(metrics_head.clone(), notifier.clone(), stop.clone());
        loops.push(tokio::spawn(notifier.clone().run(stop.clone())));
        if !config.insights.live_window.is_zero() {
            let state = state.clone();
            loops.push(every(config.insights.interval, stop.clone(), move || {
                let state = state.clone();
                async move { andante_api::insights_live::evaluate(&state).await }
            }));
        }
    }
    if config.demo.enabled {
        let Some(port) = grpc_port else {
            anyhow::bail!("--demo needs the OTLP/gRPC receiver enabled")
        };
        let args = andante_gen::GenArgs {
            endpoint: format!("http://127.0.0.1:{port}"),
            protocol: andante_gen::Protocol::Grpc,
            rate: config.demo.rate as f64,
            duration_secs: 0,
            traces: 0,
            batch: 10,
            concurrency: 2,
            tenant: config
                .multitenancy
                .enabled
                .then(|| andante_model::SINGLE_TENANT.to_owned()),
            // A fresh seed per start, so a restarted demo does not resend the same trace IDs.
            seed: andante_model::now_unix_nanos(),
            acked_file: None,
            scenario: andante_gen::ScenarioArgs {
                scenario: config.demo.scenario()?,
                scenario_target: Some(config.demo.scenario_target.trim().to_owned())
                    .filter(|target| !target.is_empty()),
                scenario_onset_secs: config.demo.scenario_onset.as_secs(),
                ..andante_gen::ScenarioArgs::default()
            },
        };
        // A target the demo topology lacks is a configuration error now, not a load that
        // stops a moment after the server said it was ready.
        andante_gen::Source::new(&args, andante_model::now_unix_nanos())
            .map_err(|error| anyhow::anyhow!("demo.scenario_target: {error}"))?;
        tracing::info!(
            rate = config.demo.rate,
            scenario = config.demo.scenario.trim(),
            "demo load started; point Grafana's Tempo data source at this server's HTTP port"
        );
        loops.push(tokio::spawn(async move {
            if let Err(error) = andante_gen::run(args).await {
                tracing::error!(%error, "demo load stopped");
            }
        }));
    }

    state.ready.store(true, Ordering::Release);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "andante is ready");
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("shutting down: flushing traces to blocks"),
        Some(result) = servers.join_next() => {
            if let Ok(Err(error)) = result {
                tracing::error!(%error, "a server stopped");
            }
        }
    }
    state.ready.store(false, Ordering::Release);
    let _ = stop_sender.send(true);
    for handle in &loops {
        handle.abort();
    }
    let flushed = tokio::time::timeout(Duration::from_secs(25), async {
        live.flush_all().await;
        if let Some(builder) = &builder {
            builder.flush_all().await;
        }
    })
    .await;
    if flushed.is_err() {
        tracing::warn!("flush did not finish in 25 s; the WAL keeps every acknowledged span for the next start");
    }
    memberships.leave(Duration::from_secs(3)).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// A process of block-maintenance roles only (`compactor`): block-list polls, compaction and
/// retention over the shared storage, with `/ready` and `/metrics` on the HTTP port. It holds no
/// data of its own, so stopping it needs no flush.
async fn serve_maintenance(config: Config) -> anyhow::Result<()> {
    let (storage, blocks) = open_blocks(&config).await?;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = crate::roles::MaintenanceMetrics::register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let (stop_sender, stop) = watch::channel(false);
    let mut servers: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    if let Some(listener) = bind(&config.server.http_listen_address, "operations API").await? {
        let (authenticator, tls) = access_control(&config)?;
        let router = crate::roles::ops_router(Arc::new(registry), ready.clone());
        let router = match authenticator {
            Some(authenticator) => andante_api::auth::protect(router, authenticator),
            None => router,
        };
        let limits = connection_limits(&config);
        let stop = stop.clone();
        servers.spawn(listen::serve(
            listener,
            router,
            limits,
            tls,
            stop,
            "operations API",
        ));
    }
    let loops = crate::roles::start_block_maintenance(&config, &storage, &blocks, &stop, metrics);
    ready.store(true, Ordering::Release);
    let roles: Vec<&str> = config.target.iter().map(|role| role.name()).collect();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), target = %roles.join(","), "andante is ready");
    shutdown_signal().await;
    ready.store(false, Ordering::Release);
    let _ = stop_sender.send(true);
    for handle in &loops {
        handle.abort();
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while servers.join_next().await.is_some() {}
    })
    .await;
    tracing::info!("stopped");
    Ok(())
}
