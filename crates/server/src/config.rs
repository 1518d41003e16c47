//! Configuration: one table of keys is the single source of each key's default, flag,
//! environment variable and documentation. Precedence, lowest first: the table's default, the
//! YAML file (`--config.file`), the `ANDANTE_…` environment variable, the command-line flag. The
//! merged tree is then deserialized into typed structs, so a wrong value fails at start-up with
//! the key's name, never later.
//!
//! Naming: the YAML key `server.http_listen_address` is the flag `--server.http-listen-address`
//! and the variable `ANDANTE_SERVER_HTTP_LISTEN_ADDRESS`.

use std::collections::BTreeMap;
use std::time::Duration;

use andante_storage::BackendKind;
use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    Duration,
}

pub struct Key {
    pub path: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

const fn key(path: &'static str, kind: Kind, default: &'static str, help: &'static str) -> Key {
    Key {
        path,
        kind,
        default,
        help,
    }
}

use Kind::{Bool, Duration as Dur, Int, Str};

/// Every configuration key.
pub const KEYS: &[Key] = &[
    key("target", Str, "all", "Which roles this process runs: `all`, or a comma list of `distributor`, `live-store`, `block-builder`, `querier`, `query-frontend`, `compactor`, `generator`. `all` runs everything with a local WAL. Apart, over the Kafka-compatible log (`kafka.brokers`) and shared storage: `distributor` receives and produces to the log; `block-builder` consumes its partitions (`kafka.instance` of `kafka.instances`) into blocks; `live-store` consumes its partitions (the same ordinal) from the block-builders' committed offset into memory and answers queriers for recent data until the builders have written it; `querier`/`query-frontend` answer the query API from blocks and from the live-stores of `query.live_stores` (without them, recent data appears once a block-builder has written it); `compactor` runs compaction (under per-window leases, so several may share it) and retention. `generator` consumes its partitions (by the same ordinal) into span metrics and service graphs, sent by `generator.remote_write.urls`."),
    key("multitenancy.enabled", Bool, "false", "Require `X-Scope-OrgID` on every request (with `auth.tokens_file`, a credential's first tenant stands in for a missing header); when off all data belongs to `single-tenant`."),
    key("server.http_listen_address", Str, ":3200", "Tempo-compatible query API, `/metrics`, `/ready`."),
    key("server.max_request_bytes", Int, "20971520", "Largest push body accepted, after decompression (413 above). A trace push is also refused (413, whole) when splitting it by trace would take more than 8× its decompressed size, and at least 64 MiB: every trace keeps its own copy of its resource and scope, so one large resource shared by many small traces would otherwise multiply the request in memory and the WAL."),
    key("server.max_connections", Int, "2048", "Most open connections per listener; past it new connections wait in the kernel's backlog."),
    key("server.header_read_timeout", Dur, "10s", "An HTTP/1 request's headers must arrive within this; slower clients are disconnected."),
    key("server.idle_timeout", Dur, "120s", "A connection with nothing read or written for this long is closed (keep it above `query.timeout`)."),
    key("server.tls_cert_file", Str, "", "PEM certificate chain; with `server.tls_key_file` every listener (query API, OTLP/gRPC, OTLP/HTTP, Zipkin) speaks TLS only. Empty: plain TCP."),
    key("server.tls_key_file", Str, "", "PEM private key (PKCS#8, PKCS#1 or SEC1) of `server.tls_cert_file`."),
    key("auth.tokens_file", Str, "", "YAML list of credentials (`token`, or `username` + `password`, each with `tenants`); every request except `/ready` and the UI's static files must present one. Empty: no authentication."),
    key("otlp.grpc_listen_address", Str, ":4317", "OTLP/gRPC receiver; empty disables it."),
    key("otlp.http_listen_address", Str, ":4318", "OTLP/HTTP receiver (`POST /v1/traces`); empty disables it."),
    key("zipkin.listen_address", Str, ":9411", "Zipkin v2 receiver (`POST /api/v2/spans`); empty disables it."),
    key("storage.path", Str, "./data", "Local directory for the WAL, and for blocks with the `local` backend."),
    key("storage.backend", Str, "local", "Where blocks go: `local`, `s3`, `gcs` or `azure`."),
    key("storage.bucket", Str, "", "Bucket (S3, GCS) or container (Azure)."),
    key("storage.endpoint", Str, "", "S3 endpoint for S3-compatible servers; path-style requests are used."),
    key("storage.region", Str, "", "S3 region."),
    key("storage.access_key_id", Str, "", "S3 access key ID (else the AWS environment)."),
    key("storage.secret_access_key", Str, "", "S3 secret access key, or Azure access key."),
    key("storage.allow_http", Bool, "false", "Allow plain-HTTP object storage endpoints."),
    key("storage.account", Str, "", "Azure storage account."),
    key("storage.blocklist_poll", Dur, "5m", "How often the block list is re-read from storage."),
    key("wal.fsync", Bool, "true", "fsync the WAL before acknowledging a push. Turn off only to measure without it."),
    key("wal.max_segment_bytes", Int, "134217728", "A WAL segment is closed past this size."),
    key("live.trace_idle", Dur, "5s", "A trace with no new span for this long is complete."),
    key("live.trace_max_live", Dur, "30s", "A trace is cut after this long even if spans still arrive."),
    key("live.block_max_age", Dur, "30s", "Completed traces are written as a block at most this long after the first of them."),
    key("live.block_max_bytes", Int, "33554432", "... or once their encoded spans add up to this many bytes (bounds memory)."),
    key("block.row_group_spans", Int, "32768", "Spans per Parquet row group (a row group ends at a trace boundary)."),
    key("limits.ingestion_rate_limit_bytes", Int, "30000000", "Per-tenant ingestion rate in bytes per second."),
    key("limits.ingestion_burst_size_bytes", Int, "30000000", "Per-tenant ingestion burst in bytes."),
    key("limits.max_bytes_per_trace", Int, "5000000", "Largest trace kept in memory; spans beyond it are refused."),
    key("limits.max_live_traces", Int, "10000", "Most traces a tenant may have live at once."),
    key("limits.max_attribute_bytes", Int, "65536", "Largest attribute (key and value); a span carrying a larger one is refused."),
    key("limits.max_span_future", Dur, "1h", "Spans ending further than this after their receipt are refused (OTLP partial success): a broken clock would pin their block past retention."),
    key("query.timeout", Dur, "30s", "How long a search or TraceQL metrics query may run; then it answers what it found, marked partial (504 if nothing)."),
    key("query.max_bytes_per_query", Int, "0", "Most block bytes one search or TraceQL metrics query reads (0: no limit); past it the answer is partial, or 400 if nothing was found."),
    key("query.max_concurrent_per_tenant", Int, "20", "Most queries (search, tags, trace by ID, metrics, PromQL) one tenant runs at once; more answer 429."),
    key("query.live_stores", Str, "", "Comma list of the live-stores' HTTP base URLs (`http://live-store-0:3200`) a querier or query-frontend apart asks for recent data, every one for every query (each holds its own partitions); one that does not answer makes the answer partial, naming it. Empty: recent data is served once a block-builder has written it."),
    key("query.live_store_timeout", Dur, "5s", "How long a querier waits for a live-store's answer before answering without it (partial)."),
    key("query.queriers", Str, "", "Comma list of the queriers' HTTP base URLs (`http://querier-0:3200`) a query-frontend apart sends jobs to: each search scan unit's stage-1 scan and each block's TraceQL metrics fold goes to the querier with the fewest jobs in flight, then to one other if it fails, and is run by the frontend itself if neither answers. Empty: the frontend reads every block itself."),
    key("query.querier_timeout", Dur, "30s", "How long a query-frontend waits for a querier's answer to one job (search or metrics) before trying another."),
    key("query.max_metrics_series", Int, "10000", "Most series a TraceQL metrics answer holds; past it the answer is truncated and marked partial."),
    key("compaction.enabled", Bool, "true", "Merge small blocks in the background."),
    key("compaction.interval", Dur, "30s", "How often compaction looks for work."),
    key("compaction.window", Dur, "1h", "Only blocks whose start times fall in the same window are merged."),
    key("compaction.max_input_blocks", Int, "8", "Most blocks merged in one compaction."),
    key("compaction.tier_fan_in", Int, "8", "In a window still being written, blocks of similar size (each at most twice the smallest) merge once this many are waiting; a window whose end has passed merges whatever it holds. Higher rewrites each span fewer times (about once per power of this number in the window's flushes) but leaves more blocks in the open window for reads to visit (up to one less than this per size tier). At least 2."),
    key("compaction.max_input_bytes", Int, "268435456", "Most data bytes read by one compaction."),
    key("compaction.compacted_block_retention", Dur, "0s", "How long a compaction's input blocks stay in storage after their replacement is written, so processes that poll the block list less often (queriers, query-frontends apart) can still read them; above twice `storage.blocklist_poll` when the roles run apart. Each kept input is marked `compacted.json`, so compactors whose lists predate the merge leave it alone. 0s (the default, right for the single binary) deletes them at once."),
    key("retention.block_retention", Dur, "336h", "Blocks whose newest span is older than this are deleted."),
    key("retention.interval", Dur, "5m", "How often retention runs."),
    key("generator.span_metrics.enabled", Bool, "true", "Generate Tempo's span metrics (`traces_spanmetrics_*`) from every accepted span."),
    key("generator.span_metrics.dimensions", Str, "", "Comma-separated span (then resource) attributes added as labels, e.g. `http.route,http.request.method`."),
    key("generator.span_metrics.include_status_message", Bool, "false", "Add the `status_message` label to span metrics."),
    key("generator.span_metrics.enable_target_info", Bool, "false", "Add `job`/`instance` labels and write `traces_target_info` from resource attributes."),
    key("generator.span_metrics.filter_include", Str, "", "Count only spans matching this TraceQL filter, e.g. `{ kind = server }` (Tempo's filter policies)."),
    key("generator.span_metrics.filter_exclude", Str, "", "Never count spans matching this TraceQL filter, e.g. `{ name = \"GET /health\" }`."),
    key("generator.service_graphs.enabled", Bool, "true", "Generate Tempo's service graph (`traces_service_graph_*`) from client/server span pairs."),
    key("generator.service_graphs.filter_include", Str, "", "Build the service graph only from spans matching this TraceQL filter."),
    key("generator.service_graphs.filter_exclude", Str, "", "Leave spans matching this TraceQL filter out of the service graph."),
    key("generator.service_graphs.wait", Dur, "10s", "How long half an edge waits for its other half before it expires."),
    key("generator.service_graphs.max_items", Int, "10000", "Most edges waiting per tenant; spans past it are dropped and counted."),
    key("generator.service_graphs.enable_messaging_latency", Bool, "false", "Write `traces_service_graph_request_messaging_system_seconds` (consumer start − producer end)."),
    key("generator.service_graphs.enable_virtual_node_label", Bool, "false", "Add `virtual_node=client|server` to edges with an uninstrumented side."),
    key("generator.collection_interval", Dur, "15s", "How often generated series are sampled into the series store and remote-write."),
    key("generator.max_active_series", Int, "10000", "Per-tenant generated series; new series past it go to the `metric_overflow=\"true\"` series."),
    key("generator.max_cardinality_per_label", Int, "1000", "Distinct values per label before new ones become `__cardinality_overflow__`."),
    key("generator.stale_duration", Dur, "15m", "A series not updated for this long stops being written."),
    key("generator.ingestion_slack", Dur, "30s", "Spans that ended further than this from now are not counted in metrics."),
    key("generator.remote_write.urls", Str, "", "Comma-separated Prometheus remote-write URLs to send generated series to."),
    key("generator.remote_write.queue_batches", Int, "240", "Collections queued per URL before the oldest is dropped (240 × 15 s = 1 h)."),
    key("metrics_store.retention", Dur, "26h", "How long series (pushed by remote-write and OTLP, generated from spans) are kept, in memory and in metric blocks, for the Prometheus read API (`/prometheus/api/v1/*`). A day and two hours, so that insights can compare request rates with the same hours of the day before (seasonality)."),
    key("metrics_store.max_series_per_tenant", Int, "100000", "Most series the store holds per tenant (bounds memory); samples of new series past it are refused with 429."),
    key("metrics_store.ingestion_rate", Int, "1000000", "Per-tenant metric samples per second (remote-write and OTLP together; Mimir's `ingestion_rate`). A push past it is refused whole with 429 naming this key; senders retry."),
    key("metrics_store.ingestion_burst_size", Int, "2000000", "Samples a tenant may push at once above `ingestion_rate` (the token bucket's size; one push larger than this is always refused)."),
    key("metrics_store.max_exemplars_per_tenant", Int, "100000", "Exemplars (traced examples of samples, from remote-write, OTLP metrics and span metrics) kept per tenant for `/prometheus/api/v1/query_exemplars`, in a ring: the oldest go first. 0 keeps none."),
    key("metrics_store.out_of_order_window", Dur, "10m", "How far behind a series' newest sample a late sample is still taken; older ones are refused as out of order."),
    key("metrics_store.max_labels_per_series", Int, "40", "Most labels (with `__name__`) a pushed series may carry; more refuse that series."),
    key("metrics_store.max_label_name_bytes", Int, "1024", "Longest label name a pushed series may carry."),
    key("metrics_store.max_label_value_bytes", Int, "4096", "Longest label value a pushed series may carry."),
    key("metrics_store.block_duration", Dur, "2h", "Closed ranges of this length are written to storage as metric blocks (then compacted into days); must divide 24h."),
    key("insights.live_window", Dur, "5m", "Continuous insights: spans are folded per trace as they arrive, and every `insights.interval` each tenant's last `live_window` (cells of a thirtieth of it; the first third of the tenant's history in it is the baseline, so after a fresh start nothing but deploys is asserted for the first ~47 % of the window) is analysed from the fold; the answer is at `/api/insights/live`, counted in `andante_insights_assertions` and written as `insights_assertion` series. The fold holds ~45 bytes per span of the window (`andante_insights_fold_size`). At most 1h; `0s` turns it off."),
    key("insights.interval", Dur, "15s", "How often continuous insights are evaluated."),
    key("rules.path", Str, "", "Prometheus rule files: a file, or a directory whose `*.yaml` files belong to the default tenant and whose sub-directories hold each tenant's files (`<dir>/<tenant>/*.yaml`). Empty: no rules. Check files with `andante rules test`."),
    key("rules.slo_path", Str, "", "SLO files (`slos:` lists: name, kind availability|latency|ratio, service, operation, objective, window, latency_threshold, error_query/total_query, labels), laid out like `rules.path`. Each SLO becomes error-ratio recording rules, remaining-budget series and multi-window burn-rate alerts; `/api/slos` reports them and manages more."),
    key("rules.max_rules_per_group", Int, "100", "Most rules one group written through the ruler API (`/prometheus/config/v1/rules`) may hold; more get a 429 naming this key."),
    key("rules.max_groups_per_tenant", Int, "200", "Most rule groups one tenant may keep through the ruler API."),
    key("rules.max_slos_per_tenant", Int, "100", "Most SLOs one tenant may define through `/api/slos`."),
    key("rules.evaluation_interval", Dur, "1m", "How often a rule group without its own `interval` is evaluated."),
    key("rules.alertmanager_urls", Str, "", "Comma-separated Alertmanager base URLs (`http://alertmanager:9093`); firing and resolved alerts are posted to each one's `/api/v2/alerts`. Empty: alerts are evaluated and listed but not sent."),
    key("rules.external_url", Str, "http://localhost:3200", "This server's URL as people reach it; alerts link back to their expression in the UI under it (`generatorURL`), and templates see it as `$externalURL`."),
    key("rules.resend_delay", Dur, "1m", "How often a still-firing alert is sent to Alertmanager again."),
    key("rules.outage_tolerance", Dur, "1h", "After a restart an alert keeps the pending time it had (from `ALERTS_FOR_STATE`) if the server was down for less than this."),
    key("demo.enabled", Bool, "false", "Also run `andante gen` against this server's own OTLP/gRPC port (`--demo`)."),
    key("demo.rate", Int, "50", "Traces per second sent by the demo load."),
    key("demo.scenario", Str, "", "A fault the demo load injects, as `andante gen --scenario` (latency, error, saturation, dependency-down, network-delay, bad-deploy, traffic-spike, none), over the `incident` topology; the insights API then finds it. Empty: the plain shop."),
    key("demo.scenario_target", Str, "", "What the demo's fault hits (a service, pod, node, database, external API or `caller->callee`). Empty: chosen by the seed."),
    key("demo.scenario_onset", Dur, "2m", "How long after start the demo's fault begins (it lasts until the server stops)."),
    key("ui.dir", Str, "", "Serve the web UI from this directory (a `crates/ui/dist` being worked on) instead of the copy built into the binary."),
    key("kafka.brokers", Str, "", "Comma list of `host:port` of the Kafka-API brokers the split roles share (Kafka, Redpanda, WarpStream, tansu). Empty: no log; only `all` and `compactor` can run."),
    key("kafka.topic", Str, "andante-spans", "The span topic; created at start when missing."),
    key("kafka.partitions", Int, "8", "Partitions of the span topic when Andante creates it (an existing topic keeps its own count)."),
    key("kafka.replication_factor", Int, "1", "Replication factor of the span topic when Andante creates it; use 3 on a real cluster."),
    key("kafka.produce_timeout", Dur, "5s", "A distributor answers 503 / UNAVAILABLE when the broker has not acknowledged a push within this."),
    key("kafka.max_record_bytes", Int, "1000000", "Largest record produced (keep it under the topic's `max.message.bytes`); a single trace's spans in one push larger than this are refused by name."),
    key("kafka.assignment", Str, "group", "How block-builders, live-stores and generators share the span topic's partitions. `group`: each role is a consumer group at the broker (`<kafka.topic>.<role>`); the coordinator drops a member not heard from for `kafka.session_timeout` and the others take its partitions, sticky and balanced. `ordinal`: partition p belongs to instance p mod `kafka.instances` (Tempo's rule); a dead instance's partitions wait for its restart."),
    key("kafka.session_timeout", Dur, "10s", "With `kafka.assignment: group`: how long the broker waits for a silent member before giving its partitions to the others."),
    key("kafka.member_name", Str, "", "With `kafka.assignment: group`: the name this process announces in its group's metadata, so broker tools (`kafka-consumer-groups --describe`) show which process a member is. Empty: the host name and the HTTP port."),
    key("kafka.instance", Int, "0", "With `kafka.assignment: ordinal`: this instance's ordinal; it owns the partitions p with p mod `kafka.instances` = this."),
    key("kafka.instances", Int, "1", "With `kafka.assignment: ordinal`: how many instances of the role share the partitions."),
    key("distributor.metrics_url", Str, "", "Where a distributor apart sends the metrics it receives (OTLP metrics over gRPC and HTTP, Prometheus remote-write), unchanged: the `http://` base URL of the process holding the series store, a querier (`http://andante-query:3200`). The client gets that process's answer, so nothing is acknowledged before it is stored; one that does not answer is 503 / UNAVAILABLE. Empty: metrics pushes to a distributor are refused (404)."),
    key("distributor.metrics_timeout", Dur, "10s", "How long a distributor waits for the series store's answer to a forwarded metrics push before answering 503."),
    key("log.level", Str, "info", "Log filter, as for `RUST_LOG` (`info`, `andante=debug`, ...)."),
];

impl Key {
    pub fn flag(&self) -> String {
        self.path.replace('_', "-")
    }
    pub fn env(&self) -> String {
        format!(
            "ANDANTE_{}",
            self.path.replace('.', "_").to_ascii_uppercase()
        )
    }
}

/// A configuration duration: Go's syntax (`300ms`, `5s`, `1m30s`, `336h`), or a bare integer
/// as seconds; never negative.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let nanos = andante_model::parse_go_duration(text).map_err(|error| error.message)?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| format!("duration `{text}` is negative"))
}

