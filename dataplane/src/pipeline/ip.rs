//! Layer 3: IPv4/IPv6 input, the FIB, local delivery (ESP, IKE, GRE, ICMP echo, ND), forwarding with
//! TTL/hop limit, TCP MSS clamping and MTU checks, and the ICMP errors the box originates.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Ctx, Meta, Note, Pipeline, Step, NETWORK_CONTROL_DSCP};
use crate::drop::DropReason;
use crate::fib::NextHopId;
use crate::ids::{TunnelId, VrfId};
use crate::pkt::PacketBuf;
use crate::punt::PuntKind;
use crate::tables::{NextHop, Tables};
use crate::wire::esp::{classify_udp_4500, UdpEncap};
use crate::wire::ethernet::Address;
use crate::wire::icmpv4;
use crate::wire::icmpv6;
use crate::wire::ipv4;
use crate::wire::ipv6;
use crate::wire::tcp;
use crate::wire::udp;
use crate::wire::IpProtocol;

/// IKE's port (RFC 7296 §2).
pub(super) const IKE_PORT: u16 = 500;
/// IKE and ESP over UDP behind NAT (RFC 3948, RFC 7296 §2.23).
pub(super) const NATT_PORT: u16 = 4500;

/// What the pipeline needs of an IP header, read once by [`l3_header`].
#[derive(Debug, Clone, Copy)]
pub(super) struct L3 {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub proto: IpProtocol,
    /// Offset of the upper-layer header.
    pub l4: usize,
    /// Length of the whole IP packet per its header.
    pub len: usize,
    pub hop_limit: u8,
    /// DSCP and ECN (the IPv4 TOS byte, the IPv6 traffic class).
    pub tos: u8,
    /// IPv4 DF (IPv6 is never fragmented on the way).
    pub dont_frag: bool,
    pub fragment: bool,
    /// A non-first fragment carries no upper-layer header.
    pub first_fragment: bool,
}

/// Reads and checks the IP header at the front of `data`. `nic_csum` is the receiving NIC's verdict on
/// an IPv4 header checksum, trusted when there is one.
///
/// Always inlined: returned through memory, the header's fields were read back with other widths than
/// they were written, a store-forwarding stall that cost more than the parsing.
#[inline(always)]
pub(super) fn l3_header(data: &[u8], nic_csum: Option<bool>) -> Result<L3, DropReason> {
    match data.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = ipv4::Packet::new_checked(data).map_err(|_| DropReason::Ipv4Malformed)?;
            if !nic_csum.unwrap_or_else(|| ip.verify_checksum()) {
                return Err(DropReason::Ipv4BadChecksum);
            }
            Ok(L3 {
                src: ip.src_addr().into(),
                dst: ip.dst_addr().into(),
                proto: ip.protocol(),
                l4: ip.header_len(),
                len: usize::from(ip.total_len()),
                hop_limit: ip.ttl(),
                tos: ip.dscp_ecn(),
                dont_frag: ip.dont_frag(),
                fragment: ip.is_fragment(),
                first_fragment: ip.frag_offset() == 0,
            })
        }
        Some(6) => {
            let ip = ipv6::Packet::new_checked(data).map_err(|_| DropReason::Ipv6Malformed)?;
            let upper = ip.upper_layer().map_err(|_| DropReason::Ipv6Malformed)?;
            Ok(L3 {
                src: ip.src_addr().into(),
                dst: ip.dst_addr().into(),
                proto: upper.protocol,
                l4: upper.offset,
                len: ipv6::HEADER_LEN + usize::from(ip.payload_len()),
                hop_limit: ip.hop_limit(),
                tos: ip.traffic_class(),
                dont_frag: true,
                fragment: upper.fragment.is_some(),
                first_fragment: upper.fragment.is_none_or(|f| f.offset == 0),
            })
        }
        _ => Err(DropReason::Ipv4Malformed),
    }
}

/// An ICMP error the box sends about a packet it could not forward.
#[derive(Debug, Clone, Copy)]
pub(super) enum IcmpError {
    /// TTL / hop limit exhausted in transit (ICMP 11/0, ICMPv6 3/0).
    TimeExceeded,
    /// Too big for the next link with DF set (ICMP 3/4 with the next-hop MTU, ICMPv6 2/0).
    TooBig(u16),
}

