//! ESP security associations: cold configuration, the published database, and the worker-owned runtime.
//!
//! Layer: between the control plane (IKE installs SAs) and the ESP transform ([`crate::esp`]).
//!
//! - [`SaConfig`] is what IKE negotiated (RFC 4301 §4.4.2.1 SAD fields that the data plane needs).
//! - [`Sa`] is a config with its keys expanded ([`SaKeys`]) and a generation number unique in the process.
//!   [`SaDb`] is the immutable table the control plane publishes with the other tables: [`SaIndex`] →
//!   [`Sa`], plus inbound SPI → [`SaIndex`]. Cloning it is one reference-count increment; building a new
//!   one from the old ([`SaDb::to_builder`]) shares the unchanged SAs.
//! - [`SaRt`] is the hot state of one SA, written by the one worker that owns the SA: the outbound
//!   sequence counter (RFC 4303 §3.3.3: never reused, the SA stops at 2^32-1, or 2^64-1 with ESN), the
//!   anti-replay window (RFC 4303 §3.4.3; ESN high-bit inference per Appendix A2), packet/byte counters and
//!   lifetimes (RFC 4301 §4.4.2.1). [`SaRtTable`] holds them by [`SaIndex`] and resets an entry when the SA
//!   published at that index changes (new generation). Soft and hard events ([`SaEvent`]) are raised
//!   exactly once per SA and queued for the pipeline to forward to the control plane.
//!
//! Nothing here allocates per packet: an [`SaRt`] allocates its window bitmap when it is (re)created, i.e.
//! once per SA per worker.

use core::hash::{BuildHasherDefault, Hasher};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use thiserror::Error;

use crate::crypto::{Backend, CipherConfig, CryptoError, SaKeys};
use crate::ids::{SaIndex, TunnelId, WorkerId};

/// Smallest anti-replay window accepted, in packets (RFC 4303 §3.4.3 says 32 minimum, 64 recommended).
pub const MIN_REPLAY_WINDOW: u32 = 64;
/// Largest anti-replay window accepted, in packets.
pub const MAX_REPLAY_WINDOW: u32 = 4096;
/// Largest [`SaIndex`] an [`SaDb`] takes (indices are dense, chosen by the control plane).
pub const MAX_SA_INDEX: u32 = (1 << 22) - 1;

/// Which way an SA protects traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Decrypts what peers send.
    Inbound,
    /// Encrypts what we send.
    Outbound,
}

/// ESP mode (RFC 4303 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Protects the payload of the outer IP packet (GRE, for DMVPN).
    Transport,
    /// Protects a whole inner IP packet.
    Tunnel,
}

/// Byte and packet limits; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Payload bytes (before padding) protected by the SA.
    pub bytes: Option<u64>,
    /// Packets protected by the SA.
    pub packets: Option<u64>,
}

/// UDP encapsulation ports when NAT is in the path (RFC 3948).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NattPorts {
    /// Our UDP port (4500 normally).
    pub local: u16,
    /// The peer's UDP port as the NAT shows it.
    pub peer: u16,
}

/// An SA as the control plane configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaConfig {
    /// Security Parameters Index (RFC 4303 §2.1); for inbound SAs, the one we chose.
    pub spi: u32,
    /// Inbound or outbound.
    pub direction: Direction,
    /// Transport or tunnel mode.
    pub mode: Mode,
    /// Cipher suite and keys.
    pub cipher: CipherConfig,
    /// Extended (64-bit) sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Anti-replay window in packets, [`MIN_REPLAY_WINDOW`]..=[`MAX_REPLAY_WINDOW`] (used inbound).
    pub replay_window: u32,
    /// Soft lifetime: reaching it raises an event (IKE rekeys).
    pub soft: Limits,
    /// Hard lifetime: reaching it raises an event and the SA stops.
    pub hard: Limits,
    /// The mGRE tunnel the SA belongs to.
    pub tunnel: TunnelId,
    /// Our NBMA (outer) address.
    pub local: IpAddr,
    /// The peer's NBMA (outer) address.
    pub peer: IpAddr,
    /// UDP encapsulation, when NAT was detected.
    pub natt: Option<NattPorts>,
    /// The worker that owns the SA's runtime state (the single writer).
    pub owner: WorkerId,
}

