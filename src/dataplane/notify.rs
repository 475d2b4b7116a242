//! Authenticated home-agent notifications (issue 4, design S1).
//!
//! Besides Mobility Header Binding Updates, a home agent can tell the load
//! balancer directly that a mobile node's care-of address changed: one UDP
//! datagram of exactly [`NOTIFY_LEN`] (80) octets, authenticated with
//! HMAC-SHA256 under a key shared with the home agent and truncated to 16
//! octets (RFC 2104 §5 allows half the hash output; RFC 4868 §2.6 truncates
//! HMAC-SHA-256 to the same 128 bits for IPsec). An accepted notification does what a Binding Update does: it
//! aliases the care-of address to the home address's session
//! ([`Notification::alias_update`] gives the [`AliasUpdate`] that
//! [`CoreLb::apply_alias`](crate::dataplane::lb::CoreLb::apply_alias) and the
//! alias broadcast take). The wire format, the key and the replay rules are
//! documented for home-agent implementers in `README.md`; the sender
//! `scripts/ha_notify.py` is an independent encoder that the tests check
//! this module against.
//!
//! **Checks, in order** ([`verify`]): length, magic, version, reserved flag
//! bits and reserved octets (cheap checks on constant fields, so a
//! misdirected datagram costs no hash), then the MAC, compared in constant
//! time, then — only on authentic data — the timestamp window, the
//! lifetime/remove consistency and the addresses. Everything a forger can
//! change without touching a constant field is therefore counted as
//! `notify_bad_mac`, the counter that matters for security.
//! [`verify`] allocates nothing and cannot panic (a proptest feeds it
//! arbitrary bytes).
//!
//! **Replay.** The timestamp bounds how long a captured datagram stays
//! usable (± `max_skew_ms` around the receiver's clock); within that window
//! the [`ReplayGuard`] rejects any sequence number not above the last one
//! accepted for the same home address. Its entries live for twice the skew
//! (rounded up to whole seconds, plus one), so by the time an entry expires
//! every datagram that could replay it is already stale. The guard lives on
//! the core that owns the home address's shard: the pipeline hands a
//! notification to that owner exactly like a Binding Update, so one guard
//! sees every notification for a home address and no core shares it. Only
//! a datagram that passed [`verify`] may be recorded, or a forger could
//! raise the sequence and lock the home agent out. A home agent must keep
//! its sequence strictly increasing across restarts; the simplest way, and
//! what `ha_notify.py` does by default, is to use the timestamp in
//! milliseconds as the sequence.
//!
//! **Deviations from the design brief**, each to close a gap it left open:
//! lifetime 0 without the remove flag is rejected (the brief only required
//! lifetime 0 *with* it; an [`AliasUpdate`] with lifetime 0 removes, so an
//! unflagged 0 would silently remove too), and so is a lifetime above a
//! Binding Update's maximum, [`MAX_LIFETIME_SECS`] (the alias table compares
//! times with wrapping `u32` arithmetic and needs lifetimes far below 2^31);
//! addresses that cannot be a mobile node's (unspecified, loopback,
//! multicast, or a care-of address equal to the home address) are rejected
//! as `notify_bad_address`; a timestamp ahead of the window is counted
//! apart (`notify_future`) from one behind it (`notify_stale`), since the
//! two point at different clock faults; and non-zero reserved octets have
//! their own reason (`notify_bad_reserved`) beside reserved flag bits
//! (`notify_bad_flags`).

#![forbid(unsafe_code)]

use core::fmt;
use std::net::Ipv6Addr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::dataplane::lb::AliasUpdate;
use crate::dataplane::table::{Table, TableError};

type HmacSha256 = Hmac<Sha256>;

/// Field offsets of a notification (all integers in network byte order).
mod field {
    use core::ops::Range;
    //  0                   1                   2                   3
    //  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                     Magic "RLBN" (0x524c424e)                 |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |  Version = 1  |     Flags     |      Reserved (must be 0)     |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                                                               |
    // +         Timestamp: milliseconds since the Unix epoch          +
    // |                                                               |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                                                               |
    // +         Sequence, strictly increasing per home address        +
    // |                                                               |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                      Lifetime (seconds)                       |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                      Reserved (must be 0)                     |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                                                               |
    // +                                                               +
    // |                    Home Address (IPv6, 16)                    |
    // +                                                               +
    // |                                                               |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                                                               |
    // +                                                               +
    // |                  Care-of Address (IPv6, 16)                   |
    // +                                                               +
    // |                                                               |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    // |                                                               |
    // +                                                               +
    // |   HMAC-SHA256 over octets 0..64, leftmost 16 octets (16)      |
    // +                                                               +
    // |                                                               |
    // +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: usize = 4;
    pub const FLAGS: usize = 5;
    pub const RESERVED1: Range<usize> = 6..8;
    pub const TIMESTAMP: Range<usize> = 8..16;
    pub const SEQUENCE: Range<usize> = 16..24;
    pub const LIFETIME: Range<usize> = 24..28;
    pub const RESERVED2: Range<usize> = 28..32;
    pub const HOME: Range<usize> = 32..48;
    pub const COA: Range<usize> = 48..64;
    pub const MAC: Range<usize> = 64..80;
}

