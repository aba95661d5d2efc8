//! The TEIB (tunnel endpoint information base): for an mGRE tunnel, overlay peer → underlay (NBMA)
//! address and the outbound SA that protects traffic to it. The model is VPP's `src/vnet/teib/teib.h`:
//! a protocol "like NHRP" fills it (RFC 2332 §5.2.3 registrations, static `ip nhrp map` entries) and the
//! data plane only reads it; the data plane never calls the protocol.
//!
//! Layer: forwarding tables. Contract:
//! - [`Teib::get`] is the hot-path lookup: one hash probe, no allocation, no lock.
//! - A [`Teib`] is immutable once published; the control plane changes its master copy with
//!   [`Teib::insert`] / [`Teib::remove`] and publishes a clone inside [`crate::tables::Tables`].
//! - Publication cost is proportional to what changed: the entries are spread over [`SHARDS`] hash maps,
//!   each behind an `Arc`; a clone copies 256 pointers and a change copies one shard (≈ 400 entries at
//!   100,000 peers) the first time it is written after a publish.
//!
//! The outer VRF of the NBMA side is the tunnel's front-door VRF ([`crate::tables::TunnelConfig::fvrf`]),
//! not repeated here. The inbound SA is found by SPI in the SA database, so only the outbound one is here.
//!
//! Each entry also carries its [`Rewrite`], the outer path to the NBMA address resolved when the tables
//! are published (VPP's midchain adjacency), so that encapsulation does no front-door route or
//! neighbour lookup per packet.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use crate::ids::{PortId, SaIndex, TunnelId};
use crate::wire::{ethernet, ipv4};

/// Outer TTL of tunnel packets (IOS's default `tunnel ttl`).
pub const TUNNEL_TTL: u8 = 255;

/// Number of shards of a [`Sharded`] map.
pub const SHARDS: usize = 256;

/// The underlay side of one overlay peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TeibEntry {
    /// The peer's NBMA (public) address, reached in the tunnel's front-door VRF.
    pub nbma: IpAddr,
    /// Outbound SA protecting GRE to this peer; `None` until IKE installs it. The SA also holds the
    /// UDP ports when NAT was detected (RFC 3948, RFC 7296 §2.23): NAT-T is negotiated per SA and there
    /// is no NAT-T without ESP, so the port lives there and nowhere else.
    pub sa_out: Option<SaIndex>,
    /// Learned from a registration (NHRP dynamic entry) rather than configured (`ip nhrp map`).
    pub dynamic: bool,
}

/// The outer path from a tunnel to one NBMA address, resolved by
/// [`crate::tables::TablesPublisher::publish`] from the tunnel, the front-door route, the port and the
/// neighbour table of the same snapshot. An entry whose path is not complete (no route, no ARP entry
/// yet, an IPv6 NBMA address) has none, and its packets take the slow path, which routes, resolves and
/// asks the control plane for what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    /// Egress port.
    pub port: PortId,
    /// Its MTU.
    pub port_mtu: u16,
    /// The outer IPv4 header with GRE as protocol; the SA of each packet turns it into ESP or UDP.
    pub ip: ipv4::Template,
    /// The 802.1Q TCI the port's NIC inserts on transmit (TX VLAN offload); the header is then untagged.
    pub tx_vlan: Option<u16>,
    /// The Ethernet header toward the front-door next hop, with the port's VLAN tag unless `tx_vlan`.
    l2: [u8; ethernet::TAGGED_HEADER_LEN],
    l2_len: u8,
}

impl Rewrite {
    /// The rewrite out of `port` (of MTU `port_mtu`) with the outer header `ip` behind `eth`, and the
    /// tag `tx_vlan` for the NIC to insert.
    pub fn new(port: PortId, port_mtu: u16, ip: ipv4::Template, eth: &ethernet::Repr, tx_vlan: Option<u16>) -> Rewrite {
        let mut l2 = [0; ethernet::TAGGED_HEADER_LEN];
        let len = eth.buffer_len();
        eth.emit(&mut ethernet::Packet::new_unchecked(&mut l2[..len]));
        Rewrite { port, port_mtu, ip, tx_vlan, l2, l2_len: len as u8 }
    }

    /// The Ethernet header bytes.
    #[inline]
    pub fn l2(&self) -> &[u8] {
        &self.l2[..usize::from(self.l2_len)]
    }
}

/// A TEIB entry as published: what the control plane set, and the resolved outer path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjacency {
    /// The entry.
    pub entry: TeibEntry,
    /// Its outer path, if complete.
    pub rewrite: Option<Rewrite>,
}

