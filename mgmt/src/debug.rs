//! Per-peer conditional debug (Cisco's `debug crypto condition peer` and `debug nhrp condition peer`):
//! the operator names a peer, by NBMA or overlay address, and what to trace of it (NHRP, IKE, ESP);
//! the control loop then records debug lines for that peer only (see [`crate::events`]).
//!
//! Layer: management. Contract: [`Conditions::any`] is one relaxed atomic load, so the control loop
//! pays a single branch per packet while no condition is set; [`Conditions::wants`] takes a read lock
//! only when some condition is. A condition set through the API is [`Condition::parse`]d from JSON with
//! errors that name the field.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::FieldError;

/// At most this many conditions at once (each packet is matched against all of them).
pub const MAX_CONDITIONS: usize = 64;

/// What of a peer to trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Facility {
    /// NHRP packets sent and received, and the NHRP state changes (entries, shortcuts, NHS).
    Nhrp,
    /// IKE messages sent and received (exchange, message id), IKE SA state changes and failures.
    Ike,
    /// ESP: SA pairs installed and deleted, SA lifetime events.
    Esp,
}

impl Facility {
    /// Every facility.
    pub const ALL: [Facility; 3] = [Facility::Nhrp, Facility::Ike, Facility::Esp];

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Facility::Nhrp => "nhrp",
            Facility::Ike => "ike",
            Facility::Esp => "esp",
        }
    }

    fn from_name(name: &str) -> Option<Facility> {
        Facility::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// Trace `what` of the peer at `peer` (its NBMA address or one of its overlay addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// The peer's NBMA or overlay address.
    pub peer: IpAddr,
    /// What to trace, sorted, without repeats.
    pub what: Vec<Facility>,
}

impl Condition {
    /// A condition from the API's JSON: `{"peer": ADDRESS, "what": ["nhrp", "ike", "esp"]}` (`what`
    /// left out means all three). Each problem names its field.
    pub fn parse(v: &Value) -> Result<Condition, Vec<FieldError>> {
        let mut errors = Vec::new();
        let err = |path: &str, message: String| FieldError { path: path.to_string(), message };
        let Some(obj) = v.as_object() else {
            return Err(vec![err("", "a condition is an object: {\"peer\": ADDRESS, \"what\": [...]}".into())]);
        };
        for key in obj.keys().filter(|k| *k != "peer" && *k != "what") {
            errors.push(err(key, "unknown field (a condition has peer and what)".into()));
        }
        let peer = match obj.get("peer") {
            None => {
                errors.push(err("peer", "missing: the peer's NBMA or overlay address".into()));
                None
            }
            Some(Value::String(s)) => match s.parse::<IpAddr>() {
                Ok(a) if !a.is_unspecified() && !a.is_multicast() => Some(a),
                Ok(a) => {
                    errors.push(err("peer", format!("{a} cannot be a peer's address")));
                    None
                }
                Err(_) => {
                    errors.push(err("peer", format!("{s:?} is not an IPv4 or IPv6 address")));
                    None
                }
            },
            Some(other) => {
                errors.push(err("peer", format!("expected an address as a string, got {other}")));
                None
            }
        };
        let mut what = Vec::new();
        match obj.get("what") {
            None => what.extend(Facility::ALL),
            Some(Value::Array(items)) if items.is_empty() => {
                errors.push(err("what", "empty: name at least one of nhrp, ike, esp".into()));
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item.as_str().and_then(Facility::from_name) {
                        Some(f) => what.push(f),
                        None => errors.push(err(&format!("what[{i}]"), format!("{item} is not one of nhrp, ike, esp"))),
                    }
                }
            }
            Some(other) => errors.push(err("what", format!("expected a list of nhrp, ike, esp, got {other}"))),
        }
        what.sort();
        what.dedup();
        match peer {
            Some(peer) if errors.is_empty() => Ok(Condition { peer, what }),
            _ => Err(errors),
        }
    }
}

/// The conditions in force, shared by the API (which sets them) and the control loop (which asks).
#[derive(Debug, Default)]
pub struct Conditions {
    active: AtomicBool,
    list: RwLock<Vec<Condition>>,
}

/// Why a condition was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at most {MAX_CONDITIONS} debug conditions at once; remove one first")]
pub struct TooMany;

