//! The tunnel: GRE input after ESP decryption (or in clear, where the tunnel allows it), tunnel output
//! (Phase 3 redirect trigger, TEIB, tunnel MTU, GRE encapsulation), the two crypto batches and the outer
//! IP (+UDP) header in the front-door VRF.

use core::net::IpAddr;

use super::ip::{l3_header, L3};
use super::l2::tag_tx;
use super::{Ctx, LastOut, Meta, Note, Outer, Pipeline, Step, NETWORK_CONTROL_DSCP};
use crate::capture::{Point, Seen};
use crate::drop::DropReason;
use crate::esp::{InboundReq, OutboundReq};
use crate::fib::NextHopId;
use crate::ids::{PortId, SaIndex, TunnelId, VrfId};
use crate::pkt::PacketBuf;
use crate::punt::PuntKind;
use crate::sa::{Mode, SaRtTable};
use crate::tables::{NextHop, TunnelConfig};
use crate::teib::{Adjacency, Rewrite, TeibEntry, TUNNEL_TTL};
use crate::wire::esp::{self, NEXT_HEADER_NONE};
use crate::wire::gre::{self, Protocol};
use crate::wire::udp;
use crate::wire::IpProtocol;
use crate::wire::{ipv4, ipv6};

impl<P: PacketBuf> Pipeline<P> {
    /// GRE input with the data at the GRE header. `sa` is the inbound SA that decrypted the packet, or
    /// `None` for cleartext GRE. The tunnel is found by (our NBMA address, GRE key); a packet from a
    /// source no TEIB entry knows is accepted when its SA authenticates it (that is how spokes
    /// register).
    pub(super) fn gre_input(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta, sa: Option<SaIndex>) -> Step {
        let (header_len, key, protocol) = {
            let Ok(g) = gre::Packet::new_checked(pkt.data()) else {
                return Step::Drop(DropReason::GreMalformed);
            };
            if g.version() != 0 {
                return Step::Drop(DropReason::GreMalformed);
            }
            if g.checksum_present() && !g.verify_checksum() {
                return Step::Drop(DropReason::GreBadChecksum);
            }
            (g.header_len(), g.key(), g.protocol_type())
        };
        let Some(tunnel_id) = cx.t.tunnel_rx(meta.outer_dst, key) else {
            return Step::Drop(DropReason::GreUnknownTunnel);
        };
        let Some(tunnel) = cx.t.tunnel(tunnel_id) else {
            return Step::Drop(DropReason::GreUnknownTunnel);
        };
        let protected_by = sa.and_then(|i| cx.t.sas().get(i)).map(|s| s.config().tunnel);
        match protected_by {
            Some(t) if t != tunnel_id => return Step::Drop(DropReason::GreUnprotected),
            None if tunnel.protection => return Step::Drop(DropReason::GreUnprotected),
            _ => {}
        }
        if sa.is_some() {
            let outer = Some((meta.outer_src, meta.outer_dst));
            let seen = Seen {
                point: Point::Decrypted,
                port: None,
                tunnel: Some(tunnel_id),
                peer: Some(meta.outer_src),
                outer,
            };
            cx.capture(seen, pkt);
        }
        pkt.adj(header_len);
        meta.sa_in = sa;
        meta.from_tunnel = Some(tunnel_id);
        match protocol {
            Protocol::NHRP => Step::Punt(PuntKind::Nhrp),
            Protocol::IPV4 | Protocol::IPV6 => {
                apply_outer_ecn(pkt.data_mut(), meta.outer_ecn);
                self.ip_input(cx, pkt, meta, tunnel.vrf)
            }
            _ => Step::Drop(DropReason::GreUnknownProtocol),
        }
    }

