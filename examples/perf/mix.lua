-- wrk script for `make soak` and `make bench`: replays a mix of requests round robin and tallies every status.
-- The mix file (the argument after `--`) holds one request a line: method, path, then "Name: value" headers,
-- tab-separated. done() prints lines starting with "wrk " that examples/perf/wrk.rs reads.

local threads = {}
local requests = {}
local next_request = 1
-- Global, so that done() can read each thread's copy with thread:get.
statuses = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   for line in io.lines(args[1]) do
      local fields = {}
      for field in string.gmatch(line, "[^\t]+") do
         table.insert(fields, field)
      end
      local headers = {}
      for i = 3, #fields do
         local name, value = string.match(fields[i], "^([^:]+): (.*)$")
         headers[name] = value
      end
      -- An empty body still gets a content-length, as the simulated requests do.
      local body = nil
      if fields[1] == "POST" or fields[1] == "PUT" or fields[1] == "PATCH" then
         body = ""
      end
      table.insert(requests, wrk.format(fields[1], fields[2], headers, body))
   end
end

function request()
   local r = requests[next_request]
   next_request = next_request % #requests + 1
   return r
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("wrk summary %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
      e.connect, e.read, e.write, e.timeout, e.status))
   io.write(string.format("wrk latency %d %d %d %d\n", latency:percentile(50), latency:percentile(99),
      latency:percentile(99.9), latency.max))
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         io.write(string.format("wrk status %d %d\n", status, count))
      end
   end
end
