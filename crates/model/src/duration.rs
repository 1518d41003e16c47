//! Go's duration syntax (`time.ParseDuration`), the one parser for every place Tempo's users
//! write a Go duration: configuration values, TraceQL duration literals and the legacy search
//! parameters (`minDuration`, `maxDuration`). Prometheus durations (`5m`, `1w`, integers only)
//! are another grammar and live with PromQL and the rule files.
//!
//! The value is computed in integers, as Go does, so `1.1s` is exactly 1,100,000,000 ns and an
//! overflow is an error instead of a saturated or wrapped number.

use std::fmt;

/// Why a text is not a Go duration, and the byte offset in it where that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DurationError {}

/// The units Go accepts, with their length in nanoseconds.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000), // U+00B5 MICRO SIGN
    ("μs", 1_000), // U+03BC GREEK SMALL LETTER MU
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses `[-+]?([0-9]*(\.[0-9]*)?unit)+` (or a bare `0`) into signed nanoseconds. A unit is
/// one of `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`; each term needs digits on at least one
/// side of its point.
pub fn parse_go_duration(text: &str) -> Result<i64, DurationError> {
    let error = |offset: usize, message: String| DurationError { offset, message };
    let invalid = |offset: usize| error(offset, format!("invalid duration `{text}`"));
    let bytes = text.as_bytes();
    let mut pos = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            pos = 1;
            true
        }
        Some(b'+') => {
            pos = 1;
            false
        }
        _ => false,
    };
    if &text[pos..] == "0" {
        return Ok(0);
    }
    if pos == bytes.len() {
        return Err(invalid(pos));
    }
    // Nanoseconds as an unsigned sum so that exactly i64::MIN, like Go, still parses.
    let mut total: u64 = 0;
    let out_of_range = |offset: usize| error(offset, format!("duration `{text}` is out of range"));
    while pos < bytes.len() {
        let term_start = pos;
        let whole_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        let whole = &text[whole_start..pos];
        let mut fraction = "";
        if pos < bytes.len() && bytes[pos] == b'.' {
            pos += 1;
            let fraction_start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            fraction = &text[fraction_start..pos];
        }
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid(term_start));
        }
        let unit_start = pos;
        while pos < bytes.len() && !(bytes[pos].is_ascii_digit() || bytes[pos] == b'.') {
            pos += text[pos..].chars().next().map_or(1, char::len_utf8);
        }
        let unit = &text[unit_start..pos];
        let Some(&(_, unit_nanos)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            let message = if unit.is_empty() {
                format!("missing unit in duration `{text}`")
            } else {
                format!("unknown duration unit `{unit}`, expected ns, us, ms, s, m or h")
            };
            return Err(error(unit_start, message));
        };
        let mut term: u64 = 0;
        for digit in whole.bytes() {
            term = term
                .checked_mul(10)
                .and_then(|t| t.checked_add(u64::from(digit - b'0')))
                .ok_or_else(|| out_of_range(term_start))?;
        }
        term = term
            .checked_mul(unit_nanos)
            .ok_or_else(|| out_of_range(term_start))?;
        // Go scales the fraction in floating point; doing the same keeps every result equal to
        // Go's (`0.3333333333333333333h` is exactly 20m there). Digits past 2^63 are ignored.
        let (mut fraction_digits, mut scale) = (0u64, 1f64);
        for digit in fraction.bytes() {
            match fraction_digits
                .checked_mul(10)
                .and_then(|f| f.checked_add(u64::from(digit - b'0')))
                .filter(|f| *f <= 1 << 63)
            {
                Some(next) => {
                    fraction_digits = next;
                    scale *= 10.0;
                }
                None => break,
            }
        }
        if fraction_digits > 0 {
            term = term
                .checked_add((fraction_digits as f64 * (unit_nanos as f64 / scale)) as u64)
                .ok_or_else(|| out_of_range(term_start))?;
        }
        total = total
            .checked_add(term)
            .ok_or_else(|| out_of_range(term_start))?;
    }
    let limit = if negative {
        i64::MIN.unsigned_abs()
    } else {
        i64::MAX as u64
    };
    if total > limit {
        return Err(out_of_range(0));
    }
    Ok(if negative {
        (total as i64).wrapping_neg()
    } else {
        total as i64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples_parse_to_the_nanoseconds_go_gives() {
        for (text, nanos) in [
            ("0", 0),
            ("-0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("-2m3.4s", -123_400_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("0.100000000000000000000h", 360_000_000_000),
            ("0.830103483285477580700h", 2_988_372_539_827),
        ] {
            assert_eq!(parse_go_duration(text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn what_go_refuses_is_refused_with_a_position() {
        for (text, offset) in [
            ("", 0),
            ("3", 1),
            ("-", 1),
            ("s", 0),
            (".", 0),
            ("-.", 1),
            (".s", 0),
            ("+.s", 1),
            ("1d", 1),
            ("3000000h", 0),
            ("9223372036854775808ns", 0),
            ("9223372036854775.808us", 0),
            ("9223372036854ms775us808ns", 0),
            ("-9223372036854775809ns", 0),
            ("5 s", 1),
            ("1.5.5s", 3),
        ] {
            let error = parse_go_duration(text).expect_err(text);
            assert_eq!(error.offset, offset, "{text}: {}", error.message);
            assert!(
                error.message.contains("duration"),
                "{text}: {}",
                error.message
            );
        }
    }

    #[test]
    fn an_unknown_unit_is_named() {
        let error = parse_go_duration("7parsecs").unwrap_err();
        assert_eq!(error.offset, 1);
        assert!(error.message.contains("`parsecs`"), "{}", error.message);
    }
}
