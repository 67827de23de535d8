-- KEYS: paused-until. Returns {now_ms, paused_until_ms or 0}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return {now, tonumber(redis.call('GET', KEYS[1]) or '0')}
