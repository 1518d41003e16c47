//! The insights API (`/api/insights/graph`, `/assertions`, `/rca`): the spans of a window are
//! read through the querier (live and blocks, whole traces), flattened and analysed by
//! `andante-insights` on a blocking thread. `start`/`end` are Unix seconds as in Tempo's search;
//! the default window is the last hour, the longest 24 hours.

use std::collections::HashMap;

use andante_model::{ErrorKind, TenantSet};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::search::time_range;
use crate::tenant::query_tenants;
use crate::{ApiError, SharedState};

const DEFAULT_WINDOW_NANOS: u64 = 3600 * 1_000_000_000;
const MAX_WINDOW_NANOS: u64 = 24 * 3600 * 1_000_000_000;
/// Most spans one analysis reads (bounds memory: a span record is a few hundred bytes).
pub(crate) const MAX_SPANS: u64 = 2_000_000;

/// Which answer a request wants.
#[derive(Clone, Copy)]
enum View {
    Graph,
    Assertions,
    Rca,
}

/// The window of a request: `[start, end]` in Unix nanoseconds.
fn window(params: &HashMap<String, String>) -> Result<(u64, u64), ApiError> {
    let (start, end) = time_range(params)?;
    let end = end.unwrap_or_else(andante_model::now_unix_nanos);
    let start = start.unwrap_or(end.saturating_sub(DEFAULT_WINDOW_NANOS));
    if end <= start {
        return Err(ApiError::bad_request(
            "invalid time range: end is not after start",
        ));
    }
    if end - start > MAX_WINDOW_NANOS {
        return Err(ApiError::bad_request(format!(
            "invalid time range: {} h is longer than the limit of 24 h for an analysis",
            (end - start) / 3_600_000_000_000
        )));
    }
    Ok((start, end))
}

/// Reads the spans of `tenants` in `[start, end]` and analyses them, then renders the
/// analysis with `render` on the same blocking thread. The partial-read message, if any, is
/// returned beside the rendering.
pub(crate) async fn analyse<R>(
    state: &SharedState,
    tenants: &TenantSet,
    start: u64,
    end: u64,
    render: R,
) -> Result<(Value, Option<String>), ApiError>
where
    R: FnOnce(&andante_insights::Analysis) -> Result<Value, ApiError> + Send + 'static,
{
    let read = state
        .querier
        .traces_in_window(tenants, start, end, MAX_SPANS)
        .await;
    let partial = read.partial_message.clone();
    let (store, tenants) = (state.metrics_store.clone(), tenants.clone());
    let rendered = tokio::task::spawn_blocking(move || {
        let mut records = Vec::with_capacity(read.spans as usize);
        for (trace_id, resource_spans) in &read.traces {
            andante_insights::extract(trace_id.0, resource_spans, &mut records);
        }
        let mut analysis = andante_insights::analyze(records, start, end);
        add_resources(&store, &tenants, &mut analysis);
        render(&analysis)
    })
    .await
    .map_err(|error| {
        tracing::error!(%error, "insights task failed");
        ApiError::new(ErrorKind::Internal, "the analysis failed")
    })??;
    Ok((rendered, partial))
}

/// Adds Saturation assertions from the resource metrics `tenants` sent to the metrics store
/// (the queries of `andante_insights::RESOURCE_QUERIES`, sampled at the end of each of the
/// analysis' intervals). A query the store refuses is left out: the traces still answer.
/// OpenTelemetry metrics carry the pod name only on `target_info` (the instance label is
/// `service.instance.id`), so each series gets its `k8s_pod_name` from there, as
/// `* on (job, instance) group_left (k8s_pod_name) target_info` would give it.
pub(crate) fn add_resources(
    store: &andante_tsdb::Store,
    tenants: &TenantSet,
    analysis: &mut andante_insights::Analysis,
) {
    use andante_tsdb::promql::{range_query, QueryValue};
    let (first, last, step, range_secs) = analysis.resource_steps();
    let millis = |nanos: u64| i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX);
    let mut series = Vec::new();
    for tenant in tenants.iter() {
        let run = |promql: &str| {
            range_query(
                store,
                tenant.as_str(),
                promql,
                millis(first),
                millis(last),
                millis(step).max(1),
            )
        };
        let mut pods: HashMap<(String, String), String> = HashMap::new();
        if let Ok(QueryValue::Matrix(targets)) = run("target_info") {
            for target in targets {
                let label = |name: &str| target.labels.get(name).unwrap_or_default().to_owned();
                let pod = label("k8s_pod_name");
                if !pod.is_empty() {
                    pods.insert((label("job"), label("instance")), pod);
                }
            }
        }
        for (index, query) in andante_insights::RESOURCE_QUERIES.iter().enumerate() {
            let found = match run(&query.promql(range_secs)) {
                Ok(QueryValue::Matrix(found)) => found,
                Ok(_) => continue,
                Err(error) => {
                    tracing::debug!(%tenant, metric = query.metric, ?error, "resource query refused");
                    continue;
                }
            };
            series.extend(found.into_iter().map(|one| {
                let label = |name: &str| one.labels.get(name).unwrap_or_default().to_owned();
                andante_insights::ResourceSeries {
                    query: index,
                    pod: pods.get(&(label("job"), label("instance"))).cloned(),
                    labels: one
                        .labels
                        .iter()
                        .map(|(name, value)| (name.to_owned(), value.to_owned()))
                        .collect(),
                    points: one
                        .samples
                        .iter()
                        .map(|&(at, value)| (u64::try_from(at).unwrap_or(0) * 1_000_000, value))
                        .collect(),
                }
            }));
        }
    }
    analysis.add_resources(&series);
}

