//! IPv6 header (RFC 8200 §3) and the walk of its extension headers (RFC 8200 §4) to the upper layer.
//!
//! Layer 3. [`Packet::new_checked`] guarantees version 6, a 40-byte header and
//! `40 + payload length ≤ buffer length` (the buffer may hold Ethernet padding after the packet).
//! A payload length of 0 is taken as an empty payload (jumbograms, RFC 2675, are not supported).
//! [`Packet::new_quoted`] views a header quoted inside an ICMPv6 error (RFC 4443 §3), where the
//! packet is cut short.
//!
//! [`Packet::upper_layer`] walks Hop-by-Hop Options (§4.3, only first), Routing (§4.4), Fragment
//! (§4.5), Destination Options (§4.6) and AH (RFC 4302 §2.2) headers and stops at the first other
//! next-header value (ESP, No Next Header, or an upper-layer protocol). At a non-first fragment it stops
//! after the Fragment header: what follows is not a header.

use core::net::Ipv6Addr;

use super::{check, get_u16, get_u32, malformed, set_u16, set_u32, IpProtocol, Result};

const LAYER: &str = "ipv6";

mod field {
    use crate::wire::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer holding a whole packet (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Wraps the leading bytes of a packet quoted in an ICMPv6 error: the fixed header must be whole,
    /// the payload may be cut short.
    #[inline]
    pub fn new_quoted(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    fn check_header(&self) -> Result<()> {
        check(LAYER, HEADER_LEN, self.buffer.as_ref().len())?;
        if self.version() != 6 {
            return Err(malformed(LAYER, 0, "version is not 6"));
        }
        Ok(())
    }

    /// Checks version 6 and `40 + payload length ≤ buffer length`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header()?;
        check(LAYER, HEADER_LEN + usize::from(self.payload_len()), self.buffer.as_ref().len())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW.start)
    }

    /// Version field (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class: DSCP (6 bits) and ECN (2 bits) (RFC 8200 §7, RFC 2474, RFC 3168).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// DSCP, 6 bits.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN, 2 bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// Flow label, 20 bits (RFC 6437).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length: the bytes after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Next header after the fixed header.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// The bytes after the fixed header, up to the payload length (or the end of a quoted buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(b.len());
        &b[HEADER_LEN..end]
    }

    /// Walks the extension headers to the upper-layer header (see the module doc).
    pub fn upper_layer(&self) -> Result<UpperLayer> {
        let payload = self.payload();
        let got = HEADER_LEN + payload.len();
        let mut protocol = self.next_header();
        let mut at = 0;
        let mut fragment = None;
        loop {
            let len = match protocol {
                IpProtocol::HOP_BY_HOP if at != 0 => {
                    return Err(malformed(LAYER, HEADER_LEN + at, "hop-by-hop header not first"));
                }
                // RFC 8200 §4.3/§4.4/§4.6: Hdr Ext Len in 8-octet units, not counting the first 8.
                IpProtocol::HOP_BY_HOP | IpProtocol::IPV6_ROUTE | IpProtocol::IPV6_OPTS => {
                    check(LAYER, HEADER_LEN + at + 2, got)?;
                    (usize::from(payload[at + 1]) + 1) * 8
                }
                // RFC 4302 §2.2: Payload Len in 4-octet units, minus 2.
                IpProtocol::AH => {
                    check(LAYER, HEADER_LEN + at + 2, got)?;
                    (usize::from(payload[at + 1]) + 2) * 4
                }
                IpProtocol::IPV6_FRAG => FragmentRepr::LEN,
                _ => break,
            };
            check(LAYER, HEADER_LEN + at + len, got)?;
            if protocol == IpProtocol::IPV6_FRAG {
                let f = FragmentRepr::parse(&payload[at..at + len])?;
                at += len;
                protocol = f.next_header;
                fragment = Some(f);
                if f.offset != 0 {
                    break;
                }
            } else {
                protocol = IpProtocol(payload[at]);
                at += len;
            }
        }
        Ok(UpperLayer { protocol, offset: HEADER_LEN + at, fragment })
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes version 6, the traffic class and the flow label.
    #[inline]
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let v = (6 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW.start, v);
    }

    /// Sets the traffic class (DSCP+ECN), keeping version and flow label.
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let v = (self.ver_tc_flow() & 0xf00f_ffff) | (u32::from(tc) << 20);
        set_u32(self.buffer.as_mut(), field::VER_TC_FLOW.start, v);
    }

    /// Sets the DSCP, keeping the ECN bits.
    #[inline]
    pub fn set_dscp(&mut self, dscp: u8) {
        self.set_traffic_class((dscp << 2) | self.ecn());
    }

    /// Sets the ECN bits, keeping the DSCP.
    #[inline]
    pub fn set_ecn(&mut self, ecn: u8) {
        self.set_traffic_class((self.traffic_class() & !0x03) | (ecn & 0x03));
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = v.0;
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(self.buffer.as_ref().len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// Where the upper-layer header starts, as found by [`Packet::upper_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The last next-header value: the upper-layer protocol (or ESP, No Next Header, ...).
    pub protocol: IpProtocol,
    /// Offset of that header from the start of the IPv6 header.
    pub offset: usize,
    /// The Fragment header, if one was crossed. With a non-zero offset, the bytes at `offset` are
    /// the middle of a fragmented payload, not a header.
    pub fragment: Option<FragmentRepr>,
}

/// The Fragment extension header (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRepr {
    /// Next header of the fragmentable part.
    pub next_header: IpProtocol,
    /// Fragment offset in bytes (a multiple of 8).
    pub offset: u16,
    /// M flag: more fragments follow.
    pub more_frags: bool,
    /// Identification.
    pub ident: u32,
}

