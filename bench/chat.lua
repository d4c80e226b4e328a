-- wrk script for bench/run.sh: one non-streaming OpenAI chat completion per
-- request, ~600-byte JSON body, Bearer key from $BENCH_KEY.
--
-- No response() callback on purpose: defining one makes wrk hand every
-- response to Lua, which would slow the load generator (it shares a core with
-- the sim). wrk itself counts statuses >= 400 as errors.status.
--
-- done() prints one machine-readable line with exact figures (latency in
-- microseconds, from wrk's own histogram), parsed by run.sh:
--   BENCH requests=N duration_us=N rps=F p50_us=N p90_us=N p99_us=N
--         max_us=N connect=N read=N write=N status=N timeout=N

local key = os.getenv("BENCH_KEY") or "sk-bench"

local system = "You are a concise assistant for an online bookshop. Answer questions "
    .. "about orders, shipping times, returns and book recommendations. Keep every "
    .. "answer under three sentences, never invent order numbers, and when you do "
    .. "not know something, say so and point the customer to the help page."
local user = "Hello! I ordered two paperbacks last Tuesday and the tracking page "
    .. "still says the parcel is being prepared. Is that normal, how long does "
    .. "shipping usually take, and can I still add a third book to the order?"

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.body = '{"model":"bench","messages":['
    .. '{"role":"system","content":"' .. system .. '"},'
    .. '{"role":"user","content":"' .. user .. '"}'
    .. '],"max_tokens":16}'

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d "
            .. "connect=%d read=%d write=%d status=%d timeout=%d body_bytes=%d\n",
        summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        e.connect, e.read, e.write, e.status, e.timeout, #wrk.body))
end
