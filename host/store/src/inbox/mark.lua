-- Marks one notification read. ARGV: 1 cutoff, 2 id.
-- Returns {found (0/1), unread}.
expire(ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return {0, unread()}
end
redis.call('SREM', KEYS[3], ARGV[2])
return {1, unread()}