    /// Tunnel output of an overlay packet (data at its IP header, hop limit already decremented) toward
    /// the overlay next hop `nh`. `resolved` is the route's next hop when it names `nh` (a route via an
    /// overlay peer, whose TEIB entry the tables resolved at publication); without it, `nh` is the
    /// destination in the tunnel's connected subnet, looked up in the TEIB.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tunnel_output(
        &mut self,
        cx: &Ctx<'_, P>,
        pkt: &mut P,
        meta: &mut Meta,
        vrf: VrfId,
        l3: &L3,
        tunnel_id: TunnelId,
        nh: IpAddr,
        resolved: Option<NextHopId>,
    ) -> Step {
        let Some(tunnel) = cx.t.tunnel(tunnel_id) else {
            return Step::Drop(DropReason::NoRoute);
        };
        // Phase 3 (`ip nhrp redirect`): in from this tunnel and back out of it means the two spokes
        // could talk directly; the control plane sends the source a Traffic Indication.
        if tunnel.redirect && meta.from_tunnel == Some(tunnel_id) {
            let header = pkt.data();
            let note = Note { kind: PuntKind::Redirect, tunnel: Some(tunnel_id), src: Some(l3.src), dst: Some(l3.dst) };
            self.trigger(cx, meta, header, note);
        }
        // The outer path goes straight into the packet's state (built elsewhere and copied in, it would
        // be read back before its narrow stores retired).
        let mtu = match &self.last_out {
            Some(last) if last.tunnel == tunnel_id && last.nh == nh => {
                meta.out = Some(last.out);
                last.mtu
            }
            _ => {
                let adjacency = match resolved {
                    Some(id) => cx.t.next_hop_adjacency(id),
                    None => cx.t.adjacency(tunnel_id, nh),
                };
                let Some(adjacency) = adjacency else {
                    let header = pkt.data();
                    let note =
                        Note { kind: PuntKind::TeibMiss, tunnel: Some(tunnel_id), src: Some(l3.src), dst: Some(nh) };
                    self.trigger(cx, meta, header, note);
                    return Step::Drop(DropReason::TeibMiss);
                };
                let (out, mtu) = match self.path_to(cx, tunnel, adjacency) {
                    Ok(path) => path,
                    Err(reason) => return Step::Drop(reason),
                };
                self.last_out = Some(LastOut { tunnel: tunnel_id, nh, out, mtu });
                meta.out = Some(out);
                mtu
            }
        };
        if let Some(out) = &mut meta.out {
            out.tos = l3.tos;
        }
        let protocol = if l3.src.is_ipv4() { Protocol::IPV4 } else { Protocol::IPV6 };
        if pkt.len() > mtu {
            if l3.dont_frag || !l3.src.is_ipv4() {
                return self.too_big(cx, pkt, meta, vrf, l3, mtu);
            }
            // IOS's default, `crypto ipsec fragmentation before-encryption`: fragment the overlay packet,
            // so that each fragment is encapsulated and encrypted on its own and the peer reassembles
            // nothing at the tunnel layer.
            if let Err(reason) = self.fragment(cx, pkt, mtu) {
                return Step::Drop(reason);
            }
            let mut fragments = core::mem::take(&mut self.fragments);
            for mut f in fragments.drain(..) {
                let mut m = *meta;
                let step = self.gre_encap(cx, &mut f, &mut m, tunnel, protocol);
                self.extra.push((self.at, f, step, m));
            }
            self.fragments = fragments;
        }
        self.gre_encap(cx, pkt, meta, tunnel, protocol)
    }

    /// The outer path through `tunnel` to a TEIB entry, and the tunnel MTU along it; the outer TOS is
    /// left for each packet to set. (Inlined: returned through memory, the path was read back before
    /// its stores retired.)
    #[inline(always)]
    pub(super) fn path_to(
        &self,
        cx: &Ctx<'_, P>,
        tunnel: &TunnelConfig,
        adjacency: &Adjacency,
    ) -> Result<(Outer, usize), DropReason> {
        let entry = &adjacency.entry;
        let sa = match (tunnel.protection, entry.sa_out) {
            (true, None) => return Err(DropReason::NoOutboundSa),
            (true, Some(sa)) => Some(sa),
            (false, _) => None,
        };
        let path = match adjacency.rewrite {
            Some(rewrite) => Ok(rewrite_path(entry, rewrite)),
            None => outer_route(cx, tunnel, entry.nbma),
        };
        let out = outer(cx, tunnel, entry.nbma, sa, 0, path?)?;
        Ok((out, self.tunnel_mtu(cx, tunnel, &out)))
    }

    /// A packet the control plane sends through a tunnel (an NHRP message) to an NBMA address.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tunnel_inject(
        &mut self,
        cx: &Ctx<'_, P>,
        pkt: &mut P,
        meta: &mut Meta,
        tunnel_id: TunnelId,
        nbma: IpAddr,
        sa: Option<SaIndex>,
        protocol: u16,
    ) -> Step {
        let Some(tunnel) = cx.t.tunnel(tunnel_id) else {
            return Step::Drop(DropReason::NoRoute);
        };
        if tunnel.protection && sa.is_none() {
            return Step::Drop(DropReason::NoOutboundSa);
        }
        let path = outer_route(cx, tunnel, nbma);
        let out = match path.and_then(|path| outer(cx, tunnel, nbma, sa, NETWORK_CONTROL_DSCP << 2, path)) {
            Ok(out) => out,
            Err(reason) => return Step::Drop(reason),
        };
        meta.out = Some(out);
        self.gre_encap(cx, pkt, meta, tunnel, Protocol(protocol))
    }

    /// The largest overlay packet that fits: the tunnel's `ip mtu`, and what the egress port's MTU leaves
    /// after the outer IP header, UDP for NAT-T, the ESP header, IV, padding to the cipher's alignment,
    /// trailer and ICV (RFC 4303 §2), the tunnel-mode inner IP header, and GRE.
    fn tunnel_mtu(&self, cx: &Ctx<'_, P>, tunnel: &TunnelConfig, out: &Outer) -> usize {
        let outer_ip = if out.dst.is_ipv4() { ipv4::HEADER_LEN } else { ipv6::HEADER_LEN };
        let gre = gre::BASE_HEADER_LEN + if tunnel.key.is_some() { 4 } else { 0 };
        let port_mtu = match out.rewrite {
            Some(rewrite) => usize::from(rewrite.port_mtu),
            None => cx.t.port(out.port).map_or(0, |p| usize::from(p.mtu)),
        };
        let mut room = port_mtu.saturating_sub(outer_ip);
        if let Some(sa) = out.sa.and_then(|i| cx.t.sas().hot(i)) {
            if out.natt.is_some() {
                room = room.saturating_sub(udp::HEADER_LEN);
            }
            room = room.saturating_sub(esp::HEADER_LEN + usize::from(sa.iv_len) + usize::from(sa.icv_len));
            // A mask, not `%`: a division costs more than the rest of this function.
            room &= !(usize::from(sa.align.max(1)) - 1);
            room = room.saturating_sub(esp::TRAILER_LEN);
            if sa.mode == Mode::Tunnel {
                room = room.saturating_sub(outer_ip);
            }
        }
        usize::from(tunnel.mtu).min(room.saturating_sub(gre))
    }

    /// GRE encapsulation (RFC 2784, key per RFC 2890), then either the encrypt batch or, for an
    /// unprotected tunnel, the outer header at once.
    fn gre_encap(
        &mut self,
        cx: &Ctx<'_, P>,
        pkt: &mut P,
        meta: &mut Meta,
        tunnel: &TunnelConfig,
        protocol: Protocol,
    ) -> Step {
        let repr = gre::Repr { protocol, checksum: false, key: tunnel.key, sequence: None };
        let Some(header) = pkt.prepend(repr.buffer_len()) else {
            return Step::Drop(DropReason::NoBufferSpace);
        };
        repr.emit(&mut gre::Packet::new_unchecked(header));
        let Some(out) = &meta.out else { return Step::Drop(DropReason::NoOutboundSa) };
        let (sa, next_header, src, dst, tos) = (out.sa, out.next_header, out.src, out.dst, out.tos);
        if sa.is_none() {
            return self.outer_output(cx, pkt, meta);
        }
        if next_header != IpProtocol::GRE.0 {
            // Tunnel mode: the ESP payload is the whole GRE packet with its own IP header.
            let ident = self.next_ip_id();
            if !push_ip_header(pkt, src, dst, IpProtocol::GRE, tos, ident) {
                return Step::Drop(DropReason::NoBufferSpace);
            }
        }
        Step::Encrypt
    }

    /// Phase 2: one decrypt batch for every packet waiting for it, then GRE input for each.
    // The loop walks parallel arrays (packets, steps, metadata, verdicts) and its body needs `&mut self`.
    #[allow(clippy::needless_range_loop)]
    pub(super) fn decrypt_all(&mut self, cx: &Ctx<'_, P>, rt: &mut SaRtTable, burst: &mut [P]) {
        // Every SA of the batch is found by its SPI first, then loaded (keys, replay window) before
        // the first is used; the batch takes the SAs found rather than looking them up again.
        self.esp_in.clear();
        for (pkt, step) in burst.iter().zip(&self.step) {
            let req = match step {
                Step::Decrypt => esp::Packet::new_checked(pkt.data())
                    .ok()
                    .and_then(|esp| cx.t.sas().lookup_inbound(esp.spi()))
                    .map_or(InboundReq::Spi, InboundReq::Sa),
                _ => InboundReq::Skip,
            };
            self.esp_in.push(req);
        }
        for req in &self.esp_in {
            if let InboundReq::Sa(sa) = *req {
                cx.t.sas().prefetch(sa);
                rt.prefetch(sa);
            }
        }
        self.in_verdicts.clear();
        self.in_verdicts.resize(burst.len(), Err(DropReason::EspMalformed));
        self.esp.decrypt(&mut *self.engine, cx.t.sas(), rt, burst, &self.esp_in, &mut self.in_verdicts);
        for i in 0..burst.len() {
            if self.step[i] != Step::Decrypt {
                continue;
            }
            let decrypted = match self.in_verdicts[i] {
                Ok(d) => d,
                Err(reason) => {
                    self.step[i] = Step::Drop(reason);
                    continue;
                }
            };
            cx.counters.esp_decrypted.inc();
            self.at = i;
            let mut meta = self.meta[i];
            let pkt = &mut burst[i];
            let sa = Some(decrypted.sa);
            self.step[i] = match decrypted.next_header {
                47 => self.gre_input(cx, pkt, &mut meta, sa),
                4 | 41 => match strip_tunnel_mode_header(pkt, &meta) {
                    Ok(()) => self.gre_input(cx, pkt, &mut meta, sa),
                    Err(reason) => Step::Drop(reason),
                },
                // A dummy packet (RFC 4303 §2.6) is authenticated traffic-flow padding: discard it.
                NEXT_HEADER_NONE => Step::Consumed,
                _ => Step::Drop(DropReason::EspPolicyMismatch),
            };
            self.meta[i] = meta;
        }
    }

    /// Phase 4: one encrypt batch for every packet waiting for it, then the outer headers.
    // As in `decrypt_all`: parallel arrays, and a body that needs `&mut self`.
    #[allow(clippy::needless_range_loop)]
    pub(super) fn encrypt_all(&mut self, cx: &Ctx<'_, P>, rt: &mut SaRtTable, burst: &mut [P]) {
        self.esp_out.clear();
        self.esp_out.extend(self.step.iter().zip(&self.meta).map(|(s, m)| match (s, &m.out) {
            (Step::Encrypt, Some(Outer { sa: Some(sa), next_header, .. })) => {
                Some(OutboundReq { sa: *sa, next_header: *next_header })
            }
            _ => None,
        }));
        // Start loading every SA of the batch (keys, sequence counter) before the first is used, once
        // per run of packets on the same SA.
        let mut last = None;
        for req in self.esp_out.iter().flatten() {
            if last != Some(req.sa) {
                cx.t.sas().prefetch(req.sa);
                rt.prefetch(req.sa);
                last = Some(req.sa);
            }
        }
        if cx.capture.is_some() {
            for ((pkt, req), meta) in burst.iter().zip(&self.esp_out).zip(&self.meta) {
                if let (Some(req), Some(out)) = (req, meta.out) {
                    // Transport mode protects the GRE packet; tunnel mode carries its own IP header.
                    let outer = (req.next_header == IpProtocol::GRE.0).then_some((out.src, out.dst));
                    let tunnel = cx.t.sas().get(req.sa).map(|sa| sa.config().tunnel);
                    let seen = Seen { point: Point::PreEncrypt, port: None, tunnel, peer: Some(out.dst), outer };
                    cx.capture(seen, pkt);
                }
            }
        }
        self.out_verdicts.clear();
        self.out_verdicts.resize(burst.len(), Err(DropReason::NoOutboundSa));
        self.esp.encrypt(&mut *self.engine, cx.t.sas(), rt, burst, &self.esp_out, &mut self.out_verdicts);
        let mut metas = core::mem::take(&mut self.meta);
        let mut encrypted = 0;
        for i in 0..burst.len() {
            if self.step[i] != Step::Encrypt {
                continue;
            }
            if let Err(reason) = self.out_verdicts[i] {
                self.step[i] = Step::Drop(reason);
                continue;
            }
            encrypted += 1;
            self.step[i] = match metas.get_mut(i) {
                Some(meta) => self.outer_output(cx, &mut burst[i], meta),
                None => Step::Drop(DropReason::NoOutboundSa),
            };
        }
        self.meta = metas;
        cx.counters.esp_encrypted.add(encrypted);
    }

    /// Outer headers (UDP for NAT-T, IP) and L2 toward the front-door next hop.
    fn outer_output(&mut self, cx: &Ctx<'_, P>, pkt: &mut P, meta: &mut Meta) -> Step {
        let Some(out) = &meta.out else { return Step::Drop(DropReason::NoOutboundSa) };
        let protocol = match (out.sa, out.natt) {
            (Some(_), Some((src_port, dst_port))) => {
                let payload_len = pkt.len();
                let Some(header) = pkt.prepend(udp::HEADER_LEN) else {
                    return Step::Drop(DropReason::NoBufferSpace);
                };
                // RFC 3948 §2.1: the checksum is transmitted as zero over IPv4; IPv6 requires one
                // (RFC 8200 §8.1).
                let mut udp_packet = udp::Packet::new_unchecked(header);
                udp::Repr { src_port, dst_port }.emit(&mut udp_packet, payload_len);
                if let (IpAddr::V6(src), IpAddr::V6(dst)) = (out.src, out.dst) {
                    let mut datagram = udp::Packet::new_unchecked(pkt.data_mut());
                    datagram.fill_checksum(&src, &dst);
                }
                IpProtocol::UDP
            }
            (Some(_), None) => IpProtocol::ESP,
            (None, _) => IpProtocol::GRE,
        };
        let ident = self.next_ip_id();
        let Some(rewrite) = &out.rewrite else {
            if !push_ip_header(pkt, out.src, out.dst, protocol, out.tos, ident) {
                return Step::Drop(DropReason::NoBufferSpace);
            }
            let (port, gateway) = (out.port, out.gateway);
            return self.l2_output(cx, pkt, meta, port, gateway);
        };
        let payload_len = pkt.len();
        let l2 = rewrite.l2();
        if payload_len + ipv4::HEADER_LEN > usize::from(u16::MAX) {
            return Step::Drop(DropReason::NoBufferSpace);
        }
        let Some(headers) = pkt.prepend(l2.len() + ipv4::HEADER_LEN) else {
            return Step::Drop(DropReason::NoBufferSpace);
        };
        let (eth, ip) = headers.split_at_mut(l2.len());
        copy_l2(eth, l2);
        rewrite.ip.with_protocol(protocol).emit(ip, out.tos, ident, payload_len);
        // TX VLAN offload where the port has it: the header is untagged and the NIC inserts the tag.
        if let Some(tci) = rewrite.tx_vlan {
            if !tag_tx(pkt, tci, true) {
                return Step::Drop(DropReason::NoBufferSpace);
            }
        }
        let l2_len = pkt.len() - payload_len - ipv4::HEADER_LEN;
        // TX checksum offload where the port has it: the NIC fills in the checksum, zero until then.
        if cx.t.port(rewrite.port).is_some_and(|p| p.tx_ipv4_csum_offload)
            && pkt.offload_tx_ipv4_csum(l2_len, ipv4::HEADER_LEN)
        {
            if let Some(ip) = pkt.data_mut().get_mut(l2_len..) {
                ipv4::Packet::new_unchecked(ip).set_checksum(0);
            }
        }
        Step::Tx(rewrite.port)
    }
}

