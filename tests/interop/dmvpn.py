"""Shared harness of the interop suite: the test hub's topology and config, the SA parameter sets, Scapy
packet builders, running `dp-replay`, and tshark as the dissector of record.

Independent oracles: Scapy's `SecurityAssociation` encrypts what the hub receives and decrypts what it
sends; tshark decrypts the hub's output with the same keys (its `esp_sa` UAT) and reports any malformed
packet or bad checksum. Nothing here uses the code under test except through the replay tool.

Topology (one hub, two ports, one mGRE tunnel):

    spoke A 198.51.100.11 (overlay 10.0.0.11, LAN 10.1.0.0/16) ─┐               ┌─ LAN 10.8.0.0/24
    spoke B 198.51.100.12 (overlay 10.0.0.12, LAN 10.2.0.0/16) ─┤ WAN  hub  LAN ├─ host 10.8.0.9
                                       gateway 192.0.2.254 ─────┘ .1 tun1 .1   └─
                                                              10.0.0.1/24, key 100, vrf 1
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from scapy.all import ARP, GRE, ICMP, IP, TCP, UDP, Ether, Packet, PcapWriter, Raw, rdpcap
from scapy.layers.ipsec import ESP, SecurityAssociation

ROOT = Path(__file__).resolve().parents[2]

WAN, LAN = 0, 1
TUNNEL = 1
GRE_KEY = 100
HUB_WAN_MAC, HUB_WAN_IP = "02:00:00:00:00:01", "192.0.2.1"
GW_MAC, GW_IP = "02:00:00:00:00:fe", "192.0.2.254"
HUB_LAN_MAC, HUB_LAN_IP = "02:00:00:00:01:01", "10.8.0.1"
LAN_HOST_MAC, LAN_HOST_IP = "02:00:00:00:01:09", "10.8.0.9"
HUB_TUNNEL_IP = "10.0.0.1"
TUNNEL_MTU, TCP_MSS = 1400, 1360
NATT_PEER_PORT = 31337  # the spoke sits behind a NAT that rewrote its port 4500 to this
T0 = Decimal(1_700_000_000)  # capture time of the first packet fed to the hub

PUNT_KINDS = {"nhrp", "ike", "redirect", "teib_miss", "arp", "nd", "neighbor_miss"}
SA_EVENTS = {"soft_packets", "hard_packets", "soft_bytes", "hard_bytes", "seq_near_exhaustion",
             "seq_exhausted", "used"}


def drop_reasons() -> list[str]:
    """The drop reason names, read from the one list in dataplane/src/drop.rs."""
    text = (ROOT / "dataplane/src/drop.rs").read_text()
    return re.findall(r'^\s*[A-Z]\w* = "([a-z0-9_]+)",$', text, re.M)


@dataclass(frozen=True)
class Spoke:
    name: str
    overlay: str
    nbma: str
    network: str
    host: str  # an address in `network`
    sa_in: int  # SA index and SPI of spoke → hub
    spi_in: int
    sa_out: int  # SA index and SPI of hub → spoke
    spi_out: int


SPOKE_A = Spoke("a", "10.0.0.11", "198.51.100.11", "10.1.0.0/16", "10.1.0.5", 1, 0x1011, 2, 0x2011)
SPOKE_B = Spoke("b", "10.0.0.12", "198.51.100.12", "10.2.0.0/16", "10.2.0.7", 3, 0x1012, 4, 0x2012)
# Has SAs (IKE finished) but no TEIB entry yet: it has not registered.
SPOKE_C = Spoke("c", "10.0.0.13", "198.51.100.13", "10.3.0.0/16", "10.3.0.5", 5, 0x1013, 6, 0x2013)


@dataclass(frozen=True)
class Suite:
    """A cipher suite, as named by the config, Scapy and tshark."""
    name: str
    cipher: str
    enc_key_len: int  # for GCM: the key followed by the 4-byte salt (RFC 4106 §8.1)
    integrity: str | None
    auth_key_len: int
    scapy_crypt: str
    scapy_auth: str
    tshark_enc: str
    tshark_auth: str


SUITES = [
    Suite("gcm128", "aes-gcm-128", 20, None, 0, "AES-GCM", "NULL",
          "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    Suite("gcm256", "aes-gcm-256", 36, None, 0, "AES-GCM", "NULL",
          "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    Suite("cbc128-sha1", "aes-cbc-128", 16, "hmac-sha1-96", 20, "AES-CBC", "HMAC-SHA1-96",
          "AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]"),
    Suite("cbc256-sha256", "aes-cbc-256", 32, "hmac-sha256-128", 32, "AES-CBC", "SHA2-256-128",
          "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"),
]
GCM128 = SUITES[0]


@dataclass(frozen=True)
class SaParams:
    """How every SA of a test hub is set up."""
    suite: Suite = GCM128
    esn: bool = False
    natt: bool = False
    mode: str = "transport"

    def __str__(self) -> str:
        return "-".join([self.suite.name, "esn" if self.esn else "32bit", "natt" if self.natt else "esp",
                         self.mode])


PARAMS = [SaParams(s, esn, natt, mode) for s in SUITES for esn in (False, True)
          for natt in (False, True) for mode in ("transport", "tunnel")]
# One variation at a time from the default, for tests where the full product adds nothing.
PARAMS_SMALL = [SaParams(s) for s in SUITES] + [SaParams(esn=True), SaParams(natt=True),
                                                 SaParams(mode="tunnel")]


def _key(label: str, length: int) -> bytes:
    """A fixed key per SA, so that a failure reproduces."""
    out = b""
    while len(out) < length:
        out += hashlib.sha256(f"{label}/{len(out)}".encode()).digest()
    return out[:length]


@dataclass
class Sa:
    """One SA of the hub: its config entry and the Scapy SA of the spoke's side."""
    index: int
    spi: int
    direction: str  # "in": spoke → hub; "out": hub → spoke
    spoke: Spoke
    params: SaParams
    seq_start: int = 0
    replay_window: int = 64
    lifetime: dict | None = None

    @property
    def enc_key(self) -> bytes:
        return _key(f"enc/{self.spi}/{self.params.suite.name}", self.params.suite.enc_key_len)

    @property
    def auth_key(self) -> bytes | None:
        n = self.params.suite.auth_key_len
        return _key(f"auth/{self.spi}/{self.params.suite.name}", n) if n else None

    @property
    def src(self) -> str:
        return self.spoke.nbma if self.direction == "in" else HUB_WAN_IP

    @property
    def dst(self) -> str:
        return HUB_WAN_IP if self.direction == "in" else self.spoke.nbma

    def config(self) -> dict:
        p = self.params
        return {
            "index": self.index, "spi": self.spi, "direction": self.direction, "mode": p.mode,
            "cipher": p.suite.cipher, "integrity": p.suite.integrity, "enc_key": self.enc_key.hex(),
            "auth_key": self.auth_key.hex() if self.auth_key else None, "esn": p.esn,
            "replay_window": self.replay_window, "tunnel": TUNNEL, "local": HUB_WAN_IP,
            "peer": self.spoke.nbma,
            "natt": {"local_port": 4500, "peer_port": NATT_PEER_PORT} if p.natt else None,
            "seq_start": self.seq_start, "lifetime": self.lifetime,
        }

    def scapy(self, seq_num: int = 1, esn_high: int = 0) -> SecurityAssociation:
        """Scapy's view of this SA (the spoke's end of it)."""
        p = self.params
        kwargs = {}
        if p.natt:
            ports = (NATT_PEER_PORT, 4500) if self.direction == "in" else (4500, NATT_PEER_PORT)
            kwargs["nat_t_header"] = UDP(sport=ports[0], dport=ports[1])
        if p.mode == "tunnel":
            kwargs["tunnel_header"] = IP(src=self.src, dst=self.dst)
        return SecurityAssociation(
            ESP, spi=self.spi, seq_num=seq_num, crypt_algo=p.suite.scapy_crypt, crypt_key=self.enc_key,
            auth_algo=p.suite.scapy_auth, auth_key=self.auth_key, esn_en=p.esn, esn=esn_high, **kwargs)

    def tshark_uat(self) -> str:
        s = self.params.suite
        auth = f"0x{self.auth_key.hex()}" if self.auth_key else ""
        return (f'"IPv4","{self.src}","{self.dst}","0x{self.spi:08x}","{s.tshark_enc}",'
                f'"0x{self.enc_key.hex()}","{s.tshark_auth}","{auth}"')


