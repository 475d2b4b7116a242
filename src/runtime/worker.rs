//! The per-core poll loop.
//!
//! Each worker owns a set of RX queues (queue *i* of every port, spread over
//! the workers), TX queue *w* of every port, the consumer side of its own
//! handoff ring and a producer to every other worker's ring, so no queue or
//! ring end is ever shared between cores. The loop follows DPDK's l3fwd:
//! flush TX buffers when the TSC deadline passes; receive a burst per RX
//! queue and let the core's load balancer ([`CoreLb`]) decide each packet
//! (transmit, hand off to the shard's owner, hold until its next hop is
//! resolved, or drop); push the handoff
//! bursts into the owners' rings in bulk; take in what other cores handed
//! over; and every [`HOUSEKEEPING_EVERY`] iterations publish counters, expire
//! a slice of the session table and of the hold queue, and look at the stop
//! flag. Everything it uses is allocated before the loop starts.
//!
//! Held packets ([`HoldQueue`]) leave as soon as the core's neighbour cache
//! changes and resolves their next hop: right after the packet that taught
//! it (an ARP reply or NA this core received), before that packet's own
//! verdict is carried out, or right after a neighbour another core learned
//! is applied — so they precede every later packet to the same next hop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk::ring::{MbufConsumer, MbufProducer, Receiver, Sender};
use dpdk::{Mbuf, PacketBurst, RxQueue, TxQueue};

use crate::config::IdleBackoff;
use std::net::IpAddr;

use dpdk::Mempool;

use crate::dataplane::hold::HoldQueue;
use crate::dataplane::lb::{
    CoreLb, Frame, LbDrop, NeighborRequest, Now, Prefetched, Topology, Verdict, WorkerCommand,
};
use crate::dataplane::neighbor;
use crate::dataplane::notify::NotifyDrop;
use crate::mgmt::stats::{Counter, PublishedArray, SharedCounters, WorkerCounters};
use crate::packet::DropReason;

/// Iterations between counter publications, expiry slices and stop checks.
pub const HOUSEKEEPING_EVERY: u64 = 256;

/// Housekeeping rounds between publications of the per-bucket loads
/// (thousands of values: rarer than the counters).
pub const BUCKET_LOADS_EVERY: u64 = 256;

/// Commands applied per loop iteration at most.
const COMMANDS_PER_ITERATION: usize = 64;

/// Session-table slots examined per expiry slice at least, on top of what
/// churn and the lap ask for (which already keep the sweep in pace: this
/// is only a floor). It was 1,024, which in a steady state of established
/// sessions made the sweep examine twice the slots its lap needs: 3.4 % of
/// the worker's samples with a million sessions in the bench script's
/// 8 Mi-slot table at 9.8 Mpps.
const EXPIRE_BUDGET: usize = 64;

/// Most extra slots an expiry slice examines for churn (new sessions since
/// the previous slice, four slots each): bounds the slice's work at a few
/// tens of microseconds.
const EXPIRE_CHURN_MAX: usize = 32 * 1024;

/// Most slots an expiry slice examines to keep its lap within the shortest
/// session lifetime (see [`lap_budget`]). A slice takes the larger of this
/// and the churn allowance, so its bound is the same as the churn's.
const EXPIRE_LAP_MAX: usize = 32 * 1024;

/// The shortest period (ms) the sweep's time floor laps the session table
/// in: a sub-second lifetime does not make it lap faster (with 200 ms, an
/// 8 Mi-slot table would take 40 M slots a second, seven a packet at the
/// bench script's new-identity rates, most of them empty). Churn still has
/// its own allowance, and look-ups treat an expired entry as absent, so a
/// short-lived session is at most this much late in leaving the table.
pub const LAP_PERIOD_MIN_MS: u32 = 1000;

