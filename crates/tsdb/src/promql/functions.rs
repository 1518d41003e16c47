//! PromQL functions: the range functions (`rate`, `increase`, `irate`, `*_over_time`, …), the
//! per-sample math functions, `histogram_quantile`, `label_replace`/`label_join`, and the
//! scalar/vector conversions.

use promql_parser::parser::{Call, Expr};

use super::eval::{Evaluator, Value};
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

/// Applies `each` to every series of a range function's argument — a range selector (windows
/// borrowed from the evaluator) or a subquery (evaluated here) — with the series' labels, its
/// labels without the metric name, its samples, the range and the window's end.
fn map_matrix(
    evaluator: &mut Evaluator,
    call: &Call,
    index: usize,
    t: i64,
    mut each: impl FnMut(&Labels, &Labels, &[(i64, f64)], Span) -> Option<f64>,
    keep_name: bool,
) -> Result<Vec<Sample>, QueryError> {
    let labelled = |labels: &Labels, nameless: &Labels| {
        if keep_name {
            labels.clone()
        } else {
            nameless.clone()
        }
    };
    match call.args.args.get(index).map(|a| unwrap_parens(a)) {
        Some(Expr::MatrixSelector(matrix)) => {
            let range_ms = matrix.range.as_millis() as i64;
            let window = Span {
                range_ms,
                end_ms: evaluator.read_time(&matrix.vs.at, &matrix.vs.offset, t),
            };
            Ok(evaluator
                .range_windows(&matrix.vs, range_ms, t)
                .into_iter()
                .filter_map(|w| {
                    let value = each(w.labels, w.nameless, w.samples, window)?;
                    Some(Sample {
                        labels: labelled(w.labels, w.nameless),
                        value,
                    })
                })
                .collect())
        }
        Some(Expr::Subquery(subquery)) => {
            let window = Span {
                range_ms: subquery.range.as_millis() as i64,
                end_ms: evaluator.read_time(&subquery.at, &subquery.offset, t),
            };
            Ok(evaluator
                .subquery(subquery, t)?
                .into_iter()
                .filter_map(|series| {
                    let nameless = series.labels.without_name();
                    let value = each(&series.labels, &nameless, &series.samples, window)?;
                    Some(Sample {
                        labels: labelled(&series.labels, &nameless),
                        value,
                    })
                })
                .collect())
        }
        _ => Err(QueryError::bad(format!(
            "expected type range vector in call to function \"{}\"",
            call.func.name
        ))),
    }
}

/// The span a range function's window covers at one evaluation: `(end - range, end]`.
#[derive(Debug, Clone, Copy)]
struct Span {
    range_ms: i64,
    end_ms: i64,
}

/// Prometheus' `linearRegression`: least squares over the samples with `x` in seconds from
/// `intercept_ms`, sums compensated (Kahan–Neumaier); a constant series has slope 0.
fn linear_regression(samples: &[(i64, f64)], intercept_ms: i64) -> (f64, f64) {
    let first = samples[0].1;
    if samples.iter().all(|s| s.1 == first) {
        if first.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, first);
    }
    let (mut x_sum, mut y_sum, mut xy_sum, mut x2_sum) = (
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
        KahanSum::default(),
    );
    for &(t, y) in samples {
        let x = (t - intercept_ms) as f64 / 1000.0;
        x_sum.add(x);
        y_sum.add(y);
        xy_sum.add(x * y);
        x2_sum.add(x * x);
    }
    let n = samples.len() as f64;
    let (x_sum, y_sum) = (x_sum.total(), y_sum.total());
    let covariance = xy_sum.total() - x_sum * y_sum / n;
    let variance = x2_sum.total() - x_sum * x_sum / n;
    let slope = covariance / variance;
    (slope, y_sum / n - slope * x_sum / n)
}

#[derive(Default)]
struct KahanSum {
    sum: f64,
    compensation: f64,
}

impl KahanSum {
    fn add(&mut self, value: f64) {
        let next = self.sum + value;
        if self.sum.abs() >= value.abs() {
            self.compensation += (self.sum - next) + value;
        } else {
            self.compensation += (value - next) + self.sum;
        }
        self.sum = next;
    }

    fn total(&self) -> f64 {
        self.sum + self.compensation
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
    // NaN sorts below everything, as Prometheus' quantile sorts.
    values.sort_by(|a, b| b.is_nan().cmp(&a.is_nan()).then(a.total_cmp(b)));
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
            // Prometheus multiplies by the inverse, which rounds differently from dividing.
            let inverse = 1.0 / args.first().copied().unwrap_or(1.0);
            (value * inverse + 0.5).floor() / inverse
        }
        // Go's math.Max/Min (Prometheus' clamps) return NaN when either side is NaN.
        "clamp" => {
            let (low, high) = (args[0], args[1]);
            if low > high {
                return None;
            }
            go_max(low, go_min(high, value))
        }
        "clamp_min" => go_max(args[0], value),
        "clamp_max" => go_min(args[0], value),
        "sin" => value.sin(),
        "cos" => value.cos(),
        "tan" => value.tan(),
        "asin" => value.asin(),
        "acos" => value.acos(),
        "atan" => value.atan(),
        "sinh" => value.sinh(),
        "cosh" => value.cosh(),
        "tanh" => value.tanh(),
        "asinh" => value.asinh(),
        "acosh" => value.acosh(),
        "atanh" => value.atanh(),
        "deg" => value.to_degrees(),
        "rad" => value.to_radians(),
        _ => return None,
    })
}

fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// The calendar functions (`minute`, `hour`, …) of Unix seconds, in UTC, as Prometheus takes
/// them: the seconds truncated to an integer.
fn calendar(name: &str, unix_secs: f64) -> f64 {
    let secs = unix_secs as i64;
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_lengths = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    match name {
        "minute" => (of_day / 60 % 60) as f64,
        "hour" => (of_day / 3600) as f64,
        "day_of_month" => day as f64,
        // 1970-01-01 was a Thursday (4).
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => (month_lengths[..(month - 1) as usize].iter().sum::<i64>() + day) as f64,
        "days_in_month" => month_lengths[(month - 1) as usize] as f64,
        "month" => month as f64,
        _ => year as f64,
    }
}

/// (year, month 1–12, day 1–31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
        "rate" | "increase" | "delta" => Value::Vector(map_matrix(
            evaluator,
            call,
            0,
            t,
            |_, _, samples, window| {
                extrapolated_rate(
                    samples,
                    window.range_ms,
                    window.end_ms,
                    name != "delta",
                    name == "rate",
                )
            },
            false,
        )?),
        "irate" | "idelta" => Value::Vector(map_matrix(
            evaluator,
            call,
            0,
            t,
            |_, _, samples, _| instant_rate(samples, name == "irate"),
            false,
        )?),
        "deriv" => Value::Vector(map_matrix(
            evaluator,
            call,
            0,
            t,
            |_, _, samples, _| {
                (samples.len() >= 2).then(|| linear_regression(samples, samples[0].0).0)
            },
            false,
        )?),
        "predict_linear" => {
            let seconds = arg_scalar(evaluator, call, 1, t)?;
            Value::Vector(map_matrix(
                evaluator,
                call,
                0,
                t,
                |_, _, samples, _| {
                    (samples.len() >= 2).then(|| {
                        let (slope, intercept) = linear_regression(samples, t);
                        slope * seconds + intercept
                    })
                },
                false,
            )?)
        }
        "sum_over_time" | "avg_over_time" | "min_over_time" | "max_over_time"
        | "count_over_time" | "last_over_time" | "present_over_time" | "changes" | "resets"
        | "stddev_over_time" | "stdvar_over_time" | "quantile_over_time" => {
            let (parameter, matrix_index) = if name == "quantile_over_time" {
                (arg_scalar(evaluator, call, 0, t)?, 1)
            } else {
                (0.0, 0)
            };
            Value::Vector(map_matrix(
                evaluator,
                call,
                matrix_index,
                t,
                |_, _, samples, _| over_time(name, samples, parameter),
                name == "last_over_time",
            )?)
        }
        "absent_over_time" => {
            let present = map_matrix(evaluator, call, 0, t, |_, _, _, _| Some(1.0), false)?;
            Value::Vector(if present.is_empty() {
                vec![Sample {
                    labels: absent_labels(call),
                    value: 1.0,
                }]
            } else {
                Vec::new()
            })
        }
        "timestamp" => {
            // Of a selector, the time of the sample it found; of anything else, the step's time.
            let samples = match call.args.args.first().map(|a| unwrap_parens(a)) {
                Some(Expr::VectorSelector(selector)) => evaluator
                    .instant_selector_timed(selector, t)
                    .into_iter()
                    .map(|(sample, sample_t)| Sample {
                        labels: sample.labels.without_name(),
                        value: sample_t as f64 / 1000.0,
                    })
                    .collect(),
                _ => arg_vector(evaluator, call, 0, t)?
                    .into_iter()
                    .map(|sample| Sample {
                        labels: sample.labels.without_name(),
                        value: t as f64 / 1000.0,
                    })
                    .collect(),
            };
            Value::Vector(samples)
        }
        "minute" | "hour" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month"
        | "month" | "year" => {
            let samples = if call.args.args.is_empty() {
                vec![Sample {
                    labels: Labels::default(),
                    value: t as f64 / 1000.0,
                }]
            } else {
                arg_vector(evaluator, call, 0, t)?
            };
            Value::Vector(
                samples
                    .into_iter()
                    .map(|sample| Sample {
                        labels: sample.labels.without_name(),
                        value: calendar(name, sample.value),
                    })
                    .collect(),
            )
        }
        "pi" => Value::Scalar(std::f64::consts::PI),
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "sgn" | "round"
        | "clamp" | "clamp_min" | "clamp_max" | "sin" | "cos" | "tan" | "asin" | "acos"
        | "atan" | "sinh" | "cosh" | "tanh" | "asinh" | "acosh" | "atanh" | "deg" | "rad" => {
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
            // NaN last in both directions, as Prometheus sorts.
            samples.sort_by(|a, b| {
                let by_value = if name == "sort" {
                    a.value.total_cmp(&b.value)
                } else {
                    b.value.total_cmp(&a.value)
                };
                a.value.is_nan().cmp(&b.value.is_nan()).then(by_value)
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

/// `absent(m{a="x"})` answers `{a="x"}`: the equality matchers of the selector, except the name.
fn absent_labels(call: &Call) -> Labels {
    let selector = match call.args.args.first().map(|a| unwrap_parens(a)) {
        Some(Expr::VectorSelector(selector)) => selector,
        Some(Expr::MatrixSelector(matrix)) => &matrix.vs,
        _ => return Labels::default(),
    };
    // Prometheus keeps a label only when its one matcher is an equality: a second matcher on
    // the same name, or any other kind of matcher, leaves the label out.
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut dropped: Vec<&str> = Vec::new();
    for matcher in &selector.matchers.matchers {
        if matcher.name == crate::labels::METRIC_NAME {
            continue;
        }
        let equal = matches!(matcher.op, promql_parser::label::MatchOp::Equal);
        if equal && !kept.iter().any(|(name, _)| *name == matcher.name) {
            kept.push((matcher.name.clone(), matcher.value.clone()));
        } else {
            dropped.push(&matcher.name);
        }
    }
    kept.retain(|(name, _)| !dropped.contains(&name.as_str()));
    Labels::new(kept)
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
