//! Packet pools and the owned mbuf.

use core::ptr::NonNull;

use dpdk_sys::{rte_mbuf, rte_mempool};

use super::{c_name, last_error, DpdkError};
use crate::pkt::{PacketBuf, BUF_SIZE, HEADROOM};

const _: () = assert!(HEADROOM == dpdk_sys::RTE_PKTMBUF_HEADROOM as usize, "pkt::HEADROOM must be DPDK's");

/// A pool of packet buffers (`rte_pktmbuf_pool_create`), each with [`HEADROOM`] bytes of headroom and
/// [`BUF_SIZE`] bytes in all. Thread-safe; workers allocate and free through their lcore's cache.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: a DPDK mempool is a multi-producer, multi-consumer structure meant to be shared by lcores.
unsafe impl Send for Mempool {}
// SAFETY: as above; every method takes `&self` and DPDK synchronises internally.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// A pool of `size` mbufs with a per-lcore cache of `cache` on NUMA `socket` (`None`: any).
    pub fn new(name: &str, size: u32, cache: u32, socket: Option<u32>) -> Result<Self, DpdkError> {
        let cname = c_name(name)?;
        let socket = socket.map_or(dpdk_sys::SOCKET_ID_ANY, |s| s as i32);
        // SAFETY: a valid C string; the EAL is started (callers hold an `Eal`, or creation fails with
        // an error rather than undefined behaviour).
        let ptr = unsafe { dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, BUF_SIZE as u16, socket) };
        let ptr = NonNull::new(ptr).ok_or_else(|| last_error("rte_pktmbuf_pool_create", format!("mempool {name}")))?;
        Ok(Self { ptr, name: name.to_owned(), size })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many mbufs it holds in all.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs not in the pool (held by packets, port descriptor rings or software rings).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is alive; the count is a racy but safe read.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Mbufs available (in the pool's ring and the lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: as for `in_use`.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// An empty mbuf with the standard headroom, or `None` if the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive; the result is null or an mbuf we now own.
        unsafe { Mbuf::from_raw(dpdk_sys::dp_pktmbuf_alloc(self.ptr.as_ptr())) }
    }

    /// An mbuf holding a copy of `bytes`, or `None` if the pool is empty or `bytes` does not fit.
    pub fn alloc_from(&self, bytes: &[u8]) -> Option<Mbuf> {
        let mut m = self.alloc()?;
        m.append(bytes.len())?.copy_from_slice(bytes);
        Some(m)
    }

    pub(super) fn as_ptr(&self) -> *mut rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // Freeing a pool while an mbuf of it is still out would leave that mbuf dangling; such a pool
        // is leaked instead (and the caller's occupancy check reports it).
        if self.in_use() == 0 {
            // SAFETY: no mbuf of the pool is outstanding, and `self` is the only handle.
            unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
        }
    }
}

/// One owned, single-segment mbuf. Dropping it returns it to its pool; [`Mbuf::into_raw`] hands the
/// ownership to DPDK (a transmit or a ring enqueue).
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an mbuf has one owner at a time (this value) and may be freed from any thread; its pool is
// thread-safe.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of `m` (`None` if null).
    ///
    /// # Safety
    /// `m` is null or an mbuf that nothing else owns or will free.
    pub(super) unsafe fn from_raw(m: *mut rte_mbuf) -> Option<Self> {
        NonNull::new(m).map(Mbuf)
    }

    /// Gives up ownership: the caller (DPDK) frees it.
    pub(super) fn into_raw(self) -> *mut rte_mbuf {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }

    /// The mbuf, still owned by `self`, for a DPDK call that works on it in place.
    pub(super) fn as_ptr(&self) -> *mut rte_mbuf {
        self.0.as_ptr()
    }

    fn raw(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf for as long as `self` lives.
        unsafe { self.0.as_ref() }
    }

    /// Number of segments (always 1 for what the ports hand out).
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Empties the packet and restores the standard headroom (`rte_pktmbuf_reset`).
    pub fn reset(&mut self) {
        // SAFETY: we own the mbuf.
        unsafe { dpdk_sys::dp_pktmbuf_reset(self.0.as_ptr()) }
    }
}

