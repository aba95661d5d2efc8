//! IPv4 header (RFC 791 §3.1), with DSCP/ECN (RFC 2474 §3, RFC 3168 §5), options and fragment
//! fields, and the header checksum (RFC 791 §3.1 "Header Checksum", RFC 1071; incremental TTL update
//! per RFC 1624 / RFC 1812 §5.3.1).
//!
//! Layer 3. [`Packet::new_checked`] guarantees version 4, IHL ≥ 5, a header inside the buffer and
//! `header_len ≤ total_len ≤ buffer length` (a buffer may be longer than the datagram: Ethernet
//! padding). [`Packet::new_quoted`] views a header quoted inside an ICMP error (RFC 792), where the
//! datagram is cut short: the header must be whole, `payload()` returns what is there.
//! The header checksum is verified by [`Repr::parse`] or [`Packet::verify_checksum`], not by the view.

use core::fmt;
use core::net::Ipv4Addr;

use super::{check, checksum, get_u16, malformed, set_u16, Error, IpProtocol, Result};

const LAYER: &str = "ipv4";

mod field {
    use crate::wire::Field;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Longest options field: IHL 15 → 60-byte header.
pub const MAX_OPTIONS_LEN: usize = 40;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
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

    /// Wraps a buffer holding a whole datagram (see [`Packet::check_len`]).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Wraps the leading bytes of a datagram quoted in an ICMP error: the header must be whole and
    /// consistent, the payload may be cut short.
    #[inline]
    pub fn new_quoted(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_header()?;
        Ok(p)
    }

    fn check_header(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        check(LAYER, HEADER_LEN, len)?;
        if self.version() != 4 {
            return Err(malformed(LAYER, field::VER_IHL, "version is not 4"));
        }
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(malformed(LAYER, field::VER_IHL, "IHL below 5"));
        }
        check(LAYER, hl, len)?;
        if usize::from(self.total_len()) < hl {
            return Err(malformed(LAYER, field::LENGTH.start, "total length below header length"));
        }
        Ok(())
    }

    /// Checks version 4, IHL ≥ 5, and `header_len ≤ total_len ≤ buffer length`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        self.check_header()?;
        check(LAYER, usize::from(self.total_len()), self.buffer.as_ref().len())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP, 6 bits (RFC 2474 §3).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// ECN, 2 bits (RFC 3168 §5).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The whole DSCP+ECN byte (the former TOS).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length: header and data.
    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    /// Don't Fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More Fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK) << 3
    }

    /// A fragment of a larger datagram (MF set or non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The header (with options), for checksumming or quoting.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The options bytes (possibly empty), unparsed.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Whether the header checksum verifies (RFC 1071: the sum over the header is all ones).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0xffff
    }

    /// The data after the header, up to the total length (or the end of a quoted buffer).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(b.len());
        &b[self.header_len()..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP, keeping the ECN bits.
    #[inline]
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (dscp << 2) | (*b & 0x03);
    }

    /// Sets the ECN bits, keeping the DSCP.
    #[inline]
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & !0x03) | (ecn & 0x03);
    }

    /// Sets the whole DSCP+ECN byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH.start, v);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT.start, v);
    }

    /// Writes the flags and fragment offset word: DF, MF, the reserved bit cleared, and the offset in
    /// bytes (a multiple of 8).
    #[inline]
    pub fn set_flags_and_frag_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let v = (u16::from(dont_frag) * FLAG_DF) | (u16::from(more_frags) * FLAG_MF) | (offset >> 3);
        set_u16(self.buffer.as_mut(), field::FLG_OFF.start, v);
    }

    /// Sets or clears Don't Fragment, keeping the rest of the word.
    #[inline]
    pub fn set_dont_frag(&mut self, v: bool) {
        let w = get_u16(self.buffer.as_ref(), field::FLG_OFF.start);
        let w = if v { w | FLAG_DF } else { w & !FLAG_DF };
        set_u16(self.buffer.as_mut(), field::FLG_OFF.start, w);
    }

    /// Sets the TTL.
    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Decrements a non-zero TTL and updates the checksum incrementally (RFC 1812 §5.3.1, RFC 1624);
    /// leaves a zero TTL, and a buffer shorter than a header, alone. Returns the new TTL.
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        // A fixed-size header: one length check instead of one per field.
        let Some(h) = self.buffer.as_mut().first_chunk_mut::<HEADER_LEN>() else { return 0 };
        let (ttl, protocol) = (h[field::TTL], h[field::PROTOCOL]);
        if ttl == 0 {
            return 0;
        }
        h[field::TTL] = ttl - 1;
        let c = u16::from_be_bytes([h[field::CHECKSUM.start], h[field::CHECKSUM.start + 1]]);
        let c = checksum::update_u16(c, u16::from_be_bytes([ttl, protocol]), u16::from_be_bytes([ttl - 1, protocol]));
        h[field::CHECKSUM].copy_from_slice(&c.to_be_bytes());
        ttl - 1
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = v.0;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }

    /// The options bytes, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// Computes and writes the header checksum.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::data(self.header());
        self.set_checksum(c);
    }

    /// The data after the header, mutable, up to the total length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let end = usize::from(self.total_len()).min(self.buffer.as_ref().len());
        &mut self.buffer.as_mut()[hl..end]
    }
}

