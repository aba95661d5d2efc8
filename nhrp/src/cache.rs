//! The NHRP cache (RFC 2332 §5.2.3, §6.2): protocol address → NBMA address bindings, one map keyed by
//! (tunnel, protocol address), with the times and flags that `show ip nhrp` prints.
//!
//! Layer: engine state. Entries are compact (about 80 bytes): addresses are `IpAddr` values, times are
//! [`Time`] (milliseconds), flags one byte. Prefix entries (shortcuts to a spoke's networks, §5.2.2's
//! prefix length) are keyed by their masked network address; [`Cache::covering`] probes the prefix
//! lengths in use, longest first.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::collections::{BTreeSet, HashMap};

/// A point in time: milliseconds since an epoch the caller chooses. The engine reads no clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub u64);

impl Time {
    /// Never (static entries).
    pub const NEVER: Time = Time(u64::MAX);

    /// `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Time {
        Time(secs.saturating_mul(1000))
    }

    /// `self` plus `ms` milliseconds (saturating).
    pub const fn plus_millis(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }

    /// `self` plus `secs` seconds (saturating).
    pub const fn plus_secs(self, secs: u64) -> Time {
        self.plus_millis(secs.saturating_mul(1000))
    }

    /// Whole seconds from `earlier` to `self` (0 if `earlier` is later).
    pub const fn secs_since(self, earlier: Time) -> u64 {
        self.0.saturating_sub(earlier.0) / 1000
    }
}

/// An mGRE tunnel interface, as the daemon numbers them (the dataplane's `TunnelId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelId(pub u16);

/// Where an entry came from (the type column of `show ip nhrp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Configured (`ip nhrp map`); never expires, never overwritten by a registration.
    Static,
    /// Learned from a Registration Request (§5.2.3): a spoke registered with us (NHS).
    Registered,
    /// Learned from a Resolution Reply or Request (§5.2.2): a shortcut peer or the requester.
    Resolved,
}

/// Entry flags (`show ip nhrp` prints them by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryFlags(pub u8);

impl EntryFlags {
    /// Registered with the unique bit (§5.2.3): another NBMA address may not replace it.
    pub const UNIQUE: u8 = 0x01;
    /// The NBMA address seen on the wire differs from the one claimed: the peer is behind NAT.
    pub const NAT: u8 = 0x02;
    /// The peer is a router (the Q bit).
    pub const ROUTER: u8 = 0x04;
    /// Traffic used the entry since the last refresh (a shortcut is refreshed only if used).
    pub const USED: u8 = 0x08;
    /// A refresh Resolution Request is outstanding.
    pub const REFRESHING: u8 = 0x10;
    /// The binding came from its owner or its NHS (the A bit).
    pub const AUTHORITATIVE: u8 = 0x20;

    /// Whether `bit` is set.
    pub const fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// One binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The NBMA address packets are sent to: the one seen on the wire (after NAT).
    pub nbma: IpAddr,
    /// The NBMA address the peer claimed in the packet (before NAT).
    pub claimed_nbma: IpAddr,
    /// When the binding to this NBMA address was made (`show ip nhrp` "created").
    pub created: Time,
    /// When it expires unless refreshed; [`Time::NEVER`] for static entries.
    pub expires: Time,
    /// The time of the one timer the engine keeps for this entry.
    pub(crate) armed: Time,
    /// Holding time granted, seconds.
    pub holding_time: u16,
    /// MTU the peer announced, 0 if none.
    pub mtu: u16,
    /// Prefix length the entry covers (host length for a single address).
    pub prefix_len: u8,
    /// Where it came from.
    pub kind: EntryKind,
    /// Flags.
    pub flags: EntryFlags,
}

/// `addr` with all but the first `len` bits cleared.
pub fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// Host prefix length of an address family.
pub fn host_len(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The cache: entries keyed by (tunnel, masked protocol address). The hash is keyed with the engine's
/// injected seed: deterministic for a given seed, not aimable by peers that do not know it.
#[derive(Debug)]
pub struct Cache {
    map: FastMap<(TunnelId, IpAddr), Entry>,
    /// Shorter-than-host prefix lengths in use, per tunnel, for [`Cache::covering`].
    prefix_lens: FastMap<TunnelId, BTreeSet<u8>>,
}

impl Cache {
    pub(crate) fn new(seed: u64) -> Cache {
        let h = foldhash::fast::FixedState::with_seed(seed);
        Cache { map: HashMap::with_hasher(h.clone()), prefix_lens: HashMap::with_hasher(h) }
    }

    /// The entry whose key is exactly (tunnel, addr).
    pub fn get(&self, tunnel: TunnelId, addr: &IpAddr) -> Option<&Entry> {
        self.map.get(&(tunnel, *addr))
    }

    pub(crate) fn get_mut(&mut self, tunnel: TunnelId, addr: &IpAddr) -> Option<&mut Entry> {
        self.map.get_mut(&(tunnel, *addr))
    }

    /// The most specific entry covering `addr`: the host entry, else the longest prefix entry.
    pub fn covering(&self, tunnel: TunnelId, addr: &IpAddr) -> Option<(IpAddr, &Entry)> {
        if let Some(e) = self.get(tunnel, addr) {
            return Some((*addr, e));
        }
        let lens = self.prefix_lens.get(&tunnel)?;
        lens.iter().rev().find_map(|&l| {
            let k = mask(*addr, l);
            self.get(tunnel, &k).filter(|e| e.prefix_len == l).map(|e| (k, e))
        })
    }

    pub(crate) fn insert(&mut self, tunnel: TunnelId, key: IpAddr, e: Entry) -> Option<Entry> {
        if e.prefix_len < host_len(&key) {
            self.prefix_lens.entry(tunnel).or_default().insert(e.prefix_len);
        }
        self.map.insert((tunnel, key), e)
    }

    pub(crate) fn remove(&mut self, tunnel: TunnelId, key: &IpAddr) -> Option<Entry> {
        self.map.remove(&(tunnel, *key))
    }

    /// Entries of one tunnel, in no particular order (`show ip nhrp` sorts them).
    pub fn iter(&self, tunnel: TunnelId) -> impl Iterator<Item = (IpAddr, &Entry)> + '_ {
        self.map.iter().filter(move |((t, _), _)| *t == tunnel).map(|((_, a), e)| (*a, e))
    }

    /// Number of entries over all tunnels.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(crate) fn keys_of(&self, tunnel: TunnelId) -> Vec<IpAddr> {
        self.iter(tunnel).map(|(a, _)| a).collect()
    }

    pub(crate) fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }
}
