//! Andante's network surface: the receivers (OTLP/gRPC, OTLP/HTTP, Zipkin) and Tempo's HTTP
//! query API, on the ports Tempo users expect. Handlers parse and check the request, call the
//! ingest, live and query crates, and map every failure through `ErrorKind` to one status code,
//! so each endpoint answers a given failure the same way.

pub mod auth;
mod error;
pub mod forward_metrics;
mod gate;
mod ingest_grpc;
mod ingest_http;
mod ingest_metrics;
mod insights;
pub mod insights_live;
mod mcp;
pub mod metrics;
mod metrics_query;
mod ops;
mod prometheus;
mod ruler;
mod search;
mod slos;
mod streaming;
mod tempo_json;
pub mod tempopb;
mod tenant;
mod traces;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use andante_live::LiveStore;
use andante_query::Querier;
use axum::routing::{get, post};
use axum::Router;

pub use error::ApiError;
pub use gate::QueryGate;
pub use ingest_grpc::{metrics_service, trace_service};
pub use ingest_metrics::StoreSink;
pub use insights::AlertRootCauses;
pub use metrics_query::TraceqlRuleSource;

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub multitenancy_enabled: bool,
    pub max_request_bytes: usize,
    pub query: QueryLimits,
}

/// Per-request bounds on the query side, each answered with an error or a marked partial
/// answer that names its configuration key.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    /// How long a search or TraceQL metrics query may run (`query.timeout`).
    pub timeout: std::time::Duration,
    /// Most series a TraceQL metrics answer may hold (`query.max_metrics_series`).
    pub max_metrics_series: usize,
    /// Most block bytes one search or metrics query may read; 0 is no limit
    /// (`query.max_bytes_per_query`).
    pub max_bytes_per_query: u64,
    /// Most queries one tenant may run at once (`query.max_concurrent_per_tenant`).
    pub max_concurrent_per_tenant: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: std::time::Duration::from_secs(30),
            max_metrics_series: 10_000,
            max_bytes_per_query: 0,
            max_concurrent_per_tenant: 20,
        }
    }
}

/// Shared by every handler.
pub struct AppState {
    pub config: ApiConfig,
    pub live: Arc<LiveStore>,
    /// The trace push pipeline every receiver calls; its sink is `live` in `all`.
    pub push: andante_ingest::PushService,
    pub querier: Querier,
    pub metrics: metrics::Metrics,
    /// Generated series for the Prometheus read API.
    pub metrics_store: Arc<andante_tsdb::Store>,
    /// The store's durable write path, for pushed samples.
    pub metrics_head: Arc<andante_tsdb::MetricsHead>,
    /// False once shutdown begins, so `/ready` tells load balancers to stop sending.
    pub ready: AtomicBool,
    /// Running queries per tenant (`query.max_concurrent_per_tenant`).
    pub query_gate: Arc<gate::QueryGate>,
    /// The latest continuous insights evaluation per tenant.
    pub live_insights: Arc<insights_live::LiveInsights>,
    /// Recording and alerting rules, for the rules and alerts listings.
    pub rules: Arc<andante_rules::Manager>,
    /// Rule groups managed over the ruler API.
    pub ruler: Arc<andante_rules::ruler::Ruler>,
    /// SLOs (files and `/api/slos`).
    pub slos: Arc<andante_rules::slos::Slos>,
    /// The metric-sample push pipeline of every metrics receiver.
    pub samples: andante_ingest::SamplePushService,
    /// Set in a distributor apart: metrics pushes go on to the series store instead.
    pub metrics_forward: Option<forward_metrics::MetricsForward>,
}

pub type SharedState = Arc<AppState>;

/// Tempo's query API and operational endpoints (`--server.http-listen-address`), and the MCP
/// server at `/api/mcp`, whose tools call into the rest of this router.
pub fn query_router(state: SharedState) -> Router {
    let api = api_router(state.clone());
    api.clone()
        .nest_service("/api/mcp", mcp::service(state, api))
}

