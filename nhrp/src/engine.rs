//! The sans-IO NHRP engine: one [`Engine`] serves every mGRE tunnel of a node, as NHS (hub), as NHC
//! (spoke), or both (a hub registered to another hub).
//!
//! Layer: protocol state machine. Contract (quinn-proto's):
//! - Inputs: [`Engine::handle_datagram`] (an NHRP packet the dataplane punted, with its outer NBMA
//!   addresses), [`Engine::handle_redirect`] (the dataplane saw a packet hairpin through a tunnel),
//!   [`Engine::handle_timeout`], and the commands [`Engine::register`], [`Engine::resolve`],
//!   [`Engine::purge`], [`Engine::clear`], [`Engine::clear_entry`], [`Engine::forget`], [`Engine::mark_used`], [`Engine::add_route`].
//! - Outputs, polled after each input: [`Engine::poll_transmit`] (NHRP bytes for the daemon to wrap in
//!   GRE, and ESP, to an NBMA address), [`Engine::poll_event`] (what to install in the dataplane), and
//!   [`Engine::poll_timeout`] (when to call [`Engine::handle_timeout`] next).
//! - Getters for `show ip nhrp`, `show dmvpn` and `show ip nhrp nhs detail`: [`Engine::cache`],
//!   [`Engine::nhs`], [`Engine::counters`], [`Engine::multicast_nbmas`].
//! - No clock (time is a [`Time`] argument and must not go backwards), no I/O, randomness from the
//!   seed given to [`Engine::new`]. No input panics; peer misbehaviour is counted in [`Counters`] and,
//!   where RFC 2332 §5.2.7 says so, answered with an Error Indication: the packet in error quoted
//!   whole, no extensions, the Error Offset at its offending octet (the unknown or wrong extension,
//!   the looping transit CIE, `ar$hopcnt`, the missing address's length, `ar$pktsz` for a reply that
//!   would exceed the tunnel MTU: code 8, SDU Size Exceeded).
//!
//! Behaviour, by RFC 2332 section:
//! - §5.2.3/§5.2.4 registrations: the NHS binds the client's protocol address to the NBMA address
//!   the packet came from (after NAT); it keeps the claimed one too and answers with Cisco's NAT
//!   address extension when they differ. A unique binding (U bit) is not replaced from another NBMA
//!   address until it expires (code 14). The NHC registers with each active NHS every
//!   `registration_interval` (holding time / 3 by default) with a stable request id, retransmits
//!   unanswered requests after 1, 2, 4 … seconds (capped at the interval), and declares the NHS down
//!   after [`NHS_DOWN_AFTER`] unanswered tries. Per cluster, at most `max_connections` NHSs are used,
//!   best priority (lowest value) first; a down NHS is replaced by the next and keeps being probed.
//! - §5.2.1/§5.2.2 resolution: a node answers for its own tunnel address and its local networks
//!   (authoritatively, with the network's prefix length); an NHS forwards a request for a registered
//!   client, or for a destination routed via one ([`Engine::add_route`]), to that client — Cisco's
//!   Phase 2/3 hub — and answers from static entries; otherwise it forwards to its own NHS (hub to hub)
//!   or answers "no binding" (code 12). Forwarders decrement the hop count (Error Indication 15 at
//!   zero), append themselves to the Forward/Reverse Transit NHS Record (§5.3.2/§5.3.3) and refuse a
//!   request that already lists them (Error Indication 3, loop). Resolved shortcuts are refreshed
//!   before they expire only if used ([`Engine::mark_used`]).
//! - §5.2.5/§5.2.6 purge: entries named by a Purge Request are removed (a purged peer takes the
//!   shortcuts through it along) and the request answered unless it has the N bit. An NHS remembers
//!   who resolved, through it, a destination owned by each registered client; when that registration
//!   changes NBMA address, expires, is purged or cleared, each of them (whose copy has not expired yet)
//!   gets a Purge Request, as Cisco hubs purge their spokes' shortcuts. [`Engine::purge`] sends them
//!   for a withdrawn local network. Purge Requests are resent until their Purge Reply comes.
//! - Cisco Phase 3: on a redirect trigger the hub sends the source a Traffic Indication, at most one per
//!   (source, destination) per [`REDIRECT_HOLD_SECS`]; a spoke receiving one resolves the destination.
//! - §5.3.4 authentication (Cisco plaintext) and the network id are per tunnel: packets without the
//!   right secret get Error Indication 11; resolution looks only at tunnels of the same network id.

use core::net::IpAddr;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use crate::cache::{host_len, mask, Cache, Entry, EntryFlags, EntryKind, Time, TunnelId};
use crate::wire::{
    flags, Body, Cie, CieCode, ErrorCode, Extension, ExtensionBody, ExtensionType, Family, Operation, Packet, View,
    AUTH_PLAINTEXT, DST_PROTO_LEN_AT, EXTOFF_AT, HOPCNT_AT, PKTSZ_AT, SRC_PROTO_LEN_AT,
};

/// Unanswered registration tries after which an NHS is declared down.
pub const NHS_DOWN_AFTER: u32 = 3;
/// First retransmission delay of a request, milliseconds (doubled per try).
pub const RETRY_BASE_MS: u64 = 1000;
/// Resolution Requests are given up after this many tries.
pub const RESOLUTION_TRIES: u32 = 3;
/// Minimum seconds between two Traffic Indications for the same (source, destination).
pub const REDIRECT_HOLD_SECS: u64 = 8;
/// A used shortcut is refreshed this many seconds before it expires (Cisco: 2 minutes), or at half its
/// holding time if that is shorter.
pub const REFRESH_LEAD_SECS: u64 = 120;
/// Bytes of the redirected packet quoted in a Traffic Indication.
pub const TRAFFIC_QUOTE_LEN: usize = 64;
/// Purge Requests are given up after this many unanswered tries.
pub const PURGE_TRIES: u32 = 3;
/// Requesters remembered per registered entry (the oldest-expiring one makes room for a new one).
pub const MAX_REQUESTERS: usize = 64;

/// One Next Hop Server a tunnel registers with (`ip nhrp nhs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NhsConfig {
    /// The NHS's tunnel (protocol) address.
    pub proto: IpAddr,
    /// Its NBMA address.
    pub nbma: IpAddr,
    /// Lower is preferred (`priority`).
    pub priority: u8,
    /// Cluster (`cluster`); `max_connections` applies per cluster.
    pub cluster: u8,
}

/// Configuration of one tunnel (`interface Tunnel<N>`'s `ip nhrp ...` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// Our tunnel (protocol) address.
    pub proto: IpAddr,
    /// Our NBMA address (the tunnel source), as we claim it in packets.
    pub nbma: IpAddr,
    /// `ip nhrp network-id`: tunnels with the same id share resolution.
    pub network_id: u32,
    /// `ip nhrp holdtime`, seconds: what we put in our registrations and replies.
    pub holding_time: u16,
    /// `ip nhrp registration timeout`, seconds; `None` is holding time / 3.
    pub registration_interval: Option<u16>,
    /// `ip nhrp authentication`: the plaintext secret (Cisco: up to 8 bytes).
    pub auth: Option<Vec<u8>>,
    /// MTU announced in CIEs (0: none).
    pub mtu: u16,
    /// Hop count of the packets we originate.
    pub hop_count: u8,
    /// NHSs to register with (empty on a hub that registers nowhere).
    pub nhs: Vec<NhsConfig>,
    /// `max-connections` per cluster, as (cluster, max); clusters not listed are unlimited.
    pub max_connections: Vec<(u8, u8)>,
    /// Register with the unique bit (`ip nhrp registration unique`).
    pub unique: bool,
    /// Phase 3 hub: send Traffic Indications on redirect triggers (`ip nhrp redirect`).
    pub redirect: bool,
    /// Phase 3 spoke: resolve on Traffic Indications (`ip nhrp shortcut`).
    pub shortcut: bool,
    /// Networks behind us that we answer resolution requests for, as (prefix, length).
    pub local_networks: Vec<(IpAddr, u8)>,
    /// Static bindings (`ip nhrp map`), as (protocol, NBMA).
    pub static_maps: Vec<(IpAddr, IpAddr)>,
}

impl TunnelConfig {
    /// A tunnel with Cisco's defaults: holding time 7200 s, hop count 255, no NHS, no authentication.
    pub fn new(proto: IpAddr, nbma: IpAddr) -> TunnelConfig {
        TunnelConfig {
            proto,
            nbma,
            network_id: 1,
            holding_time: 7200,
            registration_interval: None,
            auth: None,
            mtu: 0,
            hop_count: 255,
            nhs: Vec::new(),
            max_connections: Vec::new(),
            unique: false,
            redirect: false,
            shortcut: false,
            local_networks: Vec::new(),
            static_maps: Vec::new(),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The tunnel is already configured.
    #[error("tunnel {0:?} already exists")]
    Duplicate(TunnelId),
    /// An NHS or static map address has another family than the tunnel's address of that layer.
    #[error("tunnel {tunnel:?}: {what} {addr} is not of the tunnel's address family")]
    Family {
        /// The tunnel.
        tunnel: TunnelId,
        /// Which field.
        what: &'static str,
        /// The address.
        addr: IpAddr,
    },
    /// The authentication secret is empty or longer than Cisco's 8 bytes.
    #[error("tunnel {0:?}: authentication secret must be 1 to 8 bytes")]
    AuthLength(TunnelId),
    /// The holding time is 0.
    #[error("tunnel {0:?}: holding time must be at least 1 second")]
    HoldingTime(TunnelId),
}

/// State of an NHS as the NHC sees it (`show ip nhrp nhs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NhsState {
    /// Not used (beyond `max-connections`).
    Idle,
    /// Registering, no reply yet.
    Probing,
    /// Its last registration was answered.
    Up,
    /// [`NHS_DOWN_AFTER`] registrations went unanswered, or it refused us; still probed.
    Down,
}

/// One NHS's state and counters (`show ip nhrp nhs detail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NhsStatus {
    /// Its configuration.
    pub config: NhsConfig,
    /// State.
    pub state: NhsState,
    /// Registration Requests sent.
    pub requests: u64,
    /// Successful Registration Replies received.
    pub replies: u64,
    /// Unanswered tries and refusals.
    pub failures: u64,
    /// When the last successful reply came.
    pub last_reply: Option<Time>,
    /// Our NBMA address as this NHS saw it (its NAT address extension), if it told us.
    pub nat_nbma: Option<IpAddr>,
    /// The request id used for every registration to this NHS (Cisco keeps it stable).
    pub request_id: u32,
    outstanding: bool,
    tries: u32,
    next: Time,
}

