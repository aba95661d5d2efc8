"""A DMVPN lab in network namespaces: our `dmvpnd` as two hubs and three spokes, joined by two ISP routers.

    hlan 10.8.0.9 ── hub1 (10.0.0.1, NBMA 192.0.2.1) ─┐            ┌─ s1 (10.0.0.11, NBMA 203.0.113.10) ── h1 10.2.1.9
                     hub2 (10.0.0.2, NBMA 192.0.3.1) ─┤ isp1 ── isp2├─ s2 (10.0.0.12, NBMA 198.51.100.10) ── h2 10.2.2.9
                                                                    └─ s3 (10.0.0.13, 192.168.3.10 behind
                                                                           NAT to 100.100.0.1) ── h3 10.2.3.9

ISP routers are plain Linux forwarding; isp2 source-NATs s3 (nftables). Every dmvpnd runs in its own
namespace on `net_af_packet` vdevs over veths renamed `dp-wan` and `dp-lan` there, with the `lab`
hardware profile (adaptive polling, no hugepages) and its own `--file-prefix`; the configs follow
`mgmt/configs/hub.toml` and `spoke.toml` with IKEv2 PSK protection. Every name carries the pid, so
two labs never collide; `Lab.close()` (also on failure, and from `with Lab(...)`) removes everything.

With `api=("hub1",)` a hub also serves the REST API over HTTPS on a management veth from the root
namespace (`Lab.api_url(node)`), with a self-signed certificate made by `openssl` (`Lab.cert`) and a
token file of three tokens, one per role (`Lab.TOKENS`).

Run as root: `python3 lab/dmvpnlab.py` builds the lab, prints the hub's `show dmvpn`, pings LAN to LAN
between spokes, shows the Phase 3 shortcut forming, and tears everything down.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "hw-profiles/profiles/lab.toml"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"

HOLDTIME = 30          # NHRP holding time: registrations every 10 s
DPD = (10, 2, 1)       # IKE DPD interval, retry, retries: the config's minimum, a dead peer within 10-14 s

HUB_CONF = """\
version = 1
hostname = "{name}"

[[vrfs]]
name = "INET"
id = 1

[[interfaces]]
name = "wan"
port = "wan"
vrf = "INET"
addresses = ["{nbma}/24"]

[[interfaces]]
name = "lan"
port = "lan"
addresses = ["10.8.0.{lan}/24"]

[[tunnels]]
name = "Tunnel1"
id = 1
source = "wan"
fvrf = "INET"
key = 1001
address = "{overlay}/24"
mtu = 1400
tcp_mss = 1360
protection = "dmvpn"

[tunnels.nhrp]
network_id = 1
authentication = "dmvpn1"
holdtime = {holdtime}
redirect = true
multicast_dynamic = true

[[crypto.keyrings]]
name = "spokes"
peers = [{{ name = "any", address = "0.0.0.0/0", pre_shared_key = "dmvpn-lab-key" }}]

[[crypto.ike_profiles]]
name = "dmvpn"
keyring = "spokes"
authentication = {{ local = "pre-share", remote = "pre-share" }}
dpd = {{ interval = {dpd[0]}, retry = {dpd[1]}, retries = {dpd[2]} }}
proposals = [{{ encryption = ["aes-gcm-256"], prf = ["sha384"], group = ["19"] }}]

[[crypto.ipsec_profiles]]
name = "dmvpn"
ike_profile = "dmvpn"
transforms = ["aes-gcm-256", "aes-gcm-128"]

[[routes]]
vrf = "INET"
prefix = "0.0.0.0/0"
next_hop = "{gateway}"
{spoke_routes}"""

SPOKE_ROUTE = """
[[routes]]
prefix = "10.2.{n}.0/24"
interface = "Tunnel1"
next_hop = "10.0.0.1{n}"
"""

SPOKE_CONF = """\
version = 1
hostname = "{name}"

