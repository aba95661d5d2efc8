//! Property tests of the codec: `parse(emit(x)) == x` for arbitrary packets of every operation and
//! extension, in all four NBMA/protocol family combinations; emitting writes every byte it claims; and
//! parsing arbitrary or mutated bytes never panics.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nhrp::wire::{Body, Cie, CieCode, ErrorCode, Extension, ExtensionBody, ExtensionType, Family, Operation, Packet};
use proptest::prelude::*;

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::V4), Just(Family::V6)]
}

fn addr(f: Family) -> BoxedStrategy<IpAddr> {
    match f {
        Family::V4 => any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))).boxed(),
        Family::V6 => any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))).boxed(),
    }
}

fn cie(nf: Family, pf: Family) -> impl Strategy<Value = Cie> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
        proptest::option::of(addr(nf)),
        proptest::option::of(addr(pf)),
    )
        .prop_map(|(code, prefix_len, mtu, holding_time, preference, nbma, proto)| Cie {
            code: CieCode(code),
            prefix_len,
            mtu,
            holding_time,
            preference,
            nbma,
            proto,
        })
}

fn cies(nf: Family, pf: Family) -> impl Strategy<Value = Vec<Cie>> {
    proptest::collection::vec(cie(nf, pf), 0..4)
}

fn extension(nf: Family, pf: Family) -> impl Strategy<Value = Extension> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..24);
    let body = prop_oneof![
        cies(nf, pf).prop_map(ExtensionBody::ResponderAddress),
        cies(nf, pf).prop_map(ExtensionBody::ForwardTransit),
        cies(nf, pf).prop_map(ExtensionBody::ReverseTransit),
        cies(nf, pf).prop_map(ExtensionBody::NatAddress),
        (any::<u32>(), bytes()).prop_map(|(kind, data)| ExtensionBody::Authentication { kind, data }),
        (0..=0xff_ffffu32, bytes()).prop_map(|(vendor, data)| ExtensionBody::VendorPrivate { vendor, data }),
        (prop_oneof![1..3u16, Just(6u16), 10..0x4000u16], bytes())
            .prop_map(|(k, data)| ExtensionBody::Unknown { kind: ExtensionType(k), data }),
    ];
    (any::<bool>(), body).prop_map(|(compulsory, body)| Extension { compulsory, body })
}

prop_compose! {
    fn packet()(nf in family(), pf in family())(
        nf in Just(nf), pf in Just(pf),
        hop_count in any::<u8>(),
        op in 1..=8u8,
        src_nbma in proptest::option::of(addr(nf)),
        src_proto in proptest::option::of(addr(pf)),
        dst_proto in proptest::option::of(addr(pf)),
        flags in any::<u16>(), word in any::<u32>(),
        cies in cies(nf, pf),
        quoted in proptest::collection::vec(any::<u8>(), 0..40),
        extensions in proptest::collection::vec(extension(nf, pf), 0..5),
    ) -> Packet {
        let body = match op {
            7 => Body::Error { code: ErrorCode((word >> 16) as u16), offset: word as u16, packet: quoted },
            8 => Body::Traffic { code: flags, packet: quoted },
            _ => Body::Cies { flags, request_id: word, cies },
        };
        Packet { nbma_family: nf, proto_family: pf, hop_count, op: Operation(op), src_nbma, src_proto, dst_proto, body, extensions }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_inverts_emit(p in packet()) {
        let len = p.buffer_len().expect("emittable");
        for junk in [0x00u8, 0xAA, 0xFF] {
            let mut buf = vec![junk; len];
            prop_assert_eq!(p.emit(&mut buf), Ok(len));
            prop_assert_eq!(Packet::parse(&buf), Ok(p.clone()));
        }
    }

    #[test]
    fn one_flipped_byte_never_panics(p in packet(), at in any::<prop::sample::Index>(), x in 1..=255u8) {
        let mut b = p.to_vec().expect("emittable");
        let i = at.index(b.len());
        b[i] ^= x;
        // The checksum catches every single-byte change outside itself.
        if !(12..14).contains(&i) {
            prop_assert!(Packet::parse(&b).is_err());
        } else {
            let _ = Packet::parse(&b);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Packet::parse(&b);
    }
}

#[test]
fn wrong_family_and_mismatched_body_are_refused() {
    let p = Packet {
        nbma_family: Family::V4,
        proto_family: Family::V4,
        hop_count: 1,
        op: Operation::PURGE_REPLY,
        src_nbma: Some("2001:db8::1".parse().expect("v6")),
        src_proto: None,
        dst_proto: None,
        body: Body::Cies { flags: 0, request_id: 0, cies: vec![] },
        extensions: vec![],
    };
    assert!(p.buffer_len().is_err());
    let p = Packet { src_nbma: None, op: Operation::TRAFFIC_INDICATION, ..p };
    assert!(p.buffer_len().is_err());
}
