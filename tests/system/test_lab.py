"""System tests on the namespace lab (lab/dmvpnlab.py): our dmvpnd as two hubs and three spokes over two
ISP routers, one lab shared by the module. Each test states the DMVPN behaviour of the seed Q&A it checks
and prints the time it measured (pytest -s shows them).

Needs root, iproute2, nftables and the release binaries (built once here, or $DMVPND_PREBUILT=1).
"""
import json
import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
from dmvpnlab import HOLDTIME, Lab, build_binaries  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("ping") is None,
                                reason="needs root, iproute2 and ping for network namespaces")
SPOKES = {"10.0.0.11", "10.0.0.12"}


@pytest.fixture(scope="module")
def lab():
    build_binaries()
    with Lab(hubs=("hub1", "hub2"), spokes=(1, 2, 3), text_log=("hub2",)) as lab:
        yield lab


def test_spokes_register_with_both_hubs_over_ipsec(lab):
    # Registration: each spoke's NHRP registration reaches each hub only inside ESP (the tunnels are
    # protected), so "UP" on the hub means IKE, the SA pair and the registration all worked.
    _, t = lab.wait(lambda: lab.registered("hub1") >= SPOKES and lab.registered("hub2") >= SPOKES, 60)
    print(f"\nregistration with both hubs: {t:.2f} s after the lab was up")
    assert lab.nhs_up("s1") == {"10.0.0.1", "10.0.0.2"}
    out = lab.show("hub1", "dmvpn")
    assert "Type:Hub" in out and "203.0.113.10" in out and "10.0.0.11    UP" in out, out
    assert lab.ping("h1", "10.8.0.9", count=3) >= 2, "spoke LAN to hub LAN"


def test_logs_are_json_or_text_lines_with_the_event_fields(lab):
    # The daemon's log: one JSON object per event by default (hub1), tracing's text lines with --log text
    # (hub2); both carry the event's name and the peer it concerns, with a millisecond or finer timestamp.
    lab.wait(lambda: lab.registered("hub1") >= SPOKES and lab.registered("hub2") >= SPOKES, 60)
    events = [json.loads(line.removeprefix("dmvpnd: ")) for line in lab.logs["hub1"].read_text().splitlines()
              if line.startswith("dmvpnd: {")]
    up = [e for e in events if e.get("event") == "peer_up" and e.get("peer") == "10.0.0.11"]
    assert up and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", up[0]["time"]), events[:5]
    text = lab.logs["hub2"].read_text()
    line = re.search(r"^(\S+)\s+INFO dmvpnd::event: event=peer_up peer=\"?10\.0\.0\.11.*$", text, re.M)
    assert line, text[-2000:]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3,}Z", line.group(1)), line.group(0)


def test_phase3_shortcut_forms_and_takes_the_traffic(lab):
    lab.wait(lambda: lab.registered("hub1") >= SPOKES, 60)
    redirects = lab.redirects("hub1")
    t0 = time.monotonic()
    assert lab.ping("h2", "10.2.1.9", count=3, interval=0.2) >= 1, "first packets through the hub"
    via, _ = lab.wait(lambda: lab.shortcut("s2", "10.2.1.0/24"), 30, step=0.05)
    took = time.monotonic() - t0
    print(f"\nshortcut s2 -> 10.2.1.0/24 installed {took:.2f} s after the first packet")
    assert via == "10.0.0.11"
    assert lab.redirects("hub1") > redirects, "the hub sent a Traffic Indication"
    # The replies build the reverse shortcut the same way (their own redirect from the hub); until both
    # exist, the replies still cross the hub.
    def reverse():
        if via := lab.shortcut("s1", "10.2.2.0/24"):
            return via
        lab.ping("h2", "10.2.1.9", count=1, timeout=0.5)  # replies keep crossing the hub until then
        return None

    back, _ = lab.wait(reverse, 30, step=0.05)
    print(f"reverse shortcut s1 -> 10.2.2.0/24 installed {time.monotonic() - t0:.2f} s after the first packet")
    assert back == "10.0.0.12"
    before = lab.tunnel_rx("hub1")
    assert lab.ping("h2", "10.2.1.9", count=20, interval=0.05) >= 19
    assert lab.tunnel_rx("hub1") - before <= 2, "spoke-to-spoke traffic went through the hub"
    assert took < 10


def test_a_shortcut_in_use_outlives_its_holding_time(lab):
    # Cisco refreshes the NHRP entries that forwarding uses before they expire: traffic through the
    # shortcut marks it used (the spoke's outbound SA reports its use), the spoke sends a fresh Resolution
    # Request ahead of the expiry, and the shortcut never goes back through the hub while traffic flows.
    lab.wait(lambda: lab.registered("hub1") >= SPOKES, 60)
    assert lab.ping("h2", "10.2.1.9", count=3, interval=0.2) >= 1
    lab.wait(lambda: lab.shortcut("s2", "10.2.1.0/24"), 30, step=0.05)
    removed = lambda: [e for e in lab.events("s2", "shortcut_removed") if e["prefix"] == "10.2.1.0/24"]
    gone_before = len(removed())
    seconds = HOLDTIME + 10
    replies = []
    pinger = threading.Thread(target=lambda: replies.append(
        lab.ping("h2", "10.2.1.9", count=int(seconds / 0.2), interval=0.2, timeout=2)))
    pinger.start()
    missing = 0
    while pinger.is_alive():
        missing += lab.shortcut("s2", "10.2.1.0/24") is None
        time.sleep(0.5)
    pinger.join()
    print(f"\n{seconds} s of traffic over a shortcut held {HOLDTIME} s: "
          f"{replies[0]}/{int(seconds / 0.2)} replies, shortcut missing in {missing} samples")
    assert len(removed()) == gone_before, "the shortcut expired while in use"
    assert missing == 0
    assert replies[0] >= int(seconds / 0.2) - 2


