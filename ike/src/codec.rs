//! The byte-level machinery under [`crate::message`]: a [`Reader`] that rejects trailing bytes and names
//! the offset of every failure, a [`Writer`] that either counts or writes and back-patches lengths, the
//! codec [`Error`], and the `code_point!` macro for wire enums (rustls' `Codec`, smoltcp's code points).

use crate::message::{NotifyType, PayloadType};

/// Why bytes could not be parsed as an IKEv2 message, or a `Repr` could not be emitted.
///
/// Offsets count from the first byte of the IKE header (or of the chain given to
/// [`crate::message::parse_chain`]), so a log line points at the byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer (or an enclosing length field) ends before a field does.
    #[error("ike {what}: truncated at offset {offset}: needed {needed} bytes, got {got}")]
    Truncated {
        /// The structure being read, e.g. `"transform"`.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs from `offset`.
        needed: usize,
        /// Bytes there are from `offset`.
        got: usize,
    },
    /// A field holds a value the RFC forbids, or bytes are left over inside a length.
    #[error("ike {what}: malformed at offset {offset}: {why}")]
    Malformed {
        /// The structure being read.
        what: &'static str,
        /// Offset of the offending field.
        offset: usize,
        /// What was wrong.
        why: &'static str,
    },
    /// Major version other than 2 (RFC 7296 §3.1): answer with INVALID_MAJOR_VERSION.
    #[error("ike header: unsupported version {major}.{minor}")]
    UnsupportedVersion {
        /// Major version.
        major: u8,
        /// Minor version.
        minor: u8,
    },
    /// A payload of unknown type with the critical bit set (RFC 7296 §2.5): reject the message with
    /// UNSUPPORTED_CRITICAL_PAYLOAD carrying this one-octet type.
    #[error("ike: unsupported critical payload {payload:?} at offset {offset}")]
    UnsupportedCritical {
        /// The payload type.
        payload: PayloadType,
        /// Where its generic header starts.
        offset: usize,
    },
    /// Emit: a field does not fit its length field (`what` names it).
    #[error("ike emit: {what} too long for its length field")]
    TooLong {
        /// The field.
        what: &'static str,
    },
    /// Emit: the output buffer is shorter than `buffer_len()`.
    #[error("ike emit: buffer too short: needed {needed} bytes, got {got}")]
    BufferTooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
}

impl Error {
    /// The error Notify a responder sends for this parse failure (RFC 7296 §2.5, §3.10.1), when the
    /// RFC says to send one: UNSUPPORTED_CRITICAL_PAYLOAD (with [`Error::notify_data`]),
    /// INVALID_MAJOR_VERSION, or INVALID_SYNTAX for a malformed message (only once it authenticated; an
    /// unauthenticated malformed message is dropped — that is the engine's call).
    pub fn notify(&self) -> Option<NotifyType> {
        match self {
            Error::UnsupportedCritical { .. } => Some(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD),
            Error::UnsupportedVersion { .. } => Some(NotifyType::INVALID_MAJOR_VERSION),
            Error::Truncated { .. } | Error::Malformed { .. } => Some(NotifyType::INVALID_SYNTAX),
            Error::TooLong { .. } | Error::BufferTooShort { .. } => None,
        }
    }

    /// Notification data for [`Error::notify`]: the payload type octet for UNSUPPORTED_CRITICAL_PAYLOAD.
    pub fn notify_data(&self) -> Option<[u8; 1]> {
        match self {
            Error::UnsupportedCritical { payload, .. } => Some([payload.0]),
            _ => None,
        }
    }
}

/// Codec result.
pub type Result<T> = core::result::Result<T, Error>;

/// Reads a byte slice front to back; every read is bounds-checked and names what it read.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]`, for errors.
    base: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, whose first byte is at absolute offset `base`.
    pub fn new(buf: &'a [u8], base: usize) -> Reader<'a> {
        Reader { buf, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left.
    pub fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.left() < n {
            return Err(Error::Truncated { what, offset: self.offset(), needed: n, got: self.left() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// All the bytes left.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// A reader over the next `n` bytes (a length-delimited structure).
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>> {
        let base = self.offset();
        Ok(Reader::new(self.take(n, what)?, base))
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    /// Big-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Big-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Big-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }

    /// Fails with `Malformed` unless everything was read (rustls: no trailing bytes).
    pub fn expect_empty(&self, what: &'static str) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Malformed { what, offset: self.offset(), why: "trailing bytes" })
        }
    }
}

/// Writes into a slice, or only counts (for `buffer_len`), so both go through one code path.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: Option<&'a mut [u8]>,
    pos: usize,
}

impl<'a> Writer<'a> {
    /// A writer into `buf` (checked against the needed length up front by the caller).
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer { buf: Some(buf), pos: 0 }
    }

    /// A writer that only counts.
    pub fn counter() -> Writer<'static> {
        Writer { buf: None, pos: 0 }
    }

    /// Bytes written (or counted) so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Appends bytes.
    pub fn bytes(&mut self, b: &[u8]) -> Result<()> {
        if let Some(buf) = self.buf.as_deref_mut() {
            let got = buf.len();
            let dst = buf
                .get_mut(self.pos..self.pos + b.len())
                .ok_or(Error::BufferTooShort { needed: self.pos + b.len(), got })?;
            dst.copy_from_slice(b);
        }
        self.pos += b.len();
        Ok(())
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> Result<()> {
        self.bytes(&[v])
    }

    /// Big-endian u16.
    pub fn u16(&mut self, v: u16) -> Result<()> {
        self.bytes(&v.to_be_bytes())
    }

    /// Big-endian u32.
    pub fn u32(&mut self, v: u32) -> Result<()> {
        self.bytes(&v.to_be_bytes())
    }

    /// Big-endian u64.
    pub fn u64(&mut self, v: u64) -> Result<()> {
        self.bytes(&v.to_be_bytes())
    }

    /// Overwrites a u16 written earlier at `at` (length back-patching).
    pub fn patch_u16(&mut self, at: usize, v: u16) {
        if let Some(buf) = self.buf.as_deref_mut() {
            buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Overwrites a u32 written earlier at `at`.
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(buf) = self.buf.as_deref_mut() {
            buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Writes a placeholder u16 length and returns where, for [`Writer::end_len16`].
    pub fn begin_len16(&mut self) -> Result<usize> {
        let at = self.pos;
        self.u16(0)?;
        Ok(at)
    }

    /// Back-patches the u16 at `at` with the bytes written since `start`.
    pub fn end_len16(&mut self, at: usize, start: usize, what: &'static str) -> Result<()> {
        let n = u16::try_from(self.pos - start).map_err(|_| Error::TooLong { what })?;
        self.patch_u16(at, n);
        Ok(())
    }
}

/// Declares a wire code point: a newtype over the integer with named constants, so unknown values
/// survive a round trip and `Debug` prints the name or the hex value.
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
