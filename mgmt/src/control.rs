//! The control loop of the management core: punts in, the NHRP and IKE engines in the middle, table
//! publications and injected packets out.
//!
//! Layer: management. Contract (sans-IO like the engines it drives, so that it runs the same on DPDK
//! and in a test): inputs are [`Control::handle_punt`] (what a worker punted, buffer-independent) and
//! [`Control::handle_timeout`], each with `now`; outputs are [`Control::poll_output`] (frames and
//! tunnel packets for a worker's inject ring) and [`Control::poll_timeout`]; every change to the
//! forwarding state is published before the input returns. [`Control::status`] is the JSON that
//! `dmvpnctl` and the lab read.
//!
//! Linkages (the seed Q&A's DMVPN behaviour):
//! - NHRP adjacency → TEIB entry (overlay → NBMA, with the peer's newest outbound SA); shortcut →
//!   overlay route via the peer; a static route whose next hop is an NHS follows NHS state (it moves to
//!   another NHS of the tunnel that is up while its own is down).
//! - On a protected tunnel a new NHRP peer, or an NHRP packet to an NBMA address without an SA, starts
//!   IKE (RFC 7296 §1.2); the NHRP packets wait for the SA (fail closed: nothing leaves unprotected).
//! - IKE `InstallSaPair` → SA database (one owner worker per pair) and the TEIB entries of that NBMA
//!   address; `DeleteSaPair` withdraws it; IKE SA down or peer dead (§2.4) removes the peer's
//!   adjacencies, shortcuts and NHRP binding (traffic falls back to the hub until a Traffic Indication
//!   resolves the peer again); an NHRP entry that expires (or an NHS that stops answering) tears the
//!   peer's SAs down so that the next packet negotiates afresh.
//! - Traffic through a peer's outbound SA ([`SaEventKind::Used`]) marks its NHRP binding and the
//!   shortcuts through it used, so the engine refreshes them before they expire.
//! - ARP replies and requests teach the neighbour table (RFC 826); a neighbour miss sends a request.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::crypto::Backend;
use dataplane::ids::{PortId, SaIndex, TunnelId, VrfId, WorkerId};
use dataplane::punt::PuntKind;
use dataplane::sa::{Direction, Limits, Mode, NattPorts, Sa, SaConfig, SaEvent, SaEventKind};
use dataplane::tables::{NextHop, TablesPublisher};
use dataplane::teib::TeibEntry;
use ike::engine::{self as ikeng, IkeSaId, NAT_T_PORT};
use nhrp::{EntryFlags, EntryKind, NhsState, Time};
use serde_json::{json, Value};

use crate::debug::Facility;
use crate::events::Observe;
use crate::frames;
use crate::plan::{self, Plan, PlanError};

mod ops;
mod teib;

use teib::Teib;

/// GRE protocol type of NHRP (RFC 2332 §5; Cisco).
pub const GRE_NHRP: u16 = 0x2001;
/// IKE's port (RFC 7296 §2).
pub const IKE_PORT: u16 = 500;
/// NHRP packets kept per NBMA address while its SA is negotiated.
const PENDING_NHRP: usize = 16;
/// Frames kept per next hop while ARP resolves it.
const PENDING_FRAMES: usize = 16;
/// Minimum time between two IKE initiations to one peer (its IKE_SA_INIT retransmits in between).
const INITIATE_HOLD: Duration = Duration::from_secs(4);
/// Minimum time between two ARP requests for one address.
const ARP_HOLD: Duration = Duration::from_millis(500);
/// Events shown in `status`.
const STATUS_EVENTS: usize = 200;

/// A punted packet or trigger, as the control loop takes it (the bytes of whatever buffer held it).
#[derive(Debug)]
pub struct PuntIn<'a> {
    /// Why.
    pub kind: PuntKind,
    /// The port it came in on, or that needs a resolution.
    pub port: Option<PortId>,
    /// The tunnel it concerns.
    pub tunnel: Option<TunnelId>,
    /// The inbound SA that authenticated it.
    pub sa: Option<SaIndex>,
    /// Source address (NBMA for NHRP and IKE, overlay for triggers, sender for ARP).
    pub src: Option<IpAddr>,
    /// Destination address.
    pub dst: Option<IpAddr>,
    /// The bytes (see [`dataplane::punt::PuntData`] for where each kind starts).
    pub bytes: &'a [u8],
}

/// A packet for a worker to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A whole Ethernet frame out of a port.
    Frame {
        /// The port.
        port: PortId,
        /// The frame.
        bytes: Vec<u8>,
    },
    /// A GRE payload into a tunnel to an NBMA address, protected by `sa` when given.
    Tunnel {
        /// The tunnel.
        tunnel: TunnelId,
        /// The peer's NBMA address.
        nbma: IpAddr,
        /// The outbound SA.
        sa: Option<SaIndex>,
        /// GRE protocol type.
        protocol: u16,
        /// The payload.
        bytes: Vec<u8>,
    },
}

/// One installed CHILD SA pair.
#[derive(Debug, Clone)]
struct Pair {
    ike_sa: IkeSaId,
    inbound_spi: u32,
    outbound_spi: u32,
    in_idx: SaIndex,
    out_idx: SaIndex,
    remote: SocketAddr,
    udp_encap: bool,
    installed: Instant,
    /// The inbound SA's replay drops and integrity failures already traced (`debug esp`).
    drops_traced: (u64, u64),
}

/// What we know of one NBMA address's crypto.
#[derive(Debug, Default)]
struct Peer {
    pairs: Vec<Pair>,
    ike_sas: BTreeSet<IkeSaId>,
    initiated: Option<Instant>,
    pending: VecDeque<(TunnelId, Vec<u8>)>,
}

/// Counters of the control loop itself.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
struct Counters {
    punts: u64,
    nhrp_unprotected_dropped: u64,
    nhrp_waiting_for_sa: u64,
    nhrp_waiting_dropped: u64,
    ike_initiated: u64,
    sa_pairs_installed: u64,
    sa_pairs_deleted: u64,
    arp_requests: u64,
    frames_waiting_dropped: u64,
    sa_events: u64,
    publications: u64,
    errors: u64,
    /// Packets for the inject ring dropped because the pool had no buffer.
    inject_no_buffer: u64,
    /// Packets dropped because the inject ring was full.
    inject_ring_full: u64,
}

/// Why the daemon could not hand a packet of [`Control::poll_output`] to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectDrop {
    /// No buffer in the pool.
    NoBuffer,
    /// The worker's inject ring was full.
    RingFull,
}

/// The control loop's state. See the module documentation.
pub struct Control {
    /// The configuration in force (what [`Self::apply_config`] compares a new one with).
    config: crate::config::Config,
    plan: Plan,
    hostname: String,
    tables: TablesPublisher,
    nhrp: nhrp::Engine,
    ike: Option<ikeng::Engine>,
    backend: Backend,
    iv_seed: [u8; 16],
    workers: u16,
    start: Instant,
    peers: HashMap<IpAddr, Peer>,
    /// The peer of each installed outbound SA, for [`SaEventKind::Used`].
    out_sa_peer: HashMap<SaIndex, IpAddr>,
    /// TEIB entries we set: (tunnel, overlay) → (NBMA, static), indexed by NBMA address.
    teib: Teib,
    /// Shortcut routes we installed: (tunnel, prefix, len) → (VRF, next hop).
    shortcuts: HashMap<(TunnelId, IpAddr, u8), (VrfId, IpAddr)>,
    /// Current next hop of each NHS-following route, by index in `plan.nhs_routes`.
    nhs_route_via: Vec<IpAddr>,
    sa_free: Vec<u32>,
    sa_next: u32,
    pairs_made: u64,
    waiting_frames: HashMap<(PortId, IpAddr), Vec<Vec<u8>>>,
    arp_asked: HashMap<(PortId, IpAddr), Instant>,
    outputs: VecDeque<Output>,
    obs: Arc<Observe>,
    /// Why the daemon purged an NHRP peer, for the `peer_down` event when the engine removes it.
    down_reasons: HashMap<(TunnelId, IpAddr), &'static str>,
    counters: Counters,
    dirty: bool,
}

impl core::fmt::Debug for Control {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Control").field("hostname", &self.hostname).field("peers", &self.peers.len()).finish()
    }
}

