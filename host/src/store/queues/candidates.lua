-- The tickets nearest in rating to `at` within [lo, hi], from each given
-- region: up to `limit` just above and `limit` just below. Read-only.
-- (Nearest first keeps the reply small however crowded the window is.)
-- KEYS: 1 tickets hash, then one rating zset per region
-- ARGV: 1 lo, 2 hi, 3 limit per side, 4 at (the searcher's rating)
local out = {}
for i = 2, #KEYS do
  local above = redis.call('ZRANGEBYSCORE', KEYS[i], ARGV[4], ARGV[2], 'LIMIT', 0, ARGV[3])
  local below = redis.call('ZREVRANGEBYSCORE', KEYS[i], '(' .. ARGV[4], ARGV[1], 'LIMIT', 0, ARGV[3])
  for _, players in ipairs({above, below}) do
    if #players > 0 then
      for _, t in ipairs(redis.call('HMGET', KEYS[1], unpack(players))) do
        if t then
          out[#out + 1] = t
        end
      end
    end
  end
end
return out
