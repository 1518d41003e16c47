//! Finding what OTLP/JSON decoding swallowed. The generated types read a protobuf `oneof` (a
//! metric's data, a point's or exemplar's value) through `#[serde(flatten)] Option<…>`, and serde
//! turns any error inside a flattened `Option` into `None`: a metric whose point has
//! `"timeUnixNano": "NaN"` decodes as a metric with no data, `"asDouble": "x"` as a point with no
//! value, and so does proto3 JSON's own `"asDouble": "NaN"`. Left alone that is a silent drop (or
//! a zero). So when a decoded request has such holes, the body is read again as plain JSON: a
//! hole whose part holds an error answers with that error and its path, and a double written as a
//! string (`"NaN"`, `"Infinity"`, `"1.5"`) is filled in. A request without holes costs nothing more.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, metric, number_data_point, Exemplar, ExponentialHistogram, Gauge, Histogram, Sum,
    Summary,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Whether decoding may have hidden an error: a metric without data, or a value-less number point
/// or exemplar.
pub(crate) fn has_holes(request: &ExportMetricsServiceRequest) -> bool {
    let metrics = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics);
    for metric in metrics {
        let Some(data) = &metric.data else {
            return true;
        };
        let numbers = match data {
            metric::Data::Gauge(gauge) => &gauge.data_points,
            metric::Data::Sum(sum) => &sum.data_points,
            _ => continue,
        };
        if numbers
            .iter()
            .any(|p| p.value.is_none() || p.exemplars.iter().any(|e| e.value.is_none()))
        {
            return true;
        }
    }
    false
}

const KINDS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

/// Fills the holes of `request` decoded from `body` (known to be JSON) that hold doubles written
/// as strings, or answers the first error a hole hides, with its path. Holes that are real
/// absences (no data field, no value field) stay for the translator.
pub(crate) fn repair(body: &[u8], request: &mut ExportMetricsServiceRequest) -> Result<(), String> {
    let Ok(root) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let resources = request.resource_metrics.iter_mut();
    for ((r, resource_json), resource) in items(&root, "resourceMetrics").zip(resources) {
        let scopes = resource.scope_metrics.iter_mut();
        for ((s, scope_json), scope) in items(resource_json, "scopeMetrics").zip(scopes) {
            let metrics = scope.metrics.iter_mut();
            for ((m, metric_json), metric) in items(scope_json, "metrics").zip(metrics) {
                let path = format!("resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}]");
                let Some(data) = &mut metric.data else {
                    for kind in KINDS {
                        if let Some(error) = metric_json.get(kind).and_then(|p| part_error(kind, p))
                        {
                            return Err(format!("{path}.{kind}.{error}"));
                        }
                    }
                    continue;
                };
                let (kind, points) = match data {
                    metric::Data::Gauge(gauge) => ("gauge", &mut gauge.data_points),
                    metric::Data::Sum(sum) => ("sum", &mut sum.data_points),
                    _ => continue,
                };
                let Some(part) = metric_json.get(kind) else {
                    continue;
                };
                for ((p, point_json), point) in items(part, "dataPoints").zip(points.iter_mut()) {
                    let point_path = format!("{path}.{kind}.dataPoints[{p}]");
                    if point.value.is_none() {
                        point.value = number(&point_path, point_json)?.map(|n| match n {
                            Number::Double(v) => number_data_point::Value::AsDouble(v),
                            Number::Int(v) => number_data_point::Value::AsInt(v),
                        });
                    }
                    fill_exemplars(&point_path, point_json, &mut point.exemplars)?;
                }
            }
        }
    }
    Ok(())
}

fn fill_exemplars(
    path: &str,
    point_json: &Value,
    exemplars: &mut [Exemplar],
) -> Result<(), String> {
    for ((e, exemplar_json), exemplar) in items(point_json, "exemplars").zip(exemplars) {
        if exemplar.value.is_none() {
            exemplar.value =
                number(&format!("{path}.exemplars[{e}]"), exemplar_json)?.map(|n| match n {
                    Number::Double(v) => exemplar::Value::AsDouble(v),
                    Number::Int(v) => exemplar::Value::AsInt(v),
                });
        }
    }
    Ok(())
}

