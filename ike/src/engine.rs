//! The sans-IO IKEv2 engine (RFC 7296): one [`Engine`] holds every IKE SA of a node, as initiator and
//! as responder.
//!
//! Layer: protocol state machine above [`crate::message`], [`crate::sk`], [`crate::keys`] and
//! [`crate::crypto`]. Contract (quinn-proto's): deterministic, no sockets, no clock, no threads.
//!
//! - Inputs: [`Engine::handle_datagram`] (a UDP payload with the addresses it travelled between) and
//!   [`Engine::handle_timeout`], each with `now`.
//! - Commands: [`Engine::initiate`].
//! - Outputs, to poll after every input or command until `None`: [`Engine::poll_transmit`] (datagrams
//!   to send), [`Engine::poll_event`] ([`Event`]s for the daemon: SA pairs to install and delete, IKE SA
//!   up and down, peer dead) and [`Engine::poll_timeout`] (when to call `handle_timeout` next).
//! - Getters: [`Engine::ike_sas`] (what `show crypto ikev2 sa` and `show crypto ipsec sa` print),
//!   [`Engine::stats`] (counters of peer misbehaviour and of retransmissions).
//!
//! All randomness comes from the injected [`Random`]. An IKE SA is found by our own SPI (§2.6): the
//! responder's SPI when the I flag is set (the sender is the original initiator), else the
//! initiator's. Exchanges (§1.2–§1.4), message IDs with a window of one (§2.3), retransmission with
//! exponential backoff by the requester only (§2.1), and the responder's answer to a retransmitted
//! request from its cache (§2.1) are implemented here.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::cert::{self, AuthError};
use crate::config::{self, AuthKind, Config, EspSuite, IkeChoice, IkeSuite};
use crate::crypto::{DhError, KeyExchange, Random};
use crate::keys::{self, DirKeys, KeyLengths, Prf};
use crate::message::{
    Auth, AuthMethod, Cert, CertEncoding, Delete, DhGroup, ExchangeType, Flags, Header, Id, Ke, Message, Notify,
    NotifyType, Payload, PayloadBody, PayloadType, ProtocolId, TrafficSelector,
};
use crate::sk::SkCipher;

/// The port of UDP-encapsulated IKE and ESP (RFC 3948): IKE datagrams on it start with four zero
/// octets (the non-ESP marker), which the caller strips on receipt and adds on sending.
pub const NAT_T_PORT: u16 = 4500;

/// Most fragments of one message we reassemble (RFC 7383 §2.6: a limit against memory exhaustion).
const MAX_FRAGMENTS: u16 = 64;

/// Unprotected INVALID_IKE_SPI answers (§2.21.4) sent per second at most: they answer anyone, so
/// they are rate-limited.
const INVALID_SPI_PER_SECOND: u32 = 100;

/// Octets of our nonces (§2.10: at least half the PRF's key size; 32 covers SHA-512's 256 bits).
const NONCE_LEN: usize = 32;

/// A handle on an IKE SA: our SPI of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub u64);

/// The NAT keepalive (RFC 3948 §2.3): one octet 0xFF, sent on port 4500 *without* the non-ESP marker.
pub const NAT_KEEPALIVE: [u8; 1] = [0xFF];

/// A datagram to send. On port 4500 the caller puts the non-ESP marker before an IKE message, but not
/// before a NAT keepalive ([`Transmit::is_nat_keepalive`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our address and port to send from.
    pub local: SocketAddr,
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// The UDP payload.
    pub data: Vec<u8>,
}

impl Transmit {
    /// Whether this is a NAT keepalive (RFC 3948 §2.3), which goes out as it is, without the non-ESP
    /// marker; no IKE message is one octet long (§3.1: the header alone is 28).
    pub fn is_nat_keepalive(&self) -> bool {
        self.data == NAT_KEEPALIVE
    }
}

/// Encapsulation mode of a CHILD SA (§1.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Transport mode (USE_TRANSPORT_MODE was agreed): what DMVPN's GRE runs over.
    Transport,
    /// Tunnel mode.
    Tunnel,
}

/// One direction of an SA pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaKeys {
    /// The SPI that ESP packets of this direction carry.
    pub spi: u32,
    /// Encryption key, salt (AES-GCM) and integrity key.
    pub keys: DirKeys,
}

/// A CHILD SA pair for the dataplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaPair {
    /// The IKE SA it belongs to.
    pub ike_sa: IkeSaId,
    /// Our IKE address (the ESP source).
    pub local: SocketAddr,
    /// The peer's IKE address and port (the ESP destination; the port matters under NAT-T).
    pub remote: SocketAddr,
    /// ESP in UDP (RFC 3948) on port 4500: a NAT was detected (§2.23).
    pub udp_encap: bool,
    /// Algorithms and ESN.
    pub suite: EspSuite,
    /// Transport or tunnel.
    pub mode: Mode,
    /// What we receive.
    pub inbound: SaKeys,
    /// What we send.
    pub outbound: SaKeys,
    /// Our traffic selectors.
    pub ts_local: Vec<TrafficSelector>,
    /// The peer's traffic selectors.
    pub ts_remote: Vec<TrafficSelector>,
}

/// Why an IKE SA went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// The peer deleted it (§1.4.1).
    DeletedByPeer,
    /// Requests went unanswered (§2.4).
    PeerDead,
    /// The peer authenticated again with INITIAL_CONTACT (§2.4), replacing it.
    Replaced,
    /// We deleted it (a command).
    DeletedLocally,
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The peer answered with an error Notify.
    Refused(NotifyType),
    /// We refused the peer's proposal or selectors (the Notify we sent).
    Rejected(NotifyType),
    /// AUTH did not verify, or no key was configured for the peer.
    AuthenticationFailed,
    /// Authentication failed, and why: the peer's certificate, identity or signature was refused, it
    /// used a method our policy does not allow, or we could not sign (RFC 7427).
    Auth(AuthError),
    /// IKE_SA_INIT or IKE_AUTH went unanswered.
    Timeout,
    /// The peer's answer broke the protocol (what was wrong).
    Protocol(&'static str),
}

/// What the engine tells the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An IKE SA is established (IKE_AUTH done).
    IkeSaUp {
        /// The SA.
        sa: IkeSaId,
        /// Our address.
        local: SocketAddr,
        /// The peer's address.
        remote: SocketAddr,
        /// The identity the peer authenticated.
        peer_id: Id,
    },
    /// An established IKE SA is gone, with its CHILD SAs (each also has its [`Event::DeleteSaPair`]).
    IkeSaDown {
        /// The SA.
        sa: IkeSaId,
        /// The peer's address.
        remote: SocketAddr,
        /// Why.
        reason: DownReason,
    },
    /// The IKE SA was rekeyed (§1.3.2): `new` replaces `old`, with its CHILD SAs.
    IkeSaRekeyed {
        /// The old SA.
        old: IkeSaId,
        /// The new SA.
        new: IkeSaId,
    },
    /// Install this SA pair in the dataplane. After a CHILD SA rekey (§2.8) the new pair comes first
    /// and the old pair's [`Event::DeleteSaPair`] later, so no packet is lost across the switch.
    InstallSaPair(Box<SaPair>),
    /// Remove this SA pair from the dataplane.
    DeleteSaPair {
        /// The IKE SA it belonged to.
        ike_sa: IkeSaId,
        /// Our inbound SPI.
        inbound_spi: u32,
        /// The outbound SPI.
        outbound_spi: u32,
    },
    /// The peer stopped answering (§2.4): the daemon purges what it learned from it (NHRP).
    PeerDead {
        /// The SA.
        sa: IkeSaId,
        /// The peer's address.
        remote: SocketAddr,
        /// Its identity.
        peer_id: Id,
    },
    /// An IKE SA or CHILD SA could not be set up.
    Failed {
        /// The IKE SA.
        sa: IkeSaId,
        /// The peer's address.
        remote: SocketAddr,
        /// Why.
        failure: Failure,
    },
}

/// Why a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The configuration has no IKE proposal (or its first has no DH group).
    #[error("no IKE proposal configured")]
    NoProposal,
    /// The first proposal's group is not implemented.
    #[error("{0}")]
    Dh(#[from] DhError),
    /// No established IKE SA with this handle.
    #[error("no established IKE SA {0:?}")]
    UnknownSa(IkeSaId),
    /// The IKE SA has no CHILD SA with this inbound SPI.
    #[error("no CHILD SA with inbound SPI {0:#010x}")]
    UnknownChild(u32),
}

/// Counters, for `show` and for spotting misbehaving peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that did not parse.
    pub malformed: u64,
    /// Datagrams for an IKE SA we do not have.
    pub unknown_spi: u64,
    /// Encrypted payloads whose ICV failed.
    pub integrity_failures: u64,
    /// Requests outside the window and responses to nothing outstanding (§2.3).
    pub unexpected_message_id: u64,
    /// Retransmitted requests answered from the response cache.
    pub duplicate_requests: u64,
    /// Our requests sent again.
    pub retransmits: u64,
    /// INVALID_KE_PAYLOAD sent.
    pub invalid_ke_sent: u64,
    /// INVALID_KE_PAYLOAD received (and the IKE_SA_INIT repeated).
    pub invalid_ke_received: u64,
    /// NO_PROPOSAL_CHOSEN or TS_UNACCEPTABLE sent.
    pub proposals_refused: u64,
    /// AUTH that did not verify.
    pub auth_failures: u64,
    /// Rekeys of an IKE SA by the peer that crossed our own (RFC 7296 §2.8.2).
    pub ike_rekey_collisions: u64,
    /// Half-open IKE SAs dropped.
    pub half_open_expired: u64,
    /// IKE_SA_INIT requests answered with N(COOKIE) only (§2.6).
    pub cookies_sent: u64,
    /// N(COOKIE) received and the IKE_SA_INIT repeated with it (§2.6).
    pub cookies_received: u64,
    /// IKE_SA_INIT requests dropped: their source already had its share of half-open SAs.
    pub half_open_limited: u64,
    /// NAT keepalives sent (RFC 3948 §2.3).
    pub nat_keepalives: u64,
    /// Encrypted Fragment payloads sent (RFC 7383).
    pub fragments_sent: u64,
    /// Messages reassembled from fragments (RFC 7383 §2.6).
    pub reassembled: u64,
    /// Fragments dropped: beyond the limit, or fewer in all than announced before.
    pub fragments_dropped: u64,
    /// Requests of a higher major version answered with INVALID_MAJOR_VERSION (§2.5).
    pub invalid_major_version_sent: u64,
    /// Requests for an unknown IKE SA answered with INVALID_IKE_SPI (§2.21.4).
    pub invalid_spi_sent: u64,
}

/// IKE SA state for `show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeState {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    /// Responder: IKE_SA_INIT answered.
    HalfOpen,
    /// Established.
    Established,
    /// Replaced by a rekey, waiting for its DELETE.
    Rekeyed,
}

/// A CHILD SA as `show crypto ipsec sa` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSaInfo {
    /// Inbound SPI.
    pub spi_in: u32,
    /// Outbound SPI.
    pub spi_out: u32,
    /// Algorithms and ESN.
    pub suite: EspSuite,
    /// Mode.
    pub mode: Mode,
    /// Our selectors.
    pub ts_local: Vec<TrafficSelector>,
    /// The peer's selectors.
    pub ts_remote: Vec<TrafficSelector>,
    /// Lifetime left.
    pub lifetime_left: Duration,
    /// Rekeys so far.
    pub rekeys: u32,
}

/// An IKE SA as `show crypto ikev2 sa` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// Handle.
    pub id: IkeSaId,
    /// State.
    pub state: IkeState,
    /// Whether we are the original initiator.
    pub initiator: bool,
    /// Initiator's SPI.
    pub spi_i: u64,
    /// Responder's SPI.
    pub spi_r: u64,
    /// Our address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// Our identity.
    pub local_id: Id,
    /// The peer's authenticated identity.
    pub peer_id: Option<Id>,
    /// Negotiated transforms.
    pub suite: Option<IkeSuite>,
    /// Lifetime left, once established.
    pub lifetime_left: Option<Duration>,
    /// Rekeys so far.
    pub rekeys: u32,
    /// CHILD SAs.
    pub children: Vec<ChildSaInfo>,
}

/// The IKE SA keys in use.
struct SaCrypto {
    prf: Prf,
    sk_d: Vec<u8>,
    sk_pi: Vec<u8>,
    sk_pr: Vec<u8>,
    /// Seals what we send.
    out: SkCipher,
    /// Opens what we receive.
    inb: SkCipher,
}

/// Where an IKE SA is in its setup (§1.2).
enum State {
    /// Initiator: IKE_SA_INIT request sent; holds our DH key and the request (RealMessage1, §2.15).
    InitSent { ke: KeyExchange, request: Vec<u8> },
    /// Initiator: IKE_AUTH request sent; holds the responder's IKE_SA_INIT message (RealMessage2),
    /// the PSK used and the CHILD SA's inbound SPI.
    AuthSent { init_response: Vec<u8>, psk: Vec<u8>, spi_in: u32 },
    /// Responder: IKE_SA_INIT answered; waits for IKE_AUTH until `expires`.
    HalfOpen { init_request: Vec<u8>, init_response: Vec<u8>, expires: Instant },
    /// IKE_AUTH done (or created by a rekey, §1.3.2).
    Established { since: Instant },
    /// Replaced by a rekeyed IKE SA whose CHILD SAs it handed over (§2.18); waits for the DELETE,
    /// ours or the peer's, until `expires`.
    Rekeyed { expires: Instant },
}

