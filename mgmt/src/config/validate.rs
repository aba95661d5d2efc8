//! The checks a parse cannot make: uniqueness, references, subnets, ranges and the combinations IOS
//! refuses. Each problem is reported with the path of the field that has it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::{
    AuthMethod, Config, EspTransform, FieldError, IkeProfile, IpsecProfile, ManualSa, Nhrp, Prefix, Route, SaDirection,
    Tunnel, VERSION,
};

/// Every problem of `config`, in the order of its fields.
pub(super) fn check(config: &Config) -> Vec<FieldError> {
    let mut c = Checker { config, errors: Vec::new() };
    c.version();
    c.vrfs();
    c.interfaces();
    c.tunnels();
    c.crypto();
    c.routes();
    c.manual_sas();
    c.errors
}

struct Checker<'a> {
    config: &'a Config,
    errors: Vec<FieldError>,
}

/// Which VRF a name refers to: `None` is the global VRF.
fn vrf_key(name: &Option<String>) -> &str {
    name.as_deref().unwrap_or("")
}

impl Checker<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError { path: path.into(), message: message.into() });
    }

    fn range<T: PartialOrd + std::fmt::Display>(&mut self, path: String, v: T, lo: T, hi: T) {
        if v < lo || v > hi {
            self.err(path, format!("{v} is outside {lo}..={hi}"));
        }
    }

    /// Reports the second and later uses of each name.
    fn unique<'n>(&mut self, what: &str, names: impl Iterator<Item = (String, &'n str)>) {
        let mut seen = HashSet::new();
        for (path, name) in names {
            if name.is_empty() {
                self.err(path, format!("{what} name is empty"));
            } else if !seen.insert(name) {
                self.err(path, format!("{what} {name:?} is defined twice"));
            }
        }
    }

    fn vrf_exists(&mut self, path: String, vrf: &Option<String>) {
        if let Some(name) = vrf {
            if !self.config.vrfs.iter().any(|v| &v.name == name) {
                self.err(path, format!("no VRF named {name:?}"));
            }
        }
    }

    fn version(&mut self) {
        if self.config.version != VERSION {
            self.err("version", format!("this build reads version {VERSION}, got {}", self.config.version));
        }
    }

    fn vrfs(&mut self) {
        let config = self.config;
        self.unique("VRF", config.vrfs.iter().enumerate().map(|(i, v)| (format!("vrfs[{i}].name"), v.name.as_str())));
        let mut ids = HashSet::new();
        for (i, v) in config.vrfs.iter().enumerate() {
            self.range(format!("vrfs[{i}].id"), v.id, 1, 4095);
            if !ids.insert(v.id) {
                self.err(format!("vrfs[{i}].id"), format!("VRF id {} is used twice", v.id));
            }
        }
    }

    fn interfaces(&mut self) {
        let config = self.config;
        let names = config
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("interfaces[{i}].name"), x.name.as_str()))
            .chain(config.tunnels.iter().enumerate().map(|(i, t)| (format!("tunnels[{i}].name"), t.name.as_str())));
        self.unique("interface", names);
        let mut on_port = HashSet::new();
        for (i, x) in config.interfaces.iter().enumerate() {
            let path = format!("interfaces[{i}]");
            if x.port.is_empty() {
                self.err(format!("{path}.port"), "no port named");
            }
            self.vrf_exists(format!("{path}.vrf"), &x.vrf);
            self.range(format!("{path}.mtu"), x.mtu, 576, 9216);
            if let Some(vlan) = x.vlan {
                self.range(format!("{path}.vlan"), vlan, 1, 4094);
            }
            if !on_port.insert((x.port.as_str(), x.vlan)) {
                self.err(
                    format!("{path}.port"),
                    format!("port {:?} with this VLAN is used by another interface", x.port),
                );
            }
            for (j, a) in x.addresses.iter().enumerate() {
                self.host_address(format!("{path}.addresses[{j}]"), a);
            }
        }
        self.subnets_disjoint();
    }

    /// An interface address must be a host of its subnet (IOS: "Bad mask").
    fn host_address(&mut self, path: String, a: &Prefix) {
        let host_bits = u32::from(a.max_len() - a.len);
        if host_bits >= 2 && a.is_ipv4() && (a.addr == a.network() || a.addr == a.broadcast()) {
            self.err(path, format!("{a} is the network or broadcast address of its subnet"));
        }
    }

    /// No two interfaces (tunnels included) of one VRF may share a subnet.
    fn subnets_disjoint(&mut self) {
        let config = self.config;
        let mut subnets: Vec<(String, &str, Prefix)> = Vec::new();
        for (i, x) in config.interfaces.iter().enumerate() {
            for (j, a) in x.addresses.iter().enumerate() {
                subnets.push((format!("interfaces[{i}].addresses[{j}]"), vrf_key(&x.vrf), *a));
            }
        }
        for (i, t) in config.tunnels.iter().enumerate() {
            subnets.push((format!("tunnels[{i}].address"), vrf_key(&t.vrf), t.address));
        }
        for (k, (path, vrf, a)) in subnets.iter().enumerate() {
            if let Some((other, _, _)) = subnets[..k].iter().find(|(_, v, b)| v == vrf && a.overlaps(b)) {
                self.err(path.clone(), format!("{a} overlaps the subnet of {other}"));
            }
        }
    }

    fn tunnels(&mut self) {
        let config = self.config;
        let mut ids = HashSet::new();
        let mut endpoints = HashMap::new();
        for (i, t) in config.tunnels.iter().enumerate() {
            let path = format!("tunnels[{i}]");
            self.range(format!("{path}.id"), t.id, 0, 65534);
            if !ids.insert(t.id) {
                self.err(format!("{path}.id"), format!("tunnel id {} is used twice", t.id));
            }
            self.vrf_exists(format!("{path}.vrf"), &t.vrf);
            self.vrf_exists(format!("{path}.fvrf"), &t.fvrf);
            match config.interfaces.iter().find(|x| x.name == t.source) {
                None => self.err(format!("{path}.source"), format!("no interface named {:?}", t.source)),
                Some(x) if x.addresses.is_empty() => {
                    self.err(format!("{path}.source"), format!("interface {:?} has no address", t.source));
                }
                Some(x) => {
                    if vrf_key(&x.vrf) != vrf_key(&t.fvrf) {
                        let fvrf = t.fvrf.as_deref().unwrap_or("global");
                        self.err(
                            format!("{path}.source"),
                            format!("interface {:?} is not in the front-door VRF {fvrf:?}", t.source),
                        );
                    }
                    if let Some(other) = endpoints.insert((x.addresses[0].addr, t.key), i) {
                        self.err(format!("{path}.key"), format!("tunnels[{other}] has the same source and key"));
                    }
                }
            }
            if t.address.len >= t.address.max_len() {
                self.err(format!("{path}.address"), "a multipoint tunnel needs a subnet, not a host address");
            } else {
                self.host_address(format!("{path}.address"), &t.address);
            }
            self.range(format!("{path}.mtu"), t.mtu, 576, 9000);
            if let Some(mss) = t.tcp_mss {
                self.range(format!("{path}.tcp_mss"), mss, 500, 1460);
            }
            if let Some(p) = &t.protection {
                if !config.crypto.ipsec_profiles.iter().any(|x| &x.name == p) {
                    self.err(format!("{path}.protection"), format!("no IPsec profile named {p:?}"));
                }
            }
            if let Some(via) = &t.route_via {
                match config.interfaces.iter().find(|x| x.name == via.interface) {
                    None => self
                        .err(format!("{path}.route_via.interface"), format!("no interface named {:?}", via.interface)),
                    Some(x) if vrf_key(&x.vrf) != vrf_key(&t.fvrf) => self.err(
                        format!("{path}.route_via.interface"),
                        format!("interface {:?} is not in the tunnel's front-door VRF", via.interface),
                    ),
                    Some(_) => {}
                }
            }
            self.nhrp(&format!("{path}.nhrp"), t, &t.nhrp);
        }
    }

    fn nhrp(&mut self, path: &str, t: &Tunnel, n: &Nhrp) {
        if n.network_id == 0 {
            self.err(format!("{path}.network_id"), "0 is not a network id (1..=4294967295)");
        }
        if let Some(auth) = &n.authentication {
            if auth.is_empty() || auth.len() > 8 {
                self.err(format!("{path}.authentication"), "Cisco's NHRP authentication string has 1 to 8 characters");
            }
        }
        self.range(format!("{path}.holdtime"), n.holdtime, 1, 65535);
        if let Some(timeout) = n.registration_timeout {
            self.range(format!("{path}.registration_timeout"), timeout, 1, n.holdtime.max(1));
        }
        let source_v4 = self.config.interfaces.iter().find(|x| x.name == t.source).and_then(|x| x.addresses.first());
        let mut seen = HashSet::new();
        for (j, nhs) in n.nhs.iter().enumerate() {
            let p = format!("{path}.nhs[{j}]");
            self.overlay_address(format!("{p}.address"), t, nhs.address);
            if !seen.insert(nhs.address) {
                self.err(format!("{p}.address"), format!("NHS {} is listed twice", nhs.address));
            }
            if source_v4.is_some_and(|s| s.addr.is_ipv4() != nhs.nbma.is_ipv4()) {
                self.err(format!("{p}.nbma"), "NBMA address family differs from the tunnel source's");
            }
            self.range(format!("{p}.cluster"), nhs.cluster, 0, 10);
        }
        let mut clusters = HashSet::new();
        for (j, c) in n.clusters.iter().enumerate() {
            let p = format!("{path}.clusters[{j}]");
            self.range(format!("{p}.cluster"), c.cluster, 0, 10);
            if !clusters.insert(c.cluster) {
                self.err(format!("{p}.cluster"), format!("cluster {} is listed twice", c.cluster));
            }
            if c.max_connections == 0 {
                self.err(format!("{p}.max_connections"), "0 connections would register with no NHS");
            }
        }
        let mut mapped = HashSet::new();
        for (j, m) in n.map.iter().enumerate() {
            let p = format!("{path}.map[{j}]");
            self.overlay_address(format!("{p}.overlay"), t, m.overlay);
            if !mapped.insert(m.overlay) {
                self.err(format!("{p}.overlay"), format!("{} is mapped twice", m.overlay));
            }
        }
    }

    /// A peer's overlay address: in the tunnel's subnet, and not the tunnel's own.
    fn overlay_address(&mut self, path: String, t: &Tunnel, addr: IpAddr) {
        if !t.address.contains(addr) {
            self.err(path, format!("{addr} is not in the tunnel's subnet {}/{}", t.address.network(), t.address.len));
        } else if addr == t.address.addr {
            self.err(path, format!("{addr} is this tunnel's own address"));
        }
    }

    fn crypto(&mut self) {
        let crypto = &self.config.crypto;
        self.unique(
            "keyring",
            crypto.keyrings.iter().enumerate().map(|(i, k)| (format!("crypto.keyrings[{i}].name"), k.name.as_str())),
        );
        for (i, k) in crypto.keyrings.iter().enumerate() {
            if k.peers.is_empty() {
                self.err(format!("crypto.keyrings[{i}].peers"), "a keyring needs at least one peer");
            }
            self.unique(
                "peer",
                k.peers
                    .iter()
                    .enumerate()
                    .map(|(j, p)| (format!("crypto.keyrings[{i}].peers[{j}].name"), p.name.as_str())),
            );
            for (j, p) in k.peers.iter().enumerate() {
                let path = format!("crypto.keyrings[{i}].peers[{j}]");
                if p.identity.is_none() && p.address.is_none() {
                    self.err(path.clone(), "a peer needs an identity or an address to match");
                }
                if p.pre_shared_key.len() < 8 {
                    self.err(format!("{path}.pre_shared_key"), "a pre-shared key needs at least 8 characters");
                }
            }
        }
        self.unique(
            "IKE profile",
            crypto
                .ike_profiles
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("crypto.ike_profiles[{i}].name"), p.name.as_str())),
        );
        for (i, p) in crypto.ike_profiles.iter().enumerate() {
            self.ike_profile(&format!("crypto.ike_profiles[{i}]"), p);
        }
        self.unique(
            "IPsec profile",
            crypto
                .ipsec_profiles
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("crypto.ipsec_profiles[{i}].name"), p.name.as_str())),
        );
        for (i, p) in crypto.ipsec_profiles.iter().enumerate() {
            self.ipsec_profile(&format!("crypto.ipsec_profiles[{i}]"), p);
        }
    }

    fn ike_profile(&mut self, path: &str, p: &IkeProfile) {
        if p.proposals.is_empty() {
            self.err(format!("{path}.proposals"), "at least one proposal is needed");
        }
        for (j, prop) in p.proposals.iter().enumerate() {
            for (field, empty) in [
                ("encryption", prop.encryption.is_empty()),
                ("prf", prop.prf.is_empty()),
                ("group", prop.group.is_empty()),
            ] {
                if empty {
                    self.err(format!("{path}.proposals[{j}].{field}"), "the list is empty");
                }
            }
        }
        let uses = |m| p.authentication.local == m || p.authentication.remote == m;
        if uses(AuthMethod::PreShare) {
            match &p.keyring {
                None => self.err(format!("{path}.keyring"), "pre-shared key authentication needs a keyring"),
                Some(k) if !self.config.crypto.keyrings.iter().any(|x| &x.name == k) => {
                    self.err(format!("{path}.keyring"), format!("no keyring named {k:?}"));
                }
                Some(_) => {}
            }
        }
        if uses(AuthMethod::Signature) && p.certificate.as_ref().is_none_or(|c| c.ca.is_empty()) {
            self.err(format!("{path}.certificate"), "signature authentication needs a certificate, its key and a CA");
        }
        self.range(format!("{path}.lifetime"), p.lifetime, 120, 86400);
        if let Some(dpd) = p.dpd {
            self.range(format!("{path}.dpd.interval"), dpd.interval, 10, 3600);
            self.range(format!("{path}.dpd.retry"), dpd.retry, 2, 60);
            self.range(format!("{path}.dpd.retries"), dpd.retries, 1, 10);
        }
        if let Some(k) = p.nat_keepalive {
            self.range(format!("{path}.nat_keepalive"), k, 5, 3600);
        }
    }

    fn ipsec_profile(&mut self, path: &str, p: &IpsecProfile) {
        if !self.config.crypto.ike_profiles.iter().any(|x| x.name == p.ike_profile) {
            self.err(format!("{path}.ike_profile"), format!("no IKE profile named {:?}", p.ike_profile));
        }
        if p.transforms.is_empty() {
            self.err(format!("{path}.transforms"), "at least one transform is needed");
        }
        self.range(format!("{path}.lifetime"), p.lifetime, 120, 86400);
        if let Some(kb) = p.lifetime_kilobytes {
            self.range(format!("{path}.lifetime_kilobytes"), kb, 2560, u64::from(u32::MAX));
        }
        self.replay_window(format!("{path}.replay_window"), p.replay_window);
    }

    fn replay_window(&mut self, path: String, w: u32) {
        if !(64..=4096).contains(&w) || !w.is_power_of_two() {
            self.err(path, format!("{w} is not a replay window (64, 128, ..., 4096)"));
        }
    }

    fn routes(&mut self) {
        let config = self.config;
        let mut seen = HashSet::new();
        for (i, r) in config.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            self.vrf_exists(format!("{path}.vrf"), &r.vrf);
            if r.prefix.addr != r.prefix.network() {
                self.err(
                    format!("{path}.prefix"),
                    format!("{} has host bits set; the network is {}/{}", r.prefix, r.prefix.network(), r.prefix.len),
                );
            }
            if !seen.insert((vrf_key(&r.vrf), r.prefix.network(), r.prefix.len)) {
                self.err(
                    format!("{path}.prefix"),
                    format!("a route to {} in this VRF is already configured", r.prefix),
                );
            }
            self.route_target(&path, r);
        }
    }

    /// Exactly one of: discard, or an interface and/or a next hop reachable through it.
    fn route_target(&mut self, path: &str, r: &Route) {
        if r.discard {
            if r.interface.is_some() || r.next_hop.is_some() {
                self.err(format!("{path}.discard"), "a discard route has no interface or next hop");
            }
            return;
        }
        let subnets = self.connected(r, path);
        match r.next_hop {
            None if r.interface.is_none() => {
                self.err(path.to_string(), "a route needs an interface, a next hop, or discard")
            }
            Some(nh) if nh.is_ipv4() != r.prefix.addr.is_ipv4() => {
                self.err(format!("{path}.next_hop"), "the next hop's address family differs from the prefix's");
            }
            Some(nh) if !subnets.iter().any(|s| s.contains(nh)) => {
                self.err(
                    format!("{path}.next_hop"),
                    format!(
                        "{nh} is not on a connected subnet of the route's VRF{}",
                        r.interface.as_ref().map(|x| format!(" on {x:?}")).unwrap_or_default()
                    ),
                );
            }
            _ => {}
        }
    }

    /// The connected subnets a route's next hop may be on: its interface's, or all of its VRF's.
    fn connected(&mut self, r: &Route, path: &str) -> Vec<Prefix> {
        let config = self.config;
        let vrf = vrf_key(&r.vrf);
        let interfaces = config.interfaces.iter().map(|x| (x.name.as_str(), vrf_key(&x.vrf), x.addresses.clone()));
        let tunnels = config.tunnels.iter().map(|t| (t.name.as_str(), vrf_key(&t.vrf), vec![t.address]));
        let all: Vec<_> = interfaces.chain(tunnels).collect();
        match &r.interface {
            Some(name) => match all.iter().find(|(n, _, _)| n == name) {
                None => {
                    self.err(format!("{path}.interface"), format!("no interface or tunnel named {name:?}"));
                    Vec::new()
                }
                Some((_, v, _)) if *v != vrf => {
                    self.err(format!("{path}.interface"), format!("{name:?} is in another VRF"));
                    Vec::new()
                }
                Some((_, _, subnets)) => subnets.clone(),
            },
            None => all.into_iter().filter(|(_, v, _)| *v == vrf).flat_map(|(_, _, s)| s).collect(),
        }
    }

    fn manual_sas(&mut self) {
        let config = self.config;
        let mut inbound = HashSet::new();
        for (i, sa) in config.manual_sas.iter().enumerate() {
            let path = format!("manual_sas[{i}]");
            if !config.tunnels.iter().any(|t| t.name == sa.tunnel) {
                self.err(format!("{path}.tunnel"), format!("no tunnel named {:?}", sa.tunnel));
            }
            if sa.spi < 256 {
                self.err(format!("{path}.spi"), format!("SPI {} is reserved (RFC 4303 §2.1: 1..=255)", sa.spi));
            }
            if sa.direction == SaDirection::In && !inbound.insert(sa.spi) {
                self.err(format!("{path}.spi"), format!("inbound SPI {} is used twice", sa.spi));
            }
            self.replay_window(format!("{path}.replay_window"), sa.replay_window);
            self.sa_keys(&path, sa);
        }
    }

    fn sa_keys(&mut self, path: &str, sa: &ManualSa) {
        let (enc_len, auth_len) = match sa.transform {
            EspTransform::AesGcm128 => (20, None),
            EspTransform::AesGcm256 => (36, None),
            EspTransform::AesCbc128Sha256 => (16, Some(32)),
            EspTransform::AesCbc256Sha256 => (32, Some(32)),
            EspTransform::AesCbc128Sha1 => (16, Some(20)),
            EspTransform::AesCbc256Sha1 => (32, Some(20)),
        };
        self.hex_key(format!("{path}.enc_key"), &sa.enc_key, enc_len);
        match (auth_len, &sa.auth_key) {
            (Some(len), Some(key)) => self.hex_key(format!("{path}.auth_key"), key, len),
            (Some(len), None) => {
                self.err(format!("{path}.auth_key"), format!("this transform needs a {len}-byte integrity key"))
            }
            (None, Some(_)) => self.err(format!("{path}.auth_key"), "AES-GCM has no separate integrity key"),
            (None, None) => {}
        }
    }

    fn hex_key(&mut self, path: String, key: &str, len: usize) {
        match hex::decode(key) {
            Err(_) => self.err(path, "not a hex string"),
            Ok(bytes) if bytes.len() != len => {
                self.err(path, format!("{} bytes, this transform needs {len}", bytes.len()))
            }
            Ok(_) => {}
        }
    }
}

impl Prefix {
    fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The IPv4 broadcast address of the subnet (the network address for IPv6, which has none).
    fn broadcast(&self) -> IpAddr {
        match self.network() {
            IpAddr::V4(n) => {
                let host = u32::MAX.checked_shr(u32::from(self.len)).unwrap_or(0);
                IpAddr::V4((u32::from(n) | host).into())
            }
            v6 => v6,
        }
    }
}
