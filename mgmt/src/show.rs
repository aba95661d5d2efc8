//! The operational views, from the daemon's status JSON ([`crate::control::Control::status`] with the
//! data plane's counters under `dataplane`): [`view`] cuts the JSON the REST API serves for each
//! [`View`], and the text functions print a view as IOS prints the `show` command of the same name
//! (`dmvpnctl` and the API read the same status, so they never disagree).
//!
//! Layer: management, presentation. Contract: total functions of the JSON (missing fields print as
//! blanks or zeros), so that `dmvpnctl` never fails on a daemon of another version.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Map, Value};

use crate::api::View;

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

/// The layer a data-plane drop reason belongs to: `nbma` (the underlay: Ethernet, ARP, IP, UDP, ICMP to
/// the box), `ipsec` (ESP and NAT-T), `gre` (GRE and the TEIB), `overlay` (routing of the tunnelled
/// traffic) or `system` (rings, buffers, queues) — the troubleshooting layers of the seed Q&A.
pub fn drop_layer(reason: &str) -> &'static str {
    let starts = |p: &[&str]| p.iter().any(|x| reason.starts_with(x));
    if starts(&["esp_", "natt_", "no_outbound_sa"]) {
        "ipsec"
    } else if starts(&["gre_", "teib_"]) {
        "gre"
    } else if starts(&["no_route", "route_drop", "ttl_expired", "mtu_exceeded"]) {
        "overlay"
    } else if starts(&["punt_ring", "tx_full", "no_buffer", "handoff_ring"]) {
        "system"
    } else {
        "nbma"
    }
}

/// The layers in the order they are printed.
pub const LAYERS: [&str; 5] = ["nbma", "ipsec", "gre", "overlay", "system"];

fn sum_workers(status: &Value, k: &str) -> u64 {
    list(&status["dataplane"], "workers").iter().map(|w| u(w, k)).sum()
}

/// Drops summed over the workers, by reason.
pub fn drops(status: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for w in list(&status["dataplane"], "workers") {
        if let Some(d) = w.get("drops").and_then(Value::as_object) {
            for (k, v) in d {
                *out.entry(k.clone()).or_insert(0) += v.as_u64().unwrap_or(0);
            }
        }
    }
    out
}

fn pick(v: &Value, keys: &[&str]) -> Value {
    let mut m = Map::new();
    for k in keys {
        m.insert((*k).to_string(), v.get(*k).cloned().unwrap_or(Value::Null));
    }
    Value::Object(m)
}

/// The JSON of one view, cut from the status.
pub fn view(status: &Value, view: View) -> Value {
    let tunnels =
        |keys: &[&str]| -> Value { list(status, "tunnels").iter().map(|t| pick(t, keys)).collect::<Vec<_>>().into() };
    match view {
        View::Dmvpn => json!({"hostname": status["hostname"], "draining": status["draining"],
                              "tunnels": tunnels(&["name", "role", "address", "nbma", "protected", "peers"])}),
        View::Nhrp => json!({"tunnels": tunnels(&["name", "nhrp"])}),
        View::NhrpNhs => json!({"tunnels": tunnels(&["name", "nhs"])}),
        View::Ikev2Sa => json!({"sas": status["ike_sas"], "counters": status["counters"]["ike"]}),
        View::IpsecSa => {
            let d = drops(status);
            let esp: BTreeMap<&String, &u64> = d.iter().filter(|(k, _)| drop_layer(k) == "ipsec").collect();
            json!({"sa_pairs": status["sa_pairs"],
                   "totals": {"esp_encrypted": sum_workers(status, "esp_encrypted"),
                              "esp_decrypted": sum_workers(status, "esp_decrypted"),
                              "replay_drops": d.get("esp_replay").copied().unwrap_or(0),
                              "auth_failures": d.get("esp_auth_failed").copied().unwrap_or(0),
                              "drops": esp}})
        }
        View::Interfaces => {
            let ports = list(&status["dataplane"], "ports");
            let mut out: Vec<Value> = list(status, "interfaces")
                .iter()
                .map(|f| {
                    let mut f = f.clone();
                    let p = f["port_id"].as_u64().and_then(|i| ports.get(i as usize)).cloned().unwrap_or(json!({}));
                    f["status"] =
                        if p.is_null() || p.as_object().is_some_and(Map::is_empty) { "down" } else { "up" }.into();
                    f["counters"] = json!({
                        "rx_packets": u(&p, "rx_packets"), "rx_bytes": u(&p, "rx_bytes"),
                        "tx_packets": u(&p, "tx_packets"), "tx_bytes": u(&p, "tx_bytes"),
                        "tx_refused": u(&p, "tx_refused"), "imissed": u(&p["device"], "imissed"),
                        "ierrors": u(&p["device"], "ierrors"), "oerrors": u(&p["device"], "oerrors"),
                        "rx_nombuf": u(&p["device"], "rx_nombuf"),
                    });
                    f
                })
                .collect();
            for t in list(status, "tunnels") {
                out.push(json!({"name": t["name"], "tunnel": true, "addresses": [t["address"]], "status": "up",
                                "source": t["nbma"], "protected": t["protected"]}));
            }
            json!({"interfaces": out})
        }
        View::Routes => json!({"vrfs": status["routes"]}),
        View::Counters => counters(status),
    }
}

