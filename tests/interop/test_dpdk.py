"""The data plane on DPDK (`dp-run`, lab profile) in a network namespace, on `net_af_packet` vdevs over
veth pairs, with Scapy in a neighbouring namespace as the independent spoke and LAN host.

    peer namespace (Scapy)                         hub namespace (dp-run)
    spoke A via its gateway  <veth> WAN  net_af_packet0 ┐
                                                        ├ one worker, the interop hub's config
    LAN host 10.8.0.9        <veth> LAN  net_af_packet1 ┘

Run with each crypto engine: the software one, and AES-GCM on a `crypto_aesni_gcm` cryptodev
(intel-ipsec-mb) through the batch interface, with AES-128 and with AES-256 and ESN. And once on
`net_tap` ports instead, which offer IPv4 checksum offloads (the tap driver computes and checks them):
the hub then leaves its outer IPv4 checksums to the port and trusts the port's verdict on received ones,
and Scapy checks what comes out. Each run also sends one spoke frame with a broken outer IPv4 checksum,
which must be dropped as such. And once with the WAN port on VLAN 100: af_packet offers VLAN strip and
insert, so the hub checks the tag the driver took off the spoke's tagged frames and asks the driver to
tag what it sends, and Scapy sees the tag.

Both ways, judged by Scapy alone: the spoke's ESP-protected GRE (its SA, sequence 1..N) must come out on
the LAN as the decrypted inner packet, TTL one less; the LAN host's packets must come out on the WAN as
ESP that Scapy decrypts with the hub's outbound SA to GRE (key 100) around the same packet. Then SIGTERM:
dp-run drains, finds every mbuf back in its pool and exits 0.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from scapy.all import IP, UDP, Dot1Q, Ether, rdpcap, wrpcap

import dmvpn
from dmvpn import (GW_MAC, HUB_LAN_MAC, HUB_WAN_MAC, LAN_HOST_IP, LAN_HOST_MAC, SPOKE_A, Hub, inner_of)

N = 20
PROFILE = dmvpn.ROOT / "hw-profiles/profiles/lab.toml"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2 for network namespaces")


@pytest.fixture(scope="session")
def dp_run() -> Path:
    """`dp-run`: $DP_RUN if set, else built here (release, feature dpdk) once per session."""
    if os.environ.get("DP_RUN"):
        return Path(os.environ["DP_RUN"])
    subprocess.run(["cargo", "build", "--release", "-p", "dataplane", "--features", "dpdk", "--bin", "dp-run"],
                   cwd=dmvpn.ROOT, check=True)
    return Path(os.environ.get("CARGO_TARGET_DIR", dmvpn.ROOT / "target")) / "release/dp-run"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


@pytest.fixture
def lab():
    """Two namespaces joined by two veth pairs, names unique to this process; removed afterwards."""
    pid = os.getpid()
    hub_ns, peer_ns = f"dphub{pid}", f"dppeer{pid}"
    names = {"hub_wan": f"dhw{pid}", "hub_lan": f"dhl{pid}", "peer_wan": f"dpw{pid}", "peer_lan": f"dpl{pid}"}
    try:
        for ns in (hub_ns, peer_ns):
            sh("ip", "netns", "add", ns)
            # No IPv6 autoconfiguration: the kernel would otherwise send ND and MLD on link up.
            for conf in ("all", "default"):
                sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1")
        for side, hub_mac, peer_mac in (("wan", HUB_WAN_MAC, GW_MAC), ("lan", HUB_LAN_MAC, LAN_HOST_MAC)):
            hub_if, peer_if = names[f"hub_{side}"], names[f"peer_{side}"]
            sh("ip", "link", "add", hub_if, "netns", hub_ns, "address", hub_mac, "type", "veth",
               "peer", "name", peer_if, "netns", peer_ns, "address", peer_mac)
            sh("ip", "-n", hub_ns, "link", "set", hub_if, "up")
            sh("ip", "-n", peer_ns, "link", "set", peer_if, "up")
        yield {"hub_ns": hub_ns, "peer_ns": peer_ns, **names}
    finally:
        for ns in (hub_ns, peer_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


# Runs in the peer namespace: sniffs both interfaces, sends the frames of each pcap out of its
# interface, and writes what came back.
PEER = textwrap.dedent("""
    import sys, time
    from scapy.all import AsyncSniffer, rdpcap, sendp, wrpcap
    wan, lan, out = sys.argv[1], sys.argv[2], sys.argv[3]
    sniffers = {i: AsyncSniffer(iface=i, store=True) for i in (wan, lan)}
    for s in sniffers.values():
        s.start()
    time.sleep(1.0)
    for i in (wan, lan):
        sendp(rdpcap(f"{out}/send-{i}.pcap"), iface=i, inter=0.002, verbose=False)
    time.sleep(1.5)
    for i, s in sniffers.items():
        wrpcap(f"{out}/got-{i}.pcap", s.stop())
