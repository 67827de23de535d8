-- Accept a handshake only while a registration we started is pending, and only if the
-- target holds no secret yet (or the pending registration says it may replace it).
-- Deliveries signed with the new secret may come before ``confirm`` names the webhook: they
-- carry no webhook gid, and the worker reads it from the registration once it is known.
-- KEYS: pending key, target key. ARGV: encrypted secret, now.
local mode = redis.call('GET', KEYS[1])
if not mode then return 0 end
if mode ~= 'replace' and redis.call('HEXISTS', KEYS[2], 'secret') == 1 then return 0 end
redis.call('HSET', KEYS[2], 'secret', ARGV[1], 'handshake_at', ARGV[2])
-- The new secret belongs to a webhook whose gid Asana has not told us yet (confirm does).
redis.call('HDEL', KEYS[2], 'webhook_gid')
redis.call('DEL', KEYS[1])
return 1
