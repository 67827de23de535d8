-- KEYS: the job's owned set, the parked owner's owned set, the connection's parked zset,
--       the parked-connections set.
-- ARGV: connection id, parked owner, now ms, closed-batch key prefix, flushing key prefix,
--       the job's owner id, then (batch id, resource gid) pairs.
-- Moves each batch the job still owns to the parked owner, without expiry, and frees its
-- resource for the next batch (which parks behind it while the connection is refused).
-- A parked owner refused again keeps exactly these batches (those it emitted meanwhile go).
-- Returns how many batches were moved.
if KEYS[1] == KEYS[2] then
  local parked = {}
  for i = 7, #ARGV, 2 do parked[ARGV[i]] = true end
  for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if not parked[member] then redis.call('SREM', KEYS[1], member) end
  end
end
local moved = 0
for i = 7, #ARGV, 2 do
  local batch_id, gid = ARGV[i], ARGV[i + 1]
  local closed = ARGV[4] .. batch_id
  if redis.call('HGET', closed, 'owner') == ARGV[6] then
    redis.call('HSET', closed, 'owner', ARGV[2])
    redis.call('PERSIST', closed)
    if KEYS[1] ~= KEYS[2] then redis.call('SREM', KEYS[1], batch_id) end
    redis.call('SADD', KEYS[2], batch_id)
    if redis.call('GET', ARGV[5] .. gid) == batch_id then redis.call('DEL', ARGV[5] .. gid) end
    moved = moved + 1
  end
end
if redis.call('SCARD', KEYS[2]) > 0 then
  redis.call('PERSIST', KEYS[2])
  redis.call('ZADD', KEYS[3], 'NX', tonumber(ARGV[3]), ARGV[2])
  redis.call('SADD', KEYS[4], ARGV[1])
end
return moved
