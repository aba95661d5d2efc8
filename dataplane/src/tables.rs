//! The forwarding state the workers read — ports, tunnels, per-VRF FIBs, next hops, the TEIB and the
//! neighbour (ARP/ND) table — and the control-side publisher that changes it.
//!
//! Layer: forwarding tables. Contract:
//! - Workers hold a [`TablesReader`] and call [`TablesReader::load`] once per burst; the [`Tables`] it
//!   returns is one consistent snapshot (RCU over `arc-swap`): every lookup of the burst sees the same
//!   version, and a route always arrives together with the next hop, tunnel and TEIB entry published
//!   with it. Lookups on [`Tables`] allocate nothing, take no lock and return `Option`.
//! - The control plane owns the one [`TablesPublisher`]. Each change method validates first and either
//!   applies the whole change to the staged copy or refuses it with a [`TablesError`] naming the field and
//!   value, changing nothing. [`TablesPublisher::publish`] makes everything staged visible at once.
//! - Publication cost is proportional to what changed: every table sits behind its own `Arc` (the FIBs
//!   and the hash tables in copy-on-write chunks or shards, see [`crate::fib`] and [`crate::teib`]);
//!   publishing clones pointers, and a change copies only the chunks it writes.
//! - Publishing resolves each TEIB entry's outer path into a [`Rewrite`] (port, Ethernet header, outer
//!   IPv4 header): the new and changed entries, or every entry when a port, a tunnel, a neighbour or a
//!   route of a front-door VRF changed (about 10 ms at 100,000 peers; only the shards whose rewrites
//!   changed are copied).
//! - Publishing also copies into each `Tunnel { peer: Some(..) }` next hop the TEIB entry of its peer
//!   ([`Tables::next_hop_adjacency`], VPP's midchain adjacency), so that a route leads to its outer path
//!   with no hash lookup and a worker can prefetch it from the FIB's answer: for the next hops added and
//!   those of the TEIB entries set, removed or given another rewrite.
//!
//! Connected and local routes are derived as IOS derives them: an address `A/len` on a port installs
//! `A/32` (or `/128`) → [`NextHop::Local`] and `network(A)/len` → `Port { gateway: None }` (on-link: the
//! destination itself is resolved, RFC 1812 §5.2.4.3); a tunnel's overlay address installs `A/32` →
//! `Local` and the subnet → `Tunnel { peer: None }` (NHRP resolves the destination, RFC 2332 §5.1) in
//! the tunnel's overlay VRF. A `/32` (`/128`) address installs only the local route. Static routes may
//! not take a connected or local prefix (IOS's administrative distance 0 would hide them anyway).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use crate::fib::{Family, Fib4, Fib6, FibBuilder4, FibBuilder6, FibError, NextHopId, V4, V6};
use crate::ids::{PortId, TunnelId, VrfId};
use crate::sa::SaDb;
use crate::teib::{Adjacency, Chunked, FastMap, Rewrite, Sharded, Teib, TeibEntry, TUNNEL_TTL};
use crate::wire::ethernet::{self, Address, EtherType, VlanTag};
use crate::wire::{ipv4, IpProtocol};

/// A port of the box and its layer-3 configuration (`interface GigabitEthernet…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub id: PortId,
    pub name: String,
    pub mac: [u8; 6],
    pub vrf: VrfId,
    /// Interface addresses and prefix lengths (`ip address`, `ipv6 address`).
    pub addresses: Vec<(IpAddr, u8)>,
    pub mtu: u16,
    /// 802.1Q VLAN id of a subinterface.
    pub vlan: Option<u16>,
    /// The port's NIC computes outer IPv4 header checksums on transmit (DPDK TX checksum offload, set
    /// from the device's capabilities; `false` computes them in software).
    pub tx_ipv4_csum_offload: bool,
    /// The port's NIC inserts the 802.1Q tag of [`PortConfig::vlan`] on transmit (DPDK TX VLAN offload,
    /// set from the device's capabilities; `false` writes the tag in software).
    pub tx_vlan_offload: bool,
}

/// An mGRE tunnel (`interface Tunnel…` with `tunnel mode gre multipoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    pub id: TunnelId,
    /// Local NBMA address (`tunnel source`).
    pub source: IpAddr,
    /// GRE key (`tunnel key`, RFC 2890 §2.1).
    pub key: Option<u32>,
    /// Front-door VRF of the NBMA side (`tunnel vrf`).
    pub fvrf: VrfId,
    /// Overlay VRF (`vrf forwarding` on the tunnel).
    pub vrf: VrfId,
    /// Overlay address and prefix length.
    pub address: Option<(IpAddr, u8)>,
    /// IP MTU of the tunnel (`ip mtu`).
    pub mtu: u16,
    /// `ip tcp adjust-mss`.
    pub tcp_mss: Option<u16>,
    /// ESP required (`tunnel protection ipsec profile`).
    pub protection: bool,
    /// Phase 3 `ip nhrp redirect`.
    pub redirect: bool,
}

/// Where a route sends a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Discard (null route); counted as [`crate::drop::DropReason::RouteDrop`].
    Drop,
    /// Addressed to the box.
    Local,
    /// Out of a port; `gateway: None` means on-link: resolve the destination itself.
    Port { port: PortId, gateway: Option<IpAddr> },
    /// Into an mGRE tunnel; `peer` is the overlay next hop looked up in the TEIB, `None` for the tunnel's
    /// connected subnet: the destination itself.
    Tunnel { tunnel: TunnelId, peer: Option<IpAddr> },
}

/// The FIBs of one VRF.
#[derive(Debug, Clone)]
pub struct VrfFibs {
    pub v4: Arc<Fib4>,
    pub v6: Arc<Fib6>,
}

#[derive(Debug, Clone, Default)]
struct Tunnels {
    by_id: Vec<Option<TunnelConfig>>,
    /// (local NBMA address, GRE key) → tunnel.
    rx: FastMap<(IpAddr, Option<u32>), TunnelId>,
}

/// One consistent snapshot of the forwarding state, read by workers.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    generation: u64,
    ports: Arc<Vec<Option<PortConfig>>>,
    tunnels: Arc<Tunnels>,
    vrfs: Vec<Option<VrfFibs>>,
    next_hops: Arc<Vec<NextHop>>,
    /// The TEIB entry of each `Tunnel { peer: Some(..) }` next hop, by next-hop id, copied in at
    /// publication (VPP's midchain adjacency): the route's next hop leads straight to the outer path,
    /// with no TEIB hash lookup per packet, and the workers can prefetch it from the FIB's answer.
    nh_adjacency: Chunked<Option<Adjacency>>,
    teib: Teib,
    neighbours: Sharded<(PortId, IpAddr), [u8; 6]>,
    sas: SaDb,
}

impl Tables {
    /// The SA database: keys and configuration of every SA the workers may use.
    #[inline]
    pub fn sas(&self) -> &SaDb {
        &self.sas
    }

    /// Number of port slots (the highest port id + 1).
    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// Number of publications before this snapshot (0 for the empty tables a reader starts with).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A port's configuration.
    #[inline]
    pub fn port(&self, port: PortId) -> Option<&PortConfig> {
        self.ports.get(usize::from(port.0))?.as_ref()
    }

    /// A tunnel's configuration.
    #[inline]
    pub fn tunnel(&self, tunnel: TunnelId) -> Option<&TunnelConfig> {
        self.tunnels.by_id.get(usize::from(tunnel.0))?.as_ref()
    }

