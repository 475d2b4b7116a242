//! The classifier: one bounded walk from Ethernet through VLAN tags, IPv4 or
//! IPv6 and its extension-header chain, to the upper-layer header, producing
//! a small `Copy` summary ([`Parsed`]) of offsets and the fields the data
//! plane needs.
//!
//! Design choices:
//! - The summary stores offsets into the frame, not copies of addresses, so
//!   it stays small (under 64 octets) and the identity code reads the 16
//!   octets it needs only when it needs them. An offset of 0 means "absent":
//!   offset 0 is always the Ethernet destination, never a header we report.
//! - [`parse_into`] writes into a caller-owned summary and leaves in it
//!   whatever was validated before a refusal, so `classify` can still name
//!   the best identity of a dropped packet; [`parse`] is the by-value wrapper.
//! - The extension-header walk counts Hop-by-Hop, Destination Options,
//!   Routing, Fragment and AH headers against [`ParseConfig::max_ext_headers`]
//!   (default 8, hard maximum 32), so the loop is bounded even if a crafted
//!   chain is 64 headers long. ESP, the Mobility Header, No Next Header and
//!   any upper-layer protocol end the walk.
//! - Pseudo-header addresses (RFC 8200 §8.1) are resolved here, once: the
//!   source is the Home Address option's address when there is one (RFC 6275
//!   §6.3), the destination is the type 2 Routing header's home address while
//!   its Segments Left is 1 (the final destination, RFC 6275 §6.4).
//! - Frames longer than 65535 octets are looked at only up to 65535 octets,
//!   so every offset fits the summary's `u16` fields.

use super::arp::ArpPacket;
use super::esp::EspPacket;
use super::ethernet::{self, EtherType, EthernetFrame};
use super::ext::{self, AuthHeader, ExtHeader, FragmentHeader, Ipv6Options, UnknownOptionAction};
use super::icmp::IcmpPacket;
use super::icmpv6::Icmpv6Packet;
use super::ipv4::{self, Ipv4Packet};
use super::ipv6::{self, Ipv6Packet};
use super::mobility::{MhType, MobilityHeader};
use super::tcp::TcpPacket;
use super::udp::UdpPacket;
use super::vlan::{self, VlanTag};
use super::{bytes16, bytes4, DropReason, IpProtocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Default limit on IPv6 extension headers per packet.
pub const DEFAULT_MAX_EXT_HEADERS: u8 = 8;
/// Hard maximum for [`ParseConfig::with_max_ext_headers`].
pub const HARD_MAX_EXT_HEADERS: u8 = 32;

/// Classifier settings, built once per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseConfig {
    max_ext_headers: u8,
    verify_ipv4_checksum: bool,
}

impl Default for ParseConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ParseConfig {
    /// Defaults: 8 extension headers, IPv4 header checksum verified.
    pub const fn new() -> Self {
        ParseConfig { max_ext_headers: DEFAULT_MAX_EXT_HEADERS, verify_ipv4_checksum: true }
    }

    /// Sets the extension-header limit, clamped to [`HARD_MAX_EXT_HEADERS`].
    /// Configuration code should reject larger values before calling this.
    pub const fn with_max_ext_headers(mut self, n: u8) -> Self {
        self.max_ext_headers = if n > HARD_MAX_EXT_HEADERS { HARD_MAX_EXT_HEADERS } else { n };
        self
    }

    /// Turns IPv4 header checksum verification on or off (off when the NIC
    /// already verified it, `RTE_MBUF_F_RX_IP_CKSUM_GOOD`).
    pub const fn with_ipv4_checksum(mut self, verify: bool) -> Self {
        self.verify_ipv4_checksum = verify;
        self
    }

    /// The extension-header limit.
    pub const fn max_ext_headers(&self) -> u8 {
        self.max_ext_headers
    }
}