/// Copies a rewrite's Ethernet header: a fixed-size copy for the untagged header (a copy of a length
/// known only at run time is a call to `memcpy`).
#[inline]
fn copy_l2(dst: &mut [u8], src: &[u8]) {
    const LEN: usize = crate::wire::ethernet::HEADER_LEN;
    match (<&mut [u8; LEN]>::try_from(&mut *dst), <&[u8; LEN]>::try_from(src)) {
        (Ok(dst), Ok(src)) => *dst = *src,
        _ => dst.copy_from_slice(src),
    }
}

/// The outer path an entry's rewrite resolved.
fn rewrite_path(entry: &TeibEntry, rewrite: Rewrite) -> OuterPath {
    OuterPath { port: rewrite.port, gateway: entry.nbma, rewrite: Some(rewrite) }
}

/// The outer path to `nbma` looked up now: the front-door route (the slow path, for entries without a
/// rewrite and for control-plane packets).
fn outer_route<P: PacketBuf>(cx: &Ctx<'_, P>, tunnel: &TunnelConfig, nbma: IpAddr) -> Result<OuterPath, DropReason> {
    match cx.t.resolve(tunnel.fvrf, nbma) {
        Some(NextHop::Port { port, gateway }) => {
            Ok(OuterPath { port: *port, gateway: gateway.unwrap_or(nbma), rewrite: None })
        }
        Some(NextHop::Drop) => Err(DropReason::RouteDrop),
        // A tunnel routed over itself (or over another tunnel) is a configuration loop.
        Some(_) | None => Err(DropReason::NoRoute),
    }
}

