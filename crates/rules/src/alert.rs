//! One alerting rule's alerts and their life, step for step as Prometheus' `AlertingRule.Eval`:
//! a new result is pending from its evaluation time, fires once `for` has passed (at once when
//! `for` is 0), stays firing for `keep_firing_for` after its result disappears, then resolves;
//! a resolved alert is kept 15 minutes so its resolution reaches Alertmanager. A pending alert
//! whose result disappears is simply dropped.

use std::collections::{BTreeMap, HashMap};

use andante_tsdb::Labels;
use serde::Serialize;

/// How long a resolved alert is remembered so the resolution is sent (Prometheus' value).
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The alert's identity: the result's labels (without `__name__`), the rule's labels, and
    /// `alertname`.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    pub value: f64,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_at_ms: Option<i64>,
    pub valid_until_ms: i64,
    pub keep_firing_since_ms: Option<i64>,
    /// Annotations naming the ranked root causes, found once when the alert first fired
    /// (empty when the analysis found nothing).
    pub root_cause: Option<BTreeMap<String, String>>,
}

impl Alert {
    /// The rule's annotations plus the root-cause ones (the rule's win a name both use).
    pub fn annotations_with_root_cause(&self) -> BTreeMap<String, String> {
        let mut annotations = self.annotations.clone();
        for (name, value) in self.root_cause.iter().flatten() {
            annotations
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
        annotations
    }
}

/// One evaluation's result for an alert: its labels, annotations and value.
pub struct Observed {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub value: f64,
}

/// The active (pending, firing, or recently resolved) alerts of one rule.
#[derive(Debug, Default, Clone)]
pub struct ActiveAlerts {
    pub alerts: HashMap<Labels, Alert>,
}

impl ActiveAlerts {
    /// Applies one evaluation at `t_ms`. `restore` gives, for a new alert, the `activeAt` an
    /// earlier process recorded (in `ALERTS_FOR_STATE`), so a restart keeps pending time.
    pub fn update(
        &mut self,
        observed: Vec<Observed>,
        t_ms: i64,
        for_ms: i64,
        keep_firing_for_ms: i64,
        mut restore: impl FnMut(&Labels) -> Option<i64>,
    ) {
        let mut seen = std::collections::HashSet::with_capacity(observed.len());
        for result in observed {
            seen.insert(result.labels.clone());
            match self.alerts.get_mut(&result.labels) {
                Some(alert) if alert.state != AlertState::Inactive => {
                    alert.value = result.value;
                    alert.annotations = result.annotations;
                }
                _ => {
                    let active_at_ms = restore(&result.labels)
                        .filter(|&at| at <= t_ms)
                        .unwrap_or(t_ms);
                    self.alerts.insert(
                        result.labels.clone(),
                        Alert {
                            labels: result.labels,
                            annotations: result.annotations,
                            state: AlertState::Pending,
                            value: result.value,
                            active_at_ms,
                            fired_at_ms: None,
                            resolved_at_ms: None,
                            last_sent_at_ms: None,
                            valid_until_ms: 0,
                            keep_firing_since_ms: None,
                            root_cause: None,
                        },
                    );
                }
            }
        }
        self.alerts.retain(|labels, alert| {
            if !seen.contains(labels) {
                let mut keep_firing = false;
                if alert.state == AlertState::Firing && keep_firing_for_ms > 0 {
                    let since = *alert.keep_firing_since_ms.get_or_insert(t_ms);
                    keep_firing = t_ms - since < keep_firing_for_ms;
                }
                if alert.state == AlertState::Pending {
                    return false;
                }
                if let Some(resolved_at) = alert.resolved_at_ms {
                    if t_ms - resolved_at > RESOLVED_RETENTION_MS {
                        return false;
                    }
                }
                if !keep_firing {
                    if alert.state != AlertState::Inactive {
                        alert.state = AlertState::Inactive;
                        alert.resolved_at_ms = Some(t_ms);
                    }
                    return true;
                }
            } else {
                alert.keep_firing_since_ms = None;
            }
            if alert.state == AlertState::Pending && t_ms - alert.active_at_ms >= for_ms {
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(t_ms);
            }
            true
        });
    }

    /// Pending and firing alerts (the ones `ALERTS` shows), in label order.
    pub fn current(&self) -> Vec<&Alert> {
        let mut alerts: Vec<&Alert> = self
            .alerts
            .values()
            .filter(|alert| alert.state != AlertState::Inactive)
            .collect();
        alerts.sort_by(|a, b| a.labels.cmp(&b.labels));
        alerts
    }

    /// The rule's state for listings: the most severe of its alerts.
    pub fn state(&self) -> AlertState {
        let states = self.alerts.values().map(|alert| alert.state);
        if states.clone().any(|state| state == AlertState::Firing) {
            AlertState::Firing
        } else if states.clone().any(|state| state == AlertState::Pending) {
            AlertState::Pending
        } else {
            AlertState::Inactive
        }
    }

