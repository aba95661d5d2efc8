//! From the configuration model to what the engines and the data plane take: the data plane's ports,
//! tunnels, routes, static TEIB entries and manual SAs; one NHRP tunnel configuration per mGRE tunnel;
//! the IKEv2 engine's configuration from the tunnels' protection profiles.
//!
//! Layer: management, pure (no I/O). Contract: [`Plan::new`] takes a configuration that
//! [`Config::validate`] accepted and either maps all of it or says which part the daemon cannot run
//! ([`PlanError`], naming the field). Port ids are the order of the interfaces' ports in the config;
//! SA indices `0..manual_sas.len()` are the manual SAs, later ones are IKE's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use dataplane::crypto::{AesKey, Backend, CipherConfig, Integrity};
use dataplane::ids::{PortId, SaIndex, TunnelId, VrfId, WorkerId};
use dataplane::sa::{Direction, Limits, Mode, Sa, SaConfig, SaDb, SaDbBuilder};
use dataplane::tables::{NextHop, PortConfig, TablesError, TablesPublisher, TunnelConfig};
use dataplane::teib::TeibEntry;
use ike::config::{self as ikecfg, EspProposal, IkeProposal, Keyring, PeerMatch};
use ike::message::{DhGroup as IkeGroup, EncrId, EsnId, IntegId, PrfId};
use thiserror::Error;

use crate::config::{
    Config, DhGroup, EspMode, EspTransform, IkeEncryption, ManualSa, Prefix, Prf, SaDirection, Tunnel,
};

/// Why a valid configuration cannot run here.
#[derive(Debug, Error)]
pub enum PlanError {
    /// Something the model allows that this daemon does not do (yet), with the field.
    #[error("{path}: {what}")]
    Unsupported {
        /// The field.
        path: String,
        /// What is not supported.
        what: String,
    },
    /// The data plane refused a table entry.
    #[error("{path}: {error}")]
    Tables {
        /// The field it came from.
        path: String,
        /// What the data plane said.
        error: TablesError,
    },
}

fn unsupported(path: impl Into<String>, what: impl Into<String>) -> PlanError {
    PlanError::Unsupported { path: path.into(), what: what.into() }
}

/// One mGRE tunnel as the daemon runs it.
#[derive(Debug, Clone)]
pub struct TunnelPlan {
    /// Its name (`Tunnel1`).
    pub name: String,
    /// The data plane's and NHRP's id.
    pub id: TunnelId,
    /// Local NBMA address (`tunnel source`'s first address).
    pub nbma: IpAddr,
    /// Overlay address and prefix length.
    pub address: Prefix,
    /// Front-door VRF.
    pub fvrf: VrfId,
    /// Overlay VRF.
    pub vrf: VrfId,
    /// GRE key.
    pub key: Option<u32>,
    /// IP MTU.
    pub mtu: u16,
    /// TCP MSS clamp.
    pub tcp_mss: Option<u16>,
    /// ESP required.
    pub protected: bool,
    /// The NHRP configuration.
    pub nhrp: nhrp::TunnelConfig,
}

/// A static route through a tunnel whose next hop is one of the tunnel's NHSs: when that NHS is down,
/// the daemon points it at another NHS of the tunnel that is up (the hub's routing protocol's job on
/// IOS; here the NHS state stands in for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NhsRoute {
    /// Overlay VRF.
    pub vrf: VrfId,
    /// Destination network.
    pub prefix: IpAddr,
    /// Its length.
    pub len: u8,
    /// The tunnel.
    pub tunnel: TunnelId,
    /// The configured next hop (an NHS).
    pub nhs: IpAddr,
}

impl TunnelPlan {
    /// The data plane's view of the tunnel.
    pub fn tables_config(&self) -> TunnelConfig {
        TunnelConfig {
            id: self.id,
            source: self.nbma,
            key: self.key,
            fvrf: self.fvrf,
            vrf: self.vrf,
            address: Some((self.address.addr, self.address.len)),
            mtu: self.mtu,
            tcp_mss: self.tcp_mss,
            protection: self.protected,
            redirect: self.nhrp.redirect,
        }
    }
}

