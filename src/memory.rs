//! Memory helpers for the per-core tables: huge-page backing and prefetch.
//!
//! A session table of a few million slots spans hundreds of megabytes; on
//! 4 KiB pages every lookup of a random identity is a TLB miss as well as a
//! cache miss, and under virtualisation a TLB miss is a two-level page walk.
//! [`filled_slice`] asks the kernel for transparent huge pages over the
//! array (`madvise(MADV_HUGEPAGE)`, honoured when
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

/// Huge page size the advice is aligned to (x86-64 and aarch64 with 4 KiB
/// base pages).
const HUGE_PAGE: usize = 2 << 20;

/// `n` copies of `fill` in one boxed slice whose interior 2 MiB-aligned
/// part is advised to be backed by transparent huge pages; every page is
/// touched before this returns.
pub fn filled_slice<T: Clone>(n: usize, fill: T) -> Box<[T]> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    let bytes = n.saturating_mul(core::mem::size_of::<T>());
    if bytes >= HUGE_PAGE {
        advise_huge(v.as_mut_ptr().cast::<u8>(), bytes);
    }
    // Writing every element faults the pages in now (as huge pages where
    // the advice took effect).
    v.resize(n, fill);
    // len == capacity, so this does not reallocate.
    v.into_boxed_slice()
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
        assert_eq!(&*filled_slice(5, 7u64), &[7u64; 5]);
        assert!(filled_slice::<u8>(0, 1).is_empty());
        let big = filled_slice((3 * HUGE_PAGE) / 8 + 3, 0xA5u64);
        assert_eq!(big.len(), (3 * HUGE_PAGE) / 8 + 3);
        assert!(big.iter().all(|&x| x == 0xA5));
        let opts = filled_slice::<Option<[u8; 20]>>(HUGE_PAGE / 10, None);
        assert!(opts.iter().all(Option::is_none));
    }
}
