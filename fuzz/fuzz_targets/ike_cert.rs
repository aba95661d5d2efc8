//! Arbitrary bytes through the certificate-authentication parsers (`ike::cert`): RFC 7427
//! AlgorithmIdentifiers (a parsed one re-encodes to what parses the same), certificate names, PEM, and
//! a trust store built from the first part of the input checking the rest as a CERT chain and AUTH
//! data. Nothing may panic; configuration errors and refusals are fine.
#![no_main]

use std::time::Duration;

use ike::cert::{self, Scheme, TrustStore};
use ike::config::id_fqdn;
use ike::message::AuthMethod;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(s) = Scheme::parse(data) {
        assert_eq!(Scheme::parse(&s.algorithm_identifier()), Some(s));
    }
    let _ = cert::subject(data);
    let _ = cert::certificates_from_pem(data);
    let _ = cert::crls_from_pem(data);
    let _ = cert::private_key_from_pem(data);
    // First two octets: the length of the CA certificate; then the peer's certificate and the AUTH
    // data split in the middle of what is left.
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let Some((ca, rest)) = rest.split_at_checked(usize::from(u16::from_be_bytes(*len))) else { return };
    let Ok(store) = TrustStore::new(vec![ca.to_vec()], vec![]) else { return };
    let (peer, auth) = rest.split_at(rest.len() / 2);
    // AUTH method 14 (RFC 7427), or one of the older signature methods, by the first octet's low bits.
    let methods = [AuthMethod::DIGITAL_SIGNATURE, AuthMethod::RSA_SIG, AuthMethod::ECDSA_SHA256_P256, AuthMethod(10)];
    let method = methods[usize::from(len[0] & 3)];
    let _ = store.verify(&[peer], &id_fqdn("peer.example"), Duration::from_secs(1_780_272_000), b"octets", method, auth);
});
