//! Continuous insights: acknowledged spans reach [`LiveInsights::observer`] on the generator's
//! queue and are folded once per trace into per-tenant aggregates (`andante_insights::
//! Continuous`); every `insights.interval` each tenant's trailing window
//! (`insights.live_window`) is analysed from those aggregates the way a request to
//! `/api/insights/*` analyses spans, without re-reading them. After a start the window is read
//! from storage once per tenant. The latest answer is kept for `GET /api/insights/live` and its
//! assertion counts exported on `/metrics`, so a fault shows up without anyone asking and a
//! Prometheus rule (or Andante's own alerting) can fire on it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use andante_model::{TenantId, TenantSet};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use parking_lot::RwLock;
use serde_json::{json, Value};

use crate::insights::{encoded, MAX_SPANS};
use crate::tenant::query_tenants;
use crate::{ApiError, SharedState};

/// Spans of the first read from storage folded per hold of the fold's lock.
const SEED_PART_SPANS: usize = 5_000;

/// Causes kept per evaluation: the answer is for a glance and for alert annotations.
const MAX_CAUSES: usize = 5;

/// The latest evaluation of each tenant.
pub struct LiveInsights {
    window: Duration,
    /// The folded aggregates of every tenant; `None` when continuous insights are off.
    fold: Option<Arc<parking_lot::Mutex<andante_insights::Continuous>>>,
    latest: RwLock<HashMap<TenantId, Arc<Value>>>,
    /// The `insights_assertion` series written at each tenant's last evaluation, so the ones
    /// that end get a stale marker.
    written: parking_lot::Mutex<HashMap<TenantId, std::collections::HashSet<andante_tsdb::Labels>>>,
}

/// The series name of an active assertion (value 1) in the series store, for alerting rules.
pub const ASSERTION_SERIES: &str = "insights_assertion";

impl LiveInsights {
    /// `window` zero disables continuous evaluation. A trace is folded once none of its
    /// spans arrived for `settle` (the live store's `trace_idle`).
    pub fn new(window: Duration, settle: Duration) -> LiveInsights {
        let fold = (!window.is_zero()).then(|| {
            Arc::new(parking_lot::Mutex::new(andante_insights::Continuous::new(
                nanos(window),
                nanos(settle),
            )))
        });
        LiveInsights {
            window,
            fold,
            latest: RwLock::new(HashMap::new()),
            written: Default::default(),
        }
    }

