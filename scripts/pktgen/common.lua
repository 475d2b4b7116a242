-- Helpers shared by the roamlb pktgen scripts (pktgen-dpdk 23.03 Lua API).
-- Port 0 sends toward roamlb's client-side port; port 1 receives what roamlb
-- sends toward the backends.
local M = {}

M.TX = "0"
M.RX = "1"

-- Cumulative opackets of port TX and ipackets of port RX.
function M.counts()
    local tx = pktgen.portStats(M.TX, "port")[tonumber(M.TX)]
    local rx = pktgen.portStats(M.RX, "port")[tonumber(M.RX)]
    return tx.opackets, rx.ipackets
end

-- Sends at rate percent of line rate for secs seconds (after a settle
-- period) and returns tx pps, rx pps and the loss ratio over the window.
function M.trial(rate, secs, settle_ms)
    pktgen.stop("all")
    pktgen.delay(500)
    pktgen.clr()
    pktgen.set(M.TX, "rate", rate)
    pktgen.start(M.TX)
    pktgen.delay(settle_ms or 1000)
    local tx0, rx0 = M.counts()
    pktgen.delay(secs * 1000)
    pktgen.stop(M.TX)
    local tx1, _ = M.counts()
    pktgen.delay(200) -- let the queues drain into port 1
    local _, rx1 = M.counts()
    local sent, got = tx1 - tx0, rx1 - rx0
    local loss = 0
    if sent > 0 then loss = math.max(0, sent - got) / sent end
    return sent / secs, got / secs, loss
end

-- Prints a (nested) table returned by pktgen, for fields whose names differ
-- between pktgen releases.
function M.dump(t, indent)
    indent = indent or ""
    for k, v in pairs(t) do
        if type(v) == "table" then
            print(indent .. tostring(k) .. ":")
            M.dump(v, indent .. "  ")
        else
            print(indent .. tostring(k) .. " = " .. tostring(v))
        end
    end
end

function M.setup()
    pktgen.screen("off")
    pktgen.stop("all")
    pktgen.pcap(M.TX, "on")
    pktgen.set(M.TX, "count", 0) -- loop the capture until stopped
    pktgen.set(M.TX, "burst", 32)
end

return M
