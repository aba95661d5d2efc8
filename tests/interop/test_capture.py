"""The data plane's packet capture (`dataplane::capture`, through `dp-replay --capture`): one peer's
packets at the four points, and nothing of another peer. Scapy decrypts the ESP frames the capture holds
and finds in them the very GRE packets the capture shows in clear; tshark reads the file without errors."""
import pytest
from scapy.all import ESP, GRE, ICMP, IP, UDP, Ether, rdpcap

from dmvpn import LAN, LAN_HOST_IP, SPOKE_A, SPOKE_B, WAN, Hub, SaParams, tshark_errors


def lan_to(spoke, n):
    return [IP(src=LAN_HOST_IP, dst=spoke.host, ttl=64, id=300 + i) / UDP(sport=2000 + i, dport=7) / b"capture me"
            for i in range(n)]


@pytest.mark.parametrize("params", [SaParams(), SaParams(natt=True)], ids=str)
def test_capture_of_one_peer_shows_both_sides_of_the_crypto(replay, params):
    hub = Hub(params)
    from_a = [IP(src=SPOKE_A.host, dst=LAN_HOST_IP, ttl=64, id=7 + i) / ICMP(id=1, seq=i) / b"from a" for i in range(3)]
    rx = [(WAN, hub.esp_from(SPOKE_A, p, seq=i + 1)) for i, p in enumerate(from_a)]
    rx += [(LAN, hub.from_lan(p)) for p in lan_to(SPOKE_A, 2) + lan_to(SPOKE_B, 2)]
    r = replay(hub, rx, args=("--capture", f"peer={SPOKE_A.nbma}"))
    assert r.drops == {}
    path = r.out / "capture.pcap"
    frames = [Ether(bytes(f)) for f in rdpcap(str(path))]
    assert not tshark_errors(path, hub)

    esp_in = [f for f in frames if f[IP].src == SPOKE_A.nbma and GRE not in f]
    clear_in = [f for f in frames if f[IP].src == SPOKE_A.nbma and GRE in f]
    clear_out = [f for f in frames if f[IP].dst == SPOKE_A.nbma and GRE in f]
    esp_out = [f for f in frames if f[IP].dst == SPOKE_A.nbma and GRE not in f]
    assert (len(esp_in), len(clear_in), len(clear_out), len(esp_out)) == (3, 3, 2, 2), [f.summary() for f in frames]
    assert len(frames) == 10, "nothing of spoke B"

    # Received: what Scapy decrypts from the captured ESP is the captured cleartext.
    for esp, clear, seq in zip(esp_in, clear_in, range(1, 4)):
        plain = hub.sa_in(SPOKE_A).scapy().decrypt(esp[IP].copy())
        assert bytes(plain[GRE]) == bytes(clear[GRE])
        assert bytes(clear[GRE].payload) == bytes(from_a[seq - 1])
    # Sent: the captured cleartext is what Scapy decrypts from the frame the hub sent.
    for clear, esp, sent in zip(clear_out, esp_out, lan_to(SPOKE_A, 2)):
        plain = hub.decrypt_to(SPOKE_A, esp)
        assert bytes(plain[GRE]) == bytes(clear[GRE])
        inner = IP(bytes(clear[GRE].payload))
        assert (inner.src, inner.dst, inner.id, inner.ttl) == (sent.src, sent.dst, sent.id, sent.ttl - 1)
    # The sent frames are the ones on the wire.
    assert [bytes(f) for f in esp_out] == [bytes(f) for f in r.tx[WAN] if f[IP].dst == SPOKE_A.nbma]


def test_capture_of_a_port_at_one_point(replay):
    hub = Hub(SaParams())
    rx = [(LAN, hub.from_lan(p)) for p in lan_to(SPOKE_A, 2) + lan_to(SPOKE_B, 3)]
    r = replay(hub, rx, args=("--capture", f"port={LAN},points=rx"))
    frames = rdpcap(str(r.out / "capture.pcap"))
    assert [bytes(f) for f in frames] == [bytes(f) for _, f in rx]


def test_bad_capture_arguments_are_refused(dp_replay, tmp_path):
    import subprocess
    for spec, message in [("peer=nope", "not an address"), ("points=rx+sideways", "no point \"sideways\""),
                          ("vrf=1", "unknown key \"vrf\"")]:
        proc = subprocess.run([str(dp_replay), "--capture", spec], capture_output=True, text=True)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