/// Everything the daemon derives from one configuration.
#[derive(Debug)]
pub struct Plan {
    /// Profile port names, by [`PortId`].
    pub ports: Vec<String>,
    /// The interfaces on them, by [`PortId`].
    interfaces: Vec<crate::config::Interface>,
    /// VRF name → id.
    vrfs: HashMap<String, VrfId>,
    /// The tunnels.
    pub tunnels: Vec<TunnelPlan>,
    /// Static routes to install (path, vrf, prefix, len, next hop).
    routes: Vec<(String, VrfId, IpAddr, u8, NextHop)>,
    /// Routes whose next hop follows NHS state.
    pub nhs_routes: Vec<NhsRoute>,
    /// Manual SAs.
    manual: Vec<ManualSa>,
    /// The IKE engine's configuration, when a tunnel is protected.
    pub ike: Option<ikecfg::Config>,
    /// ESP anti-replay window of IKE's SAs.
    pub replay_window: u32,
}

impl Plan {
    /// Maps `config` (already validated).
    pub fn new(config: &Config) -> Result<Plan, PlanError> {
        let vrfs: HashMap<String, VrfId> = config.vrfs.iter().map(|v| (v.name.clone(), VrfId(v.id))).collect();
        let vrf = |name: &Option<String>| name.as_ref().and_then(|n| vrfs.get(n).copied()).unwrap_or_default();
        let mut ports: Vec<String> = Vec::new();
        let mut interfaces = Vec::new();
        for (i, iface) in config.interfaces.iter().enumerate() {
            if ports.contains(&iface.port) {
                return Err(unsupported(
                    format!("interfaces[{i}].port"),
                    format!("port {:?} already carries an interface (one interface per port)", iface.port),
                ));
            }
            ports.push(iface.port.clone());
            interfaces.push(iface.clone());
        }
        let mut tunnels = Vec::new();
        for (i, t) in config.tunnels.iter().enumerate() {
            tunnels.push(tunnel_plan(config, i, t, &vrf)?);
        }
        let mut routes = Vec::new();
        let mut nhs_routes = Vec::new();
        for (i, r) in config.routes.iter().enumerate() {
            let path = format!("routes[{i}]");
            let v = vrf(&r.vrf);
            let (prefix, len) = (r.prefix.network(), r.prefix.len);
            let nh = if r.discard {
                NextHop::Drop
            } else if let Some(name) = &r.interface {
                if let Some(t) = tunnels.iter().find(|t| &t.name == name) {
                    if let Some(nhs) = r.next_hop.filter(|a| t.nhrp.nhs.iter().any(|n| n.proto == *a)) {
                        nhs_routes.push(NhsRoute { vrf: v, prefix, len, tunnel: t.id, nhs });
                    }
                    NextHop::Tunnel { tunnel: t.id, peer: r.next_hop }
                } else if let Some(p) = interfaces.iter().position(|f| &f.name == name) {
                    NextHop::Port { port: PortId(p as u16), gateway: r.next_hop }
                } else {
                    return Err(unsupported(format!("{path}.interface"), format!("no interface {name:?}")));
                }
            } else if let Some(gw) = r.next_hop {
                let on_port =
                    interfaces.iter().position(|f| vrf(&f.vrf) == v && f.addresses.iter().any(|a| a.contains(gw)));
                let on_tunnel = tunnels.iter().find(|t| t.vrf == v && t.address.contains(gw));
                match (on_port, on_tunnel) {
                    (Some(p), _) => NextHop::Port { port: PortId(p as u16), gateway: Some(gw) },
                    (None, Some(t)) => {
                        if t.nhrp.nhs.iter().any(|n| n.proto == gw) {
                            nhs_routes.push(NhsRoute { vrf: v, prefix, len, tunnel: t.id, nhs: gw });
                        }
                        NextHop::Tunnel { tunnel: t.id, peer: Some(gw) }
                    }
                    (None, None) => {
                        return Err(unsupported(
                            format!("{path}.next_hop"),
                            format!("{gw} is on no connected subnet of the route's VRF"),
                        ))
                    }
                }
            } else {
                return Err(unsupported(path, "a route needs an interface, a next hop or discard"));
            };
            routes.push((path, v, prefix, len, nh));
        }
        let protected: Vec<&Tunnel> = config.tunnels.iter().filter(|t| t.protection.is_some()).collect();
        let (ike, replay_window) = match protected.first() {
            Some(t) => {
                let (c, w) = ike_config(config, t)?;
                (Some(c), w)
            }
            None => (None, 1024),
        };
        Ok(Plan {
            ports,
            interfaces,
            vrfs,
            tunnels,
            routes,
            nhs_routes,
            manual: config.manual_sas.clone(),
            ike,
            replay_window,
        })
    }

