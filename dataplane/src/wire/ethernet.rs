//! Ethernet II frames (IEEE 802.3 §3.2.6 with EtherType) with at most one IEEE 802.1Q tag.
//!
//! Layer 2. The view covers destination, source, an optional 802.1Q tag (TPID 0x8100, then PCP, DEI,
//! VID; IEEE 802.1Q §9.6) and the EtherType of the payload. The FCS is not part of the buffer (NICs
//! strip it). A frame with a TPID of 0x88A8 (802.1ad) is shown as EtherType `QINQ` with the S-tag as
//! payload; the data plane does not terminate stacked tags.

use core::fmt;

use super::{check, code_point, get_u16, set_u16, Result};

const LAYER: &str = "ethernet";

code_point! {
    /// EtherType (IEEE 802 numbers; IANA "ieee-802-numbers").
    EtherType(u16) {
        /// IPv4.
        IPV4 = 0x0800,
        /// ARP (RFC 826).
        ARP = 0x0806,
        /// IEEE 802.1Q customer VLAN tag.
        VLAN = 0x8100,
        /// IPv6.
        IPV6 = 0x86dd,
        /// IEEE 802.1ad service VLAN tag.
        QINQ = 0x88a8,
    }
}

/// A 48-bit IEEE MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// Address from the first six bytes of `b`. Panics if `b` is shorter.
    #[inline]
    pub fn from_bytes(b: &[u8]) -> Address {
        let mut a = [0u8; 6];
        a.copy_from_slice(&b[..6]);
        Address(a)
    }

    /// The six octets.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// The I/G bit is set (group address).
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// All ones.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Neither multicast nor broadcast.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The IPv6 multicast MAC for `addr` (RFC 2464 §7: 33:33 + the low 32 bits).
    pub fn ipv6_multicast(addr: &core::net::Ipv6Addr) -> Address {
        let o = addr.octets();
        Address([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An 802.1Q tag control information (IEEE 802.1Q §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority code point, 3 bits.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 12 bits.
    pub vid: u16,
}

impl VlanTag {
    /// The 16-bit TCI.
    #[inline]
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }

    /// Tag from a 16-bit TCI.
    #[inline]
    pub const fn from_tci(tci: u16) -> VlanTag {
        VlanTag { pcp: (tci >> 13) as u8, dei: tci & 0x1000 != 0, vid: tci & 0x0fff }
    }
}

mod field {
    use crate::wire::Field;
    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    /// EtherType, or the TPID when a tag follows.
    pub const ETHERTYPE: Field = 12..14;
    /// 802.1Q TCI, when tagged.
    pub const TCI: Field = 14..16;
    /// EtherType after the tag.
    pub const INNER_ETHERTYPE: Field = 16..18;
}

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of an 802.1Q-tagged Ethernet header.
pub const TAGGED_HEADER_LEN: usize = 18;

/// A view of an Ethernet frame.
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

    /// Wraps a buffer, checking that the header (and the 802.1Q tag, if any) is inside it.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the header (including a tag) lies in the buffer.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        check(LAYER, HEADER_LEN, len)?;
        check(LAYER, self.header_len(), len)
    }

    /// The buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Whether an 802.1Q tag follows the source address.
    #[inline]
    pub fn is_tagged(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE.start) == EtherType::VLAN.0
    }

    /// 14, or 18 with an 802.1Q tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// The 802.1Q tag, if present.
    #[inline]
    pub fn vlan_tag(&self) -> Option<VlanTag> {
        self.is_tagged().then(|| VlanTag::from_tci(get_u16(self.buffer.as_ref(), field::TCI.start)))
    }

    /// EtherType of the payload (after the tag when tagged).
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let at = if self.is_tagged() { field::INNER_ETHERTYPE.start } else { field::ETHERTYPE.start };
        EtherType(get_u16(self.buffer.as_ref(), at))
    }

    /// The bytes after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&a.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, a: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&a.0);
    }

    /// Sets the payload's EtherType (after the tag when tagged).
    #[inline]
    pub fn set_ethertype(&mut self, t: EtherType) {
        let at = if self.is_tagged() { field::INNER_ETHERTYPE.start } else { field::ETHERTYPE.start };
        set_u16(self.buffer.as_mut(), at, t.0);
    }

    /// Writes TPID 0x8100 and the TCI: the frame becomes tagged (the caller made room for 18 bytes).
    #[inline]
    pub fn set_vlan_tag(&mut self, tag: VlanTag) {
        let b = self.buffer.as_mut();
        set_u16(b, field::ETHERTYPE.start, EtherType::VLAN.0);
        set_u16(b, field::TCI.start, tag.tci());
    }

    /// The bytes after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

