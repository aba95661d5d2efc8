//! The appliance's configuration: one versioned serde model that the config file, the REST API, the CLI
//! and the tests all go through.
//!
//! Layer: management. Contract:
//! - [`Config::from_toml`] / [`Config::from_json`] parse; an error names the field's path
//!   (`tunnels[0].nhrp.nhs[1].priority: invalid type: string "high", expected u8`).
//! - [`Config::validate`] checks everything a parse cannot: names unique and references resolved
//!   (VRFs, interfaces, tunnels, profiles, keyrings), addresses in their subnets, ranges, and the
//!   combinations IOS refuses. It reports every problem at once, each with its path.
//! - A [`Config`] that validates can be applied whole; [`store::ConfigStore`] applies and persists it
//!   atomically, so that a running appliance never holds half a change and a restart keeps everything.
//!
//! The vocabulary is IOS's: `interface Tunnel0` with `tunnel source`, `tunnel key`, `tunnel vrf` (the
//! front-door VRF), `tunnel route-via`, `ip nhrp nhs … nbma … priority … cluster …`, `ip nhrp redirect`
//! / `shortcut`, `crypto ikev2 keyring|profile|proposal`, `crypto ipsec profile`.

mod types;
mod validate;

pub mod store;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use types::{Mac, Prefix};

/// The model version this build reads and writes.
pub const VERSION: u32 = 1;

/// The whole configuration of one appliance (hub or spoke: a tunnel with NHSs configured is a spoke's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Model version; must be [`VERSION`].
    pub version: u32,
    /// Name of the box, as `show` commands print it.
    #[serde(default)]
    pub hostname: String,
    /// VRFs besides the global one (`vrf definition`). The global VRF has no name here.
    #[serde(default)]
    pub vrfs: Vec<Vrf>,
    /// Layer-3 interfaces on the hardware profile's ports.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// mGRE tunnels.
    #[serde(default)]
    pub tunnels: Vec<Tunnel>,
    /// IKEv2 and IPsec.
    #[serde(default)]
    pub crypto: Crypto,
    /// Static routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Manually keyed SAs, for the lab and for debugging (no IKE).
    #[serde(default)]
    pub manual_sas: Vec<ManualSa>,
}

/// A VRF (`vrf definition NAME` with its route distinguisher's local id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vrf {
    /// Name, as interfaces, tunnels and routes refer to it.
    pub name: String,
    /// Table id, 1..=4095 (0 is the global table).
    pub id: u16,
}

/// A layer-3 interface on a port of the hardware profile (`interface GigabitEthernet0/0/0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Name, unique among interfaces and tunnels.
    pub name: String,
    /// The hardware profile's port it runs on.
    pub port: String,
    /// `vrf forwarding`; `None` is the global VRF.
    #[serde(default)]
    pub vrf: Option<String>,
    /// `ip address` / `ipv6 address`, with prefix length.
    #[serde(default)]
    pub addresses: Vec<Prefix>,
    /// Layer-3 MTU, 576..=9216.
    #[serde(default = "default_interface_mtu")]
    pub mtu: u16,
    /// 802.1Q subinterface (`encapsulation dot1Q N`), 1..=4094.
    #[serde(default)]
    pub vlan: Option<u16>,
    /// MAC address to use instead of the port's own.
    #[serde(default)]
    pub mac: Option<Mac>,
}

fn default_interface_mtu() -> u16 {
    1500
}

