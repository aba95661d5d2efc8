//! The codec against bytes built by Scapy (`scapy.contrib.ikev2`, Scapy 2.6): parse → fields, emit
//! into junk-filled buffers byte for byte, every truncation an error, and parse(emit(x)) == x.
//!
//! Each constant is `raw(<expression above it>).hex()`, run as `python3 -c 'from scapy.contrib.ikev2
//! import *; ...'`. Scapy's Transform writes its Key Length attribute only with `length=12` and the whole
//! attribute word given as `key_length` (0x800e0100 = AF | type 14, 256 bits), and its IPv6 selector
//! computes Selector Length as 20 unless given `length=40` (RFC 7296 §3.13.1: 40).

use std::net::{Ipv4Addr, Ipv6Addr};

use ike::message::*;
use ike::Error;
use proptest::prelude::*;

// IKEv2(init_SPI=b'\x01\x02\x03\x04\x05\x06\x07\x08', exch_type=34, flags=0x08, id=0)/IKEv2_SA(prop=IKEv2_Proposal(proposal=1, proto=1, trans_nb=4, trans=IKEv2_Transform(transform_type=1, transform_id=20, length=12, key_length=0x800e0100)/IKEv2_Transform(transform_type=2, transform_id=5)/IKEv2_Transform(transform_type=4, transform_id=19)/IKEv2_Transform(transform_type=4, transform_id=31))/IKEv2_Proposal(proposal=2, proto=1, trans_nb=4, trans=IKEv2_Transform(transform_type=1, transform_id=12, length=12, key_length=0x800e0080)/IKEv2_Transform(transform_type=2, transform_id=7)/IKEv2_Transform(transform_type=3, transform_id=12)/IKEv2_Transform(transform_type=4, transform_id=14)))/IKEv2_KE(group=19, ke=bytes(range(64)))/IKEv2_Nonce(nonce=b'N'*32)/IKEv2_Notify(type=16388, notify=b'S'*20)/IKEv2_Notify(type=16389, notify=b'D'*20)/IKEv2_Notify(type=16430)/IKEv2_Notify(type=16431, notify=b'\x00\x02\x00\x03\x00\x04')/IKEv2_VendorID(vendorID=b'scapy-vid')
const INIT_REQ: &str = "0102030405060708000000000000000021202208000000000000013f2200005c0200002c010100040300000c01000014800e010003000008020000050300000804000013000000080400001f0000002c020100040300000c0100000c800e00800300000802000007030000080300000c000000080400000e2800004800130000000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f290000244e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e2900001c0000400453535353535353535353535353535353535353532900001c000040054444444444444444444444444444444444444444290000080000402e2b00000e0000402f0002000300040000000d73636170792d766964";
// IKEv2(init_SPI=b'\x01\x02\x03\x04\x05\x06\x07\x08', exch_type=34, flags=0x20, id=0)/IKEv2_Notify(type=17, notify=b'\x00\x13')
const INIT_RESP_KE: &str = "010203040506070800000000000000002920222000000000000000260000000a000000110013";
// IKEv2(init_SPI=b'\x01'*8, resp_SPI=b'\x02'*8, exch_type=35, flags=0x08, id=1)/IKEv2_Encrypted(next_payload=35, load=b'\x11'*16+b'\x22'*32+b'\x33'*16)
const AUTH_SK: &str = "010101010101010102020202020202022e20230800000001000000602300004411111111111111111111111111111111222222222222222222222222222222222222222222222222222222222222222233333333333333333333333333333333";
// IKEv2(init_SPI=b'\x01'*8, resp_SPI=b'\x02'*8, exch_type=35, flags=0x08, id=1)/IKEv2_Encrypted_Fragment(next_payload=35, frag_number=1, frag_total=3, load=b'\x44'*24)
const SKF: &str = "0101010101010101020202020202020235202308000000010000003c2300002000010003444444444444444444444444444444444444444444444444";
// IKEv2(init_SPI=b'\x01'*8, resp_SPI=b'\x02'*8, exch_type=36, flags=0x08, id=2)/IKEv2_TSi(number_of_TSs=1, traffic_selector=[IPv4TrafficSelector(IP_protocol_ID=47, start_port=0, end_port=65535, starting_address_v4='192.0.2.1', ending_address_v4='192.0.2.1')])/IKEv2_TSr(number_of_TSs=1, traffic_selector=[IPv6TrafficSelector(length=40, IP_protocol_ID=0, start_port=0, end_port=65535, starting_address_v6='2001:db8::1', ending_address_v6='2001:db8::ffff')])/IKEv2_Delete(proto=3, SPIsize=4, SPInum=2, SPI=[b'\x11\x22\x33\x44', b'\x55\x66\x77\x88'])/IKEv2_IDi(IDtype=2, ID=b'spoke1.example')/IKEv2_AUTH(auth_type=2, load=b'\x99'*32)/IKEv2_CERTREQ(cert_encoding=4, cert_authority=b'\x77'*20)
const INNER: &str = "010101010101010102020202020202022c20240800000002000000cb2d00001801000000072f00100000ffffc0000201c00002012a00003001000000080000280000ffff20010db800000000000000000000000120010db800000000000000000000ffff23000010030400021122334455667788270000160200000073706f6b65312e6578616d706c652600002802000000999999999999999999999999999999999999999999999999999999999999999900000019047777777777777777777777777777777777777777";

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