/// Why an SA or an SA database was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SaError {
    /// Replay window outside 64..=4096.
    #[error("SA spi {spi:#010x}: replay_window {size} is outside {MIN_REPLAY_WINDOW}..={MAX_REPLAY_WINDOW}")]
    ReplayWindow {
        /// The SA.
        spi: u32,
        /// The size asked for.
        size: u32,
    },
    /// SPI 0 is reserved (RFC 4303 §2.1).
    #[error("SA spi 0x00000000: SPI 0 is reserved (RFC 4303 section 2.1)")]
    SpiZero,
    /// A soft limit not below its hard limit would never fire before the SA dies.
    #[error("SA spi {spi:#010x}: soft {what} lifetime {soft} is not below the hard one {hard}")]
    SoftNotBelowHard {
        /// The SA.
        spi: u32,
        /// "bytes" or "packets".
        what: &'static str,
        /// Soft limit.
        soft: u64,
        /// Hard limit.
        hard: u64,
    },
    /// Key expansion failed.
    #[error("SA spi {spi:#010x}: {source}")]
    Crypto {
        /// The SA.
        spi: u32,
        /// What the backend said.
        source: CryptoError,
    },
    /// Two inbound SAs with one SPI.
    #[error("inbound SPI {spi:#010x} is used by SA index {first} and SA index {second}")]
    DuplicateSpi {
        /// The SPI.
        spi: u32,
        /// One SA holding it.
        first: u32,
        /// The other.
        second: u32,
    },
    /// Index above [`MAX_SA_INDEX`].
    #[error("SA index {0} is above the maximum {MAX_SA_INDEX}")]
    IndexTooLarge(u32),
}

impl SaConfig {
    /// Checks the fields that the data plane relies on.
    pub fn validate(&self) -> Result<(), SaError> {
        if self.spi == 0 {
            return Err(SaError::SpiZero);
        }
        if !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&self.replay_window) {
            return Err(SaError::ReplayWindow { spi: self.spi, size: self.replay_window });
        }
        let pairs = [("bytes", self.soft.bytes, self.hard.bytes), ("packets", self.soft.packets, self.hard.packets)];
        for (what, soft, hard) in pairs {
            if let (Some(soft), Some(hard)) = (soft, hard) {
                if soft >= hard {
                    return Err(SaError::SoftNotBelowHard { spi: self.spi, what, soft, hard });
                }
            }
        }
        Ok(())
    }

    /// Highest sequence number the SA may send (RFC 4303 §3.3.3).
    pub const fn max_seq(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u32::MAX as u64
        }
    }
}

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// An SA ready for the data plane: its config, its expanded keys, and a generation unique in the process.
///
/// `repr(C)` keeps the fields in this order: the generation and the config, which the pipeline reads
/// for every packet before it needs the keys, share the first cache lines.
#[derive(Debug)]
#[repr(C)]
pub struct Sa {
    generation: u64,
    config: SaConfig,
    keys: SaKeys,
    counters: SaCounters,
}

/// The counters of one SA that management reads while the workers run (`show crypto ipsec sa`). The
/// SA's owner worker writes them; on their own cache line so that the writes do not disturb readers
/// of the config.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct SaCounters {
    packets: AtomicU64,
    bytes: AtomicU64,
    replay_drops: AtomicU64,
    auth_failures: AtomicU64,
}

impl SaCounters {
    /// Packets protected (outbound) or authenticated and accepted (inbound).
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Their payload bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Inbound packets dropped as replays or outside the window.
    pub fn replay_drops(&self) -> u64 {
        self.replay_drops.load(Ordering::Relaxed)
    }

