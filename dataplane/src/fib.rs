//! Longest-prefix-match FIBs for IPv4 and IPv6 (one pair per VRF): prefix → [`NextHopId`].
//!
//! Layer: forwarding tables, read by workers on the hot path, written by the control plane only.
//!
//! # Contract
//! - [`Fib::lookup`] and [`Fib::lookup_bulk`] allocate nothing, take no lock and cannot fail: a miss is
//!   `None` (the pipeline counts [`crate::drop::DropReason::NoRoute`]).
//! - A [`Fib`] is immutable once published. The control plane owns a [`FibBuilder`], changes it, and
//!   takes [`FibBuilder::snapshot`] (an `Arc<Fib>`); snapshots taken earlier never change.
//! - Longest match as RFC 1812 §5.2.4.3 (IPv4) and RFC 4291 §2.5 / RFC 8200 (IPv6) describe it: of the
//!   prefixes that cover the destination, the longest wins; `/0` is the default route.
//!
//! # Design: a multibit trie over copy-on-write chunks
//! Each address is cut into strides ([`Family::STRIDES`]): IPv4 24-8 (DPDK's DIR-24-8: a route up to
//! /24 costs one table read, a longer one two), IPv6 16-8-8-4-4-4-4-8-…-8 (4-bit strides between /32 and
//! /48, where most of the IPv6 table lives, keep a /48 from costing whole 256-entry groups). Every
//! prefix is expanded into the entries of its stride (controlled prefix expansion); an entry is one
//! `u32`: a leaf (next hop + the length of the prefix that wrote it, so that a shorter prefix never
//! overwrites a longer one and a removal knows which entries were its own) or a link to the group of the
//! next stride. All entries live in one array cut into 16 KiB chunks, each behind an `Arc`:
//! publishing is cloning the chunk pointer vector, and the next change copies only the chunks it writes
//! (`Arc::make_mut`). Readers hold their snapshot; nothing they read is ever written.
//!
//! [`Fib::lookup_bulk`] walks a batch level by level: all first-level reads of the batch are issued
//! before any second-level read, so the CPU keeps many independent cache misses in flight (what DPDK's
//! `rte_lpm_lookupx4` does with SIMD) without `unsafe` prefetches.
//!
//! Alternatives considered: rebuilding or cloning the whole table per publish costs O(table) per change
//! (64 MiB for the IPv4 first level alone, ≈ 10 ms); per-worker replicas fed by rings cost N× memory and
//! every worker pays each update. Path copying over chunks makes a publish cost O(chunks written) plus a
//! pointer-vector clone (4096 pointers for IPv4), measured below.
//!
//! # Measured (this session)
//! `cargo bench -p perf --bench fib -- --warm-up-time 1 --measurement-time 2` on the 2-core shared AMD
//! EPYC build machine, other builds running beside it: expect ±30 %. Route sets are random but shaped
//! like the Internet table (`perf/benches/fib.rs`): IPv4 /8–/32 with /24 55 %, /22–/23 20 %, /16–/21
//! 15 %, /25–/31 4 %, /32 host routes 5 % clustered in overlay /16s as NHRP installs them; IPv6 /32–/128
//! with /48 45 %, /32–/44 35 %, /56–/64 15 %, /128 5 % clustered in overlay /64s. Lookups go to a
//! random address inside a random route, 2^20 of them per run so that they do not stay in cache.
//!
//! | table          | single ns/lookup | bulk ns/lookup | trie memory | route list (control) | build |
//! |----------------|-----------------:|---------------:|------------:|---------------------:|------:|
//! | IPv4 1k        |              3.8 |            3.8 |     64 MiB¹ |                    — | 10 ms |
//! | IPv4 100k      |              7.0 |           10.0² |     70 MiB |              1.1 MiB | 81 ms |
//! | IPv4 1M        |             11.1 |           11.1 |    105 MiB |               12 MiB | 1.2 s |
//! | IPv6 1k        |               28 |             23 |    2.5 MiB |                    — | 0.4 ms |
//! | IPv6 100k      |              155 |             98 |     67 MiB |              2.7 MiB | 58 ms |
//! | IPv6 1M (917k) |              522 |            141 |    368 MiB |               21 MiB | 3.3 s |
//!
//! ¹ the /24 first level is 64 MiB once written; an unused VRF shares one zeroed chunk (32 KiB of
//! pointers). ² noise: IPv4 is at most two dependent reads and the out-of-order core already overlaps
//! independent single lookups; the level-by-level walk pays off for IPv6 (up to 17 levels): 3.7× at 1M.
//!
//! Apply + publish into the 1M-route table while the previous snapshot is held (half additions, half
//! withdrawals of random routes): IPv4 batch of 1: 66 µs, batch of 1,000: 2.5 ms (2.5 µs per change);
//! IPv6 batch of 1: 300 µs, batch of 1,000: 4.3 ms. A batch of 1 is dominated by cloning the chunk
//! pointer vector (6,700 chunks for IPv4, 23,500 for IPv6) and copying the one or two 16 KiB chunks
//! written; a full clone of the IPv4 trie would move 105 MiB per publish (≈ 10–20 ms), so path copying
//! wins from the first change, and readers never wait for the writer nor the writer for readers (which
//! per-worker replicas or a left-right double buffer would need).
//!
//! Known cost: 1M random IPv6 routes take 368 MiB (about 400 B per route, the 256-entry groups below
//! /48); a deployment with a full IPv6 table per VRF should budget for it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Index of a next hop in the published next-hop table ([`crate::tables::Tables::next_hop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NextHopId(pub u32);

