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
