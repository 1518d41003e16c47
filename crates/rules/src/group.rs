//! Evaluating one rule group at one timestamp, as Prometheus' rule manager does: rules in file
//! order, each an instant query at the group's evaluation time; a recording rule's samples and
//! an alerting rule's `ALERTS`/`ALERTS_FOR_STATE` samples are appended before the next rule runs
//! (so later rules read them), and every series a rule wrote last time but not this time gets a
//! stale marker. The clock is the caller's: `serve` passes the wall clock aligned to the
//! interval, `andante rules test` passes the steps of a unit-test file.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use andante_tsdb::promql::{self, QueryValue};
use andante_tsdb::{Labels, SeriesSamples, Store, METRIC_NAME, STALE_NAN};

use crate::alert::{ActiveAlerts, Alert, AlertState, Observed};
use crate::file::{Rule, RuleGroup, RuleKind, RuleQuery};
use crate::template::TemplateData;

/// Where evaluation results go (the series store, through the WAL in `serve`).
pub trait SampleSink {
    fn append(&mut self, tenant: &str, batch: Vec<SeriesSamples>);
}

/// One series of a TraceQL metrics answer: its labels as (name, text) pairs and its value.
pub type TraceqlSample = (Vec<(String, String)>, f64);

/// Answers `traceql:` rules: the value per series of a TraceQL metrics query over the traces
/// of `(start_ms, end_ms]`, labels as (name, text) pairs. Implemented over the querier by the
/// API crate; called from evaluation, which runs on a blocking thread.
pub trait TraceqlSource: Send + Sync {
    fn instant(
        &self,
        tenant: &str,
        query: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<TraceqlSample>, String>;
}

/// Explains a firing alert: annotations naming the ranked root causes over the window before
/// `t_ms`, scoped to `service` when the alert names one; `None` when there is nothing to say.
/// Implemented over the insights engine by the API crate.
pub trait RootCauseSource: Send + Sync {
    fn explain(
        &self,
        tenant: &str,
        service: Option<&str>,
        t_ms: i64,
    ) -> Option<BTreeMap<String, String>>;
}

/// What is the same for every group of a process.
pub struct EvalSettings {
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    /// An `ALERTS_FOR_STATE` sample older than this at start-up is not restored.
    pub outage_tolerance_ms: i64,
    /// Set once the trace querier exists; without it `traceql:` rules fail with a message.
    pub traceql: OnceLock<Arc<dyn TraceqlSource>>,
    /// Set when alerts should carry root causes.
    pub root_causes: OnceLock<Arc<dyn RootCauseSource>>,
}

impl EvalSettings {
    pub fn new(
        external_labels: BTreeMap<String, String>,
        external_url: String,
        outage_tolerance_ms: i64,
    ) -> EvalSettings {
        EvalSettings {
            external_labels,
            external_url,
            outage_tolerance_ms,
            traceql: OnceLock::new(),
            root_causes: OnceLock::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// One rule's evaluation state.
#[derive(Debug, Clone)]
pub struct RuleState {
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
    pub alerts: ActiveAlerts,
    /// Series written at the previous evaluation, for stale markers.
    previous_series: HashSet<Labels>,
    /// False until the first evaluation has looked up earlier `activeAt`s.
    restored: bool,
}

/// A group with the state of its rules.
pub struct GroupState {
    pub tenant: String,
    pub group: Arc<RuleGroup>,
    pub interval_ms: i64,
    pub rules: Vec<RuleState>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
}

impl GroupState {
    pub fn new(tenant: &str, group: Arc<RuleGroup>, default_interval_ms: i64) -> GroupState {
        let interval_ms = if group.interval_ms > 0 {
            group.interval_ms
        } else {
            default_interval_ms
        };
        let rules = group
            .rules
            .iter()
            .map(|_| RuleState {
                health: Health::Unknown,
                last_error: None,
                last_evaluation_ms: None,
                evaluation_seconds: 0.0,
                alerts: ActiveAlerts::default(),
                previous_series: HashSet::new(),
                restored: false,
            })
            .collect();
        GroupState {
            tenant: tenant.to_owned(),
            group,
            interval_ms,
            rules,
            last_evaluation_ms: None,
            evaluation_seconds: 0.0,
        }
    }

    /// Evaluates every rule at `t_ms`; returns how many rules failed.
    pub fn evaluate(
        &mut self,
        store: &Store,
        settings: &EvalSettings,
        t_ms: i64,
        sink: &mut dyn SampleSink,
    ) -> usize {
        let started = Instant::now();
        let mut failures = 0;
        let group = self.group.clone();
        for (rule, state) in group.rules.iter().zip(self.rules.iter_mut()) {
            let rule_started = Instant::now();
            let result = match &rule.kind {
                RuleKind::Recording { record } => recording_samples(
                    store,
                    settings,
                    &self.tenant,
                    rule,
                    record,
                    group.limit,
                    t_ms,
                ),
                RuleKind::Alerting { .. } => alerting_samples(
                    store,
                    &self.tenant,
                    rule,
                    state,
                    settings,
                    group.limit,
                    t_ms,
                ),
            };
            state.last_evaluation_ms = Some(t_ms);
            match result {
                Ok(samples) => {
                    state.health = Health::Ok;
                    state.last_error = None;
                    let mut current = HashSet::with_capacity(samples.len());
                    let mut batch: Vec<SeriesSamples> = samples
                        .into_iter()
                        .map(|(labels, value)| {
                            current.insert(labels.clone());
                            SeriesSamples {
                                labels,
                                samples: vec![(t_ms, value)],
                            }
                        })
                        .collect();
                    for gone in state.previous_series.difference(&current) {
                        batch.push(SeriesSamples {
                            labels: gone.clone(),
                            samples: vec![(t_ms, STALE_NAN)],
                        });
                    }
                    state.previous_series = current;
                    if !batch.is_empty() {
                        sink.append(&self.tenant, batch);
                    }
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(tenant = %self.tenant, group = %group.name, rule = %rule.name(), %error, "rule evaluation failed");
                    state.health = Health::Err;
                    state.last_error = Some(error);
                }
            }
            state.evaluation_seconds = rule_started.elapsed().as_secs_f64();
        }
        self.last_evaluation_ms = Some(t_ms);
        self.evaluation_seconds = started.elapsed().as_secs_f64();
        failures
    }

    /// Alerts due for Alertmanager after an evaluation at `t_ms`, with their rule's expression.
    /// A newly firing alert is first explained by the root-cause source (at most
    /// [`ROOT_CAUSES_PER_EVALUATION`] analyses per evaluation; the others on later ones), and
    /// keeps that explanation for its resends.
    pub fn due_for_sending(
        &mut self,
        settings: &EvalSettings,
        t_ms: i64,
        resend_delay_ms: i64,
    ) -> Vec<(Alert, String, &'static str)> {
        let mut analyses = 0;
        let mut due = Vec::new();
        for (rule, state) in self.group.rules.iter().zip(self.rules.iter_mut()) {
            if !matches!(rule.kind, RuleKind::Alerting { .. }) {
                continue;
            }
            if let Some(source) = settings.root_causes.get() {
                for alert in state.alerts.alerts.values_mut() {
                    if alert.state != AlertState::Firing || alert.root_cause.is_some() {
                        continue;
                    }
                    if analyses == ROOT_CAUSES_PER_EVALUATION {
                        break;
                    }
                    analyses += 1;
                    let service = ["service", "resource_service_name", "service_name"]
                        .iter()
                        .find_map(|name| alert.labels.get(name));
                    alert.root_cause = Some(
                        source
                            .explain(&self.tenant, service, t_ms)
                            .unwrap_or_default(),
                    );
                }
            }
            for mut alert in state
                .alerts
                .due_for_sending(t_ms, resend_delay_ms, self.interval_ms)
            {
                alert.annotations = alert.annotations_with_root_cause();
                due.push((alert, rule.expr_text.clone(), rule.query.language()));
            }
        }
        due
    }
}

/// Root-cause analyses one group evaluation may run (each reads the last 30 minutes of traces).
pub const ROOT_CAUSES_PER_EVALUATION: usize = 2;

fn query(
    store: &Store,
    settings: &EvalSettings,
    tenant: &str,
    rule: &Rule,
    t_ms: i64,
) -> Result<Vec<promql::Sample>, String> {
    let expr = match &rule.query {
        RuleQuery::PromQL(expr) => expr,
        RuleQuery::TraceQL { window_ms } => {
            let source = settings.traceql.get().ok_or(
                "`traceql:` rules need the trace store (they run in `serve`, not in `rules test`)",
            )?;
            let series = source.instant(tenant, &rule.expr_text, t_ms - window_ms, t_ms)?;
            return Ok(series
                .into_iter()
                .map(|(labels, value)| promql::Sample {
                    labels: Labels::new(labels.into_iter().map(|(name, value)| {
                        (andante_tsdb::labels::sanitize_label_name(&name), value)
                    })),
                    value,
                })
                .collect());
        }
    };
    match promql::instant_query_expr(store, tenant, expr, t_ms).map_err(|error| error.message)? {
        QueryValue::Vector(_, samples) => Ok(samples),
        QueryValue::Scalar(_, value) => Ok(vec![promql::Sample {
            labels: Labels::default(),
            value,
        }]),
        QueryValue::String(..) | QueryValue::Matrix(_) => {
            Err("rule result is not a vector or scalar".into())
        }
    }
}

fn recording_samples(
    store: &Store,
    settings: &EvalSettings,
    tenant: &str,
    rule: &Rule,
    record: &str,
    limit: usize,
    t_ms: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    let samples = query(store, settings, tenant, rule, t_ms)?;
    if limit > 0 && samples.len() > limit {
        return Err(format!(
            "exceeded limit {limit} with {} series",
            samples.len()
        ));
    }
    let mut seen = HashSet::with_capacity(samples.len());
    let mut output = Vec::with_capacity(samples.len());
    for sample in samples {
        let mut pairs: Vec<(String, String)> = sample
            .labels
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        pairs.push((METRIC_NAME.to_owned(), record.to_owned()));
        for (name, template) in &rule.labels {
            pairs.push((name.clone(), template_text(template)));
        }
        let labels = Labels::new(pairs);
        if !seen.insert(labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying rule labels".into(),
            );
        }
        output.push((labels, sample.value));
    }
    Ok(output)
}

/// Recording-rule labels are checked at load to be plain text.
fn template_text(template: &crate::template::Template) -> String {
    let empty = BTreeMap::new();
    template.render(&TemplateData {
        labels: &empty,
        external_labels: &empty,
        external_url: "",
        value: 0.0,
    })
}

fn alerting_samples(
    store: &Store,
    tenant: &str,
    rule: &Rule,
    state: &mut RuleState,
    settings: &EvalSettings,
    limit: usize,
    t_ms: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    let RuleKind::Alerting {
        alert: alert_name,
        for_ms,
        keep_firing_for_ms,
        annotations,
    } = &rule.kind
    else {
        return Ok(Vec::new());
    };
    let samples = query(store, settings, tenant, rule, t_ms)?;
    let mut observed = Vec::with_capacity(samples.len());
    let mut seen = HashSet::with_capacity(samples.len());
    for sample in samples {
        let label_map: BTreeMap<String, String> = sample
            .labels
            .iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let data = TemplateData {
            labels: &label_map,
            external_labels: &settings.external_labels,
            external_url: &settings.external_url,
            value: sample.value,
        };
        let mut pairs: Vec<(String, String)> = sample
            .labels
            .iter()
            .filter(|(name, _)| *name != METRIC_NAME)
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        for (name, template) in &rule.labels {
            pairs.push((name.clone(), template.render(&data)));
        }
        pairs.push(("alertname".to_owned(), alert_name.clone()));
        let labels = Labels::new(pairs);
        if !seen.insert(labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels".into(),
            );
        }
        let annotations = annotations
            .iter()
            .map(|(name, template)| (name.clone(), template.render(&data)))
            .collect();
        observed.push(Observed {
            labels,
            annotations,
            value: sample.value,
        });
    }
    let restore_window = if state.restored {
        None
    } else {
        Some(settings.outage_tolerance_ms)
    };
    state.restored = true;
    state
        .alerts
        .update(observed, t_ms, *for_ms, *keep_firing_for_ms, |labels| {
            let tolerance = restore_window?;
            let (at_ms, active_at_secs) = store.last_sample(tenant, &for_state_labels(labels))?;
            (t_ms - at_ms <= tolerance && active_at_secs.is_finite())
                .then_some((active_at_secs * 1000.0) as i64)
        });
    let current = state.alerts.current();
    if limit > 0 && current.len() > limit {
        let count = current.len();
        state.alerts = ActiveAlerts::default();
        return Err(format!("exceeded limit of {limit} with {count} alerts"));
    }
    let mut output = Vec::with_capacity(current.len() * 2);
    for alert in current {
        let state_name = if alert.state == AlertState::Firing {
            "firing"
        } else {
            "pending"
        };
        let mut alerts_labels = alert.labels.clone();
        alerts_labels.set(METRIC_NAME, "ALERTS");
        alerts_labels.set("alertstate", state_name);
        output.push((alerts_labels, 1.0));
        output.push((
            for_state_labels(&alert.labels),
            (alert.active_at_ms / 1000) as f64,
        ));
    }
    Ok(output)
}

fn for_state_labels(alert_labels: &Labels) -> Labels {
    let mut labels = alert_labels.clone();
    labels.set(METRIC_NAME, "ALERTS_FOR_STATE");
    labels
}
