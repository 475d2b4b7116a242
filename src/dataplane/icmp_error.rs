//! ICMP error messages through the balancer's translations (RFC 5508 §4;
//! formats RFC 792, RFC 4443 §3): finding the packet an error quotes, and
//! rewriting the quote into the packet its sender sent.
//!
//! A router between the appliance and a backend (or the backend itself)
//! that cannot deliver a translated packet — Packet Too Big on a smaller
//! MTU, Fragmentation Needed, Destination Unreachable for a closed UDP
//! port, Time Exceeded — sends the error to the packet's source: a full-NAT
//! local address. The error quotes the translated packet (local
//! address:port → backend:port), which the client never saw and could not
//! match to a socket. [`quote`] locates the quoted IP and transport headers
//! (the quote is untrusted and usually cut short: every offset is checked
//! against the ICMP message's end, extension headers are walked with a
//! bound, and a quote without both ports is refused); the data plane finds
//! the connection from the quoted local port like a reply, and [`rewrite`]
//! puts back the client's address and port as source and the VIP and
//! service port as destination. Every octet changed inside the message is
//! folded into the ICMP checksum incrementally (RFC 1624), and so are the
//! changes this makes to the quoted IPv4 header checksum and to the quoted
//! TCP/UDP checksum when the quote reaches it (RFC 5508 §4.2): the client's
//! stack sees its own packet, consistent to the last checksum it quotes.
//!
//! DNAT's server side needs no state: the error goes to the client itself
//! and quotes client:port → backend:port, so the quoted backend and port
//! name the service and only the quote's destination becomes the VIP.
//!
//! The other direction works the same way: an error from the client side
//! about a reply (VIP:port → client:port) is addressed to the VIP, and the
//! data plane finds the client's session (and, in full NAT, connection)
//! from the quoted destination — its type 2 Routing header's home address
//! for a mobile node — and rewrites the quote into the packet the backend
//! sent.
//!
//! A mobile node that uses a Home Address option is told about its own
//! packet as its transport knows it, from the home address (a router
//! quoting the translated packet saw only the local address and a PadN
//! option), and the error reaches it like replies do, through a type 2
//! Routing header. Those 24 octets must not take an error past the IPv6
//! minimum MTU, so [`cut_v6`] shortens the quote instead (RFC 4443 §2.4).
//!
//! Only the error types that quote the offending packet are translated:
//! ICMPv4 Destination Unreachable (3), Time Exceeded (11) and Parameter
//! Problem (12); ICMPv6 types 1 to 4 (Destination Unreachable, Packet Too
//! Big, Time Exceeded, Parameter Problem). The MTU of Packet Too Big and
//! Fragmentation Needed is passed on unchanged toward clients: full NAT
//! and DNAT add no header to the client's packets. Toward a full-NAT
//! backend it is lowered by the type 2 Routing header the appliance put
//! in a mobile node's reply ([`lower_mtu`]), which the backend's packet
//! did not have.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::checksum::{fold, sum, update_bytes};
use crate::packet::{IpProtocol, L3Kind, Parsed};

/// ICMP header: type, code, checksum, 4 octets (RFC 792, RFC 4443 §2.1).
const ICMP_HEADER_LEN: usize = 8;
/// The IPv6 minimum link MTU (RFC 8200 §5): an ICMPv6 error is never
/// larger, so that it reaches its destination whatever the path (RFC 4443
/// §2.4 (c)).
pub const IPV6_MIN_MTU: usize = 1280;
/// IPv6 header length (RFC 8200 §3).
const IPV6_HEADER_LEN: usize = 40;
/// Most IPv6 extension headers walked inside a quote.
const MAX_QUOTED_EXT: usize = 8;

/// True when the ICMP or ICMPv6 message `p` describes is an error that
/// quotes the packet which caused it.
#[inline]
pub fn is_error(frame: &[u8], p: &Parsed) -> bool {
    // The protocol first: this runs on every client packet, nearly all TCP
    // or UDP.
    let v4 = match (p.protocol, p.l3) {
        (IpProtocol::Icmp, L3Kind::Ipv4) => true,
        (IpProtocol::Icmpv6, L3Kind::Ipv6) => false,
        _ => return false,
    };
    if !p.has_l4() {
        return false;
    }
    match frame.get(usize::from(p.l4_offset)) {
        Some(&ty) if v4 => matches!(ty, 3 | 11 | 12),
        Some(&ty) => (1..=4).contains(&ty),
        None => false,
    }
}