fn typed(key: &Key, text: &str) -> anyhow::Result<Value> {
    let invalid = |why: String| {
        anyhow!(
            "invalid value `{text}` for `{}` (--{}): {why}",
            key.path,
            key.flag()
        )
    };
    Ok(match key.kind {
        Str => Value::String(text.to_owned()),
        Int => Value::Number(
            text.trim()
                .parse::<u64>()
                .map_err(|e| invalid(e.to_string()))?
                .into(),
        ),
        Bool => Value::Bool(match text.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            other => return Err(invalid(format!("`{other}` is not a boolean"))),
        }),
        Dur => {
            parse_duration(text).map_err(invalid)?;
            Value::String(text.trim().to_owned())
        }
    })
}

fn set(tree: &mut Mapping, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut node = tree;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            node.insert(Value::String(part.to_owned()), value);
            return;
        }
        let child = node
            .entry(Value::String(part.to_owned()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if !child.is_mapping() {
            *child = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(next) = child else { return };
        node = next;
    }
}

/// Overlays `file` onto `base`, recursively.
fn overlay(base: &mut Mapping, file: Mapping) {
    for (name, value) in file {
        match (base.get_mut(&name), value) {
            (Some(Value::Mapping(existing)), Value::Mapping(incoming)) => {
                overlay(existing, incoming)
            }
            (_, value) => {
                base.insert(name, value);
            }
        }
    }
}

/// Builds the effective tree from defaults, the optional file and explicit flag/env values.
pub fn merge(
    file: Option<&str>,
    explicit: &BTreeMap<&'static str, String>,
) -> anyhow::Result<Config> {
    let mut tree = Mapping::new();
    for key in KEYS {
        set(&mut tree, key.path, typed(key, key.default)?);
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read config file `{path}`"))?;
        let parsed: Value =
            serde_yaml::from_str(&text).with_context(|| format!("invalid YAML in `{path}`"))?;
        match parsed {
            Value::Mapping(mapping) => overlay(&mut tree, mapping),
            Value::Null => {}
            _ => bail!("config file `{path}` must be a YAML mapping"),
        }
    }
    for (path, text) in explicit {
        let key = KEYS
            .iter()
            .find(|k| k.path == *path)
            .ok_or_else(|| anyhow!("unknown key `{path}`"))?;
        set(&mut tree, key.path, typed(key, text)?);
    }
    serde_yaml::from_value(Value::Mapping(tree)).context("invalid configuration")
}

fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let text = match value {
        Value::String(text) => text,
        Value::Number(number) => number.to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a duration, got {other:?}"
            )))
        }
    };
    parse_duration(&text).map_err(serde::de::Error::custom)
}