/// Validated IPv4 options, held inline (at most 40 bytes, a multiple of 4).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Options {
    bytes: [u8; MAX_OPTIONS_LEN],
    len: u8,
}

impl Options {
    /// No options.
    pub const NONE: Options = Options { bytes: [0; MAX_OPTIONS_LEN], len: 0 };

    /// Checks the option list (RFC 791 §3.1 "Options"): at most 40 bytes, a multiple of 4 (the header
    /// is padded to 32 bits), every option other than End of Option List (0) and No Operation (1)
    /// has a length octet ≥ 2 that fits; bytes after End of Option List are padding.
    pub fn new(options: &[u8]) -> Result<Options> {
        if options.len() > MAX_OPTIONS_LEN || options.len() & 3 != 0 {
            return Err(malformed(LAYER, HEADER_LEN, "options length not a multiple of 4 up to 40"));
        }
        let mut at = 0;
        while let Some(&kind) = options.get(at) {
            match kind {
                0 => break,
                1 => at += 1,
                _ => {
                    let len = options.get(at + 1).map_or(0, |&l| usize::from(l));
                    if len < 2 || at + len > options.len() {
                        return Err(malformed(LAYER, HEADER_LEN + at, "option length"));
                    }
                    at += len;
                }
            }
        }
        let mut bytes = [0; MAX_OPTIONS_LEN];
        bytes[..options.len()].copy_from_slice(options);
        Ok(Options { bytes, len: options.len() as u8 })
    }

    /// The option bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Default for Options {
    fn default() -> Options {
        Options::NONE
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Options(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The meaning of an IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Length of the payload (total length − header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP, 6 bits.
    pub dscp: u8,
    /// ECN, 2 bits.
    pub ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u16,
    /// Options.
    pub options: Options,
}

impl Repr {
    /// Parses a checked header: verifies the checksum and the options. The reserved flag bit is
    /// ignored (RFC 791: "must be zero").
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum { layer: LAYER });
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            options: Options::new(packet.options())?,
        })
    }

    /// Header length that [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.as_bytes().len()
    }

    /// Writes the header with its checksum; the payload is the caller's. `payload_len` must keep the
    /// total length within 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let hl = self.buffer_len();
        packet.set_version_and_header_len(hl);
        packet.set_dscp_ecn((self.dscp << 2) | (self.ecn & 0x03));
        packet.set_total_len((hl + self.payload_len) as u16);
        packet.set_ident(self.ident);
        packet.set_flags_and_frag_offset(self.dont_frag, self.more_frags, self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.options_mut().copy_from_slice(self.options.as_bytes());
        packet.fill_checksum();
    }
}

/// The fixed part of an outer header without options, as a tunnel writes it in front of every packet:
/// addresses, protocol and TTL, with their share of the checksum summed once (VPP's precomputed
/// rewrite). Per packet only the TOS, identification and length change.
///
/// [`Template::emit`] writes each field from its value and never reads the header back: summing bytes
/// just written with narrower stores stalls store-to-load forwarding, which cost more than the rest of
/// the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl_protocol: u16,
    /// One's-complement sum of the addresses.
    sum: u16,
}

