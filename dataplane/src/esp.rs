//! The ESP transform over bursts (RFC 4303 §3.3 outbound, §3.4 inbound), two-phase like VPP's: prepare
//! every packet of a burst, run all crypto in one [`CryptoEngine::process`] call, then finish each packet.
//!
//! Layer: between the pipeline (which builds and strips the outer IP and UDP headers) and the crypto
//! engine. Contract:
//! - Outbound ([`EspProcessor::encrypt`]): a packet's data is the payload (GRE header onward in transport
//!   mode, the inner IP packet in tunnel mode). Afterwards it is the ESP packet, header .. ICV.
//! - Inbound ([`EspProcessor::decrypt`]): a packet's data is the ESP packet, header .. ICV. Afterwards it
//!   is the payload, and the verdict names the SA and the Next Header (RFC 4303 §2.6; 59 is a dummy
//!   packet the caller discards).
//! - Each packet gets a verdict in a caller-provided array: `Ok` or the [`DropReason`]. A dropped packet's
//!   data is unspecified (the caller frees it). Nothing is counted here except in the SA runtime
//!   ([`SaRtTable`]): sequence numbers, replay window, lifetimes, and the [`crate::sa::SaEvent`]s they
//!   raise.
//! - Per packet and per burst there is no allocation: scratch lives in the [`EspProcessor`] the worker
//!   owns. The replay window moves only after the ICV verified (RFC 4303 §3.4.3), and a duplicate inside
//!   one burst is caught then.

use crate::crypto::{CryptoEngine, CryptoOp, OpKind, OpStatus};
use crate::drop::DropReason;
use crate::ids::SaIndex;
use crate::pkt::PacketBuf;
use crate::sa::{Direction, SaDb, SaEntry, SaRtTable};
use crate::wire::esp::{Trailer, HEADER_LEN};

/// What to encrypt a packet with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundReq {
    /// The outbound SA.
    pub sa: SaIndex,
    /// Next Header for the trailer: 47 (GRE) in transport mode, 4 or 41 in tunnel mode.
    pub next_header: u8,
}

/// A packet that decrypted and authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decrypted {
    /// The inbound SA that authenticated it.
    pub sa: SaIndex,
    /// Next Header from the trailer.
    pub next_header: u8,
}

/// What to do with one packet of an inbound burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundReq {
    /// Not an ESP packet: leave it alone.
    Skip,
    /// Find the SA by the SPI in the header.
    Spi,
    /// Use this SA (the caller already knows it, after a handoff between workers say).
    Sa(SaIndex),
}

/// Outcome of encrypting one packet.
pub type OutboundVerdict = Result<(), DropReason>;
/// Outcome of decrypting one packet.
pub type InboundVerdict = Result<Decrypted, DropReason>;

/// A worker's ESP scratch space, sized for its largest burst.
#[derive(Debug)]
pub struct EspProcessor {
    ops: Vec<CryptoOp>,
    seqs: Vec<u64>,
}

impl EspProcessor {
    /// Scratch for bursts of up to `max_burst` packets (larger bursts are processed in chunks).
    pub fn new(max_burst: usize) -> Self {
        let n = max_burst.max(1);
        Self { ops: Vec::with_capacity(n), seqs: vec![0; n] }
    }

    fn chunk(&self) -> usize {
        self.seqs.len()
    }

