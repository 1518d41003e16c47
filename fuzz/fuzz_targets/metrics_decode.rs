//! Metric sample bodies and records: the input as a remote-write `WriteRequest` (plain, and as
//! a snappy body inflated under a cap), as an OTLP metrics request (protobuf and JSON) translated
//! to series, as a metrics WAL record and as a metric block. Every accepted series must be storable as is (valid
//! metric and label names, label names unique, samples in time order), refusals must add up,
//! and a WAL record (samples of any version, or exemplars) that decodes must encode back to the same
//! content.

#![no_main]

use andante_ingest::metrics::{
    decode_remote_write, decompress_snappy, is_label_name, is_metric_name, DecodedSamples,
    SeriesLimits,
};
use andante_ingest::otlp_metrics::{
    decode_otlp_metrics_json, decode_otlp_metrics_protobuf, translate,
};
use andante_tsdb::{block, wal_record};
use libfuzzer_sys::fuzz_target;

const LIMIT_BYTES: usize = 1 << 20;
const NOW_MS: i64 = 1_700_000_000_000;

fn check_storable(decoded: &DecodedSamples) {
    for series in &decoded.series {
        let name = series.labels.metric_name().expect("accepted series have a name");
        assert!(is_metric_name(name), "accepted metric name {name:?}");
        let names: Vec<&str> = series.labels.iter().map(|(n, _)| n).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]), "labels sorted and unique: {names:?}");
        for label in names.iter().filter(|n| **n != "__name__") {
            assert!(is_label_name(label), "accepted label name {label:?}");
        }
        assert!(!series.samples.is_empty());
        assert!(series.samples.windows(2).all(|w| w[0].0 <= w[1].0), "samples in time order");
    }
    assert!(decoded.refusals.len() <= 10, "refusal lines are bounded");
    assert_eq!(decoded.refusal_message().is_some(), decoded.refused_samples > 0);
}

fn remote_write(plain: &[u8]) {
    if let Ok(decoded) = decode_remote_write(plain, SeriesLimits::default(), NOW_MS) {
        check_storable(&decoded);
    }
}

fuzz_target!(|data: &[u8]| {
    remote_write(data);
    if let Ok(inflated) = decompress_snappy(data, LIMIT_BYTES) {
        assert!(inflated.len() <= LIMIT_BYTES, "inflated past the limit");
        remote_write(&inflated);
    }
    for request in [decode_otlp_metrics_protobuf(data), decode_otlp_metrics_json(data)]
        .into_iter()
        .flatten()
    {
        let translated = translate(request, SeriesLimits::default(), NOW_MS);
        check_storable(&translated.cumulative);
        check_storable(&translated.delta);
        std::hint::black_box(translated.refusal_message());
    }
    if let Ok((header, series)) = block::decode(data) {
        assert_eq!(header.series, series.len() as u64);
        let again = block::encode(&header.tenant, header.start_ms, header.end_ms, &series);
        let (_, series_again) = block::decode(&again).expect("re-encoded block");
        assert_eq!(series.len(), series_again.len());
    }
    // As the first record of a segment: versions 1 and 2, and version 3 defining its series.
    if let Some((tenant, series)) = wal_record::SegmentReader::default().read(1, data) {
        let again = wal_record::encode_v3_defining_all(&tenant, &series);
        let (tenant_again, series_again) = wal_record::SegmentReader::default()
            .read(1, &again)
            .expect("re-encoded record");
        assert_eq!(tenant, tenant_again);
        assert_eq!(series.len(), series_again.len());
        for (a, b) in series.iter().zip(&series_again) {
            assert_eq!(a.labels, b.labels);
            let bits = |s: &andante_tsdb::SeriesSamples| -> Vec<(i64, u64)> {
                s.samples.iter().map(|(t, v)| (*t, v.to_bits())).collect()
            };
            assert_eq!(bits(a), bits(b));
        }
    }
    if let Some((tenant, exemplars)) = wal_record::decode_exemplars(data) {
        let again = wal_record::encode_exemplars(&tenant, &exemplars);
        let (tenant_again, exemplars_again) =
            wal_record::decode_exemplars(&again).expect("re-encoded exemplar record");
        assert_eq!(tenant, tenant_again);
        assert_eq!(exemplars.len(), exemplars_again.len());
        for ((series, a), (series_again, b)) in exemplars.iter().zip(&exemplars_again) {
            assert_eq!(series, series_again);
            assert_eq!(a.labels, b.labels);
            assert_eq!((a.t_ms, a.value.to_bits()), (b.t_ms, b.value.to_bits()));
        }
    }
});
