//! X.509 certificate authentication (RFC 7296 §2.15, §3.6, §3.7) with RFC 7427 digital signatures.
//!
//! Layer: below the engine, beside [`crate::keys`]. The engine hands this module the octets AUTH
//! signs (§2.15 `InitiatorSignedOctets` / `ResponderSignedOctets`); it signs them with our key
//! ([`LocalCert`]) or checks the peer's signature, certificate chain, revocation and identity
//! ([`TrustStore::verify`]).
//!
//! - AUTH method 14 (RFC 7427 §3): one octet giving the length of the DER AlgorithmIdentifier, the
//!   AlgorithmIdentifier, then the signature. Accepted: RSASSA-PKCS1-v1_5 with SHA-256/384/512,
//!   RSASSA-PSS with SHA-256/384/512 (MGF1 with the same hash, salt as long as the hash), ECDSA on
//!   P-256 and P-384 with SHA-256/384 (the DER `Ecdsa-Sig-Value` of RFC 3279).
//! - Peers without RFC 7427 (no SIGNATURE_HASH_ALGORITHMS): we verify AUTH methods 1 (RSA PKCS #1
//!   v1.5, SHA-1) and 9/10 (ECDSA P-256/P-384, RFC 4754's r | s), and an ECDSA key signs with 9 or 10
//!   for them; an RSA key still signs with 14 (ring signs no SHA-1).
//! - SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4): [`SIGNATURE_HASHES`], the hashes we accept.
//! - CERTREQ (§3.7): SHA-1 hashes of our CAs' SubjectPublicKeyInfo ([`TrustStore::certreq`]).
//! - The chain to a configured CA, validity at the injected wall-clock time and revocation from the
//!   configured CRLs: rustls-webpki. Certificates with an Extended Key Usage must allow ipsecIKE,
//!   serverAuth, clientAuth or any purpose (RFC 4945 §5.1.3.12 is lax; these are what CAs issue).
//! - The identity (§3.5) against the end-entity certificate: ID_FQDN with a dNSName,
//!   ID_RFC822_ADDR with an rfc822Name, ID_IPV4_ADDR / ID_IPV6_ADDR with an iPAddress of the
//!   subjectAltName (case-insensitive for names, no wildcards), ID_DER_ASN1_DN with the subject (or a
//!   directoryName), octet for octet.
//!
//! Contract: certificates, CERT payloads and AUTH data are untrusted input; every parse is checked and
//! fails with an [`AuthError`] saying what was wrong; nothing here panics. The one randomness not
//! injected is ECDSA's per-signature nonce, which ring draws from its own `SystemRandom` (its API takes
//! no other source); RSA signatures are deterministic.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, KeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime,
};
use webpki::ring as algs;

use crate::config::AuthKind;
use crate::message::{AuthMethod, Id, IdType};

/// Hash algorithms we accept in signatures, as SIGNATURE_HASH_ALGORITHMS lists them (RFC 7427 §4,
/// IANA "IKEv2 Hash Algorithms"): SHA2-256, SHA2-384, SHA2-512.
pub const SIGNATURE_HASHES: [u16; 3] = [2, 3, 4];

/// The SIGNATURE_HASH_ALGORITHMS notification data: [`SIGNATURE_HASHES`], two octets each.
pub fn signature_hashes_notify() -> Vec<u8> {
    SIGNATURE_HASHES.iter().flat_map(|h| h.to_be_bytes()).collect()
}

/// A hash of a signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Hash {
    const ALL: [Hash; 3] = [Hash::Sha256, Hash::Sha384, Hash::Sha512];

    fn len(self) -> u8 {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// id-sha256 / id-sha384 / id-sha512 (RFC 5754 §2), OID contents.
    fn oid(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01],
            Hash::Sha384 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02],
            Hash::Sha512 => &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03],
        }
    }

    /// sha{256,384,512}WithRSAEncryption (RFC 4055 §5).
    fn rsa_oid(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
            Hash::Sha384 => &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
            Hash::Sha512 => &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        }
    }

    /// ecdsa-with-SHA{256,384,512} (RFC 5758 §3.2).
    fn ecdsa_oid(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
            Hash::Sha384 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
            Hash::Sha512 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
        }
    }
}

/// id-RSASSA-PSS (RFC 4055 §3.1).
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
/// id-mgf1 (RFC 4055 §2.2).
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
/// subjectAltName (RFC 5280 §4.2.1.6).
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// A signature scheme of RFC 7427 AUTH data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(Hash),
    /// RSASSA-PSS, MGF1 with the same hash, salt as long as the hash.
    RsaPss(Hash),
    /// ECDSA.
    Ecdsa(Hash),
}

