-- The user started doing something else. With a match id in ARGV[9], only
-- if the user's activity still names that match (a match ended: its
-- players go back to the menu, unless they moved on already).
-- ARGV (after user.lua's): 7 activity (0 menu, 1 matchmaking, 2 in a
--   match), 8 match id ('' = none; kept only in a match), 9 only if in
--   this match ('' = whatever the user does)
local u = load()
local before = view(u)
if ARGV[9] == '' or u.m == ARGV[9] then
  u.a = tonumber(ARGV[7])
  if u.a == 2 then
    u.m = ARGV[8]
  else
    u.m = ''
  end
end
return finish(u, before, false)
