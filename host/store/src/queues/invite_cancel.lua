-- Deletes an invite code if `host` made it (the host left, or its state
-- moved on so the code can never lead to a match).
-- KEYS: 1 the code's hash
-- ARGV: 1 host
-- Returns 1 if deleted.
if redis.call('HGET', KEYS[1], 'host') ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
return 1
