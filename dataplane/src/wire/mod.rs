//! Wire formats: one module per header, a checked zero-copy `Packet` view plus a `Repr` (smoltcp style).
pub mod esp;
