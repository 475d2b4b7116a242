//! The bucket map: the routing truth of the cluster.
//!
//! A mobile identity's keyed 64-bit hash selects one of `2^bits` buckets by
//! its **high** bits (`hash >> (64 - bits)`); the session tables use the low
//! bits for their slots, so a bucket's sessions still spread over a whole
//! table. Each bucket has an owning cluster member (`u16`, edited by the
//! cluster master) and, on that member, an owning core (`u8`, chosen by the
//! appliance). Two flat arrays (`owner_member`, `owner_core`) make the packet
//! path two loads: `core_of` for the handoff decision and `is_local` for the
//! hub-mode drop. The map is an immutable value on the packet path: the
//! management core edits a copy and publishes it like any other snapshot.
//!
//! [`BucketMap::assign_cores`] spreads a member's buckets evenly over its
//! cores with as few moves as possible: a bucket keeps its core while that
//! core is within its quota, so a rebalance moves only the sessions it must
//! (each moved bucket is a hand-over between cores). [`BucketLoad`] is the
//! per-bucket counter a worker keeps in a plain array ([`BucketLoads`]) for
//! the load reports of the rebalance (S3).
#![forbid(unsafe_code)]

/// Errors building or editing a bucket map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketError {
    /// The bucket count must be a power of two between 1 and 2^20.
    #[error("bucket count {0} must be a power of two between 1 and 1048576")]
    BadCount(usize),
    /// A bucket index past the end of the map.
    #[error("bucket {bucket} does not exist (the map has {buckets} buckets)")]
    NoSuchBucket {
        /// The bucket asked for.
        bucket: usize,
        /// Number of buckets.
        buckets: usize,
    },
    /// A member needs at least one core, and at most 256.
    #[error("core count {0} must be between 1 and 256")]
    BadCoreCount(usize),
}

/// Default number of buckets.
pub const DEFAULT_BUCKETS: usize = 4096;

/// Bucket of a hash for a map of `2^bits` buckets (high bits of the hash).
/// Without a branch: the hash is shifted by one and then by `63 - bits`
/// (both below 64), so a one-bucket map (`bits` 0) gets bucket 0. Maps have
/// at most 2^20 buckets ([`BucketMap::new`]); a larger `bits` is a caller's
/// bug, and the shift amount's wrap (`wrapping_sub`, `wrapping_shr`) then
/// gives some bucket rather than a panic.
#[inline]
pub fn bucket_of(hash: u64, bits: u32) -> usize {
    debug_assert!(bits <= 20);
    (hash >> 1).wrapping_shr(63u32.wrapping_sub(bits)) as usize
}

/// Bucket -> (owner member, owner core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketMap {
    bits: u32,
    owner_member: Box<[u16]>,
    owner_core: Box<[u8]>,
}

/// A bucket moved from one core to another by [`BucketMap::assign_cores`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreMove {
    /// The bucket.
    pub bucket: usize,
    /// Its previous core (`None`: newly owned by this member).
    pub from: Option<u8>,
    /// Its new core.
    pub to: u8,
}

impl BucketMap {
    /// A map of `buckets` buckets, all owned by `member` on core 0.
    pub fn new(buckets: usize, member: u16) -> Result<Self, BucketError> {
        if !buckets.is_power_of_two() || buckets > 1 << 20 {
            return Err(BucketError::BadCount(buckets));
        }
        Ok(Self {
            bits: buckets.trailing_zeros(),
            owner_member: vec![member; buckets].into_boxed_slice(),
            owner_core: vec![0; buckets].into_boxed_slice(),
        })
    }

    /// Number of buckets (a power of two).
    #[inline]
    pub fn buckets(&self) -> usize {
        self.owner_member.len()
    }

    /// `log2(buckets())`.
    #[inline]
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Bucket of a hash.
    #[inline]
    pub fn bucket_of(&self, hash: u64) -> usize {
        bucket_of(hash, self.bits)
    }