    /// The tunnel that receives GRE sent to `local` with `key` (RFC 2890 §2.1: the key tells tunnels
    /// with one source apart).
    #[inline]
    pub fn tunnel_rx(&self, local: IpAddr, key: Option<u32>) -> Option<TunnelId> {
        self.tunnels.rx.get(&(local, key)).copied()
    }

    /// The FIBs of `vrf`, for bulk lookups.
    #[inline]
    pub fn vrf(&self, vrf: VrfId) -> Option<&VrfFibs> {
        self.vrfs.get(usize::from(vrf.0))?.as_ref()
    }

    /// Longest-prefix match of `dst` in `vrf`.
    #[inline]
    pub fn route(&self, vrf: VrfId, dst: IpAddr) -> Option<NextHopId> {
        let fibs = self.vrf(vrf)?;
        match dst {
            IpAddr::V4(a) => fibs.v4.lookup(a),
            IpAddr::V6(a) => fibs.v6.lookup(a),
        }
    }

    /// Starts loading what [`Tables::route`] of `dst` in `vrf` reads first (see [`crate::fib::Fib::prefetch`]).
    #[inline]
    pub fn prefetch_route(&self, vrf: VrfId, dst: IpAddr) {
        if let Some(fibs) = self.vrf(vrf) {
            match dst {
                IpAddr::V4(a) => fibs.v4.prefetch(a),
                IpAddr::V6(a) => fibs.v6.prefetch(a),
            }
        }
    }

    /// A next hop by id (ids come from this snapshot's FIBs).
    #[inline]
    pub fn next_hop(&self, id: NextHopId) -> Option<&NextHop> {
        self.next_hops.get(id.0 as usize)
    }

    /// The TEIB entry that next hop `id`, a `Tunnel { peer: Some(..) }`, leads to; `None` for other next
    /// hops and for a peer the TEIB does not know.
    #[inline]
    pub fn next_hop_adjacency(&self, id: NextHopId) -> Option<&Adjacency> {
        self.nh_adjacency.get(id.0 as usize)?.as_ref()
    }

    /// Starts loading next hop `id` and its TEIB entry, for a packet a few stages later.
    #[inline]
    pub fn prefetch_next_hop(&self, id: NextHopId) {
        if let Some(nh) = self.next_hop(id) {
            crate::prefetch::prefetch(nh);
        }
        if let Some(adjacency) = self.nh_adjacency.get(id.0 as usize) {
            crate::prefetch::prefetch(adjacency);
        }
    }

    /// Longest-prefix match of `dst` in `vrf`, resolved to its next hop.
    #[inline]
    pub fn resolve(&self, vrf: VrfId, dst: IpAddr) -> Option<&NextHop> {
        self.next_hop(self.route(vrf, dst)?)
    }

    /// True when `addr` is one of the box's addresses in `vrf` (its route is [`NextHop::Local`]).
    #[inline]
    pub fn is_local(&self, vrf: VrfId, addr: IpAddr) -> bool {
        matches!(self.resolve(vrf, addr), Some(NextHop::Local))
    }

    /// The TEIB entry of overlay peer `overlay` on `tunnel`.
    #[inline]
    pub fn teib(&self, tunnel: TunnelId, overlay: IpAddr) -> Option<&TeibEntry> {
        self.teib.get(tunnel, overlay).map(|a| &a.entry)
    }

    /// The TEIB entry of overlay peer `overlay` on `tunnel` with its resolved outer path (hot path).
    #[inline]
    pub fn adjacency(&self, tunnel: TunnelId, overlay: IpAddr) -> Option<&Adjacency> {
        self.teib.get(tunnel, overlay)
    }

    /// The outer path from `tunnel` to `entry`'s NBMA address in these tables, if complete.
    fn rewrite(&self, tunnel: TunnelId, entry: &TeibEntry) -> Option<Rewrite> {
        let t = self.tunnel(tunnel)?;
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (t.source, entry.nbma) else { return None };
        let NextHop::Port { port, gateway } = *self.resolve(t.fvrf, entry.nbma)? else { return None };
        let p = self.port(port)?;
        let eth = ethernet::Repr {
            src_addr: Address(p.mac),
            dst_addr: Address(self.neighbour(port, gateway.unwrap_or(entry.nbma))?),
            // Untagged when the NIC inserts the tag.
            vlan: p.vlan.filter(|_| !p.tx_vlan_offload).map(|vid| VlanTag { pcp: 0, dei: false, vid }),
            ethertype: EtherType::IPV4,
        };
        let tx_vlan = p.vlan.filter(|_| p.tx_vlan_offload);
        let ip = ipv4::Template::new(src, dst, IpProtocol::GRE, TUNNEL_TTL);
        Some(Rewrite::new(port, p.mtu, ip, &eth, tx_vlan))
    }

    /// The link-layer address of `ip` on `port`.
    #[inline]
    pub fn neighbour(&self, port: PortId, ip: IpAddr) -> Option<[u8; 6]> {
        self.neighbours.get(&(port, ip)).copied()
    }
}

/// A change the publisher refused; the staged and published tables are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TablesError {
    #[error("route {prefix}/{len} in VRF {vrf}: {error}")]
    Prefix { vrf: u16, prefix: IpAddr, len: u8, error: FibError },
    #[error("address {addr}/{len} in VRF {vrf}: {error}")]
    Address { vrf: u16, addr: IpAddr, len: u8, error: FibError },
    #[error("port {port} does not exist")]
    NoSuchPort { port: u16 },
    #[error("tunnel {tunnel} does not exist")]
    NoSuchTunnel { tunnel: u16 },
    #[error("route in VRF {vrf} via {what} {id}, which is in VRF {its_vrf}")]
    VrfMismatch { vrf: u16, what: &'static str, id: u16, its_vrf: u16 },
    #[error("tunnel {tunnel}: source {local} key {key:?} is already used by tunnel {other}")]
    DuplicateTunnelKey { tunnel: u16, local: IpAddr, key: Option<u32>, other: u16 },
    #[error("route {prefix}/{len} in VRF {vrf} is a connected or local route; change the address instead")]
    Connected { vrf: u16, prefix: IpAddr, len: u8 },
    #[error("address {prefix}/{len} in VRF {vrf}: a route to that prefix already exists")]
    AddressConflict { vrf: u16, prefix: IpAddr, len: u8 },
    #[error("{what} {id} is used by {routes} static route(s); remove them first")]
    InUse { what: &'static str, id: u16, routes: u32 },
    #[error("next-hop table full ({max} entries)", max = NextHopId::MAX + 1)]
    NextHopsFull,
}

/// Who installed a connected or local route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Owner {
    Port(PortId),
    Tunnel(TunnelId),
}

/// A route key: VRF, network, length.
type RouteKey = (VrfId, IpAddr, u8);

/// Worker side: cheap to clone, one per worker.
#[derive(Debug, Clone)]
pub struct TablesReader {
    shared: Arc<ArcSwap<Tables>>,
}

impl TablesReader {
    /// The current snapshot; hold it for one burst. Lock-free; no allocation while the thread holds
    /// fewer than arc-swap's few debt slots (one guard per burst is the intended use).
    #[inline]
    pub fn load(&self) -> Guard<Arc<Tables>> {
        self.shared.load()
    }
}