/// Something the daemon must apply to the dataplane or report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer's tunnel address now maps to an NBMA address (TEIB entry; IKE may start).
    AdjacencyAdded {
        /// The tunnel.
        tunnel: TunnelId,
        /// The peer's protocol (tunnel) address.
        proto: IpAddr,
        /// Where to send (post-NAT).
        nbma: IpAddr,
        /// What the peer claimed; differs from `nbma` behind NAT.
        claimed_nbma: IpAddr,
    },
    /// The mapping is gone (expired, purged, cleared or replaced).
    AdjacencyRemoved {
        /// The tunnel.
        tunnel: TunnelId,
        /// The peer's protocol address.
        proto: IpAddr,
        /// The NBMA address it had.
        nbma: IpAddr,
    },
    /// A Phase 3 shortcut: route `prefix/prefix_len` via the peer `next_hop` at `nbma`.
    ShortcutAdded {
        /// The tunnel.
        tunnel: TunnelId,
        /// The destination network.
        prefix: IpAddr,
        /// Its length.
        prefix_len: u8,
        /// The peer's protocol address.
        next_hop: IpAddr,
        /// The peer's NBMA address.
        nbma: IpAddr,
    },
    /// The shortcut is gone.
    ShortcutRemoved {
        /// The tunnel.
        tunnel: TunnelId,
        /// The destination network.
        prefix: IpAddr,
        /// Its length.
        prefix_len: u8,
    },
    /// An NHS answered (drives the primary/backup tunnel choice).
    NhsUp {
        /// The tunnel.
        tunnel: TunnelId,
        /// The NHS's protocol address.
        nhs: IpAddr,
    },
    /// An NHS stopped answering or refused us.
    NhsDown {
        /// The tunnel.
        tunnel: TunnelId,
        /// The NHS's protocol address.
        nhs: IpAddr,
    },
    /// A peer purged an entry (§5.2.5).
    Purged {
        /// The tunnel.
        tunnel: TunnelId,
        /// The purged address or network.
        proto: IpAddr,
        /// Its length.
        prefix_len: u8,
    },
}

/// An NHRP packet to send: the daemon wraps it in GRE (protocol 0x2001) on `tunnel` to `nbma`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The tunnel.
    pub tunnel: TunnelId,
    /// The destination NBMA address.
    pub nbma: IpAddr,
    /// The NHRP packet.
    pub bytes: Vec<u8>,
}

/// Counters, for `show ip nhrp traffic` and the REST API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets received with a good checksum, by operation (index = `ar$op.type`, 0 for unknown).
    pub rx: [u64; 9],
    /// Packets sent, by operation.
    pub tx: [u64; 9],
    /// Received packets that did not parse (truncated, malformed, bad version).
    pub rx_malformed: u64,
    /// Received packets with a bad checksum.
    pub rx_bad_checksum: u64,
    /// Received on an unknown tunnel, or with other address families than the tunnel's.
    pub rx_wrong_tunnel: u64,
    /// Packets handed to one tunnel but addressed to another tunnel's NBMA address.
    pub rx_wrong_nbma_dst: u64,
    /// Authentication failures.
    pub auth_failures: u64,
    /// Loops detected in Forward Transit NHS Records.
    pub loops: u64,
    /// Packets whose hop count ran out.
    pub hop_count_exceeded: u64,
    /// Packets with an unknown compulsory extension.
    pub unknown_compulsory: u64,
    /// Error Indications sent.
    pub errors_sent: u64,
    /// Replies (and relayed packets) that would have exceeded the tunnel MTU, answered with Error
    /// Indication 8 instead (§5.2.7).
    pub sdu_size_exceeded: u64,
    /// Registrations accepted (NHS).
    pub registrations: u64,
    /// Registrations refused (unique conflict, static entry, prefix, drain).
    pub registrations_refused: u64,
    /// Of those, refused because the NHS is drained for maintenance ([`Engine::set_draining`]).
    pub registrations_drained: u64,
    /// Resolution Requests answered by us.
    pub resolutions_answered: u64,
    /// Resolution Requests forwarded.
    pub resolutions_forwarded: u64,
    /// Negative Resolution Replies sent.
    pub resolutions_negative: u64,
    /// Replies nobody asked for (unknown request id), or that could not be relayed.
    pub unsolicited: u64,
    /// Traffic Indications sent.
    pub traffic_indications: u64,
    /// Redirect triggers not acted on because of the rate limit.
    pub redirects_rate_limited: u64,
    /// Entries that expired.
    pub expired: u64,
    /// Entries the daemon told us to forget ([`Engine::forget`]).
    pub forgotten: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Entry(TunnelId, IpAddr),
    Nhs(TunnelId, u16),
    Resolution(u32),
    Purge(u32),
    RedirectGc,
}

/// A Purge Request waiting for its Purge Reply (§5.2.5, §5.2.6): resent as it was.
#[derive(Debug)]
struct PendingPurge {
    tunnel: TunnelId,
    to: IpAddr,
    bytes: Vec<u8>,
    tries: u32,
}

/// A node that resolved through us a destination owned by a registered client (§5.2.5: whoever holds
/// the binding is purged when it changes).
#[derive(Debug, Clone, Copy)]
struct Requester {
    /// The tunnel it asked on (one of the owner's network id).
    tunnel: TunnelId,
    /// Its protocol address: the Purge Request's destination.
    proto: IpAddr,
    /// Where to send the Purge Request (its NBMA address, after NAT when we know it).
    nbma: IpAddr,
    /// When its copy of the binding expires anyway (the holding time it asked for).
    until: Time,
}

#[derive(Debug)]
struct Pending {
    tunnel: TunnelId,
    dst: IpAddr,
    tries: u32,
}

#[derive(Debug)]
struct Tunnel {
    id: TunnelId,
    cfg: TunnelConfig,
    nhs: Vec<NhsStatus>,
    interval_secs: u64,
    nbma_family: Family,
    proto_family: Family,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The NHRP engine of one node. See the module documentation for the calling contract.
#[derive(Debug)]
pub struct Engine {
    tunnels: Vec<Tunnel>,
    cache: Cache,
    /// Overlay routes the daemon gave us: (tunnel, masked prefix, length) → next hop.
    routes: FastMap<(TunnelId, IpAddr, u8), IpAddr>,
    route_lens: Vec<u8>,
    pending: FastMap<u32, Pending>,
    /// Outstanding Purge Requests, by request id.
    purges: FastMap<u32, PendingPurge>,
    /// Per registered entry (tunnel, client address): who resolved a destination it owns. Kept apart
    /// from the cache, so that entries nobody resolved cost nothing.
    requesters: FastMap<(TunnelId, IpAddr), Vec<Requester>>,
    /// The latest time any input brought (for purges that [`Engine::clear`] sends).
    latest: Time,
    redirects: FastMap<(TunnelId, IpAddr, IpAddr), Time>,
    timers: BinaryHeap<Reverse<(Time, Timer)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    counters: Counters,
    next_request_id: u32,
    gc_armed: bool,
    /// Drained for maintenance: Registration Requests from clients without a binding are refused.
    draining: bool,
}

fn family(a: &IpAddr) -> Family {
    Family::of(a)
}

fn op_index(op: Operation) -> usize {
    if (1..=8).contains(&op.0) {
        usize::from(op.0)
    } else {
        0
    }
}

impl Engine {
    /// An engine with no tunnel. `seed` feeds request ids and the cache's hash keys.
    pub fn new(seed: u64) -> Engine {
        let mut rng = seed ^ 0x9E37_79B9_7F4A_7C15;
        let next_request_id = (xorshift(&mut rng) >> 40) as u32 | 1;
        let h = foldhash::fast::FixedState::with_seed(xorshift(&mut rng));
        Engine {
            tunnels: Vec::new(),
            cache: Cache::new(xorshift(&mut rng)),
            routes: HashMap::with_hasher(h.clone()),
            route_lens: Vec::new(),
            pending: HashMap::with_hasher(h.clone()),
            purges: HashMap::with_hasher(h.clone()),
            requesters: HashMap::with_hasher(h.clone()),
            latest: Time(0),
            redirects: HashMap::with_hasher(h),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            counters: Counters::default(),
            next_request_id,
            gc_armed: false,
            draining: false,
        }
    }

    /// Reserves room for `n` cache entries (a hub sized for its spokes).
    pub fn reserve(&mut self, n: usize) {
        self.cache.reserve(n);
        self.timers.reserve(n);
    }

    /// Adds a tunnel; its NHSs are registered with from `now` on.
    pub fn add_tunnel(&mut self, now: Time, id: TunnelId, cfg: TunnelConfig) -> Result<(), ConfigError> {
        self.latest = self.latest.max(now);
        if self.tunnels.iter().any(|t| t.id == id) {
            return Err(ConfigError::Duplicate(id));
        }
        if cfg.holding_time == 0 {
            return Err(ConfigError::HoldingTime(id));
        }
        if cfg.auth.as_ref().is_some_and(|a| a.is_empty() || a.len() > 8) {
            return Err(ConfigError::AuthLength(id));
        }
        let (nf, pf) = (family(&cfg.nbma), family(&cfg.proto));
        let check = |what, addr: &IpAddr, f: Family| {
            if family(addr) == f {
                Ok(())
            } else {
                Err(ConfigError::Family { tunnel: id, what, addr: *addr })
            }
        };
        for n in &cfg.nhs {
            check("nhs protocol address", &n.proto, pf)?;
            check("nhs nbma address", &n.nbma, nf)?;
        }
        for (p, n) in &cfg.static_maps {
            check("map protocol address", p, pf)?;
            check("map nbma address", n, nf)?;
        }
        for (p, _) in &cfg.local_networks {
            check("local network", p, pf)?;
        }
        let interval_secs = u64::from(cfg.registration_interval.unwrap_or(cfg.holding_time / 3).max(1));
        let mut nhs = Vec::new();
        for c in &cfg.nhs {
            let request_id = self.request_id();
            nhs.push(NhsStatus {
                config: c.clone(),
                state: NhsState::Idle,
                requests: 0,
                replies: 0,
                failures: 0,
                last_reply: None,
                nat_nbma: None,
                request_id,
                outstanding: false,
                tries: 0,
                next: now,
            });
        }
        for (p, n) in &cfg.static_maps {
            let e = Entry {
                nbma: *n,
                claimed_nbma: *n,
                created: now,
                expires: Time::NEVER,
                armed: Time::NEVER,
                holding_time: 0,
                mtu: 0,
                prefix_len: host_len(p),
                kind: EntryKind::Static,
                flags: EntryFlags::default(),
            };
            self.cache.insert(id, *p, e);
            self.events.push_back(Event::AdjacencyAdded { tunnel: id, proto: *p, nbma: *n, claimed_nbma: *n });
        }
        self.tunnels.push(Tunnel { id, cfg, nhs, interval_secs, nbma_family: nf, proto_family: pf });
        self.rebalance(now, id);
        Ok(())
    }

