//! In-place rewriting of addresses and ports with incremental checksum
//! updates (RFC 1624), and the outer headers of the encapsulating modes.
//!
//! Every function takes the frame and the [`Parsed`] summary the classifier
//! produced for that very frame, so it knows where the headers are and which
//! addresses are in the L4 pseudo-header (RFC 8200 §8.1): rewriting the IPv6
//! source of a packet with a Home Address option leaves the TCP/UDP checksum
//! alone (the home address is the pseudo-header source, RFC 6275 §6.3),
//! while rewriting the home address itself fixes it. Checksums fixed: the
//! IPv4 header checksum; TCP, UDP (a zero IPv4 UDP checksum stays zero, a
//! computed zero becomes 0xffff, RFC 768), ICMPv6 and Mobility Header
//! checksums. ICMPv4 has no pseudo-header and needs nothing. A non-first
//! fragment has no L4 header, so only its IP header changes; the checksum in
//! a first fragment covers the whole datagram but is linear, so the
//! incremental update is still right.

use super::checksum::{update16, update_words};
use super::ipv4::Ipv4Repr;
use super::ipv6::Ipv6Repr;
use super::parse::{L3Kind, Parsed};
use super::{be16, ipv4, ipv6, IpProtocol};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a rewrite could not be applied (a caller bug, not bad input: the
/// summary does not describe a packet that has the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The packet is not IPv4.
    #[error("packet is not IPv4")]
    NotIpv4,
    /// The packet is not IPv6.
    #[error("packet is not IPv6")]
    NotIpv6,
    /// The packet has no such address (no HAO / no type 2 Routing header).
    #[error("packet has no such address field")]
    NoSuchAddress,
    /// The packet has no TCP/UDP header to carry ports.
    #[error("packet has no TCP or UDP header")]
    NoPorts,
    /// The frame is shorter than the summary says (summary from another frame).
    #[error("frame does not match its parse summary")]
    FrameMismatch,
    /// The output buffer is too small for the outer header.
    #[error("buffer too small for the outer header")]
    BufferTooSmall,
}

/// Which IPv6 address field to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv6Field {
    /// The IPv6 header's source (the care-of address for a mobile node).
    Source,
    /// The IPv6 header's destination.
    Destination,
    /// The Home Address option's address.
    HomeAddress,
    /// The type 2 Routing header's home address.
    RoutingHomeAddress,
}

/// Which IPv4 address field to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Field {
    /// Source address.
    Source,
    /// Destination address.
    Destination,
}

/// Offset of the L4 checksum that covers the pseudo-header, and whether it is
/// UDP (for the zero-checksum rules).
#[inline]
fn l4_checksum(p: &Parsed) -> Option<(usize, bool)> {
    if !p.has_l4() {
        return None;
    }
    let o = usize::from(p.l4_offset);
    match p.protocol {
        IpProtocol::Tcp => Some((o + super::tcp::CHECKSUM_OFFSET, false)),
        IpProtocol::Udp => Some((o + super::udp::CHECKSUM_OFFSET, true)),
        IpProtocol::Icmpv6 if p.l3 == L3Kind::Ipv6 => {
            Some((o + super::icmpv6::CHECKSUM_OFFSET, false))
        }
        IpProtocol::Mobility if p.l3 == L3Kind::Ipv6 => {
            Some((o + super::mobility::CHECKSUM_OFFSET, false))
        }
        _ => None,
    }
}

