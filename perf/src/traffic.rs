//! Traffic through a [`Scenario`]'s hub: generators for the three paths, and a runner that times only
//! the hub's `Worker::poll`.
//!
//! - [`Path::LanToTunnel`]: Ethernet/IPv4/UDP from the LAN host to a random spoke's LAN host, received on
//!   the LAN port; the hub routes it into the tunnel, adds GRE, encrypts (ESP transport mode) and sends it
//!   out of the WAN port.
//! - [`Path::TunnelToLan`]: ESP from a random spoke's NBMA address to the hub, protecting GRE and an
//!   IPv4/UDP packet for the LAN host; the hub decrypts, decapsulates and sends the inner packet out of
//!   the LAN port.
//! - [`Path::SpokeToSpoke`]: ESP from a random spoke `i` carrying a packet for spoke `j`'s LAN (j ≠ i when
//!   there are two spokes or more); the hub decrypts, routes back into the tunnel and re-encrypts for `j`.
//!
//! Sizes ([`FrameSize`]) count the **cleartext Ethernet frame on the LAN side, without FCS**: the frame
//! the LAN host sends (LAN→tunnel) or receives (tunnel→LAN), or the one spoke `j`'s LAN would see
//! (spoke→hub→spoke). A 64 B frame holds a 50 B IPv4 packet. The ESP frames on the WAN side are larger
//! by Ethernet + IPv4 + ESP header, IV, padding, trailer, ICV and GRE (66 to 69 bytes here).
//!
//! The spokes' ESP packets are encrypted by our own [`EspProcessor`] with the mirrored SAs
//! ([`Scenario::spoke_sas`]), before the timer starts, so every packet carries a fresh sequence number
//! and the hub's anti-replay window accepts it. Buffers go round a pool: after a warm-up the steady state
//! allocates nothing (the hub's `poll` and the generator reuse the same [`HeapPkt`]s).
//!
//! Every packet the hub emits is checked (outside the timer) for where a user expects it: ESP on the WAN
//! port, or the inner frame, byte count intact, on the LAN port. Anything else — a drop, a punt, a frame
//! on the wrong port — is counted in [`Measurement::wrong`], so a benchmark never silently measures a drop
//! path.

use core::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dataplane::crypto::SoftEngine;
use dataplane::drop::DropReason;
use dataplane::esp::{EspProcessor, OutboundReq, OutboundVerdict};
use dataplane::pkt::{HeapPkt, PacketBuf};
use dataplane::punt::PuntData;
use dataplane::sa::SaRtTable;
use dataplane::wire::ethernet::{self, Address, EtherType};
use dataplane::wire::gre::{self, Protocol};
use dataplane::wire::{ipv4, udp, IpProtocol};
use dataplane::worker::MAX_BURST;
use thiserror::Error;

use crate::scenario::{self, Scenario, GRE_KEY, LAN, WAN};

/// A path through the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// LAN host → spoke: route, GRE encapsulation, ESP encryption.
    LanToTunnel,
    /// Spoke → LAN host: ESP decryption, GRE decapsulation, route.
    TunnelToLan,
    /// Spoke → spoke through the hub: decrypt, route, re-encrypt.
    SpokeToSpoke,
}

impl Path {
    /// All three, in report order.
    pub const ALL: [Path; 3] = [Path::LanToTunnel, Path::TunnelToLan, Path::SpokeToSpoke];

    /// Name for tables and benchmark ids.
    pub const fn name(self) -> &'static str {
        match self {
            Path::LanToTunnel => "lan-to-tunnel",
            Path::TunnelToLan => "tunnel-to-lan",
            Path::SpokeToSpoke => "spoke-to-spoke",
        }
    }
}

/// Frame sizes (cleartext LAN-side Ethernet frame, no FCS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSize {
    /// Every frame this many bytes.
    Fixed(u16),
    /// Simple IMIX: of every 12 frames, 7 of 64 B, 4 of 576 B and 1 of 1400 B (mean 346 B), interleaved.
    Imix,
}

