//! The appliance runtime: start-up, the management loop, orderly shutdown.
//!
//! Start-up follows the order DPDK needs: EAL (from [`Config::eal_args`]), the
//! mbuf pool, then every port (configured, queues set up, started). Each
//! worker lcore gets a [`worker::WorkerSetup`] holding the queue handles it
//! alone may use, and is launched. The calling thread — the EAL main lcore —
//! then runs the management loop: it aggregates counters every stats
//! interval, updates metrics, and watches for SIGINT/SIGTERM, an idle timeout
//! (`--until-idle`, for capture-driven runs) or a maximum duration.
//!
//! Shutdown reverses start-up: workers are told to stop and joined (each
//! flushes its TX buffers), port counters are read, ports are stopped and
//! closed (which flushes pcap outputs), and the EAL is cleaned up. The
//! [`RunReport`] says why the run ended and what went through it, including
//! whether every mbuf came back to the pool.

pub mod replay;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk::{Eal, Mempool, Port, PortSetup, SocketId};
use serde::Serialize;

use crate::config::Config;
use crate::dataplane::buckets::BucketMap;
use crate::dataplane::hold::HoldQueue;
use crate::dataplane::lb::{CoreLb, CoreSizing, Topology, WorkerCommand};
use crate::dataplane::ratelimit::WindowLimit;
use crate::identity::IdentityHasher;
use crate::mgmt::metrics::{install_recorder, MetricsEndpoint};
use crate::mgmt::stats::{Counter, WorkerCounters};
use worker::{RxBinding, WorkerControl, WorkerSetup};

