-- Stores a player's rating in one mode if it is newer than the stored one.
-- KEYS[1] mm:rating:{player} (hash mode -> rating JSON, which has "games")
-- ARGV[1] mode, ARGV[2] rating JSON, ARGV[3] its games (the version)
-- Returns 1 if stored, 0 if the stored rating is as new or newer.
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if stored then
  local ok, old = pcall(cjson.decode, stored)
  if ok and type(old) == 'table' and tonumber(old['games'] or 0) >= tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