/// Counters per layer with drops by reason.
fn counters(status: &Value) -> Value {
    let mut layers: BTreeMap<&str, Map<String, Value>> = LAYERS.iter().map(|l| (*l, Map::new())).collect();
    let c = &status["counters"];
    let ports = list(&status["dataplane"], "ports");
    let dev = |k: &str| ports.iter().map(|p| u(&p["device"], k)).sum::<u64>();
    let set = |layers: &mut BTreeMap<&str, Map<String, Value>>, l: &str, k: &str, v: Value| {
        if let Some(m) = layers.get_mut(l) {
            m.insert(k.to_string(), v);
        }
    };
    for k in ["rx_packets", "rx_bytes", "tx_packets", "tx_bytes"] {
        set(&mut layers, "nbma", k, sum_workers(status, k).into());
    }
    for k in ["imissed", "ierrors", "oerrors", "rx_nombuf"] {
        set(&mut layers, "nbma", k, dev(k).into());
    }
    set(&mut layers, "nbma", "arp_requests_sent", c["control"]["arp_requests"].clone());
    set(&mut layers, "ipsec", "esp_encrypted", sum_workers(status, "esp_encrypted").into());
    set(&mut layers, "ipsec", "esp_decrypted", sum_workers(status, "esp_decrypted").into());
    set(&mut layers, "ipsec", "sa_pairs", list(status, "sa_pairs").len().into());
    let up = list(status, "ike_sas").iter().filter(|s| s["state"] == "Established").count();
    set(&mut layers, "ipsec", "ike_sas_established", up.into());
    set(&mut layers, "ipsec", "sa_pairs_installed", c["control"]["sa_pairs_installed"].clone());
    set(&mut layers, "ipsec", "sa_pairs_deleted", c["control"]["sa_pairs_deleted"].clone());
    set(&mut layers, "ipsec", "ike", c["ike"].clone());
    set(&mut layers, "gre", "nhrp", c["nhrp"].clone());
    set(&mut layers, "gre", "nhrp_unprotected_dropped", c["control"]["nhrp_unprotected_dropped"].clone());
    set(&mut layers, "gre", "nhrp_waiting_dropped", c["control"]["nhrp_waiting_dropped"].clone());
    set(&mut layers, "overlay", "icmp_sent", sum_workers(status, "icmp_sent").into());
    let shortcuts: usize =
        list(status, "routes").iter().map(|v| list(v, "routes").iter().filter(|r| r["source"] == "nhrp").count()).sum();
    set(&mut layers, "overlay", "nhrp_routes", shortcuts.into());
    for k in ["punted", "handed_off"] {
        set(&mut layers, "system", k, sum_workers(status, k).into());
    }
    set(&mut layers, "system", "mbufs_in_use", status["dataplane"]["mempool"]["in_use"].clone());
    set(&mut layers, "system", "control_errors", c["control"]["errors"].clone());
    let mut by_layer: BTreeMap<&str, Map<String, Value>> = LAYERS.iter().map(|l| (*l, Map::new())).collect();
    for (reason, n) in drops(status) {
        if let Some(m) = by_layer.get_mut(drop_layer(&reason)) {
            m.insert(reason, n.into());
        }
    }
    let mut out = Map::new();
    for l in LAYERS {
        let mut m = layers.remove(l).unwrap_or_default();
        m.insert("drops".into(), Value::Object(by_layer.remove(l).unwrap_or_default()));
        out.insert(l.to_string(), Value::Object(m));
    }
    json!({"layers": out})
}

