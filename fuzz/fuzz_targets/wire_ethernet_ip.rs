//! Feeds arbitrary frames through Ethernet → ARP / IPv4 / IPv6 (extension headers) → UDP, TCP, ICMP,
//! ICMPv6, GRE: no parser may panic, every `Repr` that parses must survive emit → parse unchanged,
//! and MSS clamping must keep a valid TCP checksum valid.
#![no_main]

use core::net::Ipv6Addr;

use dataplane::wire::checksum::PseudoHeader;
use dataplane::wire::ethernet::EtherType;
use dataplane::wire::{arp, ethernet, gre, icmpv4, icmpv6, ipv4, ipv6, tcp, udp, IpProtocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = ethernet::Packet::new_checked(data) else { return };
    let repr = ethernet::Repr::parse(&frame).expect("a checked frame parses");
    let mut buf = vec![0xAA; repr.buffer_len()];
    repr.emit(&mut ethernet::Packet::new_unchecked(&mut buf[..]));
    assert_eq!(ethernet::Repr::parse(&ethernet::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    match frame.ethertype() {
        EtherType::ARP => arp_path(frame.payload()),
        EtherType::IPV4 => ipv4_path(frame.payload()),
        EtherType::IPV6 => ipv6_path(frame.payload()),
        _ => {}
    }
});

fn arp_path(data: &[u8]) {
    let Ok(p) = arp::Packet::new_checked(data) else { return };
    let Ok(repr) = arp::Repr::parse(&p) else { return };
    let mut buf = vec![0xAA; repr.buffer_len()];
    repr.emit(&mut arp::Packet::new_unchecked(&mut buf[..]));
    assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
}

fn ipv4_path(data: &[u8]) {
    let Ok(p) = ipv4::Packet::new_checked(data) else { return };
    let Ok(repr) = ipv4::Repr::parse(&p) else { return };
    let hl = repr.buffer_len();
    let mut buf = vec![0xAA; hl + repr.payload_len];
    buf[hl..].copy_from_slice(p.payload());
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]));
    assert_eq!(ipv4::Repr::parse(&ipv4::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    if p.frag_offset() != 0 {
        return;
    }
    let (src, dst) = (p.src_addr(), p.dst_addr());
    match p.protocol() {
        IpProtocol::UDP => udp_path(p.payload(), &src, &dst),
        IpProtocol::TCP => tcp_path(p.payload(), &src, &dst),
        IpProtocol::GRE => gre_path(p.payload()),
        IpProtocol::ICMP => icmpv4_path(p.payload()),
        _ => {}
    }
}

fn ipv6_path(data: &[u8]) {
    let Ok(p) = ipv6::Packet::new_checked(data) else { return };
    let repr = ipv6::Repr::parse(&p).expect("a checked IPv6 header parses");
    let mut buf = vec![0xAA; repr.buffer_len() + repr.payload_len];
    buf[ipv6::HEADER_LEN..].copy_from_slice(p.payload());
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut buf[..]));
    assert_eq!(ipv6::Repr::parse(&ipv6::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
    let Ok(ul) = p.upper_layer() else { return };
    assert!(ul.offset >= ipv6::HEADER_LEN && ul.offset <= ipv6::HEADER_LEN + p.payload().len());
    if let Some(f) = ul.fragment {
        let mut fb = [0xAA; ipv6::FragmentRepr::LEN];
        f.emit(&mut fb);
        assert_eq!(ipv6::FragmentRepr::parse(&fb), Ok(f));
        if f.offset != 0 {
            return;
        }
    }
    let l4 = &p.payload()[ul.offset - ipv6::HEADER_LEN..];
    let (src, dst) = (p.src_addr(), p.dst_addr());
    match ul.protocol {
        IpProtocol::UDP => udp_path(l4, &src, &dst),
        IpProtocol::TCP => tcp_path(l4, &src, &dst),
        IpProtocol::GRE => gre_path(l4),
        IpProtocol::ICMPV6 => icmpv6_path(l4, &src, &dst),
        _ => {}
    }
}

fn udp_path<A: PseudoHeader>(data: &[u8], src: &A, dst: &A) {
    let Ok(p) = udp::Packet::new_checked(data) else { return };
    let Ok(repr) = udp::Repr::parse(&p, src, dst) else { return };
    let mut buf = vec![0xAA; repr.buffer_len() + p.payload().len()];
    buf[udp::HEADER_LEN..].copy_from_slice(p.payload());
    let mut q = udp::Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut q, p.payload().len());
    q.fill_checksum(src, dst);
    assert_eq!(udp::Repr::parse(&udp::Packet::new_checked(&buf[..]).unwrap(), src, dst), Ok(repr));
}

fn tcp_path<A: PseudoHeader>(data: &[u8], src: &A, dst: &A) {
    let Ok(p) = tcp::Packet::new_checked(data) else { return };
    // Clamping must keep a valid checksum valid and only ever lower the MSS.
    let mut clamped = data.to_vec();
    let mut c = tcp::Packet::new_checked(&mut clamped[..]).unwrap();
    let before = c.max_seg_size();
    let valid = c.verify_checksum(src, dst);
    if c.clamp_mss(536) {
        assert!(matches!(before, Ok(Some(m)) if m > 536));
        assert_eq!(c.max_seg_size(), Ok(Some(536)));
        assert!(!valid || c.verify_checksum(src, dst), "clamping broke a valid checksum");
    }
    let Ok(repr) = tcp::Repr::parse(&p, src, dst) else { return };
    let hl = repr.buffer_len();
    let mut buf = vec![0xAA; hl + p.payload().len()];
    buf[hl..].copy_from_slice(p.payload());
    let mut q = tcp::Packet::new_unchecked(&mut buf[..]);
    repr.emit(&mut q);
    q.fill_checksum(src, dst);
    assert_eq!(tcp::Repr::parse(&tcp::Packet::new_checked(&buf[..]).unwrap(), src, dst), Ok(repr));
}

fn gre_path(data: &[u8]) {
    let Ok(p) = gre::Packet::new_checked(data) else { return };
    let Ok(repr) = gre::Repr::parse(&p) else { return };
    let hl = repr.buffer_len();
    let mut buf = vec![0xAA; hl + p.payload().len()];
    buf[hl..].copy_from_slice(p.payload());
    repr.emit(&mut gre::Packet::new_unchecked(&mut buf[..]));
    assert_eq!(gre::Repr::parse(&gre::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
}

fn icmpv4_path(data: &[u8]) {
    let Ok(p) = icmpv4::Packet::new_checked(data) else { return };
    let Ok(repr) = icmpv4::Repr::parse(&p) else { return };
    let mut buf = vec![0xAA; repr.buffer_len()];
    repr.emit(&mut icmpv4::Packet::new_unchecked(&mut buf[..]));
    assert_eq!(icmpv4::Repr::parse(&icmpv4::Packet::new_checked(&buf[..]).unwrap()), Ok(repr));
}

fn icmpv6_path(data: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) {
    let Ok(p) = icmpv6::Packet::new_checked(data) else { return };
    let Ok(repr) = icmpv6::Repr::parse(&p, src, dst) else { return };
    let mut buf = vec![0xAA; repr.buffer_len()];
    repr.emit(&mut icmpv6::Packet::new_unchecked(&mut buf[..]), src, dst);
    let again = icmpv6::Repr::parse(&icmpv6::Packet::new_checked(&buf[..]).unwrap(), src, dst);
    assert_eq!(again, Ok(repr));
}