@dataclass
class Hub:
    """The hub under test: its config, and builders for what the spokes and the LAN send it."""
    params: SaParams = field(default_factory=SaParams)
    tunnel_mtu: int = TUNNEL_MTU
    tcp_mss: int | None = TCP_MSS
    teib: tuple[Spoke, ...] = (SPOKE_A, SPOKE_B)
    neighbors: bool = True  # the LAN host's and the gateway's MACs are known
    lan_mtu: int = 1500
    gre_key: int | None = GRE_KEY  # `tunnel key`; None: GRE without a key
    sas: dict[int, Sa] = field(default_factory=dict)

    def __post_init__(self):
        for spoke in (SPOKE_A, SPOKE_B, SPOKE_C):
            self.sas[spoke.sa_in] = Sa(spoke.sa_in, spoke.spi_in, "in", spoke, self.params)
            self.sas[spoke.sa_out] = Sa(spoke.sa_out, spoke.spi_out, "out", spoke, self.params)

    def sa_in(self, spoke: Spoke) -> Sa:
        return self.sas[spoke.sa_in]

    def sa_out(self, spoke: Spoke) -> Sa:
        return self.sas[spoke.sa_out]

    def config(self) -> dict:
        routes = [{"vrf": 0, "prefix": "0.0.0.0/0", "via": {"port": WAN, "gateway": GW_IP}},
                  {"vrf": 1, "prefix": "10.9.9.0/24", "via": "drop"}]
        routes += [{"vrf": 1, "prefix": s.network, "via": {"tunnel": TUNNEL, "peer": s.overlay}}
                   for s in (SPOKE_A, SPOKE_B, SPOKE_C)]
        neighbors = [{"port": WAN, "ip": GW_IP, "mac": GW_MAC},
                     {"port": LAN, "ip": LAN_HOST_IP, "mac": LAN_HOST_MAC}] if self.neighbors else []
        return {
            "ports": [
                {"id": WAN, "name": "wan", "mac": HUB_WAN_MAC, "vrf": 0, "addresses": [f"{HUB_WAN_IP}/24"],
                 "mtu": 1500},
                {"id": LAN, "name": "lan", "mac": HUB_LAN_MAC, "vrf": 1, "addresses": [f"{HUB_LAN_IP}/24"],
                 "mtu": self.lan_mtu},
            ],
            "neighbors": neighbors,
            "routes": routes,
            "tunnels": [{"id": TUNNEL, "source": HUB_WAN_IP, "key": self.gre_key, "fvrf": 0, "vrf": 1,
                         "address": f"{HUB_TUNNEL_IP}/24", "mtu": self.tunnel_mtu, "tcp_mss": self.tcp_mss,
                         "protection": True, "redirect": True}],
            "teib": [{"tunnel": TUNNEL, "overlay": s.overlay, "nbma": s.nbma, "sa_out": s.sa_out}
                     for s in self.teib],
            "sas": [sa.config() for sa in self.sas.values()],
        }

    # --- what arrives at the hub ---

    def esp_from(self, spoke: Spoke, inner: Packet, seq: int = 1, key: int | None = None, proto: int = 0x0800,
                 sa: Sa | None = None, tos: int = 0) -> Ether:
        """A frame on the WAN port: `inner` in GRE (key, protocol) in ESP from `spoke`, sequence `seq`.
        The key is the tunnel's unless given."""
        sa = sa or self.sa_in(spoke)
        key = self.gre_key if key is None else key
        gre = GRE(key_present=1, key=key, proto=proto) if key is not None else GRE(proto=proto)
        outer = IP(src=spoke.nbma, dst=HUB_WAN_IP, tos=tos) / gre / inner
        esp = sa.scapy(esn_high=seq >> 32).encrypt(outer, seq_num=seq & 0xFFFFFFFF)
        if sa.params.mode == "tunnel":
            esp[IP].tos = tos
        return Ether(src=GW_MAC, dst=HUB_WAN_MAC) / esp

    @staticmethod
    def from_lan(inner: Packet) -> Ether:
        """A frame the LAN host sends to the hub (its default gateway)."""
        return Ether(src=LAN_HOST_MAC, dst=HUB_LAN_MAC) / inner

    @staticmethod
    def from_wan(packet: Packet) -> Ether:
        """A frame the WAN gateway delivers to the hub."""
        return Ether(src=GW_MAC, dst=HUB_WAN_MAC) / packet

    # --- what leaves the hub ---

    def decrypt_to(self, spoke: Spoke, frame: Ether, seq: int | None = None) -> IP:
        """Checks the outer headers of an ESP frame the hub sent to `spoke` and returns what Scapy
        decrypts: IP(hub → spoke)/GRE/... in both modes. `seq` (64-bit with ESN) is checked if given."""
        sa = self.sa_out(spoke)
        assert frame[Ether].src == HUB_WAN_MAC and frame[Ether].dst == GW_MAC, frame.summary()
        ip = frame[IP]
        assert (ip.src, ip.dst) == (HUB_WAN_IP, spoke.nbma), ip.summary()
        assert_checksums(ip)
        if sa.params.natt:
            assert ip.proto == 17 and UDP in ip, ip.summary()
            assert (ip[UDP].sport, ip[UDP].dport) == (4500, NATT_PEER_PORT)
            esp = ESP(bytes(ip[UDP].payload))
        else:
            assert ip.proto == 50, ip.summary()
            esp = ESP(bytes(ip.payload))
        assert esp.spi == sa.spi, f"SPI {esp.spi:#x}, expected {sa.spi:#x}"
        if seq is not None:
            assert esp.seq == seq & 0xFFFFFFFF, f"ESP sequence {esp.seq}, expected low bits of {seq}"
        high = (seq or 0) >> 32
        plain = sa.scapy(esn_high=high).decrypt(ip.copy())
        if sa.params.mode == "tunnel":
            assert (plain[IP].src, plain[IP].dst) == (HUB_WAN_IP, spoke.nbma), plain.summary()
        assert GRE in plain, plain.summary()
        if self.gre_key is None:
            assert not plain[GRE].key_present, plain.summary()
        else:
            assert plain[GRE].key_present and plain[GRE].key == self.gre_key, plain.summary()
        return plain


