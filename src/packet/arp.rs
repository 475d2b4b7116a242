//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! Only hardware type 1 (Ethernet) with protocol type 0x0800 and 6/4-octet
//! addresses is accepted: that is all the appliance answers for its VIPs.

use super::ethernet::{EtherType, EthernetAddress};
use super::{be16, bytes4, DropReason};
use std::net::Ipv4Addr;

enum_with_unknown! {
    /// ARP opcodes (RFC 826).
    pub enum ArpOperation(u16) {
        /// Request.
        Request = 1,
        /// Reply.
        Reply = 2,
    }
}

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;
    //  0                   1                   2                   3
    //  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |         Hardware Type         |         Protocol Type         |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |  HW Addr Len  | Proto Addr Len|           Operation           |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |  Sender HW Address (6) | Sender Proto Address (4) |
    // |  Target HW Address (6) | Target Proto Address (4) |
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;
/// Offset of the sender protocol address.
pub const SPA_OFFSET: usize = field::SPA.start;

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer after checking the fixed part, the address sizes and
    /// that the addresses are all present.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < field::OPER.end {
            return Err(DropReason::ArpTruncated);
        }
        if be16(b, field::HTYPE.start) != 1
            || be16(b, field::PTYPE.start) != u16::from(EtherType::Ipv4)
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(DropReason::ArpUnsupported);
        }
        if b.len() < PACKET_LEN {
            return Err(DropReason::ArpTruncated);
        }
        Ok(ArpPacket { buffer })
    }

    /// Operation.
    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(be16(self.buffer.as_ref(), field::OPER.start))
    }

    /// Sender hardware address.
    pub fn sender_hardware_addr(&self) -> EthernetAddress {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SHA]);
        EthernetAddress(a)
    }

    /// Sender protocol address.
    #[inline]
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes4(self.buffer.as_ref(), field::SPA.start))
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::THA]);
        EthernetAddress(a)
    }

    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(bytes4(self.buffer.as_ref(), field::TPA.start))
    }
}

/// The value of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hardware_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC.
    pub target_hardware_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Self {
        ArpRepr {
            operation: p.operation(),
            source_hardware_addr: p.sender_hardware_addr(),
            source_protocol_addr: p.sender_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        }
    }

    /// Writes all 28 octets into `buf` (at least [`PACKET_LEN`] long).
    pub fn emit(&self, buf: &mut [u8]) {
        buf[field::HTYPE].copy_from_slice(&1u16.to_be_bytes());
        buf[field::PTYPE].copy_from_slice(&0x0800u16.to_be_bytes());
        buf[field::HLEN] = 6;
        buf[field::PLEN] = 4;
        buf[field::OPER].copy_from_slice(&u16::from(self.operation).to_be_bytes());
        buf[field::SHA].copy_from_slice(&self.source_hardware_addr.0);
        buf[field::SPA].copy_from_slice(&self.source_protocol_addr.octets());
        buf[field::THA].copy_from_slice(&self.target_hardware_addr.0);
        buf[field::TPA].copy_from_slice(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(192, 0, 2, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(192, 0, 2, 254),
        }
    }

    #[test]
    fn emit_parse_and_truncation() {
        let mut b = [0u8; PACKET_LEN];
        repr().emit(&mut b);
        assert_eq!(
            ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()),
            repr()
        );
        for n in 0..PACKET_LEN {
            assert_eq!(
                ArpPacket::new_checked(&b[..n]).unwrap_err(),
                DropReason::ArpTruncated,
                "len {n}"
            );
        }
    }

    #[test]
    fn non_ethernet_ipv4_refused() {
        let mut b = [0u8; PACKET_LEN];
        repr().emit(&mut b);
        b[field::HLEN] = 8;
        assert_eq!(
            ArpPacket::new_checked(&b[..]).unwrap_err(),
            DropReason::ArpUnsupported
        );
    }
}
