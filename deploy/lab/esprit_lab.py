"""The strongSwan interop lab: real, unmodified strongSwan road warriors behind a real
nftables NAT talk IKEv2/ESP to a gateway — strongSwan's own (the reference that proves the
lab) or Esprit (esprit-dataplane + esprit-ike) — in network namespaces.

    client1 ─┐ 192.168.1.0/24                203.0.113.0/24          198.51.100.0/24        10.1.0.0/16
             ├─ br0 [nat] wan0 ───────── to-nat [internet] to-gw ──────── gw-out [gw] gw-in ──── eth0 [server]
    client2 ─┘ .11/.12   .1   .2 (masquerade)  .254        .254            .1         10.1.0.1     10.1.0.5

Everything is named after a per-instance prefix (`lab<pid>` unless given), so two labs can
coexist; `Lab.cleanup()` (also run when a lab starts, for leftovers of a crashed run with
the same prefix) kills every process inside the namespaces (`ip netns pids`), deletes the
namespaces, unmounts what the lab mounted, gives back hugepages, removes the control-ring
segments and the lab's temporary directory.

API (python3 stdlib only; root; Debian's strongSwan 5.9.8 with kernel-libipsec):

    with Lab() as lab:                           # topology; lab.nat, lab.internet, lab.server
        pki = Pki(lab.dir / "pki", "rsa")        # CA, gateway and client certificates
        gw = StrongswanGateway(lab, GatewayConn(auth="pubkey", pki=pki)); gw.start()
        c = Client(lab, "client1", auth="pubkey", pki=pki); c.start(); c.initiate()
        c.virtual_ip(); c.list_sas(); c.ping("10.1.0.5", 5, 0.2); c.tcp_transfer("10.1.0.5", 1 << 20)
        lab.nat.rebind(); lab.nat.set_wan_mtu(1000); lab.internet.set_link_mtu("gw", 1300)
        with lab.capture("client1", "eth0", "udp") as pcap: ...
        ike_datagrams(pcap)                       # IKE headers parsed from a capture, independently

The Esprit side (`EspritGateway`) runs esprit-dataplane on the gateway's two links (no kernel
addresses there) and esprit-ike on its control ring; how the lab drives esprit-ike is in the
section "esprit-ike, as the lab drives it".
"""

import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import os
import pathlib
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
THIS = pathlib.Path(__file__).resolve()
PYTHON = "/usr/bin/python3"
CHARON = "/usr/lib/ipsec/charon"

# Addresses of the topology.
CLIENT_ADDR = {"client1": "192.168.1.11", "client2": "192.168.1.12"}
LAN_GW = "192.168.1.1"
NAT_WAN = "203.0.113.2"
INET_NAT_SIDE = "203.0.113.254"
INET_GW_SIDE = "198.51.100.254"
GW_OUT = "198.51.100.1"
GW_IN = "10.1.0.1"
SERVER = "10.1.0.5"
PROTECTED = "10.1.0.0/16"
GW_IN6 = "fd00:1::1"      # inside IPv6, used with an IPv6 pool
SERVER6 = "fd00:1::5"
PROTECTED6 = "fd00:1::/64"
POOL4 = "10.9.0.0/24"
SINK_PORT = 5001
GW_ID = "vpn.example.com"
PSK = "esprit-lab-preshared-key-0123456789"
ROLES = ("client1", "client2", "nat", "internet", "gw", "server")

# Plugins, kernel-libipsec before kernel-netlink (LAB.md): the kernel has XFRM but no ESP.
CHARON_PLUGINS = ("random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 pkcs8 x509 "
                  "pubkey constraints revocation kernel-libipsec kernel-netlink socket-default vici")


class LabError(RuntimeError):
    """A lab operation failed; the message carries the relevant log tails."""


def sh(argv, check=True, timeout=60, env=None, input=None):
    """Run argv (a list, or a string for the shell); raise with stderr if it fails."""
    r = subprocess.run(argv, shell=isinstance(argv, str), capture_output=True, text=True, timeout=timeout,
                       env=env, input=input)
    if check and r.returncode != 0:
        cmd = argv if isinstance(argv, str) else " ".join(map(str, argv))
        raise LabError(f"`{cmd}` exited {r.returncode}: {(r.stderr or r.stdout).strip()}")
    return r


def tail(path, lines=60):
    try:
        text = pathlib.Path(path).read_text(errors="replace")
    except OSError as e:
        return f"({path}: {e.strerror})"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# Topology


class Lab:
    """The namespaces, links, NAT and server of one lab instance."""

    def __init__(self, prefix=None, nat_wan_mtu=1500):
        self._names(prefix or f"lab{os.getpid()}")
        self.log_sources = {}  # name -> callable returning a log tail
        self.nat = Nat(self)
        self.internet = Router(self)
        self.server = Server(self)
        self.cleanup()
        try:
            self.dir.mkdir(parents=True)
            self._build(nat_wan_mtu)
            self.server.start()
        except BaseException:
            self.cleanup()
            raise

    def _names(self, prefix):
        if not re.fullmatch(r"[A-Za-z0-9]{1,12}", prefix):
            raise ValueError(f"prefix {prefix!r}: 1 to 12 letters or digits")
        self.prefix = prefix
        self.ns = {r: f"{prefix}-{r}" for r in ROLES}
        self.dir = pathlib.Path(tempfile.gettempdir()) / f"esprit-lab-{prefix}"
        self.ring = prefix  # esprit-dataplane control ring: /dev/shm/esprit-<prefix>
        self.procs = []

    @classmethod
    def remove(cls, prefix):
        """Remove what a lab with this prefix left behind (a crashed run) without building one."""
        lab = cls.__new__(cls)
        lab._names(prefix)
        lab.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    # -- commands inside namespaces

    def nsname(self, ns):
        return self.ns.get(ns, ns)

    def ex(self, ns, argv, check=True, timeout=60, env=None):
        if isinstance(argv, str):
            argv = ["sh", "-c", argv]
        return sh(["ip", "netns", "exec", self.nsname(ns)] + [str(a) for a in argv], check, timeout, env)

    def spawn(self, ns, argv, stdout=None, stderr=None, env=None, text=True):
        """Start argv in namespace ns (tracked: killed by cleanup)."""
        p = subprocess.Popen(["ip", "netns", "exec", self.nsname(ns)] + [str(a) for a in argv], stdout=stdout,
                             stderr=stderr, env=env, text=text, start_new_session=True)
        self.procs.append(p)
        return p

    def add_log(self, name, fn):
        self.log_sources[name] = fn

    def logs_tail(self, lines=40):
        """Every registered log's tail (charon logs, gateway output), for failure reports."""
        out = []
        for name, fn in self.log_sources.items():
            try:
                text = fn(lines)
            except Exception as e:  # a report must never hide the original failure
                text = f"(unavailable: {e})"
            out.append(f"----- {name} (last {lines} lines) -----\n{text}")
        return "\n".join(out)

    def report(self, what, lines=40):
        return f"{what}\n{self.logs_tail(lines)}"

    # -- building

    def _build(self, nat_wan_mtu):
        for n in self.ns.values():
            sh(["ip", "netns", "add", n])
        for r in ROLES:
            self.ex(r, "ip link set lo up")
            for k in ("all", "default"):
                self.ex(r, ["sysctl", "-qw", f"net.ipv4.conf.{k}.rp_filter=0"])
        # Links: (ns A, dev A, ns B, dev B). Created in A with the peer put straight into B.
        links = [("nat", "lan1", "client1", "eth0"), ("nat", "lan2", "client2", "eth0"),
                 ("nat", "wan0", "internet", "to-nat"), ("internet", "to-gw", "gw", "gw-out"),
                 ("gw", "gw-in", "server", "eth0")]
        for a, da, b, db in links:
            self.ex(a, ["ip", "link", "add", da, "type", "veth", "peer", "name", db, "netns", self.ns[b]])
        self.ex("nat", "ip link add br0 type bridge && ip link set lan1 master br0 && ip link set lan2 master br0 "
                       "&& ip link set br0 up")
        # Bridge netfilter is built in: keep the bridge out of the NAT's ruleset and defrag.
        self.ex("nat", "sysctl -qw net.bridge.bridge-nf-call-iptables=0", check=False)
        for a, da, b, db in links:
            for ns, dev in ((a, da), (b, db)):
                self.ex(ns, ["sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1"])
                # AF_PACKET readers (tcpdump, the data plane) must see finished checksums.
                self.ex(ns, ["ethtool", "-K", dev, "tx", "off", "rx", "off"], check=False)
                self.ex(ns, ["ip", "link", "set", dev, "up"])
        for c, addr in CLIENT_ADDR.items():
            self.ex(c, f"ip addr add {addr}/24 dev eth0 && ip route add default via {LAN_GW}")
        self.ex("nat", f"ip addr add {LAN_GW}/24 dev br0 && ip addr add {NAT_WAN}/24 dev wan0 "
                       f"&& ip route add default via {INET_NAT_SIDE} && sysctl -qw net.ipv4.ip_forward=1")
        self.ex("internet", f"ip addr add {INET_NAT_SIDE}/24 dev to-nat && ip addr add {INET_GW_SIDE}/24 dev to-gw "
                            "&& sysctl -qw net.ipv4.ip_forward=1")
        self.ex("server", f"ip addr add {SERVER}/16 dev eth0 && ip route add default via {GW_IN}")
        self.nat.setup()
        if nat_wan_mtu != 1500:
            self.nat.set_wan_mtu(nat_wan_mtu)

    # -- diagnostics

    @contextlib.contextmanager
    def capture(self, ns, iface, filter="", name=None):
        """Capture on `iface` in namespace `ns` with tcpdump while the block runs; yields the
        pcap's path (Ethernet link type)."""
        path = self.dir / f"{name or f'{ns}-{iface}'}-{time.monotonic_ns()}.pcap"
        # A 16 MiB kernel buffer: once, under the full test run with a DPDK gateway polling one
        # of the two cores, a capture of a complete 4 MiB transfer came out 12 % short — most
        # likely packets dropped from tcpdump's default 2 MiB buffer. Tests count packets.
        argv = ["tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-B", "16384", "-s", "0", "-Z", "root",
                "-w", str(path)]
        if filter:
            argv += filter.split()
        p = self.spawn(ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # tcpdump says "listening on" once its socket is bound.
        line = p.stderr.readline()
        if "listening on" not in line:
            p.kill()
            raise LabError(f"tcpdump on {ns}/{iface} did not start: {line}{p.stderr.read()}")
        try:
            yield path
        finally:
            time.sleep(0.2)
            p.send_signal(signal.SIGINT)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def tracepath(self, ns, dst, max_hops=10, timeout=60):
        """tracepath's output (-n) from namespace ns."""
        r = self.ex(ns, ["tracepath", "-n", "-m", max_hops, dst], check=False, timeout=timeout)
        return r.stdout + r.stderr

    # -- cleanup

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            with contextlib.suppress(Exception):
                p.wait(5)
        self.procs = []
        existing = set(sh(["ip", "netns", "list"], check=False).stdout.split())
        for n in self.ns.values():
            if n not in existing:
                continue
            for _ in range(50):
                pids = [int(x) for x in sh(["ip", "netns", "pids", n], check=False).stdout.split() if x.isdigit()]
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.05)
            sh(["ip", "netns", "del", n], check=False)
        # Mounts under the lab's directory (a DPDK hugetlbfs), deepest first.
        mounts = [l.split()[1] for l in open("/proc/mounts")]
        for m in sorted((m for m in mounts if m.startswith(str(self.dir) + "/")), key=len, reverse=True):
            sh(["umount", "-l", m], check=False)
        Hugepages.release_recorded(self.dir)
        for f in pathlib.Path("/dev/shm").glob(f"esprit-{self.ring}*"):
            if f.name in (f"esprit-{self.ring}", f"esprit-{self.ring}-stats", f"esprit-{self.ring}-ike-state"):
                with contextlib.suppress(OSError):
                    f.unlink()
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(f"/var/run/dpdk/{self.prefix}", ignore_errors=True)  # DPDK's --file-prefix runtime dir