const ALL: [&str; 5] = [INIT_REQ, INIT_RESP_KE, AUTH_SK, SKF, INNER];

#[test]
fn init_request_fields() {
    let b = hex(INIT_REQ);
    let h = Header::parse(&b).unwrap();
    assert_eq!((h.major, h.minor, h.length as usize), (2, 0, b.len()));
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.spi_i, 0x0102_0304_0506_0708);
    assert_eq!(m.spi_r, 0);
    assert_eq!(m.exchange, ExchangeType::IKE_SA_INIT);
    assert!(m.flags.initiator() && !m.flags.response());
    assert_eq!(m.message_id, 0);
    let types: Vec<_> = m.payloads.iter().map(|p| p.body.payload_type()).collect();
    use PayloadType as P;
    assert_eq!(types, [P::SA, P::KE, P::NONCE, P::NOTIFY, P::NOTIFY, P::NOTIFY, P::NOTIFY, P::VENDOR_ID]);
    let PayloadBody::Sa(sa) = &m.payloads[0].body else { panic!() };
    assert_eq!(sa.proposals.len(), 2);
    let p1 = &sa.proposals[0];
    assert_eq!((p1.number, p1.protocol, p1.spi.len()), (1, ProtocolId::IKE, 0));
    assert_eq!(p1.transforms[0], Transform::encr(EncrId::ENCR_AES_GCM_16, Some(256)));
    assert_eq!(p1.transforms[0].key_length(), Some(256));
    assert_eq!(p1.transforms[1], Transform::prf(PrfId::PRF_HMAC_SHA2_256));
    assert_eq!(p1.transforms[2], Transform::dh(DhGroup::ECP_256));
    assert_eq!(p1.transforms[3], Transform::dh(DhGroup::CURVE25519));
    let p2 = &sa.proposals[1];
    assert_eq!(p2.number, 2);
    assert_eq!(
        p2.transforms,
        [
            Transform::encr(EncrId::ENCR_AES_CBC, Some(128)),
            Transform::prf(PrfId::PRF_HMAC_SHA2_512),
            Transform::integ(IntegId::AUTH_HMAC_SHA2_256_128),
            Transform::dh(DhGroup::MODP_2048),
        ]
    );
    let PayloadBody::Ke(ke) = &m.payloads[1].body else { panic!() };
    assert_eq!(ke.group, DhGroup::ECP_256);
    assert_eq!(ke.data, (0..64).collect::<Vec<u8>>());
    assert_eq!(m.payloads[2].body, PayloadBody::Nonce(vec![b'N'; 32]));
    let n: Vec<_> = m.notifies().collect();
    assert_eq!(*n[0], Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, vec![b'S'; 20]));
    assert_eq!(*n[1], Notify::new(NotifyType::NAT_DETECTION_DESTINATION_IP, vec![b'D'; 20]));
    assert_eq!(*n[2], Notify::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![]));
    assert_eq!(*n[3], Notify::new(NotifyType::SIGNATURE_HASH_ALGORITHMS, vec![0, 2, 0, 3, 0, 4]));
    assert_eq!(m.payloads[7].body, PayloadBody::VendorId(b"scapy-vid".to_vec()));
}

