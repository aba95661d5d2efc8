//! The data plane of the DMVPN hub: wire formats, ESP security associations, per-VRF FIBs, the TEIB
//! (tunnel endpoint information base) and the packet pipeline that the worker cores run.
//!
//! Layering and contract:
//! - [`wire`]: one module per header; a zero-copy `Packet` view checked once (`new_checked`), after
//!   which no accessor panics, and a `Repr` that parses and emits. No panic on any input.
//! - [`crypto`], [`sa`], [`esp`]: the AEAD/cipher engines behind one batch interface, the SA runtime
//!   (sequence numbers, ESN, anti-replay, lifetimes) and the ESP transform (RFC 4303, RFC 4106, RFC 3948).
//! - [`fib`], [`teib`], [`tables`]: lookup tables that the control plane builds and publishes and that
//!   workers read without locks, one consistent snapshot per burst.
//! - [`pipeline`], [`worker`], [`port`]: the run-to-completion stages over bursts. On this path there is
//!   no lock, no allocation, no syscall, no `Result` per packet and no logging: a packet that cannot go
//!   on gets a [`drop::DropReason`], counted per worker, or is punted to the control plane.
//!
//! This crate depends on no protocol crate: NHRP and IKE reach it only through table publication
//! (down) and punts (up).

pub mod capture;
pub mod counters;
pub mod crypto;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod drop;
pub mod esp;
pub mod fib;
pub mod ids;
pub mod pcap;
pub mod pipeline;
pub mod pkt;
pub mod port;
pub mod prefetch;
pub mod punt;
pub mod sa;
pub mod static_config;
pub mod tables;
pub mod teib;
pub mod wire;
pub mod worker;
