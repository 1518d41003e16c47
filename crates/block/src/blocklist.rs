//! The in-memory list of blocks per tenant, with each block's index and Parquet footer loaded.
//! It is the only way readers find blocks; writers (flush, compaction, retention) update it
//! right after they change storage, and `poll` rebuilds it from storage so that blocks written
//! by another process (a separate compactor) become visible.

use std::collections::{HashMap, HashSet};
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
}

impl BlockList {
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
    /// block's `replaces` are leftovers of a compaction that stopped before deleting its inputs,
    /// and are deleted now. A block that cannot be opened is skipped with a warning, never fatal.
    pub async fn poll(&self, storage: &Storage) -> Result<(), BlockError> {
        let poll_started_nanos = andante_model::now_unix_nanos();
        let removed_before: HashSet<Uuid> = self.removed.lock().clone();
        let mut fresh: HashMap<String, Vec<BlockHandle>> = HashMap::new();
        for tenant in storage.list_dirs("").await? {
            let known: HashMap<Uuid, BlockHandle> = self
                .blocks(&tenant)
                .into_iter()
                .map(|handle| (handle.meta.block_id, handle))
                .collect();
            let mut handles = Vec::new();
            for block_id in storage.list_dirs(&tenant).await? {
                if let Some(handle) = Uuid::parse_str(&block_id)
                    .ok()
                    .and_then(|id| known.get(&id))
                {
                    handles.push(handle.clone());
                    continue;
                }
                let meta = match read_meta(storage, &tenant, &block_id).await {
                    Ok(meta) => meta,
                    // No meta.json: a block still being written or being deleted.
                    Err(BlockError::Storage(andante_storage::StorageError::NotFound {
                        ..
                    })) => continue,
                    Err(error) => {
                        tracing::warn!(%tenant, %block_id, %error, "skipping unreadable block");
                        continue;
                    }
                };
                match BlockHandle::open(storage, meta).await {
                    Ok(handle) => handles.push(handle),
                    Err(error) => {
                        tracing::warn!(%tenant, %block_id, %error, "skipping block that failed to open")
                    }
                }
            }
            let replaced: Vec<Uuid> = handles
                .iter()
                .flat_map(|h| h.meta.replaces.iter().copied())
                .collect();
            let (stale, live): (Vec<_>, Vec<_>) = handles
                .into_iter()
                .partition(|handle| replaced.contains(&handle.meta.block_id));
            for handle in stale {
                tracing::info!(tenant = %handle.meta.tenant_id, block = %handle.meta.block_id, "deleting block left over from compaction");
                delete_block(storage, &handle.meta).await?;
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
