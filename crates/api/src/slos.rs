//! `/api/slos`: list SLOs with their report (current error ratios, burn rates, remaining error
//! budget, burn-rate alerts), read one, and create, replace or delete the ones not defined in
//! files. A body is one SLO in YAML or JSON (the fields of `rules.slo_path` files).

use andante_model::ErrorKind;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{rules_error, ApiError};
use crate::tenant::push_tenant;
use crate::SharedState;

fn tenant(state: &SharedState, headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(push_tenant(headers, state.config.multitenancy_enabled)?
        .as_str()
        .to_owned())
}

fn now_ms() -> i64 {
    (andante_model::now_unix_nanos() / 1_000_000) as i64
}

async fn report(
    state: SharedState,
    tenant: String,
    name: Option<String>,
) -> Result<Response, ApiError> {
    // The report runs a PromQL query per window: CPU work, off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        state
            .slos
            .report(&state.metrics_store, &tenant, name.as_deref(), now_ms())
    })
    .await
    .map_err(|_| ApiError::new(ErrorKind::Internal, "SLO report failed"))?;
    Ok(Json(answer.map_err(rules_error)?).into_response())
}

pub async fn list(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    report(state, tenant, None).await
}

pub async fn get_one(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    report(state, tenant, Some(name)).await
}

pub async fn put(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the SLO is not UTF-8 text"))?;
    let spec = state
        .slos
        .put(&tenant, &name, text)
        .await
        .map_err(rules_error)?;
    Ok(Json(serde_json::json!({ "slo": spec })).into_response())
}

pub async fn delete(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    state
        .slos
        .delete(&tenant, &name)
        .await
        .map_err(rules_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