/// An mGRE tunnel (`interface TunnelN` with `tunnel mode gre multipoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tunnel {
    /// Name, unique among interfaces and tunnels.
    pub name: String,
    /// Tunnel number, 0..=65534; the data plane's tunnel id.
    pub id: u16,
    /// `tunnel source`: the interface whose first address is the local NBMA address.
    pub source: String,
    /// `vrf forwarding`: the overlay VRF; `None` is the global VRF.
    #[serde(default)]
    pub vrf: Option<String>,
    /// `tunnel vrf`: the front-door VRF where the NBMA addresses are routed; `None` is the global VRF.
    #[serde(default)]
    pub fvrf: Option<String>,
    /// `tunnel key` (RFC 2890); tells apart tunnels with one source.
    #[serde(default)]
    pub key: Option<u32>,
    /// `ip address`: overlay address and prefix length.
    pub address: Prefix,
    /// `ip mtu`, 576..=9000.
    #[serde(default = "default_tunnel_mtu")]
    pub mtu: u16,
    /// `ip tcp adjust-mss`, 500..=1460.
    #[serde(default)]
    pub tcp_mss: Option<u16>,
    /// `tunnel protection ipsec profile NAME`.
    #[serde(default)]
    pub protection: Option<String>,
    /// `tunnel route-via INTERFACE mandatory|preferred`: which front-door interface carries the tunnel.
    #[serde(default)]
    pub route_via: Option<RouteVia>,
    /// NHRP on this tunnel.
    #[serde(default)]
    pub nhrp: Nhrp,
}

fn default_tunnel_mtu() -> u16 {
    1400
}

/// `tunnel route-via`: lock the tunnel's packets to one front-door interface (dual ISP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteVia {
    /// The front-door interface.
    pub interface: String,
    /// `mandatory`: no other way, the tunnel's packets are dropped if that interface has no route;
    /// `preferred`: fall back to any route.
    pub mode: RouteViaMode,
}

/// How strict `tunnel route-via` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteViaMode {
    /// Only through that interface.
    Mandatory,
    /// Through that interface when it has a route.
    Preferred,
}

/// NHRP settings of a tunnel (`ip nhrp …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nhrp {
    /// `ip nhrp network-id`, 1..=4294967295.
    #[serde(default = "default_network_id")]
    pub network_id: u32,
    /// `ip nhrp authentication`: Cisco's plaintext string, at most 8 characters.
    #[serde(default)]
    pub authentication: Option<String>,
    /// `ip nhrp holdtime` in seconds, 1..=65535: how long what we register or answer stays valid.
    #[serde(default = "default_holdtime")]
    pub holdtime: u32,
    /// `ip nhrp registration timeout` in seconds; `None` is a third of the holdtime.
    #[serde(default)]
    pub registration_timeout: Option<u32>,
    /// `ip nhrp redirect` (Phase 3, hub): send Traffic Indications for hairpinned traffic.
    #[serde(default)]
    pub redirect: bool,
    /// `ip nhrp shortcut` (Phase 3, spoke): install shortcuts from resolution replies.
    #[serde(default)]
    pub shortcut: bool,
    /// `ip nhrp nhs`: the next-hop servers this box registers with (a spoke's hubs).
    #[serde(default)]
    pub nhs: Vec<Nhs>,
    /// `ip nhrp nhs cluster N max-connections M`.
    #[serde(default)]
    pub clusters: Vec<NhsCluster>,
    /// `ip nhrp map`: static overlay → NBMA entries.
    #[serde(default)]
    pub map: Vec<NhrpMap>,
    /// `ip nhrp map multicast dynamic`: registered peers receive routing-protocol multicast.
    #[serde(default)]
    pub multicast_dynamic: bool,
    /// `ip nhrp map multicast ADDRESS`: NBMA addresses that always receive it.
    #[serde(default)]
    pub multicast: Vec<std::net::IpAddr>,
}

fn default_network_id() -> u32 {
    1
}

fn default_holdtime() -> u32 {
    // IOS's default (`ip nhrp holdtime`); DMVPN designs often lower it to 300-600.
    7200
}

impl Default for Nhrp {
    fn default() -> Self {
        Self {
            network_id: default_network_id(),
            authentication: None,
            holdtime: default_holdtime(),
            registration_timeout: None,
            redirect: false,
            shortcut: false,
            nhs: Vec::new(),
            clusters: Vec::new(),
            map: Vec::new(),
            multicast_dynamic: false,
            multicast: Vec::new(),
        }
    }
}

/// One next-hop server (`ip nhrp nhs ADDRESS nbma NBMA priority P cluster C`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nhs {
    /// The NHS's overlay address, in the tunnel's subnet.
    pub address: std::net::IpAddr,
    /// Its NBMA address.
    pub nbma: std::net::IpAddr,
    /// 0 (most preferred) ..= 255.
    #[serde(default)]
    pub priority: u8,
    /// 0..=10.
    #[serde(default)]
    pub cluster: u8,
}

