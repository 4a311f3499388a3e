-- Marks every notification read. ARGV: 1 cutoff. Returns the unread count (0).
expire(ARGV[1])
redis.call('DEL', KEYS[3])
return unread()
