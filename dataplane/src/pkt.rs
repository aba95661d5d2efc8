//! Packet buffers.
//!
//! [`PacketBuf`] is the shape of a DPDK mbuf as the pipeline uses it: a contiguous data region inside a
//! larger buffer, with headroom in front for the headers that encapsulation prepends (outer IP, UDP, ESP,
//! GRE) and tailroom behind for the ESP trailer and ICV, so that no stage copies the payload. The same
//! names as `rte_pktmbuf_prepend/adj/append/trim` are used so that the mbuf-backed implementation of the
//! DPDK issue is a thin wrapper.
//!
//! [`HeapPkt`] is the in-memory implementation used by the in-memory port, the tests and the benchmarks.

/// Headroom every packet gets on receive; enough for Ethernet + 802.1Q + IPv6 + UDP + ESP + GRE + IV
/// (14 + 4 + 40 + 8 + 8 + 8 + 16 = 98) with room to spare, the same 128 bytes as DPDK's default.
pub const HEADROOM: usize = 128;

/// Size of one packet buffer (headroom included), DPDK's default data room.
pub const BUF_SIZE: usize = 2048 + HEADROOM;

/// A packet's data region inside a buffer with headroom and tailroom.
///
/// Every method is bounds-checked and never panics: growing past the buffer returns `None` (or `false`)
/// and leaves the packet as it was.
pub trait PacketBuf {
    /// The packet's bytes.
    fn data(&self) -> &[u8];
    /// The packet's bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes in front of the data.
    fn headroom(&self) -> usize;
    /// Free bytes behind the data.
    fn tailroom(&self) -> usize;
    /// Grows the data region by `n` bytes at the front and returns them (contents unspecified).
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the front. Returns `false`, changing nothing, if the packet is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Grows the data region by `n` bytes at the back and returns them (contents unspecified).
    fn append(&mut self, n: usize) -> Option<&mut [u8]>;
    /// Removes `n` bytes from the back. Returns `false`, changing nothing, if the packet is shorter.
    fn trim(&mut self, n: usize) -> bool;
    /// A new, empty packet from the same pool, with the standard headroom; `None` when the pool is
    /// empty. This is how one packet becomes several (IPv4 fragmentation); a buffer that cannot do it
    /// keeps the default.
    fn new_like(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// The receiving NIC's verdict on the checksum of the frame's first IPv4 header (RX checksum
    /// offload): `Some(true)` good, `Some(false)` bad, `None` not checked. Taking it clears it, so that
    /// it never applies to a header found inside (after decapsulation). Default: `None`.
    fn take_rx_ipv4_csum(&mut self) -> Option<bool> {
        None
    }
    /// Asks the NIC to compute on transmit the checksum of the IPv4 header of `l3_len` bytes that
    /// follows `l2_len` bytes of link-layer header (TX checksum offload). When this returns `true` the
    /// caller sets the checksum field to zero; `false` (the default, or lengths the NIC cannot take):
    /// the caller computes the checksum.
    fn offload_tx_ipv4_csum(&mut self, l2_len: usize, l3_len: usize) -> bool {
        let _ = (l2_len, l3_len);
        false
    }
    /// The 802.1Q TCI the receiving NIC stripped from the frame (RX VLAN strip offload): the frame's
    /// data then starts with an untagged Ethernet header. Taking it clears it. Default: `None`, the tag
    /// (if any) is still in the frame.
    fn take_rx_vlan(&mut self) -> Option<u16> {
        None
    }
    /// Asks the NIC to insert the 802.1Q tag `tci` behind the MAC addresses on transmit (TX VLAN
    /// offload); the frame's data holds an untagged Ethernet header. `false` (the default): the caller
    /// inserts the tag.
    fn offload_tx_vlan(&mut self, tci: u16) -> bool {
        let _ = tci;
        false
    }

    /// Length of the data region.
    fn len(&self) -> usize {
        self.data().len()
    }
    /// Whether the data region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sets the data length to `len`, growing or shrinking at the back.
    fn set_len(&mut self, len: usize) -> bool {
        let cur = self.len();
        if len >= cur {
            self.append(len - cur).is_some()
        } else {
            self.trim(cur - len)
        }
    }
}

/// A heap-allocated packet buffer of [`BUF_SIZE`] bytes.
#[derive(Clone)]
pub struct HeapPkt {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl HeapPkt {
    /// An empty packet with [`HEADROOM`] bytes of headroom.
    pub fn new() -> Self {
        Self::with_capacity(BUF_SIZE)
    }

    /// An empty packet in a buffer of `size` bytes (at least [`HEADROOM`]).
    pub fn with_capacity(size: usize) -> Self {
        let size = size.max(HEADROOM);
        Self { buf: vec![0; size].into_boxed_slice(), start: HEADROOM, end: HEADROOM }
    }

    /// A packet holding a copy of `bytes` after the standard headroom; `None` if it does not fit.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let mut p = Self::new();
        p.append(bytes.len())?.copy_from_slice(bytes);
        Some(p)
    }

    /// Empties the packet and restores the standard headroom, for reuse from a pool.
    pub fn reset(&mut self) {
        self.start = HEADROOM.min(self.buf.len());
        self.end = self.start;
    }
}

impl Default for HeapPkt {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for HeapPkt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HeapPkt").field("len", &self.len()).field("headroom", &self.start).finish()
    }
}

impl PacketBuf for HeapPkt {
    fn new_like(&self) -> Option<Self> {
        Some(Self::with_capacity(self.buf.len()))
    }
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.start.checked_sub(n)?;
        self.start = start;
        Some(&mut self.buf[start..start + n])
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.start += n;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let end = self.end;
        self.end += n;
        Some(&mut self.buf[end..end + n])
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n > self.end - self.start {
            return false;
        }
        self.end -= n;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_and_shrink_stay_in_bounds() {
        let mut p = HeapPkt::from_bytes(&[1, 2, 3]).unwrap();
        assert_eq!(p.headroom(), HEADROOM);
        p.prepend(2).unwrap().copy_from_slice(&[9, 8]);
        assert_eq!(p.data(), &[9, 8, 1, 2, 3]);
        assert!(p.prepend(HEADROOM).is_none(), "only HEADROOM - 2 left");
        assert_eq!(p.data(), &[9, 8, 1, 2, 3], "a refused prepend changes nothing");
        assert!(p.adj(3));
        assert_eq!(p.data(), &[2, 3]);
        assert!(!p.adj(3));
        p.append(1).unwrap()[0] = 7;
        assert_eq!(p.data(), &[2, 3, 7]);
        assert!(p.append(p.tailroom() + 1).is_none());
        assert!(p.trim(3));
        assert!(p.is_empty());
        assert!(!p.trim(1));
        assert!(p.set_len(4));
        assert_eq!(p.len(), 4);
    }
}
