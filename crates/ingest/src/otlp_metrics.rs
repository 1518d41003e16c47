//! OTLP metrics as Prometheus series, named the way Prometheus' own OTLP receiver names them
//! (its default `UnderscoreEscapingWithSuffixes`), because dashboards and alerts are written
//! against those names: unit and `_total`/`_ratio` suffixes, sanitised label names, `job` and
//! `instance` from `service.namespace`/`service.name`/`service.instance.id`, and the other
//! resource attributes on `target_info`.
//!
//! Where Andante differs from Prometheus, on purpose:
//! - Delta sums and histograms are taken (Prometheus refuses them without a feature flag):
//!   their series come back separately so the store can add each point to the series' running
//!   total ([`TranslatedMetrics::delta`]).
//! - Exponential histograms become classic `_bucket{le}` series (the store holds floats only):
//!   scale reduced to at most [`MAX_EXPONENTIAL_SCALE`], bucket `i` of scale `s` has the upper
//!   bound `2^((i+1)/2^s)`, negative and zero buckets below the positive ones, `+Inf` = count.
//! - `target_info` gets one sample per push at the resource's newest point (Prometheus repeats
//!   it every 2.5 min across the push's time span; a push covers one export interval).
//!
//! Exemplars go where Prometheus' translator puts them: a sum's on its series, a histogram's on
//! the first bucket whose bound is at least the exemplar's value, with `trace_id` and `span_id`
//! in hex and the filtered attributes as labels (gauges and summaries carry none).
//!
//! Points that cannot be taken (no name after sanitising, unspecified temporality, no
//! timestamp) are refused one metric or point at a time with their reason.

use std::collections::BTreeMap;

use andante_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, AggregationTemporality, ExponentialHistogramDataPoint,
    HistogramDataPoint, Metric, NumberDataPoint, SummaryDataPoint,
};
use prost::Message;

use andante_tsdb::labels::float_text;
use andante_tsdb::metadata::MetricMetadata;
use andante_tsdb::{Exemplar, Labels};

use crate::metrics::{accept_series, DecodedSamples, SeriesLimits};
use crate::IngestError;

/// Exponential histograms are reduced to this scale (8 buckets per doubling, ≤ 9 % wide), so a
/// histogram spanning microseconds to minutes stays within ~300 bucket series.
pub const MAX_EXPONENTIAL_SCALE: i32 = 3;

/// Most `le` series one histogram point may become: a point is one sample per bucket, so a
/// small body could otherwise ask for millions of series.
pub const MAX_BUCKETS_PER_POINT: usize = 1024;

/// Prometheus' stale marker, written for points flagged `NO_RECORDED_VALUE`.
const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);
const NO_RECORDED_VALUE: u32 = 1;

/// A translated push: series to store as they are, series whose points are deltas to add to
/// the series' running total, and the refusals of both.
#[derive(Debug, Default)]
pub struct TranslatedMetrics {
    pub cumulative: DecodedSamples,
    pub delta: DecodedSamples,
    /// Data points refused during translation.
    pub refused_points: usize,
    pub refusals: Vec<String>,
}

impl TranslatedMetrics {
    fn refuse(&mut self, points: usize, reason: String) {
        self.refused_points += points;
        if self.refusals.len() < 10 {
            self.refusals.push(reason);
        }
    }

