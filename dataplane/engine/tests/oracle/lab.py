"""A gateway, a client behind a NAT and a server, as configuration text and scapy objects.

scapy's SecurityAssociation is the independent implementation every test compares
against: it seals what the gateway must open, and opens what the gateway seals.
"""

import dataclasses
import os
import subprocess

from scapy.all import IP, UDP, Ether, IPv6, Raw, rdpcap, wrpcap
from scapy.layers.ipsec import ESP, SecurityAssociation

GW_WAN_MAC = "02:00:00:00:01:01"
ROUTER_MAC = "02:00:00:00:01:fe"
GW_LAN_MAC = "02:00:00:00:02:01"
SERVER_MAC = "02:00:00:00:02:05"
NAT_PORT = 34567
SPI_IN = 0x1001
SPI_OUT = 0x2002

OUTER = {4: ("198.51.100.1", "203.0.113.7"), 6: ("2001:db8:ff::1", "2001:db8:aa::2")}
INNER = {4: ("10.9.0.2", "10.1.0.5"), 6: ("2001:db8:9::2", "2001:db8:1::5")}


@dataclasses.dataclass
class Transform:
    name: str
    enc_len: int
    int_len: int
    scapy_crypt: str
    scapy_auth: str
    tshark_enc: str | None
    tshark_auth: str


