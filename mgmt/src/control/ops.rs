//! Commands to the running control loop: a new configuration applied live, and the operator's actions
//! (`clear ip nhrp`, clear a peer, `clear crypto ikev2 sa`, drain). Each runs to completion inside one
//! call, between two inputs, and publishes what it changed before it returns, so a view read after it
//! shows its effect.
//!
//! What applies live ([`live_fields`]): the static routes (every VRF), the NHRP options of each tunnel
//! (holding time, redirect, shortcut), the keyrings (PSKs, for the next authentications), DPD of the
//! IKE profiles (from each SA's next liveness timer) and the hostname. Anything else (ports,
//! interfaces, VRFs, a tunnel's source, key, addresses or protection, the proposals, manual SAs) needs
//! a restart: such a change is refused naming the first field that differs, and nothing changes.

use std::net::IpAddr;
use std::time::Instant;

use dataplane::ids::{TunnelId, VrfId};
use nhrp::EntryKind;
use serde_json::{json, Value};

use super::Control;
use crate::api::{Action, BackendError};
use crate::config::Config;
use crate::plan::Plan;

/// The routes the NHRP engine forwards resolutions along: `[[routes]]` on a tunnel with a next hop
/// (a hub forwards resolution requests for networks routed via a registered spoke, Phase 2/3).
pub(super) fn nhrp_routes(config: &Config, plan: &Plan) -> Vec<(nhrp::TunnelId, IpAddr, u8, IpAddr)> {
    config
        .routes
        .iter()
        .filter_map(|r| {
            let t = r.interface.as_ref().and_then(|n| plan.tunnels.iter().find(|t| &t.name == n))?;
            Some((nhrp::TunnelId(t.id.0), r.prefix.network(), r.prefix.len, r.next_hop?))
        })
        .collect()
}

/// The configuration as JSON with the fields that apply live blanked out: two configurations whose
/// masks differ need a restart to go from one to the other.
fn live_masked(config: &Config) -> Value {
    let mut v = serde_json::to_value(config).unwrap_or_default();
    v["hostname"] = Value::Null;
    v["routes"] = Value::Null;
    v["crypto"]["keyrings"] = Value::Null;
    if let Some(profiles) = v["crypto"]["ike_profiles"].as_array_mut() {
        for p in profiles {
            p["dpd"] = Value::Null;
        }
    }
    if let Some(tunnels) = v["tunnels"].as_array_mut() {
        for t in tunnels {
            for k in ["holdtime", "redirect", "shortcut"] {
                t["nhrp"][k] = Value::Null;
            }
        }
    }
    v
}

/// The fields that apply live, as paths (for the documentation and the 409's message).
pub fn live_fields() -> &'static str {
    "hostname, routes, tunnels[].nhrp.holdtime/redirect/shortcut, crypto.keyrings, crypto.ike_profiles[].dpd"
}

/// The path of the first place where `a` and `b` differ (`tunnels[0].source`), if any.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                first_difference(x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), &join(k))
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (p, q))| first_difference(p, q, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(if path.is_empty() { "(the whole configuration)".into() } else { path.to_string() }),
    }
}

