#!/bin/sh
# Drive an Esprit gateway with dpdk-testpmd on a second machine (or the same one, over
# veths): the capture esprit-pktgen wrote is replayed in a loop toward the gateway, and the
# packets the gateway forwards out of its other side are counted.
#
#   benches/pktgen/testpmd.sh DIR DIRECTION TOWARD FROM [SECONDS]
#
#   DIR        what `esprit-pktgen pcap --out DIR` wrote (outside.pcap, inside.pcap)
#   DIRECTION  inbound (replay outside.pcap: ESP from the clients) or outbound
#              (replay inside.pcap: plaintext from the server)
#   TOWARD     the DPDK device cabled to the gateway port the replay enters: a PCI address
#              (0000:3b:00.0) or a vdev (net_af_packet0,iface=veth-gen-out)
#   FROM       the DPDK device cabled to the gateway port the result leaves by
#   SECONDS    how long to run (default 20); testpmd prints the ports' rates every second
#
# Ports, as testpmd numbers them: 0 = TOWARD, 1 = FROM, 2 = the capture (net_pcap, looping),
# 3 = a sink (net_null). Forwarding pairs 2 -> 0 (the replay) and 1 -> 3 (what the gateway
# forwarded, counted then discarded). The gateway's rate is port 1's "Rx-pps".
# Cores: -l takes EAL_CORES (default 0-2: the main lcore and two forwarding lcores);
# EAL_EXTRA adds EAL options (say "--no-huge -m 1024" where no hugepages are reserved).
set -eu

[ $# -ge 4 ] || { sed -n '2,22p' "$0" >&2; exit 2; }
dir=$1 direction=$2 toward=$3 from=$4 seconds=${5:-20}
case $direction in
  inbound) pcap=$dir/outside.pcap ;;
  outbound) pcap=$dir/inside.pcap ;;
  *) echo "testpmd.sh: DIRECTION must be inbound or outbound, not $direction" >&2; exit 2 ;;
esac
[ -r "$pcap" ] || { echo "testpmd.sh: $pcap not readable (run esprit-pktgen pcap --out $dir first)" >&2; exit 2; }
command -v dpdk-testpmd >/dev/null || { echo "testpmd.sh: dpdk-testpmd missing (apt-get install dpdk-dev)" >&2; exit 2; }

dev_arg() {
  case $1 in
    net_*) printf -- '--vdev=%s' "$1" ;;
    *) printf -- '--allow=%s' "$1" ;;
  esac
}

# Only the devices named are touched: with two vdevs, no PCI device is probed at all.
no_pci=
case $toward$from in net_*net_*) no_pci=--no-pci ;; esac

# PCI devices are probed before vdevs, so an all-PCI or all-vdev pair keeps the order
# TOWARD, FROM; --portlist pins the pairing either way.
exec timeout --foreground -s INT "$seconds" dpdk-testpmd -l "${EAL_CORES:-0-2}" \
  --file-prefix="esprit-testpmd-$$" $no_pci ${EAL_EXTRA:-} \
  "$(dev_arg "$toward")" "$(dev_arg "$from")" \
  --vdev="net_pcap_esprit,rx_pcap=$pcap,tx_pcap=/dev/null,infinite_rx=1" \
  --vdev=net_null_esprit \
  -- --forward-mode=io --portlist=2,0,1,3 --auto-start --stats-period=1 \
  --burst=32 --txd=1024 --rxd=1024 --total-num-mbufs=32768 --nb-cores="${NB_CORES:-2}"
