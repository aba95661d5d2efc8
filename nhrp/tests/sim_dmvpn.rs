//! Deterministic simulation on a virtual clock: 2 hubs and 1,000 spokes (half of them behind NAT)
//! register, build Phase 3 shortcuts on Traffic Indications, refresh the used ones and let the unused
//! expire, lose a hub, lose a spoke, and change a spoke's NAT address; every cache is checked against
//! what RFC 2332 and Cisco's behaviour say it must hold. A smaller network shows the hub purging the
//! shortcuts to a spoke whose binding changed or expired (§5.2.5).

mod support;

use std::net::{IpAddr, Ipv4Addr};

use nhrp::{Engine, EntryFlags, EntryKind, Event, NhsConfig, NhsState, TunnelConfig};
use support::sim::{ip_header, Sim, T};

const SPOKES: u32 = 1000;
const HOLD: u16 = 600;
const SECRET: &[u8] = b"dmvpn";

fn v4(x: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(x))
}
fn hub_proto(h: u32) -> IpAddr {
    v4(0x0a00_0001 + h) // 10.0.0.1, 10.0.0.2
}
fn hub_nbma(h: u32) -> IpAddr {
    v4(0xc000_0201 + h) // 192.0.2.1, 192.0.2.2
}
fn spoke_proto(i: u32) -> IpAddr {
    v4(0x0a00_0100 + i) // 10.0.1.0 + i
}
fn spoke_private(i: u32) -> IpAddr {
    v4(0xac10_0000 + i) // 172.16.0.0 + i
}
/// Even spokes sit behind NAT; odd ones have public addresses.
fn spoke_public(i: u32) -> IpAddr {
    if i.is_multiple_of(2) {
        v4(0xcb00_7100 + i) // 203.0.113.0 + i (wraps into the next /24s: only a label here)
    } else {
        spoke_private(i)
    }
}
fn spoke_lan(i: u32) -> IpAddr {
    v4(0x0a80_0000 + (i << 8)) // 10.128.0.0 + i*256, a /24 each
}

fn nhs(h: u32, priority: u8) -> NhsConfig {
    NhsConfig { proto: hub_proto(h), nbma: hub_nbma(h), priority, cluster: 0 }
}

struct Net {
    sim: Sim,
    hubs: [usize; 2],
    spokes: Vec<usize>,
}

fn build(n: u32) -> Net {
    let mut sim = Sim::new();
    let mut hubs = [0; 2];
    for h in 0..2u32 {
        let mut cfg = TunnelConfig::new(hub_proto(h), hub_nbma(h));
        cfg.holding_time = HOLD;
        cfg.auth = Some(SECRET.to_vec());
        cfg.redirect = true;
        cfg.nhs = vec![nhs(1 - h, 1)]; // hub to hub
        let mut e = Engine::new(u64::from(h) + 1);
        e.add_tunnel(sim.now, T, cfg).expect("hub config");
        for i in 0..n {
            e.add_route(T, spoke_lan(i), 24, spoke_proto(i));
        }
        hubs[h as usize] = sim.add(e, hub_nbma(h));
    }
    let mut spokes = Vec::new();
    for i in 0..n {
        let mut cfg = TunnelConfig::new(spoke_proto(i), spoke_private(i));
        cfg.holding_time = HOLD;
        cfg.auth = Some(SECRET.to_vec());
        cfg.shortcut = true;
        cfg.unique = i == 4;
        cfg.nhs = vec![nhs(0, 1), nhs(1, 2)];
        cfg.local_networks = vec![(spoke_lan(i), 24)];
        let mut e = Engine::new(1000 + u64::from(i));
        e.add_tunnel(sim.now, T, cfg).expect("spoke config");
        spokes.push(sim.add(e, spoke_public(i)));
    }
    Net { sim, hubs, spokes }
}

fn registered(net: &Net, hub: usize, i: u32) -> Option<nhrp::Entry> {
    net.sim.nodes[net.hubs[hub]]
        .engine
        .cache()
        .get(T, &spoke_proto(i))
        .filter(|e| e.kind == EntryKind::Registered)
        .cloned()
}

