//! Every tenant's SLOs: from files (`rules.slo_path`, same layout as rule files) and from the
//! `/api/slos` API (kept in object storage at `<tenant>/slos/<name>.yaml`). Each SLO's generated
//! group runs in the rule manager like any other; the report reads back what those rules
//! recorded (error ratios, remaining budget) and the state of their alerts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use andante_storage::{Storage, StorageError, SLOS_DIR};
use andante_tsdb::promql::{self, QueryValue};
use andante_tsdb::Store;
use bytes::Bytes;
use parking_lot::RwLock;
use serde_json::{json, Value};

use crate::load::tenant_files;
use crate::manager::{Manager, Source};
use crate::ruler::{decode, encode};
use crate::slo::{parse_slo, parse_slo_file, Slo, SloContext, BURN_ALERTS, WINDOWS};
use crate::RulesError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloOrigin {
    File,
    Api,
}

/// One tenant's SLOs by name, with where each was defined.
type TenantSlos = BTreeMap<String, (Slo, SloOrigin)>;

pub struct Slos {
    storage: Storage,
    manager: Arc<Manager>,
    context: SloContext,
    /// tenant → name → SLO and where it was defined.
    slos: RwLock<BTreeMap<String, TenantSlos>>,
}

fn storage_error(error: StorageError) -> RulesError {
    RulesError::Storage(error.to_string())
}

fn key(tenant: &str, name: &str) -> String {
    format!("{tenant}/{SLOS_DIR}/{}.yaml", encode(name))
}

impl Slos {
    pub fn new(storage: Storage, manager: Arc<Manager>, context: SloContext) -> Slos {
        Slos {
            storage,
            manager,
            context,
            slos: RwLock::new(BTreeMap::new()),
        }
    }

    /// Reads SLO files; returns one message per file that did not validate (it is skipped).
    pub fn load_files(&self, path: &Path, default_tenant: &str) -> Result<Vec<String>, RulesError> {
        let mut errors = Vec::new();
        let mut tenants = Vec::new();
        for (tenant, file) in tenant_files(path, default_tenant)? {
            let parsed = std::fs::read_to_string(&file)
                .map_err(|error| RulesError::Read {
                    path: file.display().to_string(),
                    error: error.to_string(),
                })
                .and_then(|text| parse_slo_file(&file.display().to_string(), &text, &self.context));
            match parsed {
                Ok(slos) => {
                    let mut all = self.slos.write();
                    let defined = all.entry(tenant.clone()).or_default();
                    for slo in slos {
                        if defined.contains_key(&slo.spec.name) {
                            errors.push(format!(
                                "{}: slo {:?} is already defined",
                                file.display(),
                                slo.spec.name
                            ));
                            continue;
                        }
                        defined.insert(slo.spec.name.clone(), (slo, SloOrigin::File));
                    }
                    tenants.push(tenant);
                }
                Err(error) => errors.push(error.to_string()),
            }
        }
        for tenant in tenants {
            self.install(&tenant);
        }
        Ok(errors)
    }

    /// At start-up: every tenant's SLOs stored through the API; returns how many.
    pub async fn load_stored(&self) -> Result<usize, RulesError> {
        let mut count = 0;
        for tenant in self.storage.list_dirs("").await.map_err(storage_error)? {
            let objects = self
                .storage
                .list(&format!("{tenant}/{SLOS_DIR}/"))
                .await
                .map_err(storage_error)?;
            if objects.is_empty() {
                continue;
            }
            for object in objects {
                let Some(name) = object
                    .key
                    .rsplit('/')
                    .next()
                    .and_then(|file| file.strip_suffix(".yaml"))
                    .and_then(decode)
                else {
                    continue;
                };
                let text = self.storage.get(&object.key).await.map_err(storage_error)?;
                match parse_slo(&name, &String::from_utf8_lossy(&text), &self.context) {
                    Ok(slo) => {
                        let mut all = self.slos.write();
                        let defined = all.entry(tenant.clone()).or_default();
                        if defined
                            .get(&name)
                            .is_some_and(|(_, origin)| *origin == SloOrigin::File)
                        {
                            tracing::warn!(%tenant, slo = %name, "an SLO stored through the API is also defined in a file; the file's wins");
                            continue;
                        }
                        defined.insert(name, (slo, SloOrigin::Api));
                        count += 1;
                    }
                    Err(error) => {
                        tracing::warn!(%tenant, slo = %name, %error, "skipping a stored SLO that does not validate")
                    }
                }
            }
            self.install(&tenant);
        }
        Ok(count)
    }

