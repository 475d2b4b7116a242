//! Per-worker counters: plain integers on the packet path, published to the
//! management core in bulk.
//!
//! A worker increments fields of its own [`WorkerCounters`] (ordinary `u64`s,
//! no atomics, no sharing). Every few hundred loop iterations it copies them
//! into its [`SharedCounters`] with relaxed stores — one writer per cache
//! line, so the copy is a handful of plain moves on x86 — and the management
//! core reads them with relaxed loads once per stats interval. A counter may
//! lag by one publication; it never tears, and nothing on the packet path
//! waits for the reader.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal ),+ $(,)?) => {
        /// A per-worker counter; the discriminant indexes the counter array.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum Counter {
            $( $(#[$doc])* $variant, )+
        }

        impl Counter {
            /// Every counter, in index order.
            pub const ALL: &'static [Counter] = &[$(Counter::$variant),+];
            /// How many counters there are.
            pub const COUNT: usize = Counter::ALL.len();

            /// Whether the value is a level (exported as a gauge), not a count.
            pub const fn is_gauge(self) -> bool {
                matches!(
                    self,
                    Counter::Sessions
                        | Counter::Aliases
                        | Counter::Connections
                        | Counter::NeighborHoldPackets
                )
            }

            /// The metric-friendly name.
            pub const fn name(self) -> &'static str {
                match self { $(Counter::$variant => $name),+ }
            }
        }
    };
}

counters! {
    /// Packets received from RX queues.
    RxPackets => "rx_packets",
    /// Bytes received.
    RxBytes => "rx_bytes",
    /// Packets accepted by a TX queue.
    TxPackets => "tx_packets",
    /// Bytes accepted by a TX queue.
    TxBytes => "tx_bytes",
    /// Packets a full TX queue refused (freed).
    TxFull => "tx_full_drops",
    /// Packets with no output configured (freed).
    NoRoute => "no_route_drops",
    /// Loop iterations whose polls found nothing.
    IdlePolls => "idle_polls",
    /// Loop iterations that received something.
    BusyPolls => "busy_polls",
    /// Packets sent to a backend.
    ToBackend => "to_backend",
    /// Backend replies translated back to the VIP.
    Replies => "replies",
    /// ICMP errors passed on: to clients about full-NAT packets, to
    /// backends about replies (full NAT, DNAT, DSR).
    IcmpErrorsTranslated => "icmp_errors_translated",
    /// DSR: Packet Too Big / Fragmentation Needed sent to clients whose
    /// packets would not fit the server side's MTU once encapsulated.
    IcmpTooBigSent => "icmp_too_big_sent",
    /// DSR: Packet Too Big / Fragmentation Needed sent to clients on a
    /// server-side router's report about an encapsulated packet.
    IcmpTunnelTooBig => "icmp_tunnel_too_big",
    /// DSR: IPv4 packets without Don't Fragment sent as two outer fragments.
    EncapFragmented => "encap_fragmented",
    /// Packets forwarded unchanged through `forward_to`.
    RawForwarded => "raw_forwarded",
    /// Packets handed to the core owning their shard.
    HandoffsOut => "handoffs_out",
    /// Packets received from other cores' handoffs.
    HandoffsIn => "handoffs_in",
    /// New sessions.
    SessionsCreated => "sessions_created",
    /// Expired sessions.
    SessionsExpired => "sessions_expired",
    /// Live sessions (a gauge).
    Sessions => "sessions",
    /// Next hops resolved to derived MACs in replay mode (would-be ARP/ND requests).
    NeighborRequestsSuppressed => "neighbor_requests_suppressed",
    /// ARP requests and neighbour solicitations answered.
    NeighborAnswers => "neighbor_answers",
    /// Neighbour bindings learned from ARP/NS/NA.
    NeighborsLearned => "neighbors_learned",
    /// ARP requests and neighbour solicitations sent for next hops.
    NeighborRequests => "neighbor_requests",
    /// Packets held while their next hop was resolved.
    NeighborHeld => "neighbor_held",
    /// Held packets sent once their next hop answered.
    NeighborReleased => "neighbor_released",
    /// Packets held right now (a gauge).
    NeighborHoldPackets => "neighbor_hold_packets",
    /// Binding updates that created or removed a care-of alias.
    BindingUpdates => "binding_updates",
    /// Home-agent notifications accepted (aliases created or removed).
    NotificationsAccepted => "notifications_accepted",
    /// Packets whose care-of address resolved to a home address.
    AliasHits => "alias_hits",
    /// Live care-of aliases on the worker (a gauge).
    Aliases => "aliases",
    /// Alias updates lost because the outbox was full.
    AliasOutboxFull => "alias_outbox_full",
    /// Alias or neighbour updates lost because another worker's command ring was full.
    CommandRingFull => "command_ring_full",
    /// Aliases refused by a full alias table.
    AliasTableFull => "alias_table_full",
    /// Full-NAT connections opened.
    ConnectionsCreated => "connections_created",
    /// Full-NAT connections expired (their local ports freed).
    ConnectionsExpired => "connections_expired",
    /// Live full-NAT connections on the worker (a gauge).
    Connections => "connections",
    /// Frames `roamlb replay --in-server` handed to the worker as received
    /// on the server-side port.
    Injected => "injected",
}