    /// Every refusal (translation and series checks) as one message, or `None`.
    pub fn refusal_message(&self) -> Option<String> {
        let mut parts = self.refusals.clone();
        parts.extend(self.cumulative.refusal_message());
        parts.extend(self.delta.refusal_message());
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    pub fn refused_at_decode(&self) -> usize {
        self.refused_points + self.cumulative.refused_samples + self.delta.refused_samples
    }
}

pub fn decode_otlp_metrics_protobuf(
    body: &[u8],
) -> Result<ExportMetricsServiceRequest, IngestError> {
    ExportMetricsServiceRequest::decode(body).map_err(|error| IngestError::Malformed {
        format: "OTLP protobuf",
        message: error.to_string(),
    })
}

pub fn decode_otlp_metrics_json(body: &[u8]) -> Result<ExportMetricsServiceRequest, IngestError> {
    let malformed = |message: String| IngestError::Malformed {
        format: "OTLP JSON",
        message,
    };
    let mut request: ExportMetricsServiceRequest =
        serde_json::from_slice(body).map_err(|error| malformed(error.to_string()))?;
    if crate::otlp_metrics_json::has_holes(&request) {
        crate::otlp_metrics_json::repair(body, &mut request).map_err(malformed)?;
    }
    Ok(request)
}

/// Labels being built for one point: sanitised name → value, with Prometheus' rule for two
/// attributes that sanitise to one name (values joined with `;` in key order).
#[derive(Clone, Default)]
struct LabelSet(BTreeMap<String, String>);

impl LabelSet {
    fn from_attributes(attributes: &[KeyValue]) -> Result<LabelSet, String> {
        let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
        sorted.sort_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
        let mut set = LabelSet::default();
        for attribute in sorted {
            if attribute.key == "__name__" {
                continue;
            }
            let name = label_name(&attribute.key)?;
            let value = attribute_value(attribute.value.as_ref());
            match set.0.get_mut(&name) {
                Some(existing) if !existing.is_empty() => {
                    existing.push(';');
                    existing.push_str(&value);
                }
                _ => {
                    set.0.insert(name, value);
                }
            }
        }
        Ok(set)
    }

    fn pairs(&self, name: &str, extra: Option<(&str, String)>) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> =
            self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        pairs.push(("__name__".into(), name.into()));
        if let Some((label, value)) = extra {
            pairs.retain(|(k, _)| k != label);
            pairs.push((label.into(), value));
        }
        pairs
    }
}

/// What a resource contributes to every point's labels.
struct ResourceLabels {
    job: Option<String>,
    instance: Option<String>,
    /// `target_info`'s labels (every other resource attribute), when it has any.
    target_info: Option<LabelSet>,
}

fn resource_labels(attributes: &[KeyValue]) -> ResourceLabels {
    let get = |key: &str| {
        attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| attribute_value(a.value.as_ref()))
            .filter(|v| !v.is_empty())
    };
    let job = get("service.name").map(|name| match get("service.namespace") {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name,
    });
    let instance = get("service.instance.id");
    let identifying = ["service.name", "service.namespace", "service.instance.id"];
    let others: Vec<KeyValue> = attributes
        .iter()
        .filter(|a| !identifying.contains(&a.key.as_str()))
        .cloned()
        .collect();
    let target_info = if others.is_empty() || (job.is_none() && instance.is_none()) {
        None
    } else {
        LabelSet::from_attributes(&others).ok()
    };
    ResourceLabels {
        job,
        instance,
        target_info,
    }
}

/// Translates every metric of `request` and checks each resulting series.
pub fn translate(
    request: ExportMetricsServiceRequest,
    limits: SeriesLimits,
    now_ms: i64,
) -> TranslatedMetrics {
    let mut out = TranslatedMetrics::default();
    for resource_metrics in request.resource_metrics {
        let attributes = resource_metrics
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let resource = resource_labels(attributes);
        let mut newest_ms = None;
        for scope_metrics in resource_metrics.scope_metrics {
            for metric in scope_metrics.metrics {
                let mut emitter = Emitter {
                    resource: &resource,
                    out: &mut out,
                    limits,
                    now_ms,
                    newest_ms: &mut newest_ms,
                };
                emitter.metric(metric);
            }
        }
        if let (Some(target_info), Some(at)) = (&resource.target_info, newest_ms) {
            let mut set = target_info.clone();
            set.0
                .extend(resource.job.clone().map(|j| ("job".to_string(), j)));
            set.0.extend(
                resource
                    .instance
                    .clone()
                    .map(|i| ("instance".to_string(), i)),
            );
            accept_series(
                &mut out.cumulative,
                set.pairs("target_info", None),
                vec![(at, 1.0)],
                Vec::new(),
                limits,
                now_ms,
            );
        }
    }
    out
}

