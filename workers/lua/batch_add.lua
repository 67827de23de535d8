-- KEYS: open-batches, stats, target (or ''), delivery claim (or ''), delivery bucket to write
--       (or ''), then per event: batch, seq, claim, the bucket to write its record to.
-- ARGV: debounce ms, max delay ms, seq ttl, tick key prefix, events received,
--       duplicates found by the claim, job id, buckets' expire-at, delivery record
--       with job tag (12 bytes, or ''), then per event its 8-byte record and EVENT_ARGS values
--       (see BatchEvent.args).
-- An event still claimed by this job is new: only its claimant writes its done record, and
-- the claim script looked for one. Its record is appended to the current bucket in the same
-- step that puts it into its batch, and its claim dropped. An event whose claim this job
-- no longer holds (it expired while the job stalled) is left alone and listed in
-- "unclaimed" (0-based): the job claims it again, which looks in the window.
-- Counts events, duplicates and late in stats (and duplicates, late on the target).
-- Returns JSON: {"added": n, "late": n, "duplicates": n, "opened": [[gid, id, due]],
--   "urgent": [[gid, id, due]], "ticks": [second, ...], "unclaimed": [i, ...]}: ticks are due
--   seconds with no flush yet.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local debounce, max_delay = tonumber(ARGV[1]), tonumber(ARGV[2])
local added, late, opened, urgent, ticks = 0, 0, {}, {}, {}
local function with_word(words, word)
  if word == '' or string.find(',' .. words .. ',', ',' .. word .. ',', 1, true) then
    return words
  end
  if words == '' then return word end
  return words .. ',' .. word
end
local job, expire_at, unclaimed = ARGV[7], tonumber(ARGV[8]), {}
local events = (#KEYS - 5) / 4
if KEYS[4] ~= '' then
  local owner = redis.call('GET', KEYS[4])
  if not owner or owner == job then
    mark(KEYS[5], ARGV[9], expire_at)
    redis.call('DEL', KEYS[4])
  end
end
for i = 0, events - 1 do
  local k = 6 + 4 * i
  local bkey, skey, ckey, wkey = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local record = ARGV[10 + 12 * i]
  local a = 11 + 12 * i
  local fresh = redis.call('GET', ckey) == job
  if not fresh then unclaimed[#unclaimed + 1] = i end
  local gid, rtype, action, field = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local created_at, parent, source = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local is_late, is_resync = ARGV[a + 9] == '1', ARGV[a + 10] == '1'
  if fresh then
    local b = redis.call('HMGET', bkey, 'id', 'opened_ms', 'count', 'late', 'first_at',
      'last_at', 'actions', 'fields', 'sources', 'parent', 'deleted', 'due_ms', 'resynced')
    local id, opened_ms, count, nlate = b[1], tonumber(b[2]), tonumber(b[3]), tonumber(b[4])
    local first_at, last_at, actions, fields = b[5], b[6], b[7], b[8]
    local sources, bparent, deleted, due = b[9], b[10], b[11], tonumber(b[12])
    local resynced = tonumber(b[13]) or 0
    if not id then
      local seq = redis.call('INCR', skey)
      redis.call('EXPIRE', skey, tonumber(ARGV[3]))
      id = gid .. '-' .. seq
      opened_ms, count, nlate, first_at, last_at = now, 0, 0, created_at, created_at
      actions, fields, sources, bparent, deleted, due = '', '', '', parent, '0', now
      redis.call('HSET', bkey, 'id', id, 'seq', seq, 'gid', gid, 'rtype', rtype,
        'opened_ms', now, 'webhook_gid', ARGV[a + 7], 'target_id', ARGV[a + 8])
      opened[#opened + 1] = {gid, id}
    end
    count = count + 1
    if is_resync then resynced = resynced + 1 end
    if is_late then
      nlate = nlate + 1
      late = late + 1
    end
    if created_at < first_at then first_at = created_at end
    if created_at > last_at then last_at = created_at end
    if bparent == '' then bparent = parent end
    if action == 'deleted' and deleted ~= '1' then
      deleted = '1'
      urgent[#urgent + 1] = {gid, id}
    end
    if deleted == '1' then
      if due > now then due = now end
    else
      due = math.min(now + debounce, opened_ms + max_delay)
    end
    redis.call('HSET', bkey, 'count', count, 'late', nlate, 'first_at', first_at,
      'last_at', last_at, 'actions', with_word(actions, action),
      'fields', with_word(fields, field), 'sources', with_word(sources, source),
      'parent', bparent, 'deleted', deleted, 'due_ms', due, 'last_ms', now,
      'resynced', resynced)
    redis.call('ZADD', KEYS[1], due, gid)
    local second = math.ceil(due / 1000)
    if redis.call('SET', ARGV[4] .. second, '1', 'NX', 'EX', 600) then
      ticks[#ticks + 1] = second
    end
    mark(wkey, record, expire_at)
    redis.call('DEL', ckey)
    added = added + 1
  end
end
local duplicates = tonumber(ARGV[6]) + events - added - #unclaimed
redis.call('HINCRBY', KEYS[2], 'events', tonumber(ARGV[5]))
if duplicates > 0 then redis.call('HINCRBY', KEYS[2], 'duplicates', duplicates) end
if late > 0 then redis.call('HINCRBY', KEYS[2], 'late', late) end
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  if duplicates > 0 then redis.call('HINCRBY', KEYS[3], 'duplicates', duplicates) end
  if late > 0 then redis.call('HINCRBY', KEYS[3], 'late', late) end
end
local function with_due(list)
  for _, item in ipairs(list) do
    item[3] = tonumber(redis.call('ZSCORE', KEYS[1], item[1]))
  end
  return list
end
return cjson.encode({added = added, late = late, opened = with_due(opened),
  urgent = with_due(urgent), ticks = ticks, duplicates = duplicates, unclaimed = unclaimed})
