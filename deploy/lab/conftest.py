"""Fixtures of the interop lab: the gateway kind (strongSwan, the reference; Esprit on AF_PACKET
and on DPDK), a fresh lab per test, gateways started on demand, certificates made once per
session. A failing test's report carries every lab log (charon logs, gateway output)."""

import os

import pytest

import esprit_lab as L

# strongSwan's own gateway is the reference that proves the lab; the Esprit kinds skip
# while their binaries are missing (ESPRIT_DATAPLANE, ESPRIT_IKE point at them).
GATEWAY_KINDS = os.environ.get("ESPRIT_LAB_GATEWAYS", "strongswan,esprit-af_packet,esprit-dpdk").split(",")
family = L.gateway_family


@pytest.fixture(params=GATEWAY_KINDS)
def kind(request):
    k = request.param
    if family(k) == "esprit":
        try:
            L.EspritGateway.check_binaries()
        except RuntimeError as e:
            pytest.skip(f"{k}: {e}")
    return k


@pytest.fixture
def lab(request, kind):
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (network namespaces, mounts)")
    with L.Lab() as lab:
        request.node.esprit_lab = lab
        yield lab


@pytest.fixture
def gateway(lab, kind):
    """gateway(**GatewayConn fields) starts the gateway of this test's kind."""
    started = []

    def start(**conn):
        c = L.GatewayConn(**conn)
        gw = L.StrongswanGateway(lab, c) if family(kind) == "strongswan" else \
            L.EspritGateway(lab, c, driver=kind.split("-")[1])
        started.append(gw)
        return gw.start()

    yield start
    for gw in started:
        gw.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """pki("rsa" | "ecdsa"): a CA with gateway and client certificates, made once."""
    made = {}

    def get(keytype):
        if keytype not in made:
            made[keytype] = L.Pki(tmp_path_factory.mktemp(f"pki-{keytype}"), keytype)
        return made[keytype]

    return get


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    lab = getattr(item, "esprit_lab", None)
    if rep.failed and lab is not None:
        rep.sections.append(("lab logs", lab.logs_tail(80)))
