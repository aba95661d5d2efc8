//! Arbitrary inputs to an NHRP engine configured as a hub with a registered spoke and as a spoke:
//! datagrams (checksum fixed up so that they reach the state machines), redirect triggers, timeouts
//! and commands, on a clock that only moves forward. Nothing may panic, and every packet the engine
//! sends must parse.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use nhrp::wire::{checksum, Packet, CHECKSUM_AT};
use nhrp::{Engine, NhsConfig, Time, TunnelConfig, TunnelId};

const T: TunnelId = TunnelId(1);

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn engine(hub: bool) -> Engine {
    let mut e = Engine::new(7);
    let mut c = if hub {
        TunnelConfig::new(ip(10, 0, 0, 1), ip(192, 0, 2, 1))
    } else {
        TunnelConfig::new(ip(10, 0, 0, 11), ip(198, 51, 100, 11))
    };
    c.holding_time = 60;
    c.redirect = hub;
    c.shortcut = !hub;
    c.local_networks = vec![(ip(10, 11, 0, 0), 16)];
    if !hub {
        c.nhs = vec![NhsConfig { proto: ip(10, 0, 0, 1), nbma: ip(192, 0, 2, 1), priority: 1, cluster: 0 }];
    }
    e.add_tunnel(Time(0), T, c).expect("valid config");
    e.add_route(T, ip(10, 12, 0, 0), 16, ip(10, 0, 0, 12));
    e
}

fn drain(e: &mut Engine) {
    while let Some(t) = e.poll_transmit() {
        Packet::parse(&t.bytes).expect("the engine emits valid packets");
    }
    while e.poll_event().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    let mut engines = [engine(true), engine(false)];
    let mut now = Time(0);
    let mut rest = data;
    while let [op, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        now = now.plus_millis(u64::from(*op & 0x0f) * 7000);
        let e = &mut engines[usize::from(*op >> 7)];
        match (*op >> 4) & 0x7 {
            0 | 1 | 2 => {
                let mut b = chunk.to_vec();
                if b.len() >= 20 {
                    let size = usize::from(u16::from_be_bytes([b[10], b[11]])).min(b.len());
                    if size >= CHECKSUM_AT + 2 {
                        b[CHECKSUM_AT..CHECKSUM_AT + 2].copy_from_slice(&[0, 0]);
                        let s = checksum(&b[..size]);
                        b[CHECKSUM_AT..CHECKSUM_AT + 2].copy_from_slice(&s.to_be_bytes());
                    }
                }
                let src = ip(198, 51, 100, chunk.first().copied().unwrap_or(12) % 4 + 11);
                e.handle_datagram(now, T, src, ip(192, 0, 2, 1), &b);
            }
            3 => e.handle_redirect(now, T, None, chunk),
            4 => e.resolve(now, T, ip(10, chunk.first().copied().unwrap_or(12), 0, 9)),
            5 => e.purge(now, T, ip(10, 11, 0, 0), 16),
            6 if chunk.first().is_some_and(|b| b & 1 == 1) => {
                let peer = chunk.get(1).copied().unwrap_or(12) % 4 + 11;
                e.forget(T, ip(10, 0, 0, peer), ip(198, 51, 100, peer));
            }
            6 => e.mark_used(T, ip(10, 12, 0, 9)),
            _ => e.handle_timeout(now),
        }
        drain(e);
    }
    for e in &mut engines {
        e.handle_timeout(now.plus_secs(3600));
        drain(e);
    }
});
