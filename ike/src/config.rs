//! The engine's cold configuration and the pure decisions it drives: proposal selection (RFC 7296
//! §2.7, §3.3.6), the pre-shared-key keyring and the authentication policy (§2.15), traffic-selector
//! narrowing (§2.9).
//!
//! Layer: read by the engine, written by the daemon's config model. Contract: every function here is
//! pure; selection follows *our* configured order of preference (the first of our proposals the peer
//! offers wins, and within it our first DH group the peer offers), as a Cisco hub does.

use std::net::IpAddr;
use std::time::Duration;

use crate::cert::{LocalCert, TrustStore};
use crate::message::{
    DhGroup, EncrId, EsnId, Id, IdType, IntegId, PrfId, Proposal, ProtocolId, Sa, TrafficSelector, Transform,
    TransformType,
};

/// An IKE SA proposal (§3.3): one ENCR, one INTEG (NONE with AES-GCM), one PRF, and the DH groups in
/// order of preference (the first is the one the initiator sends a KE for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    /// ENCR_AES_GCM_16 or ENCR_AES_CBC.
    pub encr: EncrId,
    /// 128 or 256.
    pub key_bits: u16,
    /// NONE with AES-GCM; AUTH_HMAC_SHA2_* with AES-CBC.
    pub integ: IntegId,
    /// PRF_HMAC_SHA2_256/384/512.
    pub prf: PrfId,
    /// DH groups in order of preference.
    pub groups: Vec<DhGroup>,
}

/// A CHILD SA (ESP) proposal: one ENCR, one INTEG (NONE with AES-GCM), and the ESN choices in order of
/// preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    /// ENCR_AES_GCM_16 or ENCR_AES_CBC.
    pub encr: EncrId,
    /// 128 or 256.
    pub key_bits: u16,
    /// NONE with AES-GCM.
    pub integ: IntegId,
    /// ESN or NO_ESN, most preferred first (§3.3.2, transform type 5).
    pub esn: Vec<EsnId>,
}

/// The negotiated IKE SA transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    /// Encryption.
    pub encr: EncrId,
    /// Its key length.
    pub key_bits: u16,
    /// Integrity (NONE with AES-GCM).
    pub integ: IntegId,
    /// PRF.
    pub prf: PrfId,
    /// DH group.
    pub dh: DhGroup,
}

/// The negotiated CHILD SA transforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSuite {
    /// Encryption.
    pub encr: EncrId,
    /// Its key length.
    pub key_bits: u16,
    /// Integrity (NONE with AES-GCM).
    pub integ: IntegId,
    /// Extended sequence numbers.
    pub esn: bool,
}

/// Who a pre-shared key is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMatch {
    /// A peer authenticating with exactly this identity.
    Id(Id),
    /// Any peer whose IKE address lies in this prefix (Cisco `pre-shared-key address A M`).
    Address {
        /// Network.
        net: IpAddr,
        /// Prefix length.
        prefix: u8,
    },
    /// Any peer (Cisco `pre-shared-key address 0.0.0.0 0.0.0.0`).
    Any,
}

/// A keyring: pre-shared keys by peer (§2.15). The most specific entry wins: an identity, then the
/// longest address prefix, then the wildcard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    /// Entries, in any order.
    pub entries: Vec<(PeerMatch, Vec<u8>)>,
}

impl Keyring {
    /// Adds an entry.
    #[must_use]
    pub fn with(mut self, peer: PeerMatch, key: impl Into<Vec<u8>>) -> Keyring {
        self.entries.push((peer, key.into()));
        self
    }

    /// The key for a peer with identity `id` (if known yet) at `addr`.
    pub fn lookup(&self, id: Option<&Id>, addr: IpAddr) -> Option<&[u8]> {
        best_match(&self.entries, id, addr).map(Vec::as_slice)
    }
}

