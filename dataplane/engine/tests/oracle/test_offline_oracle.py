"""esprit-dataplane's offline mode against scapy (and tshark) as independent oracles: every
transform, IPv4 and IPv6 inside and outside, NAT-T and raw ESP, with and without ESN."""

import itertools
import subprocess

import pytest
from scapy.all import IP, UDP, Ether, IPv6, Raw, raw

import lab
from lab import TRANSFORMS, Lab

SIZES = [0, 1, 15, 16, 17, 100, 500, 1000, 1200]

CASES = [
    Lab(t, outer, natt)
    for t, outer, natt in itertools.product(TRANSFORMS, (4, 6), (True, False))
] + [Lab(t, 4, True, esn=True) for t in TRANSFORMS]


def case_id(c):
    return f"{c.t.name}-v{c.outer}{'-natt' if c.natt else '-raw'}{'-esn' if c.esn else ''}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_both_directions(case: Lab, dataplane_bin, tmp_path):
    to_gw, from_gw = case.sa(lab.SPI_IN), case.sa(lab.SPI_OUT)
    requests, replies = [], []
    outside_in, inside_in = [], []
    for n, (v, size) in enumerate(itertools.product((4, 6), SIZES)):
        req = lab.inner_packet(v, True, size, n)
        rep = lab.inner_packet(v, False, size, n)
        requests.append(req)
        replies.append(rep)
        enc = to_gw.encrypt(req)
        if case.natt:
            enc = lab.fix_natt(enc)
        if case.esn and case.t.scapy_auth:
            enc = lab.esn_resign(case, lab.SPI_IN, enc)
        t = n * 0.001
        f = Ether(src=lab.ROUTER_MAC, dst=lab.GW_WAN_MAC) / enc
        f.time = 1700000000 + t
        outside_in.append(f)
        g = Ether(src=lab.SERVER_MAC, dst=lab.GW_LAN_MAC) / rep
        g.time = 1700000000 + t + 0.0005
        inside_in.append(g)

    out, inside, stdout, paths = lab.run(dataplane_bin, str(tmp_path), case.config(), outside_in, inside_in)

    # Client -> server: every request decrypted and forwarded to the server, TTL - 1.
    assert len(inside) == len(requests), stdout
    for frame, req in zip(inside, requests):
        assert frame[Ether].dst == lab.SERVER_MAC and frame[Ether].src == lab.GW_LAN_MAC
        assert raw(frame[Ether].payload) == lab.forwarded(req)

    # Server -> client: every reply sealed toward the client's NAT mapping; scapy opens it.
    assert len(out) == len(replies), stdout
    for frame, rep in zip(out, replies):
        assert frame[Ether].dst == lab.ROUTER_MAC
        outer = frame[Ether].payload
        outer = outer.__class__(raw(outer))
        if case.natt:
            assert outer[UDP].sport == 4500 and outer[UDP].dport == lab.NAT_PORT
            if case.outer == 4:
                assert outer[UDP].chksum == 0, "RFC 3948 §2.1: zero UDP checksum over IPv4"
        if case.esn and case.t.scapy_auth:
            assert lab.esn_verify(case, lab.SPI_OUT, outer), "ICV over ESP ‖ seq_hi (RFC 4303 §3.3.2.1)"
            got = from_gw.decrypt(outer, verify=False)
        else:
            got = from_gw.decrypt(outer)
        assert raw(got) == lab.forwarded(rep)
    assert "drops by reason:\n  (none)" in stdout, stdout

    # tshark dissects the gateway's output as ESP (in UDP), with good ICVs where it can decrypt.
    if case.esn:
        return  # Wireshark 4.0's esp_sa table has no ESN column.
    tshark_check(case, paths["out-out"], len(replies))


def tshark_check(case: Lab, pcap, n):
    enc, integ = case.keys(lab.SPI_OUT)
    proto = "IPv4" if case.outer == 4 else "IPv6"
    args = ["tshark", "-r", pcap, "-T", "fields", "-e", "esp.spi", "-e", "esp.sequence", "-e", "esp.icv_good"]
    if case.t.tshark_enc:
        sa = f'"{proto}","*","*","{lab.SPI_OUT:#010x}","{case.t.tshark_enc}","0x{enc.hex()}","{case.t.tshark_auth}","{"0x" + integ.hex() if integ else ""}"'
        args += ["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE", "-o", "uat:esp_sa:" + sa]
    r = subprocess.run(args, capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in r.stdout.strip().splitlines()]
    assert len(rows) == n, r.stdout + r.stderr
    for i, row in enumerate(rows):
        assert int(row[0], 16) == lab.SPI_OUT
        assert int(row[1]) == i + 1
        if case.t.tshark_enc:
            assert row[2] in ("1", "True"), f"tshark: ICV of frame {i} not good: {row}"


def test_tampered_and_replayed_packets_are_dropped_by_name(dataplane_bin, tmp_path):
    case = Lab(TRANSFORMS[0], 4, True)
    to_gw = case.sa(lab.SPI_IN)
    frames = []
    good = lab.fix_natt(to_gw.encrypt(lab.inner_packet(4, True, 50, 1)))
    frames.append(Ether(src=lab.ROUTER_MAC, dst=lab.GW_WAN_MAC) / good)
    frames.append(Ether(src=lab.ROUTER_MAC, dst=lab.GW_WAN_MAC) / good)  # replay
    bad = bytearray(raw(lab.fix_natt(to_gw.encrypt(lab.inner_packet(4, True, 50, 2)))))
    bad[-1] ^= 1
    frames.append(Ether(src=lab.ROUTER_MAC, dst=lab.GW_WAN_MAC) / IP(bytes(bad)))
    unknown = lab.fix_natt(case.sa(lab.SPI_OUT).encrypt(lab.inner_packet(4, True, 50, 3)))
    unknown[IP].src, unknown[IP].dst = case.client, case.gw
    unknown[UDP].sport, unknown[UDP].dport = lab.NAT_PORT, 4500
    frames.append(Ether(src=lab.ROUTER_MAC, dst=lab.GW_WAN_MAC) / IP(raw(unknown)))
    frames.append(Ether(src=lab.ROUTER_MAC, dst=lab.GW_WAN_MAC) / IP(src=case.client, dst=case.gw) / UDP(sport=lab.NAT_PORT, dport=4500) / Raw(b"\xff"))
    for i, f in enumerate(frames):
        f.time = 1700000000 + i
    out, inside, stdout, _ = lab.run(dataplane_bin, str(tmp_path), case.config(), frames, [])
    assert len(inside) == 1
    assert not out
    for line in ("replay", "auth_failed", "esp_no_sa", "natt_keepalive"):
        assert f"  {line}" in stdout, stdout