impl Scheme {
    /// The DER AlgorithmIdentifier (RFC 7427 Appendix A): NULL parameters for PKCS #1 v1.5, none for
    /// ECDSA, RSASSA-PSS-params in full for PSS.
    pub fn algorithm_identifier(self) -> Vec<u8> {
        let null: &[u8] = &[0x05, 0x00];
        match self {
            Scheme::RsaPkcs1(h) => tlv(0x30, &[&tlv(0x06, &[h.rsa_oid()]), null]),
            Scheme::Ecdsa(h) => tlv(0x30, &[&tlv(0x06, &[h.ecdsa_oid()])]),
            Scheme::RsaPss(h) => {
                let hash = tlv(0x30, &[&tlv(0x06, &[h.oid()]), null]);
                let mgf = tlv(0x30, &[&tlv(0x06, &[OID_MGF1]), &hash]);
                let params =
                    tlv(0x30, &[&tlv(0xa0, &[&hash]), &tlv(0xa1, &[&mgf]), &tlv(0xa2, &[&tlv(0x02, &[&[h.len()]])])]);
                tlv(0x30, &[&tlv(0x06, &[OID_RSASSA_PSS]), &params])
            }
        }
    }

    /// Parses a DER AlgorithmIdentifier; `None` for anything not accepted (see the module docs).
    pub fn parse(der: &[u8]) -> Option<Scheme> {
        let mut input = der;
        let seq = der::expect(&mut input, 0x30)?;
        if !input.is_empty() {
            return None;
        }
        let mut s = seq.value;
        let oid = der::expect(&mut s, 0x06)?.value;
        let absent_or_null = |s: &[u8]| s.is_empty() || s == [0x05, 0x00];
        for h in Hash::ALL {
            if oid == h.rsa_oid() && absent_or_null(s) {
                return Some(Scheme::RsaPkcs1(h));
            }
            if oid == h.ecdsa_oid() && s.is_empty() {
                return Some(Scheme::Ecdsa(h));
            }
        }
        if oid != OID_RSASSA_PSS {
            return None;
        }
        // RSASSA-PSS-params (RFC 4055 §3.1); the defaults (SHA-1, salt 20) are not accepted.
        let params = der::expect(&mut s, 0x30)?;
        if !s.is_empty() {
            return None;
        }
        let mut p = params.value;
        let hash_alg = |v: &[u8]| -> Option<Hash> {
            let mut v = v;
            let alg = der::expect(&mut v, 0x30)?;
            let mut a = alg.value;
            let oid = der::expect(&mut a, 0x06)?.value;
            (v.is_empty() && absent_or_null(a)).then_some(())?;
            Hash::ALL.into_iter().find(|h| h.oid() == oid)
        };
        let hash = hash_alg(der::expect(&mut p, 0xa0)?.value)?;
        let mgf = der::expect(&mut p, 0xa1)?;
        let mut m = mgf.value;
        let mgf_seq = der::expect(&mut m, 0x30)?;
        let mut ms = mgf_seq.value;
        if der::expect(&mut ms, 0x06)?.value != OID_MGF1 || hash_alg(ms)? != hash || !m.is_empty() {
            return None;
        }
        let mut salt = der::expect(&mut p, 0xa2)?.value;
        if der::expect(&mut salt, 0x02)?.value != [hash.len()] || !salt.is_empty() {
            return None;
        }
        if !p.is_empty() {
            // trailerField: only trailerFieldBC (1) exists.
            let mut t = der::expect(&mut p, 0xa3)?.value;
            if der::expect(&mut t, 0x02)?.value != [1] || !t.is_empty() || !p.is_empty() {
                return None;
            }
        }
        Some(Scheme::RsaPss(hash))
    }

    /// The verification algorithms that can check this scheme (ECDSA: per curve of the key).
    fn verifiers(self) -> Vec<&'static dyn SignatureVerificationAlgorithm> {
        match self {
            Scheme::RsaPkcs1(Hash::Sha256) => vec![algs::RSA_PKCS1_2048_8192_SHA256],
            Scheme::RsaPkcs1(Hash::Sha384) => vec![algs::RSA_PKCS1_2048_8192_SHA384],
            Scheme::RsaPkcs1(Hash::Sha512) => vec![algs::RSA_PKCS1_2048_8192_SHA512],
            Scheme::RsaPss(Hash::Sha256) => vec![algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            Scheme::RsaPss(Hash::Sha384) => vec![algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            Scheme::RsaPss(Hash::Sha512) => vec![algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            Scheme::Ecdsa(Hash::Sha256) => vec![algs::ECDSA_P256_SHA256, algs::ECDSA_P384_SHA256],
            Scheme::Ecdsa(Hash::Sha384) => vec![algs::ECDSA_P384_SHA384, algs::ECDSA_P256_SHA384],
            Scheme::Ecdsa(Hash::Sha512) => vec![],
        }
    }
}

/// Signature algorithms accepted on the certificates of a chain.
static CHAIN_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
    algs::ED25519,
    algs::RSA_PKCS1_2048_8192_SHA256,
    algs::RSA_PKCS1_2048_8192_SHA384,
    algs::RSA_PKCS1_2048_8192_SHA512,
    algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// A DER TLV with a definite length.
fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut v = vec![tag];
    if len < 0x80 {
        v.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        v.push(0x80 | (bytes.len() - skip) as u8);
        v.extend_from_slice(&bytes[skip..]);
    }
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

/// Just enough DER (X.690) to read what webpki does not expose: names, the SubjectPublicKeyInfo and
/// AlgorithmIdentifiers. Single-octet tags, definite lengths of at most four octets.
mod der {
    pub(super) struct Tlv<'a> {
        pub tag: u8,
        pub value: &'a [u8],
        /// Tag, length and value.
        pub whole: &'a [u8],
    }

    /// Reads one TLV off the front of `input`.
    pub(super) fn read<'a>(input: &mut &'a [u8]) -> Option<Tlv<'a>> {
        let all = *input;
        let (&tag, rest) = all.split_first()?;
        let (&l0, mut rest) = rest.split_first()?;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let (bytes, r) = rest.split_at_checked(n)?;
            rest = r;
            bytes.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b))
        };
        let (value, after) = rest.split_at_checked(len)?;
        let whole = &all[..all.len() - after.len()];
        *input = after;
        Some(Tlv { tag, value, whole })
    }

    /// Reads one TLV with tag `tag`.
    pub(super) fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Option<Tlv<'a>> {
        read(input).filter(|t| t.tag == tag)
    }
}