/// The value of the most specific entry for a peer: an identity, then the longest address prefix,
/// then the wildcard.
fn best_match<'a, T>(entries: &'a [(PeerMatch, T)], id: Option<&Id>, addr: IpAddr) -> Option<&'a T> {
    let mut best: Option<(u16, &T)> = None;
    for (m, value) in entries {
        let rank = match m {
            PeerMatch::Id(want) if Some(want) == id => 1000,
            PeerMatch::Address { net, prefix } if in_prefix(addr, *net, *prefix) => 1 + u16::from(*prefix),
            PeerMatch::Any => 0,
            _ => continue,
        };
        if best.is_none_or(|(r, _)| rank > r) {
            best = Some((rank, value));
        }
    }
    best.map(|(_, v)| v)
}

/// How a peer and we authenticate to each other (§2.15).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthKind {
    /// A pre-shared key from the keyring (AUTH method 2, Shared Key MIC).
    #[default]
    Psk,
    /// Our certificate and a signature (AUTH method 14, RFC 7427), the peer's checked against the trust
    /// store ([`Config::local_cert`], [`Config::trust`]).
    Certificate,
}

/// The authentication method by peer: the most specific entry wins (as in the [`Keyring`]), else
/// `default`. Both sides of an IKE SA use the method chosen for the peer; an AUTH of another method
/// fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthPolicy {
    /// For peers no entry matches.
    pub default: AuthKind,
    /// Per peer.
    pub peers: Vec<(PeerMatch, AuthKind)>,
}

impl AuthPolicy {
    /// The method for a peer with identity `id` (if known yet) at `addr`.
    pub fn lookup(&self, id: Option<&Id>, addr: IpAddr) -> AuthKind {
        best_match(&self.peers, id, addr).copied().unwrap_or(self.default)
    }
}

fn in_prefix(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let p = u32::from(prefix.min(32));
            let mask = u32::MAX.checked_shl(32 - p).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let p = u32::from(prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - p).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Retransmission of requests (§2.1, §2.4): the first after `initial`, each next one after twice
/// the previous wait, and the peer is dead once `tries` sends went unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// Wait after the first send.
    pub initial: Duration,
    /// Sends in all (the first included) before giving up.
    pub tries: u32,
}

/// Dead peer detection (§2.4): after `interval` without hearing from the peer, an empty
/// INFORMATIONAL request, resent every `retry_interval` up to `retries` times; unanswered, the peer is
/// dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    /// Quiet time before a check.
    pub interval: Duration,
    /// Wait between retransmissions of the check.
    pub retry_interval: Duration,
    /// Retransmissions before the peer is declared dead.
    pub retries: u32,
}

