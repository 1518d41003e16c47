//! Reading a whole block file (or some of its row groups) as a stream of traces in row order,
//! one record batch at a time, for compaction: memory holds a batch per input block, never a
//! whole block decoded. Row order is trace-ID order in `andante-v1`, and within each row group
//! in `andante-v2`.

use std::collections::VecDeque;

use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};

use super::read::batch_to_traces;
use super::schema::DedicatedSlots;
use crate::{BlockError, Trace};

/// Traces of one data file (already fetched), in row order.
pub struct TraceStream {
    reader: ParquetRecordBatchReader,
    slots: DedicatedSlots,
    buffered: VecDeque<Trace>,
    exhausted: bool,
}

impl TraceStream {
    pub fn new(data: Bytes, batch_rows: usize) -> Result<TraceStream, BlockError> {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(data).map_err(BlockError::parquet)?;
        Self::of(builder, batch_rows)
    }

    /// The traces of one row group of a file whose footer `metadata` was read once.
    pub fn of_row_group(
        data: Bytes,
        metadata: &ArrowReaderMetadata,
        row_group: usize,
        batch_rows: usize,
    ) -> Result<TraceStream, BlockError> {
        if row_group >= metadata.metadata().num_row_groups() {
            return Err(BlockError::Corrupt(format!(
                "row group {row_group} is not in the file"
            )));
        }
        let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(data, metadata.clone())
            .with_row_groups(vec![row_group]);
        Self::of(builder, batch_rows)
    }

    fn of(
        builder: ParquetRecordBatchReaderBuilder<Bytes>,
        batch_rows: usize,
    ) -> Result<TraceStream, BlockError> {
        let slots = DedicatedSlots::from_metadata(builder.metadata());
        let reader = builder
            .with_batch_size(batch_rows)
            .build()
            .map_err(BlockError::parquet)?;
        Ok(TraceStream {
            reader,
            slots,
            buffered: VecDeque::new(),
            exhausted: false,
        })
    }

    fn fill(&mut self) -> Result<(), BlockError> {
        crate::guard::decode(|| self.fill_unguarded())
    }

    fn fill_unguarded(&mut self) -> Result<(), BlockError> {
        // The last buffered trace may continue in the next batch: keep reading until a second
        // trace appears behind it or the file ends.
        while !self.exhausted && self.buffered.len() < 2 {
            match self.reader.next() {
                None => self.exhausted = true,
                Some(batch) => {
                    let batch = batch.map_err(|error| BlockError::parquet(error.into()))?;
                    for trace in batch_to_traces(&batch, &self.slots)? {
                        match self.buffered.back_mut() {
                            Some(last) if last.trace_id == trace.trace_id => {
                                let fragments = std::mem::take(&mut last.resource_spans)
                                    .into_iter()
                                    .chain(trace.resource_spans);
                                last.resource_spans =
                                    andante_model::merge_resource_spans(fragments);
                            }
                            _ => self.buffered.push_back(trace),
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Iterator for TraceStream {
    type Item = Result<Trace, BlockError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Err(error) = self.fill() {
            self.exhausted = true;
            self.buffered.clear();
            return Some(Err(error));
        }
        self.buffered.pop_front().map(Ok)
    }
}
