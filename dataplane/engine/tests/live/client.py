"""The road warrior's side, run inside the client namespace: scapy is its ESP stack. Sends
`count` encrypted pings to the server through the gateway and prints how many encrypted
replies came back (decrypted and checked)."""

import json
import socket
import sys
import threading
import time

from scapy.all import ICMP, IP, UDP, Raw, conf, sniff, send
from scapy.layers.ipsec import ESP, SecurityAssociation

args = json.loads(sys.argv[1])
conf.verb = 0
algo = {"aes128gcm16": ("AES-GCM", None), "aes128-sha1": ("AES-CBC", "HMAC-SHA1-96")}[args["proposal"]]
# A client's sequence numbers never go back: each run continues where the test says.
to_gw = SecurityAssociation(ESP, spi=0x1001, seq_num=args.get("seq", 1), crypt_algo=algo[0], crypt_key=bytes.fromhex(args["enc_in"]),
                            auth_algo=algo[1], auth_key=bytes.fromhex(args["int_in"]) if args["int_in"] else None,
                            tunnel_header=IP(src="198.51.100.7", dst="198.51.100.1"), nat_t_header=UDP(sport=4500, dport=4500))
from_gw = SecurityAssociation(ESP, spi=0x2002, crypt_algo=algo[0], crypt_key=bytes.fromhex(args["enc_out"]),
                              auth_algo=algo[1], auth_key=bytes.fromhex(args["int_out"]) if args["int_out"] else None,
                              tunnel_header=IP(src="198.51.100.1", dst="198.51.100.7"), nat_t_header=UDP(sport=4500, dport=4500))

# Hold UDP 4500 so the kernel does not answer the gateway's ESP with port unreachable.
hold = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
hold.bind(("198.51.100.7", 4500))

replies, keepalives = set(), 0


def on_packet(p):
    global keepalives
    if UDP not in p or p[UDP].sport != 4500:
        return
    payload = bytes(p[UDP].payload)
    if payload == b"\xff":
        keepalives += 1
        return
    try:
        inner = from_gw.decrypt(IP(bytes(p[IP])))
    except Exception:  # noqa: BLE001 - anything undecryptable is simply not a reply
        return
    if ICMP in inner and inner[ICMP].type == 0 and inner.src == "10.1.0.5" and inner.dst == "10.9.0.2":
        replies.add(inner[ICMP].seq)


sniffer = threading.Thread(target=lambda: sniff(iface="cl-out", prn=on_packet, timeout=args["seconds"], store=False))
sniffer.start()
time.sleep(0.5)
for seq in range(args["count"]):
    inner = IP(src="10.9.0.2", dst="10.1.0.5") / ICMP(id=0x4242, seq=seq) / Raw(b"x" * args["size"])
    p = IP(bytes(to_gw.encrypt(inner)))
    p[UDP].len = len(p[UDP].payload) + 8
    p[UDP].chksum = 0
    send(IP(bytes(p)), iface="cl-out")
    time.sleep(args["interval"])
sniffer.join()
print(json.dumps({"replies": sorted(replies), "keepalives": keepalives}))
