//! The scenario and its generators deliver where a user expects, so that the benchmarks cannot silently
//! measure a drop path: LAN→tunnel emits ESP on the WAN port that the spoke's side of the SA decrypts
//! back to the LAN host's packet; tunnel→LAN emits the spoke's inner packet on the LAN port;
//! spoke→hub→spoke emits ESP toward the other spoke; nothing is dropped or punted.

use std::sync::Arc;

use dataplane::crypto::{default_backend, SoftEngine};
use dataplane::drop::DropReason;
use dataplane::esp::{EspProcessor, InboundReq, OutboundReq};
use dataplane::pkt::{HeapPkt, PacketBuf};
use dataplane::sa::{Direction, Sa, SaDb, SaRtTable};
use dataplane::wire::ethernet::{self, Address, EtherType};
use dataplane::wire::{gre, ipv4, IpProtocol};
use perf::scenario::{self, Scenario, ScenarioOptions, LAN, WAN};
use perf::traffic::{write_udp4, Bench, FrameSize, Path};

fn push_ethernet(pkt: &mut HeapPkt, src: [u8; 6], dst: [u8; 6]) {
    let eth = ethernet::Repr { src_addr: Address(src), dst_addr: Address(dst), vlan: None, ethertype: EtherType::IPV4 };
    eth.emit(&mut ethernet::Packet::new_unchecked(pkt.prepend(14).unwrap()));
}

/// Every path and size, a few bursts each, on 5 spokes: all delivered, no drop counted by the hub.
#[test]
fn every_path_delivers_without_drops() {
    let mut bench = Bench::new(Scenario::build(ScenarioOptions::new(5)).unwrap());
    let warm = bench.prewarm().unwrap();
    assert_eq!((warm.packets, warm.delivered, warm.wrong), (10, 10, 0));
    for path in Path::ALL {
        for size in FrameSize::ALL {
            let m = bench.run_bursts(path, size, 4).unwrap();
            assert_eq!(m.packets, 4 * 32, "{path:?} {size:?}");
            assert_eq!((m.delivered, m.wrong), (m.packets, 0), "{path:?} {size:?}");
        }
    }
    let c = &bench.scenario.worker.counters;
    assert_eq!(c.nonzero_drops(), vec![], "the hub counted drops");
    assert_eq!(c.punted.get(), 0);
    assert_eq!(c.rx_packets.get(), c.tx_packets.get());
    // Warm-up: 5 each way. LAN→tunnel encrypts once, tunnel→LAN decrypts once, spoke→hub→spoke both.
    let per_path = 3 * 4 * 32;
    assert_eq!(c.esp_encrypted.get(), 5 + 2 * per_path);
    assert_eq!(c.esp_decrypted.get(), 5 + 2 * per_path);
}

/// A frame from the LAN host to spoke 2's host leaves the WAN port as ESP from the hub to spoke 2's NBMA
/// address, under the hub's outbound SA to spoke 2; the spoke's side of that SA (built here from the
/// same key material) decrypts it to GRE with the tunnel key and the LAN host's packet, TTL less one.
#[test]
fn lan_to_tunnel_is_esp_the_spoke_decrypts() {
    let mut s = Scenario::build(ScenarioOptions::new(3)).unwrap();
    let mut pkt = HeapPkt::new();
    write_udp4(&mut pkt, scenario::LAN_HOST_IP, scenario::spoke_host(2), 100).unwrap();
    let sent_ip = pkt.data().to_vec();
    push_ethernet(&mut pkt, scenario::LAN_HOST_MAC, scenario::HUB_LAN_MAC);
    s.worker.ports[usize::from(LAN.0)].rx.push_back(pkt);
    s.worker.poll(0);
    assert!(s.worker.ports[usize::from(LAN.0)].tx.is_empty());
    let mut out = s.worker.ports[usize::from(WAN.0)].tx.pop().expect("a frame on the WAN port");

    let frame = ethernet::Packet::new_checked(out.data()).unwrap();
    assert_eq!(frame.dst_addr(), Address(scenario::WAN_GW_MAC));
    assert_eq!(frame.src_addr(), Address(scenario::HUB_WAN_MAC));
    let ip = ipv4::Packet::new_checked(frame.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.protocol()),
        (scenario::HUB_WAN_IP, scenario::spoke_nbma(2), IpProtocol::ESP)
    );
    assert_eq!(&ip.payload()[..4], &scenario::spi_out(2).to_be_bytes());
    assert!(out.adj(14 + 20));

    // Spoke 2's inbound SA: the mirror of the hub's outbound one.
    let config = scenario::sa_config(
        scenario::sa_out(2),
        scenario::spi_out(2),
        Direction::Inbound,
        scenario::spoke_nbma(2),
        scenario::HUB_WAN_IP,
    );
    let mut db = SaDb::builder();
    db.insert(scenario::sa_out(2), Arc::new(Sa::new(config, default_backend(), [0; 16]).unwrap())).unwrap();
    let db = db.build().unwrap();
    let mut pkts = [out];
    let mut verdicts = [Err(DropReason::EspMalformed)];
    EspProcessor::new(1).decrypt(
        &mut SoftEngine,
        &db,
        &mut SaRtTable::default(),
        &mut pkts,
        &[InboundReq::Spi],
        &mut verdicts,
    );
    let decrypted = verdicts[0].expect("the spoke decrypts it");
    assert_eq!(decrypted.next_header, 47);
    let g = gre::Packet::new_checked(pkts[0].data()).unwrap();
    assert_eq!((g.key(), g.protocol_type()), (Some(scenario::GRE_KEY), gre::Protocol::IPV4));
    let inner = &pkts[0].data()[g.header_len()..];
    assert_eq!(inner.len(), sent_ip.len());
    assert_eq!(inner[8], sent_ip[8] - 1, "TTL decremented once");
    assert_eq!(inner[12..], sent_ip[12..], "addresses and UDP unchanged");
}

