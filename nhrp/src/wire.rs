//! NHRP wire format (RFC 2332 §5, plus the Cisco DMVPN additions): the fixed header, the mandatory part
//! with its Client Information Entries (CIEs), and the extensions.
//!
//! Layer: codec. Contract (smoltcp's `wire`, rustls' `Codec`):
//! - [`View`] is the zero-copy view: [`View::new_checked`] checks the header's lengths once, then its
//!   getters (fixed header, common mandatory part, an extension iterator) read the buffer in place.
//!   The engine uses it to drop packets before a full parse.
//! - [`Packet::parse`] checks everything once — lengths, the checksum, address lengths against the
//!   address families, the End extension — and never panics on any input; errors name the structure
//!   and the offset ([`Error`]).
//! - [`Packet::emit`] writes exactly [`Packet::buffer_len`] bytes, back-patching the packet size
//!   (`ar$pktsz`), the extension offset (`ar$extoff`) and the checksum (`ar$chksum`), so
//!   `parse(emit(x)) == x` for every `x` that [`Packet::buffer_len`] accepts.
//! - Code points are newtypes with named constants: unknown operations, codes and extension types
//!   survive a round trip. Unknown extensions keep their bytes and their compulsory bit (§5.3): deciding
//!   to answer "Unrecognized Extension" is the engine's job.
//!
//! Scope: IPv4 and IPv6 only, for both the NBMA (`ar$afn` 1 or 2) and the protocol (`ar$pro.type`
//! 0x0800 or 0x86DD) layers, in any of the four combinations. NBMA subaddresses (ATM only) must be
//! empty. Cisco specifics: Traffic Indication (operation 8, a 2-byte traffic code and 4 unused bytes in
//! place of the flags and request id, then the quoted packet), the NAT address extension (type 9, a CIE
//! list), the plaintext authentication form (a 4-byte type 1 followed by the secret) and the NAT-capable
//! flag 0x0002 of registration and resolution messages.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why bytes are not an NHRP packet, or a [`Packet`] cannot be emitted.
///
/// Offsets count from the first byte of the NHRP fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer (or `ar$pktsz`, or an enclosing length) ends before a field does.
    #[error("nhrp {what}: truncated at offset {offset}: needed {needed} bytes, got {got}")]
    Truncated {
        /// The structure being read, e.g. `"cie"`.
        what: &'static str,
        /// Where it starts.
        offset: usize,
        /// Bytes it needs from `offset`.
        needed: usize,
        /// Bytes there are from `offset`.
        got: usize,
    },
    /// A field holds a value RFC 2332 (or this implementation's scope) does not allow.
    #[error("nhrp {what}: malformed at offset {offset}: {why}")]
    Malformed {
        /// The structure being read.
        what: &'static str,
        /// Offset of the offending field.
        offset: usize,
        /// What was wrong.
        why: &'static str,
    },
    /// `ar$chksum` does not match the packet (RFC 2332 §5.2.0.1): the packet is discarded.
    #[error("nhrp header: bad checksum {got:#06x} over {len} bytes")]
    Checksum {
        /// The checksum field as received.
        got: u16,
        /// Bytes covered (`ar$pktsz`).
        len: usize,
    },
    /// `ar$op.version` is not 1 (RFC 2332 §5.2.0.1).
    #[error("nhrp header: unsupported version {0}")]
    Version(u8),
    /// Emit: the fields do not make a packet (an address of the wrong family, a payload that does not
    /// match the operation, a length over 65535).
    #[error("nhrp emit: {0}")]
    Unemittable(&'static str),
    /// Emit: the output buffer is shorter than [`Packet::buffer_len`].
    #[error("nhrp emit: buffer too short: needed {needed} bytes, got {got}")]
    BufferTooShort {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
}

/// Codec result.
pub type Result<T> = core::result::Result<T, Error>;

/// Declares a wire code point: a newtype over the integer with named constants, so that unknown values
/// survive a round trip and `Debug` prints the name or the value.
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
                match self.name() {
                    Some(n) => write!(f, "{}({})", n, self.0),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
    };
}

code_point! {
    /// `ar$op.type` (RFC 2332 §5.2.0.1; 8 is Cisco's Traffic Indication).
    Operation(u8) {
        /// §5.2.1.
        RESOLUTION_REQUEST = 1,
        /// §5.2.2.
        RESOLUTION_REPLY = 2,
        /// §5.2.3.
        REGISTRATION_REQUEST = 3,
        /// §5.2.4.
        REGISTRATION_REPLY = 4,
        /// §5.2.5.
        PURGE_REQUEST = 5,
        /// §5.2.6.
        PURGE_REPLY = 6,
        /// §5.2.7.
        ERROR_INDICATION = 7,
        /// Cisco DMVPN Phase 3 redirect.
        TRAFFIC_INDICATION = 8,
    }
}

