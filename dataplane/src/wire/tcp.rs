//! TCP header (RFC 9293 §3.1): the view, the options walk (§3.2), the Maximum Segment Size option
//! (§3.7.1) and the checksum over the IPv4/IPv6 pseudo-header — enough for a router to clamp the MSS
//! of transiting SYNs (`ip tcp adjust-mss`) with an incremental checksum update (RFC 1624).
//!
//! Layer 4. [`Packet::new_checked`] guarantees a data offset ≥ 5 and a header inside the buffer. TCP
//! has no length field: the buffer is the segment (the IP payload). Options other than MSS are walked
//! but not interpreted; [`Repr`] keeps only the MSS.

use core::fmt;

use super::checksum::{self, PseudoHeader};
use super::{check, get_u16, get_u32, malformed, set_u16, set_u32, Error, IpProtocol, Result};

const LAYER: &str = "tcp";

mod field {
    use crate::wire::Field;
    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Option kinds (RFC 9293 §3.2).
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
}

/// The eight control bits (RFC 9293 §3.1, RFC 3168 §6.1 for ECE/CWR).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push.
    pub const PSH: Flags = Flags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: Flags = Flags(0x20);
    /// ECN-Echo.
    pub const ECE: Flags = Flags(0x40);
    /// Congestion Window Reduced.
    pub const CWR: Flags = Flags(0x80);

    /// Whether every bit of `other` is set.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        write!(f, "Flags({:#04x}", self.0)?;
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                write!(f, " {n}")?;
            }
        }
        write!(f, ")")
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0).
    EndOfList,
    /// No-operation (kind 1).
    NoOperation,
    /// Maximum segment size (kind 2, length 4).
    MaxSegmentSize(u16),
    /// Any other option: its kind and its data (after kind and length).
    Other {
        /// Option kind.
        kind: u8,
        /// Option data.
        data: &'a [u8],
    },
}

/// Walks an options field; yields an error (and then stops) on a malformed option.
#[derive(Debug, Clone)]
pub struct OptionsIter<'a> {
    options: &'a [u8],
    at: usize,
}

impl<'a> OptionsIter<'a> {
    /// Next option with its offset within the options field.
    fn next_at(&mut self) -> Option<Result<(usize, TcpOption<'a>)>> {
        let at = self.at;
        let &k = self.options.get(at)?;
        let opt = match k {
            kind::END => {
                self.at = self.options.len();
                TcpOption::EndOfList
            }
            kind::NOP => {
                self.at += 1;
                TcpOption::NoOperation
            }
            _ => {
                let len = self.options.get(at + 1).map_or(0, |&l| usize::from(l));
                if len < 2 || at + len > self.options.len() || (k == kind::MSS && len != 4) {
                    self.at = self.options.len();
                    return Some(Err(malformed(LAYER, HEADER_LEN + at, "option length")));
                }
                self.at += len;
                let data = &self.options[at + 2..at + len];
                if k == kind::MSS {
                    TcpOption::MaxSegmentSize(get_u16(data, 0))
                } else {
                    TcpOption::Other { kind: k, data }
                }
            }
        };
        Some(Ok((at, opt)))
    }
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_at().map(|r| r.map(|(_, o)| o))
    }
}

