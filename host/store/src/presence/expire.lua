-- The sweep of one user's entry in the bucket of second ARGV[7]: the
-- entry is taken off the bucket (the bucket leaves the index once empty)
-- and, if it is the user's live entry, connections past their deadline are
-- removed and a user still connected is queued in a later bucket. Atomic,
-- and the entry's removal is the claim: when sweepers race, each entry, and
-- each expiry with the change it makes, is handled by exactly one of them.
-- ARGV (after user.lua's): 7 the bucket's second
-- Returns finish's reply, then the number of connections expired; for an
-- entry another sweeper took, or a stale one, the same shape with nothing
-- changed and nothing expired.
local bucket = KEYS[2] .. ':' .. ARGV[7]
if redis.call('LREM', bucket, 1, uid) == 0 then
  return {0, 0, 0, 0, '', '', 0, 0, 0, 0}
end
if redis.call('EXISTS', bucket) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[7])
end
local u = load()
if u.q ~= tonumber(ARGV[7]) then
  return {0, 0, 0, 0, '', '', 0, 0, 0, 0}
end
u.q = nil
redis.call('HDEL', KEYS[1], 'q')
local before = view(u)
local expired = 0
local i = 1
while i <= #u.ids do
  local id = u.ids[i]
  if u.conns[id].d <= now then
    u.conns[id] = nil
    table.remove(u.ids, i)
    redis.call('HDEL', KEYS[1], '#' .. id)
    expired = expired + 1
  else
    i = i + 1
  end
end
local out = finish(u, before, false)
out[#out + 1] = expired
return out