/// Control side: the staged master copy and the publication point.
#[derive(Debug)]
pub struct TablesPublisher {
    staged: Tables,
    shared: Arc<ArcSwap<Tables>>,
    fibs: Vec<Option<(FibBuilder4, FibBuilder6)>>,
    nh_ids: HashMap<NextHop, NextHopId>,
    nh_refs: Vec<u32>,
    nh_free: Vec<NextHopId>,
    /// Connected and local routes and their owners.
    connected: HashMap<RouteKey, Owner>,
    /// TEIB entries set or removed since the last publication, whose rewrites to resolve and whose
    /// next hops to point at them.
    teib_changed: Vec<(TunnelId, IpAddr)>,
    /// Next hops added or freed since the last publication, whose TEIB entry to look up.
    nh_changed: Vec<NextHopId>,
    /// Something every rewrite may depend on changed: resolve them all at the next publication.
    rewrites_stale: bool,
}

impl TablesPublisher {
    /// Empty tables, published as generation 0, and a reader for the workers.
    pub fn new() -> (Self, TablesReader) {
        let shared = Arc::new(ArcSwap::from_pointee(Tables::default()));
        let publisher = TablesPublisher {
            staged: Tables::default(),
            shared: Arc::clone(&shared),
            fibs: Vec::new(),
            nh_ids: HashMap::new(),
            nh_refs: Vec::new(),
            nh_free: Vec::new(),
            connected: HashMap::new(),
            teib_changed: Vec::new(),
            nh_changed: Vec::new(),
            rewrites_stale: false,
        };
        (publisher, TablesReader { shared })
    }

    /// Another reader (for a new worker).
    pub fn reader(&self) -> TablesReader {
        TablesReader { shared: Arc::clone(&self.shared) }
    }

    /// The staged tables (what the next [`Self::publish`] makes visible), for control-side lookups.
    pub fn staged(&self) -> &Tables {
        &self.staged
    }

    /// Replaces the SA database (IKE installed, rekeyed or deleted SAs).
    pub fn set_sas(&mut self, sas: SaDb) {
        self.staged.sas = sas;
    }

    /// Makes every staged change visible to workers at once; returns the new generation. Workers that
    /// still hold the previous snapshot finish their burst on it.
    pub fn publish(&mut self) -> u64 {
        self.staged.generation += 1;
        self.staged.vrfs = self
            .fibs
            .iter()
            .map(|f| f.as_ref().map(|(v4, v6)| VrfFibs { v4: v4.snapshot(), v6: v6.snapshot() }))
            .collect();
        self.resolve_rewrites();
        self.resolve_next_hops();
        self.teib_changed.clear();
        self.rewrites_stale = false;
        self.shared.store(Arc::new(self.staged.clone()));
        self.staged.generation
    }

    /// Gives the changed TEIB entries (all of them, when their dependencies changed) the rewrite the
    /// staged tables resolve; the entries whose rewrite changed join `teib_changed`.
    fn resolve_rewrites(&mut self) {
        let keys = (!self.rewrites_stale).then_some(&self.teib_changed[..]);
        if keys.is_some_and(|k| k.is_empty()) {
            return;
        }
        let mut teib = std::mem::take(&mut self.staged.teib);
        let mut changed = Vec::new();
        teib.resolve(keys, |tunnel, entry| self.staged.rewrite(tunnel, entry), &mut changed);
        self.staged.teib = teib;
        self.teib_changed.append(&mut changed);
    }

    /// Copies into each tunnel next hop the TEIB entry it leads to: for the next hops added or freed and
    /// those of the TEIB entries set, removed or given another rewrite. (A tunnel's entries also go with
    /// the tunnel, but only once no route uses it: its next hops were freed.)
    fn resolve_next_hops(&mut self) {
        let mut ids = std::mem::take(&mut self.nh_changed);
        ids.extend(
            self.teib_changed
                .iter()
                .filter_map(|&(tunnel, peer)| self.nh_ids.get(&NextHop::Tunnel { tunnel, peer: Some(peer) }).copied()),
        );
        for &id in &ids {
            let adjacency = match self.staged.next_hop(id) {
                Some(&NextHop::Tunnel { tunnel, peer: Some(peer) }) if self.nh_refs[id.0 as usize] > 0 => {
                    self.staged.teib.get(tunnel, peer).copied()
                }
                _ => None,
            };
            self.staged.nh_adjacency.set(id.0 as usize, adjacency);
        }
        ids.clear();
        self.nh_changed = ids;
    }

    /// True when `vrf` is some tunnel's front-door VRF.
    fn is_fvrf(&self, vrf: VrfId) -> bool {
        self.staged.tunnels.by_id.iter().flatten().any(|t| t.fvrf == vrf)
    }

    // ---- routes -------------------------------------------------------------------------------

    fn validate_prefix(vrf: VrfId, prefix: IpAddr, len: u8) -> Result<(), TablesError> {
        let r = match prefix {
            IpAddr::V4(a) => FibBuilder4::check(a, len).map(drop),
            IpAddr::V6(a) => FibBuilder6::check(a, len).map(drop),
        };
        r.map_err(|error| TablesError::Prefix { vrf: vrf.0, prefix, len, error })
    }

    fn validate_next_hop(&self, vrf: VrfId, nh: &NextHop) -> Result<(), TablesError> {
        match *nh {
            NextHop::Drop | NextHop::Local => Ok(()),
            NextHop::Port { port, .. } => {
                let p = self.staged.port(port).ok_or(TablesError::NoSuchPort { port: port.0 })?;
                if p.vrf != vrf {
                    return Err(TablesError::VrfMismatch { vrf: vrf.0, what: "port", id: port.0, its_vrf: p.vrf.0 });
                }
                Ok(())
            }
            NextHop::Tunnel { tunnel, .. } => {
                let t = self.staged.tunnel(tunnel).ok_or(TablesError::NoSuchTunnel { tunnel: tunnel.0 })?;
                if t.vrf != vrf {
                    return Err(TablesError::VrfMismatch {
                        vrf: vrf.0,
                        what: "tunnel",
                        id: tunnel.0,
                        its_vrf: t.vrf.0,
                    });
                }
                Ok(())
            }
        }
    }

    fn route_exists(&self, vrf: VrfId, prefix: IpAddr, len: u8) -> bool {
        let Some(Some((v4, v6))) = self.fibs.get(usize::from(vrf.0)) else {
            return false;
        };
        match prefix {
            IpAddr::V4(a) => v4.get(a, len).is_some(),
            IpAddr::V6(a) => v6.get(a, len).is_some(),
        }
    }

    fn intern(&mut self, nh: NextHop) -> Result<NextHopId, TablesError> {
        if let Some(&id) = self.nh_ids.get(&nh) {
            self.nh_refs[id.0 as usize] += 1;
            return Ok(id);
        }
        let id = match self.nh_free.pop() {
            Some(id) => id,
            None => {
                let id = u32::try_from(self.nh_refs.len()).map_err(|_| TablesError::NextHopsFull)?;
                if id > NextHopId::MAX {
                    return Err(TablesError::NextHopsFull);
                }
                self.nh_refs.push(0);
                Arc::make_mut(&mut self.staged.next_hops).push(NextHop::Drop);
                NextHopId(id)
            }
        };
        Arc::make_mut(&mut self.staged.next_hops)[id.0 as usize] = nh;
        self.nh_refs[id.0 as usize] = 1;
        self.nh_changed.push(id);
        self.nh_ids.insert(nh, id);
        Ok(id)
    }

    fn release(&mut self, id: NextHopId) {
        let refs = &mut self.nh_refs[id.0 as usize];
        *refs -= 1;
        if *refs == 0 {
            let nh = self.staged.next_hops[id.0 as usize];
            self.nh_ids.remove(&nh);
            self.nh_free.push(id);
            self.nh_changed.push(id);
        }
    }