/// Length of a notification: the whole UDP payload.
pub const NOTIFY_LEN: usize = field::MAC.end;
/// The magic, "RLBN".
pub const MAGIC: [u8; 4] = *b"RLBN";
/// The one version this module speaks.
pub const VERSION: u8 = 1;
/// Flags bit: remove the alias (the lifetime must then be 0).
pub const FLAG_REMOVE: u8 = 0x01;
/// Octets of the truncated MAC.
pub const MAC_LEN: usize = field::MAC.end - field::MAC.start;
/// Longest accepted lifetime: a Binding Update's maximum, 65535 units of 4
/// seconds (RFC 6275 §6.1.7).
pub const MAX_LIFETIME_SECS: u32 = 65_535 * 4;
/// Shortest shared key, in octets: 128 bits, the strength of the truncated
/// MAC. RFC 2104 §3 recommends at least the hash output (32 octets), which
/// is what the documentation tells operators to generate.
pub const MIN_KEY_LEN: usize = 16;
/// Longest shared key, in octets (SHA-256's block size; a longer key would be
/// hashed first and gain nothing).
pub const MAX_KEY_LEN: usize = 64;
/// Largest accepted `max_skew_ms` for a [`ReplayGuard`]: one day.
pub const MAX_SKEW_MS: u64 = 86_400_000;

macro_rules! notify_drops {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal ),+ $(,)?) => {
        /// Why a home-agent notification was dropped.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum NotifyDrop {
            $( $(#[$doc])* $variant, )+
        }

        impl NotifyDrop {
            /// Every reason, in index order.
            pub const ALL: &'static [NotifyDrop] = &[$(NotifyDrop::$variant),+];
            /// How many reasons there are.
            pub const COUNT: usize = NotifyDrop::ALL.len();

            /// The counter name.
            pub const fn name(self) -> &'static str {
                match self { $(NotifyDrop::$variant => $name),+ }
            }
        }
    };
}

notify_drops! {
    /// The UDP payload is not exactly [`NOTIFY_LEN`] octets.
    BadLength => "notify_bad_length",
    /// The first four octets are not "RLBN".
    BadMagic => "notify_bad_magic",
    /// A version other than [`VERSION`].
    BadVersion => "notify_bad_version",
    /// A reserved flag bit (any but [`FLAG_REMOVE`]) is set.
    BadFlags => "notify_bad_flags",
    /// A reserved octet is not zero.
    BadReserved => "notify_bad_reserved",
    /// The MAC does not match: forged, corrupted, or the wrong key.
    BadMac => "notify_bad_mac",
    /// The timestamp is older than the allowed skew.
    Stale => "notify_stale",
    /// The timestamp is further ahead than the allowed skew.
    Future => "notify_future",
    /// Remove flag and lifetime disagree, or the lifetime is above
    /// [`MAX_LIFETIME_SECS`].
    BadLifetime => "notify_bad_lifetime",
    /// An address that cannot be a mobile node's, or care-of = home.
    BadAddress => "notify_bad_address",
    /// The sequence is not above the last one accepted for the home address.
    Replayed => "notify_replayed",
    /// The replay guard has no room for another home address.
    GuardFull => "notify_guard_full",
}

/// Counters for notifications: accepted ones and drops by reason (the
/// reason is the index).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyCounters {
    /// Notifications that passed every check.
    pub accepted: u64,
    /// Drops, indexed by `NotifyDrop as usize`.
    pub drops: [u64; NotifyDrop::COUNT],
}

impl NotifyCounters {
    /// Counts one drop.
    #[inline]
    pub fn drop(&mut self, reason: NotifyDrop) {
        self.drops[reason as usize] += 1;
    }

    /// Counts the outcome of [`verify`] or [`ReplayGuard::check_and_record`].
    #[inline]
    pub fn count<T>(&mut self, r: &Result<T, NotifyDrop>) {
        match r {
            Ok(_) => self.accepted += 1,
            Err(d) => self.drop(*d),
        }
    }
}

/// Why a key or a replay guard could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The key's hex has the wrong number of digits.
    #[error(
        "notification key has {digits} hex digits; give 32 to 128 (16 to 64 random octets, e.g. `openssl rand -hex 32`)"
    )]
    KeyLength {
        /// Digits found.
        digits: usize,
    },
    /// The key's hex holds something other than a hex digit.
    #[error("notification key: character {position} is not a hex digit")]
    KeyDigit {
        /// 0-based index of the offending character (after trimming).
        position: usize,
    },
    /// The skew is above [`MAX_SKEW_MS`].
    #[error("notification skew {skew_ms} ms is above the limit of {MAX_SKEW_MS} ms")]
    SkewTooLarge {
        /// The skew asked for.
        skew_ms: u64,
    },
    /// The replay guard's table could not be allocated.
    #[error("replay guard: {0}")]
    Table(#[from] TableError),
}

/// The key shared with the home agents, ready to use: HMAC-SHA256 keyed once
/// (inner and outer pad states precomputed), cloned per datagram.
///
/// `Debug` prints the length only, never the key.
#[derive(Clone)]
pub struct NotifyKey {
    mac: HmacSha256,
    len: usize,
}

impl fmt::Debug for NotifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NotifyKey(<{} octets, redacted>)", self.len)
    }
}

