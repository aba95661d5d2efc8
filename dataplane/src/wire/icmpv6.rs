//! ICMPv6 (RFC 4443) and the two Neighbor Discovery messages a router needs to resolve and answer
//! for addresses (RFC 4861 §4.3, §4.4) with the link-layer address options (§4.6.1).
//!
//! Layer 3 (IPv6 next header 58). The buffer is the ICMPv6 message; the checksum covers the IPv6
//! pseudo-header and the message (RFC 4443 §2.3), so [`Repr::parse`] and [`Repr::emit`] take the
//! addresses. Error messages (destination unreachable §3.1, packet too big §3.2, time exceeded §3.3)
//! carry the offending packet as `invoking` bytes, checked to begin with a whole IPv6 header (read it
//! with [`ipv6::Packet::new_quoted`]); a router quotes as much as keeps the error within
//! [`MAX_ERROR_PACKET_LEN`] bytes (§2.4(c)).
//!
//! Neighbor Solicitation/Advertisement are checked as RFC 4861 §7.1.1/§7.1.2 ask of the ICMP part
//! (code 0, length ≥ 24, target not multicast, no zero-length option); the IP-layer checks (hop limit
//! 255, source/destination rules) are the caller's. Of the options only the source/target link-layer
//! address of an Ethernet link (length 1) is kept; others are skipped. Other types survive a round trip
//! as [`Repr::Other`].

use core::net::Ipv6Addr;

use super::checksum;
use super::ethernet::Address;
use super::{check, code_point, get_u16, get_u32, ipv6, malformed, set_u16, set_u32, Error, IpProtocol, Result};

const LAYER: &str = "icmpv6";

code_point! {
    /// ICMPv6 type (RFC 4443 §2.1, RFC 4861 §4).
    Message(u8) {
        /// Destination unreachable.
        DST_UNREACHABLE = 1,
        /// Packet too big.
        PKT_TOO_BIG = 2,
        /// Time exceeded.
        TIME_EXCEEDED = 3,
        /// Parameter problem.
        PARAM_PROBLEM = 4,
        /// Echo request.
        ECHO_REQUEST = 128,
        /// Echo reply.
        ECHO_REPLY = 129,
        /// Router solicitation.
        ROUTER_SOLICIT = 133,
        /// Router advertisement.
        ROUTER_ADVERT = 134,
        /// Neighbor solicitation.
        NEIGHBOR_SOLICIT = 135,
        /// Neighbor advertisement.
        NEIGHBOR_ADVERT = 136,
        /// Redirect.
        REDIRECT = 137,
    }
}

code_point! {
    /// Destination-unreachable codes (RFC 4443 §3.1).
    DstUnreachable(u8) {
        /// No route to destination.
        NO_ROUTE = 0,
        /// Communication administratively prohibited.
        ADMIN_PROHIBITED = 1,
        /// Beyond scope of source address.
        BEYOND_SCOPE = 2,
        /// Address unreachable.
        ADDR_UNREACHABLE = 3,
        /// Port unreachable.
        PORT_UNREACHABLE = 4,
        /// Source address failed ingress/egress policy.
        FAILED_POLICY = 5,
        /// Reject route to destination.
        REJECT_ROUTE = 6,
    }
}