    /// Installs a validated route; releases the next hop it replaces.
    fn install(&mut self, vrf: VrfId, prefix: IpAddr, len: u8, nh: NextHop) -> Result<(), TablesError> {
        self.rewrites_stale |= self.is_fvrf(vrf);
        let id = self.intern(nh)?;
        let v = usize::from(vrf.0);
        if self.fibs.len() <= v {
            self.fibs.resize_with(v + 1, || None);
        }
        let (v4, v6) = self.fibs[v].get_or_insert_with(|| (FibBuilder4::new(), FibBuilder6::new()));
        let old = match prefix {
            IpAddr::V4(a) => v4.insert(a, len, id),
            IpAddr::V6(a) => v6.insert(a, len, id),
        };
        match old {
            Ok(Some(old)) => self.release(old),
            Ok(None) => {}
            Err(error) => {
                self.release(id);
                return Err(TablesError::Prefix { vrf: vrf.0, prefix, len, error });
            }
        }
        Ok(())
    }

    /// Removes a route if present; releases its next hop.
    fn uninstall(&mut self, vrf: VrfId, prefix: IpAddr, len: u8) -> Result<bool, TablesError> {
        self.rewrites_stale |= self.is_fvrf(vrf);
        let Some(Some((v4, v6))) = self.fibs.get_mut(usize::from(vrf.0)) else {
            return Ok(false);
        };
        let old = match prefix {
            IpAddr::V4(a) => v4.remove(a, len),
            IpAddr::V6(a) => v6.remove(a, len),
        }
        .map_err(|error| TablesError::Prefix { vrf: vrf.0, prefix, len, error })?;
        if let Some(old) = old {
            self.release(old);
        }
        Ok(old.is_some())
    }

    /// Adds or replaces the static route `prefix/len → nh` in `vrf` (`ip route [vrf …]`).
    pub fn add_route(&mut self, vrf: VrfId, prefix: IpAddr, len: u8, nh: NextHop) -> Result<(), TablesError> {
        Self::validate_prefix(vrf, prefix, len)?;
        self.validate_next_hop(vrf, &nh)?;
        if self.connected.contains_key(&(vrf, prefix, len)) {
            return Err(TablesError::Connected { vrf: vrf.0, prefix, len });
        }
        self.install(vrf, prefix, len, nh)
    }

    /// Removes the static route `prefix/len` from `vrf`; returns whether it existed.
    pub fn remove_route(&mut self, vrf: VrfId, prefix: IpAddr, len: u8) -> Result<bool, TablesError> {
        Self::validate_prefix(vrf, prefix, len)?;
        if self.connected.contains_key(&(vrf, prefix, len)) {
            return Err(TablesError::Connected { vrf: vrf.0, prefix, len });
        }
        self.uninstall(vrf, prefix, len)
    }

    // ---- connected routes ---------------------------------------------------------------------

