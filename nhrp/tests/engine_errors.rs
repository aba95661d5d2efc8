//! The engine's answers to misbehaving peers (RFC 2332 §5.2.7, §5.3), and tshark's verdict on every
//! kind of packet the engine sends: a small network (a hub, two spokes) registers, builds a Phase 3
//! shortcut and purges, and crafted bad packets draw Error Indications; everything that crossed the
//! wire is dissected.

mod support;

use std::net::IpAddr;

use nhrp::wire::{Body, Cie, CieCode, ErrorCode, Extension, ExtensionBody, ExtensionType, Operation, Packet};
use nhrp::{Engine, EntryKind, Event, NhsConfig, NhsState, Time, TunnelConfig};
use support::sim::{ip_header, Sim, T};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn hub_cfg() -> TunnelConfig {
    let mut c = TunnelConfig::new(ip("10.0.0.1"), ip("192.0.2.1"));
    c.holding_time = 300;
    c.auth = Some(b"s3cret".to_vec());
    c.redirect = true;
    c
}

fn spoke_cfg(n: u8, secret: &[u8]) -> TunnelConfig {
    let mut c = TunnelConfig::new(ip(&format!("10.0.0.{n}")), ip(&format!("198.51.100.{n}")));
    c.holding_time = 300;
    c.auth = Some(secret.to_vec());
    c.shortcut = true;
    c.nhs = vec![NhsConfig { proto: ip("10.0.0.1"), nbma: ip("192.0.2.1"), priority: 1, cluster: 0 }];
    c.local_networks = vec![(ip(&format!("10.{n}.0.0")), 16)];
    c
}

fn net(secret_c: &[u8]) -> Sim {
    let mut sim = Sim::new();
    sim.capture = Some(Vec::new());
    let mut hub = Engine::new(1);
    hub.add_tunnel(Time(0), T, hub_cfg()).expect("hub");
    hub.add_route(T, ip("10.11.0.0"), 16, ip("10.0.0.11"));
    hub.add_route(T, ip("10.12.0.0"), 16, ip("10.0.0.12"));
    sim.add(hub, ip("192.0.2.1"));
    for (n, secret) in [(11u8, &b"s3cret"[..]), (12, b"s3cret"), (13, secret_c)] {
        let mut e = Engine::new(u64::from(n));
        e.add_tunnel(Time(0), T, spoke_cfg(n, secret)).expect("spoke");
        sim.add(e, ip(&format!("198.51.100.{n}")));
    }
    sim
}

/// Sends `p` to the hub as if from NBMA `from`; returns what the hub sent (errors go back to `from`).
fn to_hub(sim: &mut Sim, from: &str, bytes: &[u8]) -> Vec<Packet> {
    let now = sim.now;
    sim.nodes[0].engine.handle_datagram(now, T, ip(from), ip("192.0.2.1"), bytes);
    let mut out = Vec::new();
    while let Some(t) = sim.nodes[0].engine.poll_transmit() {
        let p = Packet::parse(&t.bytes).expect("hub emits parseable packets");
        if p.op == Operation::ERROR_INDICATION {
            assert_eq!(t.nbma, ip(from));
        }
        out.push(p);
    }
    out
}

fn error_code(p: &Packet) -> ErrorCode {
    match &p.body {
        Body::Error { code, .. } => *code,
        b => panic!("not an Error Indication: {b:?}"),
    }
}

fn resolution_request(extra: Vec<Extension>, hop_count: u8) -> Packet {
    let mut ext =
        vec![Extension { compulsory: true, body: ExtensionBody::Authentication { kind: 1, data: b"s3cret".to_vec() } }];
    ext.extend(extra);
    Packet {
        nbma_family: nhrp::wire::Family::V4,
        proto_family: nhrp::wire::Family::V4,
        hop_count,
        op: Operation::RESOLUTION_REQUEST,
        src_nbma: Some(ip("198.51.100.11")),
        src_proto: Some(ip("10.0.0.11")),
        dst_proto: Some(ip("10.12.3.4")),
        body: Body::Cies { flags: 0x8800, request_id: 77, cies: vec![] },
        extensions: ext,
    }
}