    /// The static routes: (config path, VRF, prefix, length, next hop).
    pub fn routes(&self) -> &[(String, VrfId, IpAddr, u8, NextHop)] {
        &self.routes
    }

    /// The interfaces, by [`PortId`].
    pub fn interfaces(&self) -> &[crate::config::Interface] {
        &self.interfaces
    }

    /// VRF names and ids.
    pub fn vrf_names(&self) -> impl Iterator<Item = (&str, VrfId)> {
        self.vrfs.iter().map(|(n, v)| (n.as_str(), *v))
    }

    /// The VRF id of a VRF name (`None`: the global VRF).
    pub fn vrf(&self, name: Option<&str>) -> VrfId {
        name.and_then(|n| self.vrfs.get(n).copied()).unwrap_or_default()
    }

    /// The tunnel with this id.
    pub fn tunnel(&self, id: TunnelId) -> Option<&TunnelPlan> {
        self.tunnels.iter().find(|t| t.id == id)
    }

    /// The protected tunnel whose source address is `local` (where IKE with that address belongs).
    pub fn tunnel_by_source(&self, local: IpAddr) -> Option<&TunnelPlan> {
        self.tunnels
            .iter()
            .find(|t| t.nbma == local && t.protected)
            .or_else(|| self.tunnels.iter().find(|t| t.nbma == local))
    }

    /// Number of SA indices the manual SAs take (IKE's start after them).
    pub fn manual_sa_count(&self) -> u32 {
        self.manual.len() as u32
    }

    /// The manual SAs as an SA database builder.
    pub fn manual_sas(&self, backend: Backend, iv_seed: [u8; 16]) -> Result<SaDbBuilder, PlanError> {
        let mut db = SaDb::builder();
        for (i, m) in self.manual.iter().enumerate() {
            let path = format!("manual_sas[{i}]");
            let t = self
                .tunnels
                .iter()
                .find(|t| t.name == m.tunnel)
                .ok_or_else(|| unsupported(format!("{path}.tunnel"), format!("no tunnel {:?}", m.tunnel)))?;
            let enc = hex::decode(&m.enc_key).map_err(|e| unsupported(format!("{path}.enc_key"), e.to_string()))?;
            let auth = match &m.auth_key {
                Some(a) => hex::decode(a).map_err(|e| unsupported(format!("{path}.auth_key"), e.to_string()))?,
                None => Vec::new(),
            };
            let cipher = cipher(m.transform, &enc, &auth).map_err(|e| unsupported(format!("{path}.enc_key"), e))?;
            let config = SaConfig {
                spi: m.spi,
                direction: match m.direction {
                    SaDirection::In => Direction::Inbound,
                    SaDirection::Out => Direction::Outbound,
                },
                mode: match m.mode {
                    EspMode::Transport => Mode::Transport,
                    EspMode::Tunnel => Mode::Tunnel,
                },
                cipher,
                esn: m.esn,
                replay_window: m.replay_window,
                soft: Limits::default(),
                hard: Limits::default(),
                tunnel: t.id,
                local: t.nbma,
                peer: m.peer,
                natt: None,
                owner: WorkerId(0),
            };
            let mut seed = iv_seed;
            seed[..4].copy_from_slice(&(i as u32).to_be_bytes());
            let sa = Sa::new(config, backend, seed).map_err(|e| unsupported(path.clone(), e.to_string()))?;
            db.insert(SaIndex(i as u32), Arc::new(sa)).map_err(|e| unsupported(path, e.to_string()))?;
        }
        Ok(db)
    }

    /// The outbound manual SA towards `peer` on `tunnel`, if one is configured.
    pub fn manual_sa_out(&self, tunnel: TunnelId, peer: IpAddr) -> Option<SaIndex> {
        let name = &self.tunnel(tunnel)?.name;
        self.manual
            .iter()
            .position(|m| &m.tunnel == name && m.peer == peer && m.direction == SaDirection::Out)
            .map(|i| SaIndex(i as u32))
    }

