//! The generator on DPDK ports: one loop on the main lcore that fills a
//! burst from the templates, transmits what the driver takes (keeping the
//! rest, so no numbered packet is lost inside the generator), receives on
//! the verify port (and drains the transmit port), and checks the clock only
//! every 64 iterations.
//!
//! Pacing: with a target rate, the number of packets due is computed from
//! the TSC elapsed since the start, so a late iteration catches up with a
//! full burst rather than drifting. Without one, the loop sends whenever the
//! driver has room. Throughput is measured over a window that starts after
//! the warm-up and ends when sending stops; the process's own CPU share over
//! that window (from `/proc/self/stat`) is reported so a harness can discard
//! runs where the generator did not have its core.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk::{Eal, Mempool, PacketBurst, Port, PortId, PortSetup, SocketId};
use serde::Serialize;

use super::traffic::{GenCounts, Generator, Profile};
use super::verify::{Verifier, VerifyReport};
use super::{frame_lengths, GenError, RunLimits};

/// Counters of one port, read while the peer is still connected.
#[derive(Debug, Clone, Serialize)]
pub struct PortCounters {
    /// Ethdev name or id.
    pub port: String,
    /// Driver.
    pub driver: String,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// RX drops (no descriptor).
    pub rx_missed: u64,
}

/// What a live run did.
#[derive(Debug, Clone, Serialize)]
pub struct LiveReport {
    /// DPDK version.
    pub dpdk_version: String,
    /// Seconds from the first packet to the end of the drain.
    pub elapsed_s: f64,
    /// Target rate (packets/s; 0 = maximum).
    pub target_pps: f64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Packets received on the verify port.
    pub rx_packets: u64,
    /// Length of the measurement window, seconds.
    pub window_s: f64,
    /// Packets transmitted per second in the window, millions.
    pub tx_mpps: f64,
    /// Packets received back per second in the window, millions.
    pub rx_mpps: f64,
    /// CPU share of this process over the window (1.0 = one full core).
    pub cpu_share: f64,
    /// What was generated.
    pub generated: GenCounts,
    /// Data frame length per kind (without FCS).
    pub frame_lengths: Vec<(&'static str, usize)>,
    /// Receive-side verification (absent with --no-verify).
    pub verify: Option<VerifyReport>,
    /// Port counters.
    pub ports: Vec<PortCounters>,
}

fn cpu_ticks() -> u64 {
    // utime + stime, fields 14 and 15, after the parenthesised command name.
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // rest starts at field 3 (state): utime is field 14 -> index 11.
    n(11) + n(12)
}

const TICKS_PER_SEC: f64 = 100.0; // USER_HZ on Linux

fn port_id(name: Option<&str>, default: u16) -> Result<PortId, GenError> {
    match name {
        Some(n) => Port::lookup(n).map_err(|e| GenError::Setup(format!("port {n}: {e}"))),
        None => {
            if Port::count() == 0 {
                return Err(GenError::Setup(
                    "no DPDK port: pass --vdev or -a after `--`".into(),
                ));
            }
            Ok(PortId(default.min(Port::count() - 1)))
        }
    }
}

/// Runs the generator on DPDK ports; `eal_args` are passed to the EAL as
/// they are.
pub fn run(
    profile: &Profile,
    lim: &RunLimits,
    eal_args: &[String],
) -> Result<LiveReport, GenError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| GenError::Setup(format!("signal handler: {e}")))?;
    }
    let mut g = Generator::new(profile).map_err(GenError::Options)?;
    dpdk::eal::log_to_stderr()?;
    let eal = Eal::init(eal_args)?;
    let r = run_with_eal(&mut g, lim, &stop);
    if let Err(e) = eal.cleanup() {
        log::warn!("EAL cleanup: {e}");
    }
    r
}

