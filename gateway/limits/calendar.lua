-- Budget periods in UTC, shared by admit.lua and settle.lua (gateway/limits/redis_store.py puts this
-- in front of each).

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

-- The period of kind 'day' or 'month' containing unix time `at`: its label and the unix time it ends.
local function period_of(kind, at)
  local days = math.floor(at / 86400)
  local y, m, d = civil_from_days(days)
  if kind == 'day' then return string.format('%04d-%02d-%02d', y, m, d), (days + 1) * 86400 end
  if m == 12 then return string.format('%04d-12', y), days_from_civil(y + 1, 1, 1) * 86400 end
  return string.format('%04d-%02d', y, m), days_from_civil(y, m + 1, 1) * 86400
end
