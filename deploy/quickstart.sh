#!/usr/bin/env bash
# The quickstart: `deploy/quickstart.sh` (or `up`) installs what is missing, builds Esprit and
# brings up the lab in network namespaces — a strongSwan road warrior behind an nftables NAT,
# Esprit on AF_PACKET as the gateway, a server behind it — and leaves it running;
# `deploy/quickstart.sh down` removes it. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
case "${1:-up}" in
  up)
    deploy/install-deps.sh
    cargo build --release -q -p esprit-engine -p esprit-ike -p espritctl --features esprit-engine/ipsec-mb
    ESPRIT_DATAPLANE="$PWD/target/release/esprit-dataplane" ESPRIT_IKE="$PWD/target/release/esprit-ike" \
      ESPRITCTL="$PWD/target/release/espritctl" /usr/bin/python3 deploy/lab/quickstart.py up
    ;;
  down)
    /usr/bin/python3 deploy/lab/quickstart.py down
    ;;
  *)
    echo "usage: $0 [up|down]" >&2
    exit 2
    ;;
esac