/// The engine's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our identity (IDi or IDr, §3.5).
    pub local_id: Id,
    /// Pre-shared keys.
    pub keyring: Keyring,
    /// Which peers authenticate with a pre-shared key and which with certificates.
    pub auth: AuthPolicy,
    /// Our certificate chain and key, for [`AuthKind::Certificate`].
    pub local_cert: Option<LocalCert>,
    /// The CAs and CRLs a peer's certificate is checked against. With any CA, IKE_SA_INIT carries
    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) and we send CERTREQ (§3.7).
    pub trust: TrustStore,
    /// IKE proposals, most preferred first.
    pub ike_proposals: Vec<IkeProposal>,
    /// ESP proposals, most preferred first.
    pub esp_proposals: Vec<EspProposal>,
    /// Ask for transport mode (USE_TRANSPORT_MODE, §1.3.1), as DMVPN does.
    pub transport: bool,
    /// Accept tunnel mode when the peer does not ask for transport mode.
    pub allow_tunnel: bool,
    /// IP protocol of the traffic selectors (47: GRE; 0: any), whose addresses are the IKE endpoints'.
    pub ts_protocol: u8,
    /// Retransmission of our requests.
    pub retransmit: Retransmit,
    /// A responder's half-open IKE SA (IKE_SA_INIT answered, no IKE_AUTH) is dropped after this.
    pub half_open_timeout: Duration,
    /// IKE SA lifetime (Cisco default 24 h).
    pub ike_lifetime: Duration,
    /// CHILD SA lifetime (Cisco default 1 h).
    pub child_lifetime: Duration,
    /// IKE and CHILD SAs are rekeyed this long before their lifetime ends (§2.8).
    pub rekey_margin: Duration,
    /// Dead peer detection, if enabled.
    pub dpd: Option<Dpd>,
    /// Responder under load (§2.6): while this many IKE SAs are half-open, an IKE_SA_INIT request
    /// without a valid COOKIE gets only N(COOKIE), and no state is kept for it.
    pub cookie_threshold: usize,
    /// Half-open IKE SAs one source address may hold; IKE_SA_INIT requests beyond it are dropped
    /// (`Stats::half_open_limited`). Spokes behind one NAT share an address, hence not 1.
    pub half_open_per_source: usize,
    /// NAT keepalives (RFC 3948 §2.3): when we are behind a NAT, a one-octet 0xFF datagram to the
    /// peer's port 4500 this often, so that the NAT keeps the mapping; `None` sends none.
    pub nat_keepalive: Option<Duration>,
    /// IKE fragmentation (RFC 7383): offered in IKE_SA_INIT, and once both sides support it, an
    /// encrypted message longer than this many octets (the UDP payload, without the non-ESP marker)
    /// goes as SKF fragments no longer than it (§2.5). `None`: not offered.
    pub fragment_size: Option<usize>,
    /// Perfect forward secrecy for the CHILD SA rekeys we start (§1.3.3, §2.17): a KE of this group
    /// in CREATE_CHILD_SA, whose g^ir enters KEYMAT (Cisco `set pfs`). `None`: no KE.
    pub pfs: Option<DhGroup>,
}

impl Config {
    /// Defaults for a DMVPN hub or spoke with identity `local_id`: AES-GCM-16-256 then AES-CBC-256 with
    /// HMAC-SHA-256, PRF SHA-256, groups 19, 31, 20, 21, 14; ESP AES-GCM-16-256/128 and AES-CBC-256 with
    /// HMAC-SHA-256, ESN preferred; transport mode with GRE selectors; 1 s initial retransmission with 6
    /// tries; 24 h / 1 h lifetimes, rekeyed 5 minutes early; DPD after 30 s of quiet, 3 retries 5 s apart;
    /// COOKIEs above 1,000 half-open SAs, at most 32 half-open per source address; NAT keepalives every
    /// 20 s (Cisco's and strongSwan's default); IKE fragmentation above 1,200 octets (an IPv6 minimum
    /// MTU path with room for the IP, UDP and non-ESP marker headers).
    pub fn new(local_id: Id) -> Config {
        let groups =
            vec![DhGroup::ECP_256, DhGroup::CURVE25519, DhGroup::ECP_384, DhGroup::ECP_521, DhGroup::MODP_2048];
        let esn = vec![EsnId::ESN, EsnId::NO_ESN];
        Config {
            local_id,
            keyring: Keyring::default(),
            auth: AuthPolicy::default(),
            local_cert: None,
            trust: TrustStore::default(),
            ike_proposals: vec![
                IkeProposal {
                    encr: EncrId::ENCR_AES_GCM_16,
                    key_bits: 256,
                    integ: IntegId::NONE,
                    prf: PrfId::PRF_HMAC_SHA2_256,
                    groups: groups.clone(),
                },
                IkeProposal {
                    encr: EncrId::ENCR_AES_CBC,
                    key_bits: 256,
                    integ: IntegId::AUTH_HMAC_SHA2_256_128,
                    prf: PrfId::PRF_HMAC_SHA2_256,
                    groups,
                },
            ],
            esp_proposals: vec![
                EspProposal { encr: EncrId::ENCR_AES_GCM_16, key_bits: 256, integ: IntegId::NONE, esn: esn.clone() },
                EspProposal { encr: EncrId::ENCR_AES_GCM_16, key_bits: 128, integ: IntegId::NONE, esn: esn.clone() },
                EspProposal { encr: EncrId::ENCR_AES_CBC, key_bits: 256, integ: IntegId::AUTH_HMAC_SHA2_256_128, esn },
            ],
            transport: true,
            allow_tunnel: true,
            ts_protocol: 47,
            retransmit: Retransmit { initial: Duration::from_secs(1), tries: 6 },
            half_open_timeout: Duration::from_secs(30),
            ike_lifetime: Duration::from_secs(24 * 3600),
            child_lifetime: Duration::from_secs(3600),
            rekey_margin: Duration::from_secs(300),
            dpd: Some(Dpd { interval: Duration::from_secs(30), retry_interval: Duration::from_secs(5), retries: 3 }),
            cookie_threshold: 1000,
            half_open_per_source: 32,
            nat_keepalive: Some(Duration::from_secs(20)),
            fragment_size: Some(1200),
            pfs: None,
        }
    }
}

