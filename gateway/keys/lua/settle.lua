-- Settles a request: releases its hold, charges its cost, counts its tokens. Runs after
-- prelude.lua. Idempotent per settle id (random hex): a batch re-sent after an ambiguous drop
-- doesn't charge twice.
-- KEYS: held total, holds hash, holds expiry zset, token tat, spend total, day, week, month,
--       settled zset
-- ARGV: hold or lease id ('': none), cost pico, tokens, tpm (0: none), keep ms for day, week,
--       month, settle id, settled keep ms, part of the lease to give back ('' or absent: a
--       hold, released whole)
local settled_at = clock()
if redis.call('ZADD', KEYS[9], 'NX', int(settled_at), ARGV[8]) == 0 then return 0 end
if string.sub(ARGV[8], -1) == '0' then  -- ids are random hex: trimmed every ~16 settles
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', int(settled_at - tonumber(ARGV[9]) * 1000))
  redis.call('PEXPIRE', KEYS[9], ARGV[9])  -- a key that goes quiet doesn't keep its ids for ever
end
if ARGV[1] ~= '' then release(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[10] or '') end
if ARGV[2] ~= '0' then
  redis.call('INCRBY', KEYS[5], ARGV[2])
  for i = 6, 8 do
    redis.call('INCRBY', KEYS[i], ARGV[2])
    redis.call('PEXPIRE', KEYS[i], ARGV[i - 1])
  end
end
local tpm, tokens = tonumber(ARGV[4]), tonumber(ARGV[3])
if tpm > 0 and tokens > 0 then
  local now = settled_at
  local tat = math.max(tonumber(redis.call('GET', KEYS[4]) or now), now)
  tat = tat + math.ceil(tokens * window / tpm)
  redis.call('SET', KEYS[4], int(tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
end
return 1
