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
//! into buckets and placing them in the per-core tables: full AES-128
//! ([`crate::aes128`]) of the identity's value, keyed with 128 bits shared
//! by all cluster members. Keyed, so a client cannot craft identities that
//! pile into one bucket or one probe chain without knowing the key: AES is a
//! pseudorandom permutation, so distinct identities give independent-looking
//! outputs. Deterministic for a given key on every machine and architecture
//! (it encrypts a fixed byte encoding, never `Hash` impls that could differ
//! between builds, and AES is the same with or without AES-NI), so members
//! agree on bucket ownership. AES rather than SipHash-1-3 (what this used
//! before) because with AES-NI the ten rounds of one block cost about half
//! of SipHash's six integer rounds and run on a vector port beside the
//! parser's integer work, while AES-128 is the stronger, better-studied
//! keyed function of the two; a non-keyed hash (FxHash, xxHash) would be
//! cheaper still but lets an attacker who can choose SPIs or interface IDs
//! target one bucket.
//! Nothing here allocates.
#![forbid(unsafe_code)]

use crate::aes128::Aes128Block;
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
    identity_key(frame, p, mode).map(|k| k.identity())
}

/// [`identify`], giving the identity in its compact form.
#[inline]
pub fn identity_key(frame: &[u8], p: &Parsed, mode: IdentityMode) -> Option<IdentityKey> {
    if p.is_esp() {
        return Some(IdentityKey::of(&Identity::Spi(p.esp_spi)));
    }
    if let Some(h) = p.home_address(frame) {
        return Some(IdentityKey::of(&Identity::HomeAddress(h)));
    }
    if p.l3 == L3Kind::Ipv6 {
        let s = p.ipv6_src(frame)?;
        return Some(IdentityKey::of(&if mode == IdentityMode::Slaac {
            Identity::InterfaceId(u128::from(s) as u64)
        } else {
            Identity::Source(IpAddr::V6(s))
        }));
    }
    p.ipv4_src(frame)
        .map(|a| IdentityKey::of(&Identity::Source(IpAddr::V4(a))))
}

/// The kinds of identity, in the order of the code [`IdentityKind::code`]
/// gives them (the session table stores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum IdentityKind {
    /// [`Identity::Spi`].
    Spi = 0,
    /// [`Identity::HomeAddress`].
    HomeAddress = 1,
    /// [`Identity::InterfaceId`].
    InterfaceId = 2,
    /// [`Identity::Source`] with an IPv4 address.
    Ipv4 = 3,
    /// [`Identity::Source`] with an IPv6 address.
    Ipv6 = 4,
}

impl IdentityKind {
    /// The kind as a number (0 to 4, in declaration order).
    #[inline]
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The kind of a [`IdentityKind::code`]; codes past 4 read as
    /// [`IdentityKind::Ipv6`].
    #[inline]
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => IdentityKind::Spi,
            1 => IdentityKind::HomeAddress,
            2 => IdentityKind::InterfaceId,
            3 => IdentityKind::Ipv4,
            _ => IdentityKind::Ipv6,
        }
    }
}

/// An identity in the compact form the packet path carries: its kind and
/// its value `V` (see [`IdentityHasher`]), the value's octets big-endian,
/// left-aligned and zero-padded to 16, read as a little-endian `u128`.
///
/// Small and aligned, so it stays in registers from the frame to the hash
/// and the session key. [`Identity`] puts an IPv6 address at an odd offset
/// inside the enum; the compiler moved such values between stack slots in 1-
/// to 8-octet pieces, and the next 8- or 16-octet load of them missed store
/// forwarding (about 7 ns per packet in the classifier bench, and a tenth of
/// `forward_to_backend` in the data plane, by `perf annotate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityKey {
    kind: IdentityKind,
    value: u128,
}

