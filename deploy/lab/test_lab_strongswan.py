"""Interop scenarios: real strongSwan road warriors (kernel-libipsec) behind a real nftables
NAT against a gateway — strongSwan's own (the reference that proves the lab) and Esprit
(esprit-dataplane on AF_PACKET or DPDK net_af_packet, plus esprit-ike) with the same tests:
the gateway kind is the `kind` fixture (conftest.py). Where the two kinds must behave differently (path MTU
reported to tracepath, recovery from a NAT rebinding) the expectations are encoded per kind
below, with the reason.

Independent oracles: strongSwan's client (it must establish, and its own counters and log),
the kernels of the server and the routers (ping, TCP with SHA-256 over the payload both
ways, tracepath, ICMP), the NAT's conntrack table, and captures parsed here from the bytes
(IKE header fields, ESP SPIs, ICMP), not by a dissector that guesses by port."""

import concurrent.futures
import ipaddress
import json
import os
import re
import subprocess
import sys
import time

import pytest

import esprit_lab as L
from esprit_lab import gateway_family as family

C1 = L.CLIENT_ADDR["client1"]


def connect(lab, name="client1", **client):
    c = L.Client(lab, name, **client).start()
    c.initiate()
    return c


def in_pool(vip):
    return ipaddress.ip_address(vip) in ipaddress.ip_network(L.POOL4)


def assert_tunnelled(lab, pcap, child):
    """On the internet side there is nothing but UDP between the NAT and the gateway, and
    the ESP in it carries exactly the client's negotiated SPIs, one per direction."""
    stray = {(p[12:16], p[16:20]) for _, p in L.ipv4_packets(pcap)} - {
        (ipaddress.ip_address(L.NAT_WAN).packed, ipaddress.ip_address(L.GW_OUT).packed),
        (ipaddress.ip_address(L.GW_OUT).packed, ipaddress.ip_address(L.NAT_WAN).packed)}
    assert not stray, lab.report(f"packets other than NAT<->gateway on the internet: "
                                 f"{[(ipaddress.ip_address(a), ipaddress.ip_address(b)) for a, b in stray]}")
    esp = L.esp_datagrams(pcap)
    up = {e.spi for e in esp if e.src == L.NAT_WAN}
    down = {e.spi for e in esp if e.src == L.GW_OUT}
    assert up == {child.spi_out} and down == {child.spi_in}, lab.report(
        f"ESP SPIs on the wire: up {up}, down {down}; the client's CHILD SA: out {child.spi_out}, in {child.spi_in}")
    return esp


# a. -----------------------------------------------------------------------------------------

def test_a_psk_gcm_virtual_ip_ping_tcp(lab, gateway, kind):
    gateway(auth="psk")
    c = connect(lab, proposals="aes128gcm16-prfsha256-x25519", esp_proposals="aes128gcm16")
    sa = c.list_sas()[0]
    got = (sa.raw.get("encr-alg"), sa.raw.get("encr-keysize"), sa.raw.get("prf-alg"), sa.raw.get("dh-group"))
    assert got == ("AES_GCM_16", "128", "PRF_HMAC_SHA2_256", "CURVE_25519"), lab.report(f"IKE SA algorithms {got}")
    child = sa.child_sas[0]
    assert (child.encr_alg, child.raw.get("encr-keysize"), child.raw.get("encap")) == ("AES_GCM_16", "128", "yes"), \
        lab.report(f"CHILD SA {child.raw}")
    vip = c.virtual_ip()
    assert in_pool(vip), lab.report(f"virtual IP {vip} is not from the pool {L.POOL4}")

    with lab.capture("internet", "to-gw") as pcap:
        rx = c.ping(L.SERVER, 5, 0.1)
        t = c.tcp_transfer(L.SERVER, 2 << 20)
    assert rx == 5, lab.report(f"{rx}/5 echo replies from the server")
    assert t.up_ok and t.down_ok and t.received == 2 << 20, lab.report(f"TCP transfer {t}")
    esp = assert_tunnelled(lab, pcap, child)
    # The bulk of the 4 MiB crossed as ESP (inner packets are at most 1400 bytes); the capture
    # may start a moment late on a loaded machine (2988 of at least 2995 once), so 90 % of the
    # minimum here; the client's own SA counters below are the exact check.
    assert len(esp) > 0.9 * 2 * (2 << 20) // 1400, lab.report(f"only {len(esp)} ESP packets for 4 MiB of TCP")
    after = c.list_sas()[0].child_sas[0]
    assert after.packets_in >= 5 and after.bytes_in > 2 << 20, lab.report(f"client's CHILD SA counters {after.raw}")


def test_a_ipv6_pool_alongside(lab, gateway, kind):
    """The optional IPv6 pool: the client asks for both families (vips = 0.0.0.0, ::), gets
    an address from each pool, and reaches the server over IPv6 inside the same CHILD SA."""
    gateway(pool6="fd00:9::/120")
    c = connect(lab, vips6=True)
    sa = c.list_sas()[0]
    v6 = [v for v in sa.local_vips if ipaddress.ip_address(v).version == 6]
    assert len(v6) == 1 and ipaddress.ip_address(v6[0]) in ipaddress.ip_network("fd00:9::/120"), \
        lab.report(f"virtual IPs {sa.local_vips}")
    assert in_pool(c.virtual_ip()), lab.report(f"virtual IPs {sa.local_vips}")
    rx = c.ping(L.SERVER6, 3, 0.2)
    assert rx == 3, lab.report(f"{rx}/3 IPv6 echo replies from {L.SERVER6}")
    t = c.tcp_transfer(L.SERVER6, 256 << 10)
    assert t.up_ok and t.down_ok, lab.report(f"TCP over IPv6: {t}")


# b. -----------------------------------------------------------------------------------------

