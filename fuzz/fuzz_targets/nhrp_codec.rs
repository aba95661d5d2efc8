//! Arbitrary bytes as an NHRP packet (RFC 2332 §5): parsing never panics, and a parsed packet emits
//! (into a junk-filled buffer) to bytes that parse back to the same packet. The checksum is fixed up
//! before parsing, so that mutations reach the mandatory part and the extensions instead of stopping
//! at `ar$chksum`; the raw bytes are parsed too. The zero-copy [`View`] agrees with the parser on
//! every packet the parser accepts: same operation, hop count, addresses and extension types.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nhrp::wire::{checksum, Packet, View, CHECKSUM_AT};

fuzz_target!(|data: &[u8]| {
    let _ = Packet::parse(data);
    let mut buf = data.to_vec();
    if buf.len() >= 20 {
        let size = usize::from(u16::from_be_bytes([buf[10], buf[11]])).min(buf.len());
        if size >= CHECKSUM_AT + 2 {
            buf[CHECKSUM_AT..CHECKSUM_AT + 2].copy_from_slice(&[0, 0]);
            let sum = checksum(&buf[..size]);
            buf[CHECKSUM_AT..CHECKSUM_AT + 2].copy_from_slice(&sum.to_be_bytes());
        }
    }
    let Ok(p) = Packet::parse(&buf) else { return };
    let v = View::new_checked(&buf[..]).expect("the view accepts what the parser accepts");
    assert_eq!((v.operation(), v.hop_count()), (p.op, p.hop_count));
    assert_eq!(p.src_proto.is_some(), !v.src_proto().is_empty());
    assert_eq!(p.dst_proto.is_some(), !v.dst_proto().is_empty());
    let kinds: Vec<_> = v.extensions().map(|x| x.expect("extensions the parser read").kind).collect();
    assert_eq!(kinds, p.extensions.iter().map(|e| e.body.kind()).collect::<Vec<_>>());
    let n = p.buffer_len().expect("a parsed packet emits");
    let mut out = vec![0xAA; n];
    assert_eq!(p.emit(&mut out), Ok(n));
    assert_eq!(Packet::parse(&out).as_ref(), Ok(&p));
});