    /// Puts ports (with `macs`, by [`PortId`]), tunnels and static routes into `tables`.
    pub fn install(&self, tables: &mut TablesPublisher, macs: &[[u8; 6]]) -> Result<(), PlanError> {
        for (i, iface) in self.interfaces.iter().enumerate() {
            let mac = iface.mac.map(|m| m.0).or_else(|| macs.get(i).copied()).unwrap_or_default();
            let port = PortConfig {
                id: PortId(i as u16),
                name: iface.name.clone(),
                mac,
                vrf: self.vrf(iface.vrf.as_deref()),
                addresses: iface.addresses.iter().map(|a| (a.addr, a.len)).collect(),
                mtu: iface.mtu,
                vlan: iface.vlan,
                // Software checksums and tags: always right; the NIC's offloads are not used by the
                // daemon yet.
                tx_ipv4_csum_offload: false,
                tx_vlan_offload: false,
            };
            let path = format!("interfaces[{i}]");
            tables.set_port(port).map_err(|error| PlanError::Tables { path, error })?;
        }
        for (i, t) in self.tunnels.iter().enumerate() {
            let path = format!("tunnels[{i}]");
            tables.set_tunnel(t.tables_config()).map_err(|error| PlanError::Tables { path, error })?;
        }
        for (path, vrf, prefix, len, nh) in &self.routes {
            tables
                .add_route(*vrf, *prefix, *len, *nh)
                .map_err(|error| PlanError::Tables { path: path.clone(), error })?;
        }
        Ok(())
    }

    /// The static NHRP maps and NHSs of every tunnel, as TEIB entries (overlay → NBMA).
    pub fn static_teib(&self) -> Vec<(TunnelId, IpAddr, TeibEntry)> {
        let mut out = Vec::new();
        for t in &self.tunnels {
            let maps = t.nhrp.static_maps.iter().copied();
            let nhs = t.nhrp.nhs.iter().map(|n| (n.proto, n.nbma));
            for (overlay, nbma) in maps.chain(nhs) {
                let sa_out = self.manual_sa_out(t.id, nbma);
                out.push((t.id, overlay, TeibEntry { nbma, sa_out, dynamic: false }));
            }
        }
        out
    }
}

fn tunnel_plan(
    config: &Config,
    i: usize,
    t: &Tunnel,
    vrf: &dyn Fn(&Option<String>) -> VrfId,
) -> Result<TunnelPlan, PlanError> {
    let path = format!("tunnels[{i}]");
    let source = config.interfaces.iter().find(|f| f.name == t.source);
    let nbma = source.and_then(|f| f.addresses.first()).map(|a| a.addr).ok_or_else(|| {
        unsupported(format!("{path}.source"), format!("interface {:?} has no address to source the tunnel", t.source))
    })?;
    let mut n = nhrp::TunnelConfig::new(t.address.addr, nbma);
    n.network_id = t.nhrp.network_id;
    n.holding_time = u16::try_from(t.nhrp.holdtime).unwrap_or(u16::MAX);
    n.registration_interval = t.nhrp.registration_timeout.map(|r| u16::try_from(r).unwrap_or(u16::MAX));
    n.auth = t.nhrp.authentication.as_ref().map(|a| a.as_bytes().to_vec());
    n.mtu = t.mtu;
    n.nhs = t
        .nhrp
        .nhs
        .iter()
        .map(|s| nhrp::NhsConfig { proto: s.address, nbma: s.nbma, priority: s.priority, cluster: s.cluster })
        .collect();
    n.max_connections = t.nhrp.clusters.iter().map(|c| (c.cluster, c.max_connections)).collect();
    n.redirect = t.nhrp.redirect;
    n.shortcut = t.nhrp.shortcut;
    n.static_maps = t.nhrp.map.iter().map(|m| (m.overlay, m.nbma)).collect();
    // The networks behind us: connected subnets of the tunnel's overlay VRF (other than tunnels'),
    // which we answer resolution requests for (RFC 2332 §5.2.2, authoritative with the prefix length).
    let overlay = vrf(&t.vrf);
    n.local_networks = config
        .interfaces
        .iter()
        .filter(|f| vrf(&f.vrf) == overlay)
        .flat_map(|f| f.addresses.iter())
        .filter(|a| a.addr.is_ipv4() == t.address.addr.is_ipv4())
        .map(|a| (a.network(), a.len))
        .collect();
    Ok(TunnelPlan {
        name: t.name.clone(),
        id: TunnelId(t.id),
        nbma,
        address: t.address,
        fvrf: vrf(&t.fvrf),
        vrf: overlay,
        key: t.key,
        mtu: t.mtu,
        tcp_mss: t.tcp_mss,
        protected: t.protection.is_some(),
        nhrp: n,
    })
}

