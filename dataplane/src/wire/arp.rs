//! ARP (RFC 826).
//!
//! Layer 2.5. The view reads any hardware/protocol address lengths (RFC 826 "Packet format": `ar$hln`,
//! `ar$pln` size the four address fields); [`Repr`] accepts only Ethernet (hardware type 1, length 6)
//! with IPv4 (protocol type 0x0800, length 4), which is all the box resolves, and reports anything
//! else as [`Error::Unsupported`].

use core::net::Ipv4Addr;

use super::ethernet::{Address, EtherType};
use super::{check, code_point, get_u16, set_u16, Error, Result};

const LAYER: &str = "arp";

code_point! {
    /// ARP hardware type (`ar$hrd`; IANA "arp-parameters").
    Hardware(u16) {
        /// Ethernet (10 Mb).
        ETHERNET = 1,
    }
}

code_point! {
    /// ARP opcode (`ar$op`).
    Operation(u16) {
        /// Request.
        REQUEST = 1,
        /// Reply.
        REPLY = 2,
    }
}

mod field {
    use crate::wire::Field;
    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const ADDRESSES: usize = 8;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const ETHERNET_IPV4_LEN: usize = 28;

/// A view of an ARP packet.
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

    /// Wraps a buffer, checking that the fixed part and the four addresses are inside it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the fixed part and the addresses that `ar$hln`/`ar$pln` size lie in the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        check(LAYER, field::ADDRESSES, len)?;
        check(LAYER, self.packet_len(), len)
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Bytes the packet occupies: 8 + 2 × (`ar$hln` + `ar$pln`). Trailing bytes (Ethernet padding)
    /// are not part of it.
    #[inline]
    pub fn packet_len(&self) -> usize {
        field::ADDRESSES + 2 * (usize::from(self.hardware_len()) + usize::from(self.protocol_len()))
    }

    /// Hardware type (`ar$hrd`).
    #[inline]
    pub fn hardware_type(&self) -> Hardware {
        Hardware(get_u16(self.buffer.as_ref(), field::HTYPE.start))
    }