code_point! {
    /// The CIE code of replies (RFC 2332 §5.2.2, §5.2.4, §5.2.0.1).
    CieCode(u8) {
        /// The binding was made or found.
        SUCCESS = 0,
        /// Refused by policy.
        ADMINISTRATIVELY_PROHIBITED = 4,
        /// No room for the entry.
        INSUFFICIENT_RESOURCES = 5,
        /// Resolution: no protocol → NBMA binding exists.
        NO_BINDING = 12,
        /// Resolution: a binding exists but is not unique.
        BINDING_NOT_UNIQUE = 13,
        /// Registration: the address is registered as unique from another NBMA address.
        UNIQUE_ADDRESS_REGISTERED = 14,
    }
}

code_point! {
    /// Error Indication codes (RFC 2332 §5.2.7).
    ErrorCode(u16) {
        /// A compulsory extension we do not know.
        UNRECOGNIZED_EXTENSION = 1,
        /// Our own address appears in the Forward Transit NHS Record.
        LOOP_DETECTED = 3,
        /// The destination cannot be reached.
        PROTOCOL_ADDRESS_UNREACHABLE = 6,
        /// A generic packet error.
        PROTOCOL_ERROR = 7,
        /// The packet is larger than the MTU of the next hop.
        SDU_SIZE_EXCEEDED = 8,
        /// An extension is malformed or not allowed here.
        INVALID_EXTENSION = 9,
        /// A Resolution Reply contradicts what we know.
        INVALID_RESOLUTION_REPLY = 10,
        /// The authentication extension is missing or wrong.
        AUTHENTICATION_FAILURE = 11,
        /// The hop count reached zero.
        HOP_COUNT_EXCEEDED = 15,
    }
}

code_point! {
    /// Extension types (RFC 2332 §5.3; 9 is Cisco's NAT address extension). 14 bits on the wire.
    ExtensionType(u16) {
        /// §5.3.0: ends the list.
        END = 0,
        /// §5.3.1.
        RESPONDER_ADDRESS = 3,
        /// §5.3.2.
        FORWARD_TRANSIT = 4,
        /// §5.3.3.
        REVERSE_TRANSIT = 5,
        /// §5.3.4.
        AUTHENTICATION = 7,
        /// §5.3.5.
        VENDOR_PRIVATE = 8,
        /// Cisco: the NBMA addresses an NHS saw (post-NAT), as CIEs.
        NAT_ADDRESS = 9,
    }
}

/// Flag bits of the mandatory part (RFC 2332 §5.2.1–§5.2.6; 0x0002 is Cisco's NAT-capable bit).
pub mod flags {
    /// Resolution: the source is a router (Q).
    pub const RES_ROUTER: u16 = 0x8000;
    /// Resolution reply: the answer is authoritative (A).
    pub const RES_AUTHORITATIVE: u16 = 0x4000;
    /// Resolution: the destination is stable (D).
    pub const RES_DEST_STABLE: u16 = 0x2000;
    /// Resolution: the binding is unique (U).
    pub const RES_UNIQUE: u16 = 0x1000;
    /// Resolution: the source is stable (S).
    pub const RES_SOURCE_STABLE: u16 = 0x0800;
    /// Registration: register as unique (U).
    pub const REG_UNIQUE: u16 = 0x8000;
    /// Purge request: no reply expected (N).
    pub const PURGE_NO_REPLY: u16 = 0x8000;
    /// Cisco: the sender understands the NAT address extension.
    pub const NAT: u16 = 0x0002;
}

/// Cisco's plaintext authentication type (first 4 bytes of the authentication extension).
pub const AUTH_PLAINTEXT: u32 = 1;

/// `ar$afn` (IANA address family numbers) for an address family.
pub fn afn_of(addr: &IpAddr) -> u16 {
    match addr {
        IpAddr::V4(_) => 1,
        IpAddr::V6(_) => 2,
    }
}

/// Address family of one layer of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: `ar$afn` 1, `ar$pro.type` 0x0800, 4-byte addresses.
    V4,
    /// IPv6: `ar$afn` 2, `ar$pro.type` 0x86DD, 16-byte addresses.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Address length in bytes.
    pub const fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    /// Bits in an address (the host prefix length).
    pub const fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    const fn afn(self) -> u16 {
        match self {
            Family::V4 => 1,
            Family::V6 => 2,
        }
    }

    const fn ethertype(self) -> u16 {
        match self {
            Family::V4 => 0x0800,
            Family::V6 => 0x86DD,
        }
    }
}

/// A Client Information Entry (RFC 2332 §5.2.0.1), the unit of registrations, replies, purges and the
/// CIE-list extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cie {
    /// Result code (replies) or 0 (requests).
    pub code: CieCode,
    /// Prefix length of the client protocol address: the entry covers that prefix (§5.2.2). Cisco and
    /// FRR send 0xff in registrations to mean "host".
    pub prefix_len: u8,
    /// MTU of the client, 0 if unknown.
    pub mtu: u16,
    /// Seconds the binding may be cached.
    pub holding_time: u16,
    /// Preference among several CIEs (higher wins).
    pub preference: u8,
    /// Client NBMA address, `None` when the length is 0.
    pub nbma: Option<IpAddr>,
    /// Client protocol address, `None` when the length is 0.
    pub proto: Option<IpAddr>,
}

