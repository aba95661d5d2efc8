//! Pipeline tests for what only the control plane and the worker see: injects, full rings, SA events.
//! Forwarding, crypto and drops against independent peers are tested by `tests/interop` (Scapy,
//! tshark) through the replay tool.

use std::sync::Arc;

use crate::counters::WorkerCounters;
use crate::crypto::{default_backend, SoftEngine};
use crate::drop::DropReason;
use crate::esp::{EspProcessor, InboundReq, InboundVerdict};
use crate::ids::{PortId, SaIndex, TunnelId, WorkerId};
use crate::pkt::{HeapPkt, PacketBuf};
use crate::port::MemPort;
use crate::punt::{ControlRings, Inject, PuntKind};
use crate::sa::{SaEventKind, SaRtTable};
use crate::static_config::StaticConfig;
use crate::wire::ethernet::{self, Address, EtherType};
use crate::wire::gre;
use crate::wire::icmpv4;
use crate::wire::ipv4;
use crate::wire::IpProtocol;
use crate::worker::Worker;

const WAN: usize = 0;
const LAN: usize = 1;
const HUB_LAN_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const LAN_HOST_MAC: [u8; 6] = [2, 0, 0, 0, 1, 9];

/// A hub with one protected tunnel and one spoke (SA 1 in, SA 2 out), and the spoke's mirror of the
/// hub → spoke SA (SA 2 as inbound), so that tests can open what the hub sends.
fn config(soft_packets: u64) -> (String, String) {
    let key = "00112233445566778899aabbccddeeff01020304";
    let hub = format!(
        r#"{{
        "ports": [
            {{"id": 0, "name": "wan", "mac": "02:00:00:00:00:01", "addresses": ["192.0.2.1/24"]}},
            {{"id": 1, "name": "lan", "mac": "02:00:00:00:01:01", "vrf": 1, "addresses": ["10.8.0.1/24"]}}],
        "neighbors": [
            {{"port": 0, "ip": "192.0.2.254", "mac": "02:00:00:00:00:fe"}},
            {{"port": 1, "ip": "10.8.0.9", "mac": "02:00:00:00:01:09"}}],
        "routes": [
            {{"vrf": 0, "prefix": "0.0.0.0/0", "via": {{"port": 0, "gateway": "192.0.2.254"}}}},
            {{"vrf": 1, "prefix": "10.2.0.0/16", "via": {{"tunnel": 1, "peer": "10.0.0.12"}}}}],
        "tunnels": [{{"id": 1, "source": "192.0.2.1", "key": 100, "vrf": 1, "address": "10.0.0.1/24",
                      "protection": true, "redirect": true}}],
        "teib": [{{"tunnel": 1, "overlay": "10.0.0.12", "nbma": "198.51.100.12", "sa_out": 2}}],
        "sas": [
            {{"index": 1, "spi": 4097, "direction": "in", "cipher": "aes-gcm-128", "enc_key": "{key}",
              "tunnel": 1, "local": "192.0.2.1", "peer": "198.51.100.12"}},
            {{"index": 2, "spi": 8193, "direction": "out", "cipher": "aes-gcm-128", "enc_key": "{key}",
              "tunnel": 1, "local": "192.0.2.1", "peer": "198.51.100.12",
              "lifetime": {{"soft_packets": {soft_packets}}}}}]
    }}"#
    );
    let spoke = format!(
        r#"{{"ports": [], "sas": [
            {{"index": 2, "spi": 8193, "direction": "in", "cipher": "aes-gcm-128", "enc_key": "{key}",
              "tunnel": 1, "local": "198.51.100.12", "peer": "192.0.2.1"}}]}}"#
    );
    (hub, spoke)
}

fn worker(hub: &str, tx_capacity: usize, ring: usize) -> Worker<MemPort<HeapPkt>> {
    let config = StaticConfig::from_json(hub).unwrap();
    let sas = config.sa_db(default_backend(), [7; 16]).unwrap();
    let (publisher, reader) = config.publish(sas).unwrap();
    let ports = (0..publisher.staged().port_count()).map(|_| MemPort::new(tx_capacity)).collect();
    Worker::new(WorkerId(0), ports, reader, Box::new(SoftEngine), Arc::new(ControlRings::new(ring)), 32)
}

