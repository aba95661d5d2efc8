//! NHRP (RFC 2332 and Cisco's DMVPN extensions): codec and a sans-IO engine for the hub (NHS) and spoke
//! (NHC) roles.
//!
//! Contract: no I/O, no clock, no threads. Time comes in as an argument (`handle_datagram(now, ..)`,
//! `handle_timeout(now)`), and the engine speaks through `poll_transmit`, `poll_timeout` and
//! `poll_event`. No input makes anything here panic.
//!
//! - [`wire`]: the packet codec (RFC 2332 §5, Cisco Traffic Indication and NAT extension).
//! - [`cache`]: the protocol → NBMA bindings, their times and flags.
//! - [`engine`]: the NHS and NHC state machines.

pub mod cache;
pub mod engine;
pub mod wire;

pub use cache::{Entry, EntryFlags, EntryKind, Time, TunnelId};
pub use engine::{ConfigError, Counters, Engine, Event, NhsConfig, NhsState, NhsStatus, Transmit, TunnelConfig};
