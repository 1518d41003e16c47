//! The `index` object of a block: the trace-ID range of each row group and a Bloom filter of all
//! trace IDs. A trace never straddles two row groups; in `andante-v1` rows are sorted by trace ID,
//! so the ranges find the single row group that may hold a trace.
//!
//! Version 2 adds a crc32c of every column chunk of `data.parquet` (arrow-rs writes Parquet
//! pages without checksums, so flipped bytes inside a value would otherwise decode silently);
//! readers verify a chunk whenever they fetch it whole.
//!
//! # Format (little endian)
//! ```text
//! v1: magic "ANDIDX01" | row_groups: u32 | row_groups × (min: [u8;16], max: [u8;16])
//!     | hash_count: u32 | words: u32 | words × u64 | crc32c of everything before: u32
//! v2: magic "ANDIDX02" | the v1 fields up to the Bloom words | columns: u32
//!     | row_groups × columns × crc32c of the column chunk's bytes: u32 | crc32c of everything before: u32
//! ```
//! Version 3, written for `andante-v2` blocks (row groups clustered by trace start, so their ID
//! ranges overlap), adds per row group what lets a search stop inside the block and a lookup
//! find its row group: the newest trace start, the row group's run of trace-table entries (count
//! and crc32c, so a scan reads only that slice of the `traces` object) and its own Bloom filter.
//!
//! ```text
//! v3: magic "ANDIDX03" | the v2 fields up to the chunk checksums
//!     | row_groups × (newest trace start: u64 | entries: u32 | crc32c of the entries' bytes: u32
//!                     | hash_count: u32 | words: u32 | words × u64)
//!     | crc32c of everything before: u32
//! ```
//! Version 4 adds per row group what its string attributes hold (`crate::values`), so a search
//! for a value a row group lacks skips it without reading it:
//!
//! ```text
//! v4: magic "ANDIDX04" | the v3 fields up to the summaries
//!     | row_groups × (keys complete: u8 | keys: u32 | keys × (key hash: u64 | covered: u8)
//!                     | hash_count: u32 | words: u32 | words × u64)
//!     | crc32c of everything before: u32
//! ```
//! Every version is read. An index rebuilt from the data has no chunk checksums (they would
//! vouch for whatever the data holds now) and no row-group summaries, and is written as v1.

use andante_model::TraceId;

use crate::bloom::Bloom;
use crate::values::ValueFilter;
use crate::BlockError;

const MAGIC_V1: &[u8; 8] = b"ANDIDX01";
const MAGIC_V2: &[u8; 8] = b"ANDIDX02";
const MAGIC_V3: &[u8; 8] = b"ANDIDX03";
const MAGIC_V4: &[u8; 8] = b"ANDIDX04";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockIndex {
    pub row_group_ranges: Vec<(TraceId, TraceId)>,
    pub bloom: Bloom,
    /// crc32c of each column chunk (row-major: row group, then leaf column), when known.
    pub chunk_checksums: Option<ChunkChecksums>,
    /// Per row group, in row-group order (index v3; needs `chunk_checksums`).
    pub row_group_summaries: Option<Vec<RowGroupSummary>>,
}

/// What index v3 knows of one row group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroupSummary {
    /// The latest trace start (earliest span start of a trace) among the row group's traces:
    /// no trace of the row group starts after it.
    pub newest_start_unix_nanos: u64,
    /// How many trace-table entries the row group has (they follow those of earlier groups).
    pub trace_entries: u32,
    /// crc32c of those entries' bytes in the `traces` object.
    pub entries_crc: u32,
    pub bloom: Bloom,
    /// The row group's attribute keys and values (index v4).
    pub values: Option<ValueFilter>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkChecksums {
    pub columns: usize,
    pub crcs: Vec<u32>,
}

