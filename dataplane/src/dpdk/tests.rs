//! Tests of the DPDK layer on the EAL of the test process (`--no-huge --no-pci`, net_ring ports).
//! Each test owns its pool, so its occupancy counts only that test's mbufs.

use std::sync::{Arc, OnceLock};

use super::*;
use crate::pkt::{PacketBuf, BUF_SIZE, HEADROOM};
use crate::port::Port;

/// The process's EAL, started once: no hugepages, no PCI, no shared config files, a file prefix of its own.
pub(crate) fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    EAL.get_or_init(|| {
        let args = [
            "--no-huge",
            "--no-pci",
            "-m",
            "256",
            "-l",
            "0",
            "--log-level=error",
            "--no-shconf",
            &format!("--file-prefix=dp-test-{}", std::process::id()),
        ];
        Eal::init(&args.map(String::from)).expect("EAL starts with --no-huge --no-pci")
    })
}

fn pool(name: &str, size: u32) -> Mempool {
    eal();
    Mempool::new(name, size, 0, None).expect("pool")
}

#[test]
fn alloc_and_free_return_every_mbuf() {
    let pool = pool("t_alloc", 64);
    assert_eq!(pool.in_use(), 0);
    let mut held: Vec<Mbuf> = (0..64).map(|_| pool.alloc().expect("64 fit")).collect();
    assert_eq!(pool.in_use(), 64);
    assert!(pool.alloc().is_none(), "the 65th allocation fails");
    held.truncate(10);
    assert_eq!(pool.in_use(), 10);
    drop(held);
    assert_eq!(pool.in_use(), 0);
    assert_eq!(pool.available(), 64);
}

