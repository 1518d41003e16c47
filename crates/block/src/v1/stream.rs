//! Reading a whole `andante-v1` file as a stream of traces in ID order, one record batch at a
//! time, for compaction: memory holds a batch per input block, never a whole block decoded.

use std::collections::VecDeque;

use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::read::batch_to_traces;
use super::schema::DedicatedSlots;
use crate::{BlockError, Trace};

/// Traces of one data file (already fetched), in trace-ID order.
pub struct TraceStream {
    reader: ParquetRecordBatchReader,
    slots: DedicatedSlots,
    buffered: VecDeque<Trace>,
    exhausted: bool,
}

impl TraceStream {
    pub fn new(data: Bytes, batch_rows: usize) -> Result<TraceStream, BlockError> {
        let read_error = BlockError::parquet;
        let builder = ParquetRecordBatchReaderBuilder::try_new(data).map_err(read_error)?;
        let slots = DedicatedSlots::from_metadata(builder.metadata());
        let reader = builder
            .with_batch_size(batch_rows)
            .build()
            .map_err(read_error)?;
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
