#!/usr/bin/env bash
# Installs what building and testing Esprit needs on Debian 12, if it is missing.
# Idempotent; run as root (or with sudo available).
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

PKGS=(
  build-essential pkg-config curl ca-certificates
  libclang-dev            # bindgen (intel-ipsec-mb, DPDK bindings)
  libipsec-mb-dev         # the intel-ipsec-mb crypto provider
  libdpdk-dev dpdk        # DPDK 22.11: bindings and the vdev PMDs the tests use
  python3 python3-scapy python3-pytest python3-cryptography   # independent oracles
  tshark                  # dissects what the data plane writes
  iproute2 ethtool iputils-ping iputils-tracepath   # network-namespace tests
  strongswan-charon strongswan-swanctl strongswan-pki   # the interop lab (deploy/lab): real clients
  libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins   # gcm/openssl, curve25519, kernel-libipsec
  nftables conntrack tcpdump   # the lab's NAT router and captures
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -q
  # A first attempt can fail on a temporary .deb that vanished from a mirror; retry once.
  ${SUDO:+$SUDO -E} apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || ${SUDO:+$SUDO -E} apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "installing the Rust toolchain (rustup)"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt || true

if [ "${ESPRIT_FUZZ_SECONDS:-20}" != 0 ] && ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked -q
fi