impl Cie {
    /// Its length on the wire: the fixed part and both addresses (no subaddresses).
    pub fn wire_len(&self) -> usize {
        let len = |a: &Option<IpAddr>| a.map_or(0, |a| if a.is_ipv4() { 4 } else { 16 });
        CIE_FIXED_LEN + len(&self.nbma) + len(&self.proto)
    }
}

/// An extension (RFC 2332 §5.3). The End extension is not listed: [`Packet::emit`] writes it after
/// the others whenever there are any, and [`Packet::parse`] requires it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// The C bit: a recipient that does not know the type must reject the packet (§5.3).
    pub compulsory: bool,
    /// The contents.
    pub body: ExtensionBody,
}

/// The contents of an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionBody {
    /// §5.3.1: empty in requests, the responder's CIE in replies.
    ResponderAddress(Vec<Cie>),
    /// §5.3.2: one CIE per NHS that forwarded a request.
    ForwardTransit(Vec<Cie>),
    /// §5.3.3: one CIE per NHS that forwarded a reply.
    ReverseTransit(Vec<Cie>),
    /// §5.3.4 in Cisco's form: a 4-byte type ([`AUTH_PLAINTEXT`]) then the data (the secret).
    Authentication {
        /// Authentication type; 1 is plaintext.
        kind: u32,
        /// The secret (plaintext) or other authentication data.
        data: Vec<u8>,
    },
    /// §5.3.5: a 3-byte IEEE OUI then opaque data.
    VendorPrivate {
        /// The vendor's OUI (24 bits).
        vendor: u32,
        /// Opaque data.
        data: Vec<u8>,
    },
    /// Cisco type 9: CIEs with the NBMA address an NHS saw for a client (after NAT).
    NatAddress(Vec<Cie>),
    /// Any other type, kept as bytes.
    Unknown {
        /// The 14-bit type.
        kind: ExtensionType,
        /// The value.
        data: Vec<u8>,
    },
}

impl ExtensionBody {
    /// The wire type.
    pub fn kind(&self) -> ExtensionType {
        match self {
            ExtensionBody::ResponderAddress(_) => ExtensionType::RESPONDER_ADDRESS,
            ExtensionBody::ForwardTransit(_) => ExtensionType::FORWARD_TRANSIT,
            ExtensionBody::ReverseTransit(_) => ExtensionType::REVERSE_TRANSIT,
            ExtensionBody::Authentication { .. } => ExtensionType::AUTHENTICATION,
            ExtensionBody::VendorPrivate { .. } => ExtensionType::VENDOR_PRIVATE,
            ExtensionBody::NatAddress(_) => ExtensionType::NAT_ADDRESS,
            ExtensionBody::Unknown { kind, .. } => *kind,
        }
    }
}

/// What follows the common mandatory fields; which form is fixed by the operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Operations 1–6 (§5.2.1–§5.2.6): flags, request id and CIEs.
    Cies {
        /// Flag bits ([`flags`]).
        flags: u16,
        /// Request ID, copied into the reply.
        request_id: u32,
        /// The CIEs.
        cies: Vec<Cie>,
    },
    /// Error Indication (§5.2.7): code, offset, and the packet in error.
    Error {
        /// What was wrong.
        code: ErrorCode,
        /// Offset of the error in the packet in error.
        offset: u16,
        /// The packet in error (as much of it as was sent).
        packet: Vec<u8>,
    },
    /// Cisco Traffic Indication: traffic code (0: redirect), 4 unused bytes, the quoted packet.
    Traffic {
        /// Traffic code; 0 asks the receiver to resolve a shortcut.
        code: u16,
        /// The start of the overlay packet that was redirected (its IP header first).
        packet: Vec<u8>,
    },
}

/// An NHRP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// NBMA address family (`ar$afn`).
    pub nbma_family: Family,
    /// Protocol address family (`ar$pro.type`).
    pub proto_family: Family,
    /// `ar$hopcnt`: decremented by each NHS that forwards the packet.
    pub hop_count: u8,
    /// `ar$op.type`.
    pub op: Operation,
    /// Source NBMA address (`ar$shtl` bytes), `None` if empty.
    pub src_nbma: Option<IpAddr>,
    /// Source protocol address.
    pub src_proto: Option<IpAddr>,
    /// Destination protocol address.
    pub dst_proto: Option<IpAddr>,
    /// The operation-specific part.
    pub body: Body,
    /// The extensions, End excluded, in order.
    pub extensions: Vec<Extension>,
}

/// Length of the fixed header (`ar$afn` … `ar$sstl`).
pub const FIXED_LEN: usize = 20;
/// Offset of `ar$hopcnt`.
pub const HOPCNT_AT: usize = 9;
/// Offset of `ar$pktsz`.
pub const PKTSZ_AT: usize = 10;
/// Offset of `ar$chksum`.
pub const CHECKSUM_AT: usize = 12;
/// Offset of `ar$extoff`.
pub const EXTOFF_AT: usize = 14;
/// Offset of the Source Protocol Address length in the common mandatory part (§5.2.0.1).
pub const SRC_PROTO_LEN_AT: usize = 20;
/// Offset of the Destination Protocol Address length in the common mandatory part.
pub const DST_PROTO_LEN_AT: usize = 21;
/// Length of a CIE without its addresses.
const CIE_FIXED_LEN: usize = 12;

