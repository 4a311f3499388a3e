-- Puts a ticket in its queue and, in the same round trip, looks for its
-- opponents and says where it stands. (A join's common path: one script
-- instead of enqueue, candidates and position. `nearest` comes from
-- nearest.lua, prepended.)
-- KEYS: 1 tickets hash, 2 wait zset, 3 stats hash, 4 the ticket's region's
--       rating zset, then one rating zset per region to search
-- ARGV: 1 player, 2 ticket (JSON), 3 joined ms, 4 rating,
--       5 lo, 6 hi, 7 limit per side (of the search, as candidates.lua)
-- Returns: { candidates (JSON, the player's own left out), rank (0-based),
--            queue size, average wait ms or false }
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
local zsets = {}
for i = 5, #KEYS do
  zsets[#zsets + 1] = KEYS[i]
end
local found = nearest(KEYS[1], zsets, ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[4], ARGV[1])
local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
local size = redis.call('ZCARD', KEYS[2])
local avg = redis.call('HGET', KEYS[3], 'avg_wait_ms')
return { found, rank, size, avg }
