//! A deterministic network of NHRP engines on a virtual clock (quinn's `Pair` grown to a hub and N
//! spokes): packets cross the NBMA network with a fixed latency, through a per-node NAT (a node's
//! public address may differ from the NBMA address it claims), and the clock jumps to the next
//! delivery or timer. Nodes can die (packets to them are lost, their timers stop).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;

use nhrp::{Engine, Event, Time, TunnelId};

/// The one tunnel every node uses.
pub const T: TunnelId = TunnelId(1);
/// One-way NBMA latency, milliseconds.
pub const LATENCY_MS: u64 = 5;

/// A node: its engine, its public (post-NAT) NBMA address, and what it emitted.
pub struct Node {
    pub engine: Engine,
    pub public: IpAddr,
    pub alive: bool,
    pub events: Vec<Event>,
}

/// A packet in flight: (arrival, sequence, receiver, sender's public address, bytes).
type InFlight = (Time, u64, usize, IpAddr, Vec<u8>);

pub struct Sim {
    pub now: Time,
    pub nodes: Vec<Node>,
    by_public: HashMap<IpAddr, usize>,
    queue: BinaryHeap<Reverse<InFlight>>,
    wakeups: BinaryHeap<Reverse<(Time, usize)>>,
    seq: u64,
    pub delivered: u64,
    /// Every packet that crossed the network: (sender's public address, receiver, bytes).
    pub capture: Option<Vec<(IpAddr, IpAddr, Vec<u8>)>>,
}

impl Sim {
    pub fn new() -> Sim {
        Sim {
            now: Time(0),
            nodes: Vec::new(),
            by_public: HashMap::new(),
            queue: BinaryHeap::new(),
            wakeups: BinaryHeap::new(),
            seq: 0,
            delivered: 0,
            capture: None,
        }
    }

    pub fn add(&mut self, engine: Engine, public: IpAddr) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node { engine, public, alive: true, events: Vec::new() });
        self.by_public.insert(public, i);
        self.flush(i);
        i
    }

    /// The node's NAT mapping changes: it is now reached at `public`.
    pub fn renat(&mut self, i: usize, public: IpAddr) {
        self.by_public.remove(&self.nodes[i].public);
        self.nodes[i].public = public;
        self.by_public.insert(public, i);
    }

    /// Drains a node's transmits into the network and its events into its log; schedules its timer.
    pub fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].engine.poll_transmit() {
            if let Some(c) = &mut self.capture {
                c.push((self.nodes[i].public, t.nbma, t.bytes.clone()));
            }
            if let Some(&to) = self.by_public.get(&t.nbma) {
                self.seq += 1;
                let from = self.nodes[i].public;
                self.queue.push(Reverse((self.now.plus_millis(LATENCY_MS), self.seq, to, from, t.bytes)));
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
                let Some(Reverse((_, _, to, from, bytes))) = self.queue.pop() else { break };
                if self.nodes[to].alive {
                    let dst = self.nodes[to].public;
                    self.delivered += 1;
                    self.nodes[to].engine.handle_datagram(self.now, T, from, dst, &bytes);
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

/// An IPv4 header from `src` to `dst` (what a redirect trigger quotes).
pub fn ipv4_header(src: IpAddr, dst: IpAddr) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src, dst) else { panic!("IPv4 only") };
    let mut h = vec![0x45, 0, 0, 84, 0, 1, 0, 0, 64, 1, 0, 0];
    h.extend_from_slice(&s.octets());
    h.extend_from_slice(&d.octets());
    h
}
