//! The IKEv2 key schedule (RFC 7296 §2.13, §2.14, §2.17, §2.18): the PRF, prf+, SKEYSEED, the seven
//! IKE SA keys and the KEYMAT of CHILD SAs. Pure functions over byte slices; the DH shared secret and
//! the nonces come from the engine.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use crate::message::{EncrId, IntegId, PrfId};

/// Why keys could not be derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// prf+ can give at most 255 blocks (§2.13).
    #[error("prf+: {wanted} bytes asked, at most {max}")]
    TooMuch {
        /// Bytes asked for.
        wanted: usize,
        /// 255 × the PRF's output length.
        max: usize,
    },
    /// A transform this key schedule does not implement.
    #[error("key schedule: unsupported {what} transform {id}")]
    Unsupported {
        /// `"PRF"`, `"ENCR"` or `"INTEG"`.
        what: &'static str,
        /// Its transform ID.
        id: u16,
    },
}

/// A negotiated PRF (§3.3.2, transform type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_SHA2_256 (RFC 4868).
    HmacSha256,
    /// PRF_HMAC_SHA2_384.
    HmacSha384,
    /// PRF_HMAC_SHA2_512.
    HmacSha512,
}

impl Prf {
    /// The PRF for a transform ID.
    pub fn from_id(id: PrfId) -> Result<Prf, KeyError> {
        match id {
            PrfId::PRF_HMAC_SHA2_256 => Ok(Prf::HmacSha256),
            PrfId::PRF_HMAC_SHA2_384 => Ok(Prf::HmacSha384),
            PrfId::PRF_HMAC_SHA2_512 => Ok(Prf::HmacSha512),
            _ => Err(KeyError::Unsupported { what: "PRF", id: id.0 }),
        }
    }

    /// Its transform ID.
    pub fn id(self) -> PrfId {
        match self {
            Prf::HmacSha256 => PrfId::PRF_HMAC_SHA2_256,
            Prf::HmacSha384 => PrfId::PRF_HMAC_SHA2_384,
            Prf::HmacSha512 => PrfId::PRF_HMAC_SHA2_512,
        }
    }

    /// Output length, which is also its preferred key length (§2.13; RFC 4868 §2.1.2).
    pub const fn output_len(self) -> usize {
        match self {
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// prf(key, data1 | data2 | …).
    pub fn compute(self, key: &[u8], data: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[&[u8]]) -> Vec<u8> {
            let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC takes any key"));
            for d in data {
                m.update(d);
            }
            m.finalize().into_bytes().to_vec()
        }
        match self {
            Prf::HmacSha256 => run::<Hmac<Sha256>>(key, data),
            Prf::HmacSha384 => run::<Hmac<Sha384>>(key, data),
            Prf::HmacSha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    /// prf+(K, S) = T1 | T2 | …, Tn = prf(K, Tn-1 | S | n), truncated to `len` (§2.13).
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Result<Vec<u8>, KeyError> {
        let max = 255 * self.output_len();
        if len > max {
            return Err(KeyError::TooMuch { wanted: len, max });
        }
        let mut out = Vec::with_capacity(len + self.output_len());
        let mut t: Vec<u8> = Vec::new();
        let mut n = 1u8;
        while out.len() < len {
            t = self.compute(key, &[&t, seed, &[n]]);
            out.extend_from_slice(&t);
            n = n.wrapping_add(1);
        }
        out.truncate(len);
        Ok(out)
    }

    /// SKEYSEED = prf(Ni | Nr, g^ir) for a new IKE SA (§2.14).
    ///
    /// RFC 4868 PRFs take the nonces whole as the key (no halving: that is only for fixed-key PRFs).
    pub fn skeyseed(self, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(ni.len() + nr.len());
        key.extend_from_slice(ni);
        key.extend_from_slice(nr);
        self.compute(&key, &[g_ir])
    }

    /// SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) when rekeying an IKE SA (§2.18), with the
    /// old SA's PRF (`self`).
    pub fn skeyseed_rekey(self, sk_d_old: &[u8], g_ir: &[u8], ni: &[u8], nr: &[u8]) -> Vec<u8> {
        self.compute(sk_d_old, &[g_ir, ni, nr])
    }
}

/// Key lengths of one direction of an SA, by negotiated ENCR and INTEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyLengths {
    /// Encryption key octets.
    pub encr: usize,
    /// Salt octets that follow the encryption key in the keying material (4 for AES-GCM: RFC 4106
    /// §8.1, RFC 5282 §7.1).
    pub salt: usize,
    /// Integrity key octets (0 with an AEAD).
    pub integ: usize,
}

impl KeyLengths {
    /// Lengths for ENCR `encr` with Key Length attribute `key_bits` and INTEG `integ`.
    pub fn new(encr: EncrId, key_bits: Option<u16>, integ: IntegId) -> Result<KeyLengths, KeyError> {
        let unsupported_encr = KeyError::Unsupported { what: "ENCR", id: encr.0 };
        let key = match key_bits {
            Some(b @ (128 | 192 | 256)) => usize::from(b) / 8,
            _ => return Err(unsupported_encr),
        };
        let salt = match encr {
            EncrId::ENCR_AES_GCM_8 | EncrId::ENCR_AES_GCM_12 | EncrId::ENCR_AES_GCM_16 => 4,
            EncrId::ENCR_AES_CBC => 0,
            _ => return Err(unsupported_encr),
        };
        let integ = match integ {
            IntegId::NONE => 0,
            IntegId::AUTH_HMAC_SHA1_96 => 20,
            IntegId::AUTH_HMAC_SHA2_256_128 => 32,
            IntegId::AUTH_HMAC_SHA2_384_192 => 48,
            IntegId::AUTH_HMAC_SHA2_512_256 => 64,
            _ => return Err(KeyError::Unsupported { what: "INTEG", id: integ.0 }),
        };
        Ok(KeyLengths { encr: key, salt, integ })
    }

    /// Octets per direction.
    pub const fn total(self) -> usize {
        self.encr + self.salt + self.integ
    }
}

/// One direction's keys.
#[derive(Clone, PartialEq, Eq)]
pub struct DirKeys {
    /// Encryption key.
    pub encr: Vec<u8>,
    /// Salt (AES-GCM), else empty.
    pub salt: Vec<u8>,
    /// Integrity key, empty with an AEAD.
    pub integ: Vec<u8>,
}

impl core::fmt::Debug for DirKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DirKeys {{ encr: {} B, salt: {} B, integ: {} B }}",
            self.encr.len(),
            self.salt.len(),
            self.integ.len()
        )
    }
}

