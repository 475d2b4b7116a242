//! Owned packet buffers and fixed-size bursts of them.
//!
//! [`Mbuf`] owns one `rte_mbuf` and frees it when dropped; handing it to a TX
//! queue or a ring gives up ownership explicitly. [`PacketBurst`] is the
//! fixed-capacity array the poll loop receives into and transmits from: no
//! allocation, and whatever is left in it is freed when it is dropped.
//! Only the first segment is exposed as a slice: roamlb's pools are sized so
//! that every frame it handles fits in one segment.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::ffi;

/// The largest burst size roamlb's arrays hold.
pub const MAX_BURST: usize = 64;

/// An owned packet buffer.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<ffi::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one Mbuf value; moving it to another
// lcore moves that ownership, which is how DPDK hands packets between cores.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Wraps a raw mbuf; `None` for NULL.
    ///
    /// # Safety
    /// `raw` must be NULL or a valid mbuf that nothing else owns or frees.
    #[inline]
    pub unsafe fn from_raw(raw: *mut ffi::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(raw).map(Mbuf)
    }

    /// Gives up ownership, returning the raw pointer.
    #[inline]
    pub fn into_raw(self) -> *mut ffi::rte_mbuf {
        ManuallyDrop::new(self).0.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &ffi::rte_mbuf {
        // SAFETY: self owns a valid mbuf for its whole lifetime.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: self owns a valid mbuf, and &mut self gives exclusive access.
        unsafe { self.0.as_mut() }
    }

    /// Bytes in the first segment.
    #[inline]
    pub fn len(&self) -> usize {
        self.raw().data_len as usize
    }

    /// Whether the first segment is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total packet length across segments.
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// Number of segments.
    #[inline]
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The first segment's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off points at data_len initialised bytes of
        // the mbuf's buffer, which lives as long as the mbuf (borrowed via self).
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in data(); &mut self makes the access exclusive. A
        // freshly received or allocated mbuf has refcnt 1 (not shared).
        unsafe {
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// Free bytes before the data (room for an encapsulation header).
    #[inline]
    pub fn headroom(&self) -> usize {
        self.raw().data_off as usize
    }

    /// The headroom bytes themselves (before the data): scratch space the
    /// application may use, e.g. to pass metadata with a packet to another
    /// core. A later `prepend` takes them over.
    #[inline]
    pub fn headroom_bytes(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr points at buf_len bytes owned by this mbuf, of
        // which the first data_off precede the data; borrowed via self.
        unsafe { std::slice::from_raw_parts(m.buf_addr as *const u8, m.data_off as usize) }
    }

    /// The headroom bytes, writable.
    #[inline]
    pub fn headroom_bytes_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in headroom_bytes; &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(m.buf_addr as *mut u8, m.data_off as usize) }
    }

    /// Free bytes after the data of the (single) segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.raw();
        (m.buf_len as usize).saturating_sub(m.data_off as usize + m.data_len as usize)
    }

    /// Grows the packet by `n` bytes at the end and returns them; `None` (and
    /// nothing changed) when the segment lacks room.
    #[inline]
    pub fn append(&mut self, n: u16) -> Option<&mut [u8]> {
        // SAFETY: self owns the mbuf; rte_pktmbuf_append checks the tailroom
        // and returns NULL (changing nothing) when it is short.
        let p = unsafe { ffi::rte_pktmbuf_append(self.0.as_ptr(), n) };
        if p.is_null() {
            return None;
        }
        // SAFETY: DPDK reserved n bytes at p inside this mbuf's buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, n as usize) })
    }

    /// Grows the packet by `n` bytes at the front and returns them.
    #[inline]
    pub fn prepend(&mut self, n: u16) -> Option<&mut [u8]> {
        // SAFETY: self owns the mbuf; rte_pktmbuf_prepend checks the headroom.
        let p = unsafe { ffi::rte_pktmbuf_prepend(self.0.as_ptr(), n) };
        if p.is_null() {
            return None;
        }
        // SAFETY: DPDK reserved n bytes at p inside this mbuf's buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, n as usize) })
    }

    /// Removes `n` bytes from the front; `false` if the packet is shorter.
    #[inline]
    pub fn adj(&mut self, n: u16) -> bool {
        // SAFETY: self owns the mbuf; rte_pktmbuf_adj checks the length.
        !unsafe { ffi::rte_pktmbuf_adj(self.0.as_ptr(), n) }.is_null()
    }

    /// Removes `n` bytes from the end; `false` if the packet is shorter.
    #[inline]
    pub fn trim(&mut self, n: u16) -> bool {
        // SAFETY: self owns the mbuf; rte_pktmbuf_trim checks the length.
        unsafe { ffi::rte_pktmbuf_trim(self.0.as_ptr(), n) == 0 }
    }

    /// The offload flags (`RTE_MBUF_F_*`).
    #[inline]
    pub fn ol_flags(&self) -> u64 {
        self.raw().ol_flags
    }

    /// The port the packet was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// Sets the input port (for a frame built in software and handed to
    /// the data plane as if that port had received it).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        self.raw_mut().port = port;
    }

    /// The NIC's RSS hash, when `RTE_MBUF_F_RX_RSS_HASH` is set.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        if self.ol_flags() & ffi::RTE_MBUF_F_RX_RSS_HASH != 0 {
            // SAFETY: self owns a valid mbuf; the accessor reads one field.
            Some(unsafe { ffi::roamlb_mbuf_rss(self.0.as_ptr()) })
        } else {
            None
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nothing else will free it.
        unsafe { ffi::rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

/// A fixed-capacity burst of owned mbufs: what `rx_burst` fills and
/// `tx_burst` drains. Capacity is [`MAX_BURST`]; no heap allocation.
pub struct PacketBurst {
    len: usize,
    slots: [*mut ffi::rte_mbuf; MAX_BURST],
}

impl std::fmt::Debug for PacketBurst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketBurst")
            .field("len", &self.len)
            .finish()
    }
}

