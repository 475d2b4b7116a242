//! Maglev consistent hashing with weights (Eisenbud et al., NSDI 2016, §3.4).
//!
//! Every backend gets a permutation of the `M` table positions from two hashes
//! of its **stable name** (its address bytes, never its index), `offset =
//! h1 % M` and `skip = h2 % (M - 1) + 1`; `M` is prime, so every skip walks
//! all positions. Backends take turns claiming their next free preferred
//! position until the table is full (Pseudocode 1 of the paper). The table is
//! built off the packet path; a lookup is one multiply-shift reduction of the
//! caller's hash and one load from a `u16` array.
//!
//! **Size.** `M` is the smallest prime at least `max(100 × backends,
//! min_size)`, computed by trial division at build time (no list to keep up to
//! date). The paper's bound: with `M ≥ 100 N` each backend's share deviates by
//! at most about 1 %; the default `min_size` of 65 537 (the size Katran uses)
//! keeps small backend sets as even and keeps a 128 KiB table per set.
//!
//! **Weights: credit rounds.** Each round every backend adds its weight to a
//! credit and takes one turn per `max_weight` of credit. The backend with the
//! largest weight takes a turn every round; one of weight `w` takes
//! `w / max_weight` turns per round on average, so shares follow weights
//! exactly in expectation, and no backend takes more than one turn per round
//! (which Katran's "w turns per round" does, making a heavy backend claim
//! runs of its own permutation and disrupting more keys on change).
//! Weight 0 backends take no positions.
//!
//! **Determinism.** Backends are ordered by name before population, so the
//! same set gives the same table whatever order it was listed in; the table
//! stores the caller's index of each backend.
#![forbid(unsafe_code)]

use core::hash::Hasher;
use siphasher::sip::SipHasher13;

/// Errors building a Maglev table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// Two backends share one name (address); their permutations would be equal.
    #[error("backend {index} has the same address as backend {other}")]
    DuplicateName {
        /// Index of the second occurrence.
        index: usize,
        /// Index of the first occurrence.
        other: usize,
    },
    /// The table stores `u16` indices.
    #[error("{0} backends; at most 65535 are supported")]
    TooManyBackends(usize),
    /// The table would be unreasonably large.
    #[error("Maglev table size {0} is too large (at most 2^24)")]
    TableTooLarge(usize),
}

/// Default minimum table size (a prime; the size Katran uses).
pub const DEFAULT_MIN_SIZE: usize = 65_537;
/// Marker of an empty table (no backend with weight > 0).
const NONE: u16 = u16::MAX;

const K1: (u64, u64) = (0x6d61_676c_6576_2d31, 0x726f_616d_6c62_2d61);
const K2: (u64, u64) = (0x6d61_676c_6576_2d32, 0x726f_616d_6c62_2d62);

fn sip(key: (u64, u64), name: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(key.0, key.1);
    h.write(name);
    h.finish()
}

/// True if `n` is prime (trial division; build-time only).
pub fn is_prime(n: usize) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3usize;
    while d.saturating_mul(d) <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

/// Smallest prime `>= n`.
pub fn next_prime(n: usize) -> usize {
    let mut p = n.max(2);
    while !is_prime(p) {
        p += 1;
    }
    p
}

/// A built Maglev lookup table.
#[derive(Clone, PartialEq, Eq)]
pub struct Maglev {
    table: Box<[u16]>,
}

impl core::fmt::Debug for Maglev {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Maglev")
            .field("size", &self.table.len())
            .finish()
    }
}

impl Maglev {
    /// Builds the table for `backends`, each `(stable name, weight)`, with
    /// the default minimum size. Lookups return indices into `backends`.
    pub fn new<N: AsRef<[u8]>>(backends: &[(N, u32)]) -> Result<Self, MaglevError> {
        Self::with_min_size(backends, DEFAULT_MIN_SIZE)
    }

