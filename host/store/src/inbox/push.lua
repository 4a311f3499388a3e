-- Claims the right to push one notification to a user's devices.
-- KEYS: 1 the user's push counter (this minute's window), 2 the
--       notification's sent marker, 3 (optional) its collapse key's marker.
-- ARGV: 1 pushes per window, 2 window (ms), 3 sent marker ttl (ms),
--       4 collapse window (ms), 5 the lease (ms), 6 the notification id.
-- Returns `granted` (the marker is now `pending` for the lease: the caller
-- pushes, then confirms, which makes it `sent`), `pending` (a pusher holds
-- the lease: ask again once it ran out, in case that pusher died),
-- `duplicate` (this notification was pushed, or refused, before),
-- `collapsed` (another with the same collapse key was, within the window)
-- or `limited` (the user had their pushes this window). Only `granted`
-- counts against the cap, so collapsed pushes count once.
local marker = redis.call('GET', KEYS[2])
if marker == 'sent' then
  return 'duplicate'
elseif marker then
  return 'pending'
end
if KEYS[3] then
  local holder = redis.call('GET', KEYS[3])
  -- A holder that is this notification is its own earlier, unconfirmed
  -- claim (a pusher that died): not a collapse.
  if holder and holder ~= ARGV[6] then
    redis.call('SET', KEYS[2], 'sent', 'PX', ARGV[3])
    return 'collapsed'
  end
end
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if count > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], 'sent', 'PX', ARGV[3])
  return 'limited'
end
redis.call('SET', KEYS[2], 'pending', 'PX', ARGV[5])
if KEYS[3] then
  redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[4])
end
return 'granted'