#[test]
fn invalid_ke_and_encrypted() {
    let m = Message::parse(&hex(INIT_RESP_KE)).unwrap();
    assert!(m.flags.response());
    let n = m.notifies().next().unwrap();
    assert_eq!((n.ty, n.ty.is_error(), &n.data[..]), (NotifyType::INVALID_KE_PAYLOAD, true, &[0, 19][..]));

    let m = Message::parse(&hex(AUTH_SK)).unwrap();
    assert_eq!((m.exchange, m.message_id, m.spi_r), (ExchangeType::IKE_AUTH, 1, 0x0202_0202_0202_0202));
    let PayloadBody::Encrypted(e) = &m.payloads[0].body else { panic!() };
    assert_eq!(e.next_payload, PayloadType::IDI);
    assert_eq!(e.data.len(), 64);

    let m = Message::parse(&hex(SKF)).unwrap();
    let PayloadBody::EncryptedFragment(f) = &m.payloads[0].body else { panic!() };
    assert_eq!((f.next_payload, f.number, f.total, &f.data[..]), (PayloadType::IDI, 1, 3, &[0x44; 24][..]));
}

#[test]
fn selectors_delete_id_auth_certreq() {
    let m = Message::parse(&hex(INNER)).unwrap();
    assert_eq!(m.exchange, ExchangeType::CREATE_CHILD_SA);
    let b: Vec<_> = m.payloads.iter().map(|p| p.body.clone()).collect();
    assert_eq!(
        b[0],
        PayloadBody::TsI(vec![TrafficSelector::V4 {
            protocol: 47,
            start_port: 0,
            end_port: 65535,
            start: Ipv4Addr::new(192, 0, 2, 1),
            end: Ipv4Addr::new(192, 0, 2, 1),
        }])
    );
    assert_eq!(
        b[1],
        PayloadBody::TsR(vec![TrafficSelector::V6 {
            protocol: 0,
            start_port: 0,
            end_port: 65535,
            start: "2001:db8::1".parse::<Ipv6Addr>().unwrap(),
            end: "2001:db8::ffff".parse::<Ipv6Addr>().unwrap(),
        }])
    );
    let PayloadBody::Delete(d) = &b[2] else { panic!() };
    assert_eq!(d.protocol, ProtocolId::ESP);
    assert_eq!(d.spis().collect::<Vec<_>>(), [&[0x11, 0x22, 0x33, 0x44][..], &[0x55, 0x66, 0x77, 0x88][..]]);
    assert_eq!(b[3], PayloadBody::IdI(Id { ty: IdType::ID_FQDN, data: b"spoke1.example".to_vec() }));
    assert_eq!(b[4], PayloadBody::Auth(Auth { method: AuthMethod::SHARED_KEY_MIC, data: vec![0x99; 32] }));
    assert_eq!(b[5], PayloadBody::CertReq(Cert { encoding: CertEncoding::X509_SIGNATURE, data: vec![0x77; 20] }));
}

#[test]
fn emit_matches_scapy_into_junk() {
    for v in ALL {
        let b = hex(v);
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.buffer_len().unwrap(), b.len());
        let mut out = vec![0xAA; b.len() + 7];
        assert_eq!(m.emit(&mut out).unwrap(), b.len());
        assert_eq!(&out[..b.len()], &b[..], "{v}");
        assert_eq!(out[b.len()..], [0xAA; 7]);
        assert!(matches!(m.emit(&mut vec![0; b.len() - 1]), Err(Error::BufferTooShort { .. })));
    }
}

#[test]
fn every_truncation_errors() {
    for v in ALL {
        let b = hex(v);
        for n in 0..b.len() {
            // As a datagram cut short...
            assert!(Message::parse(&b[..n]).is_err(), "{v} cut at {n}");
            // ...and with the Length field patched to agree, so the payload parsers see the cut.
            if n >= HEADER_LEN {
                let mut c = b[..n].to_vec();
                c[24..28].copy_from_slice(&(n as u32).to_be_bytes());
                assert!(Message::parse(&c).is_err(), "{v} cut and patched at {n}");
            }
        }
        let mut long = b.clone();
        long.push(0);
        assert!(matches!(Message::parse(&long), Err(Error::Malformed { offset: 24, .. })));
    }
}

