//! AES-128 encryption of one 16-octet block: the keyed primitive under the
//! identity hash ([`crate::identity::IdentityHasher`]).
//!
//! The packet path hashes every packet's identity, so the primitive has to
//! be both a sound keyed function (a client who can choose SPIs, home
//! addresses or interface IDs must not be able to aim them at one bucket)
//! and a few nanoseconds. Full 10-round AES-128 is the best-studied
//! pseudorandom permutation there is, and with AES-NI one block costs 10
//! `AESENC`-class instructions, which run on a vector port beside the
//! parser's integer work; measured here at about 6 ns per independent
//! block against about 12 ns for SipHash-1-3 of the same identity.
//!
//! Two implementations, one output:
//! - on x86-64 CPUs with AES-NI (detected once, when the key is set), the
//!   round keys are expanded with `AESKEYGENASSIST` and the block is
//!   encrypted in registers;
//! - everywhere else, the RustCrypto `aes` crate (its constant-time bitsliced
//!   software implementation, or the CPU's AES instructions where that crate
//!   detects them).
//!
//! Both are AES-128 as FIPS-197 defines it, so every cluster member computes
//! the same value for the same key whatever its CPU. The unit tests check
//! the AES-NI path against the FIPS-197 example vector and against the
//! `aes` crate for many keys and blocks.
//!
//! Blocks are `u128` values whose little-endian octets are the block's
//! octets in order (octet 0 of the block is the least significant octet).
//!
//! A single block is a chain of ten dependent rounds, so its cost is the
//! `AESENC` latency times ten, while the AES unit could start a new round
//! every cycle or two. [`Aes128Block::encrypt_lanes`] therefore encrypts
//! [`LANES`] independent blocks with their rounds interleaved: the worker
//! hashes a whole RX burst that way, eight identities at a time, so the
//! eight chains overlap instead of running one after another.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use core::fmt;

/// How many blocks [`Aes128Block::encrypt_lanes`] encrypts side by side:
/// enough independent chains to cover the `AESENC` latency on current x86
/// cores (4 cycles on Zen, 4 on Skylake, at 1–2 per cycle), and few enough
/// that all of them and the round key stay in the 16 vector registers.
pub const LANES: usize = 8;

/// An AES-128 key schedule, ready to encrypt single blocks.
#[derive(Clone)]
pub struct Aes128Block {
    /// The AES-NI round keys; `Some` only when the CPU has AES-NI.
    #[cfg(target_arch = "x86_64")]
    ni: Option<ni::RoundKeys>,
    /// The portable implementation, used when `ni` is `None`.
    portable: aes::Aes128,
}

impl fmt::Debug for Aes128Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key or its schedule.
        f.write_str("Aes128Block { .. }")
    }
}