    /// What the span queue calls with each acknowledged batch (`None` when off): flattens it
    /// on the queue's thread and hands the records to the tenant's fold. Only the fields
    /// `extract_any` reads are decoded when the generator is off (`andante_insights::projection`).
    pub fn observer(&self) -> Option<andante_generator::feed::Observer> {
        let fold = self.fold.clone()?;
        Some(andante_generator::feed::Observer {
            projection: andante_insights::projection(),
            observe: Box::new(move |tenant, spans| {
                let mut records = Vec::new();
                andante_insights::extract_any(spans, &mut records);
                if !records.is_empty() {
                    let now = andante_model::now_unix_nanos();
                    fold.lock().offer(tenant.as_str(), records, now);
                }
            }),
        })
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    fn latest(&self, tenant: &TenantId) -> Option<Arc<Value>> {
        self.latest.read().get(tenant).cloned()
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// One tenant's evaluation at `end`: its window's start, the assertions and causes, the
/// partial-read message of a first read from storage, and what the fold holds.
async fn evaluate_tenant(
    state: &SharedState,
    fold: &Arc<parking_lot::Mutex<andante_insights::Continuous>>,
    tenant: &TenantId,
    end: u64,
) -> Result<(u64, Value, Option<String>, andante_insights::FoldSize), ApiError> {
    let failed = |error: tokio::task::JoinError| {
        tracing::error!(%error, "live insights task failed");
        ApiError::new(andante_model::ErrorKind::Internal, "the analysis failed")
    };
    let mut partial = None;
    if fold.lock().needs_seed(tenant.as_str()) {
        let start = end.saturating_sub(nanos(state.live_insights.window));
        let read = state
            .querier
            .traces_in_window(&TenantSet::one(tenant.clone()), start, end, MAX_SPANS)
            .await;
        partial = read.partial_message.clone();
        let (fold, tenant) = (fold.clone(), tenant.clone());
        tokio::task::spawn_blocking(move || {
            // Folded a few thousand spans at a time: the span queue's thread takes the same lock.
            let mut records = Vec::new();
            for (trace_id, resource_spans) in &read.traces {
                andante_insights::extract(trace_id.0, resource_spans, &mut records);
                if records.len() >= SEED_PART_SPANS {
                    fold.lock()
                        .seed_part(tenant.as_str(), std::mem::take(&mut records));
                }
            }
            let mut fold = fold.lock();
            fold.seed_part(tenant.as_str(), records);
            fold.seed_done(tenant.as_str());
        })
        .await
        .map_err(failed)?;
    }
    let (fold, tenant, store) = (fold.clone(), tenant.clone(), state.metrics_store.clone());
    let (start, body, size) = tokio::task::spawn_blocking(move || {
        let tenants = TenantSet::one(tenant.clone());
        let steps = fold.lock().window_steps(end);
        let seasons = crate::insights::day_ago(&store, &tenants, steps);
        let (mut analysis, start, size) = {
            let mut fold = fold.lock();
            let (analysis, start) = fold.analyze_with(tenant.as_str(), end, &seasons);
            (analysis, start, fold.size(tenant.as_str()))
        };
        crate::insights::add_resources(&store, &tenants, &mut analysis);
        let baseline = analysis
            .baseline_nanos()
            .map(|(start, end)| json!({"start": start.to_string(), "end": end.to_string()}));
        let body = json!({
            "assertions": encoded(analysis.assertions(None))?,
            "rca": encoded(analysis.rca(None))?,
            "baseline": baseline,
        });
        Ok::<_, ApiError>((start, body, size))
    })
    .await
    .map_err(failed)??;
    Ok((start, body, partial, size))
}

/// Evaluates every tenant with data in its window, one after the other (the analysis
/// takes one blocking thread at a time, so queries keep the rest of the machine).
pub async fn evaluate(state: &SharedState) {
    let live = &state.live_insights;
    let Some(fold) = live.fold.as_ref() else {
        return;
    };
    // Tenants with data in the window, not only those sending now: after a restart the
    // window's fault is still there to name.
    let now = andante_model::now_unix_nanos();
    let tenants = state
        .querier
        .tenants_in_window(now.saturating_sub(nanos(live.window)), now)
        .await;
    for tenant in tenants {
        let began = Instant::now();
        let end = andante_model::now_unix_nanos();
        let analysed = evaluate_tenant(state, fold, &tenant, end).await;
        let took = began.elapsed();
        let (start, body, partial, size) = match analysed {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%tenant, error = %error.message, "live insights evaluation failed");
                continue;
            }
        };
        state.metrics.insights_evaluated(
            tenant.as_str(),
            &count_assertions(&body["assertions"]),
            took,
            size,
        );
        let rca = &body["rca"];
        let causes: Vec<Value> = rca["causes"]
            .as_array()
            .map(|causes| causes.iter().take(MAX_CAUSES).cloned().collect())
            .unwrap_or_default();
        let mut view = json!({
            "evaluatedAt": end.to_string(),
            "start": start.to_string(),
            "end": end.to_string(),
            "tookMs": took.as_secs_f64() * 1e3,
            "incident": rca["incident"],
            "onset": rca["onset"],
            "baseline": body["baseline"],
            "causes": causes,
            "assertions": body["assertions"],
        });
        if let Some(message) = partial {
            view["status"] = json!("PARTIAL");
            view["message"] = json!(message);
        }
        let within = ACTIVE_WITHIN_NANOS + fold.lock().cell_nanos();
        write_assertion_series(state, &tenant, &body["assertions"], end, within).await;
        live.latest.write().insert(tenant, Arc::new(view));
    }
}

/// How recently an assertion must have held to count as active at an evaluation, beyond the
/// width of one cell (an assertion ends where the last cell it held in ends).
const ACTIVE_WITHIN_NANOS: u64 = 60 * 1_000_000_000;

/// The labels of each assertion still holding at `end` (ended at most `within` before it):
/// entity, its kind and service (for services, operations and instances), the assertion's
/// type, severity and metric.
fn active_assertion_labels(assertions: &Value, end: u64, within: u64) -> Vec<andante_tsdb::Labels> {
    let list = assertions.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut labels = Vec::new();
    for assertion in list {
        let ended = assertion["end"]
            .as_str()
            .and_then(|text| text.parse::<u64>().ok());
        if ended.is_none_or(|ended| ended.saturating_add(within) < end) {
            continue;
        }
        let text = |key: &str| assertion[key].as_str().unwrap_or_default().to_owned();
        let entity = text("entity");
        let (kind, rest) = entity.split_once(':').unwrap_or((entity.as_str(), ""));
        let service = match kind {
            "service" => rest,
            "operation" | "instance" => rest.split(':').next().unwrap_or_default(),
            _ => "",
        };
        labels.push(andante_tsdb::Labels::new([
            (andante_tsdb::METRIC_NAME, ASSERTION_SERIES.to_owned()),
            ("entity", entity.clone()),
            ("entity_kind", kind.to_owned()),
            ("service", service.to_owned()),
            ("assertion_type", text("type")),
            ("severity", text("severity")),
            ("metric", text("metric")),
        ]));
    }
    labels
}

/// Writes the tenant's active assertions to the series store as `insights_assertion` = 1 (and
/// stale markers for those that ended), so alerting rules can page on them and their alerts
/// carry the ranked root causes like any other.
async fn write_assertion_series(
    state: &SharedState,
    tenant: &TenantId,
    assertions: &Value,
    end: u64,
    within: u64,
) {
    let now_ms = (end / 1_000_000) as i64;
    let active: std::collections::HashSet<andante_tsdb::Labels> =
        active_assertion_labels(assertions, end, within)
            .into_iter()
            .collect();
    let previous = state
        .live_insights
        .written
        .lock()
        .insert(tenant.clone(), active.clone())
        .unwrap_or_default();
    let mut batch: Vec<andante_tsdb::SeriesSamples> = active
        .iter()
        .map(|labels| andante_tsdb::SeriesSamples {
            labels: labels.clone(),
            samples: vec![(now_ms, 1.0)],
        })
        .collect();
    batch.extend(
        previous
            .difference(&active)
            .map(|labels| andante_tsdb::SeriesSamples {
                labels: labels.clone(),
                samples: vec![(now_ms, andante_tsdb::STALE_NAN)],
            }),
    );
    if batch.is_empty() {
        return;
    }
    if let Err(error) = state
        .metrics_head
        .append(tenant.as_str(), batch, now_ms)
        .await
    {
        tracing::warn!(%tenant, %error, "failed to write insight assertions to the series store");
    }
}

/// Assertions by (type, severity), every pair present (zero when none fired), so a gauge
/// drops back to zero when its assertion ends.
fn count_assertions(assertions: &Value) -> Vec<(&'static str, &'static str, i64)> {
    // The names `andante_insights::AssertionType` and `Severity` serialise to.
    const TYPES: [&str; 5] = ["error", "anomaly", "failure", "amend", "saturation"];
    const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];
    let list = assertions.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut counts = Vec::new();
    for kind in TYPES {
        for severity in SEVERITIES {
            let count = list
                .iter()
                .filter(|assertion| assertion["type"] == kind && assertion["severity"] == severity)
                .count();
            counts.push((kind, severity, count as i64));
        }
    }
    counts
}

