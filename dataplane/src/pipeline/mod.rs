//! The packet pipeline: what a worker does to one burst.
//!
//! ```text
//!  rx ─► l2-input ─► ip-input ─► FIB ─┬─► local ──► esp-in (batch decrypt) ─► gre-input ─► ip-input (overlay VRF) ─┐
//!        │ ARP/ND                     │            udp 500/4500 ─► punt IKE       │ NHRP ─► punt               │
//!        ▼                            │            gre (cleartext) ───────────────┘                            │
//!       reply / punt                  └─► forward ◄────────────────────────────────────────────────────────────┘
//!                                          │ TTL, MSS clamp, MTU (ICMP errors)
//!                                          ├─► port ─► l2-output ─► tx
//!                                          └─► tunnel: redirect trigger, TEIB ─► gre-encap ─► esp-out (batch encrypt)
//!                                                                                   ─► outer IP (+UDP) ─► fVRF route ─► l2-output ─► tx
//! ```
//!
//! Each burst runs in phases so that crypto happens in one batch per direction (VPP's two-phase ESP):
//! (0) the route of every received packet is looked up from its frame, and its next hop, TEIB entry and
//! outbound SA slot are prefetched, in passes over the burst so that at 100,000 peers the cache misses
//! of a burst overlap; (1) every packet goes through input until it is done or waits for decryption or
//! encryption (an untagged IPv4 frame routed to a tunnel peer takes the fast path of `fast.rs` to the
//! encrypt batch, the general stages take the rest); (2) one decrypt batch; (3) decrypted packets
//! continue through GRE input and the overlay FIB, possibly back into a tunnel; (4) one encrypt batch;
//! (5) outer headers and L2; (6) packets go to their port's transmit staging, to the punt ring, or are
//! dropped with their reason counted.
//!
//! Each SA has one owner worker, the only writer of its sequence number and replay window (VPP binds
//! SAs to threads the same way). Before each batch, a packet whose SA another worker owns is parked on
//! that worker's [`HandoffRings`] ring with its state, and the owner runs the rest of its path.
//!
//! Contract: no allocation, no lock, no syscall, no logging; every packet ends counted (tx, punt, handoff
//! or a [`DropReason`]). Packets the pipeline answers itself (ARP replies, ICMP errors and echo replies, ND
//! advertisements) are rewritten in place in the buffer that carried the question.

mod fast;
mod ip;
mod l2;
pub mod ratelimit;
mod tunnel;

use core::net::IpAddr;
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::capture::{Capture, Filter, Point, Seen};
use crate::counters::WorkerCounters;
use crate::crypto::CryptoEngine;
use crate::drop::DropReason;
use crate::esp::{EspProcessor, InboundReq, InboundVerdict, OutboundReq, OutboundVerdict};
use crate::fib::NextHopId;
use crate::ids::{PortId, SaIndex, TunnelId, VrfId, WorkerId};
use crate::pkt::PacketBuf;
use crate::port::Port;
use crate::punt::{ControlRings, Inject, Punt, PuntData, PuntKind, Snapshot};
use crate::sa::SaRtTable;
use crate::tables::Tables;
use crate::worker::MAX_BURST;

use ratelimit::{PerKey, TokenBucket};

/// Where a packet goes after the stage that just handled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Dropped, for this reason.
    Drop(DropReason),
    /// Ready: its data is an Ethernet frame for this port.
    Tx(PortId),
    /// Goes to the control plane whole (its data starts at the header the kind names).
    Punt(PuntKind),
    /// Consumed with nothing to send (a punted snapshot said all there was to say).
    Consumed,
    /// Waits for the decrypt batch: data starts at the ESP header.
    Decrypt,
    /// Waits for the encrypt batch: data is the ESP payload, [`Meta::out`] says where it goes.
    Encrypt,
    /// Goes to the worker that owns its SA, to wait there for the batch `Step` says.
    Handoff(WorkerId, Batch),
}

/// The batch a handed-off packet waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    Decrypt,
    Encrypt,
}

/// A packet on its way to the worker that owns its SA, with the state of its path so far.
#[derive(Debug)]
struct Parked<P> {
    pkt: P,
    batch: Batch,
    meta: Meta,
}