/// A request we queue while the window is full (§2.3: one outstanding at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// An empty INFORMATIONAL (§2.4).
    Dpd,
    /// Delete our CHILD SA with this inbound SPI (§1.4.1).
    DeleteChild(u32),
    /// Delete this IKE SA (§1.4.1).
    DeleteIke,
    /// Rekey the CHILD SA with this inbound SPI (§1.3.3).
    RekeyChild(u32),
    /// Rekey the IKE SA (§1.3.2).
    RekeyIke,
}

/// What the outstanding request was, for handling its response.
enum Sent {
    Init,
    Auth,
    Dpd,
    DeleteChild,
    DeleteIke,
    /// CREATE_CHILD_SA rekeying `old`, with our new inbound SPI, nonce and, with PFS, DH key.
    RekeyChild {
        old: u32,
        spi_in: u32,
        ni: Vec<u8>,
        ke: Option<KeyExchange>,
    },
    /// CREATE_CHILD_SA rekeying the IKE SA, with our new SPI, nonce and DH key.
    RekeyIke {
        spi: u64,
        ni: Vec<u8>,
        ke: KeyExchange,
    },
}

/// A request of ours waiting for its response (window of one, §2.3).
struct Outstanding {
    message_id: u32,
    packets: Vec<Vec<u8>>,
    sends: u32,
    next: Instant,
    kind: Sent,
}

struct Child {
    spi_in: u32,
    spi_out: u32,
    suite: EspSuite,
    mode: Mode,
    ts_local: Vec<TrafficSelector>,
    ts_remote: Vec<TrafficSelector>,
    created: Instant,
    rekeys: u32,
    /// Our CREATE_CHILD_SA rekeying it is outstanding.
    rekeying: bool,
    /// The peer rekeyed it: (its Ni, our Nr, our new inbound SPI), for the collision rule (§2.8.1).
    peer_rekey: Option<(Vec<u8>, Vec<u8>, u32)>,
}

/// A CHILD SA to derive and report (§2.17).
struct NewChild<'a> {
    spis: (u32, u32),
    suite: EspSuite,
    mode: Mode,
    ts: (Vec<TrafficSelector>, Vec<TrafficSelector>),
    /// Ni and Nr of the exchange that created it.
    nonces: (&'a [u8], &'a [u8]),
    /// g^ir of a CREATE_CHILD_SA with KE (PFS).
    g_ir: Option<&'a [u8]>,
    we_initiated: bool,
    rekeys: u32,
}

/// Decrypted fragments of one message (RFC 7383 §2.6).
struct Reassembly {
    message_id: u32,
    response: bool,
    /// The first inner payload's type (from fragment 1).
    first: PayloadType,
    /// Plaintext of each fragment, by number − 1.
    parts: Vec<Option<Vec<u8>>>,
}

struct IkeSa {
    /// We are the original initiator (§2.2, the I flag).
    initiator: bool,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    state: State,
    suite: Option<IkeSuite>,
    crypto: Option<SaCrypto>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    /// The identity we expect of the peer (initiator, configured), then the one it authenticated.
    peer_id: Option<Id>,
    /// Message ID of our next request (§2.3).
    next_id: u32,
    /// Message ID of the peer's next request.
    peer_next_id: u32,
    outstanding: Option<Outstanding>,
    /// Our last response and its Message ID, resent when the request comes again (§2.1).
    last_response: Option<(u32, Vec<Vec<u8>>)>,
    children: Vec<Child>,
    /// A NAT sits between us (§2.23, from the NAT_DETECTION_* notifications of IKE_SA_INIT).
    nat: bool,
    /// We are the one behind the NAT (our address was changed on the way): we send keepalives
    /// (RFC 3948 §2.3).
    behind_nat: bool,
    /// When we last sent a NAT keepalive (or the SA was made).
    last_keepalive: Instant,
    /// Initiator: the responder's cookie, sent first in IKE_SA_INIT (§2.6), and how many we got.
    cookie: Option<(Vec<u8>, u8)>,
    /// Responder: the key this SA is counted under among the half-open ones (peer address, SPIi).
    half_open_key: Option<(SocketAddr, u64)>,
    /// Both sides sent IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    fragmentation: bool,
    /// The fragmented message being reassembled (RFC 7383 §2.6).
    reassembly: Option<Reassembly>,
    /// Requests waiting for the window.
    pending: VecDeque<Request>,
    /// When the peer last sent something authenticated (for DPD, §2.4).
    last_heard: Instant,
    /// Rekeys of this IKE SA so far (the count carries over to the new SA).
    rekeys: u32,
    /// The deadline this SA is filed under in the engine's timer set.
    filed: Option<Instant>,
    /// §2.8.2: the peer's rekey of this IKE SA crossed ours.
    crossed: Option<Crossed>,
    /// The peer sent SIGNATURE_HASH_ALGORITHMS in IKE_SA_INIT (RFC 7427 §4): AUTH method 14 is for it.
    peer_rfc7427: bool,
}

/// The peer's rekey of an IKE SA that crossed our own (RFC 7296 §2.8.2). The SA its exchange made
/// stands by (state `Rekeyed`, no CHILD SAs) until ours is answered: the new SA made with the lowest
/// of the four nonces is redundant and its initiator deletes it; the CHILD SAs go to the other one.
struct Crossed {
    /// Our SPI of the SA the peer's exchange made.
    sa: u64,
    /// The lower nonce of the peer's exchange (its Ni, our Nr).
    lowest: Vec<u8>,
    /// When that SA was made (its lifetime runs from then).
    since: Instant,
}

/// An authenticated SK or SKF payload's plaintext.
struct Decrypted {
    plain: Vec<u8>,
    /// Its Next Payload: the first inner payload (NONE in fragments after the first).
    first: PayloadType,
    /// (Fragment Number, Total Fragments) of an SKF payload.
    fragment: Option<(u16, u16)>,
}

/// What the engine does with an SA after it handled something.
enum Next {
    Keep,
    /// Established by an IKE_AUTH with INITIAL_CONTACT: other SAs with the peer's identity go.
    KeepReplacing,
    /// Remove it; an established one reports [`Event::IkeSaDown`] with this reason.
    Remove(Option<DownReason>),
    /// A rekey made this new IKE SA (§1.3.2); the old one stays until deleted.
    Rekeyed(Box<IkeSa>),
    /// The peer's rekey crossed ours (§2.8.2): its new SA stands by, filed without an event.
    Standby(Box<IkeSa>),
    /// The peer's rekey crossed ours and won (§2.8.2): our new SA, redundant, is filed without an
    /// event (it deletes itself), and the CHILD SAs go to the peer's.
    Lost(Box<IkeSa>),
    /// The peer's rekey crossed ours, and ours failed: the CHILD SAs go to the peer's.
    HandOver,
}

struct Ctx {
    config: Config,
    rng: Box<dyn Random + Send>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    child_spis: HashSet<u32>,
    /// An instant and the time since the Unix epoch then, for certificate validity.
    wall_clock: Option<(Instant, Duration)>,
}

impl Ctx {
    /// The time since the Unix epoch at `now`, once [`Engine::set_wall_clock`] was called.
    fn unix_time(&self, now: Instant) -> Option<Duration> {
        let (at, unix) = self.wall_clock?;
        match now.checked_duration_since(at) {
            Some(later) => unix.checked_add(later),
            None => unix.checked_sub(at.duration_since(now)),
        }
    }

    /// We take part in certificate authentication: IKE_SA_INIT carries SIGNATURE_HASH_ALGORITHMS.
    fn certificates(&self) -> bool {
        self.config.local_cert.is_some() || !self.config.trust.is_empty()
    }

    fn nonce(&mut self) -> Vec<u8> {
        let mut n = vec![0; NONCE_LEN];
        self.rng.fill(&mut n);
        n
    }

    /// A fresh inbound ESP SPI, unique in this engine, not in the reserved 1–255 range (RFC 4303 §2.1).
    fn child_spi(&mut self) -> u32 {
        loop {
            let mut b = [0u8; 4];
            self.rng.fill(&mut b);
            let spi = u32::from_be_bytes(b);
            if spi >= 256 && self.child_spis.insert(spi) {
                return spi;
            }
        }
    }

    /// A fresh IKE SPI (the engine checks it is unused before filing an SA under it).
    fn ike_spi(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng.fill(&mut b);
            let spi = u64::from_be_bytes(b);
            if spi != 0 {
                return spi;
            }
        }
    }

    fn send(&mut self, sa: &IkeSa, data: Vec<u8>) {
        self.transmits.push_back(Transmit { local: sa.local, remote: sa.remote, data });
    }
}

/// The engine. See the module docs for the order of calls.
pub struct Engine {
    ctx: Ctx,
    sas: HashMap<u64, IkeSa>,
    /// Responder: (peer address, peer's SPI) → our SPI, to spot a retransmitted IKE_SA_INIT (§2.1).
    half_open: HashMap<(SocketAddr, u64), u64>,
    /// Responder: half-open IKE SAs per peer address (`Config::half_open_per_source`).
    half_open_by_ip: HashMap<IpAddr, usize>,
    /// Responder: the secret in our cookies (§2.6).
    cookie_secret: [u8; 32],
    /// INVALID_IKE_SPI answers in the current one-second window (§2.21.4), and when it began.
    invalid_spi_window: (Option<Instant>, u32),
    timers: BTreeSet<(Instant, u64)>,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Engine").field("ike_sas", &self.sas.len()).field("stats", &self.ctx.stats).finish()
    }
}

fn find_notify(payloads: &[Payload], ty: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Notify(n) if n.ty == ty => Some(n),
        _ => None,
    })
}

fn first_error(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match &p.body {
        PayloadBody::Notify(n) if n.ty.is_error() => Some(n.ty),
        _ => None,
    })
}

fn notify(ty: NotifyType, data: impl Into<Vec<u8>>) -> Payload {
    Payload::new(PayloadBody::Notify(Notify::new(ty, data)))
}

macro_rules! take {
    ($payloads:expr, $variant:ident) => {
        $payloads.iter().find_map(|p| match &p.body {
            PayloadBody::$variant(x) => Some(x),
            _ => None,
        })
    };
}

/// NAT_DETECTION_*_IP data (§2.23): SHA-1(SPIi | SPIr | IP address | port).
fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(addr.port().to_be_bytes());
    h.finalize().to_vec()
}

/// The two NAT detection notifications for a message from `local` to `remote`.
fn nat_payloads(spi_i: u64, spi_r: u64, local: SocketAddr, remote: SocketAddr) -> [Payload; 2] {
    [
        notify(NotifyType::NAT_DETECTION_SOURCE_IP, nat_hash(spi_i, spi_r, local)),
        notify(NotifyType::NAT_DETECTION_DESTINATION_IP, nat_hash(spi_i, spi_r, remote)),
    ]
}

/// What the peer's NAT detection shows (§2.23): (we are behind a NAT: its destination hash is not our
/// address; the peer is: none of its source hashes is the address it came from). A peer that sends
/// none supports no NAT-T.
fn nat_detected(payloads: &[Payload], spi_i: u64, spi_r: u64, local: SocketAddr, remote: SocketAddr) -> (bool, bool) {
    let of = |ty| {
        payloads.iter().filter_map(move |p| match &p.body {
            PayloadBody::Notify(n) if n.ty == ty => Some(&n.data),
            _ => None,
        })
    };
    let mut sources = of(NotifyType::NAT_DETECTION_SOURCE_IP).peekable();
    let remote_behind = sources.peek().is_some() && !sources.any(|h| *h == nat_hash(spi_i, spi_r, remote));
    let local_behind = of(NotifyType::NAT_DETECTION_DESTINATION_IP).any(|h| *h != nat_hash(spi_i, spi_r, local));
    (local_behind, remote_behind)
}

/// How long the loser of a crossed IKE SA rekey (§2.8.2) waits for its resolution: our request's
/// retransmissions, then as long as a half-open SA.
fn standby_time(c: &Config) -> Duration {
    let sends = c.retransmit.tries.min(16);
    c.retransmit.initial * (2u32.pow(sends) - 1) + c.half_open_timeout
}

/// Maximum cookie attempts an initiator makes before giving up (§2.6 sets no number).
const COOKIE_TRIES: u8 = 3;

/// The responder's cookie (§2.6): `<VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>)`, with
/// SHA-256 and version 0 (the secret lives as long as the engine).
fn cookie(secret: &[u8; 32], ni: &[u8], remote: SocketAddr, spi_i: u64) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(ni);
    match remote.ip() {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(spi_i.to_be_bytes());
    h.update(secret);
    let mut c = vec![0u8];
    c.extend_from_slice(&h.finalize());
    c
}

/// AUTH for a pre-shared key (§2.15): prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>),
/// SignedOctets = RealMessage | Nonce of the peer | prf(SK_p, RestOfIDPayload).
fn psk_auth(prf: Prf, psk: &[u8], message: &[u8], peer_nonce: &[u8], sk_p: &[u8], id: &Id) -> Vec<u8> {
    let key = prf.compute(psk, &[b"Key Pad for IKEv2"]);
    prf.compute(&key, &[&signed_octets(prf, message, peer_nonce, sk_p, id)])
}

/// `<SignedOctets>` (§2.15): RealMessage | Nonce of the peer | prf(SK_p, RestOfIDPayload).
fn signed_octets(prf: Prf, message: &[u8], peer_nonce: &[u8], sk_p: &[u8], id: &Id) -> Vec<u8> {
    let maced_id = prf.compute(sk_p, &[&id.body()]);
    [message, peer_nonce, &maced_id].concat()
}

/// Our CERT payloads (end entity first, §3.6) and AUTH by digital signature (RFC 7427 §3) over
/// `octets`.
fn sign_auth(config: &Config, octets: &[u8], rfc7427: bool) -> Result<(Vec<Payload>, Payload), AuthError> {
    let local = config.local_cert.as_ref().ok_or(AuthError::NoLocalCertificate)?;
    let (method, data) = local.sign(octets, rfc7427)?;
    let certs = local
        .chain()
        .iter()
        .map(|c| PayloadBody::Cert(Cert { encoding: CertEncoding::X509_SIGNATURE, data: c.clone() }).into())
        .collect();
    Ok((certs, PayloadBody::Auth(Auth { method, data }).into()))
}