/// A part of Andante that `target` can ask a process to run (Tempo's names); `all` is every
/// part in one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    All,
    Distributor,
    LiveStore,
    BlockBuilder,
    Querier,
    QueryFrontend,
    Compactor,
    Generator,
}

impl Role {
    pub const EVERY: [Role; 8] = [
        Role::All,
        Role::Distributor,
        Role::LiveStore,
        Role::BlockBuilder,
        Role::Querier,
        Role::QueryFrontend,
        Role::Compactor,
        Role::Generator,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Distributor => "distributor",
            Role::LiveStore => "live-store",
            Role::BlockBuilder => "block-builder",
            Role::Querier => "querier",
            Role::QueryFrontend => "query-frontend",
            Role::Compactor => "compactor",
            Role::Generator => "generator",
        }
    }
}

/// `target`: one role or a comma list, sorted and without repeats.
pub fn parse_roles(text: &str) -> Result<Vec<Role>, String> {
    let mut roles = Vec::new();
    for name in text.split(',').map(str::trim) {
        let role = Role::EVERY
            .into_iter()
            .find(|role| role.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Role::EVERY.iter().map(|role| role.name()).collect();
                format!("unknown target `{name}`, expected {}", known.join(", "))
            })?;
        roles.push(role);
    }
    roles.sort();
    roles.dedup();
    if roles.len() > 1 && roles.contains(&Role::All) {
        return Err("target `all` already runs every role; list it alone".to_owned());
    }
    Ok(roles)
}

