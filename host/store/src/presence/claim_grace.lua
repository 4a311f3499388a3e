-- Claims a user's ran-out queue grace: removes it from the grace zset, so
-- of racing sweepers exactly one gets it, and says whether the user is
-- still offline and still matchmaking (else there is nothing to give up).
-- KEYS: 1 the user's hash, 2 the shard's grace zset
-- ARGV: 1 uid, 2 now (ms)
-- Returns 1 if the caller should give up the user's ticket, else 0.
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
local flat = redis.call('HGETALL', KEYS[1])
local matchmaking = false
for i = 1, #flat, 2 do
  local f = flat[i]
  if string.byte(f, 1) == 35 then -- '#': a live connection
    return 0
  elseif f == 'a' and flat[i + 1] == '1' then
    matchmaking = true
  end
end
return matchmaking and 1 or 0
