//! The series store on object storage: closed time ranges are cut from the store into metric
//! blocks ([`crate::block`]), loaded back at start, compacted from 2-hour blocks into days, and
//! deleted past each tenant's retention.
//!
//! Invariants:
//! - A range `[start, end)` is cut only once `end` is further behind the clock than the
//!   out-of-order window plus [`CUT_SLACK_MS`]; after the cut the store refuses samples older
//!   than `end` (`Store::raise_min_valid`), so nothing can land in a range already written.
//! - The WAL keeps every segment holding a sample not yet in a block: segments are deleted only
//!   when all their samples are older than the newest cut.
//! - A block replaces nothing until it is written: a day block is written before the 2-hour
//!   blocks it merges are deleted, and loading tolerates both being present (the store drops
//!   the duplicate samples).

use std::sync::Arc;

use andante_storage::{Storage, StorageError};

use crate::block::{self, METRICS_DIR};
use crate::store::AppendMode;
use crate::{Labels, Store};

/// Extra time after the out-of-order window before a range is cut, for pushes in flight.
pub const CUT_SLACK_MS: i64 = 60_000;
/// Series encoded per store lock while cutting a block.
const SERIES_PER_PAGE: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct BlockSettings {
    /// The range of a freshly cut block (2 h).
    pub block_ms: i64,
    /// The range closed 2-hour blocks are compacted into (a day).
    pub compacted_ms: i64,
}

impl Default for BlockSettings {
    fn default() -> BlockSettings {
        BlockSettings {
            block_ms: 2 * 3_600_000,
            compacted_ms: 24 * 3_600_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("metric block task failed: {0}")]
    Task(String),
}

/// What start-up found on storage.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub blocks: usize,
    pub samples: usize,
    pub damaged: Vec<String>,
    /// The end of the newest block: the store refuses older samples from now on.
    pub persisted_until_ms: Option<i64>,
}

/// One metric block object found on storage.
#[derive(Debug, Clone)]
struct Found {
    key: String,
    start_ms: i64,
    end_ms: i64,
}

async fn list_blocks(storage: &Storage, tenant: &str) -> Result<Vec<Found>, StorageError> {
    let mut found: Vec<Found> = storage
        .list(&format!("{tenant}/{METRICS_DIR}/"))
        .await?
        .into_iter()
        .filter_map(|object| {
            let (start_ms, end_ms) = block::range_of_key(&object.key)?;
            Some(Found {
                key: object.key,
                start_ms,
                end_ms,
            })
        })
        .collect();
    found.sort_by_key(|f| (f.start_ms, f.end_ms));
    Ok(found)
}

/// Every tenant that has a metric block directory.
async fn tenants_on_storage(storage: &Storage) -> Result<Vec<String>, StorageError> {
    let mut tenants = Vec::new();
    for tenant in storage.list_dirs("").await? {
        if storage
            .list_dirs(&tenant)
            .await?
            .iter()
            .any(|dir| dir == METRICS_DIR)
        {
            tenants.push(tenant);
        }
    }
    Ok(tenants)
}

/// Loads every block inside its tenant's retention into `store`, oldest first; damaged blocks
/// are reported and left on storage.
pub async fn load(
    storage: &Storage,
    store: &Arc<Store>,
    now_ms: i64,
) -> Result<LoadReport, PersistError> {
    let mut report = LoadReport::default();
    for tenant in tenants_on_storage(storage).await? {
        let cutoff = now_ms.saturating_sub(store.retention_of(&tenant));
        for found in list_blocks(storage, &tenant).await? {
            if found.end_ms <= cutoff {
                continue;
            }
            let bytes = storage.get(&found.key).await?;
            let (store, tenant) = (store.clone(), tenant.clone());
            let loaded = tokio::task::spawn_blocking(move || {
                block::decode(&bytes).map(|(_, series)| {
                    store
                        .append_series(&tenant, series, AppendMode::Replay)
                        .stored
                })
            })
            .await
            .map_err(|error| PersistError::Task(error.to_string()))?;
            match loaded {
                Ok(samples) => {
                    report.blocks += 1;
                    report.samples += samples;
                    report.persisted_until_ms = Some(
                        report
                            .persisted_until_ms
                            .map_or(found.end_ms, |u| u.max(found.end_ms)),
                    );
                }
                Err(error) => {
                    tracing::warn!(key = %found.key, %error, "skipping damaged metric block");
                    report.damaged.push(found.key);
                }
            }
        }
    }
    if let Some(until) = report.persisted_until_ms {
        store.raise_min_valid(until);
    }
    Ok(report)
}

