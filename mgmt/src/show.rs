//! `show dmvpn` and `show ip nhrp` as IOS prints them, from the daemon's status JSON
//! ([`crate::control::Control::status`]).
//!
//! Layer: management, presentation. Contract: total functions of the JSON (missing fields print as
//! blanks or zeros), so that `dmvpnctl` never fails on a daemon of another version.

use std::fmt::Write;

use serde_json::Value;

/// `hh:mm:ss`, or `1d02h` past a day, as IOS prints up/down times.
pub fn duration(secs: u64) -> String {
    if secs >= 86_400 {
        format!("{}d{:02}h", secs / 86_400, (secs % 86_400) / 3600)
    } else {
        format!("{:02}:{:02}:{:02}", secs / 3600, (secs % 3600) / 60, secs % 60)
    }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn list<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// `show dmvpn`.
pub fn dmvpn(status: &Value) -> String {
    let mut o = String::new();
    o.push_str("Legend: Attrb --> S - Static, D - Dynamic, I - Incomplete\n");
    o.push_str("        N - NATed, L - Local, X - No Socket\n");
    o.push_str("        T1 - Route Installed, T2 - Nexthop-override\n");
    o.push_str("        # Ent --> Number of NHRP entries with same NBMA peer\n");
    o.push_str("        UpDn Time --> Up or Down Time for a Tunnel\n");
    o.push_str("==========================================================================\n");
    for t in list(status, "tunnels") {
        let peers = list(t, "peers");
        let role = if s(t, "role") == "hub" { "Hub" } else { "Spoke" };
        let _ = writeln!(o, "\nInterface: {}, IPv4 NHRP Details", s(t, "name"));
        let _ = writeln!(o, "Type:{role}, NHRP Peers:{},\n", peers.len());
        o.push_str(" # Ent  Peer NBMA Addr Peer Tunnel Add State  UpDn Tm Attrb\n");
        o.push_str(" ----- --------------- --------------- ----- -------- -----\n");
        for p in peers {
            let updn = p.get("updn_s").and_then(Value::as_u64).map_or_else(|| "   never".to_string(), duration);
            let _ = writeln!(
                o,
                " {:>5} {:>15} {:>15} {:>5} {:>8} {:>5}",
                u(p, "entries"),
                s(p, "nbma"),
                s(p, "overlay"),
                s(p, "state"),
                updn,
                s(p, "attrs")
            );
        }
    }
    o
}

/// `show ip nhrp`.
pub fn ip_nhrp(status: &Value) -> String {
    let mut o = String::new();
    for t in list(status, "tunnels") {
        for e in list(t, "nhrp") {
            let prefix = s(e, "prefix");
            let via = e.get("via").and_then(Value::as_str).unwrap_or_else(|| prefix.split('/').next().unwrap_or(""));
            let _ = writeln!(o, "{prefix} via {via}");
            let expire = e
                .get("expires_s")
                .and_then(Value::as_u64)
                .map_or_else(|| "never expire".into(), |x| format!("expire {}", duration(x)));
            let _ = writeln!(o, "   {} created {}, {expire}", s(t, "name"), duration(u(e, "created_s")));
            let kind = match s(e, "kind") {
                "static" => "static",
                _ => "dynamic",
            };
            let mut flags: Vec<&str> = list(e, "flags").iter().filter_map(Value::as_str).collect();
            if s(e, "kind") == "registered" {
                flags.insert(0, "registered");
            }
            if e.get("via").and_then(Value::as_str).is_some() {
                flags.push("rib");
            }
            let _ = writeln!(o, "   Type: {kind}, Flags: {}", flags.join(" "));
            let _ = writeln!(o, "   NBMA address: {}", s(e, "nbma"));
            if s(e, "claimed_nbma") != s(e, "nbma") {
                let _ = writeln!(o, "    (Claimed NBMA address: {})", s(e, "claimed_nbma"));
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn show_dmvpn_has_the_ios_columns() {
        let st = json!({"tunnels": [{"name": "Tunnel1", "role": "hub", "peers": [
            {"entries": 1, "nbma": "203.0.113.10", "overlay": "10.0.0.11", "state": "UP", "updn_s": 62, "attrs": "D"},
            {"entries": 2, "nbma": "198.51.100.7", "overlay": "10.0.0.13", "state": "IKE", "updn_s": 90061, "attrs": "DN"},
        ]}]});
        let out = dmvpn(&st);
        assert!(out.contains("Interface: Tunnel1, IPv4 NHRP Details\nType:Hub, NHRP Peers:2,"), "{out}");
        assert!(out.contains("     1    203.0.113.10       10.0.0.11    UP 00:01:02     D\n"), "{out}");
        assert!(out.contains("     2    198.51.100.7       10.0.0.13   IKE    1d01h    DN\n"), "{out}");
    }

    #[test]
    fn show_ip_nhrp_prints_nat_and_times() {
        let st = json!({"tunnels": [{"name": "Tunnel1", "nhrp": [
            {"prefix": "10.0.0.13/32", "nbma": "198.51.100.7", "claimed_nbma": "192.168.1.13", "kind": "registered",
             "flags": ["nat"], "created_s": 5, "expires_s": 295},
        ]}]});
        let out = ip_nhrp(&st);
        assert_eq!(
            out,
            "10.0.0.13/32 via 10.0.0.13\n   Tunnel1 created 00:00:05, expire 00:04:55\n   Type: dynamic, Flags: registered nat\n   NBMA address: 198.51.100.7\n    (Claimed NBMA address: 192.168.1.13)\n"
        );
        assert_eq!(ip_nhrp(&json!({})), "");
        assert!(dmvpn(&json!({"tunnels": [{}]})).contains("NHRP Peers:0"));
    }
}
