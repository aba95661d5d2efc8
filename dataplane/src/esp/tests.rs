use std::sync::Arc;

use super::*;
use crate::crypto::{AesKey, Backend, CipherConfig, Integrity, OpStatus, SoftEngine};
use crate::pkt::HeapPkt;
use crate::sa::tests::config;
use crate::sa::{Limits, Sa, SaEventKind};

// Keys of the Scapy vectors below: K16 = 10 11 .. 1f, K32 = 20 21 .. 3f, salt a1b2c3d4, HMAC-SHA-1 key
// 40 41 .. 53, HMAC-SHA-256 key 60 61 .. 7f; SPI 0x1000abcd.
pub(crate) const SPI: u32 = 0x1000_abcd;
pub(crate) const INNER: &str = "000008004500002100010000400122b8ac100001ac1000020800af1900070001646d76706e";

fn seq_bytes(start: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| start + i as u8).collect()
}

/// The Scapy cases: name, cipher, ESN high bits, sequence number low bits, Scapy's ESP bytes.
///
/// Made with Scapy 2.8.0 (transport mode, payload = `GRE()/IP(src='172.16.0.1', dst='172.16.0.2')/
/// ICMP(id=7, seq=1)/b'dmvpn'`, i.e. `INNER`):
/// ```text
/// sa = SecurityAssociation(ESP, spi=0x1000abcd, crypt_algo='AES-GCM', crypt_key=K16+SALT,
///                          auth_algo='NULL')                                         # gcm128, seq 5
/// sa = SecurityAssociation(ESP, spi=0x1000abcd, crypt_algo='AES-GCM', crypt_key=K32+SALT,
///                          auth_algo='NULL', esn_en=True, esn=3)                     # gcm256_esn, seq 9
/// sa = SecurityAssociation(ESP, spi=0x1000abcd, crypt_algo='AES-CBC', crypt_key=K16,
///                          auth_algo='HMAC-SHA1-96', auth_key=H20)                   # cbc128_sha1, seq 5
/// sa = SecurityAssociation(ESP, spi=0x1000abcd, crypt_algo='AES-CBC', crypt_key=K32,
///                          auth_algo='SHA2-256-128', auth_key=H32, esn_en=True, esn=3)  # seq 9
/// bytes(sa.encrypt(IP(src='192.0.2.1', dst='198.51.100.1')/inner, seq_num=seq)[ESP]).hex()
/// ```
pub(crate) fn scapy_cases() -> Vec<(&'static str, CipherConfig, Option<u32>, u32, &'static str)> {
    let k16 = AesKey::from_slice(&seq_bytes(0x10, 16)).unwrap();
    let k32 = AesKey::from_slice(&seq_bytes(0x20, 32)).unwrap();
    let salt = [0xa1, 0xb2, 0xc3, 0xd4];
    let h20: [u8; 20] = seq_bytes(0x40, 20).try_into().unwrap();
    let h32: [u8; 32] = seq_bytes(0x60, 32).try_into().unwrap();
    vec![
        (
            "gcm128",
            CipherConfig::AesGcm { key: k16.clone(), salt },
            None,
            5,
            "1000abcd0000000503765d0aa21059d6b0c1c945fd8dec2c0da445e5cf0276110fe55b3c6c27b957e7e7be2469e9948dcd13f87eeb4a97165d6aa38da6e3b6e1a63045c55aa2adb6",
        ),
        (
            "gcm256_esn",
            CipherConfig::AesGcm { key: k32.clone(), salt },
            Some(3),
            9,
            "1000abcd0000000999bacb6088ca7a81e6406d906329cedabd082f457edc70e0043501e8d5f5297ebe2182f4a6bd023f796d9fc1412274da77d9096537e3069f5458a024e3a56dec",
        ),
        (
            "cbc128_sha1",
            CipherConfig::AesCbc { key: k16, integrity: Integrity::HmacSha1_96(h20) },
            None,
            5,
            "1000abcd00000005e6056c93ce198eefc961c35cbdb1f6dad458a79214622bf1867c96467eda03b51dfae669104ed8c05bbf8a460af355ee75a1f5a64b802bffe8cf0a0dfcb1ce592533e74e1e043e39185fc744",
        ),
        (
            "cbc256_sha256_esn",
            CipherConfig::AesCbc { key: k32, integrity: Integrity::HmacSha256_128(h32) },
            Some(3),
            9,
            "1000abcd00000009ee9b2c5fd583aa7252c49ebd6623751d22ccc7c901d679445bf8d5ec8a7536820c83b94e2996afcf903081a78dc274bd31e56640ab628b91ce7311d8ea9181baa7df7ccda62d7af4575b1d29aaa62a0f",
        ),
    ]
}

