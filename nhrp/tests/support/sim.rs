//! A deterministic network of NHRP engines on a virtual clock (quinn's `Pair` grown to a hub and N
//! spokes): packets cross the NBMA network through a per-node NAT (a node's public address may differ
//! from the NBMA address it claims), and the clock jumps to the next delivery or timer. By default
//! every link has [`LATENCY_MS`] of latency and no loss; [`Sim::lossy`] gives each directed link its
//! own latency and drops packets, both drawn from a seeded RNG (smoltcp's `netsim` sweeps the same
//! way). Nodes can die (packets to them are lost, their timers stop). A node on several tunnels is
//! told on which one a sender's packets arrive with [`Sim::set_tunnel`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;

use nhrp::{Engine, Event, Time, TunnelId};

use super::Frame;

/// The tunnel nodes use unless told otherwise.
pub const T: TunnelId = TunnelId(1);
/// One-way NBMA latency of a lossless simulation, milliseconds.
pub const LATENCY_MS: u64 = 5;

/// A node: its engine, its public (post-NAT) NBMA address, and what it emitted.
pub struct Node {
    pub engine: Engine,
    pub public: IpAddr,
    pub alive: bool,
    pub events: Vec<Event>,
}

/// A packet in flight: (arrival, sequence, receiver, sender, sender's public address, bytes).
type InFlight = (Time, u64, usize, usize, IpAddr, Vec<u8>);

/// Loss and per-link latency, from a seeded xorshift generator.
struct Impairment {
    rng: u64,
    loss_permille: u64,
    latency_ms: (u64, u64),
    links: HashMap<(usize, usize), u64>,
}

impl Impairment {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

pub struct Sim {
    pub now: Time,
    pub nodes: Vec<Node>,
    by_public: HashMap<IpAddr, usize>,
    tunnels: HashMap<(usize, usize), TunnelId>,
    queue: BinaryHeap<Reverse<InFlight>>,
    wakeups: BinaryHeap<Reverse<(Time, usize)>>,
    seq: u64,
    impairment: Option<Impairment>,
    pub delivered: u64,
    /// Packets the lossy network dropped.
    pub dropped: u64,
    /// Every packet sent onto the network (dropped ones included), when set.
    pub capture: Option<Vec<Frame>>,
}

impl Sim {
    pub fn new() -> Sim {
        Sim {
            now: Time(0),
            nodes: Vec::new(),
            by_public: HashMap::new(),
            tunnels: HashMap::new(),
            queue: BinaryHeap::new(),
            wakeups: BinaryHeap::new(),
            seq: 0,
            impairment: None,
            delivered: 0,
            dropped: 0,
            capture: None,
        }
    }

    /// A network that drops `loss_permille`/1000 of the packets and gives each directed link a latency
    /// in `latency_ms` (inclusive), all drawn from `seed`.
    pub fn lossy(seed: u64, loss_permille: u64, latency_ms: (u64, u64)) -> Sim {
        let rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut s = Sim::new();
        s.impairment = Some(Impairment { rng, loss_permille, latency_ms, links: HashMap::new() });
        s
    }

    /// Changes the loss rate of a lossy network (0 heals it; latencies stay).
    pub fn set_loss(&mut self, loss_permille: u64) {
        if let Some(imp) = &mut self.impairment {
            imp.loss_permille = loss_permille;
        }
    }

    pub fn add(&mut self, engine: Engine, public: IpAddr) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node { engine, public, alive: true, events: Vec::new() });
        self.by_public.insert(public, i);
        self.flush(i);
        i
    }

    /// Packets from node `from` reach node `at` on `at`'s tunnel `tunnel`.
    pub fn set_tunnel(&mut self, at: usize, from: usize, tunnel: TunnelId) {
        self.tunnels.insert((at, from), tunnel);
    }

    /// The node's NAT mapping changes: it is now reached at `public`.
    pub fn renat(&mut self, i: usize, public: IpAddr) {
        self.by_public.remove(&self.nodes[i].public);
        self.nodes[i].public = public;
        self.by_public.insert(public, i);
    }

    /// When a packet sent now from `from` to `to` arrives, or `None` if the network drops it.
    fn arrival(&mut self, from: usize, to: usize) -> Option<Time> {
        let Some(imp) = &mut self.impairment else { return Some(self.now.plus_millis(LATENCY_MS)) };
        let (lo, hi) = imp.latency_ms;
        let latency = match imp.links.get(&(from, to)) {
            Some(l) => *l,
            None => {
                let l = lo + imp.next() % (hi - lo + 1);
                imp.links.insert((from, to), l);
                l
            }
        };
        (imp.next() % 1000 >= imp.loss_permille).then(|| self.now.plus_millis(latency))
    }

    /// Drains a node's transmits into the network and its events into its log; schedules its timer.
    pub fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].engine.poll_transmit() {
            let from = self.nodes[i].public;
            if let Some(c) = &mut self.capture {
                c.push((self.now, from, t.nbma, t.bytes.clone()));
            }
            let Some(&to) = self.by_public.get(&t.nbma) else { continue };
            match self.arrival(i, to) {
                Some(at) => {
                    self.seq += 1;
                    self.queue.push(Reverse((at, self.seq, to, i, from, t.bytes)));
                }
                None => self.dropped += 1,
            }
        }
        while let Some(e) = self.nodes[i].engine.poll_event() {
            self.nodes[i].events.push(e);
        }
        if let Some(t) = self.nodes[i].engine.poll_timeout() {
            self.wakeups.push(Reverse((t, i)));
        }
    }

    /// Runs until `secs` virtual seconds have passed.
    pub fn run_for(&mut self, secs: u64) {
        let end = self.now.plus_secs(secs);
        loop {
            let next_pkt = self.queue.peek().map(|Reverse((t, ..))| *t);
            let next_wake = self.wakeups.peek().map(|Reverse((t, _))| *t);
            let next = match (next_pkt, next_wake) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            if next > end {
                break;
            }
            self.now = next;
            if next_pkt == Some(next) {
                let Some(Reverse((_, _, to, from, from_public, bytes))) = self.queue.pop() else { break };
                if self.nodes[to].alive {
                    let dst = self.nodes[to].public;
                    let tunnel = self.tunnels.get(&(to, from)).copied().unwrap_or(T);
                    self.delivered += 1;
                    self.nodes[to].engine.handle_datagram(self.now, tunnel, from_public, dst, &bytes);
                    self.flush(to);
                }
            } else {
                let Some(Reverse((_, i))) = self.wakeups.pop() else { break };
                let due = self.nodes[i].engine.poll_timeout().is_some_and(|t| t <= self.now);
                if self.nodes[i].alive && due {
                    self.nodes[i].engine.handle_timeout(self.now);
                    self.flush(i);
                }
            }
        }
        self.now = end;
    }
}

/// The start of an IPv4 or IPv6 packet from `src` to `dst` (what a redirect trigger quotes).
pub fn ip_header(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut h = vec![0x45, 0, 0, 84, 0, 1, 0, 0, 64, 1, 0, 0];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0, 0, 64, 58, 64];
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        _ => panic!("addresses of two families: {src} -> {dst}"),
    }
}
