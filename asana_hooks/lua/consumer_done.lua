-- Settle one entry: acknowledge it, dead-letter it first when asked, free its resource.
-- KEYS: the stream the entry came from, the group's errors hash, its dead-letter stream.
-- ARGV: group, me, entry id, lease prefix, resource gid ('' for none), '1' when the entry is
--       from the retry stream (deleted once settled), dead: '' or the dead letter as
--       original id, change json, error, deliveries, dead_at, dead-letter cap.
-- The lease goes when this entry is the newest of the resource handed to me: nothing of the
-- resource waits in my pending list then, and the next entry may go to anyone.
local stream, errors, dead = KEYS[1], KEYS[2], KEYS[3]
local group, me, id, gid = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
if ARGV[7] ~= '' then
  redis.call('XADD', dead, 'MAXLEN', '~', tonumber(ARGV[12]), '*',
    'id', ARGV[7], 'change', ARGV[8], 'error', ARGV[9], 'deliveries', ARGV[10],
    'dead_at', ARGV[11])
end
local acked = redis.call('XACK', stream, group, id)
if ARGV[6] == '1' then redis.call('XDEL', stream, id) end
redis.call('HDEL', errors, id)
if gid ~= '' then
  local key = ARGV[4] .. gid
  if redis.call('HGET', key, 'owner') == me and redis.call('HGET', key, 'last') == id then
    redis.call('DEL', key)
  end
end
return acked
