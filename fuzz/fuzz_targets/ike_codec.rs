//! Arbitrary bytes as an IKEv2 message (RFC 7296 §3): parsing never panics, the header reader agrees
//! with the message, a parsed message survives emit → parse, emit writes every byte it counts (a
//! junk-filled buffer comes out the same as a zeroed one), and the inner chain of an Encrypted payload
//! round-trips through `parse_chain`/`emit_chain` as well.
#![no_main]

use ike::message::{chain_len, emit_chain, parse_chain, Header, Message, PayloadType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The bytes after the header also stand for a decrypted SK body whose first payload is an IDi.
    if data.len() > 28 {
        if let Ok(chain) = parse_chain(PayloadType::IDI, &data[28..]) {
            let n = chain_len(&chain).expect("parsed chain emits");
            let mut out = vec![0xAA; n];
            let (first, len) = emit_chain(&chain, &mut out).expect("parsed chain emits");
            assert_eq!(len, n);
            if chain.is_empty() {
                assert_eq!(first, PayloadType::NONE);
            }
            assert_eq!(parse_chain(first, &out).expect("emitted chain parses"), chain);
        }
    }

    let Ok(m) = Message::parse(data) else { return };
    let h = Header::parse(data).expect("a parsed message has a header");
    assert_eq!((h.spi_i, h.spi_r, h.major, h.message_id), (m.spi_i, m.spi_r, 2, m.message_id));
    assert_eq!(h.length as usize, data.len());

    let n = m.buffer_len().expect("parsed message emits");
    let mut junk = vec![0xAA; n];
    let mut zero = vec![0; n];
    assert_eq!(m.emit(&mut junk), Ok(n));
    assert_eq!(m.emit(&mut zero), Ok(n));
    assert_eq!(junk, zero);
    assert_eq!(Message::parse(&junk).expect("emitted message parses"), m);
});