/// The IMIX sequence: 7 × 64, 4 × 576, 1 × 1400 frame bytes, interleaved.
pub const IMIX: [u16; 12] = [64, 576, 64, 64, 576, 64, 1400, 64, 576, 64, 64, 576];

impl FrameSize {
    /// The three sizes of the report.
    pub const ALL: [FrameSize; 3] = [FrameSize::Fixed(64), FrameSize::Imix, FrameSize::Fixed(1400)];

    /// Name for tables and benchmark ids.
    pub fn name(self) -> String {
        match self {
            FrameSize::Fixed(n) => format!("{n}B"),
            FrameSize::Imix => "IMIX".into(),
        }
    }

    /// Size of the `k`-th frame of a run.
    pub fn nth(self, k: usize) -> u16 {
        match self {
            FrameSize::Fixed(n) => n,
            FrameSize::Imix => IMIX[k % IMIX.len()],
        }
    }
}

/// Smallest frame a generator builds: Ethernet + IPv4 + UDP with no payload.
pub const MIN_FRAME: u16 = (ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN) as u16;
/// Largest frame that fits the tunnel's `ip mtu` after the hub strips Ethernet.
pub const MAX_FRAME: u16 = scenario::TUNNEL_MTU + ethernet::HEADER_LEN as u16;

/// Why traffic could not be generated (a generator bug, never a hub verdict).
#[derive(Debug, Error)]
pub enum TrafficError {
    /// Frame size outside what the generator builds.
    #[error("traffic: frame size {0} B is outside {MIN_FRAME}..={MAX_FRAME} B")]
    Size(u16),
    /// A packet buffer had no room for a header.
    #[error("traffic: no room for the {0} header in a packet buffer")]
    NoRoom(&'static str),
    /// The spokes' side refused to encrypt.
    #[error("traffic: spoke-side ESP encryption failed: {}", .0.name())]
    Encrypt(DropReason),
}

/// Counts of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measurement {
    /// Packets offered to the hub.
    pub packets: u64,
    /// Their LAN-side cleartext frame bytes (see the module docs).
    pub frame_bytes: u64,
    /// Packets that came out where the path expects them.
    pub delivered: u64,
    /// Packets that did not: dropped, punted, or on the wrong port or with the wrong length.
    pub wrong: u64,
    /// Time spent inside the hub's `Worker::poll`.
    pub busy: Duration,
}

impl Measurement {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &Measurement) {
        self.packets += other.packets;
        self.frame_bytes += other.frame_bytes;
        self.delivered += other.delivered;
        self.wrong += other.wrong;
        self.busy += other.busy;
    }

    /// Million packets per second of hub time.
    pub fn mpps(&self) -> f64 {
        self.packets as f64 / self.busy.as_secs_f64().max(1e-12) / 1e6
    }

    /// Gigabits per second of LAN-side frame bytes.
    pub fn gbps(&self) -> f64 {
        self.frame_bytes as f64 * 8.0 / self.busy.as_secs_f64().max(1e-12) / 1e9
    }

    /// Nanoseconds of hub time per packet.
    pub fn ns_per_packet(&self) -> f64 {
        self.busy.as_nanos() as f64 / (self.packets.max(1)) as f64
    }
}

/// A hub scenario with its traffic generators and a buffer pool.
#[derive(Debug)]
pub struct Bench {
    /// The hub.
    pub scenario: Scenario,
    pool: Vec<HeapPkt>,
    spoke_esp: EspProcessor,
    spoke_rt: SaRtTable,
    reqs: Vec<Option<OutboundReq>>,
    verdicts: Vec<OutboundVerdict>,
    batch: Vec<HeapPkt>,
    /// Source spoke of each packet of `batch`.
    sources: Vec<u32>,
    /// Frame sizes of the burst in flight.
    sizes: Vec<u16>,
    rng: u64,
    /// Spokes are taken in order from here instead of at random (the warm-up sweep).
    sweep: Option<u32>,
    frames: usize,
    clock: Instant,
}

