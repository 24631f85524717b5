#!/usr/bin/env bash
# Instructions per packet of one row of the per-worker table, counted by callgrind: exact and
# repeatable, unlike the times of a shared VM, so a change of a few instructions per packet
# can be judged with one run each side. Runs `esprit-pktgen table` for one transform, SA
# count, size and direction under valgrind (about 50 times slower: one measured second
# gives some 50 000 packets) and prints the instructions per packet spent in `Worker::rx`
# and in the functions under it that take at least 2 % of them (inclusive counts; a
# function the compiler inlined is counted in its caller). Only `Worker::rx` is counted:
# not building the tables and frames, nor copying frames into buffers (the work of the NIC,
# left out of the timed figures of the table too).
#
#   benches/instructions.sh [TRANSFORM [SAS [SIZE [DIRECTION]]]]
#   defaults: aes128gcm16 1 64 inbound
#
#   ESPRIT_PKTGEN=path   a prebuilt esprit-pktgen (to compare two builds) instead of building
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
transform=${1:-aes128gcm16} sas=${2:-1} size=${3:-64} dir=${4:-inbound}
case $dir in inbound | outbound) ;; *)
  echo "direction must be inbound or outbound, not '$dir'" >&2
  exit 2
  ;;
esac
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null
fi
pg=${ESPRIT_PKTGEN:-}
if [ -z "$pg" ]; then
  deploy/install-deps.sh >/dev/null
  cargo build --release -q -p esprit-benches --features ipsec-mb --bin esprit-pktgen
  pg=target/release/esprit-pktgen
fi
out=$(mktemp /tmp/esprit-callgrind.XXXXXX)
trap 'rm -f "$out"' EXIT
# Only what runs inside Worker::rx is counted (not building the tables and frames, nor
# copying frames into buffers: the work of the NIC, outside rx in the table too).
valgrind --tool=callgrind --toggle-collect='*Worker<*>::rx' --callgrind-out-file="$out" "$pg" table --transforms "$transform" \
  --sas "$sas" --sizes "$size" --direction "$dir" --no-raw --seconds 1 >/dev/null 2>&1
{
  echo "## calls"
  callgrind_annotate --tree=caller --threshold=100 "$out"
  echo "## inclusive"
  callgrind_annotate --inclusive=yes --threshold=100 "$out"
} 2>/dev/null | python3 -c '
import re, sys
section, bursts, incl = None, None, {}
for line in sys.stdin:
    if line.startswith("## "):
        section = line[3:].strip()
        continue
    if section == "calls" and bursts is None:
        # A caller line of Worker::rx: "N (p%)  < file:Worker<P>::rx (Kx) [bin]".
        m = re.search(r"< \S+:esprit_engine::worker::Worker<P>::rx \(([\d,]+)x\)", line)
        if m:
            bursts = int(m.group(1).replace(",", ""))
    elif section == "inclusive":
        # A whole function: "N (p%)  file:function [object]" (lines without the object are
        # the parts of a function inlined from another file).
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+([^:\s]+):(.+) \[\S+\]$", line)
        if m:
            incl.setdefault(m.group(3).strip(), int(m.group(1).replace(",", "")))
if not bursts:
    sys.exit("no Worker::rx calls in the profile: did the table run?")
# The harness hands the worker full bursts of 32.
pkts = 32 * bursts
rx = incl.get("esprit_engine::worker::Worker<P>::rx")
print(f"{sys.argv[1]}, {sys.argv[2]} SAs, {sys.argv[3]} B, {sys.argv[4]}: {pkts} packets")
print(f"{rx / pkts:8.0f}  instructions per packet in Worker::rx, of which:")
rows = sorted(((n, f) for f, n in incl.items() if n < rx and n >= 0.02 * rx), reverse=True)
for n, f in rows:
    if f.startswith("0x"):
        f += " (intel-ipsec-mb has no symbols)"
    print(f"{n / pkts:8.0f}  {f}")
' "$transform" "$sas" "$size" "$dir"
