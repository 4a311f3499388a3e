-- Forgets a token's owner if it is still `ARGV[1]` (another user may have
-- taken the token since). KEYS: 1 the token's owner key.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
