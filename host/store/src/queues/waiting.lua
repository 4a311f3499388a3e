-- The longest-waiting tickets of a queue, up to a limit. Read-only.
-- KEYS: 1 tickets hash, 2 wait zset
-- ARGV: 1 limit
local players = redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[1]) - 1)
if #players == 0 then
  return {}
end
local out = {}
for _, t in ipairs(redis.call('HMGET', KEYS[1], unpack(players))) do
  if t then
    out[#out + 1] = t
  end
end
return out