def test_b_modp2048_cbc_sha1(lab, gateway, kind):
    gateway()
    c = connect(lab, proposals="aes256-sha256-modp2048", esp_proposals="aes128-sha1")
    sa = c.list_sas()[0]
    got = (sa.raw.get("encr-alg"), sa.raw.get("encr-keysize"), sa.raw.get("integ-alg"), sa.raw.get("prf-alg"),
           sa.raw.get("dh-group"))
    assert got == ("AES_CBC", "256", "HMAC_SHA2_256_128", "PRF_HMAC_SHA2_256", "MODP_2048"), \
        lab.report(f"IKE SA algorithms {got}")
    child = sa.child_sas[0]
    assert (child.encr_alg, child.raw.get("encr-keysize"), child.integ_alg) == ("AES_CBC", "128", "HMAC_SHA1_96"), \
        lab.report(f"CHILD SA {child.raw}")
    with lab.capture("internet", "to-gw") as pcap:
        rx = c.ping(L.SERVER, 5, 0.1)
        t = c.tcp_transfer(L.SERVER, 1 << 20)
    assert rx == 5, lab.report(f"{rx}/5 echo replies")
    assert t.up_ok and t.down_ok, lab.report(f"TCP transfer {t}")
    assert_tunnelled(lab, pcap, child)


# c. -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("keytype,mtu", [("ecdsa", 576), ("rsa", 1000)])
def test_c_certificates_with_ike_fragmentation(lab, gateway, kind, pki, keytype, mtu):
    """Path MTU `mtu` (the NAT's WAN link): the IKE_AUTH messages with certificates do not
    fit (RSA-3072 at 1000, ECDSA P-256 at 576); both sides send them as RFC 7383 fragments
    (SKF, payload 53) of at most `mtu` bytes. ESP then crosses the small link as IP
    fragments of the outer packets (1400-byte inner packets), both ways."""
    p = pki(keytype)
    lab.nat.set_wan_mtu(mtu)
    gateway(auth="pubkey", pki=p, fragment_size=mtu)
    c = L.Client(lab, "client1", auth="pubkey", pki=p, fragment_size=mtu).start()
    with lab.capture("internet", "to-gw", "udp") as pcap:
        c.initiate()
    ike = L.ike_datagrams(pcap)
    summary = [(d.src, d.exchange, d.next_payload, d.ip_len) for d in ike]
    req = [d for d in ike if d.exchange == 35 and not d.flags & 0x20]
    resp = [d for d in ike if d.exchange == 35 and d.flags & 0x20]
    assert len(req) >= 2 and all(d.next_payload == 53 for d in req), \
        lab.report(f"the client's IKE_AUTH was not sent as IKE fragments (SKF): {summary}")
    assert len(resp) >= 2 and all(d.next_payload == 53 for d in resp), \
        lab.report(f"the gateway's IKE_AUTH was not sent as IKE fragments (SKF): {summary}")
    assert all(d.ip_len <= mtu for d in ike), lab.report(f"IKE datagrams larger than the path MTU {mtu}: {summary}")
    log = c.log_text()
    assert "splitting IKE message" in log, lab.report("the client's log does not show IKE fragmentation")
    m = re.search(rf"authentication of '{re.escape(L.GW_ID)}' with (\S+) successful", log)
    assert m and (("ECDSA" in m.group(1)) if keytype == "ecdsa" else ("RSA" in m.group(1))), \
        lab.report(f"the gateway did not authenticate with its {keytype} certificate")
    assert c.ping(L.SERVER, 3, 0.2) == 3, lab.report("no ping through the tunnel")
    t = c.tcp_transfer(L.SERVER, 512 << 10)
    assert t.up_ok and t.down_ok, lab.report(f"TCP over a {mtu}-byte path: {t}")


# d. -----------------------------------------------------------------------------------------

def test_d_two_clients_behind_one_nat(lab, gateway, kind):
    gateway()
    c1 = connect(lab, "client1")
    c2 = connect(lab, "client2")
    v1, v2 = c1.virtual_ip(), c2.virtual_ip()
    assert v1 != v2 and in_pool(v1) and in_pool(v2), lab.report(f"virtual IPs {v1}, {v2}")
    ports = lab.nat.mappings()
    assert len(set(ports.values())) == 2, lab.report(f"the NAT should map the two clients to two ports: {ports}")
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        pings = [ex.submit(c.ping, L.SERVER, 20, 0.05) for c in (c1, c2)]
        xfers = [ex.submit(c.tcp_transfer, L.SERVER, 1 << 20) for c in (c1, c2)]
        rx = [f.result() for f in pings]
        ts = [f.result() for f in xfers]
    assert rx == [20, 20], lab.report(f"echo replies at once: client1 {rx[0]}/20, client2 {rx[1]}/20")
    assert all(t.up_ok and t.down_ok for t in ts), lab.report(f"TCP transfers at once: {ts}")
    for c in (c1, c2):
        child = c.list_sas()[0].child_sas[0]
        assert child.packets_in >= 20, lab.report(f"{c.name}'s CHILD SA counters {child.raw}")


# e. -----------------------------------------------------------------------------------------

# How long the traffic may stop after the NAT forgets its mappings and picks new ports.
# Esprit follows the first authenticated ESP packet from the new mapping (RFC 7296 §2.23):
# within a second, with no help from the client (default client: no DPD, MOBIKE on).
# strongSwan's libipsec does not follow ESP at all (its ipsec_processor never looks at the
# outer source); its gateway moves only on an authenticated IKE message from the new port and,
# with MOBIKE, not even then (no implicit update; the strongSwan client did not detect the
# change in its DPD either, measured: no recovery in 6 s). So the reference runs the client
# with MOBIKE off and DPD every second: it recovers in about 1 s (measured 1.04 s), bounded here
# at 2.5 s.
REBIND = {"esprit": (dict(), 1.0), "strongswan": (dict(dpd_delay=1, mobike=False), 2.5)}


