//! The `index` object of a block: the trace-ID range of each row group and a Bloom filter of all
//! trace IDs. Rows are sorted by trace ID and a trace never straddles two row groups, so the
//! ranges find the single row group that may hold a trace.
//!
//! # Format (little endian)
//! ```text
//! magic "ANDIDX01" | row_groups: u32 | row_groups × (min: [u8;16], max: [u8;16])
//! | hash_count: u32 | words: u32 | words × u64 | crc32c of everything before: u32
//! ```

use andante_model::TraceId;

use crate::bloom::Bloom;
use crate::BlockError;

const MAGIC: &[u8; 8] = b"ANDIDX01";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockIndex {
    pub row_group_ranges: Vec<(TraceId, TraceId)>,
    pub bloom: Bloom,
}

impl BlockIndex {
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

    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(24 + self.row_group_ranges.len() * 32 + self.bloom.size_bytes());
        out.extend_from_slice(MAGIC);
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
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(data: &[u8]) -> Result<BlockIndex, BlockError> {
        let corrupt = |why: &str| BlockError::Corrupt(format!("index: {why}"));
        if data.len() < MAGIC.len() + 16 || &data[..MAGIC.len()] != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let (body, crc_bytes) = data.split_at(data.len() - 4);
        let crc = u32::from_le_bytes(crc_bytes.try_into().map_err(|_| corrupt("short"))?);
        if crc32c::crc32c(body) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        let mut cursor = &body[MAGIC.len()..];
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
        let mut row_group_ranges = Vec::with_capacity(row_groups);
        for _ in 0..row_groups {
            let min = TraceId(take(16)?.try_into().map_err(|_| corrupt("range"))?);
            let max = TraceId(take(16)?.try_into().map_err(|_| corrupt("range"))?);
            row_group_ranges.push((min, max));
        }
        let hash_count = u32_at(take(4)?);
        let word_count = u32_at(take(4)?) as usize;
        let words = take(word_count * 8)?
            .chunks_exact(8)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap_or_default()))
            .collect();
        Ok(BlockIndex {
            row_group_ranges,
            bloom: Bloom { hash_count, words },
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
        let index = BlockIndex {
            row_group_ranges: vec![(ids[0], ids[2]), (ids[3], ids[5])],
            bloom,
        };
        let decoded = BlockIndex::decode(&index.encode()).expect("decodes");
        assert_eq!(decoded, index);
        assert_eq!(decoded.row_group_for(&ids[1]), Some(0));
        assert_eq!(decoded.row_group_for(&ids[4]), Some(1));
        assert_eq!(decoded.row_group_for(&TraceId([9; 16])), None);
        let mut corrupted = index.encode();
        corrupted[12] ^= 1;
        assert!(BlockIndex::decode(&corrupted).is_err());
        assert!(BlockIndex::decode(b"short").is_err());
    }
}
