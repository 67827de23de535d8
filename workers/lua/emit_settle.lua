-- KEYS: emitted (the owner's hash), closed, flushing, stats, the earlier layout's emitted key.
-- ARGV: batch id, emitted ttl, mark.
-- Returns 1 when settled now, 0 when the batch was emitted or settled before.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 or redis.call('EXISTS', KEYS[5]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('HINCRBY', KEYS[4], 'redundant', 1)
return 1
