//! Ciphers for ESP and the engine that runs them in batches.
//!
//! Layer: below [`crate::esp`], above the cipher libraries. Contract:
//! - [`SaKeys`] holds one SA's keys, expanded once when the SA is created (AES key schedules, GHASH
//!   tables, HMAC inner/outer states), so that a per-packet call does no setup. It seals and opens one
//!   ESP packet laid out as header || IV || text || ICV, building the nonce and AAD (RFC 4106 §4, §5) or
//!   the HMAC input (RFC 4303 §2.2.1, §3.3.3) itself.
//! - [`CryptoEngine`] is the batch interface (VPP's two-phase ESP): the caller fills an array of
//!   [`CryptoOp`]s for a whole burst, then one [`CryptoEngine::process`] call runs them all and sets each
//!   op's [`OpStatus`]. A hardware engine (DPDK cryptodev, QAT) implements the same trait over its own
//!   packet type; [`SoftEngine`] runs the ops on the CPU, synchronously.
//! - Two software backends ([`Backend`]) implement the primitives: `ring` (BoringSSL assembly) and
//!   RustCrypto. The backend is chosen when an SA's keys are expanded. [`default_backend`] is the one
//!   measured faster on the target CPU (see `backend_speed` in the tests).
//!
//! Algorithms: AES-GCM-128/256 with a 16-byte ICV (RFC 4106), AES-CBC-128/256 (RFC 3602) with
//! HMAC-SHA-1-96 (RFC 2404) or HMAC-SHA-256-128 (RFC 4868), encrypt-then-MAC (RFC 4303 §3.3.2).
//! Nothing here panics on any input; a packet of the wrong shape gets [`OpStatus::BadLength`].

mod ring_backend;
mod rustcrypto;

use core::fmt;

use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::ids::SaIndex;
use crate::pkt::PacketBuf;
use crate::sa::{Sa, SaDb};
use crate::wire::esp::HEADER_LEN;

/// Length of the AES-GCM ICV: this implementation supports the 16-byte variant only (RFC 4106 §6 allows
/// 8 and 12; IKEv2 proposals for DMVPN use 16).
pub const GCM_TAG_LEN: usize = 16;

/// A software implementation of the primitives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `ring` 0.17: BoringSSL's AES-GCM assembly (VAES+AVX2 on Zen 3) and HMAC; RustCrypto for CBC.
    Ring,
    /// RustCrypto `aes-gcm`, `aes`, `cbc`, `hmac`, `sha1`, `sha2`.
    RustCrypto,
}

impl Backend {
    /// Every backend, for tests and benchmarks that run them all.
    pub const ALL: [Backend; 2] = [Backend::Ring, Backend::RustCrypto];

    /// Name for logs and reports.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Ring => "ring",
            Backend::RustCrypto => "rustcrypto",
        }
    }
}

/// The backend measured fastest on the target CPU (AMD EPYC Zen 3: VAES+AVX2), used when the hardware
/// profile names none. `ring` beat RustCrypto at both 64 B and 1400 B (see the `backend_speed` test).
pub const fn default_backend() -> Backend {
    Backend::Ring
}

/// An AES key. `Debug` does not print the key.
#[derive(Clone, PartialEq, Eq)]
pub enum AesKey {
    /// AES-128.
    Aes128([u8; 16]),
    /// AES-256.
    Aes256([u8; 32]),
}

impl AesKey {
    /// A key from its bytes: 16 for AES-128, 32 for AES-256, `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        match bytes.len() {
            16 => bytes.try_into().ok().map(AesKey::Aes128),
            32 => bytes.try_into().ok().map(AesKey::Aes256),
            _ => None,
        }
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AesKey::Aes128(_) => "Aes128(<redacted>)",
            AesKey::Aes256(_) => "Aes256(<redacted>)",
        })
    }
}

