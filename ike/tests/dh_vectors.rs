//! Diffie-Hellman known answers (`tests/vectors/dh.txt`, written by `gen_dh.py`): RFC 5903 §8 for groups
//! 19, 20, 21, RFC 7748 §6.1 for group 31, and for group 14 values computed with Python's `pow()` over
//! RFC 3526's prime (there is no published vector), all checked against the `cryptography` package.
//! The private keys go in through the injected randomness, exactly as the engine draws them; the KE
//! data each side sends and the shared secret g^ir must be the published ones.

use ike::crypto::{public_len, KeyExchange, Random};
use ike::message::DhGroup;

/// Hands out fixed bytes: the private key of a vector.
struct Fixed(Vec<u8>);

impl Random for Fixed {
    fn fill(&mut self, buf: &mut [u8]) {
        assert!(self.0.len() >= buf.len(), "the vector's private key is shorter than what is drawn");
        let rest = self.0.split_off(buf.len());
        buf.copy_from_slice(&self.0);
        self.0 = rest;
    }
}

#[test]
fn every_group_gives_the_published_ke_data_and_shared_secret() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/dh.txt")).unwrap();
    let mut groups = Vec::new();
    for block in text.split("\n\n").filter(|b| b.contains("group = ")) {
        let field = |k: &str| {
            let line = block.lines().find(|l| l.starts_with(&format!("{k} = "))).unwrap();
            line[k.len() + 3..].to_owned()
        };
        let h = |k: &str| hex::decode(field(k)).unwrap();
        let group = DhGroup(field("group").parse().unwrap());
        let source = field("source");
        let i = KeyExchange::generate(group, &mut Fixed(h("i"))).unwrap();
        let r = KeyExchange::generate(group, &mut Fixed(h("r"))).unwrap();
        assert_eq!(i.public(), h("gi"), "{source}: g^i");
        assert_eq!(r.public(), h("gr"), "{source}: g^r");
        assert_eq!(i.public().len(), public_len(group).unwrap());
        assert_eq!(i.shared(&h("gr")).unwrap(), h("gir"), "{source}: g^ir at i");
        assert_eq!(r.shared(&h("gi")).unwrap(), h("gir"), "{source}: g^ir at r");
        groups.push(group);
    }
    let want = [DhGroup::ECP_256, DhGroup::ECP_384, DhGroup::ECP_521, DhGroup::CURVE25519, DhGroup::MODP_2048];
    assert_eq!(groups, want);
}
