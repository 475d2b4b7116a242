//! The appliance configuration: `conf/*.toml`, then `ROAMLB_*` environment
//! overrides, validated into an immutable [`Config`].
//!
//! Loading goes through the `config` crate (file first, then environment
//! variables such as `ROAMLB_WORKERS__BURST=16`, double underscore between
//! levels). The serde types reject unknown keys, so a typo is an error rather
//! than a silently ignored setting. Durations and sizes are written in human
//! units (`"100us"`, `"256MiB"`). After deserialisation [`Config::validate`]
//! checks what serde cannot (ranges, references between sections, queue
//! counts against workers) and names the offending key in every message, e.g.
//! `ports[1].rx_queues: 0 is not allowed (at least 1)`.
//!
//! A validated `Config` is never mutated: the runtime derives what it needs
//! from it at start-up, and a reload builds a new one.

#![forbid(unsafe_code)]

mod service;

pub use service::{
    BackendConfig, BindingNotifyConfig, DataplaneConfig, ForwardingMode, MacAddr, NeighborConfig,
    PortRole, SchedulerKind, ServiceConfig, ServiceIdentity, ServiceProtocol,
};

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// The embedded default: `conf/demo.toml`, used when `run` is given no
/// `--config` (virtual devices only, no NIC needed).
pub const DEMO_CONFIG: &str = include_str!("../../conf/demo.toml");

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key has the wrong type.
    #[error("{0}")]
    Load(String),
    /// Values parsed but are inconsistent; one line per problem.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// The whole appliance configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// DPDK environment abstraction layer.
    #[serde(default)]
    pub eal: EalConfig,
    /// The packet buffer pool.
    #[serde(default)]
    pub mempool: MempoolConfig,
    /// Worker lcores and their poll loops.
    pub workers: WorkersConfig,
    /// The management core.
    #[serde(default)]
    pub management: ManagementConfig,
    /// Network ports.
    pub ports: Vec<PortConfig>,
    /// Data-plane sizing and keys.
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    /// Load-balanced services, each with its `backend` list.
    #[serde(default)]
    pub service: Vec<ServiceConfig>,
    /// Static neighbours (address -> MAC), resolved without ARP/ND.
    #[serde(default)]
    pub neighbor: Vec<NeighborConfig>,
    /// Authenticated home-agent notifications; off when absent.
    #[serde(default)]
    pub binding_notify: Option<BindingNotifyConfig>,
}

/// EAL start-up settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EalConfig {
    /// The lcore that runs the management loop.
    pub main_lcore: u32,
    /// Back memory with hugepages; `false` starts the EAL with `--no-huge`.
    pub hugepages: bool,
    /// Memory to reserve (`-m`); required without hugepages, optional with.
    pub memory: Option<ByteSize>,
    /// Keep no shared runtime files (`--in-memory`, or `--no-shconf` without
    /// hugepages); lets several processes run side by side without distinct
    /// prefixes.
    pub in_memory: bool,
    /// `--file-prefix` for the runtime files (when not `in_memory`).
    pub file_prefix: Option<String>,
    /// EAL log level (`--log-level`), e.g. `notice`, `warning`, `debug`.
    pub log_level: String,
    /// Further EAL arguments, passed as they are (after roamlb's own).
    pub extra_args: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            main_lcore: 0,
            hugepages: true,
            memory: None,
            in_memory: true,
            file_prefix: None,
            log_level: "notice".into(),
            extra_args: Vec::new(),
        }
    }
}

/// The mbuf pool.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    /// Number of mbufs (2^n - 1 is the most memory-efficient).
    pub mbufs: u32,
    /// Per-lcore cache size.
    pub cache: u32,
    /// Buffer size per mbuf, headroom included.
    pub data_room: u16,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            mbufs: 16383,
            cache: 256,
            data_room: 2176,
        }
    }
}

/// What a worker does when a poll found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleBackoff {
    /// Spin (production: a dedicated core).
    None,
    /// A CPU pause hint.
    Pause,
    /// Sleep `idle_sleep` (tests and shared machines).
    Sleep,
}

/// Worker lcores.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Lcore ids, one poll loop each.
    pub lcores: Vec<u32>,
    /// Packets per RX burst (1 to 64).
    #[serde(default = "default_burst")]
    pub burst: u16,
    /// Backoff after an empty poll.
    #[serde(default = "default_idle")]
    pub idle: IdleBackoff,
    /// Sleep length for `idle = "sleep"`.
    #[serde(default = "default_idle_sleep", with = "humantime_serde")]
    pub idle_sleep: Duration,
    /// A partly filled TX buffer is sent at the latest after this long.
    #[serde(default = "default_tx_flush", with = "humantime_serde")]
    pub tx_flush: Duration,
}

