//! The per-core load balancer: what a worker does with one packet.
//!
//! [`CoreLb::process_with`] takes a frame, the port it came from and the coarse
//! time, and returns a [`Verdict`]: transmit on a port, hand off to the core
//! that owns the packet's shard, or drop (the reason is counted inside). It is
//! plain Rust over the [`Frame`] trait, so the whole pipeline is tested
//! without an EAL; the DPDK worker loop only moves mbufs according to the
//! verdicts.
//!
//! The pipeline, client side: parse (bounded, no allocation) -> match a
//! service by VIP, protocol and port -> derive the mobile identity (service's
//! precedence: ESP SPI, Home Address option, \[interface ID,\] source) ->
//! keyed hash -> bucket -> owning core (hand off if it is not this one) ->
//! session lookup by (service, identity), or a scheduler pick and an insert on
//! first sight -> rewrite (DNAT: destination to the backend, checksums
//! updated incrementally under RFC 6275's pseudo-header rules; DSR: an outer
//! IPv6/IPv4 header to the backend; full NAT: the flow's connection gives a
//! local address and port, see [`super::fnat`]) -> next-hop MAC -> transmit
//! on the server side. Server side: a packet from a backend of a DNAT
//! service gets the VIP back as its source (stateless: configuration
//! guarantees a backend address and source port name one service) and
//! leaves on the client side; a packet to a full-NAT local address goes to
//! the core whose port range holds its destination port, whose connection
//! turns it back toward the client. Traffic
//! that matches no service is forwarded raw to the port's `forward_to`, or
//! dropped as `no_service`.
//!
//! Binding updates (S1): a Mobility Header Binding Update carries the home
//! address (Home Address option), so it is balanced like the node's data and
//! forwarded to the node's backend. On the owner core it also creates an
//! alias, care-of address -> home address, with the BU's lifetime (the
//! Alternate Care-of Address option names the CoA when present, else the
//! IPv6 source; lifetime 0 removes it). The alias is applied locally at once
//! and broadcast to every other core as an [`AliasUpdate`] message, so each
//! core holds a copy: a later packet from that CoA without SPI or Home
//! Address option resolves to the home address on whichever core receives it
//! and is handed to the same owner in one hop. The alias takes effect on the
//! first core that sees the BU, before it is handed to the owner, and a
//! handed-off packet carries its resolved identity in the mbuf headroom, so
//! the owner never re-resolves it against a copy that may not have the alias
//! yet. Old and new care-of entries
//! coexist until their lifetimes run out, so a node returning to an old CoA
//! needs nothing new. (The design brief puts each alias only on the core
//! owning the CoA's hash; that costs a second handoff and a way to mark the
//! packet as resolved, while copies cost memory per core for entries that
//! are far fewer than sessions — one per binding.)
//!
//! A handed-off packet is parsed again on its owner (about as cheap as
//! carrying the result in the mbuf) and is never handed off twice: if the
//! bucket map changed in between, the owner processes it itself.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::{
    Config, ForwardingMode, PortRole, SchedulerKind, ServiceIdentity, ServiceProtocol,
};
use crate::dataplane::buckets::{BucketLoads, BucketMap};
use crate::dataplane::fnat::{
    insert_rh2, port_owner, rewrite_forward, rewrite_reply, ConnKey, FnatTable, OpenError, ReplyTo,
    RH2_LEN,
};
use crate::dataplane::icmp_error;
use crate::dataplane::neighbor::{self, NdKind};
use crate::dataplane::notify::{self, NotifyCounters, NotifyKey, ReplayGuard};
use crate::dataplane::ratelimit::WindowLimit;
use crate::dataplane::scheduler::{Backend, BackendIndex, BackendSet, Policy, Remap, Scheduler};
use crate::dataplane::table::Table;
use crate::identity::{
    binding_update, identity_key, Identity, IdentityHasher, IdentityKey, IdentityKind,
    IdentityMode, HASH_LANES,
};
use crate::packet::ipv4::Ipv4Repr;
use crate::packet::ipv6::Ipv6Repr;
use crate::packet::rewrite::{set_ipv4_addr, set_ipv6_addr};
use crate::packet::{
    ipv4, ipv6, DropCounters, IpProtocol, Ipv4Field, Ipv6Field, L3Kind, OuterHeader, ParseConfig,
    Parsed,
};

/// A packet buffer the pipeline can read, rewrite and grow at the front.
pub trait Frame {
    /// The frame's bytes.
    fn bytes(&self) -> &[u8];
    /// The frame's bytes, writable.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Grows the frame by `n` bytes at the front; `false` (nothing changed)
    /// without headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Grows or shrinks the frame at the end to `len` bytes; `false`
    /// (nothing changed) without tailroom.
    fn set_len(&mut self, len: usize) -> bool;
    /// Scratch bytes travelling with the frame (the mbuf headroom), used to
    /// hand a resolved identity to the owning core.
    fn scratch(&self) -> &[u8];
    /// The scratch bytes, writable.
    fn scratch_mut(&mut self) -> &mut [u8];
}

/// Octets of headroom in front of a [`VecFrame`], as an mbuf has.
pub const VEC_FRAME_HEADROOM: usize = 128;

/// A [`Frame`] in a heap buffer with mbuf-like headroom: for unit tests,
/// benchmarks and tools that run the pipeline without an EAL. Not for the
/// packet path (growing it at the end may allocate).
#[derive(Debug, Clone)]
pub struct VecFrame {
    buf: Vec<u8>,
    start: usize,
}

impl VecFrame {
    /// `frame` behind [`VEC_FRAME_HEADROOM`] octets of headroom.
    pub fn new(frame: Vec<u8>) -> Self {
        let mut buf = vec![0u8; VEC_FRAME_HEADROOM];
        buf.extend(frame);
        VecFrame {
            buf,
            start: VEC_FRAME_HEADROOM,
        }
    }

    /// Replaces the contents with `image` behind fresh headroom, reusing
    /// the buffer (no allocation once it has held a frame that long).
    pub fn load(&mut self, image: &[u8]) {
        self.start = VEC_FRAME_HEADROOM;
        self.buf.resize(VEC_FRAME_HEADROOM, 0);
        self.buf.extend_from_slice(image);
    }
}

impl Frame for VecFrame {
    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    fn set_len(&mut self, len: usize) -> bool {
        self.buf.resize(self.start + len, 0);
        true
    }
    fn scratch(&self) -> &[u8] {
        &self.buf[..self.start]
    }
    fn scratch_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.start]
    }
}

/// Tag of a handed-off frame whose identity was resolved through an alias;
/// the 16 bytes after it hold the home address.
const META_RESOLVED: u8 = 0xa5;
/// Bytes of handoff metadata at the end of the scratch area.
const META_LEN: usize = 17;

#[inline]
fn write_meta<F: Frame>(f: &mut F, resolved: Option<Ipv6Addr>) {
    let s = f.scratch_mut();
    let Some(at) = s.len().checked_sub(META_LEN) else {
        return;
    };
    let m = &mut s[at..];
    match resolved {
        Some(h) => {
            m[0] = META_RESOLVED;
            m[1..].copy_from_slice(&h.octets());
        }
        None => m[0] = 0,
    }
}

#[inline]
fn read_meta<F: Frame>(f: &F) -> Option<Ipv6Addr> {
    let s = f.scratch();
    let at = s.len().checked_sub(META_LEN)?;
    let m = &s[at..];
    if m[0] != META_RESOLVED {
        return None;
    }
    let b: [u8; 16] = m[1..].try_into().ok()?;
    Some(Ipv6Addr::from(b))
}

macro_rules! lb_drops {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal ),+ $(,)?) => {
        /// Why the load balancer (after a successful parse) dropped a packet.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum LbDrop {
            $( $(#[$doc])* $variant, )+
        }

        impl LbDrop {
            /// Every reason, in index order.
            pub const ALL: &'static [LbDrop] = &[$(LbDrop::$variant),+];
            /// How many reasons there are.
            pub const COUNT: usize = LbDrop::ALL.len();

            /// The counter name.
            pub const fn name(self) -> &'static str {
                match self { $(LbDrop::$variant => $name),+ }
            }
        }
    };
}

lb_drops! {
    /// Not addressed to a VIP of a service and no `forward_to` on the port.
    NoService => "no_service",
    /// No identity could be derived (cannot happen for a parsed IP packet).
    NoIdentity => "no_identity",
    /// The service has no usable backend.
    NoBackend => "no_usable_backend",
    /// The session table is full; a new identity was refused.
    SessionTableFull => "session_table_full",
    /// No route to the next hop (not on-link, no gateway of its family).
    NoRoute => "no_route",
    /// The next hop's MAC is unknown and cannot be asked for (the output
    /// port has no address of its family), or holding is off
    /// (`dataplane.neighbor_hold = 0`): the packet is not held.
    NeighborUnresolved => "neighbor_unresolved",
    /// The next hop is being resolved, but its share of the hold queue
    /// ([`super::hold::HOLD_PER_HOP`] packets) or the core's whole queue is
    /// full.
    NeighborHoldFull => "neighbor_hold_full",
    /// Held for a next hop that did not answer within
    /// [`super::hold::HOLD_TIMEOUT_MS`] (three requests), or still held
    /// when the worker stopped.
    NeighborTimeout => "neighbor_timeout",
    /// Not enough headroom for the encapsulation header (DSR) or a full-NAT
    /// reply's type 2 Routing header.
    EncapNoHeadroom => "encap_no_headroom",
    /// DSR: the outer header would take an IPv4 packet without Don't
    /// Fragment past the server side's MTU and it would need three outer
    /// fragments or more; packets with DF, and IPv6 packets, get a
    /// Fragmentation Needed or Packet Too Big back instead.
    EncapTooBig => "encap_too_big",
    /// The handoff ring to the owning core was full.
    HandoffRingFull => "handoff_ring_full",
    /// ARP or neighbour discovery that is neither for the appliance nor
    /// valid (RFC 4861 §7.1), on a port without `forward_to`.
    NeighborDiscovery => "arp_nd_not_for_us",
    /// A rewrite did not fit the packet (the summary and frame disagree).
    RewriteFailed => "rewrite_failed",
    /// Full NAT translates TCP and UDP only: another protocol (or a
    /// non-first fragment) to a full-NAT service, or a non-TCP/UDP packet
    /// other than an ICMP error from a backend to a full-NAT local address.
    FnatUnsupportedProtocol => "fnat_unsupported_protocol",
    /// No free local port on any of the service's full-NAT addresses in
    /// this core's range; the new connection was refused.
    FnatPortsExhausted => "fnat_ports_exhausted",
    /// The connection table is full; the new connection was refused.
    ConnectionTableFull => "connection_table_full",
    /// A packet to a full-NAT local address and port of this core that no
    /// live connection holds (or from another backend, port or protocol).
    FnatNoConnection => "fnat_no_connection",
    /// An ICMP error to a full-NAT local address whose quote cannot be
    /// translated: cut before the quoted ports, not TCP or UDP, a non-first
    /// fragment, or not a packet sent from that local address.
    IcmpErrorUnusable => "icmp_error_unusable",
    /// An ICMP error from the client side about a reply to a client that
    /// has no live session on this service.
    IcmpErrorNoSession => "icmp_error_no_session",
    /// An ICMP error whose quoted ports name no live full-NAT connection
    /// (or one to another backend, port or protocol): stale, or forged to
    /// disturb someone else's flow (RFC 5927). Counted apart from
    /// `fnat_no_connection` so that such errors do not hide among late
    /// replies.
    IcmpErrorNoConnection => "icmp_error_no_connection",
    /// An ICMP error the appliance would have sent or passed on, over the
    /// worker's share of `dataplane.icmp_errors_per_second` (errors it
    /// originates: the packet too big for DSR is dropped without its Packet
    /// Too Big or Fragmentation Needed) or of
    /// `dataplane.icmp_translated_per_second` (errors it translates).
    IcmpRateLimited => "icmp_rate_limited",
    /// An ICMP error about a DSR tunnel packet the appliance sent that it
    /// does not pass on: not a Packet Too Big / Fragmentation Needed (a
    /// backend's reachability is for health checks to judge), about an
    /// IPv4 client packet without Don't Fragment (the client cannot be
    /// told), or naming no DSR service with that VIP and backend (stale or
    /// forged).
    IcmpErrorTunnel => "icmp_error_tunnel",
    /// DSR: the second fragment of an encapsulated packet found no free
    /// buffer in the pool.
    FragmentNoBuffer => "encap_fragment_no_mbuf",
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit on this port (index into the configured ports).
    Transmit(u8),
    /// Move to this worker (index), which owns the packet's shard.
    Handoff(u8),
    /// Rewritten for this output port, but the next hop
    /// ([`CoreLb::unresolved_next_hop`]) is being resolved: give the packet
    /// to the core's [`super::hold::HoldQueue`]. (The address is not in the
    /// variant so that a verdict stays two bytes, returned in a register.)
    Hold(u8),
    /// Free it; the reason has been counted.
    Drop,
    /// DSR: encapsulated for this port but longer than its MTU, an IPv4
    /// client packet without Don't Fragment: the worker splits it into two
    /// outer fragments ([`CoreLb::fragment`], with a second buffer) and
    /// transmits both.
    Fragment(u8),
}

/// A worker's load-balancing counters (plain integers, owned by the worker).
#[derive(Debug, Clone)]
pub struct LbCounters {
    /// Parse refusals by reason.
    pub parse_drops: DropCounters,
    /// Load-balancer drops by reason.
    pub lb_drops: [u64; LbDrop::COUNT],
    /// New sessions created.
    pub sessions_created: u64,
    /// Sessions expired.
    pub sessions_expired: u64,
    /// Packets sent to a backend.
    pub to_backend: u64,
    /// Backend replies translated back to the VIP.
    pub replies: u64,
    /// ICMP errors passed on: to clients about full-NAT packets, to
    /// backends about replies (full NAT, DNAT, DSR).
    pub icmp_errors_translated: u64,
    /// DSR: Packet Too Big / Fragmentation Needed sent to clients whose
    /// packet the outer header would have taken past the server side's MTU.
    pub icmp_too_big_sent: u64,
    /// DSR: Packet Too Big / Fragmentation Needed sent to clients because a
    /// router between the appliance and a backend reported a smaller MTU
    /// for the tunnel (an ICMP error about an encapsulated packet).
    pub icmp_tunnel_too_big: u64,
    /// DSR: IPv4 client packets without Don't Fragment sent to backends as
    /// two outer fragments (RFC 2003 §5.1, RFC 2473 §7.1).
    pub encap_fragmented: u64,
    /// Packets handed to another core.
    pub handoffs: u64,
    /// Packets forwarded unchanged through `forward_to`.
    pub raw_forwarded: u64,
    /// Next hops resolved to derived MACs in replay mode (the ARP/ND
    /// requests a live appliance would have sent).
    pub neighbor_requests_suppressed: u64,
    /// ARP requests and neighbour solicitations answered.
    pub neighbor_answers: u64,
    /// Neighbour bindings learned from ARP/NS/NA.
    pub neighbors_learned: u64,
    /// ARP requests and neighbour solicitations sent for next hops.
    pub neighbor_requests: u64,
    /// Packets taken into the hold queue while their next hop was resolved.
    pub neighbor_held: u64,
    /// Held packets sent once their next hop was resolved.
    pub neighbor_released: u64,
    /// Binding updates processed (aliases created or removed).
    pub binding_updates: u64,
    /// Packets whose care-of address resolved to a home address.
    pub alias_hits: u64,
    /// Alias updates that did not fit the outbox (other cores miss them).
    pub alias_outbox_full: u64,
    /// Aliases refused by a full alias table.
    pub alias_table_full: u64,
    /// Packets per backend, per service (indexed like the service's backends).
    pub backend_packets: Vec<Box<[u64]>>,
}

impl LbCounters {
    fn new(topo: &Topology) -> Self {
        LbCounters {
            parse_drops: DropCounters::default(),
            lb_drops: [0; LbDrop::COUNT],
            sessions_created: 0,
            sessions_expired: 0,
            to_backend: 0,
            replies: 0,
            icmp_errors_translated: 0,
            icmp_too_big_sent: 0,
            icmp_tunnel_too_big: 0,
            encap_fragmented: 0,
            handoffs: 0,
            raw_forwarded: 0,
            neighbor_requests_suppressed: 0,
            neighbor_answers: 0,
            neighbors_learned: 0,
            neighbor_requests: 0,
            neighbor_held: 0,
            neighbor_released: 0,
            binding_updates: 0,
            alias_hits: 0,
            alias_outbox_full: 0,
            alias_table_full: 0,
            backend_packets: topo
                .services
                .iter()
                .map(|s| vec![0; s.backends.backends().len()].into())
                .collect(),
        }
    }

    #[inline]
    fn drop(&mut self, reason: LbDrop) -> Verdict {
        self.lb_drops[reason as usize] += 1;
        Verdict::Drop
    }

    /// Counts a handoff the ring refused (called by the worker loop).
    pub fn handoff_refused(&mut self, n: u64) {
        self.lb_drops[LbDrop::HandoffRingFull as usize] += n;
    }
}

/// A duration of the configuration in whole seconds of the coarse clock
/// (at least 1; capped well below the clock's wrap).
fn secs(d: std::time::Duration) -> u32 {
    d.as_secs().clamp(1, u64::from(u32::MAX / 4)) as u32
}

/// A duration of the configuration in milliseconds of the session clock
/// (at least 1; capped below a quarter of the clock's wrap, 12.4 days; the
/// configuration allows at most 7 days).
fn millis(d: std::time::Duration) -> u32 {
    d.as_millis().clamp(1, u128::from(u32::MAX / 4)) as u32
}

/// The data plane's two coarse clocks, read once per iteration of the
/// worker loop and passed down the packet path by value.
///
/// The session table ticks in milliseconds, so that a session lifetime is
/// kept to the millisecond (with a clock of whole seconds a lifetime of
/// `L` s lasted from `L` to `L + 1` s) and sub-second lifetimes exist. It
/// wraps every 49.7 days; the table compares ticks with wrapping
/// arithmetic and lifetimes stay far below half the wrap. Every other
/// table (neighbours, aliases, full-NAT connections, the notification
/// guard) and the rate limits count whole seconds, whose clock does not
/// wrap in practice (136 years) and whose protocol lifetimes are seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    /// Whole seconds since the worker started.
    pub secs: u32,
    /// Milliseconds since the worker started, modulo 2^32: the session
    /// table's tick.
    pub ms: u32,
}

impl Now {
    /// The clocks `secs` whole seconds after the start.
    pub const fn from_secs(secs: u32) -> Self {
        Now {
            secs,
            ms: secs.wrapping_mul(1000),
        }
    }

    /// The clocks `ms` milliseconds after the start.
    pub const fn from_millis(ms: u64) -> Self {
        Now {
            secs: (ms / 1000) as u32,
            ms: ms as u32,
        }
    }
}

/// One service as the data plane uses it.
#[derive(Debug)]
pub struct ServiceSpec {
    /// Name.
    pub name: String,
    /// VIP.
    pub vip: IpAddr,
    /// Protocol filter.
    pub protocol: ServiceProtocol,
    /// Ports, sorted; empty = all.
    pub ports: Box<[u16]>,
    /// Identity precedence.
    pub mode: IdentityMode,
    /// Forwarding mode.
    pub forwarding: ForwardingMode,
    /// Session lifetime in milliseconds (the session clock's tick; see
    /// [`Now`]).
    pub lifetime: u32,
    /// Full NAT: a connection's idle timeout in seconds.
    pub conn_idle: u32,
    /// Full NAT: a closed TCP connection's lifetime in seconds.
    pub conn_closed: u32,
    /// Backends (built off the packet path; see scheduler).
    pub backends: Arc<BackendSet>,
    /// Removed by a reload: the slot is kept (session keys hold slot
    /// numbers) but matches nothing.
    pub removed: bool,
    /// Full NAT: indices into [`Topology::fnat_locals`] of the source
    /// addresses this service uses (empty for other modes).
    pub fnat: Box<[u16]>,
}

impl ServiceSpec {
    #[inline]
    fn matches(&self, protocol: IpProtocol, port: Option<u16>) -> bool {
        if self.removed {
            return false;
        }
        let is_tcp_udp = matches!(protocol, IpProtocol::Tcp | IpProtocol::Udp);
        let proto_ok = match self.protocol {
            ServiceProtocol::Tcp => protocol == IpProtocol::Tcp,
            ServiceProtocol::Udp => protocol == IpProtocol::Udp,
            ServiceProtocol::Any => true,
        };
        if !proto_ok {
            return false;
        }
        if self.ports.is_empty() || !is_tcp_udp {
            // `any` services take ESP, MH, ICMP... whatever their ports.
            return self.ports.is_empty() || self.protocol == ServiceProtocol::Any;
        }
        match port {
            Some(p) => self.ports.binary_search(&p).is_ok(),
            None => false,
        }
    }
}

/// A service's match criteria packed for [`Topology::match_service`], which
/// scans them for every client packet: the VIP, the protocol classes it
/// takes and whether it takes every port, in 48 bytes instead of a walk
/// through the whole [`ServiceSpec`]. Gives the same answer as
/// [`ServiceSpec::matches`] (`tests::service_filter_matches_the_spec`).
#[derive(Debug, Clone, Copy)]
struct ServiceFilter {
    vip: AddrBits,
    /// [`ServiceFilter::TCP`], [`ServiceFilter::UDP`] and
    /// [`ServiceFilter::OTHER`] bits; 0 for a service a reload removed.
    protocols: u8,
    /// No port list: every TCP or UDP port.
    any_port: bool,
}

impl ServiceFilter {
    const TCP: u8 = 1;
    const UDP: u8 = 2;
    /// Any protocol without ports (ESP, Mobility Header, ICMP, ...).
    const OTHER: u8 = 4;

    fn of(s: &ServiceSpec) -> Self {
        let protocols = match (s.removed, s.protocol) {
            (true, _) => 0,
            (false, ServiceProtocol::Tcp) => Self::TCP,
            (false, ServiceProtocol::Udp) => Self::UDP,
            (false, ServiceProtocol::Any) => Self::TCP | Self::UDP | Self::OTHER,
        };
        ServiceFilter {
            vip: AddrBits::of(s.vip),
            protocols,
            any_port: s.ports.is_empty(),
        }
    }

    #[inline]
    fn class(protocol: IpProtocol) -> u8 {
        match protocol {
            IpProtocol::Tcp => Self::TCP,
            IpProtocol::Udp => Self::UDP,
            _ => Self::OTHER,
        }
    }
}

/// One port as the data plane uses it.
#[derive(Debug, Clone)]
pub struct PortSpec {
    /// Configured name.
    pub name: String,
    /// The port's MAC.
    pub mac: [u8; 6],
    /// Which side it faces.
    pub role: PortRole,
    /// On-link prefixes (the port's addresses); empty = everything on-link.
    pub prefixes: Vec<IpNet>,
    /// Gateways.
    pub gateways: Vec<IpAddr>,
    /// Raw forwarding target for traffic of no service.
    pub forward_to: Option<u8>,
}

/// Everything the pipeline needs that does not change per packet, shared by
/// all workers (immutable; a reload publishes a new one).
#[derive(Debug)]
pub struct Topology {
    /// Services.
    pub services: Vec<ServiceSpec>,
    /// Ports, in configuration order.
    pub ports: Vec<PortSpec>,
    /// Static neighbours: (port, address) -> MAC, sorted.
    pub neighbors: Vec<((u8, IpAddr), [u8; 6])>,
    /// Backend address -> DNAT service indices, sorted.
    pub reverse: Vec<(IpAddr, u16)>,
    /// Where client-bound traffic leaves.
    pub client_port: u8,
    /// Where backend-bound traffic leaves.
    pub server_port: u8,
    /// Replay mode: derive next-hop MACs instead of resolving them.
    pub replay: bool,
    /// The appliance's addresses on the server port (DSR outer source).
    pub encap_src4: Option<Ipv4Addr>,
    /// IPv6 counterpart.
    pub encap_src6: Option<Ipv6Addr>,
    /// The server-side port's MTU (`ports[].mtu`, else Ethernet's 1500):
    /// what a DSR packet with its outer header must fit.
    pub server_mtu: u16,
    /// Per port, the addresses answered to ARP/ND (its own addresses, and
    /// the VIPs on client-side ports), sorted.
    pub answers: Vec<Vec<IpAddr>>,
    /// Per service and backend index: the MAC of the backend's next hop
    /// out of the server port when a static neighbour gives it, found once
    /// here instead of per packet; `None`: resolved through the neighbour
    /// cache.
    pub egress: Vec<Box<[Option<[u8; 6]>]>>,
    /// Per service and backend index, for the established fast path
    /// ([`CoreLb::look_up_established`]): the backend's address and the
    /// Ethernet header toward it, for a healthy backend with a static
    /// neighbour of a service that forwards by DNAT; a service that does
    /// not has an empty slice.
    dnat_egress: Vec<Box<[Option<DnatEgress>]>>,
    /// Per service, what the packet path's service match compares (see
    /// [`ServiceFilter`]).
    filters: Box<[ServiceFilter]>,
    /// The home-agent notification channel, when configured.
    pub notify: Option<NotifySpec>,
    /// Full-NAT local (source) addresses; the index is stable across
    /// reloads (connection slots are laid out by it) and fixed at start.
    pub fnat_locals: Vec<IpAddr>,
    /// `fnat_locals` sorted, with their indices, for reply matching.
    pub fnat_index: Vec<(IpAddr, u16)>,
}

/// The home-agent notification channel as the pipeline uses it.
#[derive(Debug, Clone)]
pub struct NotifySpec {
    /// UDP destination port.
    pub port: u16,
    /// The shared key.
    pub key: NotifyKey,
    /// Accepted clock skew, ms.
    pub max_skew_ms: u64,
}

/// Why a [`Topology`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// A configuration the data plane cannot serve.
    #[error("{0}")]
    Unsupported(String),
    /// A backend set could not be built.
    #[error("service[{0}]: {1}")]
    Backends(usize, crate::dataplane::scheduler::SchedulerError),
}

/// The deterministic, locally administered MAC replay mode uses for a next
/// hop: `02:00:a:b:c:d` for IPv4 `a.b.c.d`; `02` and the last five bytes of
/// an IPv6 address.
pub fn derived_mac(addr: IpAddr) -> [u8; 6] {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            [0x02, 0x00, o[0], o[1], o[2], o[3]]
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            [0x02, o[11], o[12], o[13], o[14], o[15]]
        }
    }
}

