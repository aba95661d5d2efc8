"""What the hub itself answers or hands to its control plane: ICMP errors (TTL, MTU), TCP MSS clamping,
punts (NHRP, IKE), NAT-T keepalives, ARP."""
import struct

import pytest
from scapy.all import ARP, GRE, ICMP, IP, TCP, UDP, Ether, IPerror, UDPerror

import dmvpn
from dmvpn import (GW_IP, GW_MAC, HUB_LAN_IP, HUB_LAN_MAC, HUB_TUNNEL_IP, HUB_WAN_IP, HUB_WAN_MAC, LAN,
                   LAN_HOST_IP, LAN_HOST_MAC, SPOKE_A, SPOKE_B, SPOKE_C, TUNNEL, WAN, Hub, SaParams,
                   inner_of)


def assert_icmp_error(pkt, icmp_type, code, src, quoted):
    """An ICMP error from the hub address `src` that quotes the IP header and first 8 bytes of
    `quoted` (RFC 792; RFC 1812 §4.3.2.3)."""
    assert (pkt[IP].src, pkt[IP].dst) == (src, quoted.src), pkt.summary()
    assert (pkt[ICMP].type, pkt[ICMP].code) == (icmp_type, code), pkt[ICMP].summary()
    q = pkt[IPerror]
    assert (q.src, q.dst, q.id, q.proto) == (quoted.src, quoted.dst, quoted.id, quoted.proto)
    assert bytes(q.payload)[:8] == bytes(quoted.payload)[:8]
    dmvpn.assert_checksums(pkt)


def udp(src, dst, ident, size=None, df=False, ttl=64):
    pkt = IP(src=src, dst=dst, id=ident, ttl=ttl, flags="DF" if df else 0) / UDP(sport=7000, dport=7001)
    return pkt / (b"z" * ((size or 60) - 28))


def test_ttl_expired_from_the_lan(replay):
    hub = Hub()
    dying = udp(LAN_HOST_IP, SPOKE_B.host, 9, ttl=1)
    good = udp(LAN_HOST_IP, SPOKE_B.host, 1)
    r = replay(hub, [(LAN, hub.from_lan(dying)), (LAN, hub.from_lan(good))])
    assert [inner_of(hub.decrypt_to(SPOKE_B, f))[IP].id for f in r.tx[WAN]] == [1]
    [icmp] = r.tx[LAN]
    assert (icmp.src, icmp.dst) == (HUB_LAN_MAC, LAN_HOST_MAC)
    assert_icmp_error(icmp, 11, 0, HUB_LAN_IP, dying)
    assert r.drops == {"ttl_expired": 1} and r.counters["icmp_sent"] == 1


def test_ttl_expired_from_a_spoke_goes_back_through_the_tunnel(replay):
    hub = Hub()
    dying = udp(SPOKE_A.host, LAN_HOST_IP, 9, ttl=1)
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_A, dying))])
    assert r.tx[LAN] == []
    [frame] = r.tx[WAN]
    icmp = inner_of(hub.decrypt_to(SPOKE_A, frame, seq=1))
    assert_icmp_error(icmp, 11, 0, HUB_TUNNEL_IP, dying)
    assert r.drops == {"ttl_expired": 1}


def test_df_packet_over_the_tunnel_mtu(replay):
    hub = Hub()  # tunnel MTU 1400
    fits = udp(LAN_HOST_IP, SPOKE_B.host, 1, size=dmvpn.TUNNEL_MTU, df=True)
    big = udp(LAN_HOST_IP, SPOKE_B.host, 9, size=dmvpn.TUNNEL_MTU + 1, df=True)
    r = replay(hub, [(LAN, hub.from_lan(fits)), (LAN, hub.from_lan(big))])
    assert [inner_of(hub.decrypt_to(SPOKE_B, f))[IP].id for f in r.tx[WAN]] == [1]
    [icmp] = r.tx[LAN]
    assert_icmp_error(icmp, 3, 4, HUB_LAN_IP, big)
    assert icmp[ICMP].nexthopmtu == dmvpn.TUNNEL_MTU
    assert r.drops == {"mtu_exceeded": 1}


