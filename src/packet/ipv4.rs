//! IPv4 headers (RFC 791 §3.1): options, fragments and the header checksum.
//!
//! `new_checked` validates version, IHL, Total Length against the buffer and
//! walks the options (RFC 791 §3.1 "Options": End of Option List and No
//! Operation are single octets, every other option is type-length-value with a
//! length of at least 2 that must stay inside the header). The checksum is
//! checked separately ([`Ipv4Packet::verify_checksum`]) so a caller that
//! trusts the NIC's offload flags can skip it. The payload is bounded by Total
//! Length, so Ethernet padding never reaches the upper layer.

use super::checksum;
use super::{be16, bytes4, DropReason, IpProtocol};
use std::net::Ipv4Addr;

/// A view of an IPv4 header and its payload.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;
    //  0                   1                   2                   3
    //  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |Version|  IHL  |Type of Service|          Total Length         |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |         Identification        |Flags|      Fragment Offset    |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |  Time to Live |    Protocol   |         Header Checksum       |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                       Source Address                          |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                    Destination Address                        |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                    Options                    |    Padding    |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
    pub const OPTIONS: usize = 20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Offset of the source address in the header.
pub const SRC_OFFSET: usize = field::SRC_ADDR.start;
/// Offset of the destination address in the header.
pub const DST_OFFSET: usize = field::DST_ADDR.start;
/// Offset of the header checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after checking version, IHL, Total Length and the
    /// option TLVs. The checksum is not verified here.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::Ipv4Truncated);
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(DropReason::Ipv4BadVersion);
        }
        let hl = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if hl < HEADER_LEN {
            return Err(DropReason::Ipv4BadHeaderLength);
        }
        if hl > b.len() {
            return Err(DropReason::Ipv4HeaderPastPacket);
        }
        let total = usize::from(be16(b, field::LENGTH.start));
        if total < hl {
            return Err(DropReason::Ipv4BadTotalLength);
        }
        if total > b.len() {
            return Err(DropReason::Ipv4TotalLengthPastPacket);
        }
        if hl > HEADER_LEN {
            check_options(&b[HEADER_LEN..hl])?;
        }
        Ok(Ipv4Packet { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length in octets (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Type of Service / DSCP+ECN octet.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Total Length.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x4000 != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x2000 != 0
    }

    /// Fragment offset in octets.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF.start) & 0x1fff) << 3
    }

    /// Time to Live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Protocol as the number on the wire.
    #[inline]
    pub fn protocol_raw(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes4(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes4(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// True when the header checksum verifies (RFC 1071: the sum is all ones).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::sum_folded(&self.buffer.as_ref()[..self.header_len()]) == 0xffff
    }

    /// The payload, bounded by Total Length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the source address (checksum untouched).
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address (checksum untouched).
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }
}

/// Walks IPv4 options (RFC 791 §3.1): EOL ends the list, NOP is one octet,
/// everything else is TLV with length >= 2 inside the option area.
#[inline]
fn check_options(opts: &[u8]) -> Result<(), DropReason> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return Ok(()),
            1 => i += 1,
            _ => {
                let Some(&len) = opts.get(i + 1) else {
                    return Err(DropReason::Ipv4OptionPastHeader);
                };
                if len < 2 {
                    return Err(DropReason::Ipv4BadOptionLength);
                }
                i += usize::from(len);
                if i > opts.len() {
                    return Err(DropReason::Ipv4OptionPastHeader);
                }
            }
        }
    }
    Ok(())
}

