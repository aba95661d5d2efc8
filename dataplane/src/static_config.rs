//! A flat, static description of every table the data plane reads: ports, neighbours, routes, tunnels,
//! TEIB entries and manual SAs. The replay tool, the benchmarks and the tests build their tables from
//! it; the daemon's config model (in `mgmt`) will produce the same tables from protocol state.
//!
//! Errors name the field: `sas[2].enc_key: AES-GCM-128 needs 20 bytes (key and salt), got 16`.

use core::net::IpAddr;

use serde::Deserialize;
use thiserror::Error;

use crate::crypto::{AesKey, Backend, CipherConfig, Integrity};
use crate::ids::{PortId, SaIndex, TunnelId, VrfId, WorkerId};
use crate::sa::{Direction, Limits, Mode, NattPorts, Sa, SaConfig, SaDb};
use crate::tables::{NextHop, PortConfig, TablesPublisher, TablesReader, TunnelConfig};
use crate::teib::TeibEntry;

/// The whole description, as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// Ports of the box.
    pub ports: Vec<PortJson>,
    /// Static neighbour (ARP/ND) entries.
    #[serde(default)]
    pub neighbors: Vec<NeighborJson>,
    /// Static routes, per VRF.
    #[serde(default)]
    pub routes: Vec<RouteJson>,
    /// mGRE tunnels.
    #[serde(default)]
    pub tunnels: Vec<TunnelJson>,
    /// TEIB (NHRP cache) entries.
    #[serde(default)]
    pub teib: Vec<TeibJson>,
    /// Manual SAs.
    #[serde(default)]
    pub sas: Vec<SaJson>,
}

/// A port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortJson {
    pub id: u16,
    pub name: String,
    /// `02:00:00:00:00:01`.
    pub mac: String,
    #[serde(default)]
    pub vrf: u16,
    /// `192.0.2.1/24`, `2001:db8::1/64`.
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    #[serde(default)]
    pub vlan: Option<u16>,
}

fn default_mtu() -> u16 {
    1500
}

/// A static neighbour.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborJson {
    pub port: u16,
    pub ip: IpAddr,
    pub mac: String,
}

/// A static route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteJson {
    #[serde(default)]
    pub vrf: u16,
    /// `10.2.0.0/16`.
    pub prefix: String,
    pub via: ViaJson,
}

/// Where a route points.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ViaJson {
    /// `"drop"`.
    Keyword(String),
    /// `{"port": 0, "gateway": "192.0.2.254"}`.
    Port { port: u16, gateway: Option<IpAddr> },
    /// `{"tunnel": 1, "peer": "10.0.0.12"}`.
    Tunnel { tunnel: u16, peer: Option<IpAddr> },
}

/// An mGRE tunnel.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelJson {
    pub id: u16,
    pub source: IpAddr,
    #[serde(default)]
    pub key: Option<u32>,
    #[serde(default)]
    pub fvrf: u16,
    #[serde(default)]
    pub vrf: u16,
    /// `10.0.0.1/24`.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default = "default_tunnel_mtu")]
    pub mtu: u16,
    #[serde(default)]
    pub tcp_mss: Option<u16>,
    #[serde(default)]
    pub protection: bool,
    #[serde(default)]
    pub redirect: bool,
}

fn default_tunnel_mtu() -> u16 {
    1400
}

/// A TEIB entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeibJson {
    pub tunnel: u16,
    pub overlay: IpAddr,
    pub nbma: IpAddr,
    #[serde(default)]
    pub sa_out: Option<u32>,
}

