//! Per-worker counters: written by exactly one worker, read by management at any time without stopping
//! it (summed over workers by the reader). Each worker's block is cache-padded so that workers never
//! share a line.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::drop::DropReason;

/// A counter with one writer. `add` is a relaxed load and store, not an atomic read-modify-write: only
/// the owning worker writes, so no increment is lost, and readers see a value at most one burst old.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Call only from the owning worker.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Everything one worker counts.
#[derive(Debug)]
#[repr(align(128))]
pub struct WorkerCounters {
    /// Packets received from all ports.
    pub rx_packets: Counter,
    /// Bytes received from all ports.
    pub rx_bytes: Counter,
    /// Packets handed to a port for transmission.
    pub tx_packets: Counter,
    /// Bytes handed to a port for transmission.
    pub tx_bytes: Counter,
    /// Packets punted to the control plane (NHRP, IKE, ARP/ND replies, redirect triggers...).
    pub punted: Counter,
    /// Packets decrypted and authenticated.
    pub esp_decrypted: Counter,
    /// Packets encrypted.
    pub esp_encrypted: Counter,
    /// Packets handed to the worker that owns their SA.
    pub handed_off: Counter,
    /// IPv4 packets fragmented to fit a tunnel or port MTU (RFC 791; IOS's fragmentation before
    /// encryption).
    pub fragmented: Counter,
    /// ICMP errors generated (time exceeded, unreachable, fragmentation needed / packet too big).
    pub icmp_sent: Counter,
    /// TCP SYNs whose MSS option was clamped.
    pub mss_clamped: Counter,
    /// Drops, indexed by [`DropReason`].
    pub drops: [Counter; DropReason::COUNT],
}

impl Default for WorkerCounters {
    fn default() -> Self {
        Self {
            rx_packets: Counter::default(),
            rx_bytes: Counter::default(),
            tx_packets: Counter::default(),
            tx_bytes: Counter::default(),
            punted: Counter::default(),
            handed_off: Counter::default(),
            fragmented: Counter::default(),
            esp_decrypted: Counter::default(),
            esp_encrypted: Counter::default(),
            icmp_sent: Counter::default(),
            mss_clamped: Counter::default(),
            drops: core::array::from_fn(|_| Counter::default()),
        }
    }
}

impl WorkerCounters {
    /// Counts one drop.
    #[inline]
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason as usize].inc();
    }

    /// Drops counted for `reason`.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].get()
    }

    /// Non-zero drop counters, by name, for display.
    pub fn nonzero_drops(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL.iter().map(|r| (r.name(), self.drops_for(*r))).filter(|(_, n)| *n != 0).collect()
    }
}
