//! Full NAT (S2 mode 2): one core's connection table and source-port
//! allocator, and the frame rewrites of both directions.
//!
//! **Connections, not sessions, are translated.** The identity's session
//! (service, identity) -> backend stays the one authority on the backend, so
//! a roaming client keeps its server; under it, every client flow gets its
//! own connection, keyed by [`ConnKey`] = (service, mobile identity, protocol,
//! client port, service port). For a client that does not move the identity
//! is its source address and the key is exactly the 5-tuple at the VIP; for
//! a mobile node the care-of address is replaced by the identity (home
//! address, interface ID, alias), so a flow survives a move with its local
//! port, and the entry's *current* client address, written by every forward
//! packet, is where replies go.
//!
//! **Local ports are split between cores, so replies need no shared table.**
//! Ports 1024 to 65535 of every local address are divided into one
//! contiguous range per worker ([`port_range`]); a core allocates only from
//! its own range, so the destination port of a backend's reply names the
//! owning core ([`port_owner`]) and the receiving core hands the reply over
//! its handoff ring without hashing anything. A local (address, port) is
//! used by one connection at a time, whatever the backend or protocol, so
//! the reverse direction is a direct index, not a hash lookup: the slot
//! array [`FnatTable`] keeps per (local address, port of the range) holds the
//! connection itself, and the forward direction is a [`Table`] from the
//! connection key to that slot. Free ports wait in a FIFO ring per local
//! address (preallocated, no allocation on the packet path); FIFO rather
//! than LIFO so that a released port is reused as late as possible, giving
//! a backend's TIME_WAIT for the old connection the longest time to end.
//!
//! **Expiry** is the forward table's incremental sweep: a connection lives
//! for the service's session lifetime after its last packet in either
//! direction (a reply refreshes the forward entry through the key stored in
//! the slot), and the sweep hands every removed entry back, which frees its
//! slot and queues its port. A full forward table refuses the new flow
//! (`connection_table_full`), an empty free ring refuses it as
//! `fnat_ports_exhausted`; a live connection is never evicted.
//!
//! **Rewrites** ([`rewrite_forward`], [`rewrite_reply`]) update checksums
//! incrementally (RFC 1624) through [`crate::packet::rewrite`]. A client
//! packet with a Home Address option (RFC 6275 §6.3) would make the backend
//! answer the home address directly, around the appliance, so the option
//! becomes a PadN option of the same size (RFC 8200 §4.2) and the
//! pseudo-header source moves from the home address to the local address.
//! A reply to such a node goes to its current care-of address with a type 2
//! Routing header carrying the home address (RFC 6275 §6.4, §9.3.2), and its
//! checksum is computed over the home address as final destination (RFC
//! 8200 §8.1), as the node's transport expects.
//!
//! Only TCP and UDP are translated: other protocols (ESP, ICMP, Mobility
//! Header data) and non-first fragments carry no ports to allocate and are
//! dropped as `fnat_unsupported_protocol`. ICMP errors from the backend side
//! about translated packets are turned back into errors about the client's
//! own packet ([`super::icmp_error`]).

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::dataplane::lb::SessionKey;
use crate::dataplane::table::{Table, TableError};
use crate::packet::rewrite::{set_dst_port, set_ipv4_addr, set_ipv6_addr, set_src_port};
use crate::packet::{ipv6, IpProtocol, Ipv4Field, Ipv6Field, L3Kind, Parsed};

/// The first local port handed out; ports below are never used.
pub const FIRST_PORT: u16 = 1024;
/// Ports shared out between the workers: 1024 to 65535.
pub const PORT_SPAN: u32 = 65536 - FIRST_PORT as u32;

/// Worker `worker`'s local ports out of `workers`: `(first, count)`. The
/// span 1024..=65535 is divided evenly; the remainder at the top (fewer
/// ports than workers) is unused.
pub fn port_range(worker: u8, workers: u8) -> (u16, u16) {
    let n = u32::from(workers.max(1));
    let len = PORT_SPAN / n;
    let first = u32::from(FIRST_PORT) + u32::from(worker) * len;
    (first as u16, len as u16)
}

