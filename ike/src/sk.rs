//! Protection of the Encrypted payload (RFC 7296 §3.14) and the Encrypted Fragment payload
//! (RFC 7383 §2.5) with the IKE SA's SK_e/SK_a keys.
//!
//! Layer: between the codec ([`crate::message`]) and the engine. Contract: [`SkCipher::seal`] emits a
//! whole message whose last payload is SK or SKF; [`SkCipher::open`] checks the ICV over the datagram
//! as received before it decrypts anything and never panics on any input.
//!
//! - AES-GCM with a 16-octet ICV (RFC 5282): 8-octet explicit IV (a per-key counter, so never
//!   repeated), nonce = salt (4 octets from the keying material) | IV, AAD = everything from the first
//!   octet of the IKE header up to the IV (§5.1), padding to no particular alignment.
//! - AES-CBC (RFC 3602) with HMAC-SHA-2 (RFC 4868): a random 16-octet IV, padding to the block size,
//!   and the truncated HMAC over the whole message up to the ICV (§3.14).

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce, Tag};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};

use crate::crypto::Random;
use crate::keys::DirKeys;
use crate::message::{EncrId, Encrypted, EncryptedFragment, IntegId, Message, Payload, PayloadBody, PayloadType};

/// Why an SK payload could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SkError {
    /// The negotiated transforms are not ones this module implements.
    #[error("SK payload: unsupported ENCR {encr:?} ({key_bits} bits) with INTEG {integ:?}")]
    Unsupported {
        /// Encryption transform.
        encr: EncrId,
        /// Its key length.
        key_bits: u16,
        /// Integrity transform.
        integ: IntegId,
    },
    /// The payload is shorter than IV + ICV, or its ciphertext is not whole blocks.
    #[error("SK payload: {len} octets of IV, ciphertext and ICV cannot be valid")]
    BadLength {
        /// Octets of SK payload data.
        len: usize,
    },
    /// The ICV did not verify: corrupted, forged, or keyed differently.
    #[error("SK payload: integrity check failed")]
    Integrity,
    /// The Pad Length octet points before the start of the plaintext.
    #[error("SK payload: pad length {pad} with {len} octets of plaintext")]
    BadPadding {
        /// Pad Length.
        pad: usize,
        /// Plaintext octets.
        len: usize,
    },
    /// The message could not be emitted.
    #[error("SK payload: {0}")]
    Codec(#[from] crate::codec::Error),
}

#[derive(Clone)]
enum Integ {
    Sha256(Hmac<Sha256>),
    Sha384(Hmac<Sha384>),
    Sha512(Hmac<Sha512>),
}

