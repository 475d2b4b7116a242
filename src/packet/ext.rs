//! IPv6 extension headers (RFC 8200 §4): the generic option-carrying header
//! (Hop-by-Hop §4.3, Destination Options §4.6) with its TLV walk, the Routing
//! header (§4.4, and type 2 from RFC 6275 §6.4), the Fragment header (§4.5)
//! and the Authentication Header (RFC 4302).
//!
//! Lengths come in odd units and each view owns its rule: Hdr Ext Len counts
//! 8-octet units not including the first 8 octets, AH's Payload Len counts
//! 4-octet words minus 2. The option walk ([`Ipv6Options`]) stops at the first
//! error and only moves forward, so it is bounded by the header length; an
//! unrecognised option is handled by its two high type bits (§4.2).

use super::{be16, be32, bytes16, DropReason, IpProtocol};
use std::net::Ipv6Addr;

/// A view of an extension header that starts with Next Header and Hdr Ext
/// Len (Hop-by-Hop, Destination Options, Routing).
#[derive(Debug, Clone)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;
    // RFC 8200 §4.3 / §4.6 (options headers):
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |  Next Header  |  Hdr Ext Len  |                               |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
    // .                            Options                            .
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
    pub const DATA: usize = 2;

    // RFC 8200 §4.4 Routing header; RFC 6275 §6.4 type 2:
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |  Next Header  | Hdr Ext Len=2 | Routing Type=2|Segments Left=1|
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                            Reserved                           |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // +                         Home Address                          +
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const ROUTING_TYPE: usize = 2;
    pub const SEG_LEFT: usize = 3;
    pub const TYPE2_HOME: Range<usize> = 8..24;

    // RFC 8200 §4.5 Fragment header:
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                         Identification                        |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const FRAG_OFF_M: Range<usize> = 2..4;
    pub const FRAG_IDENT: Range<usize> = 4..8;
    pub const FRAG_LEN: usize = 8;

    // RFC 4302 §2 Authentication Header:
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // | Next Header   |  Payload Len  |          RESERVED             |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                 Security Parameters Index (SPI)               |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                    Sequence Number Field                      |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // +                Integrity Check Value-ICV (variable)           |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const AH_SPI: Range<usize> = 4..8;
    pub const AH_SEQ: Range<usize> = 8..12;
    pub const AH_FIXED: usize = 12;
}

/// Option type of the Home Address option (RFC 6275 §6.3).
pub const OPT_HOME_ADDRESS: u8 = 201;
/// Option type of Pad1 (RFC 8200 §4.2).
pub const OPT_PAD1: u8 = 0;
/// Option type of PadN (RFC 8200 §4.2).
pub const OPT_PADN: u8 = 1;
/// Length of a type 2 Routing header.
pub const TYPE2_LEN: usize = 24;
/// Offset of the home address in a type 2 Routing header.
pub const TYPE2_HOME_OFFSET: usize = field::TYPE2_HOME.start;

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps a buffer without checking it.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        ExtHeader { buffer }
    }

    /// Wraps a buffer after checking that the whole header, as its Hdr Ext
    /// Len says, is present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < 2 {
            return Err(DropReason::ExtTruncated);
        }
        if (usize::from(b[field::LENGTH]) + 1) * 8 > b.len() {
            return Err(DropReason::ExtHeaderPastPacket);
        }
        Ok(ExtHeader { buffer })
    }

    /// Next Header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Next Header as the number on the wire.
    #[inline]
    pub fn next_header_raw(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Header length in octets ((Hdr Ext Len + 1) × 8).
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[field::LENGTH]) + 1) * 8
    }

    /// The octets after Next Header and Hdr Ext Len (options, or the
    /// routing-type-specific data).
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..self.header_len()]
    }

    /// The options of a Hop-by-Hop or Destination Options header.
    #[inline]
    pub fn options(&self) -> Ipv6Options<'_> {
        Ipv6Options::new(self.data())
    }

    /// Routing Type (meaningful for Routing headers).
    #[inline]
    pub fn routing_type(&self) -> u8 {
        self.buffer.as_ref()[field::ROUTING_TYPE]
    }

    /// Segments Left (meaningful for Routing headers).
    #[inline]
    pub fn segments_left(&self) -> u8 {
        self.buffer.as_ref()[field::SEG_LEFT]
    }

    /// Checks a type 2 Routing header (RFC 6275 §6.4): Hdr Ext Len 2 and
    /// Segments Left 0 or 1. Returns its home address.
    #[inline]
    pub fn type2_home_address(&self) -> Result<Ipv6Addr, DropReason> {
        let b = self.buffer.as_ref();
        if b[field::LENGTH] != 2 {
            return Err(DropReason::RoutingType2BadLength);
        }
        if b[field::SEG_LEFT] > 1 {
            return Err(DropReason::RoutingType2BadSegments);
        }
        Ok(Ipv6Addr::from(bytes16(b, field::TYPE2_HOME.start)))
    }
}