impl Conditions {
    /// Whether any condition is set: the control loop's one branch while none is.
    #[inline]
    pub fn any(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether `facility` is traced for the peer that `is_peer` recognises by address (its NBMA
    /// address, or an overlay address that maps to it).
    pub fn wants(&self, facility: Facility, is_peer: impl Fn(IpAddr) -> bool) -> bool {
        if !self.any() {
            return false;
        }
        let list = self.list.read().unwrap_or_else(|p| p.into_inner());
        list.iter().any(|c| c.what.contains(&facility) && is_peer(c.peer))
    }

    /// Sets `c`, replacing the condition on the same peer.
    pub fn set(&self, c: Condition) -> Result<(), TooMany> {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let full = list.len() == MAX_CONDITIONS;
        match list.iter_mut().find(|x| x.peer == c.peer) {
            Some(x) => *x = c,
            None if full => return Err(TooMany),
            None => list.push(c),
        }
        self.active.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Removes the condition on `peer`; whether there was one.
    pub fn remove(&self, peer: IpAddr) -> bool {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let before = list.len();
        list.retain(|c| c.peer != peer);
        self.active.store(!list.is_empty(), Ordering::Relaxed);
        list.len() != before
    }

    /// Removes every condition (`undebug all`); how many there were.
    pub fn clear(&self) -> usize {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let n = list.len();
        list.clear();
        self.active.store(false, Ordering::Relaxed);
        n
    }

    /// The conditions, in the order they were set.
    pub fn list(&self) -> Vec<Condition> {
        self.list.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_condition_wants_nothing() {
        let c = Conditions::default();
        assert!(!c.any());
        assert!(!c.wants(Facility::Nhrp, |_| true));
    }

    #[test]
    fn a_condition_selects_its_peer_by_any_of_its_addresses_and_only_what_it_names() {
        let c = Conditions::default();
        c.set(Condition { peer: a("10.0.0.11"), what: vec![Facility::Nhrp, Facility::Ike] }).unwrap();
        assert!(c.any());
        // Known by NBMA and overlay address: the overlay address matches.
        let s1 = |x: IpAddr| x == a("203.0.113.10") || x == a("10.0.0.11");
        let s2 = |x: IpAddr| x == a("198.51.100.10") || x == a("10.0.0.12");
        assert!(c.wants(Facility::Nhrp, s1));
        assert!(c.wants(Facility::Ike, s1));
        assert!(!c.wants(Facility::Esp, s1), "esp was not asked for");
        assert!(!c.wants(Facility::Nhrp, s2), "another spoke");
        // Replacing the condition on the same peer, then removing it, turns the fast path back off.
        c.set(Condition { peer: a("10.0.0.11"), what: vec![Facility::Esp] }).unwrap();
        assert_eq!(c.list().len(), 1);
        assert!(!c.wants(Facility::Nhrp, s1));
        assert!(c.wants(Facility::Esp, s1));
        assert!(!c.remove(a("10.0.0.12")));
        assert!(c.remove(a("10.0.0.11")));
        assert!(!c.any());
    }

    #[test]
    fn conditions_are_bounded() {
        let c = Conditions::default();
        for i in 0..MAX_CONDITIONS {
            c.set(Condition { peer: IpAddr::from([10, 1, 0, i as u8]), what: vec![Facility::Nhrp] }).unwrap();
        }
        assert_eq!(c.set(Condition { peer: a("10.2.0.1"), what: vec![Facility::Nhrp] }), Err(TooMany));
        // Replacing one is fine.
        c.set(Condition { peer: a("10.1.0.1"), what: vec![Facility::Ike] }).unwrap();
        assert_eq!(c.clear(), MAX_CONDITIONS);
        assert!(!c.any());
    }

    #[test]
    fn parse_names_the_field_that_is_wrong() {
        let ok = Condition::parse(&json!({"peer": "203.0.113.10", "what": ["ike", "nhrp", "ike"]})).unwrap();
        assert_eq!(ok, Condition { peer: a("203.0.113.10"), what: vec![Facility::Nhrp, Facility::Ike] });
        assert_eq!(Condition::parse(&json!({"peer": "2001:db8::1"})).unwrap().what, Facility::ALL.to_vec());
        let paths = |v: Value| Condition::parse(&v).unwrap_err().into_iter().map(|e| e.path).collect::<Vec<_>>();
        assert_eq!(paths(json!({"peer": "10.0.0.300"})), ["peer"]);
        assert_eq!(paths(json!({"peer": "0.0.0.0"})), ["peer"]);
        assert_eq!(paths(json!({"peer": 7})), ["peer"]);
        assert_eq!(paths(json!({"what": ["nhrp"]})), ["peer"]);
        assert_eq!(paths(json!({"peer": "10.0.0.11", "what": ["nhrp", "gre"]})), ["what[1]"]);
        assert_eq!(paths(json!({"peer": "10.0.0.11", "what": []})), ["what"]);
        assert_eq!(paths(json!({"peer": "10.0.0.11", "what": "ike"})), ["what"]);
        assert_eq!(paths(json!({"peer": "10.0.0.11", "vrf": 1})), ["vrf"]);
        assert_eq!(paths(json!([1])), [""]);
    }
}
