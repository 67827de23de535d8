-- KEYS: open-batches. ARGV: limit, lag ms (0: due now; >0: overdue by at least that much).
-- Returns flat [gid, batch id, due, ...] of due batches, oldest first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]),
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
local found = {}
for i = 1, #gids, 2 do
  local id = redis.call('HGET', ARGV[3] .. gids[i], 'id')
  if id then
    found[#found + 1] = gids[i]
    found[#found + 1] = id
    found[#found + 1] = gids[i + 1]
  else
    redis.call('ZREM', KEYS[1], gids[i])
  end
end
return found