def largest_inner_packet(params: SaParams, link_mtu=1500) -> int:
    """The largest inner IPv4 packet whose GRE+ESP encapsulation fits `link_mtu` (RFC 4303 §2.4 padding,
    RFC 4106 / RFC 3602 IV and block sizes, RFC 3948 UDP header)."""
    gcm = params.suite.cipher.startswith("aes-gcm")
    iv, block = (8, 4) if gcm else (16, 16)
    icv = 16 if gcm or params.suite.integrity == "hmac-sha256-128" else 12
    room = link_mtu - 20 - (8 if params.natt else 0) - 8 - iv - icv
    payload_overhead = 8 + (20 if params.mode == "tunnel" else 0)  # GRE with key; tunnel-mode IP header
    return room // block * block - 2 - payload_overhead


@pytest.mark.parametrize("params", dmvpn.PARAMS_SMALL, ids=str)
def test_frag_needed_accounts_for_gre_and_esp_overhead(replay, params):
    hub = Hub(params, tunnel_mtu=1500)  # the WAN link, not the tunnel MTU, is the limit
    exact = largest_inner_packet(params)
    r = replay(hub, [(LAN, hub.from_lan(udp(LAN_HOST_IP, SPOKE_B.host, 9, size=1500, df=True)))])
    [icmp] = r.tx[LAN]
    assert (icmp[ICMP].type, icmp[ICMP].code) == (3, 4)
    mtu = icmp[ICMP].nexthopmtu
    assert exact - 16 <= mtu <= exact, f"reported MTU {mtu}, largest that fits {exact}"
    # Path MTU discovery converges: a packet of the reported size goes through and fits the link.
    r = replay(hub, [(LAN, hub.from_lan(udp(LAN_HOST_IP, SPOKE_B.host, 1, size=mtu, df=True)))])
    [frame] = r.tx[WAN]
    assert frame[IP].len <= 1500 and inner_of(hub.decrypt_to(SPOKE_B, frame))[IP].len == mtu
    assert r.drops == {}


def syn(src, dst, mss, flags="S"):
    return IP(src=src, dst=dst, id=5) / TCP(sport=40000, dport=443, flags=flags, seq=1000, options=[
        ("MSS", mss), ("SAckOK", b""), ("Timestamp", (1, 0)), ("WScale", 7)])


def check_clamped(got, sent, mss):
    assert dict(got[TCP].options)["MSS"] == mss
    others = [o for o in got[TCP].options if o[0] != "MSS"]
    # Compare with the options as they were on the wire (Scapy pads its list with EOL when it builds).
    on_wire = TCP(bytes(sent[TCP])).options
    assert others == [o for o in on_wire if o[0] != "MSS"], "other options must survive"
    dmvpn.assert_checksums(got)  # Scapy recomputes the TCP checksum and compares


@pytest.mark.parametrize("mss,expected", [(1460, dmvpn.TCP_MSS), (1200, 1200)])
def test_mss_clamped_into_the_tunnel(replay, mss, expected):
    hub = Hub()
    sent = syn(LAN_HOST_IP, SPOKE_B.host, mss)
    r = replay(hub, [(LAN, hub.from_lan(sent))])
    check_clamped(inner_of(hub.decrypt_to(SPOKE_B, r.tx[WAN][0])), sent, expected)
    assert r.counters["mss_clamped"] == (1 if mss != expected else 0)


def test_mss_clamped_out_of_the_tunnel(replay):
    hub = Hub()
    sent = syn(SPOKE_A.host, LAN_HOST_IP, 1460, flags="SA")
    r = replay(hub, [(WAN, hub.esp_from(SPOKE_A, sent))])
    check_clamped(r.tx[LAN][0], sent, dmvpn.TCP_MSS)
    assert r.counters["mss_clamped"] == 1


