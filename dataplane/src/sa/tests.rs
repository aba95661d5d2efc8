use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;
use crate::crypto::AesKey;

/// A valid config to vary in tests.
pub(crate) fn config(spi: u32, direction: Direction, cipher: CipherConfig) -> SaConfig {
    SaConfig {
        spi,
        direction,
        mode: Mode::Transport,
        cipher,
        esn: false,
        replay_window: 64,
        soft: Limits::default(),
        hard: Limits::default(),
        tunnel: TunnelId(1),
        local: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        peer: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)),
        natt: None,
        owner: WorkerId(0),
    }
}

fn gcm() -> CipherConfig {
    CipherConfig::AesGcm { key: AesKey::Aes128([1; 16]), salt: [2; 4] }
}

/// A one-SA database at index 0.
pub(crate) fn db_with(cfg: SaConfig) -> SaDb {
    let mut b = SaDb::builder();
    b.insert(SaIndex(0), Arc::new(Sa::new(cfg, Backend::Ring, [0; 16]).unwrap())).unwrap();
    b.build().unwrap()
}

fn inbound(window: u32, esn: bool) -> (SaDb, SaRtTable) {
    let mut cfg = config(0x100, Direction::Inbound, gcm());
    cfg.replay_window = window;
    cfg.esn = esn;
    (db_with(cfg), SaRtTable::default())
}

/// check_replay then accept, as the transform does around a successful ICV check.
fn receive(db: &SaDb, rts: &mut SaRtTable, seq_lo: u32) -> Option<u64> {
    let mut e = rts.entry(db, SaIndex(0)).unwrap();
    let seq = e.check_replay(seq_lo)?;
    e.accept(seq).then_some(seq)
}

#[test]
fn replay_window_sizes_are_checked() {
    for (size, ok) in [(0, false), (32, false), (63, false), (64, true), (100, true), (4096, true), (4097, false)] {
        let mut cfg = config(1, Direction::Inbound, gcm());
        cfg.replay_window = size;
        assert_eq!(cfg.validate().is_ok(), ok, "window {size}");
        if !ok {
            let err = cfg.validate().unwrap_err();
            assert_eq!(err, SaError::ReplayWindow { spi: 1, size });
            assert!(err.to_string().contains(&format!("replay_window {size} is outside 64..=4096")));
        }
    }
}

#[test]
fn config_errors_name_the_field() {
    assert_eq!(config(0, Direction::Inbound, gcm()).validate(), Err(SaError::SpiZero));
    let mut cfg = config(5, Direction::Outbound, gcm());
    cfg.soft.packets = Some(10);
    cfg.hard.packets = Some(10);
    assert_eq!(
        cfg.validate().unwrap_err().to_string(),
        "SA spi 0x00000005: soft packets lifetime 10 is not below the hard one 10"
    );
}

#[test]
fn duplicate_inbound_spi_is_refused_outbound_may_share() {
    let sa = |dir| Arc::new(Sa::new(config(7, dir, gcm()), Backend::Ring, [0; 16]).unwrap());
    let mut b = SaDb::builder();
    b.insert(SaIndex(0), sa(Direction::Inbound)).unwrap();
    b.insert(SaIndex(1), sa(Direction::Outbound)).unwrap();
    let db = b.build().unwrap();
    assert_eq!(db.lookup_inbound(7), Some(SaIndex(0)));
    assert_eq!(db.lookup_inbound(8), None);
    let mut b = db.to_builder();
    b.insert(SaIndex(5), sa(Direction::Inbound)).unwrap();
    assert_eq!(b.build().unwrap_err(), SaError::DuplicateSpi { spi: 7, first: 0, second: 5 });
    assert_eq!(
        SaDb::builder().insert(SaIndex(MAX_SA_INDEX + 1), sa(Direction::Inbound)).unwrap_err(),
        SaError::IndexTooLarge(MAX_SA_INDEX + 1)
    );
}

