//! The codec against NHRP packets built independently (Python `struct` from the RFC 2332 §5 layout, in
//! `vectors/make_vectors.py`): each parses to the fields stated here, re-emits to the same bytes into a
//! junk-filled buffer, and every truncation fails cleanly.

use std::net::IpAddr;

use nhrp::wire::{
    flags, Body, Cie, CieCode, Error, ErrorCode, Extension, ExtensionBody, ExtensionType, Family, Operation, Packet,
};

const VECTORS: &str = include_str!("vectors/nhrp_vectors.txt");

fn vector(name: &str) -> Vec<u8> {
    let line = VECTORS.lines().find(|l| l.split(' ').next() == Some(name)).expect("vector exists");
    hex::decode(line.split(' ').nth(1).expect("hex")).expect("valid hex")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn empty(kind: fn(Vec<Cie>) -> ExtensionBody) -> Extension {
    Extension { compulsory: true, body: kind(Vec::new()) }
}

fn cie(code: u8, prefix_len: u8, mtu: u16, holding_time: u16, nbma: Option<&str>, proto: Option<&str>) -> Cie {
    Cie { code: CieCode(code), prefix_len, mtu, holding_time, preference: 0, nbma: nbma.map(ip), proto: proto.map(ip) }
}

fn expected(name: &str) -> Packet {
    let auth =
        Extension { compulsory: true, body: ExtensionBody::Authentication { kind: 1, data: b"cisco123".to_vec() } };
    match name {
        "reg_request_v4" => Packet {
            nbma_family: Family::V4,
            proto_family: Family::V4,
            hop_count: 255,
            op: Operation::REGISTRATION_REQUEST,
            src_nbma: Some(ip("198.51.100.11")),
            src_proto: Some(ip("10.0.0.11")),
            dst_proto: Some(ip("10.0.0.1")),
            body: Body::Cies {
                flags: flags::REG_UNIQUE | flags::NAT,
                request_id: 7,
                cies: vec![cie(0, 0xff, 1514, 7200, None, None)],
            },
            extensions: vec![
                empty(ExtensionBody::ResponderAddress),
                empty(ExtensionBody::ForwardTransit),
                empty(ExtensionBody::ReverseTransit),
                auth,
                Extension { compulsory: false, body: ExtensionBody::NatAddress(Vec::new()) },
            ],
        },
        "reg_reply_v4" => Packet {
            hop_count: 254,
            op: Operation::REGISTRATION_REPLY,
            extensions: vec![
                Extension {
                    compulsory: true,
                    body: ExtensionBody::ResponderAddress(vec![cie(
                        0,
                        32,
                        0,
                        7200,
                        Some("192.0.2.1"),
                        Some("10.0.0.1"),
                    )]),
                },
                empty(ExtensionBody::ForwardTransit),
                empty(ExtensionBody::ReverseTransit),
                Extension {
                    compulsory: false,
                    body: ExtensionBody::NatAddress(vec![cie(0, 32, 0, 0, Some("203.0.113.7"), Some("10.0.0.11"))]),
                },
            ],
            ..expected("reg_request_v4")
        },
        "res_request_v6_over_v4" => Packet {
            nbma_family: Family::V4,
            proto_family: Family::V6,
            hop_count: 15,
            op: Operation::RESOLUTION_REQUEST,
            src_nbma: Some(ip("198.51.100.11")),
            src_proto: Some(ip("2001:db8::11")),
            dst_proto: Some(ip("2001:db8:2::5")),
            body: Body::Cies {
                flags: flags::RES_ROUTER | flags::RES_SOURCE_STABLE | flags::NAT,
                request_id: 0x0102_0304,
                cies: vec![cie(0, 128, 0, 600, None, None)],
            },
            extensions: vec![
                empty(ExtensionBody::ResponderAddress),
                Extension {
                    compulsory: true,
                    body: ExtensionBody::ForwardTransit(vec![cie(
                        0,
                        128,
                        0,
                        600,
                        Some("192.0.2.1"),
                        Some("2001:db8::1"),
                    )]),
                },
                empty(ExtensionBody::ReverseTransit),
            ],
        },
        "res_reply_v4_over_v6" => Packet {
            nbma_family: Family::V6,
            proto_family: Family::V4,
            hop_count: 255,
            op: Operation::RESOLUTION_REPLY,
            src_nbma: Some(ip("2001:db8:100::11")),
            src_proto: Some(ip("10.0.0.11")),
            dst_proto: Some(ip("10.2.0.5")),
            body: Body::Cies {
                flags: flags::RES_ROUTER
                    | flags::RES_AUTHORITATIVE
                    | flags::RES_DEST_STABLE
                    | flags::RES_SOURCE_STABLE
                    | flags::NAT,
                request_id: 99,
                cies: vec![Cie { preference: 1, ..cie(0, 24, 1400, 600, Some("2001:db8:100::22"), Some("10.0.0.22")) }],
            },
            extensions: vec![Extension {
                compulsory: true,
                body: ExtensionBody::ResponderAddress(vec![cie(
                    0,
                    24,
                    0,
                    600,
                    Some("2001:db8:100::22"),
                    Some("10.0.0.22"),
                )]),
            }],
        },
        "purge_request_v6" => Packet {
            nbma_family: Family::V6,
            proto_family: Family::V6,
            hop_count: 1,
            op: Operation::PURGE_REQUEST,
            src_nbma: Some(ip("2001:db8:100::1")),
            src_proto: Some(ip("2001:db8::1")),
            dst_proto: Some(ip("2001:db8::11")),
            body: Body::Cies {
                flags: flags::PURGE_NO_REPLY,
                request_id: 42,
                cies: vec![
                    cie(0, 128, 0, 0, None, Some("2001:db8::11")),
                    cie(0, 64, 0, 0, None, Some("2001:db8:11::")),
                ],
            },
            extensions: vec![],
        },
        "purge_reply_v4" => Packet {
            nbma_family: Family::V4,
            proto_family: Family::V4,
            hop_count: 255,
            op: Operation::PURGE_REPLY,
            src_nbma: Some(ip("192.0.2.1")),
            src_proto: Some(ip("10.0.0.1")),
            dst_proto: Some(ip("10.0.0.11")),
            body: Body::Cies { flags: 0, request_id: 42, cies: vec![cie(0, 32, 0, 0, None, Some("10.0.0.11"))] },
            extensions: vec![],
        },
        // Parses like the one without extensions; emitting it drops the lone End.
        "purge_reply_end_only_v4" => expected("purge_reply_v4"),
        "error_auth_v4" => Packet {
            op: Operation::ERROR_INDICATION,
            body: Body::Error { code: ErrorCode::AUTHENTICATION_FAILURE, offset: 48, packet: (0..24).collect() },
            ..expected("purge_reply_v4")
        },
        "traffic_v4" => Packet {
            hop_count: 1,
            op: Operation::TRAFFIC_INDICATION,
            dst_proto: Some(ip("10.1.0.10")),
            body: Body::Traffic {
                code: 0,
                packet: hex::decode(
                    "450000540001000040010000" /* */
                        .to_owned()
                        + "0a01000a0a02000a0800000000010001",
                )
                .expect("hex"),
            },
            ..expected("purge_reply_v4")
        },
        "vendor_unknown_v4" => Packet {
            nbma_family: Family::V4,
            proto_family: Family::V4,
            hop_count: 255,
            op: Operation::RESOLUTION_REQUEST,
            src_nbma: Some(ip("198.51.100.11")),
            src_proto: Some(ip("10.0.0.11")),
            dst_proto: Some(ip("10.0.0.22")),
            body: Body::Cies { flags: flags::RES_ROUTER, request_id: 5, cies: vec![] },
            extensions: vec![
                Extension {
                    compulsory: false,
                    body: ExtensionBody::VendorPrivate { vendor: 0x00000c, data: vec![0xde, 0xad] },
                },
                Extension {
                    compulsory: true,
                    body: ExtensionBody::Unknown { kind: ExtensionType(0x1234), data: vec![1, 2, 3] },
                },
            ],
        },
        _ => panic!("no expectation for {name}"),
    }
}

fn names() -> Vec<&'static str> {
    VECTORS.lines().filter_map(|l| l.split(' ').next()).collect()
}