/// The integrity algorithm of an AES-CBC SA, with its key. `Debug` does not print the key.
#[derive(Clone, PartialEq, Eq)]
pub enum Integrity {
    /// HMAC-SHA-1 truncated to 96 bits (RFC 2404), 20-byte key.
    HmacSha1_96([u8; 20]),
    /// HMAC-SHA-256 truncated to 128 bits (RFC 4868), 32-byte key.
    HmacSha256_128([u8; 32]),
}

impl Integrity {
    /// ICV length on the wire.
    pub const fn icv_len(&self) -> usize {
        match self {
            Integrity::HmacSha1_96(_) => 12,
            Integrity::HmacSha256_128(_) => 16,
        }
    }
}

/// The hash under an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha1,
    Sha256,
}

impl Integrity {
    fn split(&self) -> (HashAlg, &[u8]) {
        match self {
            Integrity::HmacSha1_96(k) => (HashAlg::Sha1, k),
            Integrity::HmacSha256_128(k) => (HashAlg::Sha256, k),
        }
    }
}

impl fmt::Debug for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Integrity::HmacSha1_96(_) => "HmacSha1_96(<redacted>)",
            Integrity::HmacSha256_128(_) => "HmacSha256_128(<redacted>)",
        })
    }
}

/// An SA's cipher suite and keys, as IKE derived them (KEYMAT split per RFC 7296 §2.17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CipherConfig {
    /// AES-GCM with a 16-byte ICV (RFC 4106). `salt` is the last 4 bytes of the KEYMAT (RFC 4106 §8.1).
    AesGcm {
        /// Cipher key.
        key: AesKey,
        /// Implicit nonce prefix.
        salt: [u8; 4],
    },
    /// AES-CBC (RFC 3602) with an HMAC.
    AesCbc {
        /// Cipher key.
        key: AesKey,
        /// Integrity algorithm and key.
        integrity: Integrity,
    },
}

impl CipherConfig {
    /// Bytes of IV on the wire: 8 for GCM (RFC 4106 §3.1), 16 for CBC (RFC 3602 §2.4).
    pub const fn iv_len(&self) -> usize {
        match self {
            CipherConfig::AesGcm { .. } => 8,
            CipherConfig::AesCbc { .. } => 16,
        }
    }

    /// Bytes of ICV on the wire.
    pub const fn icv_len(&self) -> usize {
        match self {
            CipherConfig::AesGcm { .. } => GCM_TAG_LEN,
            CipherConfig::AesCbc { integrity, .. } => integrity.icv_len(),
        }
    }

    /// What the encrypted part (payload, padding, trailer) must be a multiple of: 4 for GCM
    /// (RFC 4303 §2.4), the 16-byte block for CBC (RFC 3602 §2.4).
    pub const fn align(&self) -> usize {
        match self {
            CipherConfig::AesGcm { .. } => 4,
            CipherConfig::AesCbc { .. } => 16,
        }
    }
}

/// Why keys could not be expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// The backend refused the key (wrong length for the algorithm, or no usable CPU implementation).
    #[error("crypto backend {backend} rejected the key")]
    KeyRejected {
        /// Which backend.
        backend: &'static str,
    },
}

/// An untruncated HMAC output (20 or 32 bytes used).
pub(crate) struct MacOut([u8; 32]);

impl MacOut {
    fn from_slice(s: &[u8]) -> Self {
        let mut out = [0u8; 32];
        let n = s.len().min(32);
        out[..n].copy_from_slice(&s[..n]);
        Self(out)
    }
}

// The default backend's GCM key stays inline (read on every packet; an indirection would cost a cache
// miss). The other backend's and the CBC suite's larger keys are boxed, so that a GCM SA stays small:
// at 100,000 peers every line of an SA the pipeline touches is a cache miss.
#[allow(clippy::large_enum_variant)]
enum GcmKey {
    Ring(ring_backend::GcmKey),
    RustCrypto(Box<rustcrypto::GcmKey>),
}

enum HmacKey {
    Ring(ring_backend::HmacKey),
    RustCrypto(rustcrypto::HmacKey),
}

