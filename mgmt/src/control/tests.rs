//! The control loop's events and per-peer debug, driven by real NHRP engines as spokes: a hub (its
//! tunnels unprotected, so that no IKE is needed) takes two spokes' registrations; a debug condition on
//! one spoke's overlay address must trace that spoke's packets and nothing of the other's.

use std::time::Duration;

use dataplane::tables::TablesPublisher;
use serde_json::json;

use super::*;
use crate::config::Config;
use crate::debug::Condition;

const HUB: &str = include_str!("../../configs/hub.toml");
const SPOKE: &str = include_str!("../../configs/spoke.toml");
const HUB_NBMA: &str = "192.0.2.1";

fn unprotected(toml: &str) -> Config {
    Config::from_toml(&toml.replace("protection = \"dmvpn\"\n", "")).unwrap()
}

fn hub(now: Instant) -> Control {
    let config = unprotected(HUB);
    let setup = Setup { workers: 1, backend: dataplane::crypto::default_backend(), iv_seed: [7; 16], nhrp_seed: 1 };
    Control::new(&config, TablesPublisher::new().0, &[[2, 0, 0, 0, 0, 1]; 3], setup, now).unwrap()
}

/// A spoke's NHRP engine: NBMA `nbma`, overlay `overlay`, registering with the hub.
fn spoke(nbma: &str, overlay: &str, seed: u64) -> nhrp::Engine {
    let config = unprotected(&SPOKE.replace("203.0.113.10", nbma).replace("10.0.0.11/24", &format!("{overlay}/24")));
    let plan = Plan::new(&config).unwrap();
    let mut e = nhrp::Engine::new(seed);
    e.add_tunnel(Time(0), nhrp::TunnelId(1), plan.tunnels[0].nhrp.clone()).unwrap();
    e
}

/// Runs the spokes' timers once and hands their packets for the hub to the hub, and the hub's
/// answers back, until nothing moves.
fn exchange(hub: &mut Control, spokes: &mut [(IpAddr, nhrp::Engine)], now: Instant, t: Time) {
    for (_, s) in spokes.iter_mut() {
        s.handle_timeout(t);
    }
    for _ in 0..8 {
        let mut moved = false;
        for (nbma, s) in spokes.iter_mut() {
            while let Some(tx) = s.poll_transmit() {
                if tx.nbma.to_string() != HUB_NBMA {
                    continue; // the second NHS is not in this test
                }
                moved = true;
                let punt = PuntIn {
                    kind: PuntKind::Nhrp,
                    port: Some(PortId(0)),
                    tunnel: Some(TunnelId(1)),
                    sa: None,
                    src: Some(*nbma),
                    dst: Some(tx.nbma),
                    bytes: &tx.bytes,
                };
                hub.handle_punt(now, punt);
            }
            while s.poll_event().is_some() {}
        }
        while let Some(out) = hub.poll_output() {
            if let Output::Tunnel { nbma, bytes, .. } = out {
                if let Some((_, s)) = spokes.iter_mut().find(|(n, _)| *n == nbma) {
                    moved = true;
                    s.handle_datagram(t, nhrp::TunnelId(1), HUB_NBMA.parse().unwrap(), nbma, &bytes);
                }
            }
        }
        if !moved {
            break;
        }
    }
}

#[test]
fn registrations_raise_peer_up_events_and_only_the_debugged_spoke_is_traced() {
    let t0 = Instant::now();
    let mut hub = hub(t0);
    let obs = hub.observe().clone();
    let mut stream = obs.subscribe();
    // `debug nhrp condition peer 10.0.0.11`: by overlay address, NHRP only.
    obs.conditions().set(Condition { peer: "10.0.0.11".parse().unwrap(), what: vec![Facility::Nhrp] }).unwrap();
    let (s1, s2): (IpAddr, IpAddr) = ("203.0.113.10".parse().unwrap(), "203.0.113.20".parse().unwrap());
    let mut spokes = [(s1, spoke("203.0.113.10", "10.0.0.11", 11)), (s2, spoke("203.0.113.20", "10.0.0.12", 12))];
    let now = t0 + Duration::from_millis(1500);
    exchange(&mut hub, &mut spokes, now, Time(1500));

    let events = obs.events(0, 100);
    let up: Vec<_> = events.iter().filter(|e| e.event == "peer_up").collect();
    assert_eq!(up.len(), 2, "{events:?}");
    let e = up.iter().find(|e| e.field("peer").as_deref() == Some("10.0.0.11")).unwrap();
    assert_eq!(
        (e.field("nbma"), e.field("tunnel"), e.field("reason")),
        (Some("203.0.113.10".into()), Some("Tunnel1".into()), Some("registered".into()))
    );
    assert_eq!(e.t_ms, 1500);

    let debug = obs.debug_lines(0, 100);
    assert!(!debug.is_empty());
    assert!(debug.iter().all(|d| d.field("nbma").as_deref() == Some("203.0.113.10")), "only spoke 1: {debug:?}");
    let rx = debug.iter().find(|d| d.event == "nhrp_rx").unwrap();
    assert_eq!((rx.field("op"), rx.field("peer")), (Some("registration_request".into()), Some("10.0.0.11".into())));
    let tx = debug.iter().find(|d| d.event == "nhrp_tx").unwrap();
    assert_eq!((tx.field("op"), tx.field("peer")), (Some("registration_reply".into()), Some("10.0.0.11".into())));
    assert_eq!(serde_json::to_value(&**tx).unwrap()["protected"], json!(false));

    // The stream saw the same, in order, and the status keeps the events for the lab.
    let mut seqs = Vec::new();
    while let Ok(e) = stream.try_recv() {
        seqs.push(e.seq);
    }
    assert_eq!(seqs.len(), events.len() + debug.len());
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    let status = hub.status(now);
    assert!(status["events"].as_array().unwrap().iter().any(|e| e["event"] == "peer_up"));

    // With the condition gone nothing more is traced.
    obs.conditions().clear();
    exchange(&mut hub, &mut spokes, now + Duration::from_secs(400), Time(401_500));
    assert_eq!(obs.debug_lines(0, 1000).len(), debug.len());
}

