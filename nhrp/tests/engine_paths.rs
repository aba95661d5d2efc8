//! Engine paths the big simulation does not take: NHS clusters with priorities and max-connections
//! (register with the best N, promote on failure, demote on recovery), a network id shared by several
//! tunnels of a hub, IPv6 overlays and IPv6 NBMA networks in all four combinations, and a lossy network
//! with per-link latency (registrations converge, retransmissions back off), its capture written to a
//! pcap and dissected by tshark.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nhrp::wire::{ExtensionBody, ExtensionType, Operation, Packet};
use nhrp::{Engine, EntryFlags, EntryKind, Event, NhsConfig, NhsState, Time, TunnelConfig, TunnelId};
use support::sim::{ip_header, Sim, T};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn nhs(proto: &str, nbma: &str, priority: u8, cluster: u8) -> NhsConfig {
    NhsConfig { proto: ip(proto), nbma: ip(nbma), priority, cluster }
}

fn states(sim: &Sim, node: usize) -> Vec<NhsState> {
    sim.nodes[node].engine.nhs(T).iter().map(|n| n.state).collect()
}

fn revive(sim: &mut Sim, node: usize) {
    sim.nodes[node].alive = true;
    let now = sim.now;
    sim.nodes[node].engine.handle_timeout(now);
    sim.flush(node);
}

#[test]
fn clusters_register_with_the_best_n_and_promote_and_demote() {
    use NhsState::{Down, Idle, Up};
    let mut sim = Sim::new();
    let hubs = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"];
    for (i, h) in hubs.iter().enumerate() {
        let mut e = Engine::new(i as u64 + 1);
        e.add_tunnel(Time(0), T, TunnelConfig::new(ip(&format!("10.0.0.{}", i + 1)), ip(h))).expect("hub");
        sim.add(e, ip(h));
    }
    let mut c = TunnelConfig::new(ip("10.0.1.1"), ip("198.51.100.1"));
    c.holding_time = 60; // registrations every 20 s
                         // Cluster 0: three NHSs, at most two used, best priority first; cluster 1: one, no limit.
    c.nhs = vec![
        nhs("10.0.0.1", hubs[0], 1, 0),
        nhs("10.0.0.2", hubs[1], 2, 0),
        nhs("10.0.0.3", hubs[2], 3, 0),
        nhs("10.0.0.4", hubs[3], 1, 1),
    ];
    c.max_connections = vec![(0, 2)];
    let mut e = Engine::new(9);
    e.add_tunnel(Time(0), T, c).expect("spoke");
    let s = sim.add(e, ip("198.51.100.1"));
    sim.run_for(5);
    assert_eq!(states(&sim, s), [Up, Up, Idle, Up]);
    assert_eq!(sim.nodes[s].engine.nhs(T)[2].requests, 0, "the third of cluster 0 is not used");
    assert!(sim.nodes[2].engine.cache().is_empty(), "so it holds no registration");
    assert_eq!(sim.nodes[s].engine.multicast_nbmas(T), [ip(hubs[0]), ip(hubs[1]), ip(hubs[3])]);

    // The best NHS dies: after NHS_DOWN_AFTER unanswered tries (sent at 20, 21, 23 s) it is down at
    // 27 s and the third of the cluster takes its place.
    sim.nodes[0].alive = false;
    sim.run_for(21);
    assert_eq!(states(&sim, s), [Up, Up, Idle, Up], "not down after two tries");
    sim.run_for(3);
    assert_eq!(states(&sim, s), [Down, Up, Up, Up], "promoted on the third unanswered try");
    let ev = &sim.nodes[s].events;
    let down = ev.iter().position(|e| *e == Event::NhsDown { tunnel: T, nhs: ip("10.0.0.1") }).expect("down");
    let up3 = ev.iter().position(|e| *e == Event::NhsUp { tunnel: T, nhs: ip("10.0.0.3") }).expect("up");
    assert!(down < up3);
    assert!(sim.nodes[2].engine.cache().get(T, &ip("10.0.1.1")).is_some(), "registered with the third");

    // It comes back: still probed, it is up within the capped backoff, and the third is demoted.
    revive(&mut sim, 0);
    sim.run_for(25);
    assert_eq!(states(&sim, s), [Up, Up, Idle, Up], "demoted when the better one returned");
    assert!(sim.nodes[s].events.ends_with(&[Event::NhsUp { tunnel: T, nhs: ip("10.0.0.1") }]));
    let sent = sim.nodes[s].engine.nhs(T)[2].requests;
    sim.run_for(60);
    assert_eq!(sim.nodes[s].engine.nhs(T)[2].requests, sent, "an idle NHS gets no more registrations");
}

