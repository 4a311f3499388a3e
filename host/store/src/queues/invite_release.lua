-- Gives a claimed invite code back (its match could not be made), so the
-- host's code works again until it expires.
-- KEYS: 1 the code's hash
-- ARGV: 1 the guest who claimed it
-- Returns 1 if released, 0 if it was not this guest's (or is gone).
if redis.call('HGET', KEYS[1], 'guest') ~= ARGV[1] then
  return 0
end
redis.call('HDEL', KEYS[1], 'guest')
return 1