/// Why the runtime could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A DPDK call failed.
    #[error(transparent)]
    Dpdk(#[from] dpdk::DpdkError),
    /// A worker could not be launched or panicked.
    #[error(transparent)]
    Lcore(#[from] dpdk::lcore::LcoreError),
    /// The configuration does not match what the EAL found.
    #[error("{0}")]
    Setup(String),
    /// The metrics endpoint failed.
    #[error(transparent)]
    Metrics(#[from] crate::mgmt::metrics::MetricsError),
    /// Installing signal handlers failed.
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Options of one run, beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop once no RX queue received anything for this long.
    pub until_idle: Option<Duration>,
    /// Stop after this long in any case.
    pub duration: Option<Duration>,
    /// Replay mode: next hops without a static neighbour get derived MACs.
    pub replay: bool,
    /// The file the configuration came from (reloaded on SIGHUP); `None`
    /// for the embedded default.
    pub config_path: Option<std::path::PathBuf>,
    /// `replay --in-server`: a capture whose frames are handed to the
    /// workers as received on the server-side port, once the first idle
    /// period (`until_idle`) has passed; the run then ends at the next one.
    pub inject_server: Option<std::path::PathBuf>,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// SIGINT or SIGTERM.
    Signal,
    /// `--until-idle` elapsed without traffic.
    Idle,
    /// `--duration` elapsed.
    Duration,
}

/// Final counters of one port.
#[derive(Debug, Clone, Serialize)]
pub struct PortReport {
    /// Configured name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// RSS hash types in effect.
    pub rss: Vec<&'static str>,
    /// Requested RSS types the driver lacks.
    pub rss_unavailable: Vec<&'static str>,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Hardware RX drops (no descriptor).
    pub rx_missed: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
    /// RX errors.
    pub rx_errors: u64,
    /// TX errors.
    pub tx_errors: u64,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Why it ended.
    pub stop_reason: StopReason,
    /// Seconds from start of the management loop to stop.
    pub elapsed_secs: f64,
    /// DPDK version.
    pub dpdk_version: String,
    /// Whether hugepages backed the memory.
    pub hugepages: bool,
    /// Per port.
    pub ports: Vec<PortReport>,
    /// Per worker counters by name.
    pub workers: Vec<std::collections::BTreeMap<&'static str, u64>>,
    /// Sum over workers.
    pub totals: std::collections::BTreeMap<&'static str, u64>,
    /// Drops by reason (nonzero only), summed over workers.
    pub drops: std::collections::BTreeMap<&'static str, u64>,
    /// Packets per backend, per service.
    pub backends: Vec<BackendReport>,
    /// Bytes of session-table memory per session slot in use at capacity.
    pub session_table_bytes: usize,
    /// Session capacity over all workers.
    pub session_capacity: usize,
    /// Configuration reloads applied (SIGHUP).
    pub reloads: u32,
    /// Mbufs not returned to the pool after ports were closed (0 = no leak).
    pub mbufs_leaked: u32,
    /// Per-bucket load over the run.
    pub buckets: BucketLoadReport,
}

/// How the load spread over the buckets (identity hash -> bucket): what the
/// cluster's rebalance works from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BucketLoadReport {
    /// Buckets in the map.
    pub buckets: usize,
    /// Buckets that forwarded or dropped at least one packet.
    pub active: usize,
    /// Packets forwarded, summed over buckets (equals `to_backend`).
    pub packets: u64,
    /// Packets the owners dropped, summed over buckets.
    pub drops: u64,
    /// Packets of the busiest bucket.
    pub max_packets: u64,
    /// Busiest bucket's packets over the mean of the active buckets (1.0 =
    /// even; 0 when no bucket is active).
    pub imbalance: f64,
    /// The busiest buckets, at most eight, busiest first.
    pub busiest: Vec<BucketLoadEntry>,
}

/// One bucket's load.
#[derive(Debug, Clone, Serialize)]
pub struct BucketLoadEntry {
    /// Bucket index.
    pub bucket: usize,
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded.
    pub bytes: u64,
    /// Packets dropped by its owner.
    pub drops: u64,
}

impl BucketLoadReport {
    /// Sums the workers' published per-bucket loads (a bucket has one owner
    /// at a time; summing also covers a bucket that moved between cores).
    pub fn from_controls(controls: &[Arc<WorkerControl>], buckets: usize) -> Self {
        let mut sum = vec![[0u64; 3]; buckets];
        for c in controls {
            for (i, v) in c.bucket_loads.snapshot().into_iter().enumerate() {
                if let Some(b) = sum.get_mut(i / 3) {
                    b[i % 3] += v;
                }
            }
        }
        let mut r = BucketLoadReport {
            buckets,
            ..Default::default()
        };
        let mut entries: Vec<BucketLoadEntry> = Vec::new();
        for (bucket, [packets, bytes, drops]) in sum.into_iter().enumerate() {
            if packets | drops == 0 {
                continue;
            }
            r.active += 1;
            r.packets += packets;
            r.drops += drops;
            r.max_packets = r.max_packets.max(packets);
            entries.push(BucketLoadEntry {
                bucket,
                packets,
                bytes,
                drops,
            });
        }
        if r.active > 0 && r.packets > 0 {
            r.imbalance = r.max_packets as f64 / (r.packets as f64 / r.active as f64);
        }
        entries.sort_by(|a, b| b.packets.cmp(&a.packets).then(a.bucket.cmp(&b.bucket)));
        entries.truncate(8);
        r.busiest = entries;
        r
    }
}

/// Traffic one backend received.
#[derive(Debug, Clone, Serialize)]
pub struct BackendReport {
    /// Service name.
    pub service: String,
    /// Backend address.
    pub address: std::net::IpAddr,
    /// Packets sent to it.
    pub packets: u64,
}

fn counter_map(c: &WorkerCounters) -> std::collections::BTreeMap<&'static str, u64> {
    Counter::ALL.iter().map(|k| (k.name(), c.get(*k))).collect()
}

/// Runs the appliance until a signal, the idle timeout or the duration.
pub fn run(cfg: &Config, opts: &RunOptions) -> Result<RunReport, RuntimeError> {
    let stop_signal = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop_signal.clone()).map_err(RuntimeError::Signals)?;
    }
    let reload_signal = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload_signal.clone())
        .map_err(RuntimeError::Signals)?;

    dpdk::eal::log_to_stderr()?;
    let eal = Eal::init(cfg.eal_args())?;
    let result = run_with_eal(&eal, cfg, opts, &stop_signal, &reload_signal);
    if let Err(e) = eal.cleanup() {
        log::warn!("EAL cleanup: {e}");
    }
    result
}

