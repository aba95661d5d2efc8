"""IPv6 in the overlay (over the IPv4 NBMA network, GRE protocol 0x86DD), and IPv6 neighbour discovery
for the hub's own LAN address. Scapy builds and checks the packets; tshark dissects what the hub sent."""
from dataclasses import dataclass

from scapy.all import GRE, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, \
    ICMPv6NDOptSrcLLAddr, IPv6, UDP, Ether

import dmvpn
from dmvpn import HUB_LAN_MAC, LAN, LAN_HOST_MAC, SPOKE_A, SPOKE_B, TUNNEL, WAN, Hub

HUB_LAN_IP6 = "2001:db8:8::1"
LAN_HOST_IP6 = "2001:db8:8::9"
SPOKE_B_NET6, SPOKE_B_HOST6 = "2001:db8:b::/48", "2001:db8:b::7"
SPOKE_A_HOST6 = "2001:db8:a::5"


@dataclass
class DualStackHub(Hub):
    """The suite's hub with an IPv6 address on its LAN and spoke B's IPv6 network behind the tunnel."""

    def config(self) -> dict:
        c = super().config()
        c["ports"][LAN]["addresses"].append(f"{HUB_LAN_IP6}/64")
        c["neighbors"].append({"port": LAN, "ip": LAN_HOST_IP6, "mac": LAN_HOST_MAC})
        c["routes"].append({"vrf": 1, "prefix": SPOKE_B_NET6, "via": {"tunnel": TUNNEL, "peer": SPOKE_B.overlay}})
        return c


def test_ipv6_from_the_lan_rides_the_tunnel_to_the_spoke(replay):
    hub = DualStackHub()
    sent = IPv6(src=LAN_HOST_IP6, dst=SPOKE_B_HOST6, hlim=64) / UDP(sport=7, dport=40000) / b"v6 over v4"
    r = replay(hub, [(LAN, hub.from_lan(sent))])
    assert r.drops == {}
    [frame] = r.tx[WAN]
    plain = hub.decrypt_to(SPOKE_B, frame)
    assert plain[GRE].proto == 0x86DD
    inner = plain[GRE].payload
    assert isinstance(inner, IPv6) and inner.dst == SPOKE_B_HOST6 and inner.hlim == 63
    assert bytes(inner[UDP].payload) == b"v6 over v4"
    dmvpn.assert_checksums(inner)


def test_ipv6_from_a_spoke_reaches_the_lan(replay):
    hub = DualStackHub()
    sent = IPv6(src=SPOKE_A_HOST6, dst=LAN_HOST_IP6, hlim=64) / ICMPv6EchoRequest(id=6, seq=1, data=b"hello")
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_A, sent, proto=0x86DD))])
    assert r.drops == {}
    [frame] = r.tx[LAN]
    assert (frame[Ether].src, frame[Ether].dst, frame[Ether].type) == (HUB_LAN_MAC, LAN_HOST_MAC, 0x86DD)
    got = frame[IPv6]
    assert (got.src, got.dst, got.hlim) == (SPOKE_A_HOST6, LAN_HOST_IP6, 63)
    assert got[ICMPv6EchoRequest].data == b"hello"
    dmvpn.assert_checksums(got)


def test_neighbor_solicitation_for_the_hub_gets_an_advertisement(replay):
    hub = DualStackHub()
    solicited_node = "ff02::1:ff00:1"
    ns = (Ether(src=LAN_HOST_MAC, dst="33:33:ff:00:00:01") / IPv6(src=LAN_HOST_IP6, dst=solicited_node, hlim=255)
          / ICMPv6ND_NS(tgt=HUB_LAN_IP6) / ICMPv6NDOptSrcLLAddr(lladdr=LAN_HOST_MAC))
    r = replay(hub, [(LAN, ns)])
    assert r.drops == {}
    [na] = r.tx[LAN]
    assert (na[Ether].src, na[Ether].dst) == (HUB_LAN_MAC, LAN_HOST_MAC)
    assert (na[IPv6].src, na[IPv6].dst, na[IPv6].hlim) == (HUB_LAN_IP6, LAN_HOST_IP6, 255)
    adv = na[ICMPv6ND_NA]
    assert adv.tgt == HUB_LAN_IP6 and adv.S == 1 and adv.O == 1 and adv.R == 0
    assert na[ICMPv6NDOptDstLLAddr].lladdr == HUB_LAN_MAC
    dmvpn.assert_checksums(na[IPv6])
    # The solicitor is shown to the control plane so that it can learn the LAN host's address.
    assert [p["src"] for p in r.punts_of("nd")] == [LAN_HOST_IP6]


def test_solicitation_for_another_address_is_not_answered(replay):
    hub = DualStackHub()
    ns = (Ether(src=LAN_HOST_MAC, dst="33:33:ff:00:00:77") / IPv6(src=LAN_HOST_IP6, dst="ff02::1:ff00:77", hlim=255)
          / ICMPv6ND_NS(tgt="2001:db8:8::77") / ICMPv6NDOptSrcLLAddr(lladdr=LAN_HOST_MAC))
    r = replay(hub, [(LAN, ns)])
    assert r.tx[LAN] == []
    assert r.drops == {"local_unhandled": 1}