/// An identity from an address (ID_IPV4_ADDR / ID_IPV6_ADDR).
pub fn id_from_addr(addr: IpAddr) -> Id {
    match addr {
        IpAddr::V4(a) => Id { ty: IdType::ID_IPV4_ADDR, data: a.octets().to_vec() },
        IpAddr::V6(a) => Id { ty: IdType::ID_IPV6_ADDR, data: a.octets().to_vec() },
    }
}

/// An ID_FQDN identity.
pub fn id_fqdn(name: &str) -> Id {
    Id { ty: IdType::ID_FQDN, data: name.as_bytes().to_vec() }
}

fn offers(p: &Proposal, ty: TransformType, id: u16, key_bits: Option<u16>) -> bool {
    p.transforms.iter().any(|t| t.ty == ty && t.id == id && t.key_length() == key_bits)
}

/// Whether the proposal's INTEG transforms accept `integ` (NONE: no INTEG transform, or INTEG NONE).
fn offers_integ(p: &Proposal, integ: IntegId) -> bool {
    let has = |ty| p.transforms.iter().any(|t| t.ty == ty);
    if integ == IntegId::NONE && !has(TransformType::INTEG) {
        return true;
    }
    offers(p, TransformType::INTEG, integ.0, None)
}

/// Why a responder chose no IKE proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeChoice {
    /// Proposal number to echo and the suite.
    Chosen(u8, IkeSuite),
    /// Acceptable, but the KE payload is for another group: answer INVALID_KE_PAYLOAD with this one
    /// (§1.2).
    WrongKe(DhGroup),
    /// Nothing acceptable: NO_PROPOSAL_CHOSEN (§2.7).
    None,
}

/// Responder: picks from the peer's IKE proposals (§2.7) by our preference. The KE's group wins
/// when the chosen pair of proposals allows it (saving a round trip), else our first common group.
pub fn select_ike(ours: &[IkeProposal], theirs: &Sa, ke_group: DhGroup) -> IkeChoice {
    for o in ours {
        for p in theirs.proposals.iter().filter(|p| p.protocol == ProtocolId::IKE) {
            if !(offers(p, TransformType::ENCR, o.encr.0, Some(o.key_bits))
                && offers_integ(p, o.integ)
                && offers(p, TransformType::PRF, o.prf.0, None))
            {
                continue;
            }
            let common = |g: &&DhGroup| offers(p, TransformType::DH, g.0, None);
            let Some(first) = o.groups.iter().find(common) else { continue };
            let dh = if o.groups.contains(&ke_group) && common(&&ke_group) { ke_group } else { *first };
            if dh != ke_group {
                return IkeChoice::WrongKe(dh);
            }
            let suite = IkeSuite { encr: o.encr, key_bits: o.key_bits, integ: o.integ, prf: o.prf, dh };
            return IkeChoice::Chosen(p.number, suite);
        }
    }
    IkeChoice::None
}