impl NotifyKey {
    /// A key from raw octets; 16 to 64 of them.
    pub fn new(key: &[u8]) -> Result<Self, NotifyError> {
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(NotifyError::KeyLength {
                digits: key.len() * 2,
            });
        }
        let mac = HmacSha256::new_from_slice(key).map_err(|_| NotifyError::KeyLength {
            digits: key.len() * 2,
        })?;
        Ok(NotifyKey {
            mac,
            len: key.len(),
        })
    }

    /// A key from 32 to 128 hex digits (either case; surrounding whitespace,
    /// such as a key file's final newline, is ignored).
    pub fn from_hex(hex: &str) -> Result<Self, NotifyError> {
        let hex = hex.trim().as_bytes();
        if hex.len() % 2 != 0 || !(MIN_KEY_LEN * 2..=MAX_KEY_LEN * 2).contains(&hex.len()) {
            return Err(NotifyError::KeyLength { digits: hex.len() });
        }
        let mut raw = [0u8; MAX_KEY_LEN];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or(NotifyError::KeyDigit { position: 2 * i })?;
            let lo = hex_digit(pair[1]).ok_or(NotifyError::KeyDigit {
                position: 2 * i + 1,
            })?;
            raw[i] = (hi << 4) | lo;
        }
        let key = Self::new(&raw[..hex.len() / 2]);
        raw.fill(0);
        key
    }

    /// Length of the key in octets.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a key has at least [`MIN_KEY_LEN`] octets.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The truncated MAC of `signed` (octets 0..64 of a notification).
    fn tag(&self, signed: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(signed);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }
}

impl core::str::FromStr for NotifyKey {
    type Err = NotifyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A verified notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Notification {
    /// The mobile node's home address (its identity).
    pub home: Ipv6Addr,
    /// Its new care-of address.
    pub coa: Ipv6Addr,
    /// Seconds the alias lives; 0 with `remove`.
    pub lifetime: u32,
    /// Remove the alias instead of creating or refreshing it.
    pub remove: bool,
    /// Strictly increasing per home address.
    pub sequence: u64,
    /// When the home agent sent it, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl Notification {
    /// The alias update to apply and broadcast, as for a Binding Update
    /// (lifetime 0 removes).
    pub fn alias_update(&self) -> AliasUpdate {
        AliasUpdate {
            coa: self.coa,
            home: self.home,
            lifetime: if self.remove { 0 } else { self.lifetime },
        }
    }
}

#[inline]
fn be64(b: &[u8; NOTIFY_LEN], r: core::ops::Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_be_bytes(a)
}

#[inline]
fn be32(b: &[u8; NOTIFY_LEN], r: core::ops::Range<usize>) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[r]);
    u32::from_be_bytes(a)
}

#[inline]
fn addr(b: &[u8; NOTIFY_LEN], r: core::ops::Range<usize>) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[r]);
    Ipv6Addr::from(a)
}

/// An address a mobile node can have: not unspecified, loopback or multicast.
#[inline]
fn usable(a: &Ipv6Addr) -> bool {
    !(a.is_unspecified() || a.is_loopback() || a.is_multicast())
}

/// Checks a notification (the whole UDP payload) and returns its contents.
///
/// Checks, in order: length, magic, version, flags, reserved octets, MAC
/// (constant time), timestamp within `max_skew_ms` of `now_ms` (both in
/// milliseconds since the Unix epoch), lifetime, addresses. The sequence is
/// checked afterwards by the home address's [`ReplayGuard`]. No allocation,
/// no panic on any input.
pub fn verify(
    payload: &[u8],
    key: &NotifyKey,
    now_ms: u64,
    max_skew_ms: u64,
) -> Result<Notification, NotifyDrop> {
    let b: &[u8; NOTIFY_LEN] = payload.try_into().map_err(|_| NotifyDrop::BadLength)?;
    if b[field::MAGIC] != MAGIC {
        return Err(NotifyDrop::BadMagic);
    }
    if b[field::VERSION] != VERSION {
        return Err(NotifyDrop::BadVersion);
    }
    let flags = b[field::FLAGS];
    if flags & !FLAG_REMOVE != 0 {
        return Err(NotifyDrop::BadFlags);
    }
    if b[field::RESERVED1]
        .iter()
        .chain(&b[field::RESERVED2])
        .any(|&x| x != 0)
    {
        return Err(NotifyDrop::BadReserved);
    }
    let mut m = key.mac.clone();
    m.update(&b[..field::MAC.start]);
    m.verify_truncated_left(&b[field::MAC])
        .map_err(|_| NotifyDrop::BadMac)?;

    let timestamp_ms = be64(b, field::TIMESTAMP);
    if now_ms.saturating_sub(timestamp_ms) > max_skew_ms {
        return Err(NotifyDrop::Stale);
    }
    if timestamp_ms.saturating_sub(now_ms) > max_skew_ms {
        return Err(NotifyDrop::Future);
    }
    let remove = flags & FLAG_REMOVE != 0;
    let lifetime = be32(b, field::LIFETIME);
    if remove != (lifetime == 0) || lifetime > MAX_LIFETIME_SECS {
        return Err(NotifyDrop::BadLifetime);
    }
    let home = addr(b, field::HOME);
    let coa = addr(b, field::COA);
    if !usable(&home) || !usable(&coa) || home == coa {
        return Err(NotifyDrop::BadAddress);
    }
    Ok(Notification {
        home,
        coa,
        lifetime,
        remove,
        sequence: be64(b, field::SEQUENCE),
        timestamp_ms,
    })
}

