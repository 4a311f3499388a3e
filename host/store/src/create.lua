-- Creates a match and arms its turn timer, atomically.
-- KEYS: 1 match hash, 2 shard timers zset
-- ARGV: 1 match id, 2 meta, 3 progress, 4 state, 5 deadline ms (0 = none)
-- Returns 'ok', or 'exists' (and changes nothing).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'exists'
end
redis.call('HSET', KEYS[1], 'v', 1, 'meta', ARGV[2], 'progress', ARGV[3],
  'state', ARGV[4], 'log', '', 'seen', '')
local deadline = tonumber(ARGV[5])
if deadline > 0 then
  redis.call('ZADD', KEYS[2], deadline, ARGV[1])
end
return 'ok'
