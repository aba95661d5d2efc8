//! Certificate authentication between two engines (RFC 7296 §2.15, RFC 7427): CAs, certificates and
//! CRLs are made at test time with rcgen (RSA from a fixed PKCS #8 key that `openssl genpkey` made,
//! since rcgen generates no RSA keys); both sides must agree on the CHILD SA keys when the peers
//! check out, and each refusal must name its reason (`Failure::Auth`) while the peer gets
//! AUTHENTICATION_FAILED.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ike::cert::{AuthError, LocalCert, TrustStore};
use ike::config::{id_fqdn, id_from_addr, AuthKind, AuthPolicy, Config, Keyring, PeerMatch};
use ike::crypto::OsRandom;
use ike::engine::{Engine, Event, Failure, SaPair};
use ike::message::{Id, IdType};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};

/// 2026-06-01 00:00 UTC, inside every certificate's validity.
const NOW_UNIX: Duration = Duration::from_secs(1_780_272_000);

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = rcgen::date_time_ymd(2025, 1, 1);
    p.not_after = rcgen::date_time_ymd(2030, 1, 1);
    Ca { cert: p.self_signed(&key).unwrap(), key }
}

enum Alg {
    P256,
    P384,
    Rsa,
}

/// An end-entity certificate for `names` (SAN) with CN `cn`, serial `serial`, valid in 2026 only.
fn leaf(ca: &Ca, alg: Alg, cn: &str, names: Vec<SanType>, serial: u64) -> (Vec<u8>, Vec<u8>) {
    let key = match alg {
        Alg::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        Alg::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        Alg::Rsa => {
            let pem = include_str!("vectors/rsa2048.pk8.pem");
            KeyPair::from_pem_and_sign_algo(pem, &rcgen::PKCS_RSA_SHA256).unwrap()
        }
    };
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name.push(DnType::OrganizationName, "DMVPN test");
    p.subject_alt_names = names;
    p.serial_number = Some(SerialNumber::from(serial));
    p.not_before = rcgen::date_time_ymd(2026, 1, 1);
    p.not_after = rcgen::date_time_ymd(2027, 1, 1);
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.der().to_vec(), key.serialize_der())
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

fn crl(ca: &Ca, revoked: &[u64]) -> Vec<u8> {
    let params = CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 1, 1),
        next_update: rcgen::date_time_ymd(2026, 2, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: SerialNumber::from(*s),
                revocation_time: rcgen::date_time_ymd(2026, 1, 2),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(&ca.cert, &ca.key).unwrap().der().to_vec()
}

/// A node authenticating with `cert` as `id`, trusting `cas`, checking `crls`.
fn node(id: Id, cert: (Vec<u8>, Vec<u8>), cas: &[&Ca], crls: Vec<Vec<u8>>) -> Config {
    let mut c = Config::new(id);
    c.auth = AuthPolicy { default: AuthKind::Certificate, peers: Vec::new() };
    c.local_cert = Some(LocalCert::new(vec![cert.0], cert.1).unwrap());
    c.trust = TrustStore::new(cas.iter().map(|ca| ca.cert.der().to_vec()).collect(), crls).unwrap();
    c
}

struct Pair {
    now: Instant,
    nodes: [Engine; 2],
    addrs: [SocketAddr; 2],
    events: [Vec<Event>; 2],
    /// Datagrams that crossed.
    delivered: usize,
}

impl Pair {
    fn new(a: Config, b: Config, wall_clock: Option<Duration>) -> Pair {
        #[allow(clippy::disallowed_methods)] // the epoch of the test's clock
        let now = Instant::now();
        let mut nodes = [Engine::new(a, Box::new(OsRandom)), Engine::new(b, Box::new(OsRandom))];
        if let Some(unix) = wall_clock {
            for n in &mut nodes {
                n.set_wall_clock(now, unix);
            }
        }
        Pair {
            now,
            nodes,
            addrs: ["192.0.2.1:500".parse().unwrap(), "198.51.100.7:500".parse().unwrap()],
            events: [Vec::new(), Vec::new()],
            delivered: 0,
        }
    }