/// `show ip nhrp nhs detail`.
pub fn nhrp_nhs_detail(v: &Value) -> String {
    let mut o = String::from("Legend: E=Expecting replies, R=Responding, W=Waiting, D=Dynamic\n");
    for t in list(v, "tunnels") {
        let _ = writeln!(o, "{}:", s(t, "name"));
        for n in list(t, "nhs") {
            let flags = match s(n, "state") {
                "up" => "RE",
                "probing" | "registering" => "E",
                _ => "W",
            };
            let ago = n
                .get("last_reply_s")
                .and_then(Value::as_u64)
                .map_or_else(|| "never".to_string(), |x| format!("{} ago", duration(x)));
            let _ = writeln!(
                o,
                "{} {:<2} NBMA Address: {} priority = {} cluster = {}  req-sent {}  req-failed {}  repl-recv {} ({ago})",
                s(n, "address"),
                flags,
                s(n, "nbma"),
                u(n, "priority"),
                u(n, "cluster"),
                u(n, "requests"),
                u(n, "failures"),
                u(n, "replies"),
            );
        }
    }
    o.push_str("\nPending Registration Requests: see req-sent minus repl-recv per NHS\n");
    o
}

/// `show crypto ikev2 sa`.
pub fn crypto_ikev2_sa(v: &Value) -> String {
    let mut o = String::from(" IPv4 Crypto IKEv2  SA\n\n");
    o.push_str("Tunnel-id Local                 Remote                fvrf/ivrf            Status\n");
    for (i, sa) in list(v, "sas").iter().enumerate() {
        let status = match s(sa, "state") {
            "Established" => "READY",
            "Rekeyed" => "DELETE",
            _ => "IN-NEG",
        };
        let _ = writeln!(o, "{:<9} {:<21} {:<21} {:<20} {status}", i + 1, s(sa, "local"), s(sa, "remote"), "none/none");
        let _ = writeln!(
            o,
            "      Encr: {}, PRF: {}, DH Grp: {}, Auth sign: PSK, Auth verify: PSK",
            s(sa, "encryption"),
            s(sa, "prf"),
            s(sa, "dh_group")
        );
        let life = sa.get("lifetime_left_s").and_then(Value::as_u64).map_or("-".to_string(), |x| x.to_string());
        let _ = writeln!(o, "      Life/Remaining Time: {life} sec, rekeys {}", u(sa, "rekeys"));
        let _ = writeln!(
            o,
            "      Local spi: {}  Remote spi: {}  Peer id: {}  Child sa: {}\n",
            if sa["initiator"] == true { s(sa, "spi_i") } else { s(sa, "spi_r") },
            if sa["initiator"] == true { s(sa, "spi_r") } else { s(sa, "spi_i") },
            s(sa, "peer_id"),
            list(sa, "children").len()
        );
    }
    o
}

/// `show crypto ipsec sa`.
pub fn crypto_ipsec_sa(v: &Value) -> String {
    let mut o = String::new();
    for p in list(v, "sa_pairs") {
        let remote = s(p, "remote");
        let (addr, port) = remote.rsplit_once(':').unwrap_or((remote, ""));
        let _ = writeln!(o, "interface: {}", s(p, "tunnel"));
        let _ = writeln!(o, "   current_peer {addr} port {port}");
        let _ = writeln!(o, "     remote crypto endpt.: {addr}, UDP encap: {}", p["udp_encap"] == true);
        let life = p.get("lifetime_left_s").and_then(Value::as_u64).map_or("-".to_string(), |x| x.to_string());
        let (i, out) = (&p["inbound"], &p["outbound"]);
        let _ = writeln!(
            o,
            "    #pkts encaps: {}, #pkts encrypt: {}, #bytes: {}",
            u(out, "packets"),
            u(out, "packets"),
            u(out, "bytes")
        );
        let _ = writeln!(
            o,
            "    #pkts decaps: {}, #pkts decrypt: {}, #bytes: {}",
            u(i, "packets"),
            u(i, "packets"),
            u(i, "bytes")
        );
        let _ = writeln!(
            o,
            "    #pkts replay failed: {}, #pkts verify failed: {}",
            u(i, "replay_drops"),
            u(i, "auth_failures")
        );
        for (dir, spi) in [("inbound", "in_spi"), ("outbound", "out_spi")] {
            let _ = writeln!(o, "     {dir} esp sas:");
            let _ = writeln!(o, "      spi: 0x{}", s(p, spi).to_uppercase());
            let _ =
                writeln!(o, "        transform: esp {} , in use settings ={{{}, }}", s(p, "encryption"), s(p, "mode"));
            let _ = writeln!(o, "        sa timing: remaining key lifetime (sec): ({life})");
        }
        o.push('\n');
    }
    let t = &v["totals"];
    let _ = writeln!(
        o,
        "Box totals: #pkts encrypt: {}, #pkts decrypt: {}, #replay drops: {}, #auth failures: {}",
        u(t, "esp_encrypted"),
        u(t, "esp_decrypted"),
        u(t, "replay_drops"),
        u(t, "auth_failures")
    );
    o
}

