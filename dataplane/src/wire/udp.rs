//! UDP header (RFC 768) and its checksum over the IPv4 or IPv6 pseudo-header.
//!
//! Layer 4. [`Packet::new_checked`] guarantees `8 ≤ length field ≤ buffer length`. Checksum rules:
//! over IPv4 a zero checksum means "not computed" and verifies (RFC 768); over IPv6 it is mandatory
//! and zero is invalid (RFC 8200 §8.1); a computed zero is sent as 0xffff (both). ESP-in-UDP
//! (RFC 3948 §2.1) sends a zero checksum over IPv4: use [`Repr::emit`] without filling it.

use super::checksum::{self, PseudoHeader};
use super::{check, get_u16, malformed, set_u16, Error, IpProtocol, Result};

const LAYER: &str = "udp";

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
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

    /// Wraps a buffer, checking `8 ≤ length ≤ buffer length`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks `8 ≤ length field ≤ buffer length`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        check(LAYER, HEADER_LEN, len)?;
        let l = usize::from(self.length());
        if l < HEADER_LEN {
            return Err(malformed(LAYER, field::LENGTH.start, "length below 8"));
        }
        check(LAYER, l, len)
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Length field: header and data.
    #[inline]
    pub fn length(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// The datagram: header and data, up to the length field.
    #[inline]
    fn datagram(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.length())]
    }

    /// Whether the checksum verifies for this source and destination (see the module doc for zero).
    #[inline]
    pub fn verify_checksum<A: PseudoHeader>(&self, src: &A, dst: &A) -> bool {
        if self.checksum() == 0 {
            return A::VERSION == 4;
        }
        let d = self.datagram();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::UDP, d.len() as u32);
        checksum::combine(&[ph, checksum::data(d)]) == 0xffff
    }

    /// The data after the header, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.length())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT.start, v);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT.start, v);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_length(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Computes and writes the checksum over the pseudo-header and the datagram (length field
    /// already set); a computed zero is written as 0xffff (RFC 768).
    #[inline]
    pub fn fill_checksum<A: PseudoHeader>(&mut self, src: &A, dst: &A) {
        self.set_checksum(0);
        let d = self.datagram();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::UDP, d.len() as u32);
        let c = !checksum::combine(&[ph, checksum::data(d)]);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// The data after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.length());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
}

/// The meaning of a UDP header (ports; the length follows from the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl Repr {
    /// Parses a checked datagram, verifying its checksum for `src` → `dst`.
    pub fn parse<T: AsRef<[u8]>, A: PseudoHeader>(packet: &Packet<T>, src: &A, dst: &A) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum { layer: LAYER });
        }
        Ok(Repr { src_port: packet.src_port(), dst_port: packet.dst_port() })
    }

    /// 8 bytes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header for `payload_len` bytes of data with a zero checksum; call
    /// [`Packet::fill_checksum`] once the payload is in place to compute it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, payload_len: usize) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_length((HEADER_LEN + payload_len) as u16);
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{hex, junk};
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    // IP(src="192.0.2.1", dst="198.51.100.2")/UDP(sport=4500, dport=4500)/Raw(b"hello, world")
    const UDP4: &str = "450000280001000040118e8dc0000201c6336402119411940014b01a68656c6c6f2c20776f726c64";
    // IPv6(src="2001:db8::1", dst="2001:db8::2")/UDP(sport=500, dport=500)/Raw(b"hello, world")
    const UDP6: &str = "600000000014114020010db800000000000000000000000120010db8000000000000000000000002\
                        01f401f40014601d68656c6c6f2c20776f726c64";

    fn v4() -> (Ipv4Addr, Ipv4Addr) {
        (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 2))
    }
    fn v6() -> (Ipv6Addr, Ipv6Addr) {
        ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap())
    }

    #[test]
    fn parse_and_emit_v4() {
        let b = hex(UDP4);
        let (s, d) = v4();
        let p = Packet::new_checked(&b[20..]).unwrap();
        let r = Repr::parse(&p, &s, &d).unwrap();
        assert_eq!(r, Repr { src_port: 4500, dst_port: 4500 });
        assert_eq!(p.payload(), b"hello, world");
        assert_eq!(p.checksum(), 0xb01a);
        let mut out = junk(b.len() - 20);
        out[8..].copy_from_slice(p.payload());
        let mut q = Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q, 12);
        q.fill_checksum(&s, &d);
        assert_eq!(out, &b[20..]);
    }

    #[test]
    fn parse_and_emit_v6() {
        let b = hex(UDP6);
        let (s, d) = v6();
        let p = Packet::new_checked(&b[40..]).unwrap();
        let r = Repr::parse(&p, &s, &d).unwrap();
        assert_eq!(r, Repr { src_port: 500, dst_port: 500 });
        let mut out = junk(b.len() - 40);
        out[8..].copy_from_slice(p.payload());
        let mut q = Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q, 12);
        q.fill_checksum(&s, &d);
        assert_eq!(out, &b[40..]);
    }

    #[test]
    fn zero_checksum_allowed_only_over_ipv4() {
        let mut b = hex(UDP4);
        b[26] = 0;
        b[27] = 0;
        let (s, d) = v4();
        assert!(Repr::parse(&Packet::new_checked(&b[20..]).unwrap(), &s, &d).is_ok());
        let mut b = hex(UDP6);
        b[46] = 0;
        b[47] = 0;
        let (s, d) = v6();
        assert_eq!(Repr::parse(&Packet::new_checked(&b[40..]).unwrap(), &s, &d), Err(Error::Checksum { layer: "udp" }));
    }

    #[test]
    fn wrong_address_fails_checksum() {
        let b = hex(UDP4);
        let (s, _) = v4();
        let p = Packet::new_checked(&b[20..]).unwrap();
        assert!(!p.verify_checksum(&s, &Ipv4Addr::new(198, 51, 100, 3)));
    }

    #[test]
    fn truncation_and_bad_length_are_errors() {
        let b = hex(UDP4);
        let u = &b[20..];
        for n in 0..u.len() {
            assert!(Packet::new_checked(&u[..n]).is_err(), "length {n}");
        }
        let mut bad = u.to_vec();
        bad[5] = 7;
        assert!(matches!(Packet::new_checked(&bad[..]), Err(Error::Malformed { offset: 4, .. })));
    }

    proptest! {
        #[test]
        fn roundtrip(sp in any::<u16>(), dp in any::<u16>(),
                     payload in proptest::collection::vec(any::<u8>(), 0..64),
                     s in any::<u32>(), d in any::<u32>()) {
            let (s, d) = (Ipv4Addr::from(s), Ipv4Addr::from(d));
            let r = Repr { src_port: sp, dst_port: dp };
            let mut buf = junk(r.buffer_len() + payload.len());
            buf[8..].copy_from_slice(&payload);
            let mut p = Packet::new_unchecked(&mut buf[..]);
            r.emit(&mut p, payload.len());
            p.fill_checksum(&s, &d);
            prop_assert_ne!(p.checksum(), 0);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p, &s, &d).unwrap(), r);
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