    /// Encrypts a burst. Packet `i` uses `reqs[i]` and gets `verdicts[i]`; a packet whose request is
    /// `None` is left alone, verdict included. The burst is the shortest of the three slices.
    pub fn encrypt<P: PacketBuf, E: CryptoEngine<P> + ?Sized>(
        &mut self,
        engine: &mut E,
        db: &SaDb,
        rts: &mut SaRtTable,
        pkts: &mut [P],
        reqs: &[Option<OutboundReq>],
        verdicts: &mut [OutboundVerdict],
    ) {
        let n = pkts.len().min(reqs.len()).min(verdicts.len());
        let chunk = self.chunk();
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            self.encrypt_chunk(engine, db, rts, &mut pkts[start..end], &reqs[start..end], &mut verdicts[start..end]);
        }
    }

    fn encrypt_chunk<P: PacketBuf, E: CryptoEngine<P> + ?Sized>(
        &mut self,
        engine: &mut E,
        db: &SaDb,
        rts: &mut SaRtTable,
        pkts: &mut [P],
        reqs: &[Option<OutboundReq>],
        verdicts: &mut [OutboundVerdict],
    ) {
        self.ops.clear();
        // The SA is resolved once per run of packets that share it (a burst toward one peer is one run).
        let mut run: Option<Outbound<'_, '_>> = None;
        for (i, ((pkt, req), verdict)) in pkts.iter_mut().zip(reqs).zip(verdicts.iter_mut()).enumerate() {
            let Some(req) = req else { continue };
            if run.as_ref().is_none_or(|r| r.sa != req.sa) {
                // Dropping the previous run publishes its SA's counters and ends its borrow of the
                // table (an assignment, which the borrow checker understands; `take` is not).
                #[allow(unused_assignments)]
                {
                    run = None;
                }
                run = Outbound::new(db, rts, req.sa);
            }
            let Some(out) = run.as_mut() else {
                *verdict = Err(DropReason::NoOutboundSa);
                continue;
            };
            *verdict = out.prepare(pkt, req.next_header).map(|esn_hi| {
                self.ops.push(CryptoOp { pkt: i, sa: req.sa, kind: OpKind::Seal, esn_hi, status: OpStatus::Pending });
            });
        }
        engine.process(db, pkts, &mut self.ops);
        for op in &self.ops {
            if let Some(v) = verdicts.get_mut(op.pkt) {
                *v = match op.status {
                    OpStatus::Ok => Ok(()),
                    _ => Err(DropReason::EspCryptoFailed),
                };
            }
        }
    }

    /// Decrypts a burst. `reqs[i]` says what to do with packet `i`: nothing, look its SPI up, or use a
    /// known SA (after a handoff, say). Packet `i` gets `verdicts[i]` unless it is skipped; the burst is the
    /// shortest of the three slices.
    pub fn decrypt<P: PacketBuf, E: CryptoEngine<P> + ?Sized>(
        &mut self,
        engine: &mut E,
        db: &SaDb,
        rts: &mut SaRtTable,
        pkts: &mut [P],
        hints: &[InboundReq],
        verdicts: &mut [InboundVerdict],
    ) {
        let n = pkts.len().min(hints.len()).min(verdicts.len());
        let chunk = self.chunk();
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            self.decrypt_chunk(engine, db, rts, &mut pkts[start..end], &hints[start..end], &mut verdicts[start..end]);
        }
    }

    fn decrypt_chunk<P: PacketBuf, E: CryptoEngine<P> + ?Sized>(
        &mut self,
        engine: &mut E,
        db: &SaDb,
        rts: &mut SaRtTable,
        pkts: &mut [P],
        hints: &[InboundReq],
        verdicts: &mut [InboundVerdict],
    ) {
        self.ops.clear();
        for (i, ((pkt, req), verdict)) in pkts.iter_mut().zip(hints).zip(verdicts.iter_mut()).enumerate() {
            let hint = match *req {
                InboundReq::Skip => continue,
                InboundReq::Spi => None,
                InboundReq::Sa(sa) => Some(sa),
            };
            *verdict = match precheck_inbound(db, rts, pkt.data(), hint) {
                Ok((sa, seq, esn_hi)) => {
                    if let Some(slot) = self.seqs.get_mut(i) {
                        *slot = seq;
                    }
                    self.ops.push(CryptoOp { pkt: i, sa, kind: OpKind::Open, esn_hi, status: OpStatus::Pending });
                    Ok(Decrypted { sa, next_header: 0 })
                }
                Err(reason) => Err(reason),
            };
        }
        engine.process(db, pkts, &mut self.ops);
        for op in &self.ops {
            let (Some(pkt), Some(verdict), Some(&seq)) =
                (pkts.get_mut(op.pkt), verdicts.get_mut(op.pkt), self.seqs.get(op.pkt))
            else {
                continue;
            };
            *verdict = finish_inbound(db, rts, pkt, op, seq);
        }
    }
}

/// An outbound SA resolved for a run of packets: its runtime state and the facts each packet needs.
struct Outbound<'t, 'd> {
    sa: SaIndex,
    entry: SaEntry<'t, 'd>,
    spi: [u8; 4],
    esn: bool,
    iv_len: usize,
    icv_len: usize,
    align: usize,
}

impl<'t, 'd> Outbound<'t, 'd> {
    /// `None` when `sa` is not an outbound SA of `db`.
    // Out of line: inlined into the encrypt loop, it made the loop slower with one spoke.
    #[inline(never)]
    fn new(db: &'d SaDb, rts: &'t mut SaRtTable, sa: SaIndex) -> Option<Self> {
        let entry = rts.entry(db, sa)?;
        let cfg = entry.sa.config();
        if cfg.direction != Direction::Outbound {
            return None;
        }
        let keys = entry.sa.keys();
        let (spi, esn) = (cfg.spi.to_be_bytes(), cfg.esn);
        let (iv_len, icv_len, align) = (keys.iv_len(), keys.icv_len(), keys.align());
        Some(Self { sa, entry, spi, esn, iv_len, icv_len, align })
    }