#[test]
fn tunnels_of_one_network_id_resolve_each_other() {
    let (t1, t2, t3) = (TunnelId(1), TunnelId(2), TunnelId(3));
    let mut sim = Sim::new();
    let mut hub = Engine::new(1);
    for (t, net, proto) in [(t1, 1, "10.1.0.1"), (t2, 1, "10.2.0.1"), (t3, 2, "10.3.0.1")] {
        let mut c = TunnelConfig::new(ip(proto), ip("192.0.2.1"));
        c.network_id = net;
        c.auth = Some(b"k".to_vec());
        c.redirect = true;
        hub.add_tunnel(Time(0), t, c).expect("hub tunnel");
    }
    hub.add_route(t2, ip("172.16.2.0"), 24, ip("10.2.0.2"));
    hub.add_route(t3, ip("172.16.3.0"), 24, ip("10.3.0.3"));
    let h = sim.add(hub, ip("192.0.2.1"));
    let mut spokes = Vec::new();
    for (n, hub_proto) in [(1, "10.1.0.1"), (2, "10.2.0.1"), (3, "10.3.0.1")] {
        let mut c = TunnelConfig::new(ip(&format!("10.{n}.0.{n}")), ip(&format!("198.51.100.{n}")));
        c.auth = Some(b"k".to_vec());
        c.nhs = vec![nhs(hub_proto, "192.0.2.1", 1, 0)];
        c.local_networks = vec![(ip(&format!("172.16.{n}.0")), 24)];
        let mut e = Engine::new(10 + n);
        e.add_tunnel(Time(0), T, c).expect("spoke");
        let s = sim.add(e, ip(&format!("198.51.100.{n}")));
        sim.set_tunnel(h, s, TunnelId(n as u16));
        spokes.push(s);
    }
    sim.capture = Some(Vec::new());
    sim.run_for(2);
    for (i, t) in [t1, t2, t3].into_iter().enumerate() {
        let e = sim.nodes[h].engine.cache().get(t, &ip(&format!("10.{}.0.{}", i + 1, i + 1)));
        assert_eq!(e.map(|e| e.kind), Some(EntryKind::Registered), "spoke {} on tunnel {t:?}", i + 1);
    }
    // Spoke 1 (tunnel 1) resolves into spoke 2's network (tunnel 2, same network id): forwarded on
    // tunnel 2, answered directly.
    let now = sim.now;
    sim.nodes[spokes[0]].engine.resolve(now, T, ip("172.16.2.9"));
    sim.nodes[spokes[0]].engine.resolve(now, T, ip("172.16.3.9"));
    sim.flush(spokes[0]);
    sim.run_for(2);
    let s1 = &sim.nodes[spokes[0]].engine;
    assert_eq!(s1.cache().get(T, &ip("172.16.2.0")).map(|e| e.nbma), Some(ip("198.51.100.2")));
    // Spoke 3's network is in another network id: no binding.
    assert!(s1.cache().covering(T, &ip("172.16.3.9")).is_none());
    let c = sim.nodes[h].engine.counters();
    assert_eq!((c.resolutions_forwarded, c.resolutions_negative), (1, 1));
    // The forwarded request lists the hub as tunnel 2 knows it in the Forward Transit NHS Record.
    let fwd = sim.capture.take().expect("capture").into_iter().find_map(|(_, src, dst, b)| {
        let p = Packet::parse(&b).ok()?;
        (src == ip("192.0.2.1") && dst == ip("198.51.100.2") && p.op == Operation::RESOLUTION_REQUEST).then_some(p)
    });
    let fwd = fwd.expect("the hub forwarded the request to spoke 2");
    let Some(ExtensionBody::ForwardTransit(rec)) = fwd.extension(ExtensionType::FORWARD_TRANSIT).map(|e| &e.body)
    else {
        panic!("no forward transit record")
    };
    assert_eq!(rec.iter().map(|c| c.proto).collect::<Vec<_>>(), [Some(ip("10.2.0.1"))]);
}

/// A spoke network's prefix length: /24 for IPv4, /64 for IPv6.
fn lan_len(lan: &str) -> u8 {
    if ip(lan).is_ipv4() {
        24
    } else {
        64
    }
}

