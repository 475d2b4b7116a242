//! ICMPv6 (RFC 4443 §2.1): type, code and checksum. Its checksum covers the
//! IPv6 pseudo-header, so address rewrites fix it like TCP's and UDP's.

use super::{be16, DropReason};

/// A view of an ICMPv6 header.
#[derive(Debug, Clone)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;
    //  0                   1                   2                   3
    //  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |     Type      |     Code      |          Checksum             |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                         Message Body                          |
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;
/// Offset of the checksum.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Wraps a buffer after checking the 4-octet header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::Icmpv6Truncated);
        }
        Ok(Icmpv6Packet { buffer })
    }

    /// Type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_truncation() {
        let b = [128u8, 0, 0x12, 0x34];
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.msg_type(), p.code(), p.checksum()), (128, 0, 0x1234));
        for n in 0..HEADER_LEN {
            assert_eq!(
                Icmpv6Packet::new_checked(&b[..n]).unwrap_err(),
                DropReason::Icmpv6Truncated
            );
        }
    }
}