#[test]
fn misbehaving_peers_get_error_indications_and_counters() {
    let mut sim = net(b"wrong");
    sim.run_for(10);
    // Spoke 13 has the wrong secret: refused with Authentication Failure, down after 3 tries.
    assert_eq!(sim.nodes[3].engine.nhs(T)[0].state, NhsState::Down);
    assert!(sim.nodes[3].engine.nhs(T)[0].failures >= 3);
    assert!(sim.nodes[0].engine.counters().auth_failures >= 4);
    assert!(sim.nodes[0].engine.cache().get(T, &ip("10.0.0.13")).is_none());
    assert_eq!(sim.nodes[1].engine.nhs(T)[0].state, NhsState::Up);

    // Unknown compulsory extension: Unrecognized Extension; the same, not compulsory, is ignored.
    let unknown =
        |c| Extension { compulsory: c, body: ExtensionBody::Unknown { kind: ExtensionType(0x3ff0), data: vec![1] } };
    let r = to_hub(&mut sim, "198.51.100.11", &resolution_request(vec![unknown(true)], 10).to_vec().expect("emit"));
    assert_eq!(r.len(), 1);
    assert_eq!(error_code(&r[0]), ErrorCode::UNRECOGNIZED_EXTENSION);
    assert_eq!(r[0].dst_proto, Some(ip("10.0.0.11")), "sent back to the source");
    let r = to_hub(&mut sim, "198.51.100.11", &resolution_request(vec![unknown(false)], 10).to_vec().expect("emit"));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].op, Operation::RESOLUTION_REQUEST, "forwarded to spoke 12, which owns 10.12/16");

    // Our own address in the Forward Transit NHS Record: a loop.
    let me = Cie {
        code: CieCode::SUCCESS,
        prefix_len: 32,
        mtu: 0,
        holding_time: 0,
        preference: 0,
        nbma: Some(ip("192.0.2.1")),
        proto: Some(ip("10.0.0.1")),
    };
    let looped =
        resolution_request(vec![Extension { compulsory: true, body: ExtensionBody::ForwardTransit(vec![me]) }], 10);
    let r = to_hub(&mut sim, "198.51.100.11", &looped.to_vec().expect("emit"));
    assert_eq!(error_code(&r[0]), ErrorCode::LOOP_DETECTED);
    assert_eq!(sim.nodes[0].engine.counters().loops, 1);

    // Hop count exhausted when it would be forwarded.
    let r = to_hub(&mut sim, "198.51.100.11", &resolution_request(vec![], 1).to_vec().expect("emit"));
    assert_eq!(error_code(&r[0]), ErrorCode::HOP_COUNT_EXCEEDED);

    // Missing authentication: Authentication Failure, quoting the packet.
    let mut noauth = resolution_request(vec![], 10);
    noauth.extensions.clear();
    let bytes = noauth.to_vec().expect("emit");
    let r = to_hub(&mut sim, "198.51.100.11", &bytes);
    assert_eq!(error_code(&r[0]), ErrorCode::AUTHENTICATION_FAILURE);
    assert!(matches!(&r[0].body, Body::Error { packet, .. } if *packet == bytes));

    // A bad checksum, a truncation and garbage: counted, never answered.
    let mut bad = bytes.clone();
    bad[25] ^= 0x40;
    assert!(to_hub(&mut sim, "198.51.100.11", &bad).is_empty());
    assert!(to_hub(&mut sim, "198.51.100.11", &bytes[..30]).is_empty());
    assert!(to_hub(&mut sim, "198.51.100.11", b"\x00\x01garbage").is_empty());
    let c = sim.nodes[0].engine.counters();
    assert_eq!((c.rx_bad_checksum, c.rx_malformed), (1, 2));
    // An Error Indication is never answered with one.
    let ei = r[0].to_vec().expect("emit");
    assert!(to_hub(&mut sim, "198.51.100.11", &ei).is_empty());
}

