-- Shared by the limiter's scripts: the Redis clock in microseconds, integers as text, and
-- a decimal string split into two parts so pico-USD never goes through a float.
local window = 60000000
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function int(x) return string.format('%.0f', x) end
local function split(s)
  local neg = string.sub(s, 1, 1) == '-'
  if neg then s = string.sub(s, 2) end
  local n = string.len(s)
  local hi, lo = 0, tonumber(s)
  if n > 9 then
    hi, lo = tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))
  end
  if neg then return -hi, -lo end
  return hi, lo
end
local function less(a, b)
  local h1, l1 = split(a)
  local h2, l2 = split(b)
  return h1 < h2 or (h1 == h2 and l1 < l2)
end
-- Give back `part` pico of hold (or lease) `id`, all of it when part is '' or covers it.
local function release(held, holds, exp, id, part)
  local amount = redis.call('HGET', holds, id)
  if amount and part ~= '' and less(part, amount) then
    redis.call('HINCRBY', holds, id, '-' .. part)
    redis.call('DECRBY', held, part)
    return
  end
  if amount then
    redis.call('DECRBY', held, amount)
    redis.call('HDEL', holds, id)
  end
  redis.call('ZREM', exp, id)
end