impl FragmentRepr {
    /// Length of a Fragment header.
    pub const LEN: usize = 8;

    /// Parses a Fragment header at the start of `b`. The reserved fields are ignored on receipt.
    pub fn parse(b: &[u8]) -> Result<FragmentRepr> {
        check("ipv6-frag", Self::LEN, b.len())?;
        let off_m = get_u16(b, 2);
        Ok(FragmentRepr {
            next_header: IpProtocol(b[0]),
            offset: off_m & !0x7,
            more_frags: off_m & 1 != 0,
            ident: get_u32(b, 4),
        })
    }

    /// Bytes [`FragmentRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        Self::LEN
    }

    /// Writes the header into the first 8 bytes of `b` (reserved fields zero).
    pub fn emit(&self, b: &mut [u8]) {
        b[0] = self.next_header.0;
        b[1] = 0;
        set_u16(b, 2, (self.offset & !0x7) | u16::from(self.more_frags));
        set_u32(b, 4, self.ident);
    }
}

/// The meaning of the fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length (extension headers included).
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// DSCP, 6 bits.
    pub dscp: u8,
    /// ECN, 2 bits.
    pub ecn: u8,
    /// Flow label, 20 bits.
    pub flow_label: u32,
}

impl Repr {
    /// Parses a checked fixed header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            flow_label: packet.flow_label(),
        })
    }

    /// 40 bytes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header; `payload_len` must fit 16 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version_tc_flow((self.dscp << 2) | (self.ecn & 0x03), self.flow_label);
        packet.set_payload_len(self.payload_len as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{hex, junk};
    use crate::wire::Error;
    use proptest::prelude::*;

    // IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xb9, fl=0x12345, hlim=64, nh=59)/Raw(b"abcd")
    const PLAIN: &str = "6b91234500043b4020010db800000000000000000000000120010db8000000000000000000000002\
                         61626364";
    // IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=64)/IPv6ExtHdrHopByHop()
    //   / IPv6ExtHdrRouting(addresses=["2001:db8::9"])
    //   / IPv6ExtHdrFragment(id=0xdeadbeef, offset=0, m=1)/IPv6ExtHdrDestOpt()
    //   / AH(spi=0x100, seq=1, icv=b"\x00"*12)/UDP(sport=1, dport=2)
    const EXT_CHAIN: &str = "600000000050004020010db800000000000000000000000120010db8000000000000000000000002\
                             2b000104000000002c0200010000000020010db8000000000000000000000009\
                             3c000001deadbeef3300010400000000\
                             1104000000000100000000010000000000000000000000000001000200080000";
    // IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=64)
    //   / IPv6ExtHdrFragment(nh=17, id=0x01020304, offset=185, m=0)/Raw(b"12345678")
    const LATER_FRAGMENT: &str = "6000000000102c4020010db800000000000000000000000120010db800000000000000000000\
                                  0002110005c8010203043132333435363738";

    #[test]
    fn parse_fixed_header() {
        let b = hex(PLAIN);
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.src_addr, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(r.dst_addr, "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.traffic_class(), 0xb9);
        assert_eq!((r.dscp, r.ecn, r.flow_label, r.hop_limit), (0xb9 >> 2, 1, 0x12345, 64));
        assert_eq!((r.next_header, r.payload_len), (IpProtocol::IPV6_NO_NEXT, 4));
        assert_eq!(p.payload(), b"abcd");
        let ul = p.upper_layer().unwrap();
        assert_eq!((ul.protocol, ul.offset, ul.fragment), (IpProtocol::IPV6_NO_NEXT, 40, None));
    }

    #[test]
    fn walk_extension_chain_to_udp() {
        let b = hex(EXT_CHAIN);
        let p = Packet::new_checked(&b[..]).unwrap();
        let ul = p.upper_layer().unwrap();
        assert_eq!(ul.protocol, IpProtocol::UDP);
        // 40 fixed + 8 HBH + 24 routing + 8 fragment + 8 dest-opts + 24 AH.
        assert_eq!(ul.offset, 112);
        assert_eq!(&b[ul.offset..], &hex("0001000200080000")[..]);
        assert_eq!(
            ul.fragment,
            Some(FragmentRepr { next_header: IpProtocol::IPV6_OPTS, offset: 0, more_frags: true, ident: 0xdead_beef })
        );
    }

    #[test]
    fn walk_stops_at_later_fragment() {
        let b = hex(LATER_FRAGMENT);
        let ul = Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap();
        assert_eq!(ul.protocol, IpProtocol::UDP);
        assert_eq!(ul.offset, 48);
        let f = ul.fragment.unwrap();
        assert_eq!((f.offset, f.more_frags, f.ident), (185 * 8, false, 0x0102_0304));
        let mut out = junk(8);
        f.emit(&mut out);
        assert_eq!(out, &b[40..48]);
    }

    #[test]
    fn emit_matches_scapy() {
        for v in [PLAIN, EXT_CHAIN, LATER_FRAGMENT] {
            let b = hex(v);
            let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
            let mut out = junk(b.len());
            out[40..].copy_from_slice(&b[40..]);
            r.emit(&mut Packet::new_unchecked(&mut out[..]));
            assert_eq!(out, b);
        }
    }

    #[test]
    fn setters_keep_other_bits() {
        let mut b = hex(PLAIN);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_ecn(3);
        assert_eq!((p.dscp(), p.ecn(), p.flow_label(), p.version()), (0xb9 >> 2, 3, 0x12345, 6));
        p.set_dscp(0x2e);
        assert_eq!((p.dscp(), p.ecn(), p.flow_label()), (0x2e, 3, 0x12345));
        p.set_hop_limit(63);
        assert_eq!(p.hop_limit(), 63);
    }

    #[test]
    fn truncation_is_an_error() {
        for v in [PLAIN, EXT_CHAIN, LATER_FRAGMENT] {
            let b = hex(v);
            for n in 0..b.len() {
                assert!(Packet::new_checked(&b[..n]).is_err(), "length {n}");
            }
        }
        // A chain whose headers run past the payload length.
        let mut b = hex(EXT_CHAIN);
        b[5] = 64; // AH would end at 72
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(matches!(p.upper_layer(), Err(Error::Truncated { layer: "ipv6", .. })));
        // A quoted packet cut inside the chain.
        let b = hex(EXT_CHAIN);
        let q = Packet::new_quoted(&b[..60]).unwrap();
        assert!(matches!(q.upper_layer(), Err(Error::Truncated { needed: 72, got: 60, .. })));
    }

    #[test]
    fn hop_by_hop_must_be_first() {
        let mut b = hex(EXT_CHAIN);
        b[48] = 0; // the routing header's next header is now hop-by-hop
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(matches!(p.upper_layer(), Err(Error::Malformed { offset: 72, .. })));
    }

    prop_compose! {
        fn arb_repr()(src in any::<u128>(), dst in any::<u128>(), nh in any::<u8>(),
                      payload_len in 0usize..600, hop_limit in any::<u8>(), dscp in 0u8..64,
                      ecn in 0u8..4, flow_label in 0u32..0x10_0000) -> Repr {
            Repr { src_addr: src.into(), dst_addr: dst.into(), next_header: IpProtocol(nh),
                   payload_len, hop_limit, dscp, ecn, flow_label }
        }
    }

    proptest! {
        #[test]
        fn roundtrip(r in arb_repr()) {
            let mut buf = junk(r.buffer_len() + r.payload_len);
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }

        #[test]
        fn fragment_roundtrip(nh in any::<u8>(), off in 0u16..0x2000, m in any::<bool>(),
                              ident in any::<u32>()) {
            let f = FragmentRepr { next_header: IpProtocol(nh), offset: off * 8, more_frags: m, ident };
            let mut buf = junk(f.buffer_len());
            f.emit(&mut buf);
            prop_assert_eq!(FragmentRepr::parse(&buf).unwrap(), f);
        }

        #[test]
        fn walk_never_panics(chain in proptest::collection::vec(any::<u8>(), 0..200),
                             nh in prop::sample::select(vec![0u8, 43, 44, 51, 60, 17])) {
            let mut b = junk(40);
            Repr { src_addr: Ipv6Addr::LOCALHOST, dst_addr: Ipv6Addr::LOCALHOST,
                   next_header: IpProtocol(nh), payload_len: chain.len(), hop_limit: 1, dscp: 0,
                   ecn: 0, flow_label: 0 }.emit(&mut Packet::new_unchecked(&mut b[..]));
            b.extend_from_slice(&chain);
            let p = Packet::new_checked(&b[..]).unwrap();
            if let Ok(ul) = p.upper_layer() {
                prop_assert!(ul.offset <= b.len());
            }
        }
    }
}