#[test]
fn every_vector_parses_to_its_fields() {
    assert_eq!(names().len(), 10);
    for name in names() {
        let got = Packet::parse(&vector(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, expected(name), "{name}");
    }
}

#[test]
fn every_vector_re_emits_byte_for_byte_into_junk() {
    for name in names().into_iter().filter(|n| *n != "purge_reply_end_only_v4") {
        let bytes = vector(name);
        let pkt = expected(name);
        assert_eq!(pkt.buffer_len(), Ok(bytes.len()), "{name}");
        let mut buf = vec![0xAA; bytes.len() + 7];
        assert_eq!(pkt.emit(&mut buf), Ok(bytes.len()), "{name}");
        assert_eq!(hex::encode(&buf[..bytes.len()]), hex::encode(&bytes), "{name}");
        assert!(buf[bytes.len()..].iter().all(|&b| b == 0xAA), "{name}: wrote past the end");
        assert_eq!(
            pkt.emit(&mut buf[..bytes.len() - 1]),
            Err(Error::BufferTooShort { needed: bytes.len(), got: bytes.len() - 1 })
        );
    }
}

#[test]
fn every_truncation_fails() {
    for name in names() {
        let bytes = vector(name);
        for len in 0..bytes.len() {
            assert!(Packet::parse(&bytes[..len]).is_err(), "{name}: parsed at length {len}");
        }
    }
}

/// Truncated inside the packet with `ar$pktsz` and the checksum made consistent again, so that the inner
/// length checks (CIEs, extensions, End) are what must catch it.
#[test]
fn every_consistent_truncation_of_a_packet_with_extensions_fails() {
    for name in names() {
        let bytes = vector(name);
        if bytes[14..16] == [0, 0] {
            continue;
        }
        for len in 20..bytes.len() {
            let mut cut = bytes[..len].to_vec();
            cut[10..12].copy_from_slice(&(len as u16).to_be_bytes());
            cut[12..14].copy_from_slice(&[0, 0]);
            let sum = nhrp::wire::checksum(&cut);
            cut[12..14].copy_from_slice(&sum.to_be_bytes());
            assert!(Packet::parse(&cut).is_err(), "{name}: parsed at consistent length {len}");
        }
    }
}

#[test]
fn damage_is_reported_where_it_is() {
    let mut b = vector("reg_request_v4");
    b[30] ^= 1;
    assert!(matches!(Packet::parse(&b), Err(Error::Checksum { len: 88, .. })));
    let mut b = vector("reg_request_v4");
    b[16] = 2; // version
    b[12..14].copy_from_slice(&[0, 0]);
    let s = nhrp::wire::checksum(&b);
    b[12..14].copy_from_slice(&s.to_be_bytes());
    assert_eq!(Packet::parse(&b), Err(Error::Version(2)));
    // Link-layer padding after ar$pktsz is ignored.
    let mut b = vector("traffic_v4");
    b.extend_from_slice(&[0; 6]);
    assert_eq!(Packet::parse(&b), Ok(expected("traffic_v4")));
}