    /// The connected and local routes an address installs.
    fn derived_routes(
        vrf: VrfId,
        addr: IpAddr,
        len: u8,
        subnet: NextHop,
    ) -> Result<Vec<(RouteKey, NextHop)>, TablesError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            let error = FibError::PrefixLength { len, max };
            return Err(TablesError::Address { vrf: vrf.0, addr, len, error });
        }
        let (host_len, network) = match addr {
            IpAddr::V4(a) => (32, IpAddr::V4(Ipv4Addr::from(V4::network(u32::from(a), len)))),
            IpAddr::V6(a) => (128, IpAddr::V6(Ipv6Addr::from(V6::network(u128::from(a), len)))),
        };
        let mut routes = vec![((vrf, addr, host_len), NextHop::Local)];
        if len < host_len {
            routes.push(((vrf, network, len), subnet));
        }
        Ok(routes)
    }

    /// Replaces the connected routes of `owner` with `new`, refusing (and changing nothing) if a new
    /// prefix is already routed by someone else.
    fn replace_connected(&mut self, owner: Owner, new: Vec<(RouteKey, NextHop)>) -> Result<(), TablesError> {
        let old: Vec<RouteKey> = self.connected.iter().filter(|(_, o)| **o == owner).map(|(k, _)| *k).collect();
        let mut seen = HashSet::new();
        for &((vrf, prefix, len), _) in &new {
            Self::validate_prefix(vrf, prefix, len)?;
            let ours = self.connected.get(&(vrf, prefix, len)) == Some(&owner);
            if !seen.insert((vrf, prefix, len)) || (!ours && self.route_exists(vrf, prefix, len)) {
                return Err(TablesError::AddressConflict { vrf: vrf.0, prefix, len });
            }
        }
        for (vrf, prefix, len) in old {
            self.connected.remove(&(vrf, prefix, len));
            self.uninstall(vrf, prefix, len)?;
        }
        for ((vrf, prefix, len), nh) in new {
            self.install(vrf, prefix, len, nh)?;
            self.connected.insert((vrf, prefix, len), owner);
        }
        Ok(())
    }

    /// Static routes (not connected ones) whose next hop matches `uses`.
    fn static_uses(&self, owner: Owner, uses: impl Fn(&NextHop) -> bool) -> u32 {
        let all: u32 = self.nh_ids.iter().filter(|(nh, _)| uses(nh)).map(|(_, id)| self.nh_refs[id.0 as usize]).sum();
        let connected = self
            .connected
            .iter()
            .filter(|((_, prefix, len), o)| **o == owner && *len < if prefix.is_ipv4() { 32 } else { 128 })
            .count();
        all.saturating_sub(u32::try_from(connected).unwrap_or(u32::MAX))
    }

    // ---- ports ----------------------------------------------------------------------------------

    /// Adds or replaces a port, with its connected and local routes. Changing the VRF of a port that
    /// static routes use is refused.
    pub fn set_port(&mut self, config: PortConfig) -> Result<(), TablesError> {
        self.rewrites_stale = true;
        let id = config.id;
        if let Some(old) = self.staged.port(id) {
            if old.vrf != config.vrf {
                let routes =
                    self.static_uses(Owner::Port(id), |nh| matches!(nh, NextHop::Port { port, .. } if *port == id));
                if routes > 0 {
                    return Err(TablesError::InUse { what: "port", id: id.0, routes });
                }
            }
        }
        let subnet = NextHop::Port { port: id, gateway: None };
        let routes = config
            .addresses
            .iter()
            .map(|&(a, len)| Self::derived_routes(config.vrf, a, len, subnet))
            .collect::<Result<Vec<_>, _>>()?;
        self.replace_connected(Owner::Port(id), routes.concat())?;
        let ports = Arc::make_mut(&mut self.staged.ports);
        let i = usize::from(id.0);
        if ports.len() <= i {
            ports.resize(i + 1, None);
        }
        ports[i] = Some(config);
        Ok(())
    }

    /// Removes a port, its connected routes and its neighbours; refused while static routes use it.
    pub fn remove_port(&mut self, id: PortId) -> Result<(), TablesError> {
        self.rewrites_stale = true;
        if self.staged.port(id).is_none() {
            return Err(TablesError::NoSuchPort { port: id.0 });
        }
        let routes = self.static_uses(Owner::Port(id), |nh| matches!(nh, NextHop::Port { port, .. } if *port == id));
        if routes > 0 {
            return Err(TablesError::InUse { what: "port", id: id.0, routes });
        }
        self.replace_connected(Owner::Port(id), Vec::new())?;
        self.staged.neighbours.remove_where(|(p, _), _| *p == id);
        if let Some(slot) = Arc::make_mut(&mut self.staged.ports).get_mut(usize::from(id.0)) {
            *slot = None;
        }
        Ok(())
    }

    // ---- tunnels --------------------------------------------------------------------------------

    /// Adds or replaces a tunnel, with its connected and local overlay routes. Refused when another
    /// tunnel has the same (source, key), or when the overlay VRF changes while static routes use it.
    pub fn set_tunnel(&mut self, config: TunnelConfig) -> Result<(), TablesError> {
        self.rewrites_stale = true;
        let id = config.id;
        if let Some(&other) = self.staged.tunnels.rx.get(&(config.source, config.key)) {
            if other != id {
                return Err(TablesError::DuplicateTunnelKey {
                    tunnel: id.0,
                    local: config.source,
                    key: config.key,
                    other: other.0,
                });
            }
        }
        let old = self.staged.tunnel(id).map(|t| (t.vrf, t.source, t.key));
        if let Some((vrf, ..)) = old {
            if vrf != config.vrf {
                let routes = self
                    .static_uses(Owner::Tunnel(id), |nh| matches!(nh, NextHop::Tunnel { tunnel, .. } if *tunnel == id));
                if routes > 0 {
                    return Err(TablesError::InUse { what: "tunnel", id: id.0, routes });
                }
            }
        }
        let subnet = NextHop::Tunnel { tunnel: id, peer: None };
        let routes = config
            .address
            .iter()
            .map(|&(a, len)| Self::derived_routes(config.vrf, a, len, subnet))
            .collect::<Result<Vec<_>, _>>()?;
        self.replace_connected(Owner::Tunnel(id), routes.concat())?;
        let tunnels = Arc::make_mut(&mut self.staged.tunnels);
        if let Some((_, source, key)) = old {
            tunnels.rx.remove(&(source, key));
        }
        tunnels.rx.insert((config.source, config.key), id);
        let i = usize::from(id.0);
        if tunnels.by_id.len() <= i {
            tunnels.by_id.resize(i + 1, None);
        }
        tunnels.by_id[i] = Some(config);
        Ok(())
    }

    /// Removes a tunnel, its connected routes and its TEIB entries; refused while static routes use it.
    pub fn remove_tunnel(&mut self, id: TunnelId) -> Result<(), TablesError> {
        self.rewrites_stale = true;
        let Some(old) = self.staged.tunnel(id).map(|t| (t.source, t.key)) else {
            return Err(TablesError::NoSuchTunnel { tunnel: id.0 });
        };
        let routes =
            self.static_uses(Owner::Tunnel(id), |nh| matches!(nh, NextHop::Tunnel { tunnel, .. } if *tunnel == id));
        if routes > 0 {
            return Err(TablesError::InUse { what: "tunnel", id: id.0, routes });
        }
        self.replace_connected(Owner::Tunnel(id), Vec::new())?;
        self.staged.teib.remove_tunnel(id);
        let tunnels = Arc::make_mut(&mut self.staged.tunnels);
        tunnels.rx.remove(&old);
        if let Some(slot) = tunnels.by_id.get_mut(usize::from(id.0)) {
            *slot = None;
        }
        Ok(())
    }

    // ---- TEIB and neighbours ------------------------------------------------------------------

    /// Adds or replaces the TEIB entry of overlay peer `overlay` on `tunnel`; returns the old one.
    pub fn set_teib(
        &mut self,
        tunnel: TunnelId,
        overlay: IpAddr,
        entry: TeibEntry,
    ) -> Result<Option<TeibEntry>, TablesError> {
        if self.staged.tunnel(tunnel).is_none() {
            return Err(TablesError::NoSuchTunnel { tunnel: tunnel.0 });
        }
        self.teib_changed.push((tunnel, overlay));
        Ok(self.staged.teib.insert(tunnel, overlay, entry))
    }

    /// Removes a TEIB entry; returns it.
    pub fn remove_teib(&mut self, tunnel: TunnelId, overlay: IpAddr) -> Option<TeibEntry> {
        self.teib_changed.push((tunnel, overlay));
        self.staged.teib.remove(tunnel, overlay)
    }

    /// Sets the link-layer address of `ip` on `port` (ARP, RFC 826; ND, RFC 4861 §7.2.5).
    pub fn set_neighbour(&mut self, port: PortId, ip: IpAddr, mac: [u8; 6]) -> Result<(), TablesError> {
        if self.staged.port(port).is_none() {
            return Err(TablesError::NoSuchPort { port: port.0 });
        }
        self.rewrites_stale = true;
        self.staged.neighbours.insert((port, ip), mac);
        Ok(())
    }

    /// Forgets the link-layer address of `ip` on `port`; returns it.
    pub fn remove_neighbour(&mut self, port: PortId, ip: IpAddr) -> Option<[u8; 6]> {
        self.rewrites_stale = true;
        self.staged.neighbours.remove(&(port, ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SaIndex;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn port(id: u16, vrf: u16, addresses: &[(&str, u8)]) -> PortConfig {
        PortConfig {
            id: PortId(id),
            name: format!("wan{id}"),
            mac: [2, 0, 0, 0, 0, id as u8],
            vrf: VrfId(vrf),
            addresses: addresses.iter().map(|(a, l)| (ip(a), *l)).collect(),
            mtu: 1500,
            vlan: None,
            tx_ipv4_csum_offload: false,
            tx_vlan_offload: false,
        }
    }

    fn tunnel(id: u16, source: &str, key: Option<u32>, address: Option<(&str, u8)>) -> TunnelConfig {
        TunnelConfig {
            id: TunnelId(id),
            source: ip(source),
            key,
            fvrf: VrfId(0),
            vrf: VrfId(1),
            address: address.map(|(a, l)| (ip(a), l)),
            mtu: 1400,
            tcp_mss: Some(1360),
            protection: true,
            redirect: true,
        }
    }

    fn teib(nbma: &str) -> TeibEntry {
        TeibEntry { nbma: ip(nbma), sa_out: Some(SaIndex(1)), dynamic: true }
    }

    #[test]
    fn connected_and_local_routes_are_derived_like_ios() {
        let (mut p, reader) = TablesPublisher::new();
        p.set_port(port(0, 0, &[("192.0.2.1", 24), ("2001:db8::1", 64)])).unwrap();
        p.set_tunnel(tunnel(1, "192.0.2.1", Some(42), Some(("10.0.0.1", 24)))).unwrap();
        assert_eq!(reader.load().route(VrfId(0), ip("192.0.2.1")), None, "visible before publish");
        assert_eq!(p.publish(), 1);
        let t = reader.load();
        assert_eq!(t.generation(), 1);
        assert!(t.is_local(VrfId(0), ip("192.0.2.1")));
        assert!(t.is_local(VrfId(0), ip("2001:db8::1")));
        assert!(!t.is_local(VrfId(0), ip("192.0.2.2")));
        let on_link = NextHop::Port { port: PortId(0), gateway: None };
        assert_eq!(t.resolve(VrfId(0), ip("192.0.2.200")), Some(&on_link));
        assert_eq!(t.resolve(VrfId(0), ip("2001:db8::9")), Some(&on_link));
        assert_eq!(t.resolve(VrfId(0), ip("198.51.100.1")), None);
        // The overlay address lives in the overlay VRF, not the front-door one.
        assert!(t.is_local(VrfId(1), ip("10.0.0.1")));
        assert!(!t.is_local(VrfId(0), ip("10.0.0.1")));
        assert_eq!(t.resolve(VrfId(1), ip("10.0.0.7")), Some(&NextHop::Tunnel { tunnel: TunnelId(1), peer: None }));
        assert_eq!(t.tunnel_rx(ip("192.0.2.1"), Some(42)), Some(TunnelId(1)));
        assert_eq!(t.tunnel_rx(ip("192.0.2.1"), None), None);
        assert_eq!(t.tunnel_rx(ip("192.0.2.1"), Some(43)), None);
        assert_eq!(t.tunnel(TunnelId(1)).map(|c| c.tcp_mss), Some(Some(1360)));
        assert_eq!(t.port(PortId(0)).map(|c| c.name.as_str()), Some("wan0"));

        // Changing the address moves the connected routes.
        p.set_port(port(0, 0, &[("198.51.100.1", 30)])).unwrap();
        p.publish();
        let t2 = reader.load();
        assert!(!t2.is_local(VrfId(0), ip("192.0.2.1")));
        assert_eq!(t2.resolve(VrfId(0), ip("198.51.100.2")), Some(&on_link));
        assert_eq!(t2.resolve(VrfId(0), ip("2001:db8::9")), None);
        // The old snapshot is unchanged.
        assert!(t.is_local(VrfId(0), ip("192.0.2.1")));
    }

    /// A route via an overlay peer leads to the peer's TEIB entry, rewrite included, in every snapshot:
    /// whether the route or the entry came first, when the entry changes or goes, and when the route goes
    /// and its next-hop id is reused.
    #[test]
    fn tunnel_next_hops_lead_to_the_teib_entry_of_their_peer() {
        let (mut p, reader) = TablesPublisher::new();
        p.set_port(port(0, 0, &[("192.0.2.1", 24)])).unwrap();
        p.set_tunnel(tunnel(1, "192.0.2.1", Some(42), Some(("10.0.0.1", 24)))).unwrap();
        p.add_route(VrfId(0), ip("0.0.0.0"), 0, NextHop::Port { port: PortId(0), gateway: Some(ip("192.0.2.254")) })
            .unwrap();
        p.set_neighbour(PortId(0), ip("192.0.2.254"), [0x52, 0x54, 0, 0, 0, 0xfe]).unwrap();
        let via = |peer: &str| NextHop::Tunnel { tunnel: TunnelId(1), peer: Some(ip(peer)) };
        // Route first, entry later.
        p.add_route(VrfId(1), ip("20.0.2.0"), 24, via("10.0.0.2")).unwrap();
        p.publish();
        let adjacency_of = |dst: &str| {
            let t = reader.load();
            let id = t.route(VrfId(1), ip(dst)).expect("routed");
            (t.next_hop_adjacency(id).copied(), t.adjacency(TunnelId(1), ip("10.0.0.2")).copied())
        };
        assert_eq!(adjacency_of("20.0.2.9"), (None, None));
        p.set_teib(TunnelId(1), ip("10.0.0.2"), teib("198.51.100.2")).unwrap();
        p.publish();
        let (by_route, by_peer) = adjacency_of("20.0.2.9");
        assert!(by_route.is_some_and(|a| a.rewrite.is_some()), "resolved with its rewrite: {by_route:?}");
        assert_eq!(by_route, by_peer);
        // The entry changes (a new SA), then the port changes (every rewrite again).
        let mut rekeyed = teib("198.51.100.2");
        rekeyed.sa_out = Some(SaIndex(9));
        p.set_teib(TunnelId(1), ip("10.0.0.2"), rekeyed).unwrap();
        p.publish();
        let (by_route, by_peer) = adjacency_of("20.0.2.9");
        assert_eq!(by_route.map(|a| a.entry.sa_out), Some(Some(SaIndex(9))));
        assert_eq!(by_route, by_peer);
        let mut tagged = port(0, 0, &[("192.0.2.1", 24)]);
        tagged.vlan = Some(100);
        p.set_port(tagged).unwrap();
        p.publish();
        let (by_route, by_peer) = adjacency_of("20.0.2.9");
        assert_eq!(by_route, by_peer);
        assert_eq!(by_route.and_then(|a| a.rewrite).map(|r| r.l2().len()), Some(18), "tagged header");
        // Entry first, route later; then the entry goes.
        p.set_teib(TunnelId(1), ip("10.0.0.3"), teib("198.51.100.3")).unwrap();
        p.publish();
        p.add_route(VrfId(1), ip("20.0.3.0"), 24, via("10.0.0.3")).unwrap();
        p.publish();
        let t = reader.load();
        let id3 = t.route(VrfId(1), ip("20.0.3.9")).unwrap();
        assert_eq!(t.next_hop_adjacency(id3).map(|a| a.entry.nbma), Some(ip("198.51.100.3")));
        p.remove_teib(TunnelId(1), ip("10.0.0.2"));
        p.publish();
        assert_eq!(adjacency_of("20.0.2.9"), (None, None));
        assert!(t.next_hop_adjacency(id3).is_some(), "an older snapshot keeps what it had");
        // The route goes; its id, reused by a next hop to a peer without an entry, leads nowhere.
        assert!(p.remove_route(VrfId(1), ip("20.0.3.0"), 24).unwrap());
        p.add_route(VrfId(1), ip("20.0.4.0"), 24, via("10.0.0.4")).unwrap();
        p.publish();
        let t = reader.load();
        let id4 = t.route(VrfId(1), ip("20.0.4.9")).unwrap();
        assert_eq!(id4, id3, "the freed id is reused");
        assert_eq!(t.next_hop_adjacency(id4), None);
    }

    #[test]
    fn teib_rewrites_follow_routes_neighbours_and_ports() {
        let (mut p, reader) = TablesPublisher::new();
        p.set_port(port(0, 0, &[("192.0.2.1", 24)])).unwrap();
        p.set_tunnel(tunnel(1, "192.0.2.1", Some(42), Some(("10.0.0.1", 24)))).unwrap();
        p.set_teib(TunnelId(1), ip("10.0.0.2"), teib("198.51.100.2")).unwrap();
        p.publish();
        let rewrite = |reader: &TablesReader| reader.load().adjacency(TunnelId(1), ip("10.0.0.2")).unwrap().rewrite;
        assert_eq!(rewrite(&reader), None, "no route to the NBMA address yet");

        let gw = NextHop::Port { port: PortId(0), gateway: Some(ip("192.0.2.254")) };
        p.add_route(VrfId(0), ip("0.0.0.0"), 0, gw).unwrap();
        p.publish();
        assert_eq!(rewrite(&reader), None, "the gateway's MAC address is not known yet");

        p.set_neighbour(PortId(0), ip("192.0.2.254"), [0x52, 0x54, 0, 0, 0, 0xfe]).unwrap();
        p.publish();
        let r = rewrite(&reader).expect("resolved once the gateway is known");
        assert_eq!(r.port, PortId(0));
        assert_eq!(r.port_mtu, 1500);
        // Ether(dst="52:54:00:00:00:fe", src="02:00:00:00:00:00", type=0x0800): gateway's MAC, port's MAC
        assert_eq!(r.l2(), [0x52, 0x54, 0, 0, 0, 0xfe, 2, 0, 0, 0, 0, 0, 0x08, 0x00]);
        assert_eq!(r.ip, ipv4::Template::new([192, 0, 2, 1].into(), [198, 51, 100, 2].into(), IpProtocol::GRE, 255));

        // A new entry is resolved when it is published; a VLAN on the port changes every rewrite.
        p.set_teib(TunnelId(1), ip("10.0.0.3"), teib("203.0.113.3")).unwrap();
        let mut tagged = port(0, 0, &[("192.0.2.1", 24)]);
        tagged.vlan = Some(100);
        p.set_port(tagged).unwrap();
        p.publish();
        let t = reader.load();
        for peer in ["10.0.0.2", "10.0.0.3"] {
            let r = t.adjacency(TunnelId(1), ip(peer)).unwrap().rewrite.unwrap();
            assert_eq!(&r.l2()[12..], [0x81, 0x00, 0x00, 100, 0x08, 0x00], "{peer}");
        }

        // Removing the route takes the rewrites away; routes in the overlay VRF do not touch them.
        p.add_route(
            VrfId(1),
            ip("172.16.0.0"),
            16,
            NextHop::Tunnel { tunnel: TunnelId(1), peer: Some(ip("10.0.0.2")) },
        )
        .unwrap();
        p.publish();
        assert!(!p.rewrites_stale && rewrite(&reader).is_some());
        p.remove_route(VrfId(0), ip("0.0.0.0"), 0).unwrap();
        p.publish();
        assert_eq!(rewrite(&reader), None);
        assert!(t.adjacency(TunnelId(1), ip("10.0.0.2")).unwrap().rewrite.is_some(), "old snapshot unchanged");
    }

    #[test]
    fn next_hops_are_shared_and_reused() {
        let (mut p, reader) = TablesPublisher::new();
        p.set_port(port(0, 0, &[("192.0.2.1", 24)])).unwrap();
        let gw = NextHop::Port { port: PortId(0), gateway: Some(ip("192.0.2.254")) };
        p.add_route(VrfId(0), ip("0.0.0.0"), 0, gw).unwrap();
        p.add_route(VrfId(0), ip("203.0.113.0"), 24, gw).unwrap();
        p.publish();
        let t = reader.load();
        assert_eq!(t.route(VrfId(0), ip("8.8.8.8")), t.route(VrfId(0), ip("203.0.113.5")));
        assert_eq!(t.resolve(VrfId(0), ip("8.8.8.8")), Some(&gw));
        let before = p.nh_refs.len();
        p.remove_route(VrfId(0), ip("0.0.0.0"), 0).unwrap();
        p.remove_route(VrfId(0), ip("203.0.113.0"), 24).unwrap();
        p.add_route(VrfId(0), ip("0.0.0.0"), 0, NextHop::Drop).unwrap();
        assert_eq!(p.nh_refs.len(), before, "a freed next-hop slot is reused");
        p.publish();
        assert_eq!(reader.load().resolve(VrfId(0), ip("8.8.8.8")), Some(&NextHop::Drop));
        assert_eq!(t.resolve(VrfId(0), ip("8.8.8.8")), Some(&gw), "old snapshot keeps its next hops");
    }

    #[test]
    fn refused_changes_name_the_value_and_change_nothing() {
        let (mut p, reader) = TablesPublisher::new();
        p.set_port(port(0, 0, &[("192.0.2.1", 24)])).unwrap();
        p.set_tunnel(tunnel(1, "192.0.2.1", Some(42), Some(("10.0.0.1", 24)))).unwrap();
        p.add_route(
            VrfId(1),
            ip("172.16.0.0"),
            12,
            NextHop::Tunnel { tunnel: TunnelId(1), peer: Some(ip("10.0.0.2")) },
        )
        .unwrap();
        p.publish();
        let probe = |t: &Tables| {
            ["192.0.2.1", "192.0.2.9", "10.0.0.1", "10.0.0.9", "172.16.1.1", "2001:db8::1"]
                .map(|a| (t.resolve(VrfId(0), ip(a)).copied(), t.resolve(VrfId(1), ip(a)).copied()))
        };
        let want = probe(&p.staged);

        #[track_caller]
        fn err(r: Result<(), TablesError>) -> String {
            r.unwrap_err().to_string()
        }
        assert_eq!(
            err(p.add_route(VrfId(0), ip("10.9.0.0"), 16, NextHop::Port { port: PortId(7), gateway: None })),
            "port 7 does not exist"
        );
        assert_eq!(
            err(p.add_route(VrfId(1), ip("10.9.0.0"), 16, NextHop::Tunnel { tunnel: TunnelId(9), peer: None })),
            "tunnel 9 does not exist"
        );
        assert_eq!(
            err(p.add_route(VrfId(0), ip("10.9.0.0"), 16, NextHop::Tunnel { tunnel: TunnelId(1), peer: None })),
            "route in VRF 0 via tunnel 1, which is in VRF 1"
        );
        assert_eq!(
            err(p.add_route(VrfId(0), ip("10.9.0.0"), 33, NextHop::Drop)),
            "route 10.9.0.0/33 in VRF 0: prefix length 33 out of range (0..=32)"
        );
        assert_eq!(
            err(p.add_route(VrfId(0), ip("2001:db8::"), 129, NextHop::Drop)),
            "route 2001:db8::/129 in VRF 0: prefix length 129 out of range (0..=128)"
        );
        assert_eq!(
            err(p.add_route(VrfId(0), ip("192.0.2.0"), 24, NextHop::Drop)),
            "route 192.0.2.0/24 in VRF 0 is a connected or local route; change the address instead"
        );
        assert_eq!(
            err(p.set_tunnel(tunnel(2, "192.0.2.1", Some(42), None))),
            "tunnel 2: source 192.0.2.1 key Some(42) is already used by tunnel 1"
        );
        assert_eq!(
            err(p.set_tunnel(tunnel(2, "192.0.2.1", Some(43), Some(("10.0.0.1", 24))))),
            "address 10.0.0.1/32 in VRF 1: a route to that prefix already exists"
        );
        assert_eq!(
            err(p.set_port(port(3, 0, &[("192.0.2.5", 24)]))),
            "address 192.0.2.0/24 in VRF 0: a route to that prefix already exists"
        );
        assert_eq!(
            err(p.set_port(port(3, 0, &[("198.51.100.1", 40)]))),
            "address 198.51.100.1/40 in VRF 0: prefix length 40 out of range (0..=32)"
        );
        assert_eq!(err(p.remove_tunnel(TunnelId(1))), "tunnel 1 is used by 1 static route(s); remove them first");
        let mut moved = tunnel(1, "192.0.2.1", Some(42), Some(("10.0.0.1", 24)));
        moved.vrf = VrfId(2);
        assert_eq!(err(p.set_tunnel(moved)), "tunnel 1 is used by 1 static route(s); remove them first");
        assert_eq!(
            p.set_teib(TunnelId(5), ip("10.0.0.2"), teib("198.51.100.2")),
            Err(TablesError::NoSuchTunnel { tunnel: 5 })
        );
        assert_eq!(err(p.set_neighbour(PortId(5), ip("192.0.2.2"), [0; 6])), "port 5 does not exist");

        assert_eq!(probe(&p.staged), want, "staged tables changed by a refused change");
        assert!(p.staged.port(PortId(3)).is_none() && p.staged.tunnel(TunnelId(2)).is_none());
        assert_eq!(p.staged.tunnel_rx(ip("192.0.2.1"), Some(43)), None);
        assert_eq!(probe(&reader.load()), want);
        assert_eq!(reader.load().generation(), 1);

        // Once the static route is gone the tunnel goes, with its connected routes and TEIB entries.
        p.set_teib(TunnelId(1), ip("10.0.0.2"), teib("198.51.100.2")).unwrap();
        assert_eq!(p.remove_route(VrfId(1), ip("172.16.0.0"), 12), Ok(true));
        p.remove_tunnel(TunnelId(1)).unwrap();
        p.publish();
        let t = reader.load();
        assert_eq!(t.route(VrfId(1), ip("10.0.0.1")), None);
        assert_eq!(t.teib(TunnelId(1), ip("10.0.0.2")), None);
        assert_eq!(t.tunnel_rx(ip("192.0.2.1"), Some(42)), None);
    }

    #[test]
    fn neighbours_are_per_port() {
        let (mut p, reader) = TablesPublisher::new();
        p.set_port(port(0, 0, &[("192.0.2.1", 24)])).unwrap();
        p.set_port(port(1, 0, &[("198.51.100.1", 24)])).unwrap();
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        p.set_neighbour(PortId(0), ip("192.0.2.2"), mac).unwrap();
        p.publish();
        assert_eq!(reader.load().neighbour(PortId(0), ip("192.0.2.2")), Some(mac));
        assert_eq!(reader.load().neighbour(PortId(1), ip("192.0.2.2")), None);
        p.remove_port(PortId(0)).unwrap();
        p.publish();
        assert_eq!(reader.load().neighbour(PortId(0), ip("192.0.2.2")), None);
        assert_eq!(reader.load().route(VrfId(0), ip("192.0.2.2")), None);
    }

    /// One thread publishes routes together with the TEIB entries they need, and later withdraws both;
    /// another reads continuously. Every snapshot must be whole: a route via a tunnel peer always has
    /// its TEIB entry, and generations never go backwards.
    #[test]
    fn readers_see_whole_snapshots_while_the_publisher_runs() {
        let (mut p, reader) = TablesPublisher::new();
        p.set_tunnel(tunnel(1, "192.0.2.1", None, Some(("10.0.0.1", 16)))).unwrap();
        p.publish();
        const PEERS: u32 = 64;
        let peer = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0100 + i));
        let lan = |i: u32| IpAddr::V4(Ipv4Addr::from(0xac10_0000 + (i << 8)));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let checker = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut last, mut seen_routes, mut snapshots) = (0, 0u64, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let t = reader.load();
                    assert!(t.generation() >= last);
                    last = t.generation();
                    snapshots += 1;
                    let mut dst = [Ipv4Addr::UNSPECIFIED; PEERS as usize];
                    for (i, d) in dst.iter_mut().enumerate() {
                        *d = Ipv4Addr::from(0xac10_0001 + ((i as u32) << 8));
                    }
                    let mut out = [None; PEERS as usize];
                    t.vrf(VrfId(1)).unwrap().v4.lookup_bulk(&dst, &mut out);
                    for (i, nh) in out.iter().enumerate() {
                        let Some(nh) = nh else { continue };
                        seen_routes += 1;
                        let Some(NextHop::Tunnel { tunnel, peer: Some(peer_ip) }) = t.next_hop(*nh) else {
                            panic!("route {i} resolves to {:?}", t.next_hop(*nh));
                        };
                        assert_eq!(*peer_ip, peer(i as u32));
                        let entry = t.teib(*tunnel, *peer_ip).expect("route published without its TEIB entry");
                        assert_eq!(entry.nbma, IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i as u32)));
                    }
                }
                (snapshots, seen_routes)
            })
        };
        for round in 0..200u32 {
            for i in 0..PEERS {
                if (i + round) % 3 == 0 {
                    let nbma = IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i));
                    p.set_teib(TunnelId(1), peer(i), teib(&nbma.to_string())).unwrap();
                    let nh = NextHop::Tunnel { tunnel: TunnelId(1), peer: Some(peer(i)) };
                    p.add_route(VrfId(1), lan(i), 24, nh).unwrap();
                } else {
                    p.remove_route(VrfId(1), lan(i), 24).unwrap();
                    p.remove_teib(TunnelId(1), peer(i));
                }
            }
            p.publish();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (snapshots, seen_routes) = checker.join().unwrap();
        assert!(snapshots > 0 && seen_routes > 0, "checker saw {snapshots} snapshots, {seen_routes} routes");
    }

    /// One change of the property test below: peers and prefixes are drawn from small sets so that
    /// changes hit the same entries, next hops and ids again.
    #[derive(Debug, Clone)]
    enum Change {
        Teib(u8, u8),
        RemoveTeib(u8),
        Route(u8, u8),
        RemoveRoute(u8),
        Neighbour(bool),
        Vlan(Option<u16>),
        Publish,
    }

    fn change() -> impl proptest::strategy::Strategy<Value = Change> {
        use proptest::prelude::*;
        prop_oneof![
            3 => (0u8..6, 0u8..3).prop_map(|(p, n)| Change::Teib(p, n)),
            1 => (0u8..6).prop_map(Change::RemoveTeib),
            3 => (0u8..8, 0u8..6).prop_map(|(r, p)| Change::Route(r, p)),
            1 => (0u8..8).prop_map(Change::RemoveRoute),
            1 => any::<bool>().prop_map(Change::Neighbour),
            1 => proptest::option::of(1u16..3).prop_map(Change::Vlan),
            2 => Just(Change::Publish),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

        /// Whatever the order of TEIB, route, neighbour and port changes, every published snapshot leads each
        /// route via an overlay peer to exactly what a TEIB lookup of that peer finds, rewrite included.
        #[test]
        fn next_hops_always_agree_with_the_teib(changes in proptest::collection::vec(change(), 1..60)) {
            let (mut p, reader) = TablesPublisher::new();
            p.set_port(port(0, 0, &[("192.0.2.1", 24)])).unwrap();
            p.set_tunnel(tunnel(1, "192.0.2.1", Some(42), Some(("10.0.0.1", 24)))).unwrap();
            p.add_route(VrfId(0), ip("0.0.0.0"), 0, NextHop::Port { port: PortId(0), gateway: Some(ip("192.0.2.254")) })
                .unwrap();
            let peer = |i: u8| IpAddr::from([10, 0, 0, 10 + i]);
            let prefix = |i: u8| IpAddr::from([20, 0, i, 0]);
            for change in changes.iter().cloned().chain([Change::Publish]) {
                match change {
                    Change::Teib(i, n) => {
                        let mut entry = teib(&format!("198.51.100.{n}"));
                        entry.sa_out = Some(SaIndex(u32::from(n)));
                        p.set_teib(TunnelId(1), peer(i), entry).unwrap();
                    }
                    Change::RemoveTeib(i) => {
                        p.remove_teib(TunnelId(1), peer(i));
                    }
                    Change::Route(r, i) => {
                        p.add_route(VrfId(1), prefix(r), 24, NextHop::Tunnel { tunnel: TunnelId(1), peer: Some(peer(i)) })
                            .unwrap();
                    }
                    Change::RemoveRoute(r) => {
                        p.remove_route(VrfId(1), prefix(r), 24).unwrap();
                    }
                    Change::Neighbour(true) => p.set_neighbour(PortId(0), ip("192.0.2.254"), [2, 0, 0, 0, 0, 0xfe]).unwrap(),
                    Change::Neighbour(false) => {
                        p.remove_neighbour(PortId(0), ip("192.0.2.254"));
                    }
                    Change::Vlan(vlan) => {
                        let mut config = port(0, 0, &[("192.0.2.1", 24)]);
                        config.vlan = vlan;
                        p.set_port(config).unwrap();
                    }
                    Change::Publish => {
                        p.publish();
                        let t = reader.load();
                        for r in 0..8 {
                            let Some(id) = t.route(VrfId(1), IpAddr::from([20, 0, r, 9])) else { continue };
                            let Some(&NextHop::Tunnel { tunnel, peer: Some(peer) }) = t.next_hop(id) else { continue };
                            proptest::prop_assert_eq!(t.next_hop_adjacency(id), t.adjacency(tunnel, peer), "route {}", r);
                        }
                    }
                }
            }
        }
    }
}
