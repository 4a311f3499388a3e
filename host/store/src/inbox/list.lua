-- A page of the inbox, newest first (created ms descending, then id
-- descending by bytes, as ZREVRANGE orders them).
-- ARGV: 1 cutoff, 2 the cursor's created ms ('' = the first page),
--       3 the cursor's id, 4 limit.
-- Returns {unread, more, {{id, created ms, JSON, unread flag}, ...}}.
expire(ARGV[1])
local all = redis.call('ZREVRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local limit = tonumber(ARGV[4])
local cursor = nil
if ARGV[2] ~= '' then
  cursor = tonumber(ARGV[2])
end
local page = {}
local more = 0
for i = 1, #all, 2 do
  local id, created = all[i], tonumber(all[i + 1])
  local older = cursor == nil or created < cursor
    or (created == cursor and bytes_before(id, ARGV[3]))
  if older then
    if #page == limit then
      more = 1
      break
    end
    local json = redis.call('HGET', KEYS[2], id) or ''
    local flag = redis.call('SISMEMBER', KEYS[3], id)
    page[#page + 1] = {id, created, json, flag}
  end
end
return {unread(), more, page}