impl<P: PacketBuf> Pipeline<P> {
    /// IP input with the data at the IP header: checks, trims link padding, looks the destination up in
    /// `vrf` and delivers locally or forwards.
    pub(super) fn ip_input(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta, vrf: VrfId) -> Step {
        // The NIC's checksum verdict is about the frame's outer IPv4 header, the first one seen here.
        let nic_csum = pkt.take_rx_ipv4_csum();
        let l3 = match l3_header(pkt.data(), nic_csum) {
            Ok(l3) => l3,
            Err(reason) => return Step::Drop(reason),
        };
        if l3.len > pkt.len() {
            return Step::Drop(if l3.src.is_ipv4() { DropReason::Ipv4Malformed } else { DropReason::Ipv6Malformed });
        }
        pkt.set_len(l3.len);
        // Link-scope multicast (ff02::/16: all-nodes, solicited-node) is for the box, never routed
        // (RFC 4291 §2.7); neighbour discovery arrives this way.
        if matches!(l3.dst, IpAddr::V6(d) if d.segments()[0] == 0xff02) {
            return self.local_input(cx, pkt, meta, vrf, &l3);
        }
        let Some(id) = self.route(cx, vrf, l3.dst) else { return Step::Drop(DropReason::NoRoute) };
        match cx.t.next_hop(id) {
            None => Step::Drop(DropReason::NoRoute),
            Some(NextHop::Drop) => Step::Drop(DropReason::RouteDrop),
            Some(NextHop::Local) => self.local_input(cx, pkt, meta, vrf, &l3),
            Some(nh) => self.forward(cx, pkt, meta, vrf, &l3, id, nh),
        }
    }

    /// Delivery to the box itself.
    fn local_input(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta, vrf: VrfId, l3: &L3) -> Step {
        if l3.fragment {
            return Step::Drop(DropReason::IpFragmentToUs);
        }
        match l3.proto {
            IpProtocol::ESP => {
                set_outer(meta, l3);
                pkt.adj(l3.l4);
                Step::Decrypt
            }
            IpProtocol::GRE => {
                set_outer(meta, l3);
                pkt.adj(l3.l4);
                self.gre_input(cx, pkt, meta, None)
            }
            IpProtocol::UDP => self.udp_local(pkt, meta, l3),
            IpProtocol::ICMP => self.icmp4_local(cx, pkt, meta, vrf, l3),
            IpProtocol::ICMPV6 => self.icmp6_local(cx, pkt, meta, vrf, l3),
            _ => Step::Drop(DropReason::LocalUnhandled),
        }
    }

    /// UDP to the box: IKE on 500, and on 4500 IKE, NAT-T keepalives or UDP-encapsulated ESP.
    fn udp_local(&mut self, pkt: &mut P, meta: &mut Meta, l3: &L3) -> Step {
        let dst_port = match udp::Packet::new_checked(&pkt.data()[l3.l4..]) {
            Ok(u) => u.dst_port(),
            Err(_) => return Step::Drop(DropReason::UdpMalformed),
        };
        set_outer(meta, l3);
        match dst_port {
            IKE_PORT => {
                pkt.adj(l3.l4);
                Step::Punt(PuntKind::Ike)
            }
            NATT_PORT => match classify_udp_4500(&pkt.data()[l3.l4 + udp::HEADER_LEN..]) {
                UdpEncap::Keepalive => Step::Drop(DropReason::NattKeepalive),
                UdpEncap::Ike => {
                    pkt.adj(l3.l4);
                    Step::Punt(PuntKind::Ike)
                }
                UdpEncap::Esp => {
                    pkt.adj(l3.l4 + udp::HEADER_LEN);
                    Step::Decrypt
                }
                UdpEncap::Malformed => Step::Drop(DropReason::EspMalformed),
            },
            _ => Step::Drop(DropReason::LocalUnhandled),
        }
    }

