"""Bad packets are dropped with the one right reason, counted exactly, and the good packets of the same
run still get through."""
import pytest
from scapy.all import GRE, ICMP, IP, UDP, Raw

import dmvpn
from dmvpn import HUB_WAN_IP, LAN, LAN_HOST_IP, SPOKE_A, SPOKE_B, WAN, Hub, SaParams


def to_lan(i):
    return IP(src=SPOKE_A.host, dst=LAN_HOST_IP, ttl=64, id=i) / ICMP(id=1, seq=i) / b"good"


def lan_ids(r):
    return sorted(f[IP].id for f in r.tx[LAN])


def test_replayed_packet(replay):
    hub = Hub()
    e1, e2, e3 = (hub.esp_from(SPOKE_A, to_lan(i), seq=i) for i in (1, 2, 3))
    r = replay(hub, [(WAN, e1), (WAN, e2), (WAN, e1), (WAN, e3), (WAN, e2)])
    assert lan_ids(r) == [1, 2, 3]
    assert r.drops == {"esp_replay": 2}


@pytest.mark.parametrize("window", [64, 1024, 4096])
def test_replay_window_edges(replay, window):
    """RFC 4303 §3.4.3: after sequence T, T - W + 1 is inside the window and T - W is left of it."""
    hub = Hub()
    hub.sa_in(SPOKE_A).replay_window = window
    top = window + 100
    order = [top, top - window, top - window + 1, top - window + 1, top - 1]
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_A, to_lan(i), seq=seq)) for i, seq in enumerate(order)])
    assert lan_ids(r) == [0, 2, 4]
    assert r.drops == {"esp_replay": 2}


def test_bad_icv_is_dropped_and_does_not_move_the_window(replay):
    hub = Hub()
    good = hub.esp_from(SPOKE_A, to_lan(2), seq=2)
    bad = bytearray(bytes(good))
    bad[-1] ^= 0x01  # last ICV byte
    bad_ct = bytearray(bytes(hub.esp_from(SPOKE_A, to_lan(3), seq=3)))
    bad_ct[14 + 20 + 8 + 8 + 4] ^= 0x80  # a ciphertext byte
    rx = [(WAN, hub.esp_from(SPOKE_A, to_lan(1), seq=1)), (WAN, dmvpn.Ether(bytes(bad))),
          (WAN, dmvpn.Ether(bytes(bad_ct))), (WAN, good)]
    r = replay(hub, rx)
    # seq 2 failed authentication first, so the genuine seq 2 after it is no replay.
    assert lan_ids(r) == [1, 2]
    assert r.drops == {"esp_auth_failed": 2}


class ForgedSa(dmvpn.Sa):
    """The spoke's SA with every key bit-flipped: what an attacker who knows the SPI sends."""
    @property
    def enc_key(self):
        return bytes(b ^ 0x55 for b in super().enc_key)

    @property
    def auth_key(self):
        key = super().auth_key
        return key and bytes(b ^ 0x55 for b in key)


@pytest.mark.parametrize("suite", dmvpn.SUITES, ids=lambda s: s.name)
def test_wrong_key_fails_authentication(replay, suite):
    hub = Hub(SaParams(suite))
    forged = ForgedSa(SPOKE_A.sa_in, SPOKE_A.spi_in, "in", SPOKE_A, SaParams(suite))
    rx = [(WAN, hub.esp_from(SPOKE_A, to_lan(9), seq=1, sa=forged)),
          (WAN, hub.esp_from(SPOKE_A, to_lan(1), seq=1))]
    r = replay(hub, rx)
    assert lan_ids(r) == [1]
    assert r.drops == {"esp_auth_failed": 1}


def test_unknown_spi(replay):
    hub = Hub()
    stranger = dmvpn.Sa(99, 0xDEADBEEF, "in", SPOKE_A, SaParams())
    rx = [(WAN, hub.esp_from(SPOKE_A, to_lan(5), seq=1, sa=stranger)),
          (WAN, hub.esp_from(SPOKE_A, to_lan(1), seq=1))]
    r = replay(hub, rx)
    assert lan_ids(r) == [1]
    assert r.drops == {"esp_unknown_spi": 1}


