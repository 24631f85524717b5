"""The data plane driven through the shared-memory rings by a control plane (the `ringctl`
example standing in for esprit-ike), live on AF_PACKET in network namespaces: SAs installed
over the ring carry traffic; IKE is punted to the control plane (UDP 500, and 4500 behind
the non-ESP marker); the control plane's datagrams go out; a data plane killed with SIGKILL
and restarted says hello, is refilled and forwards again; SA events (idle) reach the control
plane; with the control plane gone, the
data plane keeps forwarding."""

import json
import os
import pathlib
import signal
import subprocess
import time

import netlab

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parents[3]
K = dict(enc_in="0123456789abcdef0123456789abcdef01020304", enc_out="fedcba9876543210fedcba9876543210a1a2a3a4", int_in="", int_out="")
IKE = "1122334455667788" "0000000000000000" "21202208" "00000000" "0000001c"


def ringctl():
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "esprit-engine", "--example", "ringctl"], cwd=ROOT, check=True)
    return str(ROOT / "target" / "release" / "examples" / "ringctl")


def espritctl():
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "espritctl"], cwd=ROOT, check=True)
    return str(ROOT / "target" / "release" / "espritctl")


def counters(ctl, name):
    out = subprocess.run([ctl, "dataplane-stats", "--instance", name, "--sa"], capture_output=True, text=True, check=True).stdout
    vals = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            vals[parts[0]] = int(parts[1])
    return vals, out


SEQ = [1]


def ping(lab, n=20):
    # The client's ESP sequence numbers keep increasing across runs, as a real client's do.
    args = dict(proposal="aes128gcm16", count=n, size=64, interval=0.05, seconds=max(3, n * 0.05 + 1.5), seq=SEQ[0], **K)
    SEQ[0] += n
    c = lab.ex(lab.ns["client"], f"/usr/bin/python3 {HERE / 'client.py'} '{json.dumps(args)}'")
    return len(json.loads(c.stdout.strip().splitlines()[-1])["replies"])