/// A worker's own counters. Cache-line aligned so neighbouring workers'
/// structures never share a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(align(64))]
pub struct WorkerCounters {
    values: [u64; Counter::COUNT],
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            values: [0; Counter::COUNT],
        }
    }
}

impl WorkerCounters {
    /// Adds `n` to counter `c`.
    #[inline(always)]
    pub fn add(&mut self, c: Counter, n: u64) {
        self.values[c as usize] = self.values[c as usize].wrapping_add(n);
    }

    /// Sets counter `c` (for values the worker keeps elsewhere, and gauges).
    #[inline(always)]
    pub fn set(&mut self, c: Counter, v: u64) {
        self.values[c as usize] = v;
    }

    /// Adds one to counter `c`.
    #[inline(always)]
    pub fn inc(&mut self, c: Counter) {
        self.add(c, 1);
    }

    /// The value of `c`.
    pub fn get(&self, c: Counter) -> u64 {
        self.values[c as usize]
    }

    /// Adds every counter of `other` (aggregation).
    pub fn accumulate(&mut self, other: &WorkerCounters) {
        for (a, b) in self.values.iter_mut().zip(other.values.iter()) {
            *a = a.wrapping_add(*b);
        }
    }
}

/// The published copy of a worker's counters, read by the management core.
#[derive(Debug)]
#[repr(align(64))]
pub struct SharedCounters {
    values: [AtomicU64; Counter::COUNT],
}

impl Default for SharedCounters {
    fn default() -> Self {
        SharedCounters {
            values: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl SharedCounters {
    /// Publishes the worker's current values (called by the owning worker).
    #[inline]
    pub fn publish(&self, local: &WorkerCounters) {
        for (dst, src) in self.values.iter().zip(local.values.iter()) {
            dst.store(*src, Ordering::Relaxed);
        }
    }

    /// The last published values.
    pub fn snapshot(&self) -> WorkerCounters {
        let mut out = WorkerCounters::default();
        for (dst, src) in out.values.iter_mut().zip(self.values.iter()) {
            *dst = src.load(Ordering::Relaxed);
        }
        out
    }
}

/// A published array of counters of a length known at start-up (drop
/// reasons, per-backend packets): one writer, relaxed stores, like
/// [`SharedCounters`].
#[derive(Debug)]
pub struct PublishedArray {
    values: Box<[AtomicU64]>,
}

impl PublishedArray {
    /// `len` zeroed counters.
    pub fn new(len: usize) -> Self {
        PublishedArray {
            values: (0..len).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Stores one value (owning worker only). Out of range is ignored.
    #[inline]
    pub fn store(&self, i: usize, v: u64) {
        if let Some(a) = self.values.get(i) {
            a.store(v, Ordering::Relaxed);
        }
    }

    /// Stores a run of values from index `at`.
    #[inline]
    pub fn store_all(&self, at: usize, src: &[u64]) {
        for (i, v) in src.iter().enumerate() {
            self.store(at + i, *v);
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the array holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The published values.
    pub fn snapshot(&self) -> Vec<u64> {
        self.values
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_and_snapshot() {
        let mut w = WorkerCounters::default();
        w.inc(Counter::RxPackets);
        w.add(Counter::RxBytes, 60);
        let s = SharedCounters::default();
        assert_eq!(s.snapshot().get(Counter::RxPackets), 0);
        s.publish(&w);
        assert_eq!(s.snapshot(), w);
        let mut total = WorkerCounters::default();
        total.accumulate(&w);
        total.accumulate(&w);
        assert_eq!(total.get(Counter::RxBytes), 120);
    }

    #[test]
    fn names_are_unique_and_indexed() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Counter::COUNT);
    }

    #[test]
    fn published_array() {
        let a = PublishedArray::new(4);
        a.store_all(1, &[5, 6]);
        a.store(9, 1);
        assert_eq!(a.snapshot(), vec![0, 5, 6, 0]);
    }

    #[test]
    fn worker_counters_fill_whole_cache_lines() {
        assert_eq!(std::mem::align_of::<WorkerCounters>(), 64);
        assert_eq!(std::mem::align_of::<SharedCounters>(), 64);
    }
}
