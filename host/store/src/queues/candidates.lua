-- The tickets nearest in rating to `at` within [lo, hi], from each given
-- region: up to `limit` just above and `limit` just below. Read-only.
-- (`nearest` comes from nearest.lua, prepended.)
-- KEYS: 1 tickets hash, then one rating zset per region
-- ARGV: 1 lo, 2 hi, 3 limit per side, 4 at (the searcher's rating)
local zsets = {}
for i = 2, #KEYS do
  zsets[#zsets + 1] = KEYS[i]
end
return nearest(KEYS[1], zsets, ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], false)
