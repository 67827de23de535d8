-- Shared by dedupe_claim and batch_add (prepended to each; workers.window describes the layout).
-- A bucket is a string of fixed-size records; a record counts only at an offset aligned to its
-- size, so a match straddling two records is skipped.
local function record_at(value, record, size)
  local init = 1
  while true do
    local p = string.find(value, record, init, true)
    if not p then return nil end
    if (p - 1) % size == 0 then return p end
    init = p + 1
  end
end
-- The first of values[first ..] (bucket strings, from one MGET) holding the record, and where.
local function marked(values, first, record, size)
  for i = first, #values do
    local value = values[i]
    if value then
      local p = record_at(value, record, size)
      if p then return value, p end
    end
  end
  return nil
end
-- Append a record; a bucket gets its expiry when created (every writer gives the same one).
local function mark(key, record, expire_at)
  if redis.call('APPEND', key, record) == #record then
    redis.call('EXPIREAT', key, expire_at)
  end
end