/// Why the control loop could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The configuration does not map onto the engines and tables.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// The NHRP engine refused a tunnel.
    #[error("tunnels[{index}].nhrp: {error}")]
    Nhrp {
        /// Which tunnel.
        index: usize,
        /// What NHRP said.
        error: nhrp::ConfigError,
    },
    /// The manual SAs do not form an SA database.
    #[error("manual_sas: {0}")]
    Sas(dataplane::sa::SaError),
}

/// How the daemon starts the control loop.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Number of workers (SA pairs are spread over them as owners).
    pub workers: u16,
    /// Crypto backend of the SAs.
    pub backend: Backend,
    /// Seed of the CBC IV keys.
    pub iv_seed: [u8; 16],
    /// Seed of NHRP request ids.
    pub nhrp_seed: u64,
}

impl Control {
    /// Builds the tables from `plan` (ports with `macs` by port id, tunnels, routes, static TEIB, manual
    /// SAs), publishes them, and sets up the engines. `tables` is the data plane's publisher.
    pub fn new(
        config: &crate::config::Config,
        mut tables: TablesPublisher,
        macs: &[[u8; 6]],
        setup: Setup,
        now: Instant,
    ) -> Result<Control, ControlError> {
        let plan = Plan::new(config)?;
        plan.install(&mut tables, macs)?;
        let sas = plan.manual_sas(setup.backend, setup.iv_seed)?.build().map_err(ControlError::Sas)?;
        tables.set_sas(sas);
        let mut teib = Teib::default();
        for (tunnel, overlay, entry) in plan.static_teib() {
            tables.set_teib(tunnel, overlay, entry).map_err(|error| PlanError::Tables {
                path: format!("tunnel {} static NHRP entries", tunnel.0),
                error,
            })?;
            teib.insert((tunnel, overlay), entry.nbma, true);
        }
        let mut nhrp = nhrp::Engine::new(setup.nhrp_seed);
        let t0 = Time(0);
        for (index, t) in plan.tunnels.iter().enumerate() {
            nhrp.add_tunnel(t0, nhrp::TunnelId(t.id.0), t.nhrp.clone())
                .map_err(|error| ControlError::Nhrp { index, error })?;
        }
        // A hub forwards resolution requests for networks routed via a registered spoke (Phase 2/3).
        for (tunnel, prefix, len, nh) in ops::nhrp_routes(config, &plan) {
            nhrp.add_route(tunnel, prefix, len, nh);
        }
        let ike = plan.ike.clone().map(|c| {
            let mut e = ikeng::Engine::new(c, Box::new(ike::crypto::OsRandom));
            // Certificate validity needs the time of day, which the engine does not read itself.
            let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            e.set_wall_clock(now, unix);
            e
        });
        let nhs_route_via = plan.nhs_routes.iter().map(|r| r.nhs).collect();
        let mut c = Control {
            config: config.clone(),
            sa_next: plan.manual_sa_count(),
            plan,
            hostname: config.hostname.clone(),
            tables,
            nhrp,
            ike,
            backend: setup.backend,
            iv_seed: setup.iv_seed,
            workers: setup.workers.max(1),
            start: now,
            peers: HashMap::new(),
            teib,
            shortcuts: HashMap::new(),
            out_sa_peer: HashMap::new(),
            nhs_route_via,
            sa_free: Vec::new(),
            pairs_made: 0,
            waiting_frames: HashMap::new(),
            arp_asked: HashMap::new(),
            outputs: VecDeque::new(),
            obs: Observe::new(now, 0),
            down_reasons: HashMap::new(),
            counters: Counters::default(),
            dirty: true,
        };
        c.drain(now);
        Ok(c)
    }

    /// The data plane's tables as staged (for lookups and tests).
    pub fn tables(&self) -> &TablesPublisher {
        &self.tables
    }

    /// The NHRP engine (for `show` views).
    pub fn nhrp(&self) -> &nhrp::Engine {
        &self.nhrp
    }

    fn t(&self, now: Instant) -> Time {
        Time(now.saturating_duration_since(self.start).as_millis() as u64)
    }

    /// Records events and debug lines in `obs` (shared with the API) from now on, instead of the hub
    /// of its own that [`Self::new`] made (whose wall clock starts at the Unix epoch).
    pub fn set_observe(&mut self, obs: Arc<Observe>) {
        self.obs = obs;
    }

    /// Where the control loop records its events and debug lines.
    pub fn observe(&self) -> &Arc<Observe> {
        &self.obs
    }

    fn log(&mut self, now: Instant, event: &str, detail: Value) {
        self.obs.event(now, event, detail);
    }

    fn tunnel_name(&self, tunnel: TunnelId) -> String {
        self.plan.tunnel(tunnel).map_or_else(|| tunnel.0.to_string(), |t| t.name.clone())
    }

    /// Whether a debug condition on `facility` names the peer at `nbma` (by that address, by one of
    /// `overlays`, or by an overlay address the TEIB maps to `nbma`). One branch while none is set.
    #[inline]
    fn debugging(&self, facility: Facility, nbma: IpAddr, overlays: &[Option<IpAddr>]) -> bool {
        let c = self.obs.conditions();
        c.any()
            && c.wants(facility, |a| {
                a == nbma
                    || overlays.contains(&Some(a))
                    || self.plan.tunnels.iter().any(|t| self.teib.get(&(t.id, a)).is_some_and(|(n, _)| *n == nbma))
            })
    }

    /// A debug line about the peer at `nbma` (the caller checked [`Self::debugging`]); `peer` is
    /// `nbma` unless `detail` names an overlay address.
    fn debug(&self, now: Instant, facility: Facility, event: &str, nbma: IpAddr, detail: Value) {
        let mut v = json!({"peer": nbma.to_string(), "nbma": nbma.to_string()});
        if let (Some(o), Value::Object(d)) = (v.as_object_mut(), detail) {
            o.extend(d);
        }
        self.obs.debug(now, facility, event, v);
    }

    /// `debug nhrp packet` for one peer: the operation and addresses of an NHRP packet.
    fn debug_nhrp(&self, now: Instant, event: &str, tunnel: TunnelId, nbma: IpAddr, bytes: &[u8], extra: Value) {
        let parsed = nhrp::wire::Packet::parse(bytes);
        // The packet is about its source station, or the destination it resolves.
        let (src, dst) = parsed.as_ref().map_or((None, None), |p| (p.src_proto, p.dst_proto));
        if !self.debugging(Facility::Nhrp, nbma, &[src, dst]) {
            return;
        }
        // The peer is the station that is not us (a reply carries the requester as its source).
        let ours = self.plan.tunnel(tunnel).map(|t| t.address.addr);
        let overlay = if src == ours { dst } else { src };
        let mut v = match &parsed {
            Ok(p) => json!({
                "peer": overlay.map_or_else(|| nbma.to_string(), |a| a.to_string()), "tunnel": self.tunnel_name(tunnel),
                "op": p.op.name().map_or_else(|| format!("{:#04x}", p.op.0), str::to_lowercase),
                "src_nbma": p.src_nbma.map(|a| a.to_string()), "src_proto": p.src_proto.map(|a| a.to_string()),
                "dst_proto": p.dst_proto.map(|a| a.to_string()), "hop_count": p.hop_count, "len": bytes.len(),
            }),
            Err(e) => {
                json!({"tunnel": self.tunnel_name(tunnel), "len": bytes.len(), "reason": format!("malformed: {e}")})
            }
        };
        if let (Some(o), Value::Object(d)) = (v.as_object_mut(), extra) {
            o.extend(d);
        }
        self.debug(now, Facility::Nhrp, event, nbma, v);
    }

    /// `debug crypto ikev2 packet` for one peer: the exchange of an IKE message (RFC 7296 §3.1).
    fn debug_ike(&self, now: Instant, event: &str, nbma: IpAddr, local: SocketAddr, remote: SocketAddr, msg: &[u8]) {
        if !self.debugging(Facility::Ike, nbma, &[]) {
            return;
        }
        let mut v = if msg.len() < 28 {
            json!({"len": msg.len(), "reason": "shorter than an IKE header (or a NAT keepalive)"})
        } else {
            let exchange = match msg[18] {
                34 => "IKE_SA_INIT".to_string(),
                35 => "IKE_AUTH".to_string(),
                36 => "CREATE_CHILD_SA".to_string(),
                37 => "INFORMATIONAL".to_string(),
                x => format!("exchange {x}"),
            };
            let flags = msg[19];
            json!({
                "exchange": exchange, "response": flags & 0x20 != 0, "initiator": flags & 0x08 != 0,
                "message_id": u32::from_be_bytes([msg[20], msg[21], msg[22], msg[23]]),
                "spi_i": hex::encode(&msg[0..8]), "spi_r": hex::encode(&msg[8..16]), "len": msg.len(),
            })
        };
        if let Some(o) = v.as_object_mut() {
            o.insert("local".into(), local.to_string().into());
            o.insert("remote".into(), remote.to_string().into());
        }
        self.debug(now, Facility::Ike, event, nbma, v);
    }