fn run_with_eal(
    eal: &Eal,
    cfg: &Config,
    opts: &RunOptions,
    stop_signal: &AtomicBool,
    reload_signal: &AtomicBool,
) -> Result<RunReport, RuntimeError> {
    log::info!(
        "{} up ({}), EAL args: {}",
        dpdk::eal::version(),
        if eal.has_hugepages() {
            "hugepages"
        } else {
            "no hugepages"
        },
        eal.args()[1..].join(" ")
    );
    let workers: Vec<dpdk::LcoreId> = cfg
        .workers
        .lcores
        .iter()
        .map(|&l| dpdk::LcoreId(l))
        .collect();
    for (i, l) in workers.iter().enumerate() {
        if !eal.lcore_enabled(*l) {
            return Err(RuntimeError::Setup(format!(
                "workers.lcores[{i}]: {l} is not enabled in the EAL (check eal.extra_args --lcores)"
            )));
        }
    }

    let pool = Arc::new(Mempool::create(
        "roamlb_pool",
        cfg.mempool.mbufs,
        cfg.mempool.cache,
        cfg.mempool.data_room,
        SocketId::ANY,
    )?);

    // Ports, configured and started in config order.
    let mut ports = Vec::with_capacity(cfg.ports.len());
    for (i, pc) in cfg.ports.iter().enumerate() {
        let id = Port::lookup(&pc.ethdev_name()).map_err(|e| {
            RuntimeError::Setup(format!(
                "ports[{i}] ({}): device {} was not probed: {e}",
                pc.name, pc.device
            ))
        })?;
        let setup = PortSetup {
            rx_queues: cfg.rx_queues(i),
            tx_queues: cfg.tx_queues(i),
            rx_descriptors: pc.rx_descriptors,
            tx_descriptors: pc.tx_descriptors,
            mtu: pc.mtu,
            promiscuous: pc.promiscuous,
            rss_hash_types: cfg.rss_bits(i),
        };
        let mut port = Port::configure(id, &pc.name, &setup, pool.clone())?;
        if setup.rx_queues > 1 && port.rss_dropped() != 0 {
            log::warn!(
                "{} ({}): RSS hash types not offered by the driver, dropped: {}",
                pc.name,
                port.port_info().driver,
                dpdk::port::rss_names(port.rss_dropped()).join(", ")
            );
        }
        port.start()?;
        let link = port.link()?;
        log::info!(
            "{} = {} ({}): {} RX / {} TX queues, link {} {} Mbit/s, RSS [{}]",
            pc.name,
            id,
            port.port_info().driver,
            setup.rx_queues,
            setup.tx_queues,
            if link.up { "up" } else { "down" },
            link.speed_mbps,
            dpdk::port::rss_names(port.rss_hash_types()).join(", ")
        );
        ports.push(port);
    }

    // The data plane shared by all workers: topology, shard map, hash key.
    let macs = ports
        .iter()
        .map(|p| p.mac())
        .collect::<Result<Vec<_>, _>>()?;
    let mut topo = Arc::new(
        Topology::from_config(cfg, &macs, opts.replay)
            .map_err(|e| RuntimeError::Setup(e.to_string()))?,
    );
    let nworkers = workers.len();
    let mut buckets = BucketMap::new(cfg.dataplane.buckets as usize, 0)
        .map_err(|e| RuntimeError::Setup(format!("dataplane.buckets: {e}")))?;
    buckets
        .assign_cores(0, nworkers, |_| true)
        .map_err(|e| RuntimeError::Setup(format!("workers.lcores: {e}")))?;
    let buckets = Arc::new(buckets);
    let hasher = match &cfg.dataplane.hash_key {
        Some(hex) => IdentityHasher::new(parse_key(hex)),
        None => IdentityHasher::random()
            .map_err(|e| RuntimeError::Setup(format!("drawing a random hash key: {e}")))?,
    };
    let wall_base_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let sizing = CoreSizing {
        notify_guard: cfg
            .binding_notify
            .as_ref()
            .map(|n| n.replay_guard as usize)
            .unwrap_or(1024),
        wall_base_ms,
        sessions: cfg.dataplane.sessions_per_worker as usize,
        aliases: cfg.dataplane.aliases_per_worker as usize,
        neighbors: 4096,
        neighbor_hold: cfg.dataplane.neighbor_hold as usize,
        extension_header_limit: cfg.dataplane.extension_header_limit,
        connections: cfg.dataplane.connections_per_worker as usize,
        workers: nworkers as u8,
        icmp_errors_per_second: WindowLimit::share(cfg.dataplane.icmp_errors_per_second, nworkers),
        icmp_translated_per_second: WindowLimit::share(
            cfg.dataplane.icmp_translated_per_second,
            nworkers,
        ),
    };
    let mut rings = Vec::with_capacity(nworkers);
    for w in 0..nworkers {
        rings.push(dpdk::ring::mbuf_ring(
            &format!("roamlb_handoff{w}"),
            cfg.dataplane.handoff_ring,
            SocketId::ANY,
        )?);
    }
    let producers: Vec<_> = rings.iter().map(|(p, _)| p.clone()).collect();
    // Command rings: alias updates broadcast between workers, reloaded
    // topologies from the management core.
    let mut command_rings = Vec::with_capacity(nworkers);
    for w in 0..nworkers {
        command_rings.push(Some(dpdk::ring::typed_ring::<WorkerCommand<dpdk::Mbuf>>(
            &format!("roamlb_cmd{w}"),
            4 * crate::dataplane::lb::ALIAS_OUTBOX as u32,
            SocketId::ANY,
        )?));
    }
    let command_senders: Vec<_> = command_rings
        .iter()
        .flatten()
        .map(|(s, _)| s.clone())
        .collect();
    let mut port_index = vec![
        0u8;
        ports
            .iter()
            .map(|p| usize::from(p.id().0) + 1)
            .max()
            .unwrap_or(0)
    ];
    for (i, p) in ports.iter().enumerate() {
        port_index[usize::from(p.id().0)] = i as u8;
    }
    let total_backends: usize = topo
        .services
        .iter()
        .map(|s| s.backends.backends().len())
        .sum();

    // Queue handles per worker: RX queue q of each port goes to worker
    // q % workers; every worker gets TX queue w of every port.
    let hz = dpdk::time::tsc_hz();
    let start_tsc = dpdk::time::tsc();
    let mut setups: Vec<WorkerSetup> = Vec::with_capacity(nworkers);
    let mut controls = Vec::with_capacity(nworkers);
    let mut session_memory = 0usize;
    let mut session_capacity = 0usize;
    for (w, (_, consumer)) in rings.into_iter().enumerate() {
        let control = Arc::new(WorkerControl::new(total_backends, buckets.buckets()));
        controls.push(control.clone());
        let mut tx = Vec::with_capacity(ports.len());
        for port in ports.iter_mut() {
            let name = port.name().to_owned();
            tx.push(port.take_tx_queue(w as u16).ok_or_else(|| {
                RuntimeError::Setup(format!("{name}: no TX queue {w} for worker {w}"))
            })?);
        }
        let lb = CoreLb::new(
            topo.clone(),
            w as u8,
            buckets.clone(),
            hasher.clone(),
            sizing,
        )
        .map_err(|e| RuntimeError::Setup(format!("worker {w}: {e}")))?;
        session_memory += lb.session_memory();
        session_capacity += lb.session_capacity();
        let (_, commands) = command_rings[w]
            .take()
            .expect("one command ring per worker");
        setups.push(WorkerSetup {
            index: w,
            commands,
            peers: command_senders.clone(),
            rx: Vec::new(),
            tx,
            handoff_in: consumer,
            handoff_out: producers.clone(),
            port_index: port_index.clone(),
            lb,
            hold: HoldQueue::new(cfg.dataplane.neighbor_hold as usize),
            pool: pool.clone(),
            burst: cfg.workers.burst as usize,
            idle: cfg.workers.idle,
            idle_sleep_us: cfg.workers.idle_sleep.as_micros().min(u32::MAX as u128) as u32,
            flush_tsc: dpdk::time::duration_to_tsc(cfg.workers.tx_flush, hz).max(1),
            tsc_hz: hz,
            start_tsc,
            control,
        });
    }
    drop(producers);
    for (pi, port) in ports.iter_mut().enumerate() {
        for q in 0..cfg.rx_queues(pi) {
            let queue = port.take_rx_queue(q).ok_or_else(|| {
                RuntimeError::Setup(format!("{}: RX queue {q} unavailable", port.name()))
            })?;
            setups[q as usize % nworkers].rx.push(RxBinding {
                queue,
                port: pi as u8,
            });
        }
    }
    if !topo.services.is_empty() {
        log::info!(
            "{} service(s), {} buckets over {} worker(s), {} sessions per worker ({:.1} bytes per session slot)",
            topo.services.len(),
            buckets.buckets(),
            nworkers,
            setups[0].lb.session_capacity(),
            session_memory as f64 / session_capacity.max(1) as f64
        );
    }

    let metrics_handle = install_recorder()?;
    let _endpoint = match cfg.management.metrics_listen {
        Some(addr) => Some(MetricsEndpoint::start(addr, metrics_handle)?),
        None => None,
    };

    let mut handles = Vec::with_capacity(nworkers);
    let mut launch_error = None;
    for (setup, lcore) in setups.into_iter().zip(workers.iter()) {
        match dpdk::lcore::launch(*lcore, move || worker::run(setup)) {
            Ok(h) => handles.push(h),
            Err(e) => {
                launch_error = Some(e);
                break;
            }
        }
    }

    let started = Instant::now();
    let mut reloads = 0;
    let stop_reason = if launch_error.is_some() {
        StopReason::Signal
    } else {
        let mut m = Management {
            cfg: cfg.clone(),
            opts,
            controls: &controls,
            ports: &ports,
            stop_signal,
            reload_signal,
            topo: topo.clone(),
            commands: command_senders.clone(),
            pending_topology: Vec::new(),
            reloads: 0,
            pool: pool.clone(),
            inject: opts.inject_server.clone(),
        };
        let reason = m.run(started);
        reloads = m.reloads;
        topo = m.topo.clone();
        reason
    };

    for c in &controls {
        c.stop.store(true, Ordering::Relaxed);
    }
    let mut worker_error = launch_error.map(RuntimeError::from);
    for h in handles {
        if let Err(e) = h.join() {
            log::error!("{e}");
            worker_error.get_or_insert(RuntimeError::from(e));
        }
    }
    let elapsed = started.elapsed();

    let worker_counters: Vec<WorkerCounters> =
        controls.iter().map(|c| c.counters.snapshot()).collect();
    let mut totals = WorkerCounters::default();
    worker_counters.iter().for_each(|c| totals.accumulate(c));
    let mut port_reports = Vec::with_capacity(ports.len());
    for port in &ports {
        let s = port.stats()?;
        port_reports.push(PortReport {
            name: port.name().to_owned(),
            driver: port.port_info().driver.clone(),
            rss: dpdk::port::rss_names(port.rss_hash_types()),
            rss_unavailable: dpdk::port::rss_names(port.rss_dropped()),
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_nombuf: s.rx_nombuf,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
        });
    }
    let mut drops = std::collections::BTreeMap::new();
    let mut backend_totals = vec![0u64; total_backends];
    for c in &controls {
        for (name, v) in WorkerControl::drop_names().zip(c.drops.snapshot()) {
            if v > 0 {
                *drops.entry(name).or_insert(0) += v;
            }
        }
        for (t, v) in backend_totals.iter_mut().zip(c.backend_packets.snapshot()) {
            *t += v;
        }
    }
    let mut backends = Vec::with_capacity(total_backends);
    let mut totals_iter = backend_totals.into_iter();
    for s in &topo.services {
        for b in s.backends.backends() {
            backends.push(BackendReport {
                service: s.name.clone(),
                address: b.address,
                packets: totals_iter.next().unwrap_or(0),
            });
        }
    }
    // The workers' handoff rings were dropped (freeing what they held) when
    // the workers returned, so every mbuf is back before the ports close.
    for port in ports {
        port.close()?;
    }
    let leaked = pool.in_use();
    if let Some(e) = worker_error {
        return Err(e);
    }
    Ok(RunReport {
        stop_reason,
        elapsed_secs: elapsed.as_secs_f64(),
        dpdk_version: dpdk::eal::version(),
        hugepages: eal.has_hugepages(),
        ports: port_reports,
        workers: worker_counters.iter().map(counter_map).collect(),
        totals: counter_map(&totals),
        drops,
        backends,
        session_table_bytes: session_memory,
        session_capacity,
        reloads,
        mbufs_leaked: leaked,
        buckets: BucketLoadReport::from_controls(&controls, buckets.buckets()),
    })
}