/// The meaning of an Ethernet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Address,
    /// Destination address.
    pub dst_addr: Address,
    /// 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads a checked packet's header.
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            vlan: packet.vlan_tag(),
            ethertype: packet.ethertype(),
        })
    }

    /// Header length that [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        if self.vlan.is_some() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Writes the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_dst_addr(self.dst_addr);
        packet.set_src_addr(self.src_addr);
        match self.vlan {
            Some(tag) => packet.set_vlan_tag(tag),
            // Clear a stale TPID so that `set_ethertype` writes at offset 12.
            None => set_u16(packet.buffer.as_mut(), field::ETHERTYPE.start, 0),
        }
        packet.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{hex, junk};
    use crate::wire::Error;
    use proptest::prelude::*;

    // Ether(dst="00:11:22:33:44:55", src="66:77:88:99:aa:bb", type=0x0800)/Raw(b"\x45payload")
    const UNTAGGED: &str = "00112233445566778899aabb0800457061796c6f6164";
    // Ether(dst="ff:ff:ff:ff:ff:ff", src="66:77:88:99:aa:bb")
    //   / Dot1Q(prio=5, id=1, vlan=100, type=0x86dd)/Raw(b"abcd")
    const TAGGED: &str = "ffffffffffff66778899aabb8100b06486dd61626364";

    #[test]
    fn parse_untagged() {
        let b = hex(UNTAGGED);
        let f = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(f.dst_addr().to_string(), "00:11:22:33:44:55");
        assert_eq!(f.src_addr().to_string(), "66:77:88:99:aa:bb");
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.vlan_tag(), None);
        assert_eq!(f.payload(), b"\x45payload");
        assert!(f.dst_addr().is_unicast());
    }

    #[test]
    fn parse_tagged() {
        let b = hex(TAGGED);
        let f = Packet::new_checked(&b[..]).unwrap();
        assert!(f.dst_addr().is_broadcast() && f.dst_addr().is_multicast());
        assert_eq!(f.vlan_tag(), Some(VlanTag { pcp: 5, dei: true, vid: 100 }));
        assert_eq!(f.ethertype(), EtherType::IPV6);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), b"abcd");
    }

    #[test]
    fn emit_matches_scapy() {
        for v in [UNTAGGED, TAGGED] {
            let b = hex(v);
            let repr = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
            let mut out = junk(b.len());
            let hl = repr.buffer_len();
            out[hl..].copy_from_slice(&b[hl..]);
            repr.emit(&mut Packet::new_unchecked(&mut out[..]));
            assert_eq!(out, b);
        }
    }

    #[test]
    fn setters_rewrite_in_place() {
        let mut b = hex(TAGGED);
        let mut f = Packet::new_checked(&mut b[..]).unwrap();
        f.set_dst_addr(Address([2, 0, 0, 0, 0, 1]));
        f.set_src_addr(Address([2, 0, 0, 0, 0, 2]));
        f.set_ethertype(EtherType::IPV4);
        assert_eq!(&b[..18], &hex("0200000000010200000000028100b0640800")[..]);
    }

    #[test]
    fn truncation_is_an_error() {
        for v in [UNTAGGED, TAGGED] {
            let b = hex(v);
            let hl = Packet::new_checked(&b[..]).unwrap().header_len();
            for n in 0..hl {
                assert!(matches!(Packet::new_checked(&b[..n]), Err(Error::Truncated { layer: "ethernet", .. })));
            }
        }
    }

    #[test]
    fn ipv6_multicast_mac() {
        let a = Address::ipv6_multicast(&"ff02::1:ff00:2".parse().unwrap());
        assert_eq!(a.to_string(), "33:33:ff:00:00:02");
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            any::<[u8; 6]>(),
            any::<[u8; 6]>(),
            proptest::option::of((0u8..8, any::<bool>(), 0u16..4096)),
            any::<u16>().prop_filter("not a TPID", |t| *t != EtherType::VLAN.0),
        )
            .prop_map(|(s, d, v, t)| Repr {
                src_addr: Address(s),
                dst_addr: Address(d),
                vlan: v.map(|(pcp, dei, vid)| VlanTag { pcp, dei, vid }),
                ethertype: EtherType(t),
            })
    }

    proptest! {
        #[test]
        fn roundtrip(repr in arb_repr()) {
            let mut buf = junk(repr.buffer_len());
            repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let f = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&f).unwrap(), repr);
        }
    }
}
