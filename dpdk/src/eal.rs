//! The environment abstraction layer: initialised once per process.
//!
//! `rte_eal_init` keeps pointers into its `argv` for the life of the process,
//! so the argument strings are leaked deliberately (a few hundred bytes, once).
//! DPDK cannot be initialised again after `rte_eal_cleanup`, so the state moves
//! one way: uninitialised -> running -> cleaned up, and [`Eal`] is the proof
//! that the EAL is running.

use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{check, DpdkError, Result};
use crate::ffi;
use crate::ids::{LcoreId, SocketId};

const UNINIT: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
const CLEANED: u8 = 3;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);

/// Proof that the EAL is initialised. Dropping it does not clean up; call
/// [`Eal::cleanup`] once every port is closed and every lcore joined.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

impl Eal {
    /// Initialises the EAL with `args` (without the program name; `roamlb` is
    /// prepended). Fails if the EAL was initialised before in this process.
    pub fn init<I, S>(args: I) -> Result<Eal>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        if STATE
            .compare_exchange(UNINIT, STARTING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(DpdkError::EalState(
                "the DPDK EAL can be initialised only once per process",
            ));
        }
        let mut owned = vec!["roamlb".to_owned()];
        owned.extend(args.into_iter().map(|s| s.as_ref().to_owned()));
        let mut ptrs: Vec<*mut c_char> = Vec::with_capacity(owned.len() + 1);
        for a in &owned {
            let c = CString::new(a.as_str()).map_err(|_| {
                STATE.store(UNINIT, Ordering::SeqCst);
                DpdkError::Invalid(format!("EAL argument {a:?} contains a NUL byte"))
            })?;
            ptrs.push(c.into_raw());
        }
        ptrs.push(std::ptr::null_mut());
        let argc = (ptrs.len() - 1) as c_int;
        // rte_eal_init may keep references into argv for the process lifetime.
        let argv: &'static mut [*mut c_char] = Box::leak(ptrs.into_boxed_slice());
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL,
        // all leaked so they outlive the EAL; STATE guarantees one call per process.
        let ret = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            // DPDK does not allow a second attempt after a failed init either.
            STATE.store(CLEANED, Ordering::SeqCst);
            return Err(DpdkError::from_rte_errno(format!(
                "rte_eal_init({})",
                owned[1..].join(" ")
            )));
        }
        STATE.store(RUNNING, Ordering::SeqCst);
        Ok(Eal { args: owned })
    }

    /// The arguments the EAL was started with (program name first).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Releases EAL resources (hugepage files, shared memory). Every port must
    /// be closed and every launched lcore joined first.
    pub fn cleanup(self) -> Result<()> {
        // SAFETY: the EAL is running (self exists), and consuming self means no
        // safe wrapper can be created from this Eal afterwards.
        let ret = unsafe { ffi::rte_eal_cleanup() };
        STATE.store(CLEANED, Ordering::SeqCst);
        check(|| "rte_eal_cleanup".to_owned(), ret).map(|_| ())
    }

    /// The lcore that called `rte_eal_init`.
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised; the call only reads EAL configuration.
        LcoreId(unsafe { ffi::rte_get_main_lcore() })
    }

    /// Every enabled lcore except the main one, in id order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        // SAFETY: EAL initialised; rte_get_next_lcore only reads its lcore table.
        let mut id = unsafe { ffi::rte_get_next_lcore(u32::MAX, 1, 0) };
        while (id as usize) < ffi::RTE_MAX_LCORE as usize {
            out.push(LcoreId(id));
            // SAFETY: as above.
            id = unsafe { ffi::rte_get_next_lcore(id, 1, 0) };
        }
        out
    }

    /// Whether `lcore` is enabled in this EAL.
    pub fn lcore_enabled(&self, lcore: LcoreId) -> bool {
        // SAFETY: EAL initialised; any id is accepted and range-checked by DPDK.
        unsafe { ffi::rte_lcore_is_enabled(lcore.0) != 0 }
    }

    /// The socket of the calling lcore.
    pub fn socket_id(&self) -> SocketId {
        // SAFETY: reads per-lcore data of the calling thread.
        SocketId(unsafe { ffi::rte_socket_id() } as i32)
    }

    /// Whether the EAL has hugepage-backed memory (false under `--no-huge`).
    pub fn has_hugepages(&self) -> bool {
        // SAFETY: EAL initialised; reads its internal configuration.
        unsafe { ffi::rte_eal_has_hugepages() != 0 }
    }
}

/// Sends DPDK's log to stderr instead of stdout (callable before init).
pub fn log_to_stderr() -> Result<()> {
    // SAFETY: rte_openlog_stream only stores the stream pointer; stderr is a
    // process-lifetime FILE*.
    let ret = unsafe { ffi::roamlb_log_to_stderr() };
    check(|| "rte_openlog_stream(stderr)".to_owned(), ret).map(|_| ())
}

/// The lcore id of the calling thread (`LCORE_ID_ANY` for non-EAL threads).
pub fn current_lcore() -> LcoreId {
    // SAFETY: reads a thread-local variable; valid on any thread.
    LcoreId(unsafe { ffi::rte_lcore_id() })
}

/// DPDK's version string, e.g. `DPDK 22.11.11`. Safe before init.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::roamlb_rte_version()) }
        .to_string_lossy()
        .into_owned()
}