    /// Changes the options of a tunnel that take effect without re-adding it: the holding time we
    /// register with and give our clients (the registration interval follows it unless configured),
    /// whether we send Traffic Indications (redirect) and whether we act on them (shortcut). Entries
    /// already bound keep the holding time they were given. Returns false for an unknown tunnel.
    pub fn set_tunnel_options(&mut self, tunnel: TunnelId, holding_time: u16, redirect: bool, shortcut: bool) -> bool {
        let Some(ti) = self.tunnel_index(tunnel) else { return false };
        let t = &mut self.tunnels[ti];
        if holding_time > 0 {
            t.cfg.holding_time = holding_time;
        }
        t.cfg.redirect = redirect;
        t.cfg.shortcut = shortcut;
        t.interval_secs = u64::from(t.cfg.registration_interval.unwrap_or(t.cfg.holding_time / 3).max(1));
        true
    }

    /// Drains the NHS for maintenance (or ends the drain): while drained, a Registration Request from a
    /// client that holds no binding here is answered with CIE code 5, Insufficient Resources (RFC 2332
    /// §5.2.0.1), so that new spokes register with their other NHSs; clients already bound keep
    /// refreshing their bindings until they are cleared.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Whether the NHS is drained.
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// Removes the dynamic entry of `proto` on `tunnel` (`clear ip nhrp ADDRESS`), with the events of
    /// its removal; returns false when there is none (static entries stay).
    pub fn clear_entry(&mut self, tunnel: TunnelId, proto: IpAddr) -> bool {
        if self.cache.get(tunnel, &proto).is_none_or(|e| e.kind == EntryKind::Static) {
            return false;
        }
        self.remove_entry(tunnel, &proto);
        true
    }

    // ---------------------------------------------------------------- getters

    /// The cache (all tunnels).
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The NHSs of a tunnel and their state.
    pub fn nhs(&self, tunnel: TunnelId) -> &[NhsStatus] {
        self.tunnel(tunnel).map_or(&[], |t| &t.nhs)
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The dynamic multicast list of a tunnel: NBMA addresses of registered clients and of our NHSs
    /// (who gets routing-protocol multicast, `ip nhrp map multicast dynamic`).
    pub fn multicast_nbmas(&self, tunnel: TunnelId) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> =
            self.cache.iter(tunnel).filter(|(_, e)| e.kind == EntryKind::Registered).map(|(_, e)| e.nbma).collect();
        v.extend(self.nhs(tunnel).iter().filter(|n| n.state != NhsState::Idle).map(|n| n.config.nbma));
        v.sort();
        v.dedup();
        v
    }

    // ---------------------------------------------------------------- outputs

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] should next be called (it may be called earlier).
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    // ---------------------------------------------------------------- commands

    /// Sends a registration to every active NHS of `tunnel` now (`clear ip nhrp nhs` / interface up).
    pub fn register(&mut self, now: Time, tunnel: TunnelId) {
        self.latest = self.latest.max(now);
        let Some(ti) = self.tunnel_index(tunnel) else { return };
        for i in 0..self.tunnels[ti].nhs.len() {
            if self.tunnels[ti].nhs[i].state != NhsState::Idle {
                self.tunnels[ti].nhs[i].outstanding = false;
                self.send_registration(now, ti, i);
            }
        }
    }

    /// Resolves `dst` on `tunnel` (data for it is waiting, or a Traffic Indication asked): sends a
    /// Resolution Request to the best NHS unless an entry covers `dst` or a request is outstanding.
    pub fn resolve(&mut self, now: Time, tunnel: TunnelId, dst: IpAddr) {
        self.latest = self.latest.max(now);
        let Some(ti) = self.tunnel_index(tunnel) else { return };
        if family(&dst) != self.tunnels[ti].proto_family || self.is_local(ti, &dst).is_some() {
            return;
        }
        if self.cache.covering(tunnel, &dst).is_some()
            || self.pending.values().any(|p| p.tunnel == tunnel && p.dst == dst)
        {
            return;
        }
        let id = self.request_id();
        self.pending.insert(id, Pending { tunnel, dst, tries: 0 });
        self.send_resolution(now, id);
    }

    /// Withdraws our local network `prefix/prefix_len` (it moved or went down): sends a Purge Request
    /// (§5.2.5) to our NHSs and to every peer we hold a resolved binding for (they resolved us, or we
    /// them), each resent after 1, 2 … seconds until its Purge Reply comes, [`PURGE_TRIES`] times at most.
    pub fn purge(&mut self, now: Time, tunnel: TunnelId, prefix: IpAddr, prefix_len: u8) {
        self.latest = self.latest.max(now);
        let Some(ti) = self.tunnel_index(tunnel) else { return };
        let t = &self.tunnels[ti];
        let mut to: Vec<(IpAddr, IpAddr)> =
            t.nhs.iter().filter(|n| n.state != NhsState::Idle).map(|n| (n.config.nbma, n.config.proto)).collect();
        to.extend(
            self.cache
                .iter(tunnel)
                .filter(|(k, e)| e.kind == EntryKind::Resolved && e.prefix_len == host_len(k))
                .map(|(k, e)| (e.nbma, k)),
        );
        to.sort();
        to.dedup_by_key(|(nbma, _)| *nbma);
        let cie = Cie {
            code: CieCode::SUCCESS,
            prefix_len,
            mtu: 0,
            holding_time: 0,
            preference: 0,
            nbma: Some(t.cfg.nbma),
            proto: Some(mask(prefix, prefix_len)),
        };
        for (nbma, dst) in to {
            self.send_purge(now, ti, dst, nbma, cie.clone());
        }
    }

    /// Removes every dynamic entry of `tunnel` (`clear ip nhrp`).
    pub fn clear(&mut self, tunnel: TunnelId) {
        for k in self.cache.keys_of(tunnel) {
            if self.cache.get(tunnel, &k).is_some_and(|e| e.kind != EntryKind::Static) {
                self.remove_entry(tunnel, &k);
            }
        }
    }

    /// Forgets the dynamic binding of the peer `proto` if it is still bound to `nbma` (the daemon's
    /// IKE declared that peer dead, or the operator cleared it), with the shortcuts through it, so
    /// that the next Traffic Indication resolves afresh instead of finding the stale entry until it
    /// expires. Static entries and a binding the peer has since renewed from another NBMA address
    /// stay. Returns whether anything went; the removals come out as events like any other.
    pub fn forget(&mut self, tunnel: TunnelId, proto: IpAddr, nbma: IpAddr) -> bool {
        let key = mask(proto, host_len(&proto));
        if !self.cache.get(tunnel, &key).is_some_and(|e| e.nbma == nbma && e.kind != EntryKind::Static) {
            return false;
        }
        self.counters.forgotten += 1;
        self.remove_with_shortcuts(tunnel, &key);
        true
    }

    /// Traffic used the entry covering `dst` (the daemon reads this from the dataplane): a shortcut is
    /// refreshed before it expires only if used.
    pub fn mark_used(&mut self, tunnel: TunnelId, dst: IpAddr) {
        let Some((k, _)) = self.cache.covering(tunnel, &dst) else { return };
        if let Some(e) = self.cache.get_mut(tunnel, &k) {
            e.flags.0 |= EntryFlags::USED;
        }
    }

    /// An overlay route (from the routing protocol): `prefix/len` is reached via `next_hop`. An NHS
    /// forwards Resolution Requests for such destinations to the client registered as `next_hop`.
    pub fn add_route(&mut self, tunnel: TunnelId, prefix: IpAddr, len: u8, next_hop: IpAddr) {
        let len = len.min(host_len(&prefix));
        self.routes.insert((tunnel, mask(prefix, len), len), next_hop);
        if !self.route_lens.contains(&len) {
            self.route_lens.push(len);
            self.route_lens.sort_unstable_by(|a, b| b.cmp(a));
        }
    }

    /// Removes an overlay route.
    pub fn remove_route(&mut self, tunnel: TunnelId, prefix: IpAddr, len: u8) {
        let len = len.min(host_len(&prefix));
        self.routes.remove(&(tunnel, mask(prefix, len), len));
    }

    // ---------------------------------------------------------------- inputs

    /// Timers due at or before `now` fire.
    pub fn handle_timeout(&mut self, now: Time) {
        self.latest = self.latest.max(now);
        while let Some(Reverse((t, timer))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            match timer {
                Timer::Entry(tunnel, key) => self.entry_timer(now, t, tunnel, key),
                Timer::Nhs(tunnel, i) => self.nhs_timer(now, t, tunnel, usize::from(i)),
                Timer::Resolution(id) => self.resolution_timer(now, id),
                Timer::Purge(id) => self.purge_timer(now, id),
                Timer::RedirectGc => {
                    self.gc_armed = false;
                    self.redirects.retain(|_, last| now.secs_since(*last) < REDIRECT_HOLD_SECS);
                    if !self.redirects.is_empty() {
                        self.arm_gc(now);
                    }
                }
            }
        }
    }