    // ------------------------------------------------------------------ inputs

    /// A punt from a worker.
    pub fn handle_punt(&mut self, now: Instant, p: PuntIn<'_>) {
        self.counters.punts += 1;
        let t = self.t(now);
        match p.kind {
            PuntKind::Nhrp => {
                let (Some(tunnel), Some(src), Some(dst)) = (p.tunnel, p.src, p.dst) else { return };
                // The data plane drops unprotected GRE on protected tunnels; this is the second lock.
                if self.plan.tunnel(tunnel).is_some_and(|t| t.protected) && p.sa.is_none() {
                    self.counters.nhrp_unprotected_dropped += 1;
                    if self.obs.conditions().any() {
                        let why = json!({"reason": "unprotected on a protected tunnel: dropped"});
                        self.debug_nhrp(now, "nhrp_rx", tunnel, src, p.bytes, why);
                    }
                    return;
                }
                if self.obs.conditions().any() {
                    self.debug_nhrp(now, "nhrp_rx", tunnel, src, p.bytes, json!({"sa": p.sa.map(|s| s.0)}));
                }
                self.nhrp.handle_datagram(t, nhrp::TunnelId(tunnel.0), src, dst, p.bytes);
            }
            PuntKind::Ike => {
                let (Some(src), Some(dst), Some(ike)) = (p.src, p.dst, self.ike.as_mut()) else { return };
                let Some((sport, dport, payload)) = frames::udp_payload(p.bytes) else { return };
                let payload = match (dport, payload) {
                    (NAT_T_PORT, [0, 0, 0, 0, rest @ ..]) => rest,
                    (NAT_T_PORT, _) => return,
                    (_, d) => d,
                };
                let (local, remote) = (SocketAddr::new(dst, dport), SocketAddr::new(src, sport));
                ike.handle_datagram(now, local, remote, payload);
                if self.obs.conditions().any() {
                    self.debug_ike(now, "ike_rx", src, local, remote, payload);
                }
            }
            PuntKind::Redirect => {
                if let Some(tunnel) = p.tunnel {
                    self.nhrp.handle_redirect(t, nhrp::TunnelId(tunnel.0), None, p.bytes);
                }
            }
            PuntKind::TeibMiss => {
                if let (Some(tunnel), Some(dst)) = (p.tunnel, p.dst) {
                    self.nhrp.resolve(t, nhrp::TunnelId(tunnel.0), dst);
                }
            }
            PuntKind::Arp => {
                if let (Some(port), Some((ip, mac))) = (p.port, frames::arp_sender(p.bytes)) {
                    self.learn_neighbour(port, IpAddr::V4(ip), mac);
                }
            }
            PuntKind::NeighborMiss => {
                if let (Some(port), Some(IpAddr::V4(ip))) = (p.port, p.dst) {
                    self.arp_request(now, port, ip);
                }
            }
            PuntKind::Nd => {}
        }
        self.drain(now);
    }

    /// An SA event from a worker. Traffic through a peer's outbound SA marks the NHRP entries it
    /// carries used (the peer's binding and the shortcuts through it), so that they are refreshed
    /// before they expire instead of re-forming through the hub. Lifetime events are only counted
    /// (byte and packet limits are not set on IKE's SAs, and IKE rekeys by time), and traced for a
    /// peer under `debug esp`.
    pub fn handle_sa_event(&mut self, now: Instant, event: SaEvent) {
        self.counters.sa_events += 1;
        if event.kind != SaEventKind::Used {
            self.debug_sa_event(now, event);
            return;
        }
        let Some(&nbma) = self.out_sa_peer.get(&event.sa) else { return };
        let overlays = self.teib.dynamic_of(nbma);
        for &(tunnel, overlay) in &overlays {
            self.nhrp.mark_used(nhrp::TunnelId(tunnel.0), overlay);
        }
        for ((tunnel, prefix, _), (_, via)) in &self.shortcuts {
            if overlays.contains(&(*tunnel, *via)) {
                self.nhrp.mark_used(nhrp::TunnelId(tunnel.0), *prefix);
            }
        }
    }

    /// `debug esp`: an SA lifetime event of a debugged peer.
    fn debug_sa_event(&self, now: Instant, event: SaEvent) {
        if !self.obs.conditions().any() {
            return;
        }
        let found = self.peers.iter().find_map(|(nbma, p)| {
            p.pairs.iter().find_map(|x| {
                if x.in_idx == event.sa {
                    Some((*nbma, x.inbound_spi, "inbound"))
                } else if x.out_idx == event.sa {
                    Some((*nbma, x.outbound_spi, "outbound"))
                } else {
                    None
                }
            })
        });
        if let Some((nbma, spi, direction)) = found.filter(|(n, ..)| self.debugging(Facility::Esp, *n, &[])) {
            let v = json!({"spi": format!("{spi:08x}"), "direction": direction, "sa": event.sa.0,
                           "reason": event.kind.name()});
            self.debug(now, Facility::Esp, "esp_sa_lifetime", nbma, v);
        }
    }

    /// `debug esp` for the peers a condition names: a debug line for each inbound SA whose replay drops
    /// or integrity failures grew since the last call (the data plane counts them per SA). The daemon
    /// calls it about once a second; without a condition it costs one atomic load.
    pub fn trace_esp_drops(&mut self, now: Instant) {
        if !self.obs.conditions().any() {
            return;
        }
        let nbmas: Vec<IpAddr> =
            self.peers.keys().copied().filter(|n| self.debugging(Facility::Esp, *n, &[])).collect();
        let db = self.tables.staged().sas().clone();
        for nbma in nbmas {
            let Some(peer) = self.peers.get_mut(&nbma) else { continue };
            let mut lines = Vec::new();
            for x in &mut peer.pairs {
                let Some(sa) = db.get(x.in_idx) else { continue };
                let now_seen = (sa.counters().replay_drops(), sa.counters().auth_failures());
                if now_seen != x.drops_traced {
                    lines.push(json!({"spi": format!("{:08x}", x.inbound_spi), "direction": "inbound",
                                      "replay_drops": now_seen.0 - x.drops_traced.0,
                                      "auth_failures": now_seen.1 - x.drops_traced.1,
                                      "reason": if now_seen.0 > x.drops_traced.0 { "replay" } else { "integrity" }}));
                    x.drops_traced = now_seen;
                }
            }
            for v in lines {
                self.debug(now, Facility::Esp, "esp_drops", nbma, v);
            }
        }
    }

    /// Timers of both engines.
    pub fn handle_timeout(&mut self, now: Instant) {
        let t = self.t(now);
        if self.nhrp.poll_timeout().is_some_and(|d| d <= t) {
            self.nhrp.handle_timeout(t);
        }
        if let Some(ike) = self.ike.as_mut() {
            if ike.poll_timeout().is_some_and(|d| d <= now) {
                ike.handle_timeout(now);
            }
        }
        self.drain(now);
    }

    // ------------------------------------------------------------------ outputs

    /// The next packet to inject.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// A packet of [`Self::poll_output`] could not be injected (the protocols retransmit); counted.
    pub fn inject_dropped(&mut self, why: InjectDrop) {
        match why {
            InjectDrop::NoBuffer => self.counters.inject_no_buffer += 1,
            InjectDrop::RingFull => self.counters.inject_ring_full += 1,
        }
    }

    /// When [`Self::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let n = self.nhrp.poll_timeout().map(|t| self.start + Duration::from_millis(t.0.min(u64::MAX / 4)));
        let i = self.ike.as_ref().and_then(ikeng::Engine::poll_timeout);
        match (n, i) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ------------------------------------------------------------------ the engines' outputs