/// 32 hex digits (validated by the configuration) as a 128-bit key.
fn parse_key(hex: &str) -> [u8; 16] {
    let mut key = [0u8; 16];
    for (i, b) in key.iter_mut().enumerate() {
        *b = hex
            .get(2 * i..2 * i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or(0);
    }
    key
}

/// The management loop's state.
struct Management<'a> {
    cfg: Config,
    opts: &'a RunOptions,
    controls: &'a [Arc<WorkerControl>],
    ports: &'a [Port],
    stop_signal: &'a AtomicBool,
    reload_signal: &'a AtomicBool,
    topo: Arc<Topology>,
    commands: Vec<dpdk::ring::Sender<WorkerCommand<dpdk::Mbuf>>>,
    /// Workers that still have to receive the current topology.
    pending_topology: Vec<usize>,
    reloads: u32,
    /// The mbuf pool (frames injected by `replay --in-server`).
    pool: Arc<Mempool>,
    /// The server-side capture still to inject.
    inject: Option<std::path::PathBuf>,
}

impl Management<'_> {
    /// Runs until the appliance should stop.
    fn run(&mut self, started: Instant) -> StopReason {
        let tick = Duration::from_millis(10);
        let interval = self.cfg.management.stats_interval;
        let mut next_stats = started + interval;
        let mut last_rx = u64::MAX;
        let mut last_rx_change = started;
        let mut previous = WorkerCounters::default();
        loop {
            std::thread::sleep(tick);
            let now = Instant::now();
            if self.stop_signal.load(Ordering::Relaxed) {
                log::info!("signal received: stopping");
                return StopReason::Signal;
            }
            if self.reload_signal.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            self.push_topology();
            if let Some(d) = self.opts.duration {
                if now.duration_since(started) >= d {
                    return StopReason::Duration;
                }
            }
            if let Some(idle) = self.opts.until_idle {
                let rx: u64 = self
                    .controls
                    .iter()
                    .map(|c| c.counters.snapshot().get(Counter::RxPackets))
                    .sum();
                if rx != last_rx {
                    last_rx = rx;
                    last_rx_change = now;
                } else if now.duration_since(last_rx_change) >= idle {
                    if let Some(path) = self.inject.take() {
                        match self.inject_server(&path) {
                            Ok(n) => log::info!(
                                "{}: {n} frames handed to the workers as received on the server side",
                                path.display()
                            ),
                            Err(e) => log::error!("--in-server {}: {e}", path.display()),
                        }
                        last_rx_change = Instant::now();
                        continue;
                    }
                    log::info!(
                        "no packet received for {}: stopping",
                        humantime::format_duration(idle)
                    );
                    return StopReason::Idle;
                }
            }
            if now >= next_stats {
                next_stats += interval;
                let labels = backend_labels(&self.topo);
                let total = publish_metrics(self.controls, self.ports, &labels);
                if self.cfg.management.log_stats {
                    let secs = interval.as_secs_f64();
                    log::info!(
                        "rx {:.0} pps, tx {:.0} pps, tx drops {}, idle polls {}",
                        (total.get(Counter::RxPackets) - previous.get(Counter::RxPackets)) as f64
                            / secs,
                        (total.get(Counter::TxPackets) - previous.get(Counter::TxPackets)) as f64
                            / secs,
                        total.get(Counter::TxFull),
                        total.get(Counter::IdlePolls),
                    );
                }
                previous = total;
            }
        }
    }

    /// SIGHUP: reads the configuration file again; services, backends and
    /// static neighbours change without a restart, sessions to backends that
    /// remain keep them. Anything invalid leaves the running configuration
    /// in place.
    fn reload(&mut self) {
        let Some(path) = &self.opts.config_path else {
            log::warn!("SIGHUP: running the embedded configuration; there is no file to reload");
            return;
        };
        let new = match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                log::error!(
                    "SIGHUP: {} not reloaded, the running configuration stays:\n{e}",
                    path.display()
                );
                return;
            }
        };
        let topo = match self.topo.reloaded(&new) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                log::error!(
                    "SIGHUP: {} not reloaded, the running configuration stays: {e}",
                    path.display()
                );
                return;
            }
        };
        let render = |c: &Config| {
            [
                ("eal", toml::to_string(&c.eal)),
                ("mempool", toml::to_string(&c.mempool)),
                ("workers", toml::to_string(&c.workers)),
                ("management", toml::to_string(&c.management)),
                ("ports", toml::to_string(&PortsView { ports: &c.ports })),
                ("dataplane", toml::to_string(&c.dataplane)),
            ]
        };
        let needs_restart: Vec<&str> = render(&self.cfg)
            .into_iter()
            .zip(render(&new))
            .filter(|((_, a), (_, b))| a.as_ref().ok() != b.as_ref().ok())
            .map(|((k, _), _)| k)
            .collect();
        if !needs_restart.is_empty() {
            log::warn!(
                "SIGHUP: changes to [{}] take effect at the next restart; services, backends and neighbours are applied now",
                needs_restart.join(", ")
            );
        }
        let live = topo.services.iter().filter(|s| !s.removed).count();
        log::info!("SIGHUP: {} reloaded: {live} service(s)", path.display());
        self.topo = topo;
        self.cfg = new;
        self.reloads += 1;
        self.pending_topology = (0..self.commands.len()).collect();
        self.push_topology();
    }

    /// `replay --in-server`: copies every frame of the capture into an mbuf
    /// and hands it to a worker (round robin, as RSS would spread them) as
    /// received on the server-side port; the worker then steers it like
    /// any received packet. Waits when the pool or a command ring is full.
    fn inject_server(&self, path: &std::path::Path) -> Result<u64, String> {
        let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let mut r = pcap_file::pcap::PcapReader::new(f).map_err(|e| e.to_string())?;
        let port = self.topo.server_port;
        let server_id = self
            .ports
            .get(usize::from(port))
            .map(|p| p.id().0)
            .ok_or("no server-side port")?;
        let workers = self.commands.len().max(1);
        let mut n = 0u64;
        let give_up = Duration::from_secs(10);
        while let Some(p) = r.next_packet() {
            let p = p.map_err(|e| e.to_string())?;
            let Ok(len) = u16::try_from(p.data.len()) else {
                continue;
            };
            let waited = Instant::now();
            let mut m = loop {
                if let Some(m) = self.pool.alloc() {
                    break m;
                }
                if waited.elapsed() > give_up || self.stop_signal.load(Ordering::Relaxed) {
                    return Err(format!("mbuf pool exhausted after {n} frames"));
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            let Some(buf) = m.append(len) else {
                continue; // larger than an mbuf: skipped (m is freed)
            };
            buf.copy_from_slice(&p.data);
            // A worker that hands the frame on passes the DPDK port id.
            m.set_port(server_id);
            let mut msg = WorkerCommand::Receive { port, frame: m };
            let ring = &self.commands[(n as usize) % workers];
            loop {
                match ring.send(msg) {
                    Ok(()) => break,
                    Err(back) => {
                        if waited.elapsed() > give_up || self.stop_signal.load(Ordering::Relaxed) {
                            return Err(format!("command ring full after {n} frames"));
                        }
                        msg = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
            n += 1;
        }
        Ok(n)
    }

    /// Sends the current topology to the workers that do not have it yet (a
    /// full command ring is retried on the next tick).
    fn push_topology(&mut self) {
        let topo = &self.topo;
        let commands = &self.commands;
        self.pending_topology.retain(|&w| {
            commands[w]
                .send(WorkerCommand::Topology(topo.clone()))
                .is_err()
        });
    }
}

/// Ports rendered for comparison (a TOML document needs a table at the top).
#[derive(serde::Serialize)]
struct PortsView<'a> {
    ports: &'a [crate::config::PortConfig],
}

/// (service, backend) label pairs, in the order of the published counters.
fn backend_labels(topo: &Topology) -> Vec<(String, String)> {
    topo.services
        .iter()
        .flat_map(|s| {
            s.backends
                .backends()
                .iter()
                .map(|b| (s.name.clone(), b.address.to_string()))
        })
        .collect()
}

/// Copies worker and port counters into the metrics registry; returns the
/// worker totals.
fn publish_metrics(
    controls: &[Arc<WorkerControl>],
    ports: &[Port],
    backend_labels: &[(String, String)],
) -> WorkerCounters {
    let mut total = WorkerCounters::default();
    let mut backend_totals = vec![0u64; backend_labels.len()];
    for (i, c) in controls.iter().enumerate() {
        let snap = c.counters.snapshot();
        total.accumulate(&snap);
        let worker = i.to_string();
        for k in Counter::ALL {
            if k.is_gauge() {
                metrics::gauge!(format!("roamlb_worker_{}", k.name()), "worker" => worker.clone())
                    .set(snap.get(*k) as f64);
            } else {
                metrics::counter!(format!("roamlb_worker_{}_total", k.name()), "worker" => worker.clone())
                    .absolute(snap.get(*k));
            }
        }
        for (reason, v) in WorkerControl::drop_names().zip(c.drops.snapshot()) {
            if v > 0 {
                metrics::counter!("roamlb_drops_total", "worker" => worker.clone(), "reason" => reason)
                    .absolute(v);
            }
        }
        for (t, v) in backend_totals.iter_mut().zip(c.backend_packets.snapshot()) {
            *t += v;
        }
    }
    let buckets = controls.first().map_or(0, |c| c.bucket_loads.len() / 3);
    let loads = BucketLoadReport::from_controls(controls, buckets);
    metrics::gauge!("roamlb_buckets_active").set(loads.active as f64);
    metrics::gauge!("roamlb_bucket_max_packets").set(loads.max_packets as f64);
    metrics::gauge!("roamlb_bucket_imbalance").set(loads.imbalance);
    for ((service, backend), v) in backend_labels.iter().zip(backend_totals) {
        metrics::counter!("roamlb_backend_packets_total", "service" => service.clone(), "backend" => backend.clone())
            .absolute(v);
    }
    for port in ports {
        if let Ok(s) = port.stats() {
            let name = port.name().to_owned();
            for (metric, v) in [
                ("rx_packets", s.ipackets),
                ("tx_packets", s.opackets),
                ("rx_bytes", s.ibytes),
                ("tx_bytes", s.obytes),
                ("rx_missed", s.imissed),
                ("rx_nombuf", s.rx_nombuf),
                ("rx_errors", s.ierrors),
                ("tx_errors", s.oerrors),
            ] {
                metrics::counter!(format!("roamlb_port_{metric}_total"), "port" => name.clone())
                    .absolute(v);
            }
        }
    }
    total
}