/// `show ip interface brief`, with packet counters.
pub fn interfaces(v: &Value) -> String {
    let mut o = String::from(
        "Interface                  IP-Address      OK? Method Status                Protocol  Input pkts Output pkts\n",
    );
    for f in list(v, "interfaces") {
        let addr = list(f, "addresses").first().and_then(Value::as_str).unwrap_or("unassigned");
        let addr = addr.split('/').next().unwrap_or(addr);
        let c = &f["counters"];
        let _ = writeln!(
            o,
            "{:<26} {:<15} YES manual {:<21} {:<8} {:>11} {:>11}",
            s(f, "name"),
            addr,
            s(f, "status"),
            s(f, "status"),
            if f["tunnel"] == true { "-".to_string() } else { u(c, "rx_packets").to_string() },
            if f["tunnel"] == true { "-".to_string() } else { u(c, "tx_packets").to_string() },
        );
    }
    o
}

/// `show ip route [vrf NAME]` (`vrf: None`: the global table).
pub fn ip_route(v: &Value, vrf: Option<&str>) -> String {
    let mut o = String::from("Codes: C - connected, S - static, H - NHRP, * - candidate default\n");
    let want = vrf.unwrap_or("global");
    let Some(table) = list(v, "vrfs").iter().find(|t| s(t, "vrf") == want) else {
        let _ = writeln!(o, "\n% IP routing table {want} does not exist");
        return o;
    };
    if vrf.is_some() {
        let _ = writeln!(o, "\nRouting Table: {want}");
    }
    let routes = list(table, "routes");
    let default = routes.iter().find(|r| s(r, "prefix") == "0.0.0.0/0");
    match default.and_then(|r| r["next_hop"]["via"].as_str()) {
        Some(gw) => {
            let _ = writeln!(o, "Gateway of last resort is {gw} to network 0.0.0.0\n");
        }
        None => o.push_str("Gateway of last resort is not set\n\n"),
    }
    for r in routes {
        let prefix = s(r, "prefix");
        let star = if prefix == "0.0.0.0/0" { "*" } else { " " };
        let nh = &r["next_hop"];
        let line = match s(r, "source") {
            "connected" => format!("C{star}    {prefix} is directly connected, {}", s(r, "interface")),
            "nhrp" => format!("H{star}    {prefix} [250/255] via {}, {}", s(nh, "via"), s(nh, "interface")),
            _ if nh["discard"] == true => format!("S{star}    {prefix} is directly connected, Null0"),
            _ => match (nh["via"].as_str(), nh["interface"].as_str()) {
                (Some(via), Some(i)) => format!("S{star}    {prefix} [1/0] via {via}, {i}"),
                (Some(via), None) => format!("S{star}    {prefix} [1/0] via {via}"),
                (None, i) => format!("S{star}    {prefix} is directly connected, {}", i.unwrap_or("")),
            },
        };
        o.push_str(&line);
        o.push('\n');
    }
    o
}

