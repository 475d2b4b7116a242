//! Per-worker limits on the ICMP errors the data plane sends.
//!
//! A node MUST limit the rate of the ICMPv6 errors it originates (RFC 4443
//! §2.4 (f)), and a router SHOULD limit its ICMPv4 errors (RFC 1812
//! §4.3.2.8): a flood of oversized packets must not turn the appliance into
//! a generator of as many Packet Too Big messages toward forged sources.
//! The errors a DSR service originates (Packet Too Big, Fragmentation
//! Needed) pass one [`WindowLimit`] per worker; the errors it translates
//! (relayed one for one between a client and a backend) pass another,
//! off by default.
//!
//! The limit counts errors per second of the worker's session clock (whole
//! seconds since start): at most `per_second` errors in any one second,
//! none carried over, so a burst at the turn of a second sends at most
//! twice the rate. The appliance-wide rate of the configuration is split
//! evenly over the workers (rounded up, at least one each), as every worker
//! sends its own. Checking costs a comparison and an increment, no atomics:
//! each worker owns its limits.

/// At most `per_second` events per second of the clock; 0 = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    per_second: u32,
    second: u32,
    used: u32,
}

impl WindowLimit {
    /// A limit of `per_second` events per second (0: unlimited).
    pub fn new(per_second: u32) -> Self {
        WindowLimit {
            per_second,
            second: 0,
            used: 0,
        }
    }

    /// One worker's share of an appliance-wide rate of `total` per second
    /// over `workers` workers: rounded up, at least 1 unless `total` is 0.
    pub fn share(total: u32, workers: usize) -> u32 {
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        total.div_ceil(workers)
    }

    /// Changes the rate (a reload), keeping this second's count.
    pub fn set_rate(&mut self, per_second: u32) {
        self.per_second = per_second;
    }

    /// The configured rate (0: unlimited).
    pub fn rate(&self) -> u32 {
        self.per_second
    }

    /// True (and counted) if one more event fits in second `now`.
    #[inline]
    pub fn allow(&mut self, now: u32) -> bool {
        if self.per_second == 0 {
            return true;
        }
        if now != self.second {
            self.second = now;
            self.used = 0;
        }
        if self.used >= self.per_second {
            return false;
        }
        self.used += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_rate_in_each_second() {
        let mut l = WindowLimit::new(3);
        let sent: Vec<bool> = (0..5).map(|_| l.allow(7)).collect();
        assert_eq!(sent, [true, true, true, false, false]);
        // A new second starts afresh; nothing is carried over.
        assert!(l.allow(8));
        assert_eq!((0..10).filter(|_| l.allow(8)).count(), 2);
        // The clock going back (it wraps after 136 years) is a new second too.
        assert!(l.allow(2));
    }

    #[test]
    fn zero_is_unlimited() {
        let mut l = WindowLimit::new(0);
        assert!((0..100_000).all(|_| l.allow(1)));
    }

    #[test]
    fn shares_round_up() {
        assert_eq!(WindowLimit::share(1000, 1), 1000);
        assert_eq!(WindowLimit::share(1000, 3), 334);
        assert_eq!(WindowLimit::share(1, 4), 1);
        assert_eq!(WindowLimit::share(0, 4), 0);
        assert_eq!(WindowLimit::share(5, 0), 5);
    }

    #[test]
    fn a_new_rate_applies_at_once() {
        let mut l = WindowLimit::new(1);
        assert!(l.allow(1));
        assert!(!l.allow(1));
        l.set_rate(2);
        assert!(l.allow(1));
        assert!(!l.allow(1));
        l.set_rate(0);
        assert!(l.allow(1));
    }
}