impl core::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Mbuf").field("len", &self.len()).field("headroom", &self.headroom()).finish()
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and give it back exactly once.
        unsafe { dpdk_sys::dp_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    fn new_like(&self) -> Option<Self> {
        // SAFETY: `pool` is the live mempool this mbuf came from; DPDK returns null when it is empty.
        unsafe { Mbuf::from_raw(dpdk_sys::dp_pktmbuf_alloc(self.raw().pool)) }
    }

    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer (DPDK invariant,
        // kept by every mutation below), and `&self` keeps it alive and unaliased by writers.
        unsafe {
            core::slice::from_raw_parts(m.buf_addr.cast::<u8>().add(usize::from(m.data_off)), usize::from(m.data_len))
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, len) = (m.buf_addr.cast::<u8>(), usize::from(m.data_len));
        let off = usize::from(m.data_off);
        // SAFETY: as in `data`, and `&mut self` makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    #[inline]
    fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    #[inline]
    fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len) - usize::from(m.data_off) - usize::from(m.data_len)
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let len = u16::try_from(n).ok()?;
        // SAFETY: we own the mbuf; DPDK returns null, changing nothing, when the headroom is short.
        let p = unsafe { dpdk_sys::dp_pktmbuf_prepend(self.0.as_ptr(), len) };
        // SAFETY: on success `p` points to the `n` new bytes at the front of the data, inside the buffer.
        (!p.is_null()).then(|| unsafe { core::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    fn adj(&mut self, n: usize) -> bool {
        let Ok(len) = u16::try_from(n) else { return false };
        // SAFETY: we own the mbuf; DPDK returns null, changing nothing, when the data is shorter.
        !unsafe { dpdk_sys::dp_pktmbuf_adj(self.0.as_ptr(), len) }.is_null()
    }

    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let len = u16::try_from(n).ok()?;
        // SAFETY: we own the mbuf; DPDK returns null, changing nothing, when the tailroom is short.
        let p = unsafe { dpdk_sys::dp_pktmbuf_append(self.0.as_ptr(), len) };
        // SAFETY: on success `p` points to the `n` new bytes at the back of the data, inside the buffer.
        (!p.is_null()).then(|| unsafe { core::slice::from_raw_parts_mut(p.cast::<u8>(), n) })
    }

    fn trim(&mut self, n: usize) -> bool {
        let Ok(len) = u16::try_from(n) else { return false };
        // SAFETY: we own the mbuf; DPDK returns -1, changing nothing, when the data is shorter.
        unsafe { dpdk_sys::dp_pktmbuf_trim(self.0.as_ptr(), len) == 0 }
    }

    #[inline]
    fn take_rx_ipv4_csum(&mut self) -> Option<bool> {
        // SAFETY: we own the mbuf; `&mut self` makes this the only reference.
        let m = unsafe { self.0.as_mut() };
        let mask = u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_MASK);
        let verdict = match m.ol_flags & mask {
            f if f == u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD) => Some(true),
            f if f == u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD) => Some(false),
            // UNKNOWN (not checked) or NONE (the NIC saw a checksum it could not judge).
            _ => None,
        };
        m.ol_flags &= !mask;
        verdict
    }

    #[inline]
    fn offload_tx_ipv4_csum(&mut self, l2_len: usize, l3_len: usize) -> bool {
        // The mbuf's length fields are 7 and 9 bits wide.
        if l2_len >= 1 << 7 || l3_len >= 1 << 9 {
            return false;
        }
        // SAFETY: we own the mbuf; `&mut self` makes this the only reference.
        let m = unsafe { self.0.as_mut() };
        m.ol_flags |= dpdk_sys::RTE_MBUF_F_TX_IPV4 | dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM;
        // SAFETY: a pure function of its arguments.
        m.__bindgen_anon_3.tx_offload = unsafe { dpdk_sys::dp_mbuf_tx_offload(l2_len as u64, l3_len as u64) };
        true
    }

    #[inline]
    fn take_rx_vlan(&mut self) -> Option<u16> {
        // SAFETY: we own the mbuf; `&mut self` makes this the only reference.
        let m = unsafe { self.0.as_mut() };
        let stripped = m.ol_flags & u64::from(dpdk_sys::RTE_MBUF_F_RX_VLAN_STRIPPED) != 0;
        m.ol_flags &= !u64::from(dpdk_sys::RTE_MBUF_F_RX_VLAN | dpdk_sys::RTE_MBUF_F_RX_VLAN_STRIPPED);
        stripped.then_some(m.vlan_tci)
    }

    #[inline]
    fn offload_tx_vlan(&mut self, tci: u16) -> bool {
        // SAFETY: we own the mbuf; `&mut self` makes this the only reference.
        let m = unsafe { self.0.as_mut() };
        m.ol_flags |= dpdk_sys::RTE_MBUF_F_TX_VLAN;
        m.vlan_tci = tci;
        true
    }
}
