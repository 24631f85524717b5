#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (run from fuzz/): valid and nearly
valid examples of what each target parses, so fuzzing starts from the interesting paths."""

import os
import struct

from scapy.all import ICMP, IP, UDP, ARP, Ether, IPv6, Raw, fragment, rdpcap
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6PacketTooBig, ICMPv6ND_NS, IPv6ExtHdrFragment

GW, CLIENT = "198.51.100.1", "203.0.113.7"
GW6, CLIENT6 = "2001:db8:ff::1", "2001:db8:aa::2"
IKE = bytes.fromhex("1122334455667788" "0000000000000000" "21202208" "00000000" "0000001c")
ESP = struct.pack("!II", 0x1001, 1) + bytes(range(64))


def write(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


ip_seeds = {
    "natt-esp": IP(src=CLIENT, dst=GW) / UDP(sport=34567, dport=4500, chksum=0) / Raw(ESP),
    "natt-ike": IP(src=CLIENT, dst=GW) / UDP(sport=34567, dport=4500) / Raw(b"\0\0\0\0" + IKE),
    "natt-keepalive": IP(src=CLIENT, dst=GW) / UDP(sport=34567, dport=4500) / Raw(b"\xff"),
    "ike-500": IP(src=CLIENT, dst=GW) / UDP(sport=500, dport=500) / Raw(IKE),
    "raw-esp": IP(src=CLIENT, dst=GW, proto=50) / Raw(ESP),
    "frag-needed": IP(src="192.0.2.1", dst=GW) / ICMP(type=3, code=4, nexthopmtu=1000) / Raw(bytes(IP(src=GW, dst=CLIENT) / UDP(sport=4500, dport=34567) / Raw(ESP))[:60]),
    "echo": IP(src=CLIENT, dst=GW) / ICMP() / Raw(b"ping"),
    "v6-natt-esp": IPv6(src=CLIENT6, dst=GW6) / UDP(sport=4500, dport=4500) / Raw(ESP),
    "v6-ptb": IPv6(src="2001:db8:ee::1", dst=GW6) / ICMPv6PacketTooBig(mtu=1280) / Raw(bytes(IPv6(src=GW6, dst=CLIENT6) / UDP(sport=4500, dport=4500) / Raw(ESP))),
    "v6-ns": IPv6(src=CLIENT6, dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt=GW6),
    "v6-echo": IPv6(src=CLIENT6, dst=GW6) / ICMPv6EchoRequest(),
}
for name, p in ip_seeds.items():
    write("classify", name, bytes(p))
    write("wire", name, bytes(p))
    write("wire", "eth-" + name, bytes(Ether() / p))
write("wire", "arp", bytes(ARP(op=1, psrc=CLIENT, pdst=GW)))

for sel in range(7):
    write("decap", f"esp-{sel}", bytes([sel]) + ESP)

frags = fragment(IP(src=CLIENT, dst=GW) / UDP(sport=34567, dport=4500) / Raw(ESP * 40), fragsize=800)
write("reassembly", "v4-in-order", b"".join(struct.pack("!H", len(bytes(f))) + bytes(f) for f in frags))
write("reassembly", "v4-reversed", b"".join(struct.pack("!H", len(bytes(f))) + bytes(f) for f in reversed(frags)))
v6 = IPv6(src=CLIENT6, dst=GW6) / IPv6ExtHdrFragment(id=7, m=1, offset=0) / UDP(sport=4500, dport=4500) / Raw(ESP)
write("reassembly", "v6-first", struct.pack("!H", len(bytes(v6))) + bytes(v6))

ex = os.path.join("..", "deploy", "examples", "offline")
records = b""
for ifidx, pcap in ((0, "outside-in.pcap"), (1, "inside-in.pcap")):
    for f in rdpcap(os.path.join(ex, pcap)):
        b = bytes(f)
        records += bytes([ifidx]) + struct.pack("!H", len(b)) + b
write("engine", "example-captures", records)

with open(os.path.join(ex, "gateway.toml"), "rb") as f:
    write("config", "gateway.toml", f.read())
write("config", "broken", b'[[sa]]\nspi = 12\nproposal = "3des-md5"\n')