#[test]
fn an_nhrp_entry_that_expires_raises_peer_down() {
    let t0 = Instant::now();
    let mut hub = hub(t0);
    let mut spokes = [("203.0.113.10".parse().unwrap(), spoke("203.0.113.10", "10.0.0.11", 11))];
    exchange(&mut hub, &mut spokes, t0 + Duration::from_millis(10), Time(10));
    // The spoke goes silent: its registration (hold time 600 s) expires.
    let later = t0 + Duration::from_secs(700);
    hub.handle_timeout(later);
    let down: Vec<_> = hub.observe().events(0, 100).into_iter().filter(|e| e.event == "peer_down").collect();
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!((down[0].field("peer"), down[0].field("nbma")), (Some("10.0.0.11".into()), Some("203.0.113.10".into())));
    assert!(down[0].field("reason").is_some());
}

/// An SA pair as IKE would hand it over, between the hub and the spoke at `nbma`.
fn sa_pair(nbma: &str, spi: u32) -> ikeng::SaPair {
    let keys = |spi: u32| ikeng::SaKeys {
        spi,
        keys: ike::keys::DirKeys { encr: vec![spi as u8; 16], salt: vec![1; 4], integ: Vec::new() },
    };
    ikeng::SaPair {
        ike_sa: IkeSaId(u64::from(spi)),
        local: SocketAddr::new(HUB_NBMA.parse().unwrap(), IKE_PORT),
        remote: SocketAddr::new(nbma.parse().unwrap(), IKE_PORT),
        udp_encap: false,
        suite: ike::config::EspSuite {
            encr: ike::message::EncrId::ENCR_AES_GCM_16,
            key_bits: 128,
            integ: ike::message::IntegId::NONE,
            esn: false,
        },
        mode: ikeng::Mode::Transport,
        inbound: keys(spi),
        outbound: keys(spi + 1),
        ts_local: Vec::new(),
        ts_remote: Vec::new(),
    }
}

#[test]
fn debug_esp_traces_the_replay_and_integrity_drops_of_the_debugged_peer_only() {
    let t0 = Instant::now();
    let mut hub = hub(t0);
    let obs = hub.observe().clone();
    obs.conditions().set(Condition { peer: "203.0.113.10".parse().unwrap(), what: vec![Facility::Esp] }).unwrap();
    hub.install_pair(t0, &sa_pair("203.0.113.10", 0x1000));
    hub.install_pair(t0, &sa_pair("203.0.113.20", 0x2000));
    let db = hub.tables.staged().sas().clone();
    let inbound = |nbma: &str| db.get(hub.peers[&nbma.parse::<IpAddr>().unwrap()].pairs[0].in_idx).unwrap();
    // What the data plane counts on each peer's inbound SA.
    let (s1, s2) = (inbound("203.0.113.10"), inbound("203.0.113.20"));
    for _ in 0..3 {
        s1.counters().count_replay_drop();
        s2.counters().count_replay_drop();
    }
    s1.counters().count_auth_failure();
    let drops = |obs: &Observe| -> Vec<Arc<crate::events::Event>> {
        obs.debug_lines(0, 100).into_iter().filter(|d| d.event == "esp_drops").collect()
    };
    hub.trace_esp_drops(t0 + Duration::from_secs(1));
    let lines = drops(&obs);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v = serde_json::to_value(&*lines[0]).unwrap();
    assert_eq!((v["nbma"].clone(), v["spi"].clone()), (json!("203.0.113.10"), json!("00001000")));
    assert_eq!(
        (v["replay_drops"].clone(), v["auth_failures"].clone(), v["reason"].clone()),
        (json!(3), json!(1), json!("replay"))
    );
    // Nothing new, nothing traced; one more drop, one more line with just that one.
    hub.trace_esp_drops(t0 + Duration::from_secs(2));
    assert_eq!(drops(&obs).len(), 1);
    s1.counters().count_auth_failure();
    hub.trace_esp_drops(t0 + Duration::from_secs(3));
    let v = serde_json::to_value(&*drops(&obs)[1]).unwrap();
    assert_eq!(
        (v["replay_drops"].clone(), v["auth_failures"].clone(), v["reason"].clone()),
        (json!(0), json!(1), json!("integrity"))
    );
}

