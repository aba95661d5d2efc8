//! Management: the config model, the REST API, the control loop that drives `nhrp` and `ike` and
//! publishes tables to the data plane, the `dmvpnd` daemon and the `dmvpnctl` CLI.
//!
//! - [`config`]: the one versioned configuration model (TOML file, JSON over the API), its validation
//!   with errors that name the field, and [`config::store::ConfigStore`], which applies and persists a
//!   configuration atomically.
//!
//! - [`api`]: the REST API over HTTPS (bearer tokens with roles; configuration changes validated,
//!   applied through a [`api::Backend`] and persisted, conflicting ones refused; views, actions,
//!   metrics) and its OpenAPI document.
//!
//! The control loop and the daemon arrive with their issue.

pub mod api;
pub mod config;
