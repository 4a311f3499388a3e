-- Ends a direct invite that was declined or ran out, unless its invitee has
-- claimed it (then a match is being made, and the invite is not over).
-- KEYS: 1 the code's hash
-- ARGV: 1 host, 2 invitee
-- Returns 'ended' (deleted now), 'taken' (claimed by its invitee), or 'gone'
-- (no such invite: its ttl ran out, it was cancelled, or the code is
-- another invite's now).
local invite = redis.call('HMGET', KEYS[1], 'host', 'to', 'guest')
if invite[1] ~= ARGV[1] or invite[2] ~= ARGV[2] then
  return 'gone'
end
if invite[3] then
  return 'taken'
end
redis.call('DEL', KEYS[1])
return 'ended'
