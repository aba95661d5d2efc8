//! Fuzzes the inbound ESP path (SPI lookup, length and replay checks, ICV, trailer, strip) on every
//! cipher suite and backend, and checks that what we encrypt decrypts back to the input.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use dataplane::crypto::{AesKey, Backend, CipherConfig, Integrity, SoftEngine};
use dataplane::drop::DropReason;
use dataplane::esp::{Decrypted, EspProcessor, InboundReq, OutboundReq};
use dataplane::ids::{SaIndex, TunnelId, WorkerId};
use dataplane::pkt::{HeapPkt, PacketBuf};
use dataplane::sa::{Direction, Limits, Mode, Sa, SaConfig, SaDb, SaRtTable};
use libfuzzer_sys::fuzz_target;

const SUITES: usize = 4;

fn cipher(i: usize) -> CipherConfig {
    match i {
        0 => CipherConfig::AesGcm { key: AesKey::Aes128([1; 16]), salt: [2; 4] },
        1 => CipherConfig::AesGcm { key: AesKey::Aes256([3; 32]), salt: [4; 4] },
        2 => CipherConfig::AesCbc { key: AesKey::Aes128([5; 16]), integrity: Integrity::HmacSha1_96([6; 20]) },
        _ => CipherConfig::AesCbc { key: AesKey::Aes256([7; 32]), integrity: Integrity::HmacSha256_128([8; 32]) },
    }
}

/// Per backend: SA 2i inbound (SPI 0x100 + i) and 2i+1 outbound with the same keys; odd suites use ESN.
fn dbs() -> &'static [SaDb; 2] {
    static DBS: OnceLock<[SaDb; 2]> = OnceLock::new();
    DBS.get_or_init(|| {
        Backend::ALL.map(|backend| {
            let mut b = SaDb::builder();
            for i in 0..SUITES {
                for (j, direction) in [Direction::Inbound, Direction::Outbound].into_iter().enumerate() {
                    let cfg = SaConfig {
                        spi: 0x100 + i as u32,
                        direction,
                        mode: Mode::Transport,
                        cipher: cipher(i),
                        esn: i % 2 == 1,
                        replay_window: 64,
                        soft: Limits::default(),
                        hard: Limits::default(),
                        tunnel: TunnelId(1),
                        local: IpAddr::V4(Ipv4Addr::LOCALHOST),
                        peer: IpAddr::V4(Ipv4Addr::LOCALHOST),
                        natt: None,
                        owner: WorkerId(0),
                    };
                    let sa = Sa::new(cfg, backend, [9; 16]).expect("valid SA");
                    b.insert(SaIndex((2 * i + j) as u32), Arc::new(sa)).expect("index in range");
                }
            }
            b.build().expect("distinct SPIs")
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let db = &dbs()[usize::from(sel & 1)];
    let suite = usize::from(sel >> 1) % SUITES;
    let mut rts = SaRtTable::default();
    let mut esp = EspProcessor::new(4);

    // Arbitrary bytes as an ESP packet, with and without a SA hint.
    let hint = if sel & 0x80 != 0 { InboundReq::Sa(SaIndex(2 * suite as u32)) } else { InboundReq::Spi };
    let mut pkts = [HeapPkt::from_bytes(&rest[..rest.len().min(2000)]).expect("fits")];
    let mut v = [Err(DropReason::EspMalformed)];
    esp.decrypt(&mut SoftEngine, db, &mut rts, &mut pkts, &[hint], &mut v);
    assert!(v[0].is_err() || rest.len() >= 8, "a packet shorter than the header never authenticates");

    // Our own encryption of the bytes decrypts back to them.
    let payload = &rest[..rest.len().min(1400)];
    let mut pkts = [HeapPkt::from_bytes(payload).expect("fits")];
    let mut ov = [Err(DropReason::EspMalformed)];
    let req = OutboundReq { sa: SaIndex(2 * suite as u32 + 1), next_header: 47 };
    esp.encrypt(&mut SoftEngine, db, &mut rts, &mut pkts, &[Some(req)], &mut ov);
    assert_eq!(ov[0], Ok(()));
    esp.decrypt(&mut SoftEngine, db, &mut rts, &mut pkts, &[InboundReq::Spi], &mut v);
    assert_eq!(v[0], Ok(Decrypted { sa: SaIndex(2 * suite as u32), next_header: 47 }));
    assert_eq!(pkts[0].data(), payload);
});
