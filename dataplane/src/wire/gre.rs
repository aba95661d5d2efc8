//! GRE (RFC 2784) with the Key and Sequence Number extensions (RFC 2890).
//!
//! Layer 2.5 (the tunnel header of multipoint GRE). Header:
//!
//! ```text
//!  0                   1                   2                   3
//! |C| |K|S| Reserved0       | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (optional)    |   if C
//! |                         Key (optional)                        |   if K
//! |                 Sequence Number (optional)                    |   if S
//! ```
//!
//! [`Packet::new_checked`] enforces what a receiver must (RFC 2784 §2.5: discard when any of bits 1, 4,
//! 5 — RFC 1701's routing, strict source route and recursion — is set; bits 2 and 3 are RFC 2890's K
//! and S; bits 6–12 are ignored; §2.5.1: discard when the version is not 0) and that the optional fields
//! the bits announce are inside the buffer. GRE has no length field: the buffer is the GRE packet,
//! and the checksum (§2.6) covers the GRE header and the payload. Optional fields read as `None` when
//! their bit is clear, so no getter reads past a checked header.

use super::{check, checksum, code_point, get_u16, get_u32, malformed, set_u16, set_u32, Error, Result};

const LAYER: &str = "gre";

code_point! {
    /// GRE Protocol Type (RFC 2784 §2.4: an EtherType, plus NHRP's value).
    Protocol(u16) {
        /// IPv4 payload.
        IPV4 = 0x0800,
        /// IPv6 payload.
        IPV6 = 0x86dd,
        /// NHRP (RFC 2332 over GRE, as Cisco DMVPN sends it).
        NHRP = 0x2001,
    }
}

mod field {
    use crate::wire::Field;
    pub const FLAGS_VER: Field = 0..2;
    pub const PROTOCOL: Field = 2..4;
    /// First optional field.
    pub const OPTIONAL: usize = 4;
}

const FLAG_C: u16 = 0x8000;
const FLAG_K: u16 = 0x2000;
const FLAG_S: u16 = 0x1000;
/// Bits 1, 4 and 5 (RFC 2784 §2.5).
const MUST_BE_ZERO: u16 = 0x4000 | 0x0800 | 0x0400;
const VERSION_MASK: u16 = 0x0007;

/// Length of the mandatory part.
pub const BASE_HEADER_LEN: usize = 4;

