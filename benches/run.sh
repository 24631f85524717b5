#!/usr/bin/env bash
# The performance report of benches/README.md in one command: installs what it needs, builds
# the harness in release with intel-ipsec-mb, and runs, in one go,
#   * the per-worker table (esprit-pktgen table: AES-128-GCM and AES-128-CBC+HMAC-SHA1,
#     1 / 1k / 100k SAs, 64 B / IMIX / 1420 B, inbound and outbound, with the raw crypto cost
#     of the same packets),
#   * the two-worker scaling rows,
#   * SA installation through the shared-memory rings (esprit-pktgen install),
#   * IKE_SA + CHILD_SA setups per second (esprit-pktgen ike),
#   * valid traffic with hostile ESP mixed in (esprit-pktgen junk),
#   * the data plane between DPDK net_ring ports (the pipeline_dpdk bench),
# and writes it all to target/bench-report.md.
#
#   ESPRIT_BENCH_SECONDS=N   measured seconds per figure (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
deploy/install-deps.sh >/dev/null

secs=${ESPRIT_BENCH_SECONDS:-1}
out=target/bench-report.md
cargo build --release -q -p esprit-benches --features ipsec-mb --bin esprit-pktgen
cargo bench -q -p esprit-benches --features ipsec-mb,dpdk --bench pipeline_dpdk --no-run 2>/dev/null
pg=target/release/esprit-pktgen
mkdir -p target
{
  echo "# Esprit performance report ($(date -u '+%F %H:%M') UTC, $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo
  echo "## One worker, in process"
  echo
  "$pg" table --seconds "$secs"
  echo
  echo "## Two workers on the same tables (scaling)"
  echo
  "$pg" table --transforms aes128gcm16 --sas 1,1000 --sizes 64,1420 --workers 2 --seconds "$secs" | tail -n +3
  echo
  echo "## SA installation through the rings"
  echo
  "$pg" install --sas 100000
  echo
  echo "## IKE_SA + CHILD_SA setups (PSK, x25519, AES-GCM; the responder's calls, in memory)"
  echo
  "$pg" ike --clients 20000
  echo
  "$pg" ike --clients 20000 --window 32 --loopback
  echo
  echo "## Valid traffic with junk ESP mixed in (one worker, inbound, 1000 clients, IMIX)"
  echo
  "$pg" junk --seconds "$secs" | tail -n +3
  echo
  echo "## One worker between DPDK net_ring ports (generator on the other core)"
  echo
  ESPRIT_BENCH_SECONDS=$secs ESPRIT_BENCH_SAS=1,1000 cargo bench -q -p esprit-benches --features ipsec-mb,dpdk \
    --bench pipeline_dpdk 2>/dev/null | grep '^|'
} | tee "$out"
echo
echo "written to $out"
