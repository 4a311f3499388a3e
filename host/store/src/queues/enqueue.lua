-- Puts a ticket in its queue.
-- KEYS: 1 tickets hash, 2 wait zset, 3 the region's rating zset
-- ARGV: 1 player, 2 ticket (JSON), 3 joined ms, 4 rating
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