def inner_of(plain: IP) -> IP:
    """The overlay packet inside a decrypted IP/GRE packet."""
    assert plain[GRE].proto == 0x0800, plain[GRE].summary()
    return IP(bytes(plain[GRE].payload))


def assert_checksums(pkt: Packet) -> None:
    """Every IPv4, ICMP, TCP and UDP checksum in `pkt` (outermost of each) is what Scapy computes."""
    fresh = pkt.copy()
    layers = [layer for layer in (IP, ICMP, TCP, UDP) if layer in fresh]
    for layer in layers:
        del fresh[layer].chksum
    fresh = fresh.__class__(bytes(fresh))
    for layer in layers:
        got = pkt[layer].chksum
        if layer is UDP and got == 0:
            continue  # no checksum: allowed over IPv4 (RFC 768)
        assert got == fresh[layer].chksum, (
            f"{layer.__name__} checksum {got:#06x}, Scapy computes {fresh[layer].chksum:#06x}: {pkt.summary()}")


# --- running the replay tool ---

@dataclass
class Result:
    out: Path
    tx: dict[int, list[Ether]]
    punts: list[dict]
    counters: dict

    @property
    def drops(self) -> dict[str, int]:
        """The drop counters that are not zero."""
        return {k: v for k, v in self.counters["drops"].items() if v}

    def punts_of(self, kind: str) -> list[dict]:
        return [p for p in self.punts if p["kind"] == kind]