/// A view of a GRE packet.
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

    /// Wraps a buffer, checking the receive rules and lengths (see the module doc).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks reserved bits 1, 4, 5 clear, version 0, and the announced optional fields present.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        check(LAYER, BASE_HEADER_LEN, len)?;
        let w = self.flags_ver();
        if w & MUST_BE_ZERO != 0 {
            return Err(malformed(LAYER, 0, "reserved bit 1, 4 or 5 set (RFC 1701 routing/recursion)"));
        }
        if w & VERSION_MASK != 0 {
            return Err(malformed(LAYER, 1, "version is not 0"));
        }
        check(LAYER, self.header_len(), len)
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn flags_ver(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::FLAGS_VER.start)
    }

    /// C bit: Checksum and Reserved1 present (RFC 2784 §2.5).
    #[inline]
    pub fn checksum_present(&self) -> bool {
        self.flags_ver() & FLAG_C != 0
    }

    /// K bit: Key present (RFC 2890 §2).
    #[inline]
    pub fn key_present(&self) -> bool {
        self.flags_ver() & FLAG_K != 0
    }

    /// S bit: Sequence Number present (RFC 2890 §2).
    #[inline]
    pub fn seq_present(&self) -> bool {
        self.flags_ver() & FLAG_S != 0
    }

    /// Version (0 after `new_checked`).
    #[inline]
    pub fn version(&self) -> u8 {
        (self.flags_ver() & VERSION_MASK) as u8
    }

    /// Protocol type of the payload (RFC 2784 §2.4).
    #[inline]
    pub fn protocol_type(&self) -> Protocol {
        Protocol(get_u16(self.buffer.as_ref(), field::PROTOCOL.start))
    }

    #[inline]
    fn key_at(&self) -> usize {
        field::OPTIONAL + 4 * usize::from(self.checksum_present())
    }

    #[inline]
    fn seq_at(&self) -> usize {
        self.key_at() + 4 * usize::from(self.key_present())
    }

    /// Header length: 4, plus 4 for each of C, K, S.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.seq_at() + 4 * usize::from(self.seq_present())
    }

    /// Checksum field, when C is set.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present().then(|| get_u16(self.buffer.as_ref(), field::OPTIONAL))
    }

    /// Key, when K is set (RFC 2890 §2.1).
    #[inline]
    pub fn key(&self) -> Option<u32> {
        self.key_present().then(|| get_u32(self.buffer.as_ref(), self.key_at()))
    }

    /// Sequence number, when S is set (RFC 2890 §2.2).
    #[inline]
    pub fn sequence(&self) -> Option<u32> {
        self.seq_present().then(|| get_u32(self.buffer.as_ref(), self.seq_at()))
    }

    /// Whether the checksum verifies over header and payload (RFC 2784 §2.6); true when absent.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::data(self.buffer.as_ref()) == 0xffff
    }

    /// The payload after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    fn set_flag(&mut self, flag: u16, on: bool) {
        let w = self.flags_ver();
        set_u16(self.buffer.as_mut(), field::FLAGS_VER.start, if on { w | flag } else { w & !flag });
    }

    /// Writes the first word: C, K, S as given, all reserved bits and the version zero.
    #[inline]
    pub fn set_flags(&mut self, checksum: bool, key: bool, seq: bool) {
        let w = (u16::from(checksum) * FLAG_C) | (u16::from(key) * FLAG_K) | (u16::from(seq) * FLAG_S);
        set_u16(self.buffer.as_mut(), field::FLAGS_VER.start, w);
    }

    /// Sets or clears C (moves where Key and Sequence are read and written).
    #[inline]
    pub fn set_checksum_present(&mut self, on: bool) {
        self.set_flag(FLAG_C, on);
    }

    /// Sets or clears K.
    #[inline]
    pub fn set_key_present(&mut self, on: bool) {
        self.set_flag(FLAG_K, on);
    }

    /// Sets or clears S.
    #[inline]
    pub fn set_seq_present(&mut self, on: bool) {
        self.set_flag(FLAG_S, on);
    }

    /// Sets the version bits.
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let w = (self.flags_ver() & !VERSION_MASK) | (u16::from(v) & VERSION_MASK);
        set_u16(self.buffer.as_mut(), field::FLAGS_VER.start, w);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, v: Protocol) {
        set_u16(self.buffer.as_mut(), field::PROTOCOL.start, v.0);
    }

    /// Writes Checksum and Reserved1 (zero); C must be set.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        let b = self.buffer.as_mut();
        set_u16(b, field::OPTIONAL, v);
        set_u16(b, field::OPTIONAL + 2, 0);
    }

    /// Writes the Key; K (and C, if wanted) must be set first.
    #[inline]
    pub fn set_key(&mut self, v: u32) {
        let at = self.key_at();
        set_u32(self.buffer.as_mut(), at, v);
    }

    /// Writes the Sequence Number; S (and C, K, if wanted) must be set first.
    #[inline]
    pub fn set_sequence(&mut self, v: u32) {
        let at = self.seq_at();
        set_u32(self.buffer.as_mut(), at, v);
    }

    /// Computes and writes the checksum over the whole buffer (header and payload); C must be set.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::data(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// The meaning of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Protocol type of the payload.
    pub protocol: Protocol,
    /// Whether a checksum is present (and, on emit, computed).
    pub checksum: bool,
    /// Key (RFC 2890 §2.1): in DMVPN, the tunnel key.
    pub key: Option<u32>,
    /// Sequence number (RFC 2890 §2.2).
    pub sequence: Option<u32>,
}