/// Index 0: inbound SA, index 1: outbound SA, same keys and SPI.
pub(crate) fn pair(cipher: &CipherConfig, esn: bool, backend: Backend) -> SaDb {
    let mut b = SaDb::builder();
    for (i, dir) in [Direction::Inbound, Direction::Outbound].into_iter().enumerate() {
        let mut cfg = config(SPI, dir, cipher.clone());
        cfg.esn = esn;
        b.insert(SaIndex(i as u32), Arc::new(Sa::new(cfg, backend, [0x55; 16]).unwrap())).unwrap();
    }
    b.build().unwrap()
}

pub(crate) const IN: SaIndex = SaIndex(0);
pub(crate) const OUT: SaIndex = SaIndex(1);

fn decrypt_one(p: &mut EspProcessor, db: &SaDb, rts: &mut SaRtTable, bytes: &[u8]) -> (InboundVerdict, Vec<u8>) {
    let mut pkts = [HeapPkt::from_bytes(bytes).unwrap()];
    let mut v = [Err(DropReason::EspMalformed)];
    p.decrypt(&mut SoftEngine, db, rts, &mut pkts, &[InboundReq::Spi], &mut v);
    (v[0], pkts[0].data().to_vec())
}

fn encrypt_one(p: &mut EspProcessor, db: &SaDb, rts: &mut SaRtTable, payload: &[u8]) -> (OutboundVerdict, Vec<u8>) {
    let mut pkts = [HeapPkt::from_bytes(payload).unwrap()];
    let mut v = [Err(DropReason::EspMalformed)];
    p.encrypt(&mut SoftEngine, db, rts, &mut pkts, &[Some(OutboundReq { sa: OUT, next_header: 47 })], &mut v);
    (v[0], pkts[0].data().to_vec())
}

#[test]
fn decrypts_scapy_packets_every_backend() {
    let inner = hex::decode(INNER).unwrap();
    for backend in Backend::ALL {
        for (name, cipher, esn_hi, seq, esp) in scapy_cases() {
            let db = pair(&cipher, esn_hi.is_some(), backend);
            let mut rts = SaRtTable::default();
            if let Some(hi) = esn_hi {
                // The receiver has already seen (hi, 1), so it infers the high bits as `hi`.
                assert!(rts.entry(&db, IN).unwrap().accept(u64::from(hi) << 32 | 1));
            }
            let mut p = EspProcessor::new(32);
            let (v, data) = decrypt_one(&mut p, &db, &mut rts, &hex::decode(esp).unwrap());
            assert_eq!(v, Ok(Decrypted { sa: IN, next_header: 47 }), "{name} {}", backend.name());
            assert_eq!(data, inner, "{name}");
            let rt = rts.get(IN).unwrap();
            assert_eq!(rt.seq(), u64::from(esn_hi.unwrap_or(0)) << 32 | u64::from(seq));
            assert_eq!(rt.bytes(), inner.len() as u64);
            let (v, _) = decrypt_one(&mut p, &db, &mut rts, &hex::decode(esp).unwrap());
            assert_eq!(v, Err(DropReason::EspReplay), "{name} replayed");
        }
    }
}