/// A view of a TCP segment.
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

    /// Wraps a buffer, checking data offset ≥ 5 and the header inside the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks data offset ≥ 5 and `header_len ≤ buffer length`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        check(LAYER, HEADER_LEN, len)?;
        let hl = self.header_len();
        if hl < HEADER_LEN {
            return Err(malformed(LAYER, field::DATA_OFFSET, "data offset below 5"));
        }
        check(LAYER, hl, len)
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset × 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// Control bits.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Window.
    #[inline]
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The options field, unparsed.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Walks the options.
    #[inline]
    pub fn options_iter(&self) -> OptionsIter<'_> {
        OptionsIter { options: self.options(), at: 0 }
    }

    /// The MSS option's value, if present.
    pub fn max_seg_size(&self) -> Result<Option<u16>> {
        for o in self.options_iter() {
            if let TcpOption::MaxSegmentSize(m) = o? {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// Whether the checksum verifies for this source and destination.
    #[inline]
    pub fn verify_checksum<A: PseudoHeader>(&self, src: &A, dst: &A) -> bool {
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::TCP, b.len() as u32);
        checksum::combine(&[ph, checksum::data(b)]) == 0xffff
    }

    /// The data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ_NUM.start, v);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::ACK_NUM.start, v);
    }

    /// Sets the data offset from a header length in bytes (a multiple of 4, 20..=60), clearing the
    /// reserved bits.
    #[inline]
    pub fn set_header_len(&mut self, v: usize) {
        self.buffer.as_mut()[field::DATA_OFFSET] = ((v / 4) as u8) << 4;
    }

    /// Sets the control bits.
    #[inline]
    pub fn set_flags(&mut self, v: Flags) {
        self.buffer.as_mut()[field::FLAGS] = v.0;
    }

    /// Sets the window.
    #[inline]
    pub fn set_window_len(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::WIN_SIZE.start, v);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT.start, v);
    }

    /// The options field, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    /// Computes and writes the checksum over the pseudo-header and the whole segment (the buffer).
    #[inline]
    pub fn fill_checksum<A: PseudoHeader>(&mut self, src: &A, dst: &A) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::TCP, b.len() as u32);
        let c = !checksum::combine(&[ph, checksum::data(b)]);
        self.set_checksum(c);
    }

    /// MSS clamping (`ip tcp adjust-mss`): in a SYN segment whose MSS option exceeds `max`, writes
    /// `max` and updates the checksum incrementally (RFC 1624), whether or not it verified before.
    /// Returns whether the segment changed. Segments without SYN (RFC 9293 §3.7.1: MSS is sent only in
    /// SYNs), without an MSS option, or whose options do not parse before the MSS are left alone.
    #[inline]
    pub fn clamp_mss(&mut self, max: u16) -> bool {
        if !self.flags().contains(Flags::SYN) {
            return false;
        }
        let mut it = self.options_iter();
        let found = loop {
            match it.next_at() {
                Some(Ok((at, TcpOption::MaxSegmentSize(mss)))) => break Some((at, mss)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break None,
            }
        };
        let Some((at, mss)) = found else { return false };
        if mss <= max {
            return false;
        }
        let value_at = HEADER_LEN + at + 2;
        set_u16(self.buffer.as_mut(), value_at, max);
        // A value at an odd offset straddles two checksum words: update with swapped bytes.
        let (old, new) = if value_at & 1 == 0 { (mss, max) } else { (mss.swap_bytes(), max.swap_bytes()) };
        let c = checksum::update_u16(self.checksum(), old, new);
        self.set_checksum(c);
        true
    }

    /// The data after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// The meaning of a TCP header; of the options only the MSS is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number.
    pub ack_number: u32,
    /// Control bits.
    pub flags: Flags,
    /// Window.
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// MSS option.
    pub max_seg_size: Option<u16>,
}

