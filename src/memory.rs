//! Memory helpers for the per-core tables: huge-page backing and prefetch.
//!
//! A session table of a few million slots spans hundreds of megabytes; on
//! 4 KiB pages every lookup of a random identity is a TLB miss as well as a
//! cache miss, and under virtualisation a TLB miss is a two-level page walk.
//! [`TableArray::filled`] allocates the array aligned to a huge page and
//! asks the kernel for transparent huge pages over it
//! (`madvise(MADV_HUGEPAGE)`, honoured when
//! `/sys/kernel/mm/transparent_hugepage/enabled` is `always` or `madvise`,
//! Debian's default) and writes every element before returning, so all page
//! faults and zeroing happen at start and none on the packet path. Where the
//! kernel refuses the advice the array still works on small pages; nothing
//! here can fail beyond the allocation itself.
//!
//! [`prefetch`] asks for the cache line of a table slot ahead of use: a
//! worker hashes a whole RX burst first and prefetches each packet's home
//! slot, so the misses of a large table overlap instead of stalling one
//! after the other.

use core::fmt;

/// Huge page size the advice is aligned to (x86-64 and aarch64 with 4 KiB
/// base pages).
const HUGE_PAGE: usize = 2 << 20;

/// Alignment of every [`TableArray`]: one cache line, so an element whose
/// size divides 64 never straddles two lines.
pub const LINE: usize = 64;

/// A fixed-length array for a per-core table: allocated once, aligned to a
/// cache line, and, from 2 MiB up, to a huge page, so that the whole array
/// (not only its 2 MiB-aligned interior) can be backed by transparent huge
/// pages. It derefs to a slice; its length never changes.
///
/// The system allocator hands out large blocks 16 bytes past a page
/// boundary, so a `Vec` of 32-byte entries would put every other entry
/// across two cache lines; this type exists for that alignment, which a
/// `Box<[T]>` cannot carry (it must be freed with `T`'s own alignment).
pub struct TableArray<T> {
    ptr: core::ptr::NonNull<T>,
    len: usize,
}

// SAFETY: a `TableArray<T>` owns its elements exactly as a `Box<[T]>` does
// (no shared state, no interior mutability of its own), so it may move to
// or be shared with another thread whenever `T` may.
unsafe impl<T: Send> Send for TableArray<T> {}
// SAFETY: as above; `&TableArray<T>` only gives out `&T`.
unsafe impl<T: Sync> Sync for TableArray<T> {}

impl<T> TableArray<T> {
    /// The allocation layout for `n` elements, or `None` when it overflows.
    fn layout(n: usize) -> Option<std::alloc::Layout> {
        let bytes = n.checked_mul(core::mem::size_of::<T>())?;
        let align = if bytes >= HUGE_PAGE { HUGE_PAGE } else { LINE };
        std::alloc::Layout::from_size_align(bytes, align.max(core::mem::align_of::<T>())).ok()
    }
}

impl<T: Clone> TableArray<T> {
    /// `n` copies of `fill`; every page is touched before this returns.
    ///
    /// # Panics
    /// When `n` elements do not fit in the address space (as `Vec` does);
    /// callers bound `n` first. An allocation failure aborts, as for `Vec`.
    pub fn filled(n: usize, fill: T) -> Self {
        let layout = Self::layout(n).expect("table array size overflows the address space");
        if layout.size() == 0 {
            return TableArray {
                ptr: core::ptr::NonNull::dangling(),
                len: n,
            };
        }
        // SAFETY: the layout has a non-zero size (checked just above).
        let raw = unsafe { std::alloc::alloc(layout) }.cast::<T>();
        let Some(ptr) = core::ptr::NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        if layout.size() >= HUGE_PAGE {
            advise_huge(raw.cast::<u8>(), layout.size());
        }
        for i in 0..n {
            // SAFETY: `i < n`, so the slot lies inside the allocation of
            // `n` elements, and it is written exactly once, before anything
            // reads it. `clone` cannot panic for the plain-data element
            // types of the tables; if it did, the elements written so far
            // would leak (never read), which is safe.
            unsafe { ptr.as_ptr().add(i).write(fill.clone()) };
        }
        TableArray { ptr, len: n }
    }
}