/// What identity matching and CERTREQ need of a certificate (RFC 5280 §4.1).
struct CertInfo<'a> {
    /// The subject Name, DER (tag included).
    subject: &'a [u8],
    /// The SubjectPublicKeyInfo, DER (tag included).
    spki: &'a [u8],
    /// The subjectPublicKey BIT STRING's octets.
    public_key: &'a [u8],
    /// subjectAltName GeneralNames: (context tag, contents).
    names: Vec<(u8, &'a [u8])>,
}

impl<'a> CertInfo<'a> {
    fn parse(der: &'a [u8]) -> Option<CertInfo<'a>> {
        let mut input = der;
        let cert = der::expect(&mut input, 0x30)?;
        if !input.is_empty() {
            return None;
        }
        let mut c = cert.value;
        let tbs = der::expect(&mut c, 0x30)?;
        let mut t = tbs.value;
        let mut serial = der::read(&mut t)?;
        if serial.tag == 0xa0 {
            serial = der::read(&mut t)?; // version [0]
        }
        if serial.tag != 0x02 {
            return None;
        }
        der::expect(&mut t, 0x30)?; // signature
        der::expect(&mut t, 0x30)?; // issuer
        der::expect(&mut t, 0x30)?; // validity
        let subject = der::expect(&mut t, 0x30)?.whole;
        let spki = der::expect(&mut t, 0x30)?;
        let mut s = spki.value;
        der::expect(&mut s, 0x30)?;
        let bits = der::expect(&mut s, 0x03)?.value;
        let public_key = match bits.split_first() {
            Some((0, key)) => key,
            _ => return None,
        };
        let mut names = Vec::new();
        while !t.is_empty() {
            let field = der::read(&mut t)?;
            if field.tag != 0xa3 {
                continue; // issuerUniqueID, subjectUniqueID
            }
            let mut e = field.value;
            let mut exts = der::expect(&mut e, 0x30)?.value;
            while !exts.is_empty() {
                let mut x = der::expect(&mut exts, 0x30)?.value;
                let oid = der::expect(&mut x, 0x06)?.value;
                let mut value = der::read(&mut x)?;
                if value.tag == 0x01 {
                    value = der::read(&mut x)?; // critical
                }
                if value.tag != 0x04 {
                    return None;
                }
                if oid == OID_SAN {
                    let mut v = value.value;
                    let mut gs = der::expect(&mut v, 0x30)?.value;
                    while !gs.is_empty() {
                        let n = der::read(&mut gs)?;
                        names.push((n.tag, n.value));
                    }
                }
            }
        }
        Some(CertInfo { subject, spki: spki.whole, public_key, names })
    }

    /// Whether the certificate names `id` (see the module docs).
    fn names_id(&self, id: &Id) -> bool {
        let san = |tag: u8, want: &[u8], ci: bool| {
            self.names.iter().any(|(t, v)| *t == tag && if ci { v.eq_ignore_ascii_case(want) } else { *v == want })
        };
        match id.ty {
            IdType::ID_FQDN => san(0x82, &id.data, true),
            IdType::ID_RFC822_ADDR => san(0x81, &id.data, true),
            IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR => san(0x87, &id.data, false),
            // directoryName [4] is EXPLICIT: its contents are the Name.
            IdType::ID_DER_ASN1_DN => self.subject == id.data.as_slice() || san(0xa4, &id.data, false),
            _ => false,
        }
    }
}

/// The subject Name of a DER certificate, DER-encoded: the ID_DER_ASN1_DN identity the certificate
/// proves (§3.5).
pub fn subject(cert: &[u8]) -> Option<Vec<u8>> {
    CertInfo::parse(cert).map(|i| i.subject.to_vec())
}

/// An identity as a log line shows it.
pub fn id_display(id: &Id) -> String {
    match (id.ty, id.data.len()) {
        (IdType::ID_FQDN | IdType::ID_RFC822_ADDR, _) => String::from_utf8_lossy(&id.data).into_owned(),
        (IdType::ID_IPV4_ADDR, 4) => {
            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&id.data[..]).unwrap_or_default()).to_string()
        }
        (IdType::ID_IPV6_ADDR, 16) => {
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&id.data[..]).unwrap_or_default()).to_string()
        }
        (ty, _) => format!("{ty:?} {}", id.data.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

/// Why certificate configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The chain is empty.
    #[error("certificate chain: empty")]
    EmptyChain,
    /// A certificate of our chain does not parse.
    #[error("certificate chain: certificate {0} is not a DER X.509 certificate")]
    BadCertificate(usize),
    /// The private key is none we can sign with.
    #[error("private key: not a PKCS #8 RSA, ECDSA P-256 or P-384 key, a PKCS #1 RSA or a SEC1 ECDSA key")]
    BadKey,
    /// The private key is not the certificate's.
    #[error("private key: does not match the public key of the certificate")]
    KeyMismatch,
    /// A CA certificate is unusable as a trust anchor.
    #[error("trust store: CA certificate {0}: {1}")]
    BadCa(usize, String),
    /// A CRL does not parse.
    #[error("CRL {0}: {1}")]
    BadCrl(usize, String),
    /// A PEM file holds no section of the kind wanted, or a broken one.
    #[error("PEM: {0}")]
    Pem(String),
}

