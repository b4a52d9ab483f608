-- wrk script of benchmarks/sending_throughput.py: one connection per thread.
--
-- BENCH_KIND=cycle: requestSmsCode for a new number, read the code from the
--   X-Bench-Code header, verifySmsCode with it; a cycle counts when the verify
--   answers 200. Threads take apps round-robin from BENCH_APPS ("id:key,...").
-- BENCH_KIND=insert: POST /bench/insert.   BENCH_KIND=select: GET /bench/select/<pk>
--   with pk drawn from 1..BENCH_ROWS.
-- Numbers: +86 138 AB CD EFGH for n = BENCH_OFFSET, BENCH_OFFSET + 1, ...:
-- AB = n % 100 (the pumping defence's number range), CD = n / 100 % 100 (with
-- AB the sending limit's range), EFGH = n / 10^4: no number repeats, no range
-- gets more than a few sends an hour (every limit stays at its default), and
-- the cycles cut short at the end of a run leave one unverified code in each
-- of many ranges, never many in one.
-- Prints one line "BENCH {json}" at the end.

local kind = os.getenv("BENCH_KIND") or "cycle"
local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
local rows = tonumber(os.getenv("BENCH_ROWS") or "1000")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local apps = {}
for pair in string.gmatch(os.getenv("BENCH_APPS") or "", "[^,]+") do
   local id, key = string.match(pair, "([^:]+):(.+)")
   table.insert(apps, { id = id, key = key })
end

local seq, phone, code, stage
cycles, errors, first_error = 0, 0, ""

function init(args)
   seq = 0
   stage = "request"
   math.randomseed(tid * 7919 + offset)
   if #apps > 0 then
      local app = apps[(tid % #apps) + 1]
      wrk.headers["X-LC-Id"] = app.id
      wrk.headers["X-LC-Key"] = app.key
   end
   wrk.headers["Content-Type"] = "application/json"
end

local function next_phone()
   local n = offset + seq * nthreads + tid
   seq = seq + 1
   return string.format("+86138%02d%02d%04d", n % 100, math.floor(n / 100) % 100,
                        math.floor(n / 10000) % 10000)
end

function request()
   if kind == "insert" then
      return wrk.format("POST", "/bench/insert", nil,
                        '{"mobilePhoneNumber":"' .. next_phone() .. '"}')
   elseif kind == "select" then
      return wrk.format("GET", "/bench/select/" .. math.random(1, rows))
   end
   if stage == "request" then
      phone = next_phone()
      return wrk.format("POST", "/1.1/requestSmsCode", nil,
                        '{"mobilePhoneNumber":"' .. phone .. '"}')
   end
   return wrk.format("POST", "/1.1/verifySmsCode/" .. code, nil,
                     '{"mobilePhoneNumber":"' .. phone .. '"}')
end

local function fail(status, body)
   errors = errors + 1
   if first_error == "" then
      first_error = status .. " " .. string.sub(body or "", 1, 200)
   end
end

function response(status, headers, body)
   if kind ~= "cycle" then
      if status == 200 then cycles = cycles + 1 else fail(status, body) end
      return
   end
   if stage == "request" then
      code = headers["X-Bench-Code"]
      if status == 200 and code then
         stage = "verify"
      else
         fail(status, body)
      end
   else
      stage = "request"
      if status == 200 then cycles = cycles + 1 else fail(status, body) end
   end
end

function done(summary, latency, requests)
   local total, errs, first = 0, 0, ""
   for _, thread in ipairs(threads) do
      total = total + thread:get("cycles")
      errs = errs + thread:get("errors")
      if first == "" then first = thread:get("first_error") end
   end
   first = string.gsub(first, '[%c"\\]', " ")
   io.write(string.format(
      'BENCH {"done": %d, "errors": %d, "requests": %d, "seconds": %.6f, ' ..
      '"socket_errors": %d, "first_error": "%s"}\n',
      total, errs, summary.requests, summary.duration / 1e6,
      summary.errors.connect + summary.errors.read + summary.errors.write
         + summary.errors.timeout, first))
end
