//! Ethernet ports: configuration, start and stop, and the per-queue [`Port`] a worker polls.

use std::mem::MaybeUninit;
use std::sync::Arc;

use dpdk_sys::{rte_eth_conf, rte_eth_dev_info, rte_eth_stats, rte_ether_addr, rte_mbuf};

use super::{c_name, check, DpdkError, Mbuf, MbufRing, Mempool};
use crate::counters::Counter;
use crate::ids::PortId;
use crate::pkt::PacketBuf;
use crate::port::Port;
use crate::tables::{PortConfig, TablesError, TablesPublisher};
use crate::worker::MAX_BURST;

/// RSS over the IP addresses only (`RTE_ETH_RSS_IP`: IPv4, fragmented and other IPv4, IPv6, fragmented
/// and other IPv6, IPv6 with extension headers; bits 2, 3, 7, 8, 9, 13, 15 of `rte_ethdev.h`). ESP and
/// GRE have no ports, so the addresses are what spreads spokes over queues.
const RSS_IP: u64 = (1 << 2) | (1 << 3) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 13) | (1 << 15);

/// How to set a port up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSetup {
    /// RX queues (RSS spreads flows over them when there are several).
    pub rx_queues: u16,
    /// TX queues (one per worker).
    pub tx_queues: u16,
    /// Descriptors per RX queue.
    pub rx_desc: u16,
    /// Descriptors per TX queue.
    pub tx_desc: u16,
}

/// One queue's counters: one writer (the worker polling it), read by management at any time.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct QueueCounters {
    /// Packets received on this RX queue.
    pub rx_packets: Counter,
    /// Bytes received on this RX queue.
    pub rx_bytes: Counter,
    /// Multi-segment packets dropped on receive (the pipeline takes single segments only).
    pub rx_multiseg_dropped: Counter,
    /// Packets the TX queue took.
    pub tx_packets: Counter,
    /// Bytes the TX queue took.
    pub tx_bytes: Counter,
    /// Packets the TX queue refused (ring full); the worker drops them as `TxFull`.
    pub tx_refused: Counter,
}

/// The device's own counters (`rte_eth_stats_get`), for the whole port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EthStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Packets the device dropped because no RX descriptor was free (the workers were too slow).
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Receives that found the mempool empty.
    pub rx_nombuf: u64,
}

/// `RTE_ETH_RX_OFFLOAD_IPV4_CKSUM` (a `RTE_BIT64` macro, which bindgen cannot evaluate).
const RX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
/// `RTE_ETH_TX_OFFLOAD_IPV4_CKSUM`.
const TX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
/// `RTE_ETH_RX_OFFLOAD_VLAN_STRIP`.
const RX_OFFLOAD_VLAN_STRIP: u64 = 1 << 0;
/// `RTE_ETH_TX_OFFLOAD_VLAN_INSERT`.
const TX_OFFLOAD_VLAN_INSERT: u64 = 1 << 0;

/// The checksum and VLAN offloads a port was started with: each one the device offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offloads {
    /// The NIC checks received IPv4 header checksums (mbuf flags `RTE_MBUF_F_RX_IP_CKSUM_*`).
    pub rx_ipv4_csum: bool,
    /// The NIC computes IPv4 header checksums of transmitted packets that ask for it.
    pub tx_ipv4_csum: bool,
    /// The NIC removes the 802.1Q tag of received frames and reports it in the mbuf
    /// (`RTE_MBUF_F_RX_VLAN_STRIPPED`, `vlan_tci`).
    pub rx_vlan_strip: bool,
    /// The NIC inserts the 802.1Q tag of transmitted packets that ask for it (`RTE_MBUF_F_TX_VLAN`).
    pub tx_vlan_insert: bool,
}

/// A configured, started port. Stopped and closed when dropped.
#[derive(Debug)]
pub struct EthDev {
    id: u16,
    name: String,
    setup: PortSetup,
    offloads: Offloads,
    /// Per worker: its queue pair's counters.
    counters: Vec<Arc<QueueCounters>>,
    /// Rings under a `net_ring` port, kept alive as long as the port.
    _rings: Vec<Arc<MbufRing>>,
}

