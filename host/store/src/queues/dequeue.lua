-- Takes tickets out of their queue, all or none: each must still be there
-- with the expected ticket id (else another matcher took it, or it left).
-- KEYS: 1 tickets hash, 2 wait zset, 3 stats hash, 4 recent waits list, then
--       one rating zset per ticket (its region's)
-- ARGV: 1 now (ms), 2 '1' if the tickets leave for a match (their waits are
--       recorded) or '0' if they leave without one, then per ticket: player,
--       ticket id
-- Returns the tickets (JSON) in order, or nil if any is gone.
local n = (#ARGV - 2) / 2
local found = {}
for i = 1, n do
  local ticket = redis.call('HGET', KEYS[1], ARGV[2 * i + 1])
  -- The id as serde_json writes it: ids and player names never need
  -- escaping, so a plain substring test is exact, and far cheaper than
  -- decoding the ticket.
  if not ticket or not string.find(ticket, '"ticket_id":"' .. ARGV[2 * i + 2] .. '"', 1, true) then
    return nil
  end
  found[i] = ticket
end
local now = tonumber(ARGV[1])
local matched = ARGV[2] == '1'
-- (HGET gives false when unset, and tonumber(false) is nil.)
local avg = tonumber(redis.call('HGET', KEYS[3], 'avg_wait_ms'))
for i = 1, n do
  local player = ARGV[2 * i + 1]
  local waited = math.max(0, now - tonumber(redis.call('ZSCORE', KEYS[2], player) or now))
  redis.call('HDEL', KEYS[1], player)
  redis.call('ZREM', KEYS[2], player)
  redis.call('ZREM', KEYS[4 + i], player)
  if matched then
    -- Moving average of the wait of tickets leaving for a match, for
    -- estimates, and the last 101 waits themselves, newest first, for the
    -- lobby's figures.
    avg = avg and (avg * 0.9 + waited * 0.1) or waited
    redis.call('LPUSH', KEYS[4], string.format('%d', waited))
  end
end
if matched then
  redis.call('HSET', KEYS[3], 'avg_wait_ms', avg)
  redis.call('LTRIM', KEYS[4], 0, 100)
end
return found
