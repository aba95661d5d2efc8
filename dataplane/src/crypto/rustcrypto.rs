//! The RustCrypto backend: `aes-gcm` (AES-NI + PCLMULQDQ via the `aes` and `ghash` crates, CTR and GHASH
//! as two passes), `aes` + `cbc`, `hmac` + `sha1`/`sha2`.
//!
//! Keys are expanded once, when the SA is created. Per packet, CBC clones the expanded AES key schedule
//! into the mode's state and HMAC clones the precomputed inner/outer hash states: copies, no key setup.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit};
use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use hmac::{Hmac, Mac};

use super::{AesKey, CryptoError, HashAlg, MacOut, GCM_TAG_LEN};

/// An expanded AES-GCM key.
pub(crate) enum GcmKey {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

impl GcmKey {
    pub(crate) fn new(key: &AesKey) -> Self {
        match key {
            AesKey::Aes128(k) => Self::Aes128(Box::new(Aes128Gcm::new(k.into()))),
            AesKey::Aes256(k) => Self::Aes256(Box::new(Aes256Gcm::new(k.into()))),
        }
    }

    /// Encrypts `in_out[..len - 16]` in place and writes the tag into the last 16 bytes.
    pub(crate) fn seal(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> bool {
        let Some(split) = in_out.len().checked_sub(GCM_TAG_LEN) else { return false };
        let (text, tag_out) = in_out.split_at_mut(split);
        let nonce = (&nonce).into();
        let tag = match self {
            Self::Aes128(k) => k.encrypt_in_place_detached(nonce, aad, text),
            Self::Aes256(k) => k.encrypt_in_place_detached(nonce, aad, text),
        };
        match tag {
            Ok(tag) => {
                tag_out.copy_from_slice(&tag);
                true
            }
            Err(_) => false,
        }
    }

    /// Verifies the tag in the last 16 bytes and decrypts the rest in place; `false` if it does not verify.
    pub(crate) fn open(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> bool {
        let Some(split) = in_out.len().checked_sub(GCM_TAG_LEN) else { return false };
        let (text, tag) = in_out.split_at_mut(split);
        let (nonce, tag) = ((&nonce).into(), (&*tag).into());
        match self {
            Self::Aes128(k) => k.decrypt_in_place_detached(nonce, aad, text, tag).is_ok(),
            Self::Aes256(k) => k.decrypt_in_place_detached(nonce, aad, text, tag).is_ok(),
        }
    }
}

/// An expanded AES key for CBC (RFC 3602). Used by both backends.
// Unboxed on purpose: one per SA, read on every packet; an indirection would cost more than the bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub(crate) enum CbcKey {
    Aes128(aes::Aes128),
    Aes256(aes::Aes256),
}

impl CbcKey {
    pub(crate) fn new(key: &AesKey) -> Self {
        match key {
            AesKey::Aes128(k) => Self::Aes128(aes::Aes128::new(k.into())),
            AesKey::Aes256(k) => Self::Aes256(aes::Aes256::new(k.into())),
        }
    }

    /// Encrypts `buf` (a whole number of 16-byte blocks) in place; `false`, changing nothing, otherwise.
    pub(crate) fn encrypt(&self, iv: &[u8; 16], buf: &mut [u8]) -> bool {
        let len = buf.len();
        if len & 15 != 0 {
            return false;
        }
        match self {
            Self::Aes128(k) => {
                cbc::Encryptor::inner_iv_init(k.clone(), iv.into()).encrypt_padded_mut::<NoPadding>(buf, len).is_ok()
            }
            Self::Aes256(k) => {
                cbc::Encryptor::inner_iv_init(k.clone(), iv.into()).encrypt_padded_mut::<NoPadding>(buf, len).is_ok()
            }
        }
    }

    /// Decrypts `buf` (a whole number of 16-byte blocks) in place; `false`, changing nothing, otherwise.
    pub(crate) fn decrypt(&self, iv: &[u8; 16], buf: &mut [u8]) -> bool {
        if buf.len() & 15 != 0 {
            return false;
        }
        match self {
            Self::Aes128(k) => {
                cbc::Decryptor::inner_iv_init(k.clone(), iv.into()).decrypt_padded_mut::<NoPadding>(buf).is_ok()
            }
            Self::Aes256(k) => {
                cbc::Decryptor::inner_iv_init(k.clone(), iv.into()).decrypt_padded_mut::<NoPadding>(buf).is_ok()
            }
        }
    }
}

/// The per-SA key that makes CBC IVs unpredictable (RFC 3602 §3; RFC 4303 §3.3.2 asks for IVs an attacker
/// cannot predict): IV = AES-128(iv_key, 64-bit sequence number || 0^64). Distinct sequence numbers give
/// distinct IVs, and without `iv_key` they look random.
#[derive(Clone)]
pub(crate) struct IvKey(aes::Aes128);

impl IvKey {
    pub(crate) fn new(seed: &[u8; 16]) -> Self {
        Self(aes::Aes128::new(seed.into()))
    }

    pub(crate) fn iv(&self, seq: u64) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&seq.to_be_bytes());
        let mut block = block.into();
        self.0.encrypt_block(&mut block);
        block.into()
    }
}

/// An HMAC key with its inner and outer hash states precomputed.
#[derive(Clone)]
pub(crate) enum HmacKey {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
}

impl HmacKey {
    pub(crate) fn new(hash: HashAlg, key: &[u8]) -> Result<Self, CryptoError> {
        // HMAC takes keys of any length (RFC 2104 §3); the error arm is there only because the trait has one.
        let rejected = |_| CryptoError::KeyRejected { backend: "rustcrypto" };
        Ok(match hash {
            HashAlg::Sha1 => Self::Sha1(Mac::new_from_slice(key).map_err(rejected)?),
            HashAlg::Sha256 => Self::Sha256(Mac::new_from_slice(key).map_err(rejected)?),
        })
    }

    /// HMAC over `data` followed by `tail` (the ESN high bits, RFC 4303 §2.2.1), untruncated.
    pub(crate) fn sign(&self, data: &[u8], tail: &[u8]) -> MacOut {
        match self {
            Self::Sha1(k) => {
                let mut m = k.clone();
                m.update(data);
                m.update(tail);
                MacOut::from_slice(&m.finalize().into_bytes())
            }
            Self::Sha256(k) => {
                let mut m = k.clone();
                m.update(data);
                m.update(tail);
                MacOut::from_slice(&m.finalize().into_bytes())
            }
        }
    }
}