class Nat:
    """The home router: masquerade of 192.168.1.0/24 out of wan0, WAN→LAN only for
    established/related flows."""

    RANGES = [(20000, 29999), (30000, 39999), (40000, 49999)]

    def __init__(self, lab):
        self.lab = lab
        self.range = None
        self.rebinds = 0

    def _rules(self):
        lan = 'oifname "wan0" ip saddr 192.168.1.0/24'
        rules = ""
        if self.range:  # ports only exist for TCP and UDP: ICMP and the rest keep the plain rule
            rules += f"        {lan} meta l4proto {{ tcp, udp }} masquerade to :{self.range[0]}-{self.range[1]}\n"
        return rules + f"        {lan} masquerade\n"

    def setup(self):
        ruleset = ("table ip labnat {\n"
                   "    chain postrouting {\n"
                   "        type nat hook postrouting priority srcnat; policy accept;\n"
                   f"{self._rules()}"
                   "    }\n"
                   "    chain forward {\n"
                   "        type filter hook forward priority filter; policy drop;\n"
                   "        ct state established,related accept\n"
                   '        iifname "br0" oifname "wan0" accept\n'
                   "    }\n"
                   "}\n")
        self.lab.ex("nat", f"nft -f - <<'EOF'\n{ruleset}EOF")

    def set_port_range(self, lo, hi):
        """Masquerade TCP/UDP to source ports lo..hi (existing flows keep their mapping)."""
        self.range = (lo, hi)
        self.lab.ex("nat", f"nft -f - <<'EOF'\nflush chain ip labnat postrouting\n"
                           f"table ip labnat {{\n    chain postrouting {{\n{self._rules()}    }}\n}}\nEOF")

    def flush_conntrack(self):
        self.lab.ex("nat", "conntrack -F")

    def rebind(self):
        """Force a NAT rebinding: a new masquerade port range, then every mapping forgotten.
        The clients' next packets leave from new source ports. Returns the new range."""
        self.rebinds += 1
        self.set_port_range(*self.RANGES[(self.rebinds - 1) % len(self.RANGES)])
        self.flush_conntrack()
        return self.range

    def conntrack(self):
        return self.lab.ex("nat", "conntrack -L", check=False).stdout

    def mappings(self, dport=4500):
        """{LAN address: public source port} of the UDP flows from the LAN to the gateway's
        port `dport`, read from the NAT's conntrack table."""
        res = {}
        for line in self.conntrack().splitlines():
            kv = [t.split("=", 1) for t in line.split() if "=" in t]
            srcs = [i for i, (k, _) in enumerate(kv) if k == "src"]
            if not line.startswith("udp") or len(srcs) < 2:
                continue
            orig, reply = dict(kv[srcs[0]:srcs[1]]), dict(kv[srcs[1]:])
            if orig.get("dst") == GW_OUT and orig.get("dport") == str(dport) and orig["src"].startswith("192.168.1."):
                res[orig["src"]] = int(reply["dport"])
        return res

    def set_wan_mtu(self, n):
        """MTU of the NAT–internet link, both ends: the internet router then sends
        fragmentation-needed for bigger DF packets toward the NAT, the NAT for bigger ones
        from its LAN."""
        self.lab.ex("nat", ["ip", "link", "set", "wan0", "mtu", n])
        self.lab.ex("internet", ["ip", "link", "set", "to-nat", "mtu", n])


class Router:
    """The internet router between 203.0.113.0/24 and 198.51.100.0/24 (normal kernel routing)."""

    def __init__(self, lab):
        self.lab = lab

    def set_link_mtu(self, side, n):
        """MTU of its link toward "nat" or "gw", both ends of the veth. (With an Esprit
        gateway the data plane's configured MTU of `outside` does not follow gw-out's.)"""
        if side == "nat":
            self.lab.nat.set_wan_mtu(n)
        elif side == "gw":
            self.lab.ex("internet", ["ip", "link", "set", "to-gw", "mtu", n])
            self.lab.ex("gw", ["ip", "link", "set", "gw-out", "mtu", n])
        else:
            raise ValueError(f"side {side!r}: 'nat' or 'gw'")