    /// Protocol type (`ar$pro`).
    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType(get_u16(self.buffer.as_ref(), field::PTYPE.start))
    }

    /// Hardware address length (`ar$hln`).
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (`ar$pln`).
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Opcode (`ar$op`).
    #[inline]
    pub fn operation(&self) -> Operation {
        Operation(get_u16(self.buffer.as_ref(), field::OPER.start))
    }

    fn sha_at(&self) -> usize {
        field::ADDRESSES
    }
    fn spa_at(&self) -> usize {
        self.sha_at() + usize::from(self.hardware_len())
    }
    fn tha_at(&self) -> usize {
        self.spa_at() + usize::from(self.protocol_len())
    }
    fn tpa_at(&self) -> usize {
        self.tha_at() + usize::from(self.hardware_len())
    }

    /// Sender hardware address (`ar$sha`).
    #[inline]
    pub fn source_hardware_addr(&self) -> &[u8] {
        let at = self.sha_at();
        &self.buffer.as_ref()[at..at + usize::from(self.hardware_len())]
    }

    /// Sender protocol address (`ar$spa`).
    #[inline]
    pub fn source_protocol_addr(&self) -> &[u8] {
        let at = self.spa_at();
        &self.buffer.as_ref()[at..at + usize::from(self.protocol_len())]
    }

    /// Target hardware address (`ar$tha`).
    #[inline]
    pub fn target_hardware_addr(&self) -> &[u8] {
        let at = self.tha_at();
        &self.buffer.as_ref()[at..at + usize::from(self.hardware_len())]
    }

    /// Target protocol address (`ar$tpa`).
    #[inline]
    pub fn target_protocol_addr(&self) -> &[u8] {
        let at = self.tpa_at();
        &self.buffer.as_ref()[at..at + usize::from(self.protocol_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets `ar$hrd`.
    #[inline]
    pub fn set_hardware_type(&mut self, v: Hardware) {
        set_u16(self.buffer.as_mut(), field::HTYPE.start, v.0);
    }

    /// Sets `ar$pro`.
    #[inline]
    pub fn set_protocol_type(&mut self, v: EtherType) {
        set_u16(self.buffer.as_mut(), field::PTYPE.start, v.0);
    }

    /// Sets `ar$hln`.
    #[inline]
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets `ar$pln`.
    #[inline]
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets `ar$op`.
    #[inline]
    pub fn set_operation(&mut self, v: Operation) {
        set_u16(self.buffer.as_mut(), field::OPER.start, v.0);
    }

    /// Sets `ar$sha`; `v` must be `ar$hln` bytes long.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, v: &[u8]) {
        let at = self.sha_at();
        self.buffer.as_mut()[at..at + v.len()].copy_from_slice(v);
    }

    /// Sets `ar$spa`; `v` must be `ar$pln` bytes long.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, v: &[u8]) {
        let at = self.spa_at();
        self.buffer.as_mut()[at..at + v.len()].copy_from_slice(v);
    }

    /// Sets `ar$tha`; `v` must be `ar$hln` bytes long.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, v: &[u8]) {
        let at = self.tha_at();
        self.buffer.as_mut()[at..at + v.len()].copy_from_slice(v);
    }

    /// Sets `ar$tpa`; `v` must be `ar$pln` bytes long.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, v: &[u8]) {
        let at = self.tpa_at();
        self.buffer.as_mut()[at..at + v.len()].copy_from_slice(v);
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Opcode; requests and replies are the ones RFC 826 defines, others survive a round trip.
    pub operation: Operation,
    /// Sender hardware address.
    pub source_hardware_addr: Address,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_hardware_addr: Address,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl Repr {
    /// Parses an Ethernet/IPv4 ARP packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.hardware_type() != Hardware::ETHERNET || packet.hardware_len() != 6 {
            return Err(Error::Unsupported { layer: LAYER, what: "hardware is not Ethernet" });
        }
        if packet.protocol_type() != EtherType::IPV4 || packet.protocol_len() != 4 {
            return Err(Error::Unsupported { layer: LAYER, what: "protocol is not IPv4" });
        }
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: Address::from_bytes(packet.source_hardware_addr()),
            source_protocol_addr: ipv4(packet.source_protocol_addr()),
            target_hardware_addr: Address::from_bytes(packet.target_hardware_addr()),
            target_protocol_addr: ipv4(packet.target_protocol_addr()),
        })
    }

    /// 28 bytes.
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the packet.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(Hardware::ETHERNET);
        packet.set_protocol_type(EtherType::IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{hex, junk};
    use proptest::prelude::*;

    // ARP(op=1, hwsrc="66:77:88:99:aa:bb", psrc="192.0.2.1", hwdst="00:00:00:00:00:00",
    //     pdst="192.0.2.2")
    const REQUEST: &str = "000108000604000166778899aabbc0000201000000000000c0000202";
    // ARP(op=2, hwsrc="00:11:22:33:44:55", psrc="192.0.2.2", hwdst="66:77:88:99:aa:bb",
    //     pdst="192.0.2.1")
    const REPLY: &str = "0001080006040002001122334455c000020266778899aabbc0000201";

    #[test]
    fn parse_request_and_reply() {
        let b = hex(REQUEST);
        let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(r.operation, Operation::REQUEST);
        assert_eq!(r.source_hardware_addr.to_string(), "66:77:88:99:aa:bb");
        assert_eq!(r.source_protocol_addr, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(r.target_hardware_addr, Address([0; 6]));
        assert_eq!(r.target_protocol_addr, Ipv4Addr::new(192, 0, 2, 2));
        let b = hex(REPLY);
        let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(r.operation, Operation::REPLY);
        assert_eq!(r.target_hardware_addr.to_string(), "66:77:88:99:aa:bb");
    }

    #[test]
    fn emit_matches_scapy() {
        for v in [REQUEST, REPLY] {
            let b = hex(v);
            let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
            let mut out = junk(r.buffer_len());
            r.emit(&mut Packet::new_unchecked(&mut out[..]));
            assert_eq!(out, b);
        }
    }

    #[test]
    fn truncation_is_an_error() {
        let b = hex(REQUEST);
        for n in 0..b.len() {
            assert!(Packet::new_checked(&b[..n]).is_err(), "length {n}");
        }
    }

    #[test]
    fn non_ethernet_ipv4_is_unsupported() {
        let mut b = hex(REQUEST);
        b[1] = 6; // IEEE 802 hardware type
        let e = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err();
        assert!(matches!(e, Error::Unsupported { layer: "arp", .. }));
        let mut b = hex(REQUEST);
        b[5] = 16; // protocol address length of IPv6; view still checked against the buffer
        assert!(Packet::new_checked(&b[..]).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(op in any::<u16>(), sha in any::<[u8; 6]>(), spa in any::<u32>(),
                     tha in any::<[u8; 6]>(), tpa in any::<u32>()) {
            let r = Repr {
                operation: Operation(op),
                source_hardware_addr: Address(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: Address(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            };
            let mut buf = junk(r.buffer_len());
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
}
