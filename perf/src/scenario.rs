//! The benchmark hub: one worker, a WAN and a LAN [`MemPort`], one protected mGRE tunnel, and N spokes.
//!
//! What [`Scenario::build`] publishes (every address is fixed, so that a packet capture of a run reads
//! the same every time):
//!
//! | what | value |
//! |---|---|
//! | port 0 (WAN, front-door VRF 0) | `02:00:00:00:00:01`, 192.0.2.1/24, default route via 192.0.2.254 |
//! | port 1 (LAN, overlay VRF 1) | `02:00:00:00:01:01`, 10.0.0.1/24; the LAN host is 10.0.0.10 |
//! | tunnel 1 | source 192.0.2.1, GRE key 1000, overlay 172.16.0.1/12 in VRF 1, `ip mtu` 1400, ESP protection |
//! | spoke `i` NBMA address | 198.18.0.0 + 1 + i (RFC 2544's benchmarking block, up to 131,070 spokes) |
//! | spoke `i` overlay address | 172.16.0.2 + i, a TEIB entry → its NBMA address and outbound SA |
//! | spoke `i` LAN | 20.0.0.0 + 256·i, a /24 routed via the spoke's overlay address; its host is .10 |
//! | SA hub → spoke `i` | [`SaIndex`] 2i, SPI `0x8000_0000 + i`, AES-GCM-128 |
//! | SA spoke `i` → hub | [`SaIndex`] 2i+1, SPI `0x4000_0000 + i`, AES-GCM-128 |
//!
//! SAs are transport mode, 32-bit sequence numbers (IOS's default: no ESN), a 1024-packet replay window.
//!
//! Key material is a deterministic function of the SA index ([`sa_keymat`]), so that the spokes' side
//! (the traffic generator, [`crate::traffic`]) holds the mirror of every SA: it encrypts what the hub's
//! inbound SAs decrypt. Nothing here is secret; the keys exist to make the crypto do real work.
//!
//! Overlay routing is Phase 2 style (a route per spoke LAN via the spoke's overlay address); the Phase 3
//! redirect trigger is off, because in a steady state the spokes have their shortcuts and the hub sees no
//! triggers (see [`ScenarioOptions::redirect`] to measure with it).

use core::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use dataplane::crypto::{AesKey, Backend, CipherConfig, CryptoEngine, CryptoOp, OpKind, OpStatus, SoftEngine};
use dataplane::ids::{PortId, SaIndex, TunnelId, VrfId, WorkerId};
use dataplane::pkt::HeapPkt;
use dataplane::port::MemPort;
use dataplane::punt::ControlRings;
use dataplane::sa::{Direction, Limits, Mode, Sa, SaConfig, SaDb, SaError};
use dataplane::tables::{NextHop, PortConfig, TablesError, TablesPublisher, TunnelConfig};
use dataplane::teib::TeibEntry;
use dataplane::worker::Worker;
use thiserror::Error;

/// The WAN port.
pub const WAN: PortId = PortId(0);
/// The LAN port.
pub const LAN: PortId = PortId(1);
/// Front-door VRF (the WAN side).
pub const FVRF: VrfId = VrfId(0);
/// Overlay VRF (the tunnel and the LAN).
pub const OVERLAY_VRF: VrfId = VrfId(1);
/// The mGRE tunnel.
pub const TUNNEL: TunnelId = TunnelId(1);
/// Its GRE key (RFC 2890 §2.1).
pub const GRE_KEY: u32 = 1000;
/// Its `ip mtu`.
pub const TUNNEL_MTU: u16 = 1400;

/// The hub's WAN MAC address.
pub const HUB_WAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The hub's WAN (NBMA) address.
pub const HUB_WAN_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The WAN gateway, next hop of every spoke's NBMA address.
pub const WAN_GW_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// The WAN gateway's MAC address.
pub const WAN_GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// The hub's LAN MAC address.
pub const HUB_LAN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
/// The hub's LAN address.
pub const HUB_LAN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The host on the hub's LAN that talks to the spokes.
pub const LAN_HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
/// Its MAC address.
pub const LAN_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x0a];
/// The hub's overlay address.
pub const HUB_OVERLAY_IP: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);

/// Most spokes a scenario takes (the size of 198.18.0.0/15 less the first and the last address).
pub const MAX_SPOKES: u32 = (1 << 17) - 2;

/// Spoke `i`'s NBMA (public) address.
pub fn spoke_nbma(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + 1 + i)
}

/// Spoke `i`'s overlay (tunnel) address.
pub fn spoke_overlay(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(HUB_OVERLAY_IP) + 1 + i)
}

/// Spoke `i`'s LAN prefix (a /24).
pub fn spoke_lan(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(20, 0, 0, 0)) + (i << 8))
}

/// The host on spoke `i`'s LAN that talks through the hub.
pub fn spoke_host(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(spoke_lan(i)) + 10)
}

