//! The seam between workers and the management core: punts go up, injects come down, SA events go up.
//!
//! Each worker has its own [`ControlRings`]; all three rings are bounded and lock-free. A full punt
//! ring is a counted drop ([`crate::drop::DropReason::PuntRingFull`]), never a wait.

use core::net::IpAddr;

use crossbeam_queue::ArrayQueue;

use crate::ids::{PortId, SaIndex, TunnelId};
use crate::sa::SaEvent;

/// Why a packet, or a note about one, goes to the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PuntKind {
    /// An NHRP message (GRE protocol 0x2001) received on a tunnel; `src` is the sender's NBMA address
    /// as seen on the wire (after any NAT), `sa` the inbound SA that authenticated it.
    Nhrp,
    /// An IKE message (UDP 500, or UDP 4500 with the non-ESP marker).
    Ike,
    /// A packet came in from a tunnel and is routed back out of the same tunnel: the hub should send
    /// a Traffic Indication to `src` (Phase 3). Rate-limited per (source, destination).
    Redirect,
    /// No TEIB entry for an overlay next hop: the control plane may resolve it (NHRP). Rate-limited.
    TeibMiss,
    /// An ARP packet for the control plane to learn from.
    Arp,
    /// An IPv6 Neighbor Discovery packet for the control plane to learn from.
    Nd,
    /// A next hop's link-layer address is unknown: the control plane should ask. Rate-limited.
    NeighborMiss,
}

impl PuntKind {
    /// Stable name, as the replay tool and management print it.
    pub const fn name(self) -> &'static str {
        match self {
            PuntKind::Nhrp => "nhrp",
            PuntKind::Ike => "ike",
            PuntKind::Redirect => "redirect",
            PuntKind::TeibMiss => "teib_miss",
            PuntKind::Arp => "arp",
            PuntKind::Nd => "nd",
            PuntKind::NeighborMiss => "neighbor_miss",
        }
    }
}

/// The first bytes of a packet, kept when the packet itself goes on (a trigger needs only its header).
#[derive(Clone, Copy)]
pub struct Snapshot {
    len: u8,
    bytes: [u8; Snapshot::CAPACITY],
}

impl Snapshot {
    /// Bytes kept: enough for an IPv6 header, extension headers and a transport header.
    pub const CAPACITY: usize = 128;

    /// Copies up to [`Self::CAPACITY`] bytes from the front of `data`.
    pub fn of(data: &[u8]) -> Self {
        let len = data.len().min(Self::CAPACITY);
        let mut bytes = [0; Self::CAPACITY];
        bytes[..len].copy_from_slice(&data[..len]);
        Self { len: len as u8, bytes }
    }

    /// The bytes kept.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Snapshot({} bytes)", self.len)
    }
}

/// What a punt carries: the packet itself, or only the start of it.
#[derive(Debug)]
pub enum PuntData<P> {
    /// The packet, from the header the kind names (NHRP: the NHRP fixed header; IKE: the UDP header, so
    /// that the ports NAT-T needs are known, with the non-ESP marker after it on port 4500;
    /// ARP: the Ethernet frame; ND: the IPv6 packet).
    Packet(P),
    /// The start of a packet that the worker forwarded or dropped (the inner IP header for redirect
    /// and TEIB-miss triggers).
    Header(Snapshot),
}

/// A packet or trigger for the control plane.
#[derive(Debug)]
pub struct Punt<P> {
    /// Why.
    pub kind: PuntKind,
    /// Port it arrived on (or, for a neighbour miss, the port that needs the resolution).
    pub port: Option<PortId>,
    /// Tunnel it concerns.
    pub tunnel: Option<TunnelId>,
    /// Inbound SA that authenticated it.
    pub sa: Option<SaIndex>,
    /// Source address: the NBMA sender for NHRP and IKE, the overlay source for a redirect.
    pub src: Option<IpAddr>,
    /// Destination address: our NBMA address for NHRP and IKE, the overlay destination for a redirect
    /// or TEIB miss, the address to resolve for a neighbour miss.
    pub dst: Option<IpAddr>,
    /// The bytes.
    pub data: PuntData<P>,
}

/// A packet the control plane asks a worker to send.
#[derive(Debug)]
pub enum Inject<P> {
    /// A whole Ethernet frame, sent as it is out of `port` (ARP and ND requests).
    Frame {
        /// Egress port.
        port: PortId,
        /// The frame.
        pkt: P,
    },
    /// A GRE payload (an NHRP message) sent through `tunnel` to the peer whose NBMA address is `nbma`:
    /// the worker adds the GRE header with `protocol`, protects it with the peer's SA when the tunnel
    /// requires it, and routes it in the tunnel's front-door VRF.
    Tunnel {
        /// The tunnel.
        tunnel: TunnelId,
        /// The peer's NBMA address (TEIB key lookups are by overlay address; this bypasses them).
        nbma: IpAddr,
        /// The outbound SA to use, if the tunnel is protected.
        sa: Option<SaIndex>,
        /// GRE protocol type of the payload (0x2001 for NHRP).
        protocol: u16,
        /// The payload.
        pkt: P,
    },
}

/// A worker's three rings to and from the management core.
#[derive(Debug)]
pub struct ControlRings<P> {
    /// Worker → control: punted packets and triggers.
    pub punts: ArrayQueue<Punt<P>>,
    /// Control → worker: packets to send.
    pub injects: ArrayQueue<Inject<P>>,
    /// Worker → control: SA lifetime and sequence-number events.
    pub events: ArrayQueue<SaEvent>,
}

impl<P> ControlRings<P> {
    /// Rings holding `capacity` entries each.
    pub fn new(capacity: usize) -> Self {
        Self { punts: ArrayQueue::new(capacity), injects: ArrayQueue::new(capacity), events: ArrayQueue::new(capacity) }
    }
}
