//! Management: the config model, the REST API, the control loop that drives `nhrp` and `ike` and
//! publishes tables to the data plane, the `dmvpnd` daemon and the `dmvpnctl` CLI.
//!
//! - [`config`]: the one versioned configuration model (TOML file, JSON over the API), its validation
//!   with errors that name the field, and [`config::store::ConfigStore`], which applies and persists a
//!   configuration atomically.
//!
//! The control loop, the daemon and the API arrive with their issues.

pub mod config;
