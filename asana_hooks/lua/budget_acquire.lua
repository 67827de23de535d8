-- KEYS: budget, reads, paused-until, token-rejected, fresh-waiting.
-- ARGV: n, per_minute, is_read (0/1), max_reads, token, window_ms, lease_ms,
--       lane ('fresh' or 'background'), window_reserve, reads_reserve, waiting_grace_ms.
-- Returns {0, token} when granted, {1, wait_ms} for a pause, {2, wait_ms} for the window,
-- {3, wait_ms} for the read slots, {4, 0} when the token was rejected, {5, 0} when a
-- background request yields to a fresh one that is waiting.
-- A fresh request refused for want of room is kept in fresh-waiting (token -> the time it
-- asks again plus a grace, so a caller that died stops counting by itself) until granted.
-- A background request yields while that set holds anyone, and never takes the last
-- window_reserve slots of the window nor the last reads_reserve read slots.
if redis.call('EXISTS', KEYS[4]) == 1 then return {4, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local fresh = ARGV[8] == 'fresh'
local grace = tonumber(ARGV[11])
local function refuse(code, wait)
  if fresh then
    redis.call('ZADD', KEYS[5], now + wait + grace, ARGV[5])
    if redis.call('PTTL', KEYS[5]) < wait + grace then
      redis.call('PEXPIRE', KEYS[5], wait + grace)
    end
  end
  return {code, wait}
end
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then return refuse(1, paused - now) end
local n = tonumber(ARGV[1])
local per_minute = tonumber(ARGV[2])
local max_reads = tonumber(ARGV[4])
local window = tonumber(ARGV[6])
if not fresh then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) > 0 then return {5, 0} end
  per_minute = per_minute - tonumber(ARGV[9])
  max_reads = max_reads - tonumber(ARGV[10])
end
-- A slot dated d counts while now - d <= window (scores are whole ms: a full window must
-- have passed, not one less a fraction of a millisecond).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - window))
local used = redis.call('ZCARD', KEYS[1])
if used + n > per_minute then
  local oldest = redis.call('ZRANGE', KEYS[1], used + n - per_minute - 1, used + n - per_minute - 1,
    'WITHSCORES')
  local wait = 1
  if oldest[2] then wait = math.max(1, tonumber(oldest[2]) + window + 1 - now) end
  return refuse(2, wait)
end
if ARGV[3] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= max_reads then return refuse(3, 0) end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ARGV[5])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[7]))
end
for i = 1, n do
  redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[1], window)
if fresh then redis.call('ZREM', KEYS[5], ARGV[5]) end
return {0, ARGV[5]}