/// Encodes and signs `n` (every octet written; nothing is validated, so
/// tests can build notifications that [`verify`] refuses).
pub fn encode(n: &Notification, key: &NotifyKey) -> [u8; NOTIFY_LEN] {
    let mut b = [0u8; NOTIFY_LEN];
    b[field::MAGIC].copy_from_slice(&MAGIC);
    b[field::VERSION] = VERSION;
    b[field::FLAGS] = if n.remove { FLAG_REMOVE } else { 0 };
    b[field::TIMESTAMP].copy_from_slice(&n.timestamp_ms.to_be_bytes());
    b[field::SEQUENCE].copy_from_slice(&n.sequence.to_be_bytes());
    b[field::LIFETIME].copy_from_slice(&n.lifetime.to_be_bytes());
    b[field::HOME].copy_from_slice(&n.home.octets());
    b[field::COA].copy_from_slice(&n.coa.octets());
    let tag = key.tag(&b[..field::MAC.start]);
    b[field::MAC].copy_from_slice(&tag);
    b
}

/// The last accepted sequence per home address, on the core that owns the
/// home address's shard (one guard per core, never shared).
///
/// A fixed-capacity [`Table`] keyed by home address; entries live for twice
/// the timestamp skew, after which the timestamp check alone rejects every
/// replay of what they recorded. A full guard refuses new home addresses
/// (`notify_guard_full`) rather than forget one still inside its window.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: Table<Ipv6Addr, u64>,
    lifetime_secs: u32,
}

impl ReplayGuard {
    /// A guard for at least `capacity` home addresses notified within one
    /// window, for a timestamp skew of `max_skew_ms`. All memory is
    /// allocated here.
    pub fn new(capacity: usize, max_skew_ms: u64) -> Result<Self, NotifyError> {
        if max_skew_ms > MAX_SKEW_MS {
            return Err(NotifyError::SkewTooLarge {
                skew_ms: max_skew_ms,
            });
        }
        // ceil(2 * skew / 1000) + 1: the extra second covers the coarse
        // clock's rounding. At most 172 801, far below the table's 2^31.
        let lifetime_secs = u32::try_from((2 * max_skew_ms).div_ceil(1000) + 1).map_err(|_| {
            NotifyError::SkewTooLarge {
                skew_ms: max_skew_ms,
            }
        })?;
        Ok(ReplayGuard {
            seen: Table::with_capacity(capacity)?,
            lifetime_secs,
        })
    }

    /// Accepts `sequence` for `home` if it is above the last one accepted
    /// within the entry lifetime, and records it. `hash` is the caller's
    /// keyed hash of the home address (the one that picked the owner core);
    /// `now_secs` is the core's coarse clock in seconds, which must advance
    /// with the clock that gave [`verify`] its `now_ms`. Call it only with a
    /// notification [`verify`] accepted.
    pub fn check_and_record(
        &mut self,
        hash: u64,
        home: Ipv6Addr,
        sequence: u64,
        now_secs: u32,
    ) -> Result<(), NotifyDrop> {
        if let Some(last) = self.seen.get(hash, &home, now_secs) {
            if sequence <= last.value() {
                return Err(NotifyDrop::Replayed);
            }
        }
        self.seen
            .insert(hash, home, sequence, self.lifetime_secs, now_secs)
            .map(|_| ())
            .map_err(|_| NotifyDrop::GuardFull)
    }

    /// Removes expired entries, examining at most `budget` slots.
    pub fn expire(&mut self, now_secs: u32, budget: usize) -> usize {
        self.seen.expire(now_secs, budget, |_| {})
    }

    /// Entries held (live plus expired, not yet swept).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Home addresses the guard can hold at once.
    pub fn capacity(&self) -> usize {
        self.seen.capacity()
    }

