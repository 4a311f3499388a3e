-- Shared by the scripts that change one user's presence (prepended to them).
-- KEYS: 1 the user's hash, 2 the shard's sweep index (a zset of the seconds
--       that have a sweep bucket; bucket `s` is the list `KEYS[2]:s`, a key
--       built here, in the same slot by its hash tag), 3 the shard's region
--       counts hash, 4 the shard's grace zset (all in one slot)
-- ARGV: 1 uid, 2 now (ms), 3 connection ttl (ms), 4 queue grace (ms),
--       5 an offline entry's ttl (s), 6 most connections per user; each
--       script's own arguments from 7 on.
-- Every script returns `finish`'s reply, sometimes with more after it.
local uid = ARGV[1]
local now = tonumber(ARGV[2])
local ttl_ms = tonumber(ARGV[3])
local grace_ms = tonumber(ARGV[4])
local offline_ttl = tonumber(ARGV[5])
local max_conns = tonumber(ARGV[6])

-- A sweep entry this far overdue was lost (a bucket deleted by hand, say):
-- the next script on the user queues them again. A sweeper only lagging
-- behind finds the old entry stale later (the user's `q` moved on).
local LOST_AFTER_MS = 60000

local B36 = '0123456789abcdefghijklmnopqrstuvwxyz'

-- `n` (a non-negative integer) in base 36: a deadline in 8 characters.
local function b36(n)
  local s = ''
  repeat
    local d = n % 36
    s = string.sub(B36, d + 1, d + 1) .. s
    n = math.floor(n / 36)
  until n == 0
  return s
end

-- The user as stored. Connections are the fields `#<conn>` (the caller
-- passes a short digest of the connection id) = `<deadline ms, base
-- 36><'+' shown | '-' hidden><region>`, kept in the order they were added
-- (a listpack hash keeps insertion order, and HSET of an existing field
-- keeps its place), so the first is the oldest. `a` is the activity (absent
-- = menu, 1 = matchmaking, 2 = in a match), `m` the match id, `v` the
-- version, `l` when an offline user was last heard from (ms; a connected
-- user's is their latest deadline less the ttl), `q` the second of the
-- sweep bucket holding the user's one live sweep entry.
local function load()
  local flat = redis.call('HGETALL', KEYS[1])
  local u = {ids = {}, conns = {}, a = 0, m = '', v = nil, l = 0, q = nil, stored = #flat > 0}
  local latest = nil
  for i = 1, #flat, 2 do
    local f, x = flat[i], flat[i + 1]
    if string.byte(f, 1) == 35 then -- '#'
      local d, flag, region = string.match(x, '^([0-9a-z]+)([+-])(.*)$')
      if d then
        local id = string.sub(f, 2)
        d = tonumber(d, 36)
        u.ids[#u.ids + 1] = id
        u.conns[id] = {d = d, away = flag == '-', region = region}
        if latest == nil or d > latest then
          latest = d
        end
      end
    elseif f == 'a' then
      u.a = tonumber(x) or 0
    elseif f == 'm' then
      u.m = x
    elseif f == 'v' then
      u.v = tonumber(x)
    elseif f == 'l' then
      u.l = tonumber(x) or 0
    elseif f == 'q' then
      u.q = tonumber(x)
    end
  end
  if latest then
    u.l = latest - ttl_ms
  end
  -- A new entry's versions start at the time in seconds, so a user whose
  -- entry expired (a day offline) never goes back to a version a
  -- subscriber saw (that would take more than a change a second).
  u.v = u.v or math.floor(now / 1000)
  return u
end

-- What others see: status (0 offline, 1 away, 2 online), region (of the
-- first connection), activity, match, and the connection count.
local function view(u)
  local n, visible, region = #u.ids, false, ''
  for i, id in ipairs(u.ids) do
    local c = u.conns[id]
    if i == 1 then
      region = c.region
    end
    if not c.away then
      visible = true
    end
  end
  local status = 0
  if n > 0 then
    status = visible and 2 or 1
  end
  return {status = status, region = region, n = n, a = u.a, m = u.m}
end

-- Adds or refreshes a connection (deadline now + ttl); a new one past the
-- most connections replaces the oldest. Returns true if it was new.
local function put(u, id, region, away)
  local new = u.conns[id] == nil
  if new then
    while #u.ids >= max_conns do
      local oldest = table.remove(u.ids, 1)
      u.conns[oldest] = nil
      redis.call('HDEL', KEYS[1], '#' .. oldest)
    end
    u.ids[#u.ids + 1] = id
  end
  local deadline = now + ttl_ms
  u.conns[id] = {d = deadline, away = away, region = region}
  redis.call('HSET', KEYS[1], '#' .. id, b36(deadline) .. (away and '-' or '+') .. region)
  return new
end

-- Removes a connection; true if it was there.
local function drop(u, id)
  if u.conns[id] == nil then
    return false
  end
  u.conns[id] = nil
  for i, other in ipairs(u.ids) do
    if other == id then
      table.remove(u.ids, i)
      break
    end
  end
  redis.call('HDEL', KEYS[1], '#' .. id)
  return true
end

-- Stores the user's fields, and keeps the shard's sweep zset, region counts
-- and grace zset in step with the change from `before`. `touched`: the user
-- was heard from (an offline user's last seen is written even if nothing
-- others see changed). Returns {changed 0/1, status before, status, activity, match,
-- region, last seen, connections, version}.
local function finish(u, before, touched)
  local after = view(u)
  local changed = after.status ~= before.status or after.a ~= before.a
    or after.m ~= before.m or after.region ~= before.region
  if changed then
    u.v = u.v + 1
  end
  if changed or (touched and after.n == 0) then
    redis.call('HSET', KEYS[1], 'v', string.format('%d', u.v))
    -- Last seen is kept only while offline: a connected user's is read
    -- from their deadlines.
    if after.n == 0 and u.l > 0 then
      redis.call('HSET', KEYS[1], 'l', string.format('%d', u.l))
    else
      redis.call('HDEL', KEYS[1], 'l')
    end
    if u.a ~= 0 then
      redis.call('HSET', KEYS[1], 'a', u.a)
    else
      redis.call('HDEL', KEYS[1], 'a')
    end
    if u.m ~= '' then
      redis.call('HSET', KEYS[1], 'm', u.m)
    else
      redis.call('HDEL', KEYS[1], 'm')
    end
    u.stored = true
  end
  -- A connected user has one entry in a sweep bucket: the second their
  -- earliest deadline falls in, rounded up (`q` names it). A heartbeat
  -- leaves it be: deadlines only move later, so the entry is due at or
  -- before the user's true one, and the sweep re-queues a user it finds
  -- still connected. A list entry is ~30 bytes; a zset entry per user
  -- moved on every heartbeat was a ~125-byte skiplist node.
  if after.n > 0 then
    if u.q == nil or u.q * 1000 + LOST_AFTER_MS < now then
      local first = nil
      for _, id in ipairs(u.ids) do
        local d = u.conns[id].d
        if first == nil or d < first then
          first = d
        end
      end
      local sec = math.floor((first + 999) / 1000)
      redis.call('RPUSH', KEYS[2] .. ':' .. sec, uid)
      redis.call('ZADD', KEYS[2], sec, sec)
      redis.call('HSET', KEYS[1], 'q', sec)
      u.q = sec
    end
    redis.call('PERSIST', KEYS[1])
  else
    -- An offline user's sweep entry goes now (LREM scans one bucket: a
    -- second's worth of a shard's users), and the small hash stays a while.
    if u.q ~= nil then
      local bucket = KEYS[2] .. ':' .. u.q
      redis.call('LREM', bucket, 1, uid)
      if redis.call('EXISTS', bucket) == 0 then
        redis.call('ZREM', KEYS[2], u.q)
      end
      redis.call('HDEL', KEYS[1], 'q')
      u.q = nil
    end
    if u.stored then
      redis.call('EXPIRE', KEYS[1], offline_ttl)
    end
  end
  -- Users online or away, by the region of their first connection.
  local was_in = before.status > 0 and before.region or nil
  local now_in = after.status > 0 and after.region or nil
  if was_in ~= now_in then
    if was_in then
      if redis.call('HINCRBY', KEYS[3], was_in, -1) <= 0 then
        redis.call('HDEL', KEYS[3], was_in)
      end
    end
    if now_in then
      redis.call('HINCRBY', KEYS[3], now_in, 1)
    end
  end
  -- A matchmaking user who has just gone offline (or started matchmaking
  -- while offline) is due at now + grace; anyone else is not.
  if after.status == 0 and u.a == 1 then
    if before.status ~= 0 or before.a ~= 1 then
      redis.call('ZADD', KEYS[4], 'NX', now + grace_ms, uid)
    end
  else
    redis.call('ZREM', KEYS[4], uid)
  end
  return {changed and 1 or 0, before.status, after.status, u.a, u.m, after.region,
    u.l, after.n, u.v}
end
