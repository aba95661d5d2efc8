//! A hub and many spokes on a virtual clock: the engine under load (RFC 7296 §2.6 COOKIEs, the
//! per-source half-open limit), behind NATs (RFC 3948 §2.3 keepalives keeping a NAT mapping open),
//! and 10,000 spokes rebooting at once.
//!
//! Every node is an [`Engine`]; datagrams take 10 ms plus a seeded jitter of up to 20 ms; the clock
//! jumps to the next delivery or timer. A NAT in front of a spoke rewrites its address and port
//! (500 and 4500 each get a public port) and forgets a mapping idle for `NAT_IDLE`, after which
//! what the hub sends there is lost — what a real NAT does, and why keepalives exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ike::config::{id_fqdn, Config, Dpd, IkeProposal, Keyring, PeerMatch};
use ike::crypto::Random;
use ike::engine::{DownReason, Engine, Event, IkeState, NAT_T_PORT};
use ike::message::{DhGroup, EncrId, IntegId, PrfId};

/// splitmix64, for the engines' randomness and the link's jitter.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Random for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const HUB: usize = 0;
const NAT_IDLE: Duration = Duration::from_secs(30);

fn hub_addr(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), port)
}

/// A NAT in front of one spoke: its public address, and when each mapping (by private port) last
/// carried something outbound.
struct Nat {
    public: IpAddr,
    /// Public port of the spoke's port 500; 4500 maps to this + 1.
    base: u16,
    last_out: HashMap<u16, Instant>,
}

struct Spoke {
    engine: Engine,
    private: IpAddr,
    nat: Option<Nat>,
    events: Vec<Event>,
}

/// A datagram in flight: (node, from, to, data); node 0 is the hub, i + 1 spoke i.
type InFlight = (usize, SocketAddr, SocketAddr, Vec<u8>);

struct Net {
    now: Instant,
    hub: Engine,
    hub_events: Vec<Event>,
    spokes: Vec<Spoke>,
    /// (delivery, seq) → a datagram in flight.
    wire: BTreeMap<(Instant, u64), InFlight>,
    timers: BTreeSet<(Instant, usize)>,
    filed: Vec<Option<Instant>>,
    seq: u64,
    rng: Seeded,
    /// NAT keepalives that reached the hub, per spoke.
    keepalives: Vec<u32>,
    /// Datagrams a NAT dropped because its mapping had expired.
    nat_dropped: u32,
    /// Peak numbers of IKE SAs and of half-open ones the hub held.
    peak_hub_sas: usize,
    peak_half_open: usize,
    /// When a spoke last reported its SA pair installed.
    last_up: Instant,
    /// Spoke by the address the hub sees it at (public with a NAT), ports 500 and 4500.
    by_addr: HashMap<SocketAddr, usize>,
}

fn spoke_config(i: usize) -> Config {
    let mut c = Config::new(id_fqdn(&format!("spoke-{i}")));
    c.keyring = Keyring::default().with(PeerMatch::Any, "dmvpn-secret");
    c.ike_proposals = vec![IkeProposal {
        encr: EncrId::ENCR_AES_GCM_16,
        key_bits: 128,
        integ: IntegId::NONE,
        prf: PrfId::PRF_HMAC_SHA2_256,
        groups: vec![DhGroup::CURVE25519],
    }];
    c.dpd = None;
    c
}

fn hub_config() -> Config {
    let mut c = spoke_config(0);
    c.local_id = id_fqdn("hub");
    c
}

impl Net {
    fn new(seed: u64, hub: Config) -> Net {
        #[allow(clippy::disallowed_methods)] // the epoch of the virtual clock; never read again
        let now = Instant::now();
        Net {
            now,
            hub: Engine::new(hub, Box::new(Seeded(seed))),
            hub_events: Vec::new(),
            spokes: Vec::new(),
            wire: BTreeMap::new(),
            timers: BTreeSet::new(),
            filed: vec![None],
            seq: 0,
            rng: Seeded(seed ^ 0x5eed),
            keepalives: Vec::new(),
            nat_dropped: 0,
            peak_hub_sas: 0,
            peak_half_open: 0,
            last_up: now,
            by_addr: HashMap::new(),
        }
    }

    /// Adds spoke `i` at `private`, behind a NAT with public address `nat` (ports from `base`) if given.
    fn add_spoke(&mut self, config: Config, private: IpAddr, nat: Option<(IpAddr, u16)>) -> usize {
        let i = self.spokes.len();
        let engine = Engine::new(config, Box::new(Seeded((0x1000 + i as u64) ^ self.rng.next())));
        let seen = match nat {
            Some((public, base)) => [SocketAddr::new(public, base), SocketAddr::new(public, base + 1)],
            None => [SocketAddr::new(private, 500), SocketAddr::new(private, NAT_T_PORT)],
        };
        for a in seen {
            self.by_addr.insert(a, i);
        }
        let nat = nat.map(|(public, base)| Nat { public, base, last_out: HashMap::new() });
        self.spokes.push(Spoke { engine, private, nat, events: Vec::new() });
        self.filed.push(None);
        self.keepalives.push(0);
        i
    }

