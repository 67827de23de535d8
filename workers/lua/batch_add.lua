-- KEYS: open-batches, stats, target (or ''), delivery claim (or ''), delivery bucket to write
--       (or ''), then per event: batch, seq, claim, earlier-layout done key, R buckets.
-- ARGV: debounce ms, max delay ms, R, seq ttl, tick key prefix, events received,
--       duplicates found by the claim, job id, buckets' expire-at, index of the bucket to
--       write among the R, delivery record with job tag (12 bytes, or ''), then per event its
--       8-byte record and EVENT_ARGS values (see BatchEvent.args).
-- An event still claimed by this job is new (a done mark is only written by its claimant);
-- any other is looked up in the buckets first. Each new event's record is appended to the
-- current bucket in the same step that puts it into its batch, and its claim dropped.
-- Counts events, duplicates and late in stats (and duplicates, late on the target).
-- Returns JSON: {"added": n, "late": n, "duplicates": n, "opened": [[gid, id, due]],
--   "urgent": [[gid, id, due]], "ticks": [second, ...]}: ticks are due seconds with no flush yet.
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
local R, job, expire_at = tonumber(ARGV[3]), ARGV[8], tonumber(ARGV[9])
local write = tonumber(ARGV[10])
local per = 4 + R
local events = (#KEYS - 5) / per
if KEYS[4] ~= '' then
  local owner = redis.call('GET', KEYS[4])
  if not owner or owner == job then
    mark(KEYS[5], ARGV[11], expire_at)
    redis.call('DEL', KEYS[4])
  end
end
for i = 0, events - 1 do
  local k = 6 + per * i
  local bkey, skey, ckey, legacy = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local record = ARGV[12 + 12 * i]
  local a = 13 + 12 * i
  local fresh = redis.call('GET', ckey) == job
  if not fresh then
    fresh = redis.call('EXISTS', legacy) == 0 and not marked(k + 4, R, record, 8)
  end
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
      redis.call('EXPIRE', skey, tonumber(ARGV[4]))
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
    if redis.call('SET', ARGV[5] .. second, '1', 'NX', 'EX', 600) then
      ticks[#ticks + 1] = second
    end
    mark(KEYS[k + 4 + write], record, expire_at)
    redis.call('DEL', ckey)
    added = added + 1
  end
end
local duplicates = tonumber(ARGV[7]) + events - added
redis.call('HINCRBY', KEYS[2], 'events', tonumber(ARGV[6]))
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
  urgent = with_due(urgent), ticks = ticks, duplicates = duplicates})
