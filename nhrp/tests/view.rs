//! The zero-copy view (`wire::View`) against the published vectors and the owned parser: every getter
//! reads what the parser reads, every truncation is refused, and no input makes a getter or the
//! extension iterator panic.

use std::net::IpAddr;

use nhrp::wire::{ExtensionBody, Packet, View};
use proptest::prelude::*;

const VECTORS: &str = include_str!("vectors/nhrp_vectors.txt");

fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    VECTORS.lines().filter_map(|l| l.split_once(' ')).map(|(n, h)| (n, hex::decode(h.trim()).expect("hex"))).collect()
}

fn bytes_of(a: Option<IpAddr>) -> Vec<u8> {
    match a {
        None => vec![],
        Some(IpAddr::V4(a)) => a.octets().to_vec(),
        Some(IpAddr::V6(a)) => a.octets().to_vec(),
    }
}

#[test]
fn the_view_reads_what_the_parser_reads() {
    let all = vectors();
    assert!(all.len() >= 8);
    for (name, b) in all {
        let p = Packet::parse(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = View::new_checked(&b[..]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(v.checksum_ok(), "{name}");
        assert_eq!(v.version(), 1);
        assert_eq!((v.nbma_family(), v.proto_family()), (Some(p.nbma_family), Some(p.proto_family)), "{name}");
        assert_eq!((v.operation(), v.hop_count()), (p.op, p.hop_count), "{name}");
        assert_eq!(v.src_nbma(), bytes_of(p.src_nbma), "{name}");
        assert_eq!(v.src_proto(), bytes_of(p.src_proto), "{name}");
        assert_eq!(v.dst_proto(), bytes_of(p.dst_proto), "{name}");
        if let Some((flags, id)) = p.flags_and_id() {
            assert_eq!((v.flags(), v.request_id()), (flags, id), "{name}");
        }
        let exts: Vec<_> = v.extensions().map(|x| x.expect("well-formed")).collect();
        assert_eq!(exts.len(), p.extensions.len(), "{name}");
        for (x, e) in exts.iter().zip(&p.extensions) {
            assert_eq!((x.kind, x.compulsory), (e.body.kind(), e.compulsory), "{name}");
            if let ExtensionBody::Unknown { data, .. } = &e.body {
                assert_eq!(x.value, &data[..]);
            }
        }
        // A flipped bit anywhere is seen by the checksum.
        let mut bad = b.clone();
        bad[b.len() / 2] ^= 0x10;
        assert!(!View::new_checked(&bad[..]).is_ok_and(|v| v.checksum_ok()), "{name}: damage unseen");
    }
}

#[test]
fn every_truncation_is_refused() {
    for (name, b) in vectors() {
        let size = usize::from(u16::from_be_bytes([b[10], b[11]]));
        for n in 0..size {
            assert!(View::new_checked(&b[..n]).is_err(), "{name}: {n} of {size} bytes accepted");
        }
    }
}

#[test]
fn a_missing_end_extension_is_reported_by_the_iterator() {
    let (_, b) = vectors().into_iter().find(|(_, b)| b[14..16] != [0, 0]).expect("a vector with extensions");
    let size = usize::from(u16::from_be_bytes([b[10], b[11]]));
    // Cut the End extension off and shrink ar$pktsz to match.
    let mut cut = b[..size - 4].to_vec();
    cut[10..12].copy_from_slice(&((size - 4) as u16).to_be_bytes());
    let v = View::new_checked(&cut[..]).expect("the header is intact");
    assert!(v.extensions().last().is_some_and(|x| x.is_err()));
}

proptest! {
    #[test]
    fn no_input_makes_the_view_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(v) = View::new_checked(&b[..]) {
            let _ = (v.checksum_ok(), v.operation(), v.flags(), v.request_id(), v.hop_count());
            let _ = (v.src_nbma().len(), v.src_proto().len(), v.dst_proto().len());
            let n = v.extensions().count();
            prop_assert!(n <= b.len() / 4 + 1);
        }
    }
}
