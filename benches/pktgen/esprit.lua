-- Pktgen-DPDK script: replay the captures esprit-pktgen wrote toward an Esprit gateway and
-- report the rate the gateway forwards, per second, for ESPRIT_SECONDS (default 20).
--
-- Port 0 is cabled to the gateway's outside port, port 1 to its inside port. Load the
-- captures with pktgen's -s option and run this script with -f:
--
--   esprit-pktgen pcap --transform aes128gcm16 --sas 1000 --size 64 --out /tmp/sc
--   pktgen -l 0-4 -n 4 -a <PCI port 0> -a <PCI port 1> -- -P -m "[1:2].0, [3:4].1" \
--       -s 0:/tmp/sc/outside.pcap -s 1:/tmp/sc/inside.pcap -f benches/pktgen/esprit.lua
--
-- ESPRIT_DIRECTION=inbound (default) sends outside.pcap on port 0 and counts what arrives
-- on port 1 (the gateway decrypted it); outbound sends inside.pcap on port 1 and counts
-- port 0; both sends both at once. The gateway runs with the esprit.toml written next to the
-- captures (add driver/device to its interfaces), which turns off the replay check since
-- the captures repeat their sequence numbers.
--
-- Not run in this repository's CI (pktgen-dpdk is not packaged for Debian 12); the same
-- replay is run here by benches/pktgen/testpmd.sh.

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local seconds = tonumber(os.getenv("ESPRIT_SECONDS") or "20")
local direction = os.getenv("ESPRIT_DIRECTION") or "inbound"
local tx, rx
if direction == "inbound" then
    tx, rx = "0", "1"
elseif direction == "outbound" then
    tx, rx = "1", "0"
elseif direction == "both" then
    tx, rx = "0,1", "0,1"
else
    error("ESPRIT_DIRECTION must be inbound, outbound or both, not " .. direction)
end

pktgen.stop("all")
pktgen.clr()
pktgen.set("all", "rate", 100)
pktgen.set("all", "count", 0)
-- Send the loaded captures, not pktgen's single-packet template.
pktgen.pcap(tx, "on")
pktgen.start(tx)
pktgen.delay(2000) -- warm-up: caches, neighbor entries, the first SA lookups

local best = 0
for s = 1, seconds do
    pktgen.delay(1000)
    local rates = pktgen.portStats(rx, "rate")
    local pps, mbits = 0, 0
    for port, r in pairs(rates) do
        if type(port) == "number" then
            pps = pps + (r.pkts_rx or 0)
            mbits = mbits + (r.mbits_rx or 0)
        end
    end
    if pps > best then
        best = pps
    end
    print(string.format("esprit %s second %d: %.3f Mpps, %.2f Gb/s received from the gateway",
        direction, s, pps / 1e6, mbits / 1e3))
end
pktgen.stop("all")
print(string.format("esprit %s: best second %.3f Mpps", direction, best / 1e6))
pktgen.quit()
