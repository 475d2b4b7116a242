//! IEEE 802.1Q / 802.1ad VLAN tags.
//!
//! The view starts right after the TPID (the EtherType 0x8100 or 0x88a8 that
//! announced the tag), so it covers the Tag Control Information and the
//! EtherType of what follows; the classifier accepts at most two tags (QinQ).

use super::ethernet::EtherType;
use super::{be16, DropReason};

/// A view of one VLAN tag's TCI and inner EtherType.
#[derive(Debug, Clone)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;
    // IEEE 802.1Q §9.6, after the 16-bit TPID:
    //  0                   1                   2                   3
    //  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // | PCP |D|         VID           |      Inner EtherType          |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// Length of a tag after its TPID.
pub const HEADER_LEN: usize = field::PAYLOAD;

impl<T: AsRef<[u8]>> VlanTag<T> {
    /// Wraps a buffer without checking it.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wraps a buffer after checking it holds the whole tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::VlanTruncated);
        }
        Ok(VlanTag { buffer })
    }

    /// Priority Code Point.
    #[inline]
    pub fn pcp(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::TCI.start) >> 13) as u8
    }

    /// Drop Eligible Indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        be16(self.buffer.as_ref(), field::TCI.start) & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub fn vid(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI.start) & 0x0fff
    }

    /// EtherType of what follows the tag.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    /// EtherType of what follows, as the number on the wire.
    #[inline]
    pub fn ethertype_raw(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the VLAN identifier, keeping PCP and DEI.
    #[inline]
    pub fn set_vid(&mut self, vid: u16) {
        let b = self.buffer.as_mut();
        let tci = (be16(b, 0) & 0xf000) | (vid & 0x0fff);
        b[field::TCI].copy_from_slice(&tci.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let b = [0xb0, 0x64, 0x08, 0x00];
        let t = VlanTag::new_checked(&b[..]).unwrap();
        assert_eq!(t.pcp(), 5);
        assert!(t.dei());
        assert_eq!(t.vid(), 100);
        assert_eq!(t.ethertype(), EtherType::Ipv4);
        for n in 0..4 {
            assert_eq!(
                VlanTag::new_checked(&b[..n]).unwrap_err(),
                DropReason::VlanTruncated
            );
        }
        let mut m = b;
        VlanTag::new_unchecked(&mut m[..]).set_vid(0xfff);
        assert_eq!(m, [0xbf, 0xff, 0x08, 0x00]);
    }
}