    /// Inbound packets whose integrity check failed.
    pub fn auth_failures(&self) -> u64 {
        self.auth_failures.load(Ordering::Relaxed)
    }

    /// Counts `packets` packets of `bytes` bytes in all. Only the SA's owner worker calls it, so a load
    /// and a store do (no locked read-modify-write on the packet path); the sums survive the SA moving
    /// to another worker, which starts a fresh [`SaRt`].
    #[inline]
    fn add(&self, packets: u64, bytes: u64) {
        self.packets.store(self.packets.load(Ordering::Relaxed) + packets, Ordering::Relaxed);
        self.bytes.store(self.bytes.load(Ordering::Relaxed).saturating_add(bytes), Ordering::Relaxed);
    }

    /// Counts an inbound replay drop.
    pub fn count_replay_drop(&self) {
        self.replay_drops.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an inbound integrity failure.
    pub fn count_auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }
}

impl Sa {
    /// Validates `config` and expands its keys for `backend`. `iv_seed` must be fresh random bytes (the
    /// control plane injects them); they key the CBC IV generator.
    pub fn new(config: SaConfig, backend: Backend, iv_seed: [u8; 16]) -> Result<Self, SaError> {
        config.validate()?;
        let keys = SaKeys::new(&config.cipher, backend, iv_seed)
            .map_err(|source| SaError::Crypto { spi: config.spi, source })?;
        let generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
        Ok(Self { config, keys, generation, counters: SaCounters::default() })
    }

    /// The configuration.
    pub fn config(&self) -> &SaConfig {
        &self.config
    }

    /// The expanded keys.
    pub fn keys(&self) -> &SaKeys {
        &self.keys
    }

    /// Its traffic counters.
    pub fn counters(&self) -> &SaCounters {
        &self.counters
    }

    /// Identifies this SA instance; a new [`Sa`] at the same index has a different one.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// Hashes an SPI by a multiply: SPIs of inbound SAs are chosen by us at random, so no flooding risk, and
/// SipHash would cost more than the rest of the lookup.
#[derive(Default)]
struct SpiHasher(u64);

impl Hasher for SpiHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[derive(Debug, Default)]
struct SaDbInner {
    sas: Vec<Option<Arc<Sa>>>,
    /// What the pipeline reads of every SA on the way to the crypto batch, dense beside `sas`: at 100,000
    /// peers a read of the `Sa` itself is a cache miss per packet, a read here mostly is not.
    hot: Vec<Option<SaHot>>,
    by_spi: HashMap<u32, SaIndex, BuildHasherDefault<SpiHasher>>,
}

/// The per-packet facts of an SA: mode, NAT-T ports, and the sizes its ESP encapsulation adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaHot {
    /// Transport or tunnel mode.
    pub mode: Mode,
    /// UDP encapsulation, when NAT was detected.
    pub natt: Option<NattPorts>,
    /// Bytes of IV on the wire.
    pub iv_len: u8,
    /// Bytes of ICV on the wire.
    pub icv_len: u8,
    /// What the encrypted part must be a multiple of: a power of two (4 or 16).
    pub align: u8,
    /// The worker that owns the runtime state; other workers hand the SA's packets to it.
    pub owner: WorkerId,
}

impl SaHot {
    fn of(config: &SaConfig) -> Self {
        // IV ≤ 16, ICV ≤ 16, alignment ≤ 16: all fit in a byte.
        Self {
            mode: config.mode,
            natt: config.natt,
            iv_len: config.cipher.iv_len() as u8,
            icv_len: config.cipher.icv_len() as u8,
            align: config.cipher.align() as u8,
            owner: config.owner,
        }
    }
}

/// The published, immutable SA table. Clone is cheap (one `Arc`).
#[derive(Debug, Clone, Default)]
pub struct SaDb {
    inner: Arc<SaDbInner>,
}

