-- KEYS: the series hash. ARGV: slots, ttl seconds, then triples: name, mode, value.
-- One field per series and slot ("<name>:<slot>" = "<minute> <value>"), the slot being the
-- minute (Redis's clock) modulo slots: a fixed number of fields, each overwritten when its
-- minute comes round again. mode: "add" (counters), "max" (gauges: the highest sample of
-- the minute across processes), "hist" (comma-separated bucket counts, added bucket by
-- bucket).
local t = redis.call('TIME')
local minute = math.floor(tonumber(t[1]) / 60)
local slot = minute % tonumber(ARGV[1])
for i = 3, #ARGV, 3 do
  local field = ARGV[i] .. ':' .. slot
  local mode, value = ARGV[i + 1], ARGV[i + 2]
  local new = value
  local old = redis.call('HGET', KEYS[1], field)
  if old then
    local space = string.find(old, ' ', 1, true)
    local current = string.sub(old, space + 1)
    if tonumber(string.sub(old, 1, space - 1)) == minute then
      if mode == 'add' then
        new = string.format('%.17g', tonumber(current) + tonumber(value))
      elseif mode == 'max' then
        if tonumber(current) > tonumber(value) then new = current end
      else
        local a, b, sum = {}, {}, {}
        for n in string.gmatch(current, '[^,]+') do a[#a + 1] = tonumber(n) end
        for n in string.gmatch(value, '[^,]+') do b[#b + 1] = tonumber(n) end
        for j = 1, math.max(#a, #b) do sum[j] = string.format('%d', (a[j] or 0) + (b[j] or 0)) end
        new = table.concat(sum, ',')
      end
    end
  end
  redis.call('HSET', KEYS[1], field, minute .. ' ' .. new)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return minute
