//! Small handles shared by the tables and the pipeline. Each is an index or key chosen by the control
//! plane; the data plane never allocates them.

/// A routing instance. VRF 0 is the global table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct VrfId(pub u16);

/// An mGRE tunnel interface (`interface Tunnel<N>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelId(pub u16);

/// A port (NIC or vdev) of the box, as the worker's port array indexes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// Index of an SA in the published SA table. Stable for the SA's lifetime; the control plane reuses an
/// index only after the SA it named has been withdrawn, and bumps the generation stored beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaIndex(pub u32);

/// A worker (one lcore, one RX queue per port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct WorkerId(pub u16);
