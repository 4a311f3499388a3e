-- Opens the rematch slot of a finished match for the rest of its window. A
-- record delivered twice does not reopen or reset it.
-- KEYS: 1 the slot's hash
-- ARGV: 1 mode, 2 players (JSON array), 3 bots (JSON array), 4 humans (JSON
--       array: who must agree), 5 ended ms, 6 ttl ms
-- Returns 1 if opened, 0 if it exists.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'mode', ARGV[1], 'players', ARGV[2], 'bots', ARGV[3], 'humans', ARGV[4], 'ended_ms', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 1