    /// Builds with table size the smallest prime `>= max(100 × n, min_size)`.
    pub fn with_min_size<N: AsRef<[u8]>>(
        backends: &[(N, u32)],
        min_size: usize,
    ) -> Result<Self, MaglevError> {
        let n = backends.len();
        if n >= usize::from(NONE) {
            return Err(MaglevError::TooManyBackends(n));
        }
        let want = n.saturating_mul(100).max(min_size).max(2);
        if want > 1 << 24 {
            return Err(MaglevError::TableTooLarge(want));
        }
        let m = next_prime(want);
        // Deterministic order: by name.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| backends[*a].0.as_ref().cmp(backends[*b].0.as_ref()));
        for w in order.windows(2) {
            if backends[w[0]].0.as_ref() == backends[w[1]].0.as_ref() {
                let (i, j) = (w[0].min(w[1]), w[0].max(w[1]));
                return Err(MaglevError::DuplicateName { index: j, other: i });
            }
        }
        order.retain(|i| backends[*i].1 > 0);
        let mut table = vec![NONE; m].into_boxed_slice();
        if order.is_empty() {
            return Ok(Self { table });
        }
        let max_w = order
            .iter()
            .map(|i| u64::from(backends[*i].1))
            .max()
            .unwrap_or(1);
        struct Perm {
            index: u16,
            offset: u64,
            skip: u64,
            next: u64,
            weight: u64,
            credit: u64,
        }
        let m64 = m as u64;
        let mut perms: Vec<Perm> = order
            .iter()
            .map(|&i| {
                let name = backends[i].0.as_ref();
                Perm {
                    // `n < u16::MAX` was checked above.
                    index: u16::try_from(i).unwrap_or(NONE),
                    offset: sip(K1, name) % m64,
                    skip: sip(K2, name) % (m64 - 1) + 1,
                    next: 0,
                    weight: u64::from(backends[i].1),
                    credit: 0,
                }
            })
            .collect();
        let mut filled = 0usize;
        while filled < m {
            for p in perms.iter_mut() {
                p.credit += p.weight;
                if p.credit < max_w {
                    continue;
                }
                p.credit -= max_w;
                // Claim the next free position of this backend's permutation.
                loop {
                    let c = ((p.offset + p.next * p.skip) % m64) as usize;
                    p.next += 1;
                    if table[c] == NONE {
                        table[c] = p.index;
                        filled += 1;
                        break;
                    }
                }
                if filled == m {
                    break;
                }
            }
        }
        Ok(Self { table })
    }

    /// Table size `M` (prime).
    #[inline]
    pub fn size(&self) -> usize {
        self.table.len()
    }

    /// True when no backend has weight > 0 (every lookup returns `None`).
    #[inline]
    pub fn is_empty(&self) -> bool {
        matches!(self.table.first(), None | Some(&NONE))
    }

    /// Backend index for a key hash. Multiply-shift reduction of the folded
    /// hash (both halves count, so keys of one bucket, which share the high
    /// bits, still spread over the whole table).
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<u16> {
        match self.table.get(self.position(hash)) {
            Some(&b) if b != NONE => Some(b),
            _ => None,
        }
    }