    /// Spoke `i` reboots: a fresh engine (new SPIs, no SAs), same identity and address.
    fn reboot(&mut self, i: usize, config: Config) {
        let seed = self.rng.next();
        self.spokes[i].engine = Engine::new(config, Box::new(Seeded(seed)));
        self.spokes[i].events.clear();
        self.refile(i + 1);
    }

    fn initiate(&mut self, i: usize) {
        let local = SocketAddr::new(self.spokes[i].private, 500);
        self.spokes[i].engine.initiate(self.now, local, hub_addr(500), Some(id_fqdn("hub"))).unwrap();
        self.drain(i + 1);
    }

    fn engine(&mut self, node: usize) -> &mut Engine {
        if node == HUB {
            &mut self.hub
        } else {
            &mut self.spokes[node - 1].engine
        }
    }

    fn refile(&mut self, node: usize) {
        let want = self.engine(node).poll_timeout();
        if self.filed[node] != want {
            if let Some(t) = self.filed[node] {
                self.timers.remove(&(t, node));
            }
            if let Some(t) = want {
                self.timers.insert((t, node));
            }
            self.filed[node] = want;
        }
    }

    fn put(&mut self, node: usize, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        let delay = Duration::from_millis(10 + self.rng.next() % 20);
        self.seq += 1;
        self.wire.insert((self.now + delay, self.seq), (node, from, to, data));
    }

    /// Moves what `node` sent onto the wire (through its NAT) and collects its events.
    fn drain(&mut self, node: usize) {
        while let Some(t) = self.engine(node).poll_transmit() {
            if node == HUB {
                if let Some(&s) = self.by_addr.get(&t.remote) {
                    self.put(s + 1, t.local, t.remote, t.data);
                }
            } else {
                let now = self.now;
                let from = match &mut self.spokes[node - 1].nat {
                    Some(n) => {
                        n.last_out.insert(t.local.port(), now);
                        let port = if t.local.port() == NAT_T_PORT { n.base + 1 } else { n.base };
                        SocketAddr::new(n.public, port)
                    }
                    None => t.local,
                };
                self.put(HUB, from, t.remote, t.data);
            }
        }
        if node == HUB {
            while let Some(e) = self.hub.poll_event() {
                self.hub_events.push(e);
            }
        } else {
            let s = &mut self.spokes[node - 1];
            while let Some(e) = s.engine.poll_event() {
                if matches!(e, Event::InstallSaPair(_)) {
                    self.last_up = self.now;
                }
                s.events.push(e);
            }
        }
        self.refile(node);
    }

    fn deliver(&mut self, node: usize, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        if node == HUB {
            if data == [0xFF] {
                // RFC 3948 §2.3: a keepalive; the daemon drops it before the engine.
                if let Some(&s) = self.by_addr.get(&from) {
                    self.keepalives[s] += 1;
                }
                return;
            }
            self.hub.handle_datagram(self.now, to, from, &data);
        } else {
            let s = &mut self.spokes[node - 1];
            let local_port = match &s.nat {
                Some(n) => {
                    let port = if to.port() == n.base + 1 { NAT_T_PORT } else { 500 };
                    if n.last_out.get(&port).is_none_or(|t| self.now - *t > NAT_IDLE) {
                        self.nat_dropped += 1;
                        return;
                    }
                    port
                }
                None => to.port(),
            };
            let local = SocketAddr::new(s.private, local_port);
            s.engine.handle_datagram(self.now, local, from, &data);
        }
        self.drain(node);
    }

    /// Runs until nothing is left to do or `until` has passed.
    fn run(&mut self, until: Duration) {
        let end = self.now + until;
        loop {
            let wire = self.wire.keys().next().map(|k| k.0);
            let timer = self.timers.first().map(|t| t.0);
            let Some(next) = [wire, timer].into_iter().flatten().min() else { break };
            if next > end {
                self.now = end;
                break;
            }
            self.now = self.now.max(next);
            while let Some(e) = self.wire.first_entry() {
                if e.key().0 > self.now {
                    break;
                }
                let (node, from, to, data) = e.remove();
                self.deliver(node, from, to, data);
            }
            while let Some(&(t, node)) = self.timers.first() {
                if t > self.now {
                    break;
                }
                self.timers.pop_first();
                self.filed[node] = None;
                let now = self.now;
                self.engine(node).handle_timeout(now);
                self.drain(node);
            }
            let (sas, half_open) = self.hub.ike_sa_count();
            self.peak_hub_sas = self.peak_hub_sas.max(sas);
            self.peak_half_open = self.peak_half_open.max(half_open);
        }
    }

