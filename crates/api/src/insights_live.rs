//! Continuous insights: every `insights.interval`, each tenant's trailing window
//! (`insights.live_window`, live data and blocks) is analysed the same way as a request to
//! `/api/insights/*` would be. The latest answer is kept for `GET /api/insights/live` and its
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

use crate::insights::{analyse, encoded};
use crate::tenant::query_tenants;
use crate::{ApiError, SharedState};

/// Causes kept per evaluation: the answer is for a glance and for alert annotations.
const MAX_CAUSES: usize = 5;

/// The latest evaluation of each tenant.
pub struct LiveInsights {
    window: Duration,
    latest: RwLock<HashMap<TenantId, Arc<Value>>>,
}

impl LiveInsights {
    /// `window` zero disables continuous evaluation.
    pub fn new(window: Duration) -> LiveInsights {
        LiveInsights {
            window,
            latest: RwLock::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.window.is_zero()
    }

    fn latest(&self, tenant: &TenantId) -> Option<Arc<Value>> {
        self.latest.read().get(tenant).cloned()
    }
}

/// Evaluates every tenant that has sent data since start, one after the other (the analysis
/// takes one blocking thread at a time, so queries keep the rest of the machine).
pub async fn evaluate(state: &SharedState) {
    let live = &state.live_insights;
    if !live.enabled() {
        return;
    }
    let mut tenants = state.live.tenants();
    tenants.sort();
    for tenant in tenants {
        let began = Instant::now();
        let end = andante_model::now_unix_nanos();
        let start = end.saturating_sub(u64::try_from(live.window.as_nanos()).unwrap_or(u64::MAX));
        let analysed = analyse(
            state,
            &TenantSet::one(tenant.clone()),
            start,
            end,
            |analysis| {
                Ok(json!({
                    "assertions": encoded(analysis.assertions(None))?,
                    "rca": encoded(analysis.rca(None))?,
                }))
            },
        )
        .await;
        let took = began.elapsed();
        let (body, partial) = match analysed {
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
            "causes": causes,
            "assertions": body["assertions"],
        });
        if let Some(message) = partial {
            view["status"] = json!("PARTIAL");
            view["message"] = json!(message);
        }
        live.latest.write().insert(tenant, Arc::new(view));
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