[[vrfs]]
name = "INET"
id = 1

[[interfaces]]
name = "wan"
port = "wan"
vrf = "INET"
addresses = ["{nbma}/24"]

[[interfaces]]
name = "lan"
port = "lan"
addresses = ["10.2.{n}.1/24"]

[[tunnels]]
name = "Tunnel1"
id = 1
source = "wan"
fvrf = "INET"
key = 1001
address = "10.0.0.1{n}/24"
mtu = 1400
protection = "dmvpn"

[tunnels.nhrp]
network_id = 1
authentication = "dmvpn1"
holdtime = {holdtime}
shortcut = true
nhs = [{nhs}]
clusters = [{{ cluster = 0, max_connections = 1 }}, {{ cluster = 1, max_connections = 1 }}]

[[crypto.keyrings]]
name = "hubs"
peers = [{{ name = "any", address = "0.0.0.0/0", pre_shared_key = "dmvpn-lab-key" }}]

[[crypto.ike_profiles]]
name = "dmvpn"
keyring = "hubs"
authentication = {{ local = "pre-share", remote = "pre-share" }}
dpd = {{ interval = {dpd[0]}, retry = {dpd[1]}, retries = {dpd[2]} }}
proposals = [{{ encryption = ["aes-gcm-256"], prf = ["sha384"], group = ["19"] }}]

[[crypto.ipsec_profiles]]
name = "dmvpn"
ike_profile = "dmvpn"
transforms = ["aes-gcm-256"]

[[routes]]
vrf = "INET"
prefix = "0.0.0.0/0"
next_hop = "{gateway}"

