-- A guest takes an invite code: only one guest ever does, because the check
-- and the claim are one step. The code keeps its expiry. A direct invite
-- (with `to`) may be taken by its invitee only.
-- KEYS: 1 the code's hash
-- ARGV: 1 guest
-- Returns {'claimed', host, mode, created ms, expires ms, to or ''},
-- {'not_invited'} if the code is another player's direct invite, {'used'}
-- if another guest has it, or {'gone'} if it expired, was cancelled or never
-- existed.
local invite = redis.call('HMGET', KEYS[1], 'host', 'mode', 'created_ms', 'expires_ms', 'guest', 'to')
if not invite[1] then
  return {'gone'}
end
if invite[6] and invite[6] ~= ARGV[1] then
  return {'not_invited'}
end
if invite[5] then
  return {'used'}
end
redis.call('HSET', KEYS[1], 'guest', ARGV[1])
return {'claimed', invite[1], invite[2], invite[3], invite[4], invite[6] or ''}
