//! ESP wire format (RFC 4303) and the classification of UDP-encapsulated ESP (RFC 3948).
//!
//! Layer: between the outer IP (or UDP, port 4500) header and the ciphertext. This module only reads and
//! writes bytes; the cryptography and the SA state live in [`crate::crypto`], [`crate::sa`] and
//! [`crate::esp`].
//!
//! Layout (RFC 4303 §2):
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Security Parameters Index (SPI)   §2.1          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Sequence Number (low 32 bits) §2.2         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Payload: IV (cipher-specific, §2.3) then ciphertext        ~
//! ~      ... Padding (0-255, §2.4) | Pad Length | Next Header §2.6  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Integrity Check Value (ICV, §2.8), length set by the SA    ~
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The header view ([`Packet`], [`Repr`]) covers SPI, sequence number and the opaque rest. The trailer is
//! encrypted, so it is read by [`Trailer::parse`] over the *decrypted* bytes (payload || padding || pad
//! length || next header). [`classify_udp_4500`] sorts a UDP port-4500 payload into NAT keepalive, IKE
//! (non-ESP marker) and ESP (RFC 3948 §2.2, §2.3).
//!
//! Contract: after [`Packet::new_checked`] succeeds no accessor panics; every function here is total.

use super::{Error, Result};

mod field {
    use core::ops::{Range, RangeFrom};
    /// Security Parameters Index, RFC 4303 §2.1.
    pub const SPI: Range<usize> = 0..4;
    /// Sequence number (low 32 bits with ESN), RFC 4303 §2.2.
    pub const SEQ: Range<usize> = 4..8;
    /// IV, ciphertext and ICV.
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the ESP header (SPI + sequence number).
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// Length of the fixed trailer: Pad Length and Next Header (RFC 4303 §2.5, §2.6).
pub const TRAILER_LEN: usize = 2;

/// Next Header value 59, "no next header": a dummy packet (RFC 4303 §2.6) that the receiver discards.
pub const NEXT_HEADER_NONE: u8 = 59;

/// A read/write view of an ESP packet: header, then the opaque IV || ciphertext || ICV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic if it is shorter than [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps a buffer after checking it holds the 8-byte header; then no accessor panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let got = buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(Error::Truncated { layer: "esp header", needed: HEADER_LEN, got });
        }
        Ok(Self { buffer })
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Security Parameters Index (RFC 4303 §2.1).
    pub fn spi(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Sequence number as sent: the low 32 bits when ESN is in use (RFC 4303 §2.2, §2.2.1).
    pub fn seq_number(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[4], b[5], b[6], b[7]])
    }

    /// IV, ciphertext and ICV (their split depends on the SA's cipher).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the SPI.
    pub fn set_spi(&mut self, spi: u32) {
        self.buffer.as_mut()[field::SPI].copy_from_slice(&spi.to_be_bytes());
    }

    /// Sets the (low 32 bits of the) sequence number.
    pub fn set_seq_number(&mut self, seq: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }

    /// IV, ciphertext and ICV, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The cleartext ESP header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    /// Security Parameters Index. Zero is reserved (RFC 4303 §2.1) and, inside UDP 4500, would read as the
    /// non-ESP marker (RFC 3948 §2.2).
    pub spi: u32,
    /// Sequence number, low 32 bits.
    pub seq: u32,
}

impl Repr {
    /// Reads the header; SPI 0 is refused (RFC 4303 §2.1: reserved for local use, never sent).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Self> {
        let spi = packet.spi();
        if spi == 0 {
            return Err(Error::Malformed { layer: "esp header", offset: 0, what: "SPI 0 is reserved" });
        }
        Ok(Self { spi, seq: packet.seq_number() })
    }

    /// Header length: the payload follows.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_spi(self.spi);
        packet.set_seq_number(self.seq);
    }
}

/// The end of a decrypted ESP payload: Pad Length and Next Header (RFC 4303 §2.4–§2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Trailer {
    /// Number of padding bytes before the Pad Length byte (RFC 4303 §2.5).
    pub pad_len: u8,
    /// Protocol of the payload (RFC 4303 §2.6): 47 for GRE, 4/41 for tunnel mode, 59 for a dummy packet.
    pub next_header: u8,
}

