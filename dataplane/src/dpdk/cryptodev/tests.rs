//! The cryptodev engine on `crypto_aesni_gcm` (intel-ipsec-mb) vdevs of the test process's EAL, judged
//! by Scapy's ESP bytes and by the software engine (`ring`, BoringSSL's code: an independent AES-GCM).

use std::ffi::CString;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};

use super::*;
use crate::crypto::{Backend, CipherConfig, CryptoOp, OpKind, OpStatus, SoftEngine};
use crate::dpdk::tests::eal;
use crate::dpdk::Mempool;
use crate::drop::DropReason;
use crate::esp::tests::{pair, scapy_cases, IN, INNER, OURS_CHECKED_BY_SCAPY, OUT};
use crate::esp::{Decrypted, EspProcessor, InboundReq, OutboundReq};
use crate::sa::{SaDb, SaRtTable};

/// Creates vdev `name` (a `crypto_aesni_gcm` instance) with `qps` queue pairs and starts it.
fn start_vdev(name: &str, qps: u16) -> CryptoDev {
    eal();
    let (cname, args) = (CString::new(name).unwrap(), CString::new(format!("max_nb_queue_pairs={qps}")).unwrap());
    // SAFETY: valid C strings; the EAL is started.
    let ret = unsafe { dpdk_sys::rte_vdev_init(cname.as_ptr(), args.as_ptr()) };
    assert_eq!(ret, 0, "rte_vdev_init({name}): intel-ipsec-mb's PMD loads (Debian's dpdk package)");
    CryptoDev::open(name, CryptoDevSetup { queue_pairs: qps, descriptors: 256, sessions: 256 }).expect("device starts")
}

/// The device most tests share; each engine gets a queue pair of its own.
fn engine(max_burst: usize) -> (CryptodevEngine, Arc<CryptodevCounters>) {
    static DEV: OnceLock<Arc<CryptoDev>> = OnceLock::new();
    static NEXT_QP: AtomicU16 = AtomicU16::new(0);
    let dev = DEV.get_or_init(|| Arc::new(start_vdev("crypto_aesni_gcm_shared", 32))).clone();
    let counters = Arc::new(CryptodevCounters::default());
    let qp = NEXT_QP.fetch_add(1, Ordering::Relaxed);
    (CryptodevEngine::new(dev, qp, max_burst, counters.clone()).expect("a free queue pair"), counters)
}

fn pool(name: &str) -> Mempool {
    eal();
    Mempool::new(name, 256, 0, None).expect("pool")
}

fn encrypt<E: CryptoEngine<Mbuf>>(
    e: &mut E,
    pool: &Mempool,
    db: &SaDb,
    rts: &mut SaRtTable,
    payloads: &[Vec<u8>],
) -> Vec<Vec<u8>> {
    let mut pkts: Vec<Mbuf> = payloads.iter().map(|p| pool.alloc_from(p).unwrap()).collect();
    let reqs = vec![Some(OutboundReq { sa: OUT, next_header: 47 }); pkts.len()];
    let mut v = vec![Err(DropReason::EspMalformed); pkts.len()];
    EspProcessor::new(32).encrypt(e, db, rts, &mut pkts, &reqs, &mut v);
    assert!(v.iter().all(Result::is_ok), "{v:?}");
    pkts.iter().map(|p| p.data().to_vec()).collect()
}

fn decrypt<E: CryptoEngine<Mbuf>>(
    e: &mut E,
    pool: &Mempool,
    db: &SaDb,
    rts: &mut SaRtTable,
    esps: &[Vec<u8>],
) -> Vec<(Result<Decrypted, DropReason>, Vec<u8>)> {
    let mut pkts: Vec<Mbuf> = esps.iter().map(|p| pool.alloc_from(p).unwrap()).collect();
    let mut v = vec![Err(DropReason::EspMalformed); pkts.len()];
    EspProcessor::new(32).decrypt(e, db, rts, &mut pkts, &vec![InboundReq::Spi; esps.len()], &mut v);
    v.into_iter().zip(pkts.iter().map(|p| p.data().to_vec())).collect()
}