impl Bench {
    /// Generators and a pool for `scenario`.
    pub fn new(scenario: Scenario) -> Self {
        let n = MAX_BURST;
        Self {
            scenario,
            pool: (0..2 * n).map(|_| HeapPkt::new()).collect(),
            spoke_esp: EspProcessor::new(n),
            spoke_rt: SaRtTable::default(),
            reqs: Vec::with_capacity(n),
            verdicts: Vec::with_capacity(n),
            batch: Vec::with_capacity(n),
            sources: Vec::with_capacity(n),
            sizes: Vec::with_capacity(n),
            rng: 0x2545_F491_4F6C_DD1D,
            sweep: None,
            frames: 0,
            clock: Instant::now(),
        }
    }

    /// Number of spokes.
    pub fn spokes(&self) -> u32 {
        self.scenario.options.spokes
    }

    /// Sends one packet to and from every spoke (64 B frames, in order), so that the hub's worker has
    /// created the runtime state of every SA before anything is timed. Returns the counts.
    pub fn prewarm(&mut self) -> Result<Measurement, TrafficError> {
        let mut total = Measurement::default();
        let burst = self.scenario.options.burst.min(MAX_BURST);
        for path in [Path::LanToTunnel, Path::TunnelToLan] {
            self.sweep = Some(0);
            let mut left = self.spokes();
            while left > 0 {
                let n = (left as usize).min(burst);
                total.add(&self.burst(path, FrameSize::Fixed(64), n)?);
                left -= n as u32;
            }
        }
        self.sweep = None;
        Ok(total)
    }

    /// Runs bursts of the scenario's burst size until the hub has been busy for `budget`.
    pub fn run_for(&mut self, path: Path, size: FrameSize, budget: Duration) -> Result<Measurement, TrafficError> {
        let mut total = Measurement::default();
        let burst = self.scenario.options.burst;
        while total.busy < budget {
            total.add(&self.burst(path, size, burst)?);
        }
        Ok(total)
    }

    /// Runs `bursts` bursts of the scenario's burst size.
    pub fn run_bursts(&mut self, path: Path, size: FrameSize, bursts: u64) -> Result<Measurement, TrafficError> {
        let mut total = Measurement::default();
        let burst = self.scenario.options.burst;
        for _ in 0..bursts {
            total.add(&self.burst(path, size, burst)?);
        }
        Ok(total)
    }

    /// Generates `n` packets (at most [`MAX_BURST`]) of `path` and `size`, hands them to the hub's
    /// receive port, times one `Worker::poll`, then checks and recycles what came out.
    pub fn burst(&mut self, path: Path, size: FrameSize, n: usize) -> Result<Measurement, TrafficError> {
        let n = n.min(MAX_BURST);
        self.sizes.clear();
        for _ in 0..n {
            let s = size.nth(self.frames);
            self.frames = self.frames.wrapping_add(1);
            if !(MIN_FRAME..=MAX_FRAME).contains(&s) {
                return Err(TrafficError::Size(s));
            }
            self.sizes.push(s);
        }
        match path {
            Path::LanToTunnel => self.fill_lan()?,
            Path::TunnelToLan | Path::SpokeToSpoke => self.fill_spokes(path)?,
        }
        let frame_bytes: u64 = self.sizes.iter().map(|&s| u64::from(s)).sum();
        let now = self.clock.elapsed().as_nanos() as u64;
        let start = Instant::now();
        self.scenario.worker.poll(now);
        let busy = start.elapsed();
        let (delivered, wrong) = self.collect(path, frame_bytes);
        Ok(Measurement { packets: n as u64, frame_bytes, delivered, wrong, busy })
    }

    /// The next (source spoke, destination spoke).
    fn pick(&mut self) -> (u32, u32) {
        let n = self.spokes();
        if let Some(i) = self.sweep {
            self.sweep = Some((i + 1) % n);
            return (i, i);
        }
        let i = (self.random() % u64::from(n)) as u32;
        if n == 1 {
            return (0, 0);
        }
        let j = (i + 1 + (self.random() % u64::from(n - 1)) as u32) % n;
        (i, j)
    }