/// `ip nhrp nhs cluster N max-connections M`: register with at most M of cluster N's NHSs at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NhsCluster {
    /// 0..=10.
    pub cluster: u8,
    /// 1..=255.
    pub max_connections: u8,
}

/// A static NHRP entry (`ip nhrp map OVERLAY NBMA`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NhrpMap {
    /// Overlay address, in the tunnel's subnet.
    pub overlay: std::net::IpAddr,
    /// NBMA address.
    pub nbma: std::net::IpAddr,
}

/// IKEv2 and IPsec (`crypto ikev2 …`, `crypto ipsec …`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Crypto {
    /// `crypto ikev2 keyring`.
    #[serde(default)]
    pub keyrings: Vec<Keyring>,
    /// `crypto ikev2 profile` (with its proposals inline).
    #[serde(default)]
    pub ike_profiles: Vec<IkeProfile>,
    /// `crypto ipsec profile` (with its transform sets inline).
    #[serde(default)]
    pub ipsec_profiles: Vec<IpsecProfile>,
}

/// Pre-shared keys by peer (`crypto ikev2 keyring`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Keyring {
    /// Name.
    pub name: String,
    /// Its peers, matched by identity first, then by address (longest prefix; `0.0.0.0/0` is the
    /// wildcard a hub uses for every spoke).
    pub peers: Vec<KeyringPeer>,
}

/// One key of a keyring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyringPeer {
    /// Name, for `show` output.
    pub name: String,
    /// The peer's IKE identity (FQDN, e-mail, key id or address, as it sends it).
    #[serde(default)]
    pub identity: Option<String>,
    /// The peer's address or a prefix of them.
    #[serde(default)]
    pub address: Option<Prefix>,
    /// The key (at least 8 characters). Shown masked by `show` commands and the API.
    pub pre_shared_key: String,
}

/// An IKEv2 profile: proposals, authentication, lifetimes, liveness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IkeProfile {
    /// Name.
    pub name: String,
    /// Proposals in order of preference.
    pub proposals: Vec<IkeProposal>,
    /// How we prove who we are, and how peers must.
    pub authentication: IkeAuth,
    /// Our identity; `None` is our address.
    #[serde(default)]
    pub local_identity: Option<String>,
    /// The keyring for pre-shared keys.
    #[serde(default)]
    pub keyring: Option<String>,
    /// Our certificate and key (PEM files), for signature authentication.
    #[serde(default)]
    pub certificate: Option<Certificate>,
    /// IKE SA lifetime in seconds, 120..=86400 (IOS's default 86400).
    #[serde(default = "default_ike_lifetime")]
    pub lifetime: u32,
    /// Dead peer detection (`dpd INTERVAL RETRY on-demand|periodic`).
    #[serde(default)]
    pub dpd: Option<Dpd>,
    /// NAT keepalive interval in seconds (`crypto ikev2 nat keepalive`), 5..=3600.
    #[serde(default)]
    pub nat_keepalive: Option<u32>,
}

fn default_ike_lifetime() -> u32 {
    86_400
}

/// One IKE proposal: every combination of its lists is offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IkeProposal {
    /// Encryption algorithms.
    pub encryption: Vec<IkeEncryption>,
    /// Pseudo-random functions.
    pub prf: Vec<Prf>,
    /// Diffie-Hellman groups.
    pub group: Vec<DhGroup>,
}

/// IKE encryption transforms (RFC 7296 §3.3.2, RFC 5282 for GCM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum IkeEncryption {
    /// AES-GCM with a 16-byte ICV, 128-bit key.
    #[serde(rename = "aes-gcm-128")]
    AesGcm128,
    /// AES-GCM with a 16-byte ICV, 256-bit key.
    #[serde(rename = "aes-gcm-256")]
    AesGcm256,
    /// AES-CBC, 128-bit key, with HMAC-SHA-256-128 integrity.
    #[serde(rename = "aes-cbc-128-sha256")]
    AesCbc128Sha256,
    /// AES-CBC, 256-bit key, with HMAC-SHA-256-128 integrity.
    #[serde(rename = "aes-cbc-256-sha256")]
    AesCbc256Sha256,
    /// AES-CBC, 256-bit key, with HMAC-SHA-512-256 integrity.
    #[serde(rename = "aes-cbc-256-sha512")]
    AesCbc256Sha512,
}

