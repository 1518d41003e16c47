//! Metric blocks: the samples of one tenant over one time range, as one object on the trace
//! storage (`<tenant>/metrics/<start_ms>-<end_ms>.amb`), so the series store survives beyond its
//! WAL and restarts reload it.
//!
//! # Format (`andante-metrics-v1`)
//! ```text
//! "ANDMET01"                                8-byte magic naming the version
//! u32 LE header_len | header: JSON          {"format", "tenant", "start_ms", "end_ms", "series", "samples"}
//! series*                                   `header.series` times:
//!   varint label_count | (varint len | name | varint len | value)*
//!   varint chunk_count | (varint len | chunk)*   chunks as `chunk::encode` writes them
//! u32 LE crc32c of every byte before it
//! ```
//! Every sample of a block lies in `[start_ms, end_ms)`. The key names the range, so writing the
//! same range again (a cut retried after a crash, always a superset) replaces the object.
//! A released version never changes in place: a new layout takes the next magic and is read
//! beside this one.

use serde::{Deserialize, Serialize};

use crate::varint::{self, put_bytes, Cursor};
use crate::{chunk, Labels, SeriesSamples};

const MAGIC_V1: &[u8; 8] = b"ANDMET01";
pub const FORMAT_V1: &str = "andante-metrics-v1";
pub use andante_storage::METRICS_DIR;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub format: String,
    pub tenant: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub series: u64,
    pub samples: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BlockError {
    #[error("metric block is damaged: {0}")]
    Corrupt(&'static str),
    #[error("metric block format `{0}` is not one this version reads")]
    UnknownFormat(String),
}

/// The object key of a tenant's block over `[start_ms, end_ms)`.
pub fn key(tenant: &str, start_ms: i64, end_ms: i64) -> String {
    format!("{tenant}/{METRICS_DIR}/{start_ms:013}-{end_ms:013}.amb")
}

/// The range a block key names, if it is one.
pub fn range_of_key(key: &str) -> Option<(i64, i64)> {
    let name = key.rsplit('/').next()?.strip_suffix(".amb")?;
    let (start, end) = name.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

/// Encodes `series` (samples in time order, all inside the range) as a block.
pub fn encode(tenant: &str, start_ms: i64, end_ms: i64, series: &[SeriesSamples]) -> Vec<u8> {
    let mut writer = Writer::default();
    for one in series {
        writer.push(&one.labels, &one.samples);
    }
    writer.finish(tenant, start_ms, end_ms)
}

/// Builds a block one series at a time, so a large tenant is never held decoded all at once.
#[derive(Default)]
pub struct Writer {
    body: Vec<u8>,
    series: u64,
    samples: u64,
}

impl Writer {
    pub fn push(&mut self, labels: &Labels, samples: &[(i64, f64)]) {
        if samples.is_empty() {
            return;
        }
        self.series += 1;
        self.samples += samples.len() as u64;
        varint::put(&mut self.body, labels.len() as u64);
        for (name, value) in labels.iter() {
            put_bytes(&mut self.body, name.as_bytes());
            put_bytes(&mut self.body, value.as_bytes());
        }
        let chunks: Vec<&[(i64, f64)]> = samples.chunks(chunk::SAMPLES_PER_CHUNK).collect();
        varint::put(&mut self.body, chunks.len() as u64);
        for part in chunks {
            put_bytes(&mut self.body, &chunk::encode(part));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.series == 0
    }

    pub fn finish(self, tenant: &str, start_ms: i64, end_ms: i64) -> Vec<u8> {
        let header = BlockHeader {
            format: FORMAT_V1.into(),
            tenant: tenant.into(),
            start_ms,
            end_ms,
            series: self.series,
            samples: self.samples,
        };
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(16 + header.len() + self.body.len());
        out.extend_from_slice(MAGIC_V1);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.body);
        let checksum = crc32c::crc32c(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }
}

/// Decodes a block, checking its checksum first.
pub fn decode(bytes: &[u8]) -> Result<(BlockHeader, Vec<SeriesSamples>), BlockError> {
    if bytes.len() < MAGIC_V1.len() + 8 {
        return Err(BlockError::Corrupt("shorter than its framing"));
    }
    if &bytes[..8] != MAGIC_V1 {
        return Err(BlockError::UnknownFormat(
            String::from_utf8_lossy(&bytes[..8]).into_owned(),
        ));
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 4);
    let checksum = u32::from_le_bytes(
        checksum
            .try_into()
            .map_err(|_| BlockError::Corrupt("checksum"))?,
    );
    if crc32c::crc32c(body) != checksum {
        return Err(BlockError::Corrupt("checksum mismatch"));
    }
    let header_len = u32::from_le_bytes(
        body[8..12]
            .try_into()
            .map_err(|_| BlockError::Corrupt("header length"))?,
    ) as usize;
    let header_end = 12usize
        .checked_add(header_len)
        .filter(|end| *end <= body.len())
        .ok_or(BlockError::Corrupt("header past the end"))?;
    let header: BlockHeader = serde_json::from_slice(&body[12..header_end])
        .map_err(|_| BlockError::Corrupt("header is not JSON"))?;
    if header.format != FORMAT_V1 {
        return Err(BlockError::UnknownFormat(header.format));
    }
    let damaged = BlockError::Corrupt;
    let mut reader = Cursor::new(&body[header_end..]);
    let mut series = Vec::new();
    while !reader.is_done() {
        let label_count = reader.count().ok_or(damaged("label count"))?;
        let mut pairs = Vec::with_capacity(label_count);
        for _ in 0..label_count {
            let name = reader.text().ok_or(damaged("label name"))?;
            let value = reader.text().ok_or(damaged("label value"))?;
            pairs.push((name, value));
        }
        let chunk_count = reader.count().ok_or(damaged("chunk count"))?;
        let mut samples = Vec::new();
        for _ in 0..chunk_count {
            let bytes = reader.length_prefixed().ok_or(damaged("chunk length"))?;
            chunk::decode_into(bytes, &mut samples).ok_or(damaged("chunk"))?;
        }
        if samples.is_empty() {
            return Err(damaged("a series without samples"));
        }
        series.push(SeriesSamples {
            labels: Labels::new(pairs),
            samples,
        });
    }
    if series.len() as u64 != header.series {
        return Err(BlockError::Corrupt("series count differs from the header"));
    }
    Ok((header, series))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_series() -> Vec<SeriesSamples> {
        vec![
            SeriesSamples {
                labels: Labels::new([("__name__", "up"), ("job", "a")]),
                samples: (0..300).map(|i| (1_000 + i * 15_000, i as f64)).collect(),
            },
            SeriesSamples {
                labels: Labels::new([("__name__", "temp")]),
                samples: vec![(5_000, f64::from_bits(0x7ff0_0000_0000_0002))],
            },
        ]
    }

    #[test]
    fn round_trip_and_every_damage_is_refused() {
        let series = sample_series();
        let bytes = encode("t", 0, 7_200_000, &series);
        let (header, decoded) = decode(&bytes).expect("decodes");
        assert_eq!((header.series, header.samples), (2, 301));
        assert_eq!(decoded[0], series[0]);
        assert_eq!(decoded[1].samples[0].1.to_bits(), 0x7ff0_0000_0000_0002);
        for at in [0, 9, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode(&damaged).is_err(), "flip at {at}");
        }
        for cut in [0, 5, 16, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn keys_name_their_range() {
        let key = key("team-a", 7_200_000, 14_400_000);
        assert_eq!(key, "team-a/metrics/0000007200000-0000014400000.amb");
        assert_eq!(range_of_key(&key), Some((7_200_000, 14_400_000)));
        assert_eq!(range_of_key("team-a/metrics/notes.txt"), None);
    }
}
