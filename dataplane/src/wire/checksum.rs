//! The Internet checksum: RFC 1071 one's-complement sum, the IPv4 and IPv6 pseudo-headers
//! (RFC 768, RFC 9293 §3.1, RFC 8200 §8.1) and the RFC 1624 incremental update.
//!
//! Layer: helpers for the IPv4, ICMP, ICMPv6, UDP, TCP and GRE modules. Conventions:
//! - [`data`] and [`pseudo_header`] return the folded one's-complement *sum* (not complemented);
//! - [`combine`] adds sums; a checksum field is `!combine(...)`; a received header verifies when the sum
//!   over it (checksum field included) is `0xffff`.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::IpProtocol;

/// Folds a wide one's-complement accumulator into 16 bits (RFC 1071 §4.1, end-around carry).
#[inline]
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// One's-complement sum of `data` as big-endian 16-bit words, an odd last byte padded with zero
/// (RFC 1071 §4.1).
///
/// Adds 32-bit words into a 64-bit accumulator and folds once: the one's-complement sum does not
/// depend on the word size (RFC 1071 §2(B)/(C)).
#[inline]
pub fn data(data: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_be_bytes(tail));
    fold(acc)
}

/// One's-complement sum of several sums.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// An IP address family whose pseudo-header the upper-layer checksums cover.
pub trait PseudoHeader: Copy {
    /// IP version, 4 or 6.
    const VERSION: u8;

    /// Sum of the pseudo-header for an upper-layer packet of `length` bytes: RFC 768 / RFC 9293 §3.1
    /// for IPv4 (source, destination, zero, protocol, 16-bit length), RFC 8200 §8.1 for IPv6 (source,
    /// destination, 32-bit length, zero, next header).
    fn pseudo_header(src: &Self, dst: &Self, protocol: IpProtocol, length: u32) -> u16;
}

impl PseudoHeader for Ipv4Addr {
    const VERSION: u8 = 4;

    #[inline]
    fn pseudo_header(src: &Self, dst: &Self, protocol: IpProtocol, length: u32) -> u16 {
        let s = u32::from_be_bytes(src.octets());
        let d = u32::from_be_bytes(dst.octets());
        fold(u64::from(s) + u64::from(d) + u64::from(protocol.0) + u64::from(length))
    }
}

impl PseudoHeader for Ipv6Addr {
    const VERSION: u8 = 6;

    #[inline]
    fn pseudo_header(src: &Self, dst: &Self, protocol: IpProtocol, length: u32) -> u16 {
        let s = u128::from_be_bytes(src.octets());
        let d = u128::from_be_bytes(dst.octets());
        let halves = |v: u128| u64::from(fold((v >> 64) as u64)) + u64::from(fold(v as u64));
        fold(halves(s) + halves(d) + u64::from(protocol.0) + u64::from(length))
    }
}

/// Pseudo-header sum (see [`PseudoHeader::pseudo_header`]).
#[inline]
pub fn pseudo_header<A: PseudoHeader>(src: &A, dst: &A, protocol: IpProtocol, length: u32) -> u16 {
    A::pseudo_header(src, dst, protocol, length)
}

/// New checksum field after a 16-bit word of the covered data changed from `old` to `new`
/// (RFC 1624 §3, eqn. 3: `HC' = ~(~HC + ~m + m')`).
///
/// The word must sit at an even offset from the start of the checksummed data; for a 16-bit value at
/// an odd offset, pass both values byte-swapped (the sum is byte-order independent, RFC 1071 §2(B)).
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    !fold(u64::from(!checksum) + u64::from(!old) + u64::from(new))
}

/// [`update_u16`] for a 32-bit value at an even offset (two words).
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let c = update_u16(checksum, (old >> 16) as u16, (new >> 16) as u16);
    update_u16(c, old as u16, new as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::hex;

    // IP(src="192.0.2.1", dst="198.51.100.2", ttl=64, id=0x1234, flags="DF", tos=0xb9, proto=47)
    //   / Raw(b"abcdefgh")   -- Scapy's header checksum is 0x3b8f.
    const IPV4_TTL64: &str = "45b9001c12344000402f3b8fc0000201c63364026162636465666768";
    // The same with ttl=63: Scapy's header checksum is 0x3c8f.
    const IPV4_TTL63: &str = "45b9001c123440003f2f3c8fc0000201c63364026162636465666768";

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        assert_eq!(data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        // An odd trailing byte is padded with zero.
        assert_eq!(data(&[0x00, 0x01, 0xf2]), 0xf201);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn ipv4_header_checksum_matches_scapy() {
        let p = hex(IPV4_TTL64);
        let mut h = p[..20].to_vec();
        assert_eq!(data(&h), 0xffff, "Scapy's header verifies");
        h[10] = 0;
        h[11] = 0;
        assert_eq!(!data(&h), 0x3b8f);
    }

    #[test]
    fn incremental_ttl_decrement_matches_scapy() {
        let p = hex(IPV4_TTL64);
        let q = hex(IPV4_TTL63);
        // TTL shares its 16-bit word (offset 8) with the protocol.
        let old = u16::from_be_bytes([p[8], p[9]]);
        let new = u16::from_be_bytes([q[8], q[9]]);
        assert_eq!(update_u16(0x3b8f, old, new), 0x3c8f);
        assert_eq!(update_u16(0x3c8f, new, old), 0x3b8f);
    }

    #[test]
    fn update_u32_matches_full_recompute() {
        let mut h = hex(IPV4_TTL64)[..20].to_vec();
        let old = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        h[12..16].copy_from_slice(&[10, 9, 8, 7]);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(update_u32(0x3b8f, old, 0x0a09_0807), !data(&h));
    }

    #[test]
    fn udp_pseudo_header_matches_scapy() {
        // IP(src="192.0.2.1", dst="198.51.100.2")/UDP(sport=4500, dport=4500)/Raw(b"hello, world")
        let p = hex("450000280001000040118e8dc0000201c6336402119411940014b01a68656c6c6f2c20776f726c64");
        let udp = &p[20..];
        let ph = pseudo_header(
            &Ipv4Addr::new(192, 0, 2, 1),
            &Ipv4Addr::new(198, 51, 100, 2),
            IpProtocol::UDP,
            udp.len() as u32,
        );
        assert_eq!(combine(&[ph, data(udp)]), 0xffff);
        // IPv6(src="2001:db8::1", dst="2001:db8::2")/UDP(sport=500, dport=500)/Raw(b"hello, world")
        let p = hex("600000000014114020010db800000000000000000000000120010db8000000000000000000000002\
             01f401f40014601d68656c6c6f2c20776f726c64");
        let udp = &p[40..];
        let ph = pseudo_header(
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap(),
            &"2001:db8::2".parse::<Ipv6Addr>().unwrap(),
            IpProtocol::UDP,
            udp.len() as u32,
        );
        assert_eq!(combine(&[ph, data(udp)]), 0xffff);
    }

    proptest::proptest! {
        #[test]
        fn incremental_equals_recompute(mut buf in proptest::collection::vec(0u8.., 2..200),
                                        word in 0usize..100, new in 0u16..) {
            let at = (word * 2) % (buf.len() & !1);
            let before = !data(&buf);
            let old = u16::from_be_bytes([buf[at], buf[at + 1]]);
            buf[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let after = !data(&buf);
            // Both 0x0000 and 0xffff encode a zero sum; compare modulo that.
            let inc = update_u16(before, old, new);
            proptest::prop_assert!(inc == after || (inc ^ after) == 0xffff && (inc == 0 || after == 0));
        }
    }
}