/// An ICMP echo from the LAN host to a host behind the spoke, as an Ethernet frame.
fn lan_ping(dst: [u8; 4]) -> HeapPkt {
    let icmp = icmpv4::Repr::EchoRequest { ident: 1, seq_no: 1, data: b"ping" };
    let ip = ipv4::Repr {
        src_addr: [10, 8, 0, 9].into(),
        dst_addr: dst.into(),
        protocol: IpProtocol::ICMP,
        payload_len: icmp.buffer_len(),
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        options: ipv4::Options::default(),
    };
    let eth = ethernet::Repr {
        src_addr: Address(LAN_HOST_MAC),
        dst_addr: Address(HUB_LAN_MAC),
        vlan: None,
        ethertype: EtherType::IPV4,
    };
    let mut bytes = vec![0; eth.buffer_len() + ip.buffer_len() + icmp.buffer_len()];
    eth.emit(&mut ethernet::Packet::new_unchecked(&mut bytes[..]));
    let (_, rest) = bytes.split_at_mut(eth.buffer_len());
    ip.emit(&mut ipv4::Packet::new_unchecked(&mut rest[..]));
    icmp.emit(&mut icmpv4::Packet::new_unchecked(&mut rest[ip.buffer_len()..]));
    HeapPkt::from_bytes(&bytes).unwrap()
}

/// Opens an ESP frame the hub sent to the spoke, with the spoke's copy of the SA; returns the GRE
/// packet inside.
fn open_as_spoke(spoke: &str, frame: &HeapPkt) -> Vec<u8> {
    let config = StaticConfig::from_json(spoke).unwrap();
    let db = config.sa_db(default_backend(), [9; 16]).unwrap();
    let eth = ethernet::Packet::new_checked(frame.data()).unwrap();
    let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.protocol(), IpProtocol::ESP);
    assert_eq!(ip.dst_addr(), core::net::Ipv4Addr::new(198, 51, 100, 12));
    let mut pkts = [HeapPkt::from_bytes(ip.payload()).unwrap()];
    let mut verdicts: [InboundVerdict; 1] = [Err(DropReason::EspMalformed)];
    let mut rt = SaRtTable::default();
    EspProcessor::new(4).decrypt(&mut SoftEngine, &db, &mut rt, &mut pkts, &[InboundReq::Spi], &mut verdicts);
    let decrypted = verdicts[0].expect("the spoke opens what the hub sent");
    assert_eq!(decrypted.next_header, IpProtocol::GRE.0);
    pkts[0].data().to_vec()
}

fn drops(c: &WorkerCounters) -> Vec<(&'static str, u64)> {
    c.nonzero_drops()
}

#[test]
fn nhrp_injected_by_control_leaves_protected_inside_gre() {
    let (hub, spoke) = config(1000);
    let mut w = worker(&hub, 64, 64);
    let nhrp = b"\x00\x01\x08\x00 an NHRP message";
    w.rings
        .injects
        .push(Inject::Tunnel {
            tunnel: TunnelId(1),
            nbma: "198.51.100.12".parse().unwrap(),
            sa: Some(SaIndex(2)),
            protocol: gre::Protocol::NHRP.0,
            pkt: HeapPkt::from_bytes(nhrp).unwrap(),
        })
        .unwrap();
    assert_eq!(w.poll(1), 1);
    assert_eq!(drops(&w.counters), vec![]);
    let sent: Vec<_> = w.ports[WAN].tx.drain(..).collect();
    assert_eq!(sent.len(), 1);
    let inner = open_as_spoke(&spoke, &sent[0]);
    let g = gre::Packet::new_checked(&inner[..]).unwrap();
    assert_eq!(g.protocol_type(), gre::Protocol::NHRP);
    assert_eq!(g.key(), Some(100));
    assert_eq!(g.payload(), nhrp);
}

#[test]
fn protected_tunnel_sends_nothing_in_clear() {
    let (hub, _) = config(1000);
    let mut w = worker(&hub, 64, 64);
    let inject = Inject::Tunnel {
        tunnel: TunnelId(1),
        nbma: "198.51.100.12".parse().unwrap(),
        sa: None,
        protocol: gre::Protocol::NHRP.0,
        pkt: HeapPkt::from_bytes(b"nhrp").unwrap(),
    };
    w.rings.injects.push(inject).unwrap();
    w.poll(1);
    assert!(w.ports[WAN].tx.is_empty());
    assert_eq!(drops(&w.counters), vec![(DropReason::NoOutboundSa.name(), 1)]);
}