/// Where the encapsulated packet goes: outer addresses, SA, NAT-T ports, and the front-door `path`.
fn outer<P: PacketBuf>(
    cx: &Ctx<'_, P>,
    tunnel: &TunnelConfig,
    nbma: IpAddr,
    sa: Option<SaIndex>,
    inner_tos: u8,
    path: OuterPath,
) -> Result<Outer, DropReason> {
    let (next_header, natt) = match sa {
        Some(index) => {
            let sa = cx.t.sas().hot(index).ok_or(DropReason::NoOutboundSa)?;
            let next_header = match sa.mode {
                Mode::Transport => IpProtocol::GRE.0,
                Mode::Tunnel if nbma.is_ipv4() => IpProtocol::IPV4.0,
                Mode::Tunnel => IpProtocol::IPV6.0,
            };
            (next_header, sa.natt.map(|n| (n.local, n.peer)))
        }
        None => (IpProtocol::GRE.0, None),
    };
    let OuterPath { port, gateway, rewrite } = path;
    Ok(Outer { src: tunnel.source, dst: nbma, sa, next_header, tos: inner_tos, natt, port, gateway, rewrite })
}

/// The front-door part of an [`Outer`].
struct OuterPath {
    port: PortId,
    gateway: IpAddr,
    rewrite: Option<Rewrite>,
}

