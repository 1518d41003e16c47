//! The payload of one metrics WAL record: the samples one push stored, for one tenant.
//!
//! Version 2 (written): `u8 2`, then a zstd frame (level 1) of a version 1 payload without its
//! version byte. A remote-write push carries one sample per series, so a record is mostly label
//! sets, which repeat their names and most values across series: zstd took the benchmark's records from
//! 258 to 19.7 bytes per sample (`docs/BENCHMARKS.md`). Version 1 (read beside it):
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
//!
//! Exemplar records (first byte 16) sit beside sample records in the same WAL: a zstd frame of
//!
//! ```text
//! varint tenant_len, tenant bytes
//! varint exemplar_count, then per exemplar:
//!   series labels, exemplar labels (each as above: varint count, then name/value pairs)
//!   zigzag-varint timestamp_ms, u64-le value bits
//! ```

use crate::varint::{self, put_bytes, unzigzag, zigzag, Cursor};
use crate::{Exemplar, Labels, SeriesSamples};

const VERSION_1: u8 = 1;
const VERSION_2: u8 = 2;
/// Far from the sample versions, so each kind can take new versions without meeting the other.
const EXEMPLARS_V1: u8 = 16;
/// A version 2 frame never inflates past this (a record is one push, at most the request limit
/// several times over), so a damaged frame cannot make replay allocate without bound.
const MAX_INFLATED_BYTES: usize = 1 << 30;

/// The record as it is written: version 2, the body compressed.
pub fn encode(tenant: &str, series: &[SeriesSamples]) -> Vec<u8> {
    let body = encode_v1(tenant, series);
    // Compressing memory into memory does not fail; if it ever did, the plain record is still a
    // valid record.
    compress(VERSION_2, &body[1..]).unwrap_or(body)
}

/// A version 1 record (uncompressed); still what replay reads when it finds one.
pub fn encode_v1(tenant: &str, series: &[SeriesSamples]) -> Vec<u8> {
    let samples: usize = series.iter().map(|s| s.samples.len()).sum();
    let mut out = Vec::with_capacity(16 + series.len() * 96 + samples * 10);
    out.push(VERSION_1);
    put_bytes(&mut out, tenant.as_bytes());
    varint::put(&mut out, series.len() as u64);
    for one in series {
        put_labels(&mut out, &one.labels);
        varint::put(&mut out, one.samples.len() as u64);
        for (t, value) in &one.samples {
            varint::put(&mut out, zigzag(*t));
            out.extend_from_slice(&value.to_bits().to_le_bytes());
        }
    }
    out
}

fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    varint::put(out, labels.len() as u64);
    for (name, value) in labels.iter() {
        put_bytes(out, name.as_bytes());
        put_bytes(out, value.as_bytes());
    }
}

fn read_labels(reader: &mut Cursor<'_>) -> Option<Labels> {
    let label_count = reader.count()?;
    let mut pairs = Vec::with_capacity(label_count);
    for _ in 0..label_count {
        let name = reader.text()?;
        let value = reader.text()?;
        pairs.push((name, value));
    }
    Some(Labels::new(pairs))
}

fn compress(kind: u8, body: &[u8]) -> Option<Vec<u8>> {
    let compressed = zstd::bulk::compress(body, 1).ok()?;
    let mut out = Vec::with_capacity(compressed.len() + 1);
    out.push(kind);
    out.extend_from_slice(&compressed);
    Some(out)
}

fn inflate(frame: &[u8]) -> Option<Vec<u8>> {
    let inflated_bytes = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
    if inflated_bytes > MAX_INFLATED_BYTES as u64 {
        return None;
    }
    zstd::bulk::decompress(frame, inflated_bytes as usize).ok()
}

/// The tenant and series of a sample record; `None` for a payload that is not one.
pub fn decode(payload: &[u8]) -> Option<(String, Vec<SeriesSamples>)> {
    let (&version, rest) = payload.split_first()?;
    match version {
        VERSION_1 => decode_body(rest),
        VERSION_2 => decode_body(&inflate(rest)?),
        _ => None,
    }
}

/// Whether `payload` is an exemplar record (of any version).
pub fn is_exemplars(payload: &[u8]) -> bool {
    payload.first() == Some(&EXEMPLARS_V1)
}

/// An exemplar record: the tenant and each exemplar with its series.
pub fn encode_exemplars(tenant: &str, exemplars: &[(Labels, Exemplar)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + exemplars.len() * 160);
    put_bytes(&mut body, tenant.as_bytes());
    varint::put(&mut body, exemplars.len() as u64);
    for (series, exemplar) in exemplars {
        put_labels(&mut body, series);
        put_labels(&mut body, &exemplar.labels);
        varint::put(&mut body, zigzag(exemplar.t_ms));
        body.extend_from_slice(&exemplar.value.to_bits().to_le_bytes());
    }
    // Compressing memory into memory does not fail; an empty record would only be skipped.
    compress(EXEMPLARS_V1, &body).unwrap_or_default()
}

