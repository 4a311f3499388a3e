-- A player offers (or, if the others already did, accepts) a rematch. When
-- the last human agrees, the slot is marked `starting` with the caller's
-- token in the same step, so exactly one caller goes on to make the match.
-- KEYS: 1 the slot's hash
-- ARGV: 1 player, 2 now ms, 3 token
-- Returns {'expired'}, {'started', new match id}, {'starting'},
-- {'stranger'}, {'offered', 1 if this offer is new else 0, ttl ms left}, or
-- {'start'}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'expired'}
end
local started = redis.call('HGET', KEYS[1], 'match_id')
if started then
  return {'started', started}
end
if redis.call('HEXISTS', KEYS[1], 'starting') == 1 then
  return {'starting'}
end
local humans = cjson.decode(redis.call('HGET', KEYS[1], 'humans'))
local member = false
for _, p in ipairs(humans) do
  if p == ARGV[1] then
    member = true
  end
end
if not member then
  return {'stranger'}
end
local new = redis.call('HSETNX', KEYS[1], 'offer:' .. ARGV[1], ARGV[2])
for _, p in ipairs(humans) do
  if redis.call('HEXISTS', KEYS[1], 'offer:' .. p) == 0 then
    return {'offered', tostring(new), tostring(redis.call('PTTL', KEYS[1]))}
  end
end
redis.call('HSET', KEYS[1], 'starting', ARGV[3])
return {'start'}