/// Prepends an outer IPv4 or IPv6 header (the NBMA addresses' family). IPv4: DF is clear so that the
/// path may fragment the outer packet. DSCP and ECN are copied from the inner packet (RFC 2983, RFC 6040
/// §4.1 normal mode).
fn push_ip_header<P: PacketBuf>(
    pkt: &mut P,
    src: IpAddr,
    dst: IpAddr,
    protocol: IpProtocol,
    tos: u8,
    ident: u16,
) -> bool {
    let payload_len = pkt.len();
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            if payload_len + ipv4::HEADER_LEN > usize::from(u16::MAX) {
                return false;
            }
            let Some(header) = pkt.prepend(ipv4::HEADER_LEN) else { return false };
            ipv4::Template::new(src, dst, protocol, TUNNEL_TTL).emit(header, tos, ident, payload_len);
            true
        }
        (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => {
            if payload_len > usize::from(u16::MAX) {
                return false;
            }
            let repr = ipv6::Repr {
                src_addr,
                dst_addr,
                next_header: protocol,
                payload_len,
                hop_limit: TUNNEL_TTL,
                dscp: tos >> 2,
                ecn: tos & 0x03,
                flow_label: 0,
            };
            let Some(header) = pkt.prepend(ipv6::HEADER_LEN) else { return false };
            repr.emit(&mut ipv6::Packet::new_unchecked(header));
            true
        }
        _ => false,
    }
}

