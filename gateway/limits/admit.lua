-- One admission decision for one subject, atomic: every check, then (only if all pass, and only in
-- 'admit' mode) every write. A refusal or a 'peek' changes no count (it may drop entries that have
-- already left their window). Time is Redis's own clock.
-- Semantics: gateway/limits/decisions.py. Called by gateway/limits/redis_store.py.
--
-- KEYS[1] requests log (zset lease -> admission time)   KEYS[2] token bucket (hash level, at)
-- KEYS[3] leases (zset lease -> expiry): the admissions not yet settled, each the reservation settle.lua
--         finds (and, with max_concurrent, what concurrency counts)
-- KEYS[4] budget counter base (+ ':' .. period)          KEYS[5] the lease's cancel tombstone (string)
-- ARGV: mode ('admit'|'peek'), lease, tokens, window_s, lease_ttl_s, clock_offset_s,
--       requests_per_minute, tokens_per_minute, max_concurrent, token_budget ('' = unlimited),
--       budget_period ('day'|'month'), concurrency_retry_s, budget_grace_s

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[6])
local admit = ARGV[1] == 'admit'
local lease, tokens, window, lease_ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local rpm, tpm, conc, budget = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])

local function ms(s) return math.max(1, math.ceil(s * 1000)) end

-- A lease cancelled before its admit ran: this is a late copy of an admit that timed out. No-op.
if admit and redis.call('EXISTS', KEYS[5]) == 1 then
  return cjson.encode({allowed = false, cancelled = true})
end

local waits = {}
local since = now - window

local in_window = 0
if rpm then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', since)
  in_window = redis.call('ZCARD', KEYS[1])
  if in_window >= rpm then
    waits.requests = window
    if rpm > 0 then  -- one more fits when the entry `rpm` places before the newest leaves the window
      local e = redis.call('ZRANGE', KEYS[1], in_window - rpm, in_window - rpm, 'WITHSCORES')
      waits.requests = math.max(0, tonumber(e[2]) + window - now)
    end
  end
end

local level = 0
if tpm then
  level = tpm
  local h = redis.call('HMGET', KEYS[2], 'level', 'at')
  if h[1] then level = math.min(tpm, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * tpm / window) end
  local need = math.min(tokens, tpm)
  if level < need then waits.tokens = tpm > 0 and (need - level) * window / tpm or window end
end

local reserve = tpm or budget or conc
if reserve then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
if conc and redis.call('ZCARD', KEYS[3]) >= conc then
  waits.concurrency = tonumber(ARGV[12])
end

local label, period_end, budget_key, used = nil, 0, nil, 0
if budget then
  label, period_end = period_of(ARGV[11], now)
  budget_key = KEYS[4] .. ':' .. label
  used = tonumber(redis.call('GET', budget_key) or '0')
  if used + tokens > budget then waits.budget = period_end - now end
end

local reason, retry = nil, 0
for _, r in ipairs({'requests', 'tokens', 'concurrency', 'budget'}) do
  if waits[r] and (reason == nil or waits[r] > retry) then reason, retry = r, waits[r] end
end

local admitted = reason == nil and admit
if admitted then
  if rpm then
    redis.call('ZADD', KEYS[1], now, lease)
    redis.call('PEXPIRE', KEYS[1], ms(window + 1))
    in_window = in_window + 1
  end
  if tpm then
    level = level - tokens
    redis.call('HSET', KEYS[2], 'level', level, 'at', now)
    redis.call('PEXPIRE', KEYS[2], ms(math.max(0, tpm - level) * window / math.max(tpm, 1) + 1))
  end
  if reserve then
    redis.call('ZADD', KEYS[3], now + lease_ttl, lease)
    redis.call('PEXPIRE', KEYS[3], ms(lease_ttl + 1))
  end
  if budget then
    used = used + tokens
    redis.call('INCRBY', budget_key, tokens)
    redis.call('PEXPIRE', budget_key, ms(period_end - now + lease_ttl + tonumber(ARGV[13])))
  end
end

local out = {allowed = reason == nil, reason = reason, retry_after = retry, period = label}
if rpm then
  out.requests_limit = rpm
  out.requests_remaining = math.max(0, rpm - in_window)
  if admitted then
    out.requests_reset = window
  else
    out.requests_reset = 0
    local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    if newest[2] then out.requests_reset = math.max(0, tonumber(newest[2]) + window - now) end
  end
end
if tpm then
  out.tokens_limit = tpm
  out.tokens_remaining = math.max(0, math.floor(level))
  out.tokens_reset = tpm > 0 and math.max(0, tpm - level) * window / tpm or 0
end
if budget then
  out.budget_limit = budget
  out.budget_remaining = math.max(0, budget - used)
end
return cjson.encode(out)