/// Our output for the Scapy cases (same keys, payload and sequence numbers; CBC IV seed 55 55 .. 55).
/// Checked once by hand: each line fed to Scapy 2.8.0's `SecurityAssociation(...).decrypt()` with the
/// parameters above gave back `INNER` with next header 47, and Scapy rejected each with its last ICV byte
/// flipped (script: decrypt `IP(src='192.0.2.1', dst='198.51.100.1', proto=50)/Raw(esp)`).
pub(crate) const OURS_CHECKED_BY_SCAPY: [&str; 4] = [
    "1000abcd000000050000000000000005a8b0fa536b48be035f1018d786c86ecf0d0b0a08e40f5e876318295d9fcc10a445b3bb10ad0ad289bb519cb1ce39824b1587933900b28cc9",
    "1000abcd00000009000000030000000966e06a70978319885d3532ba5b62b376951a58ee8f9bd35d3df68a29426380e13e6b2a661ae8b2e4ad42f085980f4582626da29b589a9996",
    "1000abcd00000005ca4f8db6e14b0fdde0974dd1661bfedebf61dc73d6711a58ca71de954227f8697208d6b1d6e48e51db2d95d1e848dc0e8389adabd04b4ebcdfef30977a0e4d4bebbfc2df1706b6cbf802d059",
    "1000abcd000000092da2ebe61b87b88eb324da0cee5b7c961f8fd13b525d161e8e251ddc75cef4f176f60d53c76869745ec2eae70588ad17e3d930ab6ab248e1f89bbff9bbf1e9a579f6f572ddfa40ccb49841846cf5791c",
];

#[test]
fn encrypts_what_scapy_decrypted_every_backend() {
    let inner = hex::decode(INNER).unwrap();
    for backend in Backend::ALL {
        for ((name, cipher, esn_hi, seq, _), ours) in scapy_cases().into_iter().zip(OURS_CHECKED_BY_SCAPY) {
            let db = pair(&cipher, esn_hi.is_some(), backend);
            let mut rts = SaRtTable::default();
            rts.entry(&db, OUT).unwrap().set_seq((u64::from(esn_hi.unwrap_or(0)) << 32 | u64::from(seq)) - 1);
            let (v, data) = encrypt_one(&mut EspProcessor::new(4), &db, &mut rts, &inner);
            assert_eq!(v, Ok(()), "{name}");
            assert_eq!(hex::encode(data), ours, "{name} {}", backend.name());
        }
    }
}

fn suites() -> Vec<CipherConfig> {
    scapy_cases().into_iter().map(|c| c.1).collect()
}

#[test]
fn round_trip_every_size_suite_backend_and_esn() {
    for backend in Backend::ALL {
        for cipher in suites() {
            for esn in [false, true] {
                let db = pair(&cipher, esn, backend);
                let mut rts = SaRtTable::default();
                let mut p = EspProcessor::new(8);
                for len in 0..70 {
                    let payload: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
                    let (v, esp) = encrypt_one(&mut p, &db, &mut rts, &payload);
                    assert_eq!(v, Ok(()));
                    let text = esp.len() - HEADER_LEN - cipher.iv_len() - cipher.icv_len();
                    assert_eq!(text % cipher.align(), 0, "RFC 4303 §2.4 alignment");
                    assert!(text < len + 2 + cipher.align(), "no more padding than needed");
                    let (v, back) = decrypt_one(&mut p, &db, &mut rts, &esp);
                    assert_eq!(v, Ok(Decrypted { sa: IN, next_header: 47 }));
                    assert_eq!(back, payload);
                }
            }
        }
    }
}

/// One sealed GCM packet and its db.
fn gcm_packet() -> (SaDb, Vec<u8>) {
    let db = pair(&suites()[0], false, Backend::Ring);
    let (v, esp) = encrypt_one(&mut EspProcessor::new(1), &db, &mut SaRtTable::default(), b"hello, gre");
    assert_eq!(v, Ok(()));
    (db, esp)
}

