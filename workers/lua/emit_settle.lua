-- KEYS: emitted, closed, flushing, stats. ARGV: batch id, emitted ttl, mark.
-- Returns 1 when settled now, 0 when the batch was emitted or settled before.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', tonumber(ARGV[2]))
redis.call('DEL', KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
redis.call('HINCRBY', KEYS[4], 'redundant', 1)
return 1