    /// ICMP to the box: echo requests are answered in place; the rest is not for the data plane.
    fn icmp4_local(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta, vrf: VrfId, l3: &L3) -> Step {
        let is_echo = match icmpv4::Packet::new_checked(&pkt.data()[l3.l4..]) {
            Ok(icmp) => icmp.verify_checksum() && icmp.msg_type() == icmpv4::Message::ECHO_REQUEST,
            Err(_) => return Step::Drop(DropReason::IcmpMalformed),
        };
        if !is_echo {
            return Step::Drop(DropReason::LocalUnhandled);
        }
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (l3.src, l3.dst) else {
            return Step::Drop(DropReason::Ipv4Malformed);
        };
        let data = pkt.data_mut();
        {
            let mut icmp = icmpv4::Packet::new_unchecked(&mut data[l3.l4..]);
            icmp.set_msg_type(icmpv4::Message::ECHO_REPLY);
            icmp.fill_checksum();
        }
        let mut ip = ipv4::Packet::new_unchecked(&mut data[..]);
        ip.set_src_addr(dst);
        ip.set_dst_addr(src);
        ip.set_ttl(64);
        ip.fill_checksum();
        meta.from_tunnel = None;
        self.originate(cx, pkt, meta, vrf)
    }

    /// ICMPv6 to the box: echo requests answered in place; Neighbor Solicitations for our addresses
    /// answered with an advertisement; the rest of ND goes to the control plane to learn from.
    fn icmp6_local(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta, vrf: VrfId, l3: &L3) -> Step {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (l3.src, l3.dst) else {
            return Step::Drop(DropReason::Ipv6Malformed);
        };
        let msg_type = match icmpv6::Packet::new_checked(&pkt.data()[l3.l4..]) {
            Ok(icmp) if icmp.verify_checksum(&src, &dst) => icmp.msg_type(),
            _ => return Step::Drop(DropReason::IcmpMalformed),
        };
        match msg_type {
            icmpv6::Message::ECHO_REQUEST => {
                let data = pkt.data_mut();
                {
                    let mut ip = ipv6::Packet::new_unchecked(&mut data[..]);
                    ip.set_src_addr(dst);
                    ip.set_dst_addr(src);
                    ip.set_hop_limit(64);
                }
                let mut icmp = icmpv6::Packet::new_unchecked(&mut data[l3.l4..]);
                icmp.set_msg_type(icmpv6::Message::ECHO_REPLY);
                icmp.fill_checksum(&dst, &src);
                meta.from_tunnel = None;
                self.originate(cx, pkt, meta, vrf)
            }
            icmpv6::Message::NEIGHBOR_SOLICIT => self.nd_solicit(cx, pkt, meta, l3),
            icmpv6::Message::NEIGHBOR_ADVERT | icmpv6::Message::ROUTER_ADVERT => {
                set_outer(meta, l3);
                Step::Punt(PuntKind::Nd)
            }
            _ => Step::Drop(DropReason::LocalUnhandled),
        }
    }

    /// A Neighbor Solicitation (RFC 4861 §7.2.3): if the target is one of the receiving port's
    /// addresses, answer with a solicited Neighbor Advertisement carrying our link-layer address.
    fn nd_solicit(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta, l3: &L3) -> Step {
        let Some(port) = cx.t.port(meta.rx_port) else {
            return Step::Drop(DropReason::LocalUnhandled);
        };
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (l3.src, l3.dst) else {
            return Step::Drop(DropReason::Ipv6Malformed);
        };
        let (target, source_lladdr) = {
            let Ok(icmp) = icmpv6::Packet::new_checked(&pkt.data()[l3.l4..]) else {
                return Step::Drop(DropReason::IcmpMalformed);
            };
            match icmpv6::Repr::parse(&icmp, &src, &dst) {
                Ok(icmpv6::Repr::NeighborSolicit { target_addr, source_lladdr }) => (target_addr, source_lladdr),
                _ => return Step::Drop(DropReason::IcmpMalformed),
            }
        };
        if !port.addresses.iter().any(|(a, _)| *a == IpAddr::V6(target)) {
            return Step::Drop(DropReason::LocalUnhandled);
        }
        // Learn the solicitor through the control plane, then answer in place.
        let note = Note { kind: PuntKind::Nd, tunnel: None, src: Some(l3.src), dst: Some(target.into()) };
        self.trigger(cx, meta, pkt.data(), note);
        let Some(dst_mac) = source_lladdr else {
            // Duplicate address detection (unspecified source) or no option: nothing to answer to.
            return Step::Consumed;
        };
        let reply = icmpv6::Repr::NeighborAdvert {
            router: false,
            solicited: true,
            override_: true,
            target_addr: target,
            target_lladdr: Some(Address(port.mac)),
        };
        let icmp_len = reply.buffer_len();
        if !pkt.set_len(l3.l4 + icmp_len) {
            return Step::Drop(DropReason::NoBufferSpace);
        }
        let data = pkt.data_mut();
        {
            let mut ip = ipv6::Packet::new_unchecked(&mut data[..]);
            ip.set_src_addr(target);
            ip.set_dst_addr(src);
            ip.set_hop_limit(255);
            ip.set_payload_len((l3.l4 - ipv6::HEADER_LEN + icmp_len) as u16);
        }
        reply.emit(&mut icmpv6::Packet::new_unchecked(&mut data[l3.l4..]), &target, &src);
        self.l2_output_to(cx, pkt, meta.rx_port, dst_mac.0)
    }

