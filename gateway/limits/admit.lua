-- One admission decision for one subject, atomic: every check, then (only if all pass, and only in
-- 'admit' mode) every write. A refusal or a 'peek' writes nothing. Time is Redis's own clock.
-- Semantics: gateway/limits/model.py. Called by gateway/limits/redis_store.py.
--
-- KEYS[1] requests log (zset lease -> admission time)   KEYS[2] token bucket (hash level, at)
-- KEYS[3] concurrency leases (zset lease -> expiry)       KEYS[4] budget counter base (+ ':' .. period)
-- KEYS[5] reservation record (string, JSON; or 'settled' once settled or cancelled)
-- ARGV: mode ('admit'|'peek'), lease, tokens, window_s, lease_ttl_s, clock_offset_s,
--       requests_per_minute, tokens_per_minute, max_concurrent, token_budget ('' = unlimited),
--       budget_period ('day'|'month'), concurrency_retry_s, budget_grace_s

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[6])
local admit = ARGV[1] == 'admit'
local lease, tokens, window, lease_ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local rpm, tpm, conc, budget = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])

local function f(x) return string.format('%.6f', x) end
local function ms(s) return math.max(1, math.ceil(s * 1000)) end

-- UTC calendar from unix days (H. Hinnant's civil_from_days / days_from_civil).
local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end

-- The period's label and the unix time it ends.
local function period_of(kind)
  local days = math.floor(now / 86400)
  local y, m, d = civil_from_days(days)
  if kind == 'day' then return string.format('%04d-%02d-%02d', y, m, d), (days + 1) * 86400 end
  if m == 12 then return string.format('%04d-12', y), days_from_civil(y + 1, 1, 1) * 86400 end
  return string.format('%04d-%02d', y, m), days_from_civil(y, m + 1, 1) * 86400
end

-- A lease already settled or cancelled: this is a late copy of an admit that timed out. No-op.
if admit and redis.call('EXISTS', KEYS[5]) == 1 then
  return cjson.encode({allowed = false, cancelled = true})
end

local waits = {}
local since = now - window

local in_window = 0
if rpm then
  in_window = redis.call('ZCOUNT', KEYS[1], '(' .. f(since), '+inf')
  if in_window >= rpm then
    waits.requests = window
    if rpm > 0 then  -- one more fits when the entry `rpm` places before the newest leaves the window
      local e = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. f(since), '+inf', 'WITHSCORES', 'LIMIT', in_window - rpm, 1)
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

if conc and redis.call('ZCOUNT', KEYS[3], '(' .. f(now), '+inf') >= conc then
  waits.concurrency = tonumber(ARGV[12])
end

local label, period_end, budget_key, used = nil, 0, nil, 0
if budget then
  label, period_end = period_of(ARGV[11])
  budget_key = KEYS[4] .. ':' .. label
  used = tonumber(redis.call('GET', budget_key) or '0')
  if used + tokens > budget then waits.budget = period_end - now end
end

local reason, retry = nil, 0
for _, r in ipairs({'requests', 'tokens', 'concurrency', 'budget'}) do
  if waits[r] and (reason == nil or waits[r] > retry) then reason, retry = r, waits[r] end
end

if reason == nil and admit then
  if rpm then
    redis.call('ZADD', KEYS[1], f(now), lease)
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', f(since))
    redis.call('PEXPIRE', KEYS[1], ms(window + 1))
    in_window = in_window + 1
  end
  if tpm then
    level = level - tokens
    redis.call('HSET', KEYS[2], 'level', f(level), 'at', f(now))
    redis.call('PEXPIRE', KEYS[2], ms(math.max(0, tpm - level) * window / math.max(tpm, 1) + 1))
  end
  if conc then
    redis.call('ZADD', KEYS[3], f(now + lease_ttl), lease)
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', f(now))
    redis.call('PEXPIRE', KEYS[3], ms(lease_ttl + 1))
  end
  if budget then
    used = used + tokens
    redis.call('INCRBY', budget_key, tokens)
    redis.call('PEXPIRE', budget_key, ms(period_end - now + lease_ttl + tonumber(ARGV[13])))
  end
  if tpm or budget or conc then
    redis.call('SET', KEYS[5], cjson.encode({tokens = tokens, tpm = tpm, period = label}), 'PX', ms(lease_ttl))
  end
end

local out = {allowed = reason == nil, reason = reason, retry_after = retry, period = label}
if rpm then
  out.requests_limit = rpm
  out.requests_remaining = math.max(0, rpm - in_window)
  out.requests_reset = 0
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) > since then out.requests_reset = tonumber(newest[2]) + window - now end
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
