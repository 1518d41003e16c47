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
    // `end` in seconds covers its whole second (as in Tempo's search), so `end - start` of
    // exactly 86400 s spans 24 h and 1 s less a nanosecond, and is allowed.
    if end - start > MAX_WINDOW_NANOS + 999_999_999 {
        return Err(ApiError::bad_request(format!(
            "invalid time range: {} s is longer than the limit of {} s (24 h) for an analysis",
            (end - start) / 1_000_000_000,
            MAX_WINDOW_NANOS / 1_000_000_000
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
        let seasons = day_ago(&store, &tenants, andante_insights::window_steps(start, end));
        let mut analysis = andante_insights::analyze_with(records, start, end, &seasons);
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
    let steps = analysis.resource_steps();
    let mut series = Vec::new();
    for tenant in tenants.iter() {
        let mut pods: HashMap<(String, String), String> = HashMap::new();
        for target in sampled(store, tenant.as_str(), "target_info", steps, 0) {
            let label = |name: &str| target.labels.get(name).unwrap_or_default().to_owned();
            let pod = label("k8s_pod_name");
            if !pod.is_empty() {
                pods.insert((label("job"), label("instance")), pod);
            }
        }
        for (index, query) in andante_insights::RESOURCE_QUERIES.iter().enumerate() {
            let found = sampled(
                store,
                tenant.as_str(),
                &query.promql(steps.range_secs),
                steps,
                0,
            );
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
                    points: one.samples,
                }
            }));
        }
    }
    analysis.add_resources(&series);
}

/// The services' request rates a day before each step (seasonality), from the span-metrics
/// series of the metrics store; empty when it does not reach back that far (its retention is
/// 26 h by default for this).
pub(crate) fn day_ago(
    store: &andante_tsdb::Store,
    tenants: &TenantSet,
    steps: andante_insights::Steps,
) -> Vec<andante_insights::DayAgo> {
    let promql =
        andante_insights::DAY_AGO_QUERY.replace("$range", &format!("{}s", steps.range_secs));
    let mut found = Vec::new();
    for tenant in tenants.iter() {
        for series in sampled(
            store,
            tenant.as_str(),
            &promql,
            steps,
            andante_insights::DAY_NANOS,
        ) {
            let Some(service) = series.labels.get("service") else {
                continue;
            };
            found.push(andante_insights::DayAgo {
                service: service.to_owned(),
                points: series.samples,
            });
        }
    }
    found
}

/// One series of [`sampled`]: its labels and `(Unix nanoseconds, value)` points.
struct Sampled {
    labels: andante_tsdb::Labels,
    samples: Vec<(u64, f64)>,
}

/// The series `promql` gives at `steps`, evaluated `before` nanoseconds earlier and moved
/// forward by as much. A query the store refuses gives nothing (the traces still answer);
/// it is logged at debug level.
fn sampled(
    store: &andante_tsdb::Store,
    tenant: &str,
    promql: &str,
    steps: andante_insights::Steps,
    before: u64,
) -> Vec<Sampled> {
    use andante_tsdb::promql::{range_query, QueryValue};
    let (Some(first), Some(last)) = (
        steps.first.checked_sub(before),
        steps.last.checked_sub(before),
    ) else {
        return Vec::new();
    };
    let millis = |nanos: u64| i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX);
    match range_query(
        store,
        tenant,
        promql,
        millis(first),
        millis(last),
        millis(steps.step).max(1),
    ) {
        Ok(QueryValue::Matrix(found)) => found
            .into_iter()
            .map(|series| Sampled {
                labels: series.labels,
                samples: series
                    .samples
                    .into_iter()
                    .map(|(at, value)| (u64::try_from(at).unwrap_or(0) * 1_000_000 + before, value))
                    .collect(),
            })
            .collect(),
        Ok(_) => Vec::new(),
        Err(error) => {
            tracing::debug!(%tenant, promql, ?error, "insights series query refused");
            Vec::new()
        }
    }
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
        let seasons = day_ago(
            &self.store,
            &tenants,
            andante_insights::window_steps(start, end),
        );
        let mut analysis = andante_insights::analyze_with(records, start, end, &seasons);
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

    /// The day-before rates come from the span-metrics counters a day earlier, moved forward
    /// a day so that they line up with the window's intervals.
    #[test]
    fn the_day_before_is_read_from_span_metrics_and_moved_forward_a_day() {
        let store = andante_tsdb::Store::new(andante_tsdb::StoreConfig::default());
        let now_ms: i64 = 1_800_000_000_000;
        let day_ms = (andante_insights::DAY_NANOS / 1_000_000) as i64;
        let counter = |service: &str, kind: &str| {
            andante_tsdb::Labels::new([
                ("__name__", "traces_spanmetrics_calls_total"),
                ("service", service),
                ("span_kind", kind),
                ("span_name", "GET /"),
            ])
        };
        // A day before the window, from 2 h before it: 4 server calls per second, and client
        // spans the query must leave out.
        let mut samples = Vec::new();
        for step in 0..=(2 * 3600 + 1800) / 15 {
            let at = now_ms - day_ms - 2 * 3_600_000 + step * 15_000;
            samples.push((
                counter("web", "SPAN_KIND_SERVER"),
                at,
                4.0 * 15.0 * step as f64,
            ));
            samples.push((counter("web", "SPAN_KIND_CLIENT"), at, 100.0 * step as f64));
        }
        assert!(store.append("t", samples) > 0);
        let start = (now_ms as u64 - 1_800_000) * 1_000_000;
        let steps = andante_insights::window_steps(start, now_ms as u64 * 1_000_000);
        let tenants = TenantSet::one(andante_model::TenantId::new("t").expect("tenant"));
        let found = day_ago(&store, &tenants, steps);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].service, "web");
        let times: Vec<u64> = found[0].points.iter().map(|(at, _)| *at).collect();
        assert_eq!(times.first(), Some(&steps.first));
        assert_eq!(times.last(), Some(&steps.last));
        assert!(
            found[0]
                .points
                .iter()
                .all(|(_, rate)| (rate - 4.0).abs() < 1e-9),
            "{:?}",
            found[0].points
        );
        // Nothing a day before: nothing to compare with.
        let early = andante_insights::window_steps(1_000_000_000, 2_000_000_000_000);
        assert!(day_ago(&store, &tenants, early).is_empty());
    }

    #[test]
    fn exactly_a_day_is_allowed_and_a_second_more_is_refused_in_seconds() {
        window(&params(&[("start", "1000"), ("end", "87400")])).expect("24 h");
        let refused =
            window(&params(&[("start", "1000"), ("end", "87401")])).expect_err("24 h 1 s");
        assert!(
            refused
                .message
                .contains("86401 s is longer than the limit of 86400 s"),
            "{}",
            refused.message
        );
    }
}
