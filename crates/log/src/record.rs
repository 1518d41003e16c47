//! Record v2, the value of one Kafka record on the span topic: a tenant and the encoded trace
//! fragments of one push that hash to the record's partition, exactly as the live store holds
//! them, so consumers insert without decoding spans (WAL v1 in `live/src/record.rs` needs a
//! decode and a split).
//!
//! ```text
//! u8 version (2) | u16 tenant length | tenant | u32 fragments |
//!   per fragment: [16] trace ID | u32 span count | u32 length | length bytes
//! ```
//! Integers are big-endian. Decoding checks every length against what is left, so a damaged or
//! hostile record is an error naming its position, never a panic or a huge allocation.

use andante_ingest::EncodedFragment;
use andante_model::{TenantId, TraceId};
use bytes::{Buf, BufMut, Bytes};

pub const VERSION: u8 = 2;

/// Bytes a record adds to its fragments: the header, and the per-fragment prefix.
pub const HEADER_BYTES: usize = 1 + 2 + 4;
pub const FRAGMENT_PREFIX_BYTES: usize = 16 + 4 + 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("log record version {0} is not one this version reads (2)")]
    Version(u8),
    #[error("log record truncated at byte {at}: {what} needs {needed} more bytes, {left} left")]
    Truncated {
        at: usize,
        what: &'static str,
        needed: usize,
        left: usize,
    },
    #[error("log record's tenant is invalid: {0}")]
    Tenant(String),
    #[error("log record has {0} trailing bytes")]
    Trailing(usize),
}

/// Encodes one record; `fragments` must all be the tenant's.
pub fn encode(tenant: &TenantId, fragments: &[EncodedFragment]) -> Vec<u8> {
    let body: usize = fragments
        .iter()
        .map(|f| FRAGMENT_PREFIX_BYTES + f.bytes.len())
        .sum();
    let mut out = Vec::with_capacity(HEADER_BYTES + tenant.as_str().len() + body);
    out.put_u8(VERSION);
    out.put_u16(tenant.as_str().len() as u16);
    out.put_slice(tenant.as_str().as_bytes());
    out.put_u32(fragments.len() as u32);
    for fragment in fragments {
        out.put_slice(&fragment.trace_id.0);
        out.put_u32(fragment.span_count as u32);
        out.put_u32(fragment.bytes.len() as u32);
        out.put_slice(&fragment.bytes);
    }
    out
}

/// The encoded size of one fragment inside a record.
pub fn fragment_size(fragment: &EncodedFragment) -> usize {
    FRAGMENT_PREFIX_BYTES + fragment.bytes.len()
}

