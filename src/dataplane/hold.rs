//! Packets held while their next hop is resolved (ARP / IPv6 neighbour
//! discovery), as the Linux kernel's `unres_qlen` queue does.
//!
//! When [`CoreLb`] has rewritten a packet (L3/L4) but cannot write its
//! Ethernet addresses because the next hop has no static neighbour and no
//! neighbour-cache entry, it queues an ARP request or neighbour solicitation
//! and returns [`Verdict::Hold`](super::lb::Verdict::Hold). The worker then
//! gives the packet to this core's [`HoldQueue`], which owns it until one of
//! three things happens:
//!
//! - **Release**: the core learns the next hop's MAC (from an ARP reply or
//!   NA it processed itself, or from another core's `WorkerCommand::Neighbor`).
//!   Every packet held for that address gets its Ethernet destination (the
//!   learned MAC) and source (its output port's MAC) and goes to TX on its
//!   port, in arrival order, before any later packet of the core.
//! - **Timeout**: [`HOLD_TIMEOUT_MS`] (3 s) after the first packet of a next
//!   hop was held, every packet still held for it is freed and counted as
//!   `neighbor_timeout`. Meanwhile the request is repeated every
//!   [`HOLD_RETRY_MS`] (1 s), [`HOLD_REQUESTS`] (3) requests in all — the
//!   kernel's defaults (`mcast_solicit` 3, `retrans_time` 1 s).
//! - **Overflow**: a packet that finds its next hop's [`HOLD_PER_HOP`] (8)
//!   slots taken, or the core's whole queue (`dataplane.neighbor_hold`,
//!   default 256) full, is not taken and is counted as `neighbor_hold_full`.
//!
//! All memory is allocated when the queue is built: a slot array of the
//! configured size, a free-slot stack, and a table of next hops being
//! resolved (at most one per slot). Holding, releasing and expiring move
//! indices only; nothing allocates, locks or formats. Finding a packet's
//! next hop is a linear scan over the next hops being resolved right now —
//! normally a handful, at most `neighbor_hold` — which costs nothing on the
//! ordinary path (the queue is only consulted for unresolved next hops) and
//! keeps the structure trivially bounded.
//!
//! Packet path rule: an mbuf the queue holds is owned by it (the `Option`
//! slot); it leaves by release (to TX), timeout (freed), or [`HoldQueue::clear`]
//! when the worker stops (freed, counted as `neighbor_timeout`), so none
//! leaks.

#![forbid(unsafe_code)]

use std::net::IpAddr;

use crate::dataplane::lb::{CoreLb, Frame, LbDrop, Topology};

/// Packets held per next hop (the kernel's `unres_qlen` was 3 packets, now
/// a byte budget of about 100 full-size frames; 8 covers a connection's
/// first flight and a few parallel connections to a new backend).
pub const HOLD_PER_HOP: usize = 8;

/// Default packets held per core (`dataplane.neighbor_hold`).
pub const HOLD_DEFAULT: usize = 256;

/// Largest configurable `dataplane.neighbor_hold` (slot indices are `u16`,
/// and the hop scan stays short).
pub const HOLD_MAX: usize = 4096;

/// How long (ms) a next hop's packets are held before they are dropped.
pub const HOLD_TIMEOUT_MS: u64 = 3000;

/// Interval (ms) between requests for a next hop whose packets are held.
pub const HOLD_RETRY_MS: u64 = 1000;

/// Requests sent for a next hop while its packets are held (the first
/// included).
pub const HOLD_REQUESTS: u8 = 3;

/// A next hop being resolved, with its packets in arrival order.
#[derive(Debug, Clone, Copy)]
struct Hop {
    ip: IpAddr,
    /// When its first packet was held.
    since_ms: u64,
    /// When the last request went out.
    asked_ms: u64,
    /// Requests sent so far.
    asked: u8,
    len: u8,
    /// Slot indices, oldest first.
    slots: [u16; HOLD_PER_HOP],
    /// Output port of each packet.
    ports: [u8; HOLD_PER_HOP],
}

/// One core's held packets (see the module documentation).
#[derive(Debug)]
pub struct HoldQueue<P> {
    slots: Vec<Option<P>>,
    free: Vec<u16>,
    hops: Vec<Hop>,
    held: usize,
}