/// Checks a peer's AUTH by digital signature: its X.509 CERT payloads chain to our CAs, are not
/// revoked, name `id`, and the end entity's key signed `octets` (RFC 7427 §3).
fn verify_auth(
    ctx: &Ctx,
    now: Instant,
    inner: &[Payload],
    id: &Id,
    auth: &Auth,
    octets: &[u8],
) -> Result<(), AuthError> {
    let signature_methods = [
        AuthMethod::DIGITAL_SIGNATURE,
        AuthMethod::RSA_SIG,
        AuthMethod::ECDSA_SHA256_P256,
        AuthMethod::ECDSA_SHA384_P384,
    ];
    if !signature_methods.contains(&auth.method) {
        return Err(AuthError::MethodNotAllowed { got: auth.method, want: AuthKind::Certificate });
    }
    let unix = ctx.unix_time(now).ok_or(AuthError::NoWallClock)?;
    let certs: Vec<&[u8]> = inner
        .iter()
        .filter_map(|p| match &p.body {
            PayloadBody::Cert(c) if c.encoding == CertEncoding::X509_SIGNATURE => Some(c.data.as_slice()),
            _ => None,
        })
        .collect();
    ctx.config.trust.verify(&certs, id, unix, octets, auth.method, &auth.data)
}

/// CERTREQ for our CAs (§3.7), if we have any.
fn certreq(config: &Config) -> Option<Payload> {
    (!config.trust.is_empty()).then(|| {
        PayloadBody::CertReq(Cert { encoding: CertEncoding::X509_SIGNATURE, data: config.trust.certreq().to_vec() })
            .into()
    })
}

impl IkeSa {
    fn id(&self) -> IkeSaId {
        IkeSaId(if self.initiator { self.spi_i } else { self.spi_r })
    }

    fn header(&self, exchange: ExchangeType, message_id: u32, response: bool) -> Message {
        let mut flags = Flags::default();
        if self.initiator {
            flags = flags.with(Flags::INITIATOR);
        }
        if response {
            flags = flags.with(Flags::RESPONSE);
        }
        Message { spi_i: self.spi_i, spi_r: self.spi_r, minor: 0, exchange, flags, message_id, payloads: Vec::new() }
    }

    /// The message with `inner` in an SK payload, or, when fragmentation was agreed and the message
    /// would be longer than `Config::fragment_size`, in SKF fragments that are not (RFC 7383 §2.5:
    /// each fragment is encrypted on its own, the first names the first inner payload).
    fn seal(
        &mut self,
        ctx: &mut Ctx,
        exchange: ExchangeType,
        id: u32,
        response: bool,
        inner: &[Payload],
    ) -> Vec<Vec<u8>> {
        let header = self.header(exchange, id, response);
        let limit = ctx.config.fragment_size.filter(|_| self.fragmentation);
        let Some(c) = self.crypto.as_mut() else { return Vec::new() };
        let emitted = crate::message::chain_len(inner).and_then(|n| {
            let mut plain = vec![0; n];
            crate::message::emit_chain(inner, &mut plain).map(|(first, _)| (first, plain))
        });
        // Only an oversized payload of our own making fails to emit; nothing goes out then.
        let Ok((first, plain)) = emitted else { return Vec::new() };
        // Header (28), the SK or SKF payload's header (4, SKF 8) and the cipher's most overhead.
        let whole = 28 + 4 + plain.len() + c.out.overhead(plain.len());
        let room = limit.and_then(|l| l.checked_sub(28 + 8 + c.out.overhead(0))).filter(|r| *r > 0);
        let chunks: Vec<&[u8]> = match (limit, room) {
            (Some(l), Some(room)) if whole > l => plain.chunks(room).collect(),
            _ => return c.out.seal(&header, first, &plain, None, ctx.rng.as_mut()).into_iter().collect(),
        };
        let Ok(total) = u16::try_from(chunks.len()) else { return Vec::new() };
        ctx.stats.fragments_sent += u64::from(total);
        (1..=total)
            .zip(chunks)
            .filter_map(|(n, chunk)| {
                let next = if n == 1 { first } else { PayloadType::NONE };
                c.out.seal(&header, next, chunk, Some((n, total)), ctx.rng.as_mut()).ok()
            })
            .collect()
    }

