"""System test of debugging one spoke on a running hub (lab/dmvpnlab.py, hub1 with its REST API and two
spokes): a per-peer debug condition, the event stream, peer down/up events and a packet capture that
tshark (the dissector of record) reads.

The seed Q&A's troubleshooting of one spoke among many: `debug nhrp condition peer` and `debug crypto
condition peer` trace that spoke only; `show dmvpn` events say when it went down and came back; a capture
shows its ESP on the wire and the GRE/NHRP inside.

Needs root, iproute2, nftables, openssl, tshark and the release binaries (built once here, or
$DMVPND_PREBUILT=1).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
from dmvpnlab import Lab, SPOKES, TARGET, build_binaries  # noqa: E402

requests = pytest.importorskip("requests")
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "ping", "openssl", "tshark")),
    reason="needs root, iproute2, ping, openssl and tshark")

S1_NBMA, S2_NBMA = SPOKES[1][0], SPOKES[2][0]
MS_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def lab():
    build_binaries()
    with Lab(hubs=("hub1",), spokes=(1, 2), api=("hub1",)) as lab:
        lab.wait(lambda: lab.registered("hub1") >= {"10.0.0.11", "10.0.0.12"}, 90)
        yield lab


class Api:
    def __init__(self, lab, node="hub1", role="operator"):
        self.base = lab.api_url(node)
        self.cert = str(lab.cert)  # per request: a Session's own is overridden by $REQUESTS_CA_BUNDLE
        self.headers = {"Authorization": f"Bearer {Lab.TOKENS[role]}"}

    def __call__(self, method, path, **kw):
        kw.setdefault("timeout", 15)
        return requests.request(method, self.base + path, headers=self.headers, verify=self.cert, **kw)


class Stream:
    """Reads the Server-Sent Events stream on a thread; `entries` are the JSON of its data lines."""

    def __init__(self, api: Api):
        self.entries: list[dict] = []
        # Keep-alive comments come every 15 s; a quiet minute is a dead stream.
        self.r = api("GET", "/api/v1/events/stream", stream=True, timeout=(15, 60))
        assert self.r.status_code == 200, self.r.text
        assert self.r.headers["content-type"].startswith("text/event-stream")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for line in self.r.iter_lines(decode_unicode=True):
                if line and line.startswith("data: "):
                    self.entries.append(json.loads(line[6:]))
        except Exception:  # the connection closed at the end of the test
            pass

    def close(self):
        self.r.close()


def test_one_spoke_debugged_bounced_and_captured(lab):
    op = Api(lab)
    # A read-only token may watch, not set conditions; an invalid condition names its field.
    ro = Api(lab, role="read-only")
    assert ro("PUT", "/api/v1/debug/conditions", json={"peer": S1_NBMA}).status_code == 403
    r = op("PUT", "/api/v1/debug/conditions", json={"peer": S1_NBMA, "what": ["nhrp", "bgp"]})
    assert r.status_code == 422 and r.json()["fields"][0]["path"] == "what[1]", r.text

    stream = Stream(ro)
    t0 = time.monotonic()
    # `debug nhrp condition peer` + `debug crypto condition peer`, by the spoke's NBMA address.
    r = op("PUT", "/api/v1/debug/conditions", json={"peer": S1_NBMA, "what": ["nhrp", "ike", "esp"]})
    assert r.status_code == 200, r.text

    # Bounce spoke 1: the hub declares it dead (DPD) and down, then it comes back and registers.
    lab.stop("s1")
    down, took_down = lab.wait(lambda: [e for e in stream.entries if e["event"] == "peer_down"
                                        and e.get("nbma") == S1_NBMA], 40)
    lab.start("s1")
    up, took_up = lab.wait(lambda: [e for e in stream.entries if e["event"] == "peer_up"
                                    and e.get("nbma") == S1_NBMA and e["seq"] > down[0]["seq"]], 60)
    # s2 kept registering all along (every 10 s): its packets crossed the hub while s1 was debugged.
    lab.wait(lambda: lab.registered("hub1") >= {"10.0.0.11", "10.0.0.12"}, 30)
    time.sleep(1)
    print(f"\npeer_down {took_down:.1f} s after the spoke stopped, peer_up {took_up:.1f} s after it started")
    assert down[0]["peer"] == "10.0.0.11" and down[0]["tunnel"] == "Tunnel1" and down[0]["reason"], down[0]
    assert up[0]["peer"] == "10.0.0.11" and up[0]["reason"] == "registered", up[0]

    debug = [e for e in stream.entries if e["kind"] == "debug"]
    facilities = {e["facility"] for e in debug}
    print(f"{len(debug)} debug lines for s1 in {time.monotonic() - t0:.1f} s: "
          + ", ".join(sorted({e['event'] for e in debug})))
    assert {"nhrp", "ike", "esp"} <= facilities, facilities
    assert all(e["nbma"] == S1_NBMA for e in debug), [e for e in debug if e["nbma"] != S1_NBMA][:3]
    events = {(e["facility"], e["event"]) for e in debug}
    assert ("nhrp", "nhrp_rx") in events and ("nhrp", "nhrp_tx") in events, events
    assert ("ike", "ike_rx") in events and ("esp", "esp_sa_installed") in events, events
    assert any(e["event"] == "nhrp_rx" and e.get("op") == "registration_request" for e in debug)
    assert any(e["event"] == "ike_rx" and e.get("exchange") == "IKE_SA_INIT" for e in debug)
    assert all(MS_TIME.match(e["time"]) for e in stream.entries), stream.entries[:3]
    seqs = [e["seq"] for e in stream.entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # Nothing of spoke 2 in the debug lines, though its state changes still show as events.
    assert not [e for e in debug if S2_NBMA in json.dumps(e)]

    # The same events through GET /api/v1/events.
    r = ro("GET", "/api/v1/events?since=0")
    assert r.status_code == 200
    assert any(e["event"] == "peer_down" and e.get("nbma") == S1_NBMA for e in r.json()["events"])
    assert ro("GET", "/api/v1/events?since=-3").json()["fields"][0]["path"] == "since"

    # dmvpnctl shows the same, as log lines.
    # --insecure: rustls refuses the lab's openssl certificate as its own trust anchor (CA:TRUE used as
    # an end entity); Python's checks above verified it.
    ctl = [str(TARGET / "dmvpnctl"), "--api", op.base, "--insecure"]
    env = dict(os.environ, DMVPN_TOKEN=Lab.TOKENS["operator"])
    out = subprocess.run([*ctl, "show", "debug"], capture_output=True, text=True, env=env, timeout=30)
    assert out.stdout == f"Debug conditions:\n  peer {S1_NBMA}: nhrp, ike, esp\n", out.stdout + out.stderr
    out = subprocess.run([*ctl, "show", "events"], capture_output=True, text=True, env=env, timeout=30).stdout
    assert re.search(rf"^\S+Z peer_down peer=10\.0\.0\.11 nbma={S1_NBMA} tunnel=Tunnel1 reason=peer dead", out, re.M), out

    # Undebug: no more lines for s1.
    out = subprocess.run([*ctl, "undebug", "all"], capture_output=True, text=True, env=env, timeout=30)
    assert out.stdout == "1 debug conditions removed\n", out.stdout + out.stderr
    assert op("GET", "/api/v1/debug/conditions").json()["conditions"] == []
    stream.close()


def test_a_capture_of_one_spoke_opens_in_tshark(lab, tmp_path):
    op = Api(lab)
    lab.wait(lambda: lab.registered("hub1") >= {"10.0.0.11", "10.0.0.12"}, 60)
    bad = op("POST", "/api/v1/capture", json={"peer": "nope", "points": ["wire"], "seconds": 0})
    assert bad.status_code == 422
    assert sorted(f["path"] for f in bad.json()["fields"]) == ["peer", "points[0]", "seconds"]
    # 11 s: at least one of s1's registrations (every 10 s) besides the pings.
    r = op("POST", "/api/v1/capture", json={"peer": S1_NBMA, "seconds": 11})
    assert r.status_code == 201, r.text
    assert op("POST", "/api/v1/capture", json={"peer": S1_NBMA}).status_code == 409
    assert lab.ping("h1", "10.8.0.9", count=10, interval=0.2) >= 8
    assert lab.ping("h2", "10.8.0.9", count=5, interval=0.2) >= 4  # spoke 2's: not in the capture
    st, _ = lab.wait(lambda: (s := op("GET", "/api/v1/capture").json())["state"] == "done" and s, 20)
    print(f"\ncapture: {st['packets']} packets, {st['bytes']} bytes, {st['lost']} lost, stopped by {st['stopped_by']}")
    assert st["stopped_by"] == "seconds" and st["lost"] == 0, st
    r = op("GET", "/api/v1/capture/pcap")
    assert r.headers["content-type"] == "application/vnd.tcpdump.pcap"
    pcap = tmp_path / "s1.pcap"
    pcap.write_bytes(r.content)
    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e", "ip.dst",
                          "-e", "frame.protocols"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    protos = [r[2] for r in rows]
    print(f"tshark: {len(rows)} frames, "
          + ", ".join(f"{p}: {sum(p in x.split(':') for x in protos)}" for p in ("esp", "gre", "nhrp", "icmp")))
    assert len(rows) == st["packets"]
    # ESP on the wire, and inside it GRE with the pings and NHRP.
    assert any("esp" in p.split(":") for p in protos), protos[:5]
    assert any("gre" in p.split(":") and "icmp" in p.split(":") for p in protos), protos[:5]
    assert any("nhrp" in p.split(":") for p in protos), protos
    # Only spoke 1's packets (the outer addresses of every frame are s1's and the hub's).
    assert all(S1_NBMA in r[0].split(",") + r[1].split(",") for r in rows), rows[:5]
    assert not any(S2_NBMA in r[0] + r[1] for r in rows)