def test_e_nat_rebinding_mid_session(lab, gateway, kind):
    client, bound = REBIND[family(kind)]
    gateway()
    c = connect(lab, **client)
    before = lab.nat.mappings().get(C1)
    run = c.continuous_ping(L.SERVER, 0.05)
    time.sleep(1.5)
    t = time.time()
    lo, hi = lab.nat.rebind()
    time.sleep(bound + 2.5)
    r = run.stop()
    after = lab.nat.mappings().get(C1)
    assert after is not None and lo <= after <= hi and after != before, \
        lab.report(f"the NAT did not rebind: port {before} -> {after}, range {lo}-{hi}\n{lab.nat.conntrack()}")
    before_t = [x for x in r.replies.values() if x < t]
    assert len(before_t) >= 20, lab.report(f"too few replies before the rebinding:\n{r.output[-2000:]}")
    gap = r.longest_gap(t)
    assert gap <= bound, lab.report(f"traffic stopped for {gap:.2f} s after the NAT rebinding "
                                    f"(allowed {bound} s for {kind}), {r.lost()} lost:\n{r.output[-2000:]}")
    last = max(r.replies.values())
    assert time.time() - last < 3.0, lab.report("replies did not continue to the end")


# f. -----------------------------------------------------------------------------------------

def test_f_rekeying_under_continuous_ping(lab, gateway, kind):
    """CHILD SA rekeyed every ~10 s, IKE SA every ~16 s (client-initiated, RFC 7296 §1.3.3 and
    §2.18) while pinging every 0.1 s for 36 s: not one echo lost."""
    gw = gateway()
    c = connect(lab, rekey_time=16, child_rekey_time=10)
    sa0 = c.list_sas()[0]
    n = 360
    rx = c.ping(L.SERVER, n, 0.1)
    log = c.log_text()
    children = set(re.findall(r"CHILD_SA home\{(\d+)\} established", log))
    ike_rekeys = len(re.findall(r"IKE_SA home\[\d+\] rekeyed", log))
    assert len(children) - 1 >= 3 and ike_rekeys >= 2, \
        lab.report(f"{len(children) - 1} CHILD_SA and {ike_rekeys} IKE_SA rekeys in 36 s (expected >= 3 and >= 2)")
    assert rx == n, lab.report(f"{n - rx} of {n} echo requests lost across the rekeys")
    sa1 = c.list_sas()
    assert len(sa1) == 1 and sa1[0].initiator_spi != sa0.initiator_spi, \
        lab.report(f"IKE SA SPIs: {sa0.initiator_spi} -> {[s.initiator_spi for s in sa1]}")
    now = [x for x in sa1[0].child_sas if x.state == "INSTALLED"]
    old = {sa0.child_sas[0].spi_in, sa0.child_sas[0].spi_out}
    assert len(now) == 1 and not {now[0].spi_in, now[0].spi_out} & old, lab.report(f"CHILD SAs now {now}, first {old}")
    on_gw = gw.sa_spis()
    assert {now[0].spi_in, now[0].spi_out} <= on_gw and not old & on_gw, \
        lab.report(f"the gateway's SAs {on_gw}: expected the current {now[0].spi_in}/{now[0].spi_out}, none of {old}")


# g. -----------------------------------------------------------------------------------------

def test_g_dead_client_removed_by_dpd(lab, gateway, kind):
    """The client dies (SIGKILL: no DELETE); the gateway's DPD (every 2 s when idle, 2
    retransmits) declares it dead and removes its SAs."""
    gw = gateway(dpd_delay=2, retransmit=(1, 2, 1.5))
    c = connect(lab)
    assert c.ping(L.SERVER, 2, 0.2) == 2, lab.report("no traffic before the kill")
    child = c.list_sas()[0].child_sas[0]
    spis = {child.spi_in, child.spi_out}
    assert spis <= gw.sa_spis(), lab.report(f"the client's SPIs {spis} are not on the gateway: {gw.sa_spis()}")
    c.kill()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        if not spis & gw.sa_spis() and gw.ike_sa_count() in (0, None):
            break
        time.sleep(0.25)
    took = time.monotonic() - t0
    left = spis & gw.sa_spis()
    assert not left, lab.report(f"the dead client's SAs {left} are still on the gateway after {took:.1f} s")
    assert gw.ike_sa_count() in (0, None), lab.report(f"{gw.ike_sa_count()} IKE SAs left on the gateway")
    assert took >= 2, lab.report(f"SAs gone {took:.1f} s after the kill: faster than DPD can have noticed")


# h. -----------------------------------------------------------------------------------------

# The path MTU tracepath (on the server, toward a client's virtual IP) must report, per kind:
# Esprit: the largest inner packet the SA carries in the outer path MTU (1438 for aes128gcm16
# with NAT-T at 1500, 1422 for aes128-sha1; lower once it learns a smaller outer path MTU from
# the internet router's fragmentation-needed). strongSwan with libipsec: its TUN device's
# fixed 1400, before and after (measured: it fragments the outer packets after encryption
# instead, once its kernel learned the smaller path MTU).
TUNNEL_MTU = {"esprit": L.esp_tunnel_mtu, "strongswan": lambda proposal, outer_mtu: 1400}