#[test]
fn opens_scapy_packets_and_seals_the_bytes_scapy_checked() {
    let pool = pool("cd_scapy");
    let (mut e, counters) = engine(32);
    let inner = hex::decode(INNER).unwrap();
    for ((name, cipher, esn_hi, seq, scapy), ours) in scapy_cases().into_iter().zip(OURS_CHECKED_BY_SCAPY) {
        let gcm = matches!(cipher, CipherConfig::AesGcm { .. });
        let db = pair(&cipher, esn_hi.is_some(), Backend::Ring);
        let before = (counters.device_ops.get(), counters.software_ops.get());
        let mut rts = SaRtTable::default();
        if let Some(hi) = esn_hi {
            assert!(rts.entry(&db, IN).unwrap().accept(u64::from(hi) << 32 | 1));
        }
        let got = decrypt(&mut e, &pool, &db, &mut rts, &[hex::decode(scapy).unwrap()]);
        assert_eq!(got[0], (Ok(Decrypted { sa: IN, next_header: 47 }), inner.clone()), "{name}");
        let full_seq = u64::from(esn_hi.unwrap_or(0)) << 32 | u64::from(seq);
        rts.entry(&db, OUT).unwrap().set_seq(full_seq - 1);
        let sealed = encrypt(&mut e, &pool, &db, &mut rts, std::slice::from_ref(&inner));
        assert_eq!(hex::encode(&sealed[0]), ours, "{name}");
        // GCM ran on the device; CBC + HMAC fell back to software.
        let after = (counters.device_ops.get(), counters.software_ops.get());
        let want = if gcm { (before.0 + 2, before.1) } else { (before.0, before.1 + 2) };
        assert_eq!(after, want, "{name}");
    }
    drop(e);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn round_trips_with_the_software_engine_both_ways() {
    let pool = pool("cd_round");
    let (mut e, counters) = engine(32);
    let gcm: Vec<CipherConfig> =
        scapy_cases().into_iter().map(|c| c.1).filter(|c| matches!(c, CipherConfig::AesGcm { .. })).collect();
    for cipher in &gcm {
        for esn in [false, true] {
            let db = pair(cipher, esn, Backend::Ring);
            let payloads: Vec<Vec<u8>> = (0..70).map(|n| (0..n).map(|i| (i * 7 + n) as u8).collect()).collect();
            // Seal on the device with the sequence numbers near the ESN boundary, open in software.
            let start = if esn { (1u64 << 32) - 30 } else { 0 };
            let mut dev_rts = SaRtTable::default();
            dev_rts.entry(&db, OUT).unwrap().set_seq(start);
            let mut soft_rts = SaRtTable::default();
            soft_rts.entry(&db, OUT).unwrap().set_seq(start);
            let sealed = encrypt(&mut e, &pool, &db, &mut dev_rts, &payloads);
            let soft_sealed = encrypt(&mut SoftEngine, &pool, &db, &mut soft_rts, &payloads);
            assert_eq!(sealed, soft_sealed, "same bytes as the software engine, esn {esn}");
            let mut rts = SaRtTable::default();
            if esn {
                assert!(rts.entry(&db, IN).unwrap().accept(start));
            }
            for ((v, data), p) in decrypt(&mut SoftEngine, &pool, &db, &mut rts, &sealed).into_iter().zip(&payloads) {
                assert_eq!((v, &data), (Ok(Decrypted { sa: IN, next_header: 47 }), p));
            }
            // The reverse: sealed in software, opened on the device.
            let mut rts = SaRtTable::default();
            if esn {
                assert!(rts.entry(&db, IN).unwrap().accept(start));
            }
            for ((v, data), p) in decrypt(&mut e, &pool, &db, &mut rts, &soft_sealed).into_iter().zip(&payloads) {
                assert_eq!((v, &data), (Ok(Decrypted { sa: IN, next_header: 47 }), p));
            }
        }
    }
    assert_eq!(counters.software_ops.get(), 0);
    assert_eq!(counters.device_ops.get(), 2 * 2 * 2 * 70);
    drop(e);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn a_flipped_byte_or_wrong_esn_high_bits_is_auth_failed() {
    let pool = pool("cd_auth");
    let (mut e, _) = engine(8);
    let cipher = scapy_cases()[1].1.clone(); // AES-256-GCM
    let db = pair(&cipher, true, Backend::Ring);
    let mut rts = SaRtTable::default();
    rts.entry(&db, OUT).unwrap().set_seq(3 << 32 | 8);
    let esp = encrypt(&mut SoftEngine, &pool, &db, &mut rts, &[b"under the ICV".to_vec()]).remove(0);
    let run = |e: &mut CryptodevEngine, bytes: &[u8], esn_hi: u32| {
        let mut pkts = vec![pool.alloc_from(bytes).unwrap()];
        let mut ops =
            [CryptoOp { pkt: 0, sa: IN, kind: OpKind::Open, esn_hi: Some(esn_hi), status: OpStatus::Pending }];
        e.process(&db, &mut pkts, &mut ops);
        ops[0].status
    };
    assert_eq!(run(&mut e, &esp, 3), OpStatus::Ok);
    assert_eq!(run(&mut e, &esp, 2), OpStatus::AuthFailed, "RFC 4106 §5: the high bits are in the AAD");
    for i in 0..esp.len() {
        let mut bad = esp.clone();
        bad[i] ^= 0x20;
        assert_eq!(run(&mut e, &bad, 3), OpStatus::AuthFailed, "byte {i} flipped");
    }
    // Through the ESP layer: dropped as an authentication failure, window unmoved.
    let mut bad = esp.clone();
    *bad.last_mut().unwrap() ^= 1;
    let mut rts = SaRtTable::default();
    assert!(rts.entry(&db, IN).unwrap().accept(3 << 32 | 1));
    assert_eq!(decrypt(&mut e, &pool, &db, &mut rts, &[bad])[0].0, Err(DropReason::EspAuthFailed));
    assert_eq!(rts.get(IN).unwrap().seq(), 3 << 32 | 1);
    assert_eq!(decrypt(&mut e, &pool, &db, &mut rts, &[esp])[0].0, Ok(Decrypted { sa: IN, next_header: 47 }));
}

#[test]
fn short_or_unaligned_text_is_bad_length_and_unknown_sa_is_no_sa() {
    let pool = pool("cd_len");
    let (mut e, _) = engine(8);
    let db = pair(&scapy_cases()[0].1, false, Backend::Ring);
    // Header 8 + IV 8 + ICV 16 = 32: a text of 0, 1, 2, 3 or 5 bytes is not a whole ESP packet.
    for len in [0, 31, 32, 33, 34, 35, 37] {
        let mut pkts = vec![pool.alloc_from(&vec![0u8; len]).unwrap()];
        let mut ops = [
            CryptoOp { pkt: 0, sa: OUT, kind: OpKind::Seal, esn_hi: None, status: OpStatus::Pending },
            CryptoOp { pkt: 0, sa: SaIndex(9), kind: OpKind::Seal, esn_hi: None, status: OpStatus::Pending },
            CryptoOp { pkt: 3, sa: OUT, kind: OpKind::Seal, esn_hi: None, status: OpStatus::Pending },
        ];
        e.process(&db, &mut pkts, &mut ops);
        let statuses: Vec<OpStatus> = ops.iter().map(|o| o.status).collect();
        assert_eq!(statuses, [OpStatus::BadLength, OpStatus::NoSa, OpStatus::NoSa], "length {len}");
    }
}

#[test]
fn batches_larger_than_the_engine_run_in_several_enqueues() {
    let pool = pool("cd_chunks");
    let (mut e, counters) = engine(3);
    let db = pair(&scapy_cases()[0].1, false, Backend::Ring);
    let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40 + usize::from(i)]).collect();
    let sealed = encrypt(&mut e, &pool, &db, &mut SaRtTable::default(), &payloads);
    let back = decrypt(&mut SoftEngine, &pool, &db, &mut SaRtTable::default(), &sealed);
    for ((v, data), p) in back.into_iter().zip(&payloads) {
        assert_eq!((v.map(|d| d.next_header), &data), (Ok(47), p));
    }
    assert_eq!(counters.device_ops.get(), 10);
}

