#!/usr/bin/python3
"""The quickstart lab: `quickstart.py up` builds network namespaces with a strongSwan road
warrior behind an nftables NAT, Esprit (esprit-dataplane on AF_PACKET, esprit-ike) as the
gateway and a server behind it; connects the client, pings through the tunnel, shows what
Esprit sees, and leaves everything running. `quickstart.py down` removes it all.

Run through deploy/quickstart.sh, which installs what is missing and builds first."""

import os
import pathlib
import signal
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import esprit_lab as L  # noqa: E402

PREFIX = "quick"
METRICS = "127.0.0.1:9477"
STATE = pathlib.Path("/run/esprit-quickstart")


def banner(text):
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def down(quiet=False):
    pidfile = STATE / "esprit-ike.pid"
    if pidfile.exists():
        try:
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
        pidfile.unlink()
    L.Lab.remove(PREFIX)
    if not quiet:
        print("quickstart lab removed")


def up():
    L.EspritGateway.check_binaries()
    down(quiet=True)
    STATE.mkdir(parents=True, exist_ok=True)
    banner("network namespaces: client1 -> NAT -> internet -> Esprit gateway -> server")
    lab = L.Lab(prefix=PREFIX)
    try:
        gw = L.EspritGateway(lab, L.GatewayConn(metrics=METRICS), driver="af_packet")
        gw.start(ike_in_host=True)
        (STATE / "esprit-ike.pid").write_text(str(gw.ike.pid))
        print(f"esprit-dataplane on {lab.ns['gw']} (AF_PACKET on gw-out, gw-in); esprit-ike in this namespace")
        banner("strongSwan road warrior connects (PSK, aes128gcm16-prfsha256-x25519, virtual IP)")
        c = L.Client(lab, "client1").start()
        c.initiate()
        print(c.charon.swanctl("--list-sas").stdout.strip())
        banner(f"ping {L.SERVER} from the client, through the tunnel")
        rx, out = L.ping(lab, "client1", L.SERVER, 3, 0.2)
        print(out.strip())
        if rx != 3:
            raise L.LabError(f"only {rx}/3 echo replies")
        time.sleep(1.1)  # per-SA counters reach the stats segment once a second
        ctl = L.find_binary("espritctl", "ESPRITCTL")
        sock = gw.dir / "esprit-ike.sock"
        banner(f"espritctl --socket {sock} list-sas")
        print(subprocess.run([str(ctl), "--socket", str(sock), "list-sas"], capture_output=True, text=True).stdout)
        banner("metrics")
        print(f"curl -s http://{METRICS}/metrics | grep -E '^esprit_(ike_sas|dataplane_esp)'")
        banner("the lab keeps running; try")
        print(f"  ip netns exec {lab.ns['client1']} ping {L.SERVER}")
        print(f"  {ctl} --socket {sock} list-sas")
        print(f"  {ctl} dataplane-stats --instance {lab.ring} --sa")
        print(f"  logs: {gw.dir}/esprit-ike.out  {gw.dir}/dataplane.out  {lab.dir}/client1/charon.log")
        print("  deploy/quickstart.sh down     # removes the lab")
    except BaseException:
        print(lab.logs_tail(30), file=sys.stderr)
        down(quiet=True)
        raise
    # Leave it running: the processes have their own sessions.
    lab.procs = []


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "up":
        up()
    elif cmd == "down":
        down()
    else:
        sys.exit(f"usage: {sys.argv[0]} up | down")
