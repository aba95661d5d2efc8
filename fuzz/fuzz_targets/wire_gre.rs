//! Arbitrary bytes as a GRE packet (RFC 2784/2890): the view and `Repr` never panic, a parsed `Repr`
//! survives emit → parse, the view's getters agree with the `Repr`, and the setters rebuild the same
//! header as `Repr::emit`.
#![no_main]

use dataplane::wire::gre;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = gre::Packet::new_checked(data) else { return };
    assert_eq!(p.version(), 0);
    assert!(p.header_len() <= data.len());
    let Ok(repr) = gre::Repr::parse(&p) else {
        assert!(!p.verify_checksum());
        return;
    };
    assert_eq!(
        (p.protocol_type(), p.checksum_present(), p.key(), p.sequence()),
        (repr.protocol, repr.checksum, repr.key, repr.sequence)
    );
    let hl = repr.buffer_len();
    assert_eq!(hl, p.header_len());

    let mut emitted = vec![0xAA; data.len()];
    emitted[hl..].copy_from_slice(p.payload());
    repr.emit(&mut gre::Packet::new_unchecked(&mut emitted[..]));
    let q = gre::Packet::new_checked(&emitted[..]).expect("emitted header checks");
    assert_eq!(gre::Repr::parse(&q), Ok(repr));
    assert_eq!(q.payload(), p.payload());

    let mut built = vec![0x55; data.len()];
    built[hl..].copy_from_slice(p.payload());
    let mut b = gre::Packet::new_unchecked(&mut built[..]);
    b.set_flags(false, false, false);
    b.set_checksum_present(repr.checksum);
    b.set_key_present(repr.key.is_some());
    b.set_seq_present(repr.sequence.is_some());
    b.set_protocol_type(repr.protocol);
    if let Some(k) = repr.key {
        b.set_key(k);
    }
    if let Some(s) = repr.sequence {
        b.set_sequence(s);
    }
    if repr.checksum {
        b.fill_checksum();
    }
    assert_eq!(built, emitted);
});
