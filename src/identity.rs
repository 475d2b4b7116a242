//! Mobile identity: what roamlb keys its affinity decisions on instead of the
//! source address, so that a mobile node (RFC 6275) keeps its server however
//! often its care-of address changes.
//!
//! [`identify`] reads the identity out of one [`Parsed`] summary in the
//! precedence of the S1 design (configurable per service with
//! [`IdentityMode`]): the ESP SPI (an IPsec SA outlives any CoA change), then
//! the Home Address option's address (RFC 6275 §6.3), then — in `slaac` mode,
//! IPv6 only — the interface ID (lower 64 bits of the source, which a node
//! that autoconfigures its CoA (RFC 4862) keeps across links), then the
//! source address itself (nodes at home, IPv4). [`binding_update`] turns a
//! Mobility Header Binding Update into the alias the tables need: home
//! address → new care-of address, with its sequence number and lifetime.
//!
//! [`IdentityHasher`] is the keyed 64-bit hash used for sharding identities
//! into buckets. It is SipHash-1-3 keyed with 128 bits shared
//! by all cluster members: keyed, so a client cannot craft identities that
//! pile into one bucket without knowing the key; deterministic for a given
//! key on every machine and architecture (it hashes a fixed little-endian
//! byte encoding, never `Hash` impls that could differ between builds), so
//! members agree on bucket ownership. SipHash-1-3 rather than 2-4 because it
//! is the variant Rust's std uses for HashMap: still a keyed PRF for this
//! purpose and about 30% cheaper on our 5–17 octet inputs; a non-keyed
//! hash (FxHash, xxHash) would be faster but lets an attacker who can choose
//! SPIs or interface IDs target one bucket. The identity is encoded as a
//! fixed 17-octet message, so the hash is computed inline on two words plus
//! the final block, starting from a state precomputed from the key; a test
//! checks it equals the `siphasher` crate's SipHash-1-3 of the same message
//! for 36 keys (that crate's generic byte-stream path measured about 3x
//! slower here). A 16-octet message (kind folded into the key or the length
//! octet) would not be cheaper: SipHash always appends a length block, so it
//! is 3 compression rounds either way. Reduced-round AES keyed by the secret
//! (the `aes` crate's `hazmat::cipher_round`) was measured and rejected:
//! each round is an out-of-line call with a CPU-feature check and a trip
//! through memory, so 3–4 rounds cost about 3x our SipHash here, and
//! reduced-round AES is not a PRF anyone has proven or studied for this use.
//! Nothing here allocates.
#![forbid(unsafe_code)]

use crate::packet::mobility::bu_flags;
use crate::packet::parse::{L3Kind, Parsed};
use crate::packet::IpProtocol;
use core::fmt;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};

/// A mobile node's identity as roamlb sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// IPsec ESP Security Parameters Index (RFC 4303 §2.1).
    Spi(u32),
    /// Home address from a Home Address option (RFC 6275 §6.3).
    HomeAddress(Ipv6Addr),
    /// Interface ID: the lower 64 bits of an IPv6 source (RFC 4291 §2.5.1).
    InterfaceId(u64),
    /// The source address.
    Source(IpAddr),
}

impl Identity {
    /// The kind name used in `classify` output: `spi`, `home_address`,
    /// `interface_id` or `source`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Identity::Spi(_) => "spi",
            Identity::HomeAddress(_) => "home_address",
            Identity::InterfaceId(_) => "interface_id",
            Identity::Source(_) => "source",
        }
    }
}

/// `kind=value`: `spi=0x0000abcd`, `home_address=2001:db8::1` (RFC 5952),
/// `interface_id=0211:22ff:fe33:4455`, `source=192.0.2.1`.
impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Spi(s) => write!(f, "spi=0x{s:08x}"),
            Identity::HomeAddress(a) => write!(f, "home_address={a}"),
            Identity::InterfaceId(i) => write!(
                f,
                "interface_id={:04x}:{:04x}:{:04x}:{:04x}",
                (i >> 48) as u16,
                (i >> 32) as u16,
                (i >> 16) as u16,
                *i as u16
            ),
            Identity::Source(a) => write!(f, "source={a}"),
        }
    }
}

/// Identity precedence, per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMode {
    /// SPI, then Home Address option, then source address.
    #[default]
    Default,
    /// SPI, then Home Address option, then the interface ID of an IPv6
    /// source, then the source address (IPv4).
    Slaac,
}

impl std::str::FromStr for IdentityMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "default" => Ok(IdentityMode::Default),
            "slaac" => Ok(IdentityMode::Slaac),
            other => Err(format!(
                "unknown identity mode {other:?} (expected default or slaac)"
            )),
        }
    }
}

