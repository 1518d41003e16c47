//! Saturation from resource metrics, when a tenant sends them: CPU, memory, garbage
//! collection and connection pools of a service's instances, read from the metrics store by
//! the caller with the PromQL of [`RESOURCE_QUERIES`] at the window's interval and handed
//! over as [`ResourceSeries`]. Each series is matched to the instance or service it
//! describes and compared with its own baseline like the span metrics are; a rise that lasts
//! two intervals is a Saturation assertion whose evidence carries the series' PromQL.
//!
//! Matching (Prometheus label names, as OpenTelemetry metrics arrive in the store): the
//! instance is the first of `k8s_pod_name`, `pod`, the pod `target_info` names for the
//! series' `job` and `instance`, `service_instance_id` and `instance` that names an instance
//! entity of the window; else the service is `service_name`, or `job` after
//! its last `/` (the OpenTelemetry-to-Prometheus rule writes `job` as
//! `<service.namespace>/<service.name>`), when it names a service. Series that match nothing
//! seen in the traces are ignored: an assertion needs an entity to be about.

use crate::assertions::{find_run, Detection, Metric};
use crate::entity::{EntityIdx, EntityKind};
use crate::stats::median_mad;
use crate::window::Window;

const MAD_FACTOR: f64 = 4.0 * 1.4826;

/// One resource signal: its name in assertions, the PromQL that measures it per series
/// (`$range` is replaced by the rate range), the relative and absolute rise that counts.
#[derive(Debug, Clone, Copy)]
pub struct ResourceQuery {
    pub signal: &'static str,
    pub metric: &'static str,
    pub promql: &'static str,
    relative: f64,
    absolute: f64,
}

/// The labels a series keeps through `sum by`: everything [`ResourceSeries`] matching reads.
const BY: &str = "job, instance, pod, k8s_pod_name, service_instance_id, service_name";

/// What is asked of the metrics store, OpenTelemetry semantic-convention names first, then
/// those of Prometheus client libraries and cAdvisor. Each is summed per instance, so a
/// family split by state or pool (JVM memory pools) is one series per instance.
pub const RESOURCE_QUERIES: &[ResourceQuery] = &[
    ResourceQuery {
        signal: "cpu",
        metric: "cpu_cores",
        promql: "sum by ($by) (rate({__name__=~\"process_cpu_time_seconds_total|process_cpu_seconds_total|container_cpu_usage_seconds_total\"}[$range]))",
        relative: 1.5,
        absolute: 0.05,
    },
    ResourceQuery {
        signal: "cpu",
        metric: "cpu_utilization",
        promql: "sum by ($by) ({__name__=~\"process_cpu_utilization(_ratio)?|jvm_cpu_recent_utilization(_ratio)?|container_cpu_utilization(_ratio)?\"})",
        relative: 1.5,
        absolute: 0.05,
    },
    ResourceQuery {
        signal: "memory",
        metric: "memory_bytes",
        promql: "sum by ($by) ({__name__=~\"process_memory_usage_bytes|process_resident_memory_bytes|jvm_memory_used_bytes|container_memory_working_set_bytes\"})",
        relative: 1.3,
        absolute: 16.0 * 1024.0 * 1024.0,
    },
    ResourceQuery {
        signal: "gc",
        metric: "gc_seconds_per_second",
        promql: "sum by ($by) (rate({__name__=~\"jvm_gc_duration_seconds_sum|go_gc_duration_seconds_sum\"}[$range]))",
        relative: 2.0,
        absolute: 0.01,
    },
    ResourceQuery {
        signal: "pool",
        metric: "pool_connections_used",
        promql: "sum by ($by) ({__name__=~\"db_client_connection_count|db_client_connections_usage\", db_client_connection_state=~\"used|\", state=~\"used|\"})",
        relative: 1.5,
        absolute: 2.0,
    },
];

impl ResourceQuery {
    /// The PromQL for a rate range of `range_secs`.
    pub fn promql(&self, range_secs: u64) -> String {
        self.promql
            .replace("$by", BY)
            .replace("$range", &format!("{range_secs}s"))
    }
}

/// One series a [`ResourceQuery`] returned for the window.
#[derive(Debug, Clone, Default)]
pub struct ResourceSeries {
    /// Index into [`RESOURCE_QUERIES`].
    pub query: usize,
    /// The series' labels (Prometheus names).
    pub labels: Vec<(String, String)>,
    /// The pod `target_info` gives the series' `job` and `instance`, for series whose own
    /// labels do not name it (OpenTelemetry metrics).
    pub pod: Option<String>,
    /// `(Unix nanoseconds, value)`: a point at `t` describes the interval that ends at `t`,
    /// as [`crate::Analysis::resource_steps`] asks for them.
    pub points: Vec<(u64, f64)>,
}

