-- Claims the direct invites due by now, up to a limit: each is removed as it
-- is returned, so of several matchmakers running their passes at once
-- exactly one gets each.
-- KEYS: 1 the due zset
-- ARGV: 1 now (ms), 2 limit
-- Returns the members claimed (JSON arrays [code, host, invitee]).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return due
