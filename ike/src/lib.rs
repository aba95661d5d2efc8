//! IKEv2 (RFC 7296): codec, key schedule and a sans-IO engine (initiator and responder).
//!
//! Contract: no I/O, no clock, no threads; time, randomness and crypto are injected. The engine arrives
//! with its own issue; this crate holds the seam until then.