/// A hub and two spokes, spoke 1 behind NAT, with the given overlay and underlay addresses; spoke 1
/// sends to spoke 2's network through the hub, which redirects (Phase 3). No authentication: tshark
/// reads Cisco's plaintext secret as RFC 2332's SPI and source address, which it wants as long as an
/// NBMA address (16 bytes over IPv6).
fn overlay_underlay(proto: [&str; 3], lans: [&str; 2], nbma: [&str; 3], nat_public: &str, pcap: &str) {
    let mut sim = Sim::new();
    sim.capture = Some(Vec::new());
    let mut c = TunnelConfig::new(ip(proto[0]), ip(nbma[0]));
    c.redirect = true;
    let mut hub = Engine::new(1);
    hub.add_tunnel(Time(0), T, c).expect("hub");
    hub.add_route(T, ip(lans[0]), lan_len(lans[0]), ip(proto[1]));
    hub.add_route(T, ip(lans[1]), lan_len(lans[1]), ip(proto[2]));
    let h = sim.add(hub, ip(nbma[0]));
    let mut spokes = Vec::new();
    for i in 1..3 {
        let mut c = TunnelConfig::new(ip(proto[i]), ip(nbma[i]));
        c.shortcut = true;
        c.nhs = vec![NhsConfig { proto: ip(proto[0]), nbma: ip(nbma[0]), priority: 1, cluster: 0 }];
        let lan = ip(lans[i - 1]);
        c.local_networks = vec![(lan, lan_len(lans[i - 1]))];
        let mut e = Engine::new(i as u64 + 1);
        e.add_tunnel(Time(0), T, c).expect("spoke");
        spokes.push(sim.add(e, if i == 1 { ip(nat_public) } else { ip(nbma[i]) }));
    }
    sim.run_for(2);
    let reg = sim.nodes[h].engine.cache().get(T, &ip(proto[1])).cloned().expect("spoke 1 registered");
    assert_eq!((reg.nbma, reg.claimed_nbma), (ip(nat_public), ip(nbma[1])));
    assert!(reg.flags.has(EntryFlags::NAT));
    assert_eq!(sim.nodes[spokes[0]].engine.nhs(T)[0].nat_nbma, Some(ip(nat_public)));
    assert_eq!(sim.nodes[h].engine.cache().get(T, &ip(proto[2])).map(|e| e.nbma), Some(ip(nbma[2])));

    let host = |lan: &str| -> IpAddr {
        match ip(lan) {
            IpAddr::V4(a) => IpAddr::from(Ipv4Addr::from(u32::from(a) + 9)),
            IpAddr::V6(a) => IpAddr::from(Ipv6Addr::from(u128::from(a) + 9)),
        }
    };
    let now = sim.now;
    sim.nodes[h].engine.handle_redirect(now, T, None, &ip_header(host(lans[0]), host(lans[1])));
    sim.flush(h);
    sim.run_for(2);
    let lan2 = ip(lans[1]);
    let len = lan_len(lans[1]);
    let ev =
        Event::ShortcutAdded { tunnel: T, prefix: lan2, prefix_len: len, next_hop: ip(proto[2]), nbma: ip(nbma[2]) };
    assert!(sim.nodes[spokes[0]].events.contains(&ev), "{:?}", sim.nodes[spokes[0]].events);
    // Spoke 2 bound spoke 1 at its public address, which the hub's NAT extension gave.
    let back = sim.nodes[spokes[1]].engine.cache().get(T, &ip(proto[1])).map(|e| e.nbma);
    assert_eq!(back, Some(ip(nat_public)));
    let frames = sim.capture.take().expect("capture");
    let rows = support::dissect_clean(pcap, &frames, &["nhrp.hdr.afn", "nhrp.hdr.pro.type", "nhrp.hdr.op.type"]);
    let afn = if ip(nbma[0]).is_ipv4() { "0x0001" } else { "0x0002" };
    let pro = if ip(proto[0]).is_ipv4() { "0x0800" } else { "0x86dd" };
    assert!(rows.iter().all(|r| r[0] == afn && r[1] == pro), "{rows:?}");
    // Registrations and replies, the Traffic Indication, the request (sent, forwarded), the reply.
    let ops: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(ops, ["3", "3", "4", "4", "8", "1", "1", "2"]);
}

#[test]
fn ipv4_overlay_on_ipv4_nbma() {
    let proto = ["10.0.0.1", "10.0.0.11", "10.0.0.12"];
    let nbma = ["192.0.2.1", "172.16.0.11", "198.51.100.12"];
    overlay_underlay(proto, ["10.11.0.0", "10.12.0.0"], nbma, "203.0.113.11", "v4v4");
}

#[test]
fn ipv6_overlay_on_ipv4_nbma() {
    let proto = ["2001:db8::1", "2001:db8::11", "2001:db8::12"];
    let nbma = ["192.0.2.1", "172.16.0.11", "198.51.100.12"];
    overlay_underlay(proto, ["2001:db8:11::", "2001:db8:12::"], nbma, "203.0.113.11", "v6v4");
}