impl Topology {
    /// The shortest session lifetime of any service, in milliseconds (at
    /// least 1): the expiry sweep laps the session table at least once per
    /// this many milliseconds, or per second if that is longer (see the
    /// worker loop). Removed services count too, their sessions still
    /// expire.
    pub fn shortest_session_lifetime(&self) -> u32 {
        self.services
            .iter()
            .map(|s| s.lifetime)
            .min()
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Builds the topology from a validated configuration and the ports' MACs.
    pub fn from_config(
        cfg: &Config,
        macs: &[[u8; 6]],
        replay: bool,
    ) -> Result<Topology, TopologyError> {
        Self::build(cfg, macs, replay, None)
    }

    /// The topology of a reloaded configuration, with the slots of this one
    /// kept stable: a service keeps its slot (by name) and a backend its
    /// index (by address), so no session needs remapping. A removed backend
    /// stays as an unhealthy tombstone (its sessions pick anew on their next
    /// packet); a removed service stays as a slot that matches nothing; new
    /// ones are appended. Ports and their roles cannot change on reload.
    pub fn reloaded(&self, cfg: &Config) -> Result<Topology, TopologyError> {
        let macs: Vec<[u8; 6]> = self.ports.iter().map(|p| p.mac).collect();
        Self::build(cfg, &macs, self.replay, Some(self))
    }

    fn build(
        cfg: &Config,
        macs: &[[u8; 6]],
        replay: bool,
        previous: Option<&Topology>,
    ) -> Result<Topology, TopologyError> {
        let index = |name: &str| {
            cfg.ports
                .iter()
                .position(|p| p.name == name)
                .map(|i| i as u8)
        };
        let ports: Vec<PortSpec> = cfg
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| PortSpec {
                name: p.name.clone(),
                mac: macs.get(i).copied().unwrap_or_default(),
                role: p.role,
                prefixes: p.addresses.clone(),
                gateways: p.gateways.clone(),
                forward_to: p.forward_to.as_deref().and_then(index),
            })
            .collect();
        let client_port = ports
            .iter()
            .position(|p| p.role != PortRole::Server)
            .unwrap_or(0) as u8;
        let server_port = ports
            .iter()
            .position(|p| p.role != PortRole::Client)
            .unwrap_or(0) as u8;
        let server_addrs = &cfg.ports[server_port as usize].addresses;
        let encap_src4 = server_addrs.iter().find_map(|n| match n.addr() {
            IpAddr::V4(a) => Some(a),
            _ => None,
        });
        let encap_src6 = server_addrs.iter().find_map(|n| match n.addr() {
            IpAddr::V6(a) => Some(a),
            _ => None,
        });

        // Slots: the previous topology's services first (kept or removed),
        // then services new in this configuration.
        let mut slots: Vec<(Option<usize>, Option<&ServiceSpec>)> = Vec::new();
        if let Some(prev) = previous {
            for old in &prev.services {
                slots.push((
                    cfg.service.iter().position(|s| s.name == old.name),
                    Some(old),
                ));
            }
        }
        for i in 0..cfg.service.len() {
            if !slots.iter().any(|(c, _)| *c == Some(i)) {
                slots.push((Some(i), None));
            }
        }
        if slots.len() >= usize::from(u16::MAX) {
            return Err(TopologyError::Unsupported(format!(
                "{} service slots since start: restart to compact them",
                slots.len()
            )));
        }

        let mut services = Vec::with_capacity(slots.len());
        let mut reverse = Vec::new();
        // Full-NAT local addresses: the start's list is kept as it is (the
        // connection slots of every core are laid out by it).
        let mut fnat_locals: Vec<IpAddr> =
            previous.map(|p| p.fnat_locals.clone()).unwrap_or_default();
        for (slot, (cfg_index, old)) in slots.into_iter().enumerate() {
            let Some(i) = cfg_index else {
                // Removed: keep the slot, match nothing, every backend unhealthy.
                let old =
                    old.expect("a slot without configuration comes from the previous topology");
                let tomb: Vec<Backend> = old
                    .backends
                    .backends()
                    .iter()
                    .map(|b| Backend {
                        healthy: false,
                        weight: 0,
                        ..*b
                    })
                    .collect();
                let set = BackendSet::new(tomb, old.backends.policy(), old.backends.epoch() + 1)
                    .map_err(|e| TopologyError::Backends(slot, e))?;
                services.push(ServiceSpec {
                    name: old.name.clone(),
                    vip: old.vip,
                    protocol: old.protocol,
                    ports: old.ports.clone(),
                    mode: old.mode,
                    forwarding: old.forwarding,
                    lifetime: old.lifetime,
                    conn_idle: old.conn_idle,
                    conn_closed: old.conn_closed,
                    backends: set,
                    removed: true,
                    fnat: old.fnat.clone(),
                });
                continue;
            };
            let s = &cfg.service[i];
            let mut fnat = Vec::new();
            if s.forwarding == ForwardingMode::Fnat {
                // Listed addresses, else the server-side port's of the VIP's
                // family (configuration validation made sure there is one).
                let mut wanted: Vec<IpAddr> = s.fnat_addresses.clone();
                if wanted.is_empty() {
                    let family = |p: &&crate::config::PortConfig| p.role != PortRole::Client;
                    let first = std::iter::once(&cfg.ports[server_port as usize])
                        .chain(cfg.ports.iter().filter(family))
                        .flat_map(|p| p.addresses.iter().map(|n| n.addr()))
                        .find(|a| a.is_ipv4() == s.vip.is_ipv4());
                    wanted.extend(first);
                }
                for a in wanted {
                    let at = match fnat_locals.iter().position(|l| *l == a) {
                        Some(at) => at,
                        None if previous.is_some() => {
                            return Err(TopologyError::Unsupported(format!(
                                "service[{i}].fnat_addresses: {a} is new since start; full-NAT source addresses take effect at the next restart"
                            )));
                        }
                        None => {
                            fnat_locals.push(a);
                            fnat_locals.len() - 1
                        }
                    };
                    if !fnat.contains(&(at as u16)) {
                        fnat.push(at as u16);
                    }
                }
            }
            if s.forwarding == ForwardingMode::Dsr {
                for (j, b) in s.backend.iter().enumerate() {
                    let have = if b.address.is_ipv4() {
                        encap_src4.is_some()
                    } else {
                        encap_src6.is_some()
                    };
                    if !have {
                        return Err(TopologyError::Unsupported(format!(
                            "service[{i}].backend[{j}]: dsr to {} needs an address of its family on the server-side port (outer source)",
                            b.address
                        )));
                    }
                }
            }
            let configured = |a: IpAddr| s.backend.iter().find(|b| b.address == a);
            // Previous backends keep their index; removed ones become
            // tombstones; new ones are appended.
            let mut backends: Vec<Backend> = Vec::with_capacity(s.backend.len());
            if let Some(old) = old {
                for b in old.backends.backends() {
                    backends.push(match configured(b.address) {
                        Some(c) => Backend {
                            address: c.address,
                            weight: c.weight,
                            group: c.group,
                            healthy: true,
                        },
                        None => Backend {
                            healthy: false,
                            weight: 0,
                            ..*b
                        },
                    });
                }
            }
            for c in &s.backend {
                if !backends.iter().any(|b| b.address == c.address) {
                    backends.push(Backend {
                        address: c.address,
                        weight: c.weight,
                        group: c.group,
                        healthy: true,
                    });
                }
            }
            let policy = match s.scheduler {
                SchedulerKind::Maglev => Policy::Maglev,
                SchedulerKind::Wrr => Policy::WeightedRoundRobin,
                SchedulerKind::LeastConn => Policy::LeastConnections,
            };
            let epoch = old.map(|o| o.backends.epoch() + 1).unwrap_or(1);
            let set = BackendSet::new(backends, policy, epoch)
                .map_err(|e| TopologyError::Backends(i, e))?;
            if s.forwarding == ForwardingMode::Dnat {
                for b in &s.backend {
                    reverse.push((b.address, slot as u16));
                }
            }
            let mut ports: Vec<u16> = s.ports.clone().unwrap_or_default();
            ports.sort_unstable();
            ports.dedup();
            services.push(ServiceSpec {
                name: s.name.clone(),
                vip: s.vip,
                protocol: s.protocol,
                ports: ports.into(),
                mode: match s.identity {
                    ServiceIdentity::Default => IdentityMode::Default,
                    ServiceIdentity::Slaac => IdentityMode::Slaac,
                },
                forwarding: s.forwarding,
                lifetime: millis(s.session_lifetime),
                conn_idle: secs(s.fnat_idle()),
                conn_closed: secs(s.fnat_closed()),
                backends: set,
                removed: false,
                fnat: fnat.into(),
            });
        }
        reverse.sort_unstable();
        let answers: Vec<Vec<IpAddr>> = ports
            .iter()
            .map(|p| {
                let mut a: Vec<IpAddr> = p.prefixes.iter().map(|n| n.addr()).collect();
                if p.role != PortRole::Server {
                    a.extend(services.iter().filter(|s| !s.removed).map(|s| s.vip));
                }
                if p.role != PortRole::Client {
                    // Backends' replies come to the full-NAT addresses.
                    a.extend(fnat_locals.iter().copied());
                }
                a.sort_unstable();
                a.dedup();
                a
            })
            .collect();
        let mut neighbors: Vec<((u8, IpAddr), [u8; 6])> = cfg
            .neighbor
            .iter()
            .filter_map(|n| index(&n.port).map(|p| ((p, n.address), n.mac.0)))
            .collect();
        neighbors.sort_unstable_by_key(|(k, _)| *k);
        let mut fnat_index: Vec<(IpAddr, u16)> = fnat_locals
            .iter()
            .enumerate()
            .map(|(i, a)| (*a, i as u16))
            .collect();
        fnat_index.sort_unstable();
        let mut topo = Topology {
            fnat_locals,
            fnat_index,
            services,
            ports,
            neighbors,
            reverse,
            client_port,
            server_port,
            replay,
            encap_src4,
            encap_src6,
            server_mtu: cfg.ports[server_port as usize].mtu.unwrap_or(DEFAULT_MTU),
            answers,
            notify: match &cfg.binding_notify {
                Some(n) => Some(NotifySpec {
                    port: n.port,
                    key: NotifyKey::from_hex(&n.key).map_err(|e| {
                        TopologyError::Unsupported(format!("binding_notify.key: {e}"))
                    })?,
                    max_skew_ms: n.max_skew.as_millis().min(u128::from(u64::MAX)) as u64,
                }),
                None => None,
            },
            egress: Vec::new(),
            dnat_egress: Vec::new(),
            filters: Box::new([]),
        };
        topo.filters = topo.services.iter().map(ServiceFilter::of).collect();
        topo.egress = topo
            .services
            .iter()
            .map(|svc| {
                svc.backends
                    .backends()
                    .iter()
                    .map(|b| {
                        let nh = topo.next_hop(topo.server_port, b.address)?;
                        topo.static_neighbor(topo.server_port, nh)
                    })
                    .collect()
            })
            .collect();
        let port_mac = topo.ports.get(usize::from(topo.server_port)).map(|p| p.mac);
        topo.dnat_egress = topo
            .services
            .iter()
            .zip(&topo.egress)
            .map(|(svc, macs)| match (svc.forwarding, port_mac) {
                (ForwardingMode::Dnat, Some(src)) => svc
                    .backends
                    .backends()
                    .iter()
                    .zip(macs.iter())
                    .map(|(b, mac)| {
                        let dst = (*mac).filter(|_| b.healthy)?;
                        let mut l2 = [0u8; 12];
                        l2[..6].copy_from_slice(&dst);
                        l2[6..].copy_from_slice(&src);
                        Some(DnatEgress {
                            address: b.address,
                            l2,
                        })
                    })
                    .collect(),
                _ => Box::default(),
            })
            .collect();
        Ok(topo)
    }

    /// The service a packet to `dst` (see [`AddrBits`]) belongs to.
    /// Inlined: the call's register saves cost as much as the scan.
    #[inline(always)]
    fn match_service(
        &self,
        dst: AddrBits,
        protocol: IpProtocol,
        port: Option<u16>,
    ) -> Option<usize> {
        let class = ServiceFilter::class(protocol);
        for (i, f) in self.filters.iter().enumerate() {
            if f.vip != dst || f.protocols & class == 0 {
                continue;
            }
            // TCP or UDP to a service with a port list: the port decides.
            if f.any_port
                || class == ServiceFilter::OTHER
                || port.is_some_and(|p| self.services[i].ports.binary_search(&p).is_ok())
            {
                return Some(i);
            }
        }
        None
    }

    #[inline]
    fn reverse_service(
        &self,
        src: IpAddr,
        protocol: IpProtocol,
        port: Option<u16>,
    ) -> Option<usize> {
        let start = self.reverse.partition_point(|(a, _)| *a < src);
        self.reverse[start..]
            .iter()
            .take_while(|(a, _)| *a == src)
            .map(|(_, s)| usize::from(*s))
            .find(|&s| self.services[s].matches(protocol, port))
    }

    /// The index of full-NAT local address `addr`.
    #[inline]
    fn fnat_local(&self, addr: IpAddr) -> Option<usize> {
        if self.fnat_index.is_empty() {
            return None;
        }
        self.fnat_index
            .binary_search_by_key(&addr, |(a, _)| *a)
            .ok()
            .map(|i| usize::from(self.fnat_index[i].1))
    }

    /// Whether the appliance answers ARP/ND for `addr` on `port`.
    #[inline]
    fn answers(&self, port: u8, addr: IpAddr) -> bool {
        self.answers
            .get(usize::from(port))
            .is_some_and(|a| a.binary_search(&addr).is_ok())
    }

    /// The port's own address of `family_of`'s family (source of requests).
    fn port_address(&self, port: u8, family_of: IpAddr) -> Option<IpAddr> {
        self.ports
            .get(usize::from(port))?
            .prefixes
            .iter()
            .map(|n| n.addr())
            .find(|a| a.is_ipv4() == family_of.is_ipv4())
    }

    #[inline]
    fn static_neighbor(&self, port: u8, addr: IpAddr) -> Option<[u8; 6]> {
        self.neighbors
            .binary_search_by_key(&(port, addr), |(k, _)| *k)
            .ok()
            .map(|i| self.neighbors[i].1)
    }

    /// The next hop toward `dst` out of `port`.
    #[inline]
    fn next_hop(&self, port: u8, dst: IpAddr) -> Option<IpAddr> {
        let p = &self.ports[usize::from(port)];
        if p.prefixes.is_empty() || p.prefixes.iter().any(|n| n.contains(&dst)) {
            return Some(dst);
        }
        p.gateways
            .iter()
            .copied()
            .find(|g| g.is_ipv4() == dst.is_ipv4())
    }
}

/// What [`CoreLb::prefetch_burst`] learnt of a packet: its parse (when
/// `valid`), the service it is addressed to (when the client side's service
/// match was done), and, for a packet to a service whose identity no alias
/// can rewrite, the identity and its hash.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prefetched {
    parsed: Parsed,
    valid: bool,
    /// A client-side TCP or UDP packet to `service` that is not for the
    /// notification port: none of [`CoreLb::route`]'s other branches
    /// (neighbour discovery, notifications, ICMP errors, replies) can take
    /// it, so [`CoreLb::process_inner`] sends it straight to the service.
    direct: bool,
    service: ServiceMatch,
    /// The identity key that the identity mode of `service` gives, and its
    /// hash (only ever set together with `service`, for the same slot).
    hashed: Option<(IdentityKey, u64)>,
    /// Set by [`CoreLb::look_up_established`]: the backend of the live
    /// session this packet belongs to and how to reach it, when the
    /// established fast path ([`CoreLb::forward_established`]) can send
    /// it there.
    established: Option<Established>,
}

/// What the established fast path needs of a packet's session, found by
/// [`CoreLb::look_up_established`].
#[derive(Debug, Clone, Copy)]
struct Established {
    backend: BackendIndex,
    egress: DnatEgress,
}

/// Where the established fast path sends a DNAT service's packets for
/// one backend (see [`Topology::dnat_egress`]).
#[derive(Debug, Clone, Copy)]
struct DnatEgress {
    /// The backend's address.
    address: IpAddr,
    /// The Ethernet destination (the backend's static neighbour) and
    /// source (the server-side port) to write.
    l2: [u8; 12],
}

/// Up to [`HASH_LANES`] packets of a burst whose identities the prefetch
/// pass has still to hash (the first `len` of each array).
struct Waiting {
    index: [usize; HASH_LANES],
    service: [u16; HASH_LANES],
    key: [IdentityKey; HASH_LANES],
    len: usize,
}

/// The initial value of [`Waiting::key`]'s lanes, overwritten before use.
const NO_KEY: IdentityKey = IdentityKey::from_parts(IdentityKind::Spi, [0; 16]);

/// Slots of the full-NAT connection table [`CoreLb::expire`] examines at
/// least per call: the worker's session budget is sized for the session
/// table's churn and lap, and may be far smaller.
pub const SIDE_TABLE_BUDGET: usize = 1024;

/// The flag of [`CoreLb`]'s `prefetched_index` that marks a packet whose
/// identity the stored hashes show has no session (indices of a burst are
/// below [`dpdk::MAX_BURST`], 64).
const ABSENT: u8 = 0x80;

/// How many session entries the prefetch pass asks for before the burst's
/// packets are processed (see [`CoreLb::prefetch_entries`]).
const ENTRY_LEAD: usize = 8;

/// The prefetch pass's service match of a client-side packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum ServiceMatch {
    /// Not looked up (server side, or no destination address).
    #[default]
    NotDone,
    /// Addressed to no service.
    NoService,
    /// This service's index.
    Service(u16),
}

/// Where [`CoreLb::route`] sends a packet.
enum Routed {
    /// Decided (dropped, answered, bridged, replied to, ...).
    Done(Verdict),
    /// To service `si`: forwarded by `forward_to_backend` with the parse and
    /// the prefetch pass's identity and hash, when it has them.
    Service {
        parsed: Parsed,
        si: usize,
        hint: Option<(IdentityKey, u64)>,
    },
}

/// Key of the session table: one identity per service, packed into 19
/// bytes with alignment 1 (`Identity` itself is 24 bytes with alignment 8),
/// so that a session entry (key, backend index, expiry, lifetime, version,
/// flags) is exactly 32 bytes: two per cache line, none across two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionKey {
    /// The service index, little-endian (bytes keep the alignment at 1).
    service: [u8; 2],
    kind: u8,
    value: [u8; 16],
}

impl SessionKey {
    /// A placeholder key (an empty connection slot).
    pub const EMPTY: SessionKey = SessionKey {
        service: [0; 2],
        kind: 0,
        value: [0; 16],
    };

    /// The key of the identity `key` is the compact form of, in service
    /// `service` (the same key as [`SessionKey::new`] gives).
    #[inline]
    pub fn of_key(service: u16, key: &IdentityKey) -> Self {
        SessionKey {
            service: service.to_le_bytes(),
            kind: key.kind().code(),
            value: key.octets(),
        }
    }

    /// The key of `identity` in service `service`.
    #[inline]
    pub fn new(service: u16, identity: &Identity) -> Self {
        Self::of_key(service, &IdentityKey::of(identity))
    }

    /// The service index.
    pub fn service(&self) -> u16 {
        u16::from_le_bytes(self.service)
    }

    /// The identity.
    pub fn identity(&self) -> Identity {
        IdentityKey::from_parts(IdentityKind::from_code(self.kind), self.value).identity()
    }
}

/// A care-of address alias to apply on every core (lifetime 0 removes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AliasUpdate {
    /// The care-of address.
    pub coa: Ipv6Addr,
    /// The home address it stands for.
    pub home: Ipv6Addr,
    /// Seconds; 0 = remove.
    pub lifetime: u32,
}

/// A neighbour binding learned by one core, for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborUpdate {
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its MAC.
    pub mac: [u8; 6],
}

/// A neighbour-resolution request to send: ARP or NS for `target` out of
/// `port`, from `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborRequest {
    /// Output port.
    pub port: u8,
    /// Our address on it.
    pub source: IpAddr,
    /// The next hop to resolve.
    pub target: IpAddr,
    /// The port's MAC.
    pub mac: [u8; 6],
}

/// A message to a worker, applied between bursts. `P` is the runtime's
/// packet buffer (the DPDK mbuf), for frames injected by `roamlb replay
/// --in-server`.
#[derive(Debug)]
pub enum WorkerCommand<P> {
    /// A care-of alias from another core's binding update.
    Alias(AliasUpdate),
    /// A neighbour learned by another core.
    Neighbor(NeighborUpdate),
    /// A reloaded topology (services, backends, neighbours).
    Topology(Arc<Topology>),
    /// A frame to process as if this worker had received it on port
    /// `port` (index into the configured ports).
    Receive {
        /// The port it counts as received on.
        port: u8,
        /// The frame.
        frame: P,
    },
}

/// Alias updates a core can queue between two drains of its outbox.
pub const ALIAS_OUTBOX: usize = 256;

/// Sizes of one core's tables.
#[derive(Debug, Clone, Copy)]
pub struct CoreSizing {
    /// Session table capacity.
    pub sessions: usize,
    /// Alias (care-of address) table capacity.
    pub aliases: usize,
    /// Home addresses the notification replay guard remembers.
    pub notify_guard: usize,
    /// Wall-clock milliseconds at session-clock zero (for notification
    /// timestamps).
    pub wall_base_ms: u64,
    /// Neighbour cache capacity.
    pub neighbors: usize,
    /// Packets the core's hold queue takes while next hops are resolved
    /// (`dataplane.neighbor_hold`); 0: unresolved packets are dropped.
    pub neighbor_hold: usize,
    /// Extension headers walked before refusal.
    pub extension_header_limit: u8,
    /// Full-NAT connection table capacity (allocated only when a service
    /// uses full NAT).
    pub connections: usize,
    /// Number of workers (full-NAT local port ranges are split by it).
    pub workers: u8,
    /// ICMP errors this core originates per second (its share of
    /// `dataplane.icmp_errors_per_second`); 0: no limit.
    pub icmp_errors_per_second: u32,
    /// ICMP errors this core translates per second; 0: no limit.
    pub icmp_translated_per_second: u32,
}

/// Backends a per-core scheduler has room for: the set's size with room to
/// grow on reloads.
fn scheduler_room(set: &BackendSet) -> usize {
    set.backends().len().max(256)
}

/// Neighbour updates and requests a core can queue between two drains.
pub const NEIGHBOR_OUTBOX: usize = 64;

/// A next hop being resolved: the MAC cached meanwhile (all zero), for one
/// second, so at most one request per next hop per second goes out.
const NEIGHBOR_PENDING: [u8; 6] = [0; 6];

/// Neighbour-cache entries live this long (seconds) before a re-resolution.
const NEIGHBOR_LIFETIME: u32 = 300;

/// One worker's load balancer.
#[derive(Debug)]
pub struct CoreLb {
    /// Per-bucket load of the buckets this core owns (packets and bytes
    /// forwarded, packets dropped by the owner), since start.
    pub loads: BucketLoads,
    /// Hashes whose table slots the current burst prefetched.
    prefetched: [u64; dpdk::MAX_BURST],
    /// The service slot of each of `prefetched`.
    prefetched_service: [u16; dpdk::MAX_BURST],
    /// The index in the burst of each of `prefetched`, with [`ABSENT`]
    /// once its entry's prefetch found it has none.
    prefetched_index: [u8; dpdk::MAX_BURST],
    prefetched_len: usize,
    /// How many of `prefetched` have had their entries prefetched too.
    entries_prefetched: usize,
    topo: Arc<Topology>,
    me: u8,
    buckets: Arc<BucketMap>,
    hasher: IdentityHasher,
    parse_cfg: ParseConfig,
    sessions: Table<SessionKey, BackendIndex>,
    aliases: Table<Ipv6Addr, Ipv6Addr>,
    outbox: Vec<AliasUpdate>,
    neighbors: Table<IpAddr, [u8; 6]>,
    learned: Vec<NeighborUpdate>,
    requests: Vec<NeighborRequest>,
    /// Whether unresolved packets are held (`Verdict::Hold`) or dropped.
    hold: bool,
    /// The next hop of the last `Verdict::Hold`.
    unresolved: IpAddr,
    /// Bumped whenever the neighbour cache gains or changes a binding.
    neighbor_epoch: u64,
    guard: Option<ReplayGuard>,
    wall_base_ms: u64,
    /// Home-agent notifications: accepted, and drops by reason.
    pub notify_counters: NotifyCounters,
    schedulers: Vec<Scheduler>,
    /// Full-NAT connections, when a service uses full NAT.
    fnat: Option<FnatTable>,
    workers: u8,
    /// ICMP errors this core originates (DSR's Packet Too Big and
    /// Fragmentation Needed), per second.
    icmp_originated: WindowLimit,
    /// ICMP errors this core translates, per second.
    icmp_translated: WindowLimit,
    /// Where the outer header of the packet last answered with
    /// [`Verdict::Fragment`] starts (its link-layer header's length).
    fragment_l3: usize,
    /// The outer identification of this core's next fragmented packet (the
    /// low 16 bits for IPv4; RFC 6864 §4.3, RFC 8200 §4.5: unique per
    /// source and destination while fragments may live): cores count in
    /// steps of the worker count from their own index, so no two cores use
    /// the same value.
    fragment_ident: u32,
    /// Counters, read and published by the worker loop.
    pub counters: LbCounters,
}