/// The IKE SA's keys (§2.14): {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
/// = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
#[derive(Clone, PartialEq, Eq)]
pub struct IkeKeys {
    /// SK_d: for CHILD SA keying material.
    pub sk_d: Vec<u8>,
    /// SK_ei (with salt) and SK_ai: protects messages from the initiator.
    pub initiator: DirKeys,
    /// SK_er and SK_ar.
    pub responder: DirKeys,
    /// SK_pi: for the initiator's AUTH payload.
    pub sk_pi: Vec<u8>,
    /// SK_pr.
    pub sk_pr: Vec<u8>,
}

impl core::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IkeKeys")
            .field("initiator", &self.initiator)
            .field("responder", &self.responder)
            .finish_non_exhaustive()
    }
}

/// A CHILD SA's keys (§2.17): KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), taken initiator→responder
/// first (encryption key, salt, then integrity key), then responder→initiator.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChildKeys {
    /// Keys for the SA carrying initiator → responder traffic.
    pub initiator: DirKeys,
    /// Keys for the SA carrying responder → initiator traffic.
    pub responder: DirKeys,
}

fn split(buf: &[u8], at: &mut usize, n: usize) -> Vec<u8> {
    let v = buf[*at..*at + n].to_vec();
    *at += n;
    v
}

/// One direction's CHILD SA keys: the encryption key (then its salt) first, the integrity key next
/// (§2.17).
fn dir(buf: &[u8], at: &mut usize, l: KeyLengths) -> DirKeys {
    let encr = split(buf, at, l.encr);
    let salt = split(buf, at, l.salt);
    let integ = split(buf, at, l.integ);
    DirKeys { encr, salt, integ }
}

/// Derives the IKE SA keys from SKEYSEED (§2.14).
pub fn ike_keys(
    prf: Prf,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    l: KeyLengths,
) -> Result<IkeKeys, KeyError> {
    let p = prf.output_len();
    let mut seed = Vec::with_capacity(ni.len() + nr.len() + 16);
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    seed.extend_from_slice(&spi_i.to_be_bytes());
    seed.extend_from_slice(&spi_r.to_be_bytes());
    let km = prf.prf_plus(skeyseed, &seed, 3 * p + 2 * l.total())?;
    let mut at = 0;
    let sk_d = split(&km, &mut at, p);
    let sk_ai = split(&km, &mut at, l.integ);
    let sk_ar = split(&km, &mut at, l.integ);
    let ei = split(&km, &mut at, l.encr);
    let si = split(&km, &mut at, l.salt);
    let er = split(&km, &mut at, l.encr);
    let sr = split(&km, &mut at, l.salt);
    let sk_pi = split(&km, &mut at, p);
    let sk_pr = split(&km, &mut at, p);
    Ok(IkeKeys {
        sk_d,
        initiator: DirKeys { encr: ei, salt: si, integ: sk_ai },
        responder: DirKeys { encr: er, salt: sr, integ: sk_ar },
        sk_pi,
        sk_pr,
    })
}

/// Derives a CHILD SA's keys (§2.17); `g_ir` is the new shared secret when the CREATE_CHILD_SA
/// carried KE payloads (PFS), else `None`.
pub fn child_keys(
    prf: Prf,
    sk_d: &[u8],
    g_ir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    l: KeyLengths,
) -> Result<ChildKeys, KeyError> {
    let mut seed = Vec::new();
    seed.extend_from_slice(g_ir.unwrap_or_default());
    seed.extend_from_slice(ni);
    seed.extend_from_slice(nr);
    let km = prf.prf_plus(sk_d, &seed, 2 * l.total())?;
    let mut at = 0;
    let initiator = dir(&km, &mut at, l);
    let responder = dir(&km, &mut at, l);
    Ok(ChildKeys { initiator, responder })
}
