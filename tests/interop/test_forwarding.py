"""Traffic through the hub, judged by Scapy (decryption, checksums) and tshark (dissection):
spoke → LAN (decrypt + decap), LAN → spoke (encap + encrypt), spoke → hub → spoke."""
import pytest
from scapy.all import ICMP, IP, UDP, Ether, IPOption_NOP, Padding

import dmvpn
from dmvpn import (HUB_LAN_MAC, LAN, LAN_HOST_IP, LAN_HOST_MAC, PARAMS, PARAMS_SMALL, SPOKE_A, SPOKE_B,
                   SPOKE_C, TUNNEL, WAN, Hub, SaParams, inner_of)


def lan_packets(n, dst=SPOKE_B.host, tos=0):
    return [IP(src=LAN_HOST_IP, dst=dst, ttl=64, id=100 + i, tos=tos) / UDP(sport=1000 + i, dport=40000)
            / (b"lan-to-spoke %d " % i * 3) for i in range(n)]


def assert_forwarded_to_lan(frame, sent):
    """A packet the hub put on the LAN: right L2 addresses, TTL one less, same packet otherwise."""
    assert (frame.src, frame.dst, frame.type) == (HUB_LAN_MAC, LAN_HOST_MAC, 0x0800), frame.summary()
    got = frame[IP]
    assert (got.src, got.dst, got.id, got.proto) == (sent.src, sent.dst, sent.id, sent.proto)
    assert got.ttl == sent.ttl - 1
    assert bytes(got.payload) == bytes(sent.payload)
    dmvpn.assert_checksums(frame)


def assert_forwarded_inner(got, sent):
    assert (got.src, got.dst, got.id) == (sent.src, sent.dst, sent.id)
    assert got.ttl == sent.ttl - 1
    assert bytes(got.payload) == bytes(sent.payload)
    dmvpn.assert_checksums(got)


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_spoke_to_lan_is_decrypted_and_decapsulated(replay, params):
    hub = Hub(params)
    sent = [IP(src=SPOKE_A.host, dst=LAN_HOST_IP, ttl=64, id=7 + i) / ICMP(id=1, seq=i) / b"spoke-to-lan"
            for i in range(3)]
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_A, p, seq=i + 1)) for i, p in enumerate(sent)])
    assert len(r.tx[LAN]) == 3 and r.tx[WAN] == []
    for frame, p in zip(r.tx[LAN], sent):
        assert_forwarded_to_lan(frame, p)
    assert r.drops == {} and r.punts == []
    assert (r.counters["esp_decrypted"], r.counters["tx_packets"]) == (3, 3)


@pytest.mark.parametrize("params", PARAMS, ids=str)
def test_lan_to_spoke_is_encapsulated_and_encrypted(replay, params):
    hub = Hub(params)
    sent = lan_packets(3)
    r = replay(hub, [(LAN, hub.from_lan(p)) for p in sent])
    assert len(r.tx[WAN]) == 3 and r.tx[LAN] == []
    for seq, (frame, p) in enumerate(zip(r.tx[WAN], sent), start=1):
        assert_forwarded_inner(inner_of(hub.decrypt_to(SPOKE_B, frame, seq=seq)), p)
    rows = dmvpn.tshark_fields(r.out / "tx-0.pcap", hub, "esp.spi", "esp.sequence", "gre.key", "ip.dst",
                               "udp.dstport", "esp.icv_good")
    for seq, row in enumerate(rows, start=1):
        assert int(row["esp.spi"], 16) == SPOKE_B.spi_out and int(row["esp.sequence"]) == seq
        assert int(row["gre.key"], 16) == dmvpn.GRE_KEY, f"tshark could not decrypt: {row}"
        assert row["ip.dst"].split(",")[-1] == SPOKE_B.host
        if not params.esn:  # tshark 4.0 cannot check an ICV under ESN
            assert row["esp.icv_good"] in ("1", "True"), row
    assert r.drops == {} and r.punts == []
    assert r.counters["esp_encrypted"] == 3


@pytest.mark.parametrize("suite", dmvpn.SUITES, ids=lambda s: s.name)
def test_esn_sequence_wraps_into_the_high_bits(replay, suite):
    """RFC 4303 §2.2.1: with ESN the 64-bit counter goes on past 2^32; the wire carries the low 32 bits
    and the ICV covers the high 32 (Scapy decrypts only with the right high bits)."""
    hub = Hub(SaParams(suite, esn=True))
    hub.sa_out(SPOKE_B).seq_start = 2**32 - 3
    sent = lan_packets(4)
    r = replay(hub, [(LAN, hub.from_lan(p)) for p in sent])
    seqs = [2**32 - 2, 2**32 - 1, 2**32, 2**32 + 1]
    assert len(r.tx[WAN]) == 4
    for frame, seq, p in zip(r.tx[WAN], seqs, sent):
        assert_forwarded_inner(inner_of(hub.decrypt_to(SPOKE_B, frame, seq=seq)), p)
    with pytest.raises(Exception):
        hub.decrypt_to(SPOKE_B, r.tx[WAN][2], seq=0)  # high bits 0 instead of 1: must not authenticate
    assert r.drops == {}
    assert not [e for e in r.counters["sa_events"] if e["event"] == "seq_exhausted"]