/// The hub's outbound SA to spoke `i`.
pub const fn sa_out(i: u32) -> SaIndex {
    SaIndex(2 * i)
}

/// The hub's inbound SA from spoke `i`.
pub const fn sa_in(i: u32) -> SaIndex {
    SaIndex(2 * i + 1)
}

/// SPI of the hub's outbound SA to spoke `i` (the spoke chose it).
pub const fn spi_out(i: u32) -> u32 {
    0x8000_0000 + i
}

/// SPI of the hub's inbound SA from spoke `i` (the hub chose it).
pub const fn spi_in(i: u32) -> u32 {
    0x4000_0000 + i
}

/// AES-GCM-128 KEYMAT (16-byte key, 4-byte salt, RFC 4106 §8.1) of the SA at `index`: SplitMix64 of the
/// index, so both ends derive the same bytes and every SA has its own key.
pub fn sa_keymat(index: SaIndex) -> [u8; 20] {
    let mut state = u64::from(index.0) ^ 0x005E_ED0F_D3A7_A5E5;
    let mut out = [0u8; 20];
    for chunk in out.chunks_mut(8) {
        let word = splitmix64(&mut state).to_be_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    out
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The cipher of the SA at `index`.
pub fn sa_cipher(index: SaIndex) -> CipherConfig {
    let keymat = sa_keymat(index);
    let mut key = [0u8; 16];
    key.copy_from_slice(&keymat[..16]);
    let mut salt = [0u8; 4];
    salt.copy_from_slice(&keymat[16..]);
    CipherConfig::AesGcm { key: AesKey::Aes128(key), salt }
}

/// The configuration of the SA at `index` as `direction` sees it, between `local` and `peer`.
pub fn sa_config(index: SaIndex, spi: u32, direction: Direction, local: Ipv4Addr, peer: Ipv4Addr) -> SaConfig {
    SaConfig {
        spi,
        direction,
        mode: Mode::Transport,
        cipher: sa_cipher(index),
        esn: false,
        replay_window: 1024,
        soft: Limits::default(),
        hard: Limits::default(),
        tunnel: TUNNEL,
        local: IpAddr::V4(local),
        peer: IpAddr::V4(peer),
        natt: None,
        owner: WorkerId(0),
    }
}

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioOptions {
    /// Number of spokes, 1..=[`MAX_SPOKES`].
    pub spokes: u32,
    /// Crypto backend of the hub's SAs.
    pub backend: Backend,
    /// Packets per receive burst (`Worker::poll` takes at most this many per port).
    pub burst: usize,
    /// Phase 3 `ip nhrp redirect` on the tunnel: spoke→hub→spoke packets then raise (rate-limited)
    /// redirect triggers.
    pub redirect: bool,
    /// The hub skips the AEAD of its seals (everything else of ESP still runs, opens included): what is
    /// left is the pipeline's own cost, for profiling it. The output is not ciphertext; never for a
    /// figure that counts the crypto.
    pub skip_seal: bool,
}

impl ScenarioOptions {
    /// `spokes` spokes, the default backend, bursts of 32, no redirect.
    pub fn new(spokes: u32) -> Self {
        Self { spokes, backend: dataplane::crypto::default_backend(), burst: 32, redirect: false, skip_seal: false }
    }
}

/// Why a scenario could not be built.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// Spoke count out of range.
    #[error("scenario: {0} spokes is outside 1..={MAX_SPOKES}")]
    Spokes(u32),
    /// The tables refused a change.
    #[error("scenario tables: {0}")]
    Tables(#[from] TablesError),
    /// An SA was refused.
    #[error("scenario SA: {0}")]
    Sa(#[from] SaError),
}

/// The hub's worker type in a scenario.
pub type HubWorker = Worker<MemPort<HeapPkt>>;

/// A built hub: its worker (ports inside), the publisher that keeps its tables, its control rings, and
/// the spokes' side of every SA.
#[derive(Debug)]
pub struct Scenario {
    /// What was built.
    pub options: ScenarioOptions,
    /// The hub's worker; `worker.ports[0]` is the WAN, `[1]` the LAN.
    pub worker: HubWorker,
    /// The hub's rings to the control plane (drained by [`crate::traffic`]).
    pub rings: Arc<ControlRings<HeapPkt>>,
    /// The tables' publisher (kept so that the published tables stay as built).
    pub publisher: TablesPublisher,
    /// The spokes' SAs: at [`sa_in`]`(i)` the outbound mirror of the hub's inbound SA from spoke `i`
    /// (same SPI and keys), which spoke `i` encrypts with.
    pub spoke_sas: SaDb,
}

impl Scenario {
    /// Builds and publishes the hub's tables and both sides' SAs.
    pub fn build(options: ScenarioOptions) -> Result<Self, ScenarioError> {
        let n = options.spokes;
        if n == 0 || n > MAX_SPOKES {
            return Err(ScenarioError::Spokes(n));
        }
        let (mut publisher, reader) = TablesPublisher::new();
        publisher.set_port(PortConfig {
            id: WAN,
            name: "wan0".into(),
            mac: HUB_WAN_MAC,
            vrf: FVRF,
            addresses: vec![(IpAddr::V4(HUB_WAN_IP), 24)],
            mtu: 1500,
            vlan: None,
            tx_ipv4_csum_offload: false,
            tx_vlan_offload: false,
        })?;
        publisher.set_port(PortConfig {
            id: LAN,
            name: "lan0".into(),
            mac: HUB_LAN_MAC,
            vrf: OVERLAY_VRF,
            addresses: vec![(IpAddr::V4(HUB_LAN_IP), 24)],
            mtu: 1500,
            vlan: None,
            tx_ipv4_csum_offload: false,
            tx_vlan_offload: false,
        })?;
        publisher.set_tunnel(TunnelConfig {
            id: TUNNEL,
            source: IpAddr::V4(HUB_WAN_IP),
            key: Some(GRE_KEY),
            fvrf: FVRF,
            vrf: OVERLAY_VRF,
            address: Some((IpAddr::V4(HUB_OVERLAY_IP), 12)),
            mtu: TUNNEL_MTU,
            tcp_mss: None,
            protection: true,
            redirect: options.redirect,
        })?;
        publisher.add_route(
            FVRF,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            0,
            NextHop::Port { port: WAN, gateway: Some(IpAddr::V4(WAN_GW_IP)) },
        )?;
        publisher.set_neighbour(WAN, IpAddr::V4(WAN_GW_IP), WAN_GW_MAC)?;
        publisher.set_neighbour(LAN, IpAddr::V4(LAN_HOST_IP), LAN_HOST_MAC)?;

        let mut hub_sas = SaDb::builder();
        let mut spoke_sas = SaDb::builder();
        for i in 0..n {
            let (nbma, overlay) = (spoke_nbma(i), spoke_overlay(i));
            let seed = iv_seed(i);
            let out = sa_config(sa_out(i), spi_out(i), Direction::Outbound, HUB_WAN_IP, nbma);
            hub_sas.insert(sa_out(i), Arc::new(Sa::new(out, options.backend, seed)?))?;
            let inbound = sa_config(sa_in(i), spi_in(i), Direction::Inbound, HUB_WAN_IP, nbma);
            hub_sas.insert(sa_in(i), Arc::new(Sa::new(inbound, options.backend, seed)?))?;
            let mirror = sa_config(sa_in(i), spi_in(i), Direction::Outbound, nbma, HUB_WAN_IP);
            spoke_sas.insert(sa_in(i), Arc::new(Sa::new(mirror, dataplane::crypto::default_backend(), seed)?))?;

            let entry = TeibEntry { nbma: IpAddr::V4(nbma), sa_out: Some(sa_out(i)), dynamic: true };
            publisher.set_teib(TUNNEL, IpAddr::V4(overlay), entry)?;
            let via = NextHop::Tunnel { tunnel: TUNNEL, peer: Some(IpAddr::V4(overlay)) };
            publisher.add_route(OVERLAY_VRF, IpAddr::V4(spoke_lan(i)), 24, via)?;
        }
        publisher.set_sas(hub_sas.build()?);
        publisher.publish();

        let rings = Arc::new(ControlRings::new(1024));
        let ports = vec![MemPort::new(MAX_TX), MemPort::new(MAX_TX)];
        let engine: Box<dyn CryptoEngine<HeapPkt>> =
            if options.skip_seal { Box::new(SkipSeal) } else { Box::new(SoftEngine) };
        let worker = Worker::new(WorkerId(0), ports, reader, engine, Arc::clone(&rings), options.burst);
        Ok(Self { options, worker, rings, publisher, spoke_sas: spoke_sas.build()? })
    }
}

/// The software engine but for its seals, which succeed without touching the packet
/// ([`ScenarioOptions::skip_seal`]).
#[derive(Debug)]
struct SkipSeal;

impl CryptoEngine<HeapPkt> for SkipSeal {
    fn process(&mut self, sas: &SaDb, pkts: &mut [HeapPkt], ops: &mut [CryptoOp]) {
        for op in ops {
            match op.kind {
                OpKind::Seal => op.status = OpStatus::Ok,
                OpKind::Open => SoftEngine.process(sas, pkts, core::slice::from_mut(op)),
            }
        }
    }
}

/// Transmit room of each in-memory port: one full burst of the largest size.
const MAX_TX: usize = dataplane::worker::MAX_BURST;

/// CBC IV-generator seed (unused by GCM SAs, required by the API).
fn iv_seed(i: u32) -> [u8; 16] {
    let mut seed = [0x5a; 16];
    seed[..4].copy_from_slice(&i.to_be_bytes());
    seed
}