/// Where the quoted packet of an ICMP error sits in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quote {
    /// Offset of the ICMP checksum.
    icmp_checksum: usize,
    /// End of the ICMP message (the outer IP packet's end).
    end: usize,
    /// The quoted packet is IPv4.
    v4: bool,
    /// Offset of the quoted IP header.
    ip: usize,
    /// Offset of the quoted TCP or UDP header (at least its ports present).
    l4: usize,
    /// The quoted transport protocol (TCP or UDP).
    protocol: IpProtocol,
    /// Offset of the home address in a quoted type 2 Routing header (a
    /// reply the appliance sent to a mobile node), 0 if none.
    rh2_home: usize,
}

impl Quote {
    /// The quoted transport protocol (TCP or UDP).
    pub fn protocol(&self) -> IpProtocol {
        self.protocol
    }

    /// The quoted packet's source address.
    pub fn src(&self, frame: &[u8]) -> IpAddr {
        self.addr(frame, false)
    }

    /// The quoted packet's destination address.
    pub fn dst(&self, frame: &[u8]) -> IpAddr {
        self.addr(frame, true)
    }

    /// The quoted source port.
    pub fn src_port(&self, frame: &[u8]) -> u16 {
        u16::from_be_bytes([frame[self.l4], frame[self.l4 + 1]])
    }

    /// The quoted destination port.
    pub fn dst_port(&self, frame: &[u8]) -> u16 {
        u16::from_be_bytes([frame[self.l4 + 2], frame[self.l4 + 3]])
    }

    /// The home address of a quoted type 2 Routing header (RFC 6275 §6.4):
    /// the final destination of a packet sent to a mobile node.
    pub fn rh2_home(&self, frame: &[u8]) -> Option<Ipv6Addr> {
        if self.rh2_home == 0 {
            return None;
        }
        let mut a = [0u8; 16];
        a.copy_from_slice(frame.get(self.rh2_home..self.rh2_home + 16)?);
        Some(Ipv6Addr::from(a))
    }

    fn addr_offset(&self, dst: bool) -> usize {
        match (self.v4, dst) {
            (true, false) => self.ip + 12,
            (true, true) => self.ip + 16,
            (false, false) => self.ip + 8,
            (false, true) => self.ip + 24,
        }
    }

    fn addr(&self, frame: &[u8], dst: bool) -> IpAddr {
        let o = self.addr_offset(dst);
        if self.v4 {
            IpAddr::V4(Ipv4Addr::new(
                frame[o],
                frame[o + 1],
                frame[o + 2],
                frame[o + 3],
            ))
        } else {
            let mut a = [0u8; 16];
            a.copy_from_slice(&frame[o..o + 16]);
            IpAddr::V6(Ipv6Addr::from(a))
        }
    }

    /// Offset of the quoted transport checksum, if the quote reaches it.
    fn l4_checksum(&self) -> Option<usize> {
        let at = self.l4
            + match self.protocol {
                IpProtocol::Tcp => 16,
                _ => 6,
            };
        (at + 2 <= self.end).then_some(at)
    }
}

/// Locates the quoted IP header and TCP/UDP ports of the ICMP error `p`
/// describes ([`is_error`] must hold). `None` when the quote is too short
/// for both ports, is not IPv4 or IPv6 of the outer packet's family,
/// carries another transport protocol, is a non-first fragment, or has
/// more than 8 extension headers before its transport header.
pub fn quote(frame: &[u8], p: &Parsed) -> Option<Quote> {
    let icmp = usize::from(p.l4_offset);
    let end = usize::from(p.l3_end).min(frame.len());
    let ip = icmp + ICMP_HEADER_LEN;
    let v4 = p.l3 == L3Kind::Ipv4;
    let mut rh2_home = 0;
    let (l4, nh) = if v4 {
        let h = frame.get(ip..ip + 20).filter(|_| ip + 20 <= end)?;
        let ihl = usize::from(h[0] & 0x0f) * 4;
        // Version 4, a whole header, not a non-first fragment.
        if h[0] >> 4 != 4 || ihl < 20 || u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0 {
            return None;
        }
        (ip + ihl, h[9])
    } else {
        let h = frame.get(ip..ip + 40).filter(|_| ip + 40 <= end)?;
        if h[0] >> 4 != 6 {
            return None;
        }
        let mut nh = h[6];
        let mut pos = ip + 40;
        let mut walked = 0;
        loop {
            match nh {
                6 | 17 => break,
                // Hop-by-Hop, Routing, Destination Options: length in
                // 8-octet units after the first 8.
                0 | 43 | 60 => {
                    let b = frame.get(pos..pos + 4).filter(|_| pos + 4 <= end)?;
                    // Type 2 Routing header: 24 octets, the home address
                    // at 8 (RFC 6275 §6.4).
                    if nh == 43 && b[1] == 2 && b[2] == 2 && pos + 24 <= end {
                        rh2_home = pos + 8;
                    }
                    nh = b[0];
                    pos += (usize::from(b[1]) + 1) * 8;
                }
                // Fragment: a non-first fragment has no ports.
                44 => {
                    let b = frame.get(pos..pos + 8).filter(|_| pos + 8 <= end)?;
                    if u16::from_be_bytes([b[2], b[3]]) & 0xfff8 != 0 {
                        return None;
                    }
                    nh = b[0];
                    pos += 8;
                }
                _ => return None,
            }
            walked += 1;
            if walked > MAX_QUOTED_EXT {
                return None;
            }
        }
        (pos, nh)
    };
    if l4 + 4 > end || l4 + 4 > frame.len() {
        return None;
    }
    let protocol = match nh {
        6 => IpProtocol::Tcp,
        17 => IpProtocol::Udp,
        _ => return None,
    };
    Some(Quote {
        icmp_checksum: icmp + 2,
        end,
        v4,
        ip,
        l4,
        protocol,
        rh2_home,
    })
}

