//! Metric samples in: Prometheus remote-write 1.0 bodies (snappy-compressed `WriteRequest`)
//! decoded and checked one series at a time, so one bad series is refused with its reason while
//! the rest of the push is kept — the way Prometheus' own receiver answers.
//!
//! The checks are the ones a series store relies on: a valid metric name, valid and unique
//! label names, bounded label counts and lengths (limits a tenant can raise), and no sample
//! from the far future. What passes is a list of [`SeriesSamples`] with labels in canonical
//! order.

use andante_tsdb::metadata::{remote_write_kind, MetricMetadata};
use andante_tsdb::remote_write::WriteRequest;
use andante_tsdb::{Exemplar, Labels, SeriesSamples, METRIC_NAME};
use prost::Message;

use crate::IngestError;

/// Per-series limits, from `metrics_store.*` configuration.
#[derive(Debug, Clone, Copy)]
pub struct SeriesLimits {
    pub max_labels_per_series: usize,
    pub max_label_name_bytes: usize,
    pub max_label_value_bytes: usize,
    /// Samples more than this ahead of the server's clock are refused (a sender's clock gone
    /// wrong would otherwise block the series' real samples as out of order).
    pub max_future_ms: i64,
}

impl Default for SeriesLimits {
    fn default() -> SeriesLimits {
        SeriesLimits {
            max_labels_per_series: 40,
            max_label_name_bytes: 1024,
            max_label_value_bytes: 4096,
            max_future_ms: 10 * 60 * 1000,
        }
    }
}

/// A decoded push: the series that passed, and why the others did not.
#[derive(Debug, Default)]
pub struct DecodedSamples {
    pub series: Vec<SeriesSamples>,
    /// Exemplars of accepted series, each with its series' labels.
    pub exemplars: Vec<(Labels, Exemplar)>,
    /// What the sender said about metric families (type, help, unit).
    pub metadata: Vec<(String, MetricMetadata)>,
    pub refused_samples: usize,
    /// One line per refused series (the first few; `refused_samples` counts them all).
    pub refusals: Vec<String>,
}

/// At most this many refusal lines are kept: a push of a million bad series must not echo a
/// million lines back.
const MAX_REFUSAL_LINES: usize = 10;

impl DecodedSamples {
    pub fn accepted_samples(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }

    fn refuse(&mut self, samples: usize, reason: String) {
        self.refused_samples += samples;
        if self.refusals.len() < MAX_REFUSAL_LINES {
            self.refusals.push(reason);
        }
    }

    /// The refusals as one message, or `None` when everything passed.
    pub fn refusal_message(&self) -> Option<String> {
        if self.refused_samples == 0 {
            return None;
        }
        Some(format!(
            "refused {} samples: {}",
            self.refused_samples,
            self.refusals.join("; ")
        ))
    }
}

/// Inflates a snappy block body, refusing one that declares more than `limit_bytes` before any
/// allocation.
pub fn decompress_snappy(body: &[u8], limit_bytes: usize) -> Result<Vec<u8>, IngestError> {
    let malformed = |message: String| IngestError::Malformed {
        format: "snappy",
        message,
    };
    let declared = snap::raw::decompress_len(body).map_err(|error| malformed(error.to_string()))?;
    if declared > limit_bytes {
        return Err(IngestError::TooLarge { limit_bytes });
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| malformed(error.to_string()))
}

