//! Parquet's async reader over `Storage`: every read of a block's data file is a ranged GET, so
//! the same code reads a local directory and a bucket, and only the pages a query needs travel.

use std::ops::Range;
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
}

impl BlockFileReader {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, key: &str, file_size: u64) -> Self {
        BlockFileReader { store, path: ObjectPath::from(key), file_size }
    }
}

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for BlockFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(external) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(external) }.boxed()
    }

    fn get_metadata<'a>(&'a mut self, options: Option<&'a ArrowReaderOptions>) -> BoxFuture<'a, Result<Arc<ParquetMetaData>>> {
        async move {
            let policy = options.map(|o| o.offset_index_policy()).unwrap_or(PageIndexPolicy::Skip);
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
