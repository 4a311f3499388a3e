-- One user's live connections from one gateway's heartbeat: each refreshed
-- (deadline, away flag, region), or added back if presence had lost it.
-- ARGV (after user.lua's): from 7, triples of conn, region, away ('1'/'0')
-- Returns finish's reply, then refreshed, restored.
local u = load()
local before = view(u)
local refreshed, restored = 0, 0
for i = 7, #ARGV - 2, 3 do
  if put(u, ARGV[i], ARGV[i + 1], ARGV[i + 2] == '1') then
    restored = restored + 1
  else
    refreshed = refreshed + 1
  end
end
u.l = now
local out = finish(u, before, true)
out[#out + 1] = refreshed
out[#out + 1] = restored
return out