/// Decodes a plain (already inflated) remote-write `WriteRequest` and checks every series.
pub fn decode_remote_write(
    plain: &[u8],
    limits: SeriesLimits,
    now_ms: i64,
) -> Result<DecodedSamples, IngestError> {
    let request = WriteRequest::decode(plain).map_err(|error| IngestError::Malformed {
        format: "remote-write protobuf",
        message: error.to_string(),
    })?;
    let metadata = request
        .metadata
        .into_iter()
        .filter(|m| is_metric_name(&m.metric_family_name))
        .map(|m| {
            let metadata = MetricMetadata {
                kind: remote_write_kind(m.r#type).to_owned(),
                help: m.help,
                unit: m.unit,
            };
            (m.metric_family_name, metadata)
        })
        .collect();
    let mut decoded = DecodedSamples {
        metadata,
        ..DecodedSamples::default()
    };
    for series in request.timeseries {
        let pairs: Vec<(String, String)> = series
            .labels
            .into_iter()
            .map(|label| (label.name, label.value))
            .collect();
        let samples: Vec<(i64, f64)> = series
            .samples
            .iter()
            .map(|sample| (sample.timestamp, sample.value))
            .collect();
        let exemplars = series
            .exemplars
            .into_iter()
            .map(|exemplar| Exemplar {
                labels: Labels::new(
                    exemplar
                        .labels
                        .into_iter()
                        .map(|label| (label.name, label.value)),
                ),
                value: exemplar.value,
                t_ms: exemplar.timestamp,
            })
            .collect();
        accept_series(&mut decoded, pairs, samples, exemplars, limits, now_ms);
    }
    Ok(decoded)
}

/// Checks one series and adds it (or its refusal) to `decoded`. Shared by every metrics
/// protocol so remote-write and OTLP series obey one set of rules. A series' exemplars go with
/// its labels: a refused label set takes them along; the exemplar store judges the rest.
pub fn accept_series(
    decoded: &mut DecodedSamples,
    pairs: Vec<(String, String)>,
    mut samples: Vec<(i64, f64)>,
    exemplars: Vec<Exemplar>,
    limits: SeriesLimits,
    now_ms: i64,
) {
    if samples.is_empty() && exemplars.is_empty() {
        return;
    }
    if let Err(reason) = check_labels(&pairs, limits) {
        let count = samples.len();
        decoded.refuse(count, format!("{reason} in series {}", describe(&pairs)));
        return;
    }
    let labels = Labels::new(pairs);
    decoded.exemplars.extend(
        exemplars
            .into_iter()
            .map(|exemplar| (labels.clone(), exemplar)),
    );
    let newest_allowed = now_ms.saturating_add(limits.max_future_ms);
    let before = samples.len();
    samples.retain(|(t, _)| *t <= newest_allowed);
    if samples.len() < before {
        decoded.refuse(
            before - samples.len(),
            format!(
                "samples more than {} s in the future in series {labels}",
                limits.max_future_ms / 1000
            ),
        );
    }
    // A sender's samples of one series are in time order; sorting (stable) keeps that cheap
    // and makes a shuffled batch land the same way.
    samples.sort_by_key(|(t, _)| *t);
    if !samples.is_empty() {
        decoded.series.push(SeriesSamples { labels, samples });
    }
}

fn check_labels(pairs: &[(String, String)], limits: SeriesLimits) -> Result<(), String> {
    let mut name_seen = false;
    let non_empty = pairs.iter().filter(|(_, value)| !value.is_empty()).count();
    if non_empty > limits.max_labels_per_series {
        return Err(format!(
            "{non_empty} labels exceed `metrics_store.max_labels_per_series` ({})",
            limits.max_labels_per_series
        ));
    }
    let mut names: Vec<&str> = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        if name.len() > limits.max_label_name_bytes {
            return Err(format!(
                "label name of {} bytes exceeds `metrics_store.max_label_name_bytes` ({})",
                name.len(),
                limits.max_label_name_bytes
            ));
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(format!(
                "value of label `{name}` ({} bytes) exceeds `metrics_store.max_label_value_bytes` ({})",
                value.len(),
                limits.max_label_value_bytes
            ));
        }
        if name == METRIC_NAME {
            if !is_metric_name(value) {
                return Err(format!("invalid metric name {value:?}"));
            }
            name_seen = true;
        } else if !is_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        names.push(name);
    }
    if !name_seen {
        return Err("missing metric name (`__name__`)".into());
    }
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(format!("duplicate label name `{}`", pair[0]));
    }
    Ok(())
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, Prometheus' metric name rule.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, Prometheus' label name rule.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A refused series for an error message, cut short: label values can be kilobytes long.
fn describe(pairs: &[(String, String)]) -> String {
    let mut text = String::from("{");
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        text.push_str(&format!("{name:?}={value:?}"));
        if text.len() > 200 {
            let cut = (0..=200)
                .rev()
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(0);
            text.truncate(cut);
            text.push('…');
            break;
        }
    }
    text.push('}');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use andante_tsdb::remote_write::{Label, Sample, TimeSeries};

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(name, value)| Label {
                    name: (*name).into(),
                    value: (*value).into(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|(timestamp, value)| Sample {
                    value: *value,
                    timestamp: *timestamp,
                })
                .collect(),
            exemplars: Vec::new(),
        }
    }

    fn decode(timeseries: Vec<TimeSeries>) -> DecodedSamples {
        let plain = WriteRequest {
            timeseries,
            ..Default::default()
        }
        .encode_to_vec();
        decode_remote_write(&plain, SeriesLimits::default(), 1_000_000).expect("decodes")
    }

    #[test]
    fn exemplars_go_with_their_series_and_fall_with_a_refused_one() {
        let exemplar = |trace: &str| andante_tsdb::remote_write::Exemplar {
            labels: vec![Label {
                name: "trace_id".into(),
                value: trace.into(),
            }],
            value: 0.5,
            timestamp: 7,
        };
        let mut good = series(&[("__name__", "lat_bucket"), ("le", "1")], &[(1, 1.0)]);
        good.exemplars = vec![exemplar("a"), exemplar("b")];
        let mut bad = series(&[("__name__", "m"), ("bad-label", "x")], &[(1, 1.0)]);
        bad.exemplars = vec![exemplar("c")];
        let mut only_exemplars = series(&[("__name__", "up")], &[]);
        only_exemplars.exemplars = vec![exemplar("d")];
        let decoded = decode(vec![good, bad, only_exemplars]);
        let kept: Vec<String> = decoded
            .exemplars
            .iter()
            .map(|(series, e)| format!("{series} {} {} {}", e.labels, e.value, e.t_ms))
            .collect();
        assert_eq!(
            kept,
            [
                r#"lat_bucket{le="1"} {trace_id="a"} 0.5 7"#,
                r#"lat_bucket{le="1"} {trace_id="b"} 0.5 7"#,
                r#"up{} {trace_id="d"} 0.5 7"#,
            ]
        );
        assert_eq!(
            decoded.series.len(),
            1,
            "a series without samples stores none"
        );
    }

    #[test]
    fn good_series_pass_and_bad_ones_are_refused_one_by_one() {
        let decoded = decode(vec![
            series(&[("__name__", "up"), ("job", "a")], &[(1, 1.0), (2, 1.0)]),
            series(&[("job", "no-name")], &[(1, 1.0)]),
            series(&[("__name__", "1bad")], &[(1, 1.0)]),
            series(&[("__name__", "m"), ("bad-label", "x")], &[(1, 1.0)]),
            series(&[("__name__", "m"), ("a", "1"), ("a", "2")], &[(1, 1.0)]),
            series(&[("__name__", "m")], &[(1, 1.0), (999_999_999, 2.0)]),
        ]);
        assert_eq!(decoded.series.len(), 2);
        assert_eq!(decoded.accepted_samples(), 3);
        assert_eq!(decoded.refused_samples, 5);
        let message = decoded.refusal_message().expect("refusals");
        for expected in [
            "missing metric name",
            "invalid metric name \"1bad\"",
            "invalid label name \"bad-label\"",
            "duplicate label name `a`",
            "in the future",
        ] {
            assert!(message.contains(expected), "{expected} not in {message}");
        }
    }

    #[test]
    fn label_limits_name_the_setting() {
        let many: Vec<(String, String)> = (0..50)
            .map(|i| (format!("l{i}"), "v".to_string()))
            .chain([("__name__".to_string(), "m".to_string())])
            .collect();
        let pairs: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let decoded = decode(vec![series(&pairs, &[(1, 1.0)])]);
        assert!(decoded.series.is_empty());
        assert!(decoded
            .refusal_message()
            .expect("refused")
            .contains("`metrics_store.max_labels_per_series` (40)"));
    }

    #[test]
    fn snappy_bodies_declaring_too_much_are_refused_before_inflating() {
        let plain = vec![0u8; 10_000];
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&plain)
            .expect("compresses");
        assert!(matches!(
            decompress_snappy(&compressed, 1000),
            Err(IngestError::TooLarge { limit_bytes: 1000 })
        ));
        assert_eq!(
            decompress_snappy(&compressed, 20_000).expect("inflates"),
            plain
        );
        assert!(matches!(
            decompress_snappy(b"\xff\xff\xff\xff\xff\xff", 1000),
            Err(IngestError::Malformed { .. })
        ));
    }

    #[test]
    fn garbage_protobuf_is_a_malformed_body() {
        assert!(matches!(
            decode_remote_write(b"\x0a\xff\xff", SeriesLimits::default(), 0),
            Err(IngestError::Malformed { .. })
        ));
    }
}