/// A manual SA.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaJson {
    pub index: u32,
    pub spi: u32,
    /// `in` or `out`.
    pub direction: String,
    /// `transport` or `tunnel`.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// `aes-gcm-128`, `aes-gcm-256`, `aes-cbc-128`, `aes-cbc-256`.
    pub cipher: String,
    /// `hmac-sha1-96`, `hmac-sha256-128` (CBC only).
    #[serde(default)]
    pub integrity: Option<String>,
    /// Hex; for GCM the key followed by the 4-byte salt (RFC 4106 KEYMAT).
    pub enc_key: String,
    #[serde(default)]
    pub auth_key: Option<String>,
    #[serde(default)]
    pub esn: bool,
    #[serde(default = "default_window")]
    pub replay_window: u32,
    pub tunnel: u16,
    pub local: IpAddr,
    pub peer: IpAddr,
    #[serde(default)]
    pub natt: Option<NattJson>,
    /// Outbound: the last sequence number used.
    #[serde(default)]
    pub seq_start: u64,
    #[serde(default)]
    pub lifetime: Option<LifetimeJson>,
    /// The worker that owns the SA's sequence number and replay window.
    #[serde(default)]
    pub owner: u16,
}

fn default_mode() -> String {
    "transport".into()
}

fn default_window() -> u32 {
    64
}

/// NAT-T ports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NattJson {
    pub local_port: u16,
    pub peer_port: u16,
}

/// Lifetimes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifetimeJson {
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
}

/// A refused description: the field and what is wrong with it.
#[derive(Debug, Error)]
#[error("{field}: {what}")]
pub struct ConfigError {
    /// The field, as a path: `sas[2].enc_key`.
    pub field: String,
    /// What is wrong.
    pub what: String,
}

fn err(field: impl Into<String>, what: impl core::fmt::Display) -> ConfigError {
    ConfigError { field: field.into(), what: what.to_string() }
}

/// Parses `192.0.2.0/24`.
pub fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// Parses `02:00:00:00:00:01`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

impl StaticConfig {
    /// Parses the JSON text.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(text)).map_err(|e| {
            let field = match e.path().to_string() {
                p if p == "." => "config".to_string(),
                p => p,
            };
            err(field, e.into_inner())
        })
    }

    /// Builds the SA database, with keys expanded for `backend`. `iv_seed` feeds the CBC IV keys.
    pub fn sa_db(&self, backend: Backend, iv_seed: [u8; 16]) -> Result<SaDb, ConfigError> {
        let mut db = SaDb::builder();
        for (i, s) in self.sas.iter().enumerate() {
            let field = |f: &str| format!("sas[{i}].{f}");
            let config = sa_config(s, &field)?;
            let mut seed = iv_seed;
            seed[..4].copy_from_slice(&s.index.to_be_bytes());
            let sa = Sa::new(config, backend, seed).map_err(|e| err(field("cipher"), e))?;
            db.insert(SaIndex(s.index), std::sync::Arc::new(sa)).map_err(|e| err(field("index"), e))?;
        }
        db.build().map_err(|e| err("sas", e))
    }

    /// Builds and publishes the tables, with the SA database from [`Self::sa_db`].
    pub fn publish(&self, sas: SaDb) -> Result<(TablesPublisher, TablesReader), ConfigError> {
        let (mut b, reader) = TablesPublisher::new();
        b.set_sas(sas);
        for (i, p) in self.ports.iter().enumerate() {
            let field = |f: &str| format!("ports[{i}].{f}");
            let mac =
                parse_mac(&p.mac).ok_or_else(|| err(field("mac"), format!("{:?} is not a MAC address", p.mac)))?;
            let mut addresses = Vec::new();
            for (j, a) in p.addresses.iter().enumerate() {
                let prefix = parse_prefix(a)
                    .ok_or_else(|| err(field(&format!("addresses[{j}]")), format!("{a:?} is not address/length")))?;
                addresses.push(prefix);
            }
            let port = PortConfig {
                id: PortId(p.id),
                name: p.name.clone(),
                mac,
                vrf: VrfId(p.vrf),
                addresses,
                mtu: p.mtu,
                vlan: p.vlan,
                tx_ipv4_csum_offload: false,
                tx_vlan_offload: false,
            };
            b.set_port(port).map_err(|e| err(field("id"), e))?;
        }
        for (i, t) in self.tunnels.iter().enumerate() {
            let field = |f: &str| format!("tunnels[{i}].{f}");
            let address = match &t.address {
                Some(a) => {
                    Some(parse_prefix(a).ok_or_else(|| err(field("address"), format!("{a:?} is not address/length")))?)
                }
                None => None,
            };
            let tunnel = TunnelConfig {
                id: TunnelId(t.id),
                source: t.source,
                key: t.key,
                fvrf: VrfId(t.fvrf),
                vrf: VrfId(t.vrf),
                address,
                mtu: t.mtu,
                tcp_mss: t.tcp_mss,
                protection: t.protection,
                redirect: t.redirect,
            };
            b.set_tunnel(tunnel).map_err(|e| err(field("id"), e))?;
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            let mac = parse_mac(&n.mac)
                .ok_or_else(|| err(format!("neighbors[{i}].mac"), format!("{:?} is not a MAC address", n.mac)))?;
            b.set_neighbour(PortId(n.port), n.ip, mac).map_err(|e| err(format!("neighbors[{i}]"), e))?;
        }
        for (i, r) in self.routes.iter().enumerate() {
            let field = |f: &str| format!("routes[{i}].{f}");
            let (prefix, len) = parse_prefix(&r.prefix)
                .ok_or_else(|| err(field("prefix"), format!("{:?} is not prefix/length", r.prefix)))?;
            let nh = match &r.via {
                ViaJson::Keyword(k) if k == "drop" => NextHop::Drop,
                ViaJson::Keyword(k) => {
                    return Err(err(field("via"), format!("{k:?} is not \"drop\", a port or a tunnel")))
                }
                ViaJson::Port { port, gateway } => NextHop::Port { port: PortId(*port), gateway: *gateway },
                ViaJson::Tunnel { tunnel, peer } => NextHop::Tunnel { tunnel: TunnelId(*tunnel), peer: *peer },
            };
            b.add_route(VrfId(r.vrf), prefix, len, nh).map_err(|e| err(field("via"), e))?;
        }
        for (i, e) in self.teib.iter().enumerate() {
            let entry = TeibEntry { nbma: e.nbma, sa_out: e.sa_out.map(SaIndex), dynamic: false };
            b.set_teib(TunnelId(e.tunnel), e.overlay, entry).map_err(|x| err(format!("teib[{i}]"), x))?;
        }
        b.publish();
        Ok((b, reader))
    }

    /// The outbound sequence numbers to start from, per SA (for tests of the ESN wrap).
    pub fn seq_starts(&self) -> impl Iterator<Item = (SaIndex, u64)> + '_ {
        self.sas.iter().filter(|s| s.seq_start != 0).map(|s| (SaIndex(s.index), s.seq_start))
    }
}

