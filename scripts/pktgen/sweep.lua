-- roamlb: rate sweep to the loss-free rate (RFC 2544 §26.1 style binary
-- search). Each trial replays the capture at a share of line rate for
-- TRIAL_S seconds; a trial passes when the loss is at most MAX_LOSS.
--
--   pktgen ... -- -P -m "[1:2].0,[3:4].1" -s 0:mobile-64k-mix-64.pcap -f scripts/pktgen/sweep.lua
package.path = package.path .. ";scripts/pktgen/?.lua;?.lua"
require "Pktgen"
local common = require "common"

local CAPTURE = "mobile-64k-mix-64.pcap"
local TRIAL_S = 10
local MAX_LOSS = 0.00001   -- 0.001 %
local RESOLUTION = 0.5     -- percent of line rate

common.setup()
local lo, hi = 0, 100
local best = nil
local f = io.open("roamlb-sweep.csv", "w")
if f then f:write("capture,rate_pct,tx_pps,rx_pps,loss\n") end
-- Full rate first: many appliances pass it at large sizes.
local tx, rx, loss = common.trial(100, TRIAL_S, 2000)
if loss <= MAX_LOSS then
    best = { 100, tx, rx, loss }
else
    while hi - lo > RESOLUTION do
        local mid = (lo + hi) / 2
        tx, rx, loss = common.trial(mid, TRIAL_S, 2000)
        print(string.format("  %6.2f%%: tx %.3f Mpps rx %.3f Mpps loss %.5f%%", mid, tx / 1e6, rx / 1e6, loss * 100))
        if f then f:write(string.format("%s,%.2f,%.0f,%.0f,%.8f\n", CAPTURE, mid, tx, rx, loss)) end
        if loss <= MAX_LOSS then
            lo = mid
            best = { mid, tx, rx, loss }
        else
            hi = mid
        end
    end
end
if f then f:close() end
if best then
    print(string.format("loss-free rate for %s: %.2f%% of line rate, %.3f Mpps (loss %.5f%%)",
        CAPTURE, best[1], best[3] / 1e6, best[4] * 100))
else
    print("no loss-free rate above " .. RESOLUTION .. "% of line rate for " .. CAPTURE)
end
pktgen.quit()