    /// Forwarding: hop limit, MSS clamping, then out of a port or into a tunnel.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        cx: &Ctx<'_, P>,
        pkt: &mut P,
        meta: &mut Meta,
        vrf: VrfId,
        l3: &L3,
        id: NextHopId,
        nh: &NextHop,
    ) -> Step {
        if l3.hop_limit <= 1 {
            cx.counters.drop(DropReason::TtlExpired);
            return self.icmp_error(cx, pkt, meta, vrf, l3, IcmpError::TimeExceeded);
        }
        decrement_hop_limit(pkt.data_mut());
        if l3.proto == IpProtocol::TCP && l3.first_fragment {
            let egress = match *nh {
                NextHop::Tunnel { tunnel, .. } => Some(tunnel),
                _ => None,
            };
            if let Some(mss) = self.mss_limit(cx.t, meta.from_tunnel, egress) {
                if clamp_mss(&mut pkt.data_mut()[l3.l4..], mss) {
                    cx.counters.mss_clamped.inc();
                }
            }
        }
        match *nh {
            NextHop::Port { port, gateway } => {
                let mtu = cx.t.port(port).map_or(0, |p| usize::from(p.mtu));
                let next_hop = gateway.unwrap_or(l3.dst);
                if pkt.len() > mtu {
                    if l3.dont_frag || !l3.src.is_ipv4() {
                        return self.too_big(cx, pkt, meta, vrf, l3, mtu);
                    }
                    if let Err(reason) = self.fragment(cx, pkt, mtu) {
                        return Step::Drop(reason);
                    }
                    let mut fragments = core::mem::take(&mut self.fragments);
                    for mut f in fragments.drain(..) {
                        let step = self.l2_output(cx, &mut f, meta, port, next_hop);
                        self.extra.push((self.at, f, step, *meta));
                    }
                    self.fragments = fragments;
                }
                self.l2_output(cx, pkt, meta, port, next_hop)
            }
            NextHop::Tunnel { tunnel, peer: Some(peer) } => {
                self.tunnel_output(cx, pkt, meta, vrf, l3, tunnel, peer, Some(id))
            }
            NextHop::Tunnel { tunnel, peer: None } => self.tunnel_output(cx, pkt, meta, vrf, l3, tunnel, l3.dst, None),
            NextHop::Drop | NextHop::Local => Step::Drop(DropReason::RouteDrop),
        }
    }

    /// Splits an IPv4 packet (data at its header, DF clear) into fragments of at most `mtu` bytes
    /// (RFC 791 §3.2, RFC 1812 §5.2.6): `pkt` keeps the first, the others are returned in order, each in
    /// a new buffer from `pkt`'s pool, in `self.fragments`. Options whose copied flag is set go into
    /// every fragment, the others only into the first. Fragments of fragments keep the original's
    /// offsets and MF.
    pub(super) fn fragment(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, mtu: usize) -> Result<(), DropReason> {
        self.fragments.clear();
        let (hl, total, offset, more) = {
            let ip = ipv4::Packet::new_checked(pkt.data()).map_err(|_| DropReason::Ipv4Malformed)?;
            (ip.header_len(), usize::from(ip.total_len()), usize::from(ip.frag_offset()), ip.more_frags())
        };
        let (copied, copied_len) = copied_options(&pkt.data()[ipv4::HEADER_LEN..hl]);
        let later_hl = ipv4::HEADER_LEN + copied_len;
        let first = mtu.saturating_sub(hl) & !7;
        let step = mtu.saturating_sub(later_hl) & !7;
        if first == 0 || step == 0 {
            return Err(DropReason::MtuExceeded);
        }
        let mut at = hl + first;
        while at < total {
            let len = step.min(total - at);
            let mut f = pkt.new_like().ok_or(DropReason::NoBufferSpace)?;
            let bytes = f.append(later_hl + len).ok_or(DropReason::NoBufferSpace)?;
            let data = pkt.data();
            bytes[..ipv4::HEADER_LEN].copy_from_slice(&data[..ipv4::HEADER_LEN]);
            bytes[ipv4::HEADER_LEN..later_hl].copy_from_slice(&copied[..copied_len]);
            bytes[later_hl..].copy_from_slice(&data[at..at + len]);
            let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
            ip.set_version_and_header_len(later_hl);
            ip.set_total_len((later_hl + len) as u16);
            ip.set_flags_and_frag_offset(false, more || at + len < total, (offset + at - hl) as u16);
            ip.fill_checksum();
            self.fragments.push(f);
            at += len;
        }
        {
            let mut ip = ipv4::Packet::new_unchecked(pkt.data_mut());
            ip.set_total_len((hl + first) as u16);
            ip.set_flags_and_frag_offset(false, true, offset as u16);
            ip.fill_checksum();
        }
        pkt.set_len(hl + first);
        cx.counters.fragmented.inc();
        Ok(())
    }

    /// A packet over the egress MTU that may not be fragmented (DF, or IPv6): an ICMP "too big" goes
    /// back, and the packet is dropped and counted.
    pub(super) fn too_big(
        &mut self,
        cx: &Ctx<'_, P>,
        pkt: &mut P,
        meta: &mut Meta,
        vrf: VrfId,
        l3: &L3,
        mtu: usize,
    ) -> Step {
        cx.counters.drop(DropReason::MtuExceeded);
        // The error quotes the packet as it arrived, TTL included (RFC 1812 §4.3.2.3).
        increment_hop_limit(pkt.data_mut());
        self.icmp_error(cx, pkt, meta, vrf, l3, IcmpError::TooBig(mtu.min(usize::from(u16::MAX)) as u16))
    }

    /// The smallest `ip tcp adjust-mss` of the tunnels the packet crosses.
    fn mss_limit(&self, t: &Tables, ingress: Option<TunnelId>, egress: Option<TunnelId>) -> Option<u16> {
        [ingress, egress].into_iter().flatten().filter_map(|id| t.tunnel(id).and_then(|tun| tun.tcp_mss)).min()
    }

    /// Turns the packet, in place, into an ICMP error to its source and sends it (RFC 1812 §4.3.2,
    /// RFC 4443 §2.4). Returns [`Step::Consumed`] when no error may be sent.
    pub(super) fn icmp_error(
        &mut self,
        cx: &Ctx<'_, P>,
        pkt: &mut P,
        meta: &mut Meta,
        vrf: VrfId,
        l3: &L3,
        err: IcmpError,
    ) -> Step {
        // Never about an ICMP error, a non-first fragment, or a multicast / unspecified source.
        if !l3.first_fragment || is_icmp_error(pkt.data(), l3) || !is_unicast(l3.src) {
            return Step::Consumed;
        }
        let Some(our) = self.error_source(cx.t, meta, l3.src) else {
            return Step::Consumed;
        };
        if !self.icmp.allow(cx.now) {
            return Step::Consumed;
        }
        let ok = match (our, l3.src) {
            (IpAddr::V4(our), IpAddr::V4(dst)) => {
                let ident = self.next_ip_id();
                icmp4_error_in_place(pkt, our, dst, ident, err)
            }
            (IpAddr::V6(our), IpAddr::V6(dst)) => icmp6_error_in_place(pkt, our, dst, err),
            _ => false,
        };
        if !ok {
            return Step::Drop(DropReason::NoBufferSpace);
        }
        cx.counters.icmp_sent.inc();
        meta.from_tunnel = None;
        self.originate(cx, pkt, meta, vrf)
    }

    /// Our address to send an error from: the ingress tunnel's overlay address for a packet that came
    /// out of a tunnel (never a front-door address: that is another VRF), else the ingress port's first
    /// address of the right family.
    fn error_source(&self, t: &Tables, meta: &Meta, to: IpAddr) -> Option<IpAddr> {
        let same = |a: &IpAddr| a.is_ipv4() == to.is_ipv4();
        match meta.from_tunnel {
            Some(id) => t.tunnel(id)?.address.map(|(a, _)| a).filter(same),
            None => t.port(meta.rx_port)?.addresses.iter().map(|(a, _)| *a).find(same),
        }
    }

    /// Sends a packet the box originated (an ICMP error or reply, with the data at its IP header) by
    /// routing its destination in `vrf`.
    pub(super) fn originate(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta, vrf: VrfId) -> Step {
        let l3 = match l3_header(pkt.data(), None) {
            Ok(l3) => l3,
            Err(reason) => return Step::Drop(reason),
        };
        let Some(id) = cx.t.route(vrf, l3.dst) else { return Step::Drop(DropReason::NoRoute) };
        match cx.t.next_hop(id) {
            None => Step::Drop(DropReason::NoRoute),
            Some(NextHop::Port { port, gateway }) => self.l2_output(cx, pkt, meta, *port, gateway.unwrap_or(l3.dst)),
            Some(&NextHop::Tunnel { tunnel, peer: Some(peer) }) => {
                self.tunnel_output(cx, pkt, meta, vrf, &l3, tunnel, peer, Some(id))
            }
            Some(&NextHop::Tunnel { tunnel, peer: None }) => {
                self.tunnel_output(cx, pkt, meta, vrf, &l3, tunnel, l3.dst, None)
            }
            Some(NextHop::Drop | NextHop::Local) => Step::Drop(DropReason::RouteDrop),
        }
    }
}

