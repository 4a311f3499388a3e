-- A connection opened (or opened again): added, or refreshed if known.
-- ARGV (after user.lua's): 7 conn, 8 region, 9 away ('1' / '0')
local u = load()
local before = view(u)
put(u, ARGV[7], ARGV[8], ARGV[9] == '1')
u.l = now
return finish(u, before, true)