/// The Internet checksum (RFC 1071) of `data`, as `ar$chksum` uses it.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[derive(Debug)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn offset(&self) -> usize {
        self.base + self.pos
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if self.left() < n {
            return Err(Error::Truncated { what, offset: self.offset(), needed: n, got: self.left() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An address of `len` bytes (0: none) that must belong to `family`.
    fn addr(&mut self, len: usize, family: Family, what: &'static str) -> Result<Option<IpAddr>> {
        let at = self.offset();
        let b = self.take(len, what)?;
        if len == 0 {
            return Ok(None);
        }
        match (family, b) {
            (Family::V4, &[a, b, c, d]) => Ok(Some(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))),
            (Family::V6, _) if len == 16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(b);
                Ok(Some(IpAddr::V6(Ipv6Addr::from(o))))
            }
            _ => Err(Error::Malformed { what, offset: at, why: "address length does not match its family" }),
        }
    }
}

/// Parses a type/length octet (`ar$shtl`, `ar$sstl`, CIE T/L): bit 0x40 is the E.164 type, 0x80 unused.
fn type_len(v: u8, what: &'static str, offset: usize) -> Result<usize> {
    if v & 0x40 != 0 {
        return Err(Error::Malformed { what, offset, why: "E.164 addresses are not supported" });
    }
    Ok(usize::from(v & 0x3f))
}

fn parse_cie(r: &mut Reader<'_>, nbma: Family, proto: Family) -> Result<Cie> {
    let at = r.offset();
    if r.left() < CIE_FIXED_LEN {
        return Err(Error::Truncated { what: "cie", offset: at, needed: CIE_FIXED_LEN, got: r.left() });
    }
    let code = CieCode(r.u8("cie code")?);
    let prefix_len = r.u8("cie prefix length")?;
    r.u16("cie unused")?;
    let mtu = r.u16("cie mtu")?;
    let holding_time = r.u16("cie holding time")?;
    let nbma_len = type_len(r.u8("cie nbma type/length")?, "cie nbma type/length", at + 8)?;
    let sub_len = type_len(r.u8("cie subaddress type/length")?, "cie subaddress type/length", at + 9)?;
    if sub_len != 0 {
        return Err(Error::Malformed { what: "cie", offset: at + 9, why: "NBMA subaddresses are not supported" });
    }
    let proto_len = usize::from(r.u8("cie protocol length")?);
    let preference = r.u8("cie preference")?;
    let nbma = r.addr(nbma_len, nbma, "cie client nbma address")?;
    let proto = r.addr(proto_len, proto, "cie client protocol address")?;
    Ok(Cie { code, prefix_len, mtu, holding_time, preference, nbma, proto })
}

fn parse_cies(r: &mut Reader<'_>, nbma: Family, proto: Family) -> Result<Vec<Cie>> {
    let mut cies = Vec::new();
    while r.left() > 0 {
        cies.push(parse_cie(r, nbma, proto)?);
    }
    Ok(cies)
}

fn parse_extension(r: &mut Reader<'_>, nbma: Family, proto: Family) -> Result<Option<Extension>> {
    let at = r.offset();
    let ty = r.u16("extension type")?;
    let len = usize::from(r.u16("extension length")?);
    let compulsory = ty & 0x8000 != 0;
    let kind = ExtensionType(ty & 0x3fff);
    let mut v = Reader::new(r.take(len, "extension value")?, at + 4);
    let body = match kind {
        ExtensionType::END => {
            if len != 0 {
                return Err(Error::Malformed { what: "end extension", offset: at, why: "non-zero length" });
            }
            return Ok(None);
        }
        ExtensionType::RESPONDER_ADDRESS => ExtensionBody::ResponderAddress(parse_cies(&mut v, nbma, proto)?),
        ExtensionType::FORWARD_TRANSIT => ExtensionBody::ForwardTransit(parse_cies(&mut v, nbma, proto)?),
        ExtensionType::REVERSE_TRANSIT => ExtensionBody::ReverseTransit(parse_cies(&mut v, nbma, proto)?),
        ExtensionType::NAT_ADDRESS => ExtensionBody::NatAddress(parse_cies(&mut v, nbma, proto)?),
        ExtensionType::AUTHENTICATION => {
            let kind = v.u32("authentication type")?;
            ExtensionBody::Authentication { kind, data: v.rest().to_vec() }
        }
        ExtensionType::VENDOR_PRIVATE => {
            let id = v.take(3, "vendor id")?;
            let vendor = u32::from_be_bytes([0, id[0], id[1], id[2]]);
            ExtensionBody::VendorPrivate { vendor, data: v.rest().to_vec() }
        }
        kind => ExtensionBody::Unknown { kind, data: v.rest().to_vec() },
    };
    Ok(Some(Extension { compulsory, body }))
}