    /// The dataplane routed a packet that came in on `tunnel` back out of it (Phase 3): send its
    /// source a Traffic Indication. `nbma_src` is the NBMA address the packet came from, if known
    /// (otherwise that of the client owning the packet's source, by registration or route); `packet`
    /// starts at its IP header.
    pub fn handle_redirect(&mut self, now: Time, tunnel: TunnelId, nbma_src: Option<IpAddr>, packet: &[u8]) {
        self.latest = self.latest.max(now);
        let Some(ti) = self.tunnel_index(tunnel) else { return };
        if !self.tunnels[ti].cfg.redirect {
            return;
        }
        let Some((src, dst)) = ip_src_dst(packet) else {
            self.counters.rx_malformed += 1;
            return;
        };
        if family(&src) != self.tunnels[ti].proto_family {
            return;
        }
        let key = (tunnel, src, dst);
        if self.redirects.get(&key).is_some_and(|last| now.secs_since(*last) < REDIRECT_HOLD_SECS) {
            self.counters.redirects_rate_limited += 1;
            return;
        }
        let Some(to) = nbma_src.or_else(|| self.find_owner(ti, &src).map(|(_, _, e)| e.nbma)) else {
            return;
        };
        self.redirects.insert(key, now);
        self.arm_gc(now);
        let quote = packet[..packet.len().min(TRAFFIC_QUOTE_LEN)].to_vec();
        // Only the authentication extension: Cisco's Traffic Indication carries no others.
        let exts = self.request_extensions(ti).into_iter().filter(|e| e.body.kind() == ExtensionType::AUTHENTICATION);
        let body = Body::Traffic { code: 0, packet: quote };
        let mut p = self.packet(ti, Operation::TRAFFIC_INDICATION, Some(src), body, exts.collect());
        p.hop_count = 1;
        self.counters.traffic_indications += 1;
        self.send(ti, to, &p);
    }

    /// An NHRP packet arrived on `tunnel` from NBMA address `nbma_src` (as seen on the wire, after any
    /// NAT) to our NBMA address `nbma_dst`.
    /// A datagram to the NBMA address of another of our tunnels (a hub with two ISPs, one tunnel
    /// each) was misdelivered by the caller: counted in `rx_wrong_nbma_dst` and dropped. Any other
    /// destination is taken as ours (behind NAT it is an address we do not know).
    pub fn handle_datagram(&mut self, now: Time, tunnel: TunnelId, nbma_src: IpAddr, nbma_dst: IpAddr, bytes: &[u8]) {
        self.latest = self.latest.max(now);
        // The view first: a damaged header, a bad checksum, another tunnel's address families, an
        // unknown compulsory extension or a missing secret cost no parse and no allocation.
        let Ok(v) = View::new_checked(bytes) else {
            self.counters.rx_malformed += 1;
            return;
        };
        if !v.checksum_ok() {
            self.counters.rx_bad_checksum += 1;
            return;
        }
        self.counters.rx[op_index(v.operation())] += 1;
        let Some(ti) = self.tunnel_index(tunnel) else {
            self.counters.rx_wrong_tunnel += 1;
            return;
        };
        let t = &self.tunnels[ti];
        if nbma_dst != t.cfg.nbma && self.tunnels.iter().any(|o| o.cfg.nbma == nbma_dst) {
            self.counters.rx_wrong_nbma_dst += 1;
            return;
        }
        if v.nbma_family() != Some(t.nbma_family)
            || v.proto_family() != Some(t.proto_family)
            || family(&nbma_src) != t.nbma_family
        {
            self.counters.rx_wrong_tunnel += 1;
            return;
        }
        let (op, src_proto) = (v.operation(), addr_of(v.src_proto()));
        if op != Operation::ERROR_INDICATION {
            // The Error Offsets (§5.2.7): the first unknown compulsory extension; the wrong
            // authentication extension, or where the extensions start when it is missing.
            let mut unknown_compulsory = None;
            let mut authenticated = t.cfg.auth.is_none();
            let mut auth_at = match v.extension_offset() {
                0 => EXTOFF_AT,
                at => at,
            };
            for x in v.extensions() {
                let Ok(x) = x else {
                    self.counters.rx_malformed += 1;
                    return;
                };
                // §5.3: an unknown extension with the C bit set makes the whole packet unacceptable.
                if x.compulsory && !KNOWN_EXTENSIONS.contains(&x.kind) {
                    unknown_compulsory = unknown_compulsory.or(Some(x.offset));
                }
                // §5.3.4: with a secret configured, every packet must carry it.
                if let (ExtensionType::AUTHENTICATION, Some(secret)) = (x.kind, &t.cfg.auth) {
                    auth_at = x.offset;
                    if let [a, b, c, d, data @ ..] = x.value {
                        authenticated |= u32::from_be_bytes([*a, *b, *c, *d]) == AUTH_PLAINTEXT && data == &secret[..];
                    }
                }
            }
            if let Some(at) = unknown_compulsory {
                self.counters.unknown_compulsory += 1;
                self.send_error(ti, nbma_src, src_proto, bytes, ErrorCode::UNRECOGNIZED_EXTENSION, at);
                return;
            }
            if !authenticated {
                self.counters.auth_failures += 1;
                self.send_error(ti, nbma_src, src_proto, bytes, ErrorCode::AUTHENTICATION_FAILURE, auth_at);
                return;
            }
        }
        let Ok(p) = Packet::parse(bytes) else {
            self.counters.rx_malformed += 1;
            return;
        };
        if p.op == Operation::ERROR_INDICATION {
            self.on_error_indication(&p);
            return;
        }
        match p.op {
            Operation::REGISTRATION_REQUEST => self.on_registration_request(now, ti, nbma_src, &p, bytes),
            Operation::REGISTRATION_REPLY => self.on_registration_reply(now, ti, &p),
            Operation::RESOLUTION_REQUEST => self.on_resolution_request(now, ti, nbma_src, p, bytes),
            Operation::RESOLUTION_REPLY => self.on_resolution_reply(now, ti, nbma_src, p),
            Operation::PURGE_REQUEST => self.on_purge_request(ti, nbma_src, &p),
            Operation::PURGE_REPLY => self.on_purge_reply(ti, &p),
            Operation::TRAFFIC_INDICATION => self.on_traffic_indication(now, ti, &p),
            _ => {}
        }
    }

    // ---------------------------------------------------------------- NHS role

    /// §5.2.3: bind each CIE's address to the NBMA address the packet came from; answer §5.2.4.
    fn on_registration_request(&mut self, now: Time, ti: usize, seen: IpAddr, p: &Packet, bytes: &[u8]) {
        let Body::Cies { flags: req_flags, request_id, cies } = &p.body else { return };
        let Some(src_proto) = p.src_proto else {
            self.send_error(ti, seen, None, bytes, ErrorCode::PROTOCOL_ERROR, SRC_PROTO_LEN_AT);
            return;
        };
        let tunnel = self.tunnels[ti].id;
        let default_hold = self.tunnels[ti].cfg.holding_time;
        let unique = req_flags & flags::REG_UNIQUE != 0;
        let mut out = Vec::with_capacity(cies.len());
        let mut nat_cies = Vec::new();
        for c in cies {
            let client = c.proto.unwrap_or(src_proto);
            let claimed = c.nbma.or(p.src_nbma).unwrap_or(seen);
            let hold = if c.holding_time == 0 { default_hold } else { c.holding_time };
            let host = c.prefix_len == 0 || c.prefix_len >= host_len(&client);
            let code = if !host || family(&claimed) != family(&seen) {
                CieCode::ADMINISTRATIVELY_PROHIBITED
            } else if self.draining && self.cache.get(tunnel, &client).is_none_or(|e| e.nbma != seen) {
                self.counters.registrations_drained += 1;
                CieCode::INSUFFICIENT_RESOURCES
            } else {
                self.bind_registration(now, tunnel, client, seen, claimed, hold, c.mtu, unique)
            };
            if code == CieCode::SUCCESS {
                self.counters.registrations += 1;
                if claimed != seen {
                    nat_cies.push(self.cie(ti, Some(seen), Some(client), host_len(&client)));
                }
            } else {
                self.counters.registrations_refused += 1;
            }
            out.push(Cie { code, holding_time: hold, ..c.clone() });
        }
        let mut exts = self.reply_extensions(ti, p);
        if !nat_cies.is_empty() || p.extension(ExtensionType::NAT_ADDRESS).is_some() {
            exts.retain(|e| e.body.kind() != ExtensionType::NAT_ADDRESS);
            exts.push(Extension { compulsory: false, body: ExtensionBody::NatAddress(nat_cies) });
        }
        let reply = Packet {
            op: Operation::REGISTRATION_REPLY,
            hop_count: self.tunnels[ti].cfg.hop_count,
            body: Body::Cies { flags: *req_flags, request_id: *request_id, cies: out },
            extensions: exts,
            ..p.clone()
        };
        if self.too_big(ti, &reply) {
            self.sdu_exceeded(ti, seen, p, Some(bytes));
            return;
        }
        self.send(ti, seen, &reply);
    }

    #[allow(clippy::too_many_arguments)]
    fn bind_registration(
        &mut self,
        now: Time,
        tunnel: TunnelId,
        client: IpAddr,
        seen: IpAddr,
        claimed: IpAddr,
        hold: u16,
        mtu: u16,
        unique: bool,
    ) -> CieCode {
        let expires = now.plus_secs(u64::from(hold));
        let mut flags = if unique { EntryFlags::UNIQUE } else { 0 } | EntryFlags::AUTHORITATIVE;
        if claimed != seen {
            flags |= EntryFlags::NAT;
        }
        let mut created = now;
        if let Some(e) = self.cache.get_mut(tunnel, &client) {
            match e.kind {
                EntryKind::Static => return CieCode::ADMINISTRATIVELY_PROHIBITED,
                _ if e.nbma == seen => {
                    // A refresh: same binding, new expiry.
                    e.expires = expires;
                    e.claimed_nbma = claimed;
                    e.holding_time = hold;
                    e.mtu = mtu;
                    e.kind = EntryKind::Registered;
                    e.flags = EntryFlags(flags);
                    let armed = e.armed;
                    if expires < armed {
                        e.armed = expires;
                        self.timers.push(Reverse((expires, Timer::Entry(tunnel, client))));
                    }
                    return CieCode::SUCCESS;
                }
                _ if e.flags.has(EntryFlags::UNIQUE) && e.expires > now => {
                    return CieCode::UNIQUE_ADDRESS_REGISTERED;
                }
                _ => {}
            }
            created = now;
            self.remove_entry(tunnel, &client);
        }
        let e = Entry {
            nbma: seen,
            claimed_nbma: claimed,
            created,
            expires,
            armed: expires,
            holding_time: hold,
            mtu,
            prefix_len: host_len(&client),
            kind: EntryKind::Registered,
            flags: EntryFlags(flags),
        };
        self.cache.insert(tunnel, client, e);
        self.timers.push(Reverse((expires, Timer::Entry(tunnel, client))));
        self.events.push_back(Event::AdjacencyAdded { tunnel, proto: client, nbma: seen, claimed_nbma: claimed });
        CieCode::SUCCESS
    }