    fn send_request(&mut self, ctx: &mut Ctx, now: Instant, exchange: ExchangeType, inner: &[Payload], kind: Sent) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let packets = self.seal(ctx, exchange, id, false, inner);
        self.start_request(ctx, now, id, packets, kind);
    }

    fn start_request(&mut self, ctx: &mut Ctx, now: Instant, message_id: u32, packets: Vec<Vec<u8>>, kind: Sent) {
        for p in &packets {
            ctx.send(self, p.clone());
        }
        let wait = match (&kind, ctx.config.dpd) {
            (Sent::Dpd, Some(d)) => d.retry_interval,
            _ => ctx.config.retransmit.initial,
        };
        self.outstanding = Some(Outstanding { message_id, packets, sends: 1, next: now + wait, kind });
    }

    fn send_response(&mut self, ctx: &mut Ctx, exchange: ExchangeType, id: u32, inner: &[Payload]) {
        let packets = self.seal(ctx, exchange, id, true, inner);
        for p in &packets {
            ctx.send(self, p.clone());
        }
        self.last_response = Some((id, packets));
    }

    fn deadline(&self, config: &Config) -> Option<Instant> {
        let expires = match self.state {
            State::HalfOpen { expires, .. } | State::Rekeyed { expires } => Some(expires),
            _ => None,
        };
        let next = match &self.outstanding {
            Some(o) => Some(o.next),
            None => self.due(config),
        };
        [next, expires].into_iter().flatten().min()
    }

    /// Authenticates and decrypts the SK or SKF payload that ends `msg`: the plaintext, the first
    /// inner payload's type, and for a fragment its (number, total).
    fn decrypt(&self, ctx: &mut Ctx, data: &[u8], msg: &Message) -> Option<Decrypted> {
        let c = self.crypto.as_ref()?;
        let (first, len, fragment) = match msg.payloads.last().map(|p| &p.body) {
            Some(PayloadBody::Encrypted(e)) => (e.next_payload, e.data.len(), None),
            Some(PayloadBody::EncryptedFragment(f)) if self.fragmentation => {
                (f.next_payload, f.data.len(), Some((f.number, f.total)))
            }
            _ => {
                ctx.stats.malformed += 1;
                return None;
            }
        };
        match c.inb.open(data, len) {
            Ok(plain) => Some(Decrypted { plain, first, fragment }),
            Err(_) => {
                ctx.stats.integrity_failures += 1;
                None
            }
        }
    }

    /// Opens the SK payload that ends `msg` and parses what it carries; an authenticated SKF
    /// fragment is kept until its message is complete (RFC 7383 §2.6), `None` until then.
    fn open(&mut self, ctx: &mut Ctx, data: &[u8], msg: &Message) -> Option<Vec<Payload>> {
        let d = self.decrypt(ctx, data, msg)?;
        let (first, plain) = match d.fragment {
            None => (d.first, d.plain),
            Some((number, total)) => self.reassemble(ctx, msg, (number, total), d.first, d.plain)?,
        };
        match crate::message::parse_chain(first, &plain) {
            Ok(p) => Some(p),
            Err(_) => {
                ctx.stats.malformed += 1;
                None
            }
        }
    }

    /// Files fragment `number` of `total` (RFC 7383 §2.6.1): a message with another Message ID, or
    /// the same one with more fragments, starts over; fewer fragments than before is refused.
    /// Returns the whole plaintext once every fragment is in.
    fn reassemble(
        &mut self,
        ctx: &mut Ctx,
        msg: &Message,
        (number, total): (u16, u16),
        first: PayloadType,
        plain: Vec<u8>,
    ) -> Option<(PayloadType, Vec<u8>)> {
        let response = msg.flags.response();
        if total > MAX_FRAGMENTS {
            ctx.stats.fragments_dropped += 1;
            return None;
        }
        let start_over = match &self.reassembly {
            Some(r) if r.message_id == msg.message_id && r.response == response => {
                if usize::from(total) < r.parts.len() {
                    ctx.stats.fragments_dropped += 1;
                    return None;
                }
                usize::from(total) > r.parts.len()
            }
            _ => true,
        };
        if start_over {
            let parts = vec![None; usize::from(total)];
            let first = PayloadType::NONE;
            self.reassembly = Some(Reassembly { message_id: msg.message_id, response, first, parts });
        }
        let r = self.reassembly.as_mut()?;
        if number == 1 {
            r.first = first;
        }
        // The codec checked 1 <= number <= total.
        *r.parts.get_mut(usize::from(number).checked_sub(1)?)? = Some(plain);
        if r.parts.iter().any(Option::is_none) {
            return None;
        }
        let r = self.reassembly.take()?;
        ctx.stats.reassembled += 1;
        Some((r.first, r.parts.into_iter().flatten().flatten().collect()))
    }

    fn set_keys(&mut self, suite: IkeSuite, g_ir: &[u8]) -> Result<(), &'static str> {
        let prf = Prf::from_id(suite.prf).map_err(|_| "unsupported PRF")?;
        let lengths = KeyLengths::new(suite.encr, Some(suite.key_bits), suite.integ).map_err(|_| "unsupported ENCR")?;
        let skeyseed = prf.skeyseed(&self.ni, &self.nr, g_ir);
        let k = keys::ike_keys(prf, &skeyseed, &self.ni, &self.nr, self.spi_i, self.spi_r, lengths)
            .map_err(|_| "key derivation")?;
        let ci = SkCipher::new(suite.encr, suite.key_bits, suite.integ, &k.initiator).map_err(|_| "SK cipher")?;
        let cr = SkCipher::new(suite.encr, suite.key_bits, suite.integ, &k.responder).map_err(|_| "SK cipher")?;
        let (out, inb) = if self.initiator { (ci, cr) } else { (cr, ci) };
        self.crypto = Some(SaCrypto { prf, sk_d: k.sk_d, sk_pi: k.sk_pi, sk_pr: k.sk_pr, out, inb });
        self.suite = Some(suite);
        Ok(())
    }

    fn fail(&self, ctx: &mut Ctx, failure: Failure) -> Next {
        ctx.events.push_back(Event::Failed { sa: self.id(), remote: self.remote, failure });
        Next::Remove(None)
    }

    /// Derives a CHILD SA's keys and reports it (§2.17).
    fn install_child(&mut self, ctx: &mut Ctx, now: Instant, n: NewChild<'_>) -> Result<(), &'static str> {
        let c = self.crypto.as_ref().ok_or("no keys")?;
        let suite = n.suite;
        let l = KeyLengths::new(suite.encr, Some(suite.key_bits), suite.integ).map_err(|_| "unsupported ESP")?;
        let k = keys::child_keys(c.prf, &c.sk_d, n.g_ir, n.nonces.0, n.nonces.1, l).map_err(|_| "key derivation")?;
        let (out_keys, in_keys) = if n.we_initiated { (k.initiator, k.responder) } else { (k.responder, k.initiator) };
        let ((spi_in, spi_out), (ts_local, ts_remote)) = (n.spis, n.ts);
        ctx.events.push_back(Event::InstallSaPair(Box::new(SaPair {
            ike_sa: self.id(),
            local: self.local,
            remote: self.remote,
            udp_encap: self.nat || self.local.port() == NAT_T_PORT,
            suite,
            mode: n.mode,
            inbound: SaKeys { spi: spi_in, keys: in_keys },
            outbound: SaKeys { spi: spi_out, keys: out_keys },
            ts_local: ts_local.clone(),
            ts_remote: ts_remote.clone(),
        })));
        self.children.push(Child {
            spi_in,
            spi_out,
            suite,
            mode: n.mode,
            ts_local,
            ts_remote,
            created: now,
            rekeys: n.rekeys,
            rekeying: false,
            peer_rekey: None,
        });
        Ok(())
    }

    // ---- initiator ----

    /// IKE_SA_INIT response (§1.2), or INVALID_KE_PAYLOAD (§1.2) / an error instead.
    fn on_init_response(&mut self, ctx: &mut Ctx, now: Instant, data: &[u8], msg: Message) -> Next {
        let State::InitSent { ke, .. } = &self.state else { return Next::Keep };
        if let Some(n) = find_notify(&msg.payloads, NotifyType::COOKIE) {
            // §2.6: the same request again, with the cookie as its first payload.
            let tries = self.cookie.as_ref().map_or(0, |(_, t)| *t);
            if !(1..=64).contains(&n.data.len()) || tries >= COOKIE_TRIES {
                return self.fail(ctx, Failure::Refused(NotifyType::COOKIE));
            }
            ctx.stats.cookies_received += 1;
            self.cookie = Some((n.data.clone(), tries + 1));
            let State::InitSent { ke, .. } = std::mem::replace(&mut self.state, State::Established { since: now })
            else {
                return Next::Keep;
            };
            self.send_init(ctx, now, ke);
            return Next::Keep;
        }
        if let Some(n) = find_notify(&msg.payloads, NotifyType::INVALID_KE_PAYLOAD) {
            // §1.2: retry with the group the responder names, if we offered it.
            let group = match n.data.as_slice() {
                [a, b] => DhGroup(u16::from_be_bytes([*a, *b])),
                _ => return self.fail(ctx, Failure::Protocol("INVALID_KE_PAYLOAD without a group")),
            };
            let offered = ctx.config.ike_proposals.iter().any(|p| p.groups.contains(&group));
            if group == ke.group() || !offered {
                return self.fail(ctx, Failure::Refused(NotifyType::INVALID_KE_PAYLOAD));
            }
            ctx.stats.invalid_ke_received += 1;
            return match KeyExchange::generate(group, ctx.rng.as_mut()) {
                Ok(ke) => {
                    self.send_init(ctx, now, ke);
                    Next::Keep
                }
                Err(_) => self.fail(ctx, Failure::Refused(NotifyType::INVALID_KE_PAYLOAD)),
            };
        }
        if let Some(e) = first_error(&msg.payloads) {
            return self.fail(ctx, Failure::Refused(e));
        }
        let (Some(sa), Some(peer_ke), Some(nr)) =
            (take!(msg.payloads, Sa), take!(msg.payloads, Ke), take!(msg.payloads, Nonce))
        else {
            return self.fail(ctx, Failure::Protocol("IKE_SA_INIT response lacks SA, KE or Nonce"));
        };
        let Some(suite) = config::accepted_ike(&ctx.config.ike_proposals, sa) else {
            return self.fail(ctx, Failure::Protocol("IKE_SA_INIT response accepts no proposal of ours"));
        };
        if suite.dh != ke.group() || peer_ke.group != ke.group() || msg.spi_r == 0 || !(16..=256).contains(&nr.len()) {
            return self.fail(ctx, Failure::Protocol("IKE_SA_INIT response: bad group, SPI or nonce"));
        }
        let Ok(g_ir) = ke.shared(&peer_ke.data) else {
            return self.fail(ctx, Failure::Protocol("bad KE data"));
        };
        self.spi_r = msg.spi_r;
        self.nr = nr.clone();
        self.peer_rfc7427 = find_notify(&msg.payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS).is_some();
        // §2.23: behind a NAT, everything after IKE_SA_INIT goes between the 4500 ports.
        self.fragmentation = ctx.config.fragment_size.is_some()
            && find_notify(&msg.payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        let (local_behind, remote_behind) =
            nat_detected(&msg.payloads, self.spi_i, self.spi_r, self.local, self.remote);
        (self.nat, self.behind_nat) = (local_behind || remote_behind, local_behind);
        if self.nat {
            self.local.set_port(NAT_T_PORT);
            self.remote.set_port(NAT_T_PORT);
        }
        if let Err(why) = self.set_keys(suite, &g_ir) {
            return self.fail(ctx, Failure::Protocol(why));
        }
        let State::InitSent { request, .. } = std::mem::replace(
            &mut self.state,
            State::AuthSent { init_response: data.to_vec(), psk: Vec::new(), spi_in: 0 },
        ) else {
            return Next::Keep;
        };
        self.outstanding = None;
        self.send_auth(ctx, now, &request)
    }

    /// Sends (or resends, after INVALID_KE_PAYLOAD with a new `ke`, after COOKIE with the same) the
    /// IKE_SA_INIT request; the cookie, if the responder gave one, comes first (§2.6).
    fn send_init(&mut self, ctx: &mut Ctx, now: Instant, ke: KeyExchange) {
        let mut msg = self.header(ExchangeType::IKE_SA_INIT, 0, false);
        msg.payloads = self.cookie.iter().map(|(c, _)| notify(NotifyType::COOKIE, c.clone())).collect();
        msg.payloads.extend([
            PayloadBody::Sa(config::ike_sa_payload(&ctx.config.ike_proposals, &[])).into(),
            PayloadBody::Ke(Ke { group: ke.group(), data: ke.public().to_vec() }).into(),
            PayloadBody::Nonce(self.ni.clone()).into(),
        ]);
        msg.payloads.extend(nat_payloads(self.spi_i, 0, self.local, self.remote));
        if ctx.config.fragment_size.is_some() {
            msg.payloads.push(notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, []));
        }
        if ctx.certificates() {
            msg.payloads.push(notify(NotifyType::SIGNATURE_HASH_ALGORITHMS, cert::signature_hashes_notify()));
        }
        let request = msg.to_vec().unwrap_or_default();
        self.state = State::InitSent { ke, request: request.clone() };
        self.start_request(ctx, now, 0, vec![request], Sent::Init);
        self.next_id = 1;
    }

    /// IKE_AUTH request (§1.2) with the CHILD SA for GRE (§1.3.1 transport mode).
    fn send_auth(&mut self, ctx: &mut Ctx, now: Instant, init_request: &[u8]) -> Next {
        let Some(c) = self.crypto.as_ref() else { return Next::Keep };
        let idi = ctx.config.local_id.clone();
        // §2.15: IDi, [CERT+], [CERTREQ], [IDr], AUTH.
        let mut inner: Vec<Payload> = vec![PayloadBody::IdI(idi.clone()).into()];
        let (auth, psk) = match ctx.config.auth.lookup(self.peer_id.as_ref(), self.remote.ip()) {
            AuthKind::Psk => {
                let Some(psk) = ctx.config.keyring.lookup(self.peer_id.as_ref(), self.remote.ip()).map(<[u8]>::to_vec)
                else {
                    ctx.stats.auth_failures += 1;
                    return self.fail(ctx, Failure::AuthenticationFailed);
                };
                let data = psk_auth(c.prf, &psk, init_request, &self.nr, &c.sk_pi, &idi);
                (PayloadBody::Auth(Auth { method: AuthMethod::SHARED_KEY_MIC, data }).into(), psk)
            }
            AuthKind::Certificate => {
                let octets = signed_octets(c.prf, init_request, &self.nr, &c.sk_pi, &idi);
                match sign_auth(&ctx.config, &octets, self.peer_rfc7427) {
                    Ok((certs, auth)) => {
                        inner.extend(certs);
                        inner.extend(certreq(&ctx.config));
                        (auth, Vec::new())
                    }
                    Err(e) => {
                        ctx.stats.auth_failures += 1;
                        return self.fail(ctx, Failure::Auth(e));
                    }
                }
            }
        };
        let spi_in = ctx.child_spi();
        let proto = ctx.config.ts_protocol;
        if let Some(idr) = &self.peer_id {
            inner.push(PayloadBody::IdR(idr.clone()).into());
        }
        inner.push(auth);
        inner.push(notify(NotifyType::INITIAL_CONTACT, []));
        if ctx.config.transport {
            inner.push(notify(NotifyType::USE_TRANSPORT_MODE, []));
        }
        inner.push(PayloadBody::Sa(config::esp_sa_payload(&ctx.config.esp_proposals, spi_in, None)).into());
        inner.push(PayloadBody::TsI(vec![config::endpoint_ts(self.local.ip(), proto)]).into());
        inner.push(PayloadBody::TsR(vec![config::endpoint_ts(self.remote.ip(), proto)]).into());
        if let State::AuthSent { psk: p, spi_in: s, .. } = &mut self.state {
            *p = psk;
            *s = spi_in;
        }
        self.send_request(ctx, now, ExchangeType::IKE_AUTH, &inner, Sent::Auth);
        Next::Keep
    }

    /// IKE_AUTH response: verify the responder (§2.15), then take the CHILD SA (§1.3.1, §2.9).
    fn on_auth_response(&mut self, ctx: &mut Ctx, now: Instant, inner: &[Payload]) -> Next {
        let State::AuthSent { init_response, psk, spi_in } = &self.state else { return Next::Keep };
        let (Some(idr), Some(auth)) = (take!(inner, IdR), take!(inner, Auth)) else {
            let failure = match first_error(inner) {
                Some(NotifyType::AUTHENTICATION_FAILED) => Failure::AuthenticationFailed,
                Some(e) => Failure::Refused(e),
                None => Failure::Protocol("IKE_AUTH response lacks IDr or AUTH"),
            };
            return self.fail(ctx, failure);
        };
        let Some(c) = self.crypto.as_ref() else { return Next::Keep };
        let verdict = match ctx.config.auth.lookup(Some(self.peer_id.as_ref().unwrap_or(idr)), self.remote.ip()) {
            AuthKind::Psk if auth.method != AuthMethod::SHARED_KEY_MIC => {
                Err(Failure::Auth(AuthError::MethodNotAllowed { got: auth.method, want: AuthKind::Psk }))
            }
            AuthKind::Psk => {
                // The configured peer identity, when there is one, must be the one authenticated; the
                // key is the one for that identity.
                let psk = match &self.peer_id {
                    Some(want) if want != idr => None,
                    Some(_) => Some(psk.clone()),
                    None => ctx.config.keyring.lookup(Some(idr), self.remote.ip()).map(<[u8]>::to_vec),
                };
                let expected = psk.map(|k| psk_auth(c.prf, &k, init_response, &self.ni, &c.sk_pr, idr));
                match expected.is_some_and(|e| bool::from(e.as_slice().ct_eq(&auth.data))) {
                    true => Ok(()),
                    false => Err(Failure::AuthenticationFailed),
                }
            }
            AuthKind::Certificate => match &self.peer_id {
                Some(want) if want != idr => {
                    Err(AuthError::UnexpectedIdentity { got: cert::id_display(idr), want: cert::id_display(want) })
                }
                _ => verify_auth(
                    ctx,
                    now,
                    inner,
                    idr,
                    auth,
                    &signed_octets(c.prf, init_response, &self.ni, &c.sk_pr, idr),
                ),
            }
            .map_err(Failure::Auth),
        };
        if let Err(failure) = verdict {
            ctx.stats.auth_failures += 1;
            return self.fail(ctx, failure);
        }
        let spi_in = *spi_in;
        self.peer_id = Some(idr.clone());
        self.state = State::Established { since: now };
        ctx.events.push_back(Event::IkeSaUp {
            sa: self.id(),
            local: self.local,
            remote: self.remote,
            peer_id: idr.clone(),
        });
        let child = (|| {
            if let Some(e) = first_error(inner) {
                return Err(Failure::Refused(e));
            }
            let (Some(sa), Some(tsi), Some(tsr)) = (take!(inner, Sa), take!(inner, TsI), take!(inner, TsR)) else {
                return Err(Failure::Protocol("IKE_AUTH response lacks SA, TSi or TSr"));
            };
            let (spi_out, suite) = config::accepted_esp(&ctx.config.esp_proposals, sa)
                .ok_or(Failure::Protocol("IKE_AUTH response accepts no ESP proposal of ours"))?;
            let mode = if find_notify(inner, NotifyType::USE_TRANSPORT_MODE).is_some() && ctx.config.transport {
                Mode::Transport
            } else if ctx.config.allow_tunnel {
                Mode::Tunnel
            } else {
                return Err(Failure::Protocol("responder refused transport mode"));
            };
            Ok((spi_out, suite, mode, tsi.clone(), tsr.clone()))
        })();
        match child {
            Ok((spi_out, suite, mode, tsi, tsr)) => {
                let (ni, nr) = (self.ni.clone(), self.nr.clone());
                let child = NewChild {
                    spis: (spi_in, spi_out),
                    suite,
                    mode,
                    ts: (tsi, tsr),
                    nonces: (&ni, &nr),
                    g_ir: None,
                    we_initiated: true,
                    rekeys: 0,
                };
                if let Err(why) = self.install_child(ctx, now, child) {
                    ctx.events.push_back(Event::Failed {
                        sa: self.id(),
                        remote: self.remote,
                        failure: Failure::Protocol(why),
                    });
                }
            }
            Err(failure) => {
                ctx.child_spis.remove(&spi_in);
                ctx.events.push_back(Event::Failed { sa: self.id(), remote: self.remote, failure });
            }
        }
        Next::Keep
    }

    // ---- responder ----

    /// IKE_AUTH request (§1.2): authenticate the initiator, answer with ours and the CHILD SA.
    fn on_auth_request(&mut self, ctx: &mut Ctx, now: Instant, id: u32, inner: &[Payload]) -> Next {
        let State::HalfOpen { init_request, init_response, .. } = &self.state else { return Next::Keep };
        let (Some(idi), Some(auth)) = (take!(inner, IdI), take!(inner, Auth)) else {
            self.send_response(ctx, ExchangeType::IKE_AUTH, id, &[notify(NotifyType::INVALID_SYNTAX, [])]);
            return self.fail(ctx, Failure::Protocol("IKE_AUTH request lacks IDi or AUTH"));
        };
        let Some(c) = self.crypto.as_ref() else { return Next::Keep };
        let idr = ctx.config.local_id.clone();
        // §2.15: verify the initiator, then answer IDr, [CERT+], AUTH.
        let answer = match ctx.config.auth.lookup(Some(idi), self.remote.ip()) {
            AuthKind::Psk if auth.method != AuthMethod::SHARED_KEY_MIC => {
                Err(Failure::Auth(AuthError::MethodNotAllowed { got: auth.method, want: AuthKind::Psk }))
            }
            AuthKind::Psk => {
                let psk = ctx.config.keyring.lookup(Some(idi), self.remote.ip());
                let ok = psk.is_some_and(|k| {
                    let expected = psk_auth(c.prf, k, init_request, &self.nr, &c.sk_pi, idi);
                    bool::from(expected.as_slice().ct_eq(&auth.data))
                });
                match psk {
                    Some(k) if ok => {
                        let data = psk_auth(c.prf, k, init_response, &self.ni, &c.sk_pr, &idr);
                        Ok(vec![PayloadBody::Auth(Auth { method: AuthMethod::SHARED_KEY_MIC, data }).into()])
                    }
                    _ => Err(Failure::AuthenticationFailed),
                }
            }
            AuthKind::Certificate => {
                verify_auth(ctx, now, inner, idi, auth, &signed_octets(c.prf, init_request, &self.nr, &c.sk_pi, idi))
                    .and_then(|()| {
                        let octets = signed_octets(c.prf, init_response, &self.ni, &c.sk_pr, &idr);
                        sign_auth(&ctx.config, &octets, self.peer_rfc7427)
                    })
                    .map(|(mut certs, auth)| {
                        certs.push(auth);
                        certs
                    })
                    .map_err(Failure::Auth)
            }
        };
        let answer = match answer {
            Ok(a) => a,
            Err(failure) => {
                ctx.stats.auth_failures += 1;
                self.send_response(ctx, ExchangeType::IKE_AUTH, id, &[notify(NotifyType::AUTHENTICATION_FAILED, [])]);
                return self.fail(ctx, failure);
            }
        };
        let mut out: Vec<Payload> = vec![PayloadBody::IdR(idr).into()];
        out.extend(answer);
        self.peer_id = Some(idi.clone());
        self.state = State::Established { since: now };
        ctx.events.push_back(Event::IkeSaUp {
            sa: self.id(),
            local: self.local,
            remote: self.remote,
            peer_id: idi.clone(),
        });
        let (ni, nr) = (self.ni.clone(), self.nr.clone());
        match self.answer_child(ctx, now, inner, (&ni, &nr), None, 0) {
            Ok((payloads, _)) => out.extend(payloads),
            Err(ty) => {
                ctx.stats.proposals_refused += 1;
                out.push(notify(ty, []));
                ctx.events.push_back(Event::Failed {
                    sa: self.id(),
                    remote: self.remote,
                    failure: Failure::Rejected(ty),
                });
            }
        }
        self.send_response(ctx, ExchangeType::IKE_AUTH, id, &out);
        if find_notify(inner, NotifyType::INITIAL_CONTACT).is_some() {
            Next::KeepReplacing
        } else {
            Next::Keep
        }
    }

    /// Responder side of a CHILD SA (§1.3.1, §2.7, §2.9): choose, narrow, derive (with the peer's KE
    /// for PFS in CREATE_CHILD_SA, §1.3.1), report; returns the payloads of the answer (our KE
    /// included) and our inbound SPI, or the error Notify to send instead.
    fn answer_child(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        inner: &[Payload],
        nonces: (&[u8], &[u8]),
        ke: Option<&Ke>,
        rekeys: u32,
    ) -> Result<(Vec<Payload>, u32), NotifyType> {
        let (Some(sa), Some(tsi), Some(tsr)) = (take!(inner, Sa), take!(inner, TsI), take!(inner, TsR)) else {
            return Err(NotifyType::INVALID_SYNTAX);
        };
        let pfs = ke.map(|k| k.group);
        let (number, spi_out, suite) =
            config::select_esp(&ctx.config.esp_proposals, sa, pfs).ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        let dh = match ke {
            Some(k) => {
                let ours =
                    KeyExchange::generate(k.group, ctx.rng.as_mut()).map_err(|_| NotifyType::NO_PROPOSAL_CHOSEN)?;
                let g_ir = ours.shared(&k.data).map_err(|_| NotifyType::INVALID_SYNTAX)?;
                Some((Ke { group: k.group, data: ours.public().to_vec() }, g_ir))
            }
            None => None,
        };
        let transport = find_notify(inner, NotifyType::USE_TRANSPORT_MODE).is_some() && ctx.config.transport;
        if !transport && !ctx.config.allow_tunnel {
            return Err(NotifyType::NO_PROPOSAL_CHOSEN);
        }
        let proto = ctx.config.ts_protocol;
        let (remote, local) = (self.remote.ip(), self.local.ip());
        // §2.23.1: across a NAT the initiator's selectors name addresses we do not see (its private
        // one, our public one): the endpoints' addresses as we see them stand in for them.
        let (tsi, tsr) = if self.nat {
            let tsi: Vec<_> = tsi.iter().map(|t| config::readdressed(t, remote)).collect();
            (tsi, tsr.iter().map(|t| config::readdressed(t, local)).collect())
        } else {
            (tsi.clone(), tsr.clone())
        };
        let ts_remote = config::narrow(&tsi, &config::endpoint_ts(remote, proto));
        let ts_local = config::narrow(&tsr, &config::endpoint_ts(local, proto));
        if ts_remote.is_empty() || ts_local.is_empty() {
            return Err(NotifyType::TS_UNACCEPTABLE);
        }
        let spi_in = ctx.child_spi();
        let mode = if transport { Mode::Transport } else { Mode::Tunnel };
        let mut out = Vec::new();
        if transport {
            out.push(notify(NotifyType::USE_TRANSPORT_MODE, []));
        }
        out.push(PayloadBody::Sa(config::esp_sa_answer(number, &suite, spi_in, pfs)).into());
        if let Some((k, _)) = &dh {
            out.push(PayloadBody::Ke(k.clone()).into());
        }
        out.push(PayloadBody::TsI(ts_remote.clone()).into());
        out.push(PayloadBody::TsR(ts_local.clone()).into());
        let child = NewChild {
            spis: (spi_in, spi_out),
            suite,
            mode,
            ts: (ts_local, ts_remote),
            nonces,
            g_ir: dh.as_ref().map(|(_, g)| g.as_slice()),
            we_initiated: false,
            rekeys,
        };
        if self.install_child(ctx, now, child).is_err() {
            ctx.child_spis.remove(&spi_in);
            return Err(NotifyType::NO_PROPOSAL_CHOSEN);
        }
        Ok((out, spi_in))
    }

    /// INFORMATIONAL request (§1.4): liveness checks (empty), DELETE of the IKE SA or CHILD SAs.
    fn on_informational(&mut self, ctx: &mut Ctx, id: u32, inner: &[Payload]) -> Next {
        let mut answer = Vec::new();
        let mut delete_ike = false;
        for d in inner.iter().filter_map(|p| match &p.body {
            PayloadBody::Delete(d) => Some(d),
            _ => None,
        }) {
            match d.protocol {
                ProtocolId::IKE => delete_ike = true,
                ProtocolId::ESP => {
                    // §1.4.1: the SPIs are the sender's inbound ones (our outbound); answer with ours.
                    let mut ours = Vec::new();
                    for spi in d.spis().filter_map(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_be_bytes) {
                        if let Some(i) = self.children.iter().position(|c| c.spi_out == spi) {
                            let c = self.children.remove(i);
                            ctx.child_spis.remove(&c.spi_in);
                            ctx.events.push_back(Event::DeleteSaPair {
                                ike_sa: self.id(),
                                inbound_spi: c.spi_in,
                                outbound_spi: c.spi_out,
                            });
                            ours.extend_from_slice(&c.spi_in.to_be_bytes());
                        }
                    }
                    if !ours.is_empty() {
                        answer.push(
                            PayloadBody::Delete(Delete { protocol: ProtocolId::ESP, spi_size: 4, spis: ours }).into(),
                        );
                    }
                }
                _ => {}
            }
        }
        if delete_ike {
            // §1.4.1: the answer to deleting the IKE SA is empty.
            answer.clear();
        }
        self.send_response(ctx, ExchangeType::INFORMATIONAL, id, &answer);
        if delete_ike {
            Next::Remove(Some(DownReason::DeletedByPeer))
        } else {
            Next::Keep
        }
    }

    /// A message for this SA (§2.3: requests in order, responses to our outstanding request).
    fn handle(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        (local, remote): (SocketAddr, SocketAddr),
        data: &[u8],
        msg: Message,
    ) -> Next {
        if msg.flags.response() {
            if self.outstanding.as_ref().is_none_or(|o| o.message_id != msg.message_id) {
                ctx.stats.unexpected_message_id += 1;
                return Next::Keep;
            }
            if let State::InitSent { .. } = self.state {
                return if msg.exchange == ExchangeType::IKE_SA_INIT {
                    self.on_init_response(ctx, now, data, msg)
                } else {
                    Next::Keep
                };
            }
            let Some(inner) = self.open(ctx, data, &msg) else { return Next::Keep };
            self.last_heard = now;
            let Some(o) = self.outstanding.take() else { return Next::Keep };
            let next = match o.kind {
                Sent::Auth => self.on_auth_response(ctx, now, &inner),
                Sent::Init | Sent::Dpd | Sent::DeleteChild => Next::Keep,
                Sent::DeleteIke => Next::Remove(Some(DownReason::DeletedLocally)),
                Sent::RekeyChild { old, spi_in, ni, ke } => {
                    self.on_rekey_child_response(ctx, now, &inner, (old, spi_in), &ni, ke.as_ref())
                }
                Sent::RekeyIke { spi, ni, ke } => self.on_rekey_ike_response(ctx, now, &inner, spi, ni, &ke),
            };
            if matches!(next, Next::Keep) {
                self.pump(ctx, now);
            }
            return next;
        }
        // A request from the peer.
        if self.crypto.is_none() || matches!(self.state, State::InitSent { .. } | State::AuthSent { .. }) {
            ctx.stats.unexpected_message_id += 1;
            return Next::Keep;
        }
        if msg.message_id != self.peer_next_id {
            match &self.last_response {
                Some((id, packets)) if *id == msg.message_id => {
                    // §2.1: a retransmitted request gets the same response, only once it authenticates;
                    // of a fragmented one, only its first fragment asks for it (RFC 7383 §2.6.1).
                    let d = self.decrypt(ctx, data, &msg);
                    if d.is_some_and(|d| d.fragment.is_none_or(|(n, _)| n == 1)) {
                        ctx.stats.duplicate_requests += 1;
                        for p in packets.clone() {
                            ctx.transmits.push_back(Transmit { local, remote, data: p });
                        }
                    }
                }
                _ => ctx.stats.unexpected_message_id += 1,
            }
            return Next::Keep;
        }
        let Some(inner) = self.open(ctx, data, &msg) else { return Next::Keep };
        self.peer_next_id = self.peer_next_id.wrapping_add(1);
        self.last_heard = now;
        // §2.23: behind a NAT (or once the peer floated to 4500), answer and send to where the latest
        // authenticated request came from.
        if self.nat || local.port() == NAT_T_PORT {
            (self.local, self.remote) = (local, remote);
        }
        let id = msg.message_id;
        match (&self.state, msg.exchange) {
            (State::HalfOpen { .. }, ExchangeType::IKE_AUTH) => self.on_auth_request(ctx, now, id, &inner),
            (State::Established { .. } | State::Rekeyed { .. }, ExchangeType::INFORMATIONAL) => {
                self.on_informational(ctx, id, &inner)
            }
            (State::Established { .. }, ExchangeType::CREATE_CHILD_SA) => self.on_create_child(ctx, now, id, &inner),
            (State::Rekeyed { .. }, ExchangeType::CREATE_CHILD_SA) => {
                // §2.25: this SA is being deleted.
                self.send_response(ctx, msg.exchange, id, &[notify(NotifyType::TEMPORARY_FAILURE, [])]);
                Next::Keep
            }
            _ => {
                ctx.stats.unexpected_message_id += 1;
                Next::Keep
            }
        }
    }

    /// CREATE_CHILD_SA request (§1.3): rekey of the IKE SA (§1.3.2), rekey of a CHILD SA (§1.3.3,
    /// N(REKEY_SA)) or a new CHILD SA (§1.3.1).
    fn on_create_child(&mut self, ctx: &mut Ctx, now: Instant, id: u32, inner: &[Payload]) -> Next {
        let ex = ExchangeType::CREATE_CHILD_SA;
        let (Some(sa), Some(ni)) = (take!(inner, Sa), take!(inner, Nonce)) else {
            self.send_response(ctx, ex, id, &[notify(NotifyType::INVALID_SYNTAX, [])]);
            return Next::Keep;
        };
        if !(16..=256).contains(&ni.len()) {
            self.send_response(ctx, ex, id, &[notify(NotifyType::INVALID_SYNTAX, [])]);
            return Next::Keep;
        }
        let nr = ctx.nonce();
        if sa.proposals.iter().any(|p| p.protocol == ProtocolId::IKE) {
            return self.answer_rekey_ike(ctx, now, id, inner, ni, nr);
        }
        let rekeyed = find_notify(inner, NotifyType::REKEY_SA)
            .filter(|n| n.protocol == ProtocolId::ESP)
            .and_then(|n| <[u8; 4]>::try_from(n.spi.as_slice()).ok())
            .map(u32::from_be_bytes);
        // §1.3.3: the SPI names the SA being rekeyed as its sender knows it (its inbound, our outbound).
        let old = match rekeyed {
            Some(spi) => match self.children.iter().position(|c| c.spi_out == spi) {
                Some(i) => Some(i),
                None => {
                    let mut n = Notify::new(NotifyType::CHILD_SA_NOT_FOUND, []);
                    (n.protocol, n.spi) = (ProtocolId::ESP, spi.to_be_bytes().to_vec());
                    self.send_response(ctx, ex, id, &[Payload::new(PayloadBody::Notify(n))]);
                    return Next::Keep;
                }
            },
            None => None,
        };
        let rekeys = old.and_then(|i| self.children.get(i)).map_or(0, |c| c.rekeys + 1);
        match self.answer_child(ctx, now, inner, (ni, &nr), take!(inner, Ke), rekeys) {
            Ok((mut payloads, spi_in)) => {
                if let Some(c) = old.and_then(|i| self.children.get_mut(i)) {
                    c.peer_rekey = Some((ni.clone(), nr.clone(), spi_in));
                }
                payloads.insert(1, PayloadBody::Nonce(nr).into());
                self.send_response(ctx, ex, id, &payloads);
            }
            Err(ty) => {
                ctx.stats.proposals_refused += 1;
                self.send_response(ctx, ex, id, &[notify(ty, [])]);
            }
        }
        Next::Keep
    }

    /// Responder side of an IKE SA rekey (§1.3.2, §2.18): a new IKE SA with new SPIs and keys from
    /// SK_d of this one; the CHILD SAs move to it.
    fn answer_rekey_ike(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        id: u32,
        inner: &[Payload],
        ni: &[u8],
        nr: Vec<u8>,
    ) -> Next {
        let ex = ExchangeType::CREATE_CHILD_SA;
        let (Some(sa), Some(ke)) = (take!(inner, Sa), take!(inner, Ke)) else {
            self.send_response(ctx, ex, id, &[notify(NotifyType::INVALID_SYNTAX, [])]);
            return Next::Keep;
        };
        let (number, suite) = match config::select_ike(&ctx.config.ike_proposals, sa, ke.group) {
            IkeChoice::Chosen(n, s) => (n, s),
            IkeChoice::WrongKe(g) => {
                ctx.stats.invalid_ke_sent += 1;
                self.send_response(ctx, ex, id, &[notify(NotifyType::INVALID_KE_PAYLOAD, g.0.to_be_bytes())]);
                return Next::Keep;
            }
            IkeChoice::None => {
                ctx.stats.proposals_refused += 1;
                self.send_response(ctx, ex, id, &[notify(NotifyType::NO_PROPOSAL_CHOSEN, [])]);
                return Next::Keep;
            }
        };
        let peer_spi = sa
            .proposals
            .iter()
            .find(|p| p.number == number)
            .and_then(|p| <[u8; 8]>::try_from(p.spi.as_slice()).ok())
            .map(u64::from_be_bytes);
        let ours = KeyExchange::generate(suite.dh, ctx.rng.as_mut());
        let (Some(peer_spi), Ok(ours)) = (peer_spi, ours) else {
            self.send_response(ctx, ex, id, &[notify(NotifyType::INVALID_SYNTAX, [])]);
            return Next::Keep;
        };
        let Ok(g_ir) = ours.shared(&ke.data) else {
            self.send_response(ctx, ex, id, &[notify(NotifyType::INVALID_SYNTAX, [])]);
            return Next::Keep;
        };
        let spi = ctx.ike_spi();
        let Some(mut new) = self.successor(now, false, (peer_spi, spi), (ni, &nr), suite, &g_ir) else {
            self.send_response(ctx, ex, id, &[notify(NotifyType::NO_PROPOSAL_CHOSEN, [])]);
            return Next::Keep;
        };
        let lowest = ni.min(nr.as_slice()).to_vec();
        let answer = [
            PayloadBody::Sa(config::ike_sa_answer(number, &suite, &spi.to_be_bytes())).into(),
            PayloadBody::Nonce(nr).into(),
            PayloadBody::Ke(Ke { group: suite.dh, data: ours.public().to_vec() }).into(),
        ];
        self.send_response(ctx, ex, id, &answer);
        if matches!(self.outstanding, Some(Outstanding { kind: Sent::RekeyIke { .. }, .. })) {
            // §2.8.2: answered as usual, but which new SA survives waits for the answer to ours; until
            // then the CHILD SAs stay here and the peer's SA stands by.
            ctx.stats.ike_rekey_collisions += 1;
            let standby = now + standby_time(&ctx.config);
            self.children = std::mem::take(&mut new.children);
            new.state = State::Rekeyed { expires: standby };
            self.crossed = Some(Crossed { sa: spi, lowest, since: now });
            self.state = State::Rekeyed { expires: standby };
            return Next::Standby(Box::new(new));
        }
        self.state = State::Rekeyed { expires: now + ctx.config.half_open_timeout };
        Next::Rekeyed(Box::new(new))
    }

    /// The IKE SA that replaces this one after a rekey (§2.18): SKEYSEED = prf(SK_d (old), g^ir (new)
    /// | Ni | Nr), keys as in §2.14 with the new SPIs; the CHILD SAs move over, the pending requests do
    /// not (they were for this SA).
    #[allow(clippy::too_many_arguments)]
    fn successor(
        &mut self,
        now: Instant,
        initiator: bool,
        (spi_i, spi_r): (u64, u64),
        (ni, nr): (&[u8], &[u8]),
        suite: IkeSuite,
        g_ir: &[u8],
    ) -> Option<IkeSa> {
        let c = self.crypto.as_ref()?;
        let skeyseed = c.prf.skeyseed_rekey(&c.sk_d, g_ir, ni, nr);
        let prf = Prf::from_id(suite.prf).ok()?;
        let lengths = KeyLengths::new(suite.encr, Some(suite.key_bits), suite.integ).ok()?;
        let k = keys::ike_keys(prf, &skeyseed, ni, nr, spi_i, spi_r, lengths).ok()?;
        let ci = SkCipher::new(suite.encr, suite.key_bits, suite.integ, &k.initiator).ok()?;
        let cr = SkCipher::new(suite.encr, suite.key_bits, suite.integ, &k.responder).ok()?;
        let (out, inb) = if initiator { (ci, cr) } else { (cr, ci) };
        Some(IkeSa {
            initiator,
            spi_i,
            spi_r,
            local: self.local,
            remote: self.remote,
            state: State::Established { since: now },
            suite: Some(suite),
            crypto: Some(SaCrypto { prf, sk_d: k.sk_d, sk_pi: k.sk_pi, sk_pr: k.sk_pr, out, inb }),
            ni: ni.to_vec(),
            nr: nr.to_vec(),
            peer_id: self.peer_id.clone(),
            next_id: 0,
            peer_next_id: 0,
            outstanding: None,
            last_response: None,
            children: std::mem::take(&mut self.children),
            nat: self.nat,
            behind_nat: self.behind_nat,
            last_keepalive: now,
            cookie: None,
            half_open_key: None,
            fragmentation: self.fragmentation,
            reassembly: None,
            pending: VecDeque::new(),
            last_heard: now,
            rekeys: self.rekeys + 1,
            filed: None,
            crossed: None,
            peer_rfc7427: false,
        })
    }

    /// Our CHILD SA rekey answered (§1.3.3): install the new pair, then delete the old one — unless
    /// the peer rekeyed the same SA at the same time and ours holds the lowest nonce (§2.8.1), in
    /// which case ours is the redundant one and goes instead.
    fn on_rekey_child_response(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        inner: &[Payload],
        (old, spi_in): (u32, u32),
        ni: &[u8],
        ke: Option<&KeyExchange>,
    ) -> Next {
        let Some(i) = self.children.iter().position(|c| c.spi_in == old) else {
            // The peer deleted the old SA meanwhile; nothing to replace.
            ctx.child_spis.remove(&spi_in);
            return Next::Keep;
        };
        self.children[i].rekeying = false;
        let answer = (|| {
            if let Some(e) = first_error(inner) {
                return Err(Failure::Refused(e));
            }
            let (Some(sa), Some(nr), Some(tsi), Some(tsr)) =
                (take!(inner, Sa), take!(inner, Nonce), take!(inner, TsI), take!(inner, TsR))
            else {
                return Err(Failure::Protocol("CREATE_CHILD_SA response lacks SA, Nonce, TSi or TSr"));
            };
            let (spi_out, suite) = config::accepted_esp(&ctx.config.esp_proposals, sa)
                .ok_or(Failure::Protocol("CREATE_CHILD_SA response accepts no ESP proposal of ours"))?;
            // PFS (§1.3.3): the responder's KE must be of our group; g^ir enters KEYMAT (§2.17).
            let g_ir = match (ke, take!(inner, Ke)) {
                (None, _) => None,
                (Some(ours), Some(theirs)) if theirs.group == ours.group() => {
                    Some(ours.shared(&theirs.data).map_err(|_| Failure::Protocol("bad KE data"))?)
                }
                (Some(_), _) => return Err(Failure::Protocol("CREATE_CHILD_SA response lacks the PFS KE")),
            };
            Ok((spi_out, suite, nr.clone(), tsi.clone(), tsr.clone(), g_ir))
        })();
        let (spi_out, suite, nr, tsi, tsr, g_ir) = match answer {
            Ok(a) => a,
            Err(failure) => {
                ctx.child_spis.remove(&spi_in);
                ctx.events.push_back(Event::Failed { sa: self.id(), remote: self.remote, failure });
                return Next::Keep;
            }
        };
        let (mode, rekeys, peer_rekey) = {
            let c = &self.children[i];
            (c.mode, c.rekeys + 1, c.peer_rekey.clone())
        };
        let child = NewChild {
            spis: (spi_in, spi_out),
            suite,
            mode,
            ts: (tsi, tsr),
            nonces: (ni, &nr),
            g_ir: g_ir.as_deref(),
            we_initiated: true,
            rekeys,
        };
        if let Err(why) = self.install_child(ctx, now, child) {
            ctx.child_spis.remove(&spi_in);
            ctx.events.push_back(Event::Failed { sa: self.id(), remote: self.remote, failure: Failure::Protocol(why) });
            return Next::Keep;
        }
        let redundant = peer_rekey.is_some_and(|(their_ni, our_nr, _)| {
            let ours = ni.min(nr.as_slice());
            let theirs = their_ni.as_slice().min(our_nr.as_slice());
            ours < theirs
        });
        self.pending.push_back(Request::DeleteChild(if redundant { spi_in } else { old }));
        Next::Keep
    }

    /// Our IKE SA rekey answered (§1.3.2): the new SA takes the CHILD SAs, this one is deleted.
    fn on_rekey_ike_response(
        &mut self,
        ctx: &mut Ctx,
        now: Instant,
        inner: &[Payload],
        spi: u64,
        ni: Vec<u8>,
        ke: &KeyExchange,
    ) -> Next {
        let answer = (|| {
            if let Some(e) = first_error(inner) {
                return Err(Failure::Refused(e));
            }
            let (Some(sa), Some(nr), Some(peer_ke)) = (take!(inner, Sa), take!(inner, Nonce), take!(inner, Ke)) else {
                return Err(Failure::Protocol("IKE rekey response lacks SA, Nonce or KE"));
            };
            let suite = config::accepted_ike(&ctx.config.ike_proposals, sa)
                .filter(|s| s.dh == ke.group() && peer_ke.group == ke.group())
                .ok_or(Failure::Protocol("IKE rekey response accepts no proposal of ours"))?;
            let peer_spi = sa
                .proposals
                .first()
                .and_then(|p| <[u8; 8]>::try_from(p.spi.as_slice()).ok())
                .map(u64::from_be_bytes)
                .ok_or(Failure::Protocol("IKE rekey response without an 8-octet SPI"))?;
            let g_ir = ke.shared(&peer_ke.data).map_err(|_| Failure::Protocol("bad KE data"))?;
            Ok((suite, peer_spi, nr.clone(), g_ir))
        })();
        let new = answer.and_then(|(suite, peer_spi, nr, g_ir)| {
            self.successor(now, true, (spi, peer_spi), (&ni, &nr), suite, &g_ir)
                .ok_or(Failure::Protocol("IKE rekey key derivation"))
        });
        match new {
            Ok(mut new) => {
                self.pending.clear();
                let crossed = self.crossed.take();
                if let Some(c) = crossed.filter(|c| new.ni.as_slice().min(new.nr.as_slice()) < c.lowest.as_slice()) {
                    // §2.8.2: ours holds the lowest nonce: redundant, we delete it; the peer's SA takes
                    // the CHILD SAs and the peer deletes this one.
                    self.children = std::mem::take(&mut new.children);
                    self.crossed = Some(c);
                    new.state = State::Rekeyed { expires: now + ctx.config.half_open_timeout };
                    new.pending.push_back(Request::DeleteIke);
                    new.pump(ctx, now);
                    return Next::Lost(Box::new(new));
                }
                // Ours survives (the peer's, if its rekey crossed ours, waits for its DELETE on standby).
                self.state = State::Rekeyed { expires: now + ctx.config.half_open_timeout };
                self.pending.push_back(Request::DeleteIke);
                self.pump(ctx, now);
                Next::Rekeyed(Box::new(new))
            }
            // §2.8.2, §2.25: the peer's crossing rekey stands (it may answer ours TEMPORARY_FAILURE).
            Err(_) if self.crossed.is_some() => Next::HandOver,
            Err(failure) => {
                ctx.events.push_back(Event::Failed { sa: self.id(), remote: self.remote, failure });
                Next::Keep
            }
        }
    }

    /// Sends the next queued request if the window is free (§2.3).
    fn pump(&mut self, ctx: &mut Ctx, now: Instant) {
        while self.outstanding.is_none() {
            let Some(req) = self.pending.pop_front() else { return };
            let ready = match self.state {
                State::Established { .. } => true,
                State::Rekeyed { .. } => req == Request::DeleteIke,
                _ => false,
            };
            if !ready {
                continue;
            }
            let info = ExchangeType::INFORMATIONAL;
            match req {
                Request::Dpd => self.send_request(ctx, now, info, &[], Sent::Dpd),
                Request::DeleteIke => {
                    let d = Delete { protocol: ProtocolId::IKE, spi_size: 0, spis: Vec::new() };
                    self.send_request(ctx, now, info, &[PayloadBody::Delete(d).into()], Sent::DeleteIke);
                }
                Request::DeleteChild(spi_in) => {
                    // §1.4.1: stop using it now, tell the peer.
                    let Some(i) = self.children.iter().position(|c| c.spi_in == spi_in) else { continue };
                    let c = self.children.remove(i);
                    ctx.child_spis.remove(&c.spi_in);
                    ctx.events.push_back(Event::DeleteSaPair {
                        ike_sa: self.id(),
                        inbound_spi: c.spi_in,
                        outbound_spi: c.spi_out,
                    });
                    let d = Delete { protocol: ProtocolId::ESP, spi_size: 4, spis: spi_in.to_be_bytes().to_vec() };
                    self.send_request(ctx, now, info, &[PayloadBody::Delete(d).into()], Sent::DeleteChild);
                }
                Request::RekeyChild(old) => {
                    let Some(c) = self.children.iter_mut().find(|c| c.spi_in == old && !c.rekeying) else { continue };
                    c.rekeying = true;
                    let (mode, ts_local, ts_remote) = (c.mode, c.ts_local.clone(), c.ts_remote.clone());
                    let spi_in = ctx.child_spi();
                    let ni = ctx.nonce();
                    let mut n = Notify::new(NotifyType::REKEY_SA, []);
                    (n.protocol, n.spi) = (ProtocolId::ESP, old.to_be_bytes().to_vec());
                    let mut inner: Vec<Payload> = vec![PayloadBody::Notify(n).into()];
                    if mode == Mode::Transport {
                        inner.push(notify(NotifyType::USE_TRANSPORT_MODE, []));
                    }
                    // §1.3.3: with PFS, a KE whose group the proposals name as their DH transform.
                    let ke = ctx.config.pfs.and_then(|g| KeyExchange::generate(g, ctx.rng.as_mut()).ok());
                    let pfs = ke.as_ref().map(KeyExchange::group);
                    inner.push(PayloadBody::Sa(config::esp_sa_payload(&ctx.config.esp_proposals, spi_in, pfs)).into());
                    inner.push(PayloadBody::Nonce(ni.clone()).into());
                    if let Some(k) = &ke {
                        inner.push(PayloadBody::Ke(Ke { group: k.group(), data: k.public().to_vec() }).into());
                    }
                    inner.push(PayloadBody::TsI(ts_local).into());
                    inner.push(PayloadBody::TsR(ts_remote).into());
                    let kind = Sent::RekeyChild { old, spi_in, ni, ke };
                    self.send_request(ctx, now, ExchangeType::CREATE_CHILD_SA, &inner, kind);
                }
                Request::RekeyIke => {
                    let Some(group) = self.suite.map(|s| s.dh) else { continue };
                    let Ok(ke) = KeyExchange::generate(group, ctx.rng.as_mut()) else { continue };
                    let spi = ctx.ike_spi();
                    let ni = ctx.nonce();
                    let inner: Vec<Payload> = vec![
                        PayloadBody::Sa(config::ike_sa_payload(&ctx.config.ike_proposals, &spi.to_be_bytes())).into(),
                        PayloadBody::Nonce(ni.clone()).into(),
                        PayloadBody::Ke(Ke { group, data: ke.public().to_vec() }).into(),
                    ];
                    self.send_request(ctx, now, ExchangeType::CREATE_CHILD_SA, &inner, Sent::RekeyIke { spi, ni, ke });
                }
            }
        }
    }

    /// When the IKE SA and each CHILD SA are due for rekeying (§2.8), and when DPD is due (§2.4).
    fn due(&self, c: &Config) -> Option<Instant> {
        let State::Established { since } = self.state else { return None };
        let ike = since + c.ike_lifetime.saturating_sub(c.rekey_margin);
        let children = self
            .children
            .iter()
            .filter(|ch| !ch.rekeying)
            .map(|ch| ch.created + c.child_lifetime.saturating_sub(c.rekey_margin));
        let dpd = c.dpd.map(|d| self.last_heard + d.interval);
        [Some(ike), dpd, self.keepalive_due(c)].into_iter().flatten().chain(children).min()
    }

    /// When the next NAT keepalive is due (RFC 3948 §2.3): only behind a NAT, once established.
    fn keepalive_due(&self, c: &Config) -> Option<Instant> {
        let interval = c.nat_keepalive.filter(|_| self.behind_nat)?;
        matches!(self.state, State::Established { .. }).then_some(self.last_keepalive + interval)
    }

    /// Timers (§2.1 retransmission, §2.4 dead peer, §2.8 rekeying, half-open expiry).
    fn on_timeout(&mut self, ctx: &mut Ctx, now: Instant) -> Next {
        match self.state {
            State::HalfOpen { expires, .. } if now >= expires => {
                ctx.stats.half_open_expired += 1;
                return Next::Remove(None);
            }
            State::Rekeyed { expires } if now >= expires => return Next::Remove(None),
            _ => {}
        }
        if self.keepalive_due(&ctx.config).is_some_and(|t| now >= t) {
            ctx.stats.nat_keepalives += 1;
            self.last_keepalive = now;
            ctx.send(self, NAT_KEEPALIVE.to_vec());
        }
        if let Some(o) = self.outstanding.as_mut() {
            if now < o.next {
                return Next::Keep;
            }
            let (tries, wait) = match (&o.kind, ctx.config.dpd) {
                (Sent::Dpd, Some(d)) => (d.retries + 1, d.retry_interval),
                _ => {
                    let r = ctx.config.retransmit;
                    (r.tries, r.initial * 2u32.saturating_pow(o.sends.min(16)))
                }
            };
            if o.sends >= tries {
                return match self.state {
                    State::Established { .. } => {
                        if let Some(peer_id) = self.peer_id.clone() {
                            ctx.events.push_back(Event::PeerDead { sa: self.id(), remote: self.remote, peer_id });
                        }
                        Next::Remove(Some(DownReason::PeerDead))
                    }
                    State::Rekeyed { .. } => Next::Remove(None),
                    _ => self.fail(ctx, Failure::Timeout),
                };
            }
            ctx.stats.retransmits += 1;
            o.next = now + wait;
            o.sends += 1;
            let packets = o.packets.clone();
            for p in packets {
                ctx.send(self, p);
            }
            return Next::Keep;
        }
        if let State::Established { since } = self.state {
            let c = &ctx.config;
            if now >= since + c.ike_lifetime.saturating_sub(c.rekey_margin)
                && !self.pending.contains(&Request::RekeyIke)
            {
                self.pending.push_back(Request::RekeyIke);
            }
            let due_children: Vec<u32> = self
                .children
                .iter()
                .filter(|ch| !ch.rekeying && now >= ch.created + c.child_lifetime.saturating_sub(c.rekey_margin))
                .map(|ch| ch.spi_in)
                .collect();
            for spi in due_children {
                if !self.pending.contains(&Request::RekeyChild(spi)) {
                    self.pending.push_back(Request::RekeyChild(spi));
                }
            }
            if c.dpd.is_some_and(|d| now >= self.last_heard + d.interval) && self.pending.is_empty() {
                self.pending.push_back(Request::Dpd);
            }
        }
        self.pump(ctx, now);
        Next::Keep
    }

    fn info(&self, now: Instant, config: &Config) -> IkeSaInfo {
        let state = match self.state {
            State::InitSent { .. } => IkeState::InitSent,
            State::AuthSent { .. } => IkeState::AuthSent,
            State::HalfOpen { .. } => IkeState::HalfOpen,
            State::Established { .. } => IkeState::Established,
            State::Rekeyed { .. } => IkeState::Rekeyed,
        };
        let lifetime_left = match self.state {
            State::Established { since } => {
                Some(config.ike_lifetime.saturating_sub(now.saturating_duration_since(since)))
            }
            _ => None,
        };
        IkeSaInfo {
            id: self.id(),
            state,
            initiator: self.initiator,
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            local: self.local,
            remote: self.remote,
            local_id: config.local_id.clone(),
            peer_id: self.peer_id.clone(),
            suite: self.suite,
            lifetime_left,
            rekeys: self.rekeys,
            children: self
                .children
                .iter()
                .map(|c| ChildSaInfo {
                    spi_in: c.spi_in,
                    spi_out: c.spi_out,
                    suite: c.suite,
                    mode: c.mode,
                    ts_local: c.ts_local.clone(),
                    ts_remote: c.ts_remote.clone(),
                    lifetime_left: config.child_lifetime.saturating_sub(now.saturating_duration_since(c.created)),
                    rekeys: c.rekeys,
                })
                .collect(),
        }
    }
}