def replay(tool: Path, workdir: Path, hub: Hub, rx: list[tuple[int, Packet]], burst: int | None = None,
           dissect: bool = True, spacing: Decimal = Decimal("0.001"), args: tuple[str, ...] = ()) -> Result:
    """Feeds `rx` (port, frame) in this order, `spacing` seconds apart, through the hub and reads back
    what it sent, punted and counted. Checks the output against the tool's contract, and unless told
    otherwise that tshark finds no malformed packet and no bad checksum in what the hub sent."""
    n = len(list(workdir.glob("run*")))
    run = workdir / f"run{n}"
    out = run / "out"
    out.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(hub.config(), indent=1))
    writers = {}
    for i, (port, frame) in enumerate(rx):
        if port not in writers:
            writers[port] = PcapWriter(str(run / f"rx-{port}.pcap"), linktype=1, sync=True)
        frame = frame.copy()
        frame.time = T0 + i * spacing
        writers[port].write(frame)
    for w in writers.values():
        w.close()
    cmd = [str(tool), "--config", str(run / "config.json"), "--out", str(out)]
    for port in writers:
        cmd += ["--rx", f"{port}:{run / f'rx-{port}.pcap'}"]
    if burst is not None:
        cmd += ["--burst", str(burst)]
    cmd += list(args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}"

    config = hub.config()
    tx = {}
    for port in config["ports"]:
        path = out / f"tx-{port['id']}.pcap"
        assert path.exists(), f"dp-replay wrote no {path.name}"
        tx[port["id"]] = [Ether(bytes(p)) for p in rdpcap(str(path))]
        if dissect and tx[port["id"]]:
            errors = tshark_errors(path, hub)
            assert not errors, f"tshark finds errors in {path}: {errors}"
    punts = [json.loads(line) for line in (out / "punts.jsonl").read_text().splitlines() if line.strip()]
    for p in punts:
        assert set(p) == {"kind", "port", "tunnel", "sa", "src", "dst", "data"}, p
        assert p["kind"] in PUNT_KINDS, p
        bytes.fromhex(p["data"])
    counters = json.loads((out / "counters.json").read_text())
    assert sorted(counters["drops"]) == sorted(drop_reasons()), "counters.json must list every drop reason"
    sas = {sa["index"] for sa in config["sas"]}
    for e in counters["sa_events"]:
        assert e["event"] in SA_EVENTS and e["sa"] in sas, e
    assert counters["rx_packets"] == len(rx), counters
    return Result(out, tx, punts, counters)


