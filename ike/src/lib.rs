//! IKEv2 (RFC 7296): codec, key schedule and a sans-IO engine (initiator and responder).
//!
//! Contract: no I/O, no clock, no threads; time, randomness and crypto are injected. No input makes
//! the codec panic.
//!
//! - [`message`]: the message codec (§3) — [`message::Header`], [`message::Message`] and its typed
//!   payloads, with [`codec::Error`] naming what was wrong and at which offset, and mapping to the
//!   Notify a responder answers with.
//! - [`keys`]: the key schedule (§2.13, §2.14, §2.17, §2.18): prf, prf+, SKEYSEED, SK_* and KEYMAT.
//!
//! - [`cert`]: X.509 certificate authentication with RFC 7427 digital signatures: our chain and key,
//!   the CA trust store, CRLs, identity checks.
//! - [`crypto`]: injected randomness ([`crypto::Random`]) and Diffie-Hellman groups 14, 19, 20, 21, 31.
//! - [`sk`]: the Encrypted payload's protection (AES-GCM-16, AES-CBC with HMAC-SHA-2).
//! - [`config`]: configuration, proposal selection, the PSK keyring, traffic-selector narrowing.
//! - [`engine`]: the sans-IO [`engine::Engine`] (initiator and responder).

pub mod cert;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod engine;
pub mod keys;
pub mod message;
pub mod sk;

pub use codec::{Error, Result};
