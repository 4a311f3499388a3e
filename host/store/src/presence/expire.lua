-- The sweep of one user: connections past their deadline are removed.
-- Atomic, so when sweepers race each expiry (and the change it makes) is
-- reported by exactly one of them.
-- ARGV: user.lua's only.
-- Returns finish's reply, then the number of connections expired.
local u = load()
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