/// Responder: picks from the peer's ESP proposals by our preference; returns the proposal number, the
/// peer's SPI and the suite. DH transforms are ignored here (no KE in IKE_AUTH, §1.2); `pfs` names
/// the group a CREATE_CHILD_SA's KE uses, which the proposal must then offer.
pub fn select_esp(ours: &[EspProposal], theirs: &Sa, pfs: Option<DhGroup>) -> Option<(u8, u32, EspSuite)> {
    for o in ours {
        for p in theirs.proposals.iter().filter(|p| p.protocol == ProtocolId::ESP) {
            let Ok(spi) = <[u8; 4]>::try_from(p.spi.as_slice()) else { continue };
            if !(offers(p, TransformType::ENCR, o.encr.0, Some(o.key_bits)) && offers_integ(p, o.integ)) {
                continue;
            }
            if pfs.is_some_and(|g| !offers(p, TransformType::DH, g.0, None)) {
                continue;
            }
            let Some(esn) = o.esn.iter().find(|e| offers(p, TransformType::ESN, e.0, None)) else { continue };
            let suite = EspSuite { encr: o.encr, key_bits: o.key_bits, integ: o.integ, esn: *esn == EsnId::ESN };
            return Some((p.number, u32::from_be_bytes(spi), suite));
        }
    }
    None
}

/// Our IKE proposals as an SA payload; `spi` is empty in IKE_SA_INIT, our new SPI when rekeying.
pub fn ike_sa_payload(ours: &[IkeProposal], spi: &[u8]) -> Sa {
    let proposals = ours
        .iter()
        .zip(1u8..)
        .map(|(o, number)| {
            let mut transforms = vec![Transform::encr(o.encr, Some(o.key_bits)), Transform::prf(o.prf)];
            if o.integ != IntegId::NONE {
                transforms.push(Transform::integ(o.integ));
            }
            transforms.extend(o.groups.iter().map(|g| Transform::dh(*g)));
            Proposal { number, protocol: ProtocolId::IKE, spi: spi.to_vec(), transforms }
        })
        .collect();
    Sa { proposals }
}

/// Our ESP proposals with our inbound SPI; `pfs` adds that DH group (CREATE_CHILD_SA with KE).
pub fn esp_sa_payload(ours: &[EspProposal], spi: u32, pfs: Option<DhGroup>) -> Sa {
    let proposals = ours
        .iter()
        .zip(1u8..)
        .map(|(o, number)| {
            let mut transforms = vec![Transform::encr(o.encr, Some(o.key_bits))];
            if o.integ != IntegId::NONE {
                transforms.push(Transform::integ(o.integ));
            }
            transforms.extend(pfs.map(Transform::dh));
            transforms.extend(o.esn.iter().map(|e| Transform::esn(*e)));
            Proposal { number, protocol: ProtocolId::ESP, spi: spi.to_be_bytes().to_vec(), transforms }
        })
        .collect();
    Sa { proposals }
}

/// The responder's answer: one proposal with the chosen transforms (§3.3.6).
pub fn ike_sa_answer(number: u8, s: &IkeSuite, spi: &[u8]) -> Sa {
    let mut transforms = vec![Transform::encr(s.encr, Some(s.key_bits)), Transform::prf(s.prf)];
    if s.integ != IntegId::NONE {
        transforms.push(Transform::integ(s.integ));
    }
    transforms.push(Transform::dh(s.dh));
    Sa { proposals: vec![Proposal { number, protocol: ProtocolId::IKE, spi: spi.to_vec(), transforms }] }
}

/// The responder's ESP answer.
pub fn esp_sa_answer(number: u8, s: &EspSuite, spi: u32, pfs: Option<DhGroup>) -> Sa {
    let mut transforms = vec![Transform::encr(s.encr, Some(s.key_bits))];
    if s.integ != IntegId::NONE {
        transforms.push(Transform::integ(s.integ));
    }
    transforms.extend(pfs.map(Transform::dh));
    transforms.push(Transform::esn(if s.esn { EsnId::ESN } else { EsnId::NO_ESN }));
    Sa { proposals: vec![Proposal { number, protocol: ProtocolId::ESP, spi: spi.to_be_bytes().to_vec(), transforms }] }
}