    /// Owning member of a hash's bucket.
    #[inline]
    pub fn member_of(&self, hash: u64) -> u16 {
        self.owner_member[self.bucket_of(hash)]
    }

    /// Owning core of a hash's bucket (meaningful on the owning member).
    #[inline]
    pub fn core_of(&self, hash: u64) -> u8 {
        self.owner_core[self.bucket_of(hash)]
    }

    /// Owning core of `bucket` (from [`BucketMap::bucket_of`], so the packet
    /// path finds the bucket once and uses it for the owner and the load).
    #[inline]
    pub fn core_of_bucket(&self, bucket: usize) -> u8 {
        self.owner_core[bucket]
    }

    /// True if `my_member` owns the hash's bucket.
    #[inline]
    pub fn is_local(&self, hash: u64, my_member: u16) -> bool {
        self.member_of(hash) == my_member
    }

    /// Owner member of a bucket.
    pub fn owner(&self, bucket: usize) -> Option<u16> {
        self.owner_member.get(bucket).copied()
    }

    /// Owner core of a bucket.
    pub fn core(&self, bucket: usize) -> Option<u8> {
        self.owner_core.get(bucket).copied()
    }

    /// Gives `bucket` to `member` (its core is set by [`Self::assign_cores`]).
    pub fn set_owner(&mut self, bucket: usize, member: u16) -> Result<(), BucketError> {
        let buckets = self.buckets();
        let m = self
            .owner_member
            .get_mut(bucket)
            .ok_or(BucketError::NoSuchBucket { bucket, buckets })?;
        *m = member;
        Ok(())
    }

    /// Buckets owned by `member`.
    pub fn buckets_of(&self, member: u16) -> impl Iterator<Item = usize> + '_ {
        self.owner_member
            .iter()
            .enumerate()
            .filter(move |(_, m)| **m == member)
            .map(|(b, _)| b)
    }

    /// Spreads `member`'s buckets over `cores` cores so that counts differ by
    /// at most one, keeping every bucket on its current core where that core
    /// is within quota. `newly_owned(b)` says a bucket has just arrived from
    /// another member (its old core number is meaningless). Returns the
    /// moves, in bucket order.
    pub fn assign_cores(
        &mut self,
        member: u16,
        cores: usize,
        mut newly_owned: impl FnMut(usize) -> bool,
    ) -> Result<Vec<CoreMove>, BucketError> {
        if cores == 0 || cores > 256 {
            return Err(BucketError::BadCoreCount(cores));
        }
        let mine: Vec<(usize, bool)> = self
            .owner_member
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == member)
            .map(|(b, _)| (b, newly_owned(b)))
            .collect();
        let base = mine.len() / cores;
        let extra = mine.len() % cores;
        // The `extra` cores that hold the most buckets now may keep one more.
        let mut current = vec![0usize; cores];
        for &(b, new) in &mine {
            let c = usize::from(self.owner_core[b]);
            if !new && c < cores {
                current[c] += 1;
            }
        }
        let mut by_load: Vec<usize> = (0..cores).collect();
        by_load.sort_by_key(|&c| (core::cmp::Reverse(current[c]), c));
        let mut quota = vec![base; cores];
        for &c in by_load.iter().take(extra) {
            quota[c] += 1;
        }
        // Keep buckets on their core up to its quota, in bucket order.
        let mut count = vec![0usize; cores];
        let mut homeless = Vec::new();
        for &(b, new) in &mine {
            let c = usize::from(self.owner_core[b]);
            if !new && c < cores && count[c] < quota[c] {
                count[c] += 1;
            } else {
                homeless.push((b, new));
            }
        }
        let mut moves = Vec::with_capacity(homeless.len());
        let mut c = 0usize;
        for (b, new) in homeless {
            while count[c] >= quota[c] {
                c += 1;
            }
            count[c] += 1;
            // `cores <= 256` was checked above.
            let to = u8::try_from(c).unwrap_or(u8::MAX);
            let from = if new { None } else { Some(self.owner_core[b]) };
            self.owner_core[b] = to;
            moves.push(CoreMove {
                bucket: b,
                from,
                to,
            });
        }
        Ok(moves)
    }
}