@pytest.mark.parametrize("esp", ["aes128gcm16", "aes128-sha1"])
def test_h_tracepath_reports_the_tunnel_mtu(lab, gateway, kind, esp):
    expect = TUNNEL_MTU[family(kind)]
    gw = gateway()
    c = connect(lab, esp_proposals=esp)
    vip = c.virtual_ip()
    out = lab.server.tracepath(vip)
    assert L.parse_pmtu(out) == expect(esp, 1500) and "reached" in out, \
        lab.report(f"tracepath to {vip} at 1500, expected pmtu {expect(esp, 1500)} for {kind}:\n{out}")

    lab.nat.set_wan_mtu(1200)
    with lab.capture("internet", "to-gw", "icmp") as pcap:
        # Full-size DF packets: their outer packets no longer fit the NAT's WAN link.
        lab.server.ping(vip, 3, 0.2, size=expect(esp, 1500) - 28, df=True)
    fn = [f for f in L.icmp_frag_needed(pcap) if f["src"] == L.INET_GW_SIDE and f["dst"] == L.GW_OUT]
    assert any(f["mtu"] == 1200 and f["q_proto"] == 17 and f["q_sport"] == 4500 and f["q_dst"] == L.NAT_WAN
               for f in fn), lab.report(f"the internet router sent no fragmentation-needed (1200) for the "
                                        f"gateway's ESP: {fn}")
    out = lab.server.tracepath(vip)
    assert L.parse_pmtu(out) == expect(esp, 1200) and "reached" in out, \
        lab.report(f"tracepath to {vip} with a 1200-byte outer path, expected pmtu {expect(esp, 1200)}:\n{out}")
    size = expect(esp, 1200) - 28
    rx, ping_out = lab.server.ping(vip, 3, 0.2, size=size, df=True)
    assert rx == 3, lab.report(f"{size}-byte DF pings at the reported MTU did not all pass:\n{ping_out}")
    if family(kind) == "esprit":
        # The learned outer path MTU is in /metrics, on the outbound SA toward the client.
        time.sleep(1.2)  # per-SA slots are refreshed once a second
        m = gw.metrics()
        spi = c.list_sas()[0].child_sas[0].spi_in  # the client's inbound SA is our outbound one
        got = L.metric(m, "esprit_dataplane_sa_path_mtu_bytes", spi=spi, direction="out")
        assert got == 1200, lab.report(f"learned path MTU of SA {spi} in /metrics: {got}")


# The lab's Esprit wiring, checked today with the data plane alone --------------------------

@pytest.mark.parametrize("driver", ["af_packet", "dpdk"])
def test_esprit_gateway_wiring(driver):
    """EspritGateway in the lab, before any client: the generated configs pass both
    processes' --check-config, the gateway namespace has no kernel address on its links, the
    data plane answers ARP on both and ping on its inside address, esprit-ike is attached
    (espritctl lists the connection, no IKE SA, no SA in the data plane), stop() ends both
    processes cleanly, and DPDK's hugepages are given back."""
    try:
        L.EspritGateway.check_binaries()
    except RuntimeError as e:
        pytest.skip(str(e))
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    huge_before = int(open(L.Hugepages.NR).read())
    with L.Lab() as lab:
        gw = L.EspritGateway(lab, L.GatewayConn(pool6="fd00:9::/120"), driver=driver)
        try:
            gw.start()
            ike_cfg = gw.dir / "esprit-ike.toml"
            check = L.sh([gw.ike_bin, "--config", ike_cfg, "--check-config"], check=False)
            assert check.returncode == 0 and "1 connection(s), 2 pool(s)" in check.stdout, check.stdout + check.stderr
            addrs = lab.ex("gw", "ip -o addr show dev gw-out; ip -o addr show dev gw-in").stdout
            assert addrs.strip() == "", lab.report(f"kernel addresses on the data plane's links: {addrs}")
            rx, out = L.ping(lab, "server", L.GW_IN, 3, 0.2)
            assert rx == 3, lab.report(f"the data plane does not answer ping on {L.GW_IN}:\n{out}")
            L.ping(lab, "internet", L.GW_OUT, 1, 0.2)
            neigh = lab.ex("internet", f"ip neigh show {L.GW_OUT}").stdout
            assert L.EspritGateway.MAC_OUT in neigh, lab.report(f"no ARP answer from the data plane outside: {neigh}")
            ctl = L.find_binary("espritctl", "ESPRITCTL")
            conns = json.loads(L.sh([ctl, "--socket", gw.dir / "esprit-ike.sock", "list-conns", "--json"]).stdout)
            assert [c["name"] for c in conns] == ["rw"], conns
            assert gw.ike_sa_count() == 0 and gw.sa_spis() == set(), lab.report("SAs without a client")
            if driver == "dpdk":
                assert int(open(L.Hugepages.NR).read()) > huge_before, "hugepages reserved for DPDK"
        finally:
            gw.stop()
        assert gw.dp.returncode == 0 and gw.ike.returncode == 0, lab.report(
            f"exit codes: data plane {gw.dp.returncode}, esprit-ike {gw.ike.returncode}")
        assert "esprit-ike stopped" in gw.logs(), lab.report("esprit-ike did not stop cleanly")
    assert int(open(L.Hugepages.NR).read()) == huge_before, "hugepages given back"


def test_esp_tunnel_mtu_matches_the_readme_figures():
    """The Esprit expectations of test h, from RFC 4303/3948 arithmetic, against the figures
    README.md and the live data-plane tests state (1438 and 1422 at 1500)."""
    assert L.esp_tunnel_mtu("aes128gcm16", 1500) == 1438
    assert L.esp_tunnel_mtu("aes128-sha1", 1500) == 1422
    assert L.esp_tunnel_mtu("aes128gcm16", 1500, natt=False) == 1446
    assert L.esp_tunnel_mtu("aes128-sha1", 1200) == 1134


# README ----------------------------------------------------------------------------------

def readme_block(first_line):
    """The fenced block of README.md whose first line is `first_line`."""
    text = (L.ROOT / "README.md").read_text()
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"README.md has no block starting with {first_line!r}")