def test_32bit_sequence_never_wraps(replay):
    """Without ESN the counter stops at 2^32 - 1 (RFC 4303 §3.3.3): no reuse, the SA is spent."""
    hub = Hub()
    hub.sa_out(SPOKE_B).seq_start = 2**32 - 3
    r = replay(hub, [(LAN, hub.from_lan(p)) for p in lan_packets(4)])
    assert [dmvpn.ESP(bytes(f[IP].payload)).seq for f in r.tx[WAN]] == [2**32 - 2, 2**32 - 1]
    assert r.drops == {"esp_sa_expired": 2}
    events = [e for e in r.counters["sa_events"] if e["sa"] == SPOKE_B.sa_out]
    assert [e["event"] for e in events].count("seq_exhausted") == 1, events


def test_packet_lifetime_raises_soft_then_hard_once(replay):
    hub = Hub()
    hub.sa_out(SPOKE_B).lifetime = {"soft_packets": 2, "hard_packets": 4}
    r = replay(hub, [(LAN, hub.from_lan(p)) for p in lan_packets(6)])
    assert len(r.tx[WAN]) == 4
    assert r.drops == {"esp_sa_expired": 2}
    events = [e["event"] for e in r.counters["sa_events"] if e["sa"] == SPOKE_B.sa_out]
    assert events.count("soft_packets") == 1 and events.count("hard_packets") == 1, events
    assert events.index("soft_packets") < events.index("hard_packets")


def test_byte_lifetime_soft_limit_is_an_event_not_a_drop(replay):
    hub = Hub()
    hub.sa_out(SPOKE_B).lifetime = {"soft_bytes": 1, "hard_bytes": 10**9}
    r = replay(hub, [(LAN, hub.from_lan(p)) for p in lan_packets(3)])
    assert len(r.tx[WAN]) == 3 and r.drops == {}
    events = [e["event"] for e in r.counters["sa_events"] if e["sa"] == SPOKE_B.sa_out]
    assert events == ["used", "soft_bytes"], "the first packet reports the SA in use, then the soft limit"


@pytest.mark.parametrize("params", PARAMS_SMALL, ids=str)
def test_spoke_to_spoke_is_reencrypted_and_triggers_rate_limited_redirects(replay, params):
    hub = Hub(params)
    sent = [IP(src=SPOKE_A.host, dst=SPOKE_B.host, ttl=64, id=i) / UDP(sport=4000, dport=4001) / b"a-to-b"
            for i in range(20)]
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_A, p, seq=i + 1)) for i, p in enumerate(sent)])
    assert len(r.tx[WAN]) == 20 and r.tx[LAN] == []
    for seq, (frame, p) in enumerate(zip(r.tx[WAN], sent), start=1):
        assert_forwarded_inner(inner_of(hub.decrypt_to(SPOKE_B, frame, seq=seq)), p)
    redirects = r.punts_of("redirect")
    assert 1 <= len(redirects) <= 3, f"20 packets in 20 ms gave {len(redirects)} redirect punts"
    addresses = bytes(IP(src=SPOKE_A.host, dst=SPOKE_B.host))[12:20]
    for p in redirects:
        assert p["tunnel"] == TUNNEL
        assert addresses in bytes.fromhex(p["data"]), "the punt must carry the packet's inner header"
    assert r.drops == {}


def test_unregistered_spoke_with_an_authenticating_sa_is_accepted(replay):
    """A spoke that finished IKE but has no TEIB entry yet (it registers through this very path)."""
    hub = Hub()
    sent = IP(src=SPOKE_C.host, dst=LAN_HOST_IP, ttl=9, id=3) / ICMP() / b"new spoke"
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_C, sent))])
    assert len(r.tx[LAN]) == 1
    assert_forwarded_to_lan(r.tx[LAN][0], sent)


@pytest.mark.parametrize("burst", [1, 2, 32, 256])
def test_burst_size_does_not_change_the_result(replay, burst):
    hub = Hub()
    rx = [(WAN, hub.esp_from(SPOKE_A, IP(src=SPOKE_A.host, dst=LAN_HOST_IP, id=i) / ICMP(seq=i), seq=i + 1))
          for i in range(40)]
    rx += [(LAN, hub.from_lan(p)) for p in lan_packets(40)]
    r = replay(hub, rx, burst=burst)
    assert [f[IP].id for f in r.tx[LAN]] == list(range(40))
    assert [dmvpn.ESP(bytes(f[IP].payload)).seq for f in r.tx[WAN]] == list(range(1, 41))


