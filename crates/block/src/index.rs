//! The `index` object of a block: the trace-ID range of each row group and a Bloom filter of all
//! trace IDs. Rows are sorted by trace ID and a trace never straddles two row groups, so the
//! ranges find the single row group that may hold a trace.
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
//! Both versions are read; new blocks are written with v2. An index rebuilt from the data has no
//! chunk checksums (they would vouch for whatever the data holds now) and is written as v1.

use andante_model::TraceId;

use crate::bloom::Bloom;
use crate::BlockError;

const MAGIC_V1: &[u8; 8] = b"ANDIDX01";
const MAGIC_V2: &[u8; 8] = b"ANDIDX02";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockIndex {
    pub row_group_ranges: Vec<(TraceId, TraceId)>,
    pub bloom: Bloom,
    /// crc32c of each column chunk (row-major: row group, then leaf column), when known.
    pub chunk_checksums: Option<ChunkChecksums>,
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
        if self.row_group_ranges.len() != row_groups || !checksums_fit {
            return Err(BlockError::Corrupt(format!(
                "index: describes {} row groups, the data has {row_groups} of {columns} columns",
                self.row_group_ranges.len()
            )));
        }
        Ok(())
    }

    /// The row group that may hold `trace_id`, if any, after the Bloom filter.
    pub fn row_group_for(&self, trace_id: &TraceId) -> Option<usize> {
        if !self.bloom.may_contain(trace_id) {
            return None;
        }
        let candidate = self
            .row_group_ranges
            .partition_point(|(_, max)| max < trace_id);
        let (min, max) = self.row_group_ranges.get(candidate)?;
        (min <= trace_id && trace_id <= max).then_some(candidate)
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
        out.extend_from_slice(if self.chunk_checksums.is_some() {
            MAGIC_V2
        } else {
            MAGIC_V1
        });
        out.extend_from_slice(&(self.row_group_ranges.len() as u32).to_le_bytes());
        for (min, max) in &self.row_group_ranges {
            out.extend_from_slice(&min.0);
            out.extend_from_slice(&max.0);
        }
        out.extend_from_slice(&self.bloom.hash_count.to_le_bytes());
        out.extend_from_slice(&(self.bloom.words.len() as u32).to_le_bytes());
        for word in &self.bloom.words {
            out.extend_from_slice(&word.to_le_bytes());
        }
        if let Some(checksums) = &self.chunk_checksums {
            out.extend_from_slice(&(checksums.columns as u32).to_le_bytes());
            for crc in &checksums.crcs {
                out.extend_from_slice(&crc.to_le_bytes());
            }
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
        let chunk_checksums = if version == 2 {
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
        Ok(BlockIndex {
            row_group_ranges,
            bloom: Bloom { hash_count, words },
            chunk_checksums,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_finds_row_groups() {
        let ids: Vec<TraceId> = (1u8..=6).map(|i| TraceId([i; 16])).collect();
        let mut bloom = Bloom::new(ids.len(), 0.01);
        ids.iter().for_each(|id| bloom.insert(id));
        let mut index = BlockIndex {
            row_group_ranges: vec![(ids[0], ids[2]), (ids[3], ids[5])],
            bloom,
            chunk_checksums: None,
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
        assert_eq!(decoded.row_group_for(&ids[1]), Some(0));
        assert_eq!(decoded.row_group_for(&ids[4]), Some(1));
        assert_eq!(decoded.row_group_for(&TraceId([9; 16])), None);
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
