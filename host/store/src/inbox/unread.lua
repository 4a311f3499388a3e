-- The unread count, expired notifications dropped first. ARGV: 1 cutoff.
expire(ARGV[1])
return unread()
