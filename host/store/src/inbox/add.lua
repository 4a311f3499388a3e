-- Adds one notification, unless its id is there already.
-- ARGV: 1 cutoff (expired at or before, ms), 2 id, 3 created ms, 4 JSON,
--       5 cap, 6 key ttl (ms).
-- Returns {status, unread}: status `stored`, `duplicate`, `expired` (too
-- old to keep) or `dropped` (older than the cap's worth of newer ones).
expire(ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return {'duplicate', unread()}
end
if tonumber(ARGV[3]) <= tonumber(ARGV[1]) then
  return {'expired', unread()}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[2])
local status = 'stored'
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, over - 1)
  for _, id in ipairs(oldest) do
    if id == ARGV[2] then
      status = 'dropped'
    end
  end
  drop(oldest)
end
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ARGV[6])
end
return {status, unread()}