#[test]
fn window_64_edges() {
    let (db, mut rts) = inbound(64, false);
    assert_eq!(receive(&db, &mut rts, 0), None, "sequence number 0 is never valid");
    assert_eq!(receive(&db, &mut rts, 100), Some(100));
    assert_eq!(receive(&db, &mut rts, 100), None, "replay of the top");
    assert_eq!(receive(&db, &mut rts, 37), Some(37), "100 - 63: left edge, inside");
    assert_eq!(receive(&db, &mut rts, 36), None, "100 - 64: just outside");
    assert_eq!(receive(&db, &mut rts, 37), None, "replay at the left edge");
    assert_eq!(receive(&db, &mut rts, 99), Some(99));
    assert_eq!(receive(&db, &mut rts, 164), Some(164), "jump by exactly the window");
    assert_eq!(receive(&db, &mut rts, 100), None, "164 - 64 fell out");
    assert_eq!(receive(&db, &mut rts, 101), Some(101), "164 - 63 is in, and was never seen");
    assert_eq!(receive(&db, &mut rts, 10_000), Some(10_000), "a jump larger than the bitmap clears it");
    assert_eq!(receive(&db, &mut rts, 9_999), Some(9_999));
    assert_eq!(receive(&db, &mut rts, 9_999), None);
}

#[test]
fn window_4096_edges() {
    let (db, mut rts) = inbound(4096, false);
    assert_eq!(receive(&db, &mut rts, 5000), Some(5000));
    assert_eq!(receive(&db, &mut rts, 5000 - 4095), Some(905));
    assert_eq!(receive(&db, &mut rts, 5000 - 4096), None);
    for s in (1000..5000).step_by(7) {
        assert_eq!(receive(&db, &mut rts, s), Some(u64::from(s)));
    }
    for s in (1000..5000).step_by(7) {
        assert_eq!(receive(&db, &mut rts, s), None, "{s} replayed");
    }
    assert_eq!(receive(&db, &mut rts, 9096), Some(9096));
    assert_eq!(receive(&db, &mut rts, 5001), Some(5001), "9096 - 4095, never seen");
    assert_eq!(receive(&db, &mut rts, 5000), None, "9096 - 4096 fell out");
}

#[test]
fn check_does_not_move_the_window_accept_does() {
    let (db, mut rts) = inbound(64, false);
    let mut e = rts.entry(&db, SaIndex(0)).unwrap();
    assert_eq!(e.check_replay(500), Some(500));
    assert_eq!(e.rt().seq(), 0, "a packet that fails its ICV must not move the window");
    assert!(e.accept(500));
    assert!(!e.accept(500), "second accept of one number (duplicate in a burst)");
    assert!(!e.accept(400), "outside the window");
}

#[test]
fn esn_infers_high_bits_across_the_wrap() {
    let (db, mut rts) = inbound(64, true);
    let top = (1u64 << 32) - 10; // high 0, low 0xffff_fff6
                                 // From T = 0 a number within 63 of 2^32 would read as epoch -1; get near the wrap first.
    assert_eq!(receive(&db, &mut rts, 0xffff_ff00), Some(0xffff_ff00));
    assert_eq!(receive(&db, &mut rts, top as u32), Some(top));
    // Case A: low bits below the window's left edge mean the next epoch.
    assert_eq!(receive(&db, &mut rts, 5), Some((1 << 32) + 5));
    // Now T = 2^32 + 5 (case B, window spans the wrap): high low-bits are the previous epoch.
    assert_eq!(receive(&db, &mut rts, 0xffff_fff8), Some((1 << 32) - 8));
    assert_eq!(receive(&db, &mut rts, 0xffff_fff6), None, "replay across the wrap");
    assert_eq!(receive(&db, &mut rts, 0xffff_ffc6), Some((1 << 32) - 58), "left edge: T - 63");
    // T - 64 cannot be told from a number 2^32 ahead: Appendix A2.2 reads it as the next epoch, and the
    // ICV computed with those high bits then fails. Check without accepting.
    let e = rts.entry(&db, SaIndex(0)).unwrap();
    assert_eq!(e.check_replay(0xffff_ffc5), Some((2 << 32) - 59));
    assert_eq!(receive(&db, &mut rts, 3), Some((1 << 32) + 3));
    assert_eq!(receive(&db, &mut rts, 5), None);
    assert_eq!(receive(&db, &mut rts, 0), Some(1 << 32), "low 0 is valid with ESN once past 2^32");
}