impl IdentityKey {
    /// The key of `id`.
    #[inline(always)]
    pub fn of(id: &Identity) -> Self {
        let (kind, value) = match id {
            Identity::Spi(s) => (IdentityKind::Spi, u128::from(s.swap_bytes())),
            Identity::HomeAddress(a) => (IdentityKind::HomeAddress, u128::from(*a).swap_bytes()),
            Identity::InterfaceId(i) => (IdentityKind::InterfaceId, u128::from(i.swap_bytes())),
            Identity::Source(IpAddr::V4(a)) => {
                (IdentityKind::Ipv4, u128::from(u32::from(*a).swap_bytes()))
            }
            Identity::Source(IpAddr::V6(a)) => (IdentityKind::Ipv6, u128::from(*a).swap_bytes()),
        };
        IdentityKey { kind, value }
    }

    /// The key of kind `kind` whose value's 16 octets are `octets` (the
    /// inverse of [`IdentityKey::kind`] and [`IdentityKey::octets`]).
    #[inline(always)]
    pub const fn from_parts(kind: IdentityKind, octets: [u8; 16]) -> Self {
        IdentityKey {
            kind,
            value: u128::from_le_bytes(octets),
        }
    }

    /// The key of a home address.
    #[inline(always)]
    pub fn home_address(a: Ipv6Addr) -> Self {
        IdentityKey {
            kind: IdentityKind::HomeAddress,
            value: u128::from(a).swap_bytes(),
        }
    }

    /// The identity's kind.
    #[inline(always)]
    pub fn kind(&self) -> IdentityKind {
        self.kind
    }

    /// The value's 16 octets (big-endian, left-aligned, zero-padded).
    #[inline(always)]
    pub fn octets(&self) -> [u8; 16] {
        self.value.to_le_bytes()
    }

    /// True for the identities a binding-update alias may replace: an
    /// interface ID or an IPv6 source.
    #[inline(always)]
    pub fn may_have_alias(&self) -> bool {
        matches!(self.kind, IdentityKind::InterfaceId | IdentityKind::Ipv6)
    }

    /// The identity.
    #[inline(always)]
    pub fn identity(&self) -> Identity {
        let v = self.value;
        match self.kind {
            IdentityKind::Spi => Identity::Spi((v as u32).swap_bytes()),
            IdentityKind::HomeAddress => Identity::HomeAddress(Ipv6Addr::from(v.swap_bytes())),
            IdentityKind::InterfaceId => Identity::InterfaceId((v as u64).swap_bytes()),
            IdentityKind::Ipv4 => Identity::Source(IpAddr::V4((v as u32).swap_bytes().into())),
            IdentityKind::Ipv6 => Identity::Source(IpAddr::V6(Ipv6Addr::from(v.swap_bytes()))),
        }
    }
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

/// Keyed 64-bit hash of identities for sharding (AES-128; see the module
/// documentation for why).
///
/// The hash of an identity is the first 8 octets, read little-endian, of
/// `AES-128(key, V ^ M)`, where `V` is the identity's value big-endian and
/// left-aligned in 16 zero-padded octets (4 for an SPI or an IPv4 source, 8
/// for an interface ID, 16 for IPv6) and `M` is the mask of its kind,
/// `AES-128(key, "roamlb-identity" || tag)` with the one-octet tag 1 (SPI),
/// 2 (home address), 3 (interface ID), 4 (IPv4 source) or 6 (IPv6 source).
/// The secret masks keep equal values of different kinds apart (a home
/// address and the same address as a source hash differently) without a
/// second block. A unit test recomputes this definition with the `aes`
/// crate.
#[derive(Clone)]
pub struct IdentityHasher {
    /// AES-128 under the cluster's key.
    aes: Aes128Block,
    /// The secret mask of each identity kind, indexed by
    /// [`IdentityKind::code`] (one load instead of a match per key).
    masks: [u128; 5],
}

impl fmt::Debug for IdentityHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.write_str("IdentityHasher { .. }")
    }
}

/// The 15 octets every kind mask's block starts with; the tag follows.
const MASK_LABEL: &[u8; 15] = b"roamlb-identity";

impl IdentityHasher {
    /// A hasher with the cluster's shared 128-bit key (the AES-128 key).
    pub fn new(key: [u8; 16]) -> Self {
        Self::with_cipher(Aes128Block::new(key))
    }