#[test]
fn lan_to_tunnel_is_encrypted_for_the_spoke_and_soft_lifetime_reaches_control() {
    let (hub, spoke) = config(2);
    let mut w = worker(&hub, 64, 64);
    for _ in 0..3 {
        w.ports[LAN].rx.push_back(lan_ping([10, 2, 0, 7]));
    }
    w.poll(1);
    assert_eq!(drops(&w.counters), vec![]);
    assert_eq!(w.counters.esp_encrypted.get(), 3);
    let sent: Vec<_> = w.ports[WAN].tx.drain(..).collect();
    assert_eq!(sent.len(), 3);
    let gre_bytes = open_as_spoke(&spoke, &sent[0]);
    let g = gre::Packet::new_checked(&gre_bytes[..]).unwrap();
    let inner = ipv4::Packet::new_checked(g.payload()).unwrap();
    assert_eq!(inner.ttl(), 63, "the hub is one hop");
    assert_eq!(inner.dst_addr(), core::net::Ipv4Addr::new(10, 2, 0, 7));
    let event = w.rings.events.pop().expect("the SA's first use reported");
    assert_eq!((event.sa, event.kind), (SaIndex(2), SaEventKind::Used));
    let event = w.rings.events.pop().expect("soft packet lifetime raised");
    assert_eq!((event.sa, event.kind), (SaIndex(2), SaEventKind::SoftPackets));
    assert!(w.rings.events.pop().is_none(), "each raised once");
}

#[test]
fn full_tx_ring_and_full_punt_ring_are_counted() {
    let (hub, _) = config(1000);
    let mut w = worker(&hub, 2, 1);
    for _ in 0..5 {
        w.ports[LAN].rx.push_back(lan_ping([10, 2, 0, 7]));
    }
    // Nothing routes 10.3/16: each of these asks... nothing; a TEIB miss needs a tunnel route.
    w.poll(1);
    assert_eq!(w.ports[WAN].tx.len(), 2);
    assert_eq!(w.counters.tx_packets.get(), 2);
    assert_eq!(drops(&w.counters), vec![(DropReason::TxFull.name(), 3)]);

    // Two ARP requests for the hub's LAN address: both answered, one snapshot fits the punt ring.
    let (hub, _) = config(1000);
    let mut w = worker(&hub, 8, 1);
    for sender in [9u8, 10] {
        let arp = crate::wire::arp::Repr {
            operation: crate::wire::arp::Operation::REQUEST,
            source_hardware_addr: Address(LAN_HOST_MAC),
            source_protocol_addr: [10, 8, 0, sender].into(),
            target_hardware_addr: Address([0; 6]),
            target_protocol_addr: [10, 8, 0, 1].into(),
        };
        let eth = ethernet::Repr {
            src_addr: Address(LAN_HOST_MAC),
            dst_addr: Address::BROADCAST,
            vlan: None,
            ethertype: EtherType::ARP,
        };
        let mut bytes = vec![0; eth.buffer_len() + arp.buffer_len()];
        eth.emit(&mut ethernet::Packet::new_unchecked(&mut bytes[..]));
        arp.emit(&mut crate::wire::arp::Packet::new_unchecked(&mut bytes[eth.buffer_len()..]));
        w.ports[LAN].rx.push_back(HeapPkt::from_bytes(&bytes).unwrap());
    }
    w.poll(1);
    assert_eq!(w.ports[LAN].tx.len(), 2, "both requests answered");
    assert_eq!(w.rings.punts.pop().map(|p| p.kind), Some(PuntKind::Arp));
    assert_eq!(drops(&w.counters), vec![(DropReason::PuntRingFull.name(), 1)]);
    let _ = PortId(0);
}

