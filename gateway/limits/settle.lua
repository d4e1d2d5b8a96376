-- Settle (or cancel) one admission, atomic and idempotent. Called by gateway/limits/redis_store.py.
-- The reservation record written by admit.lua says what was taken; it is replaced by the tombstone
-- 'settled' (same TTL), so a second settle is a no-op and a late copy of a timed-out admit that
-- arrives after its cancel (admit.lua checks the record) changes nothing.
--
-- KEYS: as admit.lua (requests log, token bucket, leases, budget counter base, reservation record)
-- ARGV: actual_tokens, window_s, lease_ttl_s, clock_offset_s, cancel ('1': the admit's outcome was
--       unknown; also drop its request log entry and refund everything), lease

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[4])
local window, lease_ttl, lease = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[6]
local cancel = ARGV[5] == '1'

local state = redis.call('GET', KEYS[5])
if state == 'settled' then return 0 end
redis.call('SET', KEYS[5], 'settled', 'PX', math.max(1, math.ceil(lease_ttl * 1000)))
redis.call('ZREM', KEYS[3], lease)
if cancel then redis.call('ZREM', KEYS[1], lease) end
if not state then return 0 end  -- nothing was reserved here (or the record expired): nothing to reconcile

local record = cjson.decode(state)
local actual = cancel and 0 or tonumber(ARGV[1])
local delta = actual - record.tokens

local tpm = record.tpm
if tpm and delta ~= 0 then
  local level = tpm
  local h = redis.call('HMGET', KEYS[2], 'level', 'at')
  if h[1] then level = math.min(tpm, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * tpm / window) end
  level = math.min(tpm, level - delta)
  redis.call('HSET', KEYS[2], 'level', string.format('%.6f', level), 'at', string.format('%.6f', now))
  redis.call('PEXPIRE', KEYS[2], math.max(1, math.ceil((math.max(0, tpm - level) * window / math.max(tpm, 1) + 1) * 1000)))
end

if record.period and delta ~= 0 then
  local budget_key = KEYS[4] .. ':' .. record.period
  if redis.call('EXISTS', budget_key) == 1 then redis.call('INCRBY', budget_key, delta) end
end
return 1
