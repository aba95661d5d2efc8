//! The Environment Abstraction Layer: started once per process, then lcores run closures.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{errno, strerror, DpdkError};

static STARTED: AtomicBool = AtomicBool::new(false);

/// The started EAL. One per process; [`Eal::cleanup`] releases DPDK's resources at exit.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

type Job = Box<dyn FnOnce() -> i32 + Send>;

extern "C" fn run_job(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<Job>` leaked by `Eal::launch` for this launch only; it is taken back
    // exactly once, here.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    job()
}

impl Eal {
    /// Starts the EAL with `args` (without the program name). Fails if it was started before in this
    /// process, or if DPDK refuses the arguments (it says why on stderr as well).
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyStarted);
        }
        let mut owned = vec![CString::new("dataplane").unwrap_or_default()];
        for a in args {
            owned.push(super::c_name(a)?);
        }
        // EAL keeps pointers into argv for the life of the process (and may permute it): leak it.
        let mut argv: Vec<*mut c_char> = owned.into_iter().map(CString::into_raw).collect();
        let argc = argv.len() as c_int;
        let ptr = argv.as_mut_ptr();
        std::mem::forget(argv);
        // SAFETY: `ptr` points to argc valid NUL-terminated strings; neither they nor the array are
        // ever freed, as EAL requires.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, ptr) };
        if ret < 0 {
            return Err(DpdkError::EalInit { args: args.to_vec(), reason: strerror(errno()) });
        }
        Ok(Eal { _private: () })
    }

    /// The worker lcores (every enabled lcore but the main one), in order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        // SAFETY: pure queries of the EAL's lcore configuration, valid after init.
        let mut i = unsafe { dpdk_sys::rte_get_next_lcore(u32::MAX, 1, 0) };
        while i < dpdk_sys::RTE_MAX_LCORE {
            out.push(i);
            // SAFETY: as above.
            i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
        }
        out
    }

    /// The main lcore (the one this thread runs on).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: pure query, valid after init.
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// NUMA socket of `lcore`.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: pure query; DPDK returns SOCKET_ID_ANY-like values for unknown lcores.
        unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) }
    }

    /// Runs `job` on worker lcore `lcore`, which must be idle. Its return value is what
    /// [`Eal::wait_all`] collects.
    pub fn launch(&self, lcore: u32, job: impl FnOnce() -> i32 + Send + 'static) -> Result<(), DpdkError> {
        let job: Box<Job> = Box::new(Box::new(job));
        let arg = Box::into_raw(job).cast::<c_void>();
        // SAFETY: `run_job` matches lcore_function_t and takes ownership of `arg` when it runs.
        let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(run_job), arg, lcore) };
        if ret < 0 {
            // SAFETY: the launch failed, so `run_job` will never see `arg`: take the box back.
            drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
            return Err(DpdkError::Call {
                call: "rte_eal_remote_launch",
                object: format!("lcore {lcore}"),
                reason: strerror(-ret),
            });
        }
        Ok(())
    }

    /// Waits for every launched job to return.
    pub fn wait_all(&self) {
        // SAFETY: called from the main lcore; waits for the worker lcores.
        unsafe { dpdk_sys::rte_eal_mp_wait_lcore() };
    }

    /// Releases the EAL's resources. Every mempool, ring and port must be gone.
    pub fn cleanup(self) {
        // SAFETY: consumes the only handle; the caller has dropped everything DPDK allocated.
        unsafe { dpdk_sys::rte_eal_cleanup() };
    }
}

/// The lcore this thread runs on (`u32::MAX` for a thread that is not an EAL lcore).
pub fn lcore_id() -> u32 {
    // SAFETY: reads a per-thread variable.
    unsafe { dpdk_sys::dp_lcore_id() }
}

/// The CPU's timestamp counter.
#[inline]
pub fn tsc_now() -> u64 {
    // SAFETY: reads the TSC; no memory is touched.
    unsafe { dpdk_sys::dp_rdtsc() }
}

/// Timestamp-counter ticks per second, as the EAL measured them.
pub fn tsc_hz() -> u64 {
    // SAFETY: pure query, valid after init.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}