    /// §5.2.1: answer for ourselves, forward toward the owner, answer from static entries, forward to
    /// our NHS, or answer negatively.
    fn on_resolution_request(&mut self, now: Time, ti: usize, seen: IpAddr, p: Packet, bytes: &[u8]) {
        let (Some(dst), Some(src_proto)) = (p.dst_proto, p.src_proto) else {
            let at = if p.src_proto.is_none() { SRC_PROTO_LEN_AT } else { DST_PROTO_LEN_AT };
            self.send_error(ti, seen, p.src_proto, bytes, ErrorCode::PROTOCOL_ERROR, at);
            return;
        };
        if let Some(len) = self.is_local(ti, &dst) {
            self.answer_resolution(now, ti, seen, &p, src_proto, len);
            return;
        }
        // §5.3.2: our own address in the Forward Transit NHS Record means the request looped.
        if let Some(Extension { body: ExtensionBody::ForwardTransit(rec), .. }) =
            p.extension(ExtensionType::FORWARD_TRANSIT)
        {
            let (me_p, me_n) = (self.tunnels[ti].cfg.proto, self.tunnels[ti].cfg.nbma);
            if let Some(i) = rec.iter().position(|c| c.proto == Some(me_p) || c.nbma == Some(me_n)) {
                self.counters.loops += 1;
                // The Error Offset names the CIE that lists us.
                let ext_at = View::new_checked(bytes)
                    .ok()
                    .and_then(|v| {
                        v.extensions().flatten().find(|x| x.kind == ExtensionType::FORWARD_TRANSIT).map(|x| x.offset)
                    })
                    .unwrap_or(EXTOFF_AT);
                let at = ext_at + 4 + rec[..i].iter().map(Cie::wire_len).sum::<usize>();
                self.send_error(ti, seen, p.src_proto, bytes, ErrorCode::LOOP_DETECTED, at);
                return;
            }
        }
        let owner = self.find_owner(ti, &dst);
        match owner {
            Some((_, _, e)) if e.kind == EntryKind::Static => {
                self.answer_from_cache(ti, seen, &p, dst, &e);
            }
            Some((owner_tunnel, key, e)) if e.nbma != seen => {
                self.note_requester(now, ti, (owner_tunnel, key), &p, seen, src_proto);
                // The owner may sit on another tunnel of the same network id: forward on its tunnel.
                let out = self.tunnel_index(owner_tunnel).unwrap_or(ti);
                self.forward(ti, out, e.nbma, p, bytes, seen, Some(src_proto));
                self.counters.resolutions_forwarded += 1;
            }
            _ => {
                let nhs = self.tunnels[ti].nhs.iter().find(|n| n.state == NhsState::Up && n.config.nbma != seen);
                if let Some(nbma) = nhs.map(|n| n.config.nbma) {
                    self.forward(ti, ti, nbma, p, bytes, seen, Some(src_proto));
                    self.counters.resolutions_forwarded += 1;
                } else {
                    self.counters.resolutions_negative += 1;
                    let mut cie = self.cie(ti, None, Some(dst), host_len(&dst));
                    cie.code = CieCode::NO_BINDING;
                    cie.holding_time = 0;
                    let (req_flags, id) = p.flags_and_id().unwrap_or((0, 0));
                    let exts = self.reply_extensions(ti, &p);
                    let reply = Packet {
                        op: Operation::RESOLUTION_REPLY,
                        hop_count: self.tunnels[ti].cfg.hop_count,
                        body: Body::Cies {
                            flags: (req_flags & (flags::RES_ROUTER | flags::RES_SOURCE_STABLE | flags::NAT))
                                | flags::RES_AUTHORITATIVE,
                            request_id: id,
                            cies: vec![cie],
                        },
                        extensions: exts,
                        ..p.clone()
                    };
                    if self.too_big(ti, &reply) {
                        self.sdu_exceeded(ti, seen, &p, Some(bytes));
                        return;
                    }
                    self.send(ti, seen, &reply);
                }
            }
        }
    }

    /// The entry owning `dst`: its own registration or static map, or the registered next hop of the
    /// route toward it; searched in every tunnel of the same network id.
    fn find_owner(&self, ti: usize, dst: &IpAddr) -> Option<(TunnelId, IpAddr, Entry)> {
        let net = self.tunnels[ti].cfg.network_id;
        for t in self.tunnels.iter().filter(|t| t.cfg.network_id == net) {
            if let Some(e) = self.cache.get(t.id, dst).filter(|e| e.kind != EntryKind::Resolved) {
                return Some((t.id, *dst, e.clone()));
            }
            for &len in &self.route_lens {
                if let Some(nh) = self.routes.get(&(t.id, mask(*dst, len), len)) {
                    if let Some(e) = self.cache.get(t.id, nh).filter(|e| e.kind != EntryKind::Resolved) {
                        return Some((t.id, *nh, e.clone()));
                    }
                    break;
                }
            }
        }
        None
    }

    /// Remembers that `requester` resolved, through us, a destination the registered entry `owner` owns,
    /// so that a change of that entry purges the requester's copy (§5.2.5).
    fn note_requester(
        &mut self,
        now: Time,
        ti: usize,
        owner: (TunnelId, IpAddr),
        p: &Packet,
        seen: IpAddr,
        requester: IpAddr,
    ) {
        let tunnel = self.tunnels[ti].id;
        // Relayed by another NHS (§5.3.2): its NAT extension or the requester's claim says where the
        // requester is; otherwise it is where the request came from.
        let relayed = matches!(
            p.extension(ExtensionType::FORWARD_TRANSIT),
            Some(Extension { body: ExtensionBody::ForwardTransit(rec), .. }) if !rec.is_empty()
        );
        let nbma = match self.cache.get(tunnel, &requester) {
            Some(e) if e.kind == EntryKind::Registered => e.nbma,
            _ if relayed => nat_address(p, &requester).or(p.src_nbma).unwrap_or(seen),
            _ => seen,
        };
        let hold = p.cies().first().map_or(0, |c| c.holding_time);
        let hold = if hold == 0 { self.tunnels[ti].cfg.holding_time } else { hold };
        let until = now.plus_secs(u64::from(hold));
        let list = self.requesters.entry(owner).or_default();
        list.retain(|r| r.until > now && !(r.tunnel == tunnel && r.proto == requester));
        if list.len() >= MAX_REQUESTERS {
            if let Some(i) = list.iter().enumerate().min_by_key(|(_, r)| r.until).map(|(i, _)| i) {
                list.swap_remove(i);
            }
        }
        list.push(Requester { tunnel, proto: requester, nbma, until });
    }

