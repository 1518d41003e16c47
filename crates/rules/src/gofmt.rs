//! Go's number formatting as Prometheus' templates print it: `%v`/`%g` (shortest, exponent from
//! 1e+06 up), `%.Ng`, `%f`, `%e`, `%d`, and the `humanize*` functions built on them. Alert
//! annotations must read exactly as Prometheus renders them, since people grep and route on them.

/// Digits of a finite non-negative number: significant digits without trailing zeros, and the
/// decimal point's position (`0.0125` → ("125", -1)).
fn decimal_digits(value: f64, significant: Option<usize>) -> (String, i32) {
    if value == 0.0 {
        return ("0".into(), 1);
    }
    let text = match significant {
        Some(digits) => format!("{:.*e}", digits.saturating_sub(1), value),
        None => format!("{value:e}"),
    };
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (digits, exponent + 1)
}

fn special(value: f64) -> Option<String> {
    if value.is_nan() {
        Some("NaN".into())
    } else if value.is_infinite() {
        Some(if value > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// Go's `%g` (`precision` None is `%v`'s shortest form).
pub fn format_g(value: f64, precision: Option<usize>) -> String {
    if let Some(text) = special(value) {
        return text;
    }
    let sign = if value.is_sign_negative() && value != 0.0 {
        "-"
    } else {
        ""
    };
    let precision = precision.map(|p| p.max(1));
    let (digits, point) = decimal_digits(value.abs(), precision);
    let count = digits.len() as i32;
    let mut exponent_precision = precision.map_or(6, |p| p as i32);
    if precision.is_some() && exponent_precision > count && count >= point {
        exponent_precision = count;
    }
    let exponent = point - 1;
    if exponent < -4 || exponent >= exponent_precision {
        let mut text = String::from(sign);
        text.push_str(&digits[..1]);
        if count > 1 {
            text.push('.');
            text.push_str(&digits[1..]);
        }
        text.push_str(&format!(
            "e{}{:02}",
            if exponent < 0 { '-' } else { '+' },
            exponent.abs()
        ));
        return text;
    }
    let decimals = (count - point).max(0) as usize;
    format!("{sign}{}", fixed_from_digits(&digits, point, decimals))
}

fn fixed_from_digits(digits: &str, point: i32, decimals: usize) -> String {
    let mut text = String::new();
    if point <= 0 {
        text.push('0');
    } else {
        for index in 0..point as usize {
            text.push(digits.as_bytes().get(index).map_or('0', |&b| b as char));
        }
    }
    if decimals > 0 {
        text.push('.');
        for index in 0..decimals as i32 {
            let at = point + index;
            let digit = if at < 0 {
                '0'
            } else {
                digits
                    .as_bytes()
                    .get(at as usize)
                    .map_or('0', |&b| b as char)
            };
            text.push(digit);
        }
    }
    text
}

/// Go's `%.Nf` (`%f` is six decimals).
pub fn format_f(value: f64, decimals: usize) -> String {
    special(value).unwrap_or_else(|| format!("{value:.decimals$}"))
}

/// Go's `%.Ne` (`%e` is six decimals): `1.500000e+03`.
pub fn format_e(value: f64, decimals: usize) -> String {
    if let Some(text) = special(value) {
        return text;
    }
    let text = format!("{value:.decimals$e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    format!(
        "{mantissa}e{}{:02}",
        if exponent < 0 { '-' } else { '+' },
        exponent.abs()
    )
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`: the shortest digits in exponent form
/// (`1e+00`, `2.5e-01`), as Prometheus prints an alert's value in its API.
pub fn format_e_shortest(value: f64) -> String {
    if let Some(text) = special(value) {
        return text;
    }
    let sign = if value.is_sign_negative() && value != 0.0 {
        "-"
    } else {
        ""
    };
    let (digits, point) = decimal_digits(value.abs(), None);
    let exponent = if value == 0.0 { 0 } else { point - 1 };
    let mantissa = if digits.len() > 1 {
        format!("{}.{}", &digits[..1], &digits[1..])
    } else {
        digits.clone()
    };
    format!(
        "{sign}{mantissa}e{}{:02}",
        if exponent < 0 { '-' } else { '+' },
        exponent.abs()
    )
}

/// Prometheus' `humanize`: SI prefixes, four significant digits.
pub fn humanize(mut value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format_g(value, Some(4));
    }
    let mut prefix = "";
    if value.abs() >= 1.0 {
        for candidate in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if value.abs() < 1000.0 {
                break;
            }
            prefix = candidate;
            value /= 1000.0;
        }
    } else {
        for candidate in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if value.abs() >= 1.0 {
                break;
            }
            prefix = candidate;
            value *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(value, Some(4)))
}

/// Prometheus' `humanize1024`: binary prefixes for values of at least 1.
pub fn humanize_1024(mut value: f64) -> String {
    if value.abs() <= 1.0 || !value.is_finite() {
        return format_g(value, Some(4));
    }
    let mut prefix = "";
    for candidate in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if value.abs() < 1024.0 {
            break;
        }
        prefix = candidate;
        value /= 1024.0;
    }
    format!("{}{prefix}", format_g(value, Some(4)))
}

/// Prometheus' `humanizeDuration`: seconds as `1d 2h 3m 4s`, or with SI prefixes below 1 s.
pub fn humanize_duration(mut value: f64) -> String {
    if !value.is_finite() {
        return format_g(value, Some(4));
    }
    if value == 0.0 {
        return format!("{}s", format_g(value, Some(4)));
    }
    if value.abs() >= 1.0 {
        let sign = if value < 0.0 { "-" } else { "" };
        value = value.abs();
        let whole = value as i64;
        let (seconds, minutes, hours, days) = (
            whole % 60,
            whole / 60 % 60,
            whole / 3600 % 24,
            whole / 86_400,
        );
        if days != 0 {
            return format!("{sign}{days}d {hours}h {minutes}m {seconds}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {minutes}m {seconds}s");
        }
        if minutes != 0 {
            return format!("{sign}{minutes}m {seconds}s");
        }
        return format!("{sign}{}s", format_g(value, Some(4)));
    }
    let mut prefix = "";
    for candidate in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if value.abs() >= 1.0 {
            break;
        }
        prefix = candidate;
        value *= 1000.0;
    }
    format!("{}{prefix}s", format_g(value, Some(4)))
}

/// Prometheus' `humanizePercentage`: a ratio as a percentage, four significant digits.
pub fn humanize_percentage(value: f64) -> String {
    format!("{}%", format_g(value * 100.0, Some(4)))
}

/// Prometheus' `humanizeTimestamp`: Unix seconds, cut to milliseconds (`model.Time`), as Go
/// prints a UTC `time.Time`.
pub fn humanize_timestamp(value: f64) -> String {
    if !value.is_finite() {
        return format_g(value, Some(4));
    }
    let millis = ((value * 1e9) as i64).div_euclid(1_000_000);
    let text = rfc3339(millis);
    format!(
        "{} +0000 UTC",
        text.trim_end_matches('Z').replacen('T', " ", 1)
    )
}

/// Unix milliseconds as Go's `time.RFC3339Nano` in UTC (`2026-12-01T13:00:05.25Z`), the form of
/// Prometheus' API timestamps and of Alertmanager's `startsAt`/`endsAt`.
pub fn rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let (year, month, day) = andante_tsdb::promql::civil_from_days(seconds.div_euclid(86_400));
    let in_day = seconds.rem_euclid(86_400);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    );
    if millis > 0 {
        text.push('.');
        text.push_str(format!("{millis:03}").trim_end_matches('0'));
    }
    text.push('Z');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_matches_go() {
        let cases: [(f64, Option<usize>, &str); 16] = [
            (1.0, None, "1"),
            (0.5, None, "0.5"),
            (1_000_000.0, None, "1e+06"),
            (123_456.0, None, "123456"),
            (1_234_567.0, None, "1.234567e+06"),
            (0.0001, None, "0.0001"),
            (0.00001, None, "1e-05"),
            (-2.5, None, "-2.5"),
            (1234.5678, Some(4), "1235"),
            (12_345.0, Some(4), "1.234e+04"),
            (100.0, Some(4), "100"),
            (0.5, Some(4), "0.5"),
            (0.0, Some(4), "0"),
            (f64::INFINITY, None, "+Inf"),
            (f64::NAN, Some(4), "NaN"),
            (0.333333333, Some(4), "0.3333"),
        ];
        for (value, precision, expected) in cases {
            assert_eq!(
                format_g(value, precision),
                expected,
                "{value} {precision:?}"
            );
        }
    }

    #[test]
    fn humanize_family_matches_prometheus() {
        assert_eq!(humanize(1234.0), "1.234k");
        assert_eq!(humanize(0.0012), "1.2m");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(5e9), "5G");
        assert_eq!(humanize_1024(2048.0), "2ki");
        assert_eq!(humanize_1024(1.0), "1");
        assert_eq!(humanize_duration(3661.0), "1h 1m 1s");
        assert_eq!(humanize_duration(90061.0), "1d 1h 1m 1s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_percentage(0.1234), "12.34%");
        assert_eq!(
            humanize_timestamp(1_435_065_584.128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(humanize_timestamp(0.0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(rfc3339(1_435_065_584_120), "2015-06-23T13:19:44.12Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn f_and_e_match_go() {
        assert_eq!(format_f(2.0 / 3.0, 2), "0.67");
        assert_eq!(format_e(1500.0, 6), "1.500000e+03");
        assert_eq!(format_e(0.015, 2), "1.50e-02");
        assert_eq!(format_e_shortest(1.0), "1e+00");
        assert_eq!(format_e_shortest(0.25), "2.5e-01");
        assert_eq!(format_e_shortest(0.0), "0e+00");
    }
}