struct Emitter<'a> {
    resource: &'a ResourceLabels,
    out: &'a mut TranslatedMetrics,
    limits: SeriesLimits,
    now_ms: i64,
    newest_ms: &'a mut Option<i64>,
}

enum Kind {
    Gauge,
    Counter,
    Other,
}

impl Emitter<'_> {
    fn metric(&mut self, metric: Metric) {
        let Some(data) = metric.data else {
            // Prometheus' translator refuses an empty metric as an unsupported type.
            self.out.refuse(
                1,
                format!(
                    "metric {:?} carries no data (none of gauge, sum, histogram, \
                     exponentialHistogram, summary)",
                    metric.name
                ),
            );
            return;
        };
        let (kind, temporality) = match &data {
            metric::Data::Gauge(_) => (Kind::Gauge, None),
            metric::Data::Sum(sum) if sum.is_monotonic => {
                (Kind::Counter, Some(sum.aggregation_temporality))
            }
            metric::Data::Sum(sum) => (Kind::Other, Some(sum.aggregation_temporality)),
            metric::Data::Histogram(h) => (Kind::Other, Some(h.aggregation_temporality)),
            metric::Data::ExponentialHistogram(h) => (Kind::Other, Some(h.aggregation_temporality)),
            metric::Data::Summary(_) => (Kind::Other, None),
        };
        let points = point_count(&data);
        let name = match metric_name(&metric.name, &metric.unit, &kind) {
            Some(name) => name,
            None => {
                self.out.refuse(
                    points,
                    format!("metric name {:?} has no valid characters", metric.name),
                );
                return;
            }
        };
        let delta = match temporality.map(AggregationTemporality::try_from) {
            None | Some(Ok(AggregationTemporality::Cumulative)) => false,
            Some(Ok(AggregationTemporality::Delta)) => true,
            _ => {
                self.out.refuse(
                    points,
                    format!("metric `{name}` has an unspecified aggregation temporality"),
                );
                return;
            }
        };
        let kind_text = match (&data, &kind) {
            (metric::Data::Histogram(_) | metric::Data::ExponentialHistogram(_), _) => "histogram",
            (metric::Data::Summary(_), _) => "summary",
            (_, Kind::Counter) => "counter",
            _ => "gauge",
        };
        self.out.cumulative.metadata.push((
            name.clone(),
            MetricMetadata {
                kind: kind_text.to_owned(),
                help: metric.description.clone(),
                unit: unit_text(&metric.unit),
            },
        ));
        match data {
            metric::Data::Gauge(gauge) => {
                for point in gauge.data_points {
                    self.number(&name, point, delta, false);
                }
            }
            metric::Data::Sum(sum) => {
                for point in sum.data_points {
                    self.number(&name, point, delta, true);
                }
            }
            metric::Data::Histogram(histogram) => {
                for point in histogram.data_points {
                    self.histogram(&name, point, delta);
                }
            }
            metric::Data::ExponentialHistogram(histogram) => {
                for point in histogram.data_points {
                    self.exponential(&name, point, delta);
                }
            }
            metric::Data::Summary(summary) => {
                for point in summary.data_points {
                    self.summary(&name, point);
                }
            }
        }
    }

    /// The point's labels and time, or `None` (refused) when it has no usable timestamp or an
    /// attribute key that sanitises to nothing.
    fn point_labels(
        &mut self,
        name: &str,
        attributes: &[KeyValue],
        time_unix_nano: u64,
    ) -> Option<(LabelSet, i64)> {
        if time_unix_nano == 0 {
            self.out
                .refuse(1, format!("a point of `{name}` has no timestamp"));
            return None;
        }
        let mut set = match LabelSet::from_attributes(attributes) {
            Ok(set) => set,
            Err(reason) => {
                self.out.refuse(1, format!("a point of `{name}`: {reason}"));
                return None;
            }
        };
        if let Some(job) = &self.resource.job {
            set.0.insert("job".into(), job.clone());
        }
        if let Some(instance) = &self.resource.instance {
            set.0.insert("instance".into(), instance.clone());
        }
        let t = (time_unix_nano / 1_000_000) as i64;
        *self.newest_ms = Some(self.newest_ms.map_or(t, |n| n.max(t)));
        Some((set, t))
    }

    fn emit(
        &mut self,
        pairs: Vec<(String, String)>,
        t: i64,
        value: f64,
        exemplars: Vec<Exemplar>,
        delta: bool,
    ) {
        let target = if delta {
            &mut self.out.delta
        } else {
            &mut self.out.cumulative
        };
        accept_series(
            target,
            pairs,
            vec![(t, value)],
            exemplars,
            self.limits,
            self.now_ms,
        );
    }

    fn number(&mut self, name: &str, point: NumberDataPoint, delta: bool, with_exemplars: bool) {
        let Some((set, t)) = self.point_labels(name, &point.attributes, point.time_unix_nano)
        else {
            return;
        };
        let value = if point.flags & NO_RECORDED_VALUE != 0 {
            STALE_NAN
        } else {
            match point.value {
                Some(number_data_point::Value::AsDouble(v)) => v,
                Some(number_data_point::Value::AsInt(v)) => v as f64,
                None => 0.0,
            }
        };
        let exemplars = if with_exemplars {
            exemplars(&point.exemplars)
        } else {
            Vec::new()
        };
        self.emit(set.pairs(name, None), t, value, exemplars, delta);
    }

    fn histogram(&mut self, name: &str, point: HistogramDataPoint, delta: bool) {
        let Some((set, t)) = self.point_labels(name, &point.attributes, point.time_unix_nano)
        else {
            return;
        };
        if point.explicit_bounds.len() > MAX_BUCKETS_PER_POINT {
            self.out.refuse(
                1,
                format!(
                    "a point of `{name}` has {} buckets (at most {MAX_BUCKETS_PER_POINT})",
                    point.explicit_bounds.len()
                ),
            );
            return;
        }
        let mut cumulative = 0u64;
        let buckets: Vec<(f64, f64)> = point
            .explicit_bounds
            .iter()
            .zip(&point.bucket_counts)
            .map(|(bound, count)| {
                cumulative = cumulative.saturating_add(*count);
                (*bound, cumulative as f64)
            })
            .collect();
        let shape = Shape {
            t,
            sum: point.sum,
            count: point.count,
            stale: point.flags & NO_RECORDED_VALUE != 0,
        };
        let exemplars = exemplars(&point.exemplars);
        self.buckets(name, &set, shape, buckets, exemplars, delta);
    }

    fn exponential(&mut self, name: &str, point: ExponentialHistogramDataPoint, delta: bool) {
        let Some((set, t)) = self.point_labels(name, &point.attributes, point.time_unix_nano)
        else {
            return;
        };
        if point.scale < -4 || point.scale > 20 {
            self.out.refuse(
                1,
                format!(
                    "a point of `{name}` has exponential scale {} (outside -4..20)",
                    point.scale
                ),
            );
            return;
        }
        let span = exponential_span(&point);
        if span > MAX_BUCKETS_PER_POINT {
            self.out.refuse(
                1,
                format!(
                    "a point of `{name}` spans {span} buckets at scale {MAX_EXPONENTIAL_SCALE} (at most {MAX_BUCKETS_PER_POINT})"
                ),
            );
            return;
        }
        let shape = Shape {
            t,
            sum: point.sum,
            count: point.count,
            stale: point.flags & NO_RECORDED_VALUE != 0,
        };
        let buckets = exponential_buckets(&point);
        let exemplars = exemplars(&point.exemplars);
        self.buckets(name, &set, shape, buckets, exemplars, delta);
    }

    /// A histogram's series: `_sum` (when sent), `_count`, a cumulative `_bucket` per bound and
    /// `+Inf` holding the count, as Prometheus writes them.
    fn buckets(
        &mut self,
        name: &str,
        set: &LabelSet,
        shape: Shape,
        buckets: Vec<(f64, f64)>,
        mut exemplars: Vec<Exemplar>,
        delta: bool,
    ) {
        let t = shape.t;
        self.sum_and_count(name, set, shape, delta);
        let bucket = format!("{name}_bucket");
        for (bound, cumulative) in buckets {
            let pairs = set.pairs(&bucket, Some(("le", float_text(bound))));
            let (mine, rest) = exemplars.into_iter().partition(|e| e.value <= bound);
            exemplars = rest;
            self.emit(pairs, t, shape.value(cumulative), mine, delta);
        }
        let pairs = set.pairs(&bucket, Some(("le", "+Inf".into())));
        self.emit(pairs, t, shape.value(shape.count as f64), exemplars, delta);
    }

    fn sum_and_count(&mut self, name: &str, set: &LabelSet, shape: Shape, delta: bool) {
        let t = shape.t;
        if let Some(sum) = shape.sum {
            let pairs = set.pairs(&format!("{name}_sum"), None);
            self.emit(pairs, t, shape.value(sum), Vec::new(), delta);
        }
        let pairs = set.pairs(&format!("{name}_count"), None);
        self.emit(pairs, t, shape.value(shape.count as f64), Vec::new(), delta);
    }

    fn summary(&mut self, name: &str, point: SummaryDataPoint) {
        let Some((set, t)) = self.point_labels(name, &point.attributes, point.time_unix_nano)
        else {
            return;
        };
        let shape = Shape {
            t,
            sum: Some(point.sum),
            count: point.count,
            stale: point.flags & NO_RECORDED_VALUE != 0,
        };
        self.sum_and_count(name, &set, shape, false);
        for quantile in &point.quantile_values {
            let pairs = set.pairs(name, Some(("quantile", float_text(quantile.quantile))));
            self.emit(pairs, t, shape.value(quantile.value), Vec::new(), false);
        }
    }
}

