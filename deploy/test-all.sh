#!/usr/bin/env bash
# Runs every test of Esprit: formatting and lints, the Rust tests with every crypto provider,
# the scapy/tshark oracle tests of the offline data plane, the live data plane and the
# strongSwan interop lab in network namespaces, the model checks, a one-minute soak, the
# benches' build, and a bounded fuzzing run of every fuzz target from the committed corpora.
# Installs what it needs.
#
#   ESPRIT_FUZZ_SECONDS=N   seconds per fuzz target (default 20; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
deploy/install-deps.sh

FEATURES="esprit-esp/ipsec-mb,esprit-engine/ipsec-mb,esprit-engine/dpdk,esprit-pktio/dpdk,esprit-benches/ipsec-mb"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --features "$FEATURES" -q -- -D warnings

step "Rust tests (RustCrypto, aws-lc-rs and intel-ipsec-mb providers)"
cargo test --workspace --features "$FEATURES"

step "Rust tests without intel-ipsec-mb (portable build)"
cargo test -q -p esprit-esp -p esprit-engine

step "benches build"
cargo bench --workspace --features "$FEATURES" --no-run -q

step "scapy and tshark oracle tests of the offline mode"
# Debian's python3 (with python3-scapy), not a pyenv or venv one that may shadow it.
cargo build --release -q -p esprit-engine --features esprit-engine/ipsec-mb,esprit-engine/dpdk
cargo build --release -q -p esprit-ike -p espritctl
ESPRIT_DATAPLANE="$PWD/target/release/esprit-dataplane" \
  /usr/bin/python3 -m pytest -q dataplane/engine/tests/oracle

step "live data plane on AF_PACKET and DPDK net_af_packet in network namespaces"
ESPRIT_DATAPLANE="$PWD/target/release/esprit-dataplane" \
  /usr/bin/python3 -m pytest -q dataplane/engine/tests/live

step "example configs pass both processes' checks"
target/release/esprit-dataplane --config deploy/examples/appliance/esprit.toml --check-config
target/release/esprit-ike --config deploy/examples/appliance/esprit.toml --check-config

step "interop lab: strongSwan road warriors behind nftables NAT against strongSwan's and Esprit's gateways"
(cd deploy/lab && ESPRIT_DATAPLANE="$PWD/../../target/release/esprit-dataplane" \
  ESPRIT_IKE="$PWD/../../target/release/esprit-ike" ESPRITCTL="$PWD/../../target/release/espritctl" \
  /usr/bin/python3 -m pytest -q .)

step "model checks (loom): the lock-free tables and the shared-memory rings"
RUSTFLAGS="--cfg crossbeam_loom" CARGO_TARGET_DIR=target/loom \
  cargo test -q -p esprit-satable --features loom --release --test loom
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom-ring \
  cargo test -q -p esprit-ring --release loom

step "soak: 500 road warriors connect, pass traffic, rekey and disconnect for 60 s"
# Fails if anything is left after a cycle, a packet is unaccounted for, or memory grows.
cargo build --release -q -p esprit-benches --features ipsec-mb --bin esprit-pktgen
target/release/esprit-pktgen soak --clients 500 --seconds 60

step "README offline example"
out=$(mktemp -d)
ex=deploy/examples/offline
target/release/esprit-dataplane --config $ex/gateway.toml \
  --pcap-in outside=$ex/outside-in.pcap --pcap-in inside=$ex/inside-in.pcap \
  --pcap-out outside="$out/outside-out.pcap" --pcap-out inside="$out/inside-out.pcap" | tee "$out/report"
grep -q "esp_decrypted  *2" "$out/report"
grep -q "icmp_frag_needed_tx  *1" "$out/report"
[ "$(tshark -r "$out/inside-out.pcap" 2>/dev/null | wc -l)" -eq 3 ]
rm -rf "$out"

FUZZ_SECONDS="${ESPRIT_FUZZ_SECONDS:-20}"
if [ "$FUZZ_SECONDS" != 0 ]; then
  step "fuzzing, ${FUZZ_SECONDS}s per target"
  # cargo fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
  for t in wire classify decap reassembly engine config ring_decode ike_decode ike_endpoint; do
    work=$(mktemp -d)
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "$work" "corpus/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=0 2>&1 | tail -n 3)
    rm -rf "$work"
  done
fi

step "all tests passed"
