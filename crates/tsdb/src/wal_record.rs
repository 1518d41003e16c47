//! The payload of one metrics WAL record: the samples one push stored, for one tenant.
//!
//! Version 3 (written): `u8 3`, then a zstd frame (level 1) of
//!
//! ```text
//! varint tenant_len, tenant bytes
//! varint definition_count, [varint first_ref, then per definition: labels]   (refs consecutive)
//! varint group_count, then four columns over the groups, ordered by ref:
//!   refs: varint delta from the previous ref (the first from 0)
//!   counts: varint sample_count per group
//!   timestamps: zigzag-varint delta from the previous timestamp of the column (the first from 0)
//!   values: the u64-le bits of every value, stored as 8 byte planes (every value's byte 0, then
//!           every value's byte 1, …) so that zstd meets runs of like bytes
//! ```
//! A ref names a series defined by this record or an earlier record of the same WAL segment:
//! labels are written once per series per segment, as in Prometheus' WAL, instead of once per
//! push (a remote-write push carries one sample per series). [`SegmentReader`] keeps a segment's
//! definitions and refuses a ref it has not seen; the writer's side of that contract is in
//! [`crate::head`].
//!
//! Version 2 (read): `u8 2`, then a zstd frame (level 1) of a version 1 payload without its
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
const VERSION_3: u8 = 3;
/// Far from the sample versions, so each kind can take new versions without meeting the other.
const EXEMPLARS_V1: u8 = 16;
/// A version 2 frame never inflates past this (a record is one push, at most the request limit
/// several times over), so a damaged frame cannot make replay allocate without bound.
const MAX_INFLATED_BYTES: usize = 1 << 30;

/// A version 2 record (labels in every record), read beside version 3.
pub fn encode_v2(tenant: &str, series: &[SeriesSamples]) -> Vec<u8> {
    let body = encode_v1(tenant, series);
    // Compressing memory into memory does not fail; if it ever did, the plain record is still a
    // valid record.
    compress(VERSION_2, &body[1..]).unwrap_or(body)
}

/// One group of a version 3 record: the series' ref and its samples.
pub struct RefSamples<'a> {
    pub series_ref: u64,
    pub samples: &'a [(i64, f64)],
}