/// The IKE engine's configuration from the first protected tunnel's IPsec profile (one IKE engine per
/// node: every protected tunnel must use profiles that agree, which is how DMVPN boxes are built).
fn ike_config(config: &Config, t: &Tunnel) -> Result<(ikecfg::Config, u32), PlanError> {
    let name = t.protection.as_deref().unwrap_or_default();
    let ipsec = config.crypto.ipsec_profiles.iter().find(|p| p.name == name).ok_or_else(|| {
        unsupported("crypto.ipsec_profiles", format!("no IPsec profile {name:?} (tunnel {})", t.name))
    })?;
    let profile = config
        .crypto
        .ike_profiles
        .iter()
        .find(|p| p.name == ipsec.ike_profile)
        .ok_or_else(|| unsupported("crypto.ike_profiles", format!("no IKE profile {:?}", ipsec.ike_profile)))?;
    let pi = config.crypto.ike_profiles.iter().position(|p| p.name == profile.name).unwrap_or(0);
    let path = format!("crypto.ike_profiles[{pi}]");
    if profile.authentication.local != profile.authentication.remote {
        return Err(unsupported(
            format!("{path}.authentication"),
            "local and remote must use the same method (pre-share or signature)",
        ));
    }
    let certs = match (profile.authentication.local, &profile.certificate) {
        (crate::config::AuthMethod::Signature, Some(cert)) => Some(certificates(&format!("{path}.certificate"), cert)?),
        (crate::config::AuthMethod::Signature, None) => {
            return Err(unsupported(format!("{path}.certificate"), "signature authentication needs a certificate"));
        }
        (crate::config::AuthMethod::PreShare, _) => None,
    };
    let local_id = match (&profile.local_identity, &certs) {
        (Some(id), _) => ikecfg::id_fqdn(id),
        // With a certificate and no identity configured: its subject (ID_DER_ASN1_DN), which it proves.
        (None, Some((local, _))) => ike::message::Id {
            ty: ike::message::IdType::ID_DER_ASN1_DN,
            data: local.chain().first().and_then(|c| ike::cert::subject(c)).unwrap_or_default(),
        },
        (None, None) if !config.hostname.is_empty() => ikecfg::id_fqdn(&config.hostname),
        (None, None) => ikecfg::id_fqdn("dmvpnd"),
    };
    if certs.as_ref().is_some_and(|(local, _)| !local.names(&local_id)) {
        // A peer would refuse it: the identity must be in the certificate (RFC 7296 §3.5).
        return Err(unsupported(format!("{path}.local_identity"), "not in the certificate (a subjectAltName dNSName)"));
    }
    let mut c = ikecfg::Config::new(local_id);
    if let Some((local, trust)) = certs {
        c.auth.default = ikecfg::AuthKind::Certificate;
        c.local_cert = Some(local);
        c.trust = trust;
    }
    let mut keyring = Keyring::default();
    if let Some(kr) = profile.keyring.as_ref().and_then(|k| config.crypto.keyrings.iter().find(|r| &r.name == k)) {
        for p in &kr.peers {
            let who = match (&p.identity, &p.address) {
                (Some(id), _) => PeerMatch::Id(ikecfg::id_fqdn(id)),
                (None, Some(a)) if a.len == 0 => PeerMatch::Any,
                (None, Some(a)) => PeerMatch::Address { net: a.network(), prefix: a.len },
                (None, None) => PeerMatch::Any,
            };
            keyring = keyring.with(who, p.pre_shared_key.as_bytes().to_vec());
        }
    }
    c.keyring = keyring;
    let mut proposals = Vec::new();
    for p in &profile.proposals {
        let groups: Vec<IkeGroup> = p.group.iter().map(|g| ike_group(*g)).collect();
        for e in &p.encryption {
            for prf in &p.prf {
                let (encr, key_bits, integ) = ike_encr(*e);
                proposals.push(IkeProposal { encr, key_bits, integ, prf: ike_prf(*prf), groups: groups.clone() });
            }
        }
    }
    c.ike_proposals = proposals;
    let esn = if ipsec.esn { vec![EsnId::ESN, EsnId::NO_ESN] } else { vec![EsnId::NO_ESN] };
    c.esp_proposals = ipsec
        .transforms
        .iter()
        .map(|t| {
            let (encr, key_bits, integ) = esp_encr(*t);
            EspProposal { encr, key_bits, integ, esn: esn.clone() }
        })
        .collect();
    c.transport = ipsec.mode == EspMode::Transport;
    c.allow_tunnel = ipsec.mode == EspMode::Tunnel;
    c.ike_lifetime = Duration::from_secs(u64::from(profile.lifetime));
    c.child_lifetime = Duration::from_secs(u64::from(ipsec.lifetime));
    c.rekey_margin = c.child_lifetime.min(c.ike_lifetime) / 10;
    c.dpd = profile.dpd.map(|d| ikecfg::Dpd {
        interval: Duration::from_secs(u64::from(d.interval)),
        retry_interval: Duration::from_secs(u64::from(d.retry)),
        retries: d.retries,
    });
    Ok((c, ipsec.replay_window))
}

