//! The in-memory list of blocks per tenant, with each block's index and Parquet footer loaded.
//! It is the only way readers find blocks; writers (flush, compaction, retention) update it
//! right after they change storage, and `poll` rebuilds it from storage so that blocks written
//! by another process (a separate compactor) become visible.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use andante_storage::Storage;
use parking_lot::RwLock;
use uuid::Uuid;

use crate::{delete_block, read_meta, BlockError, BlockHandle};

#[derive(Clone, Default)]
pub struct BlockList {
    tenants: Arc<RwLock<HashMap<String, Vec<BlockHandle>>>>,
    /// Blocks removed in memory whose objects may still be listed by a poll in progress: a
    /// poll must not bring them back. Kept until a poll that started after their removal ends.
    removed: Arc<parking_lot::Mutex<HashSet<Uuid>>>,
    pub corruption: Arc<CorruptionCounts>,
    /// Blocks quarantined by this process, with their index: a lookup of a trace one of them
    /// may hold says so instead of answering "not found".
    quarantined: Arc<RwLock<HashMap<String, Vec<QuarantinedBlock>>>>,
    /// How long a compaction's inputs stay in storage after their replacement was written
    /// (`compaction.compacted_block_retention`): other processes polling less often may still
    /// read them. 0: deleted by the first poll that sees the replacement.
    compacted_retention_nanos: Arc<AtomicU64>,
}

/// A quarantined block's meta and, when it could be read, its index.
type QuarantinedBlock = (crate::BlockMeta, Arc<crate::BlockIndex>);

/// What corruption cost so far, for the self-metrics.
#[derive(Debug, Default)]
pub struct CorruptionCounts {
    /// Blocks taken out of service because their data could not be decoded.
    pub quarantined_blocks: AtomicU64,
    /// Block indexes found damaged or missing and rebuilt from the data.
    pub rebuilt_indexes: AtomicU64,
}

/// The object a quarantined block keeps instead of `meta.json`: its meta and why.
pub const QUARANTINE_OBJECT: &str = "quarantined.json";