fn is_pem(data: &[u8]) -> bool {
    data.windows(10).any(|w| w == b"-----BEGIN")
}

fn pem_all<T: PemObject>(data: &[u8], what: &str, der: impl Fn(T) -> Vec<u8>) -> Result<Vec<Vec<u8>>, CertError> {
    if !is_pem(data) {
        return Ok(vec![data.to_vec()]);
    }
    let all = T::pem_slice_iter(data).map(|r| r.map(&der)).collect::<Result<Vec<_>, _>>();
    match all {
        Ok(v) if v.is_empty() => Err(CertError::Pem(format!("no {what} section"))),
        Ok(v) => Ok(v),
        Err(e) => Err(CertError::Pem(format!("{what}: {e:?}"))),
    }
}

/// The certificates of a PEM file (each `CERTIFICATE` section, in order), or a DER certificate.
pub fn certificates_from_pem(data: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    pem_all(data, "CERTIFICATE", |c: CertificateDer<'static>| c.to_vec())
}

/// The CRLs of a PEM file (`X509 CRL` sections), or a DER CRL.
pub fn crls_from_pem(data: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    pem_all(data, "X509 CRL", |c: CertificateRevocationListDer<'static>| c.to_vec())
}

/// The private key of a PEM file (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`), or DER.
pub fn private_key_from_pem(data: &[u8]) -> Result<Vec<u8>, CertError> {
    if !is_pem(data) {
        return Ok(data.to_vec());
    }
    PrivateKeyDer::from_pem_slice(data)
        .map(|k| k.secret_der().to_vec())
        .map_err(|e| CertError::Pem(format!("private key: {e:?}")))
}

/// Why certificate authentication failed (reported in [`crate::engine::Failure::Auth`]; the
/// peer gets AUTHENTICATION_FAILED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The peer used an AUTH method our policy for it does not allow.
    #[error("peer used AUTH method {got:?}, but our policy for it is {want:?}")]
    MethodNotAllowed {
        /// What the peer sent.
        got: AuthMethod,
        /// What we require of it.
        want: AuthKind,
    },
    /// We are to authenticate with a certificate but have none.
    #[error("no local certificate and key are configured")]
    NoLocalCertificate,
    /// Signing with our key failed.
    #[error("signing with the local key failed")]
    SignFailed,
    /// No CA is configured to check the peer against.
    #[error("no trusted CA is configured")]
    NoTrustAnchor,
    /// The engine was never told the time of day.
    #[error("no wall clock: Engine::set_wall_clock was not called")]
    NoWallClock,
    /// The peer sent no X.509 certificate.
    #[error("the peer sent no X.509 certificate (CERT encoding 4)")]
    NoPeerCertificate,
    /// A certificate of the peer does not parse.
    #[error("the peer's certificate does not parse")]
    BadPeerCertificate,
    /// The chain does not lead to a trusted CA, or a certificate is expired, unfit, …
    #[error("the peer's certificate chain was refused: {0}")]
    Chain(String),
    /// The peer's certificate (or one of its chain) is on a CRL.
    #[error("the peer's certificate is revoked")]
    Revoked,
    /// The peer's identity is not in its certificate.
    #[error("identity {0} is not in the peer's certificate (subjectAltName or subject)")]
    IdentityMismatch(String),
    /// The identity the peer authenticated is not the one configured for it.
    #[error("the peer authenticated as {got}, expected {want}")]
    UnexpectedIdentity {
        /// What it authenticated.
        got: String,
        /// What we expected.
        want: String,
    },
    /// The AUTH data is malformed.
    #[error("AUTH data: {0}")]
    BadAuthData(&'static str),
    /// The AlgorithmIdentifier names a scheme we do not accept.
    #[error("AUTH signature algorithm not accepted: {0}")]
    UnsupportedAlgorithm(String),
    /// The signature does not verify.
    #[error("AUTH signature does not verify with the certificate's key")]
    BadSignature,
}

/// A SEC1 ECPrivateKey (RFC 5915; `EC PRIVATE KEY`, as `openssl ecparam` and strongSwan's `pki`
/// write it) wrapped as PKCS #8 (RFC 5208) for the named curve it carries; `None` if it is not one.
fn sec1_to_pkcs8(key: &[u8]) -> Option<Vec<u8>> {
    /// id-ecPublicKey (RFC 5480 §2.1.1), as a TLV.
    const EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let mut input = key;
    let seq = der::expect(&mut input, 0x30)?;
    let mut k = seq.value;
    if !input.is_empty() || der::expect(&mut k, 0x02)?.value != [1] {
        return None;
    }
    der::expect(&mut k, 0x04)?;
    let mut params = der::expect(&mut k, 0xa0)?.value;
    let curve = der::expect(&mut params, 0x06)?.whole;
    Some(tlv(0x30, &[&[0x02, 0x01, 0x00], &tlv(0x30, &[EC_PUBLIC_KEY, curve]), &tlv(0x04, &[key])]))
}

/// Our certificate chain and private key: what we send in CERT and sign AUTH with.
#[derive(Clone)]
pub struct LocalCert {
    /// End-entity certificate first, then intermediates (DER).
    chain: Vec<Vec<u8>>,
    /// The key as configured (DER), for equality.
    key_der: Vec<u8>,
    signer: Arc<Signer>,
    scheme: Scheme,
}

enum Signer {
    Rsa(RsaKeyPair),
    /// The key for RFC 7427 (DER signatures) and for RFC 4754 (r | s, AUTH method 9 or 10).
    Ecdsa(EcdsaKeyPair, Box<EcdsaKeyPair>, AuthMethod),
}

impl LocalCert {
    /// Our end-entity certificate then its intermediates (DER), and the private key (DER: PKCS #8 for
    /// RSA, ECDSA P-256 and P-384, PKCS #1 for RSA, or SEC1 for ECDSA). RSA signs with PKCS #1 v1.5 and SHA-256 (see
    /// [`LocalCert::with_rsa_pss`]), P-256 with SHA-256, P-384 with SHA-384.
    pub fn new(chain: Vec<Vec<u8>>, key_der: Vec<u8>) -> Result<LocalCert, CertError> {
        let end = chain.first().ok_or(CertError::EmptyChain)?;
        for (i, c) in chain.iter().enumerate() {
            CertInfo::parse(c).ok_or(CertError::BadCertificate(i))?;
        }
        let rng = SystemRandom::new();
        let sec1 = sec1_to_pkcs8(&key_der);
        let ec_der = sec1.as_deref().unwrap_or(&key_der);
        let (signer, scheme) =
            if let Ok(k) = RsaKeyPair::from_pkcs8(&key_der).or_else(|_| RsaKeyPair::from_der(&key_der)) {
                (Signer::Rsa(k), Scheme::RsaPkcs1(Hash::Sha256))
            } else if let (Ok(k), Ok(fixed)) = (
                EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, ec_der, &rng),
                EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, ec_der, &rng),
            ) {
                (Signer::Ecdsa(k, Box::new(fixed), AuthMethod::ECDSA_SHA256_P256), Scheme::Ecdsa(Hash::Sha256))
            } else if let (Ok(k), Ok(fixed)) = (
                EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_ASN1_SIGNING, ec_der, &rng),
                EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, ec_der, &rng),
            ) {
                (Signer::Ecdsa(k, Box::new(fixed), AuthMethod::ECDSA_SHA384_P384), Scheme::Ecdsa(Hash::Sha384))
            } else {
                return Err(CertError::BadKey);
            };
        let public = match &signer {
            Signer::Rsa(k) => k.public_key().as_ref(),
            Signer::Ecdsa(k, ..) => k.public_key().as_ref(),
        };
        let info = CertInfo::parse(end).ok_or(CertError::BadCertificate(0))?;
        if info.public_key != public {
            return Err(CertError::KeyMismatch);
        }
        Ok(LocalCert { chain, key_der, signer: Arc::new(signer), scheme })
    }

    /// With an RSA key, sign with RSASSA-PSS (SHA-256) instead of PKCS #1 v1.5; no effect with ECDSA.
    #[must_use]
    pub fn with_rsa_pss(mut self, pss: bool) -> LocalCert {
        if matches!(*self.signer, Signer::Rsa(_)) {
            self.scheme = if pss { Scheme::RsaPss(Hash::Sha256) } else { Scheme::RsaPkcs1(Hash::Sha256) };
        }
        self
    }

    /// The chain, end-entity certificate first (DER).
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The scheme our AUTH uses.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether `id` is named by our certificate (a peer would refuse it otherwise).
    pub fn names(&self, id: &Id) -> bool {
        self.chain.first().and_then(|c| CertInfo::parse(c)).is_some_and(|i| i.names_id(id))
    }

    /// The AUTH method and data over `octets`: method 14 (RFC 7427 §3), or with an ECDSA key for a
    /// peer that did not announce RFC 7427 (`rfc7427` false: no SIGNATURE_HASH_ALGORITHMS), method 9
    /// or 10 (RFC 4754). An RSA key signs with method 14 regardless: method 1 means SHA-1, which ring
    /// does not sign with.
    pub(crate) fn sign(&self, octets: &[u8], rfc7427: bool) -> Result<(AuthMethod, Vec<u8>), AuthError> {
        let rng = SystemRandom::new();
        if let (Signer::Ecdsa(_, fixed, method), false) = (&*self.signer, rfc7427) {
            let signature = fixed.sign(&rng, octets).map_err(|_| AuthError::SignFailed)?;
            return Ok((*method, signature.as_ref().to_vec()));
        }
        let signature = match (&*self.signer, self.scheme) {
            (Signer::Rsa(k), s) => {
                let pad: &'static dyn sig::RsaEncoding = match s {
                    Scheme::RsaPss(_) => &sig::RSA_PSS_SHA256,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; k.public().modulus_len()];
                k.sign(pad, &rng, octets, &mut out).map_err(|_| AuthError::SignFailed)?;
                out
            }
            (Signer::Ecdsa(k, ..), _) => k.sign(&rng, octets).map_err(|_| AuthError::SignFailed)?.as_ref().to_vec(),
        };
        let alg = self.scheme.algorithm_identifier();
        let mut data = Vec::with_capacity(1 + alg.len() + signature.len());
        data.push(u8::try_from(alg.len()).map_err(|_| AuthError::SignFailed)?);
        data.extend_from_slice(&alg);
        data.extend_from_slice(&signature);
        Ok((AuthMethod::DIGITAL_SIGNATURE, data))
    }
}