impl EthDev {
    /// Sets up and starts the port that the EAL probed under `name` (a vdev name such as
    /// `net_af_packet0`, or a PCI address such as `0000:3b:00.0`), receiving into `pool`.
    /// Refuses queue counts the device does not have, naming the port.
    pub fn open(name: &str, setup: PortSetup, pool: &Mempool) -> Result<Self, DpdkError> {
        let cname = c_name(name)?;
        let mut id = 0u16;
        // SAFETY: a valid C string and a valid out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(DpdkError::Port { port: name.to_owned(), what: "no such port (not probed by the EAL)".into() });
        }
        Self::start(id, name, setup, pool, Vec::new())
    }

    /// A `net_ring` port named `name` with one queue pair: it receives what is enqueued on `rx` and
    /// transmits into `tx`.
    pub fn from_rings(name: &str, rx: Arc<MbufRing>, tx: Arc<MbufRing>, pool: &Mempool) -> Result<Self, DpdkError> {
        let cname = c_name(name)?;
        let (rxp, txp) = (rx.as_ptr(), tx.as_ptr());
        // SAFETY: valid C string; one ring pointer each, alive for as long as the returned port (it
        // keeps the `Arc`s).
        let ret = unsafe { dpdk_sys::rte_eth_from_rings(cname.as_ptr(), &rxp, 1, &txp, 1, dpdk_sys::rte_socket_id()) };
        check(ret, "rte_eth_from_rings", || format!("port {name}"))?;
        let setup = PortSetup { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024 };
        Self::start(ret as u16, name, setup, pool, vec![rx, tx])
    }

    fn start(
        id: u16,
        name: &str,
        setup: PortSetup,
        pool: &Mempool,
        rings: Vec<Arc<MbufRing>>,
    ) -> Result<Self, DpdkError> {
        let port_err = |what: String| DpdkError::Port { port: name.to_owned(), what };
        let object = || format!("port {name}");
        let info = dev_info(id, name)?;
        if setup.rx_queues == 0 || setup.rx_queues > info.max_rx_queues {
            return Err(port_err(format!(
                "{} rx queues asked, the device has {}",
                setup.rx_queues, info.max_rx_queues
            )));
        }
        if setup.tx_queues == 0 || setup.tx_queues > info.max_tx_queues {
            return Err(port_err(format!(
                "{} tx queues asked, the device has {}",
                setup.tx_queues, info.max_tx_queues
            )));
        }
        let mut conf = rte_eth_conf::default();
        let rss = info.flow_type_rss_offloads & RSS_IP;
        if setup.rx_queues > 1 && rss != 0 {
            conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss;
        }
        // Checksum offloads, where offered: the pipeline then trusts the NIC's verdict on received
        // outer IPv4 headers and leaves the outer checksum of what it sends to the NIC. VLAN offloads,
        // where offered: the pipeline checks the tag the NIC stripped and leaves the tag of what it
        // sends on a subinterface to the NIC. A port without a VLAN drops tagged frames either way.
        let offloads = Offloads {
            rx_ipv4_csum: info.rx_offload_capa & RX_OFFLOAD_IPV4_CKSUM != 0,
            tx_ipv4_csum: info.tx_offload_capa & TX_OFFLOAD_IPV4_CKSUM != 0,
            rx_vlan_strip: info.rx_offload_capa & RX_OFFLOAD_VLAN_STRIP != 0,
            tx_vlan_insert: info.tx_offload_capa & TX_OFFLOAD_VLAN_INSERT != 0,
        };
        for (on, rx, tx) in [
            (offloads.rx_ipv4_csum, RX_OFFLOAD_IPV4_CKSUM, 0),
            (offloads.tx_ipv4_csum, 0, TX_OFFLOAD_IPV4_CKSUM),
            (offloads.rx_vlan_strip, RX_OFFLOAD_VLAN_STRIP, 0),
            (offloads.tx_vlan_insert, 0, TX_OFFLOAD_VLAN_INSERT),
        ] {
            if on {
                conf.rxmode.offloads |= rx;
                conf.txmode.offloads |= tx;
            }
        }
        // SAFETY: the port exists; `conf` is a valid, fully initialised configuration.
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(id, setup.rx_queues, setup.tx_queues, &conf) };
        check(ret, "rte_eth_dev_configure", object)?;
        let (mut rx_desc, mut tx_desc) = (setup.rx_desc, setup.tx_desc);
        // SAFETY: valid port and out-pointers.
        let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id, &mut rx_desc, &mut tx_desc) };
        check(ret, "rte_eth_dev_adjust_nb_rx_tx_desc", object)?;
        // SAFETY: pure query.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id) };
        let socket = if socket < 0 { dpdk_sys::SOCKET_ID_ANY as u32 } else { socket as u32 };
        for q in 0..setup.rx_queues {
            // SAFETY: configured port, queue in range, null rxconf means the driver's defaults, and the
            // pool outlives the port (the caller keeps it until the port is dropped).
            let ret =
                unsafe { dpdk_sys::rte_eth_rx_queue_setup(id, q, rx_desc, socket, core::ptr::null(), pool.as_ptr()) };
            check(ret, "rte_eth_rx_queue_setup", || format!("port {name} rx queue {q}"))?;
        }
        for q in 0..setup.tx_queues {
            // SAFETY: configured port, queue in range, null txconf means the driver's defaults.
            let ret = unsafe { dpdk_sys::rte_eth_tx_queue_setup(id, q, tx_desc, socket, core::ptr::null()) };
            check(ret, "rte_eth_tx_queue_setup", || format!("port {name} tx queue {q}"))?;
        }
        // Not every driver has a promiscuous mode (net_ring has none); the frames for our MAC arrive
        // either way, so a refusal is not an error.
        // SAFETY: valid port.
        unsafe { dpdk_sys::rte_eth_promiscuous_enable(id) };
        // SAFETY: fully configured port.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(id) };
        check(ret, "rte_eth_dev_start", object)?;
        let counters = (0..setup.tx_queues).map(|_| Arc::new(QueueCounters::default())).collect();
        Ok(Self { id, name: name.to_owned(), setup, offloads, counters, _rings: rings })
    }

    /// DPDK's port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The name it was opened under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its queue counts.
    pub fn setup(&self) -> PortSetup {
        self.setup
    }

    /// The checksum and VLAN offloads it runs with.
    pub fn offloads(&self) -> Offloads {
        self.offloads
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        let mut a = rte_ether_addr::default();
        // SAFETY: valid port and out-pointer.
        unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut a) };
        a.addr_bytes
    }

    /// The queue pair of worker `worker`: RX queue `worker` if the port has that many (else it only
    /// transmits), TX queue `worker`. `None` if the port has fewer TX queues than that.
    pub fn worker_port(&self, worker: u16) -> Option<DpdkPort> {
        let counters = self.counters.get(usize::from(worker))?.clone();
        let rxq = (worker < self.setup.rx_queues).then_some(worker);
        Some(DpdkPort { port: self.id, rxq, txq: worker, counters })
    }

    /// The counters of worker `worker`'s queue pair.
    pub fn queue_counters(&self) -> &[Arc<QueueCounters>] {
        &self.counters
    }

    /// The device's own counters.
    pub fn stats(&self) -> EthStats {
        let mut s = rte_eth_stats::default();
        // SAFETY: valid port and out-pointer.
        unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        EthStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }
}