// SAFETY: the burst owns its mbufs exclusively (slots[..len]); moving the
// burst moves that ownership like a Vec<Mbuf> would.
unsafe impl Send for PacketBurst {}

impl Default for PacketBurst {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBurst {
    /// An empty burst.
    pub const fn new() -> Self {
        PacketBurst {
            len: 0,
            slots: [std::ptr::null_mut(); MAX_BURST],
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the burst holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the burst is at capacity.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    /// Free slots.
    #[inline]
    pub fn room(&self) -> usize {
        MAX_BURST - self.len
    }

    /// Adds an mbuf; gives it back when the burst is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == MAX_BURST {
            return Err(m);
        }
        self.slots[self.len] = m.into_raw();
        self.len += 1;
        Ok(())
    }

    /// The mbufs, by reference.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has
        // the layout of *mut rte_mbuf; slots[..len] are all non-null owned mbufs.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr() as *const Mbuf, self.len) }
    }

    /// The mbufs, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in as_slice; &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Moves every mbuf out, in order, leaving the burst empty. Mbufs not
    /// consumed from the iterator are freed when it is dropped.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let len = self.len;
        self.len = 0;
        Drain {
            burst: self,
            next: 0,
            end: len,
        }
    }

    /// Frees every mbuf held.
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: slots[..len] are owned, valid mbufs; after the bulk free
            // len is reset so they are never touched again.
            unsafe { ffi::rte_pktmbuf_free_bulk(self.slots.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// Raw access for the RX/TX/ring wrappers in this crate: a pointer to the
    /// first free slot and how many are free.
    #[inline]
    pub(crate) fn spare_raw(&mut self) -> (*mut *mut ffi::rte_mbuf, usize) {
        // SAFETY: len <= MAX_BURST, so the offset stays within the array.
        (
            unsafe { self.slots.as_mut_ptr().add(self.len) },
            MAX_BURST - self.len,
        )
    }

    /// Records that `n` more slots were filled by DPDK.
    ///
    /// # Safety
    /// The `n` slots after the current length must hold owned, valid mbufs.
    #[inline]
    pub(crate) unsafe fn commit(&mut self, n: usize) {
        debug_assert!(self.len + n <= MAX_BURST);
        self.len += n;
    }

    /// Raw pointer to the held mbufs and their count, for TX and enqueue.
    #[inline]
    pub(crate) fn filled_raw(&mut self) -> (*mut *mut ffi::rte_mbuf, usize) {
        (self.slots.as_mut_ptr(), self.len)
    }

    /// Forgets the first `n` mbufs (DPDK took them) and moves the rest down.
    #[inline]
    pub(crate) fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.slots.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl Drop for PacketBurst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Iterator returned by [`PacketBurst::drain`].
#[derive(Debug)]
pub struct Drain<'a> {
    burst: &'a mut PacketBurst,
    next: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next == self.end {
            return None;
        }
        // SAFETY: next < end, and end is the burst's length, which `push`,
        // `commit` (DPDK fills at most the spare room) and `consume_front`
        // keep within MAX_BURST, the array's size. (Unchecked: the per-packet
        // bounds check and null test cost the RX loop instructions.)
        let raw = unsafe { *self.burst.slots.get_unchecked(self.next) };
        self.next += 1;
        // SAFETY: slots[..len] hold owned, non-null mbufs (from `push` or
        // DPDK); the burst's len was reset to 0 by drain(), so ownership
        // passes to the returned Mbuf alone.
        Some(Mbuf(unsafe { NonNull::new_unchecked(raw) }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        for m in self.by_ref() {
            drop(m);
        }
    }
}