#[test]
fn new_keys_at_an_index_get_a_new_session_and_old_sessions_are_freed() {
    let pool = pool("cd_rekey");
    let dev = Arc::new(start_vdev("crypto_aesni_gcm_rekey", 1));
    let counters = Arc::new(CryptodevCounters::default());
    let mut e = CryptodevEngine::new(dev.clone(), 0, 8, counters.clone()).unwrap();
    let cases = scapy_cases();
    let (old, new) = (&cases[0].1, &cases[1].1);
    let db1 = pair(old, false, Backend::Ring);
    let payload = vec![b"rekeyed".to_vec()];
    let mut rts = SaRtTable::default();
    let s1 = encrypt(&mut e, &pool, &db1, &mut rts, &payload);
    assert_eq!(dev.sessions_in_use(), 1, "one seal session");
    // The control plane republishes index OUT with new keys (a rekey): the old session must not be used.
    let db2 = pair(new, false, Backend::Ring);
    let mut rts2 = SaRtTable::default();
    let s2 = encrypt(&mut e, &pool, &db2, &mut rts2, &payload);
    assert_ne!(s1, s2);
    let opened = decrypt(&mut SoftEngine, &pool, &db2, &mut SaRtTable::default(), &s2);
    assert_eq!(opened[0].1, payload[0], "sealed with the new key");
    assert_eq!(dev.sessions_in_use(), 1, "the old session was freed when the new one was made");
    assert_eq!(counters.sessions_created.get(), 2);
    let _ = decrypt(&mut e, &pool, &db2, &mut SaRtTable::default(), &s2);
    assert_eq!(dev.sessions_in_use(), 2, "an open session beside the seal session");
    // Both SAs leave the table: a few bursts later the sweep has freed their sessions.
    let empty = SaDb::builder().build().unwrap();
    for _ in 0..4 {
        e.process(&empty, &mut [], &mut []);
    }
    assert_eq!(dev.sessions_in_use(), 0);
    let _ = encrypt(&mut e, &pool, &db1, &mut SaRtTable::default(), &payload);
    assert_eq!(dev.sessions_in_use(), 1);
    drop(e);
    assert_eq!(dev.sessions_in_use(), 0, "dropping the engine frees its sessions");
    assert_eq!(pool.in_use(), 0);
}
