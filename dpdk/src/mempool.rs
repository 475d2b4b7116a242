//! Packet buffer pools (`rte_pktmbuf_pool_create`).
//!
//! A pool is created once at start-up with every buffer the appliance will
//! ever use; the packet path only takes and returns buffers through the
//! per-lcore cache. A [`Mempool`] is shared (`Arc`) by the ports and workers
//! that use it, and is freed only when the last of them is gone.

use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{DpdkError, Result};
use crate::ffi;
use crate::ids::SocketId;
use crate::mbuf::Mbuf;

/// Room for a standard 1518-byte frame plus DPDK's default headroom.
pub const DEFAULT_DATA_ROOM: u16 = ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// An mbuf pool.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<ffi::rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: rte_mempool is designed for concurrent use from every lcore: get/put
// go through per-lcore caches and a lock-free ring.
unsafe impl Send for Mempool {}
// SAFETY: as above; all methods take &self and are thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with a per-lcore cache of `cache` and
    /// `data_room` bytes of buffer each (headroom included).
    pub fn create(
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
        socket: SocketId,
    ) -> Result<Self> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::Invalid(format!("mempool name {name:?} contains NUL")))?;
        // SAFETY: cname is a valid C string for the call; other arguments are
        // plain values that DPDK validates.
        let raw = unsafe {
            ffi::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, data_room, socket.0)
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            DpdkError::from_rte_errno(format!(
                "rte_pktmbuf_pool_create({name}, {size} mbufs, cache {cache}, data room {data_room})"
            ))
        })?;
        Ok(Mempool {
            raw,
            name: name.to_owned(),
            size,
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs currently available (in the pool or in lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: raw is a live pool (owned by self).
        unsafe { ffi::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently handed out.
    pub fn in_use(&self) -> u32 {
        // SAFETY: raw is a live pool (owned by self).
        unsafe { ffi::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Takes one mbuf, reset and empty. `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: raw is a live pktmbuf pool; the returned mbuf (if any) is
        // exclusively ours and is wrapped in an owning Mbuf.
        unsafe { Mbuf::from_raw(ffi::rte_pktmbuf_alloc(self.raw.as_ptr())) }
    }

    /// The raw pool, for queue set-up inside this crate.
    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: we own the pool; every port using it held an Arc and is gone,
        // so no queue references it any more.
        unsafe { ffi::rte_mempool_free(self.raw.as_ptr()) }
    }
}
