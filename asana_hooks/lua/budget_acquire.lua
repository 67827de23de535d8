-- KEYS: budget, reads, paused-until, token-rejected.
-- ARGV: n, per_minute, is_read (0/1), max_reads, token, window_ms, lease_ms.
-- Returns {0, token} when granted, {1, wait_ms} for a pause, {2, wait_ms} for the window,
-- {3, wait_ms} for the read slots, {4, 0} when the token was rejected.
if redis.call('EXISTS', KEYS[4]) == 1 then return {4, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then return {1, paused - now} end
local n = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local window = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used + n > per_minute then
  local oldest = redis.call('ZRANGE', KEYS[1], used + n - per_minute - 1, used + n - per_minute - 1,
    'WITHSCORES')
  local wait = 1
  if oldest[2] then wait = math.max(1, tonumber(oldest[2]) + window - now) end
  return {2, wait}
end
if ARGV[3] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {3, 0} end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ARGV[5])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]))
end
for i = 1, n do
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[1], window)
return {0, ARGV[5]}
