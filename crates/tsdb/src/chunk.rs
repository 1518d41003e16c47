//! Compressed sample chunks. Format, for `n` samples in time order:
//! `varint(n)`, `zigzag-varint(t0)`, `u64-le(v0 bits)`, then per sample `zigzag-varint` of the
//! delta of timestamp deltas (0 for a regular scrape interval: one byte) and the value XOR'd with
//! the previous one: a `0` byte when unchanged, else `1 + trailing zero count` followed by
//! `varint(xor >> trailing zeros)`. Counters that change in a few high mantissa bits cost 2–4
//! bytes, so a regular counter sample takes ~3–5 bytes instead of 16.

use crate::varint::{self, unzigzag, zigzag, Cursor};

pub const SAMPLES_PER_CHUNK: usize = 120;

pub fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + samples.len() * 4);
    varint::put(&mut out, samples.len() as u64);
    let Some(&(first_t, first_v)) = samples.first() else {
        return out;
    };
    varint::put(&mut out, zigzag(first_t));
    out.extend_from_slice(&first_v.to_bits().to_le_bytes());
    let (mut previous_t, mut previous_delta, mut previous_bits) =
        (first_t, 0i64, first_v.to_bits());
    for &(t, v) in &samples[1..] {
        let delta = t - previous_t;
        varint::put(&mut out, zigzag(delta - previous_delta));
        let xor = v.to_bits() ^ previous_bits;
        if xor == 0 {
            out.push(0);
        } else {
            let trailing = xor.trailing_zeros();
            out.push(trailing as u8 + 1);
            varint::put(&mut out, xor >> trailing);
        }
        (previous_t, previous_delta, previous_bits) = (t, delta, v.to_bits());
    }
    out
}

/// Decodes a chunk written by [`encode`], appending to `out`; `None` if it is corrupt.
pub fn decode_into(bytes: &[u8], out: &mut Vec<(i64, f64)>) -> Option<()> {
    let mut reader = Cursor::new(bytes);
    let count = usize::try_from(reader.varint()?).ok()?;
    if count == 0 {
        return Some(());
    }
    // Every sample takes at least one byte: a larger count is damage, not a reason to reserve.
    if count > bytes.len() {
        return None;
    }
    let first_t = unzigzag(reader.varint()?);
    let bits_bytes = reader.take(8)?;
    let mut bits = u64::from_le_bytes(bits_bytes.try_into().ok()?);
    out.reserve(count);
    out.push((first_t, f64::from_bits(bits)));
    let (mut t, mut delta) = (first_t, 0i64);
    for _ in 1..count {
        delta = delta.wrapping_add(unzigzag(reader.varint()?));
        t = t.wrapping_add(delta);
        let tag = reader.byte()?;
        if tag != 0 {
            let trailing = u32::from(tag - 1);
            if trailing >= 64 {
                return None;
            }
            bits ^= reader.varint()? << trailing;
        }
        out.push((t, f64::from_bits(bits)));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn regular_counter_is_small() {
        let samples: Vec<(i64, f64)> = (0..120)
            .map(|i| (1_700_000_000_000 + i * 15_000, (i * 37) as f64))
            .collect();
        let bytes = encode(&samples);
        assert!(bytes.len() < 120 * 5, "{} bytes", bytes.len());
        let mut decoded = Vec::new();
        decode_into(&bytes, &mut decoded).unwrap();
        assert_eq!(decoded, samples);
    }

    #[test]
    fn corrupt_chunk_is_refused_not_a_panic() {
        let bytes = encode(&[(1, 1.0), (2, 2.0), (3, 4.5)]);
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            assert!(decode_into(&bytes[..cut], &mut out).is_none() || cut == 0 && bytes.is_empty());
        }
    }

    proptest! {
        #[test]
        fn round_trip(start in -1_000_000_000i64..1_000_000_000_000, steps in proptest::collection::vec((1i64..100_000, any::<f64>()), 0..200)) {
            let mut t = start;
            let samples: Vec<(i64, f64)> = steps.iter().map(|&(d, v)| { t += d; (t, v) }).collect();
            let mut decoded = Vec::new();
            decode_into(&encode(&samples), &mut decoded).unwrap();
            prop_assert_eq!(decoded.len(), samples.len());
            for (a, b) in decoded.iter().zip(&samples) {
                prop_assert_eq!(a.0, b.0);
                prop_assert_eq!(a.1.to_bits(), b.1.to_bits());
            }
        }
    }
}