#[test]
fn tshark_reads_everything_the_engine_sends() {
    let mut sim = net(b"s3cret");
    sim.run_for(5);
    // Phase 3: spoke 11 sends to 10.12.0.9 through the hub; the hub redirects; 11 resolves; 12 answers.
    let now = sim.now;
    sim.nodes[0].engine.handle_redirect(now, T, None, &ip_header(ip("10.11.0.9"), ip("10.12.0.9")));
    sim.flush(0);
    sim.run_for(2);
    let shortcut = sim.nodes[1].engine.cache().get(T, &ip("10.12.0.0")).cloned().expect("shortcut installed");
    assert_eq!((shortcut.prefix_len, shortcut.nbma, shortcut.kind), (16, ip("198.51.100.12"), EntryKind::Resolved));
    // Spoke 12 withdraws its network: purges at the hub and at spoke 11.
    let now = sim.now;
    sim.nodes[2].engine.purge(now, T, ip("10.12.0.0"), 16);
    sim.flush(2);
    sim.run_for(2);
    assert!(sim.nodes[1].engine.cache().get(T, &ip("10.12.0.0")).is_none());
    assert!(sim.nodes[1].events.contains(&Event::Purged { tunnel: T, proto: ip("10.12.0.0"), prefix_len: 16 }));
    // A resolution for an unknown destination gets a negative reply; a bad request an Error Indication.
    let now = sim.now;
    sim.nodes[1].engine.resolve(now, T, ip("10.99.0.1"));
    sim.flush(1);
    let mut noauth = resolution_request(vec![], 10);
    noauth.extensions.clear();
    sim.nodes[0].engine.handle_datagram(now, T, ip("198.51.100.11"), ip("192.0.2.1"), &noauth.to_vec().expect("emit"));
    sim.flush(0);
    sim.run_for(2);

    let packets = sim.capture.take().expect("captured");
    let rows = support::dissect_clean("engine", &packets, &["nhrp.hdr.op.type", "nhrp.code"]);
    let mut ops: Vec<&str> = rows.iter().map(|r| r[0].split(',').next().unwrap_or("")).collect();
    ops.sort();
    ops.dedup();
    assert_eq!(ops, ["1", "2", "3", "4", "5", "6", "7", "8"], "every operation was sent and dissected");
    assert!(rows.iter().any(|r| r[0] == "2" && r[1].split(',').next() == Some("12")), "a negative reply (no binding)");
}

/// What the hub answers `bytes` with, as (the Error Indication, its wire bytes).
fn hub_error(sim: &mut Sim, bytes: &[u8]) -> (Packet, Vec<u8>) {
    let now = sim.now;
    sim.nodes[0].engine.handle_datagram(now, T, ip("198.51.100.11"), ip("192.0.2.1"), bytes);
    let t = sim.nodes[0].engine.poll_transmit().expect("an answer");
    assert!(sim.nodes[0].engine.poll_transmit().is_none(), "one Error Indication per packet in error");
    (Packet::parse(&t.bytes).expect("parses"), t.bytes)
}

fn error_offset(p: &Packet) -> (ErrorCode, usize, Vec<u8>) {
    match &p.body {
        Body::Error { code, offset, packet } => (*code, usize::from(*offset), packet.clone()),
        b => panic!("not an Error Indication: {b:?}"),
    }
}

