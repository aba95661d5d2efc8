//! Wire formats: one module per header, in the style of smoltcp's `wire`.
//!
//! Layer: bytes on the wire, nothing else. No I/O, no allocation, no state.
//!
//! Contract, for every header module:
//! - `Packet<T: AsRef<[u8]>>` is a zero-copy view over a buffer. `Packet::new_unchecked` wraps any
//!   buffer; `Packet::new_checked` (= `new_unchecked` + `check_len`) verifies once that every field the
//!   view can name lies inside the buffer, **after which no accessor panics**, whatever the bytes are.
//!   With `new_unchecked`, accessors may panic on a short buffer (that is for emitting into a buffer
//!   that the caller sized with `Repr::buffer_len`).
//! - Getters are `#[inline]` and allocation-free; setters exist when `T: AsMut<[u8]>`; `payload()` /
//!   `payload_mut()` return the bytes after the header.
//! - `Repr` is the plain, owned (or borrowing) meaning of a header: `Repr::parse(&Packet)` validates
//!   semantics (version, reserved bits, checksums), `Repr::buffer_len()` says how many bytes `emit`
//!   writes, and `Repr::emit(&mut Packet)` writes every header byte (so a junk-filled buffer shows no
//!   stale byte). `parse(emit(x)) == x` holds for every `Repr` (property-tested).
//! - Wire code points (EtherType, IP protocol, GRE protocol type, ICMP types and codes) are newtypes over
//!   the integer with named constants: unknown values survive a round trip and `Debug` prints hex.
//! - Errors are [`Error`], naming the layer and what was wrong, with offsets relative to the start of
//!   that layer's header.
//!
//! On the data-plane hot path only the views are used (check once, then read/write fields in place);
//! the `Repr`s serve the control plane, tests and fuzzing.

use core::fmt;
use core::ops::Range;

pub mod arp;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod gre;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

/// A fixed field: a byte range inside a header.
pub type Field = Range<usize>;

/// Why a header could not be viewed or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the header (or a length field) says it should.
    #[error("{layer}: truncated: needed {needed} bytes, got {got}")]
    Truncated {
        /// Layer name, e.g. `"ipv4"`.
        layer: &'static str,
        /// Bytes the header needs from its start.
        needed: usize,
        /// Bytes the buffer holds from the header's start.
        got: usize,
    },
    /// A field holds a value the format forbids.
    #[error("{layer}: malformed at offset {offset}: {what}")]
    Malformed {
        /// Layer name.
        layer: &'static str,
        /// Offset of the offending field, from the start of this layer's header.
        offset: usize,
        /// What was wrong.
        what: &'static str,
    },
    /// The header is well-formed but uses a feature this implementation does not handle.
    #[error("{layer}: unsupported: {what}")]
    Unsupported {
        /// Layer name.
        layer: &'static str,
        /// What is not supported.
        what: &'static str,
    },
    /// The checksum does not verify.
    #[error("{layer}: bad checksum")]
    Checksum {
        /// Layer name.
        layer: &'static str,
    },
}

/// Result of parsing a header.
pub type Result<T> = core::result::Result<T, Error>;

/// `Ok(())` if `got >= needed`, else [`Error::Truncated`].
#[inline]
pub(crate) fn check(layer: &'static str, needed: usize, got: usize) -> Result<()> {
    if got < needed {
        Err(Error::Truncated { layer, needed, got })
    } else {
        Ok(())
    }
}

/// [`Error::Malformed`] shorthand.
#[inline]
pub(crate) fn malformed(layer: &'static str, offset: usize, what: &'static str) -> Error {
    Error::Malformed { layer, offset, what }
}

/// Big-endian `u16` at `at`. Panics if out of bounds; callers index only checked fields.
#[inline]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Big-endian `u32` at `at`.
#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Writes a big-endian `u16` at `at`.
#[inline]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes a big-endian `u32` at `at`.
#[inline]
pub(crate) fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Declares a newtype over an integer wire code point with named constants; `Debug` prints the
/// name when known and the value in hex always.
macro_rules! code_point {
    ($(#[$doc:meta])* $name:ident($int:ty) { $($(#[$cdoc:meta])* $c:ident = $v:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub $int);

        impl $name {
            $($(#[$cdoc])* pub const $c: $name = $name($v);)*

            /// The constant's name, if this value has one.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some(stringify!($c)),)*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                let width = 2 + 2 * core::mem::size_of::<$int>();
                match self.name() {
                    Some(n) => write!(f, "{}({:#0w$x})", n, self.0, w = width),
                    None => write!(f, "{}({:#0w$x})", stringify!($name), self.0, w = width),
                }
            }
        }

        impl From<$int> for $name {
            fn from(v: $int) -> Self {
                $name(v)
            }
        }

        impl From<$name> for $int {
            fn from(v: $name) -> Self {
                v.0
            }
        }
    };
}
pub(crate) use code_point;

code_point! {
    /// IP protocol number / IPv6 next header (IANA "Assigned Internet Protocol Numbers").
    IpProtocol(u8) {
        /// IPv6 Hop-by-Hop Options (RFC 8200 §4.3).
        HOP_BY_HOP = 0,
        /// ICMP (RFC 792).
        ICMP = 1,
        /// IPv4 encapsulation (RFC 2003).
        IPV4 = 4,
        /// TCP (RFC 9293).
        TCP = 6,
        /// UDP (RFC 768).
        UDP = 17,
        /// IPv6 encapsulation (RFC 2473).
        IPV6 = 41,
        /// IPv6 Routing header (RFC 8200 §4.4).
        IPV6_ROUTE = 43,
        /// IPv6 Fragment header (RFC 8200 §4.5).
        IPV6_FRAG = 44,
        /// GRE (RFC 2784).
        GRE = 47,
        /// ESP (RFC 4303).
        ESP = 50,
        /// AH (RFC 4302).
        AH = 51,
        /// ICMPv6 (RFC 4443).
        ICMPV6 = 58,
        /// No next header (RFC 8200 §4.7).
        IPV6_NO_NEXT = 59,
        /// IPv6 Destination Options (RFC 8200 §4.6).
        IPV6_OPTS = 60,
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers shared by the header tests.

    /// Decodes a hex string made by Scapy.
    pub fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector is valid hex")
    }

    /// A buffer of `n` junk bytes (0xAA), so that a field `emit` forgets to write shows.
    pub fn junk(n: usize) -> Vec<u8> {
        vec![0xAA; n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_point_debug_prints_name_and_hex() {
        assert_eq!(format!("{:?}", IpProtocol::GRE), "GRE(0x2f)");
        assert_eq!(format!("{:?}", IpProtocol(200)), "IpProtocol(0xc8)");
    }

    #[test]
    fn error_messages_name_layer_and_place() {
        let e = Error::Truncated { layer: "ipv4", needed: 20, got: 13 };
        assert_eq!(e.to_string(), "ipv4: truncated: needed 20 bytes, got 13");
        let e = malformed("gre", 0, "version is not 0");
        assert_eq!(e.to_string(), "gre: malformed at offset 0: version is not 0");
    }
}