/// Rewrites the quoted packet to `src`:`sport` → `dst`:`dport` (the
/// packet as its sender saw it), keeping the quoted IPv4 header checksum,
/// the quoted TCP/UDP checksum (when quoted) and the ICMP checksum right. A
/// changed destination also replaces the home address of a quoted type 2
/// Routing header. The outer header is the caller's. `false` if an address
/// is of the other family than the quote (nothing is changed then).
pub fn rewrite(
    frame: &mut [u8],
    q: &Quote,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
) -> bool {
    if src.is_ipv4() != q.v4 || dst.is_ipv4() != q.v4 {
        return false;
    }
    for (is_dst, a) in [(false, src), (true, dst)] {
        if a == q.addr(frame, is_dst) {
            continue;
        }
        let (buf, n) = octets(a);
        let at = q.addr_offset(is_dst);
        let Some(old) = write_in_message(frame, q, at, &buf[..n]) else {
            return false;
        };
        // The address is in the quoted IPv4 header's checksum and in the
        // quoted transport checksum's pseudo-header...
        if q.v4 {
            patch_checksum(frame, q, Some(q.ip + 10), &old[..n], &buf[..n], false);
        }
        if is_dst && q.rh2_home != 0 {
            // ...unless a type 2 Routing header makes its home address the
            // final destination, hence the pseudo-header's (RFC 8200 §8.1):
            // the new destination replaces that too, so the quote stays one
            // packet to one address.
            let Some(old) = write_in_message(frame, q, q.rh2_home, &buf[..n]) else {
                return false;
            };
            patch_checksum(frame, q, q.l4_checksum(), &old[..n], &buf[..n], true);
        } else {
            patch_checksum(frame, q, q.l4_checksum(), &old[..n], &buf[..n], true);
        }
    }
    for (off, port) in [(0, sport), (2, dport)] {
        let new = port.to_be_bytes();
        let Some(old) = write_in_message(frame, q, q.l4 + off, &new) else {
            return false;
        };
        patch_checksum(frame, q, q.l4_checksum(), &old[..2], &new, true);
    }
    true
}

/// Cuts the last `cut` octets off the ICMPv6 error `q` was found in, whose
/// IPv6 header at `l3` is followed directly by the ICMPv6 message: the
/// payload length shrinks with it, and the removed octets and the shorter
/// upper-layer length leave the ICMPv6 checksum incrementally (RFC 1624;
/// the pseudo-header, RFC 4443 §2.3). Returns the packet's new end, after
/// which the caller shortens the frame; `None` (nothing changed) for an
/// IPv4 quote, another layout, or a cut that would reach the quoted ports.
/// `q` describes the uncut message: find the quote again to read it after.
pub fn cut_v6(frame: &mut [u8], q: &Quote, l3: usize, cut: usize) -> Option<usize> {
    let icmp = q.icmp_checksum - 2;
    let new_end = q.end.checked_sub(cut)?;
    if q.v4
        || icmp != l3 + IPV6_HEADER_LEN
        || frame.get(l3 + 6) != Some(&58)
        || new_end < q.l4 + 4
        || q.end > frame.len()
    {
        return None;
    }
    // The removed octets' share of the sum, in the message's own 16-bit
    // words: after an odd number of kept octets the first removed one is
    // the low half of a word whose high half stays.
    let from = new_end - (new_end - icmp) % 2;
    let removed = fold(sum(0, &frame[from..q.end]));
    let kept = fold(sum(0, &frame[from..new_end]));
    let (old_len, new_len) = ((q.end - icmp) as u16, (new_end - icmp) as u16);
    let c = q.icmp_checksum;
    let check = u16::from_be_bytes([frame[c], frame[c + 1]]);
    let acc = u32::from(!check)
        + u32::from(!removed)
        + u32::from(kept)
        + u32::from(!old_len)
        + u32::from(new_len);
    frame[c..c + 2].copy_from_slice(&(!fold(acc)).to_be_bytes());
    frame[l3 + 4..l3 + 6].copy_from_slice(&new_len.to_be_bytes());
    Some(new_end)
}