/// Slots the expiry sweep must examine, `elapsed` TSC cycles after the last
/// slice, to lap a table of `slots` once per `lifetime_ms`. This floor
/// does not depend on how many sessions the core creates: a budget that
/// only followed creation would slow down exactly when a table crowded with
/// expired entries makes inserts slow, and crowd it further.
pub fn lap_budget(slots: usize, elapsed: u64, lifetime_ms: u32, tsc_hz: u64) -> usize {
    let per = u128::from(lifetime_ms.max(1)) * u128::from(tsc_hz.max(1));
    let need = (slots as u128 * u128::from(elapsed))
        .saturating_mul(1000)
        .div_ceil(per);
    usize::try_from(need).unwrap_or(usize::MAX)
}

/// Slots one expiry slice examines: the base budget plus the larger of the
/// churn allowance (four per session `created` since the last slice) and
/// the `lap` floor, each capped.
pub fn slice_budget(created: usize, lap: usize) -> usize {
    EXPIRE_BUDGET
        + created
            .saturating_mul(4)
            .min(EXPIRE_CHURN_MAX)
            .max(lap.min(EXPIRE_LAP_MAX))
}

/// The loop's two clocks from the TSC: whole seconds since start (the
/// tick of every table but the session table) and milliseconds (the
/// session table's, as [`Now::ms`], and the hold queue's). Each
/// iteration compares the TSC with the next millisecond's deadline and
/// divides only once that passed, about once a millisecond, instead of
/// twice per iteration (two 64-bit divisions were about 1.4 % of the
/// worker's samples at 9.8 Mpps on the 2026-12-04 host).
#[derive(Debug, Clone)]
pub struct LoopClock {
    start_tsc: u64,
    hz: u64,
    hz_ms: u64,
    /// TSC offset from `start_tsc` at which `ms` next changes.
    next_ms_at: u64,
    secs: u32,
    ms: u64,
}

impl LoopClock {
    /// A clock whose time zero is `start_tsc`, ticking `tsc_hz` per second
    /// (at least 1000).
    pub fn new(start_tsc: u64, tsc_hz: u64) -> Self {
        let hz = tsc_hz.max(1000);
        LoopClock {
            start_tsc,
            hz,
            hz_ms: hz / 1000,
            next_ms_at: 0,
            secs: 0,
            ms: 0,
        }
    }

    /// Brings both clocks to `tsc`; returns (seconds, milliseconds) since
    /// the start, exactly the divisions of the elapsed ticks. A TSC behind
    /// the last one seen (never, on an invariant TSC) is read as it is.
    #[inline]
    pub fn tick(&mut self, tsc: u64) -> (u32, u64) {
        let since = tsc.wrapping_sub(self.start_tsc);
        if since >= self.next_ms_at || since < self.next_ms_at.saturating_sub(self.hz_ms) {
            self.ms = since / self.hz_ms;
            self.secs = (since / self.hz) as u32;
            self.next_ms_at = (self.ms + 1).saturating_mul(self.hz_ms);
        }
        (self.secs, self.ms)
    }
}

/// What the management core shares with one worker.
#[derive(Debug)]
pub struct WorkerControl {
    /// Set by the management core to end the loop.
    pub stop: AtomicBool,
    /// Counters the worker publishes.
    pub counters: SharedCounters,
    /// Drops by reason: parse reasons first, then load-balancer reasons.
    pub drops: PublishedArray,
    /// Packets per backend, services' backends one after the other.
    pub backend_packets: PublishedArray,
    /// Per bucket this worker owns: packets, bytes, drops (three entries per
    /// bucket, bucket after bucket), cumulative; published every
    /// [`BUCKET_LOADS_EVERY`] housekeeping rounds and at stop.
    pub bucket_loads: PublishedArray,
}

impl WorkerControl {
    /// Control block for a worker whose services have `backends` backends in
    /// all, in a map of `buckets` buckets.
    pub fn new(backends: usize, buckets: usize) -> Self {
        WorkerControl {
            bucket_loads: PublishedArray::new(buckets.saturating_mul(3)),
            stop: AtomicBool::new(false),
            counters: SharedCounters::default(),
            drops: PublishedArray::new(DropReason::COUNT + LbDrop::COUNT + NotifyDrop::COUNT),
            backend_packets: PublishedArray::new(backends),
        }
    }