/// One ring per worker, into which the other workers hand the packets of the SAs it owns. Shared by all
/// the workers of a dataplane; a full ring is a counted drop
/// ([`DropReason::HandoffRingFull`]), never a wait.
pub struct HandoffRings<P> {
    rings: Vec<ArrayQueue<Parked<P>>>,
}

impl<P> HandoffRings<P> {
    /// Rings for `workers` workers, each holding `capacity` packets.
    pub fn new(workers: usize, capacity: usize) -> Self {
        Self { rings: (0..workers).map(|_| ArrayQueue::new(capacity.max(1))).collect() }
    }

    /// Packets waiting for `worker`.
    pub fn pending(&self, worker: WorkerId) -> usize {
        self.rings.get(usize::from(worker.0)).map_or(0, ArrayQueue::len)
    }
}

impl<P> core::fmt::Debug for HandoffRings<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandoffRings").field("workers", &self.rings.len()).finish()
    }
}

/// Where an encapsulated packet goes: filled by tunnel output, read after encryption.
#[derive(Debug, Clone, Copy)]
struct Outer {
    src: IpAddr,
    dst: IpAddr,
    sa: Option<SaIndex>,
    /// ESP next header (47 GRE in transport mode, 4/41 in tunnel mode).
    next_header: u8,
    /// DSCP and ECN for the outer header, copied from the inner one (RFC 6040 normal mode, RFC 2983).
    tos: u8,
    /// UDP encapsulation ports (RFC 3948), if NAT-T.
    natt: Option<(u16, u16)>,
    port: PortId,
    gateway: IpAddr,
    /// The TEIB entry's resolved headers, when it has them: then `port` and `gateway` come from it.
    rewrite: Option<crate::teib::Rewrite>,
}

/// The outer path the last packet of a burst took into a tunnel, toward overlay next hop `nh`: the
/// packets that follow it to the same next hop (a burst toward one peer) reuse it instead of looking
/// the TEIB up and working the path and tunnel MTU out again. Valid for one burst, whose tables
/// snapshot it came from.
#[derive(Debug, Clone, Copy)]
struct LastOut {
    tunnel: TunnelId,
    nh: IpAddr,
    out: Outer,
    mtu: usize,
}

/// A packet's route, looked up from the destination its frame seemed to have before the packet was
/// parsed: IP input uses it when it finds the same destination in the same VRF (it always does, but for
/// frames that are not what their first bytes suggest).
#[derive(Debug, Clone, Copy)]
struct RouteHint {
    vrf: VrfId,
    dst: IpAddr,
    nh: Option<NextHopId>,
}

/// Per-packet state carried between phases.
#[derive(Debug, Clone, Copy)]
struct Meta {
    rx_port: PortId,
    /// Outer addresses of the ESP/GRE packet it arrived in (source as seen, after NAT).
    outer_src: IpAddr,
    outer_dst: IpAddr,
    /// ECN bits of the outer header, applied to the inner at decapsulation (RFC 6040).
    outer_ecn: u8,
    /// Inbound SA that authenticated it.
    sa_in: Option<SaIndex>,
    /// Tunnel it came out of (overlay packets, NHRP).
    from_tunnel: Option<TunnelId>,
    out: Option<Outer>,
}

impl Meta {
    fn new(rx_port: PortId) -> Self {
        let any = IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED);
        Self { rx_port, outer_src: any, outer_dst: any, outer_ecn: 0, sa_in: None, from_tunnel: None, out: None }
    }
}

/// Everything a stage reads or writes besides the packet, borrowed for one burst.
struct Ctx<'a, P> {
    t: &'a Tables,
    counters: &'a WorkerCounters,
    rings: &'a ControlRings<P>,
    now: u64,
    /// The running capture and its filter, when one runs.
    capture: Option<(Arc<Capture>, Arc<Filter>)>,
    worker: WorkerId,
}

