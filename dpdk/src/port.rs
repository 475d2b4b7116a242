//! Ethernet ports: configuration, start/stop, statistics, and the per-queue
//! handles the poll loops use.
//!
//! A port is configured once with N RX and M TX queues. Each queue handle
//! ([`RxQueue`], [`TxQueue`]) can be taken exactly once, so exactly one worker
//! polls a given queue: DPDK's RX/TX functions are not thread-safe per queue,
//! and the type system enforces the one-owner rule instead of a lock.
//! RSS hash types requested by configuration are intersected with what the
//! driver offers; what was dropped is reported so the operator knows, for
//! example, that a NIC cannot hash the Home Address option (`IPV6_EX`).

use std::ffi::{CStr, CString};
use std::sync::Arc;

use crate::error::{check, DpdkError, Result};
use crate::ffi;
use crate::ids::{PortId, QueueId, SocketId};
use crate::mbuf::PacketBurst;
use crate::mempool::Mempool;

/// Named RSS hash-type flags, for configuration and logs.
pub const RSS_FLAGS: &[(&str, u64)] = &[
    ("ipv4", ffi::RTE_ETH_RSS_IPV4),
    ("ipv4_tcp", ffi::RTE_ETH_RSS_NONFRAG_IPV4_TCP),
    ("ipv4_udp", ffi::RTE_ETH_RSS_NONFRAG_IPV4_UDP),
    ("ipv4_other", ffi::RTE_ETH_RSS_NONFRAG_IPV4_OTHER),
    ("ipv4_frag", ffi::RTE_ETH_RSS_FRAG_IPV4),
    ("ipv6", ffi::RTE_ETH_RSS_IPV6),
    ("ipv6_tcp", ffi::RTE_ETH_RSS_NONFRAG_IPV6_TCP),
    ("ipv6_udp", ffi::RTE_ETH_RSS_NONFRAG_IPV6_UDP),
    ("ipv6_other", ffi::RTE_ETH_RSS_NONFRAG_IPV6_OTHER),
    ("ipv6_frag", ffi::RTE_ETH_RSS_FRAG_IPV6),
    ("ipv6_ex", ffi::RTE_ETH_RSS_IPV6_EX),
    ("ipv6_tcp_ex", ffi::RTE_ETH_RSS_IPV6_TCP_EX),
    ("ipv6_udp_ex", ffi::RTE_ETH_RSS_IPV6_UDP_EX),
    ("esp", ffi::RTE_ETH_RSS_ESP),
];

/// Looks up an RSS flag by its configuration name.
pub fn rss_flag(name: &str) -> Option<u64> {
    RSS_FLAGS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Names of the flags set in `bits` (unknown bits are omitted).
pub fn rss_names(bits: u64) -> Vec<&'static str> {
    RSS_FLAGS
        .iter()
        .filter(|(_, f)| bits & f != 0)
        .map(|(n, _)| *n)
        .collect()
}

/// How a port is to be set up.
#[derive(Debug, Clone)]
pub struct PortSetup {
    /// RX queues (one per worker that polls this port).
    pub rx_queues: u16,
    /// TX queues (one per worker that may send on this port).
    pub tx_queues: u16,
    /// RX descriptors per queue.
    pub rx_descriptors: u16,
    /// TX descriptors per queue.
    pub tx_descriptors: u16,
    /// MTU to set, if any.
    pub mtu: Option<u16>,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// Requested RSS hash types (`RTE_ETH_RSS_*`).
    pub rss_hash_types: u64,
}

/// What the driver says about a port.
#[derive(Debug, Clone)]
pub struct PortInfo {
    /// Driver name, e.g. `net_ring`.
    pub driver: String,
    /// Maximum RX queues.
    pub max_rx_queues: u16,
    /// Maximum TX queues.
    pub max_tx_queues: u16,
    /// RSS hash types the driver can compute.
    pub rss_offloads: u64,
    /// Largest MTU.
    pub max_mtu: u16,
    /// Socket the device is attached to.
    pub socket: SocketId,
}

