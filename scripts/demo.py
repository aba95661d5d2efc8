"""The hub data plane at work, shown the way an operator would look at it.

A hub with a WAN port, a LAN port and one protected mGRE tunnel (ESP transport mode, AES-GCM-128) has two
registered spokes. Scapy plays the spokes and the LAN host; the hub's pipeline runs in `dp-replay` over
what they send; tshark, given the SAs, dissects and decrypts what the hub sent back. Four things happen:

  1. spoke A pings a host on the hub's LAN      → the hub decrypts, decapsulates and forwards it
  2. the LAN host answers to spoke B's network   → the hub encapsulates in GRE, encrypts for B
  3. spoke A talks to spoke B through the hub    → decrypted, re-encrypted for B, and a Phase 3
                                                    redirect goes to the control plane
  4. spoke C (IKE done, not registered) sends an NHRP registration → punted to the control plane
"""
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/interop"))

from scapy.all import ICMP, IP  # noqa: E402

import dmvpn  # noqa: E402
from dmvpn import LAN, LAN_HOST_IP, SPOKE_A, SPOKE_B, SPOKE_C, WAN, Hub  # noqa: E402


def section(title: str) -> None:
    print(f"\n=== {title}")


def main() -> int:
    tool = Path(sys.argv[1])
    hub = Hub()
    config = hub.config()

    section("Hub tables (from the static config the replay tool loads)")
    for p in config["ports"]:
        print(f"  port {p['id']} {p['name']:4} {p['mac']}  vrf {p['vrf']}  {', '.join(p['addresses'])}")
    t = config["tunnels"][0]
    print(f"  Tunnel{t['id']}: source {t['source']}, key {t['key']}, overlay {t['address']} in vrf {t['vrf']}, "
          f"ip mtu {t['mtu']}, tcp adjust-mss {t['tcp_mss']}, protection ESP, nhrp redirect")
    print("\n  Peer NBMA Addr   Peer Tunnel Add  SA out (SPI)   SA in (SPI)     Attrb")
    for s in (SPOKE_A, SPOKE_B):
        print(f"  {s.nbma:16} {s.overlay:16} {s.sa_out} ({s.spi_out:#06x})   {s.sa_in} ({s.spi_in:#06x})"
              f"    S (static TEIB)")

    ping_lan = IP(src=SPOKE_A.host, dst=LAN_HOST_IP) / ICMP(id=1, seq=1) / b"spoke A to the hub LAN"
    reply_to_b = IP(src=LAN_HOST_IP, dst=SPOKE_B.host) / ICMP(type=0, id=2, seq=1) / b"hub LAN to spoke B"
    a_to_b = IP(src=SPOKE_A.host, dst=SPOKE_B.host) / ICMP(id=3, seq=1) / b"spoke A to spoke B"
    nhrp = bytes.fromhex("0001080000000000") + b" (an NHRP registration request)"
    # Spoke C's NHRP registration: GRE protocol 0x2001 carrying the NHRP bytes, protected by C's SA.
    registration = hub.esp_from(SPOKE_C, dmvpn.Raw(nhrp), proto=0x2001)
    rx = [
        (WAN, hub.esp_from(SPOKE_A, ping_lan, seq=1)),
        (LAN, hub.from_lan(reply_to_b)),
        (WAN, hub.esp_from(SPOKE_A, a_to_b, seq=2)),
        (WAN, registration),
    ]

    section("What the spokes and the LAN send the hub (Scapy)")
    for i, (port, frame) in enumerate(rx, 1):
        print(f"  {i}. port {port}: {frame.summary()}")

    with tempfile.TemporaryDirectory(prefix="dmvpn-demo-") as tmp:
        r = dmvpn.replay(tool, Path(tmp), hub, rx)
        for port, name in ((LAN, "LAN"), (WAN, "WAN")):
            section(f"What the hub sent on its {name} port (tshark, decrypting ESP with the SAs)")
            rows = dmvpn.tshark(r.out / f"tx-{port}.pcap", hub, "-T", "fields", "-E", "separator=|",
                                "-e", "ip.src", "-e", "ip.dst", "-e", "esp.spi", "-e", "gre.key",
                                "-e", "_ws.col.Info")
            print(f"  {'IP src (outer,inner)':28} {'IP dst (outer,inner)':28} {'ESP SPI':11} {'GRE key':8} info")
            for line in rows.splitlines():
                src, dst, spi, key, info = line.split("|")
                print(f"  {src:28} {dst:28} {spi:11} {key:8} {info}")
        section("Punted to the control plane")
        for p in r.punts:
            print(f"  {p['kind']:9} tunnel {p['tunnel']}  sa {p['sa']}  {p['src']} -> {p['dst']}  "
                  f"{len(bytes.fromhex(p['data']))} bytes")
        section("Worker counters")
        c = r.counters
        print("  " + "  ".join(f"{k} {c[k]}" for k in ("rx_packets", "tx_packets", "punted", "esp_decrypted",
                                                       "esp_encrypted")))
        drops = {k: v for k, v in c["drops"].items() if v}
        print("  drops: " + (json.dumps(drops) if drops else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
