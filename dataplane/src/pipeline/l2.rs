//! Layer 2: Ethernet input (with the port's 802.1Q tag), ARP for the box's own addresses, and Ethernet
//! output through the neighbour table.

use core::net::IpAddr;

use super::{Ctx, Meta, Note, Pipeline, Step};
use crate::drop::DropReason;
use crate::ids::PortId;
use crate::pkt::PacketBuf;
use crate::punt::PuntKind;
use crate::wire::arp;
use crate::wire::ethernet::{self, Address, EtherType, VlanTag};

/// The IP destination of an Ethernet frame, read without any check, to look its route up ahead: a guess
/// (a malformed frame gives a wrong address, whose route IP input does not use), never a verdict.
#[inline]
pub(super) fn dst_hint(frame: &[u8]) -> Option<IpAddr> {
    let (ethertype, l3) = match frame.get(12..14)? {
        [0x81, 0x00] => (frame.get(16..18)?, ethernet::TAGGED_HEADER_LEN),
        ethertype => (ethertype, ethernet::HEADER_LEN),
    };
    match ethertype {
        [0x08, 0x00] => {
            let d: [u8; 4] = frame.get(l3 + 16..l3 + 20)?.try_into().ok()?;
            Some(IpAddr::from(d))
        }
        [0x86, 0xdd] => {
            let d: [u8; 16] = frame.get(l3 + 24..l3 + 40)?.try_into().ok()?;
            Some(IpAddr::from(d))
        }
        _ => None,
    }
}

impl<P: PacketBuf> Pipeline<P> {
    /// Ethernet input: checks the destination and the port's VLAN, then hands on by EtherType with the
    /// data starting at the layer-3 header.
    pub(super) fn l2_input(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta) -> Step {
        let Some(port) = cx.t.port(meta.rx_port) else {
            return Step::Drop(DropReason::L2NotForUs);
        };
        let stripped = pkt.take_rx_vlan();
        let (header_len, ethertype) = {
            let Ok(eth) = ethernet::Packet::new_checked(pkt.data()) else {
                return Step::Drop(DropReason::L2Malformed);
            };
            let dst = eth.dst_addr();
            if dst != Address(port.mac) && !dst.is_multicast() {
                return Step::Drop(DropReason::L2NotForUs);
            }
            // With RX VLAN strip the NIC took the tag off and reported it; a frame still tagged after
            // that had two.
            let vid = match (stripped, eth.vlan_tag()) {
                (Some(tci), None) => Some(VlanTag::from_tci(tci).vid),
                (Some(_), Some(_)) => return Step::Drop(DropReason::L2WrongVlan),
                (None, tag) => tag.map(|t| t.vid),
            };
            if vid != port.vlan {
                return Step::Drop(DropReason::L2WrongVlan);
            }
            (eth.header_len(), eth.ethertype())
        };
        match ethertype {
            EtherType::ARP => self.arp_input(cx, pkt, meta),
            EtherType::IPV4 | EtherType::IPV6 => {
                pkt.adj(header_len);
                self.ip_input(cx, pkt, meta, port.vrf)
            }
            _ => Step::Drop(DropReason::L2UnknownEthertype),
        }
    }

    /// ARP (RFC 826): a request for one of the port's addresses is answered in place; every ARP packet
    /// is shown to the control plane (as a snapshot) so that it can learn the sender.
    fn arp_input(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta) -> Step {
        let Some(port) = cx.t.port(meta.rx_port) else {
            return Step::Drop(DropReason::ArpMalformed);
        };
        let eth_len = match ethernet::Packet::new_checked(pkt.data()) {
            Ok(eth) => eth.header_len(),
            Err(_) => return Step::Drop(DropReason::L2Malformed),
        };
        let (is_request, target, sender) = {
            let Ok(a) = arp::Packet::new_checked(&pkt.data()[eth_len..]) else {
                return Step::Drop(DropReason::ArpMalformed);
            };
            let Ok(repr) = arp::Repr::parse(&a) else {
                return Step::Drop(DropReason::ArpMalformed);
            };
            (repr.operation == arp::Operation::REQUEST, repr.target_protocol_addr, repr.source_protocol_addr)
        };
        let note = Note { kind: PuntKind::Arp, tunnel: None, src: Some(sender.into()), dst: Some(target.into()) };
        self.trigger(cx, meta, pkt.data(), note);
        let ours = port.addresses.iter().any(|(a, _)| *a == IpAddr::V4(target));
        if !is_request || !ours {
            return if ours { Step::Consumed } else { Step::Drop(DropReason::ArpNotForUs) };
        }
        // Turn the request into the reply, in place.
        let data = pkt.data_mut();
        let (eth_bytes, arp_bytes) = data.split_at_mut(eth_len);
        let mut a = arp::Packet::new_unchecked(arp_bytes);
        let requester_mac = Address::from_bytes(a.source_hardware_addr());
        a.set_operation(arp::Operation::REPLY);
        a.set_target_hardware_addr(requester_mac.as_bytes());
        a.set_target_protocol_addr(&sender.octets());
        a.set_source_hardware_addr(&port.mac);
        a.set_source_protocol_addr(&target.octets());
        let mut eth = ethernet::Packet::new_unchecked(eth_bytes);
        eth.set_dst_addr(requester_mac);
        eth.set_src_addr(Address(port.mac));
        // A request the NIC stripped of its tag is answered tagged.
        if let (Some(vid), ethernet::HEADER_LEN) = (port.vlan, eth_len) {
            if !tag_tx(pkt, vid, port.tx_vlan_offload) {
                return Step::Drop(DropReason::NoBufferSpace);
            }
        }
        Step::Tx(meta.rx_port)
    }

