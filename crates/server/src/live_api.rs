//! A live-store's internal HTTP API, read by queriers through `andante_query::live_remote`:
//! the tenants it holds data of, a tenant's held traces (all, or those of `ids`, read after
//! write: `LiveStoreRole::read_after_write`) as live-traces v1, and search stage 1 run here (`POST /internal/live/v1/search`, live-matches
//! v1), so a search moves 16 bytes per held trace instead of the traces. Not a public API: no Tempo client calls it. Served outside
//! `auth.tokens_file` (queriers hold no credential), like the traffic between Tempo's
//! components, so a live-store's port belongs on the cluster's network only.

use std::collections::HashMap;
use std::sync::Arc;

use andante_live::wire::{
    encode_live_matches, encode_live_traces, LIVE_MATCHES_CONTENT_TYPE, LIVE_TRACES_CONTENT_TYPE,
};
use andante_log::LiveStoreRole;
use andante_model::{TenantId, TraceId};
use andante_query::live_source::LiveSearch;
use andante_query::LiveSource;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

/// Most IDs one request may name (a querier sends at most 200).
const MAX_IDS: usize = 10_000;

pub fn router(role: Arc<LiveStoreRole>) -> axum::Router {
    let stores: Arc<dyn LiveSource> = Arc::new(crate::serve::own_live_stores(&role));
    let cores = std::thread::available_parallelism().map_or(2, |count| count.get());
    let search_state = SearchState {
        stores: stores.clone(),
        cpu: Arc::new(tokio::sync::Semaphore::new(cores)),
    };
    axum::Router::new()
        .route("/internal/live/v1/tenants", get(tenants))
        .with_state(stores.clone())
        .merge(
            axum::Router::new()
                .route("/internal/live/v1/traces", get(traces))
                .with_state(TracesState { stores, role }),
        )
        .merge(
            axum::Router::new()
                .route("/internal/live/v1/search", post(search))
                .with_state(search_state),
        )
}

/// The stores and the permits for stage-1 evaluation: one per core, so concurrent searches
/// queue rather than starve the consumers feeding the stores.
#[derive(Clone)]
struct SearchState {
    stores: Arc<dyn LiveSource>,
    cpu: Arc<tokio::sync::Semaphore>,
}

#[derive(serde::Deserialize)]
struct SearchBody {
    tenant: String,
    q: String,
    start: u64,
    end: u64,
}

async fn search(
    State(state): State<SearchState>,
    body: Result<axum::Json<SearchBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match body {
        Ok(axum::Json(body)) => body,
        Err(rejection) => return json_refusal(rejection),
    };
    let tenant = match TenantId::new(&body.tenant) {
        Ok(tenant) => tenant,
        Err(error) => return bad_request(format!("invalid tenant: {error}")),
    };
    let query = match andante_traceql::parse(&body.q) {
        Ok(query) => query,
        Err(error) => return bad_request(format!("invalid TraceQL query: {error}")),
    };
    let request = LiveSearch {
        condition: andante_traceql::TraceCondition::of(&query),
        text: body.q,
        start: body.start,
        end: body.end,
        cpu: state.cpu,
    };
    let found = state.stores.search(&tenant, &request).await;
    if !found.failures.is_empty() {
        return (StatusCode::SERVICE_UNAVAILABLE, found.failures.join("; ")).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, LIVE_MATCHES_CONTENT_TYPE.to_owned()),
            covered(&found.covered),
        ],
        encode_live_matches(&found.value),
    )
        .into_response()
}

/// The stores, and the role that makes a read by ID wait for the log's end.
#[derive(Clone)]
struct TracesState {
    stores: Arc<dyn LiveSource>,
    role: Arc<LiveStoreRole>,
}

async fn tenants(State(stores): State<Arc<dyn LiveSource>>) -> Response {
    let read = stores.tenants().await;
    let names: Vec<String> = read
        .value
        .iter()
        .map(|tenant| tenant.as_str().to_owned())
        .collect();
    ([covered(&read.covered)], axum::Json(names)).into_response()
}

/// The partitions an answer covers, for the querier to know which live-stores' silence the
/// others make up for.
fn covered(covered: &Option<andante_query::Covered>) -> (header::HeaderName, String) {
    (
        header::HeaderName::from_static(andante_query::COVERED_HEADER),
        covered
            .as_ref()
            .map(andante_query::Covered::to_header)
            .unwrap_or_default(),
    )
}

/// The answer to an internal request body that is not the JSON asked for (400), or is past the
/// body limit (413, so the caller knows which).
pub(crate) fn json_refusal(rejection: axum::extract::rejection::JsonRejection) -> Response {
    let status = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, rejection.body_text()).into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

async fn traces(
    State(TracesState { stores, role }): State<TracesState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(tenant) = params.get("tenant") else {
        return bad_request("missing `tenant`".to_owned());
    };
    let tenant = match TenantId::new(tenant) {
        Ok(tenant) => tenant,
        Err(error) => return bad_request(format!("invalid tenant: {error}")),
    };
    let (traces, cover) = match params.get("ids") {
        None => {
            let read = stores.snapshot(&tenant).await;
            (read.value, read.covered)
        }
        Some(ids) => {
            let ids: Vec<&str> = ids.split(',').filter(|id| !id.is_empty()).collect();
            if ids.len() > MAX_IDS {
                return bad_request(format!("{} trace IDs asked; at most {MAX_IDS}", ids.len()));
            }
            let mut parsed = Vec::with_capacity(ids.len());
            for (index, id) in ids.iter().enumerate() {
                match TraceId::from_hex(id) {
                    Ok(trace_id) => parsed.push(trace_id),
                    Err(error) => {
                        return bad_request(format!(
                            "trace ID {} of `ids` (`{id}`): {error}",
                            index + 1
                        ))
                    }
                }
            }
            // A lagging live-store is unavailable (retryable) for these IDs, never "not held".
            if let Err(lag) = role.read_after_write(&tenant, &parsed).await {
                return (StatusCode::SERVICE_UNAVAILABLE, lag).into_response();
            }
            let read = stores.find(&tenant, &parsed).await;
            let mut found: andante_live::wire::LiveTraces = read.value.into_iter().collect();
            found.sort_unstable_by_key(|(trace_id, _)| *trace_id);
            (found, read.covered)
        }
    };
    (
        [
            (header::CONTENT_TYPE, LIVE_TRACES_CONTENT_TYPE.to_owned()),
            covered(&cover),
        ],
        encode_live_traces(&traces),
    )
        .into_response()
}