impl Packet {
    /// Parses one NHRP packet (from the fixed header on). Bytes after `ar$pktsz` (link padding) are
    /// ignored; everything inside it must parse.
    pub fn parse(buf: &[u8]) -> Result<Packet> {
        let mut r = Reader::new(buf, 0);
        let hdr = r.take(FIXED_LEN, "fixed header")?;
        let afn = u16::from_be_bytes([hdr[0], hdr[1]]);
        let pro = u16::from_be_bytes([hdr[2], hdr[3]]);
        let hop_count = hdr[HOPCNT_AT];
        let pktsz = usize::from(u16::from_be_bytes([hdr[10], hdr[11]]));
        let got_sum = u16::from_be_bytes([hdr[12], hdr[13]]);
        let extoff = usize::from(u16::from_be_bytes([hdr[14], hdr[15]]));
        let version = hdr[16];
        let op = Operation(hdr[17]);
        let shtl = hdr[18];
        let sstl = hdr[19];
        if pktsz < FIXED_LEN {
            return Err(Error::Malformed { what: "fixed header", offset: 10, why: "packet size below 20" });
        }
        if pktsz > buf.len() {
            return Err(Error::Truncated { what: "packet", offset: 0, needed: pktsz, got: buf.len() });
        }
        let pkt = &buf[..pktsz];
        if checksum(pkt) != 0 {
            return Err(Error::Checksum { got: got_sum, len: pktsz });
        }
        if version != 1 {
            return Err(Error::Version(version));
        }
        let nbma_family = match afn {
            1 => Family::V4,
            2 => Family::V6,
            _ => return Err(Error::Malformed { what: "fixed header", offset: 0, why: "NBMA family not IPv4/IPv6" }),
        };
        let proto_family = match pro {
            0x0800 => Family::V4,
            0x86DD => Family::V6,
            _ => return Err(Error::Malformed { what: "fixed header", offset: 2, why: "protocol not IPv4/IPv6" }),
        };
        let src_nbma_len = type_len(shtl, "fixed header", 18)?;
        if type_len(sstl, "fixed header", 19)? != 0 {
            return Err(Error::Malformed {
                what: "fixed header",
                offset: 19,
                why: "NBMA subaddresses are not supported",
            });
        }
        let mand_end = match extoff {
            0 => pktsz,
            o if o < FIXED_LEN || o > pktsz => {
                return Err(Error::Malformed { what: "fixed header", offset: 14, why: "extension offset out of range" })
            }
            o => o,
        };
        let mut m = Reader::new(&pkt[FIXED_LEN..mand_end], FIXED_LEN);
        let src_proto_len = usize::from(m.u8("mandatory part")?);
        let dst_proto_len = usize::from(m.u8("mandatory part")?);
        let flags = m.u16("mandatory part")?;
        let word = m.u32("mandatory part")?;
        let src_nbma = m.addr(src_nbma_len, nbma_family, "source nbma address")?;
        let src_proto = m.addr(src_proto_len, proto_family, "source protocol address")?;
        let dst_proto = m.addr(dst_proto_len, proto_family, "destination protocol address")?;
        let body = match op {
            Operation::ERROR_INDICATION => {
                Body::Error { code: ErrorCode((word >> 16) as u16), offset: word as u16, packet: m.rest().to_vec() }
            }
            Operation::TRAFFIC_INDICATION => Body::Traffic { code: flags, packet: m.rest().to_vec() },
            Operation(1..=6) => {
                Body::Cies { flags, request_id: word, cies: parse_cies(&mut m, nbma_family, proto_family)? }
            }
            _ => return Err(Error::Malformed { what: "fixed header", offset: 17, why: "unknown operation" }),
        };
        let mut extensions = Vec::new();
        if extoff != 0 {
            let mut e = Reader::new(&pkt[extoff..], extoff);
            loop {
                if e.left() == 0 {
                    return Err(Error::Malformed { what: "extensions", offset: e.offset(), why: "no End extension" });
                }
                match parse_extension(&mut e, nbma_family, proto_family)? {
                    Some(x) => extensions.push(x),
                    None => break,
                }
            }
            if e.left() != 0 {
                return Err(Error::Malformed { what: "extensions", offset: e.offset(), why: "bytes after End" });
            }
        }
        Ok(Packet { nbma_family, proto_family, hop_count, op, src_nbma, src_proto, dst_proto, body, extensions })
    }

    /// Bytes [`Packet::emit`] writes, or why the packet cannot be emitted.
    pub fn buffer_len(&self) -> Result<usize> {
        let mut w = Writer { buf: None, pos: 0 };
        self.write(&mut w)?;
        Ok(w.pos)
    }

