-- Tickets whose rating lies in [lo, hi], from each given region, up to a limit
-- per region, lowest rating first. Read-only.
-- KEYS: 1 tickets hash, then one rating zset per region
-- ARGV: 1 lo, 2 hi, 3 limit per region
local out = {}
for i = 2, #KEYS do
  local players = redis.call('ZRANGEBYSCORE', KEYS[i], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
  if #players > 0 then
    local tickets = redis.call('HMGET', KEYS[1], unpack(players))
    for _, t in ipairs(tickets) do
      if t then
        out[#out + 1] = t
      end
    end
  end
end
return out
