//! Load-balanced services, their backends, the appliance's own addresses and
//! the data plane's sizing.
//!
//! The key names here are an interface: operators' tooling writes them. A
//! service is a VIP (IPv4 or IPv6), a protocol (`tcp`, `udp`, or `any` — every
//! IP packet to the VIP, including ESP and Mobility Header signalling, which
//! must reach the same backend as the data, RFC 6275 §9.3.1), optional ports,
//! how the mobile identity is derived, a scheduler, a forwarding mode and a
//! session lifetime; its `backend` list gives address, weight and priority
//! group (the lowest-numbered group with usable members serves).

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Which traffic to the VIP belongs to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceProtocol {
    /// TCP to the listed ports.
    Tcp,
    /// UDP to the listed ports.
    Udp,
    /// Every IP packet to the VIP (ports, if given, filter TCP and UDP).
    Any,
}

/// Identity precedence (S1): `default` = ESP SPI, Home Address option,
/// source address; `slaac` puts the IPv6 interface ID before the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceIdentity {
    /// SPI, HAO, source.
    Default,
    /// SPI, HAO, interface ID, source.
    Slaac,
}

/// Backend selection for a new identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerKind {
    /// Weighted Maglev consistent hashing.
    Maglev,
    /// Smooth weighted round robin.
    Wrr,
    /// Fewest active sessions (weighted).
    LeastConn,
}

/// How packets reach the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardingMode {
    /// Destination NAT: VIP -> backend; replies translated back.
    Dnat,
    /// Full NAT: source rewritten to an appliance address and port too.
    Fnat,
    /// Encapsulating direct server return (IPv6-in-IPv6 / IPv4-in-IPv4).
    Dsr,
}

impl ForwardingMode {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardingMode::Dnat => "dnat",
            ForwardingMode::Fnat => "fnat",
            ForwardingMode::Dsr => "dsr",
        }
    }
}

/// One backend server of a service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// The server's address.
    pub address: IpAddr,
    /// Relative share of new identities (0 drains: no new sessions).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Priority group; the lowest-numbered group with usable members serves.
    #[serde(default)]
    pub group: u8,
}

fn default_weight() -> u32 {
    100
}

/// One load-balanced service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Unique name (metrics, admin API).
    pub name: String,
    /// The virtual address clients send to.
    pub vip: IpAddr,
    /// Which traffic to the VIP.
    pub protocol: ServiceProtocol,
    /// Destination ports; absent = all.
    pub ports: Option<Vec<u16>>,
    /// Identity precedence.
    #[serde(default = "default_identity")]
    pub identity: ServiceIdentity,
    /// Backend selection.
    #[serde(default = "default_scheduler")]
    pub scheduler: SchedulerKind,
    /// Forwarding mode.
    #[serde(default = "default_forwarding")]
    pub forwarding: ForwardingMode,
    /// Idle time after which an identity's session (and its aliases) expire.
    #[serde(default = "default_lifetime", with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// Appliance addresses used as sources in full-NAT mode (default: the
    /// server-side port's addresses of the VIP's family).
    #[serde(default)]
    pub fnat_addresses: Vec<IpAddr>,
    /// Full NAT: idle time after which a connection (and its local port)
    /// expires; at most `session_lifetime`, which it defaults to.
    #[serde(default, with = "humantime_serde")]
    pub fnat_idle_timeout: Option<Duration>,
    /// Full NAT: how long a TCP connection lives after its last segment once
    /// it closed (a RST, or a FIN each way); at most the idle timeout.
    /// Default 10 s (or the idle timeout, if shorter).
    #[serde(default, with = "humantime_serde")]
    pub fnat_closed_timeout: Option<Duration>,
    /// The servers.
    #[serde(default)]
    pub backend: Vec<BackendConfig>,
}

impl ServiceConfig {
    /// The full-NAT idle timeout in effect: `fnat_idle_timeout`, else
    /// `session_lifetime`.
    pub fn fnat_idle(&self) -> Duration {
        self.fnat_idle_timeout.unwrap_or(self.session_lifetime)
    }

    /// The closed-TCP timeout in effect: `fnat_closed_timeout`, else 10 s,
    /// never above [`ServiceConfig::fnat_idle`].
    pub fn fnat_closed(&self) -> Duration {
        self.fnat_closed_timeout
            .unwrap_or(Duration::from_secs(10))
            .min(self.fnat_idle())
    }
}

fn default_identity() -> ServiceIdentity {
    ServiceIdentity::Default
}
fn default_scheduler() -> SchedulerKind {
    SchedulerKind::Maglev
}
fn default_forwarding() -> ForwardingMode {
    ForwardingMode::Dnat
}
fn default_lifetime() -> Duration {
    Duration::from_secs(300)
}