fn roles<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Role>, D::Error> {
    parse_roles(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "roles")]
    pub target: Vec<Role>,
    pub multitenancy: Multitenancy,
    pub server: Server,
    pub auth: Auth,
    pub otlp: Otlp,
    pub zipkin: Zipkin,
    pub storage: StorageConfig,
    pub wal: WalConfig,
    pub live: Live,
    pub block: Block,
    pub limits: Limits,
    pub query: QueryConfig,
    pub compaction: Compaction,
    pub retention: Retention,
    pub generator: GeneratorSection,
    pub metrics_store: MetricsStore,
    pub insights: Insights,
    pub rules: Rules,
    pub demo: Demo,
    pub ui: Ui,
    pub log: Log,
    pub kafka: Kafka,
    pub distributor: DistributorSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributorSection {
    pub metrics_url: String,
    #[serde(deserialize_with = "duration")]
    pub metrics_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kafka {
    pub brokers: String,
    pub topic: String,
    pub partitions: u32,
    pub replication_factor: i16,
    #[serde(deserialize_with = "duration")]
    pub produce_timeout: Duration,
    pub max_record_bytes: usize,
    pub assignment: Assignment,
    #[serde(deserialize_with = "duration")]
    pub session_timeout: Duration,
    pub member_name: String,
    pub instance: u32,
    pub instances: u32,
}

/// `kafka.assignment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    Group,
    Ordinal,
}

