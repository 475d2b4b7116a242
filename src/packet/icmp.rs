//! ICMP for IPv4 (RFC 792): type, code and checksum only; the balancer
//! forwards ICMP by the identity of the packet carrying it.

use super::{be16, DropReason};

/// A view of an ICMP header.
#[derive(Debug, Clone)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;
    //  0                   1                   2                   3
    //  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |     Type      |     Code      |          Checksum             |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                 Rest of header (type specific)                |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const REST: Range<usize> = 4..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::REST.end;

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wraps a buffer after checking the 8-octet header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::IcmpTruncated);
        }
        Ok(IcmpPacket { buffer })
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

    /// Echo identifier (type-specific octets 4..6).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::REST.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_truncation() {
        let b = [8u8, 0, 0xf7, 0xfe, 0, 1, 0, 0];
        let p = IcmpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.msg_type(), p.code(), p.checksum(), p.echo_ident()),
            (8, 0, 0xf7fe, 1)
        );
        for n in 0..HEADER_LEN {
            assert_eq!(
                IcmpPacket::new_checked(&b[..n]).unwrap_err(),
                DropReason::IcmpTruncated
            );
        }
    }
}