    /// The alerts due for Alertmanager at `t_ms`, marked as sent: a firing alert first and then
    /// every `resend_delay_ms`; a resolved one once more after it resolved. `endsAt` of a firing
    /// alert lies 4 × max(interval, resend delay) ahead, so Alertmanager resolves it by itself
    /// if this process stops sending.
    pub fn due_for_sending(
        &mut self,
        t_ms: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
    ) -> Vec<Alert> {
        let mut due = Vec::new();
        for alert in self.alerts.values_mut() {
            if alert.state == AlertState::Pending {
                continue;
            }
            let resolved_since_sent = match (alert.resolved_at_ms, alert.last_sent_at_ms) {
                (Some(resolved), Some(sent)) => resolved > sent,
                (Some(_), None) => true,
                _ => false,
            };
            let resend = alert
                .last_sent_at_ms
                .is_none_or(|sent| sent + resend_delay_ms < t_ms);
            if !(resolved_since_sent || resend) {
                continue;
            }
            alert.last_sent_at_ms = Some(t_ms);
            alert.valid_until_ms = t_ms + 4 * interval_ms.max(resend_delay_ms);
            due.push(alert.clone());
        }
        due.sort_by(|a, b| a.labels.cmp(&b.labels));
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(instance: &str) -> Observed {
        Observed {
            labels: Labels::new([("alertname", "Down"), ("instance", instance)]),
            annotations: BTreeMap::new(),
            value: 1.0,
        }
    }

    fn state_of(active: &ActiveAlerts, instance: &str) -> Option<AlertState> {
        active
            .alerts
            .values()
            .find(|alert| alert.labels.get("instance") == Some(instance))
            .map(|alert| alert.state)
    }

    #[test]
    fn pending_then_firing_then_resolved_then_forgotten() {
        let mut active = ActiveAlerts::default();
        let step = 60_000;
        let for_ms = 2 * step;
        for minute in 0..3 {
            active.update(vec![observed("a")], minute * step, for_ms, 0, |_| None);
            let expected = if minute < 2 {
                AlertState::Pending
            } else {
                AlertState::Firing
            };
            assert_eq!(state_of(&active, "a"), Some(expected), "minute {minute}");
        }
        active.update(vec![], 3 * step, for_ms, 0, |_| None);
        assert_eq!(state_of(&active, "a"), Some(AlertState::Inactive));
        let sent = active.due_for_sending(3 * step, 60_000, step);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].resolved_at_ms, Some(3 * step));
        assert!(active.due_for_sending(4 * step, 60_000, step).is_empty());
        active.update(
            vec![],
            3 * step + RESOLVED_RETENTION_MS + 1,
            for_ms,
            0,
            |_| None,
        );
        assert_eq!(state_of(&active, "a"), None);
    }

    #[test]
    fn a_pending_alert_that_vanishes_is_dropped_and_starts_over() {
        let mut active = ActiveAlerts::default();
        active.update(vec![observed("a")], 0, 120_000, 0, |_| None);
        active.update(vec![], 60_000, 120_000, 0, |_| None);
        assert_eq!(state_of(&active, "a"), None);
        active.update(vec![observed("a")], 120_000, 120_000, 0, |_| None);
        assert_eq!(
            active.alerts.values().next().map(|a| a.active_at_ms),
            Some(120_000)
        );
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut active = ActiveAlerts::default();
        active.update(vec![observed("a")], 0, 0, 120_000, |_| None);
        assert_eq!(state_of(&active, "a"), Some(AlertState::Firing));
        active.update(vec![], 60_000, 0, 120_000, |_| None);
        active.update(vec![], 120_000, 0, 120_000, |_| None);
        assert_eq!(state_of(&active, "a"), Some(AlertState::Firing));
        active.update(vec![], 180_000, 0, 120_000, |_| None);
        assert_eq!(state_of(&active, "a"), Some(AlertState::Inactive));
    }

    #[test]
    fn restored_active_at_keeps_the_pending_time() {
        let mut active = ActiveAlerts::default();
        active.update(vec![observed("a")], 600_000, 300_000, 0, |_| Some(200_000));
        assert_eq!(state_of(&active, "a"), Some(AlertState::Firing));
        let mut fresh = ActiveAlerts::default();
        fresh.update(vec![observed("a")], 600_000, 300_000, 0, |_| Some(900_000));
        assert_eq!(
            state_of(&fresh, "a"),
            Some(AlertState::Pending),
            "a future activeAt is ignored"
        );
    }

    #[test]
    fn firing_alerts_are_resent_after_the_delay() {
        let mut active = ActiveAlerts::default();
        active.update(vec![observed("a")], 0, 0, 0, |_| None);
        assert_eq!(active.due_for_sending(0, 60_000, 15_000).len(), 1);
        assert!(active.due_for_sending(15_000, 60_000, 15_000).is_empty());
        assert!(active.due_for_sending(60_000, 60_000, 15_000).is_empty());
        let resent = active.due_for_sending(75_000, 60_000, 15_000);
        assert_eq!(resent[0].valid_until_ms, 75_000 + 240_000);
    }
}
