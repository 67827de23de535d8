-- KEYS: budget, reads.
-- ARGV: token, n, is_read (0/1), window_ms.
-- The request has been answered: its n slots count from now (Redis's clock) for the window.
-- Asana counts a request when it arrives, some time between our grant and its answer; a slot
-- dated at the grant could free itself before a minute of Asana's had passed since then, so
-- the next grant's request could share Asana's minute with it. Dated at the answer, no 60 s
-- of Asana's ever hold more than per_minute. Then frees the read slot.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, tonumber(ARGV[2]) do
  redis.call('ZADD', KEYS[1], now, ARGV[1] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
if ARGV[3] == '1' then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