/// Lowers the MTU of an ICMPv6 Packet Too Big (RFC 4443 §3.2) by `by`
/// octets, folding the change into the checksum: the packet it quotes
/// carried `by` octets the appliance added, which its sender must leave
/// room for. Nothing happens to another message. `false` if the message
/// is too short to hold its MTU.
pub fn lower_mtu(frame: &mut [u8], q: &Quote, by: u32) -> bool {
    let icmp = q.icmp_checksum - 2;
    if q.v4 || frame.get(icmp) != Some(&2) {
        return true;
    }
    let Some(b) = frame.get(icmp + 4..icmp + 8) else {
        return false;
    };
    let mtu = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    write_in_message(frame, q, icmp + 4, &mtu.saturating_sub(by).to_be_bytes()).is_some()
}

fn octets(a: IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match a {
        IpAddr::V4(v) => {
            b[..4].copy_from_slice(&v.octets());
            (b, 4)
        }
        IpAddr::V6(v) => (v.octets(), 16),
    }
}

/// Writes `new` at `at` inside the ICMP message, folding the change into
/// the ICMP checksum; returns the old octets.
fn write_in_message(frame: &mut [u8], q: &Quote, at: usize, new: &[u8]) -> Option<[u8; 16]> {
    let n = new.len();
    if n > 16 || at + n > q.end || q.icmp_checksum + 2 > frame.len() {
        return None;
    }
    let mut old = [0u8; 16];
    old[..n].copy_from_slice(frame.get(at..at + n)?);
    frame[at..at + n].copy_from_slice(new);
    let c = q.icmp_checksum;
    let sum = update_bytes(u16::from_be_bytes([frame[c], frame[c + 1]]), &old[..n], new);
    frame[c..c + 2].copy_from_slice(&sum.to_be_bytes());
    Some(old)
}

/// Folds the change `old` → `new` into the checksum at `at` (when the
/// quote reaches it), itself a change inside the ICMP message. A quoted UDP
/// checksum of zero over IPv4 means "none" and stays zero; a computed zero
/// is sent as all ones (RFC 768).
fn patch_checksum(
    frame: &mut [u8],
    q: &Quote,
    at: Option<usize>,
    old: &[u8],
    new: &[u8],
    transport: bool,
) {
    let Some(at) = at.filter(|a| a + 2 <= q.end && a + 2 <= frame.len()) else {
        return;
    };
    let udp = transport && q.protocol == IpProtocol::Udp;
    let cur = u16::from_be_bytes([frame[at], frame[at + 1]]);
    if udp && cur == 0 && q.v4 {
        return;
    }
    let mut v = update_bytes(cur, old, new);
    if udp && v == 0 {
        v = 0xffff;
    }
    let _ = write_in_message(frame, q, at, &v.to_be_bytes());
}

/// An ICMP error about a packet the appliance encapsulated for DSR (RFC
/// 2473 §8, RFC 2003 §4): a router between the appliance and a backend
/// could not deliver the outer packet and told its source, the server-side
/// address. The quote holds the outer header and, behind it, the client's
/// own packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelQuote {
    /// The outer header's source (the appliance) and destination (the
    /// backend).
    pub outer_src: IpAddr,
    /// The backend the packet was encapsulated to.
    pub backend: IpAddr,
    /// The client's packet: its source (the client), destination (the VIP).
    pub client: IpAddr,
    /// The VIP the client sent to.
    pub vip: IpAddr,
    /// Where the client's packet starts in the frame, and where the quote
    /// ends.
    pub inner: std::ops::Range<usize>,
    /// The client's packet is IPv4 with Don't Fragment set (always false
    /// for IPv6, which routers never fragment).
    pub inner_df: bool,
    /// For a Packet Too Big / Fragmentation Needed: the MTU the router
    /// reported for the outer packet (a zero next-hop MTU from a router
    /// older than RFC 1191 becomes the plateau below the quoted length,
    /// RFC 1191 §5); `None` for the other errors.
    pub too_big: Option<u32>,
}

/// RFC 1191 §7's plateau table, for a Fragmentation Needed without an MTU.
const MTU_PLATEAUS: [u32; 11] = [
    65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68,
];

/// Source and destination of the whole IPv4 (`v4`) or IPv6 header at the
/// start of `h` (callers have checked its length).
fn header_addrs(h: &[u8], v4: bool) -> (IpAddr, IpAddr) {
    if v4 {
        (
            IpAddr::V4(Ipv4Addr::from(crate::packet::bytes4(h, 12))),
            IpAddr::V4(Ipv4Addr::from(crate::packet::bytes4(h, 16))),
        )
    } else {
        (
            IpAddr::V6(Ipv6Addr::from(crate::packet::bytes16(h, 8))),
            IpAddr::V6(Ipv6Addr::from(crate::packet::bytes16(h, 24))),
        )
    }
}

