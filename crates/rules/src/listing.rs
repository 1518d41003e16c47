//! The rule and alert listings in the shapes of Prometheus' `/api/v1/rules` and
//! `/api/v1/alerts`, which Grafana's alerting pages read from a Prometheus data source.

use serde_json::{json, Value};

use crate::alert::{Alert, AlertState};
use crate::file::RuleKind;
use crate::gofmt::rfc3339;
use crate::manager::Manager;

impl Manager {
    /// Prometheus' `/api/v1/rules` data; `kind` is `alert`, `record` or empty for both.
    pub fn rules_json(&self, tenant: &str, kind: &str) -> Value {
        let mut groups = Vec::new();
        for state in self.tenant_groups(tenant) {
            let state = state.lock();
            let mut rules = Vec::new();
            for (rule, rule_state) in state.group.rules.iter().zip(&state.rules) {
                let labels: serde_json::Map<String, Value> = rule
                    .labels
                    .iter()
                    .map(|(name, template)| {
                        (name.clone(), Value::String(template.source().to_owned()))
                    })
                    .collect();
                let common = json!({
                    "name": rule.name(),
                    "query": rule.expr_text,
                    "labels": labels,
                    "health": rule_state.health.as_str(),
                    "lastError": rule_state.last_error.clone().unwrap_or_default(),
                    "evaluationTime": rule_state.evaluation_seconds,
                    "lastEvaluation": rule_state.last_evaluation_ms.map_or("0001-01-01T00:00:00Z".to_owned(), rfc3339),
                });
                let mut entry = common.as_object().cloned().unwrap_or_default();
                match &rule.kind {
                    RuleKind::Recording { .. } => {
                        if kind == "alert" {
                            continue;
                        }
                        entry.insert("type".into(), json!("recording"));
                    }
                    RuleKind::Alerting {
                        for_ms,
                        keep_firing_for_ms,
                        annotations,
                        ..
                    } => {
                        if kind == "record" {
                            continue;
                        }
                        let annotations: serde_json::Map<String, Value> = annotations
                            .iter()
                            .map(|(name, template)| {
                                (name.clone(), Value::String(template.source().to_owned()))
                            })
                            .collect();
                        entry.insert("type".into(), json!("alerting"));
                        entry.insert("state".into(), json!(rule_state.alerts.state()));
                        entry.insert("duration".into(), json!(*for_ms as f64 / 1000.0));
                        entry.insert(
                            "keepFiringFor".into(),
                            json!(*keep_firing_for_ms as f64 / 1000.0),
                        );
                        entry.insert("annotations".into(), Value::Object(annotations));
                        entry.insert(
                            "alerts".into(),
                            Value::Array(
                                rule_state
                                    .alerts
                                    .current()
                                    .into_iter()
                                    .map(alert_json)
                                    .collect(),
                            ),
                        );
                    }
                }
                rules.push(Value::Object(entry));
            }
            groups.push(json!({
                "name": state.group.name,
                "file": state.group.file,
                "rules": rules,
                "interval": state.interval_ms as f64 / 1000.0,
                "limit": state.group.limit,
                "evaluationTime": state.evaluation_seconds,
                "lastEvaluation": state.last_evaluation_ms.map_or("0001-01-01T00:00:00Z".to_owned(), rfc3339),
            }));
        }
        json!({ "groups": groups })
    }

    /// Prometheus' `/api/v1/alerts` data: every pending and firing alert of the tenant.
    pub fn alerts_json(&self, tenant: &str) -> Value {
        let mut alerts = Vec::new();
        for state in self.tenant_groups(tenant) {
            let state = state.lock();
            for rule_state in &state.rules {
                alerts.extend(rule_state.alerts.current().into_iter().map(alert_json));
            }
        }
        json!({ "alerts": alerts })
    }
}
pub(crate) fn alert_json(alert: &Alert) -> Value {
    let labels: serde_json::Map<String, Value> = alert
        .labels
        .iter()
        .map(|(n, v)| (n.to_owned(), Value::String(v.to_owned())))
        .collect();
    json!({
        "labels": labels,
        "annotations": alert.annotations_with_root_cause(),
        "state": if alert.state == AlertState::Firing { "firing" } else { "pending" },
        "activeAt": rfc3339(alert.active_at_ms),
        "value": crate::gofmt::format_e_shortest(alert.value),
    })
}
