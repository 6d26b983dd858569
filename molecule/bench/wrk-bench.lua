-- make bench (molecule/bench/bench.py): wrk's script for the fleet's stack phase. Settings come
-- from the environment (bench.py sets them on the wrk command line):
--
--   BENCH_ADDRS   host:port[,host:port...]: thread i connects to address i (round robin) instead
--                 of the URL's host (the app server's instances, reached directly)
--   BENCH_HTTP10  1: send HTTP/1.0 requests (a server that closes every connection without saying
--                 so, as uWSGI's http-socket does, is then expected to close; not a read error)
--   BENCH_RATE    0 or unset: closed loop (each connection sends its next request as soon as the
--                 answer is in). N: open loop at N requests a second in all, paced here: one
--                 connection per thread (wrk -t T -c T), thread i sends at start + (i + k T) / N;
--                 the latency of a request counts from the moment it was due when its connection
--                 was still busy then (a late answer delays the next request: counted, as wrk2
--                 does), else from when it was sent
--   BENCH_WARMUP  open loop: seconds from the start whose requests are not counted
--   BENCH_WINDOW  open loop: seconds counted after the warm-up (wrk's -d must leave a second more
--                 for the last answers)
--
-- done() prints one line, WRK_JSON {...}: wrk's own figures (closed loop) and, in open loop, the
-- paced requests' figures (latencies in microseconds).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC: one clock for every thread
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
local warmup_us = (tonumber(os.getenv("BENCH_WARMUP") or "0") or 0) * 1000000
local window_us = (tonumber(os.getenv("BENCH_WINDOW") or "0") or 0) * 1000000
local http10 = os.getenv("BENCH_HTTP10") == "1"

-- Main state: one entry per thread, the addresses, the common start of the schedule.
local threads = {}
local addrs = {}
for a in string.gmatch(os.getenv("BENCH_ADDRS") or "", "[^,]+") do
  local host, port = string.match(a, "^(.+):(%d+)$")
  table.insert(addrs, wrk.lookup(host, port)[1])
end
local schedule_start = nil

function setup(thread)
  table.insert(threads, thread)
  if #addrs > 0 then
    thread.addr = addrs[(#threads - 1) % #addrs + 1]
  end
  -- 300 ms from the first thread's setup: every thread is running and connected by then.
  schedule_start = schedule_start or (now_us() + 300000)
  thread:set("idx", #threads - 1)
  thread:set("start_us", schedule_start)
end

-- Thread states.
local req
local step_us, due, free_at, win_lo, win_hi
local in_flight, cur_due, cur_start = false, 0, 0
lat, nlat, sent, late, bad = {}, 0, 0, 0, 0

function init(args)
  local r = wrk.format()
  if http10 then
    r = string.gsub(r, " HTTP/1%.1\r\n", " HTTP/1.0\r\n", 1)
  end
  req = r
  if rate > 0 then
    local nthreads = tonumber(os.getenv("BENCH_THREADS"))
    step_us = 1000000 * nthreads / rate
    due = start_us + idx * 1000000 / rate
    free_at = start_us
    win_lo = start_us + warmup_us
    win_hi = win_lo + window_us
  end
end

function request()
  if rate > 0 then
    local now = now_us()
    -- The connection was busy when this request was due: the wait counts.
    cur_start = (free_at > due) and due or now
    if free_at > due and due >= win_lo and due < win_hi then
      late = late + 1
    end
    cur_due = due
    in_flight = true
    if due >= win_lo and due < win_hi then
      sent = sent + 1
    end
    due = due + step_us
  end
  return req
end

if rate > 0 then
  function delay()
    local wait = due - now_us()
    if wait <= 0 then
      return 0
    end
    return math.floor(wait / 1000 + 0.5)
  end

  function response(status, headers, body)
    local now = now_us()
    if in_flight then
      in_flight = false
      if cur_due >= win_lo and cur_due < win_hi then
        nlat = nlat + 1
        lat[nlat] = now - cur_start
        if status < 200 or status > 399 then
          bad = bad + 1
        end
      end
    end
    free_at = now
  end
end

local function percentile(sorted, n, p)
  if n == 0 then
    return -1
  end
  local i = math.ceil(p / 100 * n)
  if i < 1 then i = 1 end
  if i > n then i = n end
  return sorted[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  local out = string.format(
    '"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean)
  if rate > 0 then
    local all, n, s, lt, b = {}, 0, 0, 0, 0
    for _, thread in ipairs(threads) do
      local l = thread:get("lat")
      for i = 1, thread:get("nlat") do
        n = n + 1
        all[n] = l[i]
      end
      s = s + thread:get("sent")
      lt = lt + thread:get("late")
      b = b + thread:get("bad")
    end
    -- Requests sent in the window and never answered count as the slowest.
    local unanswered = s - n
    for _ = 1, unanswered do
      n = n + 1
      all[n] = math.huge
    end
    table.sort(all)
    local function q(p)
      local v = percentile(all, n, p)
      return v == math.huge and -2 or v
    end
    out = out .. string.format(
      ', "ol_rate": %.1f, "ol_window_us": %d, "ol_sent": %d, "ol_answered": %d, "ol_unanswered": %d, '
      .. '"ol_late": %d, "ol_bad_status": %d, "ol_p50_us": %.0f, "ol_p90_us": %.0f, "ol_p99_us": %.0f, '
      .. '"ol_p999_us": %.0f, "ol_max_us": %.0f',
      rate, window_us, s, n - unanswered, unanswered, lt, b, q(50), q(90), q(99), q(99.9), q(100))
  end
  io.write("WRK_JSON {" .. out .. "}\n")
end
