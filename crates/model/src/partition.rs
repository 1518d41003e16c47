//! Which partition a trace's spans go to: jump consistent hash (Lamping and Veach, 2014) of
//! FNV-1a-64 over the tenant and the trace ID. Every fragment of a trace lands on one partition,
//! so one consumer assembles the whole trace, and growing the partition count moves only about
//! 1/P of new traces. The function is part of the deployment's contract (distributors of two
//! versions must agree), so golden vectors pin it.

use crate::TraceId;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME)
    })
}

/// The partition of `trace_id` of `tenant` among `partitions` (at least 1).
pub fn partition_of(tenant: &str, trace_id: &TraceId, partitions: u32) -> u32 {
    // The separator keeps ("ab", id) and ("a", "b" + id) apart: a tenant ID never holds 0xff.
    let hash = fnv1a(
        fnv1a(fnv1a(FNV_OFFSET, tenant.as_bytes()), &[0xff]),
        &trace_id.0,
    );
    jump(hash, partitions.max(1))
}

/// Jump consistent hash: a bucket in `0..buckets` for `key`.
fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut bucket, mut next): (i64, i64) = (-1, 0);
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    bucket as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seed: u64) -> TraceId {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&seed.to_be_bytes());
        bytes[8..].copy_from_slice(&seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
        TraceId(bytes)
    }

    #[test]
    fn golden_vectors() {
        // Computed once and pinned: a change here re-routes traces between deployed versions.
        let cases = [
            ("single-tenant", 1u64, 32u32),
            ("single-tenant", 2, 32),
            ("team-a", 1, 32),
            ("team-a", 1, 8),
            ("team-a", 12345, 1),
        ];
        let got: Vec<u32> = cases
            .iter()
            .map(|(tenant, seed, partitions)| partition_of(tenant, &id(*seed), *partitions))
            .collect();
        assert_eq!(got, GOLDEN);
    }

    const GOLDEN: [u32; 5] = [8, 13, 28, 0, 0];

    #[test]
    fn the_hash_spreads_traces_evenly_and_moves_few_when_partitions_grow() {
        let traces = 64_000u64;
        let mut counts = [0u32; 8];
        let mut moved = 0;
        for seed in 0..traces {
            let p8 = partition_of("t", &id(seed), 8);
            counts[p8 as usize] += 1;
            let p9 = partition_of("t", &id(seed), 9);
            if p9 != p8 {
                // Jump hash only ever moves a key to the new bucket.
                assert_eq!(p9, 8);
                moved += 1;
            }
        }
        for count in counts {
            assert!((7_000..9_000).contains(&count), "{counts:?}");
        }
        // About 1/9 of keys move to the ninth partition.
        assert!((6_000..8_300).contains(&moved), "{moved}");
    }

    #[test]
    fn tenants_are_hashed_apart() {
        let differs = (0..1000u64)
            .filter(|seed| partition_of("a", &id(*seed), 16) != partition_of("b", &id(*seed), 16))
            .count();
        assert!(differs > 800, "{differs}");
    }
}
