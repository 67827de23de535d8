-- Keep events we could not read, each once, and drop the oldest past the cap.
-- KEYS: the quarantine hash, its order (sorted set), the stats hash.
-- ARGV: cap, now (microseconds), then per event: id, record JSON, target key ('' for none).
-- Each event's score is now plus its place, so the order holds within one delivery.
-- Returns how many were new. A retried job writes the same ids and counts nothing twice.
local cap = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
local new = 0
for i = 3, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[2], now + (i - 3) / 3, ARGV[i])
    new = new + 1
    if ARGV[i + 2] ~= '' and redis.call('EXISTS', ARGV[i + 2]) == 1 then
      redis.call('HINCRBY', ARGV[i + 2], 'quarantined', 1)
    end
  end
end
if new > 0 then
  redis.call('HINCRBY', KEYS[3], 'quarantined', new)
end
local excess = redis.call('ZCARD', KEYS[2]) - cap
if excess > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[2], excess)
  for i = 1, #oldest, 2 do
    redis.call('HDEL', KEYS[1], oldest[i])
  end
  redis.call('HINCRBY', KEYS[3], 'quarantine_dropped', excess)
end
return new