impl fmt::Display for IdentityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentityMode::Default => "default",
            IdentityMode::Slaac => "slaac",
        })
    }
}

/// The identity of the packet `p` summarises. `frame` must be the frame it
/// was parsed from. Works on the partial summary of a refused packet too,
/// giving the best identity validated before the refusal. `None` only when
/// no network-layer header was validated.
#[inline]
pub fn identify(frame: &[u8], p: &Parsed, mode: IdentityMode) -> Option<Identity> {
    if p.is_esp() {
        return Some(Identity::Spi(p.esp_spi));
    }
    if let Some(h) = p.home_address(frame) {
        return Some(Identity::HomeAddress(h));
    }
    if mode == IdentityMode::Slaac && p.l3 == L3Kind::Ipv6 {
        if let Some(s) = p.ipv6_src(frame) {
            return Some(Identity::InterfaceId(u128::from(s) as u64));
        }
    }
    p.src_addr(frame).map(Identity::Source)
}

/// What a Binding Update tells the balancer (RFC 6275 §6.1.7, §9.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingUpdate {
    /// The mobile node's home address: the Home Address option's address,
    /// or the IPv6 source when there is none (a node deregistering at home).
    pub home_address: Ipv6Addr,
    /// The new care-of address: the Alternate Care-of Address option when
    /// present (§6.2.5), else the IPv6 source.
    pub care_of_address: Ipv6Addr,
    /// Sequence #.
    pub sequence: u16,
    /// Flags (see [`bu_flags`]).
    pub flags: u16,
    /// Lifetime in seconds (the wire counts 4-second units).
    pub lifetime_secs: u32,
}

impl BindingUpdate {
    /// True for a home registration (H flag).
    pub fn is_home_registration(&self) -> bool {
        self.flags & bu_flags::HOME_REGISTRATION != 0
    }
}

/// The Binding Update carried by a packet, if it is one.
#[inline]
pub fn binding_update(frame: &[u8], p: &Parsed) -> Option<BindingUpdate> {
    if !p.is_binding_update() {
        return None;
    }
    let src = p.ipv6_src(frame)?;
    let mh = usize::from(p.l4_offset);
    let b = frame.get(mh..mh + 12)?;
    Some(BindingUpdate {
        home_address: p.home_address(frame).unwrap_or(src),
        care_of_address: p.alternate_coa(frame).unwrap_or(src),
        sequence: u16::from_be_bytes([b[6], b[7]]),
        flags: u16::from_be_bytes([b[8], b[9]]),
        lifetime_secs: u32::from(u16::from_be_bytes([b[10], b[11]])) * 4,
    })
}

/// Keyed 64-bit hash of identities for sharding (SipHash-1-3; see the
/// module documentation for why).
///
/// The message is always 17 octets: the identity's value, big-endian,
/// left-aligned in 16 zero-padded octets (4 for an SPI or IPv4 source, 8 for
/// an interface ID, 16 for IPv6), then one kind tag octet, so equal values of
/// different kinds differ. Because the length is fixed, the hash is computed
/// here on two 64-bit words plus the final block, which is standard
/// SipHash-1-3 of that message (a unit test checks it against `siphasher`)
/// at a fraction of the generic byte-stream cost.
#[derive(Clone)]
pub struct IdentityHasher {
    /// The state every hash starts from, computed once from the key: the
    /// four initialised SipHash words, with the first half of the first
    /// SipRound already applied to `v0` and `v1` (that half reads only `v0`
    /// and `v1`, which no message word has touched yet).
    start: [u64; 4],
}

impl fmt::Debug for IdentityHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.write_str("IdentityHasher { .. }")
    }
}

/// Length of the hashed message.
const MSG_LEN: u64 = 17;

#[inline(always)]
fn sip_round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

impl IdentityHasher {
    /// A hasher with the cluster's shared 128-bit key (SipHash key order:
    /// k0 = first 8 octets little-endian, k1 = last 8).
    pub fn new(key: [u8; 16]) -> Self {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&key[..8]);
        b.copy_from_slice(&key[8..]);
        let (k0, k1) = (u64::from_le_bytes(a), u64::from_le_bytes(b));
        let (v0, v1) = (k0 ^ 0x736f_6d65_7073_6575, k1 ^ 0x646f_7261_6e64_6f6d);
        let v0 = v0.wrapping_add(v1);
        let v1 = v1.rotate_left(13) ^ v0;
        IdentityHasher {
            start: [
                v0.rotate_left(32),
                v1,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
        }
    }