/// Load counters of one bucket, kept by its owning core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketLoad {
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded.
    pub bytes: u64,
    /// Packets dropped (any reason, incl. ring overflow on handoff).
    pub drops: u64,
}

/// A worker's per-bucket counters: a plain array indexed by bucket, no
/// atomics; the management core asks for a snapshot through the command ring.
#[derive(Debug, Clone)]
#[repr(align(64))]
pub struct BucketLoads {
    loads: Box<[BucketLoad]>,
    bits: u32,
}

impl BucketLoads {
    /// Counters for every bucket of `map`.
    pub fn new(map: &BucketMap) -> Self {
        Self {
            loads: vec![BucketLoad::default(); map.buckets()].into_boxed_slice(),
            bits: map.bits(),
        }
    }

    /// Starts loading the counters of `bucket` into the cache (the burst's
    /// prefetch pass calls this: with many identities each packet lands on
    /// a random bucket, and waiting for its line at `record` was about a
    /// seventh of `forward_to_backend` in `perf annotate`).
    #[inline]
    pub fn prefetch_bucket(&self, bucket: usize) {
        if let Some(l) = self.loads.get(bucket) {
            crate::memory::prefetch(l);
        }
    }

    /// Counts a forwarded packet of `bytes` bytes.
    #[inline]
    pub fn record(&mut self, hash: u64, bytes: u32) {
        self.record_bucket(bucket_of(hash, self.bits), bytes);
    }

    /// [`BucketLoads::record`] in a bucket already found.
    #[inline]
    pub fn record_bucket(&mut self, bucket: usize, bytes: u32) {
        if let Some(l) = self.loads.get_mut(bucket) {
            l.packets += 1;
            l.bytes += u64::from(bytes);
        }
    }

    /// Counts a dropped packet.
    #[inline]
    pub fn drop_packet(&mut self, hash: u64) {
        if let Some(l) = self.loads.get_mut(bucket_of(hash, self.bits)) {
            l.drops += 1;
        }
    }

    /// Counters of one bucket.
    pub fn get(&self, bucket: usize) -> Option<&BucketLoad> {
        self.loads.get(bucket)
    }

    /// Copies the counters into `out` (same length) and zeroes them: the
    /// per-interval report the rebalance compares.
    pub fn take_into(&mut self, out: &mut [BucketLoad]) {
        for (o, l) in out.iter_mut().zip(self.loads.iter_mut()) {
            *o = *l;
            *l = BucketLoad::default();
        }
    }

