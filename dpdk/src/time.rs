//! The time-stamp counter: the packet path's clock.
//!
//! Workers compare TSC values against deadlines computed once at start-up
//! (e.g. the TX flush period in cycles), so no division or syscall happens per
//! packet.

use std::time::Duration;

use crate::ffi;

/// Reads the TSC.
#[inline]
pub fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: reads the cycle counter; no preconditions.
        unsafe { ffi::rte_rdtsc() }
    }
}

/// TSC ticks per second, as measured by the EAL. Zero before `Eal::init`.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL computed at init.
    unsafe { ffi::rte_get_tsc_hz() }
}

/// Converts a duration to TSC ticks at `hz` (saturating).
pub fn duration_to_tsc(d: Duration, hz: u64) -> u64 {
    let t = d.as_nanos().saturating_mul(hz as u128) / 1_000_000_000;
    t.min(u64::MAX as u128) as u64
}

/// A CPU relax hint for spin loops.
#[inline]
pub fn pause() {
    std::hint::spin_loop();
}

/// Sleeps the calling thread for `us` microseconds (a syscall: idle backoff
/// only, never between packets of a busy burst).
pub fn sleep_us(us: u32) {
    // SAFETY: rte_delay_us_sleep only sleeps via nanosleep.
    unsafe { ffi::rte_delay_us_sleep(us) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_conversion() {
        assert_eq!(
            duration_to_tsc(Duration::from_micros(100), 2_000_000_000),
            200_000
        );
        assert_eq!(
            duration_to_tsc(Duration::from_secs(u64::MAX), u64::MAX),
            u64::MAX
        );
    }
}