    /// Writes the packet into `buf` (at least [`Packet::buffer_len`] bytes) with the size, extension
    /// offset and checksum filled in; returns the length written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len()?;
        let got = buf.len();
        let out = buf.get_mut(..needed).ok_or(Error::BufferTooShort { needed, got })?;
        let mut w = Writer { buf: Some(out), pos: 0 };
        self.write(&mut w)?;
        let sum = checksum(&buf[..needed]);
        buf[CHECKSUM_AT..CHECKSUM_AT + 2].copy_from_slice(&sum.to_be_bytes());
        Ok(needed)
    }

    /// [`Packet::emit`] into a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0; self.buffer_len()?];
        self.emit(&mut v)?;
        Ok(v)
    }

    /// The first extension of a type.
    pub fn extension(&self, kind: ExtensionType) -> Option<&Extension> {
        self.extensions.iter().find(|e| e.body.kind() == kind)
    }

    /// Flags and request id, for operations 1–6.
    pub fn flags_and_id(&self) -> Option<(u16, u32)> {
        match &self.body {
            Body::Cies { flags, request_id, .. } => Some((*flags, *request_id)),
            _ => None,
        }
    }

    /// The CIEs of operations 1–6 (empty for the others).
    pub fn cies(&self) -> &[Cie] {
        match &self.body {
            Body::Cies { cies, .. } => cies,
            _ => &[],
        }
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        let (nf, pf) = (self.nbma_family, self.proto_family);
        let addr_len = |a: &Option<IpAddr>, f: Family| -> Result<u8> {
            match a {
                None => Ok(0),
                Some(a) if Family::of(a) == f => Ok(f.addr_len() as u8),
                Some(_) => Err(Error::Unemittable("address of the wrong family")),
            }
        };
        let shtl = addr_len(&self.src_nbma, nf)?;
        let spl = addr_len(&self.src_proto, pf)?;
        let dpl = addr_len(&self.dst_proto, pf)?;
        let (flags, word) = match (&self.body, self.op) {
            (Body::Cies { flags, request_id, .. }, Operation(1..=6)) => (*flags, *request_id),
            (Body::Error { code, offset, .. }, Operation::ERROR_INDICATION) => {
                (0, (u32::from(code.0) << 16) | u32::from(*offset))
            }
            (Body::Traffic { code, .. }, Operation::TRAFFIC_INDICATION) => (*code, 0),
            _ => return Err(Error::Unemittable("body does not match the operation")),
        };
        w.u16(nf.afn())?;
        w.u16(pf.ethertype())?;
        w.bytes(&[0; 5])?;
        w.u8(self.hop_count)?;
        w.u16(0)?; // ar$pktsz, patched below
        w.u16(0)?; // ar$chksum, computed by emit
        w.u16(0)?; // ar$extoff, patched below
        w.u8(1)?;
        w.u8(self.op.0)?;
        w.u8(shtl)?;
        w.u8(0)?;
        w.u8(spl)?;
        w.u8(dpl)?;
        w.u16(flags)?;
        w.u32(word)?;
        w.addr(&self.src_nbma)?;
        w.addr(&self.src_proto)?;
        w.addr(&self.dst_proto)?;
        match &self.body {
            Body::Cies { cies, .. } => w.cies(cies, nf, pf)?,
            Body::Error { packet, .. } | Body::Traffic { packet, .. } => w.bytes(packet)?,
        }
        if !self.extensions.is_empty() {
            let extoff = u16::try_from(w.pos).map_err(|_| Error::Unemittable("packet over 65535 bytes"))?;
            w.patch_u16(14, extoff);
            for e in &self.extensions {
                let kind = e.body.kind();
                if kind == ExtensionType::END || kind.0 > 0x3fff {
                    return Err(Error::Unemittable("extension type End or over 14 bits"));
                }
                w.u16(kind.0 | if e.compulsory { 0x8000 } else { 0 })?;
                let len_at = w.pos;
                w.u16(0)?;
                let start = w.pos;
                match &e.body {
                    ExtensionBody::ResponderAddress(c)
                    | ExtensionBody::ForwardTransit(c)
                    | ExtensionBody::ReverseTransit(c)
                    | ExtensionBody::NatAddress(c) => w.cies(c, nf, pf)?,
                    ExtensionBody::Authentication { kind, data } => {
                        w.u32(*kind)?;
                        w.bytes(data)?;
                    }
                    ExtensionBody::VendorPrivate { vendor, data } => {
                        if *vendor > 0xff_ffff {
                            return Err(Error::Unemittable("vendor id over 24 bits"));
                        }
                        w.bytes(&vendor.to_be_bytes()[1..])?;
                        w.bytes(data)?;
                    }
                    ExtensionBody::Unknown { data, .. } => w.bytes(data)?,
                }
                let len = u16::try_from(w.pos - start).map_err(|_| Error::Unemittable("extension over 65535 bytes"))?;
                w.patch_u16(len_at, len);
            }
            w.u32(0x8000_0000)?; // End extension (§5.3.0), compulsory as Cisco and FRR send it
        }
        let size = u16::try_from(w.pos).map_err(|_| Error::Unemittable("packet over 65535 bytes"))?;
        w.patch_u16(10, size);
        Ok(())
    }
}