/// What to do with an unrecognised option, from its two high type bits
/// (RFC 8200 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownOptionAction {
    /// `00`: skip over this option and continue.
    Skip,
    /// `01`: discard the packet.
    Discard,
    /// `10`: discard and send ICMP Parameter Problem.
    DiscardIcmp,
    /// `11`: discard and send ICMP unless the destination is multicast.
    DiscardIcmpUnicast,
}

impl UnknownOptionAction {
    /// The action encoded in an option type.
    #[inline]
    pub fn of(option_type: u8) -> Self {
        match option_type >> 6 {
            0 => Self::Skip,
            1 => Self::Discard,
            2 => Self::DiscardIcmp,
            _ => Self::DiscardIcmpUnicast,
        }
    }
}

/// One option TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6OptionRef<'a> {
    /// Offset of the option type octet within the options area.
    pub offset: usize,
    /// Option type.
    pub kind: u8,
    /// Option data (empty for Pad1).
    pub data: &'a [u8],
}

/// Iterator over the option TLVs of a Hop-by-Hop or Destination Options
/// header (RFC 8200 §4.2). Yields an error once, then stops.
#[derive(Debug, Clone)]
pub struct Ipv6Options<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Ipv6Options<'a> {
    /// Walks `data`, the octets after Next Header and Hdr Ext Len.
    #[inline]
    pub fn new(data: &'a [u8]) -> Self {
        Ipv6Options { data, pos: 0 }
    }
}

impl<'a> Iterator for Ipv6Options<'a> {
    type Item = Result<Ipv6OptionRef<'a>, DropReason>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let d = self.data;
        let start = self.pos;
        let kind = *d.get(start)?;
        if kind == OPT_PAD1 {
            self.pos += 1;
            return Some(Ok(Ipv6OptionRef {
                offset: start,
                kind,
                data: &d[start + 1..start + 1],
            }));
        }
        let Some(&len) = d.get(start + 1) else {
            self.pos = d.len();
            return Some(Err(DropReason::OptionPastHeader));
        };
        let end = start + 2 + usize::from(len);
        if end > d.len() {
            self.pos = d.len();
            return Some(Err(DropReason::OptionPastHeader));
        }
        self.pos = end;
        Some(Ok(Ipv6OptionRef {
            offset: start,
            kind,
            data: &d[start + 2..end],
        }))
    }
}

/// A view of an IPv6 Fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps a buffer after checking it holds all 8 octets.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < field::FRAG_LEN {
            return Err(DropReason::FragmentTruncated);
        }
        Ok(FragmentHeader { buffer })
    }

    /// Next Header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Next Header as the number on the wire.
    #[inline]
    pub fn next_header_raw(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Fragment offset in octets.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FRAG_OFF_M.start) & 0xfff8
    }

    /// M flag: more fragments follow.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FRAG_OFF_M.start) & 1 != 0
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), field::FRAG_IDENT.start)
    }

    /// Header length (always 8).
    #[inline]
    pub fn header_len(&self) -> usize {
        field::FRAG_LEN
    }
}

