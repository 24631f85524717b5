#!/usr/bin/env python3
"""Writes the example captures for gateway.toml with scapy (run from this directory):

  outside-in.pcap  what arrives from the internet: ARP from the router, a NAT keepalive,
                   the client's ESP-in-UDP (a ping to the server and a 1400-byte UDP
                   datagram), a replayed packet, a forged one, IKE with no control plane
  inside-in.pcap   what the server sends: the ping reply, a 1500-byte datagram with DF
                   (too big for the tunnel: the gateway answers fragmentation-needed with
                   MTU 1438), a 3000-byte datagram without DF (fragmented before encryption)
"""

from scapy.all import ICMP, IP, UDP, ARP, Ether, Raw, wrpcap
from scapy.layers.ipsec import ESP, SecurityAssociation

T0 = 1700000000.0
GW, CLIENT, ROUTER_IP = "198.51.100.1", "203.0.113.7", "198.51.100.254"
GW_WAN, ROUTER, GW_LAN, SERVER = "02:00:00:00:01:01", "02:00:00:00:01:fe", "02:00:00:00:02:01", "02:00:00:00:02:05"

to_gw = SecurityAssociation(
    ESP,
    spi=0x1001,
    crypt_algo="AES-GCM",
    crypt_key=bytes.fromhex("0123456789abcdef0123456789abcdef01020304"),
    tunnel_header=IP(src=CLIENT, dst=GW),
    nat_t_header=UDP(sport=34567, dport=4500),
)


def natt(pkt):
    # scapy 2.5 leaves the UDP length of NAT-T packets at 8.
    pkt = IP(bytes(pkt))
    pkt[UDP].len = len(pkt[UDP].payload) + 8
    pkt[UDP].chksum = 0
    return IP(bytes(pkt))


def frame(t, pkt, src=ROUTER, dst=GW_WAN):
    f = Ether(src=src, dst=dst) / pkt
    f.time = T0 + t
    return f


ping = IP(src="10.9.0.2", dst="10.1.0.5") / ICMP(id=7, seq=1) / Raw(b"esprit offline example")
big = IP(src="10.9.0.2", dst="10.1.0.5") / UDP(sport=5000, dport=9) / Raw(bytes(range(256)) * 5 + bytes(1372 - 1280))
esp1 = natt(to_gw.encrypt(ping))
esp2 = natt(to_gw.encrypt(big))
forged = bytearray(bytes(natt(to_gw.encrypt(ping))))
forged[-1] ^= 0x80
ike = bytes.fromhex("1122334455667788" "0000000000000000" "21202208" "00000000" "0000001c")

outside = [
    frame(0.000, ARP(op=1, hwsrc=ROUTER, psrc=ROUTER_IP, pdst=GW), dst="ff:ff:ff:ff:ff:ff"),
    frame(0.010, IP(src=CLIENT, dst=GW) / UDP(sport=34567, dport=4500) / Raw(b"\xff")),
    frame(0.020, esp1),
    frame(0.030, esp2),
    frame(0.040, esp1),
    frame(0.050, IP(bytes(forged))),
    frame(0.060, IP(src=CLIENT, dst=GW) / UDP(sport=500, dport=500) / Raw(ike)),
]

reply = IP(src="10.1.0.5", dst="10.9.0.2") / ICMP(type=0, id=7, seq=1) / Raw(b"esprit offline example")
too_big = IP(src="10.1.0.5", dst="10.9.0.2", flags="DF") / UDP(sport=9, dport=5000) / Raw(bytes(1472))
frag_me = IP(src="10.1.0.5", dst="10.9.0.2") / UDP(sport=9, dport=5000) / Raw(bytes(1472))
inside = [
    frame(0.025, reply, src=SERVER, dst=GW_LAN),
    frame(0.035, too_big, src=SERVER, dst=GW_LAN),
    frame(0.045, frag_me, src=SERVER, dst=GW_LAN),
]

wrpcap("outside-in.pcap", outside)
wrpcap("inside-in.pcap", inside)