fn items<'v>(value: &'v Value, key: &str) -> impl Iterator<Item = (usize, &'v Value)> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

fn part_error(kind: &str, part: &Value) -> Option<String> {
    fn decode<T: DeserializeOwned>(part: &Value) -> Option<String> {
        serde_path_to_error::deserialize::<_, T>(part)
            .err()
            .map(|error| format!("{}: {}", error.path(), error.inner()))
    }
    match kind {
        "gauge" => decode::<Gauge>(part),
        "sum" => decode::<Sum>(part),
        "histogram" => decode::<Histogram>(part),
        "exponentialHistogram" => decode::<ExponentialHistogram>(part),
        _ => decode::<Summary>(part),
    }
}

enum Number {
    Double(f64),
    Int(i64),
}

/// The value of a point or exemplar as proto3 JSON writes it: `asDouble` a number or a string of
/// one (`"NaN"`, `"Infinity"`, `"-Infinity"` included), `asInt` an integer or a string of one.
fn number(path: &str, holder: &Value) -> Result<Option<Number>, String> {
    if let Some(value) = holder.get("asDouble") {
        let parsed = match value {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => match text.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                text => text.parse::<f64>().ok().filter(|v| v.is_finite()),
            },
            _ => None,
        };
        return match parsed {
            Some(v) => Ok(Some(Number::Double(v))),
            None => Err(format!("{path}.asDouble: expected a number, found {value}")),
        };
    }
    if let Some(value) = holder.get("asInt") {
        let parsed = match value {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.parse::<i64>().ok(),
            _ => None,
        };
        return match parsed {
            Some(v) => Ok(Some(Number::Int(v))),
            None => Err(format!(
                "{path}.asInt: expected a 64-bit integer, found {value}"
            )),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge_with(point: &str) -> String {
        format!(
            r#"{{"resourceMetrics":[{{"scopeMetrics":[{{"metrics":[{{"name":"g","gauge":{{"dataPoints":[{point}]}}}}]}}]}}]}}"#
        )
    }

    fn repaired(body: &str) -> Result<ExportMetricsServiceRequest, String> {
        let mut request: ExportMetricsServiceRequest =
            serde_json::from_str(body).expect("serde takes it (that is the problem)");
        assert!(has_holes(&request), "{body}");
        repair(body.as_bytes(), &mut request).map(|()| request)
    }

    fn first_point(
        request: &ExportMetricsServiceRequest,
    ) -> &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint {
        match &request.resource_metrics[0].scope_metrics[0].metrics[0].data {
            Some(metric::Data::Gauge(gauge)) => &gauge.data_points[0],
            other => panic!("not a gauge: {other:?}"),
        }
    }

    #[test]
    fn errors_inside_oneofs_are_found_with_their_path() {
        for (point, expected) in [
            (
                r#"{"asDouble":1,"timeUnixNano":"NaN"}"#,
                "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].timeUnixNano: invalid digit",
            ),
            (
                r#"{"asDouble":"x","timeUnixNano":"1"}"#,
                "metrics[0].gauge.dataPoints[0].asDouble: expected a number, found \"x\"",
            ),
            (
                r#"{"asInt":1.5,"timeUnixNano":"1"}"#,
                "dataPoints[0].asInt: expected a 64-bit integer, found 1.5",
            ),
            (
                r#"{"asInt":"1","timeUnixNano":"1","exemplars":[{"asDouble":[1]}]}"#,
                "dataPoints[0].exemplars[0].asDouble: expected a number",
            ),
        ] {
            let error = repaired(&gauge_with(point)).expect_err(point);
            assert!(error.contains(expected), "{point}: {error}");
        }
    }

    #[test]
    fn doubles_written_as_strings_are_filled_in_and_absences_stay() {
        for (point, expected) in [
            (r#"{"asDouble":"NaN","timeUnixNano":"1"}"#, f64::NAN),
            (
                r#"{"asDouble":"-Infinity","timeUnixNano":"1"}"#,
                f64::NEG_INFINITY,
            ),
            (r#"{"asDouble":"2.5e3","timeUnixNano":"1"}"#, 2500.0),
        ] {
            let request = repaired(&gauge_with(point)).expect(point);
            match first_point(&request).value {
                Some(number_data_point::Value::AsDouble(v)) => {
                    assert_eq!(v.to_bits(), expected.to_bits(), "{point}")
                }
                other => panic!("{point}: {other:?}"),
            }
        }
        let request = repaired(&gauge_with(r#"{"timeUnixNano":"1"}"#)).expect("an absence");
        assert_eq!(first_point(&request).value, None);
        let body = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"g"}]}]}]}"#;
        let request = repaired(body).expect("an absence");
        assert_eq!(
            request.resource_metrics[0].scope_metrics[0].metrics[0].data,
            None
        );
    }
}
