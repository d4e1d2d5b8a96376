-- wrk script: POST one OpenAI chat completion per request; print the run's stats as one JSON line.
wrk.method = "POST"
wrk.path = wrk.path ~= "/" and wrk.path or "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"Say ok"}]}'

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   non2xx = 0
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   end
end

function done(summary, latency, requests)
   local non2xx_total = 0
   for _, thread in ipairs(threads) do
      non2xx_total = non2xx_total + (thread:get("non2xx") or 0)
   end
   local seconds = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"duration_s":%.6f,"requests":%d,"bytes":%d,"requests_per_s":%.3f,'
         .. '"latency_ms":{"mean":%.4f,"stdev":%.4f,"max":%.4f,"p50":%.4f,"p90":%.4f,"p99":%.4f},'
         .. '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status_4xx_5xx":%d,"non_2xx":%d}}\n',
      seconds, summary.requests, summary.bytes, summary.requests / seconds,
      latency.mean / 1e3, latency.stdev / 1e3, latency.max / 1e3,
      latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
      e.connect, e.read, e.write, e.timeout, e.status, non2xx_total))
end
