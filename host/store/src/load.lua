-- Loads a match for an action, and says whether the action's request was
-- applied before, in one round trip.
-- KEYS: 1 match hash
-- ARGV: 1 request fingerprint (8 bytes; '' = do not look)
-- Returns nil if there is no such match, else
--   {version, meta, progress, state, index of the earlier action or -1}.
local m = redis.call('HMGET', KEYS[1], 'v', 'meta', 'progress', 'state')
if not m[1] then
  return nil
end
local earlier = -1
if ARGV[1] ~= '' then
  earlier = seen_at(redis.call('HGET', KEYS[1], 'seen') or '', ARGV[1]) or -1
end
return {tonumber(m[1]), m[2], m[3], m[4], earlier}
