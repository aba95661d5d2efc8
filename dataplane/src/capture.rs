//! Packet capture inside the data plane: one port's, one tunnel's or one peer's packets, as received,
//! after decryption, before encryption and as sent — what an operator needs to see both sides of the
//! crypto (Cisco's Embedded Packet Capture, VPP's `pcap trace`).
//!
//! Layer: data plane, off the fast path unless a capture runs. Contract:
//! - Management turns a capture on with [`Capture::start`] and off with [`Capture::stop`]; workers read
//!   the filter once per burst (one atomic load when no capture runs) and copy each matching packet
//!   into a bounded lock-free ring. A full ring is a counted loss ([`Capture::lost`]), never a wait.
//! - Every record is an Ethernet frame, so that one classic pcap file holds all four points: received
//!   and sent frames as they are on the wire; the cleartext of a decrypted or to-be-encrypted packet
//!   (the GRE packet ESP protects) behind a made-up Ethernet and IPv4 header between the two NBMA
//!   addresses with protocol GRE — what the tunnel would carry without IPsec.
//! - Records keep at most [`SNAPLEN`] bytes of a packet and its original length, as pcap does.

use core::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use crossbeam_queue::ArrayQueue;

use crate::ids::{PortId, TunnelId, WorkerId};
use crate::wire::{ethernet, ipv4, IpProtocol};

/// Bytes kept of each packet.
pub const SNAPLEN: usize = 2048;

/// Where in the pipeline a packet was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// As received from a port.
    Rx,
    /// Just decrypted: the cleartext GRE packet, before GRE input.
    Decrypted,
    /// About to be encrypted: the cleartext GRE packet.
    PreEncrypt,
    /// As sent to a port.
    Tx,
}

impl Point {
    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            Point::Rx => "rx",
            Point::Decrypted => "decrypted",
            Point::PreEncrypt => "pre-encrypt",
            Point::Tx => "tx",
        }
    }
}

/// What to capture: packets matching every field that is set, at the points listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// Received on or sent to this port.
    pub port: Option<PortId>,
    /// Decrypted from or encrypted into this tunnel (points [`Point::Decrypted`], [`Point::PreEncrypt`]).
    pub tunnel: Option<TunnelId>,
    /// To or from this NBMA address (the outer source of what is received, the outer destination of
    /// what is sent).
    pub peer: Option<IpAddr>,
    /// The points to capture at.
    pub points: Vec<Point>,
}

impl Filter {
    fn wants(&self, point: Point) -> bool {
        self.points.contains(&point)
    }
}

/// One captured packet.
pub struct Record {
    /// When, nanoseconds on the worker's clock.
    pub ts_ns: u64,
    /// Where.
    pub point: Point,
    /// Which worker.
    pub worker: WorkerId,
    /// The packet's whole length (the frame's, for the made-up frames of cleartext points).
    pub len: usize,
    data_len: usize,
    data: Box<[u8; SNAPLEN]>,
}

impl Record {
    /// The bytes kept: an Ethernet frame, cut at [`SNAPLEN`].
    pub fn data(&self) -> &[u8] {
        &self.data[..self.data_len]
    }
}

impl core::fmt::Debug for Record {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Record").field("point", &self.point).field("len", &self.len).finish()
    }
}

/// The capture shared by management and every worker.
pub struct Capture {
    filter: ArcSwapOption<Filter>,
    records: ArrayQueue<Record>,
    lost: AtomicU64,
}

impl core::fmt::Debug for Capture {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Capture").field("running", &self.filter.load().is_some()).finish()
    }
}

impl Capture {
    /// A stopped capture whose ring holds `capacity` records.
    pub fn new(capacity: usize) -> Arc<Capture> {
        Arc::new(Capture {
            filter: ArcSwapOption::empty(),
            records: ArrayQueue::new(capacity.max(1)),
            lost: AtomicU64::new(0),
        })
    }

    /// Starts capturing what `filter` matches (replacing any running capture).
    pub fn start(&self, filter: Filter) {
        self.filter.store(Some(Arc::new(filter)));
    }

    /// Stops; what was captured stays in the ring until taken.
    pub fn stop(&self) {
        self.filter.store(None);
    }

    /// The next record, oldest first.
    pub fn take(&self) -> Option<Record> {
        self.records.pop()
    }

    /// Packets that matched but found the ring full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The running filter, for one burst.
    pub(crate) fn filter(&self) -> Option<Arc<Filter>> {
        self.filter.load_full()
    }

