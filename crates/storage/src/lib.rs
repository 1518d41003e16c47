//! Object storage for blocks, through the `object_store` crate: a local directory by default,
//! S3 (and S3-compatible servers), GCS or Azure when configured. Everything above this crate
//! speaks in object keys (`<tenant>/<block-id>/meta.json`), never in file paths, so a block
//! written to a local directory can be copied to a bucket unchanged.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Deserialize;

pub mod lease;

pub use object_store;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object `{key}` not found")]
    NotFound { key: String },
    #[error("storage operation on `{key}` failed: {source}")]
    Backend {
        key: String,
        source: object_store::Error,
    },
    #[error("invalid storage configuration: {0}")]
    Config(String),
}

fn backend_error(key: &str, source: object_store::Error) -> StorageError {
    match source {
        object_store::Error::NotFound { .. } => StorageError::NotFound {
            key: key.to_owned(),
        },
        source => StorageError::Backend {
            key: key.to_owned(),
            source,
        },
    }
}

/// Which backend stores the blocks (`storage.backend` in the config).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    #[default]
    Local,
    S3,
    Gcs,
    Azure,
}

/// Backend settings; the bucket-style fields are read only by the backend that needs them, and
/// credentials not given here come from the environment the usual way for each cloud.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BackendConfig {
    pub backend: BackendKind,
    /// Root directory of the local backend.
    pub local_path: String,
    pub bucket: String,
    pub endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub allow_http: bool,
    /// Azure storage account.
    pub account: String,
}

/// The directory under a tenant that holds the series store's metric blocks; every other
/// directory there is a trace block.
pub const METRICS_DIR: &str = "metrics";

/// The directory under a tenant that holds the rule groups of the ruler API; not a block.
pub const RULES_DIR: &str = "rules";

/// The directory under a tenant that holds the SLOs of the `/api/slos` API; not a block.
pub const SLOS_DIR: &str = "slos";

/// The directory under a tenant that holds leases (`lease.rs`); not a block.
pub const LEASES_DIR: &str = "leases";

/// The directory of committed log offsets (under `_cluster/`, outside every tenant); not a block.
pub const LOG_OFFSETS_DIR: &str = "log-offsets";

/// Directories under a tenant that are not trace blocks.
pub const RESERVED_DIRS: [&str; 5] = [
    METRICS_DIR,
    RULES_DIR,
    SLOS_DIR,
    LEASES_DIR,
    LOG_OFFSETS_DIR,
];

/// A handle to the configured object store; cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
}

/// One listed object.
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: String,
    pub size_bytes: u64,
}

