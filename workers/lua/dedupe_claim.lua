-- KEYS: [delivery key or nothing], then per event: claim, done.
-- ARGV: job id, claim ttl, done ttl, 1 when KEYS[1] is a delivery key.
-- Returns -1 for a duplicate delivery, else one flag per event (1 claimed, 0 duplicate).
local job, first = ARGV[1], 1
if ARGV[4] == '1' then
  local owner = redis.call('GET', KEYS[1])
  if owner and owner ~= job then return -1 end
  redis.call('SET', KEYS[1], job, 'EX', tonumber(ARGV[3]))
  first = 2
end
local flags = {}
for i = first, #KEYS, 2 do
  local flag = 0
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    local owner = redis.call('GET', KEYS[i])
    if not owner or owner == job then
      redis.call('SET', KEYS[i], job, 'EX', tonumber(ARGV[2]))
      flag = 1
    end
  end
  flags[#flags + 1] = flag
end
return flags
