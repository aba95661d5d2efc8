#!/usr/bin/env python3
"""Writes dh.txt: Diffie-Hellman known answers for the KE groups (RFC 7296 §3.4). Groups 19, 20, 21:
RFC 5903 §8 (the private keys i and r, the KE data g^i and g^r as x | y, and g^ir's x, the shared
secret); group 31: RFC 7748 §6.1 (Alice is i, Bob is r). Each published vector is checked here against
the `cryptography` package before it is written. Group 14 (RFC 3526's 2048-bit MODP group) has no
published vector: its values are computed with Python's pow() from fixed 256-bit exponents (top bit
set, as our engine draws them) and checked against the `cryptography` package's DH."""
from cryptography.hazmat.primitives.asymmetric import ec, x25519, dh
from cryptography.hazmat.primitives import serialization

RFC5903 = {
    19: (ec.SECP256R1(), 32,
         "c88f01f510d9ac3f70a292daa2316de544e9aab8afe84049c62a9c57862d1433",
         "dad0b65394221cf9b051e1feca5787d098dfe637fc90b9ef945d0c3772581180"
         "5271a0461cdb8252d61f1c456fa3e59ab1f45b33accf5f58389e0577b8990bb3",
         "c6ef9c5d78ae012a011164acb397ce2088685d8f06bf9be0b283ab46476bee53",
         "d12dfb5289c8d4f81208b70270398c342296970a0bccb74c736fc7554494bf63"
         "56fbf3ca366cc23e8157854c13c58d6aac23f046ada30f8353e74f33039872ab",
         "d6840f6b42f6edafd13116e0e12565202fef8e9ece7dce03812464d04b9442de"),
    20: (ec.SECP384R1(), 48,
         "099f3c7034d4a2c699884d73a375a67f7624ef7c6b3c0f160647b67414dce655e35b538041e649ee3faef896783ab194",
         "667842d7d180ac2cde6f74f37551f55755c7645c20ef73e31634fe72b4c55ee6de3ac808acb4bdb4c88732aee95f41aa"
         "9482ed1fc0eeb9cafc4984625ccfc23f65032149e0e144ada024181535a0f38eeb9fcff3c2c947dae69b4c634573a81c",
         "41cb0779b4bdb85d47846725fbec3c9430fab46cc8dc5060855cc9bda0aa2942e0308312916b8ed2960e4bd55a7448fc",
         "e558dbef53eecde3d3fccfc1aea08a89a987475d12fd950d83cfa41732bc509d0d1ac43a0336def96fda41d0774a3571"
         "dcfbec7aacf3196472169e838430367f66eebe3c6e70c416dd5f0c68759dd1fff83fa40142209dff5eaad96db9e6386c",
         "11187331c279962d93d604243fd592cb9d0a926f422e47187521287e7156c5c4d603135569b9e9d09cf5d4a270f59746"),
    21: (ec.SECP521R1(), 66,
         "0037ade9319a89f4dabdb3ef411aaccca5123c61acab57b5393dce47608172a095aa85a30fe1c2952c6771d937ba9777"
         "f5957b2639bab072462f68c27a57382d4a52",
         "0015417e84dbf28c0ad3c278713349dc7df153c897a1891bd98bab4357c9ecbee1e3bf42e00b8e380aeae57c2d107564"
         "941885942af5a7f4601723c4195d176ced3e"
         "017cae20b6641d2eeb695786d8c946146239d099e18e1d5a514c739d7cb4a10ad8a788015ac405d7799dc75e7b7d5b6c"
         "f2261a6a7f1507438bf01beb6ca3926f9582",
         "0145ba99a847af43793fdd0e872e7cdfa16be30fdc780f97bccc3f078380201e9c677d600b343757a3bdbf2a3163e4c2"
         "f869cca7458aa4a4effc311f5cb151685eb9",
         "00d0b3975ac4b799f5bea16d5e13e9af971d5e9b984c9f39728b5e5739735a219b97c356436adc6e95bb0352f6be64a6"
         "c2912d4ef2d0433ced2b6171640012d9460f"
         "015c68226383956e3bd066e797b623c27ce0eac2f551a10c2c724d9852077b87220b6536c5c408a1d2aebb8e86d678ae"
         "49cb57091f4732296579ab44fcd17f0fc56a",
         "01144c7d79ae6956bc8edb8e7c787c4521cb086fa64407f97894e5e6b2d79b04d1427e73ca4baa240a34786859810c06"
         "b3c715a3a8cc3151f2bee417996d19f3ddea"),
}

RFC7748 = ("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
           "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
           "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
           "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
           "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# RFC 3526 §3.
MODP_2048 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE"
    "386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F8365"
    "5D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E77"
    "2C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A"
    "8AACAA68FFFFFFFFFFFFFFFF", 16)


def ec_point(curve, n, priv):
    pub = ec.derive_private_key(int(priv, 16), curve).public_key().public_numbers()
    return pub.x.to_bytes(n, "big").hex() + pub.y.to_bytes(n, "big").hex()


def ec_shared(curve, priv, peer_xy, n):
    key = ec.derive_private_key(int(priv, 16), curve)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, bytes.fromhex("04" + peer_xy))
    return key.exchange(ec.ECDH(), peer).hex()


def block(group, source, i, gi, r, gr, gir):
    return f"group = {group}\nsource = {source}\ni = {i}\ngi = {gi}\nr = {r}\ngr = {gr}\ngir = {gir}\n"


out = ["# Diffie-Hellman known answers, written by gen_dh.py (see there for the sources and checks).\n"]
for group, (curve, n, i, gi, r, gr, gir) in RFC5903.items():
    assert ec_point(curve, n, i) == gi and ec_point(curve, n, r) == gr, group
    assert ec_shared(curve, i, gr, n) == gir == ec_shared(curve, r, gi, n), group
    out.append(block(group, f"RFC 5903 section 8 ({curve.name})", i, gi, r, gr, gir))

i, gi, r, gr, gir = RFC7748
for priv, pub in ((i, gi), (r, gr)):
    key = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(priv))
    assert key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex() == pub
key = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(i))
assert key.exchange(x25519.X25519PublicKey.from_public_bytes(bytes.fromhex(gr))).hex() == gir
out.append(block(31, "RFC 7748 section 6.1 (Alice is i, Bob is r)", i, gi, r, gr, gir))

xi = int("8" + "0123456789abcdef" * 3 + "fedcba987654321", 16)
xr = int("c" + "f0e1d2c3b4a59687" * 3 + "8796a5b4c3d2e1f", 16)
assert xi >> 255 == 1 and xr >> 255 == 1 and xi < 1 << 256 and xr < 1 << 256
gi_, gr_ = pow(2, xi, MODP_2048), pow(2, xr, MODP_2048)
gir_ = pow(gr_, xi, MODP_2048)
assert gir_ == pow(gi_, xr, MODP_2048)
params = dh.DHParameterNumbers(MODP_2048, 2)
for x, y in ((xi, gi_), (xr, gr_)):
    key = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(y, params)).private_key()
other = dh.DHPrivateNumbers(xi, dh.DHPublicNumbers(gi_, params)).private_key()
assert other.exchange(dh.DHPublicNumbers(gr_, params).public_key()) == gir_.to_bytes(256, "big")
h = lambda v, n: v.to_bytes(n, "big").hex()
out.append(block(14, "Python pow() over RFC 3526 section 3's prime, checked with the cryptography package",
                 h(xi, 32), h(gi_, 256), h(xr, 32), h(gr_, 256), h(gir_, 256)))

open(__file__.replace("gen_dh.py", "dh.txt"), "w").write("\n".join(out))