/// A statically configured neighbour (no ARP/ND needed for it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborConfig {
    /// The neighbour's IP address.
    pub address: IpAddr,
    /// Its MAC address, `xx:xx:xx:xx:xx:xx`.
    pub mac: MacAddr,
    /// The port it is reached through.
    pub port: String,
}

/// Data-plane sizing and keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    /// Shard buckets (a power of two); the unit of ownership in a cluster.
    pub buckets: u32,
    /// Session table capacity per worker.
    pub sessions_per_worker: u32,
    /// Alias (care-of address) table capacity per worker.
    pub aliases_per_worker: u32,
    /// NAT connection table capacity per worker.
    pub connections_per_worker: u32,
    /// Packets each worker's handoff ring holds.
    pub handoff_ring: u32,
    /// Extension headers walked before a packet is refused (1 to 32).
    pub extension_header_limit: u8,
    /// Packets each worker holds while their next hop is resolved (ARP /
    /// neighbour discovery), at most 8 per next hop; 0 drops them instead.
    pub neighbor_hold: u32,
    /// Key of the identity hash, 32 hex digits; cluster members must share
    /// it. Absent: a random key per start (a single appliance).
    pub hash_key: Option<String>,
    /// ICMP errors the appliance originates per second (DSR's Packet Too
    /// Big and Fragmentation Needed), split evenly over the workers; 1 to
    /// 10,000,000 (RFC 4443 §2.4 (f): the rate must be limited).
    pub icmp_errors_per_second: u32,
    /// ICMP errors it translates and passes on per second (between clients
    /// and backends, one for one), split over the workers; 0: no limit.
    pub icmp_translated_per_second: u32,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            buckets: 4096,
            sessions_per_worker: 1 << 20,
            aliases_per_worker: 1 << 16,
            connections_per_worker: 1 << 20,
            handoff_ring: 4096,
            extension_header_limit: 8,
            neighbor_hold: crate::dataplane::hold::HOLD_DEFAULT as u32,
            hash_key: None,
            icmp_errors_per_second: 1000,
            icmp_translated_per_second: 0,
        }
    }
}

/// The authenticated home-agent notification channel (S1): UDP datagrams to
/// any of the appliance's addresses or VIPs on this port, HMAC-SHA256 with
/// a shared key (format in the README).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingNotifyConfig {
    /// UDP destination port.
    pub port: u16,
    /// Shared key, 32 to 128 hex digits (16 to 64 octets).
    pub key: String,
    /// Largest accepted difference between a notification's timestamp and
    /// the appliance's clock.
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub max_skew: Duration,
    /// Home addresses whose last sequence number each worker remembers.
    #[serde(default = "default_guard")]
    pub replay_guard: u32,
}

fn default_skew() -> Duration {
    Duration::from_secs(30)
}
fn default_guard() -> u32 {
    65536
}

