//! The Mobility Header (RFC 6275 §6.1) and the Binding Update message
//! (§6.1.7) with its mobility options (§6.2).
//!
//! `MobilityHeader::new_checked` validates Header Len against the packet and
//! against the minimum for the MH Type (§9.2 says to discard a message whose
//! Header Len is below what its type needs), and for a Binding Update walks
//! the mobility options once: Pad1 is a single octet, PadN and unknown options
//! are skipped by their length (§6.2.1), and the Alternate Care-of Address
//! option (type 3, §6.2.5) must be exactly 16 octets long. The walk only moves
//! forward inside the message, so it is bounded. Lifetimes are in units of
//! 4 seconds (§6.1.7); [`BindingUpdateRepr::lifetime_secs`] converts.
//! The MH checksum (pseudo-header, §6.1.1) is not verified here: the balancer
//! forwards BUs to the home agent or the node that terminates them.

use super::{be16, bytes16, DropReason};
use std::net::Ipv6Addr;

enum_with_unknown! {
    /// MH Type values (RFC 6275 §6.1.2–§6.1.9).
    pub enum MhType(u8) {
        /// Binding Refresh Request.
        BindingRefreshRequest = 0,
        /// Home Test Init.
        HomeTestInit = 1,
        /// Care-of Test Init.
        CareOfTestInit = 2,
        /// Home Test.
        HomeTest = 3,
        /// Care-of Test.
        CareOfTest = 4,
        /// Binding Update.
        BindingUpdate = 5,
        /// Binding Acknowledgement.
        BindingAck = 6,
        /// Binding Error.
        BindingError = 7,
    }
}

/// Mobility option types (RFC 6275 §6.2).
pub mod option {
    /// Pad1: a single zero octet (§6.2.2).
    pub const PAD1: u8 = 0;
    /// PadN (§6.2.3).
    pub const PADN: u8 = 1;
    /// Binding Refresh Advice (§6.2.4).
    pub const BINDING_REFRESH_ADVICE: u8 = 2;
    /// Alternate Care-of Address (§6.2.5).
    pub const ALTERNATE_COA: u8 = 3;
    /// Nonce Indices (§6.2.6).
    pub const NONCE_INDICES: u8 = 4;
    /// Binding Authorization Data (§6.2.7).
    pub const BINDING_AUTH_DATA: u8 = 5;
}

/// Binding Update flag bits (RFC 6275 §6.1.7; the octet pair after the
/// sequence number).
pub mod bu_flags {
    /// Acknowledge (A).
    pub const ACK: u16 = 0x8000;
    /// Home Registration (H).
    pub const HOME_REGISTRATION: u16 = 0x4000;
    /// Link-Local Address Compatibility (L).
    pub const LINK_LOCAL: u16 = 0x2000;
    /// Key Management Mobility Capability (K).
    pub const KEY_MANAGEMENT: u16 = 0x1000;
}

/// A view of a Mobility Header message.
#[derive(Debug, Clone)]
pub struct MobilityHeader<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;
    // RFC 6275 §6.1.1:
    //  0                   1                   2                   3
    //  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // | Payload Proto |  Header Len   |   MH Type     |   Reserved    |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |           Checksum            |                               |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
    // .                       Message Data                            .
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const PAYLOAD_PROTO: usize = 0;
    pub const LENGTH: usize = 1;
    pub const MH_TYPE: usize = 2;
    pub const CHECKSUM: Range<usize> = 4..6;
    pub const DATA: usize = 6;

    // Binding Update message data, §6.1.7 (offsets from the MH start):
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |          Sequence #           |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |A|H|L|K|        Reserved       |           Lifetime            |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // .                        Mobility options                       .
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const BU_SEQ: Range<usize> = 6..8;
    pub const BU_FLAGS: Range<usize> = 8..10;
    pub const BU_LIFETIME: Range<usize> = 10..12;
    pub const BU_OPTIONS: usize = 12;
}

/// Length of the fixed MH part (before message data).
pub const HEADER_LEN: usize = field::DATA;
/// Offset of the checksum within the MH.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// The least message length an MH Type needs (RFC 6275 §6.1.2–§6.1.9).
#[inline]
fn min_len(t: MhType) -> usize {
    match t {
        MhType::BindingRefreshRequest => 8,
        MhType::HomeTestInit | MhType::CareOfTestInit => 16,
        MhType::HomeTest | MhType::CareOfTest => 24,
        MhType::BindingUpdate | MhType::BindingAck => 12,
        MhType::BindingError => 24,
        MhType::Unknown(_) => HEADER_LEN,
    }
}