/// Initiator: the suite the responder accepted, which must be exactly one of our proposals with one
/// transform of each type (§2.7: a responder must not add or change transforms).
pub fn accepted_ike(ours: &[IkeProposal], answer: &Sa) -> Option<IkeSuite> {
    let [p] = answer.proposals.as_slice() else { return None };
    let o = ours.get(usize::from(p.number).checked_sub(1)?)?;
    let one = |ty| {
        let mut it = p.transforms.iter().filter(move |t| t.ty == ty);
        let t = it.next();
        if it.next().is_some() {
            None
        } else {
            t
        }
    };
    let dh = DhGroup(one(TransformType::DH)?.id);
    let integ_ok = match p.transforms.iter().filter(|t| t.ty == TransformType::INTEG).count() {
        0 => o.integ == IntegId::NONE,
        _ => one(TransformType::INTEG)?.id == o.integ.0,
    };
    let e = one(TransformType::ENCR)?;
    let ok = p.protocol == ProtocolId::IKE
        && e.id == o.encr.0
        && e.key_length() == Some(o.key_bits)
        && one(TransformType::PRF)?.id == o.prf.0
        && integ_ok
        && o.groups.contains(&dh);
    ok.then_some(IkeSuite { encr: o.encr, key_bits: o.key_bits, integ: o.integ, prf: o.prf, dh })
}

/// Initiator: the ESP suite and the peer's SPI from the responder's answer.
pub fn accepted_esp(ours: &[EspProposal], answer: &Sa) -> Option<(u32, EspSuite)> {
    let [p] = answer.proposals.as_slice() else { return None };
    let o = ours.get(usize::from(p.number).checked_sub(1)?)?;
    let spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
    let ids = |ty| p.transforms.iter().filter(move |t: &&Transform| t.ty == ty);
    let [e] = ids(TransformType::ENCR).collect::<Vec<_>>()[..] else { return None };
    let integ_ok = match ids(TransformType::INTEG).collect::<Vec<_>>()[..] {
        [] => o.integ == IntegId::NONE,
        [i] => i.id == o.integ.0,
        _ => false,
    };
    let esn = match ids(TransformType::ESN).collect::<Vec<_>>()[..] {
        [] => EsnId::NO_ESN,
        [x] => EsnId(x.id),
        _ => return None,
    };
    let ok = p.protocol == ProtocolId::ESP
        && e.id == o.encr.0
        && e.key_length() == Some(o.key_bits)
        && integ_ok
        && (o.esn.contains(&esn) || (o.esn.is_empty() && esn == EsnId::NO_ESN));
    ok.then_some((spi, EspSuite { encr: o.encr, key_bits: o.key_bits, integ: o.integ, esn: esn == EsnId::ESN }))
}

/// The selector for one IKE endpoint: its single address, `protocol`, all ports.
pub fn endpoint_ts(addr: IpAddr, protocol: u8) -> TrafficSelector {
    match addr {
        IpAddr::V4(a) => TrafficSelector::V4 { protocol, start_port: 0, end_port: 65535, start: a, end: a },
        IpAddr::V6(a) => TrafficSelector::V6 { protocol, start_port: 0, end_port: 65535, start: a, end: a },
    }
}