code_point! {
    /// Time-exceeded codes (RFC 4443 §3.3).
    TimeExceeded(u8) {
        /// Hop limit exceeded in transit.
        HOP_LIMIT_EXCEEDED = 0,
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
    /// Packet too big: MTU; parameter problem: pointer; else unused/flags.
    pub const REST: Field = 4..8;
    /// Neighbor advertisement R/S/O flags (RFC 4861 §4.4).
    pub const NA_FLAGS: usize = 4;
    pub const DATA: usize = 8;
    /// NS/NA target address.
    pub const TARGET: Field = 8..24;
    /// NS/NA options.
    pub const NDP_OPTIONS: usize = 24;
}

/// Length of the ICMPv6 header (type, code, checksum and the 4-byte rest).
pub const HEADER_LEN: usize = 8;
/// Largest packet an ICMPv6 error may make: the IPv6 minimum MTU (RFC 4443 §2.4(c)).
pub const MAX_ERROR_PACKET_LEN: usize = 1280;
/// Length of an NS or NA without options.
pub const ND_LEN: usize = 24;

const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// NDP option types (RFC 4861 §4.6).
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;

/// A view of an ICMPv6 message.
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

    /// Bytes 4..8 as one word: the MTU of a packet too big (§3.2), the pointer of a parameter
    /// problem (§3.4).
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST.start)
    }

    /// Neighbor advertisement Router flag.
    #[inline]
    pub fn router_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_ROUTER != 0
    }

    /// Neighbor advertisement Solicited flag.
    #[inline]
    pub fn solicited_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_SOLICITED != 0
    }

    /// Neighbor advertisement Override flag.
    #[inline]
    pub fn override_flag(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_OVERRIDE != 0
    }

    /// NS/NA target address; `None` if the message is shorter than 24 bytes.
    #[inline]
    pub fn target_addr(&self) -> Option<Ipv6Addr> {
        let b = self.buffer.as_ref().get(field::TARGET)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(b);
        Some(Ipv6Addr::from(a))
    }

    /// NS/NA options (empty if the message is shorter than 24 bytes).
    #[inline]
    pub fn ndp_options(&self) -> &[u8] {
        self.buffer.as_ref().get(field::NDP_OPTIONS..).unwrap_or(&[])
    }

    /// Whether the checksum verifies for this source and destination.
    #[inline]
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::ICMPV6, b.len() as u32);
        checksum::combine(&[ph, checksum::data(b)]) == 0xffff
    }

    /// The bytes after the 8-byte header.
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

    /// Sets bytes 4..8 as one word (MTU, pointer, echo identifier and sequence, NA flags).
    #[inline]
    pub fn set_rest_of_header(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::REST.start, v);
    }

    /// Sets the NS/NA target; the buffer must hold 24 bytes.
    #[inline]
    pub fn set_target_addr(&mut self, a: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET].copy_from_slice(&a.octets());
    }

    /// Computes and writes the checksum for this source and destination.
    #[inline]
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::ICMPV6, b.len() as u32);
        let c = !checksum::combine(&[ph, checksum::data(b)]);
        self.set_checksum(c);
    }

    /// The bytes after the header, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

/// The meaning of an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Echo request (§4.1).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Echo reply (§4.2).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination unreachable (§3.1).
    DstUnreachable {
        /// Code.
        code: DstUnreachable,
        /// The offending packet's header and leading bytes.
        invoking: &'a [u8],
    },
    /// Packet too big (§3.2).
    PktTooBig {
        /// MTU of the next-hop link.
        mtu: u32,
        /// The offending packet's header and leading bytes.
        invoking: &'a [u8],
    },
    /// Time exceeded (§3.3).
    TimeExceeded {
        /// Code.
        code: TimeExceeded,
        /// The offending packet's header and leading bytes.
        invoking: &'a [u8],
    },
    /// Neighbor solicitation (RFC 4861 §4.3).
    NeighborSolicit {
        /// Address whose link-layer address is asked for.
        target_addr: Ipv6Addr,
        /// Source link-layer address option.
        source_lladdr: Option<Address>,
    },
    /// Neighbor advertisement (RFC 4861 §4.4).
    NeighborAdvert {
        /// R: the sender is a router.
        router: bool,
        /// S: sent in response to a solicitation.
        solicited: bool,
        /// O: override an existing cache entry.
        override_: bool,
        /// Address advertised.
        target_addr: Ipv6Addr,
        /// Target link-layer address option.
        target_lladdr: Option<Address>,
    },
    /// Any other message, kept as is.
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

fn check_invoking(invoking: &[u8]) -> Result<()> {
    ipv6::Packet::new_quoted(invoking)
        .map(|_| ())
        .map_err(|_| malformed(LAYER, field::DATA, "quoted packet does not start with an IPv6 header"))
}