impl Template {
    /// The fixed fields of an outer header: DF clear (the path may fragment the outer packet), no
    /// options.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, ttl: u8) -> Template {
        let ttl_protocol = (u16::from(ttl) << 8) | u16::from(protocol.0);
        let [s0, s1, s2, s3] = src.octets();
        let [d0, d1, d2, d3] = dst.octets();
        let sum = checksum::combine(&[
            u16::from_be_bytes([s0, s1]),
            u16::from_be_bytes([s2, s3]),
            u16::from_be_bytes([d0, d1]),
            u16::from_be_bytes([d2, d3]),
        ]);
        Template { src, dst, ttl_protocol, sum }
    }

    /// The same header with another protocol (ESP, UDP for NAT-T or GRE, chosen per packet by the SA).
    #[inline]
    pub fn with_protocol(&self, protocol: IpProtocol) -> Template {
        Template { ttl_protocol: (self.ttl_protocol & 0xff00) | u16::from(protocol.0), ..*self }
    }

    /// Writes the header into the first [`HEADER_LEN`] bytes of `header` (which must hold them) for a
    /// payload of `payload_len` bytes (at most 65515) with DSCP/ECN `tos` and identification `ident`.
    #[inline]
    pub fn emit(&self, header: &mut [u8], tos: u8, ident: u16, payload_len: usize) {
        let total_len = (HEADER_LEN + payload_len) as u16;
        let ver_ihl_tos = 0x4500 | u16::from(tos);
        let sum = checksum::combine(&[self.sum, self.ttl_protocol, ver_ihl_tos, total_len, ident]);
        let h = &mut header[..HEADER_LEN];
        h[0] = 0x45;
        h[field::DSCP_ECN] = tos;
        h[field::LENGTH].copy_from_slice(&total_len.to_be_bytes());
        h[field::IDENT].copy_from_slice(&ident.to_be_bytes());
        h[field::FLG_OFF].copy_from_slice(&[0, 0]);
        h[field::TTL..=field::PROTOCOL].copy_from_slice(&self.ttl_protocol.to_be_bytes());
        h[field::CHECKSUM].copy_from_slice(&(!sum).to_be_bytes());
        h[field::SRC_ADDR].copy_from_slice(&self.src.octets());
        h[field::DST_ADDR].copy_from_slice(&self.dst.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{hex, junk};
    use proptest::prelude::*;

    // IP(src="192.0.2.1", dst="198.51.100.2", ttl=64, id=0x1234, flags="DF", tos=0xb9, proto=47)
    //   / Raw(b"abcdefgh")
    const PLAIN: &str = "45b9001c12344000402f3b8fc0000201c63364026162636465666768";
    // The same with ttl=63.
    const PLAIN_TTL63: &str = "45b9001c123440003f2f3c8fc0000201c63364026162636465666768";
    // IP(src="10.0.0.1", dst="10.0.0.2", ttl=3, id=0xbeef, flags="MF", frag=185, proto=17,
    //    options=[IPOption_Router_Alert(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP(),
    //             IPOption_EOL()]) / Raw(b"xyz!")
    const OPTS_FRAG: &str = "47000020beef20b903112c1d0a0000010a000002940400000101010078797a21";

    #[test]
    fn parse_plain() {
        let b = hex(PLAIN);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.src_addr, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(r.dst_addr, Ipv4Addr::new(198, 51, 100, 2));
        assert_eq!(r.protocol, IpProtocol::GRE);
        assert_eq!((r.dscp, r.ecn), (0xb9 >> 2, 1));
        assert_eq!((r.ttl, r.ident, r.dont_frag, r.more_frags, r.frag_offset), (64, 0x1234, true, false, 0));
        assert_eq!(r.payload_len, 8);
        assert_eq!(p.payload(), b"abcdefgh");
        assert!(!p.is_fragment());
    }

    #[test]
    fn parse_options_and_fragment() {
        let b = hex(OPTS_FRAG);
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(p.header_len(), 28);
        assert_eq!(r.options.as_bytes(), &hex("9404000001010100")[..]);
        assert_eq!((r.more_frags, r.dont_frag, r.frag_offset), (true, false, 185 * 8));
        assert!(p.is_fragment());
        assert_eq!(p.payload(), b"xyz!");
        assert_eq!(r.protocol, IpProtocol::UDP);
    }

    #[test]
    fn emit_matches_scapy() {
        for v in [PLAIN, OPTS_FRAG] {
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
    fn template_matches_scapy() {
        // IP(src="192.0.2.1", dst="198.51.100.2", ttl=255, id=0x1234, tos=0xb9, proto=50)/Raw(b"abcdefgh")
        let esp = hex("45b9001c12340000ff32bc8bc0000201c63364026162636465666768");
        // IP(src="203.0.113.200", dst="10.255.0.1", ttl=1, id=0xffff, tos=0xff, proto=17)/Raw(b"z"*1400),
        // its header
        let udp = hex("45ff058cffff000001116b9acb0071c80aff0001");
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let dst = Ipv4Addr::new(198, 51, 100, 2);
        let gre = Template::new(src, dst, IpProtocol::GRE, 255);
        let mut out = junk(esp.len());
        out[HEADER_LEN..].copy_from_slice(b"abcdefgh");
        gre.with_protocol(IpProtocol::ESP).emit(&mut out, 0xb9, 0x1234, 8);
        assert_eq!(out, esp);
        assert_eq!(gre.with_protocol(IpProtocol::ESP), Template::new(src, dst, IpProtocol::ESP, 255));

        let t = Template::new(Ipv4Addr::new(203, 0, 113, 200), Ipv4Addr::new(10, 255, 0, 1), IpProtocol::UDP, 1);
        let mut out = junk(HEADER_LEN);
        t.emit(&mut out, 0xff, 0xffff, 1400);
        assert_eq!(out, udp);
    }

    #[test]
    fn decrement_ttl_matches_scapy() {
        let mut b = hex(PLAIN);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(p.decrement_ttl(), 63);
        assert_eq!(b, hex(PLAIN_TTL63));
    }

    #[test]
    fn bad_checksum_is_reported() {
        let mut b = hex(PLAIN);
        b[11] ^= 1;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::Checksum { layer: "ipv4" }));
    }

    #[test]
    fn truncation_and_bad_lengths_are_errors() {
        for v in [PLAIN, OPTS_FRAG] {
            let b = hex(v);
            for n in 0..b.len() {
                assert!(Packet::new_checked(&b[..n]).is_err(), "length {n}");
            }
        }
        let b = hex(OPTS_FRAG);
        // A quote may stop after the header, not inside it.
        assert!(Packet::new_quoted(&b[..28]).is_ok());
        assert_eq!(Packet::new_quoted(&b[..28]).unwrap().payload(), b"");
        assert!(Packet::new_quoted(&b[..27]).is_err());
        let mut bad = hex(PLAIN);
        bad[0] = 0x44; // IHL 4
        assert!(matches!(Packet::new_checked(&bad[..]), Err(Error::Malformed { offset: 0, .. })));
        let mut bad = hex(PLAIN);
        bad[0] = 0x65; // version 6
        assert!(matches!(Packet::new_checked(&bad[..]), Err(Error::Malformed { offset: 0, .. })));
        let mut bad = hex(PLAIN);
        bad[3] = 19; // total length below the header
        assert!(matches!(Packet::new_checked(&bad[..]), Err(Error::Malformed { offset: 2, .. })));
    }

    #[test]
    fn malformed_options_are_rejected() {
        assert!(Options::new(&[0x94, 0x00, 0x00, 0x00]).is_err(), "length 0");
        assert!(Options::new(&[0x01, 0x94, 0x08, 0x00]).is_err(), "runs past the end");
        assert!(Options::new(&[0x01, 0x01, 0x01]).is_err(), "not a multiple of 4");
        assert!(Options::new(&[0x00, 0xff, 0xff, 0xff]).is_ok(), "padding after EOL");
    }

    fn arb_options() -> impl Strategy<Value = Options> {
        // A run of NOPs, then an optional Router Alert, then EOL padding.
        (0usize..=8, any::<bool>()).prop_map(|(nops, ra)| {
            let mut v = vec![1u8; nops];
            if ra {
                v.extend_from_slice(&[0x94, 0x04, 0x00, 0x00]);
            }
            v.resize(v.len().div_ceil(4) * 4, 0);
            Options::new(&v).unwrap()
        })
    }

    prop_compose! {
        fn arb_repr()(src in any::<u32>(), dst in any::<u32>(), proto in any::<u8>(),
                      payload_len in 0usize..1000, ttl in any::<u8>(), dscp in 0u8..64, ecn in 0u8..4,
                      ident in any::<u16>(), dont_frag in any::<bool>(), more_frags in any::<bool>(),
                      off in 0u16..0x2000, options in arb_options()) -> Repr {
            Repr { src_addr: src.into(), dst_addr: dst.into(), protocol: IpProtocol(proto), payload_len,
                   ttl, dscp, ecn, ident, dont_frag, more_frags, frag_offset: off * 8, options }
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
        fn no_panic_on_any_bytes(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&b[..]) {
                let _ = (p.payload(), p.options(), p.verify_checksum(), Repr::parse(&p));
            }
        }
    }
}
