"""esprit-dataplane live, on AF_PACKET and on DPDK net_af_packet, in network namespaces: a client whose ESP stack is
scapy pings a real server kernel through the gateway; the server's kernel answers, the
gateway encrypts the replies back. Also: ARP both ways, the tunnel MTU reported to the
server's tracepath and ping, NAT keepalives, the final report. DPDK runs on hugepages the
test reserves and gives back."""

import json
import pathlib
import time

import pytest

import netlab

HERE = pathlib.Path(__file__).parent
KEYS = {
    "aes128gcm16": dict(enc_in="0123456789abcdef0123456789abcdef01020304", enc_out="fedcba9876543210fedcba9876543210a1a2a3a4", int_in="", int_out=""),
    "aes128-sha1": dict(enc_in="0123456789abcdef0123456789abcdef", enc_out="fedcba9876543210fedcba9876543210",
                        int_in="00112233445566778899aabbccddeeff00112233", int_out="ffeeddccbbaa99887766554433221100ffeeddcc"),
}


CASES = [("af_packet", "aes128gcm16", 1), ("af_packet", "aes128gcm16", 2), ("af_packet", "aes128-sha1", 1),
         ("dpdk", "aes128gcm16", 1), ("dpdk", "aes128gcm16", 2)]


@pytest.mark.parametrize("driver,proposal,workers", CASES)
def test_ping_through_the_gateway(dataplane_bin, tmp_path, driver, proposal, workers):
    huge = netlab.Hugepages() if driver == "dpdk" else None
    lab = netlab.Lab(f"{driver[0]}{workers}{proposal[3:6]}")
    try:
        k = KEYS[proposal]
        eal, out_dev, in_dev = netlab.devices(driver, workers, huge.dir if huge else None)
        cfg = netlab.GW_CONFIG.format(
            eal=eal, out_dev=out_dev, in_dev=in_dev,
            workers=workers, keepalive=2, proposal=proposal, enc_in=k["enc_in"], enc_out=k["enc_out"],
            int_in=f'int_key = "{k["int_in"]}"' if k["int_in"] else "", int_out=f'int_key = "{k["int_out"]}"' if k["int_out"] else "")
        (tmp_path / "gw.toml").write_text(cfg)
        gw = lab.spawn("gw", [dataplane_bin, "--config", str(tmp_path / "gw.toml")])
        time.sleep(0.5 if driver == "af_packet" else 2.0)
        assert gw.poll() is None, gw.stderr.read()
        if huge:
            assert huge.in_use() > 0, "DPDK's memory is on the reserved hugepages"

        # The gateway answers ARP for its inside address: the server can reach its default route.
        mtu = 1438 if proposal == "aes128gcm16" else 1422
        r = lab.ex(lab.ns["server"], "ping -c 1 -W 2 -M do -s 1472 10.9.0.2", check=False)
        assert f"mtu = {mtu}" in r.stdout + r.stderr, r.stdout + r.stderr
        r = lab.ex(lab.ns["server"], "tracepath -n -m 2 10.9.0.2", check=False)
        assert f"pmtu {mtu}" in r.stdout, r.stdout
        assert "10.1.0.1" in r.stdout, "the gateway answers TTL-exceeded as hop 1: " + r.stdout

        args = dict(proposal=proposal, count=20, size=100, interval=0.05, seconds=6, **k)
        c = lab.ex(lab.ns["client"], f"/usr/bin/python3 {HERE / 'client.py'} '{json.dumps(args)}'")
        got = json.loads(c.stdout.strip().splitlines()[-1])
        # The first request may be spent resolving the server's MAC (no queueing behind ARP).
        assert len(got["replies"]) >= 19, got
        assert got["keepalives"] >= 1, "NAT keepalives every 2 s on the idle SA"

        code, out, err = lab.stop(gw)
        assert code == 0, err
        assert "decrypted" in out and "drops by reason" in out, out
        line = next(l for l in out.splitlines() if l.startswith("decrypted"))
        dec = int(line.split()[1])
        enc = int(line.split()[3])
        assert dec >= 19 and enc >= 19, out
    finally:
        lab.cleanup()
        if huge:
            huge.cleanup()