/// A view of an Authentication Header (RFC 4302 §2).
#[derive(Debug, Clone)]
pub struct AuthHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> AuthHeader<T> {
    /// Wraps a buffer after checking the fixed part and that Payload Len
    /// (4-octet words minus 2, RFC 4302 §2.2) covers it and fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < field::AH_FIXED {
            return Err(DropReason::AhTruncated);
        }
        let hl = (usize::from(b[field::LENGTH]) + 2) * 4;
        if hl < field::AH_FIXED || hl > b.len() {
            return Err(DropReason::AhBadLength);
        }
        Ok(AuthHeader { buffer })
    }

    /// Next Header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Next Header as the number on the wire.
    #[inline]
    pub fn next_header_raw(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Header length in octets.
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[field::LENGTH]) + 2) * 4
    }

    /// Security Parameters Index.
    #[inline]
    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), field::AH_SPI.start)
    }

    /// Sequence Number.
    #[inline]
    pub fn sequence(&self) -> u32 {
        be32(self.buffer.as_ref(), field::AH_SEQ.start)
    }
}

/// A Destination Options header holding only a Home Address option, laid
/// out as RFC 6275 §6.3 asks (alignment 8n+6: PadN of 4 octets first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeAddressDestOptsRepr {
    /// Next Header after this Destination Options header.
    pub next_header: IpProtocol,
    /// The mobile node's home address.
    pub home_address: Ipv6Addr,
}

/// Length of [`HomeAddressDestOptsRepr`] on the wire.
pub const HAO_DEST_OPTS_LEN: usize = 24;

impl HomeAddressDestOptsRepr {
    /// Reads a checked Destination Options header that carries a HAO.
    pub fn parse<T: AsRef<[u8]>>(h: &ExtHeader<T>) -> Result<Option<Self>, DropReason> {
        for opt in h.options() {
            let opt = opt?;
            if opt.kind == OPT_HOME_ADDRESS {
                if opt.data.len() != 16 {
                    return Err(DropReason::HaoBadLength);
                }
                return Ok(Some(HomeAddressDestOptsRepr {
                    next_header: h.next_header(),
                    home_address: Ipv6Addr::from(bytes16(opt.data, 0)),
                }));
            }
        }
        Ok(None)
    }