/// Through the runner: ESP from a spoke reaches the LAN port at the size sent. By hand: ESP from spoke 0
/// for spoke 1's LAN leaves the WAN port as ESP to spoke 1 under the hub's SA to spoke 1.
#[test]
fn tunnel_to_lan_and_spoke_to_spoke_come_out_where_expected() {
    let mut bench = Bench::new(Scenario::build(ScenarioOptions::new(2)).unwrap());
    for (path, size) in [(Path::TunnelToLan, 64), (Path::TunnelToLan, 1400), (Path::SpokeToSpoke, 576)] {
        let m = bench.burst(path, FrameSize::Fixed(size), 1).unwrap();
        assert_eq!((m.packets, m.delivered, m.wrong), (1, 1, 0), "{path:?} {size}");
    }

    let s = &mut bench.scenario;
    let mut pkt = HeapPkt::new();
    write_udp4(&mut pkt, scenario::spoke_host(0), scenario::spoke_host(1), 200).unwrap();
    let g = gre::Repr { protocol: gre::Protocol::IPV4, checksum: false, key: Some(scenario::GRE_KEY), sequence: None };
    g.emit(&mut gre::Packet::new_unchecked(pkt.prepend(8).unwrap()));
    let mut pkts = [pkt];
    let mut verdicts = [Ok(())];
    let req = [Some(OutboundReq { sa: scenario::sa_in(0), next_header: 47 })];
    let mut rt = SaRtTable::default();
    // The runner's generator already used the first sequence numbers of spoke 0's SA: go past them.
    rt.entry(&s.spoke_sas, scenario::sa_in(0)).unwrap().resume_after(1_000);
    EspProcessor::new(1).encrypt(&mut SoftEngine, &s.spoke_sas, &mut rt, &mut pkts, &req, &mut verdicts);
    verdicts[0].unwrap();
    let [mut pkt] = pkts;
    let ip = ipv4::Repr {
        src_addr: scenario::spoke_nbma(0),
        dst_addr: scenario::HUB_WAN_IP,
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
    ip.emit(&mut ipv4::Packet::new_unchecked(pkt.prepend(20).unwrap()));
    push_ethernet(&mut pkt, scenario::WAN_GW_MAC, scenario::HUB_WAN_MAC);
    s.worker.ports[usize::from(WAN.0)].rx.push_back(pkt);
    s.worker.poll(0);
    let out = s.worker.ports[usize::from(WAN.0)].tx.pop().expect("ESP back out of the WAN port");
    let frame = ethernet::Packet::new_checked(out.data()).unwrap();
    let ip = ipv4::Packet::new_checked(frame.payload()).unwrap();
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.protocol()),
        (scenario::HUB_WAN_IP, scenario::spoke_nbma(1), IpProtocol::ESP)
    );
    assert_eq!(&ip.payload()[..4], &scenario::spi_out(1).to_be_bytes());
    assert_eq!(s.worker.counters.nonzero_drops(), vec![]);
}