/// The intersection of two selectors (§2.9), if not empty. Protocol 0 means any.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let proto = |x: u8, y: u8| match (x, y) {
        (0, p) | (p, 0) => Some(p),
        (x, y) if x == y => Some(x),
        _ => None,
    };
    match (a, b) {
        (
            TrafficSelector::V4 { protocol: p1, start_port: sp1, end_port: ep1, start: s1, end: e1 },
            TrafficSelector::V4 { protocol: p2, start_port: sp2, end_port: ep2, start: s2, end: e2 },
        ) => {
            let (start, end, sp, ep) = ((*s1).max(*s2), (*e1).min(*e2), (*sp1).max(*sp2), (*ep1).min(*ep2));
            (start <= end && sp <= ep).then_some(())?;
            Some(TrafficSelector::V4 { protocol: proto(*p1, *p2)?, start_port: sp, end_port: ep, start, end })
        }
        (
            TrafficSelector::V6 { protocol: p1, start_port: sp1, end_port: ep1, start: s1, end: e1 },
            TrafficSelector::V6 { protocol: p2, start_port: sp2, end_port: ep2, start: s2, end: e2 },
        ) => {
            let (start, end, sp, ep) = ((*s1).max(*s2), (*e1).min(*e2), (*sp1).max(*sp2), (*ep1).min(*ep2));
            (start <= end && sp <= ep).then_some(())?;
            Some(TrafficSelector::V6 { protocol: proto(*p1, *p2)?, start_port: sp, end_port: ep, start, end })
        }
        _ => None,
    }
}

/// The selector `ts` moved onto the single address `addr`, protocol and ports kept: what a responder
/// puts in place of selectors that name addresses hidden behind a NAT (RFC 7296 §2.23.1). A selector
/// of another type stays as it is (and intersects with nothing).
pub fn readdressed(ts: &TrafficSelector, addr: IpAddr) -> TrafficSelector {
    let (protocol, start_port, end_port) = match ts {
        TrafficSelector::V4 { protocol, start_port, end_port, .. }
        | TrafficSelector::V6 { protocol, start_port, end_port, .. } => (*protocol, *start_port, *end_port),
        TrafficSelector::Other { .. } => return ts.clone(),
    };
    match addr {
        IpAddr::V4(a) => TrafficSelector::V4 { protocol, start_port, end_port, start: a, end: a },
        IpAddr::V6(a) => TrafficSelector::V6 { protocol, start_port, end_port, start: a, end: a },
    }
}

