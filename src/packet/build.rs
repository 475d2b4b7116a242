//! Frame builders for tests, benchmarks and fuzz seeds.
//!
//! These allocate and are not for the data path; they exist so unit tests,
//! property tests, `benches/parse.rs` and the fuzz corpus all build frames
//! the same way, through the `Repr::emit` functions of this module tree.
//! L4 checksums are computed with the RFC 8200 §8.1 pseudo-header rules
//! (home address as source when a Home Address option is present, the type 2
//! Routing header address as destination while Segments Left is 1).

use super::checksum;
use super::esp::EspRepr;
use super::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use super::ext::{HomeAddressDestOptsRepr, HAO_DEST_OPTS_LEN};
use super::ipv4::Ipv4Repr;
use super::ipv6::Ipv6Repr;
use super::mobility::BindingUpdateRepr;
use super::tcp::TcpRepr;
use super::udp::UdpRepr;
use super::IpProtocol;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An IPv6 extension header to put in a built packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-Hop Options with these option octets (padded to 8n with PadN).
    HopByHop(Vec<u8>),
    /// Destination Options with these option octets (padded to 8n).
    DestOpts(Vec<u8>),
    /// Destination Options holding a Home Address option (RFC 6275 §6.3).
    Hao(Ipv6Addr),
    /// Type 2 Routing header with this home address and Segments Left.
    Routing2(Ipv6Addr, u8),
    /// Routing header of another type, with 8n-2 octets of type-specific data.
    Routing(u8, u8),
    /// Fragment header: offset in octets (multiple of 8), M flag, ident.
    Fragment(u16, bool, u32),
    /// AH with an ICV of `n` 4-octet words.
    Ah(u32, u8),
}

/// The upper layer of a built packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L4 {
    /// TCP with ports, sequence number and flags.
    Tcp(u16, u16, u32, u8),
    /// UDP with ports and payload.
    Udp(u16, u16, Vec<u8>),
    /// ESP with SPI and sequence number (plus 16 octets of "ciphertext").
    Esp(u32, u32),
    /// A Mobility Header Binding Update.
    BindingUpdate(BindingUpdateRepr),
    /// ICMPv6 echo request.
    Icmpv6Echo,
    /// No Next Header.
    None,
    /// Raw protocol and octets.
    Raw(u8, Vec<u8>),
}

impl L4 {
    fn proto(&self) -> IpProtocol {
        match self {
            L4::Tcp(..) => IpProtocol::Tcp,
            L4::Udp(..) => IpProtocol::Udp,
            L4::Esp(..) => IpProtocol::Esp,
            L4::BindingUpdate(_) => IpProtocol::Mobility,
            L4::Icmpv6Echo => IpProtocol::Icmpv6,
            L4::None => IpProtocol::NoNextHeader,
            L4::Raw(p, _) => IpProtocol::from(*p),
        }
    }

    /// The octets with checksum 0 and the checksum offset, if any.
    fn bytes(&self) -> (Vec<u8>, Option<usize>) {
        match self {
            L4::Tcp(s, d, seq, fl) => {
                let mut b = vec![0u8; 20];
                TcpRepr {
                    src_port: *s,
                    dst_port: *d,
                    seq_number: *seq,
                    ack_number: 0,
                    flags: *fl,
                    window: 8192,
                }
                .emit(&mut b);
                (b, Some(16))
            }
            L4::Udp(s, d, p) => {
                let mut b = vec![0u8; 8];
                UdpRepr {
                    src_port: *s,
                    dst_port: *d,
                    payload_len: p.len() as u16,
                }
                .emit(&mut b);
                b.extend_from_slice(p);
                (b, Some(6))
            }
            L4::Esp(spi, seq) => {
                let mut b = vec![0u8; 24];
                EspRepr {
                    spi: *spi,
                    sequence: *seq,
                }
                .emit(&mut b);
                (b, None)
            }
            L4::BindingUpdate(r) => {
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(&mut b);
                (b, Some(4))
            }
            L4::Icmpv6Echo => (vec![128, 0, 0, 0, 0, 1, 0, 1], Some(2)),
            L4::None => (Vec::new(), None),
            L4::Raw(_, b) => (b.clone(), None),
        }
    }
}

fn pad_options(mut opts: Vec<u8>) -> Vec<u8> {
    // 2 octets of Next Header / Hdr Ext Len precede the options.
    let rem = (opts.len() + 2) % 8;
    if rem != 0 {
        let pad = 8 - rem;
        if pad == 1 {
            opts.push(0);
        } else {
            opts.push(1);
            opts.push((pad - 2) as u8);
            opts.extend(std::iter::repeat(0).take(pad - 2));
        }
    }
    opts
}

