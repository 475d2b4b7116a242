//! `roamlb gen`: a mobile-node traffic generator and receive-side verifier.
//!
//! [`traffic`] builds one frame template per kind of client once and turns
//! it into each packet by copying it and patching node id, care-of address,
//! sequence number, timestamp and checksums incrementally — no allocation
//! and no payload summing per packet. [`verify`] checks, per flow, what the
//! appliance sent toward the backends: loss, duplicates, reordering, affinity
//! (one backend per mobile node) and latency. [`live`] runs both on DPDK
//! ports (one lcore: transmit and receive in one loop, paced by the TSC);
//! [`write_pcap`] writes the same packet sequence to a capture without an
//! EAL, for pktgen-dpdk, tcpreplay or `roamlb replay`.

pub mod cli;
pub mod live;
pub mod traffic;
pub mod verify;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

pub use traffic::{GenCounts, Generator, Kind, Mix, Profile, Transport};
pub use verify::{Verifier, VerifyReport};

/// Why the generator failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// Writing the capture failed.
    #[error("writing {path}: {msg}")]
    Pcap {
        /// The file.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// DPDK failed.
    #[error(transparent)]
    Dpdk(#[from] dpdk::DpdkError),
    /// Set-up failed.
    #[error("{0}")]
    Setup(String),
}

/// Options of a run beyond the traffic profile.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// Packets per second (0: as fast as the port takes them).
    pub rate: f64,
    /// Stop after this many packets.
    pub count: Option<u64>,
    /// Stop sending after this long.
    pub duration: Option<Duration>,
    /// Throughput is measured after this long.
    pub warmup: Duration,
    /// After sending, wait until nothing arrived for this long.
    pub drain: Duration,
    /// Wait at most this long for the ports' links.
    pub link_wait: Duration,
    /// Check every received frame (else count only).
    pub verify: bool,
    /// Sleep briefly when a loop iteration did nothing.
    pub idle_sleep: bool,
    /// TX port (ethdev name); default the first probed port.
    pub tx_port: Option<String>,
    /// RX port (ethdev name); default the second probed port, else the first.
    pub rx_port: Option<String>,
}

/// Frame lengths (without FCS) of each kind, and of a Binding Update.
pub fn frame_lengths(g: &Generator) -> Vec<(&'static str, usize)> {
    Kind::ALL
        .iter()
        .map(|&k| (k.name(), g.frame_len(k)))
        .collect()
}

/// What `--write-pcap` did.
#[derive(Debug, Clone, Serialize)]
pub struct PcapReport {
    /// The capture.
    pub file: String,
    /// Frames written.
    pub packets: u64,
    /// Bytes written (frames, without FCS).
    pub bytes: u64,
    /// What was generated.
    pub generated: GenCounts,
    /// Data frame length per kind (without FCS).
    pub frame_lengths: Vec<(&'static str, usize)>,
}

/// Writes `count` packets of `profile` to a pcap file, timestamps spaced at
/// `rate` packets per second (1 Mpps when 0); the mark carries the
/// timestamp in nanoseconds instead of a TSC.
pub fn write_pcap(
    profile: &Profile,
    count: u64,
    rate: f64,
    path: &Path,
) -> Result<PcapReport, GenError> {
    let err = |msg: String| GenError::Pcap {
        path: path.display().to_string(),
        msg,
    };
    let mut g = Generator::new(profile).map_err(GenError::Options)?;
    let f = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    let mut w = pcap_file::pcap::PcapWriter::new(std::io::BufWriter::new(f))
        .map_err(|e| err(e.to_string()))?;
    let rate = if rate > 0.0 { rate } else { 1e6 };
    let mut buf = [0u8; traffic::MAX_FRAME];
    let mut bytes = 0u64;
    for i in 0..count {
        let ts = Duration::from_secs_f64(i as f64 / rate);
        let p = g.plan();
        let len = g.len_of(&p);
        g.fill(&p, &mut buf[..len], ts.as_nanos() as u64);
        w.write_packet(&pcap_file::pcap::PcapPacket::new(
            ts,
            len as u32,
            &buf[..len],
        ))
        .map_err(|e| err(e.to_string()))?;
        bytes += len as u64;
    }
    drop(w);
    Ok(PcapReport {
        file: path.display().to_string(),
        packets: count,
        bytes,
        generated: g.counts,
        frame_lengths: frame_lengths(&g),
    })
}

/// Checks a capture of what the appliance sent toward the backends against
/// the first `count` packets of `profile` (regenerated to know how many each
/// flow sent): loss, duplicates, reordering, affinity. No latency (a
/// capture's marks carry generation time, not a TSC).
pub fn verify_pcap(profile: &Profile, count: u64, path: &Path) -> Result<VerifyReport, GenError> {
    let err = |msg: String| GenError::Pcap {
        path: path.display().to_string(),
        msg,
    };
    let mut g = Generator::new(profile).map_err(GenError::Options)?;
    for _ in 0..count {
        g.plan();
    }
    let mut v = Verifier::new(g.nodes(), g.nodes().saturating_add(1 << 31), 0);
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut r = pcap_file::pcap::PcapReader::new(std::io::BufReader::new(f))
        .map_err(|e| err(e.to_string()))?;
    while let Some(p) = r.next_packet() {
        let p = p.map_err(|e| err(e.to_string()))?;
        v.on_frame(&p.data, 0);
    }
    Ok(v.report(g.sent_per_node()))
}

/// Parses a MAC address `xx:xx:xx:xx:xx:xx`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    s.parse::<crate::config::MacAddr>().map(|m| m.0)
}

/// The default VIPs (as in `conf/` examples and the tests).
pub const DEFAULT_VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0x80);
/// The default IPv4 VIP.
pub const DEFAULT_VIP4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 80);
