//! The receive side: per-flow loss, duplicates, reordering, affinity and
//! latency from the marks of what the appliance sent toward the backends.
//!
//! Per established flow the verifier keeps the next expected sequence number,
//! a 64-bit window of the sequence numbers just below it (so a late packet
//! is told from a duplicate), and the index of the backend the flow reached
//! first; all are arrays sized once for `nodes`. The backend is the
//! destination address of the outermost IP header: the backend itself after
//! DNAT, the outer destination with encapsulating DSR. Packets of new
//! identities (flow id ≥ nodes) are counted but not tracked per flow.
//! Latency goes into a log-linear histogram (32 sub-buckets per power of
//! two, ≤ 3 % error) of fixed size.

#![forbid(unsafe_code)]

use serde::Serialize;

use super::traffic::Mark;

const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) << SUB_BITS;
const NO_BACKEND: u8 = u8::MAX;
/// Distinct backends the verifier tells apart.
pub const MAX_BACKENDS: usize = 254;

/// A fixed-size latency histogram in nanoseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB {
        v as usize
    } else {
        let e = 63 - v.leading_zeros();
        let shift = e - SUB_BITS;
        (((e - SUB_BITS + 1) as u64) << SUB_BITS | ((v >> shift) & (SUB - 1))) as usize
    }
}

fn bucket_low(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        i
    } else {
        let e = (i >> SUB_BITS) + u64::from(SUB_BITS) - 1;
        (SUB + (i & (SUB - 1))) << (e - u64::from(SUB_BITS))
    }
}

impl Histogram {
    /// Records one value.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.counts[bucket(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// The value below which a share `q` (0..1) of the samples lie (the
    /// lower bound of its bucket); 0 without samples.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_low(i).min(self.max);
            }
        }
        self.max
    }

    /// Samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest sample.
    pub fn max(&self) -> u64 {
        self.max
    }
}

/// Latency summary.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Samples.
    pub samples: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Maximum, ns.
    pub max_ns: u64,
}

/// What the receive side found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Frames received.
    pub received: u64,
    /// Frames without a mark (Binding Updates, ND/ARP, foreign traffic).
    pub unmarked: u64,
    /// Marked frames of established flows.
    pub flow_packets: u64,
    /// Marked frames of new identities.
    pub new_identity_packets: u64,
    /// Marked frames with a flow id the generator never used.
    pub unknown_flow: u64,
    /// Data packets of established flows that never arrived.
    pub lost: u64,
    /// Copies of a packet already received.
    pub duplicates: u64,
    /// Packets that arrived after a later one of their flow.
    pub reordered: u64,
    /// Packets that reached another backend than their flow's first.
    pub affinity_violations: u64,
    /// Flows with at least one such packet.
    pub flows_split: u64,
    /// Established flows seen at all.
    pub flows_seen: u64,
    /// Packets per backend (destination address), in order of first sight.
    pub backends: Vec<(String, u64)>,
    /// Latency from the mark's TSC to reception.
    pub latency: Latency,
}

/// The per-flow verifier.
#[derive(Debug)]
pub struct Verifier {
    nodes: u32,
    max_flow: u32,
    expected: Vec<u32>,
    window: Vec<u64>,
    backend: Vec<u8>,
    split: Vec<bool>,
    backends: Vec<[u8; 16]>,
    backend_packets: Vec<u64>,
    ns_per_tick: f64,
    hist: Histogram,
    r: VerifyReport,
}

impl Verifier {
    /// A verifier for `nodes` established flows, new identities up to
    /// `max_flow`, and a TSC of `tsc_hz` (0: no latency).
    pub fn new(nodes: u32, max_flow: u32, tsc_hz: u64) -> Verifier {
        let n = nodes as usize;
        Verifier {
            nodes,
            max_flow,
            expected: vec![0; n],
            window: vec![0; n],
            backend: vec![NO_BACKEND; n],
            split: vec![false; n],
            backends: Vec::with_capacity(MAX_BACKENDS),
            backend_packets: Vec::with_capacity(MAX_BACKENDS),
            ns_per_tick: if tsc_hz == 0 {
                0.0
            } else {
                1e9 / tsc_hz as f64
            },
            hist: Histogram::default(),
            r: VerifyReport::default(),
        }
    }

    /// The destination address of the outermost IP header (IPv4 as
    /// v4-mapped), if the frame has one.
    #[inline]
    fn destination(f: &[u8]) -> Option<[u8; 16]> {
        let et = u16::from_be_bytes([*f.get(12)?, *f.get(13)?]);
        let mut a = [0u8; 16];
        match et {
            0x86dd => a.copy_from_slice(f.get(38..54)?),
            0x0800 => {
                a[10] = 0xff;
                a[11] = 0xff;
                a[12..].copy_from_slice(f.get(30..34)?);
            }
            _ => return None,
        }
        Some(a)
    }

    #[inline]
    fn backend_index(&mut self, dst: [u8; 16]) -> u8 {
        if let Some(i) = self.backends.iter().position(|b| *b == dst) {
            self.backend_packets[i] += 1;
            return i as u8;
        }
        if self.backends.len() == MAX_BACKENDS {
            return NO_BACKEND;
        }
        self.backends.push(dst);
        self.backend_packets.push(1);
        (self.backends.len() - 1) as u8
    }