    /// xorshift64*: cheap, deterministic, good enough to spread spokes.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn take(&mut self) -> HeapPkt {
        let mut pkt = self.pool.pop().unwrap_or_default();
        pkt.reset();
        pkt
    }

    /// LAN host → random spoke host, on the LAN port.
    fn fill_lan(&mut self) -> Result<(), TrafficError> {
        for k in 0..self.sizes.len() {
            let (_, j) = self.pick();
            let mut pkt = self.take();
            let ip_len = usize::from(self.sizes[k]) - ethernet::HEADER_LEN;
            write_udp4(&mut pkt, scenario::LAN_HOST_IP, scenario::spoke_host(j), ip_len)?;
            push_ethernet(&mut pkt, scenario::HUB_LAN_MAC, scenario::LAN_HOST_MAC)?;
            self.scenario.worker.ports[usize::from(LAN.0)].rx.push_back(pkt);
        }
        Ok(())
    }

    /// Random spokes → LAN host or another spoke: GRE, then ESP with the spoke's SA, then outer IPv4
    /// and Ethernet from the WAN gateway, on the WAN port.
    fn fill_spokes(&mut self, path: Path) -> Result<(), TrafficError> {
        self.batch.clear();
        self.sources.clear();
        self.reqs.clear();
        for k in 0..self.sizes.len() {
            let (i, j) = self.pick();
            let dst = match path {
                Path::SpokeToSpoke => scenario::spoke_host(j),
                _ => scenario::LAN_HOST_IP,
            };
            let mut pkt = self.take();
            let ip_len = usize::from(self.sizes[k]) - ethernet::HEADER_LEN;
            write_udp4(&mut pkt, scenario::spoke_host(i), dst, ip_len)?;
            let repr = gre::Repr { protocol: Protocol::IPV4, checksum: false, key: Some(GRE_KEY), sequence: None };
            let header = pkt.prepend(repr.buffer_len()).ok_or(TrafficError::NoRoom("GRE"))?;
            repr.emit(&mut gre::Packet::new_unchecked(header));
            self.batch.push(pkt);
            self.sources.push(i);
            self.reqs.push(Some(OutboundReq { sa: scenario::sa_in(i), next_header: IpProtocol::GRE.0 }));
        }
        self.verdicts.clear();
        self.verdicts.resize(self.batch.len(), Ok(()));
        let db = &self.scenario.spoke_sas;
        self.spoke_esp.encrypt(
            &mut SoftEngine,
            db,
            &mut self.spoke_rt,
            &mut self.batch,
            &self.reqs,
            &mut self.verdicts,
        );
        if let Some(Err(reason)) = self.verdicts.iter().find(|v| v.is_err()) {
            return Err(TrafficError::Encrypt(*reason));
        }
        let wan = &mut self.scenario.worker.ports[usize::from(WAN.0)];
        for (mut pkt, &i) in self.batch.drain(..).zip(&self.sources) {
            push_ipv4(&mut pkt, scenario::spoke_nbma(i), scenario::HUB_WAN_IP, IpProtocol::ESP)?;
            push_ethernet(&mut pkt, scenario::HUB_WAN_MAC, scenario::WAN_GW_MAC)?;
            wan.rx.push_back(pkt);
        }
        Ok(())
    }

    /// Checks what the hub sent against what `path` expects, returns the buffers to the pool, and drains
    /// the control rings. Returns (delivered, wrong).
    fn collect(&mut self, path: Path, frame_bytes: u64) -> (u64, u64) {
        let offered = self.sizes.len() as u64;
        let (mut delivered, mut out_bytes) = (0u64, 0u64);
        let expect = match path {
            Path::TunnelToLan => LAN,
            Path::LanToTunnel | Path::SpokeToSpoke => WAN,
        };
        for (p, port) in self.scenario.worker.ports.iter_mut().enumerate() {
            for pkt in port.tx.drain(..) {
                if p == usize::from(expect.0) && looks_right(path, pkt.data()) {
                    delivered += 1;
                    out_bytes += pkt.len() as u64;
                }
                self.pool.push(pkt);
            }
            // Whatever the hub did not take (it takes a whole burst per poll) goes back too.
            self.pool.extend(port.rx.drain(..));
        }
        while let Some(punt) = self.scenario.rings.punts.pop() {
            if let PuntData::Packet(pkt) = punt.data {
                self.pool.push(pkt);
            }
        }
        while self.scenario.rings.events.pop().is_some() {}
        // Tunnel→LAN gives back exactly the frames the LAN host should see.
        if path == Path::TunnelToLan && out_bytes != frame_bytes {
            return (0, offered);
        }
        (delivered, offered.saturating_sub(delivered))
    }
}

