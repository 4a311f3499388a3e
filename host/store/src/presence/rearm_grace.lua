-- Puts a claimed grace back (giving up the ticket failed), due at ARGV[2],
-- if the user is still offline and matchmaking.
-- KEYS: 1 the user's hash, 2 the shard's grace zset
-- ARGV: 1 uid, 2 due (ms)
local flat = redis.call('HGETALL', KEYS[1])
local matchmaking = false
for i = 1, #flat, 2 do
  local f = flat[i]
  if string.byte(f, 1) == 35 then
    return 0
  elseif f == 'a' and flat[i + 1] == '1' then
    matchmaking = true
  end
end
if not matchmaking then
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
