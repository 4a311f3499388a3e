-- Ends a start that `rematch_offer.lua` handed to the caller (token): with
-- the new match's id, so later offers are told of it, or, if it could not
-- be made, by withdrawing the accepting player's offer so the slot is as it
-- was before the accept.
-- KEYS: 1 the slot's hash
-- ARGV: 1 token, 2 new match id ('' = it failed), 3 the accepting player
-- Returns 1 if settled, 0 if the token is not the slot's (or it expired).
if redis.call('HGET', KEYS[1], 'starting') ~= ARGV[1] then
  return 0
end
redis.call('HDEL', KEYS[1], 'starting')
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'match_id', ARGV[2])
else
  redis.call('HDEL', KEYS[1], 'offer:' .. ARGV[3])
end
return 1
