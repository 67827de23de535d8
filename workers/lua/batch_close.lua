-- KEYS: batch, closed, emitted (the owner's hash), flushing, open-batches, owned, stats,
--       the earlier layout's emitted key (read only).
-- ARGV: batch id, owner (job id), closed ttl, lease ms, target key prefix, busy retry ms.
-- Returns {'closed', flat hash} | {'taken'} | {'emitted'} | {'gone'} | {'not_due', due_ms}
--       | {'busy', retry_ms}.
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 or redis.call('EXISTS', KEYS[8]) == 1 then
  return {'emitted'}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('HGET', KEYS[2], 'owner') == ARGV[2] then
    return {'closed', redis.call('HGETALL', KEYS[2])}
  end
  return {'taken'}
end
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return {'gone'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = tonumber(redis.call('HGET', KEYS[1], 'due_ms'))
if due > now then return {'not_due', due} end
local flushing = redis.call('GET', KEYS[4])
if flushing and flushing ~= ARGV[1] then
  -- Due again in ARGV[6] ms, behind every batch due now: a resource waiting for its earlier
  -- batch (a deferred connection's, say) never keeps other resources' batches from the
  -- oldest-first look of the next flush.
  redis.call('ZADD', KEYS[5], 'XX', now + tonumber(ARGV[6]), redis.call('HGET', KEYS[1], 'gid'))
  return {'busy', redis.call('PTTL', KEYS[4])}
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'closed_ms', now)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('ZREM', KEYS[5], redis.call('HGET', KEYS[2], 'gid'))
redis.call('SET', KEYS[4], ARGV[1], 'PX', tonumber(ARGV[4]))
redis.call('SADD', KEYS[6], ARGV[1])
redis.call('EXPIRE', KEYS[6], tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[7], 'batches', 1)
local target = redis.call('HGET', KEYS[2], 'target_id')
if target and target ~= '' and redis.call('EXISTS', ARGV[5] .. target) == 1 then
  redis.call('HINCRBY', ARGV[5] .. target, 'batches', 1)
end
return {'closed', redis.call('HGETALL', KEYS[2])}
