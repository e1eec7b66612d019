-- Admits a request: rate checks plus an atomic worst-case hold. Runs after prelude.lua.
-- KEYS: request tat, token tat, spend counter, held total, holds hash, holds expiry zset
-- ARGV: rpm, tpm (0: none), limit pico ('': none), amount pico, hold id, hold ttl ms
local now = clock()
local expired = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', int(now), 'LIMIT', 0, 1000)
for _, id in ipairs(expired) do
  local amount = redis.call('HGET', KEYS[5], id)
  if amount then
    redis.call('DECRBY', KEYS[4], amount)
    redis.call('HDEL', KEYS[5], id)
  end
  redis.call('ZREM', KEYS[6], id)
end
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local request_tat, remaining, reset = nil, -1, 0
if rpm > 0 then
  local step = math.max(math.floor(window / rpm), 1)
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
  local retry = tat + step - window - now
  if retry > 0 then return {'requests', int(retry), int(now)} end
  request_tat = tat + step
  remaining = math.floor((window - (request_tat - now)) / step)
  reset = request_tat
end
if tpm > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or now), now)
  local retry = tat - window - now
  if retry >= 0 then return {'tokens', int(math.max(retry, 1)), int(now)} end
end
if ARGV[3] ~= '' then
  local used = redis.call('GET', KEYS[3]) or '0'
  local held = redis.call('GET', KEYS[4]) or '0'
  local h1, l1 = split(used)
  local h2, l2 = split(held)
  local h3, l3 = split(ARGV[4])
  local h4, l4 = split(ARGV[3])
  local hi, lo = h1 + h2 + h3 - h4, l1 + l2 + l3 - l4
  local carry = math.floor(lo / 1e9)
  hi, lo = hi + carry, lo - carry * 1e9
  if hi > 0 or (hi == 0 and lo > 0) then return {'spend', used, held} end
  local ttl = tonumber(ARGV[6])
  redis.call('HSET', KEYS[5], ARGV[5], ARGV[4])
  redis.call('ZADD', KEYS[6], int(now + ttl * 1000), ARGV[5])
  redis.call('INCRBY', KEYS[4], ARGV[4])
  for i = 4, 6 do redis.call('PEXPIRE', KEYS[i], ttl + 60000) end
end
if request_tat then
  redis.call('SET', KEYS[1], int(request_tat), 'PX', math.ceil((request_tat - now) / 1000) + 1000)
end
return {'ok', int(remaining), int(reset)}
