//! Encapsulating Security Payload (RFC 4303 §2).
//!
//! Only the cleartext part is readable: the SPI, which roamlb uses as the
//! mobile identity of an IPsec-protected node (it survives care-of address
//! changes), and the Sequence Number, the per-flow marker used during a
//! bucket hand-over. Everything after is ciphertext and is never parsed.

use super::{be32, DropReason};

/// A view of an ESP header.
#[derive(Debug, Clone)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;
    //  0                   1                   2                   3
    //  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |               Security Parameters Index (SPI)                 |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                      Sequence Number                          |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                Payload Data* (variable, encrypted)            |
    pub const SPI: Range<usize> = 0..4;
    pub const SEQ: Range<usize> = 4..8;
    pub const PAYLOAD: usize = 8;
}

/// Length of the cleartext header.
pub const HEADER_LEN: usize = field::PAYLOAD;

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Wraps a buffer without checking it.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        EspPacket { buffer }
    }

    /// Wraps a buffer after checking SPI and Sequence Number are present and
    /// the SPI is not the reserved value 0 (RFC 4303 §2.1).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::EspTruncated);
        }
        if be32(b, field::SPI.start) == 0 {
            return Err(DropReason::EspSpiZero);
        }
        Ok(EspPacket { buffer })
    }

    /// Security Parameters Index.
    #[inline]
    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SPI.start)
    }

    /// Sequence Number.
    #[inline]
    pub fn sequence(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ.start)
    }
}

/// The cleartext ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspRepr {
    /// Security Parameters Index (non-zero).
    pub spi: u32,
    /// Sequence Number.
    pub sequence: u32,
}

impl EspRepr {
    /// Reads a checked header.
    pub fn parse<T: AsRef<[u8]>>(p: &EspPacket<T>) -> Self {
        EspRepr {
            spi: p.spi(),
            sequence: p.sequence(),
        }
    }

    /// Writes the 8 cleartext octets.
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::SPI].copy_from_slice(&self.spi.to_be_bytes());
        buf[field::SEQ].copy_from_slice(&self.sequence.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spi_and_seq() {
        let b = [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 42, 0xff];
        let p = EspPacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            EspRepr::parse(&p),
            EspRepr {
                spi: 0xdeadbeef,
                sequence: 42
            }
        );
        for n in 0..HEADER_LEN {
            assert_eq!(
                EspPacket::new_checked(&b[..n]).unwrap_err(),
                DropReason::EspTruncated
            );
        }
        assert_eq!(
            EspPacket::new_checked(&[0u8; 8][..]).unwrap_err(),
            DropReason::EspSpiZero
        );
    }
}
