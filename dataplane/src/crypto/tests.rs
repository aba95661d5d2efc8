//! Known-answer tests from published vectors (`dataplane/tests/vectors/*.txt`), run against every backend,
//! and the quick backend speed comparison.

use super::*;

/// Blocks of `NAME = hex` lines separated by blank lines; `#` lines are comments. Values are hex except
/// `HASH`.
fn blocks(text: &str) -> Vec<Vec<(&str, String)>> {
    let mut out = vec![];
    let mut cur = vec![];
    for line in text.lines().chain([""]) {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let (k, v) = line.split_once(" = ").unwrap_or((line.trim_end_matches(" ="), ""));
        cur.push((k.trim(), v.trim().to_string()));
    }
    out
}

fn field(block: &[(&str, String)], name: &str) -> Vec<u8> {
    let v = &block.iter().find(|(k, _)| *k == name).unwrap_or_else(|| panic!("no {name}")).1;
    hex::decode(v).unwrap()
}

fn gcm_key(backend: Backend, key: &AesKey) -> GcmKey {
    match backend {
        Backend::Ring => GcmKey::Ring(ring_backend::GcmKey::new(key).unwrap()),
        Backend::RustCrypto => GcmKey::RustCrypto(Box::new(rustcrypto::GcmKey::new(key))),
    }
}