#[test]
fn every_flipped_bit_is_dropped_and_the_window_does_not_move() {
    for cipher in suites() {
        let db = pair(&cipher, false, Backend::RustCrypto);
        let mut p = EspProcessor::new(4);
        let (_, esp) = encrypt_one(&mut p, &db, &mut SaRtTable::default(), b"some payload");
        let mut rts = SaRtTable::default();
        for i in 0..esp.len() {
            let mut bad = esp.clone();
            bad[i] ^= 0x04;
            let (v, _) = decrypt_one(&mut p, &db, &mut rts, &bad);
            let want = if i < 4 { DropReason::EspUnknownSpi } else { DropReason::EspAuthFailed };
            assert_eq!(v, Err(want), "byte {i}");
        }
        let c = db.get(IN).unwrap().counters();
        assert_eq!((c.auth_failures(), c.packets()), (esp.len() as u64 - 4, 0), "every bad ICV counted on the SA");
        assert_eq!(rts.get(IN).map_or(0, |rt| rt.seq()), 0, "failed packets did not move the window");
        assert_eq!(decrypt_one(&mut p, &db, &mut rts, &esp).0.map(|d| d.next_header), Ok(47));
    }
}

#[test]
fn truncation_at_every_length_is_dropped() {
    for cipher in suites() {
        let db = pair(&cipher, true, Backend::Ring);
        let mut p = EspProcessor::new(4);
        let (_, esp) = encrypt_one(&mut p, &db, &mut SaRtTable::default(), b"0123456789abcdefXYZ");
        let mut rts = SaRtTable::default();
        for n in 0..esp.len() {
            let (v, _) = decrypt_one(&mut p, &db, &mut rts, &esp[..n]);
            let reason = v.unwrap_err();
            assert!(
                matches!(reason, DropReason::EspMalformed | DropReason::EspAuthFailed | DropReason::EspUnknownSpi),
                "length {n}: {reason:?}"
            );
            if n < 4 {
                assert_eq!(reason, DropReason::EspMalformed);
            }
        }
        assert!(decrypt_one(&mut p, &db, &mut rts, &esp).0.is_ok());
    }
}

#[test]
fn unknown_spi_and_wrong_hint() {
    let (db, mut esp) = gcm_packet();
    let mut p = EspProcessor::new(2);
    let mut rts = SaRtTable::default();
    esp[..4].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    assert_eq!(decrypt_one(&mut p, &db, &mut rts, &esp).0, Err(DropReason::EspUnknownSpi));
    let (_, esp) = gcm_packet();
    for hint in [OUT, SaIndex(7)] {
        let mut pkts = [HeapPkt::from_bytes(&esp).unwrap()];
        let mut v = [Ok(Decrypted { sa: IN, next_header: 0 })];
        p.decrypt(&mut SoftEngine, &db, &mut rts, &mut pkts, &[InboundReq::Sa(hint)], &mut v);
        assert_eq!(v[0], Err(DropReason::EspUnknownSpi), "hint {hint:?}");
    }
}

#[test]
fn duplicate_inside_one_burst_is_a_replay() {
    let (db, esp) = gcm_packet();
    let mut pkts: Vec<_> = (0..3).map(|_| HeapPkt::from_bytes(&esp).unwrap()).collect();
    let mut v = [Err(DropReason::EspMalformed); 3];
    let mut rts = SaRtTable::default();
    EspProcessor::new(2).decrypt(&mut SoftEngine, &db, &mut rts, &mut pkts, &[InboundReq::Spi; 3], &mut v);
    assert!(v[0].is_ok());
    assert_eq!(v[1..], [Err(DropReason::EspReplay); 2]);
    assert_eq!(rts.get(IN).unwrap().packets(), 1);
    let c = db.get(IN).unwrap().counters();
    assert_eq!((c.packets(), c.replay_drops(), c.auth_failures()), (1, 2, 0), "show crypto ipsec sa's counters");
}

#[test]
fn bad_padding_under_a_valid_icv_is_a_bad_trailer() {
    let (db, esp) = gcm_packet();
    let keys = db.get(IN).unwrap().keys();
    let mut plain = esp.clone();
    // Decrypt, break the padding (payload 10 bytes: pad 0 from 12 -> make pad length 1 with byte 9).
    assert_eq!(keys.open(&mut plain, None), OpStatus::Ok);
    let n = plain.len() - 16;
    plain[n - 2] = 1; // pad length 1
    plain[n - 3] = 9; // the pad byte should be 1
    assert_eq!(keys.seal(&mut plain, None), OpStatus::Ok);
    let (v, _) = decrypt_one(&mut EspProcessor::new(1), &db, &mut SaRtTable::default(), &plain);
    assert_eq!(v, Err(DropReason::EspBadTrailer));
}