/// The network-layer protocol of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L3Kind {
    /// Nothing validated yet (only seen in a refused packet's summary).
    #[default]
    None,
    /// ARP (RFC 826).
    Arp,
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

/// Fragmentation state of the packet (IPv4 flags/offset or IPv6 Fragment
/// header, RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fragment {
    /// Not a fragment (an atomic fragment, offset 0 and M=0, counts as this).
    #[default]
    None,
    /// First fragment: offset 0, more follow; carries the L4 header.
    First,
    /// Non-first fragment: no L4 header, no ports.
    NonFirst,
}

/// What one parse found. Offsets are from the start of the frame; 0 means
/// absent. Fields for a protocol are meaningful only for that protocol
/// (e.g. `tcp_seq` when `protocol == Tcp` and `has_l4()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Parsed {
    /// Number of VLAN tags (0..=2).
    pub vlan_count: u8,
    /// VLAN IDs, outer first.
    pub vlan_ids: [u16; 2],
    /// Network layer.
    pub l3: L3Kind,
    /// Offset of the IPv4/IPv6 header or ARP packet.
    pub l3_offset: u16,
    /// End of the IP packet (Total Length / Payload Length; excludes padding).
    pub l3_end: u16,
    /// Upper-layer protocol: the last Next Header / Protocol value.
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header (TCP, UDP, ICMP, ESP, MH, ...);
    /// 0 for a non-first fragment or No Next Header.
    pub l4_offset: u16,
    /// IPv6 extension headers walked.
    pub ext_count: u8,
    /// Fragmentation state.
    pub fragment: Fragment,
    /// TCP/UDP source port.
    pub src_port: u16,
    /// TCP/UDP destination port.
    pub dst_port: u16,
    /// TCP sequence number.
    pub tcp_seq: u32,
    /// TCP flags octet.
    pub tcp_flags: u8,
    /// ESP SPI (non-zero when the packet is ESP).
    pub esp_spi: u32,
    /// ESP sequence number.
    pub esp_seq: u32,
    /// Offset of the 16-octet address in the Home Address option.
    pub hao_offset: u16,
    /// Offset of the 16-octet home address in a type 2 Routing header.
    pub rh2_offset: u16,
    /// Offset of the address that is the L4 pseudo-header source.
    pub pseudo_src_offset: u16,
    /// Offset of the address that is the L4 pseudo-header destination.
    pub pseudo_dst_offset: u16,
    /// MH Type when `protocol == Mobility`.
    pub mh_type: u8,
    /// Offset of the Alternate Care-of Address in a Binding Update.
    pub alt_coa_offset: u16,
}

impl Parsed {
    /// True when an upper-layer header was found and validated.
    #[inline]
    pub fn has_l4(&self) -> bool {
        self.l4_offset != 0
    }

    /// True when the packet is ESP with a validated SPI.
    #[inline]
    pub fn is_esp(&self) -> bool {
        self.esp_spi != 0
    }

    /// True when a Home Address option was found.
    #[inline]
    pub fn has_hao(&self) -> bool {
        self.hao_offset != 0
    }

    /// True when a type 2 Routing header was found.
    #[inline]
    pub fn has_rh2(&self) -> bool {
        self.rh2_offset != 0
    }

    /// True when the packet is a validated Mobility Header Binding Update.
    #[inline]
    pub fn is_binding_update(&self) -> bool {
        self.protocol == IpProtocol::Mobility && self.has_l4() && self.mh_type == u8::from(MhType::BindingUpdate)
    }

    /// The IP (or ARP sender) source address. `frame` must be the frame
    /// this summary came from; returns `None` if it is not.
    #[inline]
    pub fn src_addr(&self, frame: &[u8]) -> Option<IpAddr> {
        let o = usize::from(self.l3_offset);
        match self.l3 {
            L3Kind::Ipv4 => read4(frame, o + ipv4::SRC_OFFSET).map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            L3Kind::Ipv6 => read16(frame, o + ipv6::SRC_OFFSET).map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            L3Kind::Arp => read4(frame, o + super::arp::SPA_OFFSET).map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            L3Kind::None => None,
        }
    }

