//! The per-core poll loop.
//!
//! Each worker owns a set of RX queues (queue *i* of every port, spread over
//! the workers) and TX queue *w* of every port, so no queue is ever touched by
//! two cores. The loop follows DPDK's l3fwd: flush TX buffers when the TSC
//! deadline passes; receive a burst per RX queue; act on the whole burst;
//! publish counters and look at the stop flag every [`HOUSEKEEPING_EVERY`]
//! iterations. Everything it uses is allocated before the loop starts.
//!
//! Until the load-balancing data plane lands, "acting" means forwarding each
//! packet unchanged to the port configured as `forward_to`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk::{PacketBurst, RxQueue, TxQueue};

use crate::config::IdleBackoff;
use crate::mgmt::stats::{Counter, SharedCounters, WorkerCounters};

/// Iterations between counter publications and stop-flag checks.
pub const HOUSEKEEPING_EVERY: u64 = 256;

/// What the management core shares with one worker.
#[derive(Debug, Default)]
pub struct WorkerControl {
    /// Set by the management core to end the loop.
    pub stop: AtomicBool,
    /// Counters the worker publishes.
    pub counters: SharedCounters,
}

/// One RX queue a worker polls and where its packets go.
#[derive(Debug)]
pub struct RxBinding {
    /// The queue.
    pub queue: RxQueue,
    /// Index (into the worker's TX queues) of the output port, if any.
    pub output: Option<usize>,
}

/// Everything a worker needs, built by the runtime before launch.
#[derive(Debug)]
pub struct WorkerSetup {
    /// Worker index (0-based).
    pub index: usize,
    /// Queues to poll.
    pub rx: Vec<RxBinding>,
    /// This worker's TX queue on every port, indexed by port.
    pub tx: Vec<TxQueue>,
    /// Packets per RX burst.
    pub burst: usize,
    /// Backoff after an empty iteration.
    pub idle: IdleBackoff,
    /// Sleep length for `IdleBackoff::Sleep`, in µs.
    pub idle_sleep_us: u32,
    /// TX flush period in TSC ticks.
    pub flush_tsc: u64,
    /// Shared with the management core.
    pub control: Arc<WorkerControl>,
}

/// Runs the poll loop until the stop flag is set; returns 0.
pub fn run(setup: WorkerSetup) -> i32 {
    let WorkerSetup {
        index,
        mut rx,
        mut tx,
        burst,
        idle,
        idle_sleep_us,
        flush_tsc,
        control,
    } = setup;
    log::debug!(
        "worker {index}: polling {} RX queues on lcore {}",
        rx.len(),
        dpdk::eal::current_lcore()
    );
    let mut pending: Vec<PacketBurst> = (0..tx.len()).map(|_| PacketBurst::new()).collect();
    let mut rx_burst = PacketBurst::new();
    let mut counters = WorkerCounters::default();
    let mut last_flush = dpdk::time::tsc();
    let mut iteration: u64 = 0;

    loop {
        iteration = iteration.wrapping_add(1);
        if iteration % HOUSEKEEPING_EVERY == 0 {
            control.counters.publish(&counters);
            if control.stop.load(Ordering::Relaxed) {
                break;
            }
        }

        let now = dpdk::time::tsc();
        if now.wrapping_sub(last_flush) >= flush_tsc {
            for (q, buf) in tx.iter_mut().zip(pending.iter_mut()) {
                flush(q, buf, &mut counters);
            }
            last_flush = now;
        }

        let mut received = 0usize;
        for binding in rx.iter_mut() {
            let n = binding.queue.recv(&mut rx_burst, burst);
            if n == 0 {
                continue;
            }
            received += n;
            counters.add(Counter::RxPackets, n as u64);
            match binding.output {
                Some(out) => {
                    let buf = &mut pending[out];
                    for m in rx_burst.drain() {
                        counters.add(Counter::RxBytes, m.pkt_len() as u64);
                        if let Err(m) = buf.push(m) {
                            // Unreachable while burst <= MAX_BURST (we flush at
                            // `burst`), but a full buffer must never leak.
                            counters.inc(Counter::TxFull);
                            drop(m);
                        }
                        if buf.len() >= burst {
                            flush(&mut tx[out], buf, &mut counters);
                        }
                    }
                }
                None => {
                    for m in rx_burst.drain() {
                        counters.add(Counter::RxBytes, m.pkt_len() as u64);
                        counters.inc(Counter::NoRoute);
                    }
                }
            }
        }

        if received == 0 {
            counters.inc(Counter::IdlePolls);
            match idle {
                IdleBackoff::None => {}
                IdleBackoff::Pause => dpdk::time::pause(),
                IdleBackoff::Sleep => dpdk::time::sleep_us(idle_sleep_us),
            }
        } else {
            counters.inc(Counter::BusyPolls);
        }
    }

    for (q, buf) in tx.iter_mut().zip(pending.iter_mut()) {
        flush(q, buf, &mut counters);
    }
    control.counters.publish(&counters);
    log::debug!("worker {index}: stopped");
    0
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