#[test]
fn two_hubs_and_a_thousand_spokes() {
    let mut net = build(SPOKES);
    net.sim.run_for(30);

    // Every spoke is registered at both hubs, with the address the hub saw and the one it claimed.
    for h in 0..2 {
        let hub = &net.sim.nodes[net.hubs[h]].engine;
        assert_eq!(hub.cache().len(), SPOKES as usize + 1, "hub {h}: spokes and the other hub");
        for i in 0..SPOKES {
            let e = registered(&net, h, i).unwrap_or_else(|| panic!("hub {h}: spoke {i} not registered"));
            assert_eq!(e.nbma, spoke_public(i));
            assert_eq!(e.claimed_nbma, spoke_private(i));
            assert_eq!(e.flags.has(EntryFlags::NAT), i % 2 == 0, "spoke {i} NAT flag");
            assert_eq!(e.flags.has(EntryFlags::UNIQUE), i == 4);
            assert_eq!(e.expires.secs_since(e.created), u64::from(HOLD));
        }
        assert_eq!(hub.multicast_nbmas(T).len(), SPOKES as usize + 1);
        assert_eq!(hub.nhs(T)[0].state, NhsState::Up, "hub {h} registered with the other hub");
    }
    for (i, &s) in net.spokes.iter().enumerate() {
        let e = &net.sim.nodes[s].engine;
        assert!(e.nhs(T).iter().all(|n| n.state == NhsState::Up && n.replies == 1), "spoke {i}");
        // The NAT address extension told each NATed spoke its public address.
        let expect_nat = (i % 2 == 0).then(|| spoke_public(i as u32));
        assert!(e.nhs(T).iter().all(|n| n.nat_nbma == expect_nat), "spoke {i}: {:?}", e.nhs(T));
        assert!(net.sim.nodes[s].events.iter().filter(|e| matches!(e, Event::NhsUp { .. })).count() == 2);
    }

    // Phase 3: spoke a sends to spoke b's LAN through hub 0; the hub redirects, a resolves.
    let pairs: Vec<(u32, u32)> = (0..100).map(|k| (k, SPOKES - 1 - k)).collect();
    let hub0 = net.hubs[0];
    for &(a, b) in &pairs {
        let pkt = ip_header(
            v4(u32::from_be_bytes([10, 128, 0, 5]) + (a << 8)),
            v4(u32::from_be_bytes([10, 128, 0, 5]) + (b << 8)),
        );
        let now = net.sim.now;
        net.sim.nodes[hub0].engine.handle_redirect(now, T, Some(spoke_public(a)), &pkt);
        // A second trigger for the same flow within the hold time is rate-limited.
        net.sim.nodes[hub0].engine.handle_redirect(now, T, Some(spoke_public(a)), &pkt);
        net.sim.flush(hub0);
    }
    net.sim.run_for(5);
    let hubc = net.sim.nodes[hub0].engine.counters().clone();
    assert_eq!(hubc.traffic_indications, 100);
    assert_eq!(hubc.redirects_rate_limited, 100);
    assert_eq!(hubc.resolutions_forwarded, 100);
    for &(a, b) in &pairs {
        let sa = &net.sim.nodes[net.spokes[a as usize]];
        let sb = &net.sim.nodes[net.spokes[b as usize]];
        let sc = sa.engine.cache().get(T, &spoke_lan(b)).unwrap_or_else(|| panic!("spoke {a}: no shortcut to {b}"));
        assert_eq!((sc.prefix_len, sc.nbma, sc.kind), (24, spoke_public(b), EntryKind::Resolved));
        assert!(sa.events.contains(&Event::ShortcutAdded {
            tunnel: T,
            prefix: spoke_lan(b),
            prefix_len: 24,
            next_hop: spoke_proto(b),
            nbma: spoke_public(b)
        }));
        assert_eq!(sa.engine.cache().get(T, &spoke_proto(b)).map(|e| e.nbma), Some(spoke_public(b)));
        // The responder bound the requester at its public address (the hub's NAT extension).
        assert_eq!(sb.engine.cache().get(T, &spoke_proto(a)).map(|e| e.nbma), Some(spoke_public(a)), "spoke {b}");
    }

    // Used shortcuts are refreshed before they expire, unused ones expire.
    for _ in 0..14 {
        for &(a, b) in pairs.iter().filter(|(a, _)| a % 2 == 0) {
            let s = net.spokes[a as usize];
            net.sim.nodes[s].engine.mark_used(T, spoke_lan(b));
        }
        net.sim.run_for(60);
    }
    for &(a, b) in &pairs {
        let sa = &net.sim.nodes[net.spokes[a as usize]].engine;
        let has = sa.cache().get(T, &spoke_lan(b)).is_some();
        assert_eq!(has, a % 2 == 0, "spoke {a}: shortcut to {b} kept iff used");
    }

    // Lose hub 0: the spokes declare it down and keep hub 1; resolution goes through hub 1.
    net.sim.nodes[hub0].alive = false;
    net.sim.run_for(HOLD as u64 / 3 + 30);
    for (i, &s) in net.spokes.iter().enumerate() {
        let st: Vec<NhsState> = net.sim.nodes[s].engine.nhs(T).iter().map(|n| n.state).collect();
        assert_eq!(st, [NhsState::Down, NhsState::Up], "spoke {i}");
        assert!(net.sim.nodes[s].events.contains(&Event::NhsDown { tunnel: T, nhs: hub_proto(0) }));
    }
    let (a, b) = (11u32, 500u32);
    let now = net.sim.now;
    let hub1 = net.hubs[1];
    net.sim.nodes[hub1].engine.handle_redirect(
        now,
        T,
        None,
        &ip_header(v4(0x0a80_0000 + (a << 8) + 5), v4(0x0a80_0000 + (b << 8) + 5)),
    );
    net.sim.flush(hub1);
    net.sim.run_for(5);
    let e = net.sim.nodes[net.spokes[a as usize]].engine.cache().get(T, &spoke_lan(b)).cloned();
    assert_eq!(e.map(|e| e.nbma), Some(spoke_public(b)), "shortcut through the surviving hub");

    // NAT remapping: spoke 2 (non-unique) moves, spoke 4 (unique) moves: the hub follows the first
    // and refuses the second until the old binding expires.
    let (p2, p4) = (v4(0xc633_6402), v4(0xc633_6404));
    net.sim.renat(net.spokes[2], p2);
    net.sim.renat(net.spokes[4], p4);
    let s = net.spokes[7];
    net.sim.nodes[s].alive = false; // and lose spoke 7
    for i in [2usize, 4] {
        let now = net.sim.now;
        net.sim.nodes[net.spokes[i]].engine.register(now, T);
        net.sim.flush(net.spokes[i]);
    }
    net.sim.run_for(2);
    assert_eq!(registered(&net, 1, 2).map(|e| e.nbma), Some(p2));
    assert_eq!(registered(&net, 1, 4).map(|e| e.nbma), Some(spoke_public(4)), "unique binding kept");
    assert!(net.sim.nodes[hub1].engine.counters().registrations_refused >= 1);
    assert!(net.sim.nodes[hub1].events.contains(&Event::AdjacencyRemoved {
        tunnel: T,
        proto: spoke_proto(2),
        nbma: spoke_public(2)
    }));
    net.sim.run_for(u64::from(HOLD) + 10);
    assert_eq!(registered(&net, 1, 4).map(|e| e.nbma), Some(p4), "re-registered after the old binding expired");
    assert!(registered(&net, 1, 7).is_none(), "dead spoke expired");
    assert!(net.sim.nodes[hub1].events.contains(&Event::AdjacencyRemoved {
        tunnel: T,
        proto: spoke_proto(7),
        nbma: spoke_public(7)
    }));
    assert_eq!(net.sim.nodes[hub1].engine.cache().len(), SPOKES as usize - 1, "spokes but 7; hub 0 expired");
    // Hub 0's registrations with hub 1 expired too.
    assert!(net.sim.nodes[hub1].engine.cache().get(T, &hub_proto(0)).is_none());

    // Hub 0 comes back: spokes see it up again.
    net.sim.nodes[hub0].alive = true;
    let now = net.sim.now;
    net.sim.nodes[hub0].engine.handle_timeout(now);
    net.sim.flush(hub0);
    net.sim.run_for(HOLD as u64 / 3 + 10);
    for (i, &s) in net.spokes.iter().enumerate().filter(|(i, _)| *i != 7) {
        let st: Vec<NhsState> = net.sim.nodes[s].engine.nhs(T).iter().map(|n| n.state).collect();
        assert_eq!(st, [NhsState::Up, NhsState::Up], "spoke {i} after hub 0 returned");
    }
}