    /// Accounts one received frame at TSC `now`.
    #[inline]
    pub fn on_frame(&mut self, f: &[u8], now: u64) {
        self.r.received += 1;
        let (Some(m), Some(dst)) = (Mark::parse(f), Self::destination(f)) else {
            self.r.unmarked += 1;
            return;
        };
        if m.flow >= self.max_flow {
            self.r.unknown_flow += 1;
            return;
        }
        if self.ns_per_tick > 0.0 {
            let d = now.wrapping_sub(m.tsc48) & 0xffff_ffff_ffff;
            self.hist.record((d as f64 * self.ns_per_tick) as u64);
        }
        let b = self.backend_index(dst);
        if m.flow >= self.nodes {
            self.r.new_identity_packets += 1;
            return;
        }
        self.r.flow_packets += 1;
        let i = m.flow as usize;
        if self.backend[i] == NO_BACKEND {
            self.backend[i] = b;
            self.r.flows_seen += 1;
        } else if self.backend[i] != b {
            self.r.affinity_violations += 1;
            if !self.split[i] {
                self.split[i] = true;
                self.r.flows_split += 1;
            }
        }
        let exp = self.expected[i];
        if m.seq >= exp {
            // In order, or after a gap: shift the window past the gap.
            let shift = u64::from(m.seq - exp) + 1;
            let w = self.window[i];
            self.window[i] = if shift >= 64 { 0 } else { w << shift } | 1;
            self.expected[i] = m.seq.wrapping_add(1);
        } else {
            let back = u64::from(exp - 1 - m.seq);
            if back < 64 {
                let bit = 1u64 << back;
                if self.window[i] & bit != 0 {
                    self.r.duplicates += 1;
                } else {
                    self.window[i] |= bit;
                    self.r.reordered += 1;
                }
            } else {
                // Too old to tell; count it as late.
                self.r.reordered += 1;
            }
        }
    }

    /// The report, given how many data packets each established flow sent.
    pub fn report(&self, sent_per_flow: &[u32]) -> VerifyReport {
        let mut r = self.r.clone();
        let sent: u64 = sent_per_flow.iter().map(|&s| u64::from(s)).sum();
        let unique = r.flow_packets - r.duplicates;
        r.lost = sent.saturating_sub(unique);
        r.backends = self
            .backends
            .iter()
            .zip(&self.backend_packets)
            .map(|(a, n)| {
                let ip = std::net::Ipv6Addr::from(*a);
                let s = match ip.to_ipv4_mapped() {
                    Some(v4) => v4.to_string(),
                    None => ip.to_string(),
                };
                (s, *n)
            })
            .collect();
        let h = &self.hist;
        r.latency = Latency {
            samples: h.count(),
            p50_ns: h.quantile(0.5),
            p90_ns: h.quantile(0.9),
            p99_ns: h.quantile(0.99),
            p999_ns: h.quantile(0.999),
            max_ns: h.max(),
        };
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::traffic::{Generator, Mix, Profile, Transport};

    #[test]
    fn histogram_buckets_round_trip() {
        for v in [0u64, 1, 31, 32, 33, 63, 64, 65, 1000, 123_456, u64::MAX / 3] {
            let b = bucket(v);
            assert!(bucket_low(b) <= v, "{v}: low {}", bucket_low(b));
            assert!(v - bucket_low(b) <= v / 16, "{v}: precision");
            assert!(b < BUCKETS);
        }
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        assert!((480_000..=500_000).contains(&p50), "{p50}");
        assert_eq!(h.max(), 1_000_000);
    }

    fn frames(nodes: u32, n: usize) -> (Generator, Vec<Vec<u8>>) {
        let p = Profile {
            nodes,
            mix: Mix("hao=1,ipv4=1".parse::<Mix>().unwrap().0),
            move_every: 2,
            new_share: 0.0,
            transport: Transport::Udp,
            size: 64,
            vip6: "2001:db8:ffff::80".parse().unwrap(),
            vip4: "198.51.100.80".parse().unwrap(),
            dport: 80,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
        };
        let mut g = Generator::new(&p).unwrap();
        let v = (0..n)
            .map(|i| {
                let pl = g.plan();
                let mut f = vec![0u8; g.len_of(&pl)];
                g.fill(&pl, &mut f, i as u64);
                f
            })
            .collect();
        (g, v)
    }

    #[test]
    fn counts_loss_duplicates_reordering_and_affinity() {
        let (g, mut fs) = frames(4, 400);
        let mut v = Verifier::new(4, 8, 1_000_000_000);
        // Lose frame 10, duplicate frame 20, swap 30 and 34 (same flow),
        // and send flow 1's frame 41 to another backend.
        let off = if fs[41][12] == 0x86 { 38 } else { 33 };
        fs[41][off] ^= 0x40;
        let mut order: Vec<usize> = (0..400).filter(|&i| i != 10).collect();
        order.insert(20, 20);
        let a = order.iter().position(|&i| i == 30).unwrap();
        let b = order.iter().position(|&i| i == 34).unwrap();
        order.swap(a, b);
        for i in order {
            v.on_frame(&fs[i], 1000);
        }
        let r = v.report(g.sent_per_node());
        assert_eq!(r.lost, 1);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.reordered, 1);
        assert_eq!(r.affinity_violations, 1);
        assert_eq!(r.flows_split, 1);
        assert_eq!(r.flows_seen, 4);
        assert_eq!(r.unmarked, 0);
        assert_eq!(r.latency.samples, 400);
    }
}
