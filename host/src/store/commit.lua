-- Applies one action's result to a match: compare-and-set on `version`,
-- idempotent by request id, events appended gap-free, timer moved, and on the
-- last action every key set to expire.
-- KEYS: 1 match hash, 2 events list, 3 requests hash, 4 actions list,
--       5 shard timers zset
-- ARGV: 1 match id, 2 expected version, 3 request id ('' = none),
--       4 reply to remember for that request id, 5 recorded action ('' = none),
--       6 deadline ms (0 = none), 7 ttl seconds once finished (0 = still live),
--       8 n field pairs, then 2n field names and values, then the new events.
-- Returns {status, detail}: {'ok', new version} | {'duplicate', first reply}
--   | {'conflict', current version} | {'missing', ''}.
local rid = ARGV[3]
if rid ~= '' then
  local first = redis.call('HGET', KEYS[3], rid)
  if first then
    return {'duplicate', first}
  end
end
local version = redis.call('HGET', KEYS[1], 'version')
if not version then
  return {'missing', ''}
end
if version ~= ARGV[2] then
  return {'conflict', version}
end
local next_version = tonumber(version) + 1
local n = tonumber(ARGV[8])
local fields = {}
for i = 9, 8 + 2 * n do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', KEYS[1], 'version', next_version, unpack(fields))
for i = 9 + 2 * n, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
if ARGV[5] ~= '' then
  redis.call('RPUSH', KEYS[4], ARGV[5])
end
if rid ~= '' then
  redis.call('HSET', KEYS[3], rid, ARGV[4])
end
local deadline = tonumber(ARGV[6])
if deadline > 0 then
  redis.call('ZADD', KEYS[5], deadline, ARGV[1])
else
  redis.call('ZREM', KEYS[5], ARGV[1])
end
local ttl = tonumber(ARGV[7])
if ttl > 0 then
  for i = 1, 4 do
    redis.call('EXPIRE', KEYS[i], ttl)
  end
end
return {'ok', tostring(next_version)}