/// `GET /api/insights/live`: the latest continuous evaluation of the request's tenant.
pub(crate) async fn live(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenants = query_tenants(&headers, state.config.multitenancy_enabled)?;
    let mut tenants = tenants.iter();
    let (Some(tenant), None) = (tenants.next(), tenants.next()) else {
        return Err(ApiError::bad_request(
            "live insights are evaluated per tenant: ask for one tenant at a time",
        ));
    };
    if !state.live_insights.enabled() {
        return Err(ApiError::bad_request(
            "continuous insights are off (`insights.live_window` is 0)",
        ));
    }
    Ok(Json(match state.live_insights.latest(tenant) {
        Some(view) => view.as_ref().clone(),
        None => json!({
            "evaluatedAt": null,
            "message": "no evaluation yet: the first runs one interval after this tenant's first data",
            "incident": false,
            "causes": [],
            "assertions": [],
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_assertions_become_series_labels() {
        let end: u64 = 10_000_000_000_000;
        let assertions = json!([
            {"entity": "service:cart", "type": "error", "severity": "critical", "metric": "error_origins", "end": end.to_string()},
            {"entity": "operation:cart:GET /cart", "type": "anomaly", "severity": "warning", "metric": "self_time", "end": (end - 30_000_000_000u64).to_string()},
            {"entity": "database:carts", "type": "failure", "severity": "critical", "metric": "errors", "end": (end - 600_000_000_000u64).to_string()},
        ]);
        let labels = active_assertion_labels(&assertions, end, ACTIVE_WITHIN_NANOS);
        assert_eq!(
            labels.len(),
            2,
            "the one that ended ten minutes ago is not active"
        );
        assert_eq!(labels[0].get("service"), Some("cart"));
        assert_eq!(labels[0].get("assertion_type"), Some("error"));
        assert_eq!(labels[1].get("entity_kind"), Some("operation"));
        assert_eq!(labels[1].get("service"), Some("cart"));
        assert_eq!(labels[1].metric_name(), Some(ASSERTION_SERIES));
    }

    #[test]
    fn every_type_and_severity_is_counted_even_at_zero() {
        let assertions = json!([
            {"type": "error", "severity": "critical"},
            {"type": "error", "severity": "critical"},
            {"type": "anomaly", "severity": "warning"},
        ]);
        let counts = count_assertions(&assertions);
        assert_eq!(counts.len(), 15);
        assert!(counts.contains(&("error", "critical", 2)));
        assert!(counts.contains(&("anomaly", "warning", 1)));
        assert!(counts.contains(&("saturation", "info", 0)));
        assert_eq!(counts.iter().map(|(_, _, n)| n).sum::<i64>(), 3);
    }
}
