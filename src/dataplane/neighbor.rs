//! Neighbour resolution on the wire: ARP (RFC 826) and IPv6 Neighbor
//! Discovery (RFC 4861 §4.3, §4.4, §7.2).
//!
//! Everything here works on a frame the classifier already validated, in
//! place where it can: a request for one of the appliance's addresses (a port
//! address or a VIP) becomes its reply by rewriting the same buffer, so
//! answering allocates nothing. The requests the appliance sends for its own
//! next hops are written into a buffer the caller provides (an mbuf from the
//! pool). What is learned — the sender of an ARP packet, the source of a
//! Neighbor Solicitation with a Source Link-Layer Address option, the target
//! of a Neighbor Advertisement with a Target Link-Layer Address option — is
//! returned for the caller's neighbour cache.
//!
//! ```text
//! ARP (RFC 826), after the Ethernet header:
//!  0      2      4    5    6      8            14       18           24       28
//! +------+------+----+----+------+------------+--------+------------+--------+
//! | HTYPE| PTYPE|HLEN|PLEN| OPER | SHA        | SPA    | THA        | TPA    |
//! +------+------+----+----+------+------------+--------+------------+--------+
//!
//! Neighbor Solicitation / Advertisement (RFC 4861 §4.3, §4.4), ICMPv6:
//!  0    1    2        4                        8                       24
//! +----+----+--------+------------------------+-----------------------+---------
//! |Type|Code|Checksum| Reserved (NS) /        | Target Address        | Options
//! |    |    |        | R S O flags (NA)       |                       | (TLV, 8n)
//! +----+----+--------+------------------------+-----------------------+---------
//! ```

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::checksum;
use crate::packet::{IpProtocol, L3Kind, Parsed};

const ARP_OPER: usize = 6;
const ARP_SHA: usize = 8;
const ARP_SPA: usize = 14;
const ARP_THA: usize = 18;
const ARP_TPA: usize = 24;
const ARP_LEN: usize = 28;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

/// ICMPv6 Neighbor Solicitation.
pub const ND_SOLICITATION: u8 = 135;
/// ICMPv6 Neighbor Advertisement.
pub const ND_ADVERTISEMENT: u8 = 136;
const ND_TARGET: usize = 8;
const ND_OPTIONS: usize = 24;
const OPT_SOURCE_LLA: u8 = 1;
const OPT_TARGET_LLA: u8 = 2;
/// NA flags: Router, Solicited, Override (RFC 4861 §4.4).
const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;
/// Length of an NA carrying one Target Link-Layer Address option.
pub const NA_LEN: usize = ND_OPTIONS + 8;

const IPV6_PAYLOAD_LEN: usize = 4;
const IPV6_HOP_LIMIT: usize = 7;
const IPV6_SRC: usize = 8;
const IPV6_DST: usize = 24;

/// What a neighbour-protocol packet is, for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdKind {
    /// An ARP request for `target`.
    ArpRequest {
        /// The address asked for.
        target: Ipv4Addr,
    },
    /// An ARP reply.
    ArpReply,
    /// A Neighbor Solicitation for `target`.
    Solicitation {
        /// The address asked for.
        target: Ipv6Addr,
    },
    /// A Neighbor Advertisement.
    Advertisement,
}

