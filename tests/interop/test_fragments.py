"""IPv4 packets over the egress MTU without DF are fragmented, not dropped (RFC 791 §3.2, RFC 1812
§5.2.6): into a tunnel before encryption, as IOS does by default, so that each fragment travels in its
own ESP packet; out of a port as they are. Scapy decrypts each ESP packet and reassembles the fragments."""
import pytest
from scapy.all import IP, UDP, Ether, IPOption_RR, IPOption_Security, defragment

import dmvpn
from dmvpn import LAN, LAN_HOST_IP, PARAMS_SMALL, SPOKE_A, SPOKE_B, WAN, Hub, inner_of


def big_udp(src, dst, ident, size, options=()):
    pkt = IP(src=src, dst=dst, id=ident, ttl=64, options=list(options)) / UDP(sport=5000, dport=5001)
    return IP(bytes(pkt / (bytes(range(256)) * 12)[:size - len(pkt)]))


def check_fragments(frags, sent, mtu):
    """Fragments of `sent` (one hop on): each fits `mtu`, offsets are multiples of 8, MF on all but the
    last, and Scapy reassembles exactly `sent` with its TTL one less."""
    assert len(frags) >= 2
    for f in frags:
        assert f[IP].len <= mtu and f[IP].flags.DF == 0, f.summary()
        header = IP(bytes(f[IP]))
        sent_sum = header.chksum
        del header.chksum
        assert IP(bytes(header)).chksum == sent_sum, f"IPv4 header checksum of {f.summary()}"
    assert [f[IP].flags.MF for f in frags] == [1] * (len(frags) - 1) + [0]
    assert [f[IP].frag for f in frags] == sorted(f[IP].frag for f in frags)
    [whole] = defragment([f[IP] for f in frags])
    expected = sent.copy()
    expected.ttl -= 1
    assert (whole.src, whole.dst, whole.id, whole.ttl) == (expected.src, expected.dst, expected.id, expected.ttl)
    assert bytes(whole.payload) == bytes(sent.payload)
    dmvpn.assert_checksums(IP(bytes(whole)))


@pytest.mark.parametrize("params", PARAMS_SMALL, ids=str)
def test_into_the_tunnel_fragments_go_in_their_own_esp_packets(replay, params):
    hub = Hub(params)  # tunnel MTU 1400
    sent = big_udp(LAN_HOST_IP, SPOKE_B.host, 77, 2000)
    after = big_udp(LAN_HOST_IP, SPOKE_B.host, 78, 200)
    r = replay(hub, [(LAN, hub.from_lan(sent)), (LAN, hub.from_lan(after))])
    assert r.drops == {} and r.counters["fragmented"] == 1
    inner = [inner_of(hub.decrypt_to(SPOKE_B, f, seq=i + 1)) for i, f in enumerate(r.tx[WAN])]
    assert [p[IP].id for p in inner] == [77, 77, 78], "two fragments, then the next packet"
    check_fragments(inner[:2], sent, dmvpn.TUNNEL_MTU)
    for frame in r.tx[WAN]:
        assert frame[IP].len <= 1500


def test_copied_options_go_into_every_fragment(replay):
    hub = Hub()
    security = IPOption_Security(security=0, compartment=0, handling_restrictions=0, transmission_control_code=b"abc")
    sent = big_udp(LAN_HOST_IP, SPOKE_B.host, 5, 2000, options=[security, IPOption_RR()])
    r = replay(hub, [(LAN, hub.from_lan(sent))])
    inner = [inner_of(hub.decrypt_to(SPOKE_B, f)) for f in r.tx[WAN]]
    first, *rest = inner
    assert [o.option for o in first[IP].options if o.option] == [2, 7], "all options in the first"
    for f in rest:
        assert [o.option for o in f[IP].options if o.option] == [2], "only the copied one in the others"
    check_fragments(inner, sent, dmvpn.TUNNEL_MTU)


def test_a_fragment_is_fragmented_again_with_its_offsets(replay):
    hub = Hub()
    whole = big_udp(LAN_HOST_IP, SPOKE_B.host, 9, 3000)
    # What an upstream router with a 2000-byte link made of it.
    head, tail = IP(bytes(whole))[IP].fragment(1976)
    r = replay(hub, [(LAN, hub.from_lan(head)), (LAN, hub.from_lan(tail))])
    frags = [inner_of(hub.decrypt_to(SPOKE_B, f)) for f in r.tx[WAN]]
    assert r.counters["fragmented"] == 1, "the head is over the tunnel MTU, the tail is not"
    check_fragments(frags, whole, dmvpn.TUNNEL_MTU)


def test_out_of_a_port_with_a_smaller_mtu(replay):
    hub = Hub(lan_mtu=1000)
    sent = big_udp(SPOKE_A.host, LAN_HOST_IP, 11, 1400)
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_A, sent))])
    assert r.drops == {} and r.counters["fragmented"] == 1
    frags = [Ether(bytes(f)) for f in r.tx[LAN]]
    assert all(f.dst == dmvpn.LAN_HOST_MAC for f in frags)
    check_fragments(frags, sent, 1000)


def test_df_still_means_an_icmp_error(replay):
    hub = Hub()
    sent = big_udp(LAN_HOST_IP, SPOKE_B.host, 12, 1500)
    sent.flags = "DF"
    del sent.chksum
    r = replay(hub, [(LAN, hub.from_lan(IP(bytes(sent))))])
    assert r.tx[WAN] == [] and r.counters["fragmented"] == 0
    assert r.drops == {"mtu_exceeded": 1}