/// A key whose shard is cheap to compute and spreads typical keys (sequential overlay addresses).
pub trait ShardKey: Hash + Eq {
    /// Shard index, below [`SHARDS`].
    fn shard(&self) -> usize;
}

fn ip_shard(ip: &IpAddr) -> usize {
    match ip {
        IpAddr::V4(a) => usize::from(a.octets()[3]),
        IpAddr::V6(a) => usize::from(a.octets()[15]),
    }
}

impl ShardKey for (TunnelId, IpAddr) {
    fn shard(&self) -> usize {
        ip_shard(&self.1) ^ usize::from(self.0 .0 & 0xff)
    }
}

impl ShardKey for (PortId, IpAddr) {
    fn shard(&self) -> usize {
        ip_shard(&self.1) ^ usize::from(self.0 .0 & 0xff)
    }
}

/// A hash map keyed for the hot path: foldhash with a per-process random seed, several times cheaper
/// than std's SipHash on these small keys, and still keyed, so that addresses a peer chooses cannot be
/// aimed at one bucket chain.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A hash map cut into [`SHARDS`] copy-on-write shards: clone is 256 `Arc` clones, a write copies the
/// shard it touches if a published clone shares it.
#[derive(Debug, Clone)]
pub struct Sharded<K, V> {
    shards: Vec<Arc<FastMap<K, V>>>,
}

impl<K: ShardKey + Clone, V: Clone> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded { shards: (0..SHARDS).map(|_| Arc::new(FastMap::default())).collect() }
    }
}

impl<K: ShardKey + Clone, V: Clone> Sharded<K, V> {
    /// The value of `key`.
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.shards.get(key.shard())?.get(key)
    }

    /// Sets `key` to `value`; returns the old value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shards.get_mut(key.shard())?;
        Arc::make_mut(shard).insert(key, value)
    }

    /// Removes `key`; returns its value. Copies the shard only when the key is present.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let shard = self.shards.get_mut(key.shard())?;
        if !shard.contains_key(key) {
            return None;
        }
        Arc::make_mut(shard).remove(key)
    }

    /// Removes every entry for which `drop` is true; returns how many.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&K, &V) -> bool) -> usize {
        let mut removed = 0;
        for shard in &mut self.shards {
            if shard.iter().any(|(k, v)| drop(k, v)) {
                let map = Arc::make_mut(shard);
                let before = map.len();
                map.retain(|k, v| !drop(k, v));
                removed += before - map.len();
            }
        }
        removed
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.is_empty())
    }
}

/// Values per [`Chunked`] chunk.
const CHUNK: usize = 64;

/// A vector indexed by a dense id, cut into copy-on-write chunks of 64 values: clone copies the
/// chunk pointers, a write copies the one chunk it touches if a published clone shares it. A read is two
/// loads, the first from a pointer array small enough to stay in cache.
#[derive(Debug, Clone, Default)]
pub struct Chunked<T> {
    chunks: Vec<Arc<[T]>>,
}

impl<T: Clone + Default + PartialEq> Chunked<T> {
    /// The value at `index`.
    #[inline]
    pub fn get(&self, index: usize) -> Option<&T> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    /// Sets the value at `index`, growing the vector with default values up to it. Copies nothing when
    /// the value is already there.
    pub fn set(&mut self, index: usize, value: T) {
        while self.chunks.len() <= index / CHUNK {
            self.chunks.push((0..CHUNK).map(|_| T::default()).collect());
        }
        let Some(chunk) = self.chunks.get_mut(index / CHUNK) else { return };
        if chunk.get(index % CHUNK) == Some(&value) {
            return;
        }
        if Arc::get_mut(chunk).is_none() {
            *chunk = Arc::from(&chunk[..]);
        }
        if let Some(slot) = Arc::get_mut(chunk).and_then(|c| c.get_mut(index % CHUNK)) {
            *slot = value;
        }
    }
}

/// The TEIB of all tunnels: (tunnel, overlay address) → [`Adjacency`].
#[derive(Debug, Clone, Default)]
pub struct Teib {
    map: Sharded<(TunnelId, IpAddr), Adjacency>,
}

impl Teib {
    /// The entry for overlay peer `overlay` on `tunnel` with its rewrite (hot path).
    #[inline]
    pub fn get(&self, tunnel: TunnelId, overlay: IpAddr) -> Option<&Adjacency> {
        self.map.get(&(tunnel, overlay))
    }