#[inline(always)]
fn fix_l4<const N: usize>(
    frame: &mut [u8],
    p: &Parsed,
    old: &[u8; N],
    new: &[u8; N],
) -> Result<(), RewriteError> {
    let Some((c, udp)) = l4_checksum(p) else {
        return Ok(());
    };
    if c + 2 > frame.len() {
        return Err(RewriteError::FrameMismatch);
    }
    let cur = be16(frame, c);
    if udp && cur == 0 && p.l3 == L3Kind::Ipv4 {
        return Ok(());
    }
    let mut v = update_words(cur, old, new);
    if udp && v == 0 {
        v = 0xffff;
    }
    frame[c..c + 2].copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// Rewrites an IPv4 address, fixing the header checksum and the L4 checksum.
#[inline]
pub fn set_ipv4_addr(
    frame: &mut [u8],
    p: &Parsed,
    field: Ipv4Field,
    new: Ipv4Addr,
) -> Result<(), RewriteError> {
    if p.l3 != L3Kind::Ipv4 {
        return Err(RewriteError::NotIpv4);
    }
    let l3 = usize::from(p.l3_offset);
    let off = l3
        + match field {
            Ipv4Field::Source => ipv4::SRC_OFFSET,
            Ipv4Field::Destination => ipv4::DST_OFFSET,
        };
    if l3 + ipv4::HEADER_LEN > frame.len() {
        return Err(RewriteError::FrameMismatch);
    }
    let old = super::bytes4(frame, off);
    let new = new.octets();
    frame[off..off + 4].copy_from_slice(&new);
    let c = l3 + ipv4::CHECKSUM_OFFSET;
    let hc = update_words(be16(frame, c), &old, &new);
    frame[c..c + 2].copy_from_slice(&hc.to_be_bytes());
    fix_l4(frame, p, &old, &new)
}

/// Rewrites an IPv6 address; the L4 checksum changes only if that address is
/// the pseudo-header source or destination.
#[inline]
pub fn set_ipv6_addr(
    frame: &mut [u8],
    p: &Parsed,
    field: Ipv6Field,
    new: Ipv6Addr,
) -> Result<(), RewriteError> {
    if p.l3 != L3Kind::Ipv6 {
        return Err(RewriteError::NotIpv6);
    }
    let l3 = usize::from(p.l3_offset);
    let off = match field {
        Ipv6Field::Source => l3 + ipv6::SRC_OFFSET,
        Ipv6Field::Destination => l3 + ipv6::DST_OFFSET,
        Ipv6Field::HomeAddress if p.has_hao() => usize::from(p.hao_offset),
        Ipv6Field::RoutingHomeAddress if p.has_rh2() => usize::from(p.rh2_offset),
        _ => return Err(RewriteError::NoSuchAddress),
    };
    if off + 16 > frame.len() {
        return Err(RewriteError::FrameMismatch);
    }
    let old = super::bytes16(frame, off);
    let new = new.octets();
    frame[off..off + 16].copy_from_slice(&new);
    let o16 = off as u16;
    if o16 == p.pseudo_src_offset || o16 == p.pseudo_dst_offset {
        fix_l4(frame, p, &old, &new)?;
    }
    Ok(())
}

#[inline]
fn set_port(frame: &mut [u8], p: &mut Parsed, dst: bool, new: u16) -> Result<(), RewriteError> {
    if !p.has_l4() || !matches!(p.protocol, IpProtocol::Tcp | IpProtocol::Udp) {
        return Err(RewriteError::NoPorts);
    }
    let off = usize::from(p.l4_offset) + if dst { 2 } else { 0 };
    if off + 2 > frame.len() {
        return Err(RewriteError::FrameMismatch);
    }
    let old = be16(frame, off);
    frame[off..off + 2].copy_from_slice(&new.to_be_bytes());
    if dst {
        p.dst_port = new;
    } else {
        p.src_port = new;
    }
    if let Some((c, udp)) = l4_checksum(p) {
        let cur = be16(frame, c);
        if udp && cur == 0 && p.l3 == L3Kind::Ipv4 {
            return Ok(());
        }
        let mut v = update16(cur, old, new);
        if udp && v == 0 {
            v = 0xffff;
        }
        frame[c..c + 2].copy_from_slice(&v.to_be_bytes());
    }
    Ok(())
}

/// Rewrites the TCP/UDP source port and fixes the checksum; updates `p`.
#[inline]
pub fn set_src_port(frame: &mut [u8], p: &mut Parsed, new: u16) -> Result<(), RewriteError> {
    set_port(frame, p, false, new)
}

/// Rewrites the TCP/UDP destination port and fixes the checksum; updates `p`.
#[inline]
pub fn set_dst_port(frame: &mut [u8], p: &mut Parsed, new: u16) -> Result<(), RewriteError> {
    set_port(frame, p, true, new)
}

/// The outer header of an encapsulating direct-server-return packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OuterHeader {
    /// IPv4 outer header (IPv4-in-IPv4, RFC 2003; or IPv6-in-IPv4, RFC 4213).
    V4 {
        /// Outer source (the balancer).
        src: Ipv4Addr,
        /// Outer destination (the backend).
        dst: Ipv4Addr,
        /// TTL.
        ttl: u8,
    },
    /// IPv6 outer header (IPv6-in-IPv6 / IPv4-in-IPv6, RFC 2473).
    V6 {
        /// Outer source.
        src: Ipv6Addr,
        /// Outer destination.
        dst: Ipv6Addr,
        /// Hop limit.
        hop_limit: u8,
    },
}

impl OuterHeader {
    /// Octets the outer header takes.
    pub const fn len(&self) -> usize {
        match self {
            OuterHeader::V4 { .. } => ipv4::HEADER_LEN,
            OuterHeader::V6 { .. } => ipv6::HEADER_LEN,
        }
    }

