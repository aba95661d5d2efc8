#!/usr/bin/env python3
"""Writes keys.txt: prf+, SKEYSEED, the IKE SA keys, CHILD SA KEYMAT and rekey SKEYSEED (RFC 7296
§2.13, §2.14, §2.17, §2.18), computed here straight from the RFC's formulas. Every HMAC is computed
twice, by Python's hmac module and by the `cryptography` package, and the two must agree. Inputs are
fixed byte patterns (deterministic), chosen so each nonce and secret has a distinct length."""
import hashlib, hmac
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac

PRFS = {"PRF_HMAC_SHA2_256": (hashlib.sha256, hashes.SHA256(), 32),
        "PRF_HMAC_SHA2_384": (hashlib.sha384, hashes.SHA384(), 48),
        "PRF_HMAC_SHA2_512": (hashlib.sha512, hashes.SHA512(), 64)}

def prf(name, key, data):
    a = hmac.new(key, data, PRFS[name][0]).digest()
    h = chmac.HMAC(key, PRFS[name][1]); h.update(data); b = h.finalize()
    assert a == b
    return a

def prf_plus(name, key, seed, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = prf(name, key, t + seed + bytes([i])); out += t; i += 1
    return out[:n]

def pat(seed, n):
    return bytes((seed * 31 + 7 * i) & 0xff for i in range(n))

# (ENCR id, key bits, INTEG id) -> (encr key bytes incl. salt, integ key bytes)
SUITES = [(20, 256, 0, 32 + 4, 0), (20, 128, 0, 16 + 4, 0), (12, 128, 12, 16, 32), (12, 256, 14, 32, 64)]

out = ["# IKEv2 key schedule vectors, made by gen_keys.py (see there): straight from RFC 7296's formulas,",
       "# every HMAC checked between Python's hmac module and the `cryptography` package.",
       "# encr/integ are transform IDs; *_e* keys include the 4-octet AES-GCM salt at their end.", ""]
for name, (_, _, plen) in PRFS.items():
    for n in (1, plen, plen + 1, 7 * plen + 5, 255 * plen):
        key, seed = pat(n % 251, plen + 3), pat(n % 13 + 1, 41)
        out += ["kind = prf_plus", f"prf = {name}", f"key = {key.hex()}", f"seed = {seed.hex()}", f"len = {n}",
                f"out = {prf_plus(name, key, seed, n).hex()}", ""]
    for k, (encr, bits, integ, el, il) in enumerate(SUITES):
        ni, nr, gir = pat(k + 1, 32), pat(k + 2, 48), pat(k + 3, 256 if k % 2 else 32)
        spi_i, spi_r = pat(k + 4, 8), pat(k + 5, 8)
        skeyseed = prf(name, ni + nr, gir)
        km = prf_plus(name, skeyseed, ni + nr + spi_i + spi_r, 3 * plen + 2 * el + 2 * il)
        parts, at = {}, 0
        for f, l in (("sk_d", plen), ("sk_ai", il), ("sk_ar", il), ("sk_ei", el), ("sk_er", el), ("sk_pi", plen), ("sk_pr", plen)):
            parts[f] = km[at:at + l]; at += l
        out += ["kind = ike", f"prf = {name}", f"encr = {encr}", f"key_bits = {bits}", f"integ = {integ}",
                f"ni = {ni.hex()}", f"nr = {nr.hex()}", f"g_ir = {gir.hex()}", f"spi_i = {spi_i.hex()}",
                f"spi_r = {spi_r.hex()}", f"skeyseed = {skeyseed.hex()}"] + [f"{f} = {v.hex()}" for f, v in parts.items()] + [""]
        for pfs in (False, True):
            g = pat(k + 9, 32) if pfs else b""
            cni, cnr = pat(k + 6, 16), pat(k + 7, 64)
            km = prf_plus(name, parts["sk_d"], g + cni + cnr, 2 * (el + il))
            ei, ai, er, ar = km[:el], km[el:el + il], km[el + il:2 * el + il], km[2 * el + il:]
            out += ["kind = child", f"prf = {name}", f"encr = {encr}", f"key_bits = {bits}", f"integ = {integ}",
                    f"sk_d = {parts['sk_d'].hex()}", f"g_ir = {g.hex()}", f"ni = {cni.hex()}", f"nr = {cnr.hex()}",
                    f"ei = {ei.hex()}", f"ai = {ai.hex()}", f"er = {er.hex()}", f"ar = {ar.hex()}", ""]
        g = pat(k + 11, 64)
        out += ["kind = rekey", f"prf = {name}", f"sk_d = {parts['sk_d'].hex()}", f"g_ir = {g.hex()}",
                f"ni = {ni.hex()}", f"nr = {nr.hex()}", f"out = {prf(name, parts['sk_d'], g + ni + nr).hex()}", ""]
open("keys.txt", "w").write("\n".join(out))
