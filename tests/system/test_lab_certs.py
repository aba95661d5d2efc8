"""The namespace lab (lab/dmvpnlab.py) with certificate authentication instead of pre-shared keys: every
dmvpnd has its own certificate (made by `openssl` from one CA, subjectAltName `NODE.dmvpn.example`),
its IKE profile says `authentication = { local = "signature", remote = "signature" }` with the
certificate, key and CA files, and no keyring exists, so every IKE SA (spoke to hub, and the Phase 3
spoke-to-spoke shortcut) is authenticated by RFC 7427 signatures checked against the CA.

Needs root, iproute2, nftables, openssl and the release binaries (built once here, or
$DMVPND_PREBUILT=1).
"""
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "lab"))
sys.path.insert(0, str(ROOT / "tests/interop"))
from dmvpnlab import Lab, build_binaries  # noqa: E402
from ikelab import openssl_pki  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("openssl") is None,
    reason="needs root, iproute2 and openssl")
SPOKES = {"10.0.0.11", "10.0.0.12"}


class CertLab(Lab):
    """The lab, each node authenticating with its certificate."""

    def build(self) -> None:
        nodes = [*self.hubs, *(f"s{n}" for n in self.spokes)]
        # ECDSA P-256 for the hubs, RSA for spoke 1, P-384 for spoke 2: every pairing signs differently.
        keys = {"s1": "rsa", "s2": "P-384"}
        self.pki = openssl_pki(self.dir / "pki", {n: (keys.get(n, "P-256"), f"DNS:{n}.dmvpn.example") for n in nodes})
        super().build()

    def config(self, node: str) -> str:
        text = super().config(node)
        text = re.sub(r"\[\[crypto\.keyrings\]\]\nname = \"\w+\"\npeers = \[.*\]\n\n", "", text)
        text = re.sub(r"keyring = \"\w+\"\n", "", text)
        pki = self.pki
        return text.replace(
            'authentication = { local = "pre-share", remote = "pre-share" }',
            'authentication = { local = "signature", remote = "signature" }\n'
            f'local_identity = "{node}.dmvpn.example"\n'
            f'certificate = {{ cert = "{pki}/{node}.pem", key = "{pki}/{node}.key", ca = ["{pki}/ca.pem"] }}')


@pytest.fixture(scope="module")
def lab():
    build_binaries()
    with CertLab(hubs=("hub1", "hub2"), spokes=(1, 2)) as lab:
        yield lab


def test_registration_and_shortcut_over_certificate_authenticated_sas(lab):
    conf = (lab.dir / "s1.toml").read_text()
    assert "keyring" not in conf and 'local = "signature"' in conf, conf
    _, t = lab.wait(lambda: lab.registered("hub1") >= SPOKES and lab.registered("hub2") >= SPOKES, 90)
    print(f"\nregistration with both hubs over certificate-authenticated SAs: {t:.2f} s")
    ups = lab.events("hub1", "ike_sa_up")
    assert len(ups) >= 2, ups
    assert lab.ping("h1", "10.8.0.9", count=3) >= 2, "spoke LAN to hub LAN"
    # Phase 3: the spokes' own IKE SA (RSA against ECDSA P-384) carries the shortcut.
    t0 = time.monotonic()
    assert lab.ping("h2", "10.2.1.9", count=3, interval=0.2) >= 1, "first packets through the hub"
    via, _ = lab.wait(lambda: lab.shortcut("s2", "10.2.1.0/24"), 30, step=0.05)
    print(f"shortcut s2 -> 10.2.1.0/24 {time.monotonic() - t0:.2f} s after the first packet")
    assert via == "10.0.0.11"
    assert [e for e in lab.events("s2", "ike_sa_up") if "203.0.113.10" in str(e)], lab.events("s2", "ike_sa_up")