impl GcmKey {
    fn seal(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> bool {
        match self {
            GcmKey::Ring(k) => k.seal(nonce, aad, in_out),
            GcmKey::RustCrypto(k) => k.seal(nonce, aad, in_out),
        }
    }
    fn open(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> bool {
        match self {
            GcmKey::Ring(k) => k.open(nonce, aad, in_out),
            GcmKey::RustCrypto(k) => k.open(nonce, aad, in_out),
        }
    }
}

#[test]
fn aes_gcm_known_answers_every_backend() {
    let vectors = blocks(include_str!("../../tests/vectors/aes_gcm.txt"));
    assert_eq!(vectors.len(), 16);
    for backend in Backend::ALL {
        for (n, v) in vectors.iter().enumerate() {
            let key = gcm_key(backend, &AesKey::from_slice(&field(v, "KEY")).unwrap());
            let nonce: [u8; 12] = field(v, "NONCE").try_into().unwrap();
            let (aad, pt, ct, tag) = (field(v, "AAD"), field(v, "PT"), field(v, "CT"), field(v, "TAG"));
            let mut buf = pt.clone();
            buf.extend([0xaa; 16]);
            assert!(key.seal(nonce, &aad, &mut buf), "{} #{n}", backend.name());
            assert_eq!(&buf[..pt.len()], &ct[..], "{} #{n} ciphertext", backend.name());
            assert_eq!(&buf[pt.len()..], &tag[..], "{} #{n} tag", backend.name());
            assert!(key.open(nonce, &aad, &mut buf), "{} #{n} open", backend.name());
            assert_eq!(&buf[..pt.len()], &pt[..]);
            // Any flipped bit of ciphertext, tag or AAD must fail.
            let mut sealed = ct.clone();
            sealed.extend(&tag);
            for i in 0..sealed.len() {
                let mut bad = sealed.clone();
                bad[i] ^= 0x01;
                assert!(!key.open(nonce, &aad, &mut bad), "{} #{n} flipped byte {i}", backend.name());
            }
            if !aad.is_empty() {
                let mut bad_aad = aad.clone();
                bad_aad[0] ^= 0x80;
                assert!(!key.open(nonce, &bad_aad, &mut sealed.clone()));
            }
        }
    }
}

#[test]
fn aes_cbc_known_answers() {
    let vectors = blocks(include_str!("../../tests/vectors/aes_cbc.txt"));
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        let key = rustcrypto::CbcKey::new(&AesKey::from_slice(&field(v, "KEY")).unwrap());
        let iv: [u8; 16] = field(v, "IV").try_into().unwrap();
        let (pt, ct) = (field(v, "PT"), field(v, "CT"));
        let mut buf = pt.clone();
        assert!(key.encrypt(&iv, &mut buf));
        assert_eq!(buf, ct);
        assert!(key.decrypt(&iv, &mut buf));
        assert_eq!(buf, pt);
        assert!(!key.encrypt(&iv, &mut buf[..15]), "partial block refused");
    }
}

#[test]
fn hmac_known_answers_every_backend() {
    let vectors = blocks(include_str!("../../tests/vectors/hmac.txt"));
    assert_eq!(vectors.len(), 13);
    for backend in Backend::ALL {
        for v in &vectors {
            let hash = match v.iter().find(|(k, _)| *k == "HASH").map(|(_, h)| h.as_str()) {
                Some("SHA1") => HashAlg::Sha1,
                Some("SHA256") => HashAlg::Sha256,
                other => panic!("unknown hash {other:?}"),
            };
            let (key, data, mac) = (field(v, "KEY"), field(v, "DATA"), field(v, "MAC"));
            let key = match backend {
                Backend::Ring => HmacKey::Ring(ring_backend::HmacKey::new(hash, &key)),
                Backend::RustCrypto => HmacKey::RustCrypto(rustcrypto::HmacKey::new(hash, &key).unwrap()),
            };
            // Split the data to exercise the two-part input (data, ESN tail).
            let (a, b) = data.split_at(data.len() / 2);
            assert_eq!(&key.sign(a, b).0[..mac.len()], &mac[..], "{} {hash:?}", backend.name());
        }
    }
}

#[test]
fn cbc_ivs_are_distinct_and_not_the_sequence_number() {
    let keys = SaKeys::new(
        &CipherConfig::AesCbc { key: AesKey::Aes128([7; 16]), integrity: Integrity::HmacSha1_96([1; 20]) },
        Backend::Ring,
        [9; 16],
    )
    .unwrap();
    let mut seen = std::collections::HashSet::new();
    for seq in 1..1000u64 {
        let mut iv = [0u8; 16];
        keys.write_iv(seq, &mut iv);
        assert_ne!(&iv[..8], &seq.to_be_bytes());
        assert!(seen.insert(iv));
    }
}

#[test]
fn short_or_misaligned_packets_are_refused_not_panicked() {
    for cipher in [
        CipherConfig::AesGcm { key: AesKey::Aes128([1; 16]), salt: [2; 4] },
        CipherConfig::AesCbc { key: AesKey::Aes256([1; 32]), integrity: Integrity::HmacSha256_128([3; 32]) },
    ] {
        for backend in Backend::ALL {
            let keys = SaKeys::new(&cipher, backend, [0; 16]).unwrap();
            for len in 0..80 {
                let mut buf = vec![0u8; len];
                let _ = keys.seal(&mut buf, None);
                let mut buf = vec![0u8; len];
                assert_ne!(keys.open(&mut buf, Some(1)), OpStatus::Ok, "zeros never authenticate");
            }
        }
    }
}

/// Quick relative speed of the backends' AES-128-GCM seal through [`SaKeys`] (the per-packet path).
/// Run: `cargo test --release -p dataplane --lib backend_speed -- --ignored --nocapture`.
#[test]
#[ignore]
#[allow(clippy::print_stdout)]
fn backend_speed() {
    use std::time::Instant;
    let cipher = CipherConfig::AesGcm { key: AesKey::Aes128([5; 16]), salt: [6; 4] };
    for size in [64usize, 1400] {
        for backend in Backend::ALL {
            let keys = SaKeys::new(&cipher, backend, [0; 16]).unwrap();
            let text = (size + 2).div_ceil(4) * 4;
            let mut buf = vec![0u8; HEADER_LEN + 8 + text + 16];
            let iters = if size == 64 { 2_000_000 } else { 300_000 };
            let t = Instant::now();
            for seq in 0..iters {
                buf[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&(seq as u64).to_be_bytes());
                assert_eq!(keys.seal(std::hint::black_box(&mut buf), None), OpStatus::Ok);
            }
            let s = t.elapsed().as_secs_f64();
            println!(
                "{:>10} {size:>5} B: {:6.2} Mops/s {:6.2} Gbit/s",
                backend.name(),
                iters as f64 / s / 1e6,
                iters as f64 * size as f64 * 8.0 / s / 1e9
            );
        }
    }
}