def test_readme_road_warrior_config():
    """The README's road-warrior configs, pasted: esprit-ike's block (only the ring and the
    socket moved into the lab) and the strongSwan client's block; the client connects, gets a
    virtual IP from the pool and pings the server."""
    try:
        L.EspritGateway.check_binaries()
    except RuntimeError as e:
        pytest.skip(str(e))
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    gw_conf = readme_block("# esprit-ike.toml: road warriors")
    client_conf = readme_block("# swanctl.conf: a road warrior")
    with L.Lab() as lab:
        gw = L.EspritGateway(lab, L.GatewayConn())
        conf = gw_conf.replace('ring = "default"', f'ring = "{lab.ring}"').replace(
            '"/run/esprit/esprit-ike.sock"', f'"{gw.dir / "esprit-ike.sock"}"')
        assert conf != gw_conf
        try:
            gw.start(ike_config=conf)
            c = L.Client(lab, "client1")
            c.charon.start()
            c.charon.load(client_conf)
            r = c.charon.swanctl("--initiate", "--child", "esprit", "--timeout", 15, check=False, timeout=30)
            assert r.returncode == 0, lab.report(f"initiate: {r.stdout[-2000:]}{r.stderr}")
            vip = c.virtual_ip()
            assert ipaddress.ip_address(vip) in ipaddress.ip_network("10.9.0.0/24"), lab.report(f"virtual IP {vip}")
            assert c.ping(L.SERVER, 3, 0.2) == 3, lab.report("no ping through the README's tunnel")
            assert gw.ike_sa_count() == 1
        finally:
            gw.stop()


# Metrics -------------------------------------------------------------------------------------

def test_metrics_move_with_traffic(lab, gateway, kind):
    """esprit-ike's /metrics, scraped from a live gateway while a client passes traffic: the
    handshake is counted and timed, the SA gauges and the pool follow, and the data plane's
    counters (per interface, ESP, per SA) move with the pings."""
    if family(kind) != "esprit":
        pytest.skip("Esprit's metrics")
    gw = gateway()
    before = gw.metrics()
    assert L.metric(before, "esprit_ike_sas", state="established") == 0
    assert L.metric(before, "esprit_ike_dataplane_up") == 1
    c = connect(lab)
    child = c.list_sas()[0].child_sas[0]
    assert c.ping(L.SERVER, 20, 0.05) == 20
    time.sleep(1.2)  # per-SA counters reach the stats segment once a second
    m = gw.metrics()
    report = lambda what: lab.report(f"{what}; /metrics:\n" + "\n".join(f"{n}{dict(ls)} {v}" for (n, ls), v in sorted(m.items(), key=str) if v))
    assert L.metric(m, "esprit_ike_handshakes_total", connection="rw") == 1, report("handshakes")
    assert L.metric(m, "esprit_ike_handshake_duration_seconds_count") == 1, report("handshake latency")
    assert 0 < L.metric(m, "esprit_ike_handshake_duration_seconds_sum") < 5, report("handshake latency")
    assert L.metric(m, "esprit_ike_sas", state="established") == 1, report("IKE SAs")
    assert L.metric(m, "esprit_ike_child_sas") == 1, report("CHILD SAs")
    assert L.metric(m, "esprit_ike_pool_addresses_in_use", pool="rw4") == 1, report("pool")
    assert L.metric(m, "esprit_ike_datagrams_total", direction="rx") >= 2, report("IKE datagrams")
    grew = lambda name, **ls: L.metric(m, name, **ls) - L.metric(before, name, **ls)
    assert grew("esprit_dataplane_esp_decrypted_total") >= 20, report("ESP decrypted")
    assert grew("esprit_dataplane_esp_encrypted_total") >= 20, report("ESP encrypted")
    assert grew("esprit_dataplane_interface_rx_packets_total", interface="outside") >= 20, report("rx outside")
    assert grew("esprit_dataplane_busy_cycles_total") > 0, report("busy cycles")
    assert L.metric(m, "esprit_dataplane_sa_packets_total", spi=child.spi_out, direction="in") >= 20, report("per-SA in")
    assert L.metric(m, "esprit_dataplane_sa_packets_total", spi=child.spi_in, direction="out") >= 20, report("per-SA out")


# The quickstart ------------------------------------------------------------------------------

def test_quickstart_up_and_down():
    """README's quickstart (deploy/quickstart.sh runs this after building): up connects a
    strongSwan client through Esprit, pings through the tunnel, lists the SA and leaves the
    lab running with /metrics reachable from the host; down removes everything."""
    try:
        L.EspritGateway.check_binaries()
    except RuntimeError as e:
        pytest.skip(str(e))
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    qs = [sys.executable, str(L.HERE / "quickstart.py")]
    try:
        r = L.sh(qs + ["up"], check=False, timeout=120)
        assert r.returncode == 0, f"quickstart up failed:\n{r.stdout}\n{r.stderr}"
        assert "3 packets transmitted, 3 received" in r.stdout, r.stdout
        assert "ESTABLISHED" in r.stdout and "virtual IPs 10.9.0." in r.stdout, r.stdout
        # Still up after the command returned, and scrapeable from the host.
        import urllib.request
        text = urllib.request.urlopen("http://127.0.0.1:9477/metrics", timeout=5).read().decode()
        m = L.parse_metrics(text)
        assert L.metric(m, "esprit_ike_sas", state="established") == 1, text
        p = L.sh(["ip", "netns", "exec", "quick-client1", "ping", "-n", "-q", "-c", "2", "-i", "0.2", L.SERVER],
                 check=False)
        assert " 2 received" in p.stdout, p.stdout
    finally:
        d = L.sh(qs + ["down"], check=False, timeout=60)
    assert d.returncode == 0, d.stderr
    left = [n for n in L.sh(["ip", "netns", "list"]).stdout.split() if n.startswith("quick-")]
    assert not left, f"namespaces left behind: {left}"


