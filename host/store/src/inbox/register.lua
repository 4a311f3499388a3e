-- Registers (or refreshes) one device of a user.
-- KEYS: 1 devices (zset token -> registered ms), 2 platforms (hash token ->
--       platform).
-- ARGV: 1 token, 2 platform, 3 now (ms), 4 most devices, 5 key ttl (ms).
-- Returns {devices, {replaced token, ...}}: the oldest ones past the cap.
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local replaced = {}
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, over - 1)
  redis.call('ZREM', KEYS[1], unpack(oldest))
  redis.call('HDEL', KEYS[2], unpack(oldest))
  for _, token in ipairs(oldest) do
    replaced[#replaced + 1] = token
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {redis.call('ZCARD', KEYS[1]), replaced}
