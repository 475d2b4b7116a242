//! The classifier: one bounded walk from Ethernet through VLAN tags, IPv4 or
//! IPv6 and its extension-header chain, to the upper-layer header, producing
//! a small `Copy` summary ([`Parsed`]) of offsets and the fields the data
//! plane needs.
//!
//! Design choices:
//! - The shapes nearly all traffic has (untagged IPv6, optionally with the
//!   Destination Options header a mobile node sends its home address in,
//!   or plain IPv4; then TCP or UDP) take straight-line code with every
//!   field at a fixed offset; everything else, and every refusal, takes the
//!   general walk. Both give the same summary and verdict (property-tested
//!   against a reference copy of the walk).
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
use super::ethernet::{self, EthernetFrame};
use super::ext::{self, AuthHeader, ExtHeader, FragmentHeader, UnknownOptionAction};
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
        ParseConfig {
            max_ext_headers: DEFAULT_MAX_EXT_HEADERS,
            verify_ipv4_checksum: true,
        }
    }

    /// Sets the extension-header limit, clamped to [`HARD_MAX_EXT_HEADERS`].
    /// Configuration code should reject larger values before calling this.
    pub const fn with_max_ext_headers(mut self, n: u8) -> Self {
        self.max_ext_headers = if n > HARD_MAX_EXT_HEADERS {
            HARD_MAX_EXT_HEADERS
        } else {
            n
        };
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

    /// True when the IPv4 header checksum is verified.
    pub const fn verifies_ipv4_checksum(&self) -> bool {
        self.verify_ipv4_checksum
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
        self.protocol == IpProtocol::Mobility
            && self.has_l4()
            && self.mh_type == u8::from(MhType::BindingUpdate)
    }

    /// The IP (or ARP sender) source address. `frame` must be the frame
    /// this summary came from; returns `None` if it is not.
    #[inline]
    pub fn src_addr(&self, frame: &[u8]) -> Option<IpAddr> {
        match self.l3 {
            L3Kind::Ipv6 => self.ipv6_src(frame).map(IpAddr::V6),
            _ => self.ipv4_src(frame).map(IpAddr::V4),
        }
    }

    /// The IPv4 source address (or the ARP sender's protocol address), if
    /// the packet is IPv4 or ARP.
    #[inline]
    pub fn ipv4_src(&self, frame: &[u8]) -> Option<Ipv4Addr> {
        let o = usize::from(self.l3_offset);
        let at = match self.l3 {
            L3Kind::Ipv4 => o + ipv4::SRC_OFFSET,
            L3Kind::Arp => o + super::arp::SPA_OFFSET,
            L3Kind::Ipv6 | L3Kind::None => return None,
        };
        read4(frame, at).map(Ipv4Addr::from)
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

/// The 16 octets at `off` as one big-endian `u128`. (Returning
/// `Option<[u8; 16]>` put the octets at offset 1 of the option, and the copy
/// into an [`Identity`](crate::identity::Identity) was split into 1-, 4- and
/// 8-octet moves that the identity hash's 8-octet loads could not be
/// store-forwarded from: about 7 ns per packet.)
#[inline]
fn read16(b: &[u8], off: usize) -> Option<u128> {
    (off + 16 <= b.len()).then(|| u128::from_be_bytes(bytes16(b, off)))
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

/// Raw Next Header / Protocol numbers the walk dispatches on: the same
/// numbers as [`IpProtocol`]'s variants (a unit test checks), matched as
/// plain octets so the hot path never builds the enum until it stores the
/// final protocol.
mod proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DEST_OPTIONS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    /// Bit `n` is set when Next Header `n` is an extension header the walk
    /// follows (all of them are below 64).
    pub const EXT_MASK: u64 =
        1 << HOP_BY_HOP | 1 << ROUTING | 1 << FRAGMENT | 1 << AH | 1 << DEST_OPTIONS;

    /// True for Hop-by-Hop, Destination Options, Routing, Fragment and AH.
    #[inline(always)]
    pub fn is_ext(nh: u8) -> bool {
        nh < 64 && EXT_MASK >> nh & 1 != 0
    }
}

/// Raw EtherTypes (IEEE 802.3 / IANA), the same numbers as
/// [`EtherType`](super::ethernet::EtherType)'s variants.
mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

/// Parses `frame` into `out`. On `Err`, `out` still holds what was validated
/// before the refusal (e.g. `l3` and a Home Address option found before a
/// later header failed).
///
/// Two tiers, with one result:
/// - The common shapes — untagged IPv6 with at most an RFC 6275 Destination
///   Options header, or plain IPv4, then TCP or UDP — are parsed by
///   straight-line code (`parse_common_ipv6`, `parse_common_ipv4`)
///   inlined in the caller, so the caller's next reads of the summary (the
///   identity's offsets) come from registers.
/// - Every other frame, and every frame one of their checks fails, goes to
///   the out-of-line walk (`parse_walk`). It makes every check in the
///   same order as a straightforward walk would, so a malformed frame always
///   gets the same [`DropReason`] (`tests::prop::differential*` compare both
///   tiers against a reference copy of the earlier walk); it only avoids
///   work: protocol numbers are dispatched as raw octets, and every header
///   below the IPv6 header is read from one slice that ends at the Payload
///   Length.
///
/// The walk writes the fields into `out` as they are found. (Building the
/// summary in a local and copying it out at the end was tried and measured
/// slower: the local is assembled on the stack with narrow stores and read
/// back with wide loads, which cannot be store-forwarded and stalled the
/// copy on every packet.)
#[inline(always)]
pub fn parse_into(frame: &[u8], cfg: &ParseConfig, out: &mut Parsed) -> Result<(), DropReason> {
    let frame = &frame[..frame.len().min(usize::from(u16::MAX))];
    let common = match frame.get(12..14).map(|e| u16::from_be_bytes([e[0], e[1]])) {
        Some(ethertype::IPV6) => parse_common_ipv6(frame, cfg, out),
        Some(ethertype::IPV4) => parse_common_ipv4(frame, cfg, out),
        _ => false,
    };
    if common {
        return Ok(());
    }
    parse_walk(frame, cfg, out)
}

/// The general walk, for every frame the straight-line paths
/// ([`parse_common_ipv6`], [`parse_common_ipv4`]) do not take.
/// `frame` is at most 65535 octets.
#[inline(never)]
fn parse_walk(frame: &[u8], cfg: &ParseConfig, out: &mut Parsed) -> Result<(), DropReason> {
    *out = Parsed::default();
    let eth = EthernetFrame::new_checked(frame)?;
    let mut et = eth.ethertype_raw();
    let mut off = ethernet::HEADER_LEN;
    if et == ethertype::IPV6 {
        // The common case: untagged IPv6.
        out.l3_offset = off as u16;
        return parse_ipv6(frame, off, cfg, out);
    }
    // At most two tags; the third TPID is refused, so this runs <= 3 times.
    while et == ethertype::VLAN || et == ethertype::QINQ {
        if usize::from(out.vlan_count) == out.vlan_ids.len() {
            return Err(DropReason::TooManyVlanTags);
        }
        let tag = VlanTag::new_checked(&frame[off..])?;
        out.vlan_ids[usize::from(out.vlan_count)] = tag.vid();
        out.vlan_count += 1;
        et = tag.ethertype_raw();
        off += vlan::HEADER_LEN;
    }
    out.l3_offset = off as u16;
    match et {
        ethertype::IPV6 => parse_ipv6(frame, off, cfg, out),
        ethertype::IPV4 => parse_ipv4(frame, off, cfg, out),
        ethertype::ARP => {
            ArpPacket::new_checked(&frame[off..])?;
            out.l3 = L3Kind::Arp;
            Ok(())
        }
        _ => Err(DropReason::UnknownEthertype),
    }
}

/// Straight-line parse of the shape nearly every packet has: untagged IPv6,
/// at most one Destination Options header laid out as RFC 6275 §6.3 has the
/// mobile node send it (Hdr Ext Len 2: PadN with 2 data octets, then the
/// Home Address option at offset 8n+6), then TCP or UDP. Every field is at
/// a fixed offset, so this is one length check and a few compares instead
/// of the walk's loop and dispatch.
///
/// It makes exactly the checks the walk makes on such a frame and writes the
/// same summary. Anything else — another shape, or a check that fails — returns
/// `false` without deciding anything, and the walk parses the frame from the
/// start and names the refusal. (`tests::prop::differential*` hold both, and
/// `differential_common` aims its edits at this path's fields.)
#[inline(always)]
fn parse_common_ipv6(frame: &[u8], cfg: &ParseConfig, out: &mut Parsed) -> bool {
    const L3: usize = ethernet::HEADER_LEN;
    const AFTER_IP: usize = L3 + ipv6::HEADER_LEN;
    /// The RFC 6275 Destination Options header: 24 octets.
    const HAO_DEST_OPTS: usize = 24;
    let Some(h) = frame.get(..AFTER_IP) else {
        return false;
    };
    if u16::from_be_bytes([h[12], h[13]]) != ethertype::IPV6 || h[L3] >> 4 != 6 {
        return false;
    }
    let end = AFTER_IP + usize::from(u16::from_be_bytes([h[L3 + 4], h[L3 + 5]]));
    let Some(pkt) = frame.get(..end) else {
        return false;
    };
    let mut nh = h[L3 + 6];
    let mut pos = AFTER_IP;
    let mut hao = 0;
    let mut ext_count = 0;
    if nh == proto::DEST_OPTIONS {
        let Some(d) = pkt.get(pos..pos + HAO_DEST_OPTS) else {
            return false;
        };
        if cfg.max_ext_headers == 0
            || d[1] != 2
            || d[2..4] != [ext::OPT_PADN, 2]
            || d[6..8] != [ext::OPT_HOME_ADDRESS, 16]
            || d[8] == 0xff
        {
            return false;
        }
        nh = d[0];
        hao = pos + 8;
        pos += HAO_DEST_OPTS;
        ext_count = 1;
    }
    let Some((protocol, src_port, dst_port, tcp_seq, tcp_flags)) = common_l4(&pkt[pos..], nh)
    else {
        return false;
    };
    *out = Parsed {
        l3: L3Kind::Ipv6,
        l3_offset: L3 as u16,
        l3_end: end as u16,
        protocol,
        l4_offset: pos as u16,
        ext_count,
        src_port,
        dst_port,
        tcp_seq,
        tcp_flags,
        hao_offset: hao as u16,
        pseudo_src_offset: if hao != 0 {
            hao as u16
        } else {
            (L3 + ipv6::SRC_OFFSET) as u16
        },
        pseudo_dst_offset: (L3 + ipv6::DST_OFFSET) as u16,
        ..Parsed::default()
    };
    true
}

/// Straight-line parse of plain IPv4: untagged, a 20-octet header (no
/// options), not a fragment, then TCP or UDP. Like [`parse_common_ipv6`] it
/// makes exactly the walk's checks (the header checksum too, when
/// configured), writes the same summary, and declines anything else.
#[inline(always)]
fn parse_common_ipv4(frame: &[u8], cfg: &ParseConfig, out: &mut Parsed) -> bool {
    const L3: usize = ethernet::HEADER_LEN;
    const AFTER_IP: usize = L3 + ipv4::HEADER_LEN;
    let Some(h) = frame.get(..AFTER_IP) else {
        return false;
    };
    let ip = &h[L3..];
    // Version 4, IHL 5; Flags and Fragment Offset: no MF, offset 0.
    if u16::from_be_bytes([h[12], h[13]]) != ethertype::IPV4
        || ip[0] != 0x45
        || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0
    {
        return false;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total < ipv4::HEADER_LEN {
        return false;
    }
    let end = L3 + total;
    let Some(pkt) = frame.get(..end) else {
        return false;
    };
    if cfg.verify_ipv4_checksum && super::checksum::sum_folded(ip) != 0xffff {
        return false;
    }
    let Some((protocol, src_port, dst_port, tcp_seq, tcp_flags)) =
        common_l4(&pkt[AFTER_IP..], ip[9])
    else {
        return false;
    };
    *out = Parsed {
        l3: L3Kind::Ipv4,
        l3_offset: L3 as u16,
        l3_end: end as u16,
        protocol,
        l4_offset: AFTER_IP as u16,
        src_port,
        dst_port,
        tcp_seq,
        tcp_flags,
        pseudo_src_offset: (L3 + ipv4::SRC_OFFSET) as u16,
        pseudo_dst_offset: (L3 + ipv4::DST_OFFSET) as u16,
        ..Parsed::default()
    };
    true
}

/// The straight-line paths' upper layer: TCP or UDP at the start of `b`
/// (which ends where the IP packet ends), with the walk's checks.
/// (protocol, source port, destination port, TCP sequence, TCP flags), or
/// `None` for another protocol or a failing check.
#[inline(always)]
fn common_l4(b: &[u8], nh: u8) -> Option<(IpProtocol, u16, u16, u32, u8)> {
    match nh {
        proto::TCP => {
            let t = b.get(..super::tcp::HEADER_LEN)?;
            let hl = usize::from(t[12] >> 4) * 4;
            if hl < super::tcp::HEADER_LEN || hl > b.len() {
                return None;
            }
            Some((
                IpProtocol::Tcp,
                u16::from_be_bytes([t[0], t[1]]),
                u16::from_be_bytes([t[2], t[3]]),
                u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
                t[13],
            ))
        }
        proto::UDP => {
            let u = b.get(..super::udp::HEADER_LEN)?;
            let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            if len < super::udp::HEADER_LEN || len > b.len() {
                return None;
            }
            Some((
                IpProtocol::Udp,
                u16::from_be_bytes([u[0], u[1]]),
                u16::from_be_bytes([u[2], u[3]]),
                0,
                0,
            ))
        }
        _ => None,
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
    if cfg.verify_ipv4_checksum && !ip.verify_checksum() {
        return Err(DropReason::Ipv4BadChecksum);
    }
    let end = off + usize::from(ip.total_len());
    out.l3_end = end as u16;
    let nh = ip.protocol_raw();
    out.protocol = IpProtocol::from(nh);
    if ip.frag_offset() != 0 {
        out.fragment = Fragment::NonFirst;
        return Ok(());
    }
    if ip.more_frags() {
        out.fragment = Fragment::First;
    }
    parse_l4(&frame[..end], off + ip.header_len(), nh, out)
}

#[inline(always)]
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
    // The IP packet without link padding; `new_checked` showed it fits.
    let pkt = &frame[..end];
    let mut nh = ip.next_header_raw();
    let mut pos = off + ipv6::HEADER_LEN;
    while proto::is_ext(nh) {
        // Bounded: ext_count grows each turn and the limit is at most 32.
        if out.ext_count >= cfg.max_ext_headers {
            return Err(DropReason::ExtChainTooLong);
        }
        out.ext_count += 1;
        // `pos <= end`: each header's length was checked against `pkt`.
        let b = &pkt[pos..];
        match nh {
            proto::DEST_OPTIONS | proto::HOP_BY_HOP => {
                let dest = nh == proto::DEST_OPTIONS;
                if !dest && out.ext_count != 1 {
                    return Err(DropReason::HopByHopNotFirst);
                }
                let h = ExtHeader::new_checked(b)?;
                walk_options(h.data(), pos + 2, dest, out)?;
                nh = h.next_header_raw();
                pos += h.header_len();
            }
            proto::ROUTING => {
                let h = ExtHeader::new_checked(b)?;
                if h.routing_type() == 2 {
                    h.type2_home_address()?;
                    let a = (pos + ext::TYPE2_HOME_OFFSET) as u16;
                    out.rh2_offset = a;
                    if h.segments_left() == 1 {
                        out.pseudo_dst_offset = a;
                    }
                }
                nh = h.next_header_raw();
                pos += h.header_len();
            }
            proto::FRAGMENT => {
                let f = FragmentHeader::new_checked(b)?;
                nh = f.next_header_raw();
                pos += f.header_len();
                if f.frag_offset() != 0 {
                    out.fragment = Fragment::NonFirst;
                    out.protocol = IpProtocol::from(nh);
                    return Ok(());
                }
                if f.more_frags() {
                    out.fragment = Fragment::First;
                }
            }
            _ => {
                let a = AuthHeader::new_checked(b)?;
                nh = a.next_header_raw();
                pos += a.header_len();
            }
        }
    }
    out.protocol = IpProtocol::from(nh);
    match nh {
        proto::MOBILITY => {
            let mh = MobilityHeader::new_checked(&pkt[pos..])?;
            out.l4_offset = pos as u16;
            out.mh_type = u8::from(mh.mh_type());
            if let Some(o) = mh.alternate_coa_offset() {
                out.alt_coa_offset = (pos + o) as u16;
            }
            Ok(())
        }
        proto::NO_NEXT_HEADER => Ok(()),
        _ => parse_l4(pkt, pos, nh, out),
    }
}

/// Walks Hop-by-Hop / Destination Options TLVs (RFC 8200 §4.2). `base` is
/// the frame offset of `data`. The Home Address option (RFC 6275 §6.3) is
/// recognised only in a Destination Options header; in a Hop-by-Hop header
/// type 201 is unknown and its high bits (11) say discard.
///
/// The same walk as [`ext::Ipv6Options`] (forward only, so bounded by the
/// header length; the first error ends it), written as a plain loop because
/// this one runs on every packet with a Home Address option.
#[inline]
fn walk_options(data: &[u8], base: usize, dest: bool, out: &mut Parsed) -> Result<(), DropReason> {
    // RFC 6275 §6.3's layout (PadN of 2 data octets, then the HAO at 8n+6)
    // passes the loop's length checks by construction, so only the HAO's
    // own checks are left, in the loop's order.
    if dest
        && data.len() == 22
        && data[..2] == [ext::OPT_PADN, 2]
        && data[4..6] == [ext::OPT_HOME_ADDRESS, 16]
    {
        if out.hao_offset != 0 {
            return Err(DropReason::HaoDuplicate);
        }
        if data[6] == 0xff {
            return Err(DropReason::HaoNotUnicast);
        }
        let a = (base + 6) as u16;
        out.hao_offset = a;
        out.pseudo_src_offset = a;
        return Ok(());
    }
    let mut i = 0;
    while let Some(&kind) = data.get(i) {
        if kind == ext::OPT_PAD1 {
            i += 1;
            continue;
        }
        let Some(&len) = data.get(i + 1) else {
            return Err(DropReason::OptionPastHeader);
        };
        let next = i + 2 + usize::from(len);
        if next > data.len() {
            return Err(DropReason::OptionPastHeader);
        }
        match kind {
            ext::OPT_PADN => {}
            ext::OPT_HOME_ADDRESS if dest => {
                if len != 16 {
                    return Err(DropReason::HaoBadLength);
                }
                if out.hao_offset != 0 {
                    return Err(DropReason::HaoDuplicate);
                }
                if data[i + 2] == 0xff {
                    return Err(DropReason::HaoNotUnicast);
                }
                let a = (base + i + 2) as u16;
                out.hao_offset = a;
                out.pseudo_src_offset = a;
            }
            k => {
                if UnknownOptionAction::of(k) != UnknownOptionAction::Skip {
                    return Err(DropReason::UnknownOptionDiscard);
                }
            }
        }
        i = next;
    }
    Ok(())
}

/// Checks the upper-layer header at `pkt[start..]` (`pkt` ends where the IP
/// packet ends) and records its fields.
#[inline(always)]
fn parse_l4(pkt: &[u8], start: usize, nh: u8, out: &mut Parsed) -> Result<(), DropReason> {
    let b = &pkt[start..];
    match nh {
        proto::TCP => {
            let t = TcpPacket::new_checked(b)?;
            out.src_port = t.src_port();
            out.dst_port = t.dst_port();
            out.tcp_seq = t.seq_number();
            out.tcp_flags = t.flags();
        }
        proto::UDP => {
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
        proto::ESP => {
            let e = EspPacket::new_checked(b)?;
            out.esp_spi = e.spi();
            out.esp_seq = e.sequence();
        }
        proto::ICMP => {
            IcmpPacket::new_checked(b)?;
        }
        proto::ICMPV6 => {
            Icmpv6Packet::new_checked(b)?;
        }
        _ => {}
    }
    out.l4_offset = start as u16;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::build::{self, Ext, L4};
    use super::super::ethernet::EtherType;
    use super::super::mobility::{bu_flags, BindingUpdateRepr, MhType};
    use super::*;

    fn cfg() -> ParseConfig {
        ParseConfig::new()
    }

    fn err(f: &[u8]) -> DropReason {
        parse(f, &cfg()).unwrap_err()
    }

    const SRC: &str = "2001:db8:c0a::1";
    const DST: &str = "2001:db8:5::80";
    const HOME: &str = "2001:db8:40::1";

    #[test]
    fn raw_numbers_match_the_enums() {
        for (raw, p) in [
            (proto::HOP_BY_HOP, IpProtocol::HopByHop),
            (proto::ICMP, IpProtocol::Icmp),
            (proto::TCP, IpProtocol::Tcp),
            (proto::UDP, IpProtocol::Udp),
            (proto::ROUTING, IpProtocol::Routing),
            (proto::FRAGMENT, IpProtocol::Fragment),
            (proto::ESP, IpProtocol::Esp),
            (proto::AH, IpProtocol::Ah),
            (proto::ICMPV6, IpProtocol::Icmpv6),
            (proto::NO_NEXT_HEADER, IpProtocol::NoNextHeader),
            (proto::DEST_OPTIONS, IpProtocol::DestOptions),
            (proto::MOBILITY, IpProtocol::Mobility),
        ] {
            assert_eq!(IpProtocol::from(raw), p);
        }
        for nh in 0..=255u8 {
            let ext = matches!(
                IpProtocol::from(nh),
                IpProtocol::HopByHop
                    | IpProtocol::DestOptions
                    | IpProtocol::Routing
                    | IpProtocol::Fragment
                    | IpProtocol::Ah
            );
            assert_eq!(proto::is_ext(nh), ext, "{nh}");
        }
        for (raw, e) in [
            (ethertype::IPV4, EtherType::Ipv4),
            (ethertype::ARP, EtherType::Arp),
            (ethertype::VLAN, EtherType::Vlan),
            (ethertype::QINQ, EtherType::QinQ),
            (ethertype::IPV6, EtherType::Ipv6),
        ] {
            assert_eq!(EtherType::from(raw), e);
        }
    }

    #[test]
    fn summary_is_small() {
        assert!(
            core::mem::size_of::<Parsed>() <= 64,
            "{}",
            core::mem::size_of::<Parsed>()
        );
    }

    /// The straight-line path takes the common shapes, declines every
    /// other one, and gives what the walk gives.
    #[test]
    fn common_shapes_take_the_straight_line_path() {
        let hao = || Ext::Hao(build::addr6(HOME));
        let taken = [
            build::eth_ipv6(SRC, DST, &[], &L4::Tcp(40000, 80, 9, 0x18)),
            build::eth_ipv6(SRC, DST, &[], &L4::Udp(5000, 53, vec![1, 2, 3])),
            build::eth_ipv6(SRC, DST, &[hao()], &L4::Tcp(40000, 80, 9, 0x18)),
            build::eth_ipv6(SRC, DST, &[hao()], &L4::Udp(5000, 53, vec![])),
        ];
        for f in &taken {
            let mut fast = Parsed::default();
            assert!(parse_common_ipv6(f, &cfg(), &mut fast), "{f:02x?}");
            assert!(!parse_common_ipv4(f, &cfg(), &mut Parsed::default()));
            let mut walk = Parsed::default();
            parse_walk(f, &cfg(), &mut walk).unwrap();
            assert_eq!(fast, walk);
        }
        let taken4 = [
            build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Tcp(40000, 80, 9, 0x18)),
            build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Udp(5000, 53, vec![7; 9])),
        ];
        for f in &taken4 {
            for c in [cfg(), cfg().with_ipv4_checksum(false)] {
                let mut fast = Parsed::default();
                assert!(parse_common_ipv4(f, &c, &mut fast), "{f:02x?}");
                assert!(!parse_common_ipv6(f, &c, &mut Parsed::default()));
                let mut walk = Parsed::default();
                parse_walk(f, &c, &mut walk).unwrap();
                assert_eq!(fast, walk);
            }
        }
        // A bad header checksum is declined (and refused by the walk)
        // unless the NIC verified it.
        let mut bad = taken4[0].clone();
        bad[24] ^= 0xff;
        assert!(!parse_common_ipv4(&bad, &cfg(), &mut Parsed::default()));
        assert!(parse_common_ipv4(
            &bad,
            &cfg().with_ipv4_checksum(false),
            &mut Parsed::default()
        ));
        let declined4 = [
            build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Esp(7, 1)),
            build::eth_ipv6(SRC, DST, &[], &L4::Tcp(1, 2, 3, 4)),
        ];
        for f in &declined4 {
            assert!(!parse_common_ipv4(f, &cfg(), &mut Parsed::default()));
        }
        let declined = [
            build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Tcp(1, 2, 3, 4)),
            build::eth_ipv6(SRC, DST, &[], &L4::Esp(7, 1)),
            build::eth_ipv6(SRC, DST, &[hao()], &L4::Esp(7, 1)),
            build::eth_ipv6(
                SRC,
                DST,
                &[Ext::HopByHop(vec![]), hao()],
                &L4::Tcp(1, 2, 3, 4),
            ),
            build::eth_ipv6(
                SRC,
                DST,
                &[Ext::DestOpts(vec![1, 4, 0, 0, 0, 0])],
                &L4::Tcp(1, 2, 3, 4),
            ),
            build::ethernet(
                EtherType::Ipv6,
                &[7],
                &build::ipv6(
                    build::addr6(SRC),
                    build::addr6(DST),
                    &[],
                    &L4::Tcp(1, 2, 3, 4),
                ),
            ),
        ];
        for f in &declined {
            let mut fast = Parsed::default();
            assert!(!parse_common_ipv6(f, &cfg(), &mut fast), "{f:02x?}");
            assert!(parse(f, &cfg()).is_ok());
        }
        // A refusal the walk names is declined too, and the walk names it.
        let mut f = taken[2].clone();
        f[14 + 40 + 8] = 0xff;
        assert!(!parse_common_ipv6(&f, &cfg(), &mut Parsed::default()));
        assert_eq!(err(&f), DropReason::HaoNotUnicast);
        assert_eq!(
            parse(&taken[2], &cfg().with_max_ext_headers(0)).unwrap_err(),
            DropReason::ExtChainTooLong
        );
    }

    #[test]
    fn ipv4_tcp() {
        let f = build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Tcp(40000, 80, 77, 0x12));
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!(
            (p.l3, p.l3_offset, p.l4_offset, p.protocol),
            (L3Kind::Ipv4, 14, 34, IpProtocol::Tcp)
        );
        assert_eq!(
            (p.src_port, p.dst_port, p.tcp_seq, p.tcp_flags),
            (40000, 80, 77, 0x12)
        );
        assert_eq!(p.src_addr(&f), Some("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn ipv4_bad_checksum_is_refused_unless_offloaded() {
        let mut f = build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Tcp(1, 2, 3, 4));
        f[24] ^= 0xff;
        assert_eq!(err(&f), DropReason::Ipv4BadChecksum);
        assert!(parse(&f, &cfg().with_ipv4_checksum(false)).is_ok());
    }

    #[test]
    fn ipv4_fragments() {
        let mut f = build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Udp(1, 2, vec![0; 8]));
        // MF set, offset 0: first fragment, L4 parsed; UDP Length (whole
        // datagram) may exceed the fragment.
        f[20] = 0x20;
        f[14 + 20 + 5] = 200;
        let mut ip = super::super::ipv4::Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.fill_checksum();
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!((p.fragment, p.src_port), (Fragment::First, 1));
        // Offset 8: non-first, no L4 even though the octets look like UDP.
        f[21] = 1;
        super::super::ipv4::Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!(
            (p.fragment, p.l4_offset, p.protocol),
            (Fragment::NonFirst, 0, IpProtocol::Udp)
        );
    }

    #[test]
    fn ipv6_tcp_and_padding_ignored() {
        let mut f = build::eth_ipv6(SRC, DST, &[], &L4::Tcp(1, 443, 5, 2));
        let len = f.len();
        f.extend_from_slice(&[0xee; 6]); // Ethernet padding after the IPv6 payload
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!((p.l4_offset, usize::from(p.l3_end)), (54, len));
        assert_eq!(p.dst_port, 443);
        assert_eq!((p.pseudo_src_offset, p.pseudo_dst_offset), (22, 38));
    }

    #[test]
    fn hao_tcp() {
        let f = build::eth_ipv6(
            SRC,
            DST,
            &[Ext::Hao(build::addr6(HOME))],
            &L4::Tcp(1, 80, 9, 0x10),
        );
        let p = parse(&f, &cfg()).unwrap();
        assert!(p.has_hao());
        assert_eq!(p.home_address(&f), Some(build::addr6(HOME)));
        assert_eq!(p.pseudo_src_offset, p.hao_offset);
        assert_eq!((p.ext_count, p.l4_offset), (1, 14 + 40 + 24));
    }

    #[test]
    fn hbh_destopts_padn_hao_udp() {
        let mut opts = vec![1, 2, 0, 0]; // PadN(2) to reach 8n+6
        opts.extend_from_slice(&[201, 16]);
        opts.extend_from_slice(&build::addr6(HOME).octets());
        let f = build::eth_ipv6(
            SRC,
            DST,
            &[Ext::HopByHop(vec![5, 2, 0, 0]), Ext::DestOpts(opts)],
            &L4::Udp(5000, 53, vec![1; 4]),
        );
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!(
            (p.ext_count, p.protocol, p.dst_port),
            (2, IpProtocol::Udp, 53)
        );
        assert_eq!(p.home_address(&f), Some(build::addr6(HOME)));
    }

    #[test]
    fn esp_and_ah() {
        let f = build::eth_ipv6(SRC, DST, &[], &L4::Esp(0xdead_beef, 42));
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!(
            (p.esp_spi, p.esp_seq, p.protocol),
            (0xdead_beef, 42, IpProtocol::Esp)
        );
        let f = build::eth_ipv6(SRC, DST, &[Ext::Ah(7, 3)], &L4::Tcp(1, 2, 3, 4));
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!((p.ext_count, p.dst_port), (1, 2));
        let f = build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Esp(0x100, 1));
        assert_eq!(parse(&f, &cfg()).unwrap().esp_spi, 0x100);
    }

    #[test]
    fn esp_cut_before_spi() {
        for cut in 0..8 {
            let f = build::eth_ipv6(SRC, DST, &[], &L4::Raw(50, vec![0x11; cut]));
            assert_eq!(err(&f), DropReason::EspTruncated, "cut {cut}");
        }
        let f = build::eth_ipv6(SRC, DST, &[], &L4::Raw(50, vec![0; 8]));
        assert_eq!(err(&f), DropReason::EspSpiZero);
    }

    #[test]
    fn binding_update_with_and_without_alt_coa() {
        let bu = BindingUpdateRepr {
            sequence: 3,
            flags: bu_flags::ACK,
            lifetime: 15,
            alternate_coa: None,
        };
        let f = build::eth_ipv6(
            SRC,
            HOME,
            &[Ext::Hao(build::addr6(HOME))],
            &L4::BindingUpdate(bu),
        );
        let p = parse(&f, &cfg()).unwrap();
        assert!(p.is_binding_update());
        assert_eq!(
            (p.mh_type, p.alt_coa_offset),
            (u8::from(MhType::BindingUpdate), 0)
        );
        let bu = BindingUpdateRepr {
            alternate_coa: Some(build::addr6("2001:db8:c0b::2")),
            ..bu
        };
        let f = build::eth_ipv6(
            SRC,
            HOME,
            &[Ext::Hao(build::addr6(HOME))],
            &L4::BindingUpdate(bu),
        );
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!(p.alternate_coa(&f), Some(build::addr6("2001:db8:c0b::2")));
    }

    #[test]
    fn mh_with_bogus_length() {
        let bu = BindingUpdateRepr {
            sequence: 3,
            flags: 0,
            lifetime: 15,
            alternate_coa: None,
        };
        let mut f = build::eth_ipv6(SRC, HOME, &[], &L4::BindingUpdate(bu));
        let mh = 14 + 40;
        f[mh + 1] = 9; // 80 octets in a 16-octet message
        assert_eq!(err(&f), DropReason::MhLengthPastPacket);
        let mut g = build::eth_ipv6(SRC, HOME, &[], &L4::Raw(135, vec![59, 0, 5, 0, 0, 0, 0, 0]));
        assert_eq!(err(&g), DropReason::MhBadLength);
        g.truncate(g.len() - 4);
        g[18..20].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(err(&g), DropReason::MhTruncated);
    }

    #[test]
    fn vlan_and_qinq() {
        let ip = build::ipv4(
            "192.0.2.1".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
            &L4::Udp(1, 2, vec![]),
        );
        let f = build::ethernet(EtherType::Ipv4, &[100], &ip);
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!((p.vlan_count, p.vlan_ids[0], p.l3_offset), (1, 100, 18));
        let f = build::ethernet(EtherType::Ipv4, &[200, 300], &ip);
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!((p.vlan_count, p.vlan_ids, p.l3_offset), (2, [200, 300], 22));
        let f = build::ethernet(EtherType::Ipv4, &[1, 2, 3], &ip);
        assert_eq!(err(&f), DropReason::TooManyVlanTags);
        let f = build::ethernet(EtherType::Ipv4, &[1], &[]);
        assert_eq!(err(&f[..16]), DropReason::VlanTruncated);
    }

    #[test]
    fn arp_and_unknown_ethertype() {
        let mut arp = [0u8; 28];
        super::super::arp::ArpRepr {
            operation: super::super::arp::ArpOperation::Request,
            source_hardware_addr: super::super::ethernet::EthernetAddress([2, 0, 0, 0, 0, 9]),
            source_protocol_addr: "192.0.2.9".parse().unwrap(),
            target_hardware_addr: Default::default(),
            target_protocol_addr: "192.0.2.1".parse().unwrap(),
        }
        .emit(&mut arp);
        let f = build::ethernet(EtherType::Arp, &[], &arp);
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!(p.l3, L3Kind::Arp);
        assert_eq!(p.src_addr(&f), Some("192.0.2.9".parse().unwrap()));
        assert_eq!(err(&f[..30]), DropReason::ArpTruncated);
        let f = build::ethernet(EtherType::Unknown(0x88cc), &[], &[0; 40]);
        assert_eq!(err(&f), DropReason::UnknownEthertype);
    }

    #[test]
    fn ipv6_fragments() {
        let f = build::eth_ipv6(SRC, DST, &[Ext::Fragment(0, true, 9)], &L4::Tcp(1, 2, 3, 4));
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!((p.fragment, p.dst_port), (Fragment::First, 2));
        let f = build::eth_ipv6(
            SRC,
            DST,
            &[Ext::Fragment(1448, false, 9)],
            &L4::Raw(6, vec![0xff; 5]),
        );
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!(
            (p.fragment, p.l4_offset, p.protocol),
            (Fragment::NonFirst, 0, IpProtocol::Tcp)
        );
        // HAO before a non-first fragment still gives the identity.
        let f = build::eth_ipv6(
            SRC,
            DST,
            &[Ext::Hao(build::addr6(HOME)), Ext::Fragment(8, true, 9)],
            &L4::Raw(6, vec![]),
        );
        assert!(parse(&f, &cfg()).unwrap().has_hao());
        let f = build::eth_ipv6(SRC, DST, &[], &L4::Raw(44, vec![6, 0, 0]));
        assert_eq!(err(&f), DropReason::FragmentTruncated);
    }

    #[test]
    fn routing_headers() {
        let f = build::eth_ipv6(
            DST,
            SRC,
            &[Ext::Routing2(build::addr6(HOME), 1)],
            &L4::Tcp(80, 1, 1, 0x10),
        );
        let p = parse(&f, &cfg()).unwrap();
        assert!(p.has_rh2());
        assert_eq!(p.rh2_home_address(&f), Some(build::addr6(HOME)));
        assert_eq!(p.pseudo_dst_offset, p.rh2_offset);
        let f = build::eth_ipv6(
            DST,
            SRC,
            &[Ext::Routing2(build::addr6(HOME), 0)],
            &L4::Tcp(80, 1, 1, 0x10),
        );
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!(p.pseudo_dst_offset, 14 + 24);
        let f = build::eth_ipv6(
            DST,
            SRC,
            &[Ext::Routing2(build::addr6(HOME), 3)],
            &L4::Tcp(80, 1, 1, 0x10),
        );
        assert_eq!(err(&f), DropReason::RoutingType2BadSegments);
        // Segment Routing (type 4) is walked by its length.
        let f = build::eth_ipv6(DST, SRC, &[Ext::Routing(4, 2)], &L4::Udp(1, 2, vec![]));
        assert_eq!(parse(&f, &cfg()).unwrap().dst_port, 2);
        let f = build::eth_ipv6(DST, SRC, &[Ext::Routing(2, 0)], &L4::Udp(1, 2, vec![]));
        assert_eq!(err(&f), DropReason::RoutingType2BadLength);
    }

    fn destopts_with(opts: &[u8]) -> Vec<u8> {
        build::eth_ipv6(
            SRC,
            DST,
            &[Ext::DestOpts(opts.to_vec())],
            &L4::Tcp(1, 2, 3, 4),
        )
    }

    fn hao_with_len(n: u8) -> Vec<u8> {
        let mut o = vec![201, n];
        o.extend(std::iter::repeat(0x20).take(usize::from(n)));
        o
    }

    #[test]
    fn hao_malformed() {
        for n in [0u8, 8, 20] {
            assert_eq!(
                err(&destopts_with(&hao_with_len(n))),
                DropReason::HaoBadLength,
                "len {n}"
            );
        }
        let mut two = vec![1, 2, 0, 0];
        two.extend(hao_with_len(16));
        two.extend([1, 4, 0, 0, 0, 0]);
        two.extend(hao_with_len(16));
        assert_eq!(err(&destopts_with(&two)), DropReason::HaoDuplicate);
        let mut mc = hao_with_len(16);
        mc[2] = 0xff;
        assert_eq!(err(&destopts_with(&mc)), DropReason::HaoNotUnicast);
        // HAO in a Hop-by-Hop header: type 201 is unknown there, bits 11: discard.
        let f = build::eth_ipv6(
            SRC,
            DST,
            &[Ext::HopByHop(hao_with_len(16))],
            &L4::Tcp(1, 2, 3, 4),
        );
        assert_eq!(err(&f), DropReason::UnknownOptionDiscard);
        // Two HAOs in two Destination Options headers.
        let f = build::eth_ipv6(
            SRC,
            DST,
            &[Ext::Hao(build::addr6(HOME)), Ext::Hao(build::addr6(HOME))],
            &L4::Tcp(1, 2, 3, 4),
        );
        assert_eq!(err(&f), DropReason::HaoDuplicate);
    }

    #[test]
    fn options_malformed_and_unknown() {
        // PadN with zero length is fine; an unknown skip-type option too.
        assert!(parse(&destopts_with(&[1, 0, 0x1e, 2, 0, 0]), &cfg()).is_ok());
        for t in [0x5e, 0x9e, 0xde] {
            assert_eq!(
                err(&destopts_with(&[t, 0])),
                DropReason::UnknownOptionDiscard
            );
        }
        // Option length past the header: hand-built so padding cannot fix it.
        let mut f = destopts_with(&[1, 4, 0, 0, 0, 0]);
        f[14 + 40 + 3] = 9;
        assert_eq!(err(&f), DropReason::OptionPastHeader);
        // Hdr Ext Len past the packet.
        let mut f = destopts_with(&[1, 4, 0, 0, 0, 0]);
        f[14 + 40 + 1] = 40;
        assert_eq!(err(&f), DropReason::ExtHeaderPastPacket);
        // Extension header cut to one octet.
        let f = build::eth_ipv6(SRC, DST, &[], &L4::Raw(60, vec![6]));
        assert_eq!(err(&f), DropReason::ExtTruncated);
    }

    #[test]
    fn hop_by_hop_must_be_first() {
        let f = build::eth_ipv6(
            SRC,
            DST,
            &[Ext::DestOpts(vec![]), Ext::HopByHop(vec![])],
            &L4::Tcp(1, 2, 3, 4),
        );
        assert_eq!(err(&f), DropReason::HopByHopNotFirst);
    }

    #[test]
    fn chain_limit() {
        let chain = |n: usize| vec![Ext::DestOpts(vec![]); n];
        let f = build::eth_ipv6(SRC, DST, &chain(8), &L4::Tcp(1, 2, 3, 4));
        assert_eq!(parse(&f, &cfg()).unwrap().ext_count, 8);
        let f = build::eth_ipv6(SRC, DST, &chain(9), &L4::Tcp(1, 2, 3, 4));
        assert_eq!(err(&f), DropReason::ExtChainTooLong);
        assert!(parse(&f, &cfg().with_max_ext_headers(9)).is_ok());
        let f = build::eth_ipv6(SRC, DST, &chain(64), &L4::Tcp(1, 2, 3, 4));
        assert_eq!(err(&f), DropReason::ExtChainTooLong);
        assert_eq!(
            cfg().with_max_ext_headers(200).max_ext_headers(),
            HARD_MAX_EXT_HEADERS
        );
        assert_eq!(
            parse(&f, &cfg().with_max_ext_headers(200)).unwrap_err(),
            DropReason::ExtChainTooLong
        );
        // Limit 0: any extension header is refused.
        let f = build::eth_ipv6(SRC, DST, &chain(1), &L4::Tcp(1, 2, 3, 4));
        assert_eq!(
            parse(&f, &cfg().with_max_ext_headers(0)).unwrap_err(),
            DropReason::ExtChainTooLong
        );
    }

    #[test]
    fn no_next_header_and_other_protocols() {
        let f = build::eth_ipv6(SRC, DST, &[Ext::Hao(build::addr6(HOME))], &L4::None);
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!((p.protocol, p.l4_offset), (IpProtocol::NoNextHeader, 0));
        let f = build::eth_ipv6(SRC, DST, &[], &L4::Raw(47, vec![0; 4]));
        let p = parse(&f, &cfg()).unwrap();
        assert_eq!((p.protocol, p.l4_offset), (IpProtocol::Gre, 54));
        let f = build::eth_ipv6(SRC, DST, &[], &L4::Raw(58, vec![1, 2, 3]));
        assert_eq!(err(&f), DropReason::Icmpv6Truncated);
        let f = build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Raw(1, vec![8, 0, 0]));
        assert_eq!(err(&f), DropReason::IcmpTruncated);
    }

    /// Every prefix of every well-formed frame is refused or accepted
    /// without panicking, and a strict prefix that cuts into a header is
    /// refused.
    #[test]
    fn every_truncation_of_fixtures() {
        let bu = BindingUpdateRepr {
            sequence: 3,
            flags: 0,
            lifetime: 15,
            alternate_coa: Some(build::addr6("2001:db8::9")),
        };
        let frames = [
            build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Tcp(1, 2, 3, 4)),
            build::eth_ipv6(
                SRC,
                DST,
                &[
                    Ext::HopByHop(vec![]),
                    Ext::Hao(build::addr6(HOME)),
                    Ext::Ah(1, 3),
                ],
                &L4::Udp(1, 2, vec![]),
            ),
            build::eth_ipv6(
                SRC,
                DST,
                &[Ext::Hao(build::addr6(HOME))],
                &L4::BindingUpdate(bu),
            ),
            build::eth_ipv6(
                SRC,
                DST,
                &[
                    Ext::Routing2(build::addr6(HOME), 1),
                    Ext::Fragment(0, true, 1),
                ],
                &L4::Esp(5, 6),
            ),
        ];
        for f in &frames {
            assert!(parse(f, &cfg()).is_ok());
            for n in 0..f.len() {
                // IP length fields now exceed the buffer, so every cut is refused.
                assert!(parse(&f[..n], &cfg()).is_err(), "prefix {n} accepted");
            }
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn ext_strategy() -> impl Strategy<Value = Ext> {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..12).prop_map(Ext::HopByHop),
                proptest::collection::vec(any::<u8>(), 0..12).prop_map(Ext::DestOpts),
                any::<[u8; 16]>().prop_map(|a| Ext::Hao(Ipv6Addr::from(a))),
                (any::<[u8; 16]>(), 0u8..3).prop_map(|(a, s)| Ext::Routing2(Ipv6Addr::from(a), s)),
                (any::<u16>(), any::<bool>(), any::<u32>())
                    .prop_map(|(o, m, i)| Ext::Fragment(o, m, i)),
                (any::<u32>(), 0u8..4).prop_map(|(s, w)| Ext::Ah(s, w)),
            ]
        }

        /// Option areas built from meaningful TLVs: pads, Home Address
        /// options of good and bad length and address, unknown options with
        /// each action, and a TLV cut short.
        fn options_strategy() -> impl Strategy<Value = Vec<u8>> {
            let tlv = prop_oneof![
                Just(vec![0u8]),
                (0u8..6).prop_map(|n| {
                    let mut v = vec![1, n];
                    v.resize(2 + usize::from(n), 0);
                    v
                }),
                (
                    prop_oneof![Just(0x20u8), Just(0xff), Just(0xfe)],
                    prop_oneof![Just(16u8), Just(15), Just(0), Just(20)]
                )
                    .prop_map(|(first, len)| {
                        let mut v = vec![201, len, first];
                        v.resize(2 + usize::from(len), 0x11);
                        v
                    }),
                (any::<u8>(), 0u8..4).prop_map(|(t, n)| {
                    let mut v = vec![t, n];
                    v.resize(2 + usize::from(n), 0);
                    v
                }),
                (any::<u8>(), 1u8..30).prop_map(|(t, n)| vec![t, n]),
            ];
            proptest::collection::vec(tlv, 0..4).prop_map(|v| v.concat())
        }

        fn rich_ext_strategy() -> impl Strategy<Value = Ext> {
            prop_oneof![
                2 => ext_strategy(),
                1 => options_strategy().prop_map(Ext::HopByHop),
                2 => options_strategy().prop_map(Ext::DestOpts),
                1 => (any::<u8>(), 0u8..3).prop_map(|(t, u)| Ext::Routing(t, u)),
                // RFC 6275 layout, multicast or not.
                2 => (prop_oneof![Just(0xffu8), Just(0xfe), Just(0x20)], any::<[u8; 16]>()).prop_map(|(first, mut a)| {
                    a[0] = first;
                    Ext::Hao(Ipv6Addr::from(a))
                }),
            ]
        }

        /// Octets that mean something to the walk, for overwrites.
        fn octet_strategy() -> impl Strategy<Value = u8> {
            prop_oneof![
                any::<u8>(),
                proptest::sample::select(vec![
                    0u8, 1, 2, 3, 4, 5, 6, 8, 16, 17, 43, 44, 50, 51, 58, 59, 60, 135, 201, 0x45,
                    0x60, 0xff
                ]),
            ]
        }

        fn l4_strategy() -> impl Strategy<Value = L4> {
            prop_oneof![
                (any::<u16>(), any::<u16>(), any::<u32>(), any::<u8>())
                    .prop_map(|(a, b, c, d)| L4::Tcp(a, b, c, d)),
                (
                    any::<u16>(),
                    any::<u16>(),
                    proptest::collection::vec(any::<u8>(), 0..8)
                )
                    .prop_map(|(a, b, p)| L4::Udp(a, b, p)),
                (1u32.., any::<u32>()).prop_map(|(s, q)| L4::Esp(s, q)),
                (
                    any::<u16>(),
                    any::<u16>(),
                    any::<u16>(),
                    proptest::option::of(any::<[u8; 16]>())
                )
                    .prop_map(|(s, f, l, a)| {
                        L4::BindingUpdate(BindingUpdateRepr {
                            sequence: s,
                            flags: f,
                            lifetime: l,
                            alternate_coa: a.map(Ipv6Addr::from),
                        })
                    }),
                Just(L4::None),
                (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..24))
                    .prop_map(|(p, b)| L4::Raw(p, b)),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(10000))]

            /// The walk gives the same verdict and summary as the reference
            /// copy of the pre-rework walk, on valid frames of every shape
            /// (VLAN tags, IPv4 with options, IPv6 chains, every L4) after
            /// random octet overwrites and truncation, under random limits.
            #[test]
            fn differential(
                exts in proptest::collection::vec(rich_ext_strategy(), 0..10),
                l4 in l4_strategy(),
                shape in 0u8..4,
                vlans in proptest::collection::vec(any::<u16>(), 0..4),
                edits in proptest::collection::vec((any::<u16>(), octet_strategy()), 0..4),
                cut in any::<u16>(),
                max_ext in 0u8..40,
                csum in any::<bool>(),
            ) {
                let l3 = match shape {
                    0 | 1 => build::ipv6(build::addr6(SRC), build::addr6(DST), &exts, &l4),
                    2 => build::ipv4("192.0.2.1".parse().unwrap(), "198.51.100.1".parse().unwrap(), &l4),
                    _ => {
                        // IPv4 with options: a NOP, then an unknown option whose
                        // length an edit may break, ending on a 4-octet boundary.
                        let mut b = build::ipv4("192.0.2.1".parse().unwrap(), "198.51.100.1".parse().unwrap(), &l4);
                        let ihl = 20 + 8;
                        b.splice(20..20, [1, 0x44, 6, 0, 0, 0, 0, 0]);
                        b[0] = 0x40 | (ihl / 4) as u8;
                        let total = u16::from_be_bytes([b[2], b[3]]) + 8;
                        b[2..4].copy_from_slice(&total.to_be_bytes());
                        b[10..12].copy_from_slice(&[0, 0]);
                        let c = super::super::super::checksum::checksum(&b[..ihl]);
                        b[10..12].copy_from_slice(&c.to_be_bytes());
                        b
                    }
                };
                let et = if shape < 2 { EtherType::Ipv6 } else { EtherType::Ipv4 };
                let mut f = build::ethernet(et, &vlans[..vlans.len().min(if shape == 1 { 3 } else { 0 })], &l3);
                for (i, v) in &edits {
                    let n = f.len();
                    f[usize::from(*i) % n] = *v;
                }
                let keep = usize::from(cut) % (f.len() + 8);
                f.truncate(keep.max(f.len().saturating_sub(64)).min(f.len()));
                let c = ParseConfig::new().with_max_ext_headers(max_ext).with_ipv4_checksum(csum);
                let (mut a, mut b) = (Parsed::default(), Parsed::default());
                let ra = parse_into(&f, &c, &mut a);
                let rb = super::super::super::parse_reference::parse_into(&f, &c, &mut b);
                prop_assert_eq!(ra, rb);
                prop_assert_eq!(a, b);
                // Identity and hash in one step agree with the two steps.
                let hasher = crate::identity::IdentityHasher::new([shape; 16]);
                for mode in [crate::identity::IdentityMode::Default, crate::identity::IdentityMode::Slaac] {
                    let two_steps = crate::identity::identify(&f, &a, mode).map(|i| (i, hasher.hash(&i)));
                    prop_assert_eq!(hasher.identify(&f, &a, mode).map(|(k, h)| (k.identity(), h)), two_steps);
                }
            }

            #[test]
            fn differential_raw(et in prop_oneof![Just(0x86ddu16), Just(0x0800), Just(0x8100), Just(0x0806), any::<u16>()],
                                rest in proptest::collection::vec(any::<u8>(), 0..160), max_ext in 0u8..40) {
                let mut f = vec![0u8; 12];
                f.extend_from_slice(&et.to_be_bytes());
                f.extend_from_slice(&rest);
                if et == 0x86dd && f.len() >= 54 {
                    f[14] = 0x60 | (f[14] & 0x0f);
                    let plen = (f.len() - 54).min(usize::from(f[19]));
                    f[18..20].copy_from_slice(&(plen as u16).to_be_bytes());
                }
                let c = ParseConfig::new().with_max_ext_headers(max_ext);
                let (mut a, mut b) = (Parsed::default(), Parsed::default());
                let ra = parse_into(&f, &c, &mut a);
                let rb = super::super::super::parse_reference::parse_into(&f, &c, &mut b);
                prop_assert_eq!(ra, rb);
                prop_assert_eq!(a, b);
            }

            /// The common shapes the straight-line paths take, with edits
            /// aimed at the octets they read (EtherType, version and IHL,
            /// Payload / Total Length, fragment bits, header checksum, Next
            /// Header, the Destination Options layout, the L4 lengths): same
            /// verdict and summary as the reference walk.
            #[test]
            fn differential_common(
                v4 in any::<bool>(),
                hao in proptest::option::of(any::<[u8; 16]>()),
                tcp in any::<bool>(),
                ports in any::<(u16, u16, u32, u8)>(),
                payload in proptest::collection::vec(any::<u8>(), 0..24),
                edits in proptest::collection::vec((0usize..110, octet_strategy()), 0..3),
                cut in 0usize..140,
                max_ext in 0u8..3,
                csum in any::<bool>(),
            ) {
                let exts: Vec<Ext> = hao.map(|a| Ext::Hao(Ipv6Addr::from(a))).into_iter().collect();
                let l4 = if tcp {
                    L4::Tcp(ports.0, ports.1, ports.2, ports.3)
                } else {
                    L4::Udp(ports.0, ports.1, payload)
                };
                let mut f = if v4 {
                    build::eth_ipv4("192.0.2.1", "198.51.100.1", &l4)
                } else {
                    build::eth_ipv6(SRC, DST, &exts, &l4)
                };
                for (i, v) in &edits {
                    if *i < f.len() {
                        f[*i] = *v;
                    }
                }
                f.truncate(cut.max(f.len().saturating_sub(40)));
                let c = ParseConfig::new().with_max_ext_headers(max_ext).with_ipv4_checksum(csum);
                let (mut a, mut b) = (Parsed::default(), Parsed::default());
                let ra = parse_into(&f, &c, &mut a);
                let rb = super::super::super::parse_reference::parse_into(&f, &c, &mut b);
                prop_assert_eq!(ra, rb);
                prop_assert_eq!(a, b);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                let mut p = Parsed::default();
                let _ = parse_into(&bytes, &ParseConfig::new(), &mut p);
                let _ = crate::identity::identify(&bytes, &p, crate::identity::IdentityMode::Slaac);
                let _ = crate::identity::binding_update(&bytes, &p);
            }

            #[test]
            fn ipv6_prefixed_bytes_never_panic(nh in any::<u8>(), rest in proptest::collection::vec(any::<u8>(), 0..200)) {
                // A valid Ethernet + IPv6 header in front of random octets reaches the chain walk.
                let f = build::eth_ipv6(SRC, DST, &[], &L4::Raw(nh, rest));
                let mut p = Parsed::default();
                let _ = parse_into(&f, &ParseConfig::new().with_max_ext_headers(32), &mut p);
                prop_assert!(p.ext_count <= 32);
            }

            #[test]
            fn random_chains_parse_or_refuse_cleanly(exts in proptest::collection::vec(ext_strategy(), 0..10), l4 in l4_strategy()) {
                let f = build::eth_ipv6(SRC, DST, &exts, &l4);
                let mut p = Parsed::default();
                let r = parse_into(&f, &ParseConfig::new(), &mut p);
                let stops_early = exts.iter().take(8).any(|e| matches!(e, Ext::Fragment(o, ..) if o & 0xfff8 != 0));
                if exts.len() > 8 && !stops_early {
                    prop_assert!(r.is_err());
                }
                if r.is_ok() {
                    prop_assert!(usize::from(p.l3_end) == f.len());
                    prop_assert!(usize::from(p.l4_offset) <= f.len());
                }
            }

            #[test]
            fn bu_emit_then_parse(s in any::<u16>(), fl in any::<u16>(), l in any::<u16>(), a in proptest::option::of(any::<[u8; 16]>())) {
                let r = BindingUpdateRepr { sequence: s, flags: fl, lifetime: l, alternate_coa: a.map(Ipv6Addr::from) };
                let mut b = vec![0u8; r.buffer_len()];
                r.emit(&mut b);
                let mh = super::super::super::mobility::MobilityHeader::new_checked(&b[..]).unwrap();
                prop_assert_eq!(BindingUpdateRepr::parse(&mh), Some(r));
            }

            #[test]
            fn ip_reprs_emit_then_parse(s4 in any::<u32>(), d4 in any::<u32>(), p in any::<u8>(), len in 0u16..1000, ttl in any::<u8>(),
                                        s6 in any::<u128>(), d6 in any::<u128>(), tc in any::<u8>(), fl in 0u32..0x10_0000) {
                use super::super::super::ipv4::{Ipv4Packet, Ipv4Repr};
                use super::super::super::ipv6::{Ipv6Packet, Ipv6Repr};
                let r4 = Ipv4Repr { src_addr: s4.into(), dst_addr: d4.into(), protocol: p.into(), payload_len: len, ttl, tos: tc, ident: len, dont_frag: ttl & 1 == 0 };
                let mut b = vec![0u8; 20 + usize::from(len)];
                r4.emit(&mut b);
                prop_assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap()), Ok(r4));
                let r6 = Ipv6Repr { src_addr: s6.into(), dst_addr: d6.into(), next_header: p.into(), payload_len: len, hop_limit: ttl, traffic_class: tc, flow_label: fl };
                let mut b = vec![0u8; 40 + usize::from(len)];
                r6.emit(&mut b);
                prop_assert_eq!(Ipv6Repr::parse(&Ipv6Packet::new_checked(&b[..]).unwrap()), r6);
            }

            #[test]
            fn l4_reprs_emit_then_parse(sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(), fl in any::<u8>(), w in any::<u16>(), spi in 1u32.., plen in 0u16..100) {
                use super::super::super::tcp::{TcpPacket, TcpRepr};
                use super::super::super::udp::{UdpPacket, UdpRepr};
                use super::super::super::esp::{EspPacket, EspRepr};
                let t = TcpRepr { src_port: sp, dst_port: dp, seq_number: seq, ack_number: ack, flags: fl, window: w };
                let mut b = [0u8; 20];
                t.emit(&mut b);
                prop_assert_eq!(TcpRepr::parse(&TcpPacket::new_checked(&b[..]).unwrap()), t);
                let u = UdpRepr { src_port: sp, dst_port: dp, payload_len: plen };
                let mut b = vec![0u8; 8 + usize::from(plen)];
                u.emit(&mut b);
                prop_assert_eq!(UdpRepr::parse(&UdpPacket::new_checked(&b[..]).unwrap()), u);
                let e = EspRepr { spi, sequence: seq };
                let mut b = [0u8; 8];
                e.emit(&mut b);
                prop_assert_eq!(EspRepr::parse(&EspPacket::new_checked(&b[..]).unwrap()), e);
            }
        }
    }
}
