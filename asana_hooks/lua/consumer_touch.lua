-- A running consumer's heartbeat: it is alive, and what it holds is not idle.
-- KEYS: its alive key, the changes stream, the group's retry stream.
-- ARGV: group, me, ttl (s).
-- Resetting the idle time of every entry it holds keeps XAUTOCLAIM (which takes entries idle
-- longer than claim_after_seconds) from taking them from a consumer that is only slow.
-- JUSTID: a heartbeat is not a delivery, so the delivery counts stay as they are.
redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[3]))
for _, key in ipairs({KEYS[2], KEYS[3]}) do
  local held = redis.call('XPENDING', key, ARGV[1], '-', '+', 10000, ARGV[2])
  for i = 1, #held, 500 do
    local args = {'XCLAIM', key, ARGV[1], ARGV[2], 0}
    for j = i, math.min(i + 499, #held) do table.insert(args, held[j][1]) end
    table.insert(args, 'JUSTID')
    redis.call(unpack(args))
  end
end
return 1
