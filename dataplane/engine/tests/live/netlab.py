"""Network namespaces for live tests: a client, the gateway (esprit-dataplane on AF_PACKET,
no kernel addresses on its links) and a server. Everything stays inside namespaces this
module creates and removes."""

import os
import signal
import subprocess
import tempfile
import time

NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"


def sh(cmd, check=True, **kw):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr.strip()}")
    return r


class Lab:
    """client (198.51.100.7/24) -- [outside] gateway [inside] -- server (10.1.0.5/16)."""

    def __init__(self, tag):
        self.p = f"es{os.getpid() % 100000}{tag}"
        self.ns = {k: f"{self.p}-{k}" for k in ("client", "gw", "server")}
        self.procs = []
        self.cleanup()
        for n in self.ns.values():
            sh(f"ip netns add {n}")
            self.ex(n, "ip link set lo up")
        c, g, s = self.ns["client"], self.ns["gw"], self.ns["server"]
        # Veth pairs, created in the gateway namespace and one end moved out.
        self.ex(g, "ip link add name gw-out type veth peer name cl-out")
        self.ex(g, "ip link add name gw-in type veth peer name sv-in")
        self.ex(g, f"ip link set cl-out netns {c}")
        self.ex(g, f"ip link set sv-in netns {s}")
        for ns, dev in ((g, "gw-out"), (g, "gw-in"), (c, "cl-out"), (s, "sv-in")):
            self.ex(ns, f"sysctl -qw net.ipv6.conf.{dev}.disable_ipv6=1")
            # veth checksum offload would hand AF_PACKET unfinished checksums.
            self.ex(ns, f"ethtool -K {dev} tx off rx off", check=False)
            self.ex(ns, f"ip link set {dev} up")
        self.ex(c, "ip addr add 198.51.100.7/24 dev cl-out")
        self.ex(s, "ip addr add 10.1.0.5/16 dev sv-in")
        self.ex(s, "ip route add default via 10.1.0.1")

    def ex(self, ns, cmd, check=True):
        return sh(f"ip netns exec {ns} {cmd}", check=check)

    def spawn(self, ns, argv, **kw):
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[ns]] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
        self.procs.append(p)
        return p

    def stop(self, p, timeout=10):
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err

    def cleanup(self):
        for p in getattr(self, "procs", []):
            if p.poll() is None:
                p.kill()
                p.wait()
        for n in getattr(self, "ns", {}).values():
            pids = sh(f"ip netns pids {n}", check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh(f"ip netns del {n}", check=False)


GW_CONFIG = """
[dataplane]
workers = {workers}
keepalive_interval = {keepalive}
{eal}

[[interface]]
name = "outside"
role = "outside"
{out_dev}
address = "198.51.100.1/24"
mac = "02:00:00:00:01:01"

[[interface]]
name = "inside"
role = "inside"
{in_dev}
address = "10.1.0.1/16"
mac = "02:00:00:00:02:01"

[[sa]]
spi = 0x1001
direction = "in"
proposal = "{proposal}"
enc_key = "{enc_in}"
{int_in}
local = "198.51.100.1"
remote = "198.51.100.7"
local_port = 4500
remote_port = 4500
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.9.0.2/32"]

[[sa]]
spi = 0x2002
direction = "out"
proposal = "{proposal}"
enc_key = "{enc_out}"
{int_out}
local = "198.51.100.1"
remote = "198.51.100.7"
local_port = 4500
remote_port = 4500

[[policy]]
src = "10.1.0.0/16"
dst = "10.9.0.2/32"
sa = 0x2002
"""


def meminfo(key):
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class Hugepages:
    """2 MiB hugepages reserved for one test and a hugetlbfs of its own to hold them: the
    pool grows by `pages` and shrinks back, the mount goes away, whatever happens."""

    def __init__(self, pages=320):
        self.before = int(open(NR_HUGEPAGES).read())
        self.dir = tempfile.mkdtemp(prefix="esprit-huge-")
        self.mounted = False
        try:
            with open(NR_HUGEPAGES, "w") as f:
                f.write(str(self.before + pages))
            if meminfo("HugePages_Free") < pages:
                raise RuntimeError(f"could not reserve {pages} hugepages: only {meminfo('HugePages_Free')} free "
                                   "(memory too fragmented? try `echo 3 > /proc/sys/vm/drop_caches`)")
            sh(f"mount -t hugetlbfs -o pagesize=2M nodev {self.dir}")
            self.mounted = True
        except BaseException:
            self.cleanup()
            raise

    def in_use(self):
        return meminfo("HugePages_Total") - meminfo("HugePages_Free")

    def cleanup(self):
        if self.mounted:
            sh(f"umount {self.dir}", check=False)
            self.mounted = False
        if os.path.isdir(self.dir):
            os.rmdir(self.dir)
        with open(NR_HUGEPAGES, "w") as f:
            f.write(str(self.before))


def devices(driver, workers=1, huge_dir=None):
    """Config lines binding the gateway's interfaces to its veths with `driver` (DPDK's
    net_af_packet takes one queue pair per worker; it spreads flows over them by hash).
    DPDK runs on the hugepages mounted at `huge_dir`, or without hugepages."""
    if driver == "dpdk":
        mem = f'"--huge-dir", "{huge_dir}"' if huge_dir else '"--no-huge"'
        eal = f'eal_args = [{mem}, "-m", "512", "--no-pci", "--no-telemetry"]'
        q = f"qpairs={workers}"
        return eal, f'driver = "dpdk"\ndevice = "net_af_packet0,iface=gw-out,{q}"', f'driver = "dpdk"\ndevice = "net_af_packet1,iface=gw-in,{q}"'
    return "", 'device = "gw-out"', 'device = "gw-in"'
