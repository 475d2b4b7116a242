//! One error type for everything DPDK reports.
//!
//! DPDK functions fail in two styles: a negative errno as the return value, or
//! `NULL`/`-1` with the reason in the per-lcore `rte_errno`. Both become a
//! [`DpdkError::Call`] that names the operation and carries `rte_strerror`'s
//! text, so an operator reads "rte_eth_dev_configure(port 0): Invalid argument"
//! rather than a number.

use std::ffi::CStr;

use crate::ffi;

/// A failed DPDK operation, or a request this safe layer refused before
/// calling DPDK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    /// A DPDK call returned an error.
    #[error("{op}: {message} (errno {errno})")]
    Call {
        /// The DPDK function and its main argument, e.g. `rte_eth_dev_start(port 1)`.
        op: String,
        /// The positive errno value.
        errno: i32,
        /// `rte_strerror(errno)`.
        message: String,
    },
    /// The request was refused before reaching DPDK.
    #[error("{0}")]
    Invalid(String),
    /// The environment abstraction layer was used before `Eal::init` or twice.
    #[error("{0}")]
    EalState(&'static str),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, DpdkError>;

/// `rte_strerror(errno)` as an owned string.
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a static or
    // per-lcore buffer holding a NUL-terminated string; we copy it out at once.
    unsafe {
        let p = ffi::rte_strerror(errno);
        if p.is_null() {
            return format!("errno {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// The calling thread's `rte_errno`.
pub fn last_errno() -> i32 {
    // SAFETY: reads a thread-local int; valid on any thread.
    unsafe { ffi::roamlb_rte_errno() }
}

impl DpdkError {
    /// Builds the error for an operation from a positive or negative errno.
    pub fn from_errno(op: impl Into<String>, errno: i32) -> Self {
        let errno = errno.abs();
        DpdkError::Call {
            op: op.into(),
            errno,
            message: strerror(errno),
        }
    }

    /// Builds the error for an operation that reported through `rte_errno`.
    pub fn from_rte_errno(op: impl Into<String>) -> Self {
        Self::from_errno(op, last_errno())
    }

    /// The errno value, when DPDK reported one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            DpdkError::Call { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Turns a `ret < 0 => -errno` return value into a `Result`.
pub(crate) fn check(op: impl FnOnce() -> String, ret: i32) -> Result<i32> {
    if ret < 0 {
        Err(DpdkError::from_errno(op(), ret))
    } else {
        Ok(ret)
    }
}