impl Engine {
    /// An engine with no SAs.
    pub fn new(config: Config, mut rng: Box<dyn Random + Send>) -> Engine {
        let mut cookie_secret = [0; 32];
        rng.fill(&mut cookie_secret);
        Engine {
            ctx: Ctx {
                config,
                rng,
                transmits: VecDeque::new(),
                events: VecDeque::new(),
                stats: Stats::default(),
                child_spis: HashSet::new(),
                wall_clock: None,
            },
            sas: HashMap::new(),
            half_open: HashMap::new(),
            half_open_by_ip: HashMap::new(),
            cookie_secret,
            invalid_spi_window: (None, 0),
            timers: BTreeSet::new(),
        }
    }

    // ---- getters ----

    /// Tells the engine the time of day: at `now`, `since_epoch` had passed since 1970-01-01 UTC.
    /// Certificate authentication checks validity periods with it (the engine reads no clock); call
    /// it before the first IKE SA that uses certificates, and again if the system clock is stepped.
    pub fn set_wall_clock(&mut self, now: Instant, since_epoch: Duration) {
        self.ctx.wall_clock = Some((now, since_epoch));
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// Replaces the configuration: what is read when it is needed (the keyring at authentication, DPD
    /// at the next liveness timer, proposals at the next negotiation) follows the new one; SAs already
    /// made keep what they negotiated.
    pub fn set_config(&mut self, config: Config) {
        self.ctx.config = config;
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.ctx.stats
    }

    /// How many IKE SAs the engine holds (all states), and how many of them are half-open (responder,
    /// IKE_SA_INIT answered, §2.6): cheap, for gauges.
    pub fn ike_sa_count(&self) -> (usize, usize) {
        (self.sas.len(), self.half_open.len())
    }

    /// Every IKE SA with its CHILD SAs, by handle.
    pub fn ike_sas(&self, now: Instant) -> Vec<IkeSaInfo> {
        let mut v: Vec<_> = self.sas.values().map(|sa| sa.info(now, &self.ctx.config)).collect();
        v.sort_by_key(|i| i.id);
        v
    }

    // ---- outputs ----

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ctx.transmits.pop_front()
    }