/// Narrows the peer's proposed selectors to what `ours` allows (§2.9): every non-empty intersection.
pub fn narrow(proposed: &[TrafficSelector], ours: &TrafficSelector) -> Vec<TrafficSelector> {
    proposed.iter().filter_map(|p| intersect(p, ours)).collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keyring_takes_the_most_specific_entry() {
        let spoke = id_fqdn("spoke1");
        let k = Keyring::default()
            .with(PeerMatch::Any, "wild")
            .with(PeerMatch::Address { net: ip("10.0.0.0"), prefix: 8 }, "ten")
            .with(PeerMatch::Address { net: ip("10.1.0.0"), prefix: 16 }, "ten-one")
            .with(PeerMatch::Id(spoke.clone()), "mine");
        assert_eq!(k.lookup(Some(&spoke), ip("10.1.2.3")), Some(&b"mine"[..]));
        assert_eq!(k.lookup(Some(&id_fqdn("other")), ip("10.1.2.3")), Some(&b"ten-one"[..]));
        assert_eq!(k.lookup(None, ip("10.2.2.3")), Some(&b"ten"[..]));
        assert_eq!(k.lookup(None, ip("192.0.2.1")), Some(&b"wild"[..]));
        assert_eq!(k.lookup(None, ip("::1")), Some(&b"wild"[..]));
        assert_eq!(Keyring::default().with(PeerMatch::Id(spoke), "x").lookup(None, ip("10.0.0.1")), None);
    }

    fn ike(encr: EncrId, bits: u16, integ: IntegId, groups: &[DhGroup]) -> IkeProposal {
        IkeProposal { encr, key_bits: bits, integ, prf: PrfId::PRF_HMAC_SHA2_256, groups: groups.to_vec() }
    }

    #[test]
    fn ike_selection_follows_our_preference_and_the_ke() {
        let gcm = ike(EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE, &[DhGroup::ECP_256, DhGroup::CURVE25519]);
        let cbc = ike(EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA2_256_128, &[DhGroup::MODP_2048]);
        // The peer prefers CBC; we prefer GCM and get it.
        let theirs = ike_sa_payload(&[cbc.clone(), gcm.clone()], &[]);
        let c = select_ike(&[gcm.clone(), cbc.clone()], &theirs, DhGroup::ECP_256);
        assert!(matches!(c, IkeChoice::Chosen(2, s) if s.encr == EncrId::ENCR_AES_GCM_16 && s.dh == DhGroup::ECP_256));
        // The KE's group is taken when acceptable, although it is our second choice.
        let c = select_ike(std::slice::from_ref(&gcm), &theirs, DhGroup::CURVE25519);
        assert!(matches!(c, IkeChoice::Chosen(2, s) if s.dh == DhGroup::CURVE25519));
        // A KE for a group we do not take in that proposal: INVALID_KE_PAYLOAD naming our first.
        assert_eq!(
            select_ike(std::slice::from_ref(&gcm), &theirs, DhGroup::MODP_2048),
            IkeChoice::WrongKe(DhGroup::ECP_256)
        );
        // No common ENCR.
        let aes128 = ike(EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE, &[DhGroup::ECP_256]);
        assert_eq!(select_ike(&[aes128], &theirs, DhGroup::ECP_256), IkeChoice::None);
        // The answer is accepted by the initiator, a changed one is not.
        let answer = ike_sa_answer(
            2,
            &IkeSuite { encr: gcm.encr, key_bits: 256, integ: IntegId::NONE, prf: gcm.prf, dh: DhGroup::ECP_256 },
            &[],
        );
        assert_eq!(accepted_ike(&[cbc.clone(), gcm.clone()], &answer).map(|s| s.dh), Some(DhGroup::ECP_256));
        assert_eq!(accepted_ike(&[gcm.clone(), cbc.clone()], &answer), None);
    }

    #[test]
    fn esp_selection_negotiates_esn() {
        let mine = EspProposal {
            encr: EncrId::ENCR_AES_GCM_16,
            key_bits: 128,
            integ: IntegId::NONE,
            esn: vec![EsnId::ESN, EsnId::NO_ESN],
        };
        let no_esn = EspProposal { esn: vec![EsnId::NO_ESN], ..mine.clone() };
        let theirs = esp_sa_payload(std::slice::from_ref(&no_esn), 0x1234_5678, None);
        let (n, spi, s) = select_esp(std::slice::from_ref(&mine), &theirs, None).unwrap();
        assert_eq!((n, spi, s.esn), (1, 0x1234_5678, false));
        let (_, _, s) =
            select_esp(std::slice::from_ref(&mine), &esp_sa_payload(std::slice::from_ref(&mine), 1, None), None)
                .unwrap();
        assert!(s.esn);
        let esn_only = EspProposal { esn: vec![EsnId::ESN], ..mine.clone() };
        assert_eq!(select_esp(&[esn_only], &theirs, None), None);
        let answer = esp_sa_answer(1, &s, 99, None);
        assert_eq!(accepted_esp(&[mine], &answer), Some((99, s)));
    }

    #[test]
    fn selectors_narrow_to_the_gre_endpoint() {
        let a = Ipv4Addr::new(192, 0, 2, 1);
        let any = TrafficSelector::V4 {
            protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: Ipv4Addr::new(0, 0, 0, 0),
            end: Ipv4Addr::new(255, 255, 255, 255),
        };
        let ours = endpoint_ts(IpAddr::V4(a), 47);
        assert_eq!(narrow(&[any], &ours), vec![ours.clone()]);
        let udp = endpoint_ts(IpAddr::V4(a), 17);
        assert!(narrow(&[udp], &ours).is_empty());
        let other = endpoint_ts(ip("192.0.2.2"), 47);
        assert!(narrow(&[other], &ours).is_empty());
        assert!(narrow(&[endpoint_ts(ip("::1"), 47)], &ours).is_empty());
    }
}