impl ChunkChecksums {
    /// The checksums of every column chunk of a finished Parquet file.
    pub fn of_file(parquet: &[u8]) -> Result<ChunkChecksums, BlockError> {
        let corrupt = |why: String| BlockError::Corrupt(format!("parquet footer: {why}"));
        if parquet.len() < 12 {
            return Err(corrupt("file too short".into()));
        }
        let footer = &parquet[parquet.len() - 8..];
        let length = u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]) as usize;
        let start = (parquet.len() - 8)
            .checked_sub(length)
            .ok_or_else(|| corrupt("length past the start".into()))?;
        let metadata = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(
            &parquet[start..parquet.len() - 8],
        )
        .map_err(|error| corrupt(error.to_string()))?;
        let columns = metadata.file_metadata().schema_descr().num_columns();
        let mut crcs = Vec::with_capacity(metadata.num_row_groups() * columns);
        for group in metadata.row_groups() {
            for column in group.columns() {
                let range =
                    crate::layout::chunk_range(column, parquet.len() as u64).map_err(corrupt)?;
                let bytes = &parquet[range.start as usize..range.end as usize];
                crcs.push(crc32c::crc32c(bytes));
            }
        }
        Ok(ChunkChecksums { columns, crcs })
    }
}

/// More probes than any false-positive rate the writer asks for needs.
const MAX_HASH_COUNT: u32 = 64;

impl BlockIndex {
    /// Whether the index describes a Parquet file of this shape; one that does not is damaged
    /// (and rebuilt), or readers would index row groups and columns that are not there.
    pub fn fits(&self, row_groups: usize, columns: usize) -> Result<(), BlockError> {
        let checksums_fit = self
            .chunk_checksums
            .as_ref()
            .is_none_or(|sums| sums.columns == columns);
        let summaries_fit = self
            .row_group_summaries
            .as_ref()
            .is_none_or(|summaries| summaries.len() == row_groups);
        if self.row_group_ranges.len() != row_groups || !checksums_fit || !summaries_fit {
            return Err(BlockError::Corrupt(format!(
                "index: describes {} row groups, the data has {row_groups} of {columns} columns",
                self.row_group_ranges.len()
            )));
        }
        Ok(())
    }

    /// The row groups that may hold `trace_id`, after the Bloom filters. A trace never
    /// straddles row groups, but in an `andante-v2` block ID ranges overlap, so a Bloom false
    /// positive can name more than the one that holds it.
    pub fn row_groups_for(&self, trace_id: &TraceId) -> Vec<usize> {
        if !self.bloom.may_contain(trace_id) {
            return Vec::new();
        }
        let in_range = |row_group: &usize| {
            let (min, max) = &self.row_group_ranges[*row_group];
            min <= trace_id && trace_id <= max
        };
        match &self.row_group_summaries {
            Some(summaries) => (0..self.row_group_ranges.len())
                .filter(in_range)
                .filter(|row_group| {
                    summaries
                        .get(*row_group)
                        .is_some_and(|summary| summary.bloom.may_contain(trace_id))
                })
                .collect(),
            // Sorted, disjoint ranges (v1 blocks) hold it in at most one; a rebuilt index of
            // a v2 block has overlapping ones, so every range is checked.
            None => (0..self.row_group_ranges.len()).filter(in_range).collect(),
        }
    }

    /// Whether the index says the block may hold `trace_id` (no I/O).
    pub fn may_contain(&self, trace_id: &TraceId) -> bool {
        !self.row_groups_for(trace_id).is_empty()
    }

    /// Where row group `row_group`'s trace-table entries lie (first entry, count) and their
    /// crc32c, when the index has row-group summaries.
    pub fn trace_entries(&self, row_group: usize) -> Option<(usize, usize, u32)> {
        let summaries = self.row_group_summaries.as_ref()?;
        let first = summaries
            .iter()
            .take(row_group)
            .map(|summary| summary.trace_entries as usize)
            .sum();
        let summary = summaries.get(row_group)?;
        Some((first, summary.trace_entries as usize, summary.entries_crc))
    }

    /// The recorded checksum of one column chunk, if this index has checksums.
    pub fn chunk_checksum(&self, row_group: usize, leaf: usize) -> Option<u32> {
        let checksums = self.chunk_checksums.as_ref()?;
        if leaf >= checksums.columns {
            return None;
        }
        checksums
            .crcs
            .get(row_group * checksums.columns + leaf)
            .copied()
    }