class Server:
    """10.1.0.5: answers ping; a TCP sink on SINK_PORT (see `sink_main`)."""

    def __init__(self, lab):
        self.lab = lab
        self.log = None

    def start(self):
        self.log = self.lab.dir / "server-sink.log"
        with open(self.log, "w") as f:
            self.lab.spawn("server", [PYTHON, THIS, "sink", SINK_PORT], stdout=f, stderr=subprocess.STDOUT)
        self.lab.add_log("server sink", lambda n: tail(self.log, n))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if f":{SINK_PORT} " in self.lab.ex("server", "ss -ltnH", check=False).stdout:
                return
            time.sleep(0.05)
        raise LabError(f"the server's TCP sink did not start:\n{tail(self.log)}")

    def enable_ipv6(self):
        """fd00:1::5/64 on the server, default route via the gateway's fd00:1::1."""
        self.lab.ex("server", "sysctl -qw net.ipv6.conf.eth0.disable_ipv6=0 "
                              f"&& ip -6 addr add {SERVER6}/64 dev eth0 nodad && ip -6 route add default via {GW_IN6}")

    def tracepath(self, dst, max_hops=10):
        return self.lab.tracepath("server", dst, max_hops)

    def ping(self, dst, count=3, interval=0.2, size=56, df=False):
        return ping(self.lab, "server", dst, count, interval, size, df)


# ---------------------------------------------------------------------------------------------
# Traffic


def ping(lab, ns, dst, count=3, interval=0.2, size=56, df=False, wait=2):
    """Ping from ns; returns (received, output)."""
    argv = ["ping", "-n", "-q", "-c", count, "-i", interval, "-W", wait, "-s", size]
    if df:
        argv += ["-M", "do"]
    r = lab.ex(ns, argv + [dst], check=False, timeout=count * interval + wait + 30)
    out = r.stdout + r.stderr
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    return (int(m.group(2)) if m else 0), out


class ContinuousPing:
    """ping -D in the background; `stop()` returns the reply timestamps by sequence number."""

    def __init__(self, lab, ns, dst, interval=0.05):
        self.interval = interval
        self.out = lab.dir / f"ping-{ns}-{time.monotonic_ns()}.txt"
        self.f = open(self.out, "w")
        self.p = lab.spawn(ns, ["ping", "-n", "-D", "-i", interval, "-W", 1, dst], stdout=self.f,
                           stderr=subprocess.STDOUT)
        self.start = time.time()

    def stop(self):
        end = time.time()
        self.p.send_signal(signal.SIGINT)
        self.p.wait(5)
        self.f.close()
        text = self.out.read_text()
        replies = {}
        for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)", text, re.M):
            replies.setdefault(int(m.group(2)), float(m.group(1)))
        m = re.search(r"(\d+) packets transmitted", text)
        return PingRun(replies, int(m.group(1)) if m else None, text, end)


@dataclasses.dataclass
class PingRun:
    replies: dict  # icmp_seq -> reply time (epoch seconds)
    transmitted: int
    output: str
    end: float     # when the run was stopped (epoch seconds)

    def longest_gap(self, after):
        """Longest time without a reply between `after` (epoch seconds) and the end of the run."""
        points = [after] + sorted(t for t in self.replies.values() if t >= after) + [self.end]
        return max(b - a for a, b in zip(points, points[1:]))

    def lost(self):
        return None if self.transmitted is None else self.transmitted - len(self.replies)


def sink_main(port):
    """The server's TCP sink: for each connection reads an 8-byte length N and an 8-byte
    length M, then N bytes; answers with SHA-256 of what it received, then M random bytes and
    their SHA-256."""
    try:  # IPv4 and, where the namespace has it, IPv6
        srv = socket.create_server(("::", int(port)), family=socket.AF_INET6, dualstack_ipv6=True)
    except OSError:
        srv = socket.create_server(("0.0.0.0", int(port)))

    def handle(c):
        with c:
            c.settimeout(60)
            hdr = recv_exact(c, 16)
            n, m = struct.unpack("!QQ", hdr)
            h = hashlib.sha256()
            left = n
            while left:
                b = c.recv(min(left, 1 << 16))
                if not b:
                    raise EOFError(f"peer closed with {left} bytes missing")
                h.update(b)
                left -= len(b)
            c.sendall(h.digest())
            data = os.urandom(m)
            c.sendall(data + hashlib.sha256(data).digest())
            print(f"sink: received {n} bytes sha256 {h.hexdigest()}, sent {m}", flush=True)

    while True:
        c, _ = srv.accept()
        threading.Thread(target=lambda: _log_errors(handle, c), daemon=True).start()


def _log_errors(fn, *a):
    try:
        fn(*a)
    except Exception as e:
        print(f"sink: {e!r}", flush=True)


def recv_exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        b = c.recv(n - len(buf))
        if not b:
            raise EOFError(f"peer closed after {len(buf)} of {n} bytes")
        buf += b
    return bytes(buf)


def send_main(host, port, n, m):
    """The client side of the sink protocol; prints one JSON line."""
    n, m = int(n), int(m)
    data = os.urandom(n)
    t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as c:
        c.sendall(struct.pack("!QQ", n, m) + data)
        server_sha = recv_exact(c, 32).hex()
        back = recv_exact(c, m)
        back_sha = recv_exact(c, 32).hex()
    print(json.dumps(dict(sent=n, sent_sha256=hashlib.sha256(data).hexdigest(), server_sha256=server_sha,
                          received=len(back), received_sha256=hashlib.sha256(back).hexdigest(),
                          server_sent_sha256=back_sha, seconds=time.monotonic() - t0)))


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ike_sa_init_request(spi_i, ke, nonce):
    """An IKE_SA_INIT request as a road warrior sends it (RFC 7296 §1.2): SA with one proposal
    (AES-128-GCM-16, PRF-HMAC-SHA256, x25519), KE (group 31), Ni. Built here from the RFC's
    layouts, independently of the code under test."""
    def transform(last, ttype, tid, attrs=b""):
        return struct.pack("!BBHBBH", 0 if last else 3, 0, 8 + len(attrs), ttype, 0, tid) + attrs
    ts = (transform(False, 1, 20, struct.pack("!HH", 0x800E, 128))   # ENCR_AES_GCM_16, key length 128
          + transform(False, 2, 5)                                   # PRF_HMAC_SHA2_256
          + transform(True, 4, 31))                                  # DH Curve25519
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(ts), 1, 1, 0, 3) + ts
    sa = struct.pack("!BBH", 34, 0, 4 + len(proposal)) + proposal            # next: KE
    kep = struct.pack("!BBHHH", 40, 0, 8 + len(ke), 31, 0) + ke              # next: Nonce
    nip = struct.pack("!BBH", 0, 0, 4 + len(nonce)) + nonce
    body = sa + kep + nip
    return struct.pack("!QQBBBBII", spi_i, 0, 33, 0x20, 34, 0x08, 0, 28 + len(body)) + body


def flood_main(dst, rate, seconds, sources):
    """Sends IKE_SA_INIT requests to `dst`:500 from spoofed addresses of the network `sources`
    (raw IPv4 socket, so the kernel routes and resolves the next hop) at `rate` packets a
    second for `seconds`; 20 000 distinct requests (source, SPI, KE, nonce) are built first
    and cycled. Prints one JSON line: sent, seconds."""
    rate, seconds = float(rate), float(seconds)
    net = ipaddress.ip_network(sources)
    dst_b = ipaddress.ip_address(dst).packed
    frames = []
    for i in range(20000):
        src = net.network_address + 1 + (secrets.randbelow(net.num_addresses - 2))
        ike = ike_sa_init_request(secrets.randbits(64) | 1, os.urandom(32), os.urandom(32))
        sport = 500 if i % 2 else 1024 + secrets.randbelow(60000)
        udp_len = 8 + len(ike)
        pseudo = src.packed + dst_b + struct.pack("!BBH", 0, 17, udp_len)
        udp = struct.pack("!HHHH", sport, 500, udp_len, 0) + ike
        c = _csum(pseudo + udp) or 0xffff
        udp = udp[:6] + struct.pack("!H", c) + udp[8:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, i & 0xffff, 0, 64, 17, 0, src.packed, dst_b)
        ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
        frames.append(ip + udp)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 22)
    sent, errors, n = 0, 0, len(frames)
    t0 = time.monotonic()
    while True:
        el = time.monotonic() - t0
        if el >= seconds:
            break
        due = int(el * rate) - sent
        for _ in range(min(due, 2000)):
            try:
                s.sendto(frames[sent % n], (dst, 0))
            except OSError:
                errors += 1
            sent += 1
        if due <= 0:
            time.sleep(0.0005)
    print(json.dumps(dict(sent=sent, errors=errors, seconds=time.monotonic() - t0)), flush=True)


@dataclasses.dataclass
class Transfer:
    sent: int
    received: int
    up_ok: bool    # the server's SHA-256 of what it got equals ours of what we sent
    down_ok: bool  # our SHA-256 of what we got equals the server's of what it sent
    seconds: float


# ---------------------------------------------------------------------------------------------
# strongSwan (charon per namespace, LAB.md)