/// What every aggregated point (histogram, summary) has besides its buckets or quantiles.
#[derive(Clone, Copy)]
struct Shape {
    /// Unix milliseconds.
    t: i64,
    sum: Option<f64>,
    count: u64,
    /// `NO_RECORDED_VALUE`: every series of the point gets a stale marker instead.
    stale: bool,
}

impl Shape {
    fn value(&self, value: f64) -> f64 {
        if self.stale {
            STALE_NAN
        } else {
            value
        }
    }
}

/// A point's exemplars as Prometheus' translator labels them.
fn exemplars(list: &[opentelemetry_proto::tonic::metrics::v1::Exemplar]) -> Vec<Exemplar> {
    list.iter()
        .map(|exemplar| {
            let mut pairs: Vec<(String, String)> = Vec::new();
            if !exemplar.trace_id.is_empty() {
                pairs.push(("trace_id".into(), hex::encode(&exemplar.trace_id)));
            }
            if !exemplar.span_id.is_empty() {
                pairs.push(("span_id".into(), hex::encode(&exemplar.span_id)));
            }
            pairs.extend(exemplar.filtered_attributes.iter().map(|attribute| {
                (
                    attribute.key.clone(),
                    attribute_value(attribute.value.as_ref()),
                )
            }));
            Exemplar {
                labels: Labels::new(pairs),
                value: match exemplar.value {
                    Some(exemplar::Value::AsDouble(v)) => v,
                    Some(exemplar::Value::AsInt(v)) => v as f64,
                    None => 0.0,
                },
                t_ms: (exemplar.time_unix_nano / 1_000_000) as i64,
            }
        })
        .collect()
}

