//! Rate limits for what the pipeline sends on its own initiative: triggers to the control plane
//! (redirect, TEIB miss, neighbour miss) and ICMP errors. Fixed-size, allocation-free, per worker.

/// Lets through at most one event per key per `interval_ns`, remembering the last `SLOTS` keys (a
/// collision forgets the older key, which can only let an extra event through, never suppress one for
/// longer than the interval).
#[derive(Debug)]
pub struct PerKey {
    interval_ns: u64,
    slots: Box<[(u64, u64)]>,
}

impl PerKey {
    const SLOTS: usize = 1024;

    /// A limiter allowing one event per key per `interval_ns`.
    pub fn new(interval_ns: u64) -> Self {
        Self { interval_ns, slots: vec![(u64::MAX, 0); Self::SLOTS].into_boxed_slice() }
    }

    /// Whether an event for `key` may go now; if so, records it.
    pub fn allow(&mut self, key: u64, now_ns: u64) -> bool {
        // Fibonacci hashing spreads keys that differ only in low bits (neighbouring addresses).
        let slot = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize % Self::SLOTS;
        let (k, last) = &mut self.slots[slot];
        if *k == key && now_ns.saturating_sub(*last) < self.interval_ns {
            return false;
        }
        *k = key;
        *last = now_ns;
        true
    }
}

/// A token bucket: `rate` events per second, bursts of up to `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate_per_s: u64,
    burst: u64,
    tokens: u64,
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: u64, burst: u64) -> Self {
        Self { rate_per_s, burst, tokens: burst, last_ns: 0 }
    }

    /// Takes a token if one is left.
    pub fn allow(&mut self, now_ns: u64) -> bool {
        let elapsed = now_ns.saturating_sub(self.last_ns);
        let refill = elapsed.saturating_mul(self.rate_per_s) / 1_000_000_000;
        if refill > 0 {
            self.tokens = (self.tokens + refill).min(self.burst);
            self.last_ns = now_ns;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_per_key_per_interval() {
        let mut l = PerKey::new(1_000);
        assert!(l.allow(7, 10));
        assert!(!l.allow(7, 500));
        assert!(l.allow(8, 500), "another key is not held back");
        assert!(!l.allow(7, 1_009));
        assert!(l.allow(7, 1_010));
    }

    #[test]
    fn bucket_refills_at_rate() {
        let mut b = TokenBucket::new(10, 2);
        assert!(b.allow(0));
        assert!(b.allow(0));
        assert!(!b.allow(0));
        assert!(!b.allow(50_000_000), "half a token is not a token");
        assert!(b.allow(100_000_000));
        assert!(!b.allow(100_000_000));
    }
}
