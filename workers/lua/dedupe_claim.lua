-- KEYS: [delivery: claim, (earlier-layout key), R buckets], then per event: claim,
--       (earlier-layout done key), R buckets. The earlier-layout keys only when L is 1.
-- ARGV: job id, claim ttl, R, L, '1' when KEYS start with a delivery, delivery record
--       (8 bytes), this job's tag (4 bytes), then one 8-byte record per event.
-- Returns -1 for a duplicate delivery, else one flag per event (1 claimed, 0 duplicate).
-- A delivery recorded with this job's tag, or claimed by this job, is this job's retry.
-- One MGET per mark reads its earlier-layout key and its R buckets.
local job, ttl = ARGV[1], tonumber(ARGV[2])
local R, L = tonumber(ARGV[3]), tonumber(ARGV[4])
local first = 1
if ARGV[5] == '1' then
  local values = redis.call('MGET', unpack(KEYS, 2, 1 + L + R))
  local value, p = marked(values, 1 + L, ARGV[6], 12)
  if value then
    if string.sub(value, p + 8, p + 11) ~= ARGV[7] then return -1 end
  else
    if L == 1 and values[1] and values[1] ~= job then return -1 end
    local owner = redis.call('GET', KEYS[1])
    if owner and owner ~= job then return -1 end
    redis.call('SET', KEYS[1], job, 'EX', ttl)
  end
  first = 2 + L + R
end
local flags, a = {}, 8
for i = first, #KEYS, 1 + L + R do
  local flag = 0
  local values = redis.call('MGET', unpack(KEYS, i + 1, i + L + R))
  if not (L == 1 and values[1]) and not marked(values, 1 + L, ARGV[a], 8) then
    local owner = redis.call('GET', KEYS[i])
    if not owner or owner == job then
      redis.call('SET', KEYS[i], job, 'EX', ttl)
      flag = 1
    end
  end
  flags[#flags + 1] = flag
  a = a + 1
end
return flags
