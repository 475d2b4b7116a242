//! Backend selection for a new identity.
//!
//! **Snapshots.** A [`BackendSet`] is an immutable snapshot of a service's
//! backends, built off the packet path by the management core from a list of
//! [`Backend`]s. It resolves the priority groups (S4): the lowest-numbered
//! group with a usable member (healthy, weight > 0) is *active* and serves new
//! identities; the other groups are standby. It precomputes the Maglev table
//! of the active group (the other backends enter it with weight 0, so lookups
//! return indices into the full list and permutations depend only on
//! addresses). Snapshots are published to workers through their command
//! rings, RCU-style: a worker swaps its `Arc<BackendSet>` between bursts
//! ([`Scheduler::swap`]) and sends the old `Arc` back to the management core,
//! which drops it, so the packet path sees neither atomics nor frees. A
//! [`Remap`] (old index -> new index, by address), computed by the management
//! core alongside the new set, lets the worker keep every session on its
//! backend across the swap and drop (or re-pick) only sessions of removed
//! backends; health and weight changes never move an existing session.
//!
//! **Policies.** [`Policy::Maglev`] (default) is stateless and consistent
//! across cores and cluster members: any core picks the same backend for an
//! identity, which makes hand-over and failover pick-consistent even for
//! sessions that were not replicated. [`Policy::WeightedRoundRobin`] is
//! nginx's smooth WRR (no bursts to one backend), and
//! [`Policy::LeastConnections`] uses the per-backend session counts that the
//! owning core maintains ([`Scheduler::session_opened`] /
//! [`Scheduler::session_closed`], driven by table inserts and expiries); it
//! compares `count / weight` by cross-multiplication and starts its scan at a
//! hash-chosen member so ties spread. Both stateful policies are per core:
//! [`Scheduler`] is the `#[repr(align(64))]` per-core state, with all its
//! arrays allocated at construction for a maximum backend count.
#![forbid(unsafe_code)]

use super::maglev::{Maglev, MaglevError, DEFAULT_MIN_SIZE};
use std::net::IpAddr;
use std::sync::Arc;

/// Index of a backend in its [`BackendSet`].
pub type BackendIndex = u16;

/// Errors building a set or swapping it into a worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// Two backends share an address.
    #[error("backend address {0} is listed twice")]
    DuplicateAddress(IpAddr),
    /// More backends than the per-core scheduler state was sized for.
    #[error("{count} backends; this scheduler holds at most {max}")]
    TooManyBackends {
        /// Backends in the set.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A remap that was not computed from the worker's current set.
    #[error("remap from epoch {remap_from} applied to a worker on epoch {current}")]
    StaleRemap {
        /// Epoch the remap starts from.
        remap_from: u64,
        /// Epoch the worker holds.
        current: u64,
    },
    /// A remap to another set than the one being swapped in.
    #[error("remap to epoch {remap_to} does not match the new set's epoch {new}")]
    RemapMismatch {
        /// Epoch the remap leads to.
        remap_to: u64,
        /// Epoch of the new set.
        new: u64,
    },
    /// Building the Maglev table failed.
    #[error(transparent)]
    Maglev(#[from] MaglevError),
}

/// One backend as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// Stable identity of the backend (also its Maglev name).
    pub address: IpAddr,
    /// Relative weight; 0 = drain (keeps its sessions, gets no new ones).
    pub weight: u32,
    /// Priority group; the lowest group with a usable member serves.
    pub group: u8,
    /// Health-check verdict.
    pub healthy: bool,
}

impl Backend {
    /// Healthy and weight > 0.
    #[inline]
    pub fn usable(&self) -> bool {
        self.healthy && self.weight > 0
    }

    fn name(&self) -> [u8; 16] {
        match self.address {
            IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            IpAddr::V6(a) => a.octets(),
        }
    }
}

/// How a new identity's backend is chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Maglev consistent hashing with weights.
    #[default]
    Maglev,
    /// nginx-style smooth weighted round robin.
    WeightedRoundRobin,
    /// Fewest active sessions per unit of weight.
    LeastConnections,
}