/// The cheap check of an emitted frame: ESP over IPv4 toward the WAN gateway, or a UDP/IPv4 frame to the
/// LAN host.
fn looks_right(path: Path, frame: &[u8]) -> bool {
    let Ok(eth) = ethernet::Packet::new_checked(frame) else { return false };
    if eth.ethertype() != EtherType::IPV4 {
        return false;
    }
    let Ok(ip) = ipv4::Packet::new_checked(eth.payload()) else { return false };
    match path {
        Path::LanToTunnel | Path::SpokeToSpoke => {
            eth.dst_addr() == Address(scenario::WAN_GW_MAC)
                && ip.protocol() == IpProtocol::ESP
                && ip.src_addr() == scenario::HUB_WAN_IP
        }
        Path::TunnelToLan => {
            eth.dst_addr() == Address(scenario::LAN_HOST_MAC)
                && ip.protocol() == IpProtocol::UDP
                && ip.dst_addr() == scenario::LAN_HOST_IP
        }
    }
}

/// Appends an IPv4/UDP packet of `ip_len` bytes (port 5000 → 5001, zero payload) to an empty buffer.
pub fn write_udp4(pkt: &mut HeapPkt, src: Ipv4Addr, dst: Ipv4Addr, ip_len: usize) -> Result<(), TrafficError> {
    let udp_len = ip_len.checked_sub(ipv4::HEADER_LEN).ok_or(TrafficError::NoRoom("IPv4"))?;
    let payload_len = udp_len.checked_sub(udp::HEADER_LEN).ok_or(TrafficError::NoRoom("UDP"))?;
    let buf = pkt.append(ip_len).ok_or(TrafficError::NoRoom("IPv4"))?;
    let (ip_bytes, rest) = buf.split_at_mut(ipv4::HEADER_LEN);
    let (udp_bytes, payload) = rest.split_at_mut(udp::HEADER_LEN);
    ipv4_repr(src, dst, IpProtocol::UDP, udp_len).emit(&mut ipv4::Packet::new_unchecked(ip_bytes));
    udp::Repr { src_port: 5000, dst_port: 5001 }.emit(&mut udp::Packet::new_unchecked(udp_bytes), payload_len);
    payload.fill(0);
    Ok(())
}

fn ipv4_repr(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload_len: usize) -> ipv4::Repr {
    ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len,
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        options: ipv4::Options::default(),
    }
}

/// Prepends an IPv4 header over the packet's data.
pub fn push_ipv4(pkt: &mut HeapPkt, src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol) -> Result<(), TrafficError> {
    let repr = ipv4_repr(src, dst, protocol, pkt.len());
    let header = pkt.prepend(repr.buffer_len()).ok_or(TrafficError::NoRoom("outer IPv4"))?;
    repr.emit(&mut ipv4::Packet::new_unchecked(header));
    Ok(())
}

/// Prepends an untagged Ethernet header carrying IPv4.
pub fn push_ethernet(pkt: &mut HeapPkt, dst: [u8; 6], src: [u8; 6]) -> Result<(), TrafficError> {
    let repr =
        ethernet::Repr { src_addr: Address(src), dst_addr: Address(dst), vlan: None, ethertype: EtherType::IPV4 };
    let header = pkt.prepend(repr.buffer_len()).ok_or(TrafficError::NoRoom("Ethernet"))?;
    repr.emit(&mut ethernet::Packet::new_unchecked(header));
    Ok(())
}