#[test]
fn error_offsets_name_the_offending_octet_and_tshark_agrees() {
    let mut sim = net(b"s3cret");
    sim.run_for(5);
    let unknown =
        Extension { compulsory: true, body: ExtensionBody::Unknown { kind: ExtensionType(0x3ff0), data: vec![1] } };
    let me = Cie {
        code: CieCode::SUCCESS,
        prefix_len: 32,
        mtu: 0,
        holding_time: 0,
        preference: 0,
        nbma: Some(ip("192.0.2.1")),
        proto: Some(ip("10.0.0.1")),
    };
    let other = Cie { nbma: Some(ip("192.0.2.7")), proto: Some(ip("10.0.0.7")), ..me.clone() };
    let mut noauth = resolution_request(vec![], 10);
    noauth.extensions.clear();
    let mut wrong = resolution_request(vec![], 10);
    wrong.extensions[0].body = ExtensionBody::Authentication { kind: 1, data: b"nope".to_vec() };
    let cases: Vec<(Packet, ErrorCode)> = vec![
        (resolution_request(vec![unknown], 10), ErrorCode::UNRECOGNIZED_EXTENSION),
        (
            resolution_request(
                vec![Extension { compulsory: true, body: ExtensionBody::ForwardTransit(vec![other, me]) }],
                10,
            ),
            ErrorCode::LOOP_DETECTED,
        ),
        (resolution_request(vec![], 1), ErrorCode::HOP_COUNT_EXCEEDED),
        (noauth, ErrorCode::AUTHENTICATION_FAILURE),
        (wrong, ErrorCode::AUTHENTICATION_FAILURE),
    ];
    let mut frames = Vec::new();
    let mut offsets = Vec::new();
    for (i, (req, want)) in cases.iter().enumerate() {
        let bytes = req.to_vec().expect("emit");
        let (e, wire) = hub_error(&mut sim, &bytes);
        let (code, at, quoted) = error_offset(&e);
        assert_eq!(code, *want, "case {i}");
        assert_eq!(quoted, bytes, "case {i}: the packet in error, quoted whole");
        assert!(e.extensions.is_empty(), "case {i}: §5.2.7 has no extensions");
        assert_eq!(e.hop_count, 255, "case {i}: Cisco rejects hop count 0");
        assert_eq!(e.dst_proto, Some(ip("10.0.0.11")), "case {i}: to the source of the packet in error");
        // What lies at the offset, read from the request's bytes (RFC 2332's layouts, not our parser).
        let field = |n: usize| bytes[at..at + n].to_vec();
        match i {
            0 => assert_eq!(field(2), [0xbf, 0xf0], "the unknown extension's C bit and type"),
            1 => assert_eq!(field(16)[12..], [192, 0, 2, 1], "the transit CIE naming us, after the other one"),
            2 => assert_eq!((at, bytes[at]), (9, 1), "ar$hopcnt"),
            3 => assert_eq!(at, 14, "ar$extoff: no extensions, so no authentication"),
            _ => assert_eq!(field(2), [0x80, 0x07], "the wrong authentication extension"),
        }
        offsets.push(at.to_string());
        frames.push((sim.now, ip("192.0.2.1"), ip("198.51.100.11"), wire));
    }
    let rows = support::dissect_clean("offsets", &frames, &["nhrp.err.offset", "nhrp.err.code"]);
    let got: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(got, offsets);
    let codes: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(codes, ["1", "3", "15", "11", "11"]);
}

/// A Registration Request from 198.51.100.11 with `n` CIEs that claim NBMA addresses other than
/// the one it comes from (so the reply grows a NAT extension CIE per client).
fn natted_registration(n: u8) -> Packet {
    let cies = (0..n)
        .map(|i| Cie {
            code: CieCode::SUCCESS,
            prefix_len: 32,
            mtu: 1400,
            holding_time: 300,
            preference: 0,
            nbma: Some(ip(&format!("172.16.0.{i}"))),
            proto: Some(ip(&format!("10.0.1.{i}"))),
        })
        .collect();
    Packet {
        nbma_family: nhrp::wire::Family::V4,
        proto_family: nhrp::wire::Family::V4,
        hop_count: 255,
        op: Operation::REGISTRATION_REQUEST,
        src_nbma: Some(ip("172.16.0.0")),
        src_proto: Some(ip("10.0.1.0")),
        dst_proto: Some(ip("10.0.0.1")),
        body: Body::Cies { flags: nhrp::wire::flags::NAT, request_id: 9, cies },
        extensions: vec![
            Extension { compulsory: true, body: ExtensionBody::ResponderAddress(vec![]) },
            Extension { compulsory: true, body: ExtensionBody::Authentication { kind: 1, data: b"s3cret".to_vec() } },
            Extension { compulsory: false, body: ExtensionBody::NatAddress(vec![]) },
        ],
    }
}