    /// Relays a request or reply one hop on (§5.2.1, §5.2.2): hop count, transit record, NAT address.
    /// `ti` is the tunnel the packet came in on (errors go back on it, the requester is registered on
    /// it), `out` the one it leaves on.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        ti: usize,
        out: usize,
        to: IpAddr,
        mut p: Packet,
        bytes: &[u8],
        seen: IpAddr,
        requester: Option<IpAddr>,
    ) {
        if p.hop_count <= 1 {
            self.counters.hop_count_exceeded += 1;
            self.send_error(ti, seen, p.src_proto, bytes, ErrorCode::HOP_COUNT_EXCEEDED, HOPCNT_AT);
            return;
        }
        p.hop_count -= 1;
        let me = self.cie(out, Some(self.tunnels[out].cfg.nbma), Some(self.tunnels[out].cfg.proto), 0xff);
        let record = if p.op == Operation::RESOLUTION_REQUEST {
            ExtensionType::FORWARD_TRANSIT
        } else {
            ExtensionType::REVERSE_TRANSIT
        };
        let tunnel = self.tunnels[ti].id;
        // Tell the next hop where the requester really is when we saw it behind NAT.
        let nat = requester.and_then(|r| {
            self.cache
                .get(tunnel, &r)
                .filter(|e| e.flags.has(EntryFlags::NAT))
                .map(|e| self.cie(ti, Some(e.nbma), Some(r), host_len(&r)))
        });
        for e in &mut p.extensions {
            match &mut e.body {
                ExtensionBody::ForwardTransit(c) if record == ExtensionType::FORWARD_TRANSIT => c.push(me.clone()),
                ExtensionBody::ReverseTransit(c) if record == ExtensionType::REVERSE_TRANSIT => c.push(me.clone()),
                ExtensionBody::NatAddress(c) => {
                    if let Some(n) = &nat {
                        if !c.iter().any(|x| x.proto == n.proto) {
                            c.push(n.clone());
                        }
                    }
                }
                ExtensionBody::Authentication { data, .. } => {
                    if let Some(a) = &self.tunnels[out].cfg.auth {
                        data.clone_from(a);
                    }
                }
                _ => {}
            }
        }
        // §5.3.4: the next hop checks the outgoing tunnel's secret.
        if let Some(a) = &self.tunnels[out].cfg.auth {
            if p.extension(ExtensionType::AUTHENTICATION).is_none() {
                let body = ExtensionBody::Authentication { kind: AUTH_PLAINTEXT, data: a.clone() };
                p.extensions.push(Extension { compulsory: true, body });
            }
        }
        if self.too_big(out, &p) {
            self.sdu_exceeded(ti, seen, &p, Some(bytes));
            return;
        }
        self.send(out, to, &p);
    }

    fn answer_from_cache(&mut self, ti: usize, seen: IpAddr, p: &Packet, dst: IpAddr, e: &Entry) {
        self.counters.resolutions_answered += 1;
        let (req_flags, id) = p.flags_and_id().unwrap_or((0, 0));
        let mut cie = self.cie(ti, Some(e.nbma), Some(dst), e.prefix_len);
        cie.holding_time = self.tunnels[ti].cfg.holding_time;
        let exts = self.reply_extensions(ti, p);
        let reply = Packet {
            op: Operation::RESOLUTION_REPLY,
            hop_count: self.tunnels[ti].cfg.hop_count,
            body: Body::Cies {
                flags: req_flags & (flags::RES_ROUTER | flags::RES_SOURCE_STABLE | flags::NAT),
                request_id: id,
                cies: vec![cie],
            },
            extensions: exts,
            ..p.clone()
        };
        if self.too_big(ti, &reply) {
            self.sdu_exceeded(ti, seen, p, None);
            return;
        }
        self.send(ti, seen, &reply);
    }

    // ---------------------------------------------------------------- NHC role

    /// §5.2.2 at the destination: we own `dst`. Bind the requester (so the return path works without
    /// its own resolution) and answer it directly at its NBMA address.
    fn answer_resolution(&mut self, now: Time, ti: usize, seen: IpAddr, p: &Packet, requester: IpAddr, len: u8) {
        self.counters.resolutions_answered += 1;
        let tunnel = self.tunnels[ti].id;
        let (req_flags, id) = p.flags_and_id().unwrap_or((0, 0));
        let claimed = p.src_nbma.unwrap_or(seen);
        let nat = nat_address(p, &requester);
        // Directly from the requester: what we saw is its address; relayed: its NHS told us (NAT
        // extension) or its claim stands.
        let relayed = self.tunnels[ti].nhs.iter().any(|n| n.config.nbma == seen);
        let nbma = nat.unwrap_or(if relayed { claimed } else { seen });
        let hold = p.cies().first().map_or(self.tunnels[ti].cfg.holding_time, |c| c.holding_time);
        if requester != self.tunnels[ti].cfg.proto && family(&nbma) == self.tunnels[ti].nbma_family {
            self.bind_resolved(now, tunnel, requester, host_len(&requester), nbma, claimed, hold.max(1), None);
        }
        let dst = p.dst_proto.unwrap_or(requester);
        let mut cie = self.cie(ti, Some(self.tunnels[ti].cfg.nbma), Some(self.tunnels[ti].cfg.proto), len);
        if len < host_len(&dst) {
            cie.proto = Some(self.tunnels[ti].cfg.proto);
        }
        let mut exts = self.reply_extensions(ti, p);
        if let Some(mine) = self.my_nat_address(ti) {
            exts.retain(|e| e.body.kind() != ExtensionType::NAT_ADDRESS);
            let c = self.cie(ti, Some(mine), Some(self.tunnels[ti].cfg.proto), len);
            exts.push(Extension { compulsory: false, body: ExtensionBody::NatAddress(vec![c]) });
        }
        let reply = Packet {
            op: Operation::RESOLUTION_REPLY,
            hop_count: self.tunnels[ti].cfg.hop_count,
            body: Body::Cies {
                flags: (req_flags & (flags::RES_ROUTER | flags::RES_SOURCE_STABLE | flags::NAT))
                    | flags::RES_AUTHORITATIVE
                    | flags::RES_DEST_STABLE,
                request_id: id,
                cies: vec![cie],
            },
            extensions: exts,
            ..p.clone()
        };
        if self.too_big(ti, &reply) {
            self.sdu_exceeded(ti, seen, p, None);
            return;
        }
        self.send(ti, nbma, &reply);
    }

    /// A Resolution Reply: ours (bind the shortcut) or one to relay toward its requester.
    fn on_resolution_reply(&mut self, now: Time, ti: usize, seen: IpAddr, p: Packet) {
        let Some(src_proto) = p.src_proto else { return };
        let tunnel = self.tunnels[ti].id;
        if src_proto != self.tunnels[ti].cfg.proto {
            // §5.2.2: an NHS relays the reply toward the requester.
            let to = self.cache.get(tunnel, &src_proto).map(|e| e.nbma);
            match to {
                Some(to) if to != seen => {
                    let bytes = p.to_vec().unwrap_or_default();
                    self.forward(ti, ti, to, p, &bytes, seen, None);
                }
                _ => self.counters.unsolicited += 1,
            }
            return;
        }
        let Some((_, id)) = p.flags_and_id() else { return };
        let Some(pending) = self.pending.remove(&id) else {
            self.counters.unsolicited += 1;
            return;
        };
        if pending.tunnel != tunnel {
            self.counters.unsolicited += 1;
            return;
        }
        for c in p.cies() {
            if c.code != CieCode::SUCCESS {
                continue;
            }
            let Some(peer) = c.proto.or(p.dst_proto) else { continue };
            let claimed = c.nbma.unwrap_or(seen);
            let nbma = nat_address(&p, &peer).unwrap_or(claimed);
            if family(&nbma) != self.tunnels[ti].nbma_family || family(&peer) != self.tunnels[ti].proto_family {
                continue;
            }
            let hold = c.holding_time.max(1);
            let len = if c.prefix_len == 0 || c.prefix_len > host_len(&peer) { host_len(&peer) } else { c.prefix_len };
            self.bind_resolved(now, tunnel, peer, host_len(&peer), nbma, claimed, hold, None);
            let net = mask(pending.dst, len);
            if net != peer {
                self.bind_resolved(now, tunnel, net, len, nbma, claimed, hold, Some(peer));
            }
        }
    }

    /// Binds a resolved peer (`next_hop == None`) or a shortcut network via `next_hop`.
    #[allow(clippy::too_many_arguments)]
    fn bind_resolved(
        &mut self,
        now: Time,
        tunnel: TunnelId,
        key: IpAddr,
        prefix_len: u8,
        nbma: IpAddr,
        claimed: IpAddr,
        hold: u16,
        next_hop: Option<IpAddr>,
    ) {
        let expires = now.plus_secs(u64::from(hold));
        let nat = if nbma != claimed { EntryFlags::NAT } else { 0 };
        if let Some(e) = self.cache.get_mut(tunnel, &key) {
            if e.kind != EntryKind::Resolved {
                return; // a registration or static map is better information
            }
            if e.nbma == nbma && e.prefix_len == prefix_len {
                e.expires = expires;
                e.holding_time = hold;
                e.flags.0 = (e.flags.0 & !(EntryFlags::REFRESHING | EntryFlags::NAT)) | nat;
                let lead = refresh_lead(hold);
                let at = Time(expires.0.saturating_sub(lead * 1000));
                if at < e.armed {
                    e.armed = at;
                    self.timers.push(Reverse((at, Timer::Entry(tunnel, key))));
                }
                return;
            }
            self.remove_entry(tunnel, &key);
        }
        let at = Time(expires.0.saturating_sub(refresh_lead(hold) * 1000));
        let e = Entry {
            nbma,
            claimed_nbma: claimed,
            created: now,
            expires,
            armed: at,
            holding_time: hold,
            mtu: 0,
            prefix_len,
            kind: EntryKind::Resolved,
            flags: EntryFlags(EntryFlags::ROUTER | EntryFlags::AUTHORITATIVE | nat),
        };
        self.cache.insert(tunnel, key, e);
        self.timers.push(Reverse((at, Timer::Entry(tunnel, key))));
        self.events.push_back(match next_hop {
            None => Event::AdjacencyAdded { tunnel, proto: key, nbma, claimed_nbma: claimed },
            Some(next_hop) => Event::ShortcutAdded { tunnel, prefix: key, prefix_len, next_hop, nbma },
        });
    }

    /// §5.2.4 at the NHC.
    fn on_registration_reply(&mut self, now: Time, ti: usize, p: &Packet) {
        let Some((_, id)) = p.flags_and_id() else { return };
        let me = self.tunnels[ti].cfg.proto;
        let Some(i) = self.tunnels[ti]
            .nhs
            .iter()
            .position(|n| n.request_id == id && Some(n.config.proto) == p.dst_proto && p.src_proto == Some(me))
        else {
            self.counters.unsolicited += 1;
            return;
        };
        let ok = !p.cies().is_empty() && p.cies().iter().all(|c| c.code == CieCode::SUCCESS);
        let nat = nat_address(p, &me);
        let tunnel = self.tunnels[ti].id;
        let interval = self.tunnels[ti].interval_secs;
        let n = &mut self.tunnels[ti].nhs[i];
        n.outstanding = false;
        n.tries = 0;
        n.next = now.plus_secs(interval);
        let was = n.state;
        if ok {
            n.replies += 1;
            n.last_reply = Some(now);
            n.nat_nbma = nat;
            n.state = NhsState::Up;
        } else {
            n.failures += 1;
            n.state = NhsState::Down;
        }
        let (state, nhs, next) = (n.state, n.config.proto, n.next);
        self.timers.push(Reverse((next, Timer::Nhs(tunnel, i as u16))));
        if state != was {
            self.events.push_back(if ok { Event::NhsUp { tunnel, nhs } } else { Event::NhsDown { tunnel, nhs } });
            self.rebalance(now, tunnel);
        }
    }

    /// Cisco: a Traffic Indication asks us to resolve the destination of the quoted packet.
    fn on_traffic_indication(&mut self, now: Time, ti: usize, p: &Packet) {
        if !self.tunnels[ti].cfg.shortcut {
            return;
        }
        let Body::Traffic { packet, .. } = &p.body else { return };
        let Some((_, dst)) = ip_src_dst(packet) else {
            self.counters.rx_malformed += 1;
            return;
        };
        let tunnel = self.tunnels[ti].id;
        self.resolve(now, tunnel, dst);
    }

    /// §5.2.5: remove what the CIEs name; answer unless the N bit is set (§5.2.6).
    fn on_purge_request(&mut self, ti: usize, seen: IpAddr, p: &Packet) {
        let Body::Cies { flags: f, request_id, cies } = &p.body else { return };
        let tunnel = self.tunnels[ti].id;
        for c in cies {
            let Some(a) = c.proto.or(p.src_proto) else { continue };
            let len = if c.prefix_len == 0 || c.prefix_len > host_len(&a) { host_len(&a) } else { c.prefix_len };
            let key = mask(a, len);
            if !self.cache.get(tunnel, &key).is_some_and(|e| e.kind != EntryKind::Static) {
                continue;
            }
            self.remove_with_shortcuts(tunnel, &key);
            self.events.push_back(Event::Purged { tunnel, proto: key, prefix_len: len });
        }
        if f & flags::PURGE_NO_REPLY == 0 {
            let reply = Packet {
                op: Operation::PURGE_REPLY,
                hop_count: self.tunnels[ti].cfg.hop_count,
                body: Body::Cies { flags: *f, request_id: *request_id, cies: cies.clone() },
                extensions: self.reply_extensions(ti, p),
                ..p.clone()
            };
            if self.too_big(ti, &reply) {
                self.sdu_exceeded(ti, seen, p, None);
                return;
            }
            self.send(ti, seen, &reply);
        }
    }

    /// §5.2.6: the Purge Reply to one of our Purge Requests ends its retransmission.
    fn on_purge_reply(&mut self, ti: usize, p: &Packet) {
        let Some((_, id)) = p.flags_and_id() else { return };
        let t = &self.tunnels[ti];
        let ours = p.src_proto == Some(t.cfg.proto) && self.purges.get(&id).is_some_and(|q| q.tunnel == t.id);
        if ours {
            self.purges.remove(&id);
        } else {
            self.counters.unsolicited += 1;
        }
    }

    /// An Error Indication about a registration of ours counts as that NHS's failure.
    fn on_error_indication(&mut self, p: &Packet) {
        let Body::Error { packet, .. } = &p.body else { return };
        let Ok(orig) = Packet::parse(packet) else { return };
        let Some((_, id)) = orig.flags_and_id() else { return };
        for t in &mut self.tunnels {
            for n in &mut t.nhs {
                if n.request_id == id && orig.op == Operation::REGISTRATION_REQUEST {
                    n.failures += 1;
                }
            }
        }
        if orig.op == Operation::RESOLUTION_REQUEST {
            self.pending.remove(&id);
        }
    }

    // ---------------------------------------------------------------- timers

    fn entry_timer(&mut self, now: Time, t: Time, tunnel: TunnelId, key: IpAddr) {
        let Some(e) = self.cache.get_mut(tunnel, &key) else { return };
        if e.armed != t {
            return; // superseded
        }
        if now >= e.expires {
            self.counters.expired += 1;
            self.remove_entry(tunnel, &key);
            return;
        }
        if e.kind == EntryKind::Resolved && !e.flags.has(EntryFlags::REFRESHING) {
            let used = e.flags.has(EntryFlags::USED);
            e.flags.0 &= !EntryFlags::USED;
            if used {
                e.flags.0 |= EntryFlags::REFRESHING;
            }
            e.armed = e.expires;
            let at = e.expires;
            self.timers.push(Reverse((at, Timer::Entry(tunnel, key))));
            if used {
                let id = self.request_id();
                self.pending.insert(id, Pending { tunnel, dst: key, tries: 0 });
                self.send_resolution(now, id);
            }
            return;
        }
        e.armed = e.expires;
        let at = e.expires;
        self.timers.push(Reverse((at, Timer::Entry(tunnel, key))));
    }

    fn nhs_timer(&mut self, now: Time, t: Time, tunnel: TunnelId, i: usize) {
        let Some(ti) = self.tunnel_index(tunnel) else { return };
        let Some(n) = self.tunnels[ti].nhs.get_mut(i) else { return };
        if n.next != t || n.state == NhsState::Idle {
            return;
        }
        if n.outstanding {
            n.tries += 1;
            n.failures += 1;
            if n.tries >= NHS_DOWN_AFTER && n.state != NhsState::Down {
                n.state = NhsState::Down;
                let nhs = n.config.proto;
                self.events.push_back(Event::NhsDown { tunnel, nhs });
                self.rebalance(now, tunnel);
            }
        }
        self.send_registration(now, ti, i);
    }

    fn resolution_timer(&mut self, now: Time, id: u32) {
        let Some(p) = self.pending.get_mut(&id) else { return };
        p.tries += 1;
        if p.tries >= RESOLUTION_TRIES {
            self.pending.remove(&id);
            return;
        }
        self.send_resolution(now, id);
    }

    fn purge_timer(&mut self, now: Time, id: u32) {
        let Some(q) = self.purges.get_mut(&id) else { return };
        q.tries += 1;
        if q.tries >= PURGE_TRIES {
            self.purges.remove(&id);
            return;
        }
        let delay = RETRY_BASE_MS << q.tries.min(16);
        let t = Transmit { tunnel: q.tunnel, nbma: q.to, bytes: q.bytes.clone() };
        self.timers.push(Reverse((now.plus_millis(delay), Timer::Purge(id))));
        self.counters.tx[op_index(Operation::PURGE_REQUEST)] += 1;
        self.transmits.push_back(t);
    }

    fn arm_gc(&mut self, now: Time) {
        if !self.gc_armed {
            self.gc_armed = true;
            self.timers.push(Reverse((now.plus_secs(REDIRECT_HOLD_SECS), Timer::RedirectGc)));
        }
    }

    // ---------------------------------------------------------------- sending

    fn send_registration(&mut self, now: Time, ti: usize, i: usize) {
        let t = &self.tunnels[ti];
        let Some(n) = t.nhs.get(i) else { return };
        let f = if t.cfg.unique { flags::REG_UNIQUE } else { 0 } | flags::NAT;
        let mut cie = self.cie(ti, None, None, 0xff);
        cie.holding_time = t.cfg.holding_time;
        let p = Packet {
            dst_proto: Some(n.config.proto),
            ..self.packet(
                ti,
                Operation::REGISTRATION_REQUEST,
                Some(n.config.proto),
                Body::Cies { flags: f, request_id: n.request_id, cies: vec![cie] },
                self.request_extensions(ti),
            )
        };
        let (to, tries, interval) = (n.config.nbma, n.tries, t.interval_secs);
        let delay = (RETRY_BASE_MS << tries.min(16)).min(interval * 1000);
        let tunnel = t.id;
        let n = &mut self.tunnels[ti].nhs[i];
        n.requests += 1;
        n.outstanding = true;
        n.next = now.plus_millis(delay);
        self.timers.push(Reverse((n.next, Timer::Nhs(tunnel, i as u16))));
        self.send(ti, to, &p);
    }

    fn send_resolution(&mut self, now: Time, id: u32) {
        let Some(pd) = self.pending.get(&id) else { return };
        let (tunnel, dst, tries) = (pd.tunnel, pd.dst, pd.tries);
        let Some(ti) = self.tunnel_index(tunnel) else { return };
        let t = &self.tunnels[ti];
        let Some(to) =
            t.nhs.iter().filter(|n| n.state == NhsState::Up).min_by_key(|n| n.config.priority).map(|n| n.config.nbma)
        else {
            self.pending.remove(&id);
            return;
        };
        let mut cie = self.cie(ti, None, None, host_len(&dst));
        cie.holding_time = t.cfg.holding_time;
        let p = self.packet(
            ti,
            Operation::RESOLUTION_REQUEST,
            Some(dst),
            Body::Cies {
                flags: flags::RES_ROUTER | flags::RES_SOURCE_STABLE | flags::NAT,
                request_id: id,
                cies: vec![cie],
            },
            self.request_extensions(ti),
        );
        self.timers.push(Reverse((now.plus_millis(RETRY_BASE_MS << tries.min(16)), Timer::Resolution(id))));
        self.send(ti, to, &p);
    }

    /// Sends a Purge Request for `cie` to `dst` (protocol) at `to` (NBMA) and keeps it for
    /// retransmission until its Purge Reply comes.
    fn send_purge(&mut self, now: Time, ti: usize, dst: IpAddr, to: IpAddr, cie: Cie) {
        let id = self.request_id();
        let body = Body::Cies { flags: 0, request_id: id, cies: vec![cie] };
        let p = self.packet(ti, Operation::PURGE_REQUEST, Some(dst), body, self.request_extensions(ti));
        let Ok(bytes) = p.to_vec() else { return };
        let tunnel = self.tunnels[ti].id;
        self.purges.insert(id, PendingPurge { tunnel, to, bytes: bytes.clone(), tries: 0 });
        self.timers.push(Reverse((now.plus_millis(RETRY_BASE_MS), Timer::Purge(id))));
        self.counters.tx[op_index(Operation::PURGE_REQUEST)] += 1;
        self.transmits.push_back(Transmit { tunnel, nbma: to, bytes });
    }

    /// §5.2.7: an Error Indication back to `to` on tunnel `ti`, where the packet in error (`bytes`)
    /// came from. Its Error Offset `at` names the offending octet of that packet, counted from its
    /// fixed header; the packet is quoted whole, even where that takes the indication over the tunnel
    /// MTU (Wireshark calls a trimmed quote malformed; the GRE layer fragments). No extensions follow
    /// the quote: §5.2.7 has none, and Wireshark flags any. Hop count: the tunnel's (Cisco rejects 0).
    fn send_error(
        &mut self,
        ti: usize,
        to: IpAddr,
        src_proto: Option<IpAddr>,
        bytes: &[u8],
        code: ErrorCode,
        at: usize,
    ) {
        let Ok(v) = View::new_checked(bytes) else { return };
        // §5.2.7: never answer an Error Indication with one.
        if v.operation() == Operation::ERROR_INDICATION {
            return;
        }
        self.counters.errors_sent += 1;
        let offset = u16::try_from(at).unwrap_or(u16::MAX);
        let body = Body::Error { code, offset, packet: v.packet().to_vec() };
        let e = self.packet(ti, Operation::ERROR_INDICATION, src_proto, body, vec![]);
        self.send(ti, to, &e);
    }

    /// Whether `p` would exceed the MTU of tunnel `out` (§5.2.7, "NHRP SDU Size Exceeded").
    fn too_big(&self, out: usize, p: &Packet) -> bool {
        let mtu = usize::from(self.tunnels[out].cfg.mtu);
        mtu != 0 && p.buffer_len().map_or(true, |n| n > mtu)
    }

    /// The reply to `req` (or `req` relayed) would not fit the tunnel: Error Indication 8 to `seen`,
    /// its offset at `ar$pktsz`.
    fn sdu_exceeded(&mut self, ti: usize, seen: IpAddr, req: &Packet, bytes: Option<&[u8]>) {
        self.counters.sdu_size_exceeded += 1;
        let owned;
        let bytes = match bytes {
            Some(b) => b,
            None => {
                owned = req.to_vec().unwrap_or_default();
                &owned
            }
        };
        self.send_error(ti, seen, req.src_proto, bytes, ErrorCode::SDU_SIZE_EXCEEDED, PKTSZ_AT);
    }

    fn send(&mut self, ti: usize, to: IpAddr, p: &Packet) {
        if let Ok(bytes) = p.to_vec() {
            self.counters.tx[op_index(p.op)] += 1;
            self.transmits.push_back(Transmit { tunnel: self.tunnels[ti].id, nbma: to, bytes });
        }
    }

    // ---------------------------------------------------------------- helpers

    fn packet(&self, ti: usize, op: Operation, dst: Option<IpAddr>, body: Body, extensions: Vec<Extension>) -> Packet {
        let t = &self.tunnels[ti];
        Packet {
            nbma_family: t.nbma_family,
            proto_family: t.proto_family,
            hop_count: t.cfg.hop_count,
            op,
            src_nbma: Some(t.cfg.nbma),
            src_proto: Some(t.cfg.proto),
            dst_proto: dst,
            body,
            extensions,
        }
    }

    fn cie(&self, ti: usize, nbma: Option<IpAddr>, proto: Option<IpAddr>, prefix_len: u8) -> Cie {
        let t = &self.tunnels[ti];
        Cie {
            code: CieCode::SUCCESS,
            prefix_len,
            mtu: t.cfg.mtu,
            holding_time: t.cfg.holding_time,
            preference: 0,
            nbma,
            proto,
        }
    }

    /// What Cisco puts in requests: empty responder and transit records, authentication, NAT.
    fn request_extensions(&self, ti: usize) -> Vec<Extension> {
        let mut v = vec![
            Extension { compulsory: true, body: ExtensionBody::ResponderAddress(vec![]) },
            Extension { compulsory: true, body: ExtensionBody::ForwardTransit(vec![]) },
            Extension { compulsory: true, body: ExtensionBody::ReverseTransit(vec![]) },
        ];
        if let Some(a) = &self.tunnels[ti].cfg.auth {
            v.push(Extension {
                compulsory: true,
                body: ExtensionBody::Authentication { kind: AUTH_PLAINTEXT, data: a.clone() },
            });
        }
        v.push(Extension { compulsory: false, body: ExtensionBody::NatAddress(vec![]) });
        v
    }

    /// §5.3: a reply carries the request's extensions, with our responder address and our secret.
    fn reply_extensions(&self, ti: usize, req: &Packet) -> Vec<Extension> {
        let t = &self.tunnels[ti];
        let me = self.cie(ti, Some(t.cfg.nbma), Some(t.cfg.proto), host_len(&t.cfg.proto));
        let mut v: Vec<Extension> = req
            .extensions
            .iter()
            .filter(|e| !matches!(e.body, ExtensionBody::Unknown { .. } | ExtensionBody::VendorPrivate { .. }))
            .cloned()
            .collect();
        for e in &mut v {
            match &mut e.body {
                ExtensionBody::ResponderAddress(c) => *c = vec![me.clone()],
                ExtensionBody::Authentication { data, .. } => {
                    if let Some(a) = &t.cfg.auth {
                        data.clone_from(a);
                    }
                }
                _ => {}
            }
        }
        v
    }

    fn my_nat_address(&self, ti: usize) -> Option<IpAddr> {
        let t = &self.tunnels[ti];
        t.nhs.iter().filter_map(|n| n.nat_nbma).find(|a| *a != t.cfg.nbma)
    }

    /// The prefix length if `addr` is our tunnel address or in one of our local networks.
    fn is_local(&self, ti: usize, addr: &IpAddr) -> Option<u8> {
        let t = &self.tunnels[ti];
        if *addr == t.cfg.proto {
            return Some(host_len(addr));
        }
        t.cfg
            .local_networks
            .iter()
            .filter(|(p, l)| family(p) == family(addr) && mask(*addr, *l) == mask(*p, *l))
            .map(|(_, l)| *l)
            .max()
    }

    /// Removes an entry; a resolved peer (a host entry) takes the shortcuts routed through its NBMA
    /// address along (Cisco purges the shortcut routes of a next hop with it).
    fn remove_with_shortcuts(&mut self, tunnel: TunnelId, key: &IpAddr) {
        let Some(e) = self.cache.get(tunnel, key) else { return };
        let via: Vec<IpAddr> = if e.kind == EntryKind::Resolved && e.prefix_len == host_len(key) {
            let nbma = e.nbma;
            self.cache
                .iter(tunnel)
                .filter(|(k, x)| x.kind == EntryKind::Resolved && x.nbma == nbma && x.prefix_len < host_len(k))
                .map(|(k, _)| k)
                .collect()
        } else {
            Vec::new()
        };
        self.remove_entry(tunnel, key);
        for k in via {
            self.remove_entry(tunnel, &k);
        }
    }

    /// Removes an entry and tells the daemon; §5.2.5: everyone who resolved through us a destination
    /// the entry owned (and whose copy has not expired) gets a Purge Request for it.
    fn remove_entry(&mut self, tunnel: TunnelId, key: &IpAddr) {
        let Some(e) = self.cache.remove(tunnel, key) else { return };
        self.events.push_back(if e.prefix_len < host_len(key) {
            Event::ShortcutRemoved { tunnel, prefix: *key, prefix_len: e.prefix_len }
        } else {
            Event::AdjacencyRemoved { tunnel, proto: *key, nbma: e.nbma }
        });
        let Some(reqs) = self.requesters.remove(&(tunnel, *key)) else { return };
        let now = self.latest;
        let cie = Cie {
            code: CieCode::SUCCESS,
            prefix_len: e.prefix_len,
            mtu: 0,
            holding_time: 0,
            preference: 0,
            nbma: Some(e.nbma),
            proto: Some(*key),
        };
        for r in reqs.into_iter().filter(|r| r.until > now) {
            if let Some(ti) = self.tunnel_index(r.tunnel) {
                self.send_purge(now, ti, r.proto, r.nbma, cie.clone());
            }
        }
    }

    /// Per cluster, keep the best `max_connections` NHSs that are not down in use; down ones keep
    /// being probed.
    fn rebalance(&mut self, now: Time, tunnel: TunnelId) {
        let Some(ti) = self.tunnel_index(tunnel) else { return };
        let t = &mut self.tunnels[ti];
        let mut order: Vec<usize> = (0..t.nhs.len()).collect();
        order.sort_by_key(|&i| (t.nhs[i].config.priority, i));
        let mut used: Vec<(u8, u8)> = Vec::new();
        let mut start = Vec::new();
        for i in order {
            let cluster = t.nhs[i].config.cluster;
            let max = t.cfg.max_connections.iter().find(|(c, _)| *c == cluster).map_or(u8::MAX, |(_, m)| *m);
            let n = match used.iter_mut().find(|(c, _)| *c == cluster) {
                Some((_, n)) => n,
                None => {
                    used.push((cluster, 0));
                    &mut used.last_mut().expect("just pushed").1
                }
            };
            let nhs = &mut t.nhs[i];
            match nhs.state {
                NhsState::Down => {}
                _ if *n < max => {
                    *n += 1;
                    if nhs.state == NhsState::Idle {
                        nhs.state = NhsState::Probing;
                        nhs.tries = 0;
                        nhs.outstanding = false;
                        start.push(i);
                    }
                }
                _ => nhs.state = NhsState::Idle,
            }
        }
        for i in start {
            self.send_registration(now, ti, i);
        }
    }

    fn tunnel_index(&self, id: TunnelId) -> Option<usize> {
        self.tunnels.iter().position(|t| t.id == id)
    }

    fn tunnel(&self, id: TunnelId) -> Option<&Tunnel> {
        self.tunnels.iter().find(|t| t.id == id)
    }

    fn request_id(&mut self) -> u32 {
        self.next_request_id = self.next_request_id.wrapping_add(1).max(1);
        self.next_request_id
    }
}