impl NextHopId {
    /// The largest id an entry can hold (23 bits, minus the "no route" code).
    pub const MAX: u32 = NH_MASK - 1;
}

/// A route change the FIB refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FibError {
    /// Prefix length longer than the address.
    #[error("prefix length {len} out of range (0..={max})")]
    PrefixLength { len: u8, max: u8 },
    /// Address bits set beyond the prefix length (IOS: "Inconsistent address and mask").
    #[error("prefix {prefix}/{len} has host bits set; the network is {network}/{len}")]
    HostBits { prefix: IpAddr, len: u8, network: IpAddr },
    /// Next-hop index too large for an entry.
    #[error("next hop id {id} out of range (at most {max})", max = NextHopId::MAX)]
    NextHopRange { id: u32 },
}

/// An address family: the key type and the strides of its trie.
pub trait Family: Copy + Debug + Send + Sync + 'static {
    /// The address (`Ipv4Addr`, `Ipv6Addr`).
    type Addr: Copy + Debug + Into<IpAddr>;
    /// The address as an integer, most significant bit first on the wire.
    type Bits: Copy + Eq + Hash + Debug + Default + Send + Sync;
    /// Address width in bits.
    const WIDTH: u8;
    /// Bits consumed per trie level, first level first; they sum to `WIDTH`. The first may be up to 24,
    /// the others 4..=12.
    const STRIDES: &'static [u8];
    /// The address as an integer.
    fn bits(addr: Self::Addr) -> Self::Bits;
    /// The integer as an address.
    fn addr(bits: Self::Bits) -> Self::Addr;
    /// The `stride` bits of `bits` that sit `shift` bits above the least significant one.
    fn index(bits: Self::Bits, shift: u8, stride: u8) -> usize;
    /// `bits` with all but the leading `len` bits cleared (`len` above `WIDTH` counts as `WIDTH`).
    fn network(bits: Self::Bits, len: u8) -> Self::Bits;
}

/// IPv4: strides 24-8 (DIR-24-8).
#[derive(Debug, Clone, Copy)]
pub enum V4 {}

/// IPv6: strides 16-8-8 to /32, four 4-bit strides to /48, then 8-bit strides to /128.
#[derive(Debug, Clone, Copy)]
pub enum V6 {}

