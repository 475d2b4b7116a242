//! The classifier walk as it was before the fast-path rework (commit
//! ba99e06), kept verbatim for tests only: `parse::tests::differential`
//! checks that [`super::parse::parse_into`] returns the same verdict and the
//! same summary on every input, so a speed change cannot change a drop
//! reason or a field.

use super::arp::ArpPacket;
use super::esp::EspPacket;
use super::ethernet::{self, EtherType, EthernetFrame};
use super::ext::{self, AuthHeader, ExtHeader, FragmentHeader, Ipv6Options, UnknownOptionAction};
use super::icmp::IcmpPacket;
use super::icmpv6::Icmpv6Packet;
use super::ipv4::{self, Ipv4Packet};
use super::ipv6::{self, Ipv6Packet};
use super::mobility::MobilityHeader;
use super::parse::{Fragment, L3Kind, ParseConfig, Parsed};
use super::tcp::TcpPacket;
use super::udp::UdpPacket;
use super::vlan::{self, VlanTag};
use super::{DropReason, IpProtocol};

/// Parses `frame` into `out`. On `Err`, `out` still holds what was validated
/// before the refusal (e.g. `l3` and a Home Address option found before a
/// later header failed).
#[inline]
pub fn parse_into(frame: &[u8], cfg: &ParseConfig, out: &mut Parsed) -> Result<(), DropReason> {
    *out = Parsed::default();
    let frame = &frame[..frame.len().min(usize::from(u16::MAX))];
    let eth = EthernetFrame::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut off = ethernet::HEADER_LEN;
    // At most two tags; the third TPID is refused, so this runs <= 3 times.
    while matches!(ethertype, EtherType::Vlan | EtherType::QinQ) {
        if usize::from(out.vlan_count) == out.vlan_ids.len() {
            return Err(DropReason::TooManyVlanTags);
        }
        let tag = VlanTag::new_checked(&frame[off..])?;
        out.vlan_ids[usize::from(out.vlan_count)] = tag.vid();
        out.vlan_count += 1;
        ethertype = tag.ethertype();
        off += vlan::HEADER_LEN;
    }
    out.l3_offset = off as u16;
    match ethertype {
        EtherType::Ipv6 => parse_ipv6(frame, off, cfg, out),
        EtherType::Ipv4 => parse_ipv4(frame, off, cfg, out),
        EtherType::Arp => {
            ArpPacket::new_checked(&frame[off..])?;
            out.l3 = L3Kind::Arp;
            Ok(())
        }
        _ => Err(DropReason::UnknownEthertype),
    }
}

#[inline]
fn parse_ipv4(
    frame: &[u8],
    off: usize,
    cfg: &ParseConfig,
    out: &mut Parsed,
) -> Result<(), DropReason> {
    let ip = Ipv4Packet::new_checked(&frame[off..])?;
    out.l3 = L3Kind::Ipv4;
    out.pseudo_src_offset = (off + ipv4::SRC_OFFSET) as u16;
    out.pseudo_dst_offset = (off + ipv4::DST_OFFSET) as u16;
    if cfg.verifies_ipv4_checksum() && !ip.verify_checksum() {
        return Err(DropReason::Ipv4BadChecksum);
    }
    let end = off + usize::from(ip.total_len());
    out.l3_end = end as u16;
    out.protocol = ip.protocol();
    if ip.frag_offset() != 0 {
        out.fragment = Fragment::NonFirst;
        return Ok(());
    }
    if ip.more_frags() {
        out.fragment = Fragment::First;
    }
    parse_l4(frame, off + ip.header_len(), end, out.protocol, out)
}