    /// The same hasher computed without AES-NI (tests compare the two).
    pub fn portable(key: [u8; 16]) -> Self {
        Self::with_cipher(Aes128Block::portable(key))
    }

    fn with_cipher(aes: Aes128Block) -> Self {
        let mask = |tag: u8| {
            let mut b = [0u8; 16];
            b[..15].copy_from_slice(MASK_LABEL);
            b[15] = tag;
            aes.encrypt(u128::from_le_bytes(b))
        };
        // Tags by kind: SPI 1, home address 2, interface ID 3, IPv4 4,
        // IPv6 6 (in `IdentityKind`'s order).
        let masks = [mask(1), mask(2), mask(3), mask(4), mask(6)];
        IdentityHasher { aes, masks }
    }

    /// A hasher with a random key from the OS (single-node use, tests).
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key)?;
        Ok(Self::new(key))
    }

    /// True when this hasher encrypts with AES-NI.
    pub fn uses_aes_ni(&self) -> bool {
        self.aes.uses_aes_ni()
    }

    /// The hash of `id` (see the type's documentation).
    #[inline]
    pub fn hash(&self, id: &Identity) -> u64 {
        self.hash_key(&IdentityKey::of(id))
    }

    /// [`identify`] and [`IdentityHasher::hash`] in one step: the identity
    /// of the packet `p` summarises, in its compact form, and its hash,
    /// computed from the value read out of `frame` (see [`IdentityKey`] for
    /// why that matters).
    #[inline]
    pub fn identify(
        &self,
        frame: &[u8],
        p: &Parsed,
        mode: IdentityMode,
    ) -> Option<(IdentityKey, u64)> {
        let k = identity_key(frame, p, mode)?;
        Some((k, self.hash_key(&k)))
    }

    /// The hash of the identity `k` is the key of.
    #[inline(always)]
    pub fn hash_key(&self, k: &IdentityKey) -> u64 {
        self.aes.encrypt(self.block(k)) as u64
    }

    /// The hashes of up to [`HASH_LANES`] keys at once, the same values as
    /// [`IdentityHasher::hash_key`] of each, into `hashes[..keys.len()]`
    /// (keys past the lanes are ignored). The blocks are encrypted side by
    /// side ([`Aes128Block::encrypt_lanes`]), which is what makes hashing a
    /// burst cheaper than hashing its packets one after another.
    #[inline]
    pub fn hash_keys(&self, keys: &[IdentityKey], hashes: &mut [u64; HASH_LANES]) {
        let mut blocks = [0u128; HASH_LANES];
        for (b, k) in blocks.iter_mut().zip(keys) {
            *b = self.block(k);
        }
        self.aes.encrypt_lanes(&mut blocks);
        for (h, b) in hashes.iter_mut().zip(blocks).take(keys.len()) {
            *h = b as u64;
        }
    }

    /// The block `V ^ M` that is encrypted for `k`.
    #[inline(always)]
    fn block(&self, k: &IdentityKey) -> u128 {
        // The discriminants are 0 to 4, so the index is in bounds.
        k.value ^ self.masks[k.kind as usize]
    }
}