#[test]
fn a_teib_change_between_bursts_takes_the_next_packet_to_the_new_address() {
    let (hub, _) = config(1000);
    let config = StaticConfig::from_json(&hub).unwrap();
    let (mut publisher, reader) = config.publish(config.sa_db(default_backend(), [7; 16]).unwrap()).unwrap();
    let ports = (0..2).map(|_| MemPort::new(64)).collect();
    let mut w = Worker::new(WorkerId(0), ports, reader, Box::new(SoftEngine), Arc::new(ControlRings::new(64)), 32);
    let outer_dst = |frame: &HeapPkt| {
        let eth = ethernet::Packet::new_checked(frame.data()).unwrap();
        ipv4::Packet::new_checked(eth.payload()).unwrap().dst_addr()
    };
    w.ports[LAN].rx.push_back(lan_ping([10, 2, 0, 7]));
    w.poll(1);
    let sent = w.ports[WAN].tx.pop().expect("sent to the spoke");
    assert_eq!(outer_dst(&sent), core::net::Ipv4Addr::new(198, 51, 100, 12));

    // The spoke comes back from another NBMA address (a new registration).
    let overlay = "10.0.0.12".parse().unwrap();
    let entry =
        crate::teib::TeibEntry { nbma: "198.51.100.99".parse().unwrap(), sa_out: Some(SaIndex(2)), dynamic: true };
    publisher.set_teib(TunnelId(1), overlay, entry).unwrap();
    publisher.publish();
    w.ports[LAN].rx.push_back(lan_ping([10, 2, 0, 7]));
    w.poll(2);
    let sent = w.ports[WAN].tx.pop().expect("sent to the spoke");
    assert_eq!(outer_dst(&sent), core::net::Ipv4Addr::new(198, 51, 100, 99));
    assert_eq!(drops(&w.counters), vec![]);
}

/// A hub config whose SAs (1 in, 2 out) belong to worker 1.
fn owned_by_worker_1(hub: &str) -> String {
    hub.replace(r#""direction": "in""#, r#""direction": "in", "owner": 1"#)
        .replace(r#""direction": "out""#, r#""direction": "out", "owner": 1"#)
}

/// Two workers over one set of tables, connected by handoff rings.
fn two_workers(hub: &str) -> [Worker<MemPort<HeapPkt>>; 2] {
    let config = StaticConfig::from_json(hub).unwrap();
    let sas = config.sa_db(default_backend(), [7; 16]).unwrap();
    let (publisher, reader) = config.publish(sas).unwrap();
    let handoff = Arc::new(crate::pipeline::HandoffRings::new(2, 64));
    [0, 1].map(|id| {
        let ports = (0..publisher.staged().port_count()).map(|_| MemPort::new(64)).collect();
        let reader = if id == 0 { reader.clone() } else { publisher.reader() };
        Worker::new(WorkerId(id), ports, reader, Box::new(SoftEngine), Arc::new(ControlRings::new(64)), 32)
            .with_handoff(Arc::clone(&handoff))
    })
}

/// ESP from the spoke (SA 1, sequence number 1) carrying GRE key 100 with a ping from 10.2.0.7 to the LAN
/// host, as the hub's WAN port receives it.
fn spoke_esp() -> HeapPkt {
    let key = "00112233445566778899aabbccddeeff01020304";
    let spoke = format!(
        r#"{{"ports": [], "sas": [
            {{"index": 1, "spi": 4097, "direction": "out", "cipher": "aes-gcm-128", "enc_key": "{key}",
              "tunnel": 1, "local": "198.51.100.12", "peer": "192.0.2.1"}}]}}"#
    );
    let db = StaticConfig::from_json(&spoke).unwrap().sa_db(default_backend(), [3; 16]).unwrap();
    let ping = lan_ping([10, 8, 0, 9]);
    let mut inner = ping.data()[ethernet::HEADER_LEN..].to_vec();
    {
        let mut ip = ipv4::Packet::new_checked(&mut inner[..]).unwrap();
        ip.set_src_addr([10, 2, 0, 7].into());
        ip.fill_checksum();
    }
    let mut pkt = HeapPkt::from_bytes(&inner).unwrap();
    let g = gre::Repr { protocol: gre::Protocol::IPV4, checksum: false, key: Some(100), sequence: None };
    g.emit(&mut gre::Packet::new_unchecked(pkt.prepend(g.buffer_len()).unwrap()));
    let mut pkts = [pkt];
    let mut verdicts = [Err(DropReason::NoOutboundSa)];
    let mut rt = SaRtTable::default();
    rt.reserve(&db);
    let req = [Some(crate::esp::OutboundReq { sa: SaIndex(1), next_header: IpProtocol::GRE.0 })];
    EspProcessor::new(4).encrypt(&mut SoftEngine, &db, &mut rt, &mut pkts, &req, &mut verdicts);
    verdicts[0].expect("the spoke encrypts");
    let [mut pkt] = pkts;
    let ip = ipv4::Repr {
        src_addr: [198, 51, 100, 12].into(),
        dst_addr: [192, 0, 2, 1].into(),
        protocol: IpProtocol::ESP,
        payload_len: pkt.len(),
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        options: ipv4::Options::default(),
    };
    ip.emit(&mut ipv4::Packet::new_unchecked(pkt.prepend(ip.buffer_len()).unwrap()));
    let eth = ethernet::Repr {
        src_addr: Address([2, 0, 0, 0, 0, 0xfe]),
        dst_addr: Address([2, 0, 0, 0, 0, 1]),
        vlan: None,
        ethertype: EtherType::IPV4,
    };
    eth.emit(&mut ethernet::Packet::new_unchecked(pkt.prepend(eth.buffer_len()).unwrap()));
    pkt
}

