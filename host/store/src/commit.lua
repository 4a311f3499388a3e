-- Stores one applied action: compare-and-set on the version, at most once per
-- request fingerprint, log appended, timer moved, and on the last action the
-- match set to expire and listed as awaiting its record. All or nothing.
-- KEYS: 1 match hash, 2 shard timers zset, 3 shard unrecorded zset
-- ARGV: 1 match id, 2 expected version, 3 request fingerprint (8 bytes),
--       4 progress, 5 state, 6 log entry, 7 deadline ms (0 = none),
--       8 ttl seconds once finished (0 = still live), 9 now (ms)
-- Returns {'ok', new version} | {'duplicate', index of the earlier action}
--   | {'conflict', current version} | {'missing', 0}.
local m = redis.call('HMGET', KEYS[1], 'v', 'seen', 'log')
if not m[1] then
  return {'missing', 0}
end
local seen = m[2] or ''
local earlier = seen_at(seen, ARGV[3])
if earlier then
  return {'duplicate', earlier}
end
if m[1] ~= ARGV[2] then
  return {'conflict', tonumber(m[1])}
end
local next_version = tonumber(m[1]) + 1
redis.call('HSET', KEYS[1], 'v', next_version, 'progress', ARGV[4],
  'state', ARGV[5], 'log', (m[3] or '') .. ARGV[6], 'seen', seen .. ARGV[3])
local deadline = tonumber(ARGV[7])
if deadline > 0 then
  redis.call('ZADD', KEYS[2], deadline, ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local ttl = tonumber(ARGV[8])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  -- Until its record is safely stored (see MatchStore::recorded).
  redis.call('ZADD', KEYS[3], ARGV[9], ARGV[1])
end
return {'ok', next_version}