/// Field offsets of the fixed header and the common mandatory part (RFC 2332 §5.2.0.1).
mod field {
    pub type Field = core::ops::Range<usize>;
    pub const AFN: Field = 0..2;
    pub const PRO_TYPE: Field = 2..4;
    pub const PKTSZ: Field = 10..12;
    pub const CHKSUM: Field = 12..14;
    pub const EXTOFF: Field = 14..16;
    pub const VERSION: usize = 16;
    pub const OP_TYPE: usize = 17;
    pub const SHTL: usize = 18;
    pub const SSTL: usize = 19;
    pub const SRC_PROTO_LEN: usize = 20;
    pub const DST_PROTO_LEN: usize = 21;
    pub const FLAGS: Field = 22..24;
    pub const REQUEST_ID: Field = 24..28;
    pub const ADDRESSES: usize = 28;
}

/// A zero-copy view of an NHRP packet (smoltcp's `Packet<T>`; the owned form is [`Packet`]).
///
/// [`View::new_checked`] checks once that the fixed header, `ar$pktsz`, `ar$extoff` and the common
/// mandatory part with its three addresses lie inside the buffer; after that no getter panics. It does
/// not check the checksum ([`View::checksum_ok`]), the version, the address families or the CIEs: that
/// is what lets the engine drop a packet with a bad checksum, for another tunnel or without the
/// secret before it parses (and allocates) anything.
#[derive(Debug, Clone, Copy)]
pub struct View<T: AsRef<[u8]>> {
    buffer: T,
}

/// One extension as it lies in the buffer (RFC 2332 §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawExtension<'a> {
    /// The C bit.
    pub compulsory: bool,
    /// The 14-bit type.
    pub kind: ExtensionType,
    /// The value.
    pub value: &'a [u8],
    /// Where the extension's header starts, counted from the start of the packet (what an Error
    /// Indication's Error Offset names, §5.2.7).
    pub offset: usize,
}

impl<T: AsRef<[u8]>> View<T> {
    /// Checks that the header's lengths and offsets fit the buffer (see the type's documentation).
    pub fn new_checked(buffer: T) -> Result<View<T>> {
        let b = buffer.as_ref();
        if b.len() < FIXED_LEN {
            return Err(Error::Truncated { what: "fixed header", offset: 0, needed: FIXED_LEN, got: b.len() });
        }
        let v = View { buffer };
        let pktsz = v.packet_size();
        let len = v.buffer.as_ref().len();
        if pktsz < FIXED_LEN {
            return Err(Error::Malformed { what: "fixed header", offset: 10, why: "packet size below 20" });
        }
        if pktsz > len {
            return Err(Error::Truncated { what: "packet", offset: 0, needed: pktsz, got: len });
        }
        let b = v.buffer.as_ref();
        type_len(b[field::SHTL], "fixed header", field::SHTL)?;
        type_len(b[field::SSTL], "fixed header", field::SSTL)?;
        let extoff = v.extension_offset();
        if extoff != 0 && (extoff < FIXED_LEN || extoff > pktsz) {
            return Err(Error::Malformed { what: "fixed header", offset: 14, why: "extension offset out of range" });
        }
        let mand_end = if extoff == 0 { pktsz } else { extoff };
        if mand_end < field::ADDRESSES {
            let got = mand_end - FIXED_LEN;
            return Err(Error::Truncated { what: "mandatory part", offset: FIXED_LEN, needed: 8, got });
        }
        let end = v.dst_proto_range().end;
        if end > mand_end {
            let got = mand_end - field::ADDRESSES;
            let needed = end - field::ADDRESSES;
            return Err(Error::Truncated { what: "mandatory part addresses", offset: field::ADDRESSES, needed, got });
        }
        Ok(v)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, f: field::Field) -> u16 {
        let b = &self.buffer.as_ref()[f];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// `ar$afn`.
    pub fn afn(&self) -> u16 {
        self.u16_at(field::AFN)
    }

    /// `ar$pro.type`.
    pub fn protocol_type(&self) -> u16 {
        self.u16_at(field::PRO_TYPE)
    }

    /// The NBMA family, if IPv4 or IPv6.
    pub fn nbma_family(&self) -> Option<Family> {
        match self.afn() {
            1 => Some(Family::V4),
            2 => Some(Family::V6),
            _ => None,
        }
    }

    /// The protocol family, if IPv4 or IPv6.
    pub fn proto_family(&self) -> Option<Family> {
        match self.protocol_type() {
            0x0800 => Some(Family::V4),
            0x86DD => Some(Family::V6),
            _ => None,
        }
    }

    /// `ar$hopcnt`.
    pub fn hop_count(&self) -> u8 {
        self.buffer.as_ref()[HOPCNT_AT]
    }

    /// `ar$pktsz`.
    pub fn packet_size(&self) -> usize {
        usize::from(self.u16_at(field::PKTSZ))
    }

    /// `ar$chksum` as received.
    pub fn checksum_field(&self) -> u16 {
        self.u16_at(field::CHKSUM)
    }

    /// Whether the checksum over `ar$pktsz` bytes is right (§5.2.0.1).
    pub fn checksum_ok(&self) -> bool {
        checksum(self.packet()) == 0
    }

    /// `ar$extoff` (0: no extensions).
    pub fn extension_offset(&self) -> usize {
        usize::from(self.u16_at(field::EXTOFF))
    }

    /// `ar$op.version`.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// `ar$op.type`.
    pub fn operation(&self) -> Operation {
        Operation(self.buffer.as_ref()[field::OP_TYPE])
    }

    /// The flags (operations 1–6), or the traffic code (8).
    pub fn flags(&self) -> u16 {
        self.u16_at(field::FLAGS)
    }

    /// The request id (operations 1–6), or the error code and offset (7).
    pub fn request_id(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::REQUEST_ID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The packet: the buffer up to `ar$pktsz` (link padding cut off).
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.packet_size()]
    }