""")


def received(pcap: Path) -> list[Ether]:
    """Frames the peer captured that the hub sent (the capture also sees what the peer itself sent)."""
    return [f for f in rdpcap(str(pcap)) if f.src in (HUB_WAN_MAC, HUB_LAN_MAC)] if pcap.exists() else []


# (crypto engine, SA parameters, port driver, VLAN of the WAN port)
CASES = [("software", dmvpn.SaParams(), "af_packet", None),
         ("crypto_aesni_gcm", dmvpn.SaParams(), "af_packet", None),
         ("crypto_aesni_gcm", dmvpn.SaParams(suite=dmvpn.SUITES[1], esn=True), "af_packet", None),
         ("software", dmvpn.SaParams(), "tap", None),
         ("software", dmvpn.SaParams(), "af_packet", 100)]


def tagged(frame: Ether, vid: int | None) -> Ether:
    """`frame` with an 802.1Q tag of VLAN `vid` (unchanged if `None`)."""
    return frame if vid is None else Ether(src=frame.src, dst=frame.dst) / Dot1Q(vlan=vid) / frame.payload


@pytest.mark.parametrize("engine,params,driver,vlan", CASES,
                         ids=[f"{e}-{p}-{d}" + (f"-vlan{v}" if v else "") for e, p, d, v in CASES])
def test_esp_gre_both_ways_through_dpdk(dp_run, lab, tmp_path, engine, params, driver, vlan):
    hub = Hub(params=params)
    config = hub.config()
    config["ports"][0]["vlan"] = vlan
    (tmp_path / "hub.json").write_text(json.dumps(config))
    if driver == "tap":
        # The tap devices appear in the hub's namespace when dp-run starts; they are moved to the peer's.
        pid = os.getpid()
        lab = {**lab, "hub_wan": f"dtw{pid}", "hub_lan": f"dtl{pid}", "peer_wan": f"dtw{pid}",
               "peer_lan": f"dtl{pid}"}
        profile = PROFILE.read_text().replace("net_af_packet0,iface=dp-wan", f"net_tap0,iface={lab['hub_wan']}") \
                                     .replace("net_af_packet1,iface=dp-lan", f"net_tap1,iface={lab['hub_lan']}")
    else:
        profile = PROFILE.read_text().replace("iface=dp-wan", f"iface={lab['hub_wan']}") \
                                     .replace("iface=dp-lan", f"iface={lab['hub_lan']}")
    wan_port, lan_port = f"net_{driver}0", f"net_{driver}1"
    if engine != "software":
        profile = profile.replace("software = {}", f'cryptodev = {{ driver = "{engine}" }}')
    (tmp_path / "lab.toml").write_text(profile)

    from_spoke = [IP(src=SPOKE_A.host, dst=LAN_HOST_IP, ttl=64, id=500 + i) / UDP(sport=7000, dport=9000 + i)
                  / (b"spoke-to-lan %d " % i * 4) for i in range(N)]
    from_lan = [IP(src=LAN_HOST_IP, dst=SPOKE_A.host, ttl=64, id=900 + i) / UDP(sport=8000, dport=9500 + i)
                / (b"lan-to-spoke %d " % i * 4) for i in range(N)]
    bad_checksum = Ether(bytes(hub.esp_from(SPOKE_A, from_spoke[0], seq=N + 1)))
    bad_checksum[IP].chksum ^= 0x0101
    wrpcap(str(tmp_path / f"send-{lab['peer_wan']}.pcap"),
           [tagged(hub.esp_from(SPOKE_A, p, seq=i + 1), vlan) for i, p in enumerate(from_spoke)]
           + [tagged(bad_checksum, vlan)])
    wrpcap(str(tmp_path / f"send-{lab['peer_lan']}.pcap"), [hub.from_lan(p) for p in from_lan])

    stats = tmp_path / "stats.json"
    log = open(tmp_path / "dp-run.log", "w+")
    hub_proc = subprocess.Popen(
        ["ip", "netns", "exec", lab["hub_ns"], str(dp_run), "--profile", str(tmp_path / "lab.toml"),
         "--config", str(tmp_path / "hub.json"), "--stats", str(stats),
         "--file-prefix", f"dp-interop-{os.getpid()}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "dp-run: running" not in (tmp_path / "dp-run.log").read_text():
            assert hub_proc.poll() is None, (tmp_path / "dp-run.log").read_text()
            assert time.monotonic() < deadline, "dp-run did not start in 30 s"
            time.sleep(0.1)
        if driver == "tap":
            for tap in (lab["hub_wan"], lab["hub_lan"]):
                sh("ip", "-n", lab["hub_ns"], "link", "set", tap, "netns", lab["peer_ns"])
                sh("ip", "-n", lab["peer_ns"], "link", "set", tap, "up")
        (tmp_path / "peer.py").write_text(PEER)
        subprocess.run(["ip", "netns", "exec", lab["peer_ns"], sys.executable, str(tmp_path / "peer.py"),
                        lab["peer_wan"], lab["peer_lan"], str(tmp_path)], check=True, timeout=60)
    finally:
        hub_proc.send_signal(signal.SIGTERM)
        try:
            rc = hub_proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            hub_proc.kill()
            raise
    output = (tmp_path / "dp-run.log").read_text()
    assert rc == 0, output
    assert "stopped: all 8192 mbufs returned" in output, output

    # Spoke → LAN: each decrypted, decapsulated, forwarded with TTL 63, in order.
    got_lan = received(tmp_path / f"got-{lab['peer_lan']}.pcap")
    assert len(got_lan) == N, [f.summary() for f in got_lan]
    for frame, sent in zip(got_lan, from_spoke):
        assert (frame.src, frame.dst) == (HUB_LAN_MAC, LAN_HOST_MAC)
        got = frame[IP]
        assert (got.src, got.dst, got.id, got.ttl) == (sent.src, sent.dst, sent.id, 63)
        assert bytes(got[UDP]) == bytes(sent[UDP])
        dmvpn.assert_checksums(frame)

    # LAN → spoke: ESP to spoke A that Scapy decrypts (sequence 1..N) to GRE around the same packet.
    got_wan = received(tmp_path / f"got-{lab['peer_wan']}.pcap")
    assert len(got_wan) == N, [f.summary() for f in got_wan]
    for seq, (frame, sent) in enumerate(zip(got_wan, from_lan), start=1):
        # On the VLAN, the tag the port inserted (af_packet: the hub asks, the driver writes it).
        assert (frame[Dot1Q].vlan if Dot1Q in frame else None) == vlan, frame.summary()
        dmvpn.assert_checksums(frame)
        inner = inner_of(hub.decrypt_to(SPOKE_A, frame, seq=seq))
        assert (inner.src, inner.dst, inner.id, inner.ttl) == (sent.src, sent.dst, sent.id, 63)
        assert bytes(inner[UDP]) == bytes(sent[UDP])

    s = json.loads(stats.read_text())
    w = s["workers"][0]
    assert (w["esp_decrypted"], w["esp_encrypted"], w["tx_packets"]) == (N, N, 2 * N)
    assert {k: v for k, v in w["drops"].items() if v} == {"ipv4_bad_checksum": 1}
    assert s["mempool"] == {"size": 8192, "in_use_after_stop": 0, "all_returned": True}
    ports = {p["name"]: p for p in s["ports"]}
    assert ports[wan_port]["rx_packets"] == N + 1 and ports[wan_port]["tx_packets"] == N
    assert ports[lan_port]["queues"][0]["rx_packets"] == N
    # af_packet offers no checksum offload but VLAN strip and insert; tap offers the checksum offloads
    # and no VLAN ones. The hub used each one offered.
    tap = driver == "tap"
    offloads = {"rx_ipv4_csum": tap, "tx_ipv4_csum": tap, "rx_vlan_strip": not tap, "tx_vlan_insert": not tap}
    assert ports[wan_port]["offloads"] == offloads and ports[lan_port]["offloads"] == offloads
    assert w["busy_polls"] > 0 and w["sleeps"] > 0, "the lab profile polls adaptively"
    if engine == "software":
        assert s["crypto"] == {"engine": "software", "workers": []}
    else:
        # Every seal and open ran on the device: one session per SA used (spoke A in and out).
        assert engine in s["crypto"]["engine"], s["crypto"]
        assert s["crypto"]["workers"] == [{"device_ops": 2 * N, "software_ops": 0, "sessions": 2}]