    /// A hasher with a random key from the OS (single-node use, tests).
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key)?;
        Ok(Self::new(key))
    }

    /// The 17-octet message for `id` (see the type's documentation).
    #[inline]
    pub fn message(id: &Identity) -> [u8; 17] {
        let mut m = [0u8; 17];
        match id {
            Identity::Spi(s) => {
                m[..4].copy_from_slice(&s.to_be_bytes());
                m[16] = 1;
            }
            Identity::HomeAddress(a) => {
                m[..16].copy_from_slice(&a.octets());
                m[16] = 2;
            }
            Identity::InterfaceId(i) => {
                m[..8].copy_from_slice(&i.to_be_bytes());
                m[16] = 3;
            }
            Identity::Source(IpAddr::V4(a)) => {
                m[..4].copy_from_slice(&a.octets());
                m[16] = 4;
            }
            Identity::Source(IpAddr::V6(a)) => {
                m[..16].copy_from_slice(&a.octets());
                m[16] = 6;
            }
        }
        m
    }

    /// The hash of `id`: SipHash-1-3 of [`IdentityHasher::message`].
    #[inline]
    pub fn hash(&self, id: &Identity) -> u64 {
        // Message words, as SipHash reads them (little-endian octets).
        let (w0, w1, tag): (u64, u64, u8) = match id {
            Identity::Spi(s) => (u64::from(s.swap_bytes()), 0, 1),
            Identity::HomeAddress(a) => (le_hi(a), le_lo(a), 2),
            Identity::InterfaceId(i) => (i.swap_bytes(), 0, 3),
            Identity::Source(IpAddr::V4(a)) => (u64::from(u32::from_le_bytes(a.octets())), 0, 4),
            Identity::Source(IpAddr::V6(a)) => (le_hi(a), le_lo(a), 6),
        };
        // First block: the rest of the SipRound that `start` began.
        let mut v = self.start;
        v[3] ^= w0;
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16);
        v[3] ^= v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21);
        v[3] ^= v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17);
        v[1] ^= v[2];
        v[2] = v[2].rotate_left(32);
        v[0] ^= w0;
        for m in [w1, (MSG_LEN << 56) | u64::from(tag)] {
            v[3] ^= m;
            sip_round(&mut v);
            v[0] ^= m;
        }
        v[2] ^= 0xff;
        sip_round(&mut v);
        sip_round(&mut v);
        sip_round(&mut v);
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

/// First 8 octets of an IPv6 address read as a little-endian word.
#[inline(always)]
fn le_hi(a: &Ipv6Addr) -> u64 {
    ((u128::from(*a) >> 64) as u64).swap_bytes()
}

/// Last 8 octets of an IPv6 address read as a little-endian word.
#[inline(always)]
fn le_lo(a: &Ipv6Addr) -> u64 {
    (u128::from(*a) as u64).swap_bytes()
}