#[test]
fn exhausted_or_hard_expired_sa_drops_with_sa_expired() {
    let mut b = SaDb::builder();
    let mut cfg = config(SPI, Direction::Outbound, suites()[0].clone());
    cfg.hard = Limits { bytes: None, packets: Some(2) };
    b.insert(OUT, Arc::new(Sa::new(cfg, Backend::Ring, [0; 16]).unwrap())).unwrap();
    let db = b.build().unwrap();
    let mut rts = SaRtTable::default();
    let mut p = EspProcessor::new(4);
    assert_eq!(encrypt_one(&mut p, &db, &mut rts, b"a").0, Ok(()));
    assert_eq!(encrypt_one(&mut p, &db, &mut rts, b"b").0, Ok(()));
    assert_eq!(encrypt_one(&mut p, &db, &mut rts, b"c").0, Err(DropReason::EspSaExpired));
    assert_eq!(rts.drain_events().map(|e| e.kind).collect::<Vec<_>>(), [SaEventKind::Used, SaEventKind::HardPackets]);

    let db = pair(&suites()[0], false, Backend::Ring);
    let mut rts = SaRtTable::default();
    rts.entry(&db, OUT).unwrap().set_seq(u64::from(u32::MAX) - 1);
    let (v, esp) = encrypt_one(&mut p, &db, &mut rts, b"last");
    assert_eq!(v, Ok(()));
    assert_eq!(&esp[4..8], &[0xff; 4], "2^32-1 is the last number sent");
    assert_eq!(encrypt_one(&mut p, &db, &mut rts, b"x").0, Err(DropReason::EspSaExpired));
}

#[test]
fn no_room_for_headers_or_trailer_is_no_buffer_space() {
    let db = pair(&suites()[2], false, Backend::Ring);
    let mut rts = SaRtTable::default();
    let mut pkts = [HeapPkt::from_bytes(&[0; 2040]).unwrap()];
    let mut v = [Ok(())];
    EspProcessor::new(1).encrypt(
        &mut SoftEngine,
        &db,
        &mut rts,
        &mut pkts,
        &[Some(OutboundReq { sa: OUT, next_header: 47 })],
        &mut v,
    );
    assert_eq!(v[0], Err(DropReason::NoBufferSpace));
    assert_eq!(rts.get(OUT).unwrap().seq(), 0, "no sequence number spent on a packet that did not go");
    assert_eq!(pkts[0].len(), 2040, "packet untouched");
}

#[test]
fn bursts_larger_than_the_scratch_run_in_chunks() {
    let db = pair(&suites()[1], true, Backend::RustCrypto);
    let mut rts = SaRtTable::default();
    let mut p = EspProcessor::new(3);
    let mut pkts: Vec<_> = (0..10u8).map(|i| HeapPkt::from_bytes(&[i; 33]).unwrap()).collect();
    let reqs = [Some(OutboundReq { sa: OUT, next_header: 4 }); 10];
    let mut v = [Err(DropReason::EspMalformed); 10];
    p.encrypt(&mut SoftEngine, &db, &mut rts, &mut pkts, &reqs, &mut v);
    assert!(v.iter().all(Result::is_ok));
    let mut iv = [Err(DropReason::EspMalformed); 10];
    p.decrypt(&mut SoftEngine, &db, &mut rts, &mut pkts, &[InboundReq::Spi; 10], &mut iv);
    for (i, (pkt, v)) in pkts.iter().zip(iv).enumerate() {
        assert_eq!(v, Ok(Decrypted { sa: IN, next_header: 4 }));
        assert_eq!(pkt.data(), &[i as u8; 33]);
    }
}