    /// Seconds an entry lives after its last accepted notification.
    pub fn entry_lifetime_secs(&self) -> u32 {
        self.lifetime_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const NOW: u64 = 1_763_776_200_000; // 2025-11-22T01:50:00Z
    const SKEW: u64 = 30_000;

    fn key() -> NotifyKey {
        NotifyKey::from_hex(KEY_HEX).unwrap()
    }

    fn home() -> Ipv6Addr {
        "2001:db8:1::10".parse().unwrap()
    }

    fn coa() -> Ipv6Addr {
        "2001:db8:99::2".parse().unwrap()
    }

    fn note() -> Notification {
        Notification {
            home: home(),
            coa: coa(),
            lifetime: 600,
            remove: false,
            sequence: 42,
            timestamp_ms: NOW,
        }
    }

    /// Every field at the offset the diagram gives; the MAC recomputed
    /// directly with the crate.
    #[test]
    fn layout_is_as_documented() {
        let b = encode(&note(), &key());
        assert_eq!(&b[0..4], b"RLBN");
        assert_eq!(b[4], 1);
        assert_eq!(b[5], 0);
        assert_eq!(&b[6..8], &[0, 0]);
        assert_eq!(&b[8..16], &NOW.to_be_bytes());
        assert_eq!(&b[16..24], &[0, 0, 0, 0, 0, 0, 0, 42]);
        assert_eq!(&b[24..28], &[0, 0, 0x02, 0x58]);
        assert_eq!(&b[28..32], &[0; 4]);
        assert_eq!(&b[32..48], &home().octets());
        assert_eq!(&b[48..64], &coa().octets());
        let mut m = HmacSha256::new_from_slice(&(0u8..32).collect::<Vec<_>>()).unwrap();
        m.update(&b[..64]);
        assert_eq!(&b[64..80], &m.finalize().into_bytes()[..16]);
    }

    /// The example in the README, as `ha_notify.py` printed it.
    const FIXTURE: &str = "524c424e010000000000019aa940fd40000000000000002a0000025800000000\
                           20010db8000100000000000000000010\
                           20010db8009900000000000000000002\
                           245b36eddf93789cb6b7f1f037c0c384";

    #[test]
    fn documented_example() {
        assert_eq!(hex(&encode(&note(), &key())), FIXTURE);
        assert_eq!(verify(&unhex(FIXTURE), &key(), NOW, SKEW), Ok(note()));
    }

    /// RFC 4231 test case 2 ("Jefe") is too short a key for us; case 1's
    /// 20-octet key checks the crate and the truncation.
    #[test]
    fn hmac_matches_rfc4231_case1() {
        let k = NotifyKey::new(&[0x0b; 20]).unwrap();
        let t = k.tag(b"Hi There");
        assert_eq!(
            t,
            [
                0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b,
                0xf1, 0x2b
            ]
        );
    }

    #[test]
    fn good_datagram_verifies() {
        let b = encode(&note(), &key());
        assert_eq!(verify(&b, &key(), NOW, SKEW), Ok(note()));
        let u = note().alias_update();
        assert_eq!((u.coa, u.home, u.lifetime), (coa(), home(), 600));
    }

    #[test]
    fn remove_flag() {
        let n = Notification {
            remove: true,
            lifetime: 0,
            ..note()
        };
        let b = encode(&n, &key());
        assert_eq!(b[5], FLAG_REMOVE);
        let got = verify(&b, &key(), NOW, SKEW).unwrap();
        assert!(got.remove);
        assert_eq!(got.alias_update().lifetime, 0);
        // Remove with a lifetime, or lifetime 0 without remove: refused.
        let bad = encode(
            &Notification {
                remove: true,
                ..note()
            },
            &key(),
        );
        assert_eq!(
            verify(&bad, &key(), NOW, SKEW),
            Err(NotifyDrop::BadLifetime)
        );
        let bad = encode(
            &Notification {
                lifetime: 0,
                ..note()
            },
            &key(),
        );
        assert_eq!(
            verify(&bad, &key(), NOW, SKEW),
            Err(NotifyDrop::BadLifetime)
        );
        let ok = encode(
            &Notification {
                lifetime: MAX_LIFETIME_SECS,
                ..note()
            },
            &key(),
        );
        assert!(verify(&ok, &key(), NOW, SKEW).is_ok());
        let bad = encode(
            &Notification {
                lifetime: MAX_LIFETIME_SECS + 1,
                ..note()
            },
            &key(),
        );
        assert_eq!(
            verify(&bad, &key(), NOW, SKEW),
            Err(NotifyDrop::BadLifetime)
        );
    }

    #[test]
    fn bad_addresses() {
        for (h, c) in [
            (home(), home()),
            (Ipv6Addr::UNSPECIFIED, coa()),
            (home(), Ipv6Addr::UNSPECIFIED),
            (Ipv6Addr::LOCALHOST, coa()),
            (home(), "ff02::1".parse().unwrap()),
        ] {
            let b = encode(
                &Notification {
                    home: h,
                    coa: c,
                    ..note()
                },
                &key(),
            );
            assert_eq!(
                verify(&b, &key(), NOW, SKEW),
                Err(NotifyDrop::BadAddress),
                "{h} {c}"
            );
        }
    }

    /// Which reason a flip of `bit` in octet `i` must give.
    fn expected_for_flip(i: usize, bit: u8) -> NotifyDrop {
        match i {
            0..=3 => NotifyDrop::BadMagic,
            4 => NotifyDrop::BadVersion,
            5 if bit != FLAG_REMOVE => NotifyDrop::BadFlags,
            6 | 7 | 28..=31 => NotifyDrop::BadReserved,
            _ => NotifyDrop::BadMac,
        }
    }

    #[test]
    fn every_single_bit_flip_is_rejected_with_its_reason() {
        for n in [
            note(),
            Notification {
                remove: true,
                lifetime: 0,
                ..note()
            },
        ] {
            let good = encode(&n, &key());
            for i in 0..NOTIFY_LEN {
                for s in 0..8 {
                    let bit = 1u8 << s;
                    let mut b = good;
                    b[i] ^= bit;
                    assert_eq!(
                        verify(&b, &key(), NOW, SKEW),
                        Err(expected_for_flip(i, bit)),
                        "octet {i} bit {bit:#04x}"
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_key_is_bad_mac() {
        let b = encode(&note(), &key());
        let other = NotifyKey::from_hex(&KEY_HEX.replace('0', "f")).unwrap();
        assert_eq!(verify(&b, &other, NOW, SKEW), Err(NotifyDrop::BadMac));
        // Same prefix, one more octet: a different key.
        let longer = NotifyKey::from_hex(&format!("{KEY_HEX}01")).unwrap();
        assert_eq!(verify(&b, &longer, NOW, SKEW), Err(NotifyDrop::BadMac));
        // HMAC pads keys with zeros to the block size (RFC 2104 §2), so
        // trailing zero octets make no new key; harmless for random keys.
        let padded = NotifyKey::from_hex(&format!("{KEY_HEX}00")).unwrap();
        assert!(verify(&b, &padded, NOW, SKEW).is_ok());
    }

    #[test]
    fn lengths_other_than_80_are_refused() {
        let b = encode(&note(), &key());
        for n in 0..NOTIFY_LEN {
            assert_eq!(
                verify(&b[..n], &key(), NOW, SKEW),
                Err(NotifyDrop::BadLength)
            );
        }
        let mut long = [0u8; NOTIFY_LEN + 16];
        long[..NOTIFY_LEN].copy_from_slice(&b);
        for n in NOTIFY_LEN + 1..=long.len() {
            assert_eq!(
                verify(&long[..n], &key(), NOW, SKEW),
                Err(NotifyDrop::BadLength)
            );
        }
    }

    #[test]
    fn timestamp_window() {
        let at = |ts: u64| {
            encode(
                &Notification {
                    timestamp_ms: ts,
                    ..note()
                },
                &key(),
            )
        };
        assert!(verify(&at(NOW - SKEW), &key(), NOW, SKEW).is_ok());
        assert!(verify(&at(NOW + SKEW), &key(), NOW, SKEW).is_ok());
        assert_eq!(
            verify(&at(NOW - SKEW - 1), &key(), NOW, SKEW),
            Err(NotifyDrop::Stale)
        );
        assert_eq!(
            verify(&at(NOW + SKEW + 1), &key(), NOW, SKEW),
            Err(NotifyDrop::Future)
        );
        assert_eq!(verify(&at(0), &key(), NOW, SKEW), Err(NotifyDrop::Stale));
        assert_eq!(
            verify(&at(u64::MAX), &key(), NOW, SKEW),
            Err(NotifyDrop::Future)
        );
        // Near the ends of the clock: no overflow.
        assert!(verify(&at(u64::MAX), &key(), u64::MAX, 0).is_ok());
        assert!(verify(&at(0), &key(), 0, u64::MAX).is_ok());
    }

    #[test]
    fn replayed_and_out_of_order_sequences() {
        let mut g = ReplayGuard::new(16, SKEW).unwrap();
        assert_eq!(g.entry_lifetime_secs(), 61);
        let (h, t) = (0x1234_5678_9abc_def0, 1000);
        assert_eq!(g.check_and_record(h, home(), 10, t), Ok(()));
        assert_eq!(
            g.check_and_record(h, home(), 10, t),
            Err(NotifyDrop::Replayed)
        );
        assert_eq!(
            g.check_and_record(h, home(), 9, t + 1),
            Err(NotifyDrop::Replayed)
        );
        assert_eq!(g.check_and_record(h, home(), 11, t + 1), Ok(()));
        assert_eq!(
            g.check_and_record(h, home(), 10, t + 2),
            Err(NotifyDrop::Replayed)
        );
        // Another home address has its own sequence.
        let other: Ipv6Addr = "2001:db8:1::11".parse().unwrap();
        assert_eq!(g.check_and_record(h ^ 1, other, 1, t + 2), Ok(()));
        // Refreshed by the last acceptance (t + 1), so still held at t + 61 …
        assert_eq!(
            g.check_and_record(h, home(), 11, t + 61),
            Err(NotifyDrop::Replayed)
        );
        // … and forgotten after; by then verify() calls the datagram stale.
        assert_eq!(g.check_and_record(h, home(), 11, t + 62), Ok(()));
        assert!(g.expire(t + 200, usize::MAX) >= 2);
        assert!(g.is_empty());
    }

    /// The window argument end to end: a captured datagram replayed after
    /// its guard entry expired is stale.
    #[test]
    fn replay_after_guard_expiry_is_stale() {
        let mut g = ReplayGuard::new(16, SKEW).unwrap();
        // Sent at the far edge of the future window.
        let b = encode(
            &Notification {
                timestamp_ms: NOW + SKEW,
                ..note()
            },
            &key(),
        );
        let secs = |ms: u64| u32::try_from(ms / 1000).unwrap();
        let n = verify(&b, &key(), NOW, SKEW).unwrap();
        assert_eq!(g.check_and_record(7, n.home, n.sequence, secs(NOW)), Ok(()));
        // The last second the entry lives: verify still accepts the
        // datagram, the guard catches it.
        let before = NOW + u64::from(g.entry_lifetime_secs() - 1) * 1000;
        assert!(verify(&b, &key(), before, SKEW).is_ok());
        assert_eq!(
            g.check_and_record(7, n.home, n.sequence, secs(before)),
            Err(NotifyDrop::Replayed)
        );
        // Once it has expired, verify refuses the datagram.
        let later = NOW + u64::from(g.entry_lifetime_secs()) * 1000;
        assert_eq!(verify(&b, &key(), later, SKEW), Err(NotifyDrop::Stale));
    }

    #[test]
    fn full_guard_refuses_new_homes() {
        let mut g = ReplayGuard::new(7, SKEW).unwrap();
        let cap = g.capacity();
        for i in 0..cap {
            let a = Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0100u128 + i as u128);
            assert_eq!(g.check_and_record(i as u64 + 1, a, 1, 5), Ok(()));
        }
        let a = Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0001u128);
        assert_eq!(g.check_and_record(999, a, 1, 5), Err(NotifyDrop::GuardFull));
        // Known homes still advance.
        let first = Ipv6Addr::from(0x2001_0db8_0000_0000_0000_0000_0000_0100u128);
        assert_eq!(g.check_and_record(1, first, 2, 6), Ok(()));
        // After the window, room again.
        g.expire(5 + 62, usize::MAX);
        assert_eq!(g.check_and_record(999, a, 1, 5 + 62), Ok(()));
    }

    #[test]
    fn guard_rejects_huge_skew() {
        assert_eq!(
            ReplayGuard::new(8, MAX_SKEW_MS + 1).unwrap_err(),
            NotifyError::SkewTooLarge {
                skew_ms: MAX_SKEW_MS + 1
            }
        );
        assert!(ReplayGuard::new(8, MAX_SKEW_MS).is_ok());
        assert_eq!(ReplayGuard::new(8, 0).unwrap().entry_lifetime_secs(), 1);
    }

    #[test]
    fn keys() {
        assert_eq!(key().len(), 32);
        assert!(NotifyKey::from_hex(&"ab".repeat(16)).is_ok());
        assert!(NotifyKey::from_hex(&"AB".repeat(64)).is_ok());
        assert!(NotifyKey::from_hex(&format!("  {KEY_HEX}\n")).is_ok());
        assert_eq!(
            NotifyKey::from_hex(&"ab".repeat(15)).unwrap_err(),
            NotifyError::KeyLength { digits: 30 }
        );
        assert_eq!(
            NotifyKey::from_hex(&"ab".repeat(65)).unwrap_err(),
            NotifyError::KeyLength { digits: 130 }
        );
        assert_eq!(
            NotifyKey::from_hex(&format!("{KEY_HEX}0")).unwrap_err(),
            NotifyError::KeyLength { digits: 65 }
        );
        assert_eq!(
            NotifyKey::from_hex(&format!("{}g", &KEY_HEX[..63])).unwrap_err(),
            NotifyError::KeyDigit { position: 63 }
        );
        assert!(NotifyKey::from_hex("").is_err());
        assert!(NotifyKey::new(&[1; 15]).is_err());
        assert!(NotifyKey::new(&[1; 65]).is_err());
        assert!("00112233445566778899aabbccddeeff"
            .parse::<NotifyKey>()
            .is_ok());
    }

    #[test]
    fn debug_hides_the_key() {
        let s = format!("{:?}", key());
        assert_eq!(s, "NotifyKey(<32 octets, redacted>)");
        let k = NotifyKey::new(&[0xab; 32]).unwrap();
        let s = format!("{k:?}");
        assert!(!s.contains("ab") && !s.contains("171"), "{s}");
    }

    #[test]
    fn drop_names() {
        assert_eq!(NotifyDrop::COUNT, NotifyDrop::ALL.len());
        for (i, d) in NotifyDrop::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i);
            let n = d.name();
            assert!(n.starts_with("notify_"), "{n}");
            assert!(
                n.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
                "{n}"
            );
        }
        let mut c = NotifyCounters::default();
        c.count(&verify(&[], &key(), NOW, SKEW));
        c.count(&verify(&encode(&note(), &key()), &key(), NOW, SKEW));
        assert_eq!(c.accepted, 1);
        assert_eq!(c.drops[NotifyDrop::BadLength as usize], 1);
    }

    // Interop with scripts/ha_notify.py, an encoder written from the format
    // alone (Python's hmac/hashlib/struct).

    const PYTHON: &str = "/usr/bin/python3";

    fn script(args: &[&str]) -> std::process::Output {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ha_notify.py");
        std::process::Command::new(PYTHON)
            .arg(path)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {PYTHON} {path}: {e}"))
    }

    fn script_ok(args: &[&str]) -> String {
        let out = script(args);
        assert!(
            out.status.success(),
            "ha_notify.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn cases() -> Vec<Notification> {
        vec![
            note(),
            Notification {
                remove: true,
                lifetime: 0,
                ..note()
            },
            Notification {
                home: "2001:db8:ffff::1".parse().unwrap(),
                coa: "fd00::abcd:1".parse().unwrap(),
                lifetime: MAX_LIFETIME_SECS,
                remove: false,
                sequence: u64::MAX - 1,
                timestamp_ms: NOW + 1,
            },
        ]
    }

    fn script_args(n: &Notification) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--key".into(),
            KEY_HEX.into(),
            "--home".into(),
            n.home.to_string(),
            "--coa".into(),
            n.coa.to_string(),
            "--lifetime".into(),
            n.lifetime.to_string(),
            "--sequence".into(),
            n.sequence.to_string(),
            "--timestamp-ms".into(),
            n.timestamp_ms.to_string(),
        ];
        if n.remove {
            a.push("--remove".into());
        }
        a
    }

    #[test]
    fn script_datagrams_match_encode_and_verify() {
        for n in cases() {
            let args = script_args(&n);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = script_ok(&args);
            let line = out.trim();
            assert_eq!(line, hex(&encode(&n, &key())), "{n:?}");
            let b = unhex(line);
            assert_eq!(verify(&b, &key(), n.timestamp_ms, SKEW), Ok(n));
            // --forge gives a datagram we drop as forged.
            let mut forged = args.clone();
            forged.push("--forge");
            let b = unhex(script_ok(&forged).trim());
            assert_eq!(
                verify(&b, &key(), n.timestamp_ms, SKEW),
                Err(NotifyDrop::BadMac)
            );
        }
    }

    #[test]
    fn script_verifies_encode() {
        for n in cases() {
            let h = hex(&encode(&n, &key()));
            let out = script_ok(&["--key", KEY_HEX, "--verify", &h]);
            let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
            assert_eq!(v["home"], n.home.to_string());
            assert_eq!(v["coa"], n.coa.to_string());
            assert_eq!(v["lifetime"], n.lifetime);
            assert_eq!(v["remove"], n.remove);
            assert_eq!(v["sequence"], n.sequence);
            assert_eq!(v["timestamp_ms"], n.timestamp_ms);
            // A flipped MAC bit is refused by the script too.
            let mut b = encode(&n, &key());
            b[79] ^= 0x80;
            let out = script(&["--key", KEY_HEX, "--verify", &hex(&b)]);
            assert!(!out.status.success());
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "notify_bad_mac"
            );
        }
    }

