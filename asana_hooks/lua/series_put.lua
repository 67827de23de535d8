-- KEYS: one string per series, in the order of the ARGV triples.
-- ARGV: slots, ttl seconds, then triples: mode, value, buckets.
-- A series is a fixed-size string: one record per minute-of-the-day slot (the minute by
-- Redis's clock, modulo slots), each record the minute it holds (uint32) and its value
-- (a double; for "hist", `buckets` uint32 counts), overwritten when its minute comes round
-- again. The string is its full size from the first write, so its size never changes.
-- mode: "add" (counters), "max" (gauges: the highest sample of the minute across
-- processes), "hist" (comma-separated bucket counts, added bucket by bucket).
local t = redis.call('TIME')
local minute = math.floor(tonumber(t[1]) / 60)
local slots = tonumber(ARGV[1])
local slot = minute % slots
for i = 3, #ARGV, 3 do
  local key = KEYS[(i - 3) / 3 + 1]
  local mode, value, buckets = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local format = mode == 'hist' and ('<I' .. string.rep('I', buckets)) or '<Id'
  local size = struct.size(format)
  if redis.call('STRLEN', key) < slots * size then
    redis.call('SETRANGE', key, slots * size - 1, '\0')
  end
  local offset = slot * size
  local old = {struct.unpack(format, redis.call('GETRANGE', key, offset, offset + size - 1))}
  local same = old[1] == minute
  if mode == 'hist' then
    local counts, j = {}, 1
    for n in string.gmatch(value, '[^,]+') do
      counts[j] = tonumber(n) + (same and old[j + 1] or 0)
      j = j + 1
    end
    for k = j, buckets do counts[k] = same and old[k + 1] or 0 end
    redis.call('SETRANGE', key, offset, struct.pack(format, minute, unpack(counts, 1, buckets)))
  else
    local new = tonumber(value)
    if same and mode == 'add' then new = new + old[2] end
    if same and mode == 'max' and old[2] > new then new = old[2] end
    redis.call('SETRANGE', key, offset, struct.pack(format, minute, new))
  end
  redis.call('EXPIRE', key, tonumber(ARGV[2]))
end
return minute
