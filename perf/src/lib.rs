//! Benchmarks, packet generators and the performance report of the hub's data plane.
//!
//! - [`scenario`]: a hub (WAN and LAN in-memory ports, one protected mGRE tunnel) with N spokes, each
//!   with a TEIB entry, an ESP SA pair and a routed LAN.
//! - [`traffic`]: generators for the three paths (LAN→tunnel, tunnel→LAN, spoke→hub→spoke) at 64 B,
//!   IMIX and 1400 B, and a runner that times only the hub's `Worker::poll` over real bursts.
//! - [`aead`]: raw AEAD throughput of a backend, no pipeline.
//! - [`openssl`]: the `openssl speed` reference.
//! - [`ike_cli`]: proposal parsing for the IKE tools (`ike-peer`, `ike-load`).
//!
//! Used by `benches/pipeline.rs` (criterion) and `src/bin/perf-report.rs` (the report).

pub mod aead;
pub mod ike_cli;
pub mod openssl;
pub mod scenario;
pub mod traffic;