impl<P: PacketBuf> Ctx<'_, P> {
    /// Offers a packet to the running capture, if any. (Its data is looked at only then.)
    #[inline]
    fn capture(&self, seen: Seen, pkt: &P) {
        if let Some((capture, filter)) = &self.capture {
            capture.offer(filter, self.worker, self.now, seen, pkt.data());
        }
    }

    /// A packet staged for transmission on `port`: offered to the capture; returns its bytes.
    #[inline]
    fn staged(&self, port: PortId, pkt: &P) -> u64 {
        let seen = Seen { point: Point::Tx, port: Some(port), tunnel: None, peer: None, outer: None };
        self.capture(seen, pkt);
        pkt.len() as u64
    }
}

/// What a trigger says about a packet (see [`Punt`] for the meaning of each field per kind).
#[derive(Debug, Clone, Copy)]
struct Note {
    kind: PuntKind,
    tunnel: Option<TunnelId>,
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
}

/// DSCP of what the box itself originates (NHRP, ICMP errors): CS6, network control (RFC 4594).
const NETWORK_CONTROL_DSCP: u8 = 48;

/// How long the per-key trigger limits hold back a repeat (redirects, TEIB and neighbour misses).
const TRIGGER_INTERVAL_NS: u64 = 1_000_000_000;

/// The per-worker pipeline: scratch arrays, batch crypto, rate limiters.
pub struct Pipeline<P> {
    /// The worker this pipeline runs on.
    id: WorkerId,
    /// The other workers' rings; `None` when this is the only worker.
    handoff: Option<Arc<HandoffRings<P>>>,
    /// Where captured packets go.
    capture: Option<Arc<Capture>>,
    engine: Box<dyn CryptoEngine<P>>,
    step: Vec<Step>,
    meta: Vec<Meta>,
    esp: EspProcessor,
    esp_in: Vec<InboundReq>,
    in_verdicts: Vec<InboundVerdict>,
    esp_out: Vec<Option<OutboundReq>>,
    out_verdicts: Vec<OutboundVerdict>,
    tx: Vec<Vec<P>>,
    /// The burst of injected or handed-off packets.
    side: Vec<P>,
    /// Fragments just cut from a packet, before their own path.
    fragments: Vec<P>,
    /// Packets born during the burst (fragments) with their step and state, joining it right after
    /// their parent (its index) before the next phase.
    extra: Vec<(usize, P, Step, Meta)>,
    /// Index in the burst of the packet being handled, the parent of what it gives birth to.
    at: usize,
    /// The outer path of the burst's last packet into a tunnel.
    last_out: Option<LastOut>,
    /// The fast path's run toward the last next hop it took.
    fast: Option<fast::FastRun>,
    /// The route of each packet of the burst as looked up before the first was handled.
    routes: Vec<Option<RouteHint>>,
    redirects: PerKey,
    misses: PerKey,
    icmp: TokenBucket,
    ip_id: u16,
}

impl<P> core::fmt::Debug for Pipeline<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pipeline").field("ports", &self.tx.len()).finish()
    }
}

impl<P: PacketBuf> Pipeline<P> {
    /// A pipeline for worker `id` with `ports` ports, encrypting with `engine`. Alone, it runs every SA
    /// itself; [`Self::with_handoff`] connects it to the other workers.
    pub fn new(id: WorkerId, engine: Box<dyn CryptoEngine<P>>, ports: usize) -> Self {
        Self {
            id,
            handoff: None,
            capture: None,
            engine,
            step: Vec::with_capacity(MAX_BURST),
            meta: Vec::with_capacity(MAX_BURST),
            esp: EspProcessor::new(MAX_BURST),
            esp_in: Vec::with_capacity(MAX_BURST),
            in_verdicts: Vec::with_capacity(MAX_BURST),
            esp_out: Vec::with_capacity(MAX_BURST),
            out_verdicts: Vec::with_capacity(MAX_BURST),
            tx: (0..ports).map(|_| Vec::with_capacity(MAX_BURST)).collect(),
            side: Vec::with_capacity(MAX_BURST),
            fragments: Vec::with_capacity(64),
            extra: Vec::with_capacity(MAX_BURST),
            at: 0,
            last_out: None,
            fast: None,
            routes: Vec::with_capacity(MAX_BURST),
            redirects: PerKey::new(TRIGGER_INTERVAL_NS),
            misses: PerKey::new(TRIGGER_INTERVAL_NS),
            // ICMP errors: at most 1,000 a second per worker, bursts of 100 (RFC 1812 §4.3.2.8).
            icmp: TokenBucket::new(1_000, 100),
            ip_id: 0,
        }
    }