    /// Phase 1 outbound: sequence number, header, IV, padding, trailer, ICV room. Returns the ESN high
    /// bits for the op.
    fn prepare<P: PacketBuf>(&mut self, pkt: &mut P, next_header: u8) -> Result<Option<u32>, DropReason> {
        let payload_len = pkt.len();
        let trailer = Trailer { pad_len: Trailer::pad_for(payload_len, self.align), next_header };
        let head = HEADER_LEN + self.iv_len;
        let tail = trailer.len() + self.icv_len;
        if pkt.headroom() < head || pkt.tailroom() < tail {
            return Err(DropReason::NoBufferSpace);
        }
        // RFC 4303 §3.3.3: a new number for every packet, none once the SA is exhausted or past its hard
        // life.
        let seq = self.entry.next_seq().ok_or(DropReason::EspSaExpired)?;
        self.entry.account(payload_len);
        // The ICV's room is left as it is: sealing writes it.
        let t = pkt.append(tail).ok_or(DropReason::NoBufferSpace)?;
        trailer.emit(&mut t[..trailer.len()]);
        let h = pkt.prepend(head).ok_or(DropReason::NoBufferSpace)?;
        h[..4].copy_from_slice(&self.spi);
        // Only the low 32 bits travel (RFC 4303 §2.2.1).
        h[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        self.entry.sa.keys().write_iv(seq, &mut h[HEADER_LEN..]);
        Ok(self.esn.then_some((seq >> 32) as u32))
    }
}

/// Phase 1 inbound: SA, length, replay pre-check. Returns the SA, the full sequence number and the ESN
/// high bits for the op.
fn precheck_inbound(
    db: &SaDb,
    rts: &mut SaRtTable,
    data: &[u8],
    hint: Option<SaIndex>,
) -> Result<(SaIndex, u64, Option<u32>), DropReason> {
    let (Some(spi), Some(seq_lo)) = (data.get(0..4), data.get(4..8)) else {
        return Err(DropReason::EspMalformed);
    };
    let spi = u32::from_be_bytes([spi[0], spi[1], spi[2], spi[3]]);
    let seq_lo = u32::from_be_bytes([seq_lo[0], seq_lo[1], seq_lo[2], seq_lo[3]]);
    let index = hint.or_else(|| db.lookup_inbound(spi)).ok_or(DropReason::EspUnknownSpi)?;
    let e = rts.entry(db, index).ok_or(DropReason::EspUnknownSpi)?;
    let cfg = e.sa.config();
    if cfg.direction != Direction::Inbound || cfg.spi != spi {
        return Err(DropReason::EspUnknownSpi);
    }
    if e.is_expired() {
        return Err(DropReason::EspSaExpired);
    }
    let keys = e.sa.keys();
    let fixed = HEADER_LEN + keys.iv_len() + keys.icv_len();
    let text_len = data.len().checked_sub(fixed).ok_or(DropReason::EspMalformed)?;
    if text_len < keys.min_text_len() || text_len % keys.align() != 0 {
        return Err(DropReason::EspMalformed);
    }
    let Some(seq) = e.check_replay(seq_lo) else {
        e.sa.counters().count_replay_drop();
        return Err(DropReason::EspReplay);
    };
    Ok((index, seq, cfg.esn.then_some((seq >> 32) as u32)))
}

/// Phase 3 inbound: status, replay window update, trailer, lifetimes, strip.
fn finish_inbound<P: PacketBuf>(
    db: &SaDb,
    rts: &mut SaRtTable,
    pkt: &mut P,
    op: &CryptoOp,
    seq: u64,
) -> InboundVerdict {
    match op.status {
        OpStatus::Ok => {}
        OpStatus::AuthFailed => {
            if let Some(sa) = db.get(op.sa) {
                sa.counters().count_auth_failure();
            }
            return Err(DropReason::EspAuthFailed);
        }
        OpStatus::BadLength => return Err(DropReason::EspMalformed),
        OpStatus::NoSa => return Err(DropReason::EspUnknownSpi),
        OpStatus::Pending => return Err(DropReason::EspCryptoFailed),
    }
    let mut e = rts.entry(db, op.sa).ok_or(DropReason::EspUnknownSpi)?;
    if !e.accept(seq) {
        e.sa.counters().count_replay_drop();
        return Err(DropReason::EspReplay);
    }
    let keys = e.sa.keys();
    let (text_start, icv_len) = (HEADER_LEN + keys.iv_len(), keys.icv_len());
    let data = pkt.data();
    let text = data.get(text_start..data.len().saturating_sub(icv_len)).ok_or(DropReason::EspMalformed)?;
    let trailer = Trailer::parse(text).map_err(|_| DropReason::EspBadTrailer)?;
    e.account(text.len() - trailer.len());
    if !(pkt.adj(text_start) && pkt.trim(trailer.len() + icv_len)) {
        return Err(DropReason::EspMalformed);
    }
    Ok(Decrypted { sa: op.sa, next_header: trailer.next_header })
}

#[cfg(test)]
pub(crate) mod tests;