[[routes]]
prefix = "10.0.0.0/8"
interface = "Tunnel1"
next_hop = "10.0.0.1"
"""

HUBS = {  # name: (NBMA, gateway on isp1, overlay, LAN host octet of the hub)
    "hub1": ("192.0.2.1", "192.0.2.254", "10.0.0.1", 1),
    "hub2": ("192.0.3.1", "192.0.3.254", "10.0.0.2", 2),
}
SPOKES = {  # n: (NBMA on its link, gateway on isp2, NATed address or None)
    1: ("203.0.113.10", "203.0.113.254", None),
    2: ("198.51.100.10", "198.51.100.254", None),
    3: ("192.168.3.10", "192.168.3.254", "100.100.0.1"),
}


API_PORT = 8443
TOKENS = {"read-only": "lab-read-secret", "operator": "lab-operator-secret", "admin": "lab-admin-secret"}


def build_binaries() -> None:
    """Builds the release dmvpnd and dmvpnctl the lab runs, unless $DMVPND_PREBUILT says they are built."""
    if not os.environ.get("DMVPND_PREBUILT"):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "mgmt", "--features", "dpdk",
                        "--bin", "dmvpnd", "--bin", "dmvpnctl"], cwd=ROOT, check=True)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


class Lab:
    """The topology, its daemons and helpers to look at them. `hubs` picks which hubs run."""

    TOKENS = TOKENS

    def __init__(self, hubs=("hub1", "hub2"), spokes=(1, 2, 3), workdir: Path | None = None, api=(),
                 text_log=()):
        self.pid = os.getpid()
        self.text_log = set(text_log)  # nodes whose daemon logs text lines (`--log text`) instead of JSON
        self.hubs = list(hubs)
        self.api = list(api)
        self.api_addrs: dict[str, str] = {}
        self.root_links: list[str] = []
        self.spokes = list(spokes)
        self.dir = Path(workdir or tempfile.mkdtemp(prefix=f"dmvpnlab{self.pid}-"))
        self.namespaces: list[str] = []
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.started: dict[str, float] = {}

    # ---- names
    def ns(self, node: str) -> str:
        return f"dl{self.pid}{node}"

    def sock(self, node: str) -> Path:
        return self.dir / f"{node}.sock"

    # ---- building
    def __enter__(self) -> "Lab":
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _add_ns(self, node: str) -> None:
        ns = self.ns(node)
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        for conf in ("all", "default"):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{conf}.disable_ipv6=1")
        sh("ip", "-n", ns, "link", "set", "lo", "up")

    def _link(self, a: str, a_if: str, b: str, b_if: str) -> None:
        """A veth pair between nodes a and b, named a_if and b_if inside them."""
        self._n = getattr(self, "_n", 0) + 1
        ta, tb = f"va{self.pid % 100000}x{self._n}", f"vb{self.pid % 100000}x{self._n}"
        sh("ip", "link", "add", ta, "netns", self.ns(a), "type", "veth", "peer", "name", tb, "netns", self.ns(b))
        sh("ip", "-n", self.ns(a), "link", "set", ta, "name", a_if)
        sh("ip", "-n", self.ns(b), "link", "set", tb, "name", b_if)
        for node, ifname in ((a, a_if), (b, b_if)):
            sh("ip", "-n", self.ns(node), "link", "set", ifname, "up")
            # Kernel hosts must not leave checksums to an offload the DPDK side does not do.
            sh("ip", "netns", "exec", self.ns(node), "ethtool", "-K", ifname, "tx", "off", check=False)

    def _addr(self, node: str, ifname: str, addr: str) -> None:
        sh("ip", "-n", self.ns(node), "addr", "add", addr, "dev", ifname)

    def _route(self, node: str, *args: str) -> None:
        sh("ip", "-n", self.ns(node), "route", "add", *args)

    def build(self) -> None:
        for r in ("isp1", "isp2"):
            self._add_ns(r)
            sh("ip", "netns", "exec", self.ns(r), "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._link("isp1", "core", "isp2", "core")
        self._addr("isp1", "core", "172.16.0.1/30")
        self._addr("isp2", "core", "172.16.0.2/30")
        for i, hub in enumerate(("hub1", "hub2")):
            nbma, gw, _, _ = HUBS[hub]
            self._add_ns(hub)
            self._link(hub, "dp-wan", "isp1", f"h{i + 1}")
            self._addr("isp1", f"h{i + 1}", f"{gw}/24")
        self._add_ns("hlan")
        self._link("hub1", "dp-lan", "hlan", "eth0")
        self._add_ns("hlan2")  # hub2's LAN port needs a peer; nothing runs there
        self._link("hub2", "dp-lan", "hlan2", "eth0")
        self._addr("hlan", "eth0", "10.8.0.9/24")
        self._route("hlan", "default", "via", "10.8.0.1")
        for n, (nbma, gw, nat) in SPOKES.items():
            s = f"s{n}"
            self._add_ns(s)
            self._link(s, "dp-wan", "isp2", s)
            self._addr("isp2", s, f"{gw}/24")
            self._add_ns(f"h{n}")
            self._link(s, "dp-lan", f"h{n}", "eth0")
            self._addr(f"h{n}", "eth0", f"10.2.{n}.9/24")
            self._route(f"h{n}", "default", "via", f"10.2.{n}.1")
            if nat:
                self._route("isp1", "100.100.0.0/24", "via", "172.16.0.2")
            else:
                self._route("isp1", f"{nbma.rsplit('.', 1)[0]}.0/24", "via", "172.16.0.2")
        for hub in ("hub1", "hub2"):
            self._route("isp2", f"{HUBS[hub][0].rsplit('.', 1)[0]}.0/24", "via", "172.16.0.1")
        self.set_nat("100.100.0.1")
        if self.api:
            self._api_material()
        for i, node in enumerate(self.api):
            self._mgmt_link(node, i)
        for node in self.hubs:
            self.start(node)
        for n in self.spokes:
            self.start(f"s{n}")

    def _api_material(self) -> None:
        """A self-signed certificate for the API addresses (openssl) and the token file, one per role."""
        self.cert, self.key = self.dir / "api-cert.pem", self.dir / "api-key.pem"
        sans = ",".join(f"IP:{self._mgmt_addr(i)[1]}" for i in range(len(self.api)))
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-days", "2", "-subj", "/CN=dmvpnlab", "-addext", f"subjectAltName={sans}",
           "-keyout", str(self.key), "-out", str(self.cert))
        self.tokens = self.dir / "tokens.toml"
        self.tokens.write_text("".join(
            f'[[tokens]]\nname = "lab-{role}"\nrole = "{role}"\n'
            f'sha256 = "{hashlib.sha256(secret.encode()).hexdigest()}"\n\n' for role, secret in TOKENS.items()))

    def _mgmt_addr(self, i: int) -> tuple[str, str]:
        """The root namespace's and the node's address on the i-th management veth (a /30 of 169.254/16
        picked by the pid, so that parallel labs do not collide)."""
        n = (self.pid * 4 + i) % 16384
        net = f"169.254.{n // 64}"
        return f"{net}.{(n % 64) * 4 + 1}", f"{net}.{(n % 64) * 4 + 2}"

    def _mgmt_link(self, node: str, i: int) -> None:
        """A veth from the root namespace to `node`'s kernel (its management port): the API listens there."""
        outside, inside = self._mgmt_addr(i)
        ta, tb = f"vm{self.pid % 100000}x{i}", f"vn{self.pid % 100000}x{i}"
        sh("ip", "link", "add", ta, "type", "veth", "peer", "name", tb, "netns", self.ns(node))
        self.root_links.append(ta)
        sh("ip", "-n", self.ns(node), "link", "set", tb, "name", "mgmt")
        sh("ip", "addr", "add", f"{outside}/30", "dev", ta)
        sh("ip", "link", "set", ta, "up")
        sh("ip", "-n", self.ns(node), "addr", "add", f"{inside}/30", "dev", "mgmt")
        sh("ip", "-n", self.ns(node), "link", "set", "mgmt", "up")
        self.api_addrs[node] = inside

    def api_url(self, node: str) -> str:
        return f"https://{self.api_addrs[node]}:{API_PORT}"

    def set_nat(self, public: str) -> None:
        """isp2 source-NATs s3's link to `public`, and forgets the old mappings (an ISP renumbering)."""
        nft = f"""
            table ip lab {{
                chain post {{
                    type nat hook postrouting priority 100;
                    ip saddr 192.168.3.0/24 oifname != "s3" snat to {public}
                }}
            }}"""
        sh("ip", "netns", "exec", self.ns("isp2"), "nft", "delete", "table", "ip", "lab", check=False)
        subprocess.run(["ip", "netns", "exec", self.ns("isp2"), "nft", "-f", "-"], input=nft, text=True,
                       check=True, capture_output=True)
        sh("ip", "netns", "exec", self.ns("isp2"), "conntrack", "-F", check=False)

    def cut(self, a: str, b: str) -> None:
        """isp2 drops everything between spokes `a` and `b` (NBMA to NBMA, both ways): their direct path
        breaks while both still reach the hubs."""
        x, y = SPOKES[int(a[1:])][0], SPOKES[int(b[1:])][0]
        nft = f"""
            table ip labcut {{
                chain forward_cut {{
                    type filter hook forward priority 0;
                    ip saddr {x} ip daddr {y} drop
                    ip saddr {y} ip daddr {x} drop
                }}
            }}"""
        subprocess.run(["ip", "netns", "exec", self.ns("isp2"), "nft", "-f", "-"], input=nft, text=True,
                       check=True, capture_output=True)

    def heal(self) -> None:
        """Removes what `cut` put in."""
        sh("ip", "netns", "exec", self.ns("isp2"), "nft", "delete", "table", "ip", "labcut")

    # ---- daemons
    def config(self, node: str) -> str:
        if node in HUBS:
            nbma, gw, overlay, lan = HUBS[node]
            routes = "".join(SPOKE_ROUTE.format(n=n) for n in SPOKES)
            return HUB_CONF.format(name=node, nbma=nbma, gateway=gw, overlay=overlay, lan=lan, holdtime=HOLDTIME,
                                   dpd=DPD, spoke_routes=routes)
        n = int(node[1:])
        nbma, gw, _ = SPOKES[n]
        nhs = ", ".join(f'{{ address = "{HUBS[h][2]}", nbma = "{HUBS[h][0]}", priority = {i + 1}, cluster = {i} }}'
                        for i, h in enumerate(("hub1", "hub2")))
        return SPOKE_CONF.format(name=node, n=n, nbma=nbma, gateway=gw, nhs=nhs, holdtime=HOLDTIME, dpd=DPD)

    def start(self, node: str, wait: bool = True) -> None:
        conf = self.dir / f"{node}.toml"
        conf.write_text(self.config(node))
        log = self.dir / f"{node}.log"
        self.logs[node] = log
        out = open(log, "a")
        api = []
        if node in self.api_addrs:
            api = ["--api", f"{self.api_addrs[node]}:{API_PORT}", "--tokens", str(self.tokens),
                   "--tls-cert", str(self.cert), "--tls-key", str(self.key)]
        self.procs[node] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(node), str(TARGET / "dmvpnd"), "--config", str(conf),
             "--profile", str(PROFILE), "--socket", str(self.sock(node)),
             "--file-prefix", f"dmvpnlab{self.pid}{node}", *api,
             "--log", "text" if node in self.text_log else "json"], stdout=out, stderr=subprocess.STDOUT)
        self.started[node] = time.monotonic()
        if wait:
            deadline = time.monotonic() + 30
            while "dmvpnd: running" not in log.read_text():
                if self.procs[node].poll() is not None:
                    raise RuntimeError(f"{node}'s dmvpnd exited:\n{log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node}'s dmvpnd did not start in 30 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)

    def hup(self, node: str) -> None:
        """SIGHUP to one daemon (it re-reads its configuration file); `conf_path(node)` is that file."""
        self.procs[node].send_signal(signal.SIGHUP)

    def conf_path(self, node: str) -> Path:
        return self.dir / f"{node}.toml"

    def stop(self, node: str) -> int:
        """SIGTERM to one daemon; its exit status (0: clean stop, every mbuf back)."""
        p = self.procs.pop(node, None)
        if p is None:
            return 0
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return -9

    def close(self) -> None:
        for node in list(self.procs):
            self.stop(node)
        for link in self.root_links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        self.root_links.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()

    # ---- looking
    def status(self, node: str) -> dict:
        r = sh(str(TARGET / "dmvpnctl"), "--socket", str(self.sock(node)), "json")
        return json.loads(r.stdout)

    def show(self, node: str, *what: str) -> str:
        return sh(str(TARGET / "dmvpnctl"), "--socket", str(self.sock(node)), "show", *what).stdout

    def ping(self, src: str, dst: str, count: int = 1, timeout: float = 1.0, interval: float = 0.2) -> int:
        """Replies received for `count` pings from namespace node `src` to `dst`."""
        r = sh("ip", "netns", "exec", self.ns(src), "ping", "-n", "-q", "-c", str(count), "-i", str(interval),
               "-W", str(timeout), dst, check=False)
        for line in r.stdout.splitlines():
            if "received" in line:
                return int(line.split(",")[1].split()[0])
        return 0

    def wait(self, what, timeout: float, step: float = 0.2):
        """Polls `what()` until it returns something true; returns it and the seconds it took."""
        t0 = time.monotonic()
        while True:
            try:
                v = what()
            except RuntimeError:  # a daemon not (yet) answering on its status socket
                v = None
            if v:
                return v, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"not within {timeout} s")
            time.sleep(step)

    def registered(self, hub: str) -> set[str]:
        """Overlay addresses of the spokes registered with `hub` whose crypto is up."""
        st = self.status(hub)
        return {p["overlay"] for t in st["tunnels"] for p in t["peers"] if p["state"] == "UP"}

    def nhs_up(self, spoke: str) -> set[str]:
        st = self.status(spoke)
        return {n["address"] for t in st["tunnels"] for n in t["nhs"] if n["state"] == "up"}

    def shortcut(self, spoke: str, prefix: str) -> str | None:
        """The next hop of a shortcut route to `prefix` on `spoke`, if installed."""
        for t in self.status(spoke)["tunnels"]:
            for e in t["nhrp"]:
                if e["prefix"] == prefix and e.get("via"):
                    return e["via"]
        return None

    def tunnel_rx(self, node: str) -> int:
        """ESP packets the node decrypted (its workers' counter)."""
        return sum(w["esp_decrypted"] for w in self.status(node)["dataplane"]["workers"])

    def events(self, node: str, event: str) -> list[dict]:
        """The node's recent control-loop events of one kind (`peer_dead`, `shortcut_removed`, ...)."""
        return [e for e in self.status(node)["events"] if e["event"] == event]

    def redirects(self, hub: str) -> int:
        return self.status(hub)["counters"]["nhrp"]["traffic_indications"]


