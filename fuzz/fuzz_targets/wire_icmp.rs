//! Arbitrary bytes as an ICMP (first byte even) or ICMPv6 (odd) message; for ICMPv6 the next 32 bytes
//! are the pseudo-header's source and destination. No parser may panic, a parsed `Repr` survives
//! emit → parse, and the header quoted in an error message can be viewed and walked.
#![no_main]

use core::net::Ipv6Addr;

use dataplane::wire::{icmpv4, icmpv6, ipv4, ipv6};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    if selector & 1 == 0 {
        v4(rest);
    } else if rest.len() >= 32 {
        let (addrs, msg) = rest.split_at(32);
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&addrs[..16]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&addrs[16..]).unwrap());
        v6(msg, &src, &dst);
    }
});

fn v4(msg: &[u8]) {
    let Ok(p) = icmpv4::Packet::new_checked(msg) else { return };
    let _ = (p.echo_ident(), p.next_hop_mtu(), p.data());
    let Ok(repr) = icmpv4::Repr::parse(&p) else { return };
    if let icmpv4::Repr::DstUnreachable { invoking, .. } | icmpv4::Repr::TimeExceeded { invoking, .. } = repr {
        let q = ipv4::Packet::new_quoted(invoking).expect("parse checked the quoted header");
        let _ = (q.src_addr(), q.dst_addr(), q.protocol(), q.options(), q.payload());
    }
    let mut buf = vec![0xAA; repr.buffer_len()];
    repr.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..]));
    assert_eq!(icmpv4::Repr::parse(&icmpv4::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
}

fn v6(msg: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
    let Ok(p) = icmpv6::Packet::new_checked(msg) else { return };
    let _ = (p.target_addr(), p.ndp_options(), p.rest_of_header(), p.data());
    let Ok(repr) = icmpv6::Repr::parse(&p, src, dst) else { return };
    if let icmpv6::Repr::DstUnreachable { invoking, .. }
    | icmpv6::Repr::PktTooBig { invoking, .. }
    | icmpv6::Repr::TimeExceeded { invoking, .. } = repr
    {
        let q = ipv6::Packet::new_quoted(invoking).expect("parse checked the quoted header");
        let _ = (q.src_addr(), q.dst_addr(), q.payload(), q.upper_layer());
    }
    let mut buf = vec![0xAA; repr.buffer_len()];
    repr.emit(&mut icmpv6::Packet::new_unchecked(&mut buf[..]), src, dst);
    let again = icmpv6::Repr::parse(&icmpv6::Packet::new_checked(&buf[..]).unwrap(), src, dst);
    assert_eq!(again, Ok(repr));
}
