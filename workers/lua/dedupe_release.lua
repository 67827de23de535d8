-- KEYS: claim keys (the delivery's claim and earlier-layout key first, when it has a digest).
-- ARGV: job id. Deletes only what this job holds.
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    released = released + 1
  end
end
return released
