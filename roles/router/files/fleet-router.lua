-- Managed by fleet (router role). Heroku's two response timers for HAProxy 2.6.
--
-- HAProxy has one server inactivity timeout for both the wait for a response
-- and the silences inside one. Heroku has two: 30 s for the first byte (H12)
-- and then a rolling 55 s window (H15). haproxy.cfg sets `timeout server` to
-- the 55 s window, and this filter (`filter lua.fleet-timing FIRST_MS IDLE_MS`
-- in each app backend) adds the first-byte deadline and names what happened
-- for the router's log line (txn.fleet_at):
--   * no response byte by the deadline: the response analysis ends with an
--     error, HAProxy answers with the backend's 502 errorfile (a 503 page)
--     and the log says H12;
--   * a response that stopped for the whole idle window: HAProxy closes it
--     (server timeout) and the log says H15;
--   * a response the dyno cut short (it closed the connection after some of
--     the response, the client still there): the log says H18;
--   * a client that went away in the middle of a response: H27, at=info (not
--     the app's error).

local Timing = {}
Timing.id = "fleet response timing"
Timing.flags = filter.FLT_CFG_FL_HTX
Timing.__index = Timing

local H12 = 'at=error code=H12 desc="Request timeout"'
local H15 = 'at=error code=H15 desc="Idle connection"'
local H18 = 'at=error code=H18 desc="Server Request Interrupted"'
local H27 = 'at=info code=H27 desc="Client Request Interrupted"'

local function now_ms()
  local t = core.now()
  return t.sec * 1000 + t.usec // 1000
end

function Timing:new()
  return setmetatable({ first_byte = self.first_byte, idle = self.idle }, Timing)
end

-- The response side's analysis starts when the dyno connection is made; it is
-- held here, waking at the deadline, until the first byte arrives. The request
-- side needs nothing: every callback a filter defines is called for both sides,
-- so the filter defines as few as it can (each call costs microseconds).
function Timing:start_analyze(txn, chn)
  if not chn:is_resp() then
    return filter.CONTINUE
  end
  local now = now_ms()
  if not self.deadline then
    self.deadline = now + self.first_byte
  end
  if chn:input() > 0 or not chn:may_recv() then
    -- a byte arrived (or the dyno closed: H13 is HAProxy's): watch the silences from here on
    filter.register_data_filter(self, chn)
    return filter.CONTINUE
  end
  if now >= self.deadline then
    txn:set_var("txn.fleet_at", H12)
    return filter.ERROR
  end
  filter.wake_time(self.deadline - now)
  return filter.WAIT
end

-- Called as response data arrives (the request side has no data filter).
function Timing:http_payload(txn, msg)
  self.last = now_ms()
end

-- Called once the whole response has passed (also one delimited by the
-- dyno closing the connection); only for data filters, so only here.
function Timing:http_end(txn, msg)
  self.complete = true
  return filter.CONTINUE
end

-- A response that never ended: after a whole idle window of silence HAProxy's
-- server timeout closed it (H15); otherwise, if the dyno's side closed while
-- the client's is still open, the dyno cut it short (H18); if the client's
-- side closed, the client went away (H27).
function Timing:end_analyze(txn, chn)
  if self.last and not self.complete and chn:is_resp() then
    if now_ms() - self.last >= self.idle - 1000 then
      txn:set_var("txn.fleet_at", H15)
    elseif not txn.req:may_recv() then
      txn:set_var("txn.fleet_at", H27)
    elseif not chn:may_recv() then
      txn:set_var("txn.fleet_at", H18)
    end
  end
  return filter.CONTINUE
end

core.register_filter("fleet-timing", Timing, function(timing, args)
  timing.first_byte = tonumber(args[1]) or 30000
  timing.idle = tonumber(args[2]) or 55000
  return timing
end)
