//! PromQL functions: the range functions (`rate`, `increase`, `irate`, `*_over_time`, …), the
//! per-sample math functions, `histogram_quantile`, `label_replace`/`label_join`, and the
//! scalar/vector conversions.

use promql_parser::parser::{Call, Expr};

use super::eval::{Evaluator, Value, Window};
use super::{QueryError, Sample};
use crate::labels::Labels;

fn arg_scalar(
    evaluator: &mut Evaluator,
    call: &Call,
    index: usize,
    t: i64,
) -> Result<f64, QueryError> {
    match argument(evaluator, call, index, t)? {
        Value::Scalar(value) => Ok(value),
        other => Err(QueryError::bad(format!(
            "expected type scalar in call to function \"{}\", got {}",
            call.func.name,
            other.type_name()
        ))),
    }
}

fn arg_vector(
    evaluator: &mut Evaluator,
    call: &Call,
    index: usize,
    t: i64,
) -> Result<Vec<Sample>, QueryError> {
    match argument(evaluator, call, index, t)? {
        Value::Vector(samples) => Ok(samples),
        other => Err(QueryError::bad(format!(
            "expected type instant vector in call to function \"{}\", got {}",
            call.func.name,
            other.type_name()
        ))),
    }
}

fn arg_string(call: &Call, index: usize) -> Result<String, QueryError> {
    match call.args.args.get(index).map(|a| unwrap_parens(a)) {
        Some(Expr::StringLiteral(text)) => Ok(text.val.clone()),
        _ => Err(QueryError::bad(format!(
            "expected a string literal as argument {} of \"{}\"",
            index + 1,
            call.func.name
        ))),
    }
}

fn unwrap_parens(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(paren) => unwrap_parens(&paren.expr),
        other => other,
    }
}

fn argument(
    evaluator: &mut Evaluator,
    call: &Call,
    index: usize,
    t: i64,
) -> Result<Value, QueryError> {
    let arg = call.args.args.get(index).ok_or_else(|| {
        QueryError::bad(format!(
            "missing argument {} of \"{}\"",
            index + 1,
            call.func.name
        ))
    })?;
    evaluator.eval(arg, t)
}

/// The range argument of a range function: each series' window (borrowed) and the range.
fn arg_matrix<'e>(
    evaluator: &'e Evaluator,
    call: &Call,
    index: usize,
    t: i64,
) -> Result<(Vec<Window<'e>>, i64), QueryError> {
    match call.args.args.get(index).map(|a| unwrap_parens(a)) {
        Some(Expr::MatrixSelector(matrix)) => {
            let range_ms = matrix.range.as_millis() as i64;
            Ok((evaluator.range_windows(&matrix.vs, range_ms, t), range_ms))
        }
        _ => Err(QueryError::bad(format!(
            "expected type range vector in call to function \"{}\"",
            call.func.name
        ))),
    }
}

/// Prometheus' `extrapolatedRate`: the change over the window, extrapolated to the window's
/// edges (at most half an average sample interval past the first/last sample, and for counters
/// never below zero), per second for `rate`.
fn extrapolated_rate(
    samples: &[(i64, f64)],
    range_ms: i64,
    window_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (first_t, first_v) = samples[0];
    let (last_t, last_v) = samples[samples.len() - 1];
    let mut result = last_v - first_v;
    if is_counter {
        let mut previous = first_v;
        for &(_, value) in &samples[1..] {
            if value < previous {
                result += previous;
            }
            previous = value;
        }
    }
    let range_start = window_end_ms - range_ms;
    let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
    let mut duration_to_end = (window_end_ms - last_t) as f64 / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average_between = sampled_interval / (samples.len() - 1) as f64;
    if is_counter && result > 0.0 && first_v >= 0.0 {
        let duration_to_zero = sampled_interval * (first_v / result);
        duration_to_start = duration_to_start.min(duration_to_zero);
    }
    let threshold = average_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between / 2.0;
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

fn instant_rate(samples: &[(i64, f64)], is_rate: bool) -> Option<f64> {
    let [.., (previous_t, previous_v), (last_t, last_v)] = samples else {
        return None;
    };
    let mut result = last_v - previous_v;
    if is_rate && last_v < previous_v {
        result = *last_v;
    }
    let interval_secs = (last_t - previous_t) as f64 / 1000.0;
    if is_rate {
        if interval_secs == 0.0 {
            return None;
        }
        result /= interval_secs;
    }
    Some(result)
}

/// Prometheus' quantile with linear interpolation between closest ranks.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let rank = q * (values.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(values.len() - 1);
    let weight = rank - rank.floor();
    values[lower] * (1.0 - weight) + values[upper] * weight
}

