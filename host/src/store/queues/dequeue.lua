-- Takes tickets out of their queue, all or none: each must still be there
-- with the expected ticket id (else another matcher took it, or it left).
-- KEYS: 1 tickets hash, 2 wait zset, 3 stats hash, then one rating zset per
--       ticket (its region's)
-- ARGV: 1 now (ms), then per ticket: player, ticket id
-- Returns the tickets (JSON) in order, or nil if any is gone.
local n = (#ARGV - 1) / 2
local found = {}
for i = 1, n do
  local player = ARGV[2 * i]
  local ticket = redis.call('HGET', KEYS[1], player)
  if not ticket or cjson.decode(ticket).ticket_id ~= ARGV[2 * i + 1] then
    return nil
  end
  found[i] = ticket
end
local now = tonumber(ARGV[1])
for i = 1, n do
  local player = ARGV[2 * i]
  local joined = tonumber(redis.call('ZSCORE', KEYS[2], player) or now)
  redis.call('HDEL', KEYS[1], player)
  redis.call('ZREM', KEYS[2], player)
  redis.call('ZREM', KEYS[3 + i], player)
  -- Moving average of the wait of tickets leaving the queue, for estimates.
  local avg = tonumber(redis.call('HGET', KEYS[3], 'avg_wait_ms') or (now - joined))
  redis.call('HSET', KEYS[3], 'avg_wait_ms', avg * 0.9 + (now - joined) * 0.1)
end
return found