impl Family for V4 {
    type Addr = Ipv4Addr;
    type Bits = u32;
    const WIDTH: u8 = 32;
    const STRIDES: &'static [u8] = &[24, 8];
    #[inline]
    fn bits(addr: Ipv4Addr) -> u32 {
        u32::from(addr)
    }
    fn addr(bits: u32) -> Ipv4Addr {
        Ipv4Addr::from(bits)
    }
    #[inline]
    fn index(bits: u32, shift: u8, stride: u8) -> usize {
        ((bits >> shift) & ((1u32 << stride) - 1)) as usize
    }
    fn network(bits: u32, len: u8) -> u32 {
        bits & u32::MAX.checked_shl(32 - u32::from(len.min(32))).unwrap_or(0)
    }
}

impl Family for V6 {
    type Addr = Ipv6Addr;
    type Bits = u128;
    const WIDTH: u8 = 128;
    const STRIDES: &'static [u8] = &[16, 8, 8, 4, 4, 4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8];
    #[inline]
    fn bits(addr: Ipv6Addr) -> u128 {
        u128::from(addr)
    }
    fn addr(bits: u128) -> Ipv6Addr {
        Ipv6Addr::from(bits)
    }
    #[inline]
    fn index(bits: u128, shift: u8, stride: u8) -> usize {
        ((bits >> shift) as usize) & ((1usize << stride) - 1)
    }
    fn network(bits: u128, len: u8) -> u128 {
        bits & u128::MAX.checked_shl(128 - u32::from(len.min(128))).unwrap_or(0)
    }
}

/// The IPv4 FIB of one VRF.
pub type Fib4 = Fib<V4>;
/// The IPv6 FIB of one VRF.
pub type Fib6 = Fib<V6>;
/// Control-side builder of an IPv4 FIB.
pub type FibBuilder4 = FibBuilder<V4>;
/// Control-side builder of an IPv6 FIB.
pub type FibBuilder6 = FibBuilder<V6>;

// Entry encoding (one u32):
//   bit 31 set:   link; bits 0..31 = first entry of the child group / UNIT (groups are unit-aligned).
//   bit 31 clear: leaf; bits 23..31 = length of the prefix that wrote it, bits 0..23 = next hop + 1
//                 (0 = no route).
const EXT: u32 = 1 << 31;
const DEPTH_SHIFT: u32 = 23;
const NH_MASK: u32 = (1 << DEPTH_SHIFT) - 1;
/// Entries per allocation unit (one 64-byte cache line); every group is a whole number of units.
const UNIT_STRIDE: u8 = 4;
const UNIT: usize = 1 << UNIT_STRIDE;
const CHUNK_BITS: u32 = 12;
/// Entries per copy-on-write chunk (16 KiB).
const CHUNK: usize = 1 << CHUNK_BITS;
const CHUNK_MASK: usize = CHUNK - 1;

type Chunk = [u32; CHUNK];

#[inline]
fn leaf(nh: Option<NextHopId>, depth: u8) -> u32 {
    (u32::from(depth) << DEPTH_SHIFT) | nh.map_or(0, |n| n.0 + 1)
}

#[inline]
fn leaf_depth(e: u32) -> u8 {
    // Leaves only: bits 23..31 hold a length ≤ 128.
    ((e >> DEPTH_SHIFT) & 0xff) as u8
}

#[inline]
fn decode(e: u32) -> Option<NextHopId> {
    (e & NH_MASK).checked_sub(1).map(NextHopId)
}

/// A published, immutable LPM table. Cheap to clone (chunks are shared).
pub struct Fib<F: Family> {
    chunks: Vec<Arc<Chunk>>,
    _family: PhantomData<F>,
}

impl<F: Family> Clone for Fib<F> {
    fn clone(&self) -> Self {
        Fib { chunks: self.chunks.clone(), _family: PhantomData }
    }
}

impl<F: Family> Debug for Fib<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fib").field("width", &F::WIDTH).field("chunks", &self.chunks.len()).finish()
    }
}

impl<F: Family> Fib<F> {
    #[inline]
    fn entry(&self, idx: usize) -> u32 {
        // Indices come from link entries the builder wrote, always inside the chunk vector.
        self.chunks[idx >> CHUNK_BITS][idx & CHUNK_MASK]
    }