/// Immutable snapshot of a service's backends; see the module documentation.
#[derive(Debug)]
pub struct BackendSet {
    epoch: u64,
    policy: Policy,
    backends: Box<[Backend]>,
    active_group: Option<u8>,
    active: Box<[BackendIndex]>,
    /// Weights of `active`, same order (one dense array for the O(n) picks).
    active_weights: Box<[u32]>,
    maglev: Option<Maglev>,
}

impl BackendSet {
    /// Builds a snapshot (off the packet path). `epoch` identifies it
    /// (strictly increasing per service).
    pub fn new(
        backends: Vec<Backend>,
        policy: Policy,
        epoch: u64,
    ) -> Result<Arc<Self>, SchedulerError> {
        Self::with_maglev_min_size(backends, policy, epoch, DEFAULT_MIN_SIZE)
    }

    /// As [`BackendSet::new`] with a chosen minimum Maglev table size.
    pub fn with_maglev_min_size(
        backends: Vec<Backend>,
        policy: Policy,
        epoch: u64,
        maglev_min_size: usize,
    ) -> Result<Arc<Self>, SchedulerError> {
        if backends.len() >= usize::from(BackendIndex::MAX) {
            return Err(SchedulerError::TooManyBackends {
                count: backends.len(),
                max: usize::from(BackendIndex::MAX) - 1,
            });
        }
        let mut addrs: Vec<IpAddr> = backends.iter().map(|b| b.address).collect();
        addrs.sort_unstable();
        if let Some(w) = addrs.windows(2).find(|w| w[0] == w[1]) {
            return Err(SchedulerError::DuplicateAddress(w[0]));
        }
        let active_group = backends
            .iter()
            .filter(|b| b.usable())
            .map(|b| b.group)
            .min();
        let in_active = |b: &Backend| b.usable() && Some(b.group) == active_group;
        let active: Box<[BackendIndex]> = backends
            .iter()
            .enumerate()
            .filter(|(_, b)| in_active(b))
            // The length was checked against `BackendIndex::MAX` above.
            .filter_map(|(i, _)| BackendIndex::try_from(i).ok())
            .collect();
        let active_weights = active
            .iter()
            .map(|&i| backends[usize::from(i)].weight)
            .collect();
        let maglev = match policy {
            Policy::Maglev => {
                let names: Vec<([u8; 16], u32)> = backends
                    .iter()
                    .map(|b| (b.name(), if in_active(b) { b.weight } else { 0 }))
                    .collect();
                Some(Maglev::with_min_size(&names, maglev_min_size)?)
            }
            _ => None,
        };
        Ok(Arc::new(Self {
            epoch,
            policy,
            backends: backends.into_boxed_slice(),
            active_group,
            active,
            active_weights,
            maglev,
        }))
    }

    /// The snapshot's epoch.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The selection policy.
    #[inline]
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// All backends, indexed by [`BackendIndex`].
    #[inline]
    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// One backend.
    #[inline]
    pub fn get(&self, index: BackendIndex) -> Option<&Backend> {
        self.backends.get(usize::from(index))
    }

    /// The serving priority group, if any backend is usable.
    #[inline]
    pub fn active_group(&self) -> Option<u8> {
        self.active_group
    }

    /// Usable members of the active group, in index order.
    #[inline]
    pub fn active(&self) -> &[BackendIndex] {
        &self.active
    }

    /// Index of the backend with `address`.
    pub fn index_of(&self, address: IpAddr) -> Option<BackendIndex> {
        self.backends
            .iter()
            .position(|b| b.address == address)
            .and_then(|i| BackendIndex::try_from(i).ok())
    }

    /// The Maglev table (policy Maglev only).
    pub fn maglev(&self) -> Option<&Maglev> {
        self.maglev.as_ref()
    }
}

/// Old backend index -> new backend index, by address; built by the
/// management core together with a new [`BackendSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    from_epoch: u64,
    to_epoch: u64,
    map: Box<[Option<BackendIndex>]>,
}

