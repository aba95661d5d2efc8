//! Fuzzes the ESP wire view: header parse/emit round trip, trailer parse, RFC 3948 classification.
#![no_main]

use dataplane::wire::esp::{classify_udp_4500, Packet, Repr, Trailer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = classify_udp_4500(data);
    if let Ok(t) = Trailer::parse(data) {
        assert!(t.len() <= data.len());
        let mut out = vec![0xaa; t.len()];
        assert!(t.emit(&mut out));
        assert_eq!(Trailer::parse(&out), Ok(t));
    }
    let Ok(packet) = Packet::new_checked(data) else { return };
    let _ = packet.payload();
    let Ok(repr) = Repr::parse(&packet) else { return };
    let mut buf = data.to_vec();
    buf[..repr.buffer_len()].fill(0xaa);
    repr.emit(&mut Packet::new_unchecked(&mut buf[..]));
    let again = Repr::parse(&Packet::new_checked(&buf[..]).expect("same length")).expect("emitted header parses");
    assert_eq!(again, repr);
    assert_eq!(buf, data);
});
