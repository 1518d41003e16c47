//! Counters of the live store, read by the server's `/metrics` handler. Plain atomics so this
//! crate does not depend on a metrics library and the hot path pays one relaxed add.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use andante_ingest::RefusalReason;
use parking_lot::Mutex;

#[derive(Default)]
pub struct LiveMetrics {
    pub spans_received: AtomicU64,
    pub traces_cut: AtomicU64,
    pub blocks_flushed: AtomicU64,
    pub block_flush_failures: AtomicU64,
    pub wal_segments_removed: AtomicU64,
    pub wal_replayed_records: AtomicU64,
    /// Damaged WAL regions replay skipped (each at least one lost record), since this start.
    pub wal_corrupt_regions: AtomicU64,
    /// Bytes of those regions.
    pub wal_corrupt_bytes: AtomicU64,
    /// Bytes of torn tails replay cut off segments.
    pub wal_truncated_bytes: AtomicU64,
    discarded: Mutex<HashMap<(String, RefusalReason), u64>>,
}

impl LiveMetrics {
    pub fn add_received(&self, spans: usize) {
        self.spans_received
            .fetch_add(spans as u64, Ordering::Relaxed);
    }

    pub fn add_discarded(&self, tenant: &str, reason: RefusalReason, spans: usize) {
        if spans > 0 {
            *self
                .discarded
                .lock()
                .entry((tenant.to_owned(), reason))
                .or_default() += spans as u64;
        }
    }

    /// `(tenant, reason, spans)` for every tenant and reason seen so far.
    pub fn discarded(&self) -> Vec<(String, RefusalReason, u64)> {
        self.discarded
            .lock()
            .iter()
            .map(|((tenant, reason), count)| (tenant.clone(), *reason, *count))
            .collect()
    }
}