#[test]
fn a_reply_over_the_tunnel_mtu_is_sdu_size_exceeded() {
    let req = natted_registration(3);
    let bytes = req.to_vec().expect("emit");
    // The request fits the hub's MTU; the reply, with its responder and three NAT CIEs, does not.
    let mut sim = Sim::new();
    let mut cfg = hub_cfg();
    cfg.mtu = bytes.len() as u16;
    let mut hub = Engine::new(1);
    hub.add_tunnel(Time(0), T, cfg).expect("hub");
    sim.add(hub, ip("192.0.2.1"));
    let (e, wire) = hub_error(&mut sim, &bytes);
    let (code, at, quoted) = error_offset(&e);
    assert_eq!((code, at), (ErrorCode::SDU_SIZE_EXCEEDED, 10), "ar$pktsz");
    // Quoted whole even though the indication is then 40 bytes over the MTU (the GRE layer
    // fragments it): tshark calls a trimmed quote malformed.
    assert_eq!(quoted, bytes);
    assert_eq!(wire.len(), bytes.len() + 40);
    assert_eq!(sim.nodes[0].engine.counters().sdu_size_exceeded, 1);
    let frames = [(Time(0), ip("192.0.2.1"), ip("198.51.100.11"), wire)];
    let rows = support::dissect_clean("sdu", &frames, &["nhrp.err.offset", "nhrp.err.code"]);
    assert_eq!(rows[0], ["10", "8"]);
    // With room for the reply, the same request is answered.
    let mut sim = Sim::new();
    let mut cfg = hub_cfg();
    cfg.mtu = 1400;
    let mut hub = Engine::new(1);
    hub.add_tunnel(Time(0), T, cfg).expect("hub");
    sim.add(hub, ip("192.0.2.1"));
    let (reply, _) = hub_error(&mut sim, &bytes);
    assert_eq!(reply.op, Operation::REGISTRATION_REPLY);
}

#[test]
fn a_packet_for_another_tunnels_nbma_address_is_dropped() {
    // A hub with two ISPs: tunnel 1 on 192.0.2.1, tunnel 2 on 203.0.113.1, one network id.
    let mut hub = Engine::new(1);
    hub.add_tunnel(Time(0), T, hub_cfg()).expect("tunnel 1");
    let mut second = TunnelConfig::new(ip("10.0.0.2"), ip("203.0.113.1"));
    second.auth = Some(b"s3cret".to_vec());
    hub.add_tunnel(Time(0), nhrp::TunnelId(2), second).expect("tunnel 2");
    let bytes = natted_registration(1).to_vec().expect("emit");
    hub.handle_datagram(Time(0), T, ip("198.51.100.11"), ip("203.0.113.1"), &bytes);
    assert!(hub.poll_transmit().is_none());
    assert_eq!(hub.counters().rx_wrong_nbma_dst, 1);
    assert!(hub.cache().get(T, &ip("10.0.1.0")).is_none());
    // To its own address (or one we do not know: behind NAT), the same packet registers.
    for dst in ["192.0.2.1", "10.9.9.9"] {
        hub.handle_datagram(Time(0), T, ip("198.51.100.11"), ip(dst), &bytes);
        assert_eq!(hub.poll_transmit().map(|t| t.nbma), Some(ip("198.51.100.11")));
    }
    assert!(hub.cache().get(T, &ip("10.0.1.0")).is_some());
    assert_eq!(hub.counters().rx_wrong_nbma_dst, 1);
}