    /// Checks fetched column chunks (`(leaf, bytes)`) of `row_group` against their checksums.
    pub fn verify_chunks<'a>(
        &self,
        row_group: usize,
        chunks: impl IntoIterator<Item = (usize, &'a [u8])>,
    ) -> Result<(), BlockError> {
        for (leaf, bytes) in chunks {
            if let Some(expected) = self.chunk_checksum(row_group, leaf) {
                if crc32c::crc32c(bytes) != expected {
                    return Err(BlockError::Corrupt(format!(
                        "row group {row_group}, column {leaf}: chunk checksum mismatch"
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            28 + self.row_group_ranges.len() * 32
                + self.bloom.size_bytes()
                + self
                    .chunk_checksums
                    .as_ref()
                    .map_or(0, |c| c.crcs.len() * 4),
        );
        // v3 extends v2, so summaries are written only beside chunk checksums.
        let summaries = self
            .row_group_summaries
            .as_ref()
            .filter(|_| self.chunk_checksums.is_some());
        // v4 extends v3 when every row group has its values.
        let values: Option<Vec<&ValueFilter>> =
            summaries.and_then(|all| all.iter().map(|s| s.values.as_ref()).collect());
        out.extend_from_slice(match (&self.chunk_checksums, summaries) {
            (Some(_), Some(_)) if values.is_some() => MAGIC_V4,
            (Some(_), Some(_)) => MAGIC_V3,
            (Some(_), None) => MAGIC_V2,
            (None, _) => MAGIC_V1,
        });
        out.extend_from_slice(&(self.row_group_ranges.len() as u32).to_le_bytes());
        for (min, max) in &self.row_group_ranges {
            out.extend_from_slice(&min.0);
            out.extend_from_slice(&max.0);
        }
        write_bloom(&mut out, &self.bloom);
        if let Some(checksums) = &self.chunk_checksums {
            out.extend_from_slice(&(checksums.columns as u32).to_le_bytes());
            for crc in &checksums.crcs {
                out.extend_from_slice(&crc.to_le_bytes());
            }
        }
        for summary in summaries.into_iter().flatten() {
            out.extend_from_slice(&summary.newest_start_unix_nanos.to_le_bytes());
            out.extend_from_slice(&summary.trace_entries.to_le_bytes());
            out.extend_from_slice(&summary.entries_crc.to_le_bytes());
            write_bloom(&mut out, &summary.bloom);
        }
        for filter in values.into_iter().flatten() {
            filter.encode(&mut out);
            write_bloom(&mut out, &filter.pairs);
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(data: &[u8]) -> Result<BlockIndex, BlockError> {
        let corrupt = |why: &str| BlockError::Corrupt(format!("index: {why}"));
        if data.len() < MAGIC_V1.len() + 16 {
            return Err(corrupt("short"));
        }
        let version = match &data[..MAGIC_V1.len()] {
            magic if magic == MAGIC_V1 => 1,
            magic if magic == MAGIC_V2 => 2,
            magic if magic == MAGIC_V3 => 3,
            magic if magic == MAGIC_V4 => 4,
            _ => return Err(corrupt("bad magic")),
        };
        let (body, crc_bytes) = data.split_at(data.len() - 4);
        let crc = u32::from_le_bytes(crc_bytes.try_into().map_err(|_| corrupt("short"))?);
        if crc32c::crc32c(body) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        let mut cursor = &body[MAGIC_V1.len()..];
        let mut take = |n: usize| -> Result<&[u8], BlockError> {
            if cursor.len() < n {
                return Err(corrupt("truncated"));
            }
            let (head, tail) = cursor.split_at(n);
            cursor = tail;
            Ok(head)
        };
        let u32_at = |bytes: &[u8]| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let row_groups = u32_at(take(4)?) as usize;
        // The count is data: allocate only what the bytes left could hold (fuzz finding 7, a
        // resealed index claiming 4e9 row groups asked for 128 GiB).
        let mut row_group_ranges = Vec::with_capacity(row_groups.min(data.len() / 32));
        for _ in 0..row_groups {
            let min = TraceId(take(16)?.try_into().map_err(|_| corrupt("range"))?);
            let max = TraceId(take(16)?.try_into().map_err(|_| corrupt("range"))?);
            row_group_ranges.push((min, max));
        }
        let bloom = read_bloom(&mut take)?;
        let chunk_checksums = if version >= 2 {
            let columns = u32_at(take(4)?) as usize;
            let count = row_groups
                .checked_mul(columns)
                .ok_or_else(|| corrupt("column count"))?;
            let crcs = take(
                count
                    .checked_mul(4)
                    .ok_or_else(|| corrupt("column count"))?,
            )?
            .chunks_exact(4)
            .map(u32_at)
            .collect();
            Some(ChunkChecksums { columns, crcs })
        } else {
            None
        };
        let mut row_group_summaries = if version >= 3 {
            let mut summaries = Vec::with_capacity(row_groups.min(data.len() / 24));
            for _ in 0..row_groups {
                let newest = take(8)?;
                let newest_start_unix_nanos =
                    u64::from_le_bytes(newest.try_into().map_err(|_| corrupt("summary"))?);
                let trace_entries = u32_at(take(4)?);
                let entries_crc = u32_at(take(4)?);
                let bloom = read_bloom(&mut take)?;
                summaries.push(RowGroupSummary {
                    newest_start_unix_nanos,
                    trace_entries,
                    entries_crc,
                    bloom,
                    values: None,
                });
            }
            Some(summaries)
        } else {
            None
        };
        if version >= 4 {
            for summary in row_group_summaries.iter_mut().flatten() {
                let keys_complete = match take(1)?[0] {
                    0 => false,
                    1 => true,
                    _ => return Err(corrupt("keys complete flag")),
                };
                let count = u32_at(take(4)?) as usize;
                let mut keys = Vec::with_capacity(count.min(data.len() / 9));
                for _ in 0..count {
                    let hash =
                        u64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt("key hash"))?);
                    let covered = match take(1)?[0] {
                        0 => false,
                        1 => true,
                        _ => return Err(corrupt("covered flag")),
                    };
                    keys.push((hash, covered));
                }
                // Lookups binary-search the keys.
                if !keys.windows(2).all(|pair| pair[0].0 < pair[1].0) {
                    return Err(corrupt("key hashes out of order"));
                }
                let pairs = read_bloom(&mut take)?;
                summary.values = Some(ValueFilter {
                    keys_complete,
                    keys,
                    pairs,
                });
            }
        }
        Ok(BlockIndex {
            row_group_ranges,
            bloom,
            chunk_checksums,
            row_group_summaries,
        })
    }
}

fn write_bloom(out: &mut Vec<u8>, bloom: &Bloom) {
    out.extend_from_slice(&bloom.hash_count.to_le_bytes());
    out.extend_from_slice(&(bloom.words.len() as u32).to_le_bytes());
    for word in &bloom.words {
        out.extend_from_slice(&word.to_le_bytes());
    }
}

fn read_bloom<'a>(
    take: &mut impl FnMut(usize) -> Result<&'a [u8], BlockError>,
) -> Result<Bloom, BlockError> {
    let corrupt = |why: &str| BlockError::Corrupt(format!("index: {why}"));
    let u32_at = |bytes: &[u8]| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let hash_count = u32_at(take(4)?);
    let word_count = u32_at(take(4)?) as usize;
    // Each lookup probes `hash_count` bits of `word_count` words: an empty filter would
    // divide by zero and a huge count would make every lookup a loop of billions.
    if word_count == 0 || !(1..=MAX_HASH_COUNT).contains(&hash_count) {
        return Err(corrupt("bloom filter shape"));
    }
    let words = take(
        word_count
            .checked_mul(8)
            .ok_or_else(|| corrupt("word count"))?,
    )?
    .chunks_exact(8)
    .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap_or_default()))
    .collect();
    Ok(Bloom { hash_count, words })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_round_trips_and_finds_overlapping_row_groups() {
        let ids: Vec<TraceId> = (1u8..=6).map(|i| TraceId([i; 16])).collect();
        let bloom_of = |members: &[TraceId]| {
            let mut bloom = Bloom::new(members.len(), 0.001);
            members.iter().for_each(|id| bloom.insert(id));
            bloom
        };
        // Two row groups whose ID ranges overlap, as time clustering makes them.
        let (first, second) = ([ids[0], ids[2], ids[4]], [ids[1], ids[3], ids[5]]);
        let index = BlockIndex {
            row_group_ranges: vec![(ids[0], ids[4]), (ids[1], ids[5])],
            bloom: bloom_of(&ids),
            chunk_checksums: Some(ChunkChecksums {
                columns: 1,
                crcs: vec![1, 2],
            }),
            row_group_summaries: Some(vec![
                RowGroupSummary {
                    newest_start_unix_nanos: 900,
                    trace_entries: 3,
                    entries_crc: 11,
                    bloom: bloom_of(&first),
                    values: None,
                },
                RowGroupSummary {
                    newest_start_unix_nanos: 500,
                    trace_entries: 3,
                    entries_crc: 12,
                    bloom: bloom_of(&second),
                    values: None,
                },
            ]),
        };
        let encoded = index.encode();
        assert_eq!(&encoded[..8], MAGIC_V3);
        let decoded = BlockIndex::decode(&encoded).expect("decodes v3");
        assert_eq!(decoded, index);
        for id in first {
            assert!(decoded.row_groups_for(&id).contains(&0));
        }
        for id in second {
            assert!(decoded.row_groups_for(&id).contains(&1));
        }
        assert!(decoded.row_groups_for(&TraceId([9; 16])).is_empty());
        assert_eq!(decoded.trace_entries(0), Some((0, 3, 11)));
        assert_eq!(decoded.trace_entries(1), Some((3, 3, 12)));
        assert_eq!(decoded.trace_entries(2), None);
        assert!(decoded.fits(2, 1).is_ok());
        // Without the summaries the ranges alone decide, and both ranges hold ID 3.
        let mut plain = index.clone();
        plain.row_group_summaries = None;
        assert_eq!(plain.row_groups_for(&ids[2]), vec![0, 1]);
        for cut in [encoded.len() - 5, encoded.len() - 30] {
            let mut short = encoded[..cut].to_vec();
            let crc = crc32c::crc32c(&short);
            short.extend_from_slice(&crc.to_le_bytes());
            assert!(BlockIndex::decode(&short).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn v4_round_trips_each_row_groups_values_and_v3_still_reads() {
        use crate::values::{ValueFilterBuilder, ValueScope};
        use andante_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
        use andante_model::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let trace_with = |value: &str| crate::Trace {
            trace_id: TraceId([1; 16]),
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        attributes: vec![KeyValue {
                            key: "enduser.id".into(),
                            key_strindex: 0,
                            value: Some(AnyValue {
                                value: Some(any_value::Value::StringValue(value.into())),
                            }),
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let filter = |value: &str| {
            let mut builder = ValueFilterBuilder::new();
            builder.add_trace(&trace_with(value));
            builder.finish()
        };
        let summary = |values| RowGroupSummary {
            newest_start_unix_nanos: 7,
            trace_entries: 1,
            entries_crc: 3,
            bloom: Bloom::new(1, 0.001),
            values,
        };
        let index = BlockIndex {
            row_group_ranges: vec![(TraceId([1; 16]), TraceId([1; 16])); 2],
            bloom: Bloom::new(2, 0.01),
            chunk_checksums: Some(ChunkChecksums {
                columns: 1,
                crcs: vec![1, 2],
            }),
            row_group_summaries: Some(vec![
                summary(Some(filter("u1"))),
                summary(Some(filter("u2"))),
            ]),
        };
        let encoded = index.encode();
        assert_eq!(&encoded[..8], MAGIC_V4);
        let decoded = BlockIndex::decode(&encoded).expect("decodes v4");
        assert_eq!(decoded, index);
        let held = |row_group: usize, value: &str| {
            decoded.row_group_summaries.as_ref().unwrap()[row_group]
                .values
                .as_ref()
                .unwrap()
                .may_hold(ValueScope::Span, "enduser.id", value)
        };
        assert!(held(0, "u1") && !held(0, "u2"));
        assert!(held(1, "u2") && !held(1, "u1"));
        for cut in [encoded.len() - 5, encoded.len() - 30] {
            let mut short = encoded[..cut].to_vec();
            let crc = crc32c::crc32c(&short);
            short.extend_from_slice(&crc.to_le_bytes());
            assert!(BlockIndex::decode(&short).is_err(), "cut at {cut}");
        }
        // A row group without values (say, merged by an older binary) makes the index v3.
        let mut older = index.clone();
        older.row_group_summaries.as_mut().unwrap()[1].values = None;
        let encoded = older.encode();
        assert_eq!(&encoded[..8], MAGIC_V3);
        let decoded = BlockIndex::decode(&encoded).expect("decodes v3");
        assert!(decoded
            .row_group_summaries
            .unwrap()
            .iter()
            .all(|summary| summary.values.is_none()));
    }

    #[test]
    fn round_trips_and_finds_row_groups() {
        let ids: Vec<TraceId> = (1u8..=6).map(|i| TraceId([i; 16])).collect();
        let mut bloom = Bloom::new(ids.len(), 0.01);
        ids.iter().for_each(|id| bloom.insert(id));
        let mut index = BlockIndex {
            row_group_ranges: vec![(ids[0], ids[2]), (ids[3], ids[5])],
            bloom,
            chunk_checksums: None,
            row_group_summaries: None,
        };
        let decoded = BlockIndex::decode(&index.encode()).expect("decodes v1");
        assert_eq!(decoded, index);
        index.chunk_checksums = Some(ChunkChecksums {
            columns: 3,
            crcs: vec![1, 2, 3, 4, 5, 6],
        });
        let decoded = BlockIndex::decode(&index.encode()).expect("decodes v2");
        assert_eq!(decoded, index);
        assert_eq!(decoded.chunk_checksum(1, 2), Some(6));
        assert_eq!(decoded.chunk_checksum(1, 3), None);
        assert!(decoded.verify_chunks(0, [(1, &b"x"[..])]).is_err());
        assert_eq!(decoded.row_groups_for(&ids[1]), vec![0]);
        assert_eq!(decoded.row_groups_for(&ids[4]), vec![1]);
        assert!(decoded.row_groups_for(&TraceId([9; 16])).is_empty());
        let mut corrupted = index.encode();
        corrupted[12] ^= 1;
        assert!(BlockIndex::decode(&corrupted).is_err());
        assert!(BlockIndex::decode(b"short").is_err());
    }

    /// Rewrites the field at `at` and reseals the checksum, as damage that got past it would.
    fn resealed(mut encoded: Vec<u8>, at: usize, value: u32) -> Vec<u8> {
        encoded[at..at + 4].copy_from_slice(&value.to_le_bytes());
        let body = encoded.len() - 4;
        let crc = crc32c::crc32c(&encoded[..body]);
        encoded[body..].copy_from_slice(&crc.to_le_bytes());
        encoded
    }

    #[test]
    fn counts_that_the_bytes_cannot_hold_are_corrupt() {
        let mut bloom = Bloom::new(4, 0.01);
        bloom.insert(&TraceId([1; 16]));
        let index = BlockIndex {
            row_group_ranges: vec![(TraceId([1; 16]), TraceId([1; 16]))],
            bloom,
            chunk_checksums: Some(ChunkChecksums {
                columns: 2,
                crcs: vec![7, 8],
            }),
            row_group_summaries: None,
        };
        let encoded = index.encode();
        // Fuzz finding 7: four billion row groups once asked for 128 GiB up front.
        let huge = resealed(encoded.clone(), 8, u32::MAX);
        assert!(BlockIndex::decode(&huge).is_err());
        let bloom_at = 12 + 32;
        for hash_count in [0, MAX_HASH_COUNT + 1, u32::MAX] {
            let bad = resealed(encoded.clone(), bloom_at, hash_count);
            assert!(BlockIndex::decode(&bad).is_err(), "hash count {hash_count}");
        }
        assert!(BlockIndex::decode(&resealed(encoded.clone(), bloom_at + 4, 0)).is_err());
        let decoded = BlockIndex::decode(&encoded).expect("intact");
        assert!(decoded.fits(1, 2).is_ok());
        assert!(decoded.fits(2, 2).is_err());
        assert!(decoded.fits(1, 3).is_err());
    }
}
