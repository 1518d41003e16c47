//! Delta temporality made cumulative: OTLP delta sums and histograms send each interval's
//! increase; PromQL's `rate` and `increase` need running totals. Every delta series keeps its
//! total here; a series seen for the first time since start continues from the last value the
//! store holds for it (replayed from the WAL), so a restart does not reset the counters.
//!
//! A total is forgotten once its series has not been written for the retention, so the map is
//! bounded by the series the store holds.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::{Labels, SeriesSamples, Store};

#[derive(Default)]
pub struct DeltaTotals {
    /// (tenant, series) → (newest time added, running total).
    totals: Mutex<HashMap<(String, Labels), (i64, f64)>>,
}

impl DeltaTotals {
    /// Replaces every delta value in `series` by the series' running total after it.
    pub fn accumulate(&self, store: &Store, tenant: &str, series: &mut [SeriesSamples]) {
        let mut totals = self.totals.lock();
        for one in series {
            let key = (tenant.to_owned(), one.labels.clone());
            let entry = totals.entry(key).or_insert_with(|| {
                store
                    .last_sample(tenant, &one.labels)
                    .filter(|(_, value)| value.is_finite())
                    .unwrap_or((i64::MIN, 0.0))
            });
            for (t, value) in &mut one.samples {
                // A stale marker passes through and leaves the total as it was.
                if value.is_nan() {
                    continue;
                }
                entry.1 += *value;
                entry.0 = entry.0.max(*t);
                *value = entry.1;
            }
        }
    }

    /// Forgets the totals of series not written within their tenant's retention.
    pub fn expire(&self, store: &Store, now_ms: i64) {
        self.totals.lock().retain(|(tenant, _), (newest, _)| {
            *newest >= now_ms.saturating_sub(store.retention_of(tenant))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AppendMode;
    use crate::StoreConfig;

    fn series(samples: &[(i64, f64)]) -> SeriesSamples {
        SeriesSamples {
            labels: Labels::new([("__name__", "requests_total")]),
            samples: samples.to_vec(),
        }
    }

    #[test]
    fn deltas_add_up_and_continue_from_the_store_after_a_restart() {
        let store = Store::new(StoreConfig::default());
        let totals = DeltaTotals::default();
        let mut batch = vec![series(&[(1_000, 2.0), (2_000, 3.0)])];
        totals.accumulate(&store, "t", &mut batch);
        assert_eq!(batch[0].samples, vec![(1_000, 2.0), (2_000, 5.0)]);
        store.append_series("t", batch, AppendMode::Replay);
        // A new accumulator (a restart) seeds from the stored 5.
        let restarted = DeltaTotals::default();
        let mut batch = vec![series(&[(3_000, 1.0)])];
        restarted.accumulate(&store, "t", &mut batch);
        assert_eq!(batch[0].samples, vec![(3_000, 6.0)]);
        // Another tenant's series of the same name starts from zero.
        let mut other = vec![series(&[(3_000, 1.0)])];
        restarted.accumulate(&store, "u", &mut other);
        assert_eq!(other[0].samples, vec![(3_000, 1.0)]);
        restarted.expire(&store, 3_001 + StoreConfig::default().retention_ms);
        assert!(restarted.totals.lock().is_empty());
    }
}