/// Why a core's load balancer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CoreLbError {
    /// A table could not be allocated.
    #[error("allocating tables: {0}")]
    Table(#[from] crate::dataplane::table::TableError),
    /// A scheduler could not be built.
    #[error(transparent)]
    Scheduler(#[from] crate::dataplane::scheduler::SchedulerError),
    /// The notification replay guard could not be built.
    #[error("binding_notify: {0}")]
    Notify(String),
}

impl CoreLb {
    /// Builds worker `me`'s state; all memory is allocated here.
    pub fn new(
        topo: Arc<Topology>,
        me: u8,
        buckets: Arc<BucketMap>,
        hasher: IdentityHasher,
        sizing: CoreSizing,
    ) -> Result<Self, CoreLbError> {
        let schedulers = topo
            .services
            .iter()
            .map(|s| Scheduler::new(s.backends.clone(), scheduler_room(&s.backends)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CoreLb {
            loads: BucketLoads::new(&buckets),
            counters: LbCounters::new(&topo),
            me,
            buckets,
            hasher,
            parse_cfg: ParseConfig::new().with_max_ext_headers(sizing.extension_header_limit),
            prefetched: [0; dpdk::MAX_BURST],
            prefetched_service: [0; dpdk::MAX_BURST],
            prefetched_index: [0; dpdk::MAX_BURST],
            prefetched_len: 0,
            entries_prefetched: 0,
            sessions: Table::with_capacity(sizing.sessions)?,
            aliases: Table::with_capacity(sizing.aliases)?,
            outbox: Vec::with_capacity(ALIAS_OUTBOX),
            learned: Vec::with_capacity(NEIGHBOR_OUTBOX),
            requests: Vec::with_capacity(NEIGHBOR_OUTBOX),
            hold: sizing.neighbor_hold > 0,
            unresolved: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            neighbor_epoch: 0,
            guard: match &topo.notify {
                Some(n) => Some(
                    ReplayGuard::new(sizing.notify_guard, n.max_skew_ms)
                        .map_err(|e| CoreLbError::Notify(e.to_string()))?,
                ),
                None => None,
            },
            wall_base_ms: sizing.wall_base_ms,
            notify_counters: NotifyCounters::default(),
            neighbors: Table::with_capacity(sizing.neighbors)?,
            schedulers,
            fnat: if topo.fnat_locals.is_empty() {
                None
            } else {
                Some(FnatTable::new(
                    sizing.connections,
                    topo.fnat_locals.len(),
                    me,
                    sizing.workers,
                )?)
            },
            workers: sizing.workers.max(1),
            icmp_originated: WindowLimit::new(sizing.icmp_errors_per_second),
            icmp_translated: WindowLimit::new(sizing.icmp_translated_per_second),
            fragment_l3: 0,
            fragment_ident: u32::from(me),
            topo,
        })
    }

    /// Full-NAT connections on this core (0 without full NAT).
    pub fn connections(&self) -> usize {
        self.fnat.as_ref().map_or(0, FnatTable::len)
    }

    /// Full-NAT connection capacity of this core (0 without full NAT).
    pub fn connection_capacity(&self) -> usize {
        self.fnat.as_ref().map_or(0, FnatTable::capacity)
    }

    /// Bytes the full-NAT connection table takes (0 without full NAT).
    pub fn connection_memory(&self) -> usize {
        self.fnat.as_ref().map_or(0, FnatTable::memory_bytes)
    }

    /// Full-NAT connections opened and expired on this core.
    pub fn connection_counts(&self) -> (u64, u64) {
        self.fnat
            .as_ref()
            .map_or((0, 0), |t| (t.created, t.expired))
    }

    /// This core's full-NAT table (tests and diagnostics).
    pub fn fnat_table(&self) -> Option<&FnatTable> {
        self.fnat.as_ref()
    }

    /// This core's current topology (a new handle: clone it once, not per
    /// packet).
    pub fn topology(&self) -> Arc<Topology> {
        self.topo.clone()
    }

    /// Live sessions on this core.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Session table slots (what a full expiry lap examines).
    pub fn session_slots(&self) -> usize {
        self.sessions.slots()
    }

    /// Session table capacity.
    pub fn session_capacity(&self) -> usize {
        self.sessions.capacity()
    }

    /// Bytes the session table takes.
    pub fn session_memory(&self) -> usize {
        self.sessions.memory_bytes()
    }

    /// The backend an identity's session on this core points at.
    pub fn session_backend(&self, service: u16, identity: Identity, now: Now) -> Option<IpAddr> {
        let hash = self.hasher.hash(&identity);
        let e = self
            .sessions
            .get(hash, &SessionKey::new(service, &identity), now.ms)?;
        self.schedulers[usize::from(service)]
            .set()
            .get(e.value())
            .map(|b| b.address)
    }

    /// Switches to a reloaded topology (between bursts). Slots are stable
    /// (see [`Topology::reloaded`]), so sessions stay as they are; per-core
    /// scheduler state follows its backends by address.
    pub fn set_topology(&mut self, topo: Arc<Topology>) {
        for (i, svc) in topo.services.iter().enumerate() {
            let replaced = match self.schedulers.get_mut(i) {
                Some(sched) => {
                    let remap = Remap::between(sched.set(), &svc.backends);
                    sched.swap(svc.backends.clone(), &remap).is_ok()
                }
                None => false,
            };
            if !replaced {
                // A new slot, or more backends than the scheduler has room
                // for: fresh per-core state (least-connections counts restart).
                if let Ok(fresh) =
                    Scheduler::new(svc.backends.clone(), scheduler_room(&svc.backends))
                {
                    if i < self.schedulers.len() {
                        self.schedulers[i] = fresh;
                    } else {
                        self.schedulers.push(fresh);
                    }
                }
            }
            let n = svc.backends.backends().len();
            match self.counters.backend_packets.get_mut(i) {
                Some(c) if c.len() >= n => {}
                Some(c) => {
                    let mut grown = vec![0u64; n];
                    grown[..c.len()].copy_from_slice(c);
                    *c = grown.into();
                }
                None => self.counters.backend_packets.push(vec![0u64; n].into()),
            }
        }
        self.topo = topo;
    }

    /// Applies a neighbour learned by another core.
    pub fn apply_neighbor(&mut self, u: &NeighborUpdate, now: u32) {
        let hash = self.hasher.hash(&Identity::Source(u.ip));
        if self
            .neighbors
            .insert(hash, u.ip, u.mac, NEIGHBOR_LIFETIME, now)
            .is_ok()
        {
            self.neighbor_epoch += 1;
        }
    }

    /// Changes whenever the neighbour cache gains or changes a binding
    /// (learned here or from another core): the worker then releases the
    /// held packets whose next hop resolves.
    #[inline]
    pub fn neighbor_epoch(&self) -> u64 {
        self.neighbor_epoch
    }

    /// The next hop of the last [`Verdict::Hold`].
    #[inline]
    pub fn unresolved_next_hop(&self) -> IpAddr {
        self.unresolved
    }

    /// The MAC the neighbour cache holds for `ip` (not a pending entry).
    pub fn resolved_mac(&mut self, ip: IpAddr, now: u32) -> Option<[u8; 6]> {
        let hash = self.hasher.hash(&Identity::Source(ip));
        self.neighbors
            .get(hash, &ip, now)
            .map(|e| e.value())
            .filter(|m| *m != NEIGHBOR_PENDING)
    }

    /// Asks again for next hop `nh` out of `port` (the hold queue's
    /// retransmission), unless a request for it went out within the last
    /// second (its pending entry is still there) or it resolved meanwhile.
    pub fn solicit(&mut self, topo: &Topology, port: u8, nh: IpAddr, now: u32) {
        let hash = self.hasher.hash(&Identity::Source(nh));
        if self.neighbors.get(hash, &nh, now).is_none() {
            self.request_neighbor(topo, port, nh, hash, now);
        }
    }

    /// Queues an ARP request / neighbour solicitation for `nh` and caches
    /// it as pending for a second; `false` when none can be sent (no
    /// address of its family on the port).
    fn request_neighbor(
        &mut self,
        topo: &Topology,
        port: u8,
        nh: IpAddr,
        hash: u64,
        now: u32,
    ) -> bool {
        let Some(source) = topo.port_address(port, nh) else {
            return false;
        };
        if self.requests.len() < NEIGHBOR_OUTBOX
            && self
                .neighbors
                .insert(hash, nh, NEIGHBOR_PENDING, 1, now)
                .is_ok()
        {
            self.requests.push(NeighborRequest {
                port,
                source,
                target: nh,
                mac: topo.ports[usize::from(port)].mac,
            });
            self.counters.neighbor_requests += 1;
        }
        true
    }

    /// Hands learned neighbours (for the other cores) and pending requests
    /// (to send) to the worker loop, and empties both queues.
    pub fn drain_neighbor_work(
        &mut self,
        mut learned: impl FnMut(&NeighborUpdate),
        mut request: impl FnMut(&NeighborRequest),
    ) {
        for u in &self.learned {
            learned(u);
        }
        self.learned.clear();
        for r in &self.requests {
            request(r);
        }
        self.requests.clear();
    }

    fn learn_neighbor(&mut self, ip: IpAddr, mac: [u8; 6], now: u32) {
        // Untrusted: an all-zero MAC would read as "being resolved" (and
        // hold packets for nothing), a group MAC is no neighbour's.
        if mac == NEIGHBOR_PENDING || mac[0] & 1 != 0 {
            return;
        }
        let hash = self.hasher.hash(&Identity::Source(ip));
        if self
            .neighbors
            .get(hash, &ip, now)
            .is_some_and(|e| e.value() == mac)
        {
            return;
        }
        if self
            .neighbors
            .insert(hash, ip, mac, NEIGHBOR_LIFETIME, now)
            .is_ok()
        {
            self.neighbor_epoch += 1;
            self.counters.neighbors_learned += 1;
            if self.learned.len() < NEIGHBOR_OUTBOX {
                self.learned.push(NeighborUpdate { ip, mac });
            }
        }
    }

    /// ARP and neighbour discovery: learn, answer what asks for us, bridge
    /// or drop the rest.
    fn neighbor_control<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        in_port: u8,
        now: u32,
    ) -> Verdict {
        let Some(kind) = neighbor::classify(f.bytes(), p) else {
            return self.l2_control(topo, in_port);
        };
        if let Some((ip, mac)) = neighbor::learn(f.bytes(), p) {
            if !topo.answers(in_port, ip) {
                self.learn_neighbor(ip, mac, now);
            }
        }
        let mac = topo.ports[usize::from(in_port)].mac;
        let answered = match kind {
            NdKind::ArpRequest { target } if topo.answers(in_port, IpAddr::V4(target)) => {
                neighbor::answer_arp(f.bytes_mut(), p, mac)
            }
            NdKind::Solicitation { target } if topo.answers(in_port, IpAddr::V6(target)) => {
                let len = usize::from(p.l4_offset) + neighbor::NA_LEN;
                f.set_len(len) && neighbor::answer_ns(f.bytes_mut(), p, mac)
            }
            _ => false,
        };
        if answered {
            self.counters.neighbor_answers += 1;
            return Verdict::Transmit(in_port);
        }
        // Otherwise consumed (learned from, or about someone else): not an error.
        self.bridge(topo, in_port).unwrap_or(Verdict::Drop)
    }

    /// A home-agent notification (S1): verified on the core that received
    /// it, then on the home address's owner core, whose replay guard sees
    /// every notification for that home; there it takes effect like a
    /// binding update (alias applied and broadcast). Always consumed.
    fn notification<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        n: &NotifySpec,
        now: u32,
        handed_off: bool,
    ) -> Verdict {
        let start = usize::from(p.l4_offset) + 8;
        let end = usize::from(p.l3_end).min(f.bytes().len());
        let payload = f.bytes().get(start..end).unwrap_or(&[]);
        let now_ms = self.wall_base_ms.saturating_add(u64::from(now) * 1000);
        let note = match notify::verify(payload, &n.key, now_ms, n.max_skew_ms) {
            Ok(note) => note,
            Err(reason) => {
                self.notify_counters.drop(reason);
                return Verdict::Drop;
            }
        };
        let hash = self.hasher.hash(&Identity::HomeAddress(note.home));
        if !handed_off {
            let owner = self.buckets.core_of(hash);
            if owner != self.me {
                self.counters.handoffs += 1;
                return Verdict::Handoff(owner);
            }
        }
        let Some(guard) = self.guard.as_mut() else {
            return Verdict::Drop;
        };
        if let Err(reason) = guard.check_and_record(hash, note.home, note.sequence, now) {
            self.notify_counters.drop(reason);
            return Verdict::Drop;
        }
        self.notify_counters.accepted += 1;
        let u = note.alias_update();
        self.apply_alias(&u, now);
        if self.outbox.len() < ALIAS_OUTBOX {
            self.outbox.push(u);
        } else {
            self.counters.alias_outbox_full += 1;
        }
        Verdict::Drop
    }

    /// Live aliases on this core.
    pub fn aliases(&self) -> usize {
        self.aliases.len()
    }

    /// Applies an alias update broadcast by another core.
    pub fn apply_alias(&mut self, u: &AliasUpdate, now: u32) {
        let hash = self.hasher.hash(&Identity::Source(IpAddr::V6(u.coa)));
        if u.lifetime == 0 {
            self.aliases.remove(hash, &u.coa);
        } else if self
            .aliases
            .insert(hash, u.coa, u.home, u.lifetime, now)
            .is_err()
        {
            self.counters.alias_table_full += 1;
        }
    }

    /// Hands every queued alias update to `send` (for the other cores) and
    /// empties the outbox.
    pub fn drain_outbox(&mut self, mut send: impl FnMut(&AliasUpdate)) {
        for u in &self.outbox {
            send(u);
        }
        self.outbox.clear();
    }

    fn binding_update(&mut self, frame: &[u8], p: &Parsed, now: u32) {
        let Some(bu) = binding_update(frame, p) else {
            return;
        };
        if !p.has_hao() || bu.care_of_address == bu.home_address {
            return;
        }
        let u = AliasUpdate {
            coa: bu.care_of_address,
            home: bu.home_address,
            lifetime: bu.lifetime_secs,
        };
        self.counters.binding_updates += 1;
        self.apply_alias(&u, now);
        if self.outbox.len() < ALIAS_OUTBOX {
            self.outbox.push(u);
        } else {
            self.counters.alias_outbox_full += 1;
        }
    }

    /// First pass over an RX burst received on `in_port`: for each frame,
    /// its parse, its service and its identity's hash go into the `pre` at
    /// the same index (for [`CoreLb::process_prefetched`] to use instead of
    /// doing them again), and the session slot an owned identity will use
    /// starts loading, so the misses of the burst overlap. Changes nothing
    /// else; packets it cannot place are simply not prefetched. Identities
    /// an alias may rewrite are not hashed here (the alias look-up would
    /// cost what the prefetch saves).
    ///
    /// The identities are hashed [`HASH_LANES`] at a time, side by side
    /// ([`IdentityHasher::hash_keys`]): one identity's AES is a chain of
    /// ten dependent rounds, and eight such chains overlap. Frames past
    /// `pre`'s length are not looked at.
    #[inline]
    pub fn prefetch_burst<'a>(
        &mut self,
        topo: &Topology,
        frames: impl IntoIterator<Item = &'a [u8]>,
        in_port: u8,
        pre: &mut [Prefetched],
    ) {
        self.prefetched_len = 0;
        self.entries_prefetched = 0;
        if topo.ports[usize::from(in_port)].role == PortRole::Server {
            // Replies: nothing of the client path to look up ahead.
            pre.fill(Prefetched::default());
            return;
        }
        // The burst's packets still to hash: index into `pre`, service
        // slot and identity key of each.
        let mut waiting = Waiting {
            index: [0; HASH_LANES],
            service: [0; HASH_LANES],
            key: [NO_KEY; HASH_LANES],
            len: 0,
        };
        for (i, frame) in frames.into_iter().take(pre.len()).enumerate() {
            let Some((service, key)) = self.prefetch_one(topo, frame, &mut pre[i]) else {
                continue;
            };
            let n = waiting.len;
            (waiting.index[n], waiting.service[n], waiting.key[n]) = (i, service, key);
            waiting.len += 1;
            if waiting.len == HASH_LANES {
                self.hash_and_prefetch(pre, &waiting);
                waiting.len = 0;
            }
        }
        if waiting.len > 0 {
            self.hash_and_prefetch(pre, &waiting);
        }
    }

    /// Hashes the `waiting` identity keys side by side, gives each packet
    /// its hash, and starts loading the session slot and bucket load of
    /// those this core owns.
    #[inline(always)]
    fn hash_and_prefetch(&mut self, pre: &mut [Prefetched], waiting: &Waiting) {
        let n = waiting.len.min(HASH_LANES);
        let mut hashes = [0u64; HASH_LANES];
        self.hasher.hash_keys(&waiting.key[..n], &mut hashes);
        // The lanes zipped, not indexed: one bounds check for the lot.
        let lanes = waiting.index[..n]
            .iter()
            .zip(&waiting.key[..n])
            .zip(&waiting.service[..n])
            .zip(&hashes[..n]);
        for (((&index, key), &service), &hash) in lanes {
            if let Some(slot) = pre.get_mut(index) {
                slot.hashed = Some((*key, hash));
            }
            let bucket = self.buckets.bucket_of(hash);
            if self.buckets.core_of_bucket(bucket) == self.me
                && self.prefetched_len < self.prefetched.len()
            {
                self.sessions.prefetch_hashes(hash);
                self.loads.prefetch_bucket(bucket);
                self.prefetched[self.prefetched_len] = hash;
                self.prefetched_service[self.prefetched_len] = service;
                self.prefetched_index[self.prefetched_len] = index as u8;
                self.prefetched_len += 1;
            }
        }
    }

    /// Fills `pre` afresh with the parse and service match of `frame`;
    /// returns the service slot and identity key to hash, for a client
    /// packet to a service whose identity no alias can rewrite.
    #[inline(always)]
    fn prefetch_one(
        &self,
        topo: &Topology,
        frame: &[u8],
        pre: &mut Prefetched,
    ) -> Option<(u16, IdentityKey)> {
        // Every field but the parse, which `parse_into` writes whole
        // (and which counts only when `valid`).
        pre.valid = false;
        pre.direct = false;
        pre.service = ServiceMatch::NotDone;
        pre.hashed = None;
        pre.established = None;
        if crate::packet::parse_into(frame, &self.parse_cfg, &mut pre.parsed).is_err() {
            return None;
        }
        pre.valid = true;
        let p = &pre.parsed;
        let dst = dst_bits(frame, p)?;
        let dport = (p.has_l4() && matches!(p.protocol, IpProtocol::Tcp | IpProtocol::Udp))
            .then_some(p.dst_port);
        let Some(si) = topo.match_service(dst, p.protocol, dport) else {
            pre.service = ServiceMatch::NoService;
            return None;
        };
        // Services are few (u16 indices in the topology).
        pre.service = ServiceMatch::Service(si as u16);
        pre.direct = dport.is_some()
            && !topo
                .notify
                .as_ref()
                .is_some_and(|n| p.protocol == IpProtocol::Udp && dport == Some(n.port));
        let key = identity_key(frame, p, topo.services[si].mode)?;
        if !self.aliases.is_empty() && key.may_have_alias() {
            return None;
        }
        Some((si as u16, key))
    }

    /// Second pass over a burst, after [`CoreLb::prefetch_burst`]: the
    /// stored hashes of the first packets have arrived by now, so find
    /// their slots and start loading their entries (which may sit a few
    /// slots past home). Only the first `ENTRY_LEAD` (8): each look-up of
    /// [`CoreLb::look_up_established`] (or, without that pass, each
    /// [`CoreLb::process_prefetched`]) then starts one more, so the entries
    /// keep arriving just ahead of the look-ups that need them, and no
    /// look-up of a stored hash waits on a line still in flight.
    #[inline]
    pub fn prefetch_entries(&mut self) {
        let lead = self.prefetched_len.min(ENTRY_LEAD);
        for k in 0..lead {
            self.prefetch_entry_of(k);
        }
        self.entries_prefetched = lead;
    }

    /// Starts loading the next session entry of the burst not yet asked
    /// for (see [`CoreLb::prefetch_entries`]).
    #[inline(always)]
    fn prefetch_next_entry(&mut self) {
        if self.entries_prefetched < self.prefetched_len {
            self.prefetch_entry_of(self.entries_prefetched);
            self.entries_prefetched += 1;
        }
    }

    /// Starts loading the session entry of the burst's `k`-th prefetched
    /// packet, or, when the stored hashes show it has no session (a new
    /// identity), the Maglev position its backend choice will read.
    /// Marks it [`ABSENT`] in `prefetched_index` in the second case.
    #[inline(always)]
    fn prefetch_entry_of(&mut self, k: usize) {
        let hash = self.prefetched[k];
        if !self.sessions.prefetch_entry(hash) {
            self.prefetched_index[k] |= ABSENT;
            if let Some(s) = self.schedulers.get(usize::from(self.prefetched_service[k])) {
                s.prefetch_pick(hash);
            }
        }
    }

    /// Third pass over a burst, after [`CoreLb::prefetch_entries`]: looks up
    /// the session of every packet the prefetch pass hashed for this core,
    /// each while the entry of the one [`ENTRY_LEAD`] places on starts
    /// loading, and marks in `pre` those the established fast path
    /// ([`CoreLb::forward_established`]) sends: straight to a service in
    /// DNAT mode, with a live session whose backend is healthy and has a
    /// static neighbour. A marked session is refreshed here, as the
    /// packet path's look-up would refresh it.
    ///
    /// Done for the burst before any of its packets is processed, so that
    /// each loop keeps little state live; the burst's packets are still
    /// processed in order afterwards, so a flow's packets leave in order
    /// whichever path each takes. What the earlier packets' slower path
    /// may do in between cannot stale a mark: an insert moves entries but
    /// not their backends, a full table never evicts a live session, a
    /// backend changes only on reload (between bursts), and an alias a
    /// binding update adds makes [`CoreLb::forward_established`] decline
    /// the identities an alias may rewrite.
    #[inline]
    pub fn look_up_established(&mut self, topo: &Topology, pre: &mut [Prefetched], now: Now) {
        let n = self.prefetched_len.min(self.prefetched.len());
        for k in 0..n {
            if k + ENTRY_LEAD < n {
                self.prefetch_entry_of(k + ENTRY_LEAD);
            }
            let index = self.prefetched_index[k];
            if index & ABSENT != 0 {
                // No session to find: a new identity, for the whole path.
                continue;
            }
            let Some(slot) = pre.get_mut(usize::from(index)) else {
                continue;
            };
            let (true, Some((identity, hash))) = (slot.direct, slot.hashed) else {
                continue;
            };
            let service = self.prefetched_service[k];
            let Some(egress) = topo
                .dnat_egress
                .get(usize::from(service))
                .filter(|e| !e.is_empty())
            else {
                continue;
            };
            let key = SessionKey::of_key(service, &identity);
            let Some(e) = self.sessions.lookup(hash, &key, now.ms) else {
                continue;
            };
            let backend = e.value();
            if let Some(Some(egress)) = egress.get(usize::from(backend)) {
                slot.established = Some(Established {
                    backend,
                    egress: *egress,
                });
            }
        }
        // Every entry asked for: the packets' own prefetch is a no-op now.
        self.entries_prefetched = self.prefetched_len;
    }

    /// The established fast path, for a packet [`CoreLb::look_up_established`]
    /// marked in this burst (`pre`, the frame unchanged since): rewrites it
    /// for the session's backend and gives its verdict, counted as
    /// [`CoreLb::forward_to_backend`] counts it. `None`, the frame
    /// untouched, when the packet must take the whole path after all: its
    /// identity is one an alias may rewrite and the burst's earlier packets
    /// brought the first alias.
    #[inline(always)]
    fn forward_established<F: Frame>(
        &mut self,
        topo: &Topology,
        f: &mut F,
        pre: &Prefetched,
    ) -> Option<Verdict> {
        let (Some(est), ServiceMatch::Service(si), Some((identity, hash))) =
            (&pre.established, pre.service, pre.hashed)
        else {
            return None;
        };
        if identity.may_have_alias() && !self.aliases.is_empty() {
            return None;
        }
        let (si, backend) = (usize::from(si), est.backend);
        if !rewrite_dst(f.bytes_mut(), &pre.parsed, &est.egress.address) {
            return Some(self.bucket_drop(hash, LbDrop::RewriteFailed));
        }
        match f.bytes_mut().get_mut(..12) {
            Some(l2) => l2.copy_from_slice(&est.egress.l2),
            None => return Some(self.bucket_drop(hash, LbDrop::RewriteFailed)),
        }
        let out = topo.server_port;
        // The counts of `forward_to_backend`'s tail, written out again: one
        // helper for both tails counted 691 instead of 677 instructions a
        // packet in the DUT (README.md, *Results*, 2026-12-08).
        if let Some(c) = self.counters.backend_packets[si].get_mut(usize::from(backend)) {
            *c += 1;
        }
        self.counters.to_backend += 1;
        let bucket = self.buckets.bucket_of(hash);
        self.loads.record_bucket(bucket, f.bytes().len() as u32);
        Some(Verdict::Transmit(out))
    }

    /// Carries out a [`Verdict::Fragment`] just given for `first`: moves
    /// the second half of its outer payload into `second` (an empty buffer
    /// from the pool; `None` when the pool had none) and makes both valid
    /// fragments of the outer packet (IPv4, or IPv6 with Fragment headers,
    /// which takes 8 octets of headroom in `first`). False when it could not
    /// be split (counted; free both).
    pub fn fragment<F: Frame>(
        &mut self,
        topo: &Topology,
        first: &mut F,
        second: Option<&mut F>,
    ) -> bool {
        let Some(second) = second else {
            self.counters.drop(LbDrop::FragmentNoBuffer);
            return false;
        };
        let ident = self.fragment_ident;
        self.fragment_ident = ident.wrapping_add(u32::from(self.workers.max(1)));
        let l3 = self.fragment_l3;
        let split = match first.bytes().get(l3).map(|b| b >> 4) {
            Some(4) => split_ipv4(first, second, l3, topo.server_mtu, ident as u16),
            Some(6) => split_ipv6(first, second, l3, topo.server_mtu, ident),
            _ => false,
        };
        if !split {
            self.counters.drop(LbDrop::RewriteFailed);
            return false;
        }
        self.counters.encap_fragmented += 1;
        true
    }

    /// Counts a drop by the owner of `hash`'s bucket, in the bucket's load
    /// as well as by reason.
    #[inline]
    fn bucket_drop(&mut self, hash: u64, reason: LbDrop) -> Verdict {
        self.loads.drop_packet(hash);
        self.counters.drop(reason)
    }

    /// Expires sessions, examining at most `budget` slots of the session
    /// table; the full-NAT connection table gets at least
    /// [`SIDE_TABLE_BUDGET`] slots, the neighbour, alias and notification
    /// guard tables fixed slices (whatever the session budget).
    pub fn expire(&mut self, now: Now, budget: usize) -> usize {
        let schedulers = &mut self.schedulers;
        let n = self.sessions.expire(now.ms, budget, |e| {
            if let Some(s) = schedulers.get_mut(usize::from(e.key().service())) {
                s.session_closed(e.value());
            }
        });
        self.counters.sessions_expired += n as u64;
        if let Some(t) = self.fnat.as_mut() {
            t.expire(now.secs, budget.max(SIDE_TABLE_BUDGET));
        }
        self.neighbors.expire(now.secs, 64, |_| {});
        self.aliases.expire(now.secs, 256, |_| {});
        if let Some(g) = self.guard.as_mut() {
            g.expire(now.secs, 256);
        }
        n
    }

    /// [`CoreLb::process_with`] for tests: it clones the shared topology handle (an atomic on
    /// a cache line every worker shares), so the worker loop calls
    /// [`CoreLb::process_from_loop`] with a handle it holds itself.
    /// `now_secs` gives both clocks, whole seconds after the start.
    #[cfg(test)]
    pub fn process<F: Frame>(
        &mut self,
        f: &mut F,
        in_port: u8,
        now_secs: u32,
        handed_off: bool,
    ) -> Verdict {
        let topo = self.topo.clone();
        self.process_with(&topo, f, in_port, Now::from_secs(now_secs), handed_off)
    }

    /// Decides what happens to one packet received on `in_port` (or handed
    /// over by another core when `handed_off`), rewriting it as needed: the
    /// packet path. `topo` must be this core's current topology (the one
    /// last given to [`CoreLb::set_topology`]).
    #[inline]
    pub fn process_with<F: Frame>(
        &mut self,
        topo: &Topology,
        f: &mut F,
        in_port: u8,
        now: Now,
        handed_off: bool,
    ) -> Verdict {
        self.process_inner(topo, f, in_port, now, handed_off, &Prefetched::default())
    }

    /// [`CoreLb::process_with`] for a packet received from a port for which
    /// [`CoreLb::prefetch_burst`] gave `pre` in this burst (the frame
    /// unchanged since): its parse, identity and hash are used, not redone,
    /// and a packet [`CoreLb::look_up_established`] marked takes the
    /// established fast path.
    #[inline]
    pub fn process_prefetched<F: Frame>(
        &mut self,
        topo: &Topology,
        f: &mut F,
        in_port: u8,
        now: Now,
        pre: &Prefetched,
    ) -> Verdict {
        self.process_from_loop(topo, f, in_port, now, false, Some(pre))
    }

    /// The worker loop's entry to the packet path: what
    /// [`CoreLb::process_prefetched`] does when the prefetch pass gave
    /// `pre`, else what [`CoreLb::process_with`] does. The loop inlines
    /// the whole path, `process_inner` and `forward_to_backend` included,
    /// into its pass over an RX burst and into the one call that handed-off
    /// and injected packets take. Counted with callgrind over `roamlb
    /// replay` (README.md, *Results*, the evening of 2026-12-04), the two
    /// entries called from the loop cost 24 instructions a packet more,
    /// and `process_inner` or `forward_to_backend` left a function of its
    /// own 18 and 31 more.
    #[inline(always)]
    pub fn process_from_loop<F: Frame>(
        &mut self,
        topo: &Topology,
        f: &mut F,
        in_port: u8,
        now: Now,
        handed_off: bool,
        pre: Option<&Prefetched>,
    ) -> Verdict {
        let fresh;
        let pre = match pre {
            Some(pre) => {
                if pre.established.is_some() {
                    if let Some(v) = self.forward_established(topo, f, pre) {
                        return v;
                    }
                }
                self.prefetch_next_entry();
                pre
            }
            None => {
                fresh = Prefetched::default();
                &fresh
            }
        };
        self.process_inner(topo, f, in_port, now, handed_off, pre)
    }

    #[inline(always)]
    fn process_inner<F: Frame>(
        &mut self,
        topo: &Topology,
        f: &mut F,
        in_port: u8,
        now: Now,
        handed_off: bool,
        pre: &Prefetched,
    ) -> Verdict {
        // One call of `forward_to_backend` for both routes, so that it is
        // inlined here rather than called.
        let routed;
        let (p, si, hint) = match (pre.direct, pre.service) {
            (true, ServiceMatch::Service(si)) => (&pre.parsed, usize::from(si), pre.hashed),
            _ => match self.route(topo, f, in_port, now, handed_off, pre) {
                Routed::Done(v) => return v,
                Routed::Service { parsed, si, hint } => {
                    routed = parsed;
                    (&routed, si, hint)
                }
            },
        };
        self.forward_to_backend(f, p, topo, si, now, handed_off, hint)
    }

    /// [`CoreLb::process_inner`] for a packet the prefetch pass did not
    /// mark `direct`: every branch of the packet path. A packet for a
    /// service comes back with its parse, the service and the prefetch
    /// pass's identity hint, for `forward_to_backend`.
    #[inline]
    fn route<F: Frame>(
        &mut self,
        topo: &Topology,
        f: &mut F,
        in_port: u8,
        now: Now,
        handed_off: bool,
        pre: &Prefetched,
    ) -> Routed {
        // Parsed into a local (or copied from the prefetch pass, written
        // long before): copying a struct out of `self` right after the
        // parser's narrow stores stalls on store forwarding.
        let p = if pre.valid {
            pre.parsed
        } else {
            let mut p = Parsed::default();
            if let Err(reason) = crate::packet::parse_into(f.bytes(), &self.parse_cfg, &mut p) {
                // A port with `forward_to` bridges what it does not balance,
                // including what it cannot parse; elsewhere the reason counts.
                if let Some(v) = self.bridge(topo, in_port) {
                    return Routed::Done(v);
                }
                self.counters.parse_drops.inc(reason);
                return Routed::Done(Verdict::Drop);
            }
            p
        };
        let frame = f.bytes();
        if !matches!(p.l3, L3Kind::Ipv4 | L3Kind::Ipv6) {
            return Routed::Done(self.neighbor_control(f, &p, topo, in_port, now.secs));
        }
        // Both addresses lie inside the header the parser checked, so these
        // fail only if the parse came from another frame. They are read
        // where a branch needs them: the established client path does not.
        let Some(dst) = dst_addr(frame, &p) else {
            return Routed::Done(self.counters.drop(LbDrop::RewriteFailed));
        };
        if is_neighbor_discovery(&p, frame) {
            return Routed::Done(self.neighbor_control(f, &p, topo, in_port, now.secs));
        }
        let ports = (p.has_l4() && matches!(p.protocol, IpProtocol::Tcp | IpProtocol::Udp))
            .then_some((p.src_port, p.dst_port));
        let role = topo.ports[usize::from(in_port)].role;

        if let (Some(n), Some((_, dport))) = (&topo.notify, ports) {
            // On the server side, a full-NAT local address's ports belong
            // to connections (the notification port may be one of them).
            let fnat_reply = role != PortRole::Client && topo.fnat_local(dst).is_some();
            if p.protocol == IpProtocol::Udp
                && dport == n.port
                && topo.answers(in_port, dst)
                && !fnat_reply
            {
                return Routed::Done(self.notification(f, &p, n, now.secs, handed_off));
            }
        }

        if role != PortRole::Server && icmp_error::is_error(frame, &p) {
            // About a reply from a VIP, sent to that VIP (the reply's
            // source): back to the backend that sent it.
            if let Some(q) = icmp_error::quote(frame, &p) {
                let (vip, vport) = (q.src(frame), q.src_port(frame));
                if let Some(si) = topo
                    .match_service(AddrBits::of(vip), q.protocol(), Some(vport))
                    .filter(|si| topo.services[*si].vip == vip && dst == vip)
                {
                    return Routed::Done(
                        self.client_icmp_error(f, &p, topo, si, &q, now, handed_off),
                    );
                }
            }
        }
        if role != PortRole::Server {
            // The prefetch pass matched this very frame in this topology.
            let service = match pre.service {
                ServiceMatch::Service(si) => Some(usize::from(si)),
                ServiceMatch::NoService => None,
                ServiceMatch::NotDone => {
                    let dst_bits = dst_bits(frame, &p).unwrap_or(AddrBits(false, 0));
                    topo.match_service(dst_bits, p.protocol, ports.map(|x| x.1))
                }
            };
            if let Some(si) = service {
                // The prefetch pass's hash, if it hashed this frame's
                // identity (for the service it matched, `si`).
                let hint = pre.hashed.filter(|_| !handed_off);
                return Routed::Service {
                    parsed: p,
                    si,
                    hint,
                };
            }
        }
        if role != PortRole::Client {
            let Some(src) = p.src_addr(f.bytes()) else {
                return Routed::Done(self.counters.drop(LbDrop::RewriteFailed));
            };
            // An error about a DSR tunnel packet goes to the outer source,
            // which may also be a full-NAT local address: looked at first
            // (the quote tells the two apart).
            if (Some(dst) == topo.encap_src6.map(IpAddr::V6)
                || Some(dst) == topo.encap_src4.map(IpAddr::V4))
                && icmp_error::is_error(f.bytes(), &p)
            {
                if let Some(v) = self.dsr_tunnel_error(f, &p, topo, dst, now.secs) {
                    return Routed::Done(v);
                }
            }
            if let Some(local) = topo.fnat_local(dst) {
                if let Some(v) = self.fnat_reply(f, &p, topo, local, src, now.secs, handed_off) {
                    return Routed::Done(v);
                }
            }
            if icmp_error::is_error(f.bytes(), &p) {
                if let Some(v) = self.dnat_icmp_error(f, &p, topo, now.secs) {
                    return Routed::Done(v);
                }
            }
            if let Some(si) = topo.reverse_service(src, p.protocol, ports.map(|x| x.0)) {
                return Routed::Done(self.reply_to_client(f, &p, topo, si, dst, now.secs));
            }
        }
        Routed::Done(match self.bridge(topo, in_port) {
            Some(v) => v,
            None => self.counters.drop(LbDrop::NoService),
        })
    }

    /// Bridges a packet the balancer does not take to the port's
    /// `forward_to`, unchanged; `None` when the port has none.
    #[inline]
    fn bridge(&mut self, topo: &Topology, in_port: u8) -> Option<Verdict> {
        let out = topo.ports[usize::from(in_port)].forward_to?;
        self.counters.raw_forwarded += 1;
        Some(Verdict::Transmit(out))
    }

    fn l2_control(&mut self, topo: &Topology, in_port: u8) -> Verdict {
        match self.bridge(topo, in_port) {
            Some(v) => v,
            None => self.counters.drop(LbDrop::NeighborDiscovery),
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn forward_to_backend<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        si: usize,
        now: Now,
        handed_off: bool,
        hint: Option<(IdentityKey, u64)>,
    ) -> Verdict {
        let svc = &topo.services[si];
        // The identity and its own hash: the prefetch pass's (hint), or
        // computed together from the frame (cheaper than hashing the built
        // identity; see `IdentityHasher::identify`).
        let found = hint.or_else(|| self.hasher.identify(f.bytes(), p, svc.mode));
        let Some((mut identity, own_hash)) = found else {
            return self.counters.drop(LbDrop::NoIdentity);
        };
        // Neither SPI nor Home Address option: a care-of address known from
        // a binding update stands for its home address. A handed-off packet
        // carries what the first core resolved, so the owner never
        // re-resolves it against a copy that may lag.
        let mut resolved = None;
        if identity.may_have_alias() {
            resolved = if handed_off {
                read_meta(f)
            } else if self.aliases.is_empty() {
                // No binding update seen: nothing to look up (and no cache
                // line of the alias table to miss).
                None
            } else {
                match p.ipv6_src(f.bytes()) {
                    Some(src) => {
                        let source = IdentityKey::of(&Identity::Source(IpAddr::V6(src)));
                        let h = if identity == source {
                            own_hash
                        } else {
                            self.hasher.hash_key(&source)
                        };
                        self.aliases.lookup(h, &src, now.secs).map(|e| e.value())
                    }
                    None => None,
                }
            };
            if let Some(home) = resolved {
                identity = IdentityKey::home_address(home);
                if !handed_off {
                    self.counters.alias_hits += 1;
                }
            }
        }
        // A binding update takes effect on the first core that sees it,
        // before any handoff, so the node's next packets resolve here.
        if p.is_binding_update() && !handed_off {
            self.binding_update(f.bytes(), p, now.secs);
        }
        let fnat = svc.forwarding == ForwardingMode::Fnat;
        if fnat && !(p.has_l4() && matches!(p.protocol, IpProtocol::Tcp | IpProtocol::Udp)) {
            return self.counters.drop(LbDrop::FnatUnsupportedProtocol);
        }
        // An alias replaced the identity that `own_hash` is the hash of.
        let hash = match resolved {
            None => own_hash,
            Some(_) => self.hasher.hash_key(&identity),
        };
        let bucket = self.buckets.bucket_of(hash);
        if !handed_off {
            let owner = self.buckets.core_of_bucket(bucket);
            if owner != self.me {
                write_meta(f, resolved);
                self.counters.handoffs += 1;
                return Verdict::Handoff(owner);
            }
        }
        let key = SessionKey::of_key(si as u16, &identity);
        let sched = &mut self.schedulers[si];
        let backend = match self.sessions.lookup_or_vacancy(hash, &key, now.ms) {
            // A session keeps its backend unless a reload removed it (an
            // unhealthy tombstone); a drained one (weight 0) keeps serving.
            Ok(e) if sched.set().get(e.value()).is_some_and(|b| b.healthy) => e.value(),
            Ok(e) => {
                let Some(b) = sched.pick(hash) else {
                    return self.bucket_drop(hash, LbDrop::NoBackend);
                };
                sched.session_closed(e.value());
                sched.session_opened(b);
                e.set_value(b);
                b
            }
            // The insert starts where the look-up's probe stopped.
            Err(vacancy) => {
                let Some(b) = sched.pick(hash) else {
                    return self.bucket_drop(hash, LbDrop::NoBackend);
                };
                if self
                    .sessions
                    .insert_vacant(vacancy, key, b, svc.lifetime, now.ms)
                    .is_err()
                {
                    return self.bucket_drop(hash, LbDrop::SessionTableFull);
                }
                sched.session_opened(b);
                self.counters.sessions_created += 1;
                b
            }
        };
        let Some(entry) = self.schedulers[si].set().get(backend) else {
            return self.bucket_drop(hash, LbDrop::NoBackend);
        };
        // DNAT with a static neighbour reads the address from the entry
        // alone; the other branches take a copy (they need `&mut self`).
        let baddr = || entry.address;
        let out = topo.server_port;
        let mut fragment = false;
        let rewritten = match svc.forwarding {
            // From the entry itself, not a copy: see `rewrite_dst`.
            ForwardingMode::Dnat => rewrite_dst(f.bytes_mut(), p, &entry.address),
            ForwardingMode::Dsr if dsr_too_big(f, p, topo, baddr()) => {
                let baddr = baddr();
                if !dsr_can_fragment(f, p, topo, baddr) {
                    return self.dsr_send_too_big(f, p, topo, si, baddr, now.secs);
                }
                match encapsulate(f, p, topo, baddr) {
                    Ok(()) => {
                        fragment = true;
                        true
                    }
                    Err(reason) => return self.bucket_drop(hash, reason),
                }
            }
            ForwardingMode::Dsr => match encapsulate(f, p, topo, baddr()) {
                Ok(()) => true,
                Err(reason) => return self.bucket_drop(hash, reason),
            },
            ForwardingMode::Fnat => {
                let baddr = baddr();
                match self.fnat_forward(f, p, topo, si, key, hash, baddr, now.secs) {
                    Ok(()) => true,
                    Err(reason) => return self.bucket_drop(hash, reason),
                }
            }
        };
        if !rewritten {
            return self.bucket_drop(hash, LbDrop::RewriteFailed);
        }
        let l2 = match static_mac(topo, si, backend) {
            Some(mac) => write_l2(f, mac, topo.ports[usize::from(out)].mac).map_err(Unsent::from),
            None => match self.schedulers[si].set().get(backend) {
                Some(e) => {
                    let baddr = e.address;
                    self.set_l2(f, topo, out, baddr, now.secs)
                }
                None => Err(Unsent::Drop(LbDrop::NoBackend)),
            },
        };
        if let Err(u) = l2 {
            // A held packet counts in `to_backend`, per backend and in its
            // bucket only if it is released (as `neighbor_released`). The
            // hold queue keeps whole packets: one to be fragmented is not
            // held (its next hop has been asked for all the same).
            return match u {
                Unsent::Hold if fragment => self.bucket_drop(hash, LbDrop::NeighborUnresolved),
                Unsent::Hold => Verdict::Hold(out),
                Unsent::Drop(reason) => self.bucket_drop(hash, reason),
            };
        }
        if let Some(c) = self.counters.backend_packets[si].get_mut(usize::from(backend)) {
            *c += 1;
        }
        self.counters.to_backend += 1;
        self.loads.record_bucket(bucket, f.bytes().len() as u32);
        if fragment {
            self.fragment_l3 = usize::from(p.l3_offset);
            return Verdict::Fragment(out);
        }
        Verdict::Transmit(out)
    }

    #[inline]
    fn reply_to_client<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        si: usize,
        client: IpAddr,
        now: u32,
    ) -> Verdict {
        let vip = topo.services[si].vip;
        if !set_addresses(f.bytes_mut(), p, Some(vip), None) {
            return self.counters.drop(LbDrop::RewriteFailed);
        }
        let out = topo.client_port;
        if let Err(u) = self.set_l2(f, topo, out, client, now) {
            return self.unsent(u, out);
        }
        self.counters.replies += 1;
        Verdict::Transmit(out)
    }

    /// DSR, a packet that would not fit the server side's MTU once
    /// encapsulated: it is not sent oversized. The client gets, from the VIP,
    /// an ICMPv6 Packet Too Big (IPv6) or an ICMP Fragmentation Needed (IPv4
    /// with Don't Fragment) whose MTU is the server side's less the outer
    /// header, as IPVS's tunnel mode does, so its path-MTU discovery settles
    /// on packets that fit; the session stays. IPv4 without DF that could
    /// not be sent as two outer fragments is dropped (`encap_too_big`).
    #[cold]
    #[inline(never)]
    fn dsr_send_too_big<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        si: usize,
        backend: IpAddr,
        now: u32,
    ) -> Verdict {
        let mtu = topo.server_mtu.saturating_sub(encap_overhead(backend));
        let vip = topo.services[si].vip;
        if ipv4_without_df(f, p) {
            return self.counters.drop(LbDrop::EncapTooBig);
        }
        if !self.icmp_originated.allow(now) {
            return self.counters.drop(LbDrop::IcmpRateLimited);
        }
        let Some(client) = p.src_addr(f.bytes()) else {
            return self.counters.drop(LbDrop::RewriteFailed);
        };
        let built = match (vip, client) {
            // IPv6 links carry at least 1280 octets (RFC 8200 §5).
            (IpAddr::V6(_), IpAddr::V6(_)) if p.l3 == L3Kind::Ipv6 => {
                too_big_in_place(f, p, vip, client, u32::from(mtu.max(1280)))
            }
            (IpAddr::V4(_), IpAddr::V4(_)) if p.l3 == L3Kind::Ipv4 => {
                too_big_in_place(f, p, vip, client, u32::from(mtu))
            }
            _ => false,
        };
        if !built {
            return self.counters.drop(LbDrop::RewriteFailed);
        }
        self.counters.icmp_too_big_sent += 1;
        let out = topo.client_port;
        if let Err(u) = self.set_l2(f, topo, out, client, now) {
            return self.unsent(u, out);
        }
        Verdict::Transmit(out)
    }

    /// Full NAT, client -> backend: the flow's connection (opened on first
    /// sight with a local address and a port of this core's range) records
    /// the client's current address, and the packet leaves from the local
    /// address and port to the backend.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn fnat_forward<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        si: usize,
        id: SessionKey,
        id_hash: u64,
        backend: IpAddr,
        now: u32,
    ) -> Result<(), LbDrop> {
        let svc = &topo.services[si];
        let table = self.fnat.as_mut().ok_or(LbDrop::RewriteFailed)?;
        let key = ConnKey::new(id, p.protocol, p.src_port, p.dst_port);
        let hash = key.hash(id_hash);
        let r = match table.lookup(hash, &key, now) {
            Some(r) => r,
            None => table
                .open(
                    hash,
                    key,
                    &svc.fnat,
                    (hash >> 32) as usize,
                    svc.conn_idle,
                    now,
                )
                .map_err(|e| match e {
                    OpenError::PortsExhausted => LbDrop::FnatPortsExhausted,
                    OpenError::TableFull => LbDrop::ConnectionTableFull,
                })?,
        };
        let client = p.src_addr(f.bytes()).ok_or(LbDrop::RewriteFailed)?;
        let (li, lport) = table.local_of(r);
        if let Some(c) = table.conn_mut(r) {
            c.update(client, p.has_hao(), backend);
        }
        if p.protocol == IpProtocol::Tcp {
            table.track_tcp(r, p.tcp_flags, true, svc.conn_idle, svc.conn_closed, now);
        }
        let local = *topo.fnat_locals.get(li).ok_or(LbDrop::RewriteFailed)?;
        rewrite_forward(f.bytes_mut(), p, local, lport, backend).map_err(|_| LbDrop::RewriteFailed)
    }

    /// Full NAT, backend -> client: a packet on a server-side port to local
    /// address `local`. A port of another core's range is handed to that
    /// core (the reply steering: no shared table, no hash); on the owner the
    /// connection gives the client back, and the packet leaves from the VIP
    /// toward the client's current address. `None`: the port is in no
    /// core's range (not full-NAT traffic).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn fnat_reply<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        local: usize,
        src: IpAddr,
        now: u32,
        handed_off: bool,
    ) -> Option<Verdict> {
        if icmp_error::is_error(f.bytes(), p) {
            return Some(self.fnat_icmp_error(f, p, topo, local, now, handed_off));
        }
        if !(p.has_l4() && matches!(p.protocol, IpProtocol::Tcp | IpProtocol::Udp)) {
            return Some(self.counters.drop(LbDrop::FnatUnsupportedProtocol));
        }
        let owner = port_owner(p.dst_port, self.workers)?;
        if owner != self.me {
            if handed_off {
                return Some(self.counters.drop(LbDrop::FnatNoConnection));
            }
            self.counters.handoffs += 1;
            return Some(Verdict::Handoff(owner));
        }
        let table = self.fnat.as_mut()?;
        let Some((r, c)) = table
            .reply(local, p.dst_port, p.protocol, src, p.src_port, now)
            .and_then(|r| table.conn(r).map(|c| (r, *c)))
        else {
            return Some(self.counters.drop(LbDrop::FnatNoConnection));
        };
        let key = c.key();
        let Some(svc) = topo.services.get(usize::from(key.service())) else {
            return Some(self.counters.drop(LbDrop::FnatNoConnection));
        };
        if p.protocol == IpProtocol::Tcp {
            table.track_tcp(r, p.tcp_flags, false, svc.conn_idle, svc.conn_closed, now);
        }
        let home = match (c.home_option(), key.session().identity()) {
            (true, Identity::HomeAddress(h)) => Some(h),
            _ => None,
        };
        let client = c.client();
        let to = ReplyTo {
            vip: svc.vip,
            vport: key.service_port(),
            client,
            cport: key.client_port(),
            home,
        };
        let next = match rewrite_reply(f.bytes_mut(), p, &to) {
            Ok(true) => {
                let (Some(h), IpAddr::V6(coa)) = (home, client) else {
                    return Some(self.counters.drop(LbDrop::RewriteFailed));
                };
                if !f.prepend(RH2_LEN) {
                    return Some(self.counters.drop(LbDrop::EncapNoHeadroom));
                }
                if !insert_rh2(f.bytes_mut(), p, h, coa) {
                    return Some(self.counters.drop(LbDrop::RewriteFailed));
                }
                client
            }
            // A node behind a home address without room for the routing
            // header: to the home address (its home agent tunnels it on).
            Ok(false) => home.map(IpAddr::V6).unwrap_or(client),
            Err(_) => return Some(self.counters.drop(LbDrop::RewriteFailed)),
        };
        let out = topo.client_port;
        if let Err(u) = self.set_l2(f, topo, out, next, now) {
            return Some(self.unsent(u, out));
        }
        self.counters.replies += 1;
        Some(Verdict::Transmit(out))
    }

    /// Full NAT, an ICMP error to local address `local` about a packet the
    /// appliance sent toward a backend (see [`icmp_error`]): the quoted
    /// local port names the owning core (handed over like a reply), whose
    /// connection gives the client back. The quote becomes the client's own
    /// packet — from its address (the home address for a mobile node that
    /// used a Home Address option, which is what its transport is bound to)
    /// and port, to the VIP and service port — and the error goes from the
    /// VIP to the client's current address.
    #[inline(never)]
    fn fnat_icmp_error<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        local: usize,
        now: u32,
        handed_off: bool,
    ) -> Verdict {
        let frame = f.bytes();
        let Some(q) = icmp_error::quote(frame, p) else {
            return self.counters.drop(LbDrop::IcmpErrorUnusable);
        };
        if topo.fnat_local(q.src(frame)) != Some(local) {
            return self.counters.drop(LbDrop::IcmpErrorUnusable);
        }
        let (lport, backend, bport) = (q.src_port(frame), q.dst(frame), q.dst_port(frame));
        let Some(owner) = port_owner(lport, self.workers) else {
            return self.counters.drop(LbDrop::IcmpErrorNoConnection);
        };
        if owner != self.me {
            if handed_off {
                return self.counters.drop(LbDrop::IcmpErrorNoConnection);
            }
            self.counters.handoffs += 1;
            return Verdict::Handoff(owner);
        }
        let Some(table) = self.fnat.as_mut() else {
            return self.counters.drop(LbDrop::IcmpErrorNoConnection);
        };
        let Some(c) = table
            .reply(local, lport, q.protocol(), backend, bport, now)
            .and_then(|r| table.conn(r).copied())
        else {
            return self.counters.drop(LbDrop::IcmpErrorNoConnection);
        };
        let key = c.key();
        let Some(svc) = topo.services.get(usize::from(key.service())) else {
            return self.counters.drop(LbDrop::IcmpErrorNoConnection);
        };
        if !self.icmp_translated.allow(now) {
            return self.counters.drop(LbDrop::IcmpRateLimited);
        }
        let client = c.client();
        let home = match (c.home_option(), key.session().identity()) {
            (true, Identity::HomeAddress(h)) => Some(h),
            _ => None,
        };
        if !icmp_error::rewrite(
            f.bytes_mut(),
            &q,
            home.map(IpAddr::V6).unwrap_or(client),
            key.client_port(),
            svc.vip,
            key.service_port(),
        ) {
            return self.counters.drop(LbDrop::RewriteFailed);
        }
        // A mobile node gets the error the way it gets replies: at its
        // care-of address through a type 2 Routing header naming the home
        // address, the final destination and so the ICMPv6 pseudo-header's
        // (RFC 6275 §9.3.2, RFC 8200 §8.1); one that already carries
        // extension headers goes to the home address, for the home agent.
        let rh2 = home
            .filter(|_| usize::from(p.l4_offset) == usize::from(p.l3_offset) + ipv6::HEADER_LEN);
        let final_dst = home.map(IpAddr::V6).unwrap_or(client);
        if !set_addresses(f.bytes_mut(), p, Some(svc.vip), Some(final_dst)) {
            return self.counters.drop(LbDrop::RewriteFailed);
        }
        let next = match (rh2, client) {
            (Some(h), IpAddr::V6(coa)) => {
                // The routing header must not take an error that fitted the
                // IPv6 minimum MTU past it (RFC 4443 §2.4 (c)): the quote
                // gives up its last octets instead.
                let l3 = usize::from(p.l3_offset);
                let len = usize::from(p.l3_end)
                    .min(f.bytes().len())
                    .saturating_sub(l3);
                let cut = (len + RH2_LEN)
                    .saturating_sub(icmp_error::IPV6_MIN_MTU)
                    .min(RH2_LEN);
                if cut > 0 {
                    let Some(end) = icmp_error::cut_v6(f.bytes_mut(), &q, l3, cut) else {
                        return self.counters.drop(LbDrop::RewriteFailed);
                    };
                    if !f.set_len(end) {
                        return self.counters.drop(LbDrop::RewriteFailed);
                    }
                }
                if !f.prepend(RH2_LEN) {
                    return self.counters.drop(LbDrop::EncapNoHeadroom);
                }
                if !insert_rh2(f.bytes_mut(), p, h, coa) {
                    return self.counters.drop(LbDrop::RewriteFailed);
                }
                client
            }
            _ => home.map(IpAddr::V6).unwrap_or(client),
        };
        let out = topo.client_port;
        if let Err(u) = self.set_l2(f, topo, out, next, now) {
            return self.unsent(u, out);
        }
        self.counters.icmp_errors_translated += 1;
        Verdict::Transmit(out)
    }

    /// An ICMP error from the server side about a packet the appliance
    /// encapsulated for a DSR service (RFC 2473 §8, RFC 2003 §4), addressed
    /// to the outer header's source, the server-side address `to`. A Packet
    /// Too Big or Fragmentation Needed means the path to the backend is
    /// narrower than the server port's MTU: the client gets, from the VIP,
    /// the same error the appliance sends when its own check finds a packet
    /// too big (its quote the client's packet from the error's quote, cut
    /// to fit), with the reported MTU less the outer header, so its
    /// path-MTU discovery settles on packets that fit the tunnel. Stateless:
    /// no session is looked up, any core answers. `None`: the quote is not
    /// an encapsulated packet from `to` (the error goes the way others do).
    #[inline(never)]
    fn dsr_tunnel_error<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        to: IpAddr,
        now: u32,
    ) -> Option<Verdict> {
        let t = icmp_error::tunnel_quote(f.bytes(), p).filter(|t| t.outer_src == to)?;
        let known = topo.services.iter().any(|s| {
            !s.removed
                && s.forwarding == ForwardingMode::Dsr
                && s.vip == t.vip
                && s.backends.backends().iter().any(|b| b.address == t.backend)
        });
        let Some(reported) = t.too_big.filter(|_| known) else {
            return Some(self.counters.drop(LbDrop::IcmpErrorTunnel));
        };
        let reported = reported.saturating_sub(u32::from(encap_overhead(t.backend)));
        let mtu = match t.client {
            // IPv6 links carry at least 1280 octets (RFC 8200 §5).
            IpAddr::V6(_) => reported.max(1280),
            IpAddr::V4(_) if t.inner_df => reported.max(68),
            IpAddr::V4(_) => return Some(self.counters.drop(LbDrop::IcmpErrorTunnel)),
        };
        if !self.icmp_originated.allow(now) {
            return Some(self.counters.drop(LbDrop::IcmpRateLimited));
        }
        let l3 = usize::from(p.l3_offset);
        if !too_big_from_quote(f, l3, t.inner.clone(), t.vip, t.client, mtu) {
            return Some(self.counters.drop(LbDrop::RewriteFailed));
        }
        let out = topo.client_port;
        if let Err(u) = self.set_l2(f, topo, out, t.client, now) {
            return Some(self.unsent(u, out));
        }
        self.counters.icmp_tunnel_too_big += 1;
        Some(Verdict::Transmit(out))
    }

    /// DNAT, backend side -> client: an ICMP error about a packet the
    /// appliance passed to a backend (client:port -> backend:service port,
    /// the client's packet with only its destination changed), from the
    /// backend itself (a closed UDP port) or a router on the way (Packet
    /// Too Big, Fragmentation Needed). Stateless, like DNAT's replies: the
    /// quoted backend address and port name the service, and the quote's
    /// destination becomes the VIP again, so the client sees an error about
    /// the packet it sent. The error leaves from the VIP (as LVS does: a
    /// backend or a server-side router is no address the client knows)
    /// toward its destination, the client, unchanged. `None`: no usable
    /// quote or no DNAT service of that backend and port (the packet goes
    /// the way it went before).
    #[inline(never)]
    fn dnat_icmp_error<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        now: u32,
    ) -> Option<Verdict> {
        let frame = f.bytes();
        let q = icmp_error::quote(frame, p)?;
        let (client, cport, bport) = (q.src(frame), q.src_port(frame), q.dst_port(frame));
        let si = topo.reverse_service(q.dst(frame), q.protocol(), Some(bport))?;
        let vip = topo.services[si].vip;
        let to = dst_addr(frame, p)?;
        if !self.icmp_translated.allow(now) {
            return Some(self.counters.drop(LbDrop::IcmpRateLimited));
        }
        if !icmp_error::rewrite(f.bytes_mut(), &q, client, cport, vip, bport) {
            return Some(self.counters.drop(LbDrop::RewriteFailed));
        }
        if !set_addresses(f.bytes_mut(), p, Some(vip), None) {
            return Some(self.counters.drop(LbDrop::RewriteFailed));
        }
        let out = topo.client_port;
        if let Err(u) = self.set_l2(f, topo, out, to, now) {
            return Some(self.unsent(u, out));
        }
        self.counters.icmp_errors_translated += 1;
        Some(Verdict::Transmit(out))
    }

    /// An ICMP error from the client side about a reply the appliance sent
    /// (VIP:service port -> client:port, quoted in `q`): the client is the
    /// quote's destination — its type 2 Routing header's home address for a
    /// mobile node, else its address (through a care-of alias when there is
    /// one, or its interface ID in `slaac` mode) — and its session on the
    /// owning core gives the backend. DNAT: the quote becomes the backend's
    /// own packet (from the backend address) and the error goes to the
    /// backend. Full NAT: the connection of the quoted ports gives the local
    /// address and port the backend talked to; the quote becomes backend ->
    /// local address, and the error goes from the local address to the
    /// backend. DSR: the backend sent the reply from the VIP itself, so the
    /// error goes to it encapsulated and untouched.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn client_icmp_error<F: Frame>(
        &mut self,
        f: &mut F,
        p: &Parsed,
        topo: &Topology,
        si: usize,
        q: &icmp_error::Quote,
        now: Now,
        handed_off: bool,
    ) -> Verdict {
        let svc = &topo.services[si];
        let frame = f.bytes();
        let client = q.dst(frame);
        let (vport, cport) = (q.src_port(frame), q.dst_port(frame));
        let mut identity = match (q.rh2_home(frame), client) {
            (Some(home), _) => IdentityKey::home_address(home),
            (None, IpAddr::V6(a)) if svc.mode == IdentityMode::Slaac => {
                IdentityKey::of(&Identity::InterfaceId(u128::from(a) as u64))
            }
            (None, a) => IdentityKey::of(&Identity::Source(a)),
        };
        if let (true, IpAddr::V6(a)) = (identity.may_have_alias(), client) {
            if !self.aliases.is_empty() {
                let h = self
                    .hasher
                    .hash_key(&IdentityKey::of(&Identity::Source(client)));
                if let Some(e) = self.aliases.lookup(h, &a, now.secs) {
                    identity = IdentityKey::home_address(e.value());
                }
            }
        }
        let hash = self.hasher.hash_key(&identity);
        let owner = self.buckets.core_of(hash);
        if owner != self.me {
            if handed_off {
                return self.counters.drop(LbDrop::IcmpErrorNoSession);
            }
            self.counters.handoffs += 1;
            return Verdict::Handoff(owner);
        }
        let key = SessionKey::of_key(si as u16, &identity);
        let Some(backend) = self.sessions.lookup(hash, &key, now.ms).map(|e| e.value()) else {
            return self.counters.drop(LbDrop::IcmpErrorNoSession);
        };
        let Some(baddr) = self.schedulers[si].set().get(backend).map(|b| b.address) else {
            return self.counters.drop(LbDrop::IcmpErrorNoSession);
        };
        let out = topo.server_port;
        // The limit applies to errors that passed every check, so that
        // forged ones cannot use up the real ones' share.
        if svc.forwarding == ForwardingMode::Dsr {
            // The backend holds the VIP and sent the reply from it: the
            // error is about its own packet as it is, so it travels
            // encapsulated, untouched, like the client's packets.
            if !self.icmp_translated.allow(now.secs) {
                return self.counters.drop(LbDrop::IcmpRateLimited);
            }
            if let Err(reason) = encapsulate(f, p, topo, baddr) {
                return self.counters.drop(reason);
            }
            if let Err(u) = self.set_l2(f, topo, out, baddr, now.secs) {
                return self.unsent(u, out);
            }
            self.counters.icmp_errors_translated += 1;
            return Verdict::Transmit(out);
        }
        let (quote_ok, outer_src, dst) = if svc.forwarding == ForwardingMode::Fnat {
            let Some(table) = self.fnat.as_mut() else {
                return self.counters.drop(LbDrop::IcmpErrorNoSession);
            };
            let ckey = ConnKey::new(key, q.protocol(), cport, vport);
            let Some(r) = table.lookup(ckey.hash(hash), &ckey, now.secs) else {
                return self.counters.drop(LbDrop::IcmpErrorNoConnection);
            };
            let Some(conn_backend) = table.conn(r).map(|c| c.backend()) else {
                return self.counters.drop(LbDrop::IcmpErrorNoConnection);
            };
            let (li, lport) = table.local_of(r);
            let Some(&local) = topo.fnat_locals.get(li) else {
                return self.counters.drop(LbDrop::RewriteFailed);
            };
            if !self.icmp_translated.allow(now.secs) {
                return self.counters.drop(LbDrop::IcmpRateLimited);
            }
            // A reply quoted with a type 2 Routing header got it here: the
            // backend sent 24 octets less than what met the smaller MTU,
            // and must leave room for them (RFC 8201 still keeps it at
            // 1280 or more: a 1280-octet client path cannot take a full
            // 1280-octet reply plus the header, and nothing here fragments).
            let added = if q.rh2_home(f.bytes()).is_some() {
                RH2_LEN as u32
            } else {
                0
            };
            let ok = icmp_error::rewrite(f.bytes_mut(), q, conn_backend, vport, local, lport)
                && icmp_error::lower_mtu(f.bytes_mut(), q, added);
            (ok, Some(local), conn_backend)
        } else {
            if !self.icmp_translated.allow(now.secs) {
                return self.counters.drop(LbDrop::IcmpRateLimited);
            }
            let ok = icmp_error::rewrite(f.bytes_mut(), q, baddr, vport, client, cport);
            (ok, None, baddr)
        };
        if !quote_ok {
            return self.counters.drop(LbDrop::RewriteFailed);
        }
        if !set_addresses(f.bytes_mut(), p, outer_src, Some(dst)) {
            return self.counters.drop(LbDrop::RewriteFailed);
        }
        if let Err(u) = self.set_l2(f, topo, out, dst, now.secs) {
            return self.unsent(u, out);
        }
        self.counters.icmp_errors_translated += 1;
        Verdict::Transmit(out)
    }

    /// Writes the next hop's MAC and the port's own MAC. An unknown next
    /// hop is asked for (ARP request or neighbour solicitation, at most one
    /// per next hop per second) and the packet is to be held
    /// ([`Unsent::Hold`]) until the answer arrives.
    #[inline]
    fn set_l2<F: Frame>(
        &mut self,
        f: &mut F,
        topo: &Topology,
        port: u8,
        dst: IpAddr,
        now: u32,
    ) -> Result<(), Unsent> {
        let nh = topo.next_hop(port, dst).ok_or(LbDrop::NoRoute)?;
        let mac = match topo.static_neighbor(port, nh) {
            Some(m) => m,
            None => {
                let hash = self.hasher.hash(&Identity::Source(nh));
                match self.neighbors.lookup(hash, &nh, now) {
                    Some(e) if e.value() != NEIGHBOR_PENDING => e.value(),
                    // Asked within the last second: wait for the answer.
                    Some(_) if topo.port_address(port, nh).is_some() => {
                        return self.unresolved(nh);
                    }
                    Some(_) => return Err(LbDrop::NeighborUnresolved.into()),
                    None if topo.replay => {
                        // The request a live appliance would send; the
                        // derived answer is cached like a real one.
                        self.counters.neighbor_requests_suppressed += 1;
                        let m = derived_mac(nh);
                        let _ = self.neighbors.insert(hash, nh, m, NEIGHBOR_LIFETIME, now);
                        m
                    }
                    None => {
                        if !self.request_neighbor(topo, port, nh, hash, now) {
                            return Err(LbDrop::NeighborUnresolved.into());
                        }
                        return self.unresolved(nh);
                    }
                }
            }
        };
        write_l2(f, mac, topo.ports[usize::from(port)].mac).map_err(Unsent::from)
    }

    /// The outcome for a packet whose next hop is being resolved.
    #[inline]
    fn unresolved(&mut self, nh: IpAddr) -> Result<(), Unsent> {
        if !self.hold {
            return Err(LbDrop::NeighborUnresolved.into());
        }
        self.unresolved = nh;
        Err(Unsent::Hold)
    }

    /// The verdict for a packet `set_l2` could not finish for port `out`.
    #[inline]
    fn unsent(&mut self, u: Unsent, out: u8) -> Verdict {
        match u {
            Unsent::Hold => Verdict::Hold(out),
            Unsent::Drop(reason) => self.counters.drop(reason),
        }
    }
}

