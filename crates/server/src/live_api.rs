//! A live-store's internal HTTP API, read by queriers through `andante_query::live_remote`:
//! the tenants it holds data of, and a tenant's held traces (all, or those of `ids`) as
//! live-traces v1. Not a public API: no Tempo client calls it. Served outside
//! `auth.tokens_file` (queriers hold no credential), like the traffic between Tempo's
//! components, so a live-store's port belongs on the cluster's network only.

use std::collections::HashMap;
use std::sync::Arc;

use andante_live::wire::{encode_live_traces, LIVE_TRACES_CONTENT_TYPE};
use andante_model::{TenantId, TraceId};
use andante_query::LiveSource;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Most IDs one request may name (a querier sends at most 200).
const MAX_IDS: usize = 10_000;

pub fn router(stores: Arc<dyn LiveSource>) -> axum::Router {
    axum::Router::new()
        .route("/internal/live/v1/tenants", get(tenants))
        .route("/internal/live/v1/traces", get(traces))
        .with_state(stores)
}

async fn tenants(State(stores): State<Arc<dyn LiveSource>>) -> Response {
    let names: Vec<String> = stores
        .tenants()
        .await
        .value
        .iter()
        .map(|tenant| tenant.as_str().to_owned())
        .collect();
    axum::Json(names).into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

async fn traces(
    State(stores): State<Arc<dyn LiveSource>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(tenant) = params.get("tenant") else {
        return bad_request("missing `tenant`".to_owned());
    };
    let tenant = match TenantId::new(tenant) {
        Ok(tenant) => tenant,
        Err(error) => return bad_request(format!("invalid tenant: {error}")),
    };
    let traces = match params.get("ids") {
        None => stores.snapshot(&tenant).await.value,
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
            let mut found: andante_live::wire::LiveTraces = stores
                .find(&tenant, &parsed)
                .await
                .value
                .into_iter()
                .collect();
            found.sort_unstable_by_key(|(trace_id, _)| *trace_id);
            found
        }
    };
    (
        [(header::CONTENT_TYPE, LIVE_TRACES_CONTENT_TYPE)],
        encode_live_traces(&traces),
    )
        .into_response()
}
