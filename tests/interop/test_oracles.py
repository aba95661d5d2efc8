"""The harness's own oracles, checked without the hub: Scapy and tshark agree on the key formats of
every SA parameter set (so a hub that passes the suite is judged by two implementations that agree with
each other), and the checks the suite relies on do catch what they are meant to catch."""
import pytest
from scapy.all import GRE, ICMP, IP, UDP, Ether, wrpcap

import dmvpn
from dmvpn import GRE_KEY, HUB_WAN_IP, SPOKE_B, Hub


def as_hub_would_send(hub: Hub, seq: int) -> Ether:
    """What a correct hub sends to spoke B: Scapy encrypts it with the hub → B SA."""
    scapy_sa = hub.sa_out(SPOKE_B).scapy(esn_high=seq >> 32)
    inner = IP(src=dmvpn.LAN_HOST_IP, dst=SPOKE_B.host, ttl=63) / ICMP(id=9, seq=seq & 0xFFFF) / b"oracle"
    packet = IP(src=HUB_WAN_IP, dst=SPOKE_B.nbma) / GRE(key_present=1, key=GRE_KEY) / inner
    return Ether(src=dmvpn.HUB_WAN_MAC, dst=dmvpn.GW_MAC) / scapy_sa.encrypt(packet, seq_num=seq & 0xFFFFFFFF)


@pytest.mark.parametrize("params", dmvpn.PARAMS, ids=str)
def test_scapy_and_tshark_agree_on_every_sa_format(params, tmp_path):
    hub = Hub(params)
    seqs = [1, 2] if not params.esn else [1, 2**32 + 5]
    frames = [as_hub_would_send(hub, seq) for seq in seqs]
    for frame, seq in zip(frames, seqs):
        plain = dmvpn.inner_of(hub.decrypt_to(SPOKE_B, frame, seq=seq))
        assert plain[IP].dst == SPOKE_B.host and bytes(plain[ICMP].payload) == b"oracle"
    pcap = tmp_path / "out.pcap"
    wrpcap(str(pcap), frames)
    rows = dmvpn.tshark_fields(pcap, hub, "esp.spi", "gre.key", "ip.dst", "icmp.type", "esp.icv_good")
    assert len(rows) == len(frames)
    for row in rows:
        assert int(row["esp.spi"], 16) == SPOKE_B.spi_out
        assert int(row["gre.key"], 16) == GRE_KEY, row  # tshark decrypted it with our UAT line
        assert row["ip.dst"].split(",")[-1] == SPOKE_B.host, row
        if not params.esn:  # tshark 4.0 has no ESN: it decrypts but cannot check the ICV
            assert row["esp.icv_good"] in ("1", "True"), row
    assert dmvpn.tshark_errors(pcap, hub) == []


def test_a_flipped_icv_byte_fails_scapy_decryption():
    hub = Hub()
    frame = as_hub_would_send(hub, 1)
    raw = bytearray(bytes(frame))
    raw[-1] ^= 1
    with pytest.raises(Exception):
        hub.decrypt_to(SPOKE_B, Ether(bytes(raw)), seq=1)


def test_esn_high_bits_are_authenticated():
    """Decrypting with the wrong high-order sequence bits fails: the ESN checks mean something."""
    hub = Hub(dmvpn.SaParams(esn=True))
    frame = as_hub_would_send(hub, 2**32 + 1)
    with pytest.raises(Exception):
        hub.decrypt_to(SPOKE_B, frame, seq=1)


def test_tshark_error_filter_catches_bad_checksums_and_truncation(tmp_path):
    good = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / b"ok"
    bad_ip = Ether() / IP(src="10.0.0.1", dst="10.0.0.2", chksum=0x1234) / UDP(sport=1, dport=2)
    bad_icmp = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(chksum=5)
    truncated = Ether(bytes(good)[:-4])
    pcap = tmp_path / "mixed.pcap"
    wrpcap(str(pcap), [good, bad_ip, bad_icmp, truncated])
    flagged = [line.split(":")[0] for line in dmvpn.tshark_errors(pcap, None)]
    assert flagged == ["2", "3", "4"]


def test_checksum_helper_catches_a_wrong_checksum():
    pkt = Ether(bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP() / b"x"))
    dmvpn.assert_checksums(pkt)
    pkt[ICMP].chksum ^= 1
    with pytest.raises(AssertionError):
        dmvpn.assert_checksums(pkt)


def test_drop_reasons_are_read_from_drop_rs():
    names = dmvpn.drop_reasons()
    assert len(names) == len(set(names)) > 30
    for name in ("esp_replay", "esp_auth_failed", "gre_unknown_tunnel", "natt_keepalive", "mtu_exceeded"):
        assert name in names