def test_control_plane_over_the_ring(dataplane_bin, tmp_path):
    # Both tools are built before the control plane's 30 s session starts: a cold release
    # build of espritctl inside it once outlasted the session, so nobody refilled the restart.
    ctl = ringctl()
    ectl = espritctl()
    name = f"t{os.getpid()}"
    shm = pathlib.Path(f"/dev/shm/esprit-{name}")
    lab = netlab.Lab("ring")
    try:
        full = netlab.GW_CONFIG.format(eal="", out_dev='device = "gw-out"', in_dev='device = "gw-in"', workers=1,
                                       keepalive=0, proposal="aes128gcm16", int_in="", int_out="", **{k: v for k, v in K.items() if k.startswith("enc")})
        # Over the ring, the inbound SA reports idle spells of 2 s (an SA event).
        (tmp_path / "sas.toml").write_text(full.replace('remote_ts = ["10.9.0.2/32"]', 'remote_ts = ["10.9.0.2/32"]\nidle_seconds = 2', 1))
        # The data plane starts with interfaces and routes only: SAs come over the ring.
        gw_only = full[: full.index("[[sa]]")]
        (tmp_path / "gw.toml").write_text(gw_only)
        start = lambda: lab.spawn("gw", [dataplane_bin, "--config", str(tmp_path / "gw.toml"), "--ring", name])
        gw = start()
        time.sleep(0.5)
        assert gw.poll() is None, gw.stderr.read()
        assert ping(lab, 5) == 0, "no SA yet: nothing is forwarded"

        # A datagram from the control plane goes out to the client.
        sniff = lab.spawn("client", ["/usr/bin/python3", "-c",
            "from scapy.all import sniff,UDP,Raw\n"
            "p=sniff(iface='cl-out', filter='udp src port 500', count=1, timeout=5)\n"
            "print(len(p) and bytes(p[0][UDP].payload).hex())"])
        time.sleep(1)
        subprocess.run([ctl, "transmit", name, "198.51.100.1:500", "198.51.100.7:500", IKE], check=True)
        out, _ = sniff.communicate(timeout=10)
        assert out.strip() == IKE, out

        serve = subprocess.Popen([ctl, "serve", name, str(tmp_path / "sas.toml"), "45"], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        assert ping(lab) >= 19

        # The stats segment moves with the traffic, read by another process.
        time.sleep(1.2)
        vals, out = counters(ectl, name)
        assert vals.get("esp_decrypted", 0) >= 19 and vals.get("esp_encrypted", 0) >= 19, out
        assert vals.get("if.outside.rx_packets", 0) >= 19, out
        assert "0x1001" in out and "0x2002" in out, "per-SA rows: " + out
        before = vals["esp_decrypted"]
        assert ping(lab, 10) >= 9
        time.sleep(1.2)
        assert counters(ectl, name)[0]["esp_decrypted"] >= before + 9

        # IKE from the client is punted, with and without the non-ESP marker.
        lab.ex(lab.ns["client"], "/usr/bin/python3 -c \"from scapy.all import *; conf.verb=0; "
               f"send(IP(dst='198.51.100.1')/UDP(sport=500,dport=500)/Raw(bytes.fromhex('{IKE}'))); "
               f"send(IP(dst='198.51.100.1')/UDP(sport=4500,dport=4500)/Raw(b'\\\\0\\\\0\\\\0\\\\0'+bytes.fromhex('{IKE}')))\"")

        # The data plane dies without warning and comes back: it says hello, is refilled.
        os.kill(gw.pid, signal.SIGKILL)
        lab.ex(lab.ns["gw"], "pkill -9 esprit-dataplane", check=False)
        gw.wait()
        t0 = time.monotonic()
        gw = start()
        got = 0
        while got == 0 and time.monotonic() - t0 < 10:
            got = ping(lab, 2)
        resumed = time.monotonic() - t0
        assert got > 0, "traffic resumes after the restart"
        print(f"traffic resumed {resumed:.2f} s after the data plane restarted")

        out, _ = serve.communicate(timeout=60)
        assert "punt src=198.51.100.7:500 dst=198.51.100.1:500 interface=outside marker=false len=28" in out, out
        assert "punt src=198.51.100.7:4500 dst=198.51.100.1:4500 interface=outside marker=true len=28" in out, out
        assert out.count("hello generation=") >= 1 and out.count("pushed 2 SAs") >= 2, out
        assert "event spi=0x1001 kind=Idle { seconds: 2 }" in out, out

        # The control plane is gone: established SAs keep forwarding.
        assert ping(lab) >= 19
        code, rep, err = lab.stop(gw)
        assert code == 0, err
    finally:
        lab.cleanup()
        shm.unlink(missing_ok=True)


def test_policy_without_sa_sends_nothing_in_the_clear(dataplane_bin, tmp_path):
    """A packet that matches a protecting policy whose outbound SA is gone (deleted over the
    ring, the policy left in place) is dropped and counted as policy_no_sa — and nothing of it
    leaves on the outside, checked with tshark on a capture of the client's link: before the
    delete the server's pings leave as ESP, after it nothing does."""
    ctl, ectl = ringctl(), espritctl()
    name = f"c{os.getpid()}"
    shm = pathlib.Path(f"/dev/shm/esprit-{name}")
    lab = netlab.Lab("clear")
    try:
        full = netlab.GW_CONFIG.format(eal="", out_dev='device = "gw-out"', in_dev='device = "gw-in"', workers=1,
                                       keepalive=0, proposal="aes128gcm16", int_in="", int_out="", **{k: v for k, v in K.items() if k.startswith("enc")})
        (tmp_path / "sas.toml").write_text(full)
        (tmp_path / "gw.toml").write_text(full[: full.index("[[sa]]")])
        gw = lab.spawn("gw", [dataplane_bin, "--config", str(tmp_path / "gw.toml"), "--ring", name])
        time.sleep(0.5)
        assert gw.poll() is None, gw.stderr.read()
        subprocess.run([ctl, "push", name, str(tmp_path / "sas.toml")], check=True, capture_output=True)
        assert ping(lab, 5) >= 4, "the tunnel works"

        def server_pings(pcap):
            cap = lab.spawn("client", ["tcpdump", "-i", "cl-out", "-n", "-U", "-w", str(pcap), "ip"])
            time.sleep(1)
            lab.ex(lab.ns["server"], "ping -c 5 -i 0.1 -W 1 10.9.0.2", check=False)
            time.sleep(0.5)
            cap.send_signal(signal.SIGINT)
            cap.wait(5)
            r = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.proto", "-e", "ip.dst"],
                               capture_output=True, text=True, check=True)
            return [line.split("\t") for line in r.stdout.splitlines() if line.strip()]

        before = server_pings(tmp_path / "before.pcap")
        assert sum(1 for p, _ in before if p == "17") >= 5, f"the server's pings leave as ESP in UDP: {before}"
        subprocess.run([ctl, "delete", name, "out", "2002"], check=True)
        time.sleep(0.5)
        after = server_pings(tmp_path / "after.pcap")
        assert after == [], f"packets left toward the client with no outbound SA: {after}"
        time.sleep(1.2)
        vals, out = counters(ectl, name)
        assert vals.get("drop.policy_no_sa", 0) >= 5, out
        code, _, err = lab.stop(gw)
        assert code == 0, err
    finally:
        lab.cleanup()
        shm.unlink(missing_ok=True)
