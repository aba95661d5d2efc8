//! NHRP hub figures at 100,000 spokes: Registration Requests handled per second on one core (first
//! registrations, which insert, and refreshes, which find the entry), and the heap bytes per cache
//! entry, measured with a counting allocator around the engine's whole state (cache map, timer heap).
//! Targets (issue 4): ≥ 200,000 registrations/s, ≤ 256 B per entry.
//!
//! Run: `cargo bench -p perf --bench nhrp` (a few seconds). The requests are encoded up front, the way
//! Cisco spokes send them (unique and NAT flags, one CIE, responder/transit/NAT extensions, plaintext
//! authentication); each one is parsed, authenticated, bound and answered (the reply is encoded and
//! queued, then drained), so the rate covers the whole receive → reply path.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use nhrp::wire::{flags, Body, Cie, CieCode, Extension, ExtensionBody, Family, Operation, Packet};
use nhrp::{Engine, Time, TunnelConfig, TunnelId};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only adds
// bookkeeping, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from `alloc`/`realloc` above with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded as is; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SPOKES: u32 = 100_000;
const T: TunnelId = TunnelId(1);

fn v4(x: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(x))
}

fn request(i: u32) -> Vec<u8> {
    let p = Packet {
        nbma_family: Family::V4,
        proto_family: Family::V4,
        hop_count: 255,
        op: Operation::REGISTRATION_REQUEST,
        src_nbma: Some(v4(0xac10_0000 + i)),
        src_proto: Some(v4(0x0a00_0000 + 16 + i)),
        dst_proto: Some(v4(0x0a00_0001)),
        body: Body::Cies {
            flags: flags::REG_UNIQUE | flags::NAT,
            request_id: i,
            cies: vec![Cie {
                code: CieCode::SUCCESS,
                prefix_len: 0xff,
                mtu: 1514,
                holding_time: 600,
                preference: 0,
                nbma: None,
                proto: None,
            }],
        },
        extensions: vec![
            Extension { compulsory: true, body: ExtensionBody::ResponderAddress(vec![]) },
            Extension { compulsory: true, body: ExtensionBody::ForwardTransit(vec![]) },
            Extension { compulsory: true, body: ExtensionBody::ReverseTransit(vec![]) },
            Extension { compulsory: true, body: ExtensionBody::Authentication { kind: 1, data: b"dmvpn".to_vec() } },
            Extension { compulsory: false, body: ExtensionBody::NatAddress(vec![]) },
        ],
    };
    p.to_vec().expect("emit")
}

/// Feeds every request once; returns registrations per second.
fn round(hub: &mut Engine, reqs: &[(IpAddr, Vec<u8>)], now: Time) -> f64 {
    let start = Instant::now();
    for (src, b) in reqs {
        hub.handle_datagram(now, T, *src, v4(0xc000_0201), b);
        while let Some(t) = hub.poll_transmit() {
            std::hint::black_box(t);
        }
        while hub.poll_event().is_some() {}
    }
    reqs.len() as f64 / start.elapsed().as_secs_f64()
}

#[allow(clippy::print_stdout)]
fn main() {
    // Half the spokes behind NAT (the source differs from the claimed address).
    let reqs: Vec<(IpAddr, Vec<u8>)> =
        (0..SPOKES).map(|i| (if i % 2 == 0 { v4(0xcb00_0000 + i) } else { v4(0xac10_0000 + i) }, request(i))).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut hub = Engine::new(1);
    let mut cfg = TunnelConfig::new(v4(0x0a00_0001), v4(0xc000_0201));
    cfg.auth = Some(b"dmvpn".to_vec());
    cfg.holding_time = 600;
    hub.add_tunnel(Time(0), T, cfg).expect("config");
    let first = round(&mut hub, &reqs, Time(1000));
    assert_eq!(hub.cache().len(), SPOKES as usize);
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let mut refresh = 0f64;
    for r in 0..3 {
        refresh = refresh.max(round(&mut hub, &reqs, Time::from_secs(200 * (r + 1))));
    }
    assert_eq!(hub.counters().registrations, 4 * u64::from(SPOKES));
    let per_entry = bytes as f64 / f64::from(SPOKES);
    println!("nhrp hub, {SPOKES} spokes, one core:");
    println!("  first registrations: {first:>10.0} /s");
    println!("  refreshes (best of 3): {refresh:>8.0} /s  (target >= 200000)");
    println!("  heap per cache entry: {per_entry:>7.1} B   (target <= 256)");
    println!("  entry struct: {} B", size_of::<nhrp::Entry>());
}