    fn push(&self, record: Record) {
        if self.records.push(record).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What a worker knows about a packet at a capture point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    pub point: Point,
    pub port: Option<PortId>,
    pub tunnel: Option<TunnelId>,
    /// The peer's NBMA address, known at the cleartext points (frames are matched on their own).
    pub peer: Option<IpAddr>,
    /// Cleartext points: the outer (source, destination) for the made-up IPv4 header, or `None` when
    /// the data already starts with an IP header (tunnel mode).
    pub outer: Option<(IpAddr, IpAddr)>,
}

impl Capture {
    /// Records `data` if `filter` wants it. Frames (points [`Point::Rx`], [`Point::Tx`]) are matched on
    /// their outer IPv4 addresses; cleartext (the other points) gets a made-up header.
    pub(crate) fn offer(&self, filter: &Filter, worker: WorkerId, ts_ns: u64, seen: Seen, data: &[u8]) {
        if !filter.wants(seen.point)
            || (filter.port.is_some() && filter.port != seen.port)
            || (filter.tunnel.is_some() && filter.tunnel != seen.tunnel)
        {
            return;
        }
        let frame = matches!(seen.point, Point::Rx | Point::Tx);
        let peer = if frame {
            frame_addresses(data).map(|(src, dst)| if seen.point == Point::Rx { src } else { dst })
        } else {
            seen.peer
        };
        if filter.peer.is_some() && filter.peer != peer {
            return;
        }
        let mut record = Record { ts_ns, point: seen.point, worker, len: 0, data_len: 0, data: Box::new([0; SNAPLEN]) };
        let header_len = if frame { 0 } else { made_up_header(&mut record.data[..], seen.outer, data) };
        let keep = data.len().min(SNAPLEN - header_len);
        record.data[header_len..header_len + keep].copy_from_slice(&data[..keep]);
        record.data_len = header_len + keep;
        record.len = header_len + data.len();
        self.push(record);
    }
}

/// The outer IPv4 source and destination of an untagged Ethernet frame.
fn frame_addresses(frame: &[u8]) -> Option<(IpAddr, IpAddr)> {
    let eth = ethernet::Packet::new_checked(frame).ok()?;
    if eth.ethertype() != ethernet::EtherType::IPV4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    Some((ip.src_addr().into(), ip.dst_addr().into()))
}

/// Writes Ethernet (zero MACs) and, given IPv4 `outer` addresses, an IPv4 header with protocol GRE in
/// front of `payload`; returns their length.
fn made_up_header(buf: &mut [u8], outer: Option<(IpAddr, IpAddr)>, payload: &[u8]) -> usize {
    let ip = match outer {
        Some((IpAddr::V4(src), IpAddr::V4(dst))) => Some((src, dst)),
        _ => None,
    };
    let ethertype = match (ip, payload.first().map(|b| b >> 4)) {
        (None, Some(6)) => ethernet::EtherType::IPV6,
        _ => ethernet::EtherType::IPV4,
    };
    let eth = ethernet::Repr {
        src_addr: ethernet::Address([0; 6]),
        dst_addr: ethernet::Address([0; 6]),
        vlan: None,
        ethertype,
    };
    eth.emit(&mut ethernet::Packet::new_unchecked(&mut buf[..ethernet::HEADER_LEN]));
    let Some((src, dst)) = ip else { return ethernet::HEADER_LEN };
    let len = payload.len().min(usize::from(u16::MAX) - ipv4::HEADER_LEN);
    let header = &mut buf[ethernet::HEADER_LEN..ethernet::HEADER_LEN + ipv4::HEADER_LEN];
    ipv4::Template::new(src, dst, IpProtocol::GRE, 255).emit(header, 0, 0, len);
    ethernet::HEADER_LEN + ipv4::HEADER_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(point: Point, port: u16) -> Seen {
        Seen { point, port: Some(PortId(port)), tunnel: None, peer: None, outer: None }
    }

    #[test]
    fn a_full_ring_counts_what_it_loses_and_stopping_keeps_the_records() {
        let c = Capture::new(2);
        assert!(c.filter().is_none(), "stopped until started");
        c.start(Filter { port: Some(PortId(1)), tunnel: None, peer: None, points: vec![Point::Rx] });
        let f = c.filter().unwrap();
        let frame = [0xAB; 64];
        c.offer(&f, WorkerId(0), 1, seen(Point::Tx, 1), &frame);
        c.offer(&f, WorkerId(0), 2, seen(Point::Rx, 2), &frame);
        assert!(c.take().is_none(), "other point, other port");
        for ts in 3..6 {
            c.offer(&f, WorkerId(0), ts, seen(Point::Rx, 1), &frame);
        }
        assert_eq!(c.lost(), 1);
        c.stop();
        assert!(c.filter().is_none());
        let r = c.take().unwrap();
        assert_eq!((r.ts_ns, r.point, r.len, r.data()), (3, Point::Rx, 64, &frame[..]));
        assert_eq!(c.take().map(|r| r.ts_ns), Some(4));
    }

    #[test]
    fn long_packets_are_cut_at_the_snap_length() {
        let c = Capture::new(1);
        c.start(Filter { port: None, tunnel: None, peer: None, points: vec![Point::Tx] });
        let frame = vec![7u8; SNAPLEN + 100];
        c.offer(&c.filter().unwrap(), WorkerId(3), 9, seen(Point::Tx, 0), &frame);
        let r = c.take().unwrap();
        assert_eq!((r.len, r.data().len(), r.worker), (SNAPLEN + 100, SNAPLEN, WorkerId(3)));
    }
}
