//! A Bloom filter over the trace IDs of one block, kept in memory for every block so that a
//! trace-by-ID lookup skips almost every block without touching storage. Trace IDs are random
//! by specification, but some clients make them from counters, so they are hashed (FNV-1a,
//! two halves as the two base hashes of Kirsch–Mitzenmacher double hashing) rather than used raw.
//! The same filter holds other items by a 64-bit hash the caller computed (`values`).

use andante_model::TraceId;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    pub(crate) hash_count: u32,
    pub(crate) words: Vec<u64>,
}

fn hashes(trace_id: &TraceId) -> (u64, u64) {
    let mut first = FNV_OFFSET;
    for byte in &trace_id.0 {
        first ^= u64::from(*byte);
        first = first.wrapping_mul(FNV_PRIME);
    }
    // A second independent-enough hash: mix the first with a different odd multiplier.
    let second = (first ^ (first >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1;
    (first, second)
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Bloom {
    /// A filter sized for `expected_items` at the false-positive rate `fp_rate`.
    pub fn new(expected_items: usize, fp_rate: f64) -> Bloom {
        let items = expected_items.max(1) as f64;
        let ln2 = std::f64::consts::LN_2;
        let bits = (-(items * fp_rate.ln()) / (ln2 * ln2)).ceil().max(64.0);
        let hash_count = ((bits / items) * ln2).round().clamp(1.0, 16.0) as u32;
        Bloom {
            hash_count,
            words: vec![0; (bits as usize).div_ceil(64)],
        }
    }

    fn bit_count(&self) -> u64 {
        self.words.len() as u64 * 64
    }

    pub fn insert(&mut self, trace_id: &TraceId) {
        self.set(hashes(trace_id));
    }

    /// Inserts an item by its 64-bit hash (the caller hashed it; see `values`). Its probes are
    /// independent mixes of the hash: double hashing modulo a bit count that is not prime can
    /// land several probes on one bit for some hashes, which trace IDs tolerate at their sizes
    /// but short, similar strings did not (a measured 10 % false positives instead of 1 %).
    pub fn insert_hash(&mut self, hash: u64) {
        for bit in self.mixed_probes(hash) {
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    fn mixed_probes(&self, hash: u64) -> impl Iterator<Item = u64> {
        let bits = self.bit_count();
        (0..u64::from(self.hash_count))
            .map(move |i| splitmix(hash ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % bits)
    }

    fn set(&mut self, (first, second): (u64, u64)) {
        let bits = self.bit_count();
        for i in 0..u64::from(self.hash_count) {
            let bit = first.wrapping_add(i.wrapping_mul(second)) % bits;
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    pub fn may_contain(&self, trace_id: &TraceId) -> bool {
        self.test(hashes(trace_id))
    }

    pub fn may_contain_hash(&self, hash: u64) -> bool {
        self.mixed_probes(hash)
            .all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }

    fn test(&self, (first, second): (u64, u64)) -> bool {
        let bits = self.bit_count();
        (0..u64::from(self.hash_count)).all(|i| {
            let bit = first.wrapping_add(i.wrapping_mul(second)) % bits;
            self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }

    pub fn size_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_a_false_negative(ids in proptest::collection::vec(any::<[u8; 16]>(), 1..500)) {
            let mut bloom = Bloom::new(ids.len(), 0.01);
            for id in &ids { bloom.insert(&TraceId(*id)); }
            for id in &ids { prop_assert!(bloom.may_contain(&TraceId(*id))); }
        }
    }

    #[test]
    fn false_positive_rate_is_near_the_target() {
        let mut bloom = Bloom::new(10_000, 0.01);
        let id = |i: u64| {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&i.to_le_bytes());
            bytes[8] = 1;
            TraceId(bytes)
        };
        for i in 0..10_000 {
            bloom.insert(&id(i));
        }
        let false_positives = (10_000..110_000)
            .filter(|i| bloom.may_contain(&id(*i)))
            .count();
        // 1% of 100k is 1000; allow for sequential IDs and rounding.
        assert!(false_positives < 2000, "{false_positives} false positives");
    }
}
