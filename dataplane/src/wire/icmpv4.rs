//! ICMP for IPv4 (RFC 792): echo, and the error messages a router sends — destination unreachable
//! (with RFC 1191 §4's next-hop MTU for code 4, "fragmentation needed and DF set") and time
//! exceeded — which quote the offending datagram's header and leading bytes.
//!
//! Layer 3 (carried in IPv4, protocol 1). The buffer is the ICMP message (the IPv4 payload); the
//! checksum covers all of it (RFC 792 "Checksum"). [`Repr::parse`] verifies it, [`Repr::emit`] writes
//! it. Errors carry the quoted datagram as `invoking` bytes, checked to begin with a whole IPv4 header
//! (read it with [`ipv4::Packet::new_quoted`]); a router quotes as much as fits in a
//! [`MAX_ERROR_DATAGRAM_LEN`]-byte datagram (RFC 1812 §4.3.2.3). Other types survive a round trip as
//! [`Repr::Other`].

use super::{check, checksum, code_point, get_u16, get_u32, ipv4, malformed, set_u16, set_u32, Error, Result};

const LAYER: &str = "icmpv4";

code_point! {
    /// ICMP type (RFC 792; IANA "icmp-parameters").
    Message(u8) {
        /// Echo reply.
        ECHO_REPLY = 0,
        /// Destination unreachable.
        DST_UNREACHABLE = 3,
        /// Redirect.
        REDIRECT = 5,
        /// Echo request.
        ECHO_REQUEST = 8,
        /// Time exceeded.
        TIME_EXCEEDED = 11,
        /// Parameter problem.
        PARAM_PROBLEM = 12,
    }
}

code_point! {
    /// Destination-unreachable codes (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
    DstUnreachable(u8) {
        /// Net unreachable.
        NET_UNREACHABLE = 0,
        /// Host unreachable.
        HOST_UNREACHABLE = 1,
        /// Protocol unreachable.
        PROTOCOL_UNREACHABLE = 2,
        /// Port unreachable.
        PORT_UNREACHABLE = 3,
        /// Fragmentation needed and DF set (RFC 1191 §4: carries the next-hop MTU).
        FRAG_NEEDED = 4,
        /// Source route failed.
        SOURCE_ROUTE_FAILED = 5,
        /// Communication administratively prohibited (RFC 1812).
        ADMIN_PROHIBITED = 13,
    }
}

code_point! {
    /// Time-exceeded codes (RFC 792).
    TimeExceeded(u8) {
        /// Time to live exceeded in transit.
        TTL_EXPIRED = 0,
        /// Fragment reassembly time exceeded.
        FRAG_REASSEMBLY = 1,
    }
}

mod field {
    use crate::wire::Field;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    /// Bytes 4..8 of other messages ("unused" or type-specific).
    pub const REST: Field = 4..8;
    /// RFC 1191 §4: the low half of the unused word.
    pub const NEXT_HOP_MTU: Field = 6..8;
    pub const DATA: usize = 8;
}

/// Length of the ICMP header (type, code, checksum and the 4-byte rest).
pub const HEADER_LEN: usize = 8;
/// Largest IPv4 datagram an ICMP error should make (RFC 1812 §4.3.2.3).
pub const MAX_ERROR_DATAGRAM_LEN: usize = 576;

/// A view of an ICMP message.
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

    /// Wraps a buffer, checking that the 8-byte header is inside it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the 8-byte header is inside the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        check(LAYER, HEADER_LEN, self.buffer.as_ref().len())
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Type.
    #[inline]
    pub fn msg_type(&self) -> Message {
        Message(self.buffer.as_ref()[field::TYPE])
    }

    /// Code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Echo identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// Echo sequence number.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191 §4; zero from pre-RFC 1191 routers).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU.start)
    }

    /// Bytes 4..8 as one word.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST.start)
    }

    /// Whether the checksum verifies over the whole message.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
    }

    /// The bytes after the 8-byte header: echo data, or the quoted datagram of an error.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the type.
    #[inline]
    pub fn set_msg_type(&mut self, v: Message) {
        self.buffer.as_mut()[field::TYPE] = v.0;
    }

    /// Sets the code.
    #[inline]
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_IDENT.start, v);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_SEQNO.start, v);
    }

    /// Sets bytes 4..8 as one word.
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::REST.start, v);
    }

    /// Computes and writes the checksum over the whole buffer.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = !checksum::data(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// The bytes after the header, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