/// A host in spoke `i`'s LAN.
fn lan_host(i: u32) -> IpAddr {
    v4(0x0a80_0005 + (i << 8))
}

fn traffic(net: &mut Net, from: u32, to: u32) {
    let s = net.spokes[from as usize];
    let now = net.sim.now;
    net.sim.nodes[s].engine.resolve(now, T, lan_host(to));
    net.sim.flush(s);
}

fn shortcut_nbma(net: &Net, from: u32, to: u32) -> Option<IpAddr> {
    net.sim.nodes[net.spokes[from as usize]].engine.cache().get(T, &spoke_lan(to)).map(|e| e.nbma)
}

fn purges_sent(net: &Net, hub: usize) -> u64 {
    net.sim.nodes[net.hubs[hub]].engine.counters().tx[5]
}

#[test]
fn hub_purges_shortcuts_to_a_spoke_whose_binding_changes_or_expires() {
    const D: u32 = 12; // behind NAT (even)
    let requesters = [1u32, 3, 5];
    let mut net = build(20);
    net.sim.run_for(30);
    for a in requesters {
        traffic(&mut net, a, D);
    }
    net.sim.run_for(5);
    for a in requesters {
        assert_eq!(shortcut_nbma(&net, a, D), Some(spoke_public(D)), "spoke {a} resolved spoke {D}");
    }
    // Registrations refreshed from the same address change nothing: no purge.
    net.sim.run_for(u64::from(HOLD) / 3 + 10);
    assert_eq!(purges_sent(&net, 0) + purges_sent(&net, 1), 0);
    assert!(requesters.iter().all(|&a| shortcut_nbma(&net, a, D).is_some()));

    // Spoke 5 dies; spoke D's NAT mapping changes and it re-registers from the new address.
    net.sim.nodes[net.spokes[5]].alive = false;
    let moved = v4(0xc633_640c); // 198.51.100.12
    net.sim.renat(net.spokes[D as usize], moved);
    let now = net.sim.now;
    net.sim.nodes[net.spokes[D as usize]].engine.register(now, T);
    net.sim.flush(net.spokes[D as usize]);
    net.sim.run_for(10);
    assert_eq!(registered(&net, 0, D).map(|e| e.nbma), Some(moved));
    // Hub 0 forwarded the three resolutions: it purges the three requesters; hub 1 forwarded none.
    // Spoke 5 never answers: its Purge Request is sent PURGE_TRIES times, after 1 then 2 seconds.
    assert_eq!(purges_sent(&net, 0), 2 + u64::from(nhrp::engine::PURGE_TRIES));
    assert_eq!(purges_sent(&net, 1), 0);
    assert_eq!(net.sim.nodes[net.hubs[0]].engine.counters().rx[6], 2, "Purge Replies from spokes 1 and 3");
    for a in [1u32, 3] {
        let node = &net.sim.nodes[net.spokes[a as usize]];
        assert_eq!(shortcut_nbma(&net, a, D), None, "spoke {a} dropped the shortcut");
        assert!(node.engine.cache().get(T, &spoke_proto(D)).is_none(), "spoke {a} dropped the adjacency");
        for ev in [
            Event::Purged { tunnel: T, proto: spoke_proto(D), prefix_len: 32 },
            Event::ShortcutRemoved { tunnel: T, prefix: spoke_lan(D), prefix_len: 24 },
            Event::AdjacencyRemoved { tunnel: T, proto: spoke_proto(D), nbma: spoke_public(D) },
        ] {
            assert!(node.events.contains(&ev), "spoke {a}: {ev:?} in {:?}", node.events);
        }
        // The purge touched only D's bindings: the spoke's NHSs are still up.
        assert!(node.engine.nhs(T).iter().all(|n| n.state == NhsState::Up));
    }

    // Traffic again: the spokes re-resolve and reach D at its new address.
    for a in [1u32, 3] {
        traffic(&mut net, a, D);
    }
    net.sim.run_for(5);
    for a in [1u32, 3] {
        assert_eq!(shortcut_nbma(&net, a, D), Some(moved), "spoke {a} re-resolved spoke {D}");
    }

    // D dies: when its registration expires at the hub, the requesters are purged again, before their
    // own copies (granted later) would have expired.
    net.sim.nodes[net.spokes[D as usize]].alive = false;
    let before = purges_sent(&net, 0);
    let reg = registered(&net, 0, D).expect("still registered");
    let until = reg.expires.secs_since(net.sim.now) + 2;
    net.sim.run_for(until);
    assert!(registered(&net, 0, D).is_none());
    assert_eq!(purges_sent(&net, 0), before + 2);
    for a in [1u32, 3] {
        assert_eq!(shortcut_nbma(&net, a, D), None, "spoke {a}: shortcut purged at expiry");
        let purged = Event::Purged { tunnel: T, proto: spoke_proto(D), prefix_len: 32 };
        let n = net.sim.nodes[net.spokes[a as usize]].events.iter().filter(|e| **e == purged).count();
        assert_eq!(n, 2, "spoke {a}: purged on the change and on the expiry");
    }
}

