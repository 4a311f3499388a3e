-- Compare-and-set of a player's state: replaces it only if it is exactly
-- what the caller read.
-- KEYS: 1 player state
-- ARGV: 1 expected ('' = absent), 2 new ('' = delete), 3 ttl ms (0 = none)
-- Returns 1 if replaced, 0 if the state had changed.
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
