//! A series' identity: label pairs kept sorted by name, `__name__` included, so equal label sets
//! compare and hash equal however they were built.

use std::fmt;
use std::sync::Arc;

pub const METRIC_NAME: &str = "__name__";

/// A map keyed by label sets from senders: a fast hash, seeded per process (see Cargo.toml).
pub type LabelsMap<V> = std::collections::HashMap<Labels, V, foldhash::fast::RandomState>;

/// Shared, so that a query step copying a series' labels into its result costs a reference
/// count, not a dozen allocations; `set` copies on write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Arc<Vec<(String, String)>>);

impl Default for Labels {
    /// The empty set, shared: aggregations without `by` ask for it once per sample.
    fn default() -> Labels {
        static EMPTY: std::sync::OnceLock<Labels> = std::sync::OnceLock::new();
        EMPTY.get_or_init(|| Labels(Arc::new(Vec::new()))).clone()
    }
}

impl Labels {
    /// Builds a label set; empty values are dropped (Prometheus treats `x=""` as absent) and a
    /// repeated name keeps its last value.
    pub fn new<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut all: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        // Stable: among pairs of one name the last given stays last, and wins below.
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut labels: Vec<(String, String)> = Vec::with_capacity(all.len());
        for (name, value) in all {
            if labels.last().is_some_and(|(last, _)| *last == name) {
                labels.pop();
            }
            labels.push((name, value));
        }
        labels.retain(|(_, value)| !value.is_empty());
        Labels(Arc::new(labels))
    }

    /// The identity of this label set's shared storage (equal for clones).
    pub fn identity(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets (or, with an empty value, removes) one label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                Arc::make_mut(&mut self.0).remove(i);
            }
            Ok(i) if self.0[i].1 != value => Arc::make_mut(&mut self.0)[i].1 = value.to_owned(),
            Ok(_) => {}
            Err(_) if value.is_empty() => {}
            Err(i) => Arc::make_mut(&mut self.0).insert(i, (name.to_owned(), value.to_owned())),
        }
    }

    pub fn without_name(&self) -> Labels {
        if self.metric_name().is_none() {
            return self.clone();
        }
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|(n, _)| n != METRIC_NAME)
                .cloned()
                .collect(),
        ))
    }

    /// Only the named labels (`by`), or all but them (`without`, which also drops `__name__`).
    pub fn project(&self, names: &[String], keep: bool) -> Labels {
        Labels(Arc::new(
            self.0
                .iter()
                .filter(|(n, _)| {
                    let listed = names.iter().any(|name| name == n);
                    if keep {
                        listed
                    } else {
                        !listed && n != METRIC_NAME
                    }
                })
                .cloned()
                .collect(),
        ))
    }
}

/// A float as Prometheus writes it into a label value (`le`, `quantile`, `count_values`): Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)`, the shortest digits that read back the same, never
/// an exponent; `NaN`, `+Inf`, `-Inf` spelt as Go spells them.
pub fn float_text(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

/// Prometheus label names allow `[a-zA-Z_][a-zA-Z0-9_]*`: anything else becomes `_`
/// (attribute names such as `http.route` → `http_route`, `9lives` → `_9lives`).
pub fn sanitize_label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name().unwrap_or("");
        write!(f, "{name}{{")?;
        let mut first = true;
        for (n, v) in self.iter().filter(|(n, _)| *n != METRIC_NAME) {
            if !first {
                write!(f, ", ")?;
            }
            first = false;
            write!(f, "{n}={v:?}")?;
        }
        write!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_deduplicated_and_empty_values_dropped() {
        let labels = Labels::new([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(
            labels.iter().collect::<Vec<_>>(),
            vec![("a", "3"), ("b", "2")]
        );
        assert_eq!(labels.get("b"), Some("2"));
        assert_eq!(labels.get("c"), None);
    }

    #[test]
    fn project_by_and_without() {
        let labels = Labels::new([(METRIC_NAME, "m"), ("a", "1"), ("b", "2")]);
        assert_eq!(
            labels.project(&["a".into()], true),
            Labels::new([("a", "1")])
        );
        assert_eq!(
            labels.project(&["a".into()], false),
            Labels::new([("b", "2")])
        );
    }
}