def test_grafana_dashboard_uses_metrics_that_exist(lab, gateway, kind):
    """Every metric the Grafana dashboard (deploy/grafana) queries is served by a live
    esprit-ike (histograms by their _bucket series)."""
    if family(kind) != "esprit":
        pytest.skip("Esprit's metrics")
    dash = json.loads((L.ROOT / "deploy" / "grafana" / "esprit-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    wanted = {n for e in exprs for n in re.findall(r"\b(esprit_[a-z0-9_]+)", e)}
    gw = gateway()
    connect(lab)
    served = {n for (n, _) in gw.metrics()}
    missing = wanted - served
    assert not missing, lab.report(f"the dashboard queries metrics esprit-ike does not serve: {sorted(missing)}")


# Reload --------------------------------------------------------------------------------------

def test_reload_keeps_sas_and_refuses_a_broken_file(lab, gateway, kind):
    """espritctl reload: a new connection added while a client is connected leaves its SAs
    and traffic alone; a file with an error is refused (with its line) and the running
    configuration kept."""
    if family(kind) != "esprit":
        pytest.skip("esprit-ike's reload")
    gw = gateway()
    c = connect(lab)
    assert c.ping(L.SERVER, 2, 0.2) == 2
    spis = gw.sa_spis()
    assert len(spis) == 2, lab.report(f"SAs on the gateway: {spis}")
    cfg = gw.dir / "esprit-ike.toml"
    good = cfg.read_text()
    ctl = [L.find_binary("espritctl", "ESPRITCTL"), "--socket", gw.dir / "esprit-ike.sock"]
    second = good[good.index("[[connection]]"):].replace('name = "rw"', 'name = "rw-extra"')
    cfg.write_text(good + "\n" + second)
    r = L.sh(ctl + ["reload"], check=False)
    assert r.returncode == 0 and "rw, rw-extra" not in r.stdout and "rw rw-extra" in r.stdout, r.stdout + r.stderr
    assert gw.sa_spis() == spis and gw.ike_sa_count() == 1, lab.report("SAs changed by a reload")
    assert c.ping(L.SERVER, 3, 0.2) == 3, lab.report("traffic after a reload")
    broken = good.replace('fragment_size = ', 'fragment_size = "many" # ')
    cfg.write_text(broken)
    r = L.sh(ctl + ["reload"], check=False)
    line = next(i for i, l in enumerate(broken.splitlines(), 1) if "fragment_size" in l)
    assert r.returncode != 0 and f"esprit-ike.toml:{line}:" in r.stderr and "running configuration is kept" in r.stderr, \
        r.stdout + r.stderr
    conns = json.loads(L.sh(ctl + ["list-conns", "--json"]).stdout)
    assert [x["name"] for x in conns] == ["rw", "rw-extra"], conns
    assert gw.sa_spis() == spis and c.ping(L.SERVER, 3, 0.2) == 3, lab.report("a refused reload touched the SAs")


# Restarts ------------------------------------------------------------------------------------

def test_dataplane_killed_and_restarted_is_refilled(lab, gateway, kind):
    """SIGKILL of esprit-dataplane under a connected client, then a restart (what systemd
    does): esprit-ike sees its hello, gives back the inbound SAs and policies, and rekeys the
    CHILD SA (outbound sequence numbers are never reused); pings pass again within seconds,
    on a new pair, and the client never had to reconnect its IKE SA. Meanwhile the server
    pings the client every 20 ms: those that meet no data plane, or the refilled one before
    its new outbound SA, are dropped, and none leaves in the clear (captured on the outside)."""
    if family(kind) != "esprit" or kind.endswith("dpdk"):
        pytest.skip("Esprit's data plane restart (AF_PACKET)")
    gw = gateway()
    c = connect(lab)
    vip = c.virtual_ip()
    assert c.ping(L.SERVER, 2, 0.2) == 2
    ike_before = c.list_sas()[0].initiator_spi
    child_before = c.list_sas()[0].child_sas[0]
    with lab.capture("internet", "to-gw", f"host {vip} or host {L.SERVER}") as clear:
        pings = L.ContinuousPing(lab, "server", vip, 0.02)
        gw.dp.kill()
        gw.dp.wait()
        t0 = time.monotonic()
        gw.start_dataplane()
        ok = False
        while time.monotonic() - t0 < 20:
            if c.ping(L.SERVER, 1, 0.2) == 1:
                ok = True
                break
        took = time.monotonic() - t0
        run = pings.stop()
    assert ok, lab.report(f"no ping through the restarted data plane after {took:.1f} s")
    leaked = L.sh(["tshark", "-r", str(clear), "-T", "fields", "-e", "ip.src", "-e", "ip.dst"]).stdout.split("\n")
    leaked = [x for x in leaked if x.strip()]
    assert not leaked, lab.report(f"inner packets in the clear on the outside: {leaked[:5]}")
    assert run.transmitted and run.transmitted > len(run.replies), "the server's pings spanned the gap"
    time.sleep(1.2)  # the stats segment is published every 200 ms per worker
    no_sa = L.metric(gw.metrics(), "esprit_dataplane_drops_total", reason="policy_no_sa")
    print(f"server pings during the restart: {run.transmitted} sent, {len(run.replies)} answered, "
          f"{no_sa} dropped for want of an outbound SA, none in the clear")
    sas = c.list_sas()
    assert sas[0].initiator_spi == ike_before, lab.report("the client's IKE SA changed")
    now = [x for x in sas[0].child_sas if x.state == "INSTALLED"]
    assert now and now[0].spi_in != child_before.spi_in, lab.report(f"the CHILD SA was not rekeyed: {now}")
    print(f"traffic resumed {took:.1f} s after the data plane restart")


def test_ike_killed_and_restarted_keeps_every_sa(lab, gateway, kind):
    """SIGKILL of esprit-ike under a connected client while the server pings it every 20 ms:
    the data plane forwards on alone; esprit-ike, started again, restores its IKE and CHILD
    SAs from its journal and reconciles the data plane without a flush — the server's pings
    never stop (the outbound SA keeps its sequence numbers: a restart from 1 would be
    dropped as replays by the client) — then answers the client's CHILD and IKE rekeys on the
    same IKE SA (message IDs in step), and the client never reconnects."""
    if family(kind) != "esprit" or kind.endswith("dpdk"):
        pytest.skip("esprit-ike's restart (the driver plays no part: AF_PACKET)")
    gw = gateway()
    c = connect(lab)
    vip = c.virtual_ip()
    assert c.ping(L.SERVER, 2, 0.2) == 2
    ctl = [L.find_binary("espritctl", "ESPRITCTL"), "--socket", gw.dir / "esprit-ike.sock"]
    def gateway_sas():
        return [(s["spi_i"], s["spi_r"], s["vips"], [(x["spi_in"], x["spi_out"]) for x in s["children"]])
                for s in json.loads(L.sh(ctl + ["list-sas", "--json"]).stdout)]
    before = gateway_sas()
    ike_before = c.list_sas()[0].initiator_spi
    child_before = c.list_sas()[0].child_sas[0]
    assert gw.ike_state().stat().st_mode & 0o777 == 0o600, "the journal holds keys"
    pings = L.ContinuousPing(lab, "server", vip, 0.02)
    time.sleep(1)
    t_kill = time.time()
    gw.ike.kill()
    gw.ike.wait()
    time.sleep(3)  # the data plane alone
    t_start = time.monotonic()
    gw.start_ike()
    took = time.monotonic() - t_start
    time.sleep(2)
    run = pings.stop()
    gap = run.longest_gap(t_kill - 1)
    assert gap < 0.5, lab.report(f"the server's pings stopped for {gap:.2f} s around esprit-ike's restart")
    after = gateway_sas()
    assert after == before, lab.report(f"restored SAs differ: {before} -> {after}")
    log = gw.ike_out.read_text()
    assert "IKE state restored" in log and "data plane reconciled" in log, lab.report("no restore in the log")
    # The client's exchanges through the restarted esprit-ike.
    c.charon.swanctl("--rekey", "--child", "home")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = [x for x in c.list_sas()[0].child_sas if x.state == "INSTALLED"]
        if kids and all(k.spi_in != child_before.spi_in for k in kids) and len(gateway_sas()[0][3]) == 1:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(lab.report("the client's CHILD rekey did not complete through the restarted esprit-ike"))
    assert c.ping(L.SERVER, 3, 0.2) == 3
    c.charon.swanctl("--rekey", "--ike", "home")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sas = gateway_sas()
        if len(sas) == 1 and sas[0][0] != before[0][0]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(lab.report(f"the client's IKE rekey did not complete: {gateway_sas()}"))
    assert c.ping(L.SERVER, 3, 0.2) == 3
    assert len(c.list_sas()) == 1 and c.list_sas()[0].initiator_spi != ike_before
    print(f"esprit-ike killed under a pinging client, restarted in {took:.2f} s: {len(run.replies)} of "
          f"{run.transmitted} pings answered, longest gap {gap * 1000:.0f} ms; same IKE and CHILD SAs, "
          f"then CHILD and IKE rekeys by the client completed")


# IKE under attack ---------------------------------------------------------------------------

FLOOD_RATE = 20000     # IKE_SA_INIT requests a second
FLOOD_SECONDS = 30
FLOOD_SOURCES = "100.64.0.0/10"  # spoofed: nothing answers there


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024


def test_ike_sa_init_flood_from_spoofed_sources(lab, gateway, kind):
    """20 000 IKE_SA_INIT requests a second from spoofed addresses (RFC 7296 §2.6's attack),
    sent from the internet namespace for 30 s: the gateway must answer with cookies once its
    half-open SAs reach the threshold, keep its memory bounded, and a real strongSwan client
    behind the NAT must still connect (and pass traffic) while it lasts — five times in a row,
    each timed. strongSwan's own gateway, the reference, faces the same flood."""
    if kind.endswith("dpdk"):
        pytest.skip("the IKE path does not depend on the driver: AF_PACKET covers it")
    gw = gateway()
    c = L.Client(lab, "client1").start()
    esprit = family(kind) == "esprit"
    rss0 = rss_mib(gw.ike.pid) if esprit else None
    flood = lab.spawn("internet", [L.PYTHON, L.THIS, "flood", L.GW_OUT, FLOOD_RATE, FLOOD_SECONDS, FLOOD_SOURCES],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t_flood = time.monotonic()
    time.sleep(4)  # building the requests, then enough of them to pass any cookie threshold
    times, failures, half_open, rss = [], [], [], []
    for _ in range(5):
        t = time.monotonic()
        try:
            c.initiate(timeout=20)
            times.append(time.monotonic() - t)
            assert c.ping(L.SERVER, 2, 0.2) >= 1, lab.report("connected under the flood, but no traffic")
        except L.LabError as e:
            failures.append(str(e)[:300])
        if esprit:
            half_open.append(L.metric(gw.metrics(), "esprit_ike_sas", state="half-open"))
            rss.append(rss_mib(gw.ike.pid))
        c.terminate()
        time.sleep(0.5)
    during = time.monotonic() - t_flood
    out, _ = flood.communicate(timeout=FLOOD_SECONDS + 120)
    report = json.loads(out.strip().splitlines()[-1])
    rate = report["sent"] / report["seconds"]
    assert during < report["seconds"], f"the connects ({during:.0f} s) outlasted the flood ({report['seconds']:.0f} s)"
    assert rate > 0.9 * FLOOD_RATE, f"the flooder managed {rate:.0f} requests/s only: {report}"
    line = (f"{kind}: IKE_SA_INIT flood at {rate:.0f}/s from spoofed sources for {report['seconds']:.0f} s: "
            f"{len(times)}/5 connects, time to connect median {sorted(times)[len(times) // 2] if times else 0:.2f} s, "
            f"max {max(times, default=0):.2f} s")
    if esprit:
        m = gw.metrics()
        cookies = L.metric(m, "esprit_ike_datagrams_total", direction="tx", outcome="cookie")
        received = sum(L.metric(m, "esprit_ike_datagrams_total", direction="rx", outcome=o)
                       for o in ("accepted", "dropped"))
        punts_lost = L.metric(m, "esprit_dataplane_drops_total", reason="ike_no_listener")
        rss1 = rss_mib(gw.ike.pid)
        line += (f"; esprit-ike received {received:.0f} datagrams ({punts_lost:.0f} lost on the way from the data "
                 f"plane), sent {cookies:.0f} cookies, half-open SAs at most {max(half_open):.0f}, RSS before "
                 f"{rss0:.1f} MiB, during {', '.join(f'{x:.1f}' for x in rss)}, after {rss1:.1f} MiB")
        assert cookies > 0.5 * report["sent"], lab.report(f"cookies: {cookies} for {report['sent']} requests")
        assert max(half_open) <= 1000 + 10, f"half-open SAs beyond the cookie threshold: {half_open}"
        assert rss1 - rss0 < 64, f"esprit-ike grew from {rss0:.1f} to {rss1:.1f} MiB"
    print(line)
    assert not failures, lab.report(f"{len(failures)} of 5 connects failed under the flood: {failures}")


# espritctl trace --------------------------------------------------------------------------

def tshark(pcap, *args, config=None):
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=str(config)) if config else None
    r = L.sh(["tshark", "-r", str(pcap), *args], env=env)
    return r.stdout


def test_trace_captures_open_decrypted_in_tshark(lab, gateway, kind, tmp_path):
    """espritctl trace of one peer while its client connects and pings: IKE in the clear
    (IKE_AUTH's identities, AUTH and configuration payloads readable), IKE and ESP as on the
    wire — which tshark decrypts itself with the esp_sa and ikev2_decryption_table files the
    trace wrote — and the inner pings between the virtual IP and the server."""
    if family(kind) != "esprit":
        pytest.skip("espritctl trace")
    gw = gateway()
    ctl = [L.find_binary("espritctl", "ESPRITCTL"), "--socket", str(gw.dir / "esprit-ike.sock")]
    d = tmp_path / "trace"
    t = subprocess.Popen(ctl + ["trace", "--peer", L.NAT_WAN, "--seconds", "8", "--dir", str(d)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    c = connect(lab)
    vip = c.virtual_ip()
    assert c.ping(L.SERVER, 5, 0.2) == 5
    out, err = t.communicate(timeout=60)
    assert t.returncode == 0, out + err
    for f in ["ike-decrypted.pcap", "ike-wire.pcap", "esp-wire.pcap", "inner.pcap", "esp_sa",
              "ikev2_decryption_table", "preferences"]:
        assert (d / f).exists(), f"{f} missing: {out}"
        assert (d / f).stat().st_mode & 0o077 == 0, f"{f} readable by others"
    assert f"trace of {L.NAT_WAN} written to {d}" in out, out

    # IKE_SA_INIT and IKE_AUTH (exchange 35) with IDi (35), AUTH (39) and CP (47) in the clear.
    fields = ["-T", "fields", "-e", "isakmp.exchangetype", "-e", "isakmp.typepayload"]
    clear = tshark(d / "ike-decrypted.pcap", *fields)
    auth = [line for line in clear.splitlines() if line.startswith("35\t")]
    assert len(auth) >= 2 and all(p in auth[0].split("\t")[1].split(",") for p in ["35", "39", "47"]), clear
    # The wire capture has the same messages encrypted (SK, 46); with the trace's key table
    # tshark decrypts them itself.
    wire = tshark(d / "ike-wire.pcap", *fields)
    assert len(wire.splitlines()) == len(clear.splitlines()), wire + clear
    assert not any("47" in line.split("\t")[1].split(",") for line in wire.splitlines() if "\t" in line), wire
    opened = tshark(d / "ike-wire.pcap", *fields, config=d)
    # tshark lists the SK payload (46) and then what it decrypted from it.
    assert opened.replace("\t46,", "\t") == clear, f"decrypted by tshark:\n{opened}\nours:\n{clear}"

    # ESP as on the wire: tshark decrypts the pings with esp_sa; the inner capture has them too.
    icmp = ["-Y", f"icmp && ip.addr == {vip} && ip.addr == {L.SERVER}", "-T", "fields", "-e", "icmp.type"]
    assert tshark(d / "esp-wire.pcap", *icmp) == "", "no ICMP is readable without the keys"
    esp = tshark(d / "esp-wire.pcap", *icmp, config=d).split()
    assert esp.count("8") >= 5 and esp.count("0") >= 5, f"ESP decrypted by tshark: {esp}"
    inner = tshark(d / "inner.pcap", *icmp).split()
    assert inner.count("8") >= 5 and inner.count("0") >= 5, f"inner capture: {inner}"

    # Secrets: no key of the trace's tables (every IKE and ESP key of this client) and not the
    # PSK appears in either process's log (esprit-ike logs at debug level in the lab) — as hex,
    # upper-case hex, or the decimal byte list of a Rust debug print.
    tables = (d / "esp_sa").read_text() + (d / "ikev2_decryption_table").read_text()
    keys = [k for k in re.findall(r"[0-9a-f]{32,}", tables)]
    assert len(keys) >= 4, tables
    logs = gw.dp_out.read_text(errors="replace") + gw.ike_out.read_text(errors="replace")
    for k in keys:
        head = bytes.fromhex(k[:16])
        for form in (k[:16], k[:16].upper(), ", ".join(str(b) for b in head)):
            assert form not in logs, f"key material {form} in the logs"
    assert L.PSK not in logs and L.PSK.encode().hex() not in logs, "the PSK in the logs"