/// Our certificate chain and key, the CAs and CRLs of a profile's `certificate` (PEM or DER files),
/// each error naming its field.
fn certificates(
    path: &str,
    c: &crate::config::Certificate,
) -> Result<(ike::cert::LocalCert, ike::cert::TrustStore), PlanError> {
    let read = |field: String, file: &str| {
        std::fs::read(file).map_err(|e| unsupported(field, format!("cannot read {file:?}: {e}")))
    };
    let field = format!("{path}.cert");
    let chain = ike::cert::certificates_from_pem(&read(field.clone(), &c.cert)?)
        .map_err(|e| unsupported(field.clone(), e.to_string()))?;
    let field = format!("{path}.key");
    let key = ike::cert::private_key_from_pem(&read(field.clone(), &c.key)?)
        .map_err(|e| unsupported(&field, e.to_string()))?;
    let local =
        ike::cert::LocalCert::new(chain, key).map_err(|e| unsupported(format!("{path}.cert"), e.to_string()))?;
    let mut cas = Vec::new();
    for (i, f) in c.ca.iter().enumerate() {
        let field = format!("{path}.ca[{i}]");
        cas.extend(
            ike::cert::certificates_from_pem(&read(field.clone(), f)?)
                .map_err(|e| unsupported(field, e.to_string()))?,
        );
    }
    let mut crls = Vec::new();
    for (i, f) in c.crl.iter().enumerate() {
        let field = format!("{path}.crl[{i}]");
        crls.extend(ike::cert::crls_from_pem(&read(field.clone(), f)?).map_err(|e| unsupported(field, e.to_string()))?);
    }
    let trust = ike::cert::TrustStore::new(cas, crls).map_err(|e| unsupported(format!("{path}.ca"), e.to_string()))?;
    Ok((local, trust))
}

fn ike_group(g: DhGroup) -> IkeGroup {
    match g {
        DhGroup::Modp2048 => IkeGroup::MODP_2048,
        DhGroup::Ecp256 => IkeGroup::ECP_256,
        DhGroup::Ecp384 => IkeGroup::ECP_384,
        DhGroup::Ecp521 => IkeGroup::ECP_521,
        DhGroup::Curve25519 => IkeGroup::CURVE25519,
    }
}

fn ike_prf(p: Prf) -> PrfId {
    match p {
        Prf::Sha256 => PrfId::PRF_HMAC_SHA2_256,
        Prf::Sha384 => PrfId::PRF_HMAC_SHA2_384,
        Prf::Sha512 => PrfId::PRF_HMAC_SHA2_512,
    }
}

fn ike_encr(e: IkeEncryption) -> (EncrId, u16, IntegId) {
    match e {
        IkeEncryption::AesGcm128 => (EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE),
        IkeEncryption::AesGcm256 => (EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE),
        IkeEncryption::AesCbc128Sha256 => (EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA2_256_128),
        IkeEncryption::AesCbc256Sha256 => (EncrId::ENCR_AES_CBC, 256, IntegId::AUTH_HMAC_SHA2_256_128),
        IkeEncryption::AesCbc256Sha512 => (EncrId::ENCR_AES_CBC, 256, IntegId::AUTH_HMAC_SHA2_512_256),
    }
}

