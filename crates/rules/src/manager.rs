//! Every tenant's rule groups and their schedules. Groups come from rule files (`load`) and from
//! the ruler API (`ruler`); each is keyed by tenant, source (file or namespace) and name, and runs
//! on its own task: evaluation times are the group's interval apart with an offset from a hash of
//! its key (as Prometheus spreads groups), evaluation runs on the blocking pool, its samples go to
//! the store and then one WAL record, and alerts due for sending go to the notifier. Replacing a
//! group stops its task and starts a new one; the new state restores pending alerts from
//! `ALERTS_FOR_STATE` like a restart does, so an edit does not reset `for`.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use andante_tsdb::{AppendMode, MetricsHead, SeriesSamples, Store};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::alert::Alert;
use crate::file::RuleGroup;
use crate::gofmt::rfc3339;
use crate::group::{EvalSettings, GroupState, SampleSink};
use crate::notify::{AlertmanagerAlert, Notifier};

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RulesStats {
    pub evaluations: AtomicU64,
    pub evaluation_failures: AtomicU64,
    pub missed_iterations: AtomicU64,
    /// The latest evaluation's delay past its scheduled time, in microseconds.
    pub last_lag_micros: AtomicU64,
    /// Total time spent evaluating, in microseconds.
    pub evaluation_micros: AtomicU64,
    /// Rule files skipped at start-up because they did not validate.
    pub invalid_files: AtomicU64,
}

/// Where a group was defined: a rule file, or a namespace of the ruler API.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    File,
    Namespace(String),
    /// The generated group of an SLO.
    Slo,
}

/// A group's identity: tenant, source, file or namespace, group name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub tenant: String,
    pub source: Source,
    pub file: String,
    pub name: String,
}

struct GroupHandle {
    state: Arc<Mutex<GroupState>>,
    stop: watch::Sender<bool>,
}

/// What running groups need; set once by [`Manager::run`].
struct Running {
    head: Arc<MetricsHead>,
    notifier: Arc<Notifier>,
    shutdown: watch::Receiver<bool>,
}

pub struct Manager {
    settings: EvalSettings,
    default_interval_ms: i64,
    resend_delay_ms: i64,
    groups: RwLock<BTreeMap<GroupKey, GroupHandle>>,
    running: OnceLock<Running>,
    pub stats: RulesStats,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The store side of evaluation in `serve`: samples are stored at once (later rules of the
/// group read them) and collected for one WAL record after the group.
struct HeadSink<'a> {
    store: &'a Store,
    now_ms: i64,
    stored: Vec<(String, Vec<SeriesSamples>)>,
}

impl SampleSink for HeadSink<'_> {
    fn append(&mut self, tenant: &str, batch: Vec<SeriesSamples>) {
        let mode = AppendMode::Live {
            now_ms: self.now_ms,
        };
        let outcome = self.store.append_series(tenant, batch, mode);
        if let Some(refusal) = &outcome.first_refusal {
            tracing::warn!(%tenant, %refusal, refused = outcome.refused(), "the series store refused rule results");
        }
        self.stored.push((tenant.to_owned(), outcome.accepted));
    }
}

impl Manager {
    pub fn new(settings: EvalSettings, default_interval_ms: i64, resend_delay_ms: i64) -> Manager {
        Manager {
            settings,
            default_interval_ms,
            resend_delay_ms,
            groups: RwLock::new(BTreeMap::new()),
            running: OnceLock::new(),
            stats: RulesStats::default(),
        }
    }

