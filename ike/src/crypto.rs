//! Randomness and Diffie-Hellman for the engine (RFC 7296 §1.2, §2.10, §3.4).
//!
//! Layer: below the engine, above the RustCrypto primitives. Contract: the engine draws every random
//! byte (SPIs, nonces, DH private keys, CBC IVs) from one injected [`Random`], so a test with a seeded
//! generator is deterministic; [`OsRandom`] is the default for the daemon. Peer public values are
//! checked before use, and a bad one is an error, never a panic.
//!
//! Key Exchange data formats:
//! - groups 19, 20, 21 (RFC 5903 §7): x | y, each as long as the field; the shared secret is x;
//! - group 31 (RFC 8031 §2): the 32-octet u-coordinate; an all-zero shared secret is refused (§2.3);
//! - group 14 (RFC 3526 §3, RFC 7296 §3.4): g^x mod p, left-padded to 256 octets, likewise the secret;
//!   the peer's value must lie in 2..=p-2 (RFC 7296 §5 recommends the check). The modular
//!   exponentiation is num-bigint's, which is not constant-time: prefer the elliptic groups.

use num_bigint::BigUint;

use crate::message::DhGroup;

/// Where the engine's random bytes come from.
pub trait Random {
    /// Fills `buf` with cryptographically strong random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's generator (`getrandom`).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        // Fails only where the OS has no entropy source at all: nothing safe can go on then.
        getrandom::getrandom(buf).unwrap_or_else(|e| panic!("getrandom failed: {e}"));
    }
}

/// Why a key exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DhError {
    /// A group this implementation does not offer.
    #[error("DH group {0:?} is not supported")]
    Unsupported(DhGroup),
    /// The peer's KE data has the wrong length for its group.
    #[error("KE data for {group:?}: {got} octets, expected {expected}")]
    BadLength {
        /// The group.
        group: DhGroup,
        /// Octets received.
        got: usize,
        /// Octets the group uses.
        expected: usize,
    },
    /// The peer's public value is not a valid element (not on the curve, out of range, or a
    /// small-order point giving an all-zero secret).
    #[error("KE data for {0:?} is not a valid public value")]
    BadPublic(DhGroup),
}

/// The groups this implementation offers, strongest-first is the caller's business.
pub const SUPPORTED_GROUPS: [DhGroup; 5] =
    [DhGroup::ECP_256, DhGroup::ECP_384, DhGroup::ECP_521, DhGroup::CURVE25519, DhGroup::MODP_2048];

/// Public value length of a supported group.
pub fn public_len(group: DhGroup) -> Option<usize> {
    match group {
        DhGroup::ECP_256 => Some(64),
        DhGroup::ECP_384 => Some(96),
        DhGroup::ECP_521 => Some(132),
        DhGroup::CURVE25519 => Some(32),
        DhGroup::MODP_2048 => Some(256),
        _ => None,
    }
}

/// RFC 3526 §3: the 2048-bit MODP prime; the generator is 2.
const MODP_2048_P: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD\
EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F2411\
7C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D\
670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497\
CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";

fn modp_p() -> BigUint {
    BigUint::parse_bytes(MODP_2048_P.as_bytes(), 16).unwrap_or_else(|| unreachable!("RFC 3526 prime parses"))
}

/// Adapts a [`Random`] to the `rand_core` traits the elliptic-curve crates take.
struct Rng<'a>(&'a mut dyn Random);

impl rand_core::RngCore for Rng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for Rng<'_> {}

enum Secret {
    P256(p256::NonZeroScalar),
    P384(p384::NonZeroScalar),
    P521(p521::NonZeroScalar),
    X25519(x25519_dalek::StaticSecret),
    Modp(BigUint),
}

/// One side of a Diffie-Hellman exchange: a fresh private key and its public value.
pub struct KeyExchange {
    group: DhGroup,
    secret: Secret,
    public: Vec<u8>,
}

impl core::fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyExchange").field("group", &self.group).finish_non_exhaustive()
    }
}

/// x | y of an uncompressed SEC1 point (drops the 0x04 tag).
fn xy(sec1: &[u8]) -> Vec<u8> {
    sec1.get(1..).unwrap_or_default().to_vec()
}

/// 0x04 | x | y, for parsing the peer's RFC 5903 value as SEC1.
fn sec1(xy: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(xy.len() + 1);
    v.push(4);
    v.extend_from_slice(xy);
    v
}

fn left_pad(v: Vec<u8>, len: usize) -> Vec<u8> {
    if v.len() >= len {
        return v;
    }
    let mut out = vec![0; len - v.len()];
    out.extend_from_slice(&v);
    out
}

macro_rules! ecdh {
    ($curve:ident, $scalar:expr, $peer:expr, $group:expr) => {{
        let pk = $curve::PublicKey::from_sec1_bytes(&sec1($peer)).map_err(|_| DhError::BadPublic($group))?;
        let shared = $curve::elliptic_curve::ecdh::diffie_hellman($scalar, pk.as_affine());
        shared.raw_secret_bytes().to_vec()
    }};
}