/// Records the outer addresses of a packet that is about to be decapsulated.
fn set_outer(meta: &mut Meta, l3: &L3) {
    meta.outer_src = l3.src;
    meta.outer_dst = l3.dst;
    meta.outer_ecn = l3.tos & 0x03;
}

fn is_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

/// Whether the packet is itself an ICMP error (no error is sent about one).
fn is_icmp_error(data: &[u8], l3: &L3) -> bool {
    let Some(&msg_type) = data.get(l3.l4) else { return false };
    match l3.proto {
        // Echo reply 0, echo request 8, router advert/solicit 9/10, timestamp 13/14 are informational.
        IpProtocol::ICMP => !matches!(msg_type, 0 | 8 | 9 | 10 | 13 | 14),
        // ICMPv6 errors are types 0..=127 (RFC 4443 §2.1).
        IpProtocol::ICMPV6 => msg_type < 128,
        _ => false,
    }
}

/// Decrements the TTL (with an RFC 1624 checksum update) or the hop limit. The header was checked.
#[inline]
pub(super) fn decrement_hop_limit(data: &mut [u8]) {
    match data.first().map(|b| b >> 4) {
        Some(4) => {
            ipv4::Packet::new_unchecked(data).decrement_ttl();
        }
        Some(6) => {
            let mut ip = ipv6::Packet::new_unchecked(data);
            let h = ip.hop_limit();
            ip.set_hop_limit(h.saturating_sub(1));
        }
        _ => {}
    }
}