impl QueryConfig {
    pub fn live_stores(&self) -> Vec<String> {
        list(&self.live_stores)
    }

    pub fn queriers(&self) -> Vec<String> {
        list(&self.queriers)
    }
}

impl Kafka {
    pub fn brokers(&self) -> Vec<String> {
        list(&self.brokers)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multitenancy {
    pub enabled: bool,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub http_listen_address: String,
    pub max_request_bytes: usize,
    pub max_connections: usize,
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    pub tls_cert_file: String,
    pub tls_key_file: String,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    pub tokens_file: String,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Otlp {
    pub grpc_listen_address: String,
    pub http_listen_address: String,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zipkin {
    pub listen_address: String,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub path: String,
    pub backend: BackendKind,
    pub bucket: String,
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub allow_http: bool,
    pub account: String,
    #[serde(deserialize_with = "duration")]
    pub blocklist_poll: Duration,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalConfig {
    pub fsync: bool,
    pub max_segment_bytes: u64,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Live {
    #[serde(deserialize_with = "duration")]
    pub trace_idle: Duration,
    #[serde(deserialize_with = "duration")]
    pub trace_max_live: Duration,
    #[serde(deserialize_with = "duration")]
    pub block_max_age: Duration,
    pub block_max_bytes: u64,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    pub row_group_spans: usize,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub ingestion_rate_limit_bytes: u64,
    pub ingestion_burst_size_bytes: u64,
    pub max_bytes_per_trace: u64,
    pub max_live_traces: usize,
    pub max_attribute_bytes: usize,
    #[serde(deserialize_with = "duration")]
    pub max_span_future: Duration,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    pub live_stores: String,
    #[serde(deserialize_with = "duration")]
    pub live_store_timeout: Duration,
    pub queriers: String,
    #[serde(deserialize_with = "duration")]
    pub querier_timeout: Duration,
    pub max_metrics_series: usize,
    pub max_bytes_per_query: u64,
    pub max_concurrent_per_tenant: usize,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compaction {
    pub enabled: bool,
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    pub max_input_blocks: usize,
    pub tier_fan_in: usize,
    pub max_input_bytes: u64,
    #[serde(deserialize_with = "duration")]
    pub compacted_block_retention: Duration,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    #[serde(deserialize_with = "duration")]
    pub block_retention: Duration,
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    /// Per-tenant retention overrides (YAML only): `retention: {per_tenant: {acme: 72h}}`.
    #[serde(default)]
    pub per_tenant: BTreeMap<String, String>,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanMetricsSection {
    pub enabled: bool,
    pub dimensions: String,
    pub include_status_message: bool,
    pub enable_target_info: bool,
    pub filter_include: String,
    pub filter_exclude: String,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceGraphsSection {
    pub enabled: bool,
    pub filter_include: String,
    pub filter_exclude: String,
    #[serde(deserialize_with = "duration")]
    pub wait: Duration,
    pub max_items: usize,
    pub enable_messaging_latency: bool,
    pub enable_virtual_node_label: bool,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteSection {
    pub urls: String,
    pub queue_batches: usize,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSection {
    pub span_metrics: SpanMetricsSection,
    pub service_graphs: ServiceGraphsSection,
    #[serde(deserialize_with = "duration")]
    pub collection_interval: Duration,
    pub max_active_series: usize,
    pub max_cardinality_per_label: usize,
    #[serde(deserialize_with = "duration")]
    pub stale_duration: Duration,
    #[serde(deserialize_with = "duration")]
    pub ingestion_slack: Duration,
    pub remote_write: RemoteWriteSection,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsStore {
    #[serde(deserialize_with = "duration")]
    pub retention: Duration,
    pub max_series_per_tenant: usize,
    pub ingestion_rate: u64,
    pub ingestion_burst_size: u64,
    pub max_exemplars_per_tenant: usize,
    #[serde(deserialize_with = "duration")]
    pub out_of_order_window: Duration,
    pub max_labels_per_series: usize,
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
    #[serde(deserialize_with = "duration")]
    pub block_duration: Duration,
    /// Per-tenant retention overrides (YAML only): `metrics_store: {per_tenant_retention: {acme: 720h}}`.
    #[serde(default)]
    pub per_tenant_retention: BTreeMap<String, String>,
}

impl MetricsStore {
    /// The per-tenant retention overrides in milliseconds, checked at start-up by `validate`.
    pub fn retention_per_tenant_ms(&self) -> std::collections::HashMap<String, i64> {
        self.per_tenant_retention
            .iter()
            .filter_map(|(tenant, text)| {
                parse_duration(text)
                    .ok()
                    .map(|d| (tenant.clone(), d.as_millis() as i64))
            })
            .collect()
    }
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Insights {
    #[serde(deserialize_with = "duration")]
    pub live_window: Duration,
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub path: String,
    pub slo_path: String,
    pub max_rules_per_group: usize,
    pub max_groups_per_tenant: usize,
    pub max_slos_per_tenant: usize,
    #[serde(deserialize_with = "duration")]
    pub evaluation_interval: Duration,
    pub alertmanager_urls: String,
    pub external_url: String,
    #[serde(deserialize_with = "duration")]
    pub resend_delay: Duration,
    #[serde(deserialize_with = "duration")]
    pub outage_tolerance: Duration,
    /// Labels added to every alert sent and seen by templates as `$externalLabels` (YAML only):
    /// `rules: {external_labels: {cluster: eu-1}}`.
    #[serde(default)]
    pub external_labels: std::collections::BTreeMap<String, String>,
}

impl Rules {
    pub fn alertmanager_urls(&self) -> Vec<String> {
        self.alertmanager_urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Demo {
    pub enabled: bool,
    pub rate: u64,
    pub scenario: String,
    pub scenario_target: String,
    #[serde(deserialize_with = "duration")]
    pub scenario_onset: Duration,
}

impl Demo {
    /// The demo's fault, if one is configured (checked by `Config::validate`).
    pub fn scenario(&self) -> anyhow::Result<Option<andante_gen::Scenario>> {
        let name = self.scenario.trim();
        if name.is_empty() {
            return Ok(None);
        }
        <andante_gen::Scenario as clap::ValueEnum>::from_str(name, true)
            .map(Some)
            .map_err(|_| {
                let known: Vec<String> =
                    <andante_gen::Scenario as clap::ValueEnum>::value_variants()
                        .iter()
                        .filter_map(|variant| {
                            clap::ValueEnum::to_possible_value(variant)
                                .map(|v| v.get_name().to_owned())
                        })
                        .collect();
                anyhow!(
                    "demo.scenario: unknown scenario `{name}`; one of {}",
                    known.join(", ")
                )
            })
    }
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ui {
    pub dir: String,
}

impl Ui {
    pub fn source(&self) -> andante_ui::Source {
        match self.dir.trim() {
            "" => andante_ui::Source::Embedded,
            dir => andante_ui::Source::Directory(dir.into()),
        }
    }
}
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub level: String,
}

impl Retention {
    /// The retention of `tenant`, checked at start-up by `validate`.
    pub fn for_tenant(&self, tenant: &str) -> Duration {
        self.per_tenant
            .get(tenant)
            .and_then(|text| parse_duration(text).ok())
            .unwrap_or(self.block_retention)
    }
}

/// Splits a comma-separated list key, dropping blanks.
pub fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Config {
    pub fn auth_enabled(&self) -> bool {
        !self.auth.tokens_file.trim().is_empty()
    }

    pub fn tls_enabled(&self) -> bool {
        !self.server.tls_cert_file.trim().is_empty()
    }

    pub fn remote_write_urls(&self) -> Vec<String> {
        list(&self.generator.remote_write.urls)
    }

    /// Which roles can run apart, and with what: the log for the ingest roles.
    fn validate_roles(&self) -> anyhow::Result<()> {
        if self.target == [Role::All] {
            return Ok(());
        }
        let names: Vec<&str> = self.target.iter().map(|role| role.name()).collect();
        let needs_log = self.target.iter().any(|role| {
            matches!(
                role,
                Role::Distributor | Role::BlockBuilder | Role::Generator | Role::LiveStore
            )
        });
        if needs_log && self.kafka.brokers().is_empty() {
            bail!(
                "target `{}` needs the Kafka-compatible log: set `kafka.brokers`",
                names.join(",")
            );
        }
        if self.target.contains(&Role::Generator) && self.remote_write_urls().is_empty() {
            bail!(
                "target `{}`: a generator apart sends its series by remote-write: set `generator.remote_write.urls` (a querier's `/api/v1/push`)",
                names.join(",")
            );
        }
        let metrics_url = self.distributor.metrics_url.trim();
        if !metrics_url.is_empty() {
            match metrics_url.parse::<axum::http::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
                _ => bail!("distributor.metrics_url: `{metrics_url}` is not an `http://` base URL (`http://andante-query:3200`)"),
            }
        }
        let urls = [
            (
                "query.live_stores",
                self.query.live_stores(),
                "live-store-0",
            ),
            ("query.queriers", self.query.queriers(), "querier-0"),
        ];
        for (key, list, example) in urls {
            for url in list {
                match url.parse::<axum::http::Uri>() {
                    Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
                    _ => bail!(
                        "{key}: `{url}` is not an `http://` base URL (`http://{example}:3200`)"
                    ),
                }
            }
        }
        if self.kafka.assignment == Assignment::Group
            && (self.kafka.instance != 0 || self.kafka.instances != 1)
        {
            bail!("kafka.instance and kafka.instances apply only with `kafka.assignment: ordinal`; with `group` the broker's consumer groups share the partitions");
        }
        if self.kafka.assignment == Assignment::Group
            && self.kafka.session_timeout < Duration::from_secs(1)
        {
            bail!(
                "kafka.session_timeout must be at least 1s (members heartbeat every third of it)"
            );
        }
        if self.kafka.instances == 0 || self.kafka.instance >= self.kafka.instances {
            bail!(
                "kafka.instance ({}) must be below kafka.instances ({})",
                self.kafka.instance,
                self.kafka.instances
            );
        }
        if self.kafka.partitions == 0 {
            bail!("kafka.partitions must be at least 1");
        }
        Ok(())
    }

    /// Checks what serde cannot: enumerations and cross-key rules.
    pub fn validate(&self) -> anyhow::Result<()> {
        let ui_dir = self.ui.dir.trim();
        if !ui_dir.is_empty() && !std::path::Path::new(ui_dir).join("index.html").is_file() {
            bail!("ui.dir `{ui_dir}` has no index.html: point it at a built `crates/ui/dist`");
        }
        if self.rules.evaluation_interval < Duration::from_secs(1) {
            bail!("rules.evaluation_interval must be at least 1s");
        }
        if self.compaction.tier_fan_in < 2 {
            bail!("compaction.tier_fan_in must be at least 2 (a tier of one block has nothing to merge with)");
        }
        for url in self.rules.alertmanager_urls() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("rules.alertmanager_urls: `{url}` is not an http:// or https:// URL");
            }
        }
        self.validate_roles()?;
        for url in self.remote_write_urls() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("generator.remote_write.urls: `{url}` is not an http:// or https:// URL");
            }
        }
        let cert = !self.server.tls_cert_file.trim().is_empty();
        let key = !self.server.tls_key_file.trim().is_empty();
        if cert != key {
            bail!("`server.tls_cert_file` and `server.tls_key_file` must be set together (TLS needs both)");
        }
        if self.demo.enabled && (cert || self.auth_enabled()) {
            bail!(
                "`demo.enabled` sends plain, unauthenticated OTLP to this server: it cannot run with TLS or `auth.tokens_file`"
            );
        }
        self.demo.scenario()?;
        if !self.insights.live_window.is_zero() {
            if self.insights.interval < Duration::from_secs(1) {
                bail!("insights.interval must be at least 1s");
            }
            if self.insights.live_window > Duration::from_secs(3600) {
                bail!("insights.live_window must be at most 1h: its fold is held in memory (~45 bytes per span of the window); ask /api/insights/rca for longer windows");
            }
        }
        for (tenant, text) in &self.retention.per_tenant {
            parse_duration(text)
                .map_err(|error| anyhow!("retention.per_tenant.{tenant}: {error}"))?;
        }
        for (tenant, text) in &self.metrics_store.per_tenant_retention {
            parse_duration(text)
                .map_err(|error| anyhow!("metrics_store.per_tenant_retention.{tenant}: {error}"))?;
        }
        let block = self.metrics_store.block_duration;
        if block < Duration::from_secs(60) || (24 * 3600) % block.as_secs() != 0 {
            bail!("metrics_store.block_duration must be at least 1m and divide 24h (e.g. 2h)");
        }
        Ok(())
    }
}

/// `docs/CONFIG.md`, generated from `KEYS`.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n<!-- Generated by `andante config-reference`; do not edit by hand. -->\n\n\
         Every key can be set in the YAML file given by `--config.file`, by its flag, or by its \
         environment variable. Precedence, lowest first: default, file, environment, flag. \
         Durations are written like `500ms`, `5s`, `1m30s`, `336h`.\n\n\
         | YAML key | flag | environment | default | description |\n|---|---|---|---|---|\n",
    );
    for key in KEYS {
        let default = if key.default.is_empty() {
            "(empty)".to_owned()
        } else {
            format!("`{}`", key.default)
        };
        out.push_str(&format!(
            "| `{}` | `--{}` | `{}` | {} | {} |\n",
            key.path,
            key.flag(),
            key.env(),
            default,
            key.help
        ));
    }
    out.push_str(
        "\nYAML only: `retention.per_tenant`, a map from tenant ID to that tenant's retention \
         (for example `retention: {per_tenant: {acme: 72h}}`), and likewise \
         `metrics_store.per_tenant_retention` for the series store.\n",
    );
    out.push_str(SECURITY_SECTION);
    out
}

/// The end of `docs/CONFIG.md`: how to restrict who can reach and use the server.
const SECURITY_SECTION: &str = r#"
## Restricting access: bind address, authentication, TLS

By default, as in Tempo, every listener binds all interfaces (`:3200`, `:4317`, `:4318`, `:9411`)
with no authentication and no TLS. Three settings narrow that; they combine freely.

**Bind address.** To accept connections only from this machine (behind a local proxy or
collector), give loopback addresses; an empty address turns a receiver off:

```sh
andante serve --server.http-listen-address 127.0.0.1:3200 \
  --otlp.grpc-listen-address 127.0.0.1:4317 --otlp.http-listen-address 127.0.0.1:4318 \
  --zipkin.listen-address ''
```

**Authentication** (`auth.tokens_file`). A YAML list of credentials, read at start-up (restart
to change it; a mistake stops the server with the entry, field and line at fault):

```yaml
- name: grafana                 # optional, used in logs
  token: 6f1c0e4e...            # Authorization: Bearer 6f1c0e4e...
  tenants: [team-a, team-b]     # the first is the default tenant
- username: collector           # HTTP basic authentication
  password: hunter2
  tenants: [team-a]
```

Every request on every listener (query API, Grafana's streaming gRPC, `/metrics`, `/api/echo`,
OTLP/gRPC, OTLP/HTTP, Zipkin) then needs one of these credentials; only `/ready` stays open for
load-balancer probes, and the web UI's static files (`/`, `/ui/…`: code and styles, no data), so
the UI can show its own login form and send the credential with every API call. Missing or wrong
credentials answer 401 with `WWW-Authenticate` (gRPC: status 16 `UNAUTHENTICATED`); a request
with `X-Requested-With: XMLHttpRequest` gets only the `Bearer` challenge, because browsers answer
a `Basic` one with their own dialog. Only SHA-256 digests of the secrets are kept in memory, compared in
constant time.

With `multitenancy.enabled`, each credential may read and write only its `tenants`: an
`X-Scope-OrgID` naming another tenant answers 403 (gRPC: 7 `PERMISSION_DENIED`), and a request
without the header acts for the credential's first tenant, so clients need not send it. With
multitenancy off all data belongs to `single-tenant`, `tenants` may be left out and is ignored,
and any valid credential may read and write everything.

A live-store apart answers queriers at `/internal/live/`, and a querier apart answers
query-frontends at `/internal/query/`, without credentials and over the same listener, as
Tempo's components talk to each other: their ports belong on the cluster's network only, and
`query.live_stores` and `query.queriers` take `http://` URLs.

In Grafana's Tempo data source, turn on *Basic auth* or add the header
`Authorization: Bearer <token>`; OpenTelemetry SDKs and the Collector take
`headers: {authorization: "Bearer <token>"}`. A token is best made with `openssl rand -hex 32`.

**TLS** (`server.tls_cert_file`, `server.tls_key_file`). PEM files, read at start-up; every
listener then speaks TLS only (HTTP/1.1 and HTTP/2, ALPN `h2` for gRPC), and a plain-HTTP request
to a TLS port answers 400. The handshake must finish within `server.header_read_timeout`. Clients
use `https://` URLs, and gRPC clients TLS credentials (for the Collector, `tls: {ca_file: ...}`
instead of `insecure: true`). Credentials sent without TLS can be read by anyone on the path, so
turn TLS on with authentication unless a TLS-terminating proxy sits on the same host.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("336h"), Ok(Duration::from_secs(336 * 3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(
            parse_duration("-5s"),
            Err("duration `-5s` is negative".to_owned())
        );
        // Go's syntax has no day unit; Tempo's configuration writes `336h`.
        assert!(parse_duration("14d").is_err());
    }

    #[test]
    fn precedence_is_default_then_file_then_explicit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("andante.yaml");
        std::fs::write(
            &path,
            "storage:\n  path: /from/file\nlive:\n  trace_idle: 2s\n",
        )
        .expect("write");
        let mut explicit = BTreeMap::new();
        explicit.insert("storage.path", "/from/flag".to_owned());
        let config = merge(path.to_str(), &explicit).expect("valid");
        assert_eq!(config.storage.path, "/from/flag");
        assert_eq!(config.live.trace_idle, Duration::from_secs(2));
        assert_eq!(config.server.http_listen_address, ":3200");
        assert!(!config.multitenancy.enabled);
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut explicit = BTreeMap::new();
        explicit.insert("limits.max_live_traces", "many".to_owned());
        let error = merge(None, &explicit).expect_err("invalid").to_string();
        assert!(
            error.contains("limits.max_live_traces") && error.contains("--limits.max-live-traces"),
            "{error}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "storage:\n  pth: typo\n").expect("write");
        let error = format!(
            "{:#}",
            merge(path.to_str(), &BTreeMap::new()).expect_err("unknown key")
        );
        assert!(error.contains("pth"), "{error}");
    }

    #[test]
    fn target_is_a_role_or_a_comma_list_of_roles() {
        assert_eq!(parse_roles("all"), Ok(vec![Role::All]));
        assert_eq!(
            parse_roles("querier, query-frontend,querier"),
            Ok(vec![Role::Querier, Role::QueryFrontend])
        );
        let error = parse_roles("ingester").unwrap_err();
        assert!(
            error.contains("`ingester`") && error.contains("live-store"),
            "{error}"
        );
        assert!(parse_roles("all,compactor").is_err());
        assert!(parse_roles("").is_err());
        let mut explicit = BTreeMap::new();
        explicit.insert("target", "compactor".to_owned());
        let config = merge(None, &explicit).expect("a known role parses");
        assert_eq!(config.target, vec![Role::Compactor]);
        config.validate().expect("a compactor runs beside `all`");
        // Queriers read blocks from the shared storage: no log needed.
        explicit.insert("target", "querier,compactor".to_owned());
        let config = merge(None, &explicit).expect("known roles parse");
        config.validate().expect("queriers read blocks");
        explicit.insert("target", "distributor".to_owned());
        let config = merge(None, &explicit).expect("known roles parse");
        let error = config
            .validate()
            .expect_err("a distributor needs the log")
            .to_string();
        assert!(
            error.contains("distributor") && error.contains("kafka.brokers"),
            "{error}"
        );
        explicit.insert("kafka.brokers", "127.0.0.1:9092".to_owned());
        let config = merge(None, &explicit).expect("known roles parse");
        config.validate().expect("a distributor with a log");
        explicit.insert("target", "live-store".to_owned());
        let config = merge(None, &explicit).expect("known roles parse");
        config.validate().expect("a live-store with a log");
        explicit.insert("query.live_stores", "live-store-0:3200".to_owned());
        let config = merge(None, &explicit).expect("a string parses");
        let error = config.validate().expect_err("no scheme").to_string();
        assert!(error.contains("query.live_stores"), "{error}");
        explicit.remove("query.live_stores");
        explicit.insert(
            "query.queriers",
            "http://querier-0:3200,https://q".to_owned(),
        );
        let config = merge(None, &explicit).expect("a string parses");
        let error = config.validate().expect_err("not http").to_string();
        assert!(error.contains("query.queriers: `https://q`"), "{error}");
        explicit.remove("query.queriers");
        explicit.insert("target", "generator".to_owned());
        let config = merge(None, &explicit).expect("known roles parse");
        let error = config.validate().expect_err("nowhere to send").to_string();
        assert!(error.contains("generator.remote_write.urls"), "{error}");
        explicit.insert(
            "generator.remote_write.urls",
            "http://127.0.0.1:3200/api/v1/push".to_owned(),
        );
        let config = merge(None, &explicit).expect("known roles parse");
        config.validate().expect("a generator with a destination");
        explicit.insert("target", "block-builder".to_owned());
        explicit.insert("kafka.instance", "1".to_owned());
        explicit.insert("kafka.instances", "2".to_owned());
        let config = merge(None, &explicit).expect("known roles parse");
        let error = config
            .validate()
            .expect_err("ordinals with groups")
            .to_string();
        assert!(error.contains("kafka.assignment: ordinal"), "{error}");
        explicit.insert("kafka.assignment", "ordinal".to_owned());
        let config = merge(None, &explicit).expect("known roles parse");
        config.validate().expect("an ordinal below the instances");
        explicit.insert("kafka.instance", "2".to_owned());
        let config = merge(None, &explicit).expect("known roles parse");
        let error = config
            .validate()
            .expect_err("ordinal too large")
            .to_string();
        assert!(error.contains("kafka.instance"), "{error}");
        explicit.insert("kafka.assignment", "groups".to_owned());
        let error = format!("{:#}", merge(None, &explicit).expect_err("unknown"));
        assert!(
            error.contains("unknown variant `groups`, expected `group` or `ordinal`"),
            "{error}"
        );
    }

    #[test]
    fn a_tier_fan_in_below_two_is_refused_at_start() {
        for (fan_in, valid) in [("0", false), ("1", false), ("2", true), ("8", true)] {
            let mut explicit = BTreeMap::new();
            explicit.insert("compaction.tier_fan_in", fan_in.to_owned());
            let config = merge(None, &explicit).expect("an integer");
            assert_eq!(config.compaction.tier_fan_in.to_string(), fan_in);
            match config.validate() {
                Ok(()) => assert!(valid, "{fan_in} accepted"),
                Err(error) => {
                    assert!(!valid, "{fan_in}: {error}");
                    assert!(
                        error.to_string().contains("compaction.tier_fan_in"),
                        "{error}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_unknown_storage_backend_is_refused_at_start() {
        let mut explicit = BTreeMap::new();
        explicit.insert("storage.backend", "nfs".to_owned());
        let error = format!("{:#}", merge(None, &explicit).expect_err("unknown backend"));
        assert!(error.contains("nfs") && error.contains("s3"), "{error}");
    }

    #[test]
    fn config_reference_doc_is_current() {
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md"))
                .expect("docs/CONFIG.md exists");
        assert_eq!(
            committed,
            reference_markdown(),
            "regenerate with `andante config-reference > docs/CONFIG.md`"
        );
    }
}