    /// Moves everything the engines produced into tables and packets, then publishes.
    fn drain(&mut self, now: Instant) {
        loop {
            let mut any = false;
            while let Some(tx) = self.nhrp.poll_transmit() {
                any = true;
                self.send_nhrp(now, TunnelId(tx.tunnel.0), tx.nbma, tx.bytes);
            }
            while let Some(e) = self.nhrp.poll_event() {
                any = true;
                self.on_nhrp_event(now, e);
            }
            while let Some(tx) = self.ike.as_mut().and_then(ikeng::Engine::poll_transmit) {
                any = true;
                self.send_ike(now, tx);
            }
            while let Some(e) = self.ike.as_mut().and_then(ikeng::Engine::poll_event) {
                any = true;
                self.on_ike_event(now, e);
            }
            if !any {
                break;
            }
        }
        if self.dirty {
            self.dirty = false;
            self.counters.publications += 1;
            self.tables.publish();
        }
    }

    fn protected(&self, tunnel: TunnelId) -> bool {
        self.plan.tunnel(tunnel).is_some_and(|t| t.protected)
    }

    /// The outbound SA to use towards `nbma`: the newest IKE pair, else a manual one.
    fn sa_out(&self, tunnel: TunnelId, nbma: IpAddr) -> Option<SaIndex> {
        self.peers
            .get(&nbma)
            .and_then(|p| p.pairs.last())
            .map(|p| p.out_idx)
            .or_else(|| self.plan.manual_sa_out(tunnel, nbma))
    }

    fn send_nhrp(&mut self, now: Instant, tunnel: TunnelId, nbma: IpAddr, bytes: Vec<u8>) {
        if self.obs.conditions().any() {
            let sa = self.sa_out(tunnel, nbma);
            let via = match (self.protected(tunnel), sa) {
                (false, _) => json!({"protected": false}),
                (true, Some(sa)) => json!({"protected": true, "sa": sa.0}),
                (true, None) => json!({"protected": true, "reason": "waiting for an SA (IKE started)"}),
            };
            self.debug_nhrp(now, "nhrp_tx", tunnel, nbma, &bytes, via);
        }
        if !self.protected(tunnel) {
            self.outputs.push_back(Output::Tunnel { tunnel, nbma, sa: None, protocol: GRE_NHRP, bytes });
            return;
        }
        if let Some(sa) = self.sa_out(tunnel, nbma) {
            self.outputs.push_back(Output::Tunnel { tunnel, nbma, sa: Some(sa), protocol: GRE_NHRP, bytes });
            return;
        }
        // Fail closed: the packet waits for the SA that IKE is asked to make.
        self.counters.nhrp_waiting_for_sa += 1;
        let peer = self.peers.entry(nbma).or_default();
        if peer.pending.len() == PENDING_NHRP {
            peer.pending.pop_front();
            self.counters.nhrp_waiting_dropped += 1;
        }
        peer.pending.push_back((tunnel, bytes));
        self.ensure_ike(now, tunnel, nbma);
    }

    /// Starts IKE with `nbma` unless an SA pair exists or an initiation is under way.
    fn ensure_ike(&mut self, now: Instant, tunnel: TunnelId, nbma: IpAddr) {
        let Some(local) = self.plan.tunnel(tunnel).filter(|t| t.protected).map(|t| t.nbma) else { return };
        let Some(ike) = self.ike.as_mut() else { return };
        let peer = self.peers.entry(nbma).or_default();
        if !peer.pairs.is_empty() || peer.initiated.is_some_and(|t| now.saturating_duration_since(t) < INITIATE_HOLD) {
            return;
        }
        peer.initiated = Some(now);
        self.counters.ike_initiated += 1;
        let r = ike.initiate(now, SocketAddr::new(local, IKE_PORT), SocketAddr::new(nbma, IKE_PORT), None);
        let tunnel = self.tunnel_name(tunnel);
        let detail = match r {
            Ok(sa) => json!({"peer": nbma.to_string(), "nbma": nbma.to_string(), "tunnel": tunnel,
                             "ike_sa": format!("{:016x}", sa.0)}),
            Err(e) => json!({"peer": nbma.to_string(), "nbma": nbma.to_string(), "tunnel": tunnel,
                             "reason": e.to_string()}),
        };
        self.log(now, "ike_initiate", detail);
    }

    fn send_ike(&mut self, now: Instant, tx: ikeng::Transmit) {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (tx.local.ip(), tx.remote.ip()) else { return };
        let mut payload = Vec::with_capacity(tx.data.len() + 4);
        // IKE on 4500 carries the non-ESP marker (RFC 3948 §2.2); a NAT keepalive (§2.3) does not.
        if tx.local.port() == NAT_T_PORT && !tx.is_nat_keepalive() {
            payload.extend_from_slice(&[0; 4]);
        }
        payload.extend_from_slice(&tx.data);
        if self.obs.conditions().any() {
            self.debug_ike(now, "ike_tx", tx.remote.ip(), tx.local, tx.remote, &tx.data);
        }
        let packet = frames::ipv4_udp(src, dst, tx.local.port(), tx.remote.port(), &payload);
        let vrf = self.plan.tunnel_by_source(tx.local.ip()).map_or(VrfId::default(), |t| t.fvrf);
        self.send_ip(now, vrf, IpAddr::V4(dst), packet);
    }

    /// Sends an IPv4 packet we made: routed in `vrf`, with the next hop's MAC, or held while ARP asks.
    fn send_ip(&mut self, now: Instant, vrf: VrfId, dst: IpAddr, packet: Vec<u8>) {
        let Some(&NextHop::Port { port, gateway }) = self.tables.staged().resolve(vrf, dst) else {
            self.counters.errors += 1;
            return;
        };
        let IpAddr::V4(nh) = gateway.unwrap_or(dst) else { return };
        match self.l2(port, nh) {
            Some((src_mac, dst_mac)) => {
                let bytes = frames::ethernet(dst_mac, src_mac, frames::ETHERTYPE_IPV4, &packet);
                self.outputs.push_back(Output::Frame { port, bytes });
            }
            None => {
                let q = self.waiting_frames.entry((port, IpAddr::V4(nh))).or_default();
                if q.len() == PENDING_FRAMES {
                    q.remove(0);
                    self.counters.frames_waiting_dropped += 1;
                }
                q.push(packet);
                self.arp_request(now, port, nh);
            }
        }
    }

    fn l2(&self, port: PortId, nh: Ipv4Addr) -> Option<([u8; 6], [u8; 6])> {
        let t = self.tables.staged();
        Some((t.port(port)?.mac, t.neighbour(port, IpAddr::V4(nh))?))
    }

    fn arp_request(&mut self, now: Instant, port: PortId, target: Ipv4Addr) {
        let key = (port, IpAddr::V4(target));
        if self.arp_asked.get(&key).is_some_and(|t| now.saturating_duration_since(*t) < ARP_HOLD) {
            return;
        }
        let Some(p) = self.tables.staged().port(port) else { return };
        let sender = p
            .addresses
            .iter()
            .filter_map(|(a, len)| match a {
                IpAddr::V4(a) => Some((*a, *len)),
                IpAddr::V6(_) => None,
            })
            .find(|(a, len)| plan_contains(*a, *len, target))
            .or_else(|| {
                p.addresses.iter().find_map(|(a, l)| if let IpAddr::V4(a) = a { Some((*a, *l)) } else { None })
            });
        let Some((sender, _)) = sender else { return };
        let bytes = frames::arp_request(p.mac, sender, target);
        self.arp_asked.insert(key, now);
        self.counters.arp_requests += 1;
        self.outputs.push_back(Output::Frame { port, bytes });
    }

    fn learn_neighbour(&mut self, port: PortId, ip: IpAddr, mac: [u8; 6]) {
        if ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || mac == [0; 6] {
            return;
        }
        if self.tables.staged().neighbour(port, ip) != Some(mac) && self.tables.set_neighbour(port, ip, mac).is_ok() {
            self.dirty = true;
        }
        self.arp_asked.remove(&(port, ip));
        if let Some(waiting) = self.waiting_frames.remove(&(port, ip)) {
            let src = self.tables.staged().port(port).map(|p| p.mac).unwrap_or_default();
            for packet in waiting {
                let bytes = frames::ethernet(mac, src, frames::ETHERTYPE_IPV4, &packet);
                self.outputs.push_back(Output::Frame { port, bytes });
            }
        }
    }

    // ------------------------------------------------------------------ NHRP events