/// IKE pseudo-random functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Prf {
    /// PRF_HMAC_SHA2_256.
    Sha256,
    /// PRF_HMAC_SHA2_384.
    Sha384,
    /// PRF_HMAC_SHA2_512.
    Sha512,
}

/// Diffie-Hellman groups (RFC 3526, RFC 5903, RFC 8031).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DhGroup {
    /// 2048-bit MODP.
    #[serde(rename = "14")]
    Modp2048,
    /// 256-bit random ECP.
    #[serde(rename = "19")]
    Ecp256,
    /// 384-bit random ECP.
    #[serde(rename = "20")]
    Ecp384,
    /// 521-bit random ECP.
    #[serde(rename = "21")]
    Ecp521,
    /// Curve25519.
    #[serde(rename = "31")]
    Curve25519,
}

/// IKE authentication methods, ours and the peers'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IkeAuth {
    /// How we authenticate.
    pub local: AuthMethod,
    /// How peers must.
    pub remote: AuthMethod,
}

/// An IKE authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// Pre-shared key from the keyring.
    PreShare,
    /// RFC 7427 digital signature with the certificate's key (RSA or ECDSA).
    Signature,
}

/// Certificate files for signature authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// Our certificate (PEM).
    pub cert: String,
    /// Its private key (PEM).
    pub key: String,
    /// Trusted CA certificates (PEM).
    pub ca: Vec<String>,
    /// Certificate revocation lists (PEM or DER).
    #[serde(default)]
    pub crl: Vec<String>,
}

/// Dead peer detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dpd {
    /// Seconds of silence before a check, 10..=3600.
    pub interval: u32,
    /// Seconds between retransmissions of an unanswered check, 2..=60.
    pub retry: u32,
    /// Checks sent before the peer is declared dead, 1..=10.
    #[serde(default = "default_dpd_retries")]
    pub retries: u32,
}

fn default_dpd_retries() -> u32 {
    5
}

/// An IPsec profile: what protects a tunnel (`crypto ipsec profile` with its transform set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpsecProfile {
    /// Name, as `tunnel protection` names it.
    pub name: String,
    /// The IKE profile that negotiates it.
    pub ike_profile: String,
    /// ESP transforms in order of preference.
    pub transforms: Vec<EspTransform>,
    /// Transport (DMVPN's usual) or tunnel mode.
    #[serde(default)]
    pub mode: EspMode,
    /// SA lifetime in seconds, 120..=86400 (IOS's default 3600).
    #[serde(default = "default_ipsec_lifetime")]
    pub lifetime: u32,
    /// SA lifetime in kilobytes, 2560..=4294967295 (IOS's range); `None` for none.
    #[serde(default)]
    pub lifetime_kilobytes: Option<u64>,
    /// Anti-replay window in packets: 64, 128, ..., 4096.
    #[serde(default = "default_replay_window")]
    pub replay_window: u32,
    /// Offer extended sequence numbers (RFC 4303 §2.2.1).
    #[serde(default = "default_true")]
    pub esn: bool,
    /// `set pfs group N` for CREATE_CHILD_SA.
    #[serde(default)]
    pub pfs: Option<DhGroup>,
}

fn default_ipsec_lifetime() -> u32 {
    3600
}

fn default_replay_window() -> u32 {
    1024
}

fn default_true() -> bool {
    true
}

