-- A connection's page was hidden or shown. An unknown connection changes
-- nothing (the next heartbeat brings it back with its flag).
-- ARGV (after user.lua's): 7 conn, 8 away ('1' / '0')
local u = load()
local before = view(u)
local c = u.conns[ARGV[7]]
if c then
  put(u, ARGV[7], c.region, ARGV[8] == '1')
end
u.l = now
return finish(u, before, true)
