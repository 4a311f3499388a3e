-- Deletes one notification. ARGV: 1 cutoff, 2 id.
-- Returns {found (0/1), unread}.
expire(ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return {0, unread()}
end
drop({ARGV[2]})
return {1, unread()}