fn api_router(state: SharedState) -> Router {
    // Every query route counts against its tenant's concurrency limit; health and metrics do not.
    let queries = Router::new()
        .route("/api/traces/{trace_id}", get(traces::trace_by_id_v1))
        .route("/api/v2/traces/{trace_id}", get(traces::trace_by_id_v2))
        .route("/api/search", get(search::search))
        .route("/api/search/tags", get(search::tags_v1))
        .route("/api/v2/search/tags", get(search::tags_v2))
        .route("/api/search/tag/{tag}/values", get(search::tag_values_v1))
        .route(
            "/api/v2/search/tag/{tag}/values",
            get(search::tag_values_v2),
        )
        .route(
            "/prometheus/api/v1/query",
            get(prometheus::query).post(prometheus::query),
        )
        .route(
            "/prometheus/api/v1/query_range",
            get(prometheus::query_range).post(prometheus::query_range),
        )
        .route(
            "/prometheus/api/v1/series",
            get(prometheus::series).post(prometheus::series),
        )
        .route(
            "/prometheus/api/v1/labels",
            get(prometheus::labels).post(prometheus::labels),
        )
        .route(
            "/prometheus/api/v1/label/{name}/values",
            get(prometheus::label_values),
        )
        .route(
            "/prometheus/api/v1/query_exemplars",
            get(prometheus::query_exemplars).post(prometheus::query_exemplars),
        )
        .route(
            "/prometheus/api/v1/metadata",
            get(prometheus::metadata).post(prometheus::metadata),
        )
        .route(
            "/prometheus/api/v1/rules",
            get(prometheus::rules).post(prometheus::rules),
        )
        .route(
            "/prometheus/api/v1/alerts",
            get(prometheus::alerts).post(prometheus::alerts),
        )
        .route("/prometheus/config/v1/rules", get(ruler::list_all))
        .route(
            "/prometheus/config/v1/rules/{namespace}",
            get(ruler::list_namespace)
                .post(ruler::set_group)
                .delete(ruler::delete_namespace),
        )
        .route(
            "/prometheus/config/v1/rules/{namespace}/{group}",
            get(ruler::get_group).delete(ruler::delete_group),
        )
        .route("/api/slos", get(slos::list))
        .route(
            "/api/slos/{name}",
            get(slos::get_one).put(slos::put).delete(slos::delete),
        )
        .route("/api/metrics/query_range", get(metrics_query::query_range))
        .route("/api/metrics/query", get(metrics_query::query_instant))
        .route("/api/insights/graph", get(insights::graph))
        .route("/api/insights/assertions", get(insights::assertions))
        .route("/api/insights/rca", get(insights::rca))
        .route("/api/insights/live", get(insights_live::live))
        .route_service(
            "/tempopb.StreamingQuerier/{method}",
            streaming::streaming_querier(state.clone()),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            gate::Admission::of(&state),
            gate::admit,
        ));
    Router::new()
        .merge(queries)
        .route(
            "/prometheus/api/v1/status/buildinfo",
            get(prometheus::buildinfo),
        )
        .merge(remote_write_routes(&state))
        .merge(ops_routes())
        .fallback(ops::not_found)
        .with_state(state)
}

/// Metrics pushed to the HTTP port: Prometheus remote-write, and OTLP at Mimir's path
/// (`/otlp/v1/metrics`, where a distributor apart forwards what it receives); into the series
/// store, or on to it from a distributor apart.
fn remote_write_routes(state: &SharedState) -> Router<SharedState> {
    let limit = axum::extract::DefaultBodyLimit::max(state.config.max_request_bytes);
    Router::new()
        .route(
            "/api/v1/push",
            post(ingest_metrics::remote_write).layer(limit),
        )
        .route(
            "/otlp/v1/metrics",
            post(ingest_metrics::otlp_metrics).layer(limit),
        )
}

/// `/ready`, `/metrics`, `/api/echo`, `/api/status/buildinfo`: on every process's HTTP port.
fn ops_routes() -> Router<SharedState> {
    Router::new()
        .route("/api/echo", get(ops::echo))
        .route("/api/status/buildinfo", get(ops::buildinfo))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
}

/// The operational endpoints alone, for a process without the query API (a distributor, a
/// block-builder or a generator apart); a distributor that forwards metrics takes remote-write
/// here too.
pub fn ops_router(state: SharedState) -> Router {
    let routes = if state.metrics_forward.is_some() {
        ops_routes().merge(remote_write_routes(&state))
    } else {
        ops_routes()
    };
    routes.fallback(ops::not_found).with_state(state)
}

/// OTLP/HTTP (`--otlp.http-listen-address`).
pub fn otlp_http_router(state: SharedState) -> Router {
    Router::new()
        .route("/v1/traces", post(ingest_http::otlp_traces))
        .route("/v1/metrics", post(ingest_metrics::otlp_metrics))
        .fallback(ops::not_found)
        .with_state(state)
}

/// Zipkin v2 (`--zipkin.listen-address`).
pub fn zipkin_router(state: SharedState) -> Router {
    Router::new()
        .route("/api/v2/spans", post(ingest_http::zipkin_spans))
        .fallback(ops::not_found)
        .with_state(state)
}