impl<P: Frame> HoldQueue<P> {
    /// A queue of `capacity` packets (at most [`HOLD_MAX`]); 0 holds nothing.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.min(HOLD_MAX);
        HoldQueue {
            slots: (0..capacity).map(|_| None).collect(),
            free: (0..capacity as u16).rev().collect(),
            hops: Vec::with_capacity(capacity),
            held: 0,
        }
    }

    /// Packets held now.
    #[inline]
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether nothing is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Next hops being resolved now.
    pub fn hops(&self) -> usize {
        self.hops.len()
    }

    /// Takes a packet the load balancer answered with `Verdict::Hold(port)`
    /// for (its next hop is [`CoreLb::unresolved_next_hop`]). A refused
    /// packet is counted as `neighbor_hold_full` and given back to be freed.
    pub fn hold(&mut self, lb: &mut CoreLb, p: P, port: u8, now_ms: u64) -> Result<(), P> {
        let ip = lb.unresolved_next_hop();
        let hop = match self.hops.iter().position(|h| h.ip == ip) {
            Some(i) if usize::from(self.hops[i].len) < HOLD_PER_HOP => i,
            Some(_) => return Err(refuse(lb, p)),
            None if !self.free.is_empty() && self.hops.len() < self.hops.capacity() => {
                // The request that made this packet unresolved went out
                // now (or within the last second): it counts as the first.
                self.hops.push(Hop {
                    ip,
                    since_ms: now_ms,
                    asked_ms: now_ms,
                    asked: 1,
                    len: 0,
                    slots: [0; HOLD_PER_HOP],
                    ports: [0; HOLD_PER_HOP],
                });
                self.hops.len() - 1
            }
            None => return Err(refuse(lb, p)),
        };
        let Some(slot) = self.free.pop() else {
            return Err(refuse(lb, p));
        };
        self.slots[usize::from(slot)] = Some(p);
        let h = &mut self.hops[hop];
        h.slots[usize::from(h.len)] = slot;
        h.ports[usize::from(h.len)] = port;
        h.len += 1;
        self.held += 1;
        lb.counters.neighbor_held += 1;
        Ok(())
    }

    /// Releases every next hop the core's neighbour cache now resolves:
    /// each packet gets its Ethernet addresses and goes to `out(port,
    /// packet)`, hop by hop, oldest first. Call after the core learned or
    /// was told a neighbour (see [`CoreLb::neighbor_epoch`]).
    pub fn release_resolved(
        &mut self,
        lb: &mut CoreLb,
        topo: &Topology,
        now: u32,
        mut out: impl FnMut(u8, P),
    ) {
        let mut i = 0;
        while i < self.hops.len() {
            let Some(mac) = lb.resolved_mac(self.hops[i].ip, now) else {
                i += 1;
                continue;
            };
            let h = self.hops.swap_remove(i);
            for k in 0..usize::from(h.len) {
                let Some(mut p) = self.take(h.slots[k]) else {
                    continue;
                };
                let port = h.ports[k];
                let src = topo.ports.get(usize::from(port)).map(|s| s.mac);
                match (src, p.bytes_mut().get_mut(0..12)) {
                    (Some(src), Some(b)) => {
                        b[0..6].copy_from_slice(&mac);
                        b[6..12].copy_from_slice(&src);
                        lb.counters.neighbor_released += 1;
                        out(port, p);
                    }
                    // A port a reload removed, or a frame too short to
                    // have been rewritten: cannot happen; freed, counted.
                    _ => lb.counters.lb_drops[LbDrop::RewriteFailed as usize] += 1,
                }
            }
        }
    }

    /// Housekeeping: frees (counted as `neighbor_timeout`) the packets of
    /// every next hop unresolved for [`HOLD_TIMEOUT_MS`], and repeats the
    /// request for the others every [`HOLD_RETRY_MS`]. `now_ms` and `now`
    /// (seconds) are the same clock.
    pub fn expire(&mut self, lb: &mut CoreLb, topo: &Topology, now_ms: u64, now: u32) {
        let mut i = 0;
        while i < self.hops.len() {
            let h = self.hops[i];
            if now_ms.saturating_sub(h.since_ms) >= HOLD_TIMEOUT_MS {
                self.hops.swap_remove(i);
                self.drop_hop(lb, &h);
                continue;
            }
            if h.asked < HOLD_REQUESTS && now_ms.saturating_sub(h.asked_ms) >= HOLD_RETRY_MS {
                lb.solicit(topo, h.ports[0], h.ip, now);
                let h = &mut self.hops[i];
                h.asked += 1;
                h.asked_ms = now_ms;
            }
            i += 1;
        }
    }

    /// Frees everything held (the worker is stopping), counted as
    /// `neighbor_timeout`.
    pub fn clear(&mut self, lb: &mut CoreLb) {
        while let Some(h) = self.hops.pop() {
            self.drop_hop(lb, &h);
        }
    }

    fn drop_hop(&mut self, lb: &mut CoreLb, h: &Hop) {
        for &slot in &h.slots[..usize::from(h.len)] {
            if let Some(p) = self.take(slot) {
                lb.counters.lb_drops[LbDrop::NeighborTimeout as usize] += 1;
                drop(p);
            }
        }
    }

    fn take(&mut self, slot: u16) -> Option<P> {
        let p = self.slots.get_mut(usize::from(slot))?.take()?;
        self.free.push(slot);
        self.held -= 1;
        Some(p)
    }
}

#[cold]
fn refuse<P>(lb: &mut CoreLb, p: P) -> P {
    lb.counters.lb_drops[LbDrop::NeighborHoldFull as usize] += 1;
    p
}