impl KeyExchange {
    /// A fresh private key for `group`, drawn from `rng`.
    pub fn generate(group: DhGroup, rng: &mut dyn Random) -> Result<KeyExchange, DhError> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let (secret, public) = match group {
            DhGroup::ECP_256 => {
                let s = p256::NonZeroScalar::random(&mut Rng(rng));
                let p = p256::PublicKey::from_secret_scalar(&s).to_encoded_point(false);
                (Secret::P256(s), xy(p.as_bytes()))
            }
            DhGroup::ECP_384 => {
                let s = p384::NonZeroScalar::random(&mut Rng(rng));
                let p = p384::PublicKey::from_secret_scalar(&s).to_encoded_point(false);
                (Secret::P384(s), xy(p.as_bytes()))
            }
            DhGroup::ECP_521 => {
                let s = p521::NonZeroScalar::random(&mut Rng(rng));
                let p = p521::PublicKey::from_secret_scalar(&s).to_encoded_point(false);
                (Secret::P521(s), xy(p.as_bytes()))
            }
            DhGroup::CURVE25519 => {
                let mut b = [0u8; 32];
                rng.fill(&mut b);
                let s = x25519_dalek::StaticSecret::from(b);
                let p = x25519_dalek::PublicKey::from(&s).as_bytes().to_vec();
                (Secret::X25519(s), p)
            }
            DhGroup::MODP_2048 => {
                // A 256-bit exponent: twice the group's ~112-bit strength (RFC 3526 §8).
                let mut b = [0u8; 32];
                rng.fill(&mut b);
                let x = BigUint::from_bytes_be(&b) | BigUint::from(1u8) << 255u32;
                let y = BigUint::from(2u8).modpow(&x, &modp_p());
                (Secret::Modp(x), left_pad(y.to_bytes_be(), 256))
            }
            g => return Err(DhError::Unsupported(g)),
        };
        Ok(KeyExchange { group, secret, public })
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value, as the KE payload carries it.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// g^ir from the peer's KE data.
    pub fn shared(&self, peer: &[u8]) -> Result<Vec<u8>, DhError> {
        let group = self.group;
        let expected = public_len(group).ok_or(DhError::Unsupported(group))?;
        if peer.len() != expected {
            return Err(DhError::BadLength { group, got: peer.len(), expected });
        }
        Ok(match &self.secret {
            Secret::P256(s) => ecdh!(p256, s, peer, group),
            Secret::P384(s) => ecdh!(p384, s, peer, group),
            Secret::P521(s) => ecdh!(p521, s, peer, group),
            Secret::X25519(s) => {
                let mut b = [0u8; 32];
                b.copy_from_slice(peer);
                let shared = s.diffie_hellman(&x25519_dalek::PublicKey::from(b));
                if !shared.was_contributory() {
                    return Err(DhError::BadPublic(group));
                }
                shared.as_bytes().to_vec()
            }
            Secret::Modp(x) => {
                let p = modp_p();
                let y = BigUint::from_bytes_be(peer);
                let one = BigUint::from(1u8);
                if y <= one || y >= &p - &one {
                    return Err(DhError::BadPublic(group));
                }
                left_pad(y.modpow(x, &p).to_bytes_be(), 256)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator for tests (splitmix64).
    struct Counter(u64);
    impl Random for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let z = (self.0 ^ (self.0 >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                *b = (z ^ (z >> 31)) as u8;
            }
        }
    }

    #[test]
    fn every_group_agrees_and_has_its_length() {
        let mut rng = Counter(1);
        for g in SUPPORTED_GROUPS {
            let a = KeyExchange::generate(g, &mut rng).unwrap();
            let b = KeyExchange::generate(g, &mut rng).unwrap();
            assert_eq!(a.public().len(), public_len(g).unwrap(), "{g:?}");
            let s1 = a.shared(b.public()).unwrap();
            let s2 = b.shared(a.public()).unwrap();
            assert_eq!(s1, s2, "{g:?}");
            assert_ne!(a.public(), b.public());
            assert!(a.shared(&b.public()[1..]).is_err());
        }
    }

    #[test]
    fn bad_public_values_are_refused() {
        let mut rng = Counter(9);
        // Not on the curve.
        let a = KeyExchange::generate(DhGroup::ECP_256, &mut rng).unwrap();
        assert_eq!(a.shared(&[1; 64]), Err(DhError::BadPublic(DhGroup::ECP_256)));
        // The all-zero u-coordinate is small order: the shared secret would be zero.
        let a = KeyExchange::generate(DhGroup::CURVE25519, &mut rng).unwrap();
        assert_eq!(a.shared(&[0; 32]), Err(DhError::BadPublic(DhGroup::CURVE25519)));
        // 1 and p-1 are refused for MODP.
        let a = KeyExchange::generate(DhGroup::MODP_2048, &mut rng).unwrap();
        let mut one = [0u8; 256];
        one[255] = 1;
        assert_eq!(a.shared(&one), Err(DhError::BadPublic(DhGroup::MODP_2048)));
        let pm1 = left_pad((modp_p() - BigUint::from(1u8)).to_bytes_be(), 256);
        assert_eq!(a.shared(&pm1), Err(DhError::BadPublic(DhGroup::MODP_2048)));
        assert!(matches!(KeyExchange::generate(DhGroup::MODP_1024, &mut rng), Err(DhError::Unsupported(_))));
    }
}
