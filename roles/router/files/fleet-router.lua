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
--     (server timeout) and the log says H15.

local Timing = {}
Timing.id = "fleet response timing"
Timing.flags = filter.FLT_CFG_FL_HTX
Timing.__index = Timing

local H12 = 'at=error code=H12 desc="Request timeout"'
local H15 = 'at=error code=H15 desc="Idle connection"'

local function now_ms()
  local t = core.now()
  return t.sec * 1000 + t.usec // 1000
end

function Timing:new()
  return setmetatable({ first_byte = self.first_byte, idle = self.idle }, Timing)
end

-- The response side's analysis starts when the dyno connection is made; it is
-- held here, waking at the deadline, until the first byte arrives.
function Timing:start_analyze(txn, chn)
  if not chn:is_resp() then
    return filter.CONTINUE
  end
  local now = now_ms()
  if not self.deadline then
    self.deadline = now + self.first_byte
  end
  if chn:input() > 0 or not chn:may_recv() then
    return filter.CONTINUE -- a byte arrived, or the dyno closed (H13 and retries are HAProxy's)
  end
  if now >= self.deadline then
    txn:set_var("txn.fleet_at", H12)
    return filter.ERROR
  end
  filter.wake_time(self.deadline - now)
  return filter.WAIT
end

-- A response not whole with its headers is watched for silences.
function Timing:http_headers(txn, msg)
  if msg.channel:is_resp() and not msg:eom() then
    self.last = now_ms()
    filter.register_data_filter(self, msg.channel)
  end
  return filter.CONTINUE
end

function Timing:http_payload(txn, msg)
  self.last = now_ms()
end

function Timing:http_end(txn, msg)
  if msg.channel:is_resp() then
    self.complete = true
  end
  return filter.CONTINUE
end

function Timing:end_analyze(txn, chn)
  if chn:is_resp() and self.last and not self.complete and now_ms() - self.last >= self.idle - 1000 then
    txn:set_var("txn.fleet_at", H15)
  end
  return filter.CONTINUE
end

core.register_filter("fleet-timing", Timing, function(timing, args)
  timing.first_byte = tonumber(args[1]) or 30000
  timing.idle = tonumber(args[2]) or 55000
  return timing
end)