/// The meaning of an ICMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data, echoed back.
        data: &'a [u8],
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// Code.
        code: DstUnreachable,
        /// Next-hop MTU (RFC 1191 §4), meaningful with [`DstUnreachable::FRAG_NEEDED`]; zero
        /// otherwise (the field is "unused" and sent as zero).
        next_hop_mtu: u16,
        /// The offending datagram's header and leading bytes.
        invoking: &'a [u8],
    },
    /// Time exceeded (type 11).
    TimeExceeded {
        /// Code.
        code: TimeExceeded,
        /// The offending datagram's header and leading bytes.
        invoking: &'a [u8],
    },
    /// Any other type, kept as is.
    Other {
        /// Type.
        msg_type: Message,
        /// Code.
        code: u8,
        /// Bytes 4..8.
        rest_of_header: u32,
        /// Bytes after the header.
        data: &'a [u8],
    },
}

/// Checks that `invoking` starts with a whole IPv4 header (RFC 792: "Internet Header + 64 bits of
/// Original Data Datagram"; the 64 bits are not insisted on).
fn check_invoking(invoking: &[u8]) -> Result<()> {
    ipv4::Packet::new_quoted(invoking)
        .map(|_| ())
        .map_err(|_| malformed(LAYER, field::DATA, "quoted datagram does not start with an IPv4 header"))
}

