//! Raw AEAD throughput of a crypto backend, with no pipeline around it: [`SaKeys::seal`] of one ESP
//! packet (header, IV, `size` bytes of text, ICV) in a preallocated buffer, over and over, with a new
//! sequence number and IV each time as the ESP transform would write them.
//!
//! `size` counts the encrypted text (what `openssl speed -bytes` counts); the 8-byte AAD (SPI and
//! sequence number, RFC 4106 §5) and the 16-byte tag come on top, as they do per ESP packet.

use std::time::{Duration, Instant};

use dataplane::crypto::{Backend, OpStatus, SaKeys};
use dataplane::ids::SaIndex;
use dataplane::wire::esp::HEADER_LEN;
use thiserror::Error;

use crate::scenario::sa_cipher;

/// Bytes of IV of AES-GCM in ESP (RFC 4106 §3.1).
const IV_LEN: usize = 8;
/// Bytes of ICV.
const ICV_LEN: usize = 16;

/// Why the measurement could not run.
#[derive(Debug, Error)]
pub enum AeadError {
    /// The backend refused the key.
    #[error("raw AEAD ({backend}): key expansion failed: {source}")]
    Key {
        /// Backend name.
        backend: &'static str,
        /// What it said.
        source: dataplane::crypto::CryptoError,
    },
    /// A seal did not succeed.
    #[error("raw AEAD ({backend}): seal of {size} B returned {status:?}")]
    Seal {
        /// Backend name.
        backend: &'static str,
        /// Text size.
        size: usize,
        /// What it returned.
        status: OpStatus,
    },
}

/// Result of one measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AeadRate {
    /// Text bytes per operation.
    pub size: usize,
    /// Operations done.
    pub ops: u64,
    /// Time they took.
    pub elapsed: Duration,
}

impl AeadRate {
    /// Million operations per second.
    pub fn mops(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-12) / 1e6
    }

    /// Text gigabits per second.
    pub fn gbps(&self) -> f64 {
        (self.ops * self.size as u64) as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-12) / 1e9
    }

    /// Nanoseconds per operation.
    pub fn ns_per_op(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.ops.max(1) as f64
    }
}

/// One ESP packet sealed over and over: AES-GCM-128 on `backend`, `size` bytes of text (a multiple of 4,
/// at least 4), a new sequence number and IV each time as the ESP transform would write them.
#[derive(Debug)]
pub struct RawSeal {
    keys: SaKeys,
    buf: Vec<u8>,
    seq: u64,
}

impl RawSeal {
    /// Expands the key and seals once, to check that the backend accepts the size.
    pub fn new(backend: Backend, size: usize) -> Result<Self, AeadError> {
        let keys = SaKeys::new(&sa_cipher(SaIndex(0)), backend, [0; 16])
            .map_err(|source| AeadError::Key { backend: backend.name(), source })?;
        let mut buf = vec![0u8; HEADER_LEN + IV_LEN + size + ICV_LEN];
        buf[..4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        let mut raw = Self { keys, buf, seq: 0 };
        let status = raw.seal();
        if status != OpStatus::Ok {
            return Err(AeadError::Seal { backend: backend.name(), size, status });
        }
        Ok(raw)
    }

    /// Seals the packet once more.
    #[inline]
    pub fn seal(&mut self) -> OpStatus {
        self.seq += 1;
        self.buf[4..8].copy_from_slice(&(self.seq as u32).to_be_bytes());
        self.keys.write_iv(self.seq, &mut self.buf[HEADER_LEN..HEADER_LEN + IV_LEN]);
        self.keys.seal(std::hint::black_box(&mut self.buf), None)
    }
}

/// Seals `size`-byte ESP packets with AES-GCM-128 on `backend` for about `duration`. `size` must be a
/// multiple of 4 (ESP alignment, RFC 4303 §2.4), at least 4.
pub fn seal_rate(backend: Backend, size: usize, duration: Duration) -> Result<AeadRate, AeadError> {
    let mut raw = RawSeal::new(backend, size)?;
    const ROUND: u64 = 256;
    let start = Instant::now();
    let mut ops = 0;
    loop {
        for _ in 0..ROUND {
            std::hint::black_box(raw.seal());
        }
        ops += ROUND;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Ok(AeadRate { size, ops, elapsed });
        }
    }
}