/// A version 3 record. `definitions` are the labels of refs `first_ref..`, in order; `groups`
/// may come in any order (they are written by ref).
pub fn encode_v3(
    tenant: &str,
    first_ref: u64,
    definitions: &[&Labels],
    groups: &mut [RefSamples<'_>],
) -> Vec<u8> {
    groups.sort_by_key(|group| group.series_ref);
    let samples: usize = groups.iter().map(|g| g.samples.len()).sum();
    let mut body =
        Vec::with_capacity(32 + definitions.len() * 160 + groups.len() * 4 + samples * 10);
    put_bytes(&mut body, tenant.as_bytes());
    varint::put(&mut body, definitions.len() as u64);
    if !definitions.is_empty() {
        varint::put(&mut body, first_ref);
        for labels in definitions {
            put_labels(&mut body, labels);
        }
    }
    varint::put(&mut body, groups.len() as u64);
    let mut previous = 0u64;
    for group in groups.iter() {
        varint::put(&mut body, group.series_ref.wrapping_sub(previous));
        previous = group.series_ref;
    }
    for group in groups.iter() {
        varint::put(&mut body, group.samples.len() as u64);
    }
    let mut previous = 0i64;
    for (t, _) in groups.iter().flat_map(|g| g.samples) {
        varint::put(&mut body, zigzag(t.wrapping_sub(previous)));
        previous = *t;
    }
    let values_at = body.len();
    body.resize(values_at + samples * 8, 0);
    for (i, (_, value)) in groups.iter().flat_map(|g| g.samples).enumerate() {
        for (plane, byte) in value.to_bits().to_le_bytes().into_iter().enumerate() {
            body[values_at + plane * samples + i] = byte;
        }
    }
    // Compressing memory into memory does not fail; an empty record would be refused at replay.
    compress(VERSION_3, &body).unwrap_or_default()
}

/// A version 3 record that defines each of its series itself (refs from 0), readable as the
/// first record of a segment: for tests and fuzzing.
pub fn encode_v3_defining_all(tenant: &str, series: &[SeriesSamples]) -> Vec<u8> {
    let definitions: Vec<&Labels> = series.iter().map(|one| &one.labels).collect();
    let mut groups: Vec<RefSamples<'_>> = series
        .iter()
        .enumerate()
        .map(|(i, one)| RefSamples {
            series_ref: i as u64,
            samples: &one.samples,
        })
        .collect();
    encode_v3(tenant, 0, &definitions, &mut groups)
}

/// Reads the sample records of one WAL in order, holding the series definitions of the segment
/// being read (a ref never reaches across segments).
#[derive(Default)]
pub struct SegmentReader {
    segment: Option<u64>,
    defined: std::collections::HashMap<u64, Labels>,
}

impl SegmentReader {
    /// The tenant and series of a sample record of `segment` (records given in WAL order);
    /// `None` for a payload that is not one, or that names a ref its segment has not defined.
    pub fn read(&mut self, segment: u64, payload: &[u8]) -> Option<(String, Vec<SeriesSamples>)> {
        if self.segment != Some(segment) {
            self.segment = Some(segment);
            self.defined.clear();
        }
        let (&version, rest) = payload.split_first()?;
        match version {
            VERSION_3 => decode_v3(&inflate(rest)?, &mut self.defined),
            _ => decode(payload),
        }
    }
}

fn decode_v3(
    body: &[u8],
    defined: &mut std::collections::HashMap<u64, Labels>,
) -> Option<(String, Vec<SeriesSamples>)> {
    let mut reader = Cursor::new(body);
    let tenant = reader.text()?.to_owned();
    let definitions = reader.count()?;
    if definitions > 0 {
        let first_ref = reader.varint()?;
        for offset in 0..definitions as u64 {
            let labels = read_labels(&mut reader)?;
            defined.insert(first_ref.checked_add(offset)?, labels);
        }
    }
    let group_count = reader.count()?;
    let mut series = Vec::with_capacity(group_count);
    let mut series_ref = 0u64;
    for _ in 0..group_count {
        series_ref = series_ref.wrapping_add(reader.varint()?);
        series.push(SeriesSamples {
            labels: defined.get(&series_ref)?.clone(),
            samples: Vec::new(),
        });
    }
    let mut total = 0usize;
    let mut counts = Vec::with_capacity(group_count);
    for _ in 0..group_count {
        let count = reader.count()?;
        total = total.checked_add(count)?;
        counts.push(count);
    }
    // Every sample takes at least one timestamp byte and eight value bytes.
    if total.checked_mul(9)? > body.len() - reader.at {
        return None;
    }
    let mut previous = 0i64;
    for (one, &count) in series.iter_mut().zip(&counts) {
        one.samples.reserve_exact(count);
        for _ in 0..count {
            previous = previous.wrapping_add(unzigzag(reader.varint()?));
            one.samples.push((previous, 0.0));
        }
    }
    let planes = reader.take(total * 8)?;
    let mut i = 0;
    for one in &mut series {
        for sample in &mut one.samples {
            let mut bits = [0u8; 8];
            for (plane, byte) in bits.iter_mut().enumerate() {
                *byte = planes[plane * total + i];
            }
            sample.1 = f64::from_bits(u64::from_le_bytes(bits));
            i += 1;
        }
    }
    reader.is_done().then_some((tenant, series))
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

/// The tenant and series of a self-contained sample record (version 1 or 2); `None` for a
/// payload that is not one. Version 3 records are read by a [`SegmentReader`].
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
        let v2 = encode_v2("t", &series);
        assert!(v2.len() * 5 < v1.len(), "{} vs {}", v2.len(), v1.len());
        assert_eq!(decode(&v1), decode(&v2));
        assert_eq!(decode(&v2).expect("decodes").1, series);
        // A segment reader reads the older versions too.
        let mut reader = SegmentReader::default();
        assert_eq!(reader.read(1, &v1), decode(&v1));
        assert_eq!(reader.read(1, &v2), decode(&v2));
    }

    #[test]
    fn version_3_refers_to_series_defined_earlier_in_the_segment_only() {
        let a = Labels::new([("__name__", "up"), ("job", "a")]);
        let b = Labels::new([("__name__", "up"), ("job", "b")]);
        let first = encode_v3(
            "t",
            7,
            &[&a, &b],
            &mut [
                RefSamples {
                    series_ref: 8,
                    samples: &[(20, 2.0)],
                },
                RefSamples {
                    series_ref: 7,
                    samples: &[(10, 1.0), (11, 1.5)],
                },
            ],
        );
        let second = encode_v3(
            "t",
            0,
            &[],
            &mut [RefSamples {
                series_ref: 8,
                samples: &[(30, 3.0)],
            }],
        );
        let mut reader = SegmentReader::default();
        let (tenant, series) = reader.read(4, &first).expect("decodes");
        assert_eq!(tenant, "t");
        // Written by ref: a's group first.
        assert_eq!(series[0].labels, a);
        assert_eq!(series[0].samples, vec![(10, 1.0), (11, 1.5)]);
        assert_eq!(series[1].labels, b);
        let (_, series) = reader.read(4, &second).expect("ref 8 is defined");
        assert_eq!(
            (&series[0].labels, &series[0].samples),
            (&b, &vec![(30, 3.0)])
        );
        // The next segment has its own definitions: the same ref is refused there.
        assert_eq!(reader.read(5, &second), None);
        // And so is a reference read without its definition.
        assert_eq!(SegmentReader::default().read(4, &second), None);
        assert_eq!(decode(&first), None, "not a self-contained record");
    }

    #[test]
    fn version_3_is_smaller_than_version_2_once_series_are_defined() {
        let labels: Vec<Labels> = (0..2000)
            .map(|i| {
                Labels::new([
                    ("__name__", "node_network_receive_bytes_total".to_string()),
                    ("instance", format!("10.0.{}.{}:9100", i / 250, i % 250)),
                    ("job", "node-exporter".to_string()),
                    ("device", format!("eth{}", i % 4)),
                ])
            })
            .collect();
        let samples: Vec<Vec<(i64, f64)>> = (0..2000)
            .map(|i| vec![(1_700_000_000_000 + (i / 50) * 7, (i * 123_456) as f64)])
            .collect();
        let series: Vec<SeriesSamples> = labels
            .iter()
            .zip(&samples)
            .map(|(labels, samples)| SeriesSamples {
                labels: labels.clone(),
                samples: samples.clone(),
            })
            .collect();
        let v2 = encode_v2("t", &series);
        let mut groups: Vec<RefSamples<'_>> = samples
            .iter()
            .enumerate()
            .map(|(i, samples)| RefSamples {
                series_ref: i as u64,
                samples,
            })
            .collect();
        let v3 = encode_v3("t", 0, &[], &mut groups);
        assert!(v3.len() * 3 < v2.len(), "{} vs {}", v3.len(), v2.len());
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
        let samples = encode_v3_defining_all("t", &[]);
        assert!(!is_exemplars(&samples));
        assert_eq!(decode_exemplars(&samples), None);
        for cut in 0..record.len() {
            assert_eq!(decode_exemplars(&record[..cut]), None);
        }
    }

    #[test]
    fn the_committed_version_3_fuzz_seed_reads_as_a_segment_s_first_record() {
        let seed = include_bytes!("../../../fuzz/corpus/metrics_decode/seed-wal-record-v3");
        let (tenant, series) = SegmentReader::default()
            .read(1, seed)
            .expect("the seed decodes");
        assert_eq!((tenant.as_str(), series.len()), ("single-tenant", 2));
        assert_eq!(series[0].samples[1].1.to_bits(), STALE_NAN_BITS);
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
        let (tenant, decoded) = SegmentReader::default()
            .read(1, &encode_v3_defining_all("team-a", &series))
            .expect("decodes");
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
            let _ = SegmentReader::default().read(1, &bytes);
        }

        #[test]
        fn version_3_round_trips(
            series in proptest::collection::vec(
                (0u8..5, proptest::collection::vec((any::<i64>(), any::<u64>()), 0..6)),
                0..12,
            )
        ) {
            let series: Vec<SeriesSamples> = series
                .into_iter()
                .map(|(name, samples)| SeriesSamples {
                    labels: Labels::new([("__name__", format!("m{name}"))]),
                    samples: samples.into_iter().map(|(t, bits)| (t, f64::from_bits(bits))).collect(),
                })
                .collect();
            let (_, back) = SegmentReader::default()
                .read(1, &encode_v3_defining_all("t", &series))
                .expect("decodes");
            let bits = |all: &[SeriesSamples]| -> Vec<(Labels, Vec<(i64, u64)>)> {
                all.iter()
                    .map(|s| (s.labels.clone(), s.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect()))
                    .collect()
            };
            prop_assert_eq!(bits(&back), bits(&series));
        }

        #[test]
        fn every_truncation_is_refused(cut in 0usize..60) {
            let series = vec![SeriesSamples {
                labels: Labels::new([("__name__", "up")]),
                samples: vec![(1, 1.0), (2, 2.0)],
            }];
            let v2 = encode_v2("t", &series);
            prop_assume!(cut < v2.len());
            prop_assert!(decode(&v2[..cut]).is_none());
            let v3 = encode_v3_defining_all("t", &series);
            if cut < v3.len() {
                prop_assert!(SegmentReader::default().read(1, &v3[..cut]).is_none());
            }
        }
    }
}