    /// The pcap mode: IPv4 and IPv6 frames, parsed by roamlb's own parser,
    /// carry datagrams `verify` accepts, with sequences counting up.
    #[test]
    fn script_pcap_frames_verify() {
        let probe = std::process::Command::new(PYTHON)
            .args(["-c", "import scapy.all"])
            .output();
        if !probe.is_ok_and(|o| o.status.success()) {
            println!("skipped: {PYTHON} cannot import scapy, needed only for --pcap");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("notify.pcap");
        let pcap_s = pcap.to_str().unwrap();
        let base = [
            "--key",
            KEY_HEX,
            "--home",
            "2001:db8:1::10",
            "--coa",
            "2001:db8:99::2",
            "--sequence",
            "100",
            "--timestamp-ms",
            "1763776200000",
            "--pcap",
            pcap_s,
            "--dport",
            "9797",
        ];
        let mut v4 = base.to_vec();
        v4.extend(["--src", "192.0.2.1", "--dst", "192.0.2.2", "--count", "2"]);
        script_ok(&v4);
        let mut v6 = base.to_vec();
        v6.extend([
            "--src",
            "2001:db8::1",
            "--dst",
            "2001:db8::2",
            "--append",
            "--forge",
        ]);
        script_ok(&v6);

        let f = std::fs::File::open(&pcap).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(f).unwrap();
        let cfg = crate::packet::ParseConfig::new();
        let mut got = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            let frame = &p.data[..];
            let parsed = crate::packet::parse(frame, &cfg).unwrap();
            assert_eq!(parsed.protocol, crate::packet::IpProtocol::Udp);
            assert_eq!(parsed.dst_port, 9797);
            let payload = &frame[usize::from(parsed.l4_offset) + 8..usize::from(parsed.l3_end)];
            got.push((
                parsed.l3,
                verify(payload, &key(), NOW, SKEW).map(|n| n.sequence),
            ));
        }
        use crate::packet::L3Kind;
        assert_eq!(
            got,
            [
                (L3Kind::Ipv4, Ok(100)),
                (L3Kind::Ipv4, Ok(101)),
                (L3Kind::Ipv6, Err(NotifyDrop::BadMac)),
            ]
        );
    }