/// Counters per layer, drops by reason (non-zero ones; `all` prints zeros too).
pub fn counters_text(v: &Value, all: bool) -> String {
    let mut o = String::new();
    let title = |l: &str| match l {
        "nbma" => "NBMA (underlay)",
        "ipsec" => "IPsec (IKE, ESP)",
        "gre" => "GRE and NHRP",
        "overlay" => "Overlay routing",
        _ => "System",
    };
    for l in LAYERS {
        let layer = &v["layers"][l];
        let _ = writeln!(o, "{}", title(l));
        let Some(m) = layer.as_object() else { continue };
        for (k, x) in m {
            match x {
                Value::Object(inner) if k != "drops" => {
                    for (k2, y) in inner {
                        if let Value::Object(byop) = y {
                            for (k3, z) in byop {
                                if all || z.as_u64() != Some(0) {
                                    let _ = writeln!(o, "  {:<44} {z}", format!("{k}.{k2}.{k3}"));
                                }
                            }
                        } else if all || y.as_u64() != Some(0) {
                            let _ = writeln!(o, "  {:<44} {y}", format!("{k}.{k2}"));
                        }
                    }
                }
                Value::Object(_) | Value::Null => {}
                _ => {
                    let _ = writeln!(o, "  {k:<44} {x}");
                }
            }
        }
        let drops: Vec<(&String, &Value)> = layer["drops"]
            .as_object()
            .map(|m| m.iter().filter(|(_, n)| all || n.as_u64() != Some(0)).collect())
            .unwrap_or_default();
        let total: u64 = layer["drops"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
        let _ = writeln!(o, "  {:<44} {total}", "drops");
        for (k, n) in drops {
            let _ = writeln!(o, "    {k:<42} {n}");
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

    #[test]
    fn views_cut_the_status_and_print_as_ios() {
        let st = json!({
            "hostname": "hub1", "draining": false,
            "tunnels": [{"name": "Tunnel1", "nhs": [{"address": "10.0.0.1", "nbma": "192.0.2.1", "state": "up",
                          "priority": 1, "cluster": 0, "requests": 7, "replies": 6, "failures": 1, "last_reply_s": 3}]}],
            "routes": [{"vrf": "global", "id": 0, "routes": [
                {"prefix": "0.0.0.0/0", "source": "static", "next_hop": {"interface": "wan", "via": "192.0.2.254"}},
                {"prefix": "10.2.2.0/24", "source": "nhrp", "next_hop": {"interface": "Tunnel1", "via": "10.0.0.12"}}]}],
            "dataplane": {"workers": [{"rx_packets": 5, "esp_decrypted": 2, "drops": {"esp_replay": 1, "no_route": 2}},
                                      {"rx_packets": 1, "drops": {"esp_replay": 3, "l2_not_for_us": 4}}]},
            "counters": {"control": {}, "nhrp": {"rx": {"registration_request": 3}}},
        });
        let c = view(&st, View::Counters);
        assert_eq!(c["layers"]["nbma"]["rx_packets"], 6);
        assert_eq!(c["layers"]["ipsec"]["drops"]["esp_replay"], 4);
        assert_eq!(c["layers"]["overlay"]["drops"]["no_route"], 2);
        assert_eq!(c["layers"]["nbma"]["drops"]["l2_not_for_us"], 4);
        assert_eq!(view(&st, View::IpsecSa)["totals"]["replay_drops"], 4);
        let text = counters_text(&c, false);
        assert!(
            text.contains("    esp_replay") && text.contains("gre.registration_request")
                || text.contains("nhrp.rx.registration_request"),
            "{text}"
        );
        let nhs = nhrp_nhs_detail(&view(&st, View::NhrpNhs));
        assert!(nhs.contains("10.0.0.1 RE NBMA Address: 192.0.2.1 priority = 1 cluster = 0  req-sent 7  req-failed 1  repl-recv 6 (00:00:03 ago)"), "{nhs}");
        let r = ip_route(&view(&st, View::Routes), None);
        assert!(r.contains("Gateway of last resort is 192.0.2.254 to network 0.0.0.0"), "{r}");
        assert!(r.contains("S*    0.0.0.0/0 [1/0] via 192.0.2.254, wan\n"), "{r}");
        assert!(r.contains("H     10.2.2.0/24 [250/255] via 10.0.0.12, Tunnel1\n"), "{r}");
        assert!(ip_route(&view(&st, View::Routes), Some("RED")).contains("does not exist"));
    }
}