impl SaDb {
    /// An empty builder.
    pub fn builder() -> SaDbBuilder {
        SaDbBuilder { sas: Vec::new() }
    }

    /// A builder holding this table's SAs (shared, not copied), to publish a changed table.
    pub fn to_builder(&self) -> SaDbBuilder {
        SaDbBuilder { sas: self.inner.sas.clone() }
    }

    /// The SA at `index`.
    #[inline]
    pub fn get(&self, index: SaIndex) -> Option<&Sa> {
        self.inner.sas.get(index.0 as usize)?.as_deref()
    }

    /// The per-packet facts of the SA at `index`, without touching the SA itself.
    #[inline]
    pub fn hot(&self, index: SaIndex) -> Option<&SaHot> {
        self.inner.hot.get(index.0 as usize)?.as_ref()
    }

    /// Asks the CPU to start loading the SA at `index` (its config and keys), so that a burst's misses
    /// overlap instead of following one another.
    #[inline]
    pub fn prefetch(&self, index: SaIndex) {
        if let Some(sa) = self.get(index) {
            crate::prefetch::prefetch(sa);
        }
    }

    /// Asks the CPU to start loading what leads to the SA at `index`: its per-packet facts ([`Self::hot`])
    /// and the pointer to it, the step before [`Self::prefetch`] can follow that pointer.
    #[inline]
    pub fn prefetch_slot(&self, index: SaIndex) {
        let i = index.0 as usize;
        if let (Some(hot), Some(slot)) = (self.inner.hot.get(i), self.inner.sas.get(i)) {
            crate::prefetch::prefetch(hot);
            crate::prefetch::prefetch(slot);
        }
    }

    /// The inbound SA with this SPI (RFC 4301 §4.1: for unicast, the SPI alone selects the SA).
    #[inline]
    pub fn lookup_inbound(&self, spi: u32) -> Option<SaIndex> {
        self.inner.by_spi.get(&spi).copied()
    }

    /// One past the highest index in use (the size a per-worker table needs).
    pub fn slots(&self) -> usize {
        self.inner.sas.len()
    }
}

/// Collects SAs for a new [`SaDb`].
#[derive(Debug, Default)]
pub struct SaDbBuilder {
    sas: Vec<Option<Arc<Sa>>>,
}

impl SaDbBuilder {
    /// Puts `sa` at `index`, returning the SA it replaces.
    pub fn insert(&mut self, index: SaIndex, sa: Arc<Sa>) -> Result<Option<Arc<Sa>>, SaError> {
        if index.0 > MAX_SA_INDEX {
            return Err(SaError::IndexTooLarge(index.0));
        }
        let slot = index.0 as usize;
        if slot >= self.sas.len() {
            self.sas.resize(slot + 1, None);
        }
        Ok(self.sas[slot].replace(sa))
    }

    /// Withdraws the SA at `index`.
    pub fn remove(&mut self, index: SaIndex) -> Option<Arc<Sa>> {
        self.sas.get_mut(index.0 as usize)?.take()
    }

    /// Builds the table; refuses two inbound SAs with one SPI.
    pub fn build(mut self) -> Result<SaDb, SaError> {
        while matches!(self.sas.last(), Some(None)) {
            self.sas.pop();
        }
        let mut by_spi = HashMap::default();
        for (i, sa) in self.sas.iter().enumerate() {
            let Some(sa) = sa else { continue };
            if sa.config.direction != Direction::Inbound {
                continue;
            }
            // `i` is at most MAX_SA_INDEX, so it fits in u32.
            let index = SaIndex(i as u32);
            if let Some(first) = by_spi.insert(sa.config.spi, index) {
                return Err(SaError::DuplicateSpi { spi: sa.config.spi, first: first.0, second: index.0 });
            }
        }
        let hot = self.sas.iter().map(|sa| sa.as_ref().map(|sa| SaHot::of(&sa.config))).collect();
        Ok(SaDb { inner: Arc::new(SaDbInner { sas: self.sas, hot, by_spi }) })
    }
}

