//! The 10,000-spoke NHRP simulation (issue 4): 2 hubs and 10,000 spokes register on a virtual clock,
//! 1,000 spoke pairs build Phase 3 shortcuts through a hub's Traffic Indications, and every cache ends
//! as it must: each spoke registered at both hubs at its public NBMA address, each requester holding
//! the shortcut to its peer's network, each responder holding the requester.

#[path = "../../nhrp/tests/support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use nhrp::{Engine, EntryKind, NhsConfig, NhsState, TunnelConfig};
use support::sim::{ip_header, Sim, T};

const SPOKES: u32 = 10_000;

fn v4(x: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(x))
}
fn spoke_proto(i: u32) -> IpAddr {
    v4(0x0a00_1000 + i)
}
fn spoke_nbma(i: u32) -> IpAddr {
    v4(0xac10_0000 + i)
}
fn spoke_public(i: u32) -> IpAddr {
    v4(0xcb00_0000 + i)
}
fn spoke_lan(i: u32) -> IpAddr {
    v4(0x0a80_0000 + (i << 8))
}

#[test]
#[allow(clippy::print_stdout)]
fn ten_thousand_spokes() {
    let started = Instant::now();
    let mut sim = Sim::new();
    for h in 0..2u32 {
        let mut c = TunnelConfig::new(v4(0x0a00_0001 + h), v4(0xc000_0201 + h));
        c.holding_time = 600;
        c.redirect = true;
        let mut e = Engine::new(u64::from(h));
        e.reserve(SPOKES as usize);
        e.add_tunnel(sim.now, T, c).expect("hub");
        for i in 0..SPOKES {
            e.add_route(T, spoke_lan(i), 24, spoke_proto(i));
        }
        sim.add(e, v4(0xc000_0201 + h));
    }
    for i in 0..SPOKES {
        let mut c = TunnelConfig::new(spoke_proto(i), spoke_nbma(i));
        c.holding_time = 600;
        c.shortcut = true;
        c.local_networks = vec![(spoke_lan(i), 24)];
        c.nhs = (0..2)
            .map(|h| NhsConfig { proto: v4(0x0a00_0001 + h), nbma: v4(0xc000_0201 + h), priority: h as u8, cluster: 0 })
            .collect();
        let mut e = Engine::new(100 + u64::from(i));
        e.add_tunnel(sim.now, T, c).expect("spoke");
        sim.add(e, spoke_public(i));
    }
    sim.run_for(20);
    for h in 0..2 {
        let hub = &sim.nodes[h].engine;
        assert_eq!(hub.cache().len(), SPOKES as usize);
        for i in 0..SPOKES {
            let e = hub.cache().get(T, &spoke_proto(i)).expect("registered");
            assert_eq!((e.nbma, e.claimed_nbma, e.kind), (spoke_public(i), spoke_nbma(i), EntryKind::Registered));
        }
    }
    assert!(sim.nodes[2..].iter().all(|n| n.engine.nhs(T).iter().all(|s| s.state == NhsState::Up)));

    let pairs: Vec<(u32, u32)> = (0..1000).map(|k| (k * 7 % SPOKES, SPOKES - 1 - k)).collect();
    for &(a, b) in &pairs {
        let now = sim.now;
        let pkt = ip_header(v4(0x0a80_0000 + (a << 8) + 1), v4(0x0a80_0000 + (b << 8) + 1));
        sim.nodes[0].engine.handle_redirect(now, T, None, &pkt);
        sim.flush(0);
    }
    sim.run_for(5);
    for &(a, b) in &pairs {
        let sa = &sim.nodes[2 + a as usize].engine;
        let sc = sa.cache().get(T, &spoke_lan(b)).expect("shortcut");
        assert_eq!((sc.prefix_len, sc.nbma), (24, spoke_public(b)));
        let sb = &sim.nodes[2 + b as usize].engine;
        assert_eq!(sb.cache().get(T, &spoke_proto(a)).map(|e| e.nbma), Some(spoke_public(a)));
    }
    println!(
        "10,000 spokes: {} packets delivered, {:.0} virtual s, {:.1} s wall",
        sim.delivered,
        sim.now.0 as f64 / 1000.0,
        started.elapsed().as_secs_f64()
    );
}
