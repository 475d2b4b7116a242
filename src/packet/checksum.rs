//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are kept in a `u32` accumulator and folded at the end; data is summed
//! as big-endian 16-bit words with an odd trailing octet padded with zero
//! (RFC 1071 §4.1). Incremental updates use RFC 1624 eqn. 3,
//! `HC' = ~(~HC + ~m + m')`, which never produces the -0 (0x0000) ambiguity of
//! the older RFC 1141 formula. The pseudo-header helpers take the addresses the
//! caller passes; which address belongs in the pseudo-header (the home address
//! for a packet with a Home Address option, the final destination for one with
//! a Routing header) is decided by the parser, see
//! [`Parsed::pseudo_src_offset`](super::Parsed::pseudo_src_offset).

use super::IpProtocol;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Adds `data` as big-endian 16-bit words into a 32-bit accumulator.
#[inline]
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        // Fold early enough that the accumulator never overflows.
        if acc & 0x8000_0000 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

/// The ones'-complement sum of `data` folded to 16 bits, the same value as
/// `fold(sum(0, data))`, computed on 32-bit words in a 64-bit accumulator
/// (RFC 1071 §2(B): the sum does not depend on the word size, since
/// 2^16 ≡ 1 modulo 2^16 − 1). For headers checked per packet, e.g. IPv4's.
#[inline]
pub fn sum_folded(data: &[u8]) -> u16 {
    let mut words = data.chunks_exact(4);
    let mut acc: u64 = 0;
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    // At most 16383 words of a 65535-octet slice: no overflow.
    acc += u64::from(sum(0, words.remainder()));
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    fold(acc as u32)
}

/// Folds a 32-bit accumulator to 16 bits (end-around carry). Two steps
/// always suffice: the first leaves at most 0xffff + 0xffff = 0x1fffe, the
/// second at most 0xfffe + 1.
#[inline]
pub fn fold(acc: u32) -> u16 {
    let acc = (acc & 0xffff) + (acc >> 16);
    ((acc & 0xffff) + (acc >> 16)) as u16
}

/// Folds a 128-bit accumulator to 32 bits, end-around carry included.
#[inline(always)]
fn fold128(acc: u128) -> u32 {
    let (s, c) = (acc as u64).overflowing_add((acc >> 64) as u64);
    // With a carry out, `s` is below either addend: `s + 1` cannot overflow.
    let acc = s + u64::from(c);
    let (s, c) = (acc as u32).overflowing_add((acc >> 32) as u32);
    s + u32::from(c)
}

/// The checksum of `data`: the complement of its ones'-complement sum.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(0, data))
}

/// Sum of the IPv4 pseudo-header (RFC 9293 §3.1, RFC 768).
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, len: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc + u32::from(u8::from(proto)) + (len & 0xffff) + (len >> 16)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1). `src` is the home address
/// when the packet carries a Home Address option and `dst` the final
/// destination when it carries a Routing header.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: IpProtocol, len: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc + u32::from(u8::from(proto)) + (len & 0xffff) + (len >> 16)
}

/// RFC 1624 eqn. 3 for one 16-bit word: `old_check` covered `old`, return
/// the checksum covering `new` instead.
#[inline]
pub fn update16(old_check: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!old_check) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// [`update_bytes`] for addresses of `N` octets, `N` a multiple of 4 (an
/// IPv4 or IPv6 address): the same result, unrolled at compile time and
/// summed in the machine's byte order. The ones'-complement sum commutes
/// with swapping the octets of every word (RFC 1071 §2(B)), and so does
/// complementing, so summing little-endian words and swapping the folded
/// result once gives the big-endian answer without a swap per word.
#[inline(always)]
pub fn update_words<const N: usize>(old_check: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    const { assert!(N % 4 == 0 && N <= 64) };
    // 64-bit words where they fit (an IPv6 address is two), then a 32-bit
    // one; at most 17 terms of 64 bits, so the u128 cannot overflow.
    let mut acc = u128::from(!old_check.to_be());
    let mut i = 0;
    while i + 8 <= N {
        acc += u128::from(!u64::from_ne_bytes(octets(old, i)));
        acc += u128::from(u64::from_ne_bytes(octets(new, i)));
        i += 8;
    }
    if i < N {
        acc += u128::from(!u32::from_ne_bytes(octets(old, i)));
        acc += u128::from(u32::from_ne_bytes(octets(new, i)));
    }
    u16::from_be(!fold(fold128(acc)))
}

/// Octets `i..i + K` of `b` (the callers keep `i + K <= N`; unrolled with
/// constant `i`, the bounds checks fold away).
#[inline(always)]
fn octets<const N: usize, const K: usize>(b: &[u8; N], i: usize) -> [u8; K] {
    core::array::from_fn(|k| b[i + k])
}