#[test]
fn mbuf_is_a_packet_buf_with_dpdk_bounds() {
    let pool = pool("t_bounds", 8);
    let mut m = pool.alloc_from(&[1, 2, 3]).unwrap();
    assert_eq!(m.headroom(), HEADROOM);
    assert_eq!(m.tailroom(), BUF_SIZE - HEADROOM - 3);
    m.prepend(2).unwrap().copy_from_slice(&[9, 8]);
    assert_eq!(m.data(), &[9, 8, 1, 2, 3]);
    assert!(m.prepend(HEADROOM).is_none(), "only HEADROOM - 2 left");
    assert!(m.prepend(1 << 20).is_none(), "more than u16 is refused, not truncated");
    assert_eq!(m.data(), &[9, 8, 1, 2, 3], "a refused prepend changes nothing");
    assert!(m.adj(3));
    assert_eq!(m.data(), &[2, 3]);
    assert!(!m.adj(3));
    m.append(1).unwrap()[0] = 7;
    assert_eq!(m.data(), &[2, 3, 7]);
    assert!(m.append(m.tailroom() + 1).is_none());
    assert!(!m.trim(4));
    assert!(m.trim(3));
    assert!(m.is_empty());
    m.data_mut();
    assert!(m.set_len(1400));
    assert_eq!(m.len(), 1400);
    m.reset();
    assert_eq!((m.len(), m.headroom()), (0, HEADROOM));
    drop(m);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn ring_owns_what_it_holds() {
    let pool = pool("t_ring", 32);
    let ring = MbufRing::new("t_ring", 8, None).unwrap();
    let mut pkts: Vec<Mbuf> = (0..10u8).map(|i| pool.alloc_from(&[i]).unwrap()).collect();
    assert_eq!(ring.enqueue(&mut pkts), 8, "a ring of 8 takes 8");
    assert_eq!(pkts.len(), 2);
    assert_eq!(pkts[0].data(), &[8], "the rest stays with the caller, in order");
    assert_eq!(pool.in_use(), 10);
    let mut out = Vec::new();
    assert_eq!(ring.dequeue(&mut out, 3), 3);
    assert_eq!(out.iter().map(|m| m.data()[0]).collect::<Vec<_>>(), [0, 1, 2]);
    drop((pkts, out));
    assert_eq!(pool.in_use(), 5, "five still in the ring");
    drop(ring);
    assert_eq!(pool.in_use(), 0, "dropping the ring frees what it held");
}

#[test]
fn ring_port_rx_tx_and_refusals_return_every_mbuf() {
    let pool = pool("t_port", 512);
    let rx = Arc::new(MbufRing::new("t_port_rx", 64, None).unwrap());
    let tx = Arc::new(MbufRing::new("t_port_tx", 16, None).unwrap());
    let dev = EthDev::from_rings("t_port", rx.clone(), tx.clone(), &pool).unwrap();
    let mut port = dev.worker_port(0).unwrap();
    assert!(dev.worker_port(1).is_none(), "one queue pair only");

    let mut frames: Vec<Mbuf> = (0..40u8).map(|i| pool.alloc_from(&[i; 60]).unwrap()).collect();
    assert_eq!(rx.enqueue(&mut frames), 40);
    let mut burst = Vec::new();
    assert_eq!(port.rx_burst(&mut burst, 32), 32);
    assert_eq!(burst[5].data(), &[5; 60]);
    assert_eq!(port.tx_burst(&mut burst), 16, "the TX ring holds 16");
    assert_eq!(burst.len(), 16, "the refused stay with the caller");
    let c = &dev.queue_counters()[0];
    assert_eq!((c.rx_packets.get(), c.rx_bytes.get()), (32, 32 * 60));
    assert_eq!((c.tx_packets.get(), c.tx_bytes.get(), c.tx_refused.get()), (16, 16 * 60, 16));
    assert_eq!(pool.in_use(), 40);
    drop(burst);
    assert_eq!(pool.in_use(), 24, "8 in the RX ring, 16 in the TX ring");
    let mut sent = Vec::new();
    assert_eq!(tx.dequeue(&mut sent, 64), 16);
    assert_eq!(sent[0].data(), &[0; 60], "transmitted in order, untouched");
    drop(sent);
    drop(dev);
    drop((rx, tx));
    assert_eq!(pool.in_use(), 0);
}

/// The interop suite's hub (tests/interop/dmvpn.py) with spoke A: WAN port 0, LAN port 1, tunnel 1.
const HUB: &str = r#"{
  "ports": [
    {"id": 0, "name": "wan", "mac": "02:00:00:00:00:01", "vrf": 0, "addresses": ["192.0.2.1/24"]},
    {"id": 1, "name": "lan", "mac": "02:00:00:00:01:01", "vrf": 1, "addresses": ["10.8.0.1/24"]}
  ],
  "neighbors": [{"port": 0, "ip": "192.0.2.254", "mac": "02:00:00:00:00:fe"},
                {"port": 1, "ip": "10.8.0.9", "mac": "02:00:00:00:01:09"}],
  "routes": [{"vrf": 0, "prefix": "0.0.0.0/0", "via": {"port": 0, "gateway": "192.0.2.254"}},
             {"vrf": 1, "prefix": "10.9.9.0/24", "via": "drop"},
             {"vrf": 1, "prefix": "10.1.0.0/16", "via": {"tunnel": 1, "peer": "10.0.0.11"}}],
  "tunnels": [{"id": 1, "source": "192.0.2.1", "key": 100, "fvrf": 0, "vrf": 1, "address": "10.0.0.1/24",
               "protection": true}],
  "teib": [{"tunnel": 1, "overlay": "10.0.0.11", "nbma": "198.51.100.11", "sa_out": 2}],
  "sas": [{"index": 2, "spi": 8209, "direction": "out", "cipher": "aes-gcm-128",
           "enc_key": "000102030405060708090a0b0c0d0e0f10111213", "tunnel": 1, "local": "192.0.2.1",
           "peer": "198.51.100.11"}]
}"#;