impl ResourceSeries {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// The instance or service of the window this series describes.
    fn entity(&self, window: &Window) -> Option<EntityIdx> {
        let table = &window.entities;
        let instance = ["k8s_pod_name", "pod"]
            .iter()
            .filter_map(|name| self.label(name))
            .chain(self.pod.as_deref())
            .chain(
                ["service_instance_id", "instance"]
                    .iter()
                    .filter_map(|name| self.label(name)),
            )
            .find_map(|name| table.instance_named(name));
        if instance.is_some() {
            return instance;
        }
        let service = self.label("service_name").or_else(|| {
            self.label("job")
                .map(|job| job.rsplit('/').next().unwrap_or(job))
        })?;
        table.service_named(service)
    }

    /// The PromQL of this one series: its query with the series' own labels added to its
    /// selector.
    fn promql(&self, range_secs: u64) -> String {
        let mut matchers: String = self
            .labels
            .iter()
            .map(|(key, value)| format!("{}, ", crate::evidence::matcher(key, value)))
            .collect();
        matchers.insert(0, '{');
        RESOURCE_QUERIES[self.query].promql(range_secs).replacen(
            "{__name__",
            &format!("{matchers}__name__"),
            1,
        )
    }
}

/// Saturation detections from `series` over `window`.
pub(crate) fn detect(window: &Window, series: &[ResourceSeries]) -> Vec<Detection> {
    let Some(baseline) = window.baseline() else {
        return Vec::new();
    };
    let range_secs = rate_range_secs(window.interval_nanos);
    let mut found = Vec::new();
    for one in series {
        let Some(query) = RESOURCE_QUERIES.get(one.query) else {
            continue;
        };
        let Some(entity) = one.entity(window) else {
            continue;
        };
        let values = per_interval(window, &one.points);
        let base: Vec<f64> = values[baseline.clone()].iter().flatten().copied().collect();
        if base.len() < 3 {
            continue;
        }
        let (expected, mad) = median_mad(&base);
        let flags: Vec<Option<bool>> = values
            .iter()
            .enumerate()
            .map(|(interval, value)| {
                value.filter(|_| interval >= baseline.start).map(|value| {
                    value >= expected * query.relative
                        && value - expected >= MAD_FACTOR * mad
                        && value - expected >= query.absolute
                })
            })
            .collect();
        let Some((onset, last)) = find_run(&flags, window.min_run()) else {
            continue;
        };
        let run: Vec<f64> = values[onset..=last].iter().flatten().copied().collect();
        let observed = run.iter().sum::<f64>() / run.len().max(1) as f64;
        found.push(Detection {
            entity,
            metric: Metric::Resource,
            onset,
            last,
            observed,
            expected,
            excess: 0.0,
            version: None,
            harmful: true,
            label: Some(query.metric),
            promql: Some(one.promql(range_secs)),
        });
    }
    found.sort_by_key(|detection| (detection.entity, detection.label, detection.onset));
    // One assertion per entity and metric: the OpenTelemetry and the Prometheus name of the
    // same measurement may both be there.
    found.dedup_by_key(|detection| (detection.entity, detection.label));
    found
}

/// The rate range for a window's interval: at least a minute, so a 15 s scrape gives a rate
/// from four samples, and two intervals when they are longer.
pub(crate) fn rate_range_secs(interval_nanos: u64) -> u64 {
    (2 * interval_nanos / 1_000_000_000).max(60)
}

/// The series' value per interval of the window (a point describes the interval ending at it;
/// several points in one interval are averaged).
pub(crate) fn per_interval(window: &Window, points: &[(u64, f64)]) -> Vec<Option<f64>> {
    let mut sums = vec![(0.0, 0u32); window.intervals];
    for &(at, value) in points {
        if !value.is_finite() || at <= window.start_nanos {
            continue;
        }
        let interval = ((at - window.start_nanos - 1) / window.interval_nanos) as usize;
        if let Some(sum) = sums.get_mut(interval) {
            sum.0 += value;
            sum.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(sum, count)| (count > 0).then(|| sum / f64::from(count)))
        .collect()
}

/// Whether `entity`, or one of the instances of `entity` when it is a service, saturated
/// within two intervals before `onset` or the one after it.
pub(crate) fn saturated_near(
    window: &Window,
    detections: &[Detection],
    entity: EntityIdx,
    onset: usize,
) -> Option<usize> {
    detections.iter().position(|detection| {
        detection.metric == Metric::Resource
            && detection.onset <= onset + 1
            && detection.onset + 2 >= onset
            && (detection.entity == entity
                || (window.entities.get(entity).kind == EntityKind::Service
                    && window.entities.get(detection.entity).service == Some(entity)))
    })
}
