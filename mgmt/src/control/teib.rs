//! The TEIB entries the control loop has set, indexed by NBMA address as well as by overlay address.
//!
//! Layer: management (no I/O; the data plane's copy is published by the caller). Contract: the map
//! (tunnel, overlay) → (NBMA, static) and its reverse index NBMA → keys are changed only together,
//! through [`Teib::insert`] and [`Teib::remove`], so that they never drift apart. The index makes
//! the per-peer questions ([`SaEventKind::Used`](dataplane::sa::SaEventKind::Used) at up to one event
//! per SA every 5 s, a peer going down, an SA installed or withdrawn) cost the entries of that one
//! NBMA address instead of a scan of every peer's.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use dataplane::ids::TunnelId;

/// A TEIB key: the tunnel and the overlay address.
pub(super) type TeibKey = (TunnelId, IpAddr);

/// TEIB entries we set: (tunnel, overlay) → (NBMA, static), with the keys of each NBMA address.
#[derive(Debug, Default)]
pub(super) struct Teib {
    entries: HashMap<TeibKey, (IpAddr, bool)>,
    /// NBMA → the keys of `entries` whose NBMA it is. Holds no empty set.
    by_nbma: HashMap<IpAddr, HashSet<TeibKey>>,
}

impl Teib {
    /// The entry of `key`: (NBMA, static).
    pub(super) fn get(&self, key: &TeibKey) -> Option<&(IpAddr, bool)> {
        self.entries.get(key)
    }

    /// Sets `key` to (`nbma`, `stat`); returns the entry it replaced. A replacement with another
    /// NBMA address moves the key in the index.
    pub(super) fn insert(&mut self, key: TeibKey, nbma: IpAddr, stat: bool) -> Option<(IpAddr, bool)> {
        let old = self.entries.insert(key, (nbma, stat));
        match old {
            Some((n, _)) if n == nbma => {}
            Some((n, _)) => {
                self.unindex(n, key);
                self.by_nbma.entry(nbma).or_default().insert(key);
            }
            None => {
                self.by_nbma.entry(nbma).or_default().insert(key);
            }
        }
        old
    }

    /// Removes `key`; returns its entry.
    pub(super) fn remove(&mut self, key: &TeibKey) -> Option<(IpAddr, bool)> {
        let old = self.entries.remove(key)?;
        self.unindex(old.0, *key);
        Some(old)
    }

    fn unindex(&mut self, nbma: IpAddr, key: TeibKey) {
        if let Entry::Occupied(mut keys) = self.by_nbma.entry(nbma) {
            let found = keys.get_mut().remove(&key);
            debug_assert!(found, "TEIB index: {key:?} missing under {nbma}");
            if keys.get().is_empty() {
                keys.remove();
            }
        } else {
            debug_assert!(false, "TEIB index: no keys under {nbma} (for {key:?})");
        }
    }

    /// Whether any entry points at `nbma`.
    pub(super) fn has_nbma(&self, nbma: IpAddr) -> bool {
        self.by_nbma.contains_key(&nbma)
    }

    /// The entries that point at `nbma`: (key, static), in no particular order.
    pub(super) fn of_nbma(&self, nbma: IpAddr) -> impl Iterator<Item = (TeibKey, bool)> + '_ {
        self.by_nbma.get(&nbma).into_iter().flatten().map(|k| (*k, self.entries.get(k).is_some_and(|(_, s)| *s)))
    }

    /// The keys of the dynamic (not static) entries that point at `nbma`.
    pub(super) fn dynamic_of(&self, nbma: IpAddr) -> Vec<TeibKey> {
        self.of_nbma(nbma).filter(|(_, stat)| !stat).map(|(k, _)| k).collect()
    }

    /// Number of entries.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Panics unless the index holds exactly the keys of the map, each under its entry's NBMA address,
    /// and no empty set.
    #[cfg(test)]
    pub(super) fn assert_consistent(&self) {
        let mut indexed = 0;
        for (nbma, keys) in &self.by_nbma {
            assert!(!keys.is_empty(), "TEIB index: empty set under {nbma}");
            for k in keys {
                assert_eq!(self.entries.get(k).map(|(n, _)| n), Some(nbma), "TEIB index: {k:?} under {nbma}");
            }
            indexed += keys.len();
        }
        assert_eq!(indexed, self.entries.len(), "TEIB index: {indexed} keys indexed, {} entries", self.entries.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_index_follows_inserts_replacements_and_removals() {
        let mut t = Teib::default();
        let (k1, k2, k3) =
            ((TunnelId(1), a("10.0.0.11")), (TunnelId(1), a("10.0.0.12")), (TunnelId(2), a("10.0.1.11")));
        let (n1, n2) = (a("203.0.113.10"), a("203.0.113.20"));
        assert_eq!(t.insert(k1, n1, false), None);
        assert_eq!(t.insert(k2, n2, false), None);
        assert_eq!(t.insert(k3, n1, true), None);
        t.assert_consistent();
        let mut of1: Vec<_> = t.of_nbma(n1).collect();
        of1.sort();
        assert_eq!(of1, [(k1, false), (k3, true)]);
        assert_eq!(t.dynamic_of(n1), [k1]);

        // The same NBMA address again (static now): the key stays where it is.
        assert_eq!(t.insert(k1, n1, true), Some((n1, false)));
        t.assert_consistent();
        assert!(t.dynamic_of(n1).is_empty());

        // Another NBMA address: the key moves.
        assert_eq!(t.insert(k1, n2, false), Some((n1, true)));
        t.assert_consistent();
        assert_eq!(t.of_nbma(n1).collect::<Vec<_>>(), [(k3, true)]);
        let mut dyn2 = t.dynamic_of(n2);
        dyn2.sort();
        assert_eq!(dyn2, [k1, k2]);

        // Removals, the last of an NBMA address drops it from the index.
        assert_eq!(t.remove(&k3), Some((n1, true)));
        assert_eq!(t.remove(&k3), None);
        t.assert_consistent();
        assert!(!t.has_nbma(n1) && t.of_nbma(n1).next().is_none());
        assert!(t.has_nbma(n2));
        t.remove(&k1);
        t.remove(&k2);
        t.assert_consistent();
        assert!(!t.has_nbma(n2));
        assert_eq!(t.len(), 0);
    }
}