    /// Node 0 initiates; datagrams cross until none is left.
    fn run(&mut self, expect_idr: Option<Id>) {
        self.nodes[0].initiate(self.now, self.addrs[0], self.addrs[1], expect_idr).unwrap();
        loop {
            let mut moved = false;
            for i in 0..2 {
                while let Some(t) = self.nodes[i].poll_transmit() {
                    moved = true;
                    self.delivered += 1;
                    self.nodes[1 - i].handle_datagram(self.now, self.addrs[1 - i], self.addrs[i], &t.data);
                }
                while let Some(e) = self.nodes[i].poll_event() {
                    self.events[i].push(e);
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn pairs(&self, i: usize) -> Vec<&SaPair> {
        common::pairs(&self.events[i])
    }

    fn failures(&self, i: usize) -> Vec<&Failure> {
        common::failures(&self.events[i])
    }

    fn peer_ids(&self, i: usize) -> Vec<&Id> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                Event::IkeSaUp { peer_id, .. } => Some(peer_id),
                _ => None,
            })
            .collect()
    }

    fn assert_keys_agree(&self) {
        let (a, b) = (self.pairs(0), self.pairs(1));
        assert_eq!((a.len(), b.len()), (1, 1), "events: {:?} / {:?}", self.events[0], self.events[1]);
        assert_eq!(a[0].outbound, b[0].inbound);
        assert_eq!(a[0].inbound, b[0].outbound);
        assert_eq!(a[0].suite, b[0].suite);
        assert_eq!(self.delivered, 4, "IKE_SA_INIT and IKE_AUTH, no retry");
    }

    /// The responder refused the initiator with `why`; the initiator heard AUTHENTICATION_FAILED.
    fn assert_responder_refused(&self, why: &AuthError) {
        assert_eq!(self.failures(1), vec![&Failure::Auth(why.clone())], "{:?}", self.events[1]);
        assert_eq!(self.failures(0), vec![&Failure::AuthenticationFailed]);
        assert!(self.pairs(0).is_empty() && self.pairs(1).is_empty());
        assert_eq!(self.nodes[1].stats().auth_failures, 1);
    }
}

#[test]
fn ecdsa_p256_both_ways_with_fqdn() {
    let ca = ca("DMVPN CA");
    let spoke = leaf(&ca, Alg::P256, "spoke1", vec![dns("spoke1.example")], 10);
    let hub = leaf(&ca, Alg::P256, "hub", vec![dns("hub.example")], 11);
    let mut p = Pair::new(
        node(id_fqdn("spoke1.example"), spoke, &[&ca], vec![]),
        node(id_fqdn("hub.example"), hub, &[&ca], vec![]),
        Some(NOW_UNIX),
    );
    p.run(Some(id_fqdn("hub.example")));
    p.assert_keys_agree();
    assert_eq!(p.peer_ids(0), vec![&id_fqdn("hub.example")]);
    assert_eq!(p.peer_ids(1), vec![&id_fqdn("spoke1.example")]);
}

#[test]
fn rsa_pkcs1_and_pss_against_ecdsa_p384_with_dn_and_address_identities() {
    let ca = ca("DMVPN CA");
    let addr: IpAddr = "192.0.2.1".parse().unwrap();
    let spoke = leaf(&ca, Alg::Rsa, "spoke-rsa", vec![SanType::IpAddress(addr)], 20);
    let hub = leaf(&ca, Alg::P384, "hub", vec![dns("hub.example")], 21);
    let hub_dn = ike::cert::subject(&hub.0).unwrap();
    let hub_id = Id { ty: IdType::ID_DER_ASN1_DN, data: hub_dn };
    for pss in [false, true] {
        let mut a = node(id_from_addr(addr), spoke.clone(), &[&ca], vec![]);
        a.local_cert = a.local_cert.map(|c| c.with_rsa_pss(pss));
        let mut p = Pair::new(a, node(hub_id.clone(), hub.clone(), &[&ca], vec![]), Some(NOW_UNIX));
        p.run(None);
        p.assert_keys_agree();
        assert_eq!(p.peer_ids(0), vec![&hub_id]);
        assert_eq!(p.peer_ids(1), vec![&id_from_addr(addr)]);
    }
}

#[test]
fn intermediate_ca_in_the_chain() {
    let root = ca("Root CA");
    let sub_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut sp = CertificateParams::new(Vec::<String>::new()).unwrap();
    sp.distinguished_name.push(DnType::CommonName, "Sub CA");
    sp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    sp.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let sub = Ca { cert: sp.signed_by(&sub_key, &root.cert, &root.key).unwrap(), key: sub_key };
    let spoke = leaf(&sub, Alg::P256, "spoke", vec![dns("spoke.example")], 30);
    let hub = leaf(&root, Alg::P256, "hub", vec![dns("hub.example")], 31);
    let mut a = node(id_fqdn("spoke.example"), spoke.clone(), &[&root], vec![]);
    a.local_cert = Some(LocalCert::new(vec![spoke.0, sub.cert.der().to_vec()], spoke.1).unwrap());
    let mut p = Pair::new(a, node(id_fqdn("hub.example"), hub, &[&root], vec![]), Some(NOW_UNIX));
    p.run(None);
    p.assert_keys_agree();
}

#[test]
fn certificate_from_another_ca_is_refused() {
    let (ours, theirs) = (ca("DMVPN CA"), ca("Rogue CA"));
    let spoke = leaf(&theirs, Alg::P256, "spoke", vec![dns("spoke.example")], 40);
    let hub = leaf(&ours, Alg::P256, "hub", vec![dns("hub.example")], 41);
    let mut p = Pair::new(
        node(id_fqdn("spoke.example"), spoke, &[&ours, &theirs], vec![]),
        node(id_fqdn("hub.example"), hub, &[&ours], vec![]),
        Some(NOW_UNIX),
    );
    p.run(None);
    p.assert_responder_refused(&AuthError::Chain("UnknownIssuer".into()));
}

#[test]
fn responder_from_another_ca_is_refused_by_the_initiator() {
    let (ours, theirs) = (ca("DMVPN CA"), ca("Rogue CA"));
    let spoke = leaf(&ours, Alg::P256, "spoke", vec![dns("spoke.example")], 42);
    let hub = leaf(&theirs, Alg::P256, "hub", vec![dns("hub.example")], 43);
    let mut p = Pair::new(
        node(id_fqdn("spoke.example"), spoke, &[&ours], vec![]),
        node(id_fqdn("hub.example"), hub, &[&ours], vec![]),
        Some(NOW_UNIX),
    );
    p.run(None);
    assert_eq!(p.failures(0), vec![&Failure::Auth(AuthError::Chain("UnknownIssuer".into()))]);
    assert!(p.pairs(0).is_empty());
}

#[test]
fn revoked_certificate_is_refused() {
    let ca = ca("DMVPN CA");
    let spoke = leaf(&ca, Alg::P256, "spoke", vec![dns("spoke.example")], 50);
    let hub = leaf(&ca, Alg::P256, "hub", vec![dns("hub.example")], 51);
    // A CRL that revokes someone else lets the spoke in; one that revokes it does not.
    for (revoked, ok) in [(vec![7u64], true), (vec![7, 50], false)] {
        let mut p = Pair::new(
            node(id_fqdn("spoke.example"), spoke.clone(), &[&ca], vec![]),
            node(id_fqdn("hub.example"), hub.clone(), &[&ca], vec![crl(&ca, &revoked)]),
            Some(NOW_UNIX),
        );
        p.run(None);
        if ok {
            p.assert_keys_agree();
        } else {
            p.assert_responder_refused(&AuthError::Revoked);
        }
    }
}

#[test]
fn identity_not_in_the_certificate_is_refused() {
    let ca = ca("DMVPN CA");
    // A valid certificate for spoke1, presented by a peer claiming to be spoke2.
    let spoke = leaf(&ca, Alg::P256, "spoke1", vec![dns("spoke1.example")], 60);
    let hub = leaf(&ca, Alg::P256, "hub", vec![dns("hub.example")], 61);
    let mut p = Pair::new(
        node(id_fqdn("spoke2.example"), spoke, &[&ca], vec![]),
        node(id_fqdn("hub.example"), hub, &[&ca], vec![]),
        Some(NOW_UNIX),
    );
    p.run(None);
    p.assert_responder_refused(&AuthError::IdentityMismatch("spoke2.example".into()));
}

#[test]
fn expired_certificate_and_missing_wall_clock_are_refused() {
    let ca = ca("DMVPN CA");
    let spoke = leaf(&ca, Alg::P256, "spoke", vec![dns("spoke.example")], 70);
    let hub = leaf(&ca, Alg::P256, "hub", vec![dns("hub.example")], 71);
    let configs = || {
        (
            node(id_fqdn("spoke.example"), spoke.clone(), &[&ca], vec![]),
            node(id_fqdn("hub.example"), hub.clone(), &[&ca], vec![]),
        )
    };
    // 2028: the leaf expired at the start of 2027.
    let (a, b) = configs();
    let mut p = Pair::new(a, b, Some(NOW_UNIX + Duration::from_secs(2 * 365 * 86400)));
    p.run(None);
    let f = p.failures(1);
    assert!(matches!(f.as_slice(), [Failure::Auth(AuthError::Chain(e))] if e.starts_with("CertExpired")), "{f:?}");
    let (a, b) = configs();
    let mut p = Pair::new(a, b, None);
    p.run(None);
    p.assert_responder_refused(&AuthError::NoWallClock);
}

#[test]
fn policy_decides_psk_or_certificate_per_peer() {
    let ca = ca("DMVPN CA");
    let hub = leaf(&ca, Alg::P256, "hub", vec![dns("hub.example")], 80);
    let spoke = leaf(&ca, Alg::P256, "spoke", vec![dns("spoke.example")], 81);
    // The hub: certificates by default, a PSK for one legacy spoke.
    let mut h = node(id_fqdn("hub.example"), hub, &[&ca], vec![]);
    h.keyring = Keyring::default().with(PeerMatch::Id(id_fqdn("legacy.example")), "legacy-secret");
    h.auth.peers.push((PeerMatch::Id(id_fqdn("legacy.example")), AuthKind::Psk));
    let mut legacy = Config::new(id_fqdn("legacy.example"));
    legacy.keyring = Keyring::default().with(PeerMatch::Any, "legacy-secret");
    let mut p = Pair::new(legacy, h.clone(), Some(NOW_UNIX));
    p.run(None);
    p.assert_keys_agree();
    // A spoke that signs but is listed for a PSK is refused by method.
    h.auth.peers.push((PeerMatch::Id(id_fqdn("spoke.example")), AuthKind::Psk));
    let mut p = Pair::new(node(id_fqdn("spoke.example"), spoke, &[&ca], vec![]), h, Some(NOW_UNIX));
    p.run(None);
    p.assert_responder_refused(&AuthError::MethodNotAllowed {
        got: ike::message::AuthMethod::DIGITAL_SIGNATURE,
        want: AuthKind::Psk,
    });
}

#[test]
fn configuration_errors_name_what_is_wrong() {
    let ca = ca("DMVPN CA");
    let (cert, key) = leaf(&ca, Alg::P256, "spoke", vec![dns("spoke.example")], 90);
    let (_, other_key) = leaf(&ca, Alg::P256, "other", vec![dns("other.example")], 91);
    use ike::cert::CertError;
    assert_eq!(LocalCert::new(vec![cert.clone()], other_key).unwrap_err(), CertError::KeyMismatch);
    assert_eq!(LocalCert::new(vec![cert.clone()], vec![1, 2, 3]).unwrap_err(), CertError::BadKey);
    assert_eq!(LocalCert::new(vec![], key.clone()).unwrap_err(), CertError::EmptyChain);
    assert_eq!(LocalCert::new(vec![cert[..100].to_vec()], key).unwrap_err(), CertError::BadCertificate(0));
    assert!(matches!(TrustStore::new(vec![vec![0x30, 0]], vec![]), Err(CertError::BadCa(0, _))));
    assert!(matches!(TrustStore::new(vec![], vec![vec![1, 2]]), Err(CertError::BadCrl(0, _))));
    let t = TrustStore::new(vec![ca.cert.der().to_vec()], vec![]).unwrap();
    assert_eq!(t.certreq().len(), 20, "one SHA-1 hash per CA");
}

/// Setups per second, both ends in this thread, certificates against PSK (run with `cargo test
/// --release -p ike --test cert_auth -- --ignored --nocapture`; the README quotes it).
#[test]
#[ignore]
fn setup_rate_certificates_against_psk() {
    let ca = ca("DMVPN CA");
    let mut psk = (Config::new(id_fqdn("spoke.example")), Config::new(id_fqdn("hub.example")));
    psk.0.keyring = Keyring::default().with(PeerMatch::Any, "bench-secret");
    psk.1.keyring = psk.0.keyring.clone();
    let certs = |alg: fn() -> Alg, serial: u64| {
        let spoke = leaf(&ca, alg(), "spoke", vec![dns("spoke.example")], serial);
        let hub = leaf(&ca, alg(), "hub", vec![dns("hub.example")], serial + 1);
        (node(id_fqdn("spoke.example"), spoke, &[&ca], vec![]), node(id_fqdn("hub.example"), hub, &[&ca], vec![]))
    };
    let configs = [
        ("PSK", psk),
        ("ECDSA P-256 certificates", certs(|| Alg::P256, 1)),
        ("RSA-2048 certificates", certs(|| Alg::Rsa, 3)),
    ];
    for (name, (a, b)) in configs {
        let n = 200;
        #[allow(clippy::disallowed_methods)] // a wall-clock measurement
        let t0 = Instant::now();
        for _ in 0..n {
            let mut p = Pair::new(a.clone(), b.clone(), Some(NOW_UNIX));
            p.run(None);
            assert_eq!(p.pairs(0).len(), 1);
        }
        let secs = t0.elapsed().as_secs_f64();
        eprintln!(
            "{name}: {n} setups in {secs:.2} s, {:.0} setups/s (both ends, one thread, ECP-256 DH)",
            n as f64 / secs
        );
    }
}
