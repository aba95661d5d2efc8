//! IKEv2 messages (RFC 7296 §3): the header, the generic payload chain and the typed payloads.
//!
//! ```text
//!  0                   1                   2                   3
//! |                       IKE SA Initiator's SPI                  |
//! |                       IKE SA Responder's SPI                  |
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! |                          Message ID                           |
//! |                            Length                             |
//! then payloads, each:
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! ```
//!
//! [`Message::parse`] takes exactly one message (the Length field must equal the buffer's length) and
//! never panics. The chain is walked by each payload's Next Payload field (§3.2): an unknown payload
//! with the critical bit clear is kept as [`PayloadBody::Other`] (so it survives a round trip), one with
//! the bit set fails with [`Error::UnsupportedCritical`]. The Encrypted payload (§3.14) and the
//! Encrypted Fragment payload (RFC 7383 §2.5) end the chain: their Next Payload names the first payload
//! *inside* the ciphertext, which [`parse_chain`] reads once the engine has decrypted it.
//!
//! [`Message::emit`] writes every byte (reserved fields zero), derives the Next Payload fields from the
//! order of the payloads and back-patches every length. `Message::parse(emit(m)) == m` for every `m`.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::codec::{code_point, Error, Reader, Result, Writer};

/// Length of the IKE header (§3.1).
pub const HEADER_LEN: usize = 28;
/// Length of the generic payload header (§3.2).
pub const PAYLOAD_HEADER_LEN: usize = 4;

code_point! {
    /// Exchange Type (§3.1, IANA "IKEv2 Exchange Types").
    ExchangeType(u8) {
        /// §1.2.
        IKE_SA_INIT = 34,
        /// §1.2.
        IKE_AUTH = 35,
        /// §1.3.
        CREATE_CHILD_SA = 36,
        /// §1.4.
        INFORMATIONAL = 37,
        /// RFC 5723.
        IKE_SESSION_RESUME = 38,
        /// RFC 9242.
        IKE_INTERMEDIATE = 43,
    }
}

code_point! {
    /// Payload type (§3.2, IANA "IKEv2 Payload Types").
    PayloadType(u8) {
        /// No next payload.
        NONE = 0,
        /// Security Association (§3.3).
        SA = 33,
        /// Key Exchange (§3.4).
        KE = 34,
        /// Identification - Initiator (§3.5).
        IDI = 35,
        /// Identification - Responder (§3.5).
        IDR = 36,
        /// Certificate (§3.6).
        CERT = 37,
        /// Certificate Request (§3.7).
        CERTREQ = 38,
        /// Authentication (§3.8).
        AUTH = 39,
        /// Nonce (§3.9).
        NONCE = 40,
        /// Notify (§3.10).
        NOTIFY = 41,
        /// Delete (§3.11).
        DELETE = 42,
        /// Vendor ID (§3.12).
        VENDOR_ID = 43,
        /// Traffic Selector - Initiator (§3.13).
        TSI = 44,
        /// Traffic Selector - Responder (§3.13).
        TSR = 45,
        /// Encrypted and Authenticated (§3.14).
        SK = 46,
        /// Configuration (§3.15); kept opaque here.
        CP = 47,
        /// EAP (§3.16); kept opaque here.
        EAP = 48,
        /// Encrypted and Authenticated Fragment (RFC 7383 §2.5).
        SKF = 53,
    }
}

/// Header flags (§3.1): a byte, so unknown bits round-trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// Initiator: set by the original initiator of the IKE SA.
    pub const INITIATOR: Flags = Flags(0x08);
    /// Version: the sender can speak a higher major version.
    pub const VERSION: Flags = Flags(0x10);
    /// Response: this message answers one with the same Message ID.
    pub const RESPONSE: Flags = Flags(0x20);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union.
    #[must_use]
    pub const fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// I bit.
    pub const fn initiator(self) -> bool {
        self.contains(Flags::INITIATOR)
    }

    /// R bit.
    pub const fn response(self) -> bool {
        self.contains(Flags::RESPONSE)
    }
}

/// The fixed IKE header (§3.1), readable on its own so the engine can find the SA (and answer with
/// UNSUPPORTED_CRITICAL_PAYLOAD or INVALID_MAJOR_VERSION) before the payloads parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// IKE SA Initiator's SPI.
    pub spi_i: u64,
    /// IKE SA Responder's SPI (zero in the first IKE_SA_INIT request).
    pub spi_r: u64,
    /// Type of the first payload.
    pub next_payload: PayloadType,
    /// Major version (2).
    pub major: u8,
    /// Minor version (0 from us; ignored on receipt).
    pub minor: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags.
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
    /// Length of the whole message, header included.
    pub length: u32,
}

impl Header {
    /// Reads the 28-byte header at the start of `buf` without checking the version or the length
    /// against the buffer; never panics.
    pub fn parse(buf: &[u8]) -> Result<Header> {
        let mut r = Reader::new(buf, 0);
        let spi_i = r.u64("header")?;
        let spi_r = r.u64("header")?;
        let next_payload = PayloadType(r.u8("header")?);
        let v = r.u8("header")?;
        let exchange = ExchangeType(r.u8("header")?);
        let flags = Flags(r.u8("header")?);
        let message_id = r.u32("header")?;
        let length = r.u32("header")?;
        Ok(Header { spi_i, spi_r, next_payload, major: v >> 4, minor: v & 0x0f, exchange, flags, message_id, length })
    }
}

/// A whole IKEv2 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// IKE SA Initiator's SPI.
    pub spi_i: u64,
    /// IKE SA Responder's SPI.
    pub spi_r: u64,
    /// Minor version (major is always 2 here).
    pub minor: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags.
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
    /// The payloads, in order. An [`PayloadBody::Encrypted`] or [`PayloadBody::EncryptedFragment`],
    /// when present, is the last.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses exactly one message: `buf` must be as long as the header's Length field.
    pub fn parse(buf: &[u8]) -> Result<Message> {
        let h = Header::parse(buf)?;
        if h.major != 2 {
            return Err(Error::UnsupportedVersion { major: h.major, minor: h.minor });
        }
        if h.length as usize != buf.len() {
            return Err(if (h.length as usize) > buf.len() {
                Error::Truncated { what: "message", offset: 0, needed: h.length as usize, got: buf.len() }
            } else {
                Error::Malformed { what: "header", offset: 24, why: "length differs from the datagram" }
            });
        }
        let payloads = parse_chain_at(h.next_payload, &buf[HEADER_LEN..], HEADER_LEN)?;
        Ok(Message {
            spi_i: h.spi_i,
            spi_r: h.spi_r,
            minor: h.minor,
            exchange: h.exchange,
            flags: h.flags,
            message_id: h.message_id,
            payloads,
        })
    }

    /// Bytes [`Message::emit`] writes.
    pub fn buffer_len(&self) -> Result<usize> {
        let mut w = Writer::counter();
        self.write(&mut w)?;
        Ok(w.pos())
    }

    /// Writes the message into the front of `buf` and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let needed = self.buffer_len()?;
        if buf.len() < needed {
            return Err(Error::BufferTooShort { needed, got: buf.len() });
        }
        let mut w = Writer::new(buf);
        self.write(&mut w)?;
        Ok(w.pos())
    }

    /// The message as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0; self.buffer_len()?];
        self.emit(&mut v)?;
        Ok(v)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u64(self.spi_i)?;
        w.u64(self.spi_r)?;
        w.u8(first_type(&self.payloads).0)?;
        w.u8(0x20 | (self.minor & 0x0f))?;
        w.u8(self.exchange.0)?;
        w.u8(self.flags.0)?;
        w.u32(self.message_id)?;
        w.u32(0)?;
        write_chain(&self.payloads, w)?;
        let n = u32::try_from(w.pos()).map_err(|_| Error::TooLong { what: "message" })?;
        w.patch_u32(24, n);
        Ok(())
    }

    /// The first payload of this type.
    pub fn find(&self, ty: PayloadType) -> Option<&Payload> {
        self.payloads.iter().find(|p| p.body.payload_type() == ty)
    }

    /// The Notify payloads.
    pub fn notifies(&self) -> impl Iterator<Item = &Notify> {
        self.payloads.iter().filter_map(|p| match &p.body {
            PayloadBody::Notify(n) => Some(n),
            _ => None,
        })
    }
}

/// Parses a payload chain that starts with a payload of type `first` (e.g. the decrypted contents of
/// an Encrypted payload, whose Next Payload gave `first`). Offsets in errors count from `buf[0]`.
pub fn parse_chain(first: PayloadType, buf: &[u8]) -> Result<Vec<Payload>> {
    parse_chain_at(first, buf, 0)
}

/// Bytes [`emit_chain`] writes.
pub fn chain_len(payloads: &[Payload]) -> Result<usize> {
    let mut w = Writer::counter();
    write_chain(payloads, &mut w)?;
    Ok(w.pos())
}

/// Writes a payload chain into the front of `buf` (e.g. the plaintext of an Encrypted payload) and
/// returns the type of the first payload (the Encrypted payload's Next Payload) and the length.
pub fn emit_chain(payloads: &[Payload], buf: &mut [u8]) -> Result<(PayloadType, usize)> {
    let needed = chain_len(payloads)?;
    if buf.len() < needed {
        return Err(Error::BufferTooShort { needed, got: buf.len() });
    }
    let mut w = Writer::new(buf);
    write_chain(payloads, &mut w)?;
    Ok((first_type(payloads), w.pos()))
}

fn first_type(payloads: &[Payload]) -> PayloadType {
    payloads.first().map_or(PayloadType::NONE, |p| p.body.payload_type())
}

fn parse_chain_at(first: PayloadType, buf: &[u8], base: usize) -> Result<Vec<Payload>> {
    let mut r = Reader::new(buf, base);
    let mut next = first;
    let mut out = Vec::new();
    while next != PayloadType::NONE {
        let start = r.offset();
        let ty = next;
        next = PayloadType(r.u8("payload header")?);
        let critical = r.u8("payload header")? & 0x80 != 0;
        let len = r.u16("payload header")? as usize;
        if len < PAYLOAD_HEADER_LEN {
            return Err(Error::Malformed { what: "payload header", offset: start + 2, why: "length below 4" });
        }
        let mut body = r.sub(len - PAYLOAD_HEADER_LEN, "payload")?;
        let body = PayloadBody::parse(ty, next, critical, start, &mut body)?;
        let ends = matches!(body, PayloadBody::Encrypted(_) | PayloadBody::EncryptedFragment(_));
        out.push(Payload { critical, body });
        if ends {
            // §3.14: the Encrypted payload is the last; its Next Payload points inside it.
            r.expect_empty("encrypted payload")?;
            return Ok(out);
        }
    }
    r.expect_empty("payload chain")?;
    Ok(out)
}

fn write_chain(payloads: &[Payload], w: &mut Writer<'_>) -> Result<()> {
    for (i, p) in payloads.iter().enumerate() {
        let next = match &p.body {
            PayloadBody::Encrypted(e) => e.next_payload,
            PayloadBody::EncryptedFragment(f) => f.next_payload,
            _ => first_type(&payloads[i + 1..]),
        };
        let start = w.pos();
        w.u8(next.0)?;
        w.u8(if p.critical { 0x80 } else { 0 })?;
        let at = w.begin_len16()?;
        p.body.write(w)?;
        w.end_len16(at, start, "payload")?;
    }
    Ok(())
}

/// One payload: the critical bit (§3.2) and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Critical bit. Zero for every payload type RFC 7296 defines; kept as received.
    pub critical: bool,
    /// The body.
    pub body: PayloadBody,
}

impl Payload {
    /// A payload with the critical bit clear.
    pub fn new(body: PayloadBody) -> Payload {
        Payload { critical: false, body }
    }
}

impl From<PayloadBody> for Payload {
    fn from(body: PayloadBody) -> Payload {
        Payload::new(body)
    }
}

/// What a payload carries, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadBody {
    /// SA (§3.3).
    Sa(Sa),
    /// KE (§3.4).
    Ke(Ke),
    /// IDi (§3.5).
    IdI(Id),
    /// IDr (§3.5).
    IdR(Id),
    /// CERT (§3.6).
    Cert(Cert),
    /// CERTREQ (§3.7).
    CertReq(Cert),
    /// AUTH (§3.8).
    Auth(Auth),
    /// Nonce data (§3.9).
    Nonce(Vec<u8>),
    /// Notify (§3.10).
    Notify(Notify),
    /// Delete (§3.11).
    Delete(Delete),
    /// Vendor ID (§3.12).
    VendorId(Vec<u8>),
    /// TSi (§3.13).
    TsI(Vec<TrafficSelector>),
    /// TSr (§3.13).
    TsR(Vec<TrafficSelector>),
    /// SK (§3.14).
    Encrypted(Encrypted),
    /// SKF (RFC 7383 §2.5).
    EncryptedFragment(EncryptedFragment),
    /// Any other type (CP, EAP, unknown non-critical), kept byte for byte.
    Other {
        /// Its type.
        ty: PayloadType,
        /// Its body, after the generic header.
        data: Vec<u8>,
    },
}

impl PayloadBody {
    /// The payload type this body is sent as.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            PayloadBody::Sa(_) => PayloadType::SA,
            PayloadBody::Ke(_) => PayloadType::KE,
            PayloadBody::IdI(_) => PayloadType::IDI,
            PayloadBody::IdR(_) => PayloadType::IDR,
            PayloadBody::Cert(_) => PayloadType::CERT,
            PayloadBody::CertReq(_) => PayloadType::CERTREQ,
            PayloadBody::Auth(_) => PayloadType::AUTH,
            PayloadBody::Nonce(_) => PayloadType::NONCE,
            PayloadBody::Notify(_) => PayloadType::NOTIFY,
            PayloadBody::Delete(_) => PayloadType::DELETE,
            PayloadBody::VendorId(_) => PayloadType::VENDOR_ID,
            PayloadBody::TsI(_) => PayloadType::TSI,
            PayloadBody::TsR(_) => PayloadType::TSR,
            PayloadBody::Encrypted(_) => PayloadType::SK,
            PayloadBody::EncryptedFragment(_) => PayloadType::SKF,
            PayloadBody::Other { ty, .. } => *ty,
        }
    }

    fn parse(ty: PayloadType, next: PayloadType, critical: bool, at: usize, r: &mut Reader<'_>) -> Result<Self> {
        let body = match ty {
            PayloadType::SA => PayloadBody::Sa(Sa::parse(r)?),
            PayloadType::KE => PayloadBody::Ke(Ke::parse(r)?),
            PayloadType::IDI => PayloadBody::IdI(Id::parse(r)?),
            PayloadType::IDR => PayloadBody::IdR(Id::parse(r)?),
            PayloadType::CERT => PayloadBody::Cert(Cert::parse(r)?),
            PayloadType::CERTREQ => PayloadBody::CertReq(Cert::parse(r)?),
            PayloadType::AUTH => PayloadBody::Auth(Auth::parse(r)?),
            PayloadType::NONCE => PayloadBody::Nonce(r.rest().to_vec()),
            PayloadType::NOTIFY => PayloadBody::Notify(Notify::parse(r)?),
            PayloadType::DELETE => PayloadBody::Delete(Delete::parse(r)?),
            PayloadType::VENDOR_ID => PayloadBody::VendorId(r.rest().to_vec()),
            PayloadType::TSI => PayloadBody::TsI(TrafficSelector::parse_list(r)?),
            PayloadType::TSR => PayloadBody::TsR(TrafficSelector::parse_list(r)?),
            PayloadType::SK => PayloadBody::Encrypted(Encrypted { next_payload: next, data: r.rest().to_vec() }),
            PayloadType::SKF => PayloadBody::EncryptedFragment(EncryptedFragment::parse(next, r)?),
            PayloadType::CP | PayloadType::EAP => PayloadBody::Other { ty, data: r.rest().to_vec() },
            _ if critical => return Err(Error::UnsupportedCritical { payload: ty, offset: at }),
            _ => PayloadBody::Other { ty, data: r.rest().to_vec() },
        };
        r.expect_empty("payload")?;
        Ok(body)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            PayloadBody::Sa(x) => x.write(w),
            PayloadBody::Ke(x) => x.write(w),
            PayloadBody::IdI(x) | PayloadBody::IdR(x) => x.write(w),
            PayloadBody::Cert(x) | PayloadBody::CertReq(x) => x.write(w),
            PayloadBody::Auth(x) => x.write(w),
            PayloadBody::Nonce(d) | PayloadBody::VendorId(d) | PayloadBody::Other { data: d, .. } => w.bytes(d),
            PayloadBody::Notify(x) => x.write(w),
            PayloadBody::Delete(x) => x.write(w),
            PayloadBody::TsI(x) | PayloadBody::TsR(x) => TrafficSelector::write_list(x, w),
            PayloadBody::Encrypted(x) => w.bytes(&x.data),
            PayloadBody::EncryptedFragment(x) => x.write(w),
        }
    }
}

// ---- SA (§3.3) ----

code_point! {
    /// Protocol ID (§3.3.1), in proposals, Notify and Delete.
    ProtocolId(u8) {
        /// None (Notify not about an SA).
        NONE = 0,
        /// IKE.
        IKE = 1,
        /// AH.
        AH = 2,
        /// ESP.
        ESP = 3,
    }
}

code_point! {
    /// Transform type (§3.3.2).
    TransformType(u8) {
        /// Encryption algorithm.
        ENCR = 1,
        /// Pseudorandom function.
        PRF = 2,
        /// Integrity algorithm.
        INTEG = 3,
        /// Diffie-Hellman group (Key Exchange Method).
        DH = 4,
        /// Extended Sequence Numbers.
        ESN = 5,
    }
}

code_point! {
    /// Transform IDs for type 1, ENCR (IANA).
    EncrId(u16) {
        /// RFC 2451.
        ENCR_3DES = 3,
        /// RFC 2410.
        ENCR_NULL = 11,
        /// RFC 3602; needs a Key Length attribute.
        ENCR_AES_CBC = 12,
        /// RFC 3686.
        ENCR_AES_CTR = 13,
        /// RFC 4309, 8-octet ICV.
        ENCR_AES_CCM_8 = 14,
        /// RFC 4309, 16-octet ICV.
        ENCR_AES_CCM_16 = 16,
        /// RFC 4106 / 5282, 8-octet ICV.
        ENCR_AES_GCM_8 = 18,
        /// RFC 4106 / 5282, 12-octet ICV.
        ENCR_AES_GCM_12 = 19,
        /// RFC 4106 / 5282, 16-octet ICV; needs a Key Length attribute.
        ENCR_AES_GCM_16 = 20,
        /// RFC 4543.
        ENCR_NULL_AUTH_AES_GMAC = 21,
        /// RFC 7634.
        ENCR_CHACHA20_POLY1305 = 28,
    }
}

code_point! {
    /// Transform IDs for type 2, PRF (IANA).
    PrfId(u16) {
        /// RFC 2104.
        PRF_HMAC_MD5 = 1,
        /// RFC 2104.
        PRF_HMAC_SHA1 = 2,
        /// RFC 4434.
        PRF_AES128_XCBC = 4,
        /// RFC 4868.
        PRF_HMAC_SHA2_256 = 5,
        /// RFC 4868.
        PRF_HMAC_SHA2_384 = 6,
        /// RFC 4868.
        PRF_HMAC_SHA2_512 = 7,
        /// RFC 4615.
        PRF_AES128_CMAC = 8,
    }
}

code_point! {
    /// Transform IDs for type 3, INTEG (IANA).
    IntegId(u16) {
        /// None (with an AEAD cipher).
        NONE = 0,
        /// RFC 2404.
        AUTH_HMAC_SHA1_96 = 2,
        /// RFC 3566.
        AUTH_AES_XCBC_96 = 5,
        /// RFC 4868.
        AUTH_HMAC_SHA2_256_128 = 12,
        /// RFC 4868.
        AUTH_HMAC_SHA2_384_192 = 13,
        /// RFC 4868.
        AUTH_HMAC_SHA2_512_256 = 14,
    }
}

code_point! {
    /// Transform IDs for type 4, Diffie-Hellman groups (IANA), also the KE payload's group.
    DhGroup(u16) {
        /// None.
        NONE = 0,
        /// 1024-bit MODP (RFC 2409).
        MODP_1024 = 2,
        /// 2048-bit MODP (RFC 3526).
        MODP_2048 = 14,
        /// 3072-bit MODP (RFC 3526).
        MODP_3072 = 15,
        /// 4096-bit MODP (RFC 3526).
        MODP_4096 = 16,
        /// 256-bit random ECP (RFC 5903).
        ECP_256 = 19,
        /// 384-bit random ECP (RFC 5903).
        ECP_384 = 20,
        /// 521-bit random ECP (RFC 5903).
        ECP_521 = 21,
        /// Curve25519 (RFC 8031).
        CURVE25519 = 31,
        /// Curve448 (RFC 8031).
        CURVE448 = 32,
    }
}

code_point! {
    /// Transform IDs for type 5, Extended Sequence Numbers.
    EsnId(u16) {
        /// No ESN.
        NO_ESN = 0,
        /// ESN.
        ESN = 1,
    }
}

code_point! {
    /// Transform attribute type (§3.3.5), without the AF bit.
    AttributeType(u16) {
        /// Key Length in bits (TV format).
        KEY_LENGTH = 14,
    }
}

/// SA payload: proposals in order of preference (§3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sa {
    /// Proposals.
    pub proposals: Vec<Proposal>,
}

/// A proposal substructure (§3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal Num: 1 for the first, +1 for each next (the responder echoes the one it chose).
    pub number: u8,
    /// Protocol ID.
    pub protocol: ProtocolId,
    /// SPI: empty in IKE_SA_INIT, 8 octets when rekeying an IKE SA, 4 for ESP/AH.
    pub spi: Vec<u8>,
    /// Transforms.
    pub transforms: Vec<Transform>,
}

/// A transform substructure (§3.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    /// Transform type.
    pub ty: TransformType,
    /// Transform ID; its meaning depends on `ty` ([`EncrId`], [`PrfId`], [`IntegId`], [`DhGroup`],
    /// [`EsnId`]).
    pub id: u16,
    /// Attributes (§3.3.5).
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// An ENCR transform, with a Key Length attribute when `key_bits` is given.
    pub fn encr(id: EncrId, key_bits: Option<u16>) -> Transform {
        let attributes =
            key_bits.map(|k| Attribute { ty: AttributeType::KEY_LENGTH, value: AttributeValue::Tv(k) }).into_iter();
        Transform { ty: TransformType::ENCR, id: id.0, attributes: attributes.collect() }
    }

    /// A PRF transform.
    pub fn prf(id: PrfId) -> Transform {
        Transform { ty: TransformType::PRF, id: id.0, attributes: Vec::new() }
    }

    /// An INTEG transform.
    pub fn integ(id: IntegId) -> Transform {
        Transform { ty: TransformType::INTEG, id: id.0, attributes: Vec::new() }
    }

    /// A DH transform.
    pub fn dh(id: DhGroup) -> Transform {
        Transform { ty: TransformType::DH, id: id.0, attributes: Vec::new() }
    }

    /// An ESN transform.
    pub fn esn(id: EsnId) -> Transform {
        Transform { ty: TransformType::ESN, id: id.0, attributes: Vec::new() }
    }

    /// The Key Length attribute in bits (§3.3.5), if present in TV form.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match (a.ty, &a.value) {
            (AttributeType::KEY_LENGTH, AttributeValue::Tv(v)) => Some(*v),
            _ => None,
        })
    }
}

/// A transform attribute (§3.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Type (15 bits).
    pub ty: AttributeType,
    /// Value, in TV (AF = 1) or TLV (AF = 0) format.
    pub value: AttributeValue,
}

/// An attribute's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// Type/Value: a 2-octet value (AF = 1).
    Tv(u16),
    /// Type/Length/Value (AF = 0).
    Tlv(Vec<u8>),
}

const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;

impl Sa {
    fn parse(r: &mut Reader<'_>) -> Result<Sa> {
        let mut proposals = Vec::new();
        loop {
            let at = r.offset();
            let more = r.u8("proposal")?;
            r.u8("proposal")?;
            let len = r.u16("proposal")? as usize;
            if len < 8 {
                return Err(Error::Malformed { what: "proposal", offset: at + 2, why: "length below 8" });
            }
            let mut p = r.sub(len - 4, "proposal")?;
            proposals.push(Proposal::parse(&mut p, at)?);
            match more {
                LAST => break,
                MORE_PROPOSALS => {}
                _ => return Err(Error::Malformed { what: "proposal", offset: at, why: "last substruc not 0 or 2" }),
            }
        }
        Ok(Sa { proposals })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        for (i, p) in self.proposals.iter().enumerate() {
            let start = w.pos();
            w.u8(if i + 1 == self.proposals.len() { LAST } else { MORE_PROPOSALS })?;
            w.u8(0)?;
            let at = w.begin_len16()?;
            w.u8(p.number)?;
            w.u8(p.protocol.0)?;
            w.u8(u8::try_from(p.spi.len()).map_err(|_| Error::TooLong { what: "proposal SPI" })?)?;
            w.u8(u8::try_from(p.transforms.len()).map_err(|_| Error::TooLong { what: "transform count" })?)?;
            w.bytes(&p.spi)?;
            for (j, t) in p.transforms.iter().enumerate() {
                let tstart = w.pos();
                w.u8(if j + 1 == p.transforms.len() { LAST } else { MORE_TRANSFORMS })?;
                w.u8(0)?;
                let tat = w.begin_len16()?;
                w.u8(t.ty.0)?;
                w.u8(0)?;
                w.u16(t.id)?;
                for a in &t.attributes {
                    match &a.value {
                        AttributeValue::Tv(v) => {
                            w.u16(0x8000 | (a.ty.0 & 0x7fff))?;
                            w.u16(*v)?;
                        }
                        AttributeValue::Tlv(v) => {
                            w.u16(a.ty.0 & 0x7fff)?;
                            w.u16(u16::try_from(v.len()).map_err(|_| Error::TooLong { what: "attribute" })?)?;
                            w.bytes(v)?;
                        }
                    }
                }
                w.end_len16(tat, tstart, "transform")?;
            }
            w.end_len16(at, start, "proposal")?;
        }
        Ok(())
    }
}

impl Proposal {
    /// `r` holds the proposal after its first 4 bytes (which start at `at`).
    fn parse(r: &mut Reader<'_>, at: usize) -> Result<Proposal> {
        let number = r.u8("proposal")?;
        let protocol = ProtocolId(r.u8("proposal")?);
        let spi_size = r.u8("proposal")? as usize;
        let count = r.u8("proposal")?;
        let spi = r.take(spi_size, "proposal SPI")?.to_vec();
        let mut transforms = Vec::with_capacity(count.into());
        let mut more = count > 0;
        while more {
            let tat = r.offset();
            let flag = r.u8("transform")?;
            r.u8("transform")?;
            let len = r.u16("transform")? as usize;
            if len < 8 {
                return Err(Error::Malformed { what: "transform", offset: tat + 2, why: "length below 8" });
            }
            let mut t = r.sub(len - 4, "transform")?;
            let ty = TransformType(t.u8("transform")?);
            t.u8("transform")?;
            let id = t.u16("transform")?;
            let mut attributes = Vec::new();
            while !t.is_empty() {
                let a = t.u16("attribute")?;
                let ty = AttributeType(a & 0x7fff);
                let value = if a & 0x8000 != 0 {
                    AttributeValue::Tv(t.u16("attribute")?)
                } else {
                    let n = t.u16("attribute")? as usize;
                    AttributeValue::Tlv(t.take(n, "attribute value")?.to_vec())
                };
                attributes.push(Attribute { ty, value });
            }
            transforms.push(Transform { ty, id, attributes });
            more = match flag {
                LAST => false,
                MORE_TRANSFORMS => true,
                _ => return Err(Error::Malformed { what: "transform", offset: tat, why: "last substruc not 0 or 3" }),
            };
        }
        if transforms.len() != usize::from(count) {
            return Err(Error::Malformed { what: "proposal", offset: at + 7, why: "transform count mismatch" });
        }
        r.expect_empty("proposal")?;
        Ok(Proposal { number, protocol, spi, transforms })
    }
}

// ---- KE (§3.4) ----

/// Key Exchange payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ke {
    /// Diffie-Hellman group of the key data.
    pub group: DhGroup,
    /// The public value.
    pub data: Vec<u8>,
}

impl Ke {
    fn parse(r: &mut Reader<'_>) -> Result<Ke> {
        let group = DhGroup(r.u16("KE")?);
        r.u16("KE")?;
        Ok(Ke { group, data: r.rest().to_vec() })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.group.0)?;
        w.u16(0)?;
        w.bytes(&self.data)
    }
}

// ---- ID (§3.5) ----

code_point! {
    /// ID Type (§3.5).
    IdType(u8) {
        /// A 4-octet IPv4 address.
        ID_IPV4_ADDR = 1,
        /// A fully qualified domain name.
        ID_FQDN = 2,
        /// An RFC 822 email address.
        ID_RFC822_ADDR = 3,
        /// A 16-octet IPv6 address.
        ID_IPV6_ADDR = 5,
        /// DER-encoded X.500 Distinguished Name.
        ID_DER_ASN1_DN = 9,
        /// DER-encoded X.509 GeneralName.
        ID_DER_ASN1_GN = 10,
        /// Opaque octets.
        ID_KEY_ID = 11,
    }
}

/// Identification payload (IDi or IDr). The AUTH computation (§2.15) covers the body as emitted here
/// (reserved octets zero).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id {
    /// ID type.
    pub ty: IdType,
    /// Identification data.
    pub data: Vec<u8>,
}

impl Id {
    fn parse(r: &mut Reader<'_>) -> Result<Id> {
        let ty = IdType(r.u8("ID")?);
        r.take(3, "ID")?;
        Ok(Id { ty, data: r.rest().to_vec() })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.ty.0)?;
        w.bytes(&[0; 3])?;
        w.bytes(&self.data)
    }

    /// The payload body as AUTH signs it (`RestOfInitIDPayload`, §2.15).
    pub fn body(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + self.data.len());
        v.push(self.ty.0);
        v.extend_from_slice(&[0; 3]);
        v.extend_from_slice(&self.data);
        v
    }
}

// ---- CERT / CERTREQ (§3.6, §3.7) ----

code_point! {
    /// Certificate Encoding (§3.6).
    CertEncoding(u8) {
        /// PKCS #7 wrapped X.509.
        PKCS7_X509 = 1,
        /// X.509 Certificate - Signature.
        X509_SIGNATURE = 4,
        /// Certificate Revocation List.
        CRL = 7,
        /// Raw RSA key (obsoleted by RFC 7670).
        RAW_RSA_KEY = 11,
        /// Hash and URL of X.509 certificate.
        HASH_AND_URL_X509 = 12,
        /// Hash and URL of X.509 bundle.
        HASH_AND_URL_BUNDLE = 13,
        /// Raw public key (RFC 7670).
        RAW_PUBLIC_KEY = 15,
    }
}

/// CERT (the certificate) or CERTREQ (concatenated SHA-1 hashes of trusted CAs' public keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    /// Encoding.
    pub encoding: CertEncoding,
    /// Certificate data or certification authority hashes.
    pub data: Vec<u8>,
}

impl Cert {
    fn parse(r: &mut Reader<'_>) -> Result<Cert> {
        Ok(Cert { encoding: CertEncoding(r.u8("CERT")?), data: r.rest().to_vec() })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.encoding.0)?;
        w.bytes(&self.data)
    }
}

// ---- AUTH (§3.8) ----

code_point! {
    /// Authentication Method (§3.8).
    AuthMethod(u8) {
        /// RSA Digital Signature (PKCS #1 v1.5 over SHA-1).
        RSA_SIG = 1,
        /// Shared Key Message Integrity Code.
        SHARED_KEY_MIC = 2,
        /// DSS Digital Signature.
        DSS_SIG = 3,
        /// ECDSA with SHA-256 on P-256 (RFC 4754).
        ECDSA_SHA256_P256 = 9,
        /// ECDSA with SHA-384 on P-384 (RFC 4754).
        ECDSA_SHA384_P384 = 10,
        /// ECDSA with SHA-512 on P-521 (RFC 4754).
        ECDSA_SHA512_P521 = 11,
        /// Digital Signature (RFC 7427).
        DIGITAL_SIGNATURE = 14,
    }
}

/// Authentication payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Method.
    pub method: AuthMethod,
    /// Authentication data (for DIGITAL_SIGNATURE, the RFC 7427 AlgorithmIdentifier prefix included).
    pub data: Vec<u8>,
}

impl Auth {
    fn parse(r: &mut Reader<'_>) -> Result<Auth> {
        let method = AuthMethod(r.u8("AUTH")?);
        r.take(3, "AUTH")?;
        Ok(Auth { method, data: r.rest().to_vec() })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.method.0)?;
        w.bytes(&[0; 3])?;
        w.bytes(&self.data)
    }
}

// ---- Notify (§3.10) ----

code_point! {
    /// Notify Message Type (§3.10.1, IANA). Below 16384: errors; from 16384: status.
    NotifyType(u16) {
        /// §2.5; data: the one-octet payload type.
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        /// §2.21.
        INVALID_IKE_SPI = 4,
        /// §2.5.
        INVALID_MAJOR_VERSION = 5,
        /// §2.21.
        INVALID_SYNTAX = 7,
        /// §2.3.
        INVALID_MESSAGE_ID = 9,
        /// §1.5.
        INVALID_SPI = 11,
        /// §2.7.
        NO_PROPOSAL_CHOSEN = 14,
        /// §1.2, §1.3; data: the two-octet accepted DH group.
        INVALID_KE_PAYLOAD = 17,
        /// §2.15.
        AUTHENTICATION_FAILED = 24,
        /// §2.9.
        SINGLE_PAIR_REQUIRED = 34,
        /// §1.3.
        NO_ADDITIONAL_SAS = 35,
        /// §3.15.4.
        INTERNAL_ADDRESS_FAILURE = 36,
        /// §2.19.
        FAILED_CP_REQUIRED = 37,
        /// §2.9.
        TS_UNACCEPTABLE = 38,
        /// §1.5.
        INVALID_SELECTORS = 39,
        /// §2.25.
        TEMPORARY_FAILURE = 43,
        /// §2.25.
        CHILD_SA_NOT_FOUND = 44,
        /// §2.4.
        INITIAL_CONTACT = 16384,
        /// §2.3.
        SET_WINDOW_SIZE = 16385,
        /// §2.9.
        ADDITIONAL_TS_POSSIBLE = 16386,
        /// §2.22.
        IPCOMP_SUPPORTED = 16387,
        /// §2.23; data: SHA-1(SPIi | SPIr | IP | port).
        NAT_DETECTION_SOURCE_IP = 16388,
        /// §2.23.
        NAT_DETECTION_DESTINATION_IP = 16389,
        /// §2.6.
        COOKIE = 16390,
        /// §1.3.1.
        USE_TRANSPORT_MODE = 16391,
        /// §3.6.
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        /// §1.3.3; Protocol ID and SPI name the CHILD SA being rekeyed.
        REKEY_SA = 16393,
        /// §1.3.1.
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        /// §1.3.1.
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        /// RFC 4555.
        MOBIKE_SUPPORTED = 16396,
        /// RFC 4739.
        MULTIPLE_AUTH_SUPPORTED = 16404,
        /// RFC 5685.
        REDIRECT_SUPPORTED = 16406,
        /// RFC 7383.
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// RFC 7427; data: two-octet hash algorithm identifiers.
        SIGNATURE_HASH_ALGORITHMS = 16431,
        /// RFC 9242.
        INTERMEDIATE_EXCHANGE_SUPPORTED = 16438,
    }
}

impl NotifyType {
    /// Whether this is an error type (§3.10.1: 0–16383).
    pub const fn is_error(self) -> bool {
        self.0 < 16384
    }
}

/// Notify payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// Protocol ID: NONE (or IKE) for notifications about the IKE SA, ESP/AH with an SPI otherwise.
    pub protocol: ProtocolId,
    /// SPI (empty, or 4 octets for ESP/AH).
    pub spi: Vec<u8>,
    /// Notify message type.
    pub ty: NotifyType,
    /// Notification data.
    pub data: Vec<u8>,
}

impl Notify {
    /// A notification about the IKE SA (no SPI).
    pub fn new(ty: NotifyType, data: impl Into<Vec<u8>>) -> Notify {
        Notify { protocol: ProtocolId::NONE, spi: Vec::new(), ty, data: data.into() }
    }

    fn parse(r: &mut Reader<'_>) -> Result<Notify> {
        let protocol = ProtocolId(r.u8("notify")?);
        let spi_size = r.u8("notify")? as usize;
        let ty = NotifyType(r.u16("notify")?);
        let spi = r.take(spi_size, "notify SPI")?.to_vec();
        Ok(Notify { protocol, spi, ty, data: r.rest().to_vec() })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.protocol.0)?;
        w.u8(u8::try_from(self.spi.len()).map_err(|_| Error::TooLong { what: "notify SPI" })?)?;
        w.u16(self.ty.0)?;
        w.bytes(&self.spi)?;
        w.bytes(&self.data)
    }
}

// ---- Delete (§3.11) ----

/// Delete payload: the IKE SA (protocol IKE, no SPIs) or CHILD SAs by their inbound SPIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    /// Protocol ID.
    pub protocol: ProtocolId,
    /// SPI size (0 for IKE, 4 for ESP/AH); every SPI has this length.
    pub spi_size: u8,
    /// The SPIs, `spi_size` octets each, concatenated.
    pub spis: Vec<u8>,
}

impl Delete {
    /// The SPIs, one slice each.
    pub fn spis(&self) -> impl Iterator<Item = &[u8]> {
        self.spis.chunks(usize::from(self.spi_size.max(1))).filter(|_| self.spi_size > 0)
    }

    fn parse(r: &mut Reader<'_>) -> Result<Delete> {
        let protocol = ProtocolId(r.u8("delete")?);
        let spi_size = r.u8("delete")?;
        let at = r.offset();
        let n = r.u16("delete")? as usize;
        let spis = r.take(n * usize::from(spi_size), "delete SPIs")?.to_vec();
        if spi_size == 0 && n != 0 {
            return Err(Error::Malformed { what: "delete", offset: at, why: "SPIs of size 0" });
        }
        Ok(Delete { protocol, spi_size, spis })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.protocol.0)?;
        w.u8(self.spi_size)?;
        let size = usize::from(self.spi_size);
        let n = match size {
            0 if self.spis.is_empty() => 0,
            0 => return Err(Error::TooLong { what: "delete SPIs (SPI size 0)" }),
            _ if !self.spis.chunks_exact(size).remainder().is_empty() => {
                return Err(Error::TooLong { what: "delete SPIs (not a multiple of the SPI size)" })
            }
            _ => self.spis.len() / size,
        };
        w.u16(u16::try_from(n).map_err(|_| Error::TooLong { what: "delete SPI count" })?)?;
        w.bytes(&self.spis)
    }
}

// ---- TS (§3.13) ----

code_point! {
    /// TS Type (§3.13.1).
    TsType(u8) {
        /// IPv4 address range.
        TS_IPV4_ADDR_RANGE = 7,
        /// IPv6 address range.
        TS_IPV6_ADDR_RANGE = 8,
    }
}

/// One traffic selector (§3.13.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE.
    V4 {
        /// IP protocol (0 = any; 47 = GRE).
        protocol: u8,
        /// Start port.
        start_port: u16,
        /// End port.
        end_port: u16,
        /// Start address.
        start: Ipv4Addr,
        /// End address.
        end: Ipv4Addr,
    },
    /// TS_IPV6_ADDR_RANGE.
    V6 {
        /// IP protocol.
        protocol: u8,
        /// Start port.
        start_port: u16,
        /// End port.
        end_port: u16,
        /// Start address.
        start: Ipv6Addr,
        /// End address.
        end: Ipv6Addr,
    },
    /// Another TS type, kept byte for byte.
    Other {
        /// Its type.
        ty: TsType,
        /// The bytes after the Selector Length field.
        data: Vec<u8>,
    },
}

impl TrafficSelector {
    fn parse_list(r: &mut Reader<'_>) -> Result<Vec<TrafficSelector>> {
        let n = r.u8("TS")?;
        r.take(3, "TS")?;
        let mut v = Vec::with_capacity(n.into());
        for _ in 0..n {
            let at = r.offset();
            let ty = TsType(r.u8("traffic selector")?);
            let protocol = r.u8("traffic selector")?;
            let len = r.u16("traffic selector")? as usize;
            let want = match ty {
                TsType::TS_IPV4_ADDR_RANGE => Some(16),
                TsType::TS_IPV6_ADDR_RANGE => Some(40),
                _ => None,
            };
            if len < 4 || want.is_some_and(|w| w != len) {
                return Err(Error::Malformed { what: "traffic selector", offset: at + 2, why: "bad selector length" });
            }
            let mut s = r.sub(len - 4, "traffic selector")?;
            v.push(match ty {
                TsType::TS_IPV4_ADDR_RANGE => {
                    let (start_port, end_port) = (s.u16("TS")?, s.u16("TS")?);
                    let start = Ipv4Addr::from(s.u32("TS")?);
                    let end = Ipv4Addr::from(s.u32("TS")?);
                    TrafficSelector::V4 { protocol, start_port, end_port, start, end }
                }
                TsType::TS_IPV6_ADDR_RANGE => {
                    let (start_port, end_port) = (s.u16("TS")?, s.u16("TS")?);
                    let mut a = [0u8; 16];
                    a.copy_from_slice(s.take(16, "TS")?);
                    let mut b = [0u8; 16];
                    b.copy_from_slice(s.take(16, "TS")?);
                    TrafficSelector::V6 { protocol, start_port, end_port, start: a.into(), end: b.into() }
                }
                _ => {
                    let mut data = vec![protocol];
                    data.extend_from_slice(s.rest());
                    TrafficSelector::Other { ty, data }
                }
            });
        }
        Ok(v)
    }

    fn write_list(list: &[TrafficSelector], w: &mut Writer<'_>) -> Result<()> {
        w.u8(u8::try_from(list.len()).map_err(|_| Error::TooLong { what: "TS count" })?)?;
        w.bytes(&[0; 3])?;
        for ts in list {
            match ts {
                TrafficSelector::V4 { protocol, start_port, end_port, start, end } => {
                    w.u8(TsType::TS_IPV4_ADDR_RANGE.0)?;
                    w.u8(*protocol)?;
                    w.u16(16)?;
                    w.u16(*start_port)?;
                    w.u16(*end_port)?;
                    w.bytes(&start.octets())?;
                    w.bytes(&end.octets())?;
                }
                TrafficSelector::V6 { protocol, start_port, end_port, start, end } => {
                    w.u8(TsType::TS_IPV6_ADDR_RANGE.0)?;
                    w.u8(*protocol)?;
                    w.u16(40)?;
                    w.u16(*start_port)?;
                    w.u16(*end_port)?;
                    w.bytes(&start.octets())?;
                    w.bytes(&end.octets())?;
                }
                TrafficSelector::Other { ty, data } => {
                    // `data` starts with the IP Protocol ID octet (the second octet of the selector).
                    let (proto, rest) = data.split_first().ok_or(Error::TooLong { what: "empty TS data" })?;
                    let start = w.pos();
                    w.u8(ty.0)?;
                    w.u8(*proto)?;
                    let at = w.begin_len16()?;
                    w.bytes(rest)?;
                    w.end_len16(at, start, "traffic selector")?;
                }
            }
        }
        Ok(())
    }
}

// ---- SK, SKF (§3.14, RFC 7383 §2.5) ----

/// Encrypted payload: IV, ciphertext (inner payloads, padding, pad length) and ICV, opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// Type of the first payload inside.
    pub next_payload: PayloadType,
    /// IV || ciphertext || ICV.
    pub data: Vec<u8>,
}

/// Encrypted Fragment payload (RFC 7383 §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFragment {
    /// Type of the first inner payload in fragment 1; NONE in the others.
    pub next_payload: PayloadType,
    /// Fragment Number, from 1.
    pub number: u16,
    /// Total Fragments.
    pub total: u16,
    /// IV || ciphertext || ICV.
    pub data: Vec<u8>,
}

impl EncryptedFragment {
    fn parse(next_payload: PayloadType, r: &mut Reader<'_>) -> Result<EncryptedFragment> {
        let at = r.offset();
        let number = r.u16("encrypted fragment")?;
        let total = r.u16("encrypted fragment")?;
        // RFC 7383 §2.6.1: numbers start at 1 and never exceed the total.
        if number == 0 || number > total {
            return Err(Error::Malformed {
                what: "encrypted fragment",
                offset: at,
                why: "fragment number out of range",
            });
        }
        Ok(EncryptedFragment { next_payload, number, total, data: r.rest().to_vec() })
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.number)?;
        w.u16(self.total)?;
        w.bytes(&self.data)
    }
}