    /// Never empty; present for clippy's `len_without_is_empty`.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Writes the outer header into `buf` (the headroom right before the
    /// inner IP header) for an inner packet of `inner_len` octets whose
    /// network layer is `inner` (IPv4 → protocol 4, IPv6 → 41).
    pub fn emit(
        &self,
        buf: &mut [u8],
        inner: L3Kind,
        inner_len: u16,
    ) -> Result<usize, RewriteError> {
        let proto = match inner {
            L3Kind::Ipv4 => IpProtocol::IpIp,
            L3Kind::Ipv6 => IpProtocol::Ipv6,
            _ => return Err(RewriteError::NoSuchAddress),
        };
        if buf.len() < self.len() {
            return Err(RewriteError::BufferTooSmall);
        }
        match *self {
            OuterHeader::V4 { src, dst, ttl } => {
                if inner_len > u16::MAX - 20 {
                    return Err(RewriteError::BufferTooSmall);
                }
                Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    protocol: proto,
                    payload_len: inner_len,
                    ttl,
                    tos: 0,
                    ident: 0,
                    dont_frag: true,
                }
                .emit(buf);
            }
            OuterHeader::V6 {
                src,
                dst,
                hop_limit,
            } => {
                Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: proto,
                    payload_len: inner_len,
                    hop_limit,
                    traffic_class: 0,
                    flow_label: 0,
                }
                .emit(buf);
            }
        }
        Ok(self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::build::{self, Ext, L4};
    use super::super::checksum;
    use super::super::parse::{parse, ParseConfig};
    use super::*;

    /// Recomputes the L4 checksum from scratch with the pseudo-header the
    /// summary names, and checks it verifies (sum all ones).
    fn l4_verifies(frame: &[u8]) -> bool {
        let p = parse(frame, &ParseConfig::new()).unwrap();
        let l4 = &frame[usize::from(p.l4_offset)..usize::from(p.l3_end)];
        let ps = usize::from(p.pseudo_src_offset);
        let pd = usize::from(p.pseudo_dst_offset);
        let acc = match p.l3 {
            L3Kind::Ipv4 => checksum::pseudo_header_v4(
                Ipv4Addr::from(super::super::bytes4(frame, ps)),
                Ipv4Addr::from(super::super::bytes4(frame, pd)),
                p.protocol,
                l4.len() as u32,
            ),
            _ => checksum::pseudo_header_v6(
                Ipv6Addr::from(super::super::bytes16(frame, ps)),
                Ipv6Addr::from(super::super::bytes16(frame, pd)),
                p.protocol,
                l4.len() as u32,
            ),
        };
        checksum::fold(checksum::sum(acc, l4)) == 0xffff
    }

    #[test]
    fn ipv4_nat_keeps_checksums_valid() {
        let mut f = build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Tcp(40000, 80, 1, 2));
        assert!(l4_verifies(&f));
        let mut p = parse(&f, &ParseConfig::new()).unwrap();
        set_ipv4_addr(
            &mut f,
            &p,
            Ipv4Field::Destination,
            "10.0.0.7".parse().unwrap(),
        )
        .unwrap();
        set_dst_port(&mut f, &mut p, 8080).unwrap();
        set_src_port(&mut f, &mut p, 1234).unwrap();
        set_ipv4_addr(&mut f, &p, Ipv4Field::Source, "10.9.9.9".parse().unwrap()).unwrap();
        let q = parse(&f, &ParseConfig::new()).unwrap(); // verifies the IPv4 header checksum
        assert_eq!((q.src_port, q.dst_port), (1234, 8080));
        assert!(l4_verifies(&f));
    }

    #[test]
    fn udp_zero_checksum_stays_zero_on_ipv4() {
        let mut f = build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Udp(5, 53, vec![1, 2, 3]));
        let p = parse(&f, &ParseConfig::new()).unwrap();
        let c = usize::from(p.l4_offset) + 6;
        f[c..c + 2].copy_from_slice(&[0, 0]);
        set_ipv4_addr(
            &mut f,
            &p,
            Ipv4Field::Destination,
            "10.0.0.7".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(&f[c..c + 2], &[0, 0]);
    }

    #[test]
    fn hao_source_rewrite_leaves_l4_alone_and_home_rewrite_fixes_it() {
        let mut f = build::eth_ipv6(
            "2001:db8:c0a::1",
            "2001:db8:5::80",
            &[Ext::Hao(build::addr6("2001:db8:40::1"))],
            &L4::Tcp(1, 80, 9, 0x10),
        );
        assert!(l4_verifies(&f));
        let p = parse(&f, &ParseConfig::new()).unwrap();
        let c = usize::from(p.l4_offset) + 16;
        let before = [f[c], f[c + 1]];
        set_ipv6_addr(
            &mut f,
            &p,
            Ipv6Field::Source,
            build::addr6("2001:db8:c0b::99"),
        )
        .unwrap();
        assert_eq!([f[c], f[c + 1]], before, "CoA is not in the pseudo-header");
        assert!(l4_verifies(&f));
        set_ipv6_addr(
            &mut f,
            &p,
            Ipv6Field::HomeAddress,
            build::addr6("2001:db8:41::2"),
        )
        .unwrap();
        assert_ne!([f[c], f[c + 1]], before);
        assert!(l4_verifies(&f));
        set_ipv6_addr(
            &mut f,
            &p,
            Ipv6Field::Destination,
            build::addr6("2001:db8:6::1"),
        )
        .unwrap();
        assert!(l4_verifies(&f));
        assert_eq!(
            set_ipv6_addr(
                &mut f,
                &p,
                Ipv6Field::RoutingHomeAddress,
                build::addr6("::1")
            ),
            Err(RewriteError::NoSuchAddress)
        );
    }

    #[test]
    fn rh2_final_destination_is_pseudo_dst() {
        let mut f = build::eth_ipv6(
            "2001:db8:5::80",
            "2001:db8:c0a::1",
            &[Ext::Routing2(build::addr6("2001:db8:40::1"), 1)],
            &L4::Udp(53, 5000, vec![9; 5]),
        );
        assert!(l4_verifies(&f));
        let p = parse(&f, &ParseConfig::new()).unwrap();
        assert_eq!(p.pseudo_dst_offset, p.rh2_offset);
        set_ipv6_addr(
            &mut f,
            &p,
            Ipv6Field::Destination,
            build::addr6("2001:db8:c0b::2"),
        )
        .unwrap();
        assert!(l4_verifies(&f));
        set_ipv6_addr(
            &mut f,
            &p,
            Ipv6Field::RoutingHomeAddress,
            build::addr6("2001:db8:40::2"),
        )
        .unwrap();
        assert!(l4_verifies(&f));
        let mut p = p;
        set_src_port(&mut f, &mut p, 5353).unwrap();
        assert!(l4_verifies(&f));
    }

    #[test]
    fn icmpv6_and_mh_checksums_follow() {
        let mut f = build::eth_ipv6("2001:db8::1", "2001:db8::2", &[], &L4::Icmpv6Echo);
        let p = parse(&f, &ParseConfig::new()).unwrap();
        set_ipv6_addr(
            &mut f,
            &p,
            Ipv6Field::Destination,
            build::addr6("2001:db8::3"),
        )
        .unwrap();
        assert!(l4_verifies(&f));
        let mut p = p;
        assert_eq!(set_src_port(&mut f, &mut p, 1), Err(RewriteError::NoPorts));
    }

    #[test]
    fn encapsulation_headers_parse_back() {
        let inner = build::ipv6(
            build::addr6("2001:db8::1"),
            build::addr6("2001:db8::2"),
            &[],
            &L4::Tcp(1, 2, 3, 4),
        );
        for outer in [
            OuterHeader::V6 {
                src: build::addr6("2001:db8:f::1"),
                dst: build::addr6("2001:db8:f::2"),
                hop_limit: 64,
            },
            OuterHeader::V4 {
                src: "10.0.0.1".parse().unwrap(),
                dst: "10.0.0.2".parse().unwrap(),
                ttl: 64,
            },
        ] {
            let mut buf = vec![0u8; outer.len()];
            assert_eq!(
                outer
                    .emit(&mut buf, L3Kind::Ipv6, inner.len() as u16)
                    .unwrap(),
                outer.len()
            );
            buf.extend_from_slice(&inner);
            let et = if outer.len() == 40 {
                super::super::ethernet::EtherType::Ipv6
            } else {
                super::super::ethernet::EtherType::Ipv4
            };
            let f = build::ethernet(et, &[], &buf);
            let p = parse(&f, &ParseConfig::new()).unwrap();
            assert_eq!(p.protocol, IpProtocol::Ipv6);
            assert_eq!(usize::from(p.l4_offset), 14 + outer.len());
            assert_eq!(usize::from(p.l3_end), f.len());
        }
        assert_eq!(
            OuterHeader::V4 {
                src: Ipv4Addr::LOCALHOST,
                dst: Ipv4Addr::LOCALHOST,
                ttl: 1
            }
            .emit(&mut [0u8; 10], L3Kind::Ipv4, 0),
            Err(RewriteError::BufferTooSmall)
        );
    }
}
