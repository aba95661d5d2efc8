//! The IKEv2 state machine (`ike::engine`) under arbitrary input: an initiator and a responder talk
//! through a wire the fuzzer controls. Each step either delivers the next genuine datagram (optionally
//! with one octet flipped), drops it, injects the fuzzer's own bytes into either engine (after a
//! genuine header, so they reach an IKE SA), runs a command, or advances the clock. Nothing may panic,
//! and after `handle_timeout(now)` no timer may be due at or before `now`.
#![no_main]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ike::config::{id_fqdn, Config, Keyring, PeerMatch};
use ike::crypto::Random;
use ike::engine::{Engine, Event};
use libfuzzer_sys::fuzz_target;

struct Seeded(u64);

impl Random for Seeded {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            *b = (z ^ (z >> 31)) as u8;
        }
    }
}

fn config(name: &str) -> Config {
    let mut c = Config::new(id_fqdn(name));
    c.keyring = Keyring::default().with(PeerMatch::Any, "fuzz");
    c.child_lifetime = Duration::from_secs(120);
    c.ike_lifetime = Duration::from_secs(300);
    c.rekey_margin = Duration::from_secs(30);
    // Every message after IKE_SA_INIT goes in fragments (RFC 7383), and every IKE_SA_INIT is
    // challenged with a cookie (RFC 7296 §2.6): the fuzzer reaches reassembly and the cookie paths.
    c.fragment_size = Some(150);
    c.cookie_threshold = 0;
    c
}

fuzz_target!(|data: &[u8]| {
    let addrs: [SocketAddr; 2] = ["192.0.2.1:500".parse().unwrap(), "192.0.2.2:500".parse().unwrap()];
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut nodes = [Engine::new(config("a"), Box::new(Seeded(1))), Engine::new(config("b"), Box::new(Seeded(2)))];
    let _ = nodes[0].initiate(now, addrs[0], addrs[1], None);
    let mut wire: VecDeque<(usize, SocketAddr, SocketAddr, Vec<u8>)> = VecDeque::new();
    let mut last: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut input = data;
    while let Some((&op, rest)) = input.split_first() {
        input = rest;
        for i in 0..2 {
            while let Some(t) = nodes[i].poll_transmit() {
                wire.push_back((1 - i, t.remote, t.local, t.data));
            }
            while let Some(e) = nodes[i].poll_event() {
                if let Event::InstallSaPair(p) = e {
                    let _ = nodes[i].rekey_child_sa(now, p.ike_sa, p.inbound.spi);
                }
            }
        }
        match op % 6 {
            0 | 1 => {
                if let Some((to, local, from, mut d)) = wire.pop_front() {
                    if op % 6 == 1 && !d.is_empty() {
                        let at = usize::from(input.first().copied().unwrap_or(0)) % d.len();
                        d[at] ^= 0x5A;
                    }
                    last[to] = d.clone();
                    nodes[to].handle_datagram(now, local, from, &d);
                }
            }
            2 => {
                wire.pop_front();
            }
            3 => {
                // The fuzzer's bytes after a header the target has seen, so they reach its IKE SA.
                let (n, rest) = input.split_at(input.len().min(usize::from(op >> 3) * 8));
                input = rest;
                let to = usize::from(op >> 7);
                let mut d = last[to].get(..28).unwrap_or_default().to_vec();
                d.extend_from_slice(n);
                if d.len() >= 28 {
                    let len = (d.len() as u32).to_be_bytes();
                    d[24..28].copy_from_slice(&len);
                }
                nodes[to].handle_datagram(now, addrs[to], addrs[1 - to], &d);
            }
            4 => {
                let to = usize::from(op >> 7);
                for sa in nodes[to].ike_sas(now) {
                    let _ = match op >> 5 & 3 {
                        0 => nodes[to].dpd(now, sa.id),
                        1 => nodes[to].rekey_ike_sa(now, sa.id),
                        2 => nodes[to].delete_ike_sa(now, sa.id),
                        _ => sa.children.first().map_or(Ok(()), |c| nodes[to].delete_child_sa(now, sa.id, c.spi_in)),
                    };
                }
            }
            _ => {
                now += Duration::from_secs(u64::from(op >> 3));
                for n in &mut nodes {
                    n.handle_timeout(now);
                    assert!(n.poll_timeout().is_none_or(|t| t > now), "a timer is due after handle_timeout");
                }
            }
        }
    }
});