/// Finds the link-layer address option of `kind` (RFC 4861 §4.6); every option's length must be
/// non-zero and fit.
fn find_lladdr(options: &[u8], kind: u8) -> Result<Option<Address>> {
    let mut found = None;
    let mut at = 0;
    while at < options.len() {
        let len = options.get(at + 1).map_or(0, |&l| usize::from(l) * 8);
        if len == 0 {
            return Err(malformed(LAYER, field::NDP_OPTIONS + at, "option with length zero"));
        }
        if at + len > options.len() {
            return Err(malformed(LAYER, field::NDP_OPTIONS + at, "option runs past the message"));
        }
        if options[at] == kind && len == 8 && found.is_none() {
            found = Some(Address::from_bytes(&options[at + 2..at + 8]));
        }
        at += len;
    }
    Ok(found)
}

impl<'a> Repr<'a> {
    /// Parses a checked message from `src` to `dst`, verifying its checksum and the per-type rules
    /// of the module doc.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum { layer: LAYER });
        }
        let buf = packet.buffer.as_ref();
        let data = &buf[field::DATA..];
        let code = packet.msg_code();
        let nd_target = || -> Result<(Ipv6Addr, &'a [u8])> {
            if code != 0 {
                return Err(malformed(LAYER, field::CODE, "neighbor discovery code is not 0"));
            }
            check(LAYER, ND_LEN, buf.len())?;
            let mut a = [0u8; 16];
            a.copy_from_slice(&buf[field::TARGET]);
            let target = Ipv6Addr::from(a);
            if target.is_multicast() {
                return Err(malformed(LAYER, field::TARGET.start, "target is a multicast address"));
            }
            Ok((target, &buf[field::NDP_OPTIONS..]))
        };
        Ok(match packet.msg_type() {
            Message::ECHO_REQUEST if code == 0 => {
                Repr::EchoRequest { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data }
            }
            Message::ECHO_REPLY if code == 0 => {
                Repr::EchoReply { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data }
            }
            Message::DST_UNREACHABLE => {
                check_invoking(data)?;
                Repr::DstUnreachable { code: DstUnreachable(code), invoking: data }
            }
            Message::PKT_TOO_BIG if code == 0 => {
                check_invoking(data)?;
                Repr::PktTooBig { mtu: packet.rest_of_header(), invoking: data }
            }
            Message::TIME_EXCEEDED => {
                check_invoking(data)?;
                Repr::TimeExceeded { code: TimeExceeded(code), invoking: data }
            }
            Message::NEIGHBOR_SOLICIT => {
                let (target_addr, options) = nd_target()?;
                Repr::NeighborSolicit { target_addr, source_lladdr: find_lladdr(options, OPT_SOURCE_LLADDR)? }
            }
            Message::NEIGHBOR_ADVERT => {
                let (target_addr, options) = nd_target()?;
                Repr::NeighborAdvert {
                    router: packet.router_flag(),
                    solicited: packet.solicited_flag(),
                    override_: packet.override_flag(),
                    target_addr,
                    target_lladdr: find_lladdr(options, OPT_TARGET_LLADDR)?,
                }
            }
            msg_type => Repr::Other { msg_type, code, rest_of_header: packet.rest_of_header(), data },
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } | Repr::Other { data, .. } => {
                HEADER_LEN + data.len()
            }
            Repr::DstUnreachable { invoking, .. }
            | Repr::PktTooBig { invoking, .. }
            | Repr::TimeExceeded { invoking, .. } => HEADER_LEN + invoking.len(),
            Repr::NeighborSolicit { source_lladdr: ll, .. } | Repr::NeighborAdvert { target_lladdr: ll, .. } => {
                ND_LEN + if ll.is_some() { 8 } else { 0 }
            }
        }
    }

    /// Writes the whole message with its checksum for `src` → `dst` into a buffer of exactly
    /// [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let echo = |ident: u16, seq_no: u16| (u32::from(ident) << 16) | u32::from(seq_no);
        let (msg_type, code, rest, data) = match *self {
            Repr::EchoRequest { ident, seq_no, data } => (Message::ECHO_REQUEST, 0, echo(ident, seq_no), data),
            Repr::EchoReply { ident, seq_no, data } => (Message::ECHO_REPLY, 0, echo(ident, seq_no), data),
            Repr::DstUnreachable { code, invoking } => (Message::DST_UNREACHABLE, code.0, 0, invoking),
            Repr::PktTooBig { mtu, invoking } => (Message::PKT_TOO_BIG, 0, mtu, invoking),
            Repr::TimeExceeded { code, invoking } => (Message::TIME_EXCEEDED, code.0, 0, invoking),
            Repr::Other { msg_type, code, rest_of_header, data } => (msg_type, code, rest_of_header, data),
            Repr::NeighborSolicit { target_addr, source_lladdr } => {
                packet.set_target_addr(target_addr);
                emit_lladdr(packet, OPT_SOURCE_LLADDR, source_lladdr);
                (Message::NEIGHBOR_SOLICIT, 0, 0, &[][..])
            }
            Repr::NeighborAdvert { router, solicited, override_, target_addr, target_lladdr } => {
                packet.set_target_addr(target_addr);
                emit_lladdr(packet, OPT_TARGET_LLADDR, target_lladdr);
                let flags = (u8::from(router) * NA_ROUTER)
                    | (u8::from(solicited) * NA_SOLICITED)
                    | (u8::from(override_) * NA_OVERRIDE);
                (Message::NEIGHBOR_ADVERT, 0, u32::from(flags) << 24, &[][..])
            }
        };
        packet.set_msg_type(msg_type);
        packet.set_msg_code(code);
        packet.set_rest_of_header(rest);
        packet.data_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum(src, dst);
    }
}

