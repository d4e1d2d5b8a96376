-- Settle (or cancel) one admission, atomic and idempotent. Called by gateway/limits/redis_store.py.
-- The admission's lease (in the leases zset, written by admit.lua) is its reservation: removing it is
-- what settles, so only the first settle of a lease moves the counters, and a lease that expired (not
-- settled within the lease TTL) is forgotten with its estimate counted. What the admission took comes
-- from the caller (it was in admit.lua's arguments).
-- A cancel (the admit's outcome was unknown) that finds no lease leaves a tombstone, so a late copy
-- of that admit (admit.lua checks it) changes nothing.
--
-- KEYS: as admit.lua (requests log, token bucket, leases, budget counter base, cancel tombstone)
-- ARGV: actual_tokens, cancel ('1': the admit's outcome was unknown; also drop its request log entry
--       and give back everything), lease, estimated tokens, tokens_per_minute ('' = no bucket), budget
--       period label ('' = no budget, or not known: a cancel), budget period kind ('day'|'month' for a
--       cancel with a budget: the label is worked out from the lease's admission time), window_s,
--       lease_ttl_s, clock_offset_s

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[10])
local window, lease_ttl, lease = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[3]
local cancel = ARGV[2] == '1'
local label = ARGV[6]

if cancel and label == '' and ARGV[7] ~= '' then
  local expiry = redis.call('ZSCORE', KEYS[3], lease)
  if expiry then label = period_of(ARGV[7], tonumber(expiry) - lease_ttl) end
end
local held = redis.call('ZREM', KEYS[3], lease) == 1
if cancel then
  redis.call('ZREM', KEYS[1], lease)
  if not held then
    redis.call('SET', KEYS[5], 'cancelled', 'PX', math.max(1, math.ceil(lease_ttl * 1000)))
    return 0
  end
end
if not held then return 0 end  -- settled before, or expired: nothing to reconcile

local actual = cancel and 0 or tonumber(ARGV[1])
local delta = actual - tonumber(ARGV[4])

local tpm = tonumber(ARGV[5])
if tpm and delta ~= 0 then
  local level = tpm
  local h = redis.call('HMGET', KEYS[2], 'level', 'at')
  if h[1] then level = math.min(tpm, tonumber(h[1]) + math.max(0, now - tonumber(h[2])) * tpm / window) end
  level = math.min(tpm, level - delta)
  redis.call('HSET', KEYS[2], 'level', level, 'at', now)
  redis.call('PEXPIRE', KEYS[2], math.max(1, math.ceil((math.max(0, tpm - level) * window / math.max(tpm, 1) + 1) * 1000)))
end

if label ~= '' and delta ~= 0 then
  local budget_key = KEYS[4] .. ':' .. label
  if redis.call('EXISTS', budget_key) == 1 then redis.call('INCRBY', budget_key, delta) end
end
return 1