/// The worker whose range holds local port `port`, if any.
#[inline]
pub fn port_owner(port: u16, workers: u8) -> Option<u8> {
    let n = u32::from(workers.max(1));
    let len = PORT_SPAN / n;
    let w = u32::from(port.checked_sub(FIRST_PORT)?) / len;
    (w < n).then_some(w as u8)
}

/// Forward key of a connection: the flow as the client sends it, with the
/// care-of address replaced by the mobile identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnKey {
    id: SessionKey,
    cport: u16,
    vport: u16,
    proto: u8,
}

impl ConnKey {
    /// The key of a flow of identity `id` (which holds the service).
    pub fn new(id: SessionKey, proto: IpProtocol, cport: u16, vport: u16) -> Self {
        ConnKey {
            id,
            cport,
            vport,
            proto: u8::from(proto),
        }
    }

    /// The service index.
    pub fn service(&self) -> u16 {
        self.id.service()
    }

    /// The client's (source) port.
    pub fn client_port(&self) -> u16 {
        self.cport
    }

    /// The service (destination) port.
    pub fn service_port(&self) -> u16 {
        self.vport
    }

    /// The protocol.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.proto)
    }

    /// The session key of the flow's identity.
    pub fn session(&self) -> &SessionKey {
        &self.id
    }

    /// Table hash: the identity's keyed hash mixed with the ports (the
    /// identity hash is already keyed, so this needs no key of its own).
    #[inline]
    pub fn hash(&self, identity_hash: u64) -> u64 {
        let x = identity_hash
            ^ (u64::from(self.cport) << 40)
            ^ (u64::from(self.vport) << 20)
            ^ (u64::from(self.proto) << 8);
        // splitmix64's finaliser: every input bit reaches the low bits the
        // table uses for the home slot.
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const LIVE: u8 = 1;
const HAO: u8 = 2;
const V4: u8 = 4;
/// TCP: the client sent a FIN.
const FIN_CLIENT: u8 = 8;
/// TCP: the backend sent a FIN.
const FIN_BACKEND: u8 = 16;
/// TCP: closed (a RST, or a FIN each way); the connection lives for the
/// service's `fnat_closed_timeout` after its last segment.
const CLOSED: u8 = 32;
/// The TCP state bits, kept across [`Conn::update`].
const TCP_STATE: u8 = FIN_CLIENT | FIN_BACKEND | CLOSED;

/// One connection, held in the slot of its local (address, port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn {
    key: ConnKey,
    hash: u64,
    backend: [u8; 16],
    client: [u8; 16],
    flags: u8,
}

impl Conn {
    const EMPTY: Conn = Conn {
        key: ConnKey {
            id: SessionKey::EMPTY,
            cport: 0,
            vport: 0,
            proto: 0,
        },
        hash: 0,
        backend: [0; 16],
        client: [0; 16],
        flags: 0,
    };

    /// The forward key.
    pub fn key(&self) -> &ConnKey {
        &self.key
    }

    /// The backend the connection goes to.
    pub fn backend(&self) -> IpAddr {
        addr_of(&self.backend, self.flags & V4 != 0)
    }

    /// The client's current address (its care-of address when it roams).
    pub fn client(&self) -> IpAddr {
        addr_of(&self.client, self.flags & V4 != 0)
    }

    /// Whether the client's last packet carried a Home Address option.
    pub fn home_option(&self) -> bool {
        self.flags & HAO != 0
    }

    /// Records the client's current address, whether it used a Home Address
    /// option, and the session's backend (forward traffic).
    #[inline]
    pub fn update(&mut self, client: IpAddr, hao: bool, backend: IpAddr) {
        self.client = octets(client);
        self.backend = octets(backend);
        self.flags = (self.flags & TCP_STATE)
            | LIVE
            | if hao { HAO } else { 0 }
            | if client.is_ipv4() { V4 } else { 0 };
    }
}

fn octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(a) => {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&a.octets());
            o
        }
        IpAddr::V6(a) => a.octets(),
    }
}

fn addr_of(o: &[u8; 16], v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*o))
    }
}

/// A FIFO ring of free port offsets, preallocated.
#[derive(Debug)]
struct FreePorts {
    ring: Box<[u16]>,
    head: usize,
    len: usize,
}