impl<T> core::ops::Deref for TableArray<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points at `len` initialised elements owned by
        // `self` (or is dangling with a zero-sized allocation, which is a
        // valid empty or zero-sized-element slice); `&self` keeps them
        // from being mutated while the slice lives.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> core::ops::DerefMut for TableArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only
        // reference to the elements.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for TableArray<T> {
    fn drop(&mut self) {
        let layout = Self::layout(self.len).expect("the layout was valid at allocation");
        // SAFETY: the elements are initialised and owned by `self`, and
        // nothing can use them after this.
        unsafe {
            core::ptr::drop_in_place(core::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ))
        };
        if layout.size() != 0 {
            // SAFETY: `ptr` came from `alloc` with this very layout (the
            // same `len`, so `layout` computes it again identically).
            unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout) };
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for TableArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableArray")
            .field("len", &self.len)
            .finish()
    }
}

/// Advises huge pages for the 2 MiB-aligned interior of `[start, start+len)`.
fn advise_huge(start: *mut u8, len: usize) {
    let first = (start as usize).next_multiple_of(HUGE_PAGE);
    let end = (start as usize).saturating_add(len) & !(HUGE_PAGE - 1);
    if end <= first {
        return;
    }
    // SAFETY: [first, end) lies inside the allocation the caller just made
    // (rounded inwards to page boundaries), and MADV_HUGEPAGE only changes
    // how the kernel backs those pages: it neither moves, frees nor changes
    // their contents, so no Rust reference is invalidated. The result is
    // ignored on purpose: without THP the array stays on small pages.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
    }
}

/// Hints the CPU to bring the cache line holding `*r` into all cache
/// levels. A no-op on targets other than x86-64.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    prefetch_addr((r as *const T).cast::<u8>());
}

/// Like [`prefetch`], for the cache line holding the last byte of `*r`
/// (a value may straddle two lines).
#[inline(always)]
pub fn prefetch_end<T>(r: &T) {
    let last = core::mem::size_of::<T>().saturating_sub(1);
    prefetch_addr((r as *const T).cast::<u8>().wrapping_add(last));
}

#[inline(always)]
fn prefetch_addr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 (SSE, part of the x86-64 baseline) is only a hint:
    // it never faults, never writes, and architecturally has no effect on
    // program state, whatever the address; callers pass addresses inside a
    // live value anyway.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_slices_are_filled() {
        assert_eq!(&*TableArray::filled(5, 7u64), &[7u64; 5]);
        assert!(TableArray::<u8>::filled(0, 1).is_empty());
        let big = TableArray::filled((3 * HUGE_PAGE) / 8 + 3, 0xA5u64);
        assert_eq!(big.len(), (3 * HUGE_PAGE) / 8 + 3);
        assert!(big.iter().all(|&x| x == 0xA5));
        let opts = TableArray::<Option<[u8; 20]>>::filled(HUGE_PAGE / 10, None);
        assert!(opts.iter().all(Option::is_none));
    }

    #[test]
    fn arrays_are_aligned_and_writable() {
        let small = TableArray::filled(3, 1u8);
        assert_eq!(small.as_ptr() as usize % LINE, 0);
        let mut big = TableArray::filled(HUGE_PAGE / 8 + 1, 0u64);
        assert_eq!(big.as_ptr() as usize % HUGE_PAGE, 0);
        big[HUGE_PAGE / 8] = 9;
        assert_eq!(big.iter().sum::<u64>(), 9);
        // Zero-sized elements and empty arrays allocate nothing.
        assert_eq!(TableArray::filled(0, 1u32).len(), 0);
        assert_eq!(TableArray::filled(5, ()).len(), 5);
        // Elements with a destructor are dropped with the array.
        let shared = std::rc::Rc::new(());
        drop(TableArray::filled(4, shared.clone()));
        assert_eq!(std::rc::Rc::strong_count(&shared), 1);
    }
}