fn ext_bytes(e: &Ext, nh: IpProtocol) -> Vec<u8> {
    let nh = u8::from(nh);
    match e {
        Ext::HopByHop(o) | Ext::DestOpts(o) => {
            let o = pad_options(o.clone());
            let mut b = vec![nh, ((o.len() + 2) / 8 - 1) as u8];
            b.extend_from_slice(&o);
            b
        }
        Ext::Hao(a) => {
            let mut b = vec![0u8; HAO_DEST_OPTS_LEN];
            HomeAddressDestOptsRepr {
                next_header: IpProtocol::from(nh),
                home_address: *a,
            }
            .emit(&mut b);
            b
        }
        Ext::Routing2(a, sl) => {
            let mut b = vec![nh, 2, 2, *sl, 0, 0, 0, 0];
            b.extend_from_slice(&a.octets());
            b
        }
        Ext::Routing(t, units) => {
            let mut b = vec![nh, *units, *t, 0];
            b.resize((usize::from(*units) + 1) * 8, 0);
            b
        }
        Ext::Fragment(off, m, id) => {
            let w = (off & 0xfff8) | u16::from(*m);
            let mut b = vec![nh, 0];
            b.extend_from_slice(&w.to_be_bytes());
            b.extend_from_slice(&id.to_be_bytes());
            b
        }
        Ext::Ah(spi, words) => {
            let mut b = vec![nh, words + 1, 0, 0];
            b.extend_from_slice(&spi.to_be_bytes());
            b.extend_from_slice(&1u32.to_be_bytes());
            b.resize(12 + 4 * usize::from(*words), 0);
            b
        }
    }
}

fn ext_proto(e: &Ext) -> IpProtocol {
    match e {
        Ext::HopByHop(_) => IpProtocol::HopByHop,
        Ext::DestOpts(_) | Ext::Hao(_) => IpProtocol::DestOptions,
        Ext::Routing2(..) | Ext::Routing(..) => IpProtocol::Routing,
        Ext::Fragment(..) => IpProtocol::Fragment,
        Ext::Ah(..) => IpProtocol::Ah,
    }
}

/// An IPv6 packet (no link header) with a correct L4 checksum.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, exts: &[Ext], l4: &L4) -> Vec<u8> {
    let (mut l4b, csum_off) = l4.bytes();
    let mut chain = Vec::new();
    for (i, e) in exts.iter().enumerate() {
        let nh = exts.get(i + 1).map_or(l4.proto(), ext_proto);
        chain.extend_from_slice(&ext_bytes(e, nh));
    }
    if let Some(c) = csum_off {
        let psrc = exts
            .iter()
            .find_map(|e| if let Ext::Hao(a) = e { Some(*a) } else { None })
            .unwrap_or(src);
        let pdst = exts
            .iter()
            .find_map(|e| {
                if let Ext::Routing2(a, 1) = e {
                    Some(*a)
                } else {
                    None
                }
            })
            .unwrap_or(dst);
        let acc = checksum::pseudo_header_v6(psrc, pdst, l4.proto(), l4b.len() as u32);
        let mut v = !checksum::fold(checksum::sum(acc, &l4b));
        if v == 0 && matches!(l4, L4::Udp(..)) {
            v = 0xffff;
        }
        l4b[c..c + 2].copy_from_slice(&v.to_be_bytes());
    }
    let first = exts.first().map_or(l4.proto(), ext_proto);
    let payload_len = (chain.len() + l4b.len()) as u16;
    let mut out = vec![0u8; 40];
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: first,
        payload_len,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut out);
    out.extend_from_slice(&chain);
    out.extend_from_slice(&l4b);
    out
}

/// An IPv4 packet (no link header) with correct header and L4 checksums.
pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, l4: &L4) -> Vec<u8> {
    let (mut l4b, csum_off) = l4.bytes();
    if let Some(c) = csum_off {
        let acc = checksum::pseudo_header_v4(src, dst, l4.proto(), l4b.len() as u32);
        let v = !checksum::fold(checksum::sum(acc, &l4b));
        l4b[c..c + 2].copy_from_slice(&v.to_be_bytes());
    }
    let mut out = vec![0u8; 20];
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: l4.proto(),
        payload_len: l4b.len() as u16,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: false,
    }
    .emit(&mut out);
    out.extend_from_slice(&l4b);
    out
}

/// An Ethernet frame around `payload`, with 802.1Q tags (outer first; with
/// two tags the outer TPID is 802.1ad).
pub fn ethernet(ethertype: EtherType, vlans: &[u16], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 14];
    let first = match vlans.len() {
        0 => ethertype,
        1 => EtherType::Vlan,
        _ => EtherType::QinQ,
    };
    EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        ethertype: first,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    for (i, v) in vlans.iter().enumerate() {
        out.extend_from_slice(&v.to_be_bytes());
        let next = if i + 1 == vlans.len() {
            ethertype
        } else {
            EtherType::Vlan
        };
        out.extend_from_slice(&u16::from(next).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Shorthand: Ethernet + IPv6.
pub fn eth_ipv6(src: &str, dst: &str, exts: &[Ext], l4: &L4) -> Vec<u8> {
    ethernet(
        EtherType::Ipv6,
        &[],
        &ipv6(addr6(src), addr6(dst), exts, l4),
    )
}

/// Shorthand: Ethernet + IPv4.
pub fn eth_ipv4(src: &str, dst: &str, l4: &L4) -> Vec<u8> {
    ethernet(
        EtherType::Ipv4,
        &[],
        &ipv4(
            src.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            dst.parse().unwrap_or(Ipv4Addr::UNSPECIFIED),
            l4,
        ),
    )
}

/// Parses an IPv6 literal, `::` on error (builders only).
pub fn addr6(s: &str) -> Ipv6Addr {
    s.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
}
