-- KEYS: lock, sync token, poll state.
-- ARGV: owner, ttl_ms, token ('' keeps it), token_ttl_s, n_set, field, value, ..., field, ...
-- Fields after the n_set pairs are deleted. Returns 0 (and writes nothing) unless we own the lock.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4]) end
local n = tonumber(ARGV[5])
local i = 6
for _ = 1, n do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
while i <= #ARGV do
  redis.call('HDEL', KEYS[3], ARGV[i])
  i = i + 1
end
return 1