impl<T: AsRef<[u8]>> MobilityHeader<T> {
    /// Wraps a buffer without checking it.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        MobilityHeader { buffer }
    }

    /// Wraps a buffer after checking Header Len against the buffer and the
    /// MH Type, and, for a Binding Update, walking its options.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::MhTruncated);
        }
        let hl = (usize::from(b[field::LENGTH]) + 1) * 8;
        if hl > b.len() {
            return Err(DropReason::MhLengthPastPacket);
        }
        let t = MhType::from(b[field::MH_TYPE]);
        if hl < min_len(t) {
            return Err(DropReason::MhBadLength);
        }
        let mh = MobilityHeader { buffer };
        if t == MhType::BindingUpdate {
            for opt in mh.bu_options() {
                let opt = opt?;
                if opt.kind == option::ALTERNATE_COA && opt.data.len() != 16 {
                    return Err(DropReason::AltCoaBadLength);
                }
            }
        }
        Ok(mh)
    }

    /// Payload Proto (59 by RFC 6275 §6.1.1).
    #[inline]
    pub fn payload_proto(&self) -> u8 {
        self.buffer.as_ref()[field::PAYLOAD_PROTO]
    }

    /// Message length in octets ((Header Len + 1) × 8).
    #[inline]
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[field::LENGTH]) + 1) * 8
    }

    /// MH Type.
    #[inline]
    pub fn mh_type(&self) -> MhType {
        MhType::from(self.buffer.as_ref()[field::MH_TYPE])
    }

    /// Checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// BU Sequence # (meaningful when `mh_type()` is BindingUpdate).
    #[inline]
    pub fn bu_sequence(&self) -> u16 {
        be16(self.buffer.as_ref(), field::BU_SEQ.start)
    }

    /// BU flags.
    #[inline]
    pub fn bu_flags(&self) -> u16 {
        be16(self.buffer.as_ref(), field::BU_FLAGS.start)
    }

    /// BU Lifetime in 4-second units.
    #[inline]
    pub fn bu_lifetime(&self) -> u16 {
        be16(self.buffer.as_ref(), field::BU_LIFETIME.start)
    }

    /// The BU's mobility options.
    #[inline]
    pub fn bu_options(&self) -> MobilityOptions<'_> {
        let b = self.buffer.as_ref();
        let end = self.header_len();
        let start = field::BU_OPTIONS.min(end);
        MobilityOptions {
            data: &b[start..end],
            base: start,
            pos: 0,
        }
    }

    /// Offset, within the MH, of the Alternate Care-of Address carried by a
    /// (checked) Binding Update, if any.
    #[inline]
    pub fn alternate_coa_offset(&self) -> Option<usize> {
        self.bu_options()
            .filter_map(Result::ok)
            .find(|o| o.kind == option::ALTERNATE_COA && o.data.len() == 16)
            .map(|o| o.offset + 2)
    }
}

/// One mobility option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MobilityOptionRef<'a> {
    /// Offset of the option type octet within the MH.
    pub offset: usize,
    /// Option type.
    pub kind: u8,
    /// Option data (empty for Pad1).
    pub data: &'a [u8],
}

/// Iterator over mobility options (RFC 6275 §6.2.1); yields one error then
/// stops.
#[derive(Debug, Clone)]
pub struct MobilityOptions<'a> {
    data: &'a [u8],
    base: usize,
    pos: usize,
}

impl<'a> Iterator for MobilityOptions<'a> {
    type Item = Result<MobilityOptionRef<'a>, DropReason>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let d = self.data;
        let start = self.pos;
        let kind = *d.get(start)?;
        if kind == option::PAD1 {
            self.pos += 1;
            return Some(Ok(MobilityOptionRef {
                offset: self.base + start,
                kind,
                data: &d[start + 1..start + 1],
            }));
        }
        let Some(&len) = d.get(start + 1) else {
            self.pos = d.len();
            return Some(Err(DropReason::MobilityOptionPastMessage));
        };
        let end = start + 2 + usize::from(len);
        if end > d.len() {
            self.pos = d.len();
            return Some(Err(DropReason::MobilityOptionPastMessage));
        }
        self.pos = end;
        Some(Ok(MobilityOptionRef {
            offset: self.base + start,
            kind,
            data: &d[start + 2..end],
        }))
    }
}

/// The value of a Binding Update (RFC 6275 §6.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingUpdateRepr {
    /// Sequence #.
    pub sequence: u16,
    /// Flags (see [`bu_flags`]); the reserved bits are kept as received.
    pub flags: u16,
    /// Lifetime in 4-second units.
    pub lifetime: u16,
    /// Alternate Care-of Address option, if present.
    pub alternate_coa: Option<Ipv6Addr>,
}

impl BindingUpdateRepr {
    /// Reads a checked Binding Update; `None` if the message is another type.
    pub fn parse<T: AsRef<[u8]>>(mh: &MobilityHeader<T>) -> Option<Self> {
        if mh.mh_type() != MhType::BindingUpdate {
            return None;
        }
        let alternate_coa = mh
            .alternate_coa_offset()
            .map(|o| Ipv6Addr::from(bytes16(mh.buffer.as_ref(), o)));
        Some(BindingUpdateRepr {
            sequence: mh.bu_sequence(),
            flags: mh.bu_flags(),
            lifetime: mh.bu_lifetime(),
            alternate_coa,
        })
    }