fn point_count(data: &metric::Data) -> usize {
    match data {
        metric::Data::Gauge(g) => g.data_points.len(),
        metric::Data::Sum(s) => s.data_points.len(),
        metric::Data::Histogram(h) => h.data_points.len(),
        metric::Data::ExponentialHistogram(h) => h.data_points.len(),
        metric::Data::Summary(s) => s.data_points.len(),
    }
}

/// How many classic buckets [`exponential_buckets`] would make of `point`, computed without
/// making them (a body of a few megabytes can declare millions of empty buckets).
pub fn exponential_span(point: &ExponentialHistogramDataPoint) -> usize {
    let reduce = (point.scale - MAX_EXPONENTIAL_SCALE).max(0);
    let side = |buckets: Option<
        &opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
    >| {
        buckets
            .filter(|b| !b.bucket_counts.is_empty())
            .map_or(0, |b| {
                let first = i64::from(b.offset) >> reduce;
                let last = (i64::from(b.offset) + b.bucket_counts.len() as i64 - 1) >> reduce;
                (last - first + 1) as usize
            })
    };
    side(point.positive.as_ref()) + side(point.negative.as_ref()) + 1
}

/// Cumulative classic buckets (upper bound, count up to it) of an exponential histogram point,
/// after reducing its scale to [`MAX_EXPONENTIAL_SCALE`]: negative buckets (most negative
/// first), the zero bucket, then the positive buckets. Empty leading and trailing buckets are
/// still emitted between the first and last populated ones, so `le` series stay contiguous.
pub fn exponential_buckets(point: &ExponentialHistogramDataPoint) -> Vec<(f64, f64)> {
    let reduce = (point.scale - MAX_EXPONENTIAL_SCALE).max(0);
    let scale = point.scale - reduce;
    let merged = |buckets: Option<
        &opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets,
    >| {
        let mut by_index: BTreeMap<i64, u64> = BTreeMap::new();
        if let Some(buckets) = buckets {
            for (position, count) in buckets.bucket_counts.iter().enumerate() {
                let index = (i64::from(buckets.offset) + position as i64) >> reduce;
                *by_index.entry(index).or_default() += count;
            }
        }
        by_index
    };
    let positive = merged(point.positive.as_ref());
    let negative = merged(point.negative.as_ref());
    let mut out = Vec::with_capacity(positive.len() + negative.len() + 1);
    let mut cumulative = 0u64;
    // Negative bucket i holds [-base^(i+1), -base^i): cumulative up to -base^i, highest index first.
    for (index, count) in negative.iter().rev() {
        cumulative = cumulative.saturating_add(*count);
        out.push((-exponential_bound(*index, scale), cumulative as f64));
    }
    cumulative = cumulative.saturating_add(point.zero_count);
    out.push((point.zero_threshold.max(0.0), cumulative as f64));
    for (index, count) in &positive {
        cumulative = cumulative.saturating_add(*count);
        out.push((exponential_bound(index + 1, scale), cumulative as f64));
    }
    // Extreme indexes give bounds beyond f64 (±Inf, or ±0 below the smallest float): such a
    // bucket is already counted by the next finite bound or by `+Inf` (the count), and bounds
    // that round together keep the higher cumulative count, so `le` values stay distinct.
    out.retain(|(bound, _)| bound.is_finite());
    let mut distinct: Vec<(f64, f64)> = Vec::with_capacity(out.len());
    for (bound, cumulative) in out {
        let bound = if bound == 0.0 { 0.0 } else { bound };
        if distinct.last().is_some_and(|(last, _)| *last == bound) {
            distinct.pop();
        }
        distinct.push((bound, cumulative));
    }
    distinct
}