/// What happened to an SA that the control plane must hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaEventKind {
    /// Soft byte lifetime reached: rekey.
    SoftBytes,
    /// Hard byte lifetime reached: the SA is dead.
    HardBytes,
    /// Soft packet lifetime reached: rekey.
    SoftPackets,
    /// Hard packet lifetime reached: the SA is dead.
    HardPackets,
    /// Outbound sequence number past 7/8 of its space: rekey.
    SeqNearExhaustion,
    /// The last sequence number was used (RFC 4303 §3.3.3): the SA is dead.
    SeqExhausted,
    /// Outbound traffic used the SA: raised at its first packet, then at most once per
    /// [`USED_REPORT_NS`] while traffic flows (the control plane refreshes the NHRP entries it carries).
    Used,
}

/// How often, at most, an outbound SA in use raises [`SaEventKind::Used`].
pub const USED_REPORT_NS: u64 = 5_000_000_000;

impl SaEventKind {
    const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Stable snake-case name, as management and the replay tool print it.
    pub const fn name(self) -> &'static str {
        match self {
            SaEventKind::SoftBytes => "soft_bytes",
            SaEventKind::HardBytes => "hard_bytes",
            SaEventKind::SoftPackets => "soft_packets",
            SaEventKind::HardPackets => "hard_packets",
            SaEventKind::SeqNearExhaustion => "seq_near_exhaustion",
            SaEventKind::SeqExhausted => "seq_exhausted",
            SaEventKind::Used => "used",
        }
    }
}

/// An SA event: each lifetime and sequence kind is raised at most once per SA, [`SaEventKind::Used`] periodically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SaEvent {
    /// Which SA.
    pub sa: SaIndex,
    /// What happened.
    pub kind: SaEventKind,
}

/// The hot, worker-owned state of one SA.
#[derive(Debug)]
pub struct SaRt {
    generation: u64,
    /// Outbound: the last sequence number handed out (0: none yet). Inbound: the highest authenticated
    /// sequence number, the right edge of the replay window ("T" in RFC 4303 Appendix A2).
    seq: u64,
    /// Inbound replay bitmap (RFC 6479 layout: a ring of 64-bit words indexed by sequence number, one
    /// spare word so advancing clears whole words). Length is a power of two. Empty for outbound SAs.
    window: Box<[u64]>,
    window_size: u64,
    packets: u64,
    bytes: u64,
    /// The next packet and byte counts at which a soft or hard lifetime is reached: one comparison per
    /// packet instead of four.
    next_limit: (u64, u64),
    fired: u8,
    expired: bool,
    /// Outbound: when the next [`SaEventKind::Used`] may be raised.
    next_used_ns: u64,
}

/// The smallest soft or hard (packet, byte) limits of `cfg` above `packets` and `bytes` (`u64::MAX`:
/// none left).
fn next_limits(cfg: &SaConfig, packets: u64, bytes: u64) -> (u64, u64) {
    let above = |count: u64, limits: [Option<u64>; 2]| limits.into_iter().flatten().filter(|&l| l > count).min();
    (
        above(packets, [cfg.soft.packets, cfg.hard.packets]).unwrap_or(u64::MAX),
        above(bytes, [cfg.soft.bytes, cfg.hard.bytes]).unwrap_or(u64::MAX),
    )
}

impl SaRt {
    fn new(sa: &Sa) -> Self {
        let cfg = &sa.config;
        let words = match cfg.direction {
            Direction::Inbound => (cfg.replay_window.div_ceil(64) as usize + 1).next_power_of_two(),
            Direction::Outbound => 0,
        };
        Self {
            generation: sa.generation,
            seq: 0,
            window: vec![0; words].into_boxed_slice(),
            window_size: u64::from(cfg.replay_window),
            packets: 0,
            bytes: 0,
            // The first packet finds the limits.
            next_limit: (0, 0),
            fired: 0,
            expired: false,
            next_used_ns: 0,
        }
    }