impl Trailer {
    /// Reads the trailer at the end of `plaintext` (payload || padding || pad length || next header) and
    /// checks the padding is the default 1, 2, 3, ... that RFC 4303 §2.4 has the sender use and the
    /// receiver verify.
    pub fn parse(plaintext: &[u8]) -> Result<Self> {
        let got = plaintext.len();
        let Some(body_len) = got.checked_sub(TRAILER_LEN) else {
            return Err(Error::Truncated { layer: "esp trailer", needed: TRAILER_LEN, got });
        };
        let pad_len = plaintext[body_len];
        let next_header = plaintext[body_len + 1];
        let Some(pad_start) = body_len.checked_sub(usize::from(pad_len)) else {
            return Err(Error::Truncated { layer: "esp trailer", needed: TRAILER_LEN + usize::from(pad_len), got });
        };
        let monotonic = plaintext[pad_start..body_len].iter().zip(1u8..).all(|(b, want)| *b == want);
        if !monotonic {
            return Err(Error::Malformed {
                layer: "esp trailer",
                offset: 0,
                what: "padding bytes are not 1, 2, 3, ...",
            });
        }
        Ok(Self { pad_len, next_header })
    }

    /// Bytes of padding plus the fixed trailer.
    pub fn len(&self) -> usize {
        usize::from(self.pad_len) + TRAILER_LEN
    }

    /// Never empty: the fixed trailer is two bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Pad length that brings `payload_len` plus the trailer to a multiple of `align` (a power of two, at
    /// least 4: RFC 4303 §2.4 asks for 4-byte alignment, block ciphers for their block size).
    pub fn pad_for(payload_len: usize, align: usize) -> u8 {
        let rem = (payload_len + TRAILER_LEN) & (align - 1);
        // `align` is at most 16, so the pad fits in a byte.
        ((align - rem) & (align - 1)) as u8
    }

    /// Writes padding 1, 2, 3, ..., pad length and next header into `out`, which must be exactly
    /// [`Trailer::len`] bytes long (returns `false`, writing nothing, otherwise).
    pub fn emit(&self, out: &mut [u8]) -> bool {
        let pad = usize::from(self.pad_len);
        if out.len() != pad + TRAILER_LEN {
            return false;
        }
        for (b, v) in out[..pad].iter_mut().zip(1u8..) {
            *b = v;
        }
        out[pad] = self.pad_len;
        out[pad + 1] = self.next_header;
        true
    }
}

/// What a UDP datagram to or from port 4500 carries (RFC 3948 §2.2, §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpEncap {
    /// A NAT-keepalive: the single byte 0xFF (RFC 3948 §2.3). Consume it.
    Keepalive,
    /// An IKE message behind the four-zero-byte non-ESP marker (RFC 3948 §2.2); the IKE header starts at
    /// offset [`NON_ESP_MARKER_LEN`].
    Ike,
    /// An ESP packet (first four bytes, the SPI, non-zero).
    Esp,
    /// Too short to be any of these (fewer than 8 bytes and not a keepalive). RFC 3948 §2.2 puts a full
    /// ESP header or marker+IKE header there; such datagrams are dropped.
    Malformed,
}

/// Length of the non-ESP marker in front of IKE messages on port 4500.
pub const NON_ESP_MARKER_LEN: usize = 4;