/// Finds the client's packet inside an ICMP error about an encapsulated
/// (IPv6-in-IPv6, IPv4-in-IPv4, or across families) packet, or `None` when
/// the quote is not one: the quoted outer header must come right after
/// the ICMP header, be of the error's family, carry IPv6 (41) or IPv4 (4)
/// directly (the appliance adds no extension headers), and the inner
/// header must be whole. Every offset is checked against the message's end.
pub fn tunnel_quote(frame: &[u8], p: &Parsed) -> Option<TunnelQuote> {
    let icmp = usize::from(p.l4_offset);
    let end = usize::from(p.l3_end).min(frame.len());
    let ip = icmp + ICMP_HEADER_LEN;
    let v4 = p.l3 == L3Kind::Ipv4;
    let (ty, code) = (*frame.get(icmp)?, *frame.get(icmp + 1)?);
    let h = frame.get(ip..end)?;
    let (inner_proto, outer_len, inner) = if v4 {
        let ihl = usize::from(*h.first()? & 0x0f) * 4;
        if h.len() < 20 || h[0] >> 4 != 4 || ihl < 20 || h.len() < ihl {
            return None;
        }
        (h[9], u32::from(u16::from_be_bytes([h[2], h[3]])), ip + ihl)
    } else {
        if h.len() < IPV6_HEADER_LEN || h[0] >> 4 != 6 {
            return None;
        }
        let len = 40 + u32::from(u16::from_be_bytes([h[4], h[5]]));
        (h[6], len, ip + IPV6_HEADER_LEN)
    };
    let (outer_src, backend) = header_addrs(h, v4);
    let q = frame.get(inner..end)?;
    let ((client, vip), inner_df) = match inner_proto {
        41 if q.len() >= IPV6_HEADER_LEN && q[0] >> 4 == 6 => (header_addrs(q, false), false),
        4 if q.len() >= 20 && q[0] >> 4 == 4 && usize::from(q[0] & 0x0f) * 4 >= 20 => {
            (header_addrs(q, true), q[6] & 0x40 != 0)
        }
        _ => return None,
    };
    let too_big = match (v4, ty, code) {
        (true, 3, 4) => {
            let mtu = u32::from(u16::from_be_bytes([frame[icmp + 6], frame[icmp + 7]]));
            Some(if mtu != 0 {
                mtu
            } else {
                MTU_PLATEAUS
                    .iter()
                    .copied()
                    .find(|m| *m < outer_len)
                    .unwrap_or(68)
            })
        }
        (false, 2, _) => Some(u32::from_be_bytes([
            frame[icmp + 4],
            frame[icmp + 5],
            frame[icmp + 6],
            frame[icmp + 7],
        ])),
        _ => None,
    };
    Some(TunnelQuote {
        outer_src,
        backend,
        client,
        vip,
        inner: inner..end,
        inner_df,
        too_big,
    })
}