impl PartialEq for LocalCert {
    fn eq(&self, other: &LocalCert) -> bool {
        self.chain == other.chain && self.key_der == other.key_der && self.scheme == other.scheme
    }
}

impl Eq for LocalCert {}

impl core::fmt::Debug for LocalCert {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocalCert").field("chain", &self.chain.len()).field("scheme", &self.scheme).finish()
    }
}

/// The CAs we trust and the CRLs we check the peer's chain against.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustStore {
    /// CA certificates (DER).
    cas: Vec<Vec<u8>>,
    /// CRLs (DER).
    crls: Vec<Vec<u8>>,
    /// CERTREQ data: SHA-1 of each CA's SubjectPublicKeyInfo (§3.7).
    certreq: Vec<u8>,
}

impl core::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrustStore").field("cas", &self.cas.len()).field("crls", &self.crls.len()).finish()
    }
}

/// EKU policy (RFC 4945 §5.1.3.12): none, or one of ipsecIKE, serverAuth, clientAuth, anyExtendedKeyUsage.
struct IkeEku;

impl webpki::ExtendedKeyUsageValidator for IkeEku {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        const OK: [&[usize]; 4] = [
            &[1, 3, 6, 1, 5, 5, 7, 3, 17],
            &[1, 3, 6, 1, 5, 5, 7, 3, 1],
            &[1, 3, 6, 1, 5, 5, 7, 3, 2],
            &[2, 5, 29, 37, 0],
        ];
        let mut present = Vec::new();
        for id in iter {
            let oid = id?.to_decoded_oid();
            if OK.contains(&oid.as_slice()) {
                return Ok(());
            }
            present.push(oid);
        }
        if present.is_empty() {
            return Ok(());
        }
        // ipsecIKE (1.3.6.1.5.5.7.3.17), the one named in the error.
        let required = webpki::KeyUsage::required(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11]);
        Err(webpki::Error::RequiredEkuNotFoundContext(webpki::RequiredEkuNotFoundContext { required, present }))
    }
}