impl Storage {
    pub fn from_config(config: &BackendConfig) -> Result<Storage, StorageError> {
        let store: Arc<dyn ObjectStore> = match config.backend {
            BackendKind::Local => {
                std::fs::create_dir_all(&config.local_path).map_err(|error| {
                    StorageError::Config(format!("`{}`: {error}", config.local_path))
                })?;
                let local =
                    object_store::local::LocalFileSystem::new_with_prefix(&config.local_path)
                        .map_err(|error| StorageError::Config(error.to_string()))?;
                Arc::new(local)
            }
            BackendKind::S3 => {
                let mut builder =
                    object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&config.bucket);
                if !config.endpoint.is_empty() {
                    builder = builder
                        .with_endpoint(&config.endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if !config.region.is_empty() {
                    builder = builder.with_region(&config.region);
                }
                if !config.access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&config.access_key_id)
                        .with_secret_access_key(&config.secret_access_key);
                }
                Arc::new(
                    builder
                        .with_allow_http(config.allow_http)
                        .build()
                        .map_err(|e| StorageError::Config(e.to_string()))?,
                )
            }
            BackendKind::Gcs => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&config.bucket)
                    .build()
                    .map_err(|error| StorageError::Config(error.to_string()))?,
            ),
            BackendKind::Azure => {
                let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(&config.bucket)
                    .with_allow_http(config.allow_http);
                if !config.account.is_empty() {
                    builder = builder.with_account(&config.account);
                }
                if !config.access_key_id.is_empty() {
                    builder = builder.with_access_key(&config.secret_access_key);
                }
                Arc::new(
                    builder
                        .build()
                        .map_err(|error| StorageError::Config(error.to_string()))?,
                )
            }
        };
        Ok(Storage { store })
    }

    /// An in-memory store, for tests.
    pub fn in_memory() -> Storage {
        Storage {
            store: Arc::new(object_store::memory::InMemory::new()),
        }
    }

    /// The underlying store, for readers (Parquet) that do their own ranged reads.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&ObjectPath::from(key), PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(|error| backend_error(key, error))
    }

    /// Writes `key` only if no object has that key (a conditional create: `If-None-Match: *` on
    /// S3, an exclusive create on a local disk). `Ok(false)`: it existed, nothing was written.
    /// Of several concurrent creates of one key exactly one returns `Ok(true)`.
    pub async fn create(&self, key: &str, data: Bytes) -> Result<bool, StorageError> {
        let options = object_store::PutOptions::from(object_store::PutMode::Create);
        match self
            .store
            .put_opts(
                &ObjectPath::from(key),
                PutPayload::from_bytes(data),
                options,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(error) => Err(backend_error(key, error)),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let result = self
            .store
            .get(&ObjectPath::from(key))
            .await
            .map_err(|error| backend_error(key, error))?;
        result
            .bytes()
            .await
            .map_err(|error| backend_error(key, error))
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        self.store
            .get_range(&ObjectPath::from(key), range)
            .await
            .map_err(|error| backend_error(key, error))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(backend_error(key, error)),
        }
    }

    /// Every object under `prefix` (recursively).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let prefix_path = ObjectPath::from(prefix);
        let objects: Vec<_> = self
            .store
            .list(Some(&prefix_path))
            .try_collect()
            .await
            .map_err(|error| backend_error(prefix, error))?;
        Ok(objects
            .into_iter()
            .map(|object| ObjectInfo {
                key: object.location.to_string(),
                size_bytes: object.size,
            })
            .collect())
    }

    /// The immediate "directories" under `prefix` (`""` for the root), as names.
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let prefix_path = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        let listing = self
            .store
            .list_with_delimiter(prefix_path.as_ref())
            .await
            .map_err(|error| backend_error(prefix, error))?;
        Ok(listing
            .common_prefixes
            .into_iter()
            .filter_map(|path| path.filename().map(str::to_owned))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn contract(storage: Storage) {
        storage
            .put("t1/b1/meta.json", Bytes::from_static(b"{}"))
            .await
            .expect("put");
        storage
            .put("t1/b2/data", Bytes::from_static(b"0123456789"))
            .await
            .expect("put");
        storage
            .put("t2/b3/meta.json", Bytes::from_static(b"{}"))
            .await
            .expect("put");
        assert_eq!(
            storage.get("t1/b1/meta.json").await.expect("get"),
            Bytes::from_static(b"{}")
        );
        assert_eq!(
            storage.get_range("t1/b2/data", 2..5).await.expect("range"),
            Bytes::from_static(b"234")
        );
        let mut tenants = storage.list_dirs("").await.expect("dirs");
        tenants.sort();
        assert_eq!(tenants, ["t1", "t2"]);
        let mut blocks = storage.list_dirs("t1").await.expect("dirs");
        blocks.sort();
        assert_eq!(blocks, ["b1", "b2"]);
        assert_eq!(storage.list("t1/b2").await.expect("list")[0].size_bytes, 10);
        storage.delete("t1/b1/meta.json").await.expect("delete");
        storage
            .delete("t1/b1/meta.json")
            .await
            .expect("deleting twice is fine");
        assert!(matches!(
            storage.get("t1/b1/meta.json").await,
            Err(StorageError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn memory_backend_meets_the_contract() {
        contract(Storage::in_memory()).await;
    }

    #[tokio::test]
    async fn local_backend_meets_the_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = BackendConfig {
            local_path: dir.path().display().to_string(),
            ..Default::default()
        };
        contract(Storage::from_config(&config).expect("local store")).await;
    }
}
