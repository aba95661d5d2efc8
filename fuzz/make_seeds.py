"""Writes the committed seed corpus fuzz/corpus/<target>/ with Scapy (an independent implementation).

Run from the repository root: python3 fuzz/make_seeds.py. Each seed is a valid input for its target's
parse path; the fuzzer mutates from there. Crash regressions found later are added beside them by hand.
"""
from pathlib import Path

from scapy.all import (ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, GRE, ICMPv6EchoRequest,
                       ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr,
                       ICMPv6PacketTooBig, IPOption_RR, IPv6, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, Raw)
from scapy.layers.ipsec import ESP, SecurityAssociation

ROOT = Path(__file__).resolve().parent / "corpus"
HUB, SPOKE = "192.0.2.1", "198.51.100.11"
L2 = Ether(src="02:00:00:00:00:0b", dst="02:00:00:00:00:01")
INNER = IP(src="10.1.0.5", dst="10.8.0.9", ttl=64) / ICMP(id=1, seq=1) / b"hello"


def esp_packets():
    """ESP (from the SPI on) under AES-GCM-128 and AES-CBC-128/HMAC-SHA1-96, transport mode."""
    gcm = SecurityAssociation(ESP, spi=0x1001, crypt_algo="AES-GCM",
                              crypt_key=bytes(range(16)) + b"\x01\x02\x03\x04", auth_algo="NULL")
    cbc = SecurityAssociation(ESP, spi=0x1002, crypt_algo="AES-CBC", crypt_key=bytes(range(16)),
                              auth_algo="HMAC-SHA1-96", auth_key=bytes(range(20)))
    out = []
    for sa in (gcm, cbc):
        outer = IP(src=SPOKE, dst=HUB) / GRE(key_present=1, key=100) / INNER
        out.append(bytes(sa.encrypt(outer)[ESP]))
    return out


SEEDS = {
    "wire_ethernet_ip": [
        L2 / INNER,
        L2 / Dot1Q(vlan=10) / IP(src="10.1.0.5", dst="10.8.0.9", options=[IPOption_RR()])
        / TCP(sport=1234, dport=80, flags="S", options=[("MSS", 1460), ("WScale", 7)]),
        L2 / IP(src="10.1.0.5", dst="10.8.0.9", flags="MF", frag=0) / UDP(sport=1, dport=2) / (b"x" * 40),
        L2 / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrFragment(m=1) / UDP(sport=1, dport=2) / b"v6",
        L2 / ARP(op=1, hwsrc="02:00:00:00:00:0b", psrc="192.0.2.11", pdst=HUB),
    ],
    "wire_gre": [
        GRE(key_present=1, key=100) / INNER,
        GRE(chksum_present=1, key_present=1, seqnum_present=1, key=100, seqence_number=7) / INNER,
        GRE(key_present=1, key=100, proto=0x2001) / bytes.fromhex("00010800" "0000" "0000"),
        GRE(proto=0x86DD) / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2),
    ],
    "wire_icmp": [
        ICMP(type=8, id=1, seq=1) / b"ping",
        ICMP(type=11, code=0) / bytes(INNER)[:28],
        ICMP(type=3, code=4, nexthopmtu=1400) / bytes(INNER)[:28],
        ICMPv6EchoRequest(id=1, seq=1) / b"ping",
        ICMPv6ND_NS(tgt="2001:db8::1") / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:0b"),
        ICMPv6ND_NA(tgt="2001:db8::1", R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01"),
        ICMPv6PacketTooBig(mtu=1280) / bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP())[:48],
    ],
    # ESP from the SPI on, and the three kinds of UDP 4500 payload of RFC 3948 §2.
    "wire_esp": esp_packets() + [
        b"\xff",
        b"\x00\x00\x00\x00" + bytes.fromhex("0011223344556677" "0000000000000000" "2120220800000000"),
    ],
    "esp_decrypt": esp_packets(),
    "pcap_reader": [],  # the Scapy-written captures of dataplane/tests/data/ are copied in below
}


def pipeline_seeds():
    """The interop suite's hub config, and frames for it: `[port][len: u16 BE][frame]` each."""
    import json
    import struct
    import sys
    sys.path.insert(0, str(ROOT.parent.parent / "tests/interop"))
    import dmvpn
    from dmvpn import LAN, LAN_HOST_IP, SPOKE_A, SPOKE_B, WAN, Hub

    hub = Hub()
    (ROOT.parent / "pipeline_hub.json").write_text(json.dumps(hub.config(), indent=1) + "\n")
    frames = [
        (WAN, hub.esp_from(SPOKE_A, IP(src=SPOKE_A.host, dst=LAN_HOST_IP) / ICMP() / b"in", seq=1)),
        (WAN, hub.esp_from(SPOKE_A, IP(src=SPOKE_A.host, dst=SPOKE_B.host) / ICMP() / b"via", seq=2)),
        (WAN, hub.esp_from(SPOKE_A, Raw(bytes.fromhex("0001080000000000")), seq=3, proto=0x2001)),
        (LAN, hub.from_lan(IP(src=LAN_HOST_IP, dst=SPOKE_B.host, ttl=1) / UDP(dport=9) / b"ttl")),
        (LAN, hub.from_lan(IP(src=LAN_HOST_IP, dst=SPOKE_B.host, flags="DF") / TCP(flags="S", options=[("MSS", 1460)]))),
        (LAN, Ether(src=dmvpn.LAN_HOST_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=LAN_HOST_IP, pdst=dmvpn.HUB_LAN_IP)),
        (WAN, hub.from_wan(IP(src=SPOKE_A.nbma, dst=dmvpn.HUB_WAN_IP) / UDP(sport=4500, dport=4500) / b"\xff")),
    ]
    return [b"".join(bytes([port]) + struct.pack(">H", len(bytes(f))) + bytes(f) for port, f in frames[:i + 1])
            for i in range(len(frames))]


SEEDS["pipeline"] = pipeline_seeds()

for target, packets in SEEDS.items():
    folder = ROOT / target
    folder.mkdir(parents=True, exist_ok=True)
    for i, packet in enumerate(packets):
        (folder / f"seed-{i}").write_bytes(bytes(packet))
for capture in (ROOT.parent.parent / "dataplane/tests/data").glob("*.pcap"):
    (ROOT / "pcap_reader" / capture.name).write_bytes(capture.read_bytes())
