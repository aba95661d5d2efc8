//! The Encrypted payload against messages made by Python's `cryptography` package
//! (`tests/vectors/gen_sk.py`): sealing gives the same bytes, opening gives the plaintext back, and
//! any flipped octet or any truncation is refused without a panic.

use std::collections::HashMap;

use ike::crypto::Random;
use ike::keys::DirKeys;
use ike::message::{EncrId, ExchangeType, Flags, IntegId, Message, PayloadBody, PayloadType};
use ike::sk::{SkCipher, SkError};

/// Hands out the vector's CBC IV.
struct FixedIv(Vec<u8>);
impl Random for FixedIv {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.copy_from_slice(&self.0[..buf.len()]);
    }
}

fn blocks() -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(format!("{}/tests/vectors/sk.txt", env!("CARGO_MANIFEST_DIR"))).unwrap();
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            b.lines()
                .map(|l| {
                    let (k, v) = l.split_once(" =").unwrap();
                    (k.to_owned(), v.trim().to_owned())
                })
                .collect()
        })
        .collect()
}

#[test]
fn seal_and_open_match_python() {
    let plain: Vec<u8> = (0..37).collect();
    let all = blocks();
    assert_eq!(all.len(), 4);
    for b in all {
        let h = |k: &str| hex::decode(&b[k]).unwrap();
        let (encr, bits, integ) = match b["encr"].as_str() {
            "gcm128" => (EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE),
            "gcm256" => (EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE),
            "cbc128-sha256" => (EncrId::ENCR_AES_CBC, 128, IntegId::AUTH_HMAC_SHA2_256_128),
            "cbc256-sha512" => (EncrId::ENCR_AES_CBC, 256, IntegId::AUTH_HMAC_SHA2_512_256),
            other => panic!("{other}"),
        };
        let keys = DirKeys { encr: h("key"), salt: h("salt"), integ: h("integ") };
        let mut c = SkCipher::new(encr, bits, integ, &keys).unwrap();
        let header = Message {
            spi_i: 0x0102030405060708,
            spi_r: 0x1112131415161718,
            minor: 0,
            exchange: ExchangeType::IKE_AUTH,
            flags: Flags::INITIATOR,
            message_id: 1,
            payloads: Vec::new(),
        };
        let iv = b.get("iv").map(|_| h("iv")).unwrap_or_default();
        let expected = h("message");
        let sealed = c.seal(&header, PayloadType::IDI, &plain, None, &mut FixedIv(iv)).unwrap();
        assert_eq!(hex::encode(&sealed), hex::encode(&expected), "{}", b["encr"]);
        assert_eq!(sealed.len() - 28 - 4, c.overhead(plain.len()) + plain.len());

        // Open what Python made.
        let m = Message::parse(&expected).unwrap();
        let Some(PayloadBody::Encrypted(e)) = m.payloads.last().map(|p| &p.body) else { panic!() };
        assert_eq!(e.next_payload, PayloadType::IDI);
        assert_eq!(c.open(&expected, e.data.len()).unwrap(), plain);

        // Every flipped octet fails the ICV.
        for i in 0..expected.len() {
            let mut bad = expected.clone();
            bad[i] ^= 0x40;
            assert_eq!(c.open(&bad, e.data.len()), Err(SkError::Integrity), "{} octet {i}", b["encr"]);
        }
        // Every truncation fails cleanly.
        for n in 0..expected.len() {
            assert!(c.open(&expected[..n], e.data.len()).is_err());
            assert!(c.open(&expected[..n], n.saturating_sub(32)).is_err());
        }
    }
}

#[test]
fn the_gcm_iv_never_repeats() {
    let keys = DirKeys { encr: vec![7; 16], salt: vec![1; 4], integ: Vec::new() };
    let mut c = SkCipher::new(EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE, &keys).unwrap();
    let header = Message {
        spi_i: 1,
        spi_r: 2,
        minor: 0,
        exchange: ExchangeType::INFORMATIONAL,
        flags: Flags::INITIATOR,
        message_id: 2,
        payloads: Vec::new(),
    };
    let a = c.seal(&header, PayloadType::NONE, &[], None, &mut FixedIv(Vec::new())).unwrap();
    let b = c.seal(&header, PayloadType::NONE, &[], None, &mut FixedIv(Vec::new())).unwrap();
    assert_ne!(a[32..40], b[32..40]);
    assert!(SkCipher::new(EncrId::ENCR_AES_GCM_16, 192, IntegId::NONE, &keys).is_err());
}