    /// Writes all 24 octets.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0] = self.next_header.into();
        buf[1] = 2;
        buf[2..6].copy_from_slice(&[OPT_PADN, 2, 0, 0]);
        buf[6] = OPT_HOME_ADDRESS;
        buf[7] = 16;
        buf[8..24].copy_from_slice(&self.home_address.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(buf: &[u8]) -> Vec<Result<(u8, usize), DropReason>> {
        Ipv6Options::new(buf)
            .map(|o| o.map(|o| (o.kind, o.data.len())))
            .collect()
    }

    #[test]
    fn option_walk() {
        assert_eq!(
            opts(&[0, 1, 1, 0, 0]),
            vec![Ok((0, 0)), Ok((1, 1)), Ok((0, 0))]
        );
        // PadN with zero data.
        assert_eq!(opts(&[1, 0, 0]), vec![Ok((1, 0)), Ok((0, 0))]);
        // Option length past the header; the walk stops after the error.
        assert_eq!(opts(&[1, 5, 0, 0]), vec![Err(DropReason::OptionPastHeader)]);
        // Type without a length octet.
        assert_eq!(
            opts(&[0, 0xc9]),
            vec![Ok((0, 0)), Err(DropReason::OptionPastHeader)]
        );
    }

    #[test]
    fn unknown_action_bits() {
        assert_eq!(UnknownOptionAction::of(0x1e), UnknownOptionAction::Skip);
        assert_eq!(UnknownOptionAction::of(0x5e), UnknownOptionAction::Discard);
        assert_eq!(
            UnknownOptionAction::of(0x9e),
            UnknownOptionAction::DiscardIcmp
        );
        assert_eq!(
            UnknownOptionAction::of(OPT_HOME_ADDRESS),
            UnknownOptionAction::DiscardIcmpUnicast
        );
    }

    #[test]
    fn ext_header_lengths() {
        let b = [6u8, 0, 1, 4, 0, 0, 0, 0];
        let h = ExtHeader::new_checked(&b[..]).unwrap();
        assert_eq!(h.header_len(), 8);
        assert_eq!(h.next_header(), IpProtocol::Tcp);
        assert_eq!(
            ExtHeader::new_checked(&b[..1]).unwrap_err(),
            DropReason::ExtTruncated
        );
        assert_eq!(
            ExtHeader::new_checked(&b[..7]).unwrap_err(),
            DropReason::ExtHeaderPastPacket
        );
        let b = [6u8, 1, 1, 4, 0, 0, 0, 0];
        assert_eq!(
            ExtHeader::new_checked(&b[..]).unwrap_err(),
            DropReason::ExtHeaderPastPacket
        );
    }

    #[test]
    fn hao_repr_roundtrip_and_bad_lengths() {
        let r = HomeAddressDestOptsRepr {
            next_header: IpProtocol::Tcp,
            home_address: "2001:db8:aa::1".parse().unwrap(),
        };
        let mut b = [0u8; HAO_DEST_OPTS_LEN];
        r.emit(&mut b);
        let h = ExtHeader::new_checked(&b[..]).unwrap();
        assert_eq!(HomeAddressDestOptsRepr::parse(&h).unwrap(), Some(r));
        // HAO with length 8 / 0 inside an otherwise well-formed header.
        for (len, pad) in [(8u8, 14u8), (0, 22)] {
            let mut b = vec![6u8, 2, OPT_HOME_ADDRESS, len];
            b.resize(4 + usize::from(len), 0xaa);
            b.extend_from_slice(&[OPT_PADN, pad - 2]);
            b.resize(24, 0);
            let h = ExtHeader::new_checked(&b[..]).unwrap();
            assert_eq!(
                HomeAddressDestOptsRepr::parse(&h).unwrap_err(),
                DropReason::HaoBadLength
            );
        }
    }

    #[test]
    fn routing_type2() {
        let mut b = [0u8; 24];
        b[..4].copy_from_slice(&[6, 2, 2, 1]);
        b[8..24].copy_from_slice(&"2001:db8::77".parse::<Ipv6Addr>().unwrap().octets());
        let h = ExtHeader::new_checked(&b[..]).unwrap();
        assert_eq!(
            h.type2_home_address().unwrap(),
            "2001:db8::77".parse::<Ipv6Addr>().unwrap()
        );
        b[3] = 2;
        assert_eq!(
            ExtHeader::new_checked(&b[..])
                .unwrap()
                .type2_home_address()
                .unwrap_err(),
            DropReason::RoutingType2BadSegments
        );
        let b = [6u8, 0, 2, 1, 0, 0, 0, 0];
        assert_eq!(
            ExtHeader::new_checked(&b[..])
                .unwrap()
                .type2_home_address()
                .unwrap_err(),
            DropReason::RoutingType2BadLength
        );
    }

    #[test]
    fn fragment_and_ah() {
        let f = [17u8, 0, 0x00, 0x09, 0, 0, 0, 7];
        let h = FragmentHeader::new_checked(&f[..]).unwrap();
        assert_eq!((h.frag_offset(), h.more_frags(), h.ident()), (8, true, 7));
        assert_eq!(
            FragmentHeader::new_checked(&f[..7]).unwrap_err(),
            DropReason::FragmentTruncated
        );
        // AH with Payload Len 4: (4 + 2) * 4 = 24 octets (12 fixed + 12 ICV).
        let mut a = [0u8; 24];
        a[..2].copy_from_slice(&[6, 4]);
        a[4..8].copy_from_slice(&0x1234u32.to_be_bytes());
        let h = AuthHeader::new_checked(&a[..]).unwrap();
        assert_eq!((h.header_len(), h.spi()), (24, 0x1234));
        assert_eq!(
            AuthHeader::new_checked(&a[..11]).unwrap_err(),
            DropReason::AhTruncated
        );
        assert_eq!(
            AuthHeader::new_checked(&a[..20]).unwrap_err(),
            DropReason::AhBadLength
        );
        a[1] = 0; // 8 octets < fixed part
        assert_eq!(
            AuthHeader::new_checked(&a[..]).unwrap_err(),
            DropReason::AhBadLength
        );
    }
}
