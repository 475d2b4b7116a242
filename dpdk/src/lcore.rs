//! Launching closures on worker lcores, with panics caught at the FFI edge.
//!
//! `rte_eal_remote_launch` runs a C function on a worker lcore. Unwinding out
//! of an `extern "C"` function aborts the process, so the trampoline catches a
//! panic, records its message, and returns -1; [`LcoreHandle::join`] turns
//! that into [`LcoreError::Panicked`] for the management core to report.
//! (Release builds use `panic = "abort"`: a panic in production is a bug, and
//! the service manager restarts the appliance.)

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use crate::error::DpdkError;
use crate::ffi;
use crate::ids::LcoreId;

/// Why a launched lcore function did not return normally.
#[derive(Debug, thiserror::Error)]
pub enum LcoreError {
    /// The launch itself failed (lcore busy or not a worker).
    #[error("launching on {0}: {1}")]
    Launch(LcoreId, DpdkError),
    /// The function panicked.
    #[error("{lcore} panicked: {message}")]
    Panicked {
        /// Where.
        lcore: LcoreId,
        /// The panic message.
        message: String,
    },
}

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

struct Payload {
    job: Job,
    panic: Arc<Mutex<Option<String>>>,
}

/// A function running on a worker lcore.
#[derive(Debug)]
pub struct LcoreHandle {
    lcore: LcoreId,
    panic: Arc<Mutex<Option<String>>>,
    joined: bool,
}

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Box<Payload> leaked by launch() for exactly this call.
    let payload = unsafe { Box::from_raw(arg as *mut Payload) };
    let Payload { job, panic } = *payload;
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(code) => code,
        Err(e) => {
            let msg = if let Some(s) = e.downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = e.downcast_ref::<String>() {
                s.clone()
            } else {
                "non-string panic payload".to_owned()
            };
            if let Ok(mut slot) = panic.lock() {
                *slot = Some(msg);
            }
            -1
        }
    }
}

/// Runs `f` on worker `lcore`. The returned handle must be joined before the
/// ports the function uses are stopped.
pub fn launch<F>(lcore: LcoreId, f: F) -> Result<LcoreHandle, LcoreError>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let panic = Arc::new(Mutex::new(None));
    let payload = Box::new(Payload {
        job: Box::new(f),
        panic: panic.clone(),
    });
    let arg = Box::into_raw(payload) as *mut c_void;
    // SAFETY: trampoline matches lcore_function_t; arg is a leaked Box that the
    // trampoline reclaims exactly once, or we reclaim below if launch fails.
    let ret = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), arg, lcore.0) };
    if ret != 0 {
        // SAFETY: the launch failed, so the trampoline never received arg.
        drop(unsafe { Box::from_raw(arg as *mut Payload) });
        return Err(LcoreError::Launch(
            lcore,
            DpdkError::from_errno(format!("rte_eal_remote_launch({lcore})"), ret),
        ));
    }
    Ok(LcoreHandle {
        lcore,
        panic,
        joined: false,
    })
}

impl LcoreHandle {
    /// The lcore.
    pub fn lcore(&self) -> LcoreId {
        self.lcore
    }

    /// Waits for the function to return; its return code, or the panic.
    pub fn join(mut self) -> Result<i32, LcoreError> {
        self.joined = true;
        // SAFETY: waits for the lcore we launched on; no other precondition.
        let code = unsafe { ffi::rte_eal_wait_lcore(self.lcore.0) };
        let panicked = self.panic.lock().ok().and_then(|mut s| s.take());
        match panicked {
            Some(message) => Err(LcoreError::Panicked {
                lcore: self.lcore,
                message,
            }),
            None => Ok(code),
        }
    }
}

impl Drop for LcoreHandle {
    fn drop(&mut self) {
        if !self.joined {
            // Never leave a running lcore behind a dropped handle: its closure
            // may borrow resources that are about to be released.
            // SAFETY: as in join.
            unsafe { ffi::rte_eal_wait_lcore(self.lcore.0) };
        }
    }
}