/// Gives firing alerts their ranked root causes: the insights analysis of the tenant's last
/// 30 minutes of traces, scoped to the alert's service when it names one.
pub struct AlertRootCauses {
    querier: andante_query::Querier,
    store: std::sync::Arc<andante_tsdb::Store>,
    external_url: String,
    runtime: tokio::runtime::Handle,
}

/// How far back an alert's explanation looks.
const ALERT_WINDOW_NANOS: u64 = 30 * 60 * 1_000_000_000;

impl AlertRootCauses {
    pub fn new(
        querier: andante_query::Querier,
        store: std::sync::Arc<andante_tsdb::Store>,
        external_url: String,
        runtime: tokio::runtime::Handle,
    ) -> AlertRootCauses {
        AlertRootCauses {
            querier,
            store,
            external_url,
            runtime,
        }
    }
}

impl andante_rules::RootCauseSource for AlertRootCauses {
    fn explain(
        &self,
        tenant: &str,
        service: Option<&str>,
        t_ms: i64,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let tenants = TenantSet::one(andante_model::TenantId::new(tenant).ok()?);
        let end = u64::try_from(t_ms).ok()? * 1_000_000;
        let start = end.saturating_sub(ALERT_WINDOW_NANOS);
        let read = self.runtime.block_on(
            self.querier
                .traces_in_window(&tenants, start, end, MAX_SPANS),
        );
        if read.spans == 0 {
            return None;
        }
        let mut records = Vec::with_capacity(read.spans as usize);
        for (trace_id, resource_spans) in &read.traces {
            andante_insights::extract(trace_id.0, resource_spans, &mut records);
        }
        let mut analysis = andante_insights::analyze(records, start, end);
        add_resources(&self.store, &tenants, &mut analysis);
        let mut rca = analysis.rca(service);
        if service.is_some() && rca.causes.is_empty() {
            // The service may not be in the trace graph under that name: rank everything.
            rca = analysis.rca(None);
        }
        if !rca.incident || rca.causes.is_empty() {
            return None;
        }
        let ranked: Vec<String> = rca
            .causes
            .iter()
            .take(3)
            .enumerate()
            .map(|(rank, cause)| {
                format!(
                    "{}. {} {} (score {:.2}): {}",
                    rank + 1,
                    cause.kind,
                    cause.name,
                    cause.score,
                    cause.summary
                )
            })
            .collect();
        let url = format!(
            "{}/ui/insights?from={}&to={}&cause={}",
            self.external_url.trim_end_matches('/'),
            start / 1_000_000_000,
            end / 1_000_000_000,
            form_urlencoded::byte_serialize(rca.causes[0].entity.as_bytes()).collect::<String>()
        );
        Some(std::collections::BTreeMap::from([
            ("root_cause".to_owned(), rca.causes[0].summary.clone()),
            ("root_causes".to_owned(), ranked.join("\n")),
            ("root_cause_url".to_owned(), url),
        ]))
    }
}

pub(crate) fn encoded<T: serde::Serialize>(value: T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|error| {
        ApiError::new(
            ErrorKind::Internal,
            format!("insights could not be encoded: {error}"),
        )
    })
}

async fn answer(
    state: SharedState,
    headers: HeaderMap,
    params: HashMap<String, String>,
    view: View,
) -> Result<Response, ApiError> {
    let tenants = query_tenants(&headers, state.config.multitenancy_enabled)?;
    let (start, end) = window(&params)?;
    let entity = params
        .get("entity")
        .map(|entity| entity.trim().to_owned())
        .filter(|entity| !entity.is_empty());
    let (mut body, partial) = analyse(&state, &tenants, start, end, move |analysis| {
        if let Some(entity) = &entity {
            if !analysis.has_entity(entity) {
                return Err(ApiError::bad_request(format!(
                    "unknown entity `{entity}` in this window"
                )));
            }
        }
        match view {
            View::Graph => encoded(analysis.graph()),
            View::Assertions => encoded(analysis.assertions(entity.as_deref()))
                .map(|assertions| json!({ "assertions": assertions })),
            View::Rca => encoded(analysis.rca(entity.as_deref())),
        }
    })
    .await?;
    if let (Some(message), Some(object)) = (partial, body.as_object_mut()) {
        object.insert("status".to_owned(), json!("PARTIAL"));
        object.insert("message".to_owned(), json!(message));
    }
    Ok(Json(body).into_response())
}

pub(crate) async fn graph(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    answer(state, headers, params, View::Graph).await
}

pub(crate) async fn assertions(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    answer(state, headers, params, View::Assertions).await
}

pub(crate) async fn rca(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    answer(state, headers, params, View::Rca).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn windows_default_to_the_last_hour_and_refuse_nonsense() {
        let (start, end) = window(&params(&[])).expect("default");
        assert_eq!(end - start, DEFAULT_WINDOW_NANOS);
        let (start, end) =
            window(&params(&[("start", "1000"), ("end", "1600")])).expect("explicit");
        assert_eq!(start, 1_000_000_000_000);
        assert!(end >= 1_600_000_000_000);
        for bad in [
            &[("start", "2000"), ("end", "1000")][..],
            &[("start", "0"), ("end", "100000")][..],
            &[("start", "x")][..],
        ] {
            assert_eq!(
                window(&params(bad)).expect_err("refused").kind,
                ErrorKind::BadRequest
            );
        }
    }
}