#[test]
fn packets_of_an_sa_owned_elsewhere_are_handed_to_its_owner() {
    let (hub, spoke) = config(1000);
    let [mut w0, mut w1] = two_workers(&owned_by_worker_1(&hub));

    // LAN → spoke arrives on both workers; only worker 1, the owner, encrypts and sends.
    w0.ports[LAN].rx.push_back(lan_ping([10, 2, 0, 7]));
    w0.ports[LAN].rx.push_back(lan_ping([10, 2, 0, 8]));
    w1.ports[LAN].rx.push_back(lan_ping([10, 2, 0, 9]));
    w0.poll(1);
    assert!(w0.ports[WAN].tx.is_empty());
    assert_eq!(w0.counters.handed_off.get(), 2);
    assert_eq!(w0.counters.esp_encrypted.get(), 0);
    w1.poll(1);
    assert_eq!((drops(&w0.counters), drops(&w1.counters)), (vec![], vec![]));
    assert_eq!(w1.counters.esp_encrypted.get(), 3);
    let sent: Vec<_> = w1.ports[WAN].tx.drain(..).collect();
    let seqs: Vec<u32> = sent
        .iter()
        .map(|f| {
            let esp = &f.data()[ethernet::HEADER_LEN + ipv4::HEADER_LEN..];
            u32::from_be_bytes([esp[4], esp[5], esp[6], esp[7]])
        })
        .collect();
    assert_eq!(seqs, [1, 2, 3], "one sequence, one writer");
    for frame in &sent {
        open_as_spoke(&spoke, frame);
    }

    // Spoke → LAN: worker 0 receives it, worker 1 decrypts it (its replay window) and delivers it.
    w0.ports[WAN].rx.push_back(spoke_esp());
    w0.poll(2);
    assert!(w0.ports[LAN].tx.is_empty());
    assert_eq!(w0.counters.handed_off.get(), 3);
    w1.poll(2);
    assert_eq!(w1.counters.esp_decrypted.get(), 1);
    let delivered: Vec<_> = w1.ports[LAN].tx.drain(..).collect();
    assert_eq!(delivered.len(), 1);
    let ip = ipv4::Packet::new_checked(&delivered[0].data()[ethernet::HEADER_LEN..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), ([10, 2, 0, 7].into(), [10, 8, 0, 9].into()));

    // A replay of it through the other worker meets the same window.
    w0.ports[WAN].rx.push_back(spoke_esp());
    w0.poll(3);
    w1.poll(3);
    assert!(w1.ports[LAN].tx.is_empty());
    assert_eq!(drops(&w1.counters), vec![(DropReason::EspReplay.name(), 1)]);
}

#[test]
fn a_full_handoff_ring_is_a_counted_drop() {
    let (hub, _) = config(1000);
    let [mut w0, _w1] = two_workers(&owned_by_worker_1(&hub));
    for i in 0..70 {
        w0.ports[LAN].rx.push_back(lan_ping([10, 2, 0, i]));
    }
    w0.poll(1);
    w0.poll(1);
    w0.poll(1);
    assert_eq!(w0.counters.handed_off.get(), 64);
    assert_eq!(drops(&w0.counters), vec![(DropReason::HandoffRingFull.name(), 6)]);
}