    /// The next event for the daemon.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.ctx.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    // ---- commands ----

    /// Starts an IKE SA with a CHILD SA to `remote` from `local` (§1.2). `remote_id`, when given, is
    /// sent as IDr and must be the identity the responder authenticates; it also picks the key.
    pub fn initiate(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        remote_id: Option<Id>,
    ) -> Result<IkeSaId, CommandError> {
        let group =
            *self.ctx.config.ike_proposals.first().and_then(|p| p.groups.first()).ok_or(CommandError::NoProposal)?;
        let spi_i = self.new_spi();
        let ni = self.ctx.nonce();
        let mut sa = IkeSa {
            initiator: true,
            spi_i,
            spi_r: 0,
            local,
            remote,
            state: State::Established { since: now },
            suite: None,
            crypto: None,
            ni,
            nr: Vec::new(),
            peer_id: remote_id,
            next_id: 0,
            peer_next_id: 0,
            outstanding: None,
            last_response: None,
            children: Vec::new(),
            nat: false,
            behind_nat: false,
            last_keepalive: now,
            cookie: None,
            half_open_key: None,
            fragmentation: false,
            reassembly: None,
            pending: VecDeque::new(),
            last_heard: now,
            rekeys: 0,
            filed: None,
            crossed: None,
            peer_rfc7427: false,
        };
        let ke = KeyExchange::generate(group, self.ctx.rng.as_mut())?;
        sa.send_init(&mut self.ctx, now, ke);
        self.sas.insert(spi_i, sa);
        self.refile(spi_i);
        Ok(IkeSaId(spi_i))
    }