impl Repr {
    /// Parses a checked segment, verifying its checksum for `src` → `dst` and its options.
    pub fn parse<T: AsRef<[u8]>, A: PseudoHeader>(packet: &Packet<T>, src: &A, dst: &A) -> Result<Repr> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Checksum { layer: LAYER });
        }
        let mut max_seg_size = None;
        for o in packet.options_iter() {
            if let TcpOption::MaxSegmentSize(m) = o? {
                max_seg_size = Some(m);
            }
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            max_seg_size,
        })
    }

    /// Header length: 20, or 24 with an MSS option.
    pub const fn buffer_len(&self) -> usize {
        if self.max_seg_size.is_some() {
            HEADER_LEN + 4
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header with a zero checksum; call [`Packet::fill_checksum`] once the payload is in
    /// place (the buffer must then be exactly the segment).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number);
        packet.set_header_len(self.buffer_len());
        packet.set_flags(self.flags);
        packet.set_window_len(self.window_len);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent_at);
        if let Some(m) = self.max_seg_size {
            let o = packet.options_mut();
            o[0] = kind::MSS;
            o[1] = 4;
            set_u16(o, 2, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{hex, junk};
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    // IP(src="192.0.2.1", dst="198.51.100.2")/TCP(sport=40000, dport=443, seq=0x01020304, ack=0,
    //    flags="S", window=64240, options=[("MSS",1460)])
    const SYN: &str = "4500002c0001000040068e94c0000201c63364029c4001bb01020304000000006002faf00efd0000\
                       020405b4";
    // The same with ("MSS",1360).
    const SYN_1360: &str = "4500002c0001000040068e94c0000201c63364029c4001bb01020304000000006002faf00f610000\
                            02040550";
    // ... options=[("NOP",None),("MSS",1460),("WScale",7),("SAckOK",b""),("EOL",None)]: the MSS
    // value sits at an odd offset.
    const SYN_ODD: &str = "450000340001000040068e8cc0000201c63364029c4001bb01020304000000008002faf036990000\
                           01020405b403030704020000";
    // The same with ("MSS",1360).
    const SYN_ODD_1360: &str = "450000340001000040068e8cc0000201c63364029c4001bb01020304000000008002faf09a99\
                                0000010204055003030704020000";
    // IPv6(src="2001:db8::1", dst="2001:db8::2")/TCP(sport=22, dport=50000, seq=1000, ack=2000,
    //      flags="PA", window=501)/Raw(b"data")
    const ACK6: &str = "600000000018064020010db800000000000000000000000120010db8000000000000000000000002\
                        0016c350000003e8000007d0501801f5aa7d000064617461";

    fn v4() -> (Ipv4Addr, Ipv4Addr) {
        (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 2))
    }

    #[test]
    fn parse_syn() {
        let b = hex(SYN);
        let (s, d) = v4();
        let p = Packet::new_checked(&b[20..]).unwrap();
        let r = Repr::parse(&p, &s, &d).unwrap();
        assert_eq!((r.src_port, r.dst_port, r.seq_number, r.ack_number), (40000, 443, 0x0102_0304, 0));
        assert_eq!((r.flags, r.window_len, r.urgent_at, r.max_seg_size), (Flags::SYN, 64240, 0, Some(1460)));
        assert_eq!(p.checksum(), 0x0efd);
        let b = hex(SYN_ODD);
        let p = Packet::new_checked(&b[20..]).unwrap();
        let opts: Vec<_> = p.options_iter().collect::<Result<_>>().unwrap();
        assert_eq!(
            opts,
            [
                TcpOption::NoOperation,
                TcpOption::MaxSegmentSize(1460),
                TcpOption::Other { kind: 3, data: &[7] },
                TcpOption::Other { kind: 4, data: &[] },
                TcpOption::EndOfList,
            ]
        );
    }

    #[test]
    fn parse_and_emit_ipv6_segment() {
        let b = hex(ACK6);
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let p = Packet::new_checked(&b[40..]).unwrap();
        let r = Repr::parse(&p, &s, &d).unwrap();
        assert_eq!(r.flags, Flags::PSH | Flags::ACK);
        assert_eq!(p.payload(), b"data");
        let mut out = junk(b.len() - 40);
        out[20..].copy_from_slice(b"data");
        let mut q = Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q);
        q.fill_checksum(&s, &d);
        assert_eq!(out, &b[40..]);
    }

    #[test]
    fn emit_syn_matches_scapy() {
        let b = hex(SYN);
        let (s, d) = v4();
        let r = Repr::parse(&Packet::new_checked(&b[20..]).unwrap(), &s, &d).unwrap();
        let mut out = junk(r.buffer_len());
        let mut q = Packet::new_unchecked(&mut out[..]);
        r.emit(&mut q);
        q.fill_checksum(&s, &d);
        assert_eq!(out, &b[20..]);
    }

    #[test]
    fn clamp_mss_matches_scapy() {
        for (before, after) in [(SYN, SYN_1360), (SYN_ODD, SYN_ODD_1360)] {
            let mut b = hex(before);
            let mut p = Packet::new_checked(&mut b[20..]).unwrap();
            assert!(!p.clamp_mss(1460), "already within the limit");
            assert!(p.clamp_mss(1360));
            assert_eq!(b, hex(after));
        }
    }

    #[test]
    fn clamp_mss_leaves_non_syn_alone() {
        let b6 = hex(ACK6);
        let mut seg = b6[40..].to_vec();
        let mut p = Packet::new_checked(&mut seg[..]).unwrap();
        assert!(!p.clamp_mss(100));
        assert_eq!(seg, &b6[40..]);
    }

    #[test]
    fn malformed_options_are_errors() {
        let mut b = hex(SYN);
        b[41] = 3; // MSS length 3
        let p = Packet::new_checked(&b[20..]).unwrap();
        assert!(matches!(p.max_seg_size(), Err(Error::Malformed { layer: "tcp", offset: 20, .. })));
        let mut b = hex(SYN);
        b[41] = 0;
        let mut p = Packet::new_checked(&mut b[20..]).unwrap();
        assert!(!p.clamp_mss(100));
    }

    #[test]
    fn truncation_is_an_error() {
        for v in [SYN, SYN_ODD] {
            let b = hex(v);
            let seg = &b[20..];
            let hl = Packet::new_checked(seg).unwrap().header_len();
            for n in 0..hl {
                assert!(Packet::new_checked(&seg[..n]).is_err(), "length {n}");
            }
        }
        let mut b = hex(SYN);
        b[32] = 0x40; // data offset 4
        assert!(matches!(Packet::new_checked(&b[20..]), Err(Error::Malformed { offset: 12, .. })));
    }

    prop_compose! {
        fn arb_repr()(src_port in any::<u16>(), dst_port in any::<u16>(), seq_number in any::<u32>(),
                      ack_number in any::<u32>(), flags in any::<u8>(), window_len in any::<u16>(),
                      urgent_at in any::<u16>(), max_seg_size in proptest::option::of(any::<u16>()))
                      -> Repr {
            Repr { src_port, dst_port, seq_number, ack_number, flags: Flags(flags), window_len,
                   urgent_at, max_seg_size }
        }
    }

    proptest! {
        #[test]
        fn roundtrip(r in arb_repr(), payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            let (s, d) = v4();
            let mut buf = junk(r.buffer_len() + payload.len());
            buf[r.buffer_len()..].copy_from_slice(&payload);
            let mut p = Packet::new_unchecked(&mut buf[..]);
            r.emit(&mut p);
            p.fill_checksum(&s, &d);
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap(), &s, &d).unwrap(), r);
        }

        #[test]
        fn clamp_keeps_checksum_valid(mss in any::<u16>(), max in any::<u16>(), nops in 0usize..3,
                                      payload in proptest::collection::vec(any::<u8>(), 0..9)) {
            let (s, d) = v4();
            // NOPs before the MSS move it to odd and even offsets.
            let hl = 20 + (nops + 4).div_ceil(4) * 4;
            let mut buf = vec![0u8; hl];
            buf.extend_from_slice(&payload);
            let mut p = Packet::new_unchecked(&mut buf[..]);
            p.set_header_len(hl);
            p.set_flags(Flags::SYN);
            let o = p.options_mut();
            o[..nops].fill(kind::NOP);
            o[nops..nops + 4].copy_from_slice(&[kind::MSS, 4, (mss >> 8) as u8, mss as u8]);
            p.fill_checksum(&s, &d);
            prop_assert_eq!(p.clamp_mss(max), mss > max);
            prop_assert_eq!(p.max_seg_size().unwrap(), Some(mss.min(max)));
            prop_assert!(p.verify_checksum(&s, &d));
        }
    }
}
