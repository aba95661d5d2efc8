//! The DPDK I/O layer: a safe owner of everything `dpdk-sys` hands out (feature `dpdk`).
//!
//! Layer: between `dpdk-sys` (raw FFI) and the worker. Contract:
//! - [`Eal`] starts DPDK's environment once per process from an argument list (a hardware profile
//!   makes it) and launches closures on worker lcores.
//! - [`Mempool`] creates packet pools and reports their occupancy; [`Mbuf`] owns exactly one mbuf and
//!   returns it to its pool when dropped, so no path can leak or double-free one (the tests count the
//!   pool's occupancy after rx → tx, drops and punts). It implements [`crate::pkt::PacketBuf`], so the
//!   pipeline runs on mbufs in place, without copying the payload.
//! - [`EthDev`] configures and starts a port (RSS over several RX queues where asked) and hands out
//!   one [`DpdkPort`] per queue pair; a `DpdkPort` is a [`crate::port::Port`] owned by one worker.
//! - Checksum and VLAN offloads: a port runs with RX and TX IPv4 header checksum offload and with
//!   RX VLAN strip and TX VLAN insert where the device offers them ([`EthDev::offloads`]);
//!   [`publish_offloads`] tells the pipeline which ports compute outer checksums and insert the
//!   subinterface's 802.1Q tag on transmit, and [`Mbuf`] carries the NIC's RX checksum verdict and the
//!   tag it stripped to it. Where a port offers none, the pipeline does the same in software.
//! - [`MbufRing`] is a lock-free `rte_ring` of mbufs; [`EthDev::from_rings`] makes a `net_ring` port
//!   over two of them, which is how the tests and the benchmark feed a worker without a kernel.
//!
//! - [`CryptodevEngine`] runs ESP's AES-GCM on a DPDK cryptodev queue pair behind the batch
//!   [`crate::crypto::CryptoEngine`] interface; [`CryptoSetup`] starts the devices a hardware profile names.
//! - [`runtime::Runtime`] starts all of it from a hardware profile (what `dp-run` and `dmvpnd` share).
//! - [`lcore::run`] is the loop a worker lcore runs: busy or adaptive polling, busy/idle cycle counters,
//!   a drain on stop.
//!
//! Every `unsafe` block of the crate that touches DPDK lives under this module, each with its
//! `SAFETY:` argument. Only single-segment mbufs are accepted (ports run without scatter and pools
//! hold [`crate::pkt::BUF_SIZE`]-byte buffers); a multi-segment mbuf is dropped on receive and counted.

mod cryptodev;
mod eal;
mod ethdev;
pub mod lcore;
mod mbuf;
mod ring;
pub mod runtime;

pub use cryptodev::{CryptoDev, CryptoDevSetup, CryptoSetup, CryptodevCounters, CryptodevEngine};
pub use eal::{lcore_id, tsc_hz, tsc_now, Eal};
pub use ethdev::{publish_offloads, DpdkPort, EthDev, EthStats, Offloads, PortSetup, QueueCounters};
pub use mbuf::{Mbuf, Mempool};
pub use ring::MbufRing;

use core::ffi::CStr;

use thiserror::Error;

/// What went wrong in a DPDK call, naming the object and the call.
#[derive(Debug, Error)]
pub enum DpdkError {
    /// `rte_eal_init` refused its arguments or the environment.
    #[error("EAL init with {args:?} failed: {reason}")]
    EalInit {
        /// The arguments given.
        args: Vec<String>,
        /// `rte_strerror(rte_errno)`.
        reason: String,
    },
    /// The EAL was already started in this process (DPDK allows one start per process).
    #[error("EAL already started in this process")]
    EalAlreadyStarted,
    /// A name given to DPDK contains a NUL byte.
    #[error("name {0:?} contains a NUL byte")]
    BadName(String),
    /// A DPDK call on a named object failed.
    #[error("{call} on {object} failed: {reason}")]
    Call {
        /// The DPDK function.
        call: &'static str,
        /// The pool, ring, port or lcore it was called on.
        object: String,
        /// `rte_strerror` of the error code.
        reason: String,
    },
    /// A port or queue that the device does not have.
    #[error("port {port}: {what}")]
    Port {
        /// Port name.
        port: String,
        /// What it lacks.
        what: String,
    },
}

/// `rte_strerror(code)` as a string (`code` positive, as `rte_errno` or a negated return value).
fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated string.
    let s = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(code)) };
    format!("{} ({code})", s.to_string_lossy())
}

/// This thread's `rte_errno`.
fn errno() -> i32 {
    // SAFETY: reads a per-thread variable.
    unsafe { dpdk_sys::dp_errno() }
}

/// The error of the last failed DPDK call on this thread.
fn last_error(call: &'static str, object: impl Into<String>) -> DpdkError {
    DpdkError::Call { call, object: object.into(), reason: strerror(errno()) }
}

/// Maps a DPDK return value (negative errno on failure) to a result.
fn check(ret: i32, call: &'static str, object: impl FnOnce() -> String) -> Result<(), DpdkError> {
    if ret < 0 {
        Err(DpdkError::Call { call, object: object(), reason: strerror(-ret) })
    } else {
        Ok(())
    }
}

fn c_name(name: &str) -> Result<std::ffi::CString, DpdkError> {
    std::ffi::CString::new(name).map_err(|_| DpdkError::BadName(name.to_owned()))
}

#[cfg(test)]
mod tests;
