"""DMVPN over an IPv6 underlay: the tunnel's source and the spoke's NBMA address are IPv6, the overlay is
IPv4. Scapy plays the spoke (ESP in transport mode over IPv6, plain and UDP-encapsulated) and judges what
the hub sends; tshark dissects it without errors."""
import hashlib

import pytest
from scapy.all import GRE, ICMP, IP, UDP, Ether, IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation

import dmvpn
from dmvpn import GW_MAC, HUB_LAN_MAC, HUB_WAN_MAC, LAN, LAN_HOST_IP, LAN_HOST_MAC, WAN, Hub, SaParams

HUB_V6, GW_V6, SPOKE_V6 = "2001:db8:1::1", "2001:db8:1::fe", "2001:db8:2::11"
TUNNEL_V6, KEY_V6 = 2, 200
SPOKE_OVERLAY, SPOKE_NET, SPOKE_HOST = "10.0.2.11", "10.6.0.0/16", "10.6.0.9"
SPI_IN, SPI_OUT = 0x1060, 0x2060
NATT_PORT = 31338


def key(label):
    return hashlib.sha256(label.encode()).digest()[:20]


def config(natt):
    c = Hub().config()
    c["ports"][WAN]["addresses"].append(f"{HUB_V6}/64")
    c["neighbors"].append({"port": WAN, "ip": GW_V6, "mac": GW_MAC})
    c["routes"] += [{"vrf": 0, "prefix": "::/0", "via": {"port": WAN, "gateway": GW_V6}},
                    {"vrf": 1, "prefix": SPOKE_NET, "via": {"tunnel": TUNNEL_V6, "peer": SPOKE_OVERLAY}}]
    c["tunnels"].append({"id": TUNNEL_V6, "source": HUB_V6, "key": KEY_V6, "fvrf": 0, "vrf": 1,
                         "address": "10.0.2.1/24", "mtu": 1400, "protection": True, "redirect": True})
    c["teib"].append({"tunnel": TUNNEL_V6, "overlay": SPOKE_OVERLAY, "nbma": SPOKE_V6, "sa_out": 8})
    for index, spi, direction in ((7, SPI_IN, "in"), (8, SPI_OUT, "out")):
        c["sas"].append({"index": index, "spi": spi, "direction": direction, "cipher": "aes-gcm-128",
                         "enc_key": key(f"v6/{spi}").hex(), "tunnel": TUNNEL_V6, "local": HUB_V6, "peer": SPOKE_V6,
                         "natt": {"local_port": 4500, "peer_port": NATT_PORT} if natt else None})
    return c


def scapy_sa(spi, natt, inbound):
    kwargs = {}
    if natt:
        kwargs["nat_t_header"] = UDP(sport=NATT_PORT, dport=4500) if inbound else UDP(sport=4500, dport=NATT_PORT)
    return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key(f"v6/{spi}"), auth_algo="NULL",
                               **kwargs)


class V6Hub(Hub):
    """The interop suite's hub with an IPv6 tunnel added (for `replay`, which asks for `config()`)."""

    def __init__(self, natt):
        super().__init__(SaParams())
        self.natt = natt

    def config(self):
        return config(self.natt)


@pytest.mark.parametrize("natt", [False, True], ids=["esp", "natt"])
def test_spoke_over_ipv6_to_lan_and_back(replay, natt):
    hub = V6Hub(natt)
    up = [IP(src=SPOKE_HOST, dst=LAN_HOST_IP, ttl=64, id=60 + i) / ICMP(id=6, seq=i) / b"over v6" for i in range(2)]
    rx = []
    for i, p in enumerate(up):
        outer = IPv6(src=SPOKE_V6, dst=HUB_V6) / GRE(key_present=1, key=KEY_V6, proto=0x0800) / p
        rx.append((WAN, Ether(src=GW_MAC, dst=HUB_WAN_MAC) / scapy_sa(SPI_IN, natt, True).encrypt(outer, seq_num=i + 1)))
    down = IP(src=LAN_HOST_IP, dst=SPOKE_HOST, ttl=64, id=99) / UDP(sport=1, dport=2) / b"down over v6"
    rx.append((LAN, Ether(src=LAN_HOST_MAC, dst=HUB_LAN_MAC) / down))
    r = replay(hub, rx, dissect=False)
    assert r.drops == {}, r.drops

    assert [f[IP].id for f in r.tx[LAN]] == [60, 61]
    for f, p in zip(r.tx[LAN], up):
        assert (f[IP].src, f[IP].dst, f[IP].ttl) == (p.src, p.dst, p.ttl - 1) and bytes(f[ICMP]) == bytes(p[ICMP])

    [frame] = r.tx[WAN]
    assert (frame.src, frame.dst) == (HUB_WAN_MAC, GW_MAC)
    v6 = frame[IPv6]
    assert (v6.src, v6.dst, v6.hlim) == (HUB_V6, SPOKE_V6, 255)
    if natt:
        assert v6.nh == 17 and (v6[UDP].sport, v6[UDP].dport) == (4500, NATT_PORT)
        sent_sum = v6[UDP].chksum
        fresh = IPv6(bytes(v6))
        del fresh[UDP].chksum
        assert sent_sum != 0 and IPv6(bytes(fresh))[UDP].chksum == sent_sum, "UDP over IPv6 needs its checksum"
    else:
        assert v6.nh == 50
    plain = scapy_sa(SPI_OUT, natt, False).decrypt(v6.copy())
    assert plain[GRE].key == KEY_V6
    inner = IP(bytes(plain[GRE].payload))
    assert (inner.src, inner.dst, inner.ttl, bytes(inner[UDP].payload)) == (down.src, down.dst, 63, b"down over v6")

    uat = [f'"IPv6","{HUB_V6}","{SPOKE_V6}","0x{SPI_OUT:08x}","AES-GCM with 16 octet ICV [RFC4106]",'
           f'"0x{key(f"v6/{SPI_OUT}").hex()}","NULL",""']
    out = dmvpn.tshark(r.out / f"tx-{WAN}.pcap", None, "-o", f"uat:esp_sa:{uat[0]}", "-Y", dmvpn.ERROR_FILTER)
    assert out.strip() == "", out