impl Aes128Block {
    /// The key schedule of `key`, using AES-NI when this CPU has it.
    pub fn new(key: [u8; 16]) -> Self {
        let portable = aes::Aes128::new(&GenericArray::from(key));
        #[cfg(target_arch = "x86_64")]
        {
            let ni = if std::arch::is_x86_feature_detected!("aes") {
                // SAFETY: the CPU running this reports AES-NI (checked just
                // above) and SSE2 is part of the x86-64 baseline, which are
                // the features `expand` is compiled for.
                Some(unsafe { ni::expand(key) })
            } else {
                None
            };
            Aes128Block { ni, portable }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Aes128Block { portable }
    }

    /// The key schedule of `key` that never takes the AES-NI path (tests
    /// compare the two).
    pub fn portable(key: [u8; 16]) -> Self {
        Aes128Block {
            #[cfg(target_arch = "x86_64")]
            ni: None,
            portable: aes::Aes128::new(&GenericArray::from(key)),
        }
    }

    /// True when blocks are encrypted with AES-NI in registers.
    pub fn uses_aes_ni(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.ni.is_some()
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// AES-128 encryption of `block` (octets in little-endian order).
    #[inline]
    pub fn encrypt(&self, block: u128) -> u128 {
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = &self.ni {
            // SAFETY: `ni` is `Some` only when `new` found AES-NI on this
            // CPU (SSE2 is baseline on x86-64), the features `encrypt` is
            // compiled for.
            return unsafe { ni::encrypt(keys, block) };
        }
        let mut b = GenericArray::from(block.to_le_bytes());
        self.portable.encrypt_block(&mut b);
        u128::from_le_bytes(b.into())
    }

    /// AES-128 encryption of each of `blocks` in place, the same as
    /// [`Self::encrypt`] of each but with the rounds of all [`LANES`]
    /// blocks interleaved, so the CPU overlaps them.
    #[inline]
    pub fn encrypt_lanes(&self, blocks: &mut [u128; LANES]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(keys) = &self.ni {
            // SAFETY: as in `encrypt`: `ni` is `Some` only on a CPU with
            // AES-NI, and SSE2 is baseline on x86-64.
            unsafe { ni::encrypt_lanes(keys, blocks) };
            return;
        }
        for block in blocks.iter_mut() {
            let mut b = GenericArray::from(block.to_le_bytes());
            self.portable.encrypt_block(&mut b);
            *block = u128::from_le_bytes(b.into());
        }
    }
}

/// AES-NI implementation (Intel's "Advanced Encryption Standard New
/// Instructions Set" white paper, §4: key expansion with `AESKEYGENASSIST`,
/// then one `AESENC` per round and `AESENCLAST` for the tenth).
#[cfg(target_arch = "x86_64")]
mod ni {
    use core::arch::x86_64::{
        __m128i, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aeskeygenassist_si128,
        _mm_cvtsi128_si64, _mm_set_epi64x, _mm_shuffle_epi32, _mm_slli_si128, _mm_unpackhi_epi64,
        _mm_xor_si128,
    };

    /// The 11 round keys of AES-128.
    #[derive(Clone, Copy)]
    pub(super) struct RoundKeys([__m128i; 11]);

    /// `u128` (little-endian octets) into a vector register.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn load(x: u128) -> __m128i {
        _mm_set_epi64x((x >> 64) as i64, x as i64)
    }

    /// One step of the AES-128 key expansion (FIPS-197 §5.2): the previous
    /// round key with each word XORed into the next, plus `assist`'s
    /// RotWord(SubWord(w3)) ^ Rcon broadcast from its top word.
    #[inline]
    #[target_feature(enable = "aes")]
    fn expand_step(prev: __m128i, assist: __m128i) -> __m128i {
        let t = _mm_shuffle_epi32::<0xff>(assist);
        let mut k = prev;
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        k = _mm_xor_si128(k, _mm_slli_si128::<4>(k));
        _mm_xor_si128(k, t)
    }

    /// The round keys of `key`.
    #[target_feature(enable = "aes")]
    pub(super) fn expand(key: [u8; 16]) -> RoundKeys {
        let mut rk = [load(u128::from_le_bytes(key)); 11];
        // The round constant must be an immediate, hence the unrolling.
        macro_rules! step {
            ($i:literal, $rcon:literal) => {
                rk[$i] = expand_step(rk[$i - 1], _mm_aeskeygenassist_si128::<$rcon>(rk[$i - 1]));
            };
        }
        step!(1, 0x01);
        step!(2, 0x02);
        step!(3, 0x04);
        step!(4, 0x08);
        step!(5, 0x10);
        step!(6, 0x20);
        step!(7, 0x40);
        step!(8, 0x80);
        step!(9, 0x1b);
        step!(10, 0x36);
        RoundKeys(rk)
    }

    /// AES-128 encryption of one block.
    #[target_feature(enable = "aes")]
    pub(super) fn encrypt(keys: &RoundKeys, block: u128) -> u128 {
        let rk = &keys.0;
        let mut b = _mm_xor_si128(load(block), rk[0]);
        for k in &rk[1..10] {
            b = _mm_aesenc_si128(b, *k);
        }
        store(_mm_aesenclast_si128(b, rk[10]))
    }

    /// AES-128 encryption of `LANES` blocks, round by round across all of
    /// them: each round's `AESENC`s are independent, so they issue back
    /// to back instead of waiting on each other.
    #[target_feature(enable = "aes")]
    pub(super) fn encrypt_lanes(keys: &RoundKeys, blocks: &mut [u128; super::LANES]) {
        let rk = &keys.0;
        let mut b = [rk[0]; super::LANES];
        for (v, x) in b.iter_mut().zip(blocks.iter()) {
            *v = _mm_xor_si128(load(*x), rk[0]);
        }
        for k in &rk[1..10] {
            for v in b.iter_mut() {
                *v = _mm_aesenc_si128(*v, *k);
            }
        }
        for (v, x) in b.iter().zip(blocks.iter_mut()) {
            *x = store(_mm_aesenclast_si128(*v, rk[10]));
        }
    }

    /// A vector register back into a `u128` (little-endian octets).
    #[inline]
    #[target_feature(enable = "sse2")]
    fn store(b: __m128i) -> u128 {
        let lo = _mm_cvtsi128_si64(b) as u64;
        let hi = _mm_cvtsi128_si64(_mm_unpackhi_epi64(b, b)) as u64;
        (u128::from(hi) << 64) | u128::from(lo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(s: &str) -> u128 {
        let mut b = [0u8; 16];
        for (i, o) in b.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        u128::from_le_bytes(b)
    }

    /// FIPS-197 Appendix C.1 (AES-128) and Appendix B.
    #[test]
    fn fips_197_example_vectors() {
        let cases = [
            (
                "000102030405060708090a0b0c0d0e0f",
                "00112233445566778899aabbccddeeff",
                "69c4e0d86a7b0430d8cdb78070b4c55a",
            ),
            (
                "2b7e151628aed2a6abf7158809cf4f3c",
                "3243f6a8885a308d313198a2e0370734",
                "3925841d02dc09fbdc118597196a0b32",
            ),
        ];
        for (key, plain, cipher) in cases {
            let key = hex16(key).to_le_bytes();
            for aes in [Aes128Block::new(key), Aes128Block::portable(key)] {
                assert_eq!(aes.encrypt(hex16(plain)), hex16(cipher), "{aes:?}");
            }
        }
    }

    #[test]
    fn aes_ni_path_matches_the_portable_one() {
        let mut x = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835u128;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..64 {
            let key = next().to_le_bytes();
            let (fast, portable) = (Aes128Block::new(key), Aes128Block::portable(key));
            assert!(!portable.uses_aes_ni());
            for block in [0, u128::MAX, next(), next(), next(), next()] {
                assert_eq!(fast.encrypt(block), portable.encrypt(block));
            }
            let blocks: [u128; LANES] = core::array::from_fn(|_| next());
            let (mut side_by_side, mut portable_lanes) = (blocks, blocks);
            fast.encrypt_lanes(&mut side_by_side);
            portable.encrypt_lanes(&mut portable_lanes);
            for (i, block) in blocks.iter().enumerate() {
                assert_eq!(side_by_side[i], portable.encrypt(*block), "lane {i}");
                assert_eq!(portable_lanes[i], portable.encrypt(*block), "lane {i}");
            }
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            Aes128Block::new([0; 16]).uses_aes_ni(),
            std::arch::is_x86_feature_detected!("aes")
        );
        assert_eq!(
            format!("{:?}", Aes128Block::new([1; 16])),
            "Aes128Block { .. }"
        );
    }
}