impl Integ {
    fn new(id: IntegId, key: &[u8]) -> Option<Integ> {
        Some(match id {
            IntegId::AUTH_HMAC_SHA2_256_128 => Integ::Sha256(Mac::new_from_slice(key).ok()?),
            IntegId::AUTH_HMAC_SHA2_384_192 => Integ::Sha384(Mac::new_from_slice(key).ok()?),
            IntegId::AUTH_HMAC_SHA2_512_256 => Integ::Sha512(Mac::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    /// Truncated ICV length (RFC 4868 §2.6).
    fn icv_len(&self) -> usize {
        match self {
            Integ::Sha256(_) => 16,
            Integ::Sha384(_) => 24,
            Integ::Sha512(_) => 32,
        }
    }

    fn tag(&self, data: &[u8]) -> Vec<u8> {
        let mut t = match self {
            Integ::Sha256(m) => m.clone().chain_update(data).finalize().into_bytes().to_vec(),
            Integ::Sha384(m) => m.clone().chain_update(data).finalize().into_bytes().to_vec(),
            Integ::Sha512(m) => m.clone().chain_update(data).finalize().into_bytes().to_vec(),
        };
        t.truncate(self.icv_len());
        t
    }

    fn verify(&self, data: &[u8], icv: &[u8]) -> bool {
        match self {
            Integ::Sha256(m) => m.clone().chain_update(data).verify_truncated_left(icv).is_ok(),
            Integ::Sha384(m) => m.clone().chain_update(data).verify_truncated_left(icv).is_ok(),
            Integ::Sha512(m) => m.clone().chain_update(data).verify_truncated_left(icv).is_ok(),
        }
    }
}

#[derive(Clone)]
enum Kind {
    Gcm128(Box<Aes128Gcm>),
    Gcm256(Box<Aes256Gcm>),
    Cbc128 { key: [u8; 16], integ: Integ },
    Cbc256 { key: [u8; 32], integ: Integ },
}

/// One direction's SK payload protection.
#[derive(Clone)]
pub struct SkCipher {
    kind: Kind,
    salt: [u8; 4],
    /// The next GCM IV (RFC 5282 §3.1: must never repeat under one key).
    counter: u64,
}

impl core::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SkCipher").field("counter", &self.counter).finish_non_exhaustive()
    }
}

const GCM_IV: usize = 8;
const GCM_ICV: usize = 16;
const CBC_IV: usize = 16;

impl SkCipher {
    /// The cipher for negotiated `encr` (key length `key_bits`) and `integ` with one direction's keys.
    pub fn new(encr: EncrId, key_bits: u16, integ: IntegId, keys: &DirKeys) -> Result<SkCipher, SkError> {
        let unsupported = SkError::Unsupported { encr, key_bits, integ };
        let kind = match (encr, key_bits, integ) {
            (EncrId::ENCR_AES_GCM_16, 128, IntegId::NONE) => {
                Kind::Gcm128(Box::new(Aes128Gcm::new_from_slice(&keys.encr).map_err(|_| unsupported)?))
            }
            (EncrId::ENCR_AES_GCM_16, 256, IntegId::NONE) => {
                Kind::Gcm256(Box::new(Aes256Gcm::new_from_slice(&keys.encr).map_err(|_| unsupported)?))
            }
            (EncrId::ENCR_AES_CBC, 128, _) => Kind::Cbc128 {
                key: keys.encr.as_slice().try_into().map_err(|_| unsupported)?,
                integ: Integ::new(integ, &keys.integ).ok_or(unsupported)?,
            },
            (EncrId::ENCR_AES_CBC, 256, _) => Kind::Cbc256 {
                key: keys.encr.as_slice().try_into().map_err(|_| unsupported)?,
                integ: Integ::new(integ, &keys.integ).ok_or(unsupported)?,
            },
            _ => return Err(unsupported),
        };
        let salt = match kind {
            Kind::Gcm128(_) | Kind::Gcm256(_) => keys.salt.as_slice().try_into().map_err(|_| unsupported)?,
            _ => [0; 4],
        };
        Ok(SkCipher { kind, salt, counter: 0 })
    }

    /// Octets an SK payload adds around `plaintext_len` octets of inner payloads: IV, padding, Pad
    /// Length and ICV.
    pub fn overhead(&self, plaintext_len: usize) -> usize {
        match &self.kind {
            Kind::Gcm128(_) | Kind::Gcm256(_) => GCM_IV + 1 + GCM_ICV,
            Kind::Cbc128 { integ, .. } | Kind::Cbc256 { integ, .. } => {
                CBC_IV + (plaintext_len + 1).div_ceil(16) * 16 - plaintext_len + integ.icv_len()
            }
        }
    }

    /// Emits `msg` (its header fields and any payloads that travel in the clear) followed by an SK
    /// payload (or, with `fragment = Some((number, total))`, an SKF payload) that carries
    /// `plaintext`, the already-emitted chain whose first payload is `next_payload`.
    pub fn seal(
        &mut self,
        msg: &Message,
        next_payload: PayloadType,
        plaintext: &[u8],
        fragment: Option<(u16, u16)>,
        rng: &mut dyn Random,
    ) -> Result<Vec<u8>, SkError> {
        let (iv, body, icv_len) = match &self.kind {
            Kind::Gcm128(_) | Kind::Gcm256(_) => {
                let iv = self.counter.to_be_bytes().to_vec();
                self.counter = self.counter.wrapping_add(1);
                let mut body = plaintext.to_vec();
                body.push(0);
                (iv, body, GCM_ICV)
            }
            Kind::Cbc128 { integ, .. } | Kind::Cbc256 { integ, .. } => {
                let mut iv = vec![0; CBC_IV];
                rng.fill(&mut iv);
                let padded = (plaintext.len() + 1).div_ceil(16) * 16;
                let pad = padded - plaintext.len() - 1;
                let mut body = plaintext.to_vec();
                body.resize(padded - 1, 0);
                body.push(pad as u8);
                (iv, body, integ.icv_len())
            }
        };
        let data_len = iv.len() + body.len() + icv_len;
        let placeholder = vec![0; data_len];
        let last = match fragment {
            None => PayloadBody::Encrypted(Encrypted { next_payload, data: placeholder }),
            Some((number, total)) => {
                PayloadBody::EncryptedFragment(EncryptedFragment { next_payload, number, total, data: placeholder })
            }
        };
        let mut m = msg.clone();
        m.payloads.push(Payload::new(last));
        let mut out = m.to_vec()?;
        let start = out.len() - data_len;
        let (aad, data) = out.split_at_mut(start);
        data[..iv.len()].copy_from_slice(&iv);
        let (_, rest) = data.split_at_mut(iv.len());
        let (ct, icv) = rest.split_at_mut(body.len());
        ct.copy_from_slice(&body);
        match &self.kind {
            Kind::Gcm128(c) => icv.copy_from_slice(&seal_gcm(c.as_ref(), &self.salt, &iv, aad, ct)),
            Kind::Gcm256(c) => icv.copy_from_slice(&seal_gcm(c.as_ref(), &self.salt, &iv, aad, ct)),
            Kind::Cbc128 { key, .. } => cbc_encrypt::<aes::Aes128>(key, &iv, ct),
            Kind::Cbc256 { key, .. } => cbc_encrypt::<aes::Aes256>(key, &iv, ct),
        }
        if let Kind::Cbc128 { integ, .. } | Kind::Cbc256 { integ, .. } = &self.kind {
            let n = out.len() - icv_len;
            let tag = integ.tag(&out[..n]);
            out[n..].copy_from_slice(&tag);
        }
        Ok(out)
    }

    /// Verifies and decrypts the SK or SKF payload that ends `datagram`, whose data (IV, ciphertext,
    /// ICV) are its last `data_len` octets, and returns the inner payload octets without padding.
    pub fn open(&self, datagram: &[u8], data_len: usize) -> Result<Vec<u8>, SkError> {
        let bad = SkError::BadLength { len: data_len };
        let start = datagram.len().checked_sub(data_len).ok_or(bad)?;
        let (aad, data) = datagram.split_at(start);
        let mut body = match &self.kind {
            Kind::Gcm128(c) => open_gcm(c.as_ref(), &self.salt, aad, data)?,
            Kind::Gcm256(c) => open_gcm(c.as_ref(), &self.salt, aad, data)?,
            Kind::Cbc128 { key, integ } => open_cbc::<aes::Aes128>(key, integ, datagram, start)?,
            Kind::Cbc256 { key, integ } => open_cbc::<aes::Aes256>(key, integ, datagram, start)?,
        };
        let pad = usize::from(*body.last().ok_or(bad)?);
        if pad + 1 > body.len() {
            return Err(SkError::BadPadding { pad, len: body.len() });
        }
        body.truncate(body.len() - pad - 1);
        Ok(body)
    }
}

fn seal_gcm<C: AeadInPlace>(c: &C, salt: &[u8; 4], iv: &[u8], aad: &[u8], buf: &mut [u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(iv);
    c.encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, buf)
        .unwrap_or_else(|_| unreachable!("AES-GCM seals any message under 64 GiB"))
        .to_vec()
}

fn open_gcm<C: AeadInPlace>(c: &C, salt: &[u8; 4], aad: &[u8], data: &[u8]) -> Result<Vec<u8>, SkError> {
    if data.len() < GCM_IV + GCM_ICV + 1 {
        return Err(SkError::BadLength { len: data.len() });
    }
    let (iv, rest) = data.split_at(GCM_IV);
    let (ct, icv) = rest.split_at(rest.len() - GCM_ICV);
    let mut nonce = [0u8; 12];
    nonce[..4].copy_from_slice(salt);
    nonce[4..].copy_from_slice(iv);
    let mut buf = ct.to_vec();
    c.decrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut buf, Tag::from_slice(icv))
        .map_err(|_| SkError::Integrity)?;
    Ok(buf)
}

/// `datagram[start..]` is IV | ciphertext | ICV.
fn open_cbc<C>(key: &[u8], integ: &Integ, datagram: &[u8], start: usize) -> Result<Vec<u8>, SkError>
where
    C: cbc::cipher::BlockDecrypt + cbc::cipher::BlockCipher + KeyInit,
    cbc::Decryptor<C>: KeyIvInit,
{
    let data = &datagram[start..];
    let icv_len = integ.icv_len();
    if data.len() < CBC_IV + 16 + icv_len || !(data.len() - CBC_IV - icv_len).is_multiple_of(16) {
        return Err(SkError::BadLength { len: data.len() });
    }
    let n = datagram.len() - icv_len;
    if !integ.verify(&datagram[..n], &datagram[n..]) {
        return Err(SkError::Integrity);
    }
    let mut buf = data[CBC_IV..data.len() - icv_len].to_vec();
    if let Ok(dec) = cbc::Decryptor::<C>::new_from_slices(key, &data[..CBC_IV]) {
        // Whole blocks: checked above.
        let _ = dec.decrypt_padded_mut::<NoPadding>(&mut buf);
    }
    Ok(buf)
}

fn cbc_encrypt<C>(key: &[u8], iv: &[u8], buf: &mut [u8])
where
    C: cbc::cipher::BlockEncrypt + cbc::cipher::BlockCipher + KeyInit,
    cbc::Encryptor<C>: KeyIvInit,
{
    if let Ok(enc) = cbc::Encryptor::<C>::new_from_slices(key, iv) {
        let len = buf.len();
        // Whole blocks by construction (padded in `seal`), so NoPadding cannot fail.
        let _ = enc.encrypt_padded_mut::<NoPadding>(buf, len);
    }
}