/// Why a packet's Ethernet header could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unsent {
    /// Drop it; the reason is to be counted.
    Drop(LbDrop),
    /// Hold it until its next hop is resolved.
    Hold,
}

impl From<LbDrop> for Unsent {
    #[inline]
    fn from(r: LbDrop) -> Self {
        Unsent::Drop(r)
    }
}

/// The static neighbour's MAC of backend `backend` of service `si`, if it has one.
#[inline(always)]
fn static_mac(topo: &Topology, si: usize, backend: BackendIndex) -> Option<[u8; 6]> {
    topo.egress
        .get(si)
        .and_then(|e| e.get(usize::from(backend)).copied())
        .flatten()
}

/// Writes the Ethernet destination and source of `f`.
#[inline]
fn write_l2<F: Frame>(f: &mut F, dst: [u8; 6], src: [u8; 6]) -> Result<(), LbDrop> {
    match f.bytes_mut().get_mut(0..12) {
        Some(b) => {
            b[0..6].copy_from_slice(&dst);
            b[6..12].copy_from_slice(&src);
            Ok(())
        }
        None => Err(LbDrop::RewriteFailed),
    }
}

/// An IP address as (is IPv6, the address as an integer): what the packet
/// path compares. Built straight from the frame's bytes into registers; an
/// `IpAddr` assembled on the stack and read back whole stalls on store
/// forwarding, which cost about a tenth of a worker's time in the service
/// match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrBits(bool, u128);

impl AddrBits {
    /// The bits of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => AddrBits(false, u128::from(u32::from(a))),
            IpAddr::V6(a) => AddrBits(true, u128::from(a)),
        }
    }
}