fn esp_encr(t: EspTransform) -> (EncrId, u16, IntegId) {
    match t {
        EspTransform::AesGcm128 => (EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE),
        EspTransform::AesGcm256 => (EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE),
        EspTransform::AesCbc128Sha256 => (EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA2_256_128),
        EspTransform::AesCbc256Sha256 => (EncrId::ENCR_AES_CBC, 256, IntegId::AUTH_HMAC_SHA2_256_128),
        EspTransform::AesCbc128Sha1 => (EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA1_96),
        EspTransform::AesCbc256Sha1 => (EncrId::ENCR_AES_CBC, 256, IntegId::AUTH_HMAC_SHA1_96),
    }
}

/// The data plane's cipher for a manual SA's transform and keys (GCM: key then 4-byte salt).
fn cipher(t: EspTransform, enc: &[u8], auth: &[u8]) -> Result<CipherConfig, String> {
    let (encr, key_bits, integ) = esp_encr(t);
    esp_cipher(encr, key_bits, integ, enc, auth)
}

/// The data plane's cipher for negotiated ESP transforms and keys (`salt` appended to `enc` for GCM).
pub fn esp_cipher(
    encr: EncrId,
    key_bits: u16,
    integ: IntegId,
    enc: &[u8],
    auth: &[u8],
) -> Result<CipherConfig, String> {
    let key_len = usize::from(key_bits / 8);
    if encr == EncrId::ENCR_AES_GCM_16 {
        if enc.len() != key_len + 4 {
            return Err(format!("AES-GCM-{key_bits} needs {} bytes (key and salt), got {}", key_len + 4, enc.len()));
        }
        let key = AesKey::from_slice(&enc[..key_len]).ok_or("bad AES key length")?;
        let mut salt = [0; 4];
        salt.copy_from_slice(&enc[key_len..]);
        return Ok(CipherConfig::AesGcm { key, salt });
    }
    if encr != EncrId::ENCR_AES_CBC {
        return Err(format!("ESP encryption {encr:?} is not supported by the data plane"));
    }
    if enc.len() != key_len {
        return Err(format!("AES-CBC-{key_bits} needs {key_len} bytes, got {}", enc.len()));
    }
    let key = AesKey::from_slice(enc).ok_or("bad AES key length")?;
    let integrity = match integ {
        IntegId::AUTH_HMAC_SHA1_96 => Integrity::HmacSha1_96(
            auth.try_into().map_err(|_| format!("HMAC-SHA1-96 needs 20 bytes, got {}", auth.len()))?,
        ),
        IntegId::AUTH_HMAC_SHA2_256_128 => Integrity::HmacSha256_128(
            auth.try_into().map_err(|_| format!("HMAC-SHA256-128 needs 32 bytes, got {}", auth.len()))?,
        ),
        other => return Err(format!("ESP integrity {other:?} is not supported by the data plane")),
    };
    Ok(CipherConfig::AesCbc { key, integrity })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> Config {
        let text = std::fs::read_to_string(format!("{}/configs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        Config::from_toml(&text).unwrap()
    }

    #[test]
    fn shipped_spoke_maps_to_nhs_ike_and_an_nhs_following_route() {
        let plan = Plan::new(&shipped("spoke.toml")).unwrap();
        assert_eq!(plan.ports, ["port0", "port1"]);
        let t = &plan.tunnels[0];
        assert_eq!((t.nbma.to_string(), t.protected, t.fvrf, t.vrf), ("203.0.113.10".into(), true, VrfId(1), VrfId(0)));
        assert_eq!(t.nhrp.nhs.len(), 2);
        assert_eq!(t.nhrp.auth.as_deref(), Some(&b"dmvpn1"[..]));
        assert_eq!(t.nhrp.local_networks, vec![("10.2.1.0".parse().unwrap(), 24)]);
        assert_eq!(plan.nhs_routes.len(), 1);
        assert_eq!(plan.nhs_routes[0].nhs.to_string(), "10.0.0.1");
        let ike = plan.ike.unwrap();
        assert_eq!(ike.keyring.lookup(None, "192.0.2.1".parse().unwrap()), Some(&b"dmvpn-lab-key"[..]));
        assert!(ike.transport);
        assert_eq!(ike.esp_proposals[0].key_bits, 256);
    }

    #[test]
    fn shipped_hub_installs_into_the_tables() {
        let plan = Plan::new(&shipped("hub.toml")).unwrap();
        let (mut tables, _reader) = TablesPublisher::new();
        plan.install(&mut tables, &[[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]]).unwrap();
        tables.publish();
        let t = tables.staged();
        assert!(t.tunnel(TunnelId(1)).is_some_and(|t| t.protection && t.redirect && t.key == Some(1001)));
        assert_eq!(
            t.resolve(VrfId(1), "203.0.113.7".parse().unwrap()),
            Some(&NextHop::Port { port: PortId(0), gateway: Some("192.0.2.254".parse().unwrap()) })
        );
        assert_eq!(t.resolve(VrfId(0), "10.9.9.9".parse().unwrap()), Some(&NextHop::Drop));
    }

    #[test]
    fn two_interfaces_on_one_port_are_refused_with_the_field() {
        let mut c = shipped("hub.toml");
        c.interfaces[1].port = "port0".into();
        let e = Plan::new(&c).unwrap_err().to_string();
        assert!(e.starts_with("interfaces[1].port: "), "{e}");
    }

    #[test]
    fn signature_authentication_loads_the_certificate_files() {
        // A CA and a hub certificate made with rcgen, written as PEM files.
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "DMVPN CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["hub.example".into()]).unwrap();
        leaf.distinguished_name.push(rcgen::DnType::CommonName, "hub");
        let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
        let file = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p.to_string_lossy().into_owned()
        };
        let cert = crate::config::Certificate {
            cert: file("hub.pem", leaf.pem()),
            key: file("hub.key", key.serialize_pem()),
            ca: vec![file("ca.pem", ca.pem())],
            crl: vec![],
        };
        let mut c = shipped("hub.toml");
        let signature = crate::config::AuthMethod::Signature;
        c.crypto.ike_profiles[0].authentication = crate::config::IkeAuth { local: signature, remote: signature };
        c.crypto.ike_profiles[0].certificate = Some(cert.clone());
        c.crypto.ike_profiles[0].local_identity = None;
        let ike = Plan::new(&c).unwrap().ike.unwrap();
        assert_eq!(ike.auth.default, ikecfg::AuthKind::Certificate);
        assert_eq!(ike.local_cert.as_ref().unwrap().chain(), [leaf.der().to_vec()]);
        assert_eq!(ike.trust.certreq().len(), 20);
        // No identity configured: the certificate's subject.
        assert_eq!(ike.local_id.ty, ike::message::IdType::ID_DER_ASN1_DN);
        assert_eq!(Some(ike.local_id.data), ike::cert::subject(leaf.der()));
        // A missing file and a key that is not the certificate's name their fields.
        let mut bad = c.clone();
        bad.crypto.ike_profiles[0].certificate.as_mut().unwrap().ca[0] = "/nonexistent/ca.pem".into();
        let e = Plan::new(&bad).unwrap_err().to_string();
        assert!(e.starts_with("crypto.ike_profiles[0].certificate.ca[0]: cannot read"), "{e}");
        let mut bad = c.clone();
        let other = rcgen::KeyPair::generate().unwrap();
        bad.crypto.ike_profiles[0].certificate.as_mut().unwrap().key = file("other.key", other.serialize_pem());
        let e = Plan::new(&bad).unwrap_err().to_string();
        assert!(e.starts_with("crypto.ike_profiles[0].certificate.cert: private key: does not match"), "{e}");
        // An identity the certificate does not name is refused; one it names is taken.
        let mut bad = c.clone();
        bad.crypto.ike_profiles[0].local_identity = Some("other.example".into());
        let e = Plan::new(&bad).unwrap_err().to_string();
        assert!(e.starts_with("crypto.ike_profiles[0].local_identity: not in the certificate"), "{e}");
        bad.crypto.ike_profiles[0].local_identity = Some("hub.example".into());
        assert_eq!(Plan::new(&bad).unwrap().ike.unwrap().local_id, ikecfg::id_fqdn("hub.example"));
        // Mixed methods are refused.
        c.crypto.ike_profiles[0].authentication.remote = crate::config::AuthMethod::PreShare;
        let e = Plan::new(&c).unwrap_err().to_string();
        assert!(e.starts_with("crypto.ike_profiles[0].authentication: "), "{e}");
    }
}
