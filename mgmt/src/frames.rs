//! The few packets the management core makes or reads itself: ARP requests and the senders of ARP
//! packets (RFC 826), IKE's UDP/IPv4 datagrams (RFC 768, RFC 791) in Ethernet frames.
//!
//! Layer: management. Contract: readers return `None` on anything short or malformed, never panic.

use std::net::Ipv4Addr;

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_VLAN: u16 = 0x8100;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// An Ethernet frame around `payload`.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A broadcast ARP request (RFC 826) from `mac`/`sender` for `target`.
pub fn arp_request(mac: [u8; 6], sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut a = Vec::with_capacity(28);
    a.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    a.extend_from_slice(&mac);
    a.extend_from_slice(&sender.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target.octets());
    ethernet([0xff; 6], mac, ETHERTYPE_ARP, &a)
}

/// The sender (protocol and hardware address) of an ARP packet for IPv4 over Ethernet, in an
/// Ethernet frame (optionally 802.1Q tagged).
pub fn arp_sender(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6])> {
    let mut off = 12;
    let mut ethertype = be16(frame, off)?;
    if ethertype == ETHERTYPE_VLAN {
        off += 4;
        ethertype = be16(frame, off)?;
    }
    if ethertype != ETHERTYPE_ARP {
        return None;
    }
    let a = frame.get(off + 2..off + 2 + 28)?;
    if a[..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    let mac: [u8; 6] = a[8..14].try_into().ok()?;
    let ip: [u8; 4] = a[14..18].try_into().ok()?;
    Some((Ipv4Addr::from(ip), mac))
}

/// Source port, destination port and payload of a UDP datagram (starting at its header).
pub fn udp_payload(udp: &[u8]) -> Option<(u16, u16, &[u8])> {
    let len = usize::from(be16(udp, 4)?);
    if len < 8 {
        return None;
    }
    Some((be16(udp, 0)?, be16(udp, 2)?, udp.get(8..len.min(udp.len()))?))
}

/// The RFC 1071 checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet (TTL 64, DF) with a UDP datagram from `src:sport` to `dst:dport`; the UDP checksum
/// is computed (RFC 768).
pub fn ipv4_udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = (8 + payload.len()) as u16;
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&dport.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12 + udp.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    pseudo.extend_from_slice(&udp);
    let c = match checksum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&udp);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ARP reply in the layout of RFC 826 (hardware 1, protocol 0x0800, op 2): 10.2.1.1 is at
    /// 02:00:00:00:01:01. The lab checks the same code against Linux hosts.
    const ARP_REPLY: &str = "020000000202020000000101080600010800060400020200000001010a0201010200000002020a020102";

    #[test]
    fn arp_sender_reads_an_rfc826_reply_and_rejects_every_truncation() {
        let f = hex::decode(ARP_REPLY).unwrap();
        assert_eq!(arp_sender(&f), Some((Ipv4Addr::new(10, 2, 1, 1), [2, 0, 0, 0, 1, 1])));
        for n in 0..f.len() {
            assert_eq!(arp_sender(&f[..n]), None, "{n} bytes");
        }
    }

    #[test]
    fn ip_and_udp_checksums_verify() {
        // RFC 1071: the checksum over a header including its checksum is 0.
        let p = ipv4_udp(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 7), 500, 4500, b"ike");
        assert_eq!(checksum(&p[..20]), 0);
        let mut pseudo = vec![192, 0, 2, 1, 198, 51, 100, 7, 0, 17, 0, 11];
        pseudo.extend_from_slice(&p[20..]);
        assert_eq!(checksum(&pseudo), 0);
        assert_eq!(udp_payload(&p[20..]), Some((500, 4500, &b"ike"[..])));
        for n in 0..8 {
            assert_eq!(udp_payload(&p[20..20 + n]), None);
        }
    }
}