    /// Creates or replaces an SLO of the API (not one defined in a file).
    pub async fn put(&self, tenant: &str, name: &str, body: &str) -> Result<Value, RulesError> {
        let slo = parse_slo(name, body, &self.context)?;
        self.refuse_file_defined(tenant, name)?;
        let (count, exists) = self.slos.read().get(tenant).map_or((0, false), |defined| {
            (defined.len(), defined.contains_key(name))
        });
        if !exists && count >= self.context.max_slos_per_tenant {
            return Err(RulesError::Limit(format!(
                "the tenant has {count} SLOs, the most `rules.max_slos_per_tenant` allows"
            )));
        }
        let stored = serde_yaml::to_string(&slo.spec)
            .map_err(|error| RulesError::Storage(error.to_string()))?;
        self.storage
            .put(&key(tenant, name), Bytes::from(stored))
            .await
            .map_err(storage_error)?;
        let spec = serde_json::to_value(&slo.spec).unwrap_or(Value::Null);
        self.slos
            .write()
            .entry(tenant.to_owned())
            .or_default()
            .insert(name.to_owned(), (slo, SloOrigin::Api));
        self.install(tenant);
        Ok(spec)
    }

    pub async fn delete(&self, tenant: &str, name: &str) -> Result<(), RulesError> {
        self.refuse_file_defined(tenant, name)?;
        let exists = self
            .slos
            .read()
            .get(tenant)
            .is_some_and(|defined| defined.contains_key(name));
        if !exists {
            return Err(RulesError::NotFound(format!("slo `{name}` does not exist")));
        }
        self.storage
            .delete(&key(tenant, name))
            .await
            .map_err(storage_error)?;
        if let Some(defined) = self.slos.write().get_mut(tenant) {
            defined.remove(name);
        }
        self.install(tenant);
        Ok(())
    }

    fn refuse_file_defined(&self, tenant: &str, name: &str) -> Result<(), RulesError> {
        let from_file = self
            .slos
            .read()
            .get(tenant)
            .and_then(|defined| defined.get(name))
            .is_some_and(|(_, origin)| *origin == SloOrigin::File);
        if from_file {
            return Err(RulesError::Invalid {
                message: format!(
                    "slo `{name}` is defined in a file (`rules.slo_path`); change it there"
                ),
            });
        }
        Ok(())
    }

    fn install(&self, tenant: &str) {
        let groups: Vec<_> = self
            .slos
            .read()
            .get(tenant)
            .map(|defined| {
                defined
                    .values()
                    .map(|(slo, _)| (tenant.to_owned(), slo.group.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let owner = tenant.to_owned();
        self.manager.replace(
            move |key| key.tenant == owner && key.source == Source::Slo,
            Source::Slo,
            groups,
        );
    }

    /// The SLO report: definition, current error ratios and burn rates, remaining budget, and
    /// the state of its alerts, from what its rules recorded by `now_ms`.
    pub fn report(
        &self,
        store: &Store,
        tenant: &str,
        name: Option<&str>,
        now_ms: i64,
    ) -> Result<Value, RulesError> {
        let all = self.slos.read();
        let defined = all.get(tenant);
        let chosen: Vec<&(Slo, SloOrigin)> = match name {
            Some(name) => vec![defined
                .and_then(|d| d.get(name))
                .ok_or_else(|| RulesError::NotFound(format!("slo `{name}` does not exist")))?],
            None => defined.map(|d| d.values().collect()).unwrap_or_default(),
        };
        let mut reports = Vec::with_capacity(chosen.len());
        for (slo, origin) in chosen {
            let budget = slo.spec.error_budget();
            let read = |metric: &str| -> Option<f64> {
                let query = format!(
                    "{metric}{{slo={}}}",
                    serde_json::to_string(&slo.spec.name).unwrap_or_default()
                );
                match promql::instant_query(store, tenant, &query, now_ms) {
                    Ok(QueryValue::Vector(_, samples)) => {
                        samples.first().map(|s| s.value).filter(|v| v.is_finite())
                    }
                    _ => None,
                }
            };
            let mut error_ratios = serde_json::Map::new();
            let mut burn_rates = serde_json::Map::new();
            for window in WINDOWS
                .iter()
                .copied()
                .chain(std::iter::once(slo.spec.window.as_str()))
            {
                let ratio = read(&format!("slo:sli_error:ratio_rate{window}"));
                error_ratios.insert(window.to_owned(), json!(ratio));
                burn_rates.insert(window.to_owned(), json!(ratio.map(|r| r / budget)));
            }
            let window_ratio = read(&format!("slo:sli_error:ratio_rate{}", slo.spec.window));
            reports.push(json!({
                "name": slo.spec.name,
                "source": if *origin == SloOrigin::File { "file" } else { "api" },
                "spec": slo.spec,
                "objective": slo.spec.objective_ratio(),
                "errorBudget": budget,
                "sli": window_ratio.map(|ratio| 1.0 - ratio),
                "errorBudgetRemaining": read("slo:error_budget_remaining:ratio"),
                "errorRatios": error_ratios,
                "burnRates": burn_rates,
                "burnRateAlerts": BURN_ALERTS.iter().map(|(severity, factor, long, short)| json!({
                    "severity": severity, "factor": factor, "longWindow": long, "shortWindow": short,
                })).collect::<Vec<_>>(),
                "alerts": self.manager.group_alerts_json(tenant, &Source::Slo, &slo.group.name),
                "group": slo.group.name,
            }));
        }
        Ok(json!({ "slos": reports }))
    }
}
