-- Forgets one device of a user. KEYS as register.lua; ARGV: 1 token.
-- Returns {removed (0/1), devices}.
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return {removed, redis.call('ZCARD', KEYS[1])}
