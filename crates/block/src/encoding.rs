//! The block encoding seam: what differs between the block formats this build reads, behind
//! one trait chosen by `meta.format` (`encoding_of`). `andante-v1` and `andante-v2` share the
//! Parquet schema, the trace table and the readers in `v1`; they differ in where a trace's rows
//! go (trace-ID order, or time clusters), whether the index summarises each row group, what
//! search scans as one unit, and how compaction merges blocks. A new format is one more
//! implementation listed in `encoding_of`, read alongside the old ones (`docs/FORMAT.md`); new
//! blocks are written in `WRITTEN`.

use std::fmt;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::compaction::{merge_time_clustered, read_trace_tables, MergeTraces};
use crate::meta::{FORMAT_V1, FORMAT_V2};
use crate::order::{self, Placed};
use crate::{encode_block_from, v1, BlockError, BlockHandle, EncodedBlock, NewBlock};
use andante_storage::Storage;

/// One block format.
pub trait BlockEncoding: Send + Sync + fmt::Debug + 'static {
    /// The `meta.format` of its blocks.
    fn format(&self) -> &'static str;

    /// The row groups of a new block, as indices into `traces` (each trace's ID, earliest span
    /// start and span count; IDs unique), cut at the first trace boundary after
    /// `row_group_spans` spans. Within a group, indices are in trace-ID order.
    fn plan_groups(&self, traces: &[Placed], row_group_spans: usize) -> Vec<Vec<usize>>;

    /// Whether its index carries a summary per row group (index v3: newest start, trace-table
    /// run, Bloom filter).
    fn summarises_row_groups(&self) -> bool;

    /// Search's scan units of one of its blocks, each with the newest trace start it can hold:
    /// a row group (`Some`), or the whole block (`None`).
    fn scan_units(&self, handle: &BlockHandle) -> Vec<(u64, Option<usize>)>;

    /// Merges `inputs` (all of this format; `files` their verified data, in the same order)
    /// into one new block, every trace whole and no span twice. CPU-heavy parts run on
    /// blocking threads.
    fn merge<'a>(
        &'a self,
        storage: &'a Storage,
        inputs: &'a [BlockHandle],
        files: Vec<Bytes>,
        new_block: NewBlock,
    ) -> BoxFuture<'a, Result<EncodedBlock, BlockError>>;
}

/// Rows in trace-ID order over the whole file.
#[derive(Debug)]
pub struct V1;

/// Row groups clustered by trace start, newest first (`order`), with index v3.
#[derive(Debug)]
pub struct V2;

/// The encoding new blocks are written in.
pub const WRITTEN: &dyn BlockEncoding = &V2;

/// The encoding of blocks whose `meta.format` is `format`; a format this build does not know is
/// `UnsupportedFormat` (such a block is skipped, never quarantined: a newer binary wrote it).
pub fn encoding_of(format: &str) -> Result<&'static dyn BlockEncoding, BlockError> {
    match format {
        FORMAT_V1 => Ok(&V1),
        FORMAT_V2 => Ok(&V2),
        other => Err(BlockError::UnsupportedFormat(other.to_owned())),
    }
}

/// A blocking merge's join failure as the merge's error.
fn joined(
    result: Result<Result<EncodedBlock, BlockError>, tokio::task::JoinError>,
) -> Result<EncodedBlock, BlockError> {
    result.map_err(|error| BlockError::Encode(error.to_string()))?
}