    /// Connects the pipeline to the other workers: packets of SAs they own go to them.
    pub fn with_handoff(mut self, rings: Arc<HandoffRings<P>>) -> Self {
        self.handoff = Some(rings);
        self
    }

    /// Lets management capture packets of this pipeline with `capture`.
    pub fn with_capture(mut self, capture: Arc<Capture>) -> Self {
        self.capture = Some(capture);
        self
    }

    /// The context of one burst: the tables, and the capture filter read once. What the last burst
    /// cached from its tables is forgotten.
    fn ctx<'a>(
        &mut self,
        t: &'a Tables,
        counters: &'a WorkerCounters,
        rings: &'a ControlRings<P>,
        now: u64,
    ) -> Ctx<'a, P> {
        self.last_out = None;
        self.routes.clear();
        let capture = self.capture.as_ref().and_then(|c| Some((c.clone(), c.filter()?)));
        Ctx { t, counters, rings, now, capture, worker: self.id }
    }

    /// Runs one burst received on `rx_port` through the pipeline and transmits what comes out on
    /// `ports`. `burst` is left empty.
    #[allow(clippy::too_many_arguments)]
    pub fn process<Q: Port<Buf = P>>(
        &mut self,
        t: &Tables,
        rt: &mut SaRtTable,
        counters: &WorkerCounters,
        rings: &ControlRings<P>,
        rx_port: PortId,
        burst: &mut Vec<P>,
        ports: &mut [Q],
        now: u64,
    ) {
        let cx = self.ctx(t, counters, rings, now);
        self.step.clear();
        // Each packet's state is built in place in the array, never copied (it is large); the array is
        // taken out of `self` so that the stages can borrow both.
        let mut metas = core::mem::take(&mut self.meta);
        metas.clear();
        let mut rx_bytes = 0;
        self.route_burst(&cx, rx_port, burst);
        let port = cx.t.port(rx_port);
        for i in 0..burst.len() {
            let Some(pkt) = burst.get_mut(i) else { break };
            rx_bytes += pkt.len() as u64;
            let seen = Seen { point: Point::Rx, port: Some(rx_port), tunnel: None, peer: None, outer: None };
            cx.capture(seen, pkt);
            self.at = self.step.len();
            metas.push(Meta::new(rx_port));
            let Some(meta) = metas.last_mut() else { break };
            let fast = port.and_then(|port| self.fast_input(&cx, port, pkt, meta));
            let step = match fast {
                Some(step) => step,
                None => self.l2_input(&cx, pkt, meta),
            };
            self.step.push(step);
        }
        self.meta = metas;
        counters.rx_packets.add(burst.len() as u64);
        counters.rx_bytes.add(rx_bytes);
        self.run_crypto_phases(&cx, rt, burst);
        self.finish(&cx, burst, ports);
        forward_sa_events(&cx, rt);
    }

    /// Looks up the route of every packet of a burst before the first is handled, from the destination
    /// its frame seems to have ([`RouteHint`]), and starts loading each next hop and its TEIB entry.
    /// At 100,000 peers each of those reads is a cache miss; issued together, the misses of a burst
    /// overlap instead of following one another (VPP's and DPDK's bulk lookups do the same).
    fn route_burst(&mut self, cx: &Ctx<'_, P>, rx_port: PortId, burst: &[P]) {
        let Some(vrf) = cx.t.port(rx_port).map(|p| p.vrf) else { return };
        let Some(fibs) = cx.t.vrf(vrf) else { return };
        // Packets to one destination, and to one next hop, follow one another: each run's route and
        // next hop are looked up and loaded once.
        let mut last = None;
        for pkt in burst {
            let dst = l2::dst_hint(pkt.data());
            if dst != last {
                last = dst;
                if let Some(dst) = dst {
                    cx.t.prefetch_route(vrf, dst);
                }
            }
            self.routes.push(dst.map(|dst| RouteHint { vrf, dst, nh: None }));
        }
        let (mut last_dst, mut last_nh) = (None, None);
        for hint in self.routes.iter_mut().flatten() {
            if last_dst == Some(hint.dst) {
                hint.nh = last_nh;
                continue;
            }
            last_dst = Some(hint.dst);
            hint.nh = match hint.dst {
                IpAddr::V4(a) => fibs.v4.lookup(a),
                IpAddr::V6(a) => fibs.v6.lookup(a),
            };
            if hint.nh != last_nh {
                last_nh = hint.nh;
                if let Some(id) = hint.nh {
                    cx.t.prefetch_next_hop(id);
                }
            }
        }
        // By now the first TEIB entries have arrived: their outbound SAs are next.
        let mut last = None;
        for hint in self.routes.iter().flatten() {
            if hint.nh == last {
                continue;
            }
            last = hint.nh;
            if let Some(sa) = hint.nh.and_then(|id| cx.t.next_hop_adjacency(id)).and_then(|a| a.entry.sa_out) {
                cx.t.sas().prefetch_slot(sa);
            }
        }
    }

    /// The route of `dst` in `vrf` for the packet being handled: [`Self::route_burst`]'s answer when it
    /// looked up the same destination, else a lookup now.
    #[inline]
    fn route(&self, cx: &Ctx<'_, P>, vrf: VrfId, dst: IpAddr) -> Option<NextHopId> {
        match self.routes.get(self.at) {
            Some(Some(hint)) if hint.dst == dst && hint.vrf == vrf => hint.nh,
            _ => cx.t.route(vrf, dst),
        }
    }

    /// Sends what the control plane queued on the inject ring (at most one burst). Returns how many.
    pub fn inject<Q: Port<Buf = P>>(
        &mut self,
        t: &Tables,
        rt: &mut SaRtTable,
        counters: &WorkerCounters,
        rings: &ControlRings<P>,
        ports: &mut [Q],
        now: u64,
    ) -> usize {
        if rings.injects.is_empty() {
            return 0;
        }
        let cx = self.ctx(t, counters, rings, now);
        self.step.clear();
        self.meta.clear();
        let mut burst = core::mem::take(&mut self.side);
        while burst.len() < MAX_BURST {
            let Some(inject) = rings.injects.pop() else { break };
            let (pkt, step, meta) = match inject {
                Inject::Frame { port, pkt } => (pkt, Step::Tx(port), Meta::new(port)),
                Inject::Tunnel { tunnel, nbma, sa, protocol, mut pkt } => {
                    let mut meta = Meta::new(PortId(u16::MAX));
                    self.at = burst.len();
                    let step = self.tunnel_inject(&cx, &mut pkt, &mut meta, tunnel, nbma, sa, protocol);
                    (pkt, step, meta)
                }
            };
            burst.push(pkt);
            self.step.push(step);
            self.meta.push(meta);
        }
        let n = burst.len();
        self.run_crypto_phases(&cx, rt, &mut burst);
        self.finish(&cx, &mut burst, ports);
        forward_sa_events(&cx, rt);
        self.side = burst;
        n
    }

    /// Runs the rest of the path of the packets other workers handed to this one (at most one burst).
    /// Returns how many.
    pub fn handoffs<Q: Port<Buf = P>>(
        &mut self,
        t: &Tables,
        rt: &mut SaRtTable,
        counters: &WorkerCounters,
        rings: &ControlRings<P>,
        ports: &mut [Q],
        now: u64,
    ) -> usize {
        let Some(handoff) = self.handoff.clone() else { return 0 };
        let Some(ring) = handoff.rings.get(usize::from(self.id.0)) else { return 0 };
        if ring.is_empty() {
            return 0;
        }
        let cx = self.ctx(t, counters, rings, now);
        self.step.clear();
        self.meta.clear();
        let mut burst = core::mem::take(&mut self.side);
        while burst.len() < MAX_BURST {
            let Some(parked) = ring.pop() else { break };
            burst.push(parked.pkt);
            self.step.push(match parked.batch {
                Batch::Decrypt => Step::Decrypt,
                Batch::Encrypt => Step::Encrypt,
            });
            self.meta.push(parked.meta);
        }
        let n = burst.len();
        self.run_crypto_phases(&cx, rt, &mut burst);
        self.finish(&cx, &mut burst, ports);
        forward_sa_events(&cx, rt);
        self.side = burst;
        n
    }

    /// Phases 2 to 5: decrypt batch, overlay input of what was decrypted, encrypt batch, outer
    /// headers. Before each batch, packets of SAs that other workers own are marked for handoff.
    fn run_crypto_phases(&mut self, cx: &Ctx<'_, P>, rt: &mut SaRtTable, burst: &mut Vec<P>) {
        self.join_extra(burst);
        if self.step.contains(&Step::Decrypt) {
            self.mark_handoffs(cx, burst, Batch::Decrypt);
            self.decrypt_all(cx, rt, burst);
            self.join_extra(burst);
        }
        if self.step.contains(&Step::Encrypt) {
            self.mark_handoffs(cx, burst, Batch::Encrypt);
            self.encrypt_all(cx, rt, burst);
        }
    }

    /// The packets born so far join the burst right after their parents, in the order they were born,
    /// so that a flow's packets leave in the order they came (rare: only fragmentation gives birth).
    fn join_extra(&mut self, burst: &mut Vec<P>) {
        // From the last parent back, so that the indices of earlier parents stay valid.
        while let Some((parent, ..)) = self.extra.last() {
            let parent = *parent;
            let first = self.extra.iter().rposition(|e| e.0 != parent).map_or(0, |i| i + 1);
            for (k, (_, pkt, step, meta)) in self.extra.drain(first..).enumerate() {
                let at = (parent + 1 + k).min(burst.len());
                burst.insert(at, pkt);
                self.step.insert(at, step);
                self.meta.insert(at, meta);
            }
        }
    }

    /// Marks for handoff the packets waiting for `batch` whose SA another worker owns. A packet whose
    /// SA is unknown stays: the batch drops it with the reason.
    fn mark_handoffs(&mut self, cx: &Ctx<'_, P>, burst: &[P], batch: Batch) {
        let Some(workers) = self.handoff.as_ref().map(|h| h.rings.len()).filter(|&n| n > 1) else { return };
        let waiting = match batch {
            Batch::Decrypt => Step::Decrypt,
            Batch::Encrypt => Step::Encrypt,
        };
        for ((pkt, step), meta) in burst.iter().zip(self.step.iter_mut()).zip(&self.meta) {
            if *step != waiting {
                continue;
            }
            let sa = match batch {
                Batch::Decrypt => crate::wire::esp::Packet::new_checked(pkt.data())
                    .ok()
                    .and_then(|esp| cx.t.sas().lookup_inbound(esp.spi())),
                Batch::Encrypt => meta.out.and_then(|out| out.sa),
            };
            let Some(owner) = sa.and_then(|sa| cx.t.sas().hot(sa)).map(|hot| hot.owner) else { continue };
            // An owner beyond the workers there are still gets exactly one of them.
            let owner = WorkerId((usize::from(owner.0) % workers) as u16);
            if owner != self.id {
                *step = Step::Handoff(owner, batch);
            }
        }
    }

    /// Phase 6: every packet to its port's staging, the punt ring, or the drop counters; then one
    /// transmit call per port.
    fn finish<Q: Port<Buf = P>>(&mut self, cx: &Ctx<'_, P>, burst: &mut Vec<P>, ports: &mut [Q]) {
        let mut staged_bytes = 0;
        // The common burst leaves whole by one port: it becomes that port's staging as it is.
        if let Some(&Step::Tx(port)) = self.step.first() {
            let staging = self.tx.get_mut(usize::from(port.0)).filter(|q| q.is_empty());
            if let Some(q) = staging.filter(|_| self.step.iter().all(|s| *s == Step::Tx(port))) {
                core::mem::swap(q, burst);
                staged_bytes = q.iter().map(|pkt| cx.staged(port, pkt)).sum();
            }
        }
        for ((pkt, step), meta) in burst.drain(..).zip(self.step.iter()).zip(self.meta.iter()) {
            match *step {
                Step::Tx(port) => match self.tx.get_mut(usize::from(port.0)) {
                    Some(q) => {
                        staged_bytes += cx.staged(port, &pkt);
                        q.push(pkt);
                    }
                    None => cx.counters.drop(DropReason::TxFull),
                },
                Step::Punt(kind) => {
                    let punt = Punt {
                        kind,
                        port: Some(meta.rx_port),
                        tunnel: meta.from_tunnel,
                        sa: meta.sa_in,
                        src: Some(meta.outer_src),
                        dst: Some(meta.outer_dst),
                        data: PuntData::Packet(pkt),
                    };
                    punt_or_count(cx, punt);
                }
                Step::Consumed => {}
                Step::Handoff(owner, batch) => {
                    let ring = self.handoff.as_ref().and_then(|h| h.rings.get(usize::from(owner.0)));
                    let parked = Parked { pkt, batch, meta: *meta };
                    if ring.is_some_and(|r| r.push(parked).is_ok()) {
                        cx.counters.handed_off.inc();
                    } else {
                        cx.counters.drop(DropReason::HandoffRingFull);
                    }
                }
                Step::Drop(reason) => cx.counters.drop(reason),
                // A packet left waiting means a phase did not run: count it rather than lose it.
                Step::Decrypt | Step::Encrypt => cx.counters.drop(DropReason::NoBufferSpace),
            }
        }
        // Bytes are counted as packets are staged; what a port refuses (rare) is taken off again.
        let mut unsent_bytes = 0;
        for (port, q) in ports.iter_mut().zip(self.tx.iter_mut()) {
            if q.is_empty() {
                continue;
            }
            let staged = q.len();
            let sent = port.tx_burst(q);
            cx.counters.tx_packets.add(sent as u64);
            if sent < staged {
                unsent_bytes += q.iter().map(|p| p.len() as u64).sum::<u64>();
                cx.counters.drops[DropReason::TxFull as usize].add((staged - sent) as u64);
            }
            q.clear();
        }
        cx.counters.tx_bytes.add(staged_bytes - unsent_bytes);
    }

    /// Sends a trigger (a note about a packet that goes on or is dropped, with a snapshot of its
    /// `header`) if its rate limit allows: one per kind, port, source and destination per interval.
    fn trigger(&mut self, cx: &Ctx<'_, P>, meta: &Meta, header: &[u8], note: Note) {
        let limiter = match note.kind {
            PuntKind::Redirect => &mut self.redirects,
            _ => &mut self.misses,
        };
        let unspecified = IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED);
        let key = pair_key(note.src.unwrap_or(unspecified), note.dst.unwrap_or(unspecified))
            ^ (u64::from(meta.rx_port.0) << 48)
            ^ ((note.kind as u64) << 60);
        if !limiter.allow(key, cx.now) {
            return;
        }
        let punt = Punt {
            kind: note.kind,
            port: Some(meta.rx_port),
            tunnel: note.tunnel,
            sa: meta.sa_in,
            src: note.src,
            dst: note.dst,
            data: PuntData::Header(Snapshot::of(header)),
        };
        punt_or_count(cx, punt);
    }

    fn next_ip_id(&mut self) -> u16 {
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }
}

/// Hands the SA lifetime events the burst raised to the control plane.
fn forward_sa_events<P>(cx: &Ctx<'_, P>, rt: &mut SaRtTable) {
    for event in rt.drain_events() {
        if cx.rings.events.push(event).is_err() {
            cx.counters.drop(DropReason::PuntRingFull);
        }
    }
}

fn punt_or_count<P>(cx: &Ctx<'_, P>, punt: Punt<P>) {
    if cx.rings.punts.push(punt).is_ok() {
        cx.counters.punted.inc();
    } else {
        cx.counters.drop(DropReason::PuntRingFull);
    }
}

/// A key for per-pair rate limits.
fn pair_key(a: IpAddr, b: IpAddr) -> u64 {
    fn fold(a: IpAddr) -> u64 {
        match a {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64).rotate_left(17)
            }
        }
    }
    fold(a).rotate_left(32) ^ fold(b)
}

#[cfg(test)]
mod tests;