#[test]
fn ipv4_overlay_on_ipv6_nbma() {
    let proto = ["10.0.0.1", "10.0.0.11", "10.0.0.12"];
    let nbma = ["2001:db8:ffff::1", "fd00::11", "2001:db8:ffff::12"];
    overlay_underlay(proto, ["10.11.0.0", "10.12.0.0"], nbma, "2001:db8:eeee::11", "v4v6");
}

#[test]
fn ipv6_overlay_on_ipv6_nbma() {
    let proto = ["2001:db8::1", "2001:db8::11", "2001:db8::12"];
    let nbma = ["2001:db8:ffff::1", "fd00::11", "2001:db8:ffff::12"];
    overlay_underlay(proto, ["2001:db8:11::", "2001:db8:12::"], nbma, "2001:db8:eeee::11", "v6v6");
}

/// Two hubs and `n` spokes on links that drop 20% of the packets, each directed link with its own
/// latency between 5 and 150 ms; every spoke also lists a third NHS that does not exist.
fn lossy(seed: u64, n: u32) -> (Sim, Vec<usize>) {
    let mut sim = Sim::lossy(seed, 200, (5, 150));
    sim.capture = Some(Vec::new());
    for h in 1..3u8 {
        let mut e = Engine::new(u64::from(h));
        let c = TunnelConfig::new(ip(&format!("10.0.0.{h}")), ip(&format!("192.0.2.{h}")));
        e.add_tunnel(Time(0), T, c).expect("hub");
        sim.add(e, ip(&format!("192.0.2.{h}")));
    }
    let mut spokes = Vec::new();
    for i in 0..n {
        let mut c = TunnelConfig::new(ip(&format!("10.0.1.{}", i + 1)), ip(&format!("198.51.100.{}", i + 1)));
        c.holding_time = 60; // registrations every 20 s
        c.nhs = vec![
            nhs("10.0.0.1", "192.0.2.1", 1, 0),
            nhs("10.0.0.2", "192.0.2.2", 2, 0),
            nhs("10.0.0.99", "192.0.2.99", 3, 0),
        ];
        let mut e = Engine::new(100 + u64::from(i));
        e.add_tunnel(Time(0), T, c).expect("spoke");
        spokes.push(sim.add(e, ip(&format!("198.51.100.{}", i + 1))));
    }
    sim.run_for(120);
    (sim, spokes)
}

#[test]
fn lossy_links_converge_and_retransmissions_back_off() {
    use NhsState::{Down, Up};
    let (mut sim, spokes) = lossy(7, 40);
    assert!(sim.dropped > 100, "the network lost packets: {}", sim.dropped);
    // The same seed gives the same run.
    let (again, _) = lossy(7, 40);
    assert_eq!((again.delivered, again.dropped), (sim.delivered, sim.dropped));
    // Every spoke is registered at both hubs: lost registrations were resent in time.
    let mut retried = 0;
    for (i, &s) in spokes.iter().enumerate() {
        for h in 0..2 {
            let e = sim.nodes[h].engine.cache().get(T, &ip(&format!("10.0.1.{}", i + 1)));
            assert_eq!(e.map(|e| e.kind), Some(EntryKind::Registered), "spoke {i} at hub {h}");
        }
        retried += sim.nodes[s].engine.nhs(T)[..2].iter().filter(|n| n.failures > 0).count();
    }
    assert!(retried > 0, "some registrations were lost and resent");
    // Three losses in a row make a live NHS look down; once the network heals, the probing that goes on
    // (at most a registration interval apart) finds it up again.
    let downs = spokes.iter().filter(|&&s| states(&sim, s)[..2].contains(&Down)).count();
    sim.set_loss(0);
    sim.run_for(25);
    for (i, &s) in spokes.iter().enumerate() {
        assert_eq!(states(&sim, s), [Up, Up, Down], "spoke {i} ({downs} spokes saw a live NHS down)");
    }

    // tshark reads the capture: spoke 1's registrations to the missing NHS, all with one request id,
    // leave after 1, 2, 4, 8 and 16 seconds, then every registration interval (20 s), for 145 s.
    let frames = sim.capture.take().expect("capture");
    let rows = support::dissect_clean(
        "lossy",
        &frames,
        &["frame.time_epoch", "ip.src", "ip.dst", "nhrp.hdr.op.type", "nhrp.reqid"],
    );
    assert_eq!(rows.len(), frames.len());
    let probes: Vec<&Vec<String>> =
        rows.iter().filter(|r| r[1] == "198.51.100.1" && r[2] == "192.0.2.99" && r[3] == "3").collect();
    let times: Vec<f64> = probes.iter().map(|r| r[0].parse().expect("time")).collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0, 20.0, 20.0, 20.0], "{times:?}");
    assert!(probes.iter().all(|r| r[4] == probes[0][4]), "one stable request id");
}