/// The newest range end that may be cut at `now_ms`.
pub fn cut_point(store: &Store, settings: BlockSettings, now_ms: i64) -> i64 {
    let closed = now_ms - store.out_of_order_window_ms() - CUT_SLACK_MS;
    closed.div_euclid(settings.block_ms) * settings.block_ms
}

/// Writes one tenant's samples in `[start_ms, end_ms)` as a block; false when it has none.
pub async fn cut_range(
    storage: &Storage,
    store: &Arc<Store>,
    tenant: &str,
    start_ms: i64,
    end_ms: i64,
) -> Result<bool, PersistError> {
    let (store, owned_tenant) = (store.clone(), tenant.to_owned());
    let bytes = tokio::task::spawn_blocking(move || {
        let labels: Vec<Labels> = store.series_in_range(&owned_tenant, start_ms, end_ms);
        let mut writer = block::Writer::default();
        for page in labels.chunks(SERIES_PER_PAGE) {
            let samples = store.samples_in_range(&owned_tenant, page, start_ms, end_ms);
            for (labels, samples) in page.iter().zip(samples) {
                writer.push(labels, &samples);
            }
        }
        (!writer.is_empty()).then(|| writer.finish(&owned_tenant, start_ms, end_ms))
    })
    .await
    .map_err(|error| PersistError::Task(error.to_string()))?;
    let Some(bytes) = bytes else {
        return Ok(false);
    };
    storage
        .put(&block::key(tenant, start_ms, end_ms), bytes.into())
        .await?;
    Ok(true)
}

/// Merges each tenant's closed days of 2-hour blocks into one block per day, then deletes the
/// merged blocks; returns how many day blocks were written. `persisted_until_ms` bounds the
/// days considered closed.
pub async fn compact(
    storage: &Storage,
    settings: BlockSettings,
    persisted_until_ms: i64,
) -> Result<usize, PersistError> {
    let mut written = 0;
    for tenant in tenants_on_storage(storage).await? {
        let blocks = list_blocks(storage, &tenant).await?;
        let mut days: std::collections::BTreeMap<i64, Vec<Found>> = Default::default();
        for found in blocks {
            let day = found.start_ms.div_euclid(settings.compacted_ms) * settings.compacted_ms;
            let small = found.end_ms - found.start_ms < settings.compacted_ms;
            if small && day + settings.compacted_ms <= persisted_until_ms {
                days.entry(day).or_default().push(found);
            }
        }
        for (day, parts) in days {
            let mut merged: std::collections::BTreeMap<Labels, Vec<(i64, f64)>> =
                Default::default();
            for part in &parts {
                let bytes = storage.get(&part.key).await?;
                match block::decode(&bytes) {
                    Ok((_, series)) => {
                        for one in series {
                            merged.entry(one.labels).or_default().extend(one.samples);
                        }
                    }
                    Err(error) => {
                        // A damaged part stays where it is; the rest of its day waits with it.
                        tracing::warn!(key = %part.key, %error, "not compacting a day with a damaged metric block");
                        merged.clear();
                        break;
                    }
                }
            }
            if merged.is_empty() {
                continue;
            }
            let end = day + settings.compacted_ms;
            let mut writer = block::Writer::default();
            for (labels, mut samples) in merged {
                samples.sort_by_key(|s| s.0);
                samples.dedup_by_key(|s| s.0);
                writer.push(&labels, &samples);
            }
            let bytes = writer.finish(&tenant, day, end);
            storage
                .put(&block::key(&tenant, day, end), bytes.into())
                .await?;
            for part in parts {
                storage.delete(&part.key).await?;
            }
            written += 1;
        }
    }
    Ok(written)
}