#[test]
fn version_and_critical() {
    let mut b = hex(INIT_RESP_KE);
    b[17] = 0x30;
    let e = Message::parse(&b).unwrap_err();
    assert_eq!(e, Error::UnsupportedVersion { major: 3, minor: 0 });
    assert_eq!(e.notify(), Some(NotifyType::INVALID_MAJOR_VERSION));
    b[17] = 0x21; // minor versions are ignored
    assert!(Message::parse(&b).is_ok());

    // An unknown payload type (200) before the Notify: skipped and kept when not critical...
    let mut m = Message::parse(&hex(INIT_RESP_KE)).unwrap();
    m.payloads.insert(0, Payload::new(PayloadBody::Other { ty: PayloadType(200), data: vec![1, 2, 3] }));
    let mut b = m.to_vec().unwrap();
    assert_eq!(Message::parse(&b).unwrap(), m);
    // ...and refused when critical, naming the type for UNSUPPORTED_CRITICAL_PAYLOAD.
    b[HEADER_LEN + 1] = 0x80;
    let e = Message::parse(&b).unwrap_err();
    assert_eq!(e, Error::UnsupportedCritical { payload: PayloadType(200), offset: HEADER_LEN });
    assert_eq!((e.notify(), e.notify_data()), (Some(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD), Some([200])));
    // The critical bit on a known type is kept.
    let mut b = hex(INIT_RESP_KE);
    b[HEADER_LEN + 1] = 0x80;
    let m = Message::parse(&b).unwrap();
    assert!(m.payloads[0].critical);
    assert_eq!(m.to_vec().unwrap(), b);
}

#[test]
fn inner_chain_round_trip() {
    let m = Message::parse(&hex(INNER)).unwrap();
    let mut buf = vec![0xAA; chain_len(&m.payloads).unwrap()];
    let (first, n) = emit_chain(&m.payloads, &mut buf).unwrap();
    assert_eq!((first, n), (PayloadType::TSI, buf.len()));
    assert_eq!(parse_chain(first, &buf).unwrap(), m.payloads);
    assert_eq!(&buf[..], &hex(INNER)[HEADER_LEN..]);
}

// ---- property test ----

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn transform() -> impl Strategy<Value = Transform> {
    let attr = prop_oneof![
        any::<(u16, u16)>()
            .prop_map(|(t, v)| Attribute { ty: AttributeType(t & 0x7fff), value: AttributeValue::Tv(v) }),
        (any::<u16>(), bytes(8))
            .prop_map(|(t, v)| Attribute { ty: AttributeType(t & 0x7fff), value: AttributeValue::Tlv(v) }),
    ];
    (any::<u8>(), any::<u16>(), prop::collection::vec(attr, 0..3)).prop_map(|(t, id, attributes)| Transform {
        ty: TransformType(t),
        id,
        attributes,
    })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    prop_oneof![
        any::<(u8, u16, u16, u32, u32)>().prop_map(|(protocol, start_port, end_port, a, b)| TrafficSelector::V4 {
            protocol,
            start_port,
            end_port,
            start: a.into(),
            end: b.into()
        }),
        any::<(u8, u16, u16, u128, u128)>().prop_map(|(protocol, start_port, end_port, a, b)| TrafficSelector::V6 {
            protocol,
            start_port,
            end_port,
            start: a.into(),
            end: b.into()
        }),
        (9u8..=255, prop::collection::vec(any::<u8>(), 1..10))
            .prop_map(|(t, data)| TrafficSelector::Other { ty: TsType(t), data }),
    ]
}

fn body() -> impl Strategy<Value = PayloadBody> {
    let proposal = (any::<u8>(), any::<u8>(), bytes(9), prop::collection::vec(transform(), 0..5))
        .prop_map(|(number, p, spi, transforms)| Proposal { number, protocol: ProtocolId(p), spi, transforms });
    prop_oneof![
        prop::collection::vec(proposal, 1..4).prop_map(|proposals| PayloadBody::Sa(Sa { proposals })),
        (any::<u16>(), bytes(40)).prop_map(|(g, data)| PayloadBody::Ke(Ke { group: DhGroup(g), data })),
        (any::<u8>(), bytes(20)).prop_map(|(t, data)| PayloadBody::IdI(Id { ty: IdType(t), data })),
        (any::<u8>(), bytes(20)).prop_map(|(t, data)| PayloadBody::IdR(Id { ty: IdType(t), data })),
        (any::<u8>(), bytes(20)).prop_map(|(t, data)| PayloadBody::Cert(Cert { encoding: CertEncoding(t), data })),
        (any::<u8>(), bytes(20)).prop_map(|(t, data)| PayloadBody::CertReq(Cert { encoding: CertEncoding(t), data })),
        (any::<u8>(), bytes(20)).prop_map(|(t, data)| PayloadBody::Auth(Auth { method: AuthMethod(t), data })),
        bytes(40).prop_map(PayloadBody::Nonce),
        bytes(20).prop_map(PayloadBody::VendorId),
        (any::<u8>(), bytes(5), any::<u16>(), bytes(20)).prop_map(|(p, spi, t, data)| PayloadBody::Notify(Notify {
            protocol: ProtocolId(p),
            spi,
            ty: NotifyType(t),
            data
        })),
        (any::<u8>(), 0u8..9, 0usize..4).prop_map(|(p, size, n)| PayloadBody::Delete(Delete {
            protocol: ProtocolId(p),
            spi_size: size,
            spis: vec![0x5a; usize::from(size) * if size == 0 { 0 } else { n }],
        })),
        prop::collection::vec(selector(), 0..4).prop_map(PayloadBody::TsI),
        prop::collection::vec(selector(), 0..4).prop_map(PayloadBody::TsR),
        (prop_oneof![Just(47u8), Just(48u8), 54u8..=255].prop_map(PayloadType), bytes(20))
            .prop_map(|(ty, data)| PayloadBody::Other { ty, data }),
    ]
}

