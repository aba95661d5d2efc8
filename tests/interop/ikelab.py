"""IKEv2 interop lab: strongSwan's charon in one network namespace, our engine (`ike-peer`) in another,
joined by a veth pair. Everything is named after the test's pid and removed in `close()`.

What works with Debian's strongSwan 5.9.8 on a kernel without ESP (see TEST-PEERS.md):
- charon needs a mount namespace of its own (its pid file path is fixed): `unshare -m` with a tmpfs
  on /run.
- kernel-netlink cannot install ESP SAs here, so charon uses kernel-libipsec (userspace ESP over a
  TUN device). libipsec has no transport mode: charon is configured with `mode = tunnel`, and our
  engine, asked for transport mode by default, accepts tunnel mode when the peer does not agree to
  transport (RFC 7296 §1.3.1). With `mode = transport` charon negotiates, derives and logs the keys
  but then fails to install the SA (`test_transport_mode_is_negotiated_and_keyed`).
- charon logs CHILD SA key material at `chd = 4`; `charon_child_keys` reads it from the log.
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHARON = "/usr/lib/ipsec/charon"
PSK = "interop-secret-0123456789"
US, THEM = "10.231.0.1", "10.231.0.2"


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


def ike_peer_binary() -> Path:
    if os.environ.get("IKE_PEER"):
        return Path(os.environ["IKE_PEER"])
    sh("cargo", "build", "--release", "-q", "-p", "perf", "--bin", "ike-peer", cwd=ROOT)
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/ike-peer"


class Lab:
    """Two namespaces (ours, charon's) over a veth pair; charon started with a config of the test's."""

    def __init__(self):
        pid = os.getpid()
        self.ns_us, self.ns_them = f"ikeu{pid}", f"ikec{pid}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"ikelab{pid}-"))
        self.charon = None
        self.peers = []
        sh("ip", "netns", "add", self.ns_us)
        sh("ip", "netns", "add", self.ns_them)
        a, b = f"iu{pid}", f"ic{pid}"
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", self.ns_us)
        sh("ip", "link", "set", b, "netns", self.ns_them)
        for ns, dev, addr in ((self.ns_us, a, US), (self.ns_them, b, THEM)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    # ---- charon ----

    def start_charon(self, conns: str, mode_plugins="kernel-libipsec kernel-netlink", settings="", log_level=4,
                     private_keys=()):
        """Starts charon with `conns` (the `connections { }` body of swanctl.conf) and loads it.
        `settings` goes into strongswan.conf's `charon { }` section; `log_level` is that of `ike` and
        `chd` (4 logs key material; the benchmark runs with 0); `private_keys` (paths) are copied to the
        `private/` folder of the lab's swanctl directory (`SWANCTL_DIR`), whence swanctl loads them."""
        if private_keys:
            (self.dir / "private").mkdir(exist_ok=True)
            for k in private_keys:
                shutil.copy(k, self.dir / "private")
        vici = self.dir / "charon.vici"
        (self.dir / "strongswan.conf").write_text(f"""
charon {{
  load_modular = no
  load = random nonce openssl aes sha1 sha2 hmac kdf gcm gmp curve25519 pem pkcs1 pkcs8 pubkey x509 constraints revocation \
{mode_plugins} socket-default vici
  install_routes = no
  retransmit_timeout = 1
  retransmit_tries = 3
  {settings}
  filelog {{
    log {{
      path = {self.dir}/charon.log
      default = {min(1, log_level)}
      ike = {log_level}
      chd = {log_level}
      cfg = {min(2, log_level)}
      knl = {min(2, log_level)}
      flush_line = yes
    }}
  }}
  plugins {{
    vici {{ socket = unix://{vici} }}
    kernel-libipsec {{ allow_peer_ts = yes }}
    kernel-netlink {{ fwmark = !0x42 }}
    socket-default {{ fwmark = 0x42 }}
  }}
}}
""")
        (self.dir / "swanctl.conf").write_text(f"""
connections {{
{conns}
}}
secrets {{
  ike-all {{ secret = "{PSK}" }}
}}
""")
        env = dict(os.environ, STRONGSWAN_CONF=str(self.dir / "strongswan.conf"))
        self.charon = subprocess.Popen(
            ["ip", "netns", "exec", self.ns_them, "unshare", "-m", "--propagation", "private", "sh", "-c",
             f"mount -t tmpfs tmpfs /run && exec {CHARON}"],
            env=env, stdout=open(self.dir / "charon.out", "w"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not vici.exists():
            if time.time() > deadline or self.charon.poll() is not None:
                raise RuntimeError(f"charon did not start: {(self.dir / 'charon.out').read_text()}")
            time.sleep(0.05)
        self.swanctl("--load-all", "--file", str(self.dir / "swanctl.conf"))

    def swanctl(self, *args, check=True):
        return sh("ip", "netns", "exec", self.ns_them, "swanctl", *args, "--uri",
                  f"unix://{self.dir}/charon.vici", check=check, env=dict(os.environ, SWANCTL_DIR=str(self.dir)))

    def charon_log(self) -> str:
        p = self.dir / "charon.log"
        return p.read_text() if p.exists() else ""

    def wait_log(self, pattern: str, timeout=10.0) -> re.Match:
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.charon_log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"charon log never matched {pattern!r}:\n{self.charon_log()[-3000:]}")

    def cut(self, cut: bool):
        """Drops (or again lets through) every UDP datagram arriving in either namespace (nft, input
        hook, so that senders see no error): both sides' requests are lost until the link heals."""
        for ns in (self.ns_us, self.ns_them):
            if cut:
                sh("ip", "netns", "exec", ns, "nft", "add table inet ikecut; add chain inet ikecut in "
                   "{ type filter hook input priority 0; }; add rule inet ikecut in meta l4proto udp drop")
            else:
                sh("ip", "netns", "exec", ns, "nft", "delete table inet ikecut")

    # ---- our side ----

    def start_peer(self, *args) -> "Peer":
        p = Peer(self, ike_peer_binary(), list(args))
        self.peers.append(p)
        return p

    def close(self):
        for p in self.peers:
            p.stop()
        if self.charon and self.charon.poll() is None:
            self.charon.terminate()
            try:
                self.charon.wait(5)
            except subprocess.TimeoutExpired:
                self.charon.kill()
        sh("ip", "netns", "del", self.ns_us, check=False)
        sh("ip", "netns", "del", self.ns_them, check=False)
        if os.environ.get("IKELAB_KEEP"):
            print(f"ikelab: kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def openssl_pki(d: Path, leaves: dict, revoked=()) -> Path:
    """A CA (ECDSA P-256, `CN=Interop CA`) and its end-entity certificates, made with the openssl
    command: `leaves` maps a name to (key: "rsa" or a curve such as "P-256", subjectAltName such as
    "DNS:hub.example"); each gets `NAME.pem` and `NAME.key` (PKCS #8) in `d`, valid for two days.
    The names in `revoked` are revoked and listed in `crl.pem` (`openssl ca`). Returns `d`."""
    d.mkdir(parents=True, exist_ok=True)
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", d / "ca.key", "-out", d / "ca.pem", "-subj", "/CN=Interop CA", "-days", "2",
       "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for serial, (name, (key, san)) in enumerate(leaves.items(), start=100):
        newkey = ["-newkey", "rsa:2048"] if key == "rsa" else ["-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{key}"]
        sh("openssl", "req", "-new", *newkey, "-nodes", "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr",
           "-subj", f"/O=DMVPN interop/CN={name}")
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
        sh("openssl", "x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
           "-set_serial", str(serial), "-days", "2", "-extfile", d / f"{name}.ext", "-out", d / f"{name}.pem")
    if revoked:
        (d / "index.txt").write_text("")
        (d / "crlnumber").write_text("01\n")
        (d / "ca.cnf").write_text(f"""[ca]
default_ca = ca_default
[ca_default]
database = {d}/index.txt
crlnumber = {d}/crlnumber
default_md = sha256
default_crl_days = 2
""")
        ca = ["-config", d / "ca.cnf", "-cert", d / "ca.pem", "-keyfile", d / "ca.key"]
        for name in revoked:
            sh("openssl", "ca", *ca, "-revoke", d / f"{name}.pem")
        sh("openssl", "ca", *ca, "-gencrl", "-out", d / "crl.pem")
    return d


class Peer:
    """`ike-peer` in our namespace; its JSON events are read from its stdout."""

    def __init__(self, lab: Lab, binary: Path, args):
        self.out = lab.dir / f"peer{len(lab.peers)}.jsonl"
        self.err = lab.dir / f"peer{len(lab.peers)}.err"
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.ns_us, str(binary), *args],
                                     stdout=open(self.out, "w"), stderr=open(self.err, "w"))

    def events(self):
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def wait_event(self, kind: str, timeout=10.0, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            evs = [e for e in self.events() if e["event"] == kind]
            if len(evs) >= count:
                return evs[count - 1]
            if self.proc.poll() is not None and self.proc.returncode != 0:
                break
            time.sleep(0.05)
        raise AssertionError(f"ike-peer never reported {kind}: {self.events()}\n{self.err.read_text()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def hexdump_after(log: str, label: str) -> list:
    """Every chunk charon printed with `label %B`: the `=> N bytes @ 0x…` line, then hex dump lines
    `   0: 6B 7A …  ascii`. Returns the chunks as lowercase hex strings, in log order."""
    lines = log.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = re.search(re.escape(label) + r" => (\d+) bytes @", line)
        if not m:
            continue
        n = int(m.group(1))
        data = ""
        for dump in lines[i + 1:]:
            d = re.search(r"\s+\d+: ((?:[0-9A-F]{2} ){1,16})", dump)
            if not d or len(data) >= 2 * n:
                break
            data += d.group(1).replace(" ", "").lower()
        out.append(data[:2 * n])
    return out


def charon_child_keys(log: str) -> list:
    """The CHILD SAs charon derived (RFC 7296 §2.17), in order: {encr_i, encr_r, integ_i, integ_r}, where
    the encryption keys of AES-GCM include the 4-octet salt (strongSwan's keymat layout)."""
    ei = hexdump_after(log, "encryption initiator key")
    er = hexdump_after(log, "encryption responder key")
    ii = hexdump_after(log, "integrity initiator key")
    ir = hexdump_after(log, "integrity responder key")
    return [{"encr_i": a, "encr_r": b, "integ_i": c, "integ_r": d}
            for a, b, c, d in zip(ei, er, ii or [""] * len(ei), ir or [""] * len(ei))]