impl HmacKey {
    fn sign(&self, data: &[u8], tail: &[u8]) -> MacOut {
        match self {
            HmacKey::Ring(k) => k.sign(data, tail),
            HmacKey::RustCrypto(k) => k.sign(data, tail),
        }
    }
}

// GCM inline, CBC boxed: see `GcmKey`.
#[allow(clippy::large_enum_variant)]
enum Suite {
    Gcm { key: GcmKey, salt: [u8; 4] },
    Cbc(Box<CbcKeys>),
}

struct CbcKeys {
    key: rustcrypto::CbcKey,
    iv_key: rustcrypto::IvKey,
    mac: HmacKey,
}

/// One SA's expanded keys and the ESP seal/open operations over them.
pub struct SaKeys {
    suite: Suite,
    backend: Backend,
    iv_len: usize,
    icv_len: usize,
    align: usize,
}

impl fmt::Debug for SaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suite = match self.suite {
            Suite::Gcm { .. } => "aes-gcm",
            Suite::Cbc(_) => "aes-cbc-hmac",
        };
        f.debug_struct("SaKeys").field("suite", &suite).field("backend", &self.backend.name()).finish()
    }
}

/// What an op must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Encrypt and compute the ICV (outbound).
    Seal,
    /// Verify the ICV and decrypt (inbound).
    Open,
}

/// The outcome of one op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    /// Not run yet.
    Pending,
    /// Done: sealed, or authenticated and decrypted.
    Ok,
    /// The ICV did not verify; the packet is unchanged (GCM) or still ciphertext (CBC).
    AuthFailed,
    /// The packet is too short, or CBC text is not a whole number of blocks.
    BadLength,
    /// The op names an SA or packet that does not exist.
    NoSa,
}

/// One crypto operation of a batch: a packet (by index into the burst) whose data is one ESP packet,
/// header || IV || text || ICV, with the header and IV already in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoOp {
    /// Index of the packet in the burst passed to [`CryptoEngine::process`].
    pub pkt: usize,
    /// The SA whose keys to use.
    pub sa: SaIndex,
    /// Seal or open.
    pub kind: OpKind,
    /// High 32 bits of the 64-bit sequence number when the SA uses ESN (RFC 4303 §2.2.1): they enter the
    /// AAD (RFC 4106 §5) or the HMAC input (RFC 4303 §3.3.3) but are not sent.
    pub esn_hi: Option<u32>,
    /// Set by the engine.
    pub status: OpStatus,
}

/// Runs a burst's crypto operations in one call.
///
/// Contract: on return every op's `status` is set; ops are independent and may run in any order or in
/// parallel; the engine touches only the data of the packets the ops name. An engine keeps no pointer
/// into `pkts` after returning (an asynchronous device completes the batch before returning).
pub trait CryptoEngine<P: PacketBuf> {
    /// Runs `ops` over `pkts` with the keys in `sas`.
    fn process(&mut self, sas: &SaDb, pkts: &mut [P], ops: &mut [CryptoOp]);
}

/// The software engine: runs each op on the calling core with the backend its SA's keys were expanded
/// for.
#[derive(Debug, Clone, Copy, Default)]
pub struct SoftEngine;

impl<P: PacketBuf> CryptoEngine<P> for SoftEngine {
    fn process(&mut self, sas: &SaDb, pkts: &mut [P], ops: &mut [CryptoOp]) {
        // The keys are looked up once per run of ops on the same SA.
        let mut run = None;
        for op in ops.iter_mut() {
            let keys = match run {
                Some((sa, keys)) if sa == op.sa => Some(keys),
                _ => {
                    let keys = sas.get(op.sa).map(Sa::keys);
                    run = keys.map(|k| (op.sa, k));
                    keys
                }
            };
            op.status = match (keys, pkts.get_mut(op.pkt)) {
                (Some(keys), Some(pkt)) => match op.kind {
                    OpKind::Seal => keys.seal(pkt.data_mut(), op.esn_hi),
                    OpKind::Open => keys.open(pkt.data_mut(), op.esn_hi),
                },
                _ => OpStatus::NoSa,
            };
        }
    }
}

