//! Zero-copy views of the headers roamlb reads and rewrites, and the classifier
//! that walks a frame from Ethernet to the upper-layer header.
//!
//! The design follows smoltcp's `wire` module: every header has a
//! `Packet<T: AsRef<[u8]>>`-style view whose `new_checked` validates every length
//! once, after which no accessor can panic; field offsets live in a private
//! `mod field` of `Range<usize>` constants under an ASCII copy of the RFC
//! diagram; `Repr` types are the validated values with `parse` and `emit` where
//! the data plane builds or rewrites a header. Wire enums accept every value
//! (`Unknown(..)`), so converting a byte never fails. A refusal is always a
//! [`DropReason`], a `Copy` enum that doubles as the index of a counter array;
//! nothing on the parse path allocates, formats or locks, and every loop is
//! bounded (the IPv6 extension chain by [`ParseConfig::max_ext_headers`], option
//! walks by the header length, which only ever moves forward).
//!
//! Nothing here touches DPDK: the module works on plain byte slices so it can be
//! unit-tested, fuzzed and used by the `classify` operator tool.
#![forbid(unsafe_code)]

/// Declares a wire enum that accepts every value of its representation.
macro_rules! enum_with_unknown {
    (
        $( #[$enum_attr:meta] )*
        pub enum $name:ident($ty:ty) {
            $( $( #[$variant_attr:meta] )* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $( #[$enum_attr] )*
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Clone, Copy)]
        pub enum $name {
            $( $( #[$variant_attr] )* $variant ),*,
            /// A value this enum has no name for.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            #[inline]
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant ),*,
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            #[inline]
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),*,
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

pub mod arp;
pub mod build;
pub mod checksum;
pub mod drop;
pub mod esp;
pub mod ethernet;
pub mod ext;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod mobility;
pub mod parse;
#[cfg(test)]
mod parse_reference;
pub mod rewrite;
pub mod tcp;
pub mod udp;
pub mod vlan;

pub use drop::{DropCounters, DropReason};
pub use parse::{parse, parse_into, Fragment, L3Kind, ParseConfig, Parsed};
pub use rewrite::{Ipv4Field, Ipv6Field, OuterHeader, RewriteError};

enum_with_unknown! {
    /// IP protocol numbers / IPv6 next-header values (IANA "Assigned Internet
    /// Protocol Numbers"; RFC 8200 §4 for the extension headers). The
    /// default, No Next Header, is what an empty summary reports.
    #[derive(Default)]
    pub enum IpProtocol(u8) {
        /// IPv6 Hop-by-Hop Options (RFC 8200 §4.3).
        HopByHop = 0,
        /// ICMP for IPv4 (RFC 792).
        Icmp = 1,
        /// IPv4 encapsulation (RFC 2003).
        IpIp = 4,
        /// TCP (RFC 9293).
        Tcp = 6,
        /// UDP (RFC 768).
        Udp = 17,
        /// IPv6 encapsulation (RFC 2473).
        Ipv6 = 41,
        /// IPv6 Routing header (RFC 8200 §4.4).
        Routing = 43,
        /// IPv6 Fragment header (RFC 8200 §4.5).
        Fragment = 44,
        /// Generic Routing Encapsulation (RFC 2784).
        Gre = 47,
        /// Encapsulating Security Payload (RFC 4303).
        Esp = 50,
        /// Authentication Header (RFC 4302).
        Ah = 51,
        /// ICMP for IPv6 (RFC 4443).
        Icmpv6 = 58,
        /// No Next Header (RFC 8200 §4.7).
        #[default]
        NoNextHeader = 59,
        /// IPv6 Destination Options (RFC 8200 §4.6).
        DestOptions = 60,
        /// VRRP (RFC 5798).
        Vrrp = 112,
        /// Mobility Header (RFC 6275 §6.1).
        Mobility = 135,
    }
}

/// Reads a big-endian `u16` at `off`; callers have checked `off + 2 <= b.len()`.
#[inline(always)]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// Reads a big-endian `u32` at `off`; callers have checked `off + 4 <= b.len()`.
#[inline(always)]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Reads 16 bytes at `off`; callers have checked `off + 16 <= b.len()`.
#[inline(always)]
pub(crate) fn bytes16(b: &[u8], off: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[off..off + 16]);
    a
}

/// Reads 4 bytes at `off`; callers have checked `off + 4 <= b.len()`.
#[inline(always)]
pub(crate) fn bytes4(b: &[u8], off: usize) -> [u8; 4] {
    [b[off], b[off + 1], b[off + 2], b[off + 3]]
}