/// True when `p` is the kind of packet that has ports for a 5-tuple.
#[inline]
pub fn has_ports(p: &Parsed) -> bool {
    p.has_l4() && matches!(p.protocol, IpProtocol::Tcp | IpProtocol::Udp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::build::{self, Ext, L4};
    use crate::packet::mobility::BindingUpdateRepr;
    use crate::packet::{parse, parse_into, DropReason, ParseConfig};

    fn id(frame: &[u8], mode: IdentityMode) -> Option<Identity> {
        let mut p = Parsed::default();
        let _ = parse_into(frame, &ParseConfig::new(), &mut p);
        identify(frame, &p, mode)
    }

    #[test]
    fn precedence_default() {
        let hao = [Ext::Hao(build::addr6("2001:db8:40::1"))];
        let f = build::eth_ipv6("2001:db8:c0a::1", "2001:db8::80", &hao, &L4::Esp(0xabcd, 1));
        assert_eq!(
            id(&f, IdentityMode::Default).unwrap().to_string(),
            "spi=0x0000abcd"
        );
        let f = build::eth_ipv6(
            "2001:db8:c0a::1",
            "2001:db8::80",
            &hao,
            &L4::Tcp(1, 2, 3, 4),
        );
        assert_eq!(
            id(&f, IdentityMode::Default).unwrap().to_string(),
            "home_address=2001:db8:40::1"
        );
        assert_eq!(
            id(&f, IdentityMode::Slaac).unwrap().to_string(),
            "home_address=2001:db8:40::1"
        );
        let f = build::eth_ipv6(
            "2001:db8:c0a::211:22ff:fe33:4455",
            "2001:db8::80",
            &[],
            &L4::Tcp(1, 2, 3, 4),
        );
        assert_eq!(
            id(&f, IdentityMode::Default).unwrap().to_string(),
            "source=2001:db8:c0a:0:211:22ff:fe33:4455"
        );
        assert_eq!(
            id(&f, IdentityMode::Slaac).unwrap().to_string(),
            "interface_id=0211:22ff:fe33:4455"
        );
        let f = build::eth_ipv4("192.0.2.1", "198.51.100.1", &L4::Udp(1, 2, vec![]));
        assert_eq!(
            id(&f, IdentityMode::Slaac).unwrap().to_string(),
            "source=192.0.2.1"
        );
    }

    #[test]
    fn identity_of_refused_packet_is_best_found() {
        // HAO found, then a truncated TCP header.
        let mut f = build::eth_ipv6(
            "2001:db8:c0a::1",
            "2001:db8::80",
            &[Ext::Hao(build::addr6("2001:db8:40::1"))],
            &L4::Raw(6, vec![0; 10]),
        );
        f.truncate(f.len());
        assert_eq!(
            parse(&f, &ParseConfig::new()).unwrap_err(),
            DropReason::TcpTruncated
        );
        assert_eq!(
            id(&f, IdentityMode::Default),
            Some(Identity::HomeAddress(build::addr6("2001:db8:40::1")))
        );
        assert_eq!(id(&f[..20], IdentityMode::Default), None);
    }

    #[test]
    fn binding_updates() {
        let r = BindingUpdateRepr {
            sequence: 7,
            flags: bu_flags::ACK | bu_flags::HOME_REGISTRATION,
            lifetime: 100,
            alternate_coa: None,
        };
        let hao = [Ext::Hao(build::addr6("2001:db8:40::1"))];
        let f = build::eth_ipv6(
            "2001:db8:c0a::1",
            "2001:db8:40::ffff",
            &hao,
            &L4::BindingUpdate(r),
        );
        let p = parse(&f, &ParseConfig::new()).unwrap();
        let bu = binding_update(&f, &p).unwrap();
        assert_eq!(bu.home_address, build::addr6("2001:db8:40::1"));
        assert_eq!(bu.care_of_address, build::addr6("2001:db8:c0a::1"));
        assert_eq!((bu.sequence, bu.lifetime_secs), (7, 400));
        assert!(bu.is_home_registration());
        let r = BindingUpdateRepr {
            alternate_coa: Some(build::addr6("2001:db8:c0b::9")),
            ..r
        };
        let f = build::eth_ipv6(
            "2001:db8:c0a::1",
            "2001:db8:40::ffff",
            &hao,
            &L4::BindingUpdate(r),
        );
        let p = parse(&f, &ParseConfig::new()).unwrap();
        assert_eq!(
            binding_update(&f, &p).unwrap().care_of_address,
            build::addr6("2001:db8:c0b::9")
        );
        let f = build::eth_ipv6(
            "2001:db8:c0a::1",
            "2001:db8:40::ffff",
            &hao,
            &L4::Tcp(1, 2, 3, 4),
        );
        assert_eq!(
            binding_update(&f, &parse(&f, &ParseConfig::new()).unwrap()),
            None
        );
    }

    #[test]
    fn hasher_is_keyed_and_deterministic() {
        let a = IdentityHasher::new([1; 16]);
        let b = IdentityHasher::new([1; 16]);
        let c = IdentityHasher::new([2; 16]);
        let ids = [
            Identity::Spi(0x1234),
            Identity::HomeAddress(build::addr6("2001:db8::1")),
            Identity::InterfaceId(0x0211_22ff_fe33_4455),
            Identity::Source("192.0.2.1".parse().unwrap()),
            Identity::Source("2001:db8::1".parse().unwrap()),
        ];
        for i in &ids {
            assert_eq!(a.hash(i), b.hash(i));
            assert_ne!(a.hash(i), c.hash(i));
        }
        // Same value, different kinds: different hashes.
        assert_ne!(a.hash(&ids[1]), a.hash(&ids[4]));
        // Standard SipHash-1-3 of the documented message (checked against
        // the siphasher crate), so any implementation can reproduce it.
        let mut keys = vec![[1u8; 16], *b"0123456789abcdef", [0; 16], [0xff; 16]];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..32 {
            let mut k = [0u8; 16];
            for b in &mut k {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            keys.push(k);
        }
        for key in keys {
            let h = IdentityHasher::new(key);
            let reference = siphasher::sip::SipHasher13::new_with_key(&key);
            for i in &ids {
                assert_eq!(
                    h.hash(i),
                    reference.hash(&IdentityHasher::message(i)),
                    "{i}"
                );
            }
        }
        assert!(IdentityHasher::random().is_ok());
        assert_eq!(format!("{a:?}"), "IdentityHasher { .. }");
    }

    #[test]
    fn identity_mode_serde() {
        assert_eq!(
            serde_json::to_string(&IdentityMode::Slaac).unwrap(),
            "\"slaac\""
        );
        assert_eq!(
            serde_json::from_str::<IdentityMode>("\"default\"").unwrap(),
            IdentityMode::Default
        );
        assert!("bogus".parse::<IdentityMode>().is_err());
    }
}