/// Rewrites the IP source and/or destination of the packet `p` describes,
/// keeping the header and L4 checksums right (through
/// [`set_ipv4_addr`] / [`set_ipv6_addr`]). `false` if an address is of the
/// other family than the packet or the rewrite does not fit.
fn set_addresses(frame: &mut [u8], p: &Parsed, src: Option<IpAddr>, dst: Option<IpAddr>) -> bool {
    for (is_dst, a) in [(false, src), (true, dst)] {
        let ok = match (a, p.l3) {
            (None, _) => true,
            (Some(IpAddr::V4(a)), L3Kind::Ipv4) => {
                let field = if is_dst {
                    Ipv4Field::Destination
                } else {
                    Ipv4Field::Source
                };
                set_ipv4_addr(frame, p, field, a).is_ok()
            }
            (Some(IpAddr::V6(a)), L3Kind::Ipv6) => {
                let field = if is_dst {
                    Ipv6Field::Destination
                } else {
                    Ipv6Field::Source
                };
                set_ipv6_addr(frame, p, field, a).is_ok()
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The destination address of an IP packet as [`AddrBits`].
#[inline]
fn dst_bits(frame: &[u8], p: &Parsed) -> Option<AddrBits> {
    let o = usize::from(p.l3_offset);
    match p.l3 {
        L3Kind::Ipv4 => {
            let b: [u8; 4] = frame
                .get(o + ipv4::DST_OFFSET..o + ipv4::DST_OFFSET + 4)?
                .try_into()
                .ok()?;
            Some(AddrBits(false, u128::from(u32::from_be_bytes(b))))
        }
        L3Kind::Ipv6 => {
            let b: [u8; 16] = frame
                .get(o + ipv6::DST_OFFSET..o + ipv6::DST_OFFSET + 16)?
                .try_into()
                .ok()?;
            Some(AddrBits(true, u128::from_be_bytes(b)))
        }
        _ => None,
    }
}

#[inline]
fn dst_addr(frame: &[u8], p: &Parsed) -> Option<IpAddr> {
    let o = usize::from(p.l3_offset);
    match p.l3 {
        L3Kind::Ipv4 => {
            let b: [u8; 4] = frame
                .get(o + ipv4::DST_OFFSET..o + ipv4::DST_OFFSET + 4)?
                .try_into()
                .ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        L3Kind::Ipv6 => {
            let b: [u8; 16] = frame
                .get(o + ipv6::DST_OFFSET..o + ipv6::DST_OFFSET + 16)?
                .try_into()
                .ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// ICMPv6 neighbour solicitation/advertisement, router messages (types
/// 133-137).
#[inline]
fn is_neighbor_discovery(p: &Parsed, frame: &[u8]) -> bool {
    p.protocol == IpProtocol::Icmpv6
        && p.has_l4()
        && frame
            .get(usize::from(p.l4_offset))
            .is_some_and(|t| (133..=137).contains(t))
}

/// DNAT's rewrite of the destination to `to`. Takes the address by
/// reference, to copy it straight from the backend entry: an `IpAddr` passed
/// by value was moved onto the stack in 1- to 8-octet pieces and read back
/// as one 16-octet load, a store-forwarding stall that `perf annotate` put
/// at about a tenth of `forward_to_backend`.
#[inline]
fn rewrite_dst(frame: &mut [u8], p: &Parsed, to: &IpAddr) -> bool {
    match (to, p.l3) {
        (IpAddr::V4(a), L3Kind::Ipv4) => {
            set_ipv4_addr(frame, p, Ipv4Field::Destination, *a).is_ok()
        }
        (IpAddr::V6(a), L3Kind::Ipv6) => {
            set_ipv6_addr(frame, p, Ipv6Field::Destination, *a).is_ok()
        }
        _ => false,
    }
}

/// Ethernet's MTU, the server side's when `ports[].mtu` does not say.
const DEFAULT_MTU: u16 = 1500;

/// True when the DSR outer header toward `backend` would take the packet
/// past the server side's MTU.
#[inline]
fn dsr_too_big<F: Frame>(f: &F, p: &Parsed, topo: &Topology, backend: IpAddr) -> bool {
    l3_len(f, p) + usize::from(encap_overhead(backend)) > usize::from(topo.server_mtu)
}

/// True when an IPv4 packet without Don't Fragment that the outer header
/// takes past the server side's MTU can leave as two outer fragments: an
/// IPv4 outer header fragmented as RFC 2003 §5.1 allows, an IPv6 one with a
/// Fragment header (RFC 2473 §7.1, RFC 8200 §4.5). Packets needing three
/// fragments or more are not split.
fn dsr_can_fragment<F: Frame>(f: &F, p: &Parsed, topo: &Topology, backend: IpAddr) -> bool {
    let per = fragment_payload(topo.server_mtu, backend.is_ipv6());
    ipv4_without_df(f, p) && per > 0 && l3_len(f, p) <= 2 * per
}

/// True for an IPv4 packet whose Don't Fragment flag is clear.
fn ipv4_without_df<F: Frame>(f: &F, p: &Parsed) -> bool {
    p.l3 == L3Kind::Ipv4
        && f.bytes()
            .get(usize::from(p.l3_offset) + 6)
            .is_some_and(|b| b & 0x40 == 0)
}

/// Octets of the outer packet's payload a fragment carries under `mtu`:
/// what fits after a 20-octet IPv4 header, or a 40-octet IPv6 header and
/// an 8-octet Fragment header, in whole 8-octet units.
fn fragment_payload(mtu: u16, ipv6: bool) -> usize {
    let headers = if ipv6 { 40 + 8 } else { 20 };
    usize::from(mtu).saturating_sub(headers) & !7
}

/// [`split_ipv4`] for an IPv6 outer header (carrying IPv4, next header 4)
/// at `l3`: both fragments get a Fragment header (RFC 8200 §4.5) with
/// identification `ident`; `first` keeps the first [`fragment_payload`]
/// octets of the inner packet with the M flag (it needs 8 octets of
/// headroom for the new header), `second` gets the rest at its offset.
fn split_ipv6<F: Frame>(first: &mut F, second: &mut F, l3: usize, mtu: u16, ident: u32) -> bool {
    const FRAGMENT_HEADER: u8 = 44;
    let b = first.bytes();
    if b.len() < l3 + 40 || b[l3] >> 4 != 6 || b[l3 + 6] != 4 {
        return false;
    }
    let inner = usize::from(u16::from_be_bytes([b[l3 + 4], b[l3 + 5]]));
    let per = fragment_payload(mtu, true);
    if l3 + 40 + inner > b.len() || per == 0 {
        return false;
    }
    let rest = inner.saturating_sub(per);
    if rest == 0 || rest > per || !second.set_len(l3 + 48 + rest) {
        return false;
    }
    let fragment_header = |offset: usize, more: bool| {
        let mut h = [4u8, 0, 0, 0, 0, 0, 0, 0];
        let field = ((offset / 8) as u16) << 3 | u16::from(more);
        h[2..4].copy_from_slice(&field.to_be_bytes());
        h[4..8].copy_from_slice(&ident.to_be_bytes());
        h
    };
    let out = second.bytes_mut();
    out[..l3 + 40].copy_from_slice(&b[..l3 + 40]);
    out[l3 + 40..l3 + 48].copy_from_slice(&fragment_header(per, false));
    out[l3 + 48..].copy_from_slice(&b[l3 + 40 + per..l3 + 40 + inner]);
    out[l3 + 4..l3 + 6].copy_from_slice(&((8 + rest) as u16).to_be_bytes());
    out[l3 + 6] = FRAGMENT_HEADER;
    if !insert_after_l2(first, l3 + 40, 8) || !first.set_len(l3 + 48 + per) {
        return false;
    }
    let b = first.bytes_mut();
    b[l3 + 40..l3 + 48].copy_from_slice(&fragment_header(0, true));
    b[l3 + 4..l3 + 6].copy_from_slice(&((8 + per) as u16).to_be_bytes());
    b[l3 + 6] = FRAGMENT_HEADER;
    true
}

/// Splits the IPv4 packet whose 20-octet header starts at `l3` in `first`
/// into two fragments under `mtu`: `first` keeps the first
/// [`fragment_payload`] octets of payload with More Fragments set, `second`
/// (empty) gets the link-layer header, a copy of the IP header and the
/// rest. Both get identification `ident`, Don't Fragment cleared, their
/// length, offset and header checksum.
fn split_ipv4<F: Frame>(first: &mut F, second: &mut F, l3: usize, mtu: u16, ident: u16) -> bool {
    let b = first.bytes();
    if b.len() < l3 + 20 || b[l3] != 0x45 {
        return false;
    }
    let total = usize::from(u16::from_be_bytes([b[l3 + 2], b[l3 + 3]]));
    let per = fragment_payload(mtu, false);
    if total < 20 || l3 + total > b.len() || per == 0 {
        return false;
    }
    let payload = total - 20;
    let rest = payload.saturating_sub(per);
    if rest == 0 || rest > per || !second.set_len(l3 + 20 + rest) {
        return false;
    }
    let out = second.bytes_mut();
    out[..l3 + 20].copy_from_slice(&b[..l3 + 20]);
    out[l3 + 20..].copy_from_slice(&b[l3 + 20 + per..l3 + total]);
    let offset = (per / 8) as u16;
    set_fragment_header(&mut out[l3..l3 + 20], 20 + rest, ident, offset, false);
    if !first.set_len(l3 + 20 + per) {
        return false;
    }
    set_fragment_header(
        &mut first.bytes_mut()[l3..l3 + 20],
        20 + per,
        ident,
        0,
        true,
    );
    true
}

/// Writes a fragment's total length, identification, flags and offset
/// (in 8-octet units) into a 20-octet IPv4 header, and its checksum.
fn set_fragment_header(h: &mut [u8], total: usize, ident: u16, offset: u16, more: bool) {
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&ident.to_be_bytes());
    let flags = if more { 0x2000 } else { 0 } | (offset & 0x1fff);
    h[6..8].copy_from_slice(&flags.to_be_bytes());
    h[10..12].copy_from_slice(&[0, 0]);
    let c = crate::packet::checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Octets DSR's outer header adds toward `backend` (RFC 2003, RFC 2473).
#[inline]
fn encap_overhead(backend: IpAddr) -> u16 {
    if backend.is_ipv4() {
        20
    } else {
        40
    }
}

/// The network-layer packet's length in `f` (to its summary's end).
#[inline]
fn l3_len<F: Frame>(f: &F, p: &Parsed) -> usize {
    usize::from(p.l3_end)
        .min(f.bytes().len())
        .saturating_sub(usize::from(p.l3_offset))
}

/// Makes room for `n` octets of new headers between the link-layer header
/// (the first `l3` octets) and the packet, keeping the link-layer header in
/// front: the new headers go at `l3..l3 + n`. False without the headroom.
fn insert_after_l2<F: Frame>(f: &mut F, l3: usize, n: usize) -> bool {
    if !f.prepend(n) {
        return false;
    }
    f.bytes_mut().copy_within(n..n + l3, 0);
    true
}

/// Octets of the IP and ICMP headers of a Packet Too Big (IPv6) or a
/// Fragmentation Needed (IPv4), and the most the whole message may take:
/// the IPv6 minimum MTU (RFC 4443 §2.4 (c)), 576 for IPv4 (RFC 1812
/// §4.3.2.3).
fn too_big_layout(v6: bool) -> (usize, usize) {
    if v6 {
        (40 + 8, 1280)
    } else {
        (20 + 8, 576)
    }
}

/// Turns the IP packet of `f` in place into an ICMPv6 Packet Too Big (RFC
/// 4443 §3.2) or an ICMP Destination Unreachable, Fragmentation Needed and
/// DF Set (RFC 792, RFC 1191 §4) from `src` to `dst` with `mtu`, quoting
/// the packet within the message's limit; the link-layer header stays in
/// front.
fn too_big_in_place<F: Frame>(f: &mut F, p: &Parsed, src: IpAddr, dst: IpAddr, mtu: u32) -> bool {
    let (headers, limit) = too_big_layout(src.is_ipv6());
    let l3 = usize::from(p.l3_offset);
    let quote = l3_len(f, p).min(limit - headers);
    if !insert_after_l2(f, l3, headers) {
        return false;
    }
    f.set_len(l3 + headers + quote) && emit_too_big(f.bytes_mut(), l3, src, dst, mtu)
}

/// [`too_big_in_place`] for a quote that lies further on in the frame
/// (`quote`, past `l3` plus the new headers): the quoted packet moves up
/// behind the new headers, cut to the message's limit, and the link-layer
/// type follows the new family. No headroom is needed.
fn too_big_from_quote<F: Frame>(
    f: &mut F,
    l3: usize,
    quote: std::ops::Range<usize>,
    src: IpAddr,
    dst: IpAddr,
    mtu: u32,
) -> bool {
    let (headers, limit) = too_big_layout(src.is_ipv6());
    let len = quote.len().min(limit - headers);
    if l3 < 2 || quote.start < l3 + headers || quote.end > f.bytes().len() {
        return false;
    }
    let b = f.bytes_mut();
    b.copy_within(quote.start..quote.start + len, l3 + headers);
    let ethertype: u16 = if src.is_ipv6() { 0x86dd } else { 0x0800 };
    b[l3 - 2..l3].copy_from_slice(&ethertype.to_be_bytes());
    f.set_len(l3 + headers + len) && emit_too_big(f.bytes_mut(), l3, src, dst, mtu)
}

/// Writes the IP and ICMP headers of a Packet Too Big / Fragmentation
/// Needed at `l3`, in front of the quote that fills the rest of `b`, and
/// the ICMP checksum. `src` and `dst` are of one family.
fn emit_too_big(b: &mut [u8], l3: usize, src: IpAddr, dst: IpAddr, mtu: u32) -> bool {
    let Some(len) = b.len().checked_sub(l3) else {
        return false;
    };
    match (src, dst) {
        (IpAddr::V6(src), IpAddr::V6(dst)) if len >= 48 => {
            let msg_len = len - 40;
            Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: IpProtocol::Icmpv6,
                payload_len: msg_len as u16,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(&mut b[l3..l3 + 40]);
            b[l3 + 40..l3 + 44].copy_from_slice(&[2, 0, 0, 0]);
            b[l3 + 44..l3 + 48].copy_from_slice(&mtu.to_be_bytes());
            let msg = &mut b[l3 + 40..];
            let acc = crate::packet::checksum::pseudo_header_v6(
                src,
                dst,
                IpProtocol::Icmpv6,
                msg_len as u32,
            );
            let c = !crate::packet::checksum::fold(crate::packet::checksum::sum(acc, msg));
            msg[2..4].copy_from_slice(&c.to_be_bytes());
            true
        }
        (IpAddr::V4(src), IpAddr::V4(dst)) if len >= 28 => {
            Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: IpProtocol::Icmp,
                payload_len: (len - 20) as u16,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_frag: false,
            }
            .emit(&mut b[l3..l3 + 20]);
            let mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
            b[l3 + 20..l3 + 28].copy_from_slice(&[3, 4, 0, 0, 0, 0, 0, 0]);
            b[l3 + 26..l3 + 28].copy_from_slice(&mtu.to_be_bytes());
            let msg = &mut b[l3 + 20..];
            let c = crate::packet::checksum::checksum(msg);
            msg[2..4].copy_from_slice(&c.to_be_bytes());
            true
        }
        _ => false,
    }
}

/// Puts an outer IPv6 or IPv4 header toward `backend` between the L2 header
/// and the packet (RFC 2473 / RFC 2003), keeping the L2 header in front.
fn encapsulate<F: Frame>(
    f: &mut F,
    p: &Parsed,
    topo: &Topology,
    backend: IpAddr,
) -> Result<(), LbDrop> {
    let l2 = usize::from(p.l3_offset);
    let inner_len = u16::try_from(l3_len(f, p)).map_err(|_| LbDrop::RewriteFailed)?;
    let outer = match backend {
        IpAddr::V4(dst) => OuterHeader::V4 {
            src: topo.encap_src4.ok_or(LbDrop::NoRoute)?,
            dst,
            ttl: 64,
        },
        IpAddr::V6(dst) => OuterHeader::V6 {
            src: topo.encap_src6.ok_or(LbDrop::NoRoute)?,
            dst,
            hop_limit: 64,
        },
    };
    let n = outer.len();
    if !insert_after_l2(f, l2, n) {
        return Err(LbDrop::EncapNoHeadroom);
    }
    let b = f.bytes_mut();
    let ethertype: u16 = if backend.is_ipv4() { 0x0800 } else { 0x86dd };
    b[l2 - 2..l2].copy_from_slice(&ethertype.to_be_bytes());
    outer
        .emit(&mut b[l2..l2 + n], p.l3, inner_len)
        .map_err(|_| LbDrop::RewriteFailed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::hold::{HoldQueue, HOLD_PER_HOP};
    use crate::packet::build::{addr6, eth_ipv4, eth_ipv6, Ext, L4};
    use crate::packet::checksum;

    /// A test frame with headroom, like an mbuf.
    type TestFrame = VecFrame;

    const CONFIG: &str = r#"
        [workers]
        lcores = [1, 2]
        [[ports]]
        name = "client"
        device = "net_ring0"
        role = "client"
        addresses = ["2001:db8:ffff::1/64", "198.51.100.1/24"]
        gateways = ["2001:db8:ffff::fffe", "198.51.100.254"]
        [[ports]]
        name = "server"
        device = "net_ring1"
        role = "server"
        addresses = ["2001:db8:1::1/64", "192.0.2.1/24"]
        [[neighbor]]
        address = "2001:db8:1::10"
        mac = "02:00:00:00:10:10"
        port = "server"
        [[service]]
        name = "web6"
        vip = "2001:db8:ffff::80"
        protocol = "any"
        ports = [80]
        [[service.backend]]
        address = "2001:db8:1::10"
        [[service.backend]]
        address = "2001:db8:1::11"
        [[service.backend]]
        address = "2001:db8:1::12"
        [[service]]
        name = "dsr6"
        vip = "2001:db8:ffff::81"
        protocol = "tcp"
        forwarding = "dsr"
        [[service.backend]]
        address = "2001:db8:1::20"
        [[service]]
        name = "web4"
        vip = "198.51.100.80"
        protocol = "tcp"
        ports = [80]
        [[service.backend]]
        address = "192.0.2.30"
    "#;

    const CLIENT_MAC: [u8; 6] = [2, 0xc, 0, 0, 0, 1];
    const SERVER_MAC: [u8; 6] = [2, 0x5, 0, 0, 0, 1];

    fn cores(n: usize, replay: bool) -> Vec<CoreLb> {
        cores_holding(n, replay, 64)
    }

    fn cores_holding(n: usize, replay: bool, hold: usize) -> Vec<CoreLb> {
        cores_from(CONFIG, n, replay, hold, n as u8, 1024)
    }

    /// `n` cores of `config`'s topology sharing one bucket map and key.
    fn cores_from(
        config: &str,
        n: usize,
        replay: bool,
        hold: usize,
        workers: u8,
        connections: usize,
    ) -> Vec<CoreLb> {
        let cfg = Config::from_toml(config, "test").unwrap();
        let topo =
            Arc::new(Topology::from_config(&cfg, &[CLIENT_MAC, SERVER_MAC], replay).unwrap());
        let mut map = BucketMap::new(1024, 0).unwrap();
        map.assign_cores(0, n, |_| true).unwrap();
        let map = Arc::new(map);
        let hasher = IdentityHasher::new(*b"0123456789abcdef");
        let sizing = CoreSizing {
            sessions: 1024,
            aliases: 1024,
            notify_guard: 1024,
            wall_base_ms: 0,
            neighbors: 1024,
            neighbor_hold: hold,
            extension_header_limit: 8,
            connections,
            workers,
            icmp_errors_per_second: 1000,
            icmp_translated_per_second: 0,
        };
        (0..n)
            .map(|i| {
                CoreLb::new(topo.clone(), i as u8, map.clone(), hasher.clone(), sizing).unwrap()
            })
            .collect()
    }

    /// Runs a packet through the cores as the worker loops would.
    fn run(cores: &mut [CoreLb], frame: &mut TestFrame, port: u8, now: u32) -> Verdict {
        match cores[0].process(frame, port, now, false) {
            Verdict::Handoff(c) => cores[usize::from(c)].process(frame, port, now, true),
            v => v,
        }
    }

    fn l4_checksum_ok6(frame: &[u8], pseudo_src: Ipv6Addr) -> bool {
        let p = crate::packet::parse(frame, &ParseConfig::new()).unwrap();
        let dst = match dst_addr(frame, &p).unwrap() {
            IpAddr::V6(d) => d,
            _ => unreachable!(),
        };
        let l4 = &frame[usize::from(p.l4_offset)..usize::from(p.l3_end)];
        let acc = checksum::pseudo_header_v6(pseudo_src, dst, p.protocol, l4.len() as u32);
        checksum::fold(checksum::sum(acc, l4)) == 0xffff
            || checksum::fold(checksum::sum(acc, l4)) == 0
    }

    fn hao_tcp(coa: &str, home: &str, vip: &str) -> TestFrame {
        TestFrame::new(eth_ipv6(
            coa,
            vip,
            &[Ext::Hao(addr6(home))],
            &L4::Tcp(40000, 80, 7, 0x18),
        ))
    }

    #[test]
    fn service_filter_matches_the_spec() {
        // Services of every protocol filter, with and without port lists,
        // two of them sharing a VIP; then each one removed in turn.
        let config = r#"
            [workers]
            lcores = [1]
            [[ports]]
            name = "client"
            device = "net_ring0"
            role = "client"
            [[ports]]
            name = "server"
            device = "net_ring1"
            role = "server"
            addresses = ["2001:db8:1::1/64"]
            [[service]]
            name = "tcp-ports"
            vip = "2001:db8:ffff::80"
            protocol = "tcp"
            ports = [80, 443]
            backend = [{ address = "2001:db8:1::10" }]
            [[service]]
            name = "udp-all"
            vip = "2001:db8:ffff::80"
            protocol = "udp"
            backend = [{ address = "2001:db8:1::10" }]
            [[service]]
            name = "any-ports"
            vip = "2001:db8:ffff::81"
            protocol = "any"
            ports = [53]
            backend = [{ address = "2001:db8:1::10" }]
            [[service]]
            name = "any-all"
            vip = "2001:db8:ffff::82"
            protocol = "any"
            backend = [{ address = "2001:db8:1::10" }]
            [[service]]
            name = "tcp-all"
            vip = "2001:db8:ffff::83"
            protocol = "tcp"
            backend = [{ address = "2001:db8:1::10" }]
        "#;
        let cfg = Config::from_toml(config, "test").unwrap();
        let mut topo = Topology::from_config(&cfg, &[CLIENT_MAC, SERVER_MAC], true).unwrap();
        let dsts: Vec<AddrBits> = (0x80..=0x84)
            .map(|last| format!("2001:db8:ffff::{last:x}"))
            .map(|a| AddrBits::of(a.parse().unwrap()))
            .chain([AddrBits(false, 0x2001_0db8)])
            .collect();
        let protocols = [
            IpProtocol::Tcp,
            IpProtocol::Udp,
            IpProtocol::Esp,
            IpProtocol::Icmpv6,
            IpProtocol::Mobility,
        ];
        let ports = [None, Some(80), Some(443), Some(53), Some(1)];
        let mut checked = 0;
        for removed in std::iter::once(None).chain((0..topo.services.len()).map(Some)) {
            for (i, s) in topo.services.iter_mut().enumerate() {
                s.removed = removed == Some(i);
            }
            topo.filters = topo.services.iter().map(ServiceFilter::of).collect();
            for &dst in &dsts {
                for &protocol in &protocols {
                    for &port in &ports {
                        let spec = topo
                            .services
                            .iter()
                            .position(|s| AddrBits::of(s.vip) == dst && s.matches(protocol, port));
                        assert_eq!(
                            topo.match_service(dst, protocol, port),
                            spec,
                            "{dst:?} {protocol:?} {port:?}, removed {removed:?}"
                        );
                        checked += usize::from(spec.is_some());
                    }
                }
            }
        }
        assert!(
            checked > 50,
            "the cases reach matching services ({checked})"
        );
    }

    #[test]
    fn dnat_keeps_a_roaming_node_on_its_backend() {
        let mut cs = cores(2, true);
        let home = "2001:db8:100::7";
        let mut chosen = None;
        for (i, coa) in [
            "2001:db8:c0::7",
            "2001:db8:c1::7",
            "2001:db8:c2::7",
            "2001:db8:c0::7",
        ]
        .iter()
        .enumerate()
        {
            let mut f = hao_tcp(coa, home, "2001:db8:ffff::80");
            assert_eq!(run(&mut cs, &mut f, 0, i as u32), Verdict::Transmit(1));
            let b = f.bytes();
            let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
            let dst = dst_addr(b, &p).unwrap();
            assert_eq!(*chosen.get_or_insert(dst), dst, "move {i} kept the backend");
            // The HAO, the CoA source and the checksum (over HoA -> backend) hold.
            assert_eq!(p.home_address(b), Some(addr6(home)));
            assert_eq!(p.src_addr(b), Some(IpAddr::V6(addr6(coa))));
            assert!(
                l4_checksum_ok6(b, addr6(home)),
                "TCP checksum valid after DNAT"
            );
            assert_eq!(&b[6..12], &SERVER_MAC);
            let backend = match dst {
                IpAddr::V6(a) => a,
                _ => unreachable!(),
            };
            if backend == addr6("2001:db8:1::10") {
                assert_eq!(&b[0..6], &[2, 0, 0, 0, 0x10, 0x10], "static neighbour");
            } else {
                assert_eq!(&b[0..6], &derived_mac(dst), "replay-derived neighbour");
            }
        }
        let sessions: usize = cs.iter().map(|c| c.sessions()).sum();
        assert_eq!(sessions, 1, "one session for the node, on its owner core");
        let created: u64 = cs.iter().map(|c| c.counters.sessions_created).sum();
        assert_eq!(created, 1);
    }

    /// The worker's prefetch path (parse and hash once, in a first pass
    /// over the burst) decides and rewrites exactly as the plain path.
    #[test]
    fn prefetched_processing_matches_the_plain_path() {
        let mut frames: Vec<TestFrame> = Vec::new();
        for n in 0..40u32 {
            let home = format!("2001:db8:100::{:x}", n + 1);
            let coa = format!("2001:db8:c{}::{:x}", n % 3, n + 1);
            frames.push(hao_tcp(&coa, &home, "2001:db8:ffff::80"));
            frames.push(hao_tcp(&coa, &home, "2001:db8:ffff::81"));
            frames.push(esp(n + 1, n));
            frames.push(TestFrame::new(eth_ipv4(
                &format!("203.0.113.{}", n + 1),
                "198.51.100.80",
                &L4::Tcp(40000, 80, 1, 0x18),
            )));
            if n % 5 == 0 {
                // A binding update, then data from the care-of address
                // without HAO: resolved through the alias it creates, in
                // the middle of the burst.
                let coa2 = format!("2001:db8:d0::{:x}", n + 1);
                frames.push(bu(&coa2, &home, None, 100));
                frames.push(TestFrame::new(eth_ipv6(
                    &coa2,
                    "2001:db8:ffff::80",
                    &[],
                    &L4::Tcp(40000, 80, 9, 0x18),
                )));
            }
            frames.push(TestFrame::new(vec![0xff; 20]));
        }
        let mut plain = cores(2, true);
        let mut pre = cores(2, true);
        let topo = pre[0].topology();
        // Twice: the second time round, the sessions the first opened are
        // established, and the fast path takes those it can.
        let mut fast = 0;
        for burst in frames
            .chunks(dpdk::MAX_BURST)
            .chain(frames.chunks(dpdk::MAX_BURST))
        {
            let mut a: Vec<TestFrame> = burst.to_vec();
            let mut b: Vec<TestFrame> = burst.to_vec();
            let mut hints = vec![Prefetched::default(); b.len()];
            pre[0].prefetch_burst(&topo, b.iter().map(|f| f.bytes()), 0, &mut hints);
            pre[0].prefetch_entries();
            pre[0].look_up_established(&topo, &mut hints, Now::from_secs(1));
            fast += hints.iter().filter(|h| h.established.is_some()).count();
            for ((fa, fb), h) in a.iter_mut().zip(b.iter_mut()).zip(&hints) {
                let va = run(&mut plain, fa, 0, 1);
                let vb = match pre[0].process_prefetched(&topo, fb, 0, Now::from_secs(1), h) {
                    Verdict::Handoff(c) => pre[usize::from(c)].process(fb, 0, 1, true),
                    v => v,
                };
                assert_eq!(va, vb);
                assert_eq!(fa.bytes(), fb.bytes());
            }
        }
        for (x, y) in plain.iter().zip(&pre) {
            assert_eq!(x.counters.to_backend, y.counters.to_backend);
            assert_eq!(x.counters.sessions_created, y.counters.sessions_created);
            assert_eq!(x.counters.lb_drops, y.counters.lb_drops);
            assert_eq!(x.counters.backend_packets, y.counters.backend_packets);
            assert_eq!(x.loads.as_slice(), y.loads.as_slice());
            assert_eq!(x.sessions(), y.sessions());
        }
        let forwarded: u64 = pre.iter().map(|c| c.counters.to_backend).sum();
        assert!(forwarded >= 320, "{forwarded}");
        // The second time round: web6's HAO sessions that core 0 owns
        // (about half of 40) whose backend is the one of three with a
        // static neighbour.
        assert!(fast >= 3, "{fast} packets took the established fast path");
    }

    #[test]
    fn the_fast_path_yields_to_an_alias_that_arrives_in_its_burst() {
        // Data from a care-of address without HAO opens a session of the
        // source address; then one burst brings that address's data, a
        // binding update aliasing it to a home address, and more data.
        // The last packet was marked for the fast path before the alias
        // existed; it must resolve through the alias, as the plain path
        // does.
        let data = |coa: &str, seq| {
            TestFrame::new(eth_ipv6(
                coa,
                "2001:db8:ffff::80",
                &[],
                &L4::Tcp(40000, 80, seq, 0x18),
            ))
        };
        // A care-of address whose session goes to the backend with a
        // static neighbour (only its packets can take the fast path).
        let coa = (1..100)
            .map(|n| format!("2001:db8:c9::{n:x}"))
            .find(|coa| {
                let mut c = cores(1, true);
                run(&mut c, &mut data(coa, 0), 0, 1);
                c[0].session_backend(0, Identity::Source(ip(coa)), Now::from_secs(1))
                    == Some(ip("2001:db8:1::10"))
            })
            .expect("some source address picks backend ::10");
        let (coa, home) = (coa.as_str(), "2001:db8:100::5");
        let data = |seq| data(coa, seq);
        let bursts = [
            vec![data(1)],
            vec![data(2), bu(coa, home, None, 100), data(3)],
        ];
        let mut plain = cores(1, true);
        let mut pre = cores(1, true);
        let topo = pre[0].topology();
        let mut marked = Vec::new();
        for burst in &bursts {
            let mut a = burst.clone();
            let mut b = burst.clone();
            let mut hints = vec![Prefetched::default(); b.len()];
            pre[0].prefetch_burst(&topo, b.iter().map(|f| f.bytes()), 0, &mut hints);
            pre[0].prefetch_entries();
            pre[0].look_up_established(&topo, &mut hints, Now::from_secs(1));
            marked.extend(hints.iter().map(|h| h.established.is_some()));
            for ((fa, fb), h) in a.iter_mut().zip(b.iter_mut()).zip(&hints) {
                let va = run(&mut plain, fa, 0, 1);
                let vb = pre[0].process_prefetched(&topo, fb, 0, Now::from_secs(1), h);
                assert_eq!(va, vb);
                assert_eq!(fa.bytes(), fb.bytes());
            }
        }
        assert_eq!(marked, [false, true, false, true]);
        assert_eq!(pre[0].counters.alias_hits, 1);
        assert_eq!(plain[0].counters.alias_hits, 1);
        assert_eq!(pre[0].counters.to_backend, plain[0].counters.to_backend);
        assert_eq!(
            pre[0].counters.backend_packets,
            plain[0].counters.backend_packets
        );
        assert_eq!(pre[0].sessions(), 2);
    }

    #[test]
    fn bucket_loads_count_on_the_owner_in_the_identitys_bucket() {
        let mut cs = cores(2, true);
        let hasher = IdentityHasher::new(*b"0123456789abcdef");
        let map = cs[0].buckets.clone();
        let mut expected = std::collections::BTreeMap::new();
        for n in 0..200u32 {
            let home = format!("2001:db8:100::{:x}", n + 1);
            for coa in ["2001:db8:c0::9", "2001:db8:c1::9"] {
                let mut f = hao_tcp(coa, &home, "2001:db8:ffff::80");
                let len = f.bytes().len() as u64;
                assert_eq!(run(&mut cs, &mut f, 0, 0), Verdict::Transmit(1));
                let hash = hasher.hash(&Identity::HomeAddress(addr6(&home)));
                let e = expected
                    .entry((map.core_of(hash), map.bucket_of(hash)))
                    .or_insert((0u64, 0u64));
                e.0 += 1;
                e.1 += len;
            }
        }
        let mut got = std::collections::BTreeMap::new();
        for (core, c) in cs.iter().enumerate() {
            for (bucket, l) in c.loads.as_slice().iter().enumerate() {
                if l.packets > 0 {
                    got.insert((core as u8, bucket), (l.packets, l.bytes));
                }
                assert_eq!(l.drops, 0);
            }
        }
        assert_eq!(
            got, expected,
            "each packet counted once, by its owner, in its bucket"
        );
        let forwarded: u64 = cs.iter().map(|c| c.counters.to_backend).sum();
        assert_eq!(forwarded, 400);
    }

    #[test]
    fn esp_and_slaac_identities_and_spread() {
        let mut cs = cores(2, true);
        let mut seen = std::collections::BTreeMap::new();
        for n in 0..300u32 {
            let mut first = None;
            for prefix in ["2001:db8:e0", "2001:db8:e1"] {
                let src = format!("{prefix}::{n:x}");
                let mut f = TestFrame::new(eth_ipv6(
                    &src,
                    "2001:db8:ffff::80",
                    &[],
                    &L4::Esp(0x1000 + n, 1),
                ));
                assert_eq!(run(&mut cs, &mut f, 0, 0), Verdict::Transmit(1));
                let p = crate::packet::parse(f.bytes(), &ParseConfig::new()).unwrap();
                let dst = dst_addr(f.bytes(), &p).unwrap();
                assert_eq!(
                    *first.get_or_insert(dst),
                    dst,
                    "ESP node {n} kept its backend"
                );
                *seen.entry(dst).or_insert(0) += 1;
            }
        }
        assert_eq!(
            seen.len(),
            3,
            "Maglev spreads identities over all backends: {seen:?}"
        );
        assert!(seen.values().all(|&c| c > 100), "{seen:?}");
        assert!(
            cs.iter().all(|c| c.sessions() > 50),
            "both cores own sessions"
        );
    }

    #[test]
    fn handoff_goes_to_the_owner_and_never_twice() {
        let mut cs = cores(2, true);
        let mut handed = 0;
        for n in 0..64u32 {
            let mut f = hao_tcp(
                "2001:db8:c0::1",
                &format!("2001:db8:100::{n:x}"),
                "2001:db8:ffff::80",
            );
            match cs[0].process(&mut f, 0, 0, false) {
                Verdict::Handoff(1) => {
                    handed += 1;
                    assert_eq!(cs[1].process(&mut f, 0, 0, true), Verdict::Transmit(1));
                }
                Verdict::Transmit(1) => {}
                v => panic!("unexpected {v:?}"),
            }
        }
        assert!(
            handed > 10 && handed < 54,
            "about half the identities belong to core 1: {handed}"
        );
        assert_eq!(cs[0].counters.handoffs, handed);
    }

    #[test]
    fn replies_get_the_vip_back() {
        let mut cs = cores(1, true);
        let mut f = TestFrame::new(eth_ipv4(
            "192.0.2.30",
            "203.0.113.9",
            &L4::Tcp(80, 40000, 1, 0x12),
        ));
        assert_eq!(cs[0].process(&mut f, 1, 0, false), Verdict::Transmit(0));
        let b = f.bytes();
        let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
        assert_eq!(p.src_addr(b), Some("198.51.100.80".parse().unwrap()));
        // Off-link client: via the client-side gateway's (derived) MAC.
        assert_eq!(&b[0..6], &derived_mac("198.51.100.254".parse().unwrap()));
        assert_eq!(&b[6..12], &CLIENT_MAC);
        assert!(
            crate::packet::parse(b, &ParseConfig::new()).is_ok(),
            "IPv4 header checksum still valid"
        );
        let l4 = &b[usize::from(p.l4_offset)..usize::from(p.l3_end)];
        let acc = checksum::pseudo_header_v4(
            "198.51.100.80".parse().unwrap(),
            "203.0.113.9".parse().unwrap(),
            IpProtocol::Tcp,
            l4.len() as u32,
        );
        assert_eq!(
            checksum::fold(checksum::sum(acc, l4)),
            0xffff,
            "TCP checksum valid"
        );
        assert_eq!(cs[0].counters.replies, 1);
    }

    #[test]
    fn dsr_encapsulates_ipv6_in_ipv6() {
        let mut cs = cores(1, true);
        let original = eth_ipv6(
            "2001:db8:c0::5",
            "2001:db8:ffff::81",
            &[Ext::Hao(addr6("2001:db8:100::5"))],
            &L4::Tcp(1, 22, 1, 2),
        );
        let mut f = TestFrame::new(original.clone());
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(1));
        let b = f.bytes();
        assert_eq!(b.len(), original.len() + 40);
        assert_eq!(&b[12..14], &[0x86, 0xdd]);
        let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
        assert_eq!(p.protocol, IpProtocol::Ipv6, "outer next header is IPv6");
        assert_eq!(dst_addr(b, &p), Some("2001:db8:1::20".parse().unwrap()));
        assert_eq!(p.src_addr(b), Some("2001:db8:1::1".parse().unwrap()));
        assert_eq!(
            &b[54..],
            &original[14..],
            "inner packet untouched (HAO kept)"
        );
    }

    /// The test topology with a 1400-octet server side and two DSR
    /// services for any protocol (IPv6 and IPv4 VIPs, backends of their
    /// family).
    fn dsr_mtu_cores() -> Vec<CoreLb> {
        let config = CONFIG.replace(
            "role = \"server\"\n",
            "role = \"server\"\n        mtu = 1400\n",
        ) + r#"
        [[service]]
        name = "dsr-any6"
        vip = "2001:db8:ffff::82"
        protocol = "any"
        forwarding = "dsr"
        [[service.backend]]
        address = "2001:db8:1::20"
        [[service]]
        name = "dsr-any4"
        vip = "198.51.100.82"
        protocol = "any"
        forwarding = "dsr"
        [[service.backend]]
        address = "192.0.2.40"
        "#;
        cores_from(&config, 1, true, 64, 1, 1024)
    }

    #[test]
    fn dsr_too_big_for_the_server_side_gets_a_packet_too_big() {
        let mut cs = dsr_mtu_cores();
        // 40 + 8 + 1252 = 1300 octets: 1340 with the outer header, fits.
        let fits = eth_ipv6(
            "2001:db8:c0::5",
            "2001:db8:ffff::82",
            &[],
            &L4::Udp(4000, 53, vec![0xab; 1252]),
        );
        let mut f = TestFrame::new(fits.clone());
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(1));
        assert_eq!(f.bytes().len(), fits.len() + 40, "encapsulated");
        // 1448 octets: 1488 with the outer header, past 1400.
        let big = eth_ipv6(
            "2001:db8:c0::5",
            "2001:db8:ffff::82",
            &[],
            &L4::Udp(4000, 53, vec![0xab; 1400]),
        );
        let mut f = TestFrame::new(big.clone());
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(0));
        let b = f.bytes();
        assert_eq!(b.len(), 14 + 1280, "the error fills the IPv6 minimum MTU");
        assert_eq!(&b[6..12], &CLIENT_MAC, "leaves by the client port");
        let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
        assert_eq!(p.protocol, IpProtocol::Icmpv6);
        assert_eq!(
            p.src_addr(b),
            Some("2001:db8:ffff::82".parse().unwrap()),
            "from the VIP"
        );
        assert_eq!(
            dst_addr(b, &p),
            Some("2001:db8:c0::5".parse().unwrap()),
            "to the client"
        );
        let icmp = usize::from(p.l4_offset);
        assert_eq!(&b[icmp..icmp + 2], &[2, 0], "Packet Too Big");
        assert_eq!(
            &b[icmp + 4..icmp + 8],
            &1360u32.to_be_bytes(),
            "1400 less 40"
        );
        assert_eq!(
            &b[icmp + 8..],
            &big[14..14 + 1232],
            "the quote is the packet's start"
        );
        icmp_error::testing::assert_checksums(b, false, false);
        assert_eq!(cs[0].counters.icmp_too_big_sent, 1);
        assert_eq!(cs[0].counters.sessions_created, 1, "the session stays");
    }

    #[test]
    fn dsr_too_big_ipv4_gets_fragmentation_needed_with_df_and_fragments_without() {
        let mut cs = dsr_mtu_cores();
        let mut big = eth_ipv4(
            "203.0.113.9",
            "198.51.100.82",
            &L4::Udp(4000, 53, vec![0xcd; 1400]),
        );
        // Without Don't Fragment: two outer fragments, 1400 and 48 octets.
        let mut f = TestFrame::new(big.clone());
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Fragment(1));
        let mut second = TestFrame::new(Vec::new());
        let topo = cs[0].topology();
        assert!(cs[0].fragment(&topo, &mut f, Some(&mut second)));
        let (a, b) = (f.bytes(), second.bytes());
        assert_eq!(
            a.len(),
            14 + 1396,
            "1400 less the IPv4 header, in 8-octet units, plus it"
        );
        assert_eq!(b.len(), 14 + 20 + (1428 - 1376));
        assert_eq!(&b[..14], &a[..14], "the same link-layer header");
        for (frag, more, offset, len) in [(a, true, 0u16, 1396u16), (b, false, 172, 72)] {
            let h = &frag[14..34];
            assert_eq!(checksum::checksum(h), 0, "header checksum");
            assert_eq!(u16::from_be_bytes([h[2], h[3]]), len);
            let flags = u16::from_be_bytes([h[6], h[7]]);
            assert_eq!(
                (flags & 0x2000 != 0, flags & 0x1fff, flags & 0x4000),
                (more, offset, 0)
            );
            assert_eq!(h[9], 4, "IPv4 in IPv4");
            assert_eq!(&h[16..20], &[192, 0, 2, 40], "to the backend");
        }
        assert_eq!(&a[14 + 4..14 + 6], &b[14 + 4..14 + 6], "one identification");
        let mut inner = a[34..].to_vec();
        inner.extend_from_slice(&b[34..]);
        assert_eq!(inner, &big[14..], "the fragments carry the client's packet");
        assert_eq!(cs[0].counters.encap_fragmented, 1);
        assert_eq!(cs[0].counters.to_backend, 1);
        // The next one gets another identification; without a buffer for
        // the second fragment it is counted.
        let mut f = TestFrame::new(big.clone());
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Fragment(1));
        let mut second = TestFrame::new(Vec::new());
        assert!(cs[0].fragment(&topo, &mut f, Some(&mut second)));
        assert_ne!(&f.bytes()[14 + 4..14 + 6], &a[14 + 4..14 + 6]);
        let mut f = TestFrame::new(big.clone());
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Fragment(1));
        assert!(!cs[0].fragment::<TestFrame>(&topo, &mut f, None));
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::FragmentNoBuffer as usize],
            1
        );
        // Three fragments' worth is not split.
        let mut f = TestFrame::new(eth_ipv4(
            "203.0.113.9",
            "198.51.100.82",
            &L4::Udp(4000, 53, vec![0xcd; 2900]),
        ));
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Drop);
        assert_eq!(cs[0].counters.lb_drops[LbDrop::EncapTooBig as usize], 1);
        // With it: Fragmentation Needed, next-hop MTU 1400 less 20.
        big[14 + 6] |= 0x40;
        big[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&big[14..34]);
        big[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        let mut f = TestFrame::new(big.clone());
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(0));
        let b = f.bytes();
        assert_eq!(b.len(), 14 + 576, "the error fills 576 octets");
        let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
        assert_eq!(p.protocol, IpProtocol::Icmp);
        assert_eq!(p.src_addr(b), Some("198.51.100.82".parse().unwrap()));
        assert_eq!(dst_addr(b, &p), Some("203.0.113.9".parse().unwrap()));
        let icmp = usize::from(p.l4_offset);
        assert_eq!(&b[icmp..icmp + 2], &[3, 4], "Fragmentation Needed");
        assert_eq!(&b[icmp + 6..icmp + 8], &1380u16.to_be_bytes());
        assert_eq!(&b[icmp + 8..], &big[14..14 + 548]);
        icmp_error::testing::assert_checksums(b, true, false);
        assert_eq!(cs[0].counters.icmp_too_big_sent, 1);
        // A packet that fits is encapsulated as before.
        let mut f = TestFrame::new(eth_ipv4(
            "203.0.113.9",
            "198.51.100.82",
            &L4::Udp(4000, 53, vec![0xcd; 1300]),
        ));
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(1));
    }

    proptest::proptest! {
        /// Any payload length and MTU: a split either refuses (and the
        /// first frame is unchanged) or gives two fragments within the MTU
        /// whose payloads, in order, are the original payload; garbage in
        /// the header never panics.
        #[test]
        fn outer_fragments_reassemble_or_are_refused(
            len in 0usize..3100,
            mtu in 68u16..1600,
            v6 in proptest::bool::ANY,
            garbage in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 48)),
        ) {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut frame = vec![2u8, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0];
            if v6 {
                frame[12..14].copy_from_slice(&[0x86, 0xdd]);
                let mut h = vec![0x60, 0, 0, 0, 0, 0, 4, 64];
                h[4..6].copy_from_slice(&(len as u16).to_be_bytes());
                h.extend_from_slice(&[0x20; 32]);
                frame.extend_from_slice(&h);
            } else {
                let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 4, 0, 0];
                h[2..4].copy_from_slice(&((20 + len) as u16).to_be_bytes());
                h.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 40]);
                frame.extend_from_slice(&h);
            }
            if let Some(g) = &garbage {
                let n = if v6 { 40 } else { 20 };
                frame[14..14 + n].copy_from_slice(&g[..n]);
            }
            frame.extend_from_slice(&payload);
            let mut first = TestFrame::new(frame.clone());
            let mut second = TestFrame::new(Vec::new());
            let ok = if v6 {
                split_ipv6(&mut first, &mut second, 14, mtu, 0xabcd_0123)
            } else {
                split_ipv4(&mut first, &mut second, 14, mtu, 0xabcd)
            };
            if !ok {
                proptest::prop_assert_eq!(first.bytes(), &frame[..], "refused: unchanged");
            } else {
                let headers = if v6 { 48 } else { 20 };
                let (a, b) = (first.bytes(), second.bytes());
                proptest::prop_assert!(a.len() - 14 <= usize::from(mtu));
                proptest::prop_assert!(b.len() - 14 <= usize::from(mtu));
                let mut joined = a[14 + headers..].to_vec();
                joined.extend_from_slice(&b[14 + headers..]);
                // What the header (perhaps garbage) says the packet holds.
                let (inner_start, inner_end) = if v6 {
                    (54, 54 + usize::from(u16::from_be_bytes([frame[18], frame[19]])))
                } else {
                    (34, 14 + usize::from(u16::from_be_bytes([frame[16], frame[17]])))
                };
                proptest::prop_assert_eq!(&joined[..], &frame[inner_start..inner_end]);
            }
        }
    }

    /// IPv4 without DF toward an IPv6 backend: two IPv6 outer fragments
    /// with Fragment headers (RFC 2473 §7.1), one identification, that
    /// carry the client's packet whole.
    #[test]
    fn dsr_ipv4_without_df_to_an_ipv6_backend_leaves_in_ipv6_fragments() {
        let config = CONFIG.replace(
            "role = \"server\"\n",
            "role = \"server\"\n        mtu = 1400\n",
        ) + r#"
        [[service]]
        name = "dsr-4in6"
        vip = "198.51.100.83"
        protocol = "any"
        forwarding = "dsr"
        [[service.backend]]
        address = "2001:db8:1::21"
        "#;
        let mut cs = cores_from(&config, 1, true, 64, 1, 1024);
        let big = eth_ipv4(
            "203.0.113.9",
            "198.51.100.83",
            &L4::Udp(4000, 53, vec![0xcd; 1400]),
        );
        let mut f = TestFrame::new(big.clone());
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Fragment(1));
        let mut second = TestFrame::new(Vec::new());
        let topo = cs[0].topology();
        assert!(cs[0].fragment(&topo, &mut f, Some(&mut second)));
        let (a, b) = (f.bytes(), second.bytes());
        // 1400 - 48 = 1352 octets of the 1428-octet client packet, then 76.
        assert_eq!((a.len(), b.len()), (14 + 48 + 1352, 14 + 48 + 76));
        assert_eq!(&a[12..14], &[0x86, 0xdd]);
        assert_eq!(&b[..14], &a[..14]);
        for (frag, more, offset, plen) in [(a, 1u16, 0u16, 1360u16), (b, 0, 1352, 84)] {
            let h = &frag[14..62];
            assert_eq!(u16::from_be_bytes([h[4], h[5]]), plen, "payload length");
            assert_eq!(h[6], 44, "a Fragment header follows");
            assert_eq!(
                &h[24..40],
                &addr6("2001:db8:1::21").octets(),
                "to the backend"
            );
            assert_eq!(h[40], 4, "it carries IPv4");
            let field = u16::from_be_bytes([h[42], h[43]]);
            assert_eq!((field & 1, (field >> 3) * 8), (more, offset));
        }
        assert_eq!(
            &a[14 + 44..14 + 48],
            &b[14 + 44..14 + 48],
            "one identification"
        );
        let mut inner = a[62..].to_vec();
        inner.extend_from_slice(&b[62..]);
        assert_eq!(inner, &big[14..], "the client's packet, whole");
        assert_eq!(cs[0].counters.encap_fragmented, 1);
    }

    /// A router between the appliance and a DSR backend reports a Packet
    /// Too Big / Fragmentation Needed about the encapsulated packet to the
    /// outer source: the client gets one from the VIP about its own packet,
    /// the MTU less the outer header. Other errors about tunnel packets,
    /// IPv4 packets without DF and tunnels to no DSR backend are counted.
    #[test]
    fn dsr_tunnel_errors_reach_the_client_as_packet_too_big() {
        use crate::dataplane::icmp_error::testing;
        let mut cs = dsr_mtu_cores();
        let pkt = eth_ipv6(
            "2001:db8:c0::5",
            "2001:db8:ffff::82",
            &[],
            &L4::Udp(4000, 53, vec![0xab; 1252]),
        );
        let mut f = TestFrame::new(pkt.clone());
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(1));
        let outer6 = f.bytes()[14..].to_vec();
        // The router's error fills 1280 octets: 1232 of quote.
        let mut e =
            testing::error_frame(false, 2, "2001:db8:1::fe", "2001:db8:1::1", &outer6, 1232);
        e[14 + 44..14 + 48].copy_from_slice(&1360u32.to_be_bytes());
        let mut e = TestFrame::new(e);
        assert_eq!(cs[0].process(&mut e, 1, 1, false), Verdict::Transmit(0));
        let b = e.bytes();
        assert_eq!(&b[6..12], &CLIENT_MAC, "leaves by the client port");
        let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
        assert_eq!(p.protocol, IpProtocol::Icmpv6);
        assert_eq!(p.src_addr(b), Some(ip("2001:db8:ffff::82")), "from the VIP");
        assert_eq!(dst_addr(b, &p), Some(ip("2001:db8:c0::5")), "to the client");
        let icmp = usize::from(p.l4_offset);
        assert_eq!(&b[icmp..icmp + 2], &[2, 0], "Packet Too Big");
        assert_eq!(
            &b[icmp + 4..icmp + 8],
            &1320u32.to_be_bytes(),
            "1360 less 40"
        );
        assert_eq!(b.len(), 14 + 48 + 1192, "the quote less the outer header");
        assert_eq!(
            &b[icmp + 8..],
            &pkt[14..14 + 1192],
            "the client's own packet"
        );
        icmp_error::testing::assert_checksums(b, false, false);
        assert_eq!(cs[0].counters.icmp_tunnel_too_big, 1);

        // IPv4 with DF: Fragmentation Needed with the router's MTU less 20.
        let mut v4 = eth_ipv4(
            "203.0.113.9",
            "198.51.100.82",
            &L4::Udp(4000, 53, vec![0xcd; 1000]),
        );
        let set_df = |v4: &mut Vec<u8>, on: bool| {
            if on {
                v4[14 + 6] |= 0x40;
            } else {
                v4[14 + 6] &= !0x40;
            }
            v4[14 + 10..14 + 12].copy_from_slice(&[0, 0]);
            let c = checksum::checksum(&v4[14..34]);
            v4[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        };
        set_df(&mut v4, true);
        let mut f = TestFrame::new(v4.clone());
        assert_eq!(cs[0].process(&mut f, 0, 2, false), Verdict::Transmit(1));
        let outer4 = f.bytes()[14..].to_vec();
        // error_frame's next-hop MTU is 1280.
        let e = testing::error_frame(true, 3, "192.0.2.254", "192.0.2.1", &outer4, 548);
        let mut e = TestFrame::new(e);
        assert_eq!(cs[0].process(&mut e, 1, 2, false), Verdict::Transmit(0));
        let b = e.bytes();
        let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
        assert_eq!(p.protocol, IpProtocol::Icmp);
        assert_eq!(p.src_addr(b), Some(ip("198.51.100.82")));
        assert_eq!(dst_addr(b, &p), Some(ip("203.0.113.9")));
        let icmp = usize::from(p.l4_offset);
        assert_eq!(&b[icmp..icmp + 2], &[3, 4], "Fragmentation Needed");
        assert_eq!(
            &b[icmp + 6..icmp + 8],
            &1260u16.to_be_bytes(),
            "1280 less 20"
        );
        assert_eq!(&b[icmp + 8..], &v4[14..14 + 528]);
        icmp_error::testing::assert_checksums(b, true, false);
        assert_eq!(cs[0].counters.icmp_tunnel_too_big, 2);

        // Not passed on: IPv4 without DF, a Time Exceeded, a backend that
        // is no DSR service's.
        set_df(&mut v4, false);
        let mut f = TestFrame::new(v4.clone());
        assert_eq!(cs[0].process(&mut f, 0, 3, false), Verdict::Transmit(1));
        let no_df = f.bytes()[14..].to_vec();
        let e = testing::error_frame(true, 3, "192.0.2.254", "192.0.2.1", &no_df, 548);
        assert_eq!(
            cs[0].process(&mut TestFrame::new(e), 1, 3, false),
            Verdict::Drop
        );
        let e = testing::error_frame(false, 3, "2001:db8:1::fe", "2001:db8:1::1", &outer6, 1232);
        assert_eq!(
            cs[0].process(&mut TestFrame::new(e), 1, 3, false),
            Verdict::Drop
        );
        let mut stray = outer6.clone();
        stray[24..40].copy_from_slice(&addr6("2001:db8:1::99").octets());
        let e = testing::error_frame(false, 2, "2001:db8:1::fe", "2001:db8:1::1", &stray, 1232);
        assert_eq!(
            cs[0].process(&mut TestFrame::new(e), 1, 3, false),
            Verdict::Drop
        );
        assert_eq!(cs[0].counters.lb_drops[LbDrop::IcmpErrorTunnel as usize], 3);
        assert_eq!(cs[0].counters.icmp_tunnel_too_big, 2);
    }

    /// The worker's share of `dataplane.icmp_errors_per_second` bounds the
    /// Packet Too Big messages it originates in each second; the packets
    /// over it are dropped without one, and the next second starts afresh.
    #[test]
    fn originated_icmp_errors_are_rate_limited() {
        let mut cs = dsr_mtu_cores();
        cs[0].icmp_originated = WindowLimit::new(2);
        let big = eth_ipv6(
            "2001:db8:c0::5",
            "2001:db8:ffff::82",
            &[],
            &L4::Udp(4000, 53, vec![0xab; 1400]),
        );
        let verdicts: Vec<Verdict> = (0..5)
            .map(|_| cs[0].process(&mut TestFrame::new(big.clone()), 0, 7, false))
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Transmit(0),
                Verdict::Transmit(0),
                Verdict::Drop,
                Verdict::Drop,
                Verdict::Drop
            ]
        );
        assert_eq!(cs[0].counters.icmp_too_big_sent, 2);
        assert_eq!(cs[0].counters.lb_drops[LbDrop::IcmpRateLimited as usize], 3);
        let mut f = TestFrame::new(big.clone());
        assert_eq!(cs[0].process(&mut f, 0, 8, false), Verdict::Transmit(0));
        assert_eq!(cs[0].counters.icmp_too_big_sent, 3, "a new second");
        // Packets that fit are not limited, nor is IPv4 without DF counted
        // against the limit (it leaves in fragments, with no error).
        let fits = eth_ipv6(
            "2001:db8:c0::5",
            "2001:db8:ffff::82",
            &[],
            &L4::Udp(4000, 53, vec![0xab; 100]),
        );
        for _ in 0..5 {
            let mut f = TestFrame::new(fits.clone());
            assert_eq!(cs[0].process(&mut f, 0, 8, false), Verdict::Transmit(1));
        }
        let no_df = eth_ipv4(
            "203.0.113.9",
            "198.51.100.82",
            &L4::Udp(4000, 53, vec![0xcd; 1400]),
        );
        let mut f = TestFrame::new(no_df);
        assert_eq!(cs[0].process(&mut f, 0, 8, false), Verdict::Fragment(1));
        assert_eq!(cs[0].counters.lb_drops[LbDrop::IcmpRateLimited as usize], 3);
    }

    /// `dataplane.icmp_translated_per_second` bounds the errors passed on;
    /// an error that fails its checks does not use up the share.
    #[test]
    fn translated_icmp_errors_are_rate_limited() {
        use crate::dataplane::icmp_error::testing;
        let mut cs = cores(1, true);
        cs[0].icmp_translated = WindowLimit::new(1);
        let client = "2001:db8:c0::9";
        let mut f = TestFrame::new(eth_ipv6(
            client,
            "2001:db8:ffff::80",
            &[],
            &L4::Udp(40001, 80, vec![4; 21]),
        ));
        assert_eq!(run(&mut cs, &mut f, 0, 0), Verdict::Transmit(1));
        let sent = f.bytes()[14..].to_vec();
        // From a router on the server side (an error from the backend
        // itself would also pass as its reply).
        let router = "2001:db8:1::fe";
        let error = testing::error_frame(false, 1, router, client, &sent, usize::MAX);
        // One about a packet to an address no service has as a backend: not
        // translated, and not counted against the limit.
        let mut other = sent.clone();
        other[24..40].copy_from_slice(&addr6("2001:db8:1::99").octets());
        let stray = testing::error_frame(false, 1, router, client, &other, usize::MAX);
        assert_eq!(
            run(&mut cs, &mut TestFrame::new(stray), 1, 3),
            Verdict::Drop
        );
        let verdicts: Vec<Verdict> = (0..3)
            .map(|_| run(&mut cs, &mut TestFrame::new(error.clone()), 1, 3))
            .collect();
        assert_eq!(
            verdicts,
            [Verdict::Transmit(0), Verdict::Drop, Verdict::Drop]
        );
        assert_eq!(cs[0].counters.icmp_errors_translated, 1);
        assert_eq!(cs[0].counters.lb_drops[LbDrop::IcmpRateLimited as usize], 2);
        assert_eq!(
            run(&mut cs, &mut TestFrame::new(error), 1, 4),
            Verdict::Transmit(0),
            "a new second"
        );
    }

    #[test]
    fn unmatched_traffic_is_counted() {
        let mut cs = cores(1, true);
        let mut f = TestFrame::new(eth_ipv6(
            "2001:db8:c0::5",
            "2001:db8:ffff::99",
            &[],
            &L4::Tcp(1, 80, 1, 2),
        ));
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Drop);
        assert_eq!(cs[0].counters.lb_drops[LbDrop::NoService as usize], 1);
        let mut f = TestFrame::new(eth_ipv6(
            "2001:db8:c0::5",
            "2001:db8:ffff::80",
            &[],
            &L4::Tcp(1, 443, 1, 2),
        ));
        assert_eq!(
            cs[0].process(&mut f, 0, 0, false),
            Verdict::Drop,
            "port 443 is not the service's"
        );
        let mut f = TestFrame::new(vec![0u8; 10]);
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Drop);
        assert_eq!(cs[0].counters.parse_drops.total(), 1);
    }

    #[test]
    fn without_replay_an_unknown_neighbour_is_not_guessed() {
        let mut cs = cores(1, false);
        let mut resolved = 0;
        let mut unresolved = 0;
        for n in 0..60u32 {
            let mut f = hao_tcp(
                "2001:db8:c0::1",
                &format!("2001:db8:100::{n:x}"),
                "2001:db8:ffff::80",
            );
            match cs[0].process(&mut f, 0, 0, false) {
                Verdict::Transmit(1) => resolved += 1,
                Verdict::Hold(1) => unresolved += 1,
                v => panic!("{v:?}"),
            }
        }
        assert!(
            resolved > 0 && unresolved > 0,
            "only the static neighbour resolves: {resolved}/{unresolved}"
        );
        assert_eq!(cs[0].counters.lb_drops.iter().sum::<u64>(), 0);
        // Holding off: the old behaviour, dropped as unresolved.
        let mut cs = cores_holding(1, false, 0);
        let mut dropped = 0;
        for n in 0..60u32 {
            let mut f = hao_tcp(
                "2001:db8:c0::1",
                &format!("2001:db8:100::{n:x}"),
                "2001:db8:ffff::80",
            );
            if cs[0].process(&mut f, 0, 0, false) == Verdict::Drop {
                dropped += 1;
            }
        }
        assert_eq!(dropped, unresolved);
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::NeighborUnresolved as usize],
            unresolved
        );
        assert_eq!(cs[0].counters.neighbor_requests_suppressed, 0);
    }

    #[test]
    fn sessions_expire_and_full_tables_refuse() {
        let mut cs = cores(1, true);
        let cap = cs[0].session_capacity();
        for n in 0..cap as u32 {
            let mut f = TestFrame::new(eth_ipv6(
                "2001:db8:e0::1",
                "2001:db8:ffff::80",
                &[],
                &L4::Esp(n + 1, 1),
            ));
            assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(1));
        }
        assert_eq!(cs[0].sessions(), cap);
        let mut f = TestFrame::new(eth_ipv6(
            "2001:db8:e0::1",
            "2001:db8:ffff::80",
            &[],
            &L4::Esp(0xffff_0000, 1),
        ));
        assert_eq!(
            cs[0].process(&mut f, 0, 0, false),
            Verdict::Drop,
            "a full table refuses a new identity"
        );
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::SessionTableFull as usize],
            1
        );
        // Existing sessions still forward.
        let mut f = TestFrame::new(eth_ipv6(
            "2001:db8:e0::2",
            "2001:db8:ffff::80",
            &[],
            &L4::Esp(1, 2),
        ));
        assert_eq!(cs[0].process(&mut f, 0, 1, false), Verdict::Transmit(1));
        // Lifetime 300 s: all expire after it, in bounded sweeps.
        let mut expired = 0;
        for _ in 0..100 {
            expired += cs[0].expire(Now::from_secs(10_000), 256);
        }
        assert_eq!(expired, cap);
        assert_eq!(cs[0].sessions(), 0);
    }

    #[test]
    fn session_lifetimes_count_milliseconds() {
        let config = CONFIG.replacen(
            "ports = [80]",
            "ports = [80]\n        session_lifetime = \"250ms\"",
            1,
        );
        let mut cs = cores_from(&config, 1, true, 64, 1, 0);
        let topo = cs[0].topology();
        assert_eq!(topo.shortest_session_lifetime(), 250);
        let esp = || {
            TestFrame::new(eth_ipv6(
                "2001:db8:e0::1",
                "2001:db8:ffff::80",
                &[],
                &L4::Esp(7, 1),
            ))
        };
        let at = |ms: u64| Now::from_millis(ms);
        assert_eq!(
            cs[0].process_with(&topo, &mut esp(), 0, at(1000), false),
            Verdict::Transmit(1)
        );
        assert_eq!(cs[0].counters.sessions_created, 1);
        // Still live 249 ms later (within the same second as the start);
        // the packet refreshes it to 1249 + 250.
        assert_eq!(cs[0].expire(at(1249), usize::MAX), 0);
        assert_eq!(
            cs[0].process_with(&topo, &mut esp(), 0, at(1249), false),
            Verdict::Transmit(1)
        );
        assert_eq!(cs[0].counters.sessions_created, 1, "the same session");
        assert_eq!(cs[0].expire(at(1498), usize::MAX), 0);
        assert_eq!(cs[0].sessions(), 1);
        // Gone at 1499 ms, still inside the clock's second 1.
        assert_eq!(cs[0].expire(at(1499), usize::MAX), 1);
        assert_eq!(cs[0].sessions(), 0);
        assert_eq!(
            cs[0].process_with(&topo, &mut esp(), 0, at(1600), false),
            Verdict::Transmit(1)
        );
        assert_eq!(cs[0].counters.sessions_created, 2, "a new session");
    }

    fn bu(src: &str, home: &str, alt: Option<&str>, lifetime_units: u16) -> TestFrame {
        let repr = crate::packet::mobility::BindingUpdateRepr {
            sequence: 1,
            flags: 0x8000,
            lifetime: lifetime_units,
            alternate_coa: alt.map(addr6),
        };
        TestFrame::new(eth_ipv6(
            src,
            "2001:db8:ffff::80",
            &[Ext::Hao(addr6(home))],
            &L4::BindingUpdate(repr),
        ))
    }

    fn backend_of(f: &TestFrame) -> IpAddr {
        let p = crate::packet::parse(f.bytes(), &ParseConfig::new()).unwrap();
        dst_addr(f.bytes(), &p).unwrap()
    }

    /// Delivers every core's alias outbox to the other cores, as the worker
    /// loops do through their rings.
    fn broadcast(cs: &mut [CoreLb], now: u32) {
        let mut sent = Vec::new();
        for (i, c) in cs.iter_mut().enumerate() {
            c.drain_outbox(|u| sent.push((i, *u)));
        }
        for (from, u) in sent {
            for (i, c) in cs.iter_mut().enumerate() {
                if i != from {
                    c.apply_alias(&u, now);
                }
            }
        }
    }

    #[test]
    fn binding_updates_alias_care_of_addresses() {
        for n in 0..16u32 {
            let mut cs = cores(2, true);
            let home = format!("2001:db8:100::{n:x}");
            let (coa1, coa2, other) = (
                format!("2001:db8:b1::{n:x}"),
                format!("2001:db8:b2::{n:x}"),
                format!("2001:db8:aa::{n:x}"),
            );
            // BU from CoA1 (HAO = home): forwarded to the node's backend.
            let mut f = bu(&coa1, &home, None, 25);
            assert_eq!(run(&mut cs, &mut f, 0, 0), Verdict::Transmit(1));
            let backend = backend_of(&f);
            broadcast(&mut cs, 0);
            assert!(
                cs.iter().all(|c| c.aliases() == 1),
                "every core holds the alias"
            );
            // Data from CoA1 without HAO reaches the same backend, whichever
            // core receives it.
            let mut f = TestFrame::new(eth_ipv6(
                &coa1,
                "2001:db8:ffff::80",
                &[],
                &L4::Tcp(40000, 80, 9, 0x18),
            ));
            assert_eq!(run(&mut cs, &mut f, 0, 1), Verdict::Transmit(1));
            assert_eq!(
                backend_of(&f),
                backend,
                "node {n}: data from CoA1 kept the backend"
            );
            // A BU sent from another address names CoA2 in the Alternate CoA option.
            let mut f = bu(&other, &home, Some(&coa2), 25);
            assert_eq!(run(&mut cs, &mut f, 0, 2), Verdict::Transmit(1));
            assert_eq!(backend_of(&f), backend);
            broadcast(&mut cs, 2);
            for coa in [&coa2, &coa1] {
                let mut f = TestFrame::new(eth_ipv6(
                    coa,
                    "2001:db8:ffff::80",
                    &[],
                    &L4::Tcp(40000, 80, 9, 0x18),
                ));
                assert_eq!(run(&mut cs, &mut f, 0, 3), Verdict::Transmit(1));
                assert_eq!(backend_of(&f), backend, "node {n}: old and new CoA coexist");
            }
            let sessions: usize = cs.iter().map(|c| c.sessions()).sum();
            assert_eq!(sessions, 1, "one session for the node");
            // Lifetime 25 units = 100 s; after it, CoA1 is just a source again.
            for c in cs.iter_mut() {
                for _ in 0..16 {
                    c.expire(Now::from_secs(200), 4096);
                }
            }
            assert!(cs.iter().all(|c| c.aliases() == 0), "aliases expired");
            // Lifetime 0 deregisters at once.
            let mut f = bu(&coa1, &home, None, 25);
            run(&mut cs, &mut f, 0, 300);
            broadcast(&mut cs, 300);
            let mut f = bu(&coa1, &home, None, 0);
            run(&mut cs, &mut f, 0, 301);
            broadcast(&mut cs, 301);
            assert!(
                cs.iter().all(|c| c.aliases() == 0),
                "lifetime 0 removed the alias"
            );
        }
    }

    #[test]
    fn reload_keeps_sessions_and_slots() {
        let mut cs = cores(1, true);
        let old_topo = cs[0].topo.clone();
        let mut before = Vec::new();
        for n in 0..300u32 {
            let mut f = TestFrame::new(eth_ipv6(
                "2001:db8:e0::1",
                "2001:db8:ffff::80",
                &[],
                &L4::Esp(n + 1, 1),
            ));
            assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(1));
            before.push(backend_of(&f));
        }
        // Reload: ::12 removed, ::14 added, dsr6 removed, web5 added.
        let cfg2 = CONFIG
            .replace(
                "[[service.backend]]\n        address = \"2001:db8:1::12\"",
                "[[service.backend]]\n        address = \"2001:db8:1::14\"",
            )
            .replace("name = \"dsr6\"", "name = \"web5\"")
            .replace("vip = \"2001:db8:ffff::81\"", "vip = \"2001:db8:ffff::85\"");
        let cfg2 = Config::from_toml(&cfg2, "reload").unwrap();
        let new_topo = Arc::new(old_topo.reloaded(&cfg2).unwrap());
        let names: Vec<(&str, bool)> = new_topo
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.removed))
            .collect();
        assert_eq!(
            names,
            [
                ("web6", false),
                ("dsr6", true),
                ("web4", false),
                ("web5", false)
            ]
        );
        let web6: Vec<(IpAddr, bool)> = new_topo.services[0]
            .backends
            .backends()
            .iter()
            .map(|b| (b.address, b.healthy))
            .collect();
        assert_eq!(
            web6,
            [
                ("2001:db8:1::10".parse().unwrap(), true),
                ("2001:db8:1::11".parse().unwrap(), true),
                ("2001:db8:1::12".parse().unwrap(), false),
                ("2001:db8:1::14".parse().unwrap(), true),
            ],
            "indices stable; removed backend is a tombstone; new one appended"
        );
        cs[0].set_topology(new_topo);
        let removed: IpAddr = "2001:db8:1::12".parse().unwrap();
        let mut moved = 0;
        for n in 0..300u32 {
            let mut f = TestFrame::new(eth_ipv6(
                "2001:db8:e0::1",
                "2001:db8:ffff::80",
                &[],
                &L4::Esp(n + 1, 2),
            ));
            assert_eq!(cs[0].process(&mut f, 0, 1, false), Verdict::Transmit(1));
            let now = backend_of(&f);
            if before[n as usize] == removed {
                assert_ne!(now, removed, "sessions on a removed backend pick anew");
                moved += 1;
            } else {
                assert_eq!(
                    now, before[n as usize],
                    "sessions to remaining backends survive"
                );
            }
        }
        assert!(moved > 50, "{moved}");
        assert_eq!(cs[0].sessions(), 300);
        // The removed service matches nothing any more; the new one works.
        let mut f = hao_tcp("2001:db8:c0::1", "2001:db8:100::1", "2001:db8:ffff::81");
        assert_eq!(cs[0].process(&mut f, 0, 1, false), Verdict::Drop);
        let mut f = hao_tcp("2001:db8:c0::1", "2001:db8:100::1", "2001:db8:ffff::85");
        assert_eq!(cs[0].process(&mut f, 0, 1, false), Verdict::Transmit(1));
    }

    #[test]
    fn arp_and_nd_are_answered_for_our_addresses_and_vips() {
        let mut cs = cores(1, false);
        let their_mac = [2, 0, 0, 0, 0xbb, 2];
        // ARP for the IPv4 VIP on the client side.
        let mut buf = vec![0u8; 60];
        neighbor::arp_request(
            &mut buf,
            their_mac,
            "198.51.100.9".parse().unwrap(),
            "198.51.100.80".parse().unwrap(),
        );
        let mut f = TestFrame::new(buf);
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(0));
        assert_eq!(&f.bytes()[0..6], &their_mac);
        assert_eq!(&f.bytes()[6..12], &CLIENT_MAC);
        // NS for the server port's own address, without options to grow into.
        let mut buf = vec![0u8; 86];
        neighbor::neighbor_solicitation(
            &mut buf,
            their_mac,
            "2001:db8:1::10".parse().unwrap(),
            "2001:db8:1::1".parse().unwrap(),
        );
        let mut f = TestFrame::new(buf);
        assert_eq!(cs[0].process(&mut f, 1, 0, false), Verdict::Transmit(1));
        let p = crate::packet::parse(f.bytes(), &ParseConfig::new()).unwrap();
        assert_eq!(
            neighbor::classify(f.bytes(), &p),
            Some(NdKind::Advertisement)
        );
        // Not ours: learned from, not answered.
        let mut buf = vec![0u8; 60];
        neighbor::arp_request(
            &mut buf,
            their_mac,
            "192.0.2.77".parse().unwrap(),
            "192.0.2.99".parse().unwrap(),
        );
        let mut f = TestFrame::new(buf);
        assert_eq!(cs[0].process(&mut f, 1, 0, false), Verdict::Drop);
        assert_eq!(cs[0].counters.neighbor_answers, 2);
        assert_eq!(
            cs[0].counters.neighbors_learned, 3,
            "both solicitors and the stranger"
        );
    }

    #[test]
    fn next_hops_are_resolved_by_solicitation() {
        let mut cs = cores(1, false);
        // Find an identity whose backend has no static neighbour.
        let (spi, backend) = (0..64u32)
            .find_map(|n| {
                let mut f = TestFrame::new(eth_ipv6(
                    "2001:db8:e0::1",
                    "2001:db8:ffff::80",
                    &[],
                    &L4::Esp(n + 1, 1),
                ));
                let v = cs[0].process(&mut f, 0, 0, false);
                (v == Verdict::Hold(1)).then(|| {
                    let p = crate::packet::parse(f.bytes(), &ParseConfig::new()).unwrap();
                    (n + 1, dst_addr(f.bytes(), &p).unwrap())
                })
            })
            .expect("some identity maps to a backend without a static neighbour");
        // (A dropped frame is freed by the worker; each attempt is a new one.)
        let fresh = || {
            TestFrame::new(eth_ipv6(
                "2001:db8:e0::1",
                "2001:db8:ffff::80",
                &[],
                &L4::Esp(spi, 2),
            ))
        };
        assert_eq!(cs[0].unresolved_next_hop(), backend);
        assert_eq!(cs[0].counters.lb_drops.iter().sum::<u64>(), 0);
        let mut requests = Vec::new();
        cs[0].drain_neighbor_work(|_| {}, |r| requests.push(*r));
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].target, backend);
        assert_eq!(
            requests[0].source,
            "2001:db8:1::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(requests[0].port, 1);
        // While the answer is pending, no second request.
        assert_eq!(cs[0].process(&mut fresh(), 0, 0, false), Verdict::Hold(1));
        cs[0].drain_neighbor_work(|_| {}, |r| panic!("second request {r:?}"));
        // The backend answers (a solicited NA); the next packet goes through.
        let backend_mac = [2, 0, 0, 0, 0xcc, 3];
        let IpAddr::V6(b6) = backend else {
            unreachable!()
        };
        let mut ns = vec![0u8; 86];
        neighbor::neighbor_solicitation(&mut ns, SERVER_MAC, "2001:db8:1::1".parse().unwrap(), b6);
        let mut na = TestFrame::new(ns);
        let p = crate::packet::parse(na.bytes(), &ParseConfig::new()).unwrap();
        assert!(neighbor::answer_ns(na.bytes_mut(), &p, backend_mac));
        assert_eq!(
            cs[0].process(&mut na, 1, 0, false),
            Verdict::Drop,
            "consumed"
        );
        let mut learned = Vec::new();
        cs[0].drain_neighbor_work(|u| learned.push(*u), |_| {});
        assert_eq!(
            learned,
            [NeighborUpdate {
                ip: backend,
                mac: backend_mac
            }]
        );
        let mut f = fresh();
        assert_eq!(cs[0].process(&mut f, 0, 1, false), Verdict::Transmit(1));
        assert_eq!(&f.bytes()[0..6], &backend_mac);
    }

    fn esp(spi: u32, seq: u32) -> TestFrame {
        TestFrame::new(eth_ipv6(
            "2001:db8:e0::1",
            "2001:db8:ffff::80",
            &[],
            &L4::Esp(spi, seq),
        ))
    }

    /// The ESP sequence number of a frame `esp` built (after 14 + 40 + 4).
    fn esp_seq(f: &[u8]) -> u32 {
        u32::from_be_bytes(f[58..62].try_into().unwrap())
    }

    /// SPIs whose `web6` backend has no static neighbour, with that
    /// backend (found on a probe core; Maglev picks the same everywhere).
    fn unresolved_spis() -> Vec<(u32, IpAddr)> {
        let mut probe = cores(1, false);
        let found: Vec<_> = (1..200u32)
            .filter_map(|spi| {
                let v = probe[0].process(&mut esp(spi, 1), 0, 0, false);
                (v == Verdict::Hold(1)).then(|| (spi, probe[0].unresolved_next_hop()))
            })
            .collect();
        assert!(found.len() > 2, "{found:?}");
        found
    }

    /// The solicited NA `from` (a backend) sends with `mac`.
    fn na_from(from: IpAddr, mac: [u8; 6]) -> TestFrame {
        let IpAddr::V6(b6) = from else { unreachable!() };
        let mut ns = vec![0u8; 86];
        neighbor::neighbor_solicitation(&mut ns, SERVER_MAC, "2001:db8:1::1".parse().unwrap(), b6);
        let mut na = TestFrame::new(ns);
        let p = crate::packet::parse(na.bytes(), &ParseConfig::new()).unwrap();
        assert!(neighbor::answer_ns(na.bytes_mut(), &p, mac));
        na
    }

    fn requests_sent(c: &mut CoreLb, target: IpAddr) -> usize {
        let mut n = 0;
        c.drain_neighbor_work(
            |_| {},
            |r| {
                assert_eq!(r.target, target);
                n += 1;
            },
        );
        n
    }

    /// Checks released frames: port 1, the learned MAC and the port's,
    /// to `backend`, ESP sequence numbers 1, 2, ... in order.
    fn check_released(out: &[(u8, TestFrame)], backend: IpAddr, mac: [u8; 6], n: usize) {
        assert_eq!(out.len(), n);
        for (i, (port, f)) in out.iter().enumerate() {
            assert_eq!(*port, 1);
            assert_eq!(&f.bytes()[0..6], &mac, "learned MAC");
            assert_eq!(&f.bytes()[6..12], &SERVER_MAC, "port MAC");
            let p = crate::packet::parse(f.bytes(), &ParseConfig::new()).unwrap();
            assert_eq!(dst_addr(f.bytes(), &p), Some(backend), "rewritten");
            assert_eq!(esp_seq(f.bytes()), i as u32 + 1, "arrival order");
        }
    }

    #[test]
    fn held_packets_leave_in_order_once_the_next_hop_answers() {
        let (spi, backend) = unresolved_spis()[0];
        let mut cs = cores(1, false);
        let mut hold = HoldQueue::new(64);
        for seq in 1..=5 {
            let mut f = esp(spi, seq);
            assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Hold(1));
            assert!(hold.hold(&mut cs[0], f, 1, u64::from(seq)).is_ok());
        }
        assert_eq!((hold.len(), hold.hops()), (5, 1));
        assert_eq!(requests_sent(&mut cs[0], backend), 1, "one request");
        let epoch = cs[0].neighbor_epoch();
        // An NA with an all-zero or a group link-layer address teaches nothing.
        for bogus in [[0; 6], [1, 0, 0x5e, 0, 0, 1]] {
            cs[0].process(&mut na_from(backend, bogus), 1, 0, false);
            assert_eq!(cs[0].neighbor_epoch(), epoch, "{bogus:?}");
        }
        let mac = [2, 0, 0, 0, 0xcc, 3];
        assert_eq!(
            cs[0].process(&mut na_from(backend, mac), 1, 0, false),
            Verdict::Drop
        );
        assert_ne!(cs[0].neighbor_epoch(), epoch, "the NA taught the MAC");
        let topo = cs[0].topology();
        let mut out = Vec::new();
        hold.release_resolved(&mut cs[0], &topo, 0, |port, f| out.push((port, f)));
        check_released(&out, backend, mac, 5);
        assert!(hold.is_empty() && hold.hops() == 0);
        assert_eq!(cs[0].counters.neighbor_held, 5);
        assert_eq!(cs[0].counters.neighbor_released, 5);
        assert_eq!(cs[0].counters.lb_drops.iter().sum::<u64>(), 0);
        // Later packets go straight out.
        let mut f = esp(spi, 6);
        assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(1));
        assert_eq!(&f.bytes()[0..6], &mac);
    }

    #[test]
    fn a_neighbour_learned_by_another_core_releases_held_packets() {
        let (spi, backend) = unresolved_spis()[0];
        let mut cs = cores(2, false);
        let mut holds: Vec<HoldQueue<TestFrame>> = (0..2).map(|_| HoldQueue::new(64)).collect();
        let mut owner = 0;
        for seq in 1..=3 {
            let mut f = esp(spi, seq);
            let v = match cs[0].process(&mut f, 0, 0, false) {
                Verdict::Handoff(c) => {
                    owner = usize::from(c);
                    cs[owner].process(&mut f, 0, 0, true)
                }
                v => v,
            };
            assert_eq!(v, Verdict::Hold(1));
            assert!(holds[owner].hold(&mut cs[owner], f, 1, 0).is_ok());
        }
        let other = 1 - owner;
        assert_eq!(holds[owner].len(), 3);
        // The NA arrives on the other core, which learns it and tells the
        // owner (the worker loop sends `WorkerCommand::Neighbor`).
        let mac = [2, 0, 0, 0, 0xcc, 4];
        assert_eq!(
            cs[other].process(&mut na_from(backend, mac), 1, 0, false),
            Verdict::Drop
        );
        let mut learned = Vec::new();
        cs[other].drain_neighbor_work(|u| learned.push(*u), |_| {});
        assert_eq!(learned, [NeighborUpdate { ip: backend, mac }]);
        let topo = cs[owner].topology();
        let mut out = Vec::new();
        holds[owner].release_resolved(&mut cs[owner], &topo, 0, |p, f| out.push((p, f)));
        assert!(out.is_empty(), "not known on the owner yet");
        let epoch = cs[owner].neighbor_epoch();
        cs[owner].apply_neighbor(&learned[0], 0);
        assert_ne!(cs[owner].neighbor_epoch(), epoch);
        holds[owner].release_resolved(&mut cs[owner], &topo, 0, |p, f| out.push((p, f)));
        check_released(&out, backend, mac, 3);
        assert!(holds[owner].is_empty());
        assert_eq!(cs[owner].counters.neighbor_released, 3);
    }

    #[test]
    fn hold_caps_per_next_hop_and_per_core_are_counted() {
        let spis = unresolved_spis();
        let (a_spi, a) = spis[0];
        let (b_spi, _) = *spis.iter().find(|(_, x)| *x != a).unwrap();
        let mut cs = cores(1, false);
        let mut hold = HoldQueue::new(10);
        let full = |c: &CoreLb| c.counters.lb_drops[LbDrop::NeighborHoldFull as usize];
        for seq in 1..=10 {
            let mut f = esp(a_spi, seq);
            assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Hold(1));
            let taken = hold.hold(&mut cs[0], f, 1, 0).is_ok();
            assert_eq!(taken, seq as usize <= HOLD_PER_HOP, "packet {seq}");
        }
        assert_eq!(full(&cs[0]), 2, "per next hop");
        // Two slots of ten are left for the second next hop.
        for seq in 1..=3 {
            let mut f = esp(b_spi, seq);
            assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Hold(1));
            assert_eq!(hold.hold(&mut cs[0], f, 1, 0).is_ok(), seq <= 2);
        }
        assert_eq!(full(&cs[0]), 3, "per core");
        assert_eq!((hold.len(), hold.hops()), (10, 2));
        assert_eq!(cs[0].counters.neighbor_held, 10);
        // A stopping worker frees what is held, counted.
        hold.clear(&mut cs[0]);
        assert!(hold.is_empty());
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::NeighborTimeout as usize],
            10
        );
    }

    #[test]
    fn unanswered_next_hops_time_out_after_three_requests() {
        let (spi, backend) = unresolved_spis()[0];
        let mut cs = cores(1, false);
        let topo = cs[0].topology();
        let mut hold = HoldQueue::new(64);
        for seq in 1..=3 {
            let mut f = esp(spi, seq);
            assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Hold(1));
            assert!(hold.hold(&mut cs[0], f, 1, 0).is_ok());
        }
        assert_eq!(requests_sent(&mut cs[0], backend), 1);
        // (time in ms, in s, requests expected then, packets still held)
        for (ms, s, asked, held) in [
            (999, 0, 0, 3),
            (1000, 1, 1, 3),
            (1500, 1, 0, 3),
            (2000, 2, 1, 3),
            (2999, 2, 0, 3),
            (3000, 3, 0, 0),
        ] {
            hold.expire(&mut cs[0], &topo, ms, s);
            assert_eq!(requests_sent(&mut cs[0], backend), asked, "at {ms} ms");
            assert_eq!(hold.len(), held, "at {ms} ms");
        }
        assert_eq!(cs[0].counters.neighbor_requests, 3);
        assert_eq!(cs[0].counters.lb_drops[LbDrop::NeighborTimeout as usize], 3);
        assert_eq!(cs[0].counters.neighbor_released, 0);
    }

    #[test]
    fn home_agent_notifications_alias_care_of_addresses() {
        let key_hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        let cfg = format!("{CONFIG}\n[binding_notify]\nport = 7777\nkey = \"{key_hex}\"\n");
        let cfg = Config::from_toml(&cfg, "test").unwrap();
        let topo = Arc::new(Topology::from_config(&cfg, &[CLIENT_MAC, SERVER_MAC], true).unwrap());
        let mut map = BucketMap::new(1024, 0).unwrap();
        map.assign_cores(0, 2, |_| true).unwrap();
        let map = Arc::new(map);
        let wall = 1_800_000_000_000u64;
        let sizing = CoreSizing {
            sessions: 1024,
            aliases: 1024,
            notify_guard: 1024,
            wall_base_ms: wall,
            neighbors: 1024,
            neighbor_hold: 64,
            extension_header_limit: 8,
            connections: 1024,
            workers: 2,
            icmp_errors_per_second: 1000,
            icmp_translated_per_second: 0,
        };
        let hasher = IdentityHasher::new(*b"0123456789abcdef");
        let mut cs: Vec<CoreLb> = (0..2)
            .map(|i| CoreLb::new(topo.clone(), i, map.clone(), hasher.clone(), sizing).unwrap())
            .collect();
        let key = NotifyKey::from_hex(key_hex).unwrap();
        let home = "2001:db8:100::42";
        let coa = "2001:db8:c9::42";
        // The node's data with HAO picks its backend.
        let mut f = hao_tcp("2001:db8:c0::42", home, "2001:db8:ffff::80");
        assert_eq!(run(&mut cs, &mut f, 0, 0), Verdict::Transmit(1));
        let backend = backend_of(&f);
        // The home agent notifies: CoA -> home.
        let note = notify::Notification {
            home: addr6(home),
            coa: addr6(coa),
            lifetime: 600,
            remove: false,
            sequence: 7,
            timestamp_ms: wall + 1000,
        };
        let datagram = notify::encode(&note, &key);
        let frame = || {
            TestFrame::new(eth_ipv6(
                "2001:db8:aa::1",
                "2001:db8:ffff::1",
                &[],
                &L4::Udp(5000, 7777, datagram.to_vec()),
            ))
        };
        assert_eq!(run(&mut cs, &mut frame(), 0, 1), Verdict::Drop, "consumed");
        broadcast(&mut cs, 1);
        assert_eq!(
            cs.iter().map(|c| c.notify_counters.accepted).sum::<u64>(),
            1
        );
        assert!(cs.iter().all(|c| c.aliases() == 1));
        // Data from the CoA without HAO now reaches the node's backend.
        let mut f = TestFrame::new(eth_ipv6(
            coa,
            "2001:db8:ffff::80",
            &[],
            &L4::Tcp(40000, 80, 9, 0x18),
        ));
        assert_eq!(run(&mut cs, &mut f, 0, 2), Verdict::Transmit(1));
        assert_eq!(backend_of(&f), backend);
        // The same datagram again is a replay; a forged one fails the MAC.
        assert_eq!(run(&mut cs, &mut frame(), 0, 3), Verdict::Drop);
        let replayed: u64 = cs
            .iter()
            .map(|c| c.notify_counters.drops[notify::NotifyDrop::Replayed as usize])
            .sum();
        assert_eq!(replayed, 1);
        let mut forged = datagram;
        forged[40] ^= 1;
        let mut f = TestFrame::new(eth_ipv6(
            "2001:db8:aa::1",
            "2001:db8:ffff::1",
            &[],
            &L4::Udp(5000, 7777, forged.to_vec()),
        ));
        assert_eq!(run(&mut cs, &mut f, 0, 3), Verdict::Drop);
        let bad_mac: u64 = cs
            .iter()
            .map(|c| c.notify_counters.drops[notify::NotifyDrop::BadMac as usize])
            .sum();
        assert_eq!(bad_mac, 1);
    }

    #[test]
    fn session_keys_are_compact_and_round_trip() {
        assert_eq!(std::mem::size_of::<SessionKey>(), 19);
        assert_eq!(std::mem::align_of::<SessionKey>(), 1);
        // Two session entries per cache line, none across two.
        type SessionEntry = crate::dataplane::table::Entry<SessionKey, BackendIndex>;
        assert_eq!(std::mem::size_of::<Option<SessionEntry>>(), 32);
        assert_eq!(Table::<SessionKey, BackendIndex>::slot_bytes(), 40);
        let ids = [
            Identity::Spi(0xdead_beef),
            Identity::HomeAddress(addr6("2001:db8::1")),
            Identity::InterfaceId(0x0211_22ff_fe33_4455),
            Identity::Source("192.0.2.1".parse().unwrap()),
            Identity::Source("2001:db8::2".parse().unwrap()),
        ];
        for id in ids {
            let k = SessionKey::new(7, &id);
            assert_eq!(k.identity(), id);
            assert_eq!(k.service(), 7);
            assert_eq!(SessionKey::new(0x1234, &id).service(), 0x1234);
            // The packet path builds the same key from the compact form.
            assert_eq!(SessionKey::of_key(7, &IdentityKey::of(&id)), k);
        }
        assert_ne!(
            SessionKey::new(1, &ids[3]),
            SessionKey::new(1, &Identity::Spi(0xc000_0201))
        );
        let cs = cores(1, true);
        let per_slot = cs[0].session_memory() as f64 / cs[0].session_capacity() as f64;
        assert!(
            per_slot <= 64.0,
            "{per_slot} bytes of table memory per session"
        );
    }

    const FNAT_CONFIG: &str = r#"
        [workers]
        lcores = [1, 2]
        [[ports]]
        name = "client"
        device = "net_ring0"
        role = "client"
        addresses = ["2001:db8:ffff::1/64", "198.51.100.1/24"]
        gateways = ["2001:db8:ffff::fffe", "198.51.100.254"]
        [[ports]]
        name = "server"
        device = "net_ring1"
        role = "server"
        addresses = ["2001:db8:1::1/64", "192.0.2.1/24"]
        [[service]]
        name = "fnat6"
        vip = "2001:db8:ffff::90"
        protocol = "any"
        ports = [80]
        forwarding = "fnat"
        [[service.backend]]
        address = "2001:db8:1::10"
        [[service.backend]]
        address = "2001:db8:1::11"
        [[service]]
        name = "fnat4"
        vip = "198.51.100.90"
        protocol = "any"
        ports = [53, 80]
        forwarding = "fnat"
        fnat_addresses = ["192.0.2.5"]
        [[service.backend]]
        address = "192.0.2.30"
    "#;

    fn fnat_cores(n: usize, workers: u8, connections: usize) -> Vec<CoreLb> {
        cores_from(FNAT_CONFIG, n, true, 64, workers, connections)
    }

    /// Runs a packet received by core `first` on `port`, following a handoff.
    fn run_on(
        cores: &mut [CoreLb],
        first: usize,
        frame: &mut TestFrame,
        port: u8,
        now: u32,
    ) -> (Verdict, usize) {
        match cores[first].process(frame, port, now, false) {
            Verdict::Handoff(c) => (
                cores[usize::from(c)].process(frame, port, now, true),
                usize::from(c),
            ),
            v => (v, first),
        }
    }

    /// (src, sport, dst, dport) of a parsed TCP/UDP frame.
    fn tuple(b: &[u8]) -> (IpAddr, u16, IpAddr, u16, Parsed) {
        let p = crate::packet::parse(b, &ParseConfig::new()).expect("output parses");
        (
            p.src_addr(b).unwrap(),
            p.src_port,
            dst_addr(b, &p).unwrap(),
            p.dst_port,
            p,
        )
    }

    /// The TCP/UDP checksum recomputed from scratch over `pseudo_src` ->
    /// `pseudo_dst` (not by the incremental code under test).
    fn l4_sum_ok(b: &[u8], pseudo_src: IpAddr, pseudo_dst: IpAddr) -> bool {
        let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
        let l4 = &b[usize::from(p.l4_offset)..usize::from(p.l3_end)];
        let acc = match (pseudo_src, pseudo_dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                checksum::pseudo_header_v4(s, d, p.protocol, l4.len() as u32)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                checksum::pseudo_header_v6(s, d, p.protocol, l4.len() as u32)
            }
            _ => return false,
        };
        checksum::fold(checksum::sum(acc, l4)) == 0xffff
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn fnat_forward_and_reply_ipv4() {
        let mut cs = fnat_cores(2, 2, 1024);
        for (l4, proto) in [
            (L4::Tcp(40000, 80, 7, 0x02), IpProtocol::Tcp),
            (L4::Udp(40001, 53, b"query".to_vec()), IpProtocol::Udp),
        ] {
            let mut f = TestFrame::new(eth_ipv4("203.0.113.9", "198.51.100.90", &l4));
            let (v, owner) = run_on(&mut cs, 0, &mut f, 0, 0);
            assert_eq!(v, Verdict::Transmit(1));
            let (src, sport, dst, dport, p) = tuple(f.bytes());
            assert_eq!(p.protocol, proto);
            assert_eq!(
                src,
                ip("192.0.2.5"),
                "source := the configured local address"
            );
            assert_eq!(dst, ip("192.0.2.30"), "destination := the backend");
            assert_eq!(dport, [80, 53][usize::from(proto == IpProtocol::Udp)]);
            let (first, len) = crate::dataplane::fnat::port_range(owner as u8, 2);
            assert!(
                (first..first + len).contains(&sport),
                "{sport} in core {owner}'s range"
            );
            assert_eq!(port_owner(sport, 2), Some(owner as u8));
            assert!(l4_sum_ok(f.bytes(), src, dst), "{proto:?} checksum");
            assert_eq!(&f.bytes()[0..6], &derived_mac(dst));

            // The backend answers the local address; it arrives on either
            // core and reaches the owner through the handoff ring.
            for first in 0..2 {
                let reply = match proto {
                    IpProtocol::Tcp => L4::Tcp(80, sport, 99, 0x12),
                    _ => L4::Udp(53, sport, b"answer".to_vec()),
                };
                let mut r = TestFrame::new(eth_ipv4("192.0.2.30", "192.0.2.5", &reply));
                let (v, at) = run_on(&mut cs, first, &mut r, 1, 1);
                assert_eq!(v, Verdict::Transmit(0));
                assert_eq!(at, owner, "the reply was steered to the owner");
                let (rsrc, rsport, rdst, rdport, _) = tuple(r.bytes());
                assert_eq!((rsrc, rsport), (ip("198.51.100.90"), dport), "VIP back");
                assert_eq!(rdst, ip("203.0.113.9"));
                assert_eq!(
                    rdport,
                    [40000, 40001][usize::from(proto == IpProtocol::Udp)]
                );
                assert!(l4_sum_ok(r.bytes(), rsrc, rdst), "reply {proto:?} checksum");
            }
        }
        let conns: usize = cs.iter().map(|c| c.connections()).sum();
        assert_eq!(conns, 2);
        assert_eq!(cs.iter().map(|c| c.counters.replies).sum::<u64>(), 4);
        // One session for the one client identity, whichever protocol.
        assert_eq!(cs.iter().map(|c| c.sessions()).sum::<usize>(), 1);
    }

    /// `fnat_idle_timeout` ends idle connections (and frees their ports)
    /// before the session; a TCP connection closed by a FIN each way or a
    /// RST lives only `fnat_closed_timeout` after its last segment; a SYN
    /// on a closing connection starts it afresh.
    #[test]
    fn fnat_idle_and_closed_timeouts() {
        let config = FNAT_CONFIG.replace(
            "fnat_addresses = [\"192.0.2.5\"]\n",
            "fnat_addresses = [\"192.0.2.5\"]\n        fnat_idle_timeout = \"30s\"\n        fnat_closed_timeout = \"5s\"\n",
        );
        assert_ne!(config, FNAT_CONFIG);
        let mut cs = cores_from(&config, 1, true, 64, 1, 1024);
        let client = "203.0.113.9";
        let vip = "198.51.100.90";
        // Client -> VIP; returns the local port the connection got.
        let send = |cs: &mut Vec<CoreLb>, l4: L4, now: u32| -> u16 {
            let mut f = TestFrame::new(eth_ipv4(client, vip, &l4));
            assert_eq!(cs[0].process(&mut f, 0, now, false), Verdict::Transmit(1));
            tuple(f.bytes()).1
        };
        // Backend -> local address:port.
        let answer = |cs: &mut Vec<CoreLb>, l4: L4, now: u32| {
            let mut r = TestFrame::new(eth_ipv4("192.0.2.30", "192.0.2.5", &l4));
            cs[0].process(&mut r, 1, now, false)
        };
        let a = send(&mut cs, L4::Tcp(40000, 80, 1, 0x02), 0);
        send(&mut cs, L4::Udp(40001, 53, b"q".to_vec()), 0);
        assert_eq!(
            answer(&mut cs, L4::Tcp(80, a, 9, 0x12), 1),
            Verdict::Transmit(0)
        );
        send(&mut cs, L4::Tcp(40000, 80, 2, 0x11), 2); // client FIN: half closed
        cs[0].expire(Now::from_secs(7), usize::MAX);
        assert_eq!(
            cs[0].connections(),
            2,
            "half closed: still the idle timeout"
        );
        assert_eq!(
            answer(&mut cs, L4::Tcp(80, a, 10, 0x11), 3),
            Verdict::Transmit(0)
        );
        send(&mut cs, L4::Tcp(40000, 80, 3, 0x10), 4); // the last ACK
        cs[0].expire(Now::from_secs(8), usize::MAX);
        assert_eq!(cs[0].connections(), 2, "closed, 5 s after its last segment");
        cs[0].expire(Now::from_secs(9), usize::MAX);
        assert_eq!(cs[0].connections(), 1, "the TCP connection is gone");
        cs[0].expire(Now::from_secs(29), usize::MAX);
        assert_eq!(cs[0].connections(), 1, "UDP: idle 30 s");
        cs[0].expire(Now::from_secs(30), usize::MAX);
        assert_eq!(cs[0].connections(), 0);
        assert_eq!(cs[0].sessions(), 1, "the session (300 s) outlives them");
        // A RST from the backend closes at once.
        let c = send(&mut cs, L4::Tcp(40002, 80, 1, 0x02), 40);
        assert_eq!(
            answer(&mut cs, L4::Tcp(80, c, 9, 0x14), 41),
            Verdict::Transmit(0)
        );
        cs[0].expire(Now::from_secs(45), usize::MAX);
        assert_eq!(cs[0].connections(), 1);
        cs[0].expire(Now::from_secs(46), usize::MAX);
        assert_eq!(cs[0].connections(), 0, "closed by the RST");
        // A SYN on a closing connection reopens it with the idle timeout.
        let d = send(&mut cs, L4::Tcp(40003, 80, 1, 0x02), 50);
        send(&mut cs, L4::Tcp(40003, 80, 2, 0x04), 51); // client RST
        assert_eq!(
            send(&mut cs, L4::Tcp(40003, 80, 100, 0x02), 52),
            d,
            "same connection"
        );
        cs[0].expire(Now::from_secs(60), usize::MAX);
        assert_eq!(cs[0].connections(), 1, "reopened: idle 30 s again");
        cs[0].expire(Now::from_secs(82), usize::MAX);
        assert_eq!(cs[0].connections(), 0);
        assert_eq!(cs[0].connection_counts(), (4, 4));
    }

    #[test]
    fn fnat_roaming_node_keeps_its_connection_and_gets_replies_where_it_is() {
        let mut cs = fnat_cores(2, 2, 1024);
        let home = "2001:db8:100::7";
        let local = ip("2001:db8:1::1"); // default: the server-side port's address
        let mut first_tuple = None;
        for (i, coa) in ["2001:db8:c0::7", "2001:db8:c1::7"].iter().enumerate() {
            let mut f = hao_tcp(coa, home, "2001:db8:ffff::90");
            let (v, owner) = run_on(&mut cs, 0, &mut f, 0, i as u32);
            assert_eq!(v, Verdict::Transmit(1));
            let (src, sport, backend, dport, p) = tuple(f.bytes());
            assert_eq!(src, local);
            assert_eq!(dport, 80);
            assert!(!p.has_hao(), "the Home Address option is gone");
            assert!(
                l4_sum_ok(f.bytes(), local, backend),
                "checksum over local -> backend"
            );
            assert_eq!(
                *first_tuple.get_or_insert((sport, backend, owner)),
                (sport, backend, owner),
                "move {i}: same connection, port and backend"
            );

            let mut r = TestFrame::new(eth_ipv6(
                &backend.to_string(),
                "2001:db8:1::1",
                &[],
                &L4::Tcp(80, sport, 5, 0x12),
            ));
            let (v, at) = run_on(&mut cs, 1 - owner, &mut r, 1, i as u32);
            assert_eq!((v, at), (Verdict::Transmit(0), owner));
            let b = r.bytes();
            let (rsrc, rsport, rdst, rdport, p) = tuple(b);
            assert_eq!((rsrc, rsport), (ip("2001:db8:ffff::90"), 80));
            assert_eq!(rdst, ip(coa), "to the care-of address the node uses now");
            assert_eq!(rdport, 40000);
            assert_eq!(
                p.rh2_home_address(b),
                Some(addr6(home)),
                "type 2 routing header"
            );
            assert!(
                l4_sum_ok(b, rsrc, ip(home)),
                "checksum over VIP -> home address (RFC 6275 pseudo-header)"
            );
        }
        assert_eq!(cs.iter().map(|c| c.connections()).sum::<usize>(), 1);
        assert_eq!(cs.iter().map(|c| c.connection_counts().0).sum::<u64>(), 1);
    }

    #[test]
    fn fnat_ports_are_reused_after_expiry() {
        let mut cs = fnat_cores(1, 1, 1 << 17);
        let mut ports = std::collections::BTreeSet::new();
        for n in 0..100u16 {
            let mut f = TestFrame::new(eth_ipv4(
                "203.0.113.9",
                "198.51.100.90",
                &L4::Tcp(10000 + n, 80, 1, 0x02),
            ));
            assert_eq!(cs[0].process(&mut f, 0, 0, false), Verdict::Transmit(1));
            assert!(ports.insert(tuple(f.bytes()).1), "a port per connection");
        }
        let t = cs[0].fnat_table().unwrap();
        let (first, len) = t.range();
        assert_eq!((first, len), (1024, 64512), "one worker owns 1024-65535");
        assert_eq!(t.free_ports(1), usize::from(len) - 100);
        // The lifetime (300 s) passes: the sweep frees every port.
        cs[0].expire(Now::from_secs(301), usize::MAX);
        assert_eq!(cs[0].connections(), 0);
        assert_eq!(cs[0].connection_counts(), (100, 100));
        assert_eq!(cs[0].fnat_table().unwrap().free_ports(1), usize::from(len));
        // A reply for an expired connection is refused, not translated.
        let port = *ports.iter().next().unwrap();
        let mut r = TestFrame::new(eth_ipv4(
            "192.0.2.30",
            "192.0.2.5",
            &L4::Tcp(80, port, 1, 0x12),
        ));
        assert_eq!(cs[0].process(&mut r, 1, 302, false), Verdict::Drop);
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::FnatNoConnection as usize],
            1
        );
        // Freed ports are handed out again (after the never-used ones:
        // FIFO, so a freed port rests as long as possible).
        let mut reused = 0;
        for n in 0..(len as u32 + 50) {
            let mut f = TestFrame::new(eth_ipv4(
                "203.0.113.10",
                "198.51.100.90",
                &L4::Udp((n % 60000) as u16 + 1, 53, vec![]),
            ));
            if n >= 60000 {
                // Vary the client address instead, to stay distinct.
                f = TestFrame::new(eth_ipv4(
                    "203.0.113.11",
                    "198.51.100.90",
                    &L4::Udp(n as u16, 53, vec![]),
                ));
            }
            match cs[0].process(&mut f, 0, 303, false) {
                Verdict::Transmit(1) => {
                    if ports.contains(&tuple(f.bytes()).1) {
                        reused += 1;
                    }
                }
                Verdict::Drop => {}
                v => panic!("{v:?}"),
            }
        }
        assert_eq!(reused, 100, "every freed port was used again");
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::FnatPortsExhausted as usize],
            50,
            "past the range, new connections are refused and counted"
        );
    }

    /// ICMP errors about full-NAT packets reach the client as errors about
    /// its own packet: IPv4 (Fragmentation Needed, quote cut after the
    /// ports) and a mobile node over IPv6 (Packet Too Big, whole quote),
    /// arriving on either core; forged and cut quotes are counted.
    #[test]
    fn fnat_icmp_errors_are_translated_for_the_client() {
        use crate::dataplane::icmp_error::{self, testing};
        let mut cs = fnat_cores(2, 2, 1024);
        let cases = [
            (
                true,
                "203.0.113.9",
                None,
                "198.51.100.90",
                "192.0.2.5",
                "192.0.2.254",
            ),
            (
                false,
                "2001:db8:c1::7",
                Some("2001:db8:100::7"),
                "2001:db8:ffff::90",
                "2001:db8:1::1",
                "2001:db8:1::fe",
            ),
        ];
        for (v4, client, home, vip, local, router) in cases {
            let mut f = match home {
                None => TestFrame::new(eth_ipv4(client, vip, &L4::Udp(40001, 53, vec![7; 40]))),
                Some(h) => hao_tcp(client, h, vip),
            };
            let (v, owner) = run_on(&mut cs, 0, &mut f, 0, 0);
            assert_eq!(v, Verdict::Transmit(1));
            let sent = f.bytes()[14..].to_vec();
            let (_, lport, backend, _, _) = tuple(f.bytes());
            let (ty, keep) = if v4 { (3, 28) } else { (2, sent.len()) };
            for first in 0..2 {
                let mut e =
                    TestFrame::new(testing::error_frame(v4, ty, router, local, &sent, keep));
                let (v, at) = run_on(&mut cs, first, &mut e, 1, 1);
                assert_eq!(
                    (v, at),
                    (Verdict::Transmit(0), owner),
                    "{client}: to the owner"
                );
                let b = e.bytes().to_vec();
                let p = crate::packet::parse(&b, &ParseConfig::new()).unwrap();
                assert_eq!(p.src_addr(&b), Some(ip(vip)), "{client}: from the VIP");
                assert_eq!(dst_addr(&b, &p), Some(ip(client)), "to where the client is");
                let q = icmp_error::quote(&b, &p).expect("still a quote");
                assert_eq!(
                    q.src(&b),
                    ip(home.unwrap_or(client)),
                    "the quote is from the client's own (home) address"
                );
                assert_eq!(q.dst(&b), ip(vip));
                let cport = if v4 { 40001 } else { 40000 };
                let vport = if v4 { 53 } else { 80 };
                assert_eq!((q.src_port(&b), q.dst_port(&b)), (cport, vport));
                testing::assert_checksums(&b, v4, !v4);
            }
            // Forged: a local port no connection holds, or another backend.
            let mut forged = sent.clone();
            let l4 = if v4 { 20 } else { sent.len() - 20 };
            forged[l4..l4 + 2].copy_from_slice(&(lport ^ 1).to_be_bytes());
            let mut e = TestFrame::new(testing::error_frame(v4, ty, router, local, &forged, keep));
            assert_eq!(run_on(&mut cs, owner, &mut e, 1, 1).0, Verdict::Drop);
            let mut other = sent.clone();
            let dst = if v4 { 16..20 } else { 24..40 };
            other[dst.end - 1] ^= 1;
            assert_ne!(backend, ip("0.0.0.0"));
            let mut e = TestFrame::new(testing::error_frame(v4, ty, router, local, &other, keep));
            assert_eq!(run_on(&mut cs, owner, &mut e, 1, 1).0, Verdict::Drop);
            // Cut before the quoted ports.
            let cut = if v4 { 22 } else { 42 };
            let mut e = TestFrame::new(testing::error_frame(v4, ty, router, local, &sent, cut));
            assert_eq!(run_on(&mut cs, owner, &mut e, 1, 1).0, Verdict::Drop);
        }
        let drops = |d: LbDrop| {
            cs.iter()
                .map(|c| c.counters.lb_drops[d as usize])
                .sum::<u64>()
        };
        assert_eq!(drops(LbDrop::IcmpErrorNoConnection), 4);
        assert_eq!(drops(LbDrop::IcmpErrorUnusable), 2);
        assert_eq!(
            cs.iter()
                .map(|c| c.counters.icmp_errors_translated)
                .sum::<u64>(),
            4
        );
    }

    /// ICMP errors from the client side about replies go back to the
    /// backend of the client's session, as errors about the backend's own
    /// packet: DNAT over IPv4, DNAT to a mobile node (quote with a type 2
    /// Routing header), full NAT (to the local address and port the backend
    /// talked to); an error about a client without a session is counted.
    #[test]
    fn client_side_icmp_errors_go_back_to_the_backend() {
        use crate::dataplane::icmp_error::{self, testing};
        use crate::packet::build;
        let ip4 = |a: &str| a.parse::<Ipv4Addr>().unwrap();
        let check = |b: &[u8], v4: bool, outer: (&str, &str), quote: (&str, u16, &str, u16)| {
            let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
            assert_eq!(p.src_addr(b), Some(ip(outer.0)), "outer source");
            assert_eq!(dst_addr(b, &p), Some(ip(outer.1)), "outer destination");
            let q = icmp_error::quote(b, &p).expect("a quote");
            assert_eq!(
                (q.src(b), q.src_port(b), q.dst(b), q.dst_port(b)),
                (ip(quote.0), quote.1, ip(quote.2), quote.3)
            );
            testing::assert_checksums(b, v4, !v4);
        };
        // DNAT, IPv4.
        let mut cs = cores(2, true);
        let vip4 = "198.51.100.80";
        let mut f = TestFrame::new(eth_ipv4("203.0.113.9", vip4, &L4::Tcp(40000, 80, 1, 0x02)));
        assert_eq!(run_on(&mut cs, 0, &mut f, 0, 0).0, Verdict::Transmit(1));
        let reply = build::ipv4(ip4(vip4), ip4("203.0.113.9"), &L4::Tcp(80, 40000, 9, 0x12));
        for first in 0..2 {
            let mut e = TestFrame::new(testing::error_frame(
                true,
                3,
                "198.51.100.254",
                vip4,
                &reply,
                28,
            ));
            assert_eq!(run_on(&mut cs, first, &mut e, 0, 1).0, Verdict::Transmit(1));
            check(
                e.bytes(),
                true,
                ("198.51.100.254", "192.0.2.30"),
                ("192.0.2.30", 80, "203.0.113.9", 40000),
            );
        }
        // DNAT to a mobile node: the quote's routing header names it.
        let (vip6, coa, home) = ("2001:db8:ffff::80", "2001:db8:c0::7", "2001:db8:100::7");
        let mut f = hao_tcp(coa, home, vip6);
        assert_eq!(run_on(&mut cs, 0, &mut f, 0, 0).0, Verdict::Transmit(1));
        let backend = tuple(f.bytes()).2.to_string();
        let reply = build::ipv6(
            addr6(vip6),
            addr6(coa),
            &[Ext::Routing2(addr6(home), 1)],
            &L4::Tcp(80, 40000, 9, 0x12),
        );
        let mut e = TestFrame::new(testing::error_frame(
            false,
            2,
            "2001:db8:ffff::fffe",
            vip6,
            &reply,
            reply.len(),
        ));
        assert_eq!(run_on(&mut cs, 1, &mut e, 0, 1).0, Verdict::Transmit(1));
        check(
            e.bytes(),
            false,
            ("2001:db8:ffff::fffe", &backend),
            (&backend, 80, coa, 40000),
        );
        // DSR: to the backend, encapsulated and untouched.
        let (dsr, client) = ("2001:db8:ffff::81", "2001:db8:c0::9");
        let mut f = TestFrame::new(eth_ipv6(client, dsr, &[], &L4::Tcp(40000, 80, 1, 0x02)));
        assert_eq!(run_on(&mut cs, 0, &mut f, 0, 0).0, Verdict::Transmit(1));
        let reply = build::ipv6(addr6(dsr), addr6(client), &[], &L4::Tcp(80, 40000, 9, 0x12));
        let err = testing::error_frame(false, 2, "2001:db8:ffff::fffe", dsr, &reply, reply.len());
        let mut e = TestFrame::new(err.clone());
        assert_eq!(run_on(&mut cs, 0, &mut e, 0, 1).0, Verdict::Transmit(1));
        let b = e.bytes();
        assert_eq!(
            &b[14 + 24..14 + 40],
            &addr6("2001:db8:1::20").octets(),
            "outer destination"
        );
        assert_eq!(b[14 + 6], 41, "IPv6 in IPv6");
        assert_eq!(&b[14 + 40..], &err[14..], "the error itself, untouched");
        // No session for that client.
        let stranger = build::ipv4(ip4(vip4), ip4("203.0.113.99"), &L4::Tcp(80, 40000, 9, 0x12));
        let mut e = TestFrame::new(testing::error_frame(
            true,
            3,
            "198.51.100.254",
            vip4,
            &stranger,
            28,
        ));
        assert_eq!(run_on(&mut cs, 0, &mut e, 0, 1).0, Verdict::Drop);
        let drops = |cs: &[CoreLb], d: LbDrop| {
            cs.iter()
                .map(|c| c.counters.lb_drops[d as usize])
                .sum::<u64>()
        };
        assert_eq!(drops(&cs, LbDrop::IcmpErrorNoSession), 1);

        // Full NAT, IPv4 UDP: port unreachable from the client.
        let mut cs = fnat_cores(2, 2, 1024);
        let vip = "198.51.100.90";
        let mut f = TestFrame::new(eth_ipv4(
            "203.0.113.9",
            vip,
            &L4::Udp(40001, 53, vec![1; 20]),
        ));
        assert_eq!(run_on(&mut cs, 0, &mut f, 0, 0).0, Verdict::Transmit(1));
        let (local, lport, backend, bport, _) = tuple(f.bytes());
        let reply = build::ipv4(
            ip4(vip),
            ip4("203.0.113.9"),
            &L4::Udp(53, 40001, vec![2; 30]),
        );
        for first in 0..2 {
            let mut e = TestFrame::new(testing::error_frame(
                true,
                3,
                "203.0.113.9",
                vip,
                &reply,
                reply.len(),
            ));
            assert_eq!(run_on(&mut cs, first, &mut e, 0, 1).0, Verdict::Transmit(1));
            check(
                e.bytes(),
                true,
                (&local.to_string(), &backend.to_string()),
                (&backend.to_string(), bport, &local.to_string(), lport),
            );
        }
        assert_eq!(
            cs.iter()
                .map(|c| c.counters.icmp_errors_translated)
                .sum::<u64>(),
            2
        );
    }

    /// Full NAT, backend side: TCP over IPv4 (Time Exceeded) and UDP over
    /// IPv6 (Destination Unreachable from the backend itself), each with a
    /// quote cut after the transport header's first 8 octets and a whole
    /// one, received on either core.
    #[test]
    fn fnat_icmp_errors_cover_both_families_and_transports() {
        use crate::dataplane::icmp_error::{self, testing};
        let mut cs = fnat_cores(2, 2, 1024);
        let cases = [
            (
                true,
                "203.0.113.9",
                L4::Tcp(40002, 80, 7, 0x18),
                "198.51.100.90",
                11u8,
            ),
            (
                false,
                "2001:db8:c0::9",
                L4::Udp(40003, 80, vec![5; 33]),
                "2001:db8:ffff::90",
                1,
            ),
        ];
        for (v4, client, l4, vip, ty) in cases {
            let (cport, vport) = match l4 {
                L4::Tcp(s, d, ..) | L4::Udp(s, d, _) => (s, d),
                _ => unreachable!(),
            };
            let mut f = TestFrame::new(if v4 {
                eth_ipv4(client, vip, &l4)
            } else {
                eth_ipv6(client, vip, &[], &l4)
            });
            let (v, owner) = run_on(&mut cs, 0, &mut f, 0, 0);
            assert_eq!(v, Verdict::Transmit(1));
            let sent = f.bytes()[14..].to_vec();
            let (local, _, backend, _, _) = tuple(f.bytes());
            let header = if v4 { 20 } else { 40 };
            for (keep, whole) in [(header + 8, false), (sent.len(), true)] {
                for first in 0..2 {
                    let mut e = TestFrame::new(testing::error_frame(
                        v4,
                        ty,
                        &backend.to_string(),
                        &local.to_string(),
                        &sent,
                        keep,
                    ));
                    let (v, at) = run_on(&mut cs, first, &mut e, 1, 1);
                    assert_eq!((v, at), (Verdict::Transmit(0), owner), "{client} {keep}");
                    let b = e.bytes();
                    let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
                    assert_eq!(p.src_addr(b), Some(ip(vip)), "from the VIP");
                    assert_eq!(dst_addr(b, &p), Some(ip(client)), "to the client");
                    assert!(!p.has_rh2());
                    let q = icmp_error::quote(b, &p).expect("a quote");
                    assert_eq!(
                        (q.src(b), q.src_port(b), q.dst(b), q.dst_port(b)),
                        (ip(client), cport, ip(vip), vport)
                    );
                    testing::assert_checksums(b, v4, whole);
                }
            }
        }
        assert_eq!(
            cs.iter()
                .map(|c| c.counters.icmp_errors_translated)
                .sum::<u64>(),
            8
        );
    }

    /// A mobile node gets errors the way it gets replies: at its care-of
    /// address through a type 2 Routing header naming its home address. An
    /// error that fitted the IPv6 minimum MTU gives up the end of its quote
    /// so that the header does not take it past 1280 octets (RFC 4443 §2.4
    /// (c)); a larger one keeps its size; a small one just grows.
    #[test]
    fn fnat_icmp_errors_reach_a_mobile_node_through_its_routing_header() {
        use crate::dataplane::icmp_error::{self, testing};
        let mut cs = fnat_cores(2, 2, 1024);
        let (coa, home, vip) = ("2001:db8:c1::7", "2001:db8:100::7", "2001:db8:ffff::90");
        let mut f = TestFrame::new(eth_ipv6(
            coa,
            vip,
            &[Ext::Hao(addr6(home))],
            &L4::Udp(40000, 80, vec![3; 1300]),
        ));
        let (v, owner) = run_on(&mut cs, 0, &mut f, 0, 0);
        assert_eq!(v, Verdict::Transmit(1));
        let sent = f.bytes()[14..].to_vec();
        let local = tuple(f.bytes()).0.to_string();
        // Octets of quote -> length of the IPv6 packet sent to the node.
        for (keep, len) in [(1000, 1072), (1231, 1280), (1232, 1280), (1233, 1281)] {
            let mut e = TestFrame::new(testing::error_frame(
                false,
                2,
                "2001:db8:1::fe",
                &local,
                &sent,
                keep,
            ));
            assert_eq!(
                run_on(&mut cs, 1 - owner, &mut e, 1, 1),
                (Verdict::Transmit(0), owner)
            );
            let b = e.bytes();
            assert_eq!(b.len() - 14, len, "{keep}");
            let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
            assert_eq!(usize::from(p.l3_end), b.len(), "payload length");
            assert!(p.has_rh2(), "type 2 Routing header");
            let at = usize::from(p.rh2_offset);
            assert_eq!(&b[at..at + 16], &addr6(home).octets());
            assert_eq!(dst_addr(b, &p), Some(ip(coa)), "via the care-of address");
            assert_eq!(p.src_addr(b), Some(ip(vip)));
            let q = icmp_error::quote(b, &p).expect("a quote");
            assert_eq!(
                (q.src(b), q.src_port(b), q.dst(b), q.dst_port(b)),
                (ip(home), 40000, ip(vip), 80)
            );
            testing::assert_checksums(b, false, false);
        }
    }

    /// DNAT, backend side: errors about packets passed to a backend reach
    /// the client from the VIP, quoting the packet the client sent:
    /// Fragmentation Needed from a router (IPv4 TCP, quote cut after 8
    /// octets), port unreachable from the backend itself (IPv6 UDP, whole
    /// quote), Packet Too Big about a mobile node's packet (its Home Address
    /// option kept, as DNAT keeps it). An error about a port no DNAT
    /// service has is not translated.
    #[test]
    fn dnat_icmp_errors_from_the_backend_side_reach_the_client() {
        use crate::dataplane::icmp_error::{self, testing};
        use crate::packet::build;
        let mut cs = cores(2, true);
        let cases = [
            (
                "203.0.113.9",
                None,
                L4::Tcp(40000, 80, 1, 0x02),
                "198.51.100.80",
                (3u8, Some("192.0.2.254")),
                28,
            ),
            (
                "2001:db8:c0::9",
                None,
                L4::Udp(40001, 80, vec![4; 21]),
                "2001:db8:ffff::80",
                (1, None),
                usize::MAX,
            ),
            (
                "2001:db8:c1::7",
                Some("2001:db8:100::7"),
                L4::Tcp(40002, 80, 1, 0x18),
                "2001:db8:ffff::80",
                (2, Some("2001:db8:1::fe")),
                usize::MAX,
            ),
        ];
        for (client, home, l4, vip, (ty, router), keep) in cases {
            let v4 = !client.contains(':');
            let (cport, vport) = match l4 {
                L4::Tcp(s, d, ..) | L4::Udp(s, d, _) => (s, d),
                _ => unreachable!(),
            };
            let exts: Vec<Ext> = home.map(|h| vec![Ext::Hao(addr6(h))]).unwrap_or_default();
            let mut f = TestFrame::new(if v4 {
                eth_ipv4(client, vip, &l4)
            } else {
                eth_ipv6(client, vip, &exts, &l4)
            });
            assert_eq!(run(&mut cs, &mut f, 0, 0), Verdict::Transmit(1));
            let sent = f.bytes()[14..].to_vec();
            let backend = tuple(f.bytes()).2.to_string();
            let from = router.unwrap_or(&backend);
            let mut e = TestFrame::new(testing::error_frame(v4, ty, from, client, &sent, keep));
            assert_eq!(run(&mut cs, &mut e, 1, 1), Verdict::Transmit(0), "{client}");
            let b = e.bytes();
            let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
            assert_eq!(p.src_addr(b), Some(ip(vip)), "from the VIP");
            assert_eq!(dst_addr(b, &p), Some(ip(client)), "to the client");
            let q = icmp_error::quote(b, &p).expect("a quote");
            assert_eq!(
                (q.src(b), q.src_port(b), q.dst(b), q.dst_port(b)),
                (ip(client), cport, ip(vip), vport)
            );
            testing::assert_checksums(b, v4, keep == usize::MAX);
        }
        // A port web4 does not serve: not DNAT's packet, not translated.
        let other = build::ipv4(
            "203.0.113.9".parse().unwrap(),
            "192.0.2.30".parse().unwrap(),
            &L4::Tcp(40000, 81, 1, 0x02),
        );
        let mut e = TestFrame::new(testing::error_frame(
            true,
            3,
            "192.0.2.254",
            "203.0.113.9",
            &other,
            28,
        ));
        assert_eq!(run(&mut cs, &mut e, 1, 1), Verdict::Drop);
        assert_eq!(
            cs.iter()
                .map(|c| c.counters.icmp_errors_translated)
                .sum::<u64>(),
            3
        );
    }

    /// Client side: a full-NAT error about a mobile node's reply (type 2
    /// Routing header in the quote) reaches the backend about its own
    /// packet, its MTU lowered by the header the appliance added; an error not sent to the VIP, one naming a client port no
    /// connection has, and one cut before the ports are not translated.
    #[test]
    fn client_side_icmp_errors_are_checked() {
        use crate::dataplane::icmp_error::{self, testing};
        use crate::packet::build;
        let mut cs = fnat_cores(2, 2, 1024);
        let (coa, home, vip) = ("2001:db8:c1::7", "2001:db8:100::7", "2001:db8:ffff::90");
        let mut f = hao_tcp(coa, home, vip);
        assert_eq!(run_on(&mut cs, 0, &mut f, 0, 0).0, Verdict::Transmit(1));
        let (local, lport, backend, bport, _) = tuple(f.bytes());
        let reply = |cport: u16| {
            build::ipv6(
                addr6(vip),
                addr6(coa),
                &[Ext::Routing2(addr6(home), 1)],
                &L4::Tcp(80, cport, 9, 0x10),
            )
        };
        let router = "2001:db8:ffff::fffe";
        let r = reply(40000);
        for first in 0..2 {
            let mut e = TestFrame::new(testing::error_frame(false, 2, router, vip, &r, r.len()));
            assert_eq!(run_on(&mut cs, first, &mut e, 0, 1).0, Verdict::Transmit(1));
            let b = e.bytes();
            let p = crate::packet::parse(b, &ParseConfig::new()).unwrap();
            assert_eq!(p.src_addr(b), Some(local), "from the local address");
            assert_eq!(dst_addr(b, &p), Some(backend), "to the backend");
            let q = icmp_error::quote(b, &p).expect("a quote");
            assert_eq!(
                (q.src(b), q.src_port(b), q.dst(b), q.dst_port(b)),
                (backend, bport, local, lport)
            );
            let mtu = usize::from(p.l4_offset) + 4;
            assert_eq!(
                &b[mtu..mtu + 4],
                &(1280u32 - 24).to_be_bytes(),
                "room for the routing header the appliance adds"
            );
            testing::assert_checksums(b, false, true);
        }
        let translated = |cs: &[CoreLb]| {
            cs.iter()
                .map(|c| c.counters.icmp_errors_translated)
                .sum::<u64>()
        };
        assert_eq!(translated(&cs), 2);
        // To another address than the VIP the reply came from.
        let mut e = TestFrame::new(testing::error_frame(
            false,
            2,
            router,
            "2001:db8:ffff::91",
            &r,
            r.len(),
        ));
        assert_eq!(run_on(&mut cs, 0, &mut e, 0, 1).0, Verdict::Drop);
        // A client port no connection of the node has.
        let r2 = reply(40001);
        let mut e = TestFrame::new(testing::error_frame(false, 2, router, vip, &r2, r2.len()));
        assert_eq!(run_on(&mut cs, 0, &mut e, 0, 1).0, Verdict::Drop);
        assert_eq!(
            cs.iter()
                .map(|c| c.counters.lb_drops[LbDrop::IcmpErrorNoConnection as usize])
                .sum::<u64>(),
            1
        );
        // Cut inside the routing header, before the ports.
        let mut e = TestFrame::new(testing::error_frame(false, 2, router, vip, &r, 60));
        assert_eq!(run_on(&mut cs, 0, &mut e, 0, 1).0, Verdict::Drop);
        assert_eq!(translated(&cs), 2);
    }

    #[test]
    fn fnat_full_tables_and_other_protocols_are_counted() {
        // 255 workers: 252 ports each. Core 0 of them, alone in the bucket map.
        let mut cs = fnat_cores(1, 255, 1 << 16);
        assert_eq!(cs[0].fnat_table().unwrap().range(), (1024, 252));
        let mut sent = 0;
        for n in 0..300u16 {
            let mut f = TestFrame::new(eth_ipv4(
                "203.0.113.9",
                "198.51.100.90",
                &L4::Tcp(20000 + n, 80, 1, 0x02),
            ));
            if cs[0].process(&mut f, 0, 0, false) == Verdict::Transmit(1) {
                sent += 1;
            }
        }
        assert_eq!(sent, 252);
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::FnatPortsExhausted as usize],
            48
        );

        // A small connection table fills before the ports run out.
        let mut cs = fnat_cores(1, 1, 16);
        let cap = cs[0].connection_capacity();
        assert!((16..64).contains(&cap), "{cap}");
        for n in 0..(cap as u16 + 10) {
            let mut f = TestFrame::new(eth_ipv4(
                "203.0.113.9",
                "198.51.100.90",
                &L4::Tcp(20000 + n, 80, 1, 0x02),
            ));
            cs[0].process(&mut f, 0, 0, false);
        }
        assert_eq!(cs[0].connections(), cap, "no live connection evicted");
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::ConnectionTableFull as usize],
            10
        );
        assert_eq!(cs[0].counters.to_backend, cap as u64);
        // The refused flows did not keep ports: they are all free again.
        let t = cs[0].fnat_table().unwrap();
        assert_eq!(t.free_ports(1), usize::from(t.range().1) - cap);

        // ESP to an `any` full-NAT service, an ICMP echo request from a
        // backend to the local address: not translated, counted; an ICMP
        // error without a quote: counted as unusable.
        let mut esp = TestFrame::new(eth_ipv6(
            "2001:db8:e0::1",
            "2001:db8:ffff::90",
            &[],
            &L4::Esp(1, 1),
        ));
        assert_eq!(cs[0].process(&mut esp, 0, 0, false), Verdict::Drop);
        let mut echo = TestFrame::new(eth_ipv4(
            "192.0.2.30",
            "192.0.2.5",
            &L4::Raw(1, vec![8, 0, 0, 0, 0, 0, 0, 0]),
        ));
        assert_eq!(cs[0].process(&mut echo, 1, 0, false), Verdict::Drop);
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::FnatUnsupportedProtocol as usize],
            2
        );
        let mut icmp = TestFrame::new(eth_ipv4(
            "192.0.2.30",
            "192.0.2.5",
            &L4::Raw(1, vec![3, 3, 0, 0, 0, 0, 0, 0]),
        ));
        assert_eq!(cs[0].process(&mut icmp, 1, 0, false), Verdict::Drop);
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::IcmpErrorUnusable as usize],
            1
        );
        // A reply from a backend the connection does not go to.
        let mut wrong = TestFrame::new(eth_ipv4(
            "192.0.2.31",
            "192.0.2.5",
            &L4::Tcp(80, 1024, 1, 0x12),
        ));
        assert_eq!(cs[0].process(&mut wrong, 1, 0, false), Verdict::Drop);
        assert_eq!(
            cs[0].counters.lb_drops[LbDrop::FnatNoConnection as usize],
            1
        );
    }

    #[test]
    fn fnat_local_addresses_are_answered_and_fixed_until_restart() {
        let cs = fnat_cores(1, 1, 1024);
        let topo = cs[0].topology();
        assert_eq!(topo.fnat_locals, vec![ip("2001:db8:1::1"), ip("192.0.2.5")]);
        assert!(
            topo.answers(1, ip("192.0.2.5")),
            "ARP for the local address"
        );
        assert!(!topo.answers(0, ip("192.0.2.5")), "not on the client side");
        let mut buf = vec![0u8; 60];
        neighbor::arp_request(
            &mut buf,
            [2, 0, 0, 0, 0, 0x30],
            "192.0.2.30".parse().unwrap(),
            "192.0.2.5".parse().unwrap(),
        );
        let mut arp = TestFrame::new(buf);
        let mut cs = cs;
        assert_eq!(cs[0].process(&mut arp, 1, 0, false), Verdict::Transmit(1));
        assert_eq!(cs[0].counters.neighbor_answers, 1);

        let same = Config::from_toml(FNAT_CONFIG, "test").unwrap();
        assert!(topo.reloaded(&same).is_ok());
        let moved =
            Config::from_toml(&FNAT_CONFIG.replace("192.0.2.5", "192.0.2.6"), "test").unwrap();
        assert_eq!(
            topo.reloaded(&moved).unwrap_err().to_string(),
            "service[1].fnat_addresses: 192.0.2.6 is new since start; full-NAT source addresses take effect at the next restart"
        );
    }
}
