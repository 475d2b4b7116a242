-- roamlb: latency through the appliance with pktgen's own timestamped probes
-- (pktgen 23.03 "latency" mode) on top of a capture replayed at a fraction
-- of the loss-free rate found by sweep.lua. The probes are IPv4/UDP to the
-- IPv4 VIP, so roamlb load-balances them to a backend on port 1 like any
-- client. For per-flow latency of the mobile traffic itself, run
-- `roamlb gen` live instead: its receive side reports percentiles.
--
--   pktgen ... -- -P -m "[1:2].0,[3:4].1" -s 0:ipv4-1k-64.pcap -f scripts/pktgen/latency.lua
package.path = package.path .. ";scripts/pktgen/?.lua;?.lua"
require "Pktgen"
local common = require "common"

local CAPTURE = "ipv4-1k-64.pcap"
local RATE = 50         -- percent of line rate: set it below the loss-free rate
local SECONDS = 20
local VIP4 = "198.51.100.80"

common.setup()
pktgen.set_ipaddr(common.TX, "dst", VIP4)
pktgen.set_ipaddr(common.TX, "src", "10.255.0.1/8")
pktgen.set_proto(common.TX, "udp")
pktgen.set(common.TX, "dport", 80)
pktgen.latency("all", "enable")
local tx, rx, loss = common.trial(RATE, SECONDS, 2000)
print(string.format("%s at %d%%: tx %.3f Mpps rx %.3f Mpps loss %.4f%%", CAPTURE, RATE, tx / 1e6, rx / 1e6, loss * 100))
-- Field names of the latency block differ between pktgen releases: print all.
common.dump(pktgen.pktStats("all"))
pktgen.latency("all", "disable")
pktgen.quit()