    /// The names of the `drops` entries, in order.
    pub fn drop_names() -> impl Iterator<Item = &'static str> {
        DropReason::ALL
            .iter()
            .map(|r| r.name())
            .chain(LbDrop::ALL.iter().map(|r| r.name()))
    }
}

/// One RX queue a worker polls.
#[derive(Debug)]
pub struct RxBinding {
    /// The queue.
    pub queue: RxQueue,
    /// Index of its port in the configuration.
    pub port: u8,
}

/// Everything a worker needs, built by the runtime before launch.
#[derive(Debug)]
pub struct WorkerSetup {
    /// Worker index (0-based).
    pub index: usize,
    /// Commands for this worker: alias updates other workers broadcast, and
    /// reloaded topologies from the management core.
    pub commands: Receiver<WorkerCommand<Mbuf>>,
    /// Every worker's command ring, indexed by worker.
    pub peers: Vec<Sender<WorkerCommand<Mbuf>>>,
    /// Queues to poll.
    pub rx: Vec<RxBinding>,
    /// This worker's TX queue on every port, indexed like the configuration.
    pub tx: Vec<TxQueue>,
    /// This worker's handoff ring (what other cores hand over).
    pub handoff_in: MbufConsumer,
    /// Every worker's handoff ring, indexed by worker.
    pub handoff_out: Vec<MbufProducer>,
    /// DPDK port id -> configuration index (for handed-over packets).
    pub port_index: Vec<u8>,
    /// The load balancer of this core.
    pub lb: CoreLb,
    /// Packets held while their next hop is resolved.
    pub hold: HoldQueue<Mbuf>,
    /// The mbuf pool (for the ARP/ND requests the worker originates).
    pub pool: Arc<Mempool>,
    /// Packets per RX burst.
    pub burst: usize,
    /// Backoff after an empty iteration.
    pub idle: IdleBackoff,
    /// Sleep length for `IdleBackoff::Sleep`, in µs.
    pub idle_sleep_us: u32,
    /// TX flush period in TSC ticks.
    pub flush_tsc: u64,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// TSC at the appliance's start (time zero of the session clock).
    pub start_tsc: u64,
    /// Shared with the management core.
    pub control: Arc<WorkerControl>,
}

impl Frame for Mbuf {
    #[inline]
    fn bytes(&self) -> &[u8] {
        self.data()
    }
    #[inline]
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        u16::try_from(n)
            .ok()
            .and_then(|n| Mbuf::prepend(self, n))
            .is_some()
    }
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        let have = self.len();
        match len.cmp(&have) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Greater => u16::try_from(len - have)
                .ok()
                .and_then(|n| self.append(n))
                .is_some(),
            std::cmp::Ordering::Less => u16::try_from(have - len).is_ok_and(|n| self.trim(n)),
        }
    }
    #[inline]
    fn scratch(&self) -> &[u8] {
        self.headroom_bytes()
    }
    #[inline]
    fn scratch_mut(&mut self) -> &mut [u8] {
        self.headroom_bytes_mut()
    }
}

/// The loop's mutable state besides the queues.
struct Dispatch {
    lb: CoreLb,
    hold: HoldQueue<Mbuf>,
    /// The load balancer's neighbour epoch the hold queue last saw.
    hold_epoch: u64,
    /// Milliseconds since start (the hold queue's clock), per iteration.
    now_ms: u64,
    pending: Vec<PacketBurst>,
    handoff: Vec<PacketBurst>,
    counters: WorkerCounters,
    burst: usize,
    /// The mbuf pool (second fragments of DSR packets).
    pool: Arc<Mempool>,
}