/// Link state as reported without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Whether the link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// RX packets dropped by the hardware because no descriptor was free.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// A configured ethdev port. Stops and closes itself when dropped.
#[derive(Debug)]
pub struct Port {
    id: PortId,
    name: String,
    info: PortInfo,
    rss_hash_types: u64,
    rss_dropped: u64,
    rx_taken: Vec<bool>,
    tx_taken: Vec<bool>,
    started: bool,
    closed: bool,
    _pool: Arc<Mempool>,
}

impl Port {
    /// Finds the port id of a probed device by its name (a PCI address such as
    /// `0000:01:00.0`, or a vdev name such as `net_ring0`).
    pub fn lookup(name: &str) -> Result<PortId> {
        let c = CString::new(name)
            .map_err(|_| DpdkError::Invalid(format!("port name {name:?} contains NUL")))?;
        let mut id: u16 = 0;
        // SAFETY: c is a valid C string and id a valid out-pointer for the call.
        let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        check(|| format!("rte_eth_dev_get_port_by_name({name})"), ret)?;
        Ok(PortId(id))
    }

    /// Number of ports the EAL probed.
    pub fn count() -> u16 {
        // SAFETY: reads ethdev's port table.
        unsafe { ffi::rte_eth_dev_count_avail() }
    }

    /// What the driver reports for `id`.
    pub fn info(id: PortId) -> Result<PortInfo> {
        let mut di = ffi::rte_eth_dev_info::default();
        // SAFETY: di is a valid out-pointer; DPDK validates the port id.
        let ret = unsafe { ffi::rte_eth_dev_info_get(id.0, &mut di) };
        check(|| format!("rte_eth_dev_info_get({id})"), ret)?;
        let driver = if di.driver_name.is_null() {
            String::from("unknown")
        } else {
            // SAFETY: driver_name points at the driver's static name string.
            unsafe { CStr::from_ptr(di.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: reads the port's socket from ethdev's table.
        let socket = SocketId(unsafe { ffi::rte_eth_dev_socket_id(id.0) });
        Ok(PortInfo {
            driver,
            max_rx_queues: di.max_rx_queues,
            max_tx_queues: di.max_tx_queues,
            rss_offloads: di.flow_type_rss_offloads,
            max_mtu: di.max_mtu,
            socket,
        })
    }

    /// Configures queues, RSS, MTU and promiscuous mode, and sets up every
    /// queue with RX buffers from `pool`. The port is not started.
    pub fn configure(
        id: PortId,
        name: &str,
        setup: &PortSetup,
        pool: Arc<Mempool>,
    ) -> Result<Port> {
        let info = Self::info(id)?;
        if setup.rx_queues == 0 || setup.tx_queues == 0 {
            return Err(DpdkError::Invalid(format!(
                "{name}: at least one RX and one TX queue are needed"
            )));
        }
        if setup.rx_queues > info.max_rx_queues || setup.tx_queues > info.max_tx_queues {
            return Err(DpdkError::Invalid(format!(
                "{name} ({}): {} RX / {} TX queues requested, driver allows {} / {}",
                info.driver,
                setup.rx_queues,
                setup.tx_queues,
                info.max_rx_queues,
                info.max_tx_queues
            )));
        }
        let rss = setup.rss_hash_types & info.rss_offloads;
        let rss_dropped = setup.rss_hash_types & !info.rss_offloads;

        let mut conf = ffi::rte_eth_conf::default();
        if rss != 0 && setup.rx_queues > 1 {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss;
            conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
        }
        // SAFETY: conf is a valid, initialised rte_eth_conf that DPDK copies.
        let ret =
            unsafe { ffi::rte_eth_dev_configure(id.0, setup.rx_queues, setup.tx_queues, &conf) };
        check(
            || {
                format!(
                    "rte_eth_dev_configure({name}, {} rx, {} tx)",
                    setup.rx_queues, setup.tx_queues
                )
            },
            ret,
        )?;

        let mut nb_rxd = setup.rx_descriptors;
        let mut nb_txd = setup.tx_descriptors;
        // SAFETY: valid out-pointers; DPDK clamps the values to driver limits.
        let ret = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut nb_rxd, &mut nb_txd) };
        check(|| format!("rte_eth_dev_adjust_nb_rx_tx_desc({name})"), ret)?;

        let socket = if info.socket.0 < 0 {
            0
        } else {
            info.socket.0 as u32
        };
        for q in 0..setup.rx_queues {
            // SAFETY: NULL rx_conf means driver defaults; the pool outlives the
            // port because the Port holds an Arc to it.
            let ret = unsafe {
                ffi::rte_eth_rx_queue_setup(
                    id.0,
                    q,
                    nb_rxd,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(
                || format!("rte_eth_rx_queue_setup({name}, queue {q}, {nb_rxd} descriptors)"),
                ret,
            )?;
        }
        for q in 0..setup.tx_queues {
            // SAFETY: NULL tx_conf means driver defaults.
            let ret =
                unsafe { ffi::rte_eth_tx_queue_setup(id.0, q, nb_txd, socket, std::ptr::null()) };
            check(
                || format!("rte_eth_tx_queue_setup({name}, queue {q}, {nb_txd} descriptors)"),
                ret,
            )?;
        }
        if let Some(mtu) = setup.mtu {
            // SAFETY: plain call; DPDK validates the value.
            let ret = unsafe { ffi::rte_eth_dev_set_mtu(id.0, mtu) };
            if ret == -(libc_enotsup()) {
                log::warn!(
                    "{name} ({}): driver cannot set the MTU; keeping its default",
                    info.driver
                );
            } else {
                check(|| format!("rte_eth_dev_set_mtu({name}, {mtu})"), ret)?;
            }
        }
        if setup.promiscuous {
            // SAFETY: plain call on a configured port.
            let ret = unsafe { ffi::rte_eth_promiscuous_enable(id.0) };
            if ret == -(libc_enotsup()) {
                log::warn!("{name} ({}): driver has no promiscuous mode", info.driver);
            } else {
                check(|| format!("rte_eth_promiscuous_enable({name})"), ret)?;
            }
        }
        Ok(Port {
            id,
            name: name.to_owned(),
            rss_hash_types: if setup.rx_queues > 1 { rss } else { 0 },
            rss_dropped,
            rx_taken: vec![false; setup.rx_queues as usize],
            tx_taken: vec![false; setup.tx_queues as usize],
            info,
            started: false,
            closed: false,
            _pool: pool,
        })
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Driver facts.
    pub fn port_info(&self) -> &PortInfo {
        &self.info
    }

    /// RSS hash types in effect.
    pub fn rss_hash_types(&self) -> u64 {
        self.rss_hash_types
    }

    /// Requested RSS hash types the driver does not offer.
    pub fn rss_dropped(&self) -> u64 {
        self.rss_dropped
    }

    /// Takes the handle of RX queue `q`; `None` if out of range or taken.
    pub fn take_rx_queue(&mut self, q: u16) -> Option<RxQueue> {
        let slot = self.rx_taken.get_mut(q as usize)?;
        if *slot {
            return None;
        }
        *slot = true;
        Some(RxQueue {
            port: self.id,
            queue: QueueId(q),
        })
    }

    /// Takes the handle of TX queue `q`; `None` if out of range or taken.
    pub fn take_tx_queue(&mut self, q: u16) -> Option<TxQueue> {
        let slot = self.tx_taken.get_mut(q as usize)?;
        if *slot {
            return None;
        }
        *slot = true;
        Some(TxQueue {
            port: self.id,
            queue: QueueId(q),
        })
    }

    /// Starts the port.
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: the port is configured with every queue set up.
        let ret = unsafe { ffi::rte_eth_dev_start(self.id.0) };
        check(|| format!("rte_eth_dev_start({})", self.name), ret)?;
        self.started = true;
        Ok(())
    }

    /// Stops the port. Every worker polling it must have stopped first.
    pub fn stop(&mut self) -> Result<()> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        // SAFETY: the port was started; workers using its queues have been
        // joined by the caller (RxQueue/TxQueue handles are not used after).
        let ret = unsafe { ffi::rte_eth_dev_stop(self.id.0) };
        check(|| format!("rte_eth_dev_stop({})", self.name), ret).map(|_| ())
    }

    /// Stops and closes the port, releasing the device (pcap output files are
    /// flushed and closed here).
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        let stopped = self.stop();
        self.closed = true;
        // SAFETY: the port is stopped and no queue handle is in use any more.
        let ret = unsafe { ffi::rte_eth_dev_close(self.id.0) };
        stopped?;
        check(|| format!("rte_eth_dev_close({})", self.name), ret).map(|_| ())
    }

    /// Link state, without waiting for autonegotiation.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut link = ffi::rte_eth_link::default();
        // SAFETY: link is a valid out-pointer.
        let ret = unsafe { ffi::rte_eth_link_get_nowait(self.id.0, &mut link) };
        check(|| format!("rte_eth_link_get_nowait({})", self.name), ret)?;
        Ok(LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// Counters of this port.
    pub fn stats(&self) -> Result<PortStats> {
        stats(self.id)
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut addr = ffi::rte_ether_addr::default();
        // SAFETY: addr is a valid out-pointer.
        let ret = unsafe { ffi::rte_eth_macaddr_get(self.id.0, &mut addr) };
        check(|| format!("rte_eth_macaddr_get({})", self.name), ret)?;
        Ok(addr.addr_bytes)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            log::warn!("closing {}: {e}", self.name);
        }
    }
}

/// Counters of any port, by id (read-only; safe from the management core
/// while workers run).
pub fn stats(id: PortId) -> Result<PortStats> {
    let mut s = ffi::rte_eth_stats::default();
    // SAFETY: s is a valid out-pointer; DPDK validates the port id.
    let ret = unsafe { ffi::rte_eth_stats_get(id.0, &mut s) };
    check(|| format!("rte_eth_stats_get({id})"), ret)?;
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

fn libc_enotsup() -> i32 {
    95 // ENOTSUP on Linux
}

/// The only handle that may receive on one RX queue of one port.
#[derive(Debug)]
pub struct RxQueue {
    port: PortId,
    queue: QueueId,
}

impl RxQueue {
    /// The port.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue.
    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Receives up to the free room of `burst` (at most `max`); returns how
    /// many packets were added.
    #[inline]
    pub fn recv(&mut self, burst: &mut PacketBurst, max: usize) -> usize {
        let (ptr, room) = burst.spare_raw();
        let want = room.min(max) as u16;
        if want == 0 {
            return 0;
        }
        // SAFETY: ptr has room for `want` mbuf pointers; this handle is the
        // queue's only poller (taken once from the Port).
        let n = unsafe { ffi::rte_eth_rx_burst(self.port.0, self.queue.0, ptr, want) } as usize;
        // SAFETY: DPDK wrote n owned mbufs into the spare slots.
        unsafe { burst.commit(n) };
        n
    }
}

/// The only handle that may transmit on one TX queue of one port.
#[derive(Debug)]
pub struct TxQueue {
    port: PortId,
    queue: QueueId,
}

impl TxQueue {
    /// The port.
    pub fn port(&self) -> PortId {
        self.port
    }

    /// The queue.
    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Transmits the whole burst. Returns `(sent, dropped)`: what the driver
    /// did not take is freed (the burst is always empty afterwards).
    #[inline]
    pub fn send(&mut self, burst: &mut PacketBurst) -> (usize, usize) {
        let (ptr, len) = burst.filled_raw();
        if len == 0 {
            return (0, 0);
        }
        // SAFETY: ptr holds len owned mbufs; this handle is the queue's only
        // sender. The driver takes ownership of the first `sent`.
        let sent =
            unsafe { ffi::rte_eth_tx_burst(self.port.0, self.queue.0, ptr, len as u16) } as usize;
        burst.consume_front(sent);
        let dropped = burst.len();
        burst.clear();
        (sent, dropped)
    }

    /// Transmits what the driver takes now and keeps the rest in `burst`, in
    /// order, for the next call (a generator that must not lose packets it
    /// numbered). Returns how many were sent.
    #[inline]
    pub fn send_some(&mut self, burst: &mut PacketBurst) -> usize {
        let (ptr, len) = burst.filled_raw();
        if len == 0 {
            return 0;
        }
        // SAFETY: ptr holds len owned mbufs; this handle is the queue's only
        // sender. The driver takes ownership of the first `sent`, which
        // consume_front then forgets; the rest stay owned by the burst.
        let sent =
            unsafe { ffi::rte_eth_tx_burst(self.port.0, self.queue.0, ptr, len as u16) } as usize;
        burst.consume_front(sent);
        sent
    }
}