#[test]
fn sa_used_marks_the_entries_of_that_nbma_only_as_the_teib_changes() {
    let t0 = Instant::now();
    let mut hub = hub(t0);
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let (n1, n2, n3) = (ip("203.0.113.10"), ip("203.0.113.20"), ip("203.0.113.30"));
    let (o1, o2) = (ip("10.0.0.11"), ip("10.0.0.12"));
    let mut spokes = [(n1, spoke("203.0.113.10", "10.0.0.11", 11)), (n2, spoke("203.0.113.20", "10.0.0.12", 12))];
    exchange(&mut hub, &mut spokes, t0 + Duration::from_millis(10), Time(10));
    assert_eq!(
        (hub.teib.get(&(TunnelId(1), o1)), hub.teib.get(&(TunnelId(1), o2))),
        (Some(&(n1, false)), Some(&(n2, false)))
    );
    hub.teib.assert_consistent();
    for (n, spi) in [(n1, 0x1000), (n2, 0x2000), (n3, 0x3000)] {
        hub.install_pair(t0, &sa_pair(&n.to_string(), spi));
    }
    let out_sa = |hub: &Control, n: IpAddr| hub.peers[&n].pairs[0].out_idx;
    let used = |hub: &mut Control, n: IpAddr| {
        let sa = out_sa(hub, n);
        hub.handle_sa_event(t0, SaEvent { sa, kind: SaEventKind::Used });
        hub.teib.assert_consistent();
    };
    let marked = |hub: &Control, o: IpAddr| {
        let e = hub.nhrp().cache().get(nhrp::TunnelId(1), &o).expect("registered");
        e.flags.0 & EntryFlags::USED != 0
    };
    assert!(!marked(&hub, o1) && !marked(&hub, o2));

    // 10.0.0.11 now maps to another NBMA address: its old SA no longer marks it.
    hub.set_teib(TunnelId(1), o1, n3, true);
    hub.teib.assert_consistent();
    assert!(!hub.teib.has_nbma(n1));
    used(&mut hub, n1);
    assert!(!marked(&hub, o1) && !marked(&hub, o2));

    // 10.0.0.12's adjacency goes while another entry keeps its NBMA address (and SA): the SA's traffic
    // no longer marks it.
    hub.set_teib(TunnelId(2), ip("10.0.1.12"), n2, true);
    hub.on_nhrp_event(t0, nhrp::Event::AdjacencyRemoved { tunnel: nhrp::TunnelId(1), proto: o2, nbma: n2 });
    assert_eq!(hub.teib.get(&(TunnelId(1), o2)), None);
    hub.teib.assert_consistent();
    used(&mut hub, n2);
    assert!(!marked(&hub, o1) && !marked(&hub, o2));

    // The new NBMA address's SA marks the moved entry, and only that.
    used(&mut hub, n3);
    assert!(marked(&hub, o1) && !marked(&hub, o2));
    // Back on its NBMA address, 10.0.0.12 is marked by its SA again.
    hub.set_teib(TunnelId(1), o2, n2, true);
    used(&mut hub, n2);
    assert!(marked(&hub, o2));

    // The last IKE SA of 203.0.113.30 goes: its dynamic entries go with it, from the index too.
    hub.ike_sa_gone(t0, IkeSaId(0x3000), n3, "test");
    assert_eq!(hub.teib.get(&(TunnelId(1), o1)), None);
    assert!(!hub.teib.has_nbma(n3));
    hub.teib.assert_consistent();
    assert_eq!(hub.teib.len(), 2);

    // The static entries of a spoke's NHSs are indexed from the start.
    let setup = Setup { workers: 1, backend: dataplane::crypto::default_backend(), iv_seed: [7; 16], nhrp_seed: 1 };
    let spoke =
        Control::new(&unprotected(SPOKE), TablesPublisher::new().0, &[[2, 0, 0, 0, 0, 1]; 3], setup, t0).unwrap();
    spoke.teib.assert_consistent();
    assert_eq!(spoke.teib.of_nbma(ip(HUB_NBMA)).collect::<Vec<_>>(), [((TunnelId(1), ip("10.0.0.1")), true)]);
}