    /// Asks the CPU to start loading the first-level entry of `dst` (the one every lookup reads, in a
    /// table too large to stay in cache), so that a lookup a few packets later finds it there.
    #[inline]
    pub fn prefetch(&self, dst: F::Addr) {
        let Some(&first) = F::STRIDES.first() else { return };
        let idx = F::index(F::bits(dst), F::WIDTH - first, first);
        if let Some(entry) = self.chunks.get(idx >> CHUNK_BITS).and_then(|c| c.get(idx & CHUNK_MASK)) {
            crate::prefetch::prefetch(entry);
        }
    }

    /// The next hop of the longest prefix covering `dst`, or `None` when no prefix covers it.
    #[inline]
    pub fn lookup(&self, dst: F::Addr) -> Option<NextHopId> {
        let bits = F::bits(dst);
        let mut shift = F::WIDTH;
        let mut base = 0usize;
        let mut e = 0u32;
        for &stride in F::STRIDES {
            shift -= stride;
            e = self.entry(base + F::index(bits, shift, stride));
            if e & EXT == 0 {
                break;
            }
            base = ((e & !EXT) as usize) * UNIT;
        }
        decode(e)
    }

    /// Looks up `dst[i]` into `out[i]` for every `i` below the shorter length of the two, level by level
    /// over batches of 32 so that the memory reads of different destinations overlap.
    pub fn lookup_bulk(&self, dst: &[F::Addr], out: &mut [Option<NextHopId>]) {
        const BATCH: usize = 32;
        for (dst, out) in dst.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            let mut bits = [F::Bits::default(); BATCH];
            let mut cur = [0u32; BATCH];
            let n = dst.len().min(out.len());
            let (first, rest) = F::STRIDES.split_first().unwrap_or((&0, &[]));
            let mut shift = F::WIDTH - first;
            for i in 0..n {
                bits[i] = F::bits(dst[i]);
                cur[i] = self.entry(F::index(bits[i], shift, *first));
            }
            for &stride in rest {
                if cur[..n].iter().all(|e| e & EXT == 0) {
                    break;
                }
                shift -= stride;
                for i in 0..n {
                    let e = cur[i];
                    if e & EXT != 0 {
                        let base = ((e & !EXT) as usize) * UNIT;
                        cur[i] = self.entry(base + F::index(bits[i], shift, stride));
                    }
                }
            }
            for i in 0..n {
                out[i] = decode(cur[i]);
            }
        }
    }

    /// Bytes of trie entries this table references (shared chunks counted once per table).
    pub fn memory_bytes(&self) -> usize {
        self.chunks.len() * (size_of::<Chunk>() + size_of::<Arc<Chunk>>())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Overwrite leaves written by prefixes no longer than `len`.
    Insert,
    /// Overwrite leaves written by exactly the prefix of length `len`.
    Remove,
}

#[derive(Clone, Copy)]
struct Paint {
    mode: Mode,
    len: u8,
    new: u32,
}

impl Paint {
    #[inline]
    fn applies(&self, e: u32) -> bool {
        match self.mode {
            Mode::Insert => leaf_depth(e) <= self.len,
            Mode::Remove => leaf_depth(e) == self.len,
        }
    }
}

/// The control plane's master copy of one FIB: the route list (for removals, which need the covering
/// prefix) and the trie, published with [`FibBuilder::snapshot`].
pub struct FibBuilder<F: Family> {
    fib: Arc<Fib<F>>,
    /// Routes by prefix length, keyed by network bits.
    rules: Vec<HashMap<F::Bits, NextHopId>>,
    routes: usize,
    /// First never-allocated unit.
    next_unit: usize,
    /// Freed groups (first entry index) by stride.
    free: Vec<Vec<usize>>,
}

impl<F: Family> Debug for FibBuilder<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FibBuilder").field("routes", &self.routes).field("fib", &self.fib).finish()
    }
}