fn over_time(name: &str, samples: &[(i64, f64)], parameter: f64) -> Option<f64> {
    let values = || samples.iter().map(|s| s.1);
    Some(match name {
        "sum_over_time" => values().sum(),
        "avg_over_time" => values().sum::<f64>() / samples.len() as f64,
        "min_over_time" => values().fold(f64::NAN, |a, b| if a.is_nan() || b < a { b } else { a }),
        "max_over_time" => values().fold(f64::NAN, |a, b| if a.is_nan() || b > a { b } else { a }),
        "count_over_time" => samples.len() as f64,
        "last_over_time" => samples.last()?.1,
        "present_over_time" => 1.0,
        "changes" => samples.windows(2).filter(|w| w[0].1 != w[1].1).count() as f64,
        "resets" => samples.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64,
        "quantile_over_time" => quantile(parameter, &mut values().collect::<Vec<_>>()),
        "stddev_over_time" | "stdvar_over_time" => {
            let mean = values().sum::<f64>() / samples.len() as f64;
            let variance = values().map(|v| (v - mean).powi(2)).sum::<f64>() / samples.len() as f64;
            if name == "stddev_over_time" {
                variance.sqrt()
            } else {
                variance
            }
        }
        _ => return None,
    })
}

/// `histogram_quantile(q, buckets)` over classic buckets (`le` label), Prometheus'
/// `bucketQuantile`: buckets summed per `le`, made monotonic, linear interpolation inside the
/// bucket holding the rank; the highest finite bound when the rank falls in `+Inf`.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets.dedup_by(|later, earlier| {
        if later.0 == earlier.0 {
            earlier.1 += later.1;
            true
        } else {
            false
        }
    });
    if buckets.len() < 2 || buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    for i in 1..buckets.len() {
        if buckets[i].1 < buckets[i - 1].1 {
            buckets[i].1 = buckets[i - 1].1;
        }
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|bucket| bucket.1 < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut bucket_start, bucket_end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        bucket_start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

fn histogram_quantile(
    evaluator: &mut Evaluator,
    node: usize,
    q: f64,
    samples: Vec<Sample>,
) -> Vec<Sample> {
    let mut groups: rustc_hash::FxHashMap<usize, (Labels, Vec<(f64, f64)>)> =
        rustc_hash::FxHashMap::default();
    for sample in samples {
        let Some(upper) = sample.labels.get("le").and_then(parse_bound) else {
            continue;
        };
        let labels = evaluator.derived(node, &sample.labels, |labels| {
            let mut labels = labels.without_name();
            labels.set("le", "");
            labels
        });
        groups
            .entry(labels.identity())
            .or_insert_with(|| (labels, Vec::new()))
            .1
            .push((upper, sample.value));
    }
    let mut out: Vec<Sample> = groups
        .into_values()
        .map(|(labels, mut buckets)| Sample {
            labels,
            value: bucket_quantile(q, &mut buckets),
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    out
}

fn parse_bound(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

fn math(name: &str, value: f64, args: &[f64]) -> Option<f64> {
    Some(match name {
        "abs" => value.abs(),
        "ceil" => value.ceil(),
        "floor" => value.floor(),
        "exp" => value.exp(),
        "ln" => value.ln(),
        "log2" => value.log2(),
        "log10" => value.log10(),
        "sqrt" => value.sqrt(),
        "sgn" => {
            if value == 0.0 || value.is_nan() {
                value
            } else {
                value.signum()
            }
        }
        "round" => {
            let to_nearest = args.first().copied().unwrap_or(1.0);
            (value / to_nearest + 0.5).floor() * to_nearest
        }
        "clamp" => {
            let (low, high) = (args[0], args[1]);
            if low > high {
                return None;
            }
            value.max(low).min(high)
        }
        "clamp_min" => value.max(args[0]),
        "clamp_max" => value.min(args[0]),
        _ => return None,
    })
}

fn label_replace(
    evaluator: &mut Evaluator,
    call: &Call,
    t: i64,
) -> Result<Vec<Sample>, QueryError> {
    let samples = arg_vector(evaluator, call, 0, t)?;
    let (destination, replacement, source, pattern) = (
        arg_string(call, 1)?,
        arg_string(call, 2)?,
        arg_string(call, 3)?,
        arg_string(call, 4)?,
    );
    let regex = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| {
        QueryError::bad(format!(
            "invalid regular expression in label_replace(): {pattern}: {e}"
        ))
    })?;
    if !is_label_name(&destination) {
        return Err(QueryError::bad(format!(
            "invalid destination label name in label_replace(): {destination}"
        )));
    }
    Ok(samples
        .into_iter()
        .map(|mut sample| {
            let value = sample.labels.get(&source).unwrap_or("").to_owned();
            if let Some(captures) = regex.captures(&value) {
                let mut expanded = String::new();
                captures.expand(&replacement, &mut expanded);
                sample.labels.set(&destination, &expanded);
            }
            sample
        })
        .collect())
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn call(evaluator: &mut Evaluator, call: &Call, t: i64) -> Result<Value, QueryError> {
    let name = call.func.name;
    Ok(match name {
        "rate" | "increase" | "delta" => {
            let (series, range_ms) = arg_matrix(evaluator, call, 0, t)?;
            let window_end = t - selector_offset(call);
            Value::Vector(
                series
                    .into_iter()
                    .filter_map(|s| {
                        let value = extrapolated_rate(
                            s.samples,
                            range_ms,
                            window_end,
                            name != "delta",
                            name == "rate",
                        )?;
                        Some(Sample {
                            labels: s.nameless.clone(),
                            value,
                        })
                    })
                    .collect(),
            )
        }
        "irate" | "idelta" => {
            let (series, _) = arg_matrix(evaluator, call, 0, t)?;
            Value::Vector(
                series
                    .into_iter()
                    .filter_map(|s| {
                        Some(Sample {
                            value: instant_rate(s.samples, name == "irate")?,
                            labels: s.nameless.clone(),
                        })
                    })
                    .collect(),
            )
        }
        "sum_over_time" | "avg_over_time" | "min_over_time" | "max_over_time"
        | "count_over_time" | "last_over_time" | "present_over_time" | "changes" | "resets"
        | "stddev_over_time" | "stdvar_over_time" | "quantile_over_time" => {
            let (parameter, matrix_index) = if name == "quantile_over_time" {
                (arg_scalar(evaluator, call, 0, t)?, 1)
            } else {
                (0.0, 0)
            };
            let (series, _) = arg_matrix(evaluator, call, matrix_index, t)?;
            let keeps_name = name == "last_over_time";
            Value::Vector(
                series
                    .into_iter()
                    .filter_map(|s| {
                        let value = over_time(name, s.samples, parameter)?;
                        Some(Sample {
                            labels: if keeps_name {
                                s.labels.clone()
                            } else {
                                s.nameless.clone()
                            },
                            value,
                        })
                    })
                    .collect(),
            )
        }
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "round"
        | "clamp" | "clamp_min" | "clamp_max" => {
            let samples = arg_vector(evaluator, call, 0, t)?;
            let mut args = Vec::new();
            for index in 1..call.args.args.len() {
                args.push(arg_scalar(evaluator, call, index, t)?);
            }
            Value::Vector(
                samples
                    .into_iter()
                    .filter_map(|s| {
                        Some(Sample {
                            value: math(name, s.value, &args)?,
                            labels: s.labels.without_name(),
                        })
                    })
                    .collect(),
            )
        }
        "histogram_quantile" => {
            let q = arg_scalar(evaluator, call, 0, t)?;
            let buckets = arg_vector(evaluator, call, 1, t)?;
            Value::Vector(histogram_quantile(
                evaluator,
                call as *const Call as usize,
                q,
                buckets,
            ))
        }
        "label_replace" => Value::Vector(label_replace(evaluator, call, t)?),
        "label_join" => {
            let samples = arg_vector(evaluator, call, 0, t)?;
            let (destination, separator) = (arg_string(call, 1)?, arg_string(call, 2)?);
            let sources = (3..call.args.args.len())
                .map(|i| arg_string(call, i))
                .collect::<Result<Vec<_>, _>>()?;
            Value::Vector(
                samples
                    .into_iter()
                    .map(|mut s| {
                        let joined = sources
                            .iter()
                            .map(|source| s.labels.get(source).unwrap_or(""))
                            .collect::<Vec<_>>()
                            .join(&separator);
                        s.labels.set(&destination, &joined);
                        s
                    })
                    .collect(),
            )
        }
        "vector" => Value::Vector(vec![Sample {
            labels: Labels::default(),
            value: arg_scalar(evaluator, call, 0, t)?,
        }]),
        "scalar" => {
            let samples = arg_vector(evaluator, call, 0, t)?;
            Value::Scalar(if samples.len() == 1 {
                samples[0].value
            } else {
                f64::NAN
            })
        }
        "time" => Value::Scalar(t as f64 / 1000.0),
        "absent" => {
            let samples = arg_vector(evaluator, call, 0, t)?;
            if samples.is_empty() {
                Value::Vector(vec![Sample {
                    labels: absent_labels(call),
                    value: 1.0,
                }])
            } else {
                Value::Vector(Vec::new())
            }
        }
        "sort" | "sort_desc" => {
            let mut samples = arg_vector(evaluator, call, 0, t)?;
            samples.sort_by(|a, b| {
                if name == "sort" {
                    a.value.total_cmp(&b.value)
                } else {
                    b.value.total_cmp(&a.value)
                }
            });
            Value::Vector(samples)
        }
        other => {
            return Err(QueryError::bad(format!(
                "function \"{other}\" is not supported"
            )))
        }
    })
}

fn selector_offset(call: &Call) -> i64 {
    match call.args.args.first().map(|a| unwrap_parens(a)) {
        Some(Expr::MatrixSelector(matrix)) => match matrix.vs.offset {
            Some(promql_parser::parser::Offset::Pos(d)) => d.as_millis() as i64,
            Some(promql_parser::parser::Offset::Neg(d)) => -(d.as_millis() as i64),
            None => 0,
        },
        _ => 0,
    }
}

/// `absent(m{a="x"})` answers `{a="x"}`: the equality matchers of the selector, except the name.
fn absent_labels(call: &Call) -> Labels {
    let Some(Expr::VectorSelector(selector)) = call.args.args.first().map(|a| unwrap_parens(a))
    else {
        return Labels::default();
    };
    Labels::new(
        selector
            .matchers
            .matchers
            .iter()
            .filter(|m| {
                matches!(m.op, promql_parser::label::MatchOp::Equal)
                    && m.name != crate::labels::METRIC_NAME
            })
            .map(|m| (m.name.clone(), m.value.clone())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // A counter growing 1/s, sampled every 15 s, window 60 s ending 5 s after the last sample.
        let samples: Vec<(i64, f64)> = (0..4)
            .map(|i| (10_000 + i * 15_000, 100.0 + 15.0 * i as f64))
            .collect();
        let rate = extrapolated_rate(&samples, 60_000, 60_000, true, true).unwrap();
        // sampled 45 s; to start 10 s (< 16.5 s threshold) kept, to end 5 s kept: 45 * 60/45 / 60.
        assert!((rate - 1.0).abs() < 1e-9, "{rate}");
        let increase = extrapolated_rate(&samples, 60_000, 60_000, true, false).unwrap();
        assert!((increase - 60.0).abs() < 1e-9, "{increase}");
    }

    #[test]
    fn counter_reset_is_added_back() {
        let samples = [(0, 10.0), (15_000, 20.0), (30_000, 5.0), (45_000, 15.0)];
        // Raw increase: 20-10 + 5 (reset: counts from 0) + 10 = 25 over 45 s; window exactly 45 s.
        let increase = extrapolated_rate(&samples, 45_000, 45_000, true, false).unwrap();
        assert!((increase - 25.0).abs() < 1e-9, "{increase}");
    }

    #[test]
    fn bucket_quantile_interpolates_and_caps_at_highest_finite_bound() {
        let mut buckets = vec![(0.1, 10.0), (0.2, 20.0), (0.4, 40.0), (f64::INFINITY, 40.0)];
        assert!((bucket_quantile(0.5, &mut buckets) - 0.2).abs() < 1e-9);
        let mut buckets = vec![(0.1, 0.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        assert!((bucket_quantile(0.9, &mut buckets) - 0.19).abs() < 1e-9);
        let mut buckets = vec![(0.1, 0.0), (0.2, 0.0), (f64::INFINITY, 10.0)];
        assert_eq!(bucket_quantile(0.5, &mut buckets), 0.2);
        let mut no_inf = vec![(0.1, 1.0), (0.2, 2.0)];
        assert!(bucket_quantile(0.5, &mut no_inf).is_nan());
    }

    #[test]
    fn quantile_interpolates_between_ranks() {
        assert_eq!(quantile(0.5, &mut [1.0, 3.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(1.0, &mut [1.0, 3.0]), 3.0);
    }
}