impl Control {
    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Applies `config` (already validated) to the running box, all of it or nothing: refused (409,
    /// naming the field) when it changes something that needs a restart. See the module documentation.
    pub fn apply_config(&mut self, now: Instant, config: &Config) -> Result<(), BackendError> {
        if let Some(path) = first_difference(&live_masked(&self.config), &live_masked(config), "") {
            return Err(BackendError::Refused(format!(
                "{path}: this change needs a restart of dmvpnd (live: {}); nothing was changed",
                live_fields()
            )));
        }
        let plan = Plan::new(config).map_err(|e| BackendError::Refused(e.to_string()))?;
        // Static routes: the old ones out, the new ones in; on a refusal the old set is put back.
        let old: Vec<_> = self.plan.routes().to_vec();
        let key = |r: &(String, VrfId, IpAddr, u8, _)| (r.1, r.2, r.3);
        for r in old.iter().filter(|o| !plan.routes().iter().any(|n| key(n) == key(o))) {
            let _ = self.tables.remove_route(r.1, r.2, r.3);
        }
        let mut failed = None;
        for (path, vrf, prefix, len, nh) in plan.routes() {
            if let Err(e) = self.tables.add_route(*vrf, *prefix, *len, *nh) {
                failed = Some(format!("{path}: {e}"));
                break;
            }
        }
        if let Some(e) = failed {
            for r in plan.routes().iter().filter(|n| !old.iter().any(|o| key(n) == key(o))) {
                let _ = self.tables.remove_route(r.1, r.2, r.3);
            }
            for (_, vrf, prefix, len, nh) in &old {
                let _ = self.tables.add_route(*vrf, *prefix, *len, *nh);
            }
            return Err(BackendError::Refused(e));
        }
        for (tunnel, prefix, len, _) in nhrp_routes(&self.config, &self.plan) {
            self.nhrp.remove_route(tunnel, prefix, len);
        }
        for (tunnel, prefix, len, nh) in nhrp_routes(config, &plan) {
            self.nhrp.add_route(tunnel, prefix, len, nh);
        }
        // NHRP options, and the data plane's redirect flag that goes with them.
        for t in &plan.tunnels {
            let n = &t.nhrp;
            self.nhrp.set_tunnel_options(nhrp::TunnelId(t.id.0), n.holding_time, n.redirect, n.shortcut);
            if self.tables.set_tunnel(t.tables_config()).is_err() {
                self.counters.errors += 1;
            }
        }
        if let (Some(ike), Some(c)) = (self.ike.as_mut(), plan.ike.clone()) {
            ike.set_config(c);
        }
        self.nhs_route_via = plan.nhs_routes.iter().map(|r| r.nhs).collect();
        self.plan = plan;
        self.hostname = config.hostname.clone();
        self.config = config.clone();
        self.follow_nhs();
        self.dirty = true;
        self.log(now, "config_applied", json!({"routes": self.plan.routes().len()}));
        self.drain(now);
        Ok(())
    }

    /// Runs an operator's action; returns what it did.
    pub fn act(&mut self, now: Instant, action: &Action) -> Result<String, BackendError> {
        let done = match action {
            Action::ClearNhrp { tunnel, address } => {
                let Some(id) = self.plan.tunnels.iter().find(|t| &t.name == tunnel).map(|t| t.id) else {
                    return Err(BackendError::NotFound(format!("tunnel: no tunnel named {tunnel:?}")));
                };
                let nid = nhrp::TunnelId(id.0);
                match address {
                    Some(a) => {
                        if !self.nhrp.clear_entry(nid, *a) {
                            return Err(BackendError::NotFound(format!(
                                "address: no dynamic NHRP entry for {a} on {tunnel}"
                            )));
                        }
                        self.down_reasons.insert((TunnelId(nid.0), *a), "cleared by the operator");
                        format!("cleared the NHRP entry of {a} on {tunnel}")
                    }
                    None => {
                        let n = self.nhrp.cache().iter(nid).filter(|(_, e)| e.kind != EntryKind::Static).count();
                        self.nhrp.clear(nid);
                        format!("cleared {n} dynamic NHRP entries on {tunnel}")
                    }
                }
            }
            Action::ClearPeer { nbma } => {
                let mut entries = 0;
                for t in self.plan.tunnels.iter().map(|t| nhrp::TunnelId(t.id.0)).collect::<Vec<_>>() {
                    let of_peer: Vec<IpAddr> = self
                        .nhrp
                        .cache()
                        .iter(t)
                        .filter(|(_, e)| e.nbma == *nbma && e.kind != EntryKind::Static)
                        .map(|(a, _)| a)
                        .collect();
                    for a in of_peer {
                        if self.nhrp.clear_entry(t, a) {
                            entries += 1;
                            self.down_reasons.insert((TunnelId(t.0), a), "cleared by the operator");
                        }
                    }
                }
                let sas = self.peers.get(nbma).map_or(0, |p| p.pairs.len() + p.ike_sas.len());
                if entries == 0 && sas == 0 {
                    return Err(BackendError::NotFound(format!("nbma: no NHRP entry or SA with {nbma}")));
                }
                self.drain(now);
                self.tear_down_peer(now, *nbma, "cleared by the operator");
                format!("cleared peer {nbma}: {entries} NHRP entries, its IKE and IPsec SAs")
            }
            Action::ClearIkeSa { nbma } => {
                let n = self.peers.get(nbma).map_or(0, |p| p.ike_sas.len());
                if n == 0 {
                    return Err(BackendError::NotFound(format!("nbma: no IKE SA with {nbma}")));
                }
                self.tear_down_peer(now, *nbma, "clear crypto ikev2 sa");
                format!("deleted {n} IKE SA(s) with {nbma} and their CHILD SAs")
            }
            Action::Drain { enable } => {
                self.nhrp.set_draining(*enable);
                if *enable {
                    "draining: registrations from spokes without a binding here are refused (Insufficient \
                     Resources); bound spokes stay until cleared"
                        .to_string()
                } else {
                    "drain ended: registrations are accepted".to_string()
                }
            }
        };
        self.log(now, "action", json!({"action": action, "done": done}));
        self.drain(now);
        Ok(done)
    }

    /// The routes of every VRF as `show ip route` lists them: connected (interfaces and tunnels),
    /// static (with the next hop an NHS-following route uses now) and NHRP shortcuts.
    pub(super) fn routes_view(&self) -> Value {
        let mut vrfs: Vec<(String, VrfId)> = self.plan.vrf_names().map(|(n, v)| (n.to_string(), v)).collect();
        vrfs.push(("global".into(), VrfId::default()));
        vrfs.sort_by_key(|(_, v)| v.0);
        vrfs.dedup_by_key(|(_, v)| *v);
        let mut out = Vec::new();
        for (name, vrf) in vrfs {
            let mut routes = Vec::new();
            for (i, f) in self.plan.interfaces().iter().enumerate() {
                if self.plan.vrf(f.vrf.as_deref()) != vrf {
                    continue;
                }
                for a in &f.addresses {
                    routes.push(json!({"prefix": format!("{}/{}", a.network(), a.len), "source": "connected",
                                       "interface": f.name, "port": i}));
                }
            }
            for t in self.plan.tunnels.iter().filter(|t| t.vrf == vrf) {
                routes.push(json!({"prefix": format!("{}/{}", t.address.network(), t.address.len),
                                   "source": "connected", "interface": t.name}));
            }
            for (path, v, prefix, len, nh) in self.plan.routes() {
                if *v != vrf {
                    continue;
                }
                let following = self
                    .plan
                    .nhs_routes
                    .iter()
                    .position(|r| r.vrf == vrf && r.prefix == *prefix && r.len == *len)
                    .and_then(|i| self.nhs_route_via.get(i));
                routes.push(json!({"prefix": format!("{prefix}/{len}"), "source": "static", "config": path,
                                   "next_hop": self.next_hop_json(nh, following.copied())}));
            }
            for ((tunnel, prefix, len), (v, nh)) in &self.shortcuts {
                if *v == vrf {
                    let name = self.plan.tunnel(*tunnel).map_or(String::new(), |t| t.name.clone());
                    routes.push(json!({"prefix": format!("{prefix}/{len}"), "source": "nhrp",
                                       "next_hop": {"interface": name, "via": nh.to_string()}}));
                }
            }
            routes.sort_by_key(|r| r["prefix"].as_str().map(str::to_string));
            out.push(json!({"vrf": name, "id": vrf.0, "routes": routes}));
        }
        Value::Array(out)
    }

    fn next_hop_json(&self, nh: &dataplane::tables::NextHop, following: Option<IpAddr>) -> Value {
        use dataplane::tables::NextHop;
        match nh {
            NextHop::Port { port, gateway } => json!({
                "interface": self.plan.interfaces().get(usize::from(port.0)).map(|f| f.name.clone()),
                "via": gateway.map(|g| g.to_string())}),
            NextHop::Tunnel { tunnel, peer } => json!({
                "interface": self.plan.tunnel(*tunnel).map(|t| t.name.clone()),
                "via": following.or(*peer).map(|g| g.to_string())}),
            NextHop::Drop => json!({"discard": true}),
            NextHop::Local => json!({"local": true}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Setup;
    use dataplane::tables::{NextHop, TablesPublisher};

    fn hub() -> (Control, Config, Instant) {
        let config = Config::from_toml(include_str!("../../configs/hub.toml")).unwrap();
        let (publisher, _reader) = TablesPublisher::new();
        let macs = vec![[2, 0, 0, 0, 0, 1]; config.interfaces.len()];
        let setup = Setup { workers: 1, backend: dataplane::crypto::default_backend(), iv_seed: [0; 16], nhrp_seed: 1 };
        let now = Instant::now();
        (Control::new(&config, publisher, &macs, setup, now).unwrap(), config, now)
    }

    fn with(config: &Config, f: impl FnOnce(&mut Value)) -> Config {
        let mut v = serde_json::to_value(config).unwrap();
        f(&mut v);
        Config::from_json(&v.to_string()).unwrap()
    }

    #[test]
    fn live_changes_apply_and_restart_changes_change_nothing() {
        let (mut c, config, now) = hub();
        let new = with(&config, |v| {
            v["routes"]
                .as_array_mut()
                .unwrap()
                .push(json!({"vrf": "ISP1", "prefix": "10.99.0.0/16", "next_hop": "192.0.2.254"}));
            v["tunnels"][0]["nhrp"]["holdtime"] = json!(60);
            v["hostname"] = json!("hub9");
        });
        let has = |c: &Control| {
            c.routes_view().as_array().unwrap().iter().any(|v| {
                v["vrf"] == "ISP1" && v["routes"].as_array().unwrap().iter().any(|r| r["prefix"] == "10.99.0.0/16")
            })
        };
        c.apply_config(now, &new).unwrap();
        let vrf = c.plan.vrf(Some("ISP1"));
        let dst: IpAddr = "10.99.1.1".parse().unwrap();
        assert!(matches!(c.tables().staged().resolve(vrf, dst), Some(NextHop::Port { .. })));
        assert!(has(&c));
        assert_eq!(c.status(now)["hostname"], "hub9");
        assert_eq!(c.config(), &new);
        // Back: the route goes.
        c.apply_config(now, &config).unwrap();
        assert!(!has(&c));
        // A new GRE key needs a restart: refused, naming the field, nothing changed.
        let restart = with(&new, |v| v["tunnels"][0]["key"] = json!(7));
        match c.apply_config(now, &restart) {
            Err(BackendError::Refused(m)) => assert!(m.starts_with("tunnels[0].key: "), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.config(), &config);
        assert!(!has(&c));
    }

    #[test]
    fn actions_drain_and_refuse_what_does_not_exist() {
        let (mut c, _, now) = hub();
        assert!(c.act(now, &Action::Drain { enable: true }).is_ok());
        assert!(c.nhrp().draining() && c.status(now)["draining"] == true);
        let nbma: IpAddr = "203.0.113.10".parse().unwrap();
        assert!(matches!(c.act(now, &Action::ClearIkeSa { nbma }), Err(BackendError::NotFound(_))));
        assert!(matches!(c.act(now, &Action::ClearPeer { nbma }), Err(BackendError::NotFound(_))));
        let clear = Action::ClearNhrp { tunnel: "Tunnel9".into(), address: None };
        assert!(matches!(c.act(now, &clear), Err(BackendError::NotFound(m)) if m.contains("Tunnel9")));
        let clear = Action::ClearNhrp { tunnel: "Tunnel1".into(), address: Some(nbma) };
        assert!(matches!(c.act(now, &clear), Err(BackendError::NotFound(_))));
        let clear = Action::ClearNhrp { tunnel: "Tunnel1".into(), address: None };
        assert!(c.act(now, &clear).unwrap().starts_with("cleared 0 dynamic"));
        assert!(c.act(now, &Action::Drain { enable: false }).is_ok() && !c.nhrp().draining());
    }

    #[test]
    fn first_difference_names_the_field() {
        let a = json!({"tunnels": [{"source": "wan", "nhrp": {"holdtime": 1}}], "x": [1]});
        let b = json!({"tunnels": [{"source": "lan", "nhrp": {"holdtime": 1}}], "x": [1]});
        assert_eq!(first_difference(&a, &b, "").as_deref(), Some("tunnels[0].source"));
        assert_eq!(first_difference(&a, &a, ""), None);
        let c = json!({"tunnels": [], "x": [1]});
        assert_eq!(first_difference(&a, &c, "").as_deref(), Some("tunnels"));
    }
}