/// Seconds before expiry at which a used shortcut is refreshed.
fn refresh_lead(hold: u16) -> u64 {
    REFRESH_LEAD_SECS.min(u64::from(hold) / 2)
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Extension types the engine understands (§5.3; 9 is Cisco's NAT address extension).
const KNOWN_EXTENSIONS: [ExtensionType; 6] = [
    ExtensionType::RESPONDER_ADDRESS,
    ExtensionType::FORWARD_TRANSIT,
    ExtensionType::REVERSE_TRANSIT,
    ExtensionType::AUTHENTICATION,
    ExtensionType::VENDOR_PRIVATE,
    ExtensionType::NAT_ADDRESS,
];

/// An address from its bytes (4 or 16), `None` for any other length.
fn addr_of(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::from(a));
    }
    <[u8; 16]>::try_from(b).ok().map(IpAddr::from)
}

/// The NBMA address a NAT address extension gives for `proto`.
fn nat_address(p: &Packet, proto: &IpAddr) -> Option<IpAddr> {
    p.extensions.iter().find_map(|e| match &e.body {
        ExtensionBody::NatAddress(c) => c.iter().find(|c| c.proto.as_ref() == Some(proto)).and_then(|c| c.nbma),
        _ => None,
    })
}

/// Source and destination of an IPv4 or IPv6 packet's header.
fn ip_src_dst(b: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match b.first()? >> 4 {
        4 => {
            let s: [u8; 4] = b.get(12..16)?.try_into().ok()?;
            let d: [u8; 4] = b.get(16..20)?.try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d)))
        }
        6 => {
            let s: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            let d: [u8; 16] = b.get(24..40)?.try_into().ok()?;
            Some((IpAddr::from(s), IpAddr::from(d)))
        }
        _ => None,
    }
}