    fn up(&self, i: usize) -> bool {
        let ev = &self.spokes[i].events;
        ev.iter().any(|e| matches!(e, Event::IkeSaUp { .. })) && ev.iter().any(|e| matches!(e, Event::InstallSaPair(_)))
    }
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

#[test]
fn cookies_above_the_half_open_threshold() {
    let mut hub = hub_config();
    hub.cookie_threshold = 3;
    let mut net = Net::new(1, hub);
    for i in 0..10 {
        net.add_spoke(spoke_config(i), ip(192, 0, 2, 10 + i as u8), None);
    }
    // All ten at once: the first three find the hub below the threshold, the rest are challenged.
    for i in 0..10 {
        net.initiate(i);
    }
    net.run(Duration::from_secs(30));
    assert!((0..10).all(|i| net.up(i)), "not all up: {:?}", net.hub.stats());
    assert_eq!(net.hub.stats().cookies_sent, 7);
    let challenged = (0..10).filter(|i| net.spokes[*i].engine.stats().cookies_received == 1).count();
    assert_eq!(challenged, 7);
    // Once the load is gone, no more cookies: a late spoke goes straight through.
    let late = net.add_spoke(spoke_config(10), ip(192, 0, 2, 99), None);
    net.initiate(late);
    net.run(Duration::from_secs(10));
    assert!(net.up(late));
    assert_eq!(net.spokes[late].engine.stats().cookies_received, 0);
    assert_eq!(net.hub.ike_sas(net.now).iter().filter(|s| s.state == IkeState::Established).count(), 11);
}

#[test]
fn a_wrong_cookie_is_challenged_again_and_the_initiator_gives_up() {
    // The hub is always under load and has lost its secret between the challenge and the retry (a
    // restarted hub): every retry is challenged anew, and after three the initiator stops.
    let mut hub = hub_config();
    hub.cookie_threshold = 0;
    let mut net = Net::new(2, hub.clone());
    net.add_spoke(spoke_config(0), ip(192, 0, 2, 10), None);
    net.initiate(0);
    for round in 0..4 {
        // Let the challenge reach the spoke and its retry reach the hub, then restart the hub.
        net.run(Duration::from_millis(35));
        net.hub = Engine::new(hub.clone(), Box::new(Seeded(100 + round)));
    }
    net.run(Duration::from_secs(100));
    assert!(!net.up(0));
    assert_eq!(net.spokes[0].engine.stats().cookies_received, 3);
    let failed = net.spokes[0].events.iter().any(|e| {
        matches!(e, Event::Failed { failure: ike::engine::Failure::Refused(t), .. } if *t == ike::message::NotifyType::COOKIE)
    });
    assert!(failed, "{:?}", net.spokes[0].events);
}

#[test]
fn per_source_half_open_limit() {
    let mut hub = hub_config();
    hub.half_open_per_source = 2;
    let mut net = Net::new(3, hub);
    // Five spokes behind one NAT: one public address, ports 1024, 1026, ...
    for i in 0..5 {
        net.add_spoke(spoke_config(i), ip(10, 0, 0, 1 + i as u8), Some((ip(198, 51, 100, 9), 1024 + 2 * i as u16)));
    }
    for i in 0..5 {
        net.initiate(i);
    }
    // Three IKE_SA_INITs arrive while two are half-open from that address: dropped. Their senders
    // retransmit 1 s later, when the first two are up: two find room, one is dropped again and gets
    // in on its next retransmission.
    net.run(Duration::from_secs(60));
    assert_eq!(net.hub.stats().half_open_limited, 4);
    assert!((0..5).all(|i| net.up(i)));
    // Another source is not affected.
    let other = net.add_spoke(spoke_config(5), ip(192, 0, 2, 77), None);
    net.initiate(other);
    net.run(Duration::from_secs(5));
    assert!(net.up(other));
    assert_eq!(net.hub.stats().half_open_limited, 4);
}

/// A spoke behind a NAT whose mappings expire after 30 s idle; the hub checks liveness every 45 s.
fn nat_net(keepalive: Option<Duration>) -> Net {
    let mut hub = hub_config();
    hub.dpd = Some(Dpd { interval: Duration::from_secs(45), retry_interval: Duration::from_secs(2), retries: 2 });
    let mut net = Net::new(4, hub);
    let mut c = spoke_config(0);
    c.nat_keepalive = keepalive;
    net.add_spoke(c, ip(10, 0, 0, 1), Some((ip(198, 51, 100, 9), 40000)));
    net.add_spoke(spoke_config(1), ip(192, 0, 2, 20), None);
    net.initiate(0);
    net.initiate(1);
    net
}

#[test]
fn nat_keepalives_keep_the_mapping_and_the_sa_alive() {
    let mut net = nat_net(Some(Duration::from_secs(20)));
    net.run(Duration::from_secs(210));
    // The spoke behind the NAT moved to 4500 and sent a keepalive every 20 s after it was up (at
    // about 50 ms); the other spoke and the hub (not behind a NAT) sent none.
    let pair = net.spokes[0].events.iter().find_map(|e| match e {
        Event::InstallSaPair(p) => Some(p.clone()),
        _ => None,
    });
    assert!(pair.as_ref().is_some_and(|p| p.udp_encap && p.local.port() == NAT_T_PORT), "{:?}", net.spokes[0].events);
    assert_eq!(net.keepalives[0], 10);
    assert_eq!(net.spokes[0].engine.stats().nat_keepalives, 10);
    assert_eq!((net.keepalives[1], net.hub.stats().nat_keepalives), (0, 0));
    // The hub's DPD got through the NAT each time: both SAs are still there.
    assert_eq!(net.nat_dropped, 0);
    assert!(!net.hub_events.iter().any(|e| matches!(e, Event::PeerDead { .. })));
    assert_eq!(net.hub.ike_sas(net.now).len(), 2);
}

#[test]
fn without_keepalives_the_nat_forgets_the_spoke_and_dpd_declares_it_dead() {
    let mut net = nat_net(None);
    net.run(Duration::from_secs(200));
    assert!(net.nat_dropped > 0);
    assert_eq!(net.keepalives[0], 0);
    let dead: Vec<_> = net
        .hub_events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaDown { remote, reason: DownReason::PeerDead, .. } => Some(*remote),
            _ => None,
        })
        .collect();
    assert_eq!(dead, vec![SocketAddr::new(ip(198, 51, 100, 9), 40001)]);
}