fn default_burst() -> u16 {
    32
}
fn default_idle() -> IdleBackoff {
    IdleBackoff::None
}
fn default_idle_sleep() -> Duration {
    Duration::from_micros(50)
}
fn default_tx_flush() -> Duration {
    Duration::from_micros(100)
}

/// The management core.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagementConfig {
    /// How often worker counters are aggregated (and metrics updated).
    #[serde(with = "humantime_serde")]
    pub stats_interval: Duration,
    /// Prometheus endpoint (`GET /metrics`); none when absent.
    pub metrics_listen: Option<SocketAddr>,
    /// Log a one-line rate summary every `stats_interval`.
    pub log_stats: bool,
}

impl Default for ManagementConfig {
    fn default() -> Self {
        ManagementConfig {
            stats_interval: Duration::from_secs(1),
            metrics_listen: None,
            log_stats: false,
        }
    }
}

/// One network port.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Name used in logs, metrics and `forward_to`.
    pub name: String,
    /// A PCI address (`0000:01:00.0`, optionally `,devargs`) or vdev
    /// arguments (`net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap`).
    pub device: String,
    /// Where received packets that match no service (and ARP/ND not for
    /// the appliance) are bridged, unchanged: the name of a port (itself
    /// allowed).
    pub forward_to: Option<String>,
    /// RX queues; default one per worker.
    pub rx_queues: Option<u16>,
    /// TX queues; default one per worker (each worker needs its own).
    pub tx_queues: Option<u16>,
    /// RX descriptors per queue.
    #[serde(default = "default_descriptors")]
    pub rx_descriptors: u16,
    /// TX descriptors per queue.
    #[serde(default = "default_descriptors")]
    pub tx_descriptors: u16,
    /// MTU (default: the driver's).
    pub mtu: Option<u16>,
    /// Promiscuous mode.
    #[serde(default = "default_true")]
    pub promiscuous: bool,
    /// RSS hash types to request; intersected with what the NIC offers.
    #[serde(default = "default_rss")]
    pub rss: Vec<String>,
    /// Which side the port faces.
    #[serde(default = "default_role")]
    pub role: PortRole,
    /// The appliance's own addresses on this port, with prefix length
    /// (answered to ARP/ND; on-link prefixes for next-hop resolution).
    #[serde(default)]
    pub addresses: Vec<ipnet::IpNet>,
    /// Default gateways reached through this port (at most one per family).
    #[serde(default)]
    pub gateways: Vec<IpAddr>,
}

fn default_role() -> PortRole {
    PortRole::Both
}

