//! Management: the config model, the REST API, the control loop that drives `nhrp` and `ike` and
//! publishes tables to the data plane, the `dmvpnd` daemon and the `dmvpnctl` CLI. Arrives with the
//! daemon issue.