    /// All counters, by bucket.
    pub fn as_slice(&self) -> &[BucketLoad] {
        &self.loads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bucket_uses_high_bits() {
        let m = BucketMap::new(4096, 1).unwrap();
        assert_eq!(m.bits(), 12);
        assert_eq!(m.bucket_of(0), 0);
        assert_eq!(m.bucket_of(u64::MAX), 4095);
        assert_eq!(m.bucket_of(0xABC0_0000_0000_0000), 0xABC);
        assert_eq!(m.bucket_of(0x0000_0000_FFFF_FFFF), 0);
        let one = BucketMap::new(1, 1).unwrap();
        assert_eq!(one.bucket_of(u64::MAX), 0);
    }

    #[test]
    fn bad_counts() {
        assert_eq!(
            BucketMap::new(3000, 0).unwrap_err(),
            BucketError::BadCount(3000)
        );
        assert!(BucketMap::new(0, 0).is_err());
        let mut m = BucketMap::new(16, 0).unwrap();
        assert!(m.set_owner(16, 1).is_err());
        assert!(m.assign_cores(0, 0, |_| false).is_err());
    }

    #[test]
    fn ownership_and_locality() {
        let mut m = BucketMap::new(16, 0).unwrap();
        for b in 8..16 {
            m.set_owner(b, 1).unwrap();
        }
        let h_low = 0x1000_0000_0000_0000; // bucket 1
        let h_high = 0xF000_0000_0000_0000; // bucket 15
        assert!(m.is_local(h_low, 0) && !m.is_local(h_low, 1));
        assert!(m.is_local(h_high, 1));
        assert_eq!(m.buckets_of(1).count(), 8);
        m.assign_cores(1, 3, |_| false).unwrap();
        assert_eq!(m.core_of(h_high), m.core(15).unwrap());
    }

    #[test]
    fn even_spread_and_minimal_moves() {
        let mut m = BucketMap::new(4096, 7).unwrap();
        let moves = m.assign_cores(7, 4, |_| false).unwrap();
        assert_eq!(moves.len(), 3072, "3/4 leave core 0");
        let per_core = |m: &BucketMap, n: usize| {
            let mut c = vec![0; n];
            for b in m.buckets_of(7) {
                c[usize::from(m.core(b).unwrap())] += 1;
            }
            c
        };
        assert_eq!(per_core(&m, 4), vec![1024; 4]);
        // Same again: nothing moves.
        assert!(m.assign_cores(7, 4, |_| false).unwrap().is_empty());
        // Lose 100 buckets to another member, gain 10 new ones elsewhere.
        for b in 0..100 {
            m.set_owner(b, 8).unwrap();
        }
        let moves = m.assign_cores(7, 4, |_| false).unwrap();
        let c = per_core(&m, 4);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
        assert!(moves.len() <= 100, "{}", moves.len());
        // Go from 4 to 5 cores: only about a fifth moves.
        let moves = m.assign_cores(7, 5, |_| false).unwrap();
        let c = per_core(&m, 5);
        assert!(
            c.iter().max().unwrap() - c.iter().min().unwrap() <= 1,
            "{c:?}"
        );
        assert!(moves.len() <= 3996 / 5 + 5, "{}", moves.len());
    }

    #[test]
    fn load_counters() {
        let m = BucketMap::new(16, 0).unwrap();
        let mut l = BucketLoads::new(&m);
        l.record(0x3000_0000_0000_0000, 100);
        l.record(0x3fff_0000_0000_0000, 50);
        l.drop_packet(0x3000_0000_0000_0001);
        assert_eq!(
            *l.get(3).unwrap(),
            BucketLoad {
                packets: 2,
                bytes: 150,
                drops: 1
            }
        );
        let mut out = vec![BucketLoad::default(); 16];
        l.take_into(&mut out);
        assert_eq!(out[3].packets, 2);
        assert_eq!(*l.get(3).unwrap(), BucketLoad::default());
        assert_eq!(core::mem::align_of::<BucketLoads>(), 64);
    }

    proptest! {
        #[test]
        fn assign_is_balanced_and_stable(
            owners in prop::collection::vec(0u16..3, 64),
            cores_a in 1usize..9,
            cores_b in 1usize..9,
            hash in any::<u64>(),
        ) {
            let mut m = BucketMap::new(64, 0).unwrap();
            for (b, o) in owners.iter().enumerate() { m.set_owner(b, *o).unwrap(); }
            for cores in [cores_a, cores_b] {
                m.assign_cores(1, cores, |_| false).unwrap();
                let mut c = vec![0usize; cores];
                for b in m.buckets_of(1) { c[usize::from(m.core(b).unwrap())] += 1; }
                prop_assert!(c.iter().max().unwrap() - c.iter().min().unwrap() <= 1);
                prop_assert!(m.assign_cores(1, cores, |_| false).unwrap().is_empty());
            }
            prop_assert!(m.bucket_of(hash) < 64);
            prop_assert_eq!(m.is_local(hash, 1), owners[m.bucket_of(hash)] == 1);
        }
    }
}
