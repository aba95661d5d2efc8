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
//! The engine arrives with its own issue.

pub mod codec;
pub mod keys;
pub mod message;

pub use codec::{Error, Result};