#[test]
fn esn_never_infers_below_zero() {
    let (db, mut rts) = inbound(64, true);
    // T = 0: a low value near 2^32 would belong to epoch -1.
    assert_eq!(receive(&db, &mut rts, 0xffff_fff0), None);
    assert_eq!(receive(&db, &mut rts, 1), Some(1));
}

fn outbound(esn: bool, soft: Limits, hard: Limits) -> (SaDb, SaRtTable) {
    let mut cfg = config(0x200, Direction::Outbound, gcm());
    cfg.esn = esn;
    cfg.soft = soft;
    cfg.hard = hard;
    (db_with(cfg), SaRtTable::default())
}

#[test]
fn outbound_sequence_starts_at_one_and_stops_at_2_pow_32_minus_1() {
    let (db, mut rts) = outbound(false, Limits::default(), Limits::default());
    let mut e = rts.entry(&db, SaIndex(0)).unwrap();
    assert_eq!(e.next_seq(), Some(1));
    assert_eq!(e.next_seq(), Some(2));
    e.set_seq(u64::from(u32::MAX) - 2);
    assert_eq!(e.next_seq(), Some(u64::from(u32::MAX) - 1));
    assert_eq!(e.next_seq(), Some(u64::from(u32::MAX)));
    assert_eq!(e.next_seq(), None);
    assert_eq!(e.next_seq(), None);
    assert!(e.is_expired());
    let events: Vec<_> = rts.drain_events().map(|ev| ev.kind).collect();
    assert_eq!(events, [SaEventKind::SeqNearExhaustion, SaEventKind::SeqExhausted], "each exactly once");
}

#[test]
fn esn_sequence_runs_past_2_pow_32_and_stops_at_2_pow_64_minus_1() {
    let (db, mut rts) = outbound(true, Limits::default(), Limits::default());
    let mut e = rts.entry(&db, SaIndex(0)).unwrap();
    e.set_seq(u64::from(u32::MAX));
    assert_eq!(e.next_seq(), Some(1 << 32));
    e.set_seq(u64::MAX - 1);
    assert_eq!(e.next_seq(), Some(u64::MAX));
    assert_eq!(e.next_seq(), None);
    let events: Vec<_> = rts.drain_events().map(|ev| ev.kind).collect();
    assert_eq!(events, [SaEventKind::SeqNearExhaustion, SaEventKind::SeqExhausted]);
}

#[test]
fn lifetimes_fire_once_and_hard_expires() {
    let soft = Limits { bytes: Some(1000), packets: Some(3) };
    let hard = Limits { bytes: Some(10_000), packets: Some(5) };
    let (db, mut rts) = outbound(false, soft, hard);
    let mut e = rts.entry(&db, SaIndex(0)).unwrap();
    for _ in 0..5 {
        assert!(!e.is_expired());
        e.account(600);
    }
    assert!(e.is_expired(), "the 5th packet reached the hard packet limit");
    assert_eq!(e.next_seq(), None);
    let events: Vec<_> = rts.drain_events().map(|ev| (ev.sa, ev.kind)).collect();
    assert_eq!(
        events,
        [
            (SaIndex(0), SaEventKind::Used),
            (SaIndex(0), SaEventKind::SoftBytes),
            (SaIndex(0), SaEventKind::SoftPackets),
            (SaIndex(0), SaEventKind::HardPackets)
        ]
    );
    let mut e = rts.entry(&db, SaIndex(0)).unwrap();
    e.account(20_000);
    let events: Vec<_> = rts.drain_events().map(|ev| ev.kind).collect();
    assert_eq!(events, [SaEventKind::HardBytes], "the others do not fire again");
}