/// Sorts the payload of a UDP datagram on port 4500 (RFC 3948 §2.2, §2.3).
pub fn classify_udp_4500(payload: &[u8]) -> UdpEncap {
    match payload {
        [0xff] => UdpEncap::Keepalive,
        [0, 0, 0, 0, ..] => UdpEncap::Ike,
        p if p.len() >= HEADER_LEN => UdpEncap::Esp,
        _ => UdpEncap::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Made with Scapy 2.8.0:
    // python3 -c "from scapy.all import *; print(bytes(ESP(spi=0x12345678, seq=0xdeadbeef, data=b'xyz')).hex())"
    const SCAPY_ESP: &str = "12345678deadbeef78797a";

    #[test]
    fn parses_scapy_header() {
        let bytes = hex::decode(SCAPY_ESP).unwrap();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&p).unwrap(), Repr { spi: 0x1234_5678, seq: 0xdead_beef });
        assert_eq!(p.payload(), b"xyz");
    }

    #[test]
    fn emit_writes_every_header_byte() {
        let mut buf = [0xaa_u8; 8];
        Repr { spi: 0x0102_0304, seq: 0x0506_0708 }.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn truncated_header_at_every_length() {
        let bytes = hex::decode(SCAPY_ESP).unwrap();
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&bytes[..n]).unwrap_err(),
                Error::Truncated { layer: "esp header", needed: 8, got: n }
            );
        }
        assert!(Packet::new_checked(&bytes[..HEADER_LEN]).unwrap().payload().is_empty());
    }

    #[test]
    fn spi_zero_is_refused() {
        let p = Packet::new_checked([0u8, 0, 0, 0, 0, 0, 0, 1]).unwrap();
        assert!(matches!(Repr::parse(&p), Err(Error::Malformed { .. })));
    }

    #[test]
    fn trailer_reads_padding_and_next_header() {
        // payload "ab", 4 bytes of padding, pad length 4, next header 47 (GRE).
        let t = Trailer::parse(&[b'a', b'b', 1, 2, 3, 4, 4, 47]).unwrap();
        assert_eq!(t, Trailer { pad_len: 4, next_header: 47 });
        assert_eq!(t.len(), 6);
        assert_eq!(Trailer::parse(&[0, 59]).unwrap(), Trailer { pad_len: 0, next_header: 59 });
    }

    #[test]
    fn trailer_rejects_bad_padding_and_truncation() {
        assert!(matches!(Trailer::parse(&[1, 3, 2, 47]), Err(Error::Malformed { .. })));
        assert!(matches!(Trailer::parse(&[9, 9, 1, 2, 3, 47]), Err(Error::Malformed { .. })));
        assert_eq!(
            Trailer::parse(&[1, 2, 3, 47]).unwrap_err(),
            Error::Truncated { layer: "esp trailer", needed: 5, got: 4 }
        );
        for n in 0..2 {
            assert!(matches!(Trailer::parse(&[0, 47][..n]), Err(Error::Truncated { .. })));
        }
    }

    #[test]
    fn pad_for_aligns_to_four_and_to_sixteen() {
        assert_eq!(Trailer::pad_for(2, 4), 0);
        assert_eq!(Trailer::pad_for(3, 4), 3);
        assert_eq!(Trailer::pad_for(0, 16), 14);
        assert_eq!(Trailer::pad_for(14, 16), 0);
        assert_eq!(Trailer::pad_for(15, 16), 15);
    }

    #[test]
    fn classifies_rfc3948_payloads() {
        assert_eq!(classify_udp_4500(&[0xff]), UdpEncap::Keepalive);
        assert_eq!(classify_udp_4500(&[0, 0, 0, 0]), UdpEncap::Ike);
        assert_eq!(classify_udp_4500(&hex::decode(SCAPY_ESP).unwrap()), UdpEncap::Esp);
        assert_eq!(classify_udp_4500(&[]), UdpEncap::Malformed);
        assert_eq!(classify_udp_4500(&[0xff, 0xff]), UdpEncap::Malformed);
        assert_eq!(classify_udp_4500(&[1, 2, 3, 4, 5, 6, 7]), UdpEncap::Malformed);
        assert_eq!(classify_udp_4500(&[0, 0, 0, 1, 0, 0, 0, 0]), UdpEncap::Esp);
    }

    proptest! {
        #[test]
        fn header_round_trips(spi in 1u32.., seq: u32, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let repr = Repr { spi, seq };
            let mut buf = vec![0xaa; repr.buffer_len() + payload.len()];
            let mut p = Packet::new_checked(&mut buf[..]).unwrap();
            repr.emit(&mut p);
            p.payload_mut().copy_from_slice(&payload);
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), repr);
            prop_assert_eq!(p.payload(), &payload[..]);
        }

        #[test]
        fn trailer_round_trips(body in proptest::collection::vec(any::<u8>(), 0..40), nh: u8, align in prop_oneof![Just(4usize), Just(16)]) {
            let t = Trailer { pad_len: Trailer::pad_for(body.len(), align), next_header: nh };
            let mut buf = body.clone();
            buf.resize(body.len() + t.len(), 0xaa);
            prop_assert!(t.emit(&mut buf[body.len()..]));
            prop_assert_eq!(buf.len() % align, 0);
            prop_assert_eq!(Trailer::parse(&buf).unwrap(), t);
        }
    }
}
