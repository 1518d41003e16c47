//! The span-metrics processor: RED metrics per (service, span name, kind, status) with Tempo's
//! names — `traces_spanmetrics_calls_total`, `traces_spanmetrics_latency` (seconds),
//! `traces_spanmetrics_size_total` (bytes) — plus configured dimensions and, optionally,
//! `traces_target_info`.

use andante_model::otlp::trace::v1::{span::SpanKind, status::StatusCode, ResourceSpans, Span};
use prost::Message;

use crate::attributes::{as_f64, find, find_string, label_value};
use crate::filter::{passes, SpanFilter};
use crate::registry::{sanitize_label_name, FamilyId, Registry};

/// Tempo's default: `prometheus.ExponentialBuckets(0.002, 2, 14)`, 2 ms to 16.384 s.
pub fn default_latency_buckets() -> Vec<f64> {
    (0..14).map(|i| 0.002 * f64::from(1u32 << i)).collect()
}

#[derive(Debug, Clone)]
pub struct SpanMetricsConfig {
    /// Span (then resource) attributes added as labels, names sanitized.
    pub dimensions: Vec<String>,
    pub histogram_buckets: Vec<f64>,
    pub include_status_message: bool,
    pub enable_target_info: bool,
    /// A numeric span attribute that multiplies a span's weight (sampled traffic).
    pub span_multiplier_key: String,
    /// Which spans are counted (Tempo's `filter_policies`).
    pub filter: SpanFilter,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        SpanMetricsConfig {
            dimensions: Vec::new(),
            histogram_buckets: default_latency_buckets(),
            include_status_message: false,
            enable_target_info: false,
            span_multiplier_key: "X-SampleRatio".to_owned(),
            filter: SpanFilter::default(),
        }
    }
}

const INTRINSIC_LABELS: &[&str] = &[
    "service",
    "span_name",
    "span_kind",
    "status_code",
    "status_message",
    "job",
    "instance",
];

pub fn kind_name(kind: i32) -> &'static str {
    SpanKind::try_from(kind)
        .map(|k| k.as_str_name())
        .unwrap_or("SPAN_KIND_UNSPECIFIED")
}

pub fn status_name(span: &Span) -> &'static str {
    let code = span.status.as_ref().map(|s| s.code).unwrap_or(0);
    StatusCode::try_from(code)
        .map(|c| c.as_str_name())
        .unwrap_or("STATUS_CODE_UNSET")
}

pub struct SpanMetrics {
    config: SpanMetricsConfig,
    calls: FamilyId,
    latency: FamilyId,
    size: FamilyId,
    target_info: Option<FamilyId>,
    /// The label values of the span being counted, refilled in place for every span so their
    /// strings keep their capacity (no allocation per span once warm).
    values: Vec<String>,
}

impl SpanMetrics {
    pub fn new(config: SpanMetricsConfig, registry: &mut Registry) -> SpanMetrics {
        let mut label_names: Vec<String> = ["service", "span_name", "span_kind", "status_code"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if config.include_status_message {
            label_names.push("status_message".to_owned());
        }
        for dimension in &config.dimensions {
            let mut name = sanitize_label_name(dimension);
            if INTRINSIC_LABELS.contains(&name.as_str()) {
                name = format!("__{name}");
            }
            label_names.push(name);
        }
        if config.enable_target_info {
            label_names.extend(["job".to_owned(), "instance".to_owned()]);
        }
        let calls = registry.counter("traces_spanmetrics_calls_total", &label_names);
        let latency = registry.histogram(
            "traces_spanmetrics_latency",
            &label_names,
            &config.histogram_buckets,
        );
        let size = registry.counter("traces_spanmetrics_size_total", &label_names);
        let target_info = config
            .enable_target_info
            .then(|| registry.dynamic_gauge("traces_target_info"));
        SpanMetrics {
            config,
            calls,
            latency,
            size,
            target_info,
            values: Vec::new(),
        }
    }

    pub fn push(&mut self, registry: &mut Registry, batch: &ResourceSpans, now_ms: i64) {
        let resource = batch
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let service = find_string(resource, "service.name").unwrap_or_default();
        let (job, instance) = job_and_instance(resource);
        if self.target_info.is_some() {
            self.push_target_info(registry, resource, &job, &instance, now_ms);
        }
        let kept = self.config.filter.kept(batch);
        for span in batch
            .scope_spans
            .iter()
            .flat_map(|s| &s.spans)
            .filter(|span| passes(&kept, span))
        {
            let mut values = std::mem::take(&mut self.values);
            let mut filled = 0;
            let mut set = |text: &str| {
                if filled == values.len() {
                    values.push(String::new());
                }
                values[filled].clear();
                values[filled].push_str(text);
                filled += 1;
            };
            set(&service);
            set(&span.name);
            set(kind_name(span.kind));
            set(status_name(span));
            if self.config.include_status_message {
                set(span
                    .status
                    .as_ref()
                    .map(|s| s.message.as_str())
                    .unwrap_or_default());
            }
            for dimension in &self.config.dimensions {
                set(&find(&span.attributes, dimension)
                    .or_else(|| find(resource, dimension))
                    .and_then(label_value)
                    .unwrap_or_default());
            }
            if self.config.enable_target_info {
                set(&job);
                set(&instance);
            }
            values.truncate(filled);
            let weight = find(&span.attributes, &self.config.span_multiplier_key)
                .and_then(as_f64)
                .filter(|w| *w > 0.0)
                .unwrap_or(1.0);
            let seconds = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano) as f64
                / 1e9;
            registry.add(self.calls, &values, weight, now_ms);
            registry.add(
                self.size,
                &values,
                span.encoded_len() as f64 * weight,
                now_ms,
            );
            registry.observe(
                self.latency,
                &values,
                seconds,
                weight,
                Some(&span.trace_id),
                now_ms,
            );
            self.values = values;
        }
    }

    /// `traces_target_info{job, instance, <other resource attributes>} 1`, written through a
    /// per-resource gauge family keyed by the full label set.
    fn push_target_info(
        &mut self,
        registry: &mut Registry,
        resource: &[andante_model::otlp::common::v1::KeyValue],
        job: &str,
        instance: &str,
        now_ms: i64,
    ) {
        let Some(family) = self.target_info else {
            return;
        };
        let mut pairs: Vec<(String, String)> = vec![
            ("job".into(), job.to_owned()),
            ("instance".into(), instance.to_owned()),
        ];
        for kv in resource {
            if matches!(
                kv.key.as_str(),
                "service.name" | "service.namespace" | "service.instance.id"
            ) {
                continue;
            }
            if let Some(value) = kv.value.as_ref().and_then(label_value) {
                pairs.push((sanitize_label_name(&kv.key), value));
            }
        }
        if pairs.len() == 2 {
            return; // Tempo writes target_info only when the resource says more than job/instance.
        }
        registry.set_dynamic(family, pairs, 1.0, now_ms);
    }
}

/// Prometheus' `job` (`namespace/name` or `name`) and `instance` (`service.instance.id`).
fn job_and_instance(resource: &[andante_model::otlp::common::v1::KeyValue]) -> (String, String) {
    let name = find_string(resource, "service.name").unwrap_or_default();
    let job = match find_string(resource, "service.namespace") {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name,
    };
    (
        job,
        find_string(resource, "service.instance.id").unwrap_or_default(),
    )
}
