//! A lock-free ring of mbufs (`rte_ring`), multi-producer and multi-consumer.

use core::ptr::NonNull;
use std::ffi::c_void;

use dpdk_sys::rte_ring;

use super::{c_name, last_error, DpdkError, Mbuf};

/// An `rte_ring` that owns the mbufs in it: they are freed when the ring is dropped.
#[derive(Debug)]
pub struct MbufRing {
    ptr: NonNull<rte_ring>,
    name: String,
}

// SAFETY: the ring is created multi-producer/multi-consumer, so any thread may enqueue or dequeue
// through `&self`; the mbufs in it are `Send`.
unsafe impl Send for MbufRing {}
// SAFETY: as above.
unsafe impl Sync for MbufRing {}

impl MbufRing {
    /// A ring holding exactly `capacity` mbufs, on NUMA `socket` (`None`: any).
    pub fn new(name: &str, capacity: u32, socket: Option<u32>) -> Result<Self, DpdkError> {
        let cname = c_name(name)?;
        let socket = socket.map_or(dpdk_sys::SOCKET_ID_ANY, |s| s as i32);
        // SAFETY: a valid C string; flags ask for MP/MC (the default) with an exact size.
        let ptr = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), capacity, socket, dpdk_sys::RING_F_EXACT_SZ) };
        let ptr = NonNull::new(ptr).ok_or_else(|| last_error("rte_ring_create", format!("ring {name}")))?;
        Ok(Self { ptr, name: name.to_owned() })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Mbufs in the ring now.
    pub fn len(&self) -> usize {
        // SAFETY: the ring is alive; the count is a racy but safe read.
        unsafe { dpdk_sys::dp_ring_count(self.ptr.as_ptr()) as usize }
    }

    /// Whether the ring is empty now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves as many mbufs as fit from the front of `pkts` into the ring; returns how many.
    pub fn enqueue(&self, pkts: &mut Vec<Mbuf>) -> usize {
        let n = pkts.len().min(u32::MAX as usize) as u32;
        // SAFETY: `Mbuf` is a transparent non-null `*mut rte_mbuf`, so the Vec's buffer is an array of
        // `n` mbuf pointers; the ring takes the first `ret` of them.
        let ret = unsafe { dpdk_sys::dp_ring_enqueue_burst(self.ptr.as_ptr(), pkts.as_ptr().cast(), n) } as usize;
        pkts.drain(..ret).for_each(|m| {
            m.into_raw();
        });
        ret
    }

    /// Moves up to `max` mbufs from the ring to the back of `out`; returns how many.
    pub fn dequeue(&self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        out.reserve(max);
        let spare = out.spare_capacity_mut();
        let max = max.min(spare.len()).min(u32::MAX as usize) as u32;
        // SAFETY: `spare` has room for `max` pointers; the ring writes `ret` mbuf pointers, each one
        // owned by the ring until now.
        let ret = unsafe {
            dpdk_sys::dp_ring_dequeue_burst(self.ptr.as_ptr(), spare.as_mut_ptr().cast::<*mut c_void>(), max)
        };
        // SAFETY: the first `ret` slots were just initialised with valid, owned, non-null mbufs.
        unsafe { out.set_len(out.len() + ret as usize) };
        ret as usize
    }

    pub(super) fn as_ptr(&self) -> *mut rte_ring {
        self.ptr.as_ptr()
    }
}

impl Drop for MbufRing {
    fn drop(&mut self) {
        let mut rest = Vec::new();
        while self.dequeue(&mut rest, 256) > 0 {
            rest.clear();
        }
        // SAFETY: the ring is empty and `self` is its only handle (ports made from it hold an `Arc`).
        unsafe { dpdk_sys::rte_ring_free(self.ptr.as_ptr()) };
    }
}