/// Frames and checks shared with the data plane's tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::packet::build;
    use crate::packet::checksum::{checksum, fold, pseudo_header_v4, pseudo_header_v6, sum};
    use crate::packet::{parse, ParseConfig};

    /// An ICMP error (type `ty`) from `router` to `to`, quoting `quoted`
    /// (an IP packet), cut to `keep` octets of quote.
    pub(crate) fn error_frame(
        v4: bool,
        ty: u8,
        router: &str,
        to: &str,
        quoted: &[u8],
        keep: usize,
    ) -> Vec<u8> {
        let q = &quoted[..keep.min(quoted.len())];
        let mut icmp = vec![ty, if v4 { 4 } else { 0 }, 0, 0, 0, 0, 0x05, 0x00];
        icmp.extend_from_slice(q);
        if v4 {
            let c = checksum(&icmp);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
            ip.extend_from_slice(&router.parse::<Ipv4Addr>().unwrap().octets());
            ip.extend_from_slice(&to.parse::<Ipv4Addr>().unwrap().octets());
            let total = (20 + icmp.len()) as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            let c = checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            ip.extend_from_slice(&icmp);
            build::ethernet(crate::packet::ethernet::EtherType::Ipv4, &[], &ip)
        } else {
            let (s, d): (Ipv6Addr, Ipv6Addr) = (router.parse().unwrap(), to.parse().unwrap());
            let ph = pseudo_header_v6(s, d, IpProtocol::Icmpv6, icmp.len() as u32);
            let c = !fold(sum(ph, &icmp));
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            let mut ip = vec![0x60, 0, 0, 0, 0, 0, 58, 64];
            ip[4..6].copy_from_slice(&(icmp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&s.octets());
            ip.extend_from_slice(&d.octets());
            ip.extend_from_slice(&icmp);
            build::ethernet(crate::packet::ethernet::EtherType::Ipv6, &[], &ip)
        }
    }

    /// The ICMP checksum, the quoted IPv4 header checksum and (with a whole
    /// quote) the quoted transport checksum all verify from scratch.
    pub(crate) fn assert_checksums(f: &[u8], v4: bool, whole: bool) {
        let p = parse(f, &ParseConfig::new()).unwrap();
        let o = usize::from(p.l4_offset);
        let msg = &f[o..usize::from(p.l3_end)];
        if v4 {
            assert_eq!(checksum(msg), 0, "ICMP checksum");
            let ihl = usize::from(msg[8] & 0x0f) * 4;
            assert_eq!(checksum(&msg[8..8 + ihl]), 0, "quoted IPv4 header checksum");
            if whole {
                let q = &msg[8..];
                let (s, d) = (
                    Ipv4Addr::new(q[12], q[13], q[14], q[15]),
                    Ipv4Addr::new(q[16], q[17], q[18], q[19]),
                );
                let l4 = &q[ihl..];
                let ph = pseudo_header_v4(s, d, IpProtocol::from(q[9]), l4.len() as u32);
                assert_eq!(fold(sum(ph, l4)), 0xffff, "quoted transport checksum");
            }
        } else {
            let l3 = usize::from(p.l3_offset);
            let s: [u8; 16] = f[l3 + 8..l3 + 24].try_into().unwrap();
            // Through a type 2 Routing header, to its home address.
            let d = if p.has_rh2() {
                usize::from(p.rh2_offset)
            } else {
                l3 + 24
            };
            let d: [u8; 16] = f[d..d + 16].try_into().unwrap();
            let ph = pseudo_header_v6(s.into(), d.into(), IpProtocol::Icmpv6, msg.len() as u32);
            assert_eq!(fold(sum(ph, msg)), 0xffff, "ICMPv6 checksum");
            if whole {
                let q = &msg[8..];
                let mut qs: [u8; 16] = q[8..24].try_into().unwrap();
                let mut qd: [u8; 16] = q[24..40].try_into().unwrap();
                // At most one Destination Options or type 2 Routing header
                // in these quotes; with the latter the home address is the
                // pseudo-header destination (RFC 8200 §8.1), a Home Address
                // option's the source (RFC 6275 §6.3).
                let (nh, at) = match q[6] {
                    60 => {
                        let end = 40 + (usize::from(q[41]) + 1) * 8;
                        let mut o = 42;
                        while o + 2 <= end {
                            match q[o] {
                                0 => o += 1,
                                201 => {
                                    qs = q[o + 2..o + 18].try_into().unwrap();
                                    break;
                                }
                                _ => o += 2 + usize::from(q[o + 1]),
                            }
                        }
                        (q[40], end)
                    }
                    43 => {
                        qd = q[48..64].try_into().unwrap();
                        (q[40], 64)
                    }
                    nh => (nh, 40),
                };
                let l4 = &q[at..];
                let ph =
                    pseudo_header_v6(qs.into(), qd.into(), IpProtocol::from(nh), l4.len() as u32);
                assert_eq!(fold(sum(ph, l4)), 0xffff, "quoted transport checksum");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{assert_checksums, error_frame};
    use super::*;
    use crate::packet::build::{self, L4};
    use crate::packet::{parse, ParseConfig};

    #[test]
    fn ipv4_quotes_are_found_and_translated_with_valid_checksums() {
        for (l4, whole) in [
            (L4::Udp(33000, 9, vec![1, 2, 3, 4, 5]), true),
            (L4::Tcp(33001, 80, 7, 0x18), true),
            (L4::Tcp(33001, 80, 7, 0x18), false),
        ] {
            let sent = build::ipv4(
                "192.0.2.5".parse().unwrap(),
                "192.0.2.30".parse().unwrap(),
                &l4,
            );
            let keep = if whole { sent.len() } else { 28 };
            let mut f = error_frame(true, 3, "192.0.2.254", "192.0.2.5", &sent, keep);
            let p = parse(&f, &ParseConfig::new()).unwrap();
            assert!(is_error(&f, &p));
            let q = quote(&f, &p).expect("quote");
            assert_eq!(q.src(&f), "192.0.2.5".parse::<IpAddr>().unwrap());
            assert_eq!(q.dst(&f), "192.0.2.30".parse::<IpAddr>().unwrap());
            let sport = q.src_port(&f);
            assert!(sport == 33000 || sport == 33001);
            assert!(rewrite(
                &mut f,
                &q,
                "203.0.113.7".parse().unwrap(),
                40000,
                "198.51.100.90".parse().unwrap(),
                8080
            ));
            let q2 = quote(&f, &parse(&f, &ParseConfig::new()).unwrap()).unwrap();
            assert_eq!(q2.src(&f), "203.0.113.7".parse::<IpAddr>().unwrap());
            assert_eq!(q2.dst(&f), "198.51.100.90".parse::<IpAddr>().unwrap());
            assert_eq!((q2.src_port(&f), q2.dst_port(&f)), (40000, 8080));
            assert_checksums(&f, true, whole);
        }
    }

    #[test]
    fn ipv6_quotes_walk_extension_headers_and_translate() {
        // What full NAT sends for a mobile node: its Home Address option
        // turned into PadN, then TCP.
        let mut padn = vec![1u8, 2, 0, 0, 1, 16];
        padn.extend_from_slice(&[0; 16]);
        for (exts, l4) in [
            (vec![], L4::Udp(40000, 53, vec![9; 11])),
            (
                vec![build::Ext::DestOpts(padn.clone())],
                L4::Tcp(40001, 80, 5, 0x10),
            ),
        ] {
            let sent = build::ipv6(
                build::addr6("2001:db8:1::1"),
                build::addr6("2001:db8:1::10"),
                &exts,
                &l4,
            );
            let mut f = error_frame(
                false,
                2,
                "2001:db8:1::fe",
                "2001:db8:1::1",
                &sent,
                sent.len(),
            );
            let p = parse(&f, &ParseConfig::new()).unwrap();
            assert!(is_error(&f, &p));
            let q = quote(&f, &p).expect("quote");
            assert_eq!(q.dst(&f), "2001:db8:1::10".parse::<IpAddr>().unwrap());
            assert!(rewrite(
                &mut f,
                &q,
                "2001:db8:100::1".parse().unwrap(),
                44000,
                "2001:db8:ffff::90".parse().unwrap(),
                80
            ));
            let q2 = quote(&f, &parse(&f, &ParseConfig::new()).unwrap()).unwrap();
            assert_eq!(q2.src(&f), "2001:db8:100::1".parse::<IpAddr>().unwrap());
            assert_eq!((q2.src_port(&f), q2.dst_port(&f)), (44000, 80));
            assert_checksums(&f, false, true);
        }
    }

    #[test]
    fn ipv6_errors_are_cut_with_a_valid_checksum() {
        let sent = build::ipv6(
            build::addr6("2001:db8:1::1"),
            build::addr6("2001:db8:1::10"),
            &[],
            &L4::Udp(40000, 53, (0..=255).cycle().take(300).collect()),
        );
        // Even and odd messages, even and odd cuts, down to the ports.
        for keep in [200, 201] {
            for cut in [0, 1, 2, 23, 24, keep - 44] {
                let mut f = error_frame(false, 2, "2001:db8:1::fe", "2001:db8:1::1", &sent, keep);
                let p = parse(&f, &ParseConfig::new()).unwrap();
                let q = quote(&f, &p).unwrap();
                let end = cut_v6(&mut f, &q, 14, cut).expect("cut");
                assert_eq!(end, f.len() - cut);
                f.truncate(end);
                let p = parse(&f, &ParseConfig::new()).expect("still parses");
                assert_eq!(usize::from(p.l3_end), end, "payload length follows");
                assert!(quote(&f, &p).is_some());
                assert_checksums(&f, false, false);
            }
            // Not past the quoted ports.
            let mut f = error_frame(false, 2, "2001:db8:1::fe", "2001:db8:1::1", &sent, keep);
            let before = f.clone();
            let q = quote(&f, &parse(&f, &ParseConfig::new()).unwrap()).unwrap();
            assert_eq!(cut_v6(&mut f, &q, 14, keep - 43), None);
            assert_eq!(f, before);
        }
    }

    /// Every cut of a quoted tunnel packet, each of the four family
    /// pairs: found once both headers are whole, never a panic; a plain
    /// packet's quote is no tunnel quote.
    #[test]
    fn tunnel_quotes_need_both_headers_and_never_panic() {
        let inner6 = build::ipv6(
            build::addr6("2001:db8:c0::5"),
            build::addr6("2001:db8:ffff::82"),
            &[],
            &L4::Udp(1, 2, vec![7; 30]),
        );
        let inner4 = build::ipv4(
            "203.0.113.9".parse().unwrap(),
            "198.51.100.82".parse().unwrap(),
            &L4::Udp(1, 2, vec![7; 30]),
        );
        for (outer_v4, inner) in [
            (false, &inner6),
            (false, &inner4),
            (true, &inner6),
            (true, &inner4),
        ] {
            let proto = if inner[0] >> 4 == 6 { 41 } else { 4 };
            let outer = if outer_v4 {
                build::ipv4(
                    "192.0.2.1".parse().unwrap(),
                    "192.0.2.40".parse().unwrap(),
                    &L4::Raw(proto, inner.clone()),
                )
            } else {
                build::ipv6(
                    build::addr6("2001:db8:1::1"),
                    build::addr6("2001:db8:1::20"),
                    &[],
                    &L4::Raw(proto, inner.clone()),
                )
            };
            let (router, to) = if outer_v4 {
                ("192.0.2.254", "192.0.2.1")
            } else {
                ("2001:db8:1::fe", "2001:db8:1::1")
            };
            let ty = if outer_v4 { 3 } else { 2 };
            let outer_header = if outer_v4 { 20 } else { 40 };
            let whole = outer_header + if proto == 41 { 40 } else { 20 };
            for keep in 0..=outer.len() {
                let f = error_frame(outer_v4, ty, router, to, &outer, keep);
                let p = parse(&f, &ParseConfig::new()).unwrap();
                let t = tunnel_quote(&f, &p);
                assert_eq!(t.is_some(), keep >= whole, "{outer_v4} {proto} {keep}");
                if let Some(t) = t {
                    assert_eq!(t.outer_src, to.parse::<IpAddr>().unwrap());
                    assert_eq!(t.vip.is_ipv6(), proto == 41);
                    assert_eq!(t.too_big, Some(1280), "error_frame's MTU");
                    assert_eq!(&f[t.inner.clone()], &inner[..keep - outer_header]);
                }
            }
        }
        // A plain packet's error is not about a tunnel.
        let f = error_frame(false, 2, "2001:db8:1::fe", "2001:db8:c0::5", &inner6, 200);
        assert_eq!(
            tunnel_quote(&f, &parse(&f, &ParseConfig::new()).unwrap()),
            None
        );
    }

    #[test]
    fn unusable_quotes_are_refused_and_never_panic() {
        let sent = build::ipv4(
            "192.0.2.5".parse().unwrap(),
            "192.0.2.30".parse().unwrap(),
            &L4::Tcp(1, 2, 3, 4),
        );
        // Echo requests are not errors.
        let f = error_frame(true, 8, "192.0.2.254", "192.0.2.5", &sent, 28);
        assert!(!is_error(&f, &parse(&f, &ParseConfig::new()).unwrap()));
        // Every cut of the quote, v4 and v6: refused below the ports,
        // found from there, never a panic; a rewrite keeps within the quote.
        for keep in 0..sent.len() {
            let mut f = error_frame(true, 11, "192.0.2.254", "192.0.2.5", &sent, keep);
            let p = parse(&f, &ParseConfig::new()).unwrap();
            let q = quote(&f, &p);
            assert_eq!(q.is_some(), keep >= 24, "{keep}");
            if let Some(q) = q {
                assert!(rewrite(
                    &mut f,
                    &q,
                    "10.0.0.1".parse().unwrap(),
                    1,
                    "10.0.0.2".parse().unwrap(),
                    2
                ));
                assert_checksums(&f, true, false);
            }
        }
        let sent6 = build::ipv6(
            build::addr6("2001:db8:1::1"),
            build::addr6("2001:db8:1::10"),
            &[],
            &L4::Udp(1, 2, vec![]),
        );
        for keep in 0..sent6.len() {
            let f = error_frame(false, 1, "2001:db8:1::fe", "2001:db8:1::1", &sent6, keep);
            let p = parse(&f, &ParseConfig::new()).unwrap();
            assert_eq!(quote(&f, &p).is_some(), keep >= 44, "{keep}");
        }
        // Another transport, a non-first fragment, the other family.
        let mut esp = build::ipv4(
            "192.0.2.5".parse().unwrap(),
            "192.0.2.30".parse().unwrap(),
            &L4::Esp(5, 6),
        );
        let f = error_frame(true, 3, "192.0.2.254", "192.0.2.5", &esp, 28);
        assert!(quote(&f, &parse(&f, &ParseConfig::new()).unwrap()).is_none());
        esp[6] = 0x00;
        esp[7] = 0x10;
        let mut frag = sent.clone();
        frag[7] = 0x10;
        let f = error_frame(true, 3, "192.0.2.254", "192.0.2.5", &frag, 28);
        assert!(quote(&f, &parse(&f, &ParseConfig::new()).unwrap()).is_none());
        let mut f = error_frame(true, 3, "192.0.2.254", "192.0.2.5", &sent, 28);
        let q = quote(&f, &parse(&f, &ParseConfig::new()).unwrap()).unwrap();
        let before = f.clone();
        assert!(!rewrite(
            &mut f,
            &q,
            "2001:db8::1".parse().unwrap(),
            1,
            "10.0.0.2".parse().unwrap(),
            2
        ));
        assert_eq!(f, before);
    }
}