/// How many identities [`IdentityHasher::hash_keys`] hashes at once.
pub const HASH_LANES: usize = crate::aes128::LANES;

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

    /// `identify`, checking on the way that `IdentityHasher::identify`
    /// gives the same identity and the hash of it.
    fn id(frame: &[u8], mode: IdentityMode) -> Option<Identity> {
        let mut p = Parsed::default();
        let _ = parse_into(frame, &ParseConfig::new(), &mut p);
        let found = identify(frame, &p, mode);
        let hasher = IdentityHasher::new(*b"identity-tests!!");
        assert_eq!(
            hasher
                .identify(frame, &p, mode)
                .map(|(k, h)| (k.identity(), h)),
            found.map(|i| (i, hasher.hash(&i)))
        );
        if let Some(i) = found {
            let k = IdentityKey::of(&i);
            assert_eq!(k.identity(), i);
            assert_eq!(
                k.may_have_alias(),
                matches!(
                    i,
                    Identity::InterfaceId(_) | Identity::Source(IpAddr::V6(_))
                )
            );
        }
        found
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
        let mut arp = [0u8; 64];
        let n = crate::dataplane::neighbor::arp_request(
            &mut arp,
            [2, 0, 0, 0, 0, 1],
            "192.0.2.7".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
        )
        .unwrap();
        let arp = &arp[..n];
        assert_eq!(
            id(arp, IdentityMode::Default).unwrap().to_string(),
            "source=192.0.2.7"
        );
        let esp = build::eth_ipv6("2001:db8::1", "2001:db8::80", &[], &L4::Esp(0xabcd, 7));
        assert_eq!(
            id(&esp, IdentityMode::Slaac).unwrap().to_string(),
            "spi=0x0000abcd"
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
        // The documented definition, recomputed with the `aes` crate, so
        // any implementation can reproduce it; and the AES-NI and portable
        // paths agree.
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
            use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
            let cipher = aes::Aes128::new(&GenericArray::from(key));
            let enc = |b: [u8; 16]| {
                let mut g = GenericArray::from(b);
                cipher.encrypt_block(&mut g);
                <[u8; 16]>::from(g)
            };
            let reference = |value: &[u8], tag: u8| {
                let mut label = [0u8; 16];
                label[..15].copy_from_slice(b"roamlb-identity");
                label[15] = tag;
                let mask = enc(label);
                let mut block = mask;
                for (o, v) in block.iter_mut().zip(value) {
                    *o ^= v;
                }
                let out = enc(block);
                u64::from_le_bytes(out[..8].try_into().unwrap())
            };
            let h = IdentityHasher::new(key);
            let p = IdentityHasher::portable(key);
            for i in &ids {
                let expected = match i {
                    Identity::Spi(s) => reference(&s.to_be_bytes(), 1),
                    Identity::HomeAddress(a) => reference(&a.octets(), 2),
                    Identity::InterfaceId(v) => reference(&v.to_be_bytes(), 3),
                    Identity::Source(IpAddr::V4(a)) => reference(&a.octets(), 4),
                    Identity::Source(IpAddr::V6(a)) => reference(&a.octets(), 6),
                };
                assert_eq!(h.hash(i), expected, "{i}");
                assert_eq!(p.hash(i), expected, "{i}");
            }
        }
        assert!(IdentityHasher::random().is_ok());
        assert_eq!(format!("{a:?}"), "IdentityHasher { .. }");
    }

    #[test]
    fn hashing_keys_side_by_side_gives_each_keys_hash() {
        let keys: Vec<IdentityKey> = [
            Identity::Spi(0x1234),
            Identity::HomeAddress(build::addr6("2001:db8::1")),
            Identity::InterfaceId(0x0211_22ff_fe33_4455),
            Identity::Source("192.0.2.1".parse().unwrap()),
            Identity::Source("2001:db8::1".parse().unwrap()),
            Identity::Spi(0xffff_ffff),
            Identity::HomeAddress(build::addr6("2001:db8:40::7")),
            Identity::Source("198.51.100.9".parse().unwrap()),
        ]
        .iter()
        .map(IdentityKey::of)
        .collect();
        assert_eq!(keys.len(), HASH_LANES);
        for h in [
            IdentityHasher::new(*b"0123456789abcdef"),
            IdentityHasher::portable(*b"0123456789abcdef"),
        ] {
            // Every count of keys from none to all lanes; lanes past the
            // keys are left as they were.
            for n in 0..=HASH_LANES {
                let mut hashes = [7u64; HASH_LANES];
                h.hash_keys(&keys[..n], &mut hashes);
                for (i, k) in keys.iter().enumerate() {
                    let expected = if i < n { h.hash_key(k) } else { 7 };
                    assert_eq!(hashes[i], expected, "{n} keys, lane {i}");
                }
            }
        }
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