    fn on_nhrp_event(&mut self, now: Instant, e: nhrp::Event) {
        match e {
            nhrp::Event::AdjacencyAdded { tunnel, proto, nbma, claimed_nbma } => {
                let tunnel = TunnelId(tunnel.0);
                self.set_teib(tunnel, proto, nbma, true);
                let kind = self.nhrp.cache().get(nhrp::TunnelId(tunnel.0), &proto).map(|e| e.kind);
                let reason = match kind {
                    Some(EntryKind::Registered) => "registered",
                    Some(EntryKind::Resolved) => "resolved",
                    Some(EntryKind::Static) => "static",
                    None => "nhrp adjacency",
                };
                self.log(
                    now,
                    "peer_up",
                    json!({"peer": proto.to_string(), "nbma": nbma.to_string(), "tunnel": self.tunnel_name(tunnel),
                           "reason": reason, "claimed_nbma": claimed_nbma.to_string()}),
                );
                if self.protected(tunnel) && self.sa_out(tunnel, nbma).is_none() {
                    self.ensure_ike(now, tunnel, nbma);
                }
            }
            nhrp::Event::AdjacencyRemoved { tunnel, proto, nbma } => {
                let tunnel = TunnelId(tunnel.0);
                if self.teib.get(&(tunnel, proto)).is_some_and(|(n, stat)| *n == nbma && !*stat) {
                    self.teib.remove(&(tunnel, proto));
                    self.tables.remove_teib(tunnel, proto);
                    self.dirty = true;
                }
                let reason =
                    self.down_reasons.remove(&(tunnel, proto)).unwrap_or("nhrp entry expired, purged or replaced");
                self.log(
                    now,
                    "peer_down",
                    json!({"peer": proto.to_string(), "nbma": nbma.to_string(), "tunnel": self.tunnel_name(tunnel),
                           "reason": reason}),
                );
                // The entry expired, was purged or replaced: its SAs go too, unless something else
                // still maps to that NBMA address.
                if !self.teib.has_nbma(nbma) {
                    self.tear_down_peer(now, nbma, "nhrp entry gone");
                }
            }
            nhrp::Event::ShortcutAdded { tunnel, prefix, prefix_len, next_hop, nbma } => {
                let tunnel = TunnelId(tunnel.0);
                if self.teib.get(&(tunnel, next_hop)).is_none_or(|(n, _)| *n != nbma) {
                    self.set_teib(tunnel, next_hop, nbma, true);
                }
                let vrf = self.plan.tunnel(tunnel).map_or(VrfId::default(), |t| t.vrf);
                let nh = NextHop::Tunnel { tunnel, peer: Some(next_hop) };
                let installed = match self.tables.add_route(vrf, prefix, prefix_len, nh) {
                    Ok(()) => {
                        self.shortcuts.insert((tunnel, prefix, prefix_len), (vrf, next_hop));
                        self.dirty = true;
                        true
                    }
                    // A connected prefix (the peer's own tunnel address /32 is fine; its subnet is ours).
                    Err(_) => false,
                };
                self.log(
                    now,
                    "shortcut_added",
                    json!({"peer": next_hop.to_string(), "nbma": nbma.to_string(), "tunnel": self.tunnel_name(tunnel),
                           "prefix": format!("{prefix}/{prefix_len}"), "next_hop": next_hop.to_string(),
                           "route": installed}),
                );
                if self.protected(tunnel) && self.sa_out(tunnel, nbma).is_none() {
                    self.ensure_ike(now, tunnel, nbma);
                }
            }
            nhrp::Event::ShortcutRemoved { tunnel, prefix, prefix_len } => {
                let tunnel = TunnelId(tunnel.0);
                let via = self.shortcuts.remove(&(tunnel, prefix, prefix_len)).map(|(vrf, nh)| {
                    let _ = self.tables.remove_route(vrf, prefix, prefix_len);
                    self.dirty = true;
                    nh
                });
                let nbma = via.and_then(|nh| self.teib.get(&(tunnel, nh))).map(|(n, _)| n.to_string());
                self.log(
                    now,
                    "shortcut_removed",
                    json!({"peer": via.map(|a| a.to_string()), "nbma": nbma, "tunnel": self.tunnel_name(tunnel),
                           "prefix": format!("{prefix}/{prefix_len}")}),
                );
            }
            nhrp::Event::NhsUp { tunnel, nhs } => {
                let (name, nbma) = self.nhs_of(TunnelId(tunnel.0), nhs);
                self.log(
                    now,
                    "nhs_up",
                    json!({"peer": nhs.to_string(), "nhs": nhs.to_string(), "nbma": nbma.map(|a| a.to_string()),
                           "tunnel": name, "reason": "registration replied"}),
                );
                self.follow_nhs();
            }
            nhrp::Event::NhsDown { tunnel, nhs } => {
                let (name, nbma) = self.nhs_of(TunnelId(tunnel.0), nhs);
                self.log(
                    now,
                    "nhs_down",
                    json!({"peer": nhs.to_string(), "nhs": nhs.to_string(), "nbma": nbma.map(|a| a.to_string()),
                           "tunnel": name, "reason": "registrations unanswered"}),
                );
                self.follow_nhs();
                // The hub stopped answering: its SAs may be stale (it restarted, or our NAT mapping
                // changed). Drop them so that the next registration negotiates afresh.
                if let Some(nbma) = nbma {
                    self.tear_down_peer(now, nbma, "nhs down");
                }
            }
            nhrp::Event::Purged { tunnel, proto, prefix_len } => {
                let tunnel = TunnelId(tunnel.0);
                let nbma = self.teib.get(&(tunnel, proto)).map(|(n, _)| n.to_string());
                self.log(
                    now,
                    "purged",
                    json!({"peer": proto.to_string(), "nbma": nbma, "tunnel": self.tunnel_name(tunnel),
                           "prefix": format!("{proto}/{prefix_len}")}),
                );
            }
        }
    }

    /// The tunnel's name and the NBMA address of its NHS `nhs`.
    fn nhs_of(&self, tunnel: TunnelId, nhs: IpAddr) -> (String, Option<IpAddr>) {
        let nbma = self.plan.tunnel(tunnel).and_then(|t| t.nhrp.nhs.iter().find(|n| n.proto == nhs).map(|n| n.nbma));
        (self.tunnel_name(tunnel), nbma)
    }

    fn set_teib(&mut self, tunnel: TunnelId, overlay: IpAddr, nbma: IpAddr, dynamic: bool) {
        let stat = self.teib.get(&(tunnel, overlay)).is_some_and(|(n, s)| *s && *n == nbma);
        let entry = TeibEntry { nbma, sa_out: self.sa_out(tunnel, nbma), dynamic: dynamic && !stat };
        if self.tables.set_teib(tunnel, overlay, entry).is_ok() {
            self.teib.insert((tunnel, overlay), nbma, stat);
            self.dirty = true;
        }
    }

    /// Points each NHS-following route at its NHS, or at another NHS of the tunnel that is up while
    /// its own is down.
    fn follow_nhs(&mut self) {
        for (i, r) in self.plan.nhs_routes.iter().enumerate() {
            let nhs = self.nhrp.nhs(nhrp::TunnelId(r.tunnel.0));
            let state = |a: IpAddr| nhs.iter().find(|n| n.config.proto == a).map(|n| n.state);
            let want = if state(r.nhs) == Some(NhsState::Down) {
                nhs.iter().find(|n| n.state == NhsState::Up).map_or(r.nhs, |n| n.config.proto)
            } else {
                r.nhs
            };
            if self.nhs_route_via.get(i) != Some(&want) {
                let nh = NextHop::Tunnel { tunnel: r.tunnel, peer: Some(want) };
                if self.tables.add_route(r.vrf, r.prefix, r.len, nh).is_ok() {
                    self.nhs_route_via[i] = want;
                    self.dirty = true;
                    eprintln!("dmvpnd: route {}/{} now via {want}", r.prefix, r.len);
                }
            }
        }
    }

    /// Forgets the peer's SAs in the data plane and deletes its IKE SAs; its TEIB entries stay (with
    /// no SA: fail closed) for the next negotiation.
    fn tear_down_peer(&mut self, now: Instant, nbma: IpAddr, why: &str) {
        let Some(peer) = self.peers.get_mut(&nbma) else { return };
        let pairs = std::mem::take(&mut peer.pairs);
        let ike_sas = std::mem::take(&mut peer.ike_sas);
        peer.initiated = None;
        if pairs.is_empty() && ike_sas.is_empty() {
            return;
        }
        self.withdraw(&pairs);
        self.refresh_teib(nbma);
        if let Some(ike) = self.ike.as_mut() {
            for sa in &ike_sas {
                let _ = ike.delete_ike_sa(now, *sa);
            }
        }
        if self.debugging(Facility::Esp, nbma, &[]) {
            for p in &pairs {
                let v = json!({"in_spi": format!("{:08x}", p.inbound_spi), "out_spi": format!("{:08x}", p.outbound_spi),
                               "reason": why});
                self.debug(now, Facility::Esp, "esp_sa_deleted", nbma, v);
            }
        }
        self.log(
            now,
            "peer_torn_down",
            json!({"peer": nbma.to_string(), "nbma": nbma.to_string(), "reason": why, "sa_pairs": pairs.len()}),
        );
    }

