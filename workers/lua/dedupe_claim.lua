-- KEYS: [delivery: claim, earlier-layout key, R buckets], then per event: claim,
--       earlier-layout done key, R buckets.
-- ARGV: job id, claim ttl, R, '1' when KEYS start with a delivery, delivery record (8 bytes),
--       this job's tag (4 bytes), then one 8-byte record per event.
-- Returns -1 for a duplicate delivery, else one flag per event (1 claimed, 0 duplicate).
-- A delivery recorded with this job's tag, or claimed by this job, is this job's retry.
local job, ttl, R = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local first = 1
if ARGV[4] == '1' then
  local value, p = marked(3, R, ARGV[5], 12)
  if value then
    if string.sub(value, p + 8, p + 11) ~= ARGV[6] then return -1 end
  else
    local old = redis.call('GET', KEYS[2])
    if old and old ~= job then return -1 end
    local owner = redis.call('GET', KEYS[1])
    if owner and owner ~= job then return -1 end
    redis.call('SET', KEYS[1], job, 'EX', ttl)
  end
  first = 3 + R
end
local flags, a = {}, 7
for i = first, #KEYS, 2 + R do
  local flag = 0
  if redis.call('EXISTS', KEYS[i + 1]) == 0 and not marked(i + 2, R, ARGV[a], 8) then
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