impl BlockEncoding for V1 {
    fn format(&self) -> &'static str {
        FORMAT_V1
    }

    fn plan_groups(&self, traces: &[Placed], row_group_spans: usize) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..traces.len()).collect();
        order.sort_unstable_by_key(|&at| traces[at].trace_id);
        order::cut_by_spans(order, traces, row_group_spans)
    }

    fn summarises_row_groups(&self) -> bool {
        false
    }

    fn scan_units(&self, handle: &BlockHandle) -> Vec<(u64, Option<usize>)> {
        vec![(handle.meta.end_unix_nanos, None)]
    }

    /// A streaming k-way merge by trace ID: memory holds one trace per input.
    fn merge<'a>(
        &'a self,
        _storage: &'a Storage,
        inputs: &'a [BlockHandle],
        files: Vec<Bytes>,
        new_block: NewBlock,
    ) -> BoxFuture<'a, Result<EncodedBlock, BlockError>> {
        let expected_traces = inputs.iter().map(|h| h.meta.trace_count as usize).sum();
        Box::pin(async move {
            joined(
                tokio::task::spawn_blocking(move || {
                    let streams = files
                        .into_iter()
                        .map(|data| v1::TraceStream::new(data, 8192))
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut merged = MergeTraces::new(streams);
                    let encoded = encode_block_from(&mut merged, expected_traces, &new_block)?;
                    match merged.error {
                        Some(error) => Err(error),
                        None => Ok(encoded),
                    }
                })
                .await,
            )
        })
    }
}

impl BlockEncoding for V2 {
    fn format(&self) -> &'static str {
        FORMAT_V2
    }

    fn plan_groups(&self, traces: &[Placed], row_group_spans: usize) -> Vec<Vec<usize>> {
        order::plan_groups(traces, row_group_spans)
    }

    fn summarises_row_groups(&self) -> bool {
        true
    }

    /// One unit per row group, bounded by its newest start; the whole block when the index has
    /// no summaries (rebuilt from the data) or there is one row group.
    fn scan_units(&self, handle: &BlockHandle) -> Vec<(u64, Option<usize>)> {
        match &handle.index.row_group_summaries {
            Some(summaries) if summaries.len() > 1 => summaries
                .iter()
                .enumerate()
                .map(|(row_group, summary)| (summary.newest_start_unix_nanos, Some(row_group)))
                .collect(),
            _ => V1.scan_units(handle),
        }
    }

    /// Two passes (`merge_time_clustered`): the inputs' trace tables place the merged traces,
    /// then each output row group is built from the input row groups holding its pieces.
    fn merge<'a>(
        &'a self,
        storage: &'a Storage,
        inputs: &'a [BlockHandle],
        files: Vec<Bytes>,
        new_block: NewBlock,
    ) -> BoxFuture<'a, Result<EncodedBlock, BlockError>> {
        Box::pin(async move {
            let tables = read_trace_tables(storage, inputs).await;
            let metas: Vec<_> = inputs.iter().map(|handle| handle.meta.clone()).collect();
            joined(
                tokio::task::spawn_blocking(move || {
                    merge_time_clustered(files, tables, &metas, &new_block)
                })
                .await,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use andante_model::TraceId;

    fn placed(n: u8, start: u64, spans: usize) -> Placed {
        Placed {
            start_unix_nanos: start,
            trace_id: TraceId([n; 16]),
            spans,
        }
    }

    #[test]
    fn each_format_is_found_by_its_name_and_others_are_refused() {
        for encoding in [&V1 as &dyn BlockEncoding, &V2] {
            assert_eq!(
                encoding_of(encoding.format()).unwrap().format(),
                encoding.format()
            );
        }
        assert_eq!(WRITTEN.format(), FORMAT_V2);
        assert!(matches!(
            encoding_of("andante-v9"),
            Err(BlockError::UnsupportedFormat(name)) if name == "andante-v9"
        ));
    }

    #[test]
    fn v1_places_by_id_and_v2_by_start() {
        // IDs against starts in opposite orders: 1 is the oldest, 3 the newest.
        let traces = [placed(3, 30, 2), placed(1, 10, 2), placed(2, 20, 2)];
        let ids = |groups: Vec<Vec<usize>>| -> Vec<Vec<u8>> {
            groups
                .into_iter()
                .map(|group| {
                    group
                        .into_iter()
                        .map(|at| traces[at].trace_id.0[0])
                        .collect()
                })
                .collect()
        };
        assert_eq!(ids(V1.plan_groups(&traces, 4)), [vec![1, 2], vec![3]]);
        assert_eq!(ids(V2.plan_groups(&traces, 4)), [vec![2, 3], vec![1]]);
        assert_eq!(ids(V1.plan_groups(&traces, 100)), [vec![1, 2, 3]]);
        assert!(V1.plan_groups(&[], 4).is_empty());
    }
}