fn sa_config(s: &SaJson, field: &dyn Fn(&str) -> String) -> Result<SaConfig, ConfigError> {
    let direction = match s.direction.as_str() {
        "in" => Direction::Inbound,
        "out" => Direction::Outbound,
        d => return Err(err(field("direction"), format!("{d:?} is not \"in\" or \"out\""))),
    };
    let mode = match s.mode.as_str() {
        "transport" => Mode::Transport,
        "tunnel" => Mode::Tunnel,
        m => return Err(err(field("mode"), format!("{m:?} is not \"transport\" or \"tunnel\""))),
    };
    let enc = hex::decode(&s.enc_key).map_err(|e| err(field("enc_key"), e))?;
    let cipher = match s.cipher.as_str() {
        c @ ("aes-gcm-128" | "aes-gcm-256") => {
            let key_len = if c == "aes-gcm-128" { 16 } else { 32 };
            if enc.len() != key_len + 4 {
                return Err(err(
                    field("enc_key"),
                    format!("{c} needs {} bytes (key and salt), got {}", key_len + 4, enc.len()),
                ));
            }
            if s.integrity.is_some() {
                return Err(err(field("integrity"), "AES-GCM has its own integrity; leave it null"));
            }
            let key = AesKey::from_slice(&enc[..key_len]).ok_or_else(|| err(field("enc_key"), "bad key length"))?;
            let mut salt = [0; 4];
            salt.copy_from_slice(&enc[key_len..]);
            CipherConfig::AesGcm { key, salt }
        }
        c @ ("aes-cbc-128" | "aes-cbc-256") => {
            let key_len = if c == "aes-cbc-128" { 16 } else { 32 };
            if enc.len() != key_len {
                return Err(err(field("enc_key"), format!("{c} needs {key_len} bytes, got {}", enc.len())));
            }
            let key = AesKey::from_slice(&enc).ok_or_else(|| err(field("enc_key"), "bad key length"))?;
            let auth_hex =
                s.auth_key.as_deref().ok_or_else(|| err(field("auth_key"), "AES-CBC needs an integrity key"))?;
            let auth = hex::decode(auth_hex).map_err(|e| err(field("auth_key"), e))?;
            let integrity = match s.integrity.as_deref() {
                Some("hmac-sha1-96") => {
                    Integrity::HmacSha1_96(auth.as_slice().try_into().map_err(|_| {
                        err(field("auth_key"), format!("hmac-sha1-96 needs 20 bytes, got {}", auth.len()))
                    })?)
                }
                Some("hmac-sha256-128") => Integrity::HmacSha256_128(auth.as_slice().try_into().map_err(|_| {
                    err(field("auth_key"), format!("hmac-sha256-128 needs 32 bytes, got {}", auth.len()))
                })?),
                other => {
                    return Err(err(field("integrity"), format!("{other:?} is not hmac-sha1-96 or hmac-sha256-128")))
                }
            };
            CipherConfig::AesCbc { key, integrity }
        }
        c => {
            return Err(err(
                field("cipher"),
                format!("{c:?} is not aes-gcm-128, aes-gcm-256, aes-cbc-128 or aes-cbc-256"),
            ))
        }
    };
    let lifetime = s.lifetime.clone().unwrap_or_default();
    let config = SaConfig {
        spi: s.spi,
        direction,
        mode,
        cipher,
        esn: s.esn,
        replay_window: s.replay_window,
        soft: Limits { bytes: lifetime.soft_bytes, packets: lifetime.soft_packets },
        hard: Limits { bytes: lifetime.hard_bytes, packets: lifetime.hard_packets },
        tunnel: TunnelId(s.tunnel),
        local: s.local,
        peer: s.peer,
        natt: s.natt.as_ref().map(|n| NattPorts { local: n.local_port, peer: n.peer_port }),
        owner: WorkerId(s.owner),
    };
    config.validate().map_err(|e| err(field("replay_window"), e))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::default_backend;

    const PORT: &str = r#"{"id": 0, "name": "wan", "mac": "02:00:00:00:00:01", "addresses": ["192.0.2.1/24"]}"#;

    fn refused(json: &str) -> String {
        let config = match StaticConfig::from_json(json) {
            Ok(c) => c,
            Err(e) => return e.to_string(),
        };
        let sas = match config.sa_db(default_backend(), [0; 16]) {
            Ok(sas) => sas,
            Err(e) => return e.to_string(),
        };
        match config.publish(sas) {
            Ok(_) => panic!("accepted: {json}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            refused(&format!(r#"{{"ports": [{PORT}], "tunnels": [{{"id": 1, "source": "192.0.2.1", "keyy": 5}}]}}"#));
        assert!(e.starts_with("tunnels[0].keyy: unknown field `keyy`"), "{e}");

        let sa = r#"{"index": 1, "spi": 4097, "direction": "in", "cipher": "aes-gcm-128",
                     "enc_key": "00112233445566778899aabbccddeeff", "tunnel": 1,
                     "local": "192.0.2.1", "peer": "198.51.100.1"}"#;
        let e = refused(&format!(r#"{{"ports": [{PORT}], "sas": [{sa}]}}"#));
        assert_eq!(e, "sas[0].enc_key: aes-gcm-128 needs 20 bytes (key and salt), got 16");

        let e = refused(&format!(
            r#"{{"ports": [{PORT}], "routes": [{{"prefix": "10.0.0.0/8", "via": {{"tunnel": 9, "peer": null}}}}]}}"#
        ));
        assert!(e.starts_with("routes[0].via: "), "{e}");
        assert!(e.contains("tunnel 9"), "{e}");

        let e = refused(&format!(r#"{{"ports": [{PORT}], "routes": [{{"prefix": "10.0.0.0/33", "via": "drop"}}]}}"#));
        assert_eq!(e, r#"routes[0].prefix: "10.0.0.0/33" is not prefix/length"#);
    }
}