impl Dispatch {
    /// Decides one packet received on `port` (or handed over, when
    /// `handed_off`) and moves it to TX, a handoff burst, the hold queue or
    /// the pool; `pre` is what the burst's prefetch pass learnt of it.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn packet(
        &mut self,
        topo: &Topology,
        m: Mbuf,
        port: u8,
        now: Now,
        handed_off: bool,
        pre: Option<&Prefetched>,
        tx: &mut [TxQueue],
    ) {
        self.packet_inlined(topo, m, port, now, handed_off, pre, tx);
    }

    /// [`Dispatch::packet`], inlined into the loop's pass over an RX burst
    /// (handed-off and injected packets take the call).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn packet_inlined(
        &mut self,
        topo: &Topology,
        mut m: Mbuf,
        port: u8,
        now: Now,
        handed_off: bool,
        pre: Option<&Prefetched>,
        tx: &mut [TxQueue],
    ) {
        if !handed_off {
            self.counters.add(Counter::RxBytes, m.pkt_len() as u64);
        }
        let verdict = self
            .lb
            .process_from_loop(topo, &mut m, port, now, handed_off, pre);
        if !self.hold.is_empty() && self.lb.neighbor_epoch() != self.hold_epoch {
            self.release_held(topo, now.secs, tx);
        }
        match verdict {
            Verdict::Transmit(out) => self.transmit(out, m, tx),
            Verdict::Hold(out) => {
                if let Err(m) = self.hold.hold(&mut self.lb, m, out, self.now_ms) {
                    drop(m);
                }
            }
            Verdict::Handoff(core) => {
                let Some(buf) = self.handoff.get_mut(usize::from(core)) else {
                    return;
                };
                if let Err(m) = buf.push(m) {
                    self.lb.counters.handoff_refused(1);
                    drop(m);
                }
            }
            Verdict::Fragment(out) => {
                let mut second = self.pool.alloc();
                if self.lb.fragment(topo, &mut m, second.as_mut()) {
                    self.transmit(out, m, tx);
                    if let Some(second) = second {
                        self.transmit(out, second, tx);
                    }
                }
            }
            Verdict::Drop => drop(m),
        }
    }

    /// Queues `m` for TX on port `out`, flushing a full burst.
    #[inline]
    fn transmit(&mut self, out: u8, m: Mbuf, tx: &mut [TxQueue]) {
        let out = usize::from(out);
        let Some(buf) = self.pending.get_mut(out) else {
            return;
        };
        if let Err(m) = buf.push(m) {
            self.counters.inc(Counter::TxFull);
            drop(m);
        }
        // The TX queue is looked up only for a full burst.
        if buf.len() >= self.burst {
            if let Some(q) = tx.get_mut(out) {
                flush(q, buf, &mut self.counters);
            }
        }
    }

    /// Sends every held packet whose next hop the neighbour cache now
    /// resolves, in order (see the module documentation).
    #[cold]
    fn release_held(&mut self, topo: &Topology, now: u32, tx: &mut [TxQueue]) {
        self.hold_epoch = self.lb.neighbor_epoch();
        let Dispatch {
            lb,
            hold,
            pending,
            counters,
            burst,
            ..
        } = self;
        hold.release_resolved(lb, topo, now, |out, m| {
            let out = usize::from(out);
            let (Some(buf), Some(q)) = (pending.get_mut(out), tx.get_mut(out)) else {
                return;
            };
            if let Err(m) = buf.push(m) {
                counters.inc(Counter::TxFull);
                drop(m);
            }
            if buf.len() >= *burst {
                flush(q, buf, counters);
            }
        });
    }

    /// Moves the handoff bursts into the owners' rings; what does not fit is
    /// counted and freed, except in a replay (`lossless`), where it stays
    /// for the next try and the loop receives nothing more until it is gone.
    #[inline]
    fn push_handoffs(&mut self, rings: &[MbufProducer], lossless: bool) {
        for (buf, ring) in self.handoff.iter_mut().zip(rings) {
            if buf.is_empty() {
                continue;
            }
            ring.enqueue(buf);
            if !buf.is_empty() && !lossless {
                self.lb.counters.handoff_refused(buf.len() as u64);
                buf.clear();
            }
        }
    }

    /// In a replay, pushes what waits for a handoff ring; true if some of
    /// it still does not fit (the loop then takes in no new packet: they
    /// could overflow the handoff bursts).
    #[inline]
    fn handoff_backlog(&mut self, rings: &[MbufProducer]) -> bool {
        if self.handoff.iter().all(|b| b.is_empty()) {
            return false;
        }
        self.push_handoffs(rings, true);
        self.handoff.iter().any(|b| !b.is_empty())
    }

    fn publish_bucket_loads(&self, control: &WorkerControl) {
        for (b, l) in self.lb.loads.as_slice().iter().enumerate() {
            if l.packets | l.drops != 0 {
                control
                    .bucket_loads
                    .store_all(3 * b, &[l.packets, l.bytes, l.drops]);
            }
        }
    }

    fn publish(&mut self, control: &WorkerControl) {
        let lb = &self.lb.counters;
        let c = &mut self.counters;
        c.set(Counter::ToBackend, lb.to_backend);
        c.set(Counter::Replies, lb.replies);
        c.set(Counter::IcmpErrorsTranslated, lb.icmp_errors_translated);
        c.set(Counter::IcmpTooBigSent, lb.icmp_too_big_sent);
        c.set(Counter::IcmpTunnelTooBig, lb.icmp_tunnel_too_big);
        c.set(Counter::EncapFragmented, lb.encap_fragmented);
        c.set(Counter::RawForwarded, lb.raw_forwarded);
        c.set(Counter::HandoffsOut, lb.handoffs);
        c.set(Counter::SessionsCreated, lb.sessions_created);
        c.set(Counter::SessionsExpired, lb.sessions_expired);
        c.set(Counter::Sessions, self.lb.sessions() as u64);
        c.set(
            Counter::NeighborRequestsSuppressed,
            lb.neighbor_requests_suppressed,
        );
        c.set(Counter::BindingUpdates, lb.binding_updates);
        c.set(
            Counter::NotificationsAccepted,
            self.lb.notify_counters.accepted,
        );
        c.set(Counter::NeighborAnswers, lb.neighbor_answers);
        c.set(Counter::NeighborsLearned, lb.neighbors_learned);
        c.set(Counter::NeighborRequests, lb.neighbor_requests);
        c.set(Counter::NeighborHeld, lb.neighbor_held);
        c.set(Counter::NeighborReleased, lb.neighbor_released);
        c.set(Counter::NeighborHoldPackets, self.hold.len() as u64);
        c.set(Counter::AliasHits, lb.alias_hits);
        c.set(Counter::Aliases, self.lb.aliases() as u64);
        c.set(Counter::AliasOutboxFull, lb.alias_outbox_full);
        c.set(Counter::AliasTableFull, lb.alias_table_full);
        let (opened, expired) = self.lb.connection_counts();
        c.set(Counter::ConnectionsCreated, opened);
        c.set(Counter::ConnectionsExpired, expired);
        c.set(Counter::Connections, self.lb.connections() as u64);
        control.counters.publish(c);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            control.drops.store(i, lb.parse_drops.get(*r));
        }
        control.drops.store_all(DropReason::COUNT, &lb.lb_drops);
        control.drops.store_all(
            DropReason::COUNT + LbDrop::COUNT,
            &self.lb.notify_counters.drops,
        );
        let mut at = 0;
        for per_service in &lb.backend_packets {
            control.backend_packets.store_all(at, per_service);
            at += per_service.len();
        }
    }
}