fn increment_hop_limit(data: &mut [u8]) {
    match data.first().map(|b| b >> 4) {
        Some(4) => {
            let mut ip = ipv4::Packet::new_unchecked(data);
            let old = ip.ttl();
            ip.set_ttl(old.wrapping_add(1));
            ip.fill_checksum();
        }
        Some(6) => {
            let mut ip = ipv6::Packet::new_unchecked(data);
            let h = ip.hop_limit();
            ip.set_hop_limit(h.wrapping_add(1));
        }
        _ => {}
    }
}

/// Lowers a TCP SYN's MSS option to `mss` (RFC 6691, Cisco's `ip tcp adjust-mss`), updating the TCP
/// checksum incrementally. Returns whether the option was changed.
pub(super) fn clamp_mss(segment: &mut [u8], mss: u16) -> bool {
    let Ok(mut tcp) = tcp::Packet::new_checked(segment) else { return false };
    tcp.flags().contains(tcp::Flags::SYN) && tcp.clamp_mss(mss)
}

/// Rewrites an IPv4 packet (data at its IP header) into an ICMP error about it, in place: quotes as much
/// of it as fits in 576 bytes (RFC 1812 §4.3.2.3).
fn icmp4_error_in_place<P: PacketBuf>(pkt: &mut P, src: Ipv4Addr, dst: Ipv4Addr, ident: u16, err: IcmpError) -> bool {
    const MAX_ERROR_LEN: usize = 576;
    let header_len = ipv4::HEADER_LEN + icmpv4::HEADER_LEN;
    let quote = pkt.len().min(MAX_ERROR_LEN - header_len);
    if !pkt.set_len(quote) {
        return false;
    }
    let Some(head) = pkt.prepend(header_len) else { return false };
    let (ip_bytes, icmp_bytes) = head.split_at_mut(ipv4::HEADER_LEN);
    let (msg_type, code, rest) = match err {
        IcmpError::TimeExceeded => (icmpv4::Message::TIME_EXCEEDED, icmpv4::TimeExceeded::TTL_EXPIRED.0, 0u32),
        // RFC 1191 §4: the next-hop MTU in the low 16 bits.
        IcmpError::TooBig(mtu) => {
            (icmpv4::Message::DST_UNREACHABLE, icmpv4::DstUnreachable::FRAG_NEEDED.0, u32::from(mtu))
        }
    };
    let mut icmp = icmpv4::Packet::new_unchecked(icmp_bytes);
    icmp.set_msg_type(msg_type);
    icmp.set_msg_code(code);
    icmp.set_checksum(0);
    icmp.set_rest_of_header(rest);
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::ICMP,
        payload_len: icmpv4::HEADER_LEN + quote,
        ttl: 64,
        dscp: NETWORK_CONTROL_DSCP,
        ecn: 0,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        options: ipv4::Options::default(),
    };
    repr.emit(&mut ipv4::Packet::new_unchecked(ip_bytes));
    icmpv4::Packet::new_unchecked(&mut pkt.data_mut()[ipv4::HEADER_LEN..]).fill_checksum();
    true
}