    /// Outbound: last sequence number sent. Inbound: highest sequence number accepted.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Packets protected (outbound) or authenticated (inbound).
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Payload bytes protected or authenticated.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the SA passed its hard lifetime or ran out of sequence numbers.
    pub fn is_expired(&self) -> bool {
        self.expired
    }

    fn bit(&self, seq: u64) -> (usize, u64) {
        let nbits = self.window.len() as u64 * 64;
        let pos = seq & (nbits - 1);
        ((pos / 64) as usize, 1 << (pos % 64))
    }

    fn is_marked(&self, seq: u64) -> bool {
        let (w, m) = self.bit(seq);
        self.window.get(w).is_some_and(|word| word & m != 0)
    }
}

/// A worker's [`SaRt`]s, by [`SaIndex`], plus the queue of events they raised.
#[derive(Debug, Default)]
pub struct SaRtTable {
    rts: Vec<Option<SaRt>>,
    events: Vec<SaEvent>,
    now_ns: u64,
}

impl SaRtTable {
    /// An empty table with room for `slots` SAs and a few events.
    pub fn with_capacity(slots: usize) -> Self {
        Self { rts: Vec::with_capacity(slots), events: Vec::with_capacity(64), now_ns: 0 }
    }

    /// Sets the clock (nanoseconds, any epoch) that paces [`SaEventKind::Used`]; the worker calls it
    /// once per poll.
    pub fn set_clock(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
    }

    /// The runtime state of `index` in `db`, (re)created if the SA there is new or changed. `None` if `db`
    /// has no SA at `index`. Growing the table (first use of a high index) allocates; call
    /// [`SaRtTable::reserve`] when a new [`SaDb`] is published to keep that off the packet path.
    // Small (the rare part is `renew`) so that it inlines: returned through memory, the entry was read
    // back before its stores retired, a stall on every run of packets.
    #[inline]
    pub fn entry<'t, 'd>(&'t mut self, db: &'d SaDb, index: SaIndex) -> Option<SaEntry<'t, 'd>> {
        let sa = db.get(index)?;
        let slot = index.0 as usize;
        if self.rts.get(slot).and_then(Option::as_ref).map(|r| r.generation) != Some(sa.generation) {
            self.renew(slot, sa);
        }
        let rt = self.rts.get_mut(slot)?.as_mut()?;
        // The clock does not move while the entry lives, so whether its traffic is due to raise `Used` is
        // known now, once per entry (a run of packets) rather than per packet.
        let use_due = self.now_ns >= rt.next_used_ns && sa.config.direction == Direction::Outbound;
        Some(SaEntry { index, sa, rt, events: &mut self.events, now_ns: self.now_ns, use_due, unpublished: (0, 0) })
    }

    /// Fresh state for `sa` in `slot`: its first use, or the SA there changed.
    #[cold]
    fn renew(&mut self, slot: usize, sa: &Sa) {
        if slot >= self.rts.len() {
            self.rts.resize_with(slot + 1, || None);
        }
        if let Some(rt) = self.rts.get_mut(slot) {
            *rt = Some(SaRt::new(sa));
        }
    }

    /// Makes room for every index of `db`.
    pub fn reserve(&mut self, db: &SaDb) {
        if self.rts.len() < db.slots() {
            self.rts.resize_with(db.slots(), || None);
        }
    }

    /// Asks the CPU to start loading the runtime state of `index` (see [`SaDb::prefetch`]).
    #[inline]
    pub fn prefetch(&self, index: SaIndex) {
        if let Some(Some(rt)) = self.rts.get(index.0 as usize) {
            crate::prefetch::prefetch(rt);
            if let Some(word) = rt.window.first() {
                crate::prefetch::prefetch(word);
            }
        }
    }

