"""Writes nhrp_vectors.txt: NHRP packets built from the RFC 2332 §5 layout with struct, independently of
the Rust codec, plus the Cisco forms (Traffic Indication, NAT address extension, plaintext
authentication). Each line: NAME HEX. The Rust test `codec_vectors.rs` states the fields each one must
parse to. Also writes them as seeds of the fuzz target nhrp_codec (fuzz/corpus/nhrp_codec/).
Run: python3 nhrp/tests/vectors/make_vectors.py.
"""
import ipaddress
import struct
from pathlib import Path


def addr(a):
    return ipaddress.ip_address(a).packed if a else b""


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def cie(code=0, prefix=32, mtu=0, hold=0, nbma=None, proto=None, pref=0):
    n, p = addr(nbma), addr(proto)
    return struct.pack("!BBHHHBBBB", code, prefix, 0, mtu, hold, len(n), 0, len(p), pref) + n + p


def ext(typ, value=b"", compulsory=False):
    return struct.pack("!HH", typ | (0x8000 if compulsory else 0), len(value)) + value


END = ext(0, compulsory=True)


def packet(op, afn, pro, src_nbma, src_proto, dst_proto, word1, word2, body, exts=None, hop=255):
    """word1 is the 16-bit flags (or unused/traffic code), word2 the 32-bit request id (or code/offset)."""
    sn, sp, dp = addr(src_nbma), addr(src_proto), addr(dst_proto)
    mand = struct.pack("!BBHI", len(sp), len(dp), word1, word2) + sn + sp + dp + body
    extoff = 20 + len(mand) if exts is not None else 0
    ext_bytes = b"".join(exts) + END if exts is not None else b""
    size = 20 + len(mand) + len(ext_bytes)
    hdr = struct.pack("!HH5sBHHHBBBB", afn, pro, b"\0" * 5, hop, size, 0, extoff, 1, op, len(sn), 0)
    pkt = bytearray(hdr + mand + ext_bytes)
    struct.pack_into("!H", pkt, 12, csum(bytes(pkt)))
    return bytes(pkt)


AUTH = struct.pack("!I", 1) + b"cisco123"
V4, V6 = (1, 0x0800), (2, 0x86DD)
OVERLAY_IP = bytes.fromhex("450000540001000040010000" "0a01000a" "0a02000a") + b"\x08\x00\x00\x00\x00\x01\x00\x01"

vectors = {
    # Registration Request, IPv4 over IPv4, Cisco's shape: unique + NAT flags, one CIE with prefix 0xff
    # and no client addresses, empty responder/transit/NAT extensions, plaintext authentication.
    "reg_request_v4": packet(3, 1, 0x0800, "198.51.100.11", "10.0.0.11", "10.0.0.1", 0x8002, 7,
                             cie(prefix=0xFF, mtu=1514, hold=7200),
                             [ext(3, compulsory=True), ext(4, compulsory=True), ext(5, compulsory=True),
                              ext(7, AUTH, compulsory=True), ext(9)]),
    # Registration Reply: success CIE, responder address CIE, NAT extension with the address the hub saw.
    "reg_reply_v4": packet(4, 1, 0x0800, "198.51.100.11", "10.0.0.11", "10.0.0.1", 0x8002, 7,
                           cie(prefix=0xFF, mtu=1514, hold=7200),
                           [ext(3, cie(prefix=32, hold=7200, nbma="192.0.2.1", proto="10.0.0.1"), True),
                            ext(4, compulsory=True), ext(5, compulsory=True),
                            ext(9, cie(prefix=32, nbma="203.0.113.7", proto="10.0.0.11"))], hop=254),
    # Resolution Request, IPv6 overlay over IPv4 NBMA, Q and S flags, forward transit record of one NHS.
    "res_request_v6_over_v4": packet(1, 1, 0x86DD, "198.51.100.11", "2001:db8::11", "2001:db8:2::5", 0x8802,
                                     0x01020304, cie(prefix=128, hold=600),
                                     [ext(3, compulsory=True),
                                      ext(4, cie(prefix=128, hold=600, nbma="192.0.2.1", proto="2001:db8::1"), True),
                                      ext(5, compulsory=True)], hop=15),
    # Resolution Reply, IPv4 overlay over IPv6 NBMA: a /24 shortcut, authoritative.
    "res_reply_v4_over_v6": packet(2, 2, 0x0800, "2001:db8:100::11", "10.0.0.11", "10.2.0.5", 0xE802, 99,
                                   cie(code=0, prefix=24, mtu=1400, hold=600, nbma="2001:db8:100::22",
                                       proto="10.0.0.22", pref=1),
                                   [ext(3, cie(prefix=24, hold=600, nbma="2001:db8:100::22", proto="10.0.0.22"),
                                        True)]),
    # Purge Request, IPv6 over IPv6, no reply expected (N), two CIEs.
    "purge_request_v6": packet(5, 2, 0x86DD, "2001:db8:100::1", "2001:db8::1", "2001:db8::11", 0x8000, 42,
                               cie(prefix=128, proto="2001:db8::11") + cie(prefix=64, proto="2001:db8:11::"),
                               hop=1),
    # A Purge Reply whose extension part holds only the End extension.
    "purge_reply_end_only_v4": packet(6, 1, 0x0800, "192.0.2.1", "10.0.0.1", "10.0.0.11", 0, 42,
                                      cie(prefix=32, proto="10.0.0.11"), []),
    # Purge Reply with no extensions at all (extension offset 0).
    "purge_reply_v4": packet(6, 1, 0x0800, "192.0.2.1", "10.0.0.1", "10.0.0.11", 0, 42, cie(prefix=32, proto="10.0.0.11")),
    # Error Indication: authentication failure about a packet, whose first 24 bytes it quotes.
    "error_auth_v4": packet(7, 1, 0x0800, "192.0.2.1", "10.0.0.1", "10.0.0.11", 0, (11 << 16) | 48,
                            bytes(range(24))),
    # Cisco Traffic Indication: code 0, quoting the redirected overlay packet's header.
    "traffic_v4": packet(8, 1, 0x0800, "192.0.2.1", "10.0.0.1", "10.1.0.10", 0, 0, OVERLAY_IP, hop=1),
    # Vendor-private (OUI 00:00:0c) and an unknown compulsory extension type 0x1234.
    "vendor_unknown_v4": packet(1, 1, 0x0800, "198.51.100.11", "10.0.0.11", "10.0.0.22", 0x8000, 5, b"",
                                [ext(8, b"\x00\x00\x0c" + b"\xde\xad"), ext(0x1234, b"\x01\x02\x03", True)]),
}

here = Path(__file__).resolve().parent
(here / "nhrp_vectors.txt").write_text("".join(f"{k} {v.hex()}\n" for k, v in vectors.items()))
# The same packets seed the codec fuzz target.
seeds = here.parents[2] / "fuzz" / "corpus" / "nhrp_codec"
seeds.mkdir(parents=True, exist_ok=True)
for k, v in vectors.items():
    (seeds / k).write_bytes(v)
# And the engine fuzz target: each packet as a datagram to the hub (0x01), then to the spoke (0x81),
# then a timeout (0x7f); see fuzz/fuzz_targets/nhrp_engine.rs for the input format.
seeds = here.parents[2] / "fuzz" / "corpus" / "nhrp_engine"
seeds.mkdir(parents=True, exist_ok=True)
for k, v in vectors.items():
    v = v[:255]
    (seeds / k).write_bytes(bytes([0x01, len(v)]) + v + bytes([0x81, len(v)]) + v + bytes([0x7F, 0]))