#[test]
fn a_forgotten_peer_takes_its_shortcuts_along_and_traffic_resolves_it_again() {
    const D: u32 = 4;
    let mut net = build(6);
    net.sim.run_for(30);
    traffic(&mut net, 1, D);
    net.sim.run_for(5);
    let a = net.spokes[1];
    assert_eq!(shortcut_nbma(&net, 1, D), Some(spoke_public(D)));

    // A stale NBMA address forgets nothing.
    assert!(!net.sim.nodes[a].engine.forget(T, spoke_proto(D), v4(0xc000_0201)));
    assert!(shortcut_nbma(&net, 1, D).is_some());

    // IKE declared D dead: its binding and the shortcut through it go, and say so as events.
    net.sim.nodes[a].events.clear();
    assert!(net.sim.nodes[a].engine.forget(T, spoke_proto(D), spoke_public(D)));
    net.sim.flush(a);
    assert_eq!(shortcut_nbma(&net, 1, D), None);
    assert!(net.sim.nodes[a].engine.cache().get(T, &spoke_proto(D)).is_none());
    for ev in [
        Event::ShortcutRemoved { tunnel: T, prefix: spoke_lan(D), prefix_len: 24 },
        Event::AdjacencyRemoved { tunnel: T, proto: spoke_proto(D), nbma: spoke_public(D) },
    ] {
        assert!(net.sim.nodes[a].events.contains(&ev), "{ev:?} in {:?}", net.sim.nodes[a].events);
    }
    assert_eq!(net.sim.nodes[a].engine.counters().forgotten, 1);
    // The NHS binding of the hub is not a peer's: forgetting an NHS's static entry does nothing.
    assert!(!net.sim.nodes[a].engine.forget(T, hub_proto(0), hub_nbma(0)));

    // The next packet resolves D again.
    traffic(&mut net, 1, D);
    net.sim.run_for(5);
    assert_eq!(shortcut_nbma(&net, 1, D), Some(spoke_public(D)));
}