    /// Replaces every group that `owned` selects with `groups` (given as tenant and group, all
    /// from `source`): groups no longer present stop, new and changed ones (re)start.
    pub fn replace(
        self: &Arc<Self>,
        owned: impl Fn(&GroupKey) -> bool,
        source: Source,
        groups: Vec<(String, RuleGroup)>,
    ) {
        let mut installed = self.groups.write();
        let keep: HashSet<GroupKey> = groups
            .iter()
            .map(|(tenant, group)| GroupKey {
                tenant: tenant.clone(),
                source: source.clone(),
                file: group.file.clone(),
                name: group.name.clone(),
            })
            .collect();
        installed.retain(|key, handle| {
            let remove = owned(key) && !keep.contains(key);
            if remove {
                let _ = handle.stop.send(true);
            }
            !remove
        });
        for (tenant, group) in groups {
            let key = GroupKey {
                tenant: tenant.clone(),
                source: source.clone(),
                file: group.file.clone(),
                name: group.name.clone(),
            };
            let state = Arc::new(Mutex::new(GroupState::new(
                &tenant,
                Arc::new(group),
                self.default_interval_ms,
            )));
            let (stop, stopped) = watch::channel(false);
            if let Some(old) = installed.insert(
                key.clone(),
                GroupHandle {
                    state: state.clone(),
                    stop,
                },
            ) {
                let _ = old.stop.send(true);
            }
            self.spawn(key, state, stopped);
        }
    }

    fn spawn(
        self: &Arc<Self>,
        key: GroupKey,
        state: Arc<Mutex<GroupState>>,
        stopped: watch::Receiver<bool>,
    ) {
        if let Some(running) = self.running.get() {
            tokio::spawn(self.clone().run_group(
                key,
                state,
                running.head.clone(),
                running.notifier.clone(),
                running.shutdown.clone(),
                stopped,
            ));
        }
    }

    /// Lets `traceql:` rules run (the querier is built after the manager).
    pub fn set_traceql_source(&self, source: Arc<dyn crate::group::TraceqlSource>) {
        let _ = self.settings.traceql.set(source);
    }

    /// Lets firing alerts carry their ranked root causes.
    pub fn set_root_cause_source(&self, source: Arc<dyn crate::group::RootCauseSource>) {
        let _ = self.settings.root_causes.set(source);
    }

    pub fn group_count(&self) -> usize {
        self.groups.read().len()
    }

    /// The tenant's groups, in key order (files before namespaces).
    pub(crate) fn tenant_groups(&self, tenant: &str) -> Vec<Arc<Mutex<GroupState>>> {
        self.groups
            .read()
            .iter()
            .filter(|(key, _)| key.tenant == tenant)
            .map(|(_, handle)| handle.state.clone())
            .collect()
    }

    /// The pending and firing alerts of one group, as `/api/v1/alerts` lists them.
    pub fn group_alerts_json(
        &self,
        tenant: &str,
        source: &Source,
        name: &str,
    ) -> Vec<serde_json::Value> {
        let groups = self.groups.read();
        let Some((_, handle)) = groups
            .iter()
            .find(|(key, _)| key.tenant == tenant && key.source == *source && key.name == name)
        else {
            return Vec::new();
        };
        let state = handle.state.lock();
        state
            .rules
            .iter()
            .flat_map(|rule| rule.alerts.current())
            .map(crate::listing::alert_json)
            .collect()
    }

    /// Evaluates one group at `t_ms` and returns what Alertmanager should be told. Samples are
    /// in the store when this returns; the caller logs `stored` to the WAL.
    pub fn evaluate_group(
        &self,
        state: &Mutex<GroupState>,
        store: &Store,
        t_ms: i64,
    ) -> (Vec<(String, Vec<SeriesSamples>)>, Vec<AlertmanagerAlert>) {
        let mut sink = HeadSink {
            store,
            now_ms: t_ms,
            stored: Vec::new(),
        };
        let mut state = state.lock();
        let failures = state.evaluate(store, &self.settings, t_ms, &mut sink);
        self.stats.evaluations.fetch_add(1, Ordering::Relaxed);
        self.stats
            .evaluation_failures
            .fetch_add(failures as u64, Ordering::Relaxed);
        self.stats
            .evaluation_micros
            .fetch_add((state.evaluation_seconds * 1e6) as u64, Ordering::Relaxed);
        let due = state.due_for_sending(&self.settings, t_ms, self.resend_delay_ms);
        let alerts = due
            .into_iter()
            .map(|(alert, expr, language)| self.to_alertmanager(&alert, &expr, language))
            .collect();
        (sink.stored, alerts)
    }