/// Tunnel-mode ESP carries IP(peer → us)/GRE: check that the inner header is GRE between the SA's
/// endpoints and strip it.
fn strip_tunnel_mode_header<P: PacketBuf>(pkt: &mut P, meta: &Meta) -> Result<(), DropReason> {
    let l3 = l3_header(pkt.data(), None).map_err(|_| DropReason::EspPolicyMismatch)?;
    if l3.proto != IpProtocol::GRE || l3.dst != meta.outer_dst || l3.fragment {
        return Err(DropReason::EspPolicyMismatch);
    }
    pkt.set_len(l3.len);
    pkt.adj(l3.l4);
    Ok(())
}

/// RFC 6040 §4.2: at decapsulation, a CE mark on the outer header is copied to an ECN-capable inner
/// packet. (A CE outer over a Not-ECT inner should be dropped; it is rare and left to the inner
/// transport, as several implementations do.)
fn apply_outer_ecn(inner: &mut [u8], outer_ecn: u8) {
    const CE: u8 = 0b11;
    if outer_ecn != CE {
        return;
    }
    match inner.first().map(|b| b >> 4) {
        Some(4) => {
            if let Ok(mut ip) = ipv4::Packet::new_checked(&mut inner[..]) {
                if ip.ecn() != 0 {
                    ip.set_ecn(CE);
                    ip.fill_checksum();
                }
            }
        }
        Some(6) => {
            if let Ok(mut ip) = ipv6::Packet::new_checked(&mut inner[..]) {
                let tc = ip.traffic_class();
                if tc & 0x03 != 0 {
                    ip.set_traffic_class(tc | CE);
                }
            }
        }
        _ => {}
    }
}