impl<F: Family> Default for FibBuilder<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Family> FibBuilder<F> {
    /// An empty FIB (every lookup misses). The first level shares one zeroed chunk until written.
    pub fn new() -> Self {
        let root = 1usize << F::STRIDES[0];
        let zero: Arc<Chunk> = Arc::new([0; CHUNK]);
        let chunks = vec![zero; root.div_ceil(CHUNK)];
        FibBuilder {
            fib: Arc::new(Fib { chunks, _family: PhantomData }),
            rules: vec![HashMap::new(); usize::from(F::WIDTH) + 1],
            routes: 0,
            next_unit: root / UNIT,
            free: vec![Vec::new(); 13],
        }
    }

    /// The current (unpublished) table, for control-side lookups.
    pub fn fib(&self) -> &Fib<F> {
        &self.fib
    }

    /// The table as it is now, to publish. Later changes copy what they write and leave it alone.
    pub fn snapshot(&self) -> Arc<Fib<F>> {
        Arc::clone(&self.fib)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes
    }

    /// True when there is no route.
    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }

    /// Next hop of exactly `prefix/len`, if that route exists.
    pub fn get(&self, prefix: F::Addr, len: u8) -> Option<NextHopId> {
        let bits = F::bits(prefix);
        self.rules.get(usize::from(len))?.get(&F::network(bits, len)).copied()
    }

    /// Checks that `prefix/len` is a valid route key: length in range, no host bits set.
    pub fn check(prefix: F::Addr, len: u8) -> Result<F::Bits, FibError> {
        if len > F::WIDTH {
            return Err(FibError::PrefixLength { len, max: F::WIDTH });
        }
        let bits = F::bits(prefix);
        let network = F::network(bits, len);
        if network != bits {
            return Err(FibError::HostBits { prefix: prefix.into(), len, network: F::addr(network).into() });
        }
        Ok(bits)
    }

    /// Adds or replaces the route `prefix/len → nh`; returns the next hop it replaced.
    pub fn insert(&mut self, prefix: F::Addr, len: u8, nh: NextHopId) -> Result<Option<NextHopId>, FibError> {
        let bits = Self::check(prefix, len)?;
        if nh.0 > NextHopId::MAX {
            return Err(FibError::NextHopRange { id: nh.0 });
        }
        let old = self.rules[usize::from(len)].insert(bits, nh);
        if old.is_none() {
            self.routes += 1;
        }
        self.paint_prefix(bits, len, Paint { mode: Mode::Insert, len, new: leaf(Some(nh), len) });
        Ok(old)
    }

    /// Removes the route `prefix/len`; returns its next hop, or `None` if there was no such route.
    /// Addresses it covered fall back to the longest shorter prefix that covers them.
    pub fn remove(&mut self, prefix: F::Addr, len: u8) -> Result<Option<NextHopId>, FibError> {
        let bits = Self::check(prefix, len)?;
        let Some(old) = self.rules[usize::from(len)].remove(&bits) else {
            return Ok(None);
        };
        self.routes -= 1;
        let cover =
            (0..len).rev().find_map(|l| self.rules[usize::from(l)].get(&F::network(bits, l)).map(|nh| (l, *nh)));
        let new = cover.map_or(leaf(None, 0), |(l, nh)| leaf(Some(nh), l));
        self.paint_prefix(bits, len, Paint { mode: Mode::Remove, len, new });
        Ok(Some(old))
    }

    /// Walks down to the level whose stride ends at or after `len` (creating groups on the way when
    /// inserting), paints the prefix's range there, and on the way back up folds groups that became
    /// uniform into their parent entry.
    fn paint_prefix(&mut self, bits: F::Bits, len: u8, paint: Paint) {
        // (link entry index, level of the child group, bits consumed above the child)
        let mut path: Vec<(usize, usize, u8)> = Vec::new();
        let mut base = 0usize;
        let mut consumed = 0u8;
        for (level, &stride) in F::STRIDES.iter().enumerate() {
            let end = consumed + stride;
            let idx = F::index(bits, F::WIDTH - end, stride);
            if len <= end {
                let span = 1usize << (end - len);
                let lo = base + (idx & !(span - 1));
                self.paint_range(level, lo, span, paint);
                break;
            }
            let e = self.fib.entry(base + idx);
            let child = if e & EXT != 0 {
                ((e & !EXT) as usize) * UNIT
            } else if paint.mode == Mode::Remove {
                // Nothing longer than this entry was ever installed here; the rule cannot be below.
                break;
            } else {
                // `len > end`, so this is not the last level.
                let child = self.alloc_group(F::STRIDES[level + 1], e);
                self.set(base + idx, EXT | (child / UNIT) as u32);
                child
            };
            path.push((base + idx, level + 1, end));
            base = child;
            consumed = end;
        }
        if paint.mode == Mode::Remove {
            for (link, level, child_depth) in path.into_iter().rev() {
                let child = ((self.fib.entry(link) & !EXT) as usize) * UNIT;
                if !self.fold(link, child, F::STRIDES[level], child_depth) {
                    break;
                }
            }
        }
    }

    /// If the group at `child` (of `stride`) holds only leaves equal to each other and inherited from
    /// above (`depth <= child_depth`), puts that leaf in `link` and frees the group.
    fn fold(&mut self, link: usize, child: usize, stride: u8, child_depth: u8) -> bool {
        let size = 1usize << stride;
        let first = self.fib.entry(child);
        let uniform = first & EXT == 0
            && leaf_depth(first) <= child_depth
            && (child..child + size).all(|i| self.fib.entry(i) == first);
        if uniform {
            self.set(link, first);
            self.free[usize::from(stride)].push(child);
        }
        uniform
    }

    /// Paints entries `lo..lo+span` of `level`, descending into linked groups entirely.
    fn paint_range(&mut self, level: usize, lo: usize, span: usize, paint: Paint) {
        let mut start = lo;
        let end = lo + span;
        while start < end {
            let stop = end.min((start | CHUNK_MASK) + 1);
            let mut linked = false;
            let slice = self.slice_mut(start, stop - start);
            for e in slice.iter_mut() {
                if *e & EXT != 0 {
                    linked = true;
                } else if paint.applies(*e) {
                    *e = paint.new;
                }
            }
            if linked {
                // Links exist only above the last level.
                let child_stride = F::STRIDES[level + 1];
                for i in start..stop {
                    let e = self.fib.entry(i);
                    if e & EXT != 0 {
                        let child = ((e & !EXT) as usize) * UNIT;
                        self.paint_range(level + 1, child, 1 << child_stride, paint);
                    }
                }
            }
            start = stop;
        }
    }

    /// A writable view of `len` entries from `start`, all in one chunk; copies the chunk if a snapshot
    /// shares it.
    fn slice_mut(&mut self, start: usize, len: usize) -> &mut [u32] {
        let fib = Arc::make_mut(&mut self.fib);
        let chunk = Arc::make_mut(&mut fib.chunks[start >> CHUNK_BITS]);
        let off = start & CHUNK_MASK;
        &mut chunk[off..off + len]
    }

    fn set(&mut self, idx: usize, value: u32) {
        self.slice_mut(idx, 1)[0] = value;
    }

    /// Allocates a group of `2^stride` entries filled with `fill`; returns its first entry index.
    fn alloc_group(&mut self, stride: u8, fill: u32) -> usize {
        let size = 1usize << stride;
        let units = size / UNIT;
        let start = match self.free[usize::from(stride)].pop() {
            Some(start) => start,
            None => {
                if units > 1 {
                    // Keep multi-unit groups aligned to their size so that none straddles a chunk.
                    while self.next_unit & (units - 1) != 0 {
                        self.free[usize::from(UNIT_STRIDE)].push(self.next_unit * UNIT);
                        self.next_unit += 1;
                    }
                }
                let start = self.next_unit * UNIT;
                self.next_unit += units;
                let fib = Arc::make_mut(&mut self.fib);
                while fib.chunks.len() * CHUNK < self.next_unit * UNIT {
                    fib.chunks.push(Arc::new([0; CHUNK]));
                }
                start
            }
        };
        self.slice_mut(start, size).fill(fill);
        start
    }

    /// Bytes the control-side route list takes (approximate: hash table slots).
    pub fn rules_memory_bytes(&self) -> usize {
        self.rules.iter().map(|m| m.capacity() * (size_of::<F::Bits>() + size_of::<NextHopId>() + 1)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: a list of routes scanned linearly for the longest covering prefix.
    fn naive<F: Family>(routes: &HashMap<(F::Bits, u8), NextHopId>, dst: F::Addr) -> Option<NextHopId> {
        let bits = F::bits(dst);
        routes
            .iter()
            .filter(|((net, len), _)| F::network(bits, *len) == *net)
            .max_by_key(|((_, len), _)| *len)
            .map(|(_, nh)| *nh)
    }

    #[derive(Debug, Clone)]
    enum Op<B> {
        Insert(B, u8, u32),
        Remove(B, u8),
    }

    /// Runs `ops` on a builder and on the reference, checking every probe after every op, through
    /// `lookup`, `lookup_bulk` and a snapshot taken before the op (which must not change).
    fn check<F: Family>(ops: Vec<Op<F::Bits>>, probes: Vec<F::Bits>) -> Result<(), TestCaseError> {
        let mut b = FibBuilder::<F>::new();
        let mut reference: HashMap<(F::Bits, u8), NextHopId> = HashMap::new();
        let addrs: Vec<F::Addr> = probes.iter().map(|p| F::addr(*p)).collect();
        // Probe the prefixes themselves and their last addresses too.
        let mut all = addrs.clone();
        for op in &ops {
            let (Op::Insert(p, len, _) | Op::Remove(p, len)) = op;
            all.push(F::addr(F::network(*p, *len)));
            all.push(F::addr(*p));
        }
        for op in ops {
            let before = b.snapshot();
            let before_answers: Vec<_> = all.iter().map(|a| before.lookup(*a)).collect();
            match op {
                Op::Insert(p, len, nh) => {
                    let p = F::network(p, len);
                    let old = b.insert(F::addr(p), len, NextHopId(nh)).unwrap();
                    prop_assert_eq!(old, reference.insert((p, len), NextHopId(nh)));
                }
                Op::Remove(p, len) => {
                    let p = F::network(p, len);
                    let old = b.remove(F::addr(p), len).unwrap();
                    prop_assert_eq!(old, reference.remove(&(p, len)));
                }
            }
            prop_assert_eq!(b.len(), reference.len());
            let mut bulk = vec![None; all.len()];
            b.fib().lookup_bulk(&all, &mut bulk);
            for (i, a) in all.iter().enumerate() {
                let want = naive::<F>(&reference, *a);
                prop_assert_eq!(b.fib().lookup(*a), want, "lookup {:?}", a);
                prop_assert_eq!(bulk[i], want, "lookup_bulk {:?}", a);
                prop_assert_eq!(before.lookup(*a), before_answers[i], "old snapshot changed at {:?}", a);
            }
        }
        // Removing everything folds every group back: lookups miss and freed groups get reused.
        for (p, len) in reference.keys().copied().collect::<Vec<_>>() {
            b.remove(F::addr(p), len).unwrap();
        }
        for a in &all {
            prop_assert_eq!(b.fib().lookup(*a), None);
        }
        Ok(())
    }

    /// Prefixes drawn from a few clusters so that they overlap, with lengths biased to the stride
    /// boundaries and to the default and host routes.
    fn v4_addr() -> impl Strategy<Value = u32> + Clone {
        (0u32..4, any::<u32>()).prop_map(|(c, r)| (c << 24 | 0x0a00_0000) ^ (r & 0x00ff_ffff))
    }

    fn v4_op() -> impl Strategy<Value = Op<u32>> {
        let addr = v4_addr();
        let len = prop_oneof![Just(0u8), Just(8), Just(16), Just(23), Just(24), Just(25), Just(31), Just(32), 0u8..=32];
        prop_oneof![
            3 => (addr.clone(), len.clone(), 0u32..8).prop_map(|(a, l, n)| Op::Insert(a, l, n)),
            1 => (addr, len).prop_map(|(a, l)| Op::Remove(a, l)),
        ]
    }

    fn v6_addr() -> impl Strategy<Value = u128> + Clone {
        (0u128..4, any::<u128>())
            .prop_map(|(c, r)| (0x2001_0db8u128 << 96 | c << 80) ^ (r & ((1u128 << 96) - 1) & !(0xffu128 << 88)))
    }

    fn v6_op() -> impl Strategy<Value = Op<u128>> {
        let addr = v6_addr();
        let len = prop_oneof![Just(0u8), Just(32), Just(36), Just(48), Just(64), Just(127), Just(128), 0u8..=128];
        prop_oneof![
            3 => (addr.clone(), len.clone(), 0u32..8).prop_map(|(a, l, n)| Op::Insert(a, l, n)),
            1 => (addr, len).prop_map(|(a, l)| Op::Remove(a, l)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn v4_matches_linear_scan(
            ops in proptest::collection::vec(v4_op(), 1..40),
            probes in proptest::collection::vec(prop_oneof![v4_addr(), any::<u32>()], 0..16),
        ) {
            check::<V4>(ops, probes)?;
        }

        #[test]
        fn v6_matches_linear_scan(
            ops in proptest::collection::vec(v6_op(), 1..40),
            probes in proptest::collection::vec(prop_oneof![v6_addr(), any::<u128>()], 0..16),
        ) {
            check::<V6>(ops, probes)?;
        }
    }

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn remove_reveals_covering_prefix_and_host_routes_win() {
        let mut b = FibBuilder4::new();
        b.insert(v4("0.0.0.0"), 0, NextHopId(1)).unwrap();
        b.insert(v4("10.0.0.0"), 8, NextHopId(2)).unwrap();
        b.insert(v4("10.1.2.0"), 24, NextHopId(3)).unwrap();
        b.insert(v4("10.1.2.3"), 32, NextHopId(4)).unwrap();
        let f = b.fib();
        assert_eq!(f.lookup(v4("10.1.2.3")), Some(NextHopId(4)));
        assert_eq!(f.lookup(v4("10.1.2.4")), Some(NextHopId(3)));
        assert_eq!(f.lookup(v4("10.9.9.9")), Some(NextHopId(2)));
        assert_eq!(f.lookup(v4("192.0.2.1")), Some(NextHopId(1)));
        assert_eq!(b.remove(v4("10.1.2.0"), 24), Ok(Some(NextHopId(3))));
        assert_eq!(b.fib().lookup(v4("10.1.2.4")), Some(NextHopId(2)));
        assert_eq!(b.fib().lookup(v4("10.1.2.3")), Some(NextHopId(4)));
        assert_eq!(b.remove(v4("10.1.2.0"), 24), Ok(None));
        assert_eq!(b.remove(v4("0.0.0.0"), 0), Ok(Some(NextHopId(1))));
        assert_eq!(b.fib().lookup(v4("192.0.2.1")), None);
    }

    #[test]
    fn bad_routes_are_refused_naming_the_value() {
        let mut b = FibBuilder4::new();
        assert_eq!(b.insert(v4("10.0.0.0"), 33, NextHopId(0)), Err(FibError::PrefixLength { len: 33, max: 32 }));
        let e = b.insert(v4("10.0.0.1"), 24, NextHopId(0)).unwrap_err();
        assert_eq!(e.to_string(), "prefix 10.0.0.1/24 has host bits set; the network is 10.0.0.0/24");
        assert_eq!(
            b.insert(v4("10.0.0.0"), 24, NextHopId(NextHopId::MAX + 1)),
            Err(FibError::NextHopRange { id: NextHopId::MAX + 1 })
        );
        assert!(b.is_empty());
        let mut b6 = FibBuilder6::new();
        assert_eq!(b6.remove("::".parse().unwrap(), 129), Err(FibError::PrefixLength { len: 129, max: 128 }));
    }
}
