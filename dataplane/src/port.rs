//! Ports as the worker sees them: receive a burst, transmit a burst.
//!
//! The DPDK issue implements [`Port`] over `rte_eth_rx_burst`/`rte_eth_tx_burst`; [`MemPort`] is the
//! in-memory port used by the tests, the replay tool and the benchmarks. Semantics follow DPDK's: a
//! transmit call takes the packets it can and leaves the rest with the caller, who counts them as
//! [`crate::drop::DropReason::TxFull`] and frees them.

use std::collections::VecDeque;

use crate::pkt::PacketBuf;

/// One queue pair of a port, owned by one worker.
pub trait Port {
    /// The packet buffer type this port receives into and transmits from.
    type Buf: PacketBuf;

    /// Appends up to `max` received packets to `out` and returns how many.
    fn rx_burst(&mut self, out: &mut Vec<Self::Buf>, max: usize) -> usize;

    /// Takes packets from the front of `pkts` for transmission and returns how many were taken; the rest
    /// stay in `pkts`.
    fn tx_burst(&mut self, pkts: &mut Vec<Self::Buf>) -> usize;
}

/// An in-memory port: the test pushes frames into `rx` and reads what the pipeline sent from `tx`.
#[derive(Debug)]
pub struct MemPort<P> {
    /// Frames waiting to be received.
    pub rx: VecDeque<P>,
    /// Frames transmitted, oldest first.
    pub tx: Vec<P>,
    /// How many frames `tx` holds before transmission is refused (a full TX ring).
    pub tx_capacity: usize,
}

impl<P> MemPort<P> {
    /// An empty port whose transmit side holds `tx_capacity` frames.
    pub fn new(tx_capacity: usize) -> Self {
        Self { rx: VecDeque::new(), tx: Vec::with_capacity(tx_capacity), tx_capacity }
    }
}

impl<P: PacketBuf> Port for MemPort<P> {
    type Buf = P;

    fn rx_burst(&mut self, out: &mut Vec<P>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }

    fn tx_burst(&mut self, pkts: &mut Vec<P>) -> usize {
        let n = pkts.len().min(self.tx_capacity - self.tx.len().min(self.tx_capacity));
        self.tx.extend(pkts.drain(..n));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pkt::HeapPkt;

    #[test]
    fn full_tx_ring_leaves_packets_with_caller() {
        let mut port = MemPort::<HeapPkt>::new(2);
        let mut burst: Vec<_> = (0..3u8).map(|i| HeapPkt::from_bytes(&[i]).unwrap()).collect();
        assert_eq!(port.tx_burst(&mut burst), 2);
        assert_eq!(burst.len(), 1);
        assert_eq!(burst[0].data(), &[2]);
        assert_eq!(port.tx_burst(&mut burst), 0);
        port.rx.extend(port.tx.drain(..));
        let mut got = Vec::new();
        assert_eq!(port.rx_burst(&mut got, 1), 1);
        assert_eq!(got[0].data(), &[0]);
    }
}