    /// Queues a request on an established IKE SA and sends it when the window allows.
    fn command(&mut self, now: Instant, sa: IkeSaId, req: Request) -> Result<(), CommandError> {
        let s = self.sas.get_mut(&sa.0).filter(|s| matches!(s.state, State::Established { .. }));
        let s = s.ok_or(CommandError::UnknownSa(sa))?;
        if let Request::DeleteChild(spi) | Request::RekeyChild(spi) = req {
            if !s.children.iter().any(|c| c.spi_in == spi) {
                return Err(CommandError::UnknownChild(spi));
            }
        }
        s.pending.push_back(req);
        s.pump(&mut self.ctx, now);
        self.refile(sa.0);
        Ok(())
    }

    /// Deletes an IKE SA and its CHILD SAs (§1.4.1); [`Event::IkeSaDown`] follows the peer's answer
    /// (or its silence).
    pub fn delete_ike_sa(&mut self, now: Instant, sa: IkeSaId) -> Result<(), CommandError> {
        self.command(now, sa, Request::DeleteIke)
    }

    /// Deletes the CHILD SA with inbound SPI `spi_in` (§1.4.1).
    pub fn delete_child_sa(&mut self, now: Instant, sa: IkeSaId, spi_in: u32) -> Result<(), CommandError> {
        self.command(now, sa, Request::DeleteChild(spi_in))
    }

    /// Rekeys the CHILD SA with inbound SPI `spi_in` now (§1.3.3); it also happens by itself before
    /// the lifetime ends.
    pub fn rekey_child_sa(&mut self, now: Instant, sa: IkeSaId, spi_in: u32) -> Result<(), CommandError> {
        self.command(now, sa, Request::RekeyChild(spi_in))
    }

    /// Rekeys the IKE SA now (§1.3.2); [`Event::IkeSaRekeyed`] names the new handle.
    pub fn rekey_ike_sa(&mut self, now: Instant, sa: IkeSaId) -> Result<(), CommandError> {
        self.command(now, sa, Request::RekeyIke)
    }

    /// Checks the peer's liveness now (§2.4).
    pub fn dpd(&mut self, now: Instant, sa: IkeSaId) -> Result<(), CommandError> {
        self.command(now, sa, Request::Dpd)
    }

    // ---- inputs ----

