//! The payload of one metrics WAL record: the samples one push stored, for one tenant.
//!
//! ```text
//! u8 version (1)
//! varint tenant_len, tenant bytes
//! varint series_count, then per series:
//!   varint label_count, then per label: varint name_len, name, varint value_len, value
//!   varint sample_count, then per sample: zigzag-varint timestamp_ms, u64-le value bits
//! ```
//! Labels are written once per series per record; values keep their exact bits so stale markers
//! survive. A later layout takes the next version number and is read beside this one.

use crate::{Labels, SeriesSamples};

const VERSION_1: u8 = 1;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub fn encode(tenant: &str, series: &[SeriesSamples]) -> Vec<u8> {
    let samples: usize = series.iter().map(|s| s.samples.len()).sum();
    let mut out = Vec::with_capacity(16 + series.len() * 96 + samples * 10);
    out.push(VERSION_1);
    put_bytes(&mut out, tenant.as_bytes());
    put_varint(&mut out, series.len() as u64);
    for one in series {
        put_varint(&mut out, one.labels.len() as u64);
        for (name, value) in one.labels.iter() {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        put_varint(&mut out, one.samples.len() as u64);
        for (t, value) in &one.samples {
            put_varint(&mut out, ((t << 1) ^ (t >> 63)) as u64);
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.at)?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = usize::try_from(self.varint()?).ok()?;
        std::str::from_utf8(self.take(len)?).ok()
    }

    /// A count, bounded by the bytes left (every element takes at least one byte), so a damaged
    /// count cannot make the decoder reserve gigabytes.
    fn count(&mut self) -> Option<usize> {
        let count = usize::try_from(self.varint()?).ok()?;
        (count <= self.bytes.len() - self.at).then_some(count)
    }
}

/// The tenant and series of a record; `None` for a payload that is not a version 1 record.
pub fn decode(payload: &[u8]) -> Option<(String, Vec<SeriesSamples>)> {
    let (&version, rest) = payload.split_first()?;
    if version != VERSION_1 {
        return None;
    }
    let mut reader = Reader { bytes: rest, at: 0 };
    let tenant = reader.text()?.to_owned();
    let series_count = reader.count()?;
    let mut series = Vec::with_capacity(series_count);
    for _ in 0..series_count {
        let label_count = reader.count()?;
        let mut pairs = Vec::with_capacity(label_count);
        for _ in 0..label_count {
            let name = reader.text()?;
            let value = reader.text()?;
            pairs.push((name, value));
        }
        let sample_count = reader.count()?;
        let mut samples = Vec::with_capacity(sample_count);
        for _ in 0..sample_count {
            let zigzagged = reader.varint()?;
            let t = ((zigzagged >> 1) as i64) ^ -((zigzagged & 1) as i64);
            let bits = u64::from_le_bytes(reader.take(8)?.try_into().ok()?);
            samples.push((t, f64::from_bits(bits)));
        }
        series.push(SeriesSamples {
            labels: Labels::new(pairs),
            samples,
        });
    }
    (reader.at == rest.len()).then_some((tenant, series))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

    #[test]
    fn round_trip_keeps_labels_times_and_value_bits() {
        let series = vec![
            SeriesSamples {
                labels: Labels::new([("__name__", "up"), ("job", "a")]),
                samples: vec![
                    (-5, 1.5),
                    (0, f64::from_bits(STALE_NAN_BITS)),
                    (i64::MAX, -0.0),
                ],
            },
            SeriesSamples {
                labels: Labels::new([("__name__", "m"), ("é", "ü")]),
                samples: vec![(i64::MIN, f64::INFINITY)],
            },
        ];
        let (tenant, decoded) = decode(&encode("team-a", &series)).expect("decodes");
        assert_eq!(tenant, "team-a");
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].labels, series[0].labels);
        let bits = |s: &SeriesSamples| -> Vec<(i64, u64)> {
            s.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect()
        };
        assert_eq!(bits(&decoded[0]), bits(&series[0]));
        assert_eq!(bits(&decoded[1]), bits(&series[1]));
    }

    proptest! {
        #[test]
        fn damaged_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn every_truncation_is_refused(cut in 0usize..60) {
            let series = vec![SeriesSamples {
                labels: Labels::new([("__name__", "up")]),
                samples: vec![(1, 1.0), (2, 2.0)],
            }];
            let payload = encode("t", &series);
            prop_assume!(cut < payload.len());
            prop_assert!(decode(&payload[..cut]).is_none());
        }
    }
}