@pytest.mark.parametrize("keep", [0, 3, 8, 16, 24, 31])
def test_truncated_esp(replay, keep):
    """Shorter than header + IV + ICV (8 + 8 + 16 for AES-GCM): malformed, whatever the SPI says."""
    hub = Hub()
    esp = bytes(hub.esp_from(SPOKE_A, to_lan(7), seq=2)[IP].payload)
    short = hub.from_wan(IP(src=SPOKE_A.nbma, dst=HUB_WAN_IP, proto=50) / Raw(esp[:keep]))
    r = replay(hub, [(WAN, short), (WAN, hub.esp_from(SPOKE_A, to_lan(1), seq=1))])
    assert lan_ids(r) == [1]
    assert r.drops == {"esp_malformed": 1}


def test_wrong_gre_key_inside_valid_esp(replay):
    hub = Hub()
    rx = [(WAN, hub.esp_from(SPOKE_A, to_lan(9), seq=1, key=999)),
          (WAN, hub.esp_from(SPOKE_A, to_lan(1), seq=2))]
    r = replay(hub, rx)
    assert lan_ids(r) == [1]
    assert r.drops == {"gre_unknown_tunnel": 1}


def test_cleartext_gre_on_a_protected_tunnel(replay):
    hub = Hub()
    clear = hub.from_wan(IP(src=SPOKE_A.nbma, dst=HUB_WAN_IP) / GRE(key_present=1, key=dmvpn.GRE_KEY)
                         / to_lan(9))
    r = replay(hub, [(WAN, clear), (WAN, hub.esp_from(SPOKE_A, to_lan(1), seq=1))])
    assert lan_ids(r) == [1]
    assert r.drops == {"gre_unprotected": 1}


@pytest.mark.parametrize("dst,reason", [("172.16.5.5", "no_route"), ("10.9.9.9", "route_drop")])
def test_unroutable_destination(replay, dst, reason):
    hub = Hub()
    bad = IP(src=LAN_HOST_IP, dst=dst, id=9) / UDP(sport=1, dport=2)
    good = IP(src=LAN_HOST_IP, dst=SPOKE_B.host, id=1) / UDP(sport=1, dport=2)
    r = replay(hub, [(LAN, hub.from_lan(bad)), (LAN, hub.from_lan(good))])
    assert [dmvpn.inner_of(hub.decrypt_to(SPOKE_B, f))[IP].id for f in r.tx[WAN]] == [1]
    assert r.drops == {reason: 1}


def test_teib_miss_is_dropped_and_asks_for_resolution(replay):
    hub = Hub(teib=(SPOKE_A,))  # B has not registered
    bad = IP(src=LAN_HOST_IP, dst=SPOKE_B.host, id=9) / UDP(sport=1, dport=2)
    good = IP(src=LAN_HOST_IP, dst=SPOKE_A.host, id=1) / UDP(sport=1, dport=2)
    r = replay(hub, [(LAN, hub.from_lan(bad)), (LAN, hub.from_lan(good))])
    assert len(r.tx[WAN]) == 1
    assert r.drops == {"teib_miss": 1}
    [punt] = r.punts_of("teib_miss")
    assert punt["tunnel"] == dmvpn.TUNNEL and punt["dst"] == SPOKE_B.overlay


def test_neighbor_miss_is_dropped_and_asks_for_resolution(replay):
    hub = Hub(neighbors=False)
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_A, to_lan(1), seq=1))])
    assert r.tx[LAN] == [] or all(f.type == 0x0806 for f in r.tx[LAN])  # at most ARP requests
    assert r.drops == {"neighbor_miss": 1}
    misses = r.punts_of("neighbor_miss")
    assert len(misses) == 1 and misses[0]["port"] == LAN and misses[0]["dst"] == LAN_HOST_IP