    /// Lifetime in seconds.
    #[inline]
    pub fn lifetime_secs(&self) -> u32 {
        u32::from(self.lifetime) * 4
    }

    /// Octets `emit` writes: 16 without options, 32 with an Alternate CoA.
    pub fn buffer_len(&self) -> usize {
        if self.alternate_coa.is_some() {
            32
        } else {
            16
        }
    }

    /// Writes the whole Mobility Header: Payload Proto 59, checksum 0 (the
    /// caller fills it with the pseudo-header), options padded so the
    /// Alternate CoA is at 8n+6 (§6.2.5) and the message is a multiple of 8.
    pub fn emit(&self, buf: &mut [u8]) {
        let len = self.buffer_len();
        buf[field::PAYLOAD_PROTO] = 59;
        buf[field::LENGTH] = (len / 8 - 1) as u8;
        buf[field::MH_TYPE] = MhType::BindingUpdate.into();
        buf[3] = 0;
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        buf[field::BU_SEQ].copy_from_slice(&self.sequence.to_be_bytes());
        buf[field::BU_FLAGS].copy_from_slice(&self.flags.to_be_bytes());
        buf[field::BU_LIFETIME].copy_from_slice(&self.lifetime.to_be_bytes());
        match self.alternate_coa {
            Some(a) => {
                buf[12..14].copy_from_slice(&[option::PADN, 0]);
                buf[14] = option::ALTERNATE_COA;
                buf[15] = 16;
                buf[16..32].copy_from_slice(&a.octets());
            }
            None => buf[12..16].copy_from_slice(&[option::PADN, 2, 0, 0]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bu(alt: Option<&str>) -> BindingUpdateRepr {
        BindingUpdateRepr {
            sequence: 0x1234,
            flags: bu_flags::ACK | bu_flags::HOME_REGISTRATION,
            lifetime: 150,
            alternate_coa: alt.map(|a| a.parse().unwrap()),
        }
    }

    #[test]
    fn emit_parse_roundtrip() {
        for r in [bu(None), bu(Some("2001:db8:c0a::5"))] {
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b);
            let mh = MobilityHeader::new_checked(&b[..]).unwrap();
            assert_eq!(mh.mh_type(), MhType::BindingUpdate);
            assert_eq!(BindingUpdateRepr::parse(&mh), Some(r));
            assert_eq!(r.lifetime_secs(), 600);
        }
    }

    #[test]
    fn truncation_and_bad_lengths() {
        let r = bu(Some("2001:db8::5"));
        let mut b = vec![0u8; 32];
        r.emit(&mut b);
        for n in 0..HEADER_LEN {
            assert_eq!(
                MobilityHeader::new_checked(&b[..n]).unwrap_err(),
                DropReason::MhTruncated
            );
        }
        for n in HEADER_LEN..32 {
            assert_eq!(
                MobilityHeader::new_checked(&b[..n]).unwrap_err(),
                DropReason::MhLengthPastPacket
            );
        }
        // Bogus Header Len: 0 (8 octets) is below a BU's 12.
        let mut c = b.clone();
        c[1] = 0;
        assert_eq!(
            MobilityHeader::new_checked(&c[..]).unwrap_err(),
            DropReason::MhBadLength
        );
        // Bogus Header Len: 200 is past the packet.
        c[1] = 200;
        assert_eq!(
            MobilityHeader::new_checked(&c[..]).unwrap_err(),
            DropReason::MhLengthPastPacket
        );
        // Alternate CoA of length 8.
        let mut c = b.clone();
        c[15] = 8;
        c[24..26].copy_from_slice(&[option::PADN, 6]);
        assert_eq!(
            MobilityHeader::new_checked(&c[..]).unwrap_err(),
            DropReason::AltCoaBadLength
        );
        // Option running past the message.
        let mut c = b.clone();
        c[15] = 17;
        assert_eq!(
            MobilityHeader::new_checked(&c[..]).unwrap_err(),
            DropReason::MobilityOptionPastMessage
        );
    }

    #[test]
    fn unknown_options_skipped_by_length() {
        let mut b = vec![0u8; 24];
        bu(None).emit(&mut b);
        b[1] = 2;
        // Nonce Indices (4 octets of data), then Pad1 x 2, then PadN(2).
        b[12..24].copy_from_slice(&[
            option::NONCE_INDICES,
            4,
            0,
            1,
            0,
            2,
            0,
            0,
            option::PADN,
            2,
            0,
            0,
        ]);
        let mh = MobilityHeader::new_checked(&b[..]).unwrap();
        assert_eq!(mh.bu_options().count(), 4);
        assert_eq!(BindingUpdateRepr::parse(&mh).unwrap().alternate_coa, None);
    }
}
