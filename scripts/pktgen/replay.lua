-- roamlb: replay a roamlb-generated capture through the appliance at a fixed
-- share of line rate and report what came back on the backend side.
--
--   pktgen ... -- -P -m "[1:2].0,[3:4].1" -s 0:mobile-1k-64.pcap -f scripts/pktgen/replay.lua
--
-- The capture comes from scripts/pktgen/captures.sh (see README.md).
package.path = package.path .. ";scripts/pktgen/?.lua;?.lua"
require "Pktgen"
local common = require "common"

local CAPTURE = "mobile-1k-64.pcap"
local RATE = 100      -- percent of line rate
local SECONDS = 10

common.setup()
local tx, rx, loss = common.trial(RATE, SECONDS, 2000)
print(string.format("replay %s at %d%%: tx %.3f Mpps, rx %.3f Mpps, loss %.4f%%",
    CAPTURE, RATE, tx / 1e6, rx / 1e6, loss * 100))
local f = io.open("roamlb-replay.csv", "a")
if f then
    f:write(string.format("%s,%d,%.0f,%.0f,%.6f\n", CAPTURE, RATE, tx, rx, loss))
    f:close()
end
pktgen.quit()