    // ------------------------------------------------------------------ IKE events

    fn on_ike_event(&mut self, now: Instant, e: ikeng::Event) {
        match e {
            ikeng::Event::IkeSaUp { sa, local, remote, .. } => {
                let peer = self.peers.entry(remote.ip()).or_default();
                peer.ike_sas.insert(sa);
                peer.initiated = None;
                self.log(
                    now,
                    "ike_sa_up",
                    json!({"peer": remote.ip().to_string(), "nbma": remote.ip().to_string(),
                           "ike_sa": format!("{:016x}", sa.0), "local": local.to_string(), "remote": remote.to_string()}),
                );
            }
            ikeng::Event::IkeSaRekeyed { old, new } => {
                if self.obs.conditions().any() {
                    let nbma = self.peers.iter().find(|(_, p)| p.ike_sas.contains(&old)).map(|(a, _)| *a);
                    if let Some(nbma) = nbma.filter(|n| self.debugging(Facility::Ike, *n, &[])) {
                        let v = json!({"old": format!("{:016x}", old.0), "new": format!("{:016x}", new.0)});
                        self.debug(now, Facility::Ike, "ike_sa_rekeyed", nbma, v);
                    }
                }
                for p in self.peers.values_mut() {
                    if p.ike_sas.remove(&old) {
                        p.ike_sas.insert(new);
                    }
                    for pair in p.pairs.iter_mut().filter(|x| x.ike_sa == old) {
                        pair.ike_sa = new;
                    }
                }
            }
            ikeng::Event::InstallSaPair(pair) => self.install_pair(now, &pair),
            ikeng::Event::DeleteSaPair { ike_sa, inbound_spi, outbound_spi } => {
                let mut gone = Vec::new();
                let mut nbma = None;
                for (addr, p) in &mut self.peers {
                    if let Some(i) = p.pairs.iter().position(|x| {
                        x.ike_sa == ike_sa && x.inbound_spi == inbound_spi && x.outbound_spi == outbound_spi
                    }) {
                        gone.push(p.pairs.remove(i));
                        nbma = Some(*addr);
                    }
                }
                self.withdraw(&gone);
                if let Some(nbma) = nbma {
                    self.refresh_teib(nbma);
                    if self.debugging(Facility::Esp, nbma, &[]) {
                        let v = json!({"in_spi": format!("{inbound_spi:08x}"), "out_spi": format!("{outbound_spi:08x}"),
                                       "ike_sa": format!("{:016x}", ike_sa.0), "reason": "deleted by IKE"});
                        self.debug(now, Facility::Esp, "esp_sa_deleted", nbma, v);
                    }
                }
                self.counters.sa_pairs_deleted += gone.len() as u64;
                // A pair already withdrawn with its dead peer is not deleted twice.
                if let Some(nbma) = nbma {
                    self.log(
                        now,
                        "sa_pair_deleted",
                        json!({"peer": nbma.to_string(), "nbma": nbma.to_string(),
                               "in_spi": format!("{inbound_spi:08x}"), "out_spi": format!("{outbound_spi:08x}")}),
                    );
                }
            }
            ikeng::Event::IkeSaDown { sa, remote, reason } => {
                let ip = remote.ip().to_string();
                self.log(
                    now,
                    "ike_sa_down",
                    json!({"peer": ip, "nbma": ip, "ike_sa": format!("{:016x}", sa.0), "remote": remote.to_string(),
                           "reason": format!("{reason:?}")}),
                );
                self.ike_sa_gone(now, sa, remote.ip(), "IKE SA down");
            }
            ikeng::Event::PeerDead { sa, remote, .. } => {
                let ip = remote.ip().to_string();
                self.log(
                    now,
                    "peer_dead",
                    json!({"peer": ip, "nbma": ip, "ike_sa": format!("{:016x}", sa.0), "remote": remote.to_string(),
                           "reason": "dead peer detection: no answer"}),
                );
                self.ike_sa_gone(now, sa, remote.ip(), "peer dead (DPD)");
            }
            ikeng::Event::Failed { sa, remote, failure } => {
                if let Some(p) = self.peers.get_mut(&remote.ip()) {
                    p.initiated = None;
                }
                let ip = remote.ip().to_string();
                self.log(
                    now,
                    "ike_failed",
                    json!({"peer": ip, "nbma": ip, "ike_sa": format!("{:016x}", sa.0), "remote": remote.to_string(),
                           "reason": format!("{failure:?}")}),
                );
            }
        }
    }

    /// An IKE SA went away: with the peer's last one, its adjacencies and shortcuts go too (the seed
    /// Q&A: a dead peer's NHRP state is purged, traffic falls back to the hub).
    fn ike_sa_gone(&mut self, now: Instant, sa: IkeSaId, nbma: IpAddr, why: &'static str) {
        let Some(peer) = self.peers.get_mut(&nbma) else { return };
        peer.ike_sas.remove(&sa);
        let gone: Vec<Pair> = {
            let (gone, keep) = std::mem::take(&mut peer.pairs).into_iter().partition(|p| p.ike_sa == sa);
            peer.pairs = keep;
            gone
        };
        let last = peer.ike_sas.is_empty() && peer.pairs.is_empty();
        self.withdraw(&gone);
        self.refresh_teib(nbma);
        if self.debugging(Facility::Esp, nbma, &[]) {
            for p in &gone {
                let v = json!({"in_spi": format!("{:08x}", p.inbound_spi), "out_spi": format!("{:08x}", p.outbound_spi),
                               "ike_sa": format!("{:016x}", sa.0), "reason": why});
                self.debug(now, Facility::Esp, "esp_sa_deleted", nbma, v);
            }
        }
        if !last {
            return;
        }
        let dynamic = self.teib.dynamic_of(nbma);
        for (tunnel, overlay) in &dynamic {
            self.teib.remove(&(*tunnel, *overlay));
            self.tables.remove_teib(*tunnel, *overlay);
            self.dirty = true;
        }
        let routes: Vec<(TunnelId, IpAddr, u8)> = self
            .shortcuts
            .iter()
            .filter(|((t, _, _), (_, nh))| dynamic.contains(&(*t, *nh)))
            .map(|(k, _)| *k)
            .collect();
        for key in &routes {
            if let Some((vrf, _)) = self.shortcuts.remove(key) {
                let _ = self.tables.remove_route(vrf, key.1, key.2);
                self.dirty = true;
            }
        }
        // The NHRP binding goes too, so that the next Traffic Indication resolves the peer afresh (the
        // shortcut re-forms once the direct path heals) instead of finding the stale entry.
        for (tunnel, overlay) in &dynamic {
            if self.nhrp.forget(nhrp::TunnelId(tunnel.0), *overlay, nbma) {
                self.down_reasons.insert((*tunnel, *overlay), why);
            }
        }
        if !dynamic.is_empty() || !routes.is_empty() {
            self.log(
                now,
                "peer_purged",
                json!({"peer": nbma.to_string(), "nbma": nbma.to_string(), "reason": "last IKE SA gone",
                       "adjacencies": dynamic.len(), "shortcuts": routes.len()}),
            );
        }
    }