/// Which side of the appliance a port faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortRole {
    /// Faces the (mobile) clients: VIPs are answered here.
    Client,
    /// Faces the backends.
    Server,
    /// Both (a one-armed appliance).
    Both,
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in out.iter_mut() {
            let p = parts
                .next()
                .ok_or_else(|| format!("{s:?} is not a MAC address (xx:xx:xx:xx:xx:xx)"))?;
            if p.len() != 2 {
                return Err(format!("{s:?} is not a MAC address (xx:xx:xx:xx:xx:xx)"));
            }
            *b = u8::from_str_radix(p, 16)
                .map_err(|_| format!("{s:?} is not a MAC address (xx:xx:xx:xx:xx:xx)"))?;
        }
        if parts.next().is_some() {
            return Err(format!("{s:?} is not a MAC address (xx:xx:xx:xx:xx:xx)"));
        }
        Ok(MacAddr(out))
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Checks services, backends, neighbours and sizing; appends key-named
/// problems to `errs`.
pub(crate) fn validate(cfg: &super::Config, errs: &mut Vec<String>) {
    let d = &cfg.dataplane;
    if !d.buckets.is_power_of_two() || !(64..=65536).contains(&d.buckets) {
        errs.push(format!(
            "dataplane.buckets: {} must be a power of two from 64 to 65536",
            d.buckets
        ));
    }
    for (key, v) in [
        ("sessions_per_worker", d.sessions_per_worker),
        ("aliases_per_worker", d.aliases_per_worker),
        ("connections_per_worker", d.connections_per_worker),
    ] {
        if !(1024..=1 << 26).contains(&v) {
            errs.push(format!(
                "dataplane.{key}: {v} is out of range (1024 to 67108864)"
            ));
        }
    }
    if !(256..=1 << 20).contains(&d.handoff_ring) {
        errs.push(format!(
            "dataplane.handoff_ring: {} is out of range (256 to 1048576)",
            d.handoff_ring
        ));
    }
    if !(1..=32).contains(&d.extension_header_limit) {
        errs.push(format!(
            "dataplane.extension_header_limit: {} is out of range (1 to 32)",
            d.extension_header_limit
        ));
    }
    if d.neighbor_hold as usize > crate::dataplane::hold::HOLD_MAX {
        errs.push(format!(
            "dataplane.neighbor_hold: {} is out of range (0 to {})",
            d.neighbor_hold,
            crate::dataplane::hold::HOLD_MAX
        ));
    }
    if !(1..=10_000_000).contains(&d.icmp_errors_per_second) {
        errs.push(format!(
            "dataplane.icmp_errors_per_second: {} is out of range (1 to 10000000; the rate of errors the appliance originates must be limited, RFC 4443 section 2.4)",
            d.icmp_errors_per_second
        ));
    }
    if d.icmp_translated_per_second > 10_000_000 {
        errs.push(format!(
            "dataplane.icmp_translated_per_second: {} is out of range (0 = no limit, up to 10000000)",
            d.icmp_translated_per_second
        ));
    }
    if let Some(k) = &d.hash_key {
        if k.len() != 32 || !k.chars().all(|c| c.is_ascii_hexdigit()) {
            errs.push("dataplane.hash_key: must be 32 hex digits (128 bits)".to_owned());
        }
    }

    if let Some(n) = &cfg.binding_notify {
        if n.port == 0 {
            errs.push("binding_notify.port: 0 is not a port".to_owned());
        }
        if !(32..=128).contains(&n.key.len())
            || n.key.len() % 2 != 0
            || !n.key.chars().all(|c| c.is_ascii_hexdigit())
        {
            errs.push(
                "binding_notify.key: must be 32 to 128 hex digits (16 to 64 octets)".to_owned(),
            );
        }
        if n.max_skew < Duration::from_secs(1) || n.max_skew > Duration::from_secs(3600) {
            errs.push(format!(
                "binding_notify.max_skew: {} is out of range (1s to 1h)",
                humantime::format_duration(n.max_skew)
            ));
        }
        if !(1024..=1 << 24).contains(&n.replay_guard) {
            errs.push(format!(
                "binding_notify.replay_guard: {} is out of range (1024 to 16777216)",
                n.replay_guard
            ));
        }
    }
    let port_names: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
    for (i, n) in cfg.neighbor.iter().enumerate() {
        if !port_names.contains(&n.port.as_str()) {
            errs.push(format!("neighbor[{i}].port: no port is named {:?}", n.port));
        }
    }

    let mut names = std::collections::BTreeSet::new();
    let mut listeners = std::collections::BTreeSet::new();
    for (i, s) in cfg.service.iter().enumerate() {
        let key = format!("service[{i}]");
        if s.name.is_empty() {
            errs.push(format!("{key}.name: must not be empty"));
        } else if !names.insert(s.name.as_str()) {
            errs.push(format!(
                "{key}.name: {:?} is used by another service",
                s.name
            ));
        }
        if let Some(ports) = &s.ports {
            if ports.is_empty() {
                errs.push(format!(
                    "{key}.ports: empty list (leave the key out for all ports)"
                ));
            }
            if ports.contains(&0) {
                errs.push(format!("{key}.ports: 0 is not a port"));
            }
        }
        // Two services must not claim the same (vip, protocol, port).
        let protos: &[&str] = match s.protocol {
            ServiceProtocol::Tcp => &["tcp"],
            ServiceProtocol::Udp => &["udp"],
            ServiceProtocol::Any => &["tcp", "udp", "other"],
        };
        let ports: Vec<Option<u16>> = match &s.ports {
            Some(p) => p.iter().map(|p| Some(*p)).collect(),
            None => vec![None],
        };
        for proto in protos {
            for port in &ports {
                let overlap = listeners
                    .iter()
                    .any(|(v, pr, po): &(IpAddr, &str, Option<u16>)| {
                        *v == s.vip && pr == proto && (po.is_none() || port.is_none() || po == port)
                    });
                if overlap {
                    errs.push(format!(
                        "{key}: {} {proto}{} overlaps another service",
                        s.vip,
                        port.map(|p| format!(" port {p}")).unwrap_or_default()
                    ));
                }
            }
        }
        for proto in protos {
            for port in &ports {
                listeners.insert((s.vip, *proto, *port));
            }
        }
        if s.session_lifetime < Duration::from_millis(10)
            || s.session_lifetime > Duration::from_secs(7 * 86400)
        {
            errs.push(format!(
                "{key}.session_lifetime: {} is out of range (10ms to 7days)",
                humantime::format_duration(s.session_lifetime)
            ));
        } else if s.forwarding == ForwardingMode::Fnat
            && s.session_lifetime < Duration::from_secs(1)
        {
            // Full-NAT connections count whole seconds: one would outlive
            // a sub-second session.
            errs.push(format!(
                "{key}.session_lifetime: {} is below 1s, the shortest with forwarding = \"fnat\"",
                humantime::format_duration(s.session_lifetime)
            ));
        }
        for (name, t) in [
            ("fnat_idle_timeout", s.fnat_idle_timeout),
            ("fnat_closed_timeout", s.fnat_closed_timeout),
        ] {
            let Some(t) = t else { continue };
            if s.forwarding != ForwardingMode::Fnat {
                errs.push(format!(
                    "{key}.{name}: only used with forwarding = \"fnat\""
                ));
            } else if t < Duration::from_secs(1) {
                errs.push(format!(
                    "{key}.{name}: {} is out of range (at least 1s)",
                    humantime::format_duration(t)
                ));
            }
        }
        if let Some(idle) = s.fnat_idle_timeout.filter(|t| *t > s.session_lifetime) {
            errs.push(format!(
                "{key}.fnat_idle_timeout: {} is longer than session_lifetime ({}): a connection cannot outlive its client's session",
                humantime::format_duration(idle),
                humantime::format_duration(s.session_lifetime)
            ));
        }
        if let Some(closed) = s.fnat_closed_timeout.filter(|t| *t > s.fnat_idle()) {
            errs.push(format!(
                "{key}.fnat_closed_timeout: {} is longer than the idle timeout ({})",
                humantime::format_duration(closed),
                humantime::format_duration(s.fnat_idle())
            ));
        }
        if s.backend.is_empty() {
            errs.push(format!(
                "{key}.backend: a service needs at least one backend"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (j, b) in s.backend.iter().enumerate() {
            let bkey = format!("{key}.backend[{j}]");
            if !seen.insert(b.address) {
                errs.push(format!("{bkey}.address: {} is listed twice", b.address));
            }
            if b.weight > 10_000 {
                errs.push(format!(
                    "{bkey}.weight: {} is out of range (0 to 10000)",
                    b.weight
                ));
            }
            if s.forwarding != ForwardingMode::Dsr && b.address.is_ipv4() != s.vip.is_ipv4() {
                errs.push(format!(
                    "{bkey}.address: {} is not of the VIP's family ({} cannot translate between IPv4 and IPv6; use dsr)",
                    b.address,
                    s.forwarding.as_str()
                ));
            }
        }
        for (j, a) in s.fnat_addresses.iter().enumerate() {
            if a.is_ipv4() != s.vip.is_ipv4() {
                errs.push(format!(
                    "{key}.fnat_addresses[{j}]: {a} is not of the VIP's family"
                ));
            }
        }
        if !s.fnat_addresses.is_empty() && s.forwarding != ForwardingMode::Fnat {
            errs.push(format!(
                "{key}.fnat_addresses: only used with forwarding = \"fnat\""
            ));
        }
        if s.forwarding == ForwardingMode::Fnat && s.fnat_addresses.is_empty() {
            let has_server_addr = cfg.ports.iter().any(|p| {
                p.role != PortRole::Client
                    && p.addresses
                        .iter()
                        .any(|n: &IpNet| n.addr().is_ipv4() == s.vip.is_ipv4())
            });
            if !has_server_addr {
                errs.push(format!(
                    "{key}.fnat_addresses: full NAT needs a source address: list some, or give a server-side port an address of the VIP's family"
                ));
            }
        }
    }
    if !cfg.service.is_empty() {
        if !cfg.ports.iter().any(|p| p.role != PortRole::Server) {
            errs.push("ports: services need a port with role \"client\" or \"both\"".to_owned());
        }
        if !cfg.ports.iter().any(|p| p.role != PortRole::Client) {
            errs.push("ports: services need a port with role \"server\" or \"both\"".to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses() {
        let m: MacAddr = "02:00:5e:10:AB:ff".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x5e, 0x10, 0xab, 0xff]);
        assert_eq!(m.to_string(), "02:00:5e:10:ab:ff");
        for bad in [
            "02:00:5e:10:ab",
            "02:00:5e:10:ab:ff:01",
            "2:00:5e:10:ab:ff",
            "zz:00:5e:10:ab:ff",
        ] {
            assert_eq!(
                bad.parse::<MacAddr>().unwrap_err(),
                format!("{bad:?} is not a MAC address (xx:xx:xx:xx:xx:xx)")
            );
        }
    }
}