impl Drop for EthDev {
    fn drop(&mut self) {
        // Stopping frees the mbufs in the RX descriptor rings back to their pool; closing releases
        // the queues. No worker polls the port any more (they hold no borrow of `self`, so the owner
        // stops them first: see the runner).
        // SAFETY: valid, started port; nothing uses its queues now.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
        }
    }
}

fn dev_info(id: u16, name: &str) -> Result<rte_eth_dev_info, DpdkError> {
    let mut info = MaybeUninit::<rte_eth_dev_info>::zeroed();
    // SAFETY: valid port; the out-pointer has room for the structure.
    let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(id, info.as_mut_ptr()) };
    check(ret, "rte_eth_dev_info_get", || format!("port {name}"))?;
    // SAFETY: zero is a valid bit pattern for this plain-data structure, and DPDK filled it in.
    Ok(unsafe { info.assume_init() })
}

/// One worker's queue pair on one port.
#[derive(Debug)]
pub struct DpdkPort {
    port: u16,
    rxq: Option<u16>,
    txq: u16,
    counters: Arc<QueueCounters>,
}

impl Port for DpdkPort {
    type Buf = Mbuf;

    fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let Some(rxq) = self.rxq else { return 0 };
        let start = out.len();
        out.reserve(max);
        let max = max.min(MAX_BURST).min(out.capacity() - start) as u16;
        let spare = out.spare_capacity_mut();
        // SAFETY: `spare` has room for `max` pointers (`Mbuf` is a transparent `*mut rte_mbuf`); this
        // worker is the only user of queue `rxq`.
        let n = unsafe { dpdk_sys::dp_rx_burst(self.port, rxq, spare.as_mut_ptr().cast::<*mut rte_mbuf>(), max) };
        // SAFETY: the driver wrote `n` valid mbufs, each now owned by us.
        unsafe { out.set_len(start + usize::from(n)) };
        let mut bytes = 0;
        let mut i = start;
        while i < out.len() {
            if out[i].segments() != 1 {
                drop(out.swap_remove(i));
                self.counters.rx_multiseg_dropped.inc();
            } else {
                bytes += out[i].len() as u64;
                i += 1;
            }
        }
        let got = out.len() - start;
        self.counters.rx_packets.add(got as u64);
        self.counters.rx_bytes.add(bytes);
        got
    }

    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let len = pkts.len().min(usize::from(u16::MAX)) as u16;
        let bytes: u64 = pkts.iter().map(|m| m.len() as u64).sum();
        // SAFETY: `pkts` is an array of `len` owned mbuf pointers; this worker is the only user of
        // queue `txq`; the driver takes ownership of the first `n`.
        let n = usize::from(unsafe { dpdk_sys::dp_tx_burst(self.port, self.txq, pkts.as_mut_ptr().cast(), len) });
        let unsent: u64 = pkts[n..].iter().map(|m| m.len() as u64).sum();
        pkts.drain(..n).for_each(|m| {
            m.into_raw();
        });
        self.counters.tx_packets.add(n as u64);
        self.counters.tx_bytes.add(bytes - unsent);
        self.counters.tx_refused.add(pkts.len() as u64);
        n
    }
}

/// Marks each port whose device computes IPv4 checksums or inserts VLAN tags on transmit in the
/// publisher's tables ([`PortConfig::tx_ipv4_csum_offload`], [`PortConfig::tx_vlan_offload`]; `devs[i]`
/// is the device of port `i`) and publishes them.
pub fn publish_offloads(publisher: &mut TablesPublisher, devs: &[EthDev]) -> Result<(), TablesError> {
    for (i, dev) in devs.iter().enumerate() {
        let Some(port) = publisher.staged().port(PortId(i as u16)) else { continue };
        let (csum, vlan) = (dev.offloads.tx_ipv4_csum, dev.offloads.tx_vlan_insert);
        if (port.tx_ipv4_csum_offload, port.tx_vlan_offload) != (csum, vlan) {
            let port = PortConfig { tx_ipv4_csum_offload: csum, tx_vlan_offload: vlan, ..port.clone() };
            publisher.set_port(port)?;
        }
    }
    publisher.publish();
    Ok(())
}