    /// The state of `index`, if this worker has touched it (stale if the SA there changed since).
    pub fn get(&self, index: SaIndex) -> Option<&SaRt> {
        self.rts.get(index.0 as usize)?.as_ref()
    }

    /// Takes the queued events, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, SaEvent> {
        self.events.drain(..)
    }
}

/// One SA's config and runtime state, borrowed from an [`SaDb`] and an [`SaRtTable`].
///
/// The packets and bytes it accounts reach the SA's shared [`SaCounters`] when it is dropped: one write
/// per run of packets instead of one per packet to a line that management reads.
#[derive(Debug)]
pub struct SaEntry<'t, 'd> {
    index: SaIndex,
    /// The published SA.
    pub sa: &'d Sa,
    rt: &'t mut SaRt,
    events: &'t mut Vec<SaEvent>,
    now_ns: u64,
    /// Outbound, and [`USED_REPORT_NS`] passed since the last [`SaEventKind::Used`]: the next packet
    /// accounted raises it.
    use_due: bool,
    /// Packets and bytes accounted and not yet added to the SA's [`SaCounters`].
    unpublished: (u64, u64),
}

impl Drop for SaEntry<'_, '_> {
    fn drop(&mut self) {
        let (packets, bytes) = self.unpublished;
        if packets > 0 {
            self.sa.counters.add(packets, bytes);
        }
    }
}

impl SaEntry<'_, '_> {
    /// The runtime state.
    pub fn rt(&self) -> &SaRt {
        self.rt
    }

    fn raise(&mut self, kind: SaEventKind) {
        if self.rt.fired & kind.bit() == 0 {
            self.rt.fired |= kind.bit();
            self.events.push(SaEvent { sa: self.index, kind });
        }
    }

    /// Outbound: continues after sequence number `last`, so that numbers stay unique when an SA's state
    /// moves (to another worker, or across a restart that kept the SA). Never moves backwards.
    pub fn resume_after(&mut self, last: u64) {
        self.rt.seq = self.rt.seq.max(last);
    }

    /// Hands out the next outbound sequence number (RFC 4303 §3.3.3): 1, 2, ..., up to 2^32-1 (2^64-1
    /// with ESN), never one twice. `None` once the SA is expired or the space is used up. Raises
    /// [`SaEventKind::SeqNearExhaustion`] at 7/8 of the space and [`SaEventKind::SeqExhausted`] when the
    /// last number goes out.
    #[inline]
    pub fn next_seq(&mut self) -> Option<u64> {
        if self.rt.expired {
            return None;
        }
        let max = self.sa.config.max_seq();
        let seq = self.rt.seq.checked_add(1).filter(|s| *s <= max)?;
        self.rt.seq = seq;
        if seq >= max - max / 8 {
            self.raise(SaEventKind::SeqNearExhaustion);
        }
        if seq == max {
            self.raise(SaEventKind::SeqExhausted);
            self.rt.expired = true;
        }
        Some(seq)
    }

    /// The full sequence number of a received packet whose header says `seq_lo`, if the replay window
    /// lets it through (RFC 4303 §3.4.3). With ESN the high half is inferred from the window (RFC 4303
    /// Appendix A2.2). Does not change the window: call [`SaEntry::accept`] once the ICV verified.
    pub fn check_replay(&self, seq_lo: u32) -> Option<u64> {
        let rt = &*self.rt;
        let top = rt.seq;
        let seq = if self.sa.config.esn {
            // Appendix A2.2; W <= 4096 so `w1` fits.
            let (tl, th) = (top as u32, (top >> 32) as u32);
            let w1 = (rt.window_size - 1) as u32;
            let hi = if tl >= w1 {
                // Case A: the window lies within one epoch of 2^32.
                if seq_lo >= tl - w1 {
                    th
                } else {
                    th.checked_add(1)?
                }
            } else if seq_lo >= tl.wrapping_sub(w1) {
                // Case B: the window spans the wrap; a high seq_lo belongs to the previous epoch.
                th.checked_sub(1)?
            } else {
                th
            };
            u64::from(hi) << 32 | u64::from(seq_lo)
        } else {
            u64::from(seq_lo)
        };
        // Sequence number 0 is never sent (RFC 4303 §3.3.3: the first packet has 1).
        if seq == 0 {
            return None;
        }
        if seq > top {
            return Some(seq);
        }
        if top - seq >= rt.window_size || rt.is_marked(seq) {
            return None;
        }
        Some(seq)
    }