    /// A UDP payload received on `local` from `remote` (port 500; with NAT-T, 4500 and the non-ESP
    /// marker already stripped).
    pub fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let Ok(h) = Header::parse(data) else {
            self.ctx.stats.malformed += 1;
            return;
        };
        if h.major > 2 && !h.flags.response() {
            // §2.5: drop it, and tell the sender the version we speak (the header's 2.0).
            self.ctx.stats.invalid_major_version_sent += 1;
            self.answer_unprotected(local, remote, &h, NotifyType::INVALID_MAJOR_VERSION);
            return;
        }
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.ctx.stats.malformed += 1;
                return;
            }
        };
        if h.exchange == ExchangeType::IKE_SA_INIT && !h.flags.response() && h.spi_r == 0 {
            self.on_init_request(now, local, remote, data, msg);
            return;
        }
        let ours = if h.flags.initiator() { h.spi_r } else { h.spi_i };
        let Some(sa) = self.sas.get_mut(&ours) else {
            self.ctx.stats.unknown_spi += 1;
            // §2.21.4: a request for an SA we do not know (we may have lost it in a restart) may get
            // an unprotected INVALID_IKE_SPI, rate-limited; a response gets nothing.
            if !h.flags.response() && self.invalid_spi_allowed(now) {
                self.ctx.stats.invalid_spi_sent += 1;
                self.answer_unprotected(local, remote, &h, NotifyType::INVALID_IKE_SPI);
            }
            return;
        };
        // The I flag must say the sender holds the other role (§3.1).
        if h.flags.initiator() == sa.initiator {
            self.ctx.stats.malformed += 1;
            return;
        }
        let next = sa.handle(&mut self.ctx, now, (local, remote), data, msg);
        self.after(ours, next);
    }

    /// Timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, spi)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(sa) = self.sas.get_mut(&spi) else { continue };
            sa.filed = None;
            let next = sa.on_timeout(&mut self.ctx, now);
            self.after(spi, next);
        }
    }

    // ---- internals ----

    /// An unprotected response to request `h` carrying only `ty` (§2.5, §2.21.4): the SPIs, exchange
    /// and Message ID copied, the R flag set, the I flag ours.
    fn answer_unprotected(&mut self, local: SocketAddr, remote: SocketAddr, h: &Header, ty: NotifyType) {
        let mut flags = Flags::RESPONSE;
        if !h.flags.initiator() {
            flags = flags.with(Flags::INITIATOR);
        }
        let m = Message {
            spi_i: h.spi_i,
            spi_r: h.spi_r,
            minor: 0,
            exchange: h.exchange,
            flags,
            message_id: h.message_id,
            payloads: vec![notify(ty, [])],
        };
        if let Ok(data) = m.to_vec() {
            self.ctx.transmits.push_back(Transmit { local, remote, data });
        }
    }

    /// Whether another INVALID_IKE_SPI may go out now (at most `INVALID_SPI_PER_SECOND`).
    fn invalid_spi_allowed(&mut self, now: Instant) -> bool {
        let (start, sent) = &mut self.invalid_spi_window;
        if start.is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1)) {
            (*start, *sent) = (Some(now), 0);
        }
        *sent += 1;
        *sent <= INVALID_SPI_PER_SECOND
    }

    fn new_spi(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.ctx.rng.fill(&mut b);
            let spi = u64::from_be_bytes(b);
            if spi != 0 && !self.sas.contains_key(&spi) {
                return spi;
            }
        }
    }

    /// Responder: IKE_SA_INIT request (§1.2), or a retransmission of one (§2.1).
    fn on_init_request(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8], msg: Message) {
        if let Some(spi) = self.half_open.get(&(remote, msg.spi_i)) {
            if let Some(sa) = self.sas.get(spi) {
                if let State::HalfOpen { init_request, init_response, .. } = &sa.state {
                    if init_request.as_slice() == data {
                        self.ctx.stats.duplicate_requests += 1;
                        let t = Transmit { local, remote, data: init_response.clone() };
                        self.ctx.transmits.push_back(t);
                    }
                }
            }
            return;
        }
        let reply = |ctx: &mut Ctx, payloads: Vec<Payload>| {
            let m = Message {
                spi_i: msg.spi_i,
                spi_r: 0,
                minor: 0,
                exchange: ExchangeType::IKE_SA_INIT,
                flags: Flags::RESPONSE,
                message_id: 0,
                payloads,
            };
            if let Ok(data) = m.to_vec() {
                ctx.transmits.push_back(Transmit { local, remote, data });
            }
        };
        let (Some(sa), Some(ke), Some(ni)) =
            (take!(msg.payloads, Sa), take!(msg.payloads, Ke), take!(msg.payloads, Nonce))
        else {
            self.ctx.stats.malformed += 1;
            return;
        };
        if msg.message_id != 0 || !(16..=256).contains(&ni.len()) {
            self.ctx.stats.malformed += 1;
            return;
        }
        if self.half_open.len() >= self.ctx.config.cookie_threshold {
            // §2.6: under load, only a request carrying our cookie first proves its source address.
            let want = cookie(&self.cookie_secret, ni, remote, msg.spi_i);
            let shown = msg.payloads.first().and_then(|p| match &p.body {
                PayloadBody::Notify(n) if n.ty == NotifyType::COOKIE => Some(&n.data),
                _ => None,
            });
            if !shown.is_some_and(|c| bool::from(c.as_slice().ct_eq(&want))) {
                self.ctx.stats.cookies_sent += 1;
                reply(&mut self.ctx, vec![notify(NotifyType::COOKIE, want)]);
                return;
            }
        }
        if self.half_open_by_ip.get(&remote.ip()).is_some_and(|n| *n >= self.ctx.config.half_open_per_source) {
            self.ctx.stats.half_open_limited += 1;
            return;
        }
        let suite = match config::select_ike(&self.ctx.config.ike_proposals, sa, ke.group) {
            IkeChoice::Chosen(number, suite) => (number, suite),
            IkeChoice::WrongKe(group) => {
                self.ctx.stats.invalid_ke_sent += 1;
                reply(&mut self.ctx, vec![notify(NotifyType::INVALID_KE_PAYLOAD, group.0.to_be_bytes())]);
                return;
            }
            IkeChoice::None => {
                self.ctx.stats.proposals_refused += 1;
                reply(&mut self.ctx, vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, [])]);
                return;
            }
        };
        let (number, suite) = suite;
        let Ok(our_ke) = KeyExchange::generate(suite.dh, self.ctx.rng.as_mut()) else { return };
        let Ok(g_ir) = our_ke.shared(&ke.data) else {
            // §1.2: a bad public value is refused like a wrong group.
            self.ctx.stats.malformed += 1;
            reply(&mut self.ctx, vec![notify(NotifyType::INVALID_SYNTAX, [])]);
            return;
        };
        let spi_r = self.new_spi();
        let nr = self.ctx.nonce();
        let mut sa = IkeSa {
            initiator: false,
            spi_i: msg.spi_i,
            spi_r,
            local,
            remote,
            state: State::Established { since: now },
            suite: None,
            crypto: None,
            ni: ni.clone(),
            nr: nr.clone(),
            peer_id: None,
            next_id: 0,
            peer_next_id: 1,
            outstanding: None,
            last_response: None,
            children: Vec::new(),
            nat: false,
            behind_nat: false,
            last_keepalive: now,
            cookie: None,
            half_open_key: None,
            fragmentation: false,
            reassembly: None,
            pending: VecDeque::new(),
            last_heard: now,
            rekeys: 0,
            filed: None,
            crossed: None,
            peer_rfc7427: false,
        };
        if sa.set_keys(suite, &g_ir).is_err() {
            return;
        }
        let mut response = sa.header(ExchangeType::IKE_SA_INIT, 0, true);
        response.payloads = vec![
            PayloadBody::Sa(config::ike_sa_answer(number, &suite, &[])).into(),
            PayloadBody::Ke(Ke { group: suite.dh, data: our_ke.public().to_vec() }).into(),
            PayloadBody::Nonce(nr).into(),
        ];
        response.payloads.extend(certreq(&self.ctx.config));
        if find_notify(&msg.payloads, NotifyType::NAT_DETECTION_SOURCE_IP).is_some() {
            response.payloads.extend(nat_payloads(sa.spi_i, spi_r, local, remote));
            let (local_behind, remote_behind) = nat_detected(&msg.payloads, sa.spi_i, 0, local, remote);
            (sa.nat, sa.behind_nat) = (local_behind || remote_behind, local_behind);
        }
        if self.ctx.config.fragment_size.is_some()
            && find_notify(&msg.payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some()
        {
            // RFC 7383 §2.3: agreed once both sent it.
            response.payloads.push(notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, []));
            sa.fragmentation = true;
        }
        if self.ctx.certificates() {
            response.payloads.push(notify(NotifyType::SIGNATURE_HASH_ALGORITHMS, cert::signature_hashes_notify()));
        }
        sa.peer_rfc7427 = find_notify(&msg.payloads, NotifyType::SIGNATURE_HASH_ALGORITHMS).is_some();
        let Ok(out) = response.to_vec() else { return };
        self.ctx.transmits.push_back(Transmit { local, remote, data: out.clone() });
        sa.state = State::HalfOpen {
            init_request: data.to_vec(),
            init_response: out,
            expires: now + self.ctx.config.half_open_timeout,
        };
        self.half_open.insert((remote, msg.spi_i), spi_r);
        *self.half_open_by_ip.entry(remote.ip()).or_insert(0) += 1;
        sa.half_open_key = Some((remote, msg.spi_i));
        self.sas.insert(spi_r, sa);
        self.refile(spi_r);
    }

    /// Applies what an SA asked for, then refiles its timer.
    fn after(&mut self, spi: u64, next: Next) {
        match next {
            Next::Keep => {}
            Next::KeepReplacing => {
                self.forget_half_open(spi);
                let Some(sa) = self.sas.get(&spi) else { return };
                let peer_id = sa.peer_id.clone();
                let old: Vec<u64> = self
                    .sas
                    .iter()
                    .filter(|(s, o)| **s != spi && o.peer_id == peer_id && matches!(o.state, State::Established { .. }))
                    .map(|(s, _)| *s)
                    .collect();
                for s in old {
                    self.remove(s, Some(DownReason::Replaced));
                }
            }
            Next::Remove(reason) => {
                self.remove(spi, reason);
                return;
            }
            Next::Standby(new) => {
                let new_spi = new.id().0;
                if let std::collections::hash_map::Entry::Vacant(v) = self.sas.entry(new_spi) {
                    v.insert(*new);
                    self.refile(new_spi);
                }
            }
            Next::Lost(new) => {
                let new_spi = new.id().0;
                if let std::collections::hash_map::Entry::Vacant(v) = self.sas.entry(new_spi) {
                    v.insert(*new);
                    self.refile(new_spi);
                }
                self.hand_over(spi);
            }
            Next::HandOver => self.hand_over(spi),
            Next::Rekeyed(new) => {
                let new_spi = if new.initiator { new.spi_i } else { new.spi_r };
                if self.sas.contains_key(&new_spi) {
                    // A 2^-64 SPI collision: the old SA carries on and will be rekeyed again.
                    if let Some(sa) = self.sas.get_mut(&spi) {
                        sa.children = new.children;
                        sa.state = State::Established { since: sa.last_heard };
                    }
                } else {
                    self.ctx.events.push_back(Event::IkeSaRekeyed { old: IkeSaId(spi), new: IkeSaId(new_spi) });
                    self.sas.insert(new_spi, *new);
                    self.refile(new_spi);
                }
            }
        }
        if self.sas.get(&spi).is_some_and(|sa| matches!(sa.state, State::Established { .. })) {
            self.forget_half_open(spi);
        }
        self.refile(spi);
    }

    fn refile(&mut self, spi: u64) {
        let Some(sa) = self.sas.get_mut(&spi) else { return };
        let want = sa.deadline(&self.ctx.config);
        if sa.filed != want {
            if let Some(t) = sa.filed {
                self.timers.remove(&(t, spi));
            }
            if let Some(t) = want {
                self.timers.insert((t, spi));
            }
            sa.filed = want;
        }
    }

    /// The SA is no longer half-open (established or going): it leaves the responder's counts.
    fn forget_half_open(&mut self, spi: u64) {
        let Some(key) = self.sas.get_mut(&spi).and_then(|sa| sa.half_open_key.take()) else { return };
        self.half_open.remove(&key);
        if let Some(n) = self.half_open_by_ip.get_mut(&key.0.ip()) {
            *n -= 1;
            if *n == 0 {
                self.half_open_by_ip.remove(&key.0.ip());
            }
        }
    }

    /// A crossed IKE SA (§2.8.2) gives its CHILD SAs to the SA of the peer's rekey, which takes over.
    fn hand_over(&mut self, old: u64) {
        let Some(sa) = self.sas.get_mut(&old) else { return };
        let Some(c) = sa.crossed.take() else { return };
        let children = std::mem::take(&mut sa.children);
        match self.sas.get_mut(&c.sa) {
            Some(t) => {
                t.children = children;
                t.state = State::Established { since: c.since };
                self.ctx.events.push_back(Event::IkeSaRekeyed { old: IkeSaId(old), new: IkeSaId(c.sa) });
                self.refile(c.sa);
            }
            None => {
                if let Some(sa) = self.sas.get_mut(&old) {
                    sa.children = children;
                }
            }
        }
    }

    fn remove(&mut self, spi: u64, reason: Option<DownReason>) {
        // Deleted (or expired) before its crossed rekey was settled: the peer's new SA takes over.
        self.hand_over(spi);
        self.forget_half_open(spi);
        let Some(sa) = self.sas.remove(&spi) else { return };
        if let Some(t) = sa.filed {
            self.timers.remove(&(t, spi));
        }
        for c in &sa.children {
            self.ctx.child_spis.remove(&c.spi_in);
            self.ctx.events.push_back(Event::DeleteSaPair {
                ike_sa: sa.id(),
                inbound_spi: c.spi_in,
                outbound_spi: c.spi_out,
            });
        }
        if let (State::Established { .. }, Some(reason)) = (&sa.state, reason) {
            self.ctx.events.push_back(Event::IkeSaDown { sa: sa.id(), remote: sa.remote, reason });
        }
    }
}