    fn arb_addr() -> impl Strategy<Value = Ipv6Addr> {
        // Global unicast, so `verify` accepts it.
        any::<u128>().prop_map(|x| Ipv6Addr::from((x >> 3) | (1u128 << 125)))
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                       now in any::<u64>(), skew in any::<u64>()) {
            let _ = verify(&bytes, &key(), now, skew);
        }

        /// 80 octets with a valid header, so the MAC and later checks run.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 72),
                                        now in any::<u64>(), skew in any::<u64>()) {
            let mut b = [0u8; NOTIFY_LEN];
            b[..4].copy_from_slice(b"RLBN");
            b[4] = 1;
            b[8..28].copy_from_slice(&body[..20]);
            b[32..80].copy_from_slice(&body[24..]);
            prop_assert_eq!(verify(&b, &key(), now, skew), Err(NotifyDrop::BadMac));
        }

        #[test]
        fn encode_then_verify_is_identity(home in arb_addr(), coa in arb_addr(),
                                          lifetime in 1..=MAX_LIFETIME_SECS, remove in any::<bool>(),
                                          sequence in any::<u64>(), ts in any::<u64>()) {
            prop_assume!(home != coa);
            let n = Notification { home, coa, lifetime: if remove { 0 } else { lifetime },
                                   remove, sequence, timestamp_ms: ts };
            prop_assert_eq!(verify(&encode(&n, &key()), &key(), ts, 0), Ok(n));
        }
    }
}