    /// Starts loading the table position [`Maglev::lookup`] reads for
    /// `hash` (the packet path asks for it ahead of a new identity).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(b) = self.table.get(self.position(hash)) {
            crate::memory::prefetch(b);
        }
    }

    #[inline]
    fn position(&self, hash: u64) -> usize {
        let folded = u64::from((hash ^ (hash >> 32)) as u32);
        ((folded * self.table.len() as u64) >> 32) as usize
    }

    /// Positions owned by each of `n` backends (for tests and status).
    pub fn shares(&self, n: usize) -> Vec<usize> {
        let mut s = vec![0usize; n];
        for &b in self.table.iter() {
            if let Some(x) = s.get_mut(usize::from(b)) {
                *x += 1;
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(n: usize) -> Vec<(String, u32)> {
        (0..n)
            .map(|i| (format!("10.0.{}.{}", i / 250, i % 250 + 1), 1))
            .collect()
    }

    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn primes() {
        assert!(is_prime(65_537));
        assert!(!is_prime(65_535));
        assert!(!is_prime(1));
        assert!(is_prime(2));
        assert_eq!(next_prime(100), 101);
        assert_eq!(next_prime(65_536), 65_537);
    }

    #[test]
    fn size_is_prime_and_at_least_100_per_backend() {
        let m = Maglev::new(&names(3)).unwrap();
        assert_eq!(m.size(), 65_537);
        let m = Maglev::with_min_size(&names(1000), 0).unwrap();
        assert!(m.size() >= 100_000 && is_prime(m.size()));
        assert_eq!(m.size(), 100_003);
    }

    #[test]
    fn empty_and_zero_weight() {
        let m = Maglev::new::<&str>(&[]).unwrap();
        assert!(m.is_empty());
        assert_eq!(m.lookup(1), None);
        let m = Maglev::new(&[("a", 0), ("b", 0)]).unwrap();
        assert!(m.is_empty());
        let m = Maglev::new(&[("a", 0), ("b", 5)]).unwrap();
        assert!(!m.is_empty());
        assert!((0..1000).all(|h| m.lookup(mix(h)) == Some(1)));
    }

    #[test]
    fn duplicate_names_rejected() {
        assert_eq!(
            Maglev::new(&[("a", 1), ("b", 1), ("a", 2)]).unwrap_err(),
            MaglevError::DuplicateName { index: 2, other: 0 }
        );
    }

    #[test]
    fn equal_weights_spread_evenly() {
        let n = 10;
        let m = Maglev::new(&names(n)).unwrap();
        let s = m.shares(n);
        let avg = m.size() as f64 / n as f64;
        for x in s {
            assert!((x as f64 - avg).abs() / avg < 0.01, "{x} vs {avg}");
        }
    }

    /// Weights hold within 5 % over 100k hashes.
    #[test]
    fn weights_hold_within_5_percent() {
        let weights = [1u32, 2, 3, 4, 10];
        let backends: Vec<(String, u32)> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("2001:db8::{i}"), *w))
            .collect();
        let m = Maglev::new(&backends).unwrap();
        let mut hits = [0u32; 5];
        let keys = 100_000u64;
        for k in 0..keys {
            hits[usize::from(m.lookup(mix(k)).unwrap())] += 1;
        }
        let total: u32 = weights.iter().sum();
        let mut worst = 0f64;
        for (i, w) in weights.iter().enumerate() {
            let want = keys as f64 * f64::from(*w) / f64::from(total);
            let err = (f64::from(hits[i]) - want).abs() / want;
            worst = worst.max(err);
            assert!(
                err < 0.05,
                "backend {i} weight {w}: {} hits, want {want}",
                hits[i]
            );
        }
        eprintln!(
            "maglev weight error over 100k hashes, weights {weights:?}: worst {:.2} %",
            worst * 100.0
        );
    }

    /// Removing one of N backends moves only about its own share of keys;
    /// the fraction of the survivors' keys that change backend is small.
    #[test]
    fn removal_disruption_is_small() {
        for n in [5usize, 10, 50, 100] {
            let all = names(n);
            let before = Maglev::new(&all).unwrap();
            let gone = n / 2;
            let rest: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != gone)
                .map(|(_, b)| b.clone())
                .collect();
            let after = Maglev::new(&rest).unwrap();
            let (mut survivors, mut moved) = (0u32, 0u32);
            let keys = 100_000u64;
            for k in 0..keys {
                let h = mix(k);
                let b = usize::from(before.lookup(h).unwrap());
                let a = usize::from(after.lookup(h).unwrap());
                let a_orig = if a >= gone { a + 1 } else { a };
                if b != gone {
                    survivors += 1;
                    if a_orig != b {
                        moved += 1;
                    }
                }
            }
            let frac = f64::from(moved) / f64::from(survivors);
            eprintln!(
                "maglev: remove 1 of {n}: {:.2} % of survivors' keys moved",
                frac * 100.0
            );
            assert!(frac < 0.03, "n={n}: {frac}");
        }
    }

    #[test]
    fn deterministic_regardless_of_order() {
        let mut a: Vec<(String, u32)> = names(20);
        for (i, b) in a.iter_mut().enumerate() {
            b.1 = 1 + (i as u32 % 3);
        }
        let ma = Maglev::new(&a).unwrap();
        let mut b = a.clone();
        b.reverse();
        b.swap(3, 11);
        let mb = Maglev::new(&b).unwrap();
        for k in 0..20_000u64 {
            let h = mix(k);
            let na = &a[usize::from(ma.lookup(h).unwrap())].0;
            let nb = &b[usize::from(mb.lookup(h).unwrap())].0;
            assert_eq!(na, nb);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Minimal disruption for any set: removing any one backend moves
        /// under 3 % of the survivors' keys, and every key of the removed
        /// backend lands on a survivor.
        #[test]
        fn removal_moves_few_survivor_keys(ws in prop::collection::vec(1u32..4, 3..40), gone_seed in any::<usize>()) {
            let bs: Vec<(String, u32)> = ws.iter().enumerate().map(|(i, w)| (format!("192.0.2.{i}"), *w)).collect();
            let gone = gone_seed % bs.len();
            let rest: Vec<(String, u32)> = bs.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, b)| b.clone()).collect();
            let before = Maglev::new(&bs).unwrap();
            let after = Maglev::new(&rest).unwrap();
            let (mut survivors, mut moved) = (0u32, 0u32);
            for k in 0..20_000u64 {
                let h = mix(k);
                let b = &bs[usize::from(before.lookup(h).unwrap())].0;
                let a = &rest[usize::from(after.lookup(h).unwrap())].0;
                prop_assert_ne!(a, &bs[gone].0);
                if *b != bs[gone].0 {
                    survivors += 1;
                    moved += u32::from(a != b);
                }
            }
            prop_assert!(f64::from(moved) / f64::from(survivors) < 0.03, "{} of {}", moved, survivors);
        }

        /// Every position is filled with a backend of weight > 0, and any
        /// permutation of the input yields the same name for every hash.
        #[test]
        fn permutation_invariant(ws in prop::collection::vec(0u32..5, 1..12), seed in any::<u64>()) {
            let bs: Vec<(String, u32)> = ws.iter().enumerate().map(|(i, w)| (format!("b{i}"), *w)).collect();
            let m = Maglev::with_min_size(&bs, 1009).unwrap();
            let mut shuffled = bs.clone();
            let len = shuffled.len();
            for i in 0..len {
                let j = (mix(seed ^ i as u64) as usize) % len;
                shuffled.swap(i, j);
            }
            let m2 = Maglev::with_min_size(&shuffled, 1009).unwrap();
            for k in 0..2000u64 {
                let h = mix(k ^ seed);
                match (m.lookup(h), m2.lookup(h)) {
                    (Some(a), Some(b)) => {
                        prop_assert!(bs[usize::from(a)].1 > 0);
                        prop_assert_eq!(&bs[usize::from(a)].0, &shuffled[usize::from(b)].0);
                    }
                    (None, None) => prop_assert!(ws.iter().all(|w| *w == 0)),
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }
}