/// Runs the poll loop until the stop flag is set; returns 0.
pub fn run(setup: WorkerSetup) -> i32 {
    let WorkerSetup {
        index,
        mut commands,
        peers,
        mut rx,
        mut tx,
        mut handoff_in,
        handoff_out,
        port_index,
        lb,
        hold,
        pool,
        burst,
        idle,
        idle_sleep_us,
        flush_tsc,
        tsc_hz,
        start_tsc,
        control,
    } = setup;
    log::debug!(
        "worker {index}: polling {} RX queues on {}",
        rx.len(),
        dpdk::eal::current_lcore()
    );
    let mut d = Dispatch {
        lb,
        hold,
        hold_epoch: 0,
        now_ms: 0,
        pending: (0..tx.len()).map(|_| PacketBurst::new()).collect(),
        handoff: (0..handoff_out.len()).map(|_| PacketBurst::new()).collect(),
        counters: WorkerCounters::default(),
        burst,
        pool: pool.clone(),
    };
    // The worker's own handle on the topology: the packet path borrows it,
    // so no reference count (shared by every core) is touched per packet.
    let mut topo = d.lb.topology();
    let mut rx_burst = PacketBurst::new();
    let mut prefetched = [Prefetched::default(); dpdk::MAX_BURST];
    let mut last_flush = dpdk::time::tsc();
    let mut iteration: u64 = 0;
    let mut commands_lost: u64 = 0;
    let mut created_at_last_expire: u64 = 0;
    let mut last_expire_tsc = dpdk::time::tsc();
    let hz = tsc_hz.max(1);
    let mut clock = LoopClock::new(start_tsc, tsc_hz);
    // See `Dispatch::push_handoffs`.
    let lossless = topo.replay;

    loop {
        iteration = iteration.wrapping_add(1);
        let now_tsc = dpdk::time::tsc();
        let (now_secs, now_ms) = clock.tick(now_tsc);
        let now = Now {
            secs: now_secs,
            ms: now_ms as u32,
        };
        d.now_ms = now_ms;
        if iteration % HOUSEKEEPING_EVERY == 0 {
            d.counters.set(Counter::CommandRingFull, commands_lost);
            // The sweep keeps pace with churn (four slots per session
            // created since the last slice) or with time (a lap per
            // shortest lifetime), whichever asks more, on top of the base
            // budget.
            let created = d.lb.counters.sessions_created;
            let churn = created.wrapping_sub(created_at_last_expire) as usize;
            created_at_last_expire = created;
            let lap = lap_budget(
                d.lb.session_slots(),
                now_tsc.wrapping_sub(last_expire_tsc),
                topo.shortest_session_lifetime().max(LAP_PERIOD_MIN_MS),
                hz,
            );
            last_expire_tsc = now_tsc;
            d.lb.expire(now, slice_budget(churn, lap));
            if !d.hold.is_empty() {
                d.hold.expire(&mut d.lb, &topo, d.now_ms, now.secs);
            }
            d.publish(&control);
            if iteration % (HOUSEKEEPING_EVERY * BUCKET_LOADS_EVERY) == 0 {
                d.publish_bucket_loads(&control);
            }
            if control.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        if now_tsc.wrapping_sub(last_flush) >= flush_tsc {
            for (q, buf) in tx.iter_mut().zip(d.pending.iter_mut()) {
                flush(q, buf, &mut d.counters);
            }
            last_flush = now_tsc;
        }

        let mut received = 0usize;
        for binding in rx.iter_mut() {
            // A replay's input is a file: rather than drop what a full
            // handoff ring refuses (while its owner waits for the CPU), it
            // waits, and so does the capture.
            if lossless && d.handoff_backlog(&handoff_out) {
                break;
            }
            let n = binding.queue.recv(&mut rx_burst, burst);
            if n == 0 {
                continue;
            }
            received += n;
            d.counters.add(Counter::RxPackets, n as u64);
            // Every burst, whatever the table's size: the prefetch pass's
            // parse and hash are reused, so it costs little, and even a
            // table of a thousand sessions does not stay in the caches
            // (the mbufs and the memif rings cycle through them).
            d.lb.prefetch_burst(
                &topo,
                rx_burst.as_slice().iter().map(|m| m.bytes()),
                binding.port,
                &mut prefetched,
            );
            d.lb.prefetch_entries();
            d.lb.look_up_established(&topo, &mut prefetched, now);
            for (m, pre) in rx_burst.drain().zip(prefetched.iter()) {
                d.packet_inlined(&topo, m, binding.port, now, false, Some(pre), &mut tx);
            }
        }
        d.push_handoffs(&handoff_out, lossless);

        let n = handoff_in.dequeue(&mut rx_burst, burst);
        if n > 0 {
            received += n;
            d.counters.add(Counter::HandoffsIn, n as u64);
            for m in rx_burst.drain() {
                let port = port_index.get(usize::from(m.port())).copied().unwrap_or(0);
                d.packet(&topo, m, port, now, true, None, &mut tx);
            }
        }

        // Neighbours learned here go to every other core; requests for
        // unresolved next hops are built in fresh mbufs and queued for TX.
        let Dispatch {
            lb,
            pending,
            counters,
            ..
        } = &mut d;
        lb.drain_neighbor_work(
            |u| {
                for (w, ring) in peers.iter().enumerate() {
                    if w != index && ring.send(WorkerCommand::Neighbor(*u)).is_err() {
                        commands_lost += 1;
                    }
                }
            },
            |r| {
                if let Some(m) = neighbor_request(&pool, r) {
                    if let Some(buf) = pending.get_mut(usize::from(r.port)) {
                        if let Err(m) = buf.push(m) {
                            counters.inc(Counter::TxFull);
                            drop(m);
                        }
                    }
                }
            },
        );

        // Binding updates seen here go to every other core; theirs come in.
        d.lb.drain_outbox(|u| {
            for (w, ring) in peers.iter().enumerate() {
                if w != index && ring.send(WorkerCommand::Alias(*u)).is_err() {
                    commands_lost += 1;
                }
            }
        });
        let mut injected = false;
        for _ in 0..COMMANDS_PER_ITERATION {
            // Injected frames may be handed off too (see the RX pass).
            if lossless && d.handoff_backlog(&handoff_out) {
                break;
            }
            match commands.try_recv() {
                Some(WorkerCommand::Alias(u)) => d.lb.apply_alias(&u, now.secs),
                Some(WorkerCommand::Neighbor(u)) => {
                    d.lb.apply_neighbor(&u, now.secs);
                    if !d.hold.is_empty() && d.lb.neighbor_epoch() != d.hold_epoch {
                        d.release_held(&topo, now.secs, &mut tx);
                    }
                }
                Some(WorkerCommand::Topology(t)) => {
                    d.lb.set_topology(t.clone());
                    topo = t;
                }
                Some(WorkerCommand::Receive { port, frame }) => {
                    received += 1;
                    d.counters.add(Counter::RxPackets, 1);
                    d.counters.add(Counter::Injected, 1);
                    d.packet(&topo, frame, port, now, false, None, &mut tx);
                    injected = true;
                }
                None => break,
            }
        }
        if injected {
            d.push_handoffs(&handoff_out, lossless);
        }

        if received == 0 {
            d.counters.inc(Counter::IdlePolls);
            match idle {
                IdleBackoff::None => {}
                IdleBackoff::Pause => dpdk::time::pause(),
                IdleBackoff::Sleep => dpdk::time::sleep_us(idle_sleep_us),
            }
        } else {
            d.counters.inc(Counter::BusyPolls);
        }
    }

    for (q, buf) in tx.iter_mut().zip(d.pending.iter_mut()) {
        flush(q, buf, &mut d.counters);
    }
    // A replay's backlog for a handoff ring, if it stopped with one, is
    // counted as refused.
    d.push_handoffs(&handoff_out, false);
    // Held packets are freed before the ports close (counted as timeouts).
    d.hold.clear(&mut d.lb);
    d.counters.set(Counter::CommandRingFull, commands_lost);
    d.publish(&control);
    d.publish_bucket_loads(&control);
    log::debug!("worker {index}: stopped");
    0
}

/// Builds an ARP request or neighbour solicitation in a fresh mbuf.
fn neighbor_request(pool: &Mempool, r: &NeighborRequest) -> Option<Mbuf> {
    let mut m = pool.alloc()?;
    let buf = m.append(96)?;
    let len = match (r.source, r.target) {
        (IpAddr::V4(s), IpAddr::V4(t)) => neighbor::arp_request(buf, r.mac, s, t)?,
        (IpAddr::V6(s), IpAddr::V6(t)) => neighbor::neighbor_solicitation(buf, r.mac, s, t)?,
        _ => return None,
    };
    m.trim((96 - len) as u16).then_some(m)
}

#[inline]
fn flush(q: &mut TxQueue, buf: &mut PacketBurst, counters: &mut WorkerCounters) {
    if buf.is_empty() {
        return;
    }
    let mut lens = [0u32; dpdk::MAX_BURST];
    for (l, m) in lens.iter_mut().zip(buf.as_slice()) {
        *l = m.pkt_len() as u32;
    }
    let (sent, dropped) = q.send(buf);
    counters.add(Counter::TxPackets, sent as u64);
    counters.add(
        Counter::TxBytes,
        lens[..sent].iter().map(|&l| l as u64).sum(),
    );
    counters.add(Counter::TxFull, dropped as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_clock_gives_the_divisions_of_the_elapsed_ticks() {
        let hz = 2_994_373_000u64;
        let start = u64::MAX - 5 * hz; // the TSC wraps 5 s after the start
        let mut clock = LoopClock::new(start, hz);
        let expect = |tsc: u64| {
            let since = tsc.wrapping_sub(start);
            ((since / hz) as u32, since / (hz / 1000))
        };
        // Steps from a few ticks to 20 ms, some just under a millisecond,
        // across the millisecond and second boundaries and the wrap.
        let mut tsc = start;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let step = match i % 4 {
                0 => x % 64,
                1 => x % (hz / 1000),
                2 => hz / 1000 - 1 + x % 3,
                _ => x % (hz / 50),
            };
            tsc = tsc.wrapping_add(step);
            assert_eq!(clock.tick(tsc), expect(tsc), "step {i}");
        }
        // Exactly on a boundary, one tick before and after.
        for at in [hz / 1000, hz, 7 * hz, 7 * hz + hz / 1000] {
            for t in [at - 1, at, at + 1] {
                let tsc = start.wrapping_add(t);
                assert_eq!(clock.tick(tsc), expect(tsc));
            }
        }
        // A TSC that went back is read as it is.
        let back = start.wrapping_add(hz / 2);
        assert_eq!(clock.tick(back), expect(back));
    }

    #[test]
    fn lap_budget_laps_the_table_once_per_lifetime() {
        let hz = 3_000_000_000u64;
        // A second of slices at a 1-s lifetime covers all 8 Mi slots.
        let slots = 8 << 20;
        let slice = hz / 300;
        let per_slice = lap_budget(slots, slice, 1000, hz);
        assert!(per_slice * 300 >= slots);
        assert!(per_slice * 300 < slots + 300);
        // Longer lifetimes need proportionally less, shorter ones more;
        // any elapsed time needs at least one slot, and none needs none.
        assert_eq!(
            lap_budget(slots, slice, 300_000, hz),
            per_slice.div_ceil(300)
        );
        assert_eq!(lap_budget(slots, slice, 200, hz), slots.div_ceil(60));
        assert_eq!(lap_budget(slots, 1, 300_000, hz), 1);
        assert_eq!(lap_budget(slots, 0, 1000, hz), 0);
        // No overflow at the extremes.
        assert_eq!(lap_budget(usize::MAX, u64::MAX, 1, 1), usize::MAX);
        // A lifetime or clock rate of 0 is taken as 1.
        assert_eq!(lap_budget(slots, 10, 0, 0), slots * 10_000);
    }
}