    /// Records an authenticated packet's sequence number in the window, sliding it if the number is new
    /// (RFC 4303 §3.4.3). `false` if the number is a replay after all (a duplicate earlier in the same
    /// burst took it) or fell out of the window.
    pub fn accept(&mut self, seq: u64) -> bool {
        let rt = &mut *self.rt;
        if seq == 0 || rt.window.is_empty() {
            return false;
        }
        if seq > rt.seq {
            let (old_word, new_word) = (rt.seq / 64, seq / 64);
            let n = rt.window.len() as u64;
            if new_word - old_word >= n {
                rt.window.fill(0);
            } else {
                for w in old_word + 1..=new_word {
                    rt.window[(w & (n - 1)) as usize] = 0;
                }
            }
            rt.seq = seq;
        } else if rt.seq - seq >= rt.window_size || rt.is_marked(seq) {
            return false;
        }
        let (w, m) = rt.bit(seq);
        rt.window[w] |= m;
        true
    }

    /// Counts one packet of `bytes` payload bytes against the lifetimes (RFC 4301 §4.4.2.1), raising
    /// each soft/hard event once. Reaching a hard limit expires the SA: this packet is the last one.
    /// Outbound, it also raises [`SaEventKind::Used`] at most once per [`USED_REPORT_NS`].
    #[inline]
    pub fn account(&mut self, bytes: usize) {
        if self.use_due {
            self.use_due = false;
            self.rt.next_used_ns = self.now_ns.saturating_add(USED_REPORT_NS);
            self.events.push(SaEvent { sa: self.index, kind: SaEventKind::Used });
        }
        self.rt.packets += 1;
        self.rt.bytes = self.rt.bytes.saturating_add(bytes as u64);
        let (packets, total) = (self.rt.packets, self.rt.bytes);
        self.unpublished = (self.unpublished.0 + 1, self.unpublished.1.saturating_add(bytes as u64));
        if packets >= self.rt.next_limit.0 || total >= self.rt.next_limit.1 {
            self.reach_limits(packets, total);
        }
    }

    /// Raises the lifetime events that `packets` and `total` bytes reach, and moves the next limits on.
    #[cold]
    fn reach_limits(&mut self, packets: u64, total: u64) {
        let cfg = &self.sa.config;
        let (soft, hard) = (cfg.soft, cfg.hard);
        if soft.bytes.is_some_and(|l| total >= l) {
            self.raise(SaEventKind::SoftBytes);
        }
        if soft.packets.is_some_and(|l| packets >= l) {
            self.raise(SaEventKind::SoftPackets);
        }
        if hard.bytes.is_some_and(|l| total >= l) {
            self.raise(SaEventKind::HardBytes);
            self.rt.expired = true;
        }
        if hard.packets.is_some_and(|l| packets >= l) {
            self.raise(SaEventKind::HardPackets);
            self.rt.expired = true;
        }
        self.rt.next_limit = next_limits(&self.sa.config, packets, total);
    }

    /// Whether the SA may no longer be used.
    pub fn is_expired(&self) -> bool {
        self.rt.expired
    }

    /// Moves the outbound counter, for tests that start near the end of the sequence space.
    #[cfg(test)]
    pub(crate) fn set_seq(&mut self, seq: u64) {
        self.rt.seq = seq;
    }
}

#[cfg(test)]
pub(crate) mod tests;