#[test]
fn outbound_use_is_reported_at_the_first_packet_then_once_per_interval() {
    let (db, mut rts) = outbound(false, Limits::default(), Limits::default());
    let used = |rts: &mut SaRtTable| rts.drain_events().filter(|e| e.kind == SaEventKind::Used).count();
    rts.set_clock(1_000);
    for _ in 0..3 {
        rts.entry(&db, SaIndex(0)).unwrap().account(100);
    }
    assert_eq!(used(&mut rts), 1, "the first packet");
    rts.set_clock(1_000 + USED_REPORT_NS - 1);
    rts.entry(&db, SaIndex(0)).unwrap().account(100);
    assert_eq!(used(&mut rts), 0, "not again within the interval");
    rts.set_clock(1_000 + USED_REPORT_NS);
    rts.entry(&db, SaIndex(0)).unwrap().account(100);
    rts.entry(&db, SaIndex(0)).unwrap().account(100);
    assert_eq!(used(&mut rts), 1, "once more after it");
    rts.set_clock(1_000 + 10 * USED_REPORT_NS);
    assert_eq!(used(&mut rts), 0, "no traffic, no report");

    let (db, mut rts) = inbound(64, false);
    rts.entry(&db, SaIndex(0)).unwrap().account(100);
    assert_eq!(used(&mut rts), 0, "inbound SAs do not report");
}

#[test]
fn a_new_sa_at_an_index_resets_the_runtime() {
    let (db, mut rts) = outbound(false, Limits::default(), Limits::default());
    rts.entry(&db, SaIndex(0)).unwrap().next_seq();
    assert_eq!(rts.get(SaIndex(0)).unwrap().seq(), 1);
    // Republished unchanged: state kept.
    let same = db.to_builder().build().unwrap();
    assert_eq!(rts.entry(&same, SaIndex(0)).unwrap().next_seq(), Some(2));
    // A rekeyed SA at the same index: fresh state.
    let mut b = db.to_builder();
    let new = Sa::new(config(0x300, Direction::Outbound, gcm()), Backend::Ring, [0; 16]).unwrap();
    b.insert(SaIndex(0), Arc::new(new)).unwrap();
    let db2 = b.build().unwrap();
    assert_eq!(rts.entry(&db2, SaIndex(0)).unwrap().next_seq(), Some(1));
    assert!(rts.entry(&db2, SaIndex(1)).is_none());
}

proptest! {
    /// The bitmap window agrees with a model that remembers every accepted number.
    #[test]
    fn window_matches_a_set_model(window in prop_oneof![Just(64u32), Just(100), Just(4096)],
                                  seqs in proptest::collection::vec(1u32..20_000, 1..400)) {
        let (db, mut rts) = inbound(window, false);
        let mut seen = HashSet::new();
        let mut top = 0u32;
        for s in seqs {
            let model_ok = !seen.contains(&s) && (s > top || top - s < window);
            prop_assert_eq!(receive(&db, &mut rts, s).is_some(), model_ok, "seq {} top {}", s, top);
            if model_ok {
                seen.insert(s);
                top = top.max(s);
            }
        }
    }
}

#[test]
fn sa_counters_follow_the_traffic_and_outlive_a_fresh_runtime() {
    let (db, mut rts) = outbound(false, Limits::default(), Limits::default());
    for _ in 0..3 {
        rts.entry(&db, SaIndex(0)).unwrap().account(100);
    }
    let c = db.get(SaIndex(0)).unwrap().counters();
    assert_eq!((c.packets(), c.bytes()), (3, 300));
    // Another worker takes the SA over with a runtime of its own: the counters go on.
    let mut other = SaRtTable::default();
    other.entry(&db, SaIndex(0)).unwrap().account(50);
    assert_eq!((c.packets(), c.bytes()), (4, 350));
}