    /// Ethernet output to a known MAC address.
    pub(super) fn l2_output_to(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, port_id: PortId, mac: [u8; 6]) -> Step {
        let Some(port) = cx.t.port(port_id) else {
            return Step::Drop(DropReason::NoRoute);
        };
        let ethertype = match pkt.data().first().map(|b| b >> 4) {
            Some(6) => EtherType::IPV6,
            _ => EtherType::IPV4,
        };
        let repr = ethernet::Repr {
            src_addr: Address(port.mac),
            dst_addr: Address(mac),
            // The tag goes in the header unless the NIC inserts it (TX VLAN offload).
            vlan: port.vlan.filter(|&vid| !(port.tx_vlan_offload && pkt.offload_tx_vlan(vid))).map(|vid| VlanTag {
                pcp: 0,
                dei: false,
                vid,
            }),
            ethertype,
        };
        let Some(header) = pkt.prepend(repr.buffer_len()) else {
            return Step::Drop(DropReason::NoBufferSpace);
        };
        repr.emit(&mut ethernet::Packet::new_unchecked(header));
        Step::Tx(port_id)
    }

    /// Ethernet output: prepends the header for `next_hop` on `port`, or asks the control plane to
    /// resolve it (rate-limited) and drops the packet.
    pub(super) fn l2_output(
        &mut self,
        cx: &Ctx<'_, P>,
        pkt: &mut P,
        meta: &Meta,
        port_id: PortId,
        next_hop: IpAddr,
    ) -> Step {
        let Some(mac) = cx.t.neighbour(port_id, next_hop) else {
            // The punt names the port that needs the resolution.
            let on_egress = Meta { rx_port: port_id, ..*meta };
            let note = Note { kind: PuntKind::NeighborMiss, tunnel: None, src: None, dst: Some(next_hop) };
            self.trigger(cx, &on_egress, pkt.data(), note);
            return Step::Drop(DropReason::NeighborMiss);
        };
        self.l2_output_to(cx, pkt, port_id, mac)
    }
}

/// Tags the untagged frame in `pkt` with the 802.1Q tag `tci` on transmit: the NIC inserts it where
/// `offload` (the port's TX VLAN offload) and the buffer can ask for it, else it is written behind the
/// MAC addresses here. `false`: no headroom for it.
pub(super) fn tag_tx<P: PacketBuf>(pkt: &mut P, tci: u16, offload: bool) -> bool {
    if offload && pkt.offload_tx_vlan(tci) {
        return true;
    }
    if pkt.prepend(ethernet::TAGGED_HEADER_LEN - ethernet::HEADER_LEN).is_none() {
        return false;
    }
    let Some(header) = pkt.data_mut().get_mut(..ethernet::TAGGED_HEADER_LEN) else { return false };
    // The addresses move to the front; the EtherType stays where it was, behind the new tag.
    header.copy_within(4..16, 0);
    ethernet::Packet::new_unchecked(header).set_vlan_tag(VlanTag::from_tci(tci));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dst_hint_reads_the_ip_destination_behind_an_optional_tag() {
        // Ethernet / IPv4 dst 192.0.2.7, untagged and behind an 802.1Q tag.
        let mut v4 = vec![0u8; 14 + 20];
        v4[12..14].copy_from_slice(&[0x08, 0x00]);
        v4[14] = 0x45;
        v4[30..34].copy_from_slice(&[192, 0, 2, 7]);
        assert_eq!(dst_hint(&v4), Some(IpAddr::from([192, 0, 2, 7])));
        let mut tagged = v4[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        tagged.extend_from_slice(&v4[12..]);
        assert_eq!(dst_hint(&tagged), Some(IpAddr::from([192, 0, 2, 7])));
        // IPv6 dst 2001:db8::9.
        let mut v6 = vec![0u8; 14 + 40];
        v6[12..14].copy_from_slice(&[0x86, 0xdd]);
        v6[14] = 0x60;
        let dst: core::net::Ipv6Addr = "2001:db8::9".parse().unwrap();
        v6[38..54].copy_from_slice(&dst.octets());
        assert_eq!(dst_hint(&v6), Some(IpAddr::V6(dst)));
        // ARP, and frames cut short anywhere: no guess, no panic.
        let mut arp = v4.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(dst_hint(&arp), None);
        for frame in [&v4, &tagged, &v6] {
            for len in 0..frame.len() {
                assert_eq!(dst_hint(&frame[..len]), None, "{len} bytes");
            }
        }
    }
}