/// Deletes every block that ended before its tenant's retention; returns how many.
pub async fn apply_retention(
    storage: &Storage,
    store: &Store,
    now_ms: i64,
) -> Result<usize, PersistError> {
    let mut deleted = 0;
    for tenant in tenants_on_storage(storage).await? {
        let cutoff = now_ms.saturating_sub(store.retention_of(&tenant));
        for found in list_blocks(storage, &tenant).await? {
            if found.end_ms <= cutoff {
                storage.delete(&found.key).await?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SeriesSamples, StoreConfig};

    const HOUR: i64 = 3_600_000;

    fn store_with_hours(hours: i64) -> Arc<Store> {
        let store = Arc::new(Store::new(StoreConfig {
            retention_ms: 100 * HOUR,
            ..StoreConfig::default()
        }));
        let samples: Vec<(i64, f64)> = (0..hours * 4)
            .map(|i| (i * 15 * 60_000, i as f64))
            .collect();
        store.append_series(
            "t",
            [SeriesSamples {
                labels: Labels::new([("__name__", "m")]),
                samples,
            }],
            AppendMode::Replay,
        );
        store
    }

    #[tokio::test]
    async fn a_closed_day_of_blocks_compacts_into_one_and_retention_deletes_it() {
        let storage = Storage::in_memory();
        let store = store_with_hours(26);
        let settings = BlockSettings::default();
        for start in (0..26 * HOUR).step_by(settings.block_ms as usize) {
            assert!(
                cut_range(&storage, &store, "t", start, start + settings.block_ms)
                    .await
                    .expect("cuts")
            );
        }
        assert_eq!(list_blocks(&storage, "t").await.expect("lists").len(), 13);
        // Day 0 is closed once everything up to its end is persisted; day 1 is not.
        assert_eq!(
            compact(&storage, settings, 26 * HOUR)
                .await
                .expect("compacts"),
            1
        );
        let blocks = list_blocks(&storage, "t").await.expect("lists");
        let ranges: Vec<(i64, i64)> = blocks.iter().map(|b| (b.start_ms, b.end_ms)).collect();
        assert_eq!(ranges, vec![(0, 24 * HOUR), (24 * HOUR, 26 * HOUR)]);
        let reloaded = Arc::new(Store::new(StoreConfig {
            retention_ms: 100 * HOUR,
            ..StoreConfig::default()
        }));
        let report = load(&storage, &reloaded, 26 * HOUR).await.expect("loads");
        assert_eq!((report.blocks, report.samples), (2, 26 * 4));
        // Past the retention, the day block goes; the younger one stays.
        assert_eq!(
            apply_retention(&storage, &reloaded, 124 * HOUR + 1)
                .await
                .expect("deletes"),
            1
        );
        assert_eq!(list_blocks(&storage, "t").await.expect("lists").len(), 1);
    }

    #[tokio::test]
    async fn a_damaged_block_is_reported_and_kept() {
        let storage = Storage::in_memory();
        storage
            .put(
                &block::key("t", 0, 2 * HOUR),
                bytes::Bytes::from_static(b"ANDMET01 not really"),
            )
            .await
            .expect("puts");
        let store = Arc::new(Store::new(StoreConfig::default()));
        let report = load(&storage, &store, HOUR).await.expect("loads");
        assert_eq!(report.damaged.len(), 1);
        assert_eq!(list_blocks(&storage, "t").await.expect("lists").len(), 1);
    }
}