/// The value of an option-less IPv4 header, as the data plane emits it
/// (e.g. the outer header of IPv4-in-IPv4, RFC 2003 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length (Total Length minus 20).
    pub payload_len: u16,
    /// Time to Live.
    pub ttl: u8,
    /// DSCP/ECN octet.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Reads a checked header; options are skipped, fragments are refused by
    /// the caller if it cares (this only reports the header).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Self, DropReason> {
        if !p.verify_checksum() {
            return Err(DropReason::Ipv4BadChecksum);
        }
        Ok(Ipv4Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() - p.header_len() as u16,
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }

    /// Header length emitted.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes all 20 header octets, checksum included, into `buf`.
    /// `payload_len` must be at most 65515.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::VER_IHL] = 0x45;
        buf[field::TOS] = self.tos;
        buf[field::LENGTH].copy_from_slice(&(self.payload_len.saturating_add(20)).to_be_bytes());
        buf[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        let flags: u16 = if self.dont_frag { 0x4000 } else { 0 };
        buf[field::FLG_OFF].copy_from_slice(&flags.to_be_bytes());
        buf[field::TTL] = self.ttl;
        buf[field::PROTOCOL] = self.protocol.into();
        buf[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        buf[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        Ipv4Packet::new_unchecked(&mut buf[..HEADER_LEN]).fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20-octet header + 4 octets of payload, valid checksum.
    fn sample() -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            protocol: IpProtocol::Tcp,
            payload_len: 4,
            ttl: 64,
            tos: 0,
            ident: 0x1234,
            dont_frag: true,
        };
        let mut b = vec![0u8; 24];
        repr.emit(&mut b);
        b
    }

    #[test]
    fn fields_and_checksum() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.protocol(), IpProtocol::Tcp);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.payload().len(), 4);
        assert!(p.dont_frag() && !p.more_frags() && p.frag_offset() == 0);
    }

    #[test]
    fn truncated_at_each_field() {
        let b = sample();
        for n in 0..HEADER_LEN {
            assert_eq!(
                Ipv4Packet::new_checked(&b[..n]).unwrap_err(),
                DropReason::Ipv4Truncated
            );
        }
        // Total Length 24 but only 22 octets present.
        assert_eq!(
            Ipv4Packet::new_checked(&b[..22]).unwrap_err(),
            DropReason::Ipv4TotalLengthPastPacket
        );
    }

    #[test]
    fn malformed_headers() {
        let mut b = sample();
        b[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            DropReason::Ipv4BadVersion
        );
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            DropReason::Ipv4BadHeaderLength
        );
        b[0] = 0x47; // 28 octets of header in a 24-octet buffer
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            DropReason::Ipv4HeaderPastPacket
        );
        let mut b = sample();
        b[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            DropReason::Ipv4BadTotalLength
        );
        let mut b = sample();
        b[11] ^= 1;
        assert!(!Ipv4Packet::new_checked(&b[..]).unwrap().verify_checksum());
        assert_eq!(
            Ipv4Repr::parse(&Ipv4Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            DropReason::Ipv4BadChecksum
        );
    }

    #[test]
    fn options() {
        // IHL 6: one 4-octet option area.
        let mk = |opts: [u8; 4]| {
            let mut b = sample();
            b.splice(20..20, opts);
            b[0] = 0x46;
            b[2..4].copy_from_slice(&28u16.to_be_bytes());
            b
        };
        // NOP, NOP, NOP, EOL
        assert!(Ipv4Packet::new_checked(&mk([1, 1, 1, 0])[..]).is_ok());
        // Router Alert (RFC 2113): type 148 length 4.
        assert!(Ipv4Packet::new_checked(&mk([148, 4, 0, 0])[..]).is_ok());
        assert_eq!(
            Ipv4Packet::new_checked(&mk([148, 5, 0, 0])[..]).unwrap_err(),
            DropReason::Ipv4OptionPastHeader
        );
        assert_eq!(
            Ipv4Packet::new_checked(&mk([148, 0, 0, 0])[..]).unwrap_err(),
            DropReason::Ipv4BadOptionLength
        );
        assert_eq!(
            Ipv4Packet::new_checked(&mk([148, 1, 0, 0])[..]).unwrap_err(),
            DropReason::Ipv4BadOptionLength
        );
        assert_eq!(
            Ipv4Packet::new_checked(&mk([1, 1, 1, 148])[..]).unwrap_err(),
            DropReason::Ipv4OptionPastHeader
        );
    }

    #[test]
    fn emit_parse_roundtrip() {
        let b = sample();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        let r = Ipv4Repr::parse(&p).unwrap();
        let mut c = vec![0u8; 24];
        r.emit(&mut c);
        assert_eq!(&b[..20], &c[..20]);
    }
}