    /// The IPv6 source address, if the packet is IPv6.
    #[inline]
    pub fn ipv6_src(&self, frame: &[u8]) -> Option<Ipv6Addr> {
        if self.l3 != L3Kind::Ipv6 {
            return None;
        }
        read16(frame, usize::from(self.l3_offset) + ipv6::SRC_OFFSET).map(Ipv6Addr::from)
    }

    /// The home address from the Home Address option.
    #[inline]
    pub fn home_address(&self, frame: &[u8]) -> Option<Ipv6Addr> {
        self.addr16(frame, self.hao_offset)
    }

    /// The home address from a type 2 Routing header.
    #[inline]
    pub fn rh2_home_address(&self, frame: &[u8]) -> Option<Ipv6Addr> {
        self.addr16(frame, self.rh2_offset)
    }

    /// The Alternate Care-of Address of a Binding Update.
    #[inline]
    pub fn alternate_coa(&self, frame: &[u8]) -> Option<Ipv6Addr> {
        self.addr16(frame, self.alt_coa_offset)
    }

    #[inline]
    fn addr16(&self, frame: &[u8], off: u16) -> Option<Ipv6Addr> {
        if off == 0 {
            return None;
        }
        read16(frame, usize::from(off)).map(Ipv6Addr::from)
    }
}

#[inline]
fn read16(b: &[u8], off: usize) -> Option<[u8; 16]> {
    (off + 16 <= b.len()).then(|| bytes16(b, off))
}

#[inline]
fn read4(b: &[u8], off: usize) -> Option<[u8; 4]> {
    (off + 4 <= b.len()).then(|| bytes4(b, off))
}

/// Parses `frame` into a fresh summary.
#[inline]
pub fn parse(frame: &[u8], cfg: &ParseConfig) -> Result<Parsed, DropReason> {
    let mut p = Parsed::default();
    parse_into(frame, cfg, &mut p)?;
    Ok(p)
}

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
fn parse_ipv4(frame: &[u8], off: usize, cfg: &ParseConfig, out: &mut Parsed) -> Result<(), DropReason> {
    let ip = Ipv4Packet::new_checked(&frame[off..])?;
    out.l3 = L3Kind::Ipv4;
    out.pseudo_src_offset = (off + ipv4::SRC_OFFSET) as u16;
    out.pseudo_dst_offset = (off + ipv4::DST_OFFSET) as u16;
    if cfg.verify_ipv4_checksum && !ip.verify_checksum() {
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
fn parse_ipv6(frame: &[u8], off: usize, cfg: &ParseConfig, out: &mut Parsed) -> Result<(), DropReason> {
    let ip = Ipv6Packet::new_checked(&frame[off..])?;
    out.l3 = L3Kind::Ipv6;
    out.pseudo_src_offset = (off + ipv6::SRC_OFFSET) as u16;
    out.pseudo_dst_offset = (off + ipv6::DST_OFFSET) as u16;
    let end = off + ipv6::HEADER_LEN + usize::from(ip.payload_len());
    out.l3_end = end as u16;
    let mut nh = ip.next_header();
    let mut pos = off + ipv6::HEADER_LEN;
    loop {
        match nh {
            IpProtocol::HopByHop
            | IpProtocol::DestOptions
            | IpProtocol::Routing
            | IpProtocol::Fragment
            | IpProtocol::Ah => {}
            _ => break,
        }
        // Bounded: ext_count grows each turn and the limit is at most 32.
        if out.ext_count >= cfg.max_ext_headers {
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
fn parse_l4(frame: &[u8], start: usize, end: usize, proto: IpProtocol, out: &mut Parsed) -> Result<(), DropReason> {
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
            let u = UdpPacket::new_checked(b)?;
            out.src_port = u.src_port();
            out.dst_port = u.dst_port();
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
