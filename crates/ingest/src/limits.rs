//! Per-tenant ingestion limits. The rate limiter is a token bucket per tenant: in bytes for spans
//! (Tempo's `rate_limit_bytes` and `burst_size_bytes`, local strategy), in samples for metrics
//! (Mimir's `ingestion_rate` and `ingestion_burst_size`). Buckets are independent, so one
//! tenant exhausting its budget never delays another. The reasons are the label values of
//! `andante_discarded_spans_total{reason}`, spelled as Tempo spells them.

use std::collections::HashMap;
use std::time::Instant;

use andante_model::TenantId;
use parking_lot::Mutex;

/// Why spans were refused; `as_str` is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    RateLimited,
    TraceTooLarge,
    LiveTracesExceeded,
    Invalid,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::RateLimited => "rate_limited",
            RefusalReason::TraceTooLarge => "trace_too_large",
            RefusalReason::LiveTracesExceeded => "live_traces_exceeded",
            RefusalReason::Invalid => "invalid",
        }
    }
}

/// The per-tenant limits (same for every tenant until per-tenant overrides exist).
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    pub rate_limit_bytes: u64,
    pub burst_size_bytes: u64,
    pub max_bytes_per_trace: u64,
    pub max_live_traces: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            rate_limit_bytes: 30_000_000,
            burst_size_bytes: 30_000_000,
            max_bytes_per_trace: 5_000_000,
            max_live_traces: 10_000,
        }
    }
}

struct Bucket {
    tokens: f64,
    refilled_at: Instant,
}

/// A token bucket per tenant, in whatever unit its caller counts (bytes, samples).
pub struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<TenantId, Bucket>>,
}

impl RateLimiter {
    /// The span limiter, in bytes.
    pub fn new(limits: &IngestLimits) -> Self {
        RateLimiter::per_second(limits.rate_limit_bytes, limits.burst_size_bytes)
    }

    pub fn per_second(rate: u64, burst: u64) -> Self {
        RateLimiter {
            rate_per_sec: rate as f64,
            burst: burst as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The refill rate per second and the bucket's size, for refusal messages.
    pub fn rate_and_burst(&self) -> (f64, f64) {
        (self.rate_per_sec, self.burst)
    }

    /// Takes `amount` from the tenant's bucket, or refuses without taking anything. A request
    /// larger than the whole burst can never pass, which is what the operator configured.
    pub fn try_acquire(&self, tenant: &TenantId, amount: u64) -> bool {
        self.try_acquire_at(tenant, amount, Instant::now())
    }

    fn try_acquire_at(&self, tenant: &TenantId, amount: u64, now: Instant) -> bool {
        let mut buckets = self.buckets.lock();
        let bucket = buckets.entry(tenant.clone()).or_insert_with(|| Bucket {
            tokens: self.burst,
            refilled_at: now,
        });
        let elapsed_secs = now
            .saturating_duration_since(bucket.refilled_at)
            .as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed_secs * self.rate_per_sec).min(self.burst);
        bucket.refilled_at = now;
        if bucket.tokens >= amount as f64 {
            bucket.tokens -= amount as f64;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_refill_at_the_rate_and_are_per_tenant() {
        let limits = IngestLimits {
            rate_limit_bytes: 100,
            burst_size_bytes: 200,
            ..Default::default()
        };
        let limiter = RateLimiter::new(&limits);
        let a = TenantId::new("a").expect("valid");
        let b = TenantId::new("b").expect("valid");
        let start = Instant::now();
        assert!(limiter.try_acquire_at(&a, 150, start));
        assert!(!limiter.try_acquire_at(&a, 100, start));
        assert!(
            limiter.try_acquire_at(&b, 200, start),
            "tenant b has its own bucket"
        );
        assert!(limiter.try_acquire_at(&a, 100, start + Duration::from_millis(500)));
        assert!(
            !limiter.try_acquire_at(&a, 300, start + Duration::from_secs(100)),
            "over burst"
        );
    }
}