class Charon:
    """One charon in a namespace: private /run (bind mount), own strongswan.conf (through
    STRONGSWAN_CONF), own vici socket, plugins in LAB.md's order, a log file."""

    def __init__(self, lab, ns, name, keep_alive=20, retransmit=None, fragment_size=None):
        self.lab, self.ns, self.name = lab, ns, name
        self.dir = lab.dir / name
        self.run = self.dir / "run"
        self.swanctl_dir = self.dir / "swanctl"
        self.conf = self.dir / "strongswan.conf"
        self.log = self.dir / "charon.log"
        self.vici = self.run / "charon.vici"
        self.keep_alive = keep_alive
        self.retransmit = retransmit  # (timeout s, tries, base) or None
        self.fragment_size = fragment_size
        self.proc = None
        for d in ("", "run", "swanctl", "swanctl/x509", "swanctl/x509ca", "swanctl/rsa", "swanctl/ecdsa",
                  "swanctl/private", "swanctl/pubkey", "swanctl/conf.d"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        lab.add_log(f"{name} charon", self.log_tail)

    def write_conf(self):
        extra = ""
        if self.retransmit:
            t, n, b = self.retransmit
            extra += f"    retransmit_timeout = {t}\n    retransmit_tries = {n}\n    retransmit_base = {b}\n"
        if self.fragment_size is not None:
            extra += f"    fragment_size = {self.fragment_size}\n"
        self.conf.write_text(f"""# {self.name}: written by esprit_lab.py
charon {{
    load = {CHARON_PLUGINS}
    keep_alive = {self.keep_alive}s
    install_virtual_ip = yes
{extra}    plugins {{
        vici {{
            socket = unix://{self.vici}
        }}
    }}
    filelog {{
        lab {{
            path = {self.log}
            time_format = %H:%M:%S
            time_add_ms = yes
            ike_name = yes
            append = no
            flush_line = yes
            default = 1
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
    }}
}}
swanctl {{
    load = pem pkcs1 pkcs8 x509 pubkey random openssl gmp curve25519
}}
""")

    def env(self):
        return dict(os.environ, STRONGSWAN_CONF=str(self.conf), SWANCTL_DIR=str(self.swanctl_dir))

    def start(self):
        self.write_conf()
        out = open(self.dir / "charon.stdout", "w")
        self.proc = self.lab.spawn(self.ns, ["sh", "-c", f"mount --bind {self.run} /run && exec {CHARON}"],
                                   stdout=out, stderr=subprocess.STDOUT, env=self.env())
        out.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"{self.name}: charon exited {self.proc.returncode}\n"
                               f"{tail(self.dir / 'charon.stdout')}\n{self.log_tail()}")
            if self.vici.exists() and self.swanctl("--stats", check=False).returncode == 0:
                return
            time.sleep(0.05)
        raise LabError(f"{self.name}: charon's vici socket did not come up\n{self.log_tail()}")

    def swanctl(self, *args, check=True, timeout=60):
        r = sh(["swanctl", *map(str, args), "--uri", f"unix://{self.vici}"], check=False, timeout=timeout,
               env=self.env())
        if check and r.returncode != 0:
            raise LabError(f"{self.name}: swanctl {' '.join(map(str, args))} exited {r.returncode}:\n"
                           f"{r.stdout}{r.stderr}\n{self.lab.logs_tail()}")
        return r

    def load(self, swanctl_conf):
        (self.swanctl_dir / "swanctl.conf").write_text(swanctl_conf)
        return self.swanctl("--load-all", "--noprompt")

    def list_sas(self):
        return parse_list_sas(self.swanctl("--list-sas", "--pretty").stdout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        """SIGKILL: the peer gets no DELETE."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines=60):
        return tail(self.log, lines)

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def parse_list_sas(text):
    """Parse `swanctl --list-sas --pretty` (vici messages printed as nested `key = value`,
    `key {`…`}` and `key = [`…`]`) into a list of IkeSa."""
    sas = []
    stack = [{}]
    key_stack = []
    list_key = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if list_key is not None:
            if line == "]":
                list_key = None
            else:
                stack[-1][list_key].append(line)
            continue
        if line.endswith("{"):
            k = line[:-1].strip()
            d = {}
            stack[-1][k] = d
            stack.append(d)
            key_stack.append(k)
        elif line == "}":
            stack.pop()
            k = key_stack.pop()
            if k == "list-sa event" and len(stack) == 1:
                for name, body in stack[0].pop(k).items():
                    sas.append(IkeSa.from_vici(name, body))
        elif line.endswith("= ["):
            list_key = line[:-3].strip()
            stack[-1][list_key] = []
        elif "=" in line:
            k, v = line.split("=", 1)
            stack[-1][k.strip()] = v.strip()
    return sas


@dataclasses.dataclass
class ChildSa:
    name: str
    state: str
    spi_in: str
    spi_out: str
    bytes_in: int
    packets_in: int
    bytes_out: int
    packets_out: int
    encr_alg: str
    integ_alg: str
    raw: dict


@dataclasses.dataclass
class IkeSa:
    name: str
    uniqueid: int
    state: str
    local_host: str
    local_port: int
    remote_host: str
    remote_port: int
    initiator_spi: str
    responder_spi: str
    local_vips: list
    remote_vips: list
    child_sas: list
    raw: dict

    @classmethod
    def from_vici(cls, name, d):
        children = []
        for cname, c in d.get("child-sas", {}).items():
            children.append(ChildSa(c.get("name", cname), c.get("state", ""), c.get("spi-in", ""), c.get("spi-out", ""),
                                    int(c.get("bytes-in", 0)), int(c.get("packets-in", 0)), int(c.get("bytes-out", 0)),
                                    int(c.get("packets-out", 0)), c.get("encr-alg", ""), c.get("integ-alg", ""), c))
        return cls(name, int(d.get("uniqueid", 0)), d.get("state", ""), d.get("local-host", ""),
                   int(d.get("local-port", 0)), d.get("remote-host", ""), int(d.get("remote-port", 0)),
                   d.get("initiator-spi", ""), d.get("responder-spi", ""), d.get("local-vips", []),
                   d.get("remote-vips", []), children, d)


def _duration(v):
    return None if v is None else f"{v}s"


def _opt(key, v, indent):
    return f"{' ' * indent}{key} = {v}\n" if v is not None else ""


class Client:
    """A strongSwan road warrior in client1 or client2 (one charon per namespace)."""

    def __init__(self, lab, name="client1", auth="psk", psk=PSK, pki=None, proposals="aes128gcm16-prfsha256-x25519",
                 esp_proposals="aes128gcm16", keep_alive=20, rekey_time=None, life_time=None, rand_time=None,
                 child_rekey_time=None, child_life_time=None, child_rand_time=None, dpd_delay=None, mobike=True,
                 fragmentation=True, fragment_size=None, vips6=False, retransmit=None):
        if name not in CLIENT_ADDR:
            raise ValueError(f"client {name!r}: one of {sorted(CLIENT_ADDR)}")
        if auth == "pubkey" and pki is None:
            raise ValueError("auth = pubkey needs a Pki")
        self.lab, self.name, self.auth, self.psk, self.pki = lab, name, auth, psk, pki
        self.id = f"{name}@example.com"
        self.opts = dict(proposals=proposals, esp_proposals=esp_proposals, rekey_time=rekey_time, life_time=life_time,
                         rand_time=rand_time, child_rekey_time=child_rekey_time, child_life_time=child_life_time,
                         child_rand_time=child_rand_time, dpd_delay=dpd_delay, mobike=mobike,
                         fragmentation=fragmentation, vips6=vips6)
        self.charon = Charon(lab, name, name, keep_alive=keep_alive, retransmit=retransmit, fragment_size=fragment_size)

    def swanctl_conf(self):
        o = self.opts
        ike = ""
        if o["rekey_time"] is not None:
            ike += f"        rekey_time = {o['rekey_time']}s\n        reauth_time = 0\n"
            if o["life_time"] is not None:  # swanctl: IKE life = rekey_time + over_time
                ike += f"        over_time = {o['life_time'] - o['rekey_time']}s\n"
        ike += _opt("rand_time", _duration(o["rand_time"]), 8)
        ike += _opt("dpd_delay", _duration(o["dpd_delay"]), 8)
        child = _opt("rekey_time", _duration(o["child_rekey_time"]), 16)
        child += _opt("life_time", _duration(o["child_life_time"]), 16)
        child += _opt("rand_time", _duration(o["child_rand_time"]), 16)
        if self.auth == "psk":
            local = f"            auth = psk\n            id = {self.id}\n"
            remote = f"            auth = psk\n            id = {GW_ID}\n"
            secrets_ = f'secrets {{\n    ike-gw {{\n        id = {GW_ID}\n        secret = "{self.psk}"\n    }}\n}}\n'
        else:
            local = f"            auth = pubkey\n            id = {self.id}\n            certs = {self.name}.pem\n"
            remote = f"            auth = pubkey\n            id = {GW_ID}\n"
            secrets_ = ""
        vips = "0.0.0.0, ::" if o["vips6"] else "0.0.0.0"
        remote_ts = PROTECTED + (f", {PROTECTED6}" if o["vips6"] else "")
        return f"""# {self.name}: written by esprit_lab.py
connections {{
    home {{
        version = 2
        remote_addrs = {GW_OUT}
        vips = {vips}
        proposals = {o['proposals']}
        fragmentation = {'yes' if o['fragmentation'] else 'no'}
        mobike = {'yes' if o['mobike'] else 'no'}
{ike}        local {{
{local}        }}
        remote {{
{remote}        }}
        children {{
            home {{
                remote_ts = {remote_ts}
                esp_proposals = {o['esp_proposals']}
{child}            }}
        }}
    }}
}}
{secrets_}"""

    def start(self):
        if self.auth == "pubkey":
            self.pki.install_client(self.charon.swanctl_dir, self.name)
        self.charon.start()
        self.charon.load(self.swanctl_conf())
        return self

    def initiate(self, timeout=15):
        """swanctl --initiate; returns once the CHILD SA is installed, or raises with the logs."""
        r = self.charon.swanctl("--initiate", "--child", "home", "--timeout", timeout, check=False,
                                timeout=timeout + 10)
        sas = self.list_sas() if self.charon.alive() else []
        if r.returncode != 0 or not any(c.state == "INSTALLED" for s in sas for c in s.child_sas):
            raise LabError(f"{self.name}: initiate failed (exit {r.returncode}):\n{r.stdout[-3000:]}{r.stderr}\n"
                           f"{self.lab.logs_tail()}")
        return sas[0]

    def list_sas(self):
        return self.charon.list_sas()

    def virtual_ip(self):
        for s in self.list_sas():
            for v in s.local_vips:
                if ipaddress.ip_address(v).version == 4:
                    return v
        raise LabError(f"{self.name}: no virtual IP\n{self.lab.logs_tail()}")

    def terminate(self, timeout=10):
        return self.charon.swanctl("--terminate", "--ike", "home", "--timeout", timeout, timeout=timeout + 10)

    def kill(self):
        self.charon.kill()

    def stop(self):
        self.charon.stop()

    def ping(self, dst, count=3, interval=0.2, size=56, df=False):
        """Received count of `count` echo requests."""
        return ping(self.lab, self.name, dst, count, interval, size, df)[0]

    def ping_output(self, dst, count=3, interval=0.2, size=56, df=False):
        return ping(self.lab, self.name, dst, count, interval, size, df)

    def continuous_ping(self, dst, interval=0.05):
        return ContinuousPing(self.lab, self.name, dst, interval)

    def tcp_transfer(self, dst, nbytes, back=None, port=SINK_PORT, timeout=120):
        """Send nbytes random bytes to the server's sink and get `back` (default nbytes)
        random bytes back; SHA-256 checked both ways. Raises with the logs on a mismatch."""
        back = nbytes if back is None else back
        r = self.lab.ex(self.name, [PYTHON, THIS, "send", dst, port, nbytes, back], check=False, timeout=timeout)
        try:
            d = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise LabError(f"{self.name}: TCP transfer to {dst} failed:\n{r.stdout}{r.stderr}\n{self.lab.logs_tail()}")
        t = Transfer(d["sent"], d["received"], d["sent_sha256"] == d["server_sha256"],
                     d["received_sha256"] == d["server_sent_sha256"], d["seconds"])
        if not (t.up_ok and t.down_ok and t.received == back):
            raise LabError(f"{self.name}: TCP transfer checksum mismatch: {d}\n{self.lab.logs_tail()}")
        return t

    def tracepath(self, dst, max_hops=10):
        return self.lab.tracepath(self.name, dst, max_hops)

    def log_text(self):
        return self.charon.log_text()


# ---------------------------------------------------------------------------------------------
# Certificates


class Pki:
    """A CA and end-entity certificates made with strongSwan's `pki`: key `kind` "rsa"
    (RSA-3072) or "ecdsa" (P-256). The gateway's has SANs vpn.example.com and 198.51.100.1,
    each client's clientN@example.com."""

    def __init__(self, directory, kind="ecdsa", clients=("client1", "client2")):
        if kind not in ("rsa", "ecdsa"):
            raise ValueError(f"kind {kind!r}: 'rsa' or 'ecdsa'")
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.kind = kind
        self.ca_key = self._key("ca")
        self.ca_cert = self.dir / "ca.pem"
        self._pki("--self", "--ca", "--lifetime", 3650, "--in", self.ca_key, "--dn", "C=CH, O=Esprit lab, CN=Esprit lab CA",
                  "--outform", "pem", out=self.ca_cert)
        self.certs = {}
        self._issue("gw", f"C=CH, O=Esprit lab, CN={GW_ID}", [GW_ID, GW_OUT], ["serverAuth", "ikeIntermediate"])
        for c in clients:
            self._issue(c, f"C=CH, O=Esprit lab, CN={c}@example.com", [f"{c}@example.com"], ["clientAuth"])

    def _pki(self, *args, out):
        r = sh(["pki", *map(str, args)], check=False)
        if r.returncode != 0:
            raise LabError(f"pki {' '.join(map(str, args))}: {r.stderr}")
        pathlib.Path(out).write_text(r.stdout)

    def _key(self, name):
        path = self.dir / f"{name}.key"
        size = 3072 if self.kind == "rsa" else 256
        path.touch(mode=0o600)  # private keys are for their owner only (esprit-ike checks)
        self._pki("--gen", "--type", self.kind, "--size", size, "--outform", "pem", out=path)
        return path

    def _issue(self, name, dn, sans, flags):
        key = self._key(name)
        pub = self.dir / f"{name}.pub"
        self._pki("--pub", "--in", key, "--outform", "pem", out=pub)
        cert = self.dir / f"{name}.pem"
        args = ["--issue", "--lifetime", 1825, "--cacert", self.ca_cert, "--cakey", self.ca_key, "--type", "pub",
                "--in", pub, "--dn", dn, "--outform", "pem"]
        for s in sans:
            args += ["--san", s]
        for f in flags:
            args += ["--flag", f]
        self._pki(*args, out=cert)
        self.certs[name] = (cert, key)

    def _install(self, swanctl_dir, name):
        cert, key = self.certs[name]
        d = pathlib.Path(swanctl_dir)
        shutil.copy(self.ca_cert, d / "x509ca" / "ca.pem")
        shutil.copy(cert, d / "x509" / f"{name}.pem")
        shutil.copy(key, d / self.kind / f"{name}.key")

    def install_client(self, swanctl_dir, name):
        self._install(swanctl_dir, name)

    def install_gateway(self, swanctl_dir):
        self._install(swanctl_dir, "gw")


# ---------------------------------------------------------------------------------------------
# Gateways


@dataclasses.dataclass
class GatewayConn:
    """The gateway's remote-access connection, whatever the gateway kind."""
    auth: str = "psk"                 # "psk" or "pubkey"
    psk: str = PSK
    pki: Pki = None
    proposals: tuple = ("aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048")
    esp_proposals: tuple = ("aes128gcm16", "aes128-sha1")
    pool4: str = POOL4
    pool6: str = None                 # e.g. "fd00:9::/120"; adds fd00:1::/64 (server fd00:1::5) inside
    local_ts: tuple = (PROTECTED,)
    dpd_delay: int = None             # seconds; DPD also clears the SAs of a dead peer
    fragmentation: bool = True
    fragment_size: int = None         # bytes (IP datagram) of IKE fragments; None: the default
    retransmit: tuple = None          # (timeout s, tries, base) for the gateway's requests
    keepalive: int = 20               # NAT keepalive interval, seconds
    id: str = GW_ID
    metrics: str = "127.0.0.1:9477"   # esprit-ike's /metrics listener (in the gateway namespace)


def gateway_family(kind):
    """"strongswan" or "esprit" for a gateway kind such as "esprit-dpdk"."""
    return kind.split("-")[0]


class Gateway:
    """What every gateway kind offers the tests."""
    kind = "?"

    def __init__(self, lab, conn):
        self.lab, self.conn = lab, conn

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def logs(self, lines=60):
        raise NotImplementedError

    def sa_spis(self):
        """SPIs (lower-case hex, no 0x) of the ESP SAs installed on the gateway."""
        raise NotImplementedError

    def ike_sa_count(self):
        """IKE SAs the gateway holds, or None where the gateway cannot tell yet."""
        raise NotImplementedError


class StrongswanGateway(Gateway):
    """strongSwan (charon with kernel-libipsec) as the responder: kernel addresses on both
    links, ip_forward=1, virtual IP pool, local_ts, PSK or certificate auth."""
    kind = "strongswan"

    def __init__(self, lab, conn):
        super().__init__(lab, conn)
        self.charon = Charon(lab, "gw", "gw", keep_alive=conn.keepalive, retransmit=conn.retransmit,
                             fragment_size=conn.fragment_size)

    def swanctl_conf(self):
        c = self.conn
        pools = "pool4" + (", pool6" if c.pool6 else "")
        local_ts = ", ".join(c.local_ts) + (f", {PROTECTED6}" if c.pool6 else "")
        if c.auth == "psk":
            local = f"            auth = psk\n            id = {c.id}\n"
            remote = "            auth = psk\n"
            secrets_ = f'secrets {{\n    ike-rw {{\n        secret = "{c.psk}"\n    }}\n}}\n'
        else:
            local = f"            auth = pubkey\n            id = {c.id}\n            certs = gw.pem\n"
            remote = "            auth = pubkey\n            cacerts = ca.pem\n"
            secrets_ = ""
        dpd = f"        dpd_delay = {c.dpd_delay}s\n" if c.dpd_delay else ""
        pool6 = f"    pool6 {{\n        addrs = {c.pool6}\n    }}\n" if c.pool6 else ""
        return f"""# gateway: written by esprit_lab.py
connections {{
    rw {{
        version = 2
        local_addrs = {GW_OUT}
        pools = {pools}
        proposals = {', '.join(c.proposals)}
        fragmentation = {'yes' if c.fragmentation else 'no'}
        unique = never
{dpd}        local {{
{local}        }}
        remote {{
{remote}        }}
        children {{
            rw {{
                local_ts = {local_ts}
                esp_proposals = {', '.join(c.esp_proposals)}
                dpd_action = clear
            }}
        }}
    }}
}}
pools {{
    pool4 {{
        addrs = {c.pool4}
    }}
{pool6}}}
{secrets_}"""

    def start(self):
        lab = self.lab
        lab.ex("gw", f"ip addr add {GW_OUT}/24 dev gw-out && ip addr add {GW_IN}/16 dev gw-in "
                     f"&& ip route add default via {INET_GW_SIDE} && sysctl -qw net.ipv4.ip_forward=1")
        if self.conn.pool6:
            lab.server.enable_ipv6()
            lab.ex("gw", "sysctl -qw net.ipv6.conf.gw-in.disable_ipv6=0 net.ipv6.conf.all.forwarding=1 "
                         f"&& ip -6 addr add {GW_IN6}/64 dev gw-in nodad")
        if self.conn.auth == "pubkey":
            self.conn.pki.install_gateway(self.charon.swanctl_dir)
        self.charon.start()
        self.charon.load(self.swanctl_conf())
        return self

    def stop(self):
        self.charon.stop()
        self.lab.ex("gw", "ip addr flush dev gw-out; ip addr flush dev gw-in", check=False)

    def logs(self, lines=60):
        return self.charon.log_tail(lines)

    def list_sas(self):
        return self.charon.list_sas()

    def sa_spis(self):
        live = ("INSTALLED", "REKEYING", "REKEYED")
        return {spi.lower() for s in self.list_sas() for c in s.child_sas if c.state in live
                for spi in (c.spi_in, c.spi_out) if spi}

    def ike_sa_count(self):
        return len(self.list_sas())


# ---------------------------------------------------------------------------------------------
# Esprit


def find_binary(name, env):
    """$env, else the newest of target/{release,lab/release}/name."""
    if os.environ.get(env):
        return pathlib.Path(os.environ[env])
    cands = [ROOT / "target" / "release" / name, ROOT / "target" / "lab" / "release" / name]
    found = [c for c in cands if c.exists()]
    return max(found, key=lambda c: c.stat().st_mtime) if found else cands[0]


def meminfo(key):
    for line in open("/proc/meminfo"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


class Hugepages:
    """2 MiB hugepages for one DPDK data plane and a hugetlbfs under the lab's directory:
    the pool grows by `pages` and shrinks back by as many on release (recorded in the lab
    directory, so the cleanup of a crashed run gives them back too)."""
    NR = "/proc/sys/vm/nr_hugepages"

    def __init__(self, lab_dir, pages=320):
        self.record = pathlib.Path(lab_dir) / "hugepages-added"
        self.dir = pathlib.Path(lab_dir) / "hugetlbfs"
        before = int(open(self.NR).read())
        with open(self.NR, "w") as f:
            f.write(str(before + pages))
        added = int(open(self.NR).read()) - before
        self.record.write_text(str(added))
        if meminfo("HugePages_Free") < pages:
            Hugepages.release_recorded(lab_dir)
            raise LabError(f"could not reserve {pages} hugepages (got {added}): memory too fragmented? "
                           "try `echo 3 > /proc/sys/vm/drop_caches`")
        self.dir.mkdir(exist_ok=True)
        sh(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", self.dir])

    def release(self):
        Hugepages.release_recorded(self.record.parent)

    @staticmethod
    def release_recorded(lab_dir):
        d = pathlib.Path(lab_dir)
        if os.path.ismount(d / "hugetlbfs"):
            sh(["umount", d / "hugetlbfs"], check=False)
        rec = d / "hugepages-added"
        if rec.exists():
            added = int(rec.read_text() or 0)
            now = int(open(Hugepages.NR).read())
            with open(Hugepages.NR, "w") as f:
                f.write(str(max(0, now - added)))
            rec.unlink()


def esp_tunnel_mtu(proposal, outer_mtu=1500, natt=True):
    """Largest inner IPv4 packet an ESP tunnel-mode SA carries in an outer IPv4 packet of
    outer_mtu bytes (RFC 4303 §2: SPI, sequence number, IV, payload padded with the 2-byte
    trailer to the cipher's block size (4 for AEAD and stream), ICV; RFC 3948: 8-byte UDP
    header). Written here from the RFCs, independently of the data plane's code."""
    sizes = {  # IV, block, ICV
        "aes128gcm16": (8, 4, 16), "aes256gcm16": (8, 4, 16), "chacha20poly1305": (8, 4, 16),
        "aes128-sha1": (16, 16, 12), "aes256-sha1": (16, 16, 12),
        "aes128-sha256": (16, 16, 16), "aes256-sha256": (16, 16, 16),
    }
    iv, block, icv = sizes[proposal]
    room = outer_mtu - 20 - (8 if natt else 0) - 8 - iv - icv
    return room // block * block - 2


class EspritGateway(Gateway):
    """esprit-dataplane on gw-out (outside 198.51.100.1/24) and gw-in (inside 10.1.0.1/16),
    with NO kernel address on them, AF_PACKET or DPDK net_af_packet; esprit-ike on its control
    ring. Raises RuntimeError when a binary is missing."""
    kind = "esprit"
    MAC_OUT = "02:00:00:00:01:01"
    MAC_IN = "02:00:00:00:02:01"

    def __init__(self, lab, conn, driver="af_packet", workers=1, dataplane=None, ike=None):
        super().__init__(lab, conn)
        if driver not in ("af_packet", "dpdk"):
            raise ValueError(f"driver {driver!r}: 'af_packet' or 'dpdk'")
        self.driver, self.workers = driver, workers
        self.dataplane_bin = pathlib.Path(dataplane) if dataplane else find_binary("esprit-dataplane", "ESPRIT_DATAPLANE")
        self.ike_bin = pathlib.Path(ike) if ike else find_binary("esprit-ike", "ESPRIT_IKE")
        self.dir = lab.dir / "esprit"
        self.dir.mkdir(exist_ok=True)
        self.dp = self.ike = self.huge = None
        self.dp_out = self.dir / "dataplane.out"
        self.ike_out = self.dir / "esprit-ike.out"
        lab.add_log("esprit-dataplane", lambda n: tail(self.dp_out, n))
        lab.add_log("esprit-ike", lambda n: tail(self.ike_out, n))

    @staticmethod
    def check_binaries(dataplane=None, ike=None):
        dp = pathlib.Path(dataplane) if dataplane else find_binary("esprit-dataplane", "ESPRIT_DATAPLANE")
        ik = pathlib.Path(ike) if ike else find_binary("esprit-ike", "ESPRIT_IKE")
        if not os.access(dp, os.X_OK):
            raise RuntimeError(f"esprit-dataplane binary not found at {dp} (build it, or set ESPRIT_DATAPLANE)")
        if not os.access(ik, os.X_OK):
            raise RuntimeError(f"esprit-ike binary not found at {ik} (set ESPRIT_IKE)")

    def dataplane_config(self):
        eal, dev_out, dev_in = "", 'device = "gw-out"', 'device = "gw-in"'
        if self.driver == "dpdk":
            mem = f'"--huge-dir", "{self.huge.dir}"' if self.huge else '"--no-huge"'
            eal = f'eal_args = [{mem}, "-m", "512", "--no-pci", "--no-telemetry", "--file-prefix", "{self.lab.prefix}"]\n'
            q = f"qpairs={self.workers}"
            dev_out = f'driver = "dpdk"\ndevice = "net_af_packet0,iface=gw-out,{q}"'
            dev_in = f'driver = "dpdk"\ndevice = "net_af_packet1,iface=gw-in,{q}"'
        inside_addr = f'["{GW_IN}/16", "{GW_IN6}/64"]' if self.conn.pool6 else f'"{GW_IN}/16"'
        return f"""# esprit-dataplane for the lab gateway: written by esprit_lab.py
[dataplane]
workers = {self.workers}
keepalive_interval = {self.conn.keepalive}
control_ring = "{self.lab.ring}"
{eal}
[[interface]]
name = "outside"
role = "outside"
{dev_out}
address = "{GW_OUT}/24"
mac = "{self.MAC_OUT}"
mtu = 1500

[[interface]]
name = "inside"
role = "inside"
{dev_in}
address = {inside_addr}
mac = "{self.MAC_IN}"
mtu = 1500

[[route]]
destination = "0.0.0.0/0"
via = "{INET_GW_SIDE}"
interface = "outside"
"""

    def start_dataplane(self):
        """The data-plane half: links up without kernel addresses, config, hugepages for DPDK,
        esprit-dataplane started and attached to the control ring."""
        if not os.access(self.dataplane_bin, os.X_OK):
            raise RuntimeError(f"esprit-dataplane binary not found at {self.dataplane_bin}")
        lab = self.lab
        # The kernel must stay quiet on the data plane's links: no address (no ARP answers,
        # no port unreachable), no IPv6 (no link-local, no ND).
        for dev, mac in (("gw-out", self.MAC_OUT), ("gw-in", self.MAC_IN)):
            lab.ex("gw", f"ip addr flush dev {dev} && ip link set {dev} address {mac}")
        if self.conn.pool6:
            lab.server.enable_ipv6()
        if self.driver == "dpdk":
            self.huge = Hugepages(lab.dir)
        cfg = self.dir / "dataplane.toml"
        cfg.write_text(self.dataplane_config())
        check = sh([self.dataplane_bin, "--config", cfg, "--check-config"], check=False)
        if check.returncode != 0:
            raise LabError(f"esprit-dataplane refuses the lab's config:\n{check.stdout}{check.stderr}")
        with open(self.dp_out, "w") as f:
            self.dp = lab.spawn("gw", [self.dataplane_bin, "--config", cfg], stdout=f, stderr=subprocess.STDOUT)
        # Ready when it answers ARP and ping for its inside address (DPDK takes a second or two).
        stats = pathlib.Path(f"/dev/shm/esprit-{lab.ring}-stats")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.dp.poll() is not None:
                raise LabError(f"esprit-dataplane exited {self.dp.returncode}:\n{tail(self.dp_out)}")
            if stats.exists() and ping(lab, "server", GW_IN, 1, 0.2, wait=1)[0] == 1:
                return
            time.sleep(0.1)
        raise LabError(f"esprit-dataplane does not answer ping on {GW_IN} (stats segment {stats} "
                       f"{'exists' if stats.exists() else 'missing'}):\n{tail(self.dp_out)}")

    def start(self, ike_config=None, ike_in_host=False):
        """Both processes; `ike_config` (TOML text) replaces the generated esprit-ike config.
        esprit-ike never touches the wire, so it may run in the host's namespace
        (`ike_in_host`: its /metrics listener is then reachable from the host)."""
        EspritGateway.check_binaries(self.dataplane_bin, self.ike_bin)
        self.start_dataplane()
        cfg = self.dir / "esprit-ike.toml"
        cfg.write_text(ike_config or esprit_ike_config(self.conn, self.lab, self.dir))
        # A new gateway: no state from an esprit-ike of an earlier test.
        self.ike_state().unlink(missing_ok=True)
        self.ike_out.write_text("")
        self.start_ike(ike_in_host)
        return self

    def ike_state(self):
        """esprit-ike's journal (beside the ring): what a restarted esprit-ike carries on from."""
        return pathlib.Path(f"/dev/shm/esprit-{self.lab.ring}-ike-state")

    def start_ike(self, ike_in_host=False):
        """esprit-ike alone (again, after a kill: it restores its SAs from its journal)."""
        cfg = self.dir / "esprit-ike.toml"
        (self.dir / "esprit-ike.sock").unlink(missing_ok=True)  # a killed one leaves it
        with open(self.ike_out, "a") as f:
            argv = esprit_ike_command(self.ike_bin, cfg)
            if ike_in_host:
                self.ike = subprocess.Popen([str(a) for a in argv], stdout=f, stderr=subprocess.STDOUT,
                                            start_new_session=True)
                self.lab.procs.append(self.ike)
            else:
                self.ike = self.lab.spawn("gw", argv, stdout=f, stderr=subprocess.STDOUT)
        esprit_ike_wait_ready(self)

    def stop(self):
        for p in (self.ike, self.dp):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.huge:
            self.huge.release()
            self.huge = None

    def logs(self, lines=60):
        return f"{tail(self.dp_out, lines)}\n{tail(self.ike_out, lines)}"

    def dataplane_stats(self):
        ctl = find_binary("espritctl", "ESPRITCTL")
        return sh([ctl, "dataplane-stats", "--instance", self.lab.ring, "--sa"]).stdout

    def sa_spis(self):
        """From the data plane's stats segment: the SAs actually installed (what esprit-ike
        pushed and has not removed)."""
        spis = set()
        for line in self.dataplane_stats().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith("0x") and parts[1] in ("in", "out"):
                spis.add(f"{int(parts[0], 16):08x}")
        return spis

    def ike_sa_count(self):
        return esprit_ike_sa_count(self)

    def metrics(self):
        """esprit-ike's /metrics, scraped from inside the gateway namespace, as
        {(name, frozenset(labels.items())): value}."""
        url = f"http://{self.conn.metrics}/metrics"
        r = self.lab.ex("gw", f"python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen(\"{url}\", timeout=5).read().decode())'")
        return parse_metrics(r.stdout)


# ---------------------------------------------------------------------------------------------
# esprit-ike, as the lab drives it (controlplane/daemon):
#
#  * Command line: `esprit-ike --config FILE`, in the foreground until SIGTERM (then it deletes
#    its IKE SAs, telling the clients), logging to stdout; it attaches to the data plane's
#    control ring named in the file (the data plane is started first).
#  * Config: the TOML esprit_ike_config() writes — [ike] (ring, ctl_socket, fragment_size),
#    [ike.retransmit] (timeout, base, tries: strongSwan's semantics), [[pool]] (name, addrs),
#    one [[connection]] (see README.md, "Road warriors").
#  * Ready: the control socket exists.
#  * IKE SAs: `espritctl --socket SOCK list-sas --json`.


def esprit_ike_config(conn, lab=None, directory=None):
    """esprit-ike's configuration for the lab's remote-access connection `conn` (a GatewayConn)."""
    ring = lab.ring if lab else "default"
    d = pathlib.Path(directory) if directory else pathlib.Path(".")
    q = lambda xs: "[" + ", ".join(f'"{x}"' for x in xs) + "]"
    rt = conn.retransmit or (4.0, 5, 1.8)
    if conn.auth == "pubkey":
        cert, key = conn.pki.certs["gw"]
        auth = (f'local_auth = "pubkey"\nkey = "{key}"\ncerts = ["{cert}"]\n'
                f'remote_id = "%any"\nremote_auth = "pubkey"\ncacerts = ["{conn.pki.ca_cert}"]\n')
    else:
        auth = f'local_auth = "psk"\npsk = "{conn.psk}"\nremote_id = "%any"\nremote_auth = "psk"\n'
    pools = [("rw4", conn.pool4)] + ([("rw6", conn.pool6)] if conn.pool6 else [])
    local_ts = list(conn.local_ts) + ([PROTECTED6] if conn.pool6 else [])
    pool_sections = "".join(f'[[pool]]\nname = "{n}"\naddrs = "{a}"\n\n' for n, a in pools)
    return f"""# esprit-ike for the lab gateway: written by esprit_lab.py
[ike]
ring = "{ring}"
ctl_socket = "{d / 'esprit-ike.sock'}"
metrics = "{conn.metrics}"
fragment_size = {conn.fragment_size or 1280}

[ike.retransmit]
timeout = {float(rt[0])}
tries = {rt[1]}
base = {float(rt[2])}

{pool_sections}[[connection]]
name = "rw"
local_addrs = ["{GW_OUT}"]
ike_proposals = {q(conn.proposals)}
esp_proposals = {q(conn.esp_proposals)}
local_id = "{conn.id}"
{auth}local_ts = {q(local_ts)}
pools = {q(n for n, _ in pools)}
dpd_delay = {conn.dpd_delay or 0}
fragmentation = {'true' if conn.fragmentation else 'false'}
keepalive_interval = {conn.keepalive}
"""


def parse_metrics(text):
    """Prometheus text exposition -> {(name, frozenset of (label, value)): float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)', line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(samples, name, **labels):
    """The sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def esprit_ike_command(binary, config):
    # At debug level: the lab's logs say more, and the secrets check reads more.
    return ["/usr/bin/env", "ESPRIT_LOG=debug", binary, "--config", config]


def esprit_ike_wait_ready(gw, timeout=10):
    sock = gw.dir / "esprit-ike.sock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.ike.poll() is not None:
            raise LabError(f"esprit-ike exited {gw.ike.returncode}:\n{tail(gw.ike_out)}")
        if sock.exists():
            return
        time.sleep(0.1)
    raise LabError(f"esprit-ike did not create {sock}:\n{tail(gw.ike_out)}")


def esprit_ike_sa_count(gw):
    ctl = find_binary("espritctl", "ESPRITCTL")
    r = sh([ctl, "--socket", gw.dir / "esprit-ike.sock", "list-sas", "--json"], check=False)
    if r.returncode != 0:
        return None  # esprit-ike is gone: the data plane's SA list (sa_spis) is the check
    return len(json.loads(r.stdout))


# ---------------------------------------------------------------------------------------------
# Captures, read here (stdlib) rather than through a dissector that guesses by port.


def read_pcap(path):
    """(timestamp, Ethernet frame) of every record of a classic pcap file."""
    data = pathlib.Path(path).read_bytes()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"{path}: link type {linktype}, expected Ethernet")
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        out.append((sec + frac / (1e9 if nano else 1e6), data[off:off + incl]))
        off += incl
    return out


def ipv4_packets(path):
    """(timestamp, IPv4 packet) of every Ethernet/IPv4 frame of a capture."""
    return [(ts, f[14:]) for ts, f in read_pcap(path) if len(f) >= 34 and f[12:14] == b"\x08\x00"]


def udp_datagrams(path):
    """UDP datagrams of a capture as dicts (time, src, dst, sport, dport, udp_len, ip_len,
    payload); of a fragmented datagram only the first fragment (it has the headers)."""
    res = []
    for ts, ip in ipv4_packets(path):
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 17 or struct.unpack("!H", ip[6:8])[0] & 0x1FFF or len(ip) < ihl + 8:
            continue
        sport, dport, ulen = struct.unpack("!HHH", ip[ihl:ihl + 6])
        res.append(dict(time=ts, src=socket.inet_ntoa(ip[12:16]), dst=socket.inet_ntoa(ip[16:20]), sport=sport,
                        dport=dport, udp_len=ulen, ip_len=struct.unpack("!H", ip[2:4])[0], payload=ip[ihl + 8:]))
    return res


def _natt_payload(d):
    """("ike", bytes) / ("esp", bytes) / ("keepalive", b"") / (None, b"") for a UDP datagram
    to or from port 500/4500 (RFC 3948 §2: non-ESP marker, keepalive 0xFF)."""
    pl, ports = d["payload"], (d["sport"], d["dport"])
    if 500 in ports and 4500 not in ports:
        return "ike", pl
    if 4500 in ports:
        if pl == b"\xff":
            return "keepalive", b""
        if pl[:4] == b"\0\0\0\0":
            return "ike", pl[4:]
        if len(pl) >= 8:
            return "esp", pl
    return None, b""


@dataclasses.dataclass
class IkeDatagram:
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    exchange: int      # 34 IKE_SA_INIT, 35 IKE_AUTH, 36 CREATE_CHILD_SA, 37 INFORMATIONAL
    next_payload: int  # 46 SK, 53 SKF (RFC 7383)
    flags: int         # 0x08 initiator, 0x20 response
    message_id: int
    length: int        # IKE header's length field
    ip_len: int        # total length of the IP datagram that carried it


def ike_datagrams(path):
    """IKEv2 messages in a capture (UDP 500, or 4500 behind the non-ESP marker)."""
    res = []
    for d in udp_datagrams(path):
        kind, pl = _natt_payload(d)
        if kind != "ike" or len(pl) < 28 or pl[17] >> 4 != 2:
            continue
        res.append(IkeDatagram(d["time"], d["src"], d["sport"], d["dst"], d["dport"], pl[18], pl[16], pl[19],
                               struct.unpack("!I", pl[20:24])[0], struct.unpack("!I", pl[24:28])[0], d["ip_len"]))
    return res


@dataclasses.dataclass
class EspDatagram:
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    spi: str   # 8 hex digits
    seq: int


def esp_datagrams(path):
    """UDP-encapsulated ESP packets in a capture (RFC 3948)."""
    res = []
    for d in udp_datagrams(path):
        kind, pl = _natt_payload(d)
        if kind == "esp":
            res.append(EspDatagram(d["time"], d["src"], d["sport"], d["dst"], d["dport"], pl[:4].hex(),
                                   struct.unpack("!I", pl[4:8])[0]))
    return res


def icmp_frag_needed(path):
    """ICMP fragmentation-needed messages (type 3 code 4) in a capture, as dicts: time,
    src, dst, mtu (next-hop MTU) and the quoted datagram's src, dst, proto, sport, dport."""
    res = []
    for ts, ip in ipv4_packets(path):
        ihl = (ip[0] & 0x0F) * 4
        icmp = ip[ihl:]
        if ip[9] != 1 or len(icmp) < 28 or icmp[0] != 3 or icmp[1] != 4:
            continue
        q = icmp[8:]
        qihl = (q[0] & 0x0F) * 4
        ports = struct.unpack("!HH", q[qihl:qihl + 4]) if q[9] == 17 and len(q) >= qihl + 4 else (None, None)
        res.append(dict(time=ts, src=socket.inet_ntoa(ip[12:16]), dst=socket.inet_ntoa(ip[16:20]),
                        mtu=struct.unpack("!H", icmp[6:8])[0], q_src=socket.inet_ntoa(q[12:16]),
                        q_dst=socket.inet_ntoa(q[16:20]), q_proto=q[9], q_sport=ports[0], q_dport=ports[1]))
    return res


def parse_pmtu(tracepath_output):
    """The path MTU tracepath reports ("Resume: pmtu N"), or None."""
    m = re.findall(r"pmtu (\d+)", tracepath_output)
    return int(m[-1]) if m else None


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "sink":
        sink_main(sys.argv[2])
    elif cmd == "send":
        send_main(*sys.argv[2:6])
    elif cmd == "cleanup":
        Lab.remove(sys.argv[2])
    elif cmd == "flood":
        flood_main(*sys.argv[2:6])
    else:
        sys.exit(f"usage: {sys.argv[0]} sink PORT | send HOST PORT NBYTES BACKBYTES | flood DST RATE SECONDS "
                 "SOURCES | cleanup PREFIX")