/// RFC 1624 eqn. 3 over equal-length byte strings (addresses). `old` and
/// `new` must have the same even length; extra odd octets are ignored.
///
/// Summed on 32-bit words in a 64-bit accumulator, as [`sum_folded`] does:
/// the complement of a 32-bit word is the complements of its two 16-bit
/// halves side by side, and 2^16 ≡ 1 modulo 2^16 − 1, so the result is the
/// 16-bit word-by-word one (`update_bytes_matches_word_by_word`) in a
/// quarter of the instructions (an IPv6 address is four words, not eight).
#[inline]
pub fn update_bytes(old_check: u16, old: &[u8], new: &[u8]) -> u16 {
    let n = old.len().min(new.len()) & !1;
    let (old, new) = (&old[..n], &new[..n]);
    let mut acc = u64::from(!old_check);
    let (old4, new4) = (old.chunks_exact(4), new.chunks_exact(4));
    let (old_tail, new_tail) = (old4.remainder(), new4.remainder());
    for (o, w) in old4.zip(new4) {
        acc += u64::from(!u32::from_be_bytes([o[0], o[1], o[2], o[3]]));
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    if let ([o0, o1], [w0, w1]) = (old_tail, new_tail) {
        acc += u64::from(!u16::from_be_bytes([*o0, *o1]));
        acc += u64::from(u16::from_be_bytes([*w0, *w1]));
    }
    // At most 2^30 words of a slice: no overflow; fold to 32 bits, then 16.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    !fold(acc as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 numerical example: 0001 f203 f4f5 f6f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(0, &[0x12])), 0x1200);
        assert_eq!(fold(sum(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut d = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = checksum(&d);
        let old = [d[12], d[13], d[14], d[15]];
        let new = [192, 168, 255, 254];
        d[12..16].copy_from_slice(&new);
        assert_eq!(update_bytes(c, &old, &new), checksum(&d));
        let c2 = checksum(&d);
        let (o, n) = (u16::from_be_bytes([d[8], d[9]]), 0x3f06);
        d[8..10].copy_from_slice(&0x3f06u16.to_be_bytes());
        assert_eq!(update16(c2, o, n), checksum(&d));
    }

    #[test]
    fn sum_folded_matches_sum() {
        assert_eq!(
            sum_folded(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(sum_folded(&[]), 0);
        assert_eq!(sum_folded(&[0; 20]), 0);
        assert_eq!(sum_folded(&[0xff; 60]), 0xffff);
        // Every length (odd ones too), octets that carry often.
        let d: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(0x9e37_79b9) >> 24) as u8 | 0xc0)
            .collect();
        for n in 0..d.len() {
            assert_eq!(sum_folded(&d[..n]), fold(sum(0, &d[..n])), "{n}");
        }
    }

    /// RFC 1624 eqn. 3 on 16-bit words, one by one (the reference).
    fn update_word_by_word(old_check: u16, old: &[u8], new: &[u8]) -> u16 {
        let mut acc = u32::from(!old_check);
        for (o, n) in old.chunks_exact(2).zip(new.chunks_exact(2)) {
            acc += u32::from(!u16::from_be_bytes([o[0], o[1]]));
            acc += u32::from(u16::from_be_bytes([n[0], n[1]]));
        }
        !fold(acc)
    }

    proptest::proptest! {
        #[test]
        fn update_bytes_matches_word_by_word(
            check: u16,
            old in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
            new in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            proptest::prop_assert_eq!(
                update_bytes(check, &old, &new),
                update_word_by_word(check, &old, &new)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn update_words_matches_word_by_word(check: u16, old: [u8; 16], new: [u8; 16]) {
            proptest::prop_assert_eq!(
                update_words(check, &old, &new),
                update_word_by_word(check, &old, &new)
            );
            let (o4, n4): ([u8; 4], [u8; 4]) = (old[..4].try_into().unwrap(), new[..4].try_into().unwrap());
            proptest::prop_assert_eq!(
                update_words(check, &o4, &n4),
                update_word_by_word(check, &o4, &n4)
            );
        }
    }

    #[test]
    fn update_words_edge_values() {
        // All-zero and all-one words, where the two ones'-complement zeros
        // and the end-around carries of the 64-bit sum meet; 12 octets mix
        // a 64-bit and a 32-bit word.
        let values = [0x00u8, 0xff, 0x80, 0x01, 0xfe];
        for check in [0u16, 0xffff, 0x8000, 0x0001, 0xfffe] {
            for &a in &values {
                for &b in &values {
                    let (old, new) = ([a; 16], [b; 16]);
                    assert_eq!(
                        update_words(check, &old, &new),
                        update_word_by_word(check, &old, &new),
                        "{check:#x} {a:#x} {b:#x}"
                    );
                    let (o12, n12) = ([a; 12], [b; 12]);
                    assert_eq!(
                        update_words(check, &o12, &n12),
                        update_word_by_word(check, &o12, &n12)
                    );
                    let (o4, n4) = ([a; 4], [b; 4]);
                    assert_eq!(
                        update_words(check, &o4, &n4),
                        update_word_by_word(check, &o4, &n4)
                    );
                }
            }
        }
    }

    #[test]
    fn update_bytes_edge_words() {
        // All-zero and all-ones words, 2-, 4-, 6- and 16-octet strings.
        for n in [2usize, 4, 6, 16] {
            for (o, w) in [(0x00u8, 0xffu8), (0xff, 0x00), (0xff, 0xff), (0, 0)] {
                for check in [0u16, 0xffff, 0x1234] {
                    let (old, new) = (vec![o; n], vec![w; n]);
                    assert_eq!(
                        update_bytes(check, &old, &new),
                        update_word_by_word(check, &old, &new),
                        "{n} {o:#x} {w:#x} {check:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn update_of_all_ones_word() {
        // RFC 1624 §4 example: the eqn. 3 result is never -0 where +0 is right.
        assert_eq!(
            update16(0xdd2f, 0x5555, 0x3285),
            !fold(u32::from(!0xdd2fu16) + u32::from(!0x5555u16) + 0x3285)
        );
    }
}