def test_a_tunnel_without_a_key_carries_gre_without_one(replay):
    """`tunnel key` is optional (RFC 2890 §2.1): without it, GRE goes out with no Key field and comes in
    without one."""
    hub = Hub(gre_key=None)
    sent = lan_packets(2)
    back = IP(src=SPOKE_A.host, dst=LAN_HOST_IP, ttl=64, id=9) / ICMP(id=1, seq=1) / b"keyless"
    r = replay(hub, [(LAN, hub.from_lan(p)) for p in sent] + [(WAN, hub.esp_from(SPOKE_A, back, seq=1))])
    for seq, (frame, p) in enumerate(zip(r.tx[WAN], sent), start=1):
        assert_forwarded_inner(inner_of(hub.decrypt_to(SPOKE_B, frame, seq=seq)), p)
    assert len(r.tx[WAN]) == 2 and len(r.tx[LAN]) == 1
    assert_forwarded_to_lan(r.tx[LAN][0], back)
    assert r.drops == {}


def test_lan_frames_with_padding_options_or_bad_headers_share_a_burst(replay):
    """One burst from the LAN mixes plain packets with frames the common case does not cover as they
    are: Ethernet padding behind a short packet, IPv4 options, a wrong header checksum, another host's
    MAC. Padding and options reach the spoke as sent (the padding not encrypted along), the bad frames
    are dropped with their reasons, and the packets around them are not disturbed."""
    hub = Hub()
    plain = lan_packets(2)
    short = IP(src=LAN_HOST_IP, dst=SPOKE_B.host, ttl=64, id=300) / UDP(sport=5, dport=6) / b"x"
    with_options = (IP(src=LAN_HOST_IP, dst=SPOKE_B.host, ttl=64, id=301, options=[IPOption_NOP()] * 4)
                    / UDP(sport=7, dport=8) / b"options")
    bad_checksum = IP(src=LAN_HOST_IP, dst=SPOKE_B.host, ttl=64, id=302, chksum=0x1234) / UDP() / b"bad"
    rx = [hub.from_lan(plain[0]), hub.from_lan(bad_checksum),
          hub.from_lan(short) / Padding(b"\xee" * (60 - 14 - len(short))),
          Ether(src=LAN_HOST_MAC, dst="02:00:00:00:99:99") / lan_packets(1)[0],
          hub.from_lan(with_options), hub.from_lan(plain[1])]
    r = replay(hub, [(LAN, f) for f in rx], burst=32)
    expected = [plain[0], short, with_options, plain[1]]
    assert len(r.tx[WAN]) == len(expected)
    for seq, (frame, p) in enumerate(zip(r.tx[WAN], expected), start=1):
        got = inner_of(hub.decrypt_to(SPOKE_B, frame, seq=seq))
        assert_forwarded_inner(got, p)
        sent = IP(bytes(p))  # with the lengths Scapy fills in
        assert (got.len, bytes(got)[20:got.ihl * 4]) == (sent.len, bytes(sent)[20:sent.ihl * 4])
    assert r.drops == {"ipv4_bad_checksum": 1, "l2_not_for_us": 1}


def test_dscp_and_ecn_are_copied_to_the_outer_header(replay):
    """RFC 6040 §4.1 (normal mode) for ECN, and the DSCP copied, on encapsulation."""
    hub = Hub()
    r = replay(hub, [(LAN, hub.from_lan(p)) for p in lan_packets(1, tos=0xB8 | 0x02)])  # EF, ECT(0)
    assert r.tx[WAN][0][IP].tos == 0xBA


def test_one_burst_to_alternating_spokes_keeps_each_packets_peer_and_dscp(replay):
    """Consecutive packets toward one spoke share the outer path the first one resolved; a packet toward
    another spoke in the same burst must not: each leaves for its own spoke under its SA, with its own DSCP."""
    hub = Hub()
    order = [SPOKE_A, SPOKE_A, SPOKE_B, SPOKE_A, SPOKE_B, SPOKE_B]
    sent = [IP(src=LAN_HOST_IP, dst=s.host, ttl=64, id=200 + i, tos=(8 * i) << 2) / UDP(sport=1, dport=2)
            / (b"burst %d" % i) for i, s in enumerate(order)]
    r = replay(hub, [(LAN, hub.from_lan(p)) for p in sent], burst=32)
    assert len(r.tx[WAN]) == len(sent) and r.drops == {}
    seqs = {}
    for frame, spoke, p in zip(r.tx[WAN], order, sent):
        seqs[spoke.name] = seqs.get(spoke.name, 0) + 1
        assert (frame[IP].dst, frame[IP].tos) == (spoke.nbma, p.tos)
        assert_forwarded_inner(inner_of(hub.decrypt_to(spoke, frame, seq=seqs[spoke.name])), p)


def test_congestion_experienced_on_the_outer_header_reaches_the_inner(replay):
    """RFC 6040 §4.2: outer CE over an ECN-capable inner packet → inner CE."""
    hub = Hub()
    sent = IP(src=SPOKE_A.host, dst=LAN_HOST_IP, ttl=64, tos=0x02) / UDP(sport=1, dport=2) / b"ect0"
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_A, sent, tos=0x03))])
    got = r.tx[LAN][0][IP]
    assert got.tos == 0x03
    dmvpn.assert_checksums(got)
