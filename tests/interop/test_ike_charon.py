"""IKEv2 interop with strongSwan's charon (Debian 5.9.8): our engine (`ike-peer`) as responder to charon
and as initiator to charon, PSK, AES-GCM and AES-CBC, and the CHILD SA keys both sides derived are
compared (charon logs its KEYMAT at `chd = 4`). How charon runs here is in `ikelab.py`.

charon uses kernel-libipsec, which takes only tunnel mode, UDP encapsulation and no ESN: so its
connections say `mode = tunnel`, `encap = yes` (it then fakes NAT detection and both sides move to
port 4500, RFC 7296 §2.23) and `noesn`. Transport mode is negotiated by charon but cannot be installed
by it; `test_transport_mode_is_negotiated_and_keyed` shows the negotiation and the keys."""
import os
import re
import shutil

import pytest

import ikelab

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(ikelab.CHARON) or not shutil.which("swanctl"),
    reason="needs root and strongSwan (scripts/install-deps.sh)")


@pytest.fixture
def lab():
    lab = ikelab.Lab()
    try:
        yield lab
    finally:
        lab.close()


def conn(ike: str, esp: str, mode="tunnel", name="hub", extra=""):
    """One charon connection `name` to our peer with CHILD SA `gre` (GRE between the two endpoints)."""
    return f"""
  {name} {{
    version = 2
    encap = yes
    local_addrs = {ikelab.THEM}
    remote_addrs = {ikelab.US}
    proposals = {ike}
    {extra}
    local {{
      auth = psk
      id = spoke
    }}
    remote {{
      auth = psk
      id = hub
    }}
    children {{
      gre {{
        local_ts = dynamic[gre]
        remote_ts = dynamic[gre]
        mode = {mode}
        esp_proposals = {esp}
      }}
    }}
  }}"""


def assert_same_keys(lab, pair, we_initiated: bool):
    """Our SA pair's keys are the ones charon logged: the initiator→responder direction is charon's
    'initiator' key (RFC 7296 §2.17), and charon's AES-GCM keys carry the salt at their end."""
    keys = ikelab.charon_child_keys(lab.charon_log())
    assert len(keys) == 1, keys
    k = keys[0]
    i_to_r = "out" if we_initiated else "in"
    r_to_i = "in" if we_initiated else "out"
    assert pair[f"{i_to_r}_encr"] + pair[f"{i_to_r}_salt"] == k["encr_i"]
    assert pair[f"{r_to_i}_encr"] + pair[f"{r_to_i}_salt"] == k["encr_r"]
    assert pair[f"{i_to_r}_integ"] == k["integ_i"]
    assert pair[f"{r_to_i}_integ"] == k["integ_r"]
    assert len(k["encr_i"]) > 0


def charon_child_installed(lab, pair):
    """charon lists the CHILD SA as INSTALLED with the SPIs we reported."""
    sas = lab.swanctl("--list-sas").stdout
    assert "INSTALLED, TUNNEL" in sas, sas
    assert f"in  {pair['out_spi']}," in sas and f"out {pair['in_spi']}," in sas, sas
    return sas