impl Remap {
    /// Maps every backend of `old` to its index in `new` (`None`: removed).
    pub fn between(old: &BackendSet, new: &BackendSet) -> Self {
        let mut by_addr: Vec<(IpAddr, BackendIndex)> = new
            .backends
            .iter()
            .enumerate()
            .filter_map(|(i, b)| BackendIndex::try_from(i).ok().map(|i| (b.address, i)))
            .collect();
        by_addr.sort_unstable();
        let map = old
            .backends
            .iter()
            .map(|b| {
                by_addr
                    .binary_search_by(|(a, _)| a.cmp(&b.address))
                    .ok()
                    .map(|k| by_addr[k].1)
            })
            .collect();
        Self {
            from_epoch: old.epoch,
            to_epoch: new.epoch,
            map,
        }
    }

    /// New index of old backend `old`; `None` if it was removed.
    #[inline]
    pub fn get(&self, old: BackendIndex) -> Option<BackendIndex> {
        self.map.get(usize::from(old)).copied().flatten()
    }

    /// True when no session needs to change (same indices, nothing removed).
    pub fn is_identity(&self) -> bool {
        self.map
            .iter()
            .enumerate()
            .all(|(i, m)| m.map(usize::from) == Some(i))
    }

    /// Epochs `(from, to)`.
    pub fn epochs(&self) -> (u64, u64) {
        (self.from_epoch, self.to_epoch)
    }
}

/// Per-core scheduler state: the current snapshot, smooth-WRR weights and
/// active-session counts. Allocated once for at most `max_backends`.
#[derive(Debug)]
#[repr(align(64))]
pub struct Scheduler {
    set: Arc<BackendSet>,
    counts: Box<[u32]>,
    scratch: Box<[u32]>,
    wrr_current: Box<[i64]>,
}

impl Scheduler {
    /// State for `set`, able to hold sets of up to `max_backends`.
    pub fn new(set: Arc<BackendSet>, max_backends: usize) -> Result<Self, SchedulerError> {
        if set.backends.len() > max_backends {
            return Err(SchedulerError::TooManyBackends {
                count: set.backends.len(),
                max: max_backends,
            });
        }
        Ok(Self {
            set,
            counts: vec![0; max_backends].into_boxed_slice(),
            scratch: vec![0; max_backends].into_boxed_slice(),
            wrr_current: vec![0; max_backends].into_boxed_slice(),
        })
    }

    /// The current snapshot.
    #[inline]
    pub fn set(&self) -> &BackendSet {
        &self.set
    }

    /// Starts loading what [`Scheduler::pick`] reads for `hash`: the
    /// Maglev table's position (a table of 65,537 positions is larger than
    /// the first-level cache, and new identities land on it at random).
    /// Nothing for the other policies, whose state is per-core and small.
    #[inline]
    pub fn prefetch_pick(&self, hash: u64) {
        if let (Policy::Maglev, Some(m)) = (self.set.policy, self.set.maglev.as_ref()) {
            m.prefetch(hash);
        }
    }

    /// Chooses a backend for a new identity with key hash `hash`; `None` when
    /// no backend is usable. No allocation.
    #[inline]
    pub fn pick(&mut self, hash: u64) -> Option<BackendIndex> {
        match self.set.policy {
            Policy::Maglev => self.set.maglev.as_ref().and_then(|m| m.lookup(hash)),
            Policy::WeightedRoundRobin => self.pick_wrr(),
            Policy::LeastConnections => self.pick_least(hash),
        }
    }

    /// nginx smooth weighted round robin (`ngx_http_upstream_get_peer`).
    /// `wrr_current` is indexed by position in the active list.
    fn pick_wrr(&mut self) -> Option<BackendIndex> {
        let set = &*self.set;
        let mut total = 0i64;
        let mut best = usize::MAX;
        let mut best_cur = i64::MIN;
        let n = set.active_weights.len().min(self.wrr_current.len());
        for (k, (cur, &w)) in self.wrr_current[..n]
            .iter_mut()
            .zip(set.active_weights.iter())
            .enumerate()
        {
            let w = i64::from(w);
            *cur += w;
            total += w;
            if *cur > best_cur {
                best_cur = *cur;
                best = k;
            }
        }
        let cur = self.wrr_current.get_mut(best)?;
        *cur -= total;
        set.active.get(best).copied()
    }

