-- Puts a player on a season's leaderboard of one mode, if this rating is
-- newer than the one the board has.
-- KEYS[1] lb:{season:mode} (zset player -> rating)
-- KEYS[2] lb:{season:mode}:v (hash player -> games, the version)
-- ARGV[1] player, ARGV[2] rating, ARGV[3] games
-- Returns 1 if stored, 0 if the board's entry is as new or newer.
local games = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1')
if games >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