/// An Ethernet/IPv4/UDP frame from `src_mac` to `dst_mac` with `payload` zero bytes.
fn udp_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], dport: u16, payload: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload) as u16;
    let mut ip = [0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = !crate::wire::checksum::data(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&4000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.resize(f.len() + payload, 0);
    f
}

const HUB_WAN: [u8; 6] = [2, 0, 0, 0, 0, 1];
const HUB_LAN: [u8; 6] = [2, 0, 0, 0, 1, 1];
const GW: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const LAN_HOST: [u8; 6] = [2, 0, 0, 0, 1, 9];

/// The worker runs the real pipeline on mbufs between two net_ring ports: frames it forwards
/// (encrypted into the tunnel), drops (no route, runt, TX ring full), punts (IKE) and injects all
/// return to the pool once the rings are drained, the punts taken and the ports closed.
#[test]
fn pipeline_on_mbufs_returns_every_mbuf() {
    use crate::drop::DropReason;
    use crate::ids::{PortId, WorkerId};
    use crate::punt::{ControlRings, Inject, PuntKind};
    use crate::static_config::StaticConfig;
    use crate::worker::Worker;

    let pool = pool("t_pipe", 1024);
    let config = StaticConfig::from_json(HUB).unwrap();
    let (_publisher, reader) =
        config.publish(config.sa_db(crate::crypto::default_backend(), [7; 16]).unwrap()).unwrap();
    let rings: Vec<_> = (0..2)
        .map(|p| {
            let rx = Arc::new(MbufRing::new(&format!("t_pipe_rx{p}"), 256, None).unwrap());
            // The WAN TX ring holds 48 of the 64 encrypted frames: the rest are TxFull drops.
            let tx = Arc::new(MbufRing::new(&format!("t_pipe_tx{p}"), [48, 256][p], None).unwrap());
            (rx, tx)
        })
        .collect();
    let devs: Vec<_> = rings
        .iter()
        .enumerate()
        .map(|(p, (rx, tx))| EthDev::from_rings(&format!("t_pipe{p}"), rx.clone(), tx.clone(), &pool).unwrap())
        .collect();
    let ports = devs.iter().map(|d| d.worker_port(0).unwrap()).collect();
    let control = Arc::new(ControlRings::new(64));
    let mut worker = Worker::new(WorkerId(0), ports, reader, Box::new(crate::crypto::SoftEngine), control.clone(), 32);

    let frames = |n: usize, f: &[u8]| (0..n).map(|_| pool.alloc_from(f).unwrap()).collect::<Vec<_>>();
    let lan = &rings[1].0;
    // 64 to spoke A's LAN (encrypted out of WAN), 8 to a drop route, 8 runts.
    lan.enqueue(&mut frames(64, &udp_frame(HUB_LAN, LAN_HOST, [10, 8, 0, 9], [10, 1, 0, 5], 9, 100)));
    lan.enqueue(&mut frames(8, &udp_frame(HUB_LAN, LAN_HOST, [10, 8, 0, 9], [10, 9, 9, 1], 9, 100)));
    lan.enqueue(&mut frames(8, &[0xff; 10]));
    // 4 IKE packets to the hub's WAN address: punted.
    rings[0].0.enqueue(&mut frames(4, &udp_frame(HUB_WAN, GW, [198, 51, 100, 11], [192, 0, 2, 1], 500, 40)));
    // One frame the control plane injects on the LAN.
    let inject = pool.alloc_from(&udp_frame(LAN_HOST, HUB_LAN, [10, 8, 0, 1], [10, 8, 0, 9], 9, 10)).unwrap();
    control.injects.push(Inject::Frame { port: PortId(1), pkt: inject }).unwrap();
    assert_eq!(pool.in_use(), 64 + 8 + 8 + 4 + 1);

    while worker.poll(0) > 0 {}

    let c = &worker.counters;
    assert_eq!(c.esp_encrypted.get(), 64);
    assert_eq!(c.drops_for(DropReason::TxFull), 16);
    assert_eq!(c.tx_packets.get(), 48 + 1);
    assert_eq!(c.punted.get(), 4);
    assert_eq!(c.nonzero_drops().iter().map(|(_, n)| n).sum::<u64>(), 16 + 8 + 8, "{:?}", c.nonzero_drops());
    let (wan_tx, lan_tx) = (&rings[0].1, &rings[1].1);
    assert_eq!((wan_tx.len(), lan_tx.len()), (48, 1));
    let mut out = Vec::new();
    wan_tx.dequeue(&mut out, 1);
    assert_eq!(out[0].data()[23], 50, "an ESP packet");
    assert_eq!(&out[0].data()[..6], &GW);
    assert_eq!(pool.in_use(), 48 + 1 + 4, "in the TX rings, and the punts");
    let punt = control.punts.pop().unwrap();
    assert_eq!(punt.kind, PuntKind::Ike);
    drop((out, punt));
    while control.punts.pop().is_some() {}
    drop(worker);
    drop(devs);
    drop(rings);
    assert_eq!(pool.in_use(), 0, "every mbuf is back in the pool");
}

fn set_rx_flags(m: &Mbuf, flags: u32) {
    // SAFETY: the test owns the mbuf and holds no reference into it.
    unsafe { (*m.as_ptr()).ol_flags = u64::from(flags) };
}

fn tx_fields(m: &Mbuf) -> (u64, u64) {
    // SAFETY: the test owns the mbuf; plain reads of its header fields.
    unsafe { ((*m.as_ptr()).ol_flags, (*m.as_ptr()).__bindgen_anon_3.tx_offload) }
}

#[test]
fn mbuf_carries_the_nics_checksum_verdict_and_the_tx_request() {
    let pool = pool("t_csum_flags", 8);
    let mut m = pool.alloc_from(&[0; 64]).unwrap();
    for (flags, want) in [
        (dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD, Some(true)),
        (dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD, Some(false)),
        (dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_NONE, None),
        (dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN, None),
    ] {
        set_rx_flags(&m, flags | dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD);
        assert_eq!(m.take_rx_ipv4_csum(), want, "flags {flags:#x}");
        assert_eq!(m.take_rx_ipv4_csum(), None, "taken: an inner header never sees it");
        assert_eq!(tx_fields(&m).0, u64::from(dpdk_sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD), "other flags kept");
    }
    assert!(!m.offload_tx_ipv4_csum(128, 20), "l2_len has 7 bits");
    assert!(!m.offload_tx_ipv4_csum(14, 512), "l3_len has 9 bits");
    assert!(m.offload_tx_ipv4_csum(18, 20));
    let (flags, tx) = tx_fields(&m);
    assert_eq!(
        flags & (dpdk_sys::RTE_MBUF_F_TX_IPV4 | dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM),
        dpdk_sys::RTE_MBUF_F_TX_IPV4 | dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM
    );
    // rte_mbuf_core.h: l2_len is bits 0-6, l3_len bits 7-15 of tx_offload.
    assert_eq!(tx, 18 | 20 << 7);
}

/// The pipeline on mbufs with checksum offloads: it trusts the NIC's verdict on the outer IPv4 header
/// and, on a port marked for TX checksum offload, leaves the outer checksum to the NIC.
#[test]
fn pipeline_uses_the_checksum_offload_hooks() {
    use crate::drop::DropReason;
    use crate::ids::{PortId, WorkerId};
    use crate::punt::ControlRings;
    use crate::static_config::StaticConfig;
    use crate::wire::ipv4;
    use crate::worker::Worker;

    // The outer IPv4 headers sent without the offload, to compare those sent with it.
    let mut software_headers = Vec::new();
    for tx_offload in [false, true] {
        let pool = pool(&format!("t_csum{tx_offload}"), 256);
        let config = StaticConfig::from_json(HUB).unwrap();
        let (mut publisher, reader) =
            config.publish(config.sa_db(crate::crypto::default_backend(), [7; 16]).unwrap()).unwrap();
        let wan = publisher.staged().port(PortId(0)).unwrap().clone();
        publisher.set_port(crate::tables::PortConfig { tx_ipv4_csum_offload: tx_offload, ..wan }).unwrap();
        publisher.publish();
        let rings: Vec<_> = (0..2)
            .map(|p| {
                let rx = Arc::new(MbufRing::new(&format!("t_csum{tx_offload}_rx{p}"), 64, None).unwrap());
                let tx = Arc::new(MbufRing::new(&format!("t_csum{tx_offload}_tx{p}"), 64, None).unwrap());
                (rx, tx)
            })
            .collect();
        let devs: Vec<_> = rings
            .iter()
            .enumerate()
            .map(|(p, (rx, tx))| {
                EthDev::from_rings(&format!("t_csum{tx_offload}{p}"), rx.clone(), tx.clone(), &pool).unwrap()
            })
            .collect();
        assert_eq!(devs[0].offloads(), Offloads::default(), "net_ring offers no offloads");
        let ports = devs.iter().map(|d| d.worker_port(0).unwrap()).collect();
        let control = Arc::new(ControlRings::new(64));
        let mut worker = Worker::new(WorkerId(0), ports, reader, Box::new(crate::crypto::SoftEngine), control, 32);

        let good = udp_frame(HUB_LAN, LAN_HOST, [10, 8, 0, 9], [10, 1, 0, 5], 9, 100);
        let mut bad = good.clone();
        bad[14 + 10] ^= 0x01; // the IPv4 header checksum
        let lan = &rings[1].0;
        // (frame, the NIC's verdict): only the verdict decides, where there is one.
        for (frame, flags) in [
            (&good, dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_BAD),
            (&bad, dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD),
            (&bad, dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN),
            (&good, dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN),
        ] {
            let m = pool.alloc_from(frame).unwrap();
            set_rx_flags(&m, flags);
            lan.enqueue(&mut vec![m]);
        }
        while worker.poll(0) > 0 {}
        assert_eq!(worker.counters.esp_encrypted.get(), 2);
        assert_eq!(worker.counters.nonzero_drops(), [(DropReason::Ipv4BadChecksum.name(), 2)]);

        let mut out = Vec::new();
        assert_eq!(rings[0].1.dequeue(&mut out, 8), 2);
        for m in &out {
            let (flags, tx) = tx_fields(m);
            let ip = ipv4::Packet::new_checked(&m.data()[14..]).unwrap();
            let asked = flags & dpdk_sys::RTE_MBUF_F_TX_IP_CKSUM != 0;
            assert_eq!(asked, tx_offload);
            if tx_offload {
                assert_eq!(flags & dpdk_sys::RTE_MBUF_F_TX_IPV4, dpdk_sys::RTE_MBUF_F_TX_IPV4);
                assert_eq!(tx & 0xffff, 14 | 20 << 7, "l2_len 14, l3_len 20");
                assert_eq!(ip.checksum(), 0, "zero until the NIC fills it in");
            } else {
                assert!(ip.verify_checksum(), "computed in software");
            }
            let mut header = m.data()[14..34].to_vec();
            header[10..12].fill(0);
            software_headers.push(header);
        }
        drop(out);
        drop(worker);
        drop(devs);
        drop(rings);
        assert_eq!(pool.in_use(), 0);
    }
    assert_eq!(software_headers[..2], software_headers[2..], "the same headers but for the checksum");
}

fn set_rx_vlan(m: &Mbuf, flags: u32, tci: u16) {
    // SAFETY: the test owns the mbuf and holds no reference into it.
    unsafe {
        (*m.as_ptr()).ol_flags = u64::from(flags);
        (*m.as_ptr()).vlan_tci = tci;
    }
}

fn vlan_tci(m: &Mbuf) -> u16 {
    // SAFETY: the test owns the mbuf; a plain read of a header field.
    unsafe { (*m.as_ptr()).vlan_tci }
}

#[test]
fn mbuf_carries_the_stripped_tag_and_the_insert_request() {
    let pool = pool("t_vlan_flags", 8);
    let mut m = pool.alloc_from(&[0; 64]).unwrap();
    let (vlan, stripped) = (dpdk_sys::RTE_MBUF_F_RX_VLAN, dpdk_sys::RTE_MBUF_F_RX_VLAN_STRIPPED);
    let other = dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD;
    // PCP 1, VID 100.
    set_rx_vlan(&m, vlan | stripped | other, 0x2064);
    assert_eq!(m.take_rx_vlan(), Some(0x2064));
    assert_eq!(m.take_rx_vlan(), None, "taken: an inner frame never sees it");
    assert_eq!(tx_fields(&m).0, u64::from(other), "other flags kept");
    // RX_VLAN alone: the NIC saw a tag and left it in the frame.
    set_rx_vlan(&m, vlan, 0x2064);
    assert_eq!(m.take_rx_vlan(), None);
    set_rx_vlan(&m, 0, 0);
    assert!(m.offload_tx_vlan(0x0fff));
    assert_eq!(tx_fields(&m).0, dpdk_sys::RTE_MBUF_F_TX_VLAN);
    assert_eq!(vlan_tci(&m), 0x0fff);
    assert_eq!(m.data(), &[0; 64], "the frame is untouched");
}

/// `frame` with the 802.1Q tag `tci` inserted behind the MAC addresses.
fn tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// An Ethernet/IPv4 ICMP echo request from `src` to `dst`.
fn echo_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'p', b'i', b'n', b'g'];
    let sum = !crate::wire::checksum::data(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut ip = [0x45, 0, 0, 32, 0, 1, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let sum = !crate::wire::checksum::data(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    [&dst_mac[..], &src_mac, &[0x08, 0x00], &ip, &icmp].concat()
}

/// An ARP request (RFC 826) from `sha`/`spa` for `tpa`, broadcast.
fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    [&[0xff; 6][..], &sha, &[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1], &sha, &spa, &[0; 6], &tpa].concat()
}

/// The pipeline on mbufs with VLAN offloads, the WAN port being VLAN 100: it checks the tag the NIC
/// stripped (and refuses a frame that still carries one), and on a port marked for TX VLAN offload
/// sends every frame (tunnel fast path, routed slow path, ARP reply in place) untagged with the insert
/// request, otherwise byte for byte the frame it tags in software.
#[test]
fn pipeline_uses_the_vlan_offload_hooks() {
    use crate::drop::DropReason;
    use crate::ids::{PortId, WorkerId};
    use crate::punt::ControlRings;
    use crate::static_config::StaticConfig;
    use crate::worker::Worker;

    const VID: u16 = 100;
    let (vlan, stripped) = (dpdk_sys::RTE_MBUF_F_RX_VLAN, dpdk_sys::RTE_MBUF_F_RX_VLAN_STRIPPED);
    // Per run, what the WAN port sent, with the tag written in where the NIC was asked to insert it.
    let mut sent = Vec::new();
    for tx_offload in [false, true] {
        let pool = pool(&format!("t_vlan{tx_offload}"), 256);
        let config = StaticConfig::from_json(HUB).unwrap();
        let (mut publisher, reader) =
            config.publish(config.sa_db(crate::crypto::default_backend(), [7; 16]).unwrap()).unwrap();
        let wan = publisher.staged().port(PortId(0)).unwrap().clone();
        publisher.set_port(crate::tables::PortConfig { vlan: Some(VID), tx_vlan_offload: tx_offload, ..wan }).unwrap();
        publisher.publish();
        let rings: Vec<_> = (0..2)
            .map(|p| {
                let rx = Arc::new(MbufRing::new(&format!("t_vlan{tx_offload}_rx{p}"), 64, None).unwrap());
                let tx = Arc::new(MbufRing::new(&format!("t_vlan{tx_offload}_tx{p}"), 64, None).unwrap());
                (rx, tx)
            })
            .collect();
        let devs: Vec<_> = rings
            .iter()
            .enumerate()
            .map(|(p, (rx, tx))| {
                EthDev::from_rings(&format!("t_vlan{tx_offload}{p}"), rx.clone(), tx.clone(), &pool).unwrap()
            })
            .collect();
        let ports = devs.iter().map(|d| d.worker_port(0).unwrap()).collect();
        let control = Arc::new(ControlRings::new(64));
        let mut worker = Worker::new(WorkerId(0), ports, reader, Box::new(crate::crypto::SoftEngine), control, 32);

        let ping = echo_frame(HUB_WAN, GW, [192, 0, 2, 254], [192, 0, 2, 1]);
        let arp = arp_request(GW, [192, 0, 2, 254], [192, 0, 2, 1]);
        // (frame, RX flags, reported TCI): stripped with the port's VID (PCP 3) or tagged in the frame
        // are accepted; another VID, no tag at all, or a tag left after the strip are not.
        let wan_in = [
            (ping.clone(), vlan | stripped, 0x6000 | VID),
            (tagged(&ping, VID), 0, 0),
            (ping.clone(), vlan | stripped, VID + 1),
            (ping.clone(), 0, 0),
            (tagged(&ping, VID), vlan | stripped, VID),
            (arp, vlan | stripped, VID),
        ];
        for (frame, flags, tci) in wan_in {
            let m = pool.alloc_from(&frame).unwrap();
            set_rx_vlan(&m, flags, tci);
            rings[0].0.enqueue(&mut vec![m]);
        }
        while worker.poll(0) > 0 {}
        assert_eq!(worker.counters.nonzero_drops(), [(DropReason::L2WrongVlan.name(), 3)]);
        // Then one frame into the tunnel, out of the WAN port through the TEIB entry's rewrite.
        let m = pool.alloc_from(&udp_frame(HUB_LAN, LAN_HOST, [10, 8, 0, 9], [10, 1, 0, 5], 9, 100)).unwrap();
        rings[1].0.enqueue(&mut vec![m]);
        while worker.poll(0) > 0 {}
        assert_eq!(worker.counters.esp_encrypted.get(), 1);

        let mut out = Vec::new();
        assert_eq!(rings[0].1.dequeue(&mut out, 8), 4, "two echo replies, an ARP reply, an ESP packet");
        let mut frames = Vec::new();
        for m in &out {
            let asked = tx_fields(m).0 & dpdk_sys::RTE_MBUF_F_TX_VLAN != 0;
            assert_eq!(asked, tx_offload);
            if asked {
                assert_eq!(vlan_tci(m), VID);
                assert_ne!(&m.data()[12..14], [0x81, 0x00], "untagged: the NIC inserts the tag");
                frames.push(tagged(m.data(), VID));
            } else {
                frames.push(m.data().to_vec());
            }
        }
        // To the gateway, tagged VID 100, EtherType IPv4 (protocol ICMP) twice, ARP (operation reply),
        // IPv4 (protocol ESP).
        let kinds: Vec<_> =
            frames.iter().map(|f| (&f[..6], &f[12..18], if f[17] == 0x06 { f[18 + 7] } else { f[18 + 9] })).collect();
        assert_eq!(
            kinds,
            [
                (&GW[..], &[0x81, 0, 0, 100, 0x08, 0x00][..], 1),
                (&GW[..], &[0x81, 0, 0, 100, 0x08, 0x00][..], 1),
                (&GW[..], &[0x81, 0, 0, 100, 0x08, 0x06][..], 2),
                (&GW[..], &[0x81, 0, 0, 100, 0x08, 0x00][..], 50),
            ]
        );
        sent.push(frames);
        drop(out);
        drop(worker);
        drop(devs);
        drop(rings);
        assert_eq!(pool.in_use(), 0);
    }
    assert_eq!(sent[0], sent[1], "offloaded or not, the same frames on the wire");
}