impl FreePorts {
    fn full(n: u16) -> Self {
        FreePorts {
            ring: (0..n).collect::<Vec<u16>>().into_boxed_slice(),
            head: 0,
            len: usize::from(n),
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let v = self.ring[self.head];
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
        Some(v)
    }

    #[inline]
    fn push(&mut self, v: u16) {
        if self.len == self.ring.len() {
            return; // cannot happen: every port is pushed once per pop
        }
        let at = (self.head + self.len) % self.ring.len();
        self.ring[at] = v;
        self.len += 1;
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// No free port on any of the service's local addresses.
    PortsExhausted,
    /// The forward table is full.
    TableFull,
}

/// A connection's slot: local address index and port offset packed.
pub type ConnRef = u32;

/// One core's full-NAT connections; see the module documentation.
#[derive(Debug)]
pub struct FnatTable {
    forward: Table<ConnKey, ConnRef>,
    slots: Box<[Conn]>,
    free: Box<[FreePorts]>,
    first: u16,
    len: u16,
    /// Connections opened.
    pub created: u64,
    /// Connections expired (their ports freed).
    pub expired: u64,
}

impl FnatTable {
    /// Core `worker` of `workers`: a forward table for `capacity`
    /// connections (capped at the ports it owns) and the slots and free
    /// rings of `locals` local addresses. All memory is allocated here.
    pub fn new(
        capacity: usize,
        locals: usize,
        worker: u8,
        workers: u8,
    ) -> Result<Self, TableError> {
        let (first, len) = port_range(worker, workers);
        let ports = usize::from(len) * locals.max(1);
        Ok(FnatTable {
            forward: Table::with_capacity(capacity.min(ports))?,
            slots: vec![Conn::EMPTY; ports].into_boxed_slice(),
            free: (0..locals.max(1)).map(|_| FreePorts::full(len)).collect(),
            first,
            len,
            created: 0,
            expired: 0,
        })
    }

    /// Live connections (plus expired ones not yet swept).
    pub fn len(&self) -> usize {
        self.forward.len()
    }

    /// True without connections.
    pub fn is_empty(&self) -> bool {
        self.forward.is_empty()
    }

    /// Connections the table holds at most.
    pub fn capacity(&self) -> usize {
        self.forward.capacity().min(self.slots.len())
    }

    /// Bytes of all arrays: forward table, slots, free rings.
    pub fn memory_bytes(&self) -> usize {
        self.forward.memory_bytes()
            + self.slots.len() * std::mem::size_of::<Conn>()
            + self.slots.len() * std::mem::size_of::<u16>()
    }

    /// The local port range this core owns: `(first, count)`.
    pub fn range(&self) -> (u16, u16) {
        (self.first, self.len)
    }

    /// Local address index and port of a connection.
    #[inline]
    pub fn local_of(&self, r: ConnRef) -> (usize, u16) {
        let len = u32::from(self.len.max(1));
        ((r / len) as usize, self.first + (r % len) as u16)
    }

    /// The connection in slot `r`.
    #[inline]
    pub fn conn(&self, r: ConnRef) -> Option<&Conn> {
        self.slots.get(r as usize).filter(|c| c.flags & LIVE != 0)
    }

    /// The connection in slot `r`, writable.
    #[inline]
    pub fn conn_mut(&mut self, r: ConnRef) -> Option<&mut Conn> {
        self.slots
            .get_mut(r as usize)
            .filter(|c| c.flags & LIVE != 0)
    }

    /// The live connection of `key`, refreshed.
    #[inline]
    pub fn lookup(&mut self, hash: u64, key: &ConnKey, now: u32) -> Option<ConnRef> {
        self.forward.lookup(hash, key, now).map(|e| e.value())
    }

    /// Opens a connection for `key`: a port from the first local address
    /// of `locals` (tried in order from `start`) that has one free.
    pub fn open(
        &mut self,
        hash: u64,
        key: ConnKey,
        locals: &[u16],
        start: usize,
        lifetime: u32,
        now: u32,
    ) -> Result<ConnRef, OpenError> {
        let n = locals.len();
        let mut got = None;
        for i in 0..n {
            let li = usize::from(locals[(start + i) % n]);
            if let Some(off) = self.free.get_mut(li).and_then(FreePorts::pop) {
                got = Some((li, off));
                break;
            }
        }
        let Some((li, off)) = got else {
            return Err(OpenError::PortsExhausted);
        };
        let r = (li * usize::from(self.len) + usize::from(off)) as ConnRef;
        if self.forward.insert(hash, key, r, lifetime, now).is_err() {
            self.free[li].push(off);
            return Err(OpenError::TableFull);
        }
        self.slots[r as usize] = Conn {
            key,
            hash,
            flags: LIVE,
            ..Conn::EMPTY
        };
        self.created += 1;
        Ok(r)
    }

    /// The connection a reply addressed to local address `local`, port
    /// `port`, from `from`:`from_port` belongs to; refreshes it. `None` if
    /// the port is not this core's, the slot is free, the connection
    /// expired, or the reply comes from another backend, port or protocol.
    #[inline]
    pub fn reply(
        &mut self,
        local: usize,
        port: u16,
        proto: IpProtocol,
        from: IpAddr,
        from_port: u16,
        now: u32,
    ) -> Option<ConnRef> {
        let off = port.checked_sub(self.first).filter(|o| *o < self.len)?;
        let r = (local * usize::from(self.len) + usize::from(off)) as ConnRef;
        let c = *self.conn(r)?;
        if c.key.proto != u8::from(proto)
            || c.key.vport != from_port
            || c.backend != octets(from)
            || (c.flags & V4 != 0) != from.is_ipv4()
        {
            return None;
        }
        // The forward entry decides whether the connection is alive (and
        // an expired key may already point at a newer slot).
        let e = self.forward.lookup(c.hash, &c.key, now)?;
        (e.value() == r).then_some(r)
    }

    /// Follows the end of a TCP connection from the flags of one of its
    /// segments (`from_client`: forward, else a reply). A RST, or a FIN
    /// from each side, closes it: from then on it lives `closed` seconds
    /// after its last segment instead of `idle`, so that its port returns
    /// soon (the backend's TIME_WAIT runs meanwhile; the FIFO free ring
    /// reuses the port as late as it can). A SYN without ACK from the
    /// client on a closing connection is a new connection on the same
    /// ports (RFC 9293 §3.6.1): the state starts afresh, with `idle`.
    /// Segments are taken at their word, without a sequence-number check,
    /// as IPVS does. Touches the forward entry only when the lifetime
    /// changes.
    pub fn track_tcp(
        &mut self,
        r: ConnRef,
        tcp_flags: u8,
        from_client: bool,
        idle: u32,
        closed: u32,
        now: u32,
    ) {
        let Some(c) = self
            .slots
            .get_mut(r as usize)
            .filter(|c| c.flags & LIVE != 0)
        else {
            return;
        };
        let before = c.flags;
        use crate::packet::tcp::flags::{ACK, FIN, RST, SYN};
        if tcp_flags & RST != 0 {
            c.flags |= CLOSED;
        } else if tcp_flags & FIN != 0 {
            c.flags |= if from_client { FIN_CLIENT } else { FIN_BACKEND };
            if c.flags & (FIN_CLIENT | FIN_BACKEND) == FIN_CLIENT | FIN_BACKEND {
                c.flags |= CLOSED;
            }
        } else if from_client && tcp_flags & (SYN | ACK) == SYN && before & TCP_STATE != 0 {
            c.flags &= !TCP_STATE;
        }
        let lifetime = match (before & CLOSED != 0, c.flags & CLOSED != 0) {
            (false, true) => closed,
            (true, false) => idle,
            _ => return,
        };
        let (hash, key) = (c.hash, c.key);
        if let Some(e) = self.forward.lookup(hash, &key, now) {
            if e.value() == r {
                e.set_lifetime(lifetime, now);
            }
        }
    }

    /// Expires connections, examining at most `budget` forward-table slots;
    /// the ports of expired connections go back to their free rings.
    pub fn expire(&mut self, now: u32, budget: usize) -> usize {
        let slots = &mut self.slots;
        let free = &mut self.free;
        let len = u32::from(self.len.max(1));
        let n = self.forward.expire(now, budget, |e| {
            let r = e.value();
            if let Some(s) = slots.get_mut(r as usize) {
                if s.flags & LIVE != 0 && s.key == *e.key() {
                    *s = Conn::EMPTY;
                    if let Some(f) = free.get_mut((r / len) as usize) {
                        f.push((r % len) as u16);
                    }
                }
            }
        });
        self.expired += n as u64;
        n
    }

    /// Free ports of local address `local`.
    pub fn free_ports(&self, local: usize) -> usize {
        self.free.get(local).map_or(0, |f| f.len)
    }
}

/// Why a rewrite was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FnatRewriteError {
    /// The summary and frame disagree, or families are mixed.
    Failed,
    /// No headroom for the type 2 Routing header.
    NoHeadroom,
}

/// Client -> backend: source := `local`:`lport`, destination := `backend`
/// (the service port stays), a Home Address option turned into PadN.
pub fn rewrite_forward(
    frame: &mut [u8],
    p: &Parsed,
    local: IpAddr,
    lport: u16,
    backend: IpAddr,
) -> Result<(), FnatRewriteError> {
    let mut q = *p;
    let ok = match (local, backend, p.l3) {
        (IpAddr::V4(l), IpAddr::V4(b), L3Kind::Ipv4) => {
            set_ipv4_addr(frame, &q, Ipv4Field::Source, l).is_ok()
                && set_ipv4_addr(frame, &q, Ipv4Field::Destination, b).is_ok()
        }
        (IpAddr::V6(l), IpAddr::V6(b), L3Kind::Ipv6) => {
            if p.has_hao() {
                // The home address is the pseudo-header source: move it to
                // the local address (fixes the checksum), then blank the
                // option. The IPv6 source then becomes the pseudo-header
                // source, and already holds the value the checksum assumes.
                if set_ipv6_addr(frame, &q, Ipv6Field::HomeAddress, l).is_err()
                    || !neutralise_hao(frame, p)
                {
                    return Err(FnatRewriteError::Failed);
                }
            }
            set_ipv6_addr(frame, &q, Ipv6Field::Source, l).is_ok()
                && set_ipv6_addr(frame, &q, Ipv6Field::Destination, b).is_ok()
        }
        _ => false,
    };
    if !ok || set_src_port(frame, &mut q, lport).is_err() {
        return Err(FnatRewriteError::Failed);
    }
    Ok(())
}

/// Turns the Home Address option (type 201, 16 octets of data) into a PadN
/// option of the same length with zero data (RFC 8200 §4.2).
fn neutralise_hao(frame: &mut [u8], p: &Parsed) -> bool {
    let at = usize::from(p.hao_offset);
    let Some(opt) = at.checked_sub(2).and_then(|s| frame.get_mut(s..at + 16)) else {
        return false;
    };
    if opt[0] != 201 || opt[1] != 16 {
        return false;
    }
    opt[0] = 1;
    opt[2..].fill(0);
    true
}

/// Offset of the IPv6 Next Header field (RFC 8200 §3).
const IPV6_NEXT_HEADER: usize = 6;

/// Length of the type 2 Routing header (RFC 6275 §6.4).
pub const RH2_LEN: usize = 24;

/// Where a reply goes and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    /// The VIP (new source).
    pub vip: IpAddr,
    /// The service port (new source port).
    pub vport: u16,
    /// The client's current address (new destination).
    pub client: IpAddr,
    /// The client's port (new destination port).
    pub cport: u16,
    /// The home address, when the reply needs a type 2 Routing header.
    pub home: Option<Ipv6Addr>,
}