fn default_descriptors() -> u16 {
    1024
}
fn default_true() -> bool {
    true
}
fn default_rss() -> Vec<String> {
    [
        "ipv4", "ipv6", "ipv6_ex", "ipv4_tcp", "ipv4_udp", "ipv6_tcp", "ipv6_udp",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl PortConfig {
    /// Whether `device` names a PCI device rather than a vdev.
    pub fn is_pci(&self) -> bool {
        is_pci_address(self.device_name())
    }

    /// The device name DPDK registers the port under: the part before the
    /// first comma, with the PCI domain added when it was left out.
    pub fn device_name(&self) -> &str {
        self.device.split(',').next().unwrap_or("")
    }

    /// The ethdev name to look the port up by.
    pub fn ethdev_name(&self) -> String {
        let n = self.device_name();
        if is_pci_address(n) && n.matches(':').count() == 1 {
            format!("0000:{n}")
        } else {
            n.to_owned()
        }
    }
}

/// `DDDD:BB:DD.F` or `BB:DD.F` in hex.
fn is_pci_address(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let (bus_dev_fn, prefix_ok) = match parts.as_slice() {
        [dom, bus, devfn] => (
            (bus, devfn),
            dom.len() == 4 && dom.chars().all(|c| c.is_ascii_hexdigit()),
        ),
        [bus, devfn] => ((bus, devfn), true),
        _ => return false,
    };
    let (bus, devfn) = bus_dev_fn;
    let Some((dev, func)) = devfn.split_once('.') else {
        return false;
    };
    prefix_ok
        && bus.len() == 2
        && bus.chars().all(|c| c.is_ascii_hexdigit())
        && dev.len() == 2
        && dev.chars().all(|c| c.is_ascii_hexdigit())
        && func.len() == 1
        && func.chars().all(|c| c.is_ascii_digit())
}

impl Config {
    /// Loads `path`, applies `ROAMLB_*` environment overrides, validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let builder = config::Config::builder().add_source(
            config::File::from(path)
                .format(config::FileFormat::Toml)
                .required(true),
        );
        Self::build(builder, &path.display().to_string())
    }

    /// Parses TOML text (e.g. the embedded demo), with environment overrides.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let builder = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml));
        Self::build(builder, origin)
    }

    fn build(
        builder: config::ConfigBuilder<config::builder::DefaultState>,
        origin: &str,
    ) -> Result<Config, ConfigError> {
        let raw = builder
            .add_source(
                config::Environment::with_prefix("ROAMLB")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .map_err(|e| ConfigError::Load(format!("{origin}: {e}")))?;
        let cfg: Config = raw
            .try_deserialize()
            .map_err(|e| ConfigError::Load(format!("{origin}: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks everything serde could not; every message names its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        let w = &self.workers;
        if w.lcores.is_empty() {
            errs.push("workers.lcores: at least one worker lcore is needed".to_owned());
        }
        let mut seen = BTreeSet::new();
        for (i, l) in w.lcores.iter().enumerate() {
            if *l == self.eal.main_lcore {
                errs.push(format!(
                    "workers.lcores[{i}]: lcore {l} is eal.main_lcore (the management core); pick another"
                ));
            }
            if !seen.insert(*l) {
                errs.push(format!("workers.lcores[{i}]: lcore {l} is listed twice"));
            }
            if *l >= 128 {
                errs.push(format!(
                    "workers.lcores[{i}]: {l} is out of range (0 to 127)"
                ));
            }
        }
        if w.burst == 0 || w.burst as usize > dpdk::MAX_BURST {
            errs.push(format!(
                "workers.burst: {} is out of range (1 to {})",
                w.burst,
                dpdk::MAX_BURST
            ));
        }
        if w.tx_flush.is_zero() || w.tx_flush > Duration::from_millis(100) {
            errs.push(format!(
                "workers.tx_flush: {} is out of range (1us to 100ms)",
                humantime::format_duration(w.tx_flush)
            ));
        }
        if w.idle == IdleBackoff::Sleep
            && (w.idle_sleep.is_zero() || w.idle_sleep > Duration::from_millis(10))
        {
            errs.push(format!(
                "workers.idle_sleep: {} is out of range (1us to 10ms)",
                humantime::format_duration(w.idle_sleep)
            ));
        }
        if self.mempool.mbufs < 1024 {
            errs.push(format!(
                "mempool.mbufs: {} is too few (at least 1024)",
                self.mempool.mbufs
            ));
        }
        if self.mempool.cache > 512 {
            errs.push(format!(
                "mempool.cache: {} is too large (at most 512, DPDK's limit)",
                self.mempool.cache
            ));
        }
        if self.mempool.data_room < 256 + 128 {
            errs.push(format!(
                "mempool.data_room: {} is too small (at least 384: 128 bytes of headroom and a minimal frame)",
                self.mempool.data_room
            ));
        }
        if !self.eal.hugepages && self.eal.memory.is_none() {
            errs.push(
                "eal.memory: required when eal.hugepages = false (e.g. \"256MiB\")".to_owned(),
            );
        }
        if let Some(m) = self.eal.memory {
            if m.as_u64() < 32 * 1024 * 1024 {
                errs.push(format!("eal.memory: {m} is too small (at least 32MiB)"));
            }
        }
        if let Some(p) = &self.eal.file_prefix {
            if p.is_empty()
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                errs.push(format!(
                    "eal.file_prefix: {p:?} must be letters, digits, '-' or '_'"
                ));
            }
        }
        if self.ports.is_empty() {
            errs.push("ports: at least one port is needed".to_owned());
        }
        let names: Vec<&str> = self.ports.iter().map(|p| p.name.as_str()).collect();
        let nworkers = w.lcores.len() as u16;
        let mut seen_names = BTreeSet::new();
        let mut seen_devices = BTreeSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            let key = format!("ports[{i}]");
            if p.name.is_empty() {
                errs.push(format!("{key}.name: must not be empty"));
            } else if !seen_names.insert(p.name.as_str()) {
                errs.push(format!("{key}.name: {:?} is used by another port", p.name));
            }
            if p.device_name().is_empty() {
                errs.push(format!("{key}.device: must name a PCI address or a vdev"));
            } else if !seen_devices.insert(p.ethdev_name()) {
                errs.push(format!(
                    "{key}.device: {:?} is used by another port",
                    p.device_name()
                ));
            }
            if let Some(f) = &p.forward_to {
                if !names.contains(&f.as_str()) {
                    errs.push(format!("{key}.forward_to: no port is named {f:?}"));
                }
            }
            for (field, q) in [("rx_queues", p.rx_queues), ("tx_queues", p.tx_queues)] {
                if q == Some(0) {
                    errs.push(format!("{key}.{field}: 0 is not allowed (at least 1)"));
                }
            }
            if let Some(tx) = p.tx_queues {
                if tx > 0 && tx < nworkers {
                    errs.push(format!(
                        "{key}.tx_queues: {tx} is fewer than the {nworkers} workers (each worker sends on its own TX queue)"
                    ));
                }
            }
            for (field, d) in [
                ("rx_descriptors", p.rx_descriptors),
                ("tx_descriptors", p.tx_descriptors),
            ] {
                if !(64..=16384).contains(&d) {
                    errs.push(format!("{key}.{field}: {d} is out of range (64 to 16384)"));
                }
            }
            if let Some(mtu) = p.mtu {
                if !(68..=9600).contains(&mtu) {
                    errs.push(format!("{key}.mtu: {mtu} is out of range (68 to 9600)"));
                }
            }
            for (j, r) in p.rss.iter().enumerate() {
                if dpdk::port::rss_flag(r).is_none() {
                    let known: Vec<&str> = dpdk::port::RSS_FLAGS.iter().map(|(n, _)| *n).collect();
                    errs.push(format!(
                        "{key}.rss[{j}]: unknown hash type {r:?} (known: {})",
                        known.join(", ")
                    ));
                }
            }
        }
        for (i, p) in self.ports.iter().enumerate() {
            let v4 = p.gateways.iter().filter(|g| g.is_ipv4()).count();
            let v6 = p.gateways.len() - v4;
            if v4 > 1 || v6 > 1 {
                errs.push(format!(
                    "ports[{i}].gateways: at most one IPv4 and one IPv6 gateway"
                ));
            }
            for (j, g) in p.gateways.iter().enumerate() {
                if !p.addresses.iter().any(|n| n.contains(g)) {
                    errs.push(format!(
                        "ports[{i}].gateways[{j}]: {g} is not inside any of the port's addresses' prefixes"
                    ));
                }
            }
        }
        service::validate(self, &mut errs);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errs))
        }
    }

    /// The effective configuration as TOML (for `check-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }

    /// RX queues of port `i`.
    pub fn rx_queues(&self, i: usize) -> u16 {
        self.ports[i]
            .rx_queues
            .unwrap_or(self.workers.lcores.len() as u16)
    }

    /// TX queues of port `i`.
    pub fn tx_queues(&self, i: usize) -> u16 {
        self.ports[i]
            .tx_queues
            .unwrap_or(self.workers.lcores.len() as u16)
    }

    /// RSS hash-type bits requested for port `i`.
    pub fn rss_bits(&self, i: usize) -> u64 {
        self.ports[i]
            .rss
            .iter()
            .filter_map(|r| dpdk::port::rss_flag(r))
            .fold(0, |a, b| a | b)
    }

    /// The EAL command line derived from this configuration.
    pub fn eal_args(&self) -> Vec<String> {
        let e = &self.eal;
        let mut args = Vec::new();
        let user_lcores = e
            .extra_args
            .iter()
            .any(|a| a == "-l" || a.starts_with("--lcores") || a == "-c");
        if !user_lcores {
            let mut lc = vec![e.main_lcore];
            lc.extend(&self.workers.lcores);
            args.push("-l".into());
            args.push(
                lc.iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        args.push(format!("--main-lcore={}", e.main_lcore));
        // DPDK 22.11 refuses --in-memory together with --no-huge; without
        // hugepages --no-shconf is what keeps runtime files away.
        match (e.hugepages, e.in_memory) {
            (true, true) => args.push("--in-memory".into()),
            (false, true) => args.extend(["--no-huge".into(), "--no-shconf".into()]),
            (false, false) => args.push("--no-huge".into()),
            (true, false) => {}
        }
        if let Some(p) = &e.file_prefix {
            args.push(format!("--file-prefix={p}"));
        }
        if let Some(m) = e.memory {
            args.push("-m".into());
            args.push((m.as_u64() / (1024 * 1024)).to_string());
        }
        args.push(format!("--log-level={}", e.log_level));
        let mut any_pci = false;
        for p in &self.ports {
            if p.is_pci() {
                any_pci = true;
                args.push("-a".into());
                args.push(p.device.clone());
            } else {
                args.push(format!("--vdev={}", p.device));
            }
        }
        if !any_pci
            && !e
                .extra_args
                .iter()
                .any(|a| a == "-a" || a.starts_with("--allow"))
        {
            args.push("--no-pci".into());
        }
        args.extend(e.extra_args.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests;
