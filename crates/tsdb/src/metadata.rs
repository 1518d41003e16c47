//! Metric metadata (type, help, unit) per tenant and metric family, as remote-write senders and
//! OTLP exporters describe their metrics, for Prometheus' `/api/v1/metadata` (Grafana's metric
//! browser and query editor read it). The latest description of a family wins.
//!
//! Bounded: a tenant keeps at most [`MAX_FAMILIES_PER_TENANT`] families; descriptions of new
//! ones past it are dropped (their samples are not affected).

use std::collections::{BTreeMap, HashMap};

use parking_lot::RwLock;
use serde::Serialize;

pub const MAX_FAMILIES_PER_TENANT: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetricMetadata {
    /// `counter`, `gauge`, `histogram`, `gaugehistogram`, `summary`, `info`, `stateset` or
    /// `unknown`, as Prometheus spells them.
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

#[derive(Default)]
pub struct MetadataStore {
    by_tenant: RwLock<HashMap<String, BTreeMap<String, MetricMetadata>>>,
}

impl MetadataStore {
    pub fn set(&self, tenant: &str, entries: impl IntoIterator<Item = (String, MetricMetadata)>) {
        let mut by_tenant = self.by_tenant.write();
        let families = by_tenant.entry(tenant.to_owned()).or_default();
        for (family, metadata) in entries {
            if families.len() >= MAX_FAMILIES_PER_TENANT && !families.contains_key(&family) {
                continue;
            }
            families.insert(family, metadata);
        }
    }

    /// Families in name order, optionally one `metric` only, at most `limit` of them.
    pub fn get(
        &self,
        tenant: &str,
        metric: Option<&str>,
        limit: usize,
    ) -> BTreeMap<String, MetricMetadata> {
        let by_tenant = self.by_tenant.read();
        let Some(families) = by_tenant.get(tenant) else {
            return BTreeMap::new();
        };
        families
            .iter()
            .filter(|(name, _)| metric.is_none_or(|wanted| wanted == name.as_str()))
            .take(limit)
            .map(|(name, metadata)| (name.clone(), metadata.clone()))
            .collect()
    }
}

/// Prometheus' name of a remote-write `MetricMetadata.MetricType`.
pub fn remote_write_kind(kind: i32) -> &'static str {
    match kind {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: &str) -> MetricMetadata {
        MetricMetadata {
            kind: kind.into(),
            help: "h".into(),
            unit: String::new(),
        }
    }

    #[test]
    fn latest_wins_per_tenant_and_filters_apply() {
        let store = MetadataStore::default();
        store.set(
            "t",
            [
                ("a".to_string(), meta("gauge")),
                ("b".to_string(), meta("counter")),
            ],
        );
        store.set("t", [("a".to_string(), meta("counter"))]);
        store.set("u", [("a".to_string(), meta("summary"))]);
        assert_eq!(store.get("t", None, 10).len(), 2);
        assert_eq!(store.get("t", Some("a"), 10)["a"].kind, "counter");
        assert_eq!(store.get("t", None, 1).len(), 1);
        assert_eq!(store.get("u", Some("a"), 10)["a"].kind, "summary");
        assert!(store.get("v", None, 10).is_empty());
    }
}