    fn to_alertmanager(&self, alert: &Alert, expr: &str, language: &str) -> AlertmanagerAlert {
        let mut labels = self.settings.external_labels.clone();
        labels.extend(
            alert
                .labels
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned())),
        );
        let ends_at = alert.resolved_at_ms.unwrap_or(alert.valid_until_ms);
        AlertmanagerAlert {
            labels,
            annotations: alert.annotations.clone(),
            starts_at: rfc3339(alert.fired_at_ms.unwrap_or(alert.active_at_ms)),
            ends_at: rfc3339(ends_at),
            generator_url: generator_url(&self.settings.external_url, expr, language),
        }
    }

    /// Starts every installed group, and every group installed from now on, until `shutdown`.
    pub fn run(
        self: &Arc<Self>,
        head: Arc<MetricsHead>,
        notifier: Arc<Notifier>,
        shutdown: watch::Receiver<bool>,
    ) {
        if self
            .running
            .set(Running {
                head,
                notifier,
                shutdown,
            })
            .is_err()
        {
            return;
        }
        let groups: Vec<_> = self
            .groups
            .read()
            .iter()
            .map(|(key, handle)| (key.clone(), handle.state.clone(), handle.stop.subscribe()))
            .collect();
        for (key, state, stopped) in groups {
            self.spawn(key, state, stopped);
        }
    }

    async fn run_group(
        self: Arc<Self>,
        key: GroupKey,
        state: Arc<Mutex<GroupState>>,
        head: Arc<MetricsHead>,
        notifier: Arc<Notifier>,
        mut shutdown: watch::Receiver<bool>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let interval_ms = state.lock().interval_ms.max(1);
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let offset_ms = (hasher.finish() % interval_ms as u64) as i64;
        let now = now_ms();
        let mut next_ms = now - (now - offset_ms).rem_euclid(interval_ms) + interval_ms;
        loop {
            let wait = Duration::from_millis((next_ms - now_ms()).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
                _ = stopped.changed() => return,
            }
            if *shutdown.borrow() || *stopped.borrow() {
                return;
            }
            let started_ms = now_ms();
            self.stats.last_lag_micros.store(
                ((started_ms - next_ms).max(0) * 1000) as u64,
                Ordering::Relaxed,
            );
            let t_ms = next_ms;
            let (manager, group, store) = (self.clone(), state.clone(), head.store().clone());
            let evaluated =
                tokio::task::spawn_blocking(move || manager.evaluate_group(&group, &store, t_ms))
                    .await;
            let Ok((stored, alerts)) = evaluated else {
                tracing::error!(tenant = %key.tenant, group = %key.name, "a rule group evaluation panicked; the group stops");
                return;
            };
            for (tenant, accepted) in stored {
                if let Err(error) = head.log_stored(&tenant, accepted).await {
                    tracing::error!(%tenant, %error, "failed to write rule results to the WAL");
                }
            }
            notifier.enqueue(alerts);
            next_ms += interval_ms;
            let now = now_ms();
            if now >= next_ms {
                let missed = (now - next_ms) / interval_ms + 1;
                self.stats
                    .missed_iterations
                    .fetch_add(missed as u64, Ordering::Relaxed);
                next_ms += missed * interval_ms;
            }
        }
    }
}

/// A link back to the expression in Andante's UI (Prometheus links to its own graph page).
/// Where an alert's expression opens in the UI's metrics page, in its own language.
fn generator_url(external_url: &str, expr: &str, language: &str) -> String {
    let mut encoded = String::with_capacity(expr.len() * 3);
    for byte in expr.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!(
        "{}/ui/metrics?lang={language}&q={encoded}",
        external_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_urls_open_the_expression_in_its_own_language() {
        assert_eq!(
            generator_url("http://andante:3200/", "{ } | rate()", "traceql"),
            "http://andante:3200/ui/metrics?lang=traceql&q=%7B%20%7D%20%7C%20rate%28%29"
        );
        assert_eq!(
            generator_url("", "up{job=\"a\"} == 0", "promql"),
            "/ui/metrics?lang=promql&q=up%7Bjob%3D%22a%22%7D%20%3D%3D%200"
        );
    }
}
