-- A lease is a hold of its own in the key's holds hash (so every check already counts it),
-- grown by this script, given back by it and by each settle of a request admitted from it.
-- KEYS: spend counter of the limit's period, held total, holds hash, holds expiry zset
-- ARGV: limit pico, lease id, pico given back first, pico needed (refused below it), share of
--       the room to take (0-1), lease ttl ms, keys' keep ms
-- Runs after prelude.lua.
local now = clock()
local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', int(now), 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do release(KEYS[2], KEYS[3], KEYS[4], id, '') end
local id = ARGV[2]
if ARGV[3] ~= '0' then release(KEYS[2], KEYS[3], KEYS[4], id, ARGV[3]) end
local used = redis.call('GET', KEYS[1]) or '0'
local held = redis.call('GET', KEYS[2]) or '0'
local h1, l1 = split(ARGV[1])
local h2, l2 = split(used)
local h3, l3 = split(held)
local hi, lo = h1 - h2 - h3, l1 - l2 - l3
local carry = math.floor(lo / 1e9)
hi, lo = hi + carry, lo - carry * 1e9
local room = '0'
if hi > 0 then
  room = string.format('%d%09d', hi, lo)
elseif lo > 0 and hi == 0 then
  room = int(lo)
end
if less(room, ARGV[4]) then return {'spend', used, held} end
local grant = int(math.floor((hi * 1e9 + lo) * tonumber(ARGV[5])))  -- sizing only: a float
if room == '0' or less(grant, ARGV[4]) then grant = ARGV[4] end
if less(room, grant) then grant = room end
if grant ~= '0' then
  redis.call('HINCRBY', KEYS[3], id, grant)
  redis.call('INCRBY', KEYS[2], grant)
end
if redis.call('HEXISTS', KEYS[3], id) == 1 then
  redis.call('ZADD', KEYS[4], int(now + tonumber(ARGV[6]) * 1000), id)
  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[7]) end
end
return {'ok', grant}