impl<'a> Repr<'a> {
    /// Parses a checked message, verifying its checksum and, for errors, the quoted header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Checksum { layer: LAYER });
        }
        let data = &packet.buffer.as_ref()[field::DATA..];
        Ok(match packet.msg_type() {
            Message::ECHO_REQUEST if packet.msg_code() == 0 => {
                Repr::EchoRequest { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data }
            }
            Message::ECHO_REPLY if packet.msg_code() == 0 => {
                Repr::EchoReply { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data }
            }
            Message::DST_UNREACHABLE => {
                check_invoking(data)?;
                Repr::DstUnreachable {
                    code: DstUnreachable(packet.msg_code()),
                    next_hop_mtu: packet.next_hop_mtu(),
                    invoking: data,
                }
            }
            Message::TIME_EXCEEDED => {
                check_invoking(data)?;
                Repr::TimeExceeded { code: TimeExceeded(packet.msg_code()), invoking: data }
            }
            msg_type => {
                Repr::Other { msg_type, code: packet.msg_code(), rest_of_header: packet.rest_of_header(), data }
            }
        })
    }

    /// Bytes [`Repr::emit`] writes: the header and the data.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } | Repr::Other { data, .. } => data.len(),
                Repr::DstUnreachable { invoking, .. } | Repr::TimeExceeded { invoking, .. } => invoking.len(),
            }
    }

    /// Writes the whole message with its checksum into a buffer of exactly [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let (msg_type, code, rest, data) = match *self {
            Repr::EchoRequest { ident, seq_no, data } => {
                (Message::ECHO_REQUEST, 0, (u32::from(ident) << 16) | u32::from(seq_no), data)
            }
            Repr::EchoReply { ident, seq_no, data } => {
                (Message::ECHO_REPLY, 0, (u32::from(ident) << 16) | u32::from(seq_no), data)
            }
            Repr::DstUnreachable { code, next_hop_mtu, invoking } => {
                (Message::DST_UNREACHABLE, code.0, u32::from(next_hop_mtu), invoking)
            }
            Repr::TimeExceeded { code, invoking } => (Message::TIME_EXCEEDED, code.0, 0, invoking),
            Repr::Other { msg_type, code, rest_of_header, data } => (msg_type, code, rest_of_header, data),
        };
        packet.set_msg_type(msg_type);
        packet.set_msg_code(code);
        packet.set_rest_of_header(rest);
        packet.data_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{hex, junk};
    use crate::wire::IpProtocol;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    // IP(src="192.0.2.1", dst="192.0.2.2")/ICMP(type=8, id=0x1234, seq=1)/Raw(b"abcdefgh")
    const ECHO: &str = "45000024000100004001f6d4c0000201c000020208005435123400016162636465666768";
    // IP(src="192.0.2.2", dst="192.0.2.1")/ICMP(type=0, id=0x1234, seq=1)/Raw(b"abcdefgh")
    const ECHO_REPLY: &str = "45000024000100004001f6d4c0000202c000020100005c35123400016162636465666768";
    // ICMP(type=3, code=4, nexthopmtu=1400)/IPerror(src="10.1.1.1", dst="10.2.2.2", flags="DF", id=7,
    //      len=1500)/UDPerror(sport=1234, dport=53, len=1480)
    const FRAG_NEEDED: &str = "0304146300000578450005dc0007400040111e050a0101010a02020204d2003505c8d851";
    // ICMP(type=11, code=0)/IPerror(src="10.1.1.1", dst="10.2.2.2", ttl=1, id=9, len=84, proto=1)
    //   / ICMPerror(type=8, id=1, seq=2)
    const TIME_EXCEEDED: &str = "0b00f4ff0000000045000054000900000101a29b0a0101010a0202020800f7fc00010002";

    fn parse(b: &[u8]) -> Result<Repr<'_>> {
        Repr::parse(&Packet::new_checked(b)?)
    }

    #[test]
    fn parse_echo() {
        let b = hex(ECHO);
        assert_eq!(parse(&b[20..]).unwrap(), Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"abcdefgh" });
        let b = hex(ECHO_REPLY);
        assert_eq!(parse(&b[20..]).unwrap(), Repr::EchoReply { ident: 0x1234, seq_no: 1, data: b"abcdefgh" });
    }

    #[test]
    fn parse_frag_needed_and_read_quote() {
        let b = hex(FRAG_NEEDED);
        let Repr::DstUnreachable { code, next_hop_mtu, invoking } = parse(&b).unwrap() else {
            panic!("not a destination unreachable")
        };
        assert_eq!((code, next_hop_mtu), (DstUnreachable::FRAG_NEEDED, 1400));
        let inner = ipv4::Packet::new_quoted(invoking).unwrap();
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(10, 2, 2, 2));
        assert_eq!((inner.total_len(), inner.dont_frag(), inner.protocol()), (1500, true, IpProtocol::UDP));
        assert_eq!(inner.payload(), &hex("04d2003505c8d851")[..]);
        assert!(ipv4::Packet::new_checked(invoking).is_err(), "the quote is cut short");
    }

    #[test]
    fn parse_time_exceeded() {
        let b = hex(TIME_EXCEEDED);
        let Repr::TimeExceeded { code, invoking } = parse(&b).unwrap() else { panic!("not time exceeded") };
        assert_eq!(code, TimeExceeded::TTL_EXPIRED);
        assert_eq!(ipv4::Packet::new_quoted(invoking).unwrap().ttl(), 1);
    }

    #[test]
    fn emit_matches_scapy() {
        let echo = hex(ECHO);
        let reply = hex(ECHO_REPLY);
        let frag = hex(FRAG_NEEDED);
        let te = hex(TIME_EXCEEDED);
        for b in [&echo[20..], &reply[20..], &frag[..], &te[..]] {
            let r = parse(b).unwrap();
            let mut out = junk(r.buffer_len());
            r.emit(&mut Packet::new_unchecked(&mut out[..]));
            assert_eq!(out, b);
        }
    }

    #[test]
    fn errors_are_reported() {
        let mut b = hex(FRAG_NEEDED);
        b[30] ^= 1;
        assert_eq!(parse(&b), Err(Error::Checksum { layer: "icmpv4" }));
        // A quote shorter than an IPv4 header (checksum fixed up so that only the quote is wrong).
        let b = hex(FRAG_NEEDED);
        let mut short = b[..20].to_vec();
        Packet::new_unchecked(&mut short[..]).fill_checksum();
        assert!(matches!(parse(&short), Err(Error::Malformed { layer: "icmpv4", offset: 8, .. })));
        for n in 0..HEADER_LEN {
            assert!(Packet::new_checked(&b[..n]).is_err());
        }
    }

    fn arb_quote() -> impl Strategy<Value = Vec<u8>> {
        (proptest::collection::vec(any::<u8>(), 20..40)).prop_map(|mut v| {
            v[0] = 0x45;
            v[2] = 0x05;
            v
        })
    }

    proptest! {
        #[test]
        fn roundtrip(kind in 0u8..5, a in any::<u16>(), b in any::<u16>(), c in any::<u8>(),
                     data in proptest::collection::vec(any::<u8>(), 0..30), quote in arb_quote()) {
            let r = match kind {
                0 => Repr::EchoRequest { ident: a, seq_no: b, data: &data },
                1 => Repr::EchoReply { ident: a, seq_no: b, data: &data },
                2 => Repr::DstUnreachable { code: DstUnreachable(c), next_hop_mtu: a, invoking: &quote },
                3 => Repr::TimeExceeded { code: TimeExceeded(c), invoking: &quote },
                _ => Repr::Other { msg_type: Message(42), code: c, rest_of_header: u32::from(a) << 7,
                                   data: &data },
            };
            let mut buf = junk(r.buffer_len());
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(parse(&buf).unwrap(), r);
        }
    }
}
