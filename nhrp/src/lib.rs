//! NHRP (RFC 2332 and Cisco's DMVPN extensions): codec and a sans-IO engine for the hub (NHS) and spoke
//! (NHC) roles.
//!
//! Contract: no I/O, no clock, no threads. Time comes in as an argument (`handle_datagram(now, ..)`,
//! `handle_timeout(now)`), and the engine speaks through `poll_transmit`, `poll_timeout` and
//! `poll_event`. No input makes anything here panic.
//!
//! - [`wire`]: the packet codec (RFC 2332 §5, Cisco Traffic Indication and NAT extension).

pub mod wire;