/// `base^index` with `base = 2^(2^-scale)`, computed as an exact power of two times a root so
/// the same bucket always gets the same bound.
fn exponential_bound(index: i64, scale: i32) -> f64 {
    if scale <= 0 {
        return 2f64.powi((index << -scale) as i32);
    }
    let per_doubling = 1i64 << scale;
    let (whole, part) = (
        index.div_euclid(per_doubling),
        index.rem_euclid(per_doubling),
    );
    2f64.powi(whole as i32) * 2f64.powf(part as f64 / per_doubling as f64)
}

/// An attribute value as Prometheus' translator writes it into a label.
fn attribute_value(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => json_number(*d),
        Some(any_value::Value::BytesValue(bytes)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(bytes)
        }
        Some(other) => json_value(other).to_string(),
    }
}

/// A double as JavaScript prints it (exponent past 1e21 and below 1e-6).
fn json_number(value: f64) -> String {
    let magnitude = value.abs();
    if value.is_finite() && magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let text = format!("{value:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                format!("{mantissa}e+{exponent}")
            }
            _ => text,
        }
    } else {
        format!("{value}")
    }
}

fn json_value(value: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        any_value::Value::StringValue(s) => Json::String(s.clone()),
        any_value::Value::BoolValue(b) => Json::Bool(*b),
        any_value::Value::IntValue(i) => Json::from(*i),
        any_value::Value::DoubleValue(d) => Json::from(*d),
        any_value::Value::BytesValue(bytes) => {
            use base64::Engine;
            Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        any_value::Value::ArrayValue(array) => Json::Array(
            array
                .values
                .iter()
                .filter_map(|v| v.value.as_ref().map(json_value))
                .collect(),
        ),
        any_value::Value::KvlistValue(list) => Json::Object(
            list.values
                .iter()
                .map(|kv| {
                    let value = kv
                        .value
                        .as_ref()
                        .and_then(|v| v.value.as_ref())
                        .map_or(Json::Null, json_value);
                    (kv.key.clone(), value)
                })
                .collect(),
        ),
        // An index into a profiles string table, which metrics never carry.
        any_value::Value::StringValueStrindex(_) => Json::Null,
    }
}