#[inline]
fn parse_ipv6(
    frame: &[u8],
    off: usize,
    cfg: &ParseConfig,
    out: &mut Parsed,
) -> Result<(), DropReason> {
    let ip = Ipv6Packet::new_checked(&frame[off..])?;
    out.l3 = L3Kind::Ipv6;
    out.pseudo_src_offset = (off + ipv6::SRC_OFFSET) as u16;
    out.pseudo_dst_offset = (off + ipv6::DST_OFFSET) as u16;
    let end = off + ipv6::HEADER_LEN + usize::from(ip.payload_len());
    out.l3_end = end as u16;
    let mut nh = ip.next_header();
    let mut pos = off + ipv6::HEADER_LEN;
    while matches!(
        nh,
        IpProtocol::HopByHop
            | IpProtocol::DestOptions
            | IpProtocol::Routing
            | IpProtocol::Fragment
            | IpProtocol::Ah
    ) {
        // Bounded: ext_count grows each turn and the limit is at most 32.
        if out.ext_count >= cfg.max_ext_headers() {
            return Err(DropReason::ExtChainTooLong);
        }
        out.ext_count += 1;
        let b = &frame[pos..end];
        match nh {
            IpProtocol::HopByHop | IpProtocol::DestOptions => {
                let dest = nh == IpProtocol::DestOptions;
                if !dest && out.ext_count != 1 {
                    return Err(DropReason::HopByHopNotFirst);
                }
                let h = ExtHeader::new_checked(b)?;
                walk_options(h.data(), pos + 2, dest, out)?;
                nh = h.next_header();
                pos += h.header_len();
            }
            IpProtocol::Routing => {
                let h = ExtHeader::new_checked(b)?;
                if h.routing_type() == 2 {
                    h.type2_home_address()?;
                    let a = (pos + ext::TYPE2_HOME_OFFSET) as u16;
                    out.rh2_offset = a;
                    if h.segments_left() == 1 {
                        out.pseudo_dst_offset = a;
                    }
                }
                nh = h.next_header();
                pos += h.header_len();
            }
            IpProtocol::Fragment => {
                let f = FragmentHeader::new_checked(b)?;
                nh = f.next_header();
                pos += f.header_len();
                if f.frag_offset() != 0 {
                    out.fragment = Fragment::NonFirst;
                    out.protocol = nh;
                    return Ok(());
                }
                if f.more_frags() {
                    out.fragment = Fragment::First;
                }
            }
            _ => {
                let a = AuthHeader::new_checked(b)?;
                nh = a.next_header();
                pos += a.header_len();
            }
        }
    }
    out.protocol = nh;
    match nh {
        IpProtocol::Mobility => {
            let mh = MobilityHeader::new_checked(&frame[pos..end])?;
            out.l4_offset = pos as u16;
            out.mh_type = u8::from(mh.mh_type());
            if let Some(o) = mh.alternate_coa_offset() {
                out.alt_coa_offset = (pos + o) as u16;
            }
            Ok(())
        }
        IpProtocol::NoNextHeader => Ok(()),
        _ => parse_l4(frame, pos, end, nh, out),
    }
}

/// Walks Hop-by-Hop / Destination Options TLVs (RFC 8200 §4.2). `base` is
/// the frame offset of `data`. The Home Address option (RFC 6275 §6.3) is
/// recognised only in a Destination Options header; in a Hop-by-Hop header
/// type 201 is unknown and its high bits (11) say discard.
#[inline]
fn walk_options(data: &[u8], base: usize, dest: bool, out: &mut Parsed) -> Result<(), DropReason> {
    for opt in Ipv6Options::new(data) {
        let opt = opt?;
        match opt.kind {
            ext::OPT_PAD1 | ext::OPT_PADN => {}
            ext::OPT_HOME_ADDRESS if dest => {
                if opt.data.len() != 16 {
                    return Err(DropReason::HaoBadLength);
                }
                if out.hao_offset != 0 {
                    return Err(DropReason::HaoDuplicate);
                }
                if opt.data[0] == 0xff {
                    return Err(DropReason::HaoNotUnicast);
                }
                let a = (base + opt.offset + 2) as u16;
                out.hao_offset = a;
                out.pseudo_src_offset = a;
            }
            k => {
                if UnknownOptionAction::of(k) != UnknownOptionAction::Skip {
                    return Err(DropReason::UnknownOptionDiscard);
                }
            }
        }
    }
    Ok(())
}

#[inline]
fn parse_l4(
    frame: &[u8],
    start: usize,
    end: usize,
    proto: IpProtocol,
    out: &mut Parsed,
) -> Result<(), DropReason> {
    let b = &frame[start..end];
    match proto {
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(b)?;
            out.src_port = t.src_port();
            out.dst_port = t.dst_port();
            out.tcp_seq = t.seq_number();
            out.tcp_flags = t.flags();
        }
        IpProtocol::Udp => {
            if out.fragment == Fragment::First {
                // UDP Length covers the whole datagram, not this fragment.
                if b.len() < super::udp::HEADER_LEN {
                    return Err(DropReason::UdpTruncated);
                }
                let u = UdpPacket::new_unchecked(b);
                out.src_port = u.src_port();
                out.dst_port = u.dst_port();
            } else {
                let u = UdpPacket::new_checked(b)?;
                out.src_port = u.src_port();
                out.dst_port = u.dst_port();
            }
        }
        IpProtocol::Esp => {
            let e = EspPacket::new_checked(b)?;
            out.esp_spi = e.spi();
            out.esp_seq = e.sequence();
        }
        IpProtocol::Icmp => {
            IcmpPacket::new_checked(b)?;
        }
        IpProtocol::Icmpv6 => {
            Icmpv6Packet::new_checked(b)?;
        }
        _ => {}
    }
    out.l4_offset = start as u16;
    Ok(())
}
