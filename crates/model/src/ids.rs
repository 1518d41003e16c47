//! Trace and span identifiers. OTLP carries them as byte strings of any length; Andante accepts
//! exactly 16 and 8 bytes that are not all zero (the OTLP and W3C rules) and from then on passes
//! fixed-size arrays, so no later layer has to re-check a length.

use std::fmt;

/// Why a trace or span ID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} must be {expected} bytes, got {actual}")]
    WrongLength {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("{what} must not be all zeros")]
    AllZero { what: &'static str },
    #[error("{what} `{text}` is not hexadecimal")]
    NotHex { what: &'static str, text: String },
    #[error("{what} `{text}` is longer than {max} hexadecimal digits")]
    TooLong {
        what: &'static str,
        text: String,
        max: usize,
    },
}

/// A 16-byte trace ID that is not all zeros.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span ID that is not all zeros.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SpanId(pub [u8; 8]);

fn fixed<const N: usize>(what: &'static str, bytes: &[u8]) -> Result<[u8; N], IdError> {
    let array: [u8; N] = bytes.try_into().map_err(|_| IdError::WrongLength {
        what,
        expected: N,
        actual: bytes.len(),
    })?;
    if array.iter().all(|byte| *byte == 0) {
        return Err(IdError::AllZero { what });
    }
    Ok(array)
}

/// Parses up to `2*N` hex digits, left-padding shorter ones with zeros as Tempo does for IDs
/// that lost their leading zeros on the way through some system.
fn from_hex<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], IdError> {
    let max = 2 * N;
    if text.len() > max {
        return Err(IdError::TooLong {
            what,
            text: text.to_owned(),
            max,
        });
    }
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(IdError::NotHex {
            what,
            text: text.to_owned(),
        });
    }
    let padded = format!("{text:0>max$}");
    let mut out = [0u8; N];
    hex::decode_to_slice(&padded, &mut out).map_err(|_| IdError::NotHex {
        what,
        text: text.to_owned(),
    })?;
    if out.iter().all(|byte| *byte == 0) {
        return Err(IdError::AllZero { what });
    }
    Ok(out)
}

impl TraceId {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        fixed("trace ID", bytes).map(TraceId)
    }
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        from_hex("trace ID", text).map(TraceId)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl SpanId {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdError> {
        fixed("span ID", bytes).map(SpanId)
    }
    pub fn from_hex(text: &str) -> Result<Self, IdError> {
        from_hex("span ID", text).map(SpanId)
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.to_hex())
    }
}
impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", self.to_hex())
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_are_left_padded_and_validated() {
        let short = TraceId::from_hex("abc").expect("short hex parses");
        assert_eq!(short.to_hex(), "00000000000000000000000000000abc");
        assert!(matches!(
            TraceId::from_hex("xyz"),
            Err(IdError::NotHex { .. })
        ));
        assert!(matches!(
            TraceId::from_hex("0000"),
            Err(IdError::AllZero { .. })
        ));
        assert!(matches!(
            TraceId::from_hex(&"1".repeat(33)),
            Err(IdError::TooLong { .. })
        ));
        assert!(matches!(TraceId::from_hex(""), Err(IdError::NotHex { .. })));
    }

    #[test]
    fn byte_ids_need_exact_length_and_a_nonzero_bit() {
        assert!(SpanId::from_bytes(&[1; 8]).is_ok());
        assert_eq!(
            SpanId::from_bytes(&[1; 7]),
            Err(IdError::WrongLength {
                what: "span ID",
                expected: 8,
                actual: 7
            })
        );
        assert_eq!(
            TraceId::from_bytes(&[0; 16]),
            Err(IdError::AllZero { what: "trace ID" })
        );
    }
}