/// Prometheus' label-name sanitiser with its default options: every character outside
/// `[a-zA-Z0-9_]` becomes `_` (runs are kept), a leading digit gets `key_`, a single leading
/// underscore gets `key`; a name of underscores only is refused.
pub fn label_name(key: &str) -> Result<String, String> {
    if key.is_empty() {
        return Err("an attribute key is empty".into());
    }
    let mut name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.chars().all(|c| c == '_') {
        return Err(format!("attribute key {key:?} has no valid characters"));
    }
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "key_");
    } else if name.starts_with('_') && !name.starts_with("__") {
        name.insert_str(0, "key");
    }
    Ok(name)
}

fn main_unit(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// A unit half cleaned like a name: invalid characters to `_`, runs collapsed, one leading `_`
/// dropped.
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out.strip_prefix('_').map(str::to_owned).unwrap_or(out)
}

/// The unit's words for the name: the main unit (`seconds`) and the per-unit (`per_second`),
/// each cleaned; a half with an annotation (`{request}`) or nothing in it is left out.
fn unit_words(unit: &str) -> (Option<String>, Option<String>) {
    let (main, per) = match unit.split_once('/') {
        Some((main, per)) => (main.trim(), Some(per.trim())),
        None => (unit.trim(), None),
    };
    let usable = |half: &str| !half.is_empty() && !half.contains(['{', '}']);
    let mut main = usable(main)
        .then(|| clean_unit(main_unit(main)))
        .filter(|m| !m.is_empty());
    let mut per = per
        .filter(|p| usable(p))
        .map(|p| clean_unit(&format!("per_{}", per_unit(p))))
        .filter(|p| p != "per_" && p != "per");
    if let Some(p) = per.as_mut() {
        *p = p.trim_end_matches('_').to_owned();
        if let Some(m) = main.as_mut() {
            *m = m.trim_end_matches('_').to_owned();
        }
    }
    (main, per)
}

/// The unit as Prometheus' metadata states it (`seconds`, `bytes_per_second`, `` for `1`).
fn unit_text(unit: &str) -> String {
    let (main, per) = unit_words(unit);
    [main, per]
        .into_iter()
        .flatten()
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

/// The Prometheus name of an OTLP metric, or `None` when nothing valid is left of it.
fn metric_name(name: &str, unit: &str, kind: &Kind) -> Option<String> {
    let mut tokens: Vec<String> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let (main, per) = unit_words(unit);
    if let Some(m) = main.filter(|m| !m.is_empty() && !tokens.contains(m)) {
        tokens.push(m);
    }
    if let Some(p) = per.filter(|p| !p.is_empty() && !tokens.contains(p)) {
        tokens.push(p);
    }
    match kind {
        Kind::Counter => {
            tokens.retain(|t| t != "total");
            tokens.push("total".into());
        }
        Kind::Gauge if unit == "1" => {
            tokens.retain(|t| t != "ratio");
            tokens.push("ratio".into());
        }
        _ => {}
    }
    let mut joined = tokens.join("_");
    if joined.is_empty() {
        return None;
    }
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        joined.insert(0, '_');
    }
    Some(joined)
}

#[cfg(test)]
#[path = "otlp_metrics_tests.rs"]
mod tests;
