//! Committed offsets, kept in the bucket beside the blocks they vouch for:
//! `_cluster/log-offsets/<consumer>/<topic>/<partition>.json`. rskafka speaks no consumer-group
//! protocol, and a commit in the bucket has one more merit: the blocks and the offset that says
//! they are complete live and are backed up together. The key is outside every tenant (`_cluster`
//! holds no `meta.json` at block depth, and `log-offsets` is a reserved directory name).

use std::sync::Arc;

use andante_storage::{Storage, StorageError};
use bytes::Bytes;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::builder::BuilderMetrics;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Committed {
    offset: u64,
    committed_unix_millis: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Not skipped: resuming from a guess could lose or repeat a partition's records.
    #[error("committed offset `{key}` is unreadable: {message}")]
    Unreadable { key: String, message: String },
}

/// One consumer's committed offset of one partition.
pub struct BucketOffsets {
    storage: Storage,
    key: String,
    partition: u32,
    metrics: Option<Arc<BuilderMetrics>>,
    /// The last offset written, so an unchanged offset costs no request.
    last: Mutex<Option<u64>>,
}

impl BucketOffsets {
    pub fn new(
        storage: Storage,
        consumer: &str,
        topic: &str,
        partition: u32,
        metrics: Option<Arc<BuilderMetrics>>,
    ) -> BucketOffsets {
        BucketOffsets {
            partition,
            metrics,
            storage,
            key: format!(
                "{}/{}/{consumer}/{topic}/{partition}.json",
                andante_model::CLUSTER_DIR,
                andante_storage::LOG_OFFSETS_DIR
            ),
            last: Mutex::new(None),
        }
    }

    /// The committed offset; none when this consumer never committed this partition.
    pub async fn load(&self) -> Result<Option<u64>, OffsetError> {
        match self.storage.get(&self.key).await {
            Ok(bytes) => {
                let committed: Committed =
                    serde_json::from_slice(&bytes).map_err(|error| OffsetError::Unreadable {
                        key: self.key.clone(),
                        message: error.to_string(),
                    })?;
                self.remember(committed.offset);
                Ok(Some(committed.offset))
            }
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    pub async fn store(&self, offset: u64) -> Result<(), StorageError> {
        if *self.last.lock() == Some(offset) {
            return Ok(());
        }
        let body = serde_json::to_vec(&Committed {
            offset,
            committed_unix_millis: andante_model::now_unix_nanos() / 1_000_000,
        })
        .expect("a struct of integers serializes");
        self.storage.put(&self.key, Bytes::from(body)).await?;
        self.remember(offset);
        Ok(())
    }

    fn remember(&self, offset: u64) {
        *self.last.lock() = Some(offset);
        if let Some(metrics) = &self.metrics {
            metrics.set_committed(self.partition, offset);
        }
    }
}

impl andante_live::OffsetCommit for BucketOffsets {
    fn commit(&self, offset: u64) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // A failed commit only means a restart re-reads more of the log.
            if let Err(error) = self.store(offset).await {
                tracing::warn!(key = %self.key, offset, %error, "offset not committed");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_commit_is_read_back_and_partitions_are_apart() {
        let storage = Storage::in_memory();
        let zero = BucketOffsets::new(storage.clone(), "block-builder", "spans", 0, None);
        let one = BucketOffsets::new(storage.clone(), "block-builder", "spans", 1, None);
        assert_eq!(zero.load().await.unwrap(), None);
        zero.store(42).await.unwrap();
        assert_eq!(zero.load().await.unwrap(), Some(42));
        assert_eq!(one.load().await.unwrap(), None);
        let again = BucketOffsets::new(storage, "block-builder", "spans", 0, None);
        assert_eq!(again.load().await.unwrap(), Some(42));
    }
}