/// The tenant and exemplars of an exemplar record; `None` for a payload that is not one.
pub fn decode_exemplars(payload: &[u8]) -> Option<(String, Vec<(Labels, Exemplar)>)> {
    let (&version, rest) = payload.split_first()?;
    if version != EXEMPLARS_V1 {
        return None;
    }
    let body = inflate(rest)?;
    let mut reader = Cursor::new(&body);
    let tenant = reader.text()?.to_owned();
    let count = reader.count()?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let series = read_labels(&mut reader)?;
        let labels = read_labels(&mut reader)?;
        let t_ms = unzigzag(reader.varint()?);
        let bits = u64::from_le_bytes(reader.take(8)?.try_into().ok()?);
        out.push((
            series,
            Exemplar {
                labels,
                value: f64::from_bits(bits),
                t_ms,
            },
        ));
    }
    (reader.at == body.len()).then_some((tenant, out))
}

fn decode_body(rest: &[u8]) -> Option<(String, Vec<SeriesSamples>)> {
    let mut reader = Cursor::new(rest);
    let tenant = reader.text()?.to_owned();
    let series_count = reader.count()?;
    let mut series = Vec::with_capacity(series_count);
    for _ in 0..series_count {
        let labels = read_labels(&mut reader)?;
        let sample_count = reader.count()?;
        let mut samples = Vec::with_capacity(sample_count);
        for _ in 0..sample_count {
            let t = unzigzag(reader.varint()?);
            let bits = u64::from_le_bytes(reader.take(8)?.try_into().ok()?);
            samples.push((t, f64::from_bits(bits)));
        }
        series.push(SeriesSamples { labels, samples });
    }
    (reader.at == rest.len()).then_some((tenant, series))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

    #[test]
    fn version_1_records_still_read_and_version_2_is_smaller() {
        let series: Vec<SeriesSamples> = (0..500)
            .map(|i| SeriesSamples {
                labels: Labels::new([
                    ("__name__", "container_cpu_usage_seconds_total".to_string()),
                    ("namespace", "shop".to_string()),
                    ("pod", format!("checkout-{i}")),
                ]),
                samples: vec![(1_700_000_000_000, i as f64)],
            })
            .collect();
        let v1 = encode_v1("t", &series);
        let v2 = encode("t", &series);
        assert!(v2.len() * 5 < v1.len(), "{} vs {}", v2.len(), v1.len());
        assert_eq!(decode(&v1), decode(&v2));
        assert_eq!(decode(&v2).expect("decodes").1, series);
    }

    #[test]
    fn exemplar_records_round_trip_and_are_not_sample_records() {
        let exemplars = vec![
            (
                Labels::new([("__name__", "latency_bucket"), ("le", "0.5")]),
                Exemplar {
                    labels: Labels::new([("trace_id", "0af7651916cd43dd8448eb211c80319c")]),
                    value: 0.31,
                    t_ms: 1_700_000_000_123,
                },
            ),
            (
                Labels::new([("__name__", "m"), ("é", "ü")]),
                Exemplar {
                    labels: Labels::default(),
                    value: f64::from_bits(STALE_NAN_BITS),
                    t_ms: -7,
                },
            ),
        ];
        let record = encode_exemplars("tenant-a", &exemplars);
        assert!(is_exemplars(&record));
        let (tenant, back) = decode_exemplars(&record).expect("decodes");
        assert_eq!(tenant, "tenant-a");
        assert_eq!(back[0], exemplars[0]);
        assert_eq!(back[1].1.value.to_bits(), STALE_NAN_BITS);
        assert_eq!(decode(&record), None);
        let samples = encode("t", &[]);
        assert!(!is_exemplars(&samples));
        assert_eq!(decode_exemplars(&samples), None);
        for cut in 0..record.len() {
            assert_eq!(decode_exemplars(&record[..cut]), None);
        }
    }

    #[test]
    fn the_committed_fuzz_seed_is_an_exemplar_record() {
        let seed = include_bytes!("../../../fuzz/corpus/metrics_decode/seed-wal-exemplars");
        let (tenant, exemplars) = decode_exemplars(seed).expect("the seed decodes");
        assert_eq!((tenant.as_str(), exemplars.len()), ("single-tenant", 2));
        assert_eq!(exemplars[1].1.t_ms, -7);
    }

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
