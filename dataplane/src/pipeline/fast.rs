//! The fast path into a tunnel: an untagged IPv4 frame, addressed to the receiving port and routed to a
//! tunnel peer, goes from Ethernet input to GRE encapsulation in one step.
//!
//! It is the path of nearly every packet toward the spokes. It does to such a packet exactly what the
//! general stages do (`l2_input`, `ip_input`, `forward`, `tunnel_output`), but what the packets toward one
//! next hop share (tunnel, TEIB entry, SA, outer path, tunnel MTU, GRE header) is worked out for the
//! first of them and kept while the next hop and the published tables stay the same, and the headers
//! are read in place. Whatever it does not take — another EtherType, a VLAN,
//! IPv4 options, a frame not for the port, a hop limit about to expire, a packet over the tunnel MTU, a
//! next hop that is not a resolved tunnel peer — it leaves as it found it, for the general stages and
//! their drop reasons, ICMP errors and triggers.

use core::net::IpAddr;

use super::{Ctx, Meta, Outer, Pipeline, Step};
use crate::drop::DropReason;
use crate::fib::NextHopId;
use crate::pkt::PacketBuf;
use crate::tables::{NextHop, PortConfig};
use crate::wire::ethernet;
use crate::wire::gre::{self, Protocol};
use crate::wire::{checksum, ipv4, IpProtocol};

/// Ethernet and the option-less IPv4 header the fast path reads.
const HEADERS_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;

/// What the packets of a run toward one next hop share. Valid while the tables it came from are the
/// ones published (their generation).
#[derive(Debug, Clone, Copy)]
pub(super) struct FastRun {
    generation: u64,
    nh: NextHopId,
    /// `None`: the next hop is not one the fast path takes.
    path: Option<FastPath>,
}

/// What the fast path needs of a next hop.
#[derive(Debug, Clone, Copy)]
struct FastPath {
    /// The tunnel's `ip tcp adjust-mss`.
    tcp_mss: Option<u16>,
    out: Outer,
    mtu: usize,
    /// The tunnel's GRE key.
    key: Option<u32>,
}

impl<P: PacketBuf> Pipeline<P> {
    /// Takes the packet being handled (a frame received on `port`) to the encrypt batch, or to its
    /// drop, and returns its step; `None`, with the packet untouched, leaves it to the general stages.
    #[inline]
    pub(super) fn fast_input(
        &mut self,
        cx: &Ctx<'_, P>,
        port: &PortConfig,
        pkt: &mut P,
        meta: &mut Meta,
    ) -> Option<Step> {
        let hint = (*self.routes.get(self.at)?)?;
        let (IpAddr::V4(dst), Some(nh), None) = (hint.dst, hint.nh, port.vlan) else { return None };
        let path = self.fast_path(cx, nh)?;
        let data = pkt.data();
        let h: &[u8; HEADERS_LEN] = data.get(..HEADERS_LEN)?.try_into().ok()?;
        let ip: [u8; ipv4::HEADER_LEN] = h[ethernet::HEADER_LEN..].try_into().ok()?;
        let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let frame_fits = total_len >= ipv4::HEADER_LEN && total_len <= data.len() - ethernet::HEADER_LEN;
        if h[..6] != port.mac
            || h[12..14] != [0x08, 0x00]
            || ip[0] != 0x45
            || ip[16..20] != dst.octets()
            || !frame_fits
            || total_len > path.mtu
            || ip[8] <= 1
        {
            return None;
        }
        let padding = data.len() - ethernet::HEADER_LEN - total_len;
        // From here on the packet is the fast path's. What the NIC says about the tag and the checksum
        // decides as it would in the general stages: a stripped tag on an untagged port, and a bad
        // checksum, are drops.
        if pkt.take_rx_vlan().is_some() {
            return Some(Step::Drop(DropReason::L2WrongVlan));
        }
        if !pkt.take_rx_ipv4_csum().unwrap_or_else(|| checksum::data(&ip) == 0xffff) {
            return Some(Step::Drop(DropReason::Ipv4BadChecksum));
        }
        pkt.adj(ethernet::HEADER_LEN);
        pkt.trim(padding);
        ipv4::Packet::new_unchecked(pkt.data_mut()).decrement_ttl();
        let first_fragment = ip[6] & 0x1f == 0 && ip[7] == 0;
        if let (IpProtocol::TCP, true, Some(mss)) = (IpProtocol(ip[9]), first_fragment, path.tcp_mss) {
            if super::ip::clamp_mss(&mut pkt.data_mut()[ipv4::HEADER_LEN..], mss) {
                cx.counters.mss_clamped.inc();
            }
        }
        let gre_len = gre::BASE_HEADER_LEN + if path.key.is_some() { 4 } else { 0 };
        let Some(header) = pkt.prepend(gre_len) else { return Some(Step::Drop(DropReason::NoBufferSpace)) };
        let mut gre = gre::Packet::new_unchecked(header);
        gre.set_flags(false, path.key.is_some(), false);
        gre.set_protocol_type(Protocol::IPV4);
        if let Some(key) = path.key {
            gre.set_key(key);
        }
        meta.out = Some(path.out);
        if let Some(out) = &mut meta.out {
            out.tos = ip[1];
        }
        Some(Step::Encrypt)
    }

    /// The fast path toward next hop `nh`: the last one worked out while it is still valid, else
    /// worked out now.
    #[inline]
    fn fast_path(&mut self, cx: &Ctx<'_, P>, nh: NextHopId) -> Option<&FastPath> {
        let generation = cx.t.generation();
        if self.fast.is_none_or(|run| run.nh != nh || run.generation != generation) {
            self.fast = Some(FastRun { generation, nh, path: self.resolve_fast_path(cx, nh) });
        }
        self.fast.as_ref()?.path.as_ref()
    }

    /// A next hop the fast path takes: a tunnel peer whose TEIB entry has a resolved outer path and an
    /// SA in transport mode.
    #[inline(never)]
    fn resolve_fast_path(&self, cx: &Ctx<'_, P>, nh: NextHopId) -> Option<FastPath> {
        let NextHop::Tunnel { tunnel: id, peer: Some(_) } = *cx.t.next_hop(nh)? else { return None };
        let tunnel = cx.t.tunnel(id)?;
        let adjacency = cx.t.next_hop_adjacency(nh)?;
        adjacency.rewrite?;
        let (out, mtu) = self.path_to(cx, tunnel, adjacency).ok()?;
        if out.sa.is_none() || out.next_header != IpProtocol::GRE.0 {
            return None;
        }
        Some(FastPath { tcp_mss: tunnel.tcp_mss, out, mtu, key: tunnel.key })
    }
}