    /// Fewest sessions per unit of weight; the scan starts at a hash-chosen
    /// member so that ties spread.
    fn pick_least(&self, hash: u64) -> Option<BackendIndex> {
        let set = &*self.set;
        let n = set.active.len();
        if n == 0 {
            return None;
        }
        let start = (hash % n as u64) as usize;
        let count = |i: BackendIndex| {
            u64::from(self.counts.get(usize::from(i)).copied().unwrap_or(u32::MAX))
        };
        let mut best = start;
        let (mut cb, mut wb) = (
            count(set.active[start]),
            u64::from(set.active_weights[start]),
        );
        for k in (start + 1..n).chain(0..start) {
            let (ci, wi) = (count(set.active[k]), u64::from(set.active_weights[k]));
            // ci / wi < cb / wb, weights > 0 for active members.
            if ci * wb < cb * wi {
                best = k;
                (cb, wb) = (ci, wi);
            }
        }
        Some(set.active[best])
    }

    /// A session was created on `backend` (table insert).
    #[inline]
    pub fn session_opened(&mut self, backend: BackendIndex) {
        if let Some(c) = self.counts.get_mut(usize::from(backend)) {
            *c = c.saturating_add(1);
        }
    }

    /// A session on `backend` ended (expiry or removal).
    #[inline]
    pub fn session_closed(&mut self, backend: BackendIndex) {
        if let Some(c) = self.counts.get_mut(usize::from(backend)) {
            *c = c.saturating_sub(1);
        }
    }

    /// Active sessions on `backend` as counted by this core.
    #[inline]
    pub fn sessions(&self, backend: BackendIndex) -> u32 {
        self.counts.get(usize::from(backend)).copied().unwrap_or(0)
    }

