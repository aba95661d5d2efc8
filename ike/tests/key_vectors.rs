//! The key schedule against data files in `tests/vectors/`: RFC 4231's HMAC-SHA-2 test cases for the
//! PRF, and prf+ / SKEYSEED / SK_* / KEYMAT vectors computed independently in Python (`gen_keys.py`,
//! with Python's hmac and the `cryptography` package agreeing on every HMAC).

use std::collections::HashMap;

use ike::keys::{child_keys, ike_keys, KeyError, KeyLengths, Prf};
use ike::message::{EncrId, IntegId, PrfId};

type Block = HashMap<String, String>;

fn blocks(file: &str) -> Vec<Block> {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut cur = Block::new();
    for line in text.lines().chain([""]) {
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once(" = ") {
            cur.insert(k.to_owned(), v.to_owned());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

fn h(b: &Block, k: &str) -> Vec<u8> {
    hex::decode(&b[k]).unwrap()
}

fn prf(b: &Block) -> Prf {
    let id = match b["prf"].as_str() {
        "PRF_HMAC_SHA2_256" => PrfId::PRF_HMAC_SHA2_256,
        "PRF_HMAC_SHA2_384" => PrfId::PRF_HMAC_SHA2_384,
        "PRF_HMAC_SHA2_512" => PrfId::PRF_HMAC_SHA2_512,
        other => panic!("{other}"),
    };
    let p = Prf::from_id(id).unwrap();
    assert_eq!(p.id(), id);
    p
}

fn lengths(b: &Block) -> KeyLengths {
    let n = |k: &str| b[k].parse::<u16>().unwrap();
    KeyLengths::new(EncrId(n("encr")), Some(n("key_bits")), IntegId(n("integ"))).unwrap()
}

fn u64_of(b: &Block, k: &str) -> u64 {
    u64::from_be_bytes(h(b, k).try_into().unwrap())
}

#[test]
fn rfc4231_prf() {
    let bs = blocks("rfc4231.txt");
    assert_eq!(bs.len(), 21);
    for b in &bs {
        let want = h(b, "out");
        let got = prf(b).compute(&h(b, "key"), &[&h(b, "data")]);
        assert_eq!(&got[..want.len()], &want[..], "case {} {}", b["case"], b["prf"]);
        // Split input gives the same output.
        let d = h(b, "data");
        let (x, y) = d.split_at(d.len() / 2);
        assert_eq!(prf(b).compute(&h(b, "key"), &[x, y]), got);
    }
}

#[test]
fn key_schedule() {
    let bs = blocks("keys.txt");
    let mut seen = HashMap::<&str, usize>::new();
    for b in &bs {
        let p = prf(b);
        let kind = b["kind"].as_str();
        *seen
            .entry(match kind {
                "prf_plus" => "prf_plus",
                "ike" => "ike",
                "child" => "child",
                "rekey" => "rekey",
                k => panic!("{k}"),
            })
            .or_default() += 1;
        match kind {
            "prf_plus" => {
                let n: usize = b["len"].parse().unwrap();
                assert_eq!(p.prf_plus(&h(b, "key"), &h(b, "seed"), n).unwrap(), h(b, "out"), "{b:?}");
                if n == 255 * p.output_len() {
                    let e = p.prf_plus(&h(b, "key"), &h(b, "seed"), n + 1).unwrap_err();
                    assert_eq!(e, KeyError::TooMuch { wanted: n + 1, max: n });
                }
            }
            "ike" => {
                let (ni, nr) = (h(b, "ni"), h(b, "nr"));
                let s = p.skeyseed(&ni, &nr, &h(b, "g_ir"));
                assert_eq!(s, h(b, "skeyseed"));
                let l = lengths(b);
                let k = ike_keys(p, &s, &ni, &nr, u64_of(b, "spi_i"), u64_of(b, "spi_r"), l).unwrap();
                assert_eq!(k.sk_d, h(b, "sk_d"));
                assert_eq!(k.initiator.integ, h(b, "sk_ai"));
                assert_eq!(k.responder.integ, h(b, "sk_ar"));
                assert_eq!([k.initiator.encr.clone(), k.initiator.salt.clone()].concat(), h(b, "sk_ei"));
                assert_eq!([k.responder.encr.clone(), k.responder.salt.clone()].concat(), h(b, "sk_er"));
                assert_eq!((k.initiator.encr.len(), k.initiator.salt.len()), (l.encr, l.salt));
                assert_eq!(k.sk_pi, h(b, "sk_pi"));
                assert_eq!(k.sk_pr, h(b, "sk_pr"));
            }
            "child" => {
                let g = h(b, "g_ir");
                let g = (!g.is_empty()).then_some(&g[..]);
                let l = lengths(b);
                let k = child_keys(p, &h(b, "sk_d"), g, &h(b, "ni"), &h(b, "nr"), l).unwrap();
                assert_eq!([k.initiator.encr.clone(), k.initiator.salt.clone()].concat(), h(b, "ei"));
                assert_eq!(k.initiator.integ, h(b, "ai"));
                assert_eq!([k.responder.encr.clone(), k.responder.salt.clone()].concat(), h(b, "er"));
                assert_eq!(k.responder.integ, h(b, "ar"));
                if EncrId(b["encr"].parse().unwrap()) == EncrId::ENCR_AES_GCM_16 {
                    assert_eq!(k.initiator.salt.len(), 4);
                }
            }
            _ => {
                let out = p.skeyseed_rekey(&h(b, "sk_d"), &h(b, "g_ir"), &h(b, "ni"), &h(b, "nr"));
                assert_eq!(out, h(b, "out"));
            }
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[test]
fn lengths_and_unsupported() {
    let gcm = KeyLengths::new(EncrId::ENCR_AES_GCM_16, Some(256), IntegId::NONE).unwrap();
    assert_eq!((gcm.encr, gcm.salt, gcm.integ, gcm.total()), (32, 4, 0, 36));
    let cbc = KeyLengths::new(EncrId::ENCR_AES_CBC, Some(128), IntegId::AUTH_HMAC_SHA2_256_128).unwrap();
    assert_eq!((cbc.encr, cbc.salt, cbc.integ), (16, 0, 32));
    assert!(KeyLengths::new(EncrId::ENCR_AES_CBC, None, IntegId::NONE).is_err());
    assert!(KeyLengths::new(EncrId::ENCR_3DES, Some(128), IntegId::NONE).is_err());
    assert!(KeyLengths::new(EncrId::ENCR_AES_CBC, Some(128), IntegId(99)).is_err());
    assert_eq!(Prf::from_id(PrfId::PRF_HMAC_SHA1), Err(KeyError::Unsupported { what: "PRF", id: 2 }));
}
