#!/usr/bin/env python3
"""Writes sk.txt: whole IKE messages with an Encrypted payload (RFC 7296 §3.14, RFC 5282), made with
the `cryptography` package, independently of the Rust code. Run: python3 gen_sk.py > sk.txt"""
import hashlib, hmac, struct
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SPI_I, SPI_R, EXCH, FLAGS, MID, NEXT = 0x0102030405060708, 0x1112131415161718, 35, 0x08, 1, 35
PLAIN = bytes(range(37))  # 37 octets: not a block multiple

def header(total):
    return struct.pack("!QQBBBBII", SPI_I, SPI_R, 46, 0x20, EXCH, FLAGS, MID, total)

def gcm(key, salt, iv):
    body = PLAIN + b"\x00"
    n = 28 + 4 + 8 + len(body) + 16
    aad = header(n) + struct.pack("!BBH", NEXT, 0, n - 28)
    ct = AESGCM(key).encrypt(salt + iv, body, aad)
    return aad + iv + ct

def cbc(key, iv, hname, icv):
    padded = (len(PLAIN) + 1 + 15) // 16 * 16
    body = PLAIN + b"\x00" * (padded - len(PLAIN) - 1) + bytes([padded - len(PLAIN) - 1])
    n = 28 + 4 + 16 + len(body) + icv
    e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    msg = header(n) + struct.pack("!BBH", NEXT, 0, n - 28) + iv + e.update(body) + e.finalize()
    return msg + hmac.new(ikey, msg, hname).digest()[:icv]

ikey = bytes(range(100, 164))
for bits in (128, 256):
    key = bytes(range(bits // 8)); salt = b"\xa1\xa2\xa3\xa4"; iv = bytes(8)
    print(f"encr = gcm{bits}\nkey = {key.hex()}\nsalt = {salt.hex()}\ninteg = \nmessage = {gcm(key, salt, iv).hex()}\n")
for bits, hname, icv, klen in ((128, "sha256", 16, 32), (256, "sha512", 32, 64)):
    key = bytes(range(bits // 8)); iv = bytes(range(0xc0, 0xd0))
    ikey = bytes(range(100, 100 + klen))
    print(f"encr = cbc{bits}-{hname}\nkey = {key.hex()}\nsalt = \ninteg = {ikey.hex()}\niv = {iv.hex()}\n"
          f"message = {cbc(key, iv, hname, icv).hex()}\n")