/// Classifies an ARP or NS/NA packet; `None` for anything else or a packet
/// that breaks RFC 4861 §7.1.1/§7.1.2 validation (hop limit 255, code 0,
/// length).
pub fn classify(frame: &[u8], p: &Parsed) -> Option<NdKind> {
    match p.l3 {
        L3Kind::Arp => {
            let a = frame.get(usize::from(p.l3_offset)..usize::from(p.l3_offset) + ARP_LEN)?;
            match u16::from_be_bytes([a[ARP_OPER], a[ARP_OPER + 1]]) {
                ARP_REQUEST => Some(NdKind::ArpRequest {
                    target: ipv4_at(a, ARP_TPA)?,
                }),
                ARP_REPLY => Some(NdKind::ArpReply),
                _ => None,
            }
        }
        L3Kind::Ipv6 if p.protocol == IpProtocol::Icmpv6 && p.has_l4() => {
            let l3 = usize::from(p.l3_offset);
            let l4 = usize::from(p.l4_offset);
            let end = usize::from(p.l3_end).min(frame.len());
            let icmp = frame.get(l4..end)?;
            if icmp.len() < ND_OPTIONS || icmp[1] != 0 || *frame.get(l3 + IPV6_HOP_LIMIT)? != 255 {
                return None;
            }
            match icmp[0] {
                ND_SOLICITATION => Some(NdKind::Solicitation {
                    target: ipv6_at(icmp, ND_TARGET)?,
                }),
                ND_ADVERTISEMENT => Some(NdKind::Advertisement),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The (address, MAC) a neighbour packet teaches, if any.
pub fn learn(frame: &[u8], p: &Parsed) -> Option<(IpAddr, [u8; 6])> {
    match classify(frame, p)? {
        NdKind::ArpRequest { .. } | NdKind::ArpReply => {
            let a = frame.get(usize::from(p.l3_offset)..usize::from(p.l3_offset) + ARP_LEN)?;
            let ip = ipv4_at(a, ARP_SPA)?;
            (!ip.is_unspecified()).then_some((IpAddr::V4(ip), mac_at(a, ARP_SHA)?))
        }
        NdKind::Solicitation { .. } => {
            let src = ipv6_at(frame, usize::from(p.l3_offset) + IPV6_SRC)?;
            let mac = nd_option(frame, p, OPT_SOURCE_LLA)?;
            (!src.is_unspecified()).then_some((IpAddr::V6(src), mac))
        }
        NdKind::Advertisement => {
            let icmp = frame.get(usize::from(p.l4_offset)..)?;
            let target = ipv6_at(icmp, ND_TARGET)?;
            Some((IpAddr::V6(target), nd_option(frame, p, OPT_TARGET_LLA)?))
        }
    }
}

/// Turns an ARP request (already classified) into the reply from `mac`, in
/// place: the requester becomes the target, the asked address the sender.
pub fn answer_arp(frame: &mut [u8], p: &Parsed, mac: [u8; 6]) -> bool {
    let l3 = usize::from(p.l3_offset);
    if frame.len() < l3 + ARP_LEN || frame.len() < 12 {
        return false;
    }
    let (requester_mac, requester_ip, asked) = {
        let a = &frame[l3..l3 + ARP_LEN];
        let mut m = [0u8; 6];
        m.copy_from_slice(&a[ARP_SHA..ARP_SHA + 6]);
        let mut rip = [0u8; 4];
        rip.copy_from_slice(&a[ARP_SPA..ARP_SPA + 4]);
        let mut t = [0u8; 4];
        t.copy_from_slice(&a[ARP_TPA..ARP_TPA + 4]);
        (m, rip, t)
    };
    frame[0..6].copy_from_slice(&requester_mac);
    frame[6..12].copy_from_slice(&mac);
    let a = &mut frame[l3..l3 + ARP_LEN];
    a[ARP_OPER..ARP_OPER + 2].copy_from_slice(&ARP_REPLY.to_be_bytes());
    a[ARP_THA..ARP_THA + 6].copy_from_slice(&requester_mac);
    a[ARP_TPA..ARP_TPA + 4].copy_from_slice(&requester_ip);
    a[ARP_SHA..ARP_SHA + 6].copy_from_slice(&mac);
    a[ARP_SPA..ARP_SPA + 4].copy_from_slice(&asked);
    true
}

/// Turns a Neighbor Solicitation (already classified) into the solicited
/// Neighbor Advertisement from `mac`, in place (RFC 4861 §7.2.4): target
/// unchanged, Router/Solicited/Override set, one Target Link-Layer Address
/// option. `frame` must have room for the NA: `p.l4_offset + NA_LEN` bytes
/// (the caller grows the frame when the NS carried no option). A
/// solicitation from the unspecified address (duplicate address detection)
/// is answered to all-nodes, unsolicited (§7.2.4).
pub fn answer_ns(frame: &mut [u8], p: &Parsed, mac: [u8; 6]) -> bool {
    let l3 = usize::from(p.l3_offset);
    let l4 = usize::from(p.l4_offset);
    if frame.len() < l4 + NA_LEN || l3 + 40 > l4 {
        return false;
    }
    let (Some(target), Some(src)) = (
        ipv6_at(frame, l4 + ND_TARGET),
        ipv6_at(frame, l3 + IPV6_SRC),
    ) else {
        return false;
    };
    let dad = src.is_unspecified();
    let dst = if dad {
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)
    } else {
        src
    };
    let dst_mac = if dad {
        [0x33, 0x33, 0, 0, 0, 1]
    } else {
        let mut m = [0u8; 6];
        m.copy_from_slice(&frame[6..12]);
        m
    };
    frame[0..6].copy_from_slice(&dst_mac);
    frame[6..12].copy_from_slice(&mac);
    // The IPv6 header: from the target, to the solicitor, hop limit 255,
    // and no extension headers between it and the NA.
    let ip_payload = (l4 - l3 - 40 + NA_LEN) as u16;
    frame[l3 + IPV6_PAYLOAD_LEN..l3 + IPV6_PAYLOAD_LEN + 2]
        .copy_from_slice(&ip_payload.to_be_bytes());
    frame[l3 + IPV6_HOP_LIMIT] = 255;
    frame[l3 + IPV6_SRC..l3 + IPV6_SRC + 16].copy_from_slice(&target.octets());
    frame[l3 + IPV6_DST..l3 + IPV6_DST + 16].copy_from_slice(&dst.octets());
    let na = &mut frame[l4..l4 + NA_LEN];
    na[0] = ND_ADVERTISEMENT;
    na[1] = 0;
    na[2..4].copy_from_slice(&[0, 0]);
    na[4] = NA_ROUTER | NA_OVERRIDE | if dad { 0 } else { NA_SOLICITED };
    na[5..8].copy_from_slice(&[0, 0, 0]);
    na[ND_OPTIONS] = OPT_TARGET_LLA;
    na[ND_OPTIONS + 1] = 1;
    na[ND_OPTIONS + 2..ND_OPTIONS + 8].copy_from_slice(&mac);
    let c = icmpv6_checksum(target, dst, na);
    na[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

/// Writes an ARP request for `target` from (`mac`, `ip`) into `buf` (at
/// least 60 bytes: the minimum Ethernet frame); returns the frame length.
pub fn arp_request(buf: &mut [u8], mac: [u8; 6], ip: Ipv4Addr, target: Ipv4Addr) -> Option<usize> {
    let f = buf.get_mut(..60)?;
    f.fill(0);
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let a = &mut f[14..14 + ARP_LEN];
    a[0..2].copy_from_slice(&1u16.to_be_bytes());
    a[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    a[ARP_OPER..ARP_OPER + 2].copy_from_slice(&ARP_REQUEST.to_be_bytes());
    a[ARP_SHA..ARP_SHA + 6].copy_from_slice(&mac);
    a[ARP_SPA..ARP_SPA + 4].copy_from_slice(&ip.octets());
    a[ARP_TPA..ARP_TPA + 4].copy_from_slice(&target.octets());
    Some(60)
}

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// Writes a Neighbor Solicitation for `target` from (`mac`, `ip`) to the
/// target's solicited-node multicast address, with a Source Link-Layer
/// Address option, into `buf` (at least 86 bytes); returns the frame length.
pub fn neighbor_solicitation(
    buf: &mut [u8],
    mac: [u8; 6],
    ip: Ipv6Addr,
    target: Ipv6Addr,
) -> Option<usize> {
    const LEN: usize = 14 + 40 + ND_OPTIONS + 8;
    let f = buf.get_mut(..LEN)?;
    f.fill(0);
    let dst = solicited_node(target);
    let d = dst.octets();
    f[0..6].copy_from_slice(&[0x33, 0x33, d[12], d[13], d[14], d[15]]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip6 = &mut f[14..54];
    ip6[0] = 0x60;
    ip6[IPV6_PAYLOAD_LEN..IPV6_PAYLOAD_LEN + 2]
        .copy_from_slice(&((ND_OPTIONS + 8) as u16).to_be_bytes());
    ip6[6] = u8::from(IpProtocol::Icmpv6);
    ip6[IPV6_HOP_LIMIT] = 255;
    ip6[IPV6_SRC..IPV6_SRC + 16].copy_from_slice(&ip.octets());
    ip6[IPV6_DST..IPV6_DST + 16].copy_from_slice(&d);
    let ns = &mut f[54..LEN];
    ns[0] = ND_SOLICITATION;
    ns[ND_TARGET..ND_TARGET + 16].copy_from_slice(&target.octets());
    ns[ND_OPTIONS] = OPT_SOURCE_LLA;
    ns[ND_OPTIONS + 1] = 1;
    ns[ND_OPTIONS + 2..ND_OPTIONS + 8].copy_from_slice(&mac);
    let c = icmpv6_checksum(ip, dst, ns);
    ns[2..4].copy_from_slice(&c.to_be_bytes());
    Some(LEN)
}

fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let acc = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, msg.len() as u32);
    !checksum::fold(checksum::sum(acc, msg))
}

/// The MAC in the first option of `kind` of an NS/NA; options are walked by
/// their length (8-octet units), and a zero length stops the walk (RFC 4861
/// §4.6: such a packet must be discarded).
fn nd_option(frame: &[u8], p: &Parsed, kind: u8) -> Option<[u8; 6]> {
    let end = usize::from(p.l3_end).min(frame.len());
    let mut at = usize::from(p.l4_offset) + ND_OPTIONS;
    while at + 2 <= end {
        let len = usize::from(frame[at + 1]) * 8;
        if len == 0 || at + len > end {
            return None;
        }
        if frame[at] == kind && len >= 8 {
            return mac_at(frame, at + 2);
        }
        at += len;
    }
    None
}

fn mac_at(b: &[u8], at: usize) -> Option<[u8; 6]> {
    b.get(at..at + 6)?.try_into().ok()
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

fn ipv6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{parse, ParseConfig};

    const OURS: [u8; 6] = [2, 0, 0, 0, 0xaa, 1];
    const THEIRS: [u8; 6] = [2, 0, 0, 0, 0xbb, 2];

    fn parsed(f: &[u8]) -> Parsed {
        parse(f, &ParseConfig::new()).expect("valid frame")
    }

    fn icmpv6_ok(f: &[u8]) -> bool {
        let p = parsed(f);
        let l3 = usize::from(p.l3_offset);
        let src = ipv6_at(f, l3 + IPV6_SRC).unwrap();
        let dst = ipv6_at(f, l3 + IPV6_DST).unwrap();
        let msg = &f[usize::from(p.l4_offset)..usize::from(p.l3_end)];
        let acc = checksum::pseudo_header_v6(src, dst, IpProtocol::Icmpv6, msg.len() as u32);
        checksum::fold(checksum::sum(acc, msg)) == 0xffff
    }

    #[test]
    fn arp_request_is_answered_in_place() {
        let mut f = vec![0u8; 60];
        arp_request(
            &mut f,
            THEIRS,
            "192.0.2.9".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
        )
        .unwrap();
        let p = parsed(&f);
        assert_eq!(
            classify(&f, &p),
            Some(NdKind::ArpRequest {
                target: "192.0.2.1".parse().unwrap()
            })
        );
        assert_eq!(learn(&f, &p), Some(("192.0.2.9".parse().unwrap(), THEIRS)));
        assert!(answer_arp(&mut f, &p, OURS));
        let p = parsed(&f);
        assert_eq!(classify(&f, &p), Some(NdKind::ArpReply));
        assert_eq!(&f[0..6], &THEIRS);
        assert_eq!(
            learn(&f, &p),
            Some(("192.0.2.1".parse().unwrap(), OURS)),
            "the reply teaches our binding"
        );
        assert_eq!(&f[14 + ARP_THA..14 + ARP_THA + 6], &THEIRS);
        assert_eq!(&f[14 + ARP_TPA..14 + ARP_TPA + 4], &[192, 0, 2, 9]);
    }

    #[test]
    fn solicitation_becomes_a_valid_advertisement() {
        let mut f = vec![0u8; 86];
        let theirs: Ipv6Addr = "2001:db8:1::9".parse().unwrap();
        let ours: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let n = neighbor_solicitation(&mut f, THEIRS, theirs, ours).unwrap();
        assert_eq!(n, 86);
        assert!(icmpv6_ok(&f), "our NS checksum");
        let p = parsed(&f);
        assert_eq!(
            classify(&f, &p),
            Some(NdKind::Solicitation { target: ours })
        );
        assert_eq!(learn(&f, &p), Some((IpAddr::V6(theirs), THEIRS)));
        assert!(answer_ns(&mut f, &p, OURS));
        assert!(icmpv6_ok(&f), "NA checksum");
        let p = parsed(&f);
        assert_eq!(classify(&f, &p), Some(NdKind::Advertisement));
        assert_eq!(learn(&f, &p), Some((IpAddr::V6(ours), OURS)));
        assert_eq!(&f[0..6], &THEIRS);
        assert_eq!(ipv6_at(&f, 14 + IPV6_DST), Some(theirs));
        assert_eq!(f[54 + 4], NA_ROUTER | NA_SOLICITED | NA_OVERRIDE);
        assert_eq!(
            solicited_node(ours),
            "ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn bad_nd_is_not_classified() {
        let mut f = vec![0u8; 86];
        neighbor_solicitation(
            &mut f,
            THEIRS,
            "2001:db8::9".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        let mut hop = f.clone();
        hop[14 + IPV6_HOP_LIMIT] = 64; // forwarded by a router: not link-local
        assert_eq!(classify(&hop, &parsed(&hop)), None);
        let mut zero_len = f.clone();
        zero_len[54 + ND_OPTIONS + 1] = 0; // option length 0
        assert_eq!(learn(&zero_len, &parsed(&zero_len)), None);
    }
}