/// Rewrites an IPv6 packet into an ICMPv6 error about it, in place, within the minimum MTU of 1280
/// (RFC 4443 §2.4 (c)).
fn icmp6_error_in_place<P: PacketBuf>(pkt: &mut P, src: Ipv6Addr, dst: Ipv6Addr, err: IcmpError) -> bool {
    const MIN_MTU: usize = 1280;
    let header_len = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
    let quote = pkt.len().min(MIN_MTU - header_len);
    if !pkt.set_len(quote) {
        return false;
    }
    let Some(head) = pkt.prepend(header_len) else { return false };
    let (ip_bytes, icmp_bytes) = head.split_at_mut(ipv6::HEADER_LEN);
    let (msg_type, rest) = match err {
        IcmpError::TimeExceeded => (icmpv6::Message::TIME_EXCEEDED, 0u32),
        IcmpError::TooBig(mtu) => (icmpv6::Message::PKT_TOO_BIG, u32::from(mtu)),
    };
    let mut icmp = icmpv6::Packet::new_unchecked(icmp_bytes);
    icmp.set_msg_type(msg_type);
    icmp.set_msg_code(0);
    icmp.set_checksum(0);
    icmp.set_rest_of_header(rest);
    let repr = ipv6::Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::ICMPV6,
        payload_len: icmpv6::HEADER_LEN + quote,
        hop_limit: 64,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    repr.emit(&mut ipv6::Packet::new_unchecked(ip_bytes));
    let data = pkt.data_mut();
    let mut icmp = icmpv6::Packet::new_unchecked(&mut data[ipv6::HEADER_LEN..]);
    icmp.fill_checksum(&src, &dst);
    true
}

/// The options of an IPv4 header that every fragment must carry (copied flag set, RFC 791 §3.1),
/// padded with End of Option List to a multiple of 4, and their length.
fn copied_options(options: &[u8]) -> ([u8; ipv4::MAX_OPTIONS_LEN], usize) {
    let mut out = [0u8; ipv4::MAX_OPTIONS_LEN];
    let (mut i, mut n) = (0, 0);
    while let Some(&kind) = options.get(i) {
        let len = match kind {
            0 => break,
            1 => 1,
            _ => usize::from(options.get(i + 1).copied().unwrap_or(0)).max(2),
        };
        let Some(option) = options.get(i..i + len) else { break };
        if kind & 0x80 != 0 {
            out[n..n + len].copy_from_slice(option);
            n += len;
        }
        i += len;
    }
    (out, n.next_multiple_of(4))
}