def test_charon_initiates_to_our_responder_aes_gcm(lab):
    peer = lab.start_peer("--listen", ikelab.US, "--id", "hub", "--psk", ikelab.PSK)
    lab.start_charon(conn("aes256gcm16-prfsha256-ecp256", "aes256gcm16-noesn"))
    r = lab.swanctl("--initiate", "--child", "gre", "--ike", "hub", "--timeout", "10", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    pair = peer.wait_event("install_sa_pair")
    assert (pair["encr"], pair["key_bits"], pair["esn"], pair["mode"]) == (20, 256, False, "tunnel")
    assert pair["udp_encap"] and pair["remote"] == f"{ikelab.THEM}:4500"
    assert peer.wait_event("ike_sa_up")["peer_id"] == "spoke"
    assert_same_keys(lab, pair, we_initiated=False)
    sas = charon_child_installed(lab, pair)
    assert "AES_GCM_16-256/PRF_HMAC_SHA2_256/ECP_256" in sas


def test_we_initiate_to_charon_aes_cbc_sha256(lab):
    lab.start_charon(conn("aes256-sha256-prfsha256-x25519", "aes256-sha256-noesn"))
    peer = lab.start_peer("--listen", ikelab.US, "--initiate", ikelab.THEM, "--id", "hub", "--remote-id",
                          "spoke", "--psk", ikelab.PSK, "--ike", "aes256-sha256-prfsha256-x25519",
                          "--esp", "aes256-sha256-noesn")
    pair = peer.wait_event("install_sa_pair")
    assert (pair["encr"], pair["key_bits"], pair["integ"], pair["mode"]) == (12, 256, 12, "tunnel")
    assert len(pair["in_integ"]) == 64
    assert_same_keys(lab, pair, we_initiated=True)
    lab.wait_log(r"CHILD_SA gre\{1\} established")
    sas = charon_child_installed(lab, pair)
    assert "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519" in sas


def test_invalid_ke_payload_both_ways(lab):
    # Our responder takes only Curve25519: charon's ECP-256 KE gets INVALID_KE_PAYLOAD and it retries.
    peer = lab.start_peer("--listen", ikelab.US, "--id", "hub", "--psk", ikelab.PSK,
                          "--ike", "aes128gcm16-prfsha256-x25519")
    lab.start_charon(conn("aes128gcm16-prfsha256-ecp256-x25519", "aes128gcm16-noesn")
                     + conn("aes256gcm16-prfsha384-ecp384", "aes256gcm16-noesn", name="back"))
    r = lab.swanctl("--initiate", "--child", "gre", "--ike", "hub", "--timeout", "10", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "peer didn't accept DH group ECP_256, it requested CURVE_25519" in lab.charon_log()
    pair = peer.wait_event("install_sa_pair")
    assert_same_keys(lab, pair, we_initiated=False)
    peer.stop()

    # Our initiator's first KE is ECP-256 (the first group of its proposal); charon takes only
    # ECP-384 (connection `back`) and answers INVALID_KE_PAYLOAD; we retry with ECP-384.
    peer = lab.start_peer("--listen", ikelab.US, "--initiate", ikelab.THEM, "--id", "hub", "--remote-id",
                          "spoke", "--psk", ikelab.PSK, "--ike", "aes256gcm16-prfsha384-ecp256-ecp384",
                          "--esp", "aes256gcm16-noesn")
    peer.wait_event("install_sa_pair")
    lab.wait_log(r"DH group ECP_256 unacceptable, requesting ECP_384")
    assert "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384" in lab.swanctl("--list-sas").stdout


def test_transport_mode_is_negotiated_and_keyed(lab):
    """charon agrees to transport mode (USE_TRANSPORT_MODE both ways) and derives the same keys, but
    kernel-libipsec cannot install a transport-mode SA, so charon deletes the CHILD SA again and keeps
    the IKE SA: our engine removes the pair on that DELETE."""
    peer = lab.start_peer("--listen", ikelab.US, "--id", "hub", "--psk", ikelab.PSK)
    lab.start_charon(conn("aes256gcm16-prfsha256-ecp256", "aes256gcm16-noesn", mode="transport"))
    lab.swanctl("--initiate", "--child", "gre", "--ike", "hub", "--timeout", "10", check=False)
    pair = peer.wait_event("install_sa_pair")
    assert pair["mode"] == "transport"
    assert "N(USE_TRANSP)" in lab.charon_log()
    assert_same_keys(lab, pair, we_initiated=False)
    deleted = peer.wait_event("delete_sa_pair")
    assert (deleted["in_spi"], deleted["out_spi"]) == (pair["in_spi"], pair["out_spi"])
    assert "ESTABLISHED" in lab.swanctl("--list-sas").stdout


def test_charon_rekeys_child_and_ike_sa_then_deletes(lab):
    peer = lab.start_peer("--listen", ikelab.US, "--id", "hub", "--psk", ikelab.PSK)
    lab.start_charon(conn("aes256gcm16-prfsha256-ecp256", "aes256gcm16-noesn"))
    lab.swanctl("--initiate", "--child", "gre", "--ike", "hub", "--timeout", "10")
    first = peer.wait_event("install_sa_pair")
    # CHILD SA rekey by charon (CREATE_CHILD_SA with REKEY_SA): the new pair has charon's new keys,
    # and the old pair goes when charon deletes it.
    lab.swanctl("--rekey", "--child", "gre")
    second = peer.wait_event("install_sa_pair", count=2)
    assert second["in_spi"] != first["in_spi"]
    deleted = peer.wait_event("delete_sa_pair")
    assert deleted["in_spi"] == first["in_spi"]
    keys = ikelab.charon_child_keys(lab.charon_log())
    assert len(keys) == 2
    assert second["in_encr"] + second["in_salt"] == keys[1]["encr_i"]
    assert second["out_encr"] + second["out_salt"] == keys[1]["encr_r"]
    # IKE SA rekey by charon: our engine moves the CHILD SA to the new IKE SA.
    lab.swanctl("--rekey", "--ike", "hub")
    rekeyed = peer.wait_event("ike_sa_rekeyed")
    lab.wait_log(r"IKE_SA hub\[\d+\] rekeyed between")
    assert rekeyed["new"] in lab.swanctl("--list-sas").stdout
    # A CHILD rekey over the new IKE SA (keys from its SK_d) still agrees with charon.
    lab.swanctl("--rekey", "--child", "gre")
    third = peer.wait_event("install_sa_pair", count=3)
    keys = ikelab.charon_child_keys(lab.charon_log())
    assert third["in_encr"] + third["in_salt"] == keys[2]["encr_i"]
    # DELETE of the IKE SA by charon.
    lab.swanctl("--terminate", "--ike", "hub")
    down = peer.wait_event("ike_sa_down")
    assert down["reason"] == "DeletedByPeer" and down["sa"] == rekeyed["new"]


def test_we_rekey_before_expiry_and_detect_charon_dead(lab):
    lab.start_charon(conn("aes128gcm16-prfsha256-ecp256", "aes128gcm16-noesn"))
    peer = lab.start_peer("--listen", ikelab.US, "--initiate", ikelab.THEM, "--id", "hub", "--remote-id",
                          "spoke", "--psk", ikelab.PSK, "--ike", "aes128gcm16-prfsha256-ecp256",
                          "--esp", "aes128gcm16-noesn", "--child-lifetime", "3", "--ike-lifetime", "5",
                          "--rekey-margin", "1", "--dpd", "1")
    first = peer.wait_event("install_sa_pair")
    # Our CHILD rekey at 2 s, our IKE rekey at 4 s; charon derives the same keys.
    second = peer.wait_event("install_sa_pair", count=2, timeout=6)
    keys = ikelab.charon_child_keys(lab.charon_log())
    assert second["out_encr"] + second["out_salt"] == keys[1]["encr_i"]
    assert peer.wait_event("delete_sa_pair")["in_spi"] == first["in_spi"]
    peer.wait_event("ike_sa_rekeyed", timeout=6)
    lab.wait_log(r"IKE_SA hub\[\d+\] rekeyed between")
    sas = lab.swanctl("--list-sas").stdout
    assert "INSTALLED, TUNNEL" in sas and sas.count("ESTABLISHED") == 1, sas
    # charon goes away without a word: DPD finds it dead.
    lab.charon.kill()
    dead = peer.wait_event("peer_dead", timeout=10)
    assert dead["remote"] == f"{ikelab.THEM}:4500"
    assert peer.wait_event("ike_sa_down")["reason"] == "PeerDead"


def test_setup_benchmark_runs_against_both_responders():
    """perf/ike-bench.py at a small count: every emulated peer gets its IKE SA and CHILD SA from our
    responder and from charon, and ours spends less CPU per setup (the README has the full figures)."""
    import argparse
    import importlib.util
    spec = importlib.util.spec_from_file_location("ike_bench", ikelab.ROOT / "perf/ike-bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.run(argparse.Namespace(count=400, concurrency=16, groups="x25519"))
    r = results["x25519"]
    for who in ("ours", "charon"):
        assert (r[who]["up"], r[who]["failed"]) == (400, 0), r
    assert r["ratio"] > 1, r


def test_ike_fragmentation_both_ways(lab):
    """RFC 7383 with charon's `fragmentation = yes`: charon (fragment_size 200, IP datagram) sends its IKE_AUTH
    request in fragments that we reassemble; we (fragment size 120) answer in fragments that charon
    reassembles; the CHILD SA keys agree."""
    peer = lab.start_peer("--listen", ikelab.US, "--id", "hub", "--psk", ikelab.PSK, "--fragment-size", "120")
    lab.start_charon(conn("aes256gcm16-prfsha256-ecp256", "aes256gcm16-noesn", extra="fragmentation = yes"),
                     settings="fragment_size = 200")
    r = lab.swanctl("--initiate", "--child", "gre", "--ike", "hub", "--timeout", "10", check=False)
    assert r.returncode == 0, r.stdout + r.stderr + lab.charon_log()[-3000:]
    pair = peer.wait_event("install_sa_pair")
    log = lab.charon_log()
    assert "N(FRAG_SUP)" in log
    assert re.search(r"splitting IKE message \(\d+ bytes\) into [2-9] fragments", log), log[-3000:]
    assert re.search(r"received fragment #\d+ of \d+, reassembled fragmented IKE message", log), log[-3000:]
    assert_same_keys(lab, pair, we_initiated=False)


def test_our_child_rekey_with_pfs(lab):
    """Our CHILD SA rekey carries a Curve25519 KE (PFS, RFC 7296 §1.3.3), which charon's proposal
    demands; the new keys (KEYMAT with g^ir, §2.17) are the ones charon derived."""
    lab.start_charon(conn("aes128gcm16-prfsha256-ecp256", "aes128gcm16-x25519-noesn"))
    peer = lab.start_peer("--listen", ikelab.US, "--initiate", ikelab.THEM, "--id", "hub", "--remote-id",
                          "spoke", "--psk", ikelab.PSK, "--ike", "aes128gcm16-prfsha256-ecp256",
                          "--esp", "aes128gcm16-noesn", "--pfs", "x25519", "--child-lifetime", "3",
                          "--rekey-margin", "1")
    peer.wait_event("install_sa_pair")
    second = peer.wait_event("install_sa_pair", count=2, timeout=6)
    log = lab.charon_log()
    assert re.search(r"parsed CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\) SA No KE TSi TSr \]", log), log[-3000:]
    assert re.search(r"generating CREATE_CHILD_SA response \d+ \[ SA No KE TSi TSr \]", log)
    keys = ikelab.charon_child_keys(log)
    assert len(keys) == 2
    assert second["out_encr"] + second["out_salt"] == keys[1]["encr_i"]
    assert second["in_encr"] + second["in_salt"] == keys[1]["encr_r"]


def cert_conn(ike: str, esp: str, pki, local: str, remote: str, remote_id: str, local_id=True):
    """A charon connection `hub` authenticating with its certificate `local` (from `pki`), as
    `local.example` (or, with `local_id=False`, as the certificate's subject DN, charon's default), and
    expecting ours, for `remote_id`, from the same CA (RFC 7427 signatures, charon's default)."""
    return conn(ike, esp).replace(f"""    local {{
      auth = psk
      id = spoke
    }}
    remote {{
      auth = psk
      id = hub
    }}""", f"""    local {{
      auth = pubkey
      certs = {pki}/{local}.pem
      {f"id = {local}.example" if local_id else ""}
    }}
    remote {{
      auth = pubkey
      id = {remote_id}
      cacerts = {pki}/ca.pem
    }}""")


def cert_args(pki, name):
    return ["--id", f"{name}.example", "--cert", str(pki / f"{name}.pem"), "--key", str(pki / f"{name}.key"),
            "--ca", str(pki / "ca.pem")]


def test_charon_initiates_with_rsa_certificate_to_our_ecdsa_responder(lab):
    """charon signs with RSA (PKCS #1 v1.5, SHA-256), we with ECDSA P-256; both check the other's
    certificate against the openssl-made CA and its subjectAltName; the CHILD SA keys agree."""
    pki = ikelab.openssl_pki(lab.dir / "pki", {"spoke": ("rsa", "DNS:spoke.example"),
                                               "hub": ("P-256", "DNS:hub.example")})
    peer = lab.start_peer("--listen", ikelab.US, *cert_args(pki, "hub"))
    lab.start_charon(cert_conn("aes256gcm16-prfsha256-ecp256", "aes256gcm16-noesn", pki, "spoke", "hub",
                               "hub.example"),
                     private_keys=[pki / "spoke.key"])
    r = lab.swanctl("--initiate", "--child", "gre", "--ike", "hub", "--timeout", "10", check=False)
    assert r.returncode == 0, r.stdout + r.stderr + lab.charon_log()[-3000:]
    pair = peer.wait_event("install_sa_pair")
    assert peer.wait_event("ike_sa_up")["peer_id"] == "spoke.example"
    assert_same_keys(lab, pair, we_initiated=False)
    log = lab.charon_log()
    # charon: our IKE_SA_INIT response asked for its CA (CERTREQ) and took RFC 7427 signatures.
    assert re.search(r"parsed IKE_SA_INIT response 0 \[ SA KE No CERTREQ .*N\(HASH_ALG\)", log), log[-3000:]
    assert re.search(r"parsed IKE_AUTH response 1 \[ IDr CERT AUTH", log), log[-3000:]
    assert "authentication of 'spoke.example' (myself) with RSA_EMSA_PKCS1_SHA2_256 successful" in log
    assert "authentication of 'hub.example' with ECDSA_WITH_SHA256_DER successful" in log
    charon_child_installed(lab, pair)


def test_we_initiate_with_rsa_pss_certificate_to_charon_ecdsa_p384(lab):
    """We sign with RSASSA-PSS (SHA-256), charon with ECDSA P-384 (SHA-384); the keys agree."""
    pki = ikelab.openssl_pki(lab.dir / "pki", {"spoke": ("P-384", "DNS:spoke.example"),
                                               "hub": ("rsa", "DNS:hub.example")})
    lab.start_charon(cert_conn("aes256gcm16-prfsha384-ecp384", "aes256gcm16-noesn", pki, "spoke", "hub",
                               "hub.example"),
                     private_keys=[pki / "spoke.key"])
    peer = lab.start_peer("--listen", ikelab.US, "--initiate", ikelab.THEM, *cert_args(pki, "hub"), "--rsa-pss",
                          "--remote-id", "spoke.example", "--ike", "aes256gcm16-prfsha384-ecp384",
                          "--esp", "aes256gcm16-noesn")
    pair = peer.wait_event("install_sa_pair")
    assert_same_keys(lab, pair, we_initiated=True)
    lab.wait_log(r"CHILD_SA gre\{1\} established")
    log = lab.charon_log()
    assert re.search(r"parsed IKE_AUTH request 1 \[ IDi CERT CERTREQ IDr AUTH", log), log[-3000:]
    assert "authentication of 'hub.example' with RSA_EMSA_PSS_SHA2_256_SALT_32 successful" in log, log[-3000:]
    assert "authentication of 'spoke.example' (myself) with ECDSA_WITH_SHA384_DER successful" in log
    charon_child_installed(lab, pair)


def test_revoked_charon_certificate_is_refused(lab):
    """charon's certificate is on the CRL we load: our responder answers AUTHENTICATION_FAILED and
    reports the revocation; no CHILD SA is made."""
    pki = ikelab.openssl_pki(lab.dir / "pki", {"spoke": ("P-256", "DNS:spoke.example"),
                                               "hub": ("P-256", "DNS:hub.example")}, revoked=["spoke"])
    peer = lab.start_peer("--listen", ikelab.US, *cert_args(pki, "hub"), "--crl", str(pki / "crl.pem"))
    lab.start_charon(cert_conn("aes256gcm16-prfsha256-ecp256", "aes256gcm16-noesn", pki, "spoke", "hub",
                               "hub.example"),
                     private_keys=[pki / "spoke.key"])
    r = lab.swanctl("--initiate", "--child", "gre", "--ike", "hub", "--timeout", "10", check=False)
    assert r.returncode != 0
    assert peer.wait_event("failed")["failure"] == "Auth(Revoked)"
    assert peer.wait_event("stats")["auth_failures"] == 1
    lab.wait_log(r"received AUTHENTICATION_FAILED notify error")
    assert not [e for e in peer.events() if e["event"] == "install_sa_pair"]


def test_crossed_ike_sa_rekeys_with_charon(lab):
    """RFC 7296 §2.8.2 against charon: both rekey the IKE SA while the link is cut (charon by `swanctl
    --rekey` 3 s after setup, our engine at its rekey time, 5 s), so each request is outstanding when
    the other's retransmission comes. The link heals between our second retransmission (8 s) and
    charon's third (9 s): ours sees charon's request cross its own, answers it and holds that new SA
    on standby; charon completes its rekey and deletes the old SA, on which our standby SA takes the
    CHILD SA over, keys unchanged. Both end with the same single IKE SA."""
    import time
    lab.start_charon(conn("aes128gcm16-prfsha256-ecp256", "aes128gcm16-noesn"))
    peer = lab.start_peer("--listen", ikelab.US, "--initiate", ikelab.THEM, "--id", "hub", "--remote-id",
                          "spoke", "--psk", ikelab.PSK, "--ike", "aes128gcm16-prfsha256-ecp256",
                          "--esp", "aes128gcm16-noesn", "--ike-lifetime", "9", "--rekey-margin", "4",
                          "--no-dpd")
    pair = peer.wait_event("install_sa_pair")
    up = time.time()
    first = peer.wait_event("ike_sa_up")["sa"]
    lab.wait_log(r"CHILD_SA gre\{1\} established")
    time.sleep(max(0.0, up + 3.0 - time.time()))
    lab.cut(True)
    lab.swanctl("--rekey", "--ike", "hub")
    time.sleep(max(0.0, up + 8.5 - time.time()))
    lab.cut(False)
    rekeyed = peer.wait_event("ike_sa_rekeyed", timeout=15)
    assert rekeyed["old"] == first
    lab.wait_log(r"IKE_SA hub\[\d+\] rekeyed between", timeout=15)
    deadline = time.time() + 15
    while time.time() < deadline:
        sas = lab.swanctl("--list-sas").stdout
        if sas.count("ESTABLISHED") == 1 and "REKEY" not in sas and "DELETING" not in sas:
            break
        time.sleep(0.2)
    log = lab.charon_log()
    # charon initiated the surviving SA: our SPI of it is the responder's.
    assert sas.count("ESTABLISHED") == 1 and f"{rekeyed['new']}_r" in sas, (rekeyed, sas, log[-4000:])
    assert re.search(r"parsed CREATE_CHILD_SA response \d+ \[ SA No KE \]", log), log[-4000:]
    charon_child_installed(lab, pair)
    evs = peer.events()
    assert [e for e in evs if e["event"] == "install_sa_pair"] == [pair]
    assert not [e for e in evs if e["event"] in ("delete_sa_pair", "ike_sa_down", "failed")], evs
    assert len([e for e in evs if e["event"] == "ike_sa_rekeyed"]) == 1, evs
    assert peer.wait_event("stats")["ike_rekey_collisions"] == 1, evs


def test_charon_authenticates_as_its_certificate_subject_dn(lab):
    """charon with no `id` sends its certificate's subject as ID_DER_ASN1_DN; our responder matches it
    octet for octet against the subject of the certificate it sent (ECDSA P-384 here). Our key is given
    in SEC1 form."""
    from cryptography import x509
    pki = ikelab.openssl_pki(lab.dir / "pki", {"spoke": ("P-384", "DNS:spoke.example"),
                                               "hub": ("P-256", "DNS:hub.example")})
    # Our key as SEC1 (`EC PRIVATE KEY`, as `openssl ec` and strongSwan's `pki` write it).
    ikelab.sh("openssl", "ec", "-in", pki / "hub.key", "-out", pki / "hub.sec1.pem")
    assert (pki / "hub.sec1.pem").read_text().startswith("-----BEGIN EC PRIVATE KEY-----")
    args = cert_args(pki, "hub")
    args[args.index("--key") + 1] = str(pki / "hub.sec1.pem")
    peer = lab.start_peer("--listen", ikelab.US, *args)
    lab.start_charon(cert_conn("aes256gcm16-prfsha256-ecp384", "aes256gcm16-noesn", pki, "spoke", "hub",
                               "hub.example", local_id=False),
                     private_keys=[pki / "spoke.key"])
    r = lab.swanctl("--initiate", "--child", "gre", "--ike", "hub", "--timeout", "10", check=False)
    assert r.returncode == 0, r.stdout + r.stderr + lab.charon_log()[-3000:]
    pair = peer.wait_event("install_sa_pair")
    subject = x509.load_pem_x509_certificate((pki / "spoke.pem").read_bytes()).subject.public_bytes()
    assert peer.wait_event("ike_sa_up")["peer_id"] == "ID_DER_ASN1_DN(0x09) " + subject.hex()
    assert "authentication of 'O=DMVPN interop, CN=spoke' (myself) with ECDSA_WITH_SHA384_DER successful" \
        in lab.charon_log()
    assert_same_keys(lab, pair, we_initiated=False)


def test_charon_without_rfc7427_uses_the_classic_signature_methods(lab):
    """charon with `signature_authentication = no` sends no SIGNATURE_HASH_ALGORITHMS and signs with
    AUTH method 1 (RSA, PKCS #1 v1.5 with SHA-1); we verify that and, for a peer without RFC 7427,
    sign with method 9 (ECDSA P-256, RFC 4754), which charon verifies."""
    pki = ikelab.openssl_pki(lab.dir / "pki", {"spoke": ("rsa", "DNS:spoke.example"),
                                               "hub": ("P-256", "DNS:hub.example")})
    peer = lab.start_peer("--listen", ikelab.US, *cert_args(pki, "hub"))
    lab.start_charon(cert_conn("aes256gcm16-prfsha256-ecp256", "aes256gcm16-noesn", pki, "spoke", "hub",
                               "hub.example"),
                     settings="signature_authentication = no", private_keys=[pki / "spoke.key"])
    r = lab.swanctl("--initiate", "--child", "gre", "--ike", "hub", "--timeout", "10", check=False)
    assert r.returncode == 0, r.stdout + r.stderr + lab.charon_log()[-3000:]
    pair = peer.wait_event("install_sa_pair")
    log = lab.charon_log()
    assert not re.search(r"generating IKE_SA_INIT request 0 \[[^\]]*N\(HASH_ALG\)", log), log[-3000:]
    assert "authentication of 'spoke.example' (myself) with RSA signature successful" in log, log[-3000:]
    assert "authentication of 'hub.example' with ECDSA-256 signature successful" in log, log[-3000:]
    assert_same_keys(lab, pair, we_initiated=False)
