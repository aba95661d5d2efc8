//! The `ring` backend: BoringSSL's assembly AES-GCM (VAES+AVX2 or AES-NI+PCLMULQDQ, picked at run time)
//! and HMAC-SHA-1/SHA-256 (SHA-NI where present). `ring` has no AES-CBC, so CBC SAs on this backend use
//! the RustCrypto cipher ([`super::rustcrypto::CbcKey`]) with `ring`'s HMAC.
//!
//! Keys are expanded once, when the SA is created; sealing and opening do no setup.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;

use super::{AesKey, CryptoError, HashAlg, MacOut, GCM_TAG_LEN};

/// An expanded AES-GCM key.
pub(crate) struct GcmKey(LessSafeKey);

impl GcmKey {
    pub(crate) fn new(key: &AesKey) -> Result<Self, CryptoError> {
        let (alg, bytes): (&'static aead::Algorithm, &[u8]) = match key {
            AesKey::Aes128(k) => (&aead::AES_128_GCM, k),
            AesKey::Aes256(k) => (&aead::AES_256_GCM, k),
        };
        let unbound = UnboundKey::new(alg, bytes).map_err(|_| CryptoError::KeyRejected { backend: "ring" })?;
        Ok(Self(LessSafeKey::new(unbound)))
    }

    /// Encrypts `in_out[..len - 16]` in place and writes the tag into the last 16 bytes.
    pub(crate) fn seal(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> bool {
        let Some(split) = in_out.len().checked_sub(GCM_TAG_LEN) else { return false };
        let (text, tag_out) = in_out.split_at_mut(split);
        match self.0.seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), text) {
            Ok(tag) => {
                tag_out.copy_from_slice(tag.as_ref());
                true
            }
            Err(_) => false,
        }
    }

    /// Verifies the tag in the last 16 bytes and decrypts the rest in place; `false` if it does not verify.
    pub(crate) fn open(&self, nonce: [u8; 12], aad: &[u8], in_out: &mut [u8]) -> bool {
        self.0.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out).is_ok()
    }
}

/// An HMAC key with its inner and outer hash states precomputed.
pub(crate) struct HmacKey(hmac::Key);

impl HmacKey {
    pub(crate) fn new(hash: HashAlg, key: &[u8]) -> Self {
        Self(match hash {
            HashAlg::Sha1 => hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key),
            HashAlg::Sha256 => hmac::Key::new(hmac::HMAC_SHA256, key),
        })
    }

    /// HMAC over `data` followed by `tail` (the ESN high bits, RFC 4303 §2.2.1), untruncated.
    pub(crate) fn sign(&self, data: &[u8], tail: &[u8]) -> MacOut {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(data);
        ctx.update(tail);
        MacOut::from_slice(ctx.sign().as_ref())
    }
}