def nhrp_registration(src_nbma: str, src_proto: str, dst_proto: str) -> bytes:
    """An NHRP Registration Request (RFC 2332 §5.2.3) with one CIE; Scapy has no NHRP layer."""
    aton = lambda a: bytes(int(x) for x in a.split("."))  # noqa: E731
    mandatory = struct.pack("!BBHI", 4, 4, 0x8000, 1) + aton(src_nbma) + aton(src_proto) + aton(dst_proto)
    cie = struct.pack("!BBHHHBBBB", 0, 32, 0, 1400, 7200, 0, 0, 0, 0)
    body = mandatory + cie
    fixed = struct.pack("!HH5sBHHHBBBB", 1, 0x0800, b"\0" * 5, 255, 20 + len(body), 0, 0, 1, 3, 4, 0)
    packet = bytearray(fixed + body)
    total = sum(struct.unpack(f"!{len(packet) // 2}H", bytes(packet) + b"\0" * (len(packet) % 2)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    packet[12:14] = struct.pack("!H", ~total & 0xFFFF)
    return bytes(packet)


@pytest.mark.parametrize("spoke", [SPOKE_A, SPOKE_C], ids=["registered", "unregistered"])
def test_nhrp_inside_esp_is_punted(replay, spoke):
    hub = Hub()
    nhrp = nhrp_registration(spoke.nbma, spoke.overlay, HUB_TUNNEL_IP)
    r = replay(hub, [(WAN, hub.esp_from(spoke, dmvpn.Raw(nhrp), proto=0x2001))])
    [punt] = r.punts
    assert punt["kind"] == "nhrp" and punt["tunnel"] == TUNNEL and punt["sa"] == spoke.sa_in
    assert punt["src"] == spoke.nbma
    assert nhrp in bytes.fromhex(punt["data"])
    assert r.tx == {WAN: [], LAN: []} and r.drops == {}


IKE_SA_INIT = bytes.fromhex("0011223344556677" "0000000000000000" "21202208" "00000000" "0000001c")


@pytest.mark.parametrize("sport,dport,payload", [(500, 500, IKE_SA_INIT),
                                                 (4500, 4500, b"\0\0\0\0" + IKE_SA_INIT),
                                                 (31337, 4500, b"\0\0\0\0" + IKE_SA_INIT)],
                         ids=["udp500", "udp4500-non-esp-marker", "udp4500-behind-nat"])
def test_ike_is_punted(replay, sport, dport, payload):
    hub = Hub()
    pkt = hub.from_wan(IP(src=SPOKE_A.nbma, dst=HUB_WAN_IP) / UDP(sport=sport, dport=dport) / payload)
    r = replay(hub, [(WAN, pkt)])
    [punt] = r.punts
    assert punt["kind"] == "ike" and punt["port"] == WAN
    assert (punt["src"], punt["dst"]) == (SPOKE_A.nbma, HUB_WAN_IP)
    assert IKE_SA_INIT in bytes.fromhex(punt["data"])
    assert r.drops == {}


def test_natt_keepalive_is_counted_not_punted(replay):
    hub = Hub(SaParams(natt=True))
    keepalive = hub.from_wan(IP(src=SPOKE_A.nbma, dst=HUB_WAN_IP) / UDP(sport=31337, dport=4500) / b"\xff")
    good = hub.esp_from(SPOKE_A, udp(SPOKE_A.host, LAN_HOST_IP, 1))
    r = replay(hub, [(WAN, keepalive), (WAN, good)])
    assert r.punts == [] and r.drops == {"natt_keepalive": 1}
    assert [f[IP].id for f in r.tx[LAN]] == [1]


@pytest.mark.parametrize("port,mac,ip,peer_mac,peer_ip", [
    (WAN, HUB_WAN_MAC, HUB_WAN_IP, GW_MAC, GW_IP),
    (LAN, HUB_LAN_MAC, HUB_LAN_IP, LAN_HOST_MAC, LAN_HOST_IP)], ids=["wan", "lan"])
def test_arp_request_for_the_hub_is_answered(replay, port, mac, ip, peer_mac, peer_ip):
    hub = Hub()
    request = Ether(src=peer_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=peer_mac, psrc=peer_ip, pdst=ip)
    other = Ether(src=peer_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=peer_mac, psrc=peer_ip,
                                                               pdst="192.0.2.77" if port == WAN else "10.8.0.77")
    r = replay(hub, [(port, request), (port, other)])
    [reply] = r.tx[port]
    assert (reply.src, reply.dst, reply.type) == (mac, peer_mac, 0x0806)
    a = reply[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (2, mac, ip, peer_mac, peer_ip)
    assert r.drops == {"arp_not_for_us": 1}
