-- Stores a new invite code unless the code is taken (codes are random, so a
-- clash is rare; the caller draws another).
-- KEYS: 1 the code's hash
-- ARGV: 1 host, 2 mode, 3 created ms, 4 expires ms, 5 ttl ms, 6 the only
--       player who may join ('' = anyone with the code)
-- Returns 1 if stored, 0 if the code exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'host', ARGV[1], 'mode', ARGV[2], 'created_ms', ARGV[3], 'expires_ms', ARGV[4])
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[1], 'to', ARGV[6])
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
