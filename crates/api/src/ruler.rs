//! Mimir's ruler configuration API (`/prometheus/config/v1/rules[/{namespace}[/{group}]]`), so
//! `mimirtool rules`, `cortextool` and Grafana's rule editor for a Mimir/Cortex data source can
//! manage Andante's rules per tenant: reads answer YAML (namespace → groups), writes take one
//! group as YAML and answer 202; a group that does not validate gets a 400 naming the rule.

use andante_model::ErrorKind;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_yaml::{Mapping, Value};

use crate::error::{rules_error, ApiError};
use crate::tenant::push_tenant;
use crate::SharedState;

fn tenant(state: &SharedState, headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(push_tenant(headers, state.config.multitenancy_enabled)?
        .as_str()
        .to_owned())
}

fn yaml(value: &Value) -> Response {
    match serde_yaml::to_string(value) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/yaml")], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "failed to encode rule groups");
            ApiError::new(ErrorKind::Internal, "failed to encode rule groups").into_response()
        }
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(
            serde_json::json!({"status": "success", "data": null, "errorType": "", "error": ""}),
        ),
    )
        .into_response()
}

/// Namespaces → groups as Mimir lists them; `NotFound` when there are none.
async fn listing(
    state: &SharedState,
    tenant: &str,
    namespace: Option<&str>,
    group: Option<&str>,
) -> Result<Value, ApiError> {
    let stored = state
        .ruler
        .groups(tenant, namespace)
        .await
        .map_err(rules_error)?;
    let mut namespaces = Mapping::new();
    for (name, groups) in stored {
        let mut parsed = Vec::new();
        for (group_name, text) in groups {
            if group.is_some_and(|wanted| wanted != group_name) {
                continue;
            }
            match serde_yaml::from_str::<Value>(&text) {
                Ok(value) => parsed.push(value),
                Err(error) => {
                    tracing::warn!(%tenant, namespace = %name, group = %group_name, %error, "a stored rule group is not YAML")
                }
            }
        }
        if !parsed.is_empty() {
            namespaces.insert(Value::String(name), Value::Sequence(parsed));
        }
    }
    if namespaces.is_empty() {
        let message = match (namespace, group) {
            (_, Some(_)) => "group does not exist",
            _ => "no rule groups found",
        };
        return Err(ApiError::new(ErrorKind::NotFound, message));
    }
    Ok(Value::Mapping(namespaces))
}

pub async fn list_all(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    Ok(yaml(&listing(&state, &tenant, None, None).await?))
}

pub async fn list_namespace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(namespace): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    Ok(yaml(
        &listing(&state, &tenant, Some(&namespace), None).await?,
    ))
}

/// One group, as the YAML of the group itself (not wrapped in its namespace), as Mimir answers.
pub async fn get_group(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path((namespace, group)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    let listed = listing(&state, &tenant, Some(&namespace), Some(&group)).await?;
    let first = listed
        .as_mapping()
        .and_then(|namespaces| namespaces.values().next())
        .and_then(Value::as_sequence)
        .and_then(|groups| groups.first())
        .cloned()
        .unwrap_or(Value::Null);
    Ok(yaml(&first))
}

pub async fn set_group(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(namespace): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the rule group is not UTF-8 text"))?;
    state
        .ruler
        .set_group(&tenant, &namespace, text)
        .await
        .map_err(rules_error)?;
    Ok(accepted())
}

pub async fn delete_group(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path((namespace, group)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    state
        .ruler
        .delete_group(&tenant, &namespace, &group)
        .await
        .map_err(rules_error)?;
    Ok(accepted())
}

pub async fn delete_namespace(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Path(namespace): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&state, &headers)?;
    state
        .ruler
        .delete_namespace(&tenant, &namespace)
        .await
        .map_err(rules_error)?;
    Ok(accepted())
}