impl SaKeys {
    /// Expands `cipher`'s keys for `backend`. `iv_seed` keys the CBC IV generator and must come from a
    /// cryptographic random source (the control plane injects it); GCM SAs ignore it.
    pub fn new(cipher: &CipherConfig, backend: Backend, iv_seed: [u8; 16]) -> Result<Self, CryptoError> {
        let suite = match cipher {
            CipherConfig::AesGcm { key, salt } => Suite::Gcm {
                key: match backend {
                    Backend::Ring => GcmKey::Ring(ring_backend::GcmKey::new(key)?),
                    Backend::RustCrypto => GcmKey::RustCrypto(Box::new(rustcrypto::GcmKey::new(key))),
                },
                salt: *salt,
            },
            CipherConfig::AesCbc { key, integrity } => Suite::Cbc(Box::new(CbcKeys {
                key: rustcrypto::CbcKey::new(key),
                iv_key: rustcrypto::IvKey::new(&iv_seed),
                mac: {
                    let (hash, mac_key) = integrity.split();
                    match backend {
                        Backend::Ring => HmacKey::Ring(ring_backend::HmacKey::new(hash, mac_key)),
                        Backend::RustCrypto => HmacKey::RustCrypto(rustcrypto::HmacKey::new(hash, mac_key)?),
                    }
                },
            })),
        };
        Ok(Self { suite, backend, iv_len: cipher.iv_len(), icv_len: cipher.icv_len(), align: cipher.align() })
    }

    /// The backend these keys were expanded for.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// IV bytes on the wire.
    pub fn iv_len(&self) -> usize {
        self.iv_len
    }

    /// ICV bytes on the wire.
    pub fn icv_len(&self) -> usize {
        self.icv_len
    }

    /// Alignment of the encrypted part (4 or 16).
    pub fn align(&self) -> usize {
        self.align
    }

    /// Smallest valid encrypted part: the 2-byte trailer rounded up to the alignment.
    pub fn min_text_len(&self) -> usize {
        self.align.max(2)
    }

    /// Writes the IV for sequence number `seq` into `out` (`iv_len` bytes; other lengths are left alone).
    /// GCM: the 64-bit sequence number itself, unique per key because sequence numbers never repeat
    /// (RFC 4106 §3.1 allows a counter). CBC: AES of the sequence number under the SA's IV key, so it is
    /// unpredictable (RFC 3602 §2.4 asks for that) and still never repeats.
    pub fn write_iv(&self, seq: u64, out: &mut [u8]) {
        match &self.suite {
            Suite::Gcm { .. } => {
                if out.len() == 8 {
                    out.copy_from_slice(&seq.to_be_bytes());
                }
            }
            Suite::Cbc(cbc) => {
                let iv_key = &cbc.iv_key;
                if out.len() == 16 {
                    out.copy_from_slice(&iv_key.iv(seq));
                }
            }
        }
    }

    /// Splits an ESP packet into (header + IV length, text end); `None` if the text is shorter than the
    /// trailer or not aligned.
    fn layout(&self, esp_len: usize) -> Option<(usize, usize)> {
        let text_start = HEADER_LEN + self.iv_len;
        let text_end = esp_len.checked_sub(self.icv_len)?;
        let text_len = text_end.checked_sub(text_start)?;
        (text_len >= self.min_text_len() && text_len % self.align == 0).then_some((text_start, text_end))
    }