/// ESP transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EspTransform {
    /// AES-GCM-128 (RFC 4106).
    #[serde(rename = "aes-gcm-128")]
    AesGcm128,
    /// AES-GCM-256 (RFC 4106).
    #[serde(rename = "aes-gcm-256")]
    AesGcm256,
    /// AES-CBC-128 with HMAC-SHA-256-128.
    #[serde(rename = "aes-cbc-128-sha256")]
    AesCbc128Sha256,
    /// AES-CBC-256 with HMAC-SHA-256-128.
    #[serde(rename = "aes-cbc-256-sha256")]
    AesCbc256Sha256,
    /// AES-CBC-128 with HMAC-SHA-1-96 (older Cisco configurations).
    #[serde(rename = "aes-cbc-128-sha1")]
    AesCbc128Sha1,
    /// AES-CBC-256 with HMAC-SHA-1-96 (older Cisco configurations).
    #[serde(rename = "aes-cbc-256-sha1")]
    AesCbc256Sha1,
}

/// ESP mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EspMode {
    /// Transport mode: ESP protects the GRE packet.
    #[default]
    Transport,
    /// Tunnel mode: ESP carries the GRE packet with its IP header.
    Tunnel,
}

/// A static route (`ip route [vrf V] PREFIX [INTERFACE] [NEXT-HOP]`, `… Null0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// `None` is the global VRF.
    #[serde(default)]
    pub vrf: Option<String>,
    /// Destination.
    pub prefix: Prefix,
    /// Out of this interface or tunnel.
    #[serde(default)]
    pub interface: Option<String>,
    /// Through this next hop, on a connected subnet of the VRF (of `interface`, when given).
    #[serde(default)]
    pub next_hop: Option<std::net::IpAddr>,
    /// `Null0`: discard.
    #[serde(default)]
    pub discard: bool,
}

/// A manually keyed ESP SA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualSa {
    /// The tunnel it protects.
    pub tunnel: String,
    /// The peer's NBMA address.
    pub peer: std::net::IpAddr,
    /// SPI, at least 256 (RFC 4303 §2.1 reserves 1..=255).
    pub spi: u32,
    /// `in` or `out`.
    pub direction: SaDirection,
    /// Cipher and integrity.
    pub transform: EspTransform,
    /// Encryption key in hex (for GCM the key followed by the 4-byte salt).
    pub enc_key: String,
    /// Integrity key in hex (CBC transforms).
    #[serde(default)]
    pub auth_key: Option<String>,
    /// Transport or tunnel mode.
    #[serde(default)]
    pub mode: EspMode,
    /// Extended sequence numbers.
    #[serde(default)]
    pub esn: bool,
    /// Anti-replay window (inbound).
    #[serde(default = "default_replay_window")]
    pub replay_window: u32,
}

/// The direction of a manual SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaDirection {
    /// From the peer to us.
    In,
    /// From us to the peer.
    Out,
}

/// What is wrong with a configuration, with the path of the field (`tunnels[0].nhrp.holdtime`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Where: the field's path in the model.
    pub path: String,
    /// What.
    pub message: String,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// It did not parse (syntax, a type, an unknown field); the path says where.
    #[error("{format} parse error at {path}: {message}")]
    Parse {
        /// `json` or `toml`.
        format: &'static str,
        /// The field's path (`.` for the top level).
        path: String,
        /// What the parser said.
        message: String,
    },
    /// It could not be written in that format.
    #[error("cannot write the configuration as {format}: {message}")]
    Serialize {
        /// `toml`.
        format: &'static str,
        /// What the serialiser said.
        message: String,
    },
    /// It parsed but is not valid: every problem found, each with its path.
    #[error("invalid configuration: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

impl Config {
    /// Parses JSON (the REST API's format).
    pub fn from_json(text: &str) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Parse {
            format: "json",
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })
    }

    /// Parses TOML (the config file's format).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Parse {
            format: "toml",
            path: e.path().to_string(),
            message: e.into_inner().message().to_string(),
        })
    }

    /// The configuration as TOML, as the store writes it. A valid configuration always serialises; an
    /// invalid one may not (TOML has no integers above 2^63 - 1).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Serialize { format: "toml", message: e.to_string() })
    }

    /// The configuration as JSON (the REST API's format).
    pub fn to_json(&self) -> String {
        // Cannot fail: every map key in the model is a string and every value serialises.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks everything a parse cannot; see the module docs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let errors = validate::check(self);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }
}

#[cfg(test)]
mod tests;