fn last() -> impl Strategy<Value = Option<PayloadBody>> {
    prop::option::of(prop_oneof![
        (any::<u8>(), bytes(40))
            .prop_map(|(n, data)| PayloadBody::Encrypted(Encrypted { next_payload: PayloadType(n), data })),
        (any::<u8>(), 1u16..10, 0u16..10, bytes(40)).prop_map(|(n, number, extra, data)| {
            PayloadBody::EncryptedFragment(EncryptedFragment {
                next_payload: PayloadType(n),
                number,
                total: number + extra,
                data,
            })
        }),
    ])
}

fn message() -> impl Strategy<Value = Message> {
    let payload = (body(), any::<bool>()).prop_map(|(body, c)| {
        // Only known types may carry the critical bit and survive a parse.
        let critical = c && !matches!(body, PayloadBody::Other { .. });
        Payload { critical, body }
    });
    (any::<(u64, u64, u8, u8, u8, u32)>(), prop::collection::vec(payload, 0..6), last()).prop_map(
        |((spi_i, spi_r, minor, x, f, message_id), mut payloads, last)| {
            payloads.extend(last.map(Payload::new));
            Message {
                spi_i,
                spi_r,
                minor: minor & 0x0f,
                exchange: ExchangeType(x),
                flags: Flags(f),
                message_id,
                payloads,
            }
        },
    )
}

proptest! {
    #[test]
    fn parse_emit_round_trip(m in message()) {
        let len = m.buffer_len().unwrap();
        let mut out = vec![0xAA; len];
        prop_assert_eq!(m.emit(&mut out).unwrap(), len);
        prop_assert_eq!(Message::parse(&out).unwrap(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(300)) {
        if let Ok(m) = Message::parse(&b) {
            prop_assert_eq!(Message::parse(&m.to_vec().unwrap()).unwrap(), m);
        }
    }
}

#[test]
fn receive_rules() {
    // Bytes after the Encrypted payload (§3.14: it is the last) are refused.
    let mut b = hex(AUTH_SK);
    b.extend_from_slice(&[0, 0, 0, 4]);
    let n = b.len() as u32;
    b[24..28].copy_from_slice(&n.to_be_bytes());
    assert!(matches!(Message::parse(&b), Err(Error::Malformed { what: "encrypted payload", .. })));
    // Fragment number 0, or above the total (RFC 7383 §2.6.1).
    for (num, total) in [(0u16, 3u16), (4, 3)] {
        let mut b = hex(SKF);
        b[32..34].copy_from_slice(&num.to_be_bytes());
        b[34..36].copy_from_slice(&total.to_be_bytes());
        assert!(matches!(Message::parse(&b), Err(Error::Malformed { what: "encrypted fragment", offset: 32, .. })));
    }
    // A payload length below the generic header's 4 octets.
    let mut b = hex(INIT_RESP_KE);
    b[HEADER_LEN + 3] = 3;
    assert!(matches!(Message::parse(&b), Err(Error::Malformed { offset: 30, .. })));
    // A transform count that disagrees with the transforms.
    let mut b = hex(INIT_REQ);
    b[HEADER_LEN + 4 + 7] = 5;
    assert!(matches!(Message::parse(&b), Err(Error::Malformed { what: "proposal", .. })));
    // Emit refuses what cannot be said on the wire.
    let d = Delete { protocol: ProtocolId::ESP, spi_size: 4, spis: vec![1, 2, 3] };
    let m = Message {
        spi_i: 1,
        spi_r: 2,
        minor: 0,
        exchange: ExchangeType::INFORMATIONAL,
        flags: Flags::INITIATOR,
        message_id: 5,
        payloads: vec![PayloadBody::Delete(d).into()],
    };
    assert!(matches!(m.to_vec(), Err(Error::TooLong { .. })));
}