    /// Swaps in a new snapshot between bursts and returns the old one, which
    /// the worker sends back to the management core to drop. Session counts
    /// follow their backends through `remap`; counts of removed backends are
    /// discarded (the worker remaps or drops those sessions with
    /// [`Remap::get`]); smooth-WRR state restarts. No allocation.
    pub fn swap(
        &mut self,
        new: Arc<BackendSet>,
        remap: &Remap,
    ) -> Result<Arc<BackendSet>, SchedulerError> {
        if new.backends.len() > self.counts.len() {
            return Err(SchedulerError::TooManyBackends {
                count: new.backends.len(),
                max: self.counts.len(),
            });
        }
        if remap.from_epoch != self.set.epoch {
            return Err(SchedulerError::StaleRemap {
                remap_from: remap.from_epoch,
                current: self.set.epoch,
            });
        }
        if remap.to_epoch != new.epoch {
            return Err(SchedulerError::RemapMismatch {
                remap_to: remap.to_epoch,
                new: new.epoch,
            });
        }
        self.scratch.fill(0);
        for (old, c) in self.counts.iter().enumerate().take(self.set.backends.len()) {
            if let Some(n) = BackendIndex::try_from(old).ok().and_then(|o| remap.get(o)) {
                if let Some(s) = self.scratch.get_mut(usize::from(n)) {
                    *s = *c;
                }
            }
        }
        core::mem::swap(&mut self.counts, &mut self.scratch);
        self.wrr_current.fill(0);
        Ok(core::mem::replace(&mut self.set, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn b(last: u8, weight: u32, group: u8, healthy: bool) -> Backend {
        Backend {
            address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
            weight,
            group,
            healthy,
        }
    }

    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn lowest_usable_group_serves() {
        let set = BackendSet::new(
            vec![
                b(1, 1, 1, true),
                b(2, 1, 0, false),
                b(3, 0, 0, true),
                b(4, 2, 1, true),
                b(5, 1, 2, true),
            ],
            Policy::Maglev,
            1,
        )
        .unwrap();
        assert_eq!(set.active_group(), Some(1));
        assert_eq!(set.active(), &[0, 3]);
        let mut s = Scheduler::new(set, 8).unwrap();
        for k in 0..1000 {
            let p = s.pick(mix(k)).unwrap();
            assert!(p == 0 || p == 3);
        }
    }

    #[test]
    fn standby_takes_over_when_preferred_group_fails() {
        let mut list = vec![b(1, 1, 0, true), b(2, 1, 0, true), b(9, 1, 5, true)];
        let s1 = BackendSet::new(list.clone(), Policy::WeightedRoundRobin, 1).unwrap();
        assert_eq!(s1.active_group(), Some(0));
        list[0].healthy = false;
        list[1].healthy = false;
        let s2 = BackendSet::new(list, Policy::WeightedRoundRobin, 2).unwrap();
        assert_eq!(s2.active_group(), Some(5));
        let mut s = Scheduler::new(s1.clone(), 4).unwrap();
        let r = Remap::between(&s1, &s2);
        assert!(r.is_identity());
        s.swap(s2, &r).unwrap();
        assert_eq!(s.pick(0), Some(2));
    }

    #[test]
    fn nothing_usable() {
        let set = BackendSet::new(vec![b(1, 1, 0, false)], Policy::Maglev, 1).unwrap();
        assert_eq!(set.active_group(), None);
        let mut s = Scheduler::new(set, 1).unwrap();
        assert_eq!(s.pick(1), None);
        for p in [Policy::WeightedRoundRobin, Policy::LeastConnections] {
            let mut s = Scheduler::new(BackendSet::new(vec![], p, 1).unwrap(), 1).unwrap();
            assert_eq!(s.pick(7), None);
        }
    }

    #[test]
    fn duplicate_address_rejected() {
        assert_eq!(
            BackendSet::new(vec![b(1, 1, 0, true), b(1, 2, 1, true)], Policy::Maglev, 1)
                .unwrap_err(),
            SchedulerError::DuplicateAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
    }

    #[test]
    fn smooth_wrr_matches_nginx_sequence() {
        // nginx's documented example: weights 5, 1, 1 -> a a b a c a a.
        let set = BackendSet::new(
            vec![b(1, 5, 0, true), b(2, 1, 0, true), b(3, 1, 0, true)],
            Policy::WeightedRoundRobin,
            1,
        )
        .unwrap();
        let mut s = Scheduler::new(set, 3).unwrap();
        let seq: Vec<u16> = (0..7).map(|_| s.pick(0).unwrap()).collect();
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn least_connections_follows_counts_and_weights() {
        let set = BackendSet::new(
            vec![b(1, 1, 0, true), b(2, 2, 0, true)],
            Policy::LeastConnections,
            1,
        )
        .unwrap();
        let mut s = Scheduler::new(set, 2).unwrap();
        for k in 0..300u64 {
            let p = s.pick(mix(k)).unwrap();
            s.session_opened(p);
        }
        assert_eq!((s.sessions(0), s.sessions(1)), (100, 200));
        for _ in 0..50 {
            s.session_closed(1);
        }
        assert_eq!(s.pick(3), Some(1));
        s.session_closed(0);
        assert_eq!(s.sessions(0), 99);
        for _ in 0..200 {
            s.session_closed(0);
        }
        assert_eq!(s.sessions(0), 0, "saturates");
    }

    #[test]
    fn remap_keeps_sessions_and_counts_by_address() {
        let old = BackendSet::new(
            vec![b(1, 1, 0, true), b(2, 1, 0, true), b(3, 1, 0, true)],
            Policy::LeastConnections,
            1,
        )
        .unwrap();
        // Backend 2 removed, 4 added at the front, 3 now unhealthy (kept).
        let new = BackendSet::new(
            vec![b(4, 1, 0, true), b(3, 1, 0, false), b(1, 1, 0, true)],
            Policy::LeastConnections,
            2,
        )
        .unwrap();
        let r = Remap::between(&old, &new);
        assert_eq!(
            (r.get(0), r.get(1), r.get(2), r.get(9)),
            (Some(2), None, Some(1), None)
        );
        assert!(!r.is_identity());
        assert_eq!(r.epochs(), (1, 2));
        let mut s = Scheduler::new(old.clone(), 4).unwrap();
        for (i, n) in [(0u16, 5), (1, 6), (2, 7)] {
            for _ in 0..n {
                s.session_opened(i);
            }
        }
        let back = s.swap(new.clone(), &r).unwrap();
        assert!(Arc::ptr_eq(&back, &old));
        assert_eq!((s.sessions(0), s.sessions(1), s.sessions(2)), (0, 7, 5));
        // Replaying the same remap is refused.
        assert_eq!(
            s.swap(new.clone(), &r).unwrap_err(),
            SchedulerError::StaleRemap {
                remap_from: 1,
                current: 2
            }
        );
        let big = BackendSet::new(
            (1..=5).map(|i| b(i, 1, 0, true)).collect(),
            Policy::Maglev,
            3,
        )
        .unwrap();
        assert!(matches!(
            s.swap(big.clone(), &Remap::between(&new, &big)),
            Err(SchedulerError::TooManyBackends { count: 5, max: 4 })
        ));
    }

    #[test]
    fn maglev_policy_is_consistent_across_cores_and_ipv6() {
        let list: Vec<Backend> = (1..=6u16)
            .map(|i| Backend {
                address: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)),
                weight: u32::from(i),
                group: 0,
                healthy: true,
            })
            .collect();
        let set = BackendSet::new(list.clone(), Policy::Maglev, 1).unwrap();
        let mut rev = list;
        rev.reverse();
        let set2 = BackendSet::new(rev, Policy::Maglev, 1).unwrap();
        let mut a = Scheduler::new(set.clone(), 6).unwrap();
        let mut c = Scheduler::new(set2.clone(), 6).unwrap();
        for k in 0..5000 {
            let h = mix(k);
            let x = set.get(a.pick(h).unwrap()).unwrap().address;
            let y = set2.get(c.pick(h).unwrap()).unwrap().address;
            assert_eq!(x, y);
        }
    }

    #[test]
    fn scheduler_is_cache_aligned() {
        assert_eq!(core::mem::align_of::<Scheduler>(), 64);
    }

    fn arb_backends() -> impl Strategy<Value = Vec<Backend>> {
        prop::collection::btree_set(any::<u8>(), 0..10).prop_flat_map(|addrs| {
            let n = addrs.len();
            (
                Just(addrs),
                prop::collection::vec((0u32..4, 0u8..3, any::<bool>()), n),
            )
                .prop_map(|(addrs, attrs)| {
                    addrs
                        .into_iter()
                        .zip(attrs)
                        .map(|(a, (w, g, h))| b(a, w, g, h))
                        .collect()
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every policy picks only usable members of the lowest usable group,
        /// and picks something whenever one exists.
        #[test]
        fn picks_only_active(list in arb_backends(), policy in prop_oneof![Just(Policy::Maglev), Just(Policy::WeightedRoundRobin), Just(Policy::LeastConnections)]) {
            let set = BackendSet::with_maglev_min_size(list.clone(), policy, 1, 101).unwrap();
            let group = list.iter().filter(|b| b.usable()).map(|b| b.group).min();
            let mut s = Scheduler::new(set, 16).unwrap();
            for k in 0..200u64 {
                match s.pick(mix(k)) {
                    Some(i) => {
                        let be = list[usize::from(i)];
                        prop_assert!(be.usable());
                        prop_assert_eq!(Some(be.group), group);
                        s.session_opened(i);
                    }
                    None => prop_assert!(group.is_none()),
                }
            }
        }

        /// WRR over one round of sum(weights) picks gives each member exactly its weight.
        #[test]
        fn wrr_exact_per_round(ws in prop::collection::vec(1u32..6, 1..6)) {
            let list: Vec<Backend> = ws.iter().enumerate().map(|(i, w)| b(i as u8, *w, 0, true)).collect();
            let mut s = Scheduler::new(BackendSet::new(list, Policy::WeightedRoundRobin, 1).unwrap(), 8).unwrap();
            let total: u32 = ws.iter().sum();
            let mut got = vec![0u32; ws.len()];
            for _ in 0..total { got[usize::from(s.pick(0).unwrap())] += 1; }
            prop_assert_eq!(got, ws);
        }

        /// A remap sends each old backend to the new backend with the same address.
        #[test]
        fn remap_by_address(a in arb_backends(), c in arb_backends()) {
            let old = BackendSet::new(a, Policy::WeightedRoundRobin, 1).unwrap();
            let new = BackendSet::new(c, Policy::WeightedRoundRobin, 2).unwrap();
            let r = Remap::between(&old, &new);
            for (i, be) in old.backends().iter().enumerate() {
                let m = r.get(i as u16);
                prop_assert_eq!(m, new.index_of(be.address));
            }
        }
    }
}
