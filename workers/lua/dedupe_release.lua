-- KEYS: [delivery key or nothing], then claim keys. ARGV: job id, 1 when KEYS[1] is a delivery.
-- Deletes only what this job holds.
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    released = released + 1
  end
end
return released