TRANSFORMS = [
    Transform("aes128gcm16", 20, 0, "AES-GCM", None, "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    Transform("aes256gcm16", 36, 0, "AES-GCM", None, "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    Transform("aes128-sha1", 16, 20, "AES-CBC", "HMAC-SHA1-96", "AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]"),
    Transform("aes256-sha1", 32, 20, "AES-CBC", "HMAC-SHA1-96", "AES-CBC [RFC3602]", "HMAC-SHA-1-96 [RFC2404]"),
    Transform("aes128-sha256", 16, 32, "AES-CBC", "SHA2-256-128", "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"),
    Transform("aes256-sha256", 32, 32, "AES-CBC", "SHA2-256-128", "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"),
    # Wireshark 4.0 cannot decrypt ChaCha20-Poly1305 ESP: dissection only.
    Transform("chacha20poly1305", 36, 0, "CHACHA20-POLY1305", None, None, "NULL"),
]


def key(n: int, seed: int) -> bytes:
    return bytes((seed * 37 + i * 11) & 0xFF for i in range(n))


@dataclasses.dataclass
class Lab:
    t: Transform
    outer: int  # 4 or 6
    natt: bool
    esn: bool = False

    @property
    def gw(self):
        return OUTER[self.outer][0]

    @property
    def client(self):
        return OUTER[self.outer][1]

    def keys(self, spi):
        seed = 1 if spi == SPI_IN else 2
        return key(self.t.enc_len, seed), key(self.t.int_len, seed + 10)

    def config(self) -> str:
        parts = [
            """
[[interface]]
name = "outside"
role = "outside"
address = ["198.51.100.1/24", "2001:db8:ff::1/64"]
mac = "%s"

[[interface]]
name = "inside"
role = "inside"
address = ["10.1.0.1/16", "2001:db8:1::1/48"]
mac = "%s"

[[neighbor]]
interface = "outside"
address = "198.51.100.254"
mac = "%s"

[[neighbor]]
interface = "outside"
address = "2001:db8:ff::fe"
mac = "%s"

[[neighbor]]
interface = "inside"
address = "10.1.0.5"
mac = "%s"

[[neighbor]]
interface = "inside"
address = "2001:db8:1::5"
mac = "%s"

[[route]]
destination = "0.0.0.0/0"
via = "198.51.100.254"
interface = "outside"

[[route]]
destination = "::/0"
via = "2001:db8:ff::fe"
interface = "outside"
"""
            % (GW_WAN_MAC, GW_LAN_MAC, ROUTER_MAC, ROUTER_MAC, SERVER_MAC, SERVER_MAC)
        ]
        for spi, direction in ((SPI_IN, "in"), (SPI_OUT, "out")):
            enc, integ = self.keys(spi)
            s = f"""
[[sa]]
spi = {spi:#x}
direction = "{direction}"
proposal = "{self.t.name}"
enc_key = "{enc.hex()}"
local = "{self.gw}"
remote = "{self.client}"
esn = {str(self.esn).lower()}
local_ts = ["10.1.0.0/16", "2001:db8:1::/48"]
remote_ts = ["10.9.0.2/32", "2001:db8:9::2/128"]
"""
            if integ:
                s += f'int_key = "{integ.hex()}"\n'
            if self.natt:
                s += f"local_port = 4500\nremote_port = {NAT_PORT}\n"
            parts.append(s)
        parts.append(
            f"""
[[policy]]
src = "10.1.0.0/16"
dst = "10.9.0.2/32"
sa = {SPI_OUT:#x}

[[policy]]
src = "2001:db8:1::/48"
dst = "2001:db8:9::2/128"
sa = {SPI_OUT:#x}
"""
        )
        return "\n".join(parts)

    def sa(self, spi) -> SecurityAssociation:
        """scapy's SA: SPI_IN as the client sends it, SPI_OUT as the client receives it."""
        enc, integ = self.keys(spi)
        ip = IP if self.outer == 4 else IPv6
        src, dst = (self.client, self.gw) if spi == SPI_IN else (self.gw, self.client)
        sport, dport = (NAT_PORT, 4500) if spi == SPI_IN else (4500, NAT_PORT)
        return SecurityAssociation(
            ESP,
            spi=spi,
            crypt_algo=self.t.scapy_crypt,
            crypt_key=enc,
            auth_algo=self.t.scapy_auth,
            auth_key=integ or None,
            tunnel_header=ip(src=src, dst=dst),
            nat_t_header=UDP(sport=sport, dport=dport) if self.natt else None,
            esn_en=self.esn,
            esn=0,
        )


# scapy 2.5 appends the ESN high bits to the ICV input of AH but not of ESP, which RFC 4303
# §3.3.2.1 requires; for CBC + HMAC with ESN the ICV is therefore computed here, from the RFC,
# with Python's own hmac module.
HASHES = {"HMAC-SHA1-96": ("sha1", 12), "SHA2-256-128": ("sha256", 16)}


def esn_icv(t: Transform, integ: bytes, authenticated: bytes, seq_hi: int) -> bytes:
    import hashlib
    import hmac
    import struct

    name, n = HASHES[t.scapy_auth]
    return hmac.new(integ, authenticated + struct.pack("!L", seq_hi), getattr(hashlib, name)).digest()[:n]


def esp_offset(pkt) -> int:
    b = bytes(pkt)
    ip_len = 20 if b[0] >> 4 == 4 else 40
    proto = b[9] if b[0] >> 4 == 4 else b[6]
    return ip_len + (8 if proto == 17 else 0)


def esn_resign(case, spi, pkt):
    """Replaces the ICV of a scapy-sealed CBC packet by the RFC 4303 ESN one (seq_hi 0)."""
    _, integ = case.keys(spi)
    n = HASHES[case.t.scapy_auth][1]
    b = bytearray(bytes(pkt))
    off = esp_offset(pkt)
    b[-n:] = esn_icv(case.t, integ, bytes(b[off:-n]), 0)
    return pkt.__class__(bytes(b))


def esn_verify(case, spi, pkt) -> bool:
    _, integ = case.keys(spi)
    n = HASHES[case.t.scapy_auth][1]
    b = bytes(pkt)
    off = esp_offset(pkt)
    return esn_icv(case.t, integ, b[off:-n], 0) == b[-n:]


def fix_natt(pkt):
    """scapy 2.5 leaves the UDP length of NAT-T packets at 8: recompute lengths."""
    pkt = pkt.__class__(bytes(pkt))
    if UDP in pkt:
        pkt[UDP].len = len(pkt[UDP].payload) + 8
        pkt[UDP].chksum = 0 if IP in pkt else None
    return pkt.__class__(bytes(pkt))


def inner_packet(version: int, to_server: bool, payload_len: int, n: int):
    client, server = INNER[version]
    src, dst = (client, server) if to_server else (server, client)
    ip = IP(src=src, dst=dst, ttl=64, flags="DF") if version == 4 else IPv6(src=src, dst=dst, hlim=64)
    return ip / UDP(sport=5000 + n, dport=7) / Raw(bytes((n + i) & 0xFF for i in range(payload_len)))


def forwarded(pkt):
    """What a router makes of `pkt`: TTL or hop limit minus one, checksum redone."""
    p = pkt.__class__(bytes(pkt))
    if IP in p and p.__class__ is IP:
        p.ttl -= 1
        del p.chksum
    else:
        p.hlim -= 1
    return bytes(p.__class__(bytes(p)))


def run(binary, workdir, config_text, outside_in, inside_in):
    """Runs the offline mode; returns (outside frames out, inside frames out, stdout)."""
    cfg = os.path.join(workdir, "gw.toml")
    with open(cfg, "w") as f:
        f.write(config_text)
    paths = {k: os.path.join(workdir, k + ".pcap") for k in ("out-in", "in-in", "out-out", "in-out")}
    wrpcap(paths["out-in"], outside_in)
    wrpcap(paths["in-in"], inside_in)
    r = subprocess.run(
        [
            binary,
            "--config", cfg,
            "--pcap-in", "outside=" + paths["out-in"],
            "--pcap-in", "inside=" + paths["in-in"],
            "--pcap-out", "outside=" + paths["out-out"],
            "--pcap-out", "inside=" + paths["in-out"],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return rdpcap(paths["out-out"]), rdpcap(paths["in-out"]), r.stdout, paths
