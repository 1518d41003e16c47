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

use crate::varint::{self, put_bytes, unzigzag, zigzag, Cursor};
use crate::{Labels, SeriesSamples};

const VERSION_1: u8 = 1;

pub fn encode(tenant: &str, series: &[SeriesSamples]) -> Vec<u8> {
    let samples: usize = series.iter().map(|s| s.samples.len()).sum();
    let mut out = Vec::with_capacity(16 + series.len() * 96 + samples * 10);
    out.push(VERSION_1);
    put_bytes(&mut out, tenant.as_bytes());
    varint::put(&mut out, series.len() as u64);
    for one in series {
        varint::put(&mut out, one.labels.len() as u64);
        for (name, value) in one.labels.iter() {
            put_bytes(&mut out, name.as_bytes());
            put_bytes(&mut out, value.as_bytes());
        }
        varint::put(&mut out, one.samples.len() as u64);
        for (t, value) in &one.samples {
            varint::put(&mut out, zigzag(*t));
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
    }
    out
}

/// The tenant and series of a record; `None` for a payload that is not a version 1 record.
pub fn decode(payload: &[u8]) -> Option<(String, Vec<SeriesSamples>)> {
    let (&version, rest) = payload.split_first()?;
    if version != VERSION_1 {
        return None;
    }
    let mut reader = Cursor::new(rest);
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
            let t = unzigzag(reader.varint()?);
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