    /// Adds or replaces an entry, without a rewrite until [`Teib::resolve`] gives it one; returns the old
    /// entry. The caller checks that the tunnel exists ([`crate::tables::TablesPublisher::set_teib`]
    /// does).
    pub fn insert(&mut self, tunnel: TunnelId, overlay: IpAddr, entry: TeibEntry) -> Option<TeibEntry> {
        self.map.insert((tunnel, overlay), Adjacency { entry, rewrite: None }).map(|a| a.entry)
    }

    /// Removes an entry; returns it.
    pub fn remove(&mut self, tunnel: TunnelId, overlay: IpAddr) -> Option<TeibEntry> {
        self.map.remove(&(tunnel, overlay)).map(|a| a.entry)
    }

    /// Removes every entry of `tunnel`; returns how many.
    pub fn remove_tunnel(&mut self, tunnel: TunnelId) -> usize {
        self.map.remove_where(|(t, _), _| *t == tunnel)
    }

    /// Sets the rewrite of the entries named in `keys` (of every entry when `keys` is `None`) to what
    /// `resolve` says; adds the keys whose rewrite changed to `changed`. A shard is copied only when one
    /// of its rewrites changes.
    pub fn resolve(
        &mut self,
        keys: Option<&[(TunnelId, IpAddr)]>,
        mut resolve: impl FnMut(TunnelId, &TeibEntry) -> Option<Rewrite>,
        changed: &mut Vec<(TunnelId, IpAddr)>,
    ) {
        let Some(keys) = keys else {
            for shard in &mut self.map.shards {
                let fresh: Vec<_> = shard
                    .iter()
                    .filter_map(|(k, a)| {
                        let rewrite = resolve(k.0, &a.entry);
                        (rewrite != a.rewrite).then_some((*k, rewrite))
                    })
                    .collect();
                if !fresh.is_empty() {
                    let map = Arc::make_mut(shard);
                    for (k, rewrite) in fresh {
                        if let Some(a) = map.get_mut(&k) {
                            a.rewrite = rewrite;
                            changed.push(k);
                        }
                    }
                }
            }
            return;
        };
        for key in keys {
            let Some(shard) = self.map.shards.get_mut(key.shard()) else { continue };
            let Some(a) = shard.get(key) else { continue };
            let rewrite = resolve(key.0, &a.entry);
            if rewrite != a.rewrite {
                if let Some(a) = Arc::make_mut(shard).get_mut(key) {
                    a.rewrite = rewrite;
                    changed.push(*key);
                }
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(nbma: &str) -> TeibEntry {
        TeibEntry { nbma: nbma.parse().unwrap(), sa_out: Some(SaIndex(7)), dynamic: true }
    }

    #[test]
    fn clone_is_a_snapshot_and_entries_are_per_tunnel() {
        let mut t = Teib::default();
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(t.insert(TunnelId(1), peer, entry("198.51.100.2")), None);
        let published = t.clone();
        assert_eq!(t.insert(TunnelId(1), peer, entry("203.0.113.9")), Some(entry("198.51.100.2")));
        t.insert(TunnelId(2), peer, entry("192.0.2.7"));
        assert_eq!(published.get(TunnelId(1), peer).map(|a| a.entry), Some(entry("198.51.100.2")));
        assert_eq!(published.get(TunnelId(2), peer), None);
        assert_eq!(t.get(TunnelId(1), peer).map(|a| a.entry), Some(entry("203.0.113.9")));
        assert_eq!(t.remove_tunnel(TunnelId(1)), 1);
        assert_eq!(t.get(TunnelId(1), peer), None);
        assert_eq!(t.len(), 1);
        assert_eq!(published.len(), 1);
    }

    #[test]
    fn holds_100k_peers_and_a_write_copies_one_shard() {
        let mut t = Teib::default();
        for i in 0..100_000u32 {
            let overlay = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let nbma = IpAddr::from(std::net::Ipv4Addr::from(0xc633_0000 + i));
            t.insert(TunnelId(1), overlay, TeibEntry { nbma, sa_out: None, dynamic: true });
        }
        let published = t.clone();
        t.remove(TunnelId(1), "10.0.0.5".parse().unwrap());
        let shared = t.map.shards.iter().zip(&published.map.shards).filter(|(a, b)| Arc::ptr_eq(a, b)).count();
        assert_eq!(shared, SHARDS - 1);
        assert_eq!(t.len(), 99_999);
        assert!(published.get(TunnelId(1), "10.0.0.5".parse().unwrap()).is_some());
        assert_eq!(
            t.get(TunnelId(1), "10.1.134.159".parse().unwrap()).map(|a| a.entry.nbma),
            Some("198.52.134.159".parse().unwrap())
        );
    }
}
