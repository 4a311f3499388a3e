-- A connection closed.
-- ARGV (after user.lua's): 7 conn
local u = load()
local before = view(u)
drop(u, ARGV[7])
u.l = now
return finish(u, before, true)
