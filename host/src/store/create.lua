-- Creates a match, its first events and its turn timer, atomically.
-- KEYS: 1 match hash, 2 events list, 3 shard timers zset
-- ARGV: 1 match id, 2 deadline ms (0 = none), 3 n field pairs, then 2n field
--       names and values, then the initial events (JSON), in sequence order.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'exists'
end
local n = tonumber(ARGV[3])
local fields = {}
for i = 4, 3 + 2 * n do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], 'version', 1, unpack(fields))
for i = 4 + 2 * n, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
local deadline = tonumber(ARGV[2])
if deadline > 0 then
  redis.call('ZADD', KEYS[3], deadline, ARGV[1])
end
return 'ok'