    fn install_pair(&mut self, now: Instant, p: &ikeng::SaPair) {
        let Some(tunnel) = self.plan.tunnel_by_source(p.local.ip()).map(|t| t.id) else {
            self.counters.errors += 1;
            return;
        };
        let owner = WorkerId((self.pairs_made % u64::from(self.workers)) as u16);
        self.pairs_made += 1;
        let natt = p.udp_encap.then(|| NattPorts { local: p.local.port(), peer: p.remote.port() });
        let mode = if p.mode == ikeng::Mode::Transport { Mode::Transport } else { Mode::Tunnel };
        let mk = |keys: &ikeng::SaKeys, direction| -> Result<SaConfig, String> {
            let enc = [keys.keys.encr.as_slice(), keys.keys.salt.as_slice()].concat();
            let cipher = plan::esp_cipher(p.suite.encr, p.suite.key_bits, p.suite.integ, &enc, &keys.keys.integ)?;
            Ok(SaConfig {
                spi: keys.spi,
                direction,
                mode,
                cipher,
                esn: p.suite.esn,
                replay_window: self.plan.replay_window,
                soft: Limits::default(),
                hard: Limits::default(),
                tunnel,
                local: p.local.ip(),
                peer: p.remote.ip(),
                natt,
                owner,
            })
        };
        let (cin, cout) = match (mk(&p.inbound, Direction::Inbound), mk(&p.outbound, Direction::Outbound)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                self.counters.errors += 1;
                self.log(now, "sa_install_failed", json!({"remote": p.remote.to_string(), "error": e}));
                return;
            }
        };
        let in_idx = self.alloc_sa();
        let out_idx = self.alloc_sa();
        let mut seed = self.iv_seed;
        seed[..4].copy_from_slice(&out_idx.0.to_be_bytes());
        let built = (|| {
            let a = Sa::new(cin, self.backend, seed).map_err(|e| e.to_string())?;
            let b = Sa::new(cout, self.backend, seed).map_err(|e| e.to_string())?;
            let mut db = self.tables.staged().sas().to_builder();
            db.insert(in_idx, Arc::new(a)).map_err(|e| e.to_string())?;
            db.insert(out_idx, Arc::new(b)).map_err(|e| e.to_string())?;
            db.build().map_err(|e| e.to_string())
        })();
        let db = match built {
            Ok(db) => db,
            Err(e) => {
                self.sa_free.extend([in_idx.0, out_idx.0]);
                self.counters.errors += 1;
                self.log(now, "sa_install_failed", json!({"remote": p.remote.to_string(), "error": e}));
                return;
            }
        };
        self.tables.set_sas(db);
        self.dirty = true;
        self.counters.sa_pairs_installed += 1;
        let nbma = p.remote.ip();
        self.out_sa_peer.insert(out_idx, nbma);
        let peer = self.peers.entry(nbma).or_default();
        peer.pairs.push(Pair {
            ike_sa: p.ike_sa,
            inbound_spi: p.inbound.spi,
            outbound_spi: p.outbound.spi,
            in_idx,
            out_idx,
            remote: p.remote,
            udp_encap: p.udp_encap,
            installed: now,
            drops_traced: (0, 0),
        });
        peer.initiated = None;
        let pending = std::mem::take(&mut peer.pending);
        self.refresh_teib(nbma);
        self.log(
            now,
            "sa_pair_installed",
            json!({"peer": nbma.to_string(), "nbma": nbma.to_string(), "remote": p.remote.to_string(),
                   "in_spi": format!("{:08x}", p.inbound.spi), "out_spi": format!("{:08x}", p.outbound.spi),
                   "udp_encap": p.udp_encap, "owner": owner.0}),
        );
        if self.debugging(Facility::Esp, nbma, &[]) {
            let v = json!({"remote": p.remote.to_string(), "in_spi": format!("{:08x}", p.inbound.spi),
                           "out_spi": format!("{:08x}", p.outbound.spi), "in_index": in_idx.0, "out_index": out_idx.0,
                           "encr": format!("{:?}", p.suite.encr), "key_bits": p.suite.key_bits, "esn": p.suite.esn,
                           "udp_encap": p.udp_encap, "owner_worker": owner.0, "replay_window": self.plan.replay_window});
            self.debug(now, Facility::Esp, "esp_sa_installed", nbma, v);
        }
        for (tunnel, bytes) in pending {
            self.outputs.push_back(Output::Tunnel { tunnel, nbma, sa: Some(out_idx), protocol: GRE_NHRP, bytes });
        }
    }

    fn alloc_sa(&mut self) -> SaIndex {
        SaIndex(self.sa_free.pop().unwrap_or_else(|| {
            self.sa_next += 1;
            self.sa_next - 1
        }))
    }

    /// Removes pairs from the SA database and frees their indices.
    fn withdraw(&mut self, pairs: &[Pair]) {
        if pairs.is_empty() {
            return;
        }
        let mut db = self.tables.staged().sas().to_builder();
        for p in pairs {
            db.remove(p.in_idx);
            db.remove(p.out_idx);
            self.out_sa_peer.remove(&p.out_idx);
            self.sa_free.extend([p.in_idx.0, p.out_idx.0]);
        }
        match db.build() {
            Ok(db) => {
                self.tables.set_sas(db);
                self.dirty = true;
            }
            Err(_) => self.counters.errors += 1,
        }
    }

    /// Gives every TEIB entry of `nbma` the peer's current outbound SA (or none).
    fn refresh_teib(&mut self, nbma: IpAddr) {
        let keys: Vec<(TunnelId, IpAddr, bool)> = self.teib.of_nbma(nbma).map(|((t, o), s)| (t, o, s)).collect();
        for (tunnel, overlay, stat) in keys {
            let entry = TeibEntry { nbma, sa_out: self.sa_out(tunnel, nbma), dynamic: !stat };
            if self.tables.set_teib(tunnel, overlay, entry).is_ok() {
                self.dirty = true;
            }
        }
    }

    // ------------------------------------------------------------------ status

    /// The daemon's state as JSON: tunnels with their `show dmvpn` peers, `show ip nhrp` entries and
    /// NHSs, IKE SAs, counters, recent events.
    pub fn status(&self, now: Instant) -> Value {
        let t = self.t(now);
        let secs = |from: Time| t.0.saturating_sub(from.0) / 1000;
        let mut tunnels = Vec::new();
        for tp in &self.plan.tunnels {
            let id = nhrp::TunnelId(tp.id.0);
            let mut entries: Vec<(IpAddr, nhrp::Entry)> =
                self.nhrp.cache().iter(id).map(|(a, e)| (a, e.clone())).collect();
            entries.sort_by_key(|(a, e)| (*a, e.prefix_len));
            let nhrp_entries: Vec<Value> = entries
                .iter()
                .map(|(a, e)| {
                    json!({
                        "prefix": format!("{a}/{}", e.prefix_len),
                        "nbma": e.nbma.to_string(), "claimed_nbma": e.claimed_nbma.to_string(),
                        "kind": match e.kind { EntryKind::Static => "static", EntryKind::Registered => "registered",
                                               EntryKind::Resolved => "resolved" },
                        "flags": flag_names(e.flags),
                        "created_s": secs(e.created),
                        "expires_s": (e.expires != Time::NEVER).then(|| e.expires.0.saturating_sub(t.0) / 1000),
                        "via": self.shortcuts.get(&(tp.id, *a, e.prefix_len)).map(|(_, nh)| nh.to_string()),
                    })
                })
                .collect();
            let nhs: Vec<Value> = self
                .nhrp
                .nhs(id)
                .iter()
                .map(|n| {
                    json!({
                        "address": n.config.proto.to_string(), "nbma": n.config.nbma.to_string(),
                        "priority": n.config.priority, "cluster": n.config.cluster,
                        "state": format!("{:?}", n.state).to_lowercase(),
                        "requests": n.requests, "replies": n.replies, "failures": n.failures,
                        "last_reply_s": n.last_reply.map(secs),
                    })
                })
                .collect();
            // `show dmvpn`: one row per (NBMA, overlay) of host entries and NHSs.
            let mut peers: Vec<Value> = Vec::new();
            let host = |a: &IpAddr, e: &nhrp::Entry| e.prefix_len == if a.is_ipv4() { 32 } else { 128 };
            for n in self.nhrp.nhs(id) {
                peers.push(json!({
                    "nbma": n.config.nbma.to_string(), "overlay": n.config.proto.to_string(),
                    "state": if n.state == NhsState::Up && self.crypto_up(tp, n.config.nbma) { "UP" }
                             else if n.state == NhsState::Up { "IKE" } else { "NHRP" },
                    "updn_s": n.last_reply.map(secs), "attrs": "S", "entries": 1, "nhs": true,
                }));
            }
            for (a, e) in entries.iter().filter(|(a, e)| host(a, e)) {
                if self.nhrp.nhs(id).iter().any(|n| n.config.proto == *a) {
                    continue;
                }
                let same = entries.iter().filter(|(_, x)| x.nbma == e.nbma).count();
                let mut attrs = String::from(if e.kind == EntryKind::Static { "S" } else { "D" });
                if e.flags.has(EntryFlags::NAT) {
                    attrs.push('N');
                }
                if entries.iter().any(|(b, x)| !host(b, x) && x.nbma == e.nbma) {
                    attrs.push_str("T1");
                }
                peers.push(json!({
                    "nbma": e.nbma.to_string(), "overlay": a.to_string(),
                    "state": if self.crypto_up(tp, e.nbma) { "UP" } else { "IKE" },
                    "updn_s": secs(e.created), "attrs": attrs, "entries": same, "nhs": false,
                }));
            }
            tunnels.push(json!({
                "name": tp.name, "id": tp.id.0, "nbma": tp.nbma.to_string(), "address": tp.address.to_string(),
                "protected": tp.protected, "role": if tp.nhrp.nhs.is_empty() { "hub" } else { "spoke" },
                "peers": peers, "nhrp": nhrp_entries, "nhs": nhs,
            }));
        }
        let ike_sas = self.ike.as_ref().map(|e| e.ike_sas(now)).unwrap_or_default();
        let ike: Vec<Value> = ike_sas
            .iter()
            .map(|s| {
                json!({
                    "id": format!("{:016x}", s.id.0), "state": format!("{:?}", s.state),
                    "initiator": s.initiator, "local": s.local.to_string(), "remote": s.remote.to_string(),
                    "spi_i": format!("{:016x}", s.spi_i), "spi_r": format!("{:016x}", s.spi_r),
                    "local_id": id_str(&s.local_id), "peer_id": s.peer_id.as_ref().map(id_str),
                    "encryption": s.suite.map(|c| format!("{:?}/{}", c.encr, c.key_bits)),
                    "prf": s.suite.map(|c| format!("{:?}", c.prf)), "dh_group": s.suite.map(|c| format!("{:?}", c.dh)),
                    "lifetime_left_s": s.lifetime_left.map(|d| d.as_secs()), "rekeys": s.rekeys,
                    "children": s.children.iter().map(|c| json!({
                        "spi_in": format!("{:08x}", c.spi_in), "spi_out": format!("{:08x}", c.spi_out),
                        "lifetime_left_s": c.lifetime_left.as_secs(), "rekeys": c.rekeys,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let child = |spi_in: u32| ike_sas.iter().flat_map(|s| &s.children).find(|c| c.spi_in == spi_in);
        let db = self.tables.staged().sas();
        let sa_counters = |i: SaIndex| {
            db.get(i).map(|sa| {
                let c = sa.counters();
                json!({"packets": c.packets(), "bytes": c.bytes(), "replay_drops": c.replay_drops(),
                       "auth_failures": c.auth_failures()})
            })
        };
        let mut sas: Vec<Value> = self
            .peers
            .iter()
            .flat_map(|(nbma, p)| p.pairs.iter().map(move |x| (nbma, x)))
            .map(|(nbma, x)| {
                let c = child(x.inbound_spi);
                let tunnel = self.plan.tunnels.iter().find(|t| self.teib.of_nbma(*nbma).any(|((id, _), _)| id == t.id));
                json!({"peer": nbma.to_string(), "remote": x.remote.to_string(), "udp_encap": x.udp_encap,
                       "tunnel": tunnel.map(|t| t.name.clone()),
                       "in_spi": format!("{:08x}", x.inbound_spi), "out_spi": format!("{:08x}", x.outbound_spi),
                       "in_index": x.in_idx.0, "out_index": x.out_idx.0,
                       "ike_sa": format!("{:016x}", x.ike_sa.0),
                       "encryption": c.map(|c| format!("{:?}/{}", c.suite.encr, c.suite.key_bits)),
                       "esn": c.map(|c| c.suite.esn), "mode": c.map(|c| format!("{:?}", c.mode).to_lowercase()),
                       "lifetime_left_s": c.map(|c| c.lifetime_left.as_secs()),
                       "age_s": now.saturating_duration_since(x.installed).as_secs(),
                       "inbound": sa_counters(x.in_idx), "outbound": sa_counters(x.out_idx)})
            })
            .collect();
        sas.sort_by_key(|v| (v["peer"].as_str().map(str::to_string), v["age_s"].as_u64()));
        let n = self.nhrp.counters();
        let names = [
            "",
            "resolution_request",
            "resolution_reply",
            "registration_request",
            "registration_reply",
            "purge_request",
            "purge_reply",
            "error_indication",
            "traffic_indication",
        ];
        let by_op = |a: &[u64; 9]| -> Value {
            names.iter().zip(a).map(|(k, v)| (if k.is_empty() { "unknown" } else { k }.to_string(), json!(v))).collect()
        };
        let interfaces: Vec<Value> = self
            .plan
            .interfaces()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mac = self.tables.staged().port(PortId(i as u16)).map(|p| p.mac).unwrap_or_default();
                json!({"name": f.name, "port": f.port, "port_id": i, "vrf": f.vrf, "mtu": f.mtu, "vlan": f.vlan,
                       "addresses": f.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                       "mac": mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")})
            })
            .collect();
        let ike_stats = self.ike.as_ref().map(|e| {
            let s = e.stats();
            json!({"malformed": s.malformed, "unknown_spi": s.unknown_spi, "integrity_failures": s.integrity_failures,
                   "unexpected_message_id": s.unexpected_message_id, "duplicate_requests": s.duplicate_requests,
                   "retransmits": s.retransmits, "proposals_refused": s.proposals_refused,
                   "auth_failures": s.auth_failures, "half_open_expired": s.half_open_expired,
                   "cookies_sent": s.cookies_sent, "half_open_limited": s.half_open_limited,
                   "nat_keepalives": s.nat_keepalives, "fragments_dropped": s.fragments_dropped})
        });
        json!({
            "hostname": self.hostname,
            "uptime_s": now.saturating_duration_since(self.start).as_secs(),
            "draining": self.nhrp.draining(),
            "tunnels": tunnels,
            "interfaces": interfaces,
            "routes": self.routes_view(),
            "ike_sas": ike,
            "sa_pairs": sas,
            "counters": {
                "control": self.counters,
                "nhrp": {"registrations": n.registrations, "registrations_refused": n.registrations_refused,
                         "registrations_drained": n.registrations_drained,
                         "resolutions_answered": n.resolutions_answered,
                         "resolutions_forwarded": n.resolutions_forwarded,
                         "resolutions_negative": n.resolutions_negative,
                         "traffic_indications": n.traffic_indications,
                         "redirects_rate_limited": n.redirects_rate_limited, "auth_failures": n.auth_failures,
                         "rx_malformed": n.rx_malformed, "rx_bad_checksum": n.rx_bad_checksum,
                         "rx_wrong_tunnel": n.rx_wrong_tunnel, "loops": n.loops,
                         "hop_count_exceeded": n.hop_count_exceeded, "errors_sent": n.errors_sent,
                         "unsolicited": n.unsolicited, "expired": n.expired,
                         "rx": by_op(&n.rx), "tx": by_op(&n.tx)},
                "ike": ike_stats,
            },
            "events": self.obs.events(0, STATUS_EVENTS).iter().map(|e| &**e).collect::<Vec<_>>(),
        })
    }

    fn crypto_up(&self, t: &plan::TunnelPlan, nbma: IpAddr) -> bool {
        !t.protected || self.sa_out(t.id, nbma).is_some()
    }
}

fn plan_contains(a: Ipv4Addr, len: u8, b: Ipv4Addr) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

/// An IKE identity as text: an address, a name, or hex.
fn id_str(id: &ike::message::Id) -> String {
    match (id.ty.0, id.data.as_slice()) {
        (1, &[a, b, c, d]) => Ipv4Addr::new(a, b, c, d).to_string(),
        (2 | 3 | 11, d) if d.iter().all(|b| b.is_ascii_graphic()) => String::from_utf8_lossy(d).into_owned(),
        (_, d) => hex::encode(d),
    }
}

#[cfg(test)]
mod tests;

fn flag_names(f: EntryFlags) -> Vec<&'static str> {
    let names = [
        (EntryFlags::UNIQUE, "unique"),
        (EntryFlags::NAT, "nat"),
        (EntryFlags::ROUTER, "router"),
        (EntryFlags::USED, "used"),
        (EntryFlags::AUTHORITATIVE, "authoritative"),
    ];
    names.iter().filter(|(b, _)| f.has(*b)).map(|(_, n)| *n).collect()
}