impl Repr {
    /// Parses a checked packet, verifying a present checksum.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum { layer: LAYER });
        }
        Ok(Repr {
            protocol: packet.protocol_type(),
            checksum: packet.checksum_present(),
            key: packet.key(),
            sequence: packet.sequence(),
        })
    }

    /// Header length that [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        BASE_HEADER_LEN
            + 4 * (self.checksum as usize)
            + 4 * (self.key.is_some() as usize)
            + 4 * (self.sequence.is_some() as usize)
    }

    /// Writes the header. With a checksum, the buffer must be exactly the GRE packet with its payload
    /// already in place: the checksum is computed over it.
    #[inline]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_flags(self.checksum, self.key.is_some(), self.sequence.is_some());
        packet.set_protocol_type(self.protocol);
        if let Some(k) = self.key {
            packet.set_key(k);
        }
        if let Some(s) = self.sequence {
            packet.set_sequence(s);
        }
        if self.checksum {
            packet.fill_checksum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{hex, junk};
    use proptest::prelude::*;

    // GRE(chksum_present=1, key_present=1, seqnum_present=1, key=0x1234, sequence_number=7,
    //     proto=0x0800)/Raw(b"\x45innerpacket")
    const CKS: &str = "b0000800e3380000000012340000000745696e6e65727061636b6574";
    // GRE(key_present=1, key=100000, proto=0x2001)/Raw(b"nhrp")
    const NHRP: &str = "20002001000186a06e687270";
    // GRE(proto=0x86dd)/Raw(b"\x60abc")
    const PLAIN6: &str = "000086dd60616263";

    #[test]
    fn parse_all_optional_fields() {
        let b = hex(CKS);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert_eq!(p.checksum(), Some(0xe338));
        assert!(p.verify_checksum());
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r, Repr { protocol: Protocol::IPV4, checksum: true, key: Some(0x1234), sequence: Some(7) });
        assert_eq!(p.payload(), b"\x45innerpacket");
    }

    #[test]
    fn parse_nhrp_with_key_and_plain_ipv6() {
        let b = hex(NHRP);
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r, Repr { protocol: Protocol::NHRP, checksum: false, key: Some(100_000), sequence: None });
        assert_eq!((p.checksum(), p.payload()), (None, &b"nhrp"[..]));
        let b = hex(PLAIN6);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.protocol_type(), Protocol::IPV6);
        assert_eq!((p.key(), p.sequence(), p.header_len()), (None, None, 4));
    }

    #[test]
    fn emit_matches_scapy() {
        for v in [CKS, NHRP, PLAIN6] {
            let b = hex(v);
            let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
            let mut out = junk(b.len());
            let hl = r.buffer_len();
            out[hl..].copy_from_slice(&b[hl..]);
            r.emit(&mut Packet::new_unchecked(&mut out[..]));
            assert_eq!(out, b);
        }
    }

    #[test]
    fn setters_build_scapy_packet() {
        let b = hex(CKS);
        let mut out = junk(b.len());
        out[16..].copy_from_slice(&b[16..]);
        let mut p = Packet::new_unchecked(&mut out[..]);
        p.set_flags(false, false, false);
        p.set_checksum_present(true);
        p.set_key_present(true);
        p.set_seq_present(true);
        p.set_version(0);
        p.set_protocol_type(Protocol::IPV4);
        p.set_key(0x1234);
        p.set_sequence(7);
        p.fill_checksum();
        assert_eq!(out, b);
    }

    #[test]
    fn receive_rules() {
        let mut b = hex(NHRP);
        b[1] = 1; // version 1 (PPTP's enhanced GRE)
        assert!(matches!(Packet::new_checked(&b[..]), Err(Error::Malformed { offset: 1, .. })));
        for bit in [0x40u8, 0x08, 0x04] {
            let mut b = hex(NHRP);
            b[0] |= bit;
            assert!(matches!(Packet::new_checked(&b[..]), Err(Error::Malformed { offset: 0, .. })));
        }
        // Bits 6-12 are ignored on receipt.
        let mut b = hex(NHRP);
        b[0] |= 0x03;
        b[1] |= 0xf8;
        assert_eq!(Packet::new_checked(&b[..]).unwrap().key(), Some(100_000));
        // A corrupted payload fails the checksum.
        let mut b = hex(CKS);
        b[20] ^= 0x10;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::Checksum { layer: "gre" }));
    }

    #[test]
    fn truncation_is_an_error() {
        for v in [CKS, NHRP, PLAIN6] {
            let b = hex(v);
            let hl = Packet::new_checked(&b[..]).unwrap().header_len();
            for n in 0..hl {
                assert!(
                    matches!(Packet::new_checked(&b[..n]), Err(Error::Truncated { layer: "gre", .. })),
                    "length {n}"
                );
            }
        }
    }

    prop_compose! {
        fn arb_repr()(protocol in any::<u16>(), checksum in any::<bool>(),
                      key in proptest::option::of(any::<u32>()),
                      sequence in proptest::option::of(any::<u32>())) -> Repr {
            Repr { protocol: Protocol(protocol), checksum, key, sequence }
        }
    }

    proptest! {
        #[test]
        fn roundtrip(r in arb_repr(), payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut buf = junk(r.buffer_len() + payload.len());
            buf[r.buffer_len()..].copy_from_slice(&payload);
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
            prop_assert_eq!(p.payload(), &payload[..]);
        }
    }
}