/// Decodes one record; fragments share `value`'s buffer.
pub fn decode(value: Bytes) -> Result<(TenantId, Vec<EncodedFragment>), RecordError> {
    let total = value.len();
    let mut buf = value;
    let need = |buf: &Bytes, what: &'static str, needed: usize| {
        if buf.remaining() < needed {
            Err(RecordError::Truncated {
                at: total - buf.remaining(),
                what,
                needed,
                left: buf.remaining(),
            })
        } else {
            Ok(())
        }
    };
    need(&buf, "version", 1)?;
    let version = buf.get_u8();
    if version != VERSION {
        return Err(RecordError::Version(version));
    }
    need(&buf, "tenant length", 2)?;
    let tenant_len = usize::from(buf.get_u16());
    need(&buf, "tenant", tenant_len)?;
    let tenant_bytes = buf.split_to(tenant_len);
    let tenant = std::str::from_utf8(&tenant_bytes)
        .map_err(|error| RecordError::Tenant(error.to_string()))
        .and_then(|text| {
            TenantId::new(text).map_err(|error| RecordError::Tenant(error.to_string()))
        })?;
    need(&buf, "fragment count", 4)?;
    let count = buf.get_u32() as usize;
    // Each fragment needs its prefix, so a count the record cannot hold is refused before any
    // allocation sized by it.
    need(
        &buf,
        "fragments",
        count.saturating_mul(FRAGMENT_PREFIX_BYTES),
    )?;
    let mut fragments = Vec::with_capacity(count);
    for _ in 0..count {
        need(&buf, "fragment prefix", FRAGMENT_PREFIX_BYTES)?;
        let mut trace_id = [0u8; 16];
        buf.copy_to_slice(&mut trace_id);
        let span_count = buf.get_u32() as usize;
        let len = buf.get_u32() as usize;
        need(&buf, "fragment", len)?;
        fragments.push(EncodedFragment {
            trace_id: TraceId(trace_id),
            span_count,
            bytes: buf.split_to(len),
        });
    }
    if buf.has_remaining() {
        return Err(RecordError::Trailing(buf.remaining()));
    }
    Ok((tenant, fragments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fragment(id: u8, spans: usize, body: &[u8]) -> EncodedFragment {
        EncodedFragment {
            trace_id: TraceId([id; 16]),
            span_count: spans,
            bytes: Bytes::copy_from_slice(body),
        }
    }

    #[test]
    fn the_layout_is_pinned() {
        let tenant = TenantId::new("ab").unwrap();
        let encoded = encode(&tenant, &[fragment(7, 3, b"xyz")]);
        let mut expected = vec![2, 0, 2, b'a', b'b', 0, 0, 0, 1];
        expected.extend([7u8; 16]);
        expected.extend([0, 0, 0, 3, 0, 0, 0, 3]);
        expected.extend(b"xyz");
        assert_eq!(encoded, expected);
    }

    #[test]
    fn damage_is_an_error_with_its_position() {
        let tenant = TenantId::new("team-a").unwrap();
        let encoded = encode(&tenant, &[fragment(1, 1, b"hello"), fragment(2, 2, b"")]);
        for cut in 0..encoded.len() {
            assert!(
                decode(Bytes::copy_from_slice(&encoded[..cut])).is_err(),
                "{cut}"
            );
        }
        let mut extra = encoded.clone();
        extra.push(0);
        assert_eq!(decode(Bytes::from(extra)), Err(RecordError::Trailing(1)));
        let mut old = encoded.clone();
        old[0] = 1;
        assert_eq!(decode(Bytes::from(old)), Err(RecordError::Version(1)));
        // A count of four billion fragments in a short record is refused without allocating.
        let mut huge = encode(&tenant, &[]);
        let at = huge.len() - 4;
        huge[at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode(Bytes::from(huge)),
            Err(RecordError::Truncated {
                what: "fragments",
                ..
            })
        ));
        let mut bad_tenant = encoded;
        bad_tenant[3] = b'/';
        assert!(matches!(
            decode(Bytes::from(bad_tenant)),
            Err(RecordError::Tenant(_))
        ));
    }

    proptest! {
        #[test]
        fn records_round_trip(
            tenant in "[a-zA-Z0-9_.-]{1,40}",
            fragments in proptest::collection::vec(
                (any::<[u8; 16]>(), 0usize..10_000, proptest::collection::vec(any::<u8>(), 0..300)),
                0..20,
            ),
        ) {
            // `.`, `..` and `_cluster` match the pattern but are reserved.
            prop_assume!(TenantId::new(&tenant).is_ok());
            let tenant = TenantId::new(&tenant).unwrap();
            let fragments: Vec<EncodedFragment> = fragments
                .into_iter()
                .map(|(id, spans, body)| EncodedFragment {
                    trace_id: TraceId(id),
                    span_count: spans,
                    bytes: Bytes::from(body),
                })
                .collect();
            let encoded = encode(&tenant, &fragments);
            let expected: usize = HEADER_BYTES + tenant.as_str().len()
                + fragments.iter().map(fragment_size).sum::<usize>();
            prop_assert_eq!(encoded.len(), expected);
            let (decoded_tenant, decoded) = decode(Bytes::from(encoded)).unwrap();
            prop_assert_eq!(decoded_tenant, tenant);
            prop_assert_eq!(decoded, fragments);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(Bytes::from(bytes));
        }
    }
}
