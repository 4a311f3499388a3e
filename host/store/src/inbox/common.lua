-- Shared by every inbox script (prefixed to each).
-- KEYS: 1 ids (zset id -> created ms), 2 bodies (hash id -> JSON),
--       3 unread (set of ids).

-- Forgets `ids` (a list) everywhere: the three keys stay in step.
local function drop(ids)
  if #ids == 0 then
    return
  end
  redis.call('ZREM', KEYS[1], unpack(ids))
  redis.call('HDEL', KEYS[2], unpack(ids))
  redis.call('SREM', KEYS[3], unpack(ids))
end

-- Drops the notifications created at or before `cutoff` (ms): expired.
local function expire(cutoff)
  drop(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff))
end

local function unread()
  return redis.call('SCARD', KEYS[3])
end

-- Byte-wise `a < b` (Lua's `<` on strings follows the locale; a zset
-- orders equal scores by bytes).
local function bytes_before(a, b)
  local la, lb = #a, #b
  for i = 1, math.min(la, lb) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return la < lb
end