    fn src_nbma_range(&self) -> field::Field {
        let n = usize::from(self.buffer.as_ref()[field::SHTL] & 0x3f);
        field::ADDRESSES..field::ADDRESSES + n
    }

    fn src_proto_range(&self) -> field::Field {
        let at = self.src_nbma_range().end;
        at..at + usize::from(self.buffer.as_ref()[field::SRC_PROTO_LEN])
    }

    fn dst_proto_range(&self) -> field::Field {
        let at = self.src_proto_range().end;
        at..at + usize::from(self.buffer.as_ref()[field::DST_PROTO_LEN])
    }

    /// The source NBMA address bytes (`ar$shtl` long).
    pub fn src_nbma(&self) -> &[u8] {
        &self.buffer.as_ref()[self.src_nbma_range()]
    }

    /// The source protocol address bytes.
    pub fn src_proto(&self) -> &[u8] {
        &self.buffer.as_ref()[self.src_proto_range()]
    }

    /// The destination protocol address bytes.
    pub fn dst_proto(&self) -> &[u8] {
        &self.buffer.as_ref()[self.dst_proto_range()]
    }

    /// The extensions, End excluded, in order; an item is an error where the list is damaged (and
    /// the iteration ends there).
    pub fn extensions(&self) -> Extensions<'_> {
        let at = self.extension_offset();
        let rest = if at == 0 { &[][..] } else { &self.packet()[at..] };
        Extensions { r: Reader::new(rest, at), done: at == 0 }
    }
}

/// The extensions of a [`View`].
#[derive(Debug)]
pub struct Extensions<'a> {
    r: Reader<'a>,
    done: bool,
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Result<RawExtension<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let at = self.r.offset();
        let item = (|| {
            if self.r.left() == 0 {
                return Err(Error::Malformed { what: "extensions", offset: at, why: "no End extension" });
            }
            let ty = self.r.u16("extension type")?;
            let len = usize::from(self.r.u16("extension length")?);
            let value = self.r.take(len, "extension value")?;
            Ok(RawExtension { compulsory: ty & 0x8000 != 0, kind: ExtensionType(ty & 0x3fff), value, offset: at })
        })();
        match item {
            Ok(x) if x.kind == ExtensionType::END => {
                self.done = true;
                None
            }
            Ok(x) => Some(Ok(x)),
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

struct Writer<'a> {
    buf: Option<&'a mut [u8]>,
    pos: usize,
}

impl Writer<'_> {
    fn bytes(&mut self, b: &[u8]) -> Result<()> {
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

    fn u8(&mut self, v: u8) -> Result<()> {
        self.bytes(&[v])
    }

    fn u16(&mut self, v: u16) -> Result<()> {
        self.bytes(&v.to_be_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<()> {
        self.bytes(&v.to_be_bytes())
    }

    fn patch_u16(&mut self, at: usize, v: u16) {
        if let Some(d) = self.buf.as_deref_mut().and_then(|b| b.get_mut(at..at + 2)) {
            d.copy_from_slice(&v.to_be_bytes());
        }
    }

    fn addr(&mut self, a: &Option<IpAddr>) -> Result<()> {
        match a {
            None => Ok(()),
            Some(IpAddr::V4(a)) => self.bytes(&a.octets()),
            Some(IpAddr::V6(a)) => self.bytes(&a.octets()),
        }
    }

    fn cies(&mut self, cies: &[Cie], nf: Family, pf: Family) -> Result<()> {
        for c in cies {
            let len = |a: &Option<IpAddr>, f: Family| match a {
                None => Ok(0u8),
                Some(a) if Family::of(a) == f => Ok(f.addr_len() as u8),
                Some(_) => Err(Error::Unemittable("CIE address of the wrong family")),
            };
            let (nl, pl) = (len(&c.nbma, nf)?, len(&c.proto, pf)?);
            self.u8(c.code.0)?;
            self.u8(c.prefix_len)?;
            self.u16(0)?;
            self.u16(c.mtu)?;
            self.u16(c.holding_time)?;
            self.u8(nl)?;
            self.u8(0)?;
            self.u8(pl)?;
            self.u8(c.preference)?;
            self.addr(&c.nbma)?;
            self.addr(&c.proto)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is 0xddf2 (one's complement sum), so the
        // checksum is its complement.
        assert_eq!(checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), !0xddf2);
        // Odd length: the last byte is padded with a zero byte on the right.
        assert_eq!(checksum(&[0x01]), !0x0100);
    }
}