/// Backend -> client on a frame that can grow at the front: source :=
/// VIP:vport, destination := client:cport; with a home address, a type 2
/// Routing header is inserted after the IPv6 header (the reply must have
/// no extension header of its own; otherwise it goes to the home address,
/// which the home agent tunnels to the node).
pub fn rewrite_reply(frame: &mut [u8], p: &Parsed, to: &ReplyTo) -> Result<bool, FnatRewriteError> {
    let mut q = *p;
    let rh2 = to
        .home
        .filter(|_| usize::from(p.l4_offset) == usize::from(p.l3_offset) + ipv6::HEADER_LEN);
    let ok = match (to.vip, to.client, p.l3) {
        (IpAddr::V4(v), IpAddr::V4(c), L3Kind::Ipv4) => {
            set_ipv4_addr(frame, &q, Ipv4Field::Source, v).is_ok()
                && set_ipv4_addr(frame, &q, Ipv4Field::Destination, c).is_ok()
        }
        (IpAddr::V6(v), IpAddr::V6(c), L3Kind::Ipv6) => {
            // With a routing header the home address is the final
            // destination, hence the pseudo-header's (RFC 8200 §8.1).
            let dst = to.home.unwrap_or(c);
            set_ipv6_addr(frame, &q, Ipv6Field::Source, v).is_ok()
                && set_ipv6_addr(frame, &q, Ipv6Field::Destination, dst).is_ok()
        }
        _ => false,
    };
    if !ok
        || set_src_port(frame, &mut q, to.vport).is_err()
        || set_dst_port(frame, &mut q, to.cport).is_err()
    {
        return Err(FnatRewriteError::Failed);
    }
    Ok(rh2.is_some())
}