# --- tshark, the dissector of record ---

ERROR_FILTER = "_ws.expert.severity == error || _ws.expert.group == checksum || _ws.malformed"


def tshark(pcap: Path, hub: Hub | None, *args: str) -> str:
    """Runs tshark on `pcap` with every SA of `hub` in its ESP table and checksum validation on."""
    cmd = ["tshark", "-n", "-r", str(pcap), "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
           "-o", "tcp.check_checksum:TRUE", "-o", "esp.enable_encryption_decode:TRUE",
           "-o", "esp.enable_authentication_check:TRUE"]
    for sa in (hub.sas.values() if hub else []):
        cmd += ["-o", f"uat:esp_sa:{sa.tshark_uat()}"]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"tshark failed: {proc.stderr}"
    return proc.stdout


def tshark_fields(pcap: Path, hub: Hub | None, *fields: str) -> list[dict[str, str]]:
    """One dict per frame: field name → value (tshark's text; repeated fields joined by ',')."""
    args = ["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]
    for f in fields:
        args += ["-e", f]
    return [dict(zip(fields, line.split("\t"))) for line in tshark(pcap, hub, *args).splitlines()]


def tshark_errors(pcap: Path, hub: Hub | None) -> list[str]:
    """Frames that tshark finds malformed or with a bad checksum, with its expert messages."""
    out = tshark(pcap, hub, "-Y", ERROR_FILTER, "-T", "fields", "-e", "frame.number", "-e", "_ws.expert.message")
    return [line.replace("\t", ": ", 1) for line in out.splitlines()]