/// A drained hub (maintenance) refuses the registrations of spokes it holds no binding for (CIE code
/// 5, Insufficient Resources): they stay with the other hub. Spokes already bound keep refreshing. A
/// spoke forgotten by the operator while drained cannot come back until the drain ends.
#[test]
fn a_drained_hub_takes_no_new_spokes() {
    let mut net = build(4);
    let hub0 = net.hubs[0];
    net.sim.run_for(5);
    assert!((0..4).all(|i| registered(&net, 0, i).is_some()));
    net.sim.nodes[hub0].engine.set_draining(true);
    assert!(net.sim.nodes[hub0].engine.clear_entry(T, spoke_proto(1)), "clear ip nhrp 10.0.1.1");
    assert!(!net.sim.nodes[hub0].engine.clear_entry(T, spoke_proto(1)), "already gone");
    net.sim.run_for(u64::from(HOLD)); // every spoke refreshes at least once
    assert!(registered(&net, 0, 1).is_none(), "the cleared spoke is refused");
    assert!(registered(&net, 1, 1).is_some(), "and stays with the other hub");
    assert!([0, 2, 3].iter().all(|&i| registered(&net, 0, i).is_some()), "bound spokes keep refreshing");
    let c = net.sim.nodes[hub0].engine.counters();
    assert!(c.registrations_drained >= 1 && c.registrations_refused >= c.registrations_drained);
    net.sim.nodes[hub0].engine.set_draining(false);
    net.sim.run_for(u64::from(HOLD));
    assert!(registered(&net, 0, 1).is_some(), "back after the drain");
}