def test_broken_direct_path_falls_back_to_the_hub_and_back(lab):
    # DPD on a spoke-to-spoke tunnel: with only the direct path between s1 and s2 broken, IKE DPD declares
    # the peer dead, the spoke purges the shortcut, the TEIB entry, the SAs and the NHRP binding, and the
    # traffic takes the route via the hub again; once the path heals, the hub's next Traffic Indication
    # builds the shortcut afresh and the traffic goes direct again.
    lab.wait(lambda: lab.registered("hub1") >= SPOKES, 60)
    assert lab.ping("h2", "10.2.1.9", count=3, interval=0.2) >= 1
    via, _ = lab.wait(lambda: lab.shortcut("s2", "10.2.1.0/24"), 30, step=0.05)
    assert via == "10.0.0.11"

    def direct() -> bool:
        before = lab.tunnel_rx("hub1")
        return lab.ping("h2", "10.2.1.9", count=5, interval=0.05, timeout=0.5) == 5 \
            and lab.tunnel_rx("hub1") - before <= 1

    def via_hub() -> bool:
        before = lab.tunnel_rx("hub1")
        return lab.ping("h2", "10.2.1.9", count=1, timeout=0.5) == 1 and lab.tunnel_rx("hub1") - before >= 2

    lab.wait(direct, 10, step=0.05)
    dead_before = len(lab.events("s2", "peer_dead"))
    lab.cut("s1", "s2")
    try:
        t0 = time.monotonic()
        _, failover = lab.wait(via_hub, 40, step=0.05)
        dead = lab.events("s2", "peer_dead")[dead_before:]
        assert any(e["remote"].startswith("203.0.113.10:") for e in dead), "s2's DPD declared s1 dead"
        purged = [e for e in lab.events("s2", "peer_purged") if e["peer"] == "203.0.113.10"]
        assert purged and purged[-1]["shortcuts"] >= 1 and purged[-1]["t_ms"] >= dead[-1]["t_ms"], purged
        assert lab.shortcut("s2", "10.2.1.0/24") is None
        assert not [p for p in lab.status("s2")["sa_pairs"] if p["peer"] == "203.0.113.10"], "s1's SAs gone"
        assert lab.ping("h2", "10.2.1.9", count=10, interval=0.1) >= 9, "spoke-hub-spoke while the path is down"
    finally:
        lab.heal()
    t1 = time.monotonic()
    _, recovery = lab.wait(lambda: lab.shortcut("s2", "10.2.1.0/24") and direct(), 60, step=0.05)
    print(f"\ndirect path s1-s2 broken: traffic through the hub after {failover:.1f} s (DPD); "
          f"healed: direct again after {time.monotonic() - t1:.1f} s")
    assert failover < 30 and recovery < 40


def test_hub_lost_traffic_continues_through_the_other(lab):
    # Two hubs, one lost: the spokes' NHS to hub1 goes down, the route via hub1 follows the NHS to hub2,
    # LAN to hub LAN... (hub2 has no LAN host) so spoke to spoke through hub2 keeps working.
    lab.wait(lambda: lab.registered("hub2") >= SPOKES, 60)
    assert lab.stop("hub1") == 0, "hub1 stopped cleanly with every mbuf back"
    t0 = time.monotonic()
    _, took = lab.wait(lambda: "10.0.0.1" not in lab.nhs_up("s2"), 60, step=0.2)
    # Fresh traffic between spokes (no shortcut for 10.2.2.0/24 on s1 yet) must go via hub2 now.
    _, conv = lab.wait(lambda: lab.ping("h1", "10.2.2.9", count=1, timeout=0.5) == 1, 60, step=0.1)
    total = time.monotonic() - t0
    print(f"\nhub1 lost: NHS down after {took:.1f} s, spoke-to-spoke traffic flowing {total:.1f} s after the loss")
    assert lab.ping("h1", "10.2.2.9", count=10, interval=0.1) >= 9


def test_hub_restart_recovers(lab):
    # Hub restart: the spokes' IKE and NHRP state toward hub1 is stale; NHS down tears the SAs down,
    # the next registration negotiates afresh and hub1 lists the spokes again.
    if "hub1" in lab.procs:
        assert lab.stop("hub1") == 0
    t0 = time.monotonic()
    lab.start("hub1")
    _, took = lab.wait(lambda: lab.registered("hub1") >= SPOKES, 90, step=0.5)
    print(f"\nhub1 restarted: spokes registered again {time.monotonic() - t0:.1f} s after it started")
    assert lab.ping("h1", "10.8.0.9", count=3) >= 2


def test_spoke_behind_nat_changes_public_address(lab):
    _, t = lab.wait(lambda: "10.0.0.13" in lab.registered("hub1"), 30)
    lab.set_nat("100.100.0.2")
    t0 = time.monotonic()
    lab.wait(lambda: any(p["overlay"] == "10.0.0.13" and p["nbma"] == "100.100.0.2" and p["state"] == "UP"
                         for tun in lab.status("hub1")["tunnels"] for p in tun["peers"]), 90)
    print(f"\ns3 re-registered from its new public address after {time.monotonic() - t0:.1f} s")