    /// Encrypts one ESP packet in place (header || IV || plaintext with trailer || room for the ICV) and
    /// writes the ICV.
    pub fn seal(&self, esp: &mut [u8], esn_hi: Option<u32>) -> OpStatus {
        let Some((text_start, text_end)) = self.layout(esp.len()) else { return OpStatus::BadLength };
        match &self.suite {
            Suite::Gcm { key, salt } => {
                let (nonce, aad, aad_len) = gcm_nonce_aad(esp, salt, esn_hi);
                let ok = match key {
                    GcmKey::Ring(k) => k.seal(nonce, &aad[..aad_len], &mut esp[text_start..]),
                    GcmKey::RustCrypto(k) => k.seal(nonce, &aad[..aad_len], &mut esp[text_start..]),
                };
                if ok {
                    OpStatus::Ok
                } else {
                    OpStatus::BadLength
                }
            }
            Suite::Cbc(cbc) => {
                let (key, mac) = (&cbc.key, &cbc.mac);
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&esp[HEADER_LEN..text_start]);
                if !key.encrypt(&iv, &mut esp[text_start..text_end]) {
                    return OpStatus::BadLength;
                }
                let hi = esn_hi.map(u32::to_be_bytes);
                let tag = mac.sign(&esp[..text_end], hi.as_ref().map_or(&[][..], |h| &h[..]));
                esp[text_end..].copy_from_slice(&tag.0[..self.icv_len]);
                OpStatus::Ok
            }
        }
    }

    /// Verifies and decrypts one ESP packet in place. On success the text between IV and ICV is the
    /// plaintext (payload, padding, trailer); on failure nothing is decrypted.
    pub fn open(&self, esp: &mut [u8], esn_hi: Option<u32>) -> OpStatus {
        let Some((text_start, text_end)) = self.layout(esp.len()) else { return OpStatus::BadLength };
        match &self.suite {
            Suite::Gcm { key, salt } => {
                let (nonce, aad, aad_len) = gcm_nonce_aad(esp, salt, esn_hi);
                let ok = match key {
                    GcmKey::Ring(k) => k.open(nonce, &aad[..aad_len], &mut esp[text_start..]),
                    GcmKey::RustCrypto(k) => k.open(nonce, &aad[..aad_len], &mut esp[text_start..]),
                };
                if ok {
                    OpStatus::Ok
                } else {
                    OpStatus::AuthFailed
                }
            }
            Suite::Cbc(cbc) => {
                let (key, mac) = (&cbc.key, &cbc.mac);
                // Encrypt-then-MAC: verify before decrypting (RFC 4303 §3.4.4.1).
                let hi = esn_hi.map(u32::to_be_bytes);
                let tag = mac.sign(&esp[..text_end], hi.as_ref().map_or(&[][..], |h| &h[..]));
                if !bool::from(tag.0[..self.icv_len].ct_eq(&esp[text_end..])) {
                    return OpStatus::AuthFailed;
                }
                let mut iv = [0u8; 16];
                iv.copy_from_slice(&esp[HEADER_LEN..text_start]);
                if key.decrypt(&iv, &mut esp[text_start..text_end]) {
                    OpStatus::Ok
                } else {
                    OpStatus::BadLength
                }
            }
        }
    }
}

/// RFC 4106 §4: nonce = salt || explicit IV. §5: AAD = SPI || seq (8 bytes), or with ESN
/// SPI || seq high || seq low (12 bytes). `esp` is at least header + IV long (checked by the caller).
fn gcm_nonce_aad(esp: &[u8], salt: &[u8; 4], esn_hi: Option<u32>) -> ([u8; 12], [u8; 12], usize) {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(&esp[HEADER_LEN..HEADER_LEN + 8]);
    let mut aad = [0u8; 12];
    aad[..4].copy_from_slice(&esp[..4]);
    let len = match esn_hi {
        Some(hi) => {
            aad[4..8].copy_from_slice(&hi.to_be_bytes());
            aad[8..12].copy_from_slice(&esp[4..8]);
            12
        }
        None => {
            aad[4..8].copy_from_slice(&esp[4..8]);
            8
        }
    };
    (nonce, aad, len)
}

#[cfg(test)]
mod tests;