def demo() -> int:
    if os.geteuid() != 0:
        print("dmvpnlab: run as root (network namespaces)", file=sys.stderr)
        return 1
    with Lab(hubs=("hub1",)) as lab:
        print(f"== lab up in {lab.dir}: hub1, spokes s1 s2 s3 (s3 behind NAT), LAN hosts h1 h2 h3")
        _, t = lab.wait(lambda: lab.registered("hub1") >= {"10.0.0.11", "10.0.0.12"}, 60)
        print(f"== s1 and s2 registered and protected after {t:.1f} s; hub1# show dmvpn")
        print(lab.show("hub1", "dmvpn"))
        print("== h1 (10.2.1.9, behind s1) pings h2 (10.2.2.9, behind s2)")
        hub_esp = lab.tunnel_rx("hub1")
        t0 = time.monotonic()
        got = lab.ping("h1", "10.2.2.9", count=3, interval=0.2)
        print(f"   first 3 pings: {got}/3 replies (via the hub: hub1 decrypted "
              f"{lab.tunnel_rx('hub1') - hub_esp} ESP packets, sent {lab.redirects('hub1')} Traffic Indications)")
        via, _ = lab.wait(lambda: lab.shortcut("s1", "10.2.2.0/24"), 30)
        print(f"== Phase 3 shortcut on s1: 10.2.2.0/24 via {via}, {time.monotonic() - t0:.2f} s after the first ping")
        print("s1# show ip nhrp")
        print(lab.show("s1", "ip", "nhrp"))
        print("s1# show dmvpn")
        print(lab.show("s1", "dmvpn"))
        hub_esp = lab.tunnel_rx("hub1")
        got = lab.ping("h1", "10.2.2.9", count=10, interval=0.1)
        print(f"== 10 more pings: {got}/10 replies; hub1 decrypted {lab.tunnel_rx('hub1') - hub_esp} ESP packets "
              f"meanwhile (direct spoke to spoke: ~0)")
        # s3 behind NAT: the IKE engine refuses its transport-mode selectors (they name its private address;
        # RFC 7296 §2.23.1 asks the responder to substitute the observed one), so it stays unprotected.
        got = lab.ping("h3", "10.2.1.9", count=2)
        print(f"== h3 (behind NAT) pings h1: {got}/2 replies")
        print("== tearing down")
        rcs = {n: lab.stop(n) for n in list(lab.procs)}
        print(f"   daemons stopped: {rcs}")
    print("== done, namespaces removed")
    return 0


if __name__ == "__main__":
    sys.exit(demo())
