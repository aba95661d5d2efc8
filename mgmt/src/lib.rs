//! Management: the config model, the control loop that drives `nhrp` and `ike` and publishes tables to
//! the data plane, the `dmvpnd` daemon and the `dmvpnctl` CLI.
//!
//! - [`config`]: the one versioned configuration model (TOML file, JSON over the API), its validation
//!   with errors that name the field, and [`config::store::ConfigStore`], which applies and persists a
//!   configuration atomically.
//! - [`plan`]: the configuration mapped onto the data plane's tables and the engines' configurations.
//! - [`control`]: the control loop (sans-IO: punts and time in, table publications and packets out).
//! - [`frames`]: the ARP and UDP/IPv4 packets the management core makes and reads.
//! - [`show`]: the operational views (JSON for the API, IOS text for `dmvpnctl`) cut from the status JSON.
//! - [`events`]: events (peer, NHS, IKE SA up and down) and conditional debug lines with millisecond
//!   timestamps, in bounded rings and on a stream; [`debug`]: the per-peer debug conditions;
//!   [`capture`]: packet capture of a port, a tunnel or a peer into a pcap, driven through the API.
//!
//! - [`api`]: the REST API over HTTPS (bearer tokens with roles; configuration changes validated,
//!   applied through a [`api::Backend`] and persisted, conflicting ones refused; views, actions,
//!   metrics) and its OpenAPI document; [`api::daemon`] is the daemon's backend, a bounded queue to the
//!   control loop.
//!
//! - [`ctl`]: `dmvpnctl`'s commands over the REST API (debug conditions, the event stream, capture).
//!
//! The binaries: `dmvpnd` (feature `dpdk`) runs the control loop on the main lcore over
//! `dataplane::dpdk::runtime`; `dmvpnctl` reads its status socket.

pub mod api;
pub mod capture;
pub mod config;
pub mod control;
pub mod ctl;
pub mod debug;
pub mod events;
pub mod frames;
pub mod plan;
pub mod show;