/// Inserts a type 2 Routing header for `home` after the IPv6 header of a
/// frame that was just grown by [`RH2_LEN`] octets at the front (so the
/// L2 and IPv6 headers sit `RH2_LEN` octets later than `p` says), and sets
/// the destination to the care-of address `coa`. The checksum already
/// covers `home` as final destination ([`rewrite_reply`]).
pub fn insert_rh2(frame: &mut [u8], p: &Parsed, home: Ipv6Addr, coa: Ipv6Addr) -> bool {
    let l3 = usize::from(p.l3_offset);
    let hdr_end = l3 + ipv6::HEADER_LEN;
    if frame.len() < hdr_end + RH2_LEN {
        return false;
    }
    frame.copy_within(RH2_LEN..RH2_LEN + hdr_end, 0);
    let next = frame[l3 + IPV6_NEXT_HEADER];
    let plen = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]);
    let Some(plen) = plen.checked_add(RH2_LEN as u16) else {
        return false;
    };
    frame[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
    frame[l3 + IPV6_NEXT_HEADER] = u8::from(IpProtocol::Routing);
    frame[l3 + ipv6::DST_OFFSET..l3 + ipv6::DST_OFFSET + 16].copy_from_slice(&coa.octets());
    let rh = &mut frame[hdr_end..hdr_end + RH2_LEN];
    rh[0] = next;
    rh[1] = 2; // 8-octet units after the first 8
    rh[2] = 2; // routing type 2
    rh[3] = 1; // segments left
    rh[4..8].fill(0);
    rh[8..].copy_from_slice(&home.octets());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    #[test]
    fn port_ranges_are_disjoint_and_name_their_owner() {
        for workers in [1u8, 2, 3, 4, 7, 16, 64, 255] {
            let mut next = FIRST_PORT as u32;
            for w in 0..workers {
                let (first, len) = port_range(w, workers);
                assert_eq!(u32::from(first), next, "ranges are contiguous");
                assert_eq!(u32::from(len), PORT_SPAN / u32::from(workers));
                next += u32::from(len);
                let last = (u32::from(first) + u32::from(len) - 1) as u16;
                for p in [first, first + len / 2, last] {
                    assert_eq!(port_owner(p, workers), Some(w));
                }
            }
            assert!(next <= 65536);
            assert_eq!(port_owner(FIRST_PORT - 1, workers), None);
            assert_eq!(port_owner(0, workers), None);
            if next < 65536 {
                assert_eq!(port_owner(65535, workers), None, "the unused remainder");
            }
        }
        assert_eq!(port_range(0, 2), (1024, 32256));
        assert_eq!(port_range(1, 2), (33280, 32256));
    }

    fn key(n: u16) -> ConnKey {
        let id = SessionKey::new(3, &Identity::Source("203.0.113.9".parse().unwrap()));
        ConnKey::new(id, IpProtocol::Tcp, n, 80)
    }

    #[test]
    fn connections_open_answer_replies_and_free_their_ports() {
        let mut t = FnatTable::new(1024, 2, 1, 2).unwrap();
        assert_eq!(t.range(), (33280, 32256));
        let backend: IpAddr = "192.0.2.30".parse().unwrap();
        let k = key(40000);
        let h = k.hash(7);
        let r = t.open(h, k, &[1], 0, 10, 0).unwrap();
        let (li, port) = t.local_of(r);
        assert_eq!(
            (li, port),
            (1, 33280),
            "first port of the range, on local 1"
        );
        t.conn_mut(r)
            .unwrap()
            .update("203.0.113.9".parse().unwrap(), false, backend);
        assert_eq!(t.lookup(h, &k, 1), Some(r));
        assert_eq!(t.reply(1, port, IpProtocol::Tcp, backend, 80, 2), Some(r));
        // Wrong local address, port, backend, backend port or protocol.
        assert_eq!(t.reply(0, port, IpProtocol::Tcp, backend, 80, 2), None);
        assert_eq!(t.reply(1, port + 1, IpProtocol::Tcp, backend, 80, 2), None);
        assert_eq!(t.reply(1, 1024, IpProtocol::Tcp, backend, 80, 2), None);
        let other: IpAddr = "192.0.2.31".parse().unwrap();
        assert_eq!(t.reply(1, port, IpProtocol::Tcp, other, 80, 2), None);
        assert_eq!(t.reply(1, port, IpProtocol::Tcp, backend, 81, 2), None);
        assert_eq!(t.reply(1, port, IpProtocol::Udp, backend, 80, 2), None);
        // Replies refresh: at 11 the connection (refreshed at 2) lives.
        assert_eq!(t.expire(11, usize::MAX), 0);
        assert_eq!(t.lookup(h, &k, 11), Some(r));
        // Idle past its lifetime: gone, its port back at the end of the ring.
        assert_eq!(t.expire(22, usize::MAX), 1);
        assert_eq!(t.reply(1, port, IpProtocol::Tcp, backend, 80, 22), None);
        assert_eq!(t.free_ports(1), 32256);
        let r2 = t.open(h, k, &[1], 0, 10, 23).unwrap();
        assert_ne!(t.local_of(r2).1, port, "FIFO: the freed port rests");
    }

    #[test]
    fn exhausted_local_addresses_fall_back_then_refuse() {
        // 255 workers: 252 ports per local address.
        let mut t = FnatTable::new(4096, 2, 0, 255).unwrap();
        let mut on = [0usize; 2];
        for n in 0..504 {
            let k = key(n);
            let r = t.open(k.hash(1), k, &[0, 1], 0, 10, 0).unwrap();
            on[t.local_of(r).0] += 1;
        }
        assert_eq!(on, [252, 252], "the first local address, then the next");
        let k = key(600);
        assert_eq!(
            t.open(k.hash(1), k, &[0, 1], 1, 10, 0),
            Err(OpenError::PortsExhausted)
        );
        assert_eq!(t.len(), 504);
    }

    #[test]
    fn memory_per_connection() {
        assert_eq!(std::mem::size_of::<ConnKey>(), 24);
        assert_eq!(std::mem::size_of::<Conn>(), 72);
        // Forward slot: entry (24-byte key, u32 slot, expiry, lifetime,
        // 16-bit version, flags) plus the stored hash; per local port: the
        // connection slot and its free-ring entry.
        assert_eq!(Table::<ConnKey, ConnRef>::slot_bytes(), 48);
        let per = |t: &FnatTable| t.memory_bytes() as f64 / t.capacity() as f64;
        // Table and port space in proportion (1 worker, 14 local
        // addresses: 903 168 ports, 2^20 forward slots).
        let t = FnatTable::new(1 << 20, 14, 0, 1).unwrap();
        let best = per(&t);
        eprintln!(
            "full NAT: {} connections, {} bytes, {best:.1} bytes per connection",
            t.capacity(),
            t.memory_bytes()
        );
        assert_eq!(t.capacity(), 903_168);
        assert!(best < 140.0, "{best}");
        drop(t);
        // The default (2^20 asked for) with two workers and one local
        // address: 32 256 ports per worker bound the table, whose slot
        // count rounds up to 2^16.
        let t = FnatTable::new(1 << 20, 1, 0, 2).unwrap();
        let small = per(&t);
        eprintln!(
            "full NAT: {} connections, {} bytes, {small:.1} bytes per connection",
            t.capacity(),
            t.memory_bytes()
        );
        assert_eq!(t.capacity(), 32_256);
        assert!(small < 200.0, "{small}");
    }
}
