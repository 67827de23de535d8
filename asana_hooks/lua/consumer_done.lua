-- Settle a run of entries: acknowledge them, dead-letter those asked first, free resources.
-- KEYS: the changes stream, the group's retry stream, its errors hash, its dead-letter stream.
-- ARGV: group, me, lease prefix, dead-letter cap, then 8 values per entry: stream index
--       ('1' changes, '2' retry: deleted once settled), entry id, resource gid ('' for none),
--       dead: '' or the error, then for a dead letter its original id, change json,
--       deliveries, dead_at ('' each otherwise).
-- A lease goes when one of the run's entries is the newest of the resource handed to me:
-- nothing of the resource waits in my pending list then, and the next entry may go to anyone.
-- Returns the number of entries acknowledged.
local dead = KEYS[4]
local group, me, lease_prefix, cap = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local ids = {{}, {}}
local settled = {}
for i = 5, #ARGV, 8 do
  local index, id, gid, failure = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if failure ~= '' then
    redis.call('XADD', dead, 'MAXLEN', '~', cap, '*',
      'id', ARGV[i + 4], 'change', ARGV[i + 5], 'error', failure, 'deliveries', ARGV[i + 6],
      'dead_at', ARGV[i + 7])
  end
  table.insert(ids[index], id)
  if gid ~= '' then
    local mine = settled[gid]
    if not mine then
      mine = {}
      settled[gid] = mine
    end
    mine[id] = true
  end
end

local function chunked(command, key, extra, list)
  local total = 0
  for first = 1, #list, 500 do
    local args = {command, key}
    if extra then table.insert(args, extra) end
    for i = first, math.min(first + 499, #list) do table.insert(args, list[i]) end
    total = total + redis.call(unpack(args))
  end
  return total
end

local acked = 0
for index = 1, 2 do
  if #ids[index] > 0 then
    acked = acked + chunked('XACK', KEYS[index], group, ids[index])
    if index == 2 then chunked('XDEL', KEYS[2], nil, ids[2]) end
    chunked('HDEL', KEYS[3], nil, ids[index])
  end
end
for gid, mine in pairs(settled) do
  local key = lease_prefix .. gid
  local lease = redis.call('HMGET', key, 'owner', 'last')
  if lease[1] == me and lease[2] and mine[lease[2]] then redis.call('DEL', key) end
end
return acked
