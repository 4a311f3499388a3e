-- Shared by the scripts that search a queue (prepended to them).
-- The tickets (JSON, from the hash `tickets`) rated nearest to `at` within
-- [lo, hi] in each rating zset of `zsets`: up to `limit` just above and
-- `limit` just below, per zset, leaving out player `skip` (or none).
-- (Nearest first keeps the reply small however crowded the window is.)
local function nearest(tickets, zsets, lo, hi, limit, at, skip)
  local out = {}
  local extra = skip and 1 or 0
  for _, zset in ipairs(zsets) do
    local above = redis.call('ZRANGEBYSCORE', zset, at, hi, 'LIMIT', 0, limit + extra)
    local below = redis.call('ZREVRANGEBYSCORE', zset, '(' .. at, lo, 'LIMIT', 0, limit)
    for _, players in ipairs({above, below}) do
      local others = {}
      for _, p in ipairs(players) do
        if p ~= skip then
          others[#others + 1] = p
        end
      end
      if #others > 0 then
        for _, t in ipairs(redis.call('HMGET', tickets, unpack(others))) do
          if t then
            out[#out + 1] = t
          end
        end
      end
    end
  end
  return out
end
