//! Prometheus metrics (text exposition format 0.0.4) from the daemon's status JSON: the data plane's
//! packet counters and drops by layer and reason, peers and NHSs by state, IKE and IPsec SAs, and the
//! NHRP, IKE and control-loop counters. Every counter is cumulative since the daemon started.

use std::fmt::Write;

use serde_json::Value;

use crate::show::{drop_layer, drops};

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: u64) {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", esc(v))).collect();
        if l.is_empty() {
            let _ = writeln!(self.0, "{name} {v}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {v}", l.join(","));
        }
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, v: u64) {
        self.family(name, kind, help);
        self.sample(name, &[], v);
    }
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The metrics.
pub fn render(status: &Value) -> String {
    let mut o = Out(String::new());
    let workers = arr(&status["dataplane"]["workers"]);
    let sum = |k: &str| workers.iter().map(|w| num(&w[k])).sum::<u64>();
    o.one("dmvpn_uptime_seconds", "gauge", "Seconds since dmvpnd started.", num(&status["uptime_s"]));
    o.one(
        "dmvpn_draining",
        "gauge",
        "1 while the hub is drained for maintenance.",
        u64::from(status["draining"] == true),
    );
    for (k, help) in [
        ("rx_packets", "Packets received by the data plane."),
        ("tx_packets", "Packets sent by the data plane."),
        ("rx_bytes", "Bytes received by the data plane."),
        ("tx_bytes", "Bytes sent by the data plane."),
        ("esp_encrypted", "ESP packets encrypted."),
        ("esp_decrypted", "ESP packets decrypted."),
        ("punted", "Packets punted to the control loop."),
        ("icmp_sent", "ICMP errors sent by the data plane."),
    ] {
        o.one(&format!("dmvpn_dataplane_{k}_total"), "counter", help, sum(k));
    }
    o.family("dmvpn_port_packets_total", "counter", "Packets per port and direction.");
    for p in arr(&status["dataplane"]["ports"]) {
        let name = p["name"].as_str().unwrap_or("");
        o.sample("dmvpn_port_packets_total", &[("port", name), ("direction", "rx")], num(&p["rx_packets"]));
        o.sample("dmvpn_port_packets_total", &[("port", name), ("direction", "tx")], num(&p["tx_packets"]));
    }
    o.family("dmvpn_drops_total", "counter", "Packets the data plane dropped, by layer and reason.");
    for (reason, n) in drops(status) {
        o.sample("dmvpn_drops_total", &[("layer", drop_layer(&reason)), ("reason", &reason)], n);
    }
    // Each family's samples together (the exposition format wants them grouped).
    let tunnels = arr(&status["tunnels"]);
    let name = |t: &Value| t["name"].as_str().unwrap_or("").to_string();
    o.family("dmvpn_peers", "gauge", "show dmvpn rows by tunnel and state (UP, IKE, NHRP).");
    for t in tunnels {
        for state in ["UP", "IKE", "NHRP"] {
            let n = arr(&t["peers"]).iter().filter(|p| p["state"] == state).count() as u64;
            o.sample("dmvpn_peers", &[("tunnel", &name(t)), ("state", state)], n);
        }
    }
    o.family("dmvpn_nhs_up", "gauge", "1 for each NHS in state up.");
    for t in tunnels {
        for n in arr(&t["nhs"]) {
            let nhs = n["address"].as_str().unwrap_or("");
            o.sample("dmvpn_nhs_up", &[("tunnel", &name(t)), ("nhs", nhs)], u64::from(n["state"] == "up"));
        }
    }
    o.family("dmvpn_nhrp_entries", "gauge", "NHRP cache entries by tunnel and kind.");
    for t in tunnels {
        for kind in ["static", "registered", "resolved"] {
            let n = arr(&t["nhrp"]).iter().filter(|e| e["kind"] == kind).count() as u64;
            o.sample("dmvpn_nhrp_entries", &[("tunnel", &name(t)), ("kind", kind)], n);
        }
    }
    let ike = arr(&status["ike_sas"]);
    o.family("dmvpn_ike_sas", "gauge", "IKE SAs by state.");
    for state in ["Established", "InitSent", "AuthSent", "HalfOpen", "Rekeyed"] {
        o.sample("dmvpn_ike_sas", &[("state", state)], ike.iter().filter(|s| s["state"] == state).count() as u64);
    }
    o.one(
        "dmvpn_ipsec_sa_pairs",
        "gauge",
        "CHILD SA pairs installed in the data plane.",
        arr(&status["sa_pairs"]).len() as u64,
    );
    let c = &status["counters"];
    for (section, help) in
        [("nhrp", "NHRP engine counter"), ("ike", "IKE engine counter"), ("control", "Control loop counter")]
    {
        let Some(m) = c[section].as_object() else { continue };
        for (k, v) in m {
            if let Some(n) = v.as_u64() {
                o.one(&format!("dmvpn_{section}_{k}_total"), "counter", &format!("{help}: {k}."), n);
            }
        }
    }
    o.family("dmvpn_nhrp_packets_total", "counter", "NHRP packets by direction and operation.");
    for dir in ["rx", "tx"] {
        if let Some(m) = c["nhrp"][dir].as_object() {
            for (op, n) in m {
                o.sample("dmvpn_nhrp_packets_total", &[("direction", dir), ("op", op)], num(n));
            }
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn metrics_carry_drops_by_layer_and_peers_by_state() {
        let st = json!({"uptime_s": 5, "draining": true,
            "tunnels": [{"name": "Tunnel1", "peers": [{"state": "UP"}, {"state": "IKE"}, {"state": "UP"}]},
                        {"name": "Tunnel2", "peers": [{"state": "UP"}]}],
            "dataplane": {"workers": [{"rx_packets": 3, "drops": {"esp_replay": 2}}], "ports": [{"name": "wan", "rx_packets": 3}]},
            "counters": {"nhrp": {"registrations": 4, "rx": {"registration_request": 4}}}});
        let m = super::render(&st);
        assert!(m.contains("dmvpn_drops_total{layer=\"ipsec\",reason=\"esp_replay\"} 2\n"), "{m}");
        assert!(m.contains("dmvpn_peers{tunnel=\"Tunnel1\",state=\"UP\"} 2\n"), "{m}");
        // One family's samples together, before the next family.
        let p2 = m.find("dmvpn_peers{tunnel=\"Tunnel2\",state=\"UP\"} 1").unwrap();
        assert!(p2 < m.find("# TYPE dmvpn_nhs_up").unwrap(), "{m}");
        assert!(m.contains("dmvpn_draining 1\n") && m.contains("dmvpn_nhrp_registrations_total 4\n"), "{m}");
        assert!(m.contains("dmvpn_nhrp_packets_total{direction=\"rx\",op=\"registration_request\"} 4\n"), "{m}");
        assert!(m.contains("# TYPE dmvpn_dataplane_rx_packets_total counter\ndmvpn_dataplane_rx_packets_total 3\n"));
    }
}
