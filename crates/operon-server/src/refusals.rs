//! Unauthenticated refusals per source address: audited one by one up to a
//! rate, then answered 429 and counted into one summary record per address
//! and period, so a flood of bad tokens cannot grow the audit trail without
//! bound.
//!
//! Only refusals of *unknown* callers (no token, a token that matches
//! nothing) are limited. A refusal of a known principal (revoked or expired
//! token, disabled user) names someone and stays audited one by one.
//!
//! The limiter is a token bucket per address (`burst` refusals at once,
//! refilled at `per_minute`), a pure structure with the time passed in. The
//! number of addresses tracked is bounded; past it, new addresses share one
//! bucket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// How many unauthenticated refusals one address gets audited individually.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefusalRate {
    /// Refusals allowed at once.
    pub burst: u32,
    /// Refill rate, per minute.
    pub per_minute: u32,
}

impl Default for RefusalRate {
    /// 200 at once, then 2 a second: more than any honest client produces,
    /// while a flood costs at most 2 audit records a second per address (plus
    /// one summary a minute).
    fn default() -> Self {
        RefusalRate {
            burst: 200,
            per_minute: 120,
        }
    }
}

/// What to do with one unauthenticated refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer 401 and audit it.
    Audit,
    /// Answer 429; it is counted into the address's next summary.
    Suppress,
}

/// Refusals not audited one by one, from one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodSummary {
    /// `None` when the address was not known or the table was full.
    pub source: Option<IpAddr>,
    pub count: u64,
    pub first_at: i64,
    pub last_at: i64,
}

/// Addresses tracked at most; beyond, new addresses share one bucket.
const MAX_SOURCES: usize = 65_536;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated_at: i64,
    suppressed: u64,
    first_suppressed_at: i64,
    last_suppressed_at: i64,
}

/// The per-address limiter.
#[derive(Debug)]
pub struct RefusalLimiter {
    rate: RefusalRate,
    buckets: Mutex<HashMap<Option<IpAddr>, Bucket>>,
}

impl RefusalLimiter {
    pub fn new(rate: RefusalRate) -> Self {
        RefusalLimiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds a suppressed caller should wait before one more refusal is audited.
    pub fn retry_after_secs(&self) -> u64 {
        60u64.div_ceil(u64::from(self.rate.per_minute.max(1)))
    }

    /// Decide for one refusal from `source` at `now` (ms).
    pub fn check(&self, source: Option<IpAddr>, now: i64) -> Verdict {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let key = if buckets.len() >= MAX_SOURCES && !buckets.contains_key(&source) {
            None
        } else {
            source
        };
        let burst = f64::from(self.rate.burst);
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated_at: now,
            suppressed: 0,
            first_suppressed_at: 0,
            last_suppressed_at: 0,
        });
        let elapsed_min = (now - bucket.updated_at).max(0) as f64 / 60_000.0;
        bucket.tokens = (bucket.tokens + elapsed_min * f64::from(self.rate.per_minute)).min(burst);
        bucket.updated_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Audit;
        }
        if bucket.suppressed == 0 {
            bucket.first_suppressed_at = now;
        }
        bucket.suppressed += 1;
        bucket.last_suppressed_at = now;
        Verdict::Suppress
    }

    /// The counts suppressed since the last call, one per address, and
    /// forget addresses whose bucket is full again (nothing to remember).
    pub fn take_summaries(&self, now: i64) -> Vec<FloodSummary> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let burst = f64::from(self.rate.burst);
        let per_minute = f64::from(self.rate.per_minute);
        buckets.retain(|source, b| {
            if b.suppressed > 0 {
                out.push(FloodSummary {
                    source: *source,
                    count: b.suppressed,
                    first_at: b.first_suppressed_at,
                    last_at: b.last_suppressed_at,
                });
                b.suppressed = 0;
            }
            let refilled = b.tokens + (now - b.updated_at).max(0) as f64 / 60_000.0 * per_minute;
            refilled < burst
        });
        out.sort_by_key(|s| s.source);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([127, 0, 0, last]))
    }

    fn limiter(burst: u32, per_minute: u32) -> RefusalLimiter {
        RefusalLimiter::new(RefusalRate { burst, per_minute })
    }

    #[test]
    fn a_burst_is_audited_then_suppressed_and_summarised_once() {
        let l = limiter(3, 60);
        let verdicts: Vec<Verdict> = (0..5).map(|i| l.check(ip(1), 1000 + i)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Audit,
                Verdict::Audit,
                Verdict::Audit,
                Verdict::Suppress,
                Verdict::Suppress
            ]
        );
        assert_eq!(
            l.take_summaries(2000),
            [FloodSummary {
                source: ip(1),
                count: 2,
                first_at: 1003,
                last_at: 1004
            }]
        );
        assert!(l.take_summaries(2000).is_empty(), "counted once");
    }

    #[test]
    fn addresses_have_their_own_buckets() {
        let l = limiter(1, 60);
        assert_eq!(l.check(ip(1), 0), Verdict::Audit);
        assert_eq!(l.check(ip(1), 0), Verdict::Suppress);
        assert_eq!(l.check(ip(2), 0), Verdict::Audit);
        assert_eq!(l.check(None, 0), Verdict::Audit);
    }

    #[test]
    fn the_bucket_refills_at_the_rate() {
        let l = limiter(2, 60); // one a second
        assert_eq!(l.check(ip(1), 0), Verdict::Audit);
        assert_eq!(l.check(ip(1), 0), Verdict::Audit);
        assert_eq!(l.check(ip(1), 500), Verdict::Suppress);
        assert_eq!(l.check(ip(1), 1000), Verdict::Audit);
        assert_eq!(l.check(ip(1), 1000), Verdict::Suppress);
        // Never more than the burst, however long the pause.
        let audited = (0..10)
            .filter(|_| l.check(ip(1), 3_600_000) == Verdict::Audit)
            .count();
        assert_eq!(audited, 2);
        assert_eq!(l.retry_after_secs(), 1);
        assert_eq!(limiter(1, 0).retry_after_secs(), 60);
    }

    #[test]
    fn idle_full_buckets_are_forgotten() {
        let l = limiter(2, 60);
        l.check(ip(1), 0);
        l.check(ip(2), 0);
        l.check(ip(2), 0);
        l.take_summaries(1500); // ip 1 is full again, ip 2 is not
        assert_eq!(l.buckets.lock().unwrap().len(), 1);
        l.take_summaries(10_000);
        assert!(l.buckets.lock().unwrap().is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let l = limiter(1, 1);
        for i in 0..(MAX_SOURCES as u32 + 10) {
            l.check(Some(IpAddr::from(i.to_be_bytes())), 0);
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_SOURCES + 1);
        // Past the bound, new addresses share the overflow bucket.
        let summaries = l.take_summaries(0);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].source, None);
        assert_eq!(summaries[0].count, 9);
    }
}