impl BlockList {
    pub fn set_compacted_retention(&self, retention: std::time::Duration) {
        self.compacted_retention_nanos
            .store(retention.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Every block of `tenant` (cheap clones of handles).
    pub fn blocks(&self, tenant: &str) -> Vec<BlockHandle> {
        self.tenants.read().get(tenant).cloned().unwrap_or_default()
    }

    pub fn tenants(&self) -> Vec<String> {
        self.tenants.read().keys().cloned().collect()
    }

    pub fn add(&self, handle: BlockHandle) {
        let mut tenants = self.tenants.write();
        let blocks = tenants.entry(handle.meta.tenant_id.clone()).or_default();
        blocks.retain(|existing| existing.meta.block_id != handle.meta.block_id);
        blocks.push(handle);
    }

    pub fn remove(&self, tenant: &str, block_ids: &[Uuid]) {
        self.removed.lock().extend(block_ids.iter().copied());
        if let Some(blocks) = self.tenants.write().get_mut(tenant) {
            blocks.retain(|handle| !block_ids.contains(&handle.meta.block_id));
        }
    }

    /// Takes a block whose data cannot be decoded out of service, keeping its objects for
    /// inspection: `meta.json` is replaced by `quarantined.json` (the meta and the reason), so
    /// no poll, query, compaction or retention sees it again. Everything else keeps serving.
    pub async fn quarantine(&self, storage: &Storage, meta: &crate::BlockMeta, reason: &str) {
        let tenant = meta.tenant_id.clone();
        let mut index = self
            .blocks(&tenant)
            .into_iter()
            .find(|handle| handle.meta.block_id == meta.block_id)
            .map(|handle| handle.index);
        if index.is_none() {
            // Found corrupt while opening: the index object may still be good.
            let stored = storage.get(&meta.index_key()).await.ok();
            index = stored
                .and_then(|bytes| crate::BlockIndex::decode(&bytes).ok())
                .map(Arc::new);
        }
        if let Some(index) = index {
            self.quarantined
                .write()
                .entry(tenant.clone())
                .or_default()
                .push((meta.clone(), index));
        }
        self.remove(&tenant, &[meta.block_id]);
        self.corruption
            .quarantined_blocks
            .fetch_add(1, Ordering::Relaxed);
        tracing::error!(%tenant, block = %meta.block_id, %reason, "block is corrupt; quarantined");
        let record = serde_json::json!({
            "reason": reason,
            "quarantinedUnixNanos": andante_model::now_unix_nanos().to_string(),
            "meta": meta,
        });
        let prefix = format!("{tenant}/{}", meta.block_id);
        if let Err(error) = storage
            .put(
                &format!("{prefix}/{QUARANTINE_OBJECT}"),
                record.to_string().into(),
            )
            .await
        {
            tracing::warn!(%tenant, block = %meta.block_id, %error, "could not write the quarantine record; the block is out of service until the next start");
            return;
        }
        if let Err(error) = storage.delete(&format!("{prefix}/meta.json")).await {
            tracing::warn!(%tenant, block = %meta.block_id, %error, "could not remove meta.json of a quarantined block");
        }
    }

    /// The blocks of `tenant` this process quarantined whose index may hold `trace_id`.
    pub fn quarantined_holding(
        &self,
        tenant: &str,
        trace_id: &andante_model::TraceId,
    ) -> Vec<Uuid> {
        let quarantined = self.quarantined.read();
        let Some(blocks) = quarantined.get(tenant) else {
            return Vec::new();
        };
        blocks
            .iter()
            .filter(|(_, index)| index.may_contain(trace_id))
            .map(|(meta, _)| meta.block_id)
            .collect()
    }

    /// (blocks, spans, bytes) over every tenant, for the self-metrics gauges.
    pub fn totals(&self) -> (u64, u64, u64) {
        let tenants = self.tenants.read();
        let mut totals = (0, 0, 0);
        for handle in tenants.values().flatten() {
            totals.0 += 1;
            totals.1 += handle.meta.span_count;
            totals.2 += handle.meta.data_bytes + handle.meta.index_bytes;
        }
        totals
    }

    /// Rebuilds the list from storage. Blocks already open are reused; blocks named in another
    /// block's `replaces` are a compaction's inputs: left out of the list, and deleted once the
    /// replacement is older than the compacted-block retention (a process with an older list
    /// may still read them until then). A block that cannot be opened is skipped with a warning,
    /// never fatal.
    pub async fn poll(&self, storage: &Storage) -> Result<(), BlockError> {
        let poll_started_nanos = andante_model::now_unix_nanos();
        let removed_before: HashSet<Uuid> = self.removed.lock().clone();
        let mut fresh: HashMap<String, Vec<BlockHandle>> = HashMap::new();
        for tenant in storage.list_dirs("").await? {
            if tenant == andante_model::CLUSTER_DIR {
                continue;
            }
            let known: HashMap<Uuid, BlockHandle> = self
                .blocks(&tenant)
                .into_iter()
                .map(|handle| (handle.meta.block_id, handle))
                .collect();
            let mut handles = Vec::new();
            for block_id in listed_blocks(storage, &tenant).await? {
                if let Some(handle) = Uuid::parse_str(&block_id)
                    .ok()
                    .and_then(|id| known.get(&id))
                {
                    handles.push(handle.clone());
                    continue;
                }
                let meta = match read_meta(storage, &tenant, &block_id).await {
                    Ok(meta) => meta,
                    // Deleted since the listing.
                    Err(BlockError::Storage(andante_storage::StorageError::NotFound {
                        ..
                    })) => continue,
                    Err(error) => {
                        tracing::warn!(%tenant, %block_id, %error, "skipping unreadable block");
                        continue;
                    }
                };
                match BlockHandle::open(storage, meta.clone()).await {
                    Ok(handle) => {
                        if handle.index_rebuilt {
                            self.corruption
                                .rebuilt_indexes
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        handles.push(handle)
                    }
                    Err(error) if error.is_corrupt() => {
                        self.quarantine(storage, &meta, &error.to_string()).await
                    }
                    Err(error) => {
                        tracing::warn!(%tenant, %block_id, %error, "skipping block that failed to open")
                    }
                }
            }
            // Each replaced block, and when its replacement was written.
            let replaced: HashMap<Uuid, u64> = handles
                .iter()
                .flat_map(|h| {
                    let written = h.meta.created_unix_nanos;
                    h.meta.replaces.iter().map(move |id| (*id, written))
                })
                .collect();
            let (stale, live): (Vec<_>, Vec<_>) = handles
                .into_iter()
                .partition(|handle| replaced.contains_key(&handle.meta.block_id));
            let retention = self.compacted_retention_nanos.load(Ordering::Relaxed);
            let now = andante_model::now_unix_nanos();
            for handle in stale {
                let written = replaced[&handle.meta.block_id];
                if now.saturating_sub(written) < retention {
                    continue;
                }
                tracing::info!(tenant = %handle.meta.tenant_id, block = %handle.meta.block_id, "deleting a compaction's input");
                // Another process may have deleted it first.
                if let Err(error) = delete_block(storage, &handle.meta).await {
                    tracing::warn!(tenant = %handle.meta.tenant_id, block = %handle.meta.block_id, %error, "deleting a compaction's input failed");
                }
            }
            fresh.insert(tenant, live);
        }
        // Merge with what changed in memory while storage was being listed: blocks written since
        // the poll started stay, blocks removed stay removed.
        let mut tenants = self.tenants.write();
        let mut removed = self.removed.lock();
        for (tenant, current) in tenants.iter() {
            let listed = fresh.entry(tenant.clone()).or_default();
            for handle in current {
                let is_new = handle.meta.created_unix_nanos >= poll_started_nanos;
                if is_new
                    && !listed
                        .iter()
                        .any(|h| h.meta.block_id == handle.meta.block_id)
                {
                    listed.push(handle.clone());
                }
            }
        }
        for listed in fresh.values_mut() {
            listed.retain(|handle| !removed.contains(&handle.meta.block_id));
        }
        removed.retain(|block_id| !removed_before.contains(block_id));
        *tenants = fresh;
        Ok(())
    }
}

/// The IDs of a tenant's visible blocks: directories holding a `meta.json`. Listed object by
/// object rather than by directory, because a block deleted by another process (a compactor)
/// can leave its directory behind in some stores (SeaweedFS keeps empty directories), and a
/// block known from an earlier poll must drop out once its `meta.json` is gone. The series
/// store's blocks, the ruler's groups, the SLOs and the leases live beside the trace blocks.
async fn listed_blocks(storage: &Storage, tenant: &str) -> Result<Vec<String>, BlockError> {
    let prefix = format!("{tenant}/");
    let mut ids = Vec::new();
    for object in storage.list(&prefix).await? {
        let Some((block_id, "meta.json")) = object
            .key
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('/'))
        else {
            continue;
        };
        if !andante_storage::RESERVED_DIRS.contains(&block_id) {
            ids.push(block_id.to_owned());
        }
    }
    Ok(ids)
}