fn emit_lladdr<T: AsRef<[u8]> + AsMut<[u8]>>(packet: &mut Packet<T>, kind: u8, lladdr: Option<Address>) {
    if let Some(a) = lladdr {
        let o = &mut packet.buffer.as_mut()[field::NDP_OPTIONS..field::NDP_OPTIONS + 8];
        o[0] = kind;
        o[1] = 1;
        o[2..].copy_from_slice(&a.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{hex, junk};
    use proptest::prelude::*;

    // IPv6(src="2001:db8::1", dst="2001:db8::2")/ICMPv6EchoRequest(id=0x1234, seq=1, data=b"abcdefgh")
    const ECHO: &str = "6000000000103a4020010db800000000000000000000000120010db8000000000000000000000002\
                        80008075123400016162636465666768";
    // IPv6(src="2001:db8::2", dst="2001:db8::1")/ICMPv6EchoReply(id=0x1234, seq=1, data=b"abcdefgh")
    const ECHO_REPLY: &str = "6000000000103a4020010db800000000000000000000000220010db8000000000000000000000001\
                              81007f75123400016162636465666768";
    // IPv6(src="2001:db8::fe", dst="2001:db8::1")/ICMPv6PacketTooBig(mtu=1400)
    //   / IPv6(src="2001:db8::1", dst="2001:db8::2", plen=1460)/UDP(sport=1234, dport=53, len=1460)
    const PTB: &str = "6000000000383a4020010db80000000000000000000000fe20010db8000000000000000000000001\
                       020024c900000578\
                       6000000005b4114020010db800000000000000000000000120010db8000000000000000000000002\
                       04d2003505b499b6";
    // IPv6(src="2001:db8::fe", dst="2001:db8::1")/ICMPv6DestUnreach(code=4)
    //   / IPv6(src="2001:db8::1", dst="2001:db8::2", plen=8)/UDP(sport=1234, dport=53, len=8)
    const UNREACH: &str = "6000000000383a4020010db80000000000000000000000fe20010db8000000000000000000000001\
                           010430e900000000\
                           600000000008114020010db800000000000000000000000120010db8000000000000000000000002\
                           04d2003500089f62";
    // IPv6(src="2001:db8::fe", dst="2001:db8::1")/ICMPv6TimeExceeded(code=0)
    //   / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=1, plen=8)/UDP(sport=1234, dport=53, len=8)
    const TIME_EXCEEDED: &str = "6000000000383a4020010db80000000000000000000000fe20010db8000000000000000000000001\
                                 03002f2c00000000\
                                 600000000008110120010db800000000000000000000000120010db8000000000000000000000002\
                                 04d2003500089f62";
    // IPv6(src="2001:db8::1", dst="ff02::1:ff00:2", hlim=255)/ICMPv6ND_NS(tgt="2001:db8::2")
    //   / ICMPv6NDOptSrcLLAddr(lladdr="66:77:88:99:aa:bb")
    const NS: &str = "6000000000203aff20010db8000000000000000000000001ff0200000000000000000001ff000002\
                      8700845b0000000020010db8000000000000000000000002010166778899aabb";
    // IPv6(src="2001:db8::2", dst="2001:db8::1", hlim=255)/ICMPv6ND_NA(R=0, S=1, O=1, tgt="2001:db8::2")
    //   / ICMPv6NDOptDstLLAddr(lladdr="00:11:22:33:44:55")
    const NA: &str = "6000000000203aff20010db800000000000000000000000220010db8000000000000000000000001\
                      880025da6000000020010db80000000000000000000000020201001122334455";

    /// Splits a Scapy IPv6 packet into (src, dst, ICMPv6 bytes).
    fn split(b: &[u8]) -> (Ipv6Addr, Ipv6Addr, &[u8]) {
        let ip = ipv6::Packet::new_checked(b).unwrap();
        (ip.src_addr(), ip.dst_addr(), &b[40..])
    }

    fn parse<'a>(b: &'a [u8], s: &Ipv6Addr, d: &Ipv6Addr) -> Result<Repr<'a>> {
        Repr::parse(&Packet::new_checked(b)?, s, d)
    }

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_echo() {
        let b = hex(ECHO);
        let (s, d, m) = split(&b);
        assert_eq!(parse(m, &s, &d).unwrap(), Repr::EchoRequest { ident: 0x1234, seq_no: 1, data: b"abcdefgh" });
        let b = hex(ECHO_REPLY);
        let (s, d, m) = split(&b);
        assert_eq!(parse(m, &s, &d).unwrap(), Repr::EchoReply { ident: 0x1234, seq_no: 1, data: b"abcdefgh" });
    }

    #[test]
    fn parse_errors_and_read_quotes() {
        let b = hex(PTB);
        let (s, d, m) = split(&b);
        let Repr::PktTooBig { mtu, invoking } = parse(m, &s, &d).unwrap() else { panic!("not PTB") };
        assert_eq!(mtu, 1400);
        let inner = ipv6::Packet::new_quoted(invoking).unwrap();
        assert_eq!((inner.dst_addr(), inner.payload_len()), (addr("2001:db8::2"), 1460));
        assert!(ipv6::Packet::new_checked(invoking).is_err(), "the quote is cut short");

        let b = hex(UNREACH);
        let (s, d, m) = split(&b);
        let Repr::DstUnreachable { code, .. } = parse(m, &s, &d).unwrap() else { panic!("not unreachable") };
        assert_eq!(code, DstUnreachable::PORT_UNREACHABLE);

        let b = hex(TIME_EXCEEDED);
        let (s, d, m) = split(&b);
        let Repr::TimeExceeded { code, invoking } = parse(m, &s, &d).unwrap() else { panic!("not TE") };
        assert_eq!(code, TimeExceeded::HOP_LIMIT_EXCEEDED);
        assert_eq!(ipv6::Packet::new_quoted(invoking).unwrap().hop_limit(), 1);
    }

    #[test]
    fn parse_neighbor_discovery() {
        let b = hex(NS);
        let (s, d, m) = split(&b);
        assert_eq!(
            parse(m, &s, &d).unwrap(),
            Repr::NeighborSolicit {
                target_addr: addr("2001:db8::2"),
                source_lladdr: Some(Address([0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]))
            }
        );
        let b = hex(NA);
        let (s, d, m) = split(&b);
        assert_eq!(
            parse(m, &s, &d).unwrap(),
            Repr::NeighborAdvert {
                router: false,
                solicited: true,
                override_: true,
                target_addr: addr("2001:db8::2"),
                target_lladdr: Some(Address([0x00, 0x11, 0x22, 0x33, 0x44, 0x55]))
            }
        );
    }

    #[test]
    fn emit_matches_scapy() {
        for v in [ECHO, ECHO_REPLY, PTB, UNREACH, TIME_EXCEEDED, NS, NA] {
            let b = hex(v);
            let (s, d, m) = split(&b);
            let r = parse(m, &s, &d).unwrap();
            let mut out = junk(r.buffer_len());
            r.emit(&mut Packet::new_unchecked(&mut out[..]), &s, &d);
            assert_eq!(out, m, "{r:?}");
        }
    }

    #[test]
    fn rejects_what_rfc_4861_discards() {
        let b = hex(NS);
        let (s, d, m) = split(&b);
        let fix = |m: &mut Vec<u8>| Packet::new_unchecked(&mut m[..]).fill_checksum(&s, &d);
        let mut bad = m.to_vec();
        bad[25] = 0; // option length zero
        fix(&mut bad);
        assert!(matches!(parse(&bad, &s, &d), Err(Error::Malformed { offset: 24, .. })));
        let mut bad = m.to_vec();
        bad[1] = 1; // code 1
        fix(&mut bad);
        assert!(matches!(parse(&bad, &s, &d), Err(Error::Malformed { offset: 1, .. })));
        let mut bad = m.to_vec();
        bad[8] = 0xff; // multicast target
        fix(&mut bad);
        assert!(matches!(parse(&bad, &s, &d), Err(Error::Malformed { offset: 8, .. })));
        let mut bad = m[..20].to_vec(); // shorter than 24
        fix(&mut bad);
        assert!(matches!(parse(&bad, &s, &d), Err(Error::Truncated { needed: 24, got: 20, .. })));
        // Wrong pseudo-header address.
        assert_eq!(parse(m, &s, &s), Err(Error::Checksum { layer: "icmpv6" }));
        for n in 0..HEADER_LEN {
            assert!(Packet::new_checked(&m[..n]).is_err());
        }
        assert_eq!(Packet::new_checked(&m[..8]).unwrap().target_addr(), None);
    }

    fn arb_quote() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 40..60).prop_map(|mut v| {
            v[0] = 0x60;
            v
        })
    }

    proptest! {
        #[test]
        fn roundtrip(kind in 0u8..8, a in any::<u16>(), b in any::<u16>(), c in any::<u8>(),
                     flags in any::<[bool; 3]>(), target in any::<u128>(), ll in proptest::option::of(any::<[u8; 6]>()),
                     data in proptest::collection::vec(any::<u8>(), 0..30), quote in arb_quote()) {
            let (s, d) = (addr("fe80::1"), addr("fe80::2"));
            let target = Ipv6Addr::from(target & !(0xff << 120)); // not multicast
            let r = match kind {
                0 => Repr::EchoRequest { ident: a, seq_no: b, data: &data },
                1 => Repr::EchoReply { ident: a, seq_no: b, data: &data },
                2 => Repr::DstUnreachable { code: DstUnreachable(c), invoking: &quote },
                3 => Repr::PktTooBig { mtu: u32::from(a) << 8, invoking: &quote },
                4 => Repr::TimeExceeded { code: TimeExceeded(c), invoking: &quote },
                5 => Repr::NeighborSolicit { target_addr: target, source_lladdr: ll.map(Address) },
                6 => Repr::NeighborAdvert { router: flags[0], solicited: flags[1], override_: flags[2],
                                            target_addr: target, target_lladdr: ll.map(Address) },
                _ => Repr::Other { msg_type: Message(200), code: c, rest_of_header: u32::from(b),
                                   data: &data },
            };
            let mut buf = junk(r.buffer_len());
            r.emit(&mut Packet::new_unchecked(&mut buf[..]), &s, &d);
            prop_assert_eq!(parse(&buf, &s, &d).unwrap(), r);
        }
    }
}