fn run_with_eal(
    g: &mut Generator,
    lim: &RunLimits,
    stop: &AtomicBool,
) -> Result<LiveReport, GenError> {
    let pool = Arc::new(Mempool::create(
        "gen_pool",
        16383,
        256,
        dpdk::mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )?);
    let tx_id = port_id(lim.tx_port.as_deref(), 0)?;
    let rx_id = port_id(lim.rx_port.as_deref(), 1)?;
    let setup = PortSetup {
        rx_queues: 1,
        tx_queues: 1,
        rx_descriptors: 1024,
        tx_descriptors: 1024,
        mtu: None,
        promiscuous: true,
        rss_hash_types: 0,
    };
    let mut tx_port = Port::configure(tx_id, "gen-tx", &setup, pool.clone())?;
    let mut rx_port = if rx_id != tx_id {
        Some(Port::configure(rx_id, "gen-rx", &setup, pool.clone())?)
    } else {
        None
    };
    tx_port.start()?;
    if let Some(p) = rx_port.as_mut() {
        p.start()?;
    }
    // Wait for the links (memif: the peer connected).
    let hz = dpdk::time::tsc_hz();
    let wait_until = std::time::Instant::now() + lim.link_wait;
    loop {
        let up = tx_port.link()?.up
            && rx_port
                .as_ref()
                .map_or(Ok(true), |p| p.link().map(|l| l.up))?;
        if up {
            break;
        }
        if std::time::Instant::now() > wait_until || stop.load(Ordering::Relaxed) {
            return Err(GenError::Setup(format!(
                "links not up after {:?} (is the device under test running?)",
                lim.link_wait
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut txq = tx_port
        .take_tx_queue(0)
        .ok_or_else(|| GenError::Setup("TX queue".into()))?;
    let mut tx_rxq = tx_port
        .take_rx_queue(0)
        .ok_or_else(|| GenError::Setup("RX queue".into()))?;
    let mut rx_rxq = match rx_port.as_mut() {
        Some(p) => Some(
            p.take_rx_queue(0)
                .ok_or_else(|| GenError::Setup("RX queue".into()))?,
        ),
        None => None,
    };

    let max_flow = g.nodes().saturating_add(1 << 31);
    let mut verifier = lim.verify.then(|| Verifier::new(g.nodes(), max_flow, hz));
    let burst = 32usize;
    let mut txb = PacketBurst::new();
    let mut rxb = PacketBurst::new();
    let count = lim.count.unwrap_or(u64::MAX);
    let dur_tsc = lim
        .duration
        .map_or(u64::MAX, |d| dpdk::time::duration_to_tsc(d, hz));
    let warm_tsc = dpdk::time::duration_to_tsc(lim.warmup, hz);
    let drain_tsc = dpdk::time::duration_to_tsc(lim.drain, hz);
    let ticks_per_pkt = if lim.rate > 0.0 {
        hz as f64 / lim.rate
    } else {
        0.0
    };

    let t0 = dpdk::time::tsc();
    let mut planned = 0u64;
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut sending = true;
    let mut window: Option<(u64, u64, u64, u64)> = None; // tsc, tx, rx, cpu
    let mut window_end: Option<(u64, u64, u64, u64)> = None;
    let mut last_rx = t0;
    let mut iter = 0u64;
    loop {
        iter += 1;
        let now = dpdk::time::tsc();
        let mut did = false;
        if sending {
            if txb.is_empty() && planned < count {
                let mut want = burst as u64;
                if ticks_per_pkt > 0.0 {
                    let due = ((now - t0) as f64 / ticks_per_pkt) as u64 + 1;
                    want = want.min(due.saturating_sub(planned));
                }
                want = want.min(count - planned);
                for _ in 0..want {
                    let Some(mut m) = pool.alloc() else { break };
                    let p = g.plan();
                    let len = g.len_of(&p);
                    let Some(buf) = m.append(len as u16) else {
                        break;
                    };
                    g.fill(&p, buf, now);
                    let _ = txb.push(m);
                    planned += 1;
                }
            }
            if !txb.is_empty() {
                let n = txq.send_some(&mut txb);
                sent += n as u64;
                did |= n > 0;
            }
        }
        // Receive on the verify port; drain the transmit port's RX too.
        if let Some(q) = rx_rxq.as_mut() {
            let n = q.recv(&mut rxb, burst);
            if n > 0 {
                did = true;
                received += n as u64;
                last_rx = now;
                match verifier.as_mut() {
                    Some(v) => {
                        for m in rxb.drain() {
                            v.on_frame(m.data(), now);
                        }
                    }
                    None => rxb.clear(),
                }
            }
            if tx_rxq.recv(&mut rxb, burst) > 0 {
                rxb.clear();
            }
        } else {
            let n = tx_rxq.recv(&mut rxb, burst);
            if n > 0 {
                did = true;
                received += n as u64;
                last_rx = now;
                match verifier.as_mut() {
                    Some(v) => {
                        for m in rxb.drain() {
                            v.on_frame(m.data(), now);
                        }
                    }
                    None => rxb.clear(),
                }
            }
        }
        if iter & 63 == 0 {
            let el = now - t0;
            if window.is_none() && el >= warm_tsc {
                window = Some((now, sent, received, cpu_ticks()));
            }
            if sending
                && ((planned >= count && txb.is_empty())
                    || el >= dur_tsc
                    || stop.load(Ordering::Relaxed))
            {
                sending = false;
                txb.clear();
                window.get_or_insert((t0, 0, 0, cpu_ticks()));
                window_end = Some((now, sent, received, cpu_ticks()));
                last_rx = last_rx.max(now);
            }
            if !sending && now.saturating_sub(last_rx) >= drain_tsc {
                break;
            }
            if !sending
                && stop.load(Ordering::Relaxed)
                && now - t0 > dur_tsc.saturating_add(drain_tsc)
            {
                break;
            }
        }
        if !did && lim.idle_sleep {
            dpdk::time::sleep_us(20);
        }
    }
    let t_end = dpdk::time::tsc();
    // Port counters while the peer is still connected.
    let mut ports = Vec::new();
    for p in std::iter::once(&tx_port).chain(rx_port.as_ref()) {
        let s = p.stats()?;
        ports.push(PortCounters {
            port: format!("{} ({})", p.id(), p.name()),
            driver: p.port_info().driver.clone(),
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_missed: s.imissed,
        });
    }
    // Free what the bursts hold before the ports close.
    drop(rxb);
    drop(txb);
    if let Some(p) = rx_port {
        p.close()?;
    }
    tx_port.close()?;

    let (ws, we) = (
        window.unwrap_or((t0, 0, 0, 0)),
        window_end.unwrap_or((t_end, sent, received, cpu_ticks())),
    );
    let window_s = (we.0.saturating_sub(ws.0)) as f64 / hz as f64;
    let per_s = |a: u64, b: u64| {
        if window_s > 0.0 {
            (b.saturating_sub(a)) as f64 / window_s / 1e6
        } else {
            0.0
        }
    };
    let cpu_share = if window_s > 0.0 {
        (we.3.saturating_sub(ws.3)) as f64 / TICKS_PER_SEC / window_s
    } else {
        0.0
    };
    Ok(LiveReport {
        dpdk_version: dpdk::eal::version(),
        elapsed_s: (t_end - t0) as f64 / hz as f64,
        target_pps: lim.rate,
        tx_packets: sent,
        rx_packets: received,
        window_s,
        tx_mpps: per_s(ws.1, we.1),
        rx_mpps: per_s(ws.2, we.2),
        cpu_share,
        generated: g.counts,
        frame_lengths: frame_lengths(g),
        verify: verifier.map(|v| v.report(g.sent_per_node())),
        ports,
    })
}

/// The human summary of a live run.
pub fn print_summary(r: &LiveReport) {
    println!(
        "gen: {} sent, {} received in {:.2}s ({})",
        r.tx_packets, r.rx_packets, r.elapsed_s, r.dpdk_version
    );
    println!(
        "window {:.2}s: tx {:.3} Mpps, rx {:.3} Mpps, cpu {:.0}%",
        r.window_s,
        r.tx_mpps,
        r.rx_mpps,
        r.cpu_share * 100.0
    );
    println!(
        "generated: {} data, {} new-identity, {} binding updates",
        r.generated.data, r.generated.new_identity, r.generated.binding_updates
    );
    if let Some(v) = &r.verify {
        print_verify(v);
    }
}

/// The human summary of the verifier.
pub fn print_verify(v: &VerifyReport) {
    println!(
        "verify: {} flows seen, {} flow packets, {} new-identity, {} unmarked",
        v.flows_seen, v.flow_packets, v.new_identity_packets, v.unmarked
    );
    println!(
        "        lost {}, duplicates {}, reordered {}, affinity violations {} ({} flows split)",
        v.lost, v.duplicates, v.reordered, v.affinity_violations, v.flows_split
    );
    let l = &v.latency;
    println!(
        "latency (ns): p50 {} p90 {} p99 {} p99.9 {} max {} ({} samples)",
        l.p50_ns, l.p90_ns, l.p99_ns, l.p999_ns, l.max_ns, l.samples
    );
    for (b, n) in &v.backends {
        println!("backend {b}: {n} packets");
    }
}
