//! Parquet's async reader over `Storage`: every read of a block's data file is a ranged GET, so
//! the same code reads a local directory and a bucket, and only the pages a query needs travel.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

pub(crate) struct BlockFileReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    file_size: u64,
    /// Bytes fetched through this reader (and its clones' shared counter): Tempo's `inspectedBytes`.
    bytes_read: Arc<AtomicU64>,
}

impl BlockFileReader {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, key: &str, file_size: u64) -> Self {
        Self::counted(store, key, file_size, Arc::default())
    }

    pub(crate) fn counted(
        store: Arc<dyn ObjectStore>,
        key: &str,
        file_size: u64,
        bytes_read: Arc<AtomicU64>,
    ) -> Self {
        BlockFileReader {
            store,
            path: ObjectPath::from(key),
            file_size,
            bytes_read,
        }
    }
}

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for BlockFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        async move {
            let bytes = self
                .store
                .get_range(&self.path, range)
                .await
                .map_err(external)?;
            self.bytes_read
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            Ok(bytes)
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        async move {
            let parts = self
                .store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(external)?;
            let fetched: usize = parts.iter().map(Bytes::len).sum();
            self.bytes_read.fetch_add(fetched as u64, Ordering::Relaxed);
            Ok(parts)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let policy = options
                .map(|o| o.offset_index_policy())
                .unwrap_or(PageIndexPolicy::Skip);
            let file_size = self.file_size;
            let metadata = ParquetMetaDataReader::new()
                .with_column_index_policy(policy)
                .with_offset_index_policy(policy)
                .with_prefetch_hint(Some(64 * 1024))
                .load_and_finish(self, file_size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
