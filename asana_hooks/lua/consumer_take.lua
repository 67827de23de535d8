-- Hand this consumer its next entries, keeping every resource with one consumer at a time.
-- KEYS: the changes stream, this group's retry stream, this consumer's wake stream.
-- ARGV: group, me, count, lease prefix, alive prefix, lease ttl (s), claim min idle (ms, 0: no
--       claim this time), wake prefix.
-- Every entry of a resource goes to the consumer that holds the resource's lease (a hash
-- <prefix><gid> with owner and last, the newest id handed to it); an entry read for a
-- resource another live consumer holds is moved to that consumer's pending list (XCLAIM
-- JUSTID, not a new delivery), and that consumer's wake stream gets an entry so that it looks
-- again at once if it is waiting. A lease whose owner is gone (its alive key expired) passes
-- to me with every entry the owner still held, so nothing of that resource overtakes them.
-- Each lease (and each owner's alive key) is read once per call and written once at the end,
-- however many of the call's entries it covers.
-- Returns {pending, last ids, read}: pending = my whole pending list, oldest first per
-- stream, as {stream index (1 changes, 2 retry), id, deliveries, fields or false when
-- trimmed}; last ids = the newest id of each stream and of my wake stream, to block on when
-- there is nothing to do; read = 1 when this call read new entries (so do not block yet).
local stream, retry, wake = KEYS[1], KEYS[2], KEYS[3]
local group, me, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local lease_prefix, alive_prefix, ttl = ARGV[4], ARGV[5], tonumber(ARGV[6])
local min_idle, wake_prefix = tonumber(ARGV[7]), ARGV[8]

local function newer(a, b)
  if not b then return true end
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return #am > #bm end
  if am ~= bm then return am > bm end
  if #as ~= #bs then return #as > #bs end
  return as > bs
end

local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

local function resource_of(fields)
  local change = field(fields, 'change')
  if not change then return nil end
  local gid = string.match(change, '^{"resource":{"gid":"([^"]*)"')
  if gid then return gid end
  local ok, decoded = pcall(cjson.decode, change)
  if ok and type(decoded) == 'table' and type(decoded.resource) == 'table' then
    local found = decoded.resource.gid
    if type(found) == 'string' then return found end
  end
  return nil
end

local function body(id)
  local found = redis.call('XRANGE', stream, id, id)
  if #found == 0 then return nil end
  return found[1][2]
end

-- gid -> {owner, last, changed}: the lease as this call sees it, written back at the end.
local leases = {}
local function lease(gid)
  local found = leases[gid]
  if not found then
    local got = redis.call('HMGET', lease_prefix .. gid, 'owner', 'last')
    found = {owner = got[1] or nil, last = got[2] or nil, changed = false}
    leases[gid] = found
  end
  return found
end

local function hand(found, owner, id)
  found.owner = owner
  if newer(id, found.last) then found.last = id end
  found.changed = true
end

local alive = {}
local function is_alive(owner)
  if alive[owner] == nil then
    alive[owner] = redis.call('EXISTS', alive_prefix .. owner) == 1
  end
  return alive[owner]
end

local function take_over(gone)
  local held = redis.call('XPENDING', stream, group, '-', '+', 10000, gone)
  for _, entry in ipairs(held) do
    local id = entry[1]
    redis.call('XCLAIM', stream, group, me, 0, id)
    local fields = body(id)
    local gid = fields and resource_of(fields)
    if gid and gid ~= '' then
      local found = lease(gid)
      if not found.owner or found.owner == gone then hand(found, me, id) end
    end
  end
end

-- owner -> ids read by me for a resource that owner holds, moved to it at the end.
local moved = {}
local function assign(id, gid)
  if not gid or gid == '' then return end
  local found = lease(gid)
  if found.owner and found.owner ~= me then
    if is_alive(found.owner) then
      local ids = moved[found.owner]
      if not ids then
        ids = {}
        moved[found.owner] = ids
      end
      table.insert(ids, id)
      hand(found, found.owner, id)
      return
    end
    take_over(found.owner)
  end
  hand(found, me, id)
end

local fresh = {}
local read_any = 0
if min_idle > 0 then
  local claimed = redis.call('XAUTOCLAIM', stream, group, me, min_idle, '0-0', 'COUNT', count)
  for _, entry in ipairs(claimed[2]) do
    if entry[2] then assign(entry[1], resource_of(entry[2])) end
  end
  redis.call('XAUTOCLAIM', retry, group, me, min_idle, '0-0', 'COUNT', count)
end
local read = redis.call('XREADGROUP', 'GROUP', group, me, 'COUNT', count,
  'STREAMS', stream, retry, '>', '>')
if read then
  for _, per_stream in ipairs(read) do
    for _, entry in ipairs(per_stream[2]) do
      read_any = 1
      if per_stream[1] == stream then
        fresh[entry[1]] = entry[2]
        assign(entry[1], resource_of(entry[2]))
      end
    end
  end
end

for owner, ids in pairs(moved) do
  for first = 1, #ids, 500 do
    local args = {'XCLAIM', stream, group, owner, 0}
    for i = first, math.min(first + 499, #ids) do table.insert(args, ids[i]) end
    table.insert(args, 'JUSTID')
    redis.call(unpack(args))
  end
  local key = wake_prefix .. owner
  redis.call('XADD', key, 'MAXLEN', 1, '*', 'from', me)
  redis.call('EXPIRE', key, ttl)
end
for gid, found in pairs(leases) do
  if found.changed then
    local key = lease_prefix .. gid
    redis.call('HSET', key, 'owner', found.owner, 'last', found.last)
    redis.call('EXPIRE', key, ttl)
  end
end

local pending = {}
for index, key in ipairs({stream, retry}) do
  for _, entry in ipairs(redis.call('XPENDING', key, group, '-', '+', count * 2, me)) do
    local id = entry[1]
    local fields = (index == 1 and fresh[id])
    if not fields then
      local found = redis.call('XRANGE', key, id, id)
      fields = (#found > 0) and found[1][2] or false
    end
    table.insert(pending, {index, id, entry[4], fields})
  end
end
local last = {}
for _, key in ipairs({stream, retry, wake}) do
  local newest = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  table.insert(last, (#newest > 0) and newest[1][1] or '0-0')
end
return {pending, last, read_any}