#[test]
fn ten_thousand_spokes_reboot_at_once() {
    const N: usize = 10_000;
    let mut hub = hub_config();
    hub.cookie_threshold = 500;
    let mut net = Net::new(5, hub);
    let addr = |i: usize| ip(100, 64 + (i >> 16) as u8, (i >> 8) as u8, i as u8);
    for i in 0..N {
        net.add_spoke(spoke_config(i), addr(i), None);
    }
    // Come up over 10 s.
    for i in 0..N {
        net.initiate(i);
        if i % 1000 == 999 {
            net.run(Duration::from_secs(1));
        }
    }
    net.run(Duration::from_secs(60));
    assert!((0..N).all(|i| net.up(i)));
    let before: Vec<_> = net.hub.ike_sas(net.now).into_iter().map(|s| s.id).collect();
    assert_eq!(before.len(), N);
    // Power cut: every spoke reboots and dials in at the same instant, with INITIAL_CONTACT (§2.4).
    for i in 0..N {
        net.reboot(i, spoke_config(i));
    }
    for i in 0..N {
        net.initiate(i);
    }
    let t0 = net.now;
    net.run(Duration::from_secs(600));
    let not_up: Vec<usize> = (0..N).filter(|i| !net.up(*i)).collect();
    assert!(
        not_up.is_empty(),
        "{} spokes not up, e.g. {:?}: {:?}",
        not_up.len(),
        &not_up[..5.min(not_up.len())],
        net.hub.stats()
    );
    // The hub challenged the flood with cookies, replaced every old SA, and holds exactly one
    // established IKE SA with one CHILD SA per spoke, none of the old ones, no half-open one left.
    let stats = *net.hub.stats();
    assert!(stats.cookies_sent > 0, "{stats:?}");
    let replaced =
        net.hub_events.iter().filter(|e| matches!(e, Event::IkeSaDown { reason: DownReason::Replaced, .. })).count();
    assert_eq!(replaced, N);
    let sas = net.hub.ike_sas(net.now);
    assert_eq!(sas.len(), N);
    assert!(sas.iter().all(|s| s.state == IkeState::Established && s.children.len() == 1));
    assert!(sas.iter().all(|s| !before.contains(&s.id)));
    // Bounded: never more than the old SAs plus one new one per spoke, and nothing half-open left.
    assert!(net.peak_hub_sas <= 2 * N, "peak {}", net.peak_hub_sas);
    assert_eq!(net.hub.ike_sa_count(), (N, 0));
    eprintln!(
        "10,000 spokes re-established {:?} (virtual) after the reboot; hub: {} cookies sent, peak {} IKE SAs, \
         peak {} half-open",
        net.last_up - t0,
        stats.cookies_sent,
        net.peak_hub_sas,
        net.peak_half_open,
    );
}