impl TrustStore {
    /// CA certificates and CRLs (DER), each checked to parse.
    pub fn new(cas: Vec<Vec<u8>>, crls: Vec<Vec<u8>>) -> Result<TrustStore, CertError> {
        use sha1::{Digest, Sha1};
        let mut certreq = Vec::new();
        for (i, ca) in cas.iter().enumerate() {
            webpki::anchor_from_trusted_cert(&CertificateDer::from(ca.as_slice()))
                .map_err(|e| CertError::BadCa(i, e.to_string()))?;
            let info = CertInfo::parse(ca).ok_or_else(|| CertError::BadCa(i, "not a DER X.509 certificate".into()))?;
            certreq.extend_from_slice(&Sha1::digest(info.spki));
        }
        for (i, crl) in crls.iter().enumerate() {
            webpki::BorrowedCertRevocationList::from_der(crl).map_err(|e| CertError::BadCrl(i, e.to_string()))?;
        }
        Ok(TrustStore { cas, crls, certreq })
    }

    /// No CA configured.
    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
    }

    /// CERTREQ data (§3.7): the SHA-1 hashes of our CAs' SubjectPublicKeyInfo, concatenated.
    pub fn certreq(&self) -> &[u8] {
        &self.certreq
    }

    /// Verifies a peer (§2.15, RFC 7427 §3): `certs` are its X.509 CERT payloads (end entity first),
    /// `id` the identity it sent, `unix` the time since the Unix epoch, `octets` what AUTH signs, and
    /// `method` and `auth` the AUTH payload's: method 14 (RFC 7427), or for peers without RFC 7427, 1
    /// (RSA PKCS #1 v1.5 with SHA-1), 9 or 10 (ECDSA P-256 / P-384, RFC 4754).
    pub fn verify(
        &self,
        certs: &[&[u8]],
        id: &Id,
        unix: Duration,
        octets: &[u8],
        method: AuthMethod,
        auth: &[u8],
    ) -> Result<(), AuthError> {
        // RFC 7427 §3 for method 14; the older methods (RFC 7296 §3.8, RFC 4754) name the scheme
        // themselves and carry the bare signature.
        let (scheme, signature) = match method {
            AuthMethod::DIGITAL_SIGNATURE => {
                let (&alg_len, rest) = auth.split_first().ok_or(AuthError::BadAuthData("empty"))?;
                let (alg, signature) = rest
                    .split_at_checked(usize::from(alg_len))
                    .ok_or(AuthError::BadAuthData("AlgorithmIdentifier truncated"))?;
                let scheme = Scheme::parse(alg).ok_or_else(|| {
                    AuthError::UnsupportedAlgorithm(alg.iter().map(|b| format!("{b:02x}")).collect::<String>())
                })?;
                if scheme.verifiers().is_empty() {
                    return Err(AuthError::UnsupportedAlgorithm(format!("{scheme:?}")));
                }
                (Some(scheme), signature)
            }
            AuthMethod::RSA_SIG | AuthMethod::ECDSA_SHA256_P256 | AuthMethod::ECDSA_SHA384_P384 => (None, auth),
            m => return Err(AuthError::UnsupportedAlgorithm(format!("AUTH method {m:?}"))),
        };
        if self.cas.is_empty() {
            return Err(AuthError::NoTrustAnchor);
        }
        let (end, intermediates) = certs.split_first().ok_or(AuthError::NoPeerCertificate)?;
        let end_der = CertificateDer::from(*end);
        let ee = webpki::EndEntityCert::try_from(&end_der).map_err(|_| AuthError::BadPeerCertificate)?;
        let ca_ders: Vec<CertificateDer<'_>> = self.cas.iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        let anchors: Vec<TrustAnchor<'_>> =
            ca_ders.iter().filter_map(|c| webpki::anchor_from_trusted_cert(c).ok()).collect();
        let intermediates: Vec<CertificateDer<'_>> = intermediates.iter().map(|c| CertificateDer::from(*c)).collect();
        let crls: Vec<webpki::CertRevocationList<'_>> = self
            .crls
            .iter()
            .filter_map(|c| webpki::BorrowedCertRevocationList::from_der(c).ok())
            .map(webpki::CertRevocationList::from)
            .collect();
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
        let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
            b.with_depth(webpki::RevocationCheckDepth::Chain)
                .with_status_policy(webpki::UnknownStatusPolicy::Allow)
                .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                .build()
        });
        ee.verify_for_usage(
            CHAIN_ALGS,
            &anchors,
            &intermediates,
            UnixTime::since_unix_epoch(unix),
            IkeEku,
            revocation,
            None,
        )
        .map_err(|e| match e {
            webpki::Error::CertRevoked => AuthError::Revoked,
            e => AuthError::Chain(e.to_string()),
        })?;
        let info = CertInfo::parse(end).ok_or(AuthError::BadPeerCertificate)?;
        if !info.names_id(id) {
            return Err(AuthError::IdentityMismatch(id_display(id)));
        }
        let ok = match scheme {
            Some(scheme) => scheme.verifiers().iter().any(|v| ee.verify_signature(*v, octets, signature).is_ok()),
            None => {
                // The subjectPublicKey's octets are what ring takes: RSAPublicKey, or the curve point.
                let alg: &dyn sig::VerificationAlgorithm = match method {
                    AuthMethod::RSA_SIG => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                    AuthMethod::ECDSA_SHA256_P256 => &sig::ECDSA_P256_SHA256_FIXED,
                    _ => &sig::ECDSA_P384_SHA384_FIXED,
                };
                sig::UnparsedPublicKey::new(alg, info.public_key).verify(octets, signature).is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_identifiers_round_trip_and_match_pki_types() {
        // rustls-pki-types' `alg_id` constants are the AlgorithmIdentifier contents (RFC 4055, RFC
        // 5758), independently written; RFC 7427 Appendix A encodes the same.
        use rustls_pki_types::alg_id;
        let cases = [
            (Scheme::RsaPkcs1(Hash::Sha256), alg_id::RSA_PKCS1_SHA256),
            (Scheme::RsaPkcs1(Hash::Sha384), alg_id::RSA_PKCS1_SHA384),
            (Scheme::RsaPkcs1(Hash::Sha512), alg_id::RSA_PKCS1_SHA512),
            (Scheme::RsaPss(Hash::Sha256), alg_id::RSA_PSS_SHA256),
            (Scheme::RsaPss(Hash::Sha384), alg_id::RSA_PSS_SHA384),
            (Scheme::RsaPss(Hash::Sha512), alg_id::RSA_PSS_SHA512),
            (Scheme::Ecdsa(Hash::Sha256), alg_id::ECDSA_SHA256),
            (Scheme::Ecdsa(Hash::Sha384), alg_id::ECDSA_SHA384),
        ];
        for (scheme, id) in cases {
            assert_eq!(scheme.algorithm_identifier(), tlv(0x30, &[id.as_ref()]), "{scheme:?}");
        }
        // RFC 7427 Appendix A.1.1: sha256WithRSAEncryption.
        assert_eq!(
            hex::encode(Scheme::RsaPkcs1(Hash::Sha256).algorithm_identifier()),
            "300d06092a864886f70d01010b0500"
        );
        for h in Hash::ALL {
            for s in [Scheme::RsaPkcs1(h), Scheme::RsaPss(h), Scheme::Ecdsa(h)] {
                assert_eq!(Scheme::parse(&s.algorithm_identifier()), Some(s));
            }
        }
        // PKCS #1 v1.5 without the NULL; PSS with the default (SHA-1) hash is refused.
        assert_eq!(
            Scheme::parse(&hex::decode("300b06092a864886f70d01010c").unwrap()),
            Some(Scheme::RsaPkcs1(Hash::Sha384))
        );
        assert_eq!(Scheme::parse(&hex::decode("300d06092a864886f70d01010a3000").unwrap()), None);
    }

    #[test]
    fn rfc4754_signatures_for_peers_without_rfc7427() {
        // Without SIGNATURE_HASH_ALGORITHMS from the peer, an ECDSA key signs with AUTH method 9 (P-256)
        // or 10 (P-384): r | s of fixed length (RFC 4754 §7); the trust store verifies those, and
        // method 14 as ever. (charon, in the interop tests, checks these against another implementation.)
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let store = TrustStore::new(vec![ca.der().to_vec()], vec![]).unwrap();
        let id = crate::config::id_fqdn("peer.example");
        let now = Duration::from_secs(1_780_272_000);
        for (alg, method, len) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, AuthMethod::ECDSA_SHA256_P256, 64),
            (&rcgen::PKCS_ECDSA_P384_SHA384, AuthMethod::ECDSA_SHA384_P384, 96),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["peer.example".into()]).unwrap();
            let cert = cert.signed_by(&key, &ca, &ca_key).unwrap().der().to_vec();
            let local = LocalCert::new(vec![cert.clone()], key.serialize_der()).unwrap();
            let (m, sig) = local.sign(b"signed octets", false).unwrap();
            assert_eq!((m, sig.len()), (method, len));
            assert_eq!(store.verify(&[&cert], &id, now, b"signed octets", m, &sig), Ok(()));
            assert_eq!(store.verify(&[&cert], &id, now, b"other octets", m, &sig), Err(AuthError::BadSignature));
            let (m, sig) = local.sign(b"signed octets", true).unwrap();
            assert_eq!(m, AuthMethod::DIGITAL_SIGNATURE);
            assert_eq!(store.verify(&[&cert], &id, now, b"signed octets", m, &sig), Ok(()));
        }
    }

    #[test]
    fn parsers_survive_every_truncation() {
        let alg = Scheme::RsaPss(Hash::Sha512).algorithm_identifier();
        for n in 0..alg.len() {
            assert_eq!(Scheme::parse(&alg[..n]), None);
        }
        let kp = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["hub.example".into()]).unwrap().self_signed(&kp).unwrap();
        let der = cert.der().to_vec();
        assert!(CertInfo::parse(&der).is_some_and(|i| i.names_id(&crate::config::id_fqdn("HUB.example"))));
        for n in 0..der.len() {
            assert!(CertInfo::parse(&der[..n]).is_none());
        }
    }
}
